#!/bin/sh
# train.sh - DCGAN-28 training throughput (width 32, batch 64, all cores,
# Fashion-MNIST from memory), its fraction of the machine's sgemm rate,
# and peak memory. Prints `bench: NAME VALUE UNIT` lines; see
# tests/tools/bench_train.c. Extra arguments are passed to the tool.
TOOLS=${GAMBAR_TOOLS:-build/tools}
FASHION=${FASHION:-/usr/share/datasets/fashion-mnist}
if [ ! -x "$TOOLS/bench_train" ]; then
    echo "train.sh: $TOOLS/bench_train not built (run make)" >&2
    exit 1
fi
if [ -r "$FASHION/train-images-idx3-ubyte.gz" ]; then
    exec "$TOOLS/bench_train" --images "$FASHION/train-images-idx3-ubyte.gz" "$@"
fi
echo "train.sh: no Fashion-MNIST under $FASHION; using synthetic images" >&2
exec "$TOOLS/bench_train" --synthetic "$@"
