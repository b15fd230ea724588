#!/bin/sh
# gambar-ingest on real PNG files (Fashion-MNIST written by idx2png) and
# crafted bad ones (mkbadpng): counts, exit codes, messages, re-run
# idempotence, duplicates, opt-out, manifest, determinism across thread
# counts, IDX sources, shape mismatch, usage errors.
# (Crash, interrupt and disk-full behaviour: t_ingest_crash.sh.)
. "$(dirname "$0")/lib.sh"

# field NAME FILE: the value of "NAME value" lines written by dbinfo
field() { sed -n "s/^$1 //p" "$2" | head -n 1; }
# json KEY FILE: a numeric field of the --json summary
json() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" "$2" | head -n 1; }

SRC=$TMP/src
mkdir -p "$TMP/flat0/OnlyClass"
idx2png "$FASHION/train" "$SRC" --limit 300 || { notok "idx2png"; exit 0; }
ok "idx2png wrote a class-folder tree"
n_png=$(find "$SRC" -name '*.png' | wc -l)
check "idx2png wrote 300 PNGs in 10 class folders" [ "$n_png" -eq 300 -a "$(ls "$SRC" | wc -l)" -eq 10 ]

# --- clean ingest ---
check_exit "clean ingest exits 0" 0 gambar-ingest --source "$SRC" --db "$TMP/db1" --size 28x28 --channels 1 --json "$TMP/j1.json"
dbinfo "$TMP/db1" --verify >"$TMP/i1" 2>&1
check "clean ingest stores 300 examples" [ "$(field count "$TMP/i1")" = 300 ]
check "dataset verifies" grep -q '^verify ok' "$TMP/i1"
check "shape 28x28x1" [ "$(field height "$TMP/i1")x$(field width "$TMP/i1")x$(field channels "$TMP/i1")" = 28x28x1 ]
check "class names are the sorted folder names" [ "$(field classes "$TMP/i1")" = "$(ls "$SRC" | LC_ALL=C sort | paste -sd, -)" ]
check "json summary counts" [ "$(json stored "$TMP/j1.json")" = 300 -a "$(json rejected "$TMP/j1.json")" = 0 ]
D1=$(field digest "$TMP/i1")

# Provenance of example 0: the first file of the first class folder.
first=$(ls "$SRC/$(ls "$SRC" | LC_ALL=C sort | head -n 1)" | LC_ALL=C sort | head -n 1)
firstclass=$(ls "$SRC" | LC_ALL=C sort | head -n 1)
dbinfo "$TMP/db1" --example 0 >"$TMP/e0"
check "example 0 source_uri" [ "$(field ex_uri "$TMP/e0")" = "file://$(cd "$SRC" && pwd)/$firstclass/$first" ]
check "example 0 sha256 is the file's" [ "$(field ex_sha256 "$TMP/e0")" = "$(sha256sum "$SRC/$firstclass/$first" | cut -c1-64)" ]
check "example 0 label" [ "$(field ex_label "$TMP/e0")" = 0 -a "$(field ex_label_name "$TMP/e0")" = "$firstclass" ]

# --- determinism: one thread vs two, same digest ---
gambar-ingest -q --source "$SRC" --db "$TMP/db1t" --size 28x28 --channels 1 --threads 1
dbinfo "$TMP/db1t" >"$TMP/i1t"
check "same digest with 1 and 2 threads" [ "$(field digest "$TMP/i1t")" = "$D1" ]

# --- re-run: nothing duplicated or lost ---
check_exit "re-run exits 0" 0 gambar-ingest --source "$SRC" --db "$TMP/db1" --json "$TMP/j1b.json"
dbinfo "$TMP/db1" --verify >"$TMP/i1b"
check "re-run keeps count and digest" [ "$(field count "$TMP/i1b")" = 300 -a "$(field digest "$TMP/i1b")" = "$D1" ]
check "re-run reports 300 already present" [ "$(json already_present "$TMP/j1b.json")" = 300 -a "$(json stored "$TMP/j1b.json")" = 0 ]

# --- bad files: rejected with a reason, the rest stored, exit 3 ---
BAD=$TMP/bad
cp -r "$SRC" "$BAD"
some=$(find "$SRC" -name '*.png' | LC_ALL=C sort | head -n 1)
mkbadpng text "$BAD/Bag/zz-text.png"
mkbadpng truncated "$BAD/Bag/zz-truncated.png" "$some"
mkbadpng crc "$BAD/Coat/zz-crc.png" "$some"
mkbadpng huge "$BAD/Coat/zz-huge.png"
mkbadpng bomb "$BAD/Dress/zz-bomb.png"
echo "notes" >"$BAD/README.txt"
check_exit "bad files: exit 3" 3 gambar-ingest --source "$BAD" --db "$TMP/db2" --size 28x28 --channels 1 --json "$TMP/j2.json"
cp "$TMP/err" "$TMP/err2"
dbinfo "$TMP/db2" --verify >"$TMP/i2"
check "bad files: the 300 good ones stored" [ "$(field count "$TMP/i2")" = 300 ]
check "bad files: same digest as the clean run" [ "$(field digest "$TMP/i2")" = "$D1" ]
check "not a PNG: named with reason" grep -q "zz-text.png: not a PNG" "$TMP/err2"
check "truncated: named with reason" grep -q "zz-truncated.png: corrupt PNG: .*trunc" "$TMP/err2"
check "CRC error: named with reason" grep -q "zz-crc.png: corrupt PNG: .*CRC" "$TMP/err2"
check "huge IHDR: named with reason" grep -q "zz-huge.png: image is 100000 x 100000 pixels, over --max-dim" "$TMP/err2"
check "bomb: named with reason" grep -q "zz-bomb.png: decoded size over the budget" "$TMP/err2"
check "summary line on stderr" grep -q "300 stored, 0 already present, 0 duplicate(s), 0 opted out, 5 rejected" "$TMP/err2"
check "json: rejections by reason" grep -q '"not_png": 1, "corrupt": 2, "too_large": 1, "over_budget": 1, "unreadable": 0' "$TMP/j2.json"
check "non-PNG files ignored, not rejected" grep -q "1 file(s) not ending in .png ignored" "$TMP/err2"
check_exit "--max-dim 20 rejects every 28x28 image" 3 gambar-ingest --source "$SRC" --db "$TMP/db2m" --size 28x28 --max-dim 20 --json "$TMP/j2m.json"
check "--max-dim: 300 too_large" [ "$(json too_large "$TMP/j2m.json")" = 300 ]

# --- exact duplicates: stored once, counted (also across runs) ---
DUP=$TMP/dup
cp -r "$SRC" "$DUP"
cp "$SRC/$firstclass/$first" "$DUP/Trouser/zz-copy.png"
cp "$SRC/$firstclass/$first" "$DUP/zz-root-copy.png"
check_exit "duplicates: exit 0" 0 gambar-ingest --source "$DUP" --db "$TMP/db3" --size 28x28 --channels 1 --json "$TMP/j3.json"
dbinfo "$TMP/db3" >"$TMP/i3"
check "duplicates stored once" [ "$(field count "$TMP/i3")" = 300 -a "$(json duplicates "$TMP/j3.json")" = 2 ]
check "duplicates counted in the dataset info" [ "$(field duplicates "$TMP/i3")" = 2 ]
for c in $(ls "$SRC"); do mkdir -p "$TMP/other/$c"; done
cp "$SRC/$firstclass/$first" "$TMP/other/Bag/again.png"
gambar-ingest -q --source "$TMP/other" --db "$TMP/db4" --size 28x28 --channels 1
check_exit "second source into the same dataset: exit 0" 0 gambar-ingest --source "$SRC" --db "$TMP/db4" --json "$TMP/j4.json"
dbinfo "$TMP/db4" --verify >"$TMP/i4"
check "a file already stored from another source counts as duplicate" [ "$(json duplicates "$TMP/j4.json")" = 1 -a "$(field count "$TMP/i4")" = 300 ]
check "the dataset source lists both sources" grep -q "^source .*other; .*src" "$TMP/i4"
check_exit "class folders differing from the dataset's: exit 3" 3 gambar-ingest --source "$TMP/flat0" --db "$TMP/db4"

# --- opt-out ---
o1=$(find "$SRC" -name '*.png' | LC_ALL=C sort | sed -n 10p)
o2=$(find "$SRC" -name '*.png' | LC_ALL=C sort | sed -n 200p)
{
    echo "# opted out by their authors"
    sha256sum "$o1" | cut -c1-64
    echo "  $(sha256sum "$o2" | cut -c1-64)   # trailing comment"
    echo
} >"$TMP/optout.txt"
check_exit "opt-out: exit 0" 0 gambar-ingest --source "$SRC" --db "$TMP/db5" --size 28x28 --channels 1 --optout "$TMP/optout.txt" --json "$TMP/j5.json"
dbinfo "$TMP/db5" --verify >"$TMP/i5"
check "opt-out: 298 stored, 2 opted out" [ "$(field count "$TMP/i5")" = 298 -a "$(json opted_out "$TMP/j5.json")" = 2 ]
check "opt-out counted in the dataset info" [ "$(field optouts "$TMP/i5")" = 2 ]
check_exit "opt-out: re-run stores nothing more" 0 gambar-ingest --source "$SRC" --db "$TMP/db5" --optout "$TMP/optout.txt"
dbinfo "$TMP/db5" >"$TMP/i5b"
check "opt-out: still 298 after re-run" [ "$(field count "$TMP/i5b")" = 298 ]
check_exit "opt-out on an existing dataset warns" 0 gambar-ingest --source "$SRC" --db "$TMP/db1" --optout "$TMP/optout.txt"
check "warning names already-stored opted-out examples" grep -q "2 example(s) stored by an earlier run are in the opt-out list" "$TMP/err"
printf '%s\n' "not-a-hash" >"$TMP/badopt.txt"
check_exit "malformed opt-out file: exit 3" 3 gambar-ingest --source "$SRC" --db "$TMP/db6" --optout "$TMP/badopt.txt"
check "malformed opt-out names file and line" grep -q "badopt.txt:1: 'not-a-hash' is not a SHA-256" "$TMP/err"

# --- manifest: relative and absolute paths, quoted fields, default ---
absfile="$(cd "$SRC" && pwd)/$(ls "$SRC" | LC_ALL=C sort | sed -n 2p)/$(ls "$SRC/$(ls "$SRC" | LC_ALL=C sort | sed -n 2p)" | LC_ALL=C sort | head -n 1)"
cat >"$TMP/manifest.csv" <<EOF
path,license,attribution
$firstclass/$first,CC-BY-4.0,"Zalando Research, ""Fashion-MNIST"" (2017)"
"$absfile",MIT,"Line one
line two"
*,MIT,Zalando SE
EOF
check_exit "manifest: exit 0" 0 gambar-ingest --source "$SRC" --db "$TMP/db7" --size 28x28 --channels 1 --manifest "$TMP/manifest.csv"
dbinfo "$TMP/db7" --example 0 >"$TMP/e7"
check "manifest: license of a relative path" [ "$(field ex_license "$TMP/e7")" = "CC-BY-4.0" ]
check "manifest: quoted attribution with comma and quotes" [ "$(field ex_attribution "$TMP/e7")" = 'Zalando Research, "Fashion-MNIST" (2017)' ]
n_first2=$(ls "$SRC/$firstclass" | wc -l)
dbinfo "$TMP/db7" --example "$n_first2" >"$TMP/e7b"
check "manifest: absolute path matched" [ "$(field ex_license "$TMP/e7b")" = MIT -a "$(field ex_uri "$TMP/e7b")" = "file://$absfile" ]
dbinfo "$TMP/db7" >"$TMP/i7"
check "manifest: license counts (default entry for the rest)" grep -q "^license MIT 299" "$TMP/i7"
printf 'a.png,"MIT,x\n' >"$TMP/badman.csv"
check_exit "malformed manifest: exit 3" 3 gambar-ingest --source "$SRC" --db "$TMP/db8" --manifest "$TMP/badman.csv"
check "malformed manifest names the line" grep -q "badman.csv:1: malformed CSV" "$TMP/err"

# --- unlabelled images at the root ---
mkdir -p "$TMP/flat"
find "$SRC/Bag" -name '*.png' | head -n 5 | while read -r f; do cp "$f" "$TMP/flat/"; done
check_exit "root-level images: exit 0" 0 gambar-ingest --source "$TMP/flat" --db "$TMP/db9" --size 16x16
dbinfo "$TMP/db9" --example 0 >"$TMP/e9"
check "root-level images are unlabelled" [ "$(field ex_label "$TMP/e9")" = -1 ]
dbinfo "$TMP/db9" >"$TMP/i9"
check "unlabelled count, grey as the files are, resized" [ "$(field unlabelled "$TMP/i9")" = 5 -a "$(field channels "$TMP/i9")" = 1 -a "$(field height "$TMP/i9")" = 16 ]

# --- IDX source ---
check_exit "idx source: exit 0" 0 gambar-ingest --source "idx:$FASHION/t10k" --db "$TMP/dbi" --limit 500
dbinfo "$TMP/dbi" --verify >"$TMP/ii"
check "idx: 500 examples of 28x28x1" [ "$(field count "$TMP/ii")" = 500 -a "$(field height "$TMP/ii")" = 28 -a "$(field channels "$TMP/ii")" = 1 ]
check "idx: Fashion-MNIST class names" [ "$(field classes "$TMP/ii")" = "T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot" ]
dbinfo "$TMP/dbi" --example 7 >"$TMP/ei"
check "idx: source URI names the record" [ "$(field ex_uri "$TMP/ei")" = "idx://$(cd "$FASHION" && pwd -P)/t10k#7" ]
check_exit "idx: re-run with more records" 0 gambar-ingest --source "idx:$FASHION/t10k" --db "$TMP/dbi" --limit 800 --json "$TMP/ji.json"
dbinfo "$TMP/dbi" --verify >"$TMP/ii2"
check "idx: re-run appends only the new records" [ "$(field count "$TMP/ii2")" = 800 -a "$(json already_present "$TMP/ji.json")" = 500 ]
check_exit "idx: resized RGB" 0 gambar-ingest --source "idx:$FASHION/t10k" --db "$TMP/dbi3" --limit 20 --size 32x32 --channels 3
dbinfo "$TMP/dbi3" >"$TMP/ii3"
check "idx: 32x32x3" [ "$(field width "$TMP/ii3")x$(field channels "$TMP/ii3")" = 32x3 ]
check_exit "shape mismatch with the dataset: exit 3" 3 gambar-ingest --source "$SRC" --db "$TMP/dbi" --size 64x64
check "shape mismatch message" grep -q "holds 28x28 images" "$TMP/err"
check_exit "missing IDX files: exit 4" 4 gambar-ingest --source "idx:$TMP/nothing" --db "$TMP/dbx"

# --- usage and missing input ---
check_exit "--help exits 0" 0 gambar-ingest --help
check "--help shows usage and options" grep -q -- "--source SRC --db PATH" "$TMP/out"
check_exit "--version exits 0" 0 gambar-ingest --version
check_exit "missing --db: exit 2" 2 gambar-ingest --source "$SRC"
check_exit "bad --size: exit 2" 2 gambar-ingest --source "$SRC" --db "$TMP/dbu" --size 0x5
check_exit "bad --channels: exit 2" 2 gambar-ingest --source "$SRC" --db "$TMP/dbu" --channels 2
check_exit "missing source folder: exit 4" 4 gambar-ingest --source "$TMP/no-such" --db "$TMP/dbu"
check "missing source folder named" grep -q "no-such: cannot read the source folder: No such file" "$TMP/err"
check "nothing created for a missing source" [ ! -e "$TMP/dbu" ]
check_exit "a file as source: exit 4" 4 gambar-ingest --source "$SRC/$firstclass/$first" --db "$TMP/dbu"
check "a file as source: reason" grep -q "the source is not a folder" "$TMP/err"
check "no progress bar when not a TTY" sh -c "! grep -q 'ingest \[' '$TMP/err2'"

rm -rf "$TMP"
