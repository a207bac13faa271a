# Integration: the example connectors end to end in one standalone worker
# with the in-process embedded broker (3 mock brokers on loopback ports):
# source-counter -> Kafka -> sink-file. kcat (an independent client) reads
# the topic while the worker runs; SIGTERM drains the sink, commits, exits 0.
. "$(dirname "$0")/lib.sh"

worker_conf "$T/worker.json"
cat > "$T/counter.json" <<JSON
{"name": "counter", "config": {"connector.class": "source-counter", "tasks.max": "2",
 "topic": "counts", "count": 2500, "batch.size": 100}}
JSON
cat > "$T/file.json" <<JSON
{"name": "file", "config": {"connector.class": "sink-file", "tasks.max": 1,
 "topics": "counts", "file": "$T/out.jsonl"}}
JSON
lines() { [ -f "$T/out.jsonl" ] && wc -l < "$T/out.jsonl" || echo 0; }
lines_at_least() { [ "$(lines)" -ge "$1" ]; }

start_bg "$SLUICE" standalone "$T/worker.json" "$T/counter.json" "$T/file.json" 2>"$T/run.log"
W=$LAST_PID
check "worker writes the embedded bootstrap file" wait_for 10 test -s "$T/bootstrap"
BS=$(cat "$T/bootstrap")
kc_count() { [ "$(kcat -b "$BS" -C -t counts -o beginning -e -q -f '%k\n' 2>/dev/null | wc -l)" -eq 5000 ]; }
check "kcat reads all 5000 records from the worker's broker" wait_for 30 kc_count
check "kcat: keys are task-0/task-1, values the counter's JSON" bash -c \
  "kcat -b '$BS' -C -t counts -o beginning -e -q -f '%k %s\n' 2>/dev/null | grep -c '^task-[01] {\"task\": [01], \"n\": [0-9]*, \"ts\": [0-9]*}\$' | grep -qx 5000"
check "sink wrote 5000 lines" wait_for 30 lines_at_least 5000
stop_worker $W
check_eq "SIGTERM: worker exits 0" 0 "$STOP_RC"
check_eq "exactly 5000 lines" 5000 "$(lines)"
check_eq "5000 distinct (task, n)" 5000 "$(python3 -c 'import json,sys; print(len({(r["value"]["task"], r["value"]["n"]) for r in map(json.loads, open(sys.argv[1]))}))' "$T/out.jsonl")"
check "source offsets stored for both tasks" python3 -c '
import json,sys; d=json.load(open(sys.argv[1]))
assert d["[\"counter\",{\"task\":0}]"]["n"] == 2499 and d["[\"counter\",{\"task\":1}]"]["n"] == 2499, d' "$T/offsets.json"
check "log names the stop" grep -q "SIGTERM: stopping" "$T/run.log"
check "no errors logged" bash -c "! grep ' ERROR ' '$T/run.log'"

# Produced while the sink is slow to start, drained at SIGTERM: nothing is
# lost with the in-process broker either.
rm -f "$T/out.jsonl" "$T/offsets.json"
sed -i 's/"count": 2500/"count": 400/' "$T/counter.json"
start_bg "$SLUICE" standalone "$T/worker.json" "$T/counter.json" "$T/file.json" 2>"$T/run2.log"
W=$LAST_PID
sleep 0.5
stop_worker $W
check_eq "early SIGTERM: exit 0" 0 "$STOP_RC"
produced=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(v["n"]+1 for v in d.values()))' "$T/offsets.json" 2>/dev/null || echo 0)
check_eq "early SIGTERM: every acknowledged record reached the file" "$produced" "$(lines)"
finish
