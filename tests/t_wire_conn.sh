#!/bin/sh
# t_wire_conn.sh - one oversized frame must not silence a connecting stage.
# A foreign peer (oversize_peer) binds the endpoint a stage connects to and
# sends one frame over the stage's limit; libzmq 4.3.4 then drops the
# connection and never reconnects it. Each connecting socket must notice,
# log it once naming the endpoint and the peer, and serve the next good
# producer bound on the same endpoint:
#   - gambar-train --in (PULL, the default 256 MiB limit: 256 MiB + 1 byte);
#   - gambar-dash --metrics (SUB, 1 MiB + 1), twice: one warn line;
#   - gambar-eval --follow (SUB, 1 MiB + 1);
#   - gambar-run's status line (SUB on the Metric channel, on a terminal).
# Loopback TCP on free ports; every process is bounded by timeout.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dash_lib.sh"
MIB1=$((1048576 + 1))
dead_lines() { grep -c 'dropped for good' "$1"; }

# ---- gambar-train --in ------------------------------------------------------
P=$(free_port)
EP="tcp://127.0.0.1:$P"
timeout 120 gambar-train --model dcgan28 --width 8 --threads 1 --seed 2 --log-every 1000 --in ">$EP" \
    --ckpt-dir "$TMP/tc" --ckpt-every 100 2>"$TMP/train.log" &
tp=$!
timeout 60 oversize_peer --out "@$EP" --hold-ms 300 >"$TMP/bad.out" 2>"$TMP/bad.err"
check train_bad_peer_sent grep -q "^sent 268435457$" "$TMP/bad.out"
t0=$(date +%s)
timeout 60 batch_source --synthetic-count 256 --batch 16 --seed 5 --batches 3 --out "@$EP" 2>"$TMP/src.log"
wait $tp; trc=$?
t1=$(date +%s)
cat "$TMP/train.log" >&2
echo "trainer served $((t1 - t0)) s after the hostile peer left" >&2
check train_recovers_exit0 test $trc -eq 0
check train_recovers_trained test -f "$TMP/tc/ckpt-0000000003.gck"
check train_logged_once test "$(dead_lines "$TMP/train.log")" -eq 1
check train_log_names_endpoint_and_peer grep -q -- "--in $EP: peer $EP dropped for good: .*268435456-byte limit" \
    "$TMP/train.log"

# ---- gambar-dash --metrics --------------------------------------------------
P=$(free_port)
EP="tcp://127.0.0.1:$P"
check dash_starts start_dash --metrics ">$EP"
for i in 1 2; do
    timeout 30 oversize_peer --out "@$EP" --type pub --bytes $MIB1 --hold-ms 300 >"$TMP/bad$i.out" 2>&1
    check "dash_bad_peer_sent_$i" grep -q "^sent $MIB1$" "$TMP/bad$i.out"
    sleep 1.5 # the replacement socket connects to the next peer
done
timeout 30 metric_pub --out "@$EP" --steps 5 --interval-ms 200 --wait-ms 1500 >/dev/null 2>"$TMP/mp.err"
check dash_recovers wait_state "len(s['series'])>0"
stop_dash
cat "$TMP/dash.err" >&2
check dash_stops_cleanly test "$DASH_RC" -eq 0
check dash_logged_once test "$(dead_lines "$TMP/dash.err")" -eq 1
check dash_log_names_endpoint_and_peer grep -q -- "--metrics $EP: peer $EP dropped for good" "$TMP/dash.err"

# ---- gambar-eval --follow ---------------------------------------------------
gambar-ingest -q --source "idx:$FASHION/train" --db "$TMP/edb" --limit 200 2>"$TMP/ing.err"
gambar-eval --fit-features --db "$TMP/edb" --epochs 1 --out "$TMP/fn.gck" >/dev/null 2>"$TMP/fit.err"
check eval_features_fitted test -f "$TMP/fn.gck"
P=$(free_port)
EP="tcp://127.0.0.1:$P"
timeout 120 gambar-eval --db "$TMP/edb" --features "$TMP/fn.gck" --follow ">$EP" --follow-count 1 --n 50 \
    --mem-n 20 >"$TMP/f.out" 2>"$TMP/f.err" &
ep=$!
timeout 60 oversize_peer --out "@$EP" --type pub --topic gambar.CheckpointReady --bytes $MIB1 --hold-ms 300 \
    >"$TMP/badf.out" 2>&1
check eval_bad_peer_sent grep -q "^sent $MIB1$" "$TMP/badf.out"
# a CheckpointReady every step until the evaluator has one (a missing file:
# the evaluation fails, is logged, and counts)
timeout 60 metric_pub --out "@$EP" --steps 100 --eval-every 1 --interval-ms 200 --wait-ms 500 >/dev/null 2>&1 &
mp=$!
wait $ep; erc=$?
kill $mp 2>/dev/null; wait $mp 2>/dev/null
cat "$TMP/f.err" >&2
check eval_follow_recovers grep -q "evaluating " "$TMP/f.err"
check eval_follow_exit0 test $erc -eq 0
check eval_logged_once test "$(dead_lines "$TMP/f.err")" -eq 1
check eval_log_names_endpoint_and_peer grep -q -- "--follow $EP: peer $EP dropped for good" "$TMP/f.err"

# ---- gambar-run's status line ----------------------------------------------
if command -v script >/dev/null 2>&1; then
    P=$(free_port)
    EP="tcp://127.0.0.1:$P"
    cat >"$TMP/st.ini" <<EOF
[channel metrics]
type = gambar.Metric
endpoint = $EP

[hold]
command = sleep
type = job
args = 4

[pub]
command = metric_pub
type = job
after = hold
metrics = metrics
metrics.option = --out
args = --steps 20 --interval-ms 150 --wait-ms 1000 --eval-every 1000
EOF
    timeout 60 oversize_peer --out "@$EP" --type pub --bytes $MIB1 --hold-ms 300 >"$TMP/badr.out" 2>&1 &
    bp=$!
    # without CURVE (GAMBAR_CURVE_KEYS empty): the foreign peer must get past
    # the handshake to send its oversized frame (t_curve covers the keys)
    env -u NO_COLOR TERM=xterm PATH="$PATH" GAMBAR_CURVE_KEYS= timeout 120 script -qec \
        "gambar-run '$TMP/st.ini' --run-dir '$TMP/r'" /dev/null </dev/null >"$TMP/r.tty" 2>&1; rrc=$?
    wait $bp
    tr '\r' '\n' <"$TMP/r.tty" >"$TMP/r.err"
    cat "$TMP/r.err" >&2
    check run_bad_peer_sent grep -q "^sent $MIB1$" "$TMP/badr.out"
    check run_exit0 test $rrc -eq 0
    check run_status_line_recovers grep -q '\[step [0-9]* epoch' "$TMP/r.err"
    check run_logged_once test "$(dead_lines "$TMP/r.err")" -eq 1
    check run_log_names_endpoint_and_peer grep -q "status line $EP: peer $EP dropped for good" "$TMP/r.err"
else
    skip run_status_line "no script(1)"
fi
rm -rf "$TMP"
