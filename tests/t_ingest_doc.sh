#!/bin/sh
# t_ingest_doc.sh - gambar-ingest(1) states the pixel rules that
# common/img/img.h documents for img_decode_png (16-bit scaling, alpha
# over black, palette, tRNS, gray+alpha, RGB<->gray): every formula of
# that comment must appear in the man page, so the two cannot drift.
. "$(dirname "$0")/lib.sh"
H=$GAMBAR_ROOT/common/img/img.h
M=$GAMBAR_ROOT/stages/ingest/gambar-ingest.1.scd
# The man page source with scdoc's escapes undone.
sed 's/\\\*/*/g' "$M" >"$TMP/man.txt"
check "man page has a PIXEL VALUES section" grep -q '^# PIXEL VALUES' "$M"
# The formulas: the right-hand column of img.h's " *   NAME   FORMULA" table.
sed -n '/^ \* Exact arithmetic/,/^ \* Ancillary/p' "$H" | awk -F'  +' '/^ \*   [^ ]/ {print $3}' |
    sed 's/ *(libpng.*)$//; s/ *(over black).*$//; s/ *(BT.601 luma)$//' >"$TMP/formulas"
check "img.h lists at least 4 formulas" [ "$(grep -c . "$TMP/formulas")" -ge 4 ]
while IFS= read -r f; do
    case $f in *[0-9]*) ;; *) continue ;; esac   # prose rows ("copied to the three channels")
    check "man page states: $f" grep -qF "$f" "$TMP/man.txt"
done <"$TMP/formulas"
for w in palette tRNS 'gray+alpha' 'composited over black' 'BT.601' '16-bit' 'copied'; do
    check "man page mentions $w" grep -q "$w" "$TMP/man.txt"
done
rm -rf "$TMP"
