"""Counts what a fault scenario cost the detailed table (sink-snowflake,
exactly once) against the trades finnhub-replay sent (--sent-file).

  faults_count.py SENT.jsonl DETAILED.tsv REACHED OUT.jsonl

DETAILED.tsv: `snowflake-emulator query` output (no header) of
  SELECT SYMBOL, PRICE, VOLUME, TRADE_TIMESTAMP, KAFKA_PARTITION, KAFKA_OFFSET
REACHED: how many trades reached Kafka (the source's acked counter), or
"sent" when every sent trade must have (no websocket drop: the replay
server's sent file is the ground truth). Prints
  checked=N lost=L duplicated=D unexpected=U
lost: trades that reached Kafka without a row (with REACHED a number: that
number minus the distinct trades in the table); duplicated: rows beyond one
per Kafka record (same partition and offset, or the same trade twice);
unexpected: rows that are no sent trade. Writes the table's distinct trades
in Kafka order to OUT.jsonl in the sent file's form (s, p, v, t), for the
summary recomputation (tests/summary_check.py) when not every sent trade
reached Kafka. Used by tests/it_faults.sh.
"""
import collections, datetime, json, sys
def ms(text):  # the emulator's TIMESTAMP_NTZ text, as epoch ms
    d, _, frac = text.partition(".")
    t = datetime.datetime.strptime(d, "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp()) * 1000 + int((frac + "000")[:3])
sent = collections.Counter()
for line in open(sys.argv[1]):
    j = json.loads(line)
    sent[(j["s"], float(j["p"]), float(j["v"]), j["t"])] += 1
rows, places = [], collections.Counter()
for line in open(sys.argv[2]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 6: continue
    rows.append(((f[0], float(f[1]), float(f[2]), ms(f[3])), (int(f[4]), int(f[5]))))
    places[(f[4], f[5])] += 1
got = collections.Counter(r for r, _ in rows)
distinct = sum(min(n, sent[r]) for r, n in got.items())
dup = max(sum(n - 1 for n in places.values()), sum(max(0, n - max(sent[r], 1)) for r, n in got.items()))
unexpected = sum(n for r, n in got.items() if r not in sent)
reached = sum(sent.values()) if sys.argv[3] == "sent" else int(sys.argv[3])
lost = max(0, reached - distinct)
seen = set()
with open(sys.argv[4], "w") as out:
    for (s, p, v, t), place in sorted(rows, key=lambda x: x[1]):
        if place in seen: continue
        seen.add(place)
        out.write(json.dumps({"s": s, "p": p, "v": v, "t": t}) + "\n")
print("checked=%d lost=%d duplicated=%d unexpected=%d" % (reached, lost, dup, unexpected))
