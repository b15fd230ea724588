#!/bin/sh
# gambar-dash end to end: a test publisher (metric_pub) feeds it over
# ZeroMQ; /metrics (checked by promtool), /api/state, /events (SSE),
# JSON lines, the HTTP rules (GET/HEAD only, bad paths, oversized
# headers), /sample through a real gambar-sample --serve, garbage on the
# metrics socket, and the command line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dash_lib.sh"
EP="ipc://$TMP/metrics.ipc"

# ---- command line ---------------------------------------------------------------
check_exit "help" 0 gambar-dash --help
check "help names /metrics" grep -q -- "--metrics" "$TMP/out"
check_exit "version" 0 gambar-dash --version
check_exit "missing --metrics" 2 gambar-dash --http 127.0.0.1:0
check_exit "missing --http" 2 gambar-dash --metrics "$EP"
check_exit "bad --http" 2 gambar-dash --metrics "$EP" --http "nohost:12x"
check "bad --http named" grep -q "expected \[ADDR:\]PORT" "$TMP/err"
check_exit "bad --history" 2 gambar-dash --metrics "$EP" --http 0 --history 1
check_exit "bad metrics endpoint" 6 gambar-dash --metrics "bogus://x" --http 127.0.0.1:0
check "bad metrics endpoint named" grep -q "bogus://x" "$TMP/err"
python3 -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(5)' >"$TMP/busy" &
# until the port is printed (python may take seconds to start on a loaded machine)
for _i in $(seq 100); do [ -s "$TMP/busy" ] && break; sleep 0.1; done
check_exit "port in use" 6 gambar-dash --metrics "$EP" --http "127.0.0.1:$(cat "$TMP/busy")"
check "port in use named" grep -q "cannot listen there" "$TMP/err"
check_exit "unwritable --jsonl" 4 gambar-dash --metrics "$EP" --http 0 --jsonl /nonexistent/dir/x.jsonl

# ---- metrics in, figures out ----------------------------------------------------------
check "dash starts" start_dash --metrics "$EP" --jsonl "$TMP/m.jsonl" --run default-run
check "binds 127.0.0.1 by default: served there" test "$(http_code "$URL/healthz")" = 200
check "binds 127.0.0.1 by default: not on 127.0.0.2" test "$(http_code "http://127.0.0.2:$PORT/healthz")" = 000
metric_pub --out "@$EP" --steps 20 --interval-ms 5 --eval-every 5 --garbage 9 --evil >"$TMP/pub.out" 2>"$TMP/pub.err"
check "publisher ran" grep -q "published" "$TMP/pub.out"
check "state: loss_d reached step 20" wait_state \
    "any(x['name']=='loss_d' and x['step']==20 for x in s['series'])"
check "state: history of loss_d is 20 points in step order" $PY -c "
import json; s=json.load(open('$TMP/state.json'))
h=[x for x in s['series'] if x['name']=='loss_d'][0]['history']
assert [p[0] for p in h]==list(range(1,21)), h"
check "state: eval figures and labelled class balance" $PY -c "
import json; s=json.load(open('$TMP/state.json'))
names={(x['stage'],x['name']) for x in s['series']}
for n in ['fid','kid','precision','recall','class_kl']: assert ('eval',n) in names, n
cf=[x for x in s['series'] if x['name']=='class_fraction']
assert sorted(x['labels']['class'] for x in cf)==['Bag','T-shirt/top','Trouser'], cf"
check "state: checkpoint" $PY -c "
import json; s=json.load(open('$TMP/state.json')); assert s['checkpoint']['step']==20 and s['checkpoints']==4, s['checkpoint']"
check "state: garbage counted and dropped" $PY -c "
import json; s=json.load(open('$TMP/state.json')); assert s['dropped']==9, s['dropped']"

curl -s -D "$TMP/mh" "$URL/metrics" >"$TMP/metrics.txt"
check "metrics: content type 0.0.4" grep -qi "^content-type: text/plain; version=0.0.4" "$TMP/mh"
check "metrics: gauge with stage and run labels" grep -q '^gambar_loss_discriminator{stage="train",run="test-run"} ' "$TMP/metrics.txt"
check "metrics: HELP and TYPE" sh -c "grep -q '^# HELP gambar_fid ' '$TMP/metrics.txt' && grep -q '^# TYPE gambar_fid gauge' '$TMP/metrics.txt'"
check "metrics: _total is a counter" grep -q '^# TYPE gambar_dropped_messages_total counter' "$TMP/metrics.txt"
check "metrics: own dropped counter = 9" grep -q '^gambar_dash_dropped_messages_total 9$' "$TMP/metrics.txt"
check "metrics: label values escaped, invalid UTF-8 replaced" \
    grep -qF 'gambar_evil{stage="train",run="test-run",what="a\"b\\c?d?? e"} 1' "$TMP/metrics.txt"
check "metrics: class label" grep -q '^gambar_class_fraction{stage="eval",run="test-run",class="Bag"} ' "$TMP/metrics.txt"
if command -v promtool >/dev/null; then
    promtool check metrics <"$TMP/metrics.txt" >"$TMP/promtool.out" 2>&1
    check "metrics: promtool check metrics is clean" test $? -eq 0 -a ! -s "$TMP/promtool.out"
    cat "$TMP/promtool.out" >&2
else
    notok "metrics: promtool check metrics" "promtool not installed (scripts/install-deps.sh installs prometheus)"
fi

# ---- SSE -----------------------------------------------------------------------------
timeout 4 curl -sN "$URL/events" >"$TMP/sse.txt" 2>/dev/null &
CURLP=$!
sleep 1
metric_pub --out "@$EP" --steps 3 --start 100 --interval-ms 5 --eval-every 100 --evil >/dev/null 2>&1
wait $CURLP
check "sse: state event first" sh -c "head -2 '$TMP/sse.txt' | grep -q '^event: state'"
check "sse: new metrics stream as events" $PY -c "
import json
ev=[]; kind=None
for line in open('$TMP/sse.txt'):
    line=line.rstrip('\n')
    if line.startswith('event: '): kind=line[7:]
    elif line.startswith('data: '): ev.append((kind, json.loads(line[6:])))
assert ev[0][0]=='state'
m=[d for k,d in ev if k=='metric' and d['name']=='loss_g']
assert [d['step'] for d in m]==[100,101,102], m
w=[d for k,d in ev if k=='metric' and d['name']=='evil_wide']
assert len(w)==1 and w[0]['labels']['k7']=='\"'*127, w"

metric_pub --out "@$EP" --steps 1 --start 200 --interval-ms 0 --run "" >/dev/null 2>&1
check "--run labels metrics that carry no run" wait_state \
    "any(x['name']=='loss_d' and x['run']=='default-run' and x['step']==200 for x in s['series'])"
check "--run: shown on /metrics" sh -c "curl -s '$URL/metrics' | grep -q '^gambar_loss_discriminator{stage=\"train\",run=\"default-run\"} '"

# ---- JSON lines -------------------------------------------------------------------------
check "jsonl: every line is JSON; metrics and checkpoints" $PY -c "
import json
rows=[json.loads(l) for l in open('$TMP/m.jsonl')]
m=[r for r in rows if r['type']=='metric']; c=[r for r in rows if r['type']=='checkpoint']
assert len(c)==4 and len([r for r in m if r['name']=='loss_d'])==24, (len(c), len(m))
assert len([r for r in m if r['name']=='evil_wide'])==2
e=[r for r in m if r['name']=='evil'][0]
assert e['labels']['what'].startswith('a\"b\\\\c\nd'), e"

# ---- HTTP rules ---------------------------------------------------------------------------
check "http: page" test "$(http_code "$URL/")" = 200
check "http: app.js" test "$(http_code "$URL/app.js")" = 200
check "http: chart.js embedded" test "$(http_code "$URL/chart.js")" = 200
check "http: HEAD" test "$(http_code "$URL/metrics" -I)" = 200
check "http: POST is 405" test "$(http_code "$URL/metrics" -X POST -d x=1)" = 405
check "http: DELETE is 405" test "$(http_code "$URL/api/state" -X DELETE)" = 405
check "http: unknown path 404" test "$(http_code "$URL/nope")" = 404
check "http: .. is 400" test "$(http_code "$URL/../etc/passwd" --path-as-is)" = 400
check "http: %2e%2e is 400" test "$(http_code "$URL/%2e%2e/%2e%2e/etc/passwd" --path-as-is)" = 400
check "http: %2E%2E is 400" test "$(http_code "$URL/static/%2E%2E%2fmetrics" --path-as-is)" = 400
$PY -c "print('x'*65536)" >"$TMP/big"
code=$(http_code "$URL/metrics" -H "X-Big: $(cat "$TMP/big")")
check "http: oversized header is 4xx ($code)" sh -c "case '$code' in 4??) true;; *) false;; esac"
check "http: still serving" test "$(http_code "$URL/metrics")" = 200

# ---- /sample ------------------------------------------------------------------------------
check "sample: 503 without a sampler" test "$(http_code "$URL/sample?seed=1")" = 503
curl -s "$URL/sample" >"$TMP/s503"
check "sample: 503 says why" grep -q "no sampler configured" "$TMP/s503"
stop_dash
check "dash: SIGTERM exits 0" test "$DASH_RC" -eq 0

CK=$(mkckpt "$TMP/ck" --classes "T-shirt/top,Trouser,Bag" --steps 4 --seed 3)
SEP="ipc://$TMP/sample.ipc"
gambar-sample --serve "@$SEP" --ckpt "$CK" 2>"$TMP/serve.err" &
SP=$!
check "dash with sampler starts" start_dash --metrics "$EP" --sample "$SEP" --sample-timeout-ms 3000
code=$(curl -s -o "$TMP/s.png" -w '%{http_code}' --max-time 5 "$URL/sample?class=Bag&seed=7")
check "sample: PNG from the sampler" sh -c "test '$code' = 200 && head -c 8 '$TMP/s.png' | od -An -c | grep -q 'P   N   G'"
curl -s -o "$TMP/s2.png" "$URL/sample?class=Bag&seed=7"
# same pixels (the provenance text holds the creation time, which
# differs when the two requests straddle a second)
pixhash() { $PY "$GAMBAR_ROOT/tests/png_tool.py" pixhash "$1"; }
check "sample: same seed, same image" test "$(pixhash "$TMP/s.png")" = "$(pixhash "$TMP/s2.png")" -a -n "$(pixhash "$TMP/s.png")"
curl -s -o "$TMP/s3.png" "$URL/sample?class=Bag&seed=8"
check "sample: another seed, other pixels" test "$(pixhash "$TMP/s3.png")" != "$(pixhash "$TMP/s.png")"
check "sample: grid of 4" test "$(http_code "$URL/sample?seed=1&n=4")" = 200
check "sample: unknown class is 400" test "$(http_code "$URL/sample?class=hat")" = 400
check "sample: bad seed is 400" test "$(http_code "$URL/sample?seed=-1")" = 400
check "sample: n out of range is 400" test "$(http_code "$URL/sample?n=1000")" = 400
kill -STOP $SP
t0=$(date +%s)
check "sample: 503 when the sampler does not answer" test "$(http_code "$URL/sample?seed=2")" = 503
check "sample: within the timeout" test $(( $(date +%s) - t0 )) -le 5
kill -CONT $SP
sleep 0.5
check "sample: works again after a timeout (socket recreated)" test "$(http_code "$URL/sample?seed=3")" = 200
# a checkpoint announcement makes the dashboard ask for a grid
metric_pub --out "@$EP" --steps 1 --eval-every 1 --interval-ms 0 >/dev/null 2>&1
check "grid: fetched after a checkpoint" wait_state "s['grid_version']>=1"
check "grid: served" test "$(http_code "$URL/samples/latest.png")" = 200
stop_dash
kill $SP; wait $SP 2>/dev/null
