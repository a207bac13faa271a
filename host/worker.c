/* worker.c - see worker.h. */
#include "worker.h"
#include "kafka.h"
#include "log.h"
#include "offset_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sl_worker {
    sl_props_t *props;
    sl_runtime_t rt;
    char *bootstrap;
    char *plugin_path;
    sl_connector_t **conns;
    int *last_state; /* per connector x task, for sl_worker_report */
    size_t n;
    int64_t progress_every_ms, next_progress_ms;
    double *last_counts; /* per connector, for rates */
};

char *sl_default_plugin_path(const char *exe_dir) {
    size_t len = 2 * strlen(exe_dir) + 64;
    char *p = malloc(len), build[4096], installed[4096];
    if (!p) return NULL;
    snprintf(build, sizeof(build), "%s/plugins", exe_dir);
    snprintf(installed, sizeof(installed), "%s/../lib/sluice/plugins", exe_dir);
    int has_build = access(build, R_OK) == 0, has_installed = access(installed, R_OK) == 0;
    snprintf(p, len, "%s%s%s", has_build || !has_installed ? build : "",
             has_build && has_installed ? "," : "", has_installed ? installed : "");
    return p;
}

static int start_embedded(sl_worker_t *w, char *err, size_t errlen) {
    int64_t brokers = 3;
    const char *v = sl_props_get(w->props, "embedded.brokers");
    if (v && (sl_parse_int64(v, &brokers) != 0 || brokers < 1 || brokers > 16)) {
        snprintf(err, errlen, "config key 'embedded.brokers': '%s' is not 1..16", v);
        return -1;
    }
    w->rt.embedded = sl_embedded_start((int)brokers, err, errlen);
    if (!w->rt.embedded) return -1;
    w->bootstrap = strdup(sl_embedded_bootstraps(w->rt.embedded));
    SL_INFO("worker", "embedded Kafka (%d mock brokers) at %s", (int)brokers, w->bootstrap);
    const char *file = sl_props_get(w->props, "embedded.bootstrap.file");
    if (file && *file) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", file);
        FILE *f = fopen(tmp, "w");
        int ok = f && fprintf(f, "%s\n", w->bootstrap) > 0;
        if (f && fclose(f) != 0) ok = 0;
        if (!ok || rename(tmp, file) != 0) {
            snprintf(err, errlen, "config key 'embedded.bootstrap.file': cannot write %s", file);
            return -1;
        }
    }
    /* Settings that make group rebalances take seconds, not minutes, on the
     * mock cluster (see docs); a worker config may still override them. */
    static const char *const fast[][2] = {{"consumer.session.timeout.ms", "6000"},
                                          {"consumer.heartbeat.interval.ms", "500"},
                                          {"consumer.max.poll.interval.ms", "10000"}};
    for (size_t i = 0; i < sizeof(fast) / sizeof(fast[0]); i++)
        if (!sl_props_get(w->props, fast[i][0])) sl_props_set(w->props, fast[i][0], fast[i][1]);
    return 0;
}

static void refusal(void *arg, const char *path, const char *reason) {
    (void)arg;
    SL_ERROR("loader", "plugin %s refused: %s", path, reason);
}

sl_worker_t *sl_worker_new(sl_props_t *props, const char *exe_dir, int dry_run, char *err,
                           size_t errlen) {
    sl_worker_t *w = calloc(1, sizeof(*w));
    if (!w) {
        sl_props_free(props);
        return NULL;
    }
    w->props = props;
    w->rt.worker = props;
    const char *lvl = sl_props_get(props, "log.level");
    if (lvl) {
        int l = sl_log_parse_level(lvl);
        if (l < 0) {
            snprintf(err, errlen, "config key 'log.level': '%s' is not error|warn|info|debug", lvl);
            goto fail;
        }
        sl_log_set_level((sluice_log_level_t)l);
    }
    const char *bs = sl_props_get(props, "bootstrap.servers");
    if (!bs || !*bs) {
        snprintf(err, errlen, "config key 'bootstrap.servers': missing (a broker list, or \"embedded\")");
        goto fail;
    }
    if (strcmp(bs, "embedded") == 0 && dry_run) {
        w->bootstrap = strdup("embedded (not started: dry run)");
    } else if (strcmp(bs, "embedded") == 0) {
        if (start_embedded(w, err, errlen) != 0) goto fail;
    } else {
        w->bootstrap = strdup(bs);
    }
    w->rt.bootstrap = w->bootstrap;
    const char *pp = sl_props_get(props, "plugin.path");
    w->plugin_path = pp ? strdup(pp) : sl_default_plugin_path(exe_dir);
    w->rt.svc.metrics = sl_metrics_new();
    const char *sp = sl_props_get(props, "schemas.path");
    w->rt.svc.schemas = sl_schemas_new(sp ? sp : "schemas");
    const char *of = sl_props_get(props, "offset.storage.file.filename");
    w->rt.svc.offsets = sl_offset_store_open(of, err, errlen);
    if (!w->rt.svc.offsets) goto fail;
    w->rt.registry = sl_registry_scan(w->plugin_path, sl_host_api(), refusal, NULL);
    SL_INFO("worker", "%zu plugin(s) loaded from %s", sl_registry_count(w->rt.registry),
            w->plugin_path);
    return w;
fail:
    sl_worker_free(w);
    return NULL;
}

const sl_runtime_t *sl_worker_runtime(const sl_worker_t *w) { return &w->rt; }

int sl_worker_add_connector(sl_worker_t *w, const char *name, const sl_props_t *config,
                            char *err, size_t errlen) {
    for (size_t i = 0; i < w->n; i++) {
        if (strcmp(w->conns[i]->name, name) == 0) {
            snprintf(err, errlen, "connector '%s' is defined twice", name);
            return -1;
        }
    }
    sl_connector_t *c = sl_connector_new(&w->rt, name, config, err, errlen);
    if (!c) return -1;
    sl_connector_t **grown = realloc(w->conns, (w->n + 1) * sizeof(*grown));
    if (!grown) {
        sl_connector_free(c);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    w->conns = grown;
    w->conns[w->n++] = c;
    return 0;
}

int sl_worker_start(sl_worker_t *w, char *err, size_t errlen) {
    size_t total = 0;
    for (size_t i = 0; i < w->n; i++) total += (size_t)w->conns[i]->tasks_max;
    w->last_state = calloc(total ? total : 1, sizeof(int));
    w->last_counts = calloc(w->n ? w->n : 1, sizeof(double));
    const char *every = sl_props_get(w->props, "status.interval.ms");
    if (every && sl_parse_int64(every, &w->progress_every_ms) != 0) w->progress_every_ms = 0;
    w->next_progress_ms = sl_mono_ms() + w->progress_every_ms;
    for (size_t i = 0; i < w->n; i++)
        if (sl_connector_start(w->conns[i], err, errlen) != 0) return -1;
    return 0;
}

/* One line per connector: records through it and the rate since last time. */
static void report_progress(sl_worker_t *w) {
    int64_t now = sl_mono_ms();
    if (w->progress_every_ms <= 0 || now < w->next_progress_ms || !w->last_counts) return;
    double secs = (double)(now - w->next_progress_ms + w->progress_every_ms) / 1000.0;
    w->next_progress_ms = now + w->progress_every_ms;
    for (size_t i = 0; i < w->n; i++) {
        sl_connector_t *c = w->conns[i];
        int source = c->plugin->desc->kind == SLUICE_PLUGIN_SOURCE;
        double total = sl_metrics_sum(w->rt.svc.metrics,
                                      source ? "source_records_acked_total" : "sink_records_put_total",
                                      c->name);
        double errors = sl_metrics_sum(w->rt.svc.metrics, "record_errors_total", c->name);
        SL_INFO("progress", "%s: %.0f records %s (%.0f/s), %.0f errors", c->name, total,
                source ? "into Kafka" : "written", (total - w->last_counts[i]) / secs, errors);
        w->last_counts[i] = total;
    }
}

/* metrics.file: every metric in Prometheus text, rewritten whole (through a
 * rename, so a reader never sees half a file) at each status tick and at the
 * stop. A write failure is logged once per tick and the worker goes on. */
static void write_metrics_file(sl_worker_t *w) {
    const char *file = sl_props_get(w->props, "metrics.file");
    if (!file || !*file) return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    FILE *f = fopen(tmp, "w");
    if (f) sl_metrics_write(w->rt.svc.metrics, f);
    int ok = f && !ferror(f);
    if (f && fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, file) != 0) SL_WARN("worker", "metrics.file: cannot write %s", file);
}

void sl_worker_report(sl_worker_t *w) {
    int64_t due = w->next_progress_ms;
    report_progress(w);
    if (w->next_progress_ms != due) write_metrics_file(w);
    size_t k = 0;
    for (size_t i = 0; i < w->n; i++) {
        sl_connector_t *c = w->conns[i];
        for (int t = 0; t < c->tasks_max && c->runners; t++, k++) {
            int st = atomic_load(&c->runners[t].state);
            if (w->last_state && w->last_state[k] == st) continue;
            if (w->last_state) w->last_state[k] = st;
            if (st == SL_TASK_FAILED)
                SL_ERROR("worker", "task %s/%d is FAILED: %s", c->name, t, c->runners[t].trace);
            else
                SL_INFO("worker", "task %s/%d is %s", c->name, t, sl_task_state_name(st));
        }
    }
}

void sl_worker_stop(sl_worker_t *w) {
    /* Sources first so their last records reach Kafka before sinks leave.
     * With the in-process broker the log dies with the worker, so sinks
     * first drain what the sources wrote. */
    for (size_t i = 0; i < w->n; i++)
        if (w->conns[i]->plugin->desc->kind == SLUICE_PLUGIN_SOURCE) sl_connector_stop(w->conns[i]);
    for (size_t i = 0; i < w->n; i++) {
        if (w->conns[i]->plugin->desc->kind == SLUICE_PLUGIN_SOURCE) continue;
        if (w->rt.embedded)
            sl_connector_drain(w->conns[i], 30000);
        else
            sl_connector_stop(w->conns[i]);
    }
}

void sl_worker_free(sl_worker_t *w) {
    if (!w) return;
    sl_worker_stop(w);
    if (w->last_counts) write_metrics_file(w); /* started, not a dry run */
    for (size_t i = 0; i < w->n; i++) sl_connector_free(w->conns[i]);
    free(w->conns);
    free(w->last_state);
    free(w->last_counts);
    sl_registry_free(w->rt.registry);
    sl_offset_store_free(w->rt.svc.offsets);
    sl_schemas_free(w->rt.svc.schemas);
    sl_metrics_free(w->rt.svc.metrics);
    sl_embedded_stop(w->rt.embedded);
    free(w->bootstrap);
    free(w->plugin_path);
    sl_props_free(w->props);
    free(w);
}
