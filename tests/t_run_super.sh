#!/bin/sh
# gambar-run supervision with small shell/sleep stages (fast): a failing
# job fails the pipeline with its status and log tail, a crashing service
# is restarted with backoff and then given up on, Ctrl-C stops stages in
# reverse order (SIGKILL after stop_timeout; a second Ctrl-C forces), a
# SIGKILLed gambar-run leaves no stage alive, output is prefixed and
# logged, environment and channel endpoints reach foreign programs.
. "$(dirname "$0")/lib.sh"
P=$TMP/p.ini

# alive PIDFILE: print the pids from a run folder's pids file still alive
alive() { awk '{print $3}' "$1" 2>/dev/null | while read -r p; do kill -0 "$p" 2>/dev/null && echo "$p"; done; }
# wait_for FILE PATTERN SECONDS
wait_for() { i=0; while [ $i -lt $(($3 * 10)) ]; do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; i=$((i + 1)); done; return 1; }

# --- a failing job fails the pipeline with its exit status and log tail
cat >"$P" <<'X'
[prep]
command = /bin/sh
type = job
args = -c 'echo preparing; echo boom >&2; exit 7'
[next]
command = /bin/echo
type = job
after = prep
args = should-not-run
X
gambar-run "$P" --run-dir "$TMP/r1" >"$TMP/o" 2>"$TMP/e"; rc=$?
[ $rc -eq 7 ] && ok "failing job: gambar-run exits with its status (7)" || notok "failing job exit status" "rc=$rc $(cat "$TMP/e")"
grep -q "prep failed with exit status 7" "$TMP/e" && grep -q "last lines of .*logs/prep.log" "$TMP/e" && grep -q "^    boom" "$TMP/e" \
    && ok "failing job: message and log tail" || notok "failing job: message and log tail" "$(cat "$TMP/e")"
grep -q "should-not-run" "$TMP/e" && notok "dependent of a failed job not started" || ok "dependent of a failed job not started"
grep -q "^prep *| preparing" "$TMP/e" && ok "stage output prefixed on the console" || notok "stage output prefixed" "$(cat "$TMP/e")"
grep -q "^boom" "$TMP/r1/logs/prep.log" && grep -q "^preparing" "$TMP/r1/logs/prep.log" \
    && ok "stage output in logs/STAGE.log" || notok "stage output in logs/STAGE.log"
[ -s "$TMP/r1/plan.txt" ] && [ -s "$TMP/r1/plan.json" ] && cmp -s "$P" "$TMP/r1/pipeline.ini" \
    && ok "run folder: pipeline.ini, plan.txt, plan.json" || notok "run folder files"
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert [s['name'] for s in j['stages']]==['prep','next']" "$TMP/r1/plan.json" \
    && ok "plan.json parses, stages in start order" || notok "plan.json"

# a job killed by a signal: 128+signal
printf '[k]\ncommand = /bin/sh\ntype = job\nargs = -c "kill -9 $$$$"\n' >"$P"
check_exit "job killed by SIGKILL: exit 137" 137 gambar-run "$P" --run-dir "$TMP/r1b"

# --- a crashing service: restarts after 1 s, 2 s, then gives up
cat >"$P" <<'X'
[flaky]
command = /bin/sh
args = -c 'echo up; exit 3'
start_retries = 2
X
t0=$(date +%s)
gambar-run "$P" --run-dir "$TMP/r2" >"$TMP/o" 2>"$TMP/e"; rc=$?
t1=$(date +%s)
[ $rc -eq 1 ] && ok "crashing service: pipeline stops with 1" || notok "crashing service exit" "rc=$rc"
[ "$(grep -c '^--- gambar-run: start' "$TMP/r2/logs/flaky.log")" -eq 3 ] && ok "crashing service: started 3 times" \
    || notok "crashing service: started 3 times" "$(cat "$TMP/r2/logs/flaky.log")"
grep -q "restarting flaky in 1 s" "$TMP/e" && grep -q "restarting flaky in 2 s" "$TMP/e" \
    && grep -q "flaky crashed 3 times in a row (start_retries = 2); giving up" "$TMP/e" \
    && ok "crashing service: backoff 1 s, 2 s, then a clear message" || notok "crashing service: backoff messages" "$(cat "$TMP/e")"
[ $((t1 - t0)) -ge 3 ] && ok "crashing service: backoff waited" || notok "crashing service: backoff waited" "$((t1 - t0)) s"

# --- Ctrl-C: reverse order, stop_timeout then SIGKILL, no orphans
cat >"$P" <<'X'
[a]
command = /bin/sleep
args = 300
[b]
command = /bin/sh
after = a
stop_timeout = 1
args = -c 'trap "echo got TERM, ignoring" TERM; echo ready; while :; do sleep 0.1; done'
X
: >"$TMP/e"
gambar-run "$P" --run-dir "$TMP/r3" >"$TMP/o" 2>"$TMP/e" &
RUN=$!
wait_for "$TMP/e" "^b *| ready" 10 || notok "services started" "$(cat "$TMP/e")"
kill -INT $RUN
wait $RUN; rc=$?
[ $rc -eq 130 ] && ok "Ctrl-C: exit 130" || notok "Ctrl-C: exit 130" "rc=$rc"
sb=$(grep -n "stopping b" "$TMP/e" | cut -d: -f1); sa=$(grep -n "stopping a" "$TMP/e" | cut -d: -f1)
[ -n "$sa" ] && [ -n "$sb" ] && [ "$sb" -lt "$sa" ] && ok "Ctrl-C: stopped in reverse order (b, then a)" || notok "reverse order" "$(cat "$TMP/e")"
grep -q "b did not stop within 1 s: SIGKILL" "$TMP/e" && ok "Ctrl-C: SIGKILL after stop_timeout" || notok "stop_timeout" "$(cat "$TMP/e")"
sleep 0.2
[ -z "$(alive "$TMP/r3/pids")" ] && ok "Ctrl-C: no stage alive" || notok "Ctrl-C: no stage alive" "$(alive "$TMP/r3/pids")"
kill -0 -- -"$(awk '$1=="b"{print $3}' "$TMP/r3/pids")" 2>/dev/null && notok "Ctrl-C: b's process group empty" || ok "Ctrl-C: b's process group empty"

# --- SIGTERM and SIGHUP stop it the same way
for sig in TERM HUP; do
    printf '[a]\ncommand = /bin/sleep\nargs = 300\n' >"$P.t"
    : >"$TMP/e"
    gambar-run "$P.t" --run-dir "$TMP/rt$sig" >"$TMP/o" 2>"$TMP/e" &
    RUN=$!
    wait_for "$TMP/e" "started a" 10
    kill -$sig $RUN; wait $RUN; rc=$?
    [ $rc -eq 130 ] && grep -q "SIG$sig: stopping the stages" "$TMP/e" && [ -z "$(alive "$TMP/rt$sig/pids")" ] \
        && ok "SIG$sig: orderly stop, exit 130, no stage alive" || notok "SIG$sig stop" "rc=$rc $(cat "$TMP/e")"
done

# --- a second Ctrl-C forces
sed 's/stop_timeout = 1/stop_timeout = 60/' "$P" >"$P.2"
: >"$TMP/e"
gambar-run "$P.2" --run-dir "$TMP/r4" >"$TMP/o" 2>"$TMP/e" &
RUN=$!
wait_for "$TMP/e" "^b *| ready" 10
t0=$(date +%s)
kill -INT $RUN; sleep 0.5; kill -INT $RUN
wait $RUN; rc=$?
t1=$(date +%s)
[ $rc -eq 130 ] && [ $((t1 - t0)) -le 5 ] && grep -q "second Ctrl-C: killing every stage now" "$TMP/e" \
    && ok "second Ctrl-C forces the stop" || notok "second Ctrl-C" "rc=$rc $((t1 - t0))s $(cat "$TMP/e")"
sleep 0.2
[ -z "$(alive "$TMP/r4/pids")" ] && ok "second Ctrl-C: no stage alive" || notok "second Ctrl-C: no stage alive"

# --- SIGKILL of gambar-run: the kernel kills the stages (PR_SET_PDEATHSIG)
: >"$TMP/e"
gambar-run "$P" --run-dir "$TMP/r5" >"$TMP/o" 2>"$TMP/e" &
RUN=$!
wait_for "$TMP/e" "^b *| ready" 20
[ -n "$(alive "$TMP/r5/pids")" ] && ok "stages alive before SIGKILL" || notok "stages alive before SIGKILL" "$(cat "$TMP/e" "$TMP/r5/pids")"
kill -KILL $RUN; wait $RUN 2>/dev/null
sleep 2
[ -z "$(alive "$TMP/r5/pids")" ] && ok "SIGKILL gambar-run: no stage alive 2 s later" || notok "SIGKILL gambar-run: orphans" "$(alive "$TMP/r5/pids")"

# --- environment and channel endpoints reach a foreign program
cat >"$P" <<'X'
[vars]
greeting = hello
[channels]
batches = gambar.Batch
[src]
command = /bin/sh
type = job
out = batches
environment = GREETING=${greeting}, WHO=${name}
args = -c 'echo "$GREETING $WHO $GAMBAR_OUT $GAMBAR_REPLICA/$GAMBAR_REPLICAS"'
[dst]
command = /bin/sh
type = job
in = batches
args = -c 'echo "in=$GAMBAR_IN"'
X
gambar-run "$P" --run-dir "$TMP/r6" >"$TMP/o" 2>"$TMP/e"; rc=$?
grep -q "^src *| hello src @ipc://$TMP/r6/batches.sock 0/1" "$TMP/e" && grep -q "^dst *| in=>ipc://$TMP/r6/batches.sock" "$TMP/e" \
    && [ $rc -eq 0 ] && ok "environment, GAMBAR_OUT/GAMBAR_IN for foreign programs" || notok "environment" "rc=$rc $(cat "$TMP/e")"

# --- an optional stage that fails does not stop the pipeline
cat >"$P" <<'X'
[dash]
command = /bin/sh
optional = yes
restart = no
args = -c 'echo port busy; exit 6'
[work]
command = /bin/sh
type = job
args = -c 'sleep 0.5; echo worked'
X
gambar-run "$P" --run-dir "$TMP/r8" >"$TMP/o" 2>"$TMP/e"; rc=$?
[ $rc -eq 0 ] && grep -q "dash is optional: going on without it" "$TMP/e" && grep -q "^work *| worked" "$TMP/e" \
    && ok "optional stage fails: the pipeline goes on" || notok "optional stage" "rc=$rc $(cat "$TMP/e")"

# --- a stage's leftover background processes go with it (its process group)
printf '[bg]\ncommand = /bin/sh\ntype = job\nargs = -c "sleep 300 & echo left a sleep behind"\n' >"$P.bg"
gambar-run "$P.bg" --run-dir "$TMP/r10" >"$TMP/o" 2>"$TMP/e"; rc=$?
pg=$(awk '{print $3}' "$TMP/r10/pids")
sleep 0.2
[ $rc -eq 0 ] && ! kill -0 -- "-$pg" 2>/dev/null && ok "leftover children of a stage are killed with its group" \
    || notok "leftover children" "rc=$rc; alive in group $pg: $(ps -o pid,cmd -g "$pg" 2>/dev/null)"

# --- one gambar-run per run folder
printf '[a]\ncommand = /bin/sleep\nargs = 300\n' >"$P.l"
: >"$TMP/e"
gambar-run "$P.l" --run-dir "$TMP/r9" >"$TMP/o" 2>"$TMP/e" &
RUN=$!
wait_for "$TMP/e" "started a" 10
gambar-run "$P.l" --run-dir "$TMP/r9" >"$TMP/o2" 2>"$TMP/e2"; rc=$?
[ $rc -eq 4 ] && grep -q "run folder $TMP/r9 is in use by another gambar-run (pid $RUN)" "$TMP/e2" \
    && ok "a run folder in use is refused (exit 4, names the pid)" || notok "run folder lock" "rc=$rc $(cat "$TMP/e2")"
kill -INT $RUN; wait $RUN
[ "$(wc -l <"$TMP/r9/pids")" -eq 1 ] && ok "the refused run started nothing" || notok "the refused run started nothing"

# --- services only: the pipeline ends when they have all ended
printf '[s1]\ncommand = /bin/sh\nargs = -c "sleep 0.3"\n[s2]\ncommand = /bin/true\n' >"$P"
check_exit "services only: exit 0 when all ended" 0 gambar-run "$P" --run-dir "$TMP/r7"
rm -rf "$TMP"
