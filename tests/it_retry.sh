# Integration: a sink whose destination goes away (tests/plugins/sink-flaky:
# put() returns RETRIABLE while a "block" file exists), on kafka-embedded.
#  1. put() is retried with back-off while the task's partitions are paused:
#     the member stays in its group longer than max.poll.interval.ms (the
#     consumer keeps polling), and when the destination comes back every
#     record arrives exactly once.
#  2. errors.retry.timeout bounds the retries: the task fails with the
#     reason, nothing of the refused batch is committed, and a restart
#     without the block delivers everything.
. "$(dirname "$0")/lib.sh"

start_bg "$BUILD/tools/kafka-embedded" --brokers 1 --bootstrap-file "$T/bootstrap" \
  --topic flaky:3:1 >/dev/null
check "kafka-embedded starts" wait_for 10 test -s "$T/bootstrap"
worker_conf "$T/worker.json"
sed -i "s|\"bootstrap.servers\": \"embedded\"|\"bootstrap.servers\": \"$(cat "$T/bootstrap")\"|;
        s|\"plugin.path\": \"$BUILD/plugins\"|\"plugin.path\": \"$BUILD/plugins,$BUILD/tests/plugins\"|;
        s|\"consumer.max.poll.interval.ms\": 10000|\"consumer.max.poll.interval.ms\": 6000|" "$T/worker.json"
cat > "$T/src.json" <<JSON
{"name": "src", "config": {"connector.class": "source-counter", "topic": "flaky",
 "count": 500, "batch.size": 50}}
JSON
cat > "$T/sink.json" <<JSON
{"name": "flaky-sink", "config": {"connector.class": "sink-flaky", "topics": "flaky",
 "file": "$T/out.txt", "block.file": "$T/block", "offset.flush.interval.ms": 200,
 "errors.retry.delay.max.ms": 1000}}
JSON
lines() { cat "$@" 2>/dev/null | wc -l; }

# --- 1. retried while paused, then everything arrives ---------------------------
touch "$T/block"
start_bg "$SLUICE" standalone "$T/worker.json" "$T/src.json" "$T/sink.json" 2>"$T/run1.log"
W=$LAST_PID
check "put() refused: fetching paused" wait_for 30 grep -q "flaky-sink/0\] paused fetching" "$T/run1.log"
sleep 8 # longer than max.poll.interval.ms (6 s)
retries=$(grep -c "flaky-sink/0\] put: retriable error: destination unavailable" "$T/run1.log")
check "put() retried with back-off (got $retries tries in 8 s; back-off capped at 1 s)" \
  bash -c "[ $retries -ge 5 ] && [ $retries -le 20 ]"
check_eq "nothing written while the destination is down" 0 "$(lines "$T/out.txt")"
check "the member stayed in its group (no revocation, no poll-interval eviction)" bash -c \
  "! grep -qE 'flaky-sink/0\] revoked|max.poll.interval|leaving group' '$T/run1.log'"
rm -f "$T/block"
check "destination back: fetching resumed" wait_for 20 grep -q "flaky-sink/0\] resumed fetching" "$T/run1.log"
check "put() succeeded again" grep -q "put: succeeded again after" "$T/run1.log"
all_500() { [ "$(lines "$T/out.txt")" -ge 500 ]; }
check "all 500 records delivered" wait_for 30 all_500
sleep 0.5
stop_worker $W
check_eq "SIGTERM exits 0" 0 "$STOP_RC"
check_eq "exactly once: 500 lines, 500 distinct (partition, offset)" "500 500" \
  "$(lines "$T/out.txt") $(cut -d' ' -f2,3 "$T/out.txt" | sort -u | wc -l)"

# --- 2. errors.retry.timeout -----------------------------------------------------
sed -i 's|"name": "flaky-sink"|"name": "bounded-sink"|; s|"errors.retry.delay.max.ms": 1000|"errors.retry.delay.max.ms": 1000, "errors.retry.timeout": 1500|; s|out.txt|out2.txt|' "$T/sink.json"
touch "$T/block"
start_bg "$SLUICE" standalone "$T/worker.json" "$T/sink.json" 2>"$T/run2.log"
W=$LAST_PID
check "the task fails once errors.retry.timeout is spent" wait_for 30 grep -q \
  "task bounded-sink/0 is FAILED: put: still failing after 1[5-9][0-9][0-9] ms of retries (errors.retry.timeout=1500): destination unavailable" "$T/run2.log"
stop_worker $W
check_eq "worker exits 0 with a failed task" 0 "$STOP_RC"
check_eq "nothing written" 0 "$(lines "$T/out2.txt")"
rm -f "$T/block"
start_bg "$SLUICE" standalone "$T/worker.json" "$T/sink.json" 2>"$T/run3.log"
W=$LAST_PID
all_500b() { [ "$(lines "$T/out2.txt")" -ge 500 ]; }
check "restarted without the block: all 500 records (nothing was committed)" wait_for 30 all_500b
sleep 0.5
stop_worker $W
check_eq "restart: exactly 500 lines" 500 "$(lines "$T/out2.txt")"
sed 's|"errors.retry.timeout": 1500|"errors.retry.timeout": -5|' "$T/sink.json" >"$T/bad.json"
rc=0; "$SLUICE" validate "$T/worker.json" "$T/bad.json" >"$T/validate.log" 2>&1 || rc=$?
check "invalid errors.retry.timeout is refused" test "$rc" -ne 0
check "... naming the key and the reason" grep -q "errors.retry.timeout.*-5 is out of range" "$T/validate.log"
check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/*.log"
finish
