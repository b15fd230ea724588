#!/bin/sh
# gambar-run end to end on pipelines/quick.ini with real data (3000
# Fashion-MNIST images, width-8 DCGAN-28, 186 steps):
#   A  straight run: exit 0, checkpoints load at the final step, samples
#      with provenance, logs, plan and pipeline copy in the run folder;
#   B  kill -9 of the trainer mid-run: restarted with --resume, the
#      augmenter restarted at the batch the trainer needs next; later kill
#      -9 of the augmenter: restarted (the trainer drops stale batches);
#      the run completes and the final checkpoint is bit-identical to A's;
#   C  Ctrl-C to gambar-run: exit 130, no stage alive, a valid checkpoint;
#      the same command on the same run folder then completes, bit-exact;
#   D  SIGKILL to gambar-run: no stage alive 2 s later;
#   E  pipelines/shards.ini: two augmenter replicas feed one trainer;
#   F  pipelines/fashion-text.ini made small with --set (1000 captioned
#      images, width 8, 1 epoch): synthetic captions -> ingest with
#      captions -> augment -> train --conditional text -> evaluation with
#      text-image agreement and the model card -> prompt grids; under 90 s.
. "$(dirname "$0")/lib.sh"
Q="$GAMBAR_ROOT/pipelines/quick.ini"
if [ ! -d "$FASHION" ]; then skip t_run_e2e "no $FASHION"; exit 0; fi

alive() { awk '{print $3}' "$1" 2>/dev/null | while read -r p; do kill -0 "$p" 2>/dev/null && echo "$p"; done; }
# wait_ckpt DIR: until a checkpoint at step >= 40 exists (60 s at most)
wait_ckpt() { i=0; while [ $i -lt 600 ]; do ls "$1"/ckpt-00000000[4-9]0.gck >/dev/null 2>&1 && return 0; sleep 0.1; i=$((i + 1)); done; return 1; }
last_ckpt() { ls "$1"/ckpt/ckpt-*.gck 2>/dev/null | tail -n 1; }

# --- A
t0=$(date +%s)
gambar-run "$Q" --run-dir "$TMP/a" >"$TMP/a.out" 2>"$TMP/a.err"; rc=$?
t1=$(date +%s)
echo "quick.ini took $((t1 - t0)) s" >&2
[ $rc -eq 0 ] && ok "A: quick.ini exits 0 ($((t1 - t0)) s)" || notok "A: quick.ini exits 0" "rc=$rc $(tail -20 "$TMP/a.err")"
[ $((t1 - t0)) -lt 180 ] && ok "A: under 3 minutes" || notok "A: under 3 minutes" "$((t1 - t0)) s"
A=$(last_ckpt "$TMP/a")
ckpt_diff --info "$A" >"$TMP/a.info" 2>&1 && grep -q "^step=186$" "$TMP/a.info" \
    && ok "A: final checkpoint loads, step 186" || notok "A: final checkpoint" "$A $(cat "$TMP/a.info")"
n=$(ls "$TMP/a/samples"/img-*.png 2>/dev/null | wc -l)
[ "$n" -eq 16 ] && [ -s "$TMP/a/samples/grid-1.png" ] && ok "A: 16 samples and a grid" || notok "A: samples" "n=$n"
gambar-sample --inspect "$TMP/a/samples/img-1.png" >"$TMP/insp" 2>&1 && grep -qi "trainedAlgorithmicMedia" "$TMP/insp" \
    && ok "A: samples carry provenance" || notok "A: samples carry provenance" "$(head -5 "$TMP/insp")"
for s in ingest augment train features final-eval sample; do
    [ -s "$TMP/a/logs/$s.log" ] || notok "A: logs/$s.log" "missing"
done
ok "A: logs for every stage"
grep -q "finished at step 186" "$TMP/a/logs/train.log" && grep -q "^train *| .*finished at step 186" "$TMP/a.err" \
    && ok "A: trainer output in its log and prefixed on the console" || notok "A: trainer output"
cmp -s "$Q" "$TMP/a/pipeline.ini" && grep -q "gambar-train --model dcgan28 --width 8" "$TMP/a/plan.txt" \
    && grep -q '"name":"augment"' "$TMP/a/plan.json" && ok "A: pipeline.ini, plan.txt, plan.json recorded" || notok "A: plan recorded"
[ "$(wc -l <"$TMP/a/pids")" -eq 8 ] && [ -z "$(alive "$TMP/a/pids")" ] && ok "A: pids recorded, none left" || notok "A: pids"
[ ! -s "$TMP/a.out" ] && ok "A: nothing on stdout" || notok "A: nothing on stdout"
[ -s "$A.card.md" ] && python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert 'fid' in json.dumps(j)" "$TMP/a/eval.json" \
    && ok "A: model card and eval.json for the final checkpoint" || notok "A: model card / eval.json" "$(ls "$TMP/a" "$TMP/a/ckpt")"

# --- B: kill -9 the trainer
gambar-run "$Q" --run-dir "$TMP/b" >"$TMP/b.out" 2>"$TMP/b.err" &
RUN=$!
wait_ckpt "$TMP/b/ckpt" || notok "B: first checkpoint" "$(tail "$TMP/b.err")"
TP=$(awk '$1=="train"{print $3}' "$TMP/b/pids" | head -1)
kill -KILL "$TP"
# then kill -9 the (restarted) augmenter once the trainer is past step 100
i=0; while [ $i -lt 600 ] && ! ls "$TMP/b/ckpt"/ckpt-00000001[0-4]0.gck >/dev/null 2>&1; do sleep 0.1; i=$((i + 1)); done
AP=$(awk '$1=="augment"{print $3}' "$TMP/b/pids" | tail -n 1)
kill -KILL "$AP" 2>/dev/null && ok "B: killed the augmenter too (pid $AP)" || notok "B: augmenter alive to kill"
wait $RUN; rc=$?
[ $rc -eq 0 ] && ok "B: run completes after kill -9 of the trainer" || notok "B: run completes" "rc=$rc $(tail -20 "$TMP/b.err")"
grep -q "job train: killed by signal 9" "$TMP/b.err" && grep -q "restarting train in 1 s" "$TMP/b.err" \
    && ok "B: crash seen, restart scheduled" || notok "B: crash messages" "$(grep gambar-run: "$TMP/b.err")"
grep -q "^--- gambar-run: start 2, .*gambar-train .*--resume" "$TMP/b/logs/train.log" && ok "B: trainer restarted with --resume" \
    || notok "B: trainer restarted with --resume" "$(grep '^---' "$TMP/b/logs/train.log")"
sb=$(grep "^--- gambar-run: start 2" "$TMP/b/logs/augment.log" | sed -n 's/.*--start-batch \([0-9]*\).*/\1/p')
[ -n "$sb" ] && [ "$sb" -ge 40 ] && ok "B: augmenter restarted at --start-batch $sb" || notok "B: augmenter --start-batch" "$(grep '^---' "$TMP/b/logs/augment.log")"
grep -q "service augment: killed by signal 9" "$TMP/b.err" && grep -q "augment: LMDB reader check of $TMP/b/db (mdb_stat -rr): [0-9]* stale readers cleared" "$TMP/b.err" \
    && [ "$(grep -c '^--- gambar-run: start' "$TMP/b/logs/augment.log")" -eq 3 ] \
    && ok "B: augmenter restarted after its crash, LMDB readers checked" || notok "B: augmenter crash" "$(grep gambar-run: "$TMP/b.err")"
B=$(last_ckpt "$TMP/b")
ckpt_diff "$A" "$B" >"$TMP/diff" 2>&1 && ok "B: final checkpoint bit-identical to the straight run" || notok "B: bit-exact" "$(head "$TMP/diff")"

# --- C: Ctrl-C, then resume the run folder
gambar-run "$Q" --run-dir "$TMP/c" >"$TMP/c.out" 2>"$TMP/c.err" &
RUN=$!
wait_ckpt "$TMP/c/ckpt" || notok "C: first checkpoint" "$(grep -v "^train\|^augment" "$TMP/c.err" | tail -20)"
kill -INT $RUN
wait $RUN; rc=$?
[ $rc -eq 130 ] && ok "C: Ctrl-C: exit 130" || notok "C: Ctrl-C: exit 130" "rc=$rc"
sleep 0.2
[ -z "$(alive "$TMP/c/pids")" ] && ok "C: Ctrl-C: no stage alive" || notok "C: orphans" "$(alive "$TMP/c/pids")"
grep -q "stopping train (SIGTERM" "$TMP/c.err" && ok "C: trainer stopped with SIGTERM" || notok "C: SIGTERM" "$(grep gambar-run: "$TMP/c.err")"
C=$(last_ckpt "$TMP/c")
ckpt_diff --info "$C" >/dev/null 2>&1 && ok "C: a valid checkpoint after Ctrl-C" || notok "C: valid checkpoint" "$C"
gambar-run "$Q" --run-dir "$TMP/c" >"$TMP/c2.out" 2>"$TMP/c2.err"; rc=$?
C=$(last_ckpt "$TMP/c")
[ $rc -eq 0 ] && ckpt_diff "$A" "$C" >"$TMP/diff" 2>&1 && ok "C: same command resumes the run folder, bit-exact" \
    || notok "C: resume run folder" "rc=$rc $(head "$TMP/diff") $(tail "$TMP/c2.err")"

# --- D: SIGKILL gambar-run
gambar-run "$Q" --run-dir "$TMP/d" >"$TMP/d.out" 2>"$TMP/d.err" &
RUN=$!
wait_ckpt "$TMP/d/ckpt" || notok "D: first checkpoint" "$(tail -20 "$TMP/d.err")"
[ "$(alive "$TMP/d/pids" | wc -l)" -ge 2 ] && ok "D: augment and train running" || notok "D: running"
kill -KILL $RUN; wait $RUN 2>/dev/null
sleep 2
[ -z "$(alive "$TMP/d/pids")" ] && ok "D: SIGKILL gambar-run: no stage alive 2 s later" || notok "D: orphans" "$(alive "$TMP/d/pids")"
for p in $(awk '{print $3}' "$TMP/d/pids"); do kill -0 -- "-$p" 2>/dev/null && notok "D: process group $p empty"; done
ok "D: process groups empty"

# --- E: two augmenter shards, one trainer
# (on a terminal, made by script(1), so the status line shows)
if command -v script >/dev/null 2>&1; then
    env -u NO_COLOR TERM=xterm script -qec "gambar-run '$GAMBAR_ROOT/pipelines/shards.ini' --run-dir '$TMP/e'" /dev/null \
        </dev/null >"$TMP/e.tty" 2>&1; rc=$?
    tr '\r' '\n' <"$TMP/e.tty" >"$TMP/e.err"
    grep -q "^.*\[step [0-9]* epoch [0-9] | [0-9]* img/s | loss_d " "$TMP/e.err" && ok "E: status line on a terminal" \
        || notok "E: status line on a terminal" "$(tail -5 "$TMP/e.err")"
else
    gambar-run "$GAMBAR_ROOT/pipelines/shards.ini" --run-dir "$TMP/e" >"$TMP/e.out" 2>"$TMP/e.err"; rc=$?
fi
grep -q "\[step " "$TMP/a.err" && notok "A: no status line without a terminal" || ok "A: no status line without a terminal"
[ $rc -eq 0 ] && ok "E: shards.ini exits 0" || notok "E: shards.ini" "rc=$rc $(tail "$TMP/e.err")"
grep -q -- "--shard 0/2 --out '\?>ipc://" "$TMP/e/logs/augment.0.log" && grep -q -- "--shard 1/2" "$TMP/e/logs/augment.1.log" \
    && grep -q "^augment.1 *| " "$TMP/e.err" && ok "E: replicas get \${replica}/\${replicas}, own logs and prefixes" || notok "E: replica logs"
grep -q -- "--in @ipc://" "$TMP/e/logs/train.log" && grep -q "finished at step 186" "$TMP/e/logs/train.log" \
    && grep -q "dropped messages: 0" "$TMP/e/logs/train.log" && ok "E: the trainer binds and gets every batch" || notok "E: trainer" "$(grep -v "info: step\|checkpoint /" "$TMP/e/logs/train.log")"

# --- F: the text-to-image pipeline, small
TXT="$GAMBAR_ROOT/pipelines/fashion-text.ini"
t0=$(date +%s)
gambar-run "$TXT" --run-dir "$TMP/f" --set vars.images=1000 --set vars.test_images=300 --set vars.epochs=1 \
    --set train.width=8 --set vars.threads=1 --set vars.eval_n=200 --set vars.follow_n=100 --set vars.text_pairs=50 \
    --set vars.feature_epochs=1 --set vars.ckpt_every=8 --set vars.dash_port=0 >"$TMP/f.out" 2>"$TMP/f.err"; rc=$?
t1=$(date +%s)
echo "fashion-text.ini (small) took $((t1 - t0)) s" >&2
[ $rc -eq 0 ] && ok "F: fashion-text.ini exits 0 ($((t1 - t0)) s)" || notok "F: fashion-text.ini exits 0" "rc=$rc $(grep gambar-run: "$TMP/f.err" | tail -20)"
[ $((t1 - t0)) -lt 90 ] && ok "F: under 90 s" || notok "F: under 90 s" "$((t1 - t0)) s"
head -1 "$TMP/f/captions/train-captions.txt" | grep -q "^# gambar synthetic Fashion-MNIST captions" \
    && [ -s "$TMP/f/captions/t10k-captions.txt" ] && ok "F: synthetic captions written" || notok "F: captions" "$(ls "$TMP/f/captions")"
grep -q "captions" "$TMP/f/logs/ingest.log" && grep -q -- "--conditional text" "$TMP/f/logs/train.log" \
    && grep -q "finished at step 15" "$TMP/f/logs/train.log" && grep -q "mismatched caption" "$TMP/f/logs/train.log" \
    && grep -q "auxiliary classifier on (weight 0.3), 10 classes" "$TMP/f/logs/train.log" \
    && grep -q "auxiliary classifier cross-entropy: real" "$TMP/f/logs/train.log" \
    && ok "F: ingest with captions, trainer text-conditional (GAN-CLS, auxiliary classifier)" || notok "F: train" "$(tail -5 "$TMP/f/logs/train.log")"
F=$(last_ckpt "$TMP/f")
python3 - "$TMP/f/eval.json" <<'PY' && ok "F: evaluation: text-image agreement of 200 held-out prompts" || notok "F: eval.json text"
import json, sys
t = json.load(open(sys.argv[1]))["text"]
assert t["prompts"] == 200 and t["captioned_examples"] == 300, t
assert "train-captions.txt" in t["thresholds_source"], t["thresholds_source"]
PY
grep -q "^## Text-image agreement" "$F.card.md" && grep -q "^| class | " "$F.card.md" \
    && ok "F: model card with the text-image agreement table" || notok "F: model card" "$F"
insp() { gambar-sample --inspect "$1" | sed -n "s/^$2: //p"; }
g=0
for d in dark-ankle-boot:"a dark ankle boot" light-ankle-boot:"a light ankle boot" narrow-shirt:"a narrow filled shirt" \
         wide-shirt:"a wide filled shirt"; do
    [ "$(insp "$TMP/f/samples/${d%%:*}/grid-1.png" gambar:prompt)" = "${d#*:}" ] && g=$((g + 1))
done
[ $g -eq 4 ] && [ "$(insp "$TMP/f/samples/dark-ankle-boot/grid-1.png" gambar:grid)" = "4x8" ] \
    && ok "F: a 4x8 grid per prompt, the prompt in its provenance" || notok "F: prompt grids" "$g of 4"
pix() { python3 "$GAMBAR_ROOT/tests/png_tool.py" rawhash "$1"; }
[ "$(pix "$TMP/f/samples/dark-ankle-boot/grid-1.png")" != "$(pix "$TMP/f/samples/light-ankle-boot/grid-1.png")" ] \
    && ok "F: another prompt, other pixels" || notok "F: dark and light grids are identical"
R="$TMP/f/samples/boot-to-sneaker/grid-interp-prompts-1.png"
[ "$(insp "$R" gambar:prompt_b)" = "a light narrow sneaker" ] && gambar-sample --reproduce "$R" --ckpt "$F" 2>/dev/null | grep -qx identical \
    && ok "F: a row between two prompts, reproducible" || notok "F: interpolate-prompts row" "$R"
grep -q '"type":"checkpoint"' "$TMP/f/metrics.jsonl" && ! grep -q "no sample grid" "$TMP/f/logs/dash.log" && ok "F: the dashboard's checkpoint grids are asked with a prompt" \
    || notok "F: dash grids" "$(grep "no sample grid" "$TMP/f/logs/dash.log" | head -3)"
rm -rf "$TMP"
