#!/bin/sh
# t_disk_full.sh - a really full disk (a 20 MB tmpfs; needs root to mount,
# else every check is reported as a "skip" line): gambar-ingest names the
# full disk even when LMDB reports the short write as EIO, exits 4, and
# its summary and --json count as stored exactly what the database holds.
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
