#!/bin/sh
# The main job (`make run`): gambar-run pipelines/fashion-dcgan.ini.
# Fashion-MNIST from Debian's package -> gambar-ingest -> gambar-augment ->
# gambar-train (DCGAN-28, class-conditional) -> gambar-eval on every
# checkpoint -> final evaluation with the model card -> a sample grid; see
# the pipeline file for the stages. Re-running continues where it stopped
# (same run folder): ingest skips what is stored, the trainer resumes from
# its newest checkpoint and the augmenter starts at the batch the trainer
# needs next.
#   EPOCHS=10      epochs to train (default 10)
#   RUN_DIR=runs/fashion-dcgan
#   THREADS=0      trainer threads (0 = all cores)
#   PIPELINE=pipelines/fashion-dcgan.ini
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/build/bin"
RUN_DIR=${RUN_DIR:-$ROOT/runs/fashion-dcgan}
EPOCHS=${EPOCHS:-10}
THREADS=${THREADS:-0}
PIPELINE=${PIPELINE:-$ROOT/pipelines/fashion-dcgan.ini}
DASH_PORT=$(sed -n 's/^dash_port *= *\([0-9]*\).*/\1/p' "$PIPELINE" | head -n 1)
if [ -n "$DASH_PORT" ]; then
    echo "gambar: dashboard at http://127.0.0.1:$DASH_PORT/"
else
    echo "gambar: no dashboard stage in $(basename "$PIPELINE"); progress is shown here"
fi
echo "gambar: run folder $RUN_DIR (logs in $RUN_DIR/logs, plan in $RUN_DIR/plan.txt)"
exec "$BIN/gambar-run" "$PIPELINE" --run-dir "$RUN_DIR" --set "vars.epochs=$EPOCHS" --set "vars.threads=$THREADS"
