#!/bin/sh
# bench: gambar-eval on the full Fashion-MNIST training set (60000 images):
# fitting the feature network (3 epochs), computing the real statistics
# (features of every training image, thresholds), and one evaluation of
# 10000 generated images (mkckpt DCGAN-28, width 32) with every metric and
# both audits (pixel audit on --mem-n 2000). Prints
#   bench: eval_fit_features_s VALUE s
#   bench: eval_fit_features_t10k_accuracy VALUE fraction
#   bench: eval_real_stats_s VALUE s
#   bench: eval_n10000_s VALUE s
# Environment: GAMBAR_BIN, GAMBAR_TOOLS, BENCH_TMP; EVAL_BENCH_THREADS (default 2).
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
: "${GAMBAR_BIN:=$ROOT/build/bin}" "${GAMBAR_TOOLS:=$ROOT/build/tools}"
: "${BENCH_TMP:=$(mktemp -d "${TMPDIR:-/tmp}/gambar-bench-XXXXXX")}"
T=${EVAL_BENCH_THREADS:-2}
F=/usr/share/datasets/fashion-mnist
dir="$BENCH_TMP/eval"
rm -rf "$dir" && mkdir -p "$dir" || exit 1
"$GAMBAR_BIN/gambar-ingest" -q --source "idx:$F/train" --db "$dir/tr" || exit 1
"$GAMBAR_BIN/gambar-ingest" -q --source "idx:$F/t10k" --db "$dir/te" || exit 1
ck=$("$GAMBAR_TOOLS/mkckpt" "$dir/ck" --family dcgan28 --width 32 --z-dim 100 --steps 2 --seed 1) || exit 1
now() { date +%s.%N; }
t0=$(now)
"$GAMBAR_BIN/gambar-eval" -q --fit-features --db "$dir/tr" --test-db "$dir/te" --threads "$T" >"$dir/fit.out" || exit 1
t1=$(now)
# first evaluation computes and caches the real statistics; the second is the evaluation alone
"$GAMBAR_BIN/gambar-eval" -q --db "$dir/tr" --ckpt "$ck" --n 100 --worst-n 0 --threads "$T" >/dev/null || exit 1
t2=$(now)
"$GAMBAR_BIN/gambar-eval" -q --db "$dir/tr" --ckpt "$ck" --n 10000 --threads "$T" --json "$dir/r.json" >/dev/null || exit 1
t3=$(now)
echo "bench: eval_fit_features_s $(echo "$t1 - $t0" | bc -l | xargs printf '%.1f') s"
echo "bench: eval_fit_features_t10k_accuracy $(sed -n 's/^test_accuracy //p' "$dir/fit.out") fraction"
echo "bench: eval_real_stats_s $(echo "$t2 - $t1" | bc -l | xargs printf '%.1f') s"
echo "bench: eval_n10000_s $(echo "$t3 - $t2" | bc -l | xargs printf '%.1f') s"
echo "eval bench: load average $(cut -d' ' -f1 /proc/loadavg)" >&2
