# Integration: the sinks' memory stays bounded while Snowflake is down
# (issue 10). The shipped pipeline (conf/worker.json, finnhub.json,
# snowflake-trades.json) runs on build/tools/kafka-embedded,
# finnhub-replay and snowflake-emulator; after the first rows land the
# emulator is restarted on the same port and database answering every
# request 503 (--fail-rate 1, channels too) for OUTAGE_S seconds (default
# 20) while trades keep arriving. The sinks' worker's VmRSS
# (/proc/PID/status) is sampled every 0.5 s: it must stay under 2x the
# RSS before the outage + 64 MiB - the sink runner pauses fetching while
# put() fails RETRIABLE, so the backlog stays in Kafka, not in the
# worker. Then the emulator recovers and every trade lands exactly once.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
EMU=$BUILD/tools/snowflake-emulator
OUTAGE_S=${OUTAGE_S:-20}
N=6000
cd "$ROOT"
. "$ROOT/tests/pipeline_lib.sh"
export SLUICE_PLUGIN_PATH=$BUILD/plugins SLUICE_STATUS_INTERVAL_MS=1000
check "worker config" "$ROOT/tools/fast-group-conf.sh" "$ROOT/conf/worker.json" "$T/worker.json"

start_bg "$BUILD/tools/kafka-embedded" --brokers 1 --bootstrap-file "$T/bootstrap" \
  --topic trades:3:1 --topic trades.dlq:1:1 --topic trades.snowflake.dlq:1:1 >"$T/kafka.log" 2>&1
emulator() { # log name, extra args...: the emulator on $PORT (0 the first time)
  local name=$1; shift
  rm -f "$T/sf.url"
  start_bg "$EMU" serve --port "${PORT:-0}" --port-file "$T/sf.url" --db "$T/sf.sqlite" --account ITACCT --user LOADER \
    --public-key "$T/rsa_key.pub" --log-file "$T/emu-$name.log" "$@" >"$T/emu-$name.out" 2>&1
  EP=$LAST_PID
  wait_for 20 test -s "$T/sf.url"
}
check "kafka-embedded starts" wait_for 20 test -s "$T/bootstrap"
check "snowflake-emulator starts" emulator up1
export SLUICE_BOOTSTRAP_SERVERS=$(cat "$T/bootstrap") sf_url=$(cat "$T/sf.url")
PORT=$(sed -n 's|.*:\([0-9]*\)/*$|\1|p' "$T/sf.url")
start_bg "$BUILD/tools/finnhub-replay" --token-file "$T/token" --synthetic --seed 5 --start-ms now \
  --count $N --rate 200 --port 0 --port-file "$T/fh.url" --sent-file "$T/sent.jsonl" \
  --log-file "$T/replay.log" >"$T/replay.out" 2>&1
check "finnhub-replay starts" wait_for 20 test -s "$T/fh.url"
export SLUICE_FINNHUB_URL=$(cat "$T/fh.url")
SLUICE_OFFSETS_FILE=$T/source.offsets start_bg "$SLUICE" standalone "$T/worker.json" conf/connectors/finnhub.json 2>"$T/source.log"
WS=$LAST_PID
SLUICE_OFFSETS_FILE=$T/sinks.offsets SLUICE_METRICS_FILE=$T/sinks.prom \
  start_bg "$SLUICE" standalone "$T/worker.json" conf/connectors/snowflake-trades.json 2>"$T/sinks.log"
WK=$LAST_PID
q() { "$EMU" query --db "$T/sf.sqlite" --database ITDB --schema RAW "$1" 2>>"$T/query.err" | tail -n +2; }
rows() { q "SELECT COUNT(*) FROM TRADES_DETAILED" | grep -E '^[0-9]+$' || echo 0; }
rows_at_least() { [ "$(rows)" -ge "$1" ]; }
rss() { awk '/^VmRSS:/ { print $2 }' /proc/$WK/status; }
check "rows flowing before the outage" wait_for 40 rows_at_least 300
sleep 1
RSS0=$(rss)

# --- the outage ---------------------------------------------------------------
kill -TERM $EP; wait $EP 2>/dev/null
check "emulator restarted answering 503 to everything" emulator down --fail-rate 1 --fail-status 503 --faults-streaming on
at_start=$(rows) sent_start=$(wc -l <"$T/sent.jsonl")
max=$RSS0 end=$((SECONDS + OUTAGE_S))
while [ $SECONDS -lt $end ]; do r=$(rss); [ "${r:-0}" -gt $max ] && max=$r; sleep 0.5; done
at_end=$(rows) sent_end=$(wc -l <"$T/sent.jsonl")
lag=$(awk '/^sluice_sink_consumer_lag\{connector="snowflake-trades"/ { s += $NF } END { print s + 0 }' "$T/sinks.prom")
refused=$(grep -c ' 503 (--fail-rate)' "$T/emu-down.log")
echo "# outage ${OUTAGE_S}s: $((sent_end - sent_start)) trades arrived, $refused requests refused 503, rows $at_start -> $at_end"
echo "# sinks' worker VmRSS: ${RSS0} kB before, max ${max} kB during (bound $((2 * RSS0 + 65536)) kB)"
check "trades kept arriving during the outage ($((sent_end - sent_start)))" test $((sent_end - sent_start)) -ge 1000
check "the emulator refused the sink's requests ($refused)" test "$refused" -gt 0
check "no rows landed during the outage" test "$at_end" -eq "$at_start"
check "VmRSS stayed under 2x before + 64 MiB (${RSS0} -> max ${max} kB)" test "$max" -lt $((2 * RSS0 + 65536))
check "the sink paused fetching while put() failed" grep -q "paused fetching" "$T/sinks.log"
check "the backlog waits in Kafka: consumer lag $lag (metrics.file)" test "$lag" -ge 1000

# --- recovery -----------------------------------------------------------------
kill -TERM $EP; wait $EP 2>/dev/null
check "emulator back without faults" emulator up2
sent_all() { [ "$(wc -l <"$T/sent.jsonl")" -ge $N ]; }
check "the replay server sent all $N trades" wait_for 60 sent_all
check "after the recovery: $N rows" wait_for 90 rows_at_least $N
sleep 1
stop_worker $WK; stop_worker $WS
q "SELECT SYMBOL, PRICE, VOLUME, TRADE_TIMESTAMP, KAFKA_PARTITION, KAFKA_OFFSET FROM TRADES_DETAILED" >"$T/detailed.tsv"
fig=$($PY tests/faults_count.py "$T/sent.jsonl" "$T/detailed.tsv" sent "$T/reached.jsonl")
check_eq "every trade exactly once ($fig)" "checked=$N lost=0 duplicated=0 unexpected=0" "$fig"
check "no passphrase or token in any log" bash -c "! grep -rqF -e '$sf_pem_pass' -e '$d2b_token_finnhubio' $T/*.log"
check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/*.log"
finish
