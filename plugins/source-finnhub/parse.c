/* parse.c - see parse.h. */
#include "parse.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ------------------------------------------------------------------------ */
/* Symbol lists                                                              */
/* ------------------------------------------------------------------------ */

void fh_symbols_free(char **syms, size_t n) {
    if (!syms) return;
    for (size_t i = 0; i < n; i++) free(syms[i]);
    free(syms);
}

/* Appends s[0..len) unless it is already there. 0, or -1 on OOM. */
static int add_symbol(char ***syms, size_t *n, const char *s, size_t len) {
    for (size_t i = 0; i < *n; i++)
        if (strlen((*syms)[i]) == len && memcmp((*syms)[i], s, len) == 0) return 0;
    char **grown = realloc(*syms, (*n + 1) * sizeof(*grown));
    if (!grown) return -1;
    *syms = grown;
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, s, len);
    copy[len] = '\0';
    (*syms)[(*n)++] = copy;
    return 0;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* ['A','B'] / ["A", "B"]: p points after '['. */
static int parse_bracketed(const char *p, char ***syms, size_t *n, char *err, size_t errlen) {
    for (;;) {
        while (is_space(*p)) p++;
        if (*p == ']' && *n == 0) { /* [] */
            p++;
            break;
        }
        if (*p != '\'' && *p != '"') {
            snprintf(err, errlen, "expected a quoted symbol in the [...] list, at '%.20s'", p);
            return -1;
        }
        char q = *p++;
        const char *start = p;
        while (*p && *p != q) p++;
        if (!*p) {
            snprintf(err, errlen, "unterminated quote in the symbol list");
            return -1;
        }
        const char *end = p++;
        while (start < end && is_space(*start)) start++;
        while (end > start && is_space(end[-1])) end--;
        if (end == start) {
            snprintf(err, errlen, "empty symbol in the list");
            return -1;
        }
        if (add_symbol(syms, n, start, (size_t)(end - start)) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        while (is_space(*p)) p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == ']') {
            p++;
            break;
        }
        snprintf(err, errlen, "expected ',' or ']' after symbol '%.*s'", (int)(end - start), start);
        return -1;
    }
    while (is_space(*p)) p++;
    if (*p) {
        snprintf(err, errlen, "unexpected text after ']' in the symbol list");
        return -1;
    }
    return 0;
}

int fh_symbols_parse(const char *text, char ***out, size_t *n, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    if (!text) text = "";
    const char *p = text;
    while (is_space(*p)) p++;
    char **syms = NULL;
    size_t count = 0;
    int rc = 0;
    if (*p == '[') {
        rc = parse_bracketed(p + 1, &syms, &count, err, errlen);
    } else {
        size_t item = 0;
        for (;;) {
            const char *start = p, *end = p;
            while (*end && *end != ',') end++;
            const char *next = *end ? end + 1 : NULL;
            while (start < end && is_space(*start)) start++;
            while (end > start && is_space(end[-1])) end--;
            /* tolerate quotes around an item: 'AAPL', "AAPL" */
            if (end - start >= 2 && (*start == '\'' || *start == '"') && end[-1] == *start) {
                start++;
                end--;
            }
            if (end == start) {
                if (next || item > 0) {
                    snprintf(err, errlen, "empty symbol at position %zu of the list", item + 1);
                    rc = -1;
                }
                break;
            }
            if (add_symbol(&syms, &count, start, (size_t)(end - start)) != 0) {
                snprintf(err, errlen, "out of memory");
                rc = -1;
                break;
            }
            item++;
            if (!next) break;
            p = next;
        }
    }
    if (rc == 0 && count == 0) {
        snprintf(err, errlen, "the symbol list is empty");
        rc = -1;
    }
    if (rc != 0) {
        fh_symbols_free(syms, count);
        return -1;
    }
    *out = syms;
    *n = count;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Feed URL                                                                  */
/* ------------------------------------------------------------------------ */

void fh_url_free(fh_url_t *u) {
    if (!u) return;
    free(u->host);
    free(u->path);
    memset(u, 0, sizeof(*u));
}

int fh_url_parse(const char *url, fh_url_t *u, char *err, size_t errlen) {
    memset(u, 0, sizeof(*u));
    if (!url) url = "";
    const char *p;
    if (strncmp(url, "wss://", 6) == 0) {
        u->tls = 1;
        p = url + 6;
    } else if (strncmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else {
        snprintf(err, errlen, "the URL must start with wss:// or ws://");
        return -1;
    }
    const char *hs, *he;
    if (*p == '[') {
        hs = p + 1;
        he = strchr(hs, ']');
        if (!he) {
            snprintf(err, errlen, "unterminated '[' in the URL's host");
            return -1;
        }
        p = he + 1;
    } else {
        hs = p;
        while (*p && *p != ':' && *p != '/' && *p != '?') p++;
        he = p;
    }
    if (he == hs) {
        snprintf(err, errlen, "the URL has no host");
        return -1;
    }
    for (const char *c = hs; c < he; c++)
        if (*c == '@' || is_space(*c)) {
            snprintf(err, errlen, "the URL's host is not valid (no user info or spaces)");
            return -1;
        }
    u->port = u->tls ? 443 : 80;
    if (*p == ':') {
        p++;
        long port = 0;
        const char *ds = p;
        while (*p >= '0' && *p <= '9' && port <= 65535) port = port * 10 + (*p++ - '0');
        if (p == ds || port < 1 || port > 65535 || (*p && *p != '/' && *p != '?')) {
            snprintf(err, errlen, "the URL's port is not a number in 1..65535");
            return -1;
        }
        u->port = (int)port;
    } else if (*p && *p != '/' && *p != '?') {
        snprintf(err, errlen, "unexpected character after the URL's host");
        return -1;
    }
    for (const char *c = p; *c; c++)
        if (is_space(*c) || *c == '#') {
            snprintf(err, errlen, "the URL's path may not hold spaces or a fragment");
            return -1;
        }
    u->host = strndup(hs, (size_t)(he - hs));
    size_t plen = strlen(p);
    u->path = malloc(plen + 2);
    if (!u->host || !u->path) {
        fh_url_free(u);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (*p == '/') {
        memcpy(u->path, p, plen + 1);
    } else { /* "" or "?query" */
        u->path[0] = '/';
        memcpy(u->path + 1, p, plen + 1);
    }
    return 0;
}

char *fh_url_path_with_token(const fh_url_t *u, const char *token) {
    size_t plen = strlen(u->path);
    size_t tlen = token ? strlen(token) : 0;
    char *out = malloc(plen + 8 + tlen * 3 + 1);
    if (!out) return NULL;
    memcpy(out, u->path, plen + 1);
    if (tlen == 0) return out;
    char *w = out + plen;
    *w++ = strchr(u->path, '?') ? '&' : '?';
    memcpy(w, "token=", 6);
    w += 6;
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < tlen; i++) {
        unsigned char c = (unsigned char)token[i];
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            *w++ = (char)c;
        } else {
            *w++ = '%';
            *w++ = hex[c >> 4];
            *w++ = hex[c & 0xF];
        }
    }
    *w = '\0';
    return out;
}

/* ------------------------------------------------------------------------ */
/* Frames                                                                    */
/* ------------------------------------------------------------------------ */

void fh_frame_free(fh_frame_t *f) {
    if (!f) return;
    if (f->trades) {
        for (size_t i = 0; i < f->ntrades; i++) {
            free(f->trades[i].conditions);
            free(f->trades[i].raw);
        }
        free(f->trades);
    }
    if (f->json) json_decref((json_t *)f->json);
    memset(f, 0, sizeof(*f));
}

/* A JSON number as a double: integers and reals; 0 or -1. */
static int get_number(const json_t *v, double *out) {
    if (json_is_integer(v)) {
        *out = (double)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        *out = json_real_value(v);
        return isfinite(*out) ? 0 : -1;
    }
    return -1;
}

/* Largest integer a double holds exactly (2^53). */
#define EXACT_DOUBLE_INT 9007199254740992.0

/* Validates one "data" entry; fills t (t->ok, or t->reason). 0, or -1 OOM. */
static int parse_trade(json_t *e, size_t index, fh_trade_t *t) {
    t->index = index;
    t->ok = 0;
    if (!json_is_object(e)) {
        snprintf(t->reason, sizeof(t->reason), "trade #%zu is not a JSON object", index);
        goto bad;
    }
    json_t *s = json_object_get(e, "s"), *p = json_object_get(e, "p"),
           *v = json_object_get(e, "v"), *tm = json_object_get(e, "t"),
           *c = json_object_get(e, "c");
    if (!json_is_string(s) || json_string_length(s) == 0 ||
        strlen(json_string_value(s)) != json_string_length(s)) {
        snprintf(t->reason, sizeof(t->reason), "trade #%zu: \"s\" is %s", index,
                 !s ? "missing" : json_is_string(s) ? "empty or holds a NUL" : "not a string");
        goto bad;
    }
    if (!p || get_number(p, &t->price) != 0) {
        snprintf(t->reason, sizeof(t->reason), "trade #%zu: \"p\" is %s", index,
                 !p ? "missing" : "not a finite number");
        goto bad;
    }
    if (!v || get_number(v, &t->volume) != 0) {
        snprintf(t->reason, sizeof(t->reason), "trade #%zu: \"v\" is %s", index,
                 !v ? "missing" : "not a finite number");
        goto bad;
    }
    if (json_is_integer(tm)) {
        t->time_ms = (int64_t)json_integer_value(tm);
    } else if (json_is_real(tm) && json_real_value(tm) == floor(json_real_value(tm)) &&
               fabs(json_real_value(tm)) <= EXACT_DOUBLE_INT) {
        t->time_ms = (int64_t)json_real_value(tm); /* 1575526691134.0 */
    } else {
        snprintf(t->reason, sizeof(t->reason), "trade #%zu: \"t\" is %s", index,
                 !tm ? "missing" : json_is_number(tm) ? "not an integer" : "not a number");
        goto bad;
    }
    if (t->time_ms < 0) {
        snprintf(t->reason, sizeof(t->reason), "trade #%zu: \"t\" is negative (%" PRId64 ")",
                 index, t->time_ms);
        goto bad;
    }
    if (c && !json_is_null(c)) {
        if (!json_is_array(c)) {
            snprintf(t->reason, sizeof(t->reason),
                     "trade #%zu: \"c\" is neither an array nor null", index);
            goto bad;
        }
        size_t nc = json_array_size(c);
        for (size_t i = 0; i < nc; i++) {
            json_t *ci = json_array_get(c, i);
            if (!json_is_string(ci) || strlen(json_string_value(ci)) != json_string_length(ci)) {
                snprintf(t->reason, sizeof(t->reason),
                         "trade #%zu: \"c\"[%zu] is not a string", index, i);
                goto bad;
            }
        }
        t->conditions = malloc((nc ? nc : 1) * sizeof(*t->conditions));
        if (!t->conditions) return -1;
        for (size_t i = 0; i < nc; i++) t->conditions[i] = json_string_value(json_array_get(c, i));
        t->nconditions = nc;
        t->has_conditions = 1;
    }
    t->symbol = json_string_value(s);
    t->ok = 1;
    return 0;
bad:
    t->raw = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
    return t->raw ? 0 : -1;
}

int fh_frame_parse(const char *data, size_t len, fh_frame_t *f) {
    memset(f, 0, sizeof(*f));
    f->kind = FH_FRAME_BAD;
    json_error_t je;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root) {
        snprintf(f->reason, sizeof(f->reason), "not JSON: %s (at byte %d)", je.text, je.position);
        return 0;
    }
    f->json = root;
    if (!json_is_object(root)) {
        snprintf(f->reason, sizeof(f->reason), "not a JSON object");
        return 0;
    }
    json_t *type = json_object_get(root, "type");
    if (!json_is_string(type)) {
        snprintf(f->reason, sizeof(f->reason), "\"type\" is %s",
                 type ? "not a string" : "missing");
        return 0;
    }
    const char *ts = json_string_value(type);
    if (strcmp(ts, "ping") == 0) {
        f->kind = FH_FRAME_PING;
        return 0;
    }
    if (strcmp(ts, "error") == 0) {
        json_t *msg = json_object_get(root, "msg");
        f->error_msg = json_is_string(msg) ? json_string_value(msg) : "";
        f->kind = FH_FRAME_ERROR;
        return 0;
    }
    if (strcmp(ts, "trade") != 0) {
        snprintf(f->reason, sizeof(f->reason), "unknown \"type\": \"%.60s\"", ts);
        return 0;
    }
    json_t *arr = json_object_get(root, "data");
    if (!json_is_array(arr)) {
        snprintf(f->reason, sizeof(f->reason), "trade message: \"data\" is %s",
                 arr ? "not an array" : "missing");
        return 0;
    }
    size_t n = json_array_size(arr);
    if (n > 0 && !(f->trades = calloc(n, sizeof(*f->trades)))) {
        snprintf(f->reason, sizeof(f->reason), "out of memory");
        return -1;
    }
    f->ntrades = n;
    for (size_t i = 0; i < n; i++) {
        if (parse_trade(json_array_get(arr, i), i, &f->trades[i]) != 0) {
            fh_frame_free(f);
            f->kind = FH_FRAME_BAD;
            snprintf(f->reason, sizeof(f->reason), "out of memory");
            return -1;
        }
        if (!f->trades[i].ok) f->nbad++;
    }
    f->kind = FH_FRAME_TRADE;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Trade ids and back-off                                                    */
/* ------------------------------------------------------------------------ */

static void fnv1a(uint64_t *h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        *h ^= p[i];
        *h *= UINT64_C(0x100000001b3);
    }
}

/* Shortest "%.{15,16,17}g" text that reads back as the same double. */
static void double_text(double d, char *buf, size_t len) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) return;
    }
}

void fh_trade_id(const char *symbol, int64_t time_ms, double price, double volume,
                 size_t index, char out[33]) {
    char canon[160];
    char ptxt[40], vtxt[40];
    double_text(price, ptxt, sizeof(ptxt));
    double_text(volume, vtxt, sizeof(vtxt));
    int n = snprintf(canon, sizeof(canon), "\x1f%" PRId64 "\x1f%s\x1f%s\x1f%zu", time_ms, ptxt,
                     vtxt, index);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof(canon)) n = (int)sizeof(canon) - 1;
    uint64_t h1 = UINT64_C(0xcbf29ce484222325), h2 = UINT64_C(0x6c62272e07bb0142);
    size_t slen = strlen(symbol);
    fnv1a(&h1, symbol, slen);
    fnv1a(&h1, canon, (size_t)n);
    /* the second hash reads the fields in the other order */
    fnv1a(&h2, canon, (size_t)n);
    fnv1a(&h2, symbol, slen);
    snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, h1, h2);
}

int64_t fh_backoff_ms(int64_t initial_ms, int64_t max_ms, double jitter, unsigned attempt,
                      double rnd) {
    if (initial_ms < 1) initial_ms = 1;
    if (max_ms < initial_ms) max_ms = initial_ms;
    int64_t base = initial_ms;
    for (unsigned i = 0; i < attempt && base < max_ms; i++)
        base = base > max_ms / 2 ? max_ms : base * 2;
    if (base > max_ms) base = max_ms;
    if (jitter < 0) jitter = 0;
    if (jitter > 1) jitter = 1;
    if (rnd < 0) rnd = 0;
    if (rnd >= 1) rnd = 0.999999;
    /* the part taken off base, computed so that no double is converted back
     * to an integer it does not fit in */
    double off = (double)base * jitter * (1.0 - rnd);
    int64_t o = off >= (double)base ? base : (int64_t)off;
    int64_t d = base - o;
    return d < 1 ? 1 : d;
}
