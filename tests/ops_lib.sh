# tests/ops_lib.sh - the small pipeline it_metrics.sh and it_ui.sh watch,
# sourced after lib.sh: finnhub-replay (synthetic trades "now", one dropped
# connection, a malformed message every 30) -> source-finnhub "fh" -> topic
# trades (embedded Kafka in the worker) -> sink-file "summary" with
# transform-window (1 s tumbling windows) -> $T/summary.jsonl. The summary
# connector keeps its latest result per symbol (latest.records.max).
# Sets W (worker pid), PORT, U (REST base URL), N (trades sent).
PY=/usr/bin/python3
N=${N:-1500}
start_ops_pipeline() {
  TOKEN=$(openssl rand -hex 16)
  export MT_FH_TOKEN=$TOKEN
  start_bg "$BUILD/tools/finnhub-replay" --port 0 --port-file "$T/fh.port" --token "$TOKEN" \
    --synthetic --seed 7 --start-ms now --count $N --rate 600 --batch 3 --drop-after 400 \
    --malformed-every 30 --sent-file "$T/sent.jsonl" >"$T/replay.out" 2>&1
  check "finnhub-replay starts" wait_for 10 test -s "$T/fh.port"

  worker_conf "$T/worker.json"
  jq '. + {"embedded.brokers": 1}' "$T/worker.json" >"$T/w.tmp" && mv "$T/w.tmp" "$T/worker.json"
  cat >"$T/fh.json" <<JSON
{"name": "fh", "config": {"connector.class": "source-finnhub",
 "finnhub.url": "$(cat "$T/fh.port")", "finnhub.token": "\${env:MT_FH_TOKEN}",
 "finnhub.symbols": "['BINANCE:BTCUSDT','BINANCE:ETHUSDT','AAPL']",
 "topic": "trades", "value.converter": "avro", "value.converter.schema": "trades",
 "finnhub.reconnect.backoff.initial.ms": 100, "finnhub.reconnect.backoff.max.ms": 500,
 "errors.tolerance": "all", "errors.deadletterqueue.topic.name": "trades.dlq",
 "topic.creation.default.partitions": "2", "topic.creation.default.replication.factor": "1"}}
JSON
  cat >"$T/summary.json" <<JSON
{"name": "summary", "config": {"connector.class": "sink-file", "topics": "trades",
 "file": "$T/summary.jsonl", "value.converter": "avro", "value.converter.schema": "trades",
 "transforms": "w", "transforms.w.type": "transform-window",
 "transforms.w.window.size.ms": "1000", "transforms.w.window.time.field": "trade_time",
 "transforms.w.window.idle.timeout.ms": "1000", "offset.flush.interval.ms": "500",
 "latest.records.max": "100"}}
JSON
  start_bg "$SLUICE" standalone "$T/worker.json" "$T/fh.json" "$T/summary.json" 2>"$T/worker.log"
  W=$LAST_PID
  check "worker starts (REST port file)" wait_for 30 test -s "$T/rest.port"
  PORT=$(cat "$T/rest.port")
  U="http://127.0.0.1:$PORT"
}
