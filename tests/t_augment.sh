#!/bin/sh
# gambar-augment on real data (3000 Fashion-MNIST images): batch shapes,
# dtypes and value ranges, EndOfStream, determinism for a fixed seed,
# different seeds differ, --start-batch equals the tail of a full run,
# two shards at once cover every example exactly once per epoch (and each
# sharded batch equals the unsharded batch with the same seq), tcp, and
# clear errors for bad arguments. Flow control is in t_augment_flow.sh.
. "$(dirname "$0")/lib.sh"

DB=$TMP/db
if [ -x "$GAMBAR_BIN/gambar-ingest" ]; then
    gambar-ingest -q --source "idx:$FASHION/train" --db "$DB" --limit 3000 >"$TMP/ingest.out" 2>"$TMP/ingest.err"
else
    aug_mkdb "$FASHION/train" "$DB" 3000 2>"$TMP/ingest.err"
fi
check "dataset of 3000 images" [ -s "$DB/data.mdb" ]
BPE=46 # floor(3000 / 64): drop_last

# run_pair NAME SINK_ARGS -- AUGMENT_ARGS: augment binds ipc, sink connects.
# Output: $TMP/NAME.jsonl (sink), exit codes in $TMP/NAME.rc ("aug sink").
n_ep=0
run_pair() {
    name=$1; shift
    n_ep=$((n_ep + 1))
    ep="ipc://$TMP/ep$n_ep"
    sargs=""
    while [ "$1" != "--" ]; do sargs="$sargs $1"; shift; done
    shift
    # shellcheck disable=SC2086
    batch_sink --in "$ep" $sargs >"$TMP/$name.jsonl" 2>"$TMP/$name.sink.err" &
    spid=$!
    gambar-augment -q --db "$DB" --out "$ep" "$@" 2>"$TMP/$name.aug.err"
    arc=$?
    wait $spid
    src=$?
    echo "$arc $src" >"$TMP/$name.rc"
}
summary() { grep '"summary"' "$TMP/$1.jsonl"; }
digests() { grep '"seq"' "$TMP/$1.jsonl" | jq -c '[.seq, .digest]'; }

# --- shapes, values, EndOfStream (f32) --------------------------------------
run_pair f32 --digests -- --batch 64 --epochs 2 --seed 7 --dtype f32 --ops flip,translate
check "f32 run: both exit 0" [ "$(cat "$TMP/f32.rc")" = "0 0" ]
s=$(summary f32)
check "f32: all batches arrive" [ "$(echo "$s" | jq .batches)" -eq $((2 * BPE)) ]
check "f32: EndOfStream with batches_sent" [ "$(echo "$s" | jq '.eos == 1 and .eos_batches_sent == 92 and .interrupted == 0')" = true ]
check "f32: no verification errors" [ "$(echo "$s" | jq .errors)" -eq 0 ]
check "f32: shape 64x1x28x28, bpe, classes, seed" \
    [ "$(echo "$s" | jq '.n == 64 and .c == 1 and .h == 28 and .w == 28 and .dtype == "f32" and .batches_per_epoch == 46 and .num_classes == 10 and .seed == 7')" = true ]
check "f32: values span [-1, 1]" [ "$(echo "$s" | jq '.min == -1 and .max == 1')" = true ]
check "f32: labels in 0..9 and more than one class" [ "$(echo "$s" | jq '.label_min == 0 and .label_max == 9')" = true ]
check "f32: seq 0..91 in order" [ "$(grep '"seq"' "$TMP/f32.jsonl" | jq -s '[.[].seq] == [range(0; 92)]')" = true ]
check "f32: epochs 0 and 1" [ "$(grep '"seq"' "$TMP/f32.jsonl" | jq -s '[.[].epoch] == ([range(0;46)|0] + [range(0;46)|1])')" = true ]
check "f32: EndOfStream reason done, producer named" \
    grep -q '"producer":"gambar-augment\[0/1\]","batches_sent":92,"reason":"done"' "$TMP/f32.jsonl"

run_pair u8 -- --batch 50 --epochs 1 --dtype u8 --ops none
s=$(summary u8)
check "u8: 60 batches of 50, 0..255 values, no errors" \
    [ "$(echo "$s" | jq '.batches == 60 and .n == 50 and .dtype == "u8" and .min == 0 and .max == 255 and .errors == 0 and .eos == 1')" = true ]
check "u8: exits 0 0" [ "$(cat "$TMP/u8.rc")" = "0 0" ]

run_pair allops -- --batch 64 --epochs 1 --ops flip,translate:3,crop:4,jitter:0.2,0.2,cutout:6 --dtype f32
s=$(summary allops)
check "all ops: 46 batches in range, no errors" [ "$(echo "$s" | jq '.batches == 46 and .errors == 0 and .min >= -1 and .max <= 1')" = true ]

# --- determinism ------------------------------------------------------------
run_pair f32b --digests -- --batch 64 --epochs 2 --seed 7 --dtype f32 --ops flip,translate
digests f32 >"$TMP/d1"
digests f32b >"$TMP/d2"
check "same seed: identical digests" cmp -s "$TMP/d1" "$TMP/d2"
check "digests are distinct per batch" [ "$(sort -u "$TMP/d1" | jq -r '.[1]' | sort -u | wc -l)" -eq 92 ]
run_pair s8 --digests -- --batch 64 --epochs 2 --seed 8 --dtype f32 --ops flip,translate
digests s8 >"$TMP/d3"
common=$(cat "$TMP/d1" "$TMP/d3" | jq -r '.[1]' | sort | uniq -d | wc -l)
check "different seed: no batch in common" [ "$common" -eq 0 ]
run_pair thr --digests -- --batch 64 --epochs 2 --seed 7 --dtype f32 --ops flip,translate --threads 3
digests thr >"$TMP/d4"
check "3 builder threads: same stream" cmp -s "$TMP/d1" "$TMP/d4"

# The permutation depends on (dataset, seed, epoch) only: other ops give
# the same examples in the same batches, augmented differently.
run_pair idxa --indices -- --batch 64 --epochs 1 --seed 7 --ops flip,translate
run_pair idxb --indices -- --batch 64 --epochs 1 --seed 7 --ops none
grep '"seq"' "$TMP/idxa.jsonl" | jq -c '[.seq, .indices]' >"$TMP/ia"
grep '"seq"' "$TMP/idxb.jsonl" | jq -c '[.seq, .indices]' >"$TMP/ib"
check "ops do not change which examples form a batch" sh -c "[ -s '$TMP/ia' ] && cmp -s '$TMP/ia' '$TMP/ib'"
diffd=$(cat "$TMP/idxa.jsonl" "$TMP/idxb.jsonl" | grep '"seq"' | jq -r .digest | sort | uniq -d | wc -l)
check "ops change the pixels" [ "$diffd" -eq 0 ]

# --- resume: --start-batch K is the tail of the full run ------------------
run_pair tail --digests -- --batch 64 --epochs 2 --seed 7 --dtype f32 --ops flip,translate --start-batch 30
digests tail >"$TMP/d5"
jq -c 'select(.[0] >= 30)' "$TMP/d1" >"$TMP/d1tail"
check "--start-batch 30: 62 batches equal the full run's tail" \
    sh -c "[ \$(wc -l <'$TMP/d5') -eq 62 ] && cmp -s '$TMP/d1tail' '$TMP/d5'"
check "--start-batch: EndOfStream counts 62" grep -q '"batches_sent":62,"reason":"done"' "$TMP/tail.jsonl"

run_pair tailsh --digests -- --batch 64 --epochs 2 --seed 7 --dtype f32 --ops flip,translate --start-batch 31 --shard 1/2
digests tailsh >"$TMP/d6"
jq -c 'select(.[0] >= 31 and (.[0] % 46) % 2 == 1)' "$TMP/d1" >"$TMP/d1tailsh"
check "--start-batch 31 --shard 1/2: the shard's part of the tail" \
    sh -c "[ \$(wc -l <'$TMP/d6') -eq 31 ] && cmp -s '$TMP/d1tailsh' '$TMP/d6'"
run_pair past -- --batch 64 --epochs 2 --start-batch 92
check "--start-batch at the end: no batch, EndOfStream 0, exit 0" \
    [ "$(cat "$TMP/past.rc") $(summary past | jq '.batches == 0 and .eos == 1 and .eos_batches_sent == 0')" = "0 0 true" ]

# --- two shards at once into one sink ---------------------------------------
ep="ipc://$TMP/shards"
batch_sink --in "@$ep" --producers 2 --indices >"$TMP/sh.jsonl" 2>"$TMP/sh.sink.err" &
spid=$!
gambar-augment -q --db "$DB" --out ">$ep" --batch 64 --epochs 2 --seed 7 --shard 0/2 2>"$TMP/sh0.err" &
a0=$!
gambar-augment -q --db "$DB" --out ">$ep" --batch 64 --epochs 2 --seed 7 --shard 1/2 2>"$TMP/sh1.err" &
a1=$!
wait $a0; r0=$?
wait $a1; r1=$?
wait $spid; rs=$?
check "shards: all exit 0" [ "$r0 $r1 $rs" = "0 0 0" ]
s=$(grep '"summary"' "$TMP/sh.jsonl")
check "shards: 2 EndOfStream, 92 batches, no errors" [ "$(echo "$s" | jq '.eos == 2 and .batches == 92 and .eos_batches_sent == 92 and .errors == 0')" = true ]
check "shards: each EndOfStream counts 23+23" [ "$(grep -c '"batches_sent":46,"reason":"done"' "$TMP/sh.jsonl")" -eq 2 ]
for e in 0 1; do
    cov=$(grep '"seq"' "$TMP/sh.jsonl" | jq -s "[.[] | select(.epoch == $e) | .indices[]] | [length, (unique | length), min, max] | @text")
    check "shards: epoch $e covers 2944 distinct examples once each" [ "$cov" = '"[2944,2944,0,2999]"' ]
done
grep '"seq"' "$TMP/sh.jsonl" | jq -c '[.seq, .digest]' | sort -t, -k1,1n >"$TMP/dsh"
sort -t, -k1,1n "$TMP/d1" >"$TMP/d1s"
check "shards: each batch equals the unsharded batch with the same seq" cmp -s "$TMP/dsh" "$TMP/d1s"

# --- tcp ----------------------------------------------------------------------
port=$(free_port)
batch_sink --in "tcp://127.0.0.1:$port" >"$TMP/tcp.jsonl" 2>"$TMP/tcp.err" &
spid=$!
gambar-augment -q --db "$DB" --out "@tcp://127.0.0.1:$port" --batch 64 --epochs 1 2>>"$TMP/tcp.err"
ra=$?
wait $spid; rs=$?
check "tcp: 46 batches and EndOfStream" [ "$ra $rs $(grep summary "$TMP/tcp.jsonl" | jq '.batches == 46 and .eos == 1')" = "0 0 true" ]

# --- bad arguments ----------------------------------------------------------
check_exit "--help exits 0" 0 gambar-augment --help
check "--help shows usage and ops" grep -q "^Usage: gambar-augment" "$TMP/out"
check_exit "--version exits 0" 0 gambar-augment --version
check "--version line" grep -q "^gambar-augment (gambar) [0-9]" "$TMP/out"
check_exit "unknown op exits 2" 2 gambar-augment --db "$DB" --out "ipc://$TMP/x" --batch 8 --ops flip,blur
check "unknown op is named" grep -q "unknown op 'blur'" "$TMP/err"
check_exit "bad shard spec exits 2" 2 gambar-augment --db "$DB" --out "ipc://$TMP/x" --batch 8 --shard 2/2
check "bad shard is named" grep -q -- "--shard '2/2'" "$TMP/err"
check_exit "shard junk exits 2" 2 gambar-augment --db "$DB" --out "ipc://$TMP/x" --batch 8 --shard 1/x
check_exit "missing db exits 4" 4 gambar-augment --db "$TMP/nope" --out "ipc://$TMP/x" --batch 8
check "missing db is named" grep -q "$TMP/nope" "$TMP/err"
check_exit "no --db exits 2" 2 gambar-augment --out "ipc://$TMP/x" --batch 8
check_exit "no --batch exits 2" 2 gambar-augment --db "$DB" --out "ipc://$TMP/x"
check_exit "batch larger than dataset exits 2" 2 gambar-augment --db "$DB" --out "ipc://$TMP/x" --batch 5000
check_exit "bad dtype exits 2" 2 gambar-augment --db "$DB" --out "ipc://$TMP/x" --batch 8 --dtype f16
check_exit "--epochs with --forever exits 2" 2 gambar-augment --db "$DB" --out "ipc://$TMP/x" --batch 8 --epochs 2 --forever
check_exit "crop too large for 28x28 exits 2" 2 gambar-augment --db "$DB" --out "ipc://$TMP/x" --batch 8 --ops crop:28
check_exit "bad endpoint exits 6" 6 gambar-augment --db "$DB" --out "bogus://x" --batch 8
rm -rf "$TMP"
