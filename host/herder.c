/* herder.c - the standalone herder (see herder.h): the REST verbs over one
 * worker, REST-submitted connectors kept in a local file. */
#include "herder.h"
#include "kafka.h"
#include "log.h"
#include "offset_store.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct standalone {
    sl_herder_t base;
    sl_worker_t *w;
    const sl_runtime_t *rt;
    char *file;     /* config.storage.file.filename, or NULL */
    pthread_mutex_t writes; /* one write verb at a time */
    json_t *stored; /* name -> {"config": {...}, "target": "RUNNING"}: what the file holds */
    char worker_id[128];
} standalone_t;

static const char *const target_names[] = {"RUNNING", "PAUSED", "STOPPED"};

int sl_herder_error(json_t **out, int status, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    *out = json_pack("{siss}", "error_code", status, "message", msg);
    return status;
}

static int not_found(json_t **out, const char *name) {
    return sl_herder_error(out, 404, "Connector %s not found", name);
}

/* --- secrets ---------------------------------------------------------------- */

static int declared_secret(const sl_plugin_t *pl, const char *key) {
    if (!pl) return 0;
    const sluice_config_def_t *d =
        sl_config_def_find(pl->desc->config, pl->desc->config_def_size, key);
    return d && (d->flags & SLUICE_CONFIG_SECRET);
}

/* Whether key of a connector config is declared SECRET by the connector's
 * plugin or, for "transforms.<alias>.<k>", by that transform's plugin. */
/* Besides, a key any installed plugin declares SECRET is hidden whatever
 * the class (a finnhub.token left in a config whose class was PATCHed to
 * another plugin, a class name with a typo), and so is a key whose last
 * component names a secret (password, passphrase, secret, token). */
static int secret_name(const char *key) {
    const char *last = strrchr(key, '.');
    last = last ? last + 1 : key;
    return strstr(last, "password") || strstr(last, "passphrase") || strstr(last, "secret") ||
           strcmp(last, "token") == 0;
}

static int is_secret(const sl_runtime_t *rt, const sl_props_t *cfg, const char *key) {
    const char *cls = sl_props_get(cfg, "connector.class");
    if (cls && declared_secret(sl_registry_find(rt->registry, cls), key)) return 1;
    if (secret_name(key)) return 1;
    for (size_t i = 0; i < sl_registry_count(rt->registry); i++)
        if (declared_secret(sl_registry_at(rt->registry, i), key)) return 1;
    if (strncmp(key, "transforms.", 11) != 0) return 0;
    const char *alias = key + 11, *dot = strchr(alias, '.');
    if (!dot) return 0;
    char type_key[512];
    snprintf(type_key, sizeof(type_key), "transforms.%.*s.type", (int)(dot - alias), alias);
    const char *type = sl_props_get(cfg, type_key);
    return type && declared_secret(sl_registry_find(rt->registry, type), dot + 1);
}

/* A config as answered: secret values as their provider reference, else
 * "[hidden]". */
static json_t *shown_value(const sl_runtime_t *rt, const sl_props_t *cfg, const char *key,
                           const char *value) {
    if (!is_secret(rt, cfg, key)) return json_string(value);
    return json_string(strstr(value, "${") ? value : "[hidden]");
}

json_t *sl_herder_shown_config(const sl_runtime_t *rt, const sl_props_t *cfg, const char *name) {
    json_t *o = json_object();
    for (size_t i = 0; i < sl_props_count(cfg); i++)
        json_object_set_new(o, sl_props_key_at(cfg, i),
                            shown_value(rt, cfg, sl_props_key_at(cfg, i), sl_props_value_at(cfg, i)));
    if (!json_object_get(o, "name")) json_object_set_new(o, "name", json_string(name));
    return o;
}

/* --- views of one connector (worker locked) ------------------------------------ */

static const char *kind_name(sluice_plugin_kind_t k) {
    return k == SLUICE_PLUGIN_SOURCE ? "source" : "sink";
}

static int task_count(const sl_worker_conn_t *e) {
    return e->target == SL_TARGET_STOPPED ? 0 : e->tasks_max;
}

static json_t *info_of(standalone_t *s, const sl_worker_conn_t *e) {
    json_t *tasks = json_array();
    for (int t = 0; t < task_count(e); t++)
        json_array_append_new(tasks, json_pack("{sssi}", "connector", e->name, "task", t));
    return json_pack("{sssoso ss}", "name", e->name, "config", sl_herder_shown_config(s->rt, e->raw, e->name),
                     "tasks", tasks, "type", kind_name(e->kind));
}

static int connector_failed(const sl_worker_conn_t *e) {
    return e->target == SL_TARGET_RUNNING && !e->c && e->trace[0];
}

static json_t *task_status_of(standalone_t *s, const sl_worker_conn_t *e, int t) {
    const char *state;
    const char *trace = NULL;
    if (e->target == SL_TARGET_PAUSED) {
        state = "PAUSED";
    } else if (!e->c || !e->c->runners) {
        state = "UNASSIGNED";
    } else {
        int st = atomic_load(&e->c->runners[t].state);
        state = sl_task_state_name(st);
        if (st == SL_TASK_FAILED) trace = e->c->runners[t].trace;
    }
    json_t *o = json_pack("{sissss}", "id", t, "state", state, "worker_id", s->worker_id);
    if (trace) json_object_set_new(o, "trace", json_string(trace));
    return o;
}

static json_t *status_of(standalone_t *s, const sl_worker_conn_t *e) {
    int failed = connector_failed(e);
    json_t *conn = json_pack("{ssss}", "state", failed ? "FAILED" : target_names[e->target],
                             "worker_id", s->worker_id);
    if (failed) json_object_set_new(conn, "trace", json_string(e->trace));
    json_t *tasks = json_array();
    for (int t = 0; !failed && t < task_count(e); t++)
        json_array_append_new(tasks, task_status_of(s, e, t));
    return json_pack("{sssososs}", "name", e->name, "connector", conn, "tasks", tasks, "type",
                     kind_name(e->kind));
}

typedef json_t *(*view_fn)(standalone_t *s, const sl_worker_conn_t *e);

/* 200 with view(connector), or 404. */
static int view(standalone_t *s, const char *name, view_fn fn, json_t **out) {
    sl_worker_lock(s->w);
    sl_worker_conn_t *e = sl_worker_find(s->w, name);
    *out = e ? fn(s, e) : NULL;
    sl_worker_unlock(s->w);
    return e ? 200 : not_found(out, name);
}

static json_t *config_of(standalone_t *s, const sl_worker_conn_t *e) {
    return sl_herder_shown_config(s->rt, e->raw, e->name);
}

static json_t *tasks_of(standalone_t *s, const sl_worker_conn_t *e) {
    json_t *a = json_array();
    for (int t = 0; t < task_count(e); t++) {
        json_t *cfg = sl_herder_shown_config(s->rt, e->raw, e->name);
        json_object_set_new(cfg, "task.id", json_sprintf("%d", t));
        json_array_append_new(a, json_pack("{s{sssi}so}", "id", "connector", e->name, "task", t,
                                           "config", cfg));
    }
    return a;
}

/* --- the storage file ------------------------------------------------------------ */

static void save(standalone_t *s) {
    if (!s->file) return;
    char *text = json_dumps(s->stored, JSON_INDENT(2) | JSON_SORT_KEYS);
    char err[512];
    if (!text || sl_file_write_atomic(s->file, text, err, sizeof(err)) != 0)
        SL_ERROR("herder", "connector configs not saved: %s", text ? err : "out of memory");
    free(text);
}

/* Records a REST-managed connector's config and target in the file. */
static void remember(standalone_t *s, const char *name) {
    sl_worker_lock(s->w);
    sl_worker_conn_t *e = sl_worker_find(s->w, name);
    if (e && e->managed)
        json_object_set_new(s->stored, name,
                            json_pack("{soss}", "config", sl_props_to_json(e->raw), "target",
                                      target_names[e->target]));
    sl_worker_unlock(s->w);
    save(s);
}

static void forget(standalone_t *s, const char *name) {
    if (json_object_del(s->stored, name) == 0) save(s);
}

static int parse_target(const char *t) {
    for (int i = 0; i < 3; i++)
        if (t && strcmp(t, target_names[i]) == 0) return i;
    return SL_TARGET_RUNNING;
}

static int load_stored(standalone_t *s, char *err, size_t errlen) {
    if (!s->file || access(s->file, F_OK) != 0) return 0;
    json_error_t je;
    json_t *root = json_load_file(s->file, 0, &je);
    if (!root || !json_is_object(root)) {
        snprintf(err, errlen, "config key 'config.storage.file.filename': %s is not a JSON object%s%s",
                 s->file, root ? "" : ": ", root ? "" : je.text);
        json_decref(root);
        return -1;
    }
    json_decref(s->stored);
    s->stored = root;
    const char *name;
    json_t *v;
    json_object_foreach(root, name, v) {
        sl_worker_lock(s->w);
        int taken = sl_worker_find(s->w, name) != NULL;
        sl_worker_unlock(s->w);
        if (taken) {
            SL_WARN("herder", "connector %s: the connector file given wins over %s", name, s->file);
            continue;
        }
        char msg[2048];
        sl_props_t *cfg = sl_props_from_json(json_object_get(v, "config"), msg, sizeof(msg));
        sl_target_t target = (sl_target_t)parse_target(json_string_value(json_object_get(v, "target")));
        int created;
        if (!cfg || sl_worker_put_connector(s->w, name, cfg, 1, &target, &created, msg,
                                            sizeof(msg)) != 0)
            SL_ERROR("herder", "stored connector %s not loaded (kept in %s): %s", name, s->file, msg);
        sl_props_free(cfg);
    }
    return 0;
}

/* --- verbs ---------------------------------------------------------------------- */

#define SELF standalone_t *s = (standalone_t *)h

static int h_list(sl_herder_t *h, int expand_status, int expand_info, json_t **out) {
    SELF;
    int expand = expand_status || expand_info;
    *out = expand ? json_object() : json_array();
    sl_worker_lock(s->w);
    for (size_t i = 0; i < sl_worker_count(s->w); i++) {
        sl_worker_conn_t *e = sl_worker_at(s->w, i);
        if (!expand) {
            json_array_append_new(*out, json_string(e->name));
            continue;
        }
        json_t *o = json_object();
        if (expand_status) json_object_set_new(o, "status", status_of(s, e));
        if (expand_info) json_object_set_new(o, "info", info_of(s, e));
        json_object_set_new(*out, e->name, o);
    }
    sl_worker_unlock(s->w);
    return 200;
}

static int valid_name(const char *name, json_t **out) {
    if (!name || !*name) return sl_herder_error(out, 400, "Connector name must not be empty"), 0;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == '/')
            return sl_herder_error(out, 400, "Connector name must not contain '/' or control characters"), 0;
    return 1;
}

/* A config read back (GET, then PUT with a change) holds "[hidden]" for
 * each secret: that means "unchanged", so the stored value stays. */
void sl_herder_keep_hidden(const sl_runtime_t *rt, sl_props_t *cfg, const sl_props_t *old) {
    for (size_t i = 0; i < sl_props_count(cfg); i++) {
        const char *k = sl_props_key_at(cfg, i), *prev = sl_props_get(old, k);
        if (prev && strcmp(sl_props_value_at(cfg, i), "[hidden]") == 0 && is_secret(rt, cfg, k))
            sl_props_set(cfg, k, prev);
    }
}

/* Creates or replaces name with config; create_only refuses an existing
 * one (409). Answers 201/200 with the info. */
static int put(standalone_t *s, const char *name, const json_t *config, int create_only,
               json_t **out) {
    if (!valid_name(name, out)) return 400;
    if (!json_is_object(config))
        return sl_herder_error(out, 400, "Connector config must be a JSON object");
    const char *cfg_name = json_string_value(json_object_get(config, "name"));
    if (cfg_name && strcmp(cfg_name, name) != 0)
        return sl_herder_error(out, 400,
                               "Connector name configuration (%s) doesn't match connector name in the URL (%s)",
                               cfg_name, name);
    char err[4096];
    sl_props_t *cfg = sl_props_from_json(config, err, sizeof(err));
    if (!cfg) return sl_herder_error(out, 400, "Connector configuration is invalid: %s", err);
    sl_props_set(cfg, "name", name);
    sl_worker_lock(s->w);
    sl_worker_conn_t *e = sl_worker_find(s->w, name);
    int exists = e != NULL;
    if (e) sl_herder_keep_hidden(s->rt, cfg, e->raw);
    sl_worker_unlock(s->w);
    if (exists && create_only) {
        sl_props_free(cfg);
        return sl_herder_error(out, 409, "Connector %s already exists", name);
    }
    int created = 0;
    int rc = sl_worker_put_connector(s->w, name, cfg, 1, NULL, &created, err, sizeof(err));
    sl_props_free(cfg);
    if (rc != 0)
        return sl_herder_error(out, 400,
                               "Connector configuration is invalid and contains the following error(s): %s",
                               err);
    remember(s, name);
    view(s, name, info_of, out);
    return created ? 201 : 200;
}

static int do_create(sl_herder_t *h, const json_t *body, json_t **out) {
    SELF;
    if (!json_is_object(body)) return sl_herder_error(out, 400, "Request body must be a JSON object");
    const json_t *name = json_object_get(body, "name");
    const json_t *config = json_object_get(body, "config");
    if (!json_is_string(name)) return sl_herder_error(out, 400, "Connector name must be a string");
    if (!config) return sl_herder_error(out, 400, "Connector config is missing");
    return put(s, json_string_value(name), config, 1, out);
}

static int h_info(sl_herder_t *h, const char *name, json_t **out) {
    return view((standalone_t *)h, name, info_of, out);
}

static int h_get_config(sl_herder_t *h, const char *name, json_t **out) {
    return view((standalone_t *)h, name, config_of, out);
}

static int do_put_config(sl_herder_t *h, const char *name, const json_t *config, json_t **out) {
    return put((standalone_t *)h, name, config, 0, out);
}

static int do_patch_config(sl_herder_t *h, const char *name, const json_t *patch, json_t **out) {
    SELF;
    if (!json_is_object(patch)) return sl_herder_error(out, 400, "Connector config must be a JSON object");
    sl_worker_lock(s->w);
    sl_worker_conn_t *e = sl_worker_find(s->w, name);
    json_t *merged = e ? sl_props_to_json(e->raw) : NULL;
    sl_worker_unlock(s->w);
    if (!merged) return not_found(out, name);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v) {
        if (json_is_null(v))
            json_object_del(merged, k);
        else
            json_object_set(merged, k, v);
    }
    int rc = put(s, name, merged, 0, out);
    json_decref(merged);
    return rc;
}

static int do_remove(sl_herder_t *h, const char *name, json_t **out) {
    SELF;
    if (sl_worker_remove_connector(s->w, name) != 0) return not_found(out, name);
    forget(s, name);
    *out = NULL;
    return 204;
}

static int do_set_target(sl_herder_t *h, const char *name, sl_target_t target, json_t **out) {
    SELF;
    if (sl_worker_set_target(s->w, name, target) != 0) return not_found(out, name);
    remember(s, name);
    *out = NULL;
    return 202;
}

static int h_status(sl_herder_t *h, const char *name, json_t **out) {
    return view((standalone_t *)h, name, status_of, out);
}

static int do_restart(sl_herder_t *h, const char *name, int include_tasks, int only_failed,
                     json_t **out) {
    SELF;
    if (sl_worker_restart(s->w, name, include_tasks, only_failed) != 0) return not_found(out, name);
    if (!include_tasks && !only_failed) {
        *out = NULL;
        return 204;
    }
    view(s, name, status_of, out);
    return 202;
}

static int h_tasks(sl_herder_t *h, const char *name, json_t **out) {
    return view((standalone_t *)h, name, tasks_of, out);
}

static int h_task_status(sl_herder_t *h, const char *name, int task, json_t **out) {
    SELF;
    sl_worker_lock(s->w);
    sl_worker_conn_t *e = sl_worker_find(s->w, name);
    int ok = e && task >= 0 && task < task_count(e);
    *out = ok ? task_status_of(s, e, task) : NULL;
    sl_worker_unlock(s->w);
    if (!e) return not_found(out, name);
    return ok ? 200 : sl_herder_error(out, 404, "No status found for task %s-%d", name, task);
}

static int do_task_restart(sl_herder_t *h, const char *name, int task, json_t **out) {
    SELF;
    int rc = sl_worker_restart_task(s->w, name, task);
    if (rc == -1) return not_found(out, name);
    if (rc == -2) return sl_herder_error(out, 404, "Task %s-%d not found", name, task);
    if (rc == -3) return sl_herder_error(out, 409, "Task %s-%d runs on another worker; retry", name, task);
    *out = NULL;
    return 204;
}

static int h_topics(sl_herder_t *h, const char *name, int reset, json_t **out) {
    SELF;
    sl_worker_lock(s->w);
    sl_worker_conn_t *e = sl_worker_find(s->w, name);
    json_t *topics = e ? sl_worker_active_topics(s->w, e, reset) : NULL;
    sl_worker_unlock(s->w);
    if (!e) return not_found(out, name);
    if (reset) {
        json_decref(topics);
        *out = NULL;
        return 202;
    }
    *out = json_pack("{s{so}}", name, "topics", topics);
    return 200;
}

/* --- offsets ----------------------------------------------------------------- */

/* What the offset verbs need of a connector, copied under the lock. */
typedef struct snap {
    sluice_plugin_kind_t kind;
    sl_target_t target;
    sl_props_t *cfg; /* resolved; the caller frees it */
} snap_t;

/* 0, or 404 / 500 with *out set. */
static int snapshot(standalone_t *s, const char *name, snap_t *sn, json_t **out) {
    sl_worker_lock(s->w);
    sl_worker_conn_t *e = sl_worker_find(s->w, name);
    if (e) *sn = (snap_t){e->kind, e->target, sl_props_dup(e->raw)};
    sl_worker_unlock(s->w);
    if (!e) return not_found(out, name);
    char err[1024];
    if (sl_props_resolve(sn->cfg, err, sizeof(err)) != 0) {
        sl_props_free(sn->cfg);
        return sl_herder_error(out, 500, "%s", err);
    }
    return 0;
}

static int h_offsets(sl_herder_t *h, const char *name, json_t **out) {
    SELF;
    snap_t sn;
    int rc = snapshot(s, name, &sn, out);
    if (rc) return rc;
    json_t *list;
    char err[1024];
    if (sn.kind == SLUICE_PLUGIN_SOURCE)
        list = sl_offset_store_list(s->rt->svc.offsets, name);
    else
        list = sl_kafka_group_offsets(s->rt->bootstrap, s->rt->worker, sn.cfg, name, err, sizeof(err));
    sl_props_free(sn.cfg);
    if (!list) return sl_herder_error(out, 500, "Failed to read the offsets of %s: %s", name, err);
    *out = json_pack("{so}", "offsets", list);
    return 200;
}

/* Applies {"offsets": [{"partition": {...}, "offset": {...}|null}]} to a
 * source connector's stored offsets. */
static int alter_source(standalone_t *s, const char *name, const json_t *list, char *err,
                        size_t errlen) {
    sl_offset_store_t *st = s->rt->svc.offsets;
    if (!list) { /* reset: every partition */
        json_t *all = sl_offset_store_list(st, name);
        size_t i;
        json_t *it;
        json_array_foreach(all, i, it) {
            char *p = json_dumps(json_object_get(it, "partition"), JSON_COMPACT);
            sl_offset_store_remove(st, name, p);
            free(p);
        }
        json_decref(all);
    }
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it) {
        json_t *part = json_object_get(it, "partition"), *off = json_object_get(it, "offset");
        if (!json_is_object(part) || !(json_is_object(off) || json_is_null(off))) {
            snprintf(err, errlen, "offsets[%zu]: \"partition\" must be an object and \"offset\" an object or null", i);
            return -1;
        }
    }
    json_array_foreach(list, i, it) {
        char *p = json_dumps(json_object_get(it, "partition"), JSON_COMPACT);
        json_t *off = json_object_get(it, "offset");
        char *o = json_is_null(off) ? NULL : json_dumps(off, JSON_COMPACT);
        if (o)
            sl_offset_store_put(st, name, p, o);
        else
            sl_offset_store_remove(st, name, p);
        free(p);
        free(o);
    }
    return sl_offset_store_flush(st, err, errlen);
}

static int do_alter_offsets(sl_herder_t *h, const char *name, const json_t *body, json_t **out) {
    SELF;
    snap_t sn;
    int rc = snapshot(s, name, &sn, out);
    if (rc) return rc;
    const json_t *list = body ? json_object_get(body, "offsets") : NULL;
    char err[1024];
    if (sn.target != SL_TARGET_STOPPED) {
        rc = sl_herder_error(out, 400,
                             "Connectors must be in the STOPPED state before their offsets can be "
                             "modified. This can be done for the specified connector by issuing a "
                             "'PUT' request to the '/connectors/%s/stop' endpoint",
                             name);
    } else if (body && !json_is_array(list)) {
        rc = sl_herder_error(out, 400, "The request body must hold an \"offsets\" array");
    } else if ((sn.kind == SLUICE_PLUGIN_SOURCE
                    ? alter_source(s, name, list, err, sizeof(err))
                    : sl_kafka_group_offsets_set(s->rt->bootstrap, s->rt->worker, sn.cfg, name, list,
                                                 err, sizeof(err))) != 0) {
        rc = sl_herder_error(out, 400, "Failed to %s the offsets of %s: %s",
                             body ? "alter" : "reset", name, err);
    } else {
        rc = 200;
        *out = json_pack("{ss}", "message",
                         body ? "The offsets for this connector have been altered successfully"
                              : "The offsets for this connector have been reset successfully");
    }
    sl_props_free(sn.cfg);
    return rc;
}

/* --- plugins ----------------------------------------------------------------- */

static int h_plugins(sl_herder_t *h, int connectors_only, json_t **out) {
    SELF;
    *out = json_array();
    for (size_t i = 0; i < sl_registry_count(s->rt->registry); i++) {
        const sluice_plugin_t *d = sl_registry_at(s->rt->registry, i)->desc;
        if (connectors_only && d->kind == SLUICE_PLUGIN_TRANSFORM) continue;
        json_array_append_new(*out, json_pack("{ssssss}", "class", d->name, "type",
                                              sl_plugin_kind_name(d->kind), "version", d->version));
    }
    return 200;
}

static const char *type_name(sluice_config_type_t t) {
    switch (t) {
    case SLUICE_CONFIG_INT: return "LONG";
    case SLUICE_CONFIG_DOUBLE: return "DOUBLE";
    case SLUICE_CONFIG_BOOL: return "BOOLEAN";
    default: return "STRING";
    }
}

/* Keys every connector takes (validated by the host, not the plugin). */
static const sluice_config_def_t common_defs[] = {
    {.name = "name", .type = SLUICE_CONFIG_STRING, .flags = SLUICE_CONFIG_REQUIRED,
     .doc = "Globally unique name to use for this connector."},
    {.name = "connector.class", .type = SLUICE_CONFIG_STRING, .flags = SLUICE_CONFIG_REQUIRED,
     .doc = "Name of the plugin that runs this connector."},
    {.name = "tasks.max", .type = SLUICE_CONFIG_INT, .default_value = "1",
     .doc = "Maximum number of tasks to use for this connector."},
    {.name = "topics", .type = SLUICE_CONFIG_STRING, .doc = "Sinks: comma-separated topics to consume."},
    {.name = "transforms", .type = SLUICE_CONFIG_STRING, .doc = "Aliases of the transforms to apply."},
    {.name = "errors.tolerance", .type = SLUICE_CONFIG_STRING, .default_value = "none",
     .allowed = "none|all", .doc = "Whether a bad record fails the task (none) or is skipped (all)."},
    {.name = "errors.deadletterqueue.topic.name", .type = SLUICE_CONFIG_STRING,
     .doc = "Topic that skipped records go to."},
    {.name = NULL},
};

typedef struct verdict {
    json_t *errors; /* key -> [messages] */
    int count;
} verdict_t;

static void on_problem(void *arg, const char *key, const char *message) {
    verdict_t *v = arg;
    json_t *list = json_object_get(v->errors, key);
    if (!list) json_object_set_new(v->errors, key, list = json_array());
    json_array_append_new(list, json_string(message));
    v->count++;
}

static json_t *config_entry(const sluice_config_def_t *d, const char *group, int order,
                            const sl_runtime_t *rt, const sl_props_t *raw, verdict_t *v) {
    json_t *recommended = json_array();
    if (d->allowed) {
        char *copy = strdup(d->allowed), *save = NULL;
        for (char *a = strtok_r(copy, "|", &save); a; a = strtok_r(NULL, "|", &save))
            json_array_append_new(recommended, json_string(a));
        free(copy);
    }
    json_t *errors = json_object_get(v->errors, d->name);
    errors = errors ? json_incref(errors) : json_array();
    json_object_del(v->errors, d->name);
    const char *value = sl_props_get(raw, d->name);
    if (!value) value = d->default_value;
    json_t *def = json_pack("{sssssbsssssssssssss[]si}", "name", d->name, "type", type_name(d->type),
                            "required", (d->flags & SLUICE_CONFIG_REQUIRED) != 0, "default_value",
                            d->default_value ? d->default_value : "", "importance",
                            (d->flags & SLUICE_CONFIG_REQUIRED) ? "HIGH" : "MEDIUM", "documentation",
                            d->doc ? d->doc : "", "group", group, "width", "NONE", "display_name",
                            d->name, "dependents", "order", order);
    if (!d->default_value) json_object_set_new(def, "default_value", json_null());
    json_t *val = json_pack("{sssososos b}", "name", d->name, "value",
                            value ? shown_value(rt, raw, d->name, value) : json_null(),
                            "recommended_values", recommended, "errors", errors, "visible", 1);
    return json_pack("{soso}", "definition", def, "value", val);
}

static int h_validate(sl_herder_t *h, const char *plugin, const json_t *config, json_t **out) {
    SELF;
    const sl_plugin_t *pl = sl_registry_find(s->rt->registry, plugin);
    if (!pl || pl->desc->kind == SLUICE_PLUGIN_TRANSFORM)
        return sl_herder_error(out, 404, "Connector plugin %s not found", plugin);
    if (!json_is_object(config)) return sl_herder_error(out, 400, "Connector config must be a JSON object");
    const char *cls = json_string_value(json_object_get(config, "connector.class"));
    if (cls && strcmp(cls, plugin) != 0)
        return sl_herder_error(out, 400, "connector.class (%s) does not match the plugin in the URL (%s)",
                               cls, plugin);
    char err[2048];
    sl_props_t *raw = sl_props_from_json(config, err, sizeof(err));
    if (!raw) return sl_herder_error(out, 400, "Connector config is invalid: %s", err);
    if (!cls) sl_props_set(raw, "connector.class", plugin);
    verdict_t v = {json_object(), 0};
    /* Providers per key, so an unresolvable reference is its key's error. */
    sl_props_t *resolved = sl_props_dup(raw), *hide = sl_props_new();
    for (size_t i = 0; i < sl_props_count(raw); i++) {
        const char *k = sl_props_key_at(raw, i);
        if (!strstr(sl_props_value_at(raw, i), "${")) continue;
        sl_props_t *one = sl_props_new();
        sl_props_set(one, k, sl_props_value_at(raw, i));
        if (sl_props_resolve(one, err, sizeof(err)) != 0) {
            on_problem(&v, k, err);
            sl_props_unset(resolved, k);
        } else {
            sl_props_set(resolved, k, sl_props_get(one, k));
            sl_props_set(hide, k, sl_props_get(one, k));
        }
        sl_props_free(one);
    }
    sl_connector_validate(s->rt, resolved, hide, on_problem, &v);
    int count = v.count;
    json_t *configs = json_array();
    int order = 0;
    for (const sluice_config_def_t *d = common_defs; d->name; d++)
        json_array_append_new(configs, config_entry(d, "Common", ++order, s->rt, raw, &v));
    const char *p = (const char *)pl->desc->config;
    for (; p && ((const sluice_config_def_t *)p)->name; p += pl->desc->config_def_size)
        json_array_append_new(configs, config_entry((const sluice_config_def_t *)p, plugin, ++order,
                                                    s->rt, raw, &v));
    /* Problems with keys neither declares (transforms.<alias>.*, ...). */
    const char *k;
    json_t *errs;
    json_object_foreach(v.errors, k, errs) {
        const char *value = sl_props_get(raw, k);
        json_array_append_new(configs,
                              json_pack("{sns{sssos[]sOsb}}", "definition", "value", "name", k, "value",
                                        value ? shown_value(s->rt, raw, k, value) : json_null(),
                                        "recommended_values", "errors", errs, "visible", 1));
    }
    *out = json_pack("{sssis[ss]so}", "name", plugin, "error_count", count, "groups", "Common",
                     plugin, "configs", configs);
    json_decref(v.errors);
    sl_props_free(resolved);
    sl_props_free(hide);
    sl_props_free(raw);
    return 200;
}

static void h_set_worker_id(sl_herder_t *h, const char *worker_id) {
    SELF;
    snprintf(s->worker_id, sizeof(s->worker_id), "%s", worker_id);
}

static void h_free(sl_herder_t *h) {
    SELF;
    if (!s) return;
    json_decref(s->stored);
    free(s->file);
    pthread_mutex_destroy(&s->writes);
    free(s);
}

/* Writes one at a time (REST requests run on their own threads): a POST
 * cannot race another to create the same name, and offsets are changed
 * only while nothing can resume the connector. Reads do not wait. */
SL_HERDER_SERIALIZED_WRITES(standalone_t)

static const sl_herder_ops_t standalone_ops = {
    SL_HERDER_COMMON_OPS,
};

sl_herder_t *sl_standalone_herder_new(sl_worker_t *w, const char *storage_file, char *err,
                                      size_t errlen) {
    standalone_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &standalone_ops;
    pthread_mutex_init(&s->writes, NULL);
    s->w = w;
    s->rt = sl_worker_runtime(w);
    s->file = storage_file && *storage_file ? strdup(storage_file) : NULL;
    s->stored = json_object();
    snprintf(s->worker_id, sizeof(s->worker_id), "standalone");
    if (load_stored(s, err, errlen) != 0) {
        h_free(&s->base);
        return NULL;
    }
    return &s->base;
}

