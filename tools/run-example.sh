#!/usr/bin/env bash
# `make run`: the example pipeline in one standalone worker on the embedded
# Kafka broker: source-counter -> topic example.counts -> sink-file
# (data/example.jsonl). Ctrl-C stops it cleanly (flush, commit).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
mkdir -p data
# The in-process broker starts empty each run; the file sink's position in
# data/ would point past its offsets, so each run starts from a clean slate.
rm -f data/example.jsonl data/standalone.offsets
echo "Sluice example pipeline: source-counter -> Kafka (embedded) -> sink-file"
echo "  records land in data/example.jsonl; progress every 5 s; Ctrl-C to stop"
# The REST API listens on REST_PORT (default: any free port, logged at
# start), so `make run` never takes 8083 from another worker or test.
jq --argjson port "${REST_PORT:-0}" '. + {"rest.port": $port}' conf/worker.json >data/worker.json
trap : INT   # the worker handles Ctrl-C; this script prints the summary after
"$BUILD/sluice" standalone data/worker.json conf/connectors/example-counter.json \
  conf/connectors/example-file.json
rc=$?
trap - INT
n=$( [ -f data/example.jsonl ] && wc -l < data/example.jsonl || echo 0)
echo
echo "stopped (exit $rc): $n records in data/example.jsonl"
echo "  look at them:  tail -3 data/example.jsonl"
echo "  write your own plugin: docs/writing-plugins.md"
exit $rc
