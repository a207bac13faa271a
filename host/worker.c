/* worker.c - see worker.h. */
#include "worker.h"
#include "kafka.h"
#include "latest.h"
#include "log.h"
#include "offset_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

struct sl_worker {
    sl_props_t *props;
    sl_runtime_t rt;
    char *bootstrap;
    char *plugin_path;
    pthread_mutex_t lock; /* conns and every connector in it */
    sl_worker_conn_t **conns;
    size_t n;
    int started;
    int64_t progress_every_ms, next_progress_ms;
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
        char text[4200], why[512];
        snprintf(text, sizeof(text), "%s\n", w->bootstrap);
        if (sl_file_write_atomic(file, text, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "config key 'embedded.bootstrap.file': %s", why);
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
    pthread_mutex_init(&w->lock, NULL);
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
    const char *lf = sl_props_get(props, "log.format");
    if (lf) {
        int f = sl_log_parse_format(lf);
        if (f < 0) {
            snprintf(err, errlen, "config key 'log.format': '%s' is not text|logfmt|json", lf);
            goto fail;
        }
        sl_log_set_format((sl_log_format_t)f);
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
    w->rt.svc.latest = sl_latest_new();
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

void sl_worker_lock(sl_worker_t *w) { pthread_mutex_lock(&w->lock); }
void sl_worker_unlock(sl_worker_t *w) { pthread_mutex_unlock(&w->lock); }
size_t sl_worker_count(const sl_worker_t *w) { return w->n; }
sl_worker_conn_t *sl_worker_at(sl_worker_t *w, size_t i) { return i < w->n ? w->conns[i] : NULL; }

sl_worker_conn_t *sl_worker_find(sl_worker_t *w, const char *name) {
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->conns[i]->name, name) == 0) return w->conns[i];
    return NULL;
}

/* Stops the running instance (tasks flush and commit) and frees it. */
static void halt(sl_worker_conn_t *e) {
    if (e->c) {
        sl_connector_stop(e->c);
        sl_connector_take_topics(e->c, e->topics);
    }
    sl_connector_free(e->c);
    e->c = NULL;
}

/* A new instance from e->raw, started; a failure leaves e->trace set. */
static void launch(sl_worker_t *w, sl_worker_conn_t *e) {
    char err[1024];
    e->trace[0] = '\0';
    e->c = sl_connector_new(&w->rt, e->name, e->raw, err, sizeof(err));
    if (e->c && (!e->here || sl_connector_set_here(e->c, e->here, e->here_n, err, sizeof(err)) == 0) &&
        sl_connector_start(e->c, err, sizeof(err)) == 0)
        return;
    snprintf(e->trace, sizeof(e->trace), "%s", err);
    SL_ERROR("worker", "connector %s failed to start: %s", e->name, err);
    halt(e);
}

static void conn_free(sl_worker_conn_t *e) {
    if (!e) return;
    halt(e);
    sl_props_free(e->raw);
    sl_props_free(e->topics);
    free(e->here);
    free(e->last_state);
    free(e->name);
    free(e);
}

/* Takes over a validated instance c as e's running one (or drops it when e
 * is not to run now). */
static int adopt(sl_worker_t *w, sl_worker_conn_t *e, sl_connector_t *c, char *err,
                 size_t errlen) {
    e->tasks_max = c->tasks_max;
    e->kind = c->plugin->desc->kind;
    int *ls = realloc(e->last_state, (size_t)c->tasks_max * sizeof(int));
    if (!ls) {
        sl_connector_free(c);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    e->last_state = ls;
    for (int t = 0; t < c->tasks_max; t++) ls[t] = -1;
    e->trace[0] = '\0';
    /* the tasks that run here, also for an instance sl_worker_start()
     * starts later */
    if (e->here && sl_connector_set_here(c, e->here, e->here_n, err, errlen) != 0) {
        sl_connector_free(c);
        return -1;
    }
    if (!w->started || e->target != SL_TARGET_RUNNING) {
        sl_connector_free(w->started ? c : NULL);
        e->c = w->started ? NULL : c;
        return 0;
    }
    e->c = c;
    if (sl_connector_start(c, err, errlen) != 0) {
        snprintf(e->trace, sizeof(e->trace), "%s", err);
        halt(e);
    }
    return 0;
}

/* e->here = a copy of here (n entries; NULL: all tasks). -1 out of memory. */
static int keep_here(sl_worker_conn_t *e, const unsigned char *here, int n) {
    unsigned char *copy = NULL;
    if (here && !(copy = malloc(n > 0 ? (size_t)n : 1))) return -1;
    if (here && n > 0) memcpy(copy, here, (size_t)n);
    free(e->here);
    e->here = copy;
    e->here_n = here ? n : 0;
    return 0;
}

int sl_worker_put_connector(sl_worker_t *w, const char *name, const sl_props_t *raw, int managed,
                            const sl_target_t *target, int *created, char *err, size_t errlen) {
    return sl_worker_put_connector_here(w, name, raw, managed, target, NULL, 0, created, err, errlen);
}

int sl_worker_put_connector_here(sl_worker_t *w, const char *name, const sl_props_t *raw,
                                 int managed, const sl_target_t *target, const unsigned char *here,
                                 int n, int *created, char *err, size_t errlen) {
    sl_connector_t *c = sl_connector_new(&w->rt, name, raw, err, errlen);
    if (!c) return -1;
    sl_props_t *copy = sl_props_dup(raw);
    pthread_mutex_lock(&w->lock);
    sl_worker_conn_t *e = sl_worker_find(w, name);
    *created = e == NULL;
    if (!e) {
        e = calloc(1, sizeof(*e));
        sl_worker_conn_t **grown = e ? realloc(w->conns, (w->n + 1) * sizeof(*grown)) : NULL;
        if (grown) w->conns = grown;
        if (!grown || !(e->name = strdup(name)) || !(e->topics = sl_props_new())) {
            pthread_mutex_unlock(&w->lock);
            conn_free(e);
            sl_connector_free(c);
            sl_props_free(copy);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        w->conns[w->n++] = e;
    } else {
        halt(e);
    }
    if (keep_here(e, here, n) != 0) {
        pthread_mutex_unlock(&w->lock);
        sl_connector_free(c);
        sl_props_free(copy);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sl_props_free(e->raw);
    e->raw = copy;
    e->managed = managed;
    if (target) e->target = *target;
    int rc = adopt(w, e, c, err, errlen);
    pthread_mutex_unlock(&w->lock);
    if (rc == 0) SL_INFO("worker", "connector %s %s", name, *created ? "created" : "reconfigured");
    return rc;
}

int sl_worker_add_connector(sl_worker_t *w, const char *name, const sl_props_t *config,
                            char *err, size_t errlen) {
    pthread_mutex_lock(&w->lock);
    int dup = sl_worker_find(w, name) != NULL;
    pthread_mutex_unlock(&w->lock);
    if (dup) {
        snprintf(err, errlen, "connector '%s' is defined twice", name);
        return -1;
    }
    int created;
    return sl_worker_put_connector(w, name, config, 0, NULL, &created, err, errlen);
}

int sl_worker_remove_connector(sl_worker_t *w, const char *name) {
    pthread_mutex_lock(&w->lock);
    size_t i = 0;
    while (i < w->n && strcmp(w->conns[i]->name, name) != 0) i++;
    sl_worker_conn_t *e = i < w->n ? w->conns[i] : NULL;
    if (e) {
        memmove(&w->conns[i], &w->conns[i + 1], (w->n - i - 1) * sizeof(*w->conns));
        w->n--;
    }
    pthread_mutex_unlock(&w->lock);
    if (!e) return -1;
    conn_free(e); /* outside the lock: its tasks may take a while to stop */
    SL_INFO("worker", "connector %s deleted", name);
    return 0;
}

int sl_worker_set_here(sl_worker_t *w, const char *name, const unsigned char *here, int n) {
    pthread_mutex_lock(&w->lock);
    sl_worker_conn_t *e = sl_worker_find(w, name);
    if (e && keep_here(e, here, n) != 0) SL_ERROR("worker", "connector %s: out of memory", name);
    if (e && e->c) {
        char err[256];
        if (sl_connector_set_here(e->c, e->here, e->here ? e->here_n : 0, err, sizeof(err)) != 0)
            SL_ERROR("worker", "connector %s: %s", name, err);
    }
    pthread_mutex_unlock(&w->lock);
    return e ? 0 : -1;
}

int sl_worker_task_here(sl_worker_t *w, const char *name, int task) {
    pthread_mutex_lock(&w->lock);
    sl_worker_conn_t *e = sl_worker_find(w, name);
    int here = e && task >= 0 && (!e->here || (task < e->here_n && e->here[task]));
    pthread_mutex_unlock(&w->lock);
    return here;
}

int sl_worker_set_target(sl_worker_t *w, const char *name, sl_target_t target) {
    static const char *const names[] = {"resumed", "paused", "stopped"};
    pthread_mutex_lock(&w->lock);
    sl_worker_conn_t *e = sl_worker_find(w, name);
    if (e && e->target != target) {
        e->target = target;
        if (target != SL_TARGET_RUNNING)
            halt(e);
        else if (w->started && !e->c)
            launch(w, e);
        SL_INFO("worker", "connector %s %s", name, names[target]);
    }
    pthread_mutex_unlock(&w->lock);
    return e ? 0 : -1;
}

/* Kafka Connect's restart: the connector (here: its instance, which has no
 * thread of its own, so only a failed one is started again) and, with
 * include_tasks, its tasks - every one, or only the FAILED ones. */
int sl_worker_restart(sl_worker_t *w, const char *name, int include_tasks, int only_failed) {
    pthread_mutex_lock(&w->lock);
    sl_worker_conn_t *e = sl_worker_find(w, name);
    if (e && w->started && e->target == SL_TARGET_RUNNING) {
        if (!e->c) {
            launch(w, e);
        } else if (include_tasks) {
            char err[256];
            for (int t = 0; t < e->c->tasks_max; t++)
                if (sl_connector_task_here(e->c, t) &&
                    (!only_failed || atomic_load(&e->c->runners[t].state) == SL_TASK_FAILED) &&
                    sl_connector_restart_task(e->c, t, err, sizeof(err)) != 0)
                    SL_ERROR("worker", "%s", err);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return e ? 0 : -1;
}

int sl_worker_restart_task(sl_worker_t *w, const char *name, int task) {
    pthread_mutex_lock(&w->lock);
    sl_worker_conn_t *e = sl_worker_find(w, name);
    int rc = !e ? -1 : task < 0 || task >= e->tasks_max ? -2 : 0;
    if (rc == 0 && e->here && (task >= e->here_n || !e->here[task])) rc = -3;
    if (rc == 0 && e->c && e->c->runners) {
        char err[256];
        if (sl_connector_restart_task(e->c, task, err, sizeof(err)) != 0)
            SL_ERROR("worker", "%s", err);
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

json_t *sl_worker_active_topics(sl_worker_t *w, sl_worker_conn_t *e, int reset) {
    (void)w;
    if (e->c) sl_connector_take_topics(e->c, e->topics);
    json_t *a = json_array();
    for (size_t i = 0; i < sl_props_count(e->topics); i++)
        json_array_append_new(a, json_string(sl_props_key_at(e->topics, i)));
    if (reset) {
        sl_props_free(e->topics);
        e->topics = sl_props_new();
    }
    return a;
}

int sl_worker_start(sl_worker_t *w, char *err, size_t errlen) {
    const char *every = sl_props_get(w->props, "status.interval.ms");
    if (every && sl_parse_int64(every, &w->progress_every_ms) != 0) w->progress_every_ms = 0;
    w->next_progress_ms = sl_mono_ms() + w->progress_every_ms;
    pthread_mutex_lock(&w->lock);
    w->started = 1;
    int rc = 0;
    for (size_t i = 0; i < w->n && rc == 0; i++) {
        sl_worker_conn_t *e = w->conns[i];
        if (e->target != SL_TARGET_RUNNING)
            halt(e);
        else if (!e->c) /* resumed (or restarted) before the start */
            launch(w, e);
        else if (sl_connector_start(e->c, err, errlen) != 0)
            rc = -1;
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

/* One line per connector: records through it and the rate since last time. */
static void report_progress(sl_worker_t *w) {
    int64_t now = sl_mono_ms();
    if (w->progress_every_ms <= 0 || now < w->next_progress_ms) return;
    double secs = (double)(now - w->next_progress_ms + w->progress_every_ms) / 1000.0;
    w->next_progress_ms = now + w->progress_every_ms;
    for (size_t i = 0; i < w->n; i++) {
        sl_worker_conn_t *e = w->conns[i];
        if (!e->c) continue;
        int source = e->kind == SLUICE_PLUGIN_SOURCE;
        double total = sl_metrics_sum(w->rt.svc.metrics,
                                      source ? "source_records_acked_total" : "sink_records_put_total",
                                      e->name);
        double errors = sl_metrics_sum(w->rt.svc.metrics, "record_errors_total", e->name);
        SL_INFO("progress", "%s: %.0f records %s (%.0f/s), %.0f errors", e->name, total,
                source ? "into Kafka" : "written", (total - e->last_count) / secs, errors);
        e->last_count = total;
    }
}

/* metrics.file: every metric in Prometheus text, rewritten whole (through a
 * rename, so a reader never sees half a file) at each status tick and at the
 * stop. A write failure is logged once per tick and the worker goes on. */
static void write_metrics_file(sl_worker_t *w) {
    const char *file = sl_props_get(w->props, "metrics.file");
    if (!file || !*file) return;
    char *text = NULL, why[512];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f) sl_metrics_write(w->rt.svc.metrics, f);
    int ok = f && !ferror(f);
    if (f && fclose(f) != 0) ok = 0;
    if (!ok || sl_file_write_atomic(file, text, why, sizeof(why)) != 0)
        SL_WARN("worker", "metrics.file: cannot write %s%s%s", file, ok ? ": " : "", ok ? why : "");
    free(text);
}

void sl_worker_report(sl_worker_t *w) {
    pthread_mutex_lock(&w->lock);
    int64_t due = w->next_progress_ms;
    report_progress(w);
    if (w->next_progress_ms != due) write_metrics_file(w);
    for (size_t i = 0; i < w->n; i++) {
        sl_worker_conn_t *e = w->conns[i];
        sl_connector_t *c = e->c;
        for (int t = 0; c && c->runners && t < c->tasks_max; t++) {
            int st = atomic_load(&c->runners[t].state);
            if (e->last_state[t] == st) continue;
            e->last_state[t] = st;
            if (st == SL_TASK_FAILED)
                SL_ERROR("worker", "task %s/%d is FAILED: %s", c->name, t, c->runners[t].trace);
            else
                SL_INFO("worker", "task %s/%d is %s", c->name, t, sl_task_state_name(st));
        }
    }
    pthread_mutex_unlock(&w->lock);
}

void sl_worker_stop(sl_worker_t *w) {
    /* Sources first so their last records reach Kafka before sinks leave.
     * With the in-process broker the log dies with the worker, so sinks
     * first drain what the sources wrote. */
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->n; i++)
        if (w->conns[i]->c && w->conns[i]->kind == SLUICE_PLUGIN_SOURCE)
            sl_connector_stop(w->conns[i]->c);
    for (size_t i = 0; i < w->n; i++) {
        sl_connector_t *c = w->conns[i]->c;
        if (!c || w->conns[i]->kind == SLUICE_PLUGIN_SOURCE) continue;
        if (w->rt.embedded)
            sl_connector_drain(c, 30000);
        else
            sl_connector_stop(c);
    }
    pthread_mutex_unlock(&w->lock);
}

void sl_worker_free(sl_worker_t *w) {
    if (!w) return;
    sl_worker_stop(w);
    if (w->started) write_metrics_file(w); /* not a dry run */
    for (size_t i = 0; i < w->n; i++) conn_free(w->conns[i]);
    free(w->conns);
    sl_registry_free(w->rt.registry);
    sl_offset_store_free(w->rt.svc.offsets);
    sl_schemas_free(w->rt.svc.schemas);
    sl_metrics_free(w->rt.svc.metrics);
    sl_latest_free(w->rt.svc.latest);
    sl_embedded_stop(w->rt.embedded);
    free(w->bootstrap);
    free(w->plugin_path);
    sl_props_free(w->props);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
