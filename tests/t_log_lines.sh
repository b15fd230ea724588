#!/bin/sh
# t_log_lines.sh - what the stages write when stderr is a file (a log, as
# under gambar-run or `make run > log`): whole lines only, no carriage
# return or terminal escape (progress bars are for terminals), and the
# figures of a line kept apart (the feature network's epoch line printed
# "train accuracy 0.85390.0000" without --test-db; the trainer's step line
# "|g_g| 22 286 img/s").
. "$(dirname "$0")/lib.sh"
unset NO_COLOR   # colour allowed: only the missing terminal keeps them off
gambar-ingest --source "idx:$FASHION/train" --db "$TMP/db" --limit 600 >"$TMP/ing.out" 2>"$TMP/ing.err"
gambar-eval --fit-features --db "$TMP/db" --epochs 1 --threads 1 --out "$TMP/fn.gck" >"$TMP/fit.out" 2>"$TMP/fit.err"
batch_source --synthetic-count 128 --batch 16 --seed 9 --batches 12 --out "ipc://$TMP/s.sock" 2>"$TMP/src.err" &
sp=$!
gambar-train --model dcgan28 --width 8 --threads 1 --seed 4 --steps 12 --log-every 4 --in "ipc://$TMP/s.sock" \
    --ckpt-dir "$TMP/ck" >"$TMP/tr.out" 2>"$TMP/tr.err"
kill $sp 2>/dev/null; wait $sp 2>/dev/null
cat "$TMP/ing.err" "$TMP/fit.err" "$TMP/tr.err" >"$TMP/all.log"
check log_has_lines test "$(wc -l <"$TMP/all.log")" -ge 5
check log_no_carriage_return sh -c "! grep -q \"$(printf '\r')\" '$TMP/all.log'"
check log_no_escape sh -c "! grep -q \"$(printf '\033')\" '$TMP/all.log'"
check log_ends_with_newline sh -c "for f in '$TMP/ing.err' '$TMP/fit.err' '$TMP/tr.err'; do
    [ -z \"\$(tail -c 1 \"\$f\")\" ] || exit 1; done"
# the epoch line: "train accuracy A (S s)" without a test set
check featnet_line_apart grep -Eq 'train accuracy [0-9]\.[0-9]{4} \([0-9.]+ s\)' "$TMP/fit.err"
check featnet_no_glued sh -c "! grep -Eq 'accuracy [0-9]\.[0-9]{4}[0-9]' '$TMP/fit.err'"
# the step line: "|g_g| X, N img/s"
check train_line_apart grep -Eq '\|g_g\| [^ ]+, [0-9]+ img/s' "$TMP/tr.err"
rm -rf "$TMP"
