# tests/lib.sh - helpers for shell tests (sourced).
# Each check prints "ok NAME" or "not ok NAME" (or "skip NAME (reason)"
# when it cannot run here); tests/run.sh counts them.
# Environment (set by tests/run.sh): GAMBAR_BIN, GAMBAR_TOOLS, GAMBAR_ROOT.
: "${GAMBAR_ROOT:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${GAMBAR_BIN:=$GAMBAR_ROOT/build/bin}"
: "${GAMBAR_TOOLS:=$GAMBAR_ROOT/build/tools}"
export NO_COLOR=1
PATH="$GAMBAR_BIN:$GAMBAR_TOOLS:$PATH"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gambar-sh-XXXXXX")
FASHION=/usr/share/datasets/fashion-mnist

ok() { echo "ok $1"; }
notok() { echo "not ok $1"; [ -n "$2" ] && echo "  $2" >&2; return 0; }
# skip NAME REASON: the check cannot run on this machine (counted apart)
skip() { echo "skip $1 ($2)"; }
# check NAME COMMAND...: ok when the command succeeds
check() { _cn=$1; shift; if "$@"; then ok "$_cn"; else notok "$_cn" "failed: $*"; fi; }
# check_exit NAME CODE COMMAND...: ok when the command exits with CODE
check_exit() {
    _cn=$1; _cwant=$2; shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"; _cgot=$?
    if [ "$_cgot" -eq "$_cwant" ]; then ok "$_cn"; else notok "$_cn" "exit $_cgot, want $_cwant: $*"; cat "$TMP/err" >&2; fi
}
# a free TCP port on 127.0.0.1 (best effort)
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
