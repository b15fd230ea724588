#!/bin/sh
# t_train.sh - gambar-train's command line, metrics and stream handling:
#   --help/--version, usage errors (exit 2), --print-start-batch on an
#   empty folder; Metric and CheckpointReady really published on the PUB
#   socket (received by a SUB tool, digests checked against the files);
#   --epochs; --keep; two sharded producers into a bound PULL socket
#   (--producers 2, reorder window) train bit-identically to one producer.
. "$(dirname "$0")/lib.sh"
B=16
SRC="batch_source --synthetic-count 256 --batch $B --seed 9"
TR="gambar-train --model dcgan28 --width 8 --threads 1 --seed 4"
t0=$(date +%s)

# --- command line ---
check_exit help_exit0 0 gambar-train --help
check help_on_stdout grep -q 'Usage: gambar-train' "$TMP/out"
check help_mentions_resume grep -q -- '--print-start-batch' "$TMP/out"
check_exit version_exit0 0 gambar-train --version
check version_on_stdout grep -q 'gambar-train (gambar) ' "$TMP/out"
check_exit unknown_option_exit2 2 gambar-train --bogus
check_exit no_ckpt_dir_exit2 2 gambar-train --in ipc://x --model dcgan28
check_exit no_in_exit2 2 gambar-train --ckpt-dir "$TMP/x" --model dcgan28
check_exit bad_steps_exit2 2 gambar-train --in ipc://x --model dcgan28 --ckpt-dir "$TMP/x" --steps ten
check_exit bad_model_exit2 2 gambar-train --in ipc://x --model dcgan99 --ckpt-dir "$TMP/x"
check bad_model_says_why grep -q "dcgan99" "$TMP/err"
check_exit bad_loss_exit2 2 gambar-train --in ipc://x --model dcgan28 --ckpt-dir "$TMP/x" --loss l2
check_exit bad_conditional_exit2 2 gambar-train --in ipc://x --model dcgan28 --ckpt-dir "$TMP/x" --conditional maybe
check_exit bad_embed_dim_exit2 2 gambar-train --in ipc://x --model dcgan28 --ckpt-dir "$TMP/x" --embed-dim 0
check_exit bad_lr_exit2 2 gambar-train --in ipc://x --model dcgan28 --ckpt-dir "$TMP/x" --lr-d -1
check_exit new_run_needs_model_exit2 2 gambar-train --in ipc://x --ckpt-dir "$TMP/x"
check_exit extra_argument_exit2 2 gambar-train --in ipc://x --model dcgan28 --ckpt-dir "$TMP/x" extra
check_exit print_start_empty_exit0 0 gambar-train --print-start-batch --ckpt-dir "$TMP/none"
check print_start_empty_is_0 test "$(cat "$TMP/out")" = 0
check_exit bad_endpoint_exit6 6 gambar-train --in "@nonsense://x" --model dcgan28 --ckpt-dir "$TMP/x"

# --- metrics and CheckpointReady on the PUB socket ---
# The trainer waits for data; the subscriber joins; only then the data
# flows, so no message is lost to the PUB/SUB join delay.
$TR --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/m" --ckpt-every 10 --log-every 5 --steps 20 --keep 1 \
    --metrics "ipc://$TMP/m.sock" --run testrun 2>"$TMP/m.log" &
tp=$!
train_sub --in "ipc://$TMP/m.sock" --until-ckpt-step 20 --timeout-ms 20000 >"$TMP/sub.out" 2>"$TMP/sub.err" &
subp=$!
sleep 0.5
$SRC --out "ipc://$TMP/s.sock" --batches 20 2>>"$TMP/src.log" &
sp=$!
wait $tp; rc=$?
wait $subp; subrc=$?
kill $sp 2>/dev/null; wait $sp 2>/dev/null
cat "$TMP/sub.out" >&2
check metrics_run_exit0 test $rc -eq 0
check metrics_sub_received test $subrc -eq 0
for name in loss_d loss_g d_real d_fake grad_norm_d grad_norm_g images_per_second dropped_messages_total; do
    check "metric_$name" grep -q "^metric $name 5 0 .* train testrun" "$TMP/sub.out"
done
check metric_step_10 grep -q '^metric loss_d 10 ' "$TMP/sub.out"
check metric_values_finite sh -c "! grep -qi 'nan\|inf' '$TMP/sub.out'"
n=0
for s in 10 20; do
    line=$(grep "^ckpt $s " "$TMP/sub.out")
    p=$(echo "$line" | cut -d' ' -f4); d=$(echo "$line" | cut -d' ' -f5)
    if [ "$s" = 20 ] && [ -f "$p" ] && [ "$(sha256sum "$p" | cut -d' ' -f1)" = "$d" ]; then n=$((n + 1)); fi
    if [ "$s" = 10 ] && [ -n "$d" ]; then n=$((n + 1)); fi
done
check checkpoint_ready_both_with_digest test $n -eq 2
check keep_1_prunes test "$(ls "$TMP/m" | grep -c '^ckpt-.*gck$')" -eq 1

# --- a new run refuses a folder that holds another run's checkpoints ---
check_exit new_run_in_used_dir_exit2 2 $TR --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/m"
check new_run_in_used_dir_says_resume grep -q 'already holds checkpoints: use --resume' "$TMP/err"

# --- --epochs: 256 images / 16 = 16 batches per epoch ---
$SRC --out "ipc://$TMP/s.sock" --epochs 3 2>>"$TMP/src.log" &
sp=$!
$TR --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/ep" --epochs 2 --log-every 1000 2>"$TMP/ep.log"; rc=$?
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check epochs_exit0 test $rc -eq 0
check epochs_stop_at_32 test -f "$TMP/ep/ckpt-0000000032.gck"
check epochs_no_more test "$(ls "$TMP/ep" | tail -n 1)" = "ckpt-0000000032.gck"

# --- one producer vs two sharded producers into a bound socket ---
# (timeout: a producer that fails to start would leave the trainer waiting)
$SRC --out "ipc://$TMP/s.sock" --batches 24 2>>"$TMP/src.log" &
sp=$!
$TR --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/one" --log-every 1000 2>"$TMP/one.log"; rc1=$?
kill $sp 2>/dev/null; wait $sp 2>/dev/null
timeout 120 $TR --in "@ipc://$TMP/p.sock" --producers 2 --ckpt-dir "$TMP/two" --log-every 1000 -v 2>"$TMP/two.log" &
tp=$!
$SRC --out ">ipc://$TMP/p.sock" --batches 24 --shard 0/2 2>>"$TMP/src.log" &
s1=$!
sleep 0.3 # shard 1 starts late: the trainer must hold shard 0's batches
$SRC --out ">ipc://$TMP/p.sock" --batches 24 --shard 1/2 2>>"$TMP/src.log" &
s2=$!
wait $tp; rc2=$?
kill $s1 $s2 2>/dev/null; wait $s1 $s2 2>/dev/null
cat "$TMP/two.log" >&2
check one_producer_exit0 test $rc1 -eq 0
check two_producers_exit0 test $rc2 -eq 0
check two_producers_waited_both grep -q 'EndOfStream 2/2' "$TMP/two.log"
check two_producers_reordered grep -q 'waiting for seq 1, holding' "$TMP/two.log"
check two_producers_no_drops grep -q 'dropped messages: 0' "$TMP/two.log"
check two_producers_bit_exact ckpt_diff "$TMP/one/ckpt-0000000024.gck" "$TMP/two/ckpt-0000000024.gck"

# --- a window too small for a late shard: drops counted, missing seq named,
#     the run still ends cleanly with a final checkpoint ---
timeout 120 $TR --in "@ipc://$TMP/p.sock" --producers 2 --reorder-window 4 --ckpt-dir "$TMP/small" --log-every 1000 \
    2>"$TMP/small.log" &
tp=$!
$SRC --out ">ipc://$TMP/p.sock" --batches 24 --shard 0/2 2>>"$TMP/src.log" &
s1=$!
sleep 0.5
$SRC --out ">ipc://$TMP/p.sock" --batches 24 --shard 1/2 2>>"$TMP/src.log" &
s2=$!
wait $tp; rc=$?
kill $s1 $s2 2>/dev/null; wait $s1 $s2 2>/dev/null
cat "$TMP/small.log" >&2
check small_window_exit0 test $rc -eq 0
check small_window_drops_counted grep -q 'dropped messages: [1-9].*seq_too_far_ahead=' "$TMP/small.log"
check small_window_names_missing grep -q 'never arrived' "$TMP/small.log"

echo "t_train: $(( $(date +%s) - t0 )) s" >&2
rm -rf "$TMP"
