#!/bin/sh
# t_dash_prompt.sh - the dashboard's Sample box takes a prompt (issue 10
# item 5), end to end with a tiny text-conditional model trained here on
# captioned Fashion-MNIST (as t_sample_text.sh):
#   - /sample?prompt=...: the PNG comes from gambar-sample --serve through
#     SampleRequest.prompt and records the prompt in its provenance ('+'
#     and %20 are spaces, UTF-8 kept), and reproduces bit for bit;
#   - unknown words come back named in the X-Gambar-Warning header;
#   - --grid-prompt: the per-checkpoint grid is asked with a prompt (a
#     text model refuses a grid without one);
#   - bad input is a 400 with a clear message, checked before the sampler
#     is asked: over 1024 bytes, not UTF-8, a NUL byte, prompt with class;
#   - in headless Chromium (tests/dash_prompt.py): type a prompt, click
#     "Sample 16", the page shows the returned 4x4 grid whose PNG text
#     chunks record the prompt; the warning and a 400's message are shown
#     beside the button.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dash_lib.sh"
need_browser
key() { gambar-sample --inspect "$1" | sed -n "s/^$2: //p"; }
png() { python3 "$GAMBAR_ROOT/tests/png_tool.py" "$@"; }

tiny_text_model || exit 0

SEP="ipc://$TMP/sample.ipc"
gambar-sample --serve "@$SEP" --ckpt "$CK" 2>"$TMP/serve.err" &
SP=$!
EP="ipc://$TMP/metrics.ipc"
A="a dark wide shirt"
check "dash starts" start_dash --metrics "$EP" --sample "$SEP" --sample-timeout-ms 20000 --grid-prompt "$A"

# ---- --grid-prompt: the per-checkpoint grid of a text model ------------------------------------
metric_pub --out "@$EP" --forever --interval-ms 50 --step-inc 10 --eval-every 10 >/dev/null 2>&1 &
PP=$!
check "grid-prompt: a checkpoint grid from the text model" wait_state "s['grid_version']>=1"
kill $PP 2>/dev/null; wait $PP 2>/dev/null
curl -s -o "$TMP/latest.png" --max-time 10 "$URL/samples/latest.png"
check "grid-prompt: the grid records the prompt" test "$(key "$TMP/latest.png" gambar:prompt)" = "$A"
check_exit "grid-prompt: not UTF-8 is a usage error" 2 gambar-dash --metrics "$EP" --http 127.0.0.1:0 --grid-prompt "$(printf 'a \377')"
check "grid-prompt: says so" grep -q "grid-prompt: not valid UTF-8" "$TMP/err"

# ---- the endpoint ------------------------------------------------------------------------
code=$(curl -s -o "$TMP/h.png" -w '%{http_code}' --max-time 30 "$URL/sample?prompt=a+dark%20wide+shirt&seed=7")
check "http: prompt gives a PNG" sh -c "test '$code' = 200 && head -c 8 '$TMP/h.png' | od -An -c | grep -q 'P   N   G'"
check "http: prompt recorded ('+' and %20 are spaces)" test "$(key "$TMP/h.png" gambar:prompt)" = "$A"
gambar-sample --ckpt "$CK" --out "$TMP/cli.png" --prompt "$A" --seed 7 2>/dev/null
check "http: the image = the command line's" test "$(png rawhash "$TMP/h.png")" = "$(png rawhash "$TMP/cli.png")"
curl -s -D "$TMP/hdr" -o "$TMP/u.png" --max-time 30 "$URL/sample?prompt=a%20dark%20zorblax%20caf%C3%A9%20shirt&seed=1"
check "http: UTF-8 prompt recorded" test "$(key "$TMP/u.png" gambar:prompt)" = "a dark zorblax café shirt"
check "http: unknown words in X-Gambar-Warning" sh -c "grep -i '^x-gambar-warning: ' '$TMP/hdr' | grep -q 'never%20saw.*%22zorblax%22%2C%20%22caf%C3%A9%22'"
curl -s -D "$TMP/hdr2" -o /dev/null --max-time 30 "$URL/sample?prompt=a+dark+shirt"
check "http: known words give no warning" sh -c "grep -q '^HTTP/1.1 200' '$TMP/hdr2' && ! grep -qi '^x-gambar-warning' '$TMP/hdr2'"
long=$(head -c 1025 /dev/zero | tr '\0' a)
code=$(curl -s -o "$TMP/e1" -w '%{http_code}' --max-time 10 "$URL/sample?prompt=$long")
check "400: prompt over 1024 bytes" test "$code" = 400
check "400: says the limit" grep -q "^prompt: 1025 bytes long, at most 1024 bytes (UTF-8)$" "$TMP/e1"
code=$(curl -s -o "$TMP/e1b" -w '%{http_code}' --max-time 30 "$URL/sample?prompt=$(head -c 1024 /dev/zero | tr '\0' a)")
check "http: a 1024-byte prompt is fine" test "$code" = 200
code=$(curl -s -o "$TMP/e2" -w '%{http_code}' --max-time 10 "$URL/sample?prompt=a%20%FF%20shirt")
check "400: prompt not UTF-8" test "$code" = 400
check "400: says where" grep -q "^prompt: not valid UTF-8 (byte 0xFF at byte 2)$" "$TMP/e2"
code=$(curl -s -o "$TMP/e2b" -w '%{http_code}' --max-time 10 "$URL/sample?prompt=caf%C3")
check "400: prompt cut inside a UTF-8 sequence" sh -c "test '$code' = 400 && grep -q 'not valid UTF-8 (byte 0xC3 at byte 3)' '$TMP/e2b'"
code=$(curl -s -o "$TMP/e3" -w '%{http_code}' --max-time 10 "$URL/sample?prompt=a%00shirt")
check "400: NUL byte in the prompt" sh -c "test '$code' = 400 && grep -q 'NUL byte' '$TMP/e3'"
code=$(curl -s -o "$TMP/e4" -w '%{http_code}' --max-time 10 "$URL/sample?prompt=shirt&class=Bag")
check "400: prompt with class" sh -c "test '$code' = 400 && grep -q 'class or prompt, not both' '$TMP/e4'"
code=$(curl -s -o "$TMP/e5" -w '%{http_code}' --max-time 30 "$URL/sample?seed=1")
check "400: a text model without a prompt: the sampler's reason" sh -c "test '$code' = 400 && grep -q 'text-conditional' '$TMP/e5'"
check "the sampler was not asked about the bad prompts" sh -c "! grep -q 'not valid UTF-8\\|1025 bytes\\|not both' '$TMP/serve.err'"

# ---- in the browser -------------------------------------------------------------------------
B="a light narrow trousers"
$PY "$GAMBAR_ROOT/tests/dash_prompt.py" "$URL/" "$TMP" "$TMP/page.png" "$B" "a dark zorblax shirt" "$long" \
    >"$TMP/br.out" 2>"$TMP/br.err"
rc=$?
cat "$TMP/br.out" "$TMP/br.err" >&2
check "browser: every prompt answered" test $rc -eq 0
check "browser: the grid is shown (4x4 of 28 px + borders = 122 px)" grep -q "^prompt 1 shown=1 width=122 height=122 warn= err=$" "$TMP/br.out"
check "browser: the shown PNG records the typed prompt" test "$(key "$TMP/page-1.png" gambar:prompt)" = "$B"
check "browser: the shown PNG is a 4x4 grid" test "$(key "$TMP/page-1.png" gambar:grid)" = "4x4"
check_exit "browser: the shown PNG reproduces" 0 gambar-sample --reproduce "$TMP/page-1.png" --ckpt "$CK"
check "browser: reproduce says identical" grep -qx identical "$TMP/out"
check "browser: unknown word named beside the button" grep -q '^prompt 2 shown=1 .*warn=prompt "a dark zorblax shirt": 1 word the model never saw.*"zorblax" err=$' "$TMP/br.out"
check "browser: a 400 is shown with its message" grep -q "^prompt 3 shown=0 .*err=prompt: 1025 bytes long, at most 1024 bytes (UTF-8)$" "$TMP/br.out"
stop_dash
check "dash exits 0" test "$DASH_RC" = 0
kill $SP; wait $SP 2>/dev/null
rm -rf "$TMP"
