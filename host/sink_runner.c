/* sink_runner.c - the thread of one sink task: a member of the connector's
 * consumer group ("connect-<name>"). Rebalances drive the task's
 * open/close; records are decoded, pushed through the transform chain and
 * handed to put() in batches; offsets are committed only up to what the
 * task (and every transform) reports durable in pre_commit(). */
#include "connector.h"
#include "dlq.h"
#include "kafka.h"
#include "latest.h"
#include "log.h"
#include "record.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BATCH 1000

/* An assigned partition and the offset after the last record put(). */
typedef struct assigned {
    char *topic;
    int32_t partition;
    int64_t consumed; /* SLUICE_OFFSET_UNSET until a record was put */
} assigned_t;

/* A broker the consumer has been connected to (see at_end). */
typedef struct broker_state {
    int32_t id;
    int up;
    int64_t since;      /* sl_mono_ms() of the last change */
    int64_t fetch_sent; /* sl_mono_ms() of the last Fetch request sent to it, or 0 */
    int fetcher;        /* it was fetched from shortly before it went down */
    int fetched;        /* Fetch answers without error since it came up */
} broker_state_t;

/* How long a broker must be up again before its partitions' fetched high
 * watermarks count (fetches answer at least every fetch.wait.max.ms). */
#define SETTLE_MS 2000
/* A broker fetched from this recently before it went down leads some of
 * the task's partitions: after it is back, its fetches must answer again
 * (twice) before any partition counts as at its end. */
#define FETCHER_RECENT_MS 30000

/* The longest a RETRIABLE open() is tried again before the task fails. */
#define OPEN_RETRY_MAX_MS 30000

typedef struct sink_ctx {
    sl_runner_t *runner;
    sl_connector_t *conn;
    sluice_task_t *task;
    sl_chain_t chain;
    sl_dlq_t dlq;
    rd_kafka_t *consumer;
    rd_kafka_queue_t *queue; /* the consumer's queue (rd_kafka_poll_set_consumer) */
    int cooperative;
    assigned_t *parts;
    size_t nparts, cap_parts;
    sluice_record_t **batch; /* what the chain emitted, for the next put() */
    size_t nbatch, cap_batch;
    int failed;
    /* errors.tolerance=none met a bad record: the records before it are put
     * and committed, then the task fails with this reason. */
    char poisoned[1024];
    /* A RETRIABLE put(): the batch is retried at retry_at (back-off doubling
     * up to errors.retry.delay.max.ms) while the assigned partitions are
     * paused, so nothing more is fetched and the consumer keeps polling
     * (group membership, rebalances). retry_since = 0: not retrying. */
    int64_t retry_since, retry_at, retry_backoff;
    int paused;
    int64_t drain_since, next_drain_check;
    int ever_assigned; /* a group join completed (see sl_kafka_consumer_destroy) */
    struct {
        pthread_mutex_t lock; /* written by librdkafka's broker threads */
        broker_state_t b[64];
        int n;
    } brokers;
    sluice_metric_t *m_consumed, *m_put, *m_commits, *m_commit_failures, *m_put_retries, *m_paused,
        *m_lag, *m_batch, *m_put_s, *m_flush_s, *m_latest_dropped;
    rd_kafka_resp_err_t commit_err; /* the last failure logged, and when */
    int64_t commit_err_logged;
    int commit_err_quiet;
} sink_ctx_t;

static void fail_task(sink_ctx_t *s, const char *fmt, ...) SLUICE_PRINTF(2, 3);
static void fail_task(sink_ctx_t *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->runner->trace, sizeof(s->runner->trace), fmt, ap);
    va_end(ap);
    s->failed = 1;
    SL_ERROR(s->task ? s->task->tag : s->conn->name, "task failed: %s", s->runner->trace);
}

static assigned_t *find_part(sink_ctx_t *s, const char *topic, int32_t partition) {
    for (size_t i = 0; i < s->nparts; i++)
        if (s->parts[i].partition == partition && strcmp(s->parts[i].topic, topic) == 0)
            return &s->parts[i];
    return NULL;
}

static sluice_err_t collect(void *arg, sluice_task_t *from, sluice_record_t *rec) {
    (void)from;
    sink_ctx_t *s = arg;
    if (s->nbatch == s->cap_batch) {
        size_t cap = s->cap_batch ? s->cap_batch * 2 : 256;
        sluice_record_t **grown = realloc(s->batch, cap * sizeof(*grown));
        if (!grown) {
            sl_record_free(rec);
            return SLUICE_ERR_NOMEM;
        }
        s->batch = grown;
        s->cap_batch = cap;
    }
    s->batch[s->nbatch++] = rec;
    return SLUICE_OK;
}

static void free_batch(sink_ctx_t *s) {
    for (size_t i = 0; i < s->nbatch; i++) sl_record_free(s->batch[i]);
    s->nbatch = 0;
}

/* Pauses (or resumes) fetching for every assigned partition. */
static void set_paused(sink_ctx_t *s, int pause) {
    if (s->paused == pause) return;
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(s->consumer, &l) == RD_KAFKA_RESP_ERR_NO_ERROR && l) {
        if (pause)
            rd_kafka_pause_partitions(s->consumer, l);
        else
            rd_kafka_resume_partitions(s->consumer, l);
    }
    if (l) rd_kafka_topic_partition_list_destroy(l);
    s->paused = pause;
    sl_metric_set(s->m_paused, pause);
    SL_INFO(s->task->tag, "%s fetching", pause ? "paused" : "resumed");
}

/* Hands the batch to put(). A RETRIABLE failure is retried from the loop
 * (see retry_at) until errors.retry.timeout; any other error fails the
 * task. */
static void put_batch(sink_ctx_t *s) {
    if (s->nbatch == 0 || s->failed) return;
    int64_t now = sl_mono_ms();
    if (s->retry_since && now < s->retry_at) return;
    const sluice_sink_ops_t *ops = s->task->plugin->desc->sink;
    s->task->error[0] = '\0';
    double t0 = sl_metrics_now_s();
    sluice_err_t rc = ops->put(s->task->state, s->task, s->batch, s->nbatch);
    sl_metric_observe(s->m_put_s, sl_metrics_now_s() - t0);
    if (rc == SLUICE_ERR_RETRIABLE && !sl_runner_stopping(s->runner)) {
        sl_metric_add(s->m_put_retries, 1);
        now = sl_mono_ms();
        if (!s->retry_since) {
            s->retry_since = now;
            s->retry_backoff = 100;
            set_paused(s, 1);
        }
        int64_t tried = now - s->retry_since;
        if (s->conn->retry_timeout_ms >= 0 && tried >= s->conn->retry_timeout_ms) {
            fail_task(s, "put: still failing after %lld ms of retries (errors.retry.timeout=%lld)%s%s",
                      (long long)tried, (long long)s->conn->retry_timeout_ms,
                      s->task->error[0] ? ": " : "", s->task->error);
            return;
        }
        int64_t wait = s->retry_backoff;
        if (s->conn->retry_timeout_ms >= 0 && tried + wait > s->conn->retry_timeout_ms)
            wait = s->conn->retry_timeout_ms - tried; /* one last try at the deadline */
        SL_WARN(s->task->tag, "put: retriable error%s%s; retrying in %lld ms",
                s->task->error[0] ? ": " : "", s->task->error, (long long)wait);
        s->retry_at = now + wait;
        s->retry_backoff = s->retry_backoff * 2 > s->conn->retry_delay_max_ms
                               ? s->conn->retry_delay_max_ms
                               : s->retry_backoff * 2;
        return;
    }
    if (s->retry_since) {
        SL_INFO(s->task->tag, "put: succeeded again after %lld ms of retries",
                (long long)(sl_mono_ms() - s->retry_since));
        s->retry_since = 0;
        set_paused(s, 0);
    }
    if (rc == SLUICE_ERR_RETRIABLE) { /* stopping: not delivered, so not committed */
        SL_WARN(s->task->tag, "stopping with %zu record(s) not delivered; they will be read again",
                s->nbatch);
        free_batch(s);
        return;
    }
    if (rc != SLUICE_OK && !(rc == SLUICE_ERR_BAD_RECORD && s->conn->tolerate_errors)) {
        fail_task(s, "put: %s%s%s", sl_host_api()->err2str(rc), s->task->error[0] ? ": " : "",
                  s->task->error);
        return;
    }
    sl_metric_add(s->m_put, (double)s->nbatch);
    sl_metric_observe(s->m_batch, (double)s->nbatch);
    for (size_t i = 0; s->conn->latest_max > 0 && i < s->nbatch; i++)
        if (sl_latest_put(s->conn->rt->svc.latest, s->conn->name, s->batch[i],
                          (size_t)s->conn->latest_max) != 0)
            sl_metric_add(s->m_latest_dropped, 1);
    for (size_t i = 0; i < s->nbatch; i++) {
        sluice_record_t *rec = s->batch[i];
        assigned_t *a = rec->topic ? find_part(s, rec->topic, rec->partition) : NULL;
        if (a && rec->offset + 1 > a->consumed) a->consumed = rec->offset + 1;
    }
    free_batch(s);
}

/* A failure is logged once per kind and then at most every 10 s: during a
 * rebalance every queued asynchronous commit fails the same way. */
static void commit_result(sink_ctx_t *s, rd_kafka_resp_err_t e) {
    if (!e) {
        sl_metric_add(s->m_commits, 1);
        s->commit_err = 0;
        return;
    }
    if (e == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
    sl_metric_add(s->m_commit_failures, 1);
    int64_t now = sl_mono_ms();
    if (e == s->commit_err && now - s->commit_err_logged < 10000) {
        s->commit_err_quiet++;
        return;
    }
    if (s->commit_err_quiet)
        SL_WARN(s->task->tag, "offset commit failed: %s (and %d more not logged)", rd_kafka_err2str(e),
                s->commit_err_quiet);
    else
        SL_WARN(s->task->tag, "offset commit failed: %s", rd_kafka_err2str(e));
    s->commit_err = e;
    s->commit_err_logged = now;
    s->commit_err_quiet = 0;
}

static void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque) {
    (void)rk;
    (void)offsets;
    commit_result(opaque, err);
}

/* Offsets to commit for the given partitions (all when list is NULL):
 * consumed positions lowered by the task's and the chain's pre_commit. */
static void commit(sink_ctx_t *s, const rd_kafka_topic_partition_list_t *only, int async) {
    if (s->failed || s->nparts == 0) return;
    put_batch(s);
    sluice_topic_partition_t *tps = calloc(s->nparts, sizeof(*tps));
    if (!tps) return;
    size_t n = 0;
    for (size_t i = 0; i < s->nparts; i++) {
        assigned_t *a = &s->parts[i];
        if (only && !rd_kafka_topic_partition_list_find(only, a->topic, a->partition)) continue;
        tps[n++] = (sluice_topic_partition_t){a->topic, a->partition, a->consumed};
    }
    int64_t *before = calloc(n ? n : 1, sizeof(*before));
    for (size_t i = 0; before && i < n; i++) before[i] = tps[i].offset;
    const sluice_sink_ops_t *ops = s->task->plugin->desc->sink;
    if (n && ops->pre_commit) {
        double t0 = sl_metrics_now_s();
        sluice_err_t rc = ops->pre_commit(s->task->state, s->task, tps, n);
        sl_metric_observe(s->m_flush_s, sl_metrics_now_s() - t0);
        if (rc != SLUICE_OK) {
            SL_WARN(s->task->tag, "pre_commit: %s%s%s: committing nothing this time",
                    sl_host_api()->err2str(rc), s->task->error[0] ? ": " : "", s->task->error);
            n = 0;
        }
    }
    if (n) sl_chain_pre_commit(&s->chain, tps, n);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)(n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        /* A task may only lower an offset: never commit what was not put. */
        int64_t off = tps[i].offset;
        if (off == SLUICE_OFFSET_UNSET || off < 0) continue;
        if (before && before[i] >= 0 && off > before[i]) off = before[i];
        rd_kafka_topic_partition_list_add(list, tps[i].topic, tps[i].partition)->offset = off;
    }
    if (list->cnt > 0) {
        /* Periodic commits are asynchronous (a rebalance in progress must not
         * stall the task; the next one supersedes a failed one), as in Kafka
         * Connect; those on revocation and shutdown wait for the answer. */
        rd_kafka_resp_err_t e = rd_kafka_commit(s->consumer, list, async);
        if (!async) commit_result(s, e);
    }
    rd_kafka_topic_partition_list_destroy(list);
    free(before);
    free(tps);
}

/* partition_at_end() for the chain's transforms: 1 when the consumer has
 * handed the chain every record the partition holds. The fetcher's last high
 * watermark says whether records wait; it is only as fresh as the last fetch
 * answer, so while any broker this consumer was connected to is not up (or
 * came back less than SETTLE_MS ago, before its fetches answered again) no
 * partition counts as at its end: a partition whose leader is down is
 * stalled, not idle. (Asking the leader instead - query_watermark_offsets -
 * blocks the task's thread until the broker is back, whatever the timeout:
 * seen on librdkafka 2.0.2.) Conservative: a broker down that leads none of
 * the task's partitions delays idle timeouts too, until it is back. */
static int at_end(void *arg, const char *topic, int32_t partition) {
    sink_ctx_t *s = arg;
    if (!find_part(s, topic, partition)) return -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    int64_t pos = rd_kafka_position(s->consumer, l) == RD_KAFKA_RESP_ERR_NO_ERROR
                      ? l->elems[0].offset
                      : RD_KAFKA_OFFSET_INVALID; /* the next offset the chain gets */
    rd_kafka_topic_partition_list_destroy(l);
    int64_t lo = 0, hi = 0;
    if (rd_kafka_get_watermark_offsets(s->consumer, topic, partition, &lo, &hi) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        hi < 0 || (pos >= 0 ? hi > pos : hi > lo))
        return 0;
    int64_t now = sl_mono_ms();
    int settled = 1;
    pthread_mutex_lock(&s->brokers.lock);
    for (int i = 0; i < s->brokers.n; i++) {
        const broker_state_t *b = &s->brokers.b[i];
        /* two answers: the first one is parsed (high watermark, records)
         * before the second request goes out */
        if (!b->up || now - b->since < SETTLE_MS || (b->fetcher && b->fetched < 2)) settled = 0;
    }
    pthread_mutex_unlock(&s->brokers.lock);
    return settled;
}

/* librdkafka interceptor (a broker thread): a broker's connection state. */
static rd_kafka_resp_err_t on_broker_state(rd_kafka_t *rk, int32_t id, const char *secproto,
                                           const char *name, int port, const char *state,
                                           void *opaque) {
    (void)rk, (void)secproto, (void)name, (void)port;
    sink_ctx_t *s = opaque;
    if (id < 0) return RD_KAFKA_RESP_ERR_NO_ERROR; /* bootstrap and logical brokers */
    int up = strcmp(state, "UP") == 0;
    pthread_mutex_lock(&s->brokers.lock);
    int i = 0;
    while (i < s->brokers.n && s->brokers.b[i].id != id) i++;
    if (i == s->brokers.n && up && i < (int)(sizeof(s->brokers.b) / sizeof(s->brokers.b[0])))
        s->brokers.b[s->brokers.n++] = (broker_state_t){.id = id};
    if (i < s->brokers.n && s->brokers.b[i].up != up) {
        broker_state_t *b = &s->brokers.b[i];
        int64_t now = sl_mono_ms();
        if (!up) b->fetcher = b->fetch_sent && now - b->fetch_sent < FETCHER_RECENT_MS;
        b->up = up;
        b->since = now;
        b->fetched = 0;
    }
    pthread_mutex_unlock(&s->brokers.lock);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static broker_state_t *broker_find(sink_ctx_t *s, int32_t id) {
    for (int i = 0; i < s->brokers.n; i++)
        if (s->brokers.b[i].id == id) return &s->brokers.b[i];
    return NULL;
}

/* librdkafka interceptors (broker threads): Fetch requests and answers. */
static rd_kafka_resp_err_t on_request_sent(rd_kafka_t *rk, int sockfd, const char *name,
                                           int32_t id, int16_t api, int16_t version, int32_t corr,
                                           size_t size, void *opaque) {
    (void)rk, (void)sockfd, (void)name, (void)version, (void)corr, (void)size;
    sink_ctx_t *s = opaque;
    if (api != 1 /* Fetch */) return RD_KAFKA_RESP_ERR_NO_ERROR;
    pthread_mutex_lock(&s->brokers.lock);
    broker_state_t *b = broker_find(s, id);
    if (b) b->fetch_sent = sl_mono_ms();
    pthread_mutex_unlock(&s->brokers.lock);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t on_response_received(rd_kafka_t *rk, int sockfd, const char *name,
                                                int32_t id, int16_t api, int16_t version,
                                                int32_t corr, size_t size, int64_t rtt,
                                                rd_kafka_resp_err_t err, void *opaque) {
    (void)rk, (void)sockfd, (void)name, (void)version, (void)corr, (void)size, (void)rtt;
    sink_ctx_t *s = opaque;
    if (api != 1 /* Fetch */ || err) return RD_KAFKA_RESP_ERR_NO_ERROR;
    pthread_mutex_lock(&s->brokers.lock);
    broker_state_t *b = broker_find(s, id);
    if (b && b->up) b->fetched++;
    pthread_mutex_unlock(&s->brokers.lock);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t on_new(rd_kafka_t *rk, const rd_kafka_conf_t *conf, void *opaque,
                                  char *err, size_t errlen) {
    (void)conf, (void)err, (void)errlen;
    rd_kafka_resp_err_t e = rd_kafka_interceptor_add_on_broker_state_change(
        rk, "sluice-broker-state", on_broker_state, opaque);
    if (!e) e = rd_kafka_interceptor_add_on_request_sent(rk, "sluice-broker-state", on_request_sent,
                                                          opaque);
    if (!e)
        e = rd_kafka_interceptor_add_on_response_received(rk, "sluice-broker-state",
                                                          on_response_received, opaque);
    return e;
}

static void on_assign(sink_ctx_t *s, rd_kafka_topic_partition_list_t *parts) {
    size_t n = (size_t)parts->cnt;
    sluice_topic_partition_t *tps = calloc(n ? n : 1, sizeof(*tps));
    if (!tps) return;
    /* The group's committed offsets, so the task can compare them with what
     * its destination holds. */
    rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(parts);
    rd_kafka_resp_err_t e = rd_kafka_committed(s->consumer, committed, 10000);
    if (e) SL_WARN(s->task->tag, "reading committed offsets: %s", rd_kafka_err2str(e));
    for (size_t i = 0; i < n; i++) {
        int64_t c = e ? -1 : committed->elems[i].offset;
        sl_connector_note_topic(s->conn, parts->elems[i].topic);
        tps[i] = (sluice_topic_partition_t){parts->elems[i].topic, parts->elems[i].partition,
                                            c >= 0 ? c : SLUICE_OFFSET_UNSET};
    }
    rd_kafka_topic_partition_list_destroy(committed);
    int64_t *given = calloc(n ? n : 1, sizeof(*given));
    for (size_t i = 0; given && i < n; i++) given[i] = tps[i].offset;
    sl_chain_open(&s->chain, tps, n);
    const sluice_sink_ops_t *ops = s->task->plugin->desc->sink;
    sluice_err_t orc = SLUICE_OK;
    int64_t since = sl_mono_ms(), backoff = 100;
    while (ops->open && (orc = ops->open(s->task->state, s->task, tps, n)) == SLUICE_ERR_RETRIABLE &&
           !sl_runner_stopping(s->runner)) {
        /* As put(): a destination that drops connections is tried again,
         * within errors.retry.timeout, and at most OPEN_RETRY_MAX_MS here
         * (the rebalance waits meanwhile). */
        int64_t tried = sl_mono_ms() - since;
        if ((s->conn->retry_timeout_ms >= 0 && tried >= s->conn->retry_timeout_ms) ||
            tried >= OPEN_RETRY_MAX_MS)
            break;
        SL_WARN(s->task->tag, "open: retriable error%s%s; retrying in %lld ms",
                s->task->error[0] ? ": " : "", s->task->error, (long long)backoff);
        for (int64_t slept = 0; slept < backoff && !sl_runner_stopping(s->runner); slept += 50)
            nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
        backoff = backoff * 2 > s->conn->retry_delay_max_ms ? s->conn->retry_delay_max_ms : backoff * 2;
        s->task->error[0] = '\0';
    }
    if (orc != SLUICE_OK)
        fail_task(s, "open: %s", s->task->error[0] ? s->task->error : "failed");
    for (size_t i = 0; i < n; i++) {
        /* The task's own start position wins over the committed offset. */
        parts->elems[i].offset = tps[i].offset >= 0 ? tps[i].offset : RD_KAFKA_OFFSET_INVALID;
        if (tps[i].offset >= 0 && given && tps[i].offset != given[i])
            SL_INFO(s->task->tag, "%s[%d]: resuming at offset %lld (from the sink)",
                    tps[i].topic, tps[i].partition, (long long)tps[i].offset);
        if (s->nparts == s->cap_parts) {
            size_t cap = s->cap_parts ? s->cap_parts * 2 : 16;
            assigned_t *grown = realloc(s->parts, cap * sizeof(*grown));
            if (!grown) continue;
            s->parts = grown;
            s->cap_parts = cap;
        }
        s->parts[s->nparts++] = (assigned_t){strdup(tps[i].topic), tps[i].partition,
                                             tps[i].offset >= 0 ? tps[i].offset : SLUICE_OFFSET_UNSET};
    }
    free(tps);
    free(given);
    SL_INFO(s->task->tag, "assigned %d partition(s), now %zu", parts->cnt, s->nparts);
}

static void on_revoke(sink_ctx_t *s, rd_kafka_topic_partition_list_t *parts) {
    commit(s, parts, 0);
    size_t n = (size_t)parts->cnt;
    sluice_topic_partition_t *tps = calloc(n ? n : 1, sizeof(*tps));
    for (size_t i = 0; tps && i < n; i++)
        tps[i] = (sluice_topic_partition_t){parts->elems[i].topic, parts->elems[i].partition,
                                            SLUICE_OFFSET_UNSET};
    const sluice_sink_ops_t *ops = s->task->plugin->desc->sink;
    if (tps && ops->close) ops->close(s->task->state, s->task, tps, n);
    if (tps) sl_chain_close(&s->chain, tps, n);
    free(tps);
    /* Records of revoked partitions not yet put (a retrying put()) are the
     * new owner's to read from the committed offset: drop them here. */
    size_t kept = 0;
    for (size_t i = 0; i < s->nbatch; i++) {
        sluice_record_t *r = s->batch[i];
        if (r->topic && rd_kafka_topic_partition_list_find(parts, r->topic, r->partition))
            sl_record_free(r);
        else
            s->batch[kept++] = r;
    }
    s->nbatch = kept;
    for (size_t i = 0; i < s->nparts;) {
        if (rd_kafka_topic_partition_list_find(parts, s->parts[i].topic, s->parts[i].partition)) {
            free(s->parts[i].topic);
            s->parts[i] = s->parts[--s->nparts];
        } else {
            i++;
        }
    }
    SL_INFO(s->task->tag, "revoked %d partition(s), now %zu", parts->cnt, s->nparts);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    sink_ctx_t *s = opaque;
    /* Known from the configured strategy (at the consumer's creation);
     * rd_kafka_rebalance_protocol() is not asked here: in the revoke that
     * rd_kafka_consumer_close() runs it can block forever (librdkafka
     * #4041, still in 2.3) - a worker's SIGTERM hung past a minute. */
    s->ever_assigned = 1;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(s, parts);
        rd_kafka_error_t *e = NULL;
        if (s->cooperative)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        /* While put() is being retried nothing new is fetched. */
        if (s->paused) rd_kafka_pause_partitions(rk, parts);
        if (e) {
            SL_ERROR(s->task->tag, "assign: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        on_revoke(s, parts);
        if (s->cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e) rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, NULL);
        }
    } else {
        SL_ERROR(s->task->tag, "rebalance error: %s", rd_kafka_err2str(err));
        if (s->cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e) rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, NULL);
        }
    }
}

static sluice_err_t decode(sink_ctx_t *s, const rd_kafka_message_t *m, sluice_record_t **out) {
    char err[512];
    sluice_record_t *rec = sl_record_new();
    if (!rec) return SLUICE_ERR_NOMEM;
    rec->topic = strdup(rd_kafka_topic_name(m->rkt));
    rec->partition = m->partition;
    rec->offset = m->offset;
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    rec->timestamp = tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
    if (m->key) sl_record_set_key(rec, m->key, m->key_len);
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *val;
        size_t len;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &len) == 0; i++)
            sl_record_add_header(rec, name, val, len);
    }
    *out = rec;
    sluice_err_t rc = sl_converter_decode(&s->conn->value_conv, m->payload, m->len, rec, err,
                                          sizeof(err));
    if (rc == SLUICE_ERR_BAD_RECORD) {
        sl_metric_add(s->task->m_errors, 1);
        sl_dlq_report_stage(&s->dlq, s->task, rec, rc, err, "VALUE_CONVERTER");
        if (!s->conn->tolerate_errors)
            snprintf(s->poisoned, sizeof(s->poisoned), "%s[%d]@%lld: %s (errors.tolerance=none)",
                     rec->topic, rec->partition, (long long)rec->offset, err);
    }
    return rc;
}

static int subscribe(sink_ctx_t *s, char *err, size_t errlen) {
    const char *topics = sl_props_get(s->conn->config, "topics");
    const char *regex = sl_props_get(s->conn->config, "topics.regex");
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(4);
    if (regex && *regex) {
        char pattern[1024];
        snprintf(pattern, sizeof(pattern), "%s%s", regex[0] == '^' ? "" : "^", regex);
        rd_kafka_topic_partition_list_add(list, pattern, RD_KAFKA_PARTITION_UA);
    } else {
        char *copy = strdup(topics), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ') t++;
            if (*t) rd_kafka_topic_partition_list_add(list, t, RD_KAFKA_PARTITION_UA);
        }
        free(copy);
    }
    rd_kafka_resp_err_t e = rd_kafka_subscribe(s->consumer, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) {
        snprintf(err, errlen, "subscribe: %s", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static int setup(sink_ctx_t *s) {
    sl_connector_t *c = s->conn;
    int id = s->runner->id;
    char err[1024], group[512], client[600];
    sl_props_t *cfg = sl_props_dup(c->config);
    s->task = cfg ? sl_task_new(&c->rt->svc, c->name, NULL, c->plugin, cfg, id, c->tasks_max)
                  : NULL;
    if (!s->task) {
        fail_task(s, "out of memory");
        return -1;
    }
    s->task->emit = collect; /* a sink emitting is a no-op into its own batch */
    s->task->emit_arg = s;
    if (sl_dlq_init(&s->dlq, c, id, NULL, err, sizeof(err)) != 0) {
        fail_task(s, "%s", err);
        return -1;
    }
    s->task->dead_letter = sl_dlq_report;
    s->task->dead_letter_arg = &s->dlq;
    sl_metrics_t *m = c->rt->svc.metrics;
    s->m_consumed = sl_metrics_get(m, SL_METRIC_COUNTER, "sink_records_consumed_total",
                                   "records read from Kafka", c->name, id);
    s->m_put = sl_metrics_get(m, SL_METRIC_COUNTER, "sink_records_put_total",
                              "records handed to the sink task", c->name, id);
    s->m_commits = sl_metrics_get(m, SL_METRIC_COUNTER, "sink_offset_commits_total",
                                  "offset commits", c->name, id);
    s->m_put_retries = sl_metrics_get(m, SL_METRIC_COUNTER, "sink_put_retries_total",
                                      "put() calls that failed RETRIABLE", c->name, id);
    s->m_paused = sl_metrics_get(m, SL_METRIC_GAUGE, "sink_paused",
                                 "1 while fetching is paused for a retrying put()", c->name, id);
    s->m_commit_failures = sl_metrics_get(m, SL_METRIC_COUNTER, "sink_offset_commit_failures_total",
                                          "offset commits the group coordinator refused", c->name,
                                          id);
    s->m_lag = sl_metrics_get(m, SL_METRIC_GAUGE, "sink_consumer_lag",
                              "records between the assigned partitions' end offsets (as last "
                              "fetched) and what was put", c->name, id);
    s->m_latest_dropped = sl_metrics_get(m, SL_METRIC_COUNTER, "latest_records_dropped_total",
                                         "records not kept for GET /connectors/{name}/latest "
                                         "(a new key beyond latest.records.max)",
                                         c->name, id);
    s->m_batch = sl_metrics_histogram(m, "sink_batch_records", "records per put() batch", c->name,
                                      id, sl_metrics_size_buckets, sl_metrics_size_nbuckets);
    s->m_put_s = sl_metrics_histogram(m, "sink_put_seconds", "put() latency", c->name, id,
                                      sl_metrics_seconds_buckets, sl_metrics_seconds_nbuckets);
    s->m_flush_s = sl_metrics_histogram(m, "sink_flush_seconds",
                                        "pre_commit() latency (the sink making its writes durable "
                                        "before an offset commit)",
                                        c->name, id, sl_metrics_seconds_buckets,
                                        sl_metrics_seconds_nbuckets);
    if (sl_chain_init(&s->chain, c, id, collect, s, sl_dlq_report, &s->dlq, err, sizeof(err)) != 0) {
        fail_task(s, "%s", err);
        return -1;
    }
    sl_chain_set_at_end(&s->chain, at_end, s);
    if (sl_task_start(s->task) != SLUICE_OK) {
        fail_task(s, "%s", s->task->error);
        return -1;
    }
    rd_kafka_conf_t *conf = sl_kafka_conf(SL_KAFKA_CONSUMER, c->rt->bootstrap, c->rt->worker,
                                          c->config, err, sizeof(err));
    if (!conf) {
        fail_task(s, "%s", err);
        return -1;
    }
    snprintf(group, sizeof(group), "connect-%s", c->name);
    snprintf(client, sizeof(client), "connector-consumer-%s-%d", c->name, id);
    if (rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "client.id", client, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        fail_task(s, "%s", err);
        return -1;
    }
    s->cooperative = sl_kafka_conf_cooperative(conf);
    rd_kafka_conf_set_opaque(conf, s);
    if (s->chain.n > 0 &&
        rd_kafka_conf_interceptor_add_on_new(conf, "sluice-broker-state", on_new, s) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_conf_destroy(conf);
        fail_task(s, "consumer: cannot add the broker state interceptor");
        return -1;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(conf, offset_commit_cb);
    if (!(s->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)))) {
        rd_kafka_conf_destroy(conf);
        fail_task(s, "consumer: %s", err);
        return -1;
    }
    rd_kafka_poll_set_consumer(s->consumer);
    s->queue = rd_kafka_queue_get_consumer(s->consumer);
    if (subscribe(s, err, sizeof(err)) != 0) {
        fail_task(s, "%s", err);
        return -1;
    }
    return 0;
}

/* Reads up to MAX_BATCH messages in one call (waiting at most wait_ms for
 * the first); rebalance callbacks are served from the same call. */
static void consume_some(sink_ctx_t *s, int wait_ms) {
    static _Thread_local rd_kafka_message_t *msgs[MAX_BATCH];
    ssize_t got = rd_kafka_consume_batch_queue(s->queue, wait_ms, msgs, MAX_BATCH);
    for (ssize_t i = 0; i < got; i++) {
        rd_kafka_message_t *m = msgs[i];
        if (s->failed || s->poisoned[0]) { /* not handled: read again after a restart */
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                SL_WARN(s->task->tag, "consume: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        sl_metric_add(s->m_consumed, 1);
        assigned_t *a = find_part(s, rd_kafka_topic_name(m->rkt), m->partition);
        if (a && a->consumed != SLUICE_OFFSET_UNSET && m->offset < a->consumed) {
            rd_kafka_message_destroy(m); /* already put (seek overlap) */
            continue;
        }
        sluice_record_t *rec = NULL;
        sluice_err_t rc = decode(s, m, &rec);
        rd_kafka_message_destroy(m);
        if (rc == SLUICE_OK) {
            sluice_err_t trc = sl_chain_push(&s->chain, rec);
            if (trc != SLUICE_OK && trc != SLUICE_ERR_NO_DATA && trc != SLUICE_ERR_BAD_RECORD)
                fail_task(s, "transform: %s", sl_host_api()->err2str(trc));
        } else if (!s->poisoned[0]) {
            /* Bad record in the DLQ: counts as handled. */
            if (a && rec && rec->offset + 1 > a->consumed) a->consumed = rec->offset + 1;
            sl_record_free(rec);
        } else {
            /* Not handled: a restart must meet it again. */
            sl_record_free(rec);
        }
    }
}

/* True when every assigned partition has been put up to its high
 * watermark (as last seen by the fetcher). */
static int caught_up(sink_ctx_t *s) {
    if (s->nbatch > 0) return 0;
    /* Not assigned yet (the group join takes seconds): wait for it a while. */
    if (s->nparts == 0) return sl_mono_ms() > s->drain_since + 10000;
    for (size_t i = 0; i < s->nparts; i++) {
        int64_t lo = 0, hi = 0;
        /* Asked of the broker: the fetcher's cache is empty before a fetch. */
        if (rd_kafka_query_watermark_offsets(s->consumer, s->parts[i].topic, s->parts[i].partition,
                                             &lo, &hi, 1000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        int64_t pos = s->parts[i].consumed;
        if (pos == SLUICE_OFFSET_UNSET) { /* nothing put yet: where is the fetcher? */
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, s->parts[i].topic, s->parts[i].partition);
            if (rd_kafka_position(s->consumer, l) == RD_KAFKA_RESP_ERR_NO_ERROR)
                pos = l->elems[0].offset;
            rd_kafka_topic_partition_list_destroy(l);
        }
        if (hi > lo && pos < hi) return 0;
    }
    return 1;
}

/* The consumer lag: per assigned partition, the end offset the fetcher last
 * saw (no broker round trip) minus the next offset to put. */
static void update_lag(sink_ctx_t *s) {
    double lag = 0;
    for (size_t i = 0; i < s->nparts; i++) {
        int64_t lo = 0, hi = 0, pos = s->parts[i].consumed;
        if (rd_kafka_get_watermark_offsets(s->consumer, s->parts[i].topic, s->parts[i].partition,
                                           &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR || hi < 0)
            continue;
        if (pos == SLUICE_OFFSET_UNSET || pos < lo) pos = lo;
        if (hi > pos) lag += (double)(hi - pos);
    }
    sl_metric_set(s->m_lag, lag);
}

static void run(sink_ctx_t *s) {
    int64_t next_commit = sl_mono_ms() + s->conn->flush_interval_ms;
    while (!sl_runner_stopping(s->runner) && !s->failed) {
        int wait = sl_task_run_timers(s->task, sl_mono_ms(), 100);
        int chain_wait = sl_chain_run_timers(&s->chain, 100);
        consume_some(s, chain_wait < wait ? chain_wait : wait);
        put_batch(s);
        if (s->poisoned[0]) {
            commit(s, NULL, 0); /* what came before it is delivered */
            fail_task(s, "%s", s->poisoned);
            break;
        }
        if (s->dlq.owns_producer) rd_kafka_poll(s->dlq.producer, 0);
        if (atomic_load(&s->conn->draining)) {
            int64_t now = sl_mono_ms();
            if (!s->drain_since) s->drain_since = now;
            if (now >= s->next_drain_check) {
                if (caught_up(s)) break;
                s->next_drain_check = now + 200;
            }
        }
        if (sl_mono_ms() >= next_commit) {
            update_lag(s);
            commit(s, NULL, 1);
            next_commit = sl_mono_ms() + s->conn->flush_interval_ms;
        }
    }
}

static void teardown(sink_ctx_t *s) {
    if (s->consumer) {
        if (!s->failed) commit(s, NULL, 0);
        /* Leaving the group revokes everything: close() runs from the callback. */
        if (s->queue) rd_kafka_queue_destroy(s->queue);
        sl_kafka_consumer_destroy(s->consumer, s->ever_assigned);
    }
    free_batch(s);
    free(s->batch);
    sl_task_free(s->task);
    sl_chain_destroy(&s->chain);
    sl_dlq_destroy(&s->dlq);
    for (size_t i = 0; i < s->nparts; i++) free(s->parts[i].topic);
    free(s->parts);
}

void *sl_sink_runner_main(void *arg) {
    sl_runner_t *r = arg;
    sink_ctx_t s = {.runner = r, .conn = r->conn};
    pthread_mutex_init(&s.brokers.lock, NULL);
    if (setup(&s) == 0) {
        atomic_store(&r->state, SL_TASK_RUNNING);
        run(&s);
    }
    teardown(&s);
    pthread_mutex_destroy(&s.brokers.lock);
    atomic_store(&r->state, s.failed ? SL_TASK_FAILED : SL_TASK_STOPPED);
    return NULL;
}
