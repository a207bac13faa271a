/* schemas.c - see schemas.h. */
#include "schemas.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char *name;
    avro_schema_t schema;
} entry_t;

struct sl_schemas {
    pthread_mutex_t lock;
    char *dir;
    entry_t *items;
    size_t n, cap;
};

sl_schemas_t *sl_schemas_new(const char *dir) {
    sl_schemas_t *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->dir = strdup(dir ? dir : "schemas");
    if (!s->dir) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void sl_schemas_free(sl_schemas_t *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->items[i].name);
        avro_schema_decref(s->items[i].schema);
    }
    free(s->items);
    free(s->dir);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size >= 0 && size < (1 << 24) && fseek(f, 0, SEEK_SET) == 0 &&
            (buf = malloc((size_t)size + 1)) != NULL) {
            *len = fread(buf, 1, (size_t)size, f);
            buf[*len] = '\0';
        }
    }
    fclose(f);
    return buf;
}

static int valid_schema_name(const char *name) {
    if (!name || !*name || strstr(name, "..")) return 0;
    for (const char *c = name; *c; c++)
        if (*c == '/') return 0;
    return 1;
}

static avro_schema_t load(sl_schemas_t *s, const char *name, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.avsc", s->dir, name);
    size_t len = 0;
    char *text = read_file(path, &len);
    if (!text) {
        snprintf(err, errlen, "schema '%s': cannot read %s: %m", name, path);
        return NULL;
    }
    avro_schema_t schema = NULL;
    if (avro_schema_from_json_length(text, len, &schema) != 0) {
        snprintf(err, errlen, "schema '%s': %s is not a valid Avro schema: %s", name, path,
                 avro_strerror());
        schema = NULL;
    }
    free(text);
    return schema;
}

avro_schema_t sl_schemas_get(sl_schemas_t *s, const char *name, char *err, size_t errlen) {
    if (!valid_schema_name(name)) {
        snprintf(err, errlen, "schema name '%s' is not a plain file name", name ? name : "");
        return NULL;
    }
    avro_schema_t found = NULL;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n && !found; i++)
        if (strcmp(s->items[i].name, name) == 0) found = s->items[i].schema;
    if (!found && (found = load(s, name, err, errlen)) != NULL) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 8;
            entry_t *grown = realloc(s->items, cap * sizeof(*grown));
            if (grown) {
                s->items = grown;
                s->cap = cap;
            }
        }
        char *copy = strdup(name);
        if (s->n < s->cap && copy) {
            s->items[s->n++] = (entry_t){copy, found};
        } else {
            free(copy);
            avro_schema_decref(found);
            found = NULL;
            snprintf(err, errlen, "out of memory");
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}
