#!/bin/sh
# t_dash_grids.sh - what an operator meets during training: the dashboard
# shows a grid of the same seeds for every checkpoint as it appears (a
# strip, newest first, with step numbers), and its "Sample 16" button
# answers with a PNG, from a sampler that follows the trainer's checkpoint
# folder (gambar-sample --serve --follow DIR). The sampler starts before
# any checkpoint exists (requests are refused with the reason), then a
# checkpoint is written and announced (CheckpointReady from metric_pub),
# then a second, different one: headless Chromium reads the page before
# and after the second (tests/dash_grids.py) and presses the button. A
# screenshot is kept in $BUILD/test-logs/dash-grids.png.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dash_lib.sh"
need_browser
EP="ipc://$TMP/metrics.ipc"
SEP="ipc://$TMP/sample.ipc"
CK="$TMP/ck"
A=$(mkckpt "$TMP/a" --classes "T-shirt/top,Trouser,Bag" --steps 2 --seed 3 --step-number 10)
B=$(mkckpt "$TMP/b" --classes "T-shirt/top,Trouser,Bag" --steps 6 --seed 4 --step-number 20)
check_exit "sample: --follow needs --serve" 2 gambar-sample --follow "$CK"
gambar-sample --serve "@$SEP" --follow "$CK" --threads 1 2>"$TMP/serve.err" &
SP=$!
check "dash starts" start_dash --metrics "$EP" --sample "$SEP" --sample-timeout-ms 20000 --run grids
sleep 0.5
code=$(curl -s -o "$TMP/no.txt" -w '%{http_code}' --max-time 30 "$URL/sample?n=4")
check "sample: no checkpoint yet, refused ($code)" test "$code" -ge 400
grep -q "no checkpoint" "$TMP/no.txt" && ok "sample: says no checkpoint in the folder yet" ||
    notok "sample: says no checkpoint in the folder yet" "$(cat "$TMP/no.txt")"
# announce: copy the file in place as the trainer would (rename), then publish
announce() { # FILE STEP
    cp "$1" "$CK/.tmp" && mv "$CK/.tmp" "$CK/$(basename "$1")" &&
        metric_pub --out "@$EP" --steps 1 --start "$2" --eval-every 1 --wait-ms 1500 --run grids >/dev/null 2>&1
}
mkdir -p "$CK"
announce "$A" 10
check "first checkpoint grid held" wait_state "len(s['grids'])>=1 and s['grids'][0]['step']==10"
cat >"$TMP/next.sh" <<EOS
. "$GAMBAR_ROOT/tests/lib.sh" >/dev/null
cp "$B" "$CK/.tmp" && mv "$CK/.tmp" "$CK/$(basename "$B")"
metric_pub --out "@$EP" --steps 1 --start 20 --eval-every 1 --wait-ms 1500 --run grids >/dev/null 2>&1
EOS
$PY "$GAMBAR_ROOT/tests/dash_grids.py" "$URL/" "$LOGS/dash-grids.png" "$TMP" "sh $TMP/next.sh" \
    >"$TMP/br.out" 2>"$TMP/br.err"
rc=$?
cat "$TMP/br.out" "$TMP/br.err" >&2
check "browser: page read twice and button pressed" test $rc -eq 0
check "browser: one grid, step 10, before the second checkpoint" grep -q "^reading 1 figs=1 captions=step 10 " "$TMP/br.out"
check "browser: two grids after it, newest first" grep -q "^reading 2 figs=2 captions=step 20,step 10 " "$TMP/br.out"
n1=$(sed -n 's/^reading 1 .* newest=\([^ ]*\) .*/\1/p' "$TMP/br.out")
n2=$(sed -n 's/^reading 2 .* newest=\([^ ]*\) .*/\1/p' "$TMP/br.out")
l2=$(sed -n 's/^reading 2 .* latest=\([^ ]*\)$/\1/p' "$TMP/br.out")
check "browser: the grid image changed between checkpoints ($n1 -> $n2)" test -n "$n1" -a -n "$n2" -a "$n1" != "$n2"
check "browser: 'Latest samples' shows the newest grid" test "$l2" = "$n2"
check "browser: Sample 16 shows an image, no error" grep -q "^button src=blob: width=[1-9][0-9]* err=$" "$TMP/br.out"
check "browser: /sample answers a PNG" grep -q "^fetch status=200 type=image/png sig=89504e470d0a1a0a" "$TMP/br.out"
# the strip's images over HTTP: two versions, each a PNG; the older is step 10's
curl -s "$URL/api/state" >"$TMP/state.json"
v1=$($PY -c "import json; print(json.load(open('$TMP/state.json'))['grids'][-1]['version'])")
check "http: a strip grid by version is a PNG" sh -c \
    "curl -s --max-time 5 '$URL/samples/grid.png?v=$v1' | head -c 8 | od -An -tx1 | tr -d ' \n' | grep -q 89504e470d0a1a0a"
check "http: an unknown version is 404" test "$(http_code "$URL/samples/grid.png?v=999")" = 404
check "http: a bad version is 400" test "$(http_code "$URL/samples/grid.png?v=x")" = 400
check "sampler: reloaded the newer checkpoint" grep -q "now serving .*ckpt-0000000020.gck (step 20)" "$TMP/serve.err"
check "browser: screenshot saved" sh -c "head -c 8 '$LOGS/dash-grids.png' | od -An -c | grep -q 'P   N   G'"
stop_dash
kill $SP; wait $SP; src=$?
check "sampler: SIGTERM exit 0" test $src -eq 0
rm -rf "$TMP"
