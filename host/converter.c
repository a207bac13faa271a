/* converter.c - see converter.h. */
#include "converter.h"
#include "avro_json.h"
#include "record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdint.h>

static const struct {
    const char *name;
    sl_conv_kind_t kind;
    int confluent;
} kinds[] = {
    {"avro", SL_CONV_AVRO, 0},
    {"json", SL_CONV_JSON, 0},
    {"string", SL_CONV_STRING, 0},
    {"bytes", SL_CONV_BYTES, 0},
    {"io.confluent.connect.avro.AvroConverter", SL_CONV_AVRO, 1},
    {"org.apache.kafka.connect.json.JsonConverter", SL_CONV_JSON, 0},
    {"org.apache.kafka.connect.storage.StringConverter", SL_CONV_STRING, 0},
    {"org.apache.kafka.connect.converters.ByteArrayConverter", SL_CONV_BYTES, 0},
};

static const char *lookup(const sl_props_t *props, const sl_props_t *worker, const char *key) {
    const char *v = props ? sl_props_get(props, key) : NULL;
    if ((!v || !*v) && worker) v = sl_props_get(worker, key);
    return v && *v ? v : NULL;
}

int sl_converter_init(sl_converter_t *c, const char *prefix, const sl_props_t *props,
                      const sl_props_t *worker, const char *def_kind, sl_schemas_t *schemas,
                      char *err, size_t errlen) {
    memset(c, 0, sizeof(*c));
    char key[256];
    const char *kind = lookup(props, worker, prefix);
    if (!kind) kind = def_kind;
    size_t i;
    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kinds[i].name, kind) == 0) break;
    if (i == sizeof(kinds) / sizeof(kinds[0])) {
        snprintf(err, errlen, "config key '%s': unknown converter '%s' (avro, json, string, bytes)",
                 prefix, kind);
        return -1;
    }
    c->kind = kinds[i].kind;
    c->confluent = kinds[i].confluent;

    snprintf(key, sizeof(key), "%s.wire.format", prefix);
    const char *wire = lookup(props, worker, key);
    if (wire && strcmp(wire, "confluent") == 0) {
        c->confluent = 1;
    } else if (wire && strcmp(wire, "raw") == 0) {
        c->confluent = 0; /* explicit wins over the class name's default */
    } else if (wire) {
        snprintf(err, errlen, "config key '%s': '%s' is not raw or confluent", key, wire);
        return -1;
    }
    snprintf(key, sizeof(key), "%s.schema.id", prefix);
    const char *id = lookup(props, worker, key);
    int64_t id64 = 0;
    if (id && (sl_parse_int64(id, &id64) != 0 || id64 < 0 || id64 > INT32_MAX)) {
        snprintf(err, errlen, "config key '%s': '%s' is not a schema id", key, id);
        return -1;
    }
    c->schema_id = (int32_t)id64;

    snprintf(key, sizeof(key), "%s.schema", prefix);
    const char *schema = lookup(props, worker, key);
    if (schema) {
        char why[512];
        avro_schema_t s = sl_schemas_get(schemas, schema, why, sizeof(why));
        if (!s) {
            snprintf(err, errlen, "config key '%s': %s", key, why);
            return -1;
        }
        c->schema = avro_schema_incref(s);
        c->iface = avro_generic_class_from_schema(s);
        if (!c->iface) {
            snprintf(err, errlen, "config key '%s': %s", key, avro_strerror());
            sl_converter_destroy(c);
            return -1;
        }
    }
    return 0;
}

void sl_converter_destroy(sl_converter_t *c) {
    if (c->iface) avro_value_iface_decref(c->iface);
    if (c->schema) avro_schema_decref(c->schema);
    memset(c, 0, sizeof(*c));
}

static void *dup_bytes(const void *src, size_t len) {
    void *p = malloc(len ? len : 1);
    if (p && len) memcpy(p, src, len);
    return p;
}

static sluice_err_t encode_avro(const sl_converter_t *c, avro_value_t *v, void **out,
                                size_t *len, char *err, size_t errlen) {
    size_t size = 0;
    if (avro_value_sizeof(v, &size) != 0) {
        snprintf(err, errlen, "avro encode: %s", avro_strerror());
        return SLUICE_ERR_BAD_RECORD;
    }
    size_t head = c->confluent ? 5 : 0;
    unsigned char *buf = malloc(size + head + 1);
    if (!buf) return SLUICE_ERR_NOMEM;
    if (c->confluent) {
        buf[0] = 0;
        buf[1] = (unsigned char)(c->schema_id >> 24);
        buf[2] = (unsigned char)(c->schema_id >> 16);
        buf[3] = (unsigned char)(c->schema_id >> 8);
        buf[4] = (unsigned char)c->schema_id;
    }
    avro_writer_t w = avro_writer_memory((const char *)buf + head, (int64_t)size);
    int rc = w ? avro_value_write(w, v) : -1;
    if (w) avro_writer_free(w);
    if (rc != 0) {
        snprintf(err, errlen, "avro encode: %s", avro_strerror());
        free(buf);
        return SLUICE_ERR_BAD_RECORD;
    }
    *out = buf;
    *len = size + head;
    return SLUICE_OK;
}

static sluice_err_t encode_json(avro_value_t *v, void **out, size_t *len, char *err,
                                size_t errlen) {
    char *json = NULL;
    if (avro_value_to_json(v, 1, &json) != 0 || !json) {
        snprintf(err, errlen, "json encode: %s", avro_strerror());
        return SLUICE_ERR_BAD_RECORD;
    }
    *out = json;
    *len = strlen(json);
    return SLUICE_OK;
}

sluice_err_t sl_converter_encode(const sl_converter_t *c, sluice_record_t *rec, void **out,
                                 size_t *len, char *err, size_t errlen) {
    *out = NULL;
    *len = 0;
    if (rec->has_avro) {
        switch (c->kind) {
        case SL_CONV_AVRO: return encode_avro(c, &rec->avro, out, len, err, errlen);
        case SL_CONV_JSON:
        case SL_CONV_STRING: return encode_json(&rec->avro, out, len, err, errlen);
        case SL_CONV_BYTES:
            snprintf(err, errlen, "bytes converter cannot encode a typed (Avro) value");
            return SLUICE_ERR_BAD_RECORD;
        }
    }
    if (rec->bytes) {
        if (!(*out = dup_bytes(rec->bytes, rec->bytes_len))) return SLUICE_ERR_NOMEM;
        *len = rec->bytes_len;
    }
    return SLUICE_OK;
}

/*
 * avro-c trusts the lengths it reads: a string or bytes length of -27 or 2^40
 * in a hostile message becomes one enormous allocation before the read fails
 * (found by tests/fuzz/fuzz_avro.c). While a message is being decoded, the
 * allocator installed here refuses any single allocation larger than a cap
 * derived from the message size, so such a message fails to decode (a bad
 * record for the DLQ) instead of exhausting memory. Outside a decode the cap
 * is off and this is plain realloc/free, exactly avro-c's default allocator.
 */
static _Thread_local size_t decode_cap; /* 0 = no cap */

static void *capped_allocator(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (decode_cap && nsize > decode_cap) return NULL;
    return realloc(ptr, nsize);
}

static pthread_once_t allocator_once = PTHREAD_ONCE_INIT;
static void install_allocator(void) { avro_set_allocator(capped_allocator, NULL); }

/* A decoded datum's largest single block (a string, or an array's items at
 * up to 64 bytes of value each per input byte) stays far below this. */
static size_t cap_for(size_t len) {
    size_t cap = len > (SIZE_MAX - 65536) / 64 ? SIZE_MAX : len * 64 + 65536;
    return cap;
}

static sluice_err_t decode_avro(const sl_converter_t *c, const void *data, size_t len,
                                sluice_record_t *rec, char *err, size_t errlen) {
    const char *p = data;
    size_t plen = len;
    if (c->confluent) {
        if (len < 5 || p[0] != 0) {
            snprintf(err, errlen, "not in confluent wire format (no magic byte 0)");
            sl_record_set_value_bytes(rec, data, len); /* kept for the DLQ */
            return SLUICE_ERR_BAD_RECORD;
        }
        p += 5;
        plen -= 5;
    }
    avro_value_t *v;
    if (sl_record_set_value_avro_iface(rec, c->schema, c->iface, &v) != SLUICE_OK)
        return SLUICE_ERR_NOMEM;
    avro_reader_t r = avro_reader_memory(p, (int64_t)plen);
    pthread_once(&allocator_once, install_allocator);
    /* A first pass that only skips (allocates nothing) refuses a datum whose
     * lengths run past the end: avro-c's read of a truncated string leaks
     * the buffer it allocated for it. */
    int rc = r ? avro_skip_data(r, c->schema) : -1;
    if (rc == 0) {
        avro_reader_memory_set_source(r, p, (int64_t)plen);
        decode_cap = cap_for(plen);
        rc = avro_value_read(r, v);
        decode_cap = 0;
    }
    if (r) avro_reader_free(r);
    if (rc != 0) {
        snprintf(err, errlen, "avro decode (%zu bytes) with schema %s: %s", plen,
                 avro_schema_type_name(c->schema), avro_strerror());
        sl_record_set_value_bytes(rec, data, len);
        return SLUICE_ERR_BAD_RECORD;
    }
    /* Avro binary is dense: almost any bytes decode as something. A datum
     * that leaves bytes over was written with another schema (or is no
     * Avro at all): refuse it rather than pass on garbage. */
    size_t used = 0;
    if (avro_value_sizeof(v, &used) == 0 && used != plen) {
        snprintf(err, errlen,
                 "avro decode (%zu bytes) with schema %s: %zu trailing byte(s) after the datum "
                 "(written with another schema?)",
                 plen, avro_schema_type_name(c->schema), plen - used);
        sl_record_set_value_bytes(rec, data, len);
        return SLUICE_ERR_BAD_RECORD;
    }
    return SLUICE_OK;
}

static sluice_err_t decode_json(const sl_converter_t *c, const void *data, size_t len,
                                sluice_record_t *rec, char *err, size_t errlen) {
    avro_value_t *v;
    if (sl_record_set_value_avro_iface(rec, c->schema, c->iface, &v) != SLUICE_OK)
        return SLUICE_ERR_NOMEM;
    if (sl_avro_from_json_text(data, len, v, err, errlen) != 0) {
        sl_record_set_value_bytes(rec, data, len); /* keep the payload for the DLQ */
        return SLUICE_ERR_BAD_RECORD;
    }
    return SLUICE_OK;
}

sluice_err_t sl_converter_decode(const sl_converter_t *c, const void *data, size_t len,
                                 sluice_record_t *rec, char *err, size_t errlen) {
    if (!data) return SLUICE_OK;
    if (c->kind == SL_CONV_AVRO) {
        if (!c->schema) {
            snprintf(err, errlen, "avro converter has no schema (set value.converter.schema)");
            return SLUICE_ERR_BAD_RECORD;
        }
        return decode_avro(c, data, len, rec, err, errlen);
    }
    if (c->kind == SL_CONV_JSON && c->schema) return decode_json(c, data, len, rec, err, errlen);
    return sl_record_set_value_bytes(rec, data, len);
}
