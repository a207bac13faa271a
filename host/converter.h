/*
 * converter.h - record values <-> Kafka message bytes, in the host (Kafka
 * Connect's converters). Configured per connector with Kafka Connect's keys:
 *
 *   value.converter              avro | json | string | bytes (or the Kafka
 *                                Connect / Confluent class names)
 *   value.converter.schema       schema name in schemas.path ("trades"):
 *                                needed to decode avro, optional for json
 *   value.converter.wire.format  raw (default) | confluent: magic byte 0 and
 *                                a 4-byte big-endian schema id before the Avro
 *   value.converter.schema.id    the id written in confluent format
 *
 * and the same under key.converter (keys are bytes in the ABI: key
 * converters pass bytes through). A converter is immutable after init and
 * may be shared by tasks.
 */
#ifndef SLUICE_HOST_CONVERTER_H
#define SLUICE_HOST_CONVERTER_H

#include <stddef.h>
#include <avro.h>
#include <sluice/plugin.h>
#include "config.h"
#include "schemas.h"

typedef enum { SL_CONV_BYTES, SL_CONV_STRING, SL_CONV_JSON, SL_CONV_AVRO } sl_conv_kind_t;

typedef struct sl_converter {
    sl_conv_kind_t kind;
    int confluent;              /* confluent wire format (avro only) */
    int32_t schema_id;
    avro_schema_t schema;       /* reference held, or NULL */
    avro_value_iface_t *iface;  /* generic class of schema, or NULL */
} sl_converter_t;

/**
 * Reads "<prefix>" ("value.converter") and its sub-keys from props, falling
 * back to worker props (may be NULL), then to def_kind. 0, or -1 with err
 * naming the key.
 */
int sl_converter_init(sl_converter_t *c, const char *prefix, const sl_props_t *props,
                      const sl_props_t *worker, const char *def_kind, sl_schemas_t *schemas,
                      char *err, size_t errlen);
void sl_converter_destroy(sl_converter_t *c);

/** Value -> bytes (*out malloc'd, NULL with *len 0 for a null value).
 *  SLUICE_ERR_BAD_RECORD with err when the value cannot be encoded. */
sluice_err_t sl_converter_encode(const sl_converter_t *c, sluice_record_t *rec, void **out,
                                 size_t *len, char *err, size_t errlen);
/** Bytes -> the record's value. SLUICE_ERR_BAD_RECORD with err when they do
 *  not decode; a NULL payload leaves the value null. */
sluice_err_t sl_converter_decode(const sl_converter_t *c, const void *data, size_t len,
                                 sluice_record_t *rec, char *err, size_t errlen);

#endif
