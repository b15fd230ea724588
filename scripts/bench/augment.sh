#!/bin/sh
# augment.sh - how fast gambar-augment feeds a consumer, and its memory.
#
# Ingests the Fashion-MNIST training set (60000 images), then streams
# batches of 64 (ops flip,translate, dtype f32) over ipc:// to batch_sink
# --count-only, a consumer that only counts, so the figure is the
# producer's rate. Prints:
#   bench: augment_batches_per_s VALUE batches/s   (sink's count / time,
#                                                   median of 3 runs)
#   bench: augment_peak_rss_mib VALUE MiB          (augmenter's VmHWM,
#                                                   largest of the runs)
#   bench: augment_anon_rss_mib VALUE MiB          (its largest RssAnon: VmHWM
#                                                   minus the dataset's mapped
#                                                   pages, i.e. what it allocates)
# Environment: GAMBAR_BIN, GAMBAR_TOOLS, BENCH_TMP (set by scripts/bench.sh),
# AUG_BENCH_EPOCHS (default 5 epochs = 4685 batches a run).
BIN=${GAMBAR_BIN:-build/bin}
TOOLS=${GAMBAR_TOOLS:-build/tools}
FASHION=/usr/share/datasets/fashion-mnist
EPOCHS=${AUG_BENCH_EPOCHS:-5}
T=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/augment-XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
for p in "$BIN/gambar-augment" "$BIN/gambar-ingest" "$TOOLS/batch_sink"; do
    [ -x "$p" ] || { echo "augment.sh: $p not built (run make)" >&2; exit 1; }
done
"$BIN/gambar-ingest" -q --source "idx:$FASHION/train" --db "$T/db" >/dev/null ||
    { echo "augment.sh: ingest failed" >&2; exit 1; }

rates=""
peak=0
anon=0
for run in 1 2 3; do
    ep="ipc://$T/ep$run"
    "$TOOLS/batch_sink" --in "$ep" --count-only >"$T/sink.json" 2>"$T/sink.err" &
    spid=$!
    "$BIN/gambar-augment" -q --db "$T/db" --out "$ep" --batch 64 --ops flip,translate --dtype f32 \
        --epochs "$EPOCHS" 2>"$T/aug.err" &
    apid=$!
    # VmHWM is only readable while the process lives: poll it.
    hwm=0
    while kill -0 $apid 2>/dev/null; do
        v=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$apid/status" 2>/dev/null)
        [ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
        a=$(awk '$1 == "RssAnon:" { print $2 }' "/proc/$apid/status" 2>/dev/null)
        [ -n "$a" ] && [ "$a" -gt "$anon" ] && anon=$a
        sleep 0.02
    done
    wait $apid || { echo "augment.sh: gambar-augment failed:" >&2; cat "$T/aug.err" >&2; exit 1; }
    wait $spid || { echo "augment.sh: batch_sink failed:" >&2; cat "$T/sink.err" >&2; exit 1; }
    r=$(sed -n 's/.*"batches_per_s":\([0-9.]*\).*/\1/p' "$T/sink.json")
    echo "augment.sh: run $run: $r batches/s, VmHWM $hwm kB" >&2
    rates="$rates $r"
    [ "$hwm" -gt "$peak" ] && peak=$hwm
done
median=$(echo $rates | tr ' ' '\n' | sort -n | sed -n 2p)
echo "bench: augment_batches_per_s $median batches/s"
echo "bench: augment_peak_rss_mib $(awk -v k="$peak" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
echo "bench: augment_anon_rss_mib $(awk -v k="$anon" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
