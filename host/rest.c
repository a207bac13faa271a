/* rest.c - see rest.h. libmicrohttpd, a thread per connection (at most 64);
 * each request is routed by (method, path pattern) to a herder verb. */
#include "latest.h"
#include "ui.h"
#include "rest.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_SEGMENTS 8

struct sl_rest {
    struct MHD_Daemon *daemon;
    sl_herder_t *herder;
    sl_metrics_t *metrics;
    struct sl_latest *latest;
    sluice_metric_t *requests, *errors;
    char *token;       /* rest.auth.token, or NULL */
    size_t max_body;   /* rest.max.body.bytes */
    double rate;       /* rest.rate.limit (requests/s; 0 = off) */
    pthread_mutex_t lock;
    double tokens;     /* the rate limiter's bucket */
    int64_t refilled_ms;
    char *bootstrap;
    char *cluster_id;  /* fetched at the first GET / */
    char worker_id[300];
};

/* One request being read. */
typedef struct request {
    char *body;
    size_t len;
    int too_big;
    int refused; /* 401 or 429, decided when the headers arrived */
} request_t;

/* A routed call. */
typedef struct call {
    sl_rest_t *r;
    struct MHD_Connection *conn;
    char *seg[MAX_SEGMENTS];
    int nseg;
    json_t *body;
} call_t;

typedef int (*handler_fn)(call_t *c, json_t **out);

/* --- helpers -------------------------------------------------------------------- */

static enum MHD_Result send_text(sl_rest_t *r, struct MHD_Connection *conn, int status, char *text,
                                 const char *type) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        text ? strlen(text) : 0, text ? text : (void *)"", text ? MHD_RESPMEM_MUST_FREE
                                                                : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    if (text) MHD_add_response_header(resp, "Content-Type", type);
    if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    if (status >= 400) sl_metric_add(r->errors, 1);
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result send_json(sl_rest_t *r, struct MHD_Connection *conn, int status, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return send_text(r, conn, status, text, "application/json");
}

static enum MHD_Result send_error(sl_rest_t *r, struct MHD_Connection *conn, int status, const char *msg) {
    json_t *body;
    sl_herder_error(&body, status, "%s", msg);
    return send_json(r, conn, status, body);
}

static const char *arg(call_t *c, const char *name) {
    return MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* Kafka Connect's boolean query parameters: "true" (any case) or not. */
static int arg_true(call_t *c, const char *name) {
    const char *v = arg(c, name);
    return v && strcasecmp(v, "true") == 0;
}

static int parse_task(call_t *c, int *id, json_t **out) {
    char *end;
    long v = strtol(c->seg[3], &end, 10);
    if (!*c->seg[3] || *end || v < 0 || v > 1000000)
        return sl_herder_error(out, 404, "Task id '%s' is not a task number", c->seg[3]);
    *id = (int)v;
    return 0;
}

#define H (c->r->herder)
#define NAME (c->seg[1])

/* --- handlers ------------------------------------------------------------------- */

static int root_info(call_t *c, json_t **out) {
    sl_rest_t *r = c->r;
    pthread_mutex_lock(&r->lock);
    if (!r->cluster_id) {
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", r->bootstrap, err, sizeof(err));
        rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!rk) rd_kafka_conf_destroy(conf);
        char *id = rk ? rd_kafka_clusterid(rk, 5000) : NULL;
        if (id) r->cluster_id = strdup(id);
        if (id) rd_kafka_mem_free(rk, id);
        if (rk) rd_kafka_destroy(rk);
    }
    *out = json_pack("{ssss}", "version", SLUICE_VERSION, "commit", SLUICE_VERSION);
    json_object_set_new(*out, "kafka_cluster_id",
                        r->cluster_id ? json_string(r->cluster_id) : json_null());
    pthread_mutex_unlock(&r->lock);
    return 200;
}

/* expand may be given twice (?expand=status&expand=info). */
static enum MHD_Result collect_expand(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value) {
    (void)kind;
    int *want = cls;
    if (strcmp(key, "expand") == 0 && value) {
        if (strcmp(value, "status") == 0) want[0] = 1;
        if (strcmp(value, "info") == 0) want[1] = 1;
    }
    return MHD_YES;
}

static int list(call_t *c, json_t **out) {
    int want[2] = {0, 0};
    MHD_get_connection_values(c->conn, MHD_GET_ARGUMENT_KIND, collect_expand, want);
    return H->ops->list(H, want[0], want[1], out);
}

static int create(call_t *c, json_t **out) { return H->ops->create(H, c->body, out); }
static int info(call_t *c, json_t **out) { return H->ops->info(H, NAME, out); }
static int del(call_t *c, json_t **out) { return H->ops->remove(H, NAME, out); }
static int get_config(call_t *c, json_t **out) { return H->ops->get_config(H, NAME, out); }
static int put_config(call_t *c, json_t **out) { return H->ops->put_config(H, NAME, c->body, out); }
static int patch_config(call_t *c, json_t **out) {
    return H->ops->patch_config(H, NAME, c->body, out);
}
static int status(call_t *c, json_t **out) { return H->ops->status(H, NAME, out); }
static int pause_conn(call_t *c, json_t **out) { return H->ops->set_target(H, NAME, SL_TARGET_PAUSED, out); }
static int resume_conn(call_t *c, json_t **out) {
    return H->ops->set_target(H, NAME, SL_TARGET_RUNNING, out);
}
static int stop_conn(call_t *c, json_t **out) { return H->ops->set_target(H, NAME, SL_TARGET_STOPPED, out); }
static int restart(call_t *c, json_t **out) {
    return H->ops->restart(H, NAME, arg_true(c, "includeTasks"), arg_true(c, "onlyFailed"), out);
}
static int tasks(call_t *c, json_t **out) { return H->ops->tasks(H, NAME, out); }
static int task_status(call_t *c, json_t **out) {
    int id;
    return parse_task(c, &id, out) ? 404 : H->ops->task_status(H, NAME, id, out);
}
static int task_restart(call_t *c, json_t **out) {
    int id;
    return parse_task(c, &id, out) ? 404 : H->ops->task_restart(H, NAME, id, out);
}
static int topics(call_t *c, json_t **out) { return H->ops->topics(H, NAME, 0, out); }
static int topics_reset(call_t *c, json_t **out) { return H->ops->topics(H, NAME, 1, out); }
static int offsets(call_t *c, json_t **out) { return H->ops->offsets(H, NAME, out); }
static int alter_offsets(call_t *c, json_t **out) {
    return H->ops->alter_offsets(H, NAME, c->body, out);
}
static int reset_offsets(call_t *c, json_t **out) { return H->ops->alter_offsets(H, NAME, NULL, out); }
/* GET /connectors/{name}/latest: the latest record per key the sink got
 * (latest.h); 404 when the connector keeps none. */
static int latest(call_t *c, json_t **out) {
    if ((*out = sl_latest_json(c->r->latest, NAME)) != NULL) return 200;
    int rc = H->ops->locate ? H->ops->locate(H, NAME, out) : 0; /* another worker's? */
    if (rc) return rc;
    sl_herder_error(out, 404,
                    "Connector %s has no latest records (not a running sink with "
                    "latest.records.max > 0, or nothing put yet)",
                    NAME);
    return 404;
}
static int plugins(call_t *c, json_t **out) {
    const char *only = arg(c, "connectorsOnly");
    return H->ops->plugins(H, !only || strcasecmp(only, "false") != 0, out);
}
static int validate(call_t *c, json_t **out) { return H->ops->validate(H, c->seg[1], c->body, out); }

static int loggers(call_t *c, json_t **out) {
    (void)c;
    *out = json_pack("{s{ss}}", "root", "level", sl_log_level_name(sl_log_get_level()));
    sl_logger_level_t *l;
    size_t n = sl_log_component_levels(&l);
    for (size_t i = 0; i < n; i++) {
        json_object_set_new(*out, l[i].name, json_pack("{ss}", "level", sl_log_level_name(l[i].level)));
        free(l[i].name);
    }
    free(l);
    return 200;
}

static int logger(call_t *c, json_t **out) {
    const char *name = c->seg[2];
    sluice_log_level_t level = sl_log_get_level();
    sl_logger_level_t *l;
    size_t n = sl_log_component_levels(&l);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(l[i].name, name) == 0) level = l[i].level;
        free(l[i].name);
    }
    free(l);
    *out = json_pack("{ss}", "level", sl_log_level_name(level));
    return 200;
}

static int set_logger(call_t *c, json_t **out) {
    const char *name = c->seg[2];
    const char *lv = json_string_value(json_object_get(c->body, "level"));
    if (!lv) return sl_herder_error(out, 400, "Desired 'level' parameter was not specified in request.");
    int level = sl_log_parse_level(lv);
    if (level < 0)
        return sl_herder_error(out, 400, "Invalid level '%s', must be one of ERROR, WARN, INFO, DEBUG", lv);
    if (strcmp(name, "root") == 0)
        sl_log_set_level((sluice_log_level_t)level);
    else if (sl_log_set_component_level(name, level) != 0)
        return sl_herder_error(out, 500, "out of memory");
    SL_INFO("rest", "log level of %s set to %s", name, sl_log_level_name((sluice_log_level_t)level));
    *out = json_pack("[s]", name);
    return 200;
}

/* --- routing -------------------------------------------------------------------- */

typedef struct route {
    const char *method;
    const char *pattern; /* '/'-separated; "*" is any one segment */
    int body;            /* a JSON body is required */
    handler_fn fn;
} route_t;

static const route_t routes[] = {
    {"GET", "", 0, root_info},
    {"GET", "connectors", 0, list},
    {"POST", "connectors", 1, create},
    {"GET", "connectors/*", 0, info},
    {"DELETE", "connectors/*", 0, del},
    {"GET", "connectors/*/config", 0, get_config},
    {"PUT", "connectors/*/config", 1, put_config},
    {"PATCH", "connectors/*/config", 1, patch_config},
    {"GET", "connectors/*/status", 0, status},
    {"POST", "connectors/*/restart", 0, restart},
    {"PUT", "connectors/*/pause", 0, pause_conn},
    {"PUT", "connectors/*/resume", 0, resume_conn},
    {"PUT", "connectors/*/stop", 0, stop_conn},
    {"GET", "connectors/*/tasks", 0, tasks},
    {"GET", "connectors/*/tasks/*/status", 0, task_status},
    {"POST", "connectors/*/tasks/*/restart", 0, task_restart},
    {"GET", "connectors/*/topics", 0, topics},
    {"PUT", "connectors/*/topics/reset", 0, topics_reset},
    {"GET", "connectors/*/offsets", 0, offsets},
    {"GET", "connectors/*/latest", 0, latest},
    {"PATCH", "connectors/*/offsets", 1, alter_offsets},
    {"DELETE", "connectors/*/offsets", 0, reset_offsets},
    {"GET", "connector-plugins", 0, plugins},
    {"PUT", "connector-plugins/*/config/validate", 1, validate},
    {"GET", "admin/loggers", 0, loggers},
    {"GET", "admin/loggers/*", 0, logger},
    {"PUT", "admin/loggers/*", 1, set_logger},
};

static int matches(const char *pattern, char *const *seg, int nseg) {
    char copy[128], *save = NULL;
    snprintf(copy, sizeof(copy), "%s", pattern);
    int i = 0;
    for (char *p = strtok_r(copy, "/", &save); p; p = strtok_r(NULL, "/", &save), i++)
        if (i >= nseg || (strcmp(p, "*") != 0 && strcmp(p, seg[i]) != 0)) return 0;
    return i == nseg;
}

static int is_json(struct MHD_Connection *conn) {
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (!ct) return 0;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* --- forwarding to the worker that runs a connector (SL_HERDER_FORWARD) ------------ */

/* Marks a forwarded request: its receiver answers, never forwards again. */
#define FORWARDED_HEADER "X-Sluice-Forwarded-By"
#define FORWARD_MAX_BODY (64u << 20)

typedef struct grown {
    char *data;
    size_t len;
    int too_big;
} grown_t;

static size_t on_forward_body(char *p, size_t size, size_t n, void *cls) {
    grown_t *g = cls;
    size_t add = size * n;
    if (g->len + add > FORWARD_MAX_BODY) {
        g->too_big = 1;
        return 0;
    }
    char *more = realloc(g->data, g->len + add + 1);
    if (!more) return 0;
    memcpy(more + g->len, p, add);
    g->data = more;
    g->len += add;
    g->data[g->len] = '\0';
    return add;
}

typedef struct query {
    CURL *curl;
    FILE *f;
    int n;
} query_t;

static enum MHD_Result add_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value) {
    (void)kind;
    query_t *q = cls;
    char *k = curl_easy_escape(q->curl, key, 0), *v = value ? curl_easy_escape(q->curl, value, 0) : NULL;
    if (k) fprintf(q->f, "%c%s%s%s", q->n++ ? '&' : '?', k, v ? "=" : "", v ? v : "");
    curl_free(k);
    curl_free(v);
    return MHD_YES;
}

/* "<base>/<seg>/<seg>...?<args>" of this request, each part escaped again
 * (MHD hands them decoded). New string or NULL. */
static char *forward_url(CURL *curl, const char *base, const call_t *c) {
    char *url = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&url, &len);
    if (!f) return NULL;
    fputs(base, f);
    for (int i = 0; i < c->nseg; i++) {
        char *e = curl_easy_escape(curl, c->seg[i], 0);
        fprintf(f, "/%s", e ? e : "");
        curl_free(e);
    }
    query_t q = {.curl = curl, .f = f};
    MHD_get_connection_values(c->conn, MHD_GET_ARGUMENT_KIND, add_query_arg, &q);
    fclose(f);
    return url;
}

/* Sends this request (method, path, query, body, Authorization) to the
 * worker *target names and answers what it answered; 409 when it cannot
 * be asked. */
static enum MHD_Result forward(call_t *c, const char *method, const request_t *req, json_t *target) {
    sl_rest_t *r = c->r;
    const char *base = json_string_value(json_object_get(target, "url"));
    const char *owner = json_string_value(json_object_get(target, "worker_id"));
    const char *by = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, FORWARDED_HEADER);
    char msg[1024];
    if (by || !base) {
        /* the worker the owner's status names does not run it (any more):
         * statuses lag a move by a second or so */
        snprintf(msg, sizeof(msg),
                 "Connector %s is not running on worker %s, which its status names as its owner; "
                 "it may be moving: retry",
                 c->nseg > 1 ? c->seg[1] : "?", r->worker_id);
        json_decref(target);
        return send_error(r, c->conn, 409, msg);
    }
    CURL *curl = curl_easy_init();
    char *url = curl ? forward_url(curl, base, c) : NULL;
    struct curl_slist *hdrs = NULL;
    char line[400];
    snprintf(line, sizeof(line), FORWARDED_HEADER ": %s", r->worker_id);
    hdrs = curl_slist_append(hdrs, line);
    const char *auth = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Authorization");
    char *auth_line = NULL;
    if (auth && asprintf(&auth_line, "Authorization: %s", auth) > 0) hdrs = curl_slist_append(hdrs, auth_line);
    const char *ct = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Content-Type");
    if (ct && req->body) {
        snprintf(line, sizeof(line), "Content-Type: %s", ct);
        hdrs = curl_slist_append(hdrs, line);
    }
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    grown_t got = {0};
    CURLcode e = CURLE_OUT_OF_MEMORY;
    long status = 0;
    if (url && hdrs) {
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        /* below MHD's 30 s connection timeout of our own client */
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 25000L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_forward_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &got);
        if (req->body) {
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body);
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->len);
        }
        e = curl_easy_perform(curl);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }
    enum MHD_Result rc;
    if (e == CURLE_OK && status >= 100 && status <= 599) {
        char *type = NULL;
        curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
        SL_DEBUG("rest", "%s %s forwarded to %s: %ld", method, url, owner ? owner : base, status);
        char *text = got.data;
        got.data = NULL;
        rc = send_text(r, c->conn, (int)status, text, type ? type : "application/json");
    } else {
        snprintf(msg, sizeof(msg),
                 "Connector %s runs on worker %s, which could not be asked (%s); retry later",
                 c->nseg > 1 ? c->seg[1] : "?", owner ? owner : base,
                 got.too_big ? "answer too large" : curl_easy_strerror(e));
        rc = send_error(r, c->conn, 409, msg);
    }
    free(got.data);
    free(url);
    free(auth_line);
    curl_slist_free_all(hdrs);
    if (curl) curl_easy_cleanup(curl);
    json_decref(target);
    return rc;
}

static enum MHD_Result dispatch(sl_rest_t *r, struct MHD_Connection *conn, const char *method,
                                const char *url, request_t *req) {
    call_t c = {.r = r, .conn = conn};
    char *path = strdup(url), *save = NULL;
    if (!path) return MHD_NO;
    for (char *s = strtok_r(path, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (c.nseg == MAX_SEGMENTS) {
            free(path);
            return send_error(r, conn, 404, "HTTP 404 Not Found");
        }
        c.seg[c.nseg++] = s;
    }
    const route_t *hit = NULL;
    int path_known = 0;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && !hit; i++) {
        if (!matches(routes[i].pattern, c.seg, c.nseg)) continue;
        path_known = 1;
        if (strcmp(routes[i].method, method) == 0) hit = &routes[i];
    }
    enum MHD_Result rc;
    json_t *out = NULL;
    if (!hit) {
        rc = path_known ? send_error(r, conn, 405, "HTTP 405 Method Not Allowed")
                        : send_error(r, conn, 404, "HTTP 404 Not Found");
    } else if (hit->body && !is_json(conn)) {
        rc = send_error(r, conn, 415, "HTTP 415 Unsupported Media Type");
    } else {
        json_error_t je;
        if (hit->body) c.body = json_loadb(req->body ? req->body : "", req->len, 0, &je);
        if (hit->body && !c.body) {
            char msg[300];
            snprintf(msg, sizeof(msg), "Request body is not valid JSON: %s (line %d, column %d)", je.text,
                     je.line, je.column);
            rc = send_error(r, conn, 400, msg);
        } else {
            int status = hit->fn(&c, &out);
            SL_DEBUG("rest", "%s %s: %d", method, url, status);
            rc = status == SL_HERDER_FORWARD ? forward(&c, method, req, out) : send_json(r, conn, status, out);
        }
    }
    json_decref(c.body);
    free(path);
    return rc;
}

/* A token bucket: rate per second, as many in a burst. */
static int rate_ok(sl_rest_t *r) {
    if (r->rate <= 0) return 1;
    pthread_mutex_lock(&r->lock);
    int64_t now = sl_mono_ms();
    r->tokens += (double)(now - r->refilled_ms) * r->rate / 1000.0;
    if (r->tokens > r->rate) r->tokens = r->rate;
    r->refilled_ms = now;
    int ok = r->tokens >= 1.0;
    if (ok) r->tokens -= 1.0;
    pthread_mutex_unlock(&r->lock);
    return ok;
}

/* Constant time over the expected token, so timing does not reveal it. */
static int token_ok(sl_rest_t *r, struct MHD_Connection *conn) {
    if (!r->token) return 1;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    const char *given = h + 7;
    size_t n = strlen(r->token), g = strlen(given);
    unsigned diff = (unsigned)(n ^ g);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)r->token[i] ^ (unsigned char)given[i < g ? i : 0];
    return diff == 0;
}

/* GET /metrics: Prometheus text. */
static enum MHD_Result metrics(sl_rest_t *r, struct MHD_Connection *conn) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return send_error(r, conn, 500, "out of memory");
    sl_metrics_write(r->metrics, f);
    fclose(f);
    return send_text(r, conn, 200, text, "text/plain; version=0.0.4");
}

static enum MHD_Result answer(sl_rest_t *r, struct MHD_Connection *conn, const char *method,
                              const char *url, request_t *req) {
    if (req->refused == 401)
        return send_error(r, conn, 401, "Authorization required: send \"Authorization: Bearer <token>\"");
    if (req->refused == 429) return send_error(r, conn, 429, "Too many requests; retry later");
    if (req->too_big) {
        char msg[128];
        snprintf(msg, sizeof(msg), "Request body is larger than rest.max.body.bytes (%zu)", r->max_body);
        return send_error(r, conn, 413, msg);
    }
    if (strcmp(method, "GET") == 0 && strcmp(url, "/metrics") == 0) return metrics(r, conn);
    if (strcmp(method, "GET") == 0 && strcmp(url, "/ui") == 0) {
        char *page = strdup(sl_ui_html);
        if (!page) return send_error(r, conn, 500, "out of memory");
        return send_text(r, conn, 200, page, "text/html; charset=utf-8");
    }
    return dispatch(r, conn, method, url, req);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    sl_rest_t *r = cls;
    request_t *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof(*req));
        if (!req) return MHD_NO;
        *con_cls = req;
        /* The limit first: it also bounds guessing at the token. */
        if (!rate_ok(r))
            req->refused = 429;
        else if (!token_ok(r, conn))
            req->refused = 401;
        return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body: kept unless refused or too big */
        size_t n = *upload_size;
        *upload_size = 0;
        if (req->refused || req->too_big) return MHD_YES;
        if (req->len + n > r->max_body) {
            req->too_big = 1;
            free(req->body);
            req->body = NULL;
            req->len = 0;
            return MHD_YES;
        }
        char *grown = realloc(req->body, req->len + n + 1);
        if (!grown) return MHD_NO;
        memcpy(grown + req->len, upload, n);
        req->body = grown;
        req->len += n;
        req->body[req->len] = '\0';
        return MHD_YES;
    }
    sl_metric_add(r->requests, 1);
    return answer(r, conn, method, url, req);
}

static void on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode code) {
    (void)cls;
    (void)conn;
    (void)code;
    request_t *req = *con_cls;
    if (req) free(req->body);
    free(req);
    *con_cls = NULL;
}

/* --- setup ---------------------------------------------------------------------- */

static int int_key(const sl_props_t *w, const char *key, int64_t def, int64_t min, int64_t max,
                   int64_t *out, char *err, size_t errlen) {
    const char *v = sl_props_get(w, key);
    *out = def;
    if (v && (sl_parse_int64(v, out) != 0 || *out < min || *out > max)) {
        snprintf(err, errlen, "config key '%s': '%s' is not an integer in [%lld, %lld]", key, v,
                 (long long)min, (long long)max);
        return -1;
    }
    return 0;
}

/* "http://host:port" (the first of a comma-separated listeners list). */
static int parse_listener(const char *l, char *host, size_t hostlen, int64_t *port) {
    const char *p = strstr(l, "://");
    if (!p || strncmp(l, "http://", 7) != 0) return -1;
    p += 3;
    const char *colon = strrchr(p, ':'), *comma = strchr(p, ',');
    if (!colon || (comma && colon > comma)) return -1;
    snprintf(host, hostlen, "%.*s", (int)(colon - p), p);
    char num[16];
    snprintf(num, sizeof(num), "%.*s", comma ? (int)(comma - colon - 1) : (int)strlen(colon + 1), colon + 1);
    return sl_parse_int64(num, port) == 0 && *port >= 0 && *port <= 65535 ? 0 : -1;
}

static int write_port(const char *file, int port, char *err, size_t errlen) {
    char text[32];
    snprintf(text, sizeof(text), "%d\n", port);
    return sl_file_write_atomic(file, text, err, errlen);
}

static int settings(sl_rest_t *r, const sl_props_t *w, char *host, size_t hostlen, int64_t *port,
                    char *err, size_t errlen) {
    int64_t body, rate;
    if (int_key(w, "rest.port", 8083, 0, 65535, port, err, errlen) != 0 ||
        int_key(w, "rest.max.body.bytes", 1 << 20, 64, 64 << 20, &body, err, errlen) != 0 ||
        int_key(w, "rest.rate.limit", 200, 0, 1000000, &rate, err, errlen) != 0)
        return -1;
    r->max_body = (size_t)body;
    r->rate = (double)rate;
    r->tokens = r->rate;
    r->refilled_ms = sl_mono_ms();
    const char *h = sl_props_get(w, "rest.host"), *l = sl_props_get(w, "listeners");
    snprintf(host, hostlen, "%s", h && *h ? h : "127.0.0.1");
    if (l && *l && !h && !sl_props_get(w, "rest.port") && parse_listener(l, host, hostlen, port) != 0) {
        snprintf(err, errlen, "config key 'listeners': '%s' is not http://host:port", l);
        return -1;
    }
    if (!*host) snprintf(host, hostlen, "0.0.0.0");
    const char *tok = sl_props_get(w, "rest.auth.token");
    if (tok && *tok) {
        r->token = strdup(tok);
        sl_log_add_secret(tok);
    }
    return 0;
}

/* A listening socket on host:port (port 0: any free one, *bound says
 * which); -1 with err. */
static int listen_on(const char *host, int port, int *bound, char *err, size_t errlen) {
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM},
                    *ai = NULL;
    char ports[16];
    snprintf(ports, sizeof(ports), "%d", port);
    int gai = getaddrinfo(host, ports, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "config key 'rest.host': '%s' is not an IP address: %s", host,
                 gai_strerror(gai));
        return -1;
    }
    int one = 1, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errlen, "REST API: cannot listen on %s:%d (rest.host / rest.port): %s", host, port,
                 strerror(errno));
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *bound = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                            : ((struct sockaddr_in *)&sa)->sin_port);
    return fd;
}

static int v6h(const char *host) { return strchr(host, ':') != NULL; }

sl_rest_t *sl_rest_start(const sl_runtime_t *rt, sl_herder_t *h, char *err, size_t errlen) {
    sl_rest_t *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    const sl_props_t *worker = rt->worker;
    pthread_mutex_init(&r->lock, NULL);
    r->herder = h;
    r->bootstrap = strdup(rt->bootstrap ? rt->bootstrap : "");
    r->metrics = rt->svc.metrics;
    r->latest = rt->svc.latest;
    r->requests = sl_metrics_get(r->metrics, SL_METRIC_COUNTER, "rest_requests_total",
                                 "REST requests answered", NULL, -1);
    r->errors = sl_metrics_get(r->metrics, SL_METRIC_COUNTER, "rest_errors_total",
                               "REST answers with a status >= 400", NULL, -1);
    char host[256];
    int64_t port, adv_port;
    if (settings(r, worker, host, sizeof(host), &port, err, errlen) != 0) goto fail;
    /* What other workers and users reach this one by (Kafka Connect's
     * rest.advertised.*): in a container the bound 0.0.0.0 is no address. */
    const char *adv_v = sl_props_get(worker, "rest.advertised.port");
    if (adv_v && !*adv_v) adv_v = NULL; /* "${env:X:-}" left empty */
    if (!adv_v) adv_port = 0;
    else if (int_key(worker, "rest.advertised.port", 0, 1, 65535, &adv_port, err, errlen) != 0)
        goto fail;
    int bound, fd = listen_on(host, (int)port, &bound, err, errlen);
    if (fd < 0) goto fail;
    /* The worker id is known before the first request can be served. */
    const char *adv = sl_props_get(worker, "rest.advertised.host.name");
    const char *id_host = adv && *adv ? adv : host;
    int v6 = v6h(id_host); /* [::1]:8083 */
    snprintf(r->worker_id, sizeof(r->worker_id), "%s%s%s:%d", v6 ? "[" : "", id_host, v6 ? "]" : "",
             adv_port ? (int)adv_port : bound);
    if (h->ops->set_worker_id) h->ops->set_worker_id(h, r->worker_id);
    /* A thread per connection: a slow verb (a sink's offsets wait for a
     * group join) does not hold up other clients. */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    r->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, r, MHD_OPTION_LISTEN_SOCKET, fd,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_done, r,
                                 MHD_OPTION_CONNECTION_LIMIT, 64u,
                                 MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (!r->daemon) {
        close(fd);
        snprintf(err, errlen, "REST API: cannot serve on %s:%d", host, bound);
        goto fail;
    }
    const char *pf = sl_props_get(worker, "rest.port.file");
    if (pf && *pf && write_port(pf, bound, err, errlen) != 0) goto fail;
    if ((adv && *adv) || adv_port)
        SL_INFO("rest", "REST API on http://%s%s%s:%d, advertised as %s%s", v6h(host) ? "[" : "", host,
                v6h(host) ? "]" : "", bound, r->worker_id,
                r->token ? " (bearer token required)" : "");
    else
        SL_INFO("rest", "REST API on http://%s%s", r->worker_id, r->token ? " (bearer token required)" : "");
    return r;
fail:
    sl_rest_stop(r);
    return NULL;
}

const char *sl_rest_worker_id(const sl_rest_t *r) { return r->worker_id; }

void sl_rest_stop(sl_rest_t *r) {
    if (!r) return;
    if (r->daemon) MHD_stop_daemon(r->daemon);
    pthread_mutex_destroy(&r->lock);
    free(r->token);
    free(r->bootstrap);
    free(r->cluster_id);
    free(r);
}
