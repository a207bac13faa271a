# Integration: the source-finnhub plugin against build/tools/finnhub-replay
# (a local Finnhub-protocol websocket server) and build/tools/kafka-embedded,
# checked with kcat and python3-avro as independent clients. One worker runs
# every connector at once:
#  1. plain: N synthetic trades -> exactly N Avro records, equal field by
#     field to what the server says it sent, keyed by symbol; pings ignored.
#  2. drop: the server drops the connection once -> reconnect, resubscribe,
#     and still exactly the trades the server sent.
#  3. bad: malformed frames and error messages -> counted, logged, bad
#     frames in the dead-letter topic, every valid trade still delivered.
#  4. message: output.format=message -> the original TestObject records;
#     malformed frames without a DLQ (errors.tolerance=none) are logged and
#     skipped, the task goes on.
#  5. idle: a server that upgrades and then says nothing is dropped after
#     finnhub.idle.timeout.ms and reconnected.
#  6. the worker stays up and says why for an unreachable URL, a refused
#     token (HTTP 401) and a missing token for ws.finnhub.io; the token,
#     passed through ${env:...}, never shows up in the log.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3 # Debian's, where python3-avro lives
REPLAY=$BUILD/tools/finnhub-replay
N=3000

TOKEN=$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export FH_IT_TOKEN=$TOKEN

start_bg "$BUILD/tools/kafka-embedded" --brokers 1 --bootstrap-file "$T/bootstrap" \
  --topic fh.plain:3:1 --topic fh.drop:3:1 --topic fh.bad:3:1 --topic fh.bad.dlq:1:1 \
  --topic fh.msg:1:1 --topic fh.none:1:1 >"$T/embedded.out"
check "kafka-embedded starts" wait_for 10 test -s "$T/bootstrap"
BS=$(cat "$T/bootstrap")
worker_conf "$T/worker.json"
sed -i "s|\"bootstrap.servers\": \"embedded\"|\"bootstrap.servers\": \"$BS\"|" "$T/worker.json"

# replay NAME ARGS...: a feed server; its URL lands in $T/NAME.port
replay() {
  local name=$1; shift
  start_bg "$REPLAY" --port 0 --port-file "$T/$name.port" --token "$TOKEN" \
    --sent-file "$T/$name.sent" --log-file "$T/$name.replay.log" "$@" >"$T/$name.replay.out"
  check "$name: finnhub-replay starts" wait_for 10 test -s "$T/$name.port"
}
replay plain --synthetic --seed 11 --count $N --rate 0 --batch 7 --ping-ms 100
replay drop --synthetic --seed 12 --count $N --rate 20000 --batch 5 --drop-after 1000
replay bad --synthetic --seed 13 --count $N --rate 0 --batch 3 --malformed-every 50 --error-every 40
replay msg --synthetic --seed 14 --count 500 --rate 0 --batch 4 --malformed-every 25
replay refused --synthetic --seed 15 --count 10
# a server that completes the websocket upgrade and then never sends a byte
cat >"$T/silent.py" <<'PYEOF'
import base64, hashlib, socket, sys
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(8)
open(sys.argv[1] + ".tmp", "w").write("ws://127.0.0.1:%d/" % srv.getsockname()[1])
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
conns = []
while True:
    c, _ = srv.accept(); conns.append(c); req = b""
    while b"\r\n\r\n" not in req: req += c.recv(4096)
    key = [l.split(b":", 1)[1].strip() for l in req.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key:")][0]
    acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
PYEOF
start_bg $PY "$T/silent.py" "$T/silent.port"
check "silent server starts" wait_for 10 test -s "$T/silent.port"
# a port nobody listens on: bind one, then let it go
FREE_PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

SYMS="['BINANCE:BTCUSDT','BINANCE:ETHUSDT','OANDA:EUR_USD','IC MARKETS:1','AAPL']"
connector() { # name, url, topic, extra JSON members; SCHEMA=trades by default
  cat > "$T/$1.json" <<JSON
{"name": "fh-$1", "config": {"connector.class": "source-finnhub",
 "finnhub.url": "$2", "finnhub.token": "\${env:FH_IT_TOKEN}", "finnhub.symbols": "$SYMS",
 "topic": "$3", "value.converter": "avro", "value.converter.schema": "${SCHEMA:-trades}",
 "finnhub.reconnect.backoff.initial.ms": 100, "finnhub.reconnect.backoff.max.ms": 1000${4:+, $4}}}
JSON
}
connector plain "$(cat "$T/plain.port")" fh.plain
connector drop "$(cat "$T/drop.port")" fh.drop
connector bad "$(cat "$T/bad.port")" fh.bad '"errors.tolerance": "all", "errors.deadletterqueue.topic.name": "fh.bad.dlq", "errors.deadletterqueue.context.headers.enable": "true"'
SCHEMA=finnhub_message connector msg "$(cat "$T/msg.port")" fh.msg '"output.format": "message"'
connector unreachable "ws://127.0.0.1:$FREE_PORT/" fh.none
connector idle "$(cat "$T/silent.port")" fh.none '"finnhub.idle.timeout.ms": 700'
cat > "$T/refused.json" <<JSON
{"name": "fh-refused", "config": {"connector.class": "source-finnhub",
 "finnhub.url": "$(cat "$T/refused.port")", "finnhub.token": "wrong-$RANDOM", "finnhub.symbols": "AAPL",
 "topic": "fh.none", "finnhub.reconnect.backoff.initial.ms": 100, "finnhub.reconnect.backoff.max.ms": 500}}
JSON
cat > "$T/notoken.json" <<JSON
{"name": "fh-notoken", "config": {"connector.class": "source-finnhub",
 "finnhub.url": "wss://ws.finnhub.io", "finnhub.symbols": "AAPL", "topic": "fh.none"}}
JSON

rc=0; "$SLUICE" validate "$T/worker.json" "$T"/{plain,drop,bad,msg,idle,unreachable,refused,notoken}.json \
  >"$T/validate.log" 2>&1 || rc=$?
check_eq "validate accepts every connector" 0 "$rc"
rc=0; env -u FH_IT_TOKEN "$SLUICE" validate "$T/worker.json" "$T"/plain.json >"$T/validate2.log" 2>&1 || rc=$?
check "validate refuses an unset \${env:...} token, naming the key" bash -c \
  "[ $rc -ne 0 ] && grep -q \"config key 'finnhub.token'\" '$T/validate2.log'"

start_bg "$SLUICE" standalone "$T/worker.json" "$T/plain.json" "$T/drop.json" "$T/bad.json" \
  "$T/msg.json" "$T/idle.json" "$T/unreachable.json" "$T/refused.json" "$T/notoken.json" 2>"$T/worker.log"
W=$LAST_PID

count_topic() { kcat -b "$BS" -C -t "$1" -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l; }
# decode TOPIC NAME SCHEMA: every record vs the sent-file, field by field
decode() {
  $PY - "$ROOT/schemas/$3.avsc" "$BS" "$1" "$T/$2.sent" "$3" <<'PYEOF'
import datetime, io, json, subprocess, sys, avro.schema, avro.io
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
def ms(v):  # python3-avro reads timestamp-millis as an aware datetime
    return v if isinstance(v, int) else (v - EPOCH) // datetime.timedelta(milliseconds=1)
schema = avro.schema.parse(open(sys.argv[1]).read())
bs, topic, sent_file, kind = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
meta = subprocess.run(["kcat", "-b", bs, "-L", "-t", topic, "-J"], capture_output=True).stdout
parts = [p["partition"] for p in json.loads(meta)["topics"][0]["partitions"]]
got, ids, keys_ok, ingest = [], set(), True, []
for p in parts:
    out = subprocess.run(["kcat", "-b", bs, "-C", "-t", topic, "-p", str(p), "-o", "beginning",
                          "-e", "-q", "-f", "%K %S %T\n%k%s"], capture_output=True).stdout
    while out:
        header, _, rest = out.partition(b"\n")
        klen, vlen, ts = (int(x) for x in header.split(b" "))
        key, value, out = rest[:max(klen, 0)], rest[max(klen, 0):max(klen, 0) + vlen], rest[max(klen, 0) + vlen:]
        rec = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(value)))
        if kind == "trades":
            if key.decode() != rec["symbol"] or ts != ms(rec["trade_time"]):
                keys_ok = False
            ids.add(rec["trade_id"])
            ingest.append(ms(rec["ingest_time"]))
            got.append((rec["symbol"], rec["price"], ms(rec["trade_time"]), rec["volume"],
                        tuple(rec["conditions"]) if rec["conditions"] is not None else None))
        else:
            if klen > 0 or rec["type"] != "trade":
                keys_ok = False
            for d in rec["data"]:
                got.append((d["s"], d["p"], d["t"], d["v"], tuple(d["c"]) if d["c"] is not None else None))
sent = []
for line in open(sent_file):
    j = json.loads(line)
    c = j.get("c")
    sent.append((j["s"], float(j["p"]), j["t"], float(j["v"]), tuple(c) if c is not None else None))
problems = []
if not keys_ok: problems.append("a key or timestamp does not match its value")
if sorted(got, key=repr) != sorted(sent, key=repr):
    missing = len(set(sent) - set(got)); extra = len(set(got) - set(sent))
    problems.append("records differ from the sent-file: %d sent, %d got, %d missing, %d unexpected"
                    % (len(sent), len(got), missing, extra))
# distinct trades never share an id (equal trades may, at the same index of
# two messages: the id is a function of the trade and its index)
if kind == "trades" and (len(ids) < len(set(got)) or any(len(i) != 32 for i in ids)):
    problems.append("trade ids: %d ids for %d distinct trades" % (len(ids), len(set(got))))
if ingest and max(ingest) > min(ingest):
    print("# %s: %d trades ingested in %d ms (%.0f trades/s)" % (topic, len(ingest),
          max(ingest) - min(ingest), len(ingest) * 1000.0 / (max(ingest) - min(ingest))), file=sys.stderr)
print("; ".join(problems) if problems else "ok %d" % len(got))
PYEOF
}

# --- 1. plain ---------------------------------------------------------------------
check "plain: the server sent all $N trades" wait_for 40 bash -c "[ \$(wc -l <'$T/plain.sent' 2>/dev/null || echo 0) -ge $N ]"
plain_all() { [ "$(count_topic fh.plain)" -ge $N ]; }
check "plain: $N records in the topic" wait_for 30 plain_all
check_eq "plain: exactly the $N trades sent, field by field, keyed by symbol" "ok $N" "$(decode fh.plain plain trades)"
check "plain: subscribed every symbol" grep -q "fh-plain/0\] subscribed 5 symbol(s)" "$T/worker.log"

# --- 2. drop and reconnect --------------------------------------------------------
drop_done() { [ "$(wc -l <"$T/drop.sent" 2>/dev/null || echo 0)" -ge $N ]; }
check "drop: the server sent all $N trades (across the drop)" wait_for 40 drop_done
drop_all() { [ "$(count_topic fh.drop)" -ge "$(wc -l <"$T/drop.sent")" ]; }
check "drop: every sent trade in the topic" wait_for 30 drop_all
check "drop: the disconnect was logged with a reconnect delay" grep -q \
  "fh-drop/0\] disconnected from ws://127.0.0.1:[0-9]*/: .*; reconnecting in [0-9]* ms" "$T/worker.log"
check "drop: resubscribed after reconnecting" bash -c \
  "[ \$(grep -c 'fh-drop/0\] subscribed 5 symbol(s)' '$T/worker.log') -ge 2 ]"
S=$(wc -l <"$T/drop.sent")
check_eq "drop: exactly the trades sent ($S), field by field" "ok $S" "$(decode fh.drop drop trades)"

# --- 3. malformed frames and error messages ---------------------------------------
bad_done() { [ "$(wc -l <"$T/bad.sent" 2>/dev/null || echo 0)" -ge $N ]; }
check "bad: the server sent all $N trades" wait_for 40 bad_done
bad_all() { [ "$(count_topic fh.bad)" -ge $N ]; }
check "bad: every valid trade in the topic" wait_for 30 bad_all
check_eq "bad: exactly the valid trades sent, field by field" "ok $N" "$(decode fh.bad bad trades)"
has_dlq() { [ "$(count_topic fh.bad.dlq)" -ge 1 ]; }
check "bad: malformed frames in the dead-letter topic" wait_for 20 has_dlq
# the server rotates through 8 kinds of malformed message: each is refused
# for its own reason, and the reason travels with it to the DLQ
eight_in_dlq() { [ "$(count_topic fh.bad.dlq)" -ge 8 ]; }
check "bad: at least one of each of the 8 malformed kinds in the DLQ" wait_for 20 eight_in_dlq
kcat -b "$BS" -C -t fh.bad.dlq -o beginning -e -q -f '%h\n' >"$T/dlq.headers" 2>/dev/null
for reason in 'bad Finnhub frame: not JSON' 'bad Finnhub trade: trade #0: "p" is not a finite number' \
              'bad Finnhub trade: trade #0: "s" is missing' 'bad Finnhub trade: trade #0: "t" is negative' \
              'bad Finnhub trade: trade #0: "t" is not an integer' 'bad Finnhub frame: unknown "type": "news"'; do
  check "bad: DLQ reason header: $reason" grep -qF "__connect.errors.exception.message=$reason" "$T/dlq.headers"
done
# every malformed template holds "finnhub-replay", "101.25" or "1e999"; a
# valid synthetic trade never does
check_eq "bad: the DLQ holds only the server's malformed frames" "0" "$(kcat -b "$BS" -C -t fh.bad.dlq \
  -o beginning -e -q -f '%s\n' 2>/dev/null | grep -cvE 'finnhub-replay|101\.25|1e999')"
echo "# fh.bad: $(count_topic fh.bad.dlq) bad frames/trades in the dead-letter topic"
check "bad: bad frames logged" grep -q "fh-bad/0\] bad record at TASK_POLL: bad Finnhub" "$T/worker.log"
check "bad: Finnhub error messages logged" grep -q "fh-bad/0\] Finnhub error message" "$T/worker.log"
check "bad: the task kept running" bash -c "! grep -q 'fh-bad/0 is FAILED' '$T/worker.log'"

# --- 4. output.format=message -----------------------------------------------------
msg_done() { [ "$(wc -l <"$T/msg.sent" 2>/dev/null || echo 0)" -ge 500 ]; }
check "message: the server sent 500 trades" wait_for 40 msg_done
msg_in() { [ "$(decode fh.msg msg finnhub_message)" = "ok 500" ]; }
check "message: TestObject records hold exactly the 500 trades, no key" wait_for 20 msg_in
check "message: malformed frames with errors.tolerance=none (no DLQ): logged, task still RUNNING" bash -c \
  "grep -q 'fh-msg/0\] bad record at TASK_POLL: bad Finnhub' '$T/worker.log' && ! grep -q 'fh-msg/0 is FAILED' '$T/worker.log'"

# --- 5. idle connection ------------------------------------------------------------
idle_twice() { [ "$(grep -c "fh-idle/0\] disconnected from .*: nothing received for [0-9]* ms (finnhub.idle.timeout.ms)" "$T/worker.log")" -ge 2 ]; }
check "idle: a silent connection is dropped and reconnected (twice)" wait_for 20 idle_twice
check "idle: each reconnect resubscribes" bash -c \
  "[ \$(grep -c 'fh-idle/0\] subscribed 5 symbol(s)' '$T/worker.log') -ge 2 ]"

# --- 6. the worker stays up and says why --------------------------------------------
check "unreachable: retried with back-off, reason logged" wait_for 20 grep -q \
  "fh-unreachable/0\] cannot connect to ws://127.0.0.1:$FREE_PORT/: .*reconnecting in" "$T/worker.log"
check "unreachable: task RUNNING" grep -q "task fh-unreachable/0 is RUNNING" "$T/worker.log"
check "refused token: HTTP 401 logged with the key to check" wait_for 20 grep -q \
  "fh-refused/0\] cannot connect to .*HTTP 401: the token was refused (check finnhub.token)" "$T/worker.log"
check "refused token: task RUNNING" grep -q "task fh-refused/0 is RUNNING" "$T/worker.log"
check "no token for ws.finnhub.io: the task fails naming the key" wait_for 20 grep -q \
  "task fh-notoken/0 is FAILED: config 'finnhub.token' is required for ws.finnhub.io" "$T/worker.log"
check "the worker is still up" kill -0 $W

stop_worker $W
check_eq "SIGTERM exits 0" 0 "$STOP_RC"
check_eq "the token never appears in the worker log" 0 "$(grep -c "$TOKEN" "$T/worker.log")"
check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/*.log"
finish
