#!/bin/sh
# t_eval_text.sh - gambar-eval on a text-conditional (GAN-CLS) checkpoint,
# issue 10 item 6, on real Fashion-MNIST with the synthetic captions:
#   - a tiny text model (as t_train_text.sh), prompted with held-out
#     captions (the train split's, --test-db): exit 0; FID and the text_*
#     figures exist and lie in [0, 1]; JSON "text" section, model card
#     section, Metric messages on the PUB socket;
#   - the real-data ceiling: the classifier on real images well above
#     chance, attributes of real images agree with their own captions
#     (1 with the captions file's cut points; high with cut points
#     recomputed from --db, another split);
#   - the measure discriminates: the same images with shuffled captions
#     (--captions-db) agree far less;
#   - the images are the sampler's: a closest pair's generated half equals
#     gambar-sample --seed SEED --prompt PROMPT; two runs give the same
#     figures;
#   - bad input: a captions dataset without captions (exit 3, named),
#     a missing or headerless --caption-thresholds file, text options
#     with --samples-db (exit 2);
#   - a model trained with --aux-class evaluates and samples like any
#     text model; its card names the auxiliary classifier.
. "$(dirname "$0")/lib.sh"
E=gambar-eval
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
jcheck() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)" "$@"; }
png() { python3 "$GAMBAR_ROOT/tests/png_tool.py" "$@"; }

# ---- data: training split (t10k subset), held-out captions (train subset) ----
fashion_captions --train "$FASHION/train" --images "$FASHION/t10k" --seed 5 --out "$TMP/c10.txt" 2>/dev/null &&
    fashion_captions --train "$FASHION/train" --images "$FASHION/train" --seed 5 --out "$TMP/ctr.txt" 2>/dev/null ||
    { notok eval_text_setup_captions; exit 0; }
# the same 500 held-out images with their caption lines shuffled among them
python3 - "$TMP/ctr.txt" "$TMP/shuf.txt" <<'PY'
import random, sys
lines = open(sys.argv[1]).read().split('\n')
h = [l for l in lines if l.startswith('#')]
body = [l for l in lines if not l.startswith('#')]
first = body[:500]
random.Random(7).shuffle(first)
open(sys.argv[2], 'w').write('\n'.join(h + first + body[500:]))
PY
gambar-ingest -q --source "idx:$FASHION/t10k" --db "$TMP/db" --limit 2000 --captions "$TMP/c10.txt" &&
    gambar-ingest -q --source "idx:$FASHION/train" --db "$TMP/held" --limit 500 --captions "$TMP/ctr.txt" &&
    gambar-ingest -q --source "idx:$FASHION/train" --db "$TMP/shuf" --limit 500 --captions "$TMP/shuf.txt" &&
    gambar-ingest -q --source "idx:$FASHION/train" --db "$TMP/nocap" --limit 100 ||
    { notok eval_text_setup_ingest; exit 0; }
$E --fit-features --db "$TMP/db" --epochs 2 --out "$TMP/fn.gck" >/dev/null 2>&1 || { notok eval_text_setup_features; exit 0; }

# ---- a tiny text model ---------------------------------------------------------------
tiny() { # DIR STEPS LOG [TRAIN ARGS...]: a tiny text model trained on $TMP/db; sets rc
    _d=$1 _s=$2 _l=$3
    shift 3
    gambar-augment -q --db "$TMP/db" --out "ipc://$TMP/s.sock" --batch 32 --epochs 20 --seed 1 2>/dev/null &
    sp=$!
    gambar-train --in "ipc://$TMP/s.sock" --model dcgan28 --width 8 --threads 1 --seed 3 --conditional text \
        --db "$TMP/db" --ckpt-dir "$_d" --steps "$_s" --ckpt-every 1000 "$@" 2>"$_l"
    rc=$?
    kill $sp 2>/dev/null; wait $sp 2>/dev/null
}
tiny "$TMP/ck" 32 "$TMP/train.log"
CK="$TMP/ck/ckpt-0000000032.gck"
[ $rc -eq 0 ] && [ -f "$CK" ] && ok eval_text_model_trained || { notok eval_text_model_trained; cat "$TMP/train.log" >&2; exit 0; }

EV="$E --db $TMP/db --features $TMP/fn.gck --cache-dir $TMP/cache --n 500 --threads 2"
TEXT_METRICS="text_class_accuracy text_class_accuracy_real text_brightness_agreement text_brightness_agreement_real
text_brightness_direction text_width_agreement text_width_agreement_real text_width_direction text_fill_agreement
text_fill_agreement_real text_fill_direction"

# ---- the evaluation, with the captions file's cut points ---------------------------
train_sub --in "ipc://$TMP/em.sock" --timeout-ms 30000 --count 40 >"$TMP/sub.out" 2>"$TMP/sub.err" &
subp=$!
check_exit eval_text_exit0 0 $EV --ckpt "$CK" --test-db "$TMP/held" --caption-thresholds "$TMP/ctr.txt" \
    --json "$TMP/a.json" --card --worst "$TMP/pairs" --worst-n 2 --metrics "ipc://$TMP/em.sock" --run tx
cp "$TMP/out" "$TMP/a.out"
cat "$TMP/err" >&2
wait $subp
check eval_text_no_refusal sh -c "! grep -q 'does not evaluate' '$TMP/err'"
check eval_text_fid_exists jcheck "$TMP/a.json" "d['metrics']['fid'] > 0 and 'precision' in d['metrics'] and 'kid' in d['metrics']"
for m in $TEXT_METRICS; do
    check "eval_text_${m}_on_stdout" grep -q " $m [0-9]" "$TMP/a.out"
done
check eval_text_metrics_in_0_1 jcheck "$TMP/a.json" "all(0 <= d['metrics'][m] <= 1 for m in '$(echo $TEXT_METRICS)'.split())"
check eval_text_ratio_metric jcheck "$TMP/a.json" "d['metrics']['text_class_accuracy_ratio'] >= 0"
check eval_text_no_conditional_accuracy jcheck "$TMP/a.json" "'conditional_accuracy' not in d['metrics']"
# the ceiling: the classifier on real images is far above chance (0.1);
# real images agree with their own captions by construction
check eval_text_real_class_ceiling_high jcheck "$TMP/a.json" "d['metrics']['text_class_accuracy_real'] > 0.6"
check eval_text_real_attr_ceiling_exact jcheck "$TMP/a.json" \
    "all(d['metrics']['text_%s_agreement_real' % a] >= 0.99 for a in ('brightness', 'width', 'fill'))"
check eval_text_json_section jcheck "$TMP/a.json" \
    "d['text']['captions_dataset'].endswith('held') and d['text']['prompts'] == 500 and 'ctr.txt' in d['text']['thresholds_source'] and len(d['text']['attributes']) == 3 and d['text']['class']['counted'] == 500"
check eval_text_direction_pairs_counted jcheck "$TMP/a.json" "all(a['direction_pairs'] > 100 for a in d['text']['attributes'][:2])"
check eval_text_mismatched_baseline jcheck "$TMP/a.json" "0 <= d['text']['class']['agreement_mismatched'] <= 1"
check eval_text_examples_listed jcheck "$TMP/a.json" \
    "d['text']['examples'][0]['seed'] == 2**32 and d['text']['examples'][0]['prompt'] != ''"
check eval_text_card_section grep -q "^## Text-image agreement" "$CK.card.md"
check eval_text_card_rows sh -c "grep -q '^| class | ' '$CK.card.md' && grep -q '^| brightness | ' '$CK.card.md' && grep -q 'Conditional: on text' '$CK.card.md'"
check eval_text_metrics_published grep -q "^metric text_class_accuracy 32 .* eval tx" "$TMP/sub.out"
check eval_text_metrics_published_attr grep -q "^metric text_brightness_direction 32 " "$TMP/sub.out"

# the images are gambar-sample's: the closest pairs name seed and prompt
pair_is_sample() { # N
    seed=$(json "$TMP/a.json" "d['memorisation']['closest'][$1]['seed']")
    prompt=$(json "$TMP/a.json" "d['memorisation']['closest'][$1]['prompt']")
    gambar-sample --ckpt "$CK" --seed "$seed" --prompt "$prompt" --out "$TMP/smp$1.png" >/dev/null 2>&1 &&
        [ "$(png rawhash "$TMP/smp$1.png")" = "$(png rawhash "$TMP/pairs/pair-0$1.png" 0 28)" ]
}
check eval_text_pixels_are_sampler_pixels pair_is_sample 0

# deterministic: the same text figures again (FID moves in the last digits:
# the second run reads the real statistics from the float32 cache)
$EV --ckpt "$CK" --test-db "$TMP/held" --caption-thresholds "$TMP/ctr.txt" --json "$TMP/a2.json" --worst-n 0 \
    >/dev/null 2>&1
check eval_text_deterministic python3 -c "
import json; a=json.load(open('$TMP/a.json')); b=json.load(open('$TMP/a2.json'))
ks=[k for k in a['metrics'] if k.startswith('text_')]
raise SystemExit(0 if ks and all(a['metrics'][k]==b['metrics'][k] for k in ks) and a['text']==b['text'] else 1)"

# ---- the measure discriminates: shuffled captions agree far less ------------------
check_exit eval_text_shuffled_exit0 0 $EV --ckpt "$CK" --captions-db "$TMP/shuf" --caption-thresholds "$TMP/ctr.txt" \
    --json "$TMP/s.json" --worst-n 0
check eval_text_shuffled_class_lower python3 -c "
import json; a=json.load(open('$TMP/a.json'))['metrics']; s=json.load(open('$TMP/s.json'))['metrics']
print('matched', a['text_class_accuracy_real'], 'shuffled', s['text_class_accuracy_real'])
raise SystemExit(0 if s['text_class_accuracy_real'] < 0.3 and s['text_class_accuracy_real'] < a['text_class_accuracy_real'] - 0.4 else 1)"
check eval_text_shuffled_attributes_lower python3 -c "
import json; a=json.load(open('$TMP/a.json'))['metrics']; s=json.load(open('$TMP/s.json'))['metrics']
k=['text_%s_agreement_real' % x for x in ('brightness', 'width', 'fill')]
print('matched', [a[x] for x in k], 'shuffled', [s[x] for x in k])
raise SystemExit(0 if all(s[x] < 0.7 and s[x] < a[x] - 0.3 for x in k) else 1)"

# ---- cut points recomputed from --db (another split): the ceiling stays high ----
check_exit eval_text_recomputed_exit0 0 $EV --ckpt "$CK" --test-db "$TMP/held" --json "$TMP/r.json" --worst-n 0
check eval_text_recomputed_source jcheck "$TMP/r.json" "'--db' in d['text']['thresholds_source']"
check eval_text_recomputed_ceiling jcheck "$TMP/r.json" \
    "all(0.6 < d['metrics']['text_%s_agreement_real' % a] <= 1 for a in ('brightness', 'width', 'fill'))"
# without --test-db the prompts are the training dataset's own captions
check_exit eval_text_db_captions_exit0 0 $EV --ckpt "$CK" --json "$TMP/d.json" --worst-n 0
check eval_text_db_captions_source jcheck "$TMP/d.json" "d['text']['captions_dataset'].endswith('/db')"

# ---- bad input -------------------------------------------------------------------------
check_exit eval_text_nocap_exit3 3 $EV --ckpt "$CK" --captions-db "$TMP/nocap" --json "$TMP/bad.json"
check eval_text_nocap_named grep -q "captions dataset .*nocap.* has no captions" "$TMP/err"
check eval_text_nocap_no_json test ! -e "$TMP/bad.json"
check_exit eval_text_nocap_testdb_exit3 3 $EV --ckpt "$CK" --test-db "$TMP/nocap"
check eval_text_nocap_testdb_named grep -q "nocap (--test-db) has no captions" "$TMP/err"
check_exit eval_text_missing_thresholds_exit4 4 $EV --ckpt "$CK" --caption-thresholds "$TMP/nope.txt"
check eval_text_missing_thresholds_named grep -q "nope.txt: cannot open" "$TMP/err"
printf '# a comment\na dark boot\n' >"$TMP/nohead.txt"
check_exit eval_text_headerless_thresholds_exit3 3 $EV --ckpt "$CK" --caption-thresholds "$TMP/nohead.txt"
check eval_text_headerless_thresholds_named grep -q "nohead.txt: no \"# thresholds:\" header" "$TMP/err"
check_exit eval_text_missing_captions_db_exit4 4 $EV --ckpt "$CK" --captions-db "$TMP/nowhere"
check_exit eval_text_options_with_samples_exit2 2 $EV --samples-db "$TMP/held" --captions-db "$TMP/held"
check_exit eval_text_bad_pairs_exit2 2 $EV --ckpt "$CK" --text-pairs -1

# ---- a text model trained with the auxiliary classifier (--aux-class): it
# loads in gambar-eval and gambar-sample like any text model (the classifier
# is D's), and the model card says how it was trained ----
tiny "$TMP/ckac" 16 "$TMP/trainac.log" --aux-class 1
CKA="$TMP/ckac/ckpt-0000000016.gck"
check eval_text_aux_model_trained test $rc -eq 0 -a -f "$CKA"
check_exit eval_text_aux_exit0 0 $EV --ckpt "$CKA" --test-db "$TMP/held" --n 200 --card --json "$TMP/ac.json" \
    --worst-n 0
check eval_text_aux_card grep -q "Conditional: on text .*auxiliary classifier over the 10 class labels" "$CKA.card.md"
check eval_text_aux_figures jcheck "$TMP/ac.json" "0 <= d['metrics']['text_class_accuracy'] <= 1"
check_exit eval_text_aux_sample_exit0 0 gambar-sample --ckpt "$CKA" --seed 1 --prompt "a dark ankle boot" \
    --out "$TMP/ac.png"
