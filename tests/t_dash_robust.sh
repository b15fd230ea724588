#!/bin/sh
# gambar-dash under hostile clients (loopback only, bounded):
#   - 150 slow-drip connections (a header byte a second, never finishing)
#     from 127.0.0.1, the address every client shares when the server
#     binds 127.0.0.1 (loopback is not one hostile peer, so the
#     per-address limit does not apply): past --max-conns the oldest
#     unfinished request is shed, every header not complete within
#     --http-header-timeout is cut off, and a client from 127.0.0.1 too
#     still gets /metrics within a second every time;
#   - an /events stream opened before the attack (its header long done)
#     is never shed and still streams afterwards;
#   - the shedding is counted on /metrics;
#   - an idle connection is closed after --http-timeout;
#   - a flood of malformed messages on the metrics socket is counted and
#     dropped, and well-formed metrics after it still arrive;
#   - the server still answers afterwards and stops cleanly.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dash_lib.sh"
EP="ipc://$TMP/metrics.ipc"
check "dash starts" start_dash --metrics "$EP" --max-conns 64 --max-conns-per-ip 16 --http-timeout 3 \
    --http-header-timeout 2
metric_pub --out "@$EP" --steps 3 --interval-ms 5 >/dev/null 2>&1
check "metrics arrive" wait_state "len(s['series'])>0"
timeout 40 curl -sN "$URL/events" >"$TMP/sse.txt" 2>/dev/null &
SSEP=$!
sleep 0.5
$PY "$GAMBAR_ROOT/tests/dash_drip.py" 127.0.0.1 "$PORT" 150 8 3 --drip-from 127.0.0.1 --probe-from 127.0.0.1 \
    >"$TMP/drip.out" 2>"$TMP/drip.err"
cat "$TMP/drip.out" "$TMP/drip.err" >&2
opened=$(sed -n 's/^drip opened \([0-9]*\)/\1/p' "$TMP/drip.out")
held=$(sed -n 's/^drip held \([0-9]*\) .*/\1/p' "$TMP/drip.out")
check "drip: at least 100 connections opened ($opened)" test "${opened:-0}" -ge 100
check "drip: every one cut off by the header deadline (held $held)" test "${held:-999}" -eq 0
check "drip: clients from the same address answered, all within 1 s" sh -c \
    "grep -Eq '^legit n=([5-9]|[1-9][0-9]+) max_ms=([0-9]{1,3}) failures=0$' '$TMP/drip.out'"
check "idle connection closed by the timeout" sh -c \
    "grep -Eq '^idle closed_after_s=[2-5]\.' '$TMP/drip.out'"
curl -s --max-time 5 "$URL/metrics" >"$TMP/after.prom"
check "shed past --max-conns, counted" sh -c \
    "grep -Eq '^gambar_dash_http_shed_total\{reason=\"max_conns\"\} [1-9]' '$TMP/after.prom'"
check "cut off by the header deadline, counted" sh -c \
    "grep -Eq '^gambar_dash_http_shed_total\{reason=\"header_timeout\"\} [1-9]' '$TMP/after.prom'"
check "connections back to a few" sh -c \
    "grep -Eq '^gambar_dash_http_connections [0-9]$' '$TMP/after.prom'"
metric_pub --out "@$EP" --steps 2 --start 40 --interval-ms 5 >/dev/null 2>&1
check "sse: the stream opened before the attack still streams" sh -c \
    "for i in \$(seq 50); do grep -q '\"step\":41' '$TMP/sse.txt' && exit 0; sleep 0.1; done; exit 1"
kill "$SSEP" 2>/dev/null
check "serving after the attack" test "$(http_code "$URL/metrics")" = 200
metric_pub --out "@$EP" --steps 2 --start 50 --interval-ms 5 --garbage 3000 >/dev/null 2>&1
check "garbage flood: counted" wait_state "s['dropped']==3000"
check "garbage flood: later metrics still taken" wait_state \
    "any(x['name']=='loss_d' and x['step']==51 for x in s['series'])"
check "garbage flood: in /metrics" sh -c "curl -s '$URL/metrics' | grep -q '^gambar_dash_dropped_messages_total 3000$'"
stop_dash
check "stops cleanly (exit 0)" test "$DASH_RC" -eq 0
