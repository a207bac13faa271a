/*
 * worker.h - a worker: its config, the shared services (plugins, schemas,
 * metrics, source offsets, the embedded broker when asked for) and its
 * connectors.
 *
 * Worker config keys (flat JSON): bootstrap.servers ("embedded" starts an
 * in-process mock cluster), embedded.brokers (3), embedded.bootstrap.file,
 * plugin.path (comma-separated dirs), schemas.path, offset.storage.file.filename,
 * offset.flush.interval.ms, log.level, status.interval.ms (a progress line per
 * connector every so often; 0 = off), metrics.file (every metric in
 * Prometheus text, rewritten at each status tick and at the stop), key.converter / value.converter
 * defaults, producer.* and consumer.* client settings; rest.* (rest.h) and
 * config.storage.file.filename (herder.h) are read by the standalone command.
 *
 * Connectors change at runtime (put, remove, pause/resume/stop, restart)
 * under the worker's mutex; a connector that fails does not affect another.
 */
#ifndef SLUICE_HOST_WORKER_H
#define SLUICE_HOST_WORKER_H

#include "connector.h"

typedef struct sl_worker sl_worker_t;

/** What a connector is asked to be (Kafka Connect's target state). */
typedef enum { SL_TARGET_RUNNING, SL_TARGET_PAUSED, SL_TARGET_STOPPED } sl_target_t;

/**
 * A connector the worker knows, running or not. Read its fields only
 * between sl_worker_lock() and sl_worker_unlock().
 */
typedef struct sl_worker_conn {
    char *name;
    sl_props_t *raw;   /* as submitted (providers unresolved) */
    sl_connector_t *c; /* the running instance; NULL when paused, stopped or failed */
    sl_target_t target;
    int managed;       /* submitted over REST (persisted by the herder) */
    int tasks_max;     /* of the last valid config */
    sluice_plugin_kind_t kind;
    char trace[1024];  /* why the connector itself failed to start, or "" */
    int *last_state;   /* per task, for sl_worker_report */
    double last_count; /* records at the last progress line */
    sl_props_t *topics; /* active topics of instances gone (keys) */
    unsigned char *here; /* per task: runs on this worker (distributed); NULL: all */
    int here_n;
} sl_worker_conn_t;

/** props is taken. exe_dir locates the default plugin dir. dry_run (for
 *  `sluice validate`) starts no embedded broker and writes no file. NULL
 *  with err. */
sl_worker_t *sl_worker_new(sl_props_t *props, const char *exe_dir, int dry_run, char *err,
                           size_t errlen);
void sl_worker_free(sl_worker_t *w);
const sl_runtime_t *sl_worker_runtime(const sl_worker_t *w);
/** Validates and adds a connector (not started); config is as submitted
 *  (providers unresolved). -1 with err naming keys. */
int sl_worker_add_connector(sl_worker_t *w, const char *name, const sl_props_t *config,
                            char *err, size_t errlen);
/** Starts every connector added so far; later puts start at once. */
int sl_worker_start(sl_worker_t *w, char *err, size_t errlen);
/** Stops every connector: tasks flush, commit and stop. */
void sl_worker_stop(sl_worker_t *w);
/** Logs a status line per task that changed state since the last call. */
void sl_worker_report(sl_worker_t *w);

/* --- runtime changes (the herder's verbs); thread-safe -------------------- */

/** Creates or replaces connector name with raw (validated first: on error
 *  -1 and nothing changes). A replaced connector keeps its target state; a
 *  new one starts RUNNING (or target, when not NULL). *created says which. */
int sl_worker_put_connector(sl_worker_t *w, const char *name, const sl_props_t *raw, int managed,
                            const sl_target_t *target, int *created, char *err, size_t errlen);
/** The same, with the tasks that run on this worker: here[i] for task i
 *  (n entries; tasks beyond n do not run here); here NULL: every task (what
 *  sl_worker_put_connector does). */
int sl_worker_put_connector_here(sl_worker_t *w, const char *name, const sl_props_t *raw,
                                 int managed, const sl_target_t *target, const unsigned char *here,
                                 int n, int *created, char *err, size_t errlen);
/** Changes which of name's tasks run here: the ones gained start, the ones
 *  lost stop (flush, commit). -1 when name is unknown. */
int sl_worker_set_here(sl_worker_t *w, const char *name, const unsigned char *here, int n);
/** Whether task of name runs here (name known, task in its mask). */
int sl_worker_task_here(sl_worker_t *w, const char *name, int task);
/** Stops and forgets a connector; -1 when there is none of that name. */
int sl_worker_remove_connector(sl_worker_t *w, const char *name);
/** Pause / resume / stop; -1 when unknown. Pausing and stopping stop the
 *  tasks (flush, commit); resuming starts them again. */
int sl_worker_set_target(sl_worker_t *w, const char *name, sl_target_t target);
/** Restarts a connector's instance (all tasks when include_tasks; only the
 *  FAILED ones when only_failed). -1 when unknown. */
int sl_worker_restart(sl_worker_t *w, const char *name, int include_tasks, int only_failed);
/** Restarts one task: 0, -1 unknown connector, -2 unknown task. */
int sl_worker_restart_task(sl_worker_t *w, const char *name, int task);
/* sl_worker_restart_task: 0, -1 unknown connector, -2 no such task, -3 the
 * task runs on another worker. sl_worker_restart touches only tasks here. */

/** The topics e has used since the last reset (a new JSON array of names);
 *  reset empties the set. Call with the lock held. */
json_t *sl_worker_active_topics(sl_worker_t *w, sl_worker_conn_t *e, int reset);

/** The lock behind every runtime change; hold it to read connectors. */
void sl_worker_lock(sl_worker_t *w);
void sl_worker_unlock(sl_worker_t *w);
size_t sl_worker_count(const sl_worker_t *w);
sl_worker_conn_t *sl_worker_at(sl_worker_t *w, size_t i);
sl_worker_conn_t *sl_worker_find(sl_worker_t *w, const char *name);

/** The default plugin path for a worker in exe_dir: the existing ones of
 *  "<exe_dir>/plugins" (the build tree) and "<exe_dir>/../lib/sluice/plugins"
 *  (an install), comma-separated; malloc'd. */
char *sl_default_plugin_path(const char *exe_dir);

#endif
