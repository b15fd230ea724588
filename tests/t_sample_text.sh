#!/bin/sh
# t_sample_text.sh - gambar-sample on a text-conditional (GAN-CLS) model,
# issue 10 item 5: a tiny text model trained from synthetic captions
# (as t_train_text.sh), then
#   - --prompt "free text": the prompt in the PNG provenance, --reproduce
#     says identical, the same prompt and seed give the same pixels (also
#     with the portable kernels), another prompt other pixels;
#   - words the encoder never saw are named in one warning line;
#   - --interpolate-prompts A B STEPS: a row of STEPS images whose ends are
#     the --prompt A and --prompt B images of the same seed, provenance
#     with both prompts, --reproduce of the row and of one image;
#   - usage errors (exit 2): no prompt, --class, --from-image, bad STEPS,
#     --interpolate-prompts on a class model, a prompt that is not UTF-8;
#   - --serve: SampleRequest.prompt carries the prompt (and class_name, as
#     older clients send it, still does); the reply equals the CLI's;
#     unknown words are named in SampleReply.warning and the log; a prompt
#     with class_name, over 1024 bytes or not UTF-8 is refused; on a class
#     model the prompt picks the class as the CLI's --prompt does.
. "$(dirname "$0")/lib.sh"
G=gambar-sample
png() { python3 "$GAMBAR_ROOT/tests/png_tool.py" "$@"; }
key() { $G --inspect "$1" | sed -n "s/^$2: //p"; }

tiny_text_model || exit 0

A="a dark wide shirt"
B="a light narrow trousers"
# ---- --prompt ------------------------------------------------------------------
check_exit "prompt: generate" 0 $G --ckpt "$CK" --out "$TMP/a.png" --prompt "$A" --seed 7
check "prompt: no warning for known words" test ! -s "$TMP/err"
check "prompt: recorded in provenance" test "$(key "$TMP/a.png" gambar:prompt)" = "$A"
check "prompt: class rule text" test "$(key "$TMP/a.png" gambar:class_rule)" = "text"
check "prompt: model is a text model" sh -c "$G --inspect '$TMP/a.png' | grep -q '^gambar:model: .*text_dim=32'"
check_exit "prompt: reproduce" 0 $G --reproduce "$TMP/a.png" --ckpt "$CK"
check "prompt: reproduce says identical" grep -qx identical "$TMP/out"
png retext "$TMP/a.png" gambar:prompt "$B" "$TMP/edited.png"
check_exit "prompt: reproduce of an edited prompt differs" 3 $G --reproduce "$TMP/edited.png" --ckpt "$CK"
check "prompt: the difference is in pixels" grep -q "^differs: " "$TMP/out"
$G --ckpt "$CK" --out "$TMP/a2.png" --prompt "$A" --seed 7 >/dev/null 2>&1
GAMBAR_SAMPLE_PORTABLE=1 $G --ckpt "$CK" --out "$TMP/a3.png" --prompt "$A" --seed 7 >/dev/null 2>&1
check "prompt: same prompt and seed, same pixels" test "$(png rawhash "$TMP/a.png")" = "$(png rawhash "$TMP/a2.png")"
check "prompt: portable kernels, same pixels" test "$(png rawhash "$TMP/a.png")" = "$(png rawhash "$TMP/a3.png")"
$G --ckpt "$CK" --out "$TMP/b.png" --prompt "$B" --seed 7 >/dev/null 2>&1
check "prompt: another prompt, same seed: other pixels" test "$(png rawhash "$TMP/a.png")" != "$(png rawhash "$TMP/b.png")"
$G --ckpt "$CK" --out "$TMP/a8.png" --prompt "$A" --seed 8 >/dev/null 2>&1
check "prompt: same prompt, another seed: other pixels" test "$(png rawhash "$TMP/a.png")" != "$(png rawhash "$TMP/a8.png")"
check_exit "prompt: a folder of 3" 0 $G --ckpt "$CK" --out "$TMP/dir" --prompt "$A" --seed 7 --n 3
check "prompt: folder image 0 = the single image" test "$(png rawhash "$TMP/dir/img-7.png")" = "$(png rawhash "$TMP/a.png")"
check_exit "prompt: folder image reproduces" 0 $G --reproduce "$TMP/dir/img-9.png" --ckpt "$CK"
check_exit "prompt: check-model" 0 $G --ckpt "$CK" --check-model 4 --prompt "$A"

# ---- unknown words -----------------------------------------------------------------
check_exit "unknown word: still generates" 0 $G --ckpt "$CK" --out "$TMP/u.png" --prompt "a dark zorblax shirt qwop" --seed 7
check "unknown word: one warning line" test "$(grep -c 'never saw' "$TMP/err")" = 1
check "unknown word: names the words" sh -c "grep 'never saw' '$TMP/err' | grep -q '\"zorblax\", \"qwop\"'"
check "unknown word: known ones not named" sh -c "! grep 'never saw' '$TMP/err' | grep -q '\"dark\"'"
check_exit "empty prompt: allowed" 0 $G --ckpt "$CK" --out "$TMP/e.png" --prompt "" --seed 7
check "empty prompt: warned" grep -q "has no words" "$TMP/err"

# ---- --interpolate-prompts ---------------------------------------------------------------
check_exit "interpolate-prompts: folder" 0 $G --ckpt "$CK" --out "$TMP/ip" --interpolate-prompts "$A" "$B" 5 --seed 7
check "interpolate-prompts: 5 images and the grid" sh -c "ls '$TMP/ip' | grep -c '^interp-prompts-7-[0-4].png$' | grep -qx 5 && test -f '$TMP/ip/grid-interp-prompts-7.png'"
check "interpolate-prompts: first = --prompt A" test "$(png rawhash "$TMP/ip/interp-prompts-7-0.png")" = "$(png rawhash "$TMP/a.png")"
check "interpolate-prompts: last = --prompt B" test "$(png rawhash "$TMP/ip/interp-prompts-7-4.png")" = "$(png rawhash "$TMP/b.png")"
m=$(png rawhash "$TMP/ip/interp-prompts-7-2.png")
check "interpolate-prompts: middle is neither end" sh -c "test '$m' != '$(png rawhash "$TMP/a.png")' && test '$m' != '$(png rawhash "$TMP/b.png")'"
check "interpolate-prompts: a row grid (5 x 28 + 6 x 2 border)" test "$(png size "$TMP/ip/grid-interp-prompts-7.png")" = "152x32"
check_exit "interpolate-prompts: one file" 0 $G --ckpt "$CK" --out "$TMP/row.png" --interpolate-prompts "$A" "$B" 5 --seed 7
check "interpolate-prompts: the file is the row" test "$(png rawhash "$TMP/row.png")" = "$(png rawhash "$TMP/ip/grid-interp-prompts-7.png")"
check "interpolate-prompts: both prompts and steps recorded" sh -c "test \"\$($G --inspect '$TMP/row.png' | sed -n 's/^gambar:prompt: //p')\" = '$A' && test \"\$($G --inspect '$TMP/row.png' | sed -n 's/^gambar:prompt_b: //p')\" = '$B' && $G --inspect '$TMP/row.png' | grep -qx 'gambar:interpolation: text-linear 5' && $G --inspect '$TMP/row.png' | grep -qx 'gambar:grid: 1x5'"
check_exit "interpolate-prompts: reproduce the row" 0 $G --reproduce "$TMP/row.png" --ckpt "$CK"
check "interpolate-prompts: row identical" grep -qx identical "$TMP/out"
check_exit "interpolate-prompts: reproduce a middle image" 0 $G --reproduce "$TMP/ip/interp-prompts-7-3.png" --ckpt "$CK"
check "interpolate-prompts: middle identical" grep -qx identical "$TMP/out"

# ---- usage errors ----------------------------------------------------------------------------
check_exit "no prompt: usage error" 2 $G --ckpt "$CK" --out "$TMP/x.png"
check "no prompt: says why" grep -q "text-conditional: give --prompt" "$TMP/err"
check_exit "--class on a text model" 2 $G --ckpt "$CK" --out "$TMP/x.png" --class 3
check_exit "--from-image on a text model" 2 $G --ckpt "$CK" --out "$TMP/x.png" --prompt "$A" --from-image "$TMP/a.png"
check_exit "interpolate-prompts: STEPS 1" 2 $G --ckpt "$CK" --out "$TMP/x.png" --interpolate-prompts "$A" "$B" 1
check_exit "interpolate-prompts: STEPS missing" 2 $G --ckpt "$CK" --out "$TMP/x.png" --interpolate-prompts "$A" "$B"
check_exit "interpolate-prompts with --prompt" 2 $G --ckpt "$CK" --out "$TMP/x.png" --interpolate-prompts "$A" "$B" 3 --prompt "$A"
check_exit "prompt not UTF-8" 2 $G --ckpt "$CK" --out "$TMP/x.png" --prompt "$(printf 'a \377 shirt')"
check "prompt not UTF-8: says so" grep -qi "utf-8" "$TMP/err"
CKC=$(mkckpt "$TMP/ckc" --classes "a,b,c" --steps 3 --seed 4)
check_exit "interpolate-prompts on a class model" 2 $G --ckpt "$CKC" --out "$TMP/x.png" --interpolate-prompts "$A" "$B" 3
check "interpolate-prompts on a class model: says why" grep -q "not text-conditional" "$TMP/err"
check_exit "text image, class checkpoint: refused" 3 $G --reproduce "$TMP/a.png" --ckpt "$CKC"

# ---- serve ------------------------------------------------------------------------------------------
EP="ipc://$TMP/sample.ipc"
$G --serve "@$EP" --ckpt "$CK" 2>"$TMP/serve.err" &
SV=$!
sleep 0.5
check_exit "serve: prompt request" 0 sample_client "$EP" --n 2 --seed 7 --class "$A" --out "$TMP/rep"
check "serve: reply = the CLI image" test "$(png rawhash "$TMP/rep/reply-0.png")" = "$(png rawhash "$TMP/a.png")"
check "serve: prompt recorded" test "$(key "$TMP/rep/reply-1.png" gambar:prompt)" = "$A"
check_exit "serve: reply reproduces" 0 $G --reproduce "$TMP/rep/reply-1.png" --ckpt "$CK"
check_exit "serve: no prompt refused" 3 sample_client "$EP" --n 1
check "serve: refusal says why" grep -q "text-conditional: put the text in prompt" "$TMP/out"
check_exit "serve: prompt field" 0 sample_client "$EP" --n 2 --seed 7 --prompt "$A" --out "$TMP/rp"
check "serve: prompt field: reply = the CLI image" test "$(png rawhash "$TMP/rp/reply-0.png")" = "$(png rawhash "$TMP/a.png")"
check "serve: prompt field: recorded" test "$(key "$TMP/rp/reply-1.png" gambar:prompt)" = "$A"
check "serve: known words: no warning" sh -c "! grep -q '^warning' '$TMP/out'"
check_exit "serve: prompt field: grid" 0 sample_client "$EP" --n 4 --seed 7 --prompt "$A" --grid --out "$TMP/rg"
check "serve: grid: prompt recorded" test "$(key "$TMP/rg/reply-0.png" gambar:prompt)" = "$A"
check_exit "serve: grid reproduces" 0 $G --reproduce "$TMP/rg/reply-0.png" --ckpt "$CK"
check_exit "serve: unknown words: still served" 0 sample_client "$EP" --seed 7 --prompt "a dark zorblax shirt qwop"
check "serve: unknown words named in the reply" sh -c "grep '^warning: ' '$TMP/out' | grep 'never saw' | grep -q '\"zorblax\", \"qwop\"'"
check "serve: unknown words named in the log" sh -c "grep 'never saw' '$TMP/serve.err' | grep -q '\"zorblax\", \"qwop\"'"
check_exit "serve: prompt and class_name refused" 3 sample_client "$EP" --prompt "$A" --class "$A"
check "serve: prompt and class_name: says why" grep -q "prompt or class_name, not both" "$TMP/out"
long=$(head -c 1025 /dev/zero | tr '\0' a)
check_exit "serve: 1025-byte prompt refused" 3 sample_client "$EP" --prompt "$long"
check "serve: long prompt: says why" grep -q "prompt is 1025 bytes long: at most 1024" "$TMP/out"
check_exit "serve: 1024-byte prompt served" 0 sample_client "$EP" --prompt "$(head -c 1024 /dev/zero | tr '\0' a)"
check_exit "serve: prompt not UTF-8 refused" 3 sample_client "$EP" --prompt "$(printf 'a \377 shirt')"
check "serve: not UTF-8: says where" grep -q "prompt is not valid UTF-8 (bad byte 0xff at offset 2)" "$TMP/out"
check_exit "serve: still serving after the refusals" 0 sample_client "$EP" --seed 7 --prompt "$A"
kill $SV; wait $SV 2>/dev/null
# a class model: the prompt picks a class as --prompt does on the command line
$G --serve "@$EP" --ckpt "$CKC" 2>"$TMP/serve.err" &
SV=$!
sleep 0.5
$G --ckpt "$CKC" --out "$TMP/cb.png" --prompt "small b please" --seed 3 >/dev/null 2>&1
check_exit "serve, class model: prompt" 0 sample_client "$EP" --seed 3 --prompt "small b please" --out "$TMP/rc"
check "serve, class model: reply = the CLI image" test "$(png rawhash "$TMP/rc/reply-0.png")" = "$(png rawhash "$TMP/cb.png")"
check "serve, class model: prompt recorded" test "$(key "$TMP/rc/reply-0.png" gambar:prompt)" = "small b please"
check "serve, class model: class recorded as the CLI's" test "$(key "$TMP/rc/reply-0.png" gambar:class)" = "$(key "$TMP/cb.png" gambar:class)"
check_exit "serve, class model: class_name still a class" 0 sample_client "$EP" --seed 3 --class b --out "$TMP/rcn"
check "serve, class model: class_name b = the prompt's class" test "$(png rawhash "$TMP/rcn/reply-0.png")" = "$(png rawhash "$TMP/cb.png")"
check_exit "serve, class model: old client's prompt in class_name" 0 sample_client "$EP" --seed 3 --class "small b please" --out "$TMP/rco"
check "serve, class model: old client's prompt: same image" test "$(png rawhash "$TMP/rco/reply-0.png")" = "$(png rawhash "$TMP/cb.png")"
check_exit "serve, class model: unknown class_name refused" 3 sample_client "$EP" --class zzz
check_exit "serve, class model: prompt with no class refused" 3 sample_client "$EP" --prompt "nothing here"
check "serve, class model: refusal lists the names" sh -c "grep -q '^error: ' '$TMP/out' && grep -q 'c' '$TMP/out'"
kill $SV; wait $SV 2>/dev/null
rm -rf "$TMP"
