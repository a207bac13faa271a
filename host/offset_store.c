/* offset_store.c - see offset_store.h. */
#include "offset_store.h"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sl_offset_store {
    pthread_mutex_t lock;
    char *path;
    json_t *map; /* key text -> offset object */
    int dirty;
};

sl_offset_store_t *sl_offset_store_open(const char *path, char *err, size_t errlen) {
    sl_offset_store_t *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    pthread_mutex_init(&s->lock, NULL);
    if (path && access(path, F_OK) == 0) {
        json_error_t je;
        s->map = json_load_file(path, 0, &je);
        if (!s->map || !json_is_object(s->map)) {
            snprintf(err, errlen, "offset file %s is corrupt: %s (line %d)", path,
                     s->map ? "not a JSON object" : je.text, je.line);
            sl_offset_store_free(s);
            return NULL;
        }
    } else {
        s->map = json_object();
    }
    s->path = path ? strdup(path) : NULL;
    return s;
}

void sl_offset_store_free(sl_offset_store_t *s) {
    if (!s) return;
    json_decref(s->map);
    free(s->path);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ["connector", {partition}] as compact, key-sorted JSON text; NULL when the
 * partition is not a JSON object. */
static char *make_key(const char *connector, const char *partition_json) {
    json_t *part = json_loads(partition_json, 0, NULL);
    if (!part || !json_is_object(part)) {
        json_decref(part);
        return NULL;
    }
    json_t *key = json_pack("[so]", connector, part);
    char *text = key ? json_dumps(key, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(key);
    return text;
}

char *sl_offset_store_get(sl_offset_store_t *s, const char *connector,
                          const char *partition_json) {
    char *key = make_key(connector, partition_json);
    if (!key) return NULL;
    pthread_mutex_lock(&s->lock);
    json_t *v = json_object_get(s->map, key);
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    pthread_mutex_unlock(&s->lock);
    free(key);
    return text;
}

int sl_offset_store_put(sl_offset_store_t *s, const char *connector, const char *partition_json,
                        const char *offset_json) {
    char *key = make_key(connector, partition_json);
    json_t *off = json_loads(offset_json, 0, NULL);
    int rc = -1;
    if (key && off && json_is_object(off)) {
        pthread_mutex_lock(&s->lock);
        rc = json_object_set(s->map, key, off);
        s->dirty = 1;
        pthread_mutex_unlock(&s->lock);
    }
    json_decref(off);
    free(key);
    return rc == 0 ? 0 : -1;
}

json_t *sl_offset_store_list(sl_offset_store_t *s, const char *connector) {
    json_t *list = json_array();
    const char *key;
    json_t *off;
    pthread_mutex_lock(&s->lock);
    json_object_foreach(s->map, key, off) {
        json_t *k = json_loads(key, 0, NULL);
        const char *conn = json_string_value(json_array_get(k, 0));
        json_t *part = json_array_get(k, 1);
        if (conn && strcmp(conn, connector) == 0 && json_is_object(part))
            json_array_append_new(list, json_pack("{sOsO}", "partition", part, "offset", off));
        json_decref(k);
    }
    pthread_mutex_unlock(&s->lock);
    return list;
}

int sl_offset_store_remove(sl_offset_store_t *s, const char *connector, const char *partition_json) {
    char *key = make_key(connector, partition_json);
    if (!key) return -1;
    pthread_mutex_lock(&s->lock);
    if (json_object_del(s->map, key) == 0) s->dirty = 1;
    pthread_mutex_unlock(&s->lock);
    free(key);
    return 0;
}

int sl_offset_store_flush(sl_offset_store_t *s, char *err, size_t errlen) {
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    if (s->dirty && s->path) {
        char *text = json_dumps(s->map, JSON_INDENT(1) | JSON_SORT_KEYS);
        rc = text ? sl_file_write_atomic(s->path, text, err, errlen) : -1;
        free(text);
        if (rc == 0) s->dirty = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}
