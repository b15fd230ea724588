#!/bin/sh
# gambar-ingest under failure: SIGKILL at an arbitrary moment then a
# re-run gives exactly the clean run's dataset; SIGINT commits what is
# done and exits 130; a write failure at commit (file size limit, the
# stand-in for a full disk that needs no privileges) is a clear error
# with every earlier transaction intact.
. "$(dirname "$0")/lib.sh"

field() { sed -n "s/^$1 //p" "$2" | head -n 1; }
# wait_db DB PID: until DB's first transaction is on disk (or PID ended)
wait_db() {
    i=0
    while [ ! -s "$1/data.mdb" ] && kill -0 "$2" 2>/dev/null && [ $i -lt 1000 ]; do sleep 0.01; i=$((i + 1)); done
}

SRC=$TMP/src
idx2png "$FASHION/train" "$SRC" --limit 3000 || { notok "idx2png"; exit 0; }
gambar-ingest -q --source "$SRC" --db "$TMP/clean" --size 28x28 --channels 1
dbinfo "$TMP/clean" >"$TMP/clean.info"
CLEAN_N=$(field count "$TMP/clean.info")
CLEAN_D=$(field digest "$TMP/clean.info")
check "clean run stores 3000" [ "$CLEAN_N" = 3000 ]

# --- kill -9 at several moments, then re-run ---
killed_mid=0
# "first" kills right after the first transaction is visible to a reader,
# so one kill lands mid-ingest however fast the machine is.
for delay in 0 0.1 0.3 first; do
    rm -rf "$TMP/k"
    gambar-ingest -q --source "$SRC" --db "$TMP/k" --size 28x28 --channels 1 --threads 1 --batch 16 2>/dev/null &
    pid=$!
    wait_db "$TMP/k" $pid
    if [ "$delay" = first ]; then
        i=0
        while kill -0 $pid 2>/dev/null && [ $i -lt 2000 ]; do
            c=$(dbinfo "$TMP/k" 2>/dev/null | sed -n 's/^count //p')
            [ -n "$c" ] && [ "$c" -gt 0 ] && break
            i=$((i + 1))
        done
    else
        sleep $delay
    fi
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    if [ -e "$TMP/k/data.mdb" ]; then
        dbinfo "$TMP/k" --verify >"$TMP/k.info" 2>&1
        n=$(field count "$TMP/k.info")
        if grep -q '^verify ok' "$TMP/k.info" || [ "$n" = 0 ]; then ok "after kill -9 at ${delay}s: whole transactions only ($n examples)"
        else notok "after kill -9 at ${delay}s: whole transactions only" "$(cat "$TMP/k.info")"; fi
        [ -n "$n" ] && [ "$n" -gt 0 ] && [ "$n" -lt 3000 ] && killed_mid=1
    else
        ok "after kill -9 at ${delay}s: nothing created yet"
    fi
    gambar-ingest -q --source "$SRC" --db "$TMP/k" --size 28x28 --channels 1
    dbinfo "$TMP/k" --verify >"$TMP/k2.info"
    check "kill -9 at ${delay}s + re-run: count and digest equal a clean run" \
        [ "$(field count "$TMP/k2.info")" = "$CLEAN_N" -a "$(field digest "$TMP/k2.info")" = "$CLEAN_D" ]
done
check "at least one kill landed mid-ingest" [ $killed_mid -eq 1 ]

# --- SIGINT: commit what is decoded, exit 130, re-run completes ---
rm -rf "$TMP/int"
gambar-ingest --source "$SRC" --db "$TMP/int" --size 28x28 --channels 1 --threads 1 --batch 64 2>"$TMP/int.err" &
pid=$!
wait_db "$TMP/int" $pid
kill -INT $pid
wait $pid
rc=$?
check "SIGINT: exit 130" [ $rc -eq 130 ]
check "SIGINT: summary says interrupted" grep -q "interrupted:" "$TMP/int.err"
dbinfo "$TMP/int" --verify >"$TMP/int.info"
n=$(field count "$TMP/int.info")
check "SIGINT: what was done is committed and verifies ($n)" grep -q '^verify ok' "$TMP/int.info"
gambar-ingest -q --source "$SRC" --db "$TMP/int" --size 28x28 --channels 1
dbinfo "$TMP/int" >"$TMP/int2.info"
check "SIGINT + re-run: equals a clean run" [ "$(field digest "$TMP/int2.info")" = "$CLEAN_D" ]

# --- write failure at commit (file size limit with SIGXFSZ ignored) ---
rm -rf "$TMP/full"
gambar-ingest -q --source "$SRC" --db "$TMP/full" --size 28x28 --channels 1 --limit 300
dbinfo "$TMP/full" >"$TMP/full.info"
D300=$(field digest "$TMP/full.info")
size_kb=$(( $(wc -c <"$TMP/full/data.mdb") / 1024 ))
(
    trap '' XFSZ
    ulimit -f "$size_kb"
    exec gambar-ingest --source "$SRC" --db "$TMP/full" --batch 500
) >/dev/null 2>"$TMP/full.err"
rc=$?
check "write failure: exit 4 (I/O)" [ $rc -eq 4 ]
check "write failure: clear message" grep -q "commit failed: File too large (disk full?)" "$TMP/full.err"
check "write failure: says earlier commits are intact" grep -q "committed before are intact" "$TMP/full.err"
dbinfo "$TMP/full" --verify >"$TMP/full2.info"
check "write failure: the earlier 300 examples are intact" \
    [ "$(field count "$TMP/full2.info")" = 300 -a "$(field digest "$TMP/full2.info")" = "$D300" ]
check "write failure: dataset verifies" grep -q '^verify ok' "$TMP/full2.info"
gambar-ingest -q --source "$SRC" --db "$TMP/full" --size 28x28 --channels 1
dbinfo "$TMP/full" >"$TMP/full3.info"
check "write failure + re-run with room: equals a clean run" [ "$(field digest "$TMP/full3.info")" = "$CLEAN_D" ]

rm -rf "$TMP"
