#!/bin/sh
# Benchmark gambar-ingest on PNG files: the 60,000 Fashion-MNIST training
# images written once as a PNG class-folder tree (idx2png) in $BENCH_TMP,
# ingested into a fresh dataset; images/s and peak RSS (VmHWM, from the
# --json summary) of the best of BENCH_INGEST_RUNS runs (default 2). Then
# the same for 10x as many files (600,000: every image in 10 byte-wise
# different variants) to show that memory does not grow with the dataset;
# BENCH_INGEST_10X=0 skips that part (it writes ~2.4 GB of small files).
#
# Prints:
#   bench: ingest_png_images_per_s VALUE images/s
#   bench: ingest_cpu_us_per_image VALUE us   (user+sys CPU over all threads
#          per image: on a busy machine, 2 cores / this is the rate it
#          would reach alone)
#   bench: ingest_peak_rss_mib VALUE MiB
#   bench: ingest_10x_png_images_per_s VALUE images/s
#   bench: ingest_10x_cpu_us_per_image VALUE us
#   bench: ingest_10x_peak_rss_mib VALUE MiB
ROOT=${GAMBAR_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${GAMBAR_BIN:-$ROOT/build/bin}
TOOLS=${GAMBAR_TOOLS:-$ROOT/build/tools}
FASHION=${FASHION:-/usr/share/datasets/fashion-mnist}
TMPD=${BENCH_TMP:-$(mktemp -d "${TMPDIR:-/tmp}/gambar-bench-XXXXXX")}
RUNS=${BENCH_INGEST_RUNS:-2}
mkdir -p "$TMPD"

jget() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" "$2" | head -n 1; }

# bench_tree TREE NAME: ingest TREE RUNS times, print the best rate and
# the highest peak RSS.
bench_tree() {
    best=0; rss=0
    i=0
    while [ $i -lt "$RUNS" ]; do
        rm -rf "$TMPD/ingest-db"
        if ! "$BIN/gambar-ingest" -q --source "$1" --db "$TMPD/ingest-db" --size 28x28 --channels 1 \
            --json "$TMPD/ingest.json" >&2; then
            echo "ingest bench: gambar-ingest failed on $1" >&2
            return 1
        fi
        r=$(jget images_per_s "$TMPD/ingest.json")
        m=$(jget peak_rss_mib "$TMPD/ingest.json")
        c=$(jget cpu_seconds "$TMPD/ingest.json")
        n=$(jget dataset_count "$TMPD/ingest.json")
        cpu_us=$(awk -v c="$c" -v n="$n" 'BEGIN { printf "%.1f", (n > 0) ? c * 1e6 / n : 0 }')
        echo "ingest bench: $2 run $((i + 1)): $r images/s, peak RSS $m MiB, CPU $cpu_us us/image (user+sys, all threads)" >&2
        if [ $i -eq 0 ] || awk -v a="$best" -v b="$r" 'BEGIN { exit !(b > a) }'; then best_cpu=$cpu_us; fi
        best=$(awk -v a="$best" -v b="$r" 'BEGIN { print (b > a) ? b : a }')
        rss=$(awk -v a="$rss" -v b="$m" 'BEGIN { print (b > a) ? b : a }')
        i=$((i + 1))
    done
    rm -rf "$TMPD/ingest-db"
    echo "bench: ${2}images_per_s $best images/s"
    echo "bench: ${2%png_}cpu_us_per_image $best_cpu us"
    echo "bench: ${2%png_}peak_rss_mib $rss MiB"
}

if [ ! -e "$TMPD/fashion-png/.done" ]; then
    echo "ingest bench: writing 60,000 PNGs to $TMPD/fashion-png" >&2
    rm -rf "$TMPD/fashion-png"
    "$TOOLS/idx2png" "$FASHION/train" "$TMPD/fashion-png" || exit 1
    touch "$TMPD/fashion-png/.done"
fi
bench_tree "$TMPD/fashion-png" ingest_png_ || exit 1

if [ "${BENCH_INGEST_10X:-1}" != 0 ]; then
    if [ ! -e "$TMPD/fashion-png-10x/.done" ]; then
        echo "ingest bench: writing 600,000 PNGs to $TMPD/fashion-png-10x" >&2
        rm -rf "$TMPD/fashion-png-10x"
        "$TOOLS/idx2png" "$FASHION/train" "$TMPD/fashion-png-10x" --variants 10 || exit 1
        touch "$TMPD/fashion-png-10x/.done"
    fi
    RUNS=1 bench_tree "$TMPD/fashion-png-10x" ingest_10x_png_ || exit 1
fi
