#!/bin/sh
# bench: gambar-sample writing 10,000 DCGAN-28 (width 32, z_dim 100,
# unconditional) images as PNG files with provenance into a folder, the
# whole command timed (checkpoint load, generation, encoding, writing,
# syncfs and renames). Prints
#   bench: sample_png_images_per_s VALUE images/s
#   bench: sample_png_cpu_ms_per_image VALUE ms   (user + system CPU time)
# Environment: GAMBAR_BIN, GAMBAR_TOOLS, BENCH_TMP (set by scripts/bench.sh),
# SAMPLE_BENCH_N (default 10000), SAMPLE_BENCH_THREADS (default 2).
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
: "${GAMBAR_BIN:=$ROOT/build/bin}" "${GAMBAR_TOOLS:=$ROOT/build/tools}"
: "${BENCH_TMP:=$(mktemp -d "${TMPDIR:-/tmp}/gambar-bench-XXXXXX")}"
N=${SAMPLE_BENCH_N:-10000}
T=${SAMPLE_BENCH_THREADS:-2}
dir="$BENCH_TMP/sample"
rm -rf "$dir" && mkdir -p "$dir" || exit 1
ck=$("$GAMBAR_TOOLS/mkckpt" "$dir/ck" --family dcgan28 --width 32 --z-dim 100 --steps 2 --seed 1) || exit 1
# warm-up (page cache, CPU frequency) on a small run
"$GAMBAR_BIN/gambar-sample" -q --ckpt "$ck" --out "$dir/warm" --n 500 --threads "$T" >/dev/null || exit 1
t0=$(date +%s.%N)
if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%U %S" -o "$dir/cpu" "$GAMBAR_BIN/gambar-sample" -q --ckpt "$ck" --out "$dir/out" --n "$N" \
        --seed 1000 --threads "$T" >/dev/null || exit 1
else
    "$GAMBAR_BIN/gambar-sample" -q --ckpt "$ck" --out "$dir/out" --n "$N" --seed 1000 --threads "$T" >/dev/null || exit 1
fi
t1=$(date +%s.%N)
got=$(ls "$dir/out" | grep -c '^img-.*\.png$')
[ "$got" -eq "$N" ] || { echo "sample bench: $got files, expected $N" >&2; exit 1; }
echo "sample bench: $N images in $(echo "$t1 - $t0" | bc -l) s, load average $(cut -d' ' -f1 /proc/loadavg)" >&2
printf 'bench: sample_png_images_per_s %.1f images/s\n' "$(echo "$N / ($t1 - $t0)" | bc -l)"
# CPU time per image (user + system), less sensitive to other load on the machine
if [ -s "$dir/cpu" ]; then
    read -r u sy <"$dir/cpu"
    printf 'bench: sample_png_cpu_ms_per_image %.3f ms\n' "$(echo "1000 * ($u + $sy) / $N" | bc -l)"
fi
rm -rf "$dir"
