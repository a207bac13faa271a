/* sink_runner.c - the thread of one sink task: a member of the connector's
 * consumer group ("connect-<name>"). Rebalances drive the task's
 * open/close; records are decoded, pushed through the transform chain and
 * handed to put() in batches; offsets are committed only up to what the
 * task (and every transform) reports durable in pre_commit(). */
#include "connector.h"
#include "kafka.h"
#include "log.h"
#include "record.h"

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

typedef struct sink_ctx {
    sl_runner_t *runner;
    sl_connector_t *conn;
    sluice_task_t *task;
    sl_chain_t chain;
    rd_kafka_t *consumer;
    int cooperative;
    assigned_t *parts;
    size_t nparts, cap_parts;
    sluice_record_t **batch; /* what the chain emitted, for the next put() */
    size_t nbatch, cap_batch;
    int failed;
    int64_t drain_since, next_drain_check;
    int ever_assigned; /* a group join completed (see sl_kafka_consumer_destroy) */
    sluice_metric_t *m_consumed, *m_put, *m_commits;
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

/* Hands the batch to put(), retrying a retriable failure with back-off. */
static void put_batch(sink_ctx_t *s) {
    if (s->nbatch == 0 || s->failed) return;
    const sluice_sink_ops_t *ops = s->task->plugin->desc->sink;
    int backoff = 100;
    for (;;) {
        s->task->error[0] = '\0';
        sluice_err_t rc = ops->put(s->task->state, s->task, s->batch, s->nbatch);
        if (rc == SLUICE_OK) break;
        if (rc == SLUICE_ERR_BAD_RECORD && s->conn->tolerate_errors) break; /* DLQ'd by the task */
        if (rc != SLUICE_ERR_RETRIABLE || atomic_load(&s->conn->stopping)) {
            fail_task(s, "put: %s%s%s", sl_host_api()->err2str(rc), s->task->error[0] ? ": " : "",
                      s->task->error);
            return;
        }
        SL_WARN(s->task->tag, "put: retriable error%s%s; retrying in %d ms",
                s->task->error[0] ? ": " : "", s->task->error, backoff);
        struct timespec ts = {backoff / 1000, (backoff % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    sl_metric_add(s->m_put, (double)s->nbatch);
    for (size_t i = 0; i < s->nbatch; i++) {
        sluice_record_t *rec = s->batch[i];
        assigned_t *a = rec->topic ? find_part(s, rec->topic, rec->partition) : NULL;
        if (a && rec->offset + 1 > a->consumed) a->consumed = rec->offset + 1;
    }
    free_batch(s);
}

/* Offsets to commit for the given partitions (all when list is NULL):
 * consumed positions lowered by the task's and the chain's pre_commit. */
static void commit(sink_ctx_t *s, const rd_kafka_topic_partition_list_t *only) {
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
        sluice_err_t rc = ops->pre_commit(s->task->state, s->task, tps, n);
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
        rd_kafka_resp_err_t e = rd_kafka_commit(s->consumer, list, 0);
        if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
            SL_WARN(s->task->tag, "offset commit failed: %s", rd_kafka_err2str(e));
        else
            sl_metric_add(s->m_commits, 1);
    }
    rd_kafka_topic_partition_list_destroy(list);
    free(before);
    free(tps);
}

static void on_assign(sink_ctx_t *s, rd_kafka_topic_partition_list_t *parts) {
    size_t n = (size_t)parts->cnt;
    sluice_topic_partition_t *tps = calloc(n ? n : 1, sizeof(*tps));
    if (!tps) return;
    for (size_t i = 0; i < n; i++)
        tps[i] = (sluice_topic_partition_t){parts->elems[i].topic, parts->elems[i].partition,
                                            SLUICE_OFFSET_UNSET};
    sl_chain_open(&s->chain, tps, n);
    const sluice_sink_ops_t *ops = s->task->plugin->desc->sink;
    if (ops->open && ops->open(s->task->state, s->task, tps, n) != SLUICE_OK)
        fail_task(s, "open: %s", s->task->error[0] ? s->task->error : "failed");
    for (size_t i = 0; i < n; i++) {
        /* The task's own start position wins over the committed offset. */
        parts->elems[i].offset = tps[i].offset >= 0 ? tps[i].offset : RD_KAFKA_OFFSET_INVALID;
        if (tps[i].offset >= 0)
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
    SL_INFO(s->task->tag, "assigned %d partition(s), now %zu", parts->cnt, s->nparts);
}

static void on_revoke(sink_ctx_t *s, rd_kafka_topic_partition_list_t *parts) {
    commit(s, parts);
    size_t n = (size_t)parts->cnt;
    sluice_topic_partition_t *tps = calloc(n ? n : 1, sizeof(*tps));
    for (size_t i = 0; tps && i < n; i++)
        tps[i] = (sluice_topic_partition_t){parts->elems[i].topic, parts->elems[i].partition,
                                            SLUICE_OFFSET_UNSET};
    const sluice_sink_ops_t *ops = s->task->plugin->desc->sink;
    if (tps && ops->close) ops->close(s->task->state, s->task, tps, n);
    if (tps) sl_chain_close(&s->chain, tps, n);
    free(tps);
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
    /* Known only once the group is joined, so asked on every rebalance. */
    s->cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    s->ever_assigned = 1;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(s, parts);
        rd_kafka_error_t *e = NULL;
        if (s->cooperative)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
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
        sl_host_api()->dead_letter(s->task, rec, rc, err);
        if (!s->conn->tolerate_errors)
            fail_task(s, "%s[%d]@%lld: %s (errors.tolerance=none)", rec->topic, rec->partition,
                      (long long)rec->offset, err);
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
    sl_metrics_t *m = c->rt->svc.metrics;
    s->m_consumed = sl_metrics_get(m, SL_METRIC_COUNTER, "sink_records_consumed_total",
                                   "records read from Kafka", c->name, id);
    s->m_put = sl_metrics_get(m, SL_METRIC_COUNTER, "sink_records_put_total",
                              "records handed to the sink task", c->name, id);
    s->m_commits = sl_metrics_get(m, SL_METRIC_COUNTER, "sink_offset_commits_total",
                                  "offset commits", c->name, id);
    if (sl_chain_init(&s->chain, c, id, collect, s, NULL, NULL, err, sizeof(err)) != 0) {
        fail_task(s, "%s", err);
        return -1;
    }
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
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    if (!(s->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)))) {
        rd_kafka_conf_destroy(conf);
        fail_task(s, "consumer: %s", err);
        return -1;
    }
    rd_kafka_poll_set_consumer(s->consumer);
    if (subscribe(s, err, sizeof(err)) != 0) {
        fail_task(s, "%s", err);
        return -1;
    }
    return 0;
}

/* Reads up to MAX_BATCH messages (waiting at most wait_ms for the first). */
static void consume_some(sink_ctx_t *s, int wait_ms) {
    for (int i = 0; i < MAX_BATCH && !s->failed; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->consumer, i == 0 ? wait_ms : 0);
        if (!m) break;
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
            sl_chain_push(&s->chain, rec);
        } else {
            /* Bad record (in the DLQ, or the task failed): counts as handled. */
            if (a && rec && rec->offset + 1 > a->consumed) a->consumed = rec->offset + 1;
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

static void run(sink_ctx_t *s) {
    int64_t next_commit = sl_mono_ms() + s->conn->flush_interval_ms;
    while (!atomic_load(&s->conn->stopping) && !s->failed) {
        int wait = sl_task_run_timers(s->task, sl_mono_ms(), 100);
        int chain_wait = sl_chain_run_timers(&s->chain, 100);
        consume_some(s, chain_wait < wait ? chain_wait : wait);
        put_batch(s);
        if (atomic_load(&s->conn->draining)) {
            int64_t now = sl_mono_ms();
            if (!s->drain_since) s->drain_since = now;
            if (now >= s->next_drain_check) {
                if (caught_up(s)) break;
                s->next_drain_check = now + 200;
            }
        }
        if (sl_mono_ms() >= next_commit) {
            commit(s, NULL);
            next_commit = sl_mono_ms() + s->conn->flush_interval_ms;
        }
    }
}

static void teardown(sink_ctx_t *s) {
    if (s->consumer) {
        if (!s->failed) commit(s, NULL);
        /* Leaving the group revokes everything: close() runs from the callback. */
        sl_kafka_consumer_destroy(s->consumer, s->ever_assigned);
    }
    free_batch(s);
    free(s->batch);
    sl_task_free(s->task);
    sl_chain_destroy(&s->chain);
    for (size_t i = 0; i < s->nparts; i++) free(s->parts[i].topic);
    free(s->parts);
}

void *sl_sink_runner_main(void *arg) {
    sl_runner_t *r = arg;
    sink_ctx_t s = {.runner = r, .conn = r->conn};
    if (setup(&s) == 0) {
        atomic_store(&r->state, SL_TASK_RUNNING);
        run(&s);
    }
    teardown(&s);
    atomic_store(&r->state, s.failed ? SL_TASK_FAILED : SL_TASK_STOPPED);
    return NULL;
}
