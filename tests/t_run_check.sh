#!/bin/sh
# gambar-run --check / --dry-run / --dot: every validation error on its
# own (each names file, line and key), overrides, and the plan output.
# Nothing is started here.
. "$(dirname "$0")/lib.sh"
P=$TMP/p.ini

# base: a valid pipeline; each case edits a copy of it
base() {
cat <<'X'
[vars]
epochs = 1

[channels]
batches = gambar.Batch
metrics = gambar.Metric

[ingest]
command = gambar-ingest
type = job
args = --source idx:/nowhere --db ${run_dir}/db

[augment]
command = gambar-augment
after = ingest
out = batches
start_batch_from = train
args = --db ${run_dir}/db --batch 8 --epochs ${epochs}

[train]
command = gambar-train
type = job
after = ingest
in = batches
metrics = metrics
args = --model dcgan28 --width 8 --ckpt-dir ${run_dir}/ckpt --resume
X
}

# bad NAME EXPECTED-TEXT: the pipeline in $P fails --check with exit 3 and
# the expected text on stderr
bad() {
    gambar-run --check "$P" --run-dir "$TMP/r" >"$TMP/o" 2>"$TMP/e"; rc=$?
    if [ $rc -eq 3 ] && grep -qF -- "$2" "$TMP/e" && [ ! -s "$TMP/o" ]; then ok "$1"
    else notok "$1" "rc=$rc, want 3 and '$2'; got: $(cat "$TMP/e")"; fi
}

base >"$P"
gambar-run --check "$P" --run-dir "$TMP/r" >"$TMP/o" 2>"$TMP/e"; rc=$?
if [ $rc -eq 0 ] && grep -q "ok (3 stages, 2 channels)" "$TMP/o"; then ok "valid pipeline passes --check"
else notok "valid pipeline passes --check" "rc=$rc $(cat "$TMP/e")"; fi
[ ! -e "$TMP/r" ] && ok "--check creates nothing" || notok "--check creates nothing"

base | sed '0,/^after = ingest$/s//atfer = ingest/' >"$P"
bad "misspelt key: did you mean" "p.ini:15: [augment] atfer: unknown key (did you mean 'after'?)"

base | sed '0,/^after = ingest$/s//after = ingset/' >"$P"
bad "unknown stage in after" "p.ini:15: [augment] after: unknown stage 'ingset' (did you mean 'ingest'?)"

base | sed 's/^start_batch_from = train/start_batch_from = trian/' >"$P"
bad "unknown stage in start_batch_from" "unknown stage 'trian' (did you mean 'train'?)"

base | sed 's|--ckpt-dir ${run_dir}/ckpt ||' >"$P"
bad "start_batch_from a trainer without --ckpt-dir" "p.ini:17: [augment] start_batch_from: stage 'train' has no --ckpt-dir"

base | sed 's/^start_batch_from = train/start_batch_from = ingest/' >"$P"
bad "start_batch_from a stage that is not gambar-train" "[augment] start_batch_from: 'ingest' is not a gambar-train stage"

{ base; printf '[s]\ncommand = gambar-sample\ntype = job\nafter = train\nargs = --ckpt ${latest:trian}\n'; } >"$P"
bad "\${latest:STAGE} names an unknown stage" "p.ini:31: args: \${latest:trian}: unknown stage 'trian' (did you mean 'train'?)"

base | sed 's/^out = batches$//' >"$P"
bad "channel without producer" "p.ini:5: channel 'batches' has no producer"

base | sed 's/^in = batches$//' >"$P"
bad "channel without consumer" "p.ini:5: channel 'batches' has no consumer"

{ base; printf '[channel spare]\ntype = gambar.Batch\n'; } >"$P"
bad "channel nobody uses" "channel 'spare' is declared but no stage uses it"

base | sed 's/^in = batches$/in = bacthes/' >"$P"
bad "unknown channel" "p.ini:24: [train] in: unknown channel 'bacthes' (did you mean 'batches'?)"

base | sed '0,/^type = job$/s//type = job\nafter = augment/' >"$P"
bad "dependency cycle" "dependency cycle through 'after':"
grep -q "ingest -> augment -> ingest\|augment -> ingest -> augment" "$TMP/e" && ok "cycle path printed" || notok "cycle path printed" "$(cat "$TMP/e")"

base | sed 's/^command = gambar-train$/command = gambar-trian/' >"$P"
bad "missing program (did you mean)" "[train] command: program 'gambar-trian' not found in the gambar bin folder nor on PATH (did you mean 'gambar-train'?)"

printf '#!/bin/sh\n' >"$TMP/noexec"; chmod 644 "$TMP/noexec"
base | sed "s|^command = gambar-ingest\$|command = $TMP/noexec|" >"$P"
bad "program not executable" "program '$TMP/noexec' not an executable file"

base | sed 's/^in = batches$/in = metrics/; s/^metrics = metrics$/metrics = batches/' >"$P"
bad "type mismatch: Metric channel into Batch input" "[train] in: channel 'metrics' carries gambar.Metric but the 'in' channel of gambar-train takes gambar.Batch"
grep -qF "[train] metrics: channel 'batches' carries gambar.Batch but the 'metrics' channel of gambar-train takes gambar.Metric" "$TMP/e" \
    && ok "type mismatch: Batch channel into metrics output" || notok "type mismatch: Batch channel into metrics output" "$(cat "$TMP/e")"

base | sed 's/^batches = gambar.Batch$/batches = gambar.Btach/' >"$P"
bad "unknown message type" "unknown message type 'gambar.Btach' (did you mean 'gambar.Batch'?)"

base | sed 's/^out = batches$/out = batches\nin = batches/' >"$P"
bad "role the stage does not have" "[augment] in: gambar-augment has no 'in' channel (its channels: out)"

base | sed 's/^out = batches$/out = batches\nreplicas = 2/; s/^in = batches$/in = batches\nreplicas = 2/' >"$P"
bad "many-to-many channel" "channel 'batches' has 2 producing and 2 consuming processes"

base | sed 's/--epochs ${epochs}/--epochs ${epohcs}/' >"$P"
bad "unknown variable" "p.ini:18: args: unknown variable \${epohcs} (did you mean 'epochs'?)"

{ base; printf 'opt.note = %0300d\n' 0; } >"$P"
bad "over-long line" "p.ini:27: line too long (311 bytes, at most 197)"

base | sed 's/^\[augment\]$/[augment/' >"$P"
bad "syntax error" "p.ini:13: syntax error"

{ base; printf 'after = ingest\n'; } >"$P"
bad "duplicate key" "p.ini:27: [train] after: given twice (first at line 23)"

{ base; printf '[ingest]\ncommand = x\n'; } >"$P"
bad "duplicate section" "p.ini:27: section [ingest] appears twice (first at line 8)"

base | sed 's/^type = job$/type = jbo/' >"$P"
bad "bad type value" "[ingest] type: 'jbo' is not job or service"

base | sed 's/^out = batches$/out = batches\nreplicas = 0/' >"$P"
bad "bad replicas" "[augment] replicas: '0' is not a number from 1 to 64"

base | sed 's/^out = batches$/out = batches\nrestart = sometimes/' >"$P"
bad "bad restart policy" "[augment] restart: 'sometimes' is not no, on-failure or always"

base | sed 's/^\[channels\]$/[chanel x]/' >"$P"
bad "unknown section kind" "unknown kind of section 'chanel' (did you mean 'channel'?)"

base | sed 's/^args = --model/args = "--model/' >"$P"
bad "unbalanced quotes" "[train] args: unbalanced quotes"

base | sed 's/^command = gambar-ingest$//' >"$P"
bad "missing command" "p.ini:8: [ingest]: missing 'command'"

printf 'a\0b = c\n' >"$P"
bad "NUL byte" "NUL byte"

gambar-run --check "$TMP/none.ini" >"$TMP/o" 2>"$TMP/e"; rc=$?
[ $rc -eq 4 ] && grep -q "none.ini: cannot open" "$TMP/e" && ok "missing file exits 4" || notok "missing file exits 4" "rc=$rc"

# several errors at once are all reported
base | sed 's/^after = ingest$/atfer = ingest/; s/^type = job$/type = jbo/' >"$P"
gambar-run --check "$P" >"$TMP/o" 2>"$TMP/e"
[ "$(grep -c 'p.ini:' "$TMP/e")" -ge 3 ] && ok "all errors reported" || notok "all errors reported" "$(cat "$TMP/e")"

# --set
base >"$P"
gambar-run "$P" --dry-run --run-dir "$TMP/r" --set train.steps=500 --set vars.epochs=3 --set augment.args='--db x --batch 4' >"$TMP/o" 2>"$TMP/e"
grep -q -- "--resume --steps 500 --in" "$TMP/o" && ok "--set train.steps=500 -> --steps 500" || notok "--set train.steps" "$(cat "$TMP/o" "$TMP/e")"
grep -q -- "gambar-augment --db x --batch 4 --out" "$TMP/o" && ok "--set replaces a key" || notok "--set replaces a key" "$(cat "$TMP/o")"
base | sed 's/--epochs ${epochs}/--epochs ${epochs} --x ${replica}/' >"$P"
gambar-run "$P" --dry-run --run-dir "$TMP/r" --set vars.epochs=3 >"$TMP/o" 2>&1
grep -q -- "--epochs 3 --x 0" "$TMP/o" && ok "--set vars.epochs=3" || notok "--set vars.epochs" "$(cat "$TMP/o")"
check_exit "--set unknown section" 3 gambar-run "$P" --check --set trian.steps=5
grep -qF "no section [trian] in the file (did you mean 'train'?)" "$TMP/err" && ok "--set unknown section named" || notok "--set unknown section named" "$(cat "$TMP/err")"
check_exit "--set without a dot" 3 gambar-run "$P" --check --set steps=5

# --dry-run: order, command lines, channels, bind sides
base >"$P"
gambar-run "$P" --dry-run --run-dir "$TMP/r" >"$TMP/o" 2>"$TMP/e"; rc=$?
[ $rc -eq 0 ] && ok "--dry-run exits 0" || notok "--dry-run exits 0" "$(cat "$TMP/e")"
order=$(grep -E '^ *[0-9]+\. ' "$TMP/o" | awk '{print $2}' | tr '\n' ' ')
[ "$order" = "ingest augment train " ] && ok "--dry-run start order" || notok "--dry-run start order" "got '$order'"
grep -q "gambar-augment --db $TMP/r/db --batch 8 --epochs 1 --out @ipc://$TMP/r/batches.sock" "$TMP/o" \
    && ok "--dry-run resolved command line (augment binds)" || notok "--dry-run command line" "$(cat "$TMP/o")"
grep -q -- "--in '>ipc://$TMP/r/batches.sock' --metrics @ipc://$TMP/r/metrics.sock" "$TMP/o" \
    && ok "--dry-run trainer connects batches, binds metrics" || notok "--dry-run trainer endpoints" "$(cat "$TMP/o")"
grep -q "batches (gambar.Batch) ipc://$TMP/r/batches.sock: augment.out(bind) -> train.in" "$TMP/o" \
    && ok "--dry-run channel graph" || notok "--dry-run channel graph" "$(cat "$TMP/o")"
[ ! -e "$TMP/r" ] && ok "--dry-run creates nothing" || notok "--dry-run creates nothing"

# sharded producers: the single consumer binds
base | sed 's/^out = batches$/out = batches\nreplicas = 2/; s/--epochs ${epochs}/--epochs 1 --shard ${replica}\/${replicas}/' >"$P"
gambar-run "$P" --dry-run --run-dir "$TMP/r" >"$TMP/o" 2>"$TMP/e"
grep -q "\[1\] .*--shard 1/2 --out '>ipc://" "$TMP/o" && grep -q -- "--in @ipc://" "$TMP/o" \
    && ok "replicas: \${replica}/\${replicas}, consumer binds" || notok "replicas" "$(cat "$TMP/o" "$TMP/e")"

# --dot
base >"$P"
gambar-run "$P" --dot --run-dir "$TMP/r" >"$TMP/o" 2>"$TMP/e"
head -1 "$TMP/o" | grep -q '^digraph gambar {' && grep -q '"augment" -> "train" \[label="batches (gambar.Batch)"\]' "$TMP/o" \
    && grep -q '"ingest" -> "augment" \[style=dashed' "$TMP/o" && tail -1 "$TMP/o" | grep -q '^}' \
    && ok "--dot graph" || notok "--dot graph" "$(cat "$TMP/o")"
if command -v dot >/dev/null 2>&1; then
    dot -Tsvg "$TMP/o" >/dev/null 2>&1 && ok "--dot parses with graphviz" || notok "--dot parses with graphviz"
fi

# a foreign program: option from in.option, endpoint also in GAMBAR_IN
cat >"$P" <<'X'
[channels]
batches = gambar.Batch
[augment]
command = gambar-augment
out = batches
args = --db d --batch 4
[mine]
command = /bin/cat
in = batches
in.option = --input
environment = A=1, B=${name}
X
gambar-run "$P" --dry-run --run-dir "$TMP/r" >"$TMP/o" 2>"$TMP/e"
grep -q "/bin/cat --input '>ipc://$TMP/r/batches.sock'" "$TMP/o" && ok "foreign program: in.option" || notok "foreign program: in.option" "$(cat "$TMP/o" "$TMP/e")"
grep -q "environment\|A=1" "$TMP/o"; gambar-run "$P" --dry-run --run-dir "$TMP/r" >/dev/null 2>&1 \
    && ok "foreign program passes" || notok "foreign program passes"

# the worked example of pipelines/README.md prints what the README shows
python3 - "$GAMBAR_ROOT/pipelines/README.md" "$TMP" <<'PY'
import sys
s = open(sys.argv[1]).read()
a = s.index('```ini\n') + 7; b = s.index('```', a)
open(sys.argv[2] + '/my.ini', 'w').write(s[a:b])
a = s.index('```\nrun folder') + 4; b = s.index('```', a)
open(sys.argv[2] + '/my.expected', 'w').write(s[a:b])
PY
(cd "$TMP" && gambar-run my.ini --dry-run --run-dir /tmp/r) | sed "s|$GAMBAR_BIN|/usr/local/bin|" >"$TMP/my.got"
cmp -s "$TMP/my.expected" "$TMP/my.got" && ok "pipelines/README.md example: --dry-run output as shown" \
    || notok "README example" "$(diff "$TMP/my.expected" "$TMP/my.got")"

# every shipped pipeline is valid
for f in "$GAMBAR_ROOT"/pipelines/*.ini; do
    n=$(basename "$f")
    gambar-run --check "$f" --run-dir "$TMP/r-$n" >"$TMP/o" 2>"$TMP/e" && ok "pipelines/$n passes --check" || notok "pipelines/$n passes --check" "$(cat "$TMP/e")"
done
rm -rf "$TMP"
