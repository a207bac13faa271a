# tests/pipeline_lib.sh - what the tests of the shipped pipeline on the
# loopback stand-ins share (it_faults.sh, it_outage.sh, it_secrets.sh);
# source it after lib.sh. It
#  - unsets every d2b_* / sf_* / SLUICE_* variable of the caller (but the
#    test harness's own), so nothing points the shipped configs elsewhere;
#  - makes the secrets now: the Snowflake key pair $T/rsa_key.p8 (encrypted
#    with $sf_pem_pass) and $T/rsa_key.pub, and the Finnhub token
#    $d2b_token_finnhubio (also in $T/token, for finnhub-replay);
#  - exports the Snowflake account, user, database and schema the tests'
#    emulators use (ITACCT, LOADER, ITDB.RAW).
for v in $(env | sed -n 's/^\(d2b_[A-Za-z0-9_]*\|sf_[A-Za-z0-9_]*\|SLUICE_[A-Z0-9_]*\)=.*/\1/p'); do
  case $v in SLUICE_ROOT | SLUICE_BUILD | SLUICE_BIN | SLUICE_NO_DLCLOSE) ;; *) unset "$v" ;; esac
done
export sf_pem_pass=$(openssl rand -hex 16)
openssl genrsa 2048 2>/dev/null | openssl pkcs8 -topk8 -v2 aes-256-cbc -passout "pass:$sf_pem_pass" -out "$T/rsa_key.p8"
openssl pkey -in "$T/rsa_key.p8" -passin "pass:$sf_pem_pass" -pubout -out "$T/rsa_key.pub" 2>/dev/null
check "key pair generated" test -s "$T/rsa_key.pub"
export SF_PRIVATE_KEY_FILE=$T/rsa_key.p8 sf_account=ITACCT sf_username=LOADER sf_database=ITDB sf_schema=RAW
export d2b_token_finnhubio=$(openssl rand -hex 16)
echo "$d2b_token_finnhubio" >"$T/token"
