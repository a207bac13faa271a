/*
 * offset_store.h - source offsets, Kafka Connect style: key is the JSON array
 * ["<connector>", {source partition}], value the {source offset} object.
 *
 * Standalone mode keeps them in one JSON file
 * (offset.storage.file.filename), rewritten atomically (temp file, fsync,
 * rename) on each flush. Partition objects are normalised (sorted keys,
 * compact) so {"b":1,"a":2} and {"a":2,"b":1} are one partition.
 * Thread-safe: source tasks of every connector share one store.
 */
#ifndef SLUICE_HOST_OFFSET_STORE_H
#define SLUICE_HOST_OFFSET_STORE_H

#include <stddef.h>
#include <jansson.h>

typedef struct sl_offset_store sl_offset_store_t;
struct sl_offset_store;

/** Opens (or starts empty when the file does not exist) the store at path;
 *  path NULL = memory only. NULL with err on a corrupt file. */
sl_offset_store_t *sl_offset_store_open(const char *path, char *err, size_t errlen);
void sl_offset_store_free(sl_offset_store_t *s);
/** The stored offset (JSON text, malloc'd) or NULL. */
char *sl_offset_store_get(sl_offset_store_t *s, const char *connector,
                          const char *partition_json);
/** Sets an offset in memory; 0, or -1 when either JSON text is not an
 *  object. */
int sl_offset_store_put(sl_offset_store_t *s, const char *connector, const char *partition_json,
                        const char *offset_json);
/** Every offset of connector: a new JSON array of {"partition": {...},
 *  "offset": {...}} (Kafka Connect's GET /connectors/<name>/offsets). */
json_t *sl_offset_store_list(sl_offset_store_t *s, const char *connector);
/** Forgets one partition's offset (in memory; flush writes it); 0, or -1
 *  when the partition is not a JSON object. */
int sl_offset_store_remove(sl_offset_store_t *s, const char *connector, const char *partition_json);
/** Writes the file if anything changed; 0 or -1 with err. */
int sl_offset_store_flush(sl_offset_store_t *s, char *err, size_t errlen);

#endif
