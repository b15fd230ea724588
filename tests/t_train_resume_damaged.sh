#!/bin/sh
# t_train_resume_damaged.sh - starting over is never silent:
#   - --resume on a folder with no checkpoint starts a new run and says so
#     in one info line;
#   - --resume on a folder whose every checkpoint is damaged is refused
#     (exit 3) naming each file and why it was rejected, and writes nothing;
#   - --fresh-if-damaged starts the new run anyway, with a warning.
. "$(dirname "$0")/lib.sh"
B=16
SRC="batch_source --synthetic-count 64 --batch $B --epochs 4 --seed 7"
TR="gambar-train --model dcgan28 --width 8 --threads 1 --seed 3 --log-every 1000"
# train DIR SOCK ARGS...: 4 steps from a fresh producer; exit status of the trainer
train() {
    d=$1; sock=$2; shift 2
    $SRC --out "ipc://$TMP/$sock.sock" 2>>"$TMP/src.log" &
    sp=$!
    timeout 120 $TR --in "ipc://$TMP/$sock.sock" --ckpt-dir "$d" --ckpt-every 4 --steps 4 "$@" >/dev/null 2>"$TMP/err"
    r=$?
    kill $sp 2>/dev/null; wait $sp 2>/dev/null
    return $r
}

# --- no checkpoint at all: a new run, said once ---
train "$TMP/new" a --resume; rc=$?
cat "$TMP/err" >&2
check "empty folder + --resume: exit 0" [ $rc -eq 0 ]
check "empty folder + --resume: one info line says a new run starts" \
    [ "$(grep -c "no checkpoint in $TMP/new; starting a new run at step 0" "$TMP/err")" -eq 1 ]
check "empty folder + --resume: trained and saved" test -f "$TMP/new/ckpt-0000000004.gck"

# --- every checkpoint damaged ---
mkdir -p "$TMP/dmg"
cp "$TMP/new/ckpt-0000000004.gck" "$TMP/dmg/ckpt-0000000004.gck"
head -c 1000 "$TMP/new/ckpt-0000000004.gck" >"$TMP/dmg/ckpt-0000000008.gck"            # truncated
printf 'garbage' | dd of="$TMP/dmg/ckpt-0000000004.gck" bs=1 seek=5000 conv=notrunc 2>/dev/null # bad SHA-256
check_exit "all damaged + --resume: exit 3" 3 timeout 60 $TR --in "ipc://$TMP/none.sock" --ckpt-dir "$TMP/dmg" \
    --ckpt-every 4 --steps 8 --resume
check "all damaged: names the truncated file and why" \
    grep -q "every checkpoint in $TMP/dmg is damaged:.*ckpt-0000000008.gck (GB_ECORRUPT" "$TMP/err"
check "all damaged: names the corrupted file and why" \
    grep -q "every checkpoint in $TMP/dmg is damaged:.*ckpt-0000000004.gck (GB_ECORRUPT" "$TMP/err"
check "all damaged: says it refuses to start over" grep -q "refusing to start over" "$TMP/err"
check "all damaged: no new checkpoint" [ "$(ls "$TMP/dmg" | wc -l)" -eq 2 ]

# --- the override ---
train "$TMP/dmg" b --resume --fresh-if-damaged; rc=$?
check "--fresh-if-damaged: exit 0" [ $rc -eq 0 ]
check "--fresh-if-damaged: warns that a new run starts" grep -q "warn.*starting a NEW run at step 0" "$TMP/err"
check "--fresh-if-damaged: new run saved step 4" sh -c "ckpt_tool dump '$TMP/dmg/ckpt-0000000004.gck' >/dev/null"
rm -rf "$TMP"
