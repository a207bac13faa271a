# Integration: sink-snowflake against build/tools/snowflake-emulator (the SQL
# API v2 with key-pair JWT, on SQLite) and build/tools/kafka-embedded.
#  1. source-counter (Avro) -> Kafka -> sink-snowflake: every Kafka record is
#     one row, field by field (Kafka read with kcat + python3-avro, rows with
#     `snowflake-emulator query`); a wrong key and a wrong account are refused
#     with a clear error while the worker and the good connector go on.
#  2. a flaky emulator (30% 503, latency, dropped answers): nothing lost or
#     duplicated.
#  3. kill -9 of the sink's worker mid-stream, then a restart: each record
#     exactly once per partition.
#  4. on an emulator that answers every statement 202 (polled): upsert mode
#     (MERGE on a key), values without a schema into RECORD_CONTENT VARIANT,
#     and a record that cannot be converted going to the dead-letter queue
#     while the rest is written.
# The key is generated here (encrypted PKCS#8, random passphrase) and given
# through ${file:...} and ${env:...}; neither appears in any log.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sf_lib.sh"
# the base64 body of the key without its header lines (the Kafka connector's form)
export SF_KEY_BODY="$(grep -v -- '-----' "$T/key.p8" | tr -d '\n')"

check "emulator (plain) starts" emulator good
check "emulator (flaky: 30% 503, latency, dropped answers) starts" emulator flaky \
  --fail-rate 0.3 --fail-status 503 --seed 7 --latency-ms 20 --drop-rate 0.15 --drop-when after
check "emulator (for the crash) starts" emulator crash
check "emulator (202 for every statement: polled) starts" emulator async --latency-ms 100 --async-after-ms 10

start_bg "$BUILD/tools/kafka-embedded" --brokers 1 --bootstrap-file "$T/bootstrap" \
  --topic counts:3:1 --topic stream:2:1 --topic docs:1:1 --topic mixed:1:1 --topic mixed.dlq:1:1 >/dev/null
check "kafka-embedded starts" wait_for 10 test -s "$T/bootstrap"
BS=$(cat "$T/bootstrap")
worker_conf "$T/worker.json"
sed -i "s|\"bootstrap.servers\": \"embedded\"|\"bootstrap.servers\": \"$BS\"|" "$T/worker.json"

sink() { # file, name, emulator, topic, extra JSON members
  cat > "$1" <<JSON
{"name": "$2", "config": {"connector.class": "sink-snowflake", "topics": "$4",
 "value.converter": "avro", "value.converter.schema": "counter",
 "snowflake.url.name": "$(cat "$T/$3.url")", "snowflake.user.name": "loader",
 "snowflake.private.key": "\${file:$T/key.p8}",
 "snowflake.private.key.passphrase": "\${env:SF_PASS}",
 "snowflake.database.name": "SLUICE", "snowflake.schema.name": "PUBLIC",
 "snowflake.warehouse.name": "WH", "snowflake.role.name": "LOADER_ROLE",
 "snowflake.schemas.path": "$ROOT/schemas", "offset.flush.interval.ms": 500$5}}
JSON
}

# Values without a schema, and Avro counters of which one cannot be converted
# (a timestamp-millis beyond what TIMESTAMP_NTZ in nanoseconds holds).
printf '%s\n' 'd1:{"a":1,"b":[1,2]}' 'd2:plain text' 'd3:[1,2,3]' | kcat -b "$BS" -P -t docs -K: 2>/dev/null
$PY - "$ROOT/schemas/counter.avsc" "$T" <<'PYEOF'
import io, sys, avro.schema, avro.io, datetime
schema = avro.schema.parse(open(sys.argv[1]).read())
def ts(ms): return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
for i, (n, t) in enumerate([(1, ts(1700000000000)), (2, ts(1700000000000) + datetime.timedelta(days=365 * 5000)), (3, ts(1700000001000))]):
    buf = io.BytesIO()
    avro.io.DatumWriter(schema).write({"task": 7, "n": n, "ts": t}, avro.io.BinaryEncoder(buf))
    open("%s/mixed-%d.avro" % (sys.argv[2], i), "wb").write(buf.getvalue())
PYEOF
kcat -b "$BS" -P -t mixed "$T"/mixed-0.avro "$T"/mixed-1.avro "$T"/mixed-2.avro 2>/dev/null

# --- 1. records -> rows; wrong key and wrong account refused -----------------
cat > "$T/src.json" <<JSON
{"name": "src", "config": {"connector.class": "source-counter", "tasks.max": "2",
 "topic": "counts", "count": 2000, "batch.size": 100, "value.converter": "avro"}}
JSON
sink "$T/good.json" good good counts ', "snowflake.account.name": "myorg-acct", "buffer.count.records": 700, "buffer.flush.time": 1'
sink "$T/flaky.json" flaky flaky counts ', "snowflake.account.name": "myorg.acct", "snowflake.topic2table.map": "counts:flaky_counts", "buffer.count.records": 100, "buffer.flush.time": 1, "errors.retry.delay.max.ms": 1000'
sink "$T/badkey.json" badkey good counts ', "snowflake.account.name": "myorg-acct", "snowflake.topic2table.map": "counts:badkey"'
sed -i "s|\"snowflake.private.key\": \"[^\"]*\"|\"snowflake.private.key\": \"\${file:$T/other.p8}\"|; s|\"snowflake.private.key.passphrase\": \"[^\"]*\",||" "$T/badkey.json"
sink "$T/noacct.json" noacct good counts ''
sink "$T/badacct.json" badacct good counts ', "snowflake.account.name": "otheracct", "snowflake.topic2table.map": "counts:badacct"'
sed -i "s|\"snowflake.private.key\": \"[^\"]*\"|\"snowflake.private.key\": \"\${env:SF_KEY_BODY}\"|" "$T/badacct.json"
sink "$T/upsert.json" upsert async counts ', "snowflake.account.name": "myorg-acct", "snowflake.topic2table.map": "counts:counts_latest", "snowflake.upsert.keys": "task", "buffer.count.records": 500, "buffer.flush.time": 1'
sink "$T/content.json" content async docs ', "snowflake.account.name": "myorg-acct", "buffer.flush.time": 1'
sed -i 's|"value.converter": "avro", "value.converter.schema": "counter",|"value.converter": "bytes",|' "$T/content.json"
sink "$T/mixed.json" mixed async mixed ', "snowflake.account.name": "myorg-acct", "buffer.flush.time": 1, "errors.tolerance": "all", "errors.deadletterqueue.topic.name": "mixed.dlq", "errors.deadletterqueue.context.headers.enable": "true"'
start_bg "$SLUICE" standalone "$T/worker.json" "$T/src.json" "$T/good.json" "$T/flaky.json" \
  "$T/badkey.json" "$T/badacct.json" "$T/noacct.json" "$T/upsert.json" "$T/content.json" "$T/mixed.json" 2>"$T/run1.log"
W=$LAST_PID
check "all 4000 records are rows of COUNTS" wait_for 40 rows_are good COUNTS 4000
check "wrong key: the task fails with a clear reason" wait_for 20 grep -q \
  "task badkey/0 is FAILED: .*authentication refused (.*HTTP 401.*check snowflake.url.name" "$T/run1.log"
check "wrong account: the task fails with a clear reason" wait_for 20 grep -q \
  "task badacct/0 is FAILED: .*authentication refused (.*HTTP 401" "$T/run1.log"
check "an IP URL without snowflake.account.name is refused, naming the key" wait_for 20 grep -q \
  "task noacct/0 is FAILED: .*config 'snowflake.account.name' is required" "$T/run1.log"
check "flaky: all 4000 records are rows of FLAKY_COUNTS" wait_for 40 rows_are flaky FLAKY_COUNTS 4000
check "the worker is still up, the good connector RUNNING" bash -c \
  "kill -0 $W && ! grep -q 'task good/0 is FAILED' '$T/run1.log'"
sleep 1
stop_worker $W
check_eq "worker exits 0 with failed tasks" 0 "$STOP_RC"
refused_rows() { q good "SELECT COUNT(*) FROM $1" 2>/dev/null | grep -v '^0$'; }
check_eq "no rows from the refused connectors" "" "$(refused_rows BADKEY)$(refused_rows BADACCT)"

# --- 4. 202 + polling: upsert, RECORD_CONTENT, a bad record -------------------
check "async: statements were answered 202 and polled" grep -q "GET /api/v2/statements/" "$T/async-emu.log"
check_eq "upsert: one row per TASK (MERGE), the last N of each" "0 1999
1 1999" "$(q async "SELECT TASK, N FROM COUNTS_LATEST ORDER BY TASK" | tr '\t' ' ')"
check_eq "content: values without a schema in RECORD_CONTENT (JSON kept, text as a JSON string)" \
  '{"a":1,"b":[1,2]} d1 0
"plain text" d2 1
[1,2,3] d3 2' "$(q async "SELECT RECORD_CONTENT, KAFKA_KEY, KAFKA_OFFSET FROM DOCS ORDER BY KAFKA_OFFSET" | tr '\t' ' ')"
check_eq "bad record: the two good rows are written" "1 0
3 2" "$(q async "SELECT N, KAFKA_OFFSET FROM MIXED ORDER BY KAFKA_OFFSET" | tr '\t' ' ')"
check "bad record: it is in the dead-letter queue with the reason" bash -c \
  "kcat -b '$BS' -C -t mixed.dlq -o beginning -e -q -f '%o %h\n' 2>/dev/null | grep -q 'column TS: timestamp .* is out of range'"

# Field by field: Kafka (kcat, python3-avro) against the rows.
q good "SELECT KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET, KAFKA_KEY, TASK, N, TS, KAFKA_TIMESTAMP FROM COUNTS" >"$T/rows.tsv"
q flaky "SELECT KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET, KAFKA_KEY, TASK, N, TS, KAFKA_TIMESTAMP FROM FLAKY_COUNTS" >"$T/flaky.tsv"
compare() { # rows file, topic, partitions
  $PY "$ROOT/tests/sf_compare.py" "$ROOT/schemas/counter.avsc" "$BS" "$1" "$2" "$3"
}
check "every Kafka record is its row, field by field (key, task, n, ts, timestamp)" compare "$T/rows.tsv" counts 3
check "flaky: every Kafka record is its row, once, field by field" compare "$T/flaky.tsv" counts 3
check "flaky: the emulator failed requests (503)" grep -q "503 (--fail-rate)" "$T/flaky-emu.log"
check "flaky: answers were lost after executing, and the resends were not run again" bash -c \
  "grep -q 'dropped the connection after executing' '$T/flaky-emu.log' &&
   grep -q 'retry=true: already succeeded, not run again' '$T/flaky-emu.log'"

# --- 3. kill -9 mid-stream, restart: exactly once ----------------------------
cat > "$T/src2.json" <<JSON
{"name": "src2", "config": {"connector.class": "source-counter", "tasks.max": "2",
 "topic": "stream", "count": 2000, "batch.size": 25, "interval.ms": 100, "value.converter": "avro"}}
JSON
sink "$T/crash.json" crash crash stream ', "snowflake.account.name": "MyOrg-Acct", "buffer.count.records": 150, "buffer.flush.time": 1'
# this one takes the key as its base64 body without header lines, from the environment
sed -i "s|\"snowflake.private.key\": \"[^\"]*\"|\"snowflake.private.key\": \"\${env:SF_KEY_BODY}\"|" "$T/crash.json"
start_bg "$SLUICE" standalone "$T/worker.json" "$T/src2.json" 2>"$T/src2.log"
WS=$LAST_PID
start_bg "$SLUICE" standalone "$T/worker.json" "$T/crash.json" 2>"$T/crash1.log"
WK=$LAST_PID
some_rows() { [ "$(rows crash STREAM 2>/dev/null || echo 0)" -ge 600 ] 2>/dev/null; }
check "crash: rows flowing" wait_for 40 some_rows
kill -KILL $WK
wait $WK 2>/dev/null
before=$(rows crash STREAM)
start_bg "$SLUICE" standalone "$T/worker.json" "$T/crash.json" 2>"$T/crash2.log"
WK=$LAST_PID
check "crash: source done" wait_for 60 bash -c "[ \$(grep -c 'count 2000 reached' '$T/src2.log') -ge 2 ]"
kafka_n() { kcat -b "$BS" -C -t stream -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l; }
total=$(kafka_n)
check "crash: every record arrives after the restart ($before rows at the kill, $total in Kafka)" \
  wait_for 40 rows_are crash STREAM "$total"
check "crash: the restart resumed from the table" grep -q "STREAM holds offsets up to" "$T/crash2.log"
sleep 1.5
stop_worker $WK
stop_worker $WS
per_part() { # partition: "count distinct" from the table, "count count" from Kafka
  q crash "SELECT COUNT(*), COUNT(DISTINCT KAFKA_OFFSET) FROM STREAM WHERE KAFKA_PARTITION = $1" | tr '\t' ' '
}
for p in 0 1; do
  k=$(kcat -b "$BS" -C -t stream -p $p -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l)
  check_eq "crash: partition $p: COUNT(*) = COUNT(DISTINCT KAFKA_OFFSET) = Kafka's records" "$k $k" "$(per_part $p)"
done

# --- secrets ------------------------------------------------------------------
check_no_secrets
finish
