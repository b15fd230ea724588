#!/bin/sh
# gambar-dash fed by the real trainer: gambar-train (tiny DCGAN-28 on
# synthetic batches) publishes Metric and CheckpointReady; the dashboard
# shows the trainer's figures at the logged steps, the checkpoint, the
# same values on /metrics and in the JSON lines, and the loss curve's
# history in step order.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dash_lib.sh"
MEP="ipc://$TMP/m.sock"
check "dash starts" start_dash --metrics "$MEP" --jsonl "$TMP/m.jsonl"
gambar-train --model dcgan28 --width 8 --threads 1 --seed 4 --in "ipc://$TMP/s.sock" --ckpt-dir "$TMP/ck" \
    --ckpt-every 10 --log-every 5 --steps 20 --keep 1 --metrics "@$MEP" --run dashrun 2>"$TMP/train.log" &
TP=$!
sleep 1 # the dashboard joins the trainer's PUB before data flows
batch_source --synthetic-count 256 --batch 16 --seed 9 --out "ipc://$TMP/s.sock" --batches 20 2>"$TMP/src.log" &
SP=$!
wait $TP; rc=$?
kill $SP 2>/dev/null; wait $SP 2>/dev/null
check "trainer ran" test $rc -eq 0
check "state: trainer's figures at steps 5..20" wait_state \
    "sorted(p[0] for p in [x for x in s['series'] if x['name']=='loss_d' and x['stage']=='train' and x['run']=='dashrun'][0]['history'])==[5,10,15,20]"
check "state: every trainer figure" $PY -c "
import json; s=json.load(open('$TMP/state.json'))
names={x['name'] for x in s['series'] if x['stage']=='train'}
want={'loss_d','loss_g','d_real','d_fake','grad_norm_d','grad_norm_g','images_per_second','dropped_messages_total'}
assert want<=names, want-names"
check "state: checkpoint at step 20" $PY -c "
import json; s=json.load(open('$TMP/state.json')); assert s['checkpoint']['step']==20 and s['checkpoint']['run']=='dashrun'"
curl -s "$URL/metrics" >"$TMP/metrics.txt"
check "metrics: loss from the trainer" grep -q '^gambar_loss_discriminator{stage="train",run="dashrun"} [0-9]' "$TMP/metrics.txt"
check "metrics: step 20" grep -q '^gambar_step{stage="train",run="dashrun"} 20$' "$TMP/metrics.txt"
check "log and dashboard agree on loss_d at step 20" $PY -c "
import json, re
s = json.load(open('$TMP/state.json'))
v = [x for x in s['series'] if x['name'] == 'loss_d'][0]['value']
log = open('$TMP/train.log').read()
m = re.findall(r'step 20 epoch \d+: loss_d ([0-9.]+)', log)
assert m and abs(float(m[-1]) - v) < 1e-4, (m, v)"
check "jsonl: 4 loss_d lines" test "$(grep -c '"name":"loss_d"' "$TMP/m.jsonl")" -eq 4
stop_dash
