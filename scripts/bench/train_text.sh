#!/bin/sh
# train_text.sh - training speed of a text-conditional DCGAN-28 (GAN-CLS
# step with the text encoder) next to the class-conditional one, steps
# alternating (width 32, batch 64, all cores); see
# tests/tools/bench_train_text.c. With the auxiliary classifier at
# pipelines/fashion-text.ini's weight (--aux-class 0.3); extra arguments
# go to the tool (a later --aux-class wins).
TOOLS=${GAMBAR_TOOLS:-build/tools}
if [ ! -x "$TOOLS/bench_train_text" ]; then
    echo "train_text.sh: $TOOLS/bench_train_text not built (run make)" >&2
    exit 1
fi
exec "$TOOLS/bench_train_text" --aux-class 0.3 "$@"
