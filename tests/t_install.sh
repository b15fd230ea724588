#!/bin/sh
# make install PREFIX=/usr DESTDIR=tmp: a staged install holds every
# program, the .proto files and a man page per program, and the installed
# programs run.
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
