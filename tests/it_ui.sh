#!/usr/bin/env bash
# it_ui: the worker's live page GET /ui rendered by Debian's headless
# chromium. The pipeline of tests/ops_lib.sh runs (finnhub-replay -> Kafka ->
# transform-window -> sink-file keeping its latest result per symbol); the
# test checks GET /connectors/summary/latest against the window results, then
# loads /ui in chromium (fresh profile, no network but loopback), takes a
# screenshot and checks the rendered DOM shows every symbol with the VWAP
# and last price of that endpoint, and throughput rows with records/s.
# chromium missing and not installable = FAIL (never a skip).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"
command -v jq >/dev/null || { echo "FAIL - jq missing (make deps)"; exit 1; }
CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROME" ]; then
  echo "FAIL - chromium missing (make deps installs the Debian package chromium)"
  exit 1
fi

start_ops_pipeline
SYMS="AAPL BINANCE:BTCUSDT BINANCE:ETHUSDT"

# --- the JSON endpoint ----------------------------------------------------------
code=$(curl -s -o "$T/ui.html" -w '%{http_code} %{content_type}' "$U/ui")
check_eq "GET /ui answers HTML" "200 text/html; charset=utf-8" "$code"
three_keys() {
  curl -sf "$U/connectors/summary/latest" -o "$T/latest.json" &&
    [ "$(jq -r '[.records[].key] | join(" ")' "$T/latest.json")" = "$SYMS" ]
}
check "GET /connectors/summary/latest has one result per symbol" wait_for 40 three_keys
check "every latest result is a window summary with a VWAP within [min, max] price" \
  jq -e '.records | length == 3 and all(.value.vwap >= .value.min_price and
    .value.vwap <= .value.max_price and .value.trade_count > 0 and .topic == "trades")' "$T/latest.json" >/dev/null
code=$(curl -s -o "$T/fh-latest.json" -w '%{http_code}' "$U/connectors/fh/latest")
check_eq "a source connector keeps no latest records: 404" 404 "$code"
check "the 404 names the setting" grep -q "latest.records.max" "$T/fh-latest.json"
# the latest result per symbol is one the window transform emitted: it is in
# the summary file unless it shared its input offset with another symbol's
# (sink-file keeps one line per offset), so check the newest window matches
# or is newer than the file's
newest_ok() {
  $PY - "$T/latest.json" "$T/summary.jsonl" <<'PYEOF'
import json, sys
latest = {r["key"]: r["value"] for r in json.load(open(sys.argv[1]))["records"]}
file = {}
for line in open(sys.argv[2]):
    v = json.loads(line)["value"]
    file[v["symbol"]] = max(file.get(v["symbol"], 0), v["window_start"])
bad = [s for s, v in latest.items() if v["symbol"] != s or v["window_start"] < file.get(s, 0)]
print("mismatch:", bad) if bad else None
sys.exit(1 if bad else 0)
PYEOF
}
# let the pipeline finish so the values stop changing under the browser
in_kafka() { kcat -b "$(cat "$T/bootstrap")" -C -t trades -o beginning -e -q -f 'x\n' 2>/dev/null | wc -l; }
open_windows() { curl -s "$U/metrics" | awk '$1 ~ /^sluice_window_open_windows/ {s += $2} END {print s+0}'; }
settled() {
  [ "$(wc -l <"$T/sent.jsonl" 2>/dev/null)" -ge $N ] && [ "$(in_kafka)" -gt 0 ] &&
    [ "$(open_windows)" = 0 ] && three_keys
}
check "pipeline settled (every trade sent, every window closed)" wait_for 40 settled
check "the latest results are each symbol's newest window" newest_ok

# --- chromium ---------------------------------------------------------------------
chrome() {
  timeout 60 "$CHROME" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --user-data-dir="$T/profile-$1" --virtual-time-budget=6000 "${@:2}" "$U/ui"
}
chrome shot --screenshot="$T/ui.png" --window-size=1200,900 >"$T/chrome-shot.log" 2>&1
check "chromium took a screenshot" test -s "$T/ui.png"
check "the screenshot is a PNG" bash -c "head -c 8 '$T/ui.png' | od -An -tx1 | grep -q '89 50 4e 47'"
chrome dom --dump-dom >"$T/dom.html" 2>"$T/chrome-dom.log"
check "chromium dumped the DOM" grep -q '<h1>Sluice worker</h1>' "$T/dom.html"
check "the page's script ran (status line updated, no error)" grep -q '<p id="status">updated ' "$T/dom.html"
# every symbol with the endpoint's VWAP and last price, formatted as the page does
for s in $SYMS; do
  vwap=$(jq -r --arg s "$s" '.records[] | select(.key == $s) | .value.vwap' "$T/latest.json")
  last=$(jq -r --arg s "$s" '.records[] | select(.key == $s) | .value.last_price' "$T/latest.json")
  want=$($PY -c "print('<td class=\"vwap\">%.4f</td><td class=\"price\">%.4f</td>' % ($vwap, $last))")
  check "DOM: $s row shows VWAP $vwap and last price $last" \
    bash -c "grep -o '<tr data-key=\"$s\">.*' '$T/dom.html' | grep -qF '$want'"
done
check "DOM: throughput row for fh source_records_acked_total" \
  grep -q '<td class="k">fh</td><td class="k">source_records_acked_total</td>' "$T/dom.html"
acked=$(curl -s "$U/metrics" | awk '$1 ~ /^sluice_source_records_acked_total\{connector="fh"/ {s += $2} END {print s+0}')
check "DOM: the acked total ($acked) is the worker's" \
  grep -q "<td class=\"k\">source_records_acked_total</td><td>$acked</td><td class=\"rate\">[0-9.]\+</td>" "$T/dom.html"
check "DOM: records/s computed between two polls" grep -q '<td class="rate">[0-9]\+\.[0-9]</td>' "$T/dom.html"
[ "${KEEP_UI_SHOT:-}" ] && cp "$T/ui.png" "$KEEP_UI_SHOT"

stop_worker "$W"
check_eq "worker exits 0" 0 "$STOP_RC"
finish
