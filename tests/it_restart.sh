# Integration: restarts against a broker that outlives the worker
# (build/tools/kafka-embedded, its own process).
#  - SIGTERM mid-stream, restart: the source resumes from its stored offsets
#    and the file sink from its own file: every number exactly once.
#  - kill -9 mid-stream, restart: the sink still holds each Kafka record
#    exactly once (it restores its position from the file at open), and no
#    counter value is lost (the source is at-least-once into Kafka, as in
#    Kafka Connect without transactions).
. "$(dirname "$0")/lib.sh"

start_bg "$BUILD/tools/kafka-embedded" --brokers 3 --topic counts:4 --topic killed:3 \
  --bootstrap-file "$T/bootstrap"
check "kafka-embedded starts" wait_for 10 test -s "$T/bootstrap"
BS=$(cat "$T/bootstrap")
worker_conf "$T/worker.json"
sed -i "s|\"bootstrap.servers\": \"embedded\"|\"bootstrap.servers\": \"$BS\"|" "$T/worker.json"

cat > "$T/counter.json" <<JSON
{"name": "counter", "config": {"connector.class": "source-counter", "tasks.max": "2",
 "topic": "counts", "count": 3000, "batch.size": 10, "interval.ms": 50}}
JSON
cat > "$T/file.json" <<JSON
{"name": "file", "config": {"connector.class": "sink-file", "topics": "counts",
 "file": "$T/out.jsonl"}}
JSON
lines() { [ -f "$1" ] && wc -l < "$1" || echo 0; }
lines_at_least() { [ "$(lines "$1")" -ge "$2" ]; }
distinct() { # file, python expression over r giving the identity
  python3 -c 'import json,sys; print(len({eval(sys.argv[2]) for r in map(json.loads, open(sys.argv[1]))}))' "$1" "$2"
}

start_bg "$SLUICE" standalone "$T/worker.json" "$T/counter.json" "$T/file.json" 2>"$T/run1.log"
W=$LAST_PID
check "run 1: records flow" wait_for 30 lines_at_least "$T/out.jsonl" 300
stop_worker $W
check_eq "run 1: SIGTERM exits 0" 0 "$STOP_RC"
n1=$(lines "$T/out.jsonl")
check "run 1 stopped mid-stream ($n1 of 6000)" test "$n1" -gt 0 -a "$n1" -lt 6000

sed -i 's/"batch.size": 10, "interval.ms": 50/"batch.size": 100/' "$T/counter.json"
start_bg "$SLUICE" standalone "$T/worker.json" "$T/counter.json" "$T/file.json" 2>"$T/run2.log"
W=$LAST_PID
check "run 2: reaches 6000 lines" wait_for 60 lines_at_least "$T/out.jsonl" 6000
sleep 1
stop_worker $W
check_eq "run 2: SIGTERM exits 0" 0 "$STOP_RC"
check_eq "exactly 6000 lines" 6000 "$(lines "$T/out.jsonl")"
check_eq "6000 distinct (task, n): none lost, none repeated" 6000 \
  "$(distinct "$T/out.jsonl" '(r["value"]["task"], r["value"]["n"])')"
check "source resumed from stored offsets" grep -q "counting from n=[1-9]" "$T/run2.log"
check "sink resumed from its file" grep -q "out.jsonl holds offsets up to [0-9]*, resuming at" "$T/run2.log"

# kill -9 mid-stream.
cat > "$T/counter-k.json" <<JSON
{"name": "counter-k", "config": {"connector.class": "source-counter", "tasks.max": "3",
 "topic": "killed", "count": 2000, "batch.size": 20, "interval.ms": 100}}
JSON
cat > "$T/file-k.json" <<JSON
{"name": "file-k", "config": {"connector.class": "sink-file", "topics": "killed",
 "file": "$T/killed.jsonl", "offset.flush.interval.ms": 300}}
JSON
start_bg "$SLUICE" standalone "$T/worker.json" "$T/counter-k.json" "$T/file-k.json" 2>"$T/run3.log"
W=$LAST_PID
check "kill run: records flow" wait_for 30 lines_at_least "$T/killed.jsonl" 500
kill -KILL $W; wait $W 2>/dev/null
sed -i 's/"batch.size": 20, "interval.ms": 100/"batch.size": 200/' "$T/counter-k.json"
start_bg "$SLUICE" standalone "$T/worker.json" "$T/counter-k.json" "$T/file-k.json" 2>"$T/run4.log"
W=$LAST_PID
all_numbers() {
  [ "$(distinct "$T/killed.jsonl" '(r["value"]["task"], r["value"]["n"])')" -eq 6000 ]
}
check "after kill -9 + restart: all 6000 (task, n) arrive" wait_for 60 all_numbers
in_kafka() { kcat -b "$BS" -C -t killed -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l; }
sleep 1.5
stop_worker $W
check_eq "restart run: SIGTERM exits 0" 0 "$STOP_RC"
total=$(in_kafka)
check_eq "sink file holds every Kafka record exactly once (lines = records in Kafka)" "$total" "$(lines "$T/killed.jsonl")"
check_eq "no (partition, offset) twice in the file" "$total" \
  "$(distinct "$T/killed.jsonl" '(r["partition"], r["offset"])')"
echo "info: source re-sent $((total - 6000)) records after kill -9 (at-least-once into Kafka)"
check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/run*.log"
finish
