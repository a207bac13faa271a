/*
 * sf_api.h - a Snowflake SQL API v2 client for one task: one libcurl easy
 * handle (connections reused), key-pair JWT renewed before it expires,
 * statements retried with the same requestId.
 */
#ifndef SF_API_H
#define SF_API_H

#include <sluice/plugin.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "sf_core.h"

typedef struct sf_api_conf {
    const char *base;      /* "https://host[:port]" */
    const char *account;   /* normalised */
    const char *user;      /* normalised */
    EVP_PKEY *key;         /* borrowed for the client's life */
    const char *database, *schema, *warehouse, *role; /* NULL or "" to leave out */
    long connect_timeout_ms;
    long request_timeout_ms;
    int64_t retry_budget_ms;  /* how long one call retries transient failures */
    int64_t backoff_max_ms;   /* the cap of the exponential back-off */
    int64_t jwt_lifetime_s;   /* 59 minutes */
} sf_api_conf_t;

typedef struct sf_api sf_api_t;

/** A client; NULL with the reason in err. */
sf_api_t *sf_api_new(const sf_api_conf_t *conf, const sluice_host_api_t *host,
                     sluice_task_t *task, char *err, size_t errlen);
void sf_api_free(sf_api_t *api);

/**
 * Runs one statement: POST /api/v2/statements?requestId=<request_id>
 * [&retry=true], following a 202 by polling its statement handle. Transient
 * failures (429, 500, 502, 503, 504, 408, timeouts, dropped connections) are
 * retried with the same requestId, with jittered exponential back-off, for at
 * most retry_budget_ms; a 401 renews the JWT once. Every send carries
 * retry=true, so Snowflake never runs one requestId twice: call again with
 * the same request_id after a RETRIABLE answer.
 * bindings: borrowed, may be NULL. *result (when not NULL) gets the
 * 200 answer's body (caller decrefs).
 * Returns SLUICE_OK; SLUICE_ERR_RETRIABLE when the budget ran out; SLUICE_ERR_FATAL
 * for what retrying cannot fix (SQL errors, authentication), with the
 * reason (Snowflake's code and message) in err.
 */
sluice_err_t sf_api_exec(sf_api_t *api, const char *statement, json_t *bindings,
                         const char *request_id, json_t **result, char *err,
                         size_t errlen);

/** Statements sent and HTTP retries done (for logs and metrics). */
uint64_t sf_api_retries(const sf_api_t *api);

/* ------------------------------------------------------------------------ */
/* The HTTP layer, shared with the Snowpipe Streaming client (sf_stream.c)   */
/* ------------------------------------------------------------------------ */

typedef struct sf_http_req {
    const char *method;       /* "GET", "POST", "PUT", "DELETE" */
    const char *url;
    const char *bearer;       /* Authorization: Bearer <this>; NULL: the client's JWT */
    const char *token_type;   /* X-Snowflake-Authorization-Token-Type, or NULL */
    const char *content_type; /* with a body */
    const char *body;         /* NULL: no body (GET, or PUT/DELETE without one) */
    size_t body_len;
    int fresh; /* a new connection, closed after the exchange: libcurl never
                  sends this request again on its own (it does on a kept-alive
                  connection that turns out dead) */
} sf_http_req_t;

/** One HTTP exchange on the client's handle (its timeouts). Returns the
 *  HTTP status, 0 for a transport failure worth retrying, or -1 when the
 *  server's certificate failed verification (retrying cannot help: the
 *  caller fails at once); the reason in err, never a token. The answer's
 *  body is then sf_api_body()'s, until the next call. */
long sf_api_http(sf_api_t *api, const sf_http_req_t *req, char *err, size_t errlen);
const char *sf_api_body(const sf_api_t *api, size_t *len);
/** The key-pair JWT, renewed 5 minutes before it expires (NULL when
 *  signing fails). Borrowed until the next call into api. */
const char *sf_api_jwt(sf_api_t *api);
/** Signs a new JWT now (after a 401). 0 on success. */
int sf_api_renew_jwt(sf_api_t *api);
/** "<what>: HTTP <status>: <code> (<sqlState>) <message>" from the last answer. */
void sf_api_describe(sf_api_t *api, long status, const char *what, char *err, size_t errlen);
/** 1 for a status worth sending again: 0 (transport), 408, 429, 500, 502-504. */
int sf_http_transient(long status);

int64_t sf_mono_ms(void);
void sf_sleep_ms(int64_t ms);
/** "Equal jitter": delay/2 + a random part of delay/2. */
int64_t sf_jitter(int64_t delay);

#endif
