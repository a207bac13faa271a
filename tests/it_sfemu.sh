# Integration: tools/snowflake-emulator driven with curl, as a sink would drive
# Snowflake's SQL API v2. Keys are made here (encrypted PKCS#8, as Snowflake's
# docs make them), JWTs are signed with openssl. Checks request validation
# (415, 401 for a wrong key / account / expired token, 400), the 200
# ResultSet shape, bindings and their errors, multi-statement counts,
# requestId + retry dedupe, MERGE upserts, 202 + GET polling under latency,
# injected 429s, dropped connections, and a clean SIGTERM.
. "$(dirname "$0")/lib.sh"
EMU=$BUILD/tools/snowflake-emulator
PASS_PHRASE=sluice-test

openssl genrsa 2048 2>/dev/null | openssl pkcs8 -topk8 -v2 des3 -passout pass:$PASS_PHRASE -out "$T/rsa_key.p8"
openssl pkey -in "$T/rsa_key.p8" -passin pass:$PASS_PHRASE -pubout -out "$T/rsa_key.pub"
openssl genrsa 2048 2>/dev/null | openssl pkcs8 -topk8 -v2 des3 -passout pass:$PASS_PHRASE -out "$T/other.p8"
check "test keys generated (encrypted PKCS#8)" grep -q "BEGIN ENCRYPTED PRIVATE KEY" "$T/rsa_key.p8"

b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
fingerprint() { # private key -> base64 SHA-256 of the DER SubjectPublicKeyInfo
  openssl pkey -in "$1" -passin pass:$PASS_PHRASE -pubout -outform DER | openssl dgst -sha256 -binary | base64 -w0
}
jwt() { # key account user iat exp
  local h p s
  h=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
  p=$(printf '{"iss":"%s.%s.SHA256:%s","sub":"%s.%s","iat":%s,"exp":%s}' \
      "$2" "$3" "$(fingerprint "$1")" "$2" "$3" "$4" "$5" | b64url)
  s=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -sign "$1" -passin pass:$PASS_PHRASE | b64url)
  echo "$h.$p.$s"
}
NOW=$(date +%s)
TOK=$(jwt "$T/rsa_key.p8" MYORG-ACCT SLUICE $NOW $((NOW + 3540)))

start_emu() { # name, extra options...
  local n=$1; shift
  rm -f "$T/$n.url"
  start_bg "$EMU" serve --db "$T/$n.sqlite" --account myorg-acct --user sluice \
    --public-key "$T/rsa_key.pub" --port-file "$T/$n.url" --log-file "$T/$n.log" "$@" >"$T/$n.out" 2>"$T/$n.err"
  EMU_PID=$LAST_PID
  wait_for 10 test -s "$T/$n.url"
  URL=$(cat "$T/$n.url")
}
# post BODY [QUERY] [TOKEN] [CONTENT-TYPE]: HTTP status in $CODE, body in $T/resp
post() {
  CODE=$(curl -s -o "$T/resp" -w '%{http_code}' -X POST "$URL/api/v2/statements${2:-}" \
    -H "Content-Type: ${4:-application/json}" -H "Accept: application/json" \
    -H "Authorization: Bearer ${3:-$TOK}" -H "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT" \
    -H "User-Agent: sluice-test/1.0" --data-binary "$1")
}
get() { # handle
  CODE=$(curl -s -o "$T/resp" -w '%{http_code}' "$URL/api/v2/statements/$1" -H "Accept: application/json" \
    -H "Authorization: Bearer $TOK" -H "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT")
}
# j EXPR: a Python expression over the response `d`
j() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$T/resp" 2>&1; }
NS='"database": "sluice_db", "schema": "public"'
q() { "$EMU" query --db "$T/main.sqlite" "$1" 2>&1; }

# --- request checks -------------------------------------------------------------
start_emu main
check "serve prints its URL on stdout" grep -qx "$URL" "$T/main.out"
post "{\"statement\": \"CREATE TABLE trades (symbol VARCHAR, price FLOAT, volume FLOAT, trade_ts TIMESTAMP_NTZ, seq NUMBER(38,0), ok BOOLEAN, cond VARIANT)\", $NS}"
check_eq "CREATE TABLE: 200" 200 "$CODE"
check_eq "... ResultSet code, sqlState, message" "090001 00000 Statement executed successfully." \
  "$(j "d['code'], d['sqlState'], d['message']")"
check_eq "... data and rowType" "[['Table TRADES successfully created.']] status text jsonv2 1" \
  "$(j "d['data'], d['resultSetMetaData']['rowType'][0]['name'], d['resultSetMetaData']['rowType'][0]['type'], d['resultSetMetaData']['format'], d['resultSetMetaData']['numRows']")"
check "... statementHandle, statementStatusUrl, createdOn, partitionInfo" test "$(j "bool(d['statementHandle']) and d['statementStatusUrl'] == '/api/v2/statements/' + d['statementHandle'] and d['createdOn'] > 0 and d['resultSetMetaData']['partitionInfo'][0]['rowCount'] == 1")" = True

post "{\"statement\": \"SELECT 1\"}" "" "" "text/plain"
check_eq "wrong Content-Type: 415" 415 "$CODE"
BAD=$(jwt "$T/other.p8" MYORG-ACCT SLUICE $NOW $((NOW + 3000)))
post "{\"statement\": \"SELECT 1\"}" "" "$BAD"
check_eq "token signed with an unregistered key: 401 390144" "401 390144" "$CODE $(j "d['code']")"
post "{\"statement\": \"SELECT 1\"}" "" "$(jwt "$T/rsa_key.p8" OTHER-ACCT SLUICE $NOW $((NOW + 3000)))"
check_eq "wrong account: 401 390144" "401 390144" "$CODE $(j "d['code']")"
post "{\"statement\": \"SELECT 1\"}" "" "$(jwt "$T/rsa_key.p8" MYORG-ACCT SLUICE $((NOW - 7200)) $((NOW - 3700)))"
check_eq "expired token: 401 390144" "401 390144" "$CODE $(j "d['code']")"
post "{\"statement\": \"SELECT 1\"}" "" "$(jwt "$T/rsa_key.p8" MYORG-ACCT SLUICE $NOW $((NOW + 7200)))"
check_eq "token living more than an hour: 401" 401 "$CODE"
post "{\"statement\": \"SELECT 1\"}" "" "not.a.jwt"
check_eq "garbage token: 401" 401 "$CODE"
check "... message names a failure id; the log has the reason" grep -q "JWT_TOKEN_ACCOUNT_MISMATCH" "$T/main.log"
post "{\"statement\": \"SELECT 1\"}" "" "$(jwt "$T/rsa_key.p8" myorg-acct sluice $NOW $((NOW + 3000)))"
check_eq "lower-case account and user in the token are upper-cased: 200" 200 "$CODE"
post '{"statement": '
check_eq "malformed JSON: 400 390142" "400 390142" "$CODE $(j "d['code']")"
post '{"statement": 42}'
check_eq "statement not a string: 400" 400 "$CODE"

# --- bindings -------------------------------------------------------------------
post "{\"statement\": \"INSERT INTO sluice_db.public.trades (symbol, price, volume, trade_ts, seq, ok) VALUES (?,?,?,?,?,?),(?,?,?,?,?,?)\",
  \"bindings\": {\"1\": {\"type\": \"TEXT\", \"value\": \"BINANCE:BTCUSDT\"}, \"2\": {\"type\": \"REAL\", \"value\": \"43000.5\"},
   \"3\": {\"type\": \"REAL\", \"value\": \"0.25\"}, \"4\": {\"type\": \"TIMESTAMP_NTZ\", \"value\": \"1700000000123000000\"},
   \"5\": {\"type\": \"FIXED\", \"value\": \"1\"}, \"6\": {\"type\": \"BOOLEAN\", \"value\": \"true\"},
   \"7\": {\"type\": \"TEXT\", \"value\": \"BINANCE:ETHUSDT\"}, \"8\": {\"type\": \"REAL\", \"value\": \"2200\"},
   \"9\": {\"type\": \"REAL\", \"value\": \"1.5\"}, \"10\": {\"type\": \"TIMESTAMP_NTZ\", \"value\": \"1700000001000000000\"},
   \"11\": {\"type\": \"FIXED\", \"value\": \"2\"}, \"12\": {\"type\": \"BOOLEAN\", \"value\": null}}}"
check_eq "INSERT with flattened bindings: 200, 2 rows inserted" "200 2 [['2']]" \
  "$CODE $(j "d['stats']['numRowsInserted'], d['data']")"
check_eq "query shows the rows, timestamps readable" \
  "SYMBOL	PRICE	TRADE_TS	SEQ	OK
BINANCE:BTCUSDT	43000.5	2023-11-14 22:13:20.123000000	1	true
BINANCE:ETHUSDT	2200	2023-11-14 22:13:21.000000000	2	NULL" \
  "$(q "SELECT symbol, price, trade_ts, seq, ok FROM sluice_db.public.trades ORDER BY seq")"
post "{\"statement\": \"INSERT INTO trades (symbol, seq, cond) SELECT column1, column2, PARSE_JSON(column3) FROM VALUES (?, ?, ?)\", $NS,
  \"bindings\": {\"1\": {\"type\": \"TEXT\", \"value\": \"X\"}, \"2\": {\"type\": \"FIXED\", \"value\": \"3\"},
   \"3\": {\"type\": \"TEXT\", \"value\": \"[\\\"T\\\", \\\"I\\\"]\"}}}"
check_eq "INSERT ... SELECT PARSE_JSON(...) FROM VALUES: 200" "200 1" "$CODE $(j "d['stats']['numRowsInserted']")"
post "{\"statement\": \"INSERT INTO trades (cond) VALUES (PARSE_JSON(?))\", $NS, \"bindings\": {\"1\": {\"type\": \"TEXT\", \"value\": \"{}\"}}}"
check_eq "PARSE_JSON in a VALUES clause: 422 002014 (as Snowflake)" "422 002014" "$CODE $(j "d['code']")"
post "{\"statement\": \"SELECT symbol, price, trade_ts, seq, ok, cond FROM trades WHERE seq = ?\", $NS, \"bindings\": {\"1\": {\"type\": \"FIXED\", \"value\": \"1\"}}}"
check_eq "SELECT: jsonv2 strings (timestamps as epoch seconds)" \
  "[['BINANCE:BTCUSDT', '43000.5', '1700000000.123000000', '1', 'true', None]]" "$(j "d['data']")"
check_eq "... rowType types and nullability" "['text', 'real', 'timestamp_ntz', 'fixed', 'boolean', 'variant'] TRADES SLUICE_DB" \
  "$(j "[c['type'] for c in d['resultSetMetaData']['rowType']], d['resultSetMetaData']['rowType'][0]['table'], d['resultSetMetaData']['rowType'][0]['database']")"
post "{\"statement\": \"SELECT cond FROM trades WHERE seq = 3\", $NS}"
check_eq "VARIANT stored as JSON text" '[["T","I"]]' "$(j "json.dumps([json.loads(d['data'][0][0])], separators=(',', ':'))")"
post "{\"statement\": \"INSERT INTO trades (seq) VALUES (?)\", $NS, \"bindings\": {\"1\": {\"type\": \"FIXED\", \"value\": \"abc\"}}}"
check_eq "bad FIXED binding: 422 100037 22018" "422 100037 22018 Numeric value 'abc' is not recognized" \
  "$CODE $(j "d['code'], d['sqlState'], d['message']")"
post "{\"statement\": \"INSERT INTO trades (trade_ts) VALUES (?)\", $NS, \"bindings\": {\"1\": {\"type\": \"TIMESTAMP_LTZ\", \"value\": \"yesterday\"}}}"
check_eq "bad TIMESTAMP binding: 422 100037" "422 100037" "$CODE $(j "d['code']")"
post "{\"statement\": \"INSERT INTO trades (seq, symbol) VALUES (?, ?)\", $NS, \"bindings\": {\"1\": {\"type\": \"FIXED\", \"value\": \"9\"}}}"
check_eq "a ? without a binding: 422" 422 "$CODE"

big_insert() { # rows -> a request body inserting that many rows with flattened bindings
  python3 - "$1" <<'PY'
import json, sys
n = int(sys.argv[1])
b = {}
for i in range(n):
    b[str(2 * i + 1)] = {"type": "FIXED", "value": str(1000 + i)}
    b[str(2 * i + 2)] = {"type": "TIMESTAMP_NTZ", "value": str(1700000000000000000 + i)}
print(json.dumps({"statement": "INSERT INTO trades (seq, trade_ts) VALUES " + ",".join(["(?,?)"] * n),
                  "database": "sluice_db", "schema": "public", "bindings": b}))
PY
}
big_insert 16385 >"$T/big.json"
post "@$T/big.json"
check_eq "16,385 rows in one VALUES: 422 001795" "422 001795 True" "$CODE $(j "d['code'], 'expected at most 16,384, got 16,385' in d['message']")"
big_insert 16384 >"$T/big.json"
post "@$T/big.json"
check_eq "16,384 rows (32,768 bindings) in one INSERT: 200" "200 16384" "$CODE $(j "d['stats']['numRowsInserted']")"
post "{\"statement\": \"DELETE FROM trades WHERE seq >= 1000\", $NS}"
check_eq "... DELETE: numRowsDeleted" "200 16384" "$CODE $(j "d['stats']['numRowsDeleted']")"

# --- multi-statement --------------------------------------------------------------
post "{\"statement\": \"SELECT 1; SELECT 2\", \"parameters\": {\"MULTI_STATEMENT_COUNT\": \"3\"}}"
check_eq "statement count mismatch: 422 000008 with the documented message" \
  "422 000008 Actual statement count 2 did not match the desired statement count 3." \
  "$CODE $(j "d['code'], d['message']")"
post "{\"statement\": \"SELECT 1; SELECT 2\"}"
check_eq "two statements without MULTI_STATEMENT_COUNT: 422 000008" "422 000008" "$CODE $(j "d['code']")"
post "{\"statement\": \"BEGIN; DELETE FROM trades WHERE seq = 3; COMMIT\", $NS, \"parameters\": {\"multi_statement_count\": 3}}"
check_eq "BEGIN; DELETE; COMMIT (count as integer, lower-case key): 200, 3 statementHandles" "200 3" \
  "$CODE $(j "len(d['statementHandles'])")"
get "$(j "d['statementHandles'][1]")"
check_eq "GET of the DELETE's handle: its own result" "200 1" "$CODE $(j "d['stats']['numRowsDeleted']")"
post "{\"statement\": \"BEGIN; DELETE FROM trades; SELECT nosuchcol FROM trades\", $NS, \"parameters\": {\"MULTI_STATEMENT_COUNT\": \"0\"}}"
check_eq "a failing statement in an open transaction: 422 000904, the transaction rolled back" "422 000904 2" \
  "$CODE $(j "d['code']") $(q "SELECT COUNT(*) AS N FROM sluice_db.public.trades" | tail -1)"

# --- retries ------------------------------------------------------------------------
RID=$(python3 -c "import uuid; print(uuid.uuid4())")
INS="{\"statement\": \"INSERT INTO trades (symbol, seq) VALUES ('R', 10)\", $NS}"
post "$INS" "?requestId=$RID"
H1=$(j "d['statementHandle']")
post "$INS" "?requestId=$RID&retry=true"
check_eq "requestId + retry=true after success: same result, same handle" "200 $H1" "$CODE $(j "d['statementHandle']")"
check_eq "... and the row is there once" "1" "$(q "SELECT COUNT(*) FROM sluice_db.public.trades WHERE seq = 10" | tail -1)"

# --- MERGE (idempotent upsert) -------------------------------------------------------
MERGE="MERGE INTO trades t USING (SELECT ? AS seq, ? AS price) s ON t.seq = s.seq WHEN MATCHED THEN UPDATE SET t.price = s.price WHEN NOT MATCHED THEN INSERT (seq, price) VALUES (s.seq, s.price)"
post "{\"statement\": \"$MERGE\", $NS, \"bindings\": {\"1\": {\"type\": \"FIXED\", \"value\": \"20\"}, \"2\": {\"type\": \"REAL\", \"value\": \"1.5\"}}}"
check_eq "MERGE of a new key: inserted" "200 1 0" "$CODE $(j "d['stats']['numRowsInserted'], d['stats']['numRowsUpdated']")"
post "{\"statement\": \"$MERGE\", $NS, \"bindings\": {\"1\": {\"type\": \"FIXED\", \"value\": \"20\"}, \"2\": {\"type\": \"REAL\", \"value\": \"2.5\"}}}"
check_eq "MERGE of the same key: updated" "200 0 1" "$CODE $(j "d['stats']['numRowsInserted'], d['stats']['numRowsUpdated']")"
check_eq "... one row with the new value" "2.5" "$(q "SELECT price FROM sluice_db.public.trades WHERE seq = 20" | tail -n +2)"

# --- queries a sink makes -----------------------------------------------------------
post "{\"statement\": \"WITH m AS (SELECT MAX(seq) AS hi FROM trades) SELECT MAX(seq), COUNT(*), (SELECT hi FROM m) AS top FROM trades WHERE symbol IS NOT NULL OR seq >= 20\", $NS}"
check_eq "SELECT MAX, COUNT, a CTE: names and values" "['MAX(SEQ)', 'COUNT(*)', 'TOP'] [['20', '4', '20']]" \
  "$(j "[c['name'] for c in d['resultSetMetaData']['rowType']], d['data']")"
post "{\"statement\": \"SHOW TABLES LIKE 'TR%'\", $NS}"
check_eq "SHOW TABLES" "TRADES SLUICE_DB PUBLIC" "$(j "d['data'][0][1], d['data'][0][2], d['data'][0][3]")"
post "{\"statement\": \"DESCRIBE TABLE trades\", $NS}"
check_eq "DESCRIBE TABLE" "['SYMBOL', 'VARCHAR(16777216)', 'COLUMN', 'Y', None, 'N', 'N'] TIMESTAMP_NTZ(9)" \
  "$(j "d['data'][0], d['data'][3][1]")"

# --- SQL errors -------------------------------------------------------------------------
post "{\"statement\": \"SELECT * FROM nosuch\", $NS}"
check_eq "unknown table: 422 002003" "422 002003" "$CODE $(j "d['code']")"
post "{\"statement\": \"SELECT * FROM trades\"}"
check_eq "unqualified name without a database: 422 090105" "422 090105" "$CODE $(j "d['code']")"
post "{\"statement\": \"CREATE STAGE s1\", $NS}"
check_eq "unsupported SQL: 422 naming it" "422 True" "$CODE $(j "'unsupported in the emulator' in d['message']")"
post "{\"statement\": \"SELECT v:a::string FROM trades\", $NS}"
check_eq "semi-structured path: 422 unsupported" "422 True" "$CODE $(j "'unsupported in the emulator' in d['message']")"
post "{\"statement\": \"SELECT 'unterminated\"}"
check_eq "unterminated string: 422 001003" "422 001003" "$CODE $(j "d['code']")"
get "00000000-0000-4000-8000-000000000000"
check_eq "GET of an unknown handle: 404" 404 "$CODE"
stop_worker $EMU_PID
check_eq "SIGTERM: exit 0" 0 "$STOP_RC"
start_emu main
post "$INS" "?requestId=$RID&retry=true"
check_eq "after a restart, requestId + retry=true still answers the stored result" "200 $H1 1" \
  "$CODE $(j "d['statementHandle']") $(q "SELECT COUNT(*) FROM sluice_db.public.trades WHERE seq = 10" | tail -1)"
stop_worker $EMU_PID
check_eq "exit 0 (no sanitizer report)" 0 "$STOP_RC"

# --- latency: 202, then GET polling -----------------------------------------------------
start_emu slow --latency-ms 1500 --async-after-ms 100
post "{\"statement\": \"SELECT 42 AS answer\"}"
check_eq "statement slower than the wait: 202 333334 with a handle" "202 333334 True" \
  "$CODE $(j "d['code'], d['statementStatusUrl'].endswith(d['statementHandle'])")"
H=$(j "d['statementHandle']")
polled() { get "$H"; [ "$CODE" = 200 ]; }
check "GET polls until 200" wait_for 15 polled
check_eq "... with the result" "[['42']] ANSWER" "$(j "d['data'], d['resultSetMetaData']['rowType'][0]['name']")"
post "{\"statement\": \"SELECT 1\"}" "?async=true"
check_eq "async=true: 202 at once" 202 "$CODE"
H=$(j "d['statementHandle']")
CODE=$(curl -s -o "$T/resp" -w '%{http_code}' -X POST "$URL/api/v2/statements/$H/cancel" -H "Accept: application/json" \
  -H "Authorization: Bearer $TOK" -H "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT")
check_eq "cancel before it ran: 200 000604" "200 000604" "$CODE $(j "d['code']")"
get "$H"
check_eq "... GET then says canceled: 422 000604" "422 000604" "$CODE $(j "d['code']")"
post "{\"statement\": \"SELECT 2\", \"timeout\": 1}"
H=$(j "d['statementHandle']")
finished() { get "$H"; [ "$CODE" != 202 ]; }
check "a statement over its timeout ends..." wait_for 15 finished
check_eq "... as 408 000630" "408 000630" "$CODE $(j "d['code']")"
stop_worker $EMU_PID
check_eq "SIGTERM with statements in flight: exit 0" 0 "$STOP_RC"

# --- injected failures --------------------------------------------------------------------
start_emu flaky --fail-rate 0.5 --fail-status 429 --seed 7
codes=""
for i in 1 2 3 4 5 6 7 8 9 10; do post "{\"statement\": \"SELECT $i\"}"; codes="$codes $CODE"; [ "$CODE" = 429 ] && cp "$T/resp" "$T/resp429"; done
check "--fail-rate 0.5: some 429s and some 200s ($codes)" bash -c "[[ '$codes' == *429* && '$codes' == *200* ]]"
cp "$T/resp429" "$T/resp" 2>/dev/null
check_eq "... 429 body: 390505" "390505 Too many requests." "$(j "d['code'], d['message']")"
stop_worker $EMU_PID
check_eq "exit 0 (no sanitizer report)" 0 "$STOP_RC"

start_emu drops --drop-rate 1 --drop-when after
rc=0; curl -s -o /dev/null -X POST "$URL/api/v2/statements" -H "Content-Type: application/json" \
  -H "Authorization: Bearer $TOK" -H "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT" \
  --data-binary "{\"statement\": \"CREATE TABLE t1 (a INT)\", $NS}" || rc=$?
check_eq "--drop-rate 1 --drop-when after: no response (curl exit 52)" 52 "$rc"
check "... but the statement ran" bash -c "'$EMU' query --db '$T/drops.sqlite' 'SELECT * FROM SLUICE_DB.PUBLIC.T1' >/dev/null"
check "... and the log says after executing" grep -q "dropped the connection after executing" "$T/drops.log"
stop_worker $EMU_PID
check_eq "exit 0" 0 "$STOP_RC"
start_emu drops2 --drop-rate 1 --drop-when before
rc=0; curl -s -o /dev/null -X POST "$URL/api/v2/statements" -H "Content-Type: application/json" \
  -H "Authorization: Bearer $TOK" -H "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT" \
  --data-binary "{\"statement\": \"CREATE TABLE t1 (a INT)\", $NS}" || rc=$?
check_eq "--drop-when before: no response" 52 "$rc"
check "... and nothing ran" bash -c "! '$EMU' query --db '$T/drops2.sqlite' 'SELECT * FROM SLUICE_DB.PUBLIC.T1' >/dev/null 2>&1"
stop_worker $EMU_PID
check_eq "exit 0 (no sanitizer report)" 0 "$STOP_RC"

# --- Snowpipe Streaming --------------------------------------------------------------------
start_emu stream --commit-delay-ms 300
post "{\"statement\": \"CREATE TABLE events (id NUMBER, body VARIANT, ts TIMESTAMP_NTZ)\", $NS}"
CODE=$(curl -s -o "$T/resp" -w '%{http_code}' "$URL/v2/streaming/hostname" -H "Authorization: Bearer $TOK" \
  -H "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT")
check_eq "GET /v2/streaming/hostname" "200 ${URL#http://}" "$CODE $(j "d['hostname']")"
CODE=$(curl -s -o "$T/resp" -w '%{http_code}' -X POST "$URL/oauth/token" -H "Authorization: Bearer $TOK" \
  --data-urlencode "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer" --data-urlencode "scope=${URL#http://}")
SCOPED=$(j "d['token']")
check "POST /oauth/token: a scoped token" test "$CODE" = 200 -a -n "$SCOPED"
CH="$URL/v2/streaming/databases/sluice_db/schemas/public/pipes/EVENTS-STREAMING"
DATA="$URL/v2/streaming/data/databases/sluice_db/schemas/public/pipes/EVENTS-STREAMING"
s_call() { # method url [body] [token]
  CODE=$(curl -s -o "$T/resp" -w '%{http_code}' -X "$1" "$2" -H "Authorization: Bearer ${4:-$SCOPED}" \
    -H "Content-Type: application/json" --data-binary "${3:-{\}}")
}
s_call PUT "$CH/channels/events_0"
CT1=$(j "d['next_continuation_token']")
check_eq "open channel: 200, nothing committed yet" "200 SUCCESS None True" \
  "$CODE $(j "d['channel_status']['channel_status_code'], d['channel_status']['last_committed_offset_token'], bool(d['next_continuation_token'])")"
s_call PUT "$CH/channels/events_0" "{}" "wrong-token"
check_eq "a wrong token on the ingest host: 401" 401 "$CODE"
CODE=$(curl -s -o "$T/resp" -w '%{http_code}' -X POST "$DATA/channels/events_0/rows?continuationToken=$CT1&offsetToken=41" \
  -H "Authorization: Bearer $SCOPED" -H "Content-Type: application/x-ndjson" \
  --data-binary $'{"id": 0, "body": {"a": 1}, "ts": "2024-01-01 00:00:00"}\n{"ID": 1, "BODY": [1, 2], "TS": 1700000000}\n')
check_eq "append 2 rows (offset token 41): 200 with the next continuation token" "200 True" "$CODE $(j "d['next_continuation_token'] != '$CT1'")"
committed() { s_call POST "$CH:bulk-channel-status" '{"channel_names": ["events_0"]}'; [ "$(j "d['channel_statuses']['events_0']['last_committed_offset_token']")" = 41 ]; }
check "the committed offset token advances to 41" wait_for 10 committed
check_eq "... the rows are in the table" "ID	BODY	TS
0	{\"a\":1}	2024-01-01 00:00:00.000000000
1	[1,2]	2023-11-14 22:13:20.000000000" \
  "$("$EMU" query --db "$T/stream.sqlite" "SELECT * FROM sluice_db.public.events ORDER BY id" 2>&1)"
s_call PUT "$CH/channels/events_0"
check_eq "reopen: the committed offset token is kept" "200 41" "$CODE $(j "d['channel_status']['last_committed_offset_token']")"
CODE=$(curl -s -o "$T/resp" -w '%{http_code}' -X POST "$DATA/channels/events_0/rows?continuationToken=$CT1&offsetToken=42" \
  -H "Authorization: Bearer $SCOPED" -H "Content-Type: application/x-ndjson" --data-binary '{"id": 2}')
check_eq "append with a continuation token from before the reopen: 400 STALE_CONTINUATION_TOKEN_SEQUENCER" \
  "400 STALE_CONTINUATION_TOKEN_SEQUENCER" "$CODE $(j "d['code']")"
CT2=$(curl -s -X PUT "$CH/channels/events_0" -H "Authorization: Bearer $SCOPED" -H "Content-Type: application/json" -d '{}' | \
  python3 -c "import json,sys; print(json.load(sys.stdin)['next_continuation_token'])")
CODE=$(curl -s -o "$T/resp" -w '%{http_code}' -X POST "$DATA/channels/events_0/rows?continuationToken=$CT2&offsetToken=42" \
  -H "Authorization: Bearer $SCOPED" -H "Content-Type: application/x-ndjson" --data-binary '{"nosuch": 2}')
check_eq "a row with an unknown column: 400" 400 "$CODE"
s_call DELETE "$CH/channels/events_0"
check_eq "drop channel: 200" 200 "$CODE"
s_call POST "$CH:bulk-channel-status" '{"channel_names": ["events_0"]}'
check_eq "... then it has no status" "{}" "$(j "json.dumps(d['channel_statuses'])")"
stop_worker $EMU_PID
check_eq "exit 0" 0 "$STOP_RC"

start_emu slowcommit --commit-delay-ms 600000
CH="$URL/v2/streaming/databases/sluice_db/schemas/public/pipes/EVENTS-STREAMING"
DATA="$URL/v2/streaming/data/databases/sluice_db/schemas/public/pipes/EVENTS-STREAMING"
post "{\"statement\": \"CREATE TABLE events (id NUMBER)\", $NS}"
s_call PUT "$CH/channels/c1" "{}" "$TOK"
CT1=$(j "d['next_continuation_token']")
CODE=$(curl -s -o "$T/resp" -w '%{http_code}' -X POST "$DATA/channels/c1/rows?continuationToken=$CT1&offsetToken=7" \
  -H "Authorization: Bearer $TOK" -H "Content-Type: application/x-ndjson" --data-binary '{"id": 7}')
check_eq "append (the key-pair JWT works on the ingest host too): 200" 200 "$CODE"
s_call PUT "$CH/channels/c1" "{}" "$TOK"
check_eq "reopen before the commit: still nothing committed (uncommitted rows dropped)" "200 None" \
  "$CODE $(j "d['channel_status']['last_committed_offset_token']")"
stop_worker $EMU_PID
check_eq "SIGTERM with uncommitted rows: exit 0" 0 "$STOP_RC"

check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/*.err"
finish
