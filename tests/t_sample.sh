#!/bin/sh
# gambar-sample end to end on small real checkpoints (mkckpt: width 8,
# trained a few steps on synthetic images): provenance round trip,
# bit-exact --reproduce, digest mismatch, classes by name/prompt/index,
# determinism, grids, interpolation, --from-image, serve mode, bad input.
. "$(dirname "$0")/lib.sh"
G=gambar-sample
FASHION_NAMES="T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"
CK=$(mkckpt "$TMP/ck" --classes "$FASHION_NAMES" --steps 30 --seed 3 --license "CC-BY-4.0: 1000" --source "synthetic stripes")
CKU=$(mkckpt "$TMP/cku" --steps 5 --seed 4)
CK2=$(mkckpt "$TMP/ck2" --classes "$FASHION_NAMES" --steps 30 --seed 5)
[ -f "$CK" ] && [ -f "$CKU" ] && [ -f "$CK2" ] && ok "test checkpoints" || { notok "test checkpoints"; exit 1; }

# PNG helpers: IHDR size, hash of the pixel data (IDAT), splice pixels
png() { python3 "$GAMBAR_ROOT/tests/png_tool.py" "$@"; }
key() { $G --inspect "$1" | sed -n "s/^$2: //p"; }

# ---- generation and provenance ----------------------------------------------
$G --ckpt "$CK" --out "$TMP/a" --n 4 --seed 10 >"$TMP/o" 2>"$TMP/e"
check "generate 4 images" test -f "$TMP/a/img-10.png" -a -f "$TMP/a/img-13.png" -a ! -e "$TMP/a/img-14.png"
check "no temporary files left" sh -c "! ls -A '$TMP/a' | grep -q tmp"
check "no staging folder left" sh -c "! ls -A '$TMP' | grep -q 'a.tmp-'"
mkdir "$TMP/exists"
check_exit "generate into an existing folder" 0 $G --ckpt "$CK" --out "$TMP/exists/" --n 3 --seed 10
check "existing folder: files and no temporary names" sh -c "test -f '$TMP/exists/img-12.png' && ! ls -A '$TMP/exists' | grep -q tmp"
$G --inspect "$TMP/a/img-12.png" >"$TMP/insp"
missing=""
for k in DigitalSourceType Software gambar:provenance_version gambar:created gambar:checkpoint_digest \
         gambar:checkpoint_step gambar:model_family gambar:z_method gambar:generator gambar:kind gambar:mode \
         gambar:seed gambar:class_index gambar:class_name gambar:class_rule gambar:prompt gambar:truncation \
         gambar:count gambar:index gambar:dataset_digest gambar:license_summary gambar:dataset_source; do
    grep -q "^$k: " "$TMP/insp" || missing="$missing $k"
done
[ -z "$missing" ] && ok "inspect shows every key" || notok "inspect shows every key" "missing:$missing"
check "AI-generated source type" grep -q "^DigitalSourceType: http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia$" "$TMP/insp"
check "XMP packet with IPTC DigitalSourceType" grep -q 'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"' "$TMP/a/img-12.png"
check "XMP keyword" grep -q 'XML:com.adobe.xmp' "$TMP/a/img-12.png"
check "software" test "$(key "$TMP/a/img-12.png" Software)" = "gambar-sample 0.1.0"
check "seed and index recorded" test "$(key "$TMP/a/img-12.png" gambar:seed)/$(key "$TMP/a/img-12.png" gambar:index)" = "12/2"
digest=$(sha256sum "$CK" | cut -d' ' -f1)
check "checkpoint digest recorded" test "$(key "$TMP/a/img-12.png" gambar:checkpoint_digest)" = "$digest"
check "checkpoint step recorded" test "$(key "$TMP/a/img-12.png" gambar:checkpoint_step)" = "30"
check "license from checkpoint notes" test "$(key "$TMP/a/img-12.png" gambar:license_summary)" = "CC-BY-4.0: 1000"
check "dataset source from notes" test "$(key "$TMP/a/img-12.png" gambar:dataset_source)" = "synthetic stripes"
check "created is ISO 8601 UTC" sh -c "$G --inspect '$TMP/a/img-12.png' | grep -Eq '^gambar:created: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'"
check "unconditional model: license unknown" sh -c "$G --ckpt '$CKU' --out '$TMP/u.png' >/dev/null && $G --inspect '$TMP/u.png' | grep -q '^gambar:license_summary: unknown'"
$G --inspect "$TMP/a/img-12.png" --json >"$TMP/j"
check "inspect --json is JSON with the keys" python3 -c "
import json,sys; d=json.load(open('$TMP/j'))
assert d['DigitalSourceType'].endswith('trainedAlgorithmicMedia') and d['gambar:seed']=='12' and d['gambar:class_name']=='Pullover', d"
check "default class rule: seed mod classes" test "$(key "$TMP/a/img-12.png" gambar:class_index)" = "2"

# ---- reproduce ---------------------------------------------------------------
check_exit "reproduce single image" 0 $G --reproduce "$TMP/a/img-12.png" --ckpt "$CK"
check "reproduce says identical" grep -qx identical "$TMP/out"
png splice "$TMP/a/img-12.png" "$TMP/a/img-13.png" "$TMP/tampered.png"
check_exit "reproduce detects changed pixels" 3 $G --reproduce "$TMP/tampered.png" --ckpt "$CK"
check "changed pixels are reported" grep -q "^differs: " "$TMP/out"
check_exit "reproduce with another checkpoint" 3 $G --reproduce "$TMP/a/img-12.png" --ckpt "$CK2"
check "digest mismatch is named" grep -q "checkpoint digest differs" "$TMP/err"
png plain "$TMP/plain.png"
check_exit "reproduce a PNG without provenance" 3 $G --reproduce "$TMP/plain.png" --ckpt "$CK"
check "no provenance is named" grep -q "plain.png: no gambar provenance" "$TMP/err"
check_exit "inspect a PNG without provenance" 3 $G --inspect "$TMP/plain.png"
for bad in "gambar:count=-5" "gambar:count=99999999999" "gambar:mode=bogus" \
           "gambar:generator=other" "gambar:z_method=" "gambar:class_index=77" "gambar:truncation=0.001" \
           "gambar:base_seed=x" "gambar:kind=movie" "gambar:index=4"; do
    png retext "$TMP/a/img-12.png" "${bad%%=*}" "${bad#*=}" "$TMP/bad.png"
    check_exit "reproduce rejects $bad" 3 $G --reproduce "$TMP/bad.png" --ckpt "$CK"
done
check_exit "reproduce --out rewrites the image" 0 $G --reproduce "$TMP/a/img-11.png" --ckpt "$CK" --out "$TMP/re11.png"
check "rewritten image has the same pixels" test "$(png pixhash "$TMP/re11.png")" = "$(png pixhash "$TMP/a/img-11.png")"

# ---- determinism -------------------------------------------------------------
$G --ckpt "$CK" --out "$TMP/b" --n 4 --seed 10 --threads 1 >/dev/null
same=1; for s in 10 11 12 13; do [ "$(png pixhash "$TMP/a/img-$s.png")" = "$(png pixhash "$TMP/b/img-$s.png")" ] || same=0; done
[ $same = 1 ] && ok "same seeds, same pixels (2 threads vs 1)" || notok "same seeds, same pixels (2 threads vs 1)"
$G --ckpt "$CK" --out "$TMP/c" --n 1 --seed 12 >/dev/null
check "an image does not depend on its batch" test "$(png pixhash "$TMP/a/img-12.png")" = "$(png pixhash "$TMP/c/img-12.png")"
check "different seeds differ" test "$(png pixhash "$TMP/a/img-10.png")" != "$(png pixhash "$TMP/a/img-11.png")"
check_exit "generator matches model_generate" 0 $G --ckpt "$CK" --check-model 64
check "portable kernels give the same bits" grep -qx "portable kernels: bit-identical" "$TMP/out"
check "one image at a time gives the same bits" grep -qx "one image at a time vs batches: 0 of 64 images differ" "$TMP/out"
GAMBAR_SAMPLE_PORTABLE=1 $G --ckpt "$CK" --out "$TMP/port" --n 4 --seed 10 >/dev/null
same=1; for s in 10 11 12 13; do [ "$(png pixhash "$TMP/a/img-$s.png")" = "$(png pixhash "$TMP/port/img-$s.png")" ] || same=0; done
[ $same = 1 ] && ok "portable kernels give the same pixels" || notok "portable kernels give the same pixels"
CK32=$(mkckpt "$TMP/ck32" --family dcgan32 --channels 3 --width 6 --classes "a,b,c" --steps 4)
CK64=$(mkckpt "$TMP/ck64" --family dcgan64 --width 4 --steps 4)
check_exit "dcgan32 RGB conditional matches model_generate" 0 $G --ckpt "$CK32" --check-model 16
check_exit "dcgan64 matches model_generate" 0 $G --ckpt "$CK64" --check-model 8
check_exit "dcgan32 portable kernels" 0 sh -c "GAMBAR_SAMPLE_PORTABLE=1 $G --ckpt '$CK32' --out '$TMP/p32.png' --seed 3 && $G --reproduce '$TMP/p32.png' --ckpt '$CK32'"
check "dcgan32 RGB image" test "$(png size "$TMP/p32.png")" = "32x32"

# ---- classes -----------------------------------------------------------------
cls() { $G --ckpt "$CK" --out "$TMP/cls.png" "$@" >/dev/null 2>"$TMP/cerr" && key "$TMP/cls.png" gambar:class_index; }
check "class by name (any case)" test "$(cls --class 'ankle BOOT')" = 9
check "class by index" test "$(cls --class 7)" = 7
check "class by part of a name" test "$(cls --class 't-shirt')" = 0
check "prompt with a class name" test "$(cls --prompt 'a photo of an ankle boot')" = 9
check "prompt: longest match wins (t-shirt over shirt)" test "$(cls --prompt 'a red t-shirt')" = 0
check "prompt: tshirt" test "$(cls --prompt 'tshirt please')" = 0
check "prompt: shirt" test "$(cls --prompt 'a plain shirt')" = 6
check "prompt recorded" sh -c "$G --inspect '$TMP/cls.png' | grep -qx 'gambar:prompt: a plain shirt'"
check_exit "unknown class exits 2" 2 $G --ckpt "$CK" --out "$TMP/x.png" --class hat
check "unknown class lists the names" grep -q '"Ankle boot"' "$TMP/err"
check_exit "class index out of range" 2 $G --ckpt "$CK" --out "$TMP/x.png" --class 10
check_exit "prompt without a class" 2 $G --ckpt "$CK" --out "$TMP/x.png" --prompt "a hat"
check_exit "class on an unconditional model" 2 $G --ckpt "$CKU" --out "$TMP/x.png" --class 1
check "unconditional is named" grep -q unconditional "$TMP/err"
check "class images differ from other classes" test "$(cls --class 1 --seed 5; png pixhash "$TMP/cls.png")" != "$(cls --class 2 --seed 5; png pixhash "$TMP/cls.png")"

# ---- grid, interpolation, truncation -------------------------------------------
check_exit "grid file" 0 $G --ckpt "$CK" --out "$TMP/g.png" --grid 3x4 --seed 100
check "grid is 3x4 cells with 2-pixel borders" test "$(png size "$TMP/g.png")" = "122x92"
check "grid records its shape" test "$(key "$TMP/g.png" gambar:grid)/$(key "$TMP/g.png" gambar:kind)/$(key "$TMP/g.png" gambar:count)" = "3x4/grid/12"
check_exit "reproduce a grid" 0 $G --reproduce "$TMP/g.png" --ckpt "$CK"
png retext "$TMP/g.png" gambar:grid 999x999 "$TMP/badgrid.png"
check_exit "reproduce rejects a huge grid" 3 $G --reproduce "$TMP/badgrid.png" --ckpt "$CK"
png retext "$TMP/g.png" gambar:grid 2x2 "$TMP/badgrid.png"
check_exit "reproduce rejects a grid smaller than its count" 3 $G --reproduce "$TMP/badgrid.png" --ckpt "$CK"
$G --ckpt "$CK" --out "$TMP/gd" --grid 2x3 --n 5 --seed 7 >/dev/null
check "grid + folder: 5 images and a grid" test "$(ls "$TMP/gd" | grep -c '^img-')" = 5 -a -f "$TMP/gd/grid-7.png"
check "partial grid size" test "$(png size "$TMP/gd/grid-7.png")" = "92x62"
check "grid cell index recorded" test "$(key "$TMP/gd/img-9.png" gambar:index)" = 2
$G --ckpt "$CK" --out "$TMP/i" --interpolate 1:2:6 --class 4 >/dev/null
check "interpolation writes STEPS images" test "$(ls "$TMP/i" | grep -c '^interp-1-2-')" = 6
$G --ckpt "$CK" --out "$TMP/ie" --n 2 --seed 1 --class 4 >/dev/null
check "interpolation starts at seed A" test "$(png pixhash "$TMP/i/interp-1-2-0.png")" = "$(png pixhash "$TMP/ie/img-1.png")"
check "interpolation ends at seed B" test "$(png pixhash "$TMP/i/interp-1-2-5.png")" = "$(png pixhash "$TMP/ie/img-2.png")"
check_exit "reproduce an interpolated image" 0 $G --reproduce "$TMP/i/interp-1-2-3.png" --ckpt "$CK"
$G --ckpt "$CK" --out "$TMP/t.png" --seed 10 --truncation 0.5 --class 2 >/dev/null
check "truncation recorded" test "$(key "$TMP/t.png" gambar:truncation)" = "0.5"
check "truncation changes the image" test "$(png pixhash "$TMP/t.png")" != "$(png pixhash "$TMP/a/img-10.png")"
check_exit "reproduce a truncated image" 0 $G --reproduce "$TMP/t.png" --ckpt "$CK"

# ---- from-image ----------------------------------------------------------------
$G --ckpt "$CK" --out "$TMP/src.png" --seed 42 --class 3 >/dev/null
FIT="--threads 1 --fit-iters 150 --fit-starts 2 --variations 3"
$G --ckpt "$CK" --from-image "$TMP/src.png" --out "$TMP/fi" $FIT >"$TMP/fi.out" 2>"$TMP/fi.err"
check "from-image writes reconstruction and variations" test -f "$TMP/fi/recon.png" -a -f "$TMP/fi/var-3.png" -a ! -e "$TMP/fi/var-4.png"
mse_own=$(sed -n 's/.*mse=\([0-9.e+-]*\).*/\1/p' "$TMP/fi.out")
$G --ckpt "$CK" --from-image "$TMP/plain.png" --out "$TMP/fi2.png" $FIT >"$TMP/fi2.out" 2>&1
mse_other=$(sed -n 's/.*mse=\([0-9.e+-]*\).*/\1/p' "$TMP/fi2.out")
check "from-image: own image reconstructed (mse $mse_own)" python3 -c "assert float('$mse_own') < 1e-3"
check "from-image: other image much worse (mse $mse_other)" python3 -c "assert float('$mse_other') > 20 * float('$mse_own') and float('$mse_other') > 1e-2"
png plain56rgb "$TMP/plain56.png"
$G --ckpt "$CK" --from-image "$TMP/plain56.png" --out "$TMP/fi3.png" $FIT >"$TMP/fi3.out" 2>&1
mse_rgb=$(sed -n 's/.*mse=\([0-9.e+-]*\).*/\1/p' "$TMP/fi3.out")
check "from-image: 56x56 RGB input resized and converted (mse $mse_rgb)" python3 -c "assert abs(float('$mse_rgb') - float('$mse_other')) < 1e-3 * float('$mse_other')"
check "from-image finds the class" grep -q "class=3 (Dress)" "$TMP/fi.out"
check "from-image reports psnr" grep -q "psnr=" "$TMP/fi.out"
check "from-image records its mode and latent" test "$(key "$TMP/fi/var-2.png" gambar:mode)" = variation -a -n "$(key "$TMP/fi/recon.png" gambar:z)"
check_exit "reproduce a reconstruction" 0 $G --reproduce "$TMP/fi/recon.png" --ckpt "$CK"
check_exit "reproduce a variation" 0 $G --reproduce "$TMP/fi/var-2.png" --ckpt "$CK"
png retext "$TMP/fi/recon.png" gambar:z zz "$TMP/badz.png"
check_exit "reproduce rejects a bad latent" 3 $G --reproduce "$TMP/badz.png" --ckpt "$CK"
png retext "$TMP/fi/recon.png" gambar:z 7f800000 "$TMP/badz.png"
check_exit "reproduce rejects a short latent" 3 $G --reproduce "$TMP/badz.png" --ckpt "$CK"
check_exit "from-image: missing input" 4 $G --ckpt "$CK" --from-image "$TMP/none.png" --out "$TMP/x.png"
echo "not a png" >"$TMP/notpng.png"
check_exit "from-image: not a PNG" 3 $G --ckpt "$CK" --from-image "$TMP/notpng.png" --out "$TMP/x.png"

# ---- serve mode ------------------------------------------------------------------
EP="ipc://$TMP/sample.ipc"
$G --serve "@$EP" --ckpt "$CK" 2>"$TMP/serve.err" &
SP=$!
sleep 0.5
check_exit "serve: good request" 0 sample_client "$EP" --n 3 --seed 5 --class sneaker --out "$TMP/rep"
check "serve: 3 PNGs with provenance" sh -c "grep -q '^ok 3 png' '$TMP/out' && $G --inspect '$TMP/rep/reply-2.png' | grep -qx 'gambar:seed: 7'"
check_exit "serve: reply reproduces" 0 $G --reproduce "$TMP/rep/reply-1.png" --ckpt "$CK"
for kind in bytes type payload frames; do
    check_exit "serve: garbage ($kind) gets an error reply" 3 sample_client "$EP" --garbage $kind --timeout 5000
done
check_exit "serve: unknown class" 3 sample_client "$EP" --class hat
check "serve: unknown class lists names" grep -q "Ankle boot" "$TMP/out"
check_exit "serve: n out of range" 3 sample_client "$EP" --n 257
check_exit "serve: class index out of range" 3 sample_client "$EP" --class-index 12
check_exit "serve: bad truncation" 3 sample_client "$EP" --truncation -1
check_exit "serve: still works after errors" 0 sample_client "$EP" --n 4 --grid --out "$TMP/rep2"
check "serve: grid reply" test "$(png size "$TMP/rep2/reply-0.png")" = "62x62"
# a flood of refused requests: a bounded number of log lines (the first
# few, then at powers of two, each naming how many were suppressed)
check_exit "serve: 3000 refused requests" 3 sample_client "$EP" --n 257 --repeat 2000
check_exit "serve: 1000 malformed requests" 3 sample_client "$EP" --garbage payload --repeat 1000
kill -TERM $SP
i=0; while kill -0 $SP 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
wait $SP; rc=$?
[ $rc -eq 0 ] && ok "serve: SIGTERM exits cleanly" || notok "serve: SIGTERM exits cleanly" "rc=$rc"
nref=$(grep -c "request refused" "$TMP/serve.err")
check "serve: refused requests logged in a bounded number of lines ($nref)" test "$nref" -le 20
check "serve: later lines say how many were suppressed" grep -Eq "request refused: .* \(([0-9]+) similar suppressed\)$" \
    "$TMP/serve.err"
check "serve: the summary counts every refusal" sh -c \
    "grep -E 'stopping: [0-9]+ requests served, 30[0-9][0-9] refused .*[1-9][0-9]* log lines about them suppressed' '$TMP/serve.err' || { grep stopping '$TMP/serve.err' >&2; exit 1; }"

# ---- bad input -------------------------------------------------------------------
check_exit "missing checkpoint" 4 $G --ckpt "$TMP/none.gck" --out "$TMP/x.png"
check "missing checkpoint is named" grep -q "none.gck" "$TMP/err"
head -c 5000 "$CK" >"$TMP/trunc.gck"
check_exit "truncated checkpoint" 3 $G --ckpt "$TMP/trunc.gck" --out "$TMP/x.png"
check "truncated checkpoint reason" grep -q "trunc.gck: corrupt or truncated" "$TMP/err"
{ printf 'NOTMAGIC'; tail -c +9 "$CK"; } >"$TMP/magic.gck"
check_exit "wrong magic" 3 $G --ckpt "$TMP/magic.gck" --out "$TMP/x.png"
check "wrong magic reason" grep -q "magic.gck: not a gambar checkpoint" "$TMP/err"
check "nothing written after a failed load" test ! -e "$TMP/x.png"
check_exit "bad grid spec" 2 $G --ckpt "$CK" --out "$TMP/x.png" --grid 3by4
check_exit "zero grid" 2 $G --ckpt "$CK" --out "$TMP/x.png" --grid 0x4
check_exit "grid too small for n" 2 $G --ckpt "$CK" --out "$TMP/xd" --grid 2x2 --n 5
check_exit "many images into one file" 2 $G --ckpt "$CK" --out "$TMP/x.png" --n 3
check_exit "bad interpolation spec" 2 $G --ckpt "$CK" --out "$TMP/xd" --interpolate 1:2
check_exit "tiny truncation" 2 $G --ckpt "$CK" --out "$TMP/x.png" --truncation 0.001
check_exit "reproduce needs a checkpoint" 2 $G --reproduce "$TMP/a/img-12.png"
check_exit "inspect a missing file" 4 $G --inspect "$TMP/none.png"
check_exit "no --out" 2 $G --ckpt "$CK"
mkdir -p "$TMP/busy/img-11.png"
check_exit "unwritable target" 4 $G --ckpt "$CK" --out "$TMP/busy" --n 3 --seed 10
check "failed write leaves no temporary files" sh -c "! ls -A '$TMP/busy' | grep -q tmp"
$G --ckpt "$CK" --out "$TMP/intr" --n 400000 -q 2>"$TMP/intr.err" &
IP=$!
sleep 1
kill -INT $IP
wait $IP; rc=$?
[ $rc -eq 130 ] && ok "generation: SIGINT exits 130" || notok "generation: SIGINT exits 130" "rc=$rc"
check "generation: interrupted run leaves nothing" sh -c "! ls -A '$TMP' | grep -Eq '^intr(\.tmp-.*)?$'"
check_exit "--help" 0 $G --help
check "--help shows usage" grep -q "^Usage: gambar-sample" "$TMP/out"
check_exit "--version" 0 $G --version
check "--version line" grep -q "^gambar-sample (gambar) " "$TMP/out"
rm -rf "$TMP"
