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

# tiny_text_model: a small text-conditional checkpoint for the tests that
# need one (256 captioned t10k images, width 8, 16 steps of 16); prints
# "ok text model trained" and sets CK to $TMP/a/ckpt-0000000016.gck, or
# prints "not ok ..." with the cause and returns 1 (the caller exits).
tiny_text_model() {
    fashion_captions --train "$FASHION/train" --images "$FASHION/t10k" --seed 5 --out "$TMP/c.txt" 2>/dev/null ||
        { notok fashion_captions; return 1; }
    gambar-ingest -q --source "idx:$FASHION/t10k" --db "$TMP/db" --limit 256 --captions "$TMP/c.txt" \
        2>"$TMP/ingest.err" || { notok ingest_captions; cat "$TMP/ingest.err" >&2; return 1; }
    gambar-augment -q --db "$TMP/db" --out "ipc://$TMP/s.sock" --batch 16 --epochs 10 --seed 1 2>>"$TMP/aug.log" &
    _tp=$!
    gambar-train --model dcgan28 --width 8 --threads 1 --seed 3 --conditional text --db "$TMP/db" \
        --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/a" --ckpt-every 16 --steps 16 2>"$TMP/train.log"
    _trc=$?
    kill $_tp 2>/dev/null; wait $_tp 2>/dev/null
    CK="$TMP/a/ckpt-0000000016.gck"
    if [ $_trc -eq 0 ] && [ -f "$CK" ]; then ok "text model trained"; return 0; fi
    notok "text model trained"; cat "$TMP/train.log" >&2; return 1
}
