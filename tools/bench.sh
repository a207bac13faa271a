#!/usr/bin/env bash
# `make bench`: throughput of the Sluice worker against kcat, measured in one
# run on this machine against one build/tools/kafka-embedded process (three
# mock brokers on loopback), so the ratios compare like with like.
#
#   produce  kcat -P of N pre-generated keyed JSON records (~40 B values,
#            idempotent, acks=all, lz4, linger.ms=5: the worker's producer
#            defaults), vs `sluice standalone` running source-counter for the
#            same N total (1 and 2 tasks, value.converter json and avro).
#   consume  kcat -C (assign, no group) of the N records kcat produced, and
#            kcat -G (a consumer-group member, like a sink task), vs sink-file
#            (fsync off) reading the same topic (value.converter json as bytes,
#            and json decoded through an Avro schema).
#   finnhub  source-finnhub (avro, schema trades) reading FN synthetic trades
#            flat out from build/tools/finnhub-replay (a local Finnhub
#            websocket server, token made at run time), vs kcat -P producing
#            the very records the worker wrote (dumped with kcat -C: key +
#            raw Avro value) with the produce row's settings.
#   snowflake  sink-snowflake writing SN Avro trades (made by finnhub-replay ->
#            source-finnhub) from Kafka into build/tools/snowflake-emulator,
#            once with snowflake.ingestion.method=SQL_API and once with
#            SNOWPIPE_STREAMING (each into a fresh emulator), counted as rows
#            in the table (committed: visible to a query), vs kcat -C reading
#            the same topic.
#   window   WN trades (one symbol per partition, event time in order, a
#            far-future sentinel per partition that closes the last window)
#            through sink-file with transform-window (10 s tumbling windows on
#            trade_time) vs the same sink-file pipeline without the transform,
#            on the same topic: records in per second, as a ratio.
#   pipeline the Finnhub -> Kafka -> Snowflake pipeline with the shipped
#            configs: source, detailed sink, summary sink, end to end,
#            latency and peak RSS against kcat on the same broker
#            (tools/bench-pipeline.sh, sourced from here; see there).
#
# BENCH_PHASES="produce consume finnhub window snowflake pipeline" (the default;
# spaces or commas) picks phases
# (consume needs kcat -P's records from produce: they are made for either).
# BENCH_N=<records> (default 500000) changes N; BENCH_FINNHUB_N (default
# 200000) the finnhub phase's FN; BENCH_SNOWFLAKE_N (default 20000) the
# snowflake phase's SN; BENCH_WINDOW_N (default 100000) the window phase's WN;
# BENCH_POLL=<seconds> the
# sampling interval (default 0.05). Every wait is bounded (BENCH_LIMIT, 120 s);
# every process is killed and the temp dir removed on every exit path.
#
# How "done" is measured (the robust part):
#  - A source is done when the topic's end offsets (high watermarks, summed
#    over partitions, read with `kcat -Q -t topic:p:-1`, ~10 ms per query)
#    reach N. The end offset counts what the brokers appended, which with
#    acks=all is what the worker gets acknowledged one round trip later;
#    it keeps counting after the mock broker ages old records out of a
#    partition's log (~190k small records), which matters because the counter
#    keys every record by its task, so one task writes one partition. The
#    worker's own "[progress] ... records into Kafka" lines are only written
#    on its 1 s report tick, too coarse for runs of a few seconds; with
#    status.interval.ms=1 the worker also writes one after the stop, which is
#    checked (N acked, 0 errors; a mismatch is reported below the table).
#  - A sink is done when its file holds N lines. The file is counted
#    incrementally (only the bytes appended since the last sample), so
#    polling stays cheap however large the file gets. sink-file buffers in
#    stdio and flushes at each pre_commit, so the sink connector runs with
#    offset.flush.interval.ms=100: the last lines show up at most ~100 ms late.
#    After the stop the file must hold exactly N lines.
#  - "startup" is worker launch until the first sample that sees a record
#    (process start, plugin load, broker metadata / consumer group join);
#    "steady" is the rate from that sample to the end: (N - seen) / (end - first).
#    Samples are BENCH_POLL apart, so both carry that much uncertainty.
#  - Peak RSS is VmHWM from /proc/<pid>/status and CPU is utime+stime from
#    /proc/<pid>/stat, read when the work is done, before the worker stops.
#    kcat's CPU comes from bash's `time` (kcat -G: sampled from /proc).
#  - The poller itself (one `kcat -Q` or one stat per sample) costs a few
#    percent of one core, shared with the process measured; the numbers
#    move by ~20-30% from run to run on a 2-core box (the mock brokers are
#    latency-bound and share the cores), so compare within one run.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SLUICE=$BUILD/sluice
EMBEDDED=$BUILD/tools/kafka-embedded
REPLAY=$BUILD/tools/finnhub-replay
EMU=$BUILD/tools/snowflake-emulator
N=${BENCH_N:-500000}
FN=${BENCH_FINNHUB_N:-200000}
SN=${BENCH_SNOWFLAKE_N:-20000}
WN=${BENCH_WINDOW_N:-100000}
PHASES=" $(echo "${BENCH_PHASES:-produce consume finnhub window snowflake pipeline}" | tr , ' ') "
POLL=${BENCH_POLL:-0.05}
LIMIT=${BENCH_LIMIT:-120}
CORES=$(nproc 2>/dev/null || echo '?')
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)

die() { echo "bench: $*" >&2; exit 1; }
case $N in '' | *[!0-9]*) die "BENCH_N must be a positive integer, not '$N'" ;; esac
[ "$N" -ge 100 ] || die "BENCH_N must be at least 100"
case $FN in '' | *[!0-9]*) die "BENCH_FINNHUB_N must be a positive integer, not '$FN'" ;; esac
[ "$FN" -ge 100 ] || die "BENCH_FINNHUB_N must be at least 100"
case $SN in '' | *[!0-9]*) die "BENCH_SNOWFLAKE_N must be a positive integer, not '$SN'" ;; esac
[ "$SN" -ge 100 ] || die "BENCH_SNOWFLAKE_N must be at least 100"
case $WN in '' | *[!0-9]*) die "BENCH_WINDOW_N must be a positive integer, not '$WN'" ;; esac
for ph in $PHASES; do
  case $ph in produce | consume | finnhub | window | snowflake | pipeline) ;; *) die "BENCH_PHASES: no phase '$ph' (produce consume finnhub window snowflake pipeline)" ;; esac
done
phase() { [[ $PHASES == *" $1 "* ]]; }
command -v kcat >/dev/null || die "kcat not found (make deps installs it)"
[ -x "$SLUICE" ] && [ -x "$EMBEDDED" ] && [ -x "$REPLAY" ] && [ -x "$EMU" ] || die "$SLUICE, $EMBEDDED, $REPLAY or $EMU missing (run make)"

# Partitions: keep each partition's share well under the mock broker's
# ~190k-record log cap, so the consume phase reads every record produced.
P=8
[ $((N / P)) -le 100000 ] || P=$(((N + 99999) / 100000))
# The finnhub records are keyed by symbol (one symbol, one partition): one
# symbol per 25k trades (finnhub_trades) keeps a partition's share under the
# cap too, unless many symbols hash to one partition (the dump's count is
# checked).
[ $((FN / P)) -le 100000 ] || P=$(((FN + 99999) / 100000))

T=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX") || die "mktemp failed"
PIDS=()
cleanup() {
  [ "${KEEP_TMP:-0}" = 1 ] && echo "bench: kept $T" >&2
  exec 2>/dev/null # no "Killed" job notices
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p"; done
  wait
  [ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# forget PID: drop a reaped process from the cleanup list (its id may be reused).
forget() { local a=() p; for p in "${PIDS[@]:-}"; do [ "$p" = "$1" ] || a+=("$p"); done; PIDS=("${a[@]:-}"); }
now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
# rate COUNT SECONDS -> records/s (integer), "-" when not measurable
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0 && n > 0) printf "%.0f", n / s; else print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
tail_log() { echo "--- last lines of $1:" >&2; tail -n 15 "$1" >&2; }

# --- the cluster -------------------------------------------------------------
TOPICS=(kcat s1j s2j s1a s2a fh fhk win sft pipe pipek e2e lat)
PIPE_LINES=()
targs=(); for t in "${TOPICS[@]}"; do targs+=(--topic "bench.$t:$P"); done
"$EMBEDDED" --brokers 3 "${targs[@]}" --bootstrap-file "$T/bootstrap" >"$T/embedded.log" 2>&1 &
EMB=$!; PIDS+=($EMB)
# wait_file PID FILE LOG WHAT: until PID has written FILE (20 s at most).
wait_file() {
  local end=$((SECONDS + 20))
  until [ -s "$2" ]; do
    kill -0 "$1" 2>/dev/null || { tail_log "$3"; die "$4 exited"; }
    [ $SECONDS -lt $end ] || die "$4 did not write $2 in 20 s"
    sleep 0.1
  done
}
wait_file $EMB "$T/bootstrap" "$T/embedded.log" kafka-embedded
BS=$(cat "$T/bootstrap")

# COUNT := sum of the end offsets of topic $1 (0 when the query fails).
hwm() {
  local a=() p
  for ((p = 0; p < P; p++)); do a+=(-t "$1:$p:-1"); done
  COUNT=$(timeout 10 kcat -Q -b "$BS" "${a[@]}" 2>/dev/null | awk '$3 == "offset" { s += $4 } END { print s + 0 }')
}

# track WHAT PID T0 TARGET: samples $COUNT (set by the command in WHAT) every
# POLL s until it reaches TARGET; sets T_FIRST/C_FIRST (first sample > 0) and
# T_END. Fails when PID (if any) dies or LIMIT seconds pass.
track() {
  local what=$1 pid=$2 t0=$3 target=$4 t
  T_FIRST=; C_FIRST=0; T_END=
  while :; do
    eval "$what"; t=$(now)
    if [ -z "$T_FIRST" ] && [ "$COUNT" -gt 0 ]; then T_FIRST=$t; C_FIRST=$COUNT; fi
    if [ "$COUNT" -ge "$target" ]; then T_END=$t; return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      tail_log "$LOG"; die "worker exited early ($COUNT of $target records)"
    fi
    if awk -v e="$(fsub "$t" "$t0")" -v l="$LIMIT" 'BEGIN { exit !(e > l) }'; then
      [ -n "$LOG" ] && tail_log "$LOG"; die "$LABEL: only $COUNT of $target records after ${LIMIT} s"
    fi
    sleep "$POLL"
  done
}

# stop PID: SIGTERM, wait at most 30 s, then SIGKILL; STOP_RC = exit status.
stop() {
  kill -TERM "$1" 2>/dev/null
  local i=0
  while kill -0 "$1" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL "$1" 2>/dev/null
  STOP_RC=0; wait "$1" 2>/dev/null || STOP_RC=$?
  forget "$1"
}

worker_conf() { # file, offsets file
  cat >"$1" <<JSON
{
  "bootstrap.servers": "$BS",
  "plugin.path": "$BUILD/plugins",
  "schemas.path": "$T/schemas",
  "offset.storage.file.filename": "$2",
  "offset.flush.interval.ms": 1000,
  "status.interval.ms": 1,
  "log.level": "info"
}
JSON
}
mkdir -p "$T/schemas"
# The shape of the counter's record and of the records kcat produces.
cat >"$T/schemas/counter.avsc" <<'JSON'
{"type": "record", "name": "Counter", "namespace": "io.sluice.example",
 "fields": [{"name": "task", "type": "int"}, {"name": "n", "type": "long"},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
JSON

ROWS=()
NOTES=()
TIMEFORMAT='%U %S' # bash's `time`: user and sys seconds
# row PHASE WHAT WALL_S RATE RATIO STEADY STEADY_RATIO STARTUP_S CPU_S RSS
row() { ROWS+=("$(printf '%-9s %-34s %7s %9s %6s %9s %6s %7s %6s %8s' "$@")"); }
rss_of() { awk '/^VmHWM:/ { printf "%.0fMB", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo -; }
cpu_of() { awk -v hz="$HZ" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo -; }
# last_progress LOG NAME WORD: the count in the last "[progress] NAME: <n> records WORD" line
last_progress() {
  grep -F "[progress] $2: " "$1" | grep -F "records $3" | tail -n 1 |
    sed -E 's/.*\] [^:]*: ([0-9]+) records.*, ([0-9]+) errors.*/\1 \2/'
}

# run_worker LABEL LOG WHAT TARGET CONFIG... : starts a worker, tracks WHAT to
# TARGET, reads RSS/CPU, stops it. Sets WALL STARTUP STEADY RSS CPU.
run_worker() {
  LABEL=$1; LOG=$2; local what=$3 target=$4; shift 4
  local t0 pid
  t0=$(now)
  "$SLUICE" standalone "$@" 2>"$LOG" &
  pid=$!; PIDS+=($pid)
  track "$what" $pid "$t0" "$target"
  RSS=$(rss_of $pid); CPU=$(cpu_of $pid)
  stop $pid
  [ "$STOP_RC" = 0 ] || { tail_log "$LOG"; die "$LABEL: worker exited $STOP_RC on SIGTERM"; }
  WALL=$(fsub "$T_END" "$t0")
  STARTUP=$(fsub "$T_FIRST" "$t0")
  STEADY=$(rate $((target - C_FIRST)) "$(fsub "$T_END" "$T_FIRST")")
}

# kcat_produce TOPIC FILE TAG WANT KCAT-ARGS...: kcat -P of FILE with the
# worker's producer defaults, then checks that WANT records landed in TOPIC.
# Sets KWALL KRATE KCPU.
kcat_produce() {
  local topic=$1 file=$2 tag=$3 want=$4 t0 t1; shift 4
  t0=$(now)
  { time timeout --foreground "$LIMIT" kcat -P -b "$BS" -t "$topic" "$@" -X linger.ms=5 -X compression.type=lz4 \
      -X enable.idempotence=true -X acks=all -X max.in.flight.requests.per.connection=1 -X batch.num.messages=10000 \
      -l "$file" 2>"$T/$tag.err"; } 2>"$T/$tag.time" ||
    { cat "$T/$tag.err" >&2; die "kcat -P to $topic failed"; }
  t1=$(now)
  hwm "$topic"
  [ "$COUNT" -eq "$want" ] || die "kcat produced $COUNT records to $topic, not $want (see $T/$tag.err)"
  KWALL=$(fsub "$t1" "$t0"); KRATE=$(rate "$want" "$KWALL")
  KCPU=$(awk '{ printf "%.2f", $1 + $2 }' "$T/$tag.time")
}
# kcat_copy FROM TO TAG N: dumps topic FROM (key + raw value, each record
# followed by a delimiter made now: Avro can hold any byte - tabs, newlines,
# NUL - so the dump must hold the delimiter exactly once per record; kcat -P
# splits the key at the first tab, symbols hold none; the delimiter has no
# regex metacharacter, as awk takes it as RS), checks it holds N records and
# kcat -P's it to TO (kcat_produce: sets KWALL KRATE KCPU). DELIM and
# $T/TAG.dump stay for a comparison.
kcat_copy() {
  local from=$1 to=$2 tag=$3 n=$4 got
  DELIM="~sluice-bench-$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')~"
  timeout --foreground "$LIMIT" kcat -C -b "$BS" -t "$from" -o beginning -e -q -f "%k\t%s$DELIM" \
    >"$T/$tag.dump" 2>"$T/$tag-dump.err" || { cat "$T/$tag-dump.err" >&2; die "kcat -C of $from failed"; }
  got=$(grep -aoF -- "$DELIM" "$T/$tag.dump" | wc -l)
  [ "$got" -eq "$n" ] || die "the dump of $from holds the delimiter $got times, not $n (records aged out of the mock broker's log, or the delimiter is in the data)"
  kcat_produce "$to" "$T/$tag.dump" "kcat-$tag" "$n" -K '\t' -D "$DELIM"
}

echo "sluice bench (N=$N, finnhub FN=$FN, snowflake SN=$SN, $P partitions, 3 mock brokers, $CORES cores; phases:$PHASES); sampling every ${POLL}s"

if phase produce || phase consume; then
# --- produce: kcat -------------------------------------------------------------
# Same shape as the counter's JSON records; 1000 distinct keys spread them
# over all partitions.
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++)
  printf "key-%d:{\"task\":0,\"n\":%d,\"ts\":%.0f}\n", i % 1000, i, 1700000000000 + i }' >"$T/records.txt"
kcat_produce bench.kcat "$T/records.txt" kcat-p "$N" -K:
KP_RATE=$KRATE
row produce kcat "${KWALL}s" "$KP_RATE" 1.00 - - - "${KCPU}s" -
fi # produce || consume

if phase produce; then
# --- produce: sluice source-counter -----------------------------------------------
for spec in 1:json:s1j 2:json:s2j 1:avro:s1a 2:avro:s2a; do
  IFS=: read -r tasks conv topic <<<"$spec"
  name=counter-$topic
  per=$((N / tasks)); target=$((per * tasks))
  worker_conf "$T/w-$topic.json" "$T/offsets-$topic.json"
  cat >"$T/$name.json" <<JSON
{"name": "$name", "config": {"connector.class": "source-counter", "tasks.max": "$tasks",
 "topic": "bench.$topic", "count": $per, "batch.size": 1000, "value.converter": "$conv"}}
JSON
  run_worker "produce $name" "$T/$name.log" "hwm bench.$topic" "$target" "$T/w-$topic.json" "$T/$name.json"
  read -r acked errors <<<"$(last_progress "$T/$name.log" "$name" "into Kafka")"
  [ "${acked:-}" = "$target" ] && [ "${errors:-}" = 0 ] ||
    NOTES+=("$name: the worker's last progress line says '${acked:-?}' acked, '${errors:-?}' errors (expected $target, 0)")
  row produce "sluice counter $conv (${tasks}t)" "${WALL}s" "$(rate "$target" "$WALL")" \
    "$(ratio "$(rate "$target" "$WALL")" "$KP_RATE")" "$STEADY" "$(ratio "$STEADY" "$KP_RATE")" \
    "${STARTUP}s" "${CPU}s" "$RSS"
done
fi # produce

# kcat_consume TOPIC TAG WANT: kcat -C (assign, no group) of TOPIC from the
# beginning to its end, one byte per record; checks it read WANT records.
# Sets KC_WALL KC_RATE KC_CPU.
kcat_consume() {
  local topic=$1 tag=$2 want=$3 t0 t1 got
  t0=$(now)
  { time timeout --foreground "$LIMIT" kcat -C -b "$BS" -t "$topic" -o beginning -e -q -f 'x' 2>"$T/$tag.err" >"$T/$tag.out"; } \
    2>"$T/$tag.time" || { cat "$T/$tag.err" >&2; die "kcat -C of $topic failed"; }
  t1=$(now)
  got=$(wc -c <"$T/$tag.out")
  [ "$got" -eq "$want" ] || die "kcat consumed $got records of $topic, not $want"
  KC_WALL=$(fsub "$t1" "$t0"); KC_RATE=$(rate "$want" "$KC_WALL")
  KC_CPU=$(awk '{ printf "%.2f", $1 + $2 }' "$T/$tag.time")
}

# COUNT := lines in $SINK_FILE, counting only what was appended since last time.
OFF=0; LINES=0
file_lines() {
  local size
  size=$(stat -c %s "$SINK_FILE" 2>/dev/null || echo 0)
  if [ "$size" -gt "$OFF" ]; then
    LINES=$((LINES + $(tail -c +$((OFF + 1)) "$SINK_FILE" | head -c $((size - OFF)) | wc -l)))
    OFF=$size
  fi
  COUNT=$LINES
}
file_bytes() { COUNT=$(stat -c %s "$SINK_FILE" 2>/dev/null || echo 0); }

if phase consume; then
# --- consume: kcat ----------------------------------------------------------------
kcat_consume bench.kcat kcat-c "$N"
row consume kcat "${KC_WALL}s" "$KC_RATE" 1.00 - - - "${KC_CPU}s" -


# --- consume: kcat as a group member ---------------------------------------------
# The sink is a consumer-group member (join, cooperative-sticky assignment);
# kcat -G with the worker's consumer defaults is the like-for-like reference,
# measured the same way as the sink (one byte per record, sampled).
SINK_FILE=$T/kcat-g.out; LABEL="consume kcat -G"; LOG=$T/kcat-g.err
t0=$(now)
# Started directly (not in a subshell) so cleanup can kill it by its id;
# track bounds its time. Its CPU is sampled from /proc with each count (bash
# reaps it at once when it exits), so it misses only its exit.
kcat -b "$BS" -G bench-kcat -o beginning -e -q -f 'x' -X auto.offset.reset=earliest \
  -X partition.assignment.strategy=cooperative-sticky -X enable.auto.commit=false \
  bench.kcat >"$SINK_FILE" 2>"$LOG" &
KG=$!; PIDS+=($KG); KG_CPU=-
kcat_g_count() { local c; c=$(cpu_of $KG) && [ "$c" != - ] && KG_CPU=$c; file_bytes; }
track kcat_g_count $KG "$t0" "$N"
rc=0; wait $KG || rc=$?
forget $KG
[ "$rc" = 0 ] || { tail_log "$LOG"; die "kcat -G exited $rc"; }
got=$(stat -c %s "$SINK_FILE")
[ "$got" -eq "$N" ] || die "kcat -G consumed $got records, not $N"
WALL=$(fsub "$T_END" "$t0"); STARTUP=$(fsub "$T_FIRST" "$t0")
STEADY=$(rate $((N - C_FIRST)) "$(fsub "$T_END" "$T_FIRST")")
row consume "kcat -G (group member)" "${WALL}s" "$(rate "$N" "$WALL")" \
  "$(ratio "$(rate "$N" "$WALL")" "$KC_RATE")" "$STEADY" "$(ratio "$STEADY" "$KC_RATE")" \
  "${STARTUP}s" "${KG_CPU}s" -

# --- consume: sluice sink-file ------------------------------------------------------
for spec in json:bytes json+schema:counter; do
  IFS=: read -r what schema <<<"$spec"
  name=file-${what/+/-}
  SINK_FILE=$T/$name.jsonl; OFF=0; LINES=0
  extra=; [ "$schema" = bytes ] || extra=", \"value.converter.schema\": \"$schema\""
  worker_conf "$T/w-$name.json" "$T/offsets-$name.json"
  cat >"$T/$name.json" <<JSON
{"name": "$name", "config": {"connector.class": "sink-file", "tasks.max": "1",
 "topics": "bench.kcat", "file": "$SINK_FILE", "fsync": "false",
 "offset.flush.interval.ms": 100, "value.converter": "json"$extra}}
JSON
  run_worker "consume $name" "$T/$name.log" file_lines "$N" "$T/w-$name.json" "$T/$name.json"
  lines=$(wc -l <"$SINK_FILE")
  [ "$lines" -eq "$N" ] || die "$name: $lines lines in the file after the stop, expected $N"
  read -r put errors <<<"$(last_progress "$T/$name.log" "$name" "written")"
  [ "${put:-}" = "$N" ] && [ "${errors:-}" = 0 ] ||
    NOTES+=("$name: the worker's last progress line says '${put:-?}' written, '${errors:-?}' errors (expected $N, 0)")
  row consume "sluice sink-file $what" "${WALL}s" "$(rate "$N" "$WALL")" \
    "$(ratio "$(rate "$N" "$WALL")" "$KC_RATE")" "$STEADY" "$(ratio "$STEADY" "$KC_RATE")" \
    "${STARTUP}s" "${CPU}s" "$RSS"
done
fi # consume

# finnhub_trades TAG TOPIC COUNT: finnhub-replay sends COUNT synthetic trades
# flat out (--rate 0) to the one client it serves, source-finnhub (avro,
# schema trades) writes one record per trade to TOPIC, keyed by symbol;
# run_worker measures it (WALL STARTUP STEADY RSS CPU). Checks that the
# replay sent COUNT and TOPIC holds COUNT. Sets FR_CPU (the replay's cpu).
# The token is made here and reaches the worker through ${env:...}.
finnhub_trades() {
  local tag=$1 topic=$2 count=$3 name=finnhub-$1 nsym syms= i sent acked errors
  nsym=$(((count + 24999) / 25000)); [ "$nsym" -ge 4 ] || nsym=4
  head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/$tag.token"
  BENCH_FH_TOKEN=$(cat "$T/$tag.token"); export BENCH_FH_TOKEN
  for ((i = 0; i < nsym; i++)); do syms+="${syms:+,}BENCH:SYM$i"; done
  "$REPLAY" --token-file "$T/$tag.token" --synthetic --seed 7 --rate 0 --count "$count" --max-symbols "$nsym" \
    --port 0 --port-file "$T/$tag.port" --log-file "$T/$tag-replay.log" >"$T/$tag-replay.out" 2>"$T/$tag-replay.err" &
  FR=$!; PIDS+=("$FR")
  wait_file "$FR" "$T/$tag.port" "$T/$tag-replay.err" finnhub-replay
  worker_conf "$T/w-$tag.json" "$T/offsets-$tag.json"
  cat >"$T/$name.json" <<JSON
{"name": "$name", "config": {"connector.class": "source-finnhub", "tasks.max": "1",
 "finnhub.url": "$(cat "$T/$tag.port")", "finnhub.token": "\${env:BENCH_FH_TOKEN}", "finnhub.symbols": "$syms",
 "topic": "$topic", "value.converter": "avro", "value.converter.schema": "trades"}}
JSON
  cp "$ROOT/schemas/trades.avsc" "$T/schemas/"
  run_worker "finnhub $name" "$T/$name.log" "hwm $topic" "$count" "$T/w-$tag.json" "$T/$name.json"
  FR_CPU=$(cpu_of $FR)
  stop $FR
  [ "$STOP_RC" = 0 ] || { tail_log "$T/$tag-replay.err"; die "finnhub-replay exited $STOP_RC on SIGTERM"; }
  sent=$(awk '/ trades sent$/ { print $1 }' "$T/$tag-replay.out")
  [ "${sent:-}" = "$count" ] || die "finnhub-replay says it sent '${sent:-?}' trades, not $count"
  hwm "$topic"
  [ "$COUNT" -eq "$count" ] || die "$topic holds $COUNT records, not $count"
  read -r acked errors <<<"$(last_progress "$T/$name.log" "$name" "into Kafka")"
  [ "${acked:-}" = "$count" ] && [ "${errors:-}" = 0 ] ||
    NOTES+=("$name: the worker's last progress line says '${acked:-?}' acked, '${errors:-?}' errors (expected $count, 0)")
}

if phase finnhub; then
# --- finnhub: sluice source-finnhub -------------------------------------------------
finnhub_trades fh bench.fh "$FN"
# The server's own send time: its log's first subscribe to "count reached"
# (wall-clock ms stamps). It sends only as fast as the worker reads, so a
# send rate near the worker's with the server's cpu near its send time means
# the server is the limit; well below means the worker is. "Sent" is written
# to the socket: the last few MB may still sit in the kernel's buffers.
ts_of() { date -d "$(grep -m1 -F " $1" "$T/fh-replay.log" | cut -d' ' -f1)" +%s.%N 2>/dev/null; }
s0=$(ts_of subscribe) && s1=$(ts_of 'count reached') && [ -n "$s0" ] && [ -n "$s1" ] || die "no subscribe/count lines in $T/fh-replay.log"
FR_SEND=$(fsub "$s1" "$s0")
NOTES+=("finnhub-replay sent the $FN trades in ${FR_SEND}s ($(rate "$FN" "$FR_SEND") trades/s, first subscribe to count reached, written to its socket; server cpu ${FR_CPU}s over the whole run)")
FH_RATE=$(rate "$FN" "$WALL"); FH_STEADY=$STEADY
FH_ROW=("${WALL}s" "${STARTUP}s" "${CPU}s" "$RSS")

# --- finnhub: kcat -P of the same records ------------------------------------------
# The records the worker wrote, key + raw Avro value, each followed by a
# delimiter made now: Avro can hold any byte (tabs, newlines, NUL), so the
# dump must hold the delimiter exactly once per record. kcat -P splits the
# key at the first tab (symbols hold none). The delimiter has no regex
# metacharacter, as awk takes it as RS.
kcat_copy bench.fh bench.fhk fh "$FN"
# Byte for byte: the first 1000 re-produced records read back are among the
# originals, key and value.
timeout --foreground "$LIMIT" kcat -C -b "$BS" -t bench.fhk -o beginning -c 1000 -e -q -f "%k\t%s$DELIM" \
  >"$T/fhk.sample" 2>/dev/null || die "kcat -C of bench.fhk failed"
cmp_out=$(awk -v RS="$DELIM" 'FNR == NR { seen[$0] = 1; next } { n++; if (!($0 in seen)) bad++ }
  END { printf "%d %d", n, bad }' "$T/fh.dump" "$T/fhk.sample") 2>/dev/null
read -r n_sample n_bad <<<"$cmp_out"
[ "${n_sample:-0}" -gt 0 ] && [ "${n_bad:-1}" = 0 ] ||
  die "re-produced records differ from bench.fh's ($cmp_out: sampled, not found)"
KF_RATE=$KRATE
row finnhub "kcat (same Avro records)" "${KWALL}s" "$KF_RATE" 1.00 - - - "${KCPU}s" -
row finnhub "sluice source-finnhub avro" "${FH_ROW[0]}" "$FH_RATE" "$(ratio "$FH_RATE" "$KF_RATE")" \
  "$FH_STEADY" "$(ratio "$FH_STEADY" "$KF_RATE")" "${FH_ROW[1]}" "${FH_ROW[2]}" "${FH_ROW[3]}"
fi # finnhub

if phase window; then
# --- window: sink-file with and without transform-window ----------------------------
# WN trades, symbol i on partition i (P symbols), event time in order, 20 ms
# apart per symbol, then one sentinel per partition 1 h later: every window
# but the sentinel's closes, each by a record of its own (one symbol per
# partition, tumbling), so every result has an offset of its own and
# sink-file (which skips offsets it wrote) keeps them all: the file ends
# with exactly RESULTS lines.
cp "$ROOT/schemas/trades_summary.avsc" "$ROOT/schemas/trades.avsc" "$T/schemas/"
[ -n "${DELIM:-}" ] || DELIM="~sluice-bench-$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')~"
RESULTS=$(/usr/bin/python3 - "$ROOT/schemas/trades.avsc" "$T" "$DELIM" "$WN" "$P" <<'PYEOF'
import io, sys, datetime, avro.schema, avro.io
schema = avro.schema.parse(open(sys.argv[1]).read())
T, delim, n, parts = sys.argv[2], sys.argv[3].encode(), int(sys.argv[4]), int(sys.argv[5])
E = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
w = avro.io.DatumWriter(schema)
windows = set()
files = [open("%s/win-%d.dump" % (T, p), "wb") for p in range(parts)]
def put(p, sym, ms, i):
    buf = io.BytesIO()
    w.write({"symbol": sym, "price": 100 + (i * 7919 % 1000) / 100.0, "volume": 1 + i % 5,
             "trade_time": E + datetime.timedelta(milliseconds=ms), "conditions": None,
             "ingest_time": E, "trade_id": str(i)}, avro.io.BinaryEncoder(buf))
    files[p].write(sym.encode() + b"\t" + buf.getvalue() + delim)
for i in range(n):
    p = i % parts
    ms = 1700000000000 + (i // parts) * 20
    put(p, "SYM%d" % p, ms, i)
    windows.add((p, ms // 10000))
for p in range(parts):
    put(p, "SYM%d" % p, 1700000000000 + 3600000 + n * 20, n + p)
print(len(windows))
PYEOF
) || die "generating the window phase's trades failed"
for ((p = 0; p < P; p++)); do
  kcat -P -b "$BS" -t bench.win -p $p -K '\t' -D "$DELIM" -X linger.ms=5 -X batch.num.messages=10000 \
    <"$T/win-$p.dump" 2>>"$T/win-produce.err" || die "kcat -P to bench.win failed"
done
WIN_IN=$((WN + P))
hwm bench.win
[ "$COUNT" -eq "$WIN_IN" ] || die "bench.win holds $COUNT records, not $WIN_IN"
for name in win-plain win-window; do
  SINK_FILE=$T/$name.jsonl; OFF=0; LINES=0
  worker_conf "$T/w-$name.json" "$T/offsets-$name.json"
  extra=; want=$WIN_IN
  if [ $name = win-window ]; then
    want=$RESULTS
    extra=', "transforms": "w", "transforms.w.type": "transform-window", "transforms.w.window.size.ms": "10000", "transforms.w.window.time.field": "trade_time"'
  fi
  cat >"$T/$name.json" <<JSON
{"name": "$name", "config": {"connector.class": "sink-file", "tasks.max": "1",
 "topics": "bench.win", "file": "$SINK_FILE", "fsync": "false", "offset.flush.interval.ms": 100,
 "value.converter": "avro", "value.converter.schema": "trades"$extra}}
JSON
  run_worker "window $name" "$T/$name.log" file_lines "$want" "$T/w-$name.json" "$T/$name.json"
  lines=$(wc -l <"$SINK_FILE")
  [ "$lines" -eq "$want" ] || die "$name: $lines lines in the file after the stop, expected $want"
  # the clock runs until the last line: for the window, the sentinel's results
  if [ $name = win-plain ]; then
    WP_RATE=$(rate "$WIN_IN" "$WALL"); WP_STEADY=$STEADY
    row window "sluice sink-file avro" "${WALL}s" "$WP_RATE" 1.00 "$STEADY" - "${STARTUP}s" "${CPU}s" "$RSS"
  else
    # steady: records in from the first result line to the last (results trail the input)
    WW_RATE=$(rate "$WIN_IN" "$WALL")
    row window "sink-file + transform-window" "${WALL}s" "$WW_RATE" "$(ratio "$WW_RATE" "$WP_RATE")" \
      - - "${STARTUP}s" "${CPU}s" "$RSS"
  fi
done
grep -q '"window_start"' "$T/win-window.jsonl" || die "win-window: no trades_summary records in the file"
NOTES+=("window: $WIN_IN trades in ($P symbols, one per partition), $RESULTS window results out; rec/s = trades in per second until the last line (the plain sink's steady rate: $WP_STEADY/s); ratio = over the plain sink-file row in the same run")

fi # window

if phase snowflake; then
# --- snowflake: sink-snowflake into snowflake-emulator ------------------------------
# SN Avro trades in bench.sft, then kcat -C of them (the reference), then
# sink-snowflake per ingestion method into its own emulator (SQLite), counted
# as rows a query sees: for SNOWPIPE_STREAMING that is after the emulator's
# commit (--commit-delay-ms, default 1000 ms, where Snowflake documents
# 5-10 s). The key pair is made here.
finnhub_trades sft bench.sft "$SN"
kcat_consume bench.sft sft-c "$SN"
KS_RATE=$KC_RATE
row snowflake "kcat -C (same topic)" "${KC_WALL}s" "$KS_RATE" 1.00 - - - "${KC_CPU}s" -
openssl genrsa 2048 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$T/sf.p8" 2>/dev/null &&
  openssl pkey -in "$T/sf.p8" -pubout -out "$T/sf.pub" 2>/dev/null || die "openssl could not make a key pair"
# COUNT := rows of the table in $SF_DB (unchanged when the query fails)
sf_rows() {
  local c
  c=$("$EMU" query --db "$SF_DB" --database BENCH --schema PUBLIC "SELECT COUNT(*) FROM TRADES" 2>/dev/null | sed -n 2p)
  case $c in '' | *[!0-9]*) ;; *) COUNT=$c ;; esac
}
for method in SQL_API SNOWPIPE_STREAMING; do
  tag=sf-$method; SF_DB=$T/$tag.sqlite
  "$EMU" serve --port 0 --port-file "$T/$tag.url" --db "$SF_DB" --account BENCH --user LOADER \
    --public-key "$T/sf.pub" --log-file "$T/$tag-emu.log" >/dev/null 2>"$T/$tag-emu.err" &
  EM=$!; PIDS+=($EM)
  wait_file $EM "$T/$tag.url" "$T/$tag-emu.err" snowflake-emulator
  worker_conf "$T/w-$tag.json" "$T/offsets-$tag.json"
  cat >"$T/$tag.json" <<JSON
{"name": "$tag", "config": {"connector.class": "sink-snowflake", "tasks.max": "1", "topics": "bench.sft",
 "value.converter": "avro", "value.converter.schema": "trades", "snowflake.ingestion.method": "$method",
 "snowflake.url.name": "$(cat "$T/$tag.url")", "snowflake.account.name": "bench", "snowflake.user.name": "loader",
 "snowflake.private.key.file": "$T/sf.p8", "snowflake.database.name": "BENCH", "snowflake.schema.name": "PUBLIC",
 "snowflake.topic2table.map": "bench.sft:TRADES", "snowflake.schemas.path": "$T/schemas",
 "snowflake.columns.map": "trade_time:TRADE_TIMESTAMP,conditions:TRADE_CONDITIONS",
 "buffer.count.records": 10000, "buffer.flush.time": 1}}
JSON
  COUNT=0
  run_worker "snowflake $method" "$T/$tag.log" sf_rows "$SN" "$T/w-$tag.json" "$T/$tag.json"
  EM_CPU=$(cpu_of $EM)
  stop $EM
  read -r n distinct <<<"$("$EMU" query --db "$SF_DB" --database BENCH --schema PUBLIC \
    "SELECT COUNT(*), COUNT(DISTINCT KAFKA_PARTITION || '-' || KAFKA_OFFSET) FROM TRADES" 2>/dev/null | sed -n 2p)"
  [ "${n:-}" = "$SN" ] && [ "${distinct:-}" = "$SN" ] ||
    die "snowflake $method: TRADES holds ${n:-?} rows, ${distinct:-?} distinct offsets, not $SN"
  row snowflake "sink-snowflake $method" "${WALL}s" "$(rate "$SN" "$WALL")" \
    "$(ratio "$(rate "$SN" "$WALL")" "$KS_RATE")" "$STEADY" "$(ratio "$STEADY" "$KS_RATE")" \
    "${STARTUP}s" "${CPU}s" "$RSS"
  NOTES+=("snowflake $method: emulator cpu ${EM_CPU}s (SQLite; one statement at a time)")
done
fi # snowflake

if phase pipeline; then # the Finnhub -> Kafka -> Snowflake pipeline
  . "$ROOT/tools/bench-pipeline.sh"
fi # pipeline

if [ ${#ROWS[@]} -gt 0 ]; then
printf '%-9s %-34s %7s %9s %6s %9s %6s %7s %6s %8s\n' "" "" wall rec/s ratio steady ratio startup cpu "peak RSS"
for r in "${ROWS[@]}"; do echo "$r"; done
echo "ratio = rec/s over the first kcat row's rec/s in the same phase (its startup is a few ms,"
echo "so its wall rate is its steady rate); steady = from the first record seen to the last;"
echo "startup of group members (kcat -G, sinks) is mostly the group join (~3 s on the mock"
echo "broker); cpu = the process's user+sys, brokers not included; the counter keys records by"
echo "task, so 1 task writes 1 partition. finnhub: the sluice row's clock includes the"
echo "websocket connect and subscribe; the kcat row produces the worker's own records (key +"
echo "Avro value) from a file, so it has no feed to wait for. snowflake: rows counted when a"
echo "query sees them (streaming: after the emulator's 1 s commit delay); the sink's startup"
echo "includes the group join, CREATE TABLE and (streaming) token and channel opens. window:"
echo "ratio over the plain sink-file row (same topic, same records)."
fi
for l in "${PIPE_LINES[@]:-}"; do [ -n "$l" ] && echo "$l"; done
for n in "${NOTES[@]:-}"; do [ -n "$n" ] && echo "note: $n"; done
exit 0
