#!/bin/sh
# Every program: --help and --version on stdout with exit 0, a bad option
# exits 2 with the reason on stderr, and every program has a man page.
. "$(dirname "$0")/lib.sh"
found=0
for b in "$GAMBAR_BIN"/gambar-*; do
    [ -x "$b" ] || continue
    found=$((found + 1))
    n=$(basename "$b")
    "$b" --help >"$TMP/h.out" 2>"$TMP/h.err"; rc=$?
    if [ $rc -eq 0 ] && grep -q "^Usage: $n" "$TMP/h.out" && [ ! -s "$TMP/h.err" ]; then ok "$n --help"; else notok "$n --help" "rc=$rc"; fi
    "$b" --version >"$TMP/v.out" 2>"$TMP/v.err"; rc=$?
    if [ $rc -eq 0 ] && grep -q "^$n (gambar) [0-9]" "$TMP/v.out"; then ok "$n --version"; else notok "$n --version" "rc=$rc"; fi
    "$b" --no-such-option >"$TMP/b.out" 2>"$TMP/b.err"; rc=$?
    if [ $rc -eq 2 ] && grep -q "no-such-option" "$TMP/b.err" && [ ! -s "$TMP/b.out" ]; then ok "$n bad option exits 2"; else notok "$n bad option exits 2" "rc=$rc"; fi
    if [ -s "$GAMBAR_BIN/../man/$n.1" ]; then ok "$n man page"; else notok "$n man page" "no build/man/$n.1"; fi
done
[ $found -gt 0 ] && ok "programs found ($found)" || notok "programs found"
