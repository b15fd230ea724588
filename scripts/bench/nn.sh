#!/bin/sh
# nn.sh - matrix-multiply rate of this machine (OpenBLAS sgemm) and the
# rate each DCGAN-28 convolution layer reaches (batch 64, width 32), so the
# trainer's step time can be read against its ceiling. Prints
# `bench: NAME VALUE UNIT` lines; see tests/tools/bench_gemm.c.
TOOLS=${GAMBAR_TOOLS:-build/tools}
if [ ! -x "$TOOLS/bench_gemm" ]; then
    echo "nn.sh: $TOOLS/bench_gemm not built (run make)" >&2
    exit 1
fi
exec "$TOOLS/bench_gemm" "$@"
