/*
 * snowflake-emulator - a local stand-in for the Snowflake SQL API v2, for
 * testing sinks without the real service: an HTTP server (libmicrohttpd, on
 * 127.0.0.1 only) that checks requests the way Snowflake documents, keeps
 * tables in SQLite and answers with Snowflake's response shapes.
 *
 *   snowflake-emulator serve --db F.sqlite --account ACCOUNT --user USER --public-key F.pem
 *        [--user USER2 --public-key F2.pem]... [--port 0] [--port-file F]
 *        [--fail-rate P --fail-status 429|503] [--seed S] [--latency-ms N]
 *        [--async-after-ms N] [--drop-rate P [--drop-when before|after|random]]
 *        [--commit-delay-ms N] [--faults-streaming on|off] [--log-file F]
 *   snowflake-emulator query --db F.sqlite [--database D --schema S] "SELECT ..."
 *
 * serve prints its URL ("http://127.0.0.1:PORT") on stdout once listening
 * (and writes it to --port-file), logs one line per request (--log-file, else
 * stderr) and exits 0 on SIGTERM/SIGINT. query prints a header line and the
 * rows, tab-separated, timestamps as stored (ISO-8601), NULL as "NULL".
 *
 * Endpoints: POST /api/v2/statements[?requestId=&retry=true&async=true&nullable=false],
 * GET /api/v2/statements/{handle}, POST /api/v2/statements/{handle}/cancel.
 * Checks, in Snowflake's order: Content-Type application/json (415), Accept
 * (406 when it excludes application/json), Authorization: Bearer <key-pair
 * JWT> with X-Snowflake-Authorization-Token-Type KEYPAIR_JWT (401, code
 * 390144 "JWT token is invalid. [uuid]" for every JWT failure - bad
 * signature, unknown user or fingerprint, wrong account, expired, lifetime
 * over one hour - as Snowflake does; the specific reason, as
 * SYSTEM$GET_LOGIN_FAILURE_DETAILS would name it, goes to the log with the
 * uuid), then the JSON payload (400, 390142).
 *
 * Snowpipe Streaming (REST, high-performance architecture) on the same port:
 * GET /v2/streaming/hostname (answers this server's "127.0.0.1:PORT"),
 * POST /oauth/token (a scoped token), and on that host PUT/DELETE
 * /v2/streaming/databases/D/schemas/S/pipes/P/channels/C (open/drop),
 * POST /v2/streaming/data/databases/D/schemas/S/pipes/P/channels/C/rows
 * (NDJSON; continuationToken, offsetToken or endOffsetToken) and POST
 * .../pipes/P:bulk-channel-status. Only default pipes <TABLE>-STREAMING;
 * appended rows are committed --commit-delay-ms (default 1000) later,
 * which is when last_committed_offset_token advances; reopening a channel
 * drops its uncommitted rows and makes older continuation tokens stale.
 * --faults-streaming on makes --fail-rate / --drop-rate / --latency-ms hit
 * the channel requests (open, append, status) too.
 *
 * SQL subset (everything else: 422 "SQL compilation error:\nunsupported in
 * the emulator: ..."):
 *   CREATE [OR REPLACE] [TRANSIENT|TEMPORARY] TABLE [IF NOT EXISTS] t (col type [NOT NULL] [DEFAULT e], ...)
 *   CREATE DATABASE|SCHEMA ... (accepted, nothing to do), USE [DATABASE|SCHEMA] x,
 *   DROP TABLE [IF EXISTS] t, TRUNCATE [TABLE] [IF EXISTS] t, ALTER TABLE t ADD [COLUMN] c type,
 *   INSERT INTO t [(cols)] VALUES (...),(...) | SELECT ..., UPDATE, DELETE,
 *   SELECT (joins, WHERE, GROUP BY, aggregates, FROM VALUES (...) with COLUMN1..N),
 *   MERGE INTO t USING (SELECT ...)|table s ON cond
 *       [WHEN MATCHED [AND c] THEN UPDATE SET ...|DELETE] [WHEN NOT MATCHED [AND c] THEN INSERT [(cols)] VALUES (...)],
 *   BEGIN [TRANSACTION] / START TRANSACTION / COMMIT / ROLLBACK, SHOW TABLES, DESCRIBE TABLE t.
 *   Functions: PARSE_JSON, TO_VARIANT, CURRENT_TIMESTAMP[()], SYSDATE(), NVL, IFF and SQLite's own.
 * Types: NUMBER/INT... (INTEGER storage, REAL when scale > 0), FLOAT/DOUBLE, VARCHAR/STRING/TEXT, BOOLEAN (0/1),
 * DATE, TIME, TIMESTAMP[_NTZ|_LTZ|_TZ] (ISO-8601 text "YYYY-MM-DD HH:MM:SS.fffffffff", _TZ with " +HH:MM";
 * the session time zone is UTC), VARIANT/OBJECT/ARRAY (JSON text), BINARY (blob).
 * Names: unquoted identifiers are upper-cased; table DB.SCHEMA.T is the SQLite table "DB.SCHEMA.T";
 * unqualified names use the request's database/schema. Statement results are kept in the table
 * "__sfemu_statements", column types in "__sfemu_columns". See docs/snowflake-emulator.md.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <sqlite3.h>

#define MAX_USERS 16
#define MAX_BODY (256u * 1024u * 1024u)
#define MAX_LIST 16384
#define JWT_MAX_LIFETIME 3600

/* ---------------------------------------------------------------- strings */

typedef struct {
    char *p;
    size_t len, cap;
} sb_t;

static void sb_grow(sb_t *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) abort();
    b->p = p;
    b->cap = cap;
}
static void sb_addn(sb_t *b, const char *s, size_t n) {
    sb_grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}
static void sb_add(sb_t *b, const char *s) { sb_addn(b, s, strlen(s)); }
static void sb_printf(sb_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    sb_grow(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}
static char *sb_take(sb_t *b) {
    if (!b->p) return strdup("");
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}
/* Appends s as a quoted SQLite identifier or string (q is '"' or '\''). */
static void sb_quoted(sb_t *b, const char *s, char q) {
    sb_addn(b, &q, 1);
    for (; *s; s++) {
        if (*s == q) sb_addn(b, &q, 1);
        sb_addn(b, s, 1);
    }
    sb_addn(b, &q, 1);
}
static void upcase(char *s) {
    for (; *s; s++) *s = (char)toupper((unsigned char)*s);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ errors */

/* A Snowflake error: HTTP status, code, sqlState, message. */
typedef struct {
    int http;
    char code[8];
    char state[8];
    char msg[1024];
} sf_err_t;

static int seterr(sf_err_t *e, int http, const char *code, const char *state, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int seterr(sf_err_t *e, int http, const char *code, const char *state, const char *fmt, ...) {
    e->http = http;
    snprintf(e->code, sizeof(e->code), "%s", code);
    snprintf(e->state, sizeof(e->state), "%s", state);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return -1;
}
#define UNSUPPORTED(e, what) \
    seterr((e), 422, "001003", "0A000", "SQL compilation error:\nunsupported in the emulator: %s", (what))

/* -------------------------------------------------------------- tokenizer */

enum { T_EOF, T_IDENT, T_QIDENT, T_STRING, T_NUMBER, T_PARAM, T_OP, T_SEMI };

typedef struct {
    int kind;
    char *text; /* T_IDENT upper-cased; T_QIDENT / T_STRING unescaped */
    int param;  /* T_PARAM: 1-based bind index */
    int pos;    /* byte offset in the request's statement text */
} tok_t;

typedef struct {
    tok_t *t;
    int n, cap;
} toks_t;

static void toks_push(toks_t *ts, int kind, const char *s, size_t n, int pos) {
    if (ts->n == ts->cap) {
        ts->cap = ts->cap ? ts->cap * 2 : 64;
        ts->t = realloc(ts->t, (size_t)ts->cap * sizeof(tok_t));
        if (!ts->t) abort();
    }
    tok_t *t = &ts->t[ts->n++];
    t->kind = kind;
    t->text = strndup(s, n);
    if (!t->text) abort();
    t->param = 0;
    t->pos = pos;
}
static void toks_free(toks_t *ts) {
    for (int i = 0; i < ts->n; i++) free(ts->t[i].text);
    free(ts->t);
    ts->t = NULL;
    ts->n = ts->cap = 0;
}

static void line_pos(const char *sql, int pos, int *line, int *col) {
    *line = 1;
    *col = 0;
    for (int i = 0; i < pos && sql[i]; i++) {
        if (sql[i] == '\n') {
            (*line)++;
            *col = 0;
        } else {
            (*col)++;
        }
    }
}

static int syntax_err(sf_err_t *e, const char *sql, int pos, const char *what) {
    int line, col;
    line_pos(sql, pos, &line, &col);
    return seterr(e, 422, "001003", "42000", "SQL compilation error:\nsyntax error line %d at position %d %s.",
                  line, col, what);
}

/* The quoted text at *s (its opening quote q): a doubled q is one q, and in
 * strings (backslash) Snowflake's escapes \n \t \r \b \f \0 \x. -1 if
 * the input ends first. */
static int read_quoted(const char **sp, char q, bool backslash, sb_t *v) {
    const char *s = *sp + 1;
    for (;;) {
        if (!*s) return -1;
        if (*s == q && s[1] == q) {
            sb_addn(v, &q, 1);
            s += 2;
        } else if (*s == q) {
            *sp = s + 1;
            return 0;
        } else if (backslash && *s == '\\' && s[1]) {
            char x = s[1];
            const char *r = x == 'n' ? "\n" : x == 't' ? "\t" : x == 'r' ? "\r" : x == 'b' ? "\b"
                          : x == 'f' ? "\f" : x == '0' ? "" : NULL;
            if (r) sb_add(v, r);
            else sb_addn(v, &x, 1);
            s += 2;
        } else {
            sb_addn(v, s++, 1);
        }
    }
}

/* Splits Snowflake SQL into tokens: strings with Snowflake's escapes ('' and
 * backslash) and $$...$$, "quoted" identifiers, comments dropped, ? and :N
 * binds numbered. */
static int tokenize(const char *sql, toks_t *ts, int *nparams, sf_err_t *e) {
    int qmarks = 0;
    const char *s = sql;
    *nparams = 0;
    while (*s) {
        int pos = (int)(s - sql);
        unsigned char c = (unsigned char)*s;
        if (isspace(c)) {
            s++;
        } else if ((c == '-' && s[1] == '-') || (c == '/' && s[1] == '/')) {
            while (*s && *s != '\n') s++;
        } else if (c == '/' && s[1] == '*') {
            const char *end = strstr(s + 2, "*/");
            if (!end) return syntax_err(e, sql, pos, "unexpected end of input in a comment");
            s = end + 2;
        } else if (c == '\'') {
            sb_t v = {0};
            if (read_quoted(&s, '\'', true, &v)) {
                free(v.p);
                return syntax_err(e, sql, pos, "unexpected end of input in a string literal");
            }
            toks_push(ts, T_STRING, v.p ? v.p : "", v.len, pos);
            free(v.p);
        } else if (c == '$' && s[1] == '$') {
            const char *end = strstr(s + 2, "$$");
            if (!end) return syntax_err(e, sql, pos, "unexpected end of input in a $$ string");
            toks_push(ts, T_STRING, s + 2, (size_t)(end - s - 2), pos);
            s = end + 2;
        } else if (c == '"') {
            sb_t v = {0};
            if (read_quoted(&s, '"', false, &v)) {
                free(v.p);
                return syntax_err(e, sql, pos, "unexpected end of input in a quoted identifier");
            }
            if (v.len == 0) {
                free(v.p);
                return syntax_err(e, sql, pos, "unexpected '\"\"' (empty identifier)");
            }
            toks_push(ts, T_QIDENT, v.p, v.len, pos);
            free(v.p);
        } else if (isalpha(c) || c == '_') {
            const char *b = s;
            while (isalnum((unsigned char)*s) || *s == '_' || *s == '$') s++;
            toks_push(ts, T_IDENT, b, (size_t)(s - b), pos);
            upcase(ts->t[ts->n - 1].text);
        } else if (isdigit(c) || (c == '.' && isdigit((unsigned char)s[1]))) {
            const char *b = s;
            while (isdigit((unsigned char)*s)) s++;
            if (*s == '.') {
                s++;
                while (isdigit((unsigned char)*s)) s++;
            }
            if ((*s == 'e' || *s == 'E') &&
                (isdigit((unsigned char)s[1]) || ((s[1] == '+' || s[1] == '-') && isdigit((unsigned char)s[2])))) {
                s += 2;
                while (isdigit((unsigned char)*s)) s++;
            }
            toks_push(ts, T_NUMBER, b, (size_t)(s - b), pos);
        } else if (c == '?') {
            toks_push(ts, T_PARAM, "?", 1, pos);
            ts->t[ts->n - 1].param = ++qmarks;
            if (qmarks > *nparams) *nparams = qmarks;
            s++;
        } else if (c == ':' && isdigit((unsigned char)s[1])) {
            const char *b = ++s;
            while (isdigit((unsigned char)*s)) s++;
            long v = strtol(b, NULL, 10);
            if (v < 1 || v > 1000000) return syntax_err(e, sql, pos, "unexpected bind variable");
            toks_push(ts, T_PARAM, b - 1, (size_t)(s - b + 1), pos);
            ts->t[ts->n - 1].param = (int)v;
            if (v > *nparams) *nparams = (int)v;
        } else if (c == ';') {
            toks_push(ts, T_SEMI, ";", 1, pos);
            s++;
        } else {
            static const char *two[] = {"<=", ">=", "<>", "!=", "||", "::", "=>", NULL};
            size_t n = 1;
            for (int i = 0; two[i]; i++)
                if (s[0] == two[i][0] && s[1] == two[i][1]) n = 2;
            toks_push(ts, T_OP, s, n, pos);
            s += n;
        }
    }
    return 0;
}

/* ---------------------------------------------------------- time values */

/* Storage format of timestamps: "YYYY-MM-DD HH:MM:SS.fffffffff" (wall clock;
 * _TZ adds " +HH:MM"), which sorts as text and is readable in `query`. */
static void fmt_ts(char *out, size_t n, int64_t sec, int nanos, int has_off, int offmin) {
    struct tm tm;
    time_t t = (time_t)(sec + (has_off ? (int64_t)offmin * 60 : 0));
    gmtime_r(&t, &tm);
    int len = snprintf(out, n, "%04d-%02d-%02d %02d:%02d:%02d.%09d", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, nanos);
    if (has_off && len > 0 && (size_t)len < n)
        snprintf(out + len, n - (size_t)len, " %c%02d:%02d", offmin < 0 ? '-' : '+', abs(offmin) / 60,
                 abs(offmin) % 60);
}

/* Parses a whole signed integer; false on anything else. */
static bool parse_i64(const char *s, int64_t *v) {
    if (!*s || isspace((unsigned char)*s)) return false;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *v = x;
    return true;
}

/* Epoch nanoseconds ("1700000000123456789"), or seconds with a fraction
 * ("1700000000.123"), into seconds + nanos. */
static bool parse_epoch(const char *v, int64_t *sec, int *nanos) {
    int64_t x;
    if (parse_i64(v, &x)) {
        *sec = x / 1000000000;
        int64_t r = x % 1000000000;
        if (r < 0) {
            r += 1000000000;
            (*sec)--;
        }
        *nanos = (int)r;
        return true;
    }
    const char *dot = strchr(v, '.');
    if (!dot || dot == v) return false;
    char ip[32];
    if ((size_t)(dot - v) >= sizeof(ip)) return false;
    memcpy(ip, v, (size_t)(dot - v));
    ip[dot - v] = '\0';
    if (!parse_i64(ip, &x)) return false;
    int ns = 0, digits = 0;
    for (const char *p = dot + 1; *p; p++) {
        if (!isdigit((unsigned char)*p)) return false;
        if (digits < 9) ns = ns * 10 + (*p - '0'), digits++;
    }
    if (digits == 0) return false;
    while (digits++ < 9) ns *= 10;
    if (v[0] == '-' && ns) {
        x--;
        ns = 1000000000 - ns;
    }
    *sec = x;
    *nanos = ns;
    return true;
}

/* "YYYY-MM-DD[( |T)HH:MM[:SS[.fffffffff]]][Z|(+|-)HH[:]MM]" */
static bool parse_iso(const char *v, int64_t *sec, int *nanos, int *has_off, int *offmin, int *has_time) {
    int y, mo, d, h = 0, mi = 0, sc = 0, n = 0;
    if (sscanf(v, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31) return false;
    const char *p = v + 10;
    int ns = 0;
    *has_off = 0;
    *offmin = 0;
    *has_time = 0;
    if (*p == ' ' || *p == 'T') {
        p++;
        if (sscanf(p, "%2d:%2d%n", &h, &mi, &n) != 2 || n != 5) return false;
        p += 5;
        *has_time = 1;
        if (*p == ':') {
            if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2])) return false;
            sc = (p[1] - '0') * 10 + (p[2] - '0');
            p += 3;
            if (*p == '.') {
                int digits = 0;
                p++;
                while (isdigit((unsigned char)*p)) {
                    if (digits < 9) ns = ns * 10 + (*p - '0'), digits++;
                    p++;
                }
                if (digits == 0) return false;
                while (digits++ < 9) ns *= 10;
            }
        }
        if (h > 23 || mi > 59 || sc > 60) return false;
        while (*p == ' ') p++;
        if (*p == 'Z') {
            *has_off = 1;
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om = 0, sign = *p == '-' ? -1 : 1;
            if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) == 2 && n == 5) p += 6;
            else if (sscanf(p + 1, "%2d%2d%n", &oh, &om, &n) == 2 && n == 4) p += 5;
            else return false;
            *has_off = 1;
            *offmin = sign * (oh * 60 + om);
        }
    }
    if (*p) return false;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sc};
    *sec = (int64_t)timegm(&tm) - (int64_t)*offmin * 60;
    *nanos = ns;
    return true;
}

static bool parse_time_of_day(const char *v, int64_t *secs, int *nanos) {
    int h, m, s = 0, n = 0;
    if (sscanf(v, "%2d:%2d%n", &h, &m, &n) != 2 || n != 5) return false;
    const char *p = v + 5;
    int ns = 0;
    if (*p == ':') {
        if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2])) return false;
        s = (p[1] - '0') * 10 + (p[2] - '0');
        p += 3;
        if (*p == '.') {
            int digits = 0;
            for (p++; isdigit((unsigned char)*p); p++)
                if (digits < 9) ns = ns * 10 + (*p - '0'), digits++;
            if (!digits) return false;
            while (digits++ < 9) ns *= 10;
        }
    }
    if (*p || h > 23 || m > 59 || s > 59) return false;
    *secs = h * 3600 + m * 60 + s;
    *nanos = ns;
    return true;
}

/* ------------------------------------------------------------- bindings */

enum { B_NULL, B_INT, B_REAL, B_TEXT, B_BLOB };
typedef struct {
    int kind;
    int64_t i;
    double d;
    char *s; /* B_TEXT / B_BLOB, owned */
    size_t n;
} bval_t;

/* Binds v (owned by the caller until the statement is done) at index k. */
static void bind_value(sqlite3_stmt *st, int k, const bval_t *v) {
    switch (v->kind) {
    case B_NULL: sqlite3_bind_null(st, k); break;
    case B_INT: sqlite3_bind_int64(st, k, v->i); break;
    case B_REAL: sqlite3_bind_double(st, k, v->d); break;
    case B_TEXT: sqlite3_bind_text(st, k, v->s, (int)v->n, SQLITE_STATIC); break;
    default: sqlite3_bind_blob(st, k, v->s, (int)v->n, SQLITE_STATIC); break;
    }
}

static void binds_free(bval_t *b, int n) {
    for (int i = 0; i < n; i++) free(b[i].s);
    free(b);
}

static int bad_value(sf_err_t *e, const char *what, const char *v) {
    return seterr(e, 422, "100037", "22018", "%s value '%.200s' is not recognized", what, v);
}

/* One binding {"type": T, "value": "..."} into a storage value. */
static int convert_binding(const char *type, const char *v, bval_t *out, sf_err_t *e) {
    char buf[64];
    if (!strcasecmp(type, "TEXT") || !strcasecmp(type, "VARIANT") || !strcasecmp(type, "OBJECT") ||
        !strcasecmp(type, "ARRAY")) {
        out->kind = B_TEXT;
        out->s = strdup(v);
        out->n = strlen(v);
    } else if (!strcasecmp(type, "FIXED")) {
        int64_t x;
        if (parse_i64(v, &x)) {
            out->kind = B_INT;
            out->i = x;
        } else {
            char *end;
            const char *p = v;
            if (*p == '+' || *p == '-') p++;
            if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1])))
                return bad_value(e, "Numeric", v);
            double d = strtod(v, &end);
            if (*end || !isfinite(d)) return bad_value(e, "Numeric", v);
            out->kind = B_REAL;
            out->d = d;
        }
    } else if (!strcasecmp(type, "REAL")) {
        char *end;
        if (!*v || isspace((unsigned char)*v)) return bad_value(e, "Numeric", v);
        double d = strtod(v, &end);
        if (*end) return bad_value(e, "Numeric", v);
        out->kind = B_REAL;
        out->d = d;
    } else if (!strcasecmp(type, "BOOLEAN")) {
        static const char *t[] = {"true", "t", "yes", "y", "on", "1", NULL};
        static const char *f[] = {"false", "f", "no", "n", "off", "0", NULL};
        out->kind = B_INT;
        out->i = -1;
        for (int i = 0; t[i]; i++)
            if (!strcasecmp(v, t[i])) out->i = 1;
        for (int i = 0; f[i]; i++)
            if (!strcasecmp(v, f[i])) out->i = 0;
        if (out->i < 0) return bad_value(e, "Boolean", v);
    } else if (!strcasecmp(type, "BINARY")) {
        size_t n = strlen(v);
        if (n % 2) return bad_value(e, "Binary", v);
        out->s = malloc(n / 2 + 1);
        if (!out->s) abort();
        for (size_t i = 0; i < n; i += 2) {
            if (!isxdigit((unsigned char)v[i]) || !isxdigit((unsigned char)v[i + 1]))
                return bad_value(e, "Binary", v);
            char h[3] = {v[i], v[i + 1], 0};
            out->s[i / 2] = (char)strtol(h, NULL, 16);
        }
        out->kind = B_BLOB;
        out->n = n / 2;
    } else if (!strcasecmp(type, "DATE")) {
        int64_t ms, sec;
        int ns, ho, om, ht;
        if (parse_i64(v, &ms)) {
            sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
        } else if (!parse_iso(v, &sec, &ns, &ho, &om, &ht) || ht) {
            return bad_value(e, "Date", v);
        }
        fmt_ts(buf, sizeof(buf), sec, 0, 0, 0);
        buf[10] = '\0';
        out->kind = B_TEXT;
        out->s = strdup(buf);
        out->n = 10;
    } else if (!strcasecmp(type, "TIME")) {
        int64_t secs;
        int ns;
        if (parse_epoch(v, &secs, &ns)) {
            if (secs < 0 || secs >= 86400) return bad_value(e, "Time", v);
        } else if (!parse_time_of_day(v, &secs, &ns)) {
            return bad_value(e, "Time", v);
        }
        snprintf(buf, sizeof(buf), "%02d:%02d:%02d.%09d", (int)(secs / 3600), (int)(secs / 60 % 60),
                 (int)(secs % 60), ns);
        out->kind = B_TEXT;
        out->s = strdup(buf);
        out->n = strlen(buf);
    } else if (!strcasecmp(type, "TIMESTAMP_NTZ") || !strcasecmp(type, "TIMESTAMP_LTZ") ||
               !strcasecmp(type, "TIMESTAMP_TZ") || !strcasecmp(type, "TIMESTAMP")) {
        bool tz = !strcasecmp(type, "TIMESTAMP_TZ");
        int64_t sec;
        int ns, has_off = 0, offmin = 0, ht;
        char num[64];
        const char *sp = strchr(v, ' ');
        if (tz && sp && (size_t)(sp - v) < sizeof(num) && isdigit((unsigned char)sp[1])) {
            int64_t o;
            memcpy(num, v, (size_t)(sp - v));
            num[sp - v] = '\0';
            if (!parse_epoch(num, &sec, &ns) || !parse_i64(sp + 1, &o) || o < 0 || o > 2880)
                return bad_value(e, "Timestamp", v);
            has_off = 1;
            offmin = (int)o - 1440;
        } else if (parse_epoch(v, &sec, &ns)) {
            has_off = tz;
        } else if (parse_iso(v, &sec, &ns, &has_off, &offmin, &ht)) {
            has_off = tz;
        } else {
            return bad_value(e, "Timestamp", v);
        }
        fmt_ts(buf, sizeof(buf), sec, ns, has_off, offmin);
        out->kind = B_TEXT;
        out->s = strdup(buf);
        out->n = strlen(buf);
    } else {
        return seterr(e, 400, "390142", "", "Unsupported binding type '%.64s'.", type);
    }
    if ((out->kind == B_TEXT) && !out->s) abort();
    return 0;
}

/* The request's "bindings" object ({"1": {...}, "2": {...}}) into an array
 * indexed from 0; holes stay B_NULL with `set` false. */
static int parse_bindings(json_t *j, bval_t **out, bool **set, int *n, sf_err_t *e) {
    *out = NULL;
    *set = NULL;
    *n = 0;
    if (!j || json_is_null(j)) return 0;
    if (!json_is_object(j))
        return seterr(e, 400, "390142", "", "Incoming request does not contain a valid payload.");
    int max = 0;
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        int64_t k;
        if (!parse_i64(key, &k) || k < 1 || k > 1000000)
            return seterr(e, 400, "390142", "", "Incoming request does not contain a valid payload.");
        if (k > max) max = (int)k;
    }
    *out = calloc((size_t)max + 1, sizeof(bval_t));
    *set = calloc((size_t)max + 1, sizeof(bool));
    if (!*out || !*set) abort();
    *n = max;
    json_object_foreach(j, key, v) {
        int k = atoi(key) - 1;
        json_t *jt = json_is_object(v) ? json_object_get(v, "type") : NULL;
        json_t *jv = json_is_object(v) ? json_object_get(v, "value") : NULL;
        if (!json_is_string(jt))
            return seterr(e, 400, "390142", "", "Incoming request does not contain a valid payload.");
        (*set)[k] = true;
        if (!jv || json_is_null(jv)) continue; /* SQL NULL */
        char num[64];
        const char *sv;
        if (json_is_string(jv)) sv = json_string_value(jv);
        else if (json_is_integer(jv)) snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(jv)), sv = num;
        else if (json_is_real(jv)) snprintf(num, sizeof(num), "%.17g", json_real_value(jv)), sv = num;
        else if (json_is_boolean(jv)) sv = json_is_true(jv) ? "true" : "false";
        else
            return UNSUPPORTED(e, "array bindings (the SQL API documents one value per binding; "
                                  "use INSERT ... VALUES (?,?),(?,?) with flattened bindings)");
        if (convert_binding(json_string_value(jt), sv, &(*out)[k], e) != 0) return -1;
    }
    return 0;
}

/* ------------------------------------------------------- SQLite functions */

/* A custom function fails with "SFERR|code|state|message" so the executor
 * can answer with Snowflake's code. */
static void fn_parse_json(sqlite3_context *c, int argc, sqlite3_value **argv) {
    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
        sqlite3_result_null(c);
        return;
    }
    const char *s = (const char *)sqlite3_value_text(argv[0]);
    if (!s) {
        sqlite3_result_error_nomem(c);
        return;
    }
    json_error_t je;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &je);
    if (!j) {
        char msg[512];
        snprintf(msg, sizeof(msg), "SFERR|100069|22P02|Error parsing JSON: %s, pos %d", je.text, je.position);
        sqlite3_result_error(c, msg, -1);
        return;
    }
    char *out = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!out) {
        sqlite3_result_error_nomem(c);
        return;
    }
    sqlite3_result_text(c, out, -1, free);
}

static void fn_to_variant(sqlite3_context *c, int argc, sqlite3_value **argv) {
    (void)argc;
    json_t *j = NULL;
    switch (sqlite3_value_type(argv[0])) {
    case SQLITE_NULL: sqlite3_result_null(c); return;
    case SQLITE_INTEGER: j = json_integer(sqlite3_value_int64(argv[0])); break;
    case SQLITE_FLOAT: j = json_real(sqlite3_value_double(argv[0])); break;
    default: j = json_string((const char *)sqlite3_value_text(argv[0])); break;
    }
    char *out = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!out) {
        sqlite3_result_error(c, "SFERR|100069|22P02|TO_VARIANT: value is not valid UTF-8", -1);
        return;
    }
    sqlite3_result_text(c, out, -1, free);
}

static void fn_now(sqlite3_context *c, int argc, sqlite3_value **argv) {
    (void)argc;
    (void)argv;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char buf[64];
    fmt_ts(buf, sizeof(buf), ts.tv_sec, (int)ts.tv_nsec, 0, 0);
    sqlite3_result_text(c, buf, -1, SQLITE_TRANSIENT);
}

static int db_open(const char *path, sqlite3 **db, char *err, size_t errlen) {
    if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, *db ? sqlite3_errmsg(*db) : "cannot open");
        return -1;
    }
    sqlite3_busy_timeout(*db, 5000);
    const char *init = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA case_sensitive_like=ON;"
                       "CREATE TABLE IF NOT EXISTS __sfemu_columns (tbl TEXT, pos INTEGER, name TEXT,"
                       " type TEXT, nullable INTEGER, dflt TEXT, PRIMARY KEY (tbl, name));"
                       "CREATE TABLE IF NOT EXISTS __sfemu_statements (handle TEXT PRIMARY KEY,"
                       " request_id TEXT, http_status INTEGER, body TEXT, created_ms INTEGER);"
                       "CREATE INDEX IF NOT EXISTS __sfemu_statements_rid ON __sfemu_statements (request_id);"
                       "CREATE TABLE IF NOT EXISTS __sfemu_channels (tbl TEXT, pipe TEXT, channel TEXT,"
                       " client_seq INTEGER, committed_token TEXT, rows_inserted INTEGER, created_ms INTEGER,"
                       " PRIMARY KEY (tbl, pipe, channel));";
    char *msg = NULL;
    if (sqlite3_exec(*db, init, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, msg ? msg : "initialisation failed");
        sqlite3_free(msg);
        return -1;
    }
    int fl = SQLITE_UTF8;
    sqlite3_create_function(*db, "PARSE_JSON", 1, fl | SQLITE_DETERMINISTIC, NULL, fn_parse_json, NULL, NULL);
    sqlite3_create_function(*db, "TRY_PARSE_JSON", 1, fl | SQLITE_DETERMINISTIC, NULL, fn_parse_json, NULL, NULL);
    sqlite3_create_function(*db, "TO_VARIANT", 1, fl | SQLITE_DETERMINISTIC, NULL, fn_to_variant, NULL, NULL);
    sqlite3_create_function(*db, "SF_NOW", 0, fl, NULL, fn_now, NULL, NULL);
    return 0;
}

/* ------------------------------------------------------------- translator */

typedef struct {
    sqlite3 *db;
    char database[256], schema[256]; /* current namespace; "" when unset */
    bool in_txn;                     /* an explicit BEGIN is open */
    const char *sql;                 /* the request's statement text, for positions */
} sess_t;

typedef struct {
    sess_t *s;
    tok_t *t;
    int end; /* index of the statement's end (a T_EOF/T_SEMI token) */
    const char *op;
    sf_err_t *e;
    bool insert_values; /* emitting the VALUES of an INSERT */
    char ctes[16][256];  /* names a WITH clause defines: not tables */
    int nctes;
} tr_t;

static bool kw(const tok_t *t, const char *w) { return t->kind == T_IDENT && !strcmp(t->text, w); }
static bool op(const tok_t *t, const char *o) { return t->kind == T_OP && !strcmp(t->text, o); }
static bool is_name(const tok_t *t) { return t->kind == T_IDENT || t->kind == T_QIDENT; }

/* Words after a table name that are not its alias. */
static bool reserved_after_table(const tok_t *t) {
    static const char *w[] = {"WHERE", "ON", "GROUP", "ORDER", "LIMIT", "JOIN", "LEFT", "RIGHT", "INNER",
                              "OUTER", "FULL", "CROSS", "NATURAL", "UNION", "EXCEPT", "INTERSECT", "MINUS",
                              "HAVING", "QUALIFY", "WINDOW", "USING", "SET", "VALUES", "SELECT", "WHEN", "THEN",
                              "OFFSET", "FETCH", "LATERAL", "SAMPLE", "TABLESAMPLE", "AT", "BEFORE", "CHANGES",
                              "PIVOT", "UNPIVOT", "AS", "DEFAULT", "OVERWRITE", "WITH", "START", "CONNECT", NULL};
    if (t->kind != T_IDENT) return t->kind != T_QIDENT;
    for (int i = 0; w[i]; i++)
        if (!strcmp(t->text, w[i])) return true;
    return false;
}

/* Parses name[.name[.name]] at *i into up to 3 parts. */
static int parse_name(tr_t *tr, int *i, char parts[3][256], int *np) {
    *np = 0;
    for (;;) {
        tok_t *t = &tr->t[*i];
        if (*i >= tr->end || !is_name(t)) {
            if (*i >= tr->end) return syntax_err(tr->e, tr->s->sql, (int)strlen(tr->s->sql), "unexpected '<EOF>'");
            char what[300];
            snprintf(what, sizeof(what), "unexpected '%.200s'", t->text);
            return syntax_err(tr->e, tr->s->sql, t->pos, what);
        }
        if (*np == 3 || strlen(t->text) >= 256) return UNSUPPORTED(tr->e, "object names of more than 3 parts");
        snprintf(parts[(*np)++], 256, "%s", t->text);
        (*i)++;
        if (*i < tr->end && op(&tr->t[*i], ".")) (*i)++;
        else break;
    }
    return 0;
}

/* The SQLite table holding parts: "DB.SCHEMA.TABLE". */
static int resolve(tr_t *tr, char parts[3][256], int np, char *out, size_t n, char *last) {
    const char *d = np == 3 ? parts[0] : tr->s->database;
    const char *sc = np == 3 ? parts[1] : np == 2 ? parts[0] : tr->s->schema;
    if (!*d)
        return seterr(tr->e, 422, "090105", "22000",
                      "Cannot perform %s. This session does not have a current database. Call 'USE DATABASE', "
                      "or use a qualified name.", tr->op);
    if (!*sc)
        return seterr(tr->e, 422, "090106", "22000",
                      "Cannot perform %s. This session does not have a current schema. Call 'USE SCHEMA', or "
                      "use a qualified name.", tr->op);
    snprintf(out, n, "%s.%s.%s", d, sc, parts[np - 1]);
    if (last) snprintf(last, 256, "%s", parts[np - 1]);
    return 0;
}

static bool table_exists(sqlite3 *db, const char *name) {
    sqlite3_stmt *st;
    bool found = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

static int no_table(sf_err_t *e, const char *name) {
    return seterr(e, 422, "002003", "42S02", "SQL compilation error:\nObject '%s' does not exist or not authorized.",
                  name);
}

/* A table reference at *i: resolved, checked, written as the SQLite name
 * with an alias (the table's own name when none is given). */
static int emit_table(tr_t *tr, int *i, sb_t *out, bool alias, char *stor_out, char *alias_out) {
    char parts[3][256], stor[800], last[256];
    int np;
    if (parse_name(tr, i, parts, &np)) return -1;
    bool cte = false;
    for (int k = 0; np == 1 && k < tr->nctes; k++)
        if (!strcmp(parts[0], tr->ctes[k])) cte = true;
    if (cte) {
        snprintf(stor, sizeof(stor), "%s", parts[0]);
        snprintf(last, sizeof(last), "%s", parts[0]);
    } else {
        if (resolve(tr, parts, np, stor, sizeof(stor), last)) return -1;
        if (!table_exists(tr->s->db, stor)) return no_table(tr->e, stor);
    }
    sb_add(out, " ");
    sb_quoted(out, stor, '"');
    if (stor_out) snprintf(stor_out, 800, "%s", stor);
    if (!alias) return 0;
    tok_t *t = &tr->t[*i];
    if (*i < tr->end && kw(t, "AS")) t = &tr->t[++(*i)];
    const char *a = last;
    if (*i < tr->end && !reserved_after_table(t)) {
        a = t->text;
        (*i)++;
    }
    sb_add(out, " AS ");
    sb_quoted(out, a, '"');
    if (alias_out) snprintf(alias_out, 256, "%s", a);
    return 0;
}

static int emit_range(tr_t *tr, int from, int to, sb_t *out);

/* 16385 -> "16,385", as Snowflake writes counts in this message. */
static int too_many(tr_t *tr, int pos, int n) {
    char num[32], grouped[48];
    int line, col, len = snprintf(num, sizeof(num), "%d", n), j = 0;
    for (int i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0) grouped[j++] = ',';
        grouped[j++] = num[i];
    }
    grouped[j] = '\0';
    line_pos(tr->s->sql, pos, &line, &col);
    return seterr(tr->e, 422, "001795", "42601",
                  "SQL compilation error: error line %d at position %d\nmaximum number of expressions in a list "
                  "exceeded, expected at most 16,384, got %s", line, col, grouped);
}

/* The space before a token, left out where SQLite would name a result column
 * differently from Snowflake ("MAX(X)", "T.A", "F(A, B)"). */
static void sep(sb_t *out, const tok_t *t, const tok_t *prev) {
    if (!out->len) return;
    char last = out->p[out->len - 1];
    if (last == '(' || last == '.' || last == ' ') return;
    if (t->kind == T_OP && (!strcmp(t->text, ")") || !strcmp(t->text, ",") || !strcmp(t->text, "."))) return;
    if (t->kind == T_OP && !strcmp(t->text, "(") && prev && prev->kind == T_IDENT) return;
    sb_add(out, " ");
}

/* VALUES (..),(..) rows at *i (just after VALUES), counted against the
 * 16,384 limit. */
static int emit_values(tr_t *tr, int *i, int to, sb_t *out) {
    int rows = 0, start = *i;
    sb_add(out, " VALUES");
    while (*i < to && op(&tr->t[*i], "(")) {
        int depth = 0, j = *i;
        for (; j < to; j++) {
            if (op(&tr->t[j], "(")) depth++;
            else if (op(&tr->t[j], ")") && --depth == 0) break;
        }
        if (j >= to) return syntax_err(tr->e, tr->s->sql, tr->t[*i].pos, "unexpected '<EOF>'");
        if (rows++) sb_add(out, ",");
        if (emit_range(tr, *i, j + 1, out)) return -1;
        *i = j + 1;
        if (*i < to && op(&tr->t[*i], ",") && *i + 1 < to && op(&tr->t[*i + 1], "(")) (*i)++;
        else break;
    }
    if (rows == 0) return syntax_err(tr->e, tr->s->sql, tr->t[start].pos, "unexpected token after VALUES");
    if (rows > MAX_LIST) return too_many(tr, tr->t[start].pos, rows);
    return 0;
}

/* Writes tokens [from, to) as SQLite SQL: names upper-cased, table
 * references resolved, Snowflake functions mapped, literals re-quoted. */
static int emit_range(tr_t *tr, int from, int to, sb_t *out) {
    int items = 0; /* items of the innermost list, for the 16,384 cap */
    int list_start = from;
    /* open parentheses; true where FROM inside is a function's (EXTRACT(x FROM y)) */
    bool fn_paren[64];
    int depth = 0;
    for (int i = from; i < to;) {
        tok_t *t = &tr->t[i];
        tok_t *nx = i + 1 < to ? &tr->t[i + 1] : NULL;
        if (op(t, "(") || op(t, ")")) {
            if (op(t, "(") && depth < 64)
                fn_paren[depth] = i > from && (kw(&tr->t[i - 1], "EXTRACT") || kw(&tr->t[i - 1], "TRIM") ||
                                               kw(&tr->t[i - 1], "SUBSTRING") || kw(&tr->t[i - 1], "POSITION") ||
                                               kw(&tr->t[i - 1], "OVERLAY"));
            depth += op(t, "(") ? 1 : depth > 0 ? -1 : 0;
        }
        if (kw(t, "FROM") && depth > 0 && depth <= 64 && fn_paren[depth - 1]) {
            sb_add(out, " FROM");
            i++;
            continue;
        }
        if (t->kind == T_IDENT) {
            if ((kw(t, "FROM") || kw(t, "JOIN")) && nx && kw(nx, "VALUES")) {
                sb_add(out, " FROM (");
                i += 2;
                if (emit_values(tr, &i, to, out)) return -1;
                sb_add(out, ")");
                continue;
            }
            if ((kw(t, "FROM") || kw(t, "JOIN")) && nx && is_name(nx) && !kw(nx, "TABLE") &&
                !kw(nx, "LATERAL")) {
                sb_printf(out, " %s", t->text);
                i++;
                for (;;) {
                    if (emit_table(tr, &i, out, true, NULL, NULL)) return -1;
                    if (kw(t, "FROM") && i + 1 < to && op(&tr->t[i], ",") && is_name(&tr->t[i + 1])) {
                        sb_add(out, ",");
                        i++;
                    } else {
                        break;
                    }
                }
                continue;
            }
            bool call = nx && op(nx, "(");
            static const char *now_fns[] = {"CURRENT_TIMESTAMP", "SYSDATE", "GETDATE", "LOCALTIMESTAMP",
                                            "SYSTIMESTAMP", NULL};
            bool is_now = false;
            for (int k = 0; now_fns[k]; k++)
                if (kw(t, now_fns[k]) && (call || !strcmp(now_fns[k], "CURRENT_TIMESTAMP") ||
                                          !strcmp(now_fns[k], "LOCALTIMESTAMP")))
                    is_now = true;
            if (is_now) {
                sb_add(out, " SF_NOW()");
                i++;
                if (call) { /* skip "(...)" (an optional precision) */
                    int depth = 0;
                    for (; i < to; i++) {
                        if (op(&tr->t[i], "(")) depth++;
                        else if (op(&tr->t[i], ")") && --depth == 0) break;
                    }
                    i++;
                }
                continue;
            }
            if (call && tr->insert_values &&
                (kw(t, "PARSE_JSON") || kw(t, "TO_VARIANT") || kw(t, "OBJECT_CONSTRUCT") ||
                 kw(t, "ARRAY_CONSTRUCT") || kw(t, "TO_OBJECT") || kw(t, "TO_ARRAY") || kw(t, "PARSE_XML"))) {
                return seterr(tr->e, 422, "002014", "22000",
                              "SQL compilation error:\nInvalid expression [%s(...)] in VALUES clause", t->text);
            }
            if (call && (kw(t, "FLATTEN") || kw(t, "OBJECT_CONSTRUCT") || kw(t, "ARRAY_CONSTRUCT") ||
                         kw(t, "GET_PATH") || kw(t, "LISTAGG") || kw(t, "ARRAY_AGG") || kw(t, "OBJECT_AGG"))) {
                char what[128];
                snprintf(what, sizeof(what), "function %s", t->text);
                return UNSUPPORTED(tr->e, what);
            }
            if (kw(t, "QUALIFY") || kw(t, "SAMPLE") || kw(t, "TABLESAMPLE") || kw(t, "PIVOT") ||
                kw(t, "UNPIVOT") || kw(t, "LATERAL") || kw(t, "MINUS") || kw(t, "CONNECT") ||
                kw(t, "MATCH_RECOGNIZE")) {
                char what[128];
                snprintf(what, sizeof(what), "%s", t->text);
                return UNSUPPORTED(tr->e, what);
            }
            const char *w = t->text;
            if (call && kw(t, "NVL")) w = "IFNULL";
            else if (call && kw(t, "IFF")) w = "IIF";
            else if (kw(t, "ILIKE")) w = "LIKE";
            sep(out, t, i > from ? &tr->t[i - 1] : NULL);
            sb_add(out, w);
        } else if (t->kind == T_QIDENT) {
            sep(out, t, i > from ? &tr->t[i - 1] : NULL);
            sb_quoted(out, t->text, '"');
        } else if (t->kind == T_STRING) {
            sep(out, t, i > from ? &tr->t[i - 1] : NULL);
            sb_quoted(out, t->text, '\'');
        } else if (t->kind == T_PARAM) {
            sep(out, t, i > from ? &tr->t[i - 1] : NULL);
            sb_printf(out, "?%d", t->param);
        } else if (t->kind == T_OP) {
            if (!strcmp(t->text, "::")) return UNSUPPORTED(tr->e, "the :: cast operator (use CAST(x AS type))");
            if (op(t, ":") || op(t, "[") || op(t, "@") || op(t, "$"))
                return UNSUPPORTED(tr->e, "semi-structured path access (v:a.b, v[0]) and stage references");
            if (op(t, "(")) {
                items = 1;
                list_start = i;
            } else if (op(t, ",") && ++items > MAX_LIST) {
                int n = items;
                for (int j = i + 1, depth = 0; j < to; j++) { /* count the rest for the message */
                    if (op(&tr->t[j], "(")) depth++;
                    else if (op(&tr->t[j], ")") && depth-- == 0) break;
                    else if (depth == 0 && op(&tr->t[j], ",")) n++;
                }
                return too_many(tr, tr->t[list_start].pos, n);
            }
            sep(out, t, i > from ? &tr->t[i - 1] : NULL);
            sb_add(out, t->text);
        } else {
            sep(out, t, i > from ? &tr->t[i - 1] : NULL);
            sb_add(out, t->text);
        }
        i++;
    }
    return 0;
}

/* --------------------------------------------------------------- results */

typedef struct {
    char name[256];
    char kind[16]; /* fixed, real, text, boolean, date, time, timestamp_ntz|ltz|tz, variant, object, array, binary */
    int precision, scale;
    bool nullable;
    char table[800];
} col_t;

typedef struct {
    int ncols;
    col_t *cols;
    json_t *data; /* array of arrays of strings/null */
    long long ins, upd, del;
    bool dml;
    bool nulls_as_text; /* nullable=false: NULL is the string "null" */
    bool readable;      /* `query`: values as stored, not the jsonv2 encoding */
} result_t;

static void result_reset(result_t *r) {
    free(r->cols);
    json_decref(r->data);
    bool nt = r->nulls_as_text, rd = r->readable;
    memset(r, 0, sizeof(*r));
    r->nulls_as_text = nt;
    r->readable = rd;
}

static void kind_of_type(const char *type, char *kind, int *prec, int *scale) {
    static const char *map[][2] = {{"NUMBER", "fixed"}, {"FLOAT", "real"}, {"VARCHAR", "text"},
                                   {"BOOLEAN", "boolean"}, {"DATE", "date"}, {"TIMESTAMP_NTZ", "timestamp_ntz"},
                                   {"TIMESTAMP_LTZ", "timestamp_ltz"}, {"TIMESTAMP_TZ", "timestamp_tz"},
                                   {"TIME", "time"}, {"VARIANT", "variant"}, {"OBJECT", "object"},
                                   {"ARRAY", "array"}, {"BINARY", "binary"}};
    snprintf(kind, 16, "text");
    *prec = *scale = 0;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (!strncmp(type, map[i][0], strlen(map[i][0]))) {
            snprintf(kind, 16, "%s", map[i][1]);
            break;
        }
    }
    if (!strcmp(kind, "fixed")) {
        *prec = 38;
        sscanf(type, "NUMBER(%d,%d)", prec, scale);
    } else if (!strcmp(kind, "text")) {
        sscanf(type, "VARCHAR(%d)", prec); /* the length, for rowType */
    }
}

static void result_counts(result_t *r, int n, const char **names, const long long *vals) {
    result_reset(r);
    r->ncols = n;
    r->cols = calloc((size_t)n, sizeof(col_t));
    r->data = json_array();
    json_t *row = json_array();
    for (int i = 0; i < n; i++) {
        snprintf(r->cols[i].name, sizeof(r->cols[i].name), "%s", names[i]);
        snprintf(r->cols[i].kind, sizeof(r->cols[i].kind), "fixed");
        r->cols[i].precision = 19;
        char v[32];
        snprintf(v, sizeof(v), "%lld", vals[i]);
        json_array_append_new(row, json_string(v));
    }
    json_array_append_new(r->data, row);
}

static void result_status(result_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void result_status(result_t *r, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    result_reset(r);
    r->ncols = 1;
    r->cols = calloc(1, sizeof(col_t));
    snprintf(r->cols[0].name, sizeof(r->cols[0].name), "status");
    snprintf(r->cols[0].kind, sizeof(r->cols[0].kind), "text");
    r->cols[0].nullable = true;
    r->data = json_array();
    json_t *row = json_array();
    json_array_append_new(row, json_string(msg));
    json_array_append_new(r->data, row);
}

static void fmt_double(char *buf, size_t n, double d) {
    if (isnan(d)) snprintf(buf, n, "NaN");
    else if (isinf(d)) snprintf(buf, n, d < 0 ? "-inf" : "inf");
    else {
        snprintf(buf, n, "%.15g", d);
        if (strtod(buf, NULL) != d) snprintf(buf, n, "%.17g", d);
    }
}

/* One cell in Snowflake's jsonv2 encoding (or readable, for `query`). */
static json_t *cell(sqlite3_stmt *st, int c, const col_t *col, const result_t *r) {
    int type = sqlite3_column_type(st, c);
    char buf[128];
    if (type == SQLITE_NULL) return r->nulls_as_text ? json_string("null") : json_null();
    const char *k = col->kind;
    if (type == SQLITE_BLOB) {
        const unsigned char *b = sqlite3_column_blob(st, c);
        int n = sqlite3_column_bytes(st, c);
        sb_t s = {0};
        for (int i = 0; i < n; i++) sb_printf(&s, "%02X", b[i]);
        char *hex = sb_take(&s);
        json_t *j = json_string(hex);
        free(hex);
        return j;
    }
    if (!strcmp(k, "boolean") && type == SQLITE_INTEGER)
        return json_string(sqlite3_column_int64(st, c) ? "true" : "false");
    if (type == SQLITE_FLOAT && !strcmp(k, "fixed") && col->scale > 0 && !r->readable) {
        snprintf(buf, sizeof(buf), "%.*f", col->scale, sqlite3_column_double(st, c));
        return json_string(buf);
    }
    if (type == SQLITE_FLOAT) {
        fmt_double(buf, sizeof(buf), sqlite3_column_double(st, c));
        return json_string(buf);
    }
    const char *txt = (const char *)sqlite3_column_text(st, c);
    if (!txt) return json_null();
    if (!r->readable && type == SQLITE_TEXT) {
        int64_t sec;
        int ns, has_off, offmin, ht;
        if (!strncmp(k, "timestamp", 9) && parse_iso(txt, &sec, &ns, &has_off, &offmin, &ht)) {
            if (!strcmp(k, "timestamp_tz"))
                snprintf(buf, sizeof(buf), "%" PRId64 ".%09d %d", sec, ns, offmin + 1440);
            else /* wall clock of NTZ as if UTC; LTZ is stored in UTC */
                snprintf(buf, sizeof(buf), "%" PRId64 ".%09d", sec + (int64_t)offmin * 60, ns);
            return json_string(buf);
        }
        if (!strcmp(k, "date") && parse_iso(txt, &sec, &ns, &has_off, &offmin, &ht)) {
            snprintf(buf, sizeof(buf), "%" PRId64, (sec + (int64_t)offmin * 60) / 86400);
            return json_string(buf);
        }
        if (!strcmp(k, "time") && parse_time_of_day(txt, &sec, &ns)) {
            snprintf(buf, sizeof(buf), "%" PRId64 ".%09d", sec, ns);
            return json_string(buf);
        }
    }
    size_t len = (size_t)sqlite3_column_bytes(st, c);
    json_t *j = json_stringn(txt, len);
    return j ? j : json_stringn_nocheck(txt, len); /* not UTF-8: passed on as stored */
}

static void describe_columns(sqlite3 *db, sqlite3_stmt *st, result_t *r) {
    r->ncols = sqlite3_column_count(st);
    r->cols = calloc((size_t)r->ncols, sizeof(col_t));
    if (!r->cols) abort();
    for (int c = 0; c < r->ncols; c++) {
        col_t *col = &r->cols[c];
        const char *name = sqlite3_column_name(st, c);
        snprintf(col->name, sizeof(col->name), "%s", name ? name : "");
        snprintf(col->kind, sizeof(col->kind), "%s", "");
        col->nullable = true;
        const char *tbl = sqlite3_column_table_name(st, c), *orig = sqlite3_column_origin_name(st, c);
        if (!tbl || !orig) continue;
        snprintf(col->table, sizeof(col->table), "%s", tbl);
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(db, "SELECT type, nullable FROM __sfemu_columns WHERE tbl=? AND name=?", -1, &q,
                               NULL) == SQLITE_OK) {
            sqlite3_bind_text(q, 1, tbl, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 2, orig, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(q) == SQLITE_ROW) {
                kind_of_type((const char *)sqlite3_column_text(q, 0), col->kind, &col->precision, &col->scale);
                col->nullable = sqlite3_column_int(q, 1) != 0;
            }
        }
        sqlite3_finalize(q);
    }
}

/* SQLite's complaint as Snowflake's error. */
static int map_sqlite_err(sqlite3 *db, sf_err_t *e) {
    const char *m = sqlite3_errmsg(db);
    char a[256], b[256];
    int x, y;
    if (!strncmp(m, "SFERR|", 6)) {
        char code[16] = "", state[16] = "";
        const char *p = m + 6, *q = strchr(p, '|');
        if (q && q - p < 16) {
            memcpy(code, p, (size_t)(q - p));
            p = q + 1;
            q = strchr(p, '|');
            if (q && q - p < 16) {
                memcpy(state, p, (size_t)(q - p));
                return seterr(e, 422, code, state, "%s", q + 1);
            }
        }
    }
    if (sscanf(m, "no such column: %255[^\n]", a) == 1)
        return seterr(e, 422, "000904", "42000", "SQL compilation error: error line 1 at position 0\ninvalid identifier '%s'", a);
    if (sscanf(m, "no such table: %255[^\n]", a) == 1) return no_table(e, a);
    if (sscanf(m, "no such function: %255[^\n]", a) == 1)
        return seterr(e, 422, "002140", "42601", "SQL compilation error:\nUnknown function %s", a);
    if (sscanf(m, "near \"%255[^\"]\": syntax error", a) == 1)
        return seterr(e, 422, "001003", "42000", "SQL compilation error:\nsyntax error line 1 at position 0 unexpected '%s'.", a);
    if (!strncmp(m, "NOT NULL constraint failed", 26))
        return seterr(e, 422, "100072", "22000", "NULL result in a non-nullable column");
    if (sscanf(m, "table %255s has %d columns but %d values were supplied", a, &x, &y) == 3 ||
        (sscanf(m, "%d values for %d columns", &y, &x) == 2 && (a[0] = 0, 1)))
        return seterr(e, 422, "002020", "21S01",
                      "SQL compilation error:\nInsert value list does not match column list expecting %d but got %d", x, y);
    if (sscanf(m, "ambiguous column name: %255[^\n]", b) == 1)
        return seterr(e, 422, "000918", "42000", "SQL compilation error:\nambiguous column name '%s'", b);
    if (strstr(m, "syntax error") || strstr(m, "incomplete input"))
        return seterr(e, 422, "001003", "42000", "SQL compilation error:\nsyntax error line 1 at position 0 (%s).", m);
    return seterr(e, 422, "002000", "42000", "SQL compilation error:\n%s", m);
}

typedef struct {
    bval_t *v;
    bool *set;
    int n;
} binds_t;

/* Runs one SQLite statement; rows go to r when r is given. Returns changes
 * (>= 0) or -1. */
/* The emitted SQL numbers binds "?N"; SQLite looks each ?N up in a list
 * (quadratic for 50,000 binds), so they become plain "?" and map[k] says
 * which binding the k-th one takes. String literals and quoted names are
 * skipped. */
static char *anonymize_binds(const char *sql, int **map, int *n) {
    sb_t out = {0};
    int cap = 0;
    *map = NULL;
    *n = 0;
    for (const char *p = sql; *p;) {
        if (*p == '\'' || *p == '"') {
            char q = *p;
            const char *b = p++;
            while (*p && !(*p == q && p[1] != q)) p += *p == q ? 2 : 1;
            if (*p) p++;
            sb_addn(&out, b, (size_t)(p - b));
        } else if (*p == '?' && isdigit((unsigned char)p[1])) {
            char *end;
            long v = strtol(p + 1, &end, 10);
            if (*n == cap) {
                cap = cap ? cap * 2 : 64;
                *map = realloc(*map, (size_t)cap * sizeof(int));
                if (!*map) abort();
            }
            (*map)[(*n)++] = (int)v;
            sb_addn(&out, "?", 1);
            p = end;
        } else {
            sb_addn(&out, p++, 1);
        }
    }
    return sb_take(&out);
}

static long long run_sql(sess_t *s, const char *sql_n, const binds_t *b, result_t *r, sf_err_t *e) {
    sqlite3_stmt *st = NULL;
    int *map, nmap;
    char *sql = anonymize_binds(sql_n, &map, &nmap);
    int prc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    free(sql);
    if (prc != SQLITE_OK) {
        free(map);
        return map_sqlite_err(s->db, e);
    }
    if (!st) {
        free(map);
        return 0;
    }
    /* every ? of the request was checked to have a binding (run_request) */
    int np = sqlite3_bind_parameter_count(st);
    for (int k = 1; k <= np && k <= nmap; k++) {
        int idx = map[k - 1];
        if (idx < 1 || idx > b->n || !b->set[idx - 1]) continue;
        bind_value(st, k, &b->v[idx - 1]);
    }
    free(map);
    if (r && sqlite3_column_count(st) > 0) {
        result_reset(r);
        describe_columns(s->db, st, r);
        r->data = json_array();
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!r || !r->data) continue;
        json_t *row = json_array();
        for (int c = 0; c < r->ncols; c++) {
            col_t *col = &r->cols[c];
            if (!col->kind[0] && sqlite3_column_type(st, c) != SQLITE_NULL) {
                int t = sqlite3_column_type(st, c);
                snprintf(col->kind, sizeof(col->kind), "%s",
                         t == SQLITE_INTEGER ? "fixed" : t == SQLITE_FLOAT ? "real" : t == SQLITE_BLOB ? "binary" : "text");
                if (t == SQLITE_INTEGER) col->precision = 38;
            }
            json_array_append_new(row, cell(st, c, col, r));
        }
        json_array_append_new(r->data, row);
    }
    if (rc != SQLITE_DONE) {
        map_sqlite_err(s->db, e);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    if (r && r->cols)
        for (int c = 0; c < r->ncols; c++)
            if (!r->cols[c].kind[0]) snprintf(r->cols[c].kind, sizeof(r->cols[c].kind), "text");
    return sqlite3_changes(s->db);
}

static int exec_plain(sess_t *s, const char *sql) {
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* ------------------------------------------------------------ statements */

/* A Snowflake column type at *i into its canonical name and SQLite affinity. */
static int parse_type(tr_t *tr, int *i, char *canon, size_t n, const char **aff) {
    tok_t *t = &tr->t[*i];
    if (*i >= tr->end || t->kind != T_IDENT) return syntax_err(tr->e, tr->s->sql, t->pos, "unexpected token, expected a type");
    char name[64];
    snprintf(name, sizeof(name), "%s", t->text);
    (*i)++;
    bool varying = false;
    if (!strcmp(name, "DOUBLE") && kw(&tr->t[*i], "PRECISION")) (*i)++;
    else if (!strcmp(name, "CHARACTER") && kw(&tr->t[*i], "VARYING")) varying = true, (*i)++;
    int args[2] = {-1, -1}, na = 0;
    if (*i < tr->end && op(&tr->t[*i], "(")) {
        (*i)++;
        while (*i < tr->end && !op(&tr->t[*i], ")")) {
            if (tr->t[*i].kind == T_NUMBER && na < 2) args[na++] = atoi(tr->t[*i].text);
            else if (!op(&tr->t[*i], ",") && !kw(&tr->t[*i], "CHAR") && !kw(&tr->t[*i], "BYTE"))
                return syntax_err(tr->e, tr->s->sql, tr->t[*i].pos, "unexpected token in a type");
            (*i)++;
        }
        if (*i >= tr->end) return syntax_err(tr->e, tr->s->sql, (int)strlen(tr->s->sql), "unexpected '<EOF>'");
        (*i)++;
    }
    static const char *ints[] = {"INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT", NULL};
    static const char *nums[] = {"NUMBER", "NUMERIC", "DECIMAL", "DEC", NULL};
    static const char *reals[] = {"FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "REAL", NULL};
    static const char *texts[] = {"VARCHAR", "STRING", "TEXT", "CHAR", "CHARACTER", "NCHAR", "NVARCHAR",
                                  "NVARCHAR2", "CHAR_VARYING", NULL};
    for (int k = 0; ints[k]; k++)
        if (!strcmp(name, ints[k])) return snprintf(canon, n, "NUMBER(38,0)"), *aff = "INTEGER", 0;
    for (int k = 0; nums[k]; k++)
        if (!strcmp(name, nums[k])) {
            int p = args[0] > 0 ? args[0] : 38, s = args[1] > 0 ? args[1] : 0;
            if (p > 38 || s > p) return seterr(tr->e, 422, "001003", "42000", "SQL compilation error:\ninvalid precision or scale for %s", name);
            snprintf(canon, n, "NUMBER(%d,%d)", p, s);
            *aff = s ? "REAL" : "INTEGER";
            return 0;
        }
    for (int k = 0; reals[k]; k++)
        if (!strcmp(name, reals[k])) return snprintf(canon, n, "FLOAT"), *aff = "REAL", 0;
    for (int k = 0; texts[k]; k++)
        if (!strcmp(name, texts[k])) { /* CHAR without a length is CHAR(1), as in Snowflake */
            bool fixed = !varying && (!strcmp(name, "CHAR") || !strcmp(name, "CHARACTER") || !strcmp(name, "NCHAR"));
            int len = args[0] > 0 ? args[0] : fixed ? 1 : 16777216;
            return snprintf(canon, n, "VARCHAR(%d)", len), *aff = "TEXT", 0;
        }
    if (!strcmp(name, "BOOLEAN")) return snprintf(canon, n, "BOOLEAN"), *aff = "INTEGER", 0;
    if (!strcmp(name, "DATE")) return snprintf(canon, n, "DATE"), *aff = "TEXT", 0;
    if (!strcmp(name, "TIME")) return snprintf(canon, n, "TIME(9)"), *aff = "TEXT", 0;
    if (!strcmp(name, "TIMESTAMP") || !strcmp(name, "DATETIME") || !strcmp(name, "TIMESTAMP_NTZ") ||
        !strcmp(name, "TIMESTAMPNTZ") || !strcmp(name, "TIMESTAMP_LTZ") || !strcmp(name, "TIMESTAMPLTZ") ||
        !strcmp(name, "TIMESTAMP_TZ") || !strcmp(name, "TIMESTAMPTZ")) {
        const char *k = strstr(name, "NTZ") ? "NTZ" : strstr(name, "LTZ") ? "LTZ" : strstr(name, "TZ") ? "TZ" : "NTZ";
        return snprintf(canon, n, "TIMESTAMP_%s(%d)", k, args[0] >= 0 ? args[0] : 9), *aff = "TEXT", 0;
    }
    if (!strcmp(name, "VARIANT") || !strcmp(name, "OBJECT") || !strcmp(name, "ARRAY"))
        return snprintf(canon, n, "%s", name), *aff = "TEXT", 0;
    if (!strcmp(name, "BINARY") || !strcmp(name, "VARBINARY"))
        return snprintf(canon, n, "BINARY(%d)", args[0] > 0 ? args[0] : 8388608), *aff = "BLOB", 0;
    char what[128];
    snprintf(what, sizeof(what), "column type %s", name);
    return UNSUPPORTED(tr->e, what);
}

/* Skips to the next ',' or ')' at depth 0 from *i (a column's remaining
 * clauses or a table constraint). */
static void skip_clause(tr_t *tr, int *i) {
    int depth = 0;
    for (; *i < tr->end; (*i)++) {
        tok_t *t = &tr->t[*i];
        if (op(t, "(")) depth++;
        else if (op(t, ")") && depth-- == 0) return;
        else if (op(t, ",") && depth == 0) return;
    }
}

/* One column definition at *i: SQLite DDL into ddl, catalog row values out. */
static int parse_column(tr_t *tr, int *i, sb_t *ddl, char *name, char *canon, int *nullable, char **dflt) {
    tok_t *t = &tr->t[*i];
    if (!is_name(t) || strlen(t->text) >= 256) return syntax_err(tr->e, tr->s->sql, t->pos, "unexpected token, expected a column name");
    snprintf(name, 256, "%s", t->text);
    (*i)++;
    const char *aff = "TEXT";
    if (parse_type(tr, i, canon, 64, &aff)) return -1;
    sb_quoted(ddl, name, '"');
    sb_printf(ddl, " %s", aff);
    *nullable = 1;
    *dflt = NULL;
    while (*i < tr->end && !op(&tr->t[*i], ",") && !op(&tr->t[*i], ")")) {
        t = &tr->t[*i];
        if (kw(t, "NOT") && kw(&tr->t[*i + 1], "NULL")) {
            sb_add(ddl, " NOT NULL");
            *nullable = 0;
            *i += 2;
        } else if (kw(t, "NULL")) {
            (*i)++;
        } else if (kw(t, "DEFAULT")) {
            int from = ++(*i), depth = 0;
            for (; *i < tr->end; (*i)++) {
                tok_t *u = &tr->t[*i];
                if (op(u, "(")) depth++;
                else if (op(u, ")") && depth-- == 0) break;
                else if (depth == 0 && (op(u, ",") || kw(u, "NOT") || kw(u, "NULL") || kw(u, "PRIMARY") ||
                                        kw(u, "UNIQUE") || kw(u, "COMMENT") || kw(u, "COLLATE")))
                    break;
            }
            sb_t d = {0};
            if (emit_range(tr, from, *i, &d)) {
                free(d.p);
                return -1;
            }
            sb_printf(ddl, " DEFAULT (%s)", d.p ? d.p : "NULL");
            free(*dflt);
            *dflt = sb_take(&d);
        } else if (kw(t, "AUTOINCREMENT") || kw(t, "IDENTITY")) {
            return UNSUPPORTED(tr->e, "AUTOINCREMENT / IDENTITY columns");
        } else if (kw(t, "COLLATE") || kw(t, "COMMENT")) {
            *i += *i + 1 < tr->end ? 2 : 1;
        } else if (kw(t, "PRIMARY") || kw(t, "UNIQUE") || kw(t, "REFERENCES") || kw(t, "FOREIGN") ||
                   kw(t, "KEY") || kw(t, "CONSTRAINT")) {
            (*i)++; /* informational in Snowflake: not enforced, so not created */
            if (*i < tr->end && op(&tr->t[*i], "(")) {
                int depth = 0;
                for (; *i < tr->end; (*i)++) {
                    if (op(&tr->t[*i], "(")) depth++;
                    else if (op(&tr->t[*i], ")") && --depth == 0) break;
                }
                (*i)++;
            }
        } else {
            char what[300];
            snprintf(what, sizeof(what), "unexpected '%.200s'", t->text);
            return syntax_err(tr->e, tr->s->sql, t->pos, what);
        }
    }
    return 0;
}

static int catalog_add(sess_t *s, const char *tbl, int pos, const char *name, const char *type, int nullable,
                       const char *dflt) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO __sfemu_columns VALUES (?,?,?,?,?,?)", -1, &st, NULL))
        return -1;
    sqlite3_bind_text(st, 1, tbl, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, pos);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, type, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 5, nullable);
    if (dflt) sqlite3_bind_text(st, 6, dflt, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return rc;
}

static int catalog_drop(sess_t *s, const char *tbl) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM __sfemu_columns WHERE tbl=?", -1, &st, NULL)) return -1;
    sqlite3_bind_text(st, 1, tbl, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return rc;
}

static int drop_sqlite_table(sess_t *s, const char *stor, sf_err_t *e) {
    sb_t q = {0};
    sb_add(&q, "DROP TABLE ");
    sb_quoted(&q, stor, '"');
    int rc = exec_plain(s, q.p);
    free(q.p);
    if (rc || catalog_drop(s, stor)) return map_sqlite_err(s->db, e);
    return 0;
}

static int do_create_table(tr_t *tr, int i, result_t *r) {
    bool replace = false, if_not_exists = false;
    i++; /* CREATE */
    if (kw(&tr->t[i], "OR") && kw(&tr->t[i + 1], "REPLACE")) replace = true, i += 2;
    while (kw(&tr->t[i], "TRANSIENT") || kw(&tr->t[i], "TEMPORARY") || kw(&tr->t[i], "TEMP") ||
           kw(&tr->t[i], "VOLATILE") || kw(&tr->t[i], "LOCAL") || kw(&tr->t[i], "GLOBAL"))
        i++;
    i++; /* TABLE */
    if (kw(&tr->t[i], "IF") && kw(&tr->t[i + 1], "NOT") && kw(&tr->t[i + 2], "EXISTS")) if_not_exists = true, i += 3;
    char parts[3][256], stor[800], last[256];
    int np;
    if (parse_name(tr, &i, parts, &np) || resolve(tr, parts, np, stor, sizeof(stor), last)) return -1;
    if (i >= tr->end || !op(&tr->t[i], "(")) {
        if (i < tr->end && (kw(&tr->t[i], "AS") || kw(&tr->t[i], "LIKE") || kw(&tr->t[i], "CLONE")))
            return UNSUPPORTED(tr->e, "CREATE TABLE ... AS SELECT / LIKE / CLONE");
        return syntax_err(tr->e, tr->s->sql, tr->t[i < tr->end ? i : tr->end].pos, "unexpected token, expected '('");
    }
    bool exists = table_exists(tr->s->db, stor);
    if (exists && if_not_exists && !replace) {
        result_status(r, "%s already exists, statement succeeded.", last);
        return 0;
    }
    if (exists && !replace)
        return seterr(tr->e, 422, "002002", "42710", "SQL compilation error:\nObject '%s' already exists.", stor);
    if (exists && drop_sqlite_table(tr->s, stor, tr->e)) return -1;
    sb_t ddl = {0};
    sb_add(&ddl, "CREATE TABLE ");
    sb_quoted(&ddl, stor, '"');
    sb_add(&ddl, " (");
    i++;
    int ncols = 0;
    struct coldef { char name[256], type[64]; int nullable; char *dflt; } *defs = NULL;
    int rc = 0;
    while (i < tr->end && !op(&tr->t[i], ")")) {
        tok_t *t = &tr->t[i];
        if (kw(t, "PRIMARY") || kw(t, "UNIQUE") || kw(t, "FOREIGN") || kw(t, "CONSTRAINT") || kw(t, "CHECK")) {
            skip_clause(tr, &i); /* informational constraints: not enforced by Snowflake */
        } else {
            defs = realloc(defs, (size_t)(ncols + 1) * sizeof(*defs));
            if (!defs) abort();
            struct coldef *d = &defs[ncols];
            if (ncols) sb_add(&ddl, ", ");
            if (parse_column(tr, &i, &ddl, d->name, d->type, &d->nullable, &d->dflt)) {
                rc = -1;
                break;
            }
            ncols++;
        }
        if (i < tr->end && op(&tr->t[i], ",")) i++;
    }
    if (!rc && (i >= tr->end || ncols == 0)) rc = syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected end of the column list");
    if (!rc) {
        sb_add(&ddl, ")");
        if (exec_plain(tr->s, ddl.p)) rc = map_sqlite_err(tr->s->db, tr->e);
        for (int c = 0; !rc && c < ncols; c++)
            if (catalog_add(tr->s, stor, c, defs[c].name, defs[c].type, defs[c].nullable, defs[c].dflt))
                rc = map_sqlite_err(tr->s->db, tr->e);
    }
    for (int c = 0; c < ncols; c++) free(defs[c].dflt);
    free(defs);
    free(ddl.p);
    if (rc) return -1;
    result_status(r, "Table %s successfully created.", last);
    return 0;
}

static int do_alter_add(tr_t *tr, int i, result_t *r) {
    i += 2; /* ALTER TABLE */
    if (kw(&tr->t[i], "IF") && kw(&tr->t[i + 1], "EXISTS")) i += 2;
    char parts[3][256], stor[800], last[256];
    int np;
    if (parse_name(tr, &i, parts, &np) || resolve(tr, parts, np, stor, sizeof(stor), last)) return -1;
    if (!table_exists(tr->s->db, stor)) return no_table(tr->e, stor);
    if (!kw(&tr->t[i], "ADD")) return UNSUPPORTED(tr->e, "ALTER TABLE other than ADD COLUMN");
    i++;
    if (kw(&tr->t[i], "COLUMN")) i++;
    bool if_not_exists = false;
    if (kw(&tr->t[i], "IF") && kw(&tr->t[i + 1], "NOT") && kw(&tr->t[i + 2], "EXISTS")) if_not_exists = true, i += 3;
    for (;;) {
        sb_t ddl = {0};
        char name[256], type[64];
        int nullable;
        char *dflt = NULL;
        sb_add(&ddl, "ALTER TABLE ");
        sb_quoted(&ddl, stor, '"');
        sb_add(&ddl, " ADD COLUMN ");
        int rc = parse_column(tr, &i, &ddl, name, type, &nullable, &dflt);
        if (!rc) {
            sqlite3_stmt *st;
            bool dup = false;
            if (!sqlite3_prepare_v2(tr->s->db, "SELECT 1 FROM __sfemu_columns WHERE tbl=? AND name=?", -1, &st, NULL)) {
                sqlite3_bind_text(st, 1, stor, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
                dup = sqlite3_step(st) == SQLITE_ROW;
            }
            sqlite3_finalize(st);
            if (dup && !if_not_exists)
                rc = seterr(tr->e, 422, "002025", "42S21", "SQL compilation error:\ncolumn '%s' already exists", name);
            else if (!dup && (exec_plain(tr->s, ddl.p) ||
                              catalog_add(tr->s, stor, 1000000 + (int)(now_ms() % 1000000), name, type, nullable, dflt)))
                rc = map_sqlite_err(tr->s->db, tr->e);
        }
        free(ddl.p);
        free(dflt);
        if (rc) return -1;
        if (i < tr->end && op(&tr->t[i], ",")) {
            i++;
            if (kw(&tr->t[i], "COLUMN")) i++;
            continue;
        }
        break;
    }
    if (i < tr->end) return syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected token after the column");
    result_status(r, "Statement executed successfully.");
    return 0;
}

static int do_drop(tr_t *tr, int i, result_t *r) {
    i++;
    if (kw(&tr->t[i], "DATABASE") || kw(&tr->t[i], "SCHEMA")) return UNSUPPORTED(tr->e, "DROP DATABASE / SCHEMA");
    if (!kw(&tr->t[i], "TABLE")) return UNSUPPORTED(tr->e, "DROP of anything but a table");
    i++;
    bool if_exists = false;
    if (kw(&tr->t[i], "IF") && kw(&tr->t[i + 1], "EXISTS")) if_exists = true, i += 2;
    char parts[3][256], stor[800], last[256];
    int np;
    if (parse_name(tr, &i, parts, &np) || resolve(tr, parts, np, stor, sizeof(stor), last)) return -1;
    if (!table_exists(tr->s->db, stor)) {
        if (!if_exists)
            return seterr(tr->e, 422, "002003", "42S02", "SQL compilation error:\nTable '%s' does not exist or not authorized.", stor);
        result_status(r, "Drop statement executed successfully (%s already dropped).", last);
        return 0;
    }
    if (drop_sqlite_table(tr->s, stor, tr->e)) return -1;
    result_status(r, "%s successfully dropped.", last);
    return 0;
}

static int do_truncate(tr_t *tr, int i, result_t *r) {
    i++;
    if (kw(&tr->t[i], "TABLE")) i++;
    bool if_exists = false;
    if (kw(&tr->t[i], "IF") && kw(&tr->t[i + 1], "EXISTS")) if_exists = true, i += 2;
    char parts[3][256], stor[800];
    int np;
    if (parse_name(tr, &i, parts, &np) || resolve(tr, parts, np, stor, sizeof(stor), NULL)) return -1;
    if (!table_exists(tr->s->db, stor)) {
        if (!if_exists) return no_table(tr->e, stor);
    } else {
        sb_t q = {0};
        sb_add(&q, "DELETE FROM ");
        sb_quoted(&q, stor, '"');
        int rc = exec_plain(tr->s, q.p);
        free(q.p);
        if (rc) return map_sqlite_err(tr->s->db, tr->e);
    }
    result_status(r, "Statement executed successfully.");
    return 0;
}

static int do_use(tr_t *tr, int i, result_t *r) {
    i++;
    bool db = false, schema = false;
    if (kw(&tr->t[i], "DATABASE")) db = true, i++;
    else if (kw(&tr->t[i], "SCHEMA")) schema = true, i++;
    else if (kw(&tr->t[i], "WAREHOUSE") || kw(&tr->t[i], "ROLE") || kw(&tr->t[i], "SECONDARY")) {
        result_status(r, "Statement executed successfully.");
        return 0;
    }
    char parts[3][256];
    int np;
    if (parse_name(tr, &i, parts, &np)) return -1;
    if (np == 3 || (db && np != 1)) return syntax_err(tr->e, tr->s->sql, tr->t[i - 1].pos, "unexpected name");
    if (db) {
        snprintf(tr->s->database, sizeof(tr->s->database), "%s", parts[0]);
        snprintf(tr->s->schema, sizeof(tr->s->schema), "PUBLIC");
    } else if (np == 2) {
        snprintf(tr->s->database, sizeof(tr->s->database), "%s", parts[0]);
        snprintf(tr->s->schema, sizeof(tr->s->schema), "%s", parts[1]);
    } else if (schema) {
        snprintf(tr->s->schema, sizeof(tr->s->schema), "%s", parts[0]);
    } else { /* USE x: a database */
        snprintf(tr->s->database, sizeof(tr->s->database), "%s", parts[0]);
        snprintf(tr->s->schema, sizeof(tr->s->schema), "PUBLIC");
    }
    result_status(r, "Statement executed successfully.");
    return 0;
}

static void collect_ctes(tr_t *tr, int i);

static int do_insert(tr_t *tr, int i, const binds_t *b, result_t *r) {
    i++;
    if (kw(&tr->t[i], "OVERWRITE") || kw(&tr->t[i], "ALL") || kw(&tr->t[i], "FIRST"))
        return UNSUPPORTED(tr->e, "INSERT OVERWRITE / multi-table INSERT");
    if (!kw(&tr->t[i], "INTO")) return syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected token, expected INTO");
    i++;
    sb_t q = {0};
    sb_add(&q, "INSERT INTO");
    if (emit_table(tr, &i, &q, false, NULL, NULL)) goto fail;
    if (i < tr->end && op(&tr->t[i], "(") && i + 1 < tr->end && !kw(&tr->t[i + 1], "SELECT") &&
        !kw(&tr->t[i + 1], "WITH")) {
        int j = i;
        while (j < tr->end && !op(&tr->t[j], ")")) j++;
        if (j >= tr->end) {
            syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected '<EOF>'");
            goto fail;
        }
        if (emit_range(tr, i, j + 1, &q)) goto fail;
        i = j + 1;
    }
    if (i < tr->end && kw(&tr->t[i], "VALUES")) {
        i++;
        tr->insert_values = true;
        int rc = emit_values(tr, &i, tr->end, &q);
        tr->insert_values = false;
        if (rc) goto fail;
        if (i < tr->end) {
            syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected token after VALUES");
            goto fail;
        }
    } else if (i < tr->end && (kw(&tr->t[i], "SELECT") || kw(&tr->t[i], "WITH") || op(&tr->t[i], "("))) {
        collect_ctes(tr, i);
        if (emit_range(tr, i, tr->end, &q)) goto fail;
    } else {
        syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected token, expected VALUES or SELECT");
        goto fail;
    }
    long long n = run_sql(tr->s, q.p, b, NULL, tr->e);
    free(q.p);
    if (n < 0) return -1;
    const char *names[] = {"number of rows inserted"};
    result_counts(r, 1, names, &n);
    r->dml = true;
    r->ins = n;
    return 0;
fail:
    free(q.p);
    return -1;
}

static int do_update(tr_t *tr, int i, const binds_t *b, result_t *r) {
    sb_t q = {0};
    sb_add(&q, "UPDATE");
    i++;
    if (emit_table(tr, &i, &q, true, NULL, NULL) || emit_range(tr, i, tr->end, &q)) {
        free(q.p);
        return -1;
    }
    long long n = run_sql(tr->s, q.p, b, NULL, tr->e);
    free(q.p);
    if (n < 0) return -1;
    const char *names[] = {"number of rows updated", "number of multi-joined rows updated"};
    long long v[] = {n, 0};
    result_counts(r, 2, names, v);
    r->dml = true;
    r->upd = n;
    return 0;
}

static int do_delete(tr_t *tr, int i, const binds_t *b, result_t *r) {
    sb_t q = {0};
    i++;
    if (!kw(&tr->t[i], "FROM")) return syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected token, expected FROM");
    i++;
    sb_add(&q, "DELETE FROM");
    if (emit_table(tr, &i, &q, true, NULL, NULL)) goto fail;
    if (i < tr->end && kw(&tr->t[i], "USING")) {
        UNSUPPORTED(tr->e, "DELETE ... USING");
        goto fail;
    }
    if (emit_range(tr, i, tr->end, &q)) goto fail;
    long long n = run_sql(tr->s, q.p, b, NULL, tr->e);
    free(q.p);
    if (n < 0) return -1;
    const char *names[] = {"number of rows deleted"};
    result_counts(r, 1, names, &n);
    r->dml = true;
    r->del = n;
    return 0;
fail:
    free(q.p);
    return -1;
}

/* Skips balanced parentheses starting at i (an opening one); returns the
 * index after the closing one, or tr->end. */
static int skip_parens(tr_t *tr, int i) {
    int depth = 0;
    for (; i < tr->end; i++) {
        if (op(&tr->t[i], "(")) depth++;
        else if (op(&tr->t[i], ")") && --depth == 0) return i + 1;
    }
    return tr->end;
}

/* Names a WITH clause at i defines (WITH [RECURSIVE] a [(cols)] AS (...), b AS (...)). */
static void collect_ctes(tr_t *tr, int i) {
    if (!kw(&tr->t[i], "WITH")) return;
    i++;
    if (kw(&tr->t[i], "RECURSIVE")) i++;
    while (i < tr->end && is_name(&tr->t[i]) && tr->nctes < 16) {
        snprintf(tr->ctes[tr->nctes++], 256, "%s", tr->t[i].text);
        i++;
        if (i < tr->end && op(&tr->t[i], "(")) i = skip_parens(tr, i);
        if (i >= tr->end || !kw(&tr->t[i], "AS")) return;
        i++;
        if (i >= tr->end || !op(&tr->t[i], "(")) return;
        i = skip_parens(tr, i);
        if (i >= tr->end || !op(&tr->t[i], ",")) return;
        i++;
    }
}

static int do_select(tr_t *tr, int i, const binds_t *b, result_t *r) {
    sb_t q = {0};
    collect_ctes(tr, i);
    if (emit_range(tr, i, tr->end, &q)) {
        free(q.p);
        return -1;
    }
    long long n = run_sql(tr->s, q.p, b, r, tr->e);
    free(q.p);
    return n < 0 ? -1 : 0;
}

/* Index of the first depth-0 token at or after i matching one of the words. */
static int find_kw(tr_t *tr, int i, const char *const *words) {
    int depth = 0;
    for (; i < tr->end; i++) {
        if (op(&tr->t[i], "(")) depth++;
        else if (op(&tr->t[i], ")")) depth--;
        else if (depth == 0)
            for (int k = 0; words[k]; k++)
                if (kw(&tr->t[i], words[k])) return i;
    }
    return tr->end;
}

/* MERGE INTO t USING src ON cond WHEN ...: the source is materialised, the
 * not-matched rows are found before the matched clause runs (Snowflake
 * decides both on the table as it was), duplicate source rows for one target
 * row fail as Snowflake's ERROR_ON_NONDETERMINISTIC_MERGE does. */
static int do_merge(tr_t *tr, int i, const binds_t *b, result_t *r) {
    static const char *const when[] = {"WHEN", NULL}, *const then[] = {"THEN", NULL}, *const on_kw[] = {"ON", NULL};
    sb_t tgt = {0}, src = {0}, cond = {0}, q = {0};
    char stor[800], talias[256], salias[256] = "";
    int rc = -1;
    long long ins = 0, upd = 0, del = 0;
    bool has_ins = false, has_upd = false, has_del = false;
    i++;
    if (!kw(&tr->t[i], "INTO")) return syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected token, expected INTO");
    i++;
    if (emit_table(tr, &i, &tgt, true, stor, talias)) goto out;
    if (!kw(&tr->t[i], "USING")) {
        syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected token, expected USING");
        goto out;
    }
    i++;
    int on = find_kw(tr, i, on_kw);
    if (on >= tr->end) {
        syntax_err(tr->e, tr->s->sql, (int)strlen(tr->s->sql), "unexpected '<EOF>', expected ON");
        goto out;
    }
    if (op(&tr->t[i], "(")) {
        int depth = 0, j = i;
        for (; j < on; j++) {
            if (op(&tr->t[j], "(")) depth++;
            else if (op(&tr->t[j], ")") && --depth == 0) break;
        }
        if (j >= on) {
            syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unbalanced parentheses");
            goto out;
        }
        if (emit_range(tr, i, j + 1, &src)) goto out;
        i = j + 1;
        if (kw(&tr->t[i], "AS")) i++;
        if (i < on && is_name(&tr->t[i])) snprintf(salias, sizeof(salias), "%s", tr->t[i++].text);
    } else {
        sb_add(&src, "SELECT * FROM");
        if (emit_table(tr, &i, &src, true, NULL, salias)) goto out;
    }
    if (i != on || !salias[0]) {
        syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected token, expected a source alias and ON");
        goto out;
    }
    i = on + 1;
    int w = find_kw(tr, i, when);
    if (emit_range(tr, i, w, &cond)) goto out;
    /* the source, then the rows it has no match for */
    exec_plain(tr->s, "DROP TABLE IF EXISTS temp.__sfemu_src; DROP TABLE IF EXISTS temp.__sfemu_nm");
    sb_printf(&q, "CREATE TEMP TABLE __sfemu_src AS SELECT * FROM (%s)", src.p);
    if (run_sql(tr->s, q.p, b, NULL, tr->e) < 0) goto out;
    q.len = 0;
    sb_add(&q, "CREATE TEMP TABLE __sfemu_nm AS SELECT * FROM temp.__sfemu_src AS ");
    sb_quoted(&q, salias, '"');
    sb_printf(&q, " WHERE NOT EXISTS (SELECT 1 FROM %s WHERE %s)", tgt.p, cond.p);
    if (run_sql(tr->s, q.p, b, NULL, tr->e) < 0) goto out;
    q.len = 0;
    sb_printf(&q, "SELECT 1 FROM %s JOIN temp.__sfemu_src AS ", tgt.p);
    sb_quoted(&q, salias, '"');
    sb_printf(&q, " ON %s GROUP BY ", cond.p);
    sb_quoted(&q, talias, '"');
    sb_add(&q, ".rowid HAVING COUNT(*) > 1 LIMIT 1");
    {
        result_t dup = {0};
        if (run_sql(tr->s, q.p, b, &dup, tr->e) < 0) goto out;
        size_t nd = dup.data ? json_array_size(dup.data) : 0;
        result_reset(&dup);
        if (nd) {
            seterr(tr->e, 422, "100090", "42P18", "Duplicate row detected during DML action");
            goto out;
        }
    }
    while (w < tr->end) {
        i = w + 1;
        bool matched = true;
        if (kw(&tr->t[i], "NOT")) matched = false, i++;
        if (!kw(&tr->t[i], "MATCHED")) {
            syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected token, expected MATCHED");
            goto out;
        }
        i++;
        int th = find_kw(tr, i, then);
        sb_t extra = {0};
        if (th >= tr->end) {
            syntax_err(tr->e, tr->s->sql, (int)strlen(tr->s->sql), "unexpected '<EOF>', expected THEN");
            goto out;
        }
        if (kw(&tr->t[i], "AND")) {
            if (emit_range(tr, i + 1, th, &extra)) goto out_extra;
        } else if (th != i) {
            syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected token, expected THEN");
            goto out_extra;
        }
        i = th + 1;
        w = find_kw(tr, i, when);
        q.len = 0;
        if (matched && kw(&tr->t[i], "UPDATE") && kw(&tr->t[i + 1], "SET")) {
            if (has_upd || has_del) {
                UNSUPPORTED(tr->e, "more than one WHEN MATCHED clause");
                goto out_extra;
            }
            has_upd = true;
            sb_printf(&q, "UPDATE %s SET", tgt.p);
            /* assignments: a qualified target column loses its qualifier */
            int j = i + 2, first = 1;
            while (j < w) {
                int k = j, depth = 0;
                for (; k < w; k++) {
                    if (op(&tr->t[k], "(")) depth++;
                    else if (op(&tr->t[k], ")")) depth--;
                    else if (depth == 0 && op(&tr->t[k], ",")) break;
                }
                int a = j;
                if (a + 2 < k && is_name(&tr->t[a]) && op(&tr->t[a + 1], ".") && is_name(&tr->t[a + 2])) a += 2;
                if (!first) sb_add(&q, ",");
                first = 0;
                if (emit_range(tr, a, k, &q)) goto out_extra;
                j = k + 1;
            }
            sb_add(&q, " FROM temp.__sfemu_src AS ");
            sb_quoted(&q, salias, '"');
            sb_printf(&q, " WHERE (%s)", cond.p);
            if (extra.p) sb_printf(&q, " AND (%s)", extra.p);
            if ((upd = run_sql(tr->s, q.p, b, NULL, tr->e)) < 0) goto out_extra;
        } else if (matched && kw(&tr->t[i], "DELETE")) {
            if (has_upd || has_del) {
                UNSUPPORTED(tr->e, "more than one WHEN MATCHED clause");
                goto out_extra;
            }
            has_del = true;
            sb_printf(&q, "DELETE FROM %s WHERE EXISTS (SELECT 1 FROM temp.__sfemu_src AS ", tgt.p);
            sb_quoted(&q, salias, '"');
            sb_printf(&q, " WHERE (%s)%s%s%s)", cond.p, extra.p ? " AND (" : "", extra.p ? extra.p : "", extra.p ? ")" : "");
            if ((del = run_sql(tr->s, q.p, b, NULL, tr->e)) < 0) goto out_extra;
        } else if (!matched && kw(&tr->t[i], "INSERT")) {
            if (has_ins) {
                UNSUPPORTED(tr->e, "more than one WHEN NOT MATCHED clause");
                goto out_extra;
            }
            has_ins = true;
            i++;
            sb_add(&q, "INSERT INTO ");
            sb_quoted(&q, stor, '"');
            if (op(&tr->t[i], "(")) {
                int j = i;
                while (j < w && !op(&tr->t[j], ")")) j++;
                if (emit_range(tr, i, j + 1, &q)) goto out_extra;
                i = j + 1;
            }
            if (!kw(&tr->t[i], "VALUES") || !op(&tr->t[i + 1], "(")) {
                syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected token, expected VALUES (");
                goto out_extra;
            }
            sb_add(&q, " SELECT ");
            if (emit_range(tr, i + 2, w - 1, &q)) goto out_extra;
            if (!op(&tr->t[w - 1], ")")) {
                syntax_err(tr->e, tr->s->sql, tr->t[w - 1].pos, "unexpected token, expected ')'");
                goto out_extra;
            }
            sb_add(&q, " FROM temp.__sfemu_nm AS ");
            sb_quoted(&q, salias, '"');
            if (extra.p) sb_printf(&q, " WHERE (%s)", extra.p);
            if ((ins = run_sql(tr->s, q.p, b, NULL, tr->e)) < 0) goto out_extra;
        } else {
            syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected token in a WHEN clause");
            goto out_extra;
        }
        free(extra.p);
        continue;
    out_extra:
        free(extra.p);
        goto out;
    }
    {
        const char *names[3];
        long long v[3];
        int n = 0;
        if (has_ins) names[n] = "number of rows inserted", v[n++] = ins;
        if (has_upd) names[n] = "number of rows updated", v[n++] = upd;
        if (has_del) names[n] = "number of rows deleted", v[n++] = del;
        if (!n) {
            syntax_err(tr->e, tr->s->sql, (int)strlen(tr->s->sql), "unexpected '<EOF>', expected WHEN");
            goto out;
        }
        result_counts(r, n, names, v);
        r->dml = true;
        r->ins = ins;
        r->upd = upd;
        r->del = del;
    }
    rc = 0;
out:
    exec_plain(tr->s, "DROP TABLE IF EXISTS temp.__sfemu_src; DROP TABLE IF EXISTS temp.__sfemu_nm");
    free(tgt.p);
    free(src.p);
    free(cond.p);
    free(q.p);
    return rc;
}

static void add_text_col(result_t *r, const char *name, const char *kind) {
    r->cols = realloc(r->cols, (size_t)(r->ncols + 1) * sizeof(col_t));
    if (!r->cols) abort();
    col_t *c = &r->cols[r->ncols++];
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->kind, sizeof(c->kind), "%s", kind);
    c->nullable = true;
}

/* SHOW TABLES [LIKE 'p'] [IN ACCOUNT | IN DATABASE [d] | IN [SCHEMA] [d.]s] */
static int do_show(tr_t *tr, int i, result_t *r) {
    i++;
    if (kw(&tr->t[i], "TERSE")) i++;
    if (!kw(&tr->t[i], "TABLES")) return UNSUPPORTED(tr->e, "SHOW other than SHOW TABLES");
    i++;
    const char *like = "%";
    if (kw(&tr->t[i], "LIKE") && tr->t[i + 1].kind == T_STRING) like = tr->t[i + 1].text, i += 2;
    char d[256] = "", sc[256] = "";
    if (kw(&tr->t[i], "IN")) {
        i++;
        char parts[3][256];
        int np = 0;
        if (kw(&tr->t[i], "ACCOUNT")) {
            i++;
        } else if (kw(&tr->t[i], "DATABASE")) {
            i++;
            if (i < tr->end) {
                if (parse_name(tr, &i, parts, &np)) return -1;
                snprintf(d, sizeof(d), "%s", parts[0]);
            } else {
                snprintf(d, sizeof(d), "%s", tr->s->database);
            }
        } else {
            if (kw(&tr->t[i], "SCHEMA")) i++;
            if (i < tr->end) {
                if (parse_name(tr, &i, parts, &np)) return -1;
                snprintf(d, sizeof(d), "%s", np == 2 ? parts[0] : tr->s->database);
                snprintf(sc, sizeof(sc), "%s", parts[np - 1]);
            } else {
                snprintf(d, sizeof(d), "%s", tr->s->database);
                snprintf(sc, sizeof(sc), "%s", tr->s->schema);
            }
        }
    } else {
        snprintf(d, sizeof(d), "%s", tr->s->database);
        snprintf(sc, sizeof(sc), "%s", tr->s->schema);
    }
    if (i < tr->end) return syntax_err(tr->e, tr->s->sql, tr->t[i].pos, "unexpected token");
    result_reset(r);
    const char *names[] = {"created_on", "name", "database_name", "schema_name", "kind", "rows", NULL};
    for (int k = 0; names[k]; k++) add_text_col(r, names[k], k == 5 ? "fixed" : "text");
    r->data = json_array();
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(tr->s->db, "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE '\\_\\_sfemu%' ESCAPE '\\' ORDER BY name", -1, &st, NULL))
        return map_sqlite_err(tr->s->db, tr->e);
    while (sqlite3_step(st) == SQLITE_ROW) {
        char full[800], *p1, *p2;
        snprintf(full, sizeof(full), "%s", (const char *)sqlite3_column_text(st, 0));
        if (!(p1 = strchr(full, '.')) || !(p2 = strchr(p1 + 1, '.'))) continue;
        *p1 = *p2 = '\0';
        if ((*d && strcmp(full, d)) || (*sc && strcmp(p1 + 1, sc))) continue;
        sqlite3_stmt *m;
        bool ok = false;
        long long rows = 0;
        if (!sqlite3_prepare_v2(tr->s->db, "SELECT ? LIKE ?", -1, &m, NULL)) {
            sqlite3_bind_text(m, 1, p2 + 1, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(m, 2, like, -1, SQLITE_TRANSIENT);
            exec_plain(tr->s, "PRAGMA case_sensitive_like=OFF");
            ok = sqlite3_step(m) == SQLITE_ROW && sqlite3_column_int(m, 0);
            exec_plain(tr->s, "PRAGMA case_sensitive_like=ON");
        }
        sqlite3_finalize(m);
        if (!ok) continue;
        sb_t q = {0};
        sb_add(&q, "SELECT COUNT(*) FROM ");
        sb_quoted(&q, (const char *)sqlite3_column_text(st, 0), '"');
        if (!sqlite3_prepare_v2(tr->s->db, q.p, -1, &m, NULL) && sqlite3_step(m) == SQLITE_ROW)
            rows = sqlite3_column_int64(m, 0);
        sqlite3_finalize(m);
        free(q.p);
        char rs[32];
        snprintf(rs, sizeof(rs), "%lld", rows);
        json_t *row = json_pack("[s,s,s,s,s,s]", "", p2 + 1, full, p1 + 1, "TABLE", rs);
        json_array_append_new(r->data, row);
    }
    sqlite3_finalize(st);
    return 0;
}

/* DESCRIBE|DESC TABLE t */
static int do_describe(tr_t *tr, int i, result_t *r) {
    i++;
    if (kw(&tr->t[i], "TABLE")) i++;
    char parts[3][256], stor[800];
    int np;
    if (parse_name(tr, &i, parts, &np) || resolve(tr, parts, np, stor, sizeof(stor), NULL)) return -1;
    if (!table_exists(tr->s->db, stor)) return no_table(tr->e, stor);
    result_reset(r);
    const char *names[] = {"name", "type", "kind", "null?", "default", "primary key", "unique key", NULL};
    for (int k = 0; names[k]; k++) add_text_col(r, names[k], "text");
    r->data = json_array();
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(tr->s->db, "SELECT name, type, nullable, dflt FROM __sfemu_columns WHERE tbl=? ORDER BY pos", -1, &st, NULL))
        return map_sqlite_err(tr->s->db, tr->e);
    sqlite3_bind_text(st, 1, stor, -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *dflt = (const char *)sqlite3_column_text(st, 3);
        json_t *row = json_pack("[s,s,s,s,o,s,s]", (const char *)sqlite3_column_text(st, 0),
                                (const char *)sqlite3_column_text(st, 1), "COLUMN",
                                sqlite3_column_int(st, 2) ? "Y" : "N", dflt ? json_string(dflt) : json_null(), "N", "N");
        json_array_append_new(r->data, row);
    }
    sqlite3_finalize(st);
    return 0;
}

static bool is_ddl(tr_t *tr, int i) {
    return kw(&tr->t[i], "CREATE") || kw(&tr->t[i], "DROP") || kw(&tr->t[i], "ALTER");
}

/* Runs one Snowflake statement (tokens [i, tr->end)). Every statement is
 * atomic (a savepoint); DDL commits an open transaction first, as in
 * Snowflake. */
static int exec_statement(tr_t *tr, int i, const binds_t *b, result_t *r) {
    sess_t *s = tr->s;
    tok_t *t = &tr->t[i];
    if (kw(t, "BEGIN") || (kw(t, "START") && kw(&tr->t[i + 1], "TRANSACTION"))) {
        tr->op = "BEGIN";
        if (!s->in_txn) {
            if (exec_plain(s, "BEGIN")) return map_sqlite_err(s->db, tr->e);
            s->in_txn = true;
        }
        result_status(r, "Statement executed successfully.");
        return 0;
    }
    if (kw(t, "COMMIT") || kw(t, "ROLLBACK")) {
        if (s->in_txn) {
            if (exec_plain(s, kw(t, "COMMIT") ? "COMMIT" : "ROLLBACK")) return map_sqlite_err(s->db, tr->e);
            s->in_txn = false;
        }
        result_status(r, "Statement executed successfully.");
        return 0;
    }
    if (is_ddl(tr, i) && s->in_txn) {
        if (exec_plain(s, "COMMIT")) return map_sqlite_err(s->db, tr->e);
        s->in_txn = false;
    }
    if (exec_plain(s, "SAVEPOINT sfemu_stmt")) return map_sqlite_err(s->db, tr->e);
    int rc;
    if (kw(t, "SELECT") || kw(t, "WITH") || op(t, "(")) tr->op = "SELECT", rc = do_select(tr, i, b, r);
    else if (kw(t, "INSERT")) tr->op = "INSERT", rc = do_insert(tr, i, b, r);
    else if (kw(t, "UPDATE")) tr->op = "UPDATE", rc = do_update(tr, i, b, r);
    else if (kw(t, "DELETE")) tr->op = "DELETE", rc = do_delete(tr, i, b, r);
    else if (kw(t, "MERGE")) tr->op = "MERGE", rc = do_merge(tr, i, b, r);
    else if (kw(t, "TRUNCATE")) tr->op = "TRUNCATE", rc = do_truncate(tr, i, r);
    else if (kw(t, "DROP")) tr->op = "DROP", rc = do_drop(tr, i, r);
    else if (kw(t, "ALTER") && kw(&tr->t[i + 1], "TABLE")) tr->op = "ALTER", rc = do_alter_add(tr, i, r);
    else if (kw(t, "USE")) tr->op = "USE", rc = do_use(tr, i, r);
    else if (kw(t, "SHOW")) tr->op = "SHOW", rc = do_show(tr, i, r);
    else if (kw(t, "DESCRIBE") || kw(t, "DESC")) tr->op = "DESCRIBE", rc = do_describe(tr, i, r);
    else if (kw(t, "CREATE")) {
        int j = i + 1;
        if (kw(&tr->t[j], "OR") && kw(&tr->t[j + 1], "REPLACE")) j += 2;
        while (kw(&tr->t[j], "TRANSIENT") || kw(&tr->t[j], "TEMPORARY") || kw(&tr->t[j], "TEMP") ||
               kw(&tr->t[j], "VOLATILE") || kw(&tr->t[j], "LOCAL") || kw(&tr->t[j], "GLOBAL"))
            j++;
        if (kw(&tr->t[j], "TABLE")) {
            tr->op = "CREATE TABLE";
            rc = do_create_table(tr, i, r);
        } else if (kw(&tr->t[j], "DATABASE") || kw(&tr->t[j], "SCHEMA")) {
            /* Namespaces are implicit here: a table name carries its database and schema. */
            bool db = kw(&tr->t[j], "DATABASE");
            j++;
            if (kw(&tr->t[j], "IF") && kw(&tr->t[j + 1], "NOT") && kw(&tr->t[j + 2], "EXISTS")) j += 3;
            char parts[3][256];
            int np;
            tr->op = db ? "CREATE DATABASE" : "CREATE SCHEMA";
            rc = parse_name(tr, &j, parts, &np);
            if (!rc) result_status(r, "%s %s successfully created.", db ? "Database" : "Schema", parts[np - 1]);
        } else {
            rc = UNSUPPORTED(tr->e, "CREATE of anything but TABLE, DATABASE or SCHEMA");
        }
    } else {
        char what[300];
        snprintf(what, sizeof(what), "statements starting with '%.200s'", t->kind == T_EOF ? "" : t->text);
        rc = UNSUPPORTED(tr->e, what);
    }
    if (rc) {
        exec_plain(s, "ROLLBACK TO sfemu_stmt");
        exec_plain(s, "RELEASE sfemu_stmt");
        if (tr->e->http == 0) seterr(tr->e, 422, "002000", "42000", "SQL compilation error");
        return -1;
    }
    if (exec_plain(s, "RELEASE sfemu_stmt")) return map_sqlite_err(s->db, tr->e);
    return 0;
}

/* ---------------------------------------------------------- SQL requests */

typedef struct {
    const char *statement;
    const char *database, *schema; /* from the request body; may be NULL */
    json_t *bindings;
    long long multi_count; /* MULTI_STATEMENT_COUNT, 1 when absent */
    bool nulls_as_text;
} sqlreq_t;

static void ident_from_body(const char *v, char *out, size_t n) {
    size_t len = v ? strlen(v) : 0;
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
        snprintf(out, n, "%.*s", (int)(len - 2), v + 1);
    } else {
        snprintf(out, n, "%s", v ? v : "");
        upcase(out);
    }
}

static json_t *row_type(const result_t *r) {
    json_t *a = json_array();
    for (int c = 0; c < r->ncols; c++) {
        const col_t *col = &r->cols[c];
        char d[800] = "", s[800] = "", t[800] = "";
        char *p1, *p2;
        snprintf(d, sizeof(d), "%s", col->table);
        if ((p1 = strchr(d, '.')) && (p2 = strchr(p1 + 1, '.'))) {
            *p1 = *p2 = '\0';
            snprintf(s, sizeof(s), "%s", p1 + 1);
            snprintf(t, sizeof(t), "%s", p2 + 1);
        } else {
            d[0] = '\0';
        }
        bool fixed = !strcmp(col->kind, "fixed"), text = !strcmp(col->kind, "text");
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b}", "name", col->name, "database", d, "schema", s,
                              "table", t, "type", col->kind, "nullable", col->nullable);
        json_object_set_new(o, "precision", fixed ? json_integer(col->precision) : json_null());
        json_object_set_new(o, "scale", fixed ? json_integer(col->scale) : !strncmp(col->kind, "time", 4) ? json_integer(9) : json_null());
        long long len = text && col->precision > 0 ? col->precision : 16777216;
        json_object_set_new(o, "length", text ? json_integer(len) : json_null());
        json_object_set_new(o, "byteLength", text ? json_integer(len * 4 > 16777216 ? 16777216 : len * 4)
                                             : !strcmp(col->kind, "binary") ? json_integer(8388608) : json_null());
        json_object_set_new(o, "collation", json_null());
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *success_body(const char *handle, int64_t created, result_t *r) {
    char url[192];
    snprintf(url, sizeof(url), "/api/v2/statements/%s", handle);
    size_t rows = r->data ? json_array_size(r->data) : 0;
    char *dump = r->data ? json_dumps(r->data, JSON_COMPACT) : NULL;
    json_t *meta = json_pack("{s:I,s:s,s:[{s:I,s:I}],s:o}", "numRows", (json_int_t)rows, "format", "jsonv2",
                             "partitionInfo", "rowCount", (json_int_t)rows, "uncompressedSize",
                             (json_int_t)(dump ? strlen(dump) : 2), "rowType", row_type(r));
    free(dump);
    json_t *b = json_pack("{s:o,s:s,s:s,s:s,s:s,s:s,s:I,s:o}", "resultSetMetaData", meta, "code", "090001",
                          "statementStatusUrl", url, "sqlState", "00000", "statementHandle", handle, "message",
                          "Statement executed successfully.", "createdOn", (json_int_t)created, "data",
                          r->data ? json_incref(r->data) : json_array());
    if (r->dml)
        json_object_set_new(b, "stats", json_pack("{s:I,s:I,s:I,s:I}", "numRowsInserted", (json_int_t)r->ins,
                                                  "numRowsUpdated", (json_int_t)r->upd, "numRowsDeleted",
                                                  (json_int_t)r->del, "numDuplicateRowsUpdated", (json_int_t)0));
    return b;
}

static json_t *error_body(const sf_err_t *e, const char *handle) {
    json_t *b = json_pack("{s:s,s:s}", "code", e->code, "message", e->msg);
    if (e->state[0]) json_object_set_new(b, "sqlState", json_string(e->state));
    if (handle) {
        char url[192];
        snprintf(url, sizeof(url), "/api/v2/statements/%s", handle);
        json_object_set_new(b, "statementHandle", json_string(handle));
        json_object_set_new(b, "statementStatusUrl", json_string(url));
    }
    return b;
}

static void new_handle(char *out) {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        for (int i = 0; i < 16; i++) b[i] = (unsigned char)rand();
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    sprintf(out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
            b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* A result kept for GET (child statements of a multi-statement request). */
typedef struct {
    char handle[40];
    int http;
    char *body;
} kept_t;

/* Runs a whole request: statements split on ';', counted against
 * MULTI_STATEMENT_COUNT, run in order; an explicit transaction still open at
 * the end is rolled back (the session ends). Returns the HTTP status and sets
 * *body; child results are appended to kept. */
static int run_request(sqlite3 *db, const sqlreq_t *q, const char *handle, int64_t created, json_t **body,
                       kept_t **kept, int *nkept) {
    sess_t s = {.db = db, .sql = q->statement};
    sf_err_t e = {0};
    toks_t ts = {0};
    binds_t b = {0};
    int nparams = 0, http = 200;
    result_t r = {.nulls_as_text = q->nulls_as_text};
    ident_from_body(q->database, s.database, sizeof(s.database));
    ident_from_body(q->schema, s.schema, sizeof(s.schema));
    *body = NULL;
    if (tokenize(q->statement, &ts, &nparams, &e)) goto fail;
    toks_push(&ts, T_EOF, "", 0, (int)strlen(q->statement));
    int starts[4096], ends[4096], n = 0;
    for (int i = 0; i < ts.n;) {
        int j = i;
        while (ts.t[j].kind != T_SEMI && ts.t[j].kind != T_EOF) j++;
        if (j > i) {
            if (n == 4096) {
                UNSUPPORTED(&e, "more than 4096 statements in one request");
                goto fail;
            }
            starts[n] = i;
            ends[n++] = j;
        }
        if (ts.t[j].kind == T_EOF) break;
        i = j + 1;
    }
    if (n == 0) {
        seterr(&e, 422, "000900", "42000", "SQL compilation error:\nEmpty SQL statement.");
        goto fail;
    }
    if (q->multi_count != 0 && n != q->multi_count) {
        seterr(&e, 422, "000008", "0A000", "Actual statement count %d did not match the desired statement count %lld.",
               n, q->multi_count);
        goto fail;
    }
    if (parse_bindings(q->bindings, &b.v, &b.set, &b.n, &e)) goto fail;
    bool multi = q->multi_count != 1;
    if (multi && b.n > 0) {
        seterr(&e, 422, "000008", "0A000", "SQL compilation error:\nBind variables are not supported in multi-statement requests.");
        goto fail;
    }
    if (nparams > 250000) {
        UNSUPPORTED(&e, "more than 250,000 bind variables in one statement");
        goto fail;
    }
    for (int k = 0; k < ts.n; k++) {
        if (ts.t[k].kind != T_PARAM) continue;
        int idx = ts.t[k].param;
        if (idx > b.n || !b.set[idx - 1]) {
            int line, col;
            line_pos(q->statement, ts.t[k].pos, &line, &col);
            seterr(&e, 422, "002049", "42601", "SQL compilation error: error line %d at position %d\nBind variable %s not set.",
                   line, col, ts.t[k].text);
            goto fail;
        }
    }
    json_t *handles = json_array();
    for (int k = 0; k < n; k++) {
        tr_t tr = {.s = &s, .t = ts.t, .end = ends[k], .op = "statement", .e = &e};
        ts.t[ends[k]].kind = T_EOF; /* each statement sees its own end */
        char child[40];
        if (multi) new_handle(child);
        if (exec_statement(&tr, starts[k], &b, &r)) {
            if (multi) {
                *kept = realloc(*kept, (size_t)(*nkept + 1) * sizeof(kept_t));
                kept_t *kp = &(*kept)[(*nkept)++];
                snprintf(kp->handle, sizeof(kp->handle), "%s", child);
                kp->http = e.http;
                json_t *eb = error_body(&e, child);
                kp->body = json_dumps(eb, JSON_COMPACT);
                json_decref(eb);
                json_array_append_new(handles, json_string(child));
            }
            json_decref(handles);
            goto fail;
        }
        if (multi) {
            json_t *cb = success_body(child, created, &r);
            *kept = realloc(*kept, (size_t)(*nkept + 1) * sizeof(kept_t));
            kept_t *kp = &(*kept)[(*nkept)++];
            snprintf(kp->handle, sizeof(kp->handle), "%s", child);
            kp->http = 200;
            kp->body = json_dumps(cb, JSON_COMPACT);
            json_decref(cb);
            json_array_append_new(handles, json_string(child));
        }
    }
    if (multi) {
        result_status(&r, "Multiple statements executed successfully.");
        snprintf(r.cols[0].name, sizeof(r.cols[0].name), "multiple statement execution");
        *body = success_body(handle, created, &r);
        json_object_set_new(*body, "statementHandles", handles);
    } else {
        json_decref(handles);
        *body = success_body(handle, created, &r);
    }
    goto done;
fail:
    http = e.http ? e.http : 422;
    *body = error_body(&e, handle);
done:
    if (s.in_txn) exec_plain(&s, "ROLLBACK");
    result_reset(&r);
    binds_free(b.v, b.n);
    free(b.set);
    toks_free(&ts);
    return http;
}

/* ----------------------------------------------------------------- server */

typedef struct {
    char name[256]; /* upper-cased */
    EVP_PKEY *key;
    char fp[128]; /* "SHA256:<base64>" */
} user_t;

enum { DROP_RANDOM, DROP_BEFORE, DROP_AFTER };

typedef struct {
    int port;
    const char *port_file, *db_path, *account, *log_file;
    user_t users[MAX_USERS];
    int nusers;
    double fail_rate, drop_rate;
    int fail_status, drop_when;
    uint64_t seed;
    long latency_ms, async_after_ms;
    long commit_delay_ms; /* Snowpipe Streaming: append to committed */
    bool faults_streaming; /* --faults-streaming on: the faults above hit channel requests too */
} cfg_t;

enum { ST_QUEUED, ST_RUNNING, ST_DONE, ST_CANCELLED };

/* A statement from submission until its result is stored in SQLite. */
typedef struct stmt {
    char handle[40];
    char *request_id;
    sqlreq_t q;
    json_t *req; /* owns the strings q points into */
    int64_t created_ms, ready_ms, deadline_ms;
    long timeout_s;
    int state, http;
    char *body;
    int refs; /* the queue's and each waiting handler's */
    struct stmt *next;
} stmt_t;

typedef struct {
    cfg_t *cfg;
    sqlite3 *db;
    pthread_mutex_t db_mu; /* the connection: executor, lookups */
    pthread_mutex_t mu;    /* everything below */
    pthread_cond_t cv;
    stmt_t *head, *tail; /* in submission order */
    bool stopping;
    uint64_t rng;
    FILE *log;
    pthread_mutex_t log_mu;
    char accounts[3][256]; /* accepted account spellings in the JWT */
    char hostport[64];     /* what GET /v2/streaming/hostname answers */
    struct scoped *tokens; /* POST /oauth/token grants */
    struct batch *batches, *batches_tail; /* appended rows not committed yet */
} server_t;

static void logf_(server_t *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(server_t *srv, const char *fmt, ...) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    pthread_mutex_lock(&srv->log_mu);
    fprintf(srv->log, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
            tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(srv->log, fmt, ap);
    va_end(ap);
    fputc('\n', srv->log);
    fflush(srv->log);
    pthread_mutex_unlock(&srv->log_mu);
}

/* Seeded, so --fail-rate / --drop-rate runs repeat. Caller holds mu. */
static double rnd(server_t *srv) {
    uint64_t z = (srv->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

static void stmt_unref(stmt_t *st) {
    if (--st->refs > 0) return;
    free(st->request_id);
    json_decref(st->req);
    free(st->body);
    free(st);
}

static void store_result(sqlite3 *db, const char *handle, const char *rid, int http, const char *body, int64_t created) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO __sfemu_statements VALUES (?,?,?,?,?)", -1, &st, NULL))
        return;
    sqlite3_bind_text(st, 1, handle, -1, SQLITE_TRANSIENT);
    if (rid) sqlite3_bind_text(st, 2, rid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, http);
    sqlite3_bind_text(st, 4, body, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, created);
    sqlite3_step(st);
    sqlite3_finalize(st);
}

/* A stored result by handle, or (rid set) the successful one of a requestId. */
static bool load_result(server_t *srv, const char *handle, const char *rid, int *http, char **body) {
    sqlite3_stmt *st;
    bool found = false;
    pthread_mutex_lock(&srv->db_mu);
    const char *sql = rid ? "SELECT http_status, body FROM __sfemu_statements WHERE request_id=? AND http_status=200 "
                            "ORDER BY created_ms DESC LIMIT 1"
                          : "SELECT http_status, body FROM __sfemu_statements WHERE handle=?";
    if (!sqlite3_prepare_v2(srv->db, sql, -1, &st, NULL)) {
        sqlite3_bind_text(st, 1, rid ? rid : handle, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
            *http = sqlite3_column_int(st, 0);
            *body = strdup((const char *)sqlite3_column_text(st, 1));
            found = *body != NULL;
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&srv->db_mu);
    return found;
}

static void cancelled_error(sf_err_t *e) {
    seterr(e, 422, "000604", "57014", "SQL execution canceled");
}

/* The executor: one statement at a time, in submission order, each no
 * earlier than its submission + --latency-ms. */
static void *executor(void *arg) {
    server_t *srv = arg;
    pthread_mutex_lock(&srv->mu);
    for (;;) {
        stmt_t *st = srv->head;
        if (srv->stopping) break;
        if (!st) {
            pthread_cond_wait(&srv->cv, &srv->mu);
            continue;
        }
        int64_t now = now_ms(), due = st->ready_ms < st->deadline_ms ? st->ready_ms : st->deadline_ms;
        if (st->state == ST_QUEUED && now < due) {
            struct timespec until = {.tv_sec = due / 1000, .tv_nsec = (due % 1000) * 1000000};
            pthread_cond_timedwait(&srv->cv, &srv->mu, &until);
            continue;
        }
        json_t *body = NULL;
        kept_t *kept = NULL;
        int nkept = 0, http;
        sf_err_t e = {0};
        bool timed_out = st->state == ST_QUEUED && st->deadline_ms < st->ready_ms;
        bool cancelled = st->state == ST_CANCELLED;
        st->state = ST_RUNNING;
        pthread_mutex_unlock(&srv->mu);
        pthread_mutex_lock(&srv->db_mu);
        if (cancelled || timed_out) {
            if (cancelled) cancelled_error(&e);
            else seterr(&e, 408, "000630", "57014", "Statement reached its statement or warehouse timeout of %ld second(s) and was canceled.", st->timeout_s);
            http = e.http;
            body = error_body(&e, st->handle);
        } else {
            http = run_request(srv->db, &st->q, st->handle, st->created_ms, &body, &kept, &nkept);
        }
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (!text) abort();
        for (int k = 0; k < nkept; k++) {
            store_result(srv->db, kept[k].handle, NULL, kept[k].http, kept[k].body, st->created_ms);
            free(kept[k].body);
        }
        free(kept);
        store_result(srv->db, st->handle, st->request_id, http, text, st->created_ms);
        pthread_mutex_unlock(&srv->db_mu);
        logf_(srv, "statement %s %s: %d %.300s", st->handle, cancelled ? "cancelled" : timed_out ? "timed out" : "executed",
              http, http == 200 ? "" : text);
        pthread_mutex_lock(&srv->mu);
        st->http = http;
        st->body = text;
        st->state = ST_DONE;
        srv->head = st->next;
        if (!srv->head) srv->tail = NULL;
        pthread_cond_broadcast(&srv->cv);
        stmt_unref(st);
    }
    /* shutting down: what never ran is dropped, like a killed warehouse */
    while (srv->head) {
        stmt_t *st = srv->head;
        srv->head = st->next;
        st->state = ST_DONE;
        st->http = 503;
        free(st->body);
        st->body = strdup("{\"code\":\"000000\",\"message\":\"Service shutting down.\"}");
        stmt_unref(st);
    }
    srv->tail = NULL;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

static stmt_t *find_stmt(server_t *srv, const char *handle, const char *rid) {
    for (stmt_t *st = srv->head; st; st = st->next)
        if ((handle && !strcmp(st->handle, handle)) || (rid && st->request_id && !strcmp(st->request_id, rid)))
            return st;
    return NULL;
}

/* ------------------------------------------------------------------- JWT */

static unsigned char *b64url_decode(const char *s, size_t n, size_t *out_len) {
    size_t padded = (n + 3) / 4 * 4;
    char *tmp = malloc(padded + 1);
    unsigned char *out = malloc(padded / 4 * 3 + 1);
    if (!tmp || !out) abort();
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '-') c = '+';
        else if (c == '_') c = '/';
        else if (!isalnum((unsigned char)c)) {
            free(tmp);
            free(out);
            return NULL;
        }
        tmp[i] = c;
    }
    for (size_t i = n; i < padded; i++) tmp[i] = '=';
    tmp[padded] = '\0';
    int len = padded ? EVP_DecodeBlock(out, (unsigned char *)tmp, (int)padded) : 0;
    free(tmp);
    if (len < 0 || n % 4 == 1) {
        free(out);
        return NULL;
    }
    len -= (int)(padded - n); /* the '=' we added decode to zero bytes */
    *out_len = (size_t)len;
    out[len] = '\0';
    return out;
}

static json_t *b64url_json(const char *s, size_t n) {
    size_t len;
    unsigned char *raw = b64url_decode(s, n, &len);
    if (!raw) return NULL;
    json_t *j = json_loadb((const char *)raw, len, 0, NULL);
    free(raw);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Verifies the bearer token; on failure sets reason (as Snowflake's
 * SYSTEM$GET_LOGIN_FAILURE_DETAILS names it) and returns -1. */
static int verify_jwt(server_t *srv, const char *tok, const char **reason) {
    const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    *reason = "JWT_TOKEN_INVALID";
    if (!d1 || !d2 || strchr(d2 + 1, '.')) return -1;
    json_t *hdr = b64url_json(tok, (size_t)(d1 - tok)), *claims = b64url_json(d1 + 1, (size_t)(d2 - d1 - 1));
    size_t siglen = 0;
    unsigned char *sig = b64url_decode(d2 + 1, strlen(d2 + 1), &siglen);
    int rc = -1;
    if (!hdr || !claims || !sig) goto out;
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    if (!alg || strcmp(alg, "RS256")) {
        *reason = "JWT_TOKEN_INVALID_ALGORITHM";
        goto out;
    }
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    json_t *jiat = json_object_get(claims, "iat"), *jexp = json_object_get(claims, "exp");
    if (!iss || !sub || !json_is_number(jiat) || !json_is_number(jexp)) {
        *reason = "JWT_TOKEN_INVALID_CLAIMS";
        goto out;
    }
    const char *fp = strstr(iss, ".SHA256:");
    if (!fp) {
        *reason = "JWT_TOKEN_INVALID_ISSUER";
        goto out;
    }
    char who[600];
    snprintf(who, sizeof(who), "%.*s", (int)(fp - iss), iss);
    char subu[600];
    snprintf(subu, sizeof(subu), "%s", sub);
    upcase(who);
    upcase(subu);
    if (strcmp(who, subu)) {
        *reason = "JWT_TOKEN_INVALID_SUBJECT";
        goto out;
    }
    const char *user = NULL;
    for (int a = 0; a < 3 && !user; a++) {
        size_t al = strlen(srv->accounts[a]);
        if (al && !strncmp(who, srv->accounts[a], al) && who[al] == '.') user = who + al + 1;
    }
    if (!user) {
        *reason = "JWT_TOKEN_ACCOUNT_MISMATCH";
        goto out;
    }
    user_t *u = NULL;
    bool name_known = false;
    for (int k = 0; k < srv->cfg->nusers; k++) {
        if (strcmp(srv->cfg->users[k].name, user)) continue;
        name_known = true;
        if (!strcmp(srv->cfg->users[k].fp, fp + 1)) u = &srv->cfg->users[k];
    }
    if (!u) {
        *reason = name_known ? "JWT_TOKEN_INVALID_PUBLIC_KEY_FINGERPRINT_MISMATCH" : "JWT_TOKEN_INVALID_USER_IN_ISSUER";
        goto out;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, u->key) == 1 &&
              EVP_DigestVerifyUpdate(ctx, tok, (size_t)(d2 - tok)) == 1 &&
              EVP_DigestVerifyFinal(ctx, sig, siglen) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        *reason = "JWT_TOKEN_INVALID_SIGNATURE";
        goto out;
    }
    double now = (double)time(NULL), iat = json_number_value(jiat), exp = json_number_value(jexp);
    if (exp <= now) {
        *reason = "JWT_TOKEN_EXPIRED";
        goto out;
    }
    if (exp - iat > JWT_MAX_LIFETIME || iat > now + 60) {
        *reason = "JWT_TOKEN_INVALID_ISSUE_TIME";
        goto out;
    }
    rc = 0;
out:
    json_decref(hdr);
    json_decref(claims);
    free(sig);
    return rc;
}

/* ------------------------------------------------------------------- HTTP */

typedef struct {
    sb_t body;
    bool too_big;
} conn_t;

static enum MHD_Result reply(struct MHD_Connection *c, int http, const char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned int)http, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, int http, json_t *body) {
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!s) return MHD_NO;
    enum MHD_Result r = reply(c, http, s);
    free(s);
    return r;
}

static enum MHD_Result reply_err(struct MHD_Connection *c, const sf_err_t *e, const char *handle) {
    return reply_json(c, e->http, error_body(e, handle));
}

static bool qparam_true(struct MHD_Connection *c, const char *name) {
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    return v && !strcasecmp(v, "true");
}

static enum MHD_Result accepted(struct MHD_Connection *c, const char *handle) {
    char url[192];
    snprintf(url, sizeof(url), "/api/v2/statements/%s", handle);
    return reply_json(c, 202, json_pack("{s:s,s:s,s:s,s:s}", "code", "333334", "message",
                                        "Asynchronous execution in progress. Use provided query id to perform query "
                                        "monitoring and management.", "statementHandle", handle,
                                        "statementStatusUrl", url));
}

/* Accept and Authorization, in that order (Content-Type is checked by the
 * caller where a body is expected). */
static int check_headers(server_t *srv, struct MHD_Connection *c, sf_err_t *e) {
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    if (accept && !strstr(accept, "application/json") && !strstr(accept, "*/*") && !strstr(accept, "application/*"))
        return seterr(e, 406, "000406", "", "Not acceptable: the SQL API answers with application/json.");
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *ttype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Snowflake-Authorization-Token-Type");
    const char *reason = "JWT_TOKEN_INVALID";
    if (ttype && strcasecmp(ttype, "KEYPAIR_JWT") && strcasecmp(ttype, "OAUTH")) reason = "UNSUPPORTED_TOKEN_TYPE";
    else if (!auth || strncasecmp(auth, "Bearer ", 7)) reason = "MISSING_BEARER_TOKEN";
    else if ((!ttype || strcasecmp(ttype, "OAUTH")) && verify_jwt(srv, auth + 7, &reason) == 0) return 0;
    char id[40]; /* the failure's id, as Snowflake gives for SYSTEM$GET_LOGIN_FAILURE_DETAILS */
    new_handle(id);
    if (ttype && !strcasecmp(ttype, "OAUTH")) {
        logf_(srv, "auth failure %s: OAUTH tokens are not supported by the emulator", id);
        return seterr(e, 401, "390303", "", "Invalid OAuth access token. [%s]", id);
    }
    logf_(srv, "auth failure %s: %s", id, reason);
    return seterr(e, 401, "390144", "08001", "JWT token is invalid. [%s]", id);
}

static bool json_int_like(json_t *v, long long *out) {
    if (json_is_integer(v)) return *out = json_integer_value(v), true;
    int64_t x;
    if (json_is_string(v) && parse_i64(json_string_value(v), &x)) return *out = x, true;
    return false;
}

/* The request body into q (pointing into req). */
static int parse_payload(const char *text, size_t len, json_t **req, sqlreq_t *q, long *timeout, sf_err_t *e) {
    json_t *j = json_loadb(text, len, 0, NULL);
    *req = j;
    memset(q, 0, sizeof(*q));
    q->multi_count = 1;
    *timeout = 0;
    if (!json_is_object(j)) goto bad;
    json_t *v = json_object_get(j, "statement");
    if (!json_is_string(v) || !*json_string_value(v)) goto bad;
    q->statement = json_string_value(v);
    static const char *strs[] = {"database", "schema", "warehouse", "role"};
    for (int k = 0; k < 4; k++) {
        v = json_object_get(j, strs[k]);
        if (v && !json_is_null(v) && !json_is_string(v)) goto bad;
    }
    q->database = json_string_value(json_object_get(j, "database"));
    q->schema = json_string_value(json_object_get(j, "schema"));
    v = json_object_get(j, "timeout");
    long long t = 0;
    if (v && !json_is_null(v) && (!json_int_like(v, &t) || t < 0 || t > 604800)) goto bad;
    *timeout = (long)t;
    q->bindings = json_object_get(j, "bindings");
    if (q->bindings && !json_is_null(q->bindings) && !json_is_object(q->bindings)) goto bad;
    v = json_object_get(j, "parameters");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v)) goto bad;
        const char *key;
        json_t *pv;
        json_object_foreach(v, key, pv) {
            if (strcasecmp(key, "MULTI_STATEMENT_COUNT")) continue;
            long long n;
            if (!json_int_like(pv, &n) || n < 0) goto bad;
            q->multi_count = n;
        }
    }
    return 0;
bad:
    return seterr(e, 400, "390142", "", "Incoming request does not contain a valid payload.");
}

static enum MHD_Result post_statement(server_t *srv, struct MHD_Connection *c, conn_t *cc) {
    sf_err_t e = {0};
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) || (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
        seterr(&e, 415, "000415", "", "Unsupported media type: Content-Type must be application/json.");
        logf_(srv, "POST /api/v2/statements 415 (Content-Type %s)", ct ? ct : "missing");
        return reply_err(c, &e, NULL);
    }
    if (check_headers(srv, c, &e)) {
        logf_(srv, "POST /api/v2/statements %d", e.http);
        return reply_err(c, &e, NULL);
    }
    if (cc->too_big) {
        seterr(&e, 413, "390142", "", "Incoming request does not contain a valid payload (larger than %u bytes).", MAX_BODY);
        return reply_err(c, &e, NULL);
    }
    json_t *req;
    sqlreq_t q;
    long timeout;
    if (parse_payload(cc->body.p ? cc->body.p : "", cc->body.len, &req, &q, &timeout, &e)) {
        json_decref(req);
        logf_(srv, "POST /api/v2/statements 400 (invalid payload)");
        return reply_err(c, &e, NULL);
    }
    q.nulls_as_text = false;
    const char *nullable = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "nullable");
    if (nullable && !strcasecmp(nullable, "false")) q.nulls_as_text = true;
    const char *rid = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "requestId");
    bool retry = qparam_true(c, "retry"), async = qparam_true(c, "async");
    cfg_t *cfg = srv->cfg;

    pthread_mutex_lock(&srv->mu);
    if (cfg->fail_rate > 0 && rnd(srv) < cfg->fail_rate) {
        pthread_mutex_unlock(&srv->mu);
        json_decref(req);
        logf_(srv, "POST /api/v2/statements %d (--fail-rate)", cfg->fail_status);
        if (cfg->fail_status == 429) return reply(c, 429, "{\"code\":\"390505\",\"message\":\"Too many requests.\"}");
        return reply(c, 503, "{\"code\":\"000503\",\"message\":\"Service Unavailable\"}");
    }
    int drop = 0; /* 0 none, DROP_BEFORE, DROP_AFTER */
    if (cfg->drop_rate > 0 && rnd(srv) < cfg->drop_rate)
        drop = cfg->drop_when != DROP_RANDOM ? cfg->drop_when : rnd(srv) < 0.5 ? DROP_BEFORE : DROP_AFTER;
    if (drop == DROP_BEFORE) {
        pthread_mutex_unlock(&srv->mu);
        json_decref(req);
        logf_(srv, "POST /api/v2/statements dropped the connection before executing (--drop-rate)");
        return MHD_NO;
    }
    stmt_t *st = NULL;
    if (rid && retry) {
        st = find_stmt(srv, NULL, rid);
        if (!st) {
            pthread_mutex_unlock(&srv->mu);
            int http;
            char *body;
            bool found = load_result(srv, NULL, rid, &http, &body);
            if (found) {
                json_decref(req);
                logf_(srv, "POST /api/v2/statements requestId=%s retry=true: already succeeded, not run again", rid);
                if (drop == DROP_AFTER) {
                    free(body);
                    logf_(srv, "POST /api/v2/statements dropped the connection after executing (--drop-rate)");
                    return MHD_NO;
                }
                enum MHD_Result r = reply(c, http, body);
                free(body);
                return r;
            }
            pthread_mutex_lock(&srv->mu);
            st = find_stmt(srv, NULL, rid); /* may have been submitted meanwhile */
        }
        if (st) {
            logf_(srv, "POST /api/v2/statements requestId=%s retry=true: still running as %s", rid, st->handle);
            json_decref(req);
            req = NULL;
        }
    }
    if (!st) {
        st = calloc(1, sizeof(*st));
        if (!st) abort();
        new_handle(st->handle);
        st->request_id = rid ? strdup(rid) : NULL;
        st->req = req;
        st->q = q;
        st->created_ms = now_ms();
        st->ready_ms = st->created_ms + cfg->latency_ms;
        st->timeout_s = timeout;
        st->deadline_ms = timeout > 0 ? st->created_ms + timeout * 1000 : INT64_MAX;
        st->refs = 1;
        if (srv->tail) srv->tail->next = st;
        else srv->head = st;
        srv->tail = st;
        pthread_cond_broadcast(&srv->cv);
    }
    st->refs++;
    int64_t until = now_ms() + (async ? 0 : drop == DROP_AFTER ? INT64_MAX / 2 : cfg->async_after_ms);
    while (st->state != ST_DONE && !srv->stopping) {
        int64_t now = now_ms();
        if (now >= until) break;
        int64_t wake = until - now > 200 ? now + 200 : until;
        struct timespec ts = {.tv_sec = wake / 1000, .tv_nsec = (wake % 1000) * 1000000};
        pthread_cond_timedwait(&srv->cv, &srv->mu, &ts);
    }
    char handle[40];
    snprintf(handle, sizeof(handle), "%s", st->handle);
    int http = st->state == ST_DONE ? st->http : 202;
    char *body = st->state == ST_DONE && st->body ? strdup(st->body) : NULL;
    stmt_unref(st);
    pthread_mutex_unlock(&srv->mu);
    logf_(srv, "POST /api/v2/statements%s%s %d %s", rid ? " requestId=" : "", rid ? rid : "", body ? http : 202, handle);
    if (drop == DROP_AFTER) {
        free(body);
        logf_(srv, "POST /api/v2/statements dropped the connection after executing %s (--drop-rate)", handle);
        return MHD_NO;
    }
    if (!body) return accepted(c, handle);
    enum MHD_Result r = reply(c, http, body);
    free(body);
    return r;
}

static bool valid_handle(const char *h) {
    size_t n = strlen(h);
    if (n == 0 || n >= 40) return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)h[i]) && h[i] != '-') return false;
    return true;
}

static enum MHD_Result get_statement(server_t *srv, struct MHD_Connection *c, const char *handle) {
    sf_err_t e = {0};
    if (check_headers(srv, c, &e)) return reply_err(c, &e, NULL);
    const char *part = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "partition");
    int64_t pn = 0;
    if (part && (!parse_i64(part, &pn) || pn != 0)) {
        seterr(&e, 400, "390142", "", "Incoming request does not contain a valid payload (partition %s does not exist).", part);
        return reply_err(c, &e, NULL);
    }
    if (valid_handle(handle)) {
        pthread_mutex_lock(&srv->mu);
        stmt_t *st = find_stmt(srv, handle, NULL);
        bool running = st && st->state != ST_DONE;
        pthread_mutex_unlock(&srv->mu);
        if (running) {
            logf_(srv, "GET /api/v2/statements/%s 202", handle);
            return accepted(c, handle);
        }
        int http;
        char *body;
        if (load_result(srv, handle, NULL, &http, &body)) {
            logf_(srv, "GET /api/v2/statements/%s %d", handle, http);
            enum MHD_Result r = reply(c, http, body);
            free(body);
            return r;
        }
    }
    seterr(&e, 404, "000709", "02000", "Statement %.64s not found", handle);
    logf_(srv, "GET /api/v2/statements/%.64s 404", handle);
    return reply_err(c, &e, NULL);
}

static enum MHD_Result cancel_statement(server_t *srv, struct MHD_Connection *c, const char *handle) {
    sf_err_t e = {0};
    if (check_headers(srv, c, &e)) return reply_err(c, &e, NULL);
    if (valid_handle(handle)) {
        pthread_mutex_lock(&srv->mu);
        stmt_t *st = find_stmt(srv, handle, NULL);
        bool cancelled = st && st->state == ST_QUEUED;
        if (cancelled) {
            st->state = ST_CANCELLED;
            pthread_cond_broadcast(&srv->cv);
        }
        pthread_mutex_unlock(&srv->mu);
        int http;
        char *body = NULL;
        if (st || load_result(srv, handle, NULL, &http, &body)) {
            free(body);
            logf_(srv, "POST /api/v2/statements/%s/cancel 200 (%s)", handle, cancelled ? "cancelled" : "already finished");
            if (cancelled) {
                cancelled_error(&e);
                return reply_json(c, 200, error_body(&e, handle));
            }
            char url[192];
            snprintf(url, sizeof(url), "/api/v2/statements/%s", handle);
            return reply_json(c, 200, json_pack("{s:s,s:s,s:s,s:s}", "code", "090001", "message",
                                                "Statement already completed.", "statementHandle", handle,
                                                "statementStatusUrl", url));
        }
    }
    seterr(&e, 404, "000709", "02000", "Statement %.64s not found", handle);
    return reply_err(c, &e, NULL);
}

/* ------------------------------------------------------ Snowpipe Streaming */

/* A scoped token from POST /oauth/token. */
struct scoped {
    char token[72];
    int64_t expires_ms;
    struct scoped *next;
};

/* Rows appended to a channel, committed (inserted) commit_delay_ms later. */
struct batch {
    char table[800], pipe[256], channel[256];
    long long client_seq;
    char *offset_token;
    int nrows, ncols;
    char (*cols)[256];
    bval_t *vals; /* nrows * ncols */
    int64_t due_ms;
    struct batch *next;
};

static void batch_free(struct batch *b) {
    if (!b) return;
    binds_free(b->vals, b->nrows * b->ncols);
    free(b->cols);
    free(b->offset_token);
    free(b);
}

static enum MHD_Result stream_err(struct MHD_Connection *c, int http, const char *code, const char *msg) {
    return reply_json(c, http, json_pack("{s:s,s:s}", "code", code, "message", msg));
}

/* Scoped token or key-pair JWT. */
static bool stream_auth(server_t *srv, struct MHD_Connection *c) {
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7)) return false;
    const char *tok = auth + 7, *reason;
    bool ok = false;
    pthread_mutex_lock(&srv->mu);
    int64_t now = now_ms();
    for (struct scoped *t = srv->tokens; t; t = t->next)
        if (!strcmp(t->token, tok) && t->expires_ms > now) ok = true;
    pthread_mutex_unlock(&srv->mu);
    if (ok) return true;
    if (verify_jwt(srv, tok, &reason) == 0) return true;
    logf_(srv, "streaming auth failure: %s", reason);
    return false;
}

static enum MHD_Result oauth_token(server_t *srv, struct MHD_Connection *c, conn_t *cc) {
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33))
        return stream_err(c, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/x-www-form-urlencoded.");
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"), *reason = "MISSING_BEARER_TOKEN";
    if (!auth || strncasecmp(auth, "Bearer ", 7) || verify_jwt(srv, auth + 7, &reason)) {
        logf_(srv, "POST /oauth/token 401: %s", reason);
        return stream_err(c, 401, "390144", "JWT token is invalid.");
    }
    const char *body = cc->body.p ? cc->body.p : "";
    if (!strstr(body, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") &&
        !strstr(body, "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer"))
        return reply(c, 400, "{\"error\":\"unsupported_grant_type\",\"message\":\"grant_type must be urn:ietf:params:oauth:grant-type:jwt-bearer\"}");
    if (!strstr(body, "scope="))
        return reply(c, 400, "{\"error\":\"invalid_scope\",\"message\":\"scope (the ingest host) is required\"}");
    struct scoped *t = calloc(1, sizeof(*t));
    if (!t) return MHD_NO;
    unsigned char r[24];
    if (RAND_bytes(r, sizeof(r)) != 1) {
        free(t);
        return MHD_NO;
    }
    for (int i = 0; i < 24; i++) sprintf(t->token + 2 * i, "%02x", r[i]);
    t->expires_ms = now_ms() + 3600 * 1000;
    pthread_mutex_lock(&srv->mu);
    t->next = srv->tokens;
    srv->tokens = t;
    pthread_mutex_unlock(&srv->mu);
    logf_(srv, "POST /oauth/token 200");
    return reply_json(c, 200, json_pack("{s:s}", "token", t->token));
}

/* "<TABLE>-STREAMING" (any case) is the default pipe of TABLE. */
static bool default_pipe_table(const char *db, const char *schema, const char *pipe, char *stor, size_t n) {
    size_t pl = strlen(pipe), sl = strlen("-STREAMING");
    if (pl <= sl || strcasecmp(pipe + pl - sl, "-STREAMING")) return false;
    snprintf(stor, n, "%s.%s.%.*s", db, schema, (int)(pl - sl), pipe);
    upcase(stor);
    return true;
}

typedef struct {
    long long client_seq, rows;
    char *committed; /* NULL: none */
    int64_t created_ms;
    bool found;
} chan_t;

static chan_t chan_load(sqlite3 *db, const char *tbl, const char *pipe, const char *ch) {
    chan_t r = {0};
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT client_seq, committed_token, rows_inserted, created_ms FROM __sfemu_channels "
                               "WHERE tbl=? AND pipe=? AND channel=?", -1, &st, NULL))
        return r;
    sqlite3_bind_text(st, 1, tbl, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, pipe, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, ch, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        r.found = true;
        r.client_seq = sqlite3_column_int64(st, 0);
        const char *c = (const char *)sqlite3_column_text(st, 1);
        r.committed = c ? strdup(c) : NULL;
        r.rows = sqlite3_column_int64(st, 2);
        r.created_ms = sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    return r;
}

static json_t *chan_status(const char *db, const char *schema, const char *pipe, const char *ch, const chan_t *c) {
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "database_name", db, "schema_name", schema,
                          "pipe_name", pipe, "channel_name", ch, "channel_status_code", "SUCCESS", "created_on_ms",
                          (json_int_t)c->created_ms, "rows_inserted_count", (json_int_t)c->rows,
                          "rows_parsed_count", (json_int_t)c->rows, "rows_error_count", (json_int_t)0);
    json_object_set_new(o, "last_committed_offset_token", c->committed ? json_string(c->committed) : json_null());
    json_object_set_new(o, "last_error_offset_upper_bound", json_null());
    json_object_set_new(o, "last_error_message", json_null());
    json_object_set_new(o, "last_error_timestamp", json_null());
    return o;
}

/* Drops the uncommitted batches of a channel (reopened or dropped). Caller holds mu. */
static void discard_batches(server_t *srv, const char *tbl, const char *pipe, const char *ch) {
    struct batch **pp = &srv->batches, *last = NULL;
    while (*pp) {
        struct batch *b = *pp;
        if (!strcmp(b->table, tbl) && !strcmp(b->pipe, pipe) && !strcmp(b->channel, ch)) {
            *pp = b->next;
            batch_free(b);
        } else {
            last = b;
            pp = &b->next;
        }
    }
    srv->batches_tail = last;
}

static enum MHD_Result open_channel(server_t *srv, struct MHD_Connection *c, conn_t *cc, const char *db,
                                    const char *schema, const char *pipe, const char *ch) {
    char tbl[800];
    if (!default_pipe_table(db, schema, pipe, tbl, sizeof(tbl)))
        return stream_err(c, 404, "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED",
                          "Only a table's default pipe <TABLE>-STREAMING is emulated.");
    json_t *body = cc->body.len ? json_loadb(cc->body.p, cc->body.len, 0, NULL) : json_object();
    if (!json_is_object(body)) {
        json_decref(body);
        return stream_err(c, 400, "INVALID_REQUEST", "The body must be a JSON object.");
    }
    const char *initial = json_string_value(json_object_get(body, "offset_token"));
    pthread_mutex_lock(&srv->db_mu);
    if (!table_exists(srv->db, tbl)) {
        pthread_mutex_unlock(&srv->db_mu);
        json_decref(body);
        return stream_err(c, 404, "ERR_TABLE_DOES_NOT_EXIST_NOT_AUTHORIZED", "The pipe's table does not exist.");
    }
    chan_t ch_state = chan_load(srv->db, tbl, pipe, ch);
    sqlite3_stmt *st;
    long long seq = ch_state.client_seq + 1;
    if (!ch_state.found) ch_state.created_ms = now_ms();
    if (initial && !ch_state.committed) ch_state.committed = strdup(initial);
    if (!sqlite3_prepare_v2(srv->db, "INSERT OR REPLACE INTO __sfemu_channels VALUES (?,?,?,?,?,?,?)", -1, &st, NULL)) {
        sqlite3_bind_text(st, 1, tbl, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, pipe, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, ch, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 4, seq);
        if (ch_state.committed) sqlite3_bind_text(st, 5, ch_state.committed, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 6, ch_state.rows);
        sqlite3_bind_int64(st, 7, ch_state.created_ms);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&srv->db_mu);
    json_decref(body);
    pthread_mutex_lock(&srv->mu);
    discard_batches(srv, tbl, pipe, ch); /* reopening drops what was not committed */
    pthread_mutex_unlock(&srv->mu);
    char next[64];
    snprintf(next, sizeof(next), "%lld_0", seq);
    json_t *resp = json_pack("{s:s,s:o}", "next_continuation_token", next, "channel_status",
                             chan_status(db, schema, pipe, ch, &ch_state));
    logf_(srv, "PUT channel %s/%s/%s 200 (client sequencer %lld, committed %s)", tbl, pipe, ch, seq,
          ch_state.committed ? ch_state.committed : "null");
    free(ch_state.committed);
    return reply_json(c, 200, resp);
}

static enum MHD_Result drop_channel(server_t *srv, struct MHD_Connection *c, const char *db, const char *schema,
                                    const char *pipe, const char *ch) {
    char tbl[800];
    if (!default_pipe_table(db, schema, pipe, tbl, sizeof(tbl)))
        return stream_err(c, 404, "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED", "Only default pipes are emulated.");
    sqlite3_stmt *st;
    int changed = 0;
    pthread_mutex_lock(&srv->db_mu);
    if (!sqlite3_prepare_v2(srv->db, "DELETE FROM __sfemu_channels WHERE tbl=? AND pipe=? AND channel=?", -1, &st, NULL)) {
        sqlite3_bind_text(st, 1, tbl, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, pipe, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, ch, -1, SQLITE_TRANSIENT);
        sqlite3_step(st);
        changed = sqlite3_changes(srv->db);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&srv->db_mu);
    pthread_mutex_lock(&srv->mu);
    discard_batches(srv, tbl, pipe, ch);
    pthread_mutex_unlock(&srv->mu);
    if (!changed) return stream_err(c, 404, "ERR_CHANNEL_DOES_NOT_EXIST_OR_IS_NOT_AUTHORIZED", "No such channel.");
    logf_(srv, "DELETE channel %s/%s/%s 200", tbl, pipe, ch);
    return reply(c, 200, "{}");
}

/* One JSON value into a column of Snowflake type `type`; -1 with *why set. */
static int json_to_column(json_t *v, const char *type, bval_t *out, sf_err_t *e) {
    char kind[16], num[64];
    int prec, scale;
    kind_of_type(type, kind, &prec, &scale);
    memset(out, 0, sizeof(*out));
    if (!v || json_is_null(v)) return 0;
    if (!strcmp(kind, "variant") || !strcmp(kind, "object") || !strcmp(kind, "array")) {
        out->kind = B_TEXT;
        out->s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!out->s) abort();
        out->n = strlen(out->s);
        return 0;
    }
    const char *sv = NULL;
    if (json_is_string(v)) sv = json_string_value(v);
    else if (json_is_integer(v)) snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v)), sv = num;
    else if (json_is_real(v)) snprintf(num, sizeof(num), "%.17g", json_real_value(v)), sv = num;
    else if (json_is_boolean(v)) sv = json_is_true(v) ? "true" : "false";
    if (!strcmp(kind, "text")) {
        if (sv) return convert_binding("TEXT", sv, out, e);
        out->kind = B_TEXT;
        out->s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!out->s) abort();
        out->n = strlen(out->s);
        return 0;
    }
    if (!sv) return seterr(e, 400, "100037", "22018", "a JSON %s is not recognized as %s", json_is_object(v) ? "object" : "array", type);
    if (!strncmp(kind, "timestamp", 9) && json_is_integer(v)) { /* seconds, ms, us or ns by magnitude */
        long long x = json_integer_value(v), a = llabs(x);
        long long mul = a < 31536000000LL ? 1000000000LL : a < 31536000000000LL ? 1000000LL : a < 31536000000000000LL ? 1000LL : 1;
        snprintf(num, sizeof(num), "%lld", x * mul);
        sv = num;
    }
    const char *bt = !strcmp(kind, "fixed") ? "FIXED" : !strcmp(kind, "real") ? "REAL" : !strcmp(kind, "boolean") ? "BOOLEAN"
                   : !strcmp(kind, "date") ? "DATE" : !strcmp(kind, "time") ? "TIME" : !strcmp(kind, "binary") ? "BINARY"
                   : !strcmp(kind, "timestamp_tz") ? "TIMESTAMP_TZ" : "TIMESTAMP_NTZ";
    if (!strcmp(kind, "date") && json_is_string(v) && strlen(sv) > 10) { /* a timestamp string: its date */
        snprintf(num, sizeof(num), "%.10s", sv);
        sv = num;
    }
    return convert_binding(bt, sv, out, e);
}

static enum MHD_Result append_rows(server_t *srv, struct MHD_Connection *c, conn_t *cc, const char *db,
                                   const char *schema, const char *pipe, const char *ch) {
    char tbl[800];
    if (!default_pipe_table(db, schema, pipe, tbl, sizeof(tbl)))
        return stream_err(c, 404, "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED", "Only default pipes are emulated.");
    const char *cont = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "continuationToken");
    const char *off = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "offsetToken");
    if (!off) off = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "endOffsetToken");
    if (!cont) return stream_err(c, 400, "INVALID_REQUEST", "continuationToken is required.");
    if (cc->too_big || cc->body.len > 16u * 1024 * 1024)
        return stream_err(c, 413, "PAYLOAD_TOO_LARGE", "A request body is at most 16 MB.");
    long long tok_seq = atoll(cont), row_seq = 0;
    const char *us = strchr(cont, '_');
    if (us) row_seq = atoll(us + 1);
    struct batch *b = calloc(1, sizeof(*b));
    if (!b) return MHD_NO;
    snprintf(b->table, sizeof(b->table), "%s", tbl);
    snprintf(b->pipe, sizeof(b->pipe), "%s", pipe);
    snprintf(b->channel, sizeof(b->channel), "%s", ch);
    b->offset_token = off ? strdup(off) : NULL;
    sf_err_t e = {0};
    const char *fail_code = NULL;
    char msg[1200] = "";
    pthread_mutex_lock(&srv->db_mu);
    chan_t st = chan_load(srv->db, tbl, pipe, ch);
    if (!st.found) {
        fail_code = "ERR_CHANNEL_DOES_NOT_EXIST_OR_IS_NOT_AUTHORIZED";
        snprintf(msg, sizeof(msg), "Channel %s does not exist; open it first.", ch);
    } else if (tok_seq != st.client_seq) {
        fail_code = "STALE_CONTINUATION_TOKEN_SEQUENCER";
        snprintf(msg, sizeof(msg), "The continuation token is from an older open of channel %s; reopen it.", ch);
    }
    b->client_seq = st.client_seq;
    free(st.committed);
    sqlite3_stmt *q = NULL;
    if (!fail_code && !sqlite3_prepare_v2(srv->db, "SELECT name, type FROM __sfemu_columns WHERE tbl=? ORDER BY pos", -1, &q, NULL)) {
        sqlite3_bind_text(q, 1, tbl, -1, SQLITE_TRANSIENT);
        char (*types)[64] = NULL;
        while (sqlite3_step(q) == SQLITE_ROW) {
            b->cols = realloc(b->cols, (size_t)(b->ncols + 1) * sizeof(*b->cols));
            types = realloc(types, (size_t)(b->ncols + 1) * sizeof(*types));
            if (!b->cols || !types) abort();
            snprintf(b->cols[b->ncols], 256, "%s", (const char *)sqlite3_column_text(q, 0));
            snprintf(types[b->ncols++], 64, "%s", (const char *)sqlite3_column_text(q, 1));
        }
        sqlite3_finalize(q);
        /* NDJSON: one object a line; keys match columns case-insensitively */
        const char *p = cc->body.p ? cc->body.p : "", *end = p + cc->body.len;
        int line = 0;
        while (p < end && !fail_code) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
            line++;
            bool blank = true;
            for (size_t k = 0; k < len; k++)
                if (!isspace((unsigned char)p[k])) blank = false;
            if (!blank) {
                json_error_t je;
                json_t *row = json_loadb(p, len, 0, &je);
                if (!json_is_object(row)) {
                    fail_code = "INVALID_ROW";
                    snprintf(msg, sizeof(msg), "Row %d is not a JSON object: %s", line, row ? "not an object" : je.text);
                } else {
                    b->vals = realloc(b->vals, (size_t)(b->nrows + 1) * (size_t)b->ncols * sizeof(bval_t));
                    if (!b->vals && b->ncols) abort();
                    bval_t *rv = b->vals + (size_t)b->nrows * (size_t)b->ncols;
                    memset(rv, 0, (size_t)b->ncols * sizeof(bval_t));
                    b->nrows++;
                    const char *key;
                    json_t *val;
                    json_object_foreach(row, key, val) {
                        int col = -1;
                        for (int k = 0; k < b->ncols; k++)
                            if (!strcasecmp(b->cols[k], key)) col = k;
                        if (col < 0) {
                            fail_code = "INVALID_ROW";
                            snprintf(msg, sizeof(msg), "Row %d: column %.200s does not exist in %s", line, key, tbl);
                            break;
                        }
                        free(rv[col].s);
                        if (json_to_column(val, types[col], &rv[col], &e)) {
                            fail_code = "INVALID_ROW";
                            snprintf(msg, sizeof(msg), "Row %d, column %s: %s", line, b->cols[col], e.msg);
                            break;
                        }
                    }
                }
                json_decref(row);
            }
            p += len + 1;
        }
        free(types);
    }
    pthread_mutex_unlock(&srv->db_mu);
    if (fail_code) {
        logf_(srv, "POST rows %s/%s/%s 400: %s", tbl, pipe, ch, msg);
        batch_free(b);
        return stream_err(c, !strcmp(fail_code, "ERR_CHANNEL_DOES_NOT_EXIST_OR_IS_NOT_AUTHORIZED") ? 404 : 400, fail_code, msg);
    }
    b->due_ms = now_ms() + srv->cfg->commit_delay_ms;
    int nrows = b->nrows;
    pthread_mutex_lock(&srv->mu);
    if (srv->batches_tail) srv->batches_tail->next = b;
    else srv->batches = b;
    srv->batches_tail = b;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    char next[64];
    snprintf(next, sizeof(next), "%lld_%lld", tok_seq, row_seq + 1);
    logf_(srv, "POST rows %s/%s/%s 200: %d rows, offset token %s", tbl, pipe, ch, nrows, off ? off : "(none)");
    return reply_json(c, 200, json_pack("{s:s}", "next_continuation_token", next));
}

static enum MHD_Result bulk_status(server_t *srv, struct MHD_Connection *c, conn_t *cc, const char *db,
                                   const char *schema, const char *pipe) {
    char tbl[800];
    if (!default_pipe_table(db, schema, pipe, tbl, sizeof(tbl)))
        return stream_err(c, 404, "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED", "Only default pipes are emulated.");
    json_t *body = cc->body.len ? json_loadb(cc->body.p, cc->body.len, 0, NULL) : NULL;
    json_t *names = json_object_get(body, "channel_names");
    if (!json_is_array(names)) {
        json_decref(body);
        return stream_err(c, 400, "INVALID_REQUEST", "The body must be {\"channel_names\": [...]}.");
    }
    json_t *out = json_object();
    size_t k;
    json_t *n;
    pthread_mutex_lock(&srv->db_mu);
    json_array_foreach(names, k, n) {
        const char *ch = json_string_value(n);
        if (!ch) continue;
        char chu[256];
        snprintf(chu, sizeof(chu), "%s", ch);
        upcase(chu);
        chan_t st = chan_load(srv->db, tbl, pipe, chu);
        if (st.found) json_object_set_new(out, ch, chan_status(db, schema, pipe, chu, &st));
        free(st.committed);
    }
    pthread_mutex_unlock(&srv->db_mu);
    json_decref(body);
    return reply_json(c, 200, json_pack("{s:o}", "channel_statuses", out));
}

/* --faults-streaming on: the draw of --fail-rate / --drop-rate for one
 * channel request (after --latency-ms): 0, 429 or 503, DROP_BEFORE or
 * DROP_AFTER. */
static int stream_fault(server_t *srv) {
    cfg_t *cfg = srv->cfg;
    if (cfg->latency_ms > 0) usleep((useconds_t)cfg->latency_ms * 1000);
    int f = 0;
    pthread_mutex_lock(&srv->mu);
    if (cfg->fail_rate > 0 && rnd(srv) < cfg->fail_rate) f = cfg->fail_status;
    else if (cfg->drop_rate > 0 && rnd(srv) < cfg->drop_rate)
        f = cfg->drop_when != DROP_RANDOM ? cfg->drop_when : rnd(srv) < 0.5 ? DROP_BEFORE : DROP_AFTER;
    pthread_mutex_unlock(&srv->mu);
    return f;
}

static enum MHD_Result stream_route(server_t *srv, struct MHD_Connection *c, conn_t *cc, const char *url,
                                    const char *method, char seg[][256], int n);

/* Routes /v2/streaming/... ; path segments are case-insensitive names. */
static enum MHD_Result streaming(server_t *srv, struct MHD_Connection *c, conn_t *cc, const char *url, const char *method) {
    if (!strcmp(url, "/v2/streaming/hostname") && !strcmp(method, "GET")) {
        const char *reason;
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (!auth || strncasecmp(auth, "Bearer ", 7) || verify_jwt(srv, auth + 7, &reason))
            return stream_err(c, 401, "390144", "JWT token is invalid.");
        return reply_json(c, 200, json_pack("{s:s}", "hostname", srv->hostport));
    }
    if (!stream_auth(srv, c)) return stream_err(c, 401, "390144", "JWT token is invalid.");
    char seg[10][256];
    int n = 0;
    const char *p = url + strlen("/v2/streaming/");
    while (*p && n < 10) {
        const char *sl = strchr(p, '/');
        size_t len = sl ? (size_t)(sl - p) : strlen(p);
        if (len == 0 || len >= 256) break;
        snprintf(seg[n], 256, "%.*s", (int)len, p);
        upcase(seg[n++]);
        p += len + (sl ? 1 : 0);
        if (!sl) break;
    }
    if (*p) n = 0; /* trailing garbage */
    int fault = srv->cfg->faults_streaming ? stream_fault(srv) : 0;
    if (fault == 429 || fault == 503) {
        logf_(srv, "%s %.200s %d (--fail-rate, --faults-streaming)", method, url, fault);
        if (fault == 429) return reply(c, 429, "{\"code\":\"390505\",\"message\":\"Too many requests.\"}");
        return reply(c, 503, "{\"code\":\"000503\",\"message\":\"Service Unavailable\"}");
    }
    if (fault == DROP_BEFORE) {
        logf_(srv, "%s %.200s dropped the connection before executing (--drop-rate, --faults-streaming)", method, url);
        return MHD_NO;
    }
    enum MHD_Result res = stream_route(srv, c, cc, url, method, seg, n);
    if (fault == DROP_AFTER) { /* done, but the client never hears of it */
        logf_(srv, "%s %.200s dropped the connection after executing (--drop-rate, --faults-streaming)", method, url);
        return MHD_NO;
    }
    return res;
}

static enum MHD_Result stream_route(server_t *srv, struct MHD_Connection *c, conn_t *cc, const char *url,
                                    const char *method, char seg[][256], int n) {
    /* databases/D/schemas/S/pipes/P/channels/C */
    if (n == 8 && !strcmp(seg[0], "DATABASES") && !strcmp(seg[2], "SCHEMAS") && !strcmp(seg[4], "PIPES") &&
        !strcmp(seg[6], "CHANNELS")) {
        if (!strcmp(method, "PUT")) return open_channel(srv, c, cc, seg[1], seg[3], seg[5], seg[7]);
        if (!strcmp(method, "DELETE")) return drop_channel(srv, c, seg[1], seg[3], seg[5], seg[7]);
    }
    /* data/databases/D/schemas/S/pipes/P/channels/C/rows */
    if (n == 10 && !strcmp(seg[0], "DATA") && !strcmp(seg[1], "DATABASES") && !strcmp(seg[3], "SCHEMAS") &&
        !strcmp(seg[5], "PIPES") && !strcmp(seg[7], "CHANNELS") && !strcmp(seg[9], "ROWS") && !strcmp(method, "POST"))
        return append_rows(srv, c, cc, seg[2], seg[4], seg[6], seg[8]);
    /* databases/D/schemas/S/pipes/P:bulk-channel-status */
    if (n == 6 && !strcmp(seg[0], "DATABASES") && !strcmp(seg[2], "SCHEMAS") && !strcmp(seg[4], "PIPES") &&
        !strcmp(method, "POST")) {
        char *colon = strrchr(seg[5], ':');
        if (colon && !strcmp(colon, ":BULK-CHANNEL-STATUS")) {
            *colon = '\0';
            return bulk_status(srv, c, cc, seg[1], seg[3], seg[5]);
        }
    }
    logf_(srv, "%s %.200s 404", method, url);
    return stream_err(c, 404, "NOT_FOUND", "No such Snowpipe Streaming endpoint.");
}

/* Commits appended rows once due: inserted into the table and the channel's
 * committed offset token advanced, in one transaction; batches of a channel
 * reopened since are dropped. */
static void *committer(void *arg) {
    server_t *srv = arg;
    pthread_mutex_lock(&srv->mu);
    while (!srv->stopping) {
        struct batch *b = srv->batches;
        if (!b) {
            pthread_cond_wait(&srv->cv, &srv->mu);
            continue;
        }
        int64_t now = now_ms();
        if (b->due_ms > now) {
            struct timespec until = {.tv_sec = b->due_ms / 1000, .tv_nsec = (b->due_ms % 1000) * 1000000};
            pthread_cond_timedwait(&srv->cv, &srv->mu, &until);
            continue;
        }
        srv->batches = b->next;
        if (!srv->batches) srv->batches_tail = NULL;
        pthread_mutex_unlock(&srv->mu);
        pthread_mutex_lock(&srv->db_mu);
        chan_t st = chan_load(srv->db, b->table, b->pipe, b->channel);
        bool ok = st.found && st.client_seq == b->client_seq;
        free(st.committed);
        if (ok && exec_plain(&(sess_t){.db = srv->db}, "BEGIN") == 0) {
            sb_t q = {0};
            sb_add(&q, "INSERT INTO ");
            sb_quoted(&q, b->table, '"');
            sb_add(&q, " (");
            for (int k = 0; k < b->ncols; k++) {
                if (k) sb_add(&q, ",");
                sb_quoted(&q, b->cols[k], '"');
            }
            sb_add(&q, ") VALUES (");
            for (int k = 0; k < b->ncols; k++) sb_printf(&q, "%s?%d", k ? "," : "", k + 1);
            sb_add(&q, ")");
            sqlite3_stmt *ins = NULL;
            int rc = b->ncols && b->nrows ? sqlite3_prepare_v2(srv->db, q.p, -1, &ins, NULL) : SQLITE_OK;
            for (int r = 0; rc == SQLITE_OK && ins && r < b->nrows; r++) {
                bval_t *rv = b->vals + (size_t)r * (size_t)b->ncols;
                sqlite3_reset(ins);
                for (int k = 0; k < b->ncols; k++) bind_value(ins, k + 1, &rv[k]);
                if (sqlite3_step(ins) != SQLITE_DONE) rc = SQLITE_ERROR;
            }
            if (rc != SQLITE_OK) logf_(srv, "commit of %d rows to %s failed: %s", b->nrows, b->table, sqlite3_errmsg(srv->db));
            sqlite3_finalize(ins);
            free(q.p);
            sqlite3_stmt *u;
            if (rc == SQLITE_OK &&
                !sqlite3_prepare_v2(srv->db, "UPDATE __sfemu_channels SET committed_token = coalesce(?, committed_token),"
                                             " rows_inserted = rows_inserted + ? WHERE tbl=? AND pipe=? AND channel=?", -1, &u, NULL)) {
                if (b->offset_token) sqlite3_bind_text(u, 1, b->offset_token, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int(u, 2, b->nrows);
                sqlite3_bind_text(u, 3, b->table, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(u, 4, b->pipe, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(u, 5, b->channel, -1, SQLITE_TRANSIENT);
                if (sqlite3_step(u) != SQLITE_DONE) rc = SQLITE_ERROR;
                sqlite3_finalize(u);
            }
            exec_plain(&(sess_t){.db = srv->db}, rc == SQLITE_OK ? "COMMIT" : "ROLLBACK");
            if (rc == SQLITE_OK)
                logf_(srv, "committed %d rows to %s (channel %s, offset token %s)", b->nrows, b->table, b->channel,
                      b->offset_token ? b->offset_token : "unchanged");
        }
        pthread_mutex_unlock(&srv->db_mu);
        batch_free(b);
        pthread_mutex_lock(&srv->mu);
    }
    while (srv->batches) { /* never committed: lost, as when a server dies */
        struct batch *b = srv->batches;
        srv->batches = b->next;
        batch_free(b);
    }
    srv->batches_tail = NULL;
    while (srv->tokens) {
        struct scoped *t = srv->tokens;
        srv->tokens = t->next;
        free(t);
    }
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    server_t *srv = cls;
    if (!*con_cls) {
        conn_t *cc = calloc(1, sizeof(conn_t));
        if (!cc) return MHD_NO;
        *con_cls = cc;
        return MHD_YES;
    }
    conn_t *cc = *con_cls;
    if (*upload_size) {
        if (cc->body.len + *upload_size > MAX_BODY) cc->too_big = true;
        else sb_addn(&cc->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!strncmp(url, "/v2/streaming/", 14)) return streaming(srv, c, cc, url, method);
    if (!strcmp(url, "/oauth/token") && !strcmp(method, "POST")) return oauth_token(srv, c, cc);
    const char *prefix = "/api/v2/statements";
    size_t pl = strlen(prefix);
    bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    if (!strcmp(url, prefix) || !strcmp(url, "/api/v2/statements/")) {
        if (post) return post_statement(srv, c, cc);
        return reply(c, 405, "{\"code\":\"000405\",\"message\":\"Method not allowed.\"}");
    }
    if (!strncmp(url, prefix, pl) && url[pl] == '/') {
        char handle[128];
        const char *h = url + pl + 1, *slash = strchr(h, '/');
        snprintf(handle, sizeof(handle), "%.*s", (int)(slash ? slash - h : (long)strlen(h)), h);
        if (!slash && get) return get_statement(srv, c, handle);
        if (slash && !strcmp(slash, "/cancel") && post) return cancel_statement(srv, c, handle);
        if (!slash || !strcmp(slash, "/cancel"))
            return reply(c, 405, "{\"code\":\"000405\",\"message\":\"Method not allowed.\"}");
    }
    logf_(srv, "%s %.200s 404", method, url);
    return reply(c, 404, "{\"code\":\"000404\",\"message\":\"Not found.\"}");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    conn_t *cc = *con_cls;
    if (!cc) return;
    free(cc->body.p);
    free(cc);
    *con_cls = NULL;
}

/* ------------------------------------------------------------------- main */

static const char *usage_text =
    "usage:\n"
    "  snowflake-emulator serve --db F.sqlite --account ACCOUNT --user USER --public-key F.pem\n"
    "        [--user USER2 --public-key F2.pem]... [--port 0] [--port-file F]\n"
    "        [--fail-rate P --fail-status 429|503] [--seed S] [--latency-ms N] [--async-after-ms N]\n"
    "        [--drop-rate P [--drop-when before|after|random]] [--commit-delay-ms N]\n"
    "        [--faults-streaming on|off] [--log-file F]\n"
    "  snowflake-emulator query --db F.sqlite [--database D] [--schema S] \"SELECT ...\"\n"
    "\n"
    "serve: the Snowflake SQL API v2 (POST /api/v2/statements, GET /api/v2/statements/{handle},\n"
    "  POST /api/v2/statements/{handle}/cancel) on 127.0.0.1, an ephemeral port unless --port.\n"
    "  Prints its URL (http://127.0.0.1:PORT) on stdout once listening; SIGTERM/SIGINT exit 0.\n"
    "  Key-pair JWTs are checked against each --user's --public-key (PEM SubjectPublicKeyInfo):\n"
    "  RS256, iss ACCOUNT.USER.SHA256:<fingerprint>, sub ACCOUNT.USER, exp in the future and at\n"
    "  most an hour after iat; any failure is 401 code 390144.\n"
    "  --fail-rate P      answer a fraction P of statement requests with --fail-status (429 390505\n"
    "                     \"Too many requests.\", or 503), seeded by --seed (default 1)\n"
    "  --latency-ms N     each statement runs N ms after submission; a request waits at most\n"
    "                     --async-after-ms (default 45000, as Snowflake) then gets 202 + handle\n"
    "                     (async=true: at once); poll GET /api/v2/statements/{handle}\n"
    "  --drop-rate P      close a fraction P of statement connections without a response, before\n"
    "                     executing or after (--drop-when, default random: each drop picks one and\n"
    "                     the log says which)\n"
    "  --commit-delay-ms N  Snowpipe Streaming: appended rows are committed (and the channel's\n"
    "                     last_committed_offset_token advances) N ms later (default 1000)\n"
    "  --faults-streaming on  --fail-rate, --drop-rate and --latency-ms also hit the channel\n"
    "                     requests (open, append rows, bulk status); default off\n"
    "  Snowpipe Streaming REST: GET /v2/streaming/hostname, POST /oauth/token, PUT|DELETE\n"
    "  /v2/streaming/databases/D/schemas/S/pipes/<TABLE>-STREAMING/channels/C, POST\n"
    "  /v2/streaming/data/.../channels/C/rows (NDJSON), POST .../pipes/P:bulk-channel-status.\n"
    "query: runs Snowflake SQL on the same file and prints a header line and rows, tab-separated,\n"
    "  timestamps as stored (ISO-8601), NULL as NULL.\n"
    "SQL: CREATE [OR REPLACE] TABLE [IF NOT EXISTS], DROP TABLE, TRUNCATE, ALTER TABLE ADD COLUMN,\n"
    "  INSERT (VALUES / SELECT, ? and :N binds), UPDATE, DELETE, SELECT (WHERE, GROUP BY, joins,\n"
    "  aggregates, FROM VALUES), MERGE INTO ... USING ... WHEN [NOT] MATCHED, BEGIN/COMMIT/ROLLBACK,\n"
    "  USE, SHOW TABLES, DESCRIBE TABLE, PARSE_JSON, TO_VARIANT. Anything else: 422 \"unsupported in\n"
    "  the emulator\". Table DB.SCHEMA.T is stored as the SQLite table \"DB.SCHEMA.T\".\n"
    "  See docs/snowflake-emulator.md.\n";

static int load_key(const char *path, user_t *u) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "snowflake-emulator: %s: %s\n", path, strerror(errno));
        return -1;
    }
    u->key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!u->key || EVP_PKEY_base_id(u->key) != EVP_PKEY_RSA) {
        fprintf(stderr, "snowflake-emulator: %s: not an RSA public key in PEM (openssl rsa -pubout)\n", path);
        return -1;
    }
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(u->key, &der);
    if (len <= 0) return -1;
    unsigned char md[SHA256_DIGEST_LENGTH], b64[64];
    SHA256(der, (size_t)len, md);
    OPENSSL_free(der);
    EVP_EncodeBlock(b64, md, SHA256_DIGEST_LENGTH);
    snprintf(u->fp, sizeof(u->fp), "SHA256:%s", (char *)b64);
    return 0;
}

static bool parse_rate(const char *s, double *out) {
    char *end;
    double d = strtod(s, &end);
    if (*end || !(d >= 0 && d <= 1)) return false;
    *out = d;
    return true;
}

static bool parse_long(const char *s, long *out, long min, long max) {
    int64_t v;
    if (!parse_i64(s, &v) || v < min || v > max) return false;
    *out = (long)v;
    return true;
}

static int serve_main(int argc, char **argv) {
    cfg_t cfg = {.fail_status = 429, .seed = 1, .async_after_ms = 45000, .drop_when = DROP_RANDOM, .commit_delay_ms = 1000};
    int nkeys = 0, rc = 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (!v) goto bad;
        i++;
        if (!strcmp(a, "--port") && parse_long(v, &l, 0, 65535)) cfg.port = (int)l;
        else if (!strcmp(a, "--port-file")) cfg.port_file = v;
        else if (!strcmp(a, "--db")) cfg.db_path = v;
        else if (!strcmp(a, "--account")) cfg.account = v;
        else if (!strcmp(a, "--log-file")) cfg.log_file = v;
        else if (!strcmp(a, "--user") && cfg.nusers < MAX_USERS && strlen(v) < 256) {
            snprintf(cfg.users[cfg.nusers].name, 256, "%s", v);
            upcase(cfg.users[cfg.nusers++].name);
        } else if (!strcmp(a, "--public-key") && nkeys < cfg.nusers) {
            if (load_key(v, &cfg.users[nkeys++])) goto out;
        } else if (!strcmp(a, "--fail-rate") && parse_rate(v, &cfg.fail_rate)) {
        } else if (!strcmp(a, "--fail-status") && (!strcmp(v, "429") || !strcmp(v, "503"))) cfg.fail_status = atoi(v);
        else if (!strcmp(a, "--seed") && parse_long(v, &l, 0, LONG_MAX)) cfg.seed = (uint64_t)l;
        else if (!strcmp(a, "--latency-ms") && parse_long(v, &l, 0, 86400000)) cfg.latency_ms = l;
        else if (!strcmp(a, "--async-after-ms") && parse_long(v, &l, 0, 86400000)) cfg.async_after_ms = l;
        else if (!strcmp(a, "--commit-delay-ms") && parse_long(v, &l, 0, 86400000)) cfg.commit_delay_ms = l;
        else if (!strcmp(a, "--faults-streaming") && (!strcmp(v, "on") || !strcmp(v, "off")))
            cfg.faults_streaming = !strcmp(v, "on");
        else if (!strcmp(a, "--drop-rate") && parse_rate(v, &cfg.drop_rate)) {
        } else if (!strcmp(a, "--drop-when") && !strcmp(v, "before")) cfg.drop_when = DROP_BEFORE;
        else if (!strcmp(a, "--drop-when") && !strcmp(v, "after")) cfg.drop_when = DROP_AFTER;
        else if (!strcmp(a, "--drop-when") && !strcmp(v, "random")) cfg.drop_when = DROP_RANDOM;
        else {
            fprintf(stderr, "snowflake-emulator: bad option or value: %s %s\n", a, v);
            goto bad;
        }
    }
    if (!cfg.db_path || !cfg.account || !*cfg.account || cfg.nusers == 0 || nkeys != cfg.nusers) {
        fprintf(stderr, "snowflake-emulator: serve needs --db, --account and --user/--public-key pairs\n");
        goto bad;
    }
    server_t srv = {.cfg = &cfg, .rng = cfg.seed, .log = stderr};
    snprintf(srv.accounts[0], 256, "%s", cfg.account);
    upcase(srv.accounts[0]);
    snprintf(srv.accounts[1], 256, "%s", srv.accounts[0]);
    char *dot = strchr(srv.accounts[1], '.');
    if (dot) *dot = '\0';
    snprintf(srv.accounts[2], 256, "%s", srv.accounts[0]);
    for (char *p = srv.accounts[2]; *p; p++)
        if (*p == '.') *p = '-';
    if (cfg.log_file && !(srv.log = fopen(cfg.log_file, "a"))) {
        fprintf(stderr, "snowflake-emulator: %s: %s\n", cfg.log_file, strerror(errno));
        goto out;
    }
    char err[512];
    if (db_open(cfg.db_path, &srv.db, err, sizeof(err))) {
        fprintf(stderr, "snowflake-emulator: %s\n", err);
        sqlite3_close(srv.db);
        goto out_log;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&srv.mu, NULL);
    pthread_mutex_init(&srv.db_mu, NULL);
    pthread_mutex_init(&srv.log_mu, NULL);
    pthread_cond_init(&srv.cv, NULL);
    pthread_t exec_thread, commit_thread;
    if (pthread_create(&exec_thread, NULL, executor, &srv)) {
        fprintf(stderr, "snowflake-emulator: cannot start a thread\n");
        sqlite3_close(srv.db);
        goto out_log;
    }
    if (pthread_create(&commit_thread, NULL, committer, &srv)) {
        fprintf(stderr, "snowflake-emulator: cannot start a thread\n");
        pthread_mutex_lock(&srv.mu);
        srv.stopping = true;
        pthread_cond_broadcast(&srv.cv);
        pthread_mutex_unlock(&srv.mu);
        pthread_join(exec_thread, NULL);
        sqlite3_close(srv.db);
        goto out_log;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ERROR_LOG,
        (uint16_t)cfg.port, NULL, NULL, handler, &srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)300,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "snowflake-emulator: cannot listen on 127.0.0.1:%d\n", cfg.port);
    } else {
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        char url[64];
        snprintf(url, sizeof(url), "http://127.0.0.1:%u", info ? (unsigned)info->port : (unsigned)cfg.port);
        snprintf(srv.hostport, sizeof(srv.hostport), "127.0.0.1:%u", info ? (unsigned)info->port : (unsigned)cfg.port);
        if (cfg.port_file) {
            char tmp[4096];
            snprintf(tmp, sizeof(tmp), "%s.tmp", cfg.port_file);
            FILE *f = fopen(tmp, "w");
            if (!f || fprintf(f, "%s\n", url) < 0 || fclose(f) || rename(tmp, cfg.port_file)) {
                fprintf(stderr, "snowflake-emulator: %s: %s\n", cfg.port_file, strerror(errno));
            }
        }
        printf("%s\n", url);
        fflush(stdout);
        logf_(&srv, "listening on %s, account %s, db %s", url, srv.accounts[0], cfg.db_path);
        /* Appends not committed before this start were lost with the last
         * process: invalidate every channel's continuation tokens, as a failed
         * server does, so a client reopens and resends from its committed
         * offset token instead of appending past a hole. */
        pthread_mutex_lock(&srv.db_mu);
        int bumped = sqlite3_exec(srv.db, "UPDATE __sfemu_channels SET client_seq = client_seq + 1", NULL, NULL,
                                  NULL) == SQLITE_OK ? sqlite3_changes(srv.db) : 0;
        pthread_mutex_unlock(&srv.db_mu);
        if (bumped > 0)
            logf_(&srv, "%d channel(s) invalidated: appends not committed before the restart are lost, reopen them",
                  bumped);
        int sig = 0;
        sigwait(&set, &sig);
        logf_(&srv, "signal %d: stopping", sig);
        rc = 0;
    }
    pthread_mutex_lock(&srv.mu);
    srv.stopping = true;
    pthread_cond_broadcast(&srv.cv);
    pthread_mutex_unlock(&srv.mu);
    if (d) MHD_stop_daemon(d);
    pthread_join(exec_thread, NULL);
    pthread_join(commit_thread, NULL);
    sqlite3_close(srv.db);
    pthread_mutex_destroy(&srv.mu);
    pthread_mutex_destroy(&srv.db_mu);
    pthread_mutex_destroy(&srv.log_mu);
    pthread_cond_destroy(&srv.cv);
out_log:
    if (srv.log != stderr) fclose(srv.log);
out:
    for (int k = 0; k < cfg.nusers; k++) EVP_PKEY_free(cfg.users[k].key);
    return rc;
bad:
    fputs(usage_text, stderr);
    rc = 2;
    goto out;
}

static void print_field(const char *s) {
    for (; *s; s++) {
        if (*s == '\t') fputs("\\t", stdout);
        else if (*s == '\n') fputs("\\n", stdout);
        else putchar(*s);
    }
}

static int query_main(int argc, char **argv) {
    const char *dbp = NULL, *sql = NULL, *database = "", *schema = "";
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc) dbp = argv[++i];
        else if (!strcmp(argv[i], "--database") && i + 1 < argc) database = argv[++i];
        else if (!strcmp(argv[i], "--schema") && i + 1 < argc) schema = argv[++i];
        else if (!strcmp(argv[i], "--help")) return fputs(usage_text, stdout), 0;
        else if (!sql && argv[i][0] != '-') sql = argv[i];
        else return fputs(usage_text, stderr), 2;
    }
    if (!dbp || !sql) return fputs(usage_text, stderr), 2;
    sqlite3 *db = NULL;
    char err[512];
    if (db_open(dbp, &db, err, sizeof(err))) {
        fprintf(stderr, "snowflake-emulator: %s\n", err);
        sqlite3_close(db);
        return 1;
    }
    sess_t s = {.db = db, .sql = sql};
    ident_from_body(database, s.database, sizeof(s.database));
    ident_from_body(schema, s.schema, sizeof(s.schema));
    sf_err_t e = {0};
    toks_t ts = {0};
    binds_t b = {0};
    int nparams, rc = 0;
    result_t r = {.readable = true};
    if (tokenize(sql, &ts, &nparams, &e)) rc = 1;
    else if (nparams > 0) {
        seterr(&e, 422, "002049", "42601", "query takes no bindings: Bind variable ? not set.");
        rc = 1;
    }
    toks_push(&ts, T_EOF, "", 0, (int)strlen(sql));
    for (int i = 0; !rc && i < ts.n;) {
        int j = i;
        while (ts.t[j].kind != T_SEMI && ts.t[j].kind != T_EOF) j++;
        bool last = ts.t[j].kind == T_EOF;
        ts.t[j].kind = T_EOF;
        if (j > i) {
            tr_t tr = {.s = &s, .t = ts.t, .end = j, .op = "statement", .e = &e};
            if (exec_statement(&tr, i, &b, &r)) {
                rc = 1;
                break;
            }
            for (int c = 0; c < r.ncols; c++) printf("%s%s", c ? "\t" : "", r.cols[c].name);
            putchar('\n');
            size_t k;
            json_t *row;
            json_array_foreach(r.data, k, row) {
                for (int c = 0; c < r.ncols; c++) {
                    json_t *v = json_array_get(row, (size_t)c);
                    if (c) putchar('\t');
                    print_field(json_is_string(v) ? json_string_value(v) : "NULL");
                }
                putchar('\n');
            }
            result_reset(&r);
        }
        if (last) break;
        i = j + 1;
    }
    if (rc) fprintf(stderr, "snowflake-emulator: %s %s: %s\n", e.code, e.state, e.msg);
    if (s.in_txn) exec_plain(&s, "COMMIT");
    result_reset(&r);
    toks_free(&ts);
    sqlite3_close(db);
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "serve")) return serve_main(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "query")) return query_main(argc, argv);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return fputs(usage_text, stdout), 0;
    fputs(usage_text, stderr);
    return 2;
}
