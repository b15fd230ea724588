#!/bin/sh
# t_train_db.sh - gambar-train --db: a dataset made by gambar-ingest (40
# Fashion-MNIST training images licensed CC-BY-4.0 with an attribution by a
# manifest, plus 20 test images without one) is streamed by gambar-augment;
# the trainer puts the dataset's class names into the checkpoint's model
# description and writes the dataset notes (license_summary sorted by
# count, dataset_source, counts); gambar-sample then picks a class by name
# on that real trained checkpoint and --inspect shows the licence summary.
# A different dataset passed as --db is refused (exit 3) both on a new run
# and on --resume; a resumed run keeps the checkpoint's notes.
. "$(dirname "$0")/lib.sh"
t0=$(date +%s)
printf 'path,license,attribution\n*,CC-BY-4.0,"Zalando Research, Fashion-MNIST"\n' >"$TMP/manifest.csv"
gambar-ingest --source "idx:$FASHION/train" --db "$TMP/db" --limit 40 --manifest "$TMP/manifest.csv" \
    2>"$TMP/ingest.log" >/dev/null
gambar-ingest --source "idx:$FASHION/t10k" --db "$TMP/db" --limit 20 2>>"$TMP/ingest.log" >/dev/null
check db_made test -f "$TMP/db/data.mdb"
gambar-ingest --source "idx:$FASHION/train" --db "$TMP/other" --limit 30 2>>"$TMP/ingest.log" >/dev/null
check other_db_made test -f "$TMP/other/data.mdb"

AUG="gambar-augment --db $TMP/db --batch 10 --epochs 4 --seed 3 --ops flip"
TR="gambar-train --model dcgan28 --width 8 --threads 1 --seed 2 --log-every 1000 --conditional yes"
train() { # STEPS CKPT-DIR [trainer options...]; sets rc
    n=$1; d=$2; shift 2
    $AUG --out "ipc://$TMP/a.sock" 2>>"$TMP/aug.log" &
    ap=$!
    $TR --in "ipc://$TMP/a.sock" --steps "$n" --ckpt-every "$n" --ckpt-dir "$d" "$@" 2>"$TMP/train.log"
    rc=$?
    kill $ap 2>/dev/null; wait $ap 2>/dev/null
}

train 6 "$TMP/c" --db "$TMP/db"
check train_db_exit0 test $rc -eq 0
CK="$TMP/c/ckpt-0000000006.gck"
check train_db_ckpt test -f "$CK"
ckpt_tool dump "$CK" >"$TMP/dump" 2>&1
grep -q 'Ankle boot' "$TMP/dump" && grep -q 'T-shirt/top' "$TMP/dump" && ok ckpt_has_class_names ||
    notok ckpt_has_class_names "$(grep -i class "$TMP/dump")"
check note_license_summary grep -qxF 'note license_summary=CC-BY-4.0: 40, unknown: 20' "$TMP/dump"
check note_dataset_count grep -qx 'note dataset_count=60' "$TMP/dump"
# G's class embedding: z size / 10 by default, --embed-dim sets it, and a
# resume with another width is refused
check default_embed_dim_is_z_over_10 grep -qx 'model.embed_dim 10' "$TMP/dump"
train 2 "$TMP/e7" --embed-dim 7
check embed_dim_option_exit0 test $rc -eq 0
ckpt_tool dump "$TMP/e7/ckpt-0000000002.gck" >"$TMP/dump7" 2>&1
check embed_dim_option_stored grep -qx 'model.embed_dim 7' "$TMP/dump7"
train 4 "$TMP/e7" --resume --embed-dim 8
check resume_other_embed_dim_exit3 test $rc -eq 3
check resume_other_embed_dim_named grep -q 'class embedding width 7, not 8' "$TMP/train.log"
check note_attribution_count grep -qx 'note attribution_count=40' "$TMP/dump"
check note_dataset_source grep -qxF "note dataset_source=idx:$FASHION/train; idx:$FASHION/t10k" "$TMP/dump"
check note_optout_count grep -qx 'note optout_count=0' "$TMP/dump"
check note_duplicate_count grep -qx 'note duplicate_count=0' "$TMP/dump"

check_exit sample_ankle_boot 0 gambar-sample --ckpt "$CK" --class "ankle boot" --out "$TMP/boot.png" --seed 5
check sample_png_written test -f "$TMP/boot.png"
gambar-sample --inspect "$TMP/boot.png" >"$TMP/insp" 2>&1
check inspect_class_name grep -q '^gambar:class_name: Ankle boot' "$TMP/insp"
check inspect_license grep -q '^gambar:license_summary: CC-BY-4.0: 40, unknown: 20' "$TMP/insp"
check_exit sample_unknown_class_fails 2 gambar-sample --ckpt "$CK" --class "spaceship" --out "$TMP/x.png"

# the same batches against another dataset: refused with both digests named
train 4 "$TMP/bad" --db "$TMP/other"
check mismatch_exit3 test $rc -eq 3
check mismatch_names_both sh -c "grep 'refusing' '$TMP/train.log' | grep -Eq 'dataset [0-9a-f]{64}.*dataset [0-9a-f]{64}'"
check mismatch_no_ckpt sh -c "! ls '$TMP/bad'/*.gck 2>/dev/null | grep -q ."

# resume: --db checked against the checkpoint; notes carried from it
train 10 "$TMP/c" --resume --db "$TMP/other"
check resume_mismatch_exit3 test $rc -eq 3
check resume_mismatch_names_both sh -c "grep -Eq 'dataset [0-9a-f]{64}.*dataset [0-9a-f]{64}' '$TMP/train.log'"
train 10 "$TMP/c" --resume
check resume_exit0 test $rc -eq 0
ckpt_tool dump "$TMP/c/ckpt-0000000010.gck" >"$TMP/dump2" 2>&1
check resume_keeps_license grep -qxF 'note license_summary=CC-BY-4.0: 40, unknown: 20' "$TMP/dump2"
check resume_keeps_class_names grep -q 'Ankle boot' "$TMP/dump2"

# without --db: a one-line notice
train 2 "$TMP/n"
check no_db_exit0 test $rc -eq 0
check no_db_notice grep -q 'no --db' "$TMP/train.log"
check_exit missing_db_fails 4 gambar-train --in "ipc://$TMP/z.sock" --model dcgan28 --ckpt-dir "$TMP/z" --db "$TMP/nowhere"
check missing_db_named grep -q "$TMP/nowhere" "$TMP/err"

echo "t_train_db: $(( $(date +%s) - t0 )) s" >&2
rm -rf "$TMP"
