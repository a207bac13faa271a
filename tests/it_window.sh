# Integration: transform-window in a sink-snowflake connector (upsert on
# SYMBOL, WINDOW_START) against build/tools/kafka-embedded and
# build/tools/snowflake-emulator. Trades (3 partitions, 9 symbols, hopping
# windows, out of order within the lateness, some late) arrive in three
# chunks: after the first the worker is killed with -9 mid-window, the
# second goes to the restarted worker, the third while a second worker joins
# the group (a rebalance). The summary table must equal a python
# recomputation; late records are in the dead-letter queue; a quiet
# partition still closes its window (idle timeout), but a stalled one (its
# broker down, kafka-embedded --control) keeps its windows open until its
# records can come again.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3 # Debian's, where python3-avro lives
EMU=$BUILD/tools/snowflake-emulator

openssl genrsa 2048 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$T/key.p8"
openssl pkey -in "$T/key.p8" -pubout -out "$T/key.pub" 2>/dev/null
check "key generated" test -s "$T/key.pub"
start_bg "$EMU" serve --port 0 --port-file "$T/emu.url" --db "$T/emu.sqlite" --account MYORG-ACCT \
  --user LOADER --public-key "$T/key.pub" --log-file "$T/emu.log" >"$T/emu.out" 2>&1
check "emulator starts" wait_for 10 test -s "$T/emu.url"
start_bg "$BUILD/tools/kafka-embedded" --brokers 1 --bootstrap-file "$T/bootstrap" --control "$T/kafka.ctl" \
  --topic trades:3:1 --topic trades.late:1:1 --topic quiet:1:1 --topic stall:1:1 >"$T/kafka.log" 2>&1
check "kafka-embedded starts" wait_for 10 test -s "$T/bootstrap"
BS=$(cat "$T/bootstrap")
q() { "$EMU" query --db "$T/emu.sqlite" --database SLUICE --schema PUBLIC "$1" 2>>"$T/query.err" | tail -n +2; }

# --- the stream and its recomputation -----------------------------------------
DELIM="@@$(openssl rand -hex 8)@@"
SIZE=1000 SLIDE=500 LATE=300
$PY - "$ROOT/schemas/trades.avsc" "$T" "$DELIM" $SIZE $SLIDE $LATE <<'PYEOF'
import io, json, random, sys, datetime, avro.schema, avro.io
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
def dt(ms): return EPOCH + datetime.timedelta(milliseconds=ms)  # python3-avro wants datetimes
schema = avro.schema.parse(open(sys.argv[1]).read())
T, delim = sys.argv[2], sys.argv[3].encode()
size, slide, late_ms = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
rnd = random.Random(6)
parts = {p: [] for p in range(3)}
for p in range(3):
    base = 1700000000000 + p * 37
    for i in range(700):
        base += rnd.randint(0, 30)
        r = rnd.random()
        ts = base - (0 if r < .6 else rnd.randint(0, late_ms) if r < .96 else rnd.randint(late_ms + size, late_ms + 3 * size))
        sym = "S%d" % (rnd.randrange(3) * 3 + p)
        parts[p].append({"symbol": sym, "price": rnd.randint(800, 1600) / 8.0,
                         "volume": 0.0 if rnd.random() < .1 else rnd.randint(1, 400) / 4.0,
                         "trade_time": ts, "conditions": None, "ingest_time": ts,
                         "trade_id": "%d-%d" % (p, i)})
# chunks: 0-299, 300-499, 500-699 of each partition
for c, (a, b) in enumerate([(0, 300), (300, 500), (500, 700)]):
    for p in range(3):
        with open("%s/chunk%d-%d.dump" % (T, c, p), "wb") as f:
            for rec in parts[p][a:b]:
                buf = io.BytesIO()
                avro.io.DatumWriter(schema).write(dict(rec, trade_time=dt(rec["trade_time"]),
                                                       ingest_time=dt(rec["ingest_time"])),
                                                  avro.io.BinaryEncoder(buf))
                f.write(rec["symbol"].encode() + b"\t" + buf.getvalue() + delim)
windows, late = {}, []
for p in range(3):
    mx = None
    for rec in parts[p]:
        ts = rec["trade_time"]
        mx = ts if mx is None or ts > mx else mx
        wm = mx - late_ms
        acc = False
        s = ts // slide * slide
        while s + size > ts:
            if s + size > wm:
                acc = True
                w = windows.setdefault((rec["symbol"], s), {"p": p, "n": 0, "v": 0.0, "pv": 0.0, "ps": 0.0,
                                                           "min": None, "max": None, "f": None, "l": None})
                pr, v = rec["price"], rec["volume"]
                w["n"] += 1; w["v"] += v; w["pv"] += pr * v; w["ps"] += pr
                w["min"] = pr if w["min"] is None else min(w["min"], pr)
                w["max"] = pr if w["max"] is None else max(w["max"], pr)
                if w["f"] is None or ts < w["f"][0]: w["f"] = (ts, pr)
                if w["l"] is None or ts >= w["l"][0]: w["l"] = (ts, pr)
            s -= slide
        if not acc: late.append(rec["trade_id"])
    parts[p] = mx - late_ms  # the final watermark
out = []
for (sym, s), w in sorted(windows.items()):
    if s + size > parts[w["p"]]: continue  # still open
    n = w["n"]
    out.append([sym, s, s + size, n, w["v"], w["pv"] / w["v"] if w["v"] else w["ps"] / n,
                w["min"], w["max"], w["f"][1], w["l"][1], w["ps"] / n, w["pv"] / n])
json.dump({"windows": out, "late": late}, open(T + "/expected.json", "w"))
print("# %d final windows, %d late records" % (len(out), len(late)))
PYEOF
check "stream generated" test -s "$T/expected.json"
produce() { # chunk
  for p in 0 1 2; do kcat -b "$BS" -P -t trades -p $p -K '\t' -D "$DELIM" <"$T/chunk$1-$p.dump" 2>/dev/null; done
}

# --- connector ----------------------------------------------------------------
conn() { # file, name, topic, table, extra JSON members
  cat > "$1" <<JSON
{"name": "$2", "config": {"connector.class": "sink-snowflake", "topics": "$3",
 "value.converter": "avro", "value.converter.schema": "trades",
 "transforms": "w", "transforms.w.type": "transform-window",
 "transforms.w.window.size.ms": "$SIZE", "transforms.w.window.slide.ms": "$SLIDE",
 "transforms.w.window.lateness.ms": "$LATE", "transforms.w.window.time.field": "trade_time",
 "snowflake.record.schema": "trades_summary", "snowflake.upsert.keys": "SYMBOL,WINDOW_START",
 "snowflake.topic2table.map": "$3:$4",
 "snowflake.url.name": "$(cat "$T/emu.url")", "snowflake.account.name": "myorg-acct",
 "snowflake.user.name": "loader", "snowflake.private.key": "\${file:$T/key.p8}",
 "snowflake.database.name": "SLUICE", "snowflake.schema.name": "PUBLIC",
 "snowflake.warehouse.name": "WH", "snowflake.role.name": "LOADER_ROLE",
 "snowflake.schemas.path": "$ROOT/schemas", "buffer.count.records": 100, "buffer.flush.time": 1,
 "offset.flush.interval.ms": 300, "errors.tolerance": "all"$5}}
JSON
}
conn "$T/win.json" win trades TRADES_SUMMARY ', "errors.deadletterqueue.topic.name": "trades.late", "errors.deadletterqueue.context.headers.enable": "true"'
conn "$T/quiet.json" quiet quiet QUIET_SUMMARY ', "transforms.w.window.idle.timeout.ms": "1000"'
conn "$T/badschema.json" badschema quiet BAD_SUMMARY ', "transforms.w.window.output.schema": "trades"'
conn "$T/stall.json" stall stall STALL_SUMMARY ', "transforms.w.window.idle.timeout.ms": "4000"'
worker_conf "$T/w1.json"
# a short session: the killed worker's partitions come back sooner
sed -i "s|\"bootstrap.servers\": \"embedded\"|\"bootstrap.servers\": \"$BS\"|; s|\"consumer.session.timeout.ms\": 6000|\"consumer.session.timeout.ms\": 3000|; s|\"consumer.heartbeat.interval.ms\": 500|\"consumer.heartbeat.interval.ms\": 300|" "$T/w1.json"
sed "s|offsets.json|offsets2.json|" "$T/w1.json" > "$T/w2.json"

rows() { q "SELECT COUNT(*) FROM TRADES_SUMMARY" 2>/dev/null | head -1; }
has_rows() { [ "$(rows)" -gt 0 ] 2>/dev/null; }
compare() { # prints the first difference; 0 when the table is the recomputation
  q "SELECT SYMBOL, WINDOW_START, WINDOW_END, TRADE_COUNT, VOLUME, VWAP, MIN_PRICE, MAX_PRICE, FIRST_PRICE, LAST_PRICE, MEAN_PRICE, PRICE_VOLUME_MULTIPLY, IS_FINAL FROM TRADES_SUMMARY" >"$T/table.tsv"
  PYTHONPATH="$ROOT/tests" $PY - "$T/expected.json" "$T/table.tsv" <<'PYEOF'
import json, sys
from sf_time import ts_ms  # tests/sf_time.py (PYTHONPATH)
want = {(w[0], w[1]): w for w in json.load(open(sys.argv[1]))["windows"]}
got = {}
for line in open(sys.argv[2]):
    f = line.rstrip("\n").split("\t")
    k = (f[0], ts_ms(f[1]))
    assert k not in got, "row twice: %s" % (k,)
    got[k] = [f[0], k[1], ts_ms(f[2]), int(f[3])] + [float(x) for x in f[4:12]] + [f[12]]
if set(got) != set(want):
    print("# windows: %d in the table, %d expected; missing %s, extra %s" % (len(got), len(want),
          sorted(set(want) - set(got))[:3], sorted(set(got) - set(want))[:3])); sys.exit(1)
for k, w in want.items():
    g = got[k]
    same = g[:4] == w[:4] and all(abs(a - b) <= 1e-9 * max(1, abs(b)) for a, b in zip(g[4:12], w[4:]))
    if not same or g[12].lower() not in ("true", "1"):
        print("# %s differs: table %s, expected %s" % (k, g, w)); sys.exit(1)
print("# %d windows equal the recomputation" % len(want))
PYEOF
}

# --- 1. first chunk, kill -9 mid-window ------------------------------------------
produce 0
start_bg "$SLUICE" standalone "$T/w1.json" "$T/win.json" "$T/quiet.json" "$T/badschema.json" 2>"$T/run1.log"
W1=$LAST_PID
check "results reach the table" wait_for 30 has_rows
check "an output schema without the result fields: the task fails, naming the key and the field" \
  grep -q "badschema/0 is FAILED: .*config 'window.output.schema': schema trades has no field window_start" "$T/run1.log"
kill -KILL $W1; wait $W1 2>/dev/null
echo "# killed with $(rows) rows in the table"

# --- 2. restart, second chunk; 3. a second worker joins, third chunk ------------
produce 1
start_bg "$SLUICE" standalone "$T/w1.json" "$T/win.json" "$T/quiet.json" 2>"$T/run2.log"
W1=$LAST_PID
check "restart: upsert resumes at a committed offset inside the stream (windows rebuilt)" wait_for 20 grep -q "upsert into TRADES_SUMMARY from the committed offset ([1-9]" "$T/run2.log"
start_bg "$SLUICE" standalone "$T/w2.json" "$T/win.json" 2>"$T/run3.log"
W2=$LAST_PID
# (the mock coordinator's rebalance rounds are short - session timeout - 1 s
# to join, the session timeout to sync - so on a loaded machine a member can
# miss a round or two: the wait is for the rebalance, not its speed)
joined() { grep -q "win/0.*assigned [1-9] partition" "$T/run3.log"; }
wait_for 60 joined
check "a second worker joins: partitions rebalance" joined
joined || for f in run2 run3; do # what each worker's group membership did
    echo "# $f.log:"; grep -E "win/0\]|ERROR|FATAL|FAILED" "$T/$f.log" | grep -v "bad record" | tail -15 | sed 's/^/#   /'
  done
produce 2
check "the summary table equals the recomputation" wait_for 40 compare
compare

# --- late records, idle timeout ---------------------------------------------------
late_ok() {
  kcat -b "$BS" -C -t trades.late -o beginning -e -q -D "$DELIM" 2>/dev/null >"$T/late.dump"
  $PY - "$ROOT/schemas/trades.avsc" "$T/late.dump" "$DELIM" "$T/expected.json" <<'PYEOF'
import io, json, sys, avro.schema, avro.io
schema = avro.schema.parse(open(sys.argv[1]).read())
data = open(sys.argv[2], "rb").read().split(sys.argv[3].encode())
ids = set()
for v in data:
    if v: ids.add(avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(v)))["trade_id"])
want = set(json.load(open(sys.argv[4]))["late"])
print("# %d late records in the dead-letter queue, %d expected" % (len(ids), len(want)))
sys.exit(0 if ids == want and want else 1)
PYEOF
}
check "late records are in the dead-letter queue (each late trade, nothing else)" wait_for 20 late_ok
check "late records are counted and logged with the watermark" grep -q "late: event time .* is behind the watermark" "$T/run1.log" "$T/run2.log" "$T/run3.log"
few() { # dump file, symbol, event times (ms): one trade each, price 10, 11, ...
  $PY - "$ROOT/schemas/trades.avsc" "$1" "$DELIM" "$2" "${@:3}" <<'PYEOF'
import io, sys, datetime, avro.schema, avro.io
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
schema = avro.schema.parse(open(sys.argv[1]).read())
with open(sys.argv[2], "wb") as f:
    for i, ts in enumerate(sys.argv[5:]):
        buf = io.BytesIO()
        avro.io.DatumWriter(schema).write({"symbol": sys.argv[4], "price": 10.0 + i, "volume": 1.0,
            "trade_time": EPOCH + datetime.timedelta(milliseconds=int(ts)),
            "conditions": None, "ingest_time": EPOCH,
            "trade_id": str(i)}, avro.io.BinaryEncoder(buf))
        f.write(sys.argv[4].encode() + b"\t" + buf.getvalue() + sys.argv[3].encode())
PYEOF
}
few "$T/quiet.dump" QUIET 1700000100000 1700000100050 1700000100100 1700000100150 1700000100200
kcat -b "$BS" -P -t quiet -p 0 -K '\t' -D "$DELIM" <"$T/quiet.dump" 2>/dev/null
quiet_closed() { [ "$(q "SELECT TRADE_COUNT, LAST_PRICE FROM QUIET_SUMMARY WHERE IS_FINAL" 2>/dev/null | tr '\t' ' ' | sort | tr '\n' ';')" = "5 14;5 14;" ]; }
check "idle timeout: the quiet partition's two windows close without more data" wait_for 20 quiet_closed
stop_worker $W2
stop_worker $W1

# --- a stalled partition is not idle ---------------------------------------------
# Two trades, then one 1.6 s later in event time: it closes the two windows
# of the first ones (rows), and its own two (hopping) windows stay open. Then the broker goes down for 6 s,
# longer than the 4 s idle timeout: the partition cannot be fetched, so its
# watermark must not move on processing time (the trades it would hold are
# not lost, only late) until the broker is back and says nothing waits.
# (a session that outlasts the outage: no rebalance, the same open windows)
sed 's|"consumer.session.timeout.ms": 3000|"consumer.session.timeout.ms": 30000|; s|"consumer.max.poll.interval.ms": 10000|"consumer.max.poll.interval.ms": 30000|; s|offsets.json|offsets3.json|' \
  "$T/w1.json" >"$T/w3.json"
start_bg "$SLUICE" standalone "$T/w3.json" "$T/stall.json" 2>"$T/run4.log"
W3=$LAST_PID
few "$T/stall.dump" STALL 1700000200000 1700000200100 1700000201600
kcat -b "$BS" -P -t stall -p 0 -K '\t' -D "$DELIM" <"$T/stall.dump" 2>/dev/null
stall_rows() { q "SELECT COUNT(*) FROM STALL_SUMMARY WHERE IS_FINAL" 2>/dev/null | head -1; }
first_closed() { [ "$(stall_rows)" = 2 ] 2>/dev/null; }
check "stall: the first windows close on event time" wait_for 30 first_closed
echo "down 1" >"$T/kafka.ctl"
sleep 6
echo "up 1" >"$T/kafka.ctl"
check "stall: the broker went down and came back" wait_for 10 grep -q 'up 1: done' "$T/kafka.log"
check "stall: while it could not be fetched, the partition was stalled, not idle" \
  grep -q 'stall\[0\]: no record for .* stalled, not idle; watermark kept' "$T/run4.log"
check "stall: its watermark did not move on processing time while the broker was down" \
  bash -c "! grep -q 'stall\[0\]: no record for .* ms: watermark advanced' '$T/run4.log'"
all_closed() { [ "$(stall_rows)" = 4 ] 2>/dev/null; }
check "stall: once the broker is back and nothing waits, the idle timeout closes the rest" wait_for 30 all_closed
check "stall: ...logged as idle" grep -q 'stall\[0\]: no record for .* and none waiting in Kafka: watermark advanced' "$T/run4.log"
stop_worker $W3
check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/*.log"
finish
