#!/usr/bin/env bash
# it_metrics: GET /metrics scraped by Debian's real Prometheus server. A
# worker with embedded Kafka runs a small pipeline (finnhub-replay ->
# source-finnhub -> Kafka -> sink-file with transform-window); the feed drops
# its connection once (a websocket reconnect) and sends malformed messages
# (errors, dead-letter queue). Prometheus scrapes the worker's ephemeral REST
# port on loopback; the test then asks Prometheus's HTTP API for every
# metric family of docs/operations.md and checks the values against the
# worker's own figures and Kafka (kcat), including the histograms
# (_bucket/_sum/_count, histogram_quantile).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"
command -v prometheus >/dev/null || { echo "FAIL - prometheus missing (make deps)"; exit 1; }
command -v jq >/dev/null || { echo "FAIL - jq missing (make deps)"; exit 1; }

start_ops_pipeline

# Prometheus on a free loopback port, scraping the worker every second.
PPORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$T/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: sluice
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:$PORT']
YML
start_bg prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
  --web.listen-address="127.0.0.1:$PPORT" >"$T/prometheus.log" 2>&1
P="http://127.0.0.1:$PPORT"
check "prometheus is ready" wait_for 30 curl -sf "$P/-/ready" -o /dev/null

# pq QUERY: the first sample's value of an instant query ("" if none).
pq() {
  curl -s --get "$P/api/v1/query" --data-urlencode "query=$1" |
    jq -r 'if .status == "success" and (.data.result | length) > 0 then .data.result[0].value[1] else "" end'
}
pq_ge() { local v; v=$(pq "$1"); [ -n "$v" ] && [ "$v" != "NaN" ] && $PY -c "import sys; sys.exit(0 if float('$v') >= $2 else 1)"; }
target_up() { [ "$(pq 'up{job="sluice"}')" = 1 ]; }
check "prometheus scrapes the worker (up == 1)" wait_for 30 target_up
health=$(curl -s "$P/api/v1/targets" | jq -r '.data.activeTargets[0].health')
check_eq "target health" "up" "$health"

# The feed finishes: every trade is in Kafka, the windows closed.
sent_done() { grep -q "trades sent\|done" "$T/replay.out" 2>/dev/null || [ "$(wc -l <"$T/sent.jsonl" 2>/dev/null)" -ge $N ]; }
check "finnhub-replay sent $N trades" wait_for 40 sent_done
BS=$(cat "$T/bootstrap")
in_kafka() { kcat -b "$BS" -C -t trades -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l; }
metric_local() { curl -s "$U/metrics" | awk -v n="$1" '$1 ~ "^"n"({|$)" {s += $2} END {print s+0}'; }
in_dlq() { kcat -b "$BS" -C -t trades.dlq -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l; }
stable() { # the source acked what Kafka holds (trades + dead letters), the
           # sink consumed it all and every window closed
  local k; k=$(in_kafka)
  [ "$k" -gt 0 ] && [ "$(metric_local sluice_source_records_acked_total)" = "$((k + $(in_dlq)))" ] &&
    [ "$(metric_local sluice_window_open_windows)" = 0 ] &&
    [ "$(metric_local sluice_sink_records_consumed_total)" = "$k" ] &&
    [ "$(metric_local sluice_sink_consumer_lag)" = 0 ]
}
check "pipeline drained (acked == records in Kafka, consumed == trades, lag 0, no open window)" wait_for 40 stable
K=$(in_kafka)
D=$(in_dlq)
R=$(wc -l <"$T/summary.jsonl")
PUT=$(metric_local sluice_sink_records_put_total)
# Prometheus must have scraped the final values (a scrape a second).
prom_caught_up() { [ "$(pq 'sum(sluice_sink_records_consumed_total{connector="summary"})')" = "$K" ] &&
  [ "$(pq 'sum(sluice_sink_records_put_total{connector="summary"})')" = "$PUT" ]; }
check "prometheus: sum(sluice_sink_records_consumed_total) == $K records in Kafka" wait_for 20 prom_caught_up
check_eq "prometheus: sluice_source_records_acked_total{connector=fh} == trades + dead letters" "$((K + D))" \
  "$(pq 'sum(sluice_source_records_acked_total{connector="fh"})')"
check_eq "prometheus: sluice_sink_records_put_total == the worker's own figure" "$PUT" \
  "$(pq 'sum(sluice_sink_records_put_total{connector="summary"})')"
check_eq "prometheus: consumer lag 0" 0 "$(pq 'max(sluice_sink_consumer_lag{connector="summary"})')"
check_eq "prometheus: finnhub_trades_total == records in Kafka" "$K" \
  "$(pq 'sum(sluice_finnhub_trades_total{connector="fh"})')"

# One query's raw answer, as Prometheus's HTTP API gives it (PROM_QUERY_OUT
# keeps it in a file, e.g. for a closing note).
raw=$(curl -s --get "$P/api/v1/query" --data-urlencode \
  'query=sum by (__name__, connector) ({__name__=~"sluice_(source_records_acked|sink_records_put)_total"})')
echo "prometheus query answer: $raw"
[ -n "${PROM_QUERY_OUT:-}" ] && echo "$raw" >"$PROM_QUERY_OUT"
check "prometheus answers a query by connector" jq -e '.status == "success" and (.data.result | length) >= 2' <<<"$raw" >/dev/null

# errors and DLQ: the malformed messages
dlq_local=$(metric_local 'sluice_dlq_records_total')
dlq_kafka=$D
check "dead-letter records were written ($dlq_kafka in trades.dlq)" test "$dlq_kafka" -gt 0
check_eq "prometheus: sluice_dlq_records_total{connector=fh} == records in trades.dlq" "$dlq_kafka" \
  "$(pq 'sum(sluice_dlq_records_total{connector="fh"})')"
check_eq "worker /metrics agrees on the DLQ count" "$dlq_kafka" "$dlq_local"
check "prometheus: sluice_record_errors_total{connector=fh} > 0" \
  pq_ge 'sum(sluice_record_errors_total{connector="fh"})' 1

# websocket reconnects (the feed dropped the connection once)
check "prometheus: sluice_finnhub_reconnects_total >= 1" \
  pq_ge 'sum(sluice_finnhub_reconnects_total{connector="fh"})' 1
check_eq "reconnects == connects - 1" "$(pq 'sum(sluice_finnhub_connects_total) - 1')" \
  "$(pq 'sum(sluice_finnhub_reconnects_total)')"

# window counts: results counted == result lines in the summary file
check "window results were written ($R)" test "$R" -gt 0
# (sink-file keeps one line per input offset, so results that closed on the
# same input record share a line: records_written counts the lines)
check_eq "prometheus: sluice_records_written (sink-file) == lines in the summary file" "$R" \
  "$(pq 'sum(sluice_records_written{connector="summary"})')"
check_eq "prometheus: sluice_window_results_total == records put to the sink" "$PUT" \
  "$(pq 'sum(sluice_window_results_total{connector="summary"})')"
check_eq "prometheus: sluice_window_open_windows == 0 at the end" 0 \
  "$(pq 'sum(sluice_window_open_windows{connector="summary"})')"


# histograms: typed, bucketed, consistent
for h in sink_batch_records sink_put_seconds sink_flush_seconds; do
  type=$(curl -s --get "$P/api/v1/metadata" --data-urlencode "metric=sluice_$h" | jq -r ".data.sluice_$h[0].type")
  check_eq "prometheus metadata: sluice_$h is a histogram" histogram "$type"
  check "prometheus: sluice_${h}_count > 0" pq_ge "sum(sluice_${h}_count)" 1
  check_eq "prometheus: sluice_${h}_bucket{le=+Inf} == _count" \
    "$(pq "sum(sluice_${h}_count)")" "$(pq "sum(sluice_${h}_bucket{le=\"+Inf\"})")"
done
# the batch sizes add up to the records put
check_eq "prometheus: sluice_sink_batch_records_sum == records put" "$PUT" \
  "$(pq 'sum(sluice_sink_batch_records_sum{connector="summary"})')"
q=$(pq 'histogram_quantile(0.5, sum by (le) (sluice_sink_batch_records_bucket))')
check "prometheus: histogram_quantile over the batch sizes is a number >= 1 ($q)" \
  $PY -c "import sys,math; v=float('${q:-nan}'); sys.exit(0 if v >= 1 and not math.isnan(v) else 1)"
# buckets are cumulative: le=1 <= le=100 <= +Inf
b1=$(pq 'sum(sluice_sink_batch_records_bucket{le="1"})')
b100=$(pq 'sum(sluice_sink_batch_records_bucket{le="100"})')
binf=$(pq 'sum(sluice_sink_batch_records_bucket{le="+Inf"})')
check "batch-size buckets are cumulative ($b1 <= $b100 <= $binf)" \
  $PY -c "import sys; sys.exit(0 if float('$b1') <= float('$b100') <= float('$binf') else 1)"

check "worker log has no sanitizer report" bash -c "! grep -q 'runtime error\|AddressSanitizer' '$T/worker.log'"
stop_worker "$W"
check_eq "worker exits 0" 0 "$STOP_RC"
finish
