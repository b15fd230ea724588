#!/bin/sh
# t_eval_features.sh - the one slow evaluator test (about 1-1.5 minutes on 2
# cores, one compute thread: 4 epochs, ~55 s CPU): the feature network fitted by gambar-eval --fit-features on the
# full Fashion-MNIST training set (60000 images) reaches at least 90 %
# accuracy on the t10k test split. Prints the accuracy and the fit time.
. "$(dirname "$0")/lib.sh"
gambar-ingest -q --source "idx:$FASHION/train" --db "$TMP/tr" 2>"$TMP/ing.err"
gambar-ingest -q --source "idx:$FASHION/t10k" --db "$TMP/te" 2>>"$TMP/ing.err"
check datasets test -f "$TMP/tr/data.mdb" -a -f "$TMP/te/data.mdb"
gambar-eval --fit-features --db "$TMP/tr" --test-db "$TMP/te" --out "$TMP/fn.gck" --threads 1 >"$TMP/fit.out" 2>"$TMP/fit.err"
check fit_exit0 test $? -eq 0
cat "$TMP/fit.out" "$TMP/fit.err" >&2
acc=$(sed -n 's/^test_accuracy //p' "$TMP/fit.out")
check "t10k_accuracy_at_least_0.90 ($acc)" python3 -c "import sys; sys.exit(0 if float('$acc') >= 0.90 else 1)"
check file_written test -s "$TMP/fn.gck"
