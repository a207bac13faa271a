#!/usr/bin/env bash
# `make run`: the Finnhub -> Kafka -> Snowflake pipeline in one standalone
# worker, on local stand-ins unless real services are configured:
#   Kafka      the worker's in-process embedded cluster (3 mock brokers),
#              unless d2b_kafka_server is set (then d2b_kafka_server:d2b_kafka_port)
#   Finnhub    build/tools/finnhub-replay (synthetic trades, a token made
#              here), unless d2b_token_finnhubio is set (then wss://ws.finnhub.io)
#   Snowflake  build/tools/snowflake-emulator with a throwaway key pair made
#              here, unless sf_url is set (then sf_account, sf_username,
#              sf_database, sf_schema, sf_warehouse, sf_role, sf_pem_pass and
#              the key file SF_PRIVATE_KEY_FILE, default rsa_key.p8)
# The variables are the original project's .env names; a .env file in the
# current directory (or SLUICE_ENV_FILE) is read first, without a shell, so
# its values are taken literally. Connectors: conf/connectors/finnhub.json,
# snowflake-trades.json, and snowflake-summary.json once the transform-window
# plugin is built.
#
# A progress line every SLUICE_PROGRESS_S (2) seconds; Ctrl-C (SIGINT) or
# SIGTERM stops the worker cleanly (flush, commit), then the stand-ins, and
# prints a summary with how to query the tables. Everything of a run is in
# SLUICE_RUN_DIR (data/pipeline), emptied at the start: the embedded Kafka
# lives in memory, so each run starts from empty topics and tables.
#
# Knobs: SLUICE_REPLAY_RATE (trades/s, 50: about Finnhub's crypto pace, and
# event time then runs at wall-clock pace), SLUICE_REPLAY_COUNT (0 = no end),
# SLUICE_FINNHUB=replay (the replay server even when a token is set).
set -u
HERE=$PWD # where .env and rsa_key.p8 are looked for
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
RUN=${SLUICE_RUN_DIR:-data/pipeline}
case $RUN in /*) ;; *) RUN=$ROOT/$RUN ;; esac
EVERY=${SLUICE_PROGRESS_S:-2}
EMU=$BUILD/tools/snowflake-emulator

say() { echo "$*"; }
die() { echo "run-pipeline: $*" >&2; exit 1; }

# --- the original .env -------------------------------------------------------
# KEY=VALUE lines; '#' comments, 'export ', one pair of surrounding quotes
# dropped; nothing is expanded ($, backquotes and ['A','B'] stay as written).
load_env() {
  local line k v
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*(.*)$ ]] || continue
    k=${BASH_REMATCH[2]}; v=${BASH_REMATCH[3]}
    v=${v%"${v##*[![:space:]]}"}
    if [[ ${#v} -ge 2 && ( ($v == \"*\" ) || ($v == \'*\') ) ]]; then v=${v:1:${#v}-2}; fi
    [ -n "${!k+x}" ] || export "$k=$v" # the environment wins over the file
  done <"$1"
}
ENV_FILE=${SLUICE_ENV_FILE:-$HERE/.env}
if [ -f "$ENV_FILE" ]; then load_env "$ENV_FILE"; say "read $ENV_FILE"; fi
# the original project kept rsa_key.p8 next to its .env
if [ -n "${SF_PRIVATE_KEY_FILE:-}" ]; then
  case $SF_PRIVATE_KEY_FILE in /*) ;; *) export SF_PRIVATE_KEY_FILE=$HERE/$SF_PRIVATE_KEY_FILE ;; esac
elif [ -f "$HERE/rsa_key.p8" ]; then
  export SF_PRIVATE_KEY_FILE=$HERE/rsa_key.p8
fi

[ -x "$BUILD/sluice" ] || die "$BUILD/sluice missing (run make)"
rm -rf "$RUN" && mkdir -p "$RUN" || die "cannot make $RUN"

PIDS=()
WORKER=
cleanup() {
  local p
  [ -n "$WORKER" ] && kill -KILL "$WORKER" 2>/dev/null
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT
# The stand-ins run in their own sessions (setsid) so a Ctrl-C at the
# terminal reaches only this script, which stops the worker first.
start() { setsid "$@" & PIDS+=($!); LAST=$!; }
wait_file() { # file, pid, what
  local end=$((SECONDS + 20))
  until [ -s "$1" ]; do
    kill -0 "$2" 2>/dev/null || die "$3 exited (see $RUN)"
    [ $SECONDS -lt $end ] || die "$3 did not start in 20 s (see $RUN)"
    sleep 0.1
  done
}
TOPIC=${d2b_kafka_producer_topic:-trades}

# --- Kafka -------------------------------------------------------------------
# The worker's in-process embedded cluster: on Ctrl-C the worker's sinks then
# drain what its source wrote before the cluster goes, so every trade that
# reached Kafka is in the tables at the end.
if [ -n "${d2b_kafka_server:-}" ]; then
  export SLUICE_BOOTSTRAP_SERVERS="$d2b_kafka_server:${d2b_kafka_port:-9092}"
  KAFKA_WHAT="Kafka at $SLUICE_BOOTSTRAP_SERVERS"
else
  unset SLUICE_BOOTSTRAP_SERVERS
  export SLUICE_BOOTSTRAP_FILE=$RUN/bootstrap
  KAFKA_WHAT="embedded in the worker (3 mock brokers; address in $RUN/bootstrap)"
fi

# --- Finnhub -----------------------------------------------------------------
if [ -n "${d2b_token_finnhubio:-}" ] && [ "${SLUICE_FINNHUB:-}" != replay ]; then
  FINNHUB_WHAT="Finnhub (${SLUICE_FINNHUB_URL:-wss://ws.finnhub.io})"
else
  ( umask 077; head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN/finnhub.token" )
  start "$BUILD/tools/finnhub-replay" --token-file "$RUN/finnhub.token" --synthetic \
    --seed "${SLUICE_REPLAY_SEED:-$RANDOM}" --start-ms now --rate "${SLUICE_REPLAY_RATE:-50}" \
    --count "${SLUICE_REPLAY_COUNT:-0}" --port 0 --port-file "$RUN/finnhub.url" \
    --log-file "$RUN/finnhub-replay.log" >"$RUN/finnhub-replay.out" 2>&1
  wait_file "$RUN/finnhub.url" "$LAST" finnhub-replay
  export SLUICE_FINNHUB_URL=$(cat "$RUN/finnhub.url")
  export d2b_token_finnhubio=$(cat "$RUN/finnhub.token")
  FINNHUB_WHAT="finnhub-replay at $SLUICE_FINNHUB_URL (${SLUICE_REPLAY_RATE:-50} synthetic trades/s)"
fi

# --- Snowflake ---------------------------------------------------------------
EMULATED=0
if [ -n "${sf_url:-}" ]; then
  SNOWFLAKE_WHAT="Snowflake at $sf_url"
else
  EMULATED=1
  # A throwaway key pair: encrypted PKCS#8 with a random passphrase, as a
  # Snowflake user's rsa_key.p8 would be.
  export sf_pem_pass=$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  ( umask 077
    openssl genrsa 2048 2>/dev/null | openssl pkcs8 -topk8 -v2 aes-256-cbc \
      -passout "pass:$sf_pem_pass" -out "$RUN/rsa_key.p8" ) || die "openssl failed"
  openssl pkey -in "$RUN/rsa_key.p8" -passin "pass:$sf_pem_pass" -pubout -out "$RUN/rsa_key.pub" 2>/dev/null ||
    die "openssl failed"
  export sf_account=SLUICE sf_username=PIPELINE SF_PRIVATE_KEY_FILE=$RUN/rsa_key.p8
  export sf_database=${sf_database:-SLUICE} sf_schema=${sf_schema:-PUBLIC}
  start "$EMU" serve --port 0 --port-file "$RUN/snowflake.url" --db "$RUN/snowflake.sqlite" \
    --account "$sf_account" --user "$sf_username" --public-key "$RUN/rsa_key.pub" \
    --log-file "$RUN/snowflake-emulator.log" >"$RUN/snowflake-emulator.out" 2>&1
  wait_file "$RUN/snowflake.url" "$LAST" snowflake-emulator
  export sf_url=$(cat "$RUN/snowflake.url")
  SNOWFLAKE_WHAT="snowflake-emulator at $sf_url (tables in $RUN/snowflake.sqlite)"
fi
DETAILED=${sf_table_detailedDFX:-TRADES_DETAILED}
SUMMARY=${sf_table_finalSummaryDFX:-TRADES_SUMMARY}

# --- the worker --------------------------------------------------------------
CONNECTORS=(conf/connectors/finnhub.json conf/connectors/snowflake-trades.json)
if [ -f "$BUILD/plugins/transform-window.so" ] && [ -f conf/connectors/snowflake-summary.json ]; then
  CONNECTORS+=(conf/connectors/snowflake-summary.json)
  HAS_SUMMARY=1
else
  HAS_SUMMARY=0
fi
export SLUICE_METRICS_FILE=$RUN/metrics.prom SLUICE_OFFSETS_FILE=$RUN/offsets.json
export SLUICE_STATUS_INTERVAL_MS=1000 SLUICE_PLUGIN_PATH=$BUILD/plugins
# The REST API (Kafka Connect's endpoints) on SLUICE_REST_PORT (8083; 0 = any
# free port); connectors added over it are kept in the run directory.
export SLUICE_REST_PORT_FILE=$RUN/rest.port SLUICE_CONFIG_STORAGE_FILE=$RUN/connectors.json
say "Sluice pipeline: Finnhub trades -> Kafka topic '$TOPIC' -> Snowflake"
say "  feed:      $FINNHUB_WHAT"
say "  Kafka:     $KAFKA_WHAT"
say "  Snowflake: $SNOWFLAKE_WHAT"
say "  tables:    $DETAILED (every trade)$([ $HAS_SUMMARY = 1 ] && echo ", $SUMMARY (windows, upsert)" ||
  echo "; the summary table needs the transform-window plugin (not built)")"
say "  worker log: $RUN/worker.log; REST API on 127.0.0.1:${SLUICE_REST_PORT:-8083} (curl .../connectors?expand=status); Ctrl-C to stop"
"$BUILD/sluice" standalone conf/worker.json "${CONNECTORS[@]}" 2>"$RUN/worker.log" &
WORKER=$!

# --- progress ----------------------------------------------------------------
# metric NAME CONNECTOR: the sum over the connector's tasks in metrics.prom.
metric() {
  awk -v n="sluice_$1" -v c="connector=\"$2\"" '
    index($0, n "{") == 1 && index($0, c) { s += $NF } END { printf "%.0f", s }' "$RUN/metrics.prom" 2>/dev/null || echo 0
}
# rows TABLE: COUNT(*) in the emulator's tables ("-" on real Snowflake).
rows() {
  [ $EMULATED = 1 ] || { echo -; return; }
  "$EMU" query --db "$RUN/snowflake.sqlite" --database "$sf_database" --schema "$sf_schema" \
    "SELECT COUNT(*) FROM $1" 2>/dev/null | sed -n 2p | grep -E '^[0-9]+$' || echo 0
}
STOPPING=0
trap 'STOPPING=1' INT TERM
T0=$SECONDS; last_in=0; last_t=$SECONDS; ERRSEEN=0
progress() {
  local in put_d put_s lag rate now
  in=$(metric source_records_acked_total finnhub-trades)
  put_d=$(metric sink_records_put_total snowflake-trades)
  lag=$(metric sink_consumer_lag snowflake-trades)
  now=$SECONDS
  rate=$(( now > last_t ? (in - last_in) / (now - last_t) : 0 ))
  last_in=$in; last_t=$now
  local line="[$((now - T0))s] trades in: $in ($rate/s) | $DETAILED: $(rows "$DETAILED") rows"
  line+=" | consumer lag: $lag"
  if [ $HAS_SUMMARY = 1 ]; then
    put_s=$(metric sink_records_put_total snowflake-summary)
    # the summary sink's position moves when windows close: its lag counts
    # the trades in open windows
    line=${line/" | consumer lag: "/" | windows emitted: $put_s, $SUMMARY: $(rows "$SUMMARY") rows | consumer lag: "}
    line+=" detailed, $(metric sink_consumer_lag snowflake-summary) summary"
  fi
  if [ -t 1 ]; then printf '\r\033[K%s' "$line"; else echo "$line"; fi
  # errors the worker logged since the last line, on lines of their own
  local n; n=$(grep -c ' ERROR ' "$RUN/worker.log" 2>/dev/null); n=${n:-0}
  if [ "$n" -gt "$ERRSEEN" ]; then
    [ -t 1 ] && echo
    grep ' ERROR ' "$RUN/worker.log" | sed -n "$((ERRSEEN + 1)),\$p" | head -5 | sed 's/^/  worker: /'
    ERRSEEN=$n
  fi
}
while [ $STOPPING = 0 ] && kill -0 "$WORKER" 2>/dev/null; do
  sleep "$EVERY" & wait $! 2>/dev/null
  [ $STOPPING = 0 ] && progress
done
trap - INT TERM
[ -t 1 ] && echo
rc=0
if kill -0 "$WORKER" 2>/dev/null; then
  say "stopping the worker (flush, commit) ..."
  kill -INT "$WORKER"
fi
wait "$WORKER" || rc=$?
WORKER=
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
PIDS=()

# --- summary -----------------------------------------------------------------
if [ "$rc" = 0 ]; then
  say "worker stopped (exit 0)"
else
  say "worker exited $rc; the end of $RUN/worker.log:"
  tail -n 5 "$RUN/worker.log" | sed 's/^/  | /'
fi
say "  trades into Kafka:   $(metric source_records_acked_total finnhub-trades)"
say "  rows in $DETAILED: $(rows "$DETAILED") (sink put $(metric sink_records_put_total snowflake-trades))"
[ $HAS_SUMMARY = 1 ] && say "  rows in $SUMMARY: $(rows "$SUMMARY") (windows emitted $(metric sink_records_put_total snowflake-summary))"
if [ $EMULATED = 1 ]; then
  Q="$BUILD/tools/snowflake-emulator query --db $RUN/snowflake.sqlite --database $sf_database --schema $sf_schema"
  Q=${Q#"$ROOT/"}; Q=${Q//"$ROOT/"/}
  say "query the tables (Snowflake SQL, kept until the next run):"
  say "  $Q \"SELECT SYMBOL, COUNT(*), MIN(PRICE), MAX(PRICE) FROM $DETAILED GROUP BY SYMBOL\""
  say "  $Q \"SELECT * FROM $DETAILED ORDER BY TRADE_TIMESTAMP DESC LIMIT 5\""
  [ $HAS_SUMMARY = 1 ] && say "  $Q \"SELECT * FROM $SUMMARY ORDER BY WINDOW_START DESC LIMIT 5\""
fi
exit "$rc"
