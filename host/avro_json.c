/* JSON -> Avro decoder. See avro_json.h for the accepted dialects. */
#include "avro_json.h"

#include <float.h>
#include <math.h> /* NAN, INFINITY only: the library must not need -lm */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of path text kept; deeper paths are shown cut, ending in "...". */
#define PATH_KEEP 400

/* How well a JSON value fits a schema, used to pick a union branch. */
enum fit {
    FIT_NONE = 0,  /* wrong JSON kind: never chosen */
    FIT_LOOSE = 1, /* right kind, but decoding will fail (chosen for its error) */
    FIT_GOOD = 2,  /* decodes, lossy or second choice (map vs record, "NaN") */
    FIT_EXACT = 3,
};

typedef struct {
    char *err;
    size_t errlen;
    char path[PATH_KEEP + 1];
    size_t plen; /* logical length; may exceed PATH_KEEP (then shown cut) */
    int depth;
} dec_t;

/* ---------------------------------------------------------------- errors */

static int fail(dec_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(dec_t *d, const char *fmt, ...)
{
    if (d->err == NULL || d->errlen == 0)
        return -1;
    int n;
    if (d->plen == 0)
        n = snprintf(d->err, d->errlen, "<root>: ");
    else if (d->plen > PATH_KEEP)
        n = snprintf(d->err, d->errlen, "%.*s...: ", PATH_KEEP, d->path);
    else
        n = snprintf(d->err, d->errlen, "%.*s: ", (int)d->plen, d->path);
    if (n < 0)
        n = 0;
    if ((size_t)n < d->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->err + n, d->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ------------------------------------------------------------------ path */

static void path_append(dec_t *d, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, d->plen++)
        if (d->plen < PATH_KEEP)
            d->path[d->plen] = s[i];
}

static bool is_ident(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        bool digit = c >= '0' && c <= '9';
        if (!(alpha || (i > 0 && digit)))
            return false;
    }
    return true;
}

/* Appends ".name" (or "name" at the root); odd map keys as ["key"]. Returns
 * the length to restore with path_pop. */
static size_t path_push_key(dec_t *d, const char *key, size_t n)
{
    size_t saved = d->plen;
    if (is_ident(key, n)) {
        if (d->plen > 0)
            path_append(d, ".", 1);
        path_append(d, key, n);
        return saved;
    }
    path_append(d, "[\"", 2);
    for (size_t i = 0; i < n && i < 64; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            path_append(d, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            path_append(d, "?", 1);
        } else {
            path_append(d, (const char *)&key[i], 1);
        }
    }
    if (n > 64)
        path_append(d, "...", 3);
    path_append(d, "\"]", 2);
    return saved;
}

static size_t path_push_index(dec_t *d, size_t idx)
{
    size_t saved = d->plen;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "[%zu]", idx);
    if (n > 0)
        path_append(d, buf, (size_t)n);
    return saved;
}

static void path_pop(dec_t *d, size_t saved)
{
    d->plen = saved;
}

/* --------------------------------------------------------------- helpers */

static const char *jkind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

static avro_schema_t resolve(avro_schema_t s)
{
    /* A recursive reference; bounded in case of a link chain. */
    for (int i = 0; i < 16 && s != NULL && is_avro_link(s); i++)
        s = avro_schema_link_target(s);
    return s;
}

static const char *sname(avro_schema_t s)
{
    const char *n = s ? avro_schema_type_name(s) : NULL;
    return n ? n : "?";
}

static const char *avro_err(void)
{
    const char *e = avro_strerror();
    return (e && *e) ? e : "unknown avro error";
}

/* Iterating a const object: jansson's iterator API takes a non-const json_t
 * but does not modify it. */
static void *obj_iter(const json_t *o)
{
    return json_object_iter((json_t *)(uintptr_t)o);
}

static void *obj_iter_next(const json_t *o, void *it)
{
    return json_object_iter_next((json_t *)(uintptr_t)o, it);
}

static bool has_nul(const char *s, size_t n)
{
    return memchr(s, '\0', n) != NULL;
}

static bool is_special_real(const char *s, double *out)
{
    if (strcmp(s, "NaN") == 0) {
        *out = NAN;
        return true;
    }
    if (strcmp(s, "Infinity") == 0) {
        *out = INFINITY;
        return true;
    }
    if (strcmp(s, "-Infinity") == 0) {
        *out = -INFINITY;
        return true;
    }
    return false;
}

#define TWO63 9223372036854775808.0

static bool int64_exact_in_double(json_int_t i)
{
    double x = (double)i;
    if (x >= TWO63)
        return false;
    return (json_int_t)x == i;
}

static bool int64_exact_in_float(json_int_t i)
{
    float f = (float)i;
    if ((double)f >= TWO63)
        return false;
    return (json_int_t)f == i;
}

static double abs_d(double x)
{
    return x < 0 ? -x : x;
}

static bool real_exact_in_float(double x)
{
    return abs_d(x) <= FLT_MAX && (double)(float)x == x;
}

/* Decodes a UTF-8 string whose code points are all 0-255 into raw bytes
 * (out may be NULL to only count). Returns 0 and the byte count, or
 * -1 with the first bad code point in *bad (0x110000 for malformed UTF-8). */
static int latin1_decode(const char *s, size_t n, unsigned char *out, size_t *outlen,
                         unsigned long *bad)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char b = p[i];
        unsigned long cp;
        size_t extra;
        if (b < 0x80) {
            cp = b;
            extra = 0;
        } else if (b >= 0xc2 && b <= 0xdf) {
            cp = b & 0x1f;
            extra = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
            cp = b & 0x0f;
            extra = 2;
        } else if (b >= 0xf0 && b <= 0xf4) {
            cp = b & 0x07;
            extra = 3;
        } else {
            *bad = 0x110000;
            return -1;
        }
        if (n - i - 1 < extra) {
            *bad = 0x110000;
            return -1;
        }
        for (size_t k = 1; k <= extra; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                *bad = 0x110000;
                return -1;
            }
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (cp > 0xff) {
            *bad = cp;
            return -1;
        }
        if (out)
            out[o] = (unsigned char)cp;
        o++;
        i += 1 + extra;
    }
    *outlen = o;
    return 0;
}

/* Whether a field of this type may be left out of a JSON object. Returns the
 * null branch index for a union, -1 for a plain null type, -2 if required. */
static int nullable_branch(avro_schema_t s)
{
    s = resolve(s);
    if (s == NULL)
        return -2;
    if (is_avro_null(s))
        return -1;
    if (is_avro_union(s)) {
        size_t n = avro_schema_union_size(s);
        for (size_t i = 0; i < n && i <= INT32_MAX; i++) {
            avro_schema_t b = resolve(avro_schema_union_branch(s, (int)i));
            if (b != NULL && is_avro_null(b))
                return (int)i;
        }
    }
    return -2;
}

/* ------------------------------------------------------------------- fit */

static enum fit fit_record(avro_schema_t s, const json_t *j)
{
    void *it;
    size_t present = 0;
    for (it = obj_iter(j); it; it = obj_iter_next(j, it)) {
        const char *k = json_object_iter_key(it);
        size_t kl = json_object_iter_key_len(it);
        if (has_nul(k, kl) || avro_schema_record_field_get_index(s, k) < 0)
            return FIT_LOOSE;
        present++;
    }
    size_t nf = avro_schema_record_size(s);
    if (present == nf)
        return FIT_EXACT;
    for (size_t i = 0; i < nf && i <= INT32_MAX; i++) {
        const char *fname = avro_schema_record_field_name(s, (int)i);
        if (fname == NULL || json_object_get(j, fname) != NULL)
            continue;
        if (nullable_branch(avro_schema_record_field_get_by_index(s, (int)i)) == -2)
            return FIT_LOOSE;
    }
    return FIT_EXACT;
}

/* Shallow (non-recursive) estimate of how well j fits schema s. */
static enum fit fit(avro_schema_t s, const json_t *j)
{
    s = resolve(s);
    if (s == NULL || j == NULL)
        return FIT_NONE;
    double special;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return json_is_null(j) ? FIT_EXACT : FIT_NONE;
    case AVRO_BOOLEAN:
        return json_is_boolean(j) ? FIT_EXACT : FIT_NONE;
    case AVRO_INT32:
        if (json_is_integer(j)) {
            json_int_t v = json_integer_value(j);
            return (v >= INT32_MIN && v <= INT32_MAX) ? FIT_EXACT : FIT_LOOSE;
        }
        return json_is_real(j) ? FIT_LOOSE : FIT_NONE;
    case AVRO_INT64:
        if (json_is_integer(j))
            return FIT_EXACT;
        return json_is_real(j) ? FIT_LOOSE : FIT_NONE;
    case AVRO_FLOAT:
        if (json_is_integer(j))
            return int64_exact_in_float(json_integer_value(j)) ? FIT_EXACT : FIT_GOOD;
        if (json_is_real(j)) {
            double x = json_real_value(j);
            if (real_exact_in_float(x))
                return FIT_EXACT;
            return abs_d(x) <= FLT_MAX ? FIT_GOOD : FIT_LOOSE;
        }
        if (json_is_string(j) && is_special_real(json_string_value(j), &special))
            return FIT_GOOD;
        return FIT_NONE;
    case AVRO_DOUBLE:
        if (json_is_integer(j))
            return int64_exact_in_double(json_integer_value(j)) ? FIT_EXACT : FIT_GOOD;
        if (json_is_real(j))
            return FIT_EXACT;
        if (json_is_string(j) && is_special_real(json_string_value(j), &special))
            return FIT_GOOD;
        return FIT_NONE;
    case AVRO_STRING:
        return json_is_string(j) ? FIT_EXACT : FIT_NONE;
    case AVRO_BYTES:
    case AVRO_FIXED: {
        if (!json_is_string(j))
            return FIT_NONE;
        size_t len;
        unsigned long bad;
        if (latin1_decode(json_string_value(j), json_string_length(j), NULL, &len, &bad) != 0)
            return FIT_LOOSE;
        if (is_avro_fixed(s) && (int64_t)len != avro_schema_fixed_size(s))
            return FIT_LOOSE;
        return FIT_EXACT;
    }
    case AVRO_ENUM: {
        if (!json_is_string(j))
            return FIT_NONE;
        const char *sym = json_string_value(j);
        if (has_nul(sym, json_string_length(j)))
            return FIT_LOOSE;
        return avro_schema_enum_get_by_name(s, sym) >= 0 ? FIT_EXACT : FIT_LOOSE;
    }
    case AVRO_ARRAY:
        return json_is_array(j) ? FIT_EXACT : FIT_NONE;
    case AVRO_MAP:
        /* below a matching record: "prefer record when keys match" */
        return json_is_object(j) ? FIT_GOOD : FIT_NONE;
    case AVRO_RECORD:
        return json_is_object(j) ? fit_record(s, j) : FIT_NONE;
    case AVRO_UNION:
        /* Avro forbids directly nested unions; let decoding report it. */
        return FIT_LOOSE;
    case AVRO_LINK:
        return FIT_NONE;
    }
    return FIT_NONE;
}

/* Does key name union branch b ("int", "map", "Name" or "ns.Name")? */
static bool branch_named(avro_schema_t b, const char *key)
{
    b = resolve(b);
    if (b == NULL)
        return false;
    const char *tn = avro_schema_type_name(b);
    if (tn != NULL && strcmp(tn, key) == 0)
        return true;
    if (is_avro_record(b) || is_avro_enum(b) || is_avro_fixed(b)) {
        const char *ns = avro_schema_namespace(b);
        const char *name = avro_schema_name(b);
        if (ns != NULL && *ns != '\0' && name != NULL) {
            size_t nl = strlen(ns);
            if (strncmp(key, ns, nl) == 0 && key[nl] == '.' && strcmp(key + nl + 1, name) == 0)
                return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------- decode */

static int dec_value(dec_t *d, const json_t *j, avro_value_t *v);

/* Decodes j into v one nesting level down, enforcing the depth cap. */
static int dec_nested(dec_t *d, const json_t *j, avro_value_t *v)
{
    if (d->depth >= SL_AVRO_JSON_MAX_DEPTH)
        return fail(d, "nesting deeper than %d levels", SL_AVRO_JSON_MAX_DEPTH);
    d->depth++;
    int rc = dec_value(d, j, v);
    d->depth--;
    return rc;
}

static int set_null_field(dec_t *d, avro_value_t *field, avro_schema_t fs)
{
    int nb = nullable_branch(fs);
    if (nb == -1) {
        if (avro_value_set_null(field) != 0)
            return fail(d, "cannot set null: %s", avro_err());
        return 0;
    }
    avro_value_t branch;
    if (avro_value_set_branch(field, nb, &branch) != 0)
        return fail(d, "cannot select null branch: %s", avro_err());
    if (avro_value_set_null(&branch) != 0)
        return fail(d, "cannot set null: %s", avro_err());
    return 0;
}

static int dec_record(dec_t *d, const json_t *j, avro_value_t *v, avro_schema_t s)
{
    if (!json_is_object(j))
        return fail(d, "expected an object (record %s), got %s", sname(s), jkind(j));

    /* Unknown keys first, so the error names them. */
    for (void *it = obj_iter(j); it; it = obj_iter_next(j, it)) {
        const char *k = json_object_iter_key(it);
        size_t kl = json_object_iter_key_len(it);
        if (has_nul(k, kl) || avro_schema_record_field_get_index(s, k) < 0) {
            size_t saved = path_push_key(d, k, kl);
            int rc = fail(d, "unknown field (record %s has no field of that name)", sname(s));
            path_pop(d, saved);
            return rc;
        }
    }

    size_t nf = avro_schema_record_size(s);
    for (size_t i = 0; i < nf; i++) {
        if (i > INT32_MAX)
            return fail(d, "record %s has too many fields", sname(s));
        const char *fname = avro_schema_record_field_name(s, (int)i);
        avro_schema_t fs = avro_schema_record_field_get_by_index(s, (int)i);
        if (fname == NULL || fs == NULL)
            return fail(d, "record %s: cannot read field %zu of the schema", sname(s), i);
        avro_value_t field;
        if (avro_value_get_by_index(v, i, &field, NULL) != 0)
            return fail(d, "record %s: cannot access field %s: %s", sname(s), fname, avro_err());
        size_t saved = path_push_key(d, fname, strlen(fname));
        const json_t *fj = json_object_get(j, fname);
        int rc;
        if (fj != NULL)
            rc = dec_nested(d, fj, &field);
        else if (nullable_branch(fs) != -2)
            rc = set_null_field(d, &field, fs);
        else
            rc = fail(d, "missing required field (type %s)", sname(resolve(fs)));
        path_pop(d, saved);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int dec_map(dec_t *d, const json_t *j, avro_value_t *v)
{
    if (!json_is_object(j))
        return fail(d, "expected an object (map), got %s", jkind(j));
    if (avro_value_reset(v) != 0)
        return fail(d, "cannot reset map: %s", avro_err());
    for (void *it = obj_iter(j); it; it = obj_iter_next(j, it)) {
        const char *k = json_object_iter_key(it);
        size_t kl = json_object_iter_key_len(it);
        const json_t *val = json_object_iter_value(it);
        size_t saved = path_push_key(d, k, kl);
        int rc;
        if (has_nul(k, kl)) {
            rc = fail(d, "map key contains a NUL character");
        } else {
            avro_value_t child;
            size_t idx = 0;
            int is_new = 0;
            if (avro_value_add(v, k, &child, &idx, &is_new) != 0)
                rc = fail(d, "cannot add map entry: %s", avro_err());
            else
                rc = dec_nested(d, val, &child);
        }
        path_pop(d, saved);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int dec_array(dec_t *d, const json_t *j, avro_value_t *v)
{
    if (!json_is_array(j))
        return fail(d, "expected an array, got %s", jkind(j));
    if (avro_value_reset(v) != 0)
        return fail(d, "cannot reset array: %s", avro_err());
    size_t n = json_array_size(j);
    for (size_t i = 0; i < n; i++) {
        size_t saved = path_push_index(d, i);
        avro_value_t child;
        size_t idx = 0;
        int rc;
        if (avro_value_append(v, &child, &idx) != 0)
            rc = fail(d, "cannot append array element: %s", avro_err());
        else
            rc = dec_nested(d, json_array_get(j, i), &child);
        path_pop(d, saved);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int dec_union(dec_t *d, const json_t *j, avro_value_t *v, avro_schema_t s)
{
    size_t n = avro_schema_union_size(s);
    if (n == 0 || n > INT32_MAX)
        return fail(d, "union schema has no branches");

    /* Bare value: best fit, first in schema order among equals. */
    int bare = -1;
    enum fit bare_fit = FIT_NONE;
    for (size_t i = 0; i < n; i++) {
        enum fit f = fit(avro_schema_union_branch(s, (int)i), j);
        if (f > bare_fit) {
            bare_fit = f;
            bare = (int)i;
        }
    }

    /* Tagged form {"branch-name": value}. */
    int tagged = -1;
    enum fit tagged_fit = FIT_NONE;
    const json_t *inner = NULL;
    const char *tag = NULL;
    size_t taglen = 0;
    if (json_is_object(j) && json_object_size(j) == 1) {
        void *it = obj_iter(j);
        tag = json_object_iter_key(it);
        taglen = json_object_iter_key_len(it);
        inner = json_object_iter_value(it);
        if (!has_nul(tag, taglen)) {
            for (size_t i = 0; i < n; i++) {
                avro_schema_t b = avro_schema_union_branch(s, (int)i);
                if (branch_named(b, tag)) {
                    tagged = (int)i;
                    tagged_fit = fit(b, inner);
                    break;
                }
            }
        }
    }

    /* The tag wins unless the wrapped value is of the wrong kind for its
     * branch while the whole object fits some branch ({"map": 5} for a map
     * of ints), or the wrapped value is merely invalid while the whole object
     * exactly matches a record branch. */
    bool use_tagged = tagged >= 0 && (tagged_fit >= FIT_GOOD ||
                                      (tagged_fit == FIT_LOOSE && bare_fit < FIT_EXACT) ||
                                      bare_fit == FIT_NONE);
    int chosen = use_tagged ? tagged : bare;
    if (chosen < 0) {
        char list[256];
        size_t o = 0;
        list[0] = '\0';
        for (size_t i = 0; i < n && o < sizeof list; i++) {
            int w = snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "",
                             sname(resolve(avro_schema_union_branch(s, (int)i))));
            if (w < 0)
                break;
            o += (size_t)w;
        }
        return fail(d, "%s value matches no branch of union [%s]", jkind(j), list);
    }

    avro_value_t branch;
    if (avro_value_set_branch(v, chosen, &branch) != 0)
        return fail(d, "cannot select union branch %d: %s", chosen, avro_err());
    if (!use_tagged)
        return dec_value(d, j, &branch);
    /* The wrapper object is a JSON level of its own; the path stays that of
     * the union value, since the tag is not part of the data. */
    return dec_nested(d, inner, &branch);
}

static int dec_float_like(dec_t *d, const json_t *j, double *out, bool is_float)
{
    const char *tname = is_float ? "float" : "double";
    if (json_is_integer(j)) {
        *out = (double)json_integer_value(j);
        return 0;
    }
    if (json_is_real(j)) {
        double x = json_real_value(j);
        if (is_float && abs_d(x) > FLT_MAX)
            return fail(d, "number %g is out of range for float", x);
        *out = x;
        return 0;
    }
    if (json_is_string(j)) {
        if (is_special_real(json_string_value(j), out))
            return 0;
        return fail(d, "expected a number (%s), got string \"%.40s\"", tname, json_string_value(j));
    }
    return fail(d, "expected a number (%s), got %s", tname, jkind(j));
}

static int dec_integer(dec_t *d, const json_t *j, int64_t lo, int64_t hi, const char *tname,
                       int64_t *out)
{
    if (json_is_integer(j)) {
        json_int_t x = json_integer_value(j);
        if (x < lo || x > hi)
            return fail(d, "%lld is out of range for %s", (long long)x, tname);
        *out = (int64_t)x;
        return 0;
    }
    if (json_is_real(j)) {
        double x = json_real_value(j);
        /* lo is -2^31 or -2^63, so [lo, -lo) is exactly the type's range */
        bool in_range = x >= (double)lo && x < -(double)lo;
        if (in_range && (double)(int64_t)x != x)
            return fail(d, "expected an integer (%s), got non-integer number %g", tname, x);
        if (!in_range)
            return fail(d, "%.17g is out of range for %s", x, tname);
        *out = (int64_t)x;
        return 0;
    }
    return fail(d, "expected an integer (%s), got %s", tname, jkind(j));
}

static int dec_binary(dec_t *d, const json_t *j, avro_value_t *v, avro_schema_t s, bool fixed)
{
    const char *what = fixed ? "fixed" : "bytes";
    if (!json_is_string(j))
        return fail(d, "expected a string (%s), got %s", what, jkind(j));
    const char *str = json_string_value(j);
    size_t slen = json_string_length(j);
    size_t len = 0;
    unsigned long bad = 0;
    if (latin1_decode(str, slen, NULL, &len, &bad) != 0) {
        if (bad > 0x10ffff)
            return fail(d, "%s string is not valid UTF-8", what);
        return fail(d, "%s string contains U+%04lX; only code points 0-255 encode bytes", what,
                    bad);
    }
    if (fixed && (int64_t)len != avro_schema_fixed_size(s))
        return fail(d, "fixed %s needs %lld bytes, got %zu", sname(s),
                    (long long)avro_schema_fixed_size(s), len);
    unsigned char one = 0;
    unsigned char *buf = len ? malloc(len) : &one;
    if (buf == NULL)
        return fail(d, "out of memory");
    (void)latin1_decode(str, slen, buf, &len, &bad);
    int rc = fixed ? avro_value_set_fixed(v, buf, len) : avro_value_set_bytes(v, buf, len);
    if (buf != &one)
        free(buf);
    if (rc != 0)
        return fail(d, "cannot set %s: %s", what, avro_err());
    return 0;
}

static int dec_value(dec_t *d, const json_t *j, avro_value_t *v)
{
    if (j == NULL)
        return fail(d, "no JSON value");
    avro_schema_t s = resolve(avro_value_get_schema(v));
    if (s == NULL)
        return fail(d, "destination value has no schema");
    int rc;
    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        if (!json_is_null(j))
            return fail(d, "expected null, got %s", jkind(j));
        rc = avro_value_set_null(v);
        break;
    case AVRO_BOOLEAN:
        if (!json_is_boolean(j))
            return fail(d, "expected a boolean, got %s", jkind(j));
        rc = avro_value_set_boolean(v, json_is_true(j) ? 1 : 0);
        break;
    case AVRO_INT32: {
        int64_t x;
        if (dec_integer(d, j, INT32_MIN, INT32_MAX, "int", &x) != 0)
            return -1;
        rc = avro_value_set_int(v, (int32_t)x);
        break;
    }
    case AVRO_INT64: {
        int64_t x;
        if (dec_integer(d, j, INT64_MIN, INT64_MAX, "long", &x) != 0)
            return -1;
        rc = avro_value_set_long(v, x);
        break;
    }
    case AVRO_FLOAT: {
        double x;
        if (dec_float_like(d, j, &x, true) != 0)
            return -1;
        rc = avro_value_set_float(v, (float)x);
        break;
    }
    case AVRO_DOUBLE: {
        double x;
        if (dec_float_like(d, j, &x, false) != 0)
            return -1;
        rc = avro_value_set_double(v, x);
        break;
    }
    case AVRO_STRING:
        if (!json_is_string(j))
            return fail(d, "expected a string, got %s", jkind(j));
        /* size includes the terminator; jansson always NUL-terminates */
        rc = avro_value_set_string_len(v, json_string_value(j), json_string_length(j) + 1);
        break;
    case AVRO_BYTES:
        return dec_binary(d, j, v, s, false);
    case AVRO_FIXED:
        return dec_binary(d, j, v, s, true);
    case AVRO_ENUM: {
        if (!json_is_string(j))
            return fail(d, "expected a string (enum %s symbol), got %s", sname(s), jkind(j));
        const char *sym = json_string_value(j);
        int idx = has_nul(sym, json_string_length(j)) ? -1 : avro_schema_enum_get_by_name(s, sym);
        if (idx < 0)
            return fail(d, "\"%.64s\" is not a symbol of enum %s", sym, sname(s));
        rc = avro_value_set_enum(v, idx);
        break;
    }
    case AVRO_ARRAY:
        return dec_array(d, j, v);
    case AVRO_MAP:
        return dec_map(d, j, v);
    case AVRO_RECORD:
        return dec_record(d, j, v, s);
    case AVRO_UNION:
        return dec_union(d, j, v, s);
    default:
        return fail(d, "unsupported Avro type in destination value");
    }
    if (rc != 0)
        return fail(d, "cannot store %s value: %s", sname(s), avro_err());
    return 0;
}

/* ------------------------------------------------------------------- API */

int sl_avro_from_json(const json_t *json, avro_value_t *dest, char *err, size_t errlen)
{
    dec_t d;
    d.err = err;
    d.errlen = errlen;
    d.plen = 0;
    d.depth = 0;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (json == NULL)
        return fail(&d, "no JSON document");
    if (dest == NULL || dest->iface == NULL)
        return fail(&d, "no destination value");
    if (avro_value_reset(dest) != 0)
        return fail(&d, "cannot reset destination value: %s", avro_err());
    return dec_nested(&d, json, dest);
}

int sl_avro_from_json_text(const char *text, size_t len, avro_value_t *dest, char *err,
                           size_t errlen)
{
    if (text == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "<root>: no JSON text");
        return -1;
    }
    json_error_t jerr;
    json_t *root =
        json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "<root>: invalid JSON at line %d, column %d: %s", jerr.line,
                     jerr.column, jerr.text);
        return -1;
    }
    int rc = sl_avro_from_json(root, dest, err, errlen);
    json_decref(root);
    return rc;
}
