#!/bin/sh
# train_mpi.sh - gambar-train's data-parallel scaling under mpirun (issue
# 11): the real trainer on a synthetic in-memory stream (batch_source),
# DCGAN-28 width 32, batch 64, --micro-batches 4, the same threads in
# total: N = 1 rank with --threads 2 against N = 2 ranks with --threads 1.
# Prints `bench:` lines:
#   train_mpi_images_per_s_1, train_mpi_images_per_s_2  images/s of the
#       last progress line (steps 20..STEPS, after the warm-up);
#   train_mpi_comm_ms_per_step  time in MPI calls per step on rank 0 (N = 2);
#   train_micro1_images_per_s_1  N = 1, --threads 2, --micro-batches 1:
#       the cost of micro-batching is its ratio to train_mpi_images_per_s_1.
# Skips (message on stderr, no lines) when mpirun is missing.
BIN=${GAMBAR_BIN:-build/bin}
TOOLS=${GAMBAR_TOOLS:-build/tools}
STEPS=${STEPS:-60}
command -v mpirun >/dev/null 2>&1 || { echo "train_mpi.sh: no mpirun; skipped" >&2; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,tcp \
    OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
T=$(mktemp -d "${BENCH_TMP:-/tmp}/train-mpi-XXXXXX")
# one ONE_RUN NAME NP THREADS M: prints images/s, and the comm time to $T/NAME.comm
one() {
    "$TOOLS/batch_source" --synthetic-count 1024 --batch 64 --epochs 100 --out "ipc://$T/$1.sock" 2>/dev/null &
    sp=$!
    pre=""
    [ "$2" -gt 1 ] && pre="mpirun --oversubscribe -np $2"
    $pre "$BIN/gambar-train" --in "ipc://$T/$1.sock" --model dcgan28 --width 32 --threads "$3" \
        --micro-batches "$4" --steps "$STEPS" --log-every 20 --ckpt-every 100000 --ckpt-dir "$T/$1" 2>"$T/$1.log"
    kill $sp 2>/dev/null
    wait $sp 2>/dev/null
    sed -n 's/.* \([0-9.]*\) img\/s,.*/\1/p' "$T/$1.log" | tail -1
    sed -n 's/.*: \([0-9.]*\) ms per step in MPI calls on rank 0.*/\1/p' "$T/$1.log" >"$T/$1.comm"
}
v1=$(one n1 1 2 4)
v2=$(one n2 2 1 4)
m1=$(one m1 1 2 1)
echo "bench: train_mpi_images_per_s_1 ${v1:-0} images/s"
echo "bench: train_mpi_images_per_s_2 ${v2:-0} images/s"
echo "bench: train_mpi_comm_ms_per_step $(cat "$T/n2.comm" 2>/dev/null || echo 0) ms"
echo "bench: train_micro1_images_per_s_1 ${m1:-0} images/s"
rm -rf "$T"
