# tests/sf_lib.sh - what the sink-snowflake integration tests share
# (it_snowflake.sh, it_snowpipe.sh); source it after lib.sh.
#  - a key pair made now: $T/key.p8 (encrypted PKCS#8, passphrase $KEYPASS,
#    exported as SF_PASS), $T/key.pub, and an unrelated $T/other.p8;
#  - emulator NAME ARGS...: a snowflake-emulator for account MYORG-ACCT,
#    user LOADER, on $T/NAME.sqlite, URL in $T/NAME.url, log $T/NAME-emu.log;
#  - q NAME SQL, rows NAME TABLE, rows_are NAME TABLE N: queries of it;
#  - check_no_secrets: no key, passphrase or JWT in $T/*.log, no sanitizer report.
PY=/usr/bin/python3 # Debian's, where python3-avro lives
EMU=$BUILD/tools/snowflake-emulator

KEYPASS=$(openssl rand -hex 16)
openssl genrsa 2048 2>/dev/null | openssl pkcs8 -topk8 -v2 des3 -passout "pass:$KEYPASS" -out "$T/key.p8"
openssl pkey -in "$T/key.p8" -passin "pass:$KEYPASS" -pubout -out "$T/key.pub" 2>/dev/null
openssl genrsa 2048 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$T/other.p8"
check "keys generated" test -s "$T/key.p8" -a -s "$T/key.pub" -a -s "$T/other.p8"
export SF_PASS="$KEYPASS"

emulator() { # name, extra args...
  local name=$1; shift
  start_bg "$EMU" serve --port 0 --port-file "$T/$name.url" --db "$T/$name.sqlite" \
    --account MYORG-ACCT --user LOADER --public-key "$T/key.pub" --log-file "$T/$name-emu.log" "$@" >"$T/$name-emu.out" 2>&1
  wait_for 10 test -s "$T/$name.url"
}
q() { "$EMU" query --db "$T/$1.sqlite" --database SLUICE --schema PUBLIC "$2" 2>>"$T/query.err" | tail -n +2; }
rows() { q "$1" "SELECT COUNT(*) FROM $2" 2>/dev/null | head -1; }
rows_are() { [ "$(rows "$1" "$2")" = "$3" ]; }

check_no_secrets() {
  check "the passphrase is in no log" bash -c "! grep -rF -- '$KEYPASS' $T/*.log"
  local line
  line=$(sed -n 5p "$T/key.p8")
  check "the key is in no log" bash -c "! grep -rF -- '$line' $T/*.log"
  check "no JWT in any log" bash -c "! grep -rE 'eyJ[A-Za-z0-9_-]{20,}\.' $T/*.log"
  check "no sanitizer reports" bash -c "! grep -lE 'AddressSanitizer|runtime error|LeakSanitizer' $T/*.log"
}
