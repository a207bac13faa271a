/*
 * test_snowflake.c - unit tests of sink-snowflake's pure functions
 * (plugins/sink-snowflake/sf_core.c, compiled in below): base64, account
 * and user normalisation, URLs, topic2table, the private key, its
 * fingerprint and the JWT (checked against the openssl CLI and by verifying
 * the signature), the table layout and the SQL text with its bindings,
 * including the 16,384-bound-item split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../plugins/sink-snowflake/sf_core.c"

/* ------------------------------------------------------------------------ */

static void test_base64(void **st) {
    (void)st;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    const char *url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *a = sf_base64((const unsigned char *)in[i], strlen(in[i]), 0);
        char *b = sf_base64((const unsigned char *)in[i], strlen(in[i]), 1);
        assert_string_equal(a, std[i]);
        assert_string_equal(b, url[i]);
        unsigned char *d = NULL;
        size_t n = 0;
        assert_int_equal(sf_base64_decode(std[i], &d, &n), 0);
        assert_int_equal(n, strlen(in[i]));
        assert_memory_equal(d, in[i], n);
        free(d);
        free(a);
        free(b);
    }
    unsigned char bin[] = {0xfb, 0xff, 0xfe};
    char *u = sf_base64(bin, 3, 1), *s = sf_base64(bin, 3, 0);
    assert_string_equal(u, "-__-");
    assert_string_equal(s, "+//+");
    free(u);
    free(s);
    unsigned char *d = NULL;
    size_t n;
    assert_int_equal(sf_base64_decode("Zm9v\n YmFy\n", &d, &n), 0);
    assert_int_equal(n, 6);
    free(d);
    assert_int_equal(sf_base64_decode("Zm9v!", &d, &n), -1);
    assert_int_equal(sf_base64_decode("Zg==Zg", &d, &n), -1);
}

static void test_uuid(void **st) {
    (void)st;
    char a[37], b[37];
    assert_int_equal(sf_uuid4(a), 0);
    assert_int_equal(sf_uuid4(b), 0);
    assert_int_equal(strlen(a), 36);
    assert_true(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
    assert_string_not_equal(a, b);
}

static void test_account_user(void **st) {
    (void)st;
    struct {
        const char *in, *out;
    } cases[] = {
        {"myorg-acct", "MYORG-ACCT"},
        {"myorg.acct", "MYORG-ACCT"},         /* org.account: '.' -> '-' */
        {"xy12345.us-east-1", "XY12345"},     /* locator.region: region dropped */
        {"xy12345.east-us-2.azure", "XY12345"},
        {"xy12345.us-central1.gcp", "XY12345"},
        {"xy12345", "XY12345"},
        {" Acct_1 ", "ACCT_1"},
        {"myacct-abcdef12.global", "MYACCT"}, /* global URL: cut at '-' */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *a = sf_normalize_account(cases[i].in);
        assert_non_null(a);
        assert_string_equal(a, cases[i].out);
        free(a);
    }
    assert_null(sf_normalize_account(""));
    assert_null(sf_normalize_account(".us-east-1"));
    char *u = sf_normalize_user("jsmith");
    assert_string_equal(u, "JSMITH");
    free(u);
    u = sf_normalize_user("svc.Loader@x");
    assert_string_equal(u, "SVC.LOADER@X");
    free(u);
    assert_null(sf_normalize_user("  "));
}

static void test_url(void **st) {
    (void)st;
    struct {
        const char *in, *base, *host;
    } ok[] = {
        {"myorg-acct.snowflakecomputing.com", "https://myorg-acct.snowflakecomputing.com",
         "myorg-acct.snowflakecomputing.com"},
        {"myorg-acct.snowflakecomputing.com:443", "https://myorg-acct.snowflakecomputing.com:443",
         "myorg-acct.snowflakecomputing.com"},
        {"https://xy12345.us-east-1.snowflakecomputing.com/",
         "https://xy12345.us-east-1.snowflakecomputing.com",
         "xy12345.us-east-1.snowflakecomputing.com"},
        {"http://127.0.0.1:8089", "http://127.0.0.1:8089", "127.0.0.1"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *b = NULL, *h = NULL, err[200];
        assert_int_equal(sf_parse_url(ok[i].in, &b, &h, err, sizeof(err)), 0);
        assert_string_equal(b, ok[i].base);
        assert_string_equal(h, ok[i].host);
        free(b);
        free(h);
    }
    const char *bad[] = {"", "ftp://x", "host:0", "host:99999", "host/path", "ho st", "http://"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *b = NULL, *h = NULL, err[200] = "";
        assert_int_equal(sf_parse_url(bad[i], &b, &h, err, sizeof(err)), -1);
        assert_null(b);
        assert_true(err[0] != '\0');
    }
}

static void test_tables(void **st) {
    (void)st;
    char *t = sf_table_from_topic("trades");
    assert_string_equal(t, "TRADES");
    free(t);
    t = sf_table_from_topic("my.topic-1");
    assert_string_equal(t, "MY_TOPIC_1");
    free(t);
    t = sf_table_from_topic("1abc");
    assert_string_equal(t, "_1ABC");
    free(t);
    assert_true(sf_identifier_valid("TRADES_DETAILED"));
    assert_true(sf_identifier_valid("_x$1"));
    assert_false(sf_identifier_valid("1x"));
    assert_false(sf_identifier_valid("a-b"));
    assert_false(sf_identifier_valid("a;DROP"));

    sf_topic_map_t *m = NULL;
    size_t n = 0;
    char err[300] = "";
    assert_int_equal(sf_topic2table_parse(" trades:detailed , vwap:Summary,", &m, &n, err,
                                          sizeof(err)),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(m[0].topic, "trades");
    assert_string_equal(m[0].table, "DETAILED");
    assert_string_equal(m[1].table, "SUMMARY");
    t = sf_table_for_topic(m, n, "vwap");
    assert_string_equal(t, "SUMMARY");
    free(t);
    t = sf_table_for_topic(m, n, "other.t");
    assert_string_equal(t, "OTHER_T");
    free(t);
    sf_topic2table_free(m, n);
    assert_int_equal(sf_topic2table_parse("", &m, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    assert_int_equal(sf_topic2table_parse("a:b;drop", &m, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a valid identifier"));
    assert_int_equal(sf_topic2table_parse("nocolon", &m, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not topic:table"));
    assert_int_equal(sf_topic2table_parse("a:X,a:Y", &m, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "mapped twice"));
}

/* ------------------------------------------------------------------------ */
/* Keys and JWT, against the openssl CLI                                     */
/* ------------------------------------------------------------------------ */

static char dir[64];
static char pass[40];

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = calloc(1, 1 << 16);
    size_t n = fread(b, 1, (1 << 16) - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

static char *run(const char *cmd) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    char *b = calloc(1, 4096);
    size_t n = fread(b, 1, 4095, p);
    b[n] = '\0';
    while (n && (b[n - 1] == '\n' || b[n - 1] == '\r')) b[--n] = '\0';
    pclose(p);
    return b;
}

static int keys_setup(void **st) {
    (void)st;
    snprintf(dir, sizeof(dir), "/tmp/sftest.XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char r[37];
    sf_uuid4(r);
    snprintf(pass, sizeof(pass), "p%.16s", r);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl genrsa 2048 2>/dev/null | openssl pkcs8 -topk8 -v2 des3 -passout pass:%s "
             "-out %s/enc.p8 && openssl pkcs8 -in %s/enc.p8 -passin pass:%s -out %s/plain.p8 "
             "&& openssl genrsa -out %s/other.pem 2048 2>/dev/null",
             pass, dir, dir, pass, dir, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int keys_teardown(void **st) {
    (void)st;
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The base64 body of a PEM, header lines removed. */
static char *pem_body(const char *pem) {
    char *b = calloc(1, strlen(pem) + 1), *o = b;
    const char *p = pem;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (strncmp(p, "-----", 5) != 0) {
            memcpy(o, p, n);
            o += n;
        }
        p += n + (e ? 1 : 0);
    }
    return b;
}

static void test_key_load(void **st) {
    (void)st;
    char path[128], err[300];
    snprintf(path, sizeof(path), "%s/enc.p8", dir);
    char *enc = slurp(path);
    snprintf(path, sizeof(path), "%s/plain.p8", dir);
    char *plain = slurp(path);
    assert_non_null(enc);
    assert_non_null(plain);
    assert_non_null(strstr(enc, "ENCRYPTED PRIVATE KEY"));

    EVP_PKEY *k = sf_load_private_key(enc, pass, err, sizeof(err));
    assert_non_null(k);
    EVP_PKEY_free(k);
    /* the body only, encrypted, as Snowflake's Kafka connector takes it */
    char *body = pem_body(enc);
    assert_non_null(k = sf_load_private_key(body, pass, err, sizeof(err)));
    EVP_PKEY_free(k);
    /* an unencrypted key, PEM and body */
    assert_non_null(k = sf_load_private_key(plain, NULL, err, sizeof(err)));
    EVP_PKEY_free(k);
    char *pbody = pem_body(plain);
    assert_non_null(k = sf_load_private_key(pbody, "", err, sizeof(err)));
    EVP_PKEY_free(k);
    /* a PEM with literal \n (from a one-line JSON value) */
    char *esc = calloc(1, strlen(enc) * 2 + 1), *o = esc;
    for (const char *p = enc; *p; p++) {
        if (*p == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else {
            *o++ = *p;
        }
    }
    assert_non_null(k = sf_load_private_key(esc, pass, err, sizeof(err)));
    EVP_PKEY_free(k);

    /* failures: clear, and never quoting the key or the passphrase */
    assert_null(sf_load_private_key(enc, "wrong-pass", err, sizeof(err)));
    assert_non_null(strstr(err, "passphrase"));
    assert_null(strstr(err, "wrong-pass"));
    assert_null(sf_load_private_key(enc, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "snowflake.private.key.passphrase"));
    assert_null(sf_load_private_key(body, "wrong-pass", err, sizeof(err)));
    assert_null(strstr(err, body + 10));
    assert_null(sf_load_private_key("not a key at all", NULL, err, sizeof(err)));
    assert_null(sf_load_private_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                                    NULL, err, sizeof(err)));
    assert_null(sf_load_private_key("", NULL, err, sizeof(err)));
    free(esc);
    free(body);
    free(pbody);
    free(enc);
    free(plain);
}

static void test_fingerprint(void **st) {
    (void)st;
    char path[128], err[300], cmd[512];
    snprintf(path, sizeof(path), "%s/enc.p8", dir);
    char *enc = slurp(path);
    EVP_PKEY *k = sf_load_private_key(enc, pass, err, sizeof(err));
    assert_non_null(k);
    char *fp = sf_public_key_fp(k);
    snprintf(cmd, sizeof(cmd),
             "openssl pkey -in %s -passin pass:%s -pubout -outform DER 2>/dev/null | "
             "openssl dgst -sha256 -binary | openssl enc -base64",
             path, pass);
    char *want = run(cmd);
    assert_non_null(fp);
    assert_true(strlen(want) == 44);
    assert_string_equal(fp + 7, want);
    assert_memory_equal(fp, "SHA256:", 7);
    /* another key, another fingerprint */
    snprintf(path, sizeof(path), "%s/other.pem", dir);
    char *other = slurp(path);
    EVP_PKEY *k2 = sf_load_private_key(other, NULL, err, sizeof(err));
    assert_non_null(k2);
    char *fp2 = sf_public_key_fp(k2);
    assert_string_not_equal(fp, fp2);
    free(fp2);
    EVP_PKEY_free(k2);
    free(other);
    free(want);
    free(fp);
    EVP_PKEY_free(k);
    free(enc);
}

static unsigned char *b64url_decode(const char *s, size_t len, size_t *out) {
    char *t = calloc(1, len + 4);
    for (size_t i = 0; i < len; i++) t[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    while (strlen(t) % 4) strcat(t, "=");
    unsigned char *d = NULL;
    if (sf_base64_decode(t, &d, out) != 0) d = NULL;
    free(t);
    return d;
}

static void test_jwt(void **st) {
    (void)st;
    char path[128], err[300];
    snprintf(path, sizeof(path), "%s/enc.p8", dir);
    char *enc = slurp(path);
    EVP_PKEY *k = sf_load_private_key(enc, pass, err, sizeof(err));
    char *fp = sf_public_key_fp(k);
    char *jwt = sf_jwt_make(k, "MYORG-ACCT", "LOADER", fp, 1700000000, 1700000000 + 59 * 60);
    assert_non_null(jwt);
    char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));
    assert_null(strchr(jwt, '=')); /* base64url without padding */
    size_t n;
    unsigned char *hdr = b64url_decode(jwt, (size_t)(d1 - jwt), &n);
    json_t *h = json_loadb((char *)hdr, n, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
    assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
    unsigned char *cl = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &n);
    json_t *c = json_loadb((char *)cl, n, 0, NULL);
    assert_non_null(c);
    char iss[200];
    snprintf(iss, sizeof(iss), "MYORG-ACCT.LOADER.%s", fp);
    assert_string_equal(json_string_value(json_object_get(c, "iss")), iss);
    assert_string_equal(json_string_value(json_object_get(c, "sub")), "MYORG-ACCT.LOADER");
    assert_int_equal(json_integer_value(json_object_get(c, "iat")), 1700000000);
    assert_int_equal(json_integer_value(json_object_get(c, "exp")), 1700000000 + 3540);
    /* the signature verifies with the public key over "header.claims" */
    size_t slen;
    unsigned char *sig = b64url_decode(d2 + 1, strlen(d2 + 1), &slen);
    assert_int_equal(slen, 256);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestVerify(ctx, sig, slen, (unsigned char *)jwt, (size_t)(d2 - jwt)), 1);
    /* and not over anything else */
    EVP_MD_CTX_reset(ctx);
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_not_equal(EVP_DigestVerify(ctx, sig, slen, (unsigned char *)jwt, (size_t)(d2 - jwt) - 1), 1);
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    /* the openssl CLI agrees */
    char sp[160], dp[160], pp[160], cmd[1200];
    snprintf(sp, sizeof(sp), "%s/sig", dir);
    snprintf(dp, sizeof(dp), "%s/data", dir);
    snprintf(pp, sizeof(pp), "%s/pub.pem", dir);
    FILE *f = fopen(sp, "wb");
    fwrite(sig, 1, slen, f);
    fclose(f);
    f = fopen(dp, "wb");
    fwrite(jwt, 1, (size_t)(d2 - jwt), f);
    fclose(f);
    snprintf(cmd, sizeof(cmd),
             "openssl pkey -in %s -passin pass:%s -pubout -out %s 2>/dev/null && "
             "openssl dgst -sha256 -verify %s -signature %s %s",
             path, pass, pp, pp, sp, dp);
    char *out = run(cmd);
    assert_string_equal(out, "Verified OK");
    free(out);
    free(sig);
    json_decref(h);
    json_decref(c);
    free(hdr);
    free(cl);
    free(jwt);
    free(fp);
    EVP_PKEY_free(k);
    free(enc);
}

/* ------------------------------------------------------------------------ */
/* Layout and SQL                                                            */
/* ------------------------------------------------------------------------ */

#define COUNTER_AVSC                                                                        \
    "{\"type\":\"record\",\"name\":\"Counter\",\"fields\":[{\"name\":\"task\",\"type\":\"int\"}," \
    "{\"name\":\"n\",\"type\":\"long\"},{\"name\":\"ts\",\"type\":{\"type\":\"long\","         \
    "\"logicalType\":\"timestamp-millis\"}}]}"

#define TRADES_AVSC                                                                         \
    "{\"type\":\"record\",\"name\":\"Trade\",\"fields\":["                                   \
    "{\"name\":\"symbol\",\"type\":\"string\"},{\"name\":\"price\",\"type\":\"double\"},"     \
    "{\"name\":\"volume\",\"type\":\"double\"},"                                             \
    "{\"name\":\"trade_time\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}," \
    "{\"name\":\"conditions\",\"type\":[\"null\",{\"type\":\"array\",\"items\":\"string\"}]," \
    "\"default\":null},{\"name\":\"exchange\",\"type\":[\"null\",\"string\"]}]}"

static avro_schema_t parse(const char *json) {
    avro_schema_t s = NULL;
    assert_int_equal(avro_schema_from_json_length(json, strlen(json), &s), 0);
    return s;
}

static void test_layout_counter(void **st) {
    (void)st;
    avro_schema_t s = parse(COUNTER_AVSC);
    sf_layout_t l;
    char err[300];
    assert_int_equal(sf_layout_build(s, COUNTER_AVSC, NULL, &l, err, sizeof(err)), 0);
    char *sql = sf_sql_create_table("COUNTS", &l);
    assert_string_equal(sql, "CREATE TABLE IF NOT EXISTS COUNTS (TASK NUMBER(38,0), N NUMBER(38,0), "
                             "TS TIMESTAMP_NTZ(9), KAFKA_TOPIC VARCHAR, KAFKA_PARTITION NUMBER(38,0), "
                             "KAFKA_OFFSET NUMBER(38,0), KAFKA_KEY VARCHAR, KAFKA_TIMESTAMP "
                             "TIMESTAMP_NTZ(9))");
    free(sql);
    assert_int_equal(l.cols[2].ns_per_unit, 1000000);
    assert_false(l.has_variant);
    sql = sf_sql_insert("COUNTS", &l, 2);
    assert_string_equal(sql, "INSERT INTO COUNTS (TASK,N,TS,KAFKA_TOPIC,KAFKA_PARTITION,"
                             "KAFKA_OFFSET,KAFKA_KEY,KAFKA_TIMESTAMP) VALUES "
                             "(?,?,?,?,?,?,?,?),(?,?,?,?,?,?,?,?)");
    free(sql);
    /* 8 columns: 2048 rows bind exactly 16,384 values */
    assert_int_equal(sf_rows_per_statement(&l), 2048);
    assert_true(sf_rows_per_statement(&l) * l.ncols <= SF_MAX_BIND_ITEMS);
    sf_layout_free(&l);
    /* without the .avsc text the logical type is unknown: a NUMBER */
    assert_int_equal(sf_layout_build(s, NULL, NULL, &l, err, sizeof(err)), 0);
    assert_int_equal(l.cols[2].type, SF_FIXED);
    sf_layout_free(&l);
    avro_schema_decref(s);
}

static void test_layout_trades(void **st) {
    (void)st;
    avro_schema_t s = parse(TRADES_AVSC);
    sf_layout_t l;
    char err[300];
    assert_int_equal(sf_layout_build(s, TRADES_AVSC,
                                     "trade_time:TRADE_TIMESTAMP,conditions:trade_conditions", &l,
                                     err, sizeof(err)),
                     0);
    char *sql = sf_sql_create_table("TRADES", &l);
    assert_string_equal(sql, "CREATE TABLE IF NOT EXISTS TRADES (SYMBOL VARCHAR, PRICE FLOAT, "
                             "VOLUME FLOAT, TRADE_TIMESTAMP TIMESTAMP_NTZ(9), TRADE_CONDITIONS "
                             "VARIANT, EXCHANGE VARCHAR, KAFKA_TOPIC VARCHAR, KAFKA_PARTITION "
                             "NUMBER(38,0), KAFKA_OFFSET NUMBER(38,0), KAFKA_KEY VARCHAR, "
                             "KAFKA_TIMESTAMP TIMESTAMP_NTZ(9))");
    free(sql);
    assert_true(l.has_variant);
    sql = sf_sql_insert("TRADES", &l, 1);
    assert_string_equal(sql, "INSERT INTO TRADES (SYMBOL,PRICE,VOLUME,TRADE_TIMESTAMP,"
                             "TRADE_CONDITIONS,EXCHANGE,KAFKA_TOPIC,KAFKA_PARTITION,KAFKA_OFFSET,"
                             "KAFKA_KEY,KAFKA_TIMESTAMP) SELECT column1, column2, column3, "
                             "column4, PARSE_JSON(column5), column6, column7, column8, column9, "
                             "column10, column11 FROM VALUES (?,?,?,?,?,?,?,?,?,?,?)");
    free(sql);
    assert_int_equal(sf_rows_per_statement(&l), 16384 / 11);
    int keys[] = {0, 3};
    sql = sf_sql_merge("TRADES", &l, 1, keys, 2);
    assert_non_null(strstr(sql, "MERGE INTO TRADES T USING (SELECT column1 AS SYMBOL, "));
    assert_non_null(strstr(sql, "PARSE_JSON(column5) AS TRADE_CONDITIONS"));
    assert_non_null(strstr(sql, ") S ON T.SYMBOL = S.SYMBOL AND T.TRADE_TIMESTAMP = "
                                "S.TRADE_TIMESTAMP WHEN MATCHED THEN UPDATE SET T.PRICE = S.PRICE"));
    assert_null(strstr(sql, "T.SYMBOL = S.SYMBOL,"));
    assert_non_null(strstr(sql, "WHEN NOT MATCHED THEN INSERT (SYMBOL, PRICE"));
    assert_non_null(strstr(sql, "VALUES (S.SYMBOL, S.PRICE"));
    free(sql);
    assert_null(sf_sql_merge("TRADES", &l, 1, keys, 0));
    keys[1] = 99;
    assert_null(sf_sql_merge("TRADES", &l, 1, keys, 2));
    sf_layout_free(&l);
    /* a rename to an invalid or a duplicate column is refused */
    assert_int_equal(sf_layout_build(s, NULL, "symbol:PRICE", &l, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "two columns are named PRICE"));
    assert_int_equal(sf_layout_build(s, NULL, "symbol:bad-name", &l, err, sizeof(err)), -1);
    avro_schema_decref(s);
    /* not a record */
    avro_schema_t str = avro_schema_string();
    assert_int_equal(sf_layout_build(str, NULL, NULL, &l, err, sizeof(err)), -1);
    avro_schema_decref(str);
}

static void test_layout_content_and_bindings(void **st) {
    (void)st;
    sf_layout_t l;
    char err[300];
    assert_int_equal(sf_layout_build(NULL, NULL, NULL, &l, err, sizeof(err)), 0);
    assert_int_equal(l.ncols, 6);
    assert_string_equal(l.cols[0].name, "RECORD_CONTENT");
    assert_int_equal(l.cols[0].type, SF_VARIANT);
    assert_int_equal(sf_layout_find(&l, "kafka_offset"), 3);
    assert_int_equal(sf_layout_find(&l, "nope"), -1);
    json_t *b = json_object();
    size_t next = 1;
    char *r1[] = {"{\"a\":1}", "t", "0", "5", NULL, "1700000000000000000"};
    char *r2[] = {"[1]", "t", "1", "6", "k", NULL};
    assert_int_equal(sf_bind_row(b, &next, &l, r1), 0);
    assert_int_equal(sf_bind_row(b, &next, &l, r2), 0);
    assert_int_equal(next, 13);
    assert_int_equal(json_object_size(b), 12);
    char *text = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(strstr(text, "\"1\":{\"type\":\"TEXT\",\"value\":\"{\\\"a\\\":1}\"}"));
    assert_non_null(strstr(text, "\"3\":{\"type\":\"FIXED\",\"value\":\"0\"}"));
    assert_non_null(strstr(text, "\"5\":{\"type\":\"TEXT\",\"value\":null}"));
    assert_non_null(strstr(text, "\"6\":{\"type\":\"TIMESTAMP_NTZ\",\"value\":\"1700000000000000000\"}"));
    assert_non_null(strstr(text, "\"11\":{\"type\":\"TEXT\",\"value\":\"k\"}"));
    free(text);
    json_decref(b);
    /* the split: 6 columns -> 2730 rows (16,380 values) per statement */
    assert_int_equal(sf_rows_per_statement(&l), 2730);
    char *sql = sf_sql_insert("T", &l, 2730);
    size_t q = 0;
    for (char *p = sql; *p; p++) q += *p == '?';
    assert_int_equal(q, 16380);
    assert_true(q <= SF_MAX_BIND_ITEMS);
    free(sql);
    assert_null(sf_sql_insert("T", &l, 0));
    sf_layout_free(&l);
}

/* Snowpipe Streaming rows: each type as the REST API reads it. */
static void test_row_ndjson(void **st) {
    (void)st;
    avro_schema_t s = parse(TRADES_AVSC);
    sf_layout_t l;
    char err[300];
    assert_int_equal(sf_layout_build(s, TRADES_AVSC, NULL, &l, err, sizeof(err)), 0);
    char *vals[32] = {0};
    assert_true(l.ncols <= 32);
    for (size_t i = 0; i < l.ncols; i++) {
        switch (l.cols[i].type) {
        case SF_TEXT: vals[i] = "AAPL \"q\"\n"; break;
        case SF_FIXED: vals[i] = "-42"; break;
        case SF_REAL: vals[i] = "187.25"; break;
        case SF_BOOLEAN: vals[i] = "true"; break;
        case SF_TIMESTAMP_NTZ: vals[i] = "1700000000123456789"; break;
        case SF_DATE: vals[i] = "1700000000000"; break;
        case SF_BINARY: vals[i] = "00FF"; break;
        case SF_VARIANT: vals[i] = "[\"@\",\"T\"]"; break;
        }
    }
    int ts = -1, txt = -1, var = -1, real = -1;
    for (size_t i = 0; i < l.ncols; i++) {
        if (l.cols[i].type == SF_TIMESTAMP_NTZ && ts < 0) ts = (int)i;
        if (l.cols[i].type == SF_TEXT && txt < 0) txt = (int)i;
        if (l.cols[i].type == SF_VARIANT && var < 0) var = (int)i;
        if (l.cols[i].type == SF_REAL && real < 0) real = (int)i;
    }
    assert_true(ts >= 0 && txt >= 0 && var >= 0 && real >= 0);
    char *line = sf_row_ndjson(&l, vals, err, sizeof(err));
    assert_non_null(line);
    assert_null(strchr(line, '\n')); /* one line: the newline inside the text is escaped */
    json_t *j = json_loads(line, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), l.ncols);
    /* keys in layout order */
    const char *first = json_object_iter_key(json_object_iter(j));
    assert_string_equal(first, l.cols[0].name);
    assert_string_equal(json_string_value(json_object_get(j, l.cols[ts].name)),
                        "2023-11-14T22:13:20.123456789");
    assert_string_equal(json_string_value(json_object_get(j, l.cols[txt].name)), "AAPL \"q\"\n");
    assert_true(json_is_array(json_object_get(j, l.cols[var].name)));
    assert_true(json_real_value(json_object_get(j, l.cols[real].name)) == 187.25);
    assert_int_equal(json_integer_value(json_object_get(j, "KAFKA_PARTITION")), -42);
    json_decref(j);
    free(line);

    /* NULL, NaN, a timestamp before 1970, a date */
    sf_layout_t c;
    assert_int_equal(sf_layout_build(NULL, NULL, NULL, &c, err, sizeof(err)), 0);
    char *r[] = {"{\"a\":1}", "t", "0", "5", NULL, "-1500000000"};
    line = sf_row_ndjson(&c, r, err, sizeof(err));
    assert_string_equal(line, "{\"RECORD_CONTENT\":{\"a\":1},\"KAFKA_TOPIC\":\"t\","
                              "\"KAFKA_PARTITION\":0,\"KAFKA_OFFSET\":5,\"KAFKA_KEY\":null,"
                              "\"KAFKA_TIMESTAMP\":\"1969-12-31T23:59:58.500000000\"}");
    free(line);
    /* a VARIANT that is not JSON, a timestamp that is not a number: refused, named */
    char *bad[] = {"{nope", "t", "0", "5", NULL, NULL};
    assert_null(sf_row_ndjson(&c, bad, err, sizeof(err)));
    assert_non_null(strstr(err, "RECORD_CONTENT"));
    char *bad2[] = {"1", "t", "0", "5", NULL, "soon"};
    assert_null(sf_row_ndjson(&c, bad2, err, sizeof(err)));
    assert_non_null(strstr(err, "KAFKA_TIMESTAMP"));
    sf_layout_free(&c);
    sf_layout_free(&l);
    avro_schema_decref(s);

    /* FLOAT specials and DATE, on a layout of their own */
    sf_column_t cols[] = {{.name = "F", .type = SF_REAL}, {.name = "D", .type = SF_DATE},
                          {.name = "B", .type = SF_BOOLEAN}};
    sf_layout_t m = {.cols = cols, .ncols = 3};
    char *fv[] = {"NaN", "86400000", "false"};
    line = sf_row_ndjson(&m, fv, err, sizeof(err));
    assert_string_equal(line, "{\"F\":\"NaN\",\"D\":\"1970-01-02\",\"B\":false}");
    free(line);
}

static void test_utf8(void **st) {
    (void)st;
    assert_true(sf_utf8_valid("h\xc3\xa9llo", 6));
    assert_false(sf_utf8_valid("\xff", 1));
    assert_false(sf_utf8_valid("\xc3", 1));
    assert_false(sf_utf8_valid("\xed\xa0\x80", 3)); /* a surrogate */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_account_user),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_key_load),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_jwt),
        cmocka_unit_test(test_layout_counter),
        cmocka_unit_test(test_layout_trades),
        cmocka_unit_test(test_layout_content_and_bindings),
        cmocka_unit_test(test_row_ndjson),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, keys_setup, keys_teardown);
}
