# Integration: config handling from the command line. `sluice validate` and
# `sluice standalone` accept good connector configs and refuse bad ones with
# the key and the reason; config providers (${env:VAR}, ${file:path:key} from
# a .env file) take effect in a running pipeline and never leak resolved
# values in errors; a broken plugin on plugin.path is refused with one line
# while the good ones still load and run; bad command lines exit 2 with usage.
. "$(dirname "$0")/lib.sh"

# Sanitizer reports must fail the test even where a non-zero exit code is
# expected anyway (every stderr goes to a file in $T, checked at the end).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}
no_sanitizer_reports() { ! grep -lE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|Sanitizer:DEADLYSIGNAL|Sanitizer has encountered a fatal error' "$@"; }
show() { sed 's/^/    | /' "$1" | tail -${2:-20}; }

worker_conf "$T/worker.json"
conn() { # file, name, config members (JSON)
  printf '{"name": "%s", "config": {%s}}\n' "$2" "$3" >"$1"
}
conn "$T/counter.json" counter '"connector.class": "source-counter", "tasks.max": "2", "topic": "counts", "count": "200", "batch.size": "50"'
conn "$T/file.json" file "\"connector.class\": \"sink-file\", \"tasks.max\": \"1\", \"topics\": \"counts\", \"file\": \"$T/out.jsonl\""

# run NAME cmd...: stdout in $T/NAME.out, stderr in $T/NAME.err, exit in RC.
# A timeout (exit 124) fails whatever check follows instead of hanging.
run() {
  local name=$1; shift
  RC=0
  timeout 30 "$@" >"$T/$name.out" 2>"$T/$name.err" || RC=$?
}

# --- validate: a valid pair ---------------------------------------------
run valid "$SLUICE" validate "$T/worker.json" "$T/counter.json" "$T/file.json"
check_eq "validate, valid pair: exit 0" 0 "$RC"
check "validate, valid pair: prints 'valid'" grep -qx '2 connector config(s) valid' "$T/valid.out"
check "validate, valid pair: refuses nothing" bash -c "! grep -q refused '$T/valid.err'"

# --- validate: refusals --------------------------------------------------
# refused NAME KEY REASON-REGEX config-members: validate must exit 1 (not 0,
# not a crash), and stderr must name the connector, the key and the reason.
refused() {
  local name=$1 key=$2 reason=$3
  conn "$T/$name.json" "$name" "$4"
  run "$name" "$SLUICE" validate "$T/worker.json" "$T/counter.json" "$T/$name.json"
  check_eq "validate refuses $name: exit 1" 1 "$RC"
  check "validate refuses $name: stderr names '$key': ${reason//\\/}" \
    grep -Eq "connector $name refused: (.*; )?'$key': $reason" "$T/$name.err"
  check "validate refuses $name: does not print 'valid'" bash -c "! grep -q valid '$T/$name.out'"
}
refused unknown-class connector.class "no plugin named 'no-such-plugin' on plugin.path" \
  '"connector.class": "no-such-plugin", "topic": "t"'
refused no-file file "missing required value" \
  '"connector.class": "sink-file", "topics": "counts"'
refused empty-file file "required value is empty" \
  '"connector.class": "sink-file", "topics": "counts", "file": ""'
refused count-abc count "'abc' is not an integer" \
  '"connector.class": "source-counter", "count": "abc"'
refused batch-zero batch.size "value 0 is out of range \[1, 100000\]" \
  '"connector.class": "source-counter", "batch.size": 0'
refused tasks-x tasks.max "'x' is not an integer" \
  '"connector.class": "source-counter", "tasks.max": "x"'
refused tasks-zero tasks.max "value 0 is out of range \[1, 1024\]" \
  '"connector.class": "source-counter", "tasks.max": 0'
refused tolerance-maybe errors.tolerance "'maybe' is not one of none\|all" \
  '"connector.class": "source-counter", "errors.tolerance": "maybe"'
refused sink-no-topics topics "a sink connector needs \"topics\" \(or \"topics.regex\"\)" \
  "\"connector.class\": \"sink-file\", \"file\": \"$T/x.jsonl\""
refused transform-no-type transforms.t1.type "missing: transform 't1' needs a type" \
  '"connector.class": "source-counter", "transforms": "t1", "transforms.t1.field": "x"'
refused transform-unknown transforms.t1.type "no transform plugin named 'nope' on plugin.path" \
  '"connector.class": "source-counter", "transforms": "t1", "transforms.t1.type": "nope"'
refused transform-not-transform transforms.t1.type "plugin 'sink-file' is a sink, not a transform" \
  '"connector.class": "source-counter", "transforms": "t1", "transforms.t1.type": "sink-file"'
# Every problem of a config is reported at once, not only the first.
refused many-problems batch.size "value 0 is out of range" \
  '"connector.class": "source-counter", "count": "abc", "batch.size": 0, "errors.tolerance": "x"'
check "validate reports every problem of a config at once" bash -c \
  "grep -q \"'count': 'abc' is not an integer\" '$T/many-problems.err' && grep -q \"'errors.tolerance': 'x'\" '$T/many-problems.err'"

# Malformed JSON: the message names the file and the line (3) of the error.
printf '{"name": "broken",\n "config": {"connector.class": "source-counter",\n  "count": 1,,\n  "topic": "t"}}\n' >"$T/broken.json"
run broken "$SLUICE" validate "$T/worker.json" "$T/broken.json"
check_eq "validate refuses malformed JSON: exit 1" 1 "$RC"
check "validate refuses malformed JSON: names the file and line 3" grep -q "$T/broken.json:3:[0-9]*: invalid JSON" "$T/broken.err"
printf '{"name": "no-class", "config": {"topic": "t", "count": "5"}}\n' >"$T/no-class.json"
run no-class "$SLUICE" validate "$T/worker.json" "$T/no-class.json"
check_eq "validate refuses a config without connector.class: exit 1" 1 "$RC"
check "validate refuses a config without connector.class: names the file and the key" \
  grep -q "$T/no-class.json: missing required key 'connector.class'" "$T/no-class.err"
run missing-file "$SLUICE" validate "$T/worker.json" "$T/does-not-exist.json"
check_eq "validate refuses a connector file that does not exist: exit 1" 1 "$RC"
check "... naming it and the reason" grep -q "$T/does-not-exist.json: cannot open: No such file" "$T/missing-file.err"
printf '{"bootstrap.servers": "embedded",\n "plugin.path": }\n' >"$T/bad-worker.json"
run bad-worker "$SLUICE" validate "$T/bad-worker.json" "$T/counter.json"
check_eq "validate refuses a malformed worker config: exit 1" 1 "$RC"
check "... naming the worker file and line 2" grep -q "$T/bad-worker.json:2:[0-9]*: invalid JSON" "$T/bad-worker.err"

# --- standalone refuses to start with an invalid connector ---------------
run standalone-bad "$SLUICE" standalone "$T/worker.json" "$T/counter.json" "$T/count-abc.json"
check_eq "standalone with an invalid connector: exit 1 (refuses to start)" 1 "$RC"
check "standalone with an invalid connector: names the key" grep -q "connector count-abc refused: 'count': 'abc' is not an integer" "$T/standalone-bad.err"
check "standalone with an invalid connector: starts no task" bash -c "! grep -q 'started [0-9]* .* task' '$T/standalone-bad.err'"

# --- providers -----------------------------------------------------------
export SL_TEST_TOPIC="env-topic-$$"
export SL_TEST_SECRET="hunter2-env-$$-secret"
cat >"$T/app.env" <<ENV
# .env-style: comments, export, quotes
export TOPIC_FILE="$T/from-dotenv.jsonl"
API_TOKEN='tok-$$-dotenv-secret'
ENV
conn "$T/p-counter.json" p-counter '"connector.class": "source-counter", "tasks.max": "2", "topic": "${env:SL_TEST_TOPIC}", "count": "150", "batch.size": "50"'
conn "$T/p-file.json" p-file "\"connector.class\": \"sink-file\", \"topics\": \"\${env:SL_TEST_TOPIC}\", \"file\": \"\${file:$T/app.env:TOPIC_FILE}\""
run p-valid "$SLUICE" validate "$T/worker.json" "$T/p-counter.json" "$T/p-file.json"
check_eq "validate with provider references: exit 0, valid" "0 2 connector config(s) valid" "$RC $(cat "$T/p-valid.out")"
[ "$RC" = 0 ] || show "$T/p-valid.err"
plines() { [ -f "$T/from-dotenv.jsonl" ] && wc -l <"$T/from-dotenv.jsonl" || echo 0; }
plines_at_least() { [ "$(plines)" -ge "$1" ]; }
rm -f "$T/bootstrap" # wait for the new worker's own file
start_bg "$SLUICE" standalone "$T/worker.json" "$T/p-counter.json" "$T/p-file.json" 2>"$T/providers.log"
W=$LAST_PID
check "providers: worker writes the embedded bootstrap file" wait_for 10 test -s "$T/bootstrap"
BS=$(cat "$T/bootstrap" 2>/dev/null)
check "providers: records land in the file named by the .env (\${file:...:TOPIC_FILE})" wait_for 30 plines_at_least 300
kc_env_topic() { [ "$(kcat -b "$BS" -C -t "$SL_TEST_TOPIC" -o beginning -e -q -f '%k\n' 2>/dev/null | wc -l)" -eq 300 ]; }
check "providers: kcat reads 300 records from topic \${env:SL_TEST_TOPIC}" wait_for 20 kc_env_topic
stop_worker "$W"
check_eq "providers: SIGTERM, exit 0" 0 "$STOP_RC"
check_eq "providers: exactly 300 lines, all from the env topic" "300 ['$SL_TEST_TOPIC']" "$(python3 -c '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
print(len(rs), sorted({r["topic"] for r in rs}))' "$T/from-dotenv.jsonl" 2>&1)"
check "providers: no file named after an unresolved reference" bash -c "! ls '$T' | grep -q '[\$]'"
check "providers: no errors logged" bash -c "! grep ' ERROR ' '$T/providers.log'"

# An unset variable: refused, naming the key and the variable, but never a
# value resolved for another key (db.password and api.token come first).
unset SL_TEST_UNSET
conn "$T/unset.json" unset "\"connector.class\": \"source-counter\", \"db.password\": \"\${env:SL_TEST_SECRET}\", \"api.token\": \"\${file:$T/app.env:API_TOKEN}\", \"topic\": \"\${env:SL_TEST_UNSET}\""
for cmd in validate standalone; do
  run "unset-$cmd" "$SLUICE" "$cmd" "$T/worker.json" "$T/unset.json"
  check_eq "$cmd, unset env var: exit 1" 1 "$RC"
  check "$cmd, unset env var: names the key and the variable" \
    grep -q "connector unset refused: config key 'topic': reference '\${env:SL_TEST_UNSET}': environment variable 'SL_TEST_UNSET' is not set" "$T/unset-$cmd.err"
  check "$cmd, unset env var: no resolved value of another key in the output" \
    bash -c "! grep -qE 'hunter2-env|tok-$$-dotenv' '$T/unset-$cmd.err' '$T/unset-$cmd.out'"
done
conn "$T/nokey.json" nokey "\"connector.class\": \"source-counter\", \"topic\": \"\${file:$T/app.env:NO_SUCH_KEY}\""
run nokey "$SLUICE" validate "$T/worker.json" "$T/nokey.json"
check_eq "validate, missing key in the .env file: exit 1" 1 "$RC"
check "... names the config key, the file key and the file" \
  grep -q "config key 'topic': .*key 'NO_SUCH_KEY' not found in file '$T/app.env'" "$T/nokey.err"
# A value resolved from a provider is never quoted in a validation message.
conn "$T/leak.json" leak '"connector.class": "source-counter", "count": "${env:SL_TEST_SECRET}", "tasks.max": "${env:SL_TEST_SECRET}"'
run leak "$SLUICE" validate "$T/worker.json" "$T/leak.json"
check_eq "validate, provider value of the wrong type: exit 1" 1 "$RC"
check "... names the key" grep -q "'count'" "$T/leak.err"
check "... the resolved value is not quoted" bash -c "! grep -q hunter2-env '$T/leak.err'"
# validate is a dry run: it starts no broker and leaves the bootstrap file alone.
echo "untouched" > "$T/bootstrap"
run dry "$SLUICE" validate "$T/worker.json" "$T/counter.json"
check_eq "validate does not touch embedded.bootstrap.file" untouched "$(cat "$T/bootstrap")"

# --- secrets ---------------------------------------------------------------
# No bundled plugin declares a SLUICE_CONFIG_SECRET key, so masking of SECRET
# values in the worker's log cannot be tested end to end here.
# --- a SECRET key (source-finnhub's finnhub.token) -----------------------------
# Its value never shows: not in validation errors, not in logs at debug
# level - not even where it leaks into another key's value.
TOKEN=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat > "$T/fh-bad.json" <<JSON
{"name": "fh", "config": {"connector.class": "source-finnhub", "finnhub.url": "ws://127.0.0.1:1",
 "finnhub.token": "$TOKEN", "finnhub.symbols": "AAPL", "finnhub.idle.timeout.ms": "soon"}}
JSON
run secret-bad "$SLUICE" validate "$T/worker.json" "$T/fh-bad.json"
check "secret: an invalid config next to a secret is refused" test "$RC" -ne 0
check "secret: ... naming the bad key" grep -q "finnhub.idle.timeout.ms" "$T/secret-bad.err" "$T/secret-bad.out"
check "secret: ... and not the secret" bash -c "! grep -q '$TOKEN' '$T/secret-bad.err' '$T/secret-bad.out'"
sed 's|"finnhub.idle.timeout.ms": "soon"|"topic": "leak-'"$TOKEN"'"|' "$T/fh-bad.json" >"$T/fh.json"
worker_conf "$T/worker-debug.json" '"log.level": "debug"'
start_bg "$SLUICE" standalone "$T/worker-debug.json" "$T/fh.json" 2>"$T/secret.log"
W=$LAST_PID
check "secret: the worker runs the connector (unreachable feed, retrying)" wait_for 20 grep -q "fh/0" "$T/secret.log"
sleep 1
stop_worker "$W"
check "secret: never in the debug log, even inside another key's value" bash -c \
  "! grep -q '$TOKEN' '$T/secret.log' && grep -qF 'leak-[hidden]' '$T/secret.log'"

# --- a broken plugin next to the good ones -----------------------------------
mkdir -p "$T/mixed"
cp "$BUILD"/plugins/*.so "$BUILD/tests/fixtures/bad_abi.so" "$T/mixed/"
run plugins-mixed "$SLUICE" plugins --plugin-path "$T/mixed"
check_eq "plugins, broken plugin on the path: exit 0" 0 "$RC"
check_eq "plugins: exactly one refusal line on stderr" 1 "$(grep -c . "$T/plugins-mixed.err")"
check "plugins: it names the file and the reason" \
  grep -Eq "^sluice: plugin $T/mixed/bad_abi\.so refused: incompatible ABI [0-9]+\.[0-9]+" "$T/plugins-mixed.err"
check "plugins: still lists source-counter" grep -Eq "^source-counter +source .* $T/mixed/source-counter\.so\$" "$T/plugins-mixed.out"
check "plugins: still lists sink-file" grep -Eq "^sink-file +sink .* $T/mixed/sink-file\.so\$" "$T/plugins-mixed.out"
check "plugins: does not list the broken one" bash -c "! grep -q bad_abi '$T/plugins-mixed.out'"
worker_conf "$T/worker-mixed.json"
sed -i "s|\"plugin.path\": \"[^\"]*\"|\"plugin.path\": \"$T/mixed\"|" "$T/worker-mixed.json"
run plugins-worker "$SLUICE" plugins "$T/worker-mixed.json"
check "plugins worker.json: reads plugin.path from the worker config (same refusal, same list)" bash -c \
  "[ $RC = 0 ] && cmp -s '$T/plugins-mixed.err' '$T/plugins-worker.err' && cmp -s '$T/plugins-mixed.out' '$T/plugins-worker.out'"
rm -f "$T/out.jsonl" "$T/offsets.json" "$T/bootstrap"
start_bg "$SLUICE" standalone "$T/worker-mixed.json" "$T/counter.json" "$T/file.json" 2>"$T/mixed.log"
W=$LAST_PID
lines() { [ -f "$T/out.jsonl" ] && wc -l <"$T/out.jsonl" || echo 0; }
lines_at_least() { [ "$(lines)" -ge "$1" ]; }
check "standalone with the broken plugin on plugin.path: the pipeline delivers 400 records" wait_for 30 lines_at_least 400
stop_worker "$W"
check_eq "standalone with the broken plugin: SIGTERM, exit 0" 0 "$STOP_RC"
check_eq "standalone with the broken plugin: exactly 400 lines" 400 "$(lines)"
check "standalone with the broken plugin: logs the refusal, naming the file" grep -q "plugin $T/mixed/bad_abi.so refused: incompatible ABI" "$T/mixed.log"
NGOOD=$(ls "$BUILD"/plugins/*.so | wc -l)
check "standalone with the broken plugin: the $NGOOD good plugins loaded" grep -q "$NGOOD plugin(s) loaded from $T/mixed" "$T/mixed.log"

# --- command line ------------------------------------------------------------
run noargs "$SLUICE"
check_eq "sluice without arguments: exit 2" 2 "$RC"
check "sluice without arguments: usage on stderr" grep -q '^usage: sluice <command>' "$T/noargs.err"
run unknown "$SLUICE" frobnicate
check_eq "sluice frobnicate: exit 2" 2 "$RC"
check "sluice frobnicate: names the command, usage on stderr" bash -c \
  "grep -q \"unknown command 'frobnicate'\" '$T/unknown.err' && grep -q '^usage: sluice <command>' '$T/unknown.err'"
run validate-noconn "$SLUICE" validate "$T/worker.json"
check_eq "sluice validate without a connector file: exit 2 with usage" "2 1" "$RC $(grep -c '^usage:' "$T/validate-noconn.err")"
run standalone-noargs "$SLUICE" standalone
check_eq "sluice standalone without a worker file: exit 2 with usage" "2 1" "$RC $(grep -c '^usage:' "$T/standalone-noargs.err")"
run version "$SLUICE" version
check_eq "sluice version: exit 0, the VERSION file" "0 sluice $(cat "$ROOT/VERSION")" "$RC $(cut -d' ' -f1,2 "$T/version.out")"

check "no sanitizer reports in any output" no_sanitizer_reports "$T"/*.err "$T"/*.out "$T"/*.log
finish
