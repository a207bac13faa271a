/* task.c - see task.h. */
#include "task.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t sl_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sl_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

sluice_task_t *sl_task_new(const sl_services_t *svc, const char *connector, const char *alias,
                           const sl_plugin_t *plugin, sl_props_t *config, int id, int count) {
    sluice_task_t *t = calloc(1, sizeof(*t));
    if (!t || !(t->connector = strdup(connector))) {
        free(t);
        sl_props_free(config);
        return NULL;
    }
    t->svc = svc;
    t->plugin = plugin;
    t->config = config;
    t->id = id;
    t->count = count;
    if (alias)
        snprintf(t->tag, sizeof(t->tag), "%s/%d/%s", connector, id, alias);
    else
        snprintf(t->tag, sizeof(t->tag), "%s/%d", connector, id);
    t->m_errors = sl_metrics_get(svc->metrics, SL_METRIC_COUNTER, "record_errors_total",
                                 "records that failed conversion or processing", connector, id);
    return t;
}

static void plugin_stop(sluice_task_t *t) {
    const sluice_plugin_t *d = t->plugin->desc;
    switch (d->kind) {
    case SLUICE_PLUGIN_SOURCE: d->source->stop(t->state, t); break;
    case SLUICE_PLUGIN_SINK: d->sink->stop(t->state, t); break;
    case SLUICE_PLUGIN_TRANSFORM: d->transform->stop(t->state, t); break;
    }
}

void sl_task_free(sluice_task_t *t) {
    if (!t) return;
    if (t->started) plugin_stop(t);
    for (sluice_timer_t *tm = t->timers, *next; tm; tm = next) {
        next = tm->next;
        free(tm);
    }
    sl_props_free(t->config);
    free(t->connector);
    free(t);
}

sluice_err_t sl_task_start(sluice_task_t *t) {
    const sluice_plugin_t *d = t->plugin->desc;
    t->error[0] = '\0';
    sluice_err_t rc;
    switch (d->kind) {
    case SLUICE_PLUGIN_SOURCE: rc = d->source->start(t, &t->state); break;
    case SLUICE_PLUGIN_SINK: rc = d->sink->start(t, &t->state); break;
    default: rc = d->transform->start(t, &t->state); break;
    }
    if (rc == SLUICE_OK) {
        t->started = 1;
    } else if (!t->error[0]) {
        snprintf(t->error, sizeof(t->error), "%s start failed: %s", d->name,
                 sl_host_api()->err2str(rc));
    }
    return rc;
}

int sl_task_run_timers(sluice_task_t *t, int64_t now_ms, int max_ms) {
    /* Stopped timers stay allocated until the task is freed: the header
     * promises handles stay valid until stop() returns. */
    for (sluice_timer_t *tm = t->timers; tm; tm = tm->next) {
        if (!tm->stopped && tm->due_ms <= now_ms) {
            tm->due_ms = now_ms + tm->interval_ms;
            tm->fn(tm->arg, t); /* may start or stop timers (new ones go first) */
        }
    }
    int64_t next = now_ms + max_ms;
    for (sluice_timer_t *tm = t->timers; tm; tm = tm->next)
        if (!tm->stopped && tm->due_ms < next) next = tm->due_ms;
    int64_t wait = next - now_ms;
    return wait < 0 ? 0 : (int)wait;
}
