#!/bin/sh
# t_testrunner.sh - tests/run.sh counts skips apart: a copy of the runner
# in a scratch tree with one shell test that passes, fails and skips,
# and one C test (built from tests/test.h) that passes and skips.
. "$(dirname "$0")/lib.sh"
R="$TMP/tree"
mkdir -p "$R/tests" "$R/build/tests"
cp "$GAMBAR_ROOT/tests/run.sh" "$GAMBAR_ROOT/tests/lib.sh" "$R/tests/"
cat >"$R/tests/t_mixed.sh" <<'X'
. "$(dirname "$0")/lib.sh"
ok one; ok two; skip three "no widget here"
rm -rf "$TMP"
X
cat >"$TMP/test_c.c" <<'X'
#include "test.h"
static void test_runs(void) { CHECK(1 + 1 == 2); }
static void test_skips(void) { SKIP("no gadget"); CHECK(0); }
static void test_fails_before_skip(void) { CHECK(0); SKIP("too late"); }
int main(void) { RUN(test_runs); RUN(test_skips); RUN(test_fails_before_skip); return test_done(); }
X
cc -D_GNU_SOURCE -I"$GAMBAR_ROOT/tests" -o "$R/build/tests/test_c" "$TMP/test_c.c" 2>"$TMP/cc.err" || cat "$TMP/cc.err" >&2
"$R/build/tests/test_c" >"$TMP/c.out" 2>/dev/null
check "test.h: SKIP prints skip NAME (reason)" grep -qx 'skip test_skips (no gadget)' "$TMP/c.out"
check "test.h: a CHECK failed before SKIP is a failure" grep -qx 'not ok test_fails_before_skip' "$TMP/c.out"
check "test.h: closing line counts skips" grep -qx '1 passed, 1 failed, 1 skipped' "$TMP/c.out"
T= BUILD=build sh "$R/tests/run.sh" >"$TMP/run.out" 2>&1
check "run.sh: total line has passed, failed and skipped" grep -qx '3 passed, 1 failed, 2 skipped' "$TMP/run.out"
check "run.sh: per-file skip count" grep -q '^PASS t_mixed.sh: 2 passed, 1 skipped' "$TMP/run.out"
check "run.sh: skip reason listed" grep -q '^ *skip three (no widget here)' "$TMP/run.out"
check "run.sh: a skip is not an ok" test "$(grep -c '^ok ' "$R/build/test-logs/t_mixed.sh.log.out")" -eq 2
rm -rf "$TMP"
