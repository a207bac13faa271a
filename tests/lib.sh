# tests/lib.sh - shared helpers for the shell integration tests (it_*.sh).
# Each test: source this, use a private temp dir ($T), start processes with
# start_bg (killed on every exit path), assert with check / check_eq, end
# with finish (prints "N passed, N failed" for that test and sets the exit code).
set -u
ROOT=${SLUICE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD=${SLUICE_BUILD:-$ROOT/build}
SLUICE=${SLUICE_BIN:-$BUILD/sluice}
T=$(mktemp -d "${TMPDIR:-/tmp}/sluice-it.XXXXXX")
PIDS=()
PASS=0
FAIL=0
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$T"
}
trap cleanup EXIT INT TERM
export SLUICE_NO_DLCLOSE=1   # keep plugin code mapped for sanitizer reports
start_bg() { "$@" & PIDS+=($!); LAST_PID=$!; }
check() { # description, command...
  local d=$1; shift
  if "$@"; then PASS=$((PASS+1)); echo "ok   - $d"; else FAIL=$((FAIL+1)); echo "FAIL - $d"; fi
}
check_eq() { # description, expected, actual
  if [ "$2" = "$3" ]; then PASS=$((PASS+1)); echo "ok   - $1"
  else FAIL=$((FAIL+1)); echo "FAIL - $1: expected '$2', got '$3'"; fi
}
# wait_for SECONDS command...: polls until the command succeeds.
wait_for() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  while [ $SECONDS -lt $end ]; do "$@" && return 0; sleep 0.2; done
  return 1
}
# stop_worker PID: SIGTERM and wait (at most 60 s, then SIGKILL); sets
# STOP_RC to the exit status. Not in $(...): wait needs this shell.
stop_worker() {
  kill -TERM "$1" 2>/dev/null
  local i=0
  while kill -0 "$1" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "$1" 2>/dev/null
  STOP_RC=0; wait "$1" || STOP_RC=$?
}
worker_conf() { # file, extra JSON members (optional)
  cat > "$1" <<JSON
{
  "bootstrap.servers": "embedded",
  "embedded.brokers": 3,
  "embedded.bootstrap.file": "$T/bootstrap",
  "plugin.path": "$BUILD/plugins",
  "schemas.path": "$ROOT/schemas",
  "offset.storage.file.filename": "$T/offsets.json",
  "offset.flush.interval.ms": 500,
  "rest.port": 0,
  "rest.port.file": "$T/rest.port",
  "consumer.session.timeout.ms": 6000,
  "consumer.heartbeat.interval.ms": 500,
  "consumer.max.poll.interval.ms": 10000${2:+,
  $2}
}
JSON
}
finish() {
  echo "$PASS passed, $FAIL failed"
  [ "$FAIL" -eq 0 ]
}
