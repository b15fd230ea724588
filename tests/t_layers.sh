#!/bin/sh
# t_layers.sh - the layer rule of common/ (scripts/check-layers.py) holds
# for the tree, and the checker does catch each kind of violation.
. "$(dirname "$0")/lib.sh"
CHK="$GAMBAR_ROOT/scripts/check-layers.py"

if python3 "$CHK" "$GAMBAR_ROOT" >"$TMP/out" 2>&1; then ok "layers: tree follows the rule"
else notok "layers: tree follows the rule" "$(cat "$TMP/out")"; fi

# a copy of the tree's sources with one violation each
mk() {
    rm -rf "$TMP/t"; mkdir -p "$TMP/t"
    (cd "$GAMBAR_ROOT" && tar cf - common stages tests/lib) | (cd "$TMP/t" && tar xf -)
}
viol() { # NAME FILE LINE EXPECTED-WORDS
    mk; printf '%s\n' "$3" >>"$TMP/t/$2"
    if python3 "$CHK" "$TMP/t" >"$TMP/out" 2>&1; then notok "layers: catches $1" "checker passed"
    elif grep -q "$4" "$TMP/out"; then ok "layers: catches $1"
    else notok "layers: catches $1" "$(cat "$TMP/out")"; fi
}
viol "math including storage" common/nn/model.c '#include "store.h"' 'nn layer includes store.h'
viol "math including messaging" common/nn/nn_conv.c '#include "wire.h"' 'nn layer includes wire.h'
viol "images including messaging" common/img/img.c '#include "wire.h"' 'img layer includes wire.h'
viol "common including a stage" common/io/ckpt.c '#include "train.h"' 'common includes train.h'
viol "common including a test helper" common/core/log.c '#include "npy.h"' 'common includes npy.h'
viol "protobuf in the math" common/nn/aug.c '#include "stream.pb-c.h"' 'includes generated'
viol "one stage including another" stages/eval/main.c '#include "sample.h"' 'another stage'
mk; echo 'int x;' >"$TMP/t/common/flat.c"
if python3 "$CHK" "$TMP/t" >"$TMP/out" 2>&1; then notok "layers: catches a flat file"; else ok "layers: catches a flat file"; fi
rm -rf "$TMP"
