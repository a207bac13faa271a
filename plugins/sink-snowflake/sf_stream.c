/*
 * sf_stream.c - the Snowpipe Streaming client (see sf_stream.h).
 */
#include "sf_stream.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

typedef struct sf_krow {
    int64_t offset;
    char *line;
    size_t len;
} sf_krow_t;

struct sf_channel {
    char *table, *name, *pipe;
    char *cont;     /* continuation token of the open channel */
    int open;       /* 0: (re)open before the next append */
    int64_t committed; /* offset after the committed token; -1 unknown */
    sf_krow_t *rows;   /* [head, sent) appended, [sent, n) not yet */
    size_t head, sent, n, cap;
    size_t unsent_bytes;
    int64_t unsent_since;
    int64_t progress_ms; /* monotonic: last append with none outstanding, or last commit seen */
};

struct sf_stream {
    sf_api_t *api;
    const sluice_host_api_t *host;
    sluice_task_t *task;
    char *base, *scheme;  /* account URL; "http" or "https" */
    char *db, *schema;    /* URL-escaped */
    char *ingest;         /* "<scheme>://<ingest host>" */
    char *scope;          /* the ingest host, as the scoped token's scope */
    char *token;          /* scoped token */
    int64_t token_ms;     /* when it was granted (monotonic) */
    int64_t budget_ms, backoff_max_ms, renew_ms, commit_timeout_ms;
    size_t max_bytes;
    uint64_t reopens, appends;
};

static void free_secret(char *p) {
    if (!p) return;
    OPENSSL_cleanse(p, strlen(p));
    free(p);
}

static char *esc(const char *s) {
    char *e = curl_easy_escape(NULL, s, 0);
    char *r = e ? strdup(e) : NULL;
    curl_free(e);
    return r;
}

sf_stream_t *sf_stream_new(const sf_stream_conf_t *c, sf_api_t *api,
                           const sluice_host_api_t *host, sluice_task_t *task) {
    sf_stream_t *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->api = api;
    s->host = host;
    s->task = task;
    s->budget_ms = c->retry_budget_ms;
    s->backoff_max_ms = c->backoff_max_ms > 0 ? c->backoff_max_ms : 1;
    s->renew_ms = c->token_renew_ms > 60000 ? c->token_renew_ms : 50 * 60 * 1000;
    s->max_bytes = c->max_request_bytes ? c->max_request_bytes : 4u << 20;
    s->commit_timeout_ms = c->commit_timeout_ms > 0 ? c->commit_timeout_ms : 120000;
    s->base = strdup(c->base);
    s->scheme = strndup(c->base, strcspn(c->base, ":"));
    s->db = esc(c->database ? c->database : "");
    s->schema = esc(c->schema ? c->schema : "");
    if (!s->base || !s->scheme || !s->db || !s->schema) {
        sf_stream_free(s);
        return NULL;
    }
    return s;
}

void sf_stream_free(sf_stream_t *s) {
    if (!s) return;
    free(s->base);
    free(s->scheme);
    free(s->db);
    free(s->schema);
    free(s->ingest);
    free(s->scope);
    free_secret(s->token);
    free(s);
}

uint64_t sf_stream_reopens(const sf_stream_t *s) { return s ? s->reopens : 0; }
uint64_t sf_stream_appends(const sf_stream_t *s) { return s ? s->appends : 0; }

/* ------------------------------------------------------------------------ */
/* Channels: the kept rows                                                   */
/* ------------------------------------------------------------------------ */

sf_channel_t *sf_channel_new(const char *table, const char *name) {
    sf_channel_t *ch = calloc(1, sizeof(*ch));
    if (!ch) return NULL;
    ch->committed = -1;
    ch->table = strdup(table);
    ch->name = strdup(name);
    size_t n = strlen(table) + 16;
    if ((ch->pipe = malloc(n))) snprintf(ch->pipe, n, "%s-STREAMING", table);
    if (!ch->table || !ch->name || !ch->pipe) {
        sf_channel_free(ch);
        return NULL;
    }
    return ch;
}

void sf_channel_free(sf_channel_t *ch) {
    if (!ch) return;
    for (size_t i = ch->head; i < ch->n; i++) free(ch->rows[i].line);
    free(ch->rows);
    free(ch->table);
    free(ch->name);
    free(ch->pipe);
    free(ch->cont);
    free(ch);
}

const char *sf_channel_name(const sf_channel_t *ch) { return ch->name; }
size_t sf_channel_unsent_rows(const sf_channel_t *ch) { return ch->n - ch->sent; }
size_t sf_channel_unsent_bytes(const sf_channel_t *ch) { return ch->unsent_bytes; }
int64_t sf_channel_unsent_since(const sf_channel_t *ch) { return ch->unsent_since; }
size_t sf_channel_pending(const sf_channel_t *ch) { return ch->n - ch->head; }
int64_t sf_channel_committed(const sf_channel_t *ch) { return ch->committed; }

int sf_channel_add(sf_channel_t *ch, int64_t offset, char *line, int64_t now_ms) {
    if (ch->n == ch->cap) {
        if (ch->head > 0 && ch->head >= ch->n / 2) { /* slide the kept rows down */
            memmove(ch->rows, ch->rows + ch->head, (ch->n - ch->head) * sizeof(*ch->rows));
            ch->n -= ch->head;
            ch->sent -= ch->head;
            ch->head = 0;
        } else {
            size_t cap = ch->cap ? ch->cap * 2 : 256;
            sf_krow_t *g = realloc(ch->rows, cap * sizeof(*g));
            if (!g) {
                free(line);
                return -1;
            }
            ch->rows = g;
            ch->cap = cap;
        }
    }
    size_t len = strlen(line);
    ch->rows[ch->n++] = (sf_krow_t){offset, line, len};
    if (ch->sent == ch->n - 1) ch->unsent_since = now_ms;
    ch->unsent_bytes += len + 1;
    return 0;
}

/* Rows at offsets below `next` are committed: drop them. Returns how many. */
static size_t drop_committed(sf_channel_t *ch, int64_t next) {
    size_t k = 0;
    if (next > ch->committed) ch->committed = next;
    if (ch->head < ch->n && ch->rows[ch->head].offset < ch->committed) ch->progress_ms = sf_mono_ms();
    while (ch->head < ch->n && ch->rows[ch->head].offset < ch->committed) {
        if (ch->head >= ch->sent) { /* committed by another writer before we sent it */
            ch->unsent_bytes -= ch->rows[ch->head].len + 1;
            ch->sent = ch->head + 1;
        }
        free(ch->rows[ch->head].line);
        ch->rows[ch->head].line = NULL;
        ch->head++;
        k++;
    }
    if (ch->sent == ch->n) ch->unsent_since = 0;
    return k;
}

/* ------------------------------------------------------------------------ */
/* HTTP                                                                      */
/* ------------------------------------------------------------------------ */

/* The "code" of the last answer's JSON error body, in code[]. */
static void answer_code(sf_stream_t *s, char *code, size_t n) {
    size_t len;
    const char *b = sf_api_body(s->api, &len);
    json_t *j = len ? json_loadb(b, len, 0, NULL) : NULL;
    const char *c = json_string_value(json_object_get(j, "code"));
    snprintf(code, n, "%s", c ? c : "");
    json_decref(j);
}

/* The answer as JSON (caller decrefs) or NULL. */
static json_t *answer_json(sf_stream_t *s) {
    size_t len;
    const char *b = sf_api_body(s->api, &len);
    return json_loadb(b, len, 0, NULL);
}

/* A JSON answer's string member, or the whole answer as plain text (the
 * endpoints answer either), trimmed. NULL when empty or OOM. */
static char *answer_text(sf_stream_t *s, const char *member) {
    json_t *j = answer_json(s);
    const char *v = json_string_value(json_object_get(j, member));
    size_t len;
    const char *b = v ? v : sf_api_body(s->api, &len);
    if (!v && j) b = ""; /* JSON, but without the member */
    while (*b && isspace((unsigned char)*b)) b++;
    size_t n = strlen(b);
    while (n && isspace((unsigned char)b[n - 1])) n--;
    char *r = n ? strndup(b, n) : NULL;
    json_decref(j);
    return r;
}

static sluice_err_t fetch_token(sf_stream_t *s, char *err, size_t errlen);

/* Sends r until it is answered with something other than a transient
 * failure, within the retry budget. scoped: authenticate with the scoped
 * token (else the JWT). resend: a transient failure may be sent again
 * as is (else only a 429 is, which Snowflake answers before doing
 * anything; the others return to the caller). A 401 renews the token once.
 * Returns the last HTTP status (0: transport failure, reason in err), or
 * -1 / -2 when no token could be had (fatal / retriable, reason in err). */
static long call(sf_stream_t *s, sf_http_req_t *r, int scoped, int resend, const char *what,
                 char *err, size_t errlen) {
    int64_t start = sf_mono_ms(), delay = 100;
    int renewed = 0;
    char why[512] = "";
    for (;;) {
        if (scoped) {
            if (!s->token || sf_mono_ms() - s->token_ms >= s->renew_ms) {
                sluice_err_t rc = fetch_token(s, err, errlen);
                if (rc != SLUICE_OK) return rc == SLUICE_ERR_RETRIABLE ? -2 : -1;
            }
            r->bearer = s->token;
            r->token_type = NULL;
        } else {
            if (!(r->bearer = sf_api_jwt(s->api))) {
                snprintf(err, errlen, "signing the JWT failed");
                return -1;
            }
            r->token_type = "KEYPAIR_JWT";
        }
        long st = sf_api_http(s->api, r, why, sizeof(why));
        if (st == 401 && !renewed) {
            renewed = 1;
            if (scoped) {
                free_secret(s->token);
                s->token = NULL;
            } else if (sf_api_renew_jwt(s->api) != 0) {
                snprintf(err, errlen, "signing the JWT failed");
                return -1;
            }
            s->host->log(s->task, SLUICE_LOG_WARN, "%s: HTTP 401: renewed the %s, trying again",
                         what, scoped ? "scoped token" : "JWT");
            continue;
        }
        if (!sf_http_transient(st) || (!resend && st != 429)) {
            if (st <= 0) snprintf(err, errlen, "%s: %s", what, why);
            else if (st != 200) sf_api_describe(s->api, st, what, err, errlen);
            return st;
        }
        if (st) sf_api_describe(s->api, st, what, why, sizeof(why));
        int64_t wait = sf_jitter(delay);
        if (sf_mono_ms() - start + wait > s->budget_ms) {
            snprintf(err, errlen, "%s: %s (retried for %" PRId64 " ms)", what,
                     why[0] ? why : "failed", sf_mono_ms() - start);
            return st;
        }
        s->host->log(s->task, SLUICE_LOG_DEBUG, "%s: %s: retrying in %" PRId64 " ms", what, why,
                     wait);
        sf_sleep_ms(wait);
        delay = delay * 2 > s->backoff_max_ms ? s->backoff_max_ms : delay * 2;
    }
}

/* What a failed call means for the task. */
static sluice_err_t call_error(long st, char *err, size_t errlen) {
    if (st == 401) { /* the same words as the SQL API client's */
        char why[512];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen,
                 "authentication refused (%s): check snowflake.url.name / "
                 "snowflake.account.name, snowflake.user.name and that the user's "
                 "RSA_PUBLIC_KEY matches snowflake.private.key",
                 why);
        return SLUICE_ERR_FATAL;
    }
    if (st == -2) return SLUICE_ERR_RETRIABLE;
    return st < 0 ? SLUICE_ERR_FATAL : sf_http_transient(st) ? SLUICE_ERR_RETRIABLE
                                                             : SLUICE_ERR_FATAL;
}

/* The ingest host (once) and a scoped token for it. */
static sluice_err_t fetch_token(sf_stream_t *s, char *err, size_t errlen) {
    char url[2048];
    long st;
    if (!s->ingest) {
        snprintf(url, sizeof(url), "%s/v2/streaming/hostname", s->base);
        sf_http_req_t r = {.method = "GET", .url = url};
        if ((st = call(s, &r, 0, 1, "GET /v2/streaming/hostname", err, errlen)) != 200)
            return call_error(st, err, errlen);
        char *h = answer_text(s, "hostname");
        if (!h || strpbrk(h, "/ \t\"?#@")) {
            snprintf(err, errlen, "GET /v2/streaming/hostname: no usable hostname in the answer");
            free(h);
            return SLUICE_ERR_FATAL;
        }
        for (char *p = h; *p; p++)
            if (*p == '_') *p = '-'; /* as Snowflake's SDKs do */
        size_t n = strlen(s->scheme) + strlen(h) + 4;
        if (!(s->ingest = malloc(n))) {
            free(h);
            snprintf(err, errlen, "out of memory");
            return SLUICE_ERR_RETRIABLE;
        }
        snprintf(s->ingest, n, "%s://%s", s->scheme, h);
        s->scope = h;
        s->host->log(s->task, SLUICE_LOG_INFO, "Snowpipe Streaming ingest host: %s", s->ingest);
    }
    char *scope = esc(s->scope);
    size_t bl = (scope ? strlen(scope) : 0) + 96;
    char *body = scope ? malloc(bl) : NULL;
    if (!body) {
        free(scope);
        snprintf(err, errlen, "out of memory");
        return SLUICE_ERR_RETRIABLE;
    }
    snprintf(body, bl, "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer&scope=%s",
             scope);
    free(scope);
    snprintf(url, sizeof(url), "%s/oauth/token", s->base);
    sf_http_req_t r = {.method = "POST", .url = url,
                       .content_type = "application/x-www-form-urlencoded", .body = body,
                       .body_len = strlen(body)};
    st = call(s, &r, 0, 1, "POST /oauth/token", err, errlen);
    free(body);
    if (st != 200) return call_error(st, err, errlen);
    char *tok = answer_text(s, "token");
    if (!tok || strpbrk(tok, " \t\r\n")) {
        free_secret(tok);
        snprintf(err, errlen, "POST /oauth/token: no token in the answer");
        return SLUICE_ERR_FATAL;
    }
    free_secret(s->token);
    s->token = tok;
    s->token_ms = sf_mono_ms();
    s->host->log(s->task, SLUICE_LOG_INFO, "Snowpipe Streaming: scoped token granted (renewed "
                                           "every %" PRId64 " s)", s->renew_ms / 1000);
    return SLUICE_OK;
}

/* ".../databases/D/schemas/S/pipes/P" on the ingest host, into url. */
static int pipe_url(sf_stream_t *s, char *url, size_t n, const char *data, const char *pipe) {
    char *p = esc(pipe);
    if (!p) return -1;
    int w = snprintf(url, n, "%s/v2/streaming/%sdatabases/%s/schemas/%s/pipes/%s", s->ingest,
                     data, s->db, s->schema, p);
    free(p);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

/* An offset token (a Kafka offset as text, or null) as the next offset. */
static int parse_token(json_t *tok, int64_t *next) {
    if (!tok || json_is_null(tok)) {
        *next = -1;
        return 0;
    }
    if (json_is_integer(tok) && json_integer_value(tok) >= 0) {
        *next = json_integer_value(tok) + 1;
        return 0;
    }
    const char *v = json_string_value(tok);
    if (!v || !*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 18) return -1;
    *next = strtoll(v, NULL, 10) + 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Open, append, status                                                      */
/* ------------------------------------------------------------------------ */

sluice_err_t sf_channel_open(sf_stream_t *s, sf_channel_t *ch, int64_t *next, char *err,
                             size_t errlen) {
    char url[4096], what[600];
    snprintf(what, sizeof(what), "open channel %s", ch->name);
    if (!s->ingest) { /* the ingest host comes with the first token */
        sluice_err_t rc = fetch_token(s, err, errlen);
        if (rc != SLUICE_OK) return rc;
    }
    char *name = esc(ch->name);
    size_t l;
    if (!name || pipe_url(s, url, sizeof(url), "", ch->pipe) != 0 ||
        (l = strlen(url), snprintf(url + l, sizeof(url) - l, "/channels/%s", name) < 0)) {
        free(name);
        snprintf(err, errlen, "%s: name too long or out of memory", what);
        return SLUICE_ERR_FATAL;
    }
    free(name);
    sf_http_req_t r = {.method = "PUT", .url = url, .content_type = "application/json",
                       .body = "{}", .body_len = 2};
    long st = call(s, &r, 1, 1, what, err, errlen);
    if (st != 200) return call_error(st, err, errlen);
    json_t *j = answer_json(s);
    const char *cont = json_string_value(json_object_get(j, "next_continuation_token"));
    json_t *tok = json_object_get(json_object_get(j, "channel_status"),
                                  "last_committed_offset_token");
    int64_t nx;
    if (!cont || parse_token(tok, &nx) != 0) {
        snprintf(err, errlen, "%s: %s", what,
                 !cont ? "the answer has no next_continuation_token"
                       : "last_committed_offset_token is not a Kafka offset (was the channel "
                         "written by something else?)");
        json_decref(j);
        return SLUICE_ERR_FATAL;
    }
    char *c = strdup(cont);
    json_decref(j);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return SLUICE_ERR_RETRIABLE;
    }
    free(ch->cont);
    ch->cont = c;
    ch->open = 1;
    ch->committed = -1; /* what Snowflake says now, even if lower (a recreated channel) */
    drop_committed(ch, nx);
    ch->committed = nx;
    /* what Snowflake had not committed is gone with the reopen: send it again */
    if (ch->sent != ch->head) {
        for (size_t i = ch->head; i < ch->sent; i++) ch->unsent_bytes += ch->rows[i].len + 1;
        ch->sent = ch->head;
        ch->unsent_since = s->host->now_ms();
    }
    *next = nx;
    return SLUICE_OK;
}

/* One append of rows [sent, end): the HTTP status, or what call() returns. */
static long append(sf_stream_t *s, sf_channel_t *ch, size_t end, char *err, size_t errlen) {
    size_t len = 0;
    for (size_t i = ch->sent; i < end; i++) len += ch->rows[i].len + 1;
    char *body = malloc(len + 1), *p = body;
    char *cont = esc(ch->cont), *name = esc(ch->name);
    char url[4096];
    long st = -2; /* retriable: out of memory */
    size_t l;
    if (!body || !cont || !name || pipe_url(s, url, sizeof(url), "data/", ch->pipe) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    l = strlen(url);
    snprintf(url + l, sizeof(url) - l,
             "/channels/%s/rows?continuationToken=%s&offsetToken=%" PRId64, name, cont,
             ch->rows[end - 1].offset);
    for (size_t i = ch->sent; i < end; i++) {
        memcpy(p, ch->rows[i].line, ch->rows[i].len);
        p += ch->rows[i].len;
        *p++ = '\n';
    }
    char what[600];
    snprintf(what, sizeof(what), "append %zu row(s) to channel %s", end - ch->sent, ch->name);
    sf_http_req_t r = {.method = "POST", .url = url, .content_type = "application/x-ndjson",
                       .body = body, .body_len = len, .fresh = 1};
    st = call(s, &r, 1, 0, what, err, errlen);
    s->appends++;
out:
    free(body);
    free(cont);
    free(name);
    return st;
}

sluice_err_t sf_channel_flush(sf_stream_t *s, sf_channel_t *ch, char *err, size_t errlen) {
    int64_t start = sf_mono_ms(), delay = 100;
    int reopen_now = 0;
    while (ch->sent < ch->n || (!ch->open && ch->head < ch->n)) {
        if (!ch->open) {
            int64_t next;
            sluice_err_t rc = sf_channel_open(s, ch, &next, err, errlen);
            if (rc != SLUICE_OK) return rc;
            continue;
        }
        size_t end = ch->sent, bytes = 0;
        while (end < ch->n && (end == ch->sent || bytes + ch->rows[end].len + 1 <= s->max_bytes))
            bytes += ch->rows[end++].len + 1;
        long st = append(s, ch, end, err, errlen);
        if (st == 200) {
            json_t *j = answer_json(s);
            const char *next = json_string_value(json_object_get(j, "next_continuation_token"));
            char *c = next ? strdup(next) : NULL;
            json_decref(j);
            if (!c) { /* received, but we cannot go on from it: reopen */
                ch->open = 0;
                continue;
            }
            free(ch->cont);
            ch->cont = c;
            if (ch->sent == ch->head) ch->progress_ms = sf_mono_ms(); /* the first outstanding */
            ch->unsent_bytes -= bytes;
            ch->sent = end;
            if (ch->sent == ch->n) ch->unsent_since = 0;
            delay = 100;
            continue;
        }
        if (st < 0) return call_error(st, err, errlen);
        char code[96];
        answer_code(s, code, sizeof(code));
        int stale = (st == 400 && strcmp(code, "STALE_CONTINUATION_TOKEN_SEQUENCER") == 0) ||
                    (st == 404 && strstr(code, "CHANNEL"));
        if (!stale && !sf_http_transient(st)) return call_error(st, err, errlen);
        /* Stale token, channel gone, or an append whose fate is unknown
         * (no answer, 5xx): reopen, which drops what Snowflake did not
         * commit, and send every kept row above the committed token. */
        ch->open = 0;
        s->reopens++;
        s->host->log(s->task, stale ? SLUICE_LOG_INFO : SLUICE_LOG_DEBUG,
                     "channel %s: %s: reopening it and resending what is not committed",
                     ch->name, stale ? code : err);
        if (stale && !reopen_now) {
            reopen_now = 1; /* once at once; again only after a back-off */
            continue;
        }
        int64_t wait = sf_jitter(delay);
        if (sf_mono_ms() - start + wait > s->budget_ms) return SLUICE_ERR_RETRIABLE;
        sf_sleep_ms(wait);
        delay = delay * 2 > s->backoff_max_ms ? s->backoff_max_ms : delay * 2;
    }
    return SLUICE_OK;
}

sluice_err_t sf_stream_refresh(sf_stream_t *s, sf_channel_t *const *chs, size_t n,
                               size_t *committed, char *err, size_t errlen) {
    if (committed) *committed = 0;
    char *done = calloc(n ? n : 1, 1);
    if (!done) {
        snprintf(err, errlen, "out of memory");
        return SLUICE_ERR_RETRIABLE;
    }
    sluice_err_t rc = SLUICE_OK;
    for (size_t i = 0; i < n && rc == SLUICE_OK; i++) {
        if (done[i] || !chs[i]) continue;
        if (!s->ingest && (rc = fetch_token(s, err, errlen)) != SLUICE_OK) break;
        const char *pipe = chs[i]->pipe;
        json_t *names = json_array();
        for (size_t k = i; k < n; k++)
            if (!done[k] && chs[k] && strcmp(chs[k]->pipe, pipe) == 0)
                json_array_append_new(names, json_string(chs[k]->name));
        json_t *req = json_pack("{s:o}", "channel_names", names);
        char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        char url[4096], what[600];
        if (!body || pipe_url(s, url, sizeof(url), "", pipe) != 0 ||
            strlen(url) + 24 > sizeof(url)) {
            free(body);
            snprintf(err, errlen, "out of memory");
            rc = SLUICE_ERR_RETRIABLE;
            break;
        }
        strcat(url, ":bulk-channel-status");
        snprintf(what, sizeof(what), "bulk channel status of %s", pipe);
        sf_http_req_t r = {.method = "POST", .url = url, .content_type = "application/json",
                           .body = body, .body_len = strlen(body)};
        long st = call(s, &r, 1, 1, what, err, errlen);
        free(body);
        if (st != 200) {
            rc = call_error(st, err, errlen);
            break;
        }
        json_t *j = answer_json(s);
        json_t *statuses = json_object_get(j, "channel_statuses");
        for (size_t k = i; k < n; k++) {
            sf_channel_t *ch = chs[k];
            if (done[k] || !ch || strcmp(ch->pipe, pipe) != 0) continue;
            done[k] = 1;
            json_t *cs = NULL, *v;
            const char *key;
            json_object_foreach(statuses, key, v) {
                if (strcasecmp(key, ch->name) == 0) cs = v;
            }
            int64_t nx;
            if (!cs) { /* dropped: what it had not committed is gone */
                if (ch->open)
                    s->host->log(s->task, SLUICE_LOG_WARN,
                                 "channel %s is unknown to Snowflake: reopening it", ch->name);
                ch->open = 0;
                continue;
            }
            if (parse_token(json_object_get(cs, "last_committed_offset_token"), &nx) != 0) {
                snprintf(err, errlen, "channel %s: last_committed_offset_token is not a Kafka "
                                      "offset", ch->name);
                rc = SLUICE_ERR_FATAL;
                continue;
            }
            size_t k2 = drop_committed(ch, nx);
            if (committed) *committed += k2;
            if (ch->open && ch->sent > ch->head &&
                sf_mono_ms() - ch->progress_ms > s->commit_timeout_ms) {
                /* appended, never committed (lost by a failed server?):
                 * reopening drops them for sure; the next flush resends */
                s->host->log(s->task, SLUICE_LOG_WARN,
                             "channel %s: %zu appended row(s) not committed after %" PRId64
                             " ms: reopening it and sending them again",
                             ch->name, ch->sent - ch->head, sf_mono_ms() - ch->progress_ms);
                ch->open = 0;
                s->reopens++;
            }
        }
        json_decref(j);
    }
    free(done);
    return rc;
}
