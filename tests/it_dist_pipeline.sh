#!/usr/bin/env bash
# it_dist_pipeline: THE pipeline (source-finnhub -> Kafka -> sink-snowflake,
# detailed table, and sink-snowflake + transform-window, summary table) on
# three `sluice distributed` workers sharing one group.id, on
# build/tools/kafka-embedded, build/tools/finnhub-replay and
# build/tools/snowflake-emulator. The shipped configs (conf/worker.json via
# tools/fast-group-conf.sh, conf/connectors/*.json) are POSTed to worker 1,
# configured through the environment only; a config PUT on worker 2 is read
# by workers 1 and 3. Mid-stream, a worker running a Snowflake sink (but not
# the source: Finnhub has no replay, trades a killed source had received
# are gone) is killed -9; its connector moves to a live worker; at the end
# the detailed table holds every trade the replay server sent exactly once,
# field by field, and the summary table equals the recomputation.
#
# The detailed sink runs with tasks.max 3, its tasks spread over the
# workers one by one. Which worker is killed: one running a task of the
# detailed sink when the source runs elsewhere, else the summary sink's. Connector X runs on the member
# assigned partition hash(X) % 32 of the assign topic (cooperative-sticky:
# which member is chance); when all three connectors share one worker (about
# 1 run in 9) that worker is killed, and "every trade exactly once" is then
# counted against the trades that reached Kafka (the source is at most once
# across a crash, docs/finnhub.md), the sinks still exactly once; the
# summary is then shown, not asserted (see below).
#   DIST_PIPELINE_KILL_SOURCE=1  take that branch whatever runs where
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dist_lib.sh"
command -v jq >/dev/null || { echo "jq missing (make deps)"; exit 1; }
PY=/usr/bin/python3
EMU=$BUILD/tools/snowflake-emulator
N=${DIST_PIPELINE_RECORDS:-1500}
cd "$ROOT"
[ -f "$BUILD/plugins/transform-window.so" ] || { echo "transform-window is not built"; exit 1; }
. "$ROOT/tests/pipeline_lib.sh"
export SLUICE_PLUGIN_PATH=$BUILD/plugins SLUICE_STATUS_INTERVAL_MS=1000 SLUICE_REST_PORT=0
export SLUICE_WINDOW_SIZE_MS=2000 SLUICE_WINDOW_LATENESS_MS=500

start_bg "$BUILD/tools/kafka-embedded" --brokers 1 --bootstrap-file "$T/bootstrap" \
  --topic trades:3:1 --topic trades.dlq:1:1 --topic trades.snowflake.dlq:1:1 --topic trades.summary.dlq:1:1 \
  --topic pipe.configs:1 --topic pipe.status:3 --topic pipe.offsets:1 --topic pipe-g-assign:32 >"$T/kafka.log" 2>&1
start_bg "$EMU" serve --port 0 --port-file "$T/sf.url" --db "$T/sf.sqlite" --account ITACCT --user LOADER \
  --public-key "$T/rsa_key.pub" --log-file "$T/emu.log" >"$T/emu.out" 2>&1
start_bg "$BUILD/tools/finnhub-replay" --token-file "$T/token" --synthetic --seed 7 --start-ms now \
  --count $N --rate 100 --port 0 --port-file "$T/fh.url" --sent-file "$T/sent.jsonl" \
  --log-file "$T/replay.log" >"$T/replay.out" 2>&1
check "stand-ins start (kafka-embedded, snowflake-emulator, finnhub-replay)" \
  wait_for 20 test -s "$T/bootstrap" -a -s "$T/sf.url" -a -s "$T/fh.url"
export SLUICE_BOOTSTRAP_SERVERS=$(cat "$T/bootstrap") sf_url=$(cat "$T/sf.url") SLUICE_FINNHUB_URL=$(cat "$T/fh.url")

# conf/worker.json as shipped (group.id and the state topics from the
# environment), with fast group timeouts
export SLUICE_GROUP_ID=pipe-g SLUICE_CONFIG_TOPIC=pipe.configs SLUICE_STATUS_TOPIC=pipe.status \
  SLUICE_OFFSET_TOPIC=pipe.offsets
check "worker config" "$ROOT/tools/fast-group-conf.sh" "$ROOT/conf/worker.json" "$T/worker.json"

declare -A PID # worker i -> its pid (stop_survivors)
start_worker() { # i
  SLUICE_OFFSETS_FILE=$T/w$1.offsets SLUICE_REST_PORT_FILE=$T/w$1.port SLUICE_METRICS_FILE=$T/w$1.prom \
    SLUICE_CONFIG_STORAGE_FILE=$T/w$1.connectors.json \
    start_bg "$SLUICE" distributed "$T/worker.json" 2>"$T/w$1.log"
  PID[$1]=$LAST_PID
}
for i in 1 2 3; do start_worker $i; done
for i in 1 2 3; do
  wait_for 30 test -s "$T/w$i.port" || { echo "worker $i did not start"; cat "$T/w$i.log"; exit 1; }
  URL[$i]="http://127.0.0.1:$(cat "$T/w$i.port")"
done
check "three distributed workers serve REST" true

is_running() { [ -n "$(running_on "$@")" ]; }

# The sinks first, so trades flow as soon as the source connects. The
# detailed sink with tasks.max 3 (one task per partition of trades): its
# tasks are spread over the workers one by one.
jq -c '.config["tasks.max"] = "3"' conf/connectors/snowflake-trades.json >"$T/snowflake-trades.json"
jq -c . conf/connectors/snowflake-summary.json >"$T/snowflake-summary.json"
for c in snowflake-trades snowflake-summary; do
  req 1 POST /connectors "$(cat "$T/$c.json")"
  check_eq "POST $c on worker 1" 201 "$CODE"
done
for c in snowflake-trades snowflake-summary; do check "$c RUNNING" wait_for 40 is_running $c; done
req 1 POST /connectors "$(cat conf/connectors/finnhub.json)"
check_eq "POST finnhub-trades on worker 1" 201 "$CODE"
check "finnhub-trades RUNNING" wait_for 40 is_running finnhub-trades

q() { "$EMU" query --db "$T/sf.sqlite" --database ITDB --schema RAW "$1" 2>>"$T/query.err" | tail -n +2; }
rows() { q "SELECT COUNT(*) FROM $1" | grep -E '^[0-9]+$' || echo 0; }
rows_at_least() { [ "$(rows "$1")" -ge "$2" ]; }
check "rows flowing into TRADES_DETAILED" wait_for 40 rows_at_least TRADES_DETAILED 100
check "windows flowing into TRADES_SUMMARY" wait_for 40 rows_at_least TRADES_SUMMARY 1

# A config PUT on worker 2 reaches workers 1 and 3 (the summary sink's
# latest.records.max: a change its output does not depend on).
jq -c '.config + {"latest.records.max": "500"}' conf/connectors/snowflake-summary.json >"$T/summary-put.json"
req 2 PUT /connectors/snowflake-summary/config "$(cat "$T/summary-put.json")"
check_eq "PUT snowflake-summary/config on worker 2" 200 "$CODE"
sees() { req "$1" GET /connectors/snowflake-summary/config && [ "$CODE" = 200 ] &&
         jq -e '."latest.records.max" == "500"' "$T/body" >/dev/null; }
for i in 1 3; do check "worker $i sees the PUT made on worker 2" wait_for 20 sees $i; done

# Kill -9 a worker running a Snowflake sink (not the source, if it can), mid-stream.
# (the PUT restarted the summary sink: its status may flicker once)
owners_known() {
  src=$(running_on finnhub-trades) det=$(running_on snowflake-trades) sum=$(running_on snowflake-summary)
  [ -n "$src" ] && [ -n "$det" ] && [ -n "$sum" ]
}
check "every connector RUNNING after the PUT" wait_for 40 owners_known
req 1 GET /connectors/snowflake-trades/status
det_tasks=$(jq -r '[.tasks[].worker_id] | join(" ")' "$T/body")
echo "# owners: finnhub-trades=$src snowflake-trades=$det (tasks 0-2 on: $det_tasks) snowflake-summary=$sum"
# the victim: a worker running a task of the detailed sink but not the
# source, else the summary sink's, else the source's
victim_c=snowflake-summary victim_id=$sum
for id in $det_tasks; do [ "$id" != "$src" ] && victim_c=snowflake-trades victim_id=$id && break; done
[ "$victim_c" = snowflake-summary ] && [ "$sum" = "$src" ] && victim_id=$src
# DIST_PIPELINE_KILL_SOURCE=1: kill the source's worker whatever runs
# where (the branch taken by chance when all three share a worker)
[ "${DIST_PIPELINE_KILL_SOURCE:-0}" = 1 ] && victim_id=$src
with_source=0
[ "$victim_id" = "$src" ] && with_source=1 victim_c=finnhub-trades
victim=0
for i in 1 2 3; do [ "${URL[$i]}" = "http://$victim_id" ] && victim=$i; done
check "a worker runs $victim_c (worker $victim, $victim_id)" test "$victim" -gt 0
[ $with_source = 1 ] && echo "# all three connectors run on one worker: the source dies with it"
sent_now=$(wc -l <"$T/sent.jsonl")
check "mid-stream: $sent_now of $N trades sent" test "$sent_now" -lt "$N"
kill -KILL "${PID[$victim]}"
wait "${PID[$victim]}" 2>/dev/null
echo "# killed worker $victim ($victim_c) at $(rows TRADES_DETAILED) detailed rows, $(rows TRADES_SUMMARY) windows, $sent_now trades sent"
other=1; [ "$victim" = 1 ] && other=2
moved() { [ -n "$(running_on "$victim_c" "$other")" ] && jq -e --arg v "$victim_id" \
  '.connector.worker_id != $v and all(.tasks[]; .worker_id != $v)' "$T/body" >/dev/null; }
check "$victim_c (its instance and every task) moves to live workers" wait_for 60 moved
req "$other" GET /connectors/snowflake-trades/status
echo "# after the kill: snowflake-trades tasks on: $(jq -r '[.tasks[].worker_id] | join(" ")' "$T/body")"
check "the source runs again" wait_for 40 is_running finnhub-trades "$other"

sent_all() { [ "$(wc -l <"$T/sent.jsonl")" -ge $N ]; }
check "the replay server sent all $N trades" wait_for 60 sent_all
in_kafka() { kcat -b "$SLUICE_BOOTSTRAP_SERVERS" -C -t trades -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l; }
reached=sent truth=$T/sent.jsonl
if [ $with_source = 1 ]; then
  sleep 2 # the moved source's last produce acks
  reached=$(in_kafka) truth=$T/reached.jsonl
fi
counts() {
  q "SELECT SYMBOL, PRICE, VOLUME, TRADE_TIMESTAMP, KAFKA_PARTITION, KAFKA_OFFSET FROM TRADES_DETAILED" >"$T/detailed.tsv"
  FIG=$($PY tests/faults_count.py "$T/sent.jsonl" "$T/detailed.tsv" "$reached" "$T/reached.jsonl")
  case $FIG in *" lost=0 "*) return 0 ;; esac
  return 1
}
check "every sent trade reaches TRADES_DETAILED" wait_for 60 counts
summary_ok() {
  "$EMU" query --db "$T/sf.sqlite" --database ITDB --schema RAW "SELECT * FROM TRADES_SUMMARY" \
    >"$T/summary.tsv" 2>>"$T/query.err" || return 1
  $PY tests/summary_check.py "$truth" "$T/summary.tsv" conf/connectors/snowflake-summary.json >"$T/summary.diff" 2>&1
}
# When the source's worker was killed, the summary is shown, not asserted:
# the source is down for the session timeout (6 s), longer than the
# summary's window.idle.timeout.ms (5 s), so transform-window closes the
# open windows before the rest of their trades arrive (late: to the DLQ) -
# a finding of transform-window, like the kafka-down one in docs/faults.md.
[ $with_source = 0 ] && check "the summary table equals the recomputation from the sent trades" wait_for 60 summary_ok
sleep 1 # anything still in flight lands now, and would show as a duplicate
stop_survivors
counts
echo "# detailed table: $FIG"
if [ $with_source = 0 ]; then
  check_eq "TRADES_DETAILED: every sent trade exactly once" "checked=$N lost=0 duplicated=0 unexpected=0" "$FIG"
  q "SELECT SYMBOL, PRICE, VOLUME, TRADE_TIMESTAMP, TRADE_CONDITIONS, TRADE_ID, KAFKA_PARTITION, KAFKA_OFFSET FROM TRADES_DETAILED" >"$T/detailed-all.tsv"
  check "TRADES_DETAILED is the sent trades, field by field" $PY tests/detailed_check.py "$T/sent.jsonl" "$T/detailed-all.tsv" $N
else
  check_eq "TRADES_DETAILED: every trade in Kafka exactly once" "checked=$reached lost=0 duplicated=0 unexpected=0" "$FIG"
fi
rc=0; summary_ok || rc=$?
sed 's/^/  /' "$T/summary.diff" | tail -3
if [ $with_source = 0 ]; then
  check_eq "the summary table still equals the recomputation after the workers stopped" 0 "$rc"
else
  echo "# NOT ASSERTED (source's worker killed): summary $(tail -1 "$T/summary.diff")"
fi

check "no passphrase or token in any log" bash -c \
  "! grep -rqF -e '$sf_pem_pass' -e '$d2b_token_finnhubio' $T/*.log"
check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/*.log"
finish
