#!/bin/sh
# t_train_text.sh - gambar-train --conditional text (GAN-CLS, issue 10):
#   - a tiny captioned Fashion-MNIST (synthetic captions) through the real
#     gambar-augment: exit 0, the captions reach the trainer, the checkpoint
#     is a text model carrying its text encoder (vocabulary, T.*, OPT.T.*);
#   - bit-exact resume: SIGKILL after a checkpoint, --resume, the final
#     checkpoint equals a straight run's (every tensor, the encoder's too);
#   - bad input: a dataset without captions exits 3 naming the reason;
#     no --db, --micro-batches 2 or --init-from exit 2; resuming a text run
#     without --conditional text stays a text run; gambar-sample without
#     --prompt refuses a text checkpoint cleanly (exit 2);
#   - the loss weights --gan-int, --contrastive, --mode-seek and
#     --aux-class: each changes the model, is the checkpoint's note
#     (train.gan_int, train.contrastive, train.mode_seek, train.aux_class;
#     --aux-class also gives D its classifier) and persists across --resume
#     (bit-exact); another weight on --resume exits 3, without a text run
#     or out of range exits 2.
#   - --text-window: 1 = the default's bits; 6 changes the model and
#     resumes bit-exactly (the window is in the encoder's description);
#     another window on --resume exits 3; without text / out of range 2.
#   - --text-grad: "d" (default) is in the checkpoint's note; "dg" changes
#     the model, persists across --resume (bit-exact); a checkpoint without
#     the note (an older run) resumes as "dg"; another value on --resume
#     exits 3; without a text run or with a bad value exits 2.
#   - --text-grad-g: weights G's gradient into the encoder (note
#     train.text_g_weight): changes a dg run, 1 = dg's bits, resumes
#     bit-exactly, another value on --resume exits 3; without dg or out of
#     range exits 2.
#   - --lr-text sets the encoder's learning rate (default 2e-3, kept in the
#     checkpoint: a resume keeps a run's own);
#     --text-gain changes the initial model (default sqrt(T)); a resume
#     without either is bit-exact.
. "$(dirname "$0")/lib.sh"

S=24
B=16
fashion_captions --train "$FASHION/train" --images "$FASHION/t10k" --seed 5 --out "$TMP/c.txt" 2>/dev/null ||
    { notok fashion_captions; exit 0; }
gambar-ingest -q --source "idx:$FASHION/t10k" --db "$TMP/db" --limit 256 --captions "$TMP/c.txt" 2>"$TMP/ingest.err" ||
    { notok ingest_captions; cat "$TMP/ingest.err" >&2; exit 0; }
gambar-ingest -q --source "idx:$FASHION/t10k" --db "$TMP/nocap" --limit 64 2>/dev/null || { notok ingest_plain; exit 0; }

TR="gambar-train --model dcgan28 --width 8 --threads 1 --seed 3 --log-every 8 --conditional text --db $TMP/db"
aug() { # START
    gambar-augment -q --db "$TMP/db" --out "ipc://$TMP/s.sock" --batch $B --epochs 10 --seed 1 --start-batch "$1" \
        2>>"$TMP/aug.log" &
    sp=$!
}
resume16() { # DIR LOG: resume the step-8 checkpoint in DIR to step 16; sets rc
    aug 8
    gambar-train --threads 1 --log-every 8 --in "ipc://$TMP/s.sock" --ckpt-dir "$1" --ckpt-every 8 --steps 16 \
        --resume 2>>"$2"
    rc=$?
    kill $sp 2>/dev/null; wait $sp 2>/dev/null
}
variant16() { # DIR LOG ARGS...: a straight 16-step run with ARGS into DIR; sets rc
    _vd=$1 _vl=$2
    shift 2
    aug 0
    $TR "$@" --in "ipc://$TMP/s.sock" --ckpt-dir "$_vd" --ckpt-every 8 --steps 16 2>"$_vl"
    rc=$?
    kill $sp 2>/dev/null; wait $sp 2>/dev/null
}
resume_copy() { # SRC DST LOG: SRC's step-8 checkpoint copied into DST, resumed to step 16; sets rc
    mkdir -p "$2"
    cp "$1/ckpt-0000000008.gck" "$2/"
    resume16 "$2" "$3"
}
wait_ckpt() { # DIR STEP
    i=0
    while [ $i -lt 400 ]; do
        [ -e "$1/ckpt-$(printf %010d "$2").gck" ] && return 0
        sleep 0.05; i=$((i + 1))
    done
    return 1
}

# --- straight run ---
aug 0
$TR --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/a" --ckpt-every 8 --steps $S 2>"$TMP/a.log"
rc=$?
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check text_run_exit0 test $rc -eq 0
check text_run_vocabulary_from_db grep -q "captions, .* distinct words, vocabulary of [1-9]" "$TMP/a.log"
check text_run_logs_mismatch_score grep -q "D(x, mismatched caption)" "$TMP/a.log"
ckpt_diff --info "$TMP/a/ckpt-0000000024.gck" >"$TMP/a.info"
check text_ckpt_is_text_model grep -qx "text_dim=32" "$TMP/a.info"
check text_ckpt_carries_encoder sh -c "grep -q '^text_vocab=[1-9]' '$TMP/a.info' && grep -qx 'text_adam_t=24' '$TMP/a.info'"
check text_ckpt_not_class_model grep -qx "conditional=0" "$TMP/a.info"
check_exit text_ckpt_differs_over_steps 1 ckpt_diff "$TMP/a/ckpt-0000000016.gck" "$TMP/a/ckpt-0000000024.gck"
# the encoder's tensors are in the file (names as checkpoint.proto lists them)
ckpt_tool dump "$TMP/a/ckpt-0000000024.gck" >"$TMP/a.dump" 2>/dev/null
check text_ckpt_dump_text_dim grep -qx "model.text_dim 32" "$TMP/a.dump"
python3 "$(dirname "$0")/tools/ckpt_read.py" "$TMP/a/ckpt-0000000024.gck" >"$TMP/a.pydump" 2>&1
check text_ckpt_independent_reader_agrees cmp -s "$TMP/a.dump" "$TMP/a.pydump"
check text_ckpt_tensor_names sh -c "grep -q 'T.embed.weight' '$TMP/a.dump' && grep -q 'OPT.T.v.proj.bias' '$TMP/a.dump' && grep -q 'G.text.weight' '$TMP/a.dump' && grep -q 'D.text.weight' '$TMP/a.dump'"

# gambar-sample on a text checkpoint without a prompt: a usage error naming
# the reason, not an abort on a missing label (tests/t_sample_text.sh samples)
check_exit text_ckpt_sampler_refuses_cleanly 2 gambar-sample --ckpt "$TMP/a/ckpt-0000000024.gck" --out "$TMP/s.png" -n 1
check text_ckpt_sampler_says_why grep -q "is text-conditional: give --prompt" "$TMP/err"

# --- SIGKILL after step 8's checkpoint, then --resume: bit-exact ---
aug 0
$TR --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/b" --ckpt-every 8 --steps $S 2>"$TMP/b.log" &
tp=$!
if wait_ckpt "$TMP/b" 8; then ok text_kill_run_reached_ckpt; else notok text_kill_run_reached_ckpt; fi
kill -9 $tp; wait $tp 2>/dev/null; kill $sp 2>/dev/null; wait $sp 2>/dev/null
k=$(gambar-train --print-start-batch --ckpt-dir "$TMP/b")
aug "$k"
# no --conditional text: the checkpoint says what the model is
gambar-train --model dcgan28 --threads 1 --log-every 8 --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/b" --ckpt-every 8 \
    --steps $S --resume 2>>"$TMP/b.log"
rc=$?
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check text_resume_exit0 test $rc -eq 0
check text_resume_resumed grep -q "resuming from .*: step \(8\|16\)," "$TMP/b.log"
check text_resume_bit_exact ckpt_diff "$TMP/a/ckpt-0000000024.gck" "$TMP/b/ckpt-0000000024.gck"

# --- a loss weight kept in the checkpoint (weight_option TAG OPT LOGGED NOTE
# DIR): --OPT 1 changes the run; the weight is the checkpoint's note NOTE,
# so a resume without the option is still bit-exact, and another weight on
# resume is refused (exit 3); without a text run or out of range exit 2 ---
weight_option() {
    wtag=$1 wopt=$2 wlog=$3 wnote=$4 wd=$TMP/$5
    variant16 "$wd" "$wd.log" --$wopt 1
    check ${wtag}_run_exit0 test $rc -eq 0
    check ${wtag}_logged grep -q "$wlog on (weight 1)" "$wd.log"
    check ${wtag}_off_by_default grep -q "$wlog off (weight 0)" "$TMP/a.log"
    check_exit ${wtag}_changes_the_model 1 ckpt_diff "$TMP/a/ckpt-0000000016.gck" "$wd/ckpt-0000000016.gck"
    ckpt_tool dump "$wd/ckpt-0000000008.gck" >"$wd.dump" 2>/dev/null
    check ${wtag}_noted grep -qx "note $wnote=1" "$wd.dump"
    resume_copy "$wd" "${wd}2" "$wd.log"
    check ${wtag}_resume_bit_exact sh -c "[ $rc -eq 0 ] && ckpt_diff '$wd/ckpt-0000000016.gck' '${wd}2/ckpt-0000000016.gck'"
    check_exit ${wtag}_other_weight_on_resume_exit3 3 gambar-train --$wopt 0.5 --resume \
        --in "ipc://$TMP/none.sock" --ckpt-dir "${wd}2"
    check ${wtag}_other_weight_message grep -q "was trained with --$wopt 1, not 0.5" "$TMP/err"
    check_exit ${wtag}_without_text_exit2 2 gambar-train --model dcgan28 --$wopt 1 --in "ipc://$TMP/none.sock" \
        --ckpt-dir "$TMP/n-$wtag"
    check_exit ${wtag}_out_of_range_exit2 2 $TR --$wopt -1 --in "ipc://$TMP/none.sock" --ckpt-dir "$TMP/n-$wtag-r"
}
# GAN-INT (Reed et al.): G also learns from caption midpoints
weight_option gan_int gan-int "GAN-INT" train.gan_int g
# contrastive terms (XMC-GAN)
weight_option contrastive contrastive "contrastive terms" train.contrastive k
# mode seeking (MSGAN): pairs of fakes share a caption
weight_option mode_seek mode-seek "mode seeking" train.mode_seek ms
# auxiliary classifier (TAC-GAN): D learns the images' classes, G must draw its caption's
weight_option aux_class aux-class "auxiliary classifier" train.aux_class ac
check aux_class_in_model sh -c "grep -qx 'model.aux_classes 10' '$TMP/ac.dump' && grep -q 'D.aux.weight' '$TMP/ac.dump'"
check aux_class_ce_logged grep -q "auxiliary classifier cross-entropy: real [0-9.]*, fakes against their captions' classes [0-9.]*" "$TMP/ac.log"
# the classifier learns class labels: a captioned dataset without classes
# (a flat folder of PNGs with NAME.txt captions) exits 3, naming the reason
mkdir -p "$TMP/flat"
idx2png "$FASHION/t10k" "$TMP/png" --limit 16 >/dev/null 2>&1
k=0
for f in "$TMP"/png/*/*.png; do
    k=$((k + 1)); cp "$f" "$TMP/flat/$k.png"; echo "a mid-tone thing" >"$TMP/flat/$k.txt"
done
gambar-ingest -q --source "$TMP/flat" --db "$TMP/unlab" 2>/dev/null
check_exit aux_class_unlabelled_dataset_exit3 3 $TR --aux-class 1 --db "$TMP/unlab" --in "ipc://$TMP/none.sock" \
    --ckpt-dir "$TMP/n-unlab"
check aux_class_unlabelled_dataset_named grep -q "aux-class: dataset .*unlab has no classes" "$TMP/err"

# --- --text-window: the encoder's word-pair window (its shape, kept in the
# checkpoint's TextEncoderDesc.pair_window); 1 is the default's bits ---
check text_window_default_logged grep -q "word pairs up to 1 apart" "$TMP/a.log"
aug 0
$TR --text-window 1 --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/w1" --ckpt-every 8 --steps 8 2>"$TMP/w1.log"
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check text_window_1_is_default ckpt_diff "$TMP/a/ckpt-0000000008.gck" "$TMP/w1/ckpt-0000000008.gck"
variant16 "$TMP/w" "$TMP/w.log" --text-window 6
check text_window_run_exit0 test $rc -eq 0
check text_window_logged grep -q "word pairs up to 6 apart" "$TMP/w.log"
check_exit text_window_changes_the_model 1 ckpt_diff "$TMP/a/ckpt-0000000016.gck" "$TMP/w/ckpt-0000000016.gck"
resume_copy "$TMP/w" "$TMP/w2" "$TMP/w.log"
check text_window_resume_bit_exact sh -c "[ $rc -eq 0 ] && ckpt_diff '$TMP/w/ckpt-0000000016.gck' '$TMP/w2/ckpt-0000000016.gck'"
check_exit text_window_other_on_resume_exit3 3 gambar-train --text-window 2 --resume --in "ipc://$TMP/none.sock" \
    --ckpt-dir "$TMP/w2"
check text_window_other_on_resume_message grep -q "hashes word pairs up to 6 apart, not 2" "$TMP/err"
check_exit text_window_without_text_exit2 2 gambar-train --model dcgan28 --text-window 3 --in "ipc://$TMP/none.sock" \
    --ckpt-dir "$TMP/n11"
check_exit text_window_out_of_range_exit2 2 $TR --text-window 0 --in "ipc://$TMP/none.sock" --ckpt-dir "$TMP/n12"

# --- --text-grad: which losses train the encoder ---
check text_grad_default_d_noted grep -qx "note train.text_grad=d" "$TMP/a.dump"
check text_grad_default_logged grep -q "the encoder learns from D's loss (--text-grad d)" "$TMP/a.log"
variant16 "$TMP/t" "$TMP/t.log" --text-grad dg
check text_grad_dg_run_exit0 test $rc -eq 0
check text_grad_dg_logged grep -q "D's and G's losses (--text-grad dg)" "$TMP/t.log"
check_exit text_grad_dg_changes_the_model 1 ckpt_diff "$TMP/a/ckpt-0000000016.gck" "$TMP/t/ckpt-0000000016.gck"
mkdir -p "$TMP/t2" "$TMP/t3"
cp "$TMP/t/ckpt-0000000008.gck" "$TMP/t2/"
# the same checkpoint without the note, as an older gambar-train wrote it
ckpt_tool drop-note "$TMP/t/ckpt-0000000008.gck" "$TMP/t3" train.text_grad >/dev/null
ckpt_tool dump "$TMP/t3/ckpt-0000000008.gck" >"$TMP/t3.dump" 2>/dev/null
check text_grad_note_dropped sh -c "! grep -q train.text_grad '$TMP/t3.dump'"
for d in t2 t3; do
    resume16 "$TMP/$d" "$TMP/t.log"
    check text_grad_resume_${d}_exit0 test $rc -eq 0
    check text_grad_resume_${d}_bit_exact ckpt_diff "$TMP/t/ckpt-0000000016.gck" "$TMP/$d/ckpt-0000000016.gck"
done
check_exit text_grad_other_on_resume_exit3 3 gambar-train --text-grad d --resume --in "ipc://$TMP/none.sock" \
    --ckpt-dir "$TMP/t2"
check text_grad_other_on_resume_message grep -q "was trained with --text-grad dg, not d" "$TMP/err"
check_exit text_grad_without_text_exit2 2 gambar-train --model dcgan28 --text-grad d --in "ipc://$TMP/none.sock" \
    --ckpt-dir "$TMP/n8"
# --text-grad-g: G's gradient into the encoder weighted (note train.text_g_weight)
variant16 "$TMP/tg" "$TMP/tg.log" --text-grad dg --text-grad-g 0.1
check text_grad_g_run_exit0 test $rc -eq 0
check text_grad_g_logged grep -q "G's gradient enters its step times 0.1" "$TMP/tg.log"
check_exit text_grad_g_changes_the_model 1 ckpt_diff "$TMP/t/ckpt-0000000016.gck" "$TMP/tg/ckpt-0000000016.gck"
ckpt_tool dump "$TMP/tg/ckpt-0000000008.gck" >"$TMP/tg.dump" 2>/dev/null
check text_grad_g_noted grep -qx "note train.text_g_weight=0.10000000000000001" "$TMP/tg.dump"
resume_copy "$TMP/tg" "$TMP/tg2" "$TMP/tg.log"
check text_grad_g_resume_bit_exact sh -c "[ $rc -eq 0 ] && ckpt_diff '$TMP/tg/ckpt-0000000016.gck' '$TMP/tg2/ckpt-0000000016.gck'"
check_exit text_grad_g_other_on_resume_exit3 3 gambar-train --text-grad-g 0.5 --resume --in "ipc://$TMP/none.sock" \
    --ckpt-dir "$TMP/tg2"
check text_grad_g_other_on_resume_message grep -q "was trained with --text-grad-g 0.1, not 0.5" "$TMP/err"
aug 0
$TR --text-grad dg --text-grad-g 1 --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/tg1" --ckpt-every 8 --steps 8 2>/dev/null
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check text_grad_g_1_is_dg ckpt_diff "$TMP/t/ckpt-0000000008.gck" "$TMP/tg1/ckpt-0000000008.gck"
check_exit text_grad_g_without_dg_exit2 2 $TR --text-grad-g 0.1 --in "ipc://$TMP/none.sock" --ckpt-dir "$TMP/n13"
check_exit text_grad_g_out_of_range_exit2 2 $TR --text-grad dg --text-grad-g 0 --in "ipc://$TMP/none.sock" \
    --ckpt-dir "$TMP/n14"
# --lr-text and --text-gain
variant16 "$TMP/l" "$TMP/l.log" --lr-text 1e-3 --text-gain 4
check lr_text_run_exit0 test $rc -eq 0
ckpt_diff --info "$TMP/l/ckpt-0000000016.gck" >"$TMP/l.info"
check lr_text_in_ckpt grep -qx "text_adam_lr=0.001" "$TMP/l.info"
check lr_text_default grep -qx "text_adam_lr=0.002" "$TMP/a.info"
check_exit text_gain_changes_the_model 1 ckpt_diff "$TMP/a/ckpt-0000000016.gck" "$TMP/l/ckpt-0000000016.gck"
resume_copy "$TMP/l" "$TMP/l2" "$TMP/l.log"
check lr_text_resume_bit_exact sh -c "[ $rc -eq 0 ] && ckpt_diff '$TMP/l/ckpt-0000000016.gck' '$TMP/l2/ckpt-0000000016.gck'"
# the default gain is sqrt(T) (G's projection starts N(0, 1)): the same model as given explicitly
aug 0
$TR --text-gain 5.656854249492380 --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/q" --ckpt-every 8 --steps 8 2>"$TMP/q.log"
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check text_gain_default_sqrt_t ckpt_diff "$TMP/a/ckpt-0000000008.gck" "$TMP/q/ckpt-0000000008.gck"
aug 0
$TR --text-gain 1 --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/q1" --ckpt-every 8 --steps 8 2>"$TMP/q.log"
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check_exit text_gain_1_differs 1 ckpt_diff "$TMP/a/ckpt-0000000008.gck" "$TMP/q1/ckpt-0000000008.gck"
check_exit text_gain_bad_value_exit2 2 $TR --text-gain 0 --in "ipc://$TMP/none.sock" --ckpt-dir "$TMP/n10"
check_exit text_grad_bad_value_exit2 2 $TR --text-grad g --in "ipc://$TMP/none.sock" --ckpt-dir "$TMP/n9"

# --- bad input ---
check_exit text_dataset_without_captions_exit3 3 $TR --db "$TMP/nocap" --in "ipc://$TMP/none.sock" --ckpt-dir "$TMP/n"
check text_no_captions_message grep -q "has no captions" "$TMP/err"
check_exit text_needs_db_exit2 2 gambar-train --model dcgan28 --conditional text --in "ipc://$TMP/none.sock" \
    --ckpt-dir "$TMP/n2"
check text_needs_db_message grep -q "needs --db" "$TMP/err"
check_exit text_micro_batches_exit2 2 $TR --micro-batches 2 --in "ipc://$TMP/none.sock" --ckpt-dir "$TMP/n3"
check text_micro_batches_message grep -q "micro-batches 2 is not supported" "$TMP/err"
check_exit text_init_from_exit2 2 $TR --init-from "$TMP/a/ckpt-0000000024.gck" --in "ipc://$TMP/none.sock" \
    --ckpt-dir "$TMP/n4"
check_exit conditional_bad_value_exit2 2 gambar-train --model dcgan28 --conditional words --in "ipc://$TMP/x" \
    --ckpt-dir "$TMP/n5"
# a stream without captions into a text run: every batch dropped as
# bad_labels, named; the run ends with exit 3 (no usable batch)
batch_source --synthetic-count 64 --batch 8 --epochs 1 --seed 7 --out "ipc://$TMP/nc.sock" 2>/dev/null &
sp=$!
check_exit text_stream_without_captions_exit3 3 $TR --in "ipc://$TMP/nc.sock" --ckpt-dir "$TMP/n6" --steps 4
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check text_stream_without_captions_named grep -q "bad_labels.*no captions, but the model is text-conditional" "$TMP/err"
# --conditional text on a folder of class-model checkpoints: refused
mkdir -p "$TMP/cls"
batch_source --synthetic-count 64 --batch 8 --epochs 1 --seed 7 --out "ipc://$TMP/c.sock" 2>/dev/null &
sp=$!
gambar-train --model dcgan28 --width 8 --threads 1 --in "ipc://$TMP/c.sock" --ckpt-dir "$TMP/cls" --steps 2 2>/dev/null
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check_exit text_resume_of_class_run_exit3 3 gambar-train --conditional text --resume --in "ipc://$TMP/none.sock" \
    --ckpt-dir "$TMP/cls"
check text_resume_of_class_run_message grep -q "not a text-conditional one" "$TMP/err"
cat "$TMP/a.log" "$TMP/b.log" >&2
