/*
 * latest.h - the latest record per key of a sink connector, as the sink got
 * it (after the connector's transforms): for GET /connectors/{name}/latest
 * and the worker's /ui page (e.g. the newest window result per symbol).
 * Opt-in per connector with "latest.records.max" (keys kept; 0 = off, the
 * default); a full table keeps its keys and drops new ones (counted in
 * latest_records_dropped_total). Thread-safe.
 */
#ifndef SLUICE_HOST_LATEST_H
#define SLUICE_HOST_LATEST_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <sluice/plugin.h>

typedef struct sl_latest sl_latest_t;

sl_latest_t *sl_latest_new(void);
void sl_latest_free(sl_latest_t *l);
/** Records rec (its key as text, the value as JSON: Avro's JSON encoding,
 *  or the bytes when they are JSON, else a string) under connector. A new
 *  key beyond max_keys is dropped; returns 0 when kept, -1 when dropped or
 *  out of memory. */
int sl_latest_put(sl_latest_t *l, const char *connector, const sluice_record_t *rec,
                  size_t max_keys);
/** {"connector": name, "records": [{"key", "topic", "timestamp", "value"}, ...]}
 *  sorted by key, or NULL when the connector recorded nothing. */
json_t *sl_latest_json(sl_latest_t *l, const char *connector);
/** Forgets a connector's records (it was deleted or reconfigured). */
void sl_latest_forget(sl_latest_t *l, const char *connector);

#endif
