/*
 * snowflake_sink.c - "sink-snowflake": Kafka records into Snowflake tables
 * through the SQL API v2 with key-pair JWT authentication, exactly once.
 *
 * How it stays exactly once (docs/snowflake.md has the long form):
 *
 *  - every row carries KAFKA_TOPIC, KAFKA_PARTITION and KAFKA_OFFSET;
 *  - open() asks the table for MAX(KAFKA_OFFSET) per partition and resumes
 *    the consumer right after it, so a crash at any instant neither loses
 *    nor repeats a row;
 *  - put() only buffers (a flush happens when buffer.count.records,
 *    buffer.size.bytes or buffer.flush.time is reached); records below a
 *    partition's position are duplicates and dropped;
 *  - a flush freezes the buffer into INSERT statements (each within 16,384
 *    bound values), each with its own requestId (a UUID) kept until
 *    Snowflake answered 200: a retry of a statement whose answer was lost
 *    (same requestId, retry=true) is not run twice;
 *  - pre_commit() flushes and reports per partition only the offsets whose
 *    rows Snowflake committed.
 *  - upsert mode (snowflake.upsert.keys) is idempotent by itself: open()
 *    keeps the group's committed offset and put() takes every row, so a
 *    windowing transform can replay from the offset it committed.
 *
 * Files: sf_core.c (pure: names, key, JWT, layout, SQL text), sf_api.c (the
 * HTTP client), this file (the task).
 */
#include <sluice/plugin.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "sf_api.h"
#include "sf_core.h"
#include "sf_stream.h"

static const sluice_host_api_t *host;

/* ------------------------------------------------------------------------ */
/* State                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct sf_part {
    char *topic;
    int32_t partition;
    int64_t next;      /* offset after the last record taken (buffered, DLQ'd) */
    int64_t committed; /* offset after the last row durable in Snowflake; -1 none */
    size_t pending;    /* rows buffered, not yet durable */
    int assigned;
    sf_channel_t *ch;  /* SNOWPIPE_STREAMING: the partition's channel */
} sf_part_t;

typedef struct sf_row {
    sf_part_t *part;
    int64_t offset;
    char **vals; /* ncols strings or NULL */
    size_t bytes;
} sf_row_t;

/* One statement of a frozen flush: rows [start, end) of the table buffer. */
typedef struct sf_stmt {
    size_t start, end;
    char request_id[37]; /* kept until Snowflake answered 200 */
} sf_stmt_t;

typedef struct sf_table {
    char *name;
    int created;
    sf_row_t *rows;
    size_t nrows, cap;
    size_t bytes;
    int64_t first_ms; /* when the oldest buffered row came, 0 when empty */
    sf_stmt_t *stmts; /* the frozen flush in progress */
    size_t nstmts, done;
    size_t frozen; /* rows [0, frozen) belong to stmts */
} sf_table_t;

typedef struct sf_sink {
    sf_api_t *api;
    sf_stream_t *stream; /* SNOWPIPE_STREAMING, else NULL */
    EVP_PKEY *key;
    sf_layout_t layout;
    avro_schema_t schema; /* host-owned, the layout's; NULL: RECORD_CONTENT */
    sf_topic_map_t *map;
    size_t nmap;
    int *keys; /* upsert key columns */
    size_t nkeys;
    int64_t max_records, max_bytes, flush_ms;
    sf_table_t **tables;
    size_t ntables;
    sf_part_t **parts;
    size_t nparts;
    int failed; /* a fatal error happened outside put(): reported by the next put() */
    char fail_msg[1024];
    sluice_timer_t *timer;
    sluice_metric_t *m_rows, *m_statements, *m_retries, *m_reopens;
    uint64_t retries_seen;
} sf_sink_t;

static sluice_err_t fail(sluice_task_t *task, sluice_err_t rc, const char *fmt, ...)
    SLUICE_PRINTF(3, 4);
static sluice_err_t fail(sluice_task_t *task, sluice_err_t rc, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    host->log(task, rc == SLUICE_ERR_RETRIABLE ? SLUICE_LOG_WARN : SLUICE_LOG_ERROR, "%s", msg);
    host->set_error(task, "%s", msg);
    return rc;
}

static void row_free_vals(sf_row_t *r, size_t ncols) {
    if (!r->vals) return;
    for (size_t i = 0; i < ncols; i++) free(r->vals[i]);
    free(r->vals);
    r->vals = NULL;
}

static void table_free(sf_table_t *t, size_t ncols) {
    if (!t) return;
    for (size_t i = 0; i < t->nrows; i++) row_free_vals(&t->rows[i], ncols);
    free(t->rows);
    free(t->stmts);
    free(t->name);
    free(t);
}

static void sink_free(sf_sink_t *s) {
    if (!s) return;
    for (size_t i = 0; i < s->ntables; i++) table_free(s->tables[i], s->layout.ncols);
    free(s->tables);
    for (size_t i = 0; i < s->nparts; i++) {
        sf_channel_free(s->parts[i]->ch);
        free(s->parts[i]->topic);
        free(s->parts[i]);
    }
    free(s->parts);
    sf_stream_free(s->stream);
    sf_api_free(s->api);
    EVP_PKEY_free(s->key);
    sf_layout_free(&s->layout);
    sf_topic2table_free(s->map, s->nmap);
    free(s->keys);
    free(s);
}

static sf_part_t *part_find(sf_sink_t *s, const char *topic, int32_t partition) {
    for (size_t i = 0; i < s->nparts; i++)
        if (s->parts[i]->partition == partition && strcmp(s->parts[i]->topic, topic) == 0)
            return s->parts[i];
    return NULL;
}

static sf_part_t *part_get(sf_sink_t *s, const char *topic, int32_t partition) {
    sf_part_t *p = part_find(s, topic, partition);
    if (p) return p;
    sf_part_t **g = realloc(s->parts, (s->nparts + 1) * sizeof(*g));
    if (!g) return NULL;
    s->parts = g;
    if (!(p = calloc(1, sizeof(*p))) || !(p->topic = strdup(topic))) {
        free(p);
        return NULL;
    }
    p->partition = partition;
    p->next = SLUICE_OFFSET_UNSET;
    p->committed = SLUICE_OFFSET_UNSET;
    s->parts[s->nparts++] = p;
    return p;
}

static sf_table_t *table_get(sf_sink_t *s, const char *name) {
    for (size_t i = 0; i < s->ntables; i++)
        if (strcmp(s->tables[i]->name, name) == 0) return s->tables[i];
    sf_table_t **g = realloc(s->tables, (s->ntables + 1) * sizeof(*g));
    if (!g) return NULL;
    s->tables = g;
    sf_table_t *t = calloc(1, sizeof(*t));
    if (!t || !(t->name = strdup(name))) {
        free(t);
        return NULL;
    }
    s->tables[s->ntables++] = t;
    return t;
}

static sf_table_t *table_for_topic(sf_sink_t *s, const char *topic) {
    char *name = sf_table_for_topic(s->map, s->nmap, topic);
    if (!name) return NULL;
    sf_table_t *t = table_get(s, name);
    free(name);
    return t;
}

/* ------------------------------------------------------------------------ */
/* SQL helpers                                                               */
/* ------------------------------------------------------------------------ */

static sluice_err_t exec_simple(sf_sink_t *s, sluice_task_t *task, const char *stmt,
                                json_t *bindings, json_t **result) {
    char rid[37], err[1024];
    if (sf_uuid4(rid) != 0) return fail(task, SLUICE_ERR_RETRIABLE, "no random bytes for a UUID");
    sluice_err_t rc = sf_api_exec(s->api, stmt, bindings, rid, result, err, sizeof(err));
    if (rc != SLUICE_OK) return fail(task, rc, "%s", err);
    return SLUICE_OK;
}

static sluice_err_t ensure_table(sf_sink_t *s, sluice_task_t *task, sf_table_t *t) {
    if (t->created) return SLUICE_OK;
    char *sql = sf_sql_create_table(t->name, &s->layout);
    if (!sql) return fail(task, SLUICE_ERR_RETRIABLE, "out of memory");
    sluice_err_t rc = exec_simple(s, task, sql, NULL, NULL);
    free(sql);
    if (rc == SLUICE_OK) {
        t->created = 1;
        host->log(task, SLUICE_LOG_INFO, "table %s ready (CREATE TABLE IF NOT EXISTS)", t->name);
    }
    return rc;
}

/* MAX(KAFKA_OFFSET) of topic[partition] in table t: *max = -1 when none. */
static sluice_err_t query_max(sf_sink_t *s, sluice_task_t *task, sf_table_t *t,
                              const char *topic, int32_t partition, int64_t *max) {
    char sql[600];
    snprintf(sql, sizeof(sql),
             "SELECT MAX(KAFKA_OFFSET) FROM %s WHERE KAFKA_TOPIC = ? AND KAFKA_PARTITION = ?",
             t->name);
    char pbuf[16];
    snprintf(pbuf, sizeof(pbuf), "%" PRId32, partition);
    json_t *b = json_pack("{s:{s:s,s:s}, s:{s:s,s:s}}", "1", "type", "TEXT", "value", topic, "2",
                          "type", "FIXED", "value", pbuf);
    if (!b) return fail(task, SLUICE_ERR_RETRIABLE, "out of memory");
    json_t *res = NULL;
    sluice_err_t rc = exec_simple(s, task, sql, b, &res);
    json_decref(b);
    if (rc != SLUICE_OK) return rc;
    json_t *cell = json_array_get(json_array_get(json_object_get(res, "data"), 0), 0);
    *max = -1;
    if (cell && !json_is_null(cell)) {
        const char *v = json_string_value(cell);
        char *end = NULL;
        long long m = v ? strtoll(v, &end, 10) : 0;
        if (json_is_integer(cell)) {
            m = json_integer_value(cell);
        } else if (!v || end == v || (*end && *end != '.')) {
            json_decref(res);
            return fail(task, SLUICE_ERR_FATAL, "%s: MAX(KAFKA_OFFSET) answered a non-number",
                        t->name);
        }
        *max = m;
    }
    json_decref(res);
    return SLUICE_OK;
}

/* ------------------------------------------------------------------------ */
/* Flushing                                                                  */
/* ------------------------------------------------------------------------ */

/* Rows [0, n) are durable (or dropped): free them and slide the rest down. */
static void table_consume(sf_sink_t *s, sf_table_t *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        t->bytes -= t->rows[i].bytes;
        row_free_vals(&t->rows[i], s->layout.ncols);
    }
    memmove(t->rows, t->rows + n, (t->nrows - n) * sizeof(*t->rows));
    t->nrows -= n;
    if (t->nrows == 0) t->first_ms = 0;
}

/* Cuts the buffered rows into statements, each with a fresh requestId. */
static int table_freeze(sf_sink_t *s, sf_table_t *t) {
    size_t per = sf_rows_per_statement(&s->layout);
    size_t n = (t->nrows + per - 1) / per;
    sf_stmt_t *st = calloc(n ? n : 1, sizeof(*st));
    if (!st) return -1;
    for (size_t i = 0; i < n; i++) {
        st[i].start = i * per;
        st[i].end = (i + 1) * per < t->nrows ? (i + 1) * per : t->nrows;
        if (sf_uuid4(st[i].request_id) != 0) {
            free(st);
            return -1;
        }
    }
    free(t->stmts);
    t->stmts = st;
    t->nstmts = n;
    t->done = 0;
    t->frozen = t->nrows;
    return 0;
}

static void table_unfreeze(sf_table_t *t) {
    free(t->stmts);
    t->stmts = NULL;
    t->nstmts = t->done = t->frozen = 0;
}

/* Upsert: within one statement a key must appear once (MERGE is otherwise
 * nondeterministic): the last row of each key wins. Fills keep[] with 1 for
 * the rows to send. */
static void upsert_pick(sf_sink_t *s, sf_table_t *t, size_t a, size_t b, char *keep) {
    for (size_t i = a; i < b; i++) keep[i - a] = 1;
    for (size_t i = a; i < b; i++) {
        for (size_t j = i + 1; j < b; j++) {
            int same = 1;
            for (size_t k = 0; k < s->nkeys && same; k++) {
                const char *x = t->rows[i].vals[s->keys[k]], *y = t->rows[j].vals[s->keys[k]];
                same = (!x && !y) || (x && y && strcmp(x, y) == 0);
            }
            if (same) {
                keep[i - a] = 0;
                break;
            }
        }
    }
}

/* Sends the frozen statements not done yet, in order. */
static sluice_err_t table_send(sf_sink_t *s, sluice_task_t *task, sf_table_t *t) {
    sluice_err_t rc = ensure_table(s, task, t);
    if (rc != SLUICE_OK) return rc;
    while (t->done < t->nstmts) {
        sf_stmt_t *st = &t->stmts[t->done];
        size_t n = st->end - st->start, sent_rows = n;
        char *keep = NULL;
        if (s->nkeys) {
            if (!(keep = malloc(n))) return fail(task, SLUICE_ERR_RETRIABLE, "out of memory");
            upsert_pick(s, t, st->start, st->end, keep);
            sent_rows = 0;
            for (size_t i = 0; i < n; i++) sent_rows += keep[i] != 0;
        }
        json_t *b = json_object();
        size_t next = 1;
        int bad = !b;
        for (size_t i = st->start; i < st->end && !bad; i++)
            if (!keep || keep[i - st->start])
                bad = sf_bind_row(b, &next, &s->layout, t->rows[i].vals) != 0;
        char *sql = NULL;
        if (!bad)
            sql = s->nkeys ? sf_sql_merge(t->name, &s->layout, sent_rows, s->keys, s->nkeys)
                           : sf_sql_insert(t->name, &s->layout, sent_rows);
        free(keep);
        if (bad || !sql) {
            json_decref(b);
            free(sql);
            return fail(task, SLUICE_ERR_RETRIABLE, "out of memory building an INSERT");
        }
        char err[1024];
        uint64_t retries_before = sf_api_retries(s->api);
        rc = sf_api_exec(s->api, sql, b, st->request_id, NULL, err, sizeof(err));
        free(sql);
        json_decref(b);
        uint64_t r = sf_api_retries(s->api);
        if (r > s->retries_seen) {
            if (s->m_retries) host->metric_add(s->m_retries, (double)(r - s->retries_seen));
            s->retries_seen = r;
        }
        if (rc != SLUICE_OK)
            return fail(task, rc, "%s: writing %zu row(s) failed: %s", t->name, n, err);
        /* committed: these rows' offsets are durable */
        for (size_t i = st->start; i < st->end; i++) {
            sf_part_t *p = t->rows[i].part;
            int64_t o = t->rows[i].offset + 1;
            if (p->committed < o) p->committed = o;
            if (p->pending) p->pending--;
        }
        if (r > retries_before)
            host->log(task, SLUICE_LOG_INFO,
                      "%s: %zu row(s) committed after %" PRIu64 " retried request(s)", t->name, n,
                      r - retries_before);
        if (s->m_rows) host->metric_add(s->m_rows, (double)n);
        if (s->m_statements) host->metric_add(s->m_statements, 1);
        t->done++;
    }
    size_t frozen = t->frozen;
    table_unfreeze(t);
    table_consume(s, t, frozen);
    return SLUICE_OK;
}

/* Gives up a frozen flush: the rows of its statements that committed are
 * consumed, the others go back to the buffer (a later flush sends them
 * under new requestIds, after a resync of the positions). */
static void table_abandon(sf_sink_t *s, sf_table_t *t) {
    size_t committed = t->done ? t->stmts[t->done - 1].end : 0;
    table_unfreeze(t);
    table_consume(s, t, committed);
}

static sluice_err_t table_flush(sf_sink_t *s, sluice_task_t *task, sf_table_t *t) {
    if (!t->stmts) {
        if (t->nrows == 0) return SLUICE_OK;
        if (table_freeze(s, t) != 0) return fail(task, SLUICE_ERR_RETRIABLE, "out of memory");
    }
    return table_send(s, task, t);
}

static int table_due(const sf_sink_t *s, const sf_table_t *t, int64_t now) {
    if (t->stmts) return 1; /* an unfinished flush */
    if (!t->nrows) return 0;
    return (int64_t)t->nrows >= s->max_records || (int64_t)t->bytes >= s->max_bytes ||
           (s->flush_ms > 0 && t->first_ms && now - t->first_ms >= s->flush_ms);
}

/* Flushes the tables that are due (all: every table with rows). */
static sluice_err_t flush_tables(sf_sink_t *s, sluice_task_t *task, int all) {
    int64_t now = host->now_ms();
    for (size_t i = 0; i < s->ntables; i++) {
        sf_table_t *t = s->tables[i];
        if (!(all ? (t->nrows || t->stmts) : table_due(s, t, now))) continue;
        sluice_err_t rc = table_flush(s, task, t);
        if (rc == SLUICE_ERR_FATAL) {
            s->failed = 1;
            snprintf(s->fail_msg, sizeof(s->fail_msg), "%s", "an earlier write failed");
        }
        if (rc != SLUICE_OK) return rc;
    }
    return SLUICE_OK;
}

/* ------------------------------------------------------------------------ */
/* Records -> rows                                                           */
/* ------------------------------------------------------------------------ */

static char *fmt_i64(int64_t v) {
    char b[32];
    snprintf(b, sizeof(b), "%" PRId64, v);
    return strdup(b);
}

static char *hex(const void *p, size_t n) {
    static const char d[] = "0123456789ABCDEF";
    char *r = malloc(n * 2 + 1);
    if (!r) return NULL;
    const unsigned char *u = p;
    for (size_t i = 0; i < n; i++) {
        r[2 * i] = d[u[i] >> 4];
        r[2 * i + 1] = d[u[i] & 15];
    }
    r[2 * n] = '\0';
    return r;
}

/* The text of a value bound to a column of type t. NULL value (*out NULL)
 * for an Avro null. -1 with a reason when it cannot be converted, -2 out of
 * memory. */
static int convert(const sf_column_t *col, avro_value_t *v, char **out, char *why, size_t wl) {
    *out = NULL;
    avro_value_t branch;
    if (avro_value_get_type(v) == AVRO_UNION) {
        avro_schema_t us = avro_value_get_schema(v);
        int disc;
        if (avro_value_get_discriminant(v, &disc) != 0 ||
            avro_value_get_current_branch(v, &branch) != 0) {
            snprintf(why, wl, "column %s: unreadable union", col->name);
            return -1;
        }
        if (avro_value_get_type(&branch) == AVRO_NULL) return 0;
        /* a ["null", T] union maps to T's column; any other union is JSON */
        if (col->type != SF_VARIANT || avro_schema_union_size(us) == 2) v = &branch;
    }
    avro_type_t ty = avro_value_get_type(v);
    if (col->type == SF_VARIANT) {
        char *json = NULL;
        if (avro_value_to_json(v, 1, &json) != 0 || !json) {
            free(json);
            snprintf(why, wl, "column %s: the value cannot be written as JSON: %s", col->name,
                     avro_strerror());
            return -1;
        }
        *out = json;
        return 0;
    }
    switch (ty) {
    case AVRO_STRING: {
        const char *p;
        size_t n;
        if (avro_value_get_string(v, &p, &n) != 0) break;
        if (n) n--; /* the size counts the NUL */
        if (!sf_utf8_valid(p, n) || memchr(p, '\0', n)) {
            snprintf(why, wl, "column %s: the string is not valid UTF-8", col->name);
            return -1;
        }
        return (*out = strndup(p, n)) ? 0 : -2;
    }
    case AVRO_ENUM: {
        int e;
        if (avro_value_get_enum(v, &e) != 0) break;
        const char *sym = avro_schema_enum_get(avro_value_get_schema(v), e);
        if (!sym) break;
        return (*out = strdup(sym)) ? 0 : -2;
    }
    case AVRO_INT32: {
        int32_t i;
        if (avro_value_get_int(v, &i) != 0) break;
        if (col->type == SF_DATE) /* days -> epoch ms */
            return (*out = fmt_i64((int64_t)i * 86400000)) ? 0 : -2;
        return (*out = fmt_i64(i)) ? 0 : -2;
    }
    case AVRO_INT64: {
        int64_t l;
        if (avro_value_get_long(v, &l) != 0) break;
        if (col->type == SF_TIMESTAMP_NTZ) {
            int64_t k = col->ns_per_unit;
            if (k > 0 && (l > INT64_MAX / k || l < INT64_MIN / k)) {
                snprintf(why, wl, "column %s: timestamp %" PRId64 " is out of range", col->name,
                         l);
                return -1;
            }
            l *= k > 0 ? k : 1;
        }
        return (*out = fmt_i64(l)) ? 0 : -2;
    }
    case AVRO_FLOAT:
    case AVRO_DOUBLE: {
        double d;
        if (ty == AVRO_FLOAT) {
            float f;
            if (avro_value_get_float(v, &f) != 0) break;
            d = f;
        } else if (avro_value_get_double(v, &d) != 0) {
            break;
        }
        char b[40];
        if (isnan(d))
            snprintf(b, sizeof(b), "NaN");
        else if (isinf(d))
            snprintf(b, sizeof(b), d > 0 ? "inf" : "-inf");
        else
            snprintf(b, sizeof(b), "%.17g", d);
        return (*out = strdup(b)) ? 0 : -2;
    }
    case AVRO_BOOLEAN: {
        int x;
        if (avro_value_get_boolean(v, &x) != 0) break;
        return (*out = strdup(x ? "true" : "false")) ? 0 : -2;
    }
    case AVRO_BYTES:
    case AVRO_FIXED: {
        const void *p;
        size_t n;
        if ((ty == AVRO_BYTES ? avro_value_get_bytes(v, &p, &n)
                              : avro_value_get_fixed(v, &p, &n)) != 0)
            break;
        return (*out = hex(p, n)) ? 0 : -2;
    }
    case AVRO_NULL: return 0;
    default: break;
    }
    snprintf(why, wl, "column %s: a %s value does not fit a %s column", col->name,
             avro_schema_type_name(avro_value_get_schema(v)), sf_coltype_sql(col->type));
    return -1;
}

/* Bytes as a JSON document for RECORD_CONTENT: JSON as it is, else a JSON
 * string (text) or {"bytes_hex": ...} (not UTF-8). */
static char *content_json(const void *p, size_t n) {
    if (n && (((const char *)p)[0] == '{' || ((const char *)p)[0] == '[')) {
        json_t *j = json_loadb(p, n, JSON_DECODE_ANY, NULL);
        if (j) {
            char *r = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
            json_decref(j);
            return r;
        }
    }
    json_t *j;
    if (sf_utf8_valid(p, n) && !memchr(p, '\0', n)) {
        j = json_stringn(p, n);
    } else {
        char *h = hex(p, n);
        j = h ? json_pack("{s:s}", "bytes_hex", h) : NULL;
        free(h);
    }
    char *r = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    return r;
}

/* Builds the row of a record. 0, -1 (bad record, why set), -2 (out of memory). */
static int make_row(sf_sink_t *s, sluice_record_t *rec, const char *topic, int32_t partition,
                    int64_t offset, char ***vals_out, size_t *bytes, char *why, size_t wl) {
    const sf_layout_t *l = &s->layout;
    char **vals = calloc(l->ncols, sizeof(char *));
    if (!vals) return -2;
    avro_schema_t vs = NULL;
    avro_value_t *value = host->record_value_avro(rec, &vs);
    int rc = 0;
    if (s->schema) {
        if (!value) {
            snprintf(why, wl, "the value is not an Avro record (expected the schema of "
                              "value.converter.schema)");
            rc = -1;
        } else if (vs != s->schema && !avro_schema_equal(vs, s->schema)) {
            snprintf(why, wl, "the value's Avro schema differs from snowflake.record.schema "
                              "(default: value.converter.schema)");
            rc = -1;
        }
    }
    for (size_t c = 0; c < l->ncols && rc == 0; c++) {
        const sf_column_t *col = &l->cols[c];
        switch (col->source) {
        case SF_SRC_FIELD: {
            avro_value_t f;
            if (avro_value_get_by_index(value, (size_t)col->field, &f, NULL) != 0) {
                snprintf(why, wl, "column %s: the field is missing", col->name);
                rc = -1;
            } else {
                rc = convert(col, &f, &vals[c], why, wl);
            }
            break;
        }
        case SF_SRC_CONTENT:
            if (value) {
                if (avro_value_to_json(value, 1, &vals[c]) != 0 || !vals[c]) {
                    snprintf(why, wl, "the value cannot be written as JSON: %s",
                             avro_strerror());
                    rc = -1;
                }
            } else {
                size_t n = 0;
                const void *p = host->record_value_bytes(rec, &n);
                if (p && !(vals[c] = content_json(p, n))) rc = -2;
            }
            break;
        case SF_SRC_TOPIC: rc = (vals[c] = strdup(topic)) ? 0 : -2; break;
        case SF_SRC_PARTITION: rc = (vals[c] = fmt_i64(partition)) ? 0 : -2; break;
        case SF_SRC_OFFSET: rc = (vals[c] = fmt_i64(offset)) ? 0 : -2; break;
        case SF_SRC_KEY: {
            size_t n = 0;
            const void *k = host->record_key(rec, &n);
            if (!k) break;
            if (sf_utf8_valid(k, n) && !memchr(k, '\0', n))
                rc = (vals[c] = strndup(k, n)) ? 0 : -2;
            else
                rc = (vals[c] = hex(k, n)) ? 0 : -2; /* binary keys as hex */
            break;
        }
        case SF_SRC_TIMESTAMP: {
            int64_t ts = host->record_timestamp(rec);
            if (ts >= 0 && ts <= INT64_MAX / 1000000)
                rc = (vals[c] = fmt_i64(ts * 1000000)) ? 0 : -2;
            break;
        }
        }
    }
    size_t total = 0;
    for (size_t c = 0; c < l->ncols; c++) total += (vals[c] ? strlen(vals[c]) : 0) + 24;
    if (rc != 0) {
        for (size_t c = 0; c < l->ncols; c++) free(vals[c]);
        free(vals);
        return rc;
    }
    *vals_out = vals;
    *bytes = total;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Snowpipe Streaming                                                        */
/* ------------------------------------------------------------------------ */

/* Opens p's channel "<connector>_<topic>_<partition>" on the default pipe of
 * its table (created if missing); *resume gets the offset after the
 * channel's committed offset token (-1: it has none). */
static sluice_err_t stream_attach(sf_sink_t *s, sluice_task_t *task, sf_part_t *p,
                                  int64_t *resume) {
    *resume = -1;
    sf_table_t *t = table_for_topic(s, p->topic);
    if (!t) return fail(task, SLUICE_ERR_FATAL, "out of memory");
    sluice_err_t rc = ensure_table(s, task, t);
    if (rc != SLUICE_OK) return rc;
    if (!p->ch) {
        const char *conn = SLUICE_HOST_HAS(host, task_connector) ? host->task_connector(task) : NULL;
        char name[1024];
        snprintf(name, sizeof(name), "%s_%s_%" PRId32, conn && *conn ? conn : "sluice", p->topic,
                 p->partition);
        if (!(p->ch = sf_channel_new(t->name, name)))
            return fail(task, SLUICE_ERR_RETRIABLE, "out of memory");
    }
    char err[1024];
    rc = sf_channel_open(s->stream, p->ch, resume, err, sizeof(err));
    if (rc != SLUICE_OK) return fail(task, rc, "%s", err);
    return SLUICE_OK;
}

static void stream_metrics(sf_sink_t *s, uint64_t appends0, uint64_t reopens0) {
    uint64_t a = sf_stream_appends(s->stream), r = sf_stream_reopens(s->stream);
    if (a > appends0 && s->m_statements) host->metric_add(s->m_statements, (double)(a - appends0));
    if (r > reopens0 && s->m_reopens) host->metric_add(s->m_reopens, (double)(r - reopens0));
}

/* 1 when ch's queued rows are due for an append (count, bytes, age). */
static int stream_due(const sf_sink_t *s, const sf_channel_t *ch, int64_t now) {
    int64_t since = sf_channel_unsent_since(ch);
    return (int64_t)sf_channel_unsent_rows(ch) >= s->max_records ||
           (int64_t)sf_channel_unsent_bytes(ch) >= s->max_bytes ||
           (s->flush_ms > 0 && since && now - since >= s->flush_ms);
}

static sluice_err_t stream_flush_one(sf_sink_t *s, sluice_task_t *task, sf_channel_t *ch) {
    char err[1024];
    uint64_t a0 = sf_stream_appends(s->stream), r0 = sf_stream_reopens(s->stream);
    sluice_err_t rc = sf_channel_flush(s->stream, ch, err, sizeof(err));
    stream_metrics(s, a0, r0);
    if (rc == SLUICE_OK) return SLUICE_OK;
    if (rc == SLUICE_ERR_FATAL) {
        s->failed = 1;
        snprintf(s->fail_msg, sizeof(s->fail_msg), "%s", err);
    }
    return fail(task, rc, "%s", err);
}

/* Appends the queued rows of the channels that are due (all: every one). */
static sluice_err_t stream_flush(sf_sink_t *s, sluice_task_t *task, int all) {
    int64_t now = host->now_ms();
    for (size_t i = 0; i < s->nparts; i++) {
        sf_channel_t *ch = s->parts[i]->ch;
        if (!ch || !(all || stream_due(s, ch, now))) continue;
        sluice_err_t rc = stream_flush_one(s, task, ch);
        if (rc != SLUICE_OK) return rc;
    }
    return SLUICE_OK;
}

/* Asks Snowflake which offset tokens are committed (bulk channel status)
 * and carries that into each partition's committed/pending counts. */
static sluice_err_t stream_refresh(sf_sink_t *s, sluice_task_t *task) {
    sf_channel_t **chs = calloc(s->nparts ? s->nparts : 1, sizeof(*chs));
    if (!chs) return fail(task, SLUICE_ERR_RETRIABLE, "out of memory");
    size_t n = 0, committed = 0;
    for (size_t i = 0; i < s->nparts; i++)
        if (s->parts[i]->ch) chs[n++] = s->parts[i]->ch;
    char err[1024];
    sluice_err_t rc = n ? sf_stream_refresh(s->stream, chs, n, &committed, err, sizeof(err))
                        : SLUICE_OK;
    free(chs);
    if (committed && s->m_rows) host->metric_add(s->m_rows, (double)committed);
    for (size_t i = 0; i < s->nparts; i++) {
        sf_part_t *p = s->parts[i];
        if (!p->ch) continue;
        p->pending = sf_channel_pending(p->ch);
        if (sf_channel_committed(p->ch) > p->committed) p->committed = sf_channel_committed(p->ch);
    }
    if (rc != SLUICE_OK) return fail(task, rc, "%s", err);
    return SLUICE_OK;
}

/* Back-pressure: a channel holding more than this many rows that Snowflake
 * has not committed yet makes put() wait (RETRIABLE) for commits. */
static int stream_backlogged(sf_sink_t *s) {
    int64_t limit = s->max_records * 4 > 1000 ? s->max_records * 4 : 1000;
    for (size_t i = 0; i < s->nparts; i++)
        if (s->parts[i]->ch && (int64_t)sf_channel_pending(s->parts[i]->ch) > limit) return 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */

static void on_timer(void *arg, sluice_task_t *task) {
    sf_sink_t *s = arg;
    if (s->failed) return;
    /* failures are logged; a fatal one is reported by the next put() */
    if (s->stream)
        (void)stream_flush(s, task, 0);
    else
        (void)flush_tables(s, task, 0);
}

static char *read_file(const char *path, size_t max) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max, f) : 0;
    int bad = !buf || ferror(f) || (n == max && fgetc(f) != EOF);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static void cleanse_free(char *p) {
    if (!p) return;
    OPENSSL_cleanse(p, strlen(p));
    free(p);
}

static const char *cfg(sluice_task_t *task, const char *key) {
    const char *v = host->config_string(task, key);
    return v && *v ? v : NULL;
}

static sluice_err_t sf_start(sluice_task_t *task, void **state) {
    if (!task || !state) return SLUICE_ERR_INVALID_ARG;
    *state = NULL;
    sf_sink_t *s = calloc(1, sizeof(*s));
    if (!s) return fail(task, SLUICE_ERR_FATAL, "out of memory");
    char err[512] = "";
    char *base = NULL, *hostname = NULL, *account = NULL, *user = NULL, *keytext = NULL;
    sluice_err_t rc = SLUICE_ERR_CONFIG;

    const char *method = cfg(task, "snowflake.ingestion.method");
    int streaming = method && strcasecmp(method, "SNOWPIPE_STREAMING") == 0;
    if (method && !streaming && strcasecmp(method, "SQL_API") != 0) {
        fail(task, SLUICE_ERR_CONFIG,
             "config 'snowflake.ingestion.method': %s is not supported (SQL_API or "
             "SNOWPIPE_STREAMING)",
             method);
        goto out;
    }
    if (sf_parse_url(cfg(task, "snowflake.url.name"), &base, &hostname, err, sizeof(err)) != 0) {
        fail(task, SLUICE_ERR_CONFIG, "config 'snowflake.url.name': %s", err);
        goto out;
    }
    const char *acct = cfg(task, "snowflake.account.name");
    if (acct) {
        account = sf_normalize_account(acct);
    } else if (strspn(hostname, "0123456789.") == strlen(hostname) ||
               strcmp(hostname, "localhost") == 0) {
        fail(task, SLUICE_ERR_CONFIG,
             "config 'snowflake.account.name' is required when snowflake.url.name names no "
             "account (%s)",
             hostname);
        goto out;
    } else {
        char *first = strndup(hostname, strcspn(hostname, "."));
        account = sf_normalize_account(first);
        free(first);
    }
    if (!account) {
        fail(task, SLUICE_ERR_CONFIG, "config 'snowflake.account.name': no account name");
        goto out;
    }
    if (!(user = sf_normalize_user(cfg(task, "snowflake.user.name")))) {
        fail(task, SLUICE_ERR_CONFIG, "config 'snowflake.user.name' is required");
        goto out;
    }
    const char *kt = cfg(task, "snowflake.private.key");
    const char *kf = cfg(task, "snowflake.private.key.file");
    if (kt && kf) {
        fail(task, SLUICE_ERR_CONFIG,
             "set one of snowflake.private.key and snowflake.private.key.file, not both");
        goto out;
    }
    if (kf) {
        if (!(keytext = read_file(kf, 64 * 1024))) {
            fail(task, SLUICE_ERR_CONFIG,
                 "config 'snowflake.private.key.file': cannot read %s: %s", kf,
                 errno ? strerror(errno) : "too large");
            goto out;
        }
    } else if (kt) {
        keytext = strdup(kt);
    } else {
        fail(task, SLUICE_ERR_CONFIG,
             "config 'snowflake.private.key' (or snowflake.private.key.file) is required");
        goto out;
    }
    if (!keytext) {
        rc = fail(task, SLUICE_ERR_FATAL, "out of memory");
        goto out;
    }
    if (!(s->key = sf_load_private_key(keytext, cfg(task, "snowflake.private.key.passphrase"),
                                       err, sizeof(err)))) {
        fail(task, SLUICE_ERR_CONFIG, "config 'snowflake.private.key': %s", err);
        goto out;
    }
    if (sf_topic2table_parse(cfg(task, "snowflake.topic2table.map"), &s->map, &s->nmap, err,
                             sizeof(err)) != 0) {
        fail(task, SLUICE_ERR_CONFIG, "config 'snowflake.topic2table.map': %s", err);
        goto out;
    }
    if (host->config_int(task, "buffer.count.records", &s->max_records) != SLUICE_OK ||
        host->config_int(task, "buffer.size.bytes", &s->max_bytes) != SLUICE_OK ||
        host->config_int(task, "buffer.flush.time", &s->flush_ms) != SLUICE_OK) {
        fail(task, SLUICE_ERR_CONFIG, "config 'buffer.*': not an integer");
        goto out;
    }
    s->flush_ms *= 1000;

    /* The layout: the Avro record of snowflake.record.schema (what reaches the
     * sink after the transforms), else value.converter.schema, else
     * RECORD_CONTENT. */
    const char *sname = cfg(task, "snowflake.record.schema");
    if (!sname) sname = cfg(task, "value.converter.schema");
    char *avsc = NULL;
    if (sname) {
        if (!(s->schema = host->schema_get(task, sname))) {
            fail(task, SLUICE_ERR_CONFIG,
                 "config 'value.converter.schema': schema %s not found (see the worker log)",
                 sname);
            goto out;
        }
        const char *dir = cfg(task, "snowflake.schemas.path");
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s.avsc", dir ? dir : "schemas", sname);
        if (!(avsc = read_file(path, 1 << 20)))
            host->log(task, SLUICE_LOG_WARN,
                      "cannot read %s (snowflake.schemas.path): logical types (timestamp-millis) "
                      "are not known, such fields become NUMBER",
                      path);
    }
    int lrc = sf_layout_build(s->schema, avsc, cfg(task, "snowflake.columns.map"), &s->layout, err,
                              sizeof(err));
    free(avsc);
    if (lrc != 0) {
        fail(task, SLUICE_ERR_CONFIG, "table layout: %s", err);
        goto out;
    }
    const char *uk = cfg(task, "snowflake.upsert.keys");
    if (uk) {
        char *copy = strdup(uk), *save = NULL;
        if (!copy) {
            rc = fail(task, SLUICE_ERR_FATAL, "out of memory");
            goto out;
        }
        for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
            int idx = sf_layout_find(&s->layout, tok);
            int *g = idx >= 0 ? realloc(s->keys, (s->nkeys + 1) * sizeof(int)) : NULL;
            if (!g) {
                fail(task, SLUICE_ERR_CONFIG,
                     "config 'snowflake.upsert.keys': %s is not a column of the table", tok);
                free(copy);
                goto out;
            }
            s->keys = g;
            s->keys[s->nkeys++] = idx;
        }
        free(copy);
        if (s->nkeys == s->layout.ncols) {
            fail(task, SLUICE_ERR_CONFIG,
                 "config 'snowflake.upsert.keys': every column is a key: nothing to update");
            goto out;
        }
        if (streaming) {
            fail(task, SLUICE_ERR_CONFIG,
                 "config 'snowflake.upsert.keys' cannot be used with "
                 "snowflake.ingestion.method=SNOWPIPE_STREAMING: Snowpipe Streaming only "
                 "appends rows (use SQL_API for upserts)");
            goto out;
        }
    }

    int64_t retry_ms = 0, timeout_ms = 0, commit_timeout_ms = 0;
    if (host->config_int(task, "snowflake.retry.timeout.ms", &retry_ms) != SLUICE_OK ||
        host->config_int(task, "snowflake.request.timeout.ms", &timeout_ms) != SLUICE_OK ||
        host->config_int(task, "snowflake.streaming.commit.timeout.ms", &commit_timeout_ms) !=
            SLUICE_OK) {
        fail(task, SLUICE_ERR_CONFIG, "config 'snowflake.*.timeout.ms': not an integer");
        goto out;
    }
    sf_api_conf_t ac = {
        .base = base,
        .account = account,
        .user = user,
        .key = s->key,
        .database = cfg(task, "snowflake.database.name"),
        .schema = cfg(task, "snowflake.schema.name"),
        .warehouse = cfg(task, "snowflake.warehouse.name"),
        .role = cfg(task, "snowflake.role.name"),
        .connect_timeout_ms = 10000,
        .request_timeout_ms = (long)timeout_ms,
        .retry_budget_ms = retry_ms,
        .backoff_max_ms = 2000,
        .jwt_lifetime_s = 59 * 60,
    };
    if (!(s->api = sf_api_new(&ac, host, task, err, sizeof(err)))) {
        rc = fail(task, SLUICE_ERR_FATAL, "%s", err);
        goto out;
    }
    if (streaming) {
        sf_stream_conf_t sc = {
            .base = base,
            .database = ac.database,
            .schema = ac.schema,
            .retry_budget_ms = retry_ms,
            .backoff_max_ms = 2000,
            .token_renew_ms = 50 * 60 * 1000,
            .max_request_bytes = 4u << 20, /* the documented cap of one append */
            .commit_timeout_ms = commit_timeout_ms,
        };
        if (!(s->stream = sf_stream_new(&sc, s->api, host, task))) {
            rc = fail(task, SLUICE_ERR_FATAL, "out of memory");
            goto out;
        }
        s->m_reopens = host->metric_counter(task, "snowflake_channel_reopens_total",
                                            "Snowpipe Streaming channels reopened to resend "
                                            "rows not committed (stale token, lost answer)");
    }
    s->m_rows = host->metric_counter(task, "snowflake_rows_written_total",
                                     "Rows committed into Snowflake");
    s->m_statements = host->metric_counter(task, "snowflake_statements_total",
                                           streaming ? "Snowpipe Streaming appends sent"
                                                     : "INSERT/MERGE statements committed");
    s->m_retries = host->metric_counter(task, "snowflake_http_retries_total",
                                        "SQL API requests sent again after a transient failure");
    if (s->flush_ms > 0) {
        int64_t every = s->flush_ms / 2 > 100 ? s->flush_ms / 2 : 100;
        s->timer = host->timer_start(task, every, on_timer, s);
    }
    host->log(task, SLUICE_LOG_INFO,
              "writing to %s as %s.%s (%s, %s, %zu columns%s), buffer %" PRId64
              " records / %" PRId64 " bytes / %" PRId64 " ms",
              base, account, user, streaming ? "SNOWPIPE_STREAMING" : "SQL_API",
              s->schema ? "Avro columns" : "RECORD_CONTENT",
              s->layout.ncols, s->nkeys ? ", upsert" : "", s->max_records, s->max_bytes,
              s->flush_ms);
    *state = s;
    s = NULL;
    rc = SLUICE_OK;
out:
    free(base);
    free(hostname);
    free(account);
    free(user);
    cleanse_free(keytext);
    sink_free(s);
    return rc;
}

static sluice_err_t sf_open(void *state, sluice_task_t *task, sluice_topic_partition_t *parts,
                            size_t n) {
    sf_sink_t *s = state;
    if (!s || (!parts && n)) return SLUICE_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++) {
        if (!parts[i].topic) return fail(task, SLUICE_ERR_FATAL, "open(): a partition has no topic");
        sf_table_t *t = table_for_topic(s, parts[i].topic);
        sf_part_t *p = part_get(s, parts[i].topic, parts[i].partition);
        if (!t || !p) return fail(task, SLUICE_ERR_FATAL, "out of memory in open()");
        if (s->stream) {
            /* exactly once: resume after the channel's committed offset token */
            int64_t next;
            sluice_err_t rc = stream_attach(s, task, p, &next);
            if (rc != SLUICE_OK) return rc;
            p->assigned = 1;
            int64_t resume = next;
            if (p->next > resume) resume = p->next;
            if (parts[i].offset >= 0 && parts[i].offset > resume) resume = parts[i].offset;
            if (next >= 0 && p->committed < next) p->committed = next;
            if (resume >= 0) {
                if (p->next < resume) p->next = resume;
                parts[i].offset = resume;
            }
            host->log(task, SLUICE_LOG_INFO,
                      "%s[%d]: channel %s committed up to offset token %" PRId64
                      ", resuming at %" PRId64,
                      parts[i].topic, parts[i].partition, sf_channel_name(p->ch),
                      next >= 0 ? next - 1 : -1, resume);
            continue;
        }
        sluice_err_t rc = ensure_table(s, task, t);
        if (rc != SLUICE_OK) return rc;
        p->assigned = 1;
        if (s->nkeys) {
            /* Upsert: rows are keyed, writing one again is harmless, and a
             * windowing transform needs the records from the group's
             * committed offset on (not MAX(KAFKA_OFFSET)+1) to rebuild its
             * open windows. Take everything the consumer hands over. */
            p->next = SLUICE_OFFSET_UNSET;
            host->log(task, SLUICE_LOG_INFO,
                      "%s[%d]: upsert into %s from the committed offset (%" PRId64 ")",
                      parts[i].topic, parts[i].partition, t->name, parts[i].offset);
            continue;
        }
        int64_t max = -1;
        rc = query_max(s, task, t, parts[i].topic, parts[i].partition, &max);
        if (rc != SLUICE_OK) return rc;
        /* The furthest of: what the table holds, what this task took
         * already (rows still buffered for a partition given back to us),
         * and the group's committed offset (rows another owner wrote to a
         * table this one does not see, e.g. before a mapping change). */
        int64_t resume = max >= 0 ? max + 1 : SLUICE_OFFSET_UNSET;
        if (p->next > resume) resume = p->next;
        if (parts[i].offset >= 0 && parts[i].offset > resume) resume = parts[i].offset;
        if (max >= 0 && p->committed < max + 1) p->committed = max + 1;
        if (resume >= 0) {
            if (p->next < resume) p->next = resume;
            parts[i].offset = resume;
            host->log(task, SLUICE_LOG_INFO,
                      "%s[%d]: %s holds offsets up to %" PRId64 ", resuming at %" PRId64,
                      parts[i].topic, parts[i].partition, t->name, max, resume);
        } else {
            host->log(task, SLUICE_LOG_INFO, "%s[%d]: %s holds no rows of it", parts[i].topic,
                      parts[i].partition, t->name);
        }
    }
    return SLUICE_OK;
}

/* Drops the buffered rows of p (revoked) from every table. A frozen flush
 * that is abandoned this way may have run (its answer lost): the remaining
 * partitions then re-read their position from the table. */
static sluice_err_t drop_part_rows(sf_sink_t *s, sluice_task_t *task, sf_part_t *p,
                                   int resync) {
    int abandoned = 0;
    for (size_t ti = 0; ti < s->ntables; ti++) {
        sf_table_t *t = s->tables[ti];
        if (t->stmts) {
            abandoned = 1;
            table_abandon(s, t);
        }
        size_t o = 0;
        for (size_t i = 0; i < t->nrows; i++) {
            if (t->rows[i].part == p) {
                t->bytes -= t->rows[i].bytes;
                row_free_vals(&t->rows[i], s->layout.ncols);
            } else {
                t->rows[o++] = t->rows[i];
            }
        }
        t->nrows = o;
        if (!o) t->first_ms = 0;
    }
    p->pending = 0;
    /* upsert: the others' rows are sent again as they are (idempotent) */
    if (!abandoned || !resync || s->nkeys) return SLUICE_OK;
    /* resync the others: drop what the table already has */
    for (size_t pi = 0; pi < s->nparts; pi++) {
        sf_part_t *q = s->parts[pi];
        if (q == p || !q->pending) continue;
        sf_table_t *t = table_for_topic(s, q->topic);
        int64_t max = -1;
        if (!t) return fail(task, SLUICE_ERR_FATAL, "out of memory");
        sluice_err_t rc = query_max(s, task, t, q->topic, q->partition, &max);
        if (rc != SLUICE_OK) {
            s->failed = 1;
            snprintf(s->fail_msg, sizeof(s->fail_msg),
                     "cannot tell which rows of an interrupted write are in %s", t->name);
            return SLUICE_ERR_FATAL;
        }
        size_t o = 0;
        for (size_t i = 0; i < t->nrows; i++) {
            if (t->rows[i].part == q && t->rows[i].offset <= max) {
                t->bytes -= t->rows[i].bytes;
                row_free_vals(&t->rows[i], s->layout.ncols);
                q->pending--;
            } else {
                t->rows[o++] = t->rows[i];
            }
        }
        t->nrows = o;
        if (max >= 0 && q->committed < max + 1) q->committed = max + 1;
    }
    return SLUICE_OK;
}

static sluice_err_t sf_close(void *state, sluice_task_t *task,
                             const sluice_topic_partition_t *parts, size_t n) {
    sf_sink_t *s = state;
    if (!s || (!parts && n)) return SLUICE_ERR_INVALID_ARG;
    sluice_err_t rc = s->failed ? SLUICE_ERR_FATAL : s->stream ? SLUICE_OK : flush_tables(s, task, 1);
    for (size_t i = 0; s->stream && i < n; i++) {
        /* Rows not committed are dropped here: their offsets were not
         * committed to Kafka, and the next owner's open of the channel drops
         * what Snowflake did not commit, then resumes after what it did. */
        sf_part_t *p = parts[i].topic ? part_find(s, parts[i].topic, parts[i].partition) : NULL;
        if (p) {
            sf_channel_free(p->ch);
            p->ch = NULL;
            p->pending = 0;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!parts[i].topic) continue;
        sf_part_t *p = part_find(s, parts[i].topic, parts[i].partition);
        if (!p) continue;
        if (p->pending) {
            /* the flush failed: drop its rows (the new owner reads them
             * again from the committed offset) */
            sluice_err_t d = drop_part_rows(s, task, p, !s->failed);
            if (d != SLUICE_OK) rc = d;
        }
        for (size_t j = 0; j < s->nparts; j++) {
            if (s->parts[j] == p) {
                s->parts[j] = s->parts[--s->nparts];
                break;
            }
        }
        free(p->topic);
        free(p);
    }
    return rc;
}

static sluice_err_t sf_put(void *state, sluice_task_t *task, sluice_record_t *const *records,
                           size_t n) {
    sf_sink_t *s = state;
    if (!s || (!records && n)) return SLUICE_ERR_INVALID_ARG;
    if (s->failed)
        return fail(task, SLUICE_ERR_FATAL, "%s; restart the task",
                    s->fail_msg[0] ? s->fail_msg : "an earlier write failed");
    /* Back-pressure: wait here (a second at most, asking every 100 ms) for
     * Snowflake to commit, then let the host pause and retry. */
    for (int64_t t0 = host->now_ms(); s->stream && stream_backlogged(s);) {
        sluice_err_t rc = stream_flush(s, task, 1);
        if (rc == SLUICE_OK) rc = stream_refresh(s, task);
        if (rc != SLUICE_OK) return rc == SLUICE_ERR_FATAL ? rc : SLUICE_ERR_RETRIABLE;
        if (!stream_backlogged(s)) break;
        if (host->now_ms() - t0 >= 1000)
            return fail(task, SLUICE_ERR_RETRIABLE,
                        "waiting for Snowflake to commit appended rows before taking more");
        sf_sleep_ms(100);
    }
    int bad = 0;
    int64_t now = host->now_ms();
    for (size_t i = 0; i < n; i++) {
        sluice_record_t *rec = records[i];
        if (!rec) continue;
        const char *topic = host->record_topic(rec);
        int32_t partition = host->record_partition(rec);
        int64_t offset = host->record_offset(rec);
        char why[512] = "";
        sf_part_t *p = NULL;
        sf_table_t *t = NULL;
        int r;
        if (!topic || partition < 0 || offset < 0) {
            snprintf(why, sizeof(why), "record has no Kafka topic, partition or offset");
            r = -1;
        } else {
            if (!(p = part_get(s, topic, partition)) || !(t = table_for_topic(s, topic)))
                return fail(task, SLUICE_ERR_RETRIABLE, "out of memory");
            if (s->stream && !p->ch) { /* a partition put() sees before open() */
                int64_t next;
                sluice_err_t rc = stream_attach(s, task, p, &next);
                if (rc != SLUICE_OK) return rc;
                if (next > p->next) p->next = next;
            }
            /* taken already; upsert takes every row (a replay rewrites the same) */
            if (!s->nkeys && p->next >= 0 && offset < p->next) continue;
            char **vals = NULL;
            size_t bytes = 0;
            r = make_row(s, rec, topic, partition, offset, &vals, &bytes, why, sizeof(why));
            if (r == -2) return fail(task, SLUICE_ERR_RETRIABLE, "out of memory");
            if (r == 0 && s->stream) {
                char *line = sf_row_ndjson(&s->layout, vals, why, sizeof(why));
                for (size_t c = 0; c < s->layout.ncols; c++) free(vals[c]);
                free(vals);
                if (!line) {
                    r = -1; /* a value the REST API cannot take: dead letter */
                } else if (sf_channel_add(p->ch, offset, line, now) != 0) {
                    return fail(task, SLUICE_ERR_RETRIABLE, "out of memory");
                } else {
                    p->pending++;
                    p->next = offset + 1;
                    /* a full buffer goes now: appends stay within buffer.* */
                    if (stream_due(s, p->ch, now)) {
                        sluice_err_t rc = stream_flush_one(s, task, p->ch);
                        if (rc != SLUICE_OK) return rc;
                    }
                }
            } else if (r == 0) {
                if (t->nrows == t->cap) {
                    size_t cap = t->cap ? t->cap * 2 : 256;
                    sf_row_t *g = realloc(t->rows, cap * sizeof(*g));
                    if (!g) {
                        for (size_t c = 0; c < s->layout.ncols; c++) free(vals[c]);
                        free(vals);
                        return fail(task, SLUICE_ERR_RETRIABLE, "out of memory");
                    }
                    t->rows = g;
                    t->cap = cap;
                }
                t->rows[t->nrows++] = (sf_row_t){p, offset, vals, bytes};
                t->bytes += bytes;
                if (!t->first_ms) t->first_ms = now;
                p->pending++;
            }
        }
        if (r == -1) {
            sluice_err_t dl = host->dead_letter(task, rec, SLUICE_ERR_BAD_RECORD, why);
            if (dl != SLUICE_OK)
                return fail(task, dl == SLUICE_ERR_FATAL ? SLUICE_ERR_FATAL : SLUICE_ERR_RETRIABLE,
                            "dead_letter failed (%s) for a bad record: %s", host->err2str(dl),
                            why);
            bad = 1;
        }
        if (p) p->next = offset + 1; /* taken: buffered or dead-lettered */
    }
    sluice_err_t rc = s->stream ? stream_flush(s, task, 0) : flush_tables(s, task, 0);
    if (rc != SLUICE_OK) return rc;
    return bad ? SLUICE_ERR_BAD_RECORD : SLUICE_OK;
}

static sluice_err_t sf_pre_commit(void *state, sluice_task_t *task,
                                  sluice_topic_partition_t *offsets, size_t n) {
    sf_sink_t *s = state;
    if (!s || (!offsets && n)) return SLUICE_ERR_INVALID_ARG;
    sluice_err_t rc;
    if (s->stream) {
        /* append what is queued, then ask which offset tokens are committed:
         * only those offsets are durable */
        rc = s->failed ? SLUICE_ERR_FATAL : stream_flush(s, task, 1);
        sluice_err_t r2 = s->failed ? SLUICE_ERR_FATAL : stream_refresh(s, task);
        if (rc == SLUICE_OK) rc = r2;
    } else {
        rc = s->failed ? SLUICE_ERR_FATAL : flush_tables(s, task, 1);
    }
    for (size_t i = 0; i < n; i++) {
        const sf_part_t *p =
            offsets[i].topic ? part_find(s, offsets[i].topic, offsets[i].partition) : NULL;
        int64_t durable = SLUICE_OFFSET_UNSET;
        if (p) durable = p->pending == 0 && p->next >= 0 ? p->next : p->committed;
        if (durable < 0)
            offsets[i].offset = SLUICE_OFFSET_UNSET;
        else if (offsets[i].offset < 0 || offsets[i].offset > durable)
            offsets[i].offset = durable;
    }
    /* Offsets of what is durable are right even when a flush failed. */
    return rc == SLUICE_ERR_FATAL ? rc : SLUICE_OK;
}

static void sf_stop(void *state, sluice_task_t *task) {
    sf_sink_t *s = state;
    if (!s) return;
    if (s->timer) host->timer_stop(task, s->timer);
    /* Buffered rows are not written here: their offsets were not committed,
     * so they are read again and open() skips what a flush stored. */
    sink_free(s);
}

/* ------------------------------------------------------------------------ */
/* Descriptor                                                                */
/* ------------------------------------------------------------------------ */

#define BIG ((double)INT64_MAX)

static const sluice_config_def_t sf_config[] = {
    {.name = "snowflake.url.name", .type = SLUICE_CONFIG_STRING, .flags = SLUICE_CONFIG_REQUIRED,
     .doc = "Account host (myorg-acct.snowflakecomputing.com[:443]) or an explicit "
            "http(s)://HOST:PORT"},
    {.name = "snowflake.account.name", .type = SLUICE_CONFIG_STRING,
     .doc = "Account identifier for the JWT; default: the URL host's first label"},
    {.name = "snowflake.user.name", .type = SLUICE_CONFIG_STRING, .flags = SLUICE_CONFIG_REQUIRED,
     .doc = "User with the RSA public key"},
    {.name = "snowflake.private.key", .type = SLUICE_CONFIG_STRING, .flags = SLUICE_CONFIG_SECRET,
     .doc = "PKCS#8 private key: PEM text, or its base64 body without header lines"},
    {.name = "snowflake.private.key.file", .type = SLUICE_CONFIG_STRING,
     .doc = "Path of the PKCS#8 PEM private key (instead of snowflake.private.key)"},
    {.name = "snowflake.private.key.passphrase", .type = SLUICE_CONFIG_STRING,
     .flags = SLUICE_CONFIG_SECRET, .doc = "Passphrase of an encrypted private key"},
    {.name = "snowflake.database.name", .type = SLUICE_CONFIG_STRING,
     .flags = SLUICE_CONFIG_REQUIRED, .doc = "Database of the tables"},
    {.name = "snowflake.schema.name", .type = SLUICE_CONFIG_STRING,
     .flags = SLUICE_CONFIG_REQUIRED, .doc = "Schema of the tables"},
    {.name = "snowflake.role.name", .type = SLUICE_CONFIG_STRING, .doc = "Role to use"},
    {.name = "snowflake.warehouse.name", .type = SLUICE_CONFIG_STRING,
     .doc = "Warehouse to run the statements in"},
    {.name = "snowflake.topic2table.map", .type = SLUICE_CONFIG_STRING,
     .doc = "topic:table,... ; other topics go to the topic name upper-cased, invalid "
            "characters replaced by _"},
    {.name = "snowflake.ingestion.method", .type = SLUICE_CONFIG_STRING,
     .default_value = "SQL_API", .allowed = "SQL_API|sql_api|SNOWPIPE_STREAMING|snowpipe_streaming",
     .doc = "How rows are written: SQL_API (INSERT statements through the SQL API v2) or "
            "SNOWPIPE_STREAMING (channels of the Snowpipe Streaming REST API, exactly once "
            "through offset tokens; append only)"},
    {.name = "snowflake.record.schema", .type = SLUICE_CONFIG_STRING,
     .doc = "Schema of the records put() gets (after the transforms), for the table's columns; "
            "default: value.converter.schema"},
    {.name = "snowflake.upsert.keys", .type = SLUICE_CONFIG_LIST,
     .doc = "Key columns: MERGE (update or insert) instead of INSERT, e.g. SYMBOL,WINDOW_START"},
    {.name = "snowflake.columns.map", .type = SLUICE_CONFIG_STRING,
     .doc = "field:COLUMN,... renames Avro fields' columns (default: the field name upper-cased)"},
    {.name = "snowflake.schemas.path", .type = SLUICE_CONFIG_STRING, .default_value = "schemas",
     .doc = "Directory of value.converter.schema's .avsc, read for logical types "
            "(timestamp-millis -> TIMESTAMP_NTZ)"},
    {.name = "snowflake.retry.timeout.ms", .type = SLUICE_CONFIG_INT, .default_value = "5000",
     .min = 0, .max = 600000,
     .doc = "How long one call retries transient HTTP failures before giving the host a "
            "retriable error (it retries again later)"},
    {.name = "snowflake.request.timeout.ms", .type = SLUICE_CONFIG_INT, .default_value = "20000",
     .min = 100, .max = 600000, .doc = "Timeout of one HTTP request"},
    {.name = "snowflake.streaming.commit.timeout.ms", .type = SLUICE_CONFIG_INT,
     .default_value = "120000", .min = 1000, .max = 86400000,
     .doc = "SNOWPIPE_STREAMING: appended rows not committed after this long (Snowflake "
            "documents 5-10 s) make the task reopen the channel and send them again"},
    {.name = "buffer.count.records", .type = SLUICE_CONFIG_INT, .default_value = "10000",
     .min = 1, .max = BIG, .doc = "Rows buffered per table before a flush"},
    {.name = "buffer.flush.time", .type = SLUICE_CONFIG_INT, .default_value = "10", .min = 0,
     .max = 86400, .doc = "Seconds a row may stay buffered before a flush (0: only on count, "
                          "size and commit)"},
    {.name = "buffer.size.bytes", .type = SLUICE_CONFIG_INT, .default_value = "5000000",
     .min = 1, .max = BIG, .doc = "Buffered bytes per table before a flush"},
    {.name = NULL},
};

static const sluice_sink_ops_t sf_ops = {
    .struct_size = sizeof(sluice_sink_ops_t),
    .start = sf_start,
    .open = sf_open,
    .close = sf_close,
    .put = sf_put,
    .pre_commit = sf_pre_commit,
    .stop = sf_stop,
};

static const sluice_plugin_t sf_plugin = {
    SLUICE_PLUGIN_HEADER,
    .kind = SLUICE_PLUGIN_SINK,
    .name = "sink-snowflake",
    .version = "1.0.0",
    .description = "Snowflake sink: SQL API v2 or Snowpipe Streaming, key-pair JWT, exactly once",
    .config = sf_config,
    .sink = &sf_ops,
};

SLUICE_EXPORT const sluice_plugin_t *SLUICE_PLUGIN_ENTRY(const sluice_host_api_t *api) {
    if (!api || api->abi_major != SLUICE_ABI_MAJOR) return NULL;
    const char *missing = NULL;
#define NEED(member) \
    if (!missing && !SLUICE_HOST_HAS(api, member)) missing = #member
    NEED(log); NEED(config_string); NEED(config_int); NEED(schema_get);
    NEED(record_topic); NEED(record_key); NEED(record_value_avro);
    NEED(record_value_bytes); NEED(record_timestamp); NEED(record_partition);
    NEED(record_offset); NEED(dead_letter); NEED(metric_counter); NEED(metric_add);
    NEED(timer_start); NEED(timer_stop); NEED(now_ms); NEED(err2str); NEED(set_error);
#undef NEED
    if (missing) {
        if (SLUICE_HOST_HAS(api, log))
            api->log(NULL, SLUICE_LOG_ERROR, "sink-snowflake: the host lacks the %s service",
                     missing);
        return NULL;
    }
    host = api;
    return &sf_plugin;
}
