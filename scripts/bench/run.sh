#!/bin/sh
# bench: gambar-run on pipelines/quick.ini (3000 Fashion-MNIST images,
# width-8 DCGAN-28 for 186 steps, feature network, final evaluation with
# model card, 16 samples), the whole pipeline timed from start to exit;
# and the time to validate fashion-dcgan.ini (--check, parse + every check
# + program lookup). Prints
#   bench: run_quick_seconds VALUE s
#   bench: run_check_ms VALUE ms
# Environment: GAMBAR_BIN, BENCH_TMP (set by scripts/bench.sh).
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
: "${GAMBAR_BIN:=$ROOT/build/bin}"
: "${BENCH_TMP:=$(mktemp -d "${TMPDIR:-/tmp}/gambar-bench-XXXXXX")}"
[ -d /usr/share/datasets/fashion-mnist ] || { echo "run bench: no Fashion-MNIST" >&2; exit 1; }
dir="$BENCH_TMP/run"
rm -rf "$dir" && mkdir -p "$dir" || exit 1
t0=$(date +%s.%N)
i=0
while [ $i -lt 100 ]; do
    "$GAMBAR_BIN/gambar-run" --check "$ROOT/pipelines/fashion-dcgan.ini" >/dev/null || exit 1
    i=$((i + 1))
done
t1=$(date +%s.%N)
echo "bench: run_check_ms $(echo "($t1 - $t0) * 10" | bc -l | xargs printf '%.2f') ms"
t0=$(date +%s.%N)
"$GAMBAR_BIN/gambar-run" "$ROOT/pipelines/quick.ini" --run-dir "$dir/quick" 2>"$dir/quick.log" || {
    tail -20 "$dir/quick.log" >&2; exit 1; }
t1=$(date +%s.%N)
echo "run bench: quick.ini, load average $(cut -d' ' -f1 /proc/loadavg)" >&2
echo "bench: run_quick_seconds $(echo "$t1 - $t0" | bc -l | xargs printf '%.1f') s"
