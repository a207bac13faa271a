/* kafka.c - see kafka.h. */
#include "kafka.h"
#include "log.h"
#include "task.h"

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

/* max.in.flight.requests.per.connection=1, as Kafka Connect's worker sets
 * for its producers: with several requests in flight, a later batch that
 * succeeds makes librdkafka's idempotent producer ack every earlier batch
 * of the partition (IMPLICITACK, "implicitly acked by subsequent batch
 * success"), trusting the broker to have refused the later one while an
 * earlier one failed. librdkafka's mock cluster - the embedded broker and
 * build/tools/kafka-embedded - checks producer sequence numbers only for
 * transactional producers, so a retried batch that failed again (5
 * NOT_ENOUGH_REPLICAS in a row, tests/it_faults.sh kafka-errors) was
 * reported delivered and never written. One request at a time, a failed
 * batch is retried before anything after it is sent: nothing is acked that
 * the broker did not answer for, and per-partition order holds on any
 * broker. */
static const char *const producer_defaults[][2] = {
    {"enable.idempotence", "true"}, {"acks", "all"},
    {"max.in.flight.requests.per.connection", "1"},
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

rd_kafka_mock_cluster_t *sl_embedded_mock(sl_embedded_t *e) {
    return e->mcluster;
}

void sl_embedded_stop(sl_embedded_t *e) {
    if (!e) return;
    rd_kafka_mock_cluster_destroy(e->mcluster);
    rd_kafka_destroy(e->rk);
    free(e);
}

/* --- a sink connector's group offsets (REST /offsets) ----------------------- */

/* A plain (never subscribing) member-less client of group connect-<name>:
 * reads and commits the group's offsets while the connector is stopped. */
static rd_kafka_t *group_client(const char *bootstrap, const sl_props_t *worker,
                                const sl_props_t *connector, const char *name, char *err,
                                size_t errlen) {
    rd_kafka_conf_t *conf = sl_kafka_conf(SL_KAFKA_CONSUMER, bootstrap, worker, connector, err, errlen);
    if (!conf) return NULL;
    char group[512];
    snprintf(group, sizeof(group), "connect-%s", name);
    /* range: a cooperative-sticky client that never joins trips
     * librdkafka < 2.3 at destroy (see sl_kafka_consumer_destroy) */
    if (rd_kafka_conf_set(conf, "group.id", group, err, errlen) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "partition.assignment.strategy", "range", err, errlen) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (!rk) rd_kafka_conf_destroy(conf);
    return rk;
}

/* Every partition of the connector's "topics"; NULL with err. */
static rd_kafka_topic_partition_list_t *topic_partitions(rd_kafka_t *rk, const sl_props_t *cfg,
                                                         char *err, size_t errlen) {
    const char *topics = sl_props_get(cfg, "topics");
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
    char *copy = strdup(topics ? topics : ""), *save = NULL;
    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, t, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rkt ? rd_kafka_metadata(rk, 0, rkt, &md, 10000)
                                    : RD_KAFKA_RESP_ERR__INVALID_ARG;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && !md->topics[0].err)
            for (int p = 0; p < md->topics[0].partition_cnt; p++)
                rd_kafka_topic_partition_list_add(list, t, md->topics[0].partitions[p].id);
        else if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            snprintf(err, errlen, "metadata of topic %s: %s", t, rd_kafka_err2str(e));
        if (md) rd_kafka_metadata_destroy(md);
        if (rkt) rd_kafka_topic_destroy(rkt);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_topic_partition_list_destroy(list);
            list = NULL;
            break;
        }
    }
    free(copy);
    return list;
}

json_t *sl_kafka_group_offsets(const char *bootstrap, const sl_props_t *worker,
                               const sl_props_t *connector, const char *name, char *err,
                               size_t errlen) {
    rd_kafka_t *rk = group_client(bootstrap, worker, connector, name, err, errlen);
    if (!rk) return NULL;
    rd_kafka_topic_partition_list_t *list = topic_partitions(rk, connector, err, errlen);
    json_t *out = NULL;
    rd_kafka_resp_err_t e = list ? rd_kafka_committed(rk, list, 10000) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (list && e)
        snprintf(err, errlen, "committed offsets of group connect-%s: %s", name, rd_kafka_err2str(e));
    if (list && !e) {
        out = json_array();
        for (int i = 0; i < list->cnt; i++) {
            if (list->elems[i].offset < 0) continue;
            json_array_append_new(out, json_pack("{s{sssi}s{sI}}", "partition", "kafka_topic",
                                                 list->elems[i].topic, "kafka_partition",
                                                 (int)list->elems[i].partition, "offset",
                                                 "kafka_offset", (json_int_t)list->elems[i].offset));
        }
    }
    if (list) rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
    return out;
}

/* {"partition": {"kafka_topic","kafka_partition"}, "offset": {"kafka_offset"}|null}
 * -> an entry of list; offset null -> the partition's earliest offset. */
static int add_requested(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list, size_t i,
                         const json_t *item, char *err, size_t errlen) {
    json_t *part = json_object_get(item, "partition"), *off = json_object_get(item, "offset");
    json_t *topic = json_object_get(part, "kafka_topic");
    json_t *pn = json_object_get(part, "kafka_partition");
    json_t *on = json_object_get(off, "kafka_offset");
    if (!json_is_string(topic) || !json_is_integer(pn) || json_integer_value(pn) < 0 ||
        (!json_is_null(off) && (!json_is_integer(on) || json_integer_value(on) < 0))) {
        snprintf(err, errlen,
                 "offsets[%zu]: a sink partition is {\"kafka_topic\": string, \"kafka_partition\": "
                 "int >= 0} and its offset {\"kafka_offset\": int >= 0} or null",
                 i);
        return -1;
    }
    int64_t lo = json_integer_value(on), hi;
    if (json_is_null(off)) {
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            rk, json_string_value(topic), (int32_t)json_integer_value(pn), &lo, &hi, 10000);
        if (e) {
            snprintf(err, errlen, "offsets[%zu]: %s", i, rd_kafka_err2str(e));
            return -1;
        }
    }
    rd_kafka_topic_partition_list_add(list, json_string_value(topic), (int32_t)json_integer_value(pn))
        ->offset = lo;
    return 0;
}

/* The earliest offset of every partition (a reset: the mock cluster has no
 * DeleteGroups, so the group's offsets are moved back instead). */
static int set_earliest(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list, char *err,
                        size_t errlen) {
    for (int i = 0; i < list->cnt; i++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, list->elems[i].topic,
                                                                 list->elems[i].partition, &lo, &hi,
                                                                 10000);
        if (e) {
            snprintf(err, errlen, "%s[%d]: %s", list->elems[i].topic, (int)list->elems[i].partition,
                     rd_kafka_err2str(e));
            return -1;
        }
        list->elems[i].offset = lo;
    }
    return 0;
}

/* Joins the group for list's topics and waits for an assignment: the
 * mock cluster takes offset commits only from a member of the current
 * generation once the group exists. 0 or -1 with err. */
static int join_group(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *list, char *err,
                      size_t errlen) {
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(list->cnt);
    for (int i = 0; i < list->cnt; i++)
        if (!rd_kafka_topic_partition_list_find(topics, list->elems[i].topic, RD_KAFKA_PARTITION_UA))
            rd_kafka_topic_partition_list_add(topics, list->elems[i].topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        snprintf(err, errlen, "joining the group: %s", rd_kafka_err2str(e));
        return -1;
    }
    int64_t deadline = sl_mono_ms() + 30000;
    while (sl_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m) rd_kafka_message_destroy(m);
        rd_kafka_topic_partition_list_t *a = NULL;
        if (rd_kafka_assignment(rk, &a) == RD_KAFKA_RESP_ERR_NO_ERROR && a && a->cnt > 0) {
            rd_kafka_topic_partition_list_destroy(a);
            return 0;
        }
        if (a) rd_kafka_topic_partition_list_destroy(a);
    }
    snprintf(err, errlen, "joining the group: no assignment within 30 s");
    return -1;
}

int sl_kafka_group_offsets_set(const char *bootstrap, const sl_props_t *worker,
                               const sl_props_t *connector, const char *name, const json_t *offsets,
                               char *err, size_t errlen) {
    rd_kafka_t *rk = group_client(bootstrap, worker, connector, name, err, errlen);
    if (!rk) return -1;
    rd_kafka_topic_partition_list_t *list =
        offsets ? rd_kafka_topic_partition_list_new(8) : topic_partitions(rk, connector, err, errlen);
    int rc = list ? 0 : -1;
    size_t i;
    json_t *item;
    json_array_foreach(offsets, i, item) if (rc == 0) rc = add_requested(rk, list, i, item, err, errlen);
    if (rc == 0 && !offsets) rc = set_earliest(rk, list, err, errlen);
    if (rc == 0 && list->cnt > 0) rc = join_group(rk, list, err, errlen);
    if (rc == 0 && list->cnt > 0) {
        rd_kafka_resp_err_t e = rd_kafka_commit(rk, list, 0);
        if (e) {
            snprintf(err, errlen, "commit to group connect-%s: %s", name, rd_kafka_err2str(e));
            rc = -1;
        }
    }
    if (list) rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

