#!/usr/bin/env bash
# it_distributed: three `sluice distributed` workers with one group.id on
# an embedded Kafka (its own process): connectors submitted over REST to
# worker 1 are visible on workers 2 and 3 (config topic), spread over the
# workers (group membership on the assign topic, status topic), and when the
# worker running a sink is killed (-9) its connector moves to another worker
# and the sink file holds every record of the topic exactly once. Verbs on
# the running instance (restart, task restart, offsets, topics) sent to a
# worker that does not run the connector are forwarded to the one that does
# (a table of status codes and bodies), with the client's bearer token.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dist_lib.sh"
command -v jq >/dev/null || { echo "jq missing (make deps)"; exit 1; }

start_bg "$BUILD/tools/kafka-embedded" --brokers 3 --topic dist.configs:1 --topic dist.status:3 \
  --topic dist.offsets:1 --topic dist-g-assign:32 --topic dist.t:4 --topic dist.fwd:1 --bootstrap-file "$T/bootstrap"
check "kafka-embedded starts" wait_for 10 test -s "$T/bootstrap"
BS=$(cat "$T/bootstrap")

# every worker requires a bearer token: forwarded requests carry the client's
TOKEN=$(openssl rand -hex 16)
REQ_ARGS=(-H "Authorization: Bearer $TOKEN")
declare -A PID # worker i -> its pid (stop_survivors)
for i in 1 2 3; do
  mkdir -p "$T/w$i"
  worker_conf "$T/w$i/worker.json" '"group.id": "dist-g", "config.storage.topic": "dist.configs", "rest.auth.token": "'$TOKEN'",
  "status.storage.topic": "dist.status", "offset.storage.topic": "dist.offsets"'
  sed -i -e "s|\"bootstrap.servers\": \"embedded\"|\"bootstrap.servers\": \"$BS\"|" \
    -e "s|$T/rest.port|$T/w$i/rest.port|" -e "s|$T/offsets.json|$T/w$i/offsets.json|" "$T/w$i/worker.json"
  start_bg "$SLUICE" distributed "$T/w$i/worker.json" 2>"$T/w$i/log"
  PID[$i]=$LAST_PID
done
for i in 1 2 3; do
  wait_for 30 test -s "$T/w$i/rest.port" || { echo "worker $i did not start"; cat "$T/w$i/log"; exit 1; }
  URL[$i]="http://127.0.0.1:$(cat "$T/w$i/rest.port")"
done
check "three workers serve REST" true

# 3 counting tasks (each its own source partition {"task": t}), spread too
COUNTER='{"connector.class": "source-counter", "topic": "dist.t", "count": "0", "tasks.max": "3",
          "batch.size": "20", "interval.ms": "150"}'
sink() { echo "{\"connector.class\": \"sink-file\", \"topics\": \"dist.t\", \"file\": \"$T/$1.jsonl\",
  \"latest.records.max\": \"5\"}"; }

for s in sink-a sink-b sink-c; do
  req 1 PUT "/connectors/$s/config" "$(sink $s)"
  check_eq "PUT $s on worker 1" 201 "$CODE"
done
# spread: 8 tasks (one file each), spread over the workers one by one
req 1 PUT /connectors/spread/config "{\"connector.class\": \"sink-file\", \"topics\": \"dist.t\",
  \"file\": \"$T/spread-{task}.jsonl\", \"tasks.max\": \"8\"}"
check_eq "PUT spread (tasks.max 8) on worker 1" 201 "$CODE"
req 1 GET /connectors/sink-a/config
check "GET on worker 1 right after its PUT sees it" jqt ".file == \"$T/sink-a.jsonl\"" "$T/body"
req 1 POST /connectors '{"name": "sink-a", "config": {"connector.class": "source-counter"}}'
check_eq "POST of an existing name is refused" 409 "$CODE"
req 2 PUT /connectors/bad/config '{"connector.class": "source-counter", "count": "-1"}'
check_eq "an invalid config is refused before it reaches the config topic" 400 "$CODE"

# A config change on worker 1 is read by workers 2 and 3.
req 1 PUT /connectors/sink-c/config "$(sink sink-c2)"
check_eq "PUT changed sink-c on worker 1" 200 "$CODE"
sees() { req "$1" GET /connectors/sink-c/config && [ "$CODE" = 200 ] &&
         jq -e ".file == \"$T/sink-c2.jsonl\"" "$T/body" >/dev/null; }
for i in 2 3; do check "worker $i sees the PUT made on worker 1" wait_for 20 sees $i; done
# The counter last, so that it still emits when a worker is killed.
req 1 POST /connectors "{\"name\": \"counter\", \"config\": $COUNTER}"
check_eq "POST counter on worker 1" 201 "$CODE"
listed() { req "$1" GET /connectors && [ "$(jq -c 'sort' "$T/body")" = '["counter","sink-a","sink-b","sink-c","spread"]' ]; }
check "worker 3 lists the five connectors" wait_for 20 listed 3
req 3 GET /connectors/bad
check_eq "the refused connector is nowhere" 404 "$CODE"

# Every connector runs somewhere, spread over the workers.
ask=2 # the worker statuses are read on (a live one after the kill)
owner() { running_on "$1" $ask; } # connector -> worker_id when RUNNING
all_running() { for c in counter sink-a sink-b sink-c spread; do [ -n "$(owner $c)" ] || return 1; done; }
check "all connectors RUNNING (status read on worker 2)" wait_for 40 all_running
ids=$(for c in counter sink-a sink-b sink-c; do owner $c; done | sort -u)
echo "owners: $(echo $ids)"
check "connectors are spread over more than one worker" test "$(echo "$ids" | wc -l)" -ge 2
for id in $ids; do
  check "worker_id $id is one of the three workers" \
    grep -qx "http://$id" <(printf '%s\n' "${URL[@]}" | sed 's|127.0.0.1|127.0.0.1|')
done

# spread's tasks, one by one: each runs on some worker, the status merges
# the records of all of them, and verbs on a task go to its worker.
url_index() { local i; for i in 1 2 3; do [ "${URL[$i]}" = "http://$1" ] && echo $i; done; }
req 2 GET /connectors/spread/status
cp "$T/body" "$T/spread-status"
spread_ids=$(jq -r '.tasks[].worker_id' "$T/spread-status" | sort -u)
echo "spread's tasks run on: $(echo $spread_ids)"
check "spread: 8 tasks in its status, ids 0..7" jqt '[.tasks[].id] == [0,1,2,3,4,5,6,7]' "$T/spread-status"
check "spread: its tasks run on more than one worker" test "$(echo "$spread_ids" | wc -l)" -ge 2
for id in $spread_ids; do check "  ... $id is one of the three workers" test -n "$(url_index "$id")"; done
spread_owner=$(jq -r '.connector.worker_id' "$T/spread-status")
# a task on a worker other than the instance's, asked on a third worker
rt=$(jq -r --arg o "$spread_owner" '[.tasks[] | select(.worker_id != $o)][0].id' "$T/spread-status")
rt_id=$(jq -r --argjson t "$rt" '.tasks[$t].worker_id' "$T/spread-status")
ri=$(url_index "$rt_id"); ai=1; [ "$ai" = "$ri" ] && ai=2; [ "$ai" = "$(url_index "$spread_owner")" ] && ai=3
[ "$ai" = "$ri" ] && ai=1
check "task $rt of spread runs on worker $ri ($rt_id), not the instance's ($spread_owner)" test -n "$ri"
req $ai GET "/connectors/spread/tasks/$rt/status"
check_eq "GET spread/tasks/$rt/status on worker $ai" 200 "$CODE"
check "  ... names the worker it runs on" jqt --arg id "$rt_id" '.state == "RUNNING" and .worker_id == $id' "$T/body"
for try in $(seq 1 40); do # 409 "...; retry" while records travel
  req $ai POST "/connectors/spread/tasks/$rt/restart"
  [ "$CODE" = 409 ] || break; sleep 0.5
done
check_eq "POST spread/tasks/$rt/restart on worker $ai: forwarded to worker $ri" 204 "$CODE"
check "  ... worker $ri restarted it" wait_for 10 grep -q "\[spread\] restarting task $rt\b" "$T/w$ri/log"
others_quiet() { local i; for i in 1 2 3; do
  [ "$i" != "$ri" ] && grep -q "\[spread\] restarting task $rt\b" "$T/w$i/log" && return 1; done; return 0; }
check "  ... and no other worker did" others_quiet
# restart with tasks: the instance's worker restarts its own, and the
# others restart theirs on the request it writes to the config topic
for try in $(seq 1 40); do
  req $ai POST "/connectors/spread/restart?includeTasks=true"
  [ "$CODE" = 409 ] || break; sleep 0.5
done
check_eq "POST spread/restart?includeTasks=true: 202" 202 "$CODE"
check "  ... with the status of all 8 tasks" jqt '.name == "spread" and (.tasks | length) == 8' "$T/body"
check "  ... worker $ri restarts task $rt on the restart request" \
  wait_for 10 grep -q "task spread-$rt restarted (restart request from $spread_owner)" "$T/w$ri/log"
spread_on_all() { running_on spread $ask >/dev/null && req $ask GET /connectors/spread/status &&
  jq -e 'all(.tasks[]; .state == "RUNNING")' "$T/body" >/dev/null; }
check "spread: every task RUNNING again" wait_for 30 spread_on_all

# Verbs on the running instance (restart, task restart, offsets, topics)
# sent to a worker that does not run the connector: forwarded to the one
# that does (its REST URL is in its status record), whose status code and
# body come back. A table: description | method | path | body | code | jq.
req 1 POST /connectors '{"name": "fwd", "config": {"connector.class": "source-counter", "topic": "dist.fwd",
  "count": "50", "batch.size": "10", "interval.ms": "20"}}'
check_eq "POST fwd (a counter of 50)" 201 "$CODE"
fwd_running() { [ -n "$(owner fwd)" ]; }
check "fwd RUNNING" wait_for 40 fwd_running
fwd_id=$(owner fwd)
fo=0; fn=0
for i in 1 2 3; do
  if [ "${URL[$i]}" = "http://$fwd_id" ]; then fo=$i; elif [ $fn = 0 ]; then fn=$i; fi
done
check "fwd runs on worker $fo ($fwd_id); asked on worker $fn" test $fo -gt 0 -a $fn -gt 0
fwd_stopped() { req $fn GET /connectors/fwd/status &&
  jq -e --arg id "$fwd_id" '.connector.state == "STOPPED" and .connector.worker_id == $id' "$T/body" >/dev/null; }
OFFS='{"offsets": [{"partition": {"task": 0}, "offset": {"n": 9}}]}'
STOPPED_ONLY='.message | startswith("Connectors must be in the STOPPED state before their offsets can be modified")'
while IFS='|' read -r desc method path body code filter; do
  [ -z "$desc" ] && continue
  # 409 "...; retry" is the documented transient answer while the asked
  # worker has not yet read the owner's status record (or it just moved):
  # a client retries it, so does the test (a bounded number of times)
  for try in $(seq 1 40); do
    req $fn "$method" "$path" ${body:+"$body"}
    [ "$CODE" = 409 ] && [ "$code" != 409 ] && jq -e '.message | test("retry")' "$T/body" >/dev/null 2>&1 || break
    sleep 0.5
  done
  check_eq "forwarded: $desc: status" "$code" "$CODE"
  [ -n "$filter" ] && check "forwarded: $desc: body ($filter)" jqt "$filter" "$T/body"
  [ "$method $path" = "PUT /connectors/fwd/stop" ] && check "fwd STOPPED (status on worker $fn)" wait_for 30 fwd_stopped
done <<TABLE
GET topics|GET|/connectors/fwd/topics||200|.fwd | has("topics")
task restart|POST|/connectors/fwd/tasks/0/restart||204|
task restart of a task that is not there|POST|/connectors/fwd/tasks/7/restart||404|.error_code == 404 and .message == "Task fwd-7 not found"
restart|POST|/connectors/fwd/restart||204|
restart with tasks|POST|/connectors/fwd/restart?includeTasks=true&onlyFailed=false||202|.name == "fwd" and .connector.worker_id == "$fwd_id"
PATCH offsets while running|PATCH|/connectors/fwd/offsets|$OFFS|400|$STOPPED_ONLY
DELETE offsets while running|DELETE|/connectors/fwd/offsets||400|$STOPPED_ONLY
stop (a config write: not forwarded)|PUT|/connectors/fwd/stop||202|
GET offsets|GET|/connectors/fwd/offsets||200|.offsets | length == 1
PATCH offsets|PATCH|/connectors/fwd/offsets|$OFFS|200|.message == "The offsets for this connector have been altered successfully"
GET offsets after the PATCH|GET|/connectors/fwd/offsets||200|.offsets == [{"partition": {"task": 0}, "offset": {"n": 9}}]
PATCH offsets without an array|PATCH|/connectors/fwd/offsets|{"offsets": 1}|400|.message == "The request body must hold an \"offsets\" array"
DELETE offsets|DELETE|/connectors/fwd/offsets||200|.message == "The offsets for this connector have been reset successfully"
GET offsets after the DELETE|GET|/connectors/fwd/offsets||200|.offsets == []
restart of an unknown connector (not forwarded)|POST|/connectors/nope/restart||404|.message == "Connector nope not found"
TABLE
# the reset reaches the offsets topic as a tombstone: a next owner of fwd
# does not resume from the offset the DELETE removed
fwd_offset_record() { kcat -b "$BS" -C -t dist.offsets -o beginning -e -q -f '%k\t%S\n' 2>/dev/null |
  awk -F'\t' '$1 == "[\"fwd\",{\"task\":0}]" { last = $2 } END { print last }'; }
tombstoned() { [ "$(fwd_offset_record)" = -1 ]; }
check "the DELETE of fwd's offsets is a tombstone in dist.offsets" wait_for 20 tombstoned
req $fo GET /connectors/fwd/offsets
cp "$T/body" "$T/owner-offsets"
req $fn GET /connectors/fwd/offsets
check "the forwarded answer is the owner's, byte for byte" cmp -s "$T/owner-offsets" "$T/body"
CODE=$(curl -s -o "$T/body" -w '%{http_code}' -X POST "${URL[$fn]}/connectors/fwd/restart")
check_eq "no token: 401 on the worker asked, nothing forwarded" 401 "$CODE"
CODE=$(curl -s -o "$T/body" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
  -H "X-Sluice-Forwarded-By: 127.0.0.1:1" "${URL[$fn]}/connectors/fwd/restart")
check_eq "an already forwarded request is not forwarded again: 409" 409 "$CODE"
check "  ... saying the connector is not here and may be moving" \
  jqt '.message | test("Connector fwd is not running on worker .*it may be moving: retry")' "$T/body"
req $fn DELETE /connectors/fwd
check_eq "DELETE fwd" 204 "$CODE"
# GET .../latest is answered from the sink's worker's memory: forwarded too
lid=$(owner sink-b) ln=0
for i in 1 2 3; do [ "${URL[$i]}" != "http://$lid" ] && ln=$i; done
has_latest() { req $ln GET /connectors/sink-b/latest && [ "$CODE" = 200 ] &&
  jqt '.connector == "sink-b" and (.records | length) > 0' "$T/body"; }
check "forwarded: GET sink-b/latest on worker $ln (sink-b runs on $lid): its latest records" wait_for 20 has_latest
req $ln GET /connectors/nope/latest
check_eq "GET latest of an unknown connector: 404" 404 "$CODE"

# Kill -9 the worker running sink-a, while the counter still emits.
victim_id=$(owner sink-a)
victim=0
for i in 1 2 3; do [ "${URL[$i]}" = "http://$victim_id" ] && victim=$i; done
check "the worker running sink-a is found ($victim_id)" test "$victim" -gt 0
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
wait_for 20 test "$(lines "$T/sink-a.jsonl")" -gt 0
kill -KILL "${PID[$victim]}"
echo "killed worker $victim with $(lines "$T/sink-a.jsonl") lines in sink-a"
other=1; [ "$victim" = 1 ] && other=2
ask=$other
# sink-a's status still names the dead worker (for the session timeout)
req $other POST /connectors/sink-a/restart
check_eq "restart of sink-a while its owner is dead: 409" 409 "$CODE"
check "  ... saying the owner could not be asked" \
  jqt --arg id "$victim_id" '.message | startswith("Connector sink-a runs on worker \($id), which could not be asked")' "$T/body"
moved() { local id; id=$(running_on sink-a "$other"); [ -n "$id" ] && [ "$id" != "$victim_id" ]; }
check "sink-a moves to a live worker (status)" wait_for 40 moved
check "every connector runs again" wait_for 40 all_running
spread_moved() { req $other GET /connectors/spread/status && jq -e --arg v "$victim_id" \
  '(.tasks | length) == 8 and all(.tasks[]; .state == "RUNNING" and .worker_id != $v)' "$T/body" >/dev/null; }
check "spread: its tasks on the killed worker run on live ones" wait_for 40 spread_moved

# The counter (unlimited) is stopped over REST so the topic has an end.
req "$other" PUT /connectors/counter/stop
check_eq "PUT counter/stop on worker $other" 202 "$CODE"
topic_end() { # sum over partitions of the group's committed offsets of sink-a
  req "$other" GET /connectors/sink-a/offsets 2>/dev/null
  jq '[.offsets[].offset.kafka_offset] | add // 0' "$T/body" 2>/dev/null
}
settled() { # sink-a's lines unchanged for a while
  local a b; a=$(lines "$T/sink-a.jsonl"); sleep 2; b=$(lines "$T/sink-a.jsonl")
  [ "$a" -gt 0 ] && [ "$a" = "$b" ]
}
check "sink-a caught up" wait_for 60 settled
exact() { python3 - "$1" <<'PY'
import json, sys
seen = {}
dups = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    k = (r["partition"], r["offset"])
    dups += k in seen
    seen[k] = 1
parts = {}
for p, o in seen:
    parts.setdefault(p, []).append(o)
missing = sum(max(v) + 1 - len(v) for v in parts.values())
print(f"records={len(seen)} duplicates={dups} missing={missing}")
sys.exit(0 if dups == 0 and missing == 0 else 1)
PY
}
check "sink-a: every record exactly once across the move" exact "$T/sink-a.jsonl"
# the commit follows the lines (offset.flush.interval.ms): polled, not read once
committed_all() { [ "$(topic_end)" = "$(lines "$T/sink-a.jsonl")" ]; }
check "sink-a's committed offsets match its lines" wait_for 20 committed_all
echo "sink-a: $(lines "$T/sink-a.jsonl") lines, committed offsets sum to $(topic_end)"
for s in sink-b sink-c2; do check "$s: every record exactly once" exact "$T/$s.jsonl"; done
# spread: one file per task; a partition that moved from the killed
# worker's task to another task (another file) may repeat the records the
# killed one wrote after its last commit (sink-file keeps its position per
# file), so: none missing, every file exact on its own
spread_all() { cat "$T"/spread-*.jsonl | python3 -c '
import json, sys
seen = {(json.loads(l)["partition"], json.loads(l)["offset"]) for l in sys.stdin}
print(len(seen))'; }
spread_caught_up() { [ "$(spread_all)" = "$(lines "$T/sink-a.jsonl")" ]; }
check "spread: its files together hold every record of the topic" wait_for 30 spread_caught_up
no_dups() { python3 -c '
import json, sys
keys = [(json.loads(l)["partition"], json.loads(l)["offset"]) for l in open(sys.argv[1])]
sys.exit(len(keys) != len(set(keys)))' "$1"; }
# The counter's source offsets are in the offsets topic: wherever each of
# its tasks ran (the killed worker's moved), no n is missing and no task
# started again from 0 (n=0 once per task).
counter_ns() { python3 -c '
import json, sys
by = {}
for l in open(sys.argv[1]):
    v = json.loads(l)["value"]
    by.setdefault(v["task"], []).append(v["n"])
complete = sorted(by) == [0, 1, 2] and all(len(set(ns)) == max(ns) + 1 for ns in by.values())
print(complete, max(ns.count(0) for ns in by.values()), sum(len(ns) - len(set(ns)) for ns in by.values()))' "$1"; }
read -r complete zeros dup_n < <(counter_ns "$T/sink-a.jsonl")
echo "counter: at most $zeros record(s) with n=0 per task, $dup_n n emitted again after the move (at least once)"
check_eq "counter: three tasks, no n missing in any" True "$complete"
check_eq "counter: each task resumed from the offsets topic, never from 0 again" 1 "$zeros"

# Deleting on one worker removes it everywhere.
third=3; [ "$victim" = 3 ] && third=$((3 - other)) # a live worker, not $other
req $third DELETE /connectors/sink-b
check_eq "DELETE sink-b on worker $third" 204 "$CODE"
gone() { req "$1" GET /connectors/sink-b; [ "$CODE" = 404 ]; }
check "sink-b is gone on worker $other" wait_for 20 gone "$other"

stop_survivors
# each task file on its own, once the workers stopped (until then a task
# that got a moved partition may be writing records another file has)
for f in "$T"/spread-*.jsonl; do check "$(basename "$f"): no record twice" no_dups "$f"; done
check "the REST token is in no log" bash -c "! grep -rqF -- '$TOKEN' $T/w*/log"
check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/w*/log"
finish
