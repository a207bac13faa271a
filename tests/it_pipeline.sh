# Integration: the whole pipeline with the shipped configs (conf/worker.json,
# conf/connectors/finnhub.json, snowflake-trades.json and, once the
# transform-window plugin is built, snowflake-summary.json), on
# build/tools/finnhub-replay, build/tools/kafka-embedded and
# build/tools/snowflake-emulator, configured only through the environment
# (the original project's d2b_* / sf_* names):
#  1. N synthetic trades through the replay server -> exactly N rows in the
#     detailed table, field by field against the trades the server sent,
#     with the sink worker killed (kill -9) mid-run and restarted. The
#     source runs in a worker of its own: a websocket feed cannot be read
#     again, so trades a killed source had received but not yet handed to
#     Kafka would be gone for good (Finnhub has no replay); the sinks'
#     worker is the one a crash must not cost a row.
#  2. the summary table (windows, upsert) equals a recomputation in python
#     from the same trades - when transform-window is built (else reported
#     as pending, not passed).
#  3. `make run`'s tools/run-pipeline.sh with an original-style .env (tickers,
#     topic and table names): starts everything, shows progress, and on
#     SIGINT stops cleanly with its summary and the query hint; it runs
#     alongside 1-2.
# Keys and tokens are made here; none shows up in a log.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3 # Debian's, where python3-avro lives
EMU=$BUILD/tools/snowflake-emulator
N=3000
cd "$ROOT"
# Nothing from the caller's environment may point the configs elsewhere.
for v in $(env | sed -n 's/^\(d2b_[A-Za-z0-9_]*\|sf_[A-Za-z0-9_]*\|SLUICE_[A-Z0-9_]*\)=.*/\1/p'); do
  case $v in SLUICE_ROOT | SLUICE_BUILD | SLUICE_BIN | SLUICE_NO_DLCLOSE) ;; *) unset "$v" ;; esac
done
# Several workers at once: no fixed REST port (rest.port; 0 = any free one)
export SLUICE_REST_PORT=0
HAS_WINDOW=0
[ -f "$BUILD/plugins/transform-window.so" ] && [ -f conf/connectors/snowflake-summary.json ] && HAS_WINDOW=1

# --- 3 (in the background). make run's script with an original .env ---------
cat >"$T/orig.env" <<'ENV'
# the original project's .env, as its users have it
d2b_token_finnhubio=not-a-real-token
d2b_tickers_finnhubio=['BINANCE:BTCUSDT','BINANCE:ETHUSDT']
d2b_kafka_producer_topic='trades_raw'
sf_table_detailedDFX="DETAILED_DFX"
sf_table_finalSummaryDFX=SUMMARY_DFX
d2b_finnhubio_user_name=someone
ENV
# SIGINT must reach it: bash leaves background jobs' SIGINT ignored, so it
# is reset before the exec.
start_bg $PY -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' \
  env SLUICE_ENV_FILE="$T/orig.env" SLUICE_FINNHUB=replay SLUICE_RUN_DIR="$T/run" SLUICE_PROGRESS_S=1 \
  SLUICE_REST_PORT=0 SLUICE_REPLAY_RATE=200 BUILD="$BUILD" bash "$ROOT/tools/run-pipeline.sh" >"$T/run.out" 2>&1
RP=$LAST_PID

# --- keys, cluster, stand-ins --------------------------------------------------
# (pipeline_lib.sh clears the environment again - part 3 has its copy - and
# makes the key pair and the Finnhub token)
. "$ROOT/tests/pipeline_lib.sh"
export SLUICE_REST_PORT=0

start_bg "$BUILD/tools/kafka-embedded" --brokers 1 --bootstrap-file "$T/bootstrap" \
  --topic trades:3:1 --topic trades.dlq:1:1 --topic trades.snowflake.dlq:1:1 --topic trades.summary.dlq:1:1 >"$T/kafka.log" 2>&1
check "kafka-embedded starts" wait_for 20 test -s "$T/bootstrap"
export SLUICE_BOOTSTRAP_SERVERS=$(cat "$T/bootstrap")
BS=$SLUICE_BOOTSTRAP_SERVERS
start_bg "$EMU" serve --port 0 --port-file "$T/sf.url" --db "$T/sf.sqlite" --account ITACCT --user LOADER \
  --public-key "$T/rsa_key.pub" --log-file "$T/emu.log" >"$T/emu.out" 2>&1
check "snowflake-emulator starts" wait_for 20 test -s "$T/sf.url"
export sf_url=$(cat "$T/sf.url")
start_bg "$BUILD/tools/finnhub-replay" --token-file "$T/token" --synthetic --seed 21 --start-ms now \
  --count $N --rate 300 --port 0 --port-file "$T/fh.url" --sent-file "$T/sent.jsonl" \
  --log-file "$T/replay.log" >"$T/replay.out" 2>&1
check "finnhub-replay starts" wait_for 20 test -s "$T/fh.url"
export SLUICE_FINNHUB_URL=$(cat "$T/fh.url") SLUICE_PLUGIN_PATH=$BUILD/plugins SLUICE_STATUS_INTERVAL_MS=1000
# 5 s windows (the shipped default is 10 s): the last ones close sooner
export SLUICE_WINDOW_SIZE_MS=5000

# conf/worker.json as shipped, with group timeouts that let a killed member's
# partitions move in seconds.
check "worker config" "$ROOT/tools/fast-group-conf.sh" "$ROOT/conf/worker.json" "$T/worker.json"
SINKS=(conf/connectors/snowflake-trades.json)
[ $HAS_WINDOW = 1 ] && SINKS+=(conf/connectors/snowflake-summary.json)
rc=0; "$SLUICE" validate "$T/worker.json" conf/connectors/finnhub.json "${SINKS[@]}" >"$T/validate.log" 2>&1 || rc=$?
check_eq "the shipped configs validate with the environment only" 0 "$rc"
rc=0; env -u sf_url "$SLUICE" validate "$T/worker.json" conf/connectors/snowflake-trades.json >"$T/validate2.log" 2>&1 || rc=$?
check "without sf_url the detailed sink is refused, naming the key and the variable" bash -c \
  "[ $rc -ne 0 ] && grep -q \"config key 'snowflake.url.name'.*environment variable 'sf_url' is not set\" '$T/validate2.log'"

sinks() { # log: the sinks' worker
  SLUICE_OFFSETS_FILE=$T/sinks.offsets SLUICE_METRICS_FILE=$T/sinks.prom \
    start_bg "$SLUICE" standalone "$T/worker.json" "${SINKS[@]}" 2>"$1"
  WK=$LAST_PID
}
SLUICE_OFFSETS_FILE=$T/source.offsets SLUICE_METRICS_FILE=$T/source.prom \
  start_bg "$SLUICE" standalone "$T/worker.json" conf/connectors/finnhub.json 2>"$T/source.log"
WS=$LAST_PID
sinks "$T/sinks1.log"

q() { "$EMU" query --db "$T/sf.sqlite" --database ITDB --schema RAW "$1" 2>>"$T/query.err" | tail -n +2; }
rows() { q "SELECT COUNT(*) FROM $1" | grep -E '^[0-9]+$' || echo 0; }
rows_at_least() { [ "$(rows "$1")" -ge "$2" ]; }

# --- 1. kill -9 of the sinks' worker mid-run -------------------------------------
check "rows flowing into TRADES_DETAILED" wait_for 40 rows_at_least TRADES_DETAILED 300
kill -KILL $WK
wait $WK 2>/dev/null
at_kill=$(rows TRADES_DETAILED)
sent_at_kill=$(wc -l <"$T/sent.jsonl")
sinks "$T/sinks2.log"
check "killed mid-run ($at_kill of $N rows written, $sent_at_kill trades sent)" test "$at_kill" -lt $N
sent_all() { [ "$(wc -l <"$T/sent.jsonl")" -ge $N ]; }
check "the replay server sent all $N trades" wait_for 40 sent_all
in_kafka() { kcat -b "$BS" -C -t trades -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l; }
kafka_all() { [ "$(in_kafka)" -ge $N ]; }
check "all $N trades are in Kafka" wait_for 30 kafka_all

# --- 3. make run's script: progress, then SIGINT (it stops while 1-2 go on) -------
run_rows() { grep -Eq 'DETAILED_DFX: [1-9][0-9]* rows' "$T/run.out"; }
check "run-pipeline: progress lines with rows in the .env's table (DETAILED_DFX)" wait_for 60 run_rows
# everything it started inherited SLUICE_RUN_DIR (this shell did not)
run_procs() { grep -lsF -- "SLUICE_RUN_DIR=$T/run" /proc/[0-9]*/environ | wc -l; }
n=$(run_procs)
check "run-pipeline: its processes are found by their environment (script, worker, replay, emulator: $n)" test "$n" -ge 4
kill -INT $RP

# --- 1. (cont.) ----------------------------------------------------------------------
check "after the restart: $N rows in TRADES_DETAILED" wait_for 60 rows_at_least TRADES_DETAILED $N
check "the restart resumed from the table's offsets" grep -q "TRADES_DETAILED holds offsets up to" "$T/sinks2.log"

# --- 2. the summary table ---------------------------------------------------------
if [ $HAS_WINDOW = 1 ]; then
  # The summary table against windows recomputed here from the sent trades:
  # tumbling windows of the connector's size on the trade time, per symbol;
  # every column the table shares with the aggregates below is compared.
  summary_matches() {
    "$EMU" query --db "$T/sf.sqlite" --database ITDB --schema RAW "SELECT * FROM TRADES_SUMMARY" \
      >"$T/summary.tsv" 2>>"$T/query.err" || return 1
    $PY "$ROOT/tests/summary_check.py" "$T/sent.jsonl" "$T/summary.tsv" conf/connectors/snowflake-summary.json >"$T/summary.diff"
  }
  check "the summary table equals the recomputation from the sent trades" wait_for 60 summary_matches
  sed 's/^/  /' "$T/summary.diff"
else
  echo "PENDING - summary table vs a python recomputation: transform-window is not built (issue 6 not merged)"
fi
sleep 1.5 # a last flush of anything in flight, then prove nothing more comes
stop_worker $WK; rc_k=$STOP_RC
stop_worker $WS; rc_s=$STOP_RC
check_eq "both workers exit 0 on SIGTERM" "0 0" "$rc_k $rc_s"

q "SELECT SYMBOL, PRICE, VOLUME, TRADE_TIMESTAMP, TRADE_CONDITIONS, TRADE_ID, KAFKA_PARTITION, KAFKA_OFFSET FROM TRADES_DETAILED" >"$T/detailed.tsv"
check "the detailed table is the sent trades exactly, field by field" $PY tests/detailed_check.py "$T/sent.jsonl" "$T/detailed.tsv" $N
check_eq "the source delivered to Kafka, no errors (metrics.file)" "$N 0" \
  "$(awk '/^sluice_source_records_acked_total\{connector="finnhub-trades"/ { a += $NF }
          /^sluice_record_errors_total\{connector="finnhub-trades"/ { e += $NF } END { print a + 0, e + 0 }' "$T/source.prom")"
check_eq "the sinks' consumer lag is 0 at the end (metrics.file)" 0 \
  "$(awk '/^sluice_sink_consumer_lag\{connector="snowflake-trades"/ { s += $NF } END { print s + 0 }' "$T/sinks.prom")"

# --- 3. make run's script: its end --------------------------------------------
i=0; while kill -0 $RP 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
rc=0; wait $RP || rc=$?
check_eq "run-pipeline: exits 0 on SIGINT" 0 "$rc"
check "run-pipeline: progress line shape" grep -Eq \
  '^\[[0-9]+s\] trades in: [0-9]+ \([0-9]+/s\) \| DETAILED_DFX: [0-9]+ rows .*\| consumer lag: [0-9]+( detailed, [0-9]+ summary)?$' "$T/run.out"
check "run-pipeline: read the .env" grep -q "^read $T/orig.env" "$T/run.out"
check "run-pipeline: the worker stopped cleanly" grep -q '^worker stopped (exit 0)' "$T/run.out"
in_run=$(sed -n 's/^  trades into Kafka: *\([0-9]*\)$/\1/p' "$T/run.out")
rows_run=$(sed -n 's/^  rows in DETAILED_DFX: \([0-9]*\) .*/\1/p' "$T/run.out")
check "run-pipeline: summary: every trade in Kafka is a row ($in_run trades, $rows_run rows)" \
  test -n "$in_run" -a "$in_run" -gt 0 -a "$in_run" = "$rows_run"
check "run-pipeline: prints how to query the tables" grep -q 'snowflake-emulator query --db .*/run/snowflake.sqlite .*FROM DETAILED_DFX' "$T/run.out"
if [ $HAS_WINDOW = 1 ]; then
  check "run-pipeline: progress shows windows and the .env's summary table (SUMMARY_DFX)" grep -Eq \
    '\| windows emitted: [0-9]+, SUMMARY_DFX: [0-9]+ rows \|' "$T/run.out"
  sum_rows=$(sed -n 's/^  rows in SUMMARY_DFX: \([0-9]*\) .*/\1/p' "$T/run.out")
  check "run-pipeline: summary: windows in SUMMARY_DFX (${sum_rows:-none})" test "${sum_rows:-0}" -gt 0
fi
symbols=$("$EMU" query --db "$T/run/snowflake.sqlite" --database SLUICE --schema PUBLIC \
  "SELECT DISTINCT SYMBOL FROM DETAILED_DFX ORDER BY SYMBOL" 2>/dev/null | tail -n +2 | tr '\n' ' ')
check_eq "run-pipeline: the .env's tickers, topic and table were used" "BINANCE:BTCUSDT BINANCE:ETHUSDT  trades_raw" \
  "$symbols $("$EMU" query --db "$T/run/snowflake.sqlite" --database SLUICE --schema PUBLIC \
    "SELECT DISTINCT KAFKA_TOPIC FROM DETAILED_DFX" 2>/dev/null | tail -n +2)"
left=$(run_procs)
check_eq "run-pipeline: no process of its own left running" 0 "$left"

# --- secrets --------------------------------------------------------------------
check "no passphrase, token or key in any log" bash -c \
  "! grep -rqF -e '$sf_pem_pass' -e '$d2b_token_finnhubio' -e '$(sed -n 3p "$T/rsa_key.p8")' $T/*.log $T/run.out $T/run/*.log"
check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/*.log $T/run/*.log"
finish
