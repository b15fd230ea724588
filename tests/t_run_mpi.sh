#!/bin/sh
# gambar-run with the trainer under mpirun (ranks = N on a gambar-train
# stage, issue 11):
#   --check  accepts ranks/hosts/mpirun/mpirun_args on the trainer and
#            refuses bad ranks, the keys on another stage, hosts without
#            ranks, ranks with replicas, an unreadable hostfile and a
#            missing mpirun, each naming file, line and key; --dry-run
#            shows the mpirun command line (-np, --hostfile, -x);
#   fake     ranks = 2 through a recording mpirun (it runs the real one
#            with -np 1): argv, -x of gambar-run's GAMBAR_* variables,
#            the run-as-root variables, the run completes;
#   A        pipelines/quick.ini with ranks = 1 under the real mpirun:
#            exits 0 with a final checkpoint; T the same with the
#            channels on tcp:// (CURVE); A2 Ctrl-C mid-run: 130, a valid
#            checkpoint, no rank nor mpirun left;
#   B        ranks = 2 --micro-batches 4 under the real mpirun (skipped
#            while gambar-train has no --micro-batches).
. "$(dirname "$0")/lib.sh"
P=$TMP/p.ini

base() {
cat <<'X'
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
args = --db ${run_dir}/db --batch 8 --epochs 1

[train]
command = gambar-train
type = job
after = ingest
in = batches
metrics = metrics
ranks = 2
args = --model dcgan28 --width 8 --ckpt-dir ${run_dir}/ckpt --resume
X
}

# bad NAME EXPECTED-TEXT: $P fails --check with exit 3 and the text on stderr
bad() {
    gambar-run --check "$P" --run-dir "$TMP/r" >"$TMP/o" 2>"$TMP/e"; rc=$?
    if [ $rc -eq 3 ] && grep -qF -- "$2" "$TMP/e" && [ ! -s "$TMP/o" ]; then ok "$1"
    else notok "$1" "rc=$rc, want 3 and '$2'; got: $(cat "$TMP/e")"; fi
}
good() {
    gambar-run --check "$P" --run-dir "$TMP/r" >"$TMP/o" 2>"$TMP/e"; rc=$?
    if [ $rc -eq 0 ] && grep -q ": ok (3 stages" "$TMP/o"; then ok "$1"; else notok "$1" "rc=$rc $(cat "$TMP/e")"; fi
}

# --- --check
base >"$P"
good "--check accepts ranks = 2 on the trainer"
gambar-run --dry-run "$P" --run-dir "$TMP/r" >"$TMP/o" 2>"$TMP/e"
MPIRUN=$(command -v mpirun)
grep -q "^ *$MPIRUN --mca odls_base_sigkill_timeout 30 -np 2 -x GAMBAR_IN -x GAMBAR_METRICS -x GAMBAR_STAGE -x GAMBAR_REPLICA -x GAMBAR_REPLICAS -x GAMBAR_RUN_DIR $GAMBAR_BIN/gambar-train --model dcgan28 " "$TMP/o" \
    && grep -q "train (job, restart no, after ingest, 2 ranks under mpirun)" "$TMP/o" \
    && ok "--dry-run: mpirun -np 2 -x ... gambar-train" || notok "--dry-run: mpirun command line" "$(cat "$TMP/o" "$TMP/e")"
grep -q "^ *$GAMBAR_BIN/gambar-augment .*--out @ipc://" "$TMP/o" && grep -q "gambar-train .*--in '>ipc://.*' --metrics @ipc://" "$TMP/o" \
    && ok "--dry-run: the augmenter wired to the trainer as before" || notok "--dry-run: wiring" "$(cat "$TMP/o")"

base | sed 's/^ranks = 2$/ranks = 0/' >"$P"
bad "ranks = 0 refused" "p.ini:23: [train] ranks: '0' is not a number from 1 to 256"
base | sed 's/^ranks = 2$/ranks = 257/' >"$P"
bad "ranks = 257 refused" "p.ini:23: [train] ranks: '257' is not a number from 1 to 256"
base | sed 's/^ranks = 2$/ranks = two/' >"$P"
bad "ranks = two refused" "[train] ranks: 'two' is not a number"
base | sed 's/^ranks = 2$//; s/^out = batches$/out = batches\nranks = 2/' >"$P"
bad "ranks on a non-train stage refused" "p.ini:14: [augment] ranks: only a gambar-train stage can run under mpirun (this stage runs 'gambar-augment')"
base | sed 's/^ranks = 2$/mpirun_args = --oversubscribe/' >"$P"
bad "mpirun_args without ranks refused" "p.ini:23: [train] mpirun_args: needs 'ranks = N'"
base | sed 's/^ranks = 2$/ranks = 2\nreplicas = 2/' >"$P"
bad "ranks with replicas refused" "[train] ranks: cannot be combined with replicas = 2"
base | sed 's/^ranks = 2$/ranks = 2\nhosts = missing-hosts.txt/' >"$P"
bad "missing hostfile refused" "p.ini:24: [train] hosts: hostfile '$TMP/missing-hosts.txt' cannot be read: No such file or directory"
base | sed 's/^ranks = 2$/ranks = 2\nhosts = ./' >"$P"
bad "a folder as hostfile refused" "p.ini:24: [train] hosts: hostfile '$TMP/.' cannot be read: not a regular file"
base | sed 's/^ranks = 2$/ranks = 2\nmpirun = \/nowhere\/mpirun/' >"$P"
bad "missing mpirun refused" "p.ini:24: [train] mpirun: mpirun '/nowhere/mpirun' no such file"
base >"$P"
PATH=$GAMBAR_BIN:/nowhere gambar-run --check "$P" --run-dir "$TMP/r" >"$TMP/o" 2>"$TMP/e"; rc=$?
[ $rc -eq 3 ] && grep -qF "p.ini:23: [train] ranks: mpirun 'mpirun' not found on PATH" "$TMP/e" \
    && ok "no mpirun on PATH refused" || notok "no mpirun on PATH refused" "rc=$rc $(cat "$TMP/e")"
echo "localhost slots=2" >"$TMP/hosts.txt"
base | sed 's/^ranks = 2$/ranks = 2\nhosts = hosts.txt\nmpirun_args = --oversubscribe --mca btl self,tcp/' >"$P"
good "--check accepts hosts (relative to the file) and mpirun_args"
gambar-run --dry-run "$P" --run-dir "$TMP/r" >"$TMP/o" 2>&1
grep -q "^ *$MPIRUN --hostfile $TMP/hosts.txt --oversubscribe --mca btl self,tcp --mca odls_base_sigkill_timeout 30 -np 2 -x " "$TMP/o" \
    && ok "--dry-run: --hostfile and mpirun_args before -np" || notok "--dry-run: --hostfile" "$(cat "$TMP/o")"
gambar-run --check "$GAMBAR_ROOT/pipelines/fashion-dcgan-mpi.ini" --run-dir "$TMP/r" >"$TMP/o" 2>"$TMP/e" \
    && grep -q "ok (9 stages" "$TMP/o" && gambar-run --dry-run "$GAMBAR_ROOT/pipelines/fashion-dcgan-mpi.ini" --run-dir "$TMP/r" 2>&1 \
    | grep -q -- "-np 2 .*gambar-train .*--micro-batches 4" && ok "pipelines/fashion-dcgan-mpi.ini passes --check" \
    || notok "fashion-dcgan-mpi.ini --check" "$(cat "$TMP/o" "$TMP/e")"
[ ! -e "$TMP/r" ] && ok "--check creates nothing" || notok "--check creates nothing"

if [ ! -d "$FASHION" ]; then skip t_run_mpi "no $FASHION"; rm -rf "$TMP"; exit 0; fi
if [ -z "$MPIRUN" ]; then skip t_run_mpi "no mpirun"; rm -rf "$TMP"; exit 0; fi
Q="$GAMBAR_ROOT/pipelines/quick.ini"
SMALL="--set vars.images=1000 --set vars.epochs=1 --set vars.dash_port=$(free_port)"
last_ckpt() { ls "$1"/ckpt/ckpt-*.gck 2>/dev/null | tail -n 1; }
# mine RUN_DIR: pids of processes whose command line names RUN_DIR
mine() { pgrep -f -- "$1/" | grep -v "^$$\$"; }

# --- fake: ranks = 2 through a recording mpirun
cat >"$TMP/fake-mpirun" <<X
#!/bin/sh
# records its argv and environment, then runs the real mpirun with -np 1
printf '%s\n' "\$@" >"$TMP/fake.argv"
env >"$TMP/fake.env"
a=""; for w in "\$@"; do [ "\$prev" = "-np" ] && w=1; prev=\$w; a="\$a '\$w'"; done
eval exec "$MPIRUN" \$a
X
chmod +x "$TMP/fake-mpirun"
GAMBAR_TEST_MARK=1 gambar-run "$Q" --run-dir "$TMP/f" $SMALL --set train.ranks=2 --set "train.mpirun=$TMP/fake-mpirun" \
    >"$TMP/f.out" 2>"$TMP/f.err"; rc=$?
[ $rc -eq 0 ] && ok "fake: ranks = 2 run exits 0" || notok "fake: ranks = 2 run exits 0" "rc=$rc $(tail -20 "$TMP/f.err")"
tr '\n' ' ' <"$TMP/fake.argv" >"$TMP/fake.line"
grep -q "^--mca odls_base_sigkill_timeout 30 -np 2 -x GAMBAR_IN -x GAMBAR_METRICS -x GAMBAR_STAGE .* $GAMBAR_BIN/gambar-train --model dcgan28 " "$TMP/fake.line" \
    && grep -q -- "-x GAMBAR_CURVE_KEYS .*gambar-train " "$TMP/fake.line" && grep -q -- "-x GAMBAR_TEST_MARK .*gambar-train " "$TMP/fake.line" \
    && ok "fake: mpirun got -np 2, -x for the stage's and gambar-run's GAMBAR_* variables, then gambar-train" \
    || notok "fake: mpirun argv" "$(cat "$TMP/fake.line")"
if [ "$(id -u)" = 0 ]; then
    grep -q "^OMPI_ALLOW_RUN_AS_ROOT=1$" "$TMP/fake.env" && grep -q "^OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1$" "$TMP/fake.env" \
        && ok "fake: as root, mpirun gets OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)=1" || notok "fake: run-as-root variables"
fi
grep -q "^GAMBAR_CURVE_KEYS=$TMP/f/keys$" "$TMP/fake.env" && ok "fake: GAMBAR_CURVE_KEYS in mpirun's environment" \
    || notok "fake: GAMBAR_CURVE_KEYS" "$(grep GAMBAR "$TMP/fake.env")"
F=$(last_ckpt "$TMP/f")
ckpt_diff --info "$F" >"$TMP/f.info" 2>&1 && grep -q "^step=31$" "$TMP/f.info" && [ -s "$TMP/f/samples/grid-1.png" ] \
    && ok "fake: final checkpoint at step 31, samples from it" || notok "fake: checkpoint" "$F $(cat "$TMP/f.info")"

# --- A: ranks = 1 under the real mpirun
t0=$(date +%s)
gambar-run "$Q" --run-dir "$TMP/a" $SMALL --set train.ranks=1 >"$TMP/a.out" 2>"$TMP/a.err"; rc=$?
echo "quick.ini (1000 images, 1 epoch) with ranks = 1 took $(($(date +%s) - t0)) s" >&2
[ $rc -eq 0 ] && ok "A: ranks = 1 under mpirun exits 0" || notok "A: ranks = 1 exits 0" "rc=$rc $(tail -20 "$TMP/a.err")"
A=$(last_ckpt "$TMP/a")
ckpt_diff --info "$A" >"$TMP/a.info" 2>&1 && grep -q "^step=31$" "$TMP/a.info" \
    && ok "A: a final checkpoint at step 31" || notok "A: final checkpoint" "$A $(cat "$TMP/a.info")"
grep -q "^--- gambar-run: start 1, pid [0-9]*: $MPIRUN --mca odls_base_sigkill_timeout 30 -np 1 .* $GAMBAR_BIN/gambar-train " "$TMP/a/logs/train.log" \
    && grep -q "^train *| .*finished at step 31" "$TMP/a.err" && ok "A: started as mpirun -np 1, output prefixed" \
    || notok "A: train log" "$(grep -v 'info: step' "$TMP/a/logs/train.log" | head)"
ckpt_diff "$A" "$(last_ckpt "$TMP/f")" >"$TMP/diff" 2>&1 && ok "A: same checkpoint as the fake-mpirun run" || notok "A: same checkpoint" "$(head -3 "$TMP/diff")"
[ -z "$(mine "$TMP/a")" ] && ok "A: nothing left running" || notok "A: left running" "$(mine "$TMP/a")"

# --- T: the trainer's channels on tcp:// (CURVE, as for stages on other hosts)
PB=$(free_port); PM=$(free_port)
{ sed '/^batches = gambar.Batch$/d; /^metrics = gambar.Metric$/d' "$Q"
  printf '[channel batches]\ntype = gambar.Batch\nendpoint = tcp://127.0.0.1:%s\n' "$PB"
  printf '[channel metrics]\ntype = gambar.Metric\nendpoint = tcp://127.0.0.1:%s\n' "$PM"; } >"$TMP/tcp.ini"
gambar-run "$TMP/tcp.ini" --run-dir "$TMP/t" $SMALL --set train.ranks=1 >"$TMP/t.out" 2>"$TMP/t.err"; rc=$?
[ $rc -eq 0 ] && grep -q -- "-np 1 .*gambar-train .*--in >tcp://127.0.0.1:$PB --metrics @tcp://127.0.0.1:$PM" "$TMP/t/logs/train.log" \
    && ckpt_diff "$(last_ckpt "$TMP/t")" "$(last_ckpt "$TMP/a")" >/dev/null 2>&1 \
    && ok "T: tcp:// channels (CURVE keys passed with -x): same final checkpoint" \
    || notok "T: tcp:// channels" "rc=$rc $(grep '^---' "$TMP/t/logs/train.log") $(tail -20 "$TMP/t.err")"

# --- A2: Ctrl-C mid-run
gambar-run "$Q" --run-dir "$TMP/c" $SMALL --set train.ranks=1 --set train.args="--model dcgan28 --width 8 --epochs 3 --db \${db} --ckpt-dir \${ckpt} --resume --ckpt-every 5 --seed 1 --threads 1" >"$TMP/c.out" 2>"$TMP/c.err" &
RUN=$!
i=0; while [ $i -lt 900 ] && ! ls "$TMP/c/ckpt"/ckpt-*.gck >/dev/null 2>&1; do sleep 0.1; i=$((i + 1)); done
kill -INT $RUN; wait $RUN; rc=$?
sleep 0.5
[ $rc -eq 130 ] && ok "A2: Ctrl-C: exit 130" || notok "A2: Ctrl-C: exit 130" "rc=$rc $(tail "$TMP/c.err")"
[ -z "$(mine "$TMP/c")" ] && ok "A2: Ctrl-C: no rank nor mpirun left" || notok "A2: orphans" "$(ps -o pid,args -p "$(mine "$TMP/c" | tr '\n' ',')0")"
grep -q "stopping train (SIGTERM" "$TMP/c.err" && ckpt_diff --info "$(last_ckpt "$TMP/c")" >/dev/null 2>&1 \
    && ok "A2: SIGTERM through mpirun, a valid checkpoint" || notok "A2: stop" "$(grep gambar-run: "$TMP/c.err")"

# --- B: ranks = 2 with the data-parallel trainer
if gambar-train --help 2>&1 | grep -q -- "--micro-batches"; then
    gambar-run "$Q" --run-dir "$TMP/b" $SMALL --set train.ranks=2 --set train.mpirun_args=--oversubscribe \
        --set train.micro-batches=4 >"$TMP/b.out" 2>"$TMP/b.err"; rc=$?
    [ $rc -eq 0 ] && ok "B: ranks = 2 --micro-batches 4 exits 0" || notok "B: ranks = 2 exits 0" "rc=$rc $(tail -20 "$TMP/b.err")"
    B=$(last_ckpt "$TMP/b")
    ckpt_diff --info "$B" >"$TMP/b.info" 2>&1 && grep -q "^step=31$" "$TMP/b.info" \
        && ok "B: a final checkpoint at step 31" || notok "B: final checkpoint" "$B $(cat "$TMP/b.info")"
    grep -q "^--- gambar-run: start 1, pid [0-9]*: $MPIRUN --oversubscribe .*-np 2 .*gambar-train .*--micro-batches 4" "$TMP/b/logs/train.log" \
        && ok "B: started as mpirun --oversubscribe -np 2" || notok "B: train log" "$(grep '^---' "$TMP/b/logs/train.log")"
    [ -z "$(mine "$TMP/b")" ] && ok "B: nothing left running" || notok "B: left running" "$(mine "$TMP/b")"
else
    skip "B: ranks = 2" "gambar-train has no --micro-batches yet"
fi
rm -rf "$TMP"
