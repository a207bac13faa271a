"""The detailed table (sink-snowflake, conf/connectors/snowflake-trades.json)
against the trades finnhub-replay sent (--sent-file), field by field: every
sent trade is one row, none twice, none extra.

  detailed_check.py SENT.jsonl DETAILED.tsv N

DETAILED.tsv: `snowflake-emulator query` output (no header) of
  SELECT SYMBOL, PRICE, VOLUME, TRADE_TIMESTAMP, TRADE_CONDITIONS, TRADE_ID,
         KAFKA_PARTITION, KAFKA_OFFSET
N: the trades expected. Prints what differs (or "# N rows = N trades");
exit status 0 when equal. Used by tests/it_pipeline.sh and
tests/it_dist_pipeline.sh.
"""
import datetime, json, sys
def ms(text):  # the emulator's TIMESTAMP_NTZ text, as epoch ms
    d, _, frac = text.partition(".")
    t = datetime.datetime.strptime(d, "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp()) * 1000 + int((frac + "000")[:3])
sent = []
for line in open(sys.argv[1]):
    j = json.loads(line)
    c = j.get("c")
    sent.append((j["s"], float(j["p"]), float(j["v"]), j["t"], json.dumps(c) if c is not None else None))
rows, ids, places, problems = [], set(), set(), []
for line in open(sys.argv[2]):
    f = line.rstrip("\n").split("\t")
    c = None if f[4] == "NULL" else json.dumps(json.loads(f[4]))
    rows.append((f[0], float(f[1]), float(f[2]), ms(f[3]), c))
    ids.add(f[5]); places.add((f[6], f[7]))
n = int(sys.argv[3])
if len(sent) != n: problems.append("%d trades sent, expected %d" % (len(sent), n))
if len(rows) != len(sent): problems.append("%d rows for %d trades" % (len(rows), len(sent)))
if len(places) != len(rows): problems.append("%d rows but %d distinct Kafka offsets" % (len(rows), len(places)))
if sorted(rows, key=repr) != sorted(sent, key=repr):
    a, b = set(sent), set(rows)
    problems.append("rows differ from the trades: %d missing, %d unexpected, e.g. %s" %
                    (len(a - b), len(b - a), sorted(a - b)[:1] or sorted(b - a)[:1]))
if len(ids) < len(set(rows)): problems.append("%d trade ids for %d distinct trades" % (len(ids), len(set(rows))))
print("; ".join(problems) if problems else "# %d rows = %d trades, field by field" % (len(rows), len(sent)))
sys.exit(1 if problems else 0)
