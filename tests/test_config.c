/*
 * test_config.c - unit tests for host/config.c: props, JSON configs, config
 * providers, validation against plugin definitions and the value parsers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"

#define ERRLEN 512
#define SECRET "hunter2-s3cr3t"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* Temporary files and directories of one test, removed by teardown. */
#define MAX_TEMP 8
typedef struct fixture {
    char *files[MAX_TEMP];
    int nfiles;
    char *dirs[MAX_TEMP];
    int ndirs;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    int i;

    for (i = 0; i < f->nfiles; i++) {
        unlink(f->files[i]);
        free(f->files[i]);
    }
    for (i = f->ndirs - 1; i >= 0; i--) {
        rmdir(f->dirs[i]);
        free(f->dirs[i]);
    }
    free(f);
    return 0;
}

static void write_all_n(int fd, const char *content, size_t len)
{
    size_t off = 0;
    ssize_t n;

    while (off < len) {
        n = write(fd, content + off, len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    assert_int_equal(close(fd), 0);
}

static void write_all(int fd, const char *content)
{
    write_all_n(fd, content, strlen(content));
}

static const char *remember_file(fixture_t *f, const char *path)
{
    assert_true(f->nfiles < MAX_TEMP);
    f->files[f->nfiles] = strdup(path);
    assert_non_null(f->files[f->nfiles]);
    return f->files[f->nfiles++];
}

/* A new file under /tmp holding content; its path lives until teardown. */
static const char *temp_file(void **state, const char *content)
{
    char tmpl[] = "/tmp/sluice-test-config.XXXXXX";
    int fd = mkstemp(tmpl);

    assert_true(fd >= 0);
    write_all(fd, content);
    return remember_file(*state, tmpl);
}

/* temp_file() for content that may hold NUL bytes. */
static const char *temp_file_n(void **state, const char *content, size_t len)
{
    char tmpl[] = "/tmp/sluice-test-config.XXXXXX";
    int fd = mkstemp(tmpl);

    assert_true(fd >= 0);
    write_all_n(fd, content, len);
    return remember_file(*state, tmpl);
}

/* A new directory under /tmp whose name holds a ':'. */
static const char *temp_dir_with_colon(void **state)
{
    fixture_t *f = *state;
    char tmpl[] = "/tmp/sluice-test:config.XXXXXX";

    assert_non_null(mkdtemp(tmpl));
    assert_true(f->ndirs < MAX_TEMP);
    f->dirs[f->ndirs] = strdup(tmpl);
    assert_non_null(f->dirs[f->ndirs]);
    return f->dirs[f->ndirs++];
}

static const char *file_in_dir(void **state, const char *dir, const char *name,
                               const char *content)
{
    char path[512];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    write_all(fd, content);
    return remember_file(*state, path);
}

/* A path under /tmp that does not exist. */
static void missing_path(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/sluice-test-config-missing.%ld", (long)getpid());
    unlink(buf);
}

/* props from key, value, ..., NULL */
static sl_props_t *props_of(const char *key, ...)
{
    sl_props_t *p = sl_props_new();
    const char *k, *v;
    va_list ap;

    assert_non_null(p);
    va_start(ap, key);
    for (k = key; k != NULL; k = va_arg(ap, const char *)) {
        v = va_arg(ap, const char *);
        assert_int_equal(sl_props_set(p, k, v), 0);
    }
    va_end(ap);
    return p;
}

static sl_props_t *props_from_text(const char *json)
{
    json_error_t jerr;
    json_t *obj = json_loads(json, 0, &jerr);
    char err[ERRLEN] = "";
    sl_props_t *p;

    assert_non_null(obj);
    p = sl_props_from_json(obj, err, sizeof(err));
    json_decref(obj);
    return p;
}

/* The error text of sl_props_from_json() on json (which must fail). */
static void from_json_error(const char *json, char *err, size_t errlen)
{
    json_t *obj = json_loads(json, 0, NULL);

    assert_non_null(obj);
    assert_null(sl_props_from_json(obj, err, errlen));
    json_decref(obj);
}

/* Resolves a single key=value; returns sl_props_resolve()'s result and
 * leaves the (maybe) resolved value in *p. */
static int resolve1(sl_props_t **p, const char *value, char *err)
{
    *p = props_of("k", value, NULL);
    err[0] = '\0';
    return sl_props_resolve(*p, err, ERRLEN);
}

static void assert_resolves_to(const char *value, const char *expected)
{
    char err[ERRLEN];
    sl_props_t *p;

    if (resolve1(&p, value, err) != 0)
        fail_msg("resolving '%s' failed: %s", value, err);
    assert_string_equal(sl_props_get(p, "k"), expected);
    sl_props_free(p);
}

/* Resolving value fails; err gets the message. The props keep the value. */
static void assert_resolve_fails(const char *value, char *err)
{
    sl_props_t *p;

    assert_int_equal(resolve1(&p, value, err), -1);
    assert_true(err[0] != '\0');
    assert_string_equal(sl_props_get(p, "k"), value);
    sl_props_free(p);
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) == NULL)
        fail_msg("'%s' does not contain '%s'", haystack, needle);
}

static void assert_not_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) != NULL)
        fail_msg("'%s' contains '%s'", haystack, needle);
}

/* Problems reported by sl_config_validate(). */
#define MAX_ERRS 8
typedef struct errs {
    int n;
    char key[MAX_ERRS][64];
    char msg[MAX_ERRS][256];
} errs_t;

static void collect(void *arg, const char *key, const char *message)
{
    errs_t *e = arg;

    if (e->n < MAX_ERRS) {
        snprintf(e->key[e->n], sizeof(e->key[0]), "%s", key);
        snprintf(e->msg[e->n], sizeof(e->msg[0]), "%s", message);
    }
    e->n++;
}

/* Validates one key=value (value NULL: unset) against one def. */
static int validate1(const sluice_config_def_t *def, const char *value, errs_t *e)
{
    sluice_config_def_t defs[2] = {*def, {0}};
    sl_props_t *p = value ? props_of(def->name, value, NULL) : props_of(NULL);
    int n;

    memset(e, 0, sizeof(*e));
    n = sl_config_validate(p, defs, sizeof(defs[0]), collect, e);
    sl_props_free(p);
    assert_int_equal(n, e->n);
    return n;
}

static const sluice_config_def_t port_def = {
    .name = "port", .type = SLUICE_CONFIG_INT, .min = 1, .max = 65535,
};

/* ------------------------------------------------------------------------ */
/* Props                                                                     */
/* ------------------------------------------------------------------------ */

static void test_props_empty(void **state)
{
    sl_props_t *p = sl_props_new();

    (void)state;
    assert_non_null(p);
    assert_int_equal(sl_props_count(p), 0);
    assert_null(sl_props_get(p, "a"));
    assert_null(sl_props_key_at(p, 0));
    assert_null(sl_props_value_at(p, 0));
    assert_int_equal(sl_props_count(NULL), 0);
    assert_null(sl_props_get(NULL, "a"));
    sl_props_free(p);
    sl_props_free(NULL);
}

static void test_props_set_keeps_insertion_order(void **state)
{
    sl_props_t *p = props_of("zeta", "1", "alpha", "2", "mid", "3", NULL);

    (void)state;
    assert_int_equal(sl_props_count(p), 3);
    assert_string_equal(sl_props_key_at(p, 0), "zeta");
    assert_string_equal(sl_props_key_at(p, 1), "alpha");
    assert_string_equal(sl_props_key_at(p, 2), "mid");
    assert_string_equal(sl_props_value_at(p, 1), "2");
    assert_string_equal(sl_props_get(p, "mid"), "3");
    assert_null(sl_props_key_at(p, 3));
    sl_props_free(p);
}

static void test_props_set_replaces_in_place(void **state)
{
    sl_props_t *p = props_of("a", "1", "b", "2", "c", "3", NULL);

    (void)state;
    assert_int_equal(sl_props_set(p, "b", "two"), 0);
    assert_int_equal(sl_props_count(p), 3);
    assert_string_equal(sl_props_key_at(p, 1), "b");
    assert_string_equal(sl_props_value_at(p, 1), "two");
    assert_string_equal(sl_props_get(p, "b"), "two");
    sl_props_free(p);
}

static void test_props_set_copies_strings(void **state)
{
    char key[] = "key", value[] = "value";
    sl_props_t *p = sl_props_new();

    (void)state;
    assert_int_equal(sl_props_set(p, key, value), 0);
    key[0] = 'X';
    value[0] = 'X';
    assert_string_equal(sl_props_get(p, "key"), "value");
    /* Setting a key to its own current value must not read freed memory. */
    assert_int_equal(sl_props_set(p, "key", sl_props_get(p, "key")), 0);
    assert_string_equal(sl_props_get(p, "key"), "value");
    sl_props_free(p);
}

static void test_props_set_rejects_null(void **state)
{
    sl_props_t *p = sl_props_new();

    (void)state;
    assert_int_equal(sl_props_set(p, NULL, "v"), -1);
    assert_int_equal(sl_props_set(p, "k", NULL), -1);
    assert_int_equal(sl_props_set(NULL, "k", "v"), -1);
    assert_int_equal(sl_props_count(p), 0);
    sl_props_free(p);
}

static void test_props_unset(void **state)
{
    sl_props_t *p = props_of("a", "1", "b", "2", "c", "3", NULL);

    (void)state;
    assert_int_equal(sl_props_unset(p, "b"), 1);
    assert_int_equal(sl_props_unset(p, "b"), 0);
    assert_int_equal(sl_props_unset(p, "nope"), 0);
    assert_int_equal(sl_props_count(p), 2);
    assert_string_equal(sl_props_key_at(p, 0), "a");
    assert_string_equal(sl_props_key_at(p, 1), "c");
    assert_null(sl_props_get(p, "b"));
    assert_int_equal(sl_props_unset(p, "c"), 1);
    assert_int_equal(sl_props_unset(p, "a"), 1);
    assert_int_equal(sl_props_count(p), 0);
    assert_int_equal(sl_props_set(p, "d", "4"), 0);
    assert_string_equal(sl_props_key_at(p, 0), "d");
    sl_props_free(p);
}

static void test_props_sub(void **state)
{
    sl_props_t *p = props_of("transforms", "w", "transforms.w.type", "window",
                             "name", "c1", "transforms.w.window.size.ms", "1000",
                             "transforms.x.type", "other", "transforms.w.", "empty",
                             NULL);
    sl_props_t *sub = sl_props_sub(p, "transforms.w.");

    (void)state;
    assert_non_null(sub);
    assert_int_equal(sl_props_count(sub), 2);
    assert_string_equal(sl_props_key_at(sub, 0), "type");
    assert_string_equal(sl_props_value_at(sub, 0), "window");
    assert_string_equal(sl_props_key_at(sub, 1), "window.size.ms");
    assert_string_equal(sl_props_value_at(sub, 1), "1000");
    assert_int_equal(sl_props_count(p), 6);
    sl_props_free(sub);

    sub = sl_props_sub(p, "nomatch.");
    assert_non_null(sub);
    assert_int_equal(sl_props_count(sub), 0);
    sl_props_free(sub);
    sl_props_free(p);
}

static void test_props_dup_is_deep(void **state)
{
    sl_props_t *p = props_of("a", "1", "b", "2", NULL);
    sl_props_t *d = sl_props_dup(p);

    (void)state;
    assert_non_null(d);
    assert_int_equal(sl_props_set(p, "a", "changed"), 0);
    assert_int_equal(sl_props_unset(p, "b"), 1);
    assert_int_equal(sl_props_count(d), 2);
    assert_string_equal(sl_props_key_at(d, 0), "a");
    assert_string_equal(sl_props_get(d, "a"), "1");
    assert_string_equal(sl_props_get(d, "b"), "2");
    sl_props_free(p);
    sl_props_free(d);
}

static void test_props_to_json(void **state)
{
    sl_props_t *p = props_of("b", "2", "a", "x y", NULL);
    json_t *obj = sl_props_to_json(p);
    char *text;

    (void)state;
    assert_non_null(obj);
    text = json_dumps(obj, JSON_COMPACT);
    assert_non_null(text);
    assert_string_equal(text, "{\"b\":\"2\",\"a\":\"x y\"}");
    free(text);
    json_decref(obj);
    sl_props_free(p);
}

/* ------------------------------------------------------------------------ */
/* sl_props_from_json                                                        */
/* ------------------------------------------------------------------------ */

static void test_from_json_strings_keep_order(void **state)
{
    sl_props_t *p = props_from_text("{\"z\": \"last\", \"a\": \"first\", \"m\": \"\"}");

    (void)state;
    assert_non_null(p);
    assert_int_equal(sl_props_count(p), 3);
    assert_string_equal(sl_props_key_at(p, 0), "z");
    assert_string_equal(sl_props_key_at(p, 1), "a");
    assert_string_equal(sl_props_key_at(p, 2), "m");
    assert_string_equal(sl_props_get(p, "z"), "last");
    assert_string_equal(sl_props_get(p, "m"), "");
    sl_props_free(p);
}

static void test_from_json_integers(void **state)
{
    sl_props_t *p = props_from_text("{\"a\": 3, \"b\": -42, \"c\": 0, "
                                    "\"d\": 9223372036854775807, "
                                    "\"e\": -9223372036854775808}");

    (void)state;
    assert_non_null(p);
    assert_string_equal(sl_props_get(p, "a"), "3");
    assert_string_equal(sl_props_get(p, "b"), "-42");
    assert_string_equal(sl_props_get(p, "c"), "0");
    assert_string_equal(sl_props_get(p, "d"), "9223372036854775807");
    assert_string_equal(sl_props_get(p, "e"), "-9223372036854775808");
    sl_props_free(p);
}

static void test_from_json_reals(void **state)
{
    sl_props_t *p = props_from_text("{\"a\": 2.5, \"b\": 0.1, \"c\": 1e300, "
                                    "\"d\": 0.30000000000000004, \"e\": 3.0, "
                                    "\"f\": -0.5, \"g\": 1.5e-7}");
    double d;

    (void)state;
    assert_non_null(p);
    assert_string_equal(sl_props_get(p, "a"), "2.5");
    assert_string_equal(sl_props_get(p, "b"), "0.1");
    assert_string_equal(sl_props_get(p, "c"), "1e+300");
    /* Needs 17 digits to round-trip. */
    assert_string_equal(sl_props_get(p, "d"), "0.30000000000000004");
    assert_int_equal(sl_parse_double(sl_props_get(p, "d"), &d), 0);
    assert_true(d == 0.30000000000000004);
    /* A JSON real stays a real. */
    assert_string_equal(sl_props_get(p, "e"), "3.0");
    assert_string_equal(sl_props_get(p, "f"), "-0.5");
    assert_string_equal(sl_props_get(p, "g"), "1.5e-07");
    sl_props_free(p);
}

static void test_from_json_bools_and_null(void **state)
{
    sl_props_t *p = props_from_text("{\"t\": true, \"n\": null, \"f\": false}");

    (void)state;
    assert_non_null(p);
    assert_int_equal(sl_props_count(p), 2);
    assert_string_equal(sl_props_get(p, "t"), "true");
    assert_string_equal(sl_props_get(p, "f"), "false");
    assert_null(sl_props_get(p, "n"));
    sl_props_free(p);
}

static void test_from_json_array_is_error(void **state)
{
    char err[ERRLEN] = "";

    (void)state;
    from_json_error("{\"ok\": \"1\", \"topics\": [\"a\", \"b\"]}", err, sizeof(err));
    assert_string_equal(err,
                        "config key 'topics': value must be a string or a scalar, not an array");
}

static void test_from_json_object_is_error(void **state)
{
    char err[ERRLEN] = "";

    (void)state;
    from_json_error("{\"nested\": {\"a\": 1}}", err, sizeof(err));
    assert_contains(err, "config key 'nested'");
    assert_contains(err, "not an object");
}

static void test_from_json_not_object(void **state)
{
    char err[ERRLEN] = "";
    json_t *arr = json_array();

    (void)state;
    assert_null(sl_props_from_json(arr, err, sizeof(err)));
    assert_contains(err, "must be a JSON object");
    err[0] = '\0';
    assert_null(sl_props_from_json(NULL, err, sizeof(err)));
    assert_true(err[0] != '\0');
    json_decref(arr);
}

static void test_from_json_nul_in_string(void **state)
{
    char err[ERRLEN] = "";
    json_t *obj = json_object();

    (void)state;
    assert_int_equal(json_object_set_new(obj, "k", json_stringn("a\0b", 3)), 0);
    assert_null(sl_props_from_json(obj, err, sizeof(err)));
    assert_contains(err, "config key 'k'");
    assert_contains(err, "NUL");
    json_decref(obj);
}

/* ------------------------------------------------------------------------ */
/* Config files                                                              */
/* ------------------------------------------------------------------------ */

/* Loads content as a connector file: 0 or -1, with name/config/err set. */
static int load_connector(void **state, const char *content, char **name, sl_props_t **cfg,
                          char *err)
{
    const char *path = temp_file(state, content);

    err[0] = '\0';
    return sl_connector_config_load(path, name, cfg, err, ERRLEN);
}

static void assert_load_fails(void **state, const char *content, char *err)
{
    char dummy = 0, *name = &dummy;
    sl_props_t *cfg = (sl_props_t *)(void *)&dummy; /* must be reset to NULL */

    assert_int_equal(load_connector(state, content, &name, &cfg, err), -1);
    assert_null(name);
    assert_null(cfg);
    assert_true(err[0] != '\0');
    assert_contains(err, "/tmp/sluice-test-config.");
}

static void test_load_wrapped_shape(void **state)
{
    char err[ERRLEN], *name = NULL;
    sl_props_t *cfg = NULL;

    assert_int_equal(load_connector(state,
                                    "{\"name\": \"trades\", \"config\": {"
                                    "\"connector.class\": \"finnhub\", \"tasks.max\": 2,"
                                    " \"finnhub.symbols\": \"AAPL,MSFT\"}}",
                                    &name, &cfg, err), 0);
    assert_string_equal(name, "trades");
    assert_string_equal(sl_props_get(cfg, "connector.class"), "finnhub");
    assert_string_equal(sl_props_get(cfg, "tasks.max"), "2");
    assert_string_equal(sl_props_get(cfg, "finnhub.symbols"), "AAPL,MSFT");
    /* The name is part of the config, as in Kafka Connect. */
    assert_string_equal(sl_props_get(cfg, "name"), "trades");
    assert_int_equal(sl_props_count(cfg), 4);
    free(name);
    sl_props_free(cfg);
}

static void test_load_flat_shape(void **state)
{
    char err[ERRLEN], *name = NULL;
    sl_props_t *cfg = NULL;

    assert_int_equal(load_connector(state,
                                    "{\"connector.class\": \"file-sink\", \"name\": \"out\","
                                    " \"file\": \"/tmp/x\"}",
                                    &name, &cfg, err), 0);
    assert_string_equal(name, "out");
    assert_int_equal(sl_props_count(cfg), 3);
    assert_string_equal(sl_props_key_at(cfg, 0), "connector.class");
    assert_string_equal(sl_props_get(cfg, "name"), "out");
    assert_string_equal(sl_props_get(cfg, "file"), "/tmp/x");
    free(name);
    sl_props_free(cfg);
}

static void test_load_same_name_in_both_places(void **state)
{
    char err[ERRLEN], *name = NULL;
    sl_props_t *cfg = NULL;

    assert_int_equal(load_connector(state,
                                    "{\"name\": \"a\", \"tasks\": [], \"type\": \"sink\","
                                    " \"config\": {\"name\": \"a\", \"connector.class\": \"x\"}}",
                                    &name, &cfg, err), 0);
    assert_string_equal(name, "a");
    assert_string_equal(sl_props_get(cfg, "name"), "a");
    assert_int_equal(sl_props_count(cfg), 2);
    free(name);
    sl_props_free(cfg);
}

static void test_load_name_mismatch(void **state)
{
    char err[ERRLEN];

    assert_load_fails(state,
                      "{\"name\": \"a\", \"config\": {\"name\": \"b\","
                      " \"connector.class\": \"x\"}}", err);
    assert_contains(err, "'a'");
    assert_contains(err, "'b'");
    assert_contains(err, "does not match");
}

static void test_load_missing_connector_class(void **state)
{
    char err[ERRLEN];

    assert_load_fails(state, "{\"name\": \"a\", \"config\": {\"topics\": \"t\"}}", err);
    assert_contains(err, ": missing required key 'connector.class'");
    assert_load_fails(state, "{\"name\": \"a\", \"connector.class\": \"\"}", err);
    assert_contains(err, ": missing required key 'connector.class'");
}

static void test_load_missing_name(void **state)
{
    char err[ERRLEN];

    assert_load_fails(state, "{\"config\": {\"connector.class\": \"x\"}}", err);
    assert_contains(err, "missing required key 'name'");
    assert_load_fails(state, "{\"connector.class\": \"x\"}", err);
    assert_contains(err, "missing required key 'name'");
}

static void test_load_malformed_json(void **state)
{
    char err[ERRLEN], where[64];
    const char *path = temp_file(state, "{\n  \"name\": \"a\",\n  \"config\": {,}\n}\n");
    char *name;
    sl_props_t *cfg;

    assert_int_equal(sl_connector_config_load(path, &name, &cfg, err, sizeof(err)), -1);
    snprintf(where, sizeof(where), "%s:3:", path);
    assert_contains(err, where);
    assert_contains(err, "invalid JSON");
}

static void test_load_missing_file(void **state)
{
    char err[ERRLEN] = "", path[128], *name;
    sl_props_t *cfg;

    (void)state;
    missing_path(path, sizeof(path));
    assert_int_equal(sl_connector_config_load(path, &name, &cfg, err, sizeof(err)), -1);
    assert_contains(err, path);
    assert_contains(err, strerror(ENOENT));
    assert_null(name);
    assert_null(cfg);
}

static void test_load_bad_shapes(void **state)
{
    char err[ERRLEN];

    assert_load_fails(state, "[1, 2]", err);
    assert_contains(err, "top level must be a JSON object");
    assert_load_fails(state, "{\"name\": \"a\", \"config\": \"x\"}", err);
    assert_contains(err, "'config' must be a JSON object");
    assert_load_fails(state, "{\"name\": 5, \"config\": {\"connector.class\": \"x\"}}", err);
    assert_contains(err, "'name' must be a string");
    /* A setting left outside "config" is a mistake, not silently ignored. */
    assert_load_fails(state, "{\"name\": \"a\", \"topics\": \"t\","
                             " \"config\": {\"connector.class\": \"x\"}}", err);
    assert_contains(err, "'topics'");
}

static void test_load_duplicate_key(void **state)
{
    char err[ERRLEN];

    assert_load_fails(state, "{\"name\": \"a\", \"connector.class\": \"x\","
                             " \"topics\": \"t1\", \"topics\": \"t2\"}", err);
    assert_contains(err, "duplicate");
}

static void test_load_bad_value_names_file_and_key(void **state)
{
    char err[ERRLEN];

    assert_load_fails(state, "{\"name\": \"a\", \"config\": {\"connector.class\": \"x\","
                             " \"topics\": [\"t\"]}}", err);
    assert_contains(err, "config key 'topics': value must be a string or a scalar, not an array");
}

static void test_worker_config_load(void **state)
{
    char err[ERRLEN] = "", path[128];
    const char *good = temp_file(state, "{\"bootstrap.servers\": \"k:9092\", \"rest.port\": 8083,"
                                        " \"exactly.once\": true}");
    const char *bad = temp_file(state, "{\"plugin.path\": [\"/a\"]}");
    sl_props_t *p = sl_worker_config_load(good, err, sizeof(err));

    assert_non_null(p);
    assert_int_equal(sl_props_count(p), 3);
    assert_string_equal(sl_props_get(p, "bootstrap.servers"), "k:9092");
    assert_string_equal(sl_props_get(p, "rest.port"), "8083");
    assert_string_equal(sl_props_get(p, "exactly.once"), "true");
    sl_props_free(p);

    assert_null(sl_worker_config_load(bad, err, sizeof(err)));
    assert_contains(err, bad);
    assert_contains(err, "config key 'plugin.path'");

    missing_path(path, sizeof(path));
    assert_null(sl_worker_config_load(path, err, sizeof(err)));
    assert_contains(err, path);
}

/* ------------------------------------------------------------------------ */
/* Config providers                                                          */
/* ------------------------------------------------------------------------ */

static void test_resolve_env(void **state)
{
    (void)state;
    assert_int_equal(setenv("SLUICE_TEST_CFG_USER", "alice", 1), 0);
    assert_int_equal(setenv("SLUICE_TEST_CFG_EMPTY", "", 1), 0);
    assert_resolves_to("${env:SLUICE_TEST_CFG_USER}", "alice");
    assert_resolves_to("[${env:SLUICE_TEST_CFG_EMPTY}]", "[]");
    unsetenv("SLUICE_TEST_CFG_USER");
    unsetenv("SLUICE_TEST_CFG_EMPTY");
}

static void test_resolve_env_unset(void **state)
{
    char err[ERRLEN];

    (void)state;
    unsetenv("SLUICE_TEST_CFG_NOPE");
    assert_resolve_fails("${env:SLUICE_TEST_CFG_NOPE}", err);
    assert_contains(err, "config key 'k'");
    assert_contains(err, "${env:SLUICE_TEST_CFG_NOPE}");
    assert_contains(err, "not set");
    assert_resolve_fails("${env:}", err);
    assert_contains(err, "empty");
}

/* ${env:VAR:-default}: the default when VAR is unset or empty (as in the
 * shell), VAR's value otherwise; the default may hold ':' and '-'. */
static void test_resolve_env_default(void **state)
{
    char err[ERRLEN];

    (void)state;
    unsetenv("SLUICE_TEST_CFG_D");
    assert_resolves_to("${env:SLUICE_TEST_CFG_D:-embedded}", "embedded");
    assert_resolves_to("${env:SLUICE_TEST_CFG_D:-http://127.0.0.1:8080/a-b}", "http://127.0.0.1:8080/a-b");
    assert_resolves_to("[${env:SLUICE_TEST_CFG_D:-}]", "[]");
    assert_resolves_to("${env:SLUICE_TEST_CFG_D:-trades}:${env:SLUICE_TEST_CFG_D:-T1}", "trades:T1");
    assert_int_equal(setenv("SLUICE_TEST_CFG_D", "", 1), 0);
    assert_resolves_to("${env:SLUICE_TEST_CFG_D:-fallback}", "fallback");
    assert_int_equal(setenv("SLUICE_TEST_CFG_D", "set:-value", 1), 0);
    assert_resolves_to("${env:SLUICE_TEST_CFG_D:-fallback}", "set:-value");
    unsetenv("SLUICE_TEST_CFG_D");
    assert_resolve_fails("${env::-x}", err);
    assert_contains(err, "empty environment variable name");
    /* without ":-" an unset variable is still an error */
    assert_resolve_fails("${env:SLUICE_TEST_CFG_D}", err);
    assert_contains(err, "not set");
}

static void test_resolve_leaves_other_values_alone(void **state)
{
    char err[ERRLEN] = "";
    sl_props_t *p = props_of("a", "plain", "b", "${env:SLUICE_TEST_CFG_B}", "c", "", NULL);

    (void)state;
    assert_int_equal(setenv("SLUICE_TEST_CFG_B", "bee", 1), 0);
    assert_int_equal(sl_props_resolve(p, err, sizeof(err)), 0);
    assert_int_equal(sl_props_count(p), 3);
    assert_string_equal(sl_props_get(p, "a"), "plain");
    assert_string_equal(sl_props_get(p, "b"), "bee");
    assert_string_equal(sl_props_get(p, "c"), "");
    assert_string_equal(sl_props_key_at(p, 1), "b");
    unsetenv("SLUICE_TEST_CFG_B");
    sl_props_free(p);
}

static void test_resolve_file_json(void **state)
{
    const char *path = temp_file(state, "{\"db.password\": \"" SECRET "\", \"port\": 5432,"
                                        " \"ratio\": 0.25, \"tls\": false,"
                                        " \"user:name\": \"bob\"}\n");
    char ref[256], expect[256];

    snprintf(ref, sizeof(ref), "${file:%s:db.password}", path);
    assert_resolves_to(ref, SECRET);
    snprintf(ref, sizeof(ref), "${file:%s:port}", path);
    assert_resolves_to(ref, "5432");
    snprintf(ref, sizeof(ref), "${file:%s:ratio}", path);
    assert_resolves_to(ref, "0.25");
    snprintf(ref, sizeof(ref), "${file:%s:tls}", path);
    assert_resolves_to(ref, "false");
    /* Whole-file mode returns the JSON text itself. */
    snprintf(ref, sizeof(ref), "${file:%s}", path);
    snprintf(expect, sizeof(expect), "{\"db.password\": \"" SECRET "\", \"port\": 5432,"
                                     " \"ratio\": 0.25, \"tls\": false,"
                                     " \"user:name\": \"bob\"}");
    assert_resolves_to(ref, expect);
}

static void test_resolve_file_json_bad_key(void **state)
{
    const char *path = temp_file(state, "{\"pw\": \"" SECRET "\", \"list\": [\"" SECRET "\"],"
                                        " \"nothing\": null}");
    char ref[256], err[ERRLEN];

    snprintf(ref, sizeof(ref), "${file:%s:missing}", path);
    assert_resolve_fails(ref, err);
    assert_contains(err, "config key 'k'");
    assert_contains(err, "'missing' not found");
    assert_contains(err, path);
    assert_not_contains(err, SECRET);

    snprintf(ref, sizeof(ref), "${file:%s:list}", path);
    assert_resolve_fails(ref, err);
    assert_contains(err, "not an array");
    assert_not_contains(err, SECRET);

    snprintf(ref, sizeof(ref), "${file:%s:nothing}", path);
    assert_resolve_fails(ref, err);
    assert_contains(err, "null");
}

static void test_resolve_file_properties(void **state)
{
    const char *path = temp_file(state,
                                 "# database settings\n"
                                 "\n"
                                 "db.user = admin\n"
                                 "  db.password=" SECRET "  \r\n"
                                 "db.url=jdbc:pg://h/db?a=b\n"
                                 "   # indented comment\n"
                                 "#commented=out\n"
                                 "dup=first\n"
                                 "dup=second\n"
                                 "no equals sign here\n"
                                 "last=no newline");
    char ref[256], err[ERRLEN];

    snprintf(ref, sizeof(ref), "${file:%s:db.user}", path);
    assert_resolves_to(ref, "admin");
    snprintf(ref, sizeof(ref), "${file:%s:db.password}", path);
    assert_resolves_to(ref, SECRET);
    snprintf(ref, sizeof(ref), "${file:%s:db.url}", path);
    assert_resolves_to(ref, "jdbc:pg://h/db?a=b");
    snprintf(ref, sizeof(ref), "${file:%s:dup}", path);
    assert_resolves_to(ref, "second");
    snprintf(ref, sizeof(ref), "${file:%s:last}", path);
    assert_resolves_to(ref, "no newline");
    /* A comment is not an assignment, even with an '=' in it. */
    snprintf(ref, sizeof(ref), "${file:%s:#commented}", path);
    assert_resolve_fails(ref, err);
    assert_contains(err, "'#commented' not found");
}

static void test_resolve_file_dotenv(void **state)
{
    const char *path = temp_file(state,
                                 "export API_KEY=\"" SECRET "\"\n"
                                 "export\tTOKEN='tok en'\n"
                                 "PLAIN=plain\n"
                                 "SPACED = \"  padded  \"\n"
                                 "MISMATCHED=\"abc'\n"
                                 "LONE=\"\n"
                                 "EMPTY=\n"
                                 "export = literal export key\n");
    char ref[256];

    snprintf(ref, sizeof(ref), "${file:%s:API_KEY}", path);
    assert_resolves_to(ref, SECRET);
    snprintf(ref, sizeof(ref), "${file:%s:TOKEN}", path);
    assert_resolves_to(ref, "tok en");
    snprintf(ref, sizeof(ref), "${file:%s:PLAIN}", path);
    assert_resolves_to(ref, "plain");
    snprintf(ref, sizeof(ref), "${file:%s:SPACED}", path);
    assert_resolves_to(ref, "  padded  ");
    snprintf(ref, sizeof(ref), "${file:%s:MISMATCHED}", path);
    assert_resolves_to(ref, "\"abc'");
    snprintf(ref, sizeof(ref), "${file:%s:LONE}", path);
    assert_resolves_to(ref, "\"");
    snprintf(ref, sizeof(ref), "${file:%s:EMPTY}", path);
    assert_resolves_to(ref, "");
    snprintf(ref, sizeof(ref), "${file:%s:export}", path);
    assert_resolves_to(ref, "literal export key");
}

static void test_resolve_whole_file(void **state)
{
    const char *one = temp_file(state, SECRET "\n");
    const char *crlf = temp_file(state, "line1\nline2\r\n");
    const char *two = temp_file(state, "x\n\n");
    const char *bare = temp_file(state, "bare");
    const char *empty = temp_file(state, "");
    char ref[256];

    snprintf(ref, sizeof(ref), "${file:%s}", one);
    assert_resolves_to(ref, SECRET);
    snprintf(ref, sizeof(ref), "${file:%s}", crlf);
    assert_resolves_to(ref, "line1\nline2");
    /* Only one trailing newline goes. */
    snprintf(ref, sizeof(ref), "${file:%s}", two);
    assert_resolves_to(ref, "x\n");
    snprintf(ref, sizeof(ref), "${file:%s}", bare);
    assert_resolves_to(ref, "bare");
    snprintf(ref, sizeof(ref), "${file:%s}", empty);
    assert_resolves_to(ref, "");
}

static void test_resolve_path_with_colon(void **state)
{
    const char *dir = temp_dir_with_colon(state);
    const char *whole = file_in_dir(state, dir, "token", "tok\n");
    const char *kv = file_in_dir(state, dir, "kv", "user=carol\n");
    char ref[512];

    /* After the last ':' comes "config.XXXXXX/token": a path, not a key. */
    snprintf(ref, sizeof(ref), "${file:%s}", whole);
    assert_resolves_to(ref, "tok");
    snprintf(ref, sizeof(ref), "${file:%s:user}", kv);
    assert_resolves_to(ref, "carol");
}

static void test_resolve_several_refs_and_literals(void **state)
{
    const char *path = temp_file(state, "host=db.example\nport=5432\n");
    char value[512];

    assert_int_equal(setenv("SLUICE_TEST_CFG_SCHEME", "postgres", 1), 0);
    assert_int_equal(setenv("SLUICE_TEST_CFG_DB", "orders", 1), 0);
    snprintf(value, sizeof(value),
             "jdbc:${env:SLUICE_TEST_CFG_SCHEME}://${file:%s:host}:${file:%s:port}"
             "/${env:SLUICE_TEST_CFG_DB}?ssl=true",
             path, path);
    assert_resolves_to(value, "jdbc:postgres://db.example:5432/orders?ssl=true");
    assert_resolves_to("${env:SLUICE_TEST_CFG_DB}${env:SLUICE_TEST_CFG_DB}", "ordersorders");
    unsetenv("SLUICE_TEST_CFG_SCHEME");
    unsetenv("SLUICE_TEST_CFG_DB");
}

static void test_resolve_escape(void **state)
{
    (void)state;
    assert_int_equal(setenv("SLUICE_TEST_CFG_X", "resolved", 1), 0);
    assert_resolves_to("$${env:SLUICE_TEST_CFG_X}", "${env:SLUICE_TEST_CFG_X}");
    assert_resolves_to("a $${ b", "a ${ b");
    assert_resolves_to("$${env:SLUICE_TEST_CFG_X} ${env:SLUICE_TEST_CFG_X}",
                       "${env:SLUICE_TEST_CFG_X} resolved");
    /* An escaped opener needs no closing brace. */
    assert_resolves_to("x$${", "x${");
    unsetenv("SLUICE_TEST_CFG_X");
}

static void test_resolve_plain_dollars(void **state)
{
    (void)state;
    assert_resolves_to("costs $5 or $$6 {x} $", "costs $5 or $$6 {x} $");
    assert_resolves_to("a}b", "a}b");
}

static void test_resolve_no_recursion(void **state)
{
    (void)state;
    assert_int_equal(setenv("SLUICE_TEST_CFG_OUTER", "${env:SLUICE_TEST_CFG_INNER}", 1), 0);
    assert_int_equal(setenv("SLUICE_TEST_CFG_INNER", "inner", 1), 0);
    assert_resolves_to("${env:SLUICE_TEST_CFG_OUTER}", "${env:SLUICE_TEST_CFG_INNER}");
    assert_int_equal(setenv("SLUICE_TEST_CFG_OUTER", "$${x}", 1), 0);
    assert_resolves_to("${env:SLUICE_TEST_CFG_OUTER}", "$${x}");
    unsetenv("SLUICE_TEST_CFG_OUTER");
    unsetenv("SLUICE_TEST_CFG_INNER");
}

static void test_resolve_unknown_provider(void **state)
{
    char err[ERRLEN];

    (void)state;
    assert_resolve_fails("x${vault:secret/db:pw}", err);
    assert_contains(err, "config key 'k'");
    assert_contains(err, "${vault:secret/db:pw}");
    assert_contains(err, "unknown config provider 'vault'");
    assert_resolve_fails("${nocolon}", err);
    assert_contains(err, "${nocolon}");
}

static void test_resolve_missing_file(void **state)
{
    char err[ERRLEN], path[128], ref[256];

    (void)state;
    missing_path(path, sizeof(path));
    snprintf(ref, sizeof(ref), "${file:%s:key}", path);
    assert_resolve_fails(ref, err);
    assert_contains(err, "config key 'k'");
    assert_contains(err, ref);
    assert_contains(err, strerror(ENOENT));
    snprintf(ref, sizeof(ref), "${file:%s}", path);
    assert_resolve_fails(ref, err);
    assert_contains(err, path);
    /* A directory is not a readable file. */
    assert_resolve_fails("${file:/tmp/}", err);
    assert_contains(err, "/tmp/");
}

static void test_resolve_missing_key_never_leaks(void **state)
{
    const char *path = temp_file(state, "password=" SECRET "\nuser=" SECRET "\n");
    char ref[256], err[ERRLEN];

    snprintf(ref, sizeof(ref), "${file:%s:passwd}", path);
    assert_resolve_fails(ref, err);
    assert_contains(err, "'passwd' not found");
    assert_contains(err, path);
    assert_not_contains(err, SECRET);
}

static void test_resolve_file_with_nul_byte(void **state)
{
    static const char data[] = "a=1\0b=2\n";
    const char *path = temp_file_n(state, data, sizeof(data) - 1);
    char ref[256], err[ERRLEN];

    /* Rejected rather than silently cut short at the NUL. */
    snprintf(ref, sizeof(ref), "${file:%s}", path);
    assert_resolve_fails(ref, err);
    assert_contains(err, "NUL byte");
    snprintf(ref, sizeof(ref), "${file:%s:a}", path);
    assert_resolve_fails(ref, err);
    assert_contains(err, "NUL byte");
}

static void test_resolve_empty_path_or_key(void **state)
{
    const char *path = temp_file(state, "a=1\n");
    char ref[256], err[ERRLEN];

    snprintf(ref, sizeof(ref), "${file:%s:}", path);
    assert_resolve_fails(ref, err);
    assert_contains(err, "empty key");
    assert_resolve_fails("${file:}", err);
    assert_contains(err, "empty file path");
}

static void test_resolve_unterminated(void **state)
{
    char err[ERRLEN];

    (void)state;
    assert_resolve_fails("pre-" SECRET "-${env:HOME", err);
    assert_contains(err, "config key 'k'");
    assert_contains(err, "unterminated");
    assert_not_contains(err, SECRET);
    assert_resolve_fails("${", err);
    assert_contains(err, "unterminated");
}

static void test_resolve_failure_is_atomic_and_quiet(void **state)
{
    const char *path = temp_file(state, SECRET);
    char err[ERRLEN] = "", a[256], b[256];
    sl_props_t *p;

    unsetenv("SLUICE_TEST_CFG_NOPE");
    /* "a" resolves to the secret; "b" has the secret resolved into its new
     * text before its second reference fails: neither may leak. */
    snprintf(a, sizeof(a), "${file:%s}", path);
    snprintf(b, sizeof(b), "${file:%s}:${env:SLUICE_TEST_CFG_NOPE}", path);
    p = props_of("a", a, "b", b, "c", "plain", NULL);
    assert_int_equal(sl_props_resolve(p, err, sizeof(err)), -1);
    assert_contains(err, "config key 'b'");
    assert_contains(err, "${env:SLUICE_TEST_CFG_NOPE}");
    assert_not_contains(err, SECRET);
    /* All or nothing: "a" was not replaced either. */
    assert_int_equal(sl_props_count(p), 3);
    assert_string_equal(sl_props_get(p, "a"), a);
    assert_string_equal(sl_props_get(p, "b"), b);
    assert_string_equal(sl_props_get(p, "c"), "plain");
    sl_props_free(p);
}

static void test_resolve_empty_props(void **state)
{
    char err[ERRLEN] = "";
    sl_props_t *p = sl_props_new();

    (void)state;
    assert_int_equal(sl_props_resolve(p, err, sizeof(err)), 0);
    assert_int_equal(sl_props_count(p), 0);
    assert_int_equal(sl_props_resolve(NULL, err, sizeof(err)), -1);
    sl_props_free(p);
}

/* ------------------------------------------------------------------------ */
/* Validation                                                                */
/* ------------------------------------------------------------------------ */

static void test_validate_required(void **state)
{
    const sluice_config_def_t def = {
        .name = "api.key", .type = SLUICE_CONFIG_STRING, .flags = SLUICE_CONFIG_REQUIRED,
        .default_value = "ignored",
    };
    const sluice_config_def_t optional = {.name = "opt", .type = SLUICE_CONFIG_STRING};
    errs_t e;

    (void)state;
    assert_int_equal(validate1(&def, NULL, &e), 1);
    assert_string_equal(e.key[0], "api.key");
    assert_string_equal(e.msg[0], "missing required value");
    assert_int_equal(validate1(&def, "", &e), 1);
    assert_string_equal(e.key[0], "api.key");
    assert_contains(e.msg[0], "empty");
    assert_int_equal(validate1(&def, "k", &e), 0);
    assert_int_equal(validate1(&optional, NULL, &e), 0);
    assert_int_equal(validate1(&optional, "", &e), 0);
}

static void test_validate_int(void **state)
{
    const sluice_config_def_t def = {.name = "n", .type = SLUICE_CONFIG_INT};
    errs_t e;

    (void)state;
    assert_int_equal(validate1(&def, "abc", &e), 1);
    assert_string_equal(e.key[0], "n");
    assert_string_equal(e.msg[0], "'abc' is not an integer");
    assert_int_equal(validate1(&def, "12x", &e), 1);
    assert_int_equal(validate1(&def, "1.5", &e), 1);
    assert_int_equal(validate1(&def, " 1", &e), 1);
    assert_int_equal(validate1(&def, "", &e), 1);
    assert_int_equal(validate1(&def, "99999999999999999999", &e), 1);
    assert_int_equal(validate1(&def, "-9223372036854775808", &e), 0);
    assert_int_equal(validate1(&def, "42", &e), 0);
}

static void test_validate_int_range(void **state)
{
    errs_t e;

    (void)state;
    assert_int_equal(validate1(&port_def, "70000", &e), 1);
    assert_string_equal(e.key[0], "port");
    assert_string_equal(e.msg[0], "value 70000 is out of range [1, 65535]");
    assert_int_equal(validate1(&port_def, "0", &e), 1);
    assert_string_equal(e.msg[0], "value 0 is out of range [1, 65535]");
    assert_int_equal(validate1(&port_def, "1", &e), 0);
    assert_int_equal(validate1(&port_def, "65535", &e), 0);
    assert_int_equal(validate1(&port_def, "65536", &e), 1);
}

static void test_validate_no_range_unless_min_below_max(void **state)
{
    const sluice_config_def_t same = {.name = "n", .type = SLUICE_CONFIG_INT, .min = 5, .max = 5};
    const sluice_config_def_t inverted = {
        .name = "d", .type = SLUICE_CONFIG_DOUBLE, .min = 10, .max = -10,
    };
    errs_t e;

    (void)state;
    assert_int_equal(validate1(&same, "1000", &e), 0);
    assert_int_equal(validate1(&inverted, "1e9", &e), 0);
}

static void test_validate_double(void **state)
{
    const sluice_config_def_t def = {
        .name = "ratio", .type = SLUICE_CONFIG_DOUBLE, .min = 0, .max = 1,
    };
    errs_t e;

    (void)state;
    assert_int_equal(validate1(&def, "0.5", &e), 0);
    assert_int_equal(validate1(&def, "1", &e), 0);
    assert_int_equal(validate1(&def, "half", &e), 1);
    assert_string_equal(e.key[0], "ratio");
    assert_contains(e.msg[0], "'half' is not");
    assert_int_equal(validate1(&def, "nan", &e), 1);
    assert_int_equal(validate1(&def, "inf", &e), 1);
    assert_int_equal(validate1(&def, "1.5", &e), 1);
    assert_string_equal(e.msg[0], "value 1.5 is out of range [0, 1]");
    assert_int_equal(validate1(&def, "-0.25", &e), 1);
    assert_string_equal(e.msg[0], "value -0.25 is out of range [0, 1]");
}

static void test_validate_bool(void **state)
{
    const sluice_config_def_t def = {.name = "tls", .type = SLUICE_CONFIG_BOOL};
    errs_t e;

    (void)state;
    assert_int_equal(validate1(&def, "true", &e), 0);
    assert_int_equal(validate1(&def, "FALSE", &e), 0);
    assert_int_equal(validate1(&def, "yes", &e), 1);
    assert_string_equal(e.key[0], "tls");
    assert_contains(e.msg[0], "'yes' is not a boolean");
    assert_int_equal(validate1(&def, "1", &e), 1);
}

static void test_validate_allowed(void **state)
{
    const sluice_config_def_t def = {
        .name = "mode", .type = SLUICE_CONFIG_STRING, .allowed = "a|bb|c",
    };
    errs_t e;

    (void)state;
    assert_int_equal(validate1(&def, "a", &e), 0);
    assert_int_equal(validate1(&def, "bb", &e), 0);
    assert_int_equal(validate1(&def, "c", &e), 0);
    assert_int_equal(validate1(&def, "x", &e), 1);
    assert_string_equal(e.key[0], "mode");
    assert_string_equal(e.msg[0], "'x' is not one of a|bb|c");
    /* Whole words only, case-sensitive. */
    assert_int_equal(validate1(&def, "b", &e), 1);
    assert_int_equal(validate1(&def, "a|bb", &e), 1);
    assert_int_equal(validate1(&def, "A", &e), 1);
    assert_int_equal(validate1(&def, NULL, &e), 0);
}

static void test_validate_list(void **state)
{
    const sluice_config_def_t def = {
        .name = "topics", .type = SLUICE_CONFIG_LIST, .flags = SLUICE_CONFIG_REQUIRED,
    };
    errs_t e;

    (void)state;
    assert_int_equal(validate1(&def, "a,b,c", &e), 0);
    assert_int_equal(validate1(&def, " any , text|x ", &e), 0);
    assert_int_equal(validate1(&def, "", &e), 1);
    assert_string_equal(e.key[0], "topics");
    assert_int_equal(validate1(&def, NULL, &e), 1);
}

static void test_validate_secret_not_echoed(void **state)
{
    const sluice_config_def_t pin = {
        .name = "pin", .type = SLUICE_CONFIG_INT, .flags = SLUICE_CONFIG_SECRET,
        .min = 0, .max = 9999,
    };
    const sluice_config_def_t word = {
        .name = "word", .type = SLUICE_CONFIG_STRING, .flags = SLUICE_CONFIG_SECRET,
        .allowed = "open|sesame",
    };
    const sluice_config_def_t flag = {
        .name = "flag", .type = SLUICE_CONFIG_BOOL, .flags = SLUICE_CONFIG_SECRET,
    };
    const sluice_config_def_t ratio = {
        .name = "ratio", .type = SLUICE_CONFIG_DOUBLE, .flags = SLUICE_CONFIG_SECRET,
    };
    errs_t e;

    (void)state;
    assert_int_equal(validate1(&pin, SECRET, &e), 1);
    assert_string_equal(e.msg[0], "value is not an integer");
    assert_int_equal(validate1(&pin, "123456789", &e), 1);
    assert_string_equal(e.msg[0], "value is out of range [0, 9999]");
    assert_not_contains(e.msg[0], "123456789");
    assert_int_equal(validate1(&word, SECRET, &e), 1);
    assert_string_equal(e.msg[0], "value is not one of open|sesame");
    assert_int_equal(validate1(&flag, SECRET, &e), 1);
    assert_not_contains(e.msg[0], SECRET);
    assert_int_equal(validate1(&ratio, SECRET, &e), 1);
    assert_not_contains(e.msg[0], SECRET);
    assert_string_equal(e.key[0], "ratio");
}

static void test_validate_unknown_keys_pass_through(void **state)
{
    const sluice_config_def_t defs[] = {
        {.name = "port", .type = SLUICE_CONFIG_INT},
        {0},
    };
    sl_props_t *p = props_of("port", "80", "unknown.key", "not a number",
                             "transforms.x.type", "[]", NULL);
    errs_t e = {0};

    (void)state;
    assert_int_equal(sl_config_validate(p, defs, sizeof(defs[0]), collect, &e), 0);
    assert_int_equal(e.n, 0);
    assert_int_equal(sl_props_count(p), 3);
    assert_string_equal(sl_props_get(p, "unknown.key"), "not a number");
    /* No definitions at all: everything passes. */
    assert_int_equal(sl_config_validate(p, NULL, sizeof(defs[0]), collect, &e), 0);
    sl_props_free(p);
}

static void test_validate_counts_every_problem(void **state)
{
    const sluice_config_def_t defs[] = {
        {.name = "a", .type = SLUICE_CONFIG_INT},
        {.name = "b", .type = SLUICE_CONFIG_BOOL},
        {.name = "c", .type = SLUICE_CONFIG_STRING, .flags = SLUICE_CONFIG_REQUIRED},
        {.name = "d", .type = SLUICE_CONFIG_DOUBLE},
        {.name = "e", .type = (sluice_config_type_t)99},
        {0},
    };
    sl_props_t *p = props_of("a", "x", "b", "y", "d", "1.0", "e", "v", NULL);
    errs_t e = {0};

    (void)state;
    assert_int_equal(sl_config_validate(p, defs, sizeof(defs[0]), NULL, NULL), 4);
    assert_int_equal(sl_config_validate(p, defs, sizeof(defs[0]), collect, &e), 4);
    assert_int_equal(e.n, 4);
    assert_string_equal(e.key[0], "a");
    assert_string_equal(e.key[1], "b");
    assert_string_equal(e.key[2], "c");
    assert_string_equal(e.key[3], "e");
    assert_contains(e.msg[3], "unknown config type");
    sl_props_free(p);
}

static void test_def_find_and_value_default(void **state)
{
    const sluice_config_def_t defs[] = {
        {.name = "host", .type = SLUICE_CONFIG_STRING, .default_value = "localhost"},
        {.name = "port", .type = SLUICE_CONFIG_INT, .default_value = "8080"},
        {.name = "user", .type = SLUICE_CONFIG_STRING},
        {0},
    };
    sl_props_t *p = props_of("port", "9090", "extra", "e", "host", "", NULL);

    (void)state;
    assert_ptr_equal(sl_config_def_find(defs, sizeof(defs[0]), "port"), &defs[1]);
    assert_ptr_equal(sl_config_def_find(defs, sizeof(defs[0]), "host"), &defs[0]);
    assert_null(sl_config_def_find(defs, sizeof(defs[0]), "extra"));
    assert_null(sl_config_def_find(NULL, sizeof(defs[0]), "port"));
    /* Set values win over defaults, even an empty one. */
    assert_string_equal(sl_config_value(p, defs, sizeof(defs[0]), "port"), "9090");
    assert_string_equal(sl_config_value(p, defs, sizeof(defs[0]), "host"), "");
    assert_string_equal(sl_config_value(p, defs, sizeof(defs[0]), "extra"), "e");
    assert_null(sl_config_value(p, defs, sizeof(defs[0]), "user"));
    assert_null(sl_config_value(p, defs, sizeof(defs[0]), "nothing"));
    assert_int_equal(sl_props_unset(p, "port"), 1);
    assert_string_equal(sl_config_value(p, defs, sizeof(defs[0]), "port"), "8080");
    assert_string_equal(sl_config_value(NULL, defs, sizeof(defs[0]), "port"), "8080");
    sl_props_free(p);
}

/* A plugin built against a later SDK whose def struct grew at its end. */
typedef struct bigger_def {
    sluice_config_def_t def;
    const char *added_later;
    double more[3];
} bigger_def_t;

static void test_def_stride_larger_than_struct(void **state)
{
    const bigger_def_t defs[] = {
        {{.name = "host", .type = SLUICE_CONFIG_STRING, .default_value = "h"}, "x", {1, 2, 3}},
        {{.name = "port", .type = SLUICE_CONFIG_INT, .min = 1, .max = 65535,
          .default_value = "8080"}, "y", {4, 5, 6}},
        {{.name = "mode", .type = SLUICE_CONFIG_STRING, .allowed = "a|b",
          .flags = SLUICE_CONFIG_REQUIRED}, "z", {7, 8, 9}},
        {{0}, NULL, {0}},
    };
    const size_t stride = sizeof(bigger_def_t);
    sl_props_t *p = props_of("port", "70000", "mode", "q", NULL);
    errs_t e = {0};

    (void)state;
    assert_true(stride > sizeof(sluice_config_def_t));
    assert_int_equal(sl_config_validate(p, &defs[0].def, stride, collect, &e), 2);
    assert_string_equal(e.key[0], "port");
    assert_string_equal(e.msg[0], "value 70000 is out of range [1, 65535]");
    assert_string_equal(e.key[1], "mode");
    assert_string_equal(e.msg[1], "'q' is not one of a|b");
    assert_ptr_equal(sl_config_def_find(&defs[0].def, stride, "mode"), &defs[2].def);
    assert_null(sl_config_def_find(&defs[0].def, stride, "none"));
    assert_string_equal(sl_config_value(p, &defs[0].def, stride, "host"), "h");
    assert_int_equal(sl_props_unset(p, "port"), 1);
    assert_string_equal(sl_config_value(p, &defs[0].def, stride, "port"), "8080");
    sl_props_free(p);
}

static void test_def_stride_too_small(void **state)
{
    const sluice_config_def_t defs[] = {
        {.name = "port", .type = SLUICE_CONFIG_INT, .default_value = "1"},
        {0},
    };
    sl_props_t *p = props_of("port", "x", NULL);
    errs_t e = {0};

    (void)state;
    assert_int_equal(sl_config_validate(p, defs, sizeof(defs[0]) - 8, collect, &e), 1);
    assert_int_equal(e.n, 1);
    assert_contains(e.msg[0], "config definition size");
    assert_int_equal(sl_config_validate(p, defs, 0, NULL, NULL), 1);
    assert_null(sl_config_def_find(defs, 0, "port"));
    assert_int_equal(sl_props_unset(p, "port"), 1);
    assert_null(sl_config_value(p, defs, 0, "port"));
    sl_props_free(p);
}

/* ------------------------------------------------------------------------ */
/* Parsers                                                                   */
/* ------------------------------------------------------------------------ */

static void test_parse_int64(void **state)
{
    int64_t v = 7;

    (void)state;
    assert_int_equal(sl_parse_int64("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(sl_parse_int64("-17", &v), 0);
    assert_int_equal(v, -17);
    assert_int_equal(sl_parse_int64("+5", &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(sl_parse_int64("9223372036854775807", &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(sl_parse_int64("-9223372036854775808", &v), 0);
    assert_true(v == INT64_MIN);
    v = 7;
    assert_int_equal(sl_parse_int64("9223372036854775808", &v), -1);
    assert_int_equal(sl_parse_int64("-9223372036854775809", &v), -1);
    assert_int_equal(sl_parse_int64("", &v), -1);
    assert_int_equal(sl_parse_int64(" 1", &v), -1);
    assert_int_equal(sl_parse_int64("1 ", &v), -1);
    assert_int_equal(sl_parse_int64("\t1", &v), -1);
    assert_int_equal(sl_parse_int64("12abc", &v), -1);
    assert_int_equal(sl_parse_int64("1.0", &v), -1);
    assert_int_equal(sl_parse_int64("0x10", &v), -1);
    assert_int_equal(sl_parse_int64("-", &v), -1);
    assert_int_equal(sl_parse_int64(NULL, &v), -1);
    assert_int_equal(v, 7); /* untouched on error */
    assert_int_equal(sl_parse_int64("3", NULL), 0);
}

static void test_parse_double(void **state)
{
    double v = 7;

    (void)state;
    assert_int_equal(sl_parse_double("2.5", &v), 0);
    assert_true(v == 2.5);
    assert_int_equal(sl_parse_double("-1e3", &v), 0);
    assert_true(v == -1000.0);
    assert_int_equal(sl_parse_double("42", &v), 0);
    assert_true(v == 42.0);
    v = 7;
    assert_int_equal(sl_parse_double("nan", &v), -1);
    assert_int_equal(sl_parse_double("inf", &v), -1);
    assert_int_equal(sl_parse_double("-Infinity", &v), -1);
    assert_int_equal(sl_parse_double("1e999", &v), -1);
    assert_int_equal(sl_parse_double("", &v), -1);
    assert_int_equal(sl_parse_double(" 1", &v), -1);
    assert_int_equal(sl_parse_double("1 ", &v), -1);
    assert_int_equal(sl_parse_double("1.5x", &v), -1);
    assert_int_equal(sl_parse_double(".", &v), -1);
    assert_int_equal(sl_parse_double(NULL, &v), -1);
    assert_true(v == 7.0);
}

static void test_parse_bool(void **state)
{
    int v = 7;

    (void)state;
    assert_int_equal(sl_parse_bool("true", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(sl_parse_bool("FALSE", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(sl_parse_bool("True", &v), 0);
    assert_int_equal(v, 1);
    v = 7;
    assert_int_equal(sl_parse_bool("yes", &v), -1);
    assert_int_equal(sl_parse_bool("1", &v), -1);
    assert_int_equal(sl_parse_bool("0", &v), -1);
    assert_int_equal(sl_parse_bool("", &v), -1);
    assert_int_equal(sl_parse_bool(" true", &v), -1);
    assert_int_equal(sl_parse_bool("truex", &v), -1);
    assert_int_equal(sl_parse_bool(NULL, &v), -1);
    assert_int_equal(v, 7);
}


/* Two processes writing one file through sl_file_write_atomic at once (two
 * workers sharing a rest.port.file) both succeed, and the file always holds
 * one whole value: with a shared temp name, one rename took the other's
 * temp away and the loser failed (a worker exited at its start). */
static void test_write_atomic_concurrent_processes(void **state)
{
    const char *path = temp_file(state, "start\n");
    char err[512];
    pid_t kids[3];
    for (int k = 0; k < 3; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            char text[32];
            snprintf(text, sizeof(text), "%d\n", 1000 + k);
            for (int i = 0; i < 100; i++)
                if (sl_file_write_atomic(path, text, err, sizeof(err)) != 0) _exit(1);
            _exit(0);
        }
    }
    int failed = 0;
    for (int k = 0; k < 3; k++) {
        int st = 0;
        assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
        failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    assert_int_equal(failed, 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int v = 0;
    assert_int_equal(fscanf(f, "%d", &v), 1);
    fclose(f);
    assert_true(v >= 1000 && v <= 1002);
}

/* ------------------------------------------------------------------------ */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_write_atomic_concurrent_processes),
        T(test_props_empty),
        T(test_props_set_keeps_insertion_order),
        T(test_props_set_replaces_in_place),
        T(test_props_set_copies_strings),
        T(test_props_set_rejects_null),
        T(test_props_unset),
        T(test_props_sub),
        T(test_props_dup_is_deep),
        T(test_props_to_json),
        T(test_from_json_strings_keep_order),
        T(test_from_json_integers),
        T(test_from_json_reals),
        T(test_from_json_bools_and_null),
        T(test_from_json_array_is_error),
        T(test_from_json_object_is_error),
        T(test_from_json_not_object),
        T(test_from_json_nul_in_string),
        T(test_load_wrapped_shape),
        T(test_load_flat_shape),
        T(test_load_same_name_in_both_places),
        T(test_load_name_mismatch),
        T(test_load_missing_connector_class),
        T(test_load_missing_name),
        T(test_load_malformed_json),
        T(test_load_missing_file),
        T(test_load_bad_shapes),
        T(test_load_duplicate_key),
        T(test_load_bad_value_names_file_and_key),
        T(test_worker_config_load),
        T(test_resolve_env),
        T(test_resolve_env_default),
        T(test_resolve_env_unset),
        T(test_resolve_leaves_other_values_alone),
        T(test_resolve_file_json),
        T(test_resolve_file_json_bad_key),
        T(test_resolve_file_properties),
        T(test_resolve_file_dotenv),
        T(test_resolve_whole_file),
        T(test_resolve_path_with_colon),
        T(test_resolve_several_refs_and_literals),
        T(test_resolve_escape),
        T(test_resolve_plain_dollars),
        T(test_resolve_no_recursion),
        T(test_resolve_unknown_provider),
        T(test_resolve_missing_file),
        T(test_resolve_missing_key_never_leaks),
        T(test_resolve_file_with_nul_byte),
        T(test_resolve_empty_path_or_key),
        T(test_resolve_unterminated),
        T(test_resolve_failure_is_atomic_and_quiet),
        T(test_resolve_empty_props),
        T(test_validate_required),
        T(test_validate_int),
        T(test_validate_int_range),
        T(test_validate_no_range_unless_min_below_max),
        T(test_validate_double),
        T(test_validate_bool),
        T(test_validate_allowed),
        T(test_validate_list),
        T(test_validate_secret_not_echoed),
        T(test_validate_unknown_keys_pass_through),
        T(test_validate_counts_every_problem),
        T(test_def_find_and_value_default),
        T(test_def_stride_larger_than_struct),
        T(test_def_stride_too_small),
        T(test_parse_int64),
        T(test_parse_double),
        T(test_parse_bool),
    };

    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
