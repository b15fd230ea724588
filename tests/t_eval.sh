#!/bin/sh
# t_eval.sh - gambar-eval end to end on real Fashion-MNIST subsets:
#   the feature network fitted by eval itself and cached per dataset;
#   sanity anchors with --samples-db: real-vs-real (train subset vs test
#   subset) FID near zero and far below noise-vs-real, high precision and
#   recall of real vs real, a "collapsed generator" (a dataset of one
#   class) with a large class KL and low recall; JSON report contents;
#   checkpoints from mkckpt (model card, closest-pair PNGs, conditional
#   accuracy); Metric messages on the PUB socket; bad input (missing,
#   corrupt, wrong-resolution checkpoint, unlabelled data) with exit codes
#   and nothing written; the random-CNN fallback for unlabelled data.
. "$(dirname "$0")/lib.sh"
E=gambar-eval
FASHION_NAMES="T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

# ---- data -------------------------------------------------------------------
printf 'path,license,attribution\n*,MIT,"Zalando SE, Fashion-MNIST"\n' >"$TMP/manifest.csv"
gambar-ingest -q --source "idx:$FASHION/train" --db "$TMP/tr" --limit 3000 --manifest "$TMP/manifest.csv" 2>"$TMP/ing.err"
gambar-ingest -q --source "idx:$FASHION/t10k" --db "$TMP/te" --limit 1500 2>>"$TMP/ing.err"
idx2png "$FASHION/train" "$TMP/png" --limit 3000 2>>"$TMP/ing.err"
mkdir -p "$TMP/one" && mv "$TMP/png/Trouser" "$TMP/one/"
gambar-ingest -q --source "$TMP/one" --db "$TMP/collapsed" --size 28x28 --channels 1 2>>"$TMP/ing.err"
python3 - "$TMP/noise" <<'PY'
import os, random, struct, sys, zlib
d = sys.argv[1]; os.makedirs(d, exist_ok=True); r = random.Random(5)
def ch(t, x): return struct.pack('>I', len(x)) + t + x + struct.pack('>I', zlib.crc32(t + x))
for i in range(600):
    rows = b''.join(b'\x00' + bytes(r.randrange(256) for _ in range(28)) for _ in range(28))
    open('%s/n%04d.png' % (d, i), 'wb').write(b'\x89PNG\r\n\x1a\n' + ch(b'IHDR', struct.pack('>IIBBBBB', 28, 28, 8, 0, 0, 0, 0))
                                              + ch(b'IDAT', zlib.compress(rows)) + ch(b'IEND', b''))
PY
gambar-ingest -q --source "$TMP/noise" --db "$TMP/noise_db" --size 28x28 --channels 1 2>>"$TMP/ing.err"
check "test datasets" test -f "$TMP/tr/data.mdb" -a -f "$TMP/te/data.mdb" -a -f "$TMP/collapsed/data.mdb" -a -f "$TMP/noise_db/data.mdb"

# ---- command line -------------------------------------------------------------
check_exit help_exit0 0 $E --help
check help_on_stdout grep -q 'Usage: gambar-eval' "$TMP/out"
check_exit version_exit0 0 $E --version
check_exit no_db_exit2 2 $E --samples-db "$TMP/te"
check_exit two_modes_exit2 2 $E --db "$TMP/tr" --samples-db "$TMP/te" --ckpt x
check_exit bad_n_exit2 2 $E --db "$TMP/tr" --samples-db "$TMP/te" --n 3

# ---- the feature network: fitted by --fit-features, refused on unlabelled data
check_exit fit_unlabelled_exit3 3 $E --fit-features --db "$TMP/noise_db" --out "$TMP/fn_bad.gck"
check fit_unlabelled_says_why grep -q "no class labels" "$TMP/err"
check fit_unlabelled_wrote_nothing test ! -e "$TMP/fn_bad.gck"
$E --fit-features --db "$TMP/te" --test-db "$TMP/tr" --epochs 1 --out "$TMP/fn.gck" >"$TMP/fit.out" 2>"$TMP/fit.err"
check fit_exit0 test $? -eq 0 -a -f "$TMP/fn.gck"
acc=$(sed -n 's/^test_accuracy //p' "$TMP/fit.out")
echo "feature net on 1500 images, 1 epoch: accuracy on 3000 others $acc" >&2
check fit_small_accuracy python3 -c "import sys; sys.exit(0 if float('$acc') > 0.6 else 1)"
check_exit fit_file_usable 0 $E --db "$TMP/tr" --samples-db "$TMP/te" --n 100 --features "$TMP/fn.gck" --no-cache

# ---- anchors: real vs real, noise vs real, collapsed vs real -------------------
# First run without --features: eval fits and caches its own network.
$E --db "$TMP/tr" --samples-db "$TMP/te" --n 1500 --test-db "$TMP/te" --json "$TMP/rr.json" --epochs 2 \
    >"$TMP/rr.out" 2>"$TMP/rr.err"
check rr_exit0 test $? -eq 0
check rr_fitted_with_message grep -q "fitting one" "$TMP/rr.err"
check rr_features_cached sh -c "ls '$TMP/tr'/features-*.gck >/dev/null"
check rr_stats_cached sh -c "ls '$TMP/tr'/evalstats-*.gck >/dev/null"
$E --db "$TMP/tr" --samples-db "$TMP/te" --n 1500 --json "$TMP/rr2.json" >"$TMP/rr2.out" 2>"$TMP/rr2.err"
check rr_cache_reused sh -c "grep -q 'using the cached feature network' '$TMP/rr2.err' && grep -q 'using cached real-data' '$TMP/rr2.err'"
# the cache keeps the real-data statistics in float32 (feature net file
# format), so the FID agrees to ~1e-7 relative, not bit for bit (the JSON
# numbers now have every digit; %.6g used to hide the difference)
FID1=$(json "$TMP/rr.json" "d['metrics']['fid']"); FID2=$(json "$TMP/rr2.json" "d['metrics']['fid']")
check rr_cache_same_fid python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - b) > 1e-6 * max(abs(a), 1e-9))" "$FID1" "$FID2"
$E --db "$TMP/tr" --samples-db "$TMP/noise_db" --n 600 --json "$TMP/nz.json" >/dev/null 2>"$TMP/nz.err"
check nz_exit0 test $? -eq 0
$E --db "$TMP/tr" --samples-db "$TMP/collapsed" --n 300 --json "$TMP/co.json" >/dev/null 2>"$TMP/co.err"
check co_exit0 test $? -eq 0
fid_rr=$(json "$TMP/rr.json" "d['metrics']['fid']"); fid_nz=$(json "$TMP/nz.json" "d['metrics']['fid']")
fid_co=$(json "$TMP/co.json" "d['metrics']['fid']")
echo "FID real-vs-real $fid_rr, noise-vs-real $fid_nz, one-class-vs-real $fid_co" >&2
for f in rr nz co; do
    echo "$f: $(json "$TMP/$f.json" "d['metrics']")" >&2
done
pyc() { python3 -c "import json; r=json.load(open('$TMP/rr.json'))['metrics']; n=json.load(open('$TMP/nz.json'))['metrics']; c=json.load(open('$TMP/co.json'))['metrics']; import sys; sys.exit(0 if ($1) else 1)"; }
check anchor_fid_rr_small pyc "r['fid'] < 5"
check anchor_fid_noise_large pyc "n['fid'] > 20 * r['fid'] and n['fid'] > 50"
check anchor_fid_collapsed_large pyc "c['fid'] > 10 * r['fid']"
check anchor_kid_order pyc "abs(r['kid']) < n['kid'] / 20"
check anchor_pr_real_high pyc "r['precision'] > 0.7 and r['recall'] > 0.7"
check anchor_pr_noise_low pyc "n['precision'] < 0.5 and n['recall'] < 0.05"
check anchor_class_kl pyc "r['class_kl'] < 0.1 and c['class_kl'] > 1.5"
check anchor_collapsed_recall_low pyc "c['recall'] < 0.6 * r['recall']"
check anchor_classifier_accuracy pyc "r['classifier_accuracy'] > 0.72"
check co_over_class test "$(json "$TMP/co.json" "d['bias']['most_over_represented']")" = "Trouser"
check rr_json_fields json "$TMP/rr.json" "all(k in d for k in ['dataset_digest','features','bias','memorisation','metrics'])"
check rr_json_features_trained test "$(json "$TMP/rr.json" "d['features']")" = trained
check rr_near_copy_small pyc "r['near_copy_fraction'] < 0.05"
check rr_closest_has_provenance json "$TMP/rr.json" "d['memorisation']['closest'][0]['source_uri'].startswith('idx://')"

# ---- checkpoints: card, closest pairs, conditional accuracy ---------------------
CK=$(mkckpt "$TMP/ck" --steps 10 --seed 3)
$E --db "$TMP/tr" --ckpt "$CK" --n 400 --card --json "$TMP/ck.json" --worst-n 3 >"$TMP/ck.out" 2>"$TMP/ck.err"
check ck_exit0 test $? -eq 0
check ck_card_written test -s "$CK.card.md"
for s in "## Model" "## Training" "## Dataset" "### Licenses" "Attributions" "### Opt-outs" "## Evaluation" "## Known limitations" \
         "| fid |" "| class_kl |" "| near_copy_fraction |" "Command line" "Trouser"; do
    check "card_has_$(echo "$s" | tr -cd 'a-zA-Z_')" grep -qF "$s" "$CK.card.md"
done
check card_license_table grep -qF "| MIT | 3000 |" "$CK.card.md"
check card_attribution grep -qF -- "- Zalando SE, Fashion-MNIST (3000 images)" "$CK.card.md"
check ck_closest_license json "$TMP/ck.json" "d['memorisation']['closest'][0]['license'] == 'MIT' and d['memorisation']['closest'][0]['attribution'].startswith('Zalando')"
check ck_pairs_written test -f "$CK.nearest/pair-00.png" -a -f "$CK.nearest/pair-02.png" -a ! -e "$CK.nearest/pair-03.png"
check ck_pair_size python3 -c "import struct,sys; d=open('$CK.nearest/pair-00.png','rb').read(); sys.exit(0 if struct.unpack('>II', d[16:24]) == (58, 28) else 1)"
check ck_json_step json "$TMP/ck.json" "d['kind'] == 'checkpoint' and d['step'] == 10 and len(d['checkpoint_digest']) == 64"
CKC=$(mkckpt "$TMP/ckc" --classes "$FASHION_NAMES" --steps 5 --seed 4)
$E --db "$TMP/tr" --ckpt "$CKC" --n 300 --worst-n 2 --worst "$TMP/ckc.pairs" --json "$TMP/ckc.json" >/dev/null 2>"$TMP/ckc.err"
check ckc_exit0 test $? -eq 0
check ckc_conditional_accuracy json "$TMP/ckc.json" "0 <= d['metrics']['conditional_accuracy'] <= 1 and 'requested_accuracy' in d['bias']['classes'][0]"
# eval measures the pixels gambar-sample writes: a closest pair's generated
# half is, pixel for pixel, the sampler's image of the seed and class the
# pair names (image i of --seed S is seed S * 2^32 + i; here S = 1)
png() { python3 "$GAMBAR_ROOT/tests/png_tool.py" "$@"; }
pair_is_sample() { # JSON CKPT J: closest pair J against gambar-sample
    c="d['memorisation']['closest'][$3]"
    s=$(json "$1" "$c['seed']") k=$(json "$1" "$c['class_index']") p=$(json "$1" "$c['png']")
    [ "$s" = "$(json "$1" "$c['generated'] + 2**32")" ] || return 1
    if [ "$k" = None ]; then gambar-sample -q --ckpt "$2" --seed "$s" --out "$TMP/ps.png"
    else gambar-sample -q --ckpt "$2" --seed "$s" --class "$k" --out "$TMP/ps.png"; fi >/dev/null 2>&1 || return 1
    a=$(png rawhash "$p" 0 28) b=$(png rawhash "$TMP/ps.png")
    echo "pair $3 of $2 (seed $s class $k): $a vs $b" >&2
    [ "$a" = "$b" ]
}
check eval_pixels_are_sampler_pixels pair_is_sample "$TMP/ck.json" "$CK" 0
check eval_pixels_are_sampler_pixels_2 pair_is_sample "$TMP/ck.json" "$CK" 2
check eval_pixels_are_sampler_pixels_conditional pair_is_sample "$TMP/ckc.json" "$CKC" 0
check eval_pixels_are_sampler_pixels_conditional_2 pair_is_sample "$TMP/ckc.json" "$CKC" 1

# ---- metrics on the PUB socket ---------------------------------------------------
train_sub --in "ipc://$TMP/em.sock" --timeout-ms 20000 --count 5 >"$TMP/sub.out" 2>"$TMP/sub.err" &
sp=$!
$E --db "$TMP/tr" --samples-db "$TMP/te" --n 300 --metrics "ipc://$TMP/em.sock" --run r1 >/dev/null 2>"$TMP/pub.err"
wait $sp
check pub_metrics_received grep -q "^metric fid 0 0 .* eval r1" "$TMP/sub.out"

# ---- bad input --------------------------------------------------------------------
check_exit missing_ckpt_exit4 4 $E --db "$TMP/tr" --ckpt "$TMP/nope.gck" --json "$TMP/bad.json"
check missing_ckpt_named grep -q "nope.gck" "$TMP/err"
head -c 3000 "$CK" >"$TMP/trunc.gck"
check_exit corrupt_ckpt_exit3 3 $E --db "$TMP/tr" --ckpt "$TMP/trunc.gck" --json "$TMP/bad.json" --card
check corrupt_ckpt_named grep -q "trunc.gck" "$TMP/err"
CK32=$(mkckpt "$TMP/ck32" --family dcgan32 --steps 0)
check_exit wrong_resolution_exit3 3 $E --db "$TMP/tr" --ckpt "$CK32" --json "$TMP/bad.json" --card
check wrong_resolution_says_why grep -q "32x32x1 images but dataset" "$TMP/err"
CKRGB=$(mkckpt "$TMP/ckrgb" --channels 3 --steps 0)
check_exit wrong_channels_exit3 3 $E --db "$TMP/tr" --ckpt "$CKRGB" --json "$TMP/bad.json"
check wrong_channels_says_why grep -q "28x28x3 images but dataset" "$TMP/err"
check bad_input_wrote_nothing test ! -e "$TMP/bad.json" -a ! -e "$CK32.card.md" -a ! -e "$TMP/trunc.gck.card.md"
check_exit missing_db_exit4 4 $E --db "$TMP/nodb" --samples-db "$TMP/te"
gambar-ingest -q --source "idx:$FASHION/train" --db "$TMP/tiny" --limit 5 2>/dev/null
check_exit tiny_db_exit3 3 $E --db "$TMP/tiny" --samples-db "$TMP/te"
check tiny_db_says_why grep -q "at least 10" "$TMP/err"
check_exit wrong_features_exit3 3 $E --db "$TMP/tr" --samples-db "$TMP/te" --features "$CK"
check wrong_features_says_why grep -q "not a feature network" "$TMP/err"

# ---- unlabelled data: the random-CNN fallback ----------------------------------------
$E --db "$TMP/noise_db" --samples-db "$TMP/te" --n 300 --json "$TMP/ul.json" >/dev/null 2>"$TMP/ul.err"
check ul_exit0 test $? -eq 0
check ul_warns grep -q "random CNN" "$TMP/ul.err"
check ul_json_says_fallback json "$TMP/ul.json" "d['features'] == 'random_cnn' and d['bias'] is None"
