#!/bin/sh
# The checkpoint file format is a public contract: a checkpoint written by
# ckpt_save is read field for field by tests/tools/ckpt_read.py, written
# from proto/checkpoint.proto's description alone (hand-decoded protobuf,
# no gambar code), and both readers agree on what is damaged.
. "$(dirname "$0")/lib.sh"
READ="python3 $GAMBAR_ROOT/tests/tools/ckpt_read.py"

out=$(ckpt_tool write "$TMP/ck" 17 5000) || notok "ckpt_tool write"
f=${out% *}; d=${out#* }
check "file named after the step" [ "$f" = "$TMP/ck/ckpt-0000000017.gck" ]
check "digest is the SHA-256 of the whole file" [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$d" ]
check "magic GAMBARCK at offset 0" [ "$(head -c 8 "$f")" = "GAMBARCK" ]
# version 1 and header size 64, little-endian u32s at offsets 8 and 12
check "version and header size" [ "$(od -An -tu4 -j8 -N8 "$f" | tr -s ' ')" = " 1 64" ]
size=$(wc -c <"$f")
plen=$(od -An -tu8 -j16 -N8 "$f" | tr -d ' ')
check "size is header + payload length" [ "$size" -eq $((64 + plen)) ]
check "payload SHA-256 at offset 24" \
    [ "$(tail -c +65 "$f" | sha256sum | cut -d' ' -f1)" = "$(od -An -tx1 -j24 -N32 "$f" | tr -d ' \n')" ]

ckpt_tool dump "$f" >"$TMP/c.txt" 2>"$TMP/c.err"
$READ "$f" >"$TMP/py.txt" 2>"$TMP/py.err"
if [ -s "$TMP/py.txt" ] && diff "$TMP/c.txt" "$TMP/py.txt" >"$TMP/diff"; then
    ok "independent reader agrees on every field ($(wc -l <"$TMP/c.txt") lines)"
else
    notok "independent reader agrees on every field" "$(head -20 "$TMP/diff"; cat "$TMP/py.err")"
fi
check "file digest in the dump" grep -q "^file_sha256 $d\$" "$TMP/py.txt"
vals=$($READ --tensor G.net_0.weight "$f" | tr '\n' ' ')
check "tensor values little-endian float32" [ "$vals" = "0.5 -1.25 3 9.99999968e-21 -0 65504 " ]

# Damaged copies: both readers refuse them.
cp "$f" "$TMP/trunc.gck"; truncate -s $((size - 1)) "$TMP/trunc.gck"
cp "$f" "$TMP/flip.gck"
printf '\377' | dd of="$TMP/flip.gck" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
cp "$f" "$TMP/v2.gck"
printf '\002' | dd of="$TMP/v2.gck" bs=1 seek=8 conv=notrunc 2>/dev/null
for bad in trunc flip v2; do
    check_exit "ckpt_read.py refuses $bad" 3 $READ "$TMP/$bad.gck"
    ckpt_tool dump "$TMP/$bad.gck" >/dev/null 2>"$TMP/err"; rc=$?
    if [ $rc -ne 0 ] && grep -q "$TMP/$bad.gck" "$TMP/err"; then ok "ckpt_load refuses $bad, naming the file"
    else notok "ckpt_load refuses $bad, naming the file" "rc=$rc"; fi
done
rm -rf "$TMP"
