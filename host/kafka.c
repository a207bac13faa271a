/* kafka.c - see kafka.h. */
#include "kafka.h"
#include "log.h"

#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                    size_t errlen) {
    char why[512];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka client setting '%s': %s", key, why);
        return -1;
    }
    return 0;
}

/* Applies every "<prefix><key>" of props as <key>. */
static int apply_prefixed(rd_kafka_conf_t *conf, const sl_props_t *props, const char *prefix,
                          char *err, size_t errlen) {
    if (!props) return 0;
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < sl_props_count(props); i++) {
        const char *k = sl_props_key_at(props, i);
        if (strncmp(k, prefix, plen) != 0 || !k[plen]) continue;
        if (conf_set(conf, k + plen, sl_props_value_at(props, i), err, errlen) != 0) return -1;
    }
    return 0;
}

static const char *const producer_defaults[][2] = {
    {"enable.idempotence", "true"}, {"acks", "all"},
    {"compression.type", "lz4"},    {"linger.ms", "5"},
    {"batch.num.messages", "10000"}, {"queue.buffering.max.messages", "200000"},
};

static const char *const consumer_defaults[][2] = {
    {"enable.auto.commit", "false"},
    {"enable.auto.offset.store", "false"},
    {"auto.offset.reset", "earliest"},
    {"partition.assignment.strategy", "cooperative-sticky"},
    {"enable.partition.eof", "false"},
};

rd_kafka_conf_t *sl_kafka_conf(sl_kafka_role_t role, const char *bootstrap,
                               const sl_props_t *worker, const sl_props_t *connector,
                               char *err, size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int producer = role == SL_KAFKA_PRODUCER;
    size_t n = producer ? sizeof(producer_defaults) / sizeof(producer_defaults[0])
                        : sizeof(consumer_defaults) / sizeof(consumer_defaults[0]);
    for (size_t i = 0; i < n; i++) {
        const char *const *kv = producer ? producer_defaults[i] : consumer_defaults[i];
        if (conf_set(conf, kv[0], kv[1], err, errlen) != 0) goto fail;
    }
    if (conf_set(conf, "bootstrap.servers", bootstrap, err, errlen) != 0) goto fail;
    if (apply_prefixed(conf, worker, producer ? "producer." : "consumer.", err, errlen) != 0)
        goto fail;
    if (apply_prefixed(conf, connector, producer ? "producer.override." : "consumer.override.",
                       err, errlen) != 0)
        goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* Whether metadata lists the topic; 1 yes, 0 no, -1 when metadata failed. */
static int topic_exists(rd_kafka_t *rk, const char *topic, int timeout_ms, int *controller_known) {
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) return -1;
    int found = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, topic) == 0 && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            found = 1;
    int32_t ctrl = rd_kafka_controllerid(rk, timeout_ms);
    *controller_known = 0;
    for (int i = 0; i < md->broker_cnt; i++)
        if (md->brokers[i].id == ctrl) *controller_known = 1;
    rd_kafka_metadata_destroy(md);
    return found;
}

int sl_kafka_create_topic(rd_kafka_t *rk, sl_embedded_t *embedded, const char *topic,
                          int partitions, int replication, const sl_props_t *configs,
                          int timeout_ms, int *created, char *err, size_t errlen) {
    char why[512];
    *created = SL_TOPIC_EXISTED;
    int controller_known = 0;
    int exists = topic_exists(rk, topic, timeout_ms, &controller_known);
    if (exists < 0) {
        snprintf(err, errlen, "topic %s: no metadata from the cluster in %d ms", topic, timeout_ms);
        return -1;
    }
    if (exists) return 0;
    if (embedded) {
        if (sl_embedded_create_topic(embedded, topic, partitions > 0 ? partitions : 1,
                                     replication > 0 ? replication : 1, err, errlen) != 0)
            return -1;
        *created = SL_TOPIC_CREATED;
        return 0;
    }
    if (!controller_known) {
        /* No controller means no CreateTopics (librdkafka's mock cluster is
         * one such broker): like Kafka Connect's TopicAdmin on an
         * UnsupportedVersionException, leave the topic to auto-creation. */
        *created = SL_TOPIC_LEFT_TO_BROKER;
        return 0;
    }
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, replication, why, sizeof(why));
    if (!nt) {
        snprintf(err, errlen, "topic %s: %s", topic, why);
        return -1;
    }
    for (size_t i = 0; configs && i < sl_props_count(configs); i++) {
        if (rd_kafka_NewTopic_set_config(nt, sl_props_key_at(configs, i),
                                         sl_props_value_at(configs, i)) != 0) {
            snprintf(err, errlen, "topic %s: bad topic config %s", topic, sl_props_key_at(configs, i));
            rd_kafka_NewTopic_destroy(nt);
            return -1;
        }
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, NULL, 0);
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, NULL, 0);
    rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
    int rc = -1;
    if (!ev) {
        snprintf(err, errlen, "topic %s: no answer to CreateTopics in %d ms", topic, timeout_ms);
    } else if (rd_kafka_event_error(ev)) {
        snprintf(err, errlen, "topic %s: %s", topic, rd_kafka_event_error_string(ev));
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rd_kafka_resp_err_t e = n ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR_UNKNOWN;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            *created = SL_TOPIC_CREATED;
            rc = 0;
        } else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            rc = 0;
        } else if (e == RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION) {
            *created = SL_TOPIC_LEFT_TO_BROKER;
            rc = 0;
        } else {
            const char *msg = n ? rd_kafka_topic_result_error_string(res[0]) : NULL;
            snprintf(err, errlen, "topic %s: %s", topic, msg ? msg : rd_kafka_err2str(e));
        }
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

/* Parked handles stay reachable, so leak checkers see no leak. */
static struct {
    pthread_mutex_t lock;
    rd_kafka_t *handles[64];
    int n;
} parked = {PTHREAD_MUTEX_INITIALIZER, {0}, 0};

void sl_kafka_consumer_destroy(rd_kafka_t *rk, int ever_assigned) {
    if (!rk) return;
    rd_kafka_consumer_close(rk);
    int workaround = !ever_assigned && rd_kafka_version() < 0x020300ff;
    if (workaround) {
        pthread_mutex_lock(&parked.lock);
        if (parked.n < 64) {
            parked.handles[parked.n++] = rk;
            rk = NULL;
        }
        pthread_mutex_unlock(&parked.lock);
        if (!rk) return;
    }
    rd_kafka_destroy(rk);
}

struct sl_embedded {
    rd_kafka_t *rk; /* owns the mock cluster's thread */
    rd_kafka_mock_cluster_t *mcluster;
};

sl_embedded_t *sl_embedded_start(int brokers, char *err, size_t errlen) {
    sl_embedded_t *e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    char why[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    e->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!e->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "embedded broker: %s", why);
        free(e);
        return NULL;
    }
    e->mcluster = rd_kafka_mock_cluster_new(e->rk, brokers);
    if (!e->mcluster) {
        snprintf(err, errlen, "embedded broker: cannot create a %d-broker mock cluster", brokers);
        rd_kafka_destroy(e->rk);
        free(e);
        return NULL;
    }
    return e;
}

const char *sl_embedded_bootstraps(const sl_embedded_t *e) {
    return rd_kafka_mock_cluster_bootstraps(e->mcluster);
}

int sl_embedded_create_topic(sl_embedded_t *e, const char *topic, int partitions,
                             int replication, char *err, size_t errlen) {
    rd_kafka_resp_err_t rc =
        rd_kafka_mock_topic_create(e->mcluster, topic, partitions, replication);
    if (rc && rc != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        snprintf(err, errlen, "embedded broker: create topic %s: %s", topic, rd_kafka_err2str(rc));
        return -1;
    }
    return 0;
}

void sl_embedded_stop(sl_embedded_t *e) {
    if (!e) return;
    rd_kafka_mock_cluster_destroy(e->mcluster);
    rd_kafka_destroy(e->rk);
    free(e);
}
