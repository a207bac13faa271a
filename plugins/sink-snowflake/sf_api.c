/*
 * sf_api.c - the Snowflake SQL API v2 client (see sf_api.h).
 *
 * Never logs or returns the key, the passphrase or the token: error messages
 * carry the HTTP status, Snowflake's code and message, and the statement's
 * first words only.
 */
#include "sf_api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

struct sf_api {
    const sluice_host_api_t *host;
    sluice_task_t *task;
    CURL *curl;
    char *base;
    char *account, *user, *fp;
    EVP_PKEY *key;
    char *database, *schema, *warehouse, *role;
    long connect_timeout_ms, request_timeout_ms;
    int64_t retry_budget_ms, backoff_max_ms, jwt_lifetime_s;
    char *jwt;
    int64_t jwt_exp; /* epoch s */
    uint64_t retries;
    /* the answer being received */
    char *resp;
    size_t resp_len, resp_cap;
    int resp_oom;
};

int64_t sf_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sf_sleep_ms(int64_t ms) {
    if (ms <= 0) return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int64_t sf_jitter(int64_t delay) {
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1) r = (uint32_t)sf_mono_ms();
    /* "equal jitter": half fixed, half random */
    return delay / 2 + (int64_t)(r % (uint64_t)(delay / 2 + 1));
}

static char *dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }

void sf_api_free(sf_api_t *a) {
    if (!a) return;
    if (a->curl) curl_easy_cleanup(a->curl);
    free(a->base);
    free(a->account);
    free(a->user);
    free(a->fp);
    free(a->database);
    free(a->schema);
    free(a->warehouse);
    free(a->role);
    if (a->jwt) {
        memset(a->jwt, 0, strlen(a->jwt));
        free(a->jwt);
    }
    free(a->resp);
    free(a);
}

int sf_api_renew_jwt(sf_api_t *a) {
    int64_t now = a->host->now_ms() / 1000;
    char *jwt = sf_jwt_make(a->key, a->account, a->user, a->fp, now, now + a->jwt_lifetime_s);
    if (!jwt) return -1;
    if (a->jwt) {
        memset(a->jwt, 0, strlen(a->jwt));
        free(a->jwt);
    }
    a->jwt = jwt;
    a->jwt_exp = now + a->jwt_lifetime_s;
    return 0;
}

sf_api_t *sf_api_new(const sf_api_conf_t *c, const sluice_host_api_t *host, sluice_task_t *task,
                     char *err, size_t errlen) {
    sf_api_t *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->host = host;
    a->task = task;
    a->key = c->key;
    a->connect_timeout_ms = c->connect_timeout_ms;
    a->request_timeout_ms = c->request_timeout_ms;
    a->retry_budget_ms = c->retry_budget_ms;
    a->backoff_max_ms = c->backoff_max_ms > 0 ? c->backoff_max_ms : 1;
    a->jwt_lifetime_s = c->jwt_lifetime_s > 60 ? c->jwt_lifetime_s : 59 * 60;
    a->base = strdup(c->base);
    a->account = strdup(c->account);
    a->user = strdup(c->user);
    a->fp = sf_public_key_fp(c->key);
    a->database = dup_or_null(c->database);
    a->schema = dup_or_null(c->schema);
    a->warehouse = dup_or_null(c->warehouse);
    a->role = dup_or_null(c->role);
    if (!a->base || !a->account || !a->user || !a->fp) {
        snprintf(err, errlen, "out of memory (or the public key cannot be derived)");
        sf_api_free(a);
        return NULL;
    }
    if (!(a->curl = curl_easy_init())) {
        snprintf(err, errlen, "curl_easy_init failed");
        sf_api_free(a);
        return NULL;
    }
    if (sf_api_renew_jwt(a) != 0) {
        snprintf(err, errlen, "signing the JWT failed");
        sf_api_free(a);
        return NULL;
    }
    return a;
}

uint64_t sf_api_retries(const sf_api_t *a) { return a ? a->retries : 0; }

const char *sf_api_jwt(sf_api_t *a) {
    if (a->host->now_ms() / 1000 >= a->jwt_exp - 300 && sf_api_renew_jwt(a) != 0) return NULL;
    return a->jwt;
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud) {
    sf_api_t *a = ud;
    size_t n = size * nmemb;
    if (a->resp_len + n + 1 > a->resp_cap) {
        size_t cap = a->resp_cap ? a->resp_cap : 4096;
        while (cap < a->resp_len + n + 1) cap *= 2;
        if (cap > (size_t)256 << 20) { /* a statement answer this big is not ours */
            a->resp_oom = 1;
            return 0;
        }
        char *g = realloc(a->resp, cap);
        if (!g) {
            a->resp_oom = 1;
            return 0;
        }
        a->resp = g;
        a->resp_cap = cap;
    }
    memcpy(a->resp + a->resp_len, p, n);
    a->resp_len += n;
    a->resp[a->resp_len] = '\0';
    return n;
}

long sf_api_http(sf_api_t *a, const sf_http_req_t *r, char *err, size_t errlen) {
    CURL *c = a->curl;
    curl_easy_reset(c);
    a->resp_len = 0;
    a->resp_oom = 0;
    if (a->resp) a->resp[0] = '\0';
    const char *bearer = r->bearer ? r->bearer : a->jwt;
    size_t auth_len = strlen(bearer) + 32;
    char *auth = malloc(auth_len);
    char ctype[128] = "", ttype[96] = "";
    if (!auth) {
        snprintf(err, errlen, "out of memory");
        return 0;
    }
    snprintf(auth, auth_len, "Authorization: Bearer %s", bearer);
    if (r->content_type) snprintf(ctype, sizeof(ctype), "Content-Type: %s", r->content_type);
    if (r->token_type)
        snprintf(ttype, sizeof(ttype), "X-Snowflake-Authorization-Token-Type: %s", r->token_type);
    struct curl_slist *h = NULL, *t;
    const char *hdrs[] = {auth, "Accept: application/json", "User-Agent: sluice-sink-snowflake/1.0",
                          ctype, ttype, NULL};
    for (int i = 0; hdrs[i]; i++) {
        if (!hdrs[i][0]) continue;
        if (!(t = curl_slist_append(h, hdrs[i]))) {
            curl_slist_free_all(h);
            OPENSSL_cleanse(auth, auth_len);
            free(auth);
            snprintf(err, errlen, "out of memory");
            return 0;
        }
        h = t;
    }
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, a->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, a->request_timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    if (r->fresh) {
        curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    }
    if (r->body) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    if (r->method && strcmp(r->method, "GET") != 0 && strcmp(r->method, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    } else {
        snprintf(err, errlen, "%s", a->resp_oom ? "answer too large or out of memory"
                                                : curl_easy_strerror(rc));
        if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
            rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH ||
            rc == CURLE_SSL_ISSUER_ERROR)
            status = -1; /* the certificate, not the network: permanent */
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    OPENSSL_cleanse(auth, auth_len);
    free(auth);
    return status;
}

/* One SQL API exchange (JSON, the key-pair JWT). body NULL means GET. */
static long http(sf_api_t *a, const char *url, const char *body, char *err, size_t errlen) {
    sf_http_req_t r = {.method = body ? "POST" : "GET", .url = url, .token_type = "KEYPAIR_JWT",
                       .content_type = "application/json", .body = body,
                       .body_len = body ? strlen(body) : 0};
    return sf_api_http(a, &r, err, errlen);
}

const char *sf_api_body(const sf_api_t *a, size_t *len) {
    *len = a->resp_len;
    return a->resp ? a->resp : "";
}

int sf_http_transient(long status) {
    return status == 0 || status == 408 || status == 429 || status == 500 || status == 502 ||
           status == 503 || status == 504;
}

/* "HTTP 422: 000904 (42000) SQL compilation error: ..." from the answer. */
void sf_api_describe(sf_api_t *a, long status, const char *what, char *err, size_t errlen) {
    json_t *j = a->resp_len ? json_loadb(a->resp, a->resp_len, 0, NULL) : NULL;
    const char *code = json_string_value(json_object_get(j, "code"));
    const char *state = json_string_value(json_object_get(j, "sqlState"));
    const char *msg = json_string_value(json_object_get(j, "message"));
    if (msg)
        snprintf(err, errlen, "%s: HTTP %ld: %s%s%s%s%s", what, status, code ? code : "",
                 state ? " (" : "", state ? state : "", state ? ")" : "", msg ? "" : "");
    else
        snprintf(err, errlen, "%s: HTTP %ld", what, status);
    if (msg) {
        size_t l = strlen(err);
        snprintf(err + l, errlen - l, "%s%.400s", code || state ? " " : "", msg);
    }
    json_decref(j);
}

/* The first words of a statement, for messages (never its bindings). */
static void stmt_head(const char *stmt, char *out, size_t n) {
    size_t len = strcspn(stmt, "(");
    if (len > 60) len = 60;
    snprintf(out, n, "%.*s", (int)len, stmt);
    size_t l = strlen(out);
    while (l && out[l - 1] == ' ') out[--l] = '\0';
}

sluice_err_t sf_api_exec(sf_api_t *a, const char *statement, json_t *bindings,
                         const char *request_id, json_t **result, char *err,
                         size_t errlen) {
    if (result) *result = NULL;
    char head[80];
    stmt_head(statement, head, sizeof(head));
    json_t *req = json_pack("{s:s, s:i}", "statement", statement, "timeout", 60);
    if (!req) {
        snprintf(err, errlen, "out of memory");
        return SLUICE_ERR_RETRIABLE;
    }
    if (a->database) json_object_set_new(req, "database", json_string(a->database));
    if (a->schema) json_object_set_new(req, "schema", json_string(a->schema));
    if (a->warehouse) json_object_set_new(req, "warehouse", json_string(a->warehouse));
    if (a->role) json_object_set_new(req, "role", json_string(a->role));
    if (bindings && json_object_size(bindings)) json_object_set(req, "bindings", bindings);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!body) {
        snprintf(err, errlen, "out of memory");
        return SLUICE_ERR_RETRIABLE;
    }
    size_t url_cap = strlen(a->base) + 512;
    char *url = malloc(url_cap);
    if (!url) {
        free(body);
        snprintf(err, errlen, "out of memory");
        return SLUICE_ERR_RETRIABLE;
    }
    int64_t start = sf_mono_ms(), delay = 100;
    int renewed = 0;
    char *poll = NULL; /* statement status path while a 202 is being followed */
    sluice_err_t rc = SLUICE_ERR_RETRIABLE;
    char why[512] = "";
    for (;;) {
        int64_t now_s = a->host->now_ms() / 1000;
        if (now_s >= a->jwt_exp - 300 && sf_api_renew_jwt(a) != 0) {
            snprintf(err, errlen, "signing the JWT failed");
            rc = SLUICE_ERR_FATAL;
            break;
        }
        long status;
        if (poll) {
            snprintf(url, url_cap, "%s%s", a->base, poll);
            status = http(a, url, NULL, why, sizeof(why));
        } else {
            /* retry=true on every send, the first included: libcurl itself
             * sends a request again, unasked, when a kept-alive connection
             * turns out dead before any answer - and a statement must never
             * run twice. For a requestId Snowflake has not seen, retry=true
             * changes nothing. */
            snprintf(url, url_cap, "%s/api/v2/statements?requestId=%s&retry=true", a->base,
                     request_id);
            status = http(a, url, body, why, sizeof(why));
        }
        if (status == 200) {
            json_t *j = json_loadb(a->resp ? a->resp : "", a->resp_len, 0, NULL);
            if (!j) {
                snprintf(why, sizeof(why), "HTTP 200 with a body that is not JSON");
                status = 0; /* treat as a dropped answer: retried */
            } else {
                if (result)
                    *result = j;
                else
                    json_decref(j);
                rc = SLUICE_OK;
                break;
            }
        } else if (status == 202) {
            json_t *j = json_loadb(a->resp ? a->resp : "", a->resp_len, 0, NULL);
            const char *su = json_string_value(json_object_get(j, "statementStatusUrl"));
            const char *sh = json_string_value(json_object_get(j, "statementHandle"));
            char *next = NULL;
            if (su && su[0] == '/') {
                next = strdup(su);
            } else if (sh) {
                size_t n = strlen(sh) + 32;
                if ((next = malloc(n))) snprintf(next, n, "/api/v2/statements/%s", sh);
            }
            json_decref(j);
            if (next && strlen(next) < 400 && !strpbrk(next, " \r\n")) {
                free(poll);
                poll = next;
            } else {
                free(next);
            }
            if (!poll) {
                snprintf(err, errlen, "%s: HTTP 202 without a statement handle", head);
                rc = SLUICE_ERR_FATAL;
                break;
            }
            /* still running: wait a little, without counting it as a failure */
            if (sf_mono_ms() - start > a->retry_budget_ms + a->request_timeout_ms) {
                snprintf(err, errlen, "%s: still running after %" PRId64 " ms", head,
                         sf_mono_ms() - start);
                rc = SLUICE_ERR_RETRIABLE;
                break;
            }
            sf_sleep_ms(sf_jitter(delay < 500 ? delay : 500));
            if (delay < 500) delay *= 2;
            continue;
        } else if (status == 401 && !renewed) {
            renewed = 1;
            if (sf_api_renew_jwt(a) != 0) {
                snprintf(err, errlen, "signing the JWT failed");
                rc = SLUICE_ERR_FATAL;
                break;
            }
            a->host->log(a->task, SLUICE_LOG_WARN, "%s: HTTP 401: renewed the JWT, trying again",
                         head);
            continue;
        } else if (status == 401) {
            sf_api_describe(a, status, head, why, sizeof(why));
            snprintf(err, errlen,
                     "authentication refused (%s): check snowflake.url.name / "
                     "snowflake.account.name, snowflake.user.name and that the user's "
                     "RSA_PUBLIC_KEY matches snowflake.private.key",
                     why);
            rc = SLUICE_ERR_FATAL;
            break;
        }
        if (status < 0) { /* TLS verification failed: never retried */
            snprintf(err, errlen, "%s: %s (TLS verification of %s failed)", head, why, a->base);
            rc = SLUICE_ERR_FATAL;
            break;
        }
        if (status != 0 && !sf_http_transient(status)) {
            sf_api_describe(a, status, head, err, errlen);
            rc = SLUICE_ERR_FATAL;
            break;
        }
        /* transient: back off and send again, same requestId, retry=true */
        if (status) sf_api_describe(a, status, head, why, sizeof(why));
        int64_t wait = sf_jitter(delay);
        if (sf_mono_ms() - start + wait > a->retry_budget_ms) {
            snprintf(err, errlen, "%s: %s (retried for %" PRId64 " ms)", head,
                     why[0] ? why : "failed", sf_mono_ms() - start);
            rc = SLUICE_ERR_RETRIABLE;
            break;
        }
        a->retries++;
        a->host->log(a->task, SLUICE_LOG_DEBUG, "%s: %s: retrying in %" PRId64 " ms", head, why,
                     wait);
        sf_sleep_ms(wait);
        delay = delay * 2 > a->backoff_max_ms ? a->backoff_max_ms : delay * 2;
        if (poll) {
            /* a failed status poll: ask the statement again by its requestId
             * (retry=true returns the known statement instead of re-running) */
            free(poll);
            poll = NULL;
        }
    }
    free(poll);
    free(url);
    free(body);
    return rc;
}
