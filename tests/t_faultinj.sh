#!/bin/sh
# t_faultinj.sh - fault-injection loops (tests/faultinj/faultinj.c, an
# LD_PRELOAD library): for k = 1, 2, ... the k-th write / fsync / rename /
# open / mmap / malloc ... of a stage fails, until a run completes without
# the fault firing. Every failed run must end with a named error (non-zero
# exit, a message with the reason and the file), nothing half-written (a
# file at its final name is complete: PNG decodes, checkpoint loads with
# its checksum, JSON parses; LMDB verifies and holds what the program said
# it stored; earlier checkpoints intact), and a rerun without faults must
# succeed (re-ingest, --resume). Stages: gambar-ingest, gambar-train's
# checkpoints, gambar-eval's outputs, gambar-sample's PNGs.
# Key functions (rename, fsync, open) are tried at every k; write and
# malloc with a stride when their count is large (printed as "stride").
# FI_STRIDE=1 forces every k everywhere (slow). Without FI_FULL=1 (make
# test), eval's write/open loops are skipped, eval and sample rerun only
# after their last k, and allocator loops take about 6 k.
. "$(dirname "$0")/lib.sh"
FI=$GAMBAR_TOOLS/libfaultinj.so
[ -f "$FI" ] || { notok "libfaultinj.so built"; exit 0; }
# The sanitizers' runtime must come first and intercepts malloc itself.
if [ -n "$(nm -u "$GAMBAR_BIN/gambar-ingest" 2>/dev/null | grep __asan_init)" ]; then
    skip faultinj "the LD_PRELOAD library is not built with the sanitizers"; exit 0
fi
FASHION_NAMES="T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"
# strerror text of the injected errno
errmsg() { case $1 in ENOSPC) echo "No space left on device";; EIO) echo "Input/output error";;
    EACCES) echo "Permission denied";; ENOMEM) echo "Cannot allocate memory";; EDQUOT) echo "Disk quota exceeded";; esac; }
T0=$(date +%s)
SUMMARY=$TMP/summary

# fij FN K PATHPREFIX CMD...: run CMD with the library (K=0: count only,
# the count in $TMP/fi.count); stdout/stderr in $TMP/fi.out/$TMP/fi.err
fij() {
    _fn=$1; _k=$2; _p=$3; shift 3
    rm -f "$TMP/fi.count"
    env LD_PRELOAD="$FI" FAULTINJ_FN="$_fn" FAULTINJ_K="$_k" FAULTINJ_PATH="$_p" FAULTINJ_ERRNO="$FI_ERRNO" \
        FAULTINJ_COUNT_FILE="$TMP/fi.count" "$@" >"$TMP/fi.out" 2>"$TMP/fi.err"
}

# floop NAME FN ERRNO STRIDE PATHPREFIX: the loop for one scenario and
# function group. The scenario provides NAME_reset, NAME_run (the command,
# through fij), NAME_check K (state after a failed run: prints what is
# wrong on stderr, returns 1), NAME_rerun (fault-free rerun, 0 = ok) and
# NAME_file (a regex the error message must contain: the file or folder).
floop() {
    _s=$1 _f=$2 FI_ERRNO=$3 _stride=$4 _pre=$5
    ${_s}_reset
    FI_FN=$_f FI_K=0 FI_PRE=$_pre ${_s}_run
    _rc=$?
    _n=$(cat "$TMP/fi.count" 2>/dev/null)
    if [ "$_rc" -ne 0 ] || [ -z "$_n" ]; then
        notok "$_s/$_f: counting run" "exit $_rc: $(tail -3 "$TMP/fi.err")"; return
    fi
    [ -n "$FI_STRIDE" ] && _stride=$FI_STRIDE
    # stride 0: about 12 k spread over the count
    _spread=12; [ -z "$FI_FULL" ] && _spread=6
    [ "$_stride" = 0 ] && _stride=$(( (_n + _spread - 1) / _spread )) && [ "$_stride" -lt 1 ] && _stride=1
    _bad=0 _iters=0 _k=1 _msg=$(errmsg "$FI_ERRNO") _alloc=0 _tol=0
    case $_f in *alloc*) _alloc=1;; esac
    while [ "$_k" -le "$_n" ]; do
        _iters=$((_iters + 1))
        ${_s}_reset
        FI_FN=$_f FI_K=$_k FI_PRE=$_pre ${_s}_run
        _rc=$?
        _why=""
        if ! grep -q '^faultinj: failing' "$TMP/fi.err"; then
            _why="the fault did not fire (exit $_rc)"
        elif [ "$_rc" -eq 0 ] && [ $_alloc = 1 ]; then
            # a library that copes with a failed allocation (OpenSSL's
            # lazy init does): fine when the outputs are all there
            _tol=$((_tol + 1))
            ${_s}_rerun_check 2>"$TMP/fi.why" || _why="exit 0 with bad outputs: $(cat "$TMP/fi.why")"
        elif [ "$_rc" -eq 0 ]; then
            _why="silent success (exit 0)"
        elif [ "$_rc" -gt 128 ] && ! grep -q 'out of memory' "$TMP/fi.err"; then
            _why="crash (exit $_rc)"
        elif [ $_alloc = 1 ]; then
            grep -v '^faultinj:' "$TMP/fi.err" | grep -qi 'out of memory\|cannot allocate' ||
                _why="no 'out of memory' message (exit $_rc)"
        elif ! grep -v '^faultinj:' "$TMP/fi.err" | grep -q "$_msg"; then
            _why="no message with the reason '$_msg' (exit $_rc)"
        elif ! grep -v '^faultinj:' "$TMP/fi.err" | grep "$_msg" | grep -q "$(${_s}_file)"; then
            _why="the message does not name the file (exit $_rc)"
        fi
        if [ -z "$_why" ] && [ "$_rc" -ne 0 ]; then ${_s}_check "$_k" 2>"$TMP/fi.why" || _why="$(cat "$TMP/fi.why")"; fi
        _last=0; [ $((_k + _stride)) -gt "$_n" ] && _last=1
        if [ -z "$_why" ] && { [ -n "$FI_FULL" ] || [ $_last = 1 ] || [ "$_s" = ing ] || [ "$_s" = tr ]; }; then
            ${_s}_rerun 2>"$TMP/fi.why" || _why="fault-free rerun: $(cat "$TMP/fi.why")"
        fi
        if [ -n "$_why" ]; then
            _bad=$((_bad + 1))
            echo "$_s/$_f k=$_k: $_why" >&2
            grep -v '^  ' "$TMP/fi.err" | tail -4 | sed 's/^/    | /' >&2
        fi
        _k=$((_k + _stride))
    done
    # past the last matching call the run completes without firing (a
    # threaded run's allocation count varies from run to run - ingest's
    # decode threads: 9,818 to over 10,017 seen - so allocator loops use 2n)
    _past=$((_n + 1)); [ $_alloc = 1 ] && _past=$((_n * 2 + 100))
    ${_s}_reset
    FI_FN=$_f FI_K=$_past FI_PRE=$_pre ${_s}_run
    _rc=$?
    if [ "$_rc" -ne 0 ] || grep -q '^faultinj: failing' "$TMP/fi.err"; then
        _bad=$((_bad + 1)); echo "$_s/$_f k=$_past: exit $_rc" >&2
    fi
    _note="$_n matching calls, $_iters runs"
    [ "$_stride" -gt 1 ] && _note="$_note (stride $_stride)"
    [ "$_tol" -gt 0 ] && _note="$_note, $_tol tolerated by a library"
    echo "$_s/$_f: $_note" >>"$SUMMARY"
    echo "faultinj: $_s/$_f: $_note, $_bad bad" >&2
    if [ "$_bad" -eq 0 ]; then ok "$_s/$_f: $_note"; else notok "$_s/$_f: $_bad of $_iters runs bad ($_note)"; fi
}

field() { sed -n "s/^$1 //p" "$2" | head -n 1; }
pngs_ok() { # DIR: every *.png decodes (and no temporary names are left)
    python3 - "$1" <<'PY'
import os, struct, sys, zlib
bad = []
for root, dirs, files in os.walk(sys.argv[1]):
    for f in files + dirs:
        if 'tmp' in f: bad.append('temporary name left: ' + os.path.join(root, f))
    for f in files:
        if not f.endswith('.png'): continue
        p = os.path.join(root, f); d = open(p, 'rb').read()
        try:
            assert d[:8] == b'\x89PNG\r\n\x1a\n'
            i, idat, end = 8, b'', False
            while i < len(d):
                n, t = struct.unpack('>I4s', d[i:i + 8]); body = d[i + 8:i + 8 + n]
                assert len(body) == n and struct.unpack('>I', d[i + 8 + n:i + 12 + n])[0] == zlib.crc32(t + body)
                if t == b'IDAT': idat += body
                if t == b'IEND': end = True; break
                i += 12 + n
            assert end; zlib.decompress(idat)
        except Exception as e:
            bad.append('%s does not decode (%r)' % (p, e))
for b in bad: print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

# ==== 1. gambar-ingest: 100 PNGs in transactions of 25 =======================
idx2png "$FASHION/train" "$TMP/src" --limit 100 2>"$TMP/idx.err" || { notok "idx2png"; exit 0; }
ING="gambar-ingest --source $TMP/src --size 28x28 --channels 1 --batch 25"
$ING -q --db "$TMP/ref" 2>"$TMP/ref.err" && dbinfo "$TMP/ref" >"$TMP/ref.info"
ING_DIGEST=$(field digest "$TMP/ref.info")
check "ingest reference run" [ "$(field count "$TMP/ref.info")" = 100 ]
ing_reset() { rm -rf "$TMP/o_ing"; mkdir "$TMP/o_ing"; }
ing_run() { fij "$FI_FN" "$FI_K" "$FI_PRE" $ING --db "$TMP/o_ing/db" --json "$TMP/o_ing/s.json"; }
ing_file() { echo "$TMP/o_ing/"; }
ing_check() {
    if [ -e "$TMP/o_ing/s.json" ]; then
        python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$TMP/o_ing/s.json" || { echo "s.json does not parse" >&2; return 1; }
    fi
    ls -A "$TMP/o_ing" | grep -q tmp && { echo "temporary file left: $(ls -A "$TMP/o_ing")" >&2; return 1; }
    [ -e "$TMP/o_ing/db/data.mdb" ] || return 0
    # what the program said the dataset holds: the error's "the N
    # example(s) committed before are intact", else the closing summary
    said=$(sed -n -e 's/.*the \([0-9]*\) example(s) committed before are intact.*/\1/p' \
        -e 's/.* info: dataset .*: \([0-9]*\) example(s), digest.*/\1/p' "$TMP/fi.err" | head -n 1)
    if ! dbinfo "$TMP/o_ing/db" --verify >"$TMP/o.info" 2>&1; then
        # an empty database (no transaction committed yet) is consistent
        [ "${said:-0}" = 0 ] && ! grep -q '^count [1-9]' "$TMP/o.info" && return 0
        echo "database does not verify: $(tail -2 "$TMP/o.info")" >&2; return 1
    fi
    grep -q '^verify ok' "$TMP/o.info" || { echo "database does not verify" >&2; return 1; }
    n=$(field count "$TMP/o.info")
    [ -z "$said" ] && [ "$n" = 0 ] && return 0 # nothing stored, nothing claimed
    # after an abort (out of memory) there is no summary: consistent is enough
    [ -z "$said" ] && grep -q 'out of memory' "$TMP/fi.err" && return 0
    [ -z "$said" ] && { echo "no 'N example(s) committed' in the error (the db holds $n)" >&2; return 1; }
    [ "$n" = "$said" ] || { echo "the db holds $n examples, the program said $said" >&2; return 1; }
}
ing_rerun_check() { # the outputs of a complete run
    [ -e "$TMP/o_ing/s.json" ] || { echo "no s.json" >&2; return 1; }
    dbinfo "$TMP/o_ing/db" --verify >"$TMP/o.info" 2>&1
    [ "$(field count "$TMP/o.info")" = 100 ] && [ "$(field digest "$TMP/o.info")" = "$ING_DIGEST" ] ||
        { echo "count $(field count "$TMP/o.info"), digest differs" >&2; return 1; }
}
ing_rerun() {
    $ING -q --db "$TMP/o_ing/db" --json "$TMP/o_ing/s.json" 2>"$TMP/rr.err" || { tail -2 "$TMP/rr.err" >&2; return 1; }
    dbinfo "$TMP/o_ing/db" --verify >"$TMP/o.info" 2>&1
    [ "$(field count "$TMP/o.info")" = 100 ] && [ "$(field digest "$TMP/o.info")" = "$ING_DIGEST" ] ||
        { echo "re-ingest: count $(field count "$TMP/o.info"), digest differs" >&2; return 1; }
}
floop ing writes ENOSPC 1 "$TMP/o_ing"
floop ing syncs EIO 1 "$TMP/o_ing"
floop ing renames EIO 1 "$TMP/o_ing"
floop ing opens EACCES 1 "$TMP/o_ing"
floop ing mmap,ftruncate ENOMEM 1 "$TMP/o_ing"
floop ing allocs ENOMEM 0 ""
echo "faultinj: ingest loops $(( $(date +%s) - T0 )) s" >&2


# ==== 2. gambar-train's checkpoints: 8 steps, one every 2 ======================
TRS="batch_source --synthetic-count 128 --batch 16 --epochs 20 --seed 7"
TR="gambar-train --model dcgan28 --width 8 --threads 1 --seed 3 --log-every 1000 --steps 8 --ckpt-every 2 --keep 10"
# tr_straight DIR [RUNNER]: producer + trainer (through RUNNER, e.g. fij)
tr_with_source() { # START CMD...: run CMD with a producer at batch START
    _start=$1; shift
    $TRS --out "ipc://$TMP/t.sock" --start-batch "$_start" 2>>"$TMP/src.log" &
    _sp=$!
    "$@"; _trc=$?
    kill $_sp 2>/dev/null; wait $_sp 2>/dev/null
    return $_trc
}
tr_with_source 0 $TR --in "ipc://$TMP/t.sock" --ckpt-dir "$TMP/tref" 2>"$TMP/tref.err"
check "train reference run" test -f "$TMP/tref/ckpt-0000000008.gck"
tr_reset() { rm -rf "$TMP/o_tr"; }
tr_run() { tr_with_source 0 fij "$FI_FN" "$FI_K" "$FI_PRE" $TR --in "ipc://$TMP/t.sock" --ckpt-dir "$TMP/o_tr"; }
tr_file() { echo "$TMP/o_tr"; }
tr_check() {
    # hidden names too: the save's temporary file is ".ckpt-STEP.PID.tmp"
    for f in "$TMP"/o_tr/* "$TMP"/o_tr/.[!.]*; do
        [ -e "$f" ] || continue
        case $(basename "$f") in
            ckpt-*.gck) ckpt_diff "$f" "$TMP/tref/$(basename "$f")" >"$TMP/cd.out" 2>&1 ||
                { echo "$(basename "$f") is not the reference's: $(tail -2 "$TMP/cd.out")" >&2; return 1; } ;;
            *tmp*) echo "temporary file left: $(basename "$f")" >&2; return 1 ;;
        esac
    done
}
tr_rerun_check() {
    ckpt_diff "$TMP/o_tr/ckpt-0000000008.gck" "$TMP/tref/ckpt-0000000008.gck" >"$TMP/cd.out" 2>&1 ||
        { echo "final checkpoint differs from the straight run: $(tail -2 "$TMP/cd.out")" >&2; return 1; }
}
tr_rerun() {
    k=$(gambar-train --print-start-batch --ckpt-dir "$TMP/o_tr" 2>>"$TMP/tr.err") || { echo "--print-start-batch failed" >&2; return 1; }
    if [ -d "$TMP/o_tr" ] && ls "$TMP/o_tr" | grep -q '^ckpt-'; then
        tr_with_source "$k" $TR --in "ipc://$TMP/t.sock" --ckpt-dir "$TMP/o_tr" --resume 2>"$TMP/tr.err"
    else
        tr_with_source 0 $TR --in "ipc://$TMP/t.sock" --ckpt-dir "$TMP/o_tr" 2>"$TMP/tr.err"
    fi || { echo "resume: $(tail -2 "$TMP/tr.err")" >&2; return 1; }
    tr_rerun_check
}
T1=$(date +%s)
floop tr writes ENOSPC 1 "$TMP/o_tr"
floop tr syncs EIO 1 "$TMP/o_tr"
floop tr renames EIO 1 "$TMP/o_tr"
floop tr opens EACCES 1 "$TMP/o_tr"
echo "faultinj: train loops $(( $(date +%s) - T1 )) s" >&2

# ==== 3. gambar-eval's outputs: JSON report, model card, nearest pairs ==========
gambar-ingest -q --source "idx:$FASHION/train" --db "$TMP/edb" --limit 600 2>"$TMP/eing.err"
ECK=$(mkckpt "$TMP/eck" --steps 2 --seed 3 2>>"$TMP/eing.err")
EV="gambar-eval --db $TMP/edb --n 100 --card --worst-n 2 --epochs 1"
# the first run fits and caches the feature network in the dataset folder
mkdir -p "$TMP/eref" && cp "$ECK" "$TMP/eref/ck.gck"
$EV --ckpt "$TMP/eref/ck.gck" --json "$TMP/eref/r.json" >/dev/null 2>"$TMP/eref.err"
check "eval reference run" test -s "$TMP/eref/r.json" -a -s "$TMP/eref/ck.gck.card.md" -a -f "$TMP/eref/ck.gck.nearest/pair-01.png"
ev_reset() { rm -rf "$TMP/o_ev"; mkdir "$TMP/o_ev"; cp "$ECK" "$TMP/o_ev/ck.gck"; }
ev_run() { fij "$FI_FN" "$FI_K" "$FI_PRE" $EV --ckpt "$TMP/o_ev/ck.gck" --json "$TMP/o_ev/r.json"; }
ev_file() { echo "$TMP/o_ev/"; }
ev_check() {
    if [ -e "$TMP/o_ev/r.json" ]; then
        python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$TMP/o_ev/r.json" 2>/dev/null || { echo "r.json does not parse" >&2; return 1; }
    fi
    if [ -e "$TMP/o_ev/ck.gck.card.md" ] && ! grep -q "## Known limitations" "$TMP/o_ev/ck.gck.card.md"; then
        echo "the model card is incomplete" >&2; return 1
    fi
    cmp -s "$ECK" "$TMP/o_ev/ck.gck" || { echo "the checkpoint changed" >&2; return 1; }
    pngs_ok "$TMP/o_ev"
}
ev_rerun_check() {
    [ -s "$TMP/o_ev/r.json" ] && [ -s "$TMP/o_ev/ck.gck.card.md" ] && [ -f "$TMP/o_ev/ck.gck.nearest/pair-01.png" ] ||
        { echo "outputs missing: $(ls -R "$TMP/o_ev" | tr '\n' ' ')" >&2; return 1; }
    ev_check
}
ev_rerun() {
    $EV --ckpt "$TMP/o_ev/ck.gck" --json "$TMP/o_ev/r.json" >/dev/null 2>"$TMP/ev.err" || { tail -2 "$TMP/ev.err" >&2; return 1; }
    ev_rerun_check
}
T1=$(date +%s)
[ -n "$FI_FULL" ] && floop ev writes ENOSPC 1 "$TMP/o_ev"
floop ev syncs EIO 1 "$TMP/o_ev"
floop ev renames EIO 1 "$TMP/o_ev"
[ -n "$FI_FULL" ] && floop ev opens EACCES 1 "$TMP/o_ev"
echo "faultinj: eval loops $(( $(date +%s) - T1 )) s" >&2

# ==== 4. gambar-sample: 6 PNGs into a new folder =================================
SCK=$(mkckpt "$TMP/sck" --classes "$FASHION_NAMES" --steps 2 --seed 5 2>>"$TMP/eing.err")
SA="gambar-sample --ckpt $SCK --n 6 --seed 10"
sa_reset() { rm -rf "$TMP/o_sa"; mkdir "$TMP/o_sa"; }
sa_run() { fij "$FI_FN" "$FI_K" "$FI_PRE" $SA --out "$TMP/o_sa/out"; }
sa_file() { echo "$TMP/o_sa"; }
sa_check() { pngs_ok "$TMP/o_sa"; }
sa_rerun_check() {
    [ "$(ls "$TMP/o_sa/out" | wc -l)" = 6 ] || { echo "$(ls "$TMP/o_sa/out" | wc -l) files, want 6" >&2; return 1; }
    pngs_ok "$TMP/o_sa"
}
sa_rerun() {
    $SA --out "$TMP/o_sa/out" >/dev/null 2>"$TMP/sa.err" || { tail -2 "$TMP/sa.err" >&2; return 1; }
    sa_rerun_check
}
T1=$(date +%s)
floop sa writes ENOSPC 1 "$TMP/o_sa"
floop sa syncs EIO 1 "$TMP/o_sa"
floop sa renames EIO 1 "$TMP/o_sa"
floop sa opens EACCES 1 "$TMP/o_sa"
floop sa allocs ENOMEM 0 ""
echo "faultinj: sample loops $(( $(date +%s) - T1 )) s" >&2

echo "faultinj: total $(( $(date +%s) - T0 )) s" >&2
cat "$SUMMARY" >&2
exit 0
