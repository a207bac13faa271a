/* source_runner.c - the thread of one source task: poll the plugin, push
 * records through the transform chain, encode them and produce them to
 * Kafka; store a source partition's offset only once Kafka acknowledged
 * that record and every record emitted before it (Kafka Connect's rule). */
#include "connector.h"
#include "dlq.h"
#include "kafka.h"
#include "log.h"
#include "offset_store.h"
#include "record.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A produced record that carries a source position, in emit order. */
typedef struct inflight {
    char *partition, *offset; /* JSON text, owned */
    int state;                /* 0 pending, 1 acked, -1 failed */
    struct inflight *next;
} inflight_t;

typedef struct pending_offset {
    char *partition, *offset;
} pending_offset_t;

typedef struct source_ctx {
    sl_runner_t *runner;
    sl_connector_t *conn;
    sluice_task_t *task;
    sl_chain_t chain;
    sl_dlq_t dlq;
    rd_kafka_t *producer;
    inflight_t *head, *tail;
    pending_offset_t *pending; /* latest acked offset per source partition */
    size_t npending, cap_pending;
    int failed;
    char **topics; /* topics this task has produced to (created if asked) */
    size_t ntopics;
    sluice_metric_t *m_produced, *m_acked, *m_failed, *m_poll_errors;
} source_ctx_t;

static void fail_task(source_ctx_t *s, const char *fmt, ...) SLUICE_PRINTF(2, 3);
static void fail_task(source_ctx_t *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->runner->trace, sizeof(s->runner->trace), fmt, ap);
    va_end(ap);
    s->failed = 1;
    SL_ERROR(s->task ? s->task->tag : s->conn->name, "task failed: %s", s->runner->trace);
}

static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    (void)rk;
    source_ctx_t *s = opaque;
    inflight_t *f = msg->_private;
    if (msg->err) {
        sl_metric_add(s->m_failed, 1);
        if (!s->failed)
            fail_task(s, "delivery to %s failed: %s", rd_kafka_topic_name(msg->rkt),
                      rd_kafka_err2str(msg->err));
        if (f) f->state = -1;
    } else {
        sl_metric_add(s->m_acked, 1);
        if (f) f->state = 1;
    }
}

static void set_pending(source_ctx_t *s, inflight_t *f) {
    for (size_t i = 0; i < s->npending; i++) {
        if (strcmp(s->pending[i].partition, f->partition) == 0) {
            free(s->pending[i].offset);
            free(f->partition);
            s->pending[i].offset = f->offset;
            return;
        }
    }
    if (s->npending == s->cap_pending) {
        size_t cap = s->cap_pending ? s->cap_pending * 2 : 8;
        pending_offset_t *grown = realloc(s->pending, cap * sizeof(*grown));
        if (!grown) { /* keep the older offset: safe, replays more */
            free(f->partition);
            free(f->offset);
            return;
        }
        s->pending = grown;
        s->cap_pending = cap;
    }
    s->pending[s->npending++] = (pending_offset_t){f->partition, f->offset};
}

/* Moves the acknowledged prefix of the in-flight list into pending. */
static void advance(source_ctx_t *s) {
    while (s->head && s->head->state == 1) {
        inflight_t *f = s->head;
        s->head = f->next;
        if (!s->head) s->tail = NULL;
        set_pending(s, f); /* takes f's strings */
        free(f);
    }
}

static void commit_offsets(source_ctx_t *s) {
    advance(s);
    if (s->npending == 0) return;
    sl_offset_store_t *store = s->conn->rt->svc.offsets;
    for (size_t i = 0; i < s->npending; i++) {
        if (store && sl_offset_store_put(store, s->conn->name, s->pending[i].partition,
                                         s->pending[i].offset) != 0)
            SL_ERROR(s->task->tag, "source offset not stored: partition %s / offset %s is not JSON",
                     s->pending[i].partition, s->pending[i].offset);
        free(s->pending[i].partition);
        free(s->pending[i].offset);
    }
    s->npending = 0;
    char err[512];
    if (store && sl_offset_store_flush(store, err, sizeof(err)) != 0) {
        SL_ERROR(s->task->tag, "%s", err);
        return;
    }
    const sluice_source_ops_t *ops = s->task->plugin->desc->source;
    if (ops->commit) ops->commit(s->task->state, s->task);
}

/* Kafka Connect's topic creation for sources: with
 * topic.creation.default.partitions / .replication.factor set, a topic the
 * task writes to for the first time is created with them and with every
 * other topic.creation.default.<config> as a topic config. */
/* librdkafka's idempotent producer asks for a new topic's metadata only on
 * its next 1 s topic scan, so the first records of a topic waited ~1 s: ask
 * once, now (one round trip, once per topic). */
static void prefetch_metadata(source_ctx_t *s, const char *topic) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(s->producer, topic, NULL);
    if (!rkt) return;
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(s->producer, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
}

static int ensure_topic(source_ctx_t *s, const char *topic) {
    for (size_t i = 0; i < s->ntopics; i++)
        if (strcmp(s->topics[i], topic) == 0) return 0;
    char **grown = realloc(s->topics, (s->ntopics + 1) * sizeof(*grown));
    if (!grown) return -1;
    s->topics = grown;
    if (!(s->topics[s->ntopics] = strdup(topic))) return -1;
    s->ntopics++;
    sl_connector_note_topic(s->conn, topic);
    const sl_props_t *cfg = s->conn->config;
    const char *parts = sl_props_get(cfg, "topic.creation.default.partitions");
    const char *rf = sl_props_get(cfg, "topic.creation.default.replication.factor");
    if (!parts && !rf) { /* the broker's auto-creation, if any, applies */
        prefetch_metadata(s, topic);
        return 0;
    }
    int64_t np = -1, nr = -1;
    if (parts) sl_parse_int64(parts, &np);
    if (rf) sl_parse_int64(rf, &nr);
    sl_props_t *all = sl_props_sub(cfg, "topic.creation.default.");
    if (all) {
        sl_props_unset(all, "partitions");
        sl_props_unset(all, "replication.factor");
    }
    char err[512];
    int created = 0;
    int rc = sl_kafka_create_topic(s->producer, s->conn->rt->embedded, topic, (int)np, (int)nr, all,
                                   10000, &created, err, sizeof(err));
    sl_props_free(all);
    if (rc != 0) {
        fail_task(s, "creating topic: %s", err);
        return -1;
    }
    if (created == SL_TOPIC_CREATED)
        SL_INFO(s->task->tag, "created topic %s (%lld partitions, replication %lld)", topic,
                (long long)np, (long long)nr);
    else if (created == SL_TOPIC_LEFT_TO_BROKER)
        SL_WARN(s->task->tag,
                "topic %s: the cluster cannot create topics (no controller or no CreateTopics); "
                "left to the broker's auto-creation with its defaults",
                topic);
    return 0;
}

static sluice_err_t produce(source_ctx_t *s, sluice_record_t *rec) {
    char err[512];
    void *value = NULL;
    size_t len = 0;
    if (!rec->topic) {
        SL_ERROR(s->task->tag, "record without a topic dropped (set it with record_set_topic)");
        sl_metric_add(s->task->m_errors, 1);
        sl_record_free(rec);
        return SLUICE_ERR_BAD_RECORD;
    }
    if (ensure_topic(s, rec->topic) != 0) {
        sl_record_free(rec);
        return SLUICE_ERR_FATAL;
    }
    sluice_err_t rc = sl_converter_encode(&s->conn->value_conv, rec, &value, &len, err, sizeof(err));
    if (rc != SLUICE_OK) {
        sl_metric_add(s->task->m_errors, 1);
        sl_dlq_report_stage(&s->dlq, s->task, rec, rc, err, "VALUE_CONVERTER");
        if (!s->conn->tolerate_errors)
            fail_task(s, "cannot encode a record for %s: %s (errors.tolerance=none)", rec->topic, err);
        sl_record_free(rec);
        return s->conn->tolerate_errors ? SLUICE_ERR_BAD_RECORD : SLUICE_ERR_FATAL;
    }
    rd_kafka_headers_t *hdrs = NULL;
    if (rec->nheaders) {
        hdrs = rd_kafka_headers_new(rec->nheaders);
        for (size_t i = 0; i < rec->nheaders; i++)
            rd_kafka_header_add(hdrs, rec->headers[i].name, -1, rec->headers[i].value,
                                (ssize_t)rec->headers[i].len);
    }
    inflight_t *f = NULL;
    if (rec->src_partition) {
        f = calloc(1, sizeof(*f));
        if (!f) {
            free(value);
            if (hdrs) rd_kafka_headers_destroy(hdrs);
            sl_record_free(rec);
            return SLUICE_ERR_NOMEM;
        }
        f->partition = rec->src_partition;
        f->offset = rec->src_offset;
        rec->src_partition = rec->src_offset = NULL;
    }
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            s->producer, RD_KAFKA_V_TOPIC(rec->topic), RD_KAFKA_V_KEY(rec->key, rec->key_len),
            RD_KAFKA_V_VALUE(value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
            RD_KAFKA_V_TIMESTAMP(rec->timestamp > 0 ? rec->timestamp : 0),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(f), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && !s->failed) {
            rd_kafka_poll(s->producer, 50); /* back-pressure: wait for deliveries */
            continue;
        }
        fail_task(s, "produce to %s failed: %s", rec->topic, rd_kafka_err2str(e));
        free(value);
        if (hdrs) rd_kafka_headers_destroy(hdrs);
        if (f) {
            free(f->partition);
            free(f->offset);
            free(f);
        }
        sl_record_free(rec);
        return SLUICE_ERR_FATAL;
    }
    if (f) {
        if (s->tail) s->tail->next = f;
        else s->head = f;
        s->tail = f;
    }
    sl_metric_add(s->m_produced, 1);
    sl_record_free(rec);
    return SLUICE_OK;
}

static sluice_err_t final_emit(void *arg, sluice_task_t *from, sluice_record_t *rec) {
    (void)from;
    return produce(arg, rec);
}

static sluice_err_t source_emit(void *arg, sluice_task_t *from, sluice_record_t *rec) {
    (void)from;
    source_ctx_t *s = arg;
    return sl_chain_push(&s->chain, rec);
}

static int setup(source_ctx_t *s) {
    sl_connector_t *c = s->conn;
    char err[1024];
    sl_props_t *cfg = sl_props_dup(c->config);
    s->task = cfg ? sl_task_new(&c->rt->svc, c->name, NULL, c->plugin, cfg, s->runner->id,
                                c->tasks_max)
                  : NULL;
    if (!s->task) {
        fail_task(s, "out of memory");
        return -1;
    }
    s->task->emit = source_emit;
    s->task->emit_arg = s;
    const char *metric_conn = c->name;
    int id = s->runner->id;
    sl_metrics_t *m = c->rt->svc.metrics;
    s->m_produced = sl_metrics_get(m, SL_METRIC_COUNTER, "source_records_produced_total",
                                   "records handed to the Kafka producer", metric_conn, id);
    s->m_acked = sl_metrics_get(m, SL_METRIC_COUNTER, "source_records_acked_total",
                                "records acknowledged by Kafka", metric_conn, id);
    s->m_failed = sl_metrics_get(m, SL_METRIC_COUNTER, "source_records_failed_total",
                                 "records Kafka did not accept", metric_conn, id);
    s->m_poll_errors = sl_metrics_get(m, SL_METRIC_COUNTER, "source_poll_errors_total",
                                      "poll() calls that returned an error", metric_conn, id);
    rd_kafka_conf_t *conf = sl_kafka_conf(SL_KAFKA_PRODUCER, c->rt->bootstrap, c->rt->worker,
                                          c->config, err, sizeof(err));
    if (!conf) {
        fail_task(s, "%s", err);
        return -1;
    }
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
    if (!(s->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)))) {
        rd_kafka_conf_destroy(conf);
        fail_task(s, "producer: %s", err);
        return -1;
    }
    if (sl_dlq_init(&s->dlq, c, id, s->producer, err, sizeof(err)) != 0) {
        fail_task(s, "%s", err);
        return -1;
    }
    s->task->dead_letter = sl_dlq_report;
    s->task->dead_letter_arg = &s->dlq;
    if (sl_chain_init(&s->chain, c, id, final_emit, s, sl_dlq_report, &s->dlq, err, sizeof(err)) != 0) {
        fail_task(s, "%s", err);
        return -1;
    }
    if (sl_task_start(s->task) != SLUICE_OK) {
        fail_task(s, "%s", s->task->error);
        return -1;
    }
    return 0;
}

static void run(source_ctx_t *s) {
    const sluice_source_ops_t *ops = s->task->plugin->desc->source;
    int64_t next_commit = sl_mono_ms() + s->conn->flush_interval_ms;
    int64_t backoff = 0, retry_since = 0;
    while (!sl_runner_stopping(s->runner) && !s->failed) {
        int wait = sl_task_run_timers(s->task, sl_mono_ms(), 100);
        int chain_wait = sl_chain_run_timers(&s->chain, 100);
        if (chain_wait < wait) wait = chain_wait;
        sluice_err_t rc = ops->poll(s->task->state, s->task, wait);
        rd_kafka_poll(s->producer, 0);
        if (rc == SLUICE_ERR_FATAL) {
            fail_task(s, "poll: %s", s->task->error[0] ? s->task->error : "fatal error");
        } else if (rc == SLUICE_ERR_RETRIABLE || (rc != SLUICE_OK && rc != SLUICE_ERR_NO_DATA)) {
            sl_metric_add(s->m_poll_errors, 1);
            int64_t now = sl_mono_ms();
            if (!retry_since) retry_since = now;
            if (s->conn->retry_timeout_ms >= 0 && now - retry_since >= s->conn->retry_timeout_ms) {
                fail_task(s, "poll: still failing after %lld ms of retries (errors.retry.timeout=%lld)%s%s",
                          (long long)(now - retry_since), (long long)s->conn->retry_timeout_ms,
                          s->task->error[0] ? ": " : "", s->task->error);
                continue;
            }
            backoff = backoff ? (backoff * 2 > s->conn->retry_delay_max_ms ? s->conn->retry_delay_max_ms
                                                                            : backoff * 2)
                              : 100;
            SL_WARN(s->task->tag, "poll: %s%s%s; retrying in %lld ms", sl_host_api()->err2str(rc),
                    s->task->error[0] ? ": " : "", s->task->error, (long long)backoff);
            for (int64_t slept = 0; slept < backoff && !sl_runner_stopping(s->runner); slept += 50)
                rd_kafka_poll(s->producer, 50);
        } else {
            backoff = 0;
            retry_since = 0;
        }
        if (sl_mono_ms() >= next_commit) {
            commit_offsets(s);
            next_commit = sl_mono_ms() + s->conn->flush_interval_ms;
        }
    }
}

static void teardown(source_ctx_t *s) {
    if (s->producer) {
        rd_kafka_resp_err_t e = rd_kafka_flush(s->producer, 30000);
        if (e) SL_WARN(s->conn->name, "producer flush: %s", rd_kafka_err2str(e));
        rd_kafka_poll(s->producer, 0);
        if (s->task && s->task->started) commit_offsets(s);
    }
    sl_task_free(s->task); /* the plugin's stop() */
    sl_chain_destroy(&s->chain);
    sl_dlq_destroy(&s->dlq); /* shares the producer: destroyed below */
    if (s->producer) rd_kafka_destroy(s->producer);
    for (inflight_t *f = s->head, *next; f; f = next) {
        next = f->next;
        free(f->partition);
        free(f->offset);
        free(f);
    }
    for (size_t i = 0; i < s->npending; i++) {
        free(s->pending[i].partition);
        free(s->pending[i].offset);
    }
    free(s->pending);
    for (size_t i = 0; i < s->ntopics; i++) free(s->topics[i]);
    free(s->topics);
}

void *sl_source_runner_main(void *arg) {
    sl_runner_t *r = arg;
    source_ctx_t s = {.runner = r, .conn = r->conn};
    if (setup(&s) == 0) {
        atomic_store(&r->state, SL_TASK_RUNNING);
        run(&s);
    }
    teardown(&s);
    atomic_store(&r->state, s.failed ? SL_TASK_FAILED : SL_TASK_STOPPED);
    return NULL;
}
