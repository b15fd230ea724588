#!/bin/sh
# t_eval_follow.sh - gambar-eval --follow: a real gambar-train run announces
# checkpoints (CheckpointReady on its PUB socket); the evaluator evaluates
# them and publishes Metric messages (stage "eval", step = the checkpoint's
# step) that a SUB tool receives. Falling behind is made deterministic by
# stopping the evaluator (SIGSTOP) while the trainer writes all three
# checkpoints: once resumed it evaluates only the newest. A second run
# evaluates checkpoints one by one as they come. SIGTERM ends follow mode
# cleanly.
. "$(dirname "$0")/lib.sh"
E=gambar-eval
gambar-ingest -q --source "idx:$FASHION/train" --db "$TMP/tr" --limit 1000 2>"$TMP/ing.err"
$E --fit-features --db "$TMP/tr" --epochs 1 --out "$TMP/fn.gck" >/dev/null 2>"$TMP/fit.err"
check features_fitted test -f "$TMP/fn.gck"
TR="gambar-train --model dcgan28 --width 8 --threads 1 --seed 4 --ckpt-every 10 --steps 30"
SRC="batch_source --synthetic-count 256 --batch 16 --seed 9 --batches 30"
wait_for() { i=0; while ! grep -q "$1" "$2" && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done; }

# ---- behind: stopped while all three checkpoints are announced --------------
$TR --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/m" --metrics "ipc://$TMP/tm.sock" 2>"$TMP/t.log" &
tp=$!
$E --db "$TMP/tr" --features "$TMP/fn.gck" --follow "ipc://$TMP/tm.sock" --follow-count 1 --n 200 --mem-n 50 \
    --metrics "ipc://$TMP/em.sock" --run fr --json "$TMP/f.json" >"$TMP/f.out" 2>"$TMP/f.err" &
ep=$!
train_sub --in "ipc://$TMP/em.sock" --timeout-ms 60000 --count 200 >"$TMP/sub.out" 2>"$TMP/sub.err" &
subp=$!
wait_for following "$TMP/f.err"
check follow_started grep -q "following" "$TMP/f.err"
sleep 1 # SUB joins PUB
kill -STOP $ep
$SRC --out "ipc://$TMP/s.sock" 2>"$TMP/src.log" &
sp=$!
wait $tp; trc=$?
kill -CONT $ep
check train_exit0 test $trc -eq 0
wait $ep; erc=$?
kill $sp 2>/dev/null; wait $sp 2>/dev/null
cat "$TMP/f.out" >&2
check follow_exit0 test $erc -eq 0
check follow_one_evaluation test "$(grep -c ' step ' "$TMP/f.out")" -eq 1
check follow_newest_only grep -q 'ckpt-0000000030.gck step 30 ' "$TMP/f.out"
check follow_skipped_older grep -q "skipped 2 older" "$TMP/f.err"
check follow_json_step python3 -c "import json,sys; sys.exit(0 if json.load(open('$TMP/f.json'))['step'] == 30 else 1)"
sleep 0.5
kill $subp 2>/dev/null; wait $subp 2>/dev/null
check metric_fid_step30 grep -q "^metric fid 30 .* eval fr" "$TMP/sub.out"
check metric_recall_step30 grep -q "^metric recall 30 .* eval fr" "$TMP/sub.out"
check metric_near_copy grep -q "^metric near_copy_fraction 30 " "$TMP/sub.out"
# the bias audit per class, for the dashboard's class-share chart
check metric_class_share_per_class test "$(grep -c '^metric class_share 30 .* eval fr class=' "$TMP/sub.out")" -eq 10
check metric_class_share_train test "$(grep -c '^metric class_share_train 30 .* class=' "$TMP/sub.out")" -eq 10
check metric_class_share_sum awk '$2 == "class_share" { s += $5 } END { exit !(s > 0.999 && s < 1.001) }' "$TMP/sub.out"
check metric_only_step30 sh -c "! grep -q '^metric [a-z_]* [12]0 ' '$TMP/sub.out'"

# ---- keeping up: every checkpoint of a slow trainer --------------------------
$TR --in "ipc://$TMP/s2.sock" --ckpt-dir "$TMP/m2" --metrics "ipc://$TMP/tm2.sock" 2>"$TMP/t2.log" &
tp=$!
$E --db "$TMP/tr" --features "$TMP/fn.gck" --follow "ipc://$TMP/tm2.sock" --follow-count 3 --n 100 --mem-n 20 \
    >"$TMP/f2.out" 2>"$TMP/f2.err" &
ep=$!
wait_for following "$TMP/f2.err"
sleep 1
for b in 0 1 2; do   # ten batches, then wait for that checkpoint's evaluation
    batch_source --synthetic-count 256 --batch 16 --seed 9 --start-batch $((b * 10)) --batches 10 --no-eos \
        --out "ipc://$TMP/s2.sock" 2>>"$TMP/src2.log" &
    sp=$!
    wait_for "step $(((b + 1) * 10)) " "$TMP/f2.out"
    kill $sp 2>/dev/null; wait $sp 2>/dev/null
done
wait $ep; erc=$?
kill $tp 2>/dev/null; wait $tp 2>/dev/null
cat "$TMP/f2.out" >&2
check follow_each_exit0 test $erc -eq 0
check follow_each_steps test "$(sed -n 's/.* step \([0-9]*\) .*/\1/p' "$TMP/f2.out" | tr '\n' ' ')" = "10 20 30 "

# ---- SIGTERM while waiting: clean exit 0 -------------------------------------
$E --db "$TMP/tr" --features "$TMP/fn.gck" --follow "ipc://$TMP/none.sock" 2>"$TMP/g.err" &
gp=$!
wait_for following "$TMP/g.err"
kill -TERM $gp; wait $gp; grc=$?
check follow_sigterm_exit0 test $grc -eq 0
