#!/bin/sh
# t_fuzz_smoke.sh - the libFuzzer harnesses build and survive a short run.
#
# Builds every tests/fuzz/fuzz_*.c the way `make fuzz` does (clang,
# -fsanitize=fuzzer,address,undefined, library rebuilt by clang in
# build/fuzz), replays its regression inputs through the fuzz binary, then
# fuzzes it for a few seconds from its committed seeds into a fresh corpus under
# $TMP (so the run does not depend on earlier fuzzing): 20 s shared by
# the harnesses, at least 2 s each. Skips cleanly
# ("skip fuzz_smoke (reason)") when clang or its libFuzzer runtime is missing. Long
# runs: `make fuzz FUZZ_SECONDS=600`.
. "$(dirname "$0")/lib.sh"
cd "$GAMBAR_ROOT" || exit 1

if ! command -v clang >/dev/null 2>&1; then
    skip fuzz_smoke "clang is not installed"
    exit 0
fi
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$TMP/probe.c"
if ! clang -fsanitize=fuzzer -o "$TMP/probe" "$TMP/probe.c" 2>"$TMP/probe.err"; then
    skip fuzz_smoke "clang has no libFuzzer runtime (libclang-rt-dev)"
    exit 0
fi

# One build at a time in build/fuzz (the plain and SANITIZE=1 suites may
# both run this script).
mkdir -p build/fuzz
LOCK=""
command -v flock >/dev/null 2>&1 && LOCK="flock build/fuzz/.smoke.lock"

bins=""
for src in tests/fuzz/fuzz_*.c; do
    [ -e "$src" ] || continue
    bins="$bins build/fuzz/$(basename "$src" .c)"
done
if [ -z "$bins" ]; then
    notok "fuzz_build" "no tests/fuzz/fuzz_*.c"
    exit 0
fi
t0=$(date +%s)
# shellcheck disable=SC2086
if timeout 300 $LOCK make --no-print-directory -j2 $bins >"$TMP/build.log" 2>&1; then
    ok "fuzz_build"
    echo "fuzz build: $(($(date +%s) - t0)) s" >&2
else
    notok "fuzz_build" "make failed: $(tail -5 "$TMP/build.log")"
    exit 0
fi

# About 20 s of fuzzing in all, at least 2 s per harness.
nb=$(echo $bins | wc -w)
secs=$((20 / nb))
[ "$secs" -lt 2 ] && secs=2
for bin in $bins; do
    n=$(basename "$bin")
    reg=$(ls tests/fuzz/regress/"$n"/ 2>/dev/null | head -1)
    if [ -n "$reg" ]; then
        if "$bin" tests/fuzz/regress/"$n"/* >"$TMP/$n.reg.log" 2>&1; then
            ok "${n}_regress"
        else
            notok "${n}_regress" "a regression input fails again: $(grep -m1 -E 'ERROR|ASSERT|runtime error' "$TMP/$n.reg.log")"
        fi
    fi
    mkdir -p "$TMP/corpus-$n"
    dict=""
    [ -f "tests/fuzz/$n.dict" ] && dict="-dict=tests/fuzz/$n.dict"
    # shellcheck disable=SC2086
    timeout 60 "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$TMP/" $dict \
        "$TMP/corpus-$n" "tests/fuzz/seeds/$n" >"$TMP/$n.log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$TMP/$n.log")
    if [ "$rc" -eq 0 ] && [ -n "$runs" ] && [ "$runs" -gt 0 ]; then
        ok "${n}_run"
        echo "$n: $runs executions in $secs s" >&2
    else
        notok "${n}_run" "exit $rc after ${runs:-0} executions; see below"
        grep -m5 -E 'ERROR|ASSERT|runtime error|SUMMARY' "$TMP/$n.log" >&2
        ls "$TMP"/crash-* "$TMP"/leak-* "$TMP"/timeout-* 2>/dev/null >&2
    fi
done
exit 0
