#!/bin/sh
# t_train_pipeline.sh - gambar-train fed by the real gambar-augment (on 512
# Fashion-MNIST images with flip/translate augmentation): the resume recipe
# of gambar-train(1) (--print-start-batch, then gambar-augment
# --start-batch K, then --resume) after a SIGKILL gives weights
# bit-identical to an uninterrupted run; the augmenter's u8 stream trains
# too.
. "$(dirname "$0")/lib.sh"
t0=$(date +%s)
if ! aug_mkdb "$FASHION/train" "$TMP/db" 512 2>"$TMP/mkdb.err"; then
    cat "$TMP/mkdb.err" >&2; notok pipeline_dataset; exit 0
fi
ok pipeline_dataset
S=40
AUG="gambar-augment --db $TMP/db --batch 16 --epochs 4 --seed 11 --ops flip,translate:2"
TR="gambar-train --model dcgan28 --width 8 --threads 1 --seed 6 --steps $S --log-every 1000"
run() { # CKPT-DIR EVERY START [trainer options...]
    d=$1; e=$2; k=$3; shift 3
    $AUG --out "ipc://$TMP/a.sock" --start-batch "$k" 2>>"$TMP/aug.log" &
    ap=$!
    $TR --in "ipc://$TMP/a.sock" --ckpt-dir "$d" --ckpt-every "$e" "$@" 2>>"$TMP/train.log" &
    tp=$!
}
finish() { wait $tp; rc=$?; kill $ap 2>/dev/null; wait $ap 2>/dev/null; }

run "$TMP/a" 10 0; finish
check pipeline_straight_exit0 test $rc -eq 0
check pipeline_straight_final test -f "$TMP/a/ckpt-0000000040.gck"

run "$TMP/b" 5 0
i=0; while [ $i -lt 400 ] && [ ! -e "$TMP/b/ckpt-0000000015.gck" ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $tp; wait $tp 2>/dev/null; kill $ap 2>/dev/null; wait $ap 2>/dev/null
k=$(gambar-train --print-start-batch --ckpt-dir "$TMP/b")
check pipeline_start_batch_after_kill test "$k" -ge 15 -a "$k" -lt 40
run "$TMP/b" 5 "$k" --resume; finish
check pipeline_resume_exit0 test $rc -eq 0
check pipeline_resume_no_drops sh -c "tail -n 3 '$TMP/train.log' | grep -q 'dropped messages: 0'"
check pipeline_resume_bit_exact ckpt_diff "$TMP/a/ckpt-0000000040.gck" "$TMP/b/ckpt-0000000040.gck"

$AUG --out "ipc://$TMP/a.sock" --dtype u8 2>>"$TMP/aug.log" &
ap=$!
gambar-train --model dcgan28 --width 8 --threads 1 --steps 8 --in "ipc://$TMP/a.sock" --ckpt-dir "$TMP/u8" \
    2>>"$TMP/train.log"; rc=$?
kill $ap 2>/dev/null; wait $ap 2>/dev/null
check pipeline_u8_trains test $rc -eq 0 -a -f "$TMP/u8/ckpt-0000000008.gck"

cat "$TMP/train.log" >&2
echo "t_train_pipeline: $(( $(date +%s) - t0 )) s" >&2
rm -rf "$TMP"
