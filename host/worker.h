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
 * defaults, producer.* and consumer.* client settings.
 */
#ifndef SLUICE_HOST_WORKER_H
#define SLUICE_HOST_WORKER_H

#include "connector.h"

typedef struct sl_worker sl_worker_t;

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
int sl_worker_start(sl_worker_t *w, char *err, size_t errlen);
/** Stops every connector: tasks flush, commit and stop. */
void sl_worker_stop(sl_worker_t *w);
/** Logs a status line per task that changed state since the last call. */
void sl_worker_report(sl_worker_t *w);
/** The default plugin path for a worker in exe_dir: the existing ones of
 *  "<exe_dir>/plugins" (the build tree) and "<exe_dir>/../lib/sluice/plugins"
 *  (an install), comma-separated; malloc'd. */
char *sl_default_plugin_path(const char *exe_dir);

#endif
