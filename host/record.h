/*
 * record.h - the host's record (struct sluice_record, opaque to plugins).
 *
 * A record owns copies of everything it holds: topic, key, value (an Avro
 * generic value with a reference on its schema, or raw bytes), headers and
 * the source position. sl_record_free() releases all of it.
 */
#ifndef SLUICE_HOST_RECORD_H
#define SLUICE_HOST_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <avro.h>
#include <sluice/plugin.h>

typedef struct sl_header {
    char *name;
    void *value;
    size_t len;
} sl_header_t;

struct sluice_record {
    char *topic;
    void *key;
    size_t key_len;
    /* value: at most one of avro / bytes is set */
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t avro;
    int has_avro;
    void *bytes;
    size_t bytes_len;
    int64_t timestamp;
    sl_header_t *headers;
    size_t nheaders, cap_headers;
    char *src_partition; /* JSON text */
    char *src_offset;    /* JSON text */
    int32_t partition;   /* Kafka partition when consumed, else -1 */
    int64_t offset;      /* Kafka offset when consumed, else -1 */
};

sluice_record_t *sl_record_new(void);
void sl_record_free(sluice_record_t *rec);

sluice_err_t sl_record_set_topic(sluice_record_t *rec, const char *topic);
sluice_err_t sl_record_set_key(sluice_record_t *rec, const void *key, size_t len);
sluice_err_t sl_record_set_value_avro(sluice_record_t *rec, avro_schema_t schema,
                                      avro_value_t **value);
sluice_err_t sl_record_set_value_bytes(sluice_record_t *rec, const void *data, size_t len);
/** Takes ownership of data (malloc'd). */
void sl_record_take_value_bytes(sluice_record_t *rec, void *data, size_t len);
sluice_err_t sl_record_set_timestamp(sluice_record_t *rec, int64_t ts);
sluice_err_t sl_record_add_header(sluice_record_t *rec, const char *name, const void *value,
                                  size_t len);
sluice_err_t sl_record_set_source_position(sluice_record_t *rec, const char *partition_json,
                                           const char *offset_json);
/** The value of the last header called name, or NULL. */
const void *sl_record_header(const sluice_record_t *rec, const char *name, size_t *len);



/** Like sl_record_set_value_avro with a generic class the caller already
 *  made for schema (saves building one per record); takes references. */
sluice_err_t sl_record_set_value_avro_iface(sluice_record_t *rec, avro_schema_t schema,
                                            avro_value_iface_t *iface, avro_value_t **value);
/** Releases the cached generic Avro classes (one per schema, kept so that
 *  records of a schema do not rebuild its class each time). Runs at exit;
 *  tests counting schema references call it first. */
void sl_record_iface_cache_clear(void);

#endif
