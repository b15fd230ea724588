#!/bin/sh
# The main job (`make run`): Fashion-MNIST from Debian's package ->
# gambar-ingest -> gambar-augment -> gambar-train (DCGAN-28, class-
# conditional) -> a sample grid. Re-running continues where it stopped:
# ingest skips what is stored, the trainer resumes from its newest
# checkpoint and the augmenter starts at the batch the trainer needs next.
#   EPOCHS=10      epochs to train (default 10)
#   RUN_DIR=runs/fashion-dcgan
#   THREADS=0      trainer threads (0 = all cores)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/build/bin"
RUN_DIR=${RUN_DIR:-$ROOT/runs/fashion-dcgan}
EPOCHS=${EPOCHS:-10}
THREADS=${THREADS:-0}
SRC=/usr/share/datasets/fashion-mnist/train
mkdir -p "$RUN_DIR/logs"
echo "gambar: run folder $RUN_DIR"

echo "gambar: [1/4] ingest $SRC"
"$BIN/gambar-ingest" --source "idx:$SRC" --db "$RUN_DIR/db" 2>&1 | tee "$RUN_DIR/logs/ingest.log" >&2

START=$("$BIN/gambar-train" --resume --print-start-batch --ckpt-dir "$RUN_DIR/ckpt")
SOCK="ipc://$RUN_DIR/batches.sock"
echo "gambar: [2/4] augment (flip), batches from $START"
"$BIN/gambar-augment" --db "$RUN_DIR/db" --out "@$SOCK" --batch 64 --ops flip --epochs "$EPOCHS" \
    --seed 1 --start-batch "$START" 2>"$RUN_DIR/logs/augment.log" &
AUG=$!
trap 'kill $AUG 2>/dev/null || true' EXIT INT TERM

echo "gambar: [3/4] train dcgan28 for $EPOCHS epochs (checkpoints in $RUN_DIR/ckpt)"
"$BIN/gambar-train" --in ">$SOCK" --model dcgan28 --epochs "$EPOCHS" --ckpt-dir "$RUN_DIR/ckpt" \
    --ckpt-every 500 --resume --seed 1 --threads "$THREADS" --conditional auto --run fashion-dcgan \
    --metrics "@ipc://$RUN_DIR/metrics.sock" 2>&1 | tee "$RUN_DIR/logs/train.log" >&2
wait $AUG || true
trap - EXIT INT TERM

CKPT=$(ls "$RUN_DIR"/ckpt/ckpt-*.gck | tail -n 1)
if [ -x "$BIN/gambar-sample" ]; then
    echo "gambar: [4/4] sample grid from $CKPT"
    "$BIN/gambar-sample" --ckpt "$CKPT" --out "$RUN_DIR/samples/grid.png" --grid 10x10 --seed 1
    echo "gambar: samples in $RUN_DIR/samples/grid.png"
fi
echo "gambar: done; newest checkpoint $CKPT"
