#!/usr/bin/env bash
# it_compose: docker-compose.yml, Dockerfile, .env.example and deploy/
# checked without a container engine: Debian's `docker-compose config`
# validates and resolves the file (with .env made from .env.example, plain
# and with --profile local); every service must have a healthcheck and a
# restart policy (the checker is shown to catch a service without them);
# the init services submit connector files that exist; .env.example holds the
# original project's variables (seed.md) and every ${env:...} the shipped
# connectors read; promtool accepts deploy/prometheus.yml; the Grafana
# dashboard is JSON whose metrics the worker exports; the Dockerfile is
# multi-stage on Debian bookworm with a non-root runtime user. Then the
# workers' setup for real: two `sluice distributed conf/worker.json` on an
# embedded Kafka, configured only by the environment compose gives them,
# form one cluster that takes connectors from deploy/submit-connectors.sh.
. "$(dirname "$0")/lib.sh"
command -v docker-compose >/dev/null || { echo "FAIL - docker-compose missing (make deps)"; exit 1; }
PY=/usr/bin/python3

# a project dir: the repo's files, an .env from the example
mkdir -p "$T/p"
for f in docker-compose.yml conf deploy Dockerfile; do ln -s "$ROOT/$f" "$T/p/$f"; done
cp "$ROOT/.env.example" "$T/p/.env"
echo "GRAFANA_ADMIN_PASSWORD=$(openssl rand -hex 8)" >>"$T/p/.env"
compose() { (cd "$T/p" && docker-compose "$@"); }
quiet() { "$@" >/dev/null 2>&1; }

rc=0; compose config >"$T/config.yml" 2>"$T/config.err" || rc=$?
check_eq "docker-compose config accepts the file" 0 "$rc"
[ $rc -eq 0 ] || cat "$T/config.err"
rc=0; compose --profile local config >"$T/config-local.yml" 2>"$T/config-local.err" || rc=$?
check_eq "docker-compose --profile local config accepts it" 0 "$rc"
sed -i '/^GRAFANA_ADMIN_PASSWORD=/d' "$T/p/.env"
rc=0; compose config >/dev/null 2>"$T/nopw.err" || rc=$?
check "without GRAFANA_ADMIN_PASSWORD config refuses, naming it" \
  bash -c "[ $rc -ne 0 ] && grep -q GRAFANA_ADMIN_PASSWORD '$T/nopw.err'"

# every service: healthcheck and restart policy
cat >"$T/services.py" <<'PYEOF'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
bad = []
for name, s in sorted(doc["services"].items()):
    hc = s.get("healthcheck") or {}
    if not hc.get("test") or hc.get("disable"):
        bad.append("%s: no healthcheck" % name)
    if s.get("restart") not in ("always", "unless-stopped", "on-failure") and \
       not str(s.get("restart", "")).startswith("on-failure"):
        bad.append("%s: no restart policy" % name)
for b in bad: print(b)
print("%d services" % len(doc["services"]), file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF
check "every service has a healthcheck and a restart policy" $PY "$T/services.py" "$T/config-local.yml"
# the checker itself: a service without them is caught
$PY - "$T/config-local.yml" "$T/broken.yml" <<'PYEOF'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
del doc["services"]["grafana"]["healthcheck"]
doc["services"]["kafka"].pop("restart")
yaml.safe_dump(doc, open(sys.argv[2], "w"))
PYEOF
out=$($PY "$T/services.py" "$T/broken.yml" 2>/dev/null); rc=$?
check "the checker catches a missing healthcheck and restart policy" \
  bash -c "[ $rc -ne 0 ] && grep -q 'grafana: no healthcheck' <<<'$out' && grep -q 'kafka: no restart policy' <<<'$out'"

services=$($PY -c 'import sys,yaml; print(" ".join(sorted(yaml.safe_load(open(sys.argv[1]))["services"])))' "$T/config-local.yml")
for s in kafka kafka-init sluice-1 sluice-2 connectors-init prometheus grafana snowflake-emulator finnhub-replay local-keygen; do
  check "service $s is defined" grep -qw -- "$s" <<<"$services"
done
kafka_image=$($PY -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))["services"]["kafka"]["image"])' "$T/config.yml")
check "Kafka is the apache/kafka image ($kafka_image)" grep -q '^apache/kafka:' <<<"$kafka_image"
check "Kafka runs in KRaft mode (broker,controller; no ZooKeeper)" \
  bash -c "grep -q 'KAFKA_PROCESS_ROLES: broker,controller' '$T/config.yml' && ! grep -qi zookeeper '$T/config.yml'"
check "the local stand-ins are only in the local profile" \
  $PY -c 'import sys,yaml; s=yaml.safe_load(open(sys.argv[1]))["services"]; sys.exit(0 if all(s[n].get("profiles")==["local"] for n in ("snowflake-emulator","finnhub-replay","local-keygen")) else 1)' "$T/config-local.yml"

# the workers: one cluster in distributed mode, each advertised by its name
cat >"$T/workers.py" <<'PYEOF'
import sys, yaml
s = yaml.safe_load(open(sys.argv[1]))["services"]
bad = []
ids = set()
for n in ("sluice-1", "sluice-2"):
    w = s[n]
    if w.get("command") != ["sluice", "distributed", "conf/worker.json"]:
        bad.append("%s: command %r" % (n, w.get("command")))
    env = w.get("environment") or {}
    ids.add(env.get("SLUICE_GROUP_ID"))
    if env.get("SLUICE_REST_ADVERTISED_HOST_NAME") != n:
        bad.append("%s: advertised as %r" % (n, env.get("SLUICE_REST_ADVERTISED_HOST_NAME")))
if len(ids) != 1 or None in ids:
    bad.append("group ids %r" % ids)
init = " ".join(s["connectors-init"]["command"])
for f in ("finnhub", "snowflake-trades", "snowflake-summary"):
    if "conf/connectors/%s.json" % f not in init:
        bad.append("connectors-init does not submit %s" % f)
kinit = " ".join(s["kafka-init"]["command"])
if "-assign:32" not in kinit or "cleanup.policy=compact" not in kinit:
    bad.append("kafka-init does not create the cluster topics")
for b in bad: print(b)
sys.exit(1 if bad else 0)
PYEOF
check "both workers run sluice distributed with one group.id, advertised by name; init submits all three connectors; kafka-init makes the cluster topics" \
  $PY "$T/workers.py" "$T/config.yml"

# init services submit files that exist and are valid connector configs
for f in $(grep -o 'conf/connectors/[a-z-]*\.json' "$ROOT/docker-compose.yml" | sort -u); do
  check "init submits $f: {name, config}" quiet jq -e '.name and (.config | type == "object")' "$ROOT/$f"
done
# the submit script's extraction gives the config object of each file
for f in "$ROOT"/conf/connectors/{finnhub,snowflake-trades,snowflake-summary}.json; do
  got=$(tr '\n' ' ' <"$f" | sed 's/^.*"config": *\({.*}\) *} *$/\1/' | jq -cS . 2>/dev/null)
  check_eq "submit-connectors.sh extracts the config of $(basename "$f")" "$(jq -cS .config "$f")" "$got"
done
check "submit-connectors.sh is valid sh" sh -n "$ROOT/deploy/submit-connectors.sh"

# .env.example: the original names and everything the connectors read
for v in $(grep -o '\bd2b_[A-Za-z_]*\|\bsf_[A-Za-z_]*' /work/shared/reference/seed.md "$ROOT"/conf/connectors/*.json 2>/dev/null |
           sed 's/.*://' | sort -u); do
  check ".env.example has $v" grep -q "^#\? \?$v=" "$ROOT/.env.example"
done
check ".env.example holds no secret values (token, password empty)" \
  bash -c "grep -q '^d2b_token_finnhubio=\$' '$ROOT/.env.example' && grep -q '^sf_password=\$' '$ROOT/.env.example'"

# Prometheus config and Grafana provisioning
check "promtool accepts deploy/prometheus.yml" quiet promtool check config "$ROOT/deploy/prometheus.yml"
check "the dashboard is JSON with panels" quiet jq -e '.panels | length > 5' "$ROOT/deploy/grafana/dashboards/sluice.json"
missing=""
for m in $(jq -r '.panels[].targets[].expr' "$ROOT/deploy/grafana/dashboards/sluice.json" |
           grep -o 'sluice_[a-z_]*' | sed 's/^sluice_//; s/_bucket$//' | sort -u); do
  grep -rq "\"$m\"" "$ROOT/host" "$ROOT/plugins" || missing="$missing $m"
done
check_eq "every metric on the dashboard is one the worker exports" "" "$missing"
check "Grafana's datasource is the compose Prometheus" grep -q 'url: http://prometheus:9090' \
  "$ROOT/deploy/grafana/provisioning/datasources/prometheus.yml"

# Dockerfile: multi-stage bookworm, runtime without -dev packages, non-root
D="$ROOT/Dockerfile"
check "Dockerfile: build stage on debian:bookworm" grep -q '^FROM debian:bookworm AS build' "$D"
check "Dockerfile: runtime stage on debian:bookworm-slim" grep -q '^FROM debian:bookworm-slim AS runtime' "$D"
rt=$(sed -n '/^FROM debian:bookworm-slim AS runtime/,/^FROM /p' "$D")
check "Dockerfile: runtime installs no -dev package" bash -c "! grep -q -- '-dev' <<<'$rt'"
check "Dockerfile: runtime runs as a non-root user" bash -c "grep -q '^USER sluice' <<<'$rt' && grep -q 'useradd' <<<'$rt'"
check "Dockerfile: runtime has a HEALTHCHECK" grep -q '^HEALTHCHECK' <<<"$rt"
# every runtime library the binaries link is installed in the runtime stage
libs=$(ldd "$BUILD/sluice" "$BUILD"/plugins/*.so 2>/dev/null | awk '/=>/ {print $1}' | sort -u)
for l in librdkafka.so.1 libavro.so.23 libwebsockets.so.17 libcurl.so.4 libjansson.so.4 libssl.so.3 libsqlite3.so.0 libmicrohttpd.so.12; do
  if grep -q "^$l" <<<"$libs"; then
    pkg=$(dpkg -S "*/$l" 2>/dev/null | head -1 | cut -d: -f1)
    check "runtime stage installs $pkg (for $l)" grep -qw -- "$pkg" <<<"$rt"
  fi
done
# The shipped conf/worker.json in distributed mode, configured only through
# the environment the compose file gives the workers: two workers on an
# embedded Kafka form one cluster; deploy/submit-connectors.sh submits to
# worker 1; worker 2 sees the connectors; statuses name the advertised ids.
start_bg "$BUILD/tools/kafka-embedded" --brokers 1 --topic itc-assign:32 --topic itc.configs:1 \
  --topic itc.status:1 --topic itc.offsets:1 --topic example.counts:2 --bootstrap-file "$T/bootstrap"
check "kafka-embedded starts" wait_for 10 test -s "$T/bootstrap"
for i in 1 2; do
  mkdir -p "$T/w$i"
  (cd "$ROOT" && exec env SLUICE_BOOTSTRAP_SERVERS="$(cat "$T/bootstrap")" SLUICE_GROUP_ID=itc \
    SLUICE_CONFIG_TOPIC=itc.configs SLUICE_STATUS_TOPIC=itc.status SLUICE_OFFSET_TOPIC=itc.offsets \
    SLUICE_PLUGIN_PATH="$BUILD/plugins" SLUICE_REST_PORT=0 SLUICE_REST_PORT_FILE="$T/w$i/port" \
    SLUICE_REST_ADVERTISED_HOST_NAME="sluice-$i" SLUICE_OFFSETS_FILE="$T/w$i/offsets" \
    SLUICE_CONFIG_STORAGE_FILE="$T/w$i/connectors.json" "$SLUICE" distributed conf/worker.json) \
    >"$T/w$i/log" 2>&1 &
  PIDS+=($!)
done
started() { test -s "$T/w1/port" && test -s "$T/w2/port"; }
check "two workers start from conf/worker.json in distributed mode" wait_for 30 started
U1="http://127.0.0.1:$(cat "$T/w1/port" 2>/dev/null)"; U2="http://127.0.0.1:$(cat "$T/w2/port" 2>/dev/null)"
printf '{\n  "name": "itc-file",\n  "config": {"connector.class": "sink-file", "topics": "example.counts",\n    "file": "%s"}\n}\n' \
  "$T/out.jsonl" >"$T/itc-file.json"
check "submit-connectors.sh submits to worker 1" sh "$ROOT/deploy/submit-connectors.sh" "$U1" \
  "$ROOT/conf/connectors/example-counter.json" "$T/itc-file.json"
both() { [ "$(curl -s "$U2/connectors" | jq -c sort)" = '["example-counter","itc-file"]' ]; }
check "worker 2 lists the connectors submitted to worker 1" wait_for 20 both
ids_ok() {
  local c id
  for c in example-counter itc-file; do
    id=$(curl -s "$U2/connectors/$c/status" | jq -r 'select(.connector.state == "RUNNING") | .connector.worker_id')
    [[ $id =~ ^sluice-[12]:[0-9]+$ ]] || return 1
  done
}
check "both run, each on a worker named by its advertised host (status read on worker 2)" wait_for 40 ids_ok
check "records flow through the cluster into the file sink" wait_for 30 test -s "$T/out.jsonl"
finish
