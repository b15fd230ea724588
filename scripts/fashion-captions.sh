#!/bin/sh
# Synthetic captions for Fashion-MNIST (README, "Synthetic captions").
#   sh scripts/fashion-captions.sh [DATADIR [OUTDIR]]
# Writes OUTDIR/train-captions.txt and OUTDIR/t10k-captions.txt (one line
# per IDX record, captions separated by '|', '#' header lines holding the
# per-class thresholds) for gambar-ingest --source idx:DATADIR/train
# --captions OUTDIR/train-captions.txt. The words come from pixel measures
# (common/img/attr.h) against per-class terciles of the training set, so
# t10k is described on the training set's scale. Deterministic for a seed.
#   DATADIR  default /usr/share/datasets/fashion-mnist (Debian's package)
#   OUTDIR   default build/captions (give one when installed)
#   SEED=0 PER_IMAGE=4
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The tool: build/tools in a source tree; PREFIX/lib/gambar when installed
# (this script in PREFIX/share/gambar/scripts, `make install`)
TOOL="$ROOT/build/tools/fashion_captions"
[ -x "$TOOL" ] || [ ! -x "$ROOT/../../lib/gambar/fashion_captions" ] || TOOL="$ROOT/../../lib/gambar/fashion_captions"
DATA=${1:-/usr/share/datasets/fashion-mnist}
OUT=${2:-$ROOT/build/captions}
SEED=${SEED:-0}
PER_IMAGE=${PER_IMAGE:-4}
[ -x "$TOOL" ] || { echo "fashion-captions: $TOOL missing (run make)" >&2; exit 1; }
mkdir -p "$OUT"
for part in train t10k; do
    "$TOOL" --train "$DATA/train" --images "$DATA/$part" --seed "$SEED" --per-image "$PER_IMAGE" \
        --out "$OUT/$part-captions.txt"
done
echo "fashion-captions: wrote $OUT/train-captions.txt and $OUT/t10k-captions.txt"
