#!/bin/sh
# gambar-dash --tensorboard: the event files decode with Google's protobuf
# runtime (python3-protobuf) using classes protoc generated from
# proto/tensorboard.proto; every record's two masked CRC-32C are checked
# by an independent implementation (tests/dash_tb_check.py); the scalars
# equal what metric_pub sent (as float32) and the image summary is the
# newest grid PNG of --samples-dir, byte for byte.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dash_lib.sh"
if ! command -v protoc >/dev/null || ! $PY -c "import google.protobuf" 2>/dev/null; then
    notok "tensorboard: protoc and python3-protobuf are needed (scripts/install-deps.sh)"
    exit 1
fi
mkdir -p "$TMP/py" "$TMP/samples"
check "protoc compiles proto/tensorboard.proto for Python" \
    protoc -I"$GAMBAR_ROOT/proto" --python_out="$TMP/py" "$GAMBAR_ROOT/proto/tensorboard.proto"
EP="ipc://$TMP/metrics.ipc"
CK=$(mkckpt "$TMP/ck" --classes "a,b,c" --steps 3 --seed 2)
check "a grid PNG to show" gambar-sample --ckpt "$CK" --n 4 --grid 2x2 --seed 1 --out "$TMP/samples/grid-0001.png"
check "dash starts" start_dash --metrics "$EP" --tensorboard "$TMP/tb/sub" --samples-dir "$TMP/samples"
check "grid taken from --samples-dir" wait_state "s['grid_version']>=1"
metric_pub --out "@$EP" --steps 12 --interval-ms 5 --eval-every 4 >/dev/null 2>&1
check "all metrics arrived" wait_state "any(x['name']=='loss_d' and x['step']==12 for x in s['series'])"
# a newer grid replaces the shown one and is written as a second image
sleep 1.1
cp "$TMP/samples/grid-0001.png" "$TMP/samples/grid-0002.png"
touch "$TMP/samples/grid-0002.png"
check "newer grid taken" wait_state "s['grid_version']>=2"
curl -s -o "$TMP/latest.png" "$URL/samples/latest.png"
check "page serves the newest grid" cmp -s "$TMP/latest.png" "$TMP/samples/grid-0002.png"
stop_dash
check "dash: SIGTERM exits 0" test "$DASH_RC" -eq 0
$PY "$GAMBAR_ROOT/tests/dash_tb_check.py" "$TMP/tb/sub" "$TMP/py" >"$TMP/tb.txt" 2>"$TMP/tb.err"
check "event files: framing, CRCs, file_version, decoding" test $? -eq 0
cat "$TMP/tb.err" >&2
check "scalars: 12 loss_d points" test "$(grep -c '^scalar train/loss_d ' "$TMP/tb.txt")" -eq 12
check "scalars: values are the published ones (float32)" $PY -c "
import math, struct
f32 = lambda v: struct.unpack('<f', struct.pack('<f', v))[0]
rows = [l.split() for l in open('$TMP/tb.txt') if l.startswith('scalar ')]
got = {(r[1], int(r[2])): float(r[3]) for r in rows}
for s in range(1, 13):
    x = float(s)
    want = f32(0.7 + 0.3 * math.exp(-x / 200.0) * math.cos(x / 7.0))
    assert abs(got[('train/loss_d', s)] - want) <= 1e-6 * abs(want), (s, got[('train/loss_d', s)], want)
assert ('eval/fid', 4) in got and ('eval/fid', 12) in got
assert ('eval/class_fraction/class=Bag', 8) in got, sorted(got)[:5]"
sha=$($PY -c "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())" "$TMP/samples/grid-0001.png")
check "image summary: the grid PNG, 2 images, sizes from its header" sh -c \
    "test \$(grep -c '^image samples/grid .* $sha\$' '$TMP/tb.txt') -eq 2"
grep '^image' "$TMP/tb.txt" >&2
