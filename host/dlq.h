/*
 * dlq.h - errors.* handling shared by source and sink runners: counting,
 * rate-limited logging and the dead-letter queue topic, with Kafka Connect's
 * context headers (__connect.errors.*) when
 * errors.deadletterqueue.context.headers.enable=true.
 *
 * Connector keys: errors.tolerance (none|all), errors.deadletterqueue.topic.name,
 * errors.deadletterqueue.context.headers.enable (false), errors.log.enable
 * (true here: a bad record is always worth a line), errors.log.include.messages
 * (false: payloads may hold personal data).
 */
#ifndef SLUICE_HOST_DLQ_H
#define SLUICE_HOST_DLQ_H

#include <librdkafka/rdkafka.h>
#include "connector.h"

typedef struct sl_dlq {
    const sl_connector_t *conn;
    rd_kafka_t *producer;  /* borrowed (source runner) or owned */
    int owns_producer;
    int context_headers;
    int log_messages;
    int64_t log_window_start; /* rate limit: at most 10 lines per second */
    int logged_in_window, suppressed;
    sluice_metric_t *m_dlq, *m_dlq_failed;
} sl_dlq_t;

/** Sets up error handling for one task. producer may be NULL: then one is
 *  created when a DLQ topic is configured. 0, or -1 with err. */
int sl_dlq_init(sl_dlq_t *d, const sl_connector_t *c, int task_id, rd_kafka_t *producer,
                char *err, size_t errlen);
void sl_dlq_destroy(sl_dlq_t *d);

/** The sl_dead_letter_fn for tasks (arg = sl_dlq_t*). */
sluice_err_t sl_dlq_report(void *arg, sluice_task_t *from, const sluice_record_t *rec,
                           sluice_err_t err, const char *reason);

/** Same, with an explicit stage (VALUE_CONVERTER, KAFKA_PRODUCE, ...). */
sluice_err_t sl_dlq_report_stage(sl_dlq_t *d, sluice_task_t *from, const sluice_record_t *rec,
                                 sluice_err_t err, const char *reason, const char *stage);

#endif
