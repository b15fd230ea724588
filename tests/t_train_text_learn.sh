#!/bin/sh
# t_train_text_learn.sh - the matching-aware discriminator learns (GAN-CLS,
# issue 10): gambar-train --conditional text on 5000 captioned
# Fashion-MNIST images (t10k, synthetic captions) for 240 steps of 64, then
# on 500 held-out images of the train split with their own captions
# (text_score): D scores an image with its own caption above the same
# image with a caption of another class, for most images and on average.
# Measured (width 16, 1 thread): wins 0.59 / 0.64 / 0.72 after 100 / 200 /
# 300 steps (0.64 at 240), mean logit gap about 1.2; chance is 0.5 (sd 0.022
# for 500 pairs: 0.58 is 3.6 sd above it). About 30 s.
. "$(dirname "$0")/lib.sh"

fashion_captions --train "$FASHION/train" --images "$FASHION/t10k" --seed 5 --out "$TMP/c10.txt" 2>/dev/null &&
    fashion_captions --train "$FASHION/train" --images "$FASHION/train" --seed 5 --out "$TMP/ctr.txt" 2>/dev/null &&
    gambar-ingest -q --source "idx:$FASHION/t10k" --db "$TMP/db" --limit 5000 --captions "$TMP/c10.txt" &&
    gambar-ingest -q --source "idx:$FASHION/train" --db "$TMP/held" --limit 500 --captions "$TMP/ctr.txt" ||
    { notok text_learn_setup; exit 0; }

gambar-augment -q --db "$TMP/db" --out "ipc://$TMP/s.sock" --batch 64 --epochs 20 --seed 1 2>/dev/null &
sp=$!
t0=$(date +%s)
gambar-train --in "ipc://$TMP/s.sock" --model dcgan28 --width 16 --threads 1 --conditional text --db "$TMP/db" \
    --ckpt-dir "$TMP/ck" --steps 240 --ckpt-every 1000 --log-every 60 2>"$TMP/train.log"
rc=$?
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check text_learn_train_exit0 test $rc -eq 0
echo "# trained 240 steps in $(($(date +%s) - t0)) s" >&2
text_score "$TMP/ck/ckpt-0000000240.gck" "$TMP/held" >"$TMP/score" 2>&1
cat "$TMP/score" >&2
get() { sed -n "s/^$1=//p" "$TMP/score"; }
check text_learn_scored_500_pairs test "$(get pairs)" = 500
check text_learn_match_above_mismatch awk -v a="$(get match_mean)" -v b="$(get mismatch_mean)" 'BEGIN{exit !(a > b + 0.3)}'
check text_learn_wins_above_chance awk -v w="$(get wins)" 'BEGIN{exit !(w >= 0.58)}'
