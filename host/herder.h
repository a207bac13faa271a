/*
 * herder.h - what the REST API asks of a worker, as Kafka Connect's Herder:
 * list, get, create, put/patch config, delete, pause, resume, stop, restart,
 * statuses, offsets. Every verb answers an HTTP status and sets *out to a
 * JSON body (NULL for none; the caller json_decref()s it). Errors are
 * {"error_code": <status>, "message": "..."}.
 *
 * An ops table so that a distributed herder (configs in Kafka) can replace
 * the standalone one (configs in a local file) behind the same REST layer.
 * Secrets: a value of a key a plugin declares SECRET is never answered in
 * clear: the ${provider:...} reference the user gave, else "[hidden]".
 */
#ifndef SLUICE_HOST_HERDER_H
#define SLUICE_HOST_HERDER_H

#include <jansson.h>
#include "worker.h"

typedef struct sl_herder sl_herder_t;

/* A verb's answer "ask another worker" (never an HTTP status): the
 * distributed herder returns it for a verb on the running instance of a
 * connector that another worker runs, with *out =
 * {"url": "http://host:port", "worker_id": "..."} - that worker's REST
 * API. The REST layer then sends the same request there and answers what
 * that worker answered (rest.c). */
#define SL_HERDER_FORWARD (-307)

typedef struct sl_herder_ops {
    /* GET /connectors (expand: status and/or info) */
    int (*list)(sl_herder_t *h, int expand_status, int expand_info, json_t **out);
    /* POST /connectors {"name", "config"} */
    int (*create)(sl_herder_t *h, const json_t *body, json_t **out);
    int (*info)(sl_herder_t *h, const char *name, json_t **out);
    int (*get_config)(sl_herder_t *h, const char *name, json_t **out);
    /* PUT: creates (201) or replaces (200); PATCH: merges, null removes a key */
    int (*put_config)(sl_herder_t *h, const char *name, const json_t *config, json_t **out);
    int (*patch_config)(sl_herder_t *h, const char *name, const json_t *patch, json_t **out);
    int (*remove)(sl_herder_t *h, const char *name, json_t **out);
    int (*set_target)(sl_herder_t *h, const char *name, sl_target_t target, json_t **out);
    int (*restart)(sl_herder_t *h, const char *name, int include_tasks, int only_failed,
                   json_t **out);
    int (*status)(sl_herder_t *h, const char *name, json_t **out);
    int (*tasks)(sl_herder_t *h, const char *name, json_t **out);
    int (*task_status)(sl_herder_t *h, const char *name, int task, json_t **out);
    int (*task_restart)(sl_herder_t *h, const char *name, int task, json_t **out);
    int (*topics)(sl_herder_t *h, const char *name, int reset, json_t **out);
    int (*offsets)(sl_herder_t *h, const char *name, json_t **out);
    /* PATCH (body) or DELETE (body NULL) the offsets of a STOPPED connector */
    int (*alter_offsets)(sl_herder_t *h, const char *name, const json_t *body, json_t **out);
    int (*plugins)(sl_herder_t *h, int connectors_only, json_t **out);
    int (*validate)(sl_herder_t *h, const char *plugin, const json_t *config, json_t **out);
    /* "host:port" of the REST API serving this worker, for statuses; called
     * once, before the first request (copied) */
    void (*set_worker_id)(sl_herder_t *h, const char *worker_id);
    /* Where name's running instance is, for what the REST layer answers
     * from this worker's own state (GET .../latest): 0 here, else
     * SL_HERDER_FORWARD or an error status with *out. NULL: always here. */
    int (*locate)(sl_herder_t *h, const char *name, json_t **out);
    void (*free)(sl_herder_t *h);
} sl_herder_ops_t;

struct sl_herder {
    const sl_herder_ops_t *ops;
};

/**
 * The standalone herder over worker w (not owned). storage_file
 * (config.storage.file.filename; NULL = none) holds the connectors
 * submitted over REST: they are loaded into w now (a name w already has, from
 * a connector file, wins) and the file is rewritten (mode 0600) on each
 * change. NULL with err when the file exists but cannot be read.
 */
sl_herder_t *sl_standalone_herder_new(sl_worker_t *w, const char *storage_file, char *err,
                                      size_t errlen);

/** {"error_code": status, "message": printf(fmt)}; returns status. */
int sl_herder_error(json_t **out, int status, const char *fmt, ...) SLUICE_PRINTF(3, 4);

/* Defines h_<verb> as do_<verb> run under the herder's "writes" mutex
 * (type: the herder's struct): one write at a time, so a POST cannot race
 * another to create the same name. Reads do not wait. */
#define SL_HERDER_SERIALIZED(type, verb, params, args)                                             \
    static int h_##verb params {                                                                   \
        type *self = (type *)h;                                                                    \
        pthread_mutex_lock(&self->writes);                                                         \
        int rc = do_##verb args;                                                                   \
        pthread_mutex_unlock(&self->writes);                                                       \
        return rc;                                                                                 \
    }

/* The serialized write verbs (h_create ... h_alter_offsets over do_create
 * ... do_alter_offsets) of a herder whose struct is type. */
#define SL_HERDER_SERIALIZED_WRITES(type)                                                          \
    SL_HERDER_SERIALIZED(type, create, (sl_herder_t * h, const json_t *body, json_t **out),        \
                         (h, body, out))                                                           \
    SL_HERDER_SERIALIZED(type, put_config,                                                         \
                         (sl_herder_t * h, const char *name, const json_t *config, json_t **out),  \
                         (h, name, config, out))                                                   \
    SL_HERDER_SERIALIZED(type, patch_config,                                                       \
                         (sl_herder_t * h, const char *name, const json_t *patch, json_t **out),   \
                         (h, name, patch, out))                                                    \
    SL_HERDER_SERIALIZED(type, remove, (sl_herder_t * h, const char *name, json_t **out),          \
                         (h, name, out))                                                           \
    SL_HERDER_SERIALIZED(type, set_target,                                                         \
                         (sl_herder_t * h, const char *name, sl_target_t target, json_t **out),    \
                         (h, name, target, out))                                                   \
    SL_HERDER_SERIALIZED(type, restart,                                                            \
                         (sl_herder_t * h, const char *name, int include_tasks, int only_failed,   \
                          json_t **out),                                                           \
                         (h, name, include_tasks, only_failed, out))                               \
    SL_HERDER_SERIALIZED(type, task_restart,                                                       \
                         (sl_herder_t * h, const char *name, int task, json_t **out),              \
                         (h, name, task, out))                                                     \
    SL_HERDER_SERIALIZED(type, alter_offsets,                                                      \
                         (sl_herder_t * h, const char *name, const json_t *body, json_t **out),    \
                         (h, name, body, out))

/* The ops every herder has, by the names h_<verb> (an initializer list for
 * sl_herder_ops_t; a herder adds its own, e.g. .locate). */
#define SL_HERDER_COMMON_OPS                                                                       \
    .list = h_list, .create = h_create, .info = h_info, .get_config = h_get_config,                \
    .put_config = h_put_config, .patch_config = h_patch_config, .remove = h_remove,                \
    .set_target = h_set_target, .restart = h_restart, .status = h_status, .tasks = h_tasks,        \
    .task_status = h_task_status, .task_restart = h_task_restart, .topics = h_topics,              \
    .offsets = h_offsets, .alter_offsets = h_alter_offsets, .plugins = h_plugins,                  \
    .validate = h_validate, .set_worker_id = h_set_worker_id, .free = h_free

/** A connector config as answered over REST: each secret value as its
 *  ${provider:...} reference, else "[hidden]"; "name" added. New object. */
json_t *sl_herder_shown_config(const sl_runtime_t *rt, const sl_props_t *cfg, const char *name);
/** A config read back and PUT again holds "[hidden]" for each secret: that
 *  means "unchanged", so the value of old is put back into cfg. */
void sl_herder_keep_hidden(const sl_runtime_t *rt, sl_props_t *cfg, const sl_props_t *old);

/**
 * The distributed herder (herder_dist.c): connector configs in the config
 * topic (config.storage.topic), statuses in the status topic
 * (status.storage.topic), source offsets in the offsets topic
 * (offset.storage.topic), connectors spread over the workers of group.id
 * through Kafka group membership. Runs connectors on w (not owned) as
 * its share of the cluster. NULL with err.
 */
sl_herder_t *sl_distributed_herder_new(sl_worker_t *w, char *err, size_t errlen);

#endif
