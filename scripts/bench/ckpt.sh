#!/bin/sh
# Checkpoint save (pack, SHA-256, write, fsync, rename, fsync dir) and
# load (read, verify, decode) of a 64 MiB checkpoint, about the size of a
# dcgan64 with EMA and Adam moments. Best of 3.
: "${GAMBAR_TOOLS:=build/tools}"
: "${BENCH_TMP:=${TMPDIR:-/tmp}}"
"$GAMBAR_TOOLS/ckpt_tool" bench "$BENCH_TMP/ckpt-bench" 64
