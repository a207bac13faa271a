/*
 * loader.h - finds plugins on plugin.path, dlopen()s them and checks their
 * descriptor before any plugin callback runs.
 *
 * A registry owns every loaded plugin (the dlopen handle and the descriptor
 * pointer into it); plugins stay loaded until sl_registry_free().
 */
#ifndef SLUICE_HOST_LOADER_H
#define SLUICE_HOST_LOADER_H

#include <stddef.h>
#include <sluice/plugin.h>

typedef struct sl_plugin {
    char *path;                    /* the .so file */
    void *handle;                  /* dlopen handle */
    const sluice_plugin_t *desc;   /* owned by the plugin */
} sl_plugin_t;

/** Called for every file refused, with one line of reason. */
typedef void (*sl_refusal_fn)(void *arg, const char *path, const char *reason);

typedef struct sl_registry sl_registry_t;

/**
 * Loads one plugin file and validates it. On success fills *out and returns
 * 0; on failure returns -1 with a one-line reason in err (the file is
 * dlclose()d). host is the table handed to the entry function.
 */
int sl_plugin_load(const char *path, const sluice_host_api_t *host, sl_plugin_t *out,
                   char *err, size_t errlen);
void sl_plugin_unload(sl_plugin_t *p);

/** Kind as text: "source", "sink", "transform". */
const char *sl_plugin_kind_name(sluice_plugin_kind_t kind);

/**
 * Scans every directory of a comma-separated plugin path (as in Kafka Connect) for *.so files and
 * loads each. Refused files are reported to on_refuse (may be NULL: then
 * logged as errors); a duplicate plugin name keeps the first and refuses the
 * later file. Never fails as a whole: an unreadable directory is reported
 * and skipped.
 */
sl_registry_t *sl_registry_scan(const char *plugin_path, const sluice_host_api_t *host,
                                sl_refusal_fn on_refuse, void *arg);
void sl_registry_free(sl_registry_t *r);
size_t sl_registry_count(const sl_registry_t *r);
const sl_plugin_t *sl_registry_at(const sl_registry_t *r, size_t i);
/** Finds a plugin by descriptor name; NULL when none. */
const sl_plugin_t *sl_registry_find(const sl_registry_t *r, const char *name);

#endif
