#!/bin/sh
# textenc.sh - captions per second through the text encoder (forward +
# backward, batch 64) and its Adam step; see tests/tools/bench_textenc.c.
TOOLS=${GAMBAR_TOOLS:-build/tools}
if [ ! -x "$TOOLS/bench_textenc" ]; then
    echo "textenc.sh: $TOOLS/bench_textenc not built (run make)" >&2
    exit 1
fi
exec "$TOOLS/bench_textenc" "$@"
