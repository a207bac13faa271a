"""ts_ms(text): the emulator's rendering of a TIMESTAMP_NTZ (epoch seconds
with a fraction, epoch ms or ns, or ISO text), as epoch milliseconds.
Shared by tests/sf_compare.py and tests/it_window.sh."""
import datetime


def ts_ms(text):
    t = text.strip()
    try:
        if "." in t and t.replace(".", "", 1).isdigit(): return round(float(t) * 1000)
        v = int(t)
        return v // 1000000 if abs(v) > 10**15 else v
    except ValueError:
        t = t.replace("T", " ").rstrip("Z")
        d, _, frac = t.partition(".")
        dt = datetime.datetime.strptime(d, "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)
        return int(dt.timestamp()) * 1000 + int((frac + "000")[:3])
