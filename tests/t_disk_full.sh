#!/bin/sh
# t_disk_full.sh - a really full disk (a 20 MB tmpfs; needs root to mount,
# else every check is reported as a "skip" line): gambar-ingest names the
# full disk even when LMDB reports the short write as EIO, exits 4, and
# its summary and --json count as stored exactly what the database holds;
# the trainer's checkpoint, the sampler's PNGs and the evaluator's outputs
# (json, model card, closest-pair PNGs) name the full disk with the path.
. "$(dirname "$0")/lib.sh"
field() { sed -n "s/^$1 //p" "$2" | head -n 1; }
json() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" "$2" | head -n 1; }

FS=$TMP/fs
mkdir -p "$FS"
if ! mount -t tmpfs -o size=20m tmpfs "$FS" 2>"$TMP/mount.err"; then
    echo "skip t_disk_full: cannot mount a 20 MB tmpfs ($(cat "$TMP/mount.err")); needs root"
    rm -rf "$TMP"
    exit 0
fi
trap 'umount "$FS" 2>/dev/null; rm -rf "$TMP"' EXIT

# Made while there is room: a checkpoint on the small disk (its model card
# and closest-pair PNGs go next to it) and a dataset elsewhere for eval.
CK=$(mkckpt "$FS/ck" --steps 0 --seed 2)
gambar-ingest -q --source "idx:$FASHION/t10k" --db "$TMP/te" --limit 300 2>/dev/null

# --- ingest: 60000 Fashion-MNIST records (about 50 MB) into 20 MB ---
gambar-ingest --source "idx:$FASHION/train" --db "$FS/db" --json "$TMP/ing.json" >/dev/null 2>"$TMP/ing.err"
rc=$?
cat "$TMP/ing.err" >&2
check "ingest on a full disk: exit 4" [ $rc -eq 4 ]
check "ingest: disk full named with the path and free bytes" \
    grep -q "disk full: $FS/db has [0-9]* bytes free" "$TMP/ing.err"
check "ingest: not reported as a bare I/O error" sh -c "! grep -q 'commit failed: Input/output error' '$TMP/ing.err'"
dbinfo "$FS/db" --verify >"$TMP/info" 2>&1
n_db=$(field count "$TMP/info")
n_json=$(json stored "$TMP/ing.json")
n_sum=$(sed -n 's/.*info: done: \([0-9]*\) stored.*/\1/p' "$TMP/ing.err")
echo "tmpfs ingest: database holds $n_db, summary says $n_sum stored, --json $n_json" >&2
check "ingest: the database holds some examples" [ "${n_db:-0}" -gt 0 ]
check "ingest: summary 'stored' equals the database count ($n_sum vs $n_db)" [ "$n_sum" = "$n_db" ]
check "ingest: --json stored equals the database count ($n_json vs $n_db)" [ "$n_json" = "$n_db" ]
check "ingest: --json dataset_count equals the database count" [ "$(json dataset_count "$TMP/ing.json")" = "$n_db" ]
check "ingest: what was committed verifies" grep -q '^verify ok' "$TMP/info"

# The disk is now full (a tmpfs also counts folders and inodes against it).
df -B1 "$FS" >&2
# --- sampler ---
check_exit "sample into a full disk: exit 4" 4 gambar-sample --ckpt "$CK" --n 8 --seed 1 --out "$FS/imgs"
check "sample: disk full named with the path" grep -q "disk full: $FS[^ ]* has [0-9]* bytes free" "$TMP/err"
check_exit "sample one PNG into a full disk: exit 4" 4 gambar-sample --ckpt "$CK" --n 1 --seed 1 --out "$FS/one.png"
check "sample one PNG: disk full named with the path" grep -q "disk full: $FS/one.png has [0-9]* bytes free" "$TMP/err"

# --- trainer: its checkpoint cannot be saved ---
batch_source --synthetic-count 64 --batch 16 --epochs 4 --seed 7 --out "ipc://$TMP/s.sock" 2>/dev/null &
sp=$!
check_exit "train with a full checkpoint disk: exit 4" 4 timeout 120 gambar-train --model dcgan28 --width 8 --threads 1 \
    --in "ipc://$TMP/s.sock" --ckpt-dir "$FS/run" --ckpt-every 4 --steps 4
kill $sp 2>/dev/null; wait $sp 2>/dev/null
check "train: disk full named with the path" grep -q "disk full: $FS[^ ]* has [0-9]* bytes free" "$TMP/err"

# --- evaluator: json, model card and closest-pair PNGs on the full disk ---
gambar-eval --db "$TMP/te" --ckpt "$CK" --n 100 --epochs 1 --card --worst-n 2 --json "$FS/ev.json" >/dev/null 2>"$TMP/ev.err"
rc=$?
cat "$TMP/ev.err" >&2
check "eval with full output disk: exit 4" [ $rc -eq 4 ]
check "eval: --json failure names the full disk" grep -q "$FS/ev.json: cannot .*disk full: $FS/ev.json has [0-9]* bytes free" "$TMP/ev.err"
check "eval: model card failure names the full disk" grep -q "card.md: cannot .*disk full: " "$TMP/ev.err"
check "eval: closest-pair PNG failure names the full disk" grep -q "pair-00.png: .*disk full: " "$TMP/ev.err"
