#!/bin/sh
# t_train_mpi.sh - gambar-train under mpirun (issue 11): with the same
# --micro-batches M and --threads per rank, N = 1 (plain and under mpirun),
# 2 and 4 ranks give bit-identical checkpoints; a run stopped at N = 2 and
# resumed at N = 4 too; a rank killed with SIGKILL ends the job in bounded
# time with a non-zero exit, and --resume on one process finishes it,
# still bit-identical. Another M gives another model (the comparison can
# fail).
. "$(dirname "$0")/lib.sh"
if ! command -v mpirun >/dev/null 2>&1; then
    skip train_mpi "mpirun not installed (openmpi-bin)"
    exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# one machine, loopback only; no shared-memory transport surprises in containers
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_btl=self,tcp
S=24
B=16
M=4
SRC="batch_source --synthetic-count 256 --batch $B --epochs 10 --seed 7"
TR="gambar-train --model dcgan28 --width 8 --threads 1 --seed 3 --log-every 1000"
n=0

# run NP DIR [extra trainer args]: NP 0 = plain gambar-train; the producer
# starts at the trainer's start batch
run() {
    np=$1 dir=$2
    shift 2
    n=$((n + 1))
    k=$(gambar-train --print-start-batch --ckpt-dir "$dir")
    $SRC --out "ipc://$TMP/s$n.sock" --start-batch "$k" 2>>"$TMP/src.log" &
    sp=$!
    if [ "$np" = 0 ]; then pre=""; else pre="mpirun --oversubscribe -np $np"; fi
    timeout 300 $pre $TR --in "ipc://$TMP/s$n.sock" --ckpt-dir "$dir" --ckpt-every 4 "$@" 2>>"$TMP/train.log"
    rc=$?
    kill $sp 2>/dev/null
    wait $sp 2>/dev/null
    return $rc
}
final() { echo "$1/ckpt-00000000$S.gck"; }

check plain_m4_exit0 run 0 "$TMP/a" --micro-batches $M --steps $S
check mpi_np1_exit0 run 1 "$TMP/b" --micro-batches $M --steps $S
check mpi_np2_exit0 run 2 "$TMP/c" --micro-batches $M --steps $S
check mpi_np4_exit0 run 4 "$TMP/d" --micro-batches $M --steps $S
check mpi_np1_bit_identical ckpt_diff "$(final "$TMP/a")" "$(final "$TMP/b")"
check mpi_np2_bit_identical ckpt_diff "$(final "$TMP/a")" "$(final "$TMP/c")"
check mpi_np4_bit_identical ckpt_diff "$(final "$TMP/a")" "$(final "$TMP/d")"
check rank0_logs_comm_time grep -q "MPI: 4 ranks, --micro-batches 4: .* ms per step in MPI calls" "$TMP/train.log"
# the comparison can fail: M = 1 is another model
check plain_m1_exit0 run 0 "$TMP/e" --steps $S
check_exit other_m_differs 1 ckpt_diff "$(final "$TMP/a")" "$(final "$TMP/e")"
# 3 ranks do not divide M = 4: usage error
check_exit np3_not_dividing_m 2 mpirun --oversubscribe -np 3 $TR --in "ipc://$TMP/none.sock" \
    --ckpt-dir "$TMP/x" --micro-batches $M --steps 1
# --resume of an empty folder is a new run with M = 1, which 2 ranks do not divide
check_exit resume_empty_np2_m1_refused 2 mpirun --oversubscribe -np 2 $TR --in "ipc://$TMP/none.sock" \
    --ckpt-dir "$TMP/y" --resume --steps 1

# stop at N = 2 after 12 steps, resume at N = 4
check resume_part1_np2 run 2 "$TMP/f" --micro-batches $M --steps 12
check resume_part2_np4 run 4 "$TMP/f" --steps $S --resume
check resume_np2_to_np4_bit_identical ckpt_diff "$(final "$TMP/a")" "$(final "$TMP/f")"
check_exit resume_other_m_refused 3 run 0 "$TMP/f" --micro-batches 2 --steps 30 --resume

# a dead rank: 10 batches and no EndOfStream, so rank 0 waits in its
# receive and rank 1 in MPI_Bcast when rank 1 is killed
: >"$TMP/g.log"
$SRC --out "ipc://$TMP/g.sock" --batches 10 --no-eos 2>>"$TMP/src.log" &
sp=$!
mpirun --oversubscribe -np 2 $TR --in "ipc://$TMP/g.sock" --ckpt-dir "$TMP/g" --ckpt-every 4 \
    --micro-batches $M --steps $S 2>"$TMP/g.log" &
mp=$!
i=0
while [ $i -lt 600 ] && ! grep -q "ckpt-0000000008" "$TMP/g.log"; do sleep 0.1; i=$((i + 1)); done
pid1=$(sed -n 's/.*MPI rank 1 of 2 on .*, pid \([0-9]*\).*/\1/p' "$TMP/g.log" | head -1)
t0=$(date +%s)
[ -n "$pid1" ] && kill -9 "$pid1"
# bounded: mpirun must end the job by itself (the watchdog only guards the test)
( sleep 60; kill -9 $mp 2>/dev/null ) &
wd=$!
wait $mp
rc=$?
t1=$(date +%s)
kill $wd 2>/dev/null
kill $sp 2>/dev/null
wait $sp 2>/dev/null
check dead_rank_found test -n "$pid1"
check dead_rank_nonzero_exit test "$rc" -ne 0
check dead_rank_ends_within_30s test $((t1 - t0)) -le 30
check dead_rank_message grep -qi "rank 1\|exited on signal\|killed" "$TMP/g.log"
check dead_rank_ckpt_intact ckpt_diff "$TMP/g/ckpt-0000000008.gck" "$TMP/a/ckpt-0000000008.gck"
check dead_rank_resume_plain run 0 "$TMP/g" --steps $S --resume
check dead_rank_resume_bit_identical ckpt_diff "$(final "$TMP/a")" "$(final "$TMP/g")"
cat "$TMP/g.log" >&2
