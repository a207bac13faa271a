/*
 * finnhub.c - "source-finnhub": Finnhub trades over a websocket, one record
 * per trade (output.format=trade) or per trade message (=message, the
 * original pipeline's TestObject records). See docs/finnhub.md.
 *
 * The websocket is a libwebsockets client driven from poll() on the task's
 * own thread: poll() runs lws_service() until timeout_ms (an lws timer
 * bounds the wait), and the receive callback parses each message and emits
 * its records right there, so every host service is called from the task
 * thread as plugin.h requires. There is no reader thread and no queue.
 *
 * Connection life cycle, all in this file:
 *   IDLE --(due)--> CONNECTING --(101)--> OPEN --(closed/error/idle)--> IDLE
 * Every drop schedules the next attempt after a capped exponential back-off
 * with jitter; the attempt counter resets once a connection delivered a
 * valid message. Each new connection subscribes every symbol again.
 *
 * Source positions: none. Finnhub has no replay, so no stored offset could
 * ever be used to resume; the host accounts deliveries (acked/failed
 * metrics, failing the task on a failed delivery) without them, and leaving
 * them out saves an offset-store write per trade.
 */
#include <sluice/plugin.h>

#include "parse.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libwebsockets.h>

/* The host-services table, set once by the entry function: the only global
 * besides the once-flag of the process-wide lws log setup. */
static const sluice_host_api_t *host;
static pthread_once_t lws_log_once = PTHREAD_ONCE_INIT;

#define INT64_MAX_D ((double)INT64_MAX)
/* How much of an oversized message goes to the dead-letter queue. */
#define OVERSIZE_DLQ_BYTES 4096
/* At most one log line per this many ms for Finnhub "error" messages. */
#define ERROR_LOG_INTERVAL_MS 10000

enum conn_state { CONN_IDLE, CONN_CONNECTING, CONN_OPEN };

typedef struct fh {
    sluice_task_t *task;

    /* config */
    fh_url_t url;
    char *path;          /* url.path + ?token=...: never logged */
    char *where;         /* ws[s]://host:port/path without the query, for logs */
    char **syms;         /* this task's share of finnhub.symbols */
    size_t nsyms;
    char *topic;
    int message_format;  /* output.format=message */
    int64_t bo_initial_ms, bo_max_ms, idle_ms, connect_timeout_ms, max_msg;
    double jitter;
    char *ca_file;
    avro_schema_t schema; /* host-owned */

    /* connection */
    struct lws_context *ctx;
    struct lws *wsi;
    enum conn_state state;
    int64_t state_since;   /* mono ms of the last state change */
    int64_t last_rx;       /* mono ms of the last frame received */
    int64_t next_connect;  /* mono ms of the next attempt */
    unsigned attempt;      /* failed attempts in a row */
    int http_status;       /* of a refused upgrade */
    char close_why[200];   /* set before a deliberate close */
    size_t next_sub;       /* next symbol to subscribe */
    int live;              /* the current connection delivered a valid message */
    int stopping;
    lws_sorted_usec_list_t wake;
    unsigned rnd;

    /* the message being assembled from fragments */
    char *rx;
    size_t rx_len, rx_cap;
    int rx_oversize;

    /* per poll() */
    int emitted;
    int fatal;

    /* rate limits for our own warnings */
    int64_t err_log_at;
    uint64_t err_unlogged;
    int64_t drop_log_at;
    uint64_t drop_unlogged;

    sluice_metric_t *m_trades, *m_messages, *m_bad_frames, *m_bad_trades, *m_server_errors,
        *m_pings, *m_connects, *m_disconnects, *m_dropped, *m_connected, *m_reconnects;
    uint64_t nconnects; /* connections this task made, for m_reconnects */
} fh_t;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static sluice_err_t fail(sluice_task_t *task, sluice_err_t rc, const char *fmt, ...)
    SLUICE_PRINTF(3, 4);
static sluice_err_t fail(sluice_task_t *task, sluice_err_t rc, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) snprintf(msg, sizeof(msg), "%s", fmt);
    host->log(task, SLUICE_LOG_ERROR, "%s", msg);
    host->set_error(task, "%s", msg);
    return rc;
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count(sluice_metric_t *m, double d) {
    if (m) host->metric_add(m, d);
}

static double rnd01(fh_t *s) {
    /* xorshift32: enough for jitter, no shared state between tasks */
    unsigned x = s->rnd ? s->rnd : 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s->rnd = x;
    return (double)(x >> 8) / (double)(1u << 24);
}

/* libwebsockets' own log lines (errors only), through the host's log.
 * Anything after "token=" is cut, in case a URL ever shows up there. */
static void lws_log_emit(int level, const char *line) {
    (void)level;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", line);
    char *t = strstr(buf, "token=");
    if (t) strcpy(t, "token=***");
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
    host->log(NULL, SLUICE_LOG_WARN, "libwebsockets: %s", buf);
}

static void lws_log_setup(void) { lws_set_log_level(LLL_ERR, lws_log_emit); }

/* ------------------------------------------------------------------------ */
/* Records                                                                   */
/* ------------------------------------------------------------------------ */

/* Reports a bad frame or trade: raw bytes to the dead-letter queue (when
 * configured; the host counts and logs, rate-limited, either way). */
static void dead_letter(fh_t *s, const char *raw, size_t len, const char *reason) {
    sluice_record_t *rec = host->record_new(s->task);
    if (!rec) {
        count(s->m_dropped, 1);
        return;
    }
    if (host->record_set_topic(rec, s->topic) == SLUICE_OK &&
        host->record_set_value_bytes(rec, raw, len) == SLUICE_OK)
        host->dead_letter(s->task, rec, SLUICE_ERR_BAD_RECORD, reason);
    host->record_free(rec);
}

/* A record that could not be built or emitted: Finnhub cannot send it
 * again, so it is counted and (rate-limited) logged. */
static void dropped(fh_t *s, const char *what, sluice_err_t rc) {
    count(s->m_dropped, 1);
    int64_t now = mono_ms();
    if (s->drop_log_at && now - s->drop_log_at < ERROR_LOG_INTERVAL_MS) {
        s->drop_unlogged++;
        return;
    }
    host->log(s->task, SLUICE_LOG_WARN, "record dropped: %s: %s (%" PRIu64 " more not logged)",
              what, host->err2str(rc), s->drop_unlogged);
    s->drop_log_at = now;
    s->drop_unlogged = 0;
}

static int set_string(avro_value_t *rec, const char *name, const char *v) {
    avro_value_t f;
    return avro_value_get_by_name(rec, name, &f, NULL) || avro_value_set_string(&f, v);
}
static int set_double(avro_value_t *rec, const char *name, double v) {
    avro_value_t f;
    return avro_value_get_by_name(rec, name, &f, NULL) || avro_value_set_double(&f, v);
}
static int set_long(avro_value_t *rec, const char *name, int64_t v) {
    avro_value_t f;
    return avro_value_get_by_name(rec, name, &f, NULL) || avro_value_set_long(&f, v);
}
/* A ["null", T] union field: selects the T branch into *out. */
static int set_nonnull(avro_value_t *rec, const char *name, avro_value_t *out) {
    avro_value_t f;
    return avro_value_get_by_name(rec, name, &f, NULL) || avro_value_set_branch(&f, 1, out);
}
static int set_null(avro_value_t *rec, const char *name) {
    avro_value_t f, b;
    return avro_value_get_by_name(rec, name, &f, NULL) || avro_value_set_branch(&f, 0, &b) ||
           avro_value_set_null(&b);
}

/* Hands rec to the host; records the outcome. */
static void emit(fh_t *s, sluice_record_t *rec, const char *what) {
    sluice_err_t rc = host->emit(s->task, rec);
    if (rc == SLUICE_OK) {
        s->emitted++;
    } else if (rc == SLUICE_ERR_FATAL) {
        s->fatal = 1;
    } else if (rc != SLUICE_ERR_BAD_RECORD) { /* BAD_RECORD: host dead-lettered it */
        dropped(s, what, rc);
    }
}

static void emit_trade(fh_t *s, const fh_trade_t *t, int64_t ingest_ms) {
    char id[33];
    fh_trade_id(t->symbol, t->time_ms, t->price, t->volume, t->index, id);
    sluice_record_t *rec = host->record_new(s->task);
    if (!rec) {
        dropped(s, "record_new", SLUICE_ERR_NOMEM);
        return;
    }
    avro_value_t *v = NULL, arr, item;
    int bad = host->record_set_topic(rec, s->topic) != SLUICE_OK ||
              host->record_set_key(rec, t->symbol, strlen(t->symbol)) != SLUICE_OK ||
              host->record_set_timestamp(rec, t->time_ms) != SLUICE_OK ||
              host->record_set_value_avro(rec, s->schema, &v) != SLUICE_OK || !v;
    if (!bad)
        bad = set_string(v, "symbol", t->symbol) || set_double(v, "price", t->price) ||
              set_double(v, "volume", t->volume) || set_long(v, "trade_time", t->time_ms) ||
              set_long(v, "ingest_time", ingest_ms) || set_string(v, "trade_id", id);
    if (!bad) {
        if (t->has_conditions) {
            bad = set_nonnull(v, "conditions", &arr);
            for (size_t i = 0; !bad && i < t->nconditions; i++)
                bad = avro_value_append(&arr, &item, NULL) ||
                      avro_value_set_string(&item, t->conditions[i]);
        } else {
            bad = set_null(v, "conditions");
        }
    }
    if (bad) {
        host->record_free(rec);
        dropped(s, "building the trade record", SLUICE_ERR_NOMEM);
        return;
    }
    emit(s, rec, "trade");
    count(s->m_trades, 1);
}

/* output.format=message: the valid trades of f as one TestObject record. */
static void emit_message(fh_t *s, const fh_frame_t *f) {
    sluice_record_t *rec = host->record_new(s->task);
    if (!rec) {
        dropped(s, "record_new", SLUICE_ERR_NOMEM);
        return;
    }
    avro_value_t *v = NULL, data, item, d, f1, arr, c;
    int bad = host->record_set_topic(rec, s->topic) != SLUICE_OK ||
              host->record_set_value_avro(rec, s->schema, &v) != SLUICE_OK || !v;
    if (!bad) bad = set_nonnull(v, "type", &f1) || avro_value_set_string(&f1, "trade");
    if (!bad) bad = set_nonnull(v, "data", &data);
    for (size_t i = 0; !bad && i < f->ntrades; i++) {
        const fh_trade_t *t = &f->trades[i];
        if (!t->ok) continue;
        bad = avro_value_append(&data, &item, NULL) || avro_value_set_branch(&item, 1, &d) ||
              set_nonnull(&d, "p", &f1) || avro_value_set_double(&f1, t->price) ||
              set_nonnull(&d, "s", &f1) || avro_value_set_string(&f1, t->symbol) ||
              set_nonnull(&d, "t", &f1) || avro_value_set_long(&f1, t->time_ms) ||
              set_nonnull(&d, "v", &f1) || avro_value_set_double(&f1, t->volume);
        if (bad) break;
        if (t->has_conditions) {
            bad = set_nonnull(&d, "c", &arr);
            for (size_t k = 0; !bad && k < t->nconditions; k++)
                bad = avro_value_append(&arr, &item, NULL) ||
                      avro_value_set_branch(&item, 1, &c) ||
                      avro_value_set_string(&c, t->conditions[k]);
        } else {
            bad = set_null(&d, "c");
        }
        count(s->m_trades, 1);
    }
    if (bad) {
        host->record_free(rec);
        dropped(s, "building the message record", SLUICE_ERR_NOMEM);
        return;
    }
    emit(s, rec, "message");
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */
/* ------------------------------------------------------------------------ */

static void server_error(fh_t *s, const char *msg) {
    count(s->m_server_errors, 1);
    int64_t now = mono_ms();
    if (s->err_log_at && now - s->err_log_at < ERROR_LOG_INTERVAL_MS) {
        s->err_unlogged++;
        return;
    }
    host->log(s->task, SLUICE_LOG_WARN, "Finnhub error message: \"%.200s\"%s", msg,
              s->err_unlogged ? " (more error messages were not logged)" : "");
    s->err_log_at = now;
    s->err_unlogged = 0;
}

static void handle_message(fh_t *s, const char *data, size_t len) {
    count(s->m_messages, 1);
    int64_t ingest = host->now_ms();
    fh_frame_t f;
    if (fh_frame_parse(data, len, &f) != 0) {
        fh_frame_free(&f);
        dropped(s, "parsing a message", SLUICE_ERR_NOMEM);
        return;
    }
    switch (f.kind) {
    case FH_FRAME_BAD: {
        char reason[260];
        snprintf(reason, sizeof(reason), "bad Finnhub frame: %s", f.reason);
        count(s->m_bad_frames, 1);
        dead_letter(s, data, len, reason);
        break;
    }
    case FH_FRAME_PING:
        count(s->m_pings, 1);
        s->live = 1;
        break;
    case FH_FRAME_ERROR:
        server_error(s, f.error_msg);
        s->live = 1;
        break;
    case FH_FRAME_TRADE:
        s->live = 1;
        for (size_t i = 0; i < f.ntrades && !s->fatal; i++) {
            fh_trade_t *t = &f.trades[i];
            if (t->ok) {
                if (!s->message_format) emit_trade(s, t, ingest);
                continue;
            }
            char reason[220];
            snprintf(reason, sizeof(reason), "bad Finnhub trade: %s", t->reason);
            count(s->m_bad_trades, 1);
            dead_letter(s, t->raw, strlen(t->raw), reason);
        }
        if (s->message_format && f.ntrades > f.nbad && !s->fatal) emit_message(s, &f);
        break;
    }
    if (s->live) s->attempt = 0;
    fh_frame_free(&f);
}

/* Appends a received fragment; the message is handled when complete. */
static void receive(fh_t *s, struct lws *wsi, const char *in, size_t len) {
    if (lws_is_first_fragment(wsi)) {
        s->rx_len = 0;
        s->rx_oversize = 0;
    }
    if (!s->rx_oversize) {
        if ((int64_t)(s->rx_len + len) > s->max_msg) {
            s->rx_oversize = 1;
        } else {
            if (s->rx_len + len + 1 > s->rx_cap) {
                size_t cap = s->rx_cap ? s->rx_cap : 4096;
                while (cap < s->rx_len + len + 1) cap *= 2;
                char *grown = realloc(s->rx, cap);
                if (!grown) {
                    s->rx_oversize = 1; /* treated like an oversized one */
                } else {
                    s->rx = grown;
                    s->rx_cap = cap;
                }
            }
            if (!s->rx_oversize) {
                memcpy(s->rx + s->rx_len, in, len);
                s->rx_len += len;
            }
        }
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) != 0) return;
    if (s->rx_oversize) {
        char reason[160];
        snprintf(reason, sizeof(reason),
                 "bad Finnhub frame: larger than finnhub.max.message.bytes=%" PRId64
                 " (first %d bytes kept)",
                 s->max_msg, s->rx_len < OVERSIZE_DLQ_BYTES ? (int)s->rx_len : OVERSIZE_DLQ_BYTES);
        count(s->m_bad_frames, 1);
        dead_letter(s, s->rx ? s->rx : "", s->rx_len < OVERSIZE_DLQ_BYTES ? s->rx_len
                                                                           : OVERSIZE_DLQ_BYTES,
                    reason);
    } else {
        handle_message(s, s->rx ? s->rx : "", s->rx_len);
    }
    s->rx_len = 0;
    s->rx_oversize = 0;
}

/* ------------------------------------------------------------------------ */
/* Connection                                                                */
/* ------------------------------------------------------------------------ */

static void set_state(fh_t *s, enum conn_state st) {
    s->state = st;
    s->state_since = mono_ms();
    if (s->m_connected) host->metric_set(s->m_connected, st == CONN_OPEN ? 1 : 0);
}

/* The current connection is gone: schedule the next attempt. */
static void connection_lost(fh_t *s, const char *why) {
    if (s->state == CONN_IDLE) return;
    int was_open = s->state == CONN_OPEN;
    s->wsi = NULL;
    set_state(s, CONN_IDLE);
    s->rx_len = 0;
    s->rx_oversize = 0;
    if (s->stopping) return;
    if (was_open) count(s->m_disconnects, 1);
    int64_t delay = fh_backoff_ms(s->bo_initial_ms, s->bo_max_ms, s->jitter, s->attempt, rnd01(s));
    if (s->attempt < 64) s->attempt++;
    s->next_connect = mono_ms() + delay;
    host->log(s->task, SLUICE_LOG_WARN, "%s %s: %s; reconnecting in %" PRId64 " ms (attempt %u)",
              was_open ? "disconnected from" : "cannot connect to", s->where, why, delay,
              s->attempt);
}

/* Closes the connection on the next service (idle or connect timeout). */
static void close_now(fh_t *s, const char *why) {
    if (!s->wsi) {
        connection_lost(s, why);
        return;
    }
    snprintf(s->close_why, sizeof(s->close_why), "%s", why);
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static int subscribe_next(fh_t *s, struct lws *wsi) {
    if (s->next_sub >= s->nsyms) return 0;
    json_t *o = json_pack("{s:s,s:s}", "type", "subscribe", "symbol", s->syms[s->next_sub]);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) {
        snprintf(s->close_why, sizeof(s->close_why), "out of memory building a subscribe message");
        return -1;
    }
    size_t len = strlen(text);
    unsigned char *buf = malloc(LWS_PRE + len);
    if (!buf) {
        free(text);
        snprintf(s->close_why, sizeof(s->close_why), "out of memory building a subscribe message");
        return -1;
    }
    memcpy(buf + LWS_PRE, text, len);
    free(text);
    int n = lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT);
    free(buf);
    if (n < (int)len) {
        snprintf(s->close_why, sizeof(s->close_why), "sending a subscribe message failed");
        return -1;
    }
    s->next_sub++;
    if (s->next_sub < s->nsyms)
        lws_callback_on_writable(wsi);
    else
        host->log(s->task, SLUICE_LOG_INFO, "subscribed %zu symbol(s) on %s", s->nsyms, s->where);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    (void)user;
    if (!wsi) return 0;
    fh_t *s = lws_context_user(lws_get_context(wsi));
    if (!s) return 0;
    char why[300];
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (wsi != s->wsi && s->wsi) break;
        s->http_status = (int)lws_http_client_http_response(wsi);
        if (s->http_status == 401 || s->http_status == 403)
            snprintf(why, sizeof(why), "HTTP %d: the token was refused (check finnhub.token)",
                     s->http_status);
        else if (s->http_status > 0 && s->http_status != 101)
            snprintf(why, sizeof(why), "HTTP %d instead of a websocket upgrade (%s)",
                     s->http_status, in && len ? (const char *)in : "no details");
        else
            snprintf(why, sizeof(why), "%s (check finnhub.url and that the feed is reachable)",
                     in ? (const char *)in : "connection failed");
        connection_lost(s, why);
        break;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (wsi != s->wsi) s->wsi = wsi;
        set_state(s, CONN_OPEN);
        s->last_rx = mono_ms();
        s->live = 0;
        s->next_sub = 0;
        s->close_why[0] = '\0';
        count(s->m_connects, 1);
        if (s->nconnects++ > 0) count(s->m_reconnects, 1);
        host->log(s->task, SLUICE_LOG_INFO, "connected to %s; subscribing %zu symbol(s)",
                  s->where, s->nsyms);
        lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (wsi != s->wsi) break;
        if (s->close_why[0]) return -1;
        if (subscribe_next(s, wsi) != 0) return -1;
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (wsi != s->wsi) break;
        s->last_rx = mono_ms();
        receive(s, wsi, in, len);
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
        if (wsi == s->wsi) s->last_rx = mono_ms();
        break;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (wsi == s->wsi && len >= 2 && in) {
            const unsigned char *b = in;
            snprintf(s->close_why, sizeof(s->close_why), "closed by the server (code %d%s%.*s)",
                     b[0] << 8 | b[1], len > 2 ? ": " : "", (int)(len > 100 ? 98 : len - 2),
                     (const char *)in + 2);
        }
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        if (wsi != s->wsi) break;
        connection_lost(s, s->close_why[0] ? s->close_why : "connection closed");
        s->close_why[0] = '\0';
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {.name = "finnhub", .callback = callback, .per_session_data_size = 0, .rx_buffer_size = 0},
    {.name = NULL},
};

static void start_connect(fh_t *s) {
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = s->ctx;
    ci.address = s->url.host;
    ci.port = s->url.port;
    ci.path = s->path;
    ci.host = s->url.host;
    ci.origin = s->url.host;
    ci.ssl_connection = s->url.tls ? LCCSCF_USE_SSL : 0;
    ci.pwsi = &s->wsi;
    s->http_status = 0;
    s->close_why[0] = '\0';
    set_state(s, CONN_CONNECTING);
    /* the first attempt at INFO; retries are already announced by the
     * warning that scheduled them */
    host->log(s->task, s->attempt ? SLUICE_LOG_DEBUG : SLUICE_LOG_INFO, "connecting to %s",
              s->where);
    if (!lws_client_connect_via_info(&ci) && s->state == CONN_CONNECTING) {
        s->wsi = NULL;
        connection_lost(s, "the connection could not be started");
    }
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */
/* ------------------------------------------------------------------------ */

static void fh_free(fh_t *s) {
    if (!s) return;
    s->stopping = 1;
    if (s->ctx) {
        lws_sul_cancel(&s->wake);
        lws_context_destroy(s->ctx);
    }
    fh_url_free(&s->url);
    free(s->path);
    free(s->where);
    fh_symbols_free(s->syms, s->nsyms);
    free(s->topic);
    free(s->ca_file);
    free(s->rx);
    free(s);
}

static sluice_err_t get_int(sluice_task_t *task, const char *key, int64_t min, int64_t max,
                            int64_t *out) {
    sluice_err_t rc = host->config_int(task, key, out);
    if (rc != SLUICE_OK) return fail(task, SLUICE_ERR_CONFIG, "config '%s': %s", key, host->err2str(rc));
    if (*out < min || *out > max)
        return fail(task, SLUICE_ERR_CONFIG,
                    "config '%s' = %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", key,
                    *out, min, max);
    return SLUICE_OK;
}

/* Checks that the schema has the fields this plugin fills. */
static int schema_has(avro_schema_t schema, const char *const *fields, const char **missing) {
    for (; *fields; fields++)
        if (!avro_schema_record_field_get(schema, *fields)) {
            *missing = *fields;
            return 0;
        }
    return 1;
}

static int host_is_finnhub(const char *h) {
    size_t n = strlen(h);
    return strcmp(h, "finnhub.io") == 0 || (n > 11 && strcmp(h + n - 11, ".finnhub.io") == 0);
}

static const char *const default_ca_files[] = {
    "/etc/ssl/certs/ca-certificates.crt", /* Debian, Ubuntu, Alpine */
    "/etc/pki/tls/certs/ca-bundle.crt",   /* Fedora, RHEL */
    "/etc/ssl/cert.pem",                  /* macOS, BSDs */
    NULL,
};

static sluice_err_t setup(fh_t *s, sluice_task_t *task) {
    char err[256];
    sluice_err_t rc;
    const char *url = host->config_string(task, "finnhub.url");
    if (fh_url_parse(url, &s->url, err, sizeof(err)) != 0)
        return fail(task, SLUICE_ERR_CONFIG, "config 'finnhub.url': %s", err);
    const char *token = host->config_string(task, "finnhub.token");
    int url_has_token = strstr(s->url.path, "token=") != NULL;
    if ((!token || !*token) && !url_has_token && host_is_finnhub(s->url.host))
        return fail(task, SLUICE_ERR_CONFIG,
                    "config 'finnhub.token' is required for %s (set it, e.g. to "
                    "${env:FINNHUB_TOKEN})",
                    s->url.host);
    if (!(s->path = fh_url_path_with_token(&s->url, token)))
        return fail(task, SLUICE_ERR_FATAL, "out of memory");
    size_t qlen = strcspn(s->url.path, "?");
    if (asprintf(&s->where, "%s://%s%s%s:%d%.*s", s->url.tls ? "wss" : "ws",
                 strchr(s->url.host, ':') ? "[" : "", s->url.host,
                 strchr(s->url.host, ':') ? "]" : "", s->url.port, (int)qlen, s->url.path) < 0) {
        s->where = NULL;
        return fail(task, SLUICE_ERR_FATAL, "out of memory");
    }

    char **all = NULL;
    size_t nall = 0;
    if (fh_symbols_parse(host->config_string(task, "finnhub.symbols"), &all, &nall, err,
                         sizeof(err)) != 0)
        return fail(task, SLUICE_ERR_CONFIG, "config 'finnhub.symbols': %s", err);
    int id = host->task_id(task), n = host->task_count(task);
    if (n < 1) n = 1;
    if (!(s->syms = calloc(nall, sizeof(*s->syms)))) {
        fh_symbols_free(all, nall);
        return fail(task, SLUICE_ERR_FATAL, "out of memory");
    }
    for (size_t i = 0; i < nall; i++) {
        if ((int)(i % (size_t)n) == id) {
            s->syms[s->nsyms++] = all[i];
            all[i] = NULL;
        }
    }
    fh_symbols_free(all, nall);

    const char *topic = host->config_string(task, "topic");
    if (!topic || !*topic) return fail(task, SLUICE_ERR_CONFIG, "config 'topic' is empty");
    if (!(s->topic = strdup(topic))) return fail(task, SLUICE_ERR_FATAL, "out of memory");
    const char *fmt = host->config_string(task, "output.format");
    s->message_format = fmt && strcmp(fmt, "message") == 0;

    if ((rc = get_int(task, "finnhub.reconnect.backoff.initial.ms", 1, 3600000, &s->bo_initial_ms)) ||
        (rc = get_int(task, "finnhub.reconnect.backoff.max.ms", 1, 86400000, &s->bo_max_ms)) ||
        (rc = get_int(task, "finnhub.idle.timeout.ms", 100, 86400000, &s->idle_ms)) ||
        (rc = get_int(task, "finnhub.connect.timeout.ms", 100, 3600000, &s->connect_timeout_ms)) ||
        (rc = get_int(task, "finnhub.max.message.bytes", 1024, 1 << 30, &s->max_msg)))
        return rc;
    if (s->bo_max_ms < s->bo_initial_ms)
        return fail(task, SLUICE_ERR_CONFIG,
                    "config 'finnhub.reconnect.backoff.max.ms' (%" PRId64
                    ") is below 'finnhub.reconnect.backoff.initial.ms' (%" PRId64 ")",
                    s->bo_max_ms, s->bo_initial_ms);
    if ((rc = host->config_double(task, "finnhub.reconnect.backoff.jitter", &s->jitter)) !=
            SLUICE_OK ||
        !(s->jitter >= 0 && s->jitter <= 1))
        return fail(task, SLUICE_ERR_CONFIG,
                    "config 'finnhub.reconnect.backoff.jitter' must be a number in [0, 1]");

    const char *schema_name = s->message_format ? "finnhub_message" : "trades";
    if (!(s->schema = host->schema_get(task, schema_name)))
        return fail(task, SLUICE_ERR_CONFIG,
                    "schema '%s' (%s.avsc in the worker's schemas.path) is missing or invalid",
                    schema_name, schema_name);
    static const char *const trade_fields[] = {"symbol",     "price",       "volume",   "trade_time",
                                               "conditions", "ingest_time", "trade_id", NULL};
    static const char *const message_fields[] = {"data", "type", NULL};
    const char *missing = NULL;
    if (!is_avro_record(s->schema) ||
        !schema_has(s->schema, s->message_format ? message_fields : trade_fields, &missing))
        return fail(task, SLUICE_ERR_CONFIG, "schema '%s' is not a record with a field '%s'",
                    schema_name, missing ? missing : "...");

    const char *ca = host->config_string(task, "finnhub.ca.file");
    if (ca && *ca) {
        if (access(ca, R_OK) != 0)
            return fail(task, SLUICE_ERR_CONFIG, "config 'finnhub.ca.file': %s: %s", ca,
                        strerror(errno));
        s->ca_file = strdup(ca);
    } else {
        for (size_t i = 0; default_ca_files[i]; i++)
            if (access(default_ca_files[i], R_OK) == 0) {
                s->ca_file = strdup(default_ca_files[i]);
                break;
            }
    }

    pthread_once(&lws_log_once, lws_log_setup);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.user = s;
    info.fd_limit_per_thread = 8;
    info.connect_timeout_secs = (unsigned)((s->connect_timeout_ms + 999) / 1000);
    if (s->url.tls) {
        info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.client_ssl_ca_filepath = s->ca_file;
    }
    if (!(s->ctx = lws_create_context(&info)))
        return fail(task, SLUICE_ERR_FATAL, "lws_create_context failed");

    s->rnd = (unsigned)(host->now_ms() ^ ((int64_t)id << 20) ^ (int64_t)(uintptr_t)s);
    s->state = CONN_IDLE;
    s->next_connect = 0;
    return SLUICE_OK;
}

static sluice_err_t fh_start(sluice_task_t *task, void **state) {
    if (!task || !state) return SLUICE_ERR_INVALID_ARG;
    *state = NULL;
    fh_t *s = calloc(1, sizeof(*s));
    if (!s) return fail(task, SLUICE_ERR_FATAL, "out of memory allocating the task state");
    s->task = task;
    sluice_err_t rc = setup(s, task);
    if (rc != SLUICE_OK) {
        fh_free(s);
        return rc;
    }
    s->m_trades = host->metric_counter(task, "finnhub_trades_total", "valid trades received");
    s->m_messages = host->metric_counter(task, "finnhub_messages_total", "websocket messages received");
    s->m_bad_frames = host->metric_counter(task, "finnhub_bad_frames_total",
                                           "messages that could not be used at all");
    s->m_bad_trades = host->metric_counter(task, "finnhub_bad_trades_total",
                                           "invalid entries of trade messages");
    s->m_server_errors = host->metric_counter(task, "finnhub_server_errors_total",
                                              "{\"type\":\"error\"} messages from the server");
    s->m_pings = host->metric_counter(task, "finnhub_pings_total", "{\"type\":\"ping\"} messages");
    s->m_connects = host->metric_counter(task, "finnhub_connects_total", "websocket connections made");
    s->m_disconnects = host->metric_counter(task, "finnhub_disconnects_total",
                                            "open connections that were lost");
    s->m_reconnects = host->metric_counter(task, "finnhub_reconnects_total",
                                           "websocket connections made after the first one");
    s->m_dropped = host->metric_counter(task, "finnhub_records_dropped_total",
                                        "records that could not be built or emitted");
    s->m_connected = host->metric_gauge(task, "finnhub_connected", "1 while the websocket is open");
    if (s->nsyms == 0)
        host->log(task, SLUICE_LOG_WARN,
                  "no symbol for task %d of %d (fewer symbols than tasks): this task stays idle",
                  host->task_id(task), host->task_count(task));
    else
        host->log(task, SLUICE_LOG_INFO,
                  "reading %zu symbol(s) from %s into topic %s (output.format=%s)", s->nsyms,
                  s->where, s->topic, s->message_format ? "message" : "trade");
    *state = s;
    return SLUICE_OK;
}

static void wake_cb(lws_sorted_usec_list_t *sul) { (void)sul; }

static sluice_err_t fh_poll(void *state, sluice_task_t *task, int timeout_ms) {
    fh_t *s = state;
    if (!s || !task) return SLUICE_ERR_INVALID_ARG;
    if (timeout_ms < 0) timeout_ms = 0;
    if (s->nsyms == 0) {
        struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return SLUICE_ERR_NO_DATA;
    }
    s->emitted = 0;
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        int64_t now = mono_ms();
        if (s->state == CONN_IDLE && now >= s->next_connect) start_connect(s);
        if (s->state == CONN_CONNECTING && now - s->state_since > s->connect_timeout_ms) {
            char why[96];
            snprintf(why, sizeof(why), "no connection within finnhub.connect.timeout.ms=%" PRId64,
                     s->connect_timeout_ms);
            close_now(s, why);
        } else if (s->state == CONN_OPEN && now - s->last_rx > s->idle_ms && !s->close_why[0]) {
            char why[96];
            snprintf(why, sizeof(why), "nothing received for %" PRId64
                     " ms (finnhub.idle.timeout.ms)", now - s->last_rx);
            close_now(s, why);
        }
        int64_t until = deadline;
        if (s->state == CONN_IDLE && s->next_connect < until) until = s->next_connect;
        int64_t wait = until - now;
        if (wait < 1) wait = 1;
        lws_sul_schedule(s->ctx, 0, &s->wake, wake_cb, (lws_usec_t)wait * 1000);
        lws_service(s->ctx, 0);
        if (s->fatal || s->emitted || mono_ms() >= deadline) break;
    }
    lws_sul_cancel(&s->wake);
    if (s->fatal)
        return fail(task, SLUICE_ERR_FATAL, "emit failed: the task is failing");
    return s->emitted ? SLUICE_OK : SLUICE_ERR_NO_DATA;
}

static void fh_stop(void *state, sluice_task_t *task) {
    fh_t *s = state;
    if (!s) return;
    host->log(task, SLUICE_LOG_INFO, "stopping (%s)",
              s->state == CONN_OPEN ? "closing the websocket" : "not connected");
    fh_free(s);
}

static const sluice_config_def_t fh_config[] = {
    {.name = "finnhub.url", .type = SLUICE_CONFIG_STRING, .default_value = "wss://ws.finnhub.io",
     .doc = "Websocket URL of the feed; wss:// verifies the server certificate, ws:// for local feeds"},
    {.name = "finnhub.token", .type = SLUICE_CONFIG_STRING, .flags = SLUICE_CONFIG_SECRET,
     .doc = "Finnhub API key, sent as ?token=; use ${env:FINNHUB_TOKEN}. Required for *.finnhub.io"},
    {.name = "finnhub.symbols", .type = SLUICE_CONFIG_LIST, .flags = SLUICE_CONFIG_REQUIRED,
     .doc = "Symbols to subscribe: A,B or the .env syntax ['A','B']; spaces and colons are kept"},
    {.name = "topic", .type = SLUICE_CONFIG_STRING, .default_value = "trades",
     .doc = "Kafka topic the records are written to"},
    {.name = "output.format", .type = SLUICE_CONFIG_STRING, .default_value = "trade",
     .allowed = "trade|message",
     .doc = "trade: one record per trade (schema trades); message: one per message (finnhub_message)"},
    {.name = "finnhub.reconnect.backoff.initial.ms", .type = SLUICE_CONFIG_INT,
     .default_value = "500", .min = 1, .max = 3600000,
     .doc = "First reconnect delay; doubles after each failed attempt"},
    {.name = "finnhub.reconnect.backoff.max.ms", .type = SLUICE_CONFIG_INT,
     .default_value = "30000", .min = 1, .max = 86400000, .doc = "Cap of the reconnect delay"},
    {.name = "finnhub.reconnect.backoff.jitter", .type = SLUICE_CONFIG_DOUBLE,
     .default_value = "0.5", .min = 0, .max = 1,
     .doc = "Fraction of each delay drawn at random (0 = none, 1 = full jitter)"},
    {.name = "finnhub.idle.timeout.ms", .type = SLUICE_CONFIG_INT, .default_value = "60000",
     .min = 100, .max = 86400000,
     .doc = "A connection that receives nothing (pings count) for this long is reconnected"},
    {.name = "finnhub.connect.timeout.ms", .type = SLUICE_CONFIG_INT, .default_value = "10000",
     .min = 100, .max = 3600000, .doc = "Longest wait for a connection and its websocket upgrade"},
    {.name = "finnhub.max.message.bytes", .type = SLUICE_CONFIG_INT, .default_value = "8388608",
     .min = 1024, .max = 1073741824,
     .doc = "Larger websocket messages are dead-lettered (their first 4 KiB)"},
    {.name = "finnhub.ca.file", .type = SLUICE_CONFIG_STRING,
     .doc = "PEM CA bundle for wss:// (default: the system bundle)"},
    {.name = NULL},
};

static const sluice_source_ops_t fh_ops = {
    .struct_size = sizeof(sluice_source_ops_t),
    .start = fh_start,
    .poll = fh_poll,
    .commit = NULL,
    .stop = fh_stop,
};

static const sluice_plugin_t fh_plugin = {
    SLUICE_PLUGIN_HEADER,
    .kind = SLUICE_PLUGIN_SOURCE,
    .name = "source-finnhub",
    .version = "1.0.0",
    .description = "Finnhub trades over a websocket: one Avro record per trade (or per message)",
    .config = fh_config,
    .source = &fh_ops,
};

SLUICE_EXPORT const sluice_plugin_t *SLUICE_PLUGIN_ENTRY(const sluice_host_api_t *api) {
    if (!api || api->abi_major != SLUICE_ABI_MAJOR) return NULL;
    const char *missing = NULL;
#define NEED(member) \
    if (!missing && !SLUICE_HOST_HAS(api, member)) missing = #member
    NEED(log); NEED(config_string); NEED(config_int); NEED(config_double); NEED(task_id);
    NEED(task_count); NEED(schema_get); NEED(record_new); NEED(record_free);
    NEED(record_set_topic); NEED(record_set_key); NEED(record_set_value_avro);
    NEED(record_set_value_bytes); NEED(record_set_timestamp); NEED(emit); NEED(dead_letter);
    NEED(metric_counter); NEED(metric_gauge); NEED(metric_add); NEED(metric_set); NEED(now_ms);
    NEED(err2str); NEED(set_error);
#undef NEED
    if (missing) {
        if (SLUICE_HOST_HAS(api, log))
            api->log(NULL, SLUICE_LOG_ERROR, "source-finnhub: the host lacks the %s service",
                     missing);
        return NULL;
    }
    host = api;
    return &fh_plugin;
}
