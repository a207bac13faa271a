"""Compares the rows of a sink-snowflake table with the Kafka records they
came from, field by field: every record is one row, none twice, none extra.

  sf_compare.py SCHEMA.avsc BOOTSTRAP ROWS.tsv TOPIC PARTITIONS

ROWS.tsv is `snowflake-emulator query` output (no header) of
  SELECT KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET, KAFKA_KEY, TASK, N, TS, KAFKA_TIMESTAMP
for source-counter's Avro records (schemas/counter.avsc). Kafka is read with
kcat, values decoded with python3-avro. Exit status 0 when equal; the
assertion says what differed. Used by tests/it_snowflake.sh and
tests/it_snowpipe.sh.
"""
import io, subprocess, sys, datetime, avro.schema, avro.io
schema = avro.schema.parse(open(sys.argv[1]).read())
bs, rows_file, topic, nparts = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
from sf_time import ts_ms  # tests/sf_time.py, beside this script
kafka = {}
for p in range(nparts):
    out = subprocess.run(["kcat", "-b", bs, "-C", "-t", topic, "-p", str(p), "-o", "beginning",
                          "-e", "-q", "-f", "%k %o %T %S\n%s"], capture_output=True).stdout
    while out:
        header, _, rest = out.partition(b"\n")
        key, off, ts, size = header.split(b" ")
        value, out = rest[:int(size)], rest[int(size):]
        rec = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(value)))
        t = rec["ts"]  # python3-avro gives timestamp-millis as a datetime
        t = round(t.timestamp() * 1000) if isinstance(t, datetime.datetime) else t
        kafka[(p, int(off))] = (key.decode(), rec["task"], rec["n"], t, int(ts))
rows = {}
for line in open(rows_file):
    f = line.rstrip("\n").split("\t")
    k = (int(f[1]), int(f[2]))
    assert k not in rows, "row twice: %s" % (k,)
    assert f[0] == topic, f
    rows[k] = (f[3], int(f[4]), int(f[5]), ts_ms(f[6]), ts_ms(f[7]))
missing = set(kafka) - set(rows); extra = set(rows) - set(kafka)
assert not missing and not extra, "missing %d, extra %d" % (len(missing), len(extra))
bad = [k for k in kafka if kafka[k] != rows[k]]
assert not bad, "differ at %s: kafka %s, row %s" % (bad[0], kafka[bad[0]], rows[bad[0]])
print("# %d records = %d rows, field by field" % (len(kafka), len(rows)))
