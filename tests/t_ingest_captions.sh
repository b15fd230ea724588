#!/bin/sh
# Captions (issue 10): NAME.txt sidecars, the --manifest caption column
# and --captions FILE for IDX
# sources reach Example.captions checked (UTF-8, 256-byte cap at a
# character boundary, at most 16 per image), counted in the summary,
# --json and DatasetInfo; datasets without captions still read the same;
# the synthetic Fashion-MNIST captions are deterministic and balanced;
# gambar-augment sends one caption per image in Batch.captions, a pure
# function of (seed, epoch, index), the same after --start-batch.
. "$(dirname "$0")/lib.sh"

field() { sed -n "s/^$1 //p" "$2" | head -n 1; }
json() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" "$2" | head -n 1; }

SRC=$TMP/src
idx2png "$FASHION/train" "$SRC" --limit 40 >/dev/null 2>&1 || { notok "idx2png"; exit 0; }
# The files in dataset order: classes sorted, then names.
find "$SRC" -name '*.png' | LC_ALL=C sort >"$TMP/files"
fa=$(sed -n 1p "$TMP/files"); fb=$(sed -n 2p "$TMP/files"); fc=$(sed -n 3p "$TMP/files")
fd=$(sed -n 4p "$TMP/files"); fe=$(sed -n 5p "$TMP/files")
ff=$(sed -n 6p "$TMP/files"); fg=$(sed -n 7p "$TMP/files")
# a: BOM, CRLF, a blank line, spaces around, a lone CR inside
printf '\357\273\277a dark\rboot\r\n\r\n  boot, dark  \r\n' >"${fa%.png}.txt"
# b: one good line, one invalid UTF-8 line (line 2), one overlong encoding (line 3)
printf 'good one\nbad \377 here\nover \300\257 long\n' >"${fb%.png}.txt"
# c: 300 bytes: 255 'x' then 'é' (2 bytes) straddling byte 256, then more
{ head -c 255 /dev/zero | tr '\0' x; printf '\303\251'; head -c 43 /dev/zero | tr '\0' y; echo; } >"${fc%.png}.txt"
# d: 20 captions: 16 kept, 4 dropped
for i in $(seq 1 20); do echo "caption $i"; done >"${fd%.png}.txt"
# e: only invalid (one line): no caption at all; 2 + 1 = 3 invalid in all
printf '\377\376\n' >"${fe%.png}.txt"

check_exit "folder with sidecars: exit 0" 0 gambar-ingest --source "$SRC" --db "$TMP/db" --json "$TMP/j.json"
dbinfo "$TMP/db" --example 0 >"$TMP/e0"
check "sidecar: BOM, CR, blank line and spaces dropped, inner CR a space" \
    [ "$(field ex_ncaptions "$TMP/e0")" = 2 -a "$(sed -n 's/^ex_caption //p' "$TMP/e0" | paste -sd'#' -)" = "a dark boot#boot, dark" ]
dbinfo "$TMP/db" --example 1 >"$TMP/e1"
check "sidecar: invalid UTF-8 lines skipped, the good one kept" \
    [ "$(field ex_ncaptions "$TMP/e1")" = 1 -a "$(field ex_caption "$TMP/e1")" = "good one" ]
check "invalid UTF-8: message names the file and line 2" grep -qF "${fb%.png}.txt:2: caption is not valid UTF-8" "$TMP/err"
check "overlong UTF-8 encoding is invalid too (line 3)" grep -qF "${fb%.png}.txt:3: caption is not valid UTF-8" "$TMP/err"
dbinfo "$TMP/db" --example 2 >"$TMP/e2"
cap2=$(field ex_caption "$TMP/e2")
check "over 256 bytes: cut at the character boundary (255 bytes, no half 'é')" [ "$(printf %s "$cap2" | wc -c)" = 255 ]
check "over 256 bytes: message says so" grep -qF "${fc%.png}.txt:1: caption of 300 bytes cut to 255 (at most 256)" "$TMP/err"
dbinfo "$TMP/db" --example 3 >"$TMP/e3"
check "more than 16: 16 kept, in order" \
    [ "$(field ex_ncaptions "$TMP/e3")" = 16 -a "$(sed -n 's/^ex_caption //p' "$TMP/e3" | tail -n 1)" = "caption 16" ]
check "more than 16: message" grep -q "more than 16 captions for one image" "$TMP/err"
dbinfo "$TMP/db" --example 4 >"$TMP/e4"
dbinfo "$TMP/db" --example 5 >"$TMP/e5"
check "the .txt sidecars are not counted as ignored files" sh -c "grep -q \": 5 .txt file(s): the captions of the .png\" \"$TMP/err\" && ! grep -q \"not ending in .png ignored\" \"$TMP/err\""
check "all-invalid sidecar and no sidecar: no captions" [ "$(field ex_ncaptions "$TMP/e4")" = 0 -a "$(field ex_ncaptions "$TMP/e5")" = 0 ]
dbinfo "$TMP/db" >"$TMP/i"
check "DatasetInfo counts: 4 examples with captions, 2+1+1+16 captions" \
    [ "$(field examples_with_captions "$TMP/i")" = 4 -a "$(field captions_total "$TMP/i")" = 20 ]
check "summary line counts captions" grep -q "captions: 4 example(s) with captions, 20 caption(s) in the dataset; this run: 3 invalid UTF-8 skipped, 1 cut to 256 bytes, 4 over 16 per image dropped" "$TMP/err"
check "--json counts captions" [ "$(json examples_with_captions "$TMP/j.json")" = 4 -a "$(json captions_total "$TMP/j.json")" = 20 \
    -a "$(json invalid_utf8 "$TMP/j.json")" = 3 -a "$(json truncated "$TMP/j.json")" = 1 -a "$(json dropped_over_max "$TMP/j.json")" = 4 ]

# (check_exit keeps the stderr of its command in $TMP/err.)
# --manifest caption column: '|' separates captions, added after the sidecar's; quoted commas kept.
relf=${ff#"$SRC"/}
relg=${fg#"$SRC"/}
printf 'path,license,attribution,caption\n%s,CC0,someone,"one, with comma|two"\n%s,CC0,x\n"*",MIT,,"never used"\n%s,CC0,,"bad \377|ok"\n' \
    "$relf" "$relg" "${fa#"$SRC"/}" >"$TMP/man.csv"
check_exit "manifest with a caption column: exit 0" 0 gambar-ingest --source "$SRC" --db "$TMP/dbm" --manifest "$TMP/man.csv"
dbinfo "$TMP/dbm" --example 5 >"$TMP/m5"
check "manifest: caption cell split at '|', quoted comma kept" \
    [ "$(sed -n 's/^ex_caption //p' "$TMP/m5" | paste -sd'#' -)" = "one, with comma#two" -a "$(field ex_license "$TMP/m5")" = CC0 ]
dbinfo "$TMP/dbm" --example 0 >"$TMP/m0"
check "manifest: its captions follow the sidecar's" \
    [ "$(sed -n 's/^ex_caption //p' "$TMP/m0" | paste -sd'#' -)" = "a dark boot#boot, dark#ok" ]
check "manifest: bad UTF-8 named by manifest file and line 5" grep -qF "$TMP/man.csv:5: caption is not valid UTF-8" "$TMP/err"
dbinfo "$TMP/dbm" --example 6 >"$TMP/m6"
check "manifest: no caption column, and the '*' entry's caption, give none" \
    [ "$(field ex_ncaptions "$TMP/m6")" = 0 -a "$(field ex_license "$TMP/m6")" = CC0 ]

# Captions do not change what an image is: the same folder without sidecars has the same digest.
mkdir -p "$TMP/plain" && cp -r "$SRC" "$TMP/plain/" && find "$TMP/plain" -name '*.txt' -delete
gambar-ingest -q --source "$TMP/plain/src" --db "$TMP/dbplain" 2>/dev/null
dbinfo "$TMP/dbplain" >"$TMP/ip"
check "no captions: DatasetInfo says 0 and 0" [ "$(field examples_with_captions "$TMP/ip")" = 0 -a "$(field captions_total "$TMP/ip")" = 0 ]
check "captions leave the dataset digest alone" [ "$(field digest "$TMP/ip")" = "$(field digest "$TMP/i")" ]

# A dataset written before captions existed: proto3 leaves zero and empty
# fields out, so the old Example/DatasetInfo bytes are those of a dataset
# without captions; the old Example.caption (string, field 8) reads as one
# caption. Checked with protoc against the old schema.
OLDP=$TMP/oldproto; mkdir -p "$OLDP"
sed 's/repeated string captions = 8;.*/string caption = 8;/; /examples_with_captions\|captions_total\|datasets written before captions/d' \
    "$GAMBAR_ROOT/proto/dataset.proto" >"$OLDP/dataset.proto"
if command -v protoc >/dev/null; then
    printf 'index: 3 height: 1 width: 1 channels: 1 pixels: "x" caption: "an old caption"' |
        protoc --encode=gambar.Example -I"$OLDP" "$OLDP/dataset.proto" >"$TMP/old.bin"
    protoc --decode=gambar.Example -I"$GAMBAR_ROOT/proto" "$GAMBAR_ROOT/proto/dataset.proto" <"$TMP/old.bin" >"$TMP/old.txt"
    check "old Example.caption reads as one of Example.captions" grep -q '^captions: "an old caption"' "$TMP/old.txt"
    printf 'format_version: 1 count: 7 class_counts: 7' |
        protoc --encode=gambar.DatasetInfo -I"$OLDP" "$OLDP/dataset.proto" >"$TMP/oldi.bin"
    protoc --decode=gambar.DatasetInfo -I"$GAMBAR_ROOT/proto" "$GAMBAR_ROOT/proto/dataset.proto" <"$TMP/oldi.bin" >"$TMP/oldi.txt"
    check "old DatasetInfo decodes, no caption counts" sh -c "grep -q '^count: 7' '$TMP/oldi.txt' && ! grep -q captions '$TMP/oldi.txt'"
else
    skip "old Example.caption reads as one of Example.captions" "no protoc"
fi

# --- IDX + --captions, with the synthetic Fashion-MNIST captions ---
fashion_captions --train "$FASHION/train" --images "$FASHION/t10k" --seed 5 --out "$TMP/c5.txt" 2>"$TMP/stats5"
fashion_captions --train "$FASHION/train" --images "$FASHION/t10k" --seed 5 --out "$TMP/c5b.txt" 2>/dev/null
fashion_captions --train "$FASHION/train" --images "$FASHION/t10k" --seed 6 --out "$TMP/c6.txt" 2>/dev/null
check "captions script output: one line per t10k record" [ "$(grep -vc '^#' "$TMP/c5.txt")" = 10000 ]
check "captions: same seed, same file" cmp -s "$TMP/c5.txt" "$TMP/c5b.txt"
check "captions: another seed, other phrasings, same thresholds" \
    sh -c "! cmp -s '$TMP/c5.txt' '$TMP/c6.txt' && [ \"\$(grep '^# [A-Z]' '$TMP/c5.txt')\" = \"\$(grep '^# [A-Z]' '$TMP/c6.txt')\" ]"
check "captions: 10 per-class threshold lines in the header" [ "$(grep -c '^# .* | .* | .* | ' "$TMP/c5.txt")" = 11 ]
# Balance: on t10k (thresholds from train) every brightness tercile of every class holds 25..42%.
bal=$(sed -n 's/.*brightness \([0-9.]*\)\/\([0-9.]*\)\/\([0-9.]*\).*/\1 \2 \3/p' "$TMP/stats5" |
      awk '{for (i = 1; i <= 3; i++) if ($i < 0.25 || $i > 0.42) bad++} END {print NR, bad + 0}')
check "captions: brightness words balanced per class on t10k ($bal)" [ "$bal" = "10 0" ]
check "captions: class names appear (record 0 of t10k is an ankle boot)" \
    sh -c "grep -v '^#' '$TMP/c5.txt' | head -n 1 | grep -q 'boot'"

check_exit "idx + --captions: exit 0" 0 gambar-ingest --source "idx:$FASHION/t10k" --db "$TMP/dbi" --limit 200 --captions "$TMP/c5.txt" --json "$TMP/ji.json"
dbinfo "$TMP/dbi" >"$TMP/ii"
check "idx: 200 examples with 4 captions each" [ "$(field examples_with_captions "$TMP/ii")" = 200 -a "$(field captions_total "$TMP/ii")" = 800 ]
dbinfo "$TMP/dbi" --example 7 >"$TMP/ei7"
want=$(grep -v '^#' "$TMP/c5.txt" | sed -n 8p | tr '|' '\n')
check "idx: record 7 has line 7's captions" [ "$(sed -n 's/^ex_caption //p' "$TMP/ei7")" = "$want" ]
check_exit "--captions with a folder source: usage error" 2 gambar-ingest --source "$SRC" --db "$TMP/dbx" --captions "$TMP/c5.txt"
check_exit "--captions FILE missing: I/O error" 4 gambar-ingest --source "idx:$FASHION/t10k" --db "$TMP/dby" --limit 5 --captions "$TMP/nope.txt"
printf '# header\nfirst\nsecond\n' >"$TMP/short.txt"
gambar-ingest --source "idx:$FASHION/t10k" --db "$TMP/dbs" --limit 5 --captions "$TMP/short.txt" 2>"$TMP/errs"
dbinfo "$TMP/dbs" >"$TMP/is"
check "short captions file: the records after it get none, said once" \
    [ "$(field captions_total "$TMP/is")" = 2 -a "$(grep -c 'the records after it get no captions' "$TMP/errs")" = 1 ]

# --- gambar-augment: Batch.captions ---
n_ep=0
sink() { # NAME AUGMENT-ARGS...: run one augment -> batch_sink --indices pair
    name=$1; shift
    n_ep=$((n_ep + 1)); ep="ipc://$TMP/ep$n_ep"
    batch_sink --in "$ep" --indices >"$TMP/$name.jsonl" 2>"$TMP/$name.sink.err" &
    spid=$!
    gambar-augment -q --db "$TMP/dbi" --out "$ep" --batch 16 "$@" 2>"$TMP/$name.aug.err"
    wait $spid
}
sink s1 --epochs 3 --seed 1
sink s1b --epochs 3 --seed 1
sink s2 --epochs 3 --seed 2
sink tail --epochs 3 --seed 1 --start-batch 13
sink thr --epochs 3 --seed 1 --threads 3
caps() { grep '"seq"' "$TMP/$1.jsonl" | jq -c '[.seq, .indices, .captions]'; }
check "augment: every image of every batch has a caption (36 batches)" \
    [ "$(grep '"seq"' "$TMP/s1.jsonl" | jq -s 'length == 36 and all(.[]; (.captions | length) == 16 and all(.captions[]; length > 0))')" = true ]
check "augment: each caption is one of that example's" sh -c '
    grep "\"seq\"" "'"$TMP"'/s1.jsonl" | head -n 3 | jq -r ".indices as \$i | .captions | to_entries[] | \"\(\$i[.key]) \(.value)\"" |
    while read -r ix cap; do
        dbinfo "'"$TMP"'/dbi" --example "$ix" | grep -qxF "ex_caption $cap" || exit 1
    done'
check "augment: same seed, same captions" [ "$(caps s1)" = "$(caps s1b)" ]
check "augment: 3 builder threads, same captions" [ "$(caps s1)" = "$(caps thr)" ]
check "augment: another seed picks other captions" [ "$(caps s1)" != "$(caps s2)" ]
# The draw depends on (seed, epoch, index): an example shows more than one of its captions across epochs.
multi=$(grep '"seq"' "$TMP/s1.jsonl" | jq -r '.indices as $i | .captions | to_entries[] | "\($i[.key])\t\(.value)"' |
        sort -u | cut -f1 | uniq -d | wc -l)
check "augment: captions vary across epochs for the same image ($multi images)" [ "$multi" -gt 50 ]
check "augment: --start-batch 13 resumes with the same captions" \
    [ "$(caps tail)" = "$(caps s1 | tail -n +14)" ]
sink plain_run --epochs 1 --seed 1
n_before=$n_ep
# An uncaptioned dataset sends no captions field at all.
n_ep=$((n_ep + 1)); ep="ipc://$TMP/ep$n_ep"
batch_sink --in "$ep" --indices >"$TMP/plain.jsonl" 2>/dev/null &
spid=$!
gambar-augment -q --db "$TMP/dbplain" --out "$ep" --batch 8 2>/dev/null
wait $spid
check "augment: a dataset without captions sends none" \
    [ "$(grep '"seq"' "$TMP/plain.jsonl" | jq -s 'length > 0 and all(.[]; has("captions") | not)')" = true ]
: "$n_before"
rm -rf "$TMP"
