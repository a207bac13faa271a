/*
 * config.c - props (an ordered string map), Kafka Connect-shaped JSON config
 * files, config providers (${env:VAR}, ${file:path[:key]}) and validation
 * against a plugin's config definitions. See config.h for the contract.
 *
 * No global mutable state: everything lives in the sl_props_t the caller
 * owns or on the stack. Error messages name the file, config key and
 * reference involved but never a value resolved from a provider, and never
 * the value of a SECRET key.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Biggest file a ${file:...} reference may read (secrets are small; this
 * stops ${file:/dev/zero} from eating the heap). */
#define FILE_REF_MAX ((size_t)16 << 20)
/* Room for any JSON number as text: %.17g of a double is at most 24 chars. */
#define NUMBER_TEXT_MAX 48
/* One validation message. */
#define MESSAGE_MAX 256
/* Top-level keys of the {"name", "config"} shape (GET /connectors/<name>
 * also returns "tasks" and "type", so its output can be loaded back). */
static const char *const wrapper_keys[] = {"name", "config", "tasks", "type", NULL};

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *fmt, ...) SLUICE_PRINTF(3, 4);

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Thread-safe strerror(). */
static const char *errno_text(int e, char *buf, size_t len)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(e, buf, len);
#else
    if (strerror_r(e, buf, len) != 0)
        snprintf(buf, len, "error %d", e);
    return buf;
#endif
}

/* ------------------------------------------------------------------------ */
/* A growable string                                                         */
/* ------------------------------------------------------------------------ */

typedef struct sbuf {
    char *data; /* NUL-terminated once anything was added */
    size_t len;
    size_t cap;
} sbuf_t;

static int sbuf_add(sbuf_t *b, const char *s, size_t n)
{
    size_t need, cap;
    char *data;

    if (n > SIZE_MAX - b->len - 1)
        return -1;
    need = b->len + n + 1;
    if (b->data == NULL || need > b->cap) {
        cap = b->cap ? b->cap : 64;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        data = realloc(b->data, cap);
        if (data == NULL)
            return -1;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Props                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct sl_prop {
    char *key;
    char *value;
} sl_prop_t;

struct sl_props {
    sl_prop_t *items; /* insertion order */
    size_t count;
    size_t cap;
};

sl_props_t *sl_props_new(void)
{
    return calloc(1, sizeof(sl_props_t));
}

void sl_props_free(sl_props_t *p)
{
    size_t i;

    if (p == NULL)
        return;
    for (i = 0; i < p->count; i++) {
        free(p->items[i].key);
        free(p->items[i].value);
    }
    free(p->items);
    free(p);
}

/* Index of key, or p->count when absent. */
static size_t props_index(const sl_props_t *p, const char *key)
{
    size_t i;

    for (i = 0; i < p->count; i++)
        if (strcmp(p->items[i].key, key) == 0)
            return i;
    return p->count;
}

static int props_reserve(sl_props_t *p)
{
    size_t cap;
    sl_prop_t *items;

    if (p->count < p->cap)
        return 0;
    cap = p->cap ? p->cap * 2 : 8;
    if (cap > SIZE_MAX / sizeof(*items))
        return -1;
    items = realloc(p->items, cap * sizeof(*items));
    if (items == NULL)
        return -1;
    p->items = items;
    p->cap = cap;
    return 0;
}

static int props_append(sl_props_t *p, const char *key, const char *value)
{
    char *k, *v;

    if (props_reserve(p) != 0)
        return -1;
    k = strdup(key);
    v = strdup(value);
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return -1;
    }
    p->items[p->count].key = k;
    p->items[p->count].value = v;
    p->count++;
    return 0;
}

sl_props_t *sl_props_dup(const sl_props_t *p)
{
    sl_props_t *copy;
    size_t i;

    if (p == NULL)
        return NULL;
    copy = sl_props_new();
    if (copy == NULL)
        return NULL;
    for (i = 0; i < p->count; i++) {
        if (props_append(copy, p->items[i].key, p->items[i].value) != 0) {
            sl_props_free(copy);
            return NULL;
        }
    }
    return copy;
}

int sl_props_set(sl_props_t *p, const char *key, const char *value)
{
    size_t i;
    char *v;

    if (p == NULL || key == NULL || value == NULL)
        return -1;
    i = props_index(p, key);
    if (i == p->count)
        return props_append(p, key, value);
    /* Copy before freeing: value may be the current value itself. */
    v = strdup(value);
    if (v == NULL)
        return -1;
    free(p->items[i].value);
    p->items[i].value = v;
    return 0;
}

int sl_props_unset(sl_props_t *p, const char *key)
{
    size_t i;

    if (p == NULL || key == NULL)
        return 0;
    i = props_index(p, key);
    if (i == p->count)
        return 0;
    free(p->items[i].key);
    free(p->items[i].value);
    memmove(&p->items[i], &p->items[i + 1], (p->count - i - 1) * sizeof(p->items[0]));
    p->count--;
    return 1;
}

const char *sl_props_get(const sl_props_t *p, const char *key)
{
    size_t i;

    if (p == NULL || key == NULL)
        return NULL;
    i = props_index(p, key);
    return i < p->count ? p->items[i].value : NULL;
}

size_t sl_props_count(const sl_props_t *p)
{
    return p ? p->count : 0;
}

const char *sl_props_key_at(const sl_props_t *p, size_t i)
{
    return p && i < p->count ? p->items[i].key : NULL;
}

const char *sl_props_value_at(const sl_props_t *p, size_t i)
{
    return p && i < p->count ? p->items[i].value : NULL;
}

sl_props_t *sl_props_sub(const sl_props_t *p, const char *prefix)
{
    sl_props_t *sub;
    size_t i, plen;
    const char *key;

    if (p == NULL || prefix == NULL)
        return NULL;
    sub = sl_props_new();
    if (sub == NULL)
        return NULL;
    plen = strlen(prefix);
    for (i = 0; i < p->count; i++) {
        key = p->items[i].key;
        /* A key equal to the prefix would become "": not a sub-key. */
        if (strncmp(key, prefix, plen) != 0 || key[plen] == '\0')
            continue;
        if (props_append(sub, key + plen, p->items[i].value) != 0) {
            sl_props_free(sub);
            return NULL;
        }
    }
    return sub;
}

/* ------------------------------------------------------------------------ */
/* JSON <-> props                                                            */
/* ------------------------------------------------------------------------ */

typedef enum scalar_kind {
    SCALAR_TEXT,   /* *text is set */
    SCALAR_NULL,   /* JSON null */
    SCALAR_ARRAY,  /* not a scalar */
    SCALAR_OBJECT, /* not a scalar */
    SCALAR_NUL,    /* a string holding a NUL byte: no C string can carry it */
} scalar_kind_t;

/* The shortest %g text that reads back as d, kept recognisable as a real
 * ("3.0", not "3") the way jansson's own encoder writes it. */
static void format_real(double d, char *buf, size_t len)
{
    size_t n;
    int prec;

    for (prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    n = strlen(buf);
    if (buf[strspn(buf, "-0123456789")] == '\0' && n + 3 <= len)
        memcpy(buf + n, ".0", 3);
}

/* A JSON scalar as config text: strings as they are, numbers as JSON text,
 * booleans as "true"/"false". buf (NUMBER_TEXT_MAX) holds number text. */
static scalar_kind_t scalar_text(const json_t *v, char *buf, size_t len, const char **text)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        if (strlen(json_string_value(v)) != json_string_length(v))
            return SCALAR_NUL;
        *text = json_string_value(v);
        return SCALAR_TEXT;
    case JSON_INTEGER:
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *text = buf;
        return SCALAR_TEXT;
    case JSON_REAL:
        format_real(json_real_value(v), buf, len);
        *text = buf;
        return SCALAR_TEXT;
    case JSON_TRUE:
        *text = "true";
        return SCALAR_TEXT;
    case JSON_FALSE:
        *text = "false";
        return SCALAR_TEXT;
    case JSON_NULL:
        return SCALAR_NULL;
    case JSON_ARRAY:
        return SCALAR_ARRAY;
    case JSON_OBJECT:
    default:
        return SCALAR_OBJECT;
    }
}

static const char *scalar_problem(scalar_kind_t kind)
{
    switch (kind) {
    case SCALAR_ARRAY:
        return "value must be a string or a scalar, not an array";
    case SCALAR_OBJECT:
        return "value must be a string or a scalar, not an object";
    case SCALAR_NUL:
        return "value must not contain a NUL byte";
    default:
        return "value is null";
    }
}

static int props_add_json(sl_props_t *p, const char *key, const json_t *val,
                          char *err, size_t errlen)
{
    char num[NUMBER_TEXT_MAX];
    const char *text = NULL;
    scalar_kind_t kind = scalar_text(val, num, sizeof(num), &text);

    if (kind == SCALAR_NULL)
        return 0;
    if (kind != SCALAR_TEXT) {
        set_err(err, errlen, "config key '%s': %s", key, scalar_problem(kind));
        return -1;
    }
    if (sl_props_set(p, key, text) != 0) {
        set_err(err, errlen, "config key '%s': out of memory", key);
        return -1;
    }
    return 0;
}

sl_props_t *sl_props_from_json(const json_t *obj, char *err, size_t errlen)
{
    sl_props_t *p;
    const char *key;
    json_t *val;

    if (!json_is_object(obj)) {
        set_err(err, errlen, "config must be a JSON object");
        return NULL;
    }
    p = sl_props_new();
    if (p == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    /* jansson iterates objects in insertion (= file) order. */
    json_object_foreach((json_t *)obj, key, val) {
        if (props_add_json(p, key, val, err, errlen) != 0) {
            sl_props_free(p);
            return NULL;
        }
    }
    return p;
}

json_t *sl_props_to_json(const sl_props_t *p)
{
    json_t *obj;
    size_t i;

    if (p == NULL)
        return NULL;
    obj = json_object();
    if (obj == NULL)
        return NULL;
    for (i = 0; i < p->count; i++) {
        /* json_string() is NULL for text that is not UTF-8: fail whole. */
        if (json_object_set_new(obj, p->items[i].key, json_string(p->items[i].value)) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

/* ------------------------------------------------------------------------ */
/* Config files                                                              */
/* ------------------------------------------------------------------------ */

/* Reads path as a JSON object (duplicate keys rejected). */
static json_t *load_json_object(const char *path, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root;
    FILE *f;
    char ebuf[128];

    f = fopen(path, "rb");
    if (f == NULL) {
        set_err(err, errlen, "%s: cannot open: %s", path, errno_text(errno, ebuf, sizeof(ebuf)));
        return NULL;
    }
    root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    fclose(f);
    if (root == NULL) {
        set_err(err, errlen, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column,
                jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        set_err(err, errlen, "%s: the top level must be a JSON object", path);
        json_decref(root);
        return NULL;
    }
    return root;
}

/* sl_props_from_json() with the file name in front of its error. */
static sl_props_t *props_from_file_json(const char *path, const json_t *obj, char *err,
                                        size_t errlen)
{
    char why[512];
    sl_props_t *p = sl_props_from_json(obj, why, sizeof(why));

    if (p == NULL)
        set_err(err, errlen, "%s: %s", path, why);
    return p;
}

static int is_wrapper_key(const char *key)
{
    size_t i;

    for (i = 0; wrapper_keys[i] != NULL; i++)
        if (strcmp(key, wrapper_keys[i]) == 0)
            return 1;
    return 0;
}

/* Checks the {"name": ..., "config": {...}} shape; *top_name is the top-level
 * name or NULL when there is none. */
static int check_wrapper(const char *path, const json_t *root, const char **top_name,
                         char *err, size_t errlen)
{
    const char *key;
    json_t *val;
    const json_t *name;

    json_object_foreach((json_t *)root, key, val) {
        if (!is_wrapper_key(key)) {
            set_err(err, errlen,
                    "%s: unexpected top-level key '%s' (connector settings belong "
                    "inside 'config')", path, key);
            return -1;
        }
    }
    if (!json_is_object(json_object_get(root, "config"))) {
        set_err(err, errlen, "%s: key 'config' must be a JSON object", path);
        return -1;
    }
    name = json_object_get(root, "name");
    if (name != NULL && !json_is_string(name)) {
        set_err(err, errlen, "%s: key 'name' must be a string", path);
        return -1;
    }
    *top_name = name ? json_string_value(name) : NULL;
    return 0;
}

/* Checks name and connector.class, puts "name" into the config and returns
 * a copy of the name in *name. */
static int finish_connector(const char *path, const char *top_name, sl_props_t *props,
                            char **name, char *err, size_t errlen)
{
    const char *cfg_name = sl_props_get(props, "name");
    const char *cls = sl_props_get(props, "connector.class");
    const char *nm = top_name ? top_name : cfg_name;

    if (top_name != NULL && cfg_name != NULL && strcmp(top_name, cfg_name) != 0) {
        set_err(err, errlen, "%s: name '%s' does not match the config's 'name' ('%s')",
                path, top_name, cfg_name);
        return -1;
    }
    if (nm == NULL || *nm == '\0') {
        set_err(err, errlen, "%s: missing required key 'name'", path);
        return -1;
    }
    if (cls == NULL || *cls == '\0') {
        set_err(err, errlen, "%s: missing required key 'connector.class'", path);
        return -1;
    }
    *name = strdup(nm);
    if (*name == NULL || (cfg_name == NULL && sl_props_set(props, "name", nm) != 0)) {
        free(*name);
        *name = NULL;
        set_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    return 0;
}

static int connector_from_json(const char *path, const json_t *root, char **name,
                               sl_props_t **config, char *err, size_t errlen)
{
    const char *top_name = NULL;
    const json_t *cfg = root; /* flat (PUT /config) shape */
    sl_props_t *props;

    if (json_object_get(root, "config") != NULL) {
        if (check_wrapper(path, root, &top_name, err, errlen) != 0)
            return -1;
        cfg = json_object_get(root, "config");
    }
    props = props_from_file_json(path, cfg, err, errlen);
    if (props == NULL)
        return -1;
    if (finish_connector(path, top_name, props, name, err, errlen) != 0) {
        sl_props_free(props);
        return -1;
    }
    *config = props;
    return 0;
}

int sl_connector_config_load(const char *path, char **name, sl_props_t **config,
                             char *err, size_t errlen)
{
    json_t *root;
    int rc;

    if (name != NULL)
        *name = NULL;
    if (config != NULL)
        *config = NULL;
    if (path == NULL || name == NULL || config == NULL) {
        set_err(err, errlen, "sl_connector_config_load: invalid argument");
        return -1;
    }
    root = load_json_object(path, err, errlen);
    if (root == NULL)
        return -1;
    rc = connector_from_json(path, root, name, config, err, errlen);
    json_decref(root);
    return rc;
}

sl_props_t *sl_worker_config_load(const char *path, char *err, size_t errlen)
{
    json_t *root;
    sl_props_t *props;

    if (path == NULL) {
        set_err(err, errlen, "sl_worker_config_load: invalid argument");
        return NULL;
    }
    root = load_json_object(path, err, errlen);
    if (root == NULL)
        return NULL;
    props = props_from_file_json(path, root, err, errlen);
    json_decref(root);
    return props;
}

/* ------------------------------------------------------------------------ */
/* Config providers                                                          */
/* ------------------------------------------------------------------------ */

/* One ${...} reference being resolved, for error messages. */
typedef struct ref {
    const char *cfg_key; /* the config key whose value holds it */
    const char *text;    /* "${...}" as written (not NUL-terminated) */
    int text_len;
    char *err;
    size_t errlen;
} ref_t;

static void ref_err(const ref_t *r, const char *fmt, ...) SLUICE_PRINTF(2, 3);

static void ref_err(const ref_t *r, const char *fmt, ...)
{
    char why[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    set_err(r->err, r->errlen, "config key '%s': reference '%.*s': %s", r->cfg_key,
            r->text_len, r->text, why);
}

static int ref_add(const ref_t *r, sbuf_t *out, const char *s, size_t n)
{
    if (sbuf_add(out, s, n) != 0) {
        ref_err(r, "out of memory");
        return -1;
    }
    return 0;
}

/* "VAR" or "VAR:-default" (modified in place). As in the shell, the default
 * applies when VAR is unset or empty; it ends at the reference's first '}'. */
static int resolve_env(const ref_t *r, char *var, sbuf_t *out)
{
    char *dflt = strstr(var, ":-");
    const char *v;

    if (dflt != NULL) {
        *dflt = '\0';
        dflt += 2;
    }
    if (*var == '\0') {
        ref_err(r, "empty environment variable name");
        return -1;
    }
    v = getenv(var);
    if (dflt != NULL && (v == NULL || *v == '\0'))
        v = dflt;
    if (v == NULL) {
        ref_err(r, "environment variable '%s' is not set", var);
        return -1;
    }
    return ref_add(r, out, v, strlen(v));
}

/* Reads a whole stream: 0, or an errno value (EFBIG past FILE_REF_MAX). */
static int read_stream(FILE *f, char **data, size_t *len)
{
    sbuf_t b = {0};
    char chunk[4096];
    size_t n;
    int e;

    errno = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        e = b.len + n > FILE_REF_MAX ? EFBIG : sbuf_add(&b, chunk, n) != 0 ? ENOMEM : 0;
        if (e != 0) {
            free(b.data);
            return e;
        }
    }
    if (ferror(f)) {
        e = errno ? errno : EIO;
        free(b.data);
        return e;
    }
    if (b.data == NULL && sbuf_add(&b, "", 0) != 0)
        return ENOMEM;
    *data = b.data;
    *len = b.len;
    return 0;
}

/* The file's bytes, NUL-terminated, in *data (caller frees). */
static int read_ref_file(const ref_t *r, const char *path, char **data, size_t *len)
{
    char ebuf[128];
    FILE *f = fopen(path, "rb");
    int e;

    if (f == NULL) {
        ref_err(r, "cannot open file '%s': %s", path, errno_text(errno, ebuf, sizeof(ebuf)));
        return -1;
    }
    e = read_stream(f, data, len);
    fclose(f);
    if (e != 0) {
        ref_err(r, "cannot read file '%s': %s", path,
                e == EFBIG ? "larger than 16 MiB" : errno_text(e, ebuf, sizeof(ebuf)));
        return -1;
    }
    if (memchr(*data, '\0', *len) != NULL) {
        free(*data);
        ref_err(r, "file '%s' contains a NUL byte", path);
        return -1;
    }
    return 0;
}

/* Whitespace-trimmed s, trimmed in place. */
static char *trim(char *s)
{
    size_t n;

    while (isspace((unsigned char)*s))
        s++;
    n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* s without one matching pair of surrounding single or double quotes. */
static char *unquote(char *s)
{
    size_t n = strlen(s);

    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
        s[n - 1] = '\0';
        return s + 1;
    }
    return s;
}

/* Splits a .properties / .env line in place; -1 for blank, comment and
 * lines without '='. */
static int parse_kv_line(char *line, char **key, char **value)
{
    char *eq, *rest;

    line = trim(line);
    if (*line == '\0' || *line == '#')
        return -1;
    if (strncmp(line, "export", 6) == 0 && isspace((unsigned char)line[6])) {
        rest = trim(line + 6);
        if (*rest != '=') /* "export = x" sets a key named export */
            line = rest;
    }
    eq = strchr(line, '=');
    if (eq == NULL)
        return -1;
    *eq = '\0';
    *key = trim(line);
    *value = unquote(trim(eq + 1));
    return 0;
}

/* key in key=value text (modified in place); the last assignment wins. */
static int kv_lookup(const ref_t *r, const char *path, const char *key, char *data,
                     sbuf_t *out)
{
    char *line, *next, *k, *v;
    const char *found = NULL;

    for (line = data; line != NULL; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (parse_kv_line(line, &k, &v) == 0 && strcmp(k, key) == 0)
            found = v;
    }
    if (found == NULL) {
        ref_err(r, "key '%s' not found in file '%s'", key, path);
        return -1;
    }
    return ref_add(r, out, found, strlen(found));
}

static int json_lookup(const ref_t *r, const char *path, const char *key, const json_t *root,
                       sbuf_t *out)
{
    char num[NUMBER_TEXT_MAX];
    const char *text = NULL;
    const json_t *v = json_object_get(root, key);
    scalar_kind_t kind;

    if (v == NULL) {
        ref_err(r, "key '%s' not found in file '%s'", key, path);
        return -1;
    }
    kind = scalar_text(v, num, sizeof(num), &text);
    if (kind != SCALAR_TEXT) {
        ref_err(r, "key '%s' in file '%s': %s", key, path, scalar_problem(kind));
        return -1;
    }
    return ref_add(r, out, text, strlen(text));
}

static int file_lookup(const ref_t *r, const char *path, const char *key, char *data,
                       size_t len, sbuf_t *out)
{
    json_t *root = json_loadb(data, len, 0, NULL);
    int rc;

    if (json_is_object(root))
        rc = json_lookup(r, path, key, root, out);
    else
        rc = kv_lookup(r, path, key, data, out);
    json_decref(root);
    return rc;
}

static int file_whole(const ref_t *r, const char *data, size_t len, sbuf_t *out)
{
    if (len > 0 && data[len - 1] == '\n') {
        len--;
        if (len > 0 && data[len - 1] == '\r')
            len--;
    }
    return ref_add(r, out, data, len);
}

/* "path:key" -> NUL-terminates path and returns key; NULL for whole-file
 * mode: no ':' at all, or a '/' after the last one (a ':' inside the path). */
static char *split_file_ref(char *arg)
{
    char *colon = strrchr(arg, ':');

    if (colon == NULL || strchr(colon + 1, '/') != NULL)
        return NULL;
    *colon = '\0';
    return colon + 1;
}

static int resolve_file(const ref_t *r, char *arg, sbuf_t *out)
{
    char *key = split_file_ref(arg);
    char *data;
    size_t len;
    int rc;

    if (*arg == '\0') {
        ref_err(r, "empty file path");
        return -1;
    }
    if (key != NULL && *key == '\0') {
        ref_err(r, "empty key (use ${file:path} for the whole file)");
        return -1;
    }
    if (read_ref_file(r, arg, &data, &len) != 0)
        return -1;
    rc = key ? file_lookup(r, arg, key, data, len, out) : file_whole(r, data, len, out);
    free(data);
    return rc;
}

/* body is the text between "${" and "}". */
static int resolve_ref(const ref_t *r, const char *body, size_t len, sbuf_t *out)
{
    char *copy = strndup(body, len);
    char *colon;
    int rc = -1;

    if (copy == NULL) {
        ref_err(r, "out of memory");
        return -1;
    }
    colon = strchr(copy, ':');
    if (colon == NULL) {
        ref_err(r, "expected ${env:VAR}, ${env:VAR:-default}, ${file:path:key} or ${file:path}");
    } else {
        *colon = '\0';
        if (strcmp(copy, "env") == 0)
            rc = resolve_env(r, colon + 1, out);
        else if (strcmp(copy, "file") == 0)
            rc = resolve_file(r, colon + 1, out);
        else
            ref_err(r, "unknown config provider '%s' (known: env, file)", copy);
    }
    free(copy);
    return rc;
}

/* Resolves the reference starting at ref ("${"); *next is set after it. */
static int resolve_one(const char *cfg_key, const char *value, const char *ref,
                       const char **next, sbuf_t *out, char *err, size_t errlen)
{
    const char *end = strchr(ref + 2, '}');
    ref_t r;

    if (end == NULL) {
        /* The value itself is not quoted: it may be a secret. */
        set_err(err, errlen, "config key '%s': unterminated reference: the '${' at offset "
                "%zu has no closing '}'", cfg_key, (size_t)(ref - value));
        return -1;
    }
    r = (ref_t){cfg_key, ref, (int)(end + 1 - ref), err, errlen};
    *next = end + 1;
    return resolve_ref(&r, ref + 2, (size_t)(end - (ref + 2)), out);
}

/* The text of value with references resolved, in out. Resolved text is
 * copied as it is, never scanned again. */
static int expand_value(const char *cfg_key, const char *value, sbuf_t *out, char *err,
                        size_t errlen)
{
    const char *s = value, *d;
    int rc = 0;

    while (rc == 0 && (d = strchr(s, '$')) != NULL) {
        rc = sbuf_add(out, s, (size_t)(d - s));
        if (rc != 0)
            break;
        if (strncmp(d, "$${", 3) == 0) {
            rc = sbuf_add(out, "${", 2);
            s = d + 3;
        } else if (d[1] == '{') {
            if (resolve_one(cfg_key, value, d, &s, out, err, errlen) != 0)
                return -1;
        } else {
            rc = sbuf_add(out, "$", 1);
            s = d + 1;
        }
    }
    if (rc == 0)
        rc = sbuf_add(out, s, strlen(s));
    if (rc != 0)
        set_err(err, errlen, "config key '%s': out of memory", cfg_key);
    return rc;
}

/* *out = the resolved value (malloc'd), or NULL when value has nothing to
 * resolve. */
static int resolve_value(const char *cfg_key, const char *value, char **out, char *err,
                         size_t errlen)
{
    sbuf_t b = {0};

    *out = NULL;
    if (strstr(value, "${") == NULL)
        return 0;
    if (expand_value(cfg_key, value, &b, err, errlen) != 0) {
        free(b.data);
        return -1;
    }
    *out = b.data;
    return 0;
}

static void free_values(char **vals, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(vals[i]);
    free(vals);
}

int sl_props_resolve(sl_props_t *p, char *err, size_t errlen)
{
    char **vals;
    size_t i;

    if (p == NULL) {
        set_err(err, errlen, "sl_props_resolve: invalid argument");
        return -1;
    }
    if (p->count == 0)
        return 0;
    /* All or nothing: resolve everything first, then swap the values in. */
    vals = calloc(p->count, sizeof(*vals));
    if (vals == NULL) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    for (i = 0; i < p->count; i++) {
        if (resolve_value(p->items[i].key, p->items[i].value, &vals[i], err, errlen) != 0) {
            free_values(vals, i);
            return -1;
        }
    }
    for (i = 0; i < p->count; i++) {
        if (vals[i] != NULL) {
            free(p->items[i].value);
            p->items[i].value = vals[i];
        }
    }
    free(vals);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Validation                                                                */
/* ------------------------------------------------------------------------ */

/* A stride must cover this header's struct (the struct only grows) and keep
 * every element aligned. */
static int def_stride_ok(size_t def_size)
{
    return def_size >= sizeof(sluice_config_def_t) &&
           def_size % _Alignof(sluice_config_def_t) == 0;
}

static const sluice_config_def_t *def_at(const sluice_config_def_t *defs, size_t def_size,
                                         size_t i)
{
    return (const sluice_config_def_t *)(const void *)((const char *)defs + i * def_size);
}

/* "'v' is not <what><detail>", or without the value for a secret. */
static int bad_value(const sluice_config_def_t *d, const char *v, const char *what,
                     const char *detail, char *msg, size_t len)
{
    if (d->flags & SLUICE_CONFIG_SECRET)
        snprintf(msg, len, "value is not %s%s", what, detail);
    else
        snprintf(msg, len, "'%s' is not %s%s", v, what, detail);
    return 1;
}

static int check_range(const sluice_config_def_t *d, double x, const char *v, char *msg,
                       size_t len)
{
    if (!(d->min < d->max) || (x >= d->min && x <= d->max))
        return 0;
    if (d->flags & SLUICE_CONFIG_SECRET)
        snprintf(msg, len, "value is out of range [%.15g, %.15g]", d->min, d->max);
    else
        snprintf(msg, len, "value %s is out of range [%.15g, %.15g]", v, d->min, d->max);
    return 1;
}

static int check_int(const sluice_config_def_t *d, const char *v, char *msg, size_t len)
{
    int64_t n;

    if (sl_parse_int64(v, &n) != 0)
        return bad_value(d, v, "an integer", "", msg, len);
    return check_range(d, (double)n, v, msg, len);
}

static int check_double(const sluice_config_def_t *d, const char *v, char *msg, size_t len)
{
    double x;

    if (sl_parse_double(v, &x) != 0)
        return bad_value(d, v, "a finite number", "", msg, len);
    return check_range(d, x, v, msg, len);
}

static int check_bool(const sluice_config_def_t *d, const char *v, char *msg, size_t len)
{
    if (sl_parse_bool(v, NULL) != 0)
        return bad_value(d, v, "a boolean (true or false)", "", msg, len);
    return 0;
}

/* Whether v is one of the '|'-separated words of allowed. */
static int allowed_contains(const char *allowed, const char *v)
{
    size_t n = strlen(v), wlen;
    const char *s = allowed, *bar;

    for (;;) {
        bar = strchr(s, '|');
        wlen = bar ? (size_t)(bar - s) : strlen(s);
        if (wlen == n && strncmp(s, v, n) == 0)
            return 1;
        if (bar == NULL)
            return 0;
        s = bar + 1;
    }
}

static int check_string(const sluice_config_def_t *d, const char *v, char *msg, size_t len)
{
    if (d->allowed == NULL || *d->allowed == '\0' || allowed_contains(d->allowed, v))
        return 0;
    return bad_value(d, v, "one of ", d->allowed, msg, len);
}

/* 1 and a message in msg when v (NULL = unset) is not valid for d. */
static int check_value(const sluice_config_def_t *d, const char *v, char *msg, size_t len)
{
    int required = (d->flags & SLUICE_CONFIG_REQUIRED) != 0;

    if (v == NULL || (*v == '\0' && required)) {
        if (!required)
            return 0;
        snprintf(msg, len, v ? "required value is empty" : "missing required value");
        return 1;
    }
    switch (d->type) {
    case SLUICE_CONFIG_STRING:
        return check_string(d, v, msg, len);
    case SLUICE_CONFIG_INT:
        return check_int(d, v, msg, len);
    case SLUICE_CONFIG_DOUBLE:
        return check_double(d, v, msg, len);
    case SLUICE_CONFIG_BOOL:
        return check_bool(d, v, msg, len);
    case SLUICE_CONFIG_LIST:
        return 0;
    default:
        snprintf(msg, len, "the plugin declares an unknown config type %d", (int)d->type);
        return 1;
    }
}

int sl_config_validate(const sl_props_t *p, const sluice_config_def_t *defs,
                       size_t def_size, sl_config_error_fn on_error, void *arg)
{
    char msg[MESSAGE_MAX];
    const sluice_config_def_t *d;
    int problems = 0;
    size_t i;

    if (defs == NULL)
        return 0;
    if (!def_stride_ok(def_size)) {
        snprintf(msg, sizeof(msg), "invalid config definition size %zu (at least %zu expected)",
                 def_size, sizeof(sluice_config_def_t));
        if (on_error != NULL)
            on_error(arg, "", msg);
        return 1;
    }
    for (i = 0; (d = def_at(defs, def_size, i))->name != NULL; i++) {
        if (!check_value(d, sl_props_get(p, d->name), msg, sizeof(msg)))
            continue;
        problems++;
        if (on_error != NULL)
            on_error(arg, d->name, msg);
    }
    return problems;
}

const sluice_config_def_t *sl_config_def_find(const sluice_config_def_t *defs,
                                              size_t def_size, const char *name)
{
    const sluice_config_def_t *d;
    size_t i;

    if (defs == NULL || name == NULL || !def_stride_ok(def_size))
        return NULL;
    for (i = 0; (d = def_at(defs, def_size, i))->name != NULL; i++)
        if (strcmp(d->name, name) == 0)
            return d;
    return NULL;
}

const char *sl_config_value(const sl_props_t *p, const sluice_config_def_t *defs,
                            size_t def_size, const char *key)
{
    const char *v = sl_props_get(p, key);
    const sluice_config_def_t *d;

    if (v != NULL)
        return v;
    d = sl_config_def_find(defs, def_size, key);
    return d ? d->default_value : NULL;
}

/* ------------------------------------------------------------------------ */
/* Parsers                                                                   */
/* ------------------------------------------------------------------------ */

int sl_parse_int64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
#if LLONG_MAX > INT64_MAX
    if (v < INT64_MIN || v > INT64_MAX)
        return -1;
#endif
    if (out != NULL)
        *out = (int64_t)v;
    return 0;
}

int sl_parse_double(const char *s, double *out)
{
    char *end;
    double v;

    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return -1;
    v = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(v))
        return -1;
    if (out != NULL)
        *out = v;
    return 0;
}

int sl_parse_bool(const char *s, int *out)
{
    int v;

    if (s == NULL)
        return -1;
    if (strcasecmp(s, "true") == 0)
        v = 1;
    else if (strcasecmp(s, "false") == 0)
        v = 0;
    else
        return -1;
    if (out != NULL)
        *out = v;
    return 0;
}

/* Written to a temp file, fsync()ed and renamed over path: a reader sees the
 * old file or the new one, never half of one. */
int sl_file_write_atomic(const char *path, const char *text, char *err, size_t errlen) {
    /* The temp name is this process's and this call's own: two workers
     * sharing one rest.port.file (or two threads one file) must not rename
     * each other's temp away (the loser's rename failed with ENOENT). */
    static atomic_uint seq;
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&seq, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    int ok = done == len && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
