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

start_emu drops --drop-rate 1 --drop-when after
rc=0; curl -s -o /dev/null -X POST "$URL/api/v2/statements" -H "Content-Type: application/json" \
  -H "Authorization: Bearer $TOK" -H "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT" \
  --data-binary "{\"statement\": \"CREATE TABLE t1 (a INT)\", $NS}" || rc=$?
check_eq "--drop-rate 1 --drop-when after: no response (curl exit 52)" 52 "$rc"
check "... but the statement ran" bash -c "'$EMU' query --db '$T/drops.sqlite' 'SELECT * FROM SLUICE_DB.PUBLIC.T1' >/dev/null"
check "... and the log says after executing" grep -q "dropped the connection after executing" "$T/drops.log"
stop_worker $EMU_PID
check_eq "exit 0" 0 "$STOP_RC"

check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/*.err"
finish
