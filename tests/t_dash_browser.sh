#!/bin/sh
# gambar-dash as a person sees it: headless Chromium opens the page while
# metric_pub publishes, and the test reads the DOM twice (over the
# DevTools protocol, tests/dash_browser.py): the stream is live, the step
# number goes up between readings, every chart has drawn, the table lists
# the trainer's and evaluator's figures, and the sample grid (asked of a
# real gambar-sample --serve after a checkpoint) is shown. A screenshot is
# kept in $BUILD/test-logs/dash.png.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dash_lib.sh"
need_browser
EP="ipc://$TMP/metrics.ipc"
CK=$(mkckpt "$TMP/ck" --classes "T-shirt/top,Trouser,Bag" --steps 4 --seed 3)
SEP="ipc://$TMP/sample.ipc"
gambar-sample --serve "@$SEP" --ckpt "$CK" 2>"$TMP/serve.err" &
SP=$!
check "dash starts" start_dash --metrics "$EP" --sample "$SEP" --run browser-test
metric_pub --out "@$EP" --forever --interval-ms 50 --step-inc 10 --eval-every 10 >/dev/null 2>&1 &
PP=$!
check "grid fetched" wait_state "s['grid_version']>=1"
$PY "$GAMBAR_ROOT/tests/dash_browser.py" "$URL/" "$LOGS/dash.png" 2 "$TMP" >"$TMP/br.out" 2>"$TMP/br.err"
rc=$?
cat "$TMP/br.out" "$TMP/br.err" >&2
check "browser: page read twice" test $rc -eq 0
r1=$(sed -n 's/^reading 1 step=\([0-9]*\) .*/\1/p' "$TMP/br.out")
r2=$(sed -n 's/^reading 2 step=\([0-9]*\) .*/\1/p' "$TMP/br.out")
check "browser: a step number is shown ($r1)" test "${r1:-0}" -gt 0
check "browser: the step number goes up without reload ($r1 -> $r2)" test "${r2:-0}" -gt "${r1:-0}"
check "browser: stream is live" grep -q "^reading 2 .*conn=live" "$TMP/br.out"
check "browser: Chart.js embedded and all 7 charts drawn" grep -q "^reading 2 .*charts=7 .*nochart=False" "$TMP/br.out"
check "browser: table lists train and eval figures" sh -c \
    "grep '^reading 2' '$TMP/br.out' | grep -q 'names=class_fraction,class_kl,d_fake,d_real,.*fid,.*images_per_second,kid,loss_d,loss_g,precision,recall'"
check "browser: sample grid image shown" sh -c "grep '^reading 2' '$TMP/br.out' | grep -qv 'grid=0 '"
check "browser: screenshot saved" sh -c "head -c 8 '$LOGS/dash.png' | od -An -c | grep -q 'P   N   G'"
kill $PP 2>/dev/null
wait $PP 2>/dev/null
stop_dash
kill $SP; wait $SP 2>/dev/null
