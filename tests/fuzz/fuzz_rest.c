/*
 * fuzz_rest.c - libFuzzer target: REST request bodies as the standalone
 * herder takes them (host/herder.c; host/rest.c hands it the parsed JSON
 * body of POST /connectors, PUT/PATCH /config, PATCH /offsets and
 * PUT /connector-plugins/X/config/validate). The first input byte picks the
 * verb and connector name, the rest is the body. The worker is never
 * started (no broker), as in tests/test_herder.c.
 *
 * Oracles besides "no crash, leak or UB": every answer has a status in
 * 200..599; an error body is {"error_code": status, "message": non-empty};
 * the secret stored for connector "keep" (finnhub.token) never appears in
 * an answer unless the input holds it. Connectors an input creates are
 * removed after it, so the state does not grow.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "herder.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define SECRET "s3cr3t-token-value"
static sl_worker_t *g_w;
static sl_herder_t *g_h;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    sl_log_set_level(SLUICE_LOG_ERROR); /* quiet: the fuzzer prints its own progress */
    char err[1024];
    sl_props_t *p = sl_props_new();
    sl_props_set(p, "bootstrap.servers", "127.0.0.1:1"); /* never contacted */
    sl_props_set(p, "plugin.path", SLUICE_PLUGIN_DIR);
    g_w = sl_worker_new(p, ".", 0, err, sizeof(err));
    if (!g_w) abort();
    g_h = sl_standalone_herder_new(g_w, NULL, err, sizeof(err));
    if (!g_h) abort();
    json_t *cfg = json_pack("{s:s, s:s, s:s, s:s}", "connector.class", "source-finnhub",
                            "finnhub.token", SECRET, "finnhub.symbols", "AAPL", "topic", "t");
    json_t *out = NULL;
    int st = g_h->ops->put_config(g_h, "keep", cfg, &out);
    json_decref(cfg);
    json_decref(out);
    if (st != 201) abort();
    return 0;
}

static void check(int status, json_t *out, const uint8_t *data, size_t size) {
    if (status < 200 || status > 599) abort();
    if (out) {
        if (status >= 400) {
            json_t *code = json_object_get(out, "error_code");
            const char *msg = json_string_value(json_object_get(out, "message"));
            if (!json_is_integer(code) || json_integer_value(code) != status || !msg || !*msg)
                abort();
        }
        char *text = json_dumps(out, JSON_COMPACT);
        if (text && strstr(text, SECRET) && !memmem(data, size, SECRET, strlen(SECRET)))
            abort();
        free(text);
        json_decref(out);
    }
}

static const char *const names[] = {"keep", "new", "x y", "", "a/b"};
static const char *const plugins[] = {"source-finnhub", "sink-snowflake", "sink-file",
                                      "transform-window", "nope"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned op = data[0] % 8, sel = (data[0] >> 3) % 5;
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &jerr);
    const char *name = names[sel];
    json_t *out = NULL;
    int st = 0;
    switch (op) {
    case 0: if (body) st = g_h->ops->create(g_h, body, &out); break;
    case 1: if (body) st = g_h->ops->put_config(g_h, name, body, &out); break;
    case 2: if (body) st = g_h->ops->patch_config(g_h, name, body, &out); break;
    case 3: if (body) st = g_h->ops->validate(g_h, plugins[sel], body, &out); break;
    case 4: st = g_h->ops->alter_offsets(g_h, name, body, &out); break;
    case 5: st = g_h->ops->get_config(g_h, name, &out); break;
    case 6: st = g_h->ops->list(g_h, 1, 1, &out); break;
    default: st = g_h->ops->status(g_h, name, &out); break;
    }
    if (st) check(st, out, data, size);
    json_decref(body);
    /* the state stays: remove what the input created, keep "keep" */
    json_t *list = NULL;
    if (g_h->ops->list(g_h, 0, 0, &list) == 200) {
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v) {
            const char *n = json_string_value(v);
            if (n && strcmp(n, "keep") != 0) {
                json_t *o = NULL;
                g_h->ops->remove(g_h, n, &o);
                json_decref(o);
            }
        }
    }
    json_decref(list);
    /* and "keep" keeps its secret (a PUT/PATCH may have changed its config) */
    json_t *cfg = json_pack("{s:s, s:s, s:s, s:s}", "connector.class", "source-finnhub",
                            "finnhub.token", SECRET, "finnhub.symbols", "AAPL", "topic", "t");
    json_t *o = NULL;
    g_h->ops->put_config(g_h, "keep", cfg, &o);
    json_decref(o);
    json_decref(cfg);
    return 0;
}
