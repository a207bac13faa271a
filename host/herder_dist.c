/*
 * herder_dist.c - the distributed herder (herder.h): workers sharing a
 * group.id form a cluster on Kafka alone, as Kafka Connect's distributed
 * mode.
 *
 * - Config topic (config.storage.topic, 1 partition, compacted): key
 *   "connector-<name>", value {"config": {...}, "target": "RUNNING"} or null
 *   (deleted). Every worker reads it from the beginning (assign, no group)
 *   into its map; a REST write on any worker is produced (acks=all) and
 *   answered once this worker has read it back, so a GET after a PUT on the
 *   same worker sees it.
 * - Work: every worker joins consumer group <group.id> on the topic
 *   "<group.id>-assign"; connector X's instance and task 0 run on the worker
 *   currently assigned partition hash(X) % partitions, its task t > 0 on
 *   the one assigned hash("X-t") % partitions (task_part), so tasks spread
 *   one by one. A rebalance stops what a worker lost and starts what it
 *   gained; a killed worker's partitions move after the session timeout.
 *   Sink tasks keep their own groups (connect-<name>), so
 *   they commit only what their sink made durable, wherever they run.
 * - Offsets topic (offset.storage.topic): the source offsets of the
 *   connectors running here, published when changed; the others' offsets
 *   loaded into the local store, so a moved source connector resumes.
 * - Status topic (status.storage.topic): key "status-<name>", value the
 *   connector's status (with task 0) as the instance's worker answers it,
 *   and "taskstatus-<t>-<name>" for task t > 0 from the worker running it;
 *   published when they differ from what the topic holds, read and merged
 *   by every worker for GET .../status.
 * - Restart requests with tasks: key "restart-<name>" on the config topic
 *   (KIP-745), applied by each worker to the tasks it runs.
 *
 * - Verbs on the running instance (restart, offsets, topics): answered by
 *   the worker running the connector; another answers SL_HERDER_FORWARD
 *   with the owner's REST URL ("worker_url" in its status records) and the
 *   REST layer forwards the request there (rest.c).
 *
 * One thread polls both consumers and applies changes to the local worker
 * through the standalone herder's worker verbs; REST threads only produce
 * and read the maps under d->mu.
 */
#include "herder.h"
#include "kafka.h"
#include "log.h"
#include "offset_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PARTS 1024

typedef struct dist {
    sl_herder_t base;
    sl_herder_t *local; /* the standalone verbs over w: validate, plugins, offsets, restart */
    sl_worker_t *w;
    const sl_runtime_t *rt;
    char config_topic[256], status_topic[256], offsets_topic[256], assign_topic[300];
    rd_kafka_t *producer, *log_c, *group_c;
    int assign_parts;
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    pthread_mutex_t mu; /* configs, statuses, owned, config_read, dirty */
    pthread_cond_t read_cv;
    json_t *configs;  /* name -> {"config", "target"} */
    json_t *statuses; /* name -> status object (the connector's owner's record) */
    json_t *task_statuses; /* name -> {"<task>": status} (records of tasks 1..n-1) */
    json_t *published; /* offsets-topic key -> value text this worker last sent */
    json_t *seen;      /* offsets-topic key -> value text the topic holds (last read) */
    json_t *forget;    /* connectors that lost a task here: forget_published after the next publish */
    int64_t live_from; /* config-topic offset from which restart requests are new */
    int64_t config_read; /* next offset of the config topic to read */
    unsigned char owned[MAX_PARTS];
    int dirty;
    int ever_assigned;
    pthread_mutex_t writes; /* one REST write at a time */
    char worker_id[128];
    char rest_url[400]; /* where other workers forward requests for our connectors */
} dist_t;

static const char *const target_names[] = {"RUNNING", "PAUSED", "STOPPED"};

static sl_target_t parse_target(const char *t) {
    for (int i = 0; i < 3; i++)
        if (t && strcmp(t, target_names[i]) == 0) return (sl_target_t)i;
    return SL_TARGET_RUNNING;
}

/* FNV-1a: stable across workers and builds. */
static int owner_part(const dist_t *d, const char *name) {
    uint32_t h = 2166136261u;
    for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    return (int)(h % (uint32_t)d->assign_parts);
}

/* The assignment partition of task t of connector name: task 0 goes with
 * the connector (so a one-task connector's instance and its task are on one
 * worker, which answers every verb on it); task t > 0 is a unit of its own,
 * "<name>-<t>" (Kafka Connect's task id), so a connector's tasks spread over
 * the workers one by one. */
static int task_part(const dist_t *d, const char *name, int t) {
    if (t == 0) return owner_part(d, name);
    char unit[600];
    snprintf(unit, sizeof(unit), "%s-%d", name, t);
    return owner_part(d, unit);
}

/* tasks.max of a config (1..1024, as validated; 1 when unreadable). */
static int tasks_max_of(const json_t *config) {
    const char *tm = json_string_value(json_object_get(config, "tasks.max"));
    int n = tm ? atoi(tm) : 1;
    return n < 1 ? 1 : n > 1024 ? 1024 : n;
}

/* --- the herder thread ------------------------------------------------------------ */

static void reconcile(dist_t *d);
static void forget_lost(dist_t *d);
static json_t *local_names(dist_t *d);
static void publish_offsets_of(dist_t *d, json_t *names);

/* Cooperative (incremental) rebalancing, as Kafka Connect's since 2.3: a
 * rebalance revokes only the partitions that move, each from its old owner
 * before a later rebalance hands it to the new one, so a worker keeps
 * running what stays with it (a source connector is not stopped - and its
 * websocket not closed - because another worker joined or died). */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    dist_t *d = opaque;
    /* Not asked with rd_kafka_rebalance_protocol(): in the callback that
     * rd_kafka_consumer_close() runs it can block forever (librdkafka
     * #4041, still in 2.3). This group's strategy is cooperative-sticky
     * alone (set where its consumer is made), so the protocol is
     * COOPERATIVE; the eager branches serve a strategy changed there. */
    const int coop = 1;
    int gained = e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    pthread_mutex_lock(&d->mu);
    if (!gained && !coop) memset(d->owned, 0, sizeof(d->owned));
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition >= 0 && parts->elems[i].partition < MAX_PARTS)
            d->owned[parts->elems[i].partition] = (unsigned char)gained;
    d->dirty = 1;
    if (gained) d->ever_assigned = 1;
    pthread_mutex_unlock(&d->mu);
    rd_kafka_error_t *err = NULL;
    if (gained) {
        if (coop)
            err = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
    } else {
        /* Stop what moves away before giving it up: its next owner gets it
         * only in a later rebalance (cooperative) or once this member
         * rejoined (eager), so no connector runs on two workers at once (a
         * sink flushing into the same destination, a source producing
         * twice). */
        json_t *ran = local_names(d);
        reconcile(d);
        publish_offsets_of(d, ran); /* their last source offsets, for the next owner */
        forget_lost(d);
        json_decref(ran);
        if (coop)
            err = rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
    }
    if (err) {
        SL_ERROR("herder", "%s: %s", gained ? "assign" : "unassign", rd_kafka_error_string(err));
        rd_kafka_error_destroy(err);
    }
    SL_INFO("herder", "%s %d assignment partition(s)%s", gained ? "gained" : "lost", parts->cnt,
            e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS || e == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS
                ? ""
                : " (rebalance error)");
}

/* A source offset of a connector that does not run here into the local
 * store, so the connector resumes from it when it moves here. Key
 * ["<connector>", {partition}], value {offset} or null. */
static void apply_offset(dist_t *d, const rd_kafka_message_t *m) {
    json_t *key = m->key ? json_loadb(m->key, m->key_len, 0, NULL) : NULL;
    const char *name = json_string_value(json_array_get(key, 0));
    json_t *part = json_array_get(key, 1);
    if (name && json_is_object(part)) {
        /* Skipped only when the partition is this worker's: the connector
         * runs here and this worker has published that key (its task owns
         * it; what comes back is its own, maybe older, value). Offsets of
         * the connector's tasks on other workers are taken, so a task that
         * moves here resumes from its last owner's offset. */
        char *kt = json_dumps(key, JSON_COMPACT | JSON_SORT_KEYS);
        sl_worker_lock(d->w);
        int here = sl_worker_find(d->w, name) != NULL && kt && json_object_get(d->published, kt);
        sl_worker_unlock(d->w);
        if (kt && m->payload)
            json_object_set_new(d->seen, kt, json_stringn(m->payload, m->len));
        else if (kt)
            json_object_del(d->seen, kt);
        free(kt);
        char *p = json_dumps(part, JSON_COMPACT | JSON_SORT_KEYS);
        char *v = m->payload ? strndup(m->payload, m->len) : NULL;
        if (!here && p && v && sl_offset_store_put(d->rt->svc.offsets, name, p, v) != 0)
            SL_WARN("herder", "%s offset %lld: offset is not a JSON object; skipped", d->offsets_topic,
                    (long long)m->offset);
        else if (!here && p && !m->payload)
            sl_offset_store_remove(d->rt->svc.offsets, name, p);
        free(p);
        free(v);
    } else {
        SL_WARN("herder", "%s offset %lld: key is not [\"<connector>\", {partition}]; skipped",
                d->offsets_topic, (long long)m->offset);
    }
    json_decref(key);
}

static void apply_restart(dist_t *d, const char *name, const json_t *req);

/* A task's status record, key "taskstatus-<task>-<name>", into
 * d->task_statuses. 1 when the key is one. */
static int apply_task_status(dist_t *d, const rd_kafka_message_t *m) {
    static const char prefix[] = "taskstatus-";
    size_t pl = sizeof(prefix) - 1;
    if (!m->key || m->key_len <= pl || memcmp(m->key, prefix, pl) != 0) return 0;
    char key[600];
    if (m->key_len >= sizeof(key)) return 1;
    memcpy(key, m->key, m->key_len);
    key[m->key_len] = '\0';
    char *end;
    long t = strtol(key + pl, &end, 10);
    if (end == key + pl || *end != '-' || t < 1 || t > 1024) return 1;
    char id[16];
    snprintf(id, sizeof(id), "%ld", t);
    json_t *v = m->payload ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
    pthread_mutex_lock(&d->mu);
    json_t *tasks = json_object_get(d->task_statuses, end + 1);
    if (!tasks) json_object_set_new(d->task_statuses, end + 1, tasks = json_object());
    if (json_is_object(v))
        json_object_set(tasks, id, v);
    else
        json_object_del(tasks, id);
    pthread_mutex_unlock(&d->mu);
    json_decref(v);
    return 1;
}

/* A record of the config or status topic into its map. */
static void apply_record(dist_t *d, const rd_kafka_message_t *m) {
    const char *topic = rd_kafka_topic_name(m->rkt);
    if (strcmp(topic, d->offsets_topic) == 0) {
        apply_offset(d, m);
        return;
    }
    if (strcmp(topic, d->status_topic) == 0 && apply_task_status(d, m)) return;
    static const char restart_prefix[] = "restart-";
    size_t rl = sizeof(restart_prefix) - 1;
    if (strcmp(topic, d->config_topic) == 0 && m->key && m->key_len > rl && m->key_len < 600 &&
        memcmp(m->key, restart_prefix, rl) == 0) {
        /* A restart request (KIP-745's, on the config topic): each worker
         * restarts the tasks of it that run here. Requests read at startup
         * are history. */
        char name[600];
        memcpy(name, (const char *)m->key + rl, m->key_len - rl);
        name[m->key_len - rl] = '\0';
        json_t *req = m->payload && m->offset >= d->live_from ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
        if (json_is_object(req)) apply_restart(d, name, req);
        json_decref(req);
        pthread_mutex_lock(&d->mu);
        d->config_read = m->offset + 1;
        pthread_cond_broadcast(&d->read_cv);
        pthread_mutex_unlock(&d->mu);
        return;
    }
    int is_config = strcmp(topic, d->config_topic) == 0;
    const char *prefix = is_config ? "connector-" : "status-";
    size_t pl = strlen(prefix);
    char name[512] = "";
    if (m->key && m->key_len > pl && m->key_len - pl < sizeof(name) &&
        memcmp(m->key, prefix, pl) == 0)
        memcpy(name, (const char *)m->key + pl, m->key_len - pl), name[m->key_len - pl] = '\0';
    json_t *v = NULL;
    if (m->payload) {
        json_error_t je;
        v = json_loadb(m->payload, m->len, 0, &je);
        if (!json_is_object(v)) {
            SL_WARN("herder", "%s offset %lld: value is not a JSON object; skipped", topic,
                    (long long)m->offset);
            json_decref(v);
            v = NULL;
            name[0] = '\0';
        }
    }
    pthread_mutex_lock(&d->mu);
    json_t *map = is_config ? d->configs : d->statuses;
    if (name[0]) {
        if (v)
            json_object_set(map, name, v);
        else
            json_object_del(map, name);
    }
    if (is_config) {
        d->config_read = m->offset + 1;
        d->dirty = 1;
        pthread_cond_broadcast(&d->read_cv);
    }
    pthread_mutex_unlock(&d->mu);
    json_decref(v);
}

/* The names of the connectors on the local worker: a new array. */
static json_t *local_names(dist_t *d) {
    json_t *a = json_array();
    sl_worker_lock(d->w);
    for (size_t i = 0; i < sl_worker_count(d->w); i++)
        json_array_append_new(a, json_string(sl_worker_at(d->w, i)->name));
    sl_worker_unlock(d->w);
    return a;
}

/* The tasks of config (an entry's "config") that run here, by the
 * assignment in owned: a new array of *n flags; *any says whether one does. */
static unsigned char *tasks_here(const dist_t *d, const char *name, const json_t *config,
                                 const unsigned char *owned, int *n, int *any) {
    *n = tasks_max_of(config);
    unsigned char *here = calloc((size_t)*n, 1);
    *any = 0;
    for (int t = 0; here && t < *n; t++) *any |= here[t] = owned[task_part(d, name, t)];
    return here;
}

/* Drops the offsets-topic keys of connector name from what this worker
 * published, after one of its tasks left and its last offsets were
 * published: that task's partitions are another worker's now, and their
 * offsets must be taken when read. */
static void forget_published(dist_t *d, const char *name) {
    json_t *gone = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(d->published, key, v) {
        json_t *k = json_loads(key, 0, NULL);
        if (json_is_string(json_array_get(k, 0)) &&
            strcmp(json_string_value(json_array_get(k, 0)), name) == 0)
            json_array_append_new(gone, json_string(key));
        json_decref(k);
    }
    size_t i;
    json_array_foreach(gone, i, v) json_object_del(d->published, json_string_value(v));
    json_decref(gone);
}

/* forget_published for each connector that lost a task here since the
 * last call (after their last offsets were published). */
static void forget_lost(dist_t *d) {
    const char *name;
    json_t *v;
    json_object_foreach(d->forget, name, v) forget_published(d, name);
    json_object_clear(d->forget);
}

/* Makes the local worker run exactly the connectors and tasks this worker
 * owns, as the config topic says: a connector is kept here while its
 * instance (with task 0) or one of its other tasks is assigned here, with
 * only those tasks running. */
static void reconcile(dist_t *d) {
    pthread_mutex_lock(&d->mu);
    json_t *cfgs = json_deep_copy(d->configs);
    unsigned char owned[MAX_PARTS];
    memcpy(owned, d->owned, sizeof(owned));
    d->dirty = 0;
    pthread_mutex_unlock(&d->mu);

    json_t *local = local_names(d);
    size_t i;
    json_t *it;
    json_array_foreach(local, i, it) {
        const char *name = json_string_value(it);
        json_t *entry = json_object_get(cfgs, name);
        int n, any = 0;
        unsigned char *here = entry ? tasks_here(d, name, json_object_get(entry, "config"), owned, &n, &any) : NULL;
        free(here);
        if (!any) {
            SL_INFO("herder", "connector %s: stopping here (deleted or assigned elsewhere)", name);
            sl_worker_remove_connector(d->w, name);
        }
    }
    json_decref(local);

    const char *name;
    json_t *v;
    json_object_foreach(cfgs, name, v) {
        json_t *config = json_object_get(v, "config");
        int n, any;
        unsigned char *here = tasks_here(d, name, config, owned, &n, &any);
        if (!here || !any) {
            free(here);
            continue;
        }
        sl_target_t target = parse_target(json_string_value(json_object_get(v, "target")));
        sl_worker_lock(d->w);
        sl_worker_conn_t *e = sl_worker_find(d->w, name);
        json_t *have = e ? sl_props_to_json(e->raw) : NULL;
        int same_config = have && json_equal(have, config);
        int same_target = e && e->target == target;
        int same_here = e && e->here && e->here_n == n && memcmp(e->here, here, (size_t)n) == 0;
        int lost = 0; /* a task that ran here does not any more */
        for (int t = 0; e && e->here && t < e->here_n; t++) lost |= e->here[t] && (t >= n || !here[t]);
        sl_worker_unlock(d->w);
        json_decref(have);
        if (lost) json_object_set_new(d->forget, name, json_true());
        if (same_config && same_target && same_here) {
            free(here);
            continue;
        }
        if (same_config) {
            if (!same_here) {
                SL_INFO("herder", "connector %s: the tasks that run here change", name);
                sl_worker_set_here(d->w, name, here, n);
            }
            if (!same_target) sl_worker_set_target(d->w, name, target);
            free(here);
            continue;
        }
        char err[2048];
        int created;
        sl_props_t *props = sl_props_from_json(config, err, sizeof(err));
        if (!props || sl_worker_put_connector_here(d->w, name, props, 1, &target, here, n, &created,
                                                   err, sizeof(err)) != 0)
            SL_ERROR("herder", "connector %s not run on this worker: %s", name, err);
        sl_props_free(props);
        free(here);
    }
    json_decref(cfgs);
}

/* Produces key = value (NULL: a tombstone) and waits for its delivery;
 * the offset it got, or -1 with err. */
typedef struct delivery {
    int64_t offset;
    rd_kafka_resp_err_t err;
} delivery_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    delivery_t *dl = m->_private;
    if (!dl) return;
    dl->err = m->err;
    dl->offset = m->offset;
}

static int64_t produce(dist_t *d, const char *topic, const char *key, const char *value,
                       int wait, char *err, size_t errlen) {
    delivery_t *dl = wait ? calloc(1, sizeof(*dl)) : NULL;
    if (dl) dl->offset = -1, dl->err = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        d->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(dl), RD_KAFKA_V_END);
    if (e) {
        snprintf(err, errlen, "%s: %s", topic, rd_kafka_err2str(e));
        free(dl);
        return -1;
    }
    if (!wait) return 0;
    rd_kafka_flush(d->producer, 15000);
    int64_t off = dl->err ? -1 : dl->offset;
    if (dl->err == RD_KAFKA_RESP_ERR__IN_PROGRESS) {
        snprintf(err, errlen, "%s: not delivered in 15 s", topic);
        return -1; /* dl stays with librdkafka's message: not freed */
    }
    if (dl->err) snprintf(err, errlen, "%s: %s", topic, rd_kafka_err2str(dl->err));
    free(dl);
    return off;
}

/* Produces key = value on the status topic unless the topic says so
 * already (known: what it holds for the key, NULL: nothing). */
static void publish_status(dist_t *d, const char *key, json_t *value, const json_t *known) {
    if (json_equal(value, known)) return;
    char err[512], *text = json_dumps(value, JSON_COMPACT);
    if (text && produce(d, d->status_topic, key, text, 0, err, sizeof(err)) < 0)
        SL_WARN("herder", "status %s not published: %s", key, err);
    free(text);
}

/* Publishes, when the status topic says otherwise, the status of each
 * connector whose instance runs here ("status-<name>", as the standalone
 * herder answers it, tasks included) and of each other task running here
 * ("taskstatus-<task>-<name>"). */
static void publish_statuses(dist_t *d) {
    if (!d->worker_id[0]) return;
    json_t *names = local_names(d);
    size_t i;
    json_t *it;
    json_array_foreach(names, i, it) {
        const char *name = json_string_value(it);
        json_t *st = NULL;
        if (d->local->ops->status(d->local, name, &st) != 200) {
            json_decref(st);
            continue;
        }
        char key[700];
        json_t *tasks = json_object_get(st, "tasks"), *task;
        size_t t;
        json_array_foreach(tasks, t, task) {
            if (t == 0 || !sl_worker_task_here(d->w, name, (int)t)) continue;
            json_object_set_new(task, "worker_url", json_string(d->rest_url));
            snprintf(key, sizeof(key), "taskstatus-%zu-%s", t, name);
            char id[24];
            snprintf(id, sizeof(id), "%zu", t);
            pthread_mutex_lock(&d->mu);
            json_t *known = json_incref(json_object_get(json_object_get(d->task_statuses, name), id));
            pthread_mutex_unlock(&d->mu);
            publish_status(d, key, task, known);
            json_decref(known);
        }
        if (sl_worker_task_here(d->w, name, 0)) {
            /* task 0 only: the others are in their own records */
            while (json_array_size(tasks) > 1) json_array_remove(tasks, json_array_size(tasks) - 1);
            json_object_set_new(st, "worker_url", json_string(d->rest_url));
            snprintf(key, sizeof(key), "status-%s", name);
            pthread_mutex_lock(&d->mu);
            json_t *known = json_incref(json_object_get(d->statuses, name));
            pthread_mutex_unlock(&d->mu);
            publish_status(d, key, st, known);
            json_decref(known);
        }
        json_decref(st);
    }
    json_decref(names);
}

/* Publishes the source offsets of the connectors running here that
 * changed since last sent (at least once: a worker killed between a flush
 * and this tick leaves the last published offset, and its successor
 * re-emits from there). */
static void publish_offsets_of(dist_t *d, json_t *names);
static void publish_offsets(dist_t *d) {
    json_t *names = local_names(d);
    publish_offsets_of(d, names);
    json_decref(names);
}

/* Publishes key = value (NULL: a tombstone) on the offsets topic unless it
 * is what this worker last sent for key. */
static void publish_offset(dist_t *d, const char *name, const char *key, const char *val) {
    const char *sent = json_string_value(json_object_get(d->published, key));
    if (val ? sent && strcmp(sent, val) == 0 : !json_object_get(d->published, key)) return;
    /* The topic holds it already (read from the worker that ran the task
     * before): publishing it would claim a partition this worker does not
     * write. */
    const char *held = json_string_value(json_object_get(d->seen, key));
    if (val && held && strcmp(held, val) == 0 && !json_object_get(d->published, key)) return;
    char err[512];
    if (produce(d, d->offsets_topic, key, val, 0, err, sizeof(err)) < 0)
        SL_WARN("herder", "offset of %s not published: %s", name, err);
    else if (val)
        json_object_set_new(d->published, key, json_string(val));
    else
        json_object_del(d->published, key);
}

/* The same for the connectors named in names (a JSON array); a partition
 * whose offset left the store (DELETE .../offsets) gets a tombstone, so
 * the next owner does not resume from it. */
static void publish_offsets_of(dist_t *d, json_t *names) {
    size_t i, j;
    json_t *it, *o;
    json_array_foreach(names, i, it) {
        const char *name = json_string_value(it);
        json_t *list = sl_offset_store_list(d->rt->svc.offsets, name), *now = json_object();
        json_array_foreach(list, j, o) {
            json_t *k = json_pack("[OO]", it, json_object_get(o, "partition"));
            char *key = json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS);
            char *val = json_dumps(json_object_get(o, "offset"), JSON_COMPACT | JSON_SORT_KEYS);
            if (key && val) {
                json_object_set_new(now, key, json_true());
                publish_offset(d, name, key, val);
            }
            free(key);
            free(val);
            json_decref(k);
        }
        const char *key;
        json_t *v, *gone = json_array();
        json_object_foreach(d->published, key, v) {
            json_t *k = json_loads(key, 0, NULL);
            if (json_equal(json_array_get(k, 0), it) && !json_object_get(now, key))
                json_array_append_new(gone, json_string(key));
            json_decref(k);
        }
        json_array_foreach(gone, j, o) publish_offset(d, name, json_string_value(o), NULL);
        json_decref(gone);
        json_decref(now);
        json_decref(list);
    }
}

static void *herder_main(void *arg) {
    dist_t *d = arg;
    struct timespec last = {0, 0};
    while (!atomic_load(&d->stop)) {
        for (int n = 0; n < 500; n++) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(d->log_c, n ? 0 : 50);
            if (!m) break;
            if (!m->err)
                apply_record(d, m);
            else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                SL_WARN("herder", "reading configs/statuses: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(d->group_c, 50);
        if (m) rd_kafka_message_destroy(m); /* the assign topic carries nothing */
        rd_kafka_poll(d->producer, 0);
        pthread_mutex_lock(&d->mu);
        int dirty = d->dirty;
        pthread_mutex_unlock(&d->mu);
        if (dirty) reconcile(d);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec != last.tv_sec) {
            publish_statuses(d);
            publish_offsets(d);
            forget_lost(d);
            last = now;
        }
    }
    return NULL;
}

/* --- views from the config map ---------------------------------------------------- */

/* The stored entry of name (new reference) or NULL. */
static json_t *stored(dist_t *d, const char *name) {
    pthread_mutex_lock(&d->mu);
    json_t *v = json_incref(json_object_get(d->configs, name));
    pthread_mutex_unlock(&d->mu);
    return v;
}

static int not_found(json_t **out, const char *name) {
    return sl_herder_error(out, 404, "Connector %s not found", name);
}

static const char *type_of(dist_t *d, const json_t *config) {
    const char *cls = json_string_value(json_object_get(config, "connector.class"));
    const sl_plugin_t *pl = cls ? sl_registry_find(d->rt->registry, cls) : NULL;
    return pl && pl->desc->kind == SLUICE_PLUGIN_SOURCE ? "source" : "sink";
}

static int task_count(const json_t *entry) {
    if (parse_target(json_string_value(json_object_get(entry, "target"))) == SL_TARGET_STOPPED) return 0;
    return tasks_max_of(json_object_get(entry, "config"));
}

static json_t *shown(dist_t *d, const char *name, const json_t *entry) {
    char err[512];
    sl_props_t *p = sl_props_from_json(json_object_get(entry, "config"), err, sizeof(err));
    json_t *o = p ? sl_herder_shown_config(d->rt, p, name) : json_object();
    sl_props_free(p);
    return o;
}

static json_t *info_of(dist_t *d, const char *name, const json_t *entry) {
    json_t *tasks = json_array();
    for (int t = 0; t < task_count(entry); t++)
        json_array_append_new(tasks, json_pack("{sssi}", "connector", name, "task", t));
    return json_pack("{sssososs}", "name", name, "config", shown(d, name, entry), "tasks", tasks,
                     "type", type_of(d, json_object_get(entry, "config")));
}

/* The status of connector name: its instance's record (with task 0), and
 * the record of each other task, wherever they run. */
static json_t *status_of(dist_t *d, const char *name, const json_t *entry) {
    pthread_mutex_lock(&d->mu);
    json_t *st = json_deep_copy(json_object_get(d->statuses, name));
    json_t *others = json_deep_copy(json_object_get(d->task_statuses, name));
    pthread_mutex_unlock(&d->mu);
    if (!st)
        st = json_pack("{sss{ssss}s[]ss}", "name", name, "connector", "state", "UNASSIGNED",
                       "worker_id", "", "tasks", "type", type_of(d, json_object_get(entry, "config")));
    json_object_del(st, "worker_url"); /* the record's, not the API's */
    const char *state = json_string_value(json_object_get(json_object_get(st, "connector"), "state"));
    json_t *tasks = json_object_get(st, "tasks");
    int n = state && strcmp(state, "FAILED") == 0 ? 0 : task_count(entry);
    json_t *merged = json_array();
    for (int t = 0; t < n; t++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", t);
        json_t *rec = t == 0 ? json_array_get(tasks, 0) : json_object_get(others, id);
        json_t *one = rec ? json_deep_copy(rec)
                          : json_pack("{sissss}", "id", t, "state", "UNASSIGNED", "worker_id", "");
        json_object_del(one, "worker_url");
        json_array_append_new(merged, one);
    }
    json_object_set_new(st, "tasks", merged);
    json_decref(others);
    return st;
}

static json_t *config_of(dist_t *d, const char *name, const json_t *entry) {
    return shown(d, name, entry);
}

static json_t *tasks_of(dist_t *d, const char *name, const json_t *entry) {
    json_t *a = json_array();
    for (int t = 0; t < task_count(entry); t++) {
        json_t *cfg = shown(d, name, entry);
        json_object_set_new(cfg, "task.id", json_sprintf("%d", t));
        json_array_append_new(a, json_pack("{s{sssi}so}", "id", "connector", name, "task", t,
                                           "config", cfg));
    }
    return a;
}

typedef json_t *(*view_fn)(dist_t *d, const char *name, const json_t *entry);

static int view(dist_t *d, const char *name, view_fn fn, json_t **out) {
    json_t *entry = stored(d, name);
    if (!entry) return not_found(out, name);
    *out = fn(d, name, entry);
    json_decref(entry);
    return 200;
}

#define SELF dist_t *d = (dist_t *)h

static int h_list(sl_herder_t *h, int expand_status, int expand_info, json_t **out) {
    SELF;
    pthread_mutex_lock(&d->mu);
    json_t *cfgs = json_deep_copy(d->configs);
    pthread_mutex_unlock(&d->mu);
    int expand = expand_status || expand_info;
    *out = expand ? json_object() : json_array();
    const char *name;
    json_t *v;
    json_object_foreach(cfgs, name, v) {
        if (!expand) {
            json_array_append_new(*out, json_string(name));
            continue;
        }
        json_t *o = json_object();
        if (expand_status) json_object_set_new(o, "status", status_of(d, name, v));
        if (expand_info) json_object_set_new(o, "info", info_of(d, name, v));
        json_object_set_new(*out, name, o);
    }
    json_decref(cfgs);
    return 200;
}

static int h_info(sl_herder_t *h, const char *name, json_t **out) {
    return view((dist_t *)h, name, info_of, out);
}
static int h_get_config(sl_herder_t *h, const char *name, json_t **out) {
    return view((dist_t *)h, name, config_of, out);
}
static int h_status(sl_herder_t *h, const char *name, json_t **out) {
    return view((dist_t *)h, name, status_of, out);
}
static int h_tasks(sl_herder_t *h, const char *name, json_t **out) {
    return view((dist_t *)h, name, tasks_of, out);
}

static int h_task_status(sl_herder_t *h, const char *name, int task, json_t **out) {
    SELF;
    json_t *st = NULL;
    int rc = view(d, name, status_of, &st);
    if (rc != 200) {
        *out = st;
        return rc;
    }
    json_t *t = json_array_get(json_object_get(st, "tasks"), (size_t)task);
    if (task < 0 || !t) {
        json_decref(st);
        return sl_herder_error(out, 404, "Task %s-%d not found", name, task);
    }
    *out = json_incref(t);
    json_decref(st);
    return 200;
}

/* --- writes: through the config topic ------------------------------------------------ */

/* Produces name's entry (NULL: deleted) and waits until this worker has
 * read it back. 0, or 500 with *out set. */
static int write_entry(dist_t *d, const char *name, json_t *entry, json_t **out) {
    char key[600], err[512], *text = entry ? json_dumps(entry, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    snprintf(key, sizeof(key), "connector-%s", name);
    int64_t off = produce(d, d->config_topic, key, text, 1, err, sizeof(err));
    free(text);
    if (off < 0) return sl_herder_error(out, 500, "Failed to write the config of %s: %s", name, err);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&d->mu);
    int rc = 0;
    while (d->config_read <= off && rc == 0) rc = pthread_cond_timedwait(&d->read_cv, &d->mu, &until);
    int seen = d->config_read > off;
    pthread_mutex_unlock(&d->mu);
    if (!seen)
        return sl_herder_error(out, 500, "The config of %s was written but not read back in 30 s", name);
    return 0;
}

static int put(dist_t *d, const char *name, const json_t *config, int create_only, json_t **out) {
    if (!name || !*name || strchr(name, '/'))
        return sl_herder_error(out, 400, "Connector name must not be empty or contain '/'");
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20)
            return sl_herder_error(out, 400, "Connector name must not contain control characters");
    if (!json_is_object(config)) return sl_herder_error(out, 400, "Connector config must be a JSON object");
    const char *cfg_name = json_string_value(json_object_get(config, "name"));
    if (cfg_name && strcmp(cfg_name, name) != 0)
        return sl_herder_error(out, 400,
                               "Connector name configuration (%s) doesn't match connector name in the URL (%s)",
                               cfg_name, name);
    char err[4096];
    sl_props_t *cfg = sl_props_from_json(config, err, sizeof(err));
    if (!cfg) return sl_herder_error(out, 400, "Connector configuration is invalid: %s", err);
    sl_props_set(cfg, "name", name);
    json_t *old = stored(d, name);
    if (old && create_only) {
        json_decref(old);
        sl_props_free(cfg);
        return sl_herder_error(out, 409, "Connector %s already exists", name);
    }
    sl_props_t *old_cfg = old ? sl_props_from_json(json_object_get(old, "config"), err, sizeof(err)) : NULL;
    if (old_cfg) sl_herder_keep_hidden(d->rt, cfg, old_cfg);
    sl_props_free(old_cfg);
    const char *target = old ? json_string_value(json_object_get(old, "target")) : NULL;
    /* The same validation a worker runs before starting it. */
    sl_connector_t *probe = sl_connector_new(d->rt, name, cfg, err, sizeof(err));
    int rc;
    if (!probe) {
        rc = sl_herder_error(out, 400,
                             "Connector configuration is invalid and contains the following error(s): %s",
                             err);
    } else {
        sl_connector_free(probe);
        json_t *entry = json_pack("{soss}", "config", sl_props_to_json(cfg), "target",
                                  target ? target : "RUNNING");
        rc = write_entry(d, name, entry, out);
        if (rc == 0) {
            view(d, name, info_of, out);
            rc = old ? 200 : 201;
        }
        json_decref(entry);
    }
    json_decref(old);
    sl_props_free(cfg);
    return rc;
}

static int do_create(sl_herder_t *h, const json_t *body, json_t **out) {
    SELF;
    if (!json_is_object(body)) return sl_herder_error(out, 400, "Request body must be a JSON object");
    const json_t *name = json_object_get(body, "name");
    const json_t *config = json_object_get(body, "config");
    if (!json_is_string(name)) return sl_herder_error(out, 400, "Connector name must be a string");
    if (!config) return sl_herder_error(out, 400, "Connector config is missing");
    return put(d, json_string_value(name), config, 1, out);
}

static int do_put_config(sl_herder_t *h, const char *name, const json_t *config, json_t **out) {
    return put((dist_t *)h, name, config, 0, out);
}

static int do_patch_config(sl_herder_t *h, const char *name, const json_t *patch, json_t **out) {
    SELF;
    if (!json_is_object(patch)) return sl_herder_error(out, 400, "Connector config must be a JSON object");
    json_t *old = stored(d, name);
    if (!old) return not_found(out, name);
    json_t *merged = json_deep_copy(json_object_get(old, "config"));
    json_decref(old);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v) {
        if (json_is_null(v))
            json_object_del(merged, k);
        else
            json_object_set(merged, k, v);
    }
    int rc = put(d, name, merged, 0, out);
    json_decref(merged);
    return rc;
}

static int do_remove(sl_herder_t *h, const char *name, json_t **out) {
    SELF;
    json_t *old = stored(d, name);
    if (!old) return not_found(out, name);
    json_decref(old);
    int rc = write_entry(d, name, NULL, out);
    if (rc) return rc;
    *out = NULL;
    return 204;
}

static int do_set_target(sl_herder_t *h, const char *name, sl_target_t target, json_t **out) {
    SELF;
    json_t *old = stored(d, name);
    if (!old) return not_found(out, name);
    json_t *entry = json_pack("{sOss}", "config", json_object_get(old, "config"), "target",
                              target_names[target]);
    json_decref(old);
    int rc = write_entry(d, name, entry, out);
    json_decref(entry);
    if (rc) return rc;
    *out = NULL;
    return 202;
}

/* Verbs on the running instance (task < 1) or on task `task`: answered by
 * the worker that runs it. 0 when it runs here; else SL_HERDER_FORWARD
 * with the owner's REST URL, as its status record has it (rest.c sends the
 * request there), or 404/409. */
static int on_owner(dist_t *d, const char *name, int task, json_t **out) {
    if (sl_worker_task_here(d->w, name, task < 1 ? 0 : task)) return 0;
    json_t *entry = stored(d, name);
    if (!entry) return not_found(out, name);
    int n = tasks_max_of(json_object_get(entry, "config"));
    json_decref(entry);
    if (task >= n) return sl_herder_error(out, 404, "Task %s-%d not found", name, task);
    char id[16];
    snprintf(id, sizeof(id), "%d", task);
    pthread_mutex_lock(&d->mu);
    json_t *st = json_object_get(d->statuses, name);
    const char *url, *owner;
    if (task < 1) {
        url = json_string_value(json_object_get(st, "worker_url"));
        owner = json_string_value(json_object_get(json_object_get(st, "connector"), "worker_id"));
    } else {
        json_t *ts = json_object_get(json_object_get(d->task_statuses, name), id);
        url = json_string_value(json_object_get(ts, "worker_url"));
        owner = json_string_value(json_object_get(ts, "worker_id"));
    }
    int rc;
    if (!url || !*url || !owner || !*owner)
        rc = task < 1 ? sl_herder_error(out, 409, "Connector %s is not assigned to a worker yet; retry", name)
                      : sl_herder_error(out, 409, "Task %s-%d is not assigned to a worker yet; retry", name, task);
    else if (strcmp(url, d->rest_url) == 0)
        rc = task < 1 ? sl_herder_error(out, 409, "Connector %s has just left this worker (%s); retry",
                                        name, d->worker_id)
                      : sl_herder_error(out, 409, "Task %s-%d has just left this worker (%s); retry",
                                        name, task, d->worker_id);
    else {
        *out = json_pack("{ssss}", "url", url, "worker_id", owner);
        rc = SL_HERDER_FORWARD;
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

static int h_locate(sl_herder_t *h, const char *name, json_t **out) {
    return on_owner((dist_t *)h, name, -1, out);
}

/* A restart request read from the config topic: the tasks of name that run
 * here, but the instance's worker's own (it restarted them when asked). */
static void apply_restart(dist_t *d, const char *name, const json_t *req) {
    const char *from = json_string_value(json_object_get(req, "worker_id"));
    if (from && strcmp(from, d->worker_id) == 0) return;
    int only_failed = json_is_true(json_object_get(req, "only_failed"));
    sl_worker_lock(d->w);
    sl_worker_conn_t *e = sl_worker_find(d->w, name);
    int n = e && e->c && e->c->runners ? e->c->tasks_max : 0;
    unsigned char *which = n ? calloc((size_t)n, 1) : NULL;
    for (int t = 1; which && t < n; t++)
        which[t] = sl_connector_task_here(e->c, t) &&
                   (!only_failed || atomic_load(&e->c->runners[t].state) == SL_TASK_FAILED);
    sl_worker_unlock(d->w);
    for (int t = 1; which && t < n; t++)
        if (which[t] && sl_worker_restart_task(d->w, name, t) == 0)
            SL_INFO("herder", "task %s-%d restarted (restart request from %s)", name, t, from ? from : "?");
    free(which);
}

/* On the worker running the instance: restarts it and the tasks here, and
 * with includeTasks writes a restart request to the config topic (as
 * Kafka Connect since KIP-745) for the tasks on other workers. */
static int do_restart(sl_herder_t *h, const char *name, int include_tasks, int only_failed,
                      json_t **out) {
    SELF;
    int rc = on_owner(d, name, -1, out);
    if (rc) return rc;
    if (include_tasks) {
        json_t *entry = stored(d, name);
        int n = entry ? task_count(entry) : 0, elsewhere = 0;
        json_decref(entry);
        for (int t = 1; t < n; t++) elsewhere |= !sl_worker_task_here(d->w, name, t);
        if (elsewhere) {
            char key[600], err[512];
            json_t *req = json_pack("{sbsbss}", "include_tasks", 1, "only_failed", only_failed,
                                    "worker_id", d->worker_id);
            char *text = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
            json_decref(req);
            snprintf(key, sizeof(key), "restart-%s", name);
            int64_t off = text ? produce(d, d->config_topic, key, text, 1, err, sizeof(err)) : -1;
            free(text);
            if (off < 0)
                return sl_herder_error(out, 500, "Failed to write the restart request of %s: %s", name, err);
        }
    }
    rc = d->local->ops->restart(d->local, name, include_tasks, only_failed, out);
    if (rc == 202) { /* the status with every task, not only the ones here */
        json_decref(*out);
        view(d, name, status_of, out);
    }
    return rc;
}

static int do_task_restart(sl_herder_t *h, const char *name, int task, json_t **out) {
    SELF;
    int rc = on_owner(d, name, task, out);
    return rc ? rc : d->local->ops->task_restart(d->local, name, task, out);
}

static int h_topics(sl_herder_t *h, const char *name, int reset, json_t **out) {
    SELF;
    int rc = on_owner(d, name, -1, out);
    return rc ? rc : d->local->ops->topics(d->local, name, reset, out);
}

static int h_offsets(sl_herder_t *h, const char *name, json_t **out) {
    SELF;
    int rc = on_owner(d, name, -1, out);
    return rc ? rc : d->local->ops->offsets(d->local, name, out);
}

static int do_alter_offsets(sl_herder_t *h, const char *name, const json_t *body, json_t **out) {
    SELF;
    int rc = on_owner(d, name, -1, out);
    return rc ? rc : d->local->ops->alter_offsets(d->local, name, body, out);
}

static int h_plugins(sl_herder_t *h, int connectors_only, json_t **out) {
    SELF;
    return d->local->ops->plugins(d->local, connectors_only, out);
}

static int h_validate(sl_herder_t *h, const char *plugin, const json_t *config, json_t **out) {
    SELF;
    return d->local->ops->validate(d->local, plugin, config, out);
}

/* worker_id is what other workers reach this one by (rest.c: the bound
 * address, or rest.advertised.host.name / rest.advertised.port): the URL
 * they forward requests to. */
static void h_set_worker_id(sl_herder_t *h, const char *worker_id) {
    SELF;
    d->local->ops->set_worker_id(d->local, worker_id);
    pthread_mutex_lock(&d->mu);
    snprintf(d->worker_id, sizeof(d->worker_id), "%s", worker_id);
    snprintf(d->rest_url, sizeof(d->rest_url), "http://%s", worker_id);
    pthread_mutex_unlock(&d->mu);
}

static void h_free(sl_herder_t *h) {
    SELF;
    if (!d) return;
    atomic_store(&d->stop, 1);
    if (d->thread_started) pthread_join(d->thread, NULL);
    if (d->group_c) sl_kafka_consumer_destroy(d->group_c, d->ever_assigned);
    if (d->log_c) {
        rd_kafka_consumer_close(d->log_c);
        rd_kafka_destroy(d->log_c);
    }
    if (d->producer) {
        rd_kafka_flush(d->producer, 5000);
        rd_kafka_destroy(d->producer);
    }
    if (d->local) d->local->ops->free(d->local);
    json_decref(d->configs);
    json_decref(d->statuses);
    json_decref(d->task_statuses);
    json_decref(d->published);
    json_decref(d->seen);
    json_decref(d->forget);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->writes);
    pthread_cond_destroy(&d->read_cv);
    free(d);
}

SL_HERDER_SERIALIZED_WRITES(dist_t)

static const sl_herder_ops_t dist_ops = {
    SL_HERDER_COMMON_OPS,
    .locate = h_locate,
};

/* --- setup ----------------------------------------------------------------------- */

static int partitions_of(rd_kafka_t *rk, const char *topic) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    if (t && rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && !md->topics[0].err)
        n = md->topics[0].partition_cnt;
    if (md) rd_kafka_metadata_destroy(md);
    if (t) rd_kafka_topic_destroy(t);
    return n;
}

static int ensure_topic(dist_t *d, const char *topic, int partitions, int compact, char *err,
                        size_t errlen) {
    sl_props_t *cfg = sl_props_new();
    if (compact) sl_props_set(cfg, "cleanup.policy", "compact");
    int created, n = -1;
    int rc = sl_kafka_create_topic(d->producer, d->rt->embedded, topic, partitions, -1, cfg, 10000,
                                   &created, err, errlen);
    sl_props_free(cfg);
    /* Left to auto-creation: a first produce-free metadata request creates it. */
    for (int i = 0; rc == 0 && i < 50 && (n = partitions_of(d->producer, topic)) < 1; i++) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    if (rc == 0 && n < 1) {
        snprintf(err, errlen, "topic %s does not exist and could not be created", topic);
        return -1;
    }
    return rc == 0 ? n : -1;
}

static rd_kafka_t *client(dist_t *d, sl_kafka_role_t role, const char *group, char *err,
                          size_t errlen) {
    rd_kafka_conf_t *conf = sl_kafka_conf(role, d->rt->bootstrap, d->rt->worker, NULL, err, errlen);
    if (!conf) return NULL;
    char e2[512];
    if (role == SL_KAFKA_PRODUCER) {
        rd_kafka_conf_set(conf, "acks", "all", e2, sizeof(e2));
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    } else if (group) {
        rd_kafka_conf_set(conf, "group.id", group, e2, sizeof(e2));
        /* cooperative: a rebalance moves only what must move (on_rebalance) */
        rd_kafka_conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", e2, sizeof(e2));
        /* The herder thread polls between reconciles, and a reconcile stops
         * connectors (their tasks flush and close their consumers), which
         * may take longer than the tasks' consumer.max.poll.interval.ms: a
         * member over it is dropped from the group while its connectors
         * still run, and their new owner starts them - two instances at
         * once. Kafka Connect's rebalance.timeout.ms (60 s) bounds it. */
        const char *rt = sl_props_get(d->rt->worker, "rebalance.timeout.ms");
        rd_kafka_conf_set(conf, "max.poll.interval.ms", rt && *rt ? rt : "60000", e2, sizeof(e2));
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
        rd_kafka_conf_set_opaque(conf, d);
    } else {
        /* assign() needs a group id; this one never joins nor commits */
        char id[128];
        snprintf(id, sizeof(id), "sluice-log-%ld-%p", (long)getpid(), (void *)d);
        rd_kafka_conf_set(conf, "group.id", id, e2, sizeof(e2));
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", e2, sizeof(e2));
    }
    rd_kafka_t *rk = rd_kafka_new(role == SL_KAFKA_PRODUCER ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER,
                                  conf, e2, sizeof(e2));
    if (!rk) {
        snprintf(err, errlen, "Kafka client: %s", e2);
        return NULL;
    }
    if (role == SL_KAFKA_CONSUMER) rd_kafka_poll_set_consumer(rk);
    return rk;
}

static const char *key_or(const sl_props_t *w, const char *key, const char *dflt) {
    const char *v = sl_props_get(w, key);
    return v && *v ? v : dflt;
}

static int setup(dist_t *d, char *err, size_t errlen) {
    const sl_props_t *wc = d->rt->worker;
    const char *group = sl_props_get(wc, "group.id");
    if (!group || !*group) {
        snprintf(err, errlen, "config key 'group.id' is required in distributed mode");
        return -1;
    }
    snprintf(d->config_topic, sizeof(d->config_topic), "%s",
             key_or(wc, "config.storage.topic", "connect-configs"));
    snprintf(d->status_topic, sizeof(d->status_topic), "%s",
             key_or(wc, "status.storage.topic", "connect-status"));
    snprintf(d->offsets_topic, sizeof(d->offsets_topic), "%s",
             key_or(wc, "offset.storage.topic", "connect-offsets"));
    snprintf(d->assign_topic, sizeof(d->assign_topic), "%s-assign", group);
    if (!(d->producer = client(d, SL_KAFKA_PRODUCER, NULL, err, errlen))) return -1;
    int status_parts, offsets_parts;
    if (ensure_topic(d, d->config_topic, 1, 1, err, errlen) < 0 ||
        (status_parts = ensure_topic(d, d->status_topic, 5, 1, err, errlen)) < 0 ||
        (offsets_parts = ensure_topic(d, d->offsets_topic, 1, 1, err, errlen)) < 0 ||
        (d->assign_parts = ensure_topic(d, d->assign_topic, 32, 0, err, errlen)) < 0)
        return -1;
    if (d->assign_parts > MAX_PARTS) d->assign_parts = MAX_PARTS;
    if (!(d->log_c = client(d, SL_KAFKA_CONSUMER, NULL, err, errlen)) ||
        !(d->group_c = client(d, SL_KAFKA_CONSUMER, group, err, errlen)))
        return -1;
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(1 + status_parts + offsets_parts);
    for (int p = 0; p < offsets_parts; p++)
        rd_kafka_topic_partition_list_add(parts, d->offsets_topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_topic_partition_list_add(parts, d->config_topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    for (int p = 0; p < status_parts; p++)
        rd_kafka_topic_partition_list_add(parts, d->status_topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(d->log_c, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, d->assign_topic, RD_KAFKA_PARTITION_UA);
    if (!e) e = rd_kafka_subscribe(d->group_c, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e) {
        snprintf(err, errlen, "distributed herder: %s", rd_kafka_err2str(e));
        return -1;
    }
    /* Answer nothing before the config topic is read to its end. */
    int64_t lo = 0, hi = 0;
    e = rd_kafka_query_watermark_offsets(d->producer, d->config_topic, 0, &lo, &hi, 10000);
    if (e) {
        snprintf(err, errlen, "%s: %s", d->config_topic, rd_kafka_err2str(e));
        return -1;
    }
    d->live_from = hi; /* restart requests before this are history */
    if (pthread_create(&d->thread, NULL, herder_main, d) != 0) {
        snprintf(err, errlen, "cannot start the herder thread");
        return -1;
    }
    d->thread_started = 1;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    pthread_mutex_lock(&d->mu);
    int rc = 0;
    while (d->config_read < hi && rc == 0) rc = pthread_cond_timedwait(&d->read_cv, &d->mu, &until);
    int caught_up = d->config_read >= hi;
    pthread_mutex_unlock(&d->mu);
    if (!caught_up) {
        snprintf(err, errlen, "%s: not read to its end (offset %lld) in 60 s", d->config_topic,
                 (long long)hi);
        return -1;
    }
    SL_INFO("herder", "distributed worker in group %s: %zu connector(s) in %s, %d assignment partitions",
            group, json_object_size(d->configs), d->config_topic, d->assign_parts);
    return 0;
}

sl_herder_t *sl_distributed_herder_new(sl_worker_t *w, char *err, size_t errlen) {
    dist_t *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->base.ops = &dist_ops;
    d->w = w;
    d->rt = sl_worker_runtime(w);
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->writes, NULL);
    pthread_cond_init(&d->read_cv, NULL);
    d->configs = json_object();
    d->statuses = json_object();
    d->task_statuses = json_object();
    d->published = json_object();
    d->seen = json_object();
    d->forget = json_object();
    d->local = sl_standalone_herder_new(w, NULL, err, errlen);
    if (!d->local || setup(d, err, errlen) != 0) {
        h_free(&d->base);
        return NULL;
    }
    return &d->base;
}
