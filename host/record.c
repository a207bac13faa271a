/* record.c - see record.h. */
#include "record.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* avro_generic_class_from_schema() walks the whole schema: a source making
 * records of one schema paid it per record. Classes are kept here per schema
 * (each entry holds a reference to both, so a schema's address cannot be
 * reused while it is cached); released at exit. */
#define IFACE_CACHE 32
static struct {
    pthread_mutex_t lock;
    int n, atexit_done;
    struct {
        avro_schema_t schema;
        avro_value_iface_t *iface;
    } e[IFACE_CACHE];
} ifaces = {PTHREAD_MUTEX_INITIALIZER, 0, 0, {{0}}};

void sl_record_iface_cache_clear(void) {
    pthread_mutex_lock(&ifaces.lock);
    for (int i = 0; i < ifaces.n; i++) {
        avro_value_iface_decref(ifaces.e[i].iface);
        avro_schema_decref(ifaces.e[i].schema);
    }
    ifaces.n = 0;
    pthread_mutex_unlock(&ifaces.lock);
}

/* A new reference to the generic class of schema, or NULL. */
static avro_value_iface_t *iface_for(avro_schema_t schema) {
    avro_value_iface_t *found = NULL;
    pthread_mutex_lock(&ifaces.lock);
    for (int i = 0; i < ifaces.n && !found; i++)
        if (ifaces.e[i].schema == schema) found = avro_value_iface_incref(ifaces.e[i].iface);
    pthread_mutex_unlock(&ifaces.lock);
    if (found) return found;
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    if (!iface) return NULL;
    pthread_mutex_lock(&ifaces.lock);
    if (ifaces.n < IFACE_CACHE) {
        if (!ifaces.atexit_done) ifaces.atexit_done = atexit(sl_record_iface_cache_clear) == 0;
        ifaces.e[ifaces.n].schema = avro_schema_incref(schema);
        ifaces.e[ifaces.n].iface = avro_value_iface_incref(iface);
        ifaces.n++;
    }
    pthread_mutex_unlock(&ifaces.lock);
    return iface;
}

sluice_record_t *sl_record_new(void) {
    sluice_record_t *rec = calloc(1, sizeof(*rec));
    if (!rec) return NULL;
    rec->timestamp = -1;
    rec->partition = -1;
    rec->offset = -1;
    return rec;
}

static void clear_value(sluice_record_t *rec) {
    if (rec->has_avro) {
        avro_value_decref(&rec->avro);
        avro_value_iface_decref(rec->iface);
        avro_schema_decref(rec->schema);
        rec->has_avro = 0;
        rec->iface = NULL;
        rec->schema = NULL;
    }
    free(rec->bytes);
    rec->bytes = NULL;
    rec->bytes_len = 0;
}

void sl_record_free(sluice_record_t *rec) {
    if (!rec) return;
    clear_value(rec);
    free(rec->topic);
    free(rec->key);
    for (size_t i = 0; i < rec->nheaders; i++) {
        free(rec->headers[i].name);
        free(rec->headers[i].value);
    }
    free(rec->headers);
    free(rec->src_partition);
    free(rec->src_offset);
    free(rec);
}

/* Copies len bytes (len may be 0: a non-NULL empty buffer results). */
static void *dup_bytes(const void *src, size_t len) {
    void *p = malloc(len ? len : 1);
    if (p && len) memcpy(p, src, len);
    return p;
}

sluice_err_t sl_record_set_topic(sluice_record_t *rec, const char *topic) {
    if (!rec || !topic || !*topic) return SLUICE_ERR_INVALID_ARG;
    char *copy = strdup(topic);
    if (!copy) return SLUICE_ERR_NOMEM;
    free(rec->topic);
    rec->topic = copy;
    return SLUICE_OK;
}

sluice_err_t sl_record_set_key(sluice_record_t *rec, const void *key, size_t len) {
    if (!rec || (!key && len)) return SLUICE_ERR_INVALID_ARG;
    void *copy = NULL;
    if (key && !(copy = dup_bytes(key, len))) return SLUICE_ERR_NOMEM;
    free(rec->key);
    rec->key = copy;
    rec->key_len = key ? len : 0;
    return SLUICE_OK;
}

sluice_err_t sl_record_set_value_avro_iface(sluice_record_t *rec, avro_schema_t schema,
                                            avro_value_iface_t *iface, avro_value_t **value) {
    if (!rec || !schema || !iface) return SLUICE_ERR_INVALID_ARG;
    avro_value_t v;
    if (avro_generic_value_new(iface, &v) != 0) return SLUICE_ERR_NOMEM;
    clear_value(rec);
    rec->schema = avro_schema_incref(schema);
    rec->iface = avro_value_iface_incref(iface);
    rec->avro = v;
    rec->has_avro = 1;
    if (value) *value = &rec->avro;
    return SLUICE_OK;
}

sluice_err_t sl_record_set_value_avro(sluice_record_t *rec, avro_schema_t schema,
                                      avro_value_t **value) {
    if (!rec || !schema) return SLUICE_ERR_INVALID_ARG;
    avro_value_iface_t *iface = iface_for(schema);
    if (!iface) return SLUICE_ERR_INVALID_ARG;
    sluice_err_t rc = sl_record_set_value_avro_iface(rec, schema, iface, value);
    avro_value_iface_decref(iface);
    return rc;
}

sluice_err_t sl_record_set_value_bytes(sluice_record_t *rec, const void *data, size_t len) {
    if (!rec || (!data && len)) return SLUICE_ERR_INVALID_ARG;
    void *copy = NULL;
    if (data && !(copy = dup_bytes(data, len))) return SLUICE_ERR_NOMEM;
    clear_value(rec);
    rec->bytes = copy;
    rec->bytes_len = data ? len : 0;
    return SLUICE_OK;
}

void sl_record_take_value_bytes(sluice_record_t *rec, void *data, size_t len) {
    clear_value(rec);
    rec->bytes = data;
    rec->bytes_len = len;
}

sluice_err_t sl_record_set_timestamp(sluice_record_t *rec, int64_t ts) {
    if (!rec || ts < -1) return SLUICE_ERR_INVALID_ARG;
    rec->timestamp = ts;
    return SLUICE_OK;
}

sluice_err_t sl_record_add_header(sluice_record_t *rec, const char *name, const void *value,
                                  size_t len) {
    if (!rec || !name || (!value && len)) return SLUICE_ERR_INVALID_ARG;
    if (rec->nheaders == rec->cap_headers) {
        size_t cap = rec->cap_headers ? rec->cap_headers * 2 : 4;
        sl_header_t *grown = realloc(rec->headers, cap * sizeof(*grown));
        if (!grown) return SLUICE_ERR_NOMEM;
        rec->headers = grown;
        rec->cap_headers = cap;
    }
    sl_header_t h = {strdup(name), value ? dup_bytes(value, len) : NULL, value ? len : 0};
    if (!h.name || (value && !h.value)) {
        free(h.name);
        free(h.value);
        return SLUICE_ERR_NOMEM;
    }
    rec->headers[rec->nheaders++] = h;
    return SLUICE_OK;
}

/* True when text parses as a JSON object (as the header promises). */
static int is_json_object(const char *text) {
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    int ok = j && json_is_object(j);
    json_decref(j);
    return ok;
}

/* The source partition of a task's records rarely changes: the last one a
 * thread validated is remembered (copied, so nothing is freed at exit). */
static _Thread_local char last_partition[256];

sluice_err_t sl_record_set_source_position(sluice_record_t *rec, const char *partition_json,
                                           const char *offset_json) {
    if (!rec || !partition_json || !offset_json) return SLUICE_ERR_INVALID_ARG;
    if (strcmp(partition_json, last_partition) != 0) {
        if (!is_json_object(partition_json)) return SLUICE_ERR_INVALID_ARG;
        size_t len = strlen(partition_json);
        if (len < sizeof(last_partition)) memcpy(last_partition, partition_json, len + 1);
    }
    if (!is_json_object(offset_json)) return SLUICE_ERR_INVALID_ARG;
    char *p = strdup(partition_json), *o = strdup(offset_json);
    if (!p || !o) {
        free(p);
        free(o);
        return SLUICE_ERR_NOMEM;
    }
    free(rec->src_partition);
    free(rec->src_offset);
    rec->src_partition = p;
    rec->src_offset = o;
    return SLUICE_OK;
}

const void *sl_record_header(const sluice_record_t *rec, const char *name, size_t *len) {
    if (!rec || !name) return NULL;
    for (size_t i = rec->nheaders; i-- > 0;) {
        if (strcmp(rec->headers[i].name, name) == 0) {
            if (len) *len = rec->headers[i].len;
            return rec->headers[i].value;
        }
    }
    return NULL;
}
