#!/bin/sh
# t_train_rss.sh - issue 11's memory bound: gambar-train's peak RSS stays
# at most 64 MiB for the default job (pipelines/fashion-dcgan.ini: DCGAN-28
# width 32, batch 64, class-conditional, --db read) fed by the real
# gambar-augment from all 60000 Fashion-MNIST training images, through
# checkpoint saves, and again for a --resume from those checkpoints.
#
# The figure is VmHWM as the kernel reports it for the waited child
# (getrusage RUSAGE_CHILDREN ru_maxrss, read by a python3 parent), so it
# counts everything: heap, OpenBLAS and libzmq buffers, the dataset's
# memory map and the shared libraries' pages. It does not depend on the
# machine's load; --threads 2 fixes the number of GEMM threads (each one
# touches its own OpenBLAS buffer). The run's own log line ("peak RSS")
# must agree with it.
. "$(dirname "$0")/lib.sh"
LIMIT_MIB=64
if [ ! -r "$FASHION/train-images-idx3-ubyte.gz" ] || ! command -v python3 >/dev/null; then
    skip train_rss_new_run "needs $FASHION and python3"
    skip train_rss_resume "needs $FASHION and python3"
    skip train_rss_mpi_ranks "needs $FASHION and python3"
    rm -rf "$TMP"; exit 0
fi
if ldd "$GAMBAR_BIN/gambar-train" 2>/dev/null | grep -q 'libasan\|libubsan'; then
    skip train_rss_new_run "sanitizer build: its shadow memory is not the trainer's"
    skip train_rss_resume "sanitizer build"
    skip train_rss_mpi_ranks "sanitizer build"
    rm -rf "$TMP"; exit 0
fi
t0=$(date +%s)
if ! gambar-ingest --source "idx:$FASHION/train" --db "$TMP/db" 2>"$TMP/ingest.log"; then
    cat "$TMP/ingest.log" >&2; notok train_rss_dataset; rm -rf "$TMP"; exit 0
fi

# run CKPT-DIR STEPS: the pipeline's augment and train commands (with a
# checkpoint every 10 steps); sets rc and kib (the trainer's peak RSS).
run() {
    k=$(gambar-train --print-start-batch --ckpt-dir "$1")
    gambar-augment --db "$TMP/db" --batch 64 --ops flip --epochs 1 --seed 1 --out "ipc://$TMP/a.sock" \
        --start-batch "$k" 2>>"$TMP/aug.log" &
    ap=$!
    kib=$(python3 - gambar-train --in "ipc://$TMP/a.sock" --model dcgan28 --db "$TMP/db" --ckpt-dir "$1" \
        --ckpt-every 10 --steps "$2" --resume --seed 1 --threads 2 --conditional auto --log-every 1000 \
        2>"$TMP/train.log" <<'PY'
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB
sys.exit(rc)
PY
)
    rc=$?
    kill $ap 2>/dev/null; wait $ap 2>/dev/null
    cat "$TMP/train.log" >>"$TMP/train-all.log"
}

# within NAME CKPT: the run succeeded, wrote CKPT, and peaked at most
# LIMIT_MIB (and its own log line says the same figure)
within() {
    mib=$(awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }')
    logged=$(sed -n 's/.*finished at step [0-9]* (.*), peak RSS \([0-9.]*\) MiB$/\1/p' "$TMP/train.log")
    echo "t_train_rss: $1: peak RSS $mib MiB (trainer's log: ${logged:-none}), limit $LIMIT_MIB MiB" >&2
    if [ "$rc" -ne 0 ] || [ ! -f "$2" ]; then
        notok "$1" "exit $rc or no $2"; cat "$TMP/train.log" >&2; return
    fi
    if awk -v k="$kib" -v l="$LIMIT_MIB" -v g="$logged" \
        'BEGIN { exit !(k > 16 * 1024 && k <= l * 1024 && g != "" && (g - k / 1024) ^ 2 < 1) }'; then
        ok "$1"
    else
        notok "$1" "peak RSS $mib MiB (logged ${logged:-none}), limit $LIMIT_MIB MiB"
    fi
}

run "$TMP/ck" 20
within train_rss_new_run "$TMP/ck/ckpt-0000000020.gck"
run "$TMP/ck" 30
within train_rss_resume "$TMP/ck/ckpt-0000000030.gck"
grep -q "resuming from .*ckpt-0000000020.gck" "$TMP/train.log" && ok train_rss_resumed || notok train_rss_resumed

# Under mpirun every rank keeps the bound: 2 ranks, --micro-batches 4
# (each rank holds its own micro-batches' gradients, not all M: 70 MiB
# on rank 0 when the gradients were all-gathered). The figures are the
# ranks' own log lines (getrusage RUSAGE_SELF ru_maxrss).
if command -v mpirun >/dev/null 2>&1; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,tcp \
        OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
    gambar-augment --db "$TMP/db" --batch 64 --ops flip --epochs 1 --seed 1 --out "ipc://$TMP/m.sock" \
        2>>"$TMP/aug.log" &
    ap=$!
    timeout 300 mpirun --oversubscribe -np 2 "$GAMBAR_BIN/gambar-train" --in "ipc://$TMP/m.sock" --model dcgan28 \
        --db "$TMP/db" --ckpt-dir "$TMP/mck" --ckpt-every 10 --steps 20 --seed 1 --threads 1 --micro-batches 4 \
        --conditional auto --log-every 1000 2>"$TMP/mpi.log"
    rc=$?
    kill $ap 2>/dev/null; wait $ap 2>/dev/null
    r0=$(sed -n 's/.*finished at step 20 (.*), peak RSS \([0-9.]*\) MiB$/\1/p' "$TMP/mpi.log")
    r1=$(sed -n 's/.*rank 1: 20 steps, .*, peak RSS \([0-9.]*\) MiB$/\1/p' "$TMP/mpi.log")
    echo "t_train_rss: mpirun -np 2 --micro-batches 4: peak RSS rank 0 ${r0:-none} MiB, rank 1 ${r1:-none} MiB" >&2
    if [ "$rc" -eq 0 ] && [ -f "$TMP/mck/ckpt-0000000020.gck" ] && awk -v a="$r0" -v b="$r1" -v l="$LIMIT_MIB" \
        'BEGIN { exit !(a != "" && b != "" && a > 16 && b > 16 && a <= l && b <= l) }'; then
        ok train_rss_mpi_ranks
    else
        notok train_rss_mpi_ranks "exit $rc, rank 0 ${r0:-none} MiB, rank 1 ${r1:-none} MiB, limit $LIMIT_MIB MiB"
        tail -5 "$TMP/mpi.log" >&2
    fi
else
    skip train_rss_mpi_ranks "mpirun not installed (openmpi-bin)"
fi

echo "t_train_rss: $(( $(date +%s) - t0 )) s" >&2
rm -rf "$TMP"
