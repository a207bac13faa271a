/*
 * kafka.h - librdkafka configuration for the worker's clients, and the
 * embedded broker (librdkafka's mock cluster) for single-machine runs.
 *
 * Client configs are built from the worker config: bootstrap.servers, then
 * every "producer.<key>" / "consumer.<key>" passed to librdkafka as <key>,
 * then the connector's "producer.override.<key>" / "consumer.override.<key>".
 */
#ifndef SLUICE_HOST_KAFKA_H
#define SLUICE_HOST_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include "config.h"

typedef enum { SL_KAFKA_PRODUCER, SL_KAFKA_CONSUMER } sl_kafka_role_t;

/** A conf with Sluice's defaults for the role (idempotent lz4 producer;
 *  manual-commit cooperative-sticky consumer), then the overrides above.
 *  bootstrap is the resolved broker list. NULL with err naming the key. */
rd_kafka_conf_t *sl_kafka_conf(sl_kafka_role_t role, const char *bootstrap,
                               const sl_props_t *worker, const sl_props_t *connector,
                               char *err, size_t errlen);

/**
 * Closes and destroys a group consumer. librdkafka < 2.3 asserts in
 * rd_kafka_destroy() when a cooperative-sticky consumer never completed a
 * group join (confluentinc/librdkafka#4312, fixed by #4381); such a handle
 * is closed and parked instead of destroyed - once per worker shutdown or
 * task restart that happens before its first assignment.
 */
void sl_kafka_consumer_destroy(rd_kafka_t *rk, int ever_assigned);
/* Whether conf's partition.assignment.strategy makes the group protocol
 * COOPERATIVE (every listed assignor is cooperative-sticky), known before
 * any join and without rd_kafka_rebalance_protocol(), which can block in
 * the rebalance callback consumer close runs (librdkafka #4041). */
int sl_kafka_conf_cooperative(const rd_kafka_conf_t *conf);

typedef struct sl_embedded sl_embedded_t;

enum { SL_TOPIC_EXISTED = 0, SL_TOPIC_CREATED = 1, SL_TOPIC_LEFT_TO_BROKER = 2 };

/**
 * Creates a topic unless metadata lists it (then 0, *created =
 * SL_TOPIC_EXISTED): on the in-process embedded cluster directly, otherwise
 * through the admin API (CreateTopics to the controller). A cluster without
 * a controller or without CreateTopics (librdkafka's mock cluster, e.g.
 * build/tools/kafka-embedded) cannot create topics: like Kafka Connect, the
 * topic is then left to the broker's auto-creation (*created =
 * SL_TOPIC_LEFT_TO_BROKER, return 0). partitions / replication -1 = the
 * broker's default. configs: topic configs as props (may be NULL). Waits up
 * to timeout_ms per request. -1 with err on failure.
 */
int sl_kafka_create_topic(rd_kafka_t *rk, sl_embedded_t *embedded, const char *topic,
                          int partitions, int replication, const sl_props_t *configs,
                          int timeout_ms, int *created, char *err, size_t errlen);

/**
 * A sink connector's offsets: those committed by its consumer group
 * ("connect-<name>") for the partitions of its "topics", as a new JSON
 * array of {"partition": {"kafka_topic", "kafka_partition"}, "offset":
 * {"kafka_offset"}}. NULL with err.
 */
json_t *sl_kafka_group_offsets(const char *bootstrap, const sl_props_t *worker,
                               const sl_props_t *connector, const char *name, char *err,
                               size_t errlen);
/**
 * Commits offsets (that array's shape; an offset null means the
 * partition's earliest) for the group of a stopped sink connector; offsets
 * NULL resets every partition of its topics to the earliest. 0 or -1.
 */
int sl_kafka_group_offsets_set(const char *bootstrap, const sl_props_t *worker,
                               const sl_props_t *connector, const char *name, const json_t *offsets,
                               char *err, size_t errlen);

/** An in-process mock cluster; its brokers listen on loopback TCP ports. */

sl_embedded_t *sl_embedded_start(int brokers, char *err, size_t errlen);
/** "127.0.0.1:port,..." (owned by the cluster). */
const char *sl_embedded_bootstraps(const sl_embedded_t *e);
/** Creates a topic (no-op when it exists with as many partitions). */
int sl_embedded_create_topic(sl_embedded_t *e, const char *topic, int partitions,
                             int replication, char *err, size_t errlen);
void sl_embedded_stop(sl_embedded_t *e);
/** The mock cluster itself, for fault injection (build/tools/kafka-embedded's
 *  --control: brokers down and up, request errors). */
rd_kafka_mock_cluster_t *sl_embedded_mock(sl_embedded_t *e);

#endif
