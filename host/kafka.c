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
