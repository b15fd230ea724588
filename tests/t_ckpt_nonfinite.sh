#!/bin/sh
# t_ckpt_nonfinite.sh - a checkpoint whose checksum is valid but whose
# weights hold NaN/Inf (ckpt_tool poison) is refused, with exit 5 naming
# the tensor and the index of the first bad value, by every stage that
# loads a model: gambar-sample, gambar-eval, gambar-train --resume and
# gambar-train --init-from. Nothing is written from it.
. "$(dirname "$0")/lib.sh"

CK=$(mkckpt "$TMP/ck" --steps 0 --seed 2)
P=$(ckpt_tool poison "$CK" "$TMP/bad" EMA.G.net_0.weight 17)
check "poisoned checkpoint still loads (valid checksum)" sh -c "ckpt_tool dump '$P' >/dev/null"

# --- sampler ---
check_exit "sample: exit 5" 5 gambar-sample --ckpt "$P" --n 2 --seed 1 --out "$TMP/imgs"
check "sample: names the tensor and the index" grep -q "tensor EMA.G.net_0.weight holds a non-finite value (NaN) at index 17" "$TMP/err"
check "sample: no image written" sh -c "! ls '$TMP/imgs'/*.png >/dev/null 2>&1"

# --- evaluator (Inf this time, in D: every tensor is checked) ---
P2=$(ckpt_tool poison "$CK" "$TMP/bad2" D.net_3.bias 5 inf)
gambar-ingest -q --source "idx:$FASHION/t10k" --db "$TMP/db" --limit 200 2>/dev/null
check_exit "eval: exit 5" 5 gambar-eval --db "$TMP/db" --ckpt "$P2" --n 100 --epochs 1 --json "$TMP/ev.json"
check "eval: names the tensor and the index" grep -q "tensor D.net_3.bias holds a non-finite value (+Inf) at index 5" "$TMP/err"
check "eval: no json written" test ! -e "$TMP/ev.json"

# --- trainer: a real training checkpoint, poisoned ---
B=16
SRC="batch_source --synthetic-count 64 --batch $B --epochs 4 --seed 7"
TR="gambar-train --model dcgan28 --width 8 --threads 1 --seed 3 --log-every 1000"
$SRC --out "ipc://$TMP/s.sock" 2>>"$TMP/src.log" &
sp=$!
$TR --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/run" --ckpt-every 4 --steps 4 2>"$TMP/train.log"
check "trainer: a checkpoint to poison" test -f "$TMP/run/ckpt-0000000004.gck"
kill $sp 2>/dev/null; wait $sp 2>/dev/null
P3=$(ckpt_tool poison "$TMP/run/ckpt-0000000004.gck" "$TMP/runbad" G.net_4.weight 3)
check_exit "train --resume: exit 5" 5 timeout 60 $TR --in "ipc://$TMP/s2.sock" --ckpt-dir "$TMP/runbad" --steps 8 --resume
check "train --resume: names the file, tensor and index" \
    grep -q "runbad/ckpt-0000000004.gck: tensor G.net_4.weight holds a non-finite value (NaN) at index 3" "$TMP/err"
check "train --resume: did not start over" test ! -e "$TMP/runbad/ckpt-0000000008.gck"

$SRC --out "ipc://$TMP/s3.sock" 2>>"$TMP/src.log" &
sp=$!
check_exit "train --init-from: exit 5" 5 timeout 60 $TR --in "ipc://$TMP/s3.sock" --ckpt-dir "$TMP/ft" --steps 4 --init-from "$P3"
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check "train --init-from: names the tensor and the index" \
    grep -q "tensor G.net_4.weight holds a non-finite value (NaN) at index 3" "$TMP/err"
check "train --init-from: no checkpoint written" sh -c "! ls '$TMP/ft'/ckpt-*.gck >/dev/null 2>&1"
rm -rf "$TMP"
