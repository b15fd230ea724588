#!/bin/sh
# t_train_bad.sh - gambar-train against bad input and bad numbers:
#   - garbage interleaved with good batches (every kind batch_source
#     knows: frames, type, undecodable, shape, dtype, sizes, dataset,
#     NaN pixels, labels) is counted per kind and does not change training
#     (bit-identical to a clean run);
#   - a stream of the wrong image size: nothing usable, exit 3;
#   - NaN/Inf in training (huge --lr-d): exit 5 naming the step, no
#     checkpoint with non-finite values, the last good one still resumes;
#   - --init-from: ok (parent digest recorded, step 0, fresh optimiser),
#     shape mismatch exit 3, missing file exit 4.
. "$(dirname "$0")/lib.sh"
B=16
SRC="batch_source --synthetic-count 256 --batch $B --seed 5"
TR="gambar-train --model dcgan28 --width 8 --threads 1 --seed 2 --log-every 1000"
t0=$(date +%s)

# run SRC-ARGS -- TRAIN-ARGS: a producer and a trainer; trainer's status in rc
pair() {
    sargs=""
    while [ "$1" != "--" ]; do sargs="$sargs $1"; shift; done; shift
    $SRC --out "ipc://$TMP/s.sock" $sargs 2>>"$TMP/src.log" &
    sp=$!
    $TR --in "ipc://$TMP/s.sock" "$@" 2>"$TMP/train.log"
    rc=$?
    kill $sp 2>/dev/null; wait $sp 2>/dev/null
    cat "$TMP/train.log" >&2
}
info() { ckpt_diff --info "$1" | sed -n "s/^$2=//p"; }

# --- garbage interleaved: each of the 10 kinds 3 times over 30 batches ---
pair --batches 30 -- --ckpt-dir "$TMP/clean" --ckpt-every 100
check clean_run_exit0 test $rc -eq 0
pair --batches 30 --garbage 1 -- --ckpt-dir "$TMP/dirty" --ckpt-every 100 --metrics "ipc://$TMP/m.sock"
check garbage_run_exit0 test $rc -eq 0
check garbage_trained_all test -f "$TMP/dirty/ckpt-0000000030.gck"
line=$(grep 'dropped messages:' "$TMP/train.log")
echo "$line" >&2
for kv in bad_frames=6 wrong_type=3 undecodable=3 wrong_shape=3 wrong_dtype=3 wrong_sizes=3 \
          other_dataset=3 bad_pixels=3 bad_labels=3; do
    check "garbage_counted_$kv" sh -c "echo '$line' | grep -q ' $kv '"
done
check garbage_total_30 sh -c "echo '$line' | grep -q 'dropped messages: 30 '"
check garbage_no_stale sh -c "! echo '$line' | grep -q stale"
check garbage_logs_rate_limited test "$(grep -c 'dropped' "$TMP/train.log")" -le 40
check garbage_does_not_change_training ckpt_diff "$TMP/clean/ckpt-0000000030.gck" "$TMP/dirty/ckpt-0000000030.gck"

# --- u8 pixels train too (and differently from f32 only by rounding) ---
pair --batches 4 --dtype u8 -- --ckpt-dir "$TMP/u8" --ckpt-every 100
check u8_batches_train test -f "$TMP/u8/ckpt-0000000004.gck"
check auto_conditional_on_labelled_data test "$(info "$TMP/u8/ckpt-0000000004.gck" conditional)" = 1
pair --batches 2 -- --ckpt-dir "$TMP/uncond" --conditional no
check conditional_no_unconditional test "$(info "$TMP/uncond/ckpt-0000000002.gck" conditional)" = 0

# --- a stream the model cannot use at all: exit 3, no checkpoint ---
pair --batches 3 -- --ckpt-dir "$TMP/wrongsize" --model dcgan32
check wrong_size_stream_exit3 test $rc -eq 3
check wrong_size_reason grep -q 'needs 1 or 3 x 32x32' "$TMP/train.log"
check wrong_size_no_ckpt test ! -e "$TMP/wrongsize/ckpt-0000000003.gck"

# --- a resumed run fed another dataset: nothing usable, exit 3 ---
pair --start-batch 30 --batches 3 --digest 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff -- \
    --ckpt-dir "$TMP/clean" --resume --steps 40
check other_dataset_on_resume_exit3 test $rc -eq 3
check other_dataset_on_resume_reason grep -q 'other_dataset' "$TMP/train.log"

# --- NaN/Inf: 4 good steps, then resume with a huge D learning rate ---
pair --batches 4 -- --ckpt-dir "$TMP/nan" --ckpt-every 2
check nan_setup_ok test $rc -eq 0
pair --start-batch 4 --batches 20 -- --ckpt-dir "$TMP/nan" --ckpt-every 1 --resume --lr-d 1e30 --lr-g 1e30
check nan_exit5 test $rc -eq 5
check nan_names_step grep -q 'numeric failure at step [0-9]' "$TMP/train.log"
check nan_names_last_good grep -q 'Last good checkpoint: .*ckpt-' "$TMP/train.log"
bad=0
for f in "$TMP"/nan/ckpt-*.gck; do ckpt_diff --info "$f" >/dev/null 2>&1 || bad=1; done
check nan_checkpoints_all_valid test $bad -eq 0
# a checkpoint written after the blow-up would hold lr 1e30 and huge weights;
# the newest one must still resume and train normally
last=$(ls "$TMP/nan" | grep '^ckpt-' | tail -n 1)
step=$(grep -o 'numeric failure at step [0-9]*' "$TMP/train.log" | grep -o '[0-9]*$')
lstep=$(info "$TMP/nan/$last" step)
check nan_no_ckpt_at_or_after_failure test "$lstep" -lt "$step"
k=$(gambar-train --print-start-batch --ckpt-dir "$TMP/nan")
pair --start-batch "$k" --batches 8 -- --ckpt-dir "$TMP/nan" --resume --steps 8 --lr-d 2e-4 --lr-g 2e-4
check nan_last_good_resumes test $rc -eq 0

# --- init-from ---
pair --batches 6 -- --ckpt-dir "$TMP/child" --init-from "$TMP/clean/ckpt-0000000030.gck" --ckpt-every 100
check init_from_exit0 test $rc -eq 0
pd=$(info "$TMP/child/ckpt-0000000006.gck" parent_digest)
check init_from_parent_digest test "$pd" = "$(sha256sum "$TMP/clean/ckpt-0000000030.gck" | cut -d' ' -f1)"
check init_from_step_from_zero test "$(info "$TMP/child/ckpt-0000000006.gck" adam_d_t)" = 6
# --resume --init-from: resumes when there is a checkpoint (parent kept) ...
pair --start-batch 6 --batches 2 -- --ckpt-dir "$TMP/child" --resume --init-from "$TMP/junk-not-read.gck" --steps 8
check resume_init_from_resumes test $rc -eq 0 -a -f "$TMP/child/ckpt-0000000008.gck"
check resume_init_from_keeps_parent test "$(info "$TMP/child/ckpt-0000000008.gck" parent_digest)" = "$pd"
# ... and starts from the parent when there is none
pair --batches 2 -- --ckpt-dir "$TMP/child6" --resume --init-from "$TMP/clean/ckpt-0000000030.gck" --steps 2
check resume_init_from_fresh_dir test "$(info "$TMP/child6/ckpt-0000000002.gck" parent_digest)" = "$pd"
pair --batches 2 -- --ckpt-dir "$TMP/child2" --init-from "$TMP/clean/ckpt-0000000030.gck" --width 16
check init_from_width_mismatch_exit3 test $rc -eq 3
check init_from_mismatch_message grep -q 'init-from.*width 8/8.*width 16/16' "$TMP/train.log"
pair --batches 2 -- --ckpt-dir "$TMP/child3" --init-from "$TMP/clean/ckpt-0000000030.gck" --conditional no
check init_from_conditional_mismatch_exit3 test $rc -eq 3
pair --batches 2 -- --ckpt-dir "$TMP/child4" --init-from "$TMP/nonexistent.gck"
check init_from_missing_exit4 test $rc -eq 4
printf 'GAMBARCK garbage' >"$TMP/junk.gck"
pair --batches 2 -- --ckpt-dir "$TMP/child5" --init-from "$TMP/junk.gck"
check init_from_corrupt_exit3 test $rc -eq 3

echo "t_train_bad: $(( $(date +%s) - t0 )) s" >&2
rm -rf "$TMP"
