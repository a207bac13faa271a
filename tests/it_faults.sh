# Integration: fault scenarios on the shipped pipeline - numbers, not
# promises (issue 10). Each trial runs conf/worker.json (via
# tools/fast-group-conf.sh) with conf/connectors/finnhub.json in one worker
# and the Snowflake sinks (snowflake-trades.json, and snowflake-summary.json
# when transform-window is built) in another, on a fresh
# build/tools/kafka-embedded, build/tools/snowflake-emulator and
# build/tools/finnhub-replay (--sent-file is the ground truth), with one
# fault injected:
#   sf-503       emulator answers 50% of requests 503 (channels too)
#   sf-429-slow  50% 429 "Too many requests" + 300 ms latency per statement
#   sf-drop      40% of connections closed without an answer, before or
#                after executing (the sink cannot know whether it committed)
#   ws-drop      the replay server drops the websocket mid-stream; Finnhub
#                has no replay, so trades in flight are gone (at most once,
#                docs/finnhub.md): "lost" counts against what reached Kafka
#   kill9        the sinks' worker is killed (kill -9) at seeded random
#                instants and restarted, KILLS times
#   kafka-down   broker 1 of 3 goes down for 3 s mid-stream
#                (kafka-embedded --control: rd_kafka_mock_broker_set_down)
#   kafka-errors Produce, Fetch and OffsetCommit requests fail with
#                retriable errors (rd_kafka_mock_push_request_errors)
# After each trial: records lost (a sent trade - or for ws-drop a trade in
# Kafka - with no row in the detailed table), records duplicated in the
# detailed table, summary rows differing from a python recomputation
# (tests/summary_check.py). All must be zero. Prints a table and ends with
# "N passed, N failed".
#   FAULT_TRIALS=n   trials per scenario, every scenario (unset: the short
#                    configuration `make test` runs; `make test-faults` uses 3)
#   FAULT_SEED=s     seed of the kill instants and the emulator's faults
#                    (default: random, printed)
#   FAULT_ONLY=name  run only the scenarios whose name contains this
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
EMU=$BUILD/tools/snowflake-emulator
cd "$ROOT"
TRIALS=${FAULT_TRIALS:-1}
SEED=${FAULT_SEED:-$((RANDOM * 32768 + RANDOM))}
echo "# FAULT_SEED=$SEED FAULT_TRIALS=$TRIALS (rerun with the same seed to repeat the kill instants and faults)"
RANDOM=$SEED
N=${FAULT_RECORDS:-800}
KILLS=${FAULT_KILLS:-2}
HAS_WINDOW=0
[ -f "$BUILD/plugins/transform-window.so" ] && [ -f conf/connectors/snowflake-summary.json ] && HAS_WINDOW=1
SINKS=(conf/connectors/snowflake-trades.json)
[ $HAS_WINDOW = 1 ] && SINKS+=(conf/connectors/snowflake-summary.json)

. "$ROOT/tests/pipeline_lib.sh"
export SLUICE_PLUGIN_PATH=$BUILD/plugins SLUICE_STATUS_INTERVAL_MS=1000
export SLUICE_WINDOW_SIZE_MS=2000 SLUICE_WINDOW_LATENESS_MS=500
check "worker config" "$ROOT/tools/fast-group-conf.sh" "$ROOT/conf/worker.json" "$T/worker.json"

# one trial: scenario name, trial dir; sets the row's figures
trial() {
  local sc=$1 D=$2 emu_args=() replay_args=() seed=$((RANDOM % 1000 + 1))
  mkdir -p "$D"
  case $sc in
    sf-503) emu_args=(--fail-rate 0.5 --fail-status 503 --seed $seed --faults-streaming on) ;;
    sf-429-slow) emu_args=(--fail-rate 0.5 --fail-status 429 --latency-ms 300 --seed $seed --faults-streaming on) ;;
    sf-drop) emu_args=(--drop-rate 0.4 --seed $seed --faults-streaming on) ;;
    ws-drop) replay_args=(--drop-after $((N / 3 + RANDOM % (N / 3)))) ;;
  esac
  local rate=400 brokers=1
  case $sc in kill9 | kafka-*) rate=100 ;; esac # the faults land while trades are still coming
  case $sc in kafka-*) brokers=3 ;; esac
  start_bg "$BUILD/tools/kafka-embedded" --brokers $brokers --control "$D/kafka.ctl" --bootstrap-file "$D/bootstrap" \
    --topic trades:3:1 --topic trades.dlq:1:1 --topic trades.snowflake.dlq:1:1 --topic trades.summary.dlq:1:1 >"$D/kafka.log" 2>&1
  local KP=$LAST_PID
  start_bg "$EMU" serve --port 0 --port-file "$D/sf.url" --db "$D/sf.sqlite" --account ITACCT --user LOADER \
    --public-key "$T/rsa_key.pub" --log-file "$D/emu.log" "${emu_args[@]}" >"$D/emu.out" 2>&1
  local EP=$LAST_PID
  start_bg "$BUILD/tools/finnhub-replay" --token-file "$T/token" --synthetic --seed $seed --start-ms now \
    --count $N --rate $rate --port 0 --port-file "$D/fh.url" --sent-file "$D/sent.jsonl" \
    --log-file "$D/replay.log" "${replay_args[@]}" >"$D/replay.out" 2>&1
  local RP=$LAST_PID
  wait_for 20 test -s "$D/bootstrap" -a -s "$D/sf.url" -a -s "$D/fh.url" || { echo "# $sc: stand-ins did not start"; return 1; }
  export SLUICE_BOOTSTRAP_SERVERS=$(cat "$D/bootstrap") sf_url=$(cat "$D/sf.url") SLUICE_FINNHUB_URL=$(cat "$D/fh.url")
  local BS=$SLUICE_BOOTSTRAP_SERVERS
  # the sinks first, so trades flow (and faults land) as soon as the source
  # connects
  local nsink=1
  SLUICE_OFFSETS_FILE=$D/sinks.offsets SLUICE_METRICS_FILE=$D/sinks.prom \
    start_bg "$SLUICE" standalone "$T/worker.json" "${SINKS[@]}" 2>"$D/sinks$nsink.log"
  local WK=$LAST_PID
  wait_for 30 grep -q 'snowflake-trades/0.*assigned 3 partition' "$D/sinks1.log"
  SLUICE_OFFSETS_FILE=$D/source.offsets SLUICE_METRICS_FILE=$D/source.prom \
    start_bg "$SLUICE" standalone "$T/worker.json" conf/connectors/finnhub.json 2>"$D/source.log"
  local WS=$LAST_PID
  q() { "$EMU" query --db "$D/sf.sqlite" --database ITDB --schema RAW "$1" 2>>"$D/query.err" | tail -n +2; }
  rows() { q "SELECT COUNT(*) FROM TRADES_DETAILED" | grep -E '^[0-9]+$' || echo 0; }
  rows_at_least() { [ "$(rows)" -ge "$1" ]; }
  if [ $sc = kill9 ]; then
    local k
    local before=0
    for k in $(seq "$KILLS"); do
      # the first kill once rows land, the next ones once the restarted
      # worker has its partitions back (while it catches up)
      wait_for 40 rows_at_least $((before + 1))
      wait_for 30 grep -q 'snowflake-trades/0.*assigned [1-9]' "$D/sinks$nsink.log"
      sleep "$((RANDOM % 1500 / 1000)).$((RANDOM % 1000))"
      kill -KILL $WK; wait $WK 2>/dev/null
      before=$(rows)
      echo "#   kill9: worker killed at $before rows, $(wc -l <"$D/sent.jsonl") trades sent"
      nsink=$((nsink + 1))
      SLUICE_OFFSETS_FILE=$D/sinks.offsets SLUICE_METRICS_FILE=$D/sinks.prom \
        start_bg "$SLUICE" standalone "$T/worker.json" "${SINKS[@]}" 2>"$D/sinks$nsink.log"
      WK=$LAST_PID
    done
  fi
  if [ $sc = kafka-down ]; then
    wait_for 40 rows_at_least 1
    sleep "0.$((RANDOM % 1000))"
    echo "down 1" >"$D/kafka.ctl"
    echo "#   kafka-down: broker 1 down at $(rows) rows, $(wc -l <"$D/sent.jsonl") trades sent"
    sleep 3
    echo "up 1" >"$D/kafka.ctl"
  elif [ $sc = kafka-errors ]; then
    wait_for 40 rows_at_least 1
    # NOT_ENOUGH_REPLICAS on Produce, NOT_LEADER_OR_FOLLOWER on Fetch,
    # COORDINATOR_NOT_AVAILABLE on OffsetCommit
    printf 'errors 0 19 5\nerrors 1 6 5\nerrors 8 15 3\n' >"$D/kafka.ctl"
  fi
  # the replay server is done when it has sent all N (ws-drop: the sent file
  # may hold more than reached the worker)
  sent_all() { [ "$(wc -l <"$D/sent.jsonl")" -ge $N ]; }
  wait_for 60 sent_all
  in_kafka() { kcat -b "$BS" -C -t trades -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l; }
  local reached=sent
  if [ $sc = ws-drop ]; then
    sleep 2 # the source's last produce acks
    reached=$(in_kafka)
  else
    kafka_all() { [ "$(in_kafka)" -ge $N ]; }
    wait_for 30 kafka_all
  fi
  counts() {
    q "SELECT SYMBOL, PRICE, VOLUME, TRADE_TIMESTAMP, KAFKA_PARTITION, KAFKA_OFFSET FROM TRADES_DETAILED" >"$D/detailed.tsv"
    FIG=$($PY tests/faults_count.py "$D/sent.jsonl" "$D/detailed.tsv" "$reached" "$D/reached.jsonl")
    case $FIG in *" lost=0 "*) return 0 ;; esac
    return 1
  }
  wait_for 90 counts
  SUMD=n/a
  if [ $HAS_WINDOW = 1 ]; then
    local truth=$D/sent.jsonl
    [ $sc = ws-drop ] && truth=$D/reached.jsonl
    summary_ok() {
      q_all() { "$EMU" query --db "$D/sf.sqlite" --database ITDB --schema RAW "SELECT * FROM TRADES_SUMMARY" 2>>"$D/query.err"; }
      q_all >"$D/summary.tsv" || return 1
      $PY tests/summary_check.py "$truth" "$D/summary.tsv" conf/connectors/snowflake-summary.json >"$D/summary.diff" 2>&1
    }
    wait_for 60 summary_ok
    SUMD=$(sed -n 's/^summary_diffs=//p' "$D/summary.diff")
    [ -n "$SUMD" ] || SUMD="error: $(head -c 200 "$D/summary.diff")"
  fi
  sleep 1 # anything still in flight lands now, and would show as a duplicate
  stop_worker $WK
  stop_worker $WS
  counts
  kill -TERM $KP $EP $RP 2>/dev/null; wait $KP $EP $RP 2>/dev/null
  # the faults that really happened, from the stand-ins' logs
  local faults=0
  case $sc in
    sf-*) faults=$(grep -cE ' (503|429) \(--fail-rate\)|dropped the connection' "$D/emu.log") ;;
    ws-drop) faults=$(grep -c 'drop: closing the connection' "$D/replay.log") ;;
    kill9) faults=$((nsink - 1)) ;;
    kafka-*) faults=$(grep -c '^control: .*: done' "$D/kafka.log") ;;
  esac
  FIG="$FIG summary_diffs=$SUMD faults=$faults"
}

printf '%-12s %6s %7s %8s %5s %10s %13s  %s\n' scenario trials faults records lost duplicated summary-diffs note >"$T/table"
# The short configuration (`make test`, FAULT_TRIALS unset) runs one trial of
# sf-503, kill9 and sf-drop, to stay near a minute; `make test-faults` runs
# every scenario (docs/faults.md has what kafka-down and kafka-errors found).
SCENARIOS=(sf-503 sf-429-slow sf-drop ws-drop kill9 kafka-down kafka-errors)
[ -z "${FAULT_TRIALS:-}" ] && SCENARIOS=(sf-503 kill9 sf-drop)
for sc in "${SCENARIOS[@]}"; do
  [ -n "${FAULT_ONLY:-}" ] && [[ $sc != *"$FAULT_ONLY"* ]] && continue
  tr=0 rec=0 lost=0 dup=0 sumd=0 bad=0 nf=0
  for i in $(seq "$TRIALS"); do
    FIG=""
    trial $sc "$T/$sc.$i"
    echo "#   $sc trial $i: $FIG"
    val() { echo "$FIG" | sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p"; }
    c=$(val checked) l=$(val lost) d=$(val duplicated) u=$(val unexpected) s=$(val summary_diffs) f=$(val faults)
    [ -n "$c" ] || { bad=1; continue; }
    [ "${f:-0}" -gt 0 ] || { echo "#   $sc trial $i: no fault was injected"; bad=1; }
    tr=$((tr + 1)) nf=$((nf + ${f:-0})) rec=$((rec + c)) lost=$((lost + l)) dup=$((dup + d + u))
    case $s in n/a) sumd=n/a ;; [0-9]*) [ "$sumd" = n/a ] || sumd=$((sumd + s)) ;; *) bad=1 ;; esac
  done
  note=""
  [ $sc = ws-drop ] && note="lost counted against trades that reached Kafka (source at most once across drops)"
  [ "$sumd" = n/a ] && note="$note${note:+; }summary not checked: transform-window not built"
  printf '%-12s %6s %7s %8s %5s %10s %13s  %s\n' $sc $tr $nf $rec $lost $dup $sumd "$note" >>"$T/table"
  check_eq "$sc: $tr trials, $nf faults, $rec records: 0 lost, 0 duplicated, 0 summary diffs" "$TRIALS 0 0 0 0" \
    "$tr $lost $dup $([ "$sumd" = n/a ] && echo 0 || echo $sumd) $bad"
done
cat "$T/table"
check "no passphrase or token in any log" bash -c \
  "! grep -rqF -e '$sf_pem_pass' -e '$d2b_token_finnhubio' $T/*/*.log"
check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/*/*.log"
finish
