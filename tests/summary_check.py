"""The summary table (transform-window -> sink-snowflake, upsert) against
windows recomputed from the trades finnhub-replay sent (--sent-file):
tumbling windows of the connector's size on the trade time, per symbol;
every column the table shares with the aggregates is compared.

  summary_check.py SENT.jsonl SUMMARY.tsv snowflake-summary.json

SUMMARY.tsv is `snowflake-emulator query "SELECT * FROM <table>"` output
(with its header). Prints what differs (or "# N windows equal") and, last,
"summary_diffs=K": windows missing, unexpected or with a differing column.
Exit status 0 when K is 0. Used by tests/it_pipeline.sh and tests/it_faults.sh.
"""
import collections, datetime, json, os, re, sys
cfg = json.load(open(sys.argv[3]))["config"]
def resolve(v):  # ${env:VAR:-default} as the worker resolves it
    return re.sub(r"\$\{env:([^}:]*)(?::-([^}]*))?\}",
                  lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), str(v))
size = int(resolve(cfg["transforms.window.window.size.ms"]))
def ms(text):
    d, _, frac = text.partition(".")
    t = datetime.datetime.strptime(d, "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp()) * 1000 + int((frac + "000")[:3])
wins = collections.defaultdict(list)
for line in open(sys.argv[1]):
    j = json.loads(line)
    wins[(j["s"], j["t"] // size * size)].append((j["t"], float(j["p"]), float(j["v"])))
def aggs(start, sent):  # sent: one symbol's trades in the order sent = Kafka offset order
    by_time = sorted(sent, key=lambda x: x[0])  # stable: ties keep offset order
    vol = sum(v for _, _, v in sent)
    ps = [p for _, p, _ in sent]
    return {"WINDOW_END": start + size, "IS_FINAL": 1, "TRADE_COUNT": len(sent), "VOLUME": vol,
            "VWAP": sum(p * v for _, p, v in sent) / vol if vol > 0 else sum(ps) / len(ps),
            "MIN_PRICE": min(ps), "MAX_PRICE": max(ps),
            "FIRST_PRICE": by_time[0][1], "LAST_PRICE": by_time[-1][1], "MEAN_PRICE": sum(ps) / len(ps),
            "PRICE_VOLUME_MULTIPLY": sum(p * v for _, p, v in sent) / len(sent)}
lines = open(sys.argv[2]).read().splitlines()
cols = lines[0].split("\t")
got = {}
for l in lines[1:]:
    r = dict(zip(cols, l.split("\t")))
    got[(r["SYMBOL"], ms(r["WINDOW_START"]))] = r
want = {k: aggs(k[1], v) for k, v in wins.items()}
shared = [c for c in aggs(0, [(0, 1.0, 1.0)]) if c in cols]
problems = []
if len(shared) < 11: problems.append("the table shares only %s with the recomputed aggregates" % shared)
if set(got) != set(want):
    problems.append("windows: %d in the table, %d recomputed, %d missing, %d unexpected" %
                    (len(got), len(want), len(set(want) - set(got)), len(set(got) - set(want))))
bad = set()
for k in sorted(set(got) & set(want)):
    for c in shared:
        w, g = want[k][c], got[k][c]
        if c == "WINDOW_END": g = ms(g)
        elif c == "IS_FINAL": g = {"true": 1, "1": 1}.get(g.lower(), 0)
        elif g == "NULL": g = None
        else: g = float(g)
        if (w is None) != (g is None) or (w is not None and abs(w - g) > 1e-9 * max(1.0, abs(w))):
            problems.append("%s %s: %s is %s, recomputed %s" % (k[0], k[1], c, g, w))
            bad.add(k)
ndiff = len(set(want) ^ set(got)) + len(bad) + (len(shared) < 11)
print("; ".join(problems[:5]) if problems else "# %d windows equal, columns %s" % (len(got), ",".join(shared)))
print("summary_diffs=%d" % ndiff)
sys.exit(1 if ndiff else 0)
