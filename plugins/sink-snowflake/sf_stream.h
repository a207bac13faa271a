/*
 * sf_stream.h - Snowpipe Streaming (REST API, high-performance architecture)
 * for one task: the ingest host and its scoped token, and channels whose
 * appended rows are kept until Snowflake reports their offset token
 * committed.
 *
 * Protocol (/work/shared/reference/snowflake.md, docs/snowflake.md):
 *  - GET <account>/v2/streaming/hostname with the key-pair JWT -> ingest host;
 *  - POST <account>/oauth/token (JWT-bearer grant, scope = ingest host) ->
 *    scoped token, renewed every token_renew_ms and after a 401;
 *  - on the ingest host: PUT .../pipes/<TABLE>-STREAMING/channels/<name>
 *    (open: continuation token + last committed offset token), POST
 *    .../channels/<name>/rows?continuationToken=..&offsetToken=.. (NDJSON),
 *    POST .../pipes/<pipe>:bulk-channel-status.
 *
 * Exactly once: a row's offset token is the Kafka offset of the last row of
 * its append; rows stay here until a status says their token is committed.
 * When an append's fate is unknown (lost answer, dropped connection, 5xx),
 * its continuation token is stale, or appended rows stay uncommitted longer
 * than commit_timeout_ms, the channel is reopened - which makes Snowflake
 * drop what it had not committed - and every kept row above the committed
 * token is sent again. Appends go on a fresh connection each, so
 * libcurl never resends one on its own.
 *
 * All calls on the task's thread. Tokens and keys are never logged.
 */
#ifndef SF_STREAM_H
#define SF_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include <sluice/plugin.h>

#include "sf_api.h"

typedef struct sf_stream_conf {
    const char *base;          /* the account URL, "https://host[:port]" */
    const char *database, *schema;
    int64_t retry_budget_ms;   /* how long one call retries transient failures */
    int64_t backoff_max_ms;
    int64_t token_renew_ms;    /* scoped token lifetime we use (50 minutes) */
    size_t max_request_bytes;  /* one append's NDJSON body (4 MB) */
    int64_t commit_timeout_ms; /* appended rows not committed this long: reopen, resend */
} sf_stream_conf_t;

typedef struct sf_stream sf_stream_t;
typedef struct sf_channel sf_channel_t;

/** A client over api (borrowed: its curl handle and JWT). NULL on OOM. */
sf_stream_t *sf_stream_new(const sf_stream_conf_t *conf, sf_api_t *api,
                           const sluice_host_api_t *host, sluice_task_t *task);
void sf_stream_free(sf_stream_t *s);
/** Channels reopened (stale token, lost answer) and appends sent so far. */
uint64_t sf_stream_reopens(const sf_stream_t *s);
uint64_t sf_stream_appends(const sf_stream_t *s);

/** Channel `name` on the default pipe of `table` ("<TABLE>-STREAMING"),
 *  not opened yet. NULL on OOM. */
sf_channel_t *sf_channel_new(const char *table, const char *name);
void sf_channel_free(sf_channel_t *ch);
const char *sf_channel_name(const sf_channel_t *ch);

/**
 * Opens (or reopens) the channel. *next gets the offset after its last
 * committed offset token (-1 when it has none). Kept rows at or below the
 * token are dropped; the others are sent again by the next flush.
 * SLUICE_OK, _RETRIABLE (budget ran out), _FATAL (reason in err).
 */
sluice_err_t sf_channel_open(sf_stream_t *s, sf_channel_t *ch, int64_t *next, char *err,
                             size_t errlen);
/** Queues the row of Kafka offset `offset` (increasing); takes line
 *  (NDJSON object, no newline). 0, or -1 out of memory (line freed). */
int sf_channel_add(sf_channel_t *ch, int64_t offset, char *line, int64_t now_ms);
/** Rows and bytes queued and not appended yet; when the oldest came (0: none). */
size_t sf_channel_unsent_rows(const sf_channel_t *ch);
size_t sf_channel_unsent_bytes(const sf_channel_t *ch);
int64_t sf_channel_unsent_since(const sf_channel_t *ch);
/** Rows kept: not appended yet, or appended and not known committed. */
size_t sf_channel_pending(const sf_channel_t *ch);
/** The offset after the last committed offset token; -1 when unknown. */
int64_t sf_channel_committed(const sf_channel_t *ch);

/**
 * Appends every unsent row (requests of at most max_request_bytes; offset
 * token = the request's last Kafka offset), reopening the channel and
 * resending when needed (see above). SLUICE_OK, _RETRIABLE, _FATAL.
 */
sluice_err_t sf_channel_flush(sf_stream_t *s, sf_channel_t *ch, char *err, size_t errlen);

/**
 * Bulk channel status of chs (one request per pipe): advances each
 * channel's committed offset and drops the kept rows it covers (*committed,
 * when not NULL, gets how many). A channel Snowflake does not know any more
 * is reopened and resent by its next flush.
 */
sluice_err_t sf_stream_refresh(sf_stream_t *s, sf_channel_t *const *chs, size_t n,
                               size_t *committed, char *err, size_t errlen);

#endif
