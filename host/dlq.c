/* dlq.c - see dlq.h. */
#include "dlq.h"
#include "kafka.h"
#include "log.h"
#include "record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int flag(const sl_props_t *p, const char *key, int def) {
    const char *v = sl_props_get(p, key);
    int b;
    return v && sl_parse_bool(v, &b) == 0 ? b : def;
}

/* Kafka Connect creates the DLQ topic (1 partition,
 * errors.deadletterqueue.topic.replication.factor, default 3) when missing. */
static void create_topic(sl_dlq_t *d) {
    int64_t rf = 3;
    const char *v = sl_props_get(d->conn->config, "errors.deadletterqueue.topic.replication.factor");
    if (v && sl_parse_int64(v, &rf) != 0) rf = 3;
    char err[512];
    int created = 0;
    if (sl_kafka_create_topic(d->producer, d->conn->rt->embedded, d->conn->dlq_topic, 1, (int)rf,
                              NULL, 10000, &created, err, sizeof(err)) != 0)
        SL_WARN(d->conn->name, "dead-letter queue: %s", err);
    else if (created == SL_TOPIC_CREATED)
        SL_INFO(d->conn->name, "created dead-letter queue topic %s", d->conn->dlq_topic);
    else if (created == SL_TOPIC_LEFT_TO_BROKER)
        SL_WARN(d->conn->name,
                "dead-letter queue topic %s: the cluster cannot create topics (no controller or "
                "no CreateTopics); left to the broker's auto-creation",
                d->conn->dlq_topic);
}

int sl_dlq_init(sl_dlq_t *d, const sl_connector_t *c, int task_id, rd_kafka_t *producer,
                char *err, size_t errlen) {
    memset(d, 0, sizeof(*d));
    d->conn = c;
    d->context_headers = flag(c->config, "errors.deadletterqueue.context.headers.enable", 0);
    d->log_messages = flag(c->config, "errors.log.include.messages", 0);
    sl_metrics_t *m = c->rt->svc.metrics;
    d->m_dlq = sl_metrics_get(m, SL_METRIC_COUNTER, "dlq_records_total",
                              "records written to the dead-letter queue", c->name, task_id);
    d->m_dlq_failed = sl_metrics_get(m, SL_METRIC_COUNTER, "dlq_failures_total",
                                     "records the dead-letter queue could not take", c->name,
                                     task_id);
    if (!c->dlq_topic) return 0;
    if (producer) {
        d->producer = producer;
        create_topic(d);
        return 0;
    }
    rd_kafka_conf_t *conf =
        sl_kafka_conf(SL_KAFKA_PRODUCER, c->rt->bootstrap, c->rt->worker, c->config, err, errlen);
    if (!conf) return -1;
    char why[512];
    if (!(d->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why)))) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "dead-letter queue producer: %s", why);
        return -1;
    }
    d->owns_producer = 1;
    create_topic(d);
    return 0;
}

void sl_dlq_destroy(sl_dlq_t *d) {
    if (d->owns_producer && d->producer) {
        rd_kafka_resp_err_t e = rd_kafka_flush(d->producer, 10000);
        if (e) SL_WARN(d->conn->name, "dead-letter queue flush: %s", rd_kafka_err2str(e));
        rd_kafka_destroy(d->producer);
    }
    memset(d, 0, sizeof(*d));
}

static const char *stage_of(const sluice_task_t *t) {
    if (!t || !t->plugin) return "UNKNOWN";
    switch (t->plugin->desc->kind) {
    case SLUICE_PLUGIN_SOURCE: return "TASK_POLL";
    case SLUICE_PLUGIN_SINK: return "TASK_PUT";
    default: return "TRANSFORMATION";
    }
}

static void log_error(sl_dlq_t *d, sluice_task_t *from, const sluice_record_t *rec,
                      const char *reason, const char *stage) {
    int64_t now = sl_mono_ms();
    if (now - d->log_window_start >= 1000) {
        if (d->suppressed)
            SL_WARN(from ? from->tag : d->conn->name, "%d more bad record(s) not logged", d->suppressed);
        d->log_window_start = now;
        d->logged_in_window = 0;
        d->suppressed = 0;
    }
    if (d->logged_in_window++ >= 10) {
        d->suppressed++;
        return;
    }
    char where[300] = "";
    if (rec->topic && rec->offset >= 0)
        snprintf(where, sizeof(where), " %s[%d]@%lld", rec->topic, rec->partition,
                 (long long)rec->offset);
    char payload[256] = "";
    if (d->log_messages && rec->bytes) {
        int n = rec->bytes_len > 200 ? 200 : (int)rec->bytes_len;
        snprintf(payload, sizeof(payload), " payload: %.*s%s", n, (const char *)rec->bytes,
                 rec->bytes_len > 200 ? "..." : "");
    }
    SL_WARN(from ? from->tag : d->conn->name, "bad record%s at %s: %s%s%s", where, stage, reason,
            d->conn->dlq_topic ? " (to the dead-letter queue)" : "", payload);
}

static void add_header(rd_kafka_headers_t *h, const char *name, const char *value) {
    rd_kafka_header_add(h, name, -1, value, -1);
}

/* The record's value as bytes for the DLQ: raw bytes when it has them, else
 * encoded by the connector's value converter (JSON text if that fails). */
static void *dlq_value(const sl_dlq_t *d, const sluice_record_t *rec, size_t *len) {
    *len = 0;
    if (rec->bytes) {
        void *copy = malloc(rec->bytes_len ? rec->bytes_len : 1);
        if (copy) memcpy(copy, rec->bytes, rec->bytes_len);
        *len = rec->bytes_len;
        return copy;
    }
    if (!rec->has_avro) return NULL;
    char err[256];
    void *out = NULL;
    if (sl_converter_encode(&d->conn->value_conv, (sluice_record_t *)rec, &out, len, err,
                            sizeof(err)) == SLUICE_OK)
        return out;
    char *json = NULL;
    if (avro_value_to_json(&rec->avro, 1, &json) == 0 && json) {
        *len = strlen(json);
        return json;
    }
    return NULL;
}

sluice_err_t sl_dlq_report_stage(sl_dlq_t *d, sluice_task_t *from, const sluice_record_t *rec,
                                 sluice_err_t err, const char *reason, const char *stage) {
    if (!reason) reason = sl_host_api()->err2str(err);
    log_error(d, from, rec, reason, stage);
    if (!d->conn->dlq_topic || !d->producer) return SLUICE_OK;
    rd_kafka_headers_t *h = rd_kafka_headers_new(rec->nheaders + 10);
    for (size_t i = 0; i < rec->nheaders; i++)
        rd_kafka_header_add(h, rec->headers[i].name, -1, rec->headers[i].value,
                            (ssize_t)rec->headers[i].len);
    if (d->context_headers) {
        char num[32];
        if (rec->topic) add_header(h, "__connect.errors.topic", rec->topic);
        if (rec->partition >= 0) {
            snprintf(num, sizeof(num), "%d", rec->partition);
            add_header(h, "__connect.errors.partition", num);
        }
        if (rec->offset >= 0) {
            snprintf(num, sizeof(num), "%lld", (long long)rec->offset);
            add_header(h, "__connect.errors.offset", num);
        }
        add_header(h, "__connect.errors.connector.name", d->conn->name);
        snprintf(num, sizeof(num), "%d", from ? from->id : -1);
        add_header(h, "__connect.errors.task.id", num);
        add_header(h, "__connect.errors.stage", stage);
        add_header(h, "__connect.errors.class.name",
                   from && from->plugin ? from->plugin->desc->name : "sluice");
        add_header(h, "__connect.errors.exception.class.name", sl_host_api()->err2str(err));
        add_header(h, "__connect.errors.exception.message", reason);
    }
    size_t len = 0;
    void *value = dlq_value(d, rec, &len);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        d->producer, RD_KAFKA_V_TOPIC(d->conn->dlq_topic), RD_KAFKA_V_KEY(rec->key, rec->key_len),
        RD_KAFKA_V_VALUE(value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (e) {
        free(value);
        rd_kafka_headers_destroy(h);
        sl_metric_add(d->m_dlq_failed, 1);
        SL_ERROR(from ? from->tag : d->conn->name, "dead-letter queue %s: %s", d->conn->dlq_topic,
                 rd_kafka_err2str(e));
        return SLUICE_ERR_RETRIABLE;
    }
    sl_metric_add(d->m_dlq, 1);
    if (d->owns_producer) rd_kafka_poll(d->producer, 0);
    return SLUICE_OK;
}

sluice_err_t sl_dlq_report(void *arg, sluice_task_t *from, const sluice_record_t *rec,
                           sluice_err_t err, const char *reason) {
    return sl_dlq_report_stage(arg, from, rec, err, reason, stage_of(from));
}
