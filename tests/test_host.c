/* test_host.c - the host modules a plugin reaches through sluice_host_api_t,
 * tested directly (sl_* functions) and through the table (sl_host_api()) as a
 * plugin would: records, converters, source offsets, metrics, the log's
 * secret masking, schemas, task timers and the host-API config getters.
 *
 * Tests marked "Regression" guard defects found (and fixed) in host modules,
 * described where they stand. Tests that would crash the whole program on
 * such a defect run their scenario in a forked child.
 *
 *   make build/tests/test_host && ./build/tests/test_host
 *   make SANITIZE=1 build-san/tests/test_host && SLUICE_BUILD=build-san ./build-san/tests/test_host
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <avro.h>
#include <jansson.h>

#include "avro_json.h"
#include "config.h"
#include "converter.h"
#include "kafka.h"
#include "loader.h"
#include "log.h"
#include "latest.h"
#include "metrics.h"
#include "offset_store.h"
#include "record.h"
#include "schemas.h"
#include "task.h"

/* ------------------------------------------------------------------------ */
/* Fixtures and helpers                                                      */
/* ------------------------------------------------------------------------ */

#define TRADE_SCHEMA                                                                      \
    "{\"type\":\"record\",\"name\":\"Trade\",\"namespace\":\"io.sluice.test\","           \
    "\"fields\":[{\"name\":\"sym\",\"type\":\"string\"},"                                 \
    "{\"name\":\"price\",\"type\":\"double\"},"                                           \
    "{\"name\":\"qty\",\"type\":\"long\"},"                                               \
    "{\"name\":\"note\",\"type\":[\"null\",\"string\"]}]}"

static char g_dir[256];     /* temp dir: schemas (.avsc) and offset files */
static sl_plugin_t g_plugin; /* build/plugins/source-counter.so, loaded once */
static int g_plugin_loaded;

static const sluice_host_api_t *api(void) { return sl_host_api(); }

static const char *build_dir(void) {
    const char *b = getenv("SLUICE_BUILD");
    return b && *b ? b : "build";
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void dir_file(char *out, size_t len, const char *name) {
    snprintf(out, len, "%s/%s", g_dir, name);
}

/* malloc'd contents of a stream from its start. */
static char *slurp(FILE *f) {
    fflush(f);
    long size;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        return NULL;
    char *buf = malloc((size_t)size + 1);
    if (!buf) return NULL;
    size_t n = fread(buf, 1, (size_t)size, f);
    buf[n] = '\0';
    return buf;
}

static char *slurp_path(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = slurp(f);
    fclose(f);
    return text;
}

/* Captures what is written to fd 2 between begin and end. */
typedef struct capture {
    FILE *tmp;
    int saved;
} capture_t;

static void capture_begin(capture_t *c) {
    fflush(stderr);
    c->tmp = tmpfile();
    assert_non_null(c->tmp);
    c->saved = dup(2);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->tmp), 2) >= 0);
}

/* Restores fd 2; returns the captured text (malloc'd). */
static char *capture_end(capture_t *c) {
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    char *text = slurp(c->tmp);
    fclose(c->tmp);
    assert_non_null(text);
    return text;
}

static int count_substr(const char *hay, const char *needle) {
    int n = 0;
    size_t len = strlen(needle);
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += len) n++;
    return n;
}

/* Whole-line match in a multi-line text. */
static int has_line(const char *text, const char *line) {
    size_t len = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && (p[len] == '\n' || p[len] == '\0')) return 1;
    return 0;
}

static avro_schema_t trade_schema(void) {
    avro_schema_t s = NULL;
    if (avro_schema_from_json_length(TRADE_SCHEMA, sizeof(TRADE_SCHEMA) - 1, &s) != 0)
        fail_msg("trade schema: %s", avro_strerror());
    return s;
}

/* Fills a Trade value; note NULL = the null branch. */
static void fill_trade(avro_value_t *v, const char *sym, double price, int64_t qty,
                       const char *note) {
    avro_value_t f, branch;
    assert_int_equal(avro_value_get_by_name(v, "sym", &f, NULL), 0);
    assert_int_equal(avro_value_set_string(&f, sym), 0);
    assert_int_equal(avro_value_get_by_name(v, "price", &f, NULL), 0);
    assert_int_equal(avro_value_set_double(&f, price), 0);
    assert_int_equal(avro_value_get_by_name(v, "qty", &f, NULL), 0);
    assert_int_equal(avro_value_set_long(&f, qty), 0);
    assert_int_equal(avro_value_get_by_name(v, "note", &f, NULL), 0);
    if (note) {
        assert_int_equal(avro_value_set_branch(&f, 1, &branch), 0);
        assert_int_equal(avro_value_set_string(&branch, note), 0);
    } else {
        assert_int_equal(avro_value_set_branch(&f, 0, &branch), 0);
        assert_int_equal(avro_value_set_null(&branch), 0);
    }
}

static const char *trade_sym(avro_value_t *v) {
    avro_value_t f;
    const char *s = NULL;
    size_t size = 0;
    assert_int_equal(avro_value_get_by_name(v, "sym", &f, NULL), 0);
    assert_int_equal(avro_value_get_string(&f, &s, &size), 0);
    return s;
}

static int64_t trade_qty(avro_value_t *v) {
    avro_value_t f;
    int64_t q = 0;
    assert_int_equal(avro_value_get_by_name(v, "qty", &f, NULL), 0);
    assert_int_equal(avro_value_get_long(&f, &q), 0);
    return q;
}

static const sl_plugin_t *counter_plugin(void) {
    if (!g_plugin_loaded) {
        char path[1024], err[512] = "";
        snprintf(path, sizeof(path), "%s/plugins/source-counter.so", build_dir());
        if (sl_plugin_load(path, sl_host_api(), &g_plugin, err, sizeof(err)) != 0)
            fail_msg("cannot load %s: %s", path, err);
        g_plugin_loaded = 1;
    }
    return &g_plugin;
}

/* Worker services for task tests. */
static void services_init(sl_services_t *svc, sl_offset_store_t *offsets) {
    svc->metrics = sl_metrics_new();
    svc->schemas = sl_schemas_new(g_dir);
    svc->offsets = offsets;
    assert_non_null(svc->metrics);
    assert_non_null(svc->schemas);
}

static void services_free(sl_services_t *svc) {
    sl_metrics_free(svc->metrics);
    sl_schemas_free(svc->schemas);
    if (svc->offsets) sl_offset_store_free(svc->offsets);
}

/* A source-counter task; cfg NULL = empty config. */
static sluice_task_t *counter_task(const sl_services_t *svc, const char *connector, int id,
                                   int count, sl_props_t *cfg) {
    if (!cfg) cfg = sl_props_new();
    assert_non_null(cfg);
    sluice_task_t *t = sl_task_new(svc, connector, NULL, counter_plugin(), cfg, id, count);
    assert_non_null(t);
    return t;
}

/* In a forked child: cmocka's handlers would catch a crash and carry on
 * running the remaining tests in the child; restore the default actions so a
 * crash ends the child. */
static void child_default_signals(void) {
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) signal(sigs[i], SIG_DFL);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------ */
/* Records                                                                   */
/* ------------------------------------------------------------------------ */

static void test_record_new_defaults(void **st) {
    (void)st;
    sluice_record_t *r = api()->record_new(NULL);
    assert_non_null(r);
    assert_null(api()->record_topic(r));
    size_t len = 99;
    assert_null(api()->record_key(r, &len));
    assert_int_equal(len, 0);
    assert_null(api()->record_value_avro(r, NULL));
    assert_null(api()->record_value_bytes(r, &len));
    assert_int_equal(len, 0);
    assert_int_equal(api()->record_timestamp(r), -1);
    assert_int_equal(api()->record_partition(r), -1);
    assert_int_equal(api()->record_offset(r), -1);
    assert_int_equal(api()->record_header_count(r), 0);
    assert_null(api()->record_header_at(r, 0, NULL, NULL));
    api()->record_free(r);
    api()->record_free(NULL); /* no-op */
}

static void test_record_topic_and_key(void **st) {
    (void)st;
    sluice_record_t *r = sl_record_new();
    assert_int_equal(sl_record_set_topic(r, "trades"), SLUICE_OK);
    assert_string_equal(r->topic, "trades");
    assert_int_equal(sl_record_set_topic(r, "other"), SLUICE_OK); /* replaces */
    assert_string_equal(api()->record_topic(r), "other");

    char topic[] = "copied";
    assert_int_equal(api()->record_set_topic(r, topic), SLUICE_OK);
    topic[0] = 'X'; /* the record holds a copy */
    assert_string_equal(api()->record_topic(r), "copied");

    size_t len = 0;
    assert_int_equal(sl_record_set_key(r, "k1", 2), SLUICE_OK);
    const void *k = api()->record_key(r, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(k, "k1", 2);

    /* binary key with a NUL inside, through the table */
    assert_int_equal(api()->record_set_key(r, "a\0b", 3), SLUICE_OK);
    k = api()->record_key(r, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(k, "a\0b", 3);

    /* NULL/0 = no key */
    assert_int_equal(api()->record_set_key(r, NULL, 0), SLUICE_OK);
    assert_null(api()->record_key(r, &len));
    assert_int_equal(len, 0);
    sl_record_free(r);
}

static void test_record_bytes_value(void **st) {
    (void)st;
    sluice_record_t *r = api()->record_new(NULL);
    char data[] = "raw\0payload";
    assert_int_equal(api()->record_set_value_bytes(r, data, sizeof(data)), SLUICE_OK);
    data[0] = 'X';
    size_t len = 0;
    const void *v = api()->record_value_bytes(r, &len);
    assert_int_equal(len, sizeof(data));
    assert_memory_equal(v, "raw\0payload", sizeof(data));
    assert_null(api()->record_value_avro(r, NULL));
    /* replaced by other bytes, then cleared */
    assert_int_equal(sl_record_set_value_bytes(r, "xy", 2), SLUICE_OK);
    v = api()->record_value_bytes(r, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(v, "xy", 2);
    assert_int_equal(sl_record_set_value_bytes(r, NULL, 0), SLUICE_OK);
    assert_null(api()->record_value_bytes(r, &len));
    assert_int_equal(len, 0);
    api()->record_free(r);
}

static void test_record_avro_value(void **st) {
    (void)st;
    avro_schema_t schema = trade_schema();
    int base = schema->refcount;
    sluice_record_t *r = api()->record_new(NULL);
    avro_value_t *v = NULL;
    assert_int_equal(api()->record_set_value_avro(r, schema, &v), SLUICE_OK);
    assert_non_null(v);
    assert_true(schema->refcount > base); /* the record holds a reference */
    fill_trade(v, "AAPL", 189.5, 100, "first");

    avro_schema_t got = NULL;
    avro_value_t *back = api()->record_value_avro(r, &got);
    assert_ptr_equal(back, v);
    assert_ptr_equal(got, schema);
    assert_string_equal(trade_sym(back), "AAPL");
    assert_int_equal(trade_qty(back), 100);
    size_t len = 7;
    assert_null(api()->record_value_bytes(r, &len));
    assert_int_equal(len, 0);

    /* the record's value outlives the caller's schema reference */
    int with_record = schema->refcount;
    avro_schema_decref(schema);
    assert_string_equal(trade_sym(api()->record_value_avro(r, NULL)), "AAPL");
    schema = avro_schema_incref(got);
    assert_int_equal(schema->refcount, with_record);

    /* a second Avro value replaces the first (its reference is released) */
    assert_int_equal(sl_record_set_value_avro(r, schema, &v), SLUICE_OK);
    assert_int_equal(schema->refcount, with_record);
    fill_trade(v, "MSFT", 1.0, 2, NULL);
    assert_string_equal(trade_sym(api()->record_value_avro(r, NULL)), "MSFT");
    api()->record_free(r);
    sl_record_iface_cache_clear(); /* the class cache holds a reference too */
    assert_int_equal(schema->refcount, base);
    avro_schema_decref(schema);
}

static void test_record_switch_value_kind(void **st) {
    (void)st;
    avro_schema_t schema = trade_schema();
    sluice_record_t *r = sl_record_new();
    avro_value_t *v;
    /* the schema's generic class is cached (with a reference) on first use */
    assert_int_equal(api()->record_set_value_avro(r, schema, &v), SLUICE_OK);
    assert_int_equal(api()->record_set_value_bytes(r, NULL, 0), SLUICE_OK);
    int base = schema->refcount;

    /* avro -> bytes: the Avro value and its references are released */
    assert_int_equal(api()->record_set_value_avro(r, schema, &v), SLUICE_OK);
    fill_trade(v, "IBM", 3.0, 4, "n");
    assert_int_equal(api()->record_set_value_bytes(r, "b1", 2), SLUICE_OK);
    assert_int_equal(schema->refcount, base);
    assert_null(api()->record_value_avro(r, NULL));
    assert_false(r->has_avro);
    size_t len;
    assert_memory_equal(api()->record_value_bytes(r, &len), "b1", 2);

    /* bytes -> avro: the bytes are freed */
    assert_int_equal(api()->record_set_value_avro(r, schema, &v), SLUICE_OK);
    assert_null(api()->record_value_bytes(r, &len));
    assert_int_equal(len, 0);
    assert_null(r->bytes);
    assert_non_null(api()->record_value_avro(r, NULL));

    /* avro -> no value (bytes NULL/0) */
    assert_int_equal(sl_record_set_value_bytes(r, NULL, 0), SLUICE_OK);
    assert_null(api()->record_value_avro(r, NULL));
    assert_int_equal(schema->refcount, base);

    /* take_value_bytes also drops an Avro value */
    assert_int_equal(sl_record_set_value_avro(r, schema, &v), SLUICE_OK);
    char *owned = malloc(3);
    memcpy(owned, "own", 3);
    sl_record_take_value_bytes(r, owned, 3);
    assert_int_equal(schema->refcount, base);
    assert_ptr_equal(api()->record_value_bytes(r, &len), owned);
    sl_record_free(r);
    avro_schema_decref(schema);
}

static void test_record_headers(void **st) {
    (void)st;
    sluice_record_t *r = api()->record_new(NULL);
    assert_int_equal(api()->record_add_header(r, "trace", "a", 1), SLUICE_OK);
    assert_int_equal(api()->record_add_header(r, "x-id", "12", 2), SLUICE_OK);
    assert_int_equal(sl_record_add_header(r, "trace", "bb", 2), SLUICE_OK);
    assert_int_equal(api()->record_add_header(r, "empty", NULL, 0), SLUICE_OK);
    assert_int_equal(api()->record_header_count(r), 4);

    const void *val = NULL;
    size_t len = 0;
    assert_string_equal(api()->record_header_at(r, 0, &val, &len), "trace");
    assert_int_equal(len, 1);
    assert_memory_equal(val, "a", 1);
    assert_string_equal(api()->record_header_at(r, 1, &val, &len), "x-id");
    assert_memory_equal(val, "12", 2);
    assert_string_equal(api()->record_header_at(r, 2, &val, &len), "trace");
    assert_memory_equal(val, "bb", 2);
    assert_string_equal(api()->record_header_at(r, 3, &val, &len), "empty");
    assert_int_equal(len, 0);
    assert_null(api()->record_header_at(r, 4, &val, &len));
    assert_null(api()->record_header_at(r, (size_t)-1, NULL, NULL));

    /* same name twice: the last one wins */
    val = sl_record_header(r, "trace", &len);
    assert_non_null(val);
    assert_int_equal(len, 2);
    assert_memory_equal(val, "bb", 2);
    val = sl_record_header(r, "x-id", &len);
    assert_memory_equal(val, "12", 2);
    assert_null(sl_record_header(r, "missing", &len));

    /* many headers (the array grows), values copied */
    for (int i = 0; i < 20; i++) {
        char name[16], value[16];
        snprintf(name, sizeof(name), "h%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        assert_int_equal(api()->record_add_header(r, name, value, strlen(value)), SLUICE_OK);
    }
    assert_int_equal(api()->record_header_count(r), 24);
    val = sl_record_header(r, "h17", &len);
    assert_int_equal(len, 3);
    assert_memory_equal(val, "v17", 3);
    assert_string_equal(api()->record_header_at(r, 23, NULL, NULL), "h19");
    api()->record_free(r);
}

static void test_record_source_position(void **st) {
    (void)st;
    sluice_record_t *r = api()->record_new(NULL);
    assert_int_equal(api()->record_set_source_position(r, "{\"symbol\":\"AAPL\"}", "{\"seq\":42}"),
                     SLUICE_OK);
    assert_string_equal(r->src_partition, "{\"symbol\":\"AAPL\"}");
    assert_string_equal(r->src_offset, "{\"seq\":42}");
    assert_int_equal(sl_record_set_source_position(r, " {}\n", "{ \"n\" : 1 }"), SLUICE_OK);
    assert_string_equal(r->src_partition, " {}\n");

    /* non-object JSON is refused; the previous position stays */
    static const char *const bad[] = {"[1,2]", "42", "\"str\"", "null", "", "{", "}", "  "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(api()->record_set_source_position(r, bad[i], "{\"n\":2}"),
                         SLUICE_ERR_INVALID_ARG);
        assert_int_equal(api()->record_set_source_position(r, "{\"p\":1}", bad[i]),
                         SLUICE_ERR_INVALID_ARG);
    }
    assert_string_equal(r->src_partition, " {}\n");
    assert_string_equal(r->src_offset, "{ \"n\" : 1 }");
    api()->record_free(r);
}

/* Regression (fixed bug in host/record.c, sl_record_set_source_position / looks_like_json_object):
 * plugin.h says both texts "must parse", but only the first and last
 * characters are checked, so '{garbage}' is accepted with SLUICE_OK. The
 * error shows up only at commit time (source_runner.c logs "source offset not
 * stored" and drops it), so the plugin cannot know its offsets are lost and a
 * restart replays everything since the last offset that was stored. */
static void test_record_source_position_must_parse(void **st) {
    (void)st;
    sluice_record_t *r = sl_record_new();
    sluice_err_t a = api()->record_set_source_position(r, "{not json}", "{\"n\":1}");
    sluice_err_t b = api()->record_set_source_position(r, "{\"p\":1}", "{\"n\":1,}");
    sluice_err_t c = api()->record_set_source_position(r, "{\"p\":1} {\"q\":2}", "{\"n\":1}");
    sl_record_free(r);
    assert_int_equal(a, SLUICE_ERR_INVALID_ARG);
    assert_int_equal(b, SLUICE_ERR_INVALID_ARG);
    assert_int_equal(c, SLUICE_ERR_INVALID_ARG);
}

static void test_record_timestamp(void **st) {
    (void)st;
    sluice_record_t *r = api()->record_new(NULL);
    assert_int_equal(api()->record_set_timestamp(r, INT64_C(1700000000123)), SLUICE_OK);
    assert_int_equal(api()->record_timestamp(r), INT64_C(1700000000123));
    assert_int_equal(sl_record_set_timestamp(r, 0), SLUICE_OK);
    assert_int_equal(api()->record_timestamp(r), 0);
    assert_int_equal(api()->record_set_timestamp(r, -2), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(api()->record_set_timestamp(r, INT64_MIN), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(api()->record_timestamp(r), 0); /* unchanged */
    assert_int_equal(api()->record_set_timestamp(r, -1), SLUICE_OK); /* unset */
    assert_int_equal(api()->record_timestamp(r), -1);
    api()->record_free(r);
}

/* ABI 1.1: a transform gives a new record the Kafka position of an input. */
static void test_record_kafka_position(void **st) {
    (void)st;
    const sluice_host_api_t *h = api();
    assert_true(SLUICE_HOST_HAS(h, record_set_kafka_position));
    sluice_record_t *r = h->record_new(NULL);
    assert_int_equal(h->record_partition(r), -1);
    assert_int_equal(h->record_offset(r), -1);
    assert_int_equal(h->record_set_kafka_position(r, "trades", 2, 41), SLUICE_OK);
    assert_string_equal(h->record_topic(r), "trades");
    assert_int_equal(h->record_partition(r), 2);
    assert_int_equal(h->record_offset(r), 41);
    assert_int_equal(h->record_set_kafka_position(r, NULL, 0, 1), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_set_kafka_position(r, "t", -1, 1), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_set_kafka_position(r, "t", 0, -1), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_set_kafka_position(NULL, "t", 0, 1), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_offset(r), 41); /* unchanged */
    h->record_free(r);
}

static void test_record_invalid_args(void **st) {
    (void)st;
    const sluice_host_api_t *h = api();
    avro_schema_t schema = trade_schema();
    avro_value_t *v = NULL;
    sluice_record_t *r = h->record_new(NULL);
    assert_int_equal(h->record_set_topic(r, "keep"), SLUICE_OK);
    assert_int_equal(h->record_set_key(r, "kk", 2), SLUICE_OK);
    assert_int_equal(h->record_set_value_bytes(r, "vv", 2), SLUICE_OK);

    /* NULL record, through the table and directly */
    assert_int_equal(h->record_set_topic(NULL, "t"), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_set_key(NULL, "k", 1), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_set_value_avro(NULL, schema, &v), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_set_value_bytes(NULL, "b", 1), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_set_timestamp(NULL, 1), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_add_header(NULL, "h", "v", 1), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_set_source_position(NULL, "{}", "{}"), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(sl_record_set_topic(NULL, "t"), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(sl_record_set_value_avro_iface(NULL, schema, NULL, &v),
                     SLUICE_ERR_INVALID_ARG);

    /* invalid arguments on a real record */
    assert_int_equal(h->record_set_topic(r, NULL), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_set_topic(r, ""), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_set_key(r, NULL, 5), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_set_value_bytes(r, NULL, 3), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_set_value_avro(r, NULL, &v), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(sl_record_set_value_avro_iface(r, schema, NULL, &v), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_add_header(r, NULL, "v", 1), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_add_header(r, "h", NULL, 4), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_set_source_position(r, NULL, "{}"), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->record_set_source_position(r, "{}", NULL), SLUICE_ERR_INVALID_ARG);

    /* nothing changed */
    size_t len;
    assert_string_equal(h->record_topic(r), "keep");
    assert_memory_equal(h->record_key(r, &len), "kk", 2);
    assert_memory_equal(h->record_value_bytes(r, &len), "vv", 2);
    assert_null(h->record_value_avro(r, NULL));
    assert_int_equal(h->record_header_count(r), 0);
    assert_null(r->src_partition);
    h->record_free(r);
    avro_schema_decref(schema);
}

/* ------------------------------------------------------------------------ */
/* Converters                                                                */
/* ------------------------------------------------------------------------ */

typedef struct conv_fixture {
    sl_schemas_t *schemas;
    sl_props_t *props;
    sl_converter_t c;
    char err[512];
} conv_fixture_t;

static int conv_setup(void **st) {
    conv_fixture_t *f = calloc(1, sizeof(*f));
    if (!f) return -1;
    f->schemas = sl_schemas_new(g_dir);
    f->props = sl_props_new();
    *st = f;
    return f->schemas && f->props ? 0 : -1;
}

static int conv_teardown(void **st) {
    conv_fixture_t *f = *st;
    sl_converter_destroy(&f->c);
    sl_props_free(f->props);
    sl_schemas_free(f->schemas);
    free(f);
    return 0;
}

/* Sets "value.converter" + each key=value pair (NULL-terminated) and inits. */
static int conv_init(conv_fixture_t *f, const char *kind, ...) {
    if (kind) sl_props_set(f->props, "value.converter", kind);
    va_list ap;
    va_start(ap, kind);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        sl_props_set(f->props, k, v);
    }
    va_end(ap);
    f->err[0] = '\0';
    return sl_converter_init(&f->c, "value.converter", f->props, NULL, "bytes", f->schemas,
                             f->err, sizeof(f->err));
}

/* A record holding a filled Trade value. */
static sluice_record_t *trade_record(const char *sym, double price, int64_t qty,
                                     const char *note) {
    avro_schema_t schema = trade_schema();
    sluice_record_t *r = sl_record_new();
    avro_value_t *v;
    assert_int_equal(sl_record_set_value_avro(r, schema, &v), SLUICE_OK);
    fill_trade(v, sym, price, qty, note);
    avro_schema_decref(schema);
    return r;
}

static void test_converter_avro_raw_roundtrip(void **st) {
    conv_fixture_t *f = *st;
    assert_int_equal(conv_init(f, "avro", "value.converter.schema", "trade", NULL), 0);
    assert_int_equal(f->c.kind, SL_CONV_AVRO);
    assert_false(f->c.confluent);
    assert_non_null(f->c.schema);

    sluice_record_t *in = trade_record("AAPL", 189.25, 300, "hello");
    void *bytes = NULL;
    size_t len = 0;
    assert_int_equal(sl_converter_encode(&f->c, in, &bytes, &len, f->err, sizeof(f->err)),
                     SLUICE_OK);
    assert_non_null(bytes);
    /* raw Avro: string length 4 zig-zag = 8, then "AAPL" */
    assert_true(len > 5);
    assert_int_equal(((unsigned char *)bytes)[0], 8);
    assert_memory_equal((char *)bytes + 1, "AAPL", 4);

    sluice_record_t *out = sl_record_new();
    assert_int_equal(sl_converter_decode(&f->c, bytes, len, out, f->err, sizeof(f->err)),
                     SLUICE_OK);
    avro_value_t *a = api()->record_value_avro(in, NULL);
    avro_value_t *b = api()->record_value_avro(out, NULL);
    assert_non_null(b);
    assert_true(avro_value_equal(a, b));
    assert_null(api()->record_value_bytes(out, NULL));

    /* a different value is not equal (the comparison can fail) */
    sluice_record_t *other = trade_record("AAPL", 189.25, 301, "hello");
    assert_false(avro_value_equal(a, api()->record_value_avro(other, NULL)));
    sl_record_free(other);

    /* bytes left over after the datum: another schema's data, refused */
    char *longer = malloc(len + 3);
    memcpy(longer, bytes, len);
    memcpy(longer + len, "xyz", 3);
    sluice_record_t *bad = sl_record_new();
    assert_int_equal(sl_converter_decode(&f->c, longer, len + 3, bad, f->err, sizeof(f->err)),
                     SLUICE_ERR_BAD_RECORD);
    assert_non_null(strstr(f->err, "3 trailing byte(s)"));
    size_t kept = 0;
    assert_non_null(api()->record_value_bytes(bad, &kept));
    assert_int_equal(kept, len + 3);
    sl_record_free(bad);
    free(longer);
    free(bytes);
    sl_record_free(in);
    sl_record_free(out);
}

static void test_converter_confluent_wire_format(void **st) {
    conv_fixture_t *f = *st;
    assert_int_equal(conv_init(f, "avro", "value.converter.schema", "trade",
                               "value.converter.wire.format", "confluent",
                               "value.converter.schema.id", "16909060", /* 0x01020304 */
                               NULL),
                     0);
    assert_true(f->c.confluent);
    assert_int_equal(f->c.schema_id, 0x01020304);

    sluice_record_t *in = trade_record("IBM", 1.5, 7, NULL);
    void *bytes = NULL;
    size_t len = 0;
    assert_int_equal(sl_converter_encode(&f->c, in, &bytes, &len, f->err, sizeof(f->err)),
                     SLUICE_OK);
    const unsigned char *p = bytes;
    assert_true(len > 5);
    assert_int_equal(p[0], 0);
    assert_int_equal(p[1], 0x01);
    assert_int_equal(p[2], 0x02);
    assert_int_equal(p[3], 0x03);
    assert_int_equal(p[4], 0x04);
    assert_int_equal(p[5], 6); /* "IBM": zig-zag 3 */
    assert_memory_equal(p + 6, "IBM", 3);

    sluice_record_t *out = sl_record_new();
    assert_int_equal(sl_converter_decode(&f->c, bytes, len, out, f->err, sizeof(f->err)),
                     SLUICE_OK);
    assert_true(avro_value_equal(api()->record_value_avro(in, NULL),
                                 api()->record_value_avro(out, NULL)));

    /* no magic byte: refused */
    unsigned char *bad = malloc(len);
    memcpy(bad, bytes, len);
    bad[0] = 1;
    sluice_record_t *r2 = sl_record_new();
    f->err[0] = '\0';
    assert_int_equal(sl_converter_decode(&f->c, bad, len, r2, f->err, sizeof(f->err)),
                     SLUICE_ERR_BAD_RECORD);
    assert_non_null(strstr(f->err, "magic"));
    /* shorter than the 5-byte header */
    f->err[0] = '\0';
    assert_int_equal(sl_converter_decode(&f->c, "\0\0\0", 3, r2, f->err, sizeof(f->err)),
                     SLUICE_ERR_BAD_RECORD);
    assert_non_null(strstr(f->err, "magic"));
    sl_record_free(r2);
    free(bad);
    free(bytes);
    sl_record_free(in);
    sl_record_free(out);
}

/* Regression (fixed bug in host/converter.c, decode_avro): when a confluent-framed payload fails
 * to decode, the raw bytes kept for the dead-letter queue are
 * sl_record_set_value_bytes(rec, data, len) with len already reduced by the
 * 5-byte header while data still points at the frame start: the record keeps
 * the first len-5 bytes, i.e. the payload loses its last 5 bytes. */
static void test_converter_confluent_decode_error_keeps_payload(void **st) {
    conv_fixture_t *f = *st;
    assert_int_equal(conv_init(f, "avro", "value.converter.schema", "trade",
                               "value.converter.wire.format", "confluent", NULL),
                     0);
    /* header, then a truncated varint (the string length). (A string cut
     * short would do too, but libavro leaks the string buffer then.) */
    static const unsigned char frame[] = {0, 0, 0, 0, 1, 0x80, 0x80, 0x80};
    sluice_record_t *r = sl_record_new();
    assert_int_equal(sl_converter_decode(&f->c, frame, sizeof(frame), r, f->err, sizeof(f->err)),
                     SLUICE_ERR_BAD_RECORD);
    assert_true(f->err[0] != '\0');
    size_t len = 0;
    const void *kept = api()->record_value_bytes(r, &len);
    size_t kept_len = len;
    int same = kept && len == sizeof(frame) && memcmp(kept, frame, len) == 0;
    sl_record_free(r);
    if (!same)
        fail_msg("kept %zu bytes for the DLQ, want the whole %zu-byte payload", kept_len,
                 sizeof(frame));
}

/* Regression (fixed bug in host/converter.c, decode_avro): a payload without the confluent magic
 * byte is refused with BAD_RECORD but the raw bytes are not kept as the
 * record's value (every other decode failure keeps them "for the DLQ"), so
 * the dead-letter record of such a message would carry no payload. */
static void test_converter_confluent_no_magic_keeps_payload(void **st) {
    conv_fixture_t *f = *st;
    assert_int_equal(conv_init(f, "io.confluent.connect.avro.AvroConverter",
                               "value.converter.schema", "trade", NULL),
                     0);
    static const unsigned char plain[] = {'{', '"', 'a', '"', ':', '1', '}'};
    sluice_record_t *r = sl_record_new();
    assert_int_equal(sl_converter_decode(&f->c, plain, sizeof(plain), r, f->err, sizeof(f->err)),
                     SLUICE_ERR_BAD_RECORD);
    size_t len = 0;
    const void *kept = api()->record_value_bytes(r, &len);
    int same = kept && len == sizeof(plain) && memcmp(kept, plain, len) == 0;
    sl_record_free(r);
    assert_true(same);
}

static void test_converter_avro_decode_errors(void **st) {
    conv_fixture_t *f = *st;
    /* avro without a schema can encode (the record has its own schema) but
     * cannot decode */
    assert_int_equal(conv_init(f, "avro", NULL), 0);
    assert_null(f->c.schema);
    sluice_record_t *r = sl_record_new();
    assert_int_equal(sl_converter_decode(&f->c, "\x02x", 2, r, f->err, sizeof(f->err)),
                     SLUICE_ERR_BAD_RECORD);
    assert_non_null(strstr(f->err, "schema"));
    sl_record_free(r);
    sl_converter_destroy(&f->c);

    /* raw: truncated payload is refused, the raw bytes are kept */
    sl_props_unset(f->props, "value.converter");
    assert_int_equal(conv_init(f, "avro", "value.converter.schema", "trade", NULL), 0);
    static const unsigned char trunc[] = {0x80, 0x80}; /* truncated varint */
    r = sl_record_new();
    assert_int_equal(sl_converter_decode(&f->c, trunc, sizeof(trunc), r, f->err, sizeof(f->err)),
                     SLUICE_ERR_BAD_RECORD);
    assert_true(f->err[0] != '\0');
    assert_null(api()->record_value_avro(r, NULL));
    size_t len = 0;
    const void *kept = api()->record_value_bytes(r, &len);
    assert_int_equal(len, sizeof(trunc));
    assert_memory_equal(kept, trunc, sizeof(trunc));

    /* hostile lengths (found by tests/fuzz/fuzz_avro.c): a negative string
     * length, one far past the end, and a truncated string are refused
     * without a huge allocation (ASan aborts on one) or a leak (LSan) */
    static const struct { unsigned char b[12]; size_t n; } hostile[] = {
        {{0x35, 'A', 'A'}, 3},                              /* length -27 */
        {{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 'A'}, 8}, /* 2^41 / 2 */
        {{0x5a, 'A', 'B', 'C'}, 4},                         /* 45, 3 there */
        {{0x02, 'A', 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x02, 0x35}, 12}, /* note: -27 */
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        sluice_record_t *h = sl_record_new();
        assert_int_equal(sl_converter_decode(&f->c, hostile[i].b, hostile[i].n, h, f->err,
                                             sizeof(f->err)),
                         SLUICE_ERR_BAD_RECORD);
        assert_true(f->err[0] != '\0');
        sl_record_free(h);
    }

    /* a NULL payload leaves the value null */
    sluice_record_t *n = sl_record_new();
    assert_int_equal(sl_converter_decode(&f->c, NULL, 0, n, f->err, sizeof(f->err)), SLUICE_OK);
    assert_null(api()->record_value_avro(n, NULL));
    assert_null(api()->record_value_bytes(n, NULL));
    sl_record_free(n);
    sl_record_free(r);
}

static void test_converter_json_encode(void **st) {
    conv_fixture_t *f = *st;
    assert_int_equal(conv_init(f, "json", NULL), 0);
    assert_int_equal(f->c.kind, SL_CONV_JSON);
    sluice_record_t *in = trade_record("AAPL", 2.5, 10, "hi");
    char *want = NULL;
    assert_int_equal(avro_value_to_json(api()->record_value_avro(in, NULL), 1, &want), 0);

    void *out = NULL;
    size_t len = 0;
    assert_int_equal(sl_converter_encode(&f->c, in, &out, &len, f->err, sizeof(f->err)),
                     SLUICE_OK);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(out, want, len);

    /* it is JSON with the values (union tagged as Avro JSON does) */
    json_error_t je;
    json_t *doc = json_loadb(out, len, 0, &je);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "sym")), "AAPL");
    assert_int_equal(json_integer_value(json_object_get(doc, "qty")), 10);
    assert_float_equal(json_number_value(json_object_get(doc, "price")), 2.5, 1e-12);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "note"), "string")), "hi");
    json_decref(doc);
    free(out);
    free(want);

    /* the string converter writes the same JSON text */
    sl_converter_destroy(&f->c);
    assert_int_equal(conv_init(f, "string", NULL), 0);
    assert_int_equal(sl_converter_encode(&f->c, in, &out, &len, f->err, sizeof(f->err)),
                     SLUICE_OK);
    assert_non_null(strstr(out, "\"AAPL\""));
    free(out);
    sl_record_free(in);
}

static void test_converter_json_decode_with_schema(void **st) {
    conv_fixture_t *f = *st;
    assert_int_equal(conv_init(f, "json", "value.converter.schema", "trade", NULL), 0);
    assert_non_null(f->c.schema);

    /* plain JSON (bare null for the union) */
    const char *text = "{\"sym\":\"MSFT\",\"price\":2.25,\"qty\":7,\"note\":null}";
    sluice_record_t *r = sl_record_new();
    assert_int_equal(sl_converter_decode(&f->c, text, strlen(text), r, f->err, sizeof(f->err)),
                     SLUICE_OK);
    sluice_record_t *want = trade_record("MSFT", 2.25, 7, NULL);
    avro_schema_t schema = NULL;
    avro_value_t *v = api()->record_value_avro(r, &schema);
    assert_non_null(v);
    assert_ptr_equal(schema, f->c.schema);
    assert_true(avro_value_equal(v, api()->record_value_avro(want, NULL)));
    assert_null(api()->record_value_bytes(r, NULL));
    sl_record_free(want);

    /* json encode -> json decode round trip (tagged union) */
    sluice_record_t *in = trade_record("GOOG", -3.75, 1, "tagged");
    void *bytes = NULL;
    size_t len = 0;
    assert_int_equal(sl_converter_encode(&f->c, in, &bytes, &len, f->err, sizeof(f->err)),
                     SLUICE_OK);
    sluice_record_t *back = sl_record_new();
    assert_int_equal(sl_converter_decode(&f->c, bytes, len, back, f->err, sizeof(f->err)),
                     SLUICE_OK);
    assert_true(avro_value_equal(api()->record_value_avro(in, NULL),
                                 api()->record_value_avro(back, NULL)));
    free(bytes);
    sl_record_free(in);
    sl_record_free(back);
    sl_record_free(r);
}

static void test_converter_json_decode_errors_keep_bytes(void **st) {
    conv_fixture_t *f = *st;
    assert_int_equal(conv_init(f, "json", "value.converter.schema", "trade", NULL), 0);

    /* invalid JSON: BAD_RECORD, the raw payload becomes the bytes value */
    const char *broken = "{\"sym\": \"AAPL\", ";
    sluice_record_t *r = sl_record_new();
    f->err[0] = '\0';
    assert_int_equal(sl_converter_decode(&f->c, broken, strlen(broken), r, f->err,
                                         sizeof(f->err)),
                     SLUICE_ERR_BAD_RECORD);
    assert_true(f->err[0] != '\0');
    assert_null(api()->record_value_avro(r, NULL));
    size_t len = 0;
    const void *kept = api()->record_value_bytes(r, &len);
    assert_int_equal(len, strlen(broken));
    assert_memory_equal(kept, broken, len);
    sl_record_free(r);

    /* valid JSON that does not fit the schema: the error names the field */
    const char *wrong = "{\"sym\":5,\"price\":1.0,\"qty\":1,\"note\":null}";
    r = sl_record_new();
    f->err[0] = '\0';
    assert_int_equal(sl_converter_decode(&f->c, wrong, strlen(wrong), r, f->err, sizeof(f->err)),
                     SLUICE_ERR_BAD_RECORD);
    assert_non_null(strstr(f->err, "sym"));
    kept = api()->record_value_bytes(r, &len);
    assert_int_equal(len, strlen(wrong));
    assert_memory_equal(kept, wrong, len);
    assert_null(api()->record_value_avro(r, NULL));
    sl_record_free(r);
}

static void test_converter_passthrough(void **st) {
    conv_fixture_t *f = *st;
    static const char *const kinds[] = {"string", "bytes", "json" /* no schema */};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        sl_converter_destroy(&f->c);
        assert_int_equal(conv_init(f, kinds[i], NULL), 0);
        const char payload[] = "not {json} \x01\x02";
        sluice_record_t *r = sl_record_new();
        assert_int_equal(sl_converter_decode(&f->c, payload, sizeof(payload), r, f->err,
                                             sizeof(f->err)),
                         SLUICE_OK);
        size_t len = 0;
        const void *v = api()->record_value_bytes(r, &len);
        assert_int_equal(len, sizeof(payload));
        assert_memory_equal(v, payload, len);
        assert_null(api()->record_value_avro(r, NULL));

        void *out = NULL;
        size_t olen = 0;
        assert_int_equal(sl_converter_encode(&f->c, r, &out, &olen, f->err, sizeof(f->err)),
                         SLUICE_OK);
        assert_int_equal(olen, sizeof(payload));
        assert_memory_equal(out, payload, olen);
        assert_ptr_not_equal(out, v); /* a copy */
        free(out);

        /* a null value encodes to NULL/0 */
        assert_int_equal(sl_record_set_value_bytes(r, NULL, 0), SLUICE_OK);
        out = (void *)1;
        olen = 7;
        assert_int_equal(sl_converter_encode(&f->c, r, &out, &olen, f->err, sizeof(f->err)),
                         SLUICE_OK);
        assert_null(out);
        assert_int_equal(olen, 0);
        sl_record_free(r);
    }
}

static void test_converter_bytes_refuses_avro(void **st) {
    conv_fixture_t *f = *st;
    assert_int_equal(conv_init(f, "bytes", NULL), 0);
    assert_int_equal(f->c.kind, SL_CONV_BYTES);
    sluice_record_t *in = trade_record("AAPL", 1, 1, NULL);
    void *out = (void *)1;
    size_t len = 5;
    f->err[0] = '\0';
    assert_int_equal(sl_converter_encode(&f->c, in, &out, &len, f->err, sizeof(f->err)),
                     SLUICE_ERR_BAD_RECORD);
    assert_null(out);
    assert_int_equal(len, 0);
    assert_non_null(strstr(f->err, "bytes"));
    sl_record_free(in);
}

static void test_converter_config_errors(void **st) {
    conv_fixture_t *f = *st;
    /* unknown converter: the error names the key and the value */
    assert_int_equal(conv_init(f, "protobuf", NULL), -1);
    assert_non_null(strstr(f->err, "value.converter"));
    assert_non_null(strstr(f->err, "protobuf"));

    /* missing schema file: names the key and the file */
    assert_int_equal(conv_init(f, "avro", "value.converter.schema", "nosuchschema", NULL), -1);
    assert_non_null(strstr(f->err, "value.converter.schema"));
    assert_non_null(strstr(f->err, "nosuchschema.avsc"));
    assert_null(f->c.schema);

    /* schema that is not Avro */
    assert_int_equal(conv_init(f, "avro", "value.converter.schema", "notavro", NULL), -1);
    assert_non_null(strstr(f->err, "value.converter.schema"));
    sl_props_unset(f->props, "value.converter.schema");

    /* wire format and schema id are checked */
    assert_int_equal(conv_init(f, "avro", "value.converter.wire.format", "xml", NULL), -1);
    assert_non_null(strstr(f->err, "value.converter.wire.format"));
    sl_props_unset(f->props, "value.converter.wire.format");
    static const char *const bad_ids[] = {"abc", "-1", "2147483648", "1.5"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        assert_int_equal(conv_init(f, "avro", "value.converter.schema.id", bad_ids[i], NULL), -1);
        assert_non_null(strstr(f->err, "value.converter.schema.id"));
    }
    assert_int_equal(conv_init(f, "avro", "value.converter.schema.id", "2147483647", NULL), 0);
    assert_int_equal(f->c.schema_id, INT32_MAX);
}

static void test_converter_class_names_and_fallbacks(void **st) {
    conv_fixture_t *f = *st;
    static const struct {
        const char *name;
        sl_conv_kind_t kind;
        int confluent;
    } cases[] = {
        {"io.confluent.connect.avro.AvroConverter", SL_CONV_AVRO, 1},
        {"org.apache.kafka.connect.json.JsonConverter", SL_CONV_JSON, 0},
        {"org.apache.kafka.connect.storage.StringConverter", SL_CONV_STRING, 0},
        {"org.apache.kafka.connect.converters.ByteArrayConverter", SL_CONV_BYTES, 0},
        {"avro", SL_CONV_AVRO, 0},
        {"json", SL_CONV_JSON, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sl_converter_destroy(&f->c);
        assert_int_equal(conv_init(f, cases[i].name, NULL), 0);
        assert_int_equal(f->c.kind, cases[i].kind);
        assert_int_equal(f->c.confluent, cases[i].confluent);
    }
    sl_converter_destroy(&f->c);

    /* Confluent class + schema id writes the framed format */
    assert_int_equal(conv_init(f, "io.confluent.connect.avro.AvroConverter",
                               "value.converter.schema.id", "7", NULL),
                     0);
    sluice_record_t *in = trade_record("X", 0, 0, NULL);
    void *out = NULL;
    size_t len = 0;
    assert_int_equal(sl_converter_encode(&f->c, in, &out, &len, f->err, sizeof(f->err)),
                     SLUICE_OK);
    assert_memory_equal(out, "\0\0\0\0\x07", 5);
    free(out);
    sl_record_free(in);
    sl_converter_destroy(&f->c);

    /* unset: worker props, then the default kind */
    sl_props_unset(f->props, "value.converter");
    sl_props_unset(f->props, "value.converter.schema.id");
    sl_props_t *worker = sl_props_new();
    sl_props_set(worker, "value.converter", "json");
    sl_props_set(worker, "value.converter.schema", "trade");
    assert_int_equal(sl_converter_init(&f->c, "value.converter", f->props, worker, "bytes",
                                       f->schemas, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(f->c.kind, SL_CONV_JSON);
    assert_non_null(f->c.schema);
    sl_converter_destroy(&f->c);
    /* the connector's own value wins over the worker's */
    sl_props_set(f->props, "value.converter", "string");
    assert_int_equal(sl_converter_init(&f->c, "value.converter", f->props, worker, "bytes",
                                       f->schemas, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(f->c.kind, SL_CONV_STRING);
    sl_converter_destroy(&f->c);
    sl_props_unset(f->props, "value.converter");
    assert_int_equal(sl_converter_init(&f->c, "value.converter", f->props, NULL, "string",
                                       f->schemas, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(f->c.kind, SL_CONV_STRING);
    sl_props_free(worker);
}

/* ------------------------------------------------------------------------ */
/* Offset store                                                              */
/* ------------------------------------------------------------------------ */

static void test_offsets_put_get_normalized(void **st) {
    (void)st;
    char err[512] = "";
    sl_offset_store_t *s = sl_offset_store_open(NULL, err, sizeof(err));
    assert_non_null(s);
    assert_null(sl_offset_store_get(s, "c1", "{\"a\":2}"));
    assert_int_equal(sl_offset_store_put(s, "c1", "{\"b\":1,\"a\":2}", "{\"seq\":10}"), 0);

    char *got = sl_offset_store_get(s, "c1", "{\"a\":2,\"b\":1}");
    assert_non_null(got);
    json_t *j = json_loads(got, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 10);
    json_decref(j);
    free(got);
    got = sl_offset_store_get(s, "c1", " { \"b\" : 1 , \"a\" : 2 } ");
    assert_non_null(got);
    free(got);

    /* same partition, other connector: separate; other partition: absent */
    assert_null(sl_offset_store_get(s, "c2", "{\"a\":2,\"b\":1}"));
    assert_null(sl_offset_store_get(s, "c1", "{\"a\":2}"));

    /* overwrite via the other key order */
    assert_int_equal(sl_offset_store_put(s, "c1", "{\"a\":2,\"b\":1}", "{\"seq\":11}"), 0);
    got = sl_offset_store_get(s, "c1", "{\"b\":1,\"a\":2}");
    assert_non_null(strstr(got, "11"));
    free(got);

    /* non-object JSON refused (partition or offset), get of garbage is NULL */
    assert_int_equal(sl_offset_store_put(s, "c1", "[1]", "{\"seq\":1}"), -1);
    assert_int_equal(sl_offset_store_put(s, "c1", "{\"p\":1}", "5"), -1);
    assert_int_equal(sl_offset_store_put(s, "c1", "{not json", "{\"seq\":1}"), -1);
    assert_int_equal(sl_offset_store_put(s, "c1", "{\"p\":1}", "{\"n\":"), -1);
    assert_null(sl_offset_store_get(s, "c1", "[1]"));
    assert_null(sl_offset_store_get(s, "c1", "{\"p\":1}"));

    /* memory only: flush succeeds and writes nothing */
    assert_int_equal(sl_offset_store_flush(s, err, sizeof(err)), 0);
    sl_offset_store_free(s);
}

static void test_offsets_flush_and_reload(void **st) {
    (void)st;
    char path[512], err[512] = "";
    dir_file(path, sizeof(path), "offsets.json");
    unlink(path);
    sl_offset_store_t *s = sl_offset_store_open(path, err, sizeof(err)); /* no file yet */
    assert_non_null(s);
    assert_int_equal(sl_offset_store_put(s, "conn", "{\"z\":1,\"y\":{\"b\":2,\"a\":1}}",
                                         "{\"n\":41}"),
                     0);
    assert_int_equal(sl_offset_store_put(s, "conn", "{\"task\":1}", "{\"n\":7}"), 0);
    assert_int_equal(access(path, F_OK), -1); /* nothing written before flush */
    assert_int_equal(sl_offset_store_flush(s, err, sizeof(err)), 0);
    assert_int_equal(access(path, F_OK), 0);
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1); /* renamed into place */
    sl_offset_store_free(s);

    /* the file is a JSON object keyed by ["connector", {partition}] */
    char *text = slurp_path(path);
    assert_non_null(text);
    json_t *doc = json_loads(text, 0, NULL);
    assert_true(json_is_object(doc));
    assert_int_equal(json_object_size(doc), 2);
    json_decref(doc);
    free(text);

    s = sl_offset_store_open(path, err, sizeof(err));
    assert_non_null(s);
    char *got = sl_offset_store_get(s, "conn", "{\"y\":{\"a\":1,\"b\":2},\"z\":1}");
    assert_non_null(got);
    assert_string_equal(got, "{\"n\":41}");
    free(got);
    got = sl_offset_store_get(s, "conn", "{\"task\":1}");
    assert_string_equal(got, "{\"n\":7}");
    free(got);
    sl_offset_store_free(s);

    /* flush into a directory that does not exist: error naming the path */
    char bad[600];
    snprintf(bad, sizeof(bad), "%s/no/such/dir/offsets.json", g_dir);
    s = sl_offset_store_open(bad, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(sl_offset_store_put(s, "c", "{}", "{}"), 0);
    err[0] = '\0';
    assert_int_equal(sl_offset_store_flush(s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "offsets.json"));
    sl_offset_store_free(s);
    unlink(path);
}

static void test_offsets_corrupt_file(void **st) {
    (void)st;
    char path[512], err[512];
    dir_file(path, sizeof(path), "corrupt-offsets.json");
    static const char *const bad[] = {"{not json", "[1,2,3]", "", "42"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_text(path, bad[i]);
        err[0] = '\0';
        sl_offset_store_t *s = sl_offset_store_open(path, err, sizeof(err));
        if (s) {
            sl_offset_store_free(s);
            fail_msg("corrupt offset file '%s' was accepted", bad[i]);
        }
        assert_non_null(strstr(err, path));
        assert_non_null(strstr(err, "corrupt"));
    }
    unlink(path);
}

/* ------------------------------------------------------------------------ */
/* Metrics                                                                   */
/* ------------------------------------------------------------------------ */

static void test_metrics_get_or_create(void **st) {
    (void)st;
    sl_metrics_t *m = sl_metrics_new();
    sluice_metric_t *a = sl_metrics_get(m, SL_METRIC_COUNTER, "recs", "Records", "c1", 0);
    assert_non_null(a);
    assert_ptr_equal(sl_metrics_get(m, SL_METRIC_COUNTER, "recs", "other help", "c1", 0), a);
    /* kind conflict */
    assert_null(sl_metrics_get(m, SL_METRIC_GAUGE, "recs", "Records", "c1", 0));
    /* other task / connector / worker level: distinct */
    sluice_metric_t *b = sl_metrics_get(m, SL_METRIC_COUNTER, "recs", "Records", "c1", 1);
    sluice_metric_t *c = sl_metrics_get(m, SL_METRIC_COUNTER, "recs", "Records", "c2", 0);
    sluice_metric_t *w = sl_metrics_get(m, SL_METRIC_COUNTER, "recs", "Records", NULL, -1);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(w);
    assert_ptr_not_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_ptr_not_equal(a, w);
    assert_ptr_equal(sl_metrics_get(m, SL_METRIC_COUNTER, "recs", NULL, NULL, -1), w);
    /* invalid */
    assert_null(sl_metrics_get(m, SL_METRIC_COUNTER, "", "x", "c1", 0));
    assert_null(sl_metrics_get(m, SL_METRIC_COUNTER, NULL, "x", "c1", 0));
    assert_null(sl_metrics_get(NULL, SL_METRIC_COUNTER, "x", "x", "c1", 0));

    /* gauge get-or-create too */
    sluice_metric_t *g = sl_metrics_get(m, SL_METRIC_GAUGE, "lag", "Lag", "c1", 0);
    assert_ptr_equal(sl_metrics_get(m, SL_METRIC_GAUGE, "lag", "Lag", "c1", 0), g);
    assert_null(sl_metrics_get(m, SL_METRIC_COUNTER, "lag", "Lag", "c1", 0));

    /* many metrics (the list grows): earlier pointers stay valid */
    for (int i = 0; i < 100; i++) {
        char name[32];
        snprintf(name, sizeof(name), "m%d", i);
        assert_non_null(sl_metrics_get(m, SL_METRIC_GAUGE, name, "", "c9", i));
    }
    sl_metric_add(a, 1);
    assert_ptr_equal(sl_metrics_get(m, SL_METRIC_COUNTER, "recs", "Records", "c1", 0), a);
    assert_float_equal(sl_metric_value(a), 1, 0);
    sl_metrics_free(m);
}

static void test_metrics_values_and_sum(void **st) {
    (void)st;
    sl_metrics_t *m = sl_metrics_new();
    sluice_metric_t *a = sl_metrics_get(m, SL_METRIC_COUNTER, "recs", "", "c1", 0);
    sluice_metric_t *b = sl_metrics_get(m, SL_METRIC_COUNTER, "recs", "", "c1", 1);
    sluice_metric_t *c = sl_metrics_get(m, SL_METRIC_COUNTER, "recs", "", "c2", 0);
    sluice_metric_t *g = sl_metrics_get(m, SL_METRIC_GAUGE, "lag", "", "c1", 0);
    assert_float_equal(sl_metric_value(a), 0, 0);
    sl_metric_add(a, 2);
    sl_metric_add(a, 0.5);
    api()->metric_add(b, 3);
    sl_metric_add(c, 10);
    assert_float_equal(sl_metric_value(a), 2.5, 1e-12);
    sl_metric_set(g, 42);
    api()->metric_set(g, 17);
    assert_float_equal(sl_metric_value(g), 17, 0);
    api()->metric_add(g, -7);
    assert_float_equal(sl_metric_value(g), 10, 0);
    /* NULL metric: no-ops */
    sl_metric_add(NULL, 1);
    sl_metric_set(NULL, 1);
    assert_float_equal(sl_metric_value(NULL), 0, 0);

    assert_float_equal(sl_metrics_sum(m, "recs", "c1"), 5.5, 1e-12);
    assert_float_equal(sl_metrics_sum(m, "recs", "c2"), 10, 0);
    assert_float_equal(sl_metrics_sum(m, "recs", NULL), 15.5, 1e-12);
    assert_float_equal(sl_metrics_sum(m, "recs", "c3"), 0, 0);
    assert_float_equal(sl_metrics_sum(m, "nothing", NULL), 0, 0);
    assert_float_equal(sl_metrics_sum(m, "lag", "c1"), 10, 0);
    sl_metrics_free(m);
}

__attribute__((noinline)) static char *metrics_text(sl_metrics_t *m) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    sl_metrics_write(m, f);
    fclose(f);
    return buf;
}

/* Histograms: Prometheus exposition with cumulative _bucket{le}, _sum, _count. */
static void test_metrics_histogram(void **st) {
    (void)st;
    sl_metrics_t *m = sl_metrics_new();
    const double b[] = {1, 10, 100};
    sluice_metric_t *h = sl_metrics_histogram(m, "batch", "Batch", "c1", 0, b, 3);
    assert_non_null(h);
    assert_ptr_equal(sl_metrics_histogram(m, "batch", "Batch", "c1", 0, b, 3), h);
    assert_null(sl_metrics_get(m, SL_METRIC_COUNTER, "batch", "x", "c1", 0)); /* kind */
    assert_null(sl_metrics_get(m, SL_METRIC_HISTOGRAM, "batch", "x", "c1", 0)); /* no bounds */
    const double bad[] = {10, 1};
    assert_null(sl_metrics_histogram(m, "bad", "", "c1", 0, bad, 2));
    assert_null(sl_metrics_histogram(m, "bad", "", "c1", 0, b, 0));
    sl_metric_observe(h, 1);  /* le=1 (bounds are inclusive) */
    sl_metric_observe(h, 5);  /* le=10 */
    sl_metric_observe(h, 50); /* le=100 */
    sl_metric_add(h, 500);    /* +Inf: add on a histogram observes */
    assert_float_equal(sl_metric_value(h), 4, 0);
    sluice_metric_t *c = sl_metrics_get(m, SL_METRIC_COUNTER, "recs", "", "c1", 0);
    sl_metric_observe(c, 3); /* no-op on a counter */
    assert_float_equal(sl_metric_value(c), 0, 0);
    sl_metric_observe(sl_metrics_histogram(m, "lat", "", NULL, -1, b, 3), 0.5); /* worker level */
    char *text = metrics_text(m);
    assert_true(has_line(text, "# TYPE sluice_batch histogram"));
    assert_true(has_line(text, "sluice_batch_bucket{connector=\"c1\",task=\"0\",le=\"1\"} 1"));
    assert_true(has_line(text, "sluice_batch_bucket{connector=\"c1\",task=\"0\",le=\"10\"} 2"));
    assert_true(has_line(text, "sluice_batch_bucket{connector=\"c1\",task=\"0\",le=\"100\"} 3"));
    assert_true(has_line(text, "sluice_batch_bucket{connector=\"c1\",task=\"0\",le=\"+Inf\"} 4"));
    assert_true(has_line(text, "sluice_batch_sum{connector=\"c1\",task=\"0\"} 556"));
    assert_true(has_line(text, "sluice_batch_count{connector=\"c1\",task=\"0\"} 4"));
    assert_true(has_line(text, "sluice_lat_bucket{le=\"1\"} 1"));
    assert_true(has_line(text, "sluice_lat_count 1"));
    free(text);
    sl_metrics_free(m);
}

/* latest.h: the newest record per key, bounded, sorted by key. */
static sluice_record_t *keyed(const char *key, const char *value_json) {
    sluice_record_t *r = sl_record_new();
    assert_non_null(r);
    assert_int_equal(sl_record_set_key(r, key, strlen(key)), SLUICE_OK);
    assert_int_equal(sl_record_set_value_bytes(r, value_json, strlen(value_json)), SLUICE_OK);
    assert_int_equal(sl_record_set_topic(r, "t"), SLUICE_OK);
    return r;
}

static void test_latest_per_key(void **st) {
    (void)st;
    sl_latest_t *l = sl_latest_new();
    assert_null(sl_latest_json(l, "c"));
    sluice_record_t *b1 = keyed("B", "{\"vwap\":1}"), *a = keyed("A", "{\"vwap\":2}"),
                    *b2 = keyed("B", "{\"vwap\":3}"), *c = keyed("C", "not json");
    assert_int_equal(sl_latest_put(l, "c", b1, 2), 0);
    assert_int_equal(sl_latest_put(l, "c", a, 2), 0);
    assert_int_equal(sl_latest_put(l, "c", b2, 2), 0);  /* known key: replaced */
    assert_int_equal(sl_latest_put(l, "c", c, 2), -1);  /* a third key: dropped */
    assert_int_equal(sl_latest_put(l, "c", c, 0), -1);  /* off */
    assert_int_equal(sl_latest_put(l, "d", c, 5), 0);   /* other connector */
    json_t *j = sl_latest_json(l, "c");
    char *text = json_dumps(j, JSON_COMPACT);
    assert_string_equal(text, "{\"connector\":\"c\",\"records\":["
                              "{\"topic\":\"t\",\"timestamp\":-1,\"value\":{\"vwap\":2},\"key\":\"A\"},"
                              "{\"topic\":\"t\",\"timestamp\":-1,\"value\":{\"vwap\":3},\"key\":\"B\"}]}");
    free(text);
    json_decref(j);
    j = sl_latest_json(l, "d"); /* bytes that are not JSON: a string */
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "records"), 0), "value")),
                        "not json");
    json_decref(j);
    sl_latest_forget(l, "c");
    assert_null(sl_latest_json(l, "c"));
    sl_record_free(b1);
    sl_record_free(a);
    sl_record_free(b2);
    sl_record_free(c);
    sl_latest_free(l);
}

static void test_metrics_prometheus_text(void **st) {
    (void)st;
    sl_metrics_t *m = sl_metrics_new();
    sl_metric_add(sl_metrics_get(m, SL_METRIC_COUNTER, "records_total", "Records handed on",
                                 "trades", 0),
                  12);
    sl_metric_set(sl_metrics_get(m, SL_METRIC_GAUGE, "queue_depth", "Depth", "trades", 1), 2.5);
    sl_metric_set(sl_metrics_get(m, SL_METRIC_GAUGE, "up", "Worker up", NULL, -1), 1);
    char *text = metrics_text(m);
    assert_true(has_line(text, "# HELP sluice_records_total Records handed on"));
    assert_true(has_line(text, "# TYPE sluice_records_total counter"));
    assert_true(has_line(text, "sluice_records_total{connector=\"trades\",task=\"0\"} 12"));
    assert_true(has_line(text, "# TYPE sluice_queue_depth gauge"));
    assert_true(has_line(text, "sluice_queue_depth{connector=\"trades\",task=\"1\"} 2.5"));
    assert_true(has_line(text, "# HELP sluice_up Worker up"));
    assert_true(has_line(text, "# TYPE sluice_up gauge"));
    assert_true(has_line(text, "sluice_up 1"));
    /* every line is a comment or "name[{labels}] value" */
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        assert_int_equal(strncmp(line, "sluice_", 7), 0);
        char *sp = strrchr(line, ' ');
        assert_non_null(sp);
        char *end = NULL;
        strtod(sp + 1, &end);
        assert_true(end && *end == '\0');
    }
    free(text);

    /* written to a FILE* such as tmpfile() too */
    FILE *f = tmpfile();
    assert_non_null(f);
    sl_metrics_write(m, f);
    char *again = slurp(f);
    fclose(f);
    assert_true(has_line(again, "sluice_up 1"));
    free(again);
    sl_metrics_free(m);
}

/* Regression (fixed bug in host/metrics.c, sl_metrics_write): one "# HELP"/"# TYPE" pair is
 * written per metric instance, so a metric that two tasks (or connectors)
 * report - e.g. every task's record_errors_total - gets its TYPE line
 * repeated, and its samples are not grouped when other metrics were created
 * in between. The Prometheus text format allows one TYPE/HELP line per
 * metric name, before all its samples in one group; Prometheus rejects the
 * scrape ("second TYPE line for metric name"). */
static void test_metrics_prometheus_one_type_per_name(void **st) {
    (void)st;
    sl_metrics_t *m = sl_metrics_new();
    sl_metric_add(sl_metrics_get(m, SL_METRIC_COUNTER, "errs_total", "Errors", "a", 0), 1);
    sl_metric_add(sl_metrics_get(m, SL_METRIC_COUNTER, "other_total", "Other", "a", 0), 1);
    sl_metric_add(sl_metrics_get(m, SL_METRIC_COUNTER, "errs_total", "Errors", "a", 1), 2);
    sl_metric_add(sl_metrics_get(m, SL_METRIC_COUNTER, "errs_total", "Errors", "b", 0), 3);
    char *text = metrics_text(m);
    int types = count_substr(text, "# TYPE sluice_errs_total ");
    int helps = count_substr(text, "# HELP sluice_errs_total ");
    /* all errs_total samples directly after its TYPE line */
    const char *type = strstr(text, "# TYPE sluice_errs_total counter\n");
    int grouped = type != NULL;
    if (type) {
        const char *p = strchr(type, '\n') + 1;
        for (int i = 0; i < 3 && grouped; i++) {
            grouped = strncmp(p, "sluice_errs_total{", 18) == 0;
            p = strchr(p, '\n');
            p = p ? p + 1 : "";
        }
    }
    int samples = count_substr(text, "sluice_errs_total{");
    char copy[2048];
    snprintf(copy, sizeof(copy), "%s", text);
    free(text);
    sl_metrics_free(m);
    assert_int_equal(samples, 3);
    if (types != 1 || helps != 1 || !grouped)
        fail_msg("%d TYPE and %d HELP lines for errs_total, samples grouped: %d\n%s", types,
                 helps, grouped, copy);
}

/* Regression (fixed bug in host/metrics.c, sl_metrics_write): label values and HELP text are
 * written unescaped. Connector names are not restricted, so a name with '"'
 * or '\' (or a plugin's help text with a newline) corrupts the exposition;
 * the format requires \\, \" and \n escapes in label values (\\ and \n in
 * HELP). */
static void test_metrics_prometheus_escaping(void **st) {
    (void)st;
    sl_metrics_t *m = sl_metrics_new();
    sl_metric_set(sl_metrics_get(m, SL_METRIC_GAUGE, "g", "line one\nline two", "we\"ird\\c", 0),
                  1);
    char *text = metrics_text(m);
    int label_ok = has_line(text, "sluice_g{connector=\"we\\\"ird\\\\c\",task=\"0\"} 1");
    int help_ok = has_line(text, "# HELP sluice_g line one\\nline two");
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", text);
    free(text);
    sl_metrics_free(m);
    if (!label_ok || !help_ok)
        fail_msg("unescaped exposition (label ok %d, help ok %d):\n%s", label_ok, help_ok, copy);
}

/* ------------------------------------------------------------------------ */
/* Log                                                                       */
/* ------------------------------------------------------------------------ */

static void test_log_secret_masking(void **st) {
    (void)st;
    sl_log_add_secret("s3cr3t-value");
    capture_t c;
    capture_begin(&c);
    sl_log(SLUICE_LOG_ERROR, "auth", "login with password=%s failed", "s3cr3t-value");
    sl_log(SLUICE_LOG_WARN, "auth", "twice: s3cr3t-value and s3cr3t-value!");
    api()->log(NULL, SLUICE_LOG_INFO, "via the table: %s", "xs3cr3t-valuex");
    char *out = capture_end(&c);
    assert_null(strstr(out, "s3cr3t-value"));
    assert_int_equal(count_substr(out, "[hidden]"), 4);
    assert_non_null(strstr(out, "ERROR [auth] login with password=[hidden] failed\n"));
    assert_non_null(strstr(out, "[auth] twice: [hidden] and [hidden]!\n"));
    assert_non_null(strstr(out, "[plugin] via the table: x[hidden]x\n"));
    /* the line shape: 2026-...T..:..:..mmmZ LEVEL [component] message */
    assert_true(out[4] == '-' && out[10] == 'T' && out[19] == '.' && out[23] == 'Z');
    free(out);
}

/* log.format: logfmt and json lines, escaped, secrets masked, levels per
 * component still applied. */
static void test_log_formats(void **st) {
    (void)st;
    assert_int_equal(sl_log_parse_format("json"), SL_LOG_JSON);
    assert_int_equal(sl_log_parse_format("LOGFMT"), SL_LOG_LOGFMT);
    assert_int_equal(sl_log_parse_format("text"), SL_LOG_TEXT);
    assert_int_equal(sl_log_parse_format("xml"), -1);
    assert_int_equal(sl_log_parse_format(NULL), -1);
    sl_log_add_secret("fmt-s3cret-9");
    capture_t c;

    sl_log_set_format(SL_LOG_LOGFMT);
    capture_begin(&c);
    sl_log(SLUICE_LOG_WARN, "sink-file", "said \"hi\" \\ then\nleft with fmt-s3cret-9");
    sl_log(SLUICE_LOG_INFO, "worker", "plain");
    char *out = capture_end(&c);
    assert_null(strstr(out, "fmt-s3cret-9"));
    assert_non_null(strstr(out, " level=warn logger=sink-file msg=\"said \\\"hi\\\" \\\\ "
                                "then\\nleft with [hidden]\"\n"));
    assert_non_null(strstr(out, " level=info logger=worker msg=plain\n"));
    assert_true(strncmp(out, "ts=", 3) == 0 && out[7] == '-' && out[26] == 'Z');
    free(out);

    sl_log_set_format(SL_LOG_JSON);
    sl_log_set_component_level("quiet", SLUICE_LOG_ERROR);
    capture_begin(&c);
    sl_log(SLUICE_LOG_ERROR, "conn \"a\"", "tab\there fmt-s3cret-9 \xff end");
    sl_log(SLUICE_LOG_INFO, "quiet", "not written");
    sl_log(SLUICE_LOG_DEBUG, "worker", "below the root level");
    out = capture_end(&c);
    sl_log_set_component_level("quiet", -1);
    sl_log_set_format(SL_LOG_TEXT);
    assert_int_equal(count_substr(out, "\n"), 1);
    json_error_t e;
    json_t *j = json_loads(out, 0, &e);
    if (!j) fail_msg("not JSON (%s): %s", e.text, out);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(j, "logger")), "conn \"a\"");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "tab\there [hidden] ? end");
    const char *ts = json_string_value(json_object_get(j, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(json_object_size(j), 4);
    json_decref(j);
    free(out);
}

static void test_log_secret_edge_cases(void **st) {
    (void)st;
    /* a secret containing the mask text, and one adjacent to itself */
    sl_log_add_secret("pw[hidden]pw");
    sl_log_add_secret("abcd");
    sl_log_add_secret("abcd"); /* registered once */
    /* short secrets are not registered */
    sl_log_add_secret("xyz");
    sl_log_add_secret("");
    sl_log_add_secret(NULL);
    capture_t c;
    capture_begin(&c);
    sl_log(SLUICE_LOG_ERROR, "t", "A:pw[hidden]pw:B");
    sl_log(SLUICE_LOG_ERROR, "t", "C:abcdabcd:D");
    sl_log(SLUICE_LOG_ERROR, "t", "E:xyz:F");
    sl_log(SLUICE_LOG_ERROR, "t", "%s", "");
    char *out = capture_end(&c);
    assert_null(strstr(out, "pw[hidden]pw"));
    assert_non_null(strstr(out, "[t] A:[hidden]:B\n"));
    assert_null(strstr(out, "abcd"));
    assert_non_null(strstr(out, "[t] C:[hidden][hidden]:D\n"));
    assert_non_null(strstr(out, "[t] E:xyz:F\n"));
    free(out);
}

/* Regression (fixed bug in host/log.c, mask_secrets): secrets are replaced one at a time in
 * registration order, so when a shorter secret is a substring of a longer
 * one that was registered later, the shorter one is masked first and the
 * rest of the longer secret is printed in clear ("[hidden]-tail-of-it"). */
static void test_log_overlapping_secrets(void **st) {
    (void)st;
    sl_log_add_secret("tok9");
    sl_log_add_secret("tok9-long-secret-tail");
    capture_t c;
    capture_begin(&c);
    sl_log(SLUICE_LOG_ERROR, "t", "key=tok9-long-secret-tail end");
    char *out = capture_end(&c);
    int leaked = strstr(out, "long-secret-tail") != NULL;
    int masked = strstr(out, "key=[hidden] end\n") != NULL;
    char copy[512];
    snprintf(copy, sizeof(copy), "%s", out);
    free(out);
    if (leaked || !masked) fail_msg("secret partly printed: %s", copy);
}

/* Regression (fixed bug in host/log.c, mask_secrets): a secret shorter than "[hidden]" grows the
 * message; near the end of the 4096-byte buffer the room left is computed as
 * cap - pos - mlen - 1, which underflows (size_t) when the secret starts in
 * the last 8 bytes: memmove() of ~SIZE_MAX bytes, a stack buffer overflow /
 * crash of the worker. Here a 4095-char message ends with a 4-char secret.
 * Run in a child process; the child must exit 0 without printing it. */
static void test_log_long_message_ending_in_secret(void **st) {
    (void)st;
    char path[512];
    dir_file(path, sizeof(path), "long-log.txt");
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_default_signals();
        FILE *f = fopen(path, "wb");
        if (!f || dup2(fileno(f), 2) < 0) _exit(2);
        sl_log_add_secret("k3y!");
        static char msg[4096];
        memset(msg, 'x', 4091);
        memcpy(msg + 4091, "k3y!", 5);
        sl_log(SLUICE_LOG_ERROR, "t", "%s", msg);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    char *out = slurp_path(path);
    unlink(path);
    int leaked = out && strstr(out, "k3y!") != NULL;
    free(out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("logging a long message ending in a secret crashed the process (%s %d)",
                 WIFSIGNALED(status) ? "signal" : "exit status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    assert_false(leaked);
}

static void test_log_level_filtering(void **st) {
    (void)st;
    sluice_log_level_t saved = sl_log_get_level();
    sl_log_set_level(SLUICE_LOG_WARN);
    assert_int_equal(sl_log_get_level(), SLUICE_LOG_WARN);
    assert_true(sl_log_enabled(SLUICE_LOG_ERROR));
    assert_true(sl_log_enabled(SLUICE_LOG_WARN));
    assert_false(sl_log_enabled(SLUICE_LOG_INFO));
    assert_false(api()->log_enabled(NULL, SLUICE_LOG_DEBUG));
    assert_true(api()->log_enabled(NULL, SLUICE_LOG_ERROR));
    capture_t c;
    capture_begin(&c);
    sl_log(SLUICE_LOG_INFO, "lvl", "info-line");
    SL_DEBUG("lvl", "debug-line");
    SL_WARN("lvl", "warn-line");
    SL_ERROR("lvl", "error-line");
    api()->log(NULL, SLUICE_LOG_INFO, "api-info-line");
    sl_log_set_level(SLUICE_LOG_DEBUG);
    SL_DEBUG("lvl", "debug-now");
    char *out = capture_end(&c);
    sl_log_set_level(saved);
    assert_null(strstr(out, "info-line"));
    assert_null(strstr(out, "debug-line"));
    assert_non_null(strstr(out, "WARN  [lvl] warn-line\n"));
    assert_non_null(strstr(out, "ERROR [lvl] error-line\n"));
    assert_non_null(strstr(out, "DEBUG [lvl] debug-now\n"));
    free(out);

    assert_int_equal(sl_log_parse_level("error"), SLUICE_LOG_ERROR);
    assert_int_equal(sl_log_parse_level("WARN"), SLUICE_LOG_WARN);
    assert_int_equal(sl_log_parse_level("info"), SLUICE_LOG_INFO);
    assert_int_equal(sl_log_parse_level("debug"), SLUICE_LOG_DEBUG);
    assert_int_equal(sl_log_parse_level("loud"), -1);
}

/* ------------------------------------------------------------------------ */
/* Schemas                                                                   */
/* ------------------------------------------------------------------------ */

static void test_schemas_load_and_cache(void **st) {
    (void)st;
    char err[1024] = "";
    sl_schemas_t *s = sl_schemas_new(g_dir);
    avro_schema_t a = sl_schemas_get(s, "trade", err, sizeof(err));
    assert_non_null(a);
    assert_true(is_avro_record(a));
    assert_string_equal(avro_schema_name(a), "Trade");
    assert_ptr_equal(sl_schemas_get(s, "trade", err, sizeof(err)), a); /* cached */

    /* cached: a changed file is not re-read */
    char path[512];
    dir_file(path, sizeof(path), "cached.avsc");
    write_text(path, "\"string\"");
    avro_schema_t c = sl_schemas_get(s, "cached", err, sizeof(err));
    assert_non_null(c);
    assert_true(is_avro_string(c));
    write_text(path, "\"long\"");
    assert_ptr_equal(sl_schemas_get(s, "cached", err, sizeof(err)), c);
    unlink(path);
    sl_schemas_free(s);
}

static void test_schemas_errors(void **st) {
    (void)st;
    char err[1024];
    sl_schemas_t *s = sl_schemas_new(g_dir);
    char want[600];

    /* missing file: the error names the path */
    err[0] = '\0';
    assert_null(sl_schemas_get(s, "absent", err, sizeof(err)));
    snprintf(want, sizeof(want), "%s/absent.avsc", g_dir);
    assert_non_null(strstr(err, want));
    /* a failed load is not cached: the file appearing later is loaded */
    write_text(want, "\"int\"");
    assert_non_null(sl_schemas_get(s, "absent", err, sizeof(err)));
    unlink(want);

    /* invalid JSON and JSON that is not a schema */
    err[0] = '\0';
    assert_null(sl_schemas_get(s, "bad", err, sizeof(err)));
    assert_non_null(strstr(err, "not a valid Avro schema"));
    assert_non_null(strstr(err, "bad.avsc"));
    err[0] = '\0';
    assert_null(sl_schemas_get(s, "notavro", err, sizeof(err)));
    assert_non_null(strstr(err, "notavro.avsc"));

    /* names that are not plain file names */
    static const char *const bad_names[] = {"a/b",      "../trade", "..",   "/etc/passwd",
                                            "sub/../x", "",         "x/..", "trade/"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        err[0] = '\0';
        assert_null(sl_schemas_get(s, bad_names[i], err, sizeof(err)));
        assert_non_null(strstr(err, "not a plain file name"));
    }
    err[0] = '\0';
    assert_null(sl_schemas_get(s, NULL, err, sizeof(err)));
    assert_true(err[0] != '\0');
    sl_schemas_free(s);
}

/* ------------------------------------------------------------------------ */
/* Tasks: timers                                                             */
/* ------------------------------------------------------------------------ */

typedef struct tick {
    int calls;
    int stop_after;         /* stop self after this many calls (0 = never) */
    sluice_timer_t *self;
    sluice_timer_t *victim; /* stopped on the first call, if set */
    int64_t spawn_interval; /* first call starts a new timer of this interval */
    struct tick *spawned;
} tick_t;

static void on_tick(void *arg, sluice_task_t *task) {
    tick_t *k = arg;
    k->calls++;
    if (k->victim) {
        api()->timer_stop(task, k->victim);
        k->victim = NULL;
    }
    if (k->spawn_interval > 0 && k->spawned) {
        k->spawned->self = api()->timer_start(task, k->spawn_interval, on_tick, k->spawned);
        k->spawn_interval = 0;
    }
    if (k->stop_after && k->calls >= k->stop_after) api()->timer_stop(task, k->self);
}

static void test_timer_periodic_realtime(void **st) {
    (void)st;
    sl_services_t svc;
    services_init(&svc, NULL);
    sluice_task_t *t = counter_task(&svc, "timers", 0, 1, NULL);
    tick_t k = {0};
    k.self = api()->timer_start(t, 10, on_tick, &k);
    assert_non_null(k.self);
    int64_t start = sl_mono_ms();
    int first = sl_task_run_timers(t, start, 100);
    assert_int_equal(k.calls, 0); /* not due yet */
    assert_in_range(first, 1, 10);
    int64_t now;
    while ((now = sl_mono_ms()) - start < 60) {
        int wait = sl_task_run_timers(t, now, 100);
        assert_in_range(wait, 0, 10);
        int left = (int)(60 - (sl_mono_ms() - start));
        int nap = wait < left ? wait : left;
        sleep_ms(nap > 0 ? nap : 1);
    }
    assert_in_range(k.calls, 3, 6);
    sl_task_free(t); /* frees the live timer */
    services_free(&svc);
}

static void test_timer_wait_and_order(void **st) {
    (void)st;
    sl_services_t svc;
    services_init(&svc, NULL);
    sluice_task_t *t = counter_task(&svc, "timers", 0, 1, NULL);
    /* no timers: the maximum */
    assert_int_equal(sl_task_run_timers(t, sl_mono_ms(), 250), 250);

    tick_t a = {0}, b = {0};
    a.self = api()->timer_start(t, 10, on_tick, &a);
    b.self = api()->timer_start(t, 25, on_tick, &b);
    assert_non_null(a.self);
    assert_non_null(b.self);
    /* pin the due times to a synthetic clock */
    const int64_t t0 = 1000000;
    a.self->due_ms = t0 + 10;
    b.self->due_ms = t0 + 25;
    assert_int_equal(sl_task_run_timers(t, t0, 100), 10);
    assert_int_equal(sl_task_run_timers(t, t0, 5), 5); /* capped by max */
    assert_int_equal(a.calls + b.calls, 0);
    assert_int_equal(sl_task_run_timers(t, t0 + 10, 100), 10); /* a: next t0+20 */
    assert_int_equal(a.calls, 1);
    assert_int_equal(sl_task_run_timers(t, t0 + 20, 100), 5); /* a: t0+30, b: t0+25 */
    assert_int_equal(a.calls, 2);
    assert_int_equal(sl_task_run_timers(t, t0 + 25, 100), 5); /* b: t0+50, a: t0+30 */
    assert_int_equal(b.calls, 1);
    /* late: each due timer runs once (no catch-up burst) */
    assert_int_equal(sl_task_run_timers(t, t0 + 1000, 100), 10);
    assert_int_equal(a.calls, 3);
    assert_int_equal(b.calls, 2);

    /* timer_stop from outside: b no longer runs; wait follows a only */
    api()->timer_stop(t, b.self);
    assert_int_equal(sl_task_run_timers(t, t0 + 2000, 100), 10);
    assert_int_equal(b.calls, 2);
    assert_int_equal(a.calls, 4);
    api()->timer_stop(t, a.self);
    assert_int_equal(sl_task_run_timers(t, t0 + 3000, 100), 100);
    assert_int_equal(a.calls, 4);

    /* invalid timers */
    assert_null(api()->timer_start(t, 0, on_tick, &a));
    assert_null(api()->timer_start(t, -5, on_tick, &a));
    assert_null(api()->timer_start(t, 10, NULL, &a));
    assert_null(api()->timer_start(NULL, 10, on_tick, &a));
    api()->timer_stop(t, NULL); /* no-op */
    sl_task_free(t);
    services_free(&svc);
}

static void test_timer_stop_inside_callback(void **st) {
    (void)st;
    sl_services_t svc;
    services_init(&svc, NULL);
    sluice_task_t *t = counter_task(&svc, "timers", 0, 1, NULL);

    /* real time: stops itself after the second call */
    tick_t k = {.stop_after = 2};
    k.self = api()->timer_start(t, 10, on_tick, &k);
    int64_t start = sl_mono_ms();
    int last = -1;
    while (sl_mono_ms() - start < 60) {
        last = sl_task_run_timers(t, sl_mono_ms(), 100);
        sleep_ms(1);
    }
    assert_int_equal(k.calls, 2);
    assert_int_equal(last, 100); /* nothing left to wait for */

    /* the call that stops the timer already reports no next due time */
    tick_t s = {.stop_after = 1};
    s.self = api()->timer_start(t, 10, on_tick, &s);
    s.self->due_ms = 0;
    assert_int_equal(sl_task_run_timers(t, 5000, 77), 77);
    assert_int_equal(s.calls, 1);
    assert_int_equal(sl_task_run_timers(t, 9000, 77), 77);
    assert_int_equal(s.calls, 1);

    /* a callback stopping another timer, later in the list, in the same pass:
     * timers are kept newest first, so start the victim first */
    tick_t victim = {0}, killer = {0};
    victim.self = api()->timer_start(t, 10, on_tick, &victim);
    killer.self = api()->timer_start(t, 10, on_tick, &killer);
    killer.victim = victim.self;
    victim.self->due_ms = killer.self->due_ms = 100;
    assert_int_equal(sl_task_run_timers(t, 100, 1000), 10);
    assert_int_equal(killer.calls, 1);
    assert_int_equal(victim.calls, 0);
    assert_int_equal(sl_task_run_timers(t, 200, 1000), 10);
    assert_int_equal(victim.calls, 0);
    assert_int_equal(killer.calls, 2);
    sl_task_free(t);
    services_free(&svc);
}

/* Regression (fixed bug in host/task.c, sl_task_run_timers): a timer started from inside a timer
 * callback is linked at the head of the list, behind the loop's cursor, so
 * it is left out of the "ms until the next timer is due" result: here the
 * runner is told to wait 50 ms although a 5 ms timer was just started (its
 * first tick comes ~45 ms late, every time a tick starts a timer). */
static void test_timer_started_in_callback_counts_for_wait(void **st) {
    (void)st;
    sl_services_t svc;
    services_init(&svc, NULL);
    sluice_task_t *t = counter_task(&svc, "timers", 0, 1, NULL);
    tick_t child = {0};
    tick_t parent = {.spawn_interval = 5, .spawned = &child};
    parent.self = api()->timer_start(t, 50, on_tick, &parent);
    int64_t now = sl_mono_ms();
    parent.self->due_ms = now;
    int wait = sl_task_run_timers(t, now, 100);
    int spawned = child.self != NULL;
    sl_task_free(t);
    services_free(&svc);
    assert_int_equal(parent.calls, 1);
    assert_true(spawned);
    if (wait > 6) fail_msg("wait %d ms, but the new 5 ms timer is due in <= 6 ms", wait);
}

/* Regression (fixed bug in host/task.c + host/host_api.c, api_timer_stop / sl_task_run_timers):
 * plugin.h promises that timer handles "stay valid until the task's stop()
 * returns", but a stopped timer is freed by the next sl_task_run_timers().
 * A plugin that stops its timer in a tick and calls timer_stop() on the
 * handle again later (say in stop()) writes to freed memory - and when the
 * allocator hands the block to the next timer_start(), it silently stops
 * that unrelated new timer. Under ASan this is a heap-use-after-free; without
 * it the new timer never fires. The scenario runs in a re-executed child
 * (see main) with glibc's tcache off, so that the block reuse - and the
 * failure - is deterministic without ASan. */
static int timer_handle_child(void) {
    static sl_plugin_t stub; /* timers never reach the plugin */
    sl_services_t svc = {sl_metrics_new(), sl_schemas_new("/nonexistent"), NULL, NULL};
    sluice_task_t *t = sl_task_new(&svc, "timers", NULL, &stub, sl_props_new(), 0, 1);
    if (!t) return 2;
    tick_t a = {.stop_after = 1}, b = {0};
    a.self = api()->timer_start(t, 10, on_tick, &a);
    a.self->due_ms = 0;
    sl_task_run_timers(t, 1000, 100); /* a fires and stops itself */
    sl_task_run_timers(t, 1001, 100); /* a is unlinked (and freed) */
    b.self = api()->timer_start(t, 10, on_tick, &b);
    api()->timer_stop(t, a.self); /* the plugin still holds a's handle */
    b.self->due_ms = 0;
    sl_task_run_timers(t, 2000, 100);
    int ok = a.calls == 1 && b.calls == 1;
    sl_task_free(t);
    sl_metrics_free(svc.metrics);
    sl_schemas_free(svc.schemas);
    return ok ? 0 : 3;
}

/* This program's path, for re-executing itself: argv[0] made absolute, so
 * that under valgrind the child is this test, not valgrind's launcher
 * (/proc/self/exe would be). */
static char g_self[4096] = "/proc/self/exe";

static void test_timer_handle_valid_after_stop(void **st) {
    (void)st;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0", 1);
        execl(g_self, "test_host", "--timer-handle-child", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("timer_stop() on a stopped timer's handle misbehaved (%s %d)",
                 WIFSIGNALED(status) ? "signal" : "exit status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

/* ------------------------------------------------------------------------ */
/* Tasks: host API config getters, identity and services                     */
/* ------------------------------------------------------------------------ */

static void test_api_config_getters(void **st) {
    (void)st;
    const sluice_host_api_t *h = api();
    sl_services_t svc;
    services_init(&svc, NULL);
    sl_props_t *cfg = sl_props_new();
    sl_props_set(cfg, "count", "5");
    sl_props_set(cfg, "topic", "mytopic");
    sl_props_set(cfg, "bad.int", "12x");
    sl_props_set(cfg, "huge", "99999999999999999999");
    sl_props_set(cfg, "flag", "TRUE");
    sl_props_set(cfg, "ratio", "2.5");
    sluice_task_t *t = counter_task(&svc, "conn-a", 2, 3, cfg);

    int64_t v = -1;
    assert_int_equal(h->config_int(t, "count", &v), SLUICE_OK);
    assert_int_equal(v, 5);
    v = -1;
    assert_int_equal(h->config_int(t, "batch.size", &v), SLUICE_OK); /* declared default */
    assert_int_equal(v, 100);
    assert_int_equal(h->config_int(t, "interval.ms", &v), SLUICE_OK);
    assert_int_equal(v, 0);
    assert_int_equal(h->config_int(t, "bad.int", &v), SLUICE_ERR_CONFIG);
    assert_int_equal(h->config_int(t, "topic", &v), SLUICE_ERR_CONFIG);
    assert_int_equal(h->config_int(t, "huge", &v), SLUICE_ERR_CONFIG);
    assert_int_equal(h->config_int(t, "ratio", &v), SLUICE_ERR_CONFIG);
    assert_int_equal(h->config_int(t, "no.such.key", &v), SLUICE_ERR_NOT_FOUND);
    assert_int_equal(h->config_int(NULL, "count", &v), SLUICE_ERR_NOT_FOUND);

    assert_string_equal(h->config_string(t, "topic"), "mytopic");
    assert_string_equal(h->config_string(t, "batch.size"), "100");
    assert_null(h->config_string(t, "no.such.key"));
    assert_null(h->config_string(t, NULL));
    assert_null(h->config_string(NULL, "topic"));

    double d = 0;
    assert_int_equal(h->config_double(t, "ratio", &d), SLUICE_OK);
    assert_float_equal(d, 2.5, 0);
    assert_int_equal(h->config_double(t, "count", &d), SLUICE_OK);
    assert_float_equal(d, 5, 0);
    assert_int_equal(h->config_double(t, "topic", &d), SLUICE_ERR_CONFIG);
    assert_int_equal(h->config_double(t, "nope", &d), SLUICE_ERR_NOT_FOUND);
    int b = 0;
    assert_int_equal(h->config_bool(t, "flag", &b), SLUICE_OK);
    assert_true(b);
    assert_int_equal(h->config_bool(t, "count", &b), SLUICE_ERR_CONFIG);
    assert_int_equal(h->config_bool(t, "nope", &b), SLUICE_ERR_NOT_FOUND);

    /* identity */
    assert_string_equal(h->task_connector(t), "conn-a");
    assert_int_equal(h->task_id(t), 2);
    assert_int_equal(h->task_count(t), 3);
    assert_null(h->task_connector(NULL));
    assert_int_equal(h->task_id(NULL), -1);
    assert_int_equal(h->task_count(NULL), 0);

    /* set_error */
    h->set_error(t, "broken at %d", 42);
    assert_string_equal(t->error, "broken at 42");
    h->set_error(NULL, "ignored");
    sl_task_free(t);
    services_free(&svc);
}

static void test_api_table_and_err2str(void **st) {
    (void)st;
    const sluice_host_api_t *h = api();
    assert_int_equal(h->abi_major, SLUICE_ABI_MAJOR);
    assert_int_equal(h->abi_minor, SLUICE_ABI_MINOR);
    assert_int_equal(h->struct_size, sizeof(sluice_host_api_t));
    assert_non_null(h->worker_version);
    assert_true(SLUICE_HOST_HAS(h, set_error));
    assert_true(SLUICE_HOST_HAS(h, log));
    assert_true(SLUICE_HOST_HAS(h, timer_stop));
    assert_true(SLUICE_HOST_HAS(h, metric_histogram)); /* ABI 1.2 */
    assert_true(SLUICE_HOST_HAS(h, metric_observe));
    assert_true(SLUICE_HOST_HAS(h, err2str));
    /* a shorter table (an older host) does not have the last member */
    sluice_host_api_t older = *h;
    older.struct_size = (uint32_t)offsetof(sluice_host_api_t, set_error);
    assert_false(SLUICE_HOST_HAS(&older, set_error));
    assert_true(SLUICE_HOST_HAS(&older, err2str));

    static const sluice_err_t codes[] = {
        SLUICE_OK,        SLUICE_ERR_RETRIABLE,  SLUICE_ERR_FATAL,
        SLUICE_ERR_INVALID_ARG, SLUICE_ERR_NOMEM, SLUICE_ERR_BAD_RECORD,
        SLUICE_ERR_CONFIG, SLUICE_ERR_NOT_FOUND, SLUICE_ERR_NO_DATA,
    };
    const size_t n = sizeof(codes) / sizeof(codes[0]);
    const char *unknown = h->err2str((sluice_err_t)-99);
    assert_string_equal(unknown, "unknown error");
    assert_string_equal(h->err2str((sluice_err_t)1), "unknown error");
    for (size_t i = 0; i < n; i++) {
        const char *s = h->err2str(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        assert_string_not_equal(s, unknown);
        for (size_t j = 0; j < i; j++) assert_string_not_equal(s, h->err2str(codes[j]));
    }
    assert_string_equal(h->err2str(SLUICE_OK), "success");
    assert_string_equal(h->err2str(SLUICE_ERR_CONFIG), "invalid configuration");
    assert_string_equal(h->err2str(SLUICE_ERR_NOT_FOUND), "not found");

    /* now_ms is the wall clock */
    int64_t before = (int64_t)time(NULL) * 1000;
    int64_t now = h->now_ms();
    assert_true(now >= before && now < before + 5000);
}

static void test_api_task_services(void **st) {
    (void)st;
    const sluice_host_api_t *h = api();
    char err[256];
    sl_services_t svc;
    services_init(&svc, sl_offset_store_open(NULL, err, sizeof(err)));
    assert_int_equal(sl_offset_store_put(svc.offsets, "svc-conn", "{\"task\":0}", "{\"n\":9}"),
                     0);
    sluice_task_t *t = counter_task(&svc, "svc-conn", 0, 1, NULL);

    /* schemas */
    avro_schema_t s = h->schema_get(t, "trade");
    assert_non_null(s);
    assert_ptr_equal(h->schema_get(t, "trade"), s);
    capture_t c;
    capture_begin(&c);
    avro_schema_t missing = h->schema_get(t, "nope");
    char *out = capture_end(&c);
    assert_null(missing);
    assert_non_null(strstr(out, "nope.avsc"));
    assert_non_null(strstr(out, "[svc-conn/0]"));
    free(out);

    /* offsets */
    char *off = h->offset_get(t, "{\"task\":0}");
    assert_non_null(off);
    assert_string_equal(off, "{\"n\":9}");
    h->free(off);
    assert_null(h->offset_get(t, "{\"task\":1}"));
    assert_null(h->offset_get(t, "not json"));
    assert_null(h->offset_get(t, NULL));

    /* metrics: per task, get-or-create, kind conflict */
    sluice_metric_t *m = h->metric_counter(t, "things", "Things");
    assert_non_null(m);
    assert_ptr_equal(h->metric_counter(t, "things", "Things"), m);
    assert_null(h->metric_gauge(t, "things", "Things"));
    sluice_metric_t *g = h->metric_gauge(t, "level", "Level");
    assert_non_null(g);
    assert_ptr_equal(h->metric_gauge(t, "level", NULL), g);
    h->metric_add(m, 3);
    h->metric_set(g, 8);
    assert_float_equal(sl_metrics_sum(svc.metrics, "things", "svc-conn"), 3, 0);
    assert_float_equal(sl_metrics_sum(svc.metrics, "level", "svc-conn"), 8, 0);
    assert_ptr_equal(sl_metrics_get(svc.metrics, SL_METRIC_COUNTER, "things", "", "svc-conn", 0),
                     m);

    /* emit without a target takes (frees) the record and fails */
    sluice_record_t *r = h->record_new(t);
    assert_int_equal(h->record_set_value_bytes(r, "x", 1), SLUICE_OK);
    assert_int_equal(h->emit(t, r), SLUICE_ERR_INVALID_ARG);
    assert_int_equal(h->emit(t, NULL), SLUICE_ERR_INVALID_ARG);

    /* dead_letter without a queue: counted, logged, not taken */
    r = h->record_new(t);
    capture_begin(&c);
    assert_int_equal(h->dead_letter(t, r, SLUICE_ERR_BAD_RECORD, "unparseable frame"), SLUICE_OK);
    out = capture_end(&c);
    assert_non_null(strstr(out, "unparseable frame"));
    free(out);
    assert_float_equal(sl_metrics_sum(svc.metrics, "record_errors_total", "svc-conn"), 1, 0);
    assert_int_equal(h->dead_letter(t, NULL, SLUICE_ERR_BAD_RECORD, "x"),
                     SLUICE_ERR_INVALID_ARG);
    h->record_free(r);
    sl_task_free(t);
    services_free(&svc);
}

typedef struct captured {
    sluice_record_t *recs[16];
    size_t n;
} captured_t;

static sluice_err_t capture_emit(void *arg, sluice_task_t *from, sluice_record_t *rec) {
    (void)from;
    captured_t *c = arg;
    if (c->n == sizeof(c->recs) / sizeof(c->recs[0])) {
        sl_record_free(rec);
        return SLUICE_ERR_FATAL;
    }
    c->recs[c->n++] = rec;
    return SLUICE_OK;
}

/* The example plugin driven through the host API: start resumes from the
 * stored offset, poll emits Avro records with a source position. */
static void test_task_runs_counter_plugin(void **st) {
    (void)st;
    char err[256];
    sl_services_t svc;
    services_init(&svc, sl_offset_store_open(NULL, err, sizeof(err)));
    assert_int_equal(sl_offset_store_put(svc.offsets, "ctr", "{\"task\":1}", "{\"n\":41}"), 0);
    sl_props_t *cfg = sl_props_new();
    sl_props_set(cfg, "topic", "numbers");
    sl_props_set(cfg, "count", "44");
    sl_props_set(cfg, "batch.size", "10");
    sluice_task_t *t = counter_task(&svc, "ctr", 1, 2, cfg);
    captured_t cap = {0};
    t->emit = capture_emit;
    t->emit_arg = &cap;
    capture_t c;
    capture_begin(&c);
    sluice_err_t rc = sl_task_start(t);
    sluice_err_t p1 = rc == SLUICE_OK ? t->plugin->desc->source->poll(t->state, t, 0) : rc;
    sluice_err_t p2 = rc == SLUICE_OK ? t->plugin->desc->source->poll(t->state, t, 0) : rc;
    char *out = capture_end(&c);
    free(out);
    assert_int_equal(rc, SLUICE_OK);
    assert_int_equal(p1, SLUICE_OK);
    assert_int_equal(p2, SLUICE_ERR_NO_DATA); /* count reached */
    assert_int_equal(cap.n, 2);               /* n = 42, 43 */
    for (size_t i = 0; i < cap.n; i++) {
        sluice_record_t *r = cap.recs[i];
        assert_string_equal(api()->record_topic(r), "numbers");
        size_t len;
        const void *k = api()->record_key(r, &len);
        assert_int_equal(len, 6);
        assert_memory_equal(k, "task-1", 6);
        avro_value_t *v = api()->record_value_avro(r, NULL);
        assert_non_null(v);
        avro_value_t f;
        int64_t n = 0;
        assert_int_equal(avro_value_get_by_name(v, "n", &f, NULL), 0);
        assert_int_equal(avro_value_get_long(&f, &n), 0);
        assert_int_equal(n, 42 + (int64_t)i);
        assert_string_equal(r->src_partition, "{\"task\":1}");
        char want[32];
        snprintf(want, sizeof(want), "{\"n\":%d}", 42 + (int)i);
        assert_string_equal(r->src_offset, want);
        assert_true(api()->record_timestamp(r) > 0);
        sl_record_free(r);
    }
    assert_float_equal(sl_metrics_sum(svc.metrics, "records_emitted", "ctr"), 2, 0);
    capture_begin(&c);
    sl_task_free(t); /* calls the plugin's stop() */
    out = capture_end(&c);
    assert_non_null(strstr(out, "stopping"));
    free(out);
    services_free(&svc);
}

static void test_task_start_failure_message(void **st) {
    (void)st;
    sl_services_t svc;
    services_init(&svc, NULL);
    sl_props_t *cfg = sl_props_new();
    sl_props_set(cfg, "count", "five");
    sluice_task_t *t = counter_task(&svc, "bad", 0, 1, cfg);
    capture_t c;
    capture_begin(&c);
    sluice_err_t rc = sl_task_start(t);
    char *out = capture_end(&c);
    free(out);
    assert_int_equal(rc, SLUICE_ERR_CONFIG);
    assert_false(t->started);
    /* the plugin's set_error() text, not the default */
    assert_non_null(strstr(t->error, "count"));
    assert_non_null(strstr(t->error, "invalid configuration"));
    sl_task_free(t); /* not started: stop() is not called */
    services_free(&svc);
}

/* ------------------------------------------------------------------------ */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The group protocol from the configured strategy (sink_runner asks no
 * rd_kafka_rebalance_protocol() in its rebalance callback). */
static void test_conf_cooperative(void **state) {
    (void)state;
    const char *cases[][2] = {{"cooperative-sticky", "1"}, {"range", "0"},
                              {"range,roundrobin", "0"}, {"range, cooperative-sticky", "0"},
                              {"cooperative-sticky ", "1"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[256];
        if (rd_kafka_conf_set(conf, "partition.assignment.strategy", cases[i][0], err,
                              sizeof(err)) == RD_KAFKA_CONF_OK)
            assert_int_equal(sl_kafka_conf_cooperative(conf), cases[i][1][0] - '0');
        rd_kafka_conf_destroy(conf);
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new(); /* librdkafka's default: range,roundrobin */
    assert_int_equal(sl_kafka_conf_cooperative(conf), 0);
    rd_kafka_conf_destroy(conf);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--timer-handle-child") == 0) return timer_handle_child();
    char self[4096];
    if (strchr(argv[0], '/') && realpath(argv[0], self)) snprintf(g_self, sizeof g_self, "%s", self);
    setenv("SLUICE_NO_DLCLOSE", "1", 0);
    snprintf(g_dir, sizeof(g_dir), "%s/sluice-test-host-XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/trade.avsc", g_dir);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fputs(TRADE_SCHEMA, f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/bad.avsc", g_dir);
    if (!(f = fopen(path, "w"))) return 1;
    fputs("{\"type\": \"record\", \"name\": ", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/notavro.avsc", g_dir);
    if (!(f = fopen(path, "w"))) return 1;
    fputs("{\"type\": \"no-such-type\"}", f);
    fclose(f);

    const struct CMUnitTest tests[] = {
        /* records */
        cmocka_unit_test(test_record_new_defaults),
        cmocka_unit_test(test_record_topic_and_key),
        cmocka_unit_test(test_record_bytes_value),
        cmocka_unit_test(test_record_avro_value),
        cmocka_unit_test(test_record_switch_value_kind),
        cmocka_unit_test(test_record_headers),
        cmocka_unit_test(test_record_source_position),
        cmocka_unit_test(test_record_source_position_must_parse), /* regression */
        cmocka_unit_test(test_record_timestamp),
        cmocka_unit_test(test_record_kafka_position),
        cmocka_unit_test(test_record_invalid_args),
        /* converters */
        cmocka_unit_test_setup_teardown(test_converter_avro_raw_roundtrip, conv_setup,
                                        conv_teardown),
        cmocka_unit_test_setup_teardown(test_converter_confluent_wire_format, conv_setup,
                                        conv_teardown),
        cmocka_unit_test_setup_teardown(test_converter_confluent_decode_error_keeps_payload,
                                        conv_setup, conv_teardown), /* regression */
        cmocka_unit_test_setup_teardown(test_converter_confluent_no_magic_keeps_payload,
                                        conv_setup, conv_teardown), /* regression */
        cmocka_unit_test_setup_teardown(test_converter_avro_decode_errors, conv_setup,
                                        conv_teardown),
        cmocka_unit_test_setup_teardown(test_converter_json_encode, conv_setup, conv_teardown),
        cmocka_unit_test_setup_teardown(test_converter_json_decode_with_schema, conv_setup,
                                        conv_teardown),
        cmocka_unit_test_setup_teardown(test_converter_json_decode_errors_keep_bytes,
                                        conv_setup, conv_teardown),
        cmocka_unit_test_setup_teardown(test_converter_passthrough, conv_setup, conv_teardown),
        cmocka_unit_test_setup_teardown(test_converter_bytes_refuses_avro, conv_setup,
                                        conv_teardown),
        cmocka_unit_test_setup_teardown(test_converter_config_errors, conv_setup, conv_teardown),
        cmocka_unit_test_setup_teardown(test_converter_class_names_and_fallbacks, conv_setup,
                                        conv_teardown),
        /* offsets */
        cmocka_unit_test(test_offsets_put_get_normalized),
        cmocka_unit_test(test_offsets_flush_and_reload),
        cmocka_unit_test(test_offsets_corrupt_file),
        /* metrics */
        cmocka_unit_test(test_metrics_get_or_create),
        cmocka_unit_test(test_metrics_histogram),
        cmocka_unit_test(test_latest_per_key),
        cmocka_unit_test(test_metrics_values_and_sum),
        cmocka_unit_test(test_metrics_prometheus_text),
        cmocka_unit_test(test_metrics_prometheus_one_type_per_name), /* regression */
        cmocka_unit_test(test_metrics_prometheus_escaping),          /* regression */
        /* log */
        cmocka_unit_test(test_log_secret_masking),
        cmocka_unit_test(test_log_formats),
        cmocka_unit_test(test_log_secret_edge_cases),
        cmocka_unit_test(test_log_overlapping_secrets),          /* regression */
        cmocka_unit_test(test_log_long_message_ending_in_secret), /* regression */
        cmocka_unit_test(test_log_level_filtering),
        /* schemas */
        cmocka_unit_test(test_schemas_load_and_cache),
        cmocka_unit_test(test_schemas_errors),
        /* timers */
        cmocka_unit_test(test_timer_periodic_realtime),
        cmocka_unit_test(test_timer_wait_and_order),
        cmocka_unit_test(test_timer_stop_inside_callback),
        cmocka_unit_test(test_timer_started_in_callback_counts_for_wait), /* regression */
        cmocka_unit_test(test_timer_handle_valid_after_stop),             /* regression */
        /* host API */
        cmocka_unit_test(test_api_config_getters),
        cmocka_unit_test(test_api_table_and_err2str),
        cmocka_unit_test(test_api_task_services),
        cmocka_unit_test(test_task_runs_counter_plugin),
        cmocka_unit_test(test_task_start_failure_message),
        cmocka_unit_test(test_conf_cooperative),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    if (g_plugin_loaded) sl_plugin_unload(&g_plugin);
    sl_log_shutdown();
    nftw(g_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    return failed;
}
