# tests/dash_lib.sh - helpers for the gambar-dash shell tests (sourced
# after lib.sh). HTTP with curl; Debian's python3 (/usr/bin/python3) for
# JSON and protobuf checks.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
DASH_PID=""
# start_dash ARGS...: start gambar-dash with --http 127.0.0.1:0 and set
# PORT from its "serving http://127.0.0.1:PORT/" line; stderr in $TMP/dash.err
start_dash() {
    gambar-dash --http 127.0.0.1:0 "$@" 2>"$TMP/dash.err" &
    DASH_PID=$!
    PORT=""
    for _i in $(seq 100); do
        PORT=$(sed -n 's|.*serving http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$TMP/dash.err" | head -1)
        [ -n "$PORT" ] && break
        kill -0 "$DASH_PID" 2>/dev/null || break
        sleep 0.1
    done
    URL="http://127.0.0.1:$PORT"
    [ -n "$PORT" ]
}
# stop_dash: SIGTERM, wait; sets DASH_RC
stop_dash() {
    [ -n "$DASH_PID" ] || return 0
    kill -TERM "$DASH_PID" 2>/dev/null
    wait "$DASH_PID"; DASH_RC=$?
    DASH_PID=""
}
# http_code URL [curl args...]: print the status code
http_code() { u=$1; shift; curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$u"; }
# wait_state PYEXPR: poll /api/state until PYEXPR (over s = the JSON) is true (10 s)
wait_state() {
    for _i in $(seq 100); do
        curl -s --max-time 2 "$URL/api/state" >"$TMP/state.json" 2>/dev/null &&
            $PY -c "import json,sys; s=json.load(open('$TMP/state.json')); sys.exit(0 if ($1) else 1)" 2>/dev/null &&
            return 0
        sleep 0.1
    done
    return 1
}
cleanup_dash() { [ -n "$DASH_PID" ] && kill -TERM "$DASH_PID" 2>/dev/null; wait 2>/dev/null; }
trap cleanup_dash EXIT

# need_browser: the browser tests' preamble - the logs folder ($LOGS) and
# Chromium with python3-websockets, or one failed check and exit.
need_browser() {
    LOGS="$GAMBAR_ROOT/${BUILD:-build}/test-logs"
    mkdir -p "$LOGS"
    if ! command -v chromium >/dev/null || ! $PY -c "import websockets" 2>/dev/null; then
        notok "browser: chromium and python3-websockets are needed (scripts/install-deps.sh)"
        exit 1
    fi
}
