# tools/bench-pipeline.sh - the `pipeline` phase of tools/bench.sh, which
# sources it (its cluster $BS, $T, cleanup and helpers: run_worker, track,
# hwm, kcat_copy, row, rate, ratio, stop, wait_file). Not run on its own:
# `BENCH_PHASES=pipeline make bench` runs only this phase.
#
# The shipped configs (conf/worker.json, conf/connectors/finnhub.json,
# snowflake-trades.json, and snowflake-summary.json once transform-window is
# built) driven through the environment, against build/tools/finnhub-replay
# and build/tools/snowflake-emulator (a key pair made here), on the bench's
# kafka-embedded:
#   source   finnhub-replay flat out (PN synthetic trades, 8 symbols) ->
#            source-finnhub -> Kafka (bench.pipe), alone in its worker; done
#            when the topic's end offsets reach PN.
#   kcat     kcat -P of the very records (key + Avro value) and kcat -C of
#            the topic: the raw produce and consume baselines.
#   sinks    the sinks alone in a worker, reading the full bench.pipe from
#            the start: the detailed sink is done when its table holds PN
#            rows; the summary sink (transform-window, then upsert) when its
#            connector has read PN trades (its metrics file, ~1 s steps).
#   e2e      all connectors in one worker, the feed flat out: done when the
#            detailed table holds PN rows; this worker's peak RSS is "the
#            worker's".
#   latency  all connectors, the feed paced at BENCH_PIPELINE_RATE trades/s
#            for BENCH_PIPELINE_SECONDS: per row, LANDED_AT - INGEST_TIMESTAMP
#            (when the emulator inserted it - a column the bench adds with
#            DEFAULT CURRENT_TIMESTAMP(), which works in Snowflake too - minus
#            when the worker read the trade off the websocket), p50 / p99.
#            Window close -> summary row: a result carries the Kafka
#            position of the trade that closed its window, so LANDED_AT of
#            the summary row minus that trade's INGEST_TIMESTAMP (from the
#            detailed table) is how long closing and writing took.
#            Trades that arrived before the first row landed (while the
#            sinks joined their group) are left out: steady state only. The
#            shipped sink flushes every buffer.flush.time = 1 s and commits
#            every 1 s, which bounds what this can be.
# BENCH_PIPELINE_N (default 100000) is PN; BENCH_PIPELINE_RATE (1000) and
# BENCH_PIPELINE_SECONDS (15) shape the latency run.
PN=${BENCH_PIPELINE_N:-100000}
LRATE=${BENCH_PIPELINE_RATE:-1000}
LSECS=${BENCH_PIPELINE_SECONDS:-15}
case "$PN$LRATE$LSECS" in *[!0-9]*) die "BENCH_PIPELINE_N/_RATE/_SECONDS must be positive integers" ;; esac
LN=$((LRATE * LSECS))
EMU=$BUILD/tools/snowflake-emulator
SAVED_POLL=$POLL
POLL=0.2 # each sample is a query on the emulator's SQLite file

# --- the emulator and the environment the shipped configs read ---------------
export sf_pem_pass=$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')
openssl genrsa 2048 2>/dev/null | openssl pkcs8 -topk8 -v2 aes-256-cbc -passout "pass:$sf_pem_pass" \
  -out "$T/pipe.p8" || die "openssl failed"
openssl pkey -in "$T/pipe.p8" -passin "pass:$sf_pem_pass" -pubout -out "$T/pipe.pub" 2>/dev/null || die "openssl failed"
"$EMU" serve --port 0 --port-file "$T/pipe-sf.url" --db "$T/pipe.sqlite" --account BENCH --user BENCH \
  --public-key "$T/pipe.pub" --log-file "$T/pipe-sf.log" >"$T/pipe-sf.out" 2>&1 &
EMU_PID=$!; PIDS+=($EMU_PID)
wait_file $EMU_PID "$T/pipe-sf.url" "$T/pipe-sf.out" snowflake-emulator
export sf_url=$(cat "$T/pipe-sf.url") sf_account=BENCH sf_username=BENCH SF_PRIVATE_KEY_FILE=$T/pipe.p8
export sf_database=BENCH sf_schema=PUBLIC
export SLUICE_BOOTSTRAP_SERVERS=$BS SLUICE_PLUGIN_PATH=$BUILD/plugins SLUICE_STATUS_INTERVAL_MS=1000
export SLUICE_REST_PORT=0 # rest.port: any free port, never a clash with another worker
export d2b_token_finnhubio=$(cat "$T/fh.token" 2>/dev/null || head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$d2b_token_finnhubio" >"$T/pipe.token"
syms=; for i in 0 1 2 3 4 5 6 7; do syms+="${syms:+,}'BENCH:PIPE$i'"; done
export d2b_tickers_finnhubio="[$syms]"
# conf/worker.json as shipped, with fast group timeouts (see the script).
tools/fast-group-conf.sh conf/worker.json "$T/pipe-worker.json" || die "cannot write the worker config"
SINKS=(conf/connectors/snowflake-trades.json)
HAS_WINDOW=0
if [ -f "$BUILD/plugins/transform-window.so" ] && [ -f conf/connectors/snowflake-summary.json ]; then
  SINKS+=(conf/connectors/snowflake-summary.json); HAS_WINDOW=1
fi

q() { "$EMU" query --db "$T/pipe.sqlite" --database BENCH --schema PUBLIC "$1" 2>>"$T/pipe-query.err" | tail -n +2; }
# The detailed table as the sink makes it, plus LANDED_AT: the insert time.
precreate() {
  q "CREATE TABLE $1 (SYMBOL VARCHAR, PRICE FLOAT, VOLUME FLOAT, TRADE_TIMESTAMP TIMESTAMP_NTZ(9),
     TRADE_CONDITIONS VARIANT, INGEST_TIMESTAMP TIMESTAMP_NTZ(9), TRADE_ID VARCHAR, KAFKA_TOPIC VARCHAR,
     KAFKA_PARTITION NUMBER(38,0), KAFKA_OFFSET NUMBER(38,0), KAFKA_KEY VARCHAR, KAFKA_TIMESTAMP TIMESTAMP_NTZ(9),
     LANDED_AT TIMESTAMP_NTZ(9) DEFAULT CURRENT_TIMESTAMP())" >/dev/null || die "cannot create $1 on the emulator"
}
# The summary table as the sink makes it from trades_summary, plus LANDED_AT.
precreate_summary() {
  q "CREATE TABLE $1 (SYMBOL VARCHAR, WINDOW_START TIMESTAMP_NTZ(9), WINDOW_END TIMESTAMP_NTZ(9), IS_FINAL BOOLEAN,
     TRADE_COUNT NUMBER(38,0), VOLUME FLOAT, VWAP FLOAT, MIN_PRICE FLOAT, MAX_PRICE FLOAT, FIRST_PRICE FLOAT,
     LAST_PRICE FLOAT, MEAN_PRICE FLOAT, PRICE_VOLUME_MULTIPLY FLOAT, KAFKA_TOPIC VARCHAR,
     KAFKA_PARTITION NUMBER(38,0), KAFKA_OFFSET NUMBER(38,0), KAFKA_KEY VARCHAR, KAFKA_TIMESTAMP TIMESTAMP_NTZ(9),
     LANDED_AT TIMESTAMP_NTZ(9) DEFAULT CURRENT_TIMESTAMP())" >/dev/null || die "cannot create $1 on the emulator"
}
table_rows() { COUNT=$(q "SELECT COUNT(*) FROM $DETAILED" | grep -E '^[0-9]+$' || echo 0); }
# both_sinks: table_rows, plus when the summary connector had read all PN
# trades (its metrics file, rewritten every second); COUNT stays below PN
# until both are done. DET_END: when the detailed table held PN rows.
both_sinks() {
  table_rows
  [ -z "$DET_END" ] && [ "$COUNT" -ge "$PN" ] && DET_END=$(now)
  if [ $HAS_WINDOW = 1 ] && [ -z "$SUM_END" ]; then
    [ "$(metric sink_records_consumed_total snowflake-summary)" -ge "$PN" ] 2>/dev/null && SUM_END=$(now)
    [ -z "$SUM_END" ] && [ "$COUNT" -ge "$PN" ] && COUNT=$((PN - 1))
  fi
  return 0
}
# replay TAG RATE COUNT: a feed server (FR = its pid)
replay() {
  "$REPLAY" --token-file "$T/pipe.token" --synthetic --seed 9 --start-ms now --rate "$2" --count "$3" \
    --port 0 --port-file "$T/$1.port" --log-file "$T/$1-replay.log" >"$T/$1-replay.out" 2>&1 &
  FR=$!; PIDS+=($FR)
  wait_file $FR "$T/$1.port" "$T/$1-replay.out" finnhub-replay
  export SLUICE_FINNHUB_URL=$(cat "$T/$1.port")
}
# setup TAG TOPIC TABLE: the topic and table the next worker uses, its files
setup() {
  export d2b_kafka_producer_topic=$2 sf_table_detailedDFX=$3 sf_table_finalSummaryDFX=${3/DETAILED/SUMMARY}
  export SLUICE_OFFSETS_FILE=$T/$1.offsets SLUICE_METRICS_FILE=$T/$1.prom
  DETAILED=$3
}
metric() { awk -v n="sluice_$1" -v c="connector=\"$2\"" 'index($0, n "{") == 1 && index($0, c) { s += $NF }
  END { printf "%.0f", s }' "$SLUICE_METRICS_FILE" 2>/dev/null; }

# latency KIND TSV [LATENESS_MS]: "n left-out p50 p99 max" (ms) of LANDED_AT
# minus arrival over TSV rows "arrival landed [trade_time window_end]"; steady
# state only: arrivals once rows were landing (the sinks join their group a
# few seconds after the source starts). KIND window also leaves out windows
# closed by the idle timer (the closing trade is not past end + lateness).
latency() {
  /usr/bin/python3 - "$@" <<'PYEOF'
import datetime, sys
def t(s):
    d, _, frac = s.partition(".")
    return datetime.datetime.strptime(d, "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp() + float("0." + (frac or "0"))
kind, path = sys.argv[1], sys.argv[2]
rows = [[t(x) for x in l.rstrip("\n").split("\t")] for l in open(path) if l.strip()]
first_landed = min((r[1] for r in rows), default=0)
keep = [r for r in rows if r[0] >= first_landed]
if kind == "window":
    late = int(sys.argv[3]) / 1000.0
    keep = [r for r in keep if r[2] >= r[3] + late - 1e-6]
ms = sorted((r[1] - r[0]) * 1000 for r in keep)
if not ms:
    print("0 %d - - -" % len(rows)); sys.exit(0)
pct = lambda p: ms[min(len(ms) - 1, int(p / 100.0 * len(ms)))]
print("%d %d %.0f %.0f %.0f" % (len(ms), len(rows) - len(ms), pct(50), pct(99), ms[-1]))
PYEOF
}

# --- source ------------------------------------------------------------------
setup pipe-src bench.pipe PIPE_DETAILED
replay pipe-src 0 "$PN"
run_worker "pipeline source" "$T/pipe-src.log" "hwm bench.pipe" "$PN" "$T/pipe-worker.json" conf/connectors/finnhub.json
stop $FR
hwm bench.pipe
[ "$COUNT" -eq "$PN" ] || die "bench.pipe holds $COUNT records, not $PN"
SRC=("${WALL}s" "$(rate "$PN" "$WALL")" "$STEADY" "${STARTUP}s" "${CPU}s" "$RSS")

# --- kcat baselines ----------------------------------------------------------
kcat_copy bench.pipe bench.pipek pipe "$PN"
KPP=$KRATE; KPP_ROW=("${KWALL}s" "$KRATE" "${KCPU}s")
t0=$(now)
{ time timeout --foreground "$LIMIT" kcat -C -b "$BS" -t bench.pipe -o beginning -e -q -f 'x' >"$T/pipe-c.out" 2>"$T/pipe-c.err"; } \
  2>"$T/pipe-c.time" || die "kcat -C of bench.pipe failed"
t1=$(now)
[ "$(wc -c <"$T/pipe-c.out")" -eq "$PN" ] || die "kcat -C read $(wc -c <"$T/pipe-c.out") records of bench.pipe, not $PN"
KPC_WALL=$(fsub "$t1" "$t0"); KPC=$(rate "$PN" "$KPC_WALL")
row pipeline "kcat -P (the source's records)" "${KPP_ROW[0]}" "$KPP" 1.00 - - - "${KPP_ROW[2]}" -
row pipeline "kcat -C (the same topic)" "${KPC_WALL}s" "$KPC" 1.00 - - - "$(awk '{ printf "%.2f", $1 + $2 }' "$T/pipe-c.time")s" -
row pipeline "source-finnhub -> Kafka" "${SRC[0]}" "${SRC[1]}" "$(ratio "${SRC[1]}" "$KPP")" "${SRC[2]}" \
  "$(ratio "${SRC[2]}" "$KPP")" "${SRC[3]}" "${SRC[4]}" "${SRC[5]}"

# --- sinks on the full topic -------------------------------------------------
# Both sinks in one worker, each its own consumer group on the same topic.
setup pipe-sinks bench.pipe PIPE_DETAILED
precreate PIPE_DETAILED
emu_cpu0=$(cpu_of $EMU_PID)
DET_END=; SUM_END=
run_worker "pipeline sinks" "$T/pipe-sinks.log" both_sinks "$PN" "$T/pipe-worker.json" "${SINKS[@]}"
PIPE_LINES+=("pipeline: sinks run: snowflake-emulator cpu $(fsub "$(cpu_of $EMU_PID)" "$emu_cpu0")s (the worker's is in its row): the emulator, SQLite, executes one statement at a time")
t0=$(fsub "$T_END" "$WALL") # run_worker's start
DW=$(fsub "$DET_END" "$t0")
row pipeline "Kafka -> detailed table" "${DW}s" "$(rate "$PN" "$DW")" "$(ratio "$(rate "$PN" "$DW")" "$KPC")" \
  "$(rate $((PN - C_FIRST)) "$(fsub "$DET_END" "$T_FIRST")")" \
  "$(ratio "$(rate $((PN - C_FIRST)) "$(fsub "$DET_END" "$T_FIRST")")" "$KPC")" "${STARTUP}s" "${CPU}s" "$RSS"
[ "$(q "SELECT COUNT(DISTINCT KAFKA_PARTITION || ':' || KAFKA_OFFSET) FROM PIPE_DETAILED")" = "$PN" ] ||
  NOTES+=("pipeline sinks: PIPE_DETAILED does not hold $PN distinct Kafka offsets")
if [ $HAS_WINDOW = 1 ]; then
  SW=$(fsub "$SUM_END" "$t0")
  row pipeline "Kafka -> window -> summary" "${SW}s" "$(rate "$PN" "$SW")" "$(ratio "$(rate "$PN" "$SW")" "$KPC")" \
    - - - - -
  PIPE_LINES+=("pipeline: summary: trades read through transform-window (the metrics file, ~1 s resolution); $(q "SELECT COUNT(*) FROM PIPE_SUMMARY") windows in PIPE_SUMMARY")
else
  PIPE_LINES+=("pipeline: summary sink (transform-window -> upsert): pending, transform-window is not built (issue 6)")
fi

# --- end to end, flat out ----------------------------------------------------
setup pipe-e2e bench.e2e E2E_DETAILED
precreate E2E_DETAILED
replay pipe-e2e 0 "$PN"
run_worker "pipeline e2e" "$T/pipe-e2e.log" table_rows "$PN" "$T/pipe-worker.json" conf/connectors/finnhub.json "${SINKS[@]}"
stop $FR
E2E_RSS=$RSS
row pipeline "end to end (one worker)" "${WALL}s" "$(rate "$PN" "$WALL")" "$(ratio "$(rate "$PN" "$WALL")" "$KPP")" \
  "$STEADY" "$(ratio "$STEADY" "$KPP")" "${STARTUP}s" "${CPU}s" "$RSS"

# --- latency at a steady feed ------------------------------------------------
setup pipe-lat bench.lat LAT_DETAILED
precreate LAT_DETAILED
[ $HAS_WINDOW = 1 ] && precreate_summary LAT_SUMMARY
replay pipe-lat "$LRATE" "$LN"
run_worker "pipeline latency" "$T/pipe-lat.log" table_rows "$LN" "$T/pipe-worker.json" conf/connectors/finnhub.json "${SINKS[@]}"
stop $FR
q "SELECT INGEST_TIMESTAMP, LANDED_AT FROM LAT_DETAILED" >"$T/pipe-lat.tsv"
LAT=$(latency detailed "$T/pipe-lat.tsv") || die "latency computation failed"
read -r lat_n lat_warm lat_p50 lat_p99 lat_max <<<"$LAT"
PIPE_LINES+=("pipeline: latency trade arrival -> detailed row at $LRATE trades/s: p50 ${lat_p50} ms, p99 ${lat_p99} ms, max ${lat_max} ms over $lat_n trades (the $lat_warm that arrived before the first row landed - the sinks' group join - left out; sink buffer.flush.time 1 s)")
if [ $HAS_WINDOW = 1 ]; then
  # A window closes when a record of its partition moves the watermark past
  # its end; the result carries that record's Kafka position, so the
  # detailed table gives when the closing trade arrived. Windows closed by
  # the idle timer (no such record) are left out.
  q "SELECT D.INGEST_TIMESTAMP, S.LANDED_AT, D.TRADE_TIMESTAMP, S.WINDOW_END FROM LAT_SUMMARY S JOIN LAT_DETAILED D
     ON D.KAFKA_PARTITION = S.KAFKA_PARTITION AND D.KAFKA_OFFSET = S.KAFKA_OFFSET" >"$T/pipe-wlat.tsv"
  WLAT=$(latency window "$T/pipe-wlat.tsv" "${SLUICE_WINDOW_LATENESS_MS:-2000}") || die "window latency computation failed"
  read -r wl_n wl_idle wl_p50 wl_p99 wl_max <<<"$WLAT"
  PIPE_LINES+=("pipeline: latency window close -> summary row (closing trade's arrival -> row landed): p50 ${wl_p50} ms, p99 ${wl_p99} ms, max ${wl_max} ms over $wl_n windows ($wl_idle left out: closed by the idle timer, or by a trade that arrived before the first summary row landed)")
else
  PIPE_LINES+=("pipeline: latency window close -> summary row: pending (transform-window not merged)")
fi
PIPE_LINES+=("pipeline: worker peak RSS (all connectors, end to end flat out): $E2E_RSS")
PIPE_LINES+=("pipeline: ratios: source and end to end over kcat -P of the same records, sinks over kcat -C of the topic")
stop $EMU_PID
POLL=$SAVED_POLL
