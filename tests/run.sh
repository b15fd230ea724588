#!/bin/sh
# Run every test program (build/tests/test_*) and shell test (tests/t_*.sh),
# count their "ok NAME" / "not ok NAME" / "skip NAME (reason)" lines and end
# with the closing line "N passed, N failed, N skipped". A skip is neither a
# pass nor a failure: it is listed with its reason. Exit non-zero on any
# failure.
#   T=pattern   run only tests whose file name contains pattern
#   BUILD=dir   build folder (default build)
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
export GAMBAR_BIN="$ROOT/$BUILD/bin"
export GAMBAR_TOOLS="$ROOT/$BUILD/tools"
export GAMBAR_ROOT="$ROOT"
export GAMBAR_GOLDEN="${GAMBAR_GOLDEN:-$(cd "$ROOT/.." && pwd)/shared/golden}"
export NO_COLOR=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
LOGDIR="$ROOT/$BUILD/test-logs"
mkdir -p "$LOGDIR"
pass=0; fail=0; skipn=0; failed_names=""
for t in "$BUILD"/tests/test_* tests/t_*.sh; do
    [ -e "$t" ] || continue
    case "$t" in *.d|*.o) continue;; esac
    name=$(basename "$t")
    if [ -n "$T" ] && ! echo "$name" | grep -q -- "$T"; then continue; fi
    log="$LOGDIR/$name.log"
    start=$(date +%s)
    case "$t" in
        *.sh) timeout 900 sh "$t" >"$log.out" 2>"$log" ;;
        *) timeout 900 "$t" >"$log.out" 2>"$log" ;;
    esac
    rc=$?
    end=$(date +%s)
    p=$(grep -c '^ok ' "$log.out")
    f=$(grep -c '^not ok ' "$log.out")
    s=$(grep -c '^skip ' "$log.out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok $name (exit $rc)" >>"$log.out"; fi
    pass=$((pass + p)); fail=$((fail + f)); skipn=$((skipn + s))
    sk=""; [ "$s" -gt 0 ] && sk=", $s skipped"
    if [ "$f" -gt 0 ]; then
        echo "FAIL $name: $p passed, $f failed$sk ($((end - start))s)"
        grep '^not ok ' "$log.out" | sed 's/^/    /'
        tail -n 30 "$log" | sed 's/^/    | /'
        failed_names="$failed_names $name"
    else
        echo "PASS $name: $p passed$sk ($((end - start))s)"
    fi
    grep '^skip ' "$log.out" | sed 's/^/    /'
done
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$pass passed, $fail failed, $skipn skipped"
[ "$fail" -eq 0 ]
