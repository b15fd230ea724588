#!/bin/sh
# make install PREFIX=/usr DESTDIR=tmp: a staged install holds every
# program, the .proto files and a man page per program, and the installed
# programs run, and the installed text pipeline's captions step runs
# (its script finds the captions tool in PREFIX/lib/gambar).
. "$(dirname "$0")/lib.sh"
D="$TMP/stage"
cd "$GAMBAR_ROOT" || exit 1
BUILD_DIR=$(dirname "$GAMBAR_BIN")
SAN=SANITIZE=0
case "$BUILD_DIR" in */asan) SAN=SANITIZE=1 ;; esac
if make --no-print-directory -s install "$SAN" BUILD="${BUILD_DIR#$GAMBAR_ROOT/}" PREFIX=/usr DESTDIR="$D" >"$TMP/inst.log" 2>&1; then
    ok "make install succeeds"
else
    notok "make install succeeds"; cat "$TMP/inst.log" >&2
fi
for b in "$GAMBAR_BIN"/gambar-*; do
    n=$(basename "$b")
    check "installed $n runs" "$D/usr/bin/$n" --version
    check "installed man page $n.1" test -s "$D/usr/share/man/man1/$n.1"
done
for p in proto/*.proto; do
    check "installed $(basename "$p")" cmp -s "$p" "$D/usr/share/gambar/proto/$(basename "$p")"
done
S="$D/usr/share/gambar/scripts/fashion-captions.sh"
check "installed pipelines/fashion-text.ini's captions script" test -x "$S"
check "installed captions tool" test -x "$D/usr/lib/gambar/fashion_captions"
if [ -r "$FASHION/train-images-idx3-ubyte.gz" ] || [ -r "$FASHION/train-images-idx3-ubyte" ]; then
    # the staged tree has no build/ next to the script: it must use lib/gambar
    sh "$S" "$FASHION" "$TMP/captions" >"$TMP/capt.log" 2>&1
    check "installed captions script writes train captions" test -s "$TMP/captions/train-captions.txt"
    check "installed captions script writes t10k captions" test -s "$TMP/captions/t10k-captions.txt"
else
    skip "installed captions script runs" "no Fashion-MNIST under $FASHION"
fi
