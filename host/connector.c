/* connector.c - see connector.h. */
#include "latest.h"
#include "connector.h"
#include "kafka.h"
#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sl_connector_note_topic(sl_connector_t *c, const char *topic) {
    pthread_mutex_lock(&c->topics_lock);
    if (!sl_props_get(c->active_topics, topic)) sl_props_set(c->active_topics, topic, "");
    pthread_mutex_unlock(&c->topics_lock);
}

void sl_connector_take_topics(sl_connector_t *c, sl_props_t *into) {
    pthread_mutex_lock(&c->topics_lock);
    for (size_t i = 0; i < sl_props_count(c->active_topics); i++)
        sl_props_set(into, sl_props_key_at(c->active_topics, i), "");
    sl_props_free(c->active_topics);
    c->active_topics = sl_props_new();
    pthread_mutex_unlock(&c->topics_lock);
}

const char *sl_task_state_name(sl_task_state_t s) {
    switch (s) {
    case SL_TASK_UNASSIGNED: return "UNASSIGNED";
    case SL_TASK_RUNNING: return "RUNNING";
    case SL_TASK_FAILED: return "FAILED";
    case SL_TASK_STOPPED: return "STOPPED";
    }
    return "UNKNOWN";
}

typedef struct problems {
    sl_config_error_fn fn;
    void *arg;
    const char *prefix; /* "transforms.w." while validating a transform */
    int count;
    const sl_props_t *hide; /* values that came from config providers */
} problems_t;

/* Replaces, in place, every occurrence of a hidden value in msg. */
static void hide_values(char *msg, size_t cap, const sl_props_t *hide) {
    static const char mask[] = "[hidden]";
    for (size_t i = 0; hide && i < sl_props_count(hide); i++) {
        const char *v = sl_props_value_at(hide, i);
        size_t vlen = strlen(v), mlen = sizeof(mask) - 1;
        if (vlen == 0) continue;
        char *hit, *from = msg;
        while ((hit = strstr(from, v)) != NULL) {
            size_t tail = strlen(hit + vlen);
            if ((size_t)(hit - msg) + mlen + tail + 1 > cap) { /* no room: cut the tail */
                *hit = '\0';
                break;
            }
            memmove(hit + mlen, hit + vlen, tail + 1);
            memcpy(hit, mask, mlen);
            from = hit + mlen;
        }
    }
}

static void problem(problems_t *p, const char *key, const char *fmt, ...) SLUICE_PRINTF(3, 4);
static void problem(problems_t *p, const char *key, const char *fmt, ...) {
    char msg[512], full[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    hide_values(msg, sizeof(msg), p->hide);
    snprintf(full, sizeof(full), "%s%s", p->prefix ? p->prefix : "", key);
    p->count++;
    if (p->fn) p->fn(p->arg, full, msg);
}

static void on_def_error(void *arg, const char *key, const char *message) {
    problem(arg, key, "%s", message);
}

static void validate_plugin_config(const sl_plugin_t *pl, const sl_props_t *cfg, problems_t *p) {
    sl_config_validate(cfg, pl->desc->config, pl->desc->config_def_size, on_def_error, p);
}

static void validate_int_key(const sl_props_t *cfg, const char *key, int64_t min, int64_t max,
                             problems_t *p) {
    const char *v = sl_props_get(cfg, key);
    int64_t n;
    if (!v) return;
    if (sl_parse_int64(v, &n) != 0)
        problem(p, key, "'%s' is not an integer", v);
    else if (n < min || n > max)
        problem(p, key, "value %lld is out of range [%lld, %lld]", (long long)n, (long long)min,
                (long long)max);
}

/* Each alias of "transforms" must name a transform plugin with a valid
 * config under "transforms.<alias>.". */
static void validate_transforms(const sl_runtime_t *rt, const sl_props_t *cfg, problems_t *p) {
    const char *list = sl_props_get(cfg, "transforms");
    if (!list || !*list) return;
    char *copy = strdup(list), *save = NULL;
    for (char *a = strtok_r(copy, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
        while (*a == ' ') a++;
        char prefix[256], key[300];
        snprintf(prefix, sizeof(prefix), "transforms.%s.", a);
        snprintf(key, sizeof(key), "%stype", prefix);
        const char *type = sl_props_get(cfg, key);
        const sl_plugin_t *pl = type ? sl_registry_find(rt->registry, type) : NULL;
        if (!type || !*type) {
            problem(p, key, "missing: transform '%s' needs a type", a);
        } else if (!pl) {
            problem(p, key, "no transform plugin named '%s' on plugin.path", type);
        } else if (pl->desc->kind != SLUICE_PLUGIN_TRANSFORM) {
            problem(p, key, "plugin '%s' is a %s, not a transform", type,
                    sl_plugin_kind_name(pl->desc->kind));
        } else {
            sl_props_t *sub = sl_props_sub(cfg, prefix);
            problems_t sp = {p->fn, p->arg, prefix, 0, p->hide};
            if (sub) validate_plugin_config(pl, sub, &sp);
            p->count += sp.count;
            sl_props_free(sub);
        }
    }
    free(copy);
}

int sl_connector_validate(const sl_runtime_t *rt, const sl_props_t *cfg, const sl_props_t *hide,
                          sl_config_error_fn on_error, void *arg) {
    problems_t p = {on_error, arg, NULL, 0, hide};
    const char *cls = sl_props_get(cfg, "connector.class");
    const sl_plugin_t *pl = cls ? sl_registry_find(rt->registry, cls) : NULL;
    if (!cls || !*cls) {
        problem(&p, "connector.class", "missing required value");
    } else if (!pl) {
        problem(&p, "connector.class", "no plugin named '%s' on plugin.path", cls);
    } else if (pl->desc->kind == SLUICE_PLUGIN_TRANSFORM) {
        problem(&p, "connector.class", "plugin '%s' is a transform; use it in \"transforms\"", cls);
    } else {
        validate_plugin_config(pl, cfg, &p);
        if (pl->desc->kind == SLUICE_PLUGIN_SINK && !sl_props_get(cfg, "topics") &&
            !sl_props_get(cfg, "topics.regex"))
            problem(&p, "topics", "a sink connector needs \"topics\" (or \"topics.regex\")");
    }
    validate_int_key(cfg, "tasks.max", 1, 1024, &p);
    validate_int_key(cfg, "offset.flush.interval.ms", 1, 86400000, &p);
    validate_int_key(cfg, "errors.retry.timeout", -1, INT64_MAX / 2, &p);
    validate_int_key(cfg, "errors.retry.delay.max.ms", 1, 86400000, &p);
    validate_int_key(cfg, "latest.records.max", 0, 100000, &p);
    const char *tol = sl_props_get(cfg, "errors.tolerance");
    if (tol && strcmp(tol, "none") != 0 && strcmp(tol, "all") != 0)
        problem(&p, "errors.tolerance", "'%s' is not one of none|all", tol);
    validate_transforms(rt, cfg, &p);
    return p.count;
}

/* Collects validation problems into one message. */
typedef struct collect {
    char *buf;
    size_t len, used;
} collect_t;

static void collect_error(void *arg, const char *key, const char *message) {
    collect_t *c = arg;
    int n = snprintf(c->buf + c->used, c->len - c->used, "%s'%s': %s", c->used ? "; " : "", key,
                     message);
    if (n > 0) c->used += (size_t)n < c->len - c->used ? (size_t)n : c->len - c->used - 1;
}

static int build_transforms(sl_connector_t *c, char *err, size_t errlen) {
    const char *list = sl_props_get(c->config, "transforms");
    if (!list || !*list) return 0;
    char *copy = strdup(list), *save = NULL;
    size_t cap = 1;
    for (const char *s = list; *s; s++) cap += *s == ',';
    c->transforms = calloc(cap, sizeof(*c->transforms));
    if (!copy || !c->transforms) {
        free(copy);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (char *a = strtok_r(copy, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
        while (*a == ' ') a++;
        char prefix[256];
        snprintf(prefix, sizeof(prefix), "transforms.%s.", a);
        sl_props_t *sub = sl_props_sub(c->config, prefix);
        sl_transform_def_t *d = &c->transforms[c->ntransforms++];
        d->alias = strdup(a);
        d->config = sub;
        d->plugin = sub ? sl_registry_find(c->rt->registry, sl_props_get(sub, "type")) : NULL;
    }
    free(copy);
    return 0;
}

/* Registers every SECRET value with the log masker. */
static void register_secrets(const sl_plugin_t *pl, const sl_props_t *cfg) {
    const char *p = (const char *)pl->desc->config;
    for (; p && ((const sluice_config_def_t *)p)->name; p += pl->desc->config_def_size) {
        const sluice_config_def_t *d = (const sluice_config_def_t *)p;
        if (d->flags & SLUICE_CONFIG_SECRET) sl_log_add_secret(sl_props_get(cfg, d->name));
    }
}

/* Resolves providers in a copy of raw; *hide gets every key whose value
 * came from a provider, with its resolved value (to keep out of messages). */
static sl_props_t *resolve(const sl_props_t *raw, sl_props_t **hide, char *err, size_t errlen) {
    sl_props_t *cfg = sl_props_dup(raw);
    *hide = sl_props_new();
    if (!cfg || !*hide || sl_props_resolve(cfg, err, errlen) != 0) {
        if (!cfg || !*hide) snprintf(err, errlen, "out of memory");
        sl_props_free(cfg);
        sl_props_free(*hide);
        *hide = NULL;
        return NULL;
    }
    for (size_t i = 0; i < sl_props_count(raw); i++)
        if (strstr(sl_props_value_at(raw, i), "${"))
            sl_props_set(*hide, sl_props_key_at(raw, i), sl_props_get(cfg, sl_props_key_at(raw, i)));
    return cfg;
}

sl_connector_t *sl_connector_new(const sl_runtime_t *rt, const char *name, const sl_props_t *raw,
                                 char *err, size_t errlen) {
    collect_t col = {err, errlen, 0};
    err[0] = '\0';
    sl_props_t *hide = NULL;
    sl_props_t *config = resolve(raw, &hide, err, errlen);
    if (!config) return NULL;
    int problems = sl_connector_validate(rt, config, hide, collect_error, &col);
    sl_props_free(hide);
    sl_connector_t *c = problems ? NULL : calloc(1, sizeof(*c));
    if (!c || !(c->name = strdup(name)) || !(c->raw_config = sl_props_dup(raw))) {
        if (!problems) snprintf(err, errlen, "out of memory");
        sl_props_free(config);
        sl_connector_free(c);
        return NULL;
    }
    c->config = config;
    c->rt = rt;
    pthread_mutex_init(&c->topics_lock, NULL);
    c->active_topics = sl_props_new();
    c->plugin = sl_registry_find(rt->registry, sl_props_get(config, "connector.class"));
    int64_t n = 1;
    const char *v = sl_props_get(config, "tasks.max");
    if (v) sl_parse_int64(v, &n);
    c->tasks_max = (int)n;
    c->flush_interval_ms = 10000;
    v = sl_props_get(config, "offset.flush.interval.ms");
    if (!v) v = sl_props_get(rt->worker, "offset.flush.interval.ms");
    if (v) sl_parse_int64(v, &c->flush_interval_ms);
    v = sl_props_get(config, "errors.tolerance");
    c->tolerate_errors = v && strcmp(v, "all") == 0;
    c->retry_timeout_ms = -1;
    if ((v = sl_props_get(config, "errors.retry.timeout"))) sl_parse_int64(v, &c->retry_timeout_ms);
    c->retry_delay_max_ms = 60000;
    if ((v = sl_props_get(config, "errors.retry.delay.max.ms")))
        sl_parse_int64(v, &c->retry_delay_max_ms);
    v = sl_props_get(config, "errors.deadletterqueue.topic.name");
    if (v && *v) c->dlq_topic = strdup(v);
    if ((v = sl_props_get(config, "latest.records.max"))) sl_parse_int64(v, &c->latest_max);
    register_secrets(c->plugin, config);
    if (build_transforms(c, err, errlen) != 0) goto fail;
    for (size_t i = 0; i < c->ntransforms; i++)
        register_secrets(c->transforms[i].plugin, c->transforms[i].config);
    const char *def_value = "json";
    if (sl_converter_init(&c->key_conv, "key.converter", config, rt->worker, "string",
                          rt->svc.schemas, err, errlen) != 0 ||
        sl_converter_init(&c->value_conv, "value.converter", config, rt->worker, def_value,
                          rt->svc.schemas, err, errlen) != 0)
        goto fail;
    return c;
fail:
    sl_connector_free(c);
    return NULL;
}

static int spawn_runner(sl_connector_t *c, int i, char *err, size_t errlen) {
    sl_runner_t *r = &c->runners[i];
    r->conn = c;
    r->id = i;
    r->trace[0] = '\0';
    atomic_store(&r->stop, 0);
    atomic_store(&r->state, SL_TASK_UNASSIGNED);
    void *(*main_fn)(void *) = c->plugin->desc->kind == SLUICE_PLUGIN_SOURCE
                                   ? sl_source_runner_main
                                   : sl_sink_runner_main;
    if (pthread_create(&r->thread, NULL, main_fn, r) != 0) {
        snprintf(err, errlen, "cannot start task %d: thread creation failed", i);
        return -1;
    }
    r->thread_started = 1;
    return 0;
}

static void stop_runner(sl_runner_t *r);

int sl_connector_restart_task(sl_connector_t *c, int id, char *err, size_t errlen) {
    sl_runner_t *r = &c->runners[id];
    stop_runner(r);
    SL_INFO(c->name, "restarting task %d", id);
    return spawn_runner(c, id, err, errlen);
}

static void stop_runner(sl_runner_t *r) {
    if (!r->thread_started) return;
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    r->thread_started = 0;
}

int sl_connector_start(sl_connector_t *c, char *err, size_t errlen) {
    c->runners = calloc((size_t)c->tasks_max, sizeof(*c->runners));
    if (!c->runners) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int n = 0;
    for (int i = 0; i < c->tasks_max; i++) {
        c->runners[i].conn = c;
        c->runners[i].id = i;
        if (!sl_connector_task_here(c, i)) continue;
        if (spawn_runner(c, i, err, errlen) != 0) return -1;
        n++;
    }
    if (n == c->tasks_max)
        SL_INFO(c->name, "started %d %s task(s) of plugin %s %s", n,
                sl_plugin_kind_name(c->plugin->desc->kind), c->plugin->desc->name,
                c->plugin->desc->version);
    else
        SL_INFO(c->name, "started %d of %d %s task(s) of plugin %s %s (the others run on other workers)",
                n, c->tasks_max, sl_plugin_kind_name(c->plugin->desc->kind), c->plugin->desc->name,
                c->plugin->desc->version);
    return 0;
}

int sl_connector_set_here(sl_connector_t *c, const unsigned char *here, int n, char *err,
                          size_t errlen) {
    unsigned char *now = NULL;
    if (here) {
        now = calloc((size_t)c->tasks_max, 1);
        if (!now) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (int i = 0; i < c->tasks_max && i < n; i++) now[i] = here[i] != 0;
    }
    free(c->here);
    c->here = now;
    if (!c->runners) return 0; /* not started: recorded only */
    int rc = 0;
    for (int i = 0; i < c->tasks_max; i++) {
        sl_runner_t *r = &c->runners[i];
        if (!sl_connector_task_here(c, i) && r->thread_started) {
            stop_runner(r);
            atomic_store(&r->state, SL_TASK_UNASSIGNED);
            SL_INFO(c->name, "task %d stopped here (runs on another worker)", i);
        } else if (sl_connector_task_here(c, i) && !r->thread_started) {
            SL_INFO(c->name, "task %d starts here", i);
            if (spawn_runner(c, i, err, errlen) != 0) rc = -1;
        }
    }
    return rc;
}

void sl_connector_stop(sl_connector_t *c) {
    if (!c || !c->runners) return;
    atomic_store(&c->stopping, 1);
    for (int i = 0; i < c->tasks_max; i++) {
        if (!c->runners[i].thread_started) continue;
        pthread_join(c->runners[i].thread, NULL);
        c->runners[i].thread_started = 0;
    }
}

void sl_connector_drain(sl_connector_t *c, int64_t timeout_ms) {
    if (!c || !c->runners) return;
    atomic_store(&c->draining, 1);
    int64_t deadline = sl_mono_ms() + timeout_ms;
    for (;;) {
        int running = 0;
        for (int i = 0; i < c->tasks_max; i++)
            running += c->runners[i].thread_started &&
                       atomic_load(&c->runners[i].state) <= SL_TASK_RUNNING;
        if (!running) break;
        if (sl_mono_ms() >= deadline) {
            SL_WARN(c->name, "drain: not caught up after %lld ms; stopping anyway",
                    (long long)timeout_ms);
            break;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    sl_connector_stop(c);
}

void sl_connector_free(sl_connector_t *c) {
    if (!c) return;
    sl_connector_stop(c);
    if (c->rt && c->name) sl_latest_forget(c->rt->svc.latest, c->name);
    for (size_t i = 0; i < c->ntransforms; i++) {
        free(c->transforms[i].alias);
        sl_props_free(c->transforms[i].config);
    }
    free(c->transforms);
    sl_converter_destroy(&c->key_conv);
    sl_converter_destroy(&c->value_conv);
    free(c->runners);
    free(c->here);
    free(c->dlq_topic);
    sl_props_free(c->config);
    sl_props_free(c->raw_config);
    if (c->active_topics) {
        sl_props_free(c->active_topics);
        pthread_mutex_destroy(&c->topics_lock);
    }
    free(c->name);
    free(c);
}
