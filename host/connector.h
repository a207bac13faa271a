/*
 * connector.h - a connector: its config, its plugin, its transform chain
 * definition, converters, and the runners (one thread per task) that
 * execute it.
 *
 * Lifecycle: sl_connector_new() validates everything (plugin exists and is
 * a source or sink, config valid against its definitions, transforms valid)
 * and fails with one message naming each bad key; sl_connector_start()
 * spawns the runners of the tasks.max tasks that run on this worker (all,
 * unless sl_connector_set_here() says otherwise); sl_connector_stop() stops them (flush, commit)
 * and joins; sl_connector_free() releases it.
 */
#ifndef SLUICE_HOST_CONNECTOR_H
#define SLUICE_HOST_CONNECTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include "config.h"
#include "converter.h"
#include "loader.h"
#include "task.h"

typedef struct sl_transform_def {
    char *alias;
    const sl_plugin_t *plugin;
    sl_props_t *config; /* "transforms.<alias>." keys, prefix stripped */
} sl_transform_def_t;

/** Everything a connector needs from the worker; owned by the worker. */
typedef struct sl_runtime {
    sl_services_t svc;
    const sl_props_t *worker; /* worker config */
    const char *bootstrap;    /* resolved bootstrap.servers */
    sl_registry_t *registry;
    struct sl_embedded *embedded; /* or NULL */
} sl_runtime_t;

typedef enum { SL_TASK_UNASSIGNED, SL_TASK_RUNNING, SL_TASK_FAILED, SL_TASK_STOPPED } sl_task_state_t;

typedef struct sl_connector sl_connector_t;

/** One task's thread. */
typedef struct sl_runner {
    sl_connector_t *conn;
    int id;
    pthread_t thread;
    int thread_started;
    atomic_int state; /* sl_task_state_t */
    atomic_int stop;  /* this task alone is asked to stop (a task restart) */
    char trace[1024]; /* why it failed; written before state becomes FAILED */
} sl_runner_t;

struct sl_connector {
    char *name;
    sl_props_t *raw_config; /* as submitted: ${...} references unresolved */
    sl_props_t *config;     /* resolved: what tasks see */
    const sl_plugin_t *plugin;
    const sl_runtime_t *rt;
    sl_transform_def_t *transforms;
    size_t ntransforms;
    sl_converter_t key_conv, value_conv;
    int tasks_max;
    int64_t flush_interval_ms;
    int tolerate_errors;  /* errors.tolerance=all */
    /* errors.retry.timeout: how long a RETRIABLE put()/poll() is retried
     * before the task fails; -1 = forever (the default, as Kafka Connect
     * retries a RetriableException from put/poll) */
    int64_t retry_timeout_ms;
    int64_t retry_delay_max_ms; /* errors.retry.delay.max.ms (60000) */
    char *dlq_topic;      /* errors.deadletterqueue.topic.name, or NULL */
    int64_t latest_max;   /* latest.records.max: keys kept for GET .../latest; 0 = off */
    atomic_int stopping;
    atomic_int draining; /* sinks: stop once caught up with the log end */
    sl_runner_t *runners;
    /* per task: whether it runs on this worker (distributed mode spreads a
     * connector's tasks over workers); NULL: every task runs here */
    unsigned char *here;
    pthread_mutex_t topics_lock;
    sl_props_t *active_topics; /* topics written or read so far (keys) */
};

/** Records that a task of c used topic (Kafka Connect's active topics). */
void sl_connector_note_topic(sl_connector_t *c, const char *topic);
/** Moves c's active topics into into (keys); thread-safe. */
void sl_connector_take_topics(sl_connector_t *c, sl_props_t *into);

/** Whether a runner should leave its loop: its connector or it alone is
 *  being stopped. */
static inline int sl_runner_stopping(const sl_runner_t *r) {
    return atomic_load(&r->conn->stopping) || atomic_load(&r->stop);
}

/** Stops (if running) and joins task id, then starts it again with a fresh
 *  state; -1 with err when the thread cannot be created. */
int sl_connector_restart_task(sl_connector_t *c, int id, char *err, size_t errlen);

/** Whether task id runs on this worker (c->here). */
static inline int sl_connector_task_here(const sl_connector_t *c, int id) {
    return !c->here || c->here[id];
}

/** Sets which tasks run on this worker (n entries of here; tasks beyond n
 *  do not run; NULL: every one). Before sl_connector_start() it only
 *  records them; afterwards it also starts the tasks gained and stops (flush,
 *  commit, join) the tasks lost. -1 with err when a thread cannot be made. */
int sl_connector_set_here(sl_connector_t *c, const unsigned char *here, int n, char *err,
                          size_t errlen);

/** raw: the config as submitted; providers are resolved here, and values
 *  they produced never appear in err. */
sl_connector_t *sl_connector_new(const sl_runtime_t *rt, const char *name, const sl_props_t *raw,
                                 char *err, size_t errlen);
int sl_connector_start(sl_connector_t *c, char *err, size_t errlen);
void sl_connector_stop(sl_connector_t *c);
/** Sinks: lets tasks run until they have put everything up to the end of
 *  their partitions (or timeout_ms passes), then stops them. */
void sl_connector_drain(sl_connector_t *c, int64_t timeout_ms);
void sl_connector_free(sl_connector_t *c);
const char *sl_task_state_name(sl_task_state_t s);

/** Validates a resolved config without creating anything; reports each
 *  problem ("key: reason") to on_error, with the values in hide (may be
 *  NULL) masked; returns the number of problems. */
int sl_connector_validate(const sl_runtime_t *rt, const sl_props_t *config, const sl_props_t *hide,
                          sl_config_error_fn on_error, void *arg);

/* Runner entry points (source_runner.c, sink_runner.c). */
void *sl_source_runner_main(void *runner);
void *sl_sink_runner_main(void *runner);

/* --- transform chains (chain.c) ------------------------------------------ */

/** A task's chain of transform instances, ending in a final emit target. */
typedef struct sl_chain {
    sluice_task_t **stages;
    size_t n;
    sl_emit_fn final;
    void *final_arg;
} sl_chain_t;

/** Creates and starts one instance of each transform for task id. */
int sl_chain_init(sl_chain_t *ch, const sl_connector_t *c, int id, sl_emit_fn final,
                  void *final_arg, sl_dead_letter_fn dlq, void *dlq_arg, char *err, size_t errlen);
void sl_chain_destroy(sl_chain_t *ch);
/** Pushes rec (ownership taken) through the chain into the final target. */
sluice_err_t sl_chain_push(sl_chain_t *ch, sluice_record_t *rec);
/** Runs due timers of every stage; returns ms until the next is due. */
int sl_chain_run_timers(sl_chain_t *ch, int max_ms);
void sl_chain_open(sl_chain_t *ch, sluice_topic_partition_t *parts, size_t n);
void sl_chain_close(sl_chain_t *ch, const sluice_topic_partition_t *parts, size_t n);
/** Each stage may lower the offsets (pre_commit). */
void sl_chain_pre_commit(sl_chain_t *ch, sluice_topic_partition_t *offsets, size_t n);
/** What every stage's partition_at_end() asks (a sink runner's consumer). */
void sl_chain_set_at_end(sl_chain_t *ch, sl_at_end_fn fn, void *arg);

#endif
