/*
 * test_finnhub.c - unit tests for the pure parsing of the source-finnhub
 * plugin (plugins/source-finnhub/parse.c, included here): symbol lists,
 * feed URLs and tokens, websocket frames, trade ids and the back-off.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../plugins/source-finnhub/parse.c"

#define ERRLEN 256

/* ------------------------------------------------------------------------ */
/* Symbol lists                                                              */
/* ------------------------------------------------------------------------ */

static void expect_symbols(const char *text, size_t n, const char *const *want) {
    char **syms = NULL;
    size_t got = 0;
    char err[ERRLEN] = "";
    int rc = fh_symbols_parse(text, &syms, &got, err, sizeof(err));
    if (rc != 0) fail_msg("'%s' refused: %s", text, err);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) assert_string_equal(syms[i], want[i]);
    fh_symbols_free(syms, got);
}

static void expect_symbols_error(const char *text, const char *needle) {
    char **syms = NULL;
    size_t got = 0;
    char err[ERRLEN] = "";
    assert_int_equal(fh_symbols_parse(text, &syms, &got, err, sizeof(err)), -1);
    assert_null(syms);
    assert_int_equal(got, 0);
    if (!strstr(err, needle)) fail_msg("'%s': error '%s' lacks '%s'", text, err, needle);
}

static void symbols_comma_list(void **st) {
    (void)st;
    expect_symbols("AAPL", 1, (const char *[]){"AAPL"});
    expect_symbols("BINANCE:BTCUSDT,AAPL", 2, (const char *[]){"BINANCE:BTCUSDT", "AAPL"});
    expect_symbols("  AAPL ,  IC MARKETS:1 , OANDA:EUR_USD  ", 3,
                   (const char *[]){"AAPL", "IC MARKETS:1", "OANDA:EUR_USD"});
    expect_symbols("'AAPL', \"MSFT\"", 2, (const char *[]){"AAPL", "MSFT"});
    expect_symbols("AAPL,AAPL,MSFT,AAPL", 2, (const char *[]){"AAPL", "MSFT"});
}

static void symbols_env_syntax(void **st) {
    (void)st;
    expect_symbols("['BINANCE:BTCUSDT','BINANCE:ETHUSDT']", 2,
                   (const char *[]){"BINANCE:BTCUSDT", "BINANCE:ETHUSDT"});
    expect_symbols(" [ \"IC MARKETS:1\" , 'A,B' ] ", 2, (const char *[]){"IC MARKETS:1", "A,B"});
    expect_symbols("['X', 'X', 'Y']", 2, (const char *[]){"X", "Y"});
}

static void symbols_errors(void **st) {
    (void)st;
    expect_symbols_error("", "empty");
    expect_symbols_error("   ", "empty");
    expect_symbols_error(NULL, "empty");
    expect_symbols_error("A,,B", "empty symbol at position 2");
    expect_symbols_error("A,", "empty symbol");
    expect_symbols_error(",A", "empty symbol at position 1");
    expect_symbols_error("[]", "empty");
    expect_symbols_error("['A'", "expected ',' or ']'");
    expect_symbols_error("['A", "unterminated quote");
    expect_symbols_error("[A, B]", "expected a quoted symbol");
    expect_symbols_error("['A'] x", "after ']'");
    expect_symbols_error("['  ']", "empty symbol");
}

/* ------------------------------------------------------------------------ */
/* URLs                                                                      */
/* ------------------------------------------------------------------------ */

static void url_parse_ok(void **st) {
    (void)st;
    fh_url_t u;
    char err[ERRLEN];
    assert_int_equal(fh_url_parse("wss://ws.finnhub.io", &u, err, sizeof(err)), 0);
    assert_true(u.tls);
    assert_string_equal(u.host, "ws.finnhub.io");
    assert_int_equal(u.port, 443);
    assert_string_equal(u.path, "/");
    fh_url_free(&u);

    assert_int_equal(fh_url_parse("ws://127.0.0.1:4567/feed?x=1", &u, err, sizeof(err)), 0);
    assert_false(u.tls);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 4567);
    assert_string_equal(u.path, "/feed?x=1");
    fh_url_free(&u);

    assert_int_equal(fh_url_parse("ws://[::1]:80?a=b", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 80);
    assert_string_equal(u.path, "/?a=b");
    fh_url_free(&u);
}

static void url_parse_errors(void **st) {
    (void)st;
    const char *bad[] = {"http://x",    "ws://",         "ws://:80",  "ws://h:0",
                         "ws://h:65536", "ws://h:12x",   "ws://u@h/", "ws://[::1",
                         "ws://h/a b",  "wss://h/#frag", NULL,        ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fh_url_t u;
        char err[ERRLEN] = "";
        if (fh_url_parse(bad[i], &u, err, sizeof(err)) != -1)
            fail_msg("'%s' accepted", bad[i] ? bad[i] : "(null)");
        assert_true(err[0] != '\0');
        assert_null(u.host);
    }
}

static void url_token(void **st) {
    (void)st;
    fh_url_t u;
    char err[ERRLEN];
    assert_int_equal(fh_url_parse("wss://ws.finnhub.io", &u, err, sizeof(err)), 0);
    char *p = fh_url_path_with_token(&u, "abc123");
    assert_string_equal(p, "/?token=abc123");
    free(p);
    p = fh_url_path_with_token(&u, "a b&c=d/é");
    assert_string_equal(p, "/?token=a%20b%26c%3Dd%2F%C3%A9");
    free(p);
    p = fh_url_path_with_token(&u, "");
    assert_string_equal(p, "/");
    free(p);
    fh_url_free(&u);
    assert_int_equal(fh_url_parse("ws://h/x?y=1", &u, err, sizeof(err)), 0);
    p = fh_url_path_with_token(&u, "t");
    assert_string_equal(p, "/x?y=1&token=t");
    free(p);
    p = fh_url_path_with_token(&u, NULL);
    assert_string_equal(p, "/x?y=1");
    free(p);
    fh_url_free(&u);
}

/* ------------------------------------------------------------------------ */
/* Frames                                                                    */
/* ------------------------------------------------------------------------ */

static void parse(const char *text, fh_frame_t *f) {
    assert_int_equal(fh_frame_parse(text, strlen(text), f), 0);
}

static void frame_trades(void **st) {
    (void)st;
    fh_frame_t f;
    parse("{\"data\":[{\"p\":7296.89,\"s\":\"BINANCE:BTCUSDT\",\"t\":1575526691134,\"v\":0.011467,"
          "\"c\":[\"1\",\"8\"]},{\"p\":1,\"s\":\"IC MARKETS:1\",\"t\":0,\"v\":0,\"c\":null},"
          "{\"p\":2.5,\"s\":\"AAPL\",\"t\":1575526691135.0,\"v\":100,\"extra\":true}],"
          "\"type\":\"trade\"}",
          &f);
    assert_int_equal(f.kind, FH_FRAME_TRADE);
    assert_int_equal(f.ntrades, 3);
    assert_int_equal(f.nbad, 0);
    fh_trade_t *t = &f.trades[0];
    assert_true(t->ok);
    assert_string_equal(t->symbol, "BINANCE:BTCUSDT");
    assert_true(t->price == 7296.89);
    assert_true(t->volume == 0.011467);
    assert_int_equal(t->time_ms, 1575526691134LL);
    assert_true(t->has_conditions);
    assert_int_equal(t->nconditions, 2);
    assert_string_equal(t->conditions[0], "1");
    assert_string_equal(t->conditions[1], "8");
    assert_int_equal(t->index, 0);
    t = &f.trades[1];
    assert_true(t->ok);
    assert_string_equal(t->symbol, "IC MARKETS:1");
    assert_false(t->has_conditions);
    assert_int_equal(t->time_ms, 0);
    t = &f.trades[2];
    assert_true(t->ok);
    assert_false(t->has_conditions); /* absent */
    assert_int_equal(t->time_ms, 1575526691135LL);
    assert_int_equal(t->index, 2);
    fh_frame_free(&f);

    parse("{\"type\":\"trade\",\"data\":[]}", &f);
    assert_int_equal(f.kind, FH_FRAME_TRADE);
    assert_int_equal(f.ntrades, 0);
    fh_frame_free(&f);

    parse("{\"type\":\"trade\",\"data\":[{\"s\":\"X\",\"p\":1,\"v\":1,\"t\":1,\"c\":[]}]}", &f);
    assert_true(f.trades[0].ok);
    assert_true(f.trades[0].has_conditions);
    assert_int_equal(f.trades[0].nconditions, 0);
    fh_frame_free(&f);
}

static void frame_ping_error(void **st) {
    (void)st;
    fh_frame_t f;
    parse("{\"type\":\"ping\"}", &f);
    assert_int_equal(f.kind, FH_FRAME_PING);
    fh_frame_free(&f);
    parse("{\"type\":\"error\",\"msg\":\"Subscribing to too many symbols\"}", &f);
    assert_int_equal(f.kind, FH_FRAME_ERROR);
    assert_string_equal(f.error_msg, "Subscribing to too many symbols");
    fh_frame_free(&f);
    parse("{\"type\":\"error\"}", &f);
    assert_int_equal(f.kind, FH_FRAME_ERROR);
    assert_string_equal(f.error_msg, "");
    fh_frame_free(&f);
}

static void expect_bad_frame(const char *text, size_t len, const char *needle) {
    fh_frame_t f;
    assert_int_equal(fh_frame_parse(text, len, &f), 0);
    if (f.kind != FH_FRAME_BAD) fail_msg("'%.*s' accepted (kind %d)", (int)len, text, f.kind);
    if (!strstr(f.reason, needle)) fail_msg("'%.*s': reason '%s' lacks '%s'", (int)len, text, f.reason, needle);
    fh_frame_free(&f);
}

static void frame_bad(void **st) {
    (void)st;
    expect_bad_frame("", 0, "not JSON");
    expect_bad_frame("not json", 8, "not JSON");
    expect_bad_frame("{\"type\":\"trade\"", 15, "not JSON");
    expect_bad_frame("[1,2]", 5, "not a JSON object");
    expect_bad_frame("{}", 2, "\"type\" is missing");
    expect_bad_frame("{\"type\":7}", 10, "\"type\" is not a string");
    expect_bad_frame("{\"type\":\"news\"}", 15, "unknown \"type\": \"news\"");
    expect_bad_frame("{\"type\":\"trade\"}", 16, "\"data\" is missing");
    expect_bad_frame("{\"type\":\"trade\",\"data\":{}}", 26, "\"data\" is not an array");
    expect_bad_frame("{\"type\":\"trade\",\"data\":[{\"p\":1e999}]}", 36, "not JSON");
    expect_bad_frame("{\"type\":\"ping\",\"type\":\"trade\"}", 29, "not JSON"); /* duplicate */
    const char nul[] = "{\"type\":\"pi\0ng\"}";
    expect_bad_frame(nul, sizeof(nul) - 1, "not JSON");
    const char bin[] = "\xff\xfe\x00\x01";
    expect_bad_frame(bin, sizeof(bin) - 1, "not JSON");
}

/* One bad entry among good ones: the frame stays a trade frame, each entry
 * says whether it is usable, the bad ones carry their JSON and reason. */
static void expect_bad_trade(const char *entry, const char *needle) {
    char text[512];
    snprintf(text, sizeof(text),
             "{\"type\":\"trade\",\"data\":[{\"s\":\"A\",\"p\":1,\"v\":2,\"t\":3},%s,"
             "{\"s\":\"B\",\"p\":4,\"v\":5,\"t\":6}]}",
             entry);
    fh_frame_t f;
    parse(text, &f);
    assert_int_equal(f.kind, FH_FRAME_TRADE);
    assert_int_equal(f.ntrades, 3);
    assert_int_equal(f.nbad, 1);
    assert_true(f.trades[0].ok);
    assert_true(f.trades[2].ok);
    assert_string_equal(f.trades[2].symbol, "B");
    fh_trade_t *t = &f.trades[1];
    if (t->ok) fail_msg("entry %s accepted", entry);
    if (!strstr(t->reason, needle)) fail_msg("entry %s: reason '%s' lacks '%s'", entry, t->reason, needle);
    assert_non_null(strstr(t->reason, "trade #1"));
    assert_non_null(t->raw);
    json_error_t je;
    json_t *a = json_loads(t->raw, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je), *b = json_loads(entry, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    assert_non_null(a);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    fh_frame_free(&f);
}

static void frame_bad_trades(void **st) {
    (void)st;
    expect_bad_trade("7", "not a JSON object");
    expect_bad_trade("{\"p\":1,\"v\":1,\"t\":1}", "\"s\" is missing");
    expect_bad_trade("{\"s\":5,\"p\":1,\"v\":1,\"t\":1}", "\"s\" is not a string");
    expect_bad_trade("{\"s\":\"\",\"p\":1,\"v\":1,\"t\":1}", "\"s\" is empty");
    expect_bad_trade("{\"s\":\"A\\u0000B\",\"p\":1,\"v\":1,\"t\":1}", "holds a NUL");
    expect_bad_trade("{\"s\":\"X\",\"v\":1,\"t\":1}", "\"p\" is missing");
    expect_bad_trade("{\"s\":\"X\",\"p\":\"1.5\",\"v\":1,\"t\":1}", "\"p\" is not a finite number");
    expect_bad_trade("{\"s\":\"X\",\"p\":null,\"v\":1,\"t\":1}", "\"p\" is not a finite number");
    expect_bad_trade("{\"s\":\"X\",\"p\":1,\"t\":1}", "\"v\" is missing");
    expect_bad_trade("{\"s\":\"X\",\"p\":1,\"v\":true,\"t\":1}", "\"v\" is not a finite number");
    expect_bad_trade("{\"s\":\"X\",\"p\":1,\"v\":1}", "\"t\" is missing");
    expect_bad_trade("{\"s\":\"X\",\"p\":1,\"v\":1,\"t\":-5}", "\"t\" is negative");
    expect_bad_trade("{\"s\":\"X\",\"p\":1,\"v\":1,\"t\":1.5}", "\"t\" is not an integer");
    expect_bad_trade("{\"s\":\"X\",\"p\":1,\"v\":1,\"t\":1e300}", "\"t\" is not an integer");
    expect_bad_trade("{\"s\":\"X\",\"p\":1,\"v\":1,\"t\":\"1\"}", "\"t\" is not a number");
    expect_bad_trade("{\"s\":\"X\",\"p\":1,\"v\":1,\"t\":1,\"c\":\"1\"}", "neither an array nor null");
    expect_bad_trade("{\"s\":\"X\",\"p\":1,\"v\":1,\"t\":1,\"c\":[\"1\",2]}", "\"c\"[1] is not a string");
}

/* ------------------------------------------------------------------------ */
/* Trade ids and back-off                                                    */
/* ------------------------------------------------------------------------ */

static void trade_ids(void **st) {
    (void)st;
    char a[33], b[33];
    fh_trade_id("BINANCE:BTCUSDT", 1575526691134, 7296.89, 0.011467, 0, a);
    assert_int_equal(strlen(a), 32);
    for (size_t i = 0; i < 32; i++) assert_non_null(strchr("0123456789abcdef", a[i]));
    fh_trade_id("BINANCE:BTCUSDT", 1575526691134, 7296.89, 0.011467, 0, b);
    assert_string_equal(a, b); /* deterministic */
    const char *others[5];
    char ids[5][33];
    fh_trade_id("BINANCE:BTCUSDX", 1575526691134, 7296.89, 0.011467, 0, ids[0]);
    fh_trade_id("BINANCE:BTCUSDT", 1575526691135, 7296.89, 0.011467, 0, ids[1]);
    fh_trade_id("BINANCE:BTCUSDT", 1575526691134, 7296.890000000001, 0.011467, 0, ids[2]);
    fh_trade_id("BINANCE:BTCUSDT", 1575526691134, 7296.89, 0.011468, 0, ids[3]);
    fh_trade_id("BINANCE:BTCUSDT", 1575526691134, 7296.89, 0.011467, 1, ids[4]);
    for (int i = 0; i < 5; i++) {
        others[i] = ids[i];
        assert_string_not_equal(a, others[i]);
    }
    /* known values pin the algorithm: ids must not change between versions,
     * or an idempotent sink would see old trades as new ones */
    fh_trade_id("BINANCE:BTCUSDT", 1575526691134, 7296.89, 0.011467, 0, a);
    assert_string_equal(a, "695e9a9422ea57437f956d6047b5bd44");
}

static void backoff(void **st) {
    (void)st;
    /* no jitter: doubling, capped */
    assert_int_equal(fh_backoff_ms(500, 30000, 0, 0, 0.3), 500);
    assert_int_equal(fh_backoff_ms(500, 30000, 0, 1, 0.3), 1000);
    assert_int_equal(fh_backoff_ms(500, 30000, 0, 5, 0.3), 16000);
    assert_int_equal(fh_backoff_ms(500, 30000, 0, 6, 0.3), 30000);
    assert_int_equal(fh_backoff_ms(500, 30000, 0, 4000000000u, 0.3), 30000);
    assert_int_equal(fh_backoff_ms(INT64_MAX / 2, INT64_MAX, 0, 63, 0.3), INT64_MAX);
    /* jitter: within [base * (1 - j), base] */
    for (unsigned a = 0; a < 10; a++)
        for (double r = 0; r < 1; r += 0.05) {
            int64_t d = fh_backoff_ms(100, 5000, 0.5, a, r);
            int64_t base = fh_backoff_ms(100, 5000, 0, a, 0);
            assert_true(d >= base / 2 && d <= base);
        }
    assert_int_equal(fh_backoff_ms(100, 5000, 1, 0, 0), 1); /* never 0 */
    assert_int_equal(fh_backoff_ms(0, 0, 0, 0, 0), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(symbols_comma_list), cmocka_unit_test(symbols_env_syntax),
        cmocka_unit_test(symbols_errors),     cmocka_unit_test(url_parse_ok),
        cmocka_unit_test(url_parse_errors),   cmocka_unit_test(url_token),
        cmocka_unit_test(frame_trades),       cmocka_unit_test(frame_ping_error),
        cmocka_unit_test(frame_bad),          cmocka_unit_test(frame_bad_trades),
        cmocka_unit_test(trade_ids),          cmocka_unit_test(backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
