#!/bin/sh
# bench: gambar-sample writing 10,000 DCGAN-28 (width 32, z_dim 100,
# unconditional) images as PNG files with provenance into a folder, the
# whole command timed (checkpoint load, generation, encoding, writing,
# syncfs and renames). Prints
#   bench: sample_png_images_per_s VALUE images/s
#   bench: sample_png_cpu_ms_per_image VALUE ms   (user + system CPU time)
#   bench: fma_peak_gmacs_per_core, fma_peak_gmacs  (tests/tools/fma_peak)
#   bench: sample_gen_arith_bound_images_per_s VALUE images/s
# The last is the machine's FMA peak on T threads over the generator's
# multiply-adds per image (4,104,704 for this model with the sampler's
# Winograd middle layer: 100*128*49 + 4*4*25*128*64 + 4*196*4*64), i.e.
# what the arithmetic alone would allow; sample_png_images_per_s over it
# says how far the whole command (kernels below peak, transforms, PNG
# encoding, file creation) is from that roofline.
#   bench: fs_create_files_per_s VALUE files/s   (tests/tools/fs_create)
# The filesystem's own rate of creating N small files in a folder of the
# same disk with the same thread count: the other roofline (the sampler
# cannot write PNG files faster than the disk creates empty ones).
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
# the rooflines, measured in the same run
"$GAMBAR_TOOLS/fs_create" "$dir/fs" "$N" "$T" || exit 1
peak=$("$GAMBAR_TOOLS/fma_peak" --threads "$T" 2>/dev/null)
if [ -n "$peak" ]; then
    echo "$peak"
    all=$(echo "$peak" | awk '$2 == "fma_peak_gmacs" {print $3}')
    [ -n "$all" ] && printf 'bench: sample_gen_arith_bound_images_per_s %.0f images/s\n' "$(echo "$all * 1000000000 / 4104704" | bc -l)"
fi
rm -rf "$dir"
