#!/bin/sh
# gambar-augment flow control on real data: a slow consumer slows the
# producer (no batch lost, memory bounded), a consumer that starts late
# still gets everything, SIGINT ends with EndOfStream "interrupted" and
# exit 130 with every sent batch delivered, and a vanished consumer never
# makes the producer hang.
. "$(dirname "$0")/lib.sh"

DB=$TMP/db
if [ -x "$GAMBAR_BIN/gambar-ingest" ]; then
    gambar-ingest -q --source "idx:$FASHION/train" --db "$DB" --limit 3000 >"$TMP/ingest.out" 2>"$TMP/ingest.err"
else
    aug_mkdb "$FASHION/train" "$DB" 3000 2>"$TMP/ingest.err"
fi
check "dataset of 3000 images" [ -s "$DB/data.mdb" ]
now_ms() { date +%s%3N; }
# kB value of FIELD in /proc/PID/status (0 when gone)
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# --- backpressure: sink sleeps 8 ms a batch, tiny high-water marks ---------
ep="ipc://$TMP/bp"
batch_sink --in "$ep" --hwm 2 --delay-ms 8 >"$TMP/bp.jsonl" 2>"$TMP/bp.err" &
spid=$!
t0=$(now_ms)
# (a small ASan quarantine, so freed send buffers are not counted as growth
# under the sanitizer build; no effect otherwise)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1" \
    gambar-augment -q --db "$DB" --out "$ep" --batch 64 --epochs 3 --hwm 2 2>"$TMP/bp.aug.err" &
apid=$!
hwm_kb=0; anon_first=0; anon_last=0
# Baseline after 0.3 s (start-up done, pipeline full), then the last sample.
while kill -0 $apid 2>/dev/null; do
    v=$(proc_kb $apid VmHWM); [ -n "$v" ] && [ "$v" -gt "$hwm_kb" ] && hwm_kb=$v
    a=$(proc_kb $apid RssAnon)
    if [ -n "$a" ] && [ "$a" -gt 0 ]; then
        [ "$anon_first" -eq 0 ] && [ $(($(now_ms) - t0)) -ge 300 ] && anon_first=$a
        anon_last=$a
    fi
    sleep 0.05
done
wait $apid; ra=$?
t1=$(now_ms)
wait $spid; rs=$?
s=$(grep '"summary"' "$TMP/bp.jsonl")
check "backpressure: both exit 0" [ "$ra $rs" = "0 0" ]
check "backpressure: all 138 batches arrive, none lost" \
    [ "$(echo "$s" | jq '.batches == 138 and .eos == 1 and .eos_batches_sent == 138 and .errors == 0')" = true ]
# 138 batches at >= 8 ms each take >= 1.1 s: the producer (0.05 s when
# unthrottled) must have waited for the consumer.
check "backpressure: the producer was slowed ($((t1 - t0)) ms)" [ $((t1 - t0)) -ge 900 ]
check "backpressure: peak RSS bounded (${hwm_kb} kB < 64 MiB)" [ "$hwm_kb" -gt 0 -a "$hwm_kb" -lt 65536 ]
check "backpressure: anonymous memory flat (${anon_first} -> ${anon_last} kB)" [ $((anon_last - anon_first)) -lt 4096 ]

# --- consumer starts late -----------------------------------------------------
ep="ipc://$TMP/late"
gambar-augment -q --db "$DB" --out "$ep" --batch 64 --epochs 1 2>"$TMP/late.aug.err" &
apid=$!
sleep 0.5
batch_sink --in "$ep" >"$TMP/late.jsonl" 2>"$TMP/late.err"; rs=$?
wait $apid; ra=$?
check "late consumer: gets all 46 batches" [ "$ra $rs $(grep summary "$TMP/late.jsonl" | jq '.batches == 46 and .eos == 1')" = "0 0 true" ]

# --- SIGINT: EndOfStream "interrupted", exit 130, nothing lost ------------
ep="ipc://$TMP/int"
batch_sink --in "$ep" --delay-ms 2 --hwm 4 >"$TMP/int.jsonl" 2>"$TMP/int.err" &
spid=$!
gambar-augment --db "$DB" --out "$ep" --batch 64 --forever --hwm 4 2>"$TMP/int.aug.err" &
apid=$!
sleep 1
t0=$(now_ms)
kill -INT $apid
wait $apid; ra=$?
t1=$(now_ms)
wait $spid; rs=$?
s=$(grep '"summary"' "$TMP/int.jsonl")
check "SIGINT: augment exits 130" [ "$ra" -eq 130 ]
check "SIGINT: exits promptly ($((t1 - t0)) ms)" [ $((t1 - t0)) -lt 3000 ]
check "SIGINT: sink got EndOfStream interrupted and exits 0" [ "$rs $(echo "$s" | jq '.eos == 1 and .interrupted == 1')" = "0 true" ]
check "SIGINT: every batch sent was received" [ "$(echo "$s" | jq '.batches > 10 and .batches == .eos_batches_sent and .errors == 0')" = true ]
check "SIGINT: logged" grep -q "interrupted by signal" "$TMP/int.aug.err"

# --- the consumer vanishes: SIGTERM still ends the producer quickly -------
ep="ipc://$TMP/gone"
batch_sink --in "$ep" --max-batches 3 --hwm 1 >"$TMP/gone.jsonl" 2>"$TMP/gone.err" &
spid=$!
gambar-augment --db "$DB" --out "$ep" --batch 64 --epochs 50 --hwm 1 2>"$TMP/gone.aug.err" &
apid=$!
wait $spid
sleep 0.5
check "consumer gone: producer still waiting (not finished)" kill -0 $apid
t0=$(now_ms)
kill -TERM $apid
wait $apid; ra=$?
t1=$(now_ms)
check "consumer gone: SIGTERM exits 130 ($((t1 - t0)) ms)" [ "$ra" -eq 130 -a $((t1 - t0)) -lt 3000 ]
check "consumer gone: says EndOfStream could not be sent" grep -q "no consumer is connected" "$TMP/gone.aug.err"

# same with the roles swapped: the consumer binds, the producer connects
ep="ipc://$TMP/gonec"
batch_sink --in "@$ep" --max-batches 3 --hwm 1 >"$TMP/gonec.jsonl" 2>"$TMP/gonec.err" &
spid=$!
gambar-augment --db "$DB" --out ">$ep" --batch 64 --epochs 50 --hwm 1 2>"$TMP/gonec.aug.err" &
apid=$!
wait $spid
sleep 0.5
t0=$(now_ms)
kill -TERM $apid
wait $apid; ra=$?
t1=$(now_ms)
check "connecting producer, consumer gone: SIGTERM exits 130 ($((t1 - t0)) ms)" [ "$ra" -eq 130 -a $((t1 - t0)) -lt 3000 ]

# --- the consumer vanishes after the last batch: 'done' does not hang -----
ep="ipc://$TMP/gone2"
batch_sink --in "$ep" --max-batches 46 >"$TMP/gone2.jsonl" 2>"$TMP/gone2.err" &
spid=$!
t0=$(now_ms)
gambar-augment --db "$DB" --out "$ep" --batch 64 --epochs 1 --linger 20000 2>"$TMP/gone2.aug.err" &
apid=$!
wait $spid
n=0
while kill -0 $apid 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
if kill -0 $apid 2>/dev/null; then notok "consumer gone at the end: producer exits without waiting the linger"; kill -KILL $apid
else ok "consumer gone at the end: producer exits without waiting the linger"; fi
wait $apid; ra=$?
check "consumer gone at the end: exit 0 (EndOfStream taken) or 6 (not)" [ "$ra" -eq 0 -o "$ra" -eq 6 ]
rm -rf "$TMP"
