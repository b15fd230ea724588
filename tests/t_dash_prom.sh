#!/bin/sh
# gambar-dash's /metrics scraped by a real Prometheus server (Debian's
# prometheus, started here on 127.0.0.1 with its data in $TMP): the
# target is up, and the HTTP API answers queries for gambar_ series with
# the stage and run labels and the values metric_pub published; promtool
# finds nothing to complain about in the exposition.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dash_lib.sh"
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    notok "prometheus: prometheus and promtool are needed (scripts/install-deps.sh)"
    exit 1
fi
EP="ipc://$TMP/metrics.ipc"
check "dash starts" start_dash --metrics "$EP" --run prom-test
metric_pub --out "@$EP" --forever --interval-ms 100 --eval-every 5 --run prom-run >/dev/null 2>&1 &
PP=$!
check "metrics arrive" wait_state "any(x['name']=='fid' for x in s['series'])"
curl -s "$URL/metrics" >"$TMP/metrics.txt"
promtool check metrics <"$TMP/metrics.txt" >"$TMP/lint.txt" 2>&1
check "promtool check metrics: clean" test $? -eq 0 -a ! -s "$TMP/lint.txt"
cat "$TMP/lint.txt" >&2

PROM_PORT=$(free_port)
cat >"$TMP/prom.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: gambar-dash
    static_configs:
      - targets: ['127.0.0.1:$PORT']
YML
check "promtool check config" promtool check config "$TMP/prom.yml"
prometheus --config.file="$TMP/prom.yml" --storage.tsdb.path="$TMP/prom" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$TMP/prom.log" 2>&1 &
PROM=$!
PURL="http://127.0.0.1:$PROM_PORT"
# query EXPR PYCOND: poll Prometheus' query API until PYCOND holds for r = result list (30 s)
query() {
    for _i in $(seq 150); do
        curl -s --max-time 2 -G "$PURL/api/v1/query" --data-urlencode "query=$1" >"$TMP/q.json" 2>/dev/null &&
            $PY -c "import json,sys; d=json.load(open('$TMP/q.json')); r=d['data']['result']; sys.exit(0 if d['status']=='success' and ($2) else 1)" 2>/dev/null &&
            return 0
        sleep 0.2
    done
    cat "$TMP/q.json" >&2
    return 1
}
check "prometheus: target up" query 'up{job="gambar-dash"}' "len(r)==1 and r[0]['value'][1]=='1'"
check "prometheus: gambar_loss_discriminator with stage and run" query 'gambar_loss_discriminator' \
    "len(r)==1 and r[0]['metric']['stage']=='train' and r[0]['metric']['run']=='prom-run' and 0.3<float(r[0]['value'][1])<1.1"
check "prometheus: eval series" query 'gambar_fid{stage="eval"}' "len(r)==1 and float(r[0]['value'][1])>0"
check "prometheus: labelled class shares" query 'count(gambar_class_fraction)' "float(r[0]['value'][1])==3"
check "prometheus: counter" query 'gambar_dash_messages_received_total' "float(r[0]['value'][1])>0"
check "prometheus: step goes up between scrapes" query 'delta(gambar_step{stage="train"}[10s])' \
    "len(r)==1 and float(r[0]['value'][1])>0"
kill $PROM 2>/dev/null; wait $PROM 2>/dev/null
kill $PP 2>/dev/null; wait $PP 2>/dev/null
stop_dash
