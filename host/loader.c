/* loader.c - see loader.h. The checks follow PostgreSQL's magic block idea:
 * everything ABI-relevant is verified from the descriptor before any of the
 * plugin's lifecycle callbacks may run. */
#include "loader.h"
#include "log.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_registry {
    sl_plugin_t *items;
    size_t n, cap;
};

const char *sl_plugin_kind_name(sluice_plugin_kind_t kind) {
    switch (kind) {
    case SLUICE_PLUGIN_SOURCE: return "source";
    case SLUICE_PLUGIN_SINK: return "sink";
    case SLUICE_PLUGIN_TRANSFORM: return "transform";
    }
    return "unknown";
}

static int fail(char *err, size_t errlen, const char *fmt, ...) SLUICE_PRINTF(3, 4);
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* The minimal descriptor size of ABI 1.0: everything up to the ops pointers. */
#define DESC_MIN_SIZE (offsetof(sluice_plugin_t, transform) + sizeof(void *))
#define DEF_MIN_SIZE (offsetof(sluice_config_def_t, allowed) + sizeof(const char *))

static int valid_name(const char *name) {
    if (!name || !*name || strlen(name) > 128) return 0;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' ||
              *c == '-'))
            return 0;
    return 1;
}

/* Looks for an entry symbol of another major, to say "built for ABI N". */
static int other_major(void *handle) {
    char sym[64];
    for (int major = 0; major < 32; major++) {
        if (major == SLUICE_ABI_MAJOR) continue;
        snprintf(sym, sizeof(sym), "sluice_plugin_entry_v%d", major);
        if (dlsym(handle, sym)) return major;
    }
    return -1;
}

/* Ops struct pointer must be set and its struct_size plausible. */
static int check_ops(const void *ops, size_t min_size, const char *what, char *err,
                     size_t errlen) {
    if (!ops) return fail(err, errlen, "kind is %s but its %s ops are NULL", what, what);
    uint32_t size = *(const uint32_t *)ops;
    if (size < min_size)
        return fail(err, errlen, "%s ops struct_size %u is smaller than ABI %d.0's %zu", what,
                    size, SLUICE_ABI_MAJOR, min_size);
    return 0;
}

static int check_config_defs(const sluice_plugin_t *d, char *err, size_t errlen) {
    if (!d->config) return 0;
    if (d->config_def_size < DEF_MIN_SIZE)
        return fail(err, errlen, "config_def_size %u is smaller than ABI %d.0's %zu",
                    d->config_def_size, SLUICE_ABI_MAJOR, DEF_MIN_SIZE);
    const char *p = (const char *)d->config;
    for (size_t i = 0; i < 4096; i++, p += d->config_def_size) {
        const sluice_config_def_t *def = (const sluice_config_def_t *)p;
        if (!def->name) return 0;
        if (!*def->name) return fail(err, errlen, "config definition %zu has an empty name", i);
        if (def->type < SLUICE_CONFIG_STRING || def->type > SLUICE_CONFIG_LIST)
            return fail(err, errlen, "config definition '%s' has unknown type %d", def->name,
                        (int)def->type);
    }
    return fail(err, errlen, "config definitions are not terminated by a NULL name");
}

static int check_descriptor(const sluice_plugin_t *d, char *err, size_t errlen) {
    if (d->magic != SLUICE_PLUGIN_MAGIC)
        return fail(err, errlen, "bad descriptor magic 0x%08x (not a Sluice plugin descriptor)",
                    d->magic);
    if (d->abi_major != SLUICE_ABI_MAJOR)
        return fail(err, errlen, "incompatible ABI %u.%u (this worker implements ABI %d.%d)",
                    d->abi_major, d->abi_minor, SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR);
    if (d->abi_minor > SLUICE_ABI_MINOR)
        return fail(err, errlen,
                    "built for ABI %u.%u, newer than this worker's %d.%d: upgrade the worker",
                    d->abi_major, d->abi_minor, SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR);
    if (d->struct_size < DESC_MIN_SIZE)
        return fail(err, errlen, "descriptor struct_size %u is smaller than ABI %d.0's %zu",
                    d->struct_size, SLUICE_ABI_MAJOR, DESC_MIN_SIZE);
    if (!valid_name(d->name))
        return fail(err, errlen, "descriptor name is missing or not [a-z0-9._-]+");
    if (!d->version || !*d->version) return fail(err, errlen, "descriptor has no version");
    switch (d->kind) {
    case SLUICE_PLUGIN_SOURCE:
        if (check_ops(d->source, offsetof(sluice_source_ops_t, stop) + sizeof(void *), "source",
                      err, errlen))
            return -1;
        if (!d->source->start || !d->source->poll || !d->source->stop)
            return fail(err, errlen, "source ops lack start, poll or stop");
        break;
    case SLUICE_PLUGIN_SINK:
        if (check_ops(d->sink, offsetof(sluice_sink_ops_t, stop) + sizeof(void *), "sink", err,
                      errlen))
            return -1;
        if (!d->sink->start || !d->sink->put || !d->sink->stop)
            return fail(err, errlen, "sink ops lack start, put or stop");
        break;
    case SLUICE_PLUGIN_TRANSFORM:
        if (check_ops(d->transform, offsetof(sluice_transform_ops_t, stop) + sizeof(void *),
                      "transform", err, errlen))
            return -1;
        if (!d->transform->start || !d->transform->apply || !d->transform->stop)
            return fail(err, errlen, "transform ops lack start, apply or stop");
        break;
    default:
        return fail(err, errlen, "unknown plugin kind %d", (int)d->kind);
    }
    return check_config_defs(d, err, errlen);
}

int sl_plugin_load(const char *path, const sluice_host_api_t *host, sl_plugin_t *out,
                   char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) return fail(err, errlen, "cannot load: %s", dlerror());
    dlerror();
    sluice_plugin_entry_fn entry;
    *(void **)&entry = dlsym(handle, SLUICE_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        int major = other_major(handle);
        if (major >= 0)
            fail(err, errlen, "incompatible ABI: exports sluice_plugin_entry_v%d, this worker needs %s",
                 major, SLUICE_PLUGIN_ENTRY_SYMBOL);
        else
            fail(err, errlen, "missing entry symbol %s (not a Sluice plugin?)",
                 SLUICE_PLUGIN_ENTRY_SYMBOL);
        dlclose(handle);
        return -1;
    }
    const sluice_plugin_t *desc = entry(host);
    if (!desc) {
        fail(err, errlen, "entry function %s returned NULL", SLUICE_PLUGIN_ENTRY_SYMBOL);
        dlclose(handle);
        return -1;
    }
    if (check_descriptor(desc, err, errlen) != 0) {
        dlclose(handle);
        return -1;
    }
    out->path = strdup(path);
    out->handle = handle;
    out->desc = desc;
    if (!out->path) {
        dlclose(handle);
        return fail(err, errlen, "out of memory");
    }
    return 0;
}

void sl_plugin_unload(sl_plugin_t *p) {
    if (!p) return;
    /* Under sanitizers keep the code mapped so leak reports can symbolize. */
    if (p->handle && !getenv("SLUICE_NO_DLCLOSE")) dlclose(p->handle);
    free(p->path);
    memset(p, 0, sizeof(*p));
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void refuse(sl_refusal_fn on_refuse, void *arg, const char *path, const char *reason) {
    if (on_refuse)
        on_refuse(arg, path, reason);
    else
        SL_ERROR("loader", "plugin %s refused: %s", path, reason);
}

static void registry_add(sl_registry_t *r, const char *path, const sluice_host_api_t *host,
                         sl_refusal_fn on_refuse, void *arg) {
    char err[512];
    sl_plugin_t p;
    if (sl_plugin_load(path, host, &p, err, sizeof(err)) != 0) {
        refuse(on_refuse, arg, path, err);
        return;
    }
    const sl_plugin_t *dup = sl_registry_find(r, p.desc->name);
    if (dup) {
        snprintf(err, sizeof(err), "duplicate plugin name '%s' (already loaded from %s)",
                 p.desc->name, dup->path);
        sl_plugin_unload(&p);
        refuse(on_refuse, arg, path, err);
        return;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        sl_plugin_t *grown = realloc(r->items, cap * sizeof(*grown));
        if (!grown) {
            sl_plugin_unload(&p);
            refuse(on_refuse, arg, path, "out of memory");
            return;
        }
        r->items = grown;
        r->cap = cap;
    }
    r->items[r->n++] = p;
}

/* Loads the *.so files of one directory, in name order (deterministic). */
static void scan_dir(sl_registry_t *r, const char *dir, const sluice_host_api_t *host,
                     sl_refusal_fn on_refuse, void *arg) {
    DIR *d = opendir(dir);
    if (!d) {
        char reason[256];
        snprintf(reason, sizeof(reason), "plugin.path directory cannot be read: %m");
        refuse(on_refuse, arg, dir, reason);
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, ".so")) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof(*grown));
            if (!grown) break;
            names = grown;
        }
        if ((names[n] = strdup(e->d_name)) != NULL) n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        registry_add(r, path, host, on_refuse, arg);
        free(names[i]);
    }
    free(names);
}

sl_registry_t *sl_registry_scan(const char *plugin_path, const sluice_host_api_t *host,
                                sl_refusal_fn on_refuse, void *arg) {
    sl_registry_t *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    char *copy = strdup(plugin_path ? plugin_path : "");
    if (!copy) return r;
    char *save = NULL;
    for (char *dir = strtok_r(copy, ",", &save); dir; dir = strtok_r(NULL, ",", &save)) {
        while (*dir == ' ') dir++;
        size_t len = strlen(dir);
        while (len > 0 && (dir[len - 1] == ' ' || dir[len - 1] == '/')) dir[--len] = '\0';
        if (*dir) scan_dir(r, dir, host, on_refuse, arg);
    }
    free(copy);
    return r;
}

void sl_registry_free(sl_registry_t *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) sl_plugin_unload(&r->items[i]);
    free(r->items);
    free(r);
}

size_t sl_registry_count(const sl_registry_t *r) { return r ? r->n : 0; }
const sl_plugin_t *sl_registry_at(const sl_registry_t *r, size_t i) {
    return r && i < r->n ? &r->items[i] : NULL;
}

const sl_plugin_t *sl_registry_find(const sl_registry_t *r, const char *name) {
    for (size_t i = 0; r && i < r->n; i++)
        if (strcmp(r->items[i].desc->name, name) == 0) return &r->items[i];
    return NULL;
}
