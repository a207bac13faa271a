#!/usr/bin/env bash
# fast-group-conf.sh IN OUT: writes worker config IN to OUT with the consumer
# group timeouts the worker's in-process embedded cluster gets (session 6 s,
# heartbeat 0.5 s, max poll interval 10 s), for a worker on an external
# build/tools/kafka-embedded: the mock broker moves a stopped or killed
# member's partitions only when its session times out (45 s by default).
# Used by tests/it_pipeline.sh and tools/bench-pipeline.sh.
set -u
[ $# -eq 2 ] || { echo "usage: $0 IN OUT" >&2; exit 2; }
exec /usr/bin/python3 - "$1" "$2" <<'PYEOF'
import json, sys
w = json.load(open(sys.argv[1]))
w.update({"consumer.session.timeout.ms": 6000, "consumer.heartbeat.interval.ms": 500,
          "consumer.max.poll.interval.ms": 10000,
          "rest.port": 0})  # an ephemeral REST port: tests and benches run workers side by side
json.dump(w, open(sys.argv[2], "w"), indent=1)
PYEOF
