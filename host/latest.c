/* latest.c - see latest.h. Per connector a jansson object key -> entry:
 * tens of symbols, written once per put() batch record, read by the UI. */
#include "latest.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

struct sl_latest {
    pthread_mutex_t lock;
    json_t *by_connector; /* connector -> {key -> entry} */
};

sl_latest_t *sl_latest_new(void) {
    sl_latest_t *l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    if (!(l->by_connector = json_object())) {
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    return l;
}

void sl_latest_free(sl_latest_t *l) {
    if (!l) return;
    json_decref(l->by_connector);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

/* The value as JSON: Avro's JSON encoding (avro-c), JSON bytes as they are,
 * other bytes as a string, no value as null. */
static json_t *value_json(const sluice_record_t *rec) {
    if (rec->has_avro) {
        char *text = NULL;
        if (avro_value_to_json(&rec->avro, 1, &text) != 0 || !text) return NULL;
        json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
        free(text);
        return v;
    }
    if (rec->bytes) {
        json_t *v = json_loadb(rec->bytes, rec->bytes_len, JSON_DECODE_ANY, NULL);
        return v ? v : json_stringn(rec->bytes, rec->bytes_len);
    }
    return json_null();
}

int sl_latest_put(sl_latest_t *l, const char *connector, const sluice_record_t *rec,
                  size_t max_keys) {
    if (!l || !connector || !rec || max_keys == 0) return -1;
    /* keys are text (symbols); a key that is not UTF-8 is not kept */
    const char *key = rec->key ? (const char *)rec->key : "";
    size_t key_len = rec->key ? rec->key_len : 0;
    json_t *entry = json_pack("{s:s?,s:I}", "topic", rec->topic,
                              "timestamp", (json_int_t)rec->timestamp);
    json_t *value = value_json(rec);
    if (!entry || !value || json_object_set_new(entry, "value", value) != 0) {
        json_decref(entry);
        return -1;
    }
    json_t *k = json_stringn(key, key_len);
    int rc = -1;
    pthread_mutex_lock(&l->lock);
    json_t *table = json_object_get(l->by_connector, connector);
    if (!table) {
        table = json_object();
        if (table && json_object_set_new(l->by_connector, connector, table) != 0) table = NULL;
    }
    if (table && k && json_string_value(k)) {
        const char *ks = json_string_value(k);
        if (json_object_get(table, ks) || json_object_size(table) < max_keys) {
            rc = json_object_set(table, ks, entry);
        }
    }
    pthread_mutex_unlock(&l->lock);
    json_decref(k);
    json_decref(entry);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *sl_latest_json(sl_latest_t *l, const char *connector) {
    if (!l || !connector) return NULL;
    json_t *out = NULL;
    pthread_mutex_lock(&l->lock);
    json_t *table = json_object_get(l->by_connector, connector);
    if (table) {
        json_t *records = json_array();
        const char **keys = calloc(json_object_size(table) + 1, sizeof(*keys));
        size_t n = 0;
        const char *key;
        json_t *entry;
        json_object_foreach(table, key, entry) if (keys) keys[n++] = key;
        /* insertion order is arbitrary: sort by key for a stable answer */
        if (keys) qsort(keys, n, sizeof(*keys), cmp_str);
        for (size_t i = 0; records && i < n; i++) {
            json_t *e = json_deep_copy(json_object_get(table, keys[i]));
            if (e) json_object_set_new(e, "key", json_string(keys[i]));
            if (e) json_array_append_new(records, e);
        }
        free(keys);
        out = json_pack("{s:s,s:o}", "connector", connector, "records",
                        records ? records : json_array());
    }
    pthread_mutex_unlock(&l->lock);
    return out;
}

void sl_latest_forget(sl_latest_t *l, const char *connector) {
    if (!l || !connector) return;
    pthread_mutex_lock(&l->lock);
    json_object_del(l->by_connector, connector);
    pthread_mutex_unlock(&l->lock);
}
