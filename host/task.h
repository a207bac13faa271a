/*
 * task.h - struct sluice_task: one instance of a plugin running for a
 * connector (the connector's source or sink task, or one transform of its
 * chain), and the host side of what the plugin reaches through the
 * host-services table: config view, emit target, timers, error text.
 *
 * A task is created and driven by one runner thread (source_runner.c,
 * sink_runner.c); nothing in it is locked.
 */
#ifndef SLUICE_HOST_TASK_H
#define SLUICE_HOST_TASK_H

#include <sluice/plugin.h>
#include "config.h"
#include "loader.h"
#include "metrics.h"
#include "schemas.h"

/** Shared, thread-safe worker services a task uses. Owned by the worker. */
typedef struct sl_services {
    sl_metrics_t *metrics;
    sl_schemas_t *schemas;
    struct sl_offset_store *offsets; /* source offsets; may be NULL */
    struct sl_latest *latest;        /* latest sink records per key; may be NULL */
} sl_services_t;

/** Where a task's emit() goes: the next transform, or the runner's sink. */
typedef sluice_err_t (*sl_emit_fn)(void *arg, sluice_task_t *from, sluice_record_t *rec);
/** Answers partition_at_end() for a task (see the ABI); 1, 0 or -1. */
typedef int (*sl_at_end_fn)(void *arg, const char *topic, int32_t partition);
/** Where a task's dead_letter() goes. */
typedef sluice_err_t (*sl_dead_letter_fn)(void *arg, sluice_task_t *from,
                                          const sluice_record_t *rec, sluice_err_t err,
                                          const char *reason);

struct sluice_timer {
    int64_t interval_ms, due_ms;
    sluice_timer_fn fn;
    void *arg;
    int stopped;
    struct sluice_timer *next;
};

struct sluice_task {
    const sl_services_t *svc;
    char *connector;          /* owned */
    const sl_plugin_t *plugin; /* owned by the registry */
    sl_props_t *config;       /* owned: this plugin's config */
    int id, count;
    void *state;              /* the plugin's */
    int started;
    char tag[192];            /* "connector/task[/alias]" for logs */

    sl_emit_fn emit;
    void *emit_arg;
    sl_dead_letter_fn dead_letter;
    void *dead_letter_arg;
    sl_at_end_fn at_end; /* NULL: partition_at_end() cannot tell (-1) */
    void *at_end_arg;
    const sluice_record_t *input; /* record being applied, for lineage */

    sluice_timer_t *timers;
    char error[1024];
    sluice_metric_t *m_errors; /* records that failed or went to the DLQ */
};

/** A task of plugin for connector; config is taken (owned by the task). */
sluice_task_t *sl_task_new(const sl_services_t *svc, const char *connector, const char *alias,
                           const sl_plugin_t *plugin, sl_props_t *config, int id, int count);
/** Stops the plugin (if started), frees timers and the task. */
void sl_task_free(sluice_task_t *t);

/** Runs the plugin's start(); on failure returns its error with the
 *  plugin's message (set_error) or a default in t->error. */
sluice_err_t sl_task_start(sluice_task_t *t);

/** Runs every due timer; returns ms until the next one is due (or max_ms). */
int sl_task_run_timers(sluice_task_t *t, int64_t now_ms, int max_ms);

/** The table handed to plugins (static, immutable). */
const sluice_host_api_t *sl_host_api(void);

/** Wall clock in ms. */
int64_t sl_now_ms(void);
/** Monotonic clock in ms. */
int64_t sl_mono_ms(void);

#endif
