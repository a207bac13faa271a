#!/usr/bin/env bash
# it_rest: the REST API of a standalone worker (docs/rest-api.md) against
# the embedded broker: every endpoint with its success and error cases
# (exact status codes, bodies checked with jq), connectors created,
# reconfigured, paused, stopped, restarted and deleted at runtime, a FAILED
# task with its trace restarted over REST, source and sink offsets read,
# altered and reset, secrets never echoed, REST-submitted connectors kept
# across a restart, bearer-token auth, body-size and rate limits.
. "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || { echo "jq missing (make deps)"; exit 1; }

worker_conf "$T/worker.json"
jq --arg pp "$BUILD/plugins,$BUILD/tests/plugins" --arg cs "$T/connectors.json" \
  '. + {"plugin.path": $pp, "config.storage.file.filename": $cs,
        "rest.max.body.bytes": 8192, "rest.rate.limit": 0}' "$T/worker.json" >"$T/w.tmp" &&
  mv "$T/w.tmp" "$T/worker.json"

start_worker() { # log file
  rm -f "$T/rest.port"
  start_bg "$SLUICE" standalone "$T/worker.json" 2>>"$1"
  W=$LAST_PID
  wait_for 30 test -s "$T/rest.port" || { echo "worker did not start"; cat "$1"; exit 1; }
  PORT=$(cat "$T/rest.port"); U="http://127.0.0.1:$PORT"
}
# A secret the worker reads through ${env:...} (generated now, never stored).
export SL_IT_FH_TOKEN="env-$(openssl rand -hex 12)"
start_worker "$T/w1.log"

# req METHOD PATH [BODY [CONTENT-TYPE]]: sets CODE, the body in $T/body.
req() {
  local args=(-s -o "$T/body" -w '%{http_code}' -X "$1" "$U$2")
  [ $# -ge 3 ] && args+=(-H "Content-Type: ${4:-application/json}" --data-binary "$3")
  CODE=$(curl "${args[@]}" "${EXTRA[@]}")
}
EXTRA=()
# expect "description" METHOD PATH BODY STATUS JQ-FILTER: the status and a jq
# filter that must be true of the answer ("" = no body check). BODY "-" = none.
expect() {
  local d=$1 m=$2 p=$3 b=$4 st=$5 f=$6
  if [ "$b" = "-" ]; then req "$m" "$p"; else req "$m" "$p" "$b"; fi
  if [ "$CODE" != "$st" ]; then
    FAIL=$((FAIL+1)); echo "FAIL - $m $p: $d: status $CODE, expected $st: $(head -c 400 "$T/body")"; return
  fi
  if [ -n "$f" ] && ! jq -e "$f" "$T/body" >/dev/null 2>&1; then
    FAIL=$((FAIL+1)); echo "FAIL - $m $p: $d: body fails '$f': $(head -c 400 "$T/body")"; return
  fi
  PASS=$((PASS+1)); echo "ok   - $m $p: $d ($st)"
}
# run_table: one expect per line "description ~ METHOD ~ PATH ~ BODY ~ STATUS ~ JQ".
run_table() {
  local d m p b s f
  while IFS='~' read -r d m p b s f; do
    d=$(echo "$d" | sed 's/^ *//;s/ *$//'); [ -z "$d" ] && continue
    m=$(echo $m); p=$(echo $p); s=$(echo $s)
    b=$(echo "$b" | sed 's/^ *//;s/ *$//'); f=$(echo "$f" | sed 's/^ *//;s/ *$//')
    expect "$d" "$m" "$p" "$b" "$s" "$f"
  done
}
state_is() { # connector task-or-"connector" state
  req GET "/connectors/$1/status"
  if [ "$2" = connector ]; then jq -e ".connector.state == \"$3\"" "$T/body" >/dev/null
  else jq -e ".tasks[$2].state == \"$3\"" "$T/body" >/dev/null; fi
}
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
lines_at_least() { [ "$(lines "$1")" -ge "$2" ]; }
sink_committed() { # connector total
  req GET "/connectors/$1/offsets"
  [ "$(jq '[.offsets[].offset.kafka_offset] | add // 0' "$T/body")" = "$2" ]
}
E404='.error_code == 404 and .message == "HTTP 404 Not Found"'
E405='.error_code == 405 and .message == "HTTP 405 Method Not Allowed"'
E415='.error_code == 415 and .message == "HTTP 415 Unsupported Media Type"'
NF='.error_code == 404 and .message == "Connector nope not found"'
COUNTER='{"connector.class": "source-counter", "topic": "rest.t", "count": "200"}'
SINK="{\"connector.class\": \"sink-file\", \"topics\": \"rest.t\", \"file\": \"$T/out.jsonl\"}"

# --- the worker, plugins, creating connectors ----------------------------------
run_table <<TABLE
root: version, commit, cluster id            ~ GET    ~ /                 ~ - ~ 200 ~ .version == "$(cat "$ROOT/VERSION")" and (.commit | type) == "string" and (.kafka_cluster_id | type) == "string"
no connectors yet                            ~ GET    ~ /connectors       ~ - ~ 200 ~ . == []
plugins: connectors with type and version    ~ GET    ~ /connector-plugins ~ - ~ 200 ~ (map(select(.class == "source-counter" and .type == "source" and .version == "1.0.0")) | length) == 1 and (map(select(.class == "sink-file" and .type == "sink")) | length) == 1
create c1 (source)                           ~ POST   ~ /connectors       ~ {"name": "c1", "config": $COUNTER} ~ 201 ~ .name == "c1" and .type == "source" and .tasks == [{"connector": "c1", "task": 0}] and .config.name == "c1" and .config.count == "200"
create c1 again                              ~ POST   ~ /connectors       ~ {"name": "c1", "config": $COUNTER} ~ 409 ~ . == {"error_code": 409, "message": "Connector c1 already exists"}
invalid value, named                         ~ POST   ~ /connectors       ~ {"name": "bad", "config": {"connector.class": "source-counter", "count": "abc"}} ~ 400 ~ .error_code == 400 and (.message | test("'count': 'abc' is not an integer"))
unknown plugin                               ~ POST   ~ /connectors       ~ {"name": "bad", "config": {"connector.class": "nosuch"}} ~ 400 ~ .error_code == 400 and (.message | test("no plugin named 'nosuch'"))
no name                                      ~ POST   ~ /connectors       ~ {"config": $COUNTER} ~ 400 ~ . == {"error_code": 400, "message": "Connector name must be a string"}
empty name                                   ~ POST   ~ /connectors       ~ {"name": "", "config": $COUNTER} ~ 400 ~ . == {"error_code": 400, "message": "Connector name must not be empty"}
no config                                    ~ POST   ~ /connectors       ~ {"name": "x"} ~ 400 ~ . == {"error_code": 400, "message": "Connector config is missing"}
config not an object                         ~ POST   ~ /connectors       ~ {"name": "x", "config": 5} ~ 400 ~ . == {"error_code": 400, "message": "Connector config must be a JSON object"}
malformed JSON                               ~ POST   ~ /connectors       ~ {"name": ~ 400 ~ .error_code == 400 and (.message | startswith("Request body is not valid JSON"))
the refused ones were not created            ~ GET    ~ /connectors       ~ - ~ 200 ~ . == ["c1"]
create s1 (sink)                             ~ POST   ~ /connectors       ~ {"name": "s1", "config": $SINK} ~ 201 ~ .name == "s1" and .type == "sink" and .tasks == [{"connector": "s1", "task": 0}]
TABLE
req POST /connectors '{"name": "c9", "config": {}}' text/plain
check_eq "POST /connectors: a text/plain body: 415" "415 true" "$CODE $(jq "$E415" "$T/body")"
check "the records flow: 200 lines through c1 -> Kafka -> s1" wait_for 40 lines_at_least "$T/out.jsonl" 200
check "the sink commits what it wrote: 200 over its partitions" wait_for 20 sink_committed s1 200

# --- reading ---------------------------------------------------------------------
run_table <<TABLE
list                                         ~ GET ~ /connectors               ~ - ~ 200 ~ sort == ["c1", "s1"]
expand=status                                ~ GET ~ /connectors?expand=status ~ - ~ 200 ~ .c1.status.connector.state == "RUNNING" and .s1.status.type == "sink" and (.c1 | has("info") | not)
expand=info                                  ~ GET ~ /connectors?expand=info   ~ - ~ 200 ~ .s1.info.config.topics == "rest.t" and .c1.info.type == "source" and (.c1 | has("status") | not)
expand=status&expand=info                    ~ GET ~ /connectors?expand=status&expand=info ~ - ~ 200 ~ (.c1 | has("status") and has("info")) and (.s1 | has("status") and has("info"))
info                                         ~ GET ~ /connectors/c1            ~ - ~ 200 ~ .name == "c1" and .config.topic == "rest.t" and .tasks == [{"connector": "c1", "task": 0}] and .type == "source"
info of an unknown connector                 ~ GET ~ /connectors/nope          ~ - ~ 404 ~ $NF
config                                       ~ GET ~ /connectors/c1/config     ~ - ~ 200 ~ . == {"connector.class": "source-counter", "topic": "rest.t", "count": "200", "name": "c1"}
config of an unknown connector               ~ GET ~ /connectors/nope/config   ~ - ~ 404 ~ $NF
status                                       ~ GET ~ /connectors/c1/status     ~ - ~ 200 ~ . == {"name": "c1", "connector": {"state": "RUNNING", "worker_id": "127.0.0.1:$PORT"}, "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "127.0.0.1:$PORT"}], "type": "source"}
status of an unknown connector               ~ GET ~ /connectors/nope/status   ~ - ~ 404 ~ $NF
tasks                                        ~ GET ~ /connectors/c1/tasks      ~ - ~ 200 ~ length == 1 and .[0].id == {"connector": "c1", "task": 0} and .[0].config["connector.class"] == "source-counter"
tasks of an unknown connector                ~ GET ~ /connectors/nope/tasks    ~ - ~ 404 ~ $NF
task status                                  ~ GET ~ /connectors/c1/tasks/0/status ~ - ~ 200 ~ . == {"id": 0, "state": "RUNNING", "worker_id": "127.0.0.1:$PORT"}
status of a task that does not exist         ~ GET ~ /connectors/c1/tasks/5/status ~ - ~ 404 ~ . == {"error_code": 404, "message": "No status found for task c1-5"}
a task id that is not a number               ~ GET ~ /connectors/c1/tasks/x/status ~ - ~ 404 ~ .error_code == 404
task status of an unknown connector          ~ GET ~ /connectors/nope/tasks/0/status ~ - ~ 404 ~ $NF
source topics                                ~ GET ~ /connectors/c1/topics     ~ - ~ 200 ~ . == {"c1": {"topics": ["rest.t"]}}
sink topics                                  ~ GET ~ /connectors/s1/topics     ~ - ~ 200 ~ . == {"s1": {"topics": ["rest.t"]}}
topics of an unknown connector               ~ GET ~ /connectors/nope/topics   ~ - ~ 404 ~ $NF
source offsets: the last n written           ~ GET ~ /connectors/c1/offsets    ~ - ~ 200 ~ .offsets == [{"partition": {"task": 0}, "offset": {"n": 199}}]
sink offsets: per partition                  ~ GET ~ /connectors/s1/offsets    ~ - ~ 200 ~ (.offsets | length) > 0 and all(.offsets[]; (.partition.kafka_topic == "rest.t") and (.partition.kafka_partition | type) == "number" and (.offset.kafka_offset | type) == "number")
offsets of an unknown connector              ~ GET ~ /connectors/nope/offsets  ~ - ~ 404 ~ $NF
offsets may not change while running         ~ PATCH ~ /connectors/c1/offsets  ~ {"offsets": []} ~ 400 ~ .error_code == 400 and (.message | startswith("Connectors must be in the STOPPED state"))
nor be reset while running                   ~ DELETE ~ /connectors/c1/offsets ~ - ~ 400 ~ .error_code == 400 and (.message | startswith("Connectors must be in the STOPPED state"))
unknown path                                 ~ GET ~ /nothing                  ~ - ~ 404 ~ $E404
unknown connector sub-path                   ~ GET ~ /connectors/c1/nothing    ~ - ~ 404 ~ $E404
method not allowed on a collection           ~ DELETE ~ /connectors            ~ - ~ 405 ~ $E405
method not allowed on status                 ~ PUT ~ /connectors/c1/status     ~ {} ~ 405 ~ $E405
TABLE

# --- changing: pause, resume, reconfigure, patch, delete -------------------------
run_table <<TABLE
pause                                        ~ PUT ~ /connectors/c1/pause      ~ - ~ 202 ~ 
paused: connector and tasks PAUSED           ~ GET ~ /connectors/c1/status     ~ - ~ 200 ~ .connector.state == "PAUSED" and .tasks == [{"id": 0, "state": "PAUSED", "worker_id": "127.0.0.1:$PORT"}]
pause an unknown connector                   ~ PUT ~ /connectors/nope/pause    ~ - ~ 404 ~ $NF
resume                                       ~ PUT ~ /connectors/c1/resume     ~ - ~ 202 ~ 
resume an unknown connector                  ~ PUT ~ /connectors/nope/resume   ~ - ~ 404 ~ $NF
reconfigure: count 300 (200, not 201)        ~ PUT ~ /connectors/c1/config     ~ {"connector.class": "source-counter", "topic": "rest.t", "count": "300"} ~ 200 ~ .name == "c1" and .config.count == "300"
a name that differs from the URL             ~ PUT ~ /connectors/c1/config     ~ {"connector.class": "source-counter", "name": "other"} ~ 400 ~ . == {"error_code": 400, "message": "Connector name configuration (other) doesn't match connector name in the URL (c1)"}
an invalid new config is refused             ~ PUT ~ /connectors/c1/config     ~ {"connector.class": "source-counter", "count": "-1"} ~ 400 ~ .error_code == 400 and (.message | test("'count'"))
... and the old one stays                    ~ GET ~ /connectors/c1/config     ~ - ~ 200 ~ .count == "300"
PUT creates (201)                            ~ PUT ~ /connectors/c2/config     ~ {"connector.class": "source-counter", "topic": "rest.c2", "count": "5"} ~ 201 ~ .name == "c2" and .config.name == "c2"
patch: one key changed, the others kept      ~ PATCH ~ /connectors/c2/config   ~ {"batch.size": "2"} ~ 200 ~ .config == {"connector.class": "source-counter", "topic": "rest.c2", "count": "5", "name": "c2", "batch.size": "2"}
patch: null removes a key                    ~ PATCH ~ /connectors/c2/config   ~ {"batch.size": null} ~ 200 ~ (.config | has("batch.size") | not) and .config.count == "5"
patch with an invalid value                  ~ PATCH ~ /connectors/c2/config   ~ {"count": "x"} ~ 400 ~ .error_code == 400 and (.message | test("'count'"))
patch an unknown connector                   ~ PATCH ~ /connectors/nope/config ~ {"count": "1"} ~ 404 ~ $NF
delete                                       ~ DELETE ~ /connectors/c2         ~ - ~ 204 ~ 
deleted                                      ~ GET ~ /connectors/c2            ~ - ~ 404 ~ . == {"error_code": 404, "message": "Connector c2 not found"}
delete again                                 ~ DELETE ~ /connectors/c2         ~ - ~ 404 ~ . == {"error_code": 404, "message": "Connector c2 not found"}
TABLE
check "resumed: the task RUNNING again" wait_for 20 state_is c1 0 RUNNING
check "the reconfigured source goes on from its offset: 300 lines, none twice" wait_for 40 lines_at_least "$T/out.jsonl" 300
check_eq "... exactly 300 distinct records" "300 300" \
  "$(lines "$T/out.jsonl") $(jq -r '.value | tostring' "$T/out.jsonl" 2>/dev/null | sort -u | wc -l)"

# --- a FAILED task: its trace, the others unaffected, restarted over REST --------
mkdir -p "$T/gone"; rmdir "$T/gone"
run_table <<TABLE
create f1 (its file cannot be opened)        ~ POST ~ /connectors ~ {"name": "f1", "config": {"connector.class": "sink-flaky", "topics": "rest.t", "file": "$T/gone/f.txt"}} ~ 201 ~ .type == "sink"
TABLE
check "f1's task is FAILED" wait_for 20 state_is f1 0 FAILED
run_table <<TABLE
FAILED, with the error as trace              ~ GET ~ /connectors/f1/status     ~ - ~ 200 ~ .connector.state == "RUNNING" and .tasks[0].state == "FAILED" and (.tasks[0].trace | test("cannot open $T/gone/f.txt"))
task status says it too                      ~ GET ~ /connectors/f1/tasks/0/status ~ - ~ 200 ~ .state == "FAILED" and (.trace | test("cannot open"))
the other connectors are unaffected          ~ GET ~ /connectors?expand=status ~ - ~ 200 ~ .c1.status.tasks[0].state == "RUNNING" and .s1.status.tasks[0].state == "RUNNING"
restart?onlyFailed&includeTasks              ~ POST ~ /connectors/f1/restart?includeTasks=true&onlyFailed=true ~ - ~ 202 ~ .name == "f1" and (.tasks | length) == 1
restart: connector only (204)                ~ POST ~ /connectors/c1/restart    ~ - ~ 204 ~ 
restart an unknown connector                 ~ POST ~ /connectors/nope/restart  ~ - ~ 404 ~ $NF
restart a task that does not exist           ~ POST ~ /connectors/f1/tasks/3/restart ~ - ~ 404 ~ . == {"error_code": 404, "message": "Task f1-3 not found"}
TABLE
mkdir -p "$T/gone"
expect "restart the failed task" POST /connectors/f1/tasks/0/restart - 204 ""
check "after its restart the task is RUNNING" wait_for 20 state_is f1 0 RUNNING

# --- stop and offsets ----------------------------------------------------------------
run_table <<TABLE
stop c1                                      ~ PUT ~ /connectors/c1/stop       ~ - ~ 202 ~ 
stopped: no tasks                            ~ GET ~ /connectors/c1/status     ~ - ~ 200 ~ .connector.state == "STOPPED" and .tasks == []
info of a stopped connector                  ~ GET ~ /connectors/c1            ~ - ~ 200 ~ .tasks == []
stop an unknown connector                    ~ PUT ~ /connectors/nope/stop     ~ - ~ 404 ~ $NF
offsets with a bad shape                     ~ PATCH ~ /connectors/c1/offsets  ~ {"offsets": [{"partition": 1, "offset": {}}]} ~ 400 ~ .error_code == 400 and (.message | test("offsets\\\\[0\\\\]"))
no offsets array                             ~ PATCH ~ /connectors/c1/offsets  ~ {} ~ 400 ~ .error_code == 400
alter a source offset                        ~ PATCH ~ /connectors/c1/offsets  ~ {"offsets": [{"partition": {"task": 0}, "offset": {"n": 249}}]} ~ 200 ~ . == {"message": "The offsets for this connector have been altered successfully"}
... read back                                ~ GET ~ /connectors/c1/offsets    ~ - ~ 200 ~ .offsets == [{"partition": {"task": 0}, "offset": {"n": 249}}]
reset source offsets                         ~ DELETE ~ /connectors/c1/offsets ~ - ~ 200 ~ . == {"message": "The offsets for this connector have been reset successfully"}
... none left                                ~ GET ~ /connectors/c1/offsets    ~ - ~ 200 ~ .offsets == []
stop s1                                      ~ PUT ~ /connectors/s1/stop       ~ - ~ 202 ~ 
a sink offset with a bad shape               ~ PATCH ~ /connectors/s1/offsets  ~ {"offsets": [{"partition": {"kafka_topic": "rest.t"}, "offset": {"kafka_offset": 1}}]} ~ 400 ~ .error_code == 400 and (.message | test("kafka_partition"))
TABLE
# A sink's offsets are committed by joining its group (seconds): meanwhile
# other requests are answered (a thread per connection).
curl -s -o "$T/patch.body" -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' \
  "$U/connectors/s1/offsets" --data-binary \
  '{"offsets": [{"partition": {"kafka_topic": "rest.t", "kafka_partition": 0}, "offset": {"kafka_offset": 1}}]}' \
  >"$T/patch.code" &
PATCH_PID=$!
sleep 0.5
expect "answered while a sink's offsets are being altered" GET /connectors/c1/status - 200 '.connector.state == "STOPPED"'
check "... and the alteration was still under way then" kill -0 "$PATCH_PID"
wait "$PATCH_PID"
check_eq "alter a sink offset: 200 and the message" \
  '200 {"message":"The offsets for this connector have been altered successfully"}' \
  "$(cat "$T/patch.code") $(cat "$T/patch.body")"
run_table <<TABLE
... read back                                ~ GET ~ /connectors/s1/offsets    ~ - ~ 200 ~ (.offsets[] | select(.partition.kafka_partition == 0) | .offset.kafka_offset) == 1
reset sink offsets: every partition to 0     ~ DELETE ~ /connectors/s1/offsets ~ - ~ 200 ~ . == {"message": "The offsets for this connector have been reset successfully"}
... read back                                ~ GET ~ /connectors/s1/offsets    ~ - ~ 200 ~ (.offsets | length) > 0 and all(.offsets[]; .offset.kafka_offset == 0)
topics reset                                 ~ PUT ~ /connectors/s1/topics/reset ~ - ~ 202 ~ 
... empty                                    ~ GET ~ /connectors/s1/topics     ~ - ~ 200 ~ . == {"s1": {"topics": []}}
TABLE

# --- validation, loggers --------------------------------------------------------------
run_table <<TABLE
validate: one error, on its key              ~ PUT ~ /connector-plugins/source-counter/config/validate ~ {"count": "abc"} ~ 200 ~ .name == "source-counter" and .error_count == 1 and (.configs[] | select(.value.name == "count") | .value.errors | length) == 1 and (.configs[] | select(.value.name == "count") | .definition.type) == "LONG"
validate: a valid config                     ~ PUT ~ /connector-plugins/source-counter/config/validate ~ {"count": "5", "topic": "x"} ~ 200 ~ .error_count == 0 and (.groups | index("Common")) != null
validate: a sink needs topics                ~ PUT ~ /connector-plugins/sink-file/config/validate ~ {"file": "/tmp/x"} ~ 200 ~ .error_count == 1 and (.configs[] | select(.value.name == "topics") | .value.errors[0] | test("topics"))
validate an unknown plugin                   ~ PUT ~ /connector-plugins/nosuch/config/validate ~ {} ~ 404 ~ . == {"error_code": 404, "message": "Connector plugin nosuch not found"}
validate: class differs from the URL         ~ PUT ~ /connector-plugins/sink-file/config/validate ~ {"connector.class": "source-counter"} ~ 400 ~ .error_code == 400
loggers: the root level                      ~ GET ~ /admin/loggers            ~ - ~ 200 ~ . == {"root": {"level": "INFO"}}
set a component's level                      ~ PUT ~ /admin/loggers/rest       ~ {"level": "DEBUG"} ~ 200 ~ . == ["rest"]
... read back                                ~ GET ~ /admin/loggers/rest       ~ - ~ 200 ~ . == {"level": "DEBUG"}
an unset component has the root level        ~ GET ~ /admin/loggers/other      ~ - ~ 200 ~ . == {"level": "INFO"}
an unknown level                             ~ PUT ~ /admin/loggers/rest       ~ {"level": "LOUD"} ~ 400 ~ . == {"error_code": 400, "message": "Invalid level 'LOUD', must be one of ERROR, WARN, INFO, DEBUG"}
no level                                     ~ PUT ~ /admin/loggers/rest       ~ {} ~ 400 ~ . == {"error_code": 400, "message": "Desired 'level' parameter was not specified in request."}
component worker to ERROR                    ~ PUT ~ /admin/loggers/worker     ~ {"level": "error"} ~ 200 ~ . == ["worker"]
... listed                                   ~ GET ~ /admin/loggers            ~ - ~ 200 ~ . == {"root": {"level": "INFO"}, "rest": {"level": "DEBUG"}, "worker": {"level": "ERROR"}}
create c3 while worker logs only errors      ~ PUT ~ /connectors/c3/config     ~ {"connector.class": "source-counter", "topic": "rest.c3", "count": "1"} ~ 201 ~
component worker back to INFO                ~ PUT ~ /admin/loggers/worker     ~ {"level": "INFO"} ~ 200 ~ . == ["worker"]
create c4                                    ~ PUT ~ /connectors/c4/config     ~ {"connector.class": "source-counter", "topic": "rest.c4", "count": "1"} ~ 201 ~
delete c3                                    ~ DELETE ~ /connectors/c3         ~ - ~ 204 ~
delete c4                                    ~ DELETE ~ /connectors/c4         ~ - ~ 204 ~
TABLE
check "per-component level: worker's INFO line for c4 is logged" grep -q "\[worker\] connector c4 created" "$T/w1.log"
check "... and not the one for c3 (worker was at ERROR)" bash -c "! grep -q 'connector c3 created' '$T/w1.log'"
check "... other components kept logging INFO meanwhile" grep -q "\[c3\] started 1 source task" "$T/w1.log"

# --- metrics: every refusal above is counted ------------------------------------
curl -s "$U/metrics" >"$T/metrics"
check "GET /metrics: Prometheus text with the REST counters" grep -q '^# TYPE sluice_rest_errors_total counter' "$T/metrics"
check "... errors counted (> 30 answers >= 400 so far)" \
  awk '/^sluice_rest_errors_total/ {exit !($2 > 30)}' "$T/metrics"
check "... and the tasks' own metrics (records c1 acked)" grep -q 'sluice_source_records_acked_total{connector="c1",task="0"}' "$T/metrics"

# --- limits ------------------------------------------------------------------------------
big=$(head -c 9000 /dev/zero | tr '\0' 'a')
expect "a body over rest.max.body.bytes" POST /connectors "{\"name\": \"big\", \"config\": {\"x\": \"$big\"}}" 413 \
  '.error_code == 413 and (.message | test("rest.max.body.bytes"))'

# --- secrets ---------------------------------------------------------------------------------
TOKEN="tok-$(openssl rand -hex 12)"
FH='"connector.class": "source-finnhub", "finnhub.url": "ws://127.0.0.1:9", "finnhub.symbols": "AAPL", "topic": "rest.fh"'
run_table <<TABLE
create with a secret in clear                ~ POST ~ /connectors ~ {"name": "fh1", "config": {$FH, "finnhub.token": "$TOKEN"}} ~ 201 ~ .config["finnhub.token"] == "[hidden]"
create with a secret from a provider         ~ POST ~ /connectors ~ {"name": "fh2", "config": {$FH, "finnhub.token": "\${env:SL_IT_FH_TOKEN}"}} ~ 201 ~ .config["finnhub.token"] == "\${env:SL_IT_FH_TOKEN}"
config: hidden                               ~ GET ~ /connectors/fh1/config ~ - ~ 200 ~ .["finnhub.token"] == "[hidden]"
tasks: hidden                                ~ GET ~ /connectors/fh1/tasks  ~ - ~ 200 ~ .[0].config["finnhub.token"] == "[hidden]"
validate: hidden                             ~ PUT ~ /connector-plugins/source-finnhub/config/validate ~ {$FH, "finnhub.token": "$TOKEN"} ~ 200 ~ (.configs[] | select(.value.name == "finnhub.token") | .value.value) == "[hidden]"
TABLE
req GET /connectors/fh1/config; jq '.topic = "rest.fh2"' "$T/body" >"$T/fh1.json"
expect "PUT back what GET answered, [hidden] included" PUT /connectors/fh1/config "$(cat "$T/fh1.json")" 200 \
  '.config.topic == "rest.fh2" and .config["finnhub.token"] == "[hidden]"'
check_eq "... the secret itself is kept, not replaced by [hidden]" "$TOKEN" \
  "$(jq -r '.fh1.config["finnhub.token"]' "$T/connectors.json")"
for p in /connectors/fh1 /connectors/fh1/config /connectors/fh2/config /connectors/fh1/tasks "/connectors?expand=info&expand=status"; do
  req GET "$p"; cat "$T/body" >>"$T/all-answers"
done
check "no answer holds either secret in clear" bash -c "! grep -q -e '$TOKEN' -e '$SL_IT_FH_TOKEN' '$T/all-answers'"
check "nor does the log" bash -c "! grep -q -e '$TOKEN' -e '$SL_IT_FH_TOKEN' '$T/w1.log'"
expect "stop fh1 (no need to reconnect forever)" PUT /connectors/fh1/stop - 202 ""
expect "pause fh2" PUT /connectors/fh2/pause - 202 ""

# --- persistence across a restart -------------------------------------------------------------
stop_worker "$W"
check_eq "SIGTERM: exit 0" 0 "$STOP_RC"
check_eq "the connector file is private (0600)" 600 "$(stat -c %a "$T/connectors.json")"
check_eq "it holds the REST connectors, deleted ones gone" "c1 f1 fh1 fh2 s1" "$(jq -r 'keys | join(" ")' "$T/connectors.json")"
start_worker "$T/w2.log"
run_table <<TABLE
after a restart: the same connectors         ~ GET ~ /connectors ~ - ~ 200 ~ sort == ["c1", "f1", "fh1", "fh2", "s1"]
... with their configs                       ~ GET ~ /connectors/c1/config ~ - ~ 200 ~ .count == "300" and .topic == "rest.t"
... and target states                        ~ GET ~ /connectors?expand=status ~ - ~ 200 ~ .c1.status.connector.state == "STOPPED" and .fh1.status.connector.state == "STOPPED" and .fh2.status.connector.state == "PAUSED" and .f1.status.connector.state == "RUNNING"
... secrets still hidden                     ~ GET ~ /connectors/fh1/config ~ - ~ 200 ~ .["finnhub.token"] == "[hidden]"
TABLE
check "the restarted worker runs f1's task" wait_for 30 state_is f1 0 RUNNING

# --- auth and rate limit: a second worker on the same broker ------------------------------------
AUTH=$(openssl rand -hex 16)
BS=$(cat "$T/bootstrap")
cat >"$T/worker2.json" <<JSON
{"bootstrap.servers": "$BS", "plugin.path": "$BUILD/plugins", "schemas.path": "$ROOT/schemas",
 "offset.storage.file.filename": "$T/offsets2.json", "rest.port": 0, "rest.port.file": "$T/rest2.port",
 "rest.auth.token": "$AUTH", "rest.rate.limit": 5}
JSON
start_bg "$SLUICE" standalone "$T/worker2.json" 2>"$T/auth.log"
W2=$LAST_PID
check "worker 2 (no connector files) starts" wait_for 30 test -s "$T/rest2.port"
U="http://127.0.0.1:$(cat "$T/rest2.port")"
expect "no token" GET /connectors - 401 '.error_code == 401'
EXTRA=(-H "Authorization: Bearer wrong")
expect "a wrong token" GET /connectors - 401 '.error_code == 401'
EXTRA=(-H "Authorization: Bearer $AUTH")
expect "the token" GET /connectors - 200 '. == []'
# One curl, one connection, 15 requests back to back: a few ms in all.
urls=(); for i in $(seq 1 15); do urls+=(-o /dev/null "$U/connectors"); done
codes=$(curl -s -w '%{http_code} ' -H "Authorization: Bearer $AUTH" "${urls[@]}")
check "15 requests at once over a limit of 5/s: the first served, some 429 ($codes)" \
  bash -c "echo '$codes' | grep -q '^200 .*429'"
check "... with the error body" bash -c "curl -s -H 'Authorization: Bearer $AUTH' $(printf "$U/connectors %.0s" 1 2 3 4 5 6 7 8) | grep -q '{\"error_code\":429,'"
sleep 1.2
expect "after a second, served again" GET /connectors - 200 '. == []'
EXTRA=()
check "the auth token is never logged" bash -c "! grep -q '$AUTH' '$T/auth.log'"
stop_worker "$W2"
check_eq "worker 2: SIGTERM, exit 0" 0 "$STOP_RC"
stop_worker "$W"
check_eq "restarted worker: SIGTERM, exit 0" 0 "$STOP_RC"
check "no sanitizer reports" bash -c "! grep -q -e 'ERROR: AddressSanitizer' -e 'runtime error:' -e 'LeakSanitizer' '$T/w1.log' '$T/w2.log' '$T/auth.log'"
finish
