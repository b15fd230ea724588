#!/bin/sh
# img.sh - PNG encode and decode rate for the sampler's case: a 28x28 gray
# image with two iTXt provenance chunks, default (fast) settings, 20000
# times each (see bench() in tests/test_img.c). Target: ~8000 encodes/s.
# Prints:
#   bench: png_encode_28x28 VALUE images/s
#   bench: png_decode_28x28 VALUE images/s
#   bench: png_28x28_bytes VALUE bytes
ROOT=${GAMBAR_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
T="$ROOT/${BUILD:-build}/tests/test_img"
if [ ! -x "$T" ]; then
    echo "img.sh: $T not built (run make)" >&2
    exit 1
fi
"$T" --bench
