# Integration: secrets never leave the worker (issue 10). The shipped
# pipeline (conf/worker.json with rest.auth.token set, finnhub.json,
# snowflake-trades.json through ${env:...} references) runs on
# build/tools/kafka-embedded, finnhub-replay and snowflake-emulator with
# secrets generated now: the Finnhub token, the private key's passphrase,
# the REST bearer token. Two more connectors are created over REST with the
# secrets as literal values (a finnhub source, and a Snowflake sink whose
# passphrase is wrong, so its task FAILS with a status trace). Then every
# log, every REST answer (GET /connectors?expand=..., /connectors/X,
# /config, /status, /tasks, /tasks/0/status, a 401) and the status traces
# are searched for the secrets and the private key: zero hits.
. "$(dirname "$0")/lib.sh"
EMU=$BUILD/tools/snowflake-emulator
cd "$ROOT"
. "$ROOT/tests/pipeline_lib.sh"
REST_TOKEN=$(openssl rand -hex 20) WRONG_PASS=$(openssl rand -hex 16)
KEY_LINE=$(sed -n 3p "$T/rsa_key.p8")
check "secrets generated" test -n "$KEY_LINE" -a -s "$T/rsa_key.pub"

start_bg "$BUILD/tools/kafka-embedded" --brokers 1 --bootstrap-file "$T/bootstrap" \
  --topic trades:3:1 --topic trades.dlq:1:1 --topic trades.snowflake.dlq:1:1 >"$T/kafka.log" 2>&1
start_bg "$EMU" serve --port 0 --port-file "$T/sf.url" --db "$T/sf.sqlite" --account ITACCT --user LOADER \
  --public-key "$T/rsa_key.pub" --log-file "$T/emu.log" >"$T/emu.out" 2>&1
start_bg "$BUILD/tools/finnhub-replay" --token-file "$T/token" --synthetic --seed 3 --start-ms now \
  --count 300 --rate 300 --port 0 --port-file "$T/fh.url" --sent-file "$T/sent.jsonl" \
  --log-file "$T/replay.log" >"$T/replay.out" 2>&1
check "stand-ins start" wait_for 20 test -s "$T/bootstrap" -a -s "$T/sf.url" -a -s "$T/fh.url"
export SLUICE_BOOTSTRAP_SERVERS=$(cat "$T/bootstrap") sf_url=$(cat "$T/sf.url") SLUICE_FINNHUB_URL=$(cat "$T/fh.url")
export SLUICE_PLUGIN_PATH=$BUILD/plugins SLUICE_REST_PORT_FILE=$T/rest.port SLUICE_CONFIG_STORAGE_FILE=$T/connectors.json
"$ROOT/tools/fast-group-conf.sh" "$ROOT/conf/worker.json" "$T/w0.json"
/usr/bin/python3 -c 'import json, sys; w = json.load(open(sys.argv[1])); w["rest.auth.token"] = sys.argv[3]; json.dump(w, open(sys.argv[2], "w"))' \
  "$T/w0.json" "$T/worker.json" "$REST_TOKEN"
SLUICE_OFFSETS_FILE=$T/offsets start_bg "$SLUICE" standalone "$T/worker.json" conf/connectors/finnhub.json \
  conf/connectors/snowflake-trades.json 2>"$T/worker.log"
W=$LAST_PID
check "REST port written" wait_for 30 test -s "$T/rest.port"
URL=http://127.0.0.1:$(cat "$T/rest.port")
api() { # name, method, path, [body]: the answer in $T/api-name.json
  curl -s -o "$T/api-$1.json" -w '%{http_code}' -X "$2" -H "Authorization: Bearer $REST_TOKEN" \
    -H 'Content-Type: application/json' ${4:+--data "$4"} "$URL$3"
}
rows() { "$EMU" query --db "$T/sf.sqlite" --database ITDB --schema RAW "SELECT COUNT(*) FROM TRADES_DETAILED" 2>/dev/null | tail -n +2 | grep -E '^[0-9]+$' || echo 0; }
some_rows() { [ "$(rows)" -ge 100 ]; }
check "the pipeline runs (rows in TRADES_DETAILED)" wait_for 60 some_rows

lit_sf=$(/usr/bin/python3 -c 'import json, sys
c = json.load(open("conf/connectors/snowflake-trades.json"))["config"]
c.update({"snowflake.private.key.passphrase": sys.argv[1], "snowflake.url.name": sys.argv[2],
          "snowflake.user.name": "LOADER", "snowflake.account.name": "ITACCT",
          "snowflake.private.key.file": sys.argv[3], "snowflake.topic2table.map": "trades:OTHER"})
print(json.dumps({"name": "sf-literal", "config": c}))' "$WRONG_PASS" "$sf_url" "$SF_PRIVATE_KEY_FILE")
lit_fh=$(/usr/bin/python3 -c 'import json, sys
c = json.load(open("conf/connectors/finnhub.json"))["config"]
c.update({"finnhub.token": sys.argv[1], "finnhub.url": sys.argv[2], "topic": "trades"})
print(json.dumps({"name": "fh-literal", "config": c}))' "$d2b_token_finnhubio" "$SLUICE_FINNHUB_URL")
check_eq "POST a sink with a literal (wrong) passphrase" 201 "$(api post-sf POST /connectors "$lit_sf")"
check_eq "POST a source with a literal token" 201 "$(api post-fh POST /connectors "$lit_fh")"
failed() { api st-sf-literal GET /connectors/sf-literal/status >/dev/null; grep -q '"FAILED"' "$T/api-st-sf-literal.json"; }
check "the literal-passphrase sink's task FAILED, with a trace" wait_for 60 failed
check "... the trace names the key problem" grep -q '"trace"' "$T/api-st-sf-literal.json"
for c in finnhub-trades snowflake-trades sf-literal fh-literal; do
  for p in "" /config /status /tasks /tasks/0/status; do
    n=$c$(echo "$p" | tr / -)
    code=$(api "$n" GET "/connectors/$c$p")
    [ "$code" = 200 ] || echo "# GET /connectors/$c$p: $code"
  done
done
api expand GET '/connectors?expand=status&expand=info' >/dev/null
check_eq "without the bearer token: 401" 401 "$(curl -s -o "$T/api-401.json" -w '%{http_code}' "$URL/connectors/sf-literal/config")"
check "the REST answers show the secret keys as [hidden] or the reference" bash -c \
  "grep -q '\[hidden\]' '$T/api-fh-literal-config.json' && grep -qF 'env:d2b_token_finnhubio' '$T/api-finnhub-trades-config.json'"
n_api=$(ls "$T"/api-*.json | wc -l)
stop_worker $W
hits=$(grep -lF -e "$sf_pem_pass" -e "$d2b_token_finnhubio" -e "$REST_TOKEN" -e "$WRONG_PASS" -e "$KEY_LINE" \
  "$T"/*.log "$T"/api-*.json "$T"/*.out 2>/dev/null | tr '\n' ' ')
check_eq "no secret in $n_api REST answers, the status traces or any log" "" "$hits"
check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/*.log"
finish
