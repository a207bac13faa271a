# Integration: TLS verification is on by default (issue 10). An openssl
# s_server on loopback with a self-signed certificate made now stands in
# for Snowflake (https) and Finnhub (wss); the shipped connectors
# (conf/connectors/finnhub.json, snowflake-trades.json) must refuse it,
# naming the TLS failure: sink-snowflake (libcurl, peer verification on)
# fails its task with libcurl's "SSL peer certificate ... was not OK", and
# source-finnhub (libwebsockets, no self-signed allowance) logs "SSL error:
# self-signed certificate" and keeps reconnecting - no trade is accepted.
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
for v in $(env | sed -n 's/^\(d2b_[A-Za-z0-9_]*\|sf_[A-Za-z0-9_]*\|SLUICE_[A-Z0-9_]*\)=.*/\1/p'); do
  case $v in SLUICE_ROOT | SLUICE_BUILD | SLUICE_BIN | SLUICE_NO_DLCLOSE) ;; *) unset "$v" ;; esac
done
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tls.key" -out "$T/tls.crt" -days 1 -subj /CN=127.0.0.1 2>/dev/null
openssl genrsa 2048 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$T/rsa_key.p8"
check "self-signed certificate and key made" test -s "$T/tls.crt" -a -s "$T/rsa_key.p8"
start_bg openssl s_server -accept 127.0.0.1:0 -cert "$T/tls.crt" -key "$T/tls.key" -www >"$T/s_server.log" 2>&1
port() { sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$T/s_server.log" | grep -q .; }
check "openssl s_server listening" wait_for 20 port
P=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$T/s_server.log")
export SF_PRIVATE_KEY_FILE=$T/rsa_key.p8 sf_account=ITACCT sf_username=LOADER sf_url=https://127.0.0.1:$P
export d2b_token_finnhubio=$(openssl rand -hex 16) SLUICE_FINNHUB_URL=wss://127.0.0.1:$P SLUICE_PLUGIN_PATH=$BUILD/plugins
worker_conf "$T/worker.json"
start_bg "$SLUICE" standalone "$T/worker.json" conf/connectors/finnhub.json conf/connectors/snowflake-trades.json 2>"$T/worker.log"
W=$LAST_PID
sink_refused() { grep -q 'task snowflake-trades/0 is FAILED: .*SSL peer certificate or SSH remote key was not OK' "$T/worker.log"; }
check "sink-snowflake refuses the self-signed server: task FAILED naming the certificate" wait_for 60 sink_refused
check "... at once: a certificate failure is not retried" bash -c \
  "! grep 'task snowflake-trades/0 is FAILED' '$T/worker.log' | grep -q 'retried for'"
src_refused() { [ "$(grep -c 'cannot connect to wss://127.0.0.1:'"$P"'/: connect SSL err' "$T/worker.log")" -ge 2 ]; }
check "source-finnhub refuses it on every attempt (connect SSL err)" wait_for 30 src_refused
check "... and the log names the reason (self-signed certificate)" grep -q 'SSL error: self-signed certificate' "$T/worker.log"
check "the worker itself keeps running" kill -0 $W
stop_worker $W
check_eq "the worker exits 0 on SIGTERM" 0 "$STOP_RC"
check "no finnhub token in the log" bash -c "! grep -qF -- '$d2b_token_finnhubio' '$T/worker.log'"
check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/*.log"
finish
