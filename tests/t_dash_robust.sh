#!/bin/sh
# gambar-dash under hostile clients (loopback only, bounded):
#   - 300 slow-drip connections from one address (127.0.0.3, a header
#     byte a second): the per-address limit holds at most
#     --max-conns-per-ip of them, and a client from another address
#     (127.0.0.2) still gets /metrics within a second every time;
#   - an idle connection is closed after --http-timeout;
#   - a flood of malformed messages on the metrics socket is counted and
#     dropped, and well-formed metrics after it still arrive;
#   - the server still answers afterwards and stops cleanly.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dash_lib.sh"
EP="ipc://$TMP/metrics.ipc"
check "dash starts" start_dash --metrics "$EP" --max-conns 64 --max-conns-per-ip 16 --http-timeout 3
metric_pub --out "@$EP" --steps 3 --interval-ms 5 >/dev/null 2>&1
check "metrics arrive" wait_state "len(s['series'])>0"
$PY "$GAMBAR_ROOT/tests/dash_drip.py" 127.0.0.1 "$PORT" 300 8 3 >"$TMP/drip.out" 2>"$TMP/drip.err"
cat "$TMP/drip.out" "$TMP/drip.err" >&2
held=$(sed -n 's/^drip held \([0-9]*\)/\1/p' "$TMP/drip.out")
check "drip: at most 16 of 300 held ($held)" test "${held:-999}" -le 16
check "drip: other clients answered, all within 1 s" sh -c \
    "grep -Eq '^legit n=([5-9]|[1-9][0-9]+) max_ms=([0-9]{1,3}) failures=0$' '$TMP/drip.out'"
check "idle connection closed by the timeout" sh -c \
    "grep -Eq '^idle closed_after_s=[2-5]\.' '$TMP/drip.out'"
check "serving after the attack" test "$(http_code "$URL/metrics")" = 200
metric_pub --out "@$EP" --steps 2 --start 50 --interval-ms 5 --garbage 3000 >/dev/null 2>&1
check "garbage flood: counted" wait_state "s['dropped']==3000"
check "garbage flood: later metrics still taken" wait_state \
    "any(x['name']=='loss_d' and x['step']==51 for x in s['series'])"
check "garbage flood: in /metrics" sh -c "curl -s '$URL/metrics' | grep -q '^gambar_dash_dropped_messages_total 3000$'"
stop_dash
check "stops cleanly (exit 0)" test "$DASH_RC" -eq 0
