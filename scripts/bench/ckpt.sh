#!/bin/sh
# Checkpoint save (pack, SHA-256, write, fsync, rename, fsync dir) and
# load (read, verify, decode) of a 64 MiB checkpoint, about the size of a
# dcgan64 with EMA and Adam moments. Best of 3. Then, for the default job
# (dcgan28, width 32, batch 64, conditional):
#   bench: ckpt_save_ms             the save as the trainer does it
#                                   (modelck_store + ckpt_save, best of 3)
#   bench: ckpt_save_rss_growth_mib what that save adds to the peak RSS
#   bench: train_peak_rss_mib       peak RSS (VmHWM, from getrusage of the
#                                   child) of gambar-train over 40 steps
#                                   with a checkpoint every 10 (issue 11:
#                                   at most 64 MiB per rank)
#   bench: train_resume_peak_rss_mib  the same for a --resume from that
#                                   run's step 40 to step 50 (loading the
#                                   checkpoint, one more save)
: "${GAMBAR_TOOLS:=build/tools}"
: "${GAMBAR_BIN:=build/bin}"
: "${BENCH_TMP:=${TMPDIR:-/tmp}}"
FASHION=${FASHION:-/usr/share/datasets/fashion-mnist}
"$GAMBAR_TOOLS/ckpt_tool" bench "$BENCH_TMP/ckpt-bench" 64
"$GAMBAR_TOOLS/ckpt_tool" bench-model "$BENCH_TMP/ckpt-bench-model"

W="$BENCH_TMP/train-rss"
rm -rf "$W" && mkdir -p "$W" || exit 1
SRC="--synthetic --synthetic-count 2048"
[ -r "$FASHION/train-images-idx3-ubyte.gz" ] && SRC="--idx $FASHION --limit 4096"
# train_rss STEPS [trainer options]: peak RSS in KiB of one gambar-train
# run fed by batch_source (which starts at the batch the run needs next).
train_rss() {
    steps=$1; shift
    k=$("$GAMBAR_BIN/gambar-train" --print-start-batch --ckpt-dir "$W/ck")
    # shellcheck disable=SC2086
    "$GAMBAR_TOOLS/batch_source" --out "ipc://$W/s.sock" $SRC --batch 64 --epochs 10 --dtype u8 --start-batch "$k" \
        2>"$W/src.err" &
    SP=$!
    KIB=$(python3 - "$GAMBAR_BIN/gambar-train" --in "ipc://$W/s.sock" --model dcgan28 --width 32 \
        --steps "$steps" --ckpt-every 10 --keep 2 --seed 1 --log-every 1000 --ckpt-dir "$W/ck" "$@" 2>"$W/train.err" <<'PY'
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
if rc != 0:
    sys.exit(rc)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB on Linux
PY
)
    RC=$?
    kill $SP 2>/dev/null; wait $SP 2>/dev/null
    if [ $RC -ne 0 ] || [ -z "$KIB" ] || [ ! -f "$W/ck/ckpt-00000000$steps.gck" ]; then
        echo "ckpt.sh: gambar-train run failed (exit $RC): $(tail -2 "$W/train.err")" >&2
        exit 1
    fi
}
train_rss 40
awk -v k="$KIB" 'BEGIN { printf "bench: train_peak_rss_mib %.1f MiB\n", k / 1024 }'
train_rss 50 --resume
awk -v k="$KIB" 'BEGIN { printf "bench: train_resume_peak_rss_mib %.1f MiB\n", k / 1024 }'
rm -rf "$W"
