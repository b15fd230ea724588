#!/bin/sh
# t_train_resume.sh - gambar-train's headline feature: an interrupted and
# resumed run ends with weights bit-identical to an uninterrupted one.
#   - straight run of S steps vs. SIGKILL after a checkpoint + --resume;
#   - SIGKILL at random moments, three times in a row, then resume;
#   - resume with the producer restarted at 0 instead of the printed start
#     batch: the trainer drops the stale batches and is still bit-exact;
#   - SIGTERM: finishes the step, writes a checkpoint, exits 0, resumable;
#   - a corrupt newest checkpoint is skipped by --resume.
. "$(dirname "$0")/lib.sh"
S=48          # total steps
B=16          # batch size
SRC="batch_source --synthetic-count 256 --batch $B --epochs 10 --seed 7"
TR="gambar-train --model dcgan28 --width 8 --threads 1 --seed 3 --log-every 1000"

# straight: one run of S steps
run_straight() { # DIR EVERY
    $SRC --out "ipc://$TMP/s.sock" 2>>"$TMP/src.log" &
    sp=$!
    $TR --in "ipc://$TMP/s.sock" --ckpt-dir "$1" --ckpt-every "$2" --steps $S 2>>"$TMP/train.log"
    rc=$?
    kill $sp 2>/dev/null; wait $sp 2>/dev/null
    return $rc
}
# wait until DIR has a checkpoint of step >= N (max ~20 s)
wait_ckpt() {
    i=0
    while [ $i -lt 400 ]; do
        for f in "$1"/ckpt-*.gck; do
            [ -e "$f" ] || continue
            s=$(basename "$f" .gck); s=${s#ckpt-}; s=$(expr "$s" + 0)
            [ "$s" -ge "$2" ] && return 0
        done
        sleep 0.05; i=$((i + 1))
    done
    return 1
}
# start a producer at the trainer's start batch and a trainer with --resume
# in the background: sets sp, tp
start_resumed() { # DIR EVERY [START]
    k=${3:-$(gambar-train --print-start-batch --ckpt-dir "$1")}
    $SRC --out "ipc://$TMP/s.sock" --start-batch "$k" 2>>"$TMP/src.log" &
    sp=$!
    $TR --in "ipc://$TMP/s.sock" --ckpt-dir "$1" --ckpt-every "$2" --steps $S --resume 2>>"$TMP/train.log" &
    tp=$!
}

t0=$(date +%s)
check straight_run_exit0 run_straight "$TMP/a" 8
check straight_final_ckpt test -f "$TMP/a/ckpt-0000000048.gck"

# --- SIGKILL after a checkpoint at S/2, then resume ---
start_resumed "$TMP/b" 8 0
if wait_ckpt "$TMP/b" 24; then ok kill_run_reached_half; else notok kill_run_reached_half; fi
kill -9 $tp; wait $tp 2>/dev/null; kill $sp 2>/dev/null; wait $sp 2>/dev/null
k=$(gambar-train --print-start-batch --ckpt-dir "$TMP/b")
check print_start_batch_after_kill test "$k" -ge 24
start_resumed "$TMP/b" 8
wait $tp; rc=$?
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check resume_after_kill_exit0 test $rc -eq 0
check resume_really_resumed grep -q "resuming from .*: step \(2[4-9]\|[34][0-9]\)," "$TMP/train.log"
check_exit ckpt_diff_sees_differences 1 ckpt_diff "$TMP/a/ckpt-0000000040.gck" "$TMP/a/ckpt-0000000048.gck"
check resume_bit_exact ckpt_diff "$TMP/a/ckpt-0000000048.gck" "$TMP/b/ckpt-0000000048.gck"

# --- SIGKILL at random moments (possibly mid-checkpoint), three times ---
cat "$TMP/train.log" >&2; : >"$TMP/train.log"
for round in 1 2 3; do
    start_resumed "$TMP/c" 4
    # the first round lets a checkpoint happen (slow sanitizer builds too)
    [ $round = 1 ] && wait_ckpt "$TMP/c" 4
    sleep "0.$(awk -v s=$round 'BEGIN{srand(s*7919+'"$$"'); printf "%d", 2 + rand()*7}')"
    kill -9 $tp 2>/dev/null; wait $tp 2>/dev/null
    kill $sp 2>/dev/null; wait $sp 2>/dev/null
done
ls "$TMP/c" >"$TMP/c.ls" 2>&1
start_resumed "$TMP/c" 4
wait $tp; rc=$?
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check random_kills_resume_exit0 test $rc -eq 0
n=$(grep -c "resuming from .*: step [1-9]" "$TMP/train.log")
check random_kills_resumed_midway test "$n" -ge 1
check random_kills_bit_exact ckpt_diff "$TMP/a/ckpt-0000000048.gck" "$TMP/c/ckpt-0000000048.gck"

# --- resume with the producer started at 0: stale batches are dropped ---
cat "$TMP/train.log" >&2; : >"$TMP/train.log"
start_resumed "$TMP/d" 8 0
wait_ckpt "$TMP/d" 16
kill -9 $tp; wait $tp 2>/dev/null; kill $sp 2>/dev/null; wait $sp 2>/dev/null
: >"$TMP/train.log"
start_resumed "$TMP/d" 8 0
wait $tp; rc=$?
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check stale_start_exit0 test $rc -eq 0
check stale_batches_counted grep -q 'dropped messages: [1-9].*stale_seq=' "$TMP/train.log"
check stale_start_bit_exact ckpt_diff "$TMP/a/ckpt-0000000048.gck" "$TMP/d/ckpt-0000000048.gck"

# --- SIGTERM: checkpoint at the current step, exit 0, then resume ---
# The producer sends 20 batches and no EndOfStream, so the trainer is
# certainly mid-run (waiting for batch 20) when the signal comes.
cat "$TMP/train.log" >&2; : >"$TMP/train.log"
$SRC --out "ipc://$TMP/s.sock" --batches 20 --no-eos 2>>"$TMP/src.log" &
sp=$!
$TR --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/e" --ckpt-every 1000 --steps $S --log-every 1 2>>"$TMP/train.log" &
tp=$!
i=0; while [ $i -lt 400 ] && ! grep -q ' step 20 epoch' "$TMP/train.log"; do sleep 0.05; i=$((i + 1)); done
sleep 0.3
kill -TERM $tp; wait $tp; rc=$?
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check sigterm_exit0 test $rc -eq 0
check sigterm_checkpoint_at_step20 test -f "$TMP/e/ckpt-0000000020.gck"
check sigterm_logged grep -q "stop requested (signal 15)" "$TMP/train.log"
start_resumed "$TMP/e" 1000
wait $tp; rc=$?
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check sigterm_resume_bit_exact ckpt_diff "$TMP/a/ckpt-0000000048.gck" "$TMP/e/ckpt-0000000048.gck"

# --- corrupt newest checkpoint: --resume falls back to the previous one ---
mkdir -p "$TMP/f"
cp "$TMP/a/ckpt-0000000032.gck" "$TMP/a/ckpt-0000000040.gck" "$TMP/f/"
# flip one payload byte of the newest
python3 - "$TMP/f/ckpt-0000000040.gck" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 0xff; open(p, 'wb').write(b)
PY
k=$(gambar-train --print-start-batch --ckpt-dir "$TMP/f" 2>"$TMP/f.err")
check corrupt_newest_skipped_by_print test "$k" = 32
: >"$TMP/train.log"
start_resumed "$TMP/f" 8
wait $tp; rc=$?
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check corrupt_resume_exit0 test $rc -eq 0
check corrupt_resume_warned grep -q 'ckpt-0000000040.gck' "$TMP/train.log"
check corrupt_resume_bit_exact ckpt_diff "$TMP/a/ckpt-0000000048.gck" "$TMP/f/ckpt-0000000048.gck"

# --- --threads 2 (OpenBLAS threads): stop at 12 steps, resume to 24 ---
T2="gambar-train --model dcgan28 --width 8 --threads 2 --seed 3 --log-every 1000"
$SRC --out "ipc://$TMP/s.sock" --batches 24 2>>"$TMP/src.log" &
sp=$!
$T2 --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/g1" --steps 24 2>>"$TMP/train.log"
kill $sp 2>/dev/null; wait $sp 2>/dev/null
$SRC --out "ipc://$TMP/s.sock" --batches 12 2>>"$TMP/src.log" &
sp=$!
$T2 --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/g2" --steps 12 2>>"$TMP/train.log"
kill $sp 2>/dev/null; wait $sp 2>/dev/null
$SRC --out "ipc://$TMP/s.sock" --start-batch 12 --batches 12 2>>"$TMP/src.log" &
sp=$!
$T2 --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/g2" --steps 24 --resume 2>>"$TMP/train.log"
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check threads2_resume_bit_exact ckpt_diff "$TMP/g1/ckpt-0000000024.gck" "$TMP/g2/ckpt-0000000024.gck"

cat "$TMP/train.log" >&2
echo "t_train_resume: $(( $(date +%s) - t0 )) s" >&2
rm -rf "$TMP"
