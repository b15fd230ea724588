#!/bin/sh
# t_eval_follow.sh - gambar-eval --follow: a real gambar-train run announces
# checkpoints (CheckpointReady on its PUB socket); the evaluator evaluates
# them as they come, skips to the newest when it falls behind, and
# publishes Metric messages (stage "eval", step = the checkpoint's step)
# that a SUB tool receives. SIGTERM ends follow mode cleanly.
. "$(dirname "$0")/lib.sh"
E=gambar-eval
gambar-ingest -q --source "idx:$FASHION/train" --db "$TMP/tr" --limit 1000 2>"$TMP/ing.err"
$E --fit-features --db "$TMP/tr" --epochs 1 --out "$TMP/fn.gck" >/dev/null 2>"$TMP/fit.err"
check features_fitted test -f "$TMP/fn.gck"

$E --db "$TMP/tr" --features "$TMP/fn.gck" --follow "ipc://$TMP/tm.sock" --follow-count 2 --n 200 --mem-n 50 \
    --metrics "ipc://$TMP/em.sock" --run fr --json "$TMP/f.json" >"$TMP/f.out" 2>"$TMP/f.err" &
ep=$!
train_sub --in "ipc://$TMP/em.sock" --timeout-ms 60000 --count 200 >"$TMP/sub.out" 2>"$TMP/sub.err" &
subp=$!
i=0; while ! grep -q "following" "$TMP/f.err" && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
check follow_started grep -q "following" "$TMP/f.err"
gambar-train --model dcgan28 --width 8 --threads 1 --seed 4 --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/m" \
    --ckpt-every 10 --steps 30 --metrics "ipc://$TMP/tm.sock" 2>"$TMP/t.log" &
tp=$!
sleep 1 # let the evaluator's SUB socket join the trainer's PUB socket
batch_source --synthetic-count 256 --batch 16 --seed 9 --out "ipc://$TMP/s.sock" --batches 30 2>"$TMP/src.log" &
sp=$!
wait $tp; trc=$?
check train_exit0 test $trc -eq 0
wait $ep; erc=$?
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check follow_exit0 test $erc -eq 0
cat "$TMP/f.out" >&2
check follow_two_evaluations test "$(grep -c ' step ' "$TMP/f.out")" -eq 2
# the first evaluation takes longer than the rest of training: the second
# is the newest checkpoint (30), older announcements skipped
check follow_newest_last sh -c "tail -n 1 '$TMP/f.out' | grep -q 'ckpt-0000000030.gck step 30 '"
first=$(head -n 1 "$TMP/f.out" | sed 's/.* step \([0-9]*\) .*/\1/')
if [ "$first" != 30 ] && [ "$first" != 20 ]; then
    check follow_skipped_older grep -q "skipped" "$TMP/f.err"
fi
check follow_json_last_step python3 -c "import json,sys; sys.exit(0 if json.load(open('$TMP/f.json'))['step'] == 30 else 1)"
sleep 0.5
kill $subp 2>/dev/null; wait $subp 2>/dev/null
cat "$TMP/sub.out" >&2
check metric_fid_step30 grep -q "^metric fid 30 .* eval fr" "$TMP/sub.out"
check metric_recall_step30 grep -q "^metric recall 30 .* eval fr" "$TMP/sub.out"
check metric_near_copy grep -q "^metric near_copy_fraction 30 " "$TMP/sub.out"

# SIGTERM while waiting: clean exit 0
$E --db "$TMP/tr" --features "$TMP/fn.gck" --follow "ipc://$TMP/none.sock" 2>"$TMP/g.err" &
gp=$!
i=0; while ! grep -q "following" "$TMP/g.err" && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
kill -TERM $gp; wait $gp; grc=$?
check follow_sigterm_exit0 test $grc -eq 0
