#!/bin/sh
# t_train_text_db.sh - gambar-train --conditional text --db reads the
# dataset ONCE at start: the attribution count (train_db_read) and the
# caption vocabulary (train_vocab_*) come from one pass. The dataset: 64
# Fashion-MNIST training images with synthetic captions and a CC-BY-4.0
# attribution (manifest), plus 16 test images with neither. Checked:
#   - the vocabulary: exactly the words seen at least twice in the 257
#     captions (one added with two words seen once), computed here independently (tokenizer rules of
#     common/nn/textenc.h) and read back through gambar-sample's
#     never-saw warning (a vocabulary word is never named, a word seen
#     once always is); its size in the checkpoint;
#   - the notes: attribution_count=64 of dataset_count=80;
#   - one pass: the trainer maps the dataset's files (LMDB opens them with
#     mmap, counted by tests/faultinj) as often for a text run as for a
#     class run, which reads it once (two passes mapped them twice);
#   - a dataset without captions is still refused before training (exit 3).
. "$(dirname "$0")/lib.sh"
FI=$GAMBAR_TOOLS/libfaultinj.so
fashion_captions --train "$FASHION/train" --images "$FASHION/train" --seed 5 --out "$TMP/c.txt" 2>/dev/null ||
    { notok fashion_captions; exit 0; }
# image 0 gets one more caption, "a zorblax quux gown": two words seen nowhere else
python3 - "$TMP/c.txt" <<'PY'
import sys
L = open(sys.argv[1], encoding="utf-8").read().split("\n")
i = next(k for k, l in enumerate(L) if not l.startswith("#"))
L[i] += "|a zorblax quux gown"
open(sys.argv[1], "w", encoding="utf-8").write("\n".join(L))
PY
printf 'path,license,attribution\n*,CC-BY-4.0,"Zalando Research, Fashion-MNIST"\n' >"$TMP/m.csv"
gambar-ingest -q --source "idx:$FASHION/train" --db "$TMP/db" --limit 64 --captions "$TMP/c.txt" --manifest "$TMP/m.csv" \
    2>"$TMP/ingest.err" && gambar-ingest -q --source "idx:$FASHION/t10k" --db "$TMP/db" --limit 16 2>>"$TMP/ingest.err" &&
    gambar-ingest -q --source "idx:$FASHION/t10k" --db "$TMP/nocap" --limit 16 2>>"$TMP/ingest.err" ||
    { notok ingest; cat "$TMP/ingest.err" >&2; exit 0; }

# train MODE DIR [env...]: 2 steps with --conditional MODE; sets rc
train() {
    mode=$1; d=$2; shift 2
    gambar-augment -q --db "$TMP/db" --out "ipc://$TMP/s.sock" --batch 16 --epochs 4 --seed 1 2>>"$TMP/aug.log" &
    ap=$!
    env "$@" gambar-train --model dcgan28 --width 8 --threads 1 --seed 3 --conditional "$mode" --db "$TMP/db" \
        --in "ipc://$TMP/s.sock" --ckpt-dir "$d" --ckpt-every 2 --steps 2 2>"$TMP/train-$mode.log"
    rc=$?
    kill $ap 2>/dev/null; wait $ap 2>/dev/null
}
count="FAULTINJ_FN=mmap FAULTINJ_PATH=$TMP/db"
if [ -n "$(nm -u "$GAMBAR_BIN/gambar-train" 2>/dev/null | grep __asan_init)" ]; then FI=""; fi
train text "$TMP/t" ${FI:+LD_PRELOAD=$FI $count FAULTINJ_COUNT_FILE=$TMP/n.text}
check "text run exits 0" test $rc -eq 0
CK="$TMP/t/ckpt-0000000002.gck"
train yes "$TMP/c" ${FI:+LD_PRELOAD=$FI $count FAULTINJ_COUNT_FILE=$TMP/n.class}
check "class run exits 0" test $rc -eq 0

# ---- the vocabulary, computed here ---------------------------------------------------------
python3 - "$TMP/c.txt" "$TMP" <<'PY'
import re, sys
lines = [l.rstrip("\n") for l in open(sys.argv[1], encoding="utf-8") if not l.startswith("#")][:64]
caps = [c for l in lines for c in l.split("|")]
count = {}
for c in caps:  # ASCII captions: lower-case, words are runs of letters and digits, ' between two joins
    for w in re.findall(r"[a-z0-9]+(?:'[a-z0-9]+)*", c.lower()):
        w = w.replace("'", "")
        count[w] = count.get(w, 0) + 1
vocab = sorted(w for w, n in count.items() if n >= 2)
once = sorted(w for w, n in count.items() if n == 1)
open(sys.argv[2] + "/caps.n", "w").write("%d\n" % len(caps))
open(sys.argv[2] + "/vocab.txt", "w").write("\n".join(vocab) + "\n")
open(sys.argv[2] + "/once.txt", "w").write("\n".join(once) + "\n")
PY
nv=$(wc -l <"$TMP/vocab.txt")
check "captions counted in the one pass ($(cat "$TMP/caps.n"))" grep -q "db $TMP/db: $(cat "$TMP/caps.n") captions, .* vocabulary of $nv " "$TMP/train-text.log"
check "checkpoint vocabulary size = the words seen twice ($nv)" sh -c "ckpt_diff --info '$CK' | grep -qx 'text_vocab=$nv'"
# every vocabulary word, 20 to a prompt: none is named as never seen
bad=0
xargs -n 20 <"$TMP/vocab.txt" >"$TMP/vprompts"
while read -r p; do
    gambar-sample --ckpt "$CK" --out "$TMP/v.png" --prompt "$p" 2>"$TMP/v.err" >/dev/null || bad=$((bad + 1))
    grep -q "never saw" "$TMP/v.err" && bad=$((bad + 1)) && cat "$TMP/v.err" >&2
done <"$TMP/vprompts"
check "every word seen twice is in the vocabulary" test $bad -eq 0
# the words seen once: each named as never seen
no=$(wc -w <"$TMP/once.txt")
if [ "$no" -gt 0 ]; then
    gambar-sample --ckpt "$CK" --out "$TMP/o.png" --prompt "$(head -n 30 "$TMP/once.txt" | tr '\n' ' ')" 2>"$TMP/o.err" >/dev/null
    k=$(head -n 30 "$TMP/once.txt" | wc -l)
    check "the $k words seen once are not ($no in all)" grep -q "$k words\? the model never saw" "$TMP/o.err"
else
    skip "words seen once" "none in these captions"
fi

# ---- the notes from the same pass -----------------------------------------------------------
ckpt_tool dump "$CK" >"$TMP/dump" 2>&1
check "attribution_count=64" grep -qx 'note attribution_count=64' "$TMP/dump"
check "dataset_count=80" grep -qx 'note dataset_count=80' "$TMP/dump"
check "license summary" grep -qx 'note license_summary=CC-BY-4.0: 64, unknown: 16' "$TMP/dump"

# ---- one pass ---------------------------------------------------------------------------------
if [ -n "$FI" ]; then
    nt=$(cat "$TMP/n.text" 2>/dev/null); nc=$(cat "$TMP/n.class" 2>/dev/null)
    check "the text run maps the dataset as often as the class run ($nt vs $nc)" test -n "$nt" -a "$nt" = "$nc" -a "${nc:-0}" -gt 0
else
    skip "one pass" "the LD_PRELOAD library is not built with the sanitizers"
fi

# ---- no captions ---------------------------------------------------------------------------------
check_exit "a dataset without captions: exit 3" 3 gambar-train --model dcgan28 --width 8 --conditional text \
    --db "$TMP/nocap" --in "ipc://$TMP/none.sock" --ckpt-dir "$TMP/n" --steps 1
check "a dataset without captions: says why" grep -q "has no captions" "$TMP/err"
rm -rf "$TMP"
