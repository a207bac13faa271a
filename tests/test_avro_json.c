/* Unit tests for host/avro_json.c: JSON -> Avro decoding. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_json.h"

/* The original pipeline's schema (Finnhub trades). */
static const char SEED_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"TestObject\",\"namespace\":\"ca.dataedu\",\"fields\":["
    "{\"name\":\"data\",\"type\":[\"null\",{\"type\":\"array\",\"items\":[\"null\",{\"type\":"
    "\"record\",\"name\":\"Data\",\"fields\":["
    "{\"name\":\"c\",\"type\":[\"null\",{\"type\":\"array\",\"items\":[\"null\",\"string\"]}],"
    "\"default\":null},"
    "{\"name\":\"p\",\"type\":[\"null\",\"double\"],\"default\":null},"
    "{\"name\":\"s\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"t\",\"type\":[\"null\",\"long\"],\"default\":null},"
    "{\"name\":\"v\",\"type\":[\"null\",\"double\"],\"default\":null}]}]}],\"default\":null},"
    "{\"name\":\"type\",\"type\":[\"null\",\"string\"],\"default\":null}]}";

/* A real Finnhub message. */
static const char SEED_MSG[] =
    "{\"data\":[{\"p\":7296.89,\"s\":\"BINANCE:BTCUSDT\",\"t\":1575526691134,\"v\":0.011467,"
    "\"c\":[\"1\",\"8\"]},{\"p\":7296.9,\"s\":\"BINANCE:BTCUSDT\",\"t\":1575526691135,"
    "\"v\":0.5,\"c\":null}],\"type\":\"trade\"}";

/* ------------------------------------------------------------ fixtures */

typedef struct {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t val;
    char err[512];
} fx_t;

static void fx_init(fx_t *f, const char *schema_json)
{
    memset(f, 0, sizeof *f);
    int rc = avro_schema_from_json_length(schema_json, strlen(schema_json), &f->schema);
    if (rc != 0)
        fail_msg("schema %s: %s", schema_json, avro_strerror());
    f->iface = avro_generic_class_from_schema(f->schema);
    assert_non_null(f->iface);
    assert_int_equal(avro_generic_value_new(f->iface, &f->val), 0);
}

static void fx_done(fx_t *f)
{
    avro_value_decref(&f->val);
    avro_value_iface_decref(f->iface);
    avro_schema_decref(f->schema);
}

static int dec(fx_t *f, const char *json)
{
    f->err[0] = '\0';
    return sl_avro_from_json_text(json, strlen(json), &f->val, f->err, sizeof f->err);
}

static void dec_ok(fx_t *f, const char *json)
{
    if (dec(f, json) != 0)
        fail_msg("decoding %s failed: %s", json, f->err);
}

/* Decoding must fail with an error starting with prefix and containing
 * needle. */
static void dec_err(fx_t *f, const char *json, const char *prefix, const char *needle)
{
    if (dec(f, json) == 0)
        fail_msg("decoding %s succeeded, expected error \"%s...%s\"", json, prefix, needle);
    if (strncmp(f->err, prefix, strlen(prefix)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", f->err, prefix);
    if (needle && strstr(f->err, needle) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", f->err, needle);
}

static void get_field(avro_value_t *rec, const char *name, avro_value_t *out)
{
    if (avro_value_get_by_name(rec, name, out, NULL) != 0)
        fail_msg("no field %s", name);
}

static void get_index(avro_value_t *v, size_t i, avro_value_t *out)
{
    assert_int_equal(avro_value_get_by_index(v, i, out, NULL), 0);
}

/* Current branch of a union, checking its discriminant. */
static void branch_of(avro_value_t *u, int want_disc, avro_value_t *out)
{
    int disc = -1;
    assert_int_equal(avro_value_get_type(u), AVRO_UNION);
    assert_int_equal(avro_value_get_discriminant(u, &disc), 0);
    assert_int_equal(disc, want_disc);
    assert_int_equal(avro_value_get_current_branch(u, out), 0);
}

static void assert_str(avro_value_t *v, const char *want)
{
    const char *s = NULL;
    size_t size = 0;
    assert_int_equal(avro_value_get_string(v, &s, &size), 0);
    assert_string_equal(s, want);
    assert_int_equal(size, strlen(want) + 1);
}

static double get_double(avro_value_t *v)
{
    double x = 0;
    assert_int_equal(avro_value_get_double(v, &x), 0);
    return x;
}

static int64_t get_long(avro_value_t *v)
{
    int64_t x = 0;
    assert_int_equal(avro_value_get_long(v, &x), 0);
    return x;
}

static int32_t get_int(avro_value_t *v)
{
    int32_t x = 0;
    assert_int_equal(avro_value_get_int(v, &x), 0);
    return x;
}

static size_t get_size(avro_value_t *v)
{
    size_t n = 0;
    assert_int_equal(avro_value_get_size(v, &n), 0);
    return n;
}

/* Encodes with avro_value_to_json, decodes the text into a fresh value of the
 * same schema and checks avro_value_equal. Returns the official text (free). */
static char *roundtrip(fx_t *f)
{
    char *text = NULL;
    assert_int_equal(avro_value_to_json(&f->val, 1, &text), 0);
    assert_non_null(text);
    avro_value_t back;
    assert_int_equal(avro_generic_value_new(f->iface, &back), 0);
    char err[256];
    if (sl_avro_from_json_text(text, strlen(text), &back, err, sizeof err) != 0)
        fail_msg("re-decoding %s: %s", text, err);
    if (!avro_value_equal(&f->val, &back))
        fail_msg("round trip differs: %s", text);
    avro_value_decref(&back);
    return text;
}

/* ---------------------------------------------------------- primitives */

static void test_null_and_boolean(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, "\"null\"");
    dec_ok(&f, "null");
    assert_int_equal(avro_value_get_null(&f.val), 0);
    dec_err(&f, "0", "<root>: expected null, got number", NULL);
    dec_err(&f, "false", "<root>: expected null, got boolean", NULL);
    fx_done(&f);

    fx_init(&f, "\"boolean\"");
    int b = -1;
    dec_ok(&f, "true");
    assert_int_equal(avro_value_get_boolean(&f.val, &b), 0);
    assert_int_equal(b, 1);
    dec_ok(&f, "false");
    assert_int_equal(avro_value_get_boolean(&f.val, &b), 0);
    assert_int_equal(b, 0);
    dec_err(&f, "1", "<root>: expected a boolean, got number", NULL);
    dec_err(&f, "\"true\"", "<root>: expected a boolean, got string", NULL);
    dec_err(&f, "null", "<root>: expected a boolean, got null", NULL);
    fx_done(&f);
}

static void test_int(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, "\"int\"");
    dec_ok(&f, "42");
    assert_int_equal(get_int(&f.val), 42);
    dec_ok(&f, "-7");
    assert_int_equal(get_int(&f.val), -7);
    dec_ok(&f, "2147483647");
    assert_int_equal(get_int(&f.val), INT32_MAX);
    dec_ok(&f, "-2147483648");
    assert_int_equal(get_int(&f.val), INT32_MIN);
    dec_ok(&f, "5.0"); /* integral real: accepted */
    assert_int_equal(get_int(&f.val), 5);
    dec_err(&f, "2147483648", "<root>: 2147483648 is out of range for int", NULL);
    dec_err(&f, "-2147483649", "<root>: -2147483649 is out of range for int", NULL);
    dec_err(&f, "1e12", "<root>: ", "out of range for int");
    dec_err(&f, "1.5", "<root>: expected an integer (int), got non-integer number 1.5", NULL);
    dec_err(&f, "\"42\"", "<root>: expected an integer (int), got string", NULL);
    dec_err(&f, "null", "<root>: expected an integer (int), got null", NULL);
    fx_done(&f);
}

static void test_long(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, "\"long\"");
    dec_ok(&f, "1575526691134");
    assert_true(get_long(&f.val) == INT64_C(1575526691134));
    dec_ok(&f, "9223372036854775807");
    assert_true(get_long(&f.val) == INT64_MAX);
    dec_ok(&f, "-9223372036854775808");
    assert_true(get_long(&f.val) == INT64_MIN);
    dec_ok(&f, "3");
    assert_true(get_long(&f.val) == 3);
    /* beyond int64: jansson refuses the literal */
    dec_err(&f, "9223372036854775808", "<root>: invalid JSON", NULL);
    dec_err(&f, "2.5", "<root>: expected an integer (long), got non-integer number 2.5", NULL);
    dec_err(&f, "1e19", "<root>: ", "out of range for long");
    dec_err(&f, "true", "<root>: expected an integer (long), got boolean", NULL);
    fx_done(&f);
}

static void test_float_double(void **state)
{
    (void)state;
    fx_t f;
    float fl = 0;
    fx_init(&f, "\"float\"");
    dec_ok(&f, "1.5");
    assert_int_equal(avro_value_get_float(&f.val, &fl), 0);
    assert_true(fl == 1.5f);
    dec_ok(&f, "3"); /* JSON integer */
    assert_int_equal(avro_value_get_float(&f.val, &fl), 0);
    assert_true(fl == 3.0f);
    dec_ok(&f, "\"-Infinity\"");
    assert_int_equal(avro_value_get_float(&f.val, &fl), 0);
    assert_true(isinf(fl) && fl < 0);
    dec_err(&f, "1e39", "<root>: ", "out of range for float");
    dec_err(&f, "\"1.5\"", "<root>: expected a number (float), got string", NULL);
    fx_done(&f);

    fx_init(&f, "\"double\"");
    dec_ok(&f, "7296.89");
    assert_true(get_double(&f.val) == 7296.89);
    dec_ok(&f, "-12");
    assert_true(get_double(&f.val) == -12.0);
    dec_ok(&f, "1e300");
    assert_true(get_double(&f.val) == 1e300);
    dec_ok(&f, "\"NaN\"");
    assert_true(isnan(get_double(&f.val)));
    dec_ok(&f, "\"Infinity\"");
    assert_true(isinf(get_double(&f.val)) && get_double(&f.val) > 0);
    dec_ok(&f, "\"-Infinity\"");
    assert_true(isinf(get_double(&f.val)) && get_double(&f.val) < 0);
    dec_err(&f, "\"nan\"", "<root>: expected a number (double), got string", NULL);
    dec_err(&f, "[]", "<root>: expected a number (double), got array", NULL);
    fx_done(&f);
}

static void test_string(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, "\"string\"");
    dec_ok(&f, "\"BINANCE:BTCUSDT\"");
    assert_str(&f.val, "BINANCE:BTCUSDT");
    dec_ok(&f, "\"\"");
    assert_str(&f.val, "");
    dec_ok(&f, "\"caf\\u00e9 \\u20ac \\ud83d\\ude00\"");
    assert_str(&f.val, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* an embedded NUL is kept (size counts it) */
    dec_ok(&f, "\"a\\u0000b\"");
    const char *s = NULL;
    size_t size = 0;
    assert_int_equal(avro_value_get_string(&f.val, &s, &size), 0);
    assert_int_equal(size, 4);
    assert_memory_equal(s, "a\0b", 4);
    dec_err(&f, "12", "<root>: expected a string, got number", NULL);
    dec_err(&f, "{}", "<root>: expected a string, got object", NULL);
    fx_done(&f);
}

static void test_bytes(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, "\"bytes\"");
    dec_ok(&f, "\"\\u0000\\u0001A\\u007f\\u0080\\u00ff\"");
    const void *buf = NULL;
    size_t size = 0;
    assert_int_equal(avro_value_get_bytes(&f.val, &buf, &size), 0);
    assert_int_equal(size, 6);
    assert_memory_equal(buf, "\x00\x01\x41\x7f\x80\xff", 6);
    /* avro-c 1.11.1's avro_value_to_json cuts bytes at a 0x00, so round-trip
     * a value without one */
    dec_ok(&f, "\"\\u0001A\\u007f\\u0080\\u00ff\"");
    char *text = roundtrip(&f);
    assert_non_null(strstr(text, "\\u00FF"));
    free(text);
    dec_ok(&f, "\"\"");
    assert_int_equal(avro_value_get_bytes(&f.val, &buf, &size), 0);
    assert_int_equal(size, 0);
    dec_err(&f, "\"\\u0100\"", "<root>: bytes string contains U+0100", NULL);
    dec_err(&f, "\"\\u20ac\"", "<root>: bytes string contains U+20AC", NULL);
    dec_err(&f, "[1,2]", "<root>: expected a string (bytes), got array", NULL);
    fx_done(&f);

    /* a caller-built json_t with broken UTF-8 must not crash */
    fx_init(&f, "\"bytes\"");
    json_t *bad = json_stringn_nocheck("\xc3", 1);
    assert_non_null(bad);
    assert_int_equal(sl_avro_from_json(bad, &f.val, f.err, sizeof f.err), -1);
    assert_string_equal(f.err, "<root>: bytes string is not valid UTF-8");
    json_decref(bad);
    fx_done(&f);
}

static void test_enum_fixed(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, "{\"type\":\"enum\",\"name\":\"Side\",\"symbols\":[\"BUY\",\"SELL\",\"HOLD\"]}");
    int e = -1;
    dec_ok(&f, "\"SELL\"");
    assert_int_equal(avro_value_get_enum(&f.val, &e), 0);
    assert_int_equal(e, 1);
    dec_ok(&f, "\"HOLD\"");
    assert_int_equal(avro_value_get_enum(&f.val, &e), 0);
    assert_int_equal(e, 2);
    free(roundtrip(&f));
    dec_err(&f, "\"sell\"", "<root>: \"sell\" is not a symbol of enum Side", NULL);
    dec_err(&f, "1", "<root>: expected a string (enum Side symbol), got number", NULL);
    fx_done(&f);

    fx_init(&f, "{\"type\":\"fixed\",\"name\":\"Id\",\"size\":4}");
    dec_ok(&f, "\"\\u00de\\u00ad\\u00be\\u00ef\"");
    const void *buf = NULL;
    size_t size = 0;
    assert_int_equal(avro_value_get_fixed(&f.val, &buf, &size), 0);
    assert_int_equal(size, 4);
    assert_memory_equal(buf, "\xde\xad\xbe\xef", 4);
    free(roundtrip(&f));
    dec_err(&f, "\"abc\"", "<root>: fixed Id needs 4 bytes, got 3", NULL);
    dec_err(&f, "\"abcde\"", "<root>: fixed Id needs 4 bytes, got 5", NULL);
    dec_err(&f, "\"ab\\u0101d\"", "<root>: fixed string contains U+0101", NULL);
    fx_done(&f);
}

/* ------------------------------------------------------- seed fixture */

static void check_seed_value(avro_value_t *root)
{
    avro_value_t data_u, data, item_u, item, fu, fv, c, cu;

    get_field(root, "data", &data_u);
    branch_of(&data_u, 1, &data);
    assert_int_equal(get_size(&data), 2);

    get_index(&data, 0, &item_u);
    branch_of(&item_u, 1, &item);
    get_field(&item, "p", &fu);
    branch_of(&fu, 1, &fv);
    assert_true(get_double(&fv) == 7296.89);
    get_field(&item, "s", &fu);
    branch_of(&fu, 1, &fv);
    assert_str(&fv, "BINANCE:BTCUSDT");
    get_field(&item, "t", &fu);
    branch_of(&fu, 1, &fv);
    assert_true(get_long(&fv) == INT64_C(1575526691134));
    get_field(&item, "v", &fu);
    branch_of(&fu, 1, &fv);
    assert_true(get_double(&fv) == 0.011467);
    get_field(&item, "c", &fu);
    branch_of(&fu, 1, &c);
    assert_int_equal(get_size(&c), 2);
    get_index(&c, 0, &cu);
    branch_of(&cu, 1, &fv);
    assert_str(&fv, "1");
    get_index(&c, 1, &cu);
    branch_of(&cu, 1, &fv);
    assert_str(&fv, "8");

    get_index(&data, 1, &item_u);
    branch_of(&item_u, 1, &item);
    get_field(&item, "p", &fu);
    branch_of(&fu, 1, &fv);
    assert_true(get_double(&fv) == 7296.9);
    get_field(&item, "t", &fu);
    branch_of(&fu, 1, &fv);
    assert_true(get_long(&fv) == INT64_C(1575526691135));
    get_field(&item, "c", &fu);
    branch_of(&fu, 0, &fv); /* null */
    assert_int_equal(avro_value_get_null(&fv), 0);

    get_field(root, "type", &fu);
    branch_of(&fu, 1, &fv);
    assert_str(&fv, "trade");
}

static void test_seed_finnhub(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, SEED_SCHEMA);
    dec_ok(&f, SEED_MSG);
    check_seed_value(&f.val);
    fx_done(&f);
}

static void test_seed_roundtrip(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, SEED_SCHEMA);
    dec_ok(&f, SEED_MSG);
    char *official = roundtrip(&f);
    /* avro-c's encoding wraps every non-null union value */
    assert_non_null(strstr(official, "{\"double\": 7296.8"));
    assert_non_null(strstr(official, "{\"long\": 1575526691134}"));
    assert_non_null(strstr(official, "{\"Data\": {"));
    assert_non_null(strstr(official, "\"c\": null"));

    /* the official text decodes to the same value, from scratch too */
    fx_t g;
    fx_init(&g, SEED_SCHEMA);
    dec_ok(&g, official);
    assert_true(avro_value_equal(&f.val, &g.val));
    check_seed_value(&g.val);
    fx_done(&g);
    free(official);

    /* and a message with nulls / missing fields round-trips too */
    dec_ok(&f, "{\"data\":[null,{\"p\":1,\"c\":[null,\"x\"]},{}],\"type\":null}");
    free(roundtrip(&f));
    dec_ok(&f, "{}");
    free(roundtrip(&f));
    fx_done(&f);
}

static void test_seed_errors(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, SEED_SCHEMA);
    dec_err(&f,
            "{\"data\":[{\"p\":1},{\"p\":2},{\"p\":3},{\"p\":\"7296.89\"}],\"type\":\"trade\"}",
            "data[3].p: ", "string value matches no branch of union [null, double]");
    dec_err(&f, "{\"data\":[{\"c\":[\"1\",8]}]}", "data[0].c[1]: ",
            "number value matches no branch of union [null, string]");
    /* tagged form with a wrong inner type: the error is the branch's own */
    dec_err(&f, "{\"data\":[{\"p\":{\"double\":\"x\"}}]}",
            "data[0].p: expected a number (double), got string", NULL);
    dec_err(&f, "{\"data\":[{\"t\":{\"long\":1.5}}]}",
            "data[0].t: expected an integer (long), got non-integer number 1.5", NULL);
    dec_err(&f, "{\"data\":[{\"p\":1,\"q\":2}]}", "data[0].q: unknown field", "record Data");
    dec_err(&f, "{\"data\":{\"p\":1}}", "data: ", "object value matches no branch");
    dec_err(&f, "[1]", "<root>: expected an object (record TestObject), got array", NULL);
    dec_err(&f, "{\"type\":\"trade\",\"extra\":true}", "extra: unknown field",
            "record TestObject");
    fx_done(&f);
}

/* ---------------------------------------------------------------- unions */

static const char UNION_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"U\",\"namespace\":\"ns\",\"fields\":[{\"name\":\"u\","
    "\"type\":[\"null\",\"int\",\"long\",\"double\",\"string\","
    "{\"type\":\"enum\",\"name\":\"Color\",\"symbols\":[\"RED\",\"GREEN\"]},"
    "{\"type\":\"record\",\"name\":\"Pt\",\"fields\":[{\"name\":\"x\",\"type\":\"int\"},"
    "{\"name\":\"y\",\"type\":[\"null\",\"int\"]}]},"
    "{\"type\":\"map\",\"values\":\"int\"},"
    "{\"type\":\"array\",\"items\":\"string\"},\"boolean\"]}]}";

enum { U_NULL, U_INT, U_LONG, U_DOUBLE, U_STRING, U_ENUM, U_REC, U_MAP, U_ARRAY, U_BOOL };

/* Decodes {"u": <u>} and returns the union's branch (checked). */
static void dec_u(fx_t *f, const char *u, int disc, avro_value_t *branch)
{
    char json[512];
    snprintf(json, sizeof json, "{\"u\":%s}", u);
    dec_ok(f, json);
    avro_value_t uv;
    get_field(&f->val, "u", &uv);
    branch_of(&uv, disc, branch);
    free(roundtrip(f));
}

static void test_union_bare(void **state)
{
    (void)state;
    fx_t f;
    avro_value_t b, x;
    int e = -1;
    fx_init(&f, UNION_SCHEMA);
    dec_u(&f, "null", U_NULL, &b);
    dec_u(&f, "7", U_INT, &b);
    assert_int_equal(get_int(&b), 7);
    dec_u(&f, "3000000000", U_LONG, &b);
    assert_true(get_long(&b) == INT64_C(3000000000));
    dec_u(&f, "2.5", U_DOUBLE, &b);
    assert_true(get_double(&b) == 2.5);
    dec_u(&f, "\"hello\"", U_STRING, &b);
    assert_str(&b, "hello");
    dec_u(&f, "\"GREEN\"", U_STRING, &b); /* string comes first in the union */
    dec_u(&f, "true", U_BOOL, &b);
    dec_u(&f, "[\"a\",\"b\"]", U_ARRAY, &b);
    assert_int_equal(get_size(&b), 2);
    /* object matching the record's fields -> record (even with y left out) */
    dec_u(&f, "{\"x\":1}", U_REC, &b);
    get_field(&b, "x", &x);
    assert_int_equal(get_int(&x), 1);
    /* other objects -> map */
    dec_u(&f, "{\"a\":1,\"b\":2}", U_MAP, &b);
    assert_int_equal(get_size(&b), 2);
    dec_u(&f, "{}", U_MAP, &b);
    fx_done(&f);

    /* enum chosen for a matching symbol when there is no string branch */
    fx_init(&f, "[\"null\",{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]},\"bytes\"]");
    dec_ok(&f, "\"B\"");
    branch_of(&f.val, 1, &b);
    assert_int_equal(avro_value_get_enum(&b, &e), 0);
    assert_int_equal(e, 1);
    dec_ok(&f, "\"C\""); /* not a symbol: bytes */
    branch_of(&f.val, 2, &b);
    /* neither fits: the first branch of the right kind reports */
    dec_err(&f, "\"\\u0101\"", "<root>: \"", "is not a symbol of enum E");
    dec_err(&f, "5", "<root>: number value matches no branch of union [null, E, bytes]", NULL);
    fx_done(&f);
}

static void test_union_numeric_choice(void **state)
{
    (void)state;
    fx_t f;
    avro_value_t b;
    float fl = 0;

    fx_init(&f, "[\"null\",\"float\",\"double\"]");
    dec_ok(&f, "0.5"); /* exact in float */
    branch_of(&f.val, 1, &b);
    dec_ok(&f, "7296.89"); /* not exact in float */
    branch_of(&f.val, 2, &b);
    assert_true(get_double(&b) == 7296.89);
    dec_ok(&f, "16777217"); /* 2^24+1: not exact in float */
    branch_of(&f.val, 2, &b);
    dec_ok(&f, "\"NaN\"");
    branch_of(&f.val, 1, &b);
    fx_done(&f);

    fx_init(&f, "[\"null\",\"double\",\"long\"]");
    dec_ok(&f, "3"); /* first branch that holds it exactly */
    branch_of(&f.val, 1, &b);
    dec_ok(&f, "9007199254740993"); /* 2^53+1 does not fit a double */
    branch_of(&f.val, 2, &b);
    assert_true(get_long(&b) == INT64_C(9007199254740993));
    fx_done(&f);

    fx_init(&f, "[\"null\",\"int\",\"double\"]");
    dec_ok(&f, "3000000000");
    branch_of(&f.val, 2, &b);
    dec_ok(&f, "1.0"); /* a real never picks int */
    branch_of(&f.val, 2, &b);
    fx_done(&f);

    fx_init(&f, "[\"null\",\"float\"]");
    dec_ok(&f, "0.1"); /* lossy but the only numeric branch */
    branch_of(&f.val, 1, &b);
    assert_int_equal(avro_value_get_float(&b, &fl), 0);
    assert_true(fl == 0.1f);
    dec_err(&f, "1e300", "<root>: ", "out of range for float");
    fx_done(&f);

    fx_init(&f, "[\"null\",\"int\"]");
    dec_err(&f, "3000000000", "<root>: 3000000000 is out of range for int", NULL);
    dec_err(&f, "\"x\"", "<root>: string value matches no branch of union [null, int]", NULL);
    fx_done(&f);
}

static void test_union_tagged(void **state)
{
    (void)state;
    fx_t f;
    avro_value_t b, x;
    fx_init(&f, UNION_SCHEMA);
    dec_u(&f, "{\"int\":7}", U_INT, &b);
    dec_u(&f, "{\"long\":7}", U_LONG, &b);
    assert_true(get_long(&b) == 7);
    dec_u(&f, "{\"double\":7}", U_DOUBLE, &b);
    assert_true(get_double(&b) == 7.0);
    dec_u(&f, "{\"string\":\"RED\"}", U_STRING, &b);
    dec_u(&f, "{\"Color\":\"RED\"}", U_ENUM, &b);
    dec_u(&f, "{\"ns.Color\":\"GREEN\"}", U_ENUM, &b);
    dec_u(&f, "{\"Pt\":{\"x\":1,\"y\":{\"int\":2}}}", U_REC, &b);
    get_field(&b, "y", &x);
    branch_of(&x, 1, &x);
    assert_int_equal(get_int(&x), 2);
    dec_u(&f, "{\"ns.Pt\":{\"x\":3,\"y\":null}}", U_REC, &b);
    dec_u(&f, "{\"map\":{\"k\":1}}", U_MAP, &b);
    assert_int_equal(get_size(&b), 1);
    dec_u(&f, "{\"array\":[]}", U_ARRAY, &b);
    dec_u(&f, "{\"boolean\":false}", U_BOOL, &b);
    /* a one-key map whose key is a branch name but whose value does not fit
     * that branch: read as a bare map */
    dec_u(&f, "{\"map\":5}", U_MAP, &b);
    get_field(&b, "map", &x);
    assert_int_equal(get_int(&x), 5);
    /* wrong namespace: not a tag, and the object is not a Pt -> map of int */
    dec_err(&f, "{\"u\":{\"other.Pt\":{\"x\":1}}}", "u[\"other.Pt\"]: ",
            "expected an integer (int), got object");
    /* the tag is transparent in paths */
    dec_err(&f, "{\"u\":{\"Pt\":{\"x\":\"1\"}}}",
            "u.x: expected an integer (int), got string", NULL);
    dec_err(&f, "{\"u\":{\"Pt\":{\"y\":1}}}", "u.x: missing required field (type int)", NULL);
    dec_err(&f, "{\"u\":{\"Color\":\"BLUE\"}}", "u: \"BLUE\" is not a symbol of enum Color",
            NULL);
    fx_done(&f);
}

/* ------------------------------------------------- records & containers */

static const char NESTED_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"Book\",\"fields\":["
    "{\"name\":\"symbol\",\"type\":\"string\"},"
    "{\"name\":\"levels\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":"
    "{\"type\":\"record\",\"name\":\"Level\",\"fields\":["
    "{\"name\":\"price\",\"type\":\"double\"},{\"name\":\"qty\",\"type\":[\"null\",\"long\"]},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"map\","
    "\"values\":[\"null\",\"string\",\"int\"]}}}]}}}},"
    "{\"name\":\"note\",\"type\":\"null\"},"
    "{\"name\":\"seq\",\"type\":\"int\"}]}";

static void test_nested_containers(void **state)
{
    (void)state;
    fx_t f;
    avro_value_t levels, bids, lvl, v, tags, tag, u;
    fx_init(&f, NESTED_SCHEMA);
    dec_ok(&f, "{\"symbol\":\"AAPL\",\"seq\":9,\"note\":null,\"levels\":{"
               "\"bid\":[{\"price\":1.5,\"qty\":10,\"tags\":[{\"a\":\"x\",\"b\":2,\"c\":null}]},"
               "{\"price\":1.25,\"qty\":null,\"tags\":[]}],"
               "\"ask\":[]}}");
    get_field(&f.val, "symbol", &v);
    assert_str(&v, "AAPL");
    get_field(&f.val, "seq", &v);
    assert_int_equal(get_int(&v), 9);
    get_field(&f.val, "levels", &levels);
    assert_int_equal(get_size(&levels), 2);
    assert_int_equal(avro_value_get_by_name(&levels, "bid", &bids, NULL), 0);
    assert_int_equal(get_size(&bids), 2);
    get_index(&bids, 0, &lvl);
    get_field(&lvl, "price", &v);
    assert_true(get_double(&v) == 1.5);
    get_field(&lvl, "qty", &u);
    branch_of(&u, 1, &v);
    assert_true(get_long(&v) == 10);
    get_field(&lvl, "tags", &tags);
    assert_int_equal(get_size(&tags), 1);
    get_index(&tags, 0, &tag);
    assert_int_equal(get_size(&tag), 3);
    assert_int_equal(avro_value_get_by_name(&tag, "b", &u, NULL), 0);
    branch_of(&u, 2, &v);
    assert_int_equal(get_int(&v), 2);
    assert_int_equal(avro_value_get_by_name(&tag, "c", &u, NULL), 0);
    branch_of(&u, 0, &v);
    get_index(&bids, 1, &lvl);
    get_field(&lvl, "qty", &u);
    branch_of(&u, 0, &v);
    free(roundtrip(&f));

    /* decoding again into the same value replaces containers, not appends */
    dec_ok(&f, "{\"symbol\":\"X\",\"seq\":1,\"levels\":{\"bid\":[{\"price\":2,\"tags\":[]}]}}");
    get_field(&f.val, "levels", &levels);
    assert_int_equal(get_size(&levels), 1);
    assert_int_equal(avro_value_get_by_name(&levels, "bid", &bids, NULL), 0);
    assert_int_equal(get_size(&bids), 1);
    get_field(&f.val, "note", &v); /* missing null-typed field: null */
    assert_int_equal(avro_value_get_null(&v), 0);

    /* error paths through maps and arrays */
    dec_err(&f, "{\"symbol\":\"X\",\"seq\":1,\"levels\":{\"bid\":[{\"price\":2,\"tags\":[]},"
                "{\"price\":\"2\",\"tags\":[]}]}}",
            "levels.bid[1].price: expected a number (double), got string", NULL);
    dec_err(&f, "{\"symbol\":\"X\",\"seq\":1,\"levels\":{\"b-1\":[{\"price\":2,"
                "\"tags\":[{\"k\":true}]}]}}",
            "levels[\"b-1\"][0].tags[0].k: ", "boolean value matches no branch");
    dec_err(&f, "{\"symbol\":\"X\",\"seq\":1,\"levels\":[]}",
            "levels: expected an object (map), got array", NULL);
    dec_err(&f, "{\"symbol\":\"X\",\"seq\":1,\"levels\":{\"a\":{}}}",
            "levels.a: expected an array, got object", NULL);
    dec_err(&f, "{\"symbol\":\"X\",\"seq\":1,\"levels\":{},\"note\":0}",
            "note: expected null, got number", NULL);
    fx_done(&f);
}

static void test_missing_and_extra_fields(void **state)
{
    (void)state;
    fx_t f;
    avro_value_t u, v;
    fx_init(&f, NESTED_SCHEMA);
    dec_err(&f, "{\"seq\":1,\"levels\":{}}", "symbol: missing required field (type string)",
            NULL);
    dec_err(&f, "{\"symbol\":\"X\",\"levels\":{}}", "seq: missing required field (type int)",
            NULL);
    dec_err(&f, "{\"symbol\":\"X\",\"seq\":1}", "levels: missing required field (type map)",
            NULL);
    dec_err(&f, "{\"symbol\":\"X\",\"seq\":1,\"levels\":{\"a\":[{\"tags\":[]}]}}",
            "levels.a[0].price: missing required field (type double)", NULL);
    dec_err(&f, "{\"symbol\":\"X\",\"seq\":1,\"levels\":{},\"Symbol\":\"y\"}",
            "Symbol: unknown field", NULL);
    dec_err(&f, "{\"symbol\":\"X\",\"seq\":1,\"levels\":{\"a\":[{\"price\":1,\"tags\":[],"
                "\"qty\":1,\"size\":2}]}}",
            "levels.a[0].size: unknown field (record Level has no field of that name)", NULL);
    /* jansson's parser refuses NUL in keys; a hand-built key with one never
     * matches a field */
    dec_err(&f, "{\"symbol\":\"X\",\"seq\":1,\"levels\":{},\"seq\\u0000x\":1}",
            "<root>: invalid JSON", "NUL");
    json_t *j = json_pack("{s:s, s:i, s:{}}", "symbol", "X", "seq", 1, "levels");
    assert_non_null(j);
    assert_int_equal(json_object_setn_new(j, "seq\0x", 5, json_integer(1)), 0);
    assert_int_equal(sl_avro_from_json(j, &f.val, f.err, sizeof f.err), -1);
    assert_string_equal(f.err, "[\"seq?x\"]: unknown field (record Book has no field of that name)");
    json_decref(j);
    /* missing nullable union field: null branch */
    dec_ok(&f, "{\"symbol\":\"X\",\"seq\":1,\"levels\":{\"a\":[{\"price\":1,\"tags\":[]}]}}");
    get_field(&f.val, "levels", &v);
    assert_int_equal(avro_value_get_by_name(&v, "a", &v, NULL), 0);
    get_index(&v, 0, &v);
    get_field(&v, "qty", &u);
    branch_of(&u, 0, &v);
    fx_done(&f);

    /* union whose null branch is not first */
    fx_init(&f, "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
                "[\"string\",\"null\"]},{\"name\":\"b\",\"type\":\"int\"}]}");
    dec_ok(&f, "{\"b\":1}");
    get_field(&f.val, "a", &u);
    branch_of(&u, 1, &v);
    assert_int_equal(avro_value_get_null(&v), 0);
    fx_done(&f);
}

static void test_type_mismatch(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
                "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"int\"}},"
                "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"boolean\"}}]}");
    dec_ok(&f, "{\"a\":[1,2],\"m\":{\"k\":true}}");
    dec_err(&f, "{\"a\":{\"0\":1},\"m\":{}}", "a: expected an array, got object", NULL);
    dec_err(&f, "{\"a\":\"1,2\",\"m\":{}}", "a: expected an array, got string", NULL);
    dec_err(&f, "{\"a\":[1,\"2\"],\"m\":{}}", "a[1]: expected an integer (int), got string",
            NULL);
    dec_err(&f, "{\"a\":[],\"m\":{\"k\":1}}", "m.k: expected a boolean, got number", NULL);
    dec_err(&f, "{\"a\":[],\"m\":null}", "m: expected an object (map), got null", NULL);
    dec_err(&f, "\"R\"", "<root>: expected an object (record R), got string", NULL);
    dec_err(&f, "null", "<root>: expected an object (record R), got null", NULL);
    fx_done(&f);
}

static void test_malformed_text(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, SEED_SCHEMA);
    dec_err(&f, "", "<root>: invalid JSON", NULL);
    dec_err(&f, "{", "<root>: invalid JSON at line 1", NULL);
    dec_err(&f, "{\"type\":\"trade\",}", "<root>: invalid JSON", NULL);
    dec_err(&f, "{\"type\":'trade'}", "<root>: invalid JSON", NULL);
    dec_err(&f, "{\"type\":\"a\",\"type\":\"b\"}", "<root>: invalid JSON", "duplicate");
    dec_err(&f, "{\"type\":\"\xff\"}", "<root>: invalid JSON", NULL);
    dec_err(&f, "{} {}", "<root>: invalid JSON", NULL);
    /* length is honoured: the text need not be NUL-terminated */
    const char text[] = "{\"type\":\"trade\"}garbage";
    assert_int_equal(sl_avro_from_json_text(text, 16, &f.val, f.err, sizeof f.err), 0);
    /* bad arguments */
    assert_int_equal(sl_avro_from_json_text(NULL, 3, &f.val, f.err, sizeof f.err), -1);
    assert_string_equal(f.err, "<root>: no JSON text");
    assert_int_equal(sl_avro_from_json(NULL, &f.val, f.err, sizeof f.err), -1);
    assert_string_equal(f.err, "<root>: no JSON document");
    json_t *j = json_object();
    assert_int_equal(sl_avro_from_json(j, NULL, f.err, sizeof f.err), -1);
    assert_string_equal(f.err, "<root>: no destination value");
    json_decref(j);
    /* err may be NULL or tiny */
    assert_int_equal(sl_avro_from_json_text("[", 1, &f.val, NULL, 0), -1);
    char tiny[8];
    memset(tiny, 'x', sizeof tiny);
    assert_int_equal(sl_avro_from_json_text("{\"zzz\":1}", 9, &f.val, tiny, sizeof tiny), -1);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    assert_memory_equal(tiny, "zzz: un", 7);
    fx_done(&f);
}

/* ------------------------------------------------------------- nesting */

static const char NODE_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"Node\",\"namespace\":\"t\",\"fields\":["
    "{\"name\":\"v\",\"type\":\"int\"},{\"name\":\"next\",\"type\":[\"null\",\"Node\"]}]}";

/* {"v":0,"next":{"v":1,"next":...null}} with n nodes; tagged wraps each next
 * value as {"Node": {...}}. */
static char *node_chain(int n, int tagged)
{
    size_t cap = (size_t)n * 40 + 16;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && tagged)
            o += (size_t)snprintf(s + o, cap - o, "{\"t.Node\":");
        o += (size_t)snprintf(s + o, cap - o, "{\"v\":%d,\"next\":", i);
    }
    o += (size_t)snprintf(s + o, cap - o, "null");
    for (int i = 0; i < n; i++) {
        o += (size_t)snprintf(s + o, cap - o, "}");
        if (i < n - 1 && tagged)
            o += (size_t)snprintf(s + o, cap - o, "}");
    }
    return s;
}

static void test_deep_nesting(void **state)
{
    (void)state;
    fx_t f;
    avro_value_t cur, u, v;
    fx_init(&f, NODE_SCHEMA);

    /* 63 nodes + the final null: 64 levels, the most allowed */
    char *ok = node_chain(SL_AVRO_JSON_MAX_DEPTH - 1, 0);
    dec_ok(&f, ok);
    free(ok);
    avro_value_copy_ref(&cur, &f.val);
    int count = 0;
    for (;;) {
        get_field(&cur, "v", &v);
        assert_int_equal(get_int(&v), count);
        count++;
        get_field(&cur, "next", &u);
        int disc = -1;
        assert_int_equal(avro_value_get_discriminant(&u, &disc), 0);
        if (disc == 0)
            break;
        avro_value_t next;
        assert_int_equal(avro_value_get_current_branch(&u, &next), 0);
        avro_value_decref(&cur);
        avro_value_copy_ref(&cur, &next);
    }
    avro_value_decref(&cur);
    assert_int_equal(count, SL_AVRO_JSON_MAX_DEPTH - 1);

    char *over = node_chain(SL_AVRO_JSON_MAX_DEPTH, 0);
    dec_err(&f, over, "next.next.next.", "nesting deeper than 64 levels");
    free(over);

    /* tagged form: the wrapper objects count as levels too */
    char *tagged = node_chain(20, 1);
    dec_ok(&f, tagged);
    free(roundtrip(&f));
    free(tagged);
    tagged = node_chain(40, 1);
    dec_err(&f, tagged, "next.", "nesting deeper than 64 levels");
    free(tagged);

    /* hostile: far deeper than jansson's own parser would allow, built by hand */
    json_t *root = json_null();
    for (int i = 0; i < 5000; i++) {
        json_t *node = json_pack("{s:i, s:o}", "v", i, "next", root);
        assert_non_null(node);
        root = node;
    }
    assert_int_equal(sl_avro_from_json(root, &f.val, f.err, sizeof f.err), -1);
    assert_non_null(strstr(f.err, "nesting deeper than 64 levels"));
    json_decref(root);

    /* deep JSON against a shallow schema: a plain type error */
    json_t *arr = json_array();
    for (int i = 0; i < 1000; i++) {
        json_t *outer = json_array();
        assert_int_equal(json_array_append_new(outer, arr), 0);
        arr = outer;
    }
    assert_int_equal(sl_avro_from_json(arr, &f.val, f.err, sizeof f.err), -1);
    assert_string_equal(f.err, "<root>: expected an object (record Node), got array");
    json_decref(arr);
    fx_done(&f);

    /* long paths are cut, ending in "..." */
    fx_init(&f, "{\"type\":\"record\",\"name\":\"M\",\"fields\":[{\"name\":\"m\","
                "\"type\":{\"type\":\"map\",\"values\":\"M\"}}]}");
    json_t *leaf = json_pack("{s:i}", "m", 1);
    assert_non_null(leaf);
    for (int i = 0; i < 15; i++) {
        json_t *outer = json_pack("{s:{s:o}}", "m", "a-long-map-key-that-is-not-an-identifier", leaf);
        assert_non_null(outer);
        leaf = outer;
    }
    assert_int_equal(sl_avro_from_json(leaf, &f.val, f.err, sizeof f.err), -1);
    const char *want = "m[\"a-long-map-key-that-is-not-an-identifier\"].m[\"a-long";
    assert_memory_equal(f.err, want, strlen(want));
    assert_non_null(strstr(f.err, "...: expected an object (map), got number"));
    json_decref(leaf);
    fx_done(&f);

    /* jansson refuses absurd nesting in text itself */
    fx_init(&f, "{\"type\":\"array\",\"items\":\"int\"}");
    size_t n = 100000;
    char *deep = malloc(2 * n + 1);
    assert_non_null(deep);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    dec_err(&f, deep, "<root>: invalid JSON", NULL);
    free(deep);
    fx_done(&f);
}

static void test_top_level_containers(void **state)
{
    (void)state;
    fx_t f;
    avro_value_t v;
    fx_init(&f, "{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":\"long\"}}");
    dec_ok(&f, "{\"a\":[1,2,3],\"b\":[],\"\":[4]}");
    assert_int_equal(get_size(&f.val), 3);
    assert_int_equal(avro_value_get_by_name(&f.val, "a", &v, NULL), 0);
    assert_int_equal(get_size(&v), 3);
    assert_int_equal(avro_value_get_by_name(&f.val, "", &v, NULL), 0);
    assert_int_equal(get_size(&v), 1);
    free(roundtrip(&f));
    dec_err(&f, "{\"a\":[1,2.5]}", "a[1]: ", "non-integer");
    dec_err(&f, "{\"\":[\"x\"]}", "[\"\"][0]: expected an integer (long), got string", NULL);
    json_t *j = json_object();
    assert_non_null(j);
    assert_int_equal(json_object_setn_new(j, "k\0", 2, json_array()), 0);
    assert_int_equal(sl_avro_from_json(j, &f.val, f.err, sizeof f.err), -1);
    assert_string_equal(f.err, "[\"k?\"]: map key contains a NUL character");
    json_decref(j);
    fx_done(&f);

    fx_init(&f, "{\"type\":\"array\",\"items\":[\"null\",\"double\"]}");
    dec_ok(&f, "[1,null,2.5,{\"double\":3}]");
    assert_int_equal(get_size(&f.val), 4);
    get_index(&f.val, 3, &v);
    branch_of(&v, 1, &v);
    assert_true(get_double(&v) == 3.0);
    dec_err(&f, "[1,true]", "[1]: boolean value matches no branch of union [null, double]",
            NULL);
    fx_done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_and_boolean),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_long),
        cmocka_unit_test(test_float_double),
        cmocka_unit_test(test_string),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_enum_fixed),
        cmocka_unit_test(test_seed_finnhub),
        cmocka_unit_test(test_seed_roundtrip),
        cmocka_unit_test(test_seed_errors),
        cmocka_unit_test(test_union_bare),
        cmocka_unit_test(test_union_numeric_choice),
        cmocka_unit_test(test_union_tagged),
        cmocka_unit_test(test_nested_containers),
        cmocka_unit_test(test_missing_and_extra_fields),
        cmocka_unit_test(test_type_mismatch),
        cmocka_unit_test(test_malformed_text),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_top_level_containers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
