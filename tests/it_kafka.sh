# Integration: the Kafka runtime against build/tools/kafka-embedded, checked
# with kcat and python3-avro as independent clients.
#  1. a source connector with the Avro converter, on the in-process broker: topic created
#     as configured; kcat reads every record with the right key, and each
#     value decodes with schemas/counter.avsc.
#  2. a sink connector with two tasks splits the partitions; a third member
#     (a second worker) joins and leaves mid-stream; every record lands in the
#     files exactly once.
#  3. a poison record lands in the dead-letter queue with Kafka Connect's
#     context headers while the rest flows; with errors.tolerance=none the
#     task fails with the reason and the worker's other connectors go on.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3 # Debian's, where python3-avro lives

lines() { cat "$@" 2>/dev/null | wc -l; }

# --- 1. source -> Kafka, Avro, on the worker's in-process embedded broker -----
# (its brokers listen on loopback, so kcat reads them while the worker runs)
worker_conf "$T/inproc.json"
sed -i "s|$T/bootstrap|$T/inproc-bootstrap|" "$T/inproc.json"
cat > "$T/avro-src.json" <<JSON
{"name": "avro-src", "config": {"connector.class": "source-counter", "tasks.max": "2",
 "topic": "avro.counts", "count": 1000, "batch.size": 100,
 "value.converter": "avro",
 "topic.creation.default.partitions": 6, "topic.creation.default.replication.factor": 3,
 "topic.creation.default.cleanup.policy": "delete"}}
JSON
start_bg "$SLUICE" standalone "$T/inproc.json" "$T/avro-src.json" 2>"$T/src.log"
W=$LAST_PID
check "in-process embedded broker starts" wait_for 10 test -s "$T/inproc-bootstrap"
BS=$(cat "$T/inproc-bootstrap")
kc_all() { [ "$(kcat -b "$BS" -C -t avro.counts -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l)" -eq 2000 ]; }
check "kcat reads all 2000 records" wait_for 30 kc_all
check "topic created with 6 partitions at first produce" bash -c \
  "kcat -b '$BS' -L -t avro.counts 2>/dev/null | grep -q '6 partitions'"
check "the worker logged the creation" grep -q "created topic avro.counts (6 partitions, replication 3)" "$T/src.log"
kcat -b "$BS" -C -t avro.counts -o beginning -e -q -f '%k\t%p\t%S\n' >"$T/keys.txt" 2>/dev/null
check "keys are task-0 and task-1, 1000 each" bash -c \
  "[ \$(grep -c '^task-0	' '$T/keys.txt') -eq 1000 ] && [ \$(grep -c '^task-1	' '$T/keys.txt') -eq 1000 ]"
check "one key stays in one partition (keyed producer)" bash -c \
  "[ \$(cut -f1,2 '$T/keys.txt' | sort -u | wc -l) -eq 2 ]"
# Values are raw Avro: decode them with an independent implementation.
check "every value decodes with schemas/counter.avsc (python3-avro)" $PY - "$ROOT/schemas/counter.avsc" "$BS" <<'PYEOF'
import io, subprocess, sys, avro.schema, avro.io
schema = avro.schema.parse(open(sys.argv[1]).read())
# kcat -f '%s' loses the boundaries of binary values; read message by message.
seen = set()
for p in range(6):
    out = subprocess.run(["kcat", "-b", sys.argv[2], "-C", "-t", "avro.counts", "-p", str(p),
                          "-o", "beginning", "-e", "-q", "-f", "%k %S\n%s"],
                         capture_output=True).stdout
    while out:
        header, _, rest = out.partition(b"\n")
        key, size = header.split(b" ")
        size = int(size)
        value, out = rest[:size], rest[size:]
        rec = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(value)))
        assert key.decode() == "task-%d" % rec["task"], (key, rec)
        seen.add((rec["task"], rec["n"]))
assert seen == {(t, n) for t in (0, 1) for n in range(1000)}, len(seen)
PYEOF
stop_worker $W
check_eq "source worker: SIGTERM exits 0" 0 "$STOP_RC"

# The rest runs on a separate kafka-embedded, which outlives the workers.
# Topics are declared on its command line: librdkafka's mock cluster serves
# no CreateTopics (it names no controller).
start_bg "$BUILD/tools/kafka-embedded" --brokers 3 --bootstrap-file "$T/bootstrap" \
  --topic grouped:6:3 --topic poisoned:1:3 >"$T/embedded.out"
check "kafka-embedded starts" wait_for 10 test -s "$T/bootstrap"
BS=$(cat "$T/bootstrap")
worker_conf "$T/worker.json"
sed -i "s|\"bootstrap.servers\": \"embedded\"|\"bootstrap.servers\": \"$BS\"|" "$T/worker.json"

# --- 2. sink group: two tasks, a third member joins and leaves ----------------
cat > "$T/slow-src.json" <<JSON
{"name": "slow-src", "config": {"connector.class": "source-counter", "tasks.max": "2",
 "topic": "grouped", "count": 0, "batch.size": 10, "interval.ms": 50,
 "topic.creation.default.partitions": 6, "topic.creation.default.replication.factor": 3}}
JSON
cat > "$T/group-a.json" <<JSON
{"name": "grouped-sink", "config": {"connector.class": "sink-file", "tasks.max": "2",
 "topics": "grouped", "file": "$T/group-a-{task}.jsonl", "offset.flush.interval.ms": 300}}
JSON
sed "s|group-a-{task}|group-b-{task}|; s|\"tasks.max\": \"2\"|\"tasks.max\": \"1\"|" "$T/group-a.json" >"$T/group-b.json"
rm -f "$T/rest.port"
start_bg "$SLUICE" standalone "$T/worker.json" "$T/slow-src.json" "$T/group-a.json" 2>"$T/group-a.log"
WA=$LAST_PID
wait_for 30 test -s "$T/rest.port"
UA="http://127.0.0.1:$(cat "$T/rest.port")" # group-b's worker writes the same port file later
at_least() { [ "$(lines "$T"/group-*.jsonl)" -ge "$1" ]; }
check "group: records flow to the two tasks" wait_for 30 at_least 300
check "group: both tasks got partitions" bash -c \
  "grep -q 'grouped-sink/0\] assigned' '$T/group-a.log' && grep -q 'grouped-sink/1\] assigned' '$T/group-a.log'"
start_bg "$SLUICE" standalone "$T/worker.json" "$T/group-b.json" 2>"$T/group-b.log"
WB=$LAST_PID
check "group: the third member gets partitions" wait_for 60 grep -q "assigned [1-9] partition" "$T/group-b.log"
# (the source emits until stopped below, so however long the join takes
# under load, there are records left for the new member)
check "group: the third member writes records" wait_for 60 test -s "$T/group-b-0.jsonl"
stop_worker $WB
check_eq "group: third member leaves cleanly (exit 0)" 0 "$STOP_RC"
check_eq "group: the source is stopped over REST" 202 \
  "$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$UA/connectors/slow-src/stop")"
in_topic() { kcat -b "$BS" -C -t grouped -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l; }
settled_topic() { local a b; a=$(in_topic); sleep 1; b=$(in_topic); [ "$a" -gt 0 ] && [ "$a" = "$b" ]; }
wait_for 30 settled_topic
N=$(in_topic)
distinct_at_least() { # distinct (partition, offset) over the files: lines count redeliveries twice
  [ "$(cat "$T"/group-*.jsonl | $PY -c 'import json,sys; print(len({(r["partition"], r["offset"]) for r in map(json.loads, sys.stdin)}))')" -ge "$1" ]
}
check "group: all $N records of the topic arrive" wait_for 60 distinct_at_least "$N"
sleep 1
stop_worker $WA
check_eq "group: worker exits 0" 0 "$STOP_RC"
# Kafka's sink semantics are at-least-once across a rebalance: a partition
# that moves before its consumed offset was committed is read again by its
# new owner (into another file). Nothing may be missing.
total=$(lines "$T"/group-*.jsonl)
check "group: at least $N lines in all files (got $total)" test "$total" -ge "$N"
check_eq "group: $N distinct (task, n): none lost" "$N" "$(cat "$T"/group-*.jsonl |
  $PY -c 'import json,sys; print(len({(r["value"]["task"], r["value"]["n"]) for r in map(json.loads, sys.stdin)}))')"
echo "# group: $((total - N)) record(s) delivered twice across the rebalances"
check_eq "group: no record twice within one file" 0 "$(for f in "$T"/group-*.jsonl; do
  $PY -c 'import json,sys; r=[(x["partition"],x["offset"]) for x in map(json.loads, open(sys.argv[1]))]; print(len(r)-len(set(r)))' "$f"; done | awk '{s+=$1} END {print s+0}')"
check "group: partitions were revoked and reassigned (cooperative)" grep -q "revoked" "$T/group-a.log"

# --- 3. poison record -> dead-letter queue -------------------------------------
cat > "$T/poison-src.json" <<JSON
{"name": "poison-src", "config": {"connector.class": "source-counter", "topic": "poisoned",
 "count": 200, "batch.size": 50, "value.converter": "avro",
 "topic.creation.default.partitions": 1, "topic.creation.default.replication.factor": 3}}
JSON
cat > "$T/poison-sink.json" <<JSON
{"name": "poison-sink", "config": {"connector.class": "sink-file", "topics": "poisoned",
 "file": "$T/poison.jsonl", "value.converter": "avro", "value.converter.schema": "counter",
 "errors.tolerance": "all", "errors.deadletterqueue.topic.name": "poisoned.dlq",
 "errors.deadletterqueue.context.headers.enable": "true",
 "errors.deadletterqueue.topic.replication.factor": 1}}
JSON
cat > "$T/strict-sink.json" <<JSON
{"name": "strict-sink", "config": {"connector.class": "sink-file", "topics": "poisoned",
 "file": "$T/strict.jsonl", "value.converter": "avro", "value.converter.schema": "counter"}}
JSON
start_bg "$SLUICE" standalone "$T/worker.json" "$T/poison-src.json" 2>"$T/poison-src.log"
W=$LAST_PID
have_200() { [ "$(kcat -b "$BS" -C -t poisoned -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l)" -ge 200 ]; }
check "poison: 200 good records produced" wait_for 30 have_200
stop_worker $W
printf 'poison-key:\xff\xfe not avro at all\n' | kcat -b "$BS" -P -t poisoned -K: 2>/dev/null
start_bg "$SLUICE" standalone "$T/worker.json" "$T/poison-src.json" "$T/poison-sink.json" "$T/strict-sink.json" 2>"$T/poison.log"
W=$LAST_PID
poison_lines() { [ "$(lines "$T/poison.jsonl")" -ge "$1" ]; }
check "poison: the good records flow past it" wait_for 30 poison_lines 200
dlq() { kcat -b "$BS" -C -t poisoned.dlq -o beginning -e -q -f "$1" 2>/dev/null; }
has_dlq() { [ -n "$(dlq '%k')" ]; }
check "poison: it lands in the dead-letter queue" wait_for 20 has_dlq
check "poison: DLQ topic left to auto-creation on the mock, with a warning" grep -q \
  "dead-letter queue topic poisoned.dlq: the cluster cannot create topics" "$T/poison.log"
check_eq "poison: DLQ key is the original key" "poison-key" "$(dlq '%k')"
check "poison: DLQ value is the original bytes" bash -c "kcat -b '$BS' -C -t poisoned.dlq -o beginning -e -q -f '%s' 2>/dev/null | grep -q 'not avro at all'"
H=$(dlq '%h')
for h in "__connect.errors.topic=poisoned" "__connect.errors.partition=0" "__connect.errors.offset=200" \
         "__connect.errors.connector.name=poison-sink" "__connect.errors.stage=VALUE_CONVERTER" \
         "__connect.errors.exception.message=avro decode"; do
  check "poison: DLQ header $h" bash -c "printf '%s' \"\$1\" | grep -q -- \"\$2\"" _ "$H" "$h"
done
check "poison: strict connector's task FAILED with the reason" wait_for 20 grep -q \
  "task strict-sink/0 is FAILED: poisoned\[0\]@200: avro decode" "$T/poison.log"
check_eq "poison: strict connector wrote the records before the poison" 200 "$(lines "$T/strict.jsonl")"
check "poison: the tolerant connector is still RUNNING" bash -c "grep -q 'task poison-sink/0 is RUNNING' '$T/poison.log' && ! grep -q 'task poison-sink/0 is FAILED' '$T/poison.log'"
stop_worker $W
check_eq "poison: worker exits 0 with a failed task" 0 "$STOP_RC"
check_eq "poison: exactly 200 good records in the file" 200 "$(lines "$T/poison.jsonl")"
# Restarted, the strict connector resumes from its committed offset: it meets
# the poison again at once and fails again, having skipped nothing.
start_bg "$SLUICE" standalone "$T/worker.json" "$T/strict-sink.json" 2>"$T/strict2.log"
W=$LAST_PID
check "poison: restarted strict connector fails again at the same offset" wait_for 30 grep -q \
  "task strict-sink/0 is FAILED: poisoned\[0\]@200: avro decode" "$T/strict2.log"
stop_worker $W
check_eq "poison: restarted strict connector wrote nothing twice" 200 "$(lines "$T/strict.jsonl")"
check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/*.log"
finish
