#!/bin/sh
# t_ingest_shape.sh - the shape gambar-ingest stores a folder of PNGs at
# when neither the dataset nor --size/--channels fixes it: the images'
# own (read from their headers before anything is stored), so 28x28 grey
# Fashion-MNIST PNGs are stored as 28x28 grey, not upsampled to 64x64
# RGB; the same pixels as with --size 28x28 --channels 1. When the files
# differ: the most common size, RGB when one is colour, said in one line
# each with the counts. --size or --channels alone fix only that part.
. "$(dirname "$0")/lib.sh"
field() { sed -n "s/^$1 //p" "$2" | head -n 1; }
shape() { dbinfo "$1" >"$TMP/info"; echo "$(field width "$TMP/info")x$(field height "$TMP/info")x$(field channels "$TMP/info")"; }
SRC=$TMP/src
idx2png "$FASHION/train" "$SRC" --limit 200 || { notok "idx2png"; exit 0; }

check_exit "own shape: exit 0" 0 gambar-ingest --source "$SRC" --db "$TMP/d1"
check "own shape: 28x28 grey ($(shape "$TMP/d1"))" test "$(shape "$TMP/d1")" = 28x28x1
check "own shape: said" grep -q "storing as 28x28, 1 channel(s) (size and colour type from the files)" "$TMP/err"
check "own shape: no warning" sh -c "! grep -q 'warn:' '$TMP/err'"
gambar-ingest -q --source "$SRC" --db "$TMP/d2" --size 28x28 --channels 1
check "own shape: the same dataset as --size 28x28 --channels 1" \
    test "$(dbinfo "$TMP/d1" | grep '^digest')" = "$(dbinfo "$TMP/d2" | grep '^digest')"
check_exit "own shape: a second run adds nothing, keeps the shape" 0 gambar-ingest --source "$SRC" --db "$TMP/d1"
check "own shape: still 28x28 grey" test "$(shape "$TMP/d1")" = 28x28x1

# --size alone: the colour type from the files; --channels alone: the size
gambar-ingest -q --source "$SRC" --db "$TMP/d3" --size 16x16
check "--size alone: grey from the files ($(shape "$TMP/d3"))" test "$(shape "$TMP/d3")" = 16x16x1
gambar-ingest -q --source "$SRC" --db "$TMP/d4" --channels 3
check "--channels alone: size from the files ($(shape "$TMP/d4"))" test "$(shape "$TMP/d4")" = 28x28x3

# mixed: one 56x56 colour PNG among the grey 28x28 ones
cp -r "$SRC" "$TMP/mix"
python3 "$GAMBAR_ROOT/tests/png_tool.py" plain56rgb "$TMP/mix/Bag/zz-colour.png"
check_exit "mixed: exit 0" 0 gambar-ingest --source "$TMP/mix" --db "$TMP/d5"
cat "$TMP/err" >&2
check "mixed: the most common size, RGB ($(shape "$TMP/d5"))" test "$(shape "$TMP/d5")" = 28x28x3
check "mixed: sizes said with counts" grep -q "200 of 201 are 28x28, 1 have 1 other size(s) (e.g. 56x56: Bag/zz-colour.png); storing 28x28" "$TMP/err"
check "mixed: colour said with counts" grep -q "1 of 201 image(s) are colour (e.g. Bag/zz-colour.png), 200 grey: storing RGB" "$TMP/err"
check "mixed: all stored" test "$(field count "$TMP/info")" = 201

# IDX keeps its own shape as before
gambar-ingest -q --source "idx:$FASHION/t10k" --db "$TMP/d6" --limit 10
check "idx: 28x28 grey" test "$(shape "$TMP/d6")" = 28x28x1
rm -rf "$TMP"
