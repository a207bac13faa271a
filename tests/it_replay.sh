# Integration: tools/finnhub-replay, the local Finnhub trades server, driven
# by tools/ws-probe (a websocket client printing one line a frame).
#  1. synthetic: the URL is printed and written; a wrong or missing token is
#     refused with HTTP 401, a second concurrent client with 429; only the
#     subscribed symbols arrive; --count N gives exactly N trades, the same,
#     field by field, as the --sent-file lines; pings keep coming after; a
#     port in use is an error; a seed gives the same trades every run.
#  2. faults: --max-symbols and bad client messages answered with errors;
#     --drop-after drops the connection once and a reconnecting client
#     resumes (the two together get exactly --count trades); malformed and
#     error frames appear and never count as trades; unsubscribe stops a
#     symbol.
#  3. the shipped recording replays, filtered per symbol, split by --batch.
#  4. bad arguments and a bad recording are refused; SIGTERM exits 0 with
#     "N trades sent".
. "$(dirname "$0")/lib.sh"

REPLAY=$BUILD/tools/finnhub-replay
PROBE=$BUILD/tools/ws-probe
SAMPLE=$ROOT/tests/data/finnhub-sample.jsonl
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$TOKEN" >"$T/token"

# Frame analysis: "trades=N pings=N errors=N malformed=N symbols=A|B maxbatch=N"
# (tab-separated; symbols sorted; a malformed frame is anything but a
# well-formed trade, ping or error message).
cat >"$T/frames.py" <<'PY'
import json, math, sys
from decimal import Decimal
def load(text):  # exact: decimals stay decimals, integers stay integers
    return json.loads(text, parse_float=Decimal, parse_constant=lambda c: None)
def num(x):
    return isinstance(x, (int, Decimal)) and not isinstance(x, bool) and math.isfinite(float(x))
def parse(line):
    try:
        m = load(line)
    except ValueError:
        return None
    if not isinstance(m, dict) or m.get("type") not in ("trade", "ping", "error"):
        return None
    if m["type"] == "error" and not isinstance(m.get("msg"), str):
        return None
    if m["type"] != "trade":
        return m
    data = m.get("data")
    if not isinstance(data, list) or not data:
        return None
    for t in data:
        if not (isinstance(t, dict) and isinstance(t.get("s"), str) and num(t.get("p"))
                and num(t.get("v")) and isinstance(t.get("t"), int) and not isinstance(t["t"], bool)
                and t["t"] >= 0 and (t.get("c") is None or all(isinstance(c, str) for c in t["c"]))):
            return None
    return m
def trades(paths):
    out = []
    for path in paths:
        for line in open(path):
            m = parse(line)
            if m and m["type"] == "trade":
                out.extend(m["data"])
    return out
def same(got, sent, what):
    for i, (a, b) in enumerate(zip(got, sent)):
        if a != b or list(a) != list(b):
            print("trade %d differs: %s %s, sent-file %s" % (i, what, a, b)); sys.exit(1)
    if len(got) != len(sent):
        print("%s %d trades, sent-file has %d" % (what, len(got), len(sent))); sys.exit(1)
cmd = sys.argv[1]
if cmd == "summary":
    n = {"trade": 0, "ping": 0, "error": 0, "malformed": 0}
    syms, maxbatch = set(), 0
    for line in open(sys.argv[2]):
        m = parse(line)
        if m is None:
            n["malformed"] += 1
        elif m["type"] == "trade":
            n["trade"] += len(m["data"])
            maxbatch = max(maxbatch, len(m["data"]))
            syms.update(t["s"] for t in m["data"])
        else:
            n[m["type"]] += 1
    print("trades=%d\tpings=%d\terrors=%d\tmalformed=%d\tsymbols=%s\tmaxbatch=%d" % (
        n["trade"], n["ping"], n["error"], n["malformed"], "|".join(sorted(syms)), maxbatch))
elif cmd == "same":  # sent-file, frames...: the same trades, in order, same values
    same(trades(sys.argv[3:]), [load(l) for l in open(sys.argv[2])], "received")
elif cmd == "replayed":  # recording, sent-file, symbols...: its trades for those symbols
    keep = set(sys.argv[4:])
    same([t for t in trades([sys.argv[2]]) if t["s"] in keep],
         [load(l) for l in open(sys.argv[3])], "recorded")
elif cmd == "count":  # recording, symbols...: how many trades for those symbols
    keep = set(sys.argv[3:])
    print(sum(1 for t in trades([sys.argv[2]]) if t["s"] in keep))
elif cmd == "after":  # sent-file, N: symbols sent after the first N trades
    for l in list(open(sys.argv[2]))[int(sys.argv[3]):]:
        print(load(l)["s"])
PY
frames() { python3 "$T/frames.py" "$@"; }
field() { # name, summary line
  tr '\t' '\n' <<<"$2" | sed -n "s/^$1=//p"
}
start_replay() { # name, args...: logs in $T/name.{out,log,events}
  local n=$1; shift
  start_bg "$REPLAY" --token-file "$T/token" --port-file "$T/$n.url" --log-file "$T/$n.events" \
    --sent-file "$T/$n.sent" "$@" >"$T/$n.out" 2>"$T/$n.log"
}
probe() { # name, URL, args...: frames in $T/name.frames; sets PROBE_RC
  local n=$1 url=$2; shift 2
  PROBE_RC=0
  "$PROBE" "$url" "$@" >"$T/$n.frames" 2>"$T/$n.probe.log" || PROBE_RC=$?
}

# --- 1. synthetic: URL, tokens, one client at a time, --count ----------------
# Rates above 0 where a client subscribes to several symbols: it subscribes
# one message at a time, and at full speed the trades could all be gone
# before its last subscribe arrives.
start_replay s1 --synthetic --seed 5 --rate 100 --count 60 --ping-ms 200
S1=$LAST_PID
check "the URL is written to --port-file" wait_for 10 test -s "$T/s1.url"
URL=$(cat "$T/s1.url")
check "... and is a loopback ws:// URL" grep -qE '^ws://127\.0\.0\.1:[0-9]+$' "$T/s1.url"
check_eq "... printed on stdout too" "$URL" "$(head -1 "$T/s1.out")"
probe bad "$URL/?token=not-$TOKEN" --subscribe AAPL --seconds 10
check_eq "a wrong token is refused" 1 "$PROBE_RC"
check "... with HTTP 401" grep -q "refused: HTTP 401" "$T/bad.probe.log"
probe none "$URL/" --subscribe AAPL --seconds 10
check "no token: HTTP 401" grep -q "refused: HTTP 401" "$T/none.probe.log"
check_eq "no trade was sent to refused clients" 0 "$(wc -l <"$T/s1.sent")"
check "the log says why" bash -c "grep -q 'token refused (wrong token)' '$T/s1.events' &&
  grep -q 'token refused (no token)' '$T/s1.events'"

"$PROBE" "$URL/?token=$TOKEN" --subscribe AAPL --subscribe "IC MARKETS:1" --seconds 4 \
  >"$T/p1.frames" 2>"$T/p1.probe.log" &
P1=$!
check "a client connects with the token" wait_for 10 grep -q "connected 127.0.0.1" "$T/s1.events"
probe second "$URL/?token=$TOKEN" --subscribe AAPL --seconds 10
check "a second concurrent client is refused with HTTP 429" grep -q "refused: HTTP 429" "$T/second.probe.log"
rc=0; wait $P1 || rc=$?
check_eq "the first client stays connected until it leaves" 0 "$rc"
S=$(frames summary "$T/p1.frames")
check_eq "--count 60: exactly 60 trades received" 60 "$(field trades "$S")"
check_eq "only the subscribed symbols arrive (spaces and colons kept)" "AAPL|IC MARKETS:1" "$(field symbols "$S")"
check_eq "no malformed or error frames unless asked" "0 0" "$(field malformed "$S") $(field errors "$S")"
check "pings go on after the count is reached (got $(field pings "$S"))" test "$(field pings "$S")" -ge 1
check "the --sent-file lines are the trades received, field by field" frames same "$T/s1.sent" "$T/p1.frames"
check "synthetic trades have null, absent and listed \"c\" and fractional volumes" bash -c \
  "grep -q '\"c\":null' '$T/s1.sent' && grep -q '\"c\":\[' '$T/s1.sent' &&
   grep -vq '\"c\"' '$T/s1.sent' && grep -qE '\"v\":[0-9]+\.[0-9]+' '$T/s1.sent'"
rc=0; "$REPLAY" --token x --port "${URL##*:}" >/dev/null 2>"$T/inuse.log" || rc=$?
check_eq "a --port in use: exit 1" 1 "$rc"
check "... saying so" grep -q "cannot listen on 127.0.0.1:${URL##*:}" "$T/inuse.log"
stop_worker $S1
check_eq "SIGTERM exits 0" 0 "$STOP_RC"
check_eq "... saying how many trades were sent" "60 trades sent" "$(tail -1 "$T/s1.out")"

# Deterministic: the same seed and subscriptions give the same trades.
for run in d1 d2; do
  start_replay $run --synthetic --seed 77 --rate 0 --count 30 --ping-ms 0
  D=$LAST_PID
  wait_for 10 test -s "$T/$run.url"
  probe $run "$(cat "$T/$run.url")/?token=$TOKEN" --subscribe BINANCE:ETHUSDT --trades 30 --seconds 20
  stop_worker $D
done
check_eq "a seeded run sends 30 trades" 30 "$(wc -l <"$T/d1.sent")"
check "the same seed sends the same trades again" cmp -s "$T/d1.sent" "$T/d2.sent"

# --- 2. faults: errors, drop and reconnect, malformed frames, unsubscribe ----
start_replay s2 --synthetic --seed 9 --rate 200 --count 100 --drop-after 40 \
  --malformed-every 7 --error-every 11 --max-symbols 3 --ping-ms 0
S2=$LAST_PID
check "fault server listening" wait_for 10 test -s "$T/s2.url"
URL=$(cat "$T/s2.url")/?token=$TOKEN
probe a "$URL" --subscribe AAPL --subscribe BINANCE:BTCUSDT --subscribe "IC MARKETS:1" \
  --subscribe OANDA:EUR_USD --send 'not json' --send '{"type":"subscribe"}' --seconds 20
check_eq "--drop-after: the connection is dropped (probe exit 3)" 3 "$PROBE_RC"
A=$(frames summary "$T/a.frames")
check_eq "... after exactly 40 trades" 40 "$(field trades "$A")"
check "a 4th symbol over --max-symbols 3 is refused" \
  grep -qx '{"type":"error","msg":"Subscribing to too many symbols"}' "$T/a.frames"
check "... and bad client messages get errors" bash -c \
  "grep -q 'Invalid message: not JSON' '$T/a.frames' && grep -q '\"msg\":\"Invalid symbol\"' '$T/a.frames'"
check_eq "symbols of the first connection" "AAPL|BINANCE:BTCUSDT|IC MARKETS:1" "$(field symbols "$A")"
probe b "$URL" --subscribe AAPL --subscribe BINANCE:BTCUSDT --after 3 --unsubscribe BINANCE:BTCUSDT \
  --trades 60 --seconds 20
check_eq "a reconnecting client is served" 0 "$PROBE_RC"
B=$(frames summary "$T/b.frames")
check_eq "... and gets the remaining 60 trades" 60 "$(field trades "$B")"
check "... with no drop this time" bash -c "[ \$(grep -c '^.* drop:' '$T/s2.events') = 1 ]"
check "both connections together: the --sent-file, field by field" \
  frames same "$T/s2.sent" "$T/a.frames" "$T/b.frames"
malformed=$(( $(field malformed "$A") + $(field malformed "$B") ))
errors=$(( $(field errors "$B") ))
check "malformed frames appear (got $malformed)" test "$malformed" -ge 3
check "simulated error frames appear (got $errors in the second connection)" test "$errors" -ge 1
check "malformed frames rotate: not JSON, truncated, p a string" bash -c \
  "cat '$T/a.frames' '$T/b.frames' | grep -q '^finnhub-replay: this frame is not JSON$' &&
   cat '$T/a.frames' '$T/b.frames' | grep -q '\"t\":17000000$' &&
   cat '$T/a.frames' '$T/b.frames' | grep -q '\"p\":\"101.25\"'"
at=$(sed -n 's/.*unsubscribe BINANCE:BTCUSDT (at \([0-9]*\) trades sent)/\1/p' "$T/s2.events")
check "the unsubscribe is logged with its position" test -n "$at"
check_eq "no BINANCE:BTCUSDT trade sent after the unsubscribe" "" \
  "$(frames after "$T/s2.sent" "${at:-0}" | grep -v '^AAPL$')"
stop_worker $S2
check_eq "SIGTERM exits 0" 0 "$STOP_RC"
check_eq "... 100 trades sent" "100 trades sent" "$(tail -1 "$T/s2.out")"

# --- 3. the recording --------------------------------------------------------
start_replay s3 --file "$SAMPLE" --rate 500 --batch 2 --ping-ms 0
S3=$LAST_PID
check "replay server listening" wait_for 10 test -s "$T/s3.url"
want=$(frames count "$SAMPLE" BINANCE:BTCUSDT AAPL)
check "the recording has trades for both symbols ($want)" test "$want" -ge 100
probe r "$(cat "$T/s3.url")/?token=$TOKEN" --subscribe BINANCE:BTCUSDT --subscribe AAPL \
  --trades "$want" --seconds 20
check_eq "the recording replays to the end" 0 "$PROBE_RC"
R=$(frames summary "$T/r.frames")
check_eq "... with every recorded trade of the subscribed symbols" "$want" "$(field trades "$R")"
check_eq "... and no other symbol" "AAPL|BINANCE:BTCUSDT" "$(field symbols "$R")"
check "... in the recorded order, with the recorded values" \
  frames replayed "$SAMPLE" "$T/s3.sent" BINANCE:BTCUSDT AAPL
check "... received as sent" frames same "$T/s3.sent" "$T/r.frames"
check_eq "--batch 2: at most 2 trades a message" 2 "$(field maxbatch "$R")"
check "recorded pings are replayed" test "$(field pings "$R")" -ge 1
check "the end of the recording is logged" wait_for 10 grep -q "recording finished" "$T/s3.events"
stop_worker $S3
check_eq "SIGTERM exits 0" 0 "$STOP_RC"

# --- 4. refused configurations ---------------------------------------------
rc=0; "$REPLAY" --synthetic >/dev/null 2>"$T/notoken.log" || rc=$?
check_eq "no token: usage error" 2 "$rc"
head -3 "$SAMPLE" >"$T/bad.jsonl"
echo '{"data":[{"p":"1.5","s":"AAPL","t":1,"v":1}],"type":"trade"}' >>"$T/bad.jsonl"
rc=0; "$REPLAY" --token-file "$T/token" --file "$T/bad.jsonl" >/dev/null 2>"$T/badfile.log" || rc=$?
check_eq "a bad recording is refused" 2 "$rc"
check "... naming the line and the reason" grep -q "bad.jsonl:4: \"p\" is not a number" "$T/badfile.log"
rc=0; "$REPLAY" --token x --rate -1 >/dev/null 2>"$T/badrate.log" || rc=$?
check_eq "a bad --rate is refused" 2 "$rc"
check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/*.log"
finish
