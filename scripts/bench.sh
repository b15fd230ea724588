#!/bin/sh
# make bench: run every scripts/bench/*.sh; each prints
# "bench: NAME VALUE UNIT" lines on stdout (progress goes to stderr).
# Environment: BUILD (build folder), GAMBAR_BIN, GAMBAR_TOOLS.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
export GAMBAR_ROOT="$ROOT" GAMBAR_BIN="$ROOT/$BUILD/bin" GAMBAR_TOOLS="$ROOT/$BUILD/tools" NO_COLOR=1
export BENCH_TMP="${BENCH_TMP:-$(mktemp -d "${TMPDIR:-/tmp}/gambar-bench-XXXXXX")}"
rc=0
for b in "$ROOT"/scripts/bench/*.sh; do
    [ -e "$b" ] || continue
    sh "$b" || { echo "bench: $(basename "$b") failed" >&2; rc=1; }
done
rm -rf "$BENCH_TMP"
exit $rc
