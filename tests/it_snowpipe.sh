# Integration: sink-snowflake with snowflake.ingestion.method=SNOWPIPE_STREAMING
# against build/tools/snowflake-emulator (Snowpipe Streaming REST: hostname,
# scoped token, channels, offset tokens committed after --commit-delay-ms)
# and build/tools/kafka-embedded.
#  1. 3000 source-counter records (Avro) -> Kafka -> one channel per
#     partition: every record is one row, field by field (tests/sf_compare.py,
#     shared with it_snowflake); a wrong key is refused with a clear error,
#     upsert keys with streaming are refused as a config error.
#  2. the same on an emulator whose channel requests fail (503), lag and
#     drop connections before and after handling them (--faults-streaming
#     on): nothing lost, nothing twice.
#  3. kill -9 of the worker while appended rows are not committed yet
#     (--commit-delay-ms 2000), then a restart; then kill -9 of the emulator
#     (uncommitted appends and scoped tokens lost, channels invalidated) and
#     its restart on the same port: each record exactly once.
#  4. /oauth/token refuses an expired JWT and one signed by another key (401).
# Keys are generated here; no key, passphrase, JWT or scoped token in any log.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sf_lib.sh"

check "emulator (plain, commits after 300 ms) starts" emulator good --commit-delay-ms 300
check "emulator (flaky channel requests: 25% 503, latency, 15% dropped) starts" emulator flaky \
  --faults-streaming on --fail-rate 0.25 --fail-status 503 --seed 11 --latency-ms 10 \
  --drop-rate 0.15 --drop-when random --commit-delay-ms 300
check "emulator (for the crash: commits after 2 s) starts" emulator crash --commit-delay-ms 2000
CRASH_EMU=$LAST_PID

start_bg "$BUILD/tools/kafka-embedded" --brokers 1 --bootstrap-file "$T/bootstrap" \
  --topic counts:3:1 --topic stream:2:1 >/dev/null
check "kafka-embedded starts" wait_for 10 test -s "$T/bootstrap"
BS=$(cat "$T/bootstrap")
worker_conf "$T/worker.json"
sed -i "s|\"bootstrap.servers\": \"embedded\"|\"bootstrap.servers\": \"$BS\"|" "$T/worker.json"
# the crash test's worker: a dead member's partitions move after 3 s, not 6
sed 's|"consumer.session.timeout.ms": 6000|"consumer.session.timeout.ms": 3000|' "$T/worker.json" >"$T/worker-crash.json"

sink() { # file, name, emulator, topic, extra JSON members
  cat > "$1" <<JSON
{"name": "$2", "config": {"connector.class": "sink-snowflake", "topics": "$4",
 "snowflake.ingestion.method": "SNOWPIPE_STREAMING",
 "value.converter": "avro", "value.converter.schema": "counter",
 "snowflake.url.name": "$(cat "$T/$3.url")", "snowflake.user.name": "loader",
 "snowflake.account.name": "myorg-acct",
 "snowflake.private.key": "\${file:$T/key.p8}",
 "snowflake.private.key.passphrase": "\${env:SF_PASS}",
 "snowflake.database.name": "SLUICE", "snowflake.schema.name": "PUBLIC",
 "snowflake.schemas.path": "$ROOT/schemas", "offset.flush.interval.ms": 500$5}}
JSON
}

# --- 1 + 2 + 3 run together: one worker with the sources and the first two
# sinks, another with the sink of the crash test ---------------------------------
cat > "$T/src.json" <<JSON
{"name": "src", "config": {"connector.class": "source-counter", "tasks.max": "2",
 "topic": "counts", "count": 1500, "batch.size": 100, "value.converter": "avro"}}
JSON
# 100 records/s per task for 12 s: the crash test's stream
cat > "$T/src2.json" <<JSON
{"name": "src2", "config": {"connector.class": "source-counter", "tasks.max": "2",
 "topic": "stream", "count": 1200, "batch.size": 10, "interval.ms": 100, "value.converter": "avro"}}
JSON
sink "$T/good.json" good good counts ', "buffer.count.records": 400, "buffer.flush.time": 1'
sink "$T/flaky.json" flaky flaky counts ', "snowflake.topic2table.map": "counts:flaky_counts", "buffer.count.records": 100, "buffer.flush.time": 1, "errors.retry.delay.max.ms": 1000'
sink "$T/badkey.json" badkey good counts ', "snowflake.topic2table.map": "counts:badkey"'
sed -i "s|\"snowflake.private.key\": \"[^\"]*\"|\"snowflake.private.key\": \"\${file:$T/other.p8}\"|; s|\"snowflake.private.key.passphrase\": \"[^\"]*\",||" "$T/badkey.json"
sink "$T/upsert.json" upsert good counts ', "snowflake.topic2table.map": "counts:upsert", "snowflake.upsert.keys": "task"'
sink "$T/crash.json" crash crash stream ', "buffer.count.records": 50, "buffer.flush.time": 1, "snowflake.streaming.commit.timeout.ms": 4000'
start_bg "$SLUICE" standalone "$T/worker.json" "$T/src.json" "$T/src2.json" "$T/good.json" "$T/flaky.json" \
  "$T/badkey.json" "$T/upsert.json" 2>"$T/run1.log"
W=$LAST_PID
start_bg "$SLUICE" standalone "$T/worker-crash.json" "$T/crash.json" 2>"$T/crash1.log"
WK=$LAST_PID

# 3. kill -9 of the sink while appended rows wait for their commit
appended() { awk '/POST rows .* 200: / { n += $(NF-4) } END { print n + 0 }' "$T/crash-emu.log"; }
some_rows() { [ "$(rows crash STREAM 2>/dev/null || echo 0)" -ge 300 ] 2>/dev/null; }
ahead() { [ "$(appended)" -gt "$(rows crash STREAM 2>/dev/null || echo 0)" ]; }
check "crash: rows flowing" wait_for 40 some_rows
check "crash: rows appended and not committed yet" wait_for 10 ahead
kill -KILL $WK
wait $WK 2>/dev/null
at_kill="$(rows crash STREAM) committed, $(appended) appended"
start_bg "$SLUICE" standalone "$T/worker-crash.json" "$T/crash.json" 2>"$T/crash2.log"
WK=$LAST_PID

# 1. while that one restarts: the plain and flaky sinks, the refusals
check "all 3000 records are rows of COUNTS" wait_for 40 rows_are good COUNTS 3000
check "flaky: all 3000 records are rows of FLAKY_COUNTS" wait_for 40 rows_are flaky FLAKY_COUNTS 3000
check "wrong key: the task fails with a clear reason" wait_for 20 grep -q \
  "task badkey/0 is FAILED: .*authentication refused (.*HTTP 401.*check snowflake.url.name" "$T/run1.log"
check "upsert keys with streaming: refused as a config error naming both keys" grep -q \
  "task upsert/0 is FAILED: .*snowflake.upsert.keys' cannot be used with snowflake.ingestion.method=SNOWPIPE_STREAMING" "$T/run1.log"
check "one channel per partition, named connector_topic_partition" bash -c \
  "for p in 0 1 2; do grep -q \"PUT channel SLUICE.PUBLIC.COUNTS/COUNTS-STREAMING/GOOD_COUNTS_\$p 200\" '$T/good-emu.log' || exit 1; done"
check "the ingest host and a scoped token were asked for" grep -q 'POST /oauth/token 200' "$T/good-emu.log"

# 3b. the emulator dies with appends not committed and comes back on its port:
# scoped tokens and uncommitted rows are gone, channels invalidated
resumed() { grep -q "channel crash_stream_[01] committed up to offset token" "$T/crash2.log"; }
check "crash: the restarted sink resumed from the channels' committed offset tokens" wait_for 30 resumed
new_rows() { [ "$(rows crash STREAM 2>/dev/null || echo 0)" -gt "${at_kill%% *}" ]; }
check "crash: the restarted sink commits rows" wait_for 20 new_rows
# the emulator's last append is logged after its last commit: it is not committed yet
outstanding() { awk '/POST rows .* 200: / { a = NR } /committed [0-9]+ rows/ { c = NR } END { exit !(a > c) }' "$T/crash-emu.log"; }
check "crash: the restarted sink has appends not committed yet" wait_for 10 outstanding
port=$(sed 's|.*:||' "$T/crash.url")
before_emu="$(rows crash STREAM) committed, $(appended) appended"
kill -KILL $CRASH_EMU
wait $CRASH_EMU 2>/dev/null
rm -f "$T/crash.url"
start_bg "$EMU" serve --port "$port" --port-file "$T/crash.url" --db "$T/crash.sqlite" \
  --account MYORG-ACCT --user LOADER --public-key "$T/key.pub" --log-file "$T/crash-emu.log" --commit-delay-ms 2000 >>"$T/crash-emu.out" 2>&1
check "crash: the emulator is back" wait_for 10 test -s "$T/crash.url"
check "crash: source done" wait_for 60 bash -c "[ \$(grep -c 'count 1200 reached' '$T/run1.log') -ge 2 ]"
total=$(kcat -b "$BS" -C -t stream -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l)
check "crash: every record arrives ($at_kill at the sink's kill, $before_emu at the emulator's, $total in Kafka)" \
  wait_for 40 rows_are crash STREAM "$total"
restart_handled() { # a new scoped token, and a channel opened after the restart invalidated them
  grep -q 'renewed the scoped token' "$T/crash2.log" &&
    awk '/channel\(s\) invalidated/ { inv = 1 } inv && /PUT channel .*CRASH_STREAM_[01] 200/ { ok = 1 } END { exit !ok }' "$T/crash-emu.log"
}
check "crash: after the emulator's restart the sink renewed its scoped token and reopened its channels" restart_handled
sleep 2.2 # a duplicate append would commit within --commit-delay-ms
stop_worker $WK
check "the first worker is still up" kill -0 $W
stop_worker $W
check_eq "worker exits 0" 0 "$STOP_RC"
for p in 0 1; do
  k=$(kcat -b "$BS" -C -t stream -p $p -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l)
  check_eq "crash: partition $p: COUNT(*) = COUNT(DISTINCT KAFKA_OFFSET) = Kafka's records" "$k $k" \
    "$(q crash "SELECT COUNT(*), COUNT(DISTINCT KAFKA_OFFSET) FROM STREAM WHERE KAFKA_PARTITION = $p" | tr '\t' ' ')"
done

check_eq "no rows from the refused connectors" "" \
  "$(q good "SELECT COUNT(*) FROM BADKEY" 2>/dev/null | grep -v '^0$')$(q good "SELECT COUNT(*) FROM UPSERT" 2>/dev/null | grep -v '^0$')"
compare() { # emulator, table, topic, partitions
  q "$1" "SELECT KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET, KAFKA_KEY, TASK, N, TS, KAFKA_TIMESTAMP FROM $2" >"$T/$1.tsv"
  $PY "$ROOT/tests/sf_compare.py" "$ROOT/schemas/counter.avsc" "$BS" "$T/$1.tsv" "$3" "$4"
}
# the three comparisons run at once (python3-avro is slow); each prints what differed
compare good COUNTS counts 3 >"$T/cmp-good.out" 2>&1 & C1=$!
compare flaky FLAKY_COUNTS counts 3 >"$T/cmp-flaky.out" 2>&1 & C2=$!
compare crash STREAM stream 2 >"$T/cmp-crash.out" 2>&1 & C3=$!
compared() { wait "$1"; local rc=$?; cat "$T/cmp-$2.out"; return $rc; }
check "every Kafka record is its row, field by field" compared $C1 good
check "flaky: every Kafka record is its row, once, field by field" compared $C2 flaky
check "crash: every Kafka record is its row, once, field by field" compared $C3 crash
check "flaky: channel requests failed 503 and were dropped before and after handling" bash -c \
  "grep -q 'rows 503 (--fail-rate, --faults-streaming)' '$T/flaky-emu.log' &&
   grep -q 'rows dropped the connection after executing' '$T/flaky-emu.log' &&
   grep -q 'dropped the connection before executing (--drop-rate, --faults-streaming)' '$T/flaky-emu.log'"
check "flaky: channels were reopened to resend what was not committed" bash -c \
  "[ \$(grep -c 'PUT channel SLUICE.PUBLIC.FLAKY_COUNTS' '$T/flaky-emu.log') -gt 3 ]"

# --- 4. /oauth/token checks the JWT ---------------------------------------------
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
jwt() { # key file, passin, iat, exp
  local fp h p
  fp=$(openssl pkey -in "$T/key.p8" -passin "pass:$KEYPASS" -pubout -outform DER | openssl dgst -sha256 -binary | base64 -w0)
  h=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
  p=$(printf '{"iss":"MYORG-ACCT.LOADER.SHA256:%s","sub":"MYORG-ACCT.LOADER","iat":%d,"exp":%d}' "$fp" "$3" "$4" | b64url)
  echo "$h.$p.$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -sign "$1" -passin "$2" | b64url)"
}
token_status() { # jwt
  curl -s -o /dev/null -w '%{http_code}' "$(cat "$T/good.url")/oauth/token" -H "Authorization: Bearer $1" \
    -H 'X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT' -H 'Content-Type: application/x-www-form-urlencoded' \
    --data 'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&scope=127.0.0.1'
}
now=$(date +%s)
check_eq "/oauth/token: a valid JWT gets a token" 200 "$(token_status "$(jwt "$T/key.p8" "pass:$KEYPASS" $now $((now + 3000)))")"
check_eq "/oauth/token: an expired JWT is refused" 401 "$(token_status "$(jwt "$T/key.p8" "pass:$KEYPASS" $((now - 4000)) $((now - 600)))")"
check_eq "/oauth/token: a JWT signed by another key is refused" 401 "$(token_status "$(jwt "$T/other.p8" pass: $now $((now + 3000)))")"

# --- secrets ----------------------------------------------------------------------
check_no_secrets
check "no scoped token (48 hex digits) in any log" bash -c "! grep -rE '[0-9a-f]{48}' $T/*.log"
finish
