/*
 * config.h - connector and worker configs: an ordered string map (props),
 * loading Kafka Connect-shaped JSON, config providers (${env:VAR},
 * ${file:path:key}) and validation against a plugin's declared definitions.
 *
 * Ownership: every sl_props_t is owned by whoever created it and freed with
 * sl_props_free(). Strings passed in are copied; strings returned are owned
 * by the props and valid until the key is set again or the props are freed.
 */
#ifndef SLUICE_HOST_CONFIG_H
#define SLUICE_HOST_CONFIG_H

#include <stddef.h>
#include <jansson.h>
#include <sluice/plugin.h>

typedef struct sl_props sl_props_t;

sl_props_t *sl_props_new(void);
void sl_props_free(sl_props_t *p);
sl_props_t *sl_props_dup(const sl_props_t *p);
/** Sets (or replaces) key; 0 on success, -1 on OOM. */
int sl_props_set(sl_props_t *p, const char *key, const char *value);
/** Removes key; 1 if it was there, 0 if not. */
int sl_props_unset(sl_props_t *p, const char *key);
const char *sl_props_get(const sl_props_t *p, const char *key);
size_t sl_props_count(const sl_props_t *p);
const char *sl_props_key_at(const sl_props_t *p, size_t i);
const char *sl_props_value_at(const sl_props_t *p, size_t i);
/** A new props holding the keys that start with prefix, prefix stripped
 *  ("transforms.w." -> "type", "window.size.ms", ...). */
sl_props_t *sl_props_sub(const sl_props_t *p, const char *prefix);

/**
 * A JSON object of config values -> props. Values may be strings or JSON
 * scalars: numbers keep their JSON text (3, 2.5), booleans become
 * "true"/"false", null is skipped. An array or object value is an error
 * naming the key. Returns NULL with a message in err on error.
 */
sl_props_t *sl_props_from_json(const json_t *obj, char *err, size_t errlen);
/** props -> a new JSON object of strings (caller json_decref()s). */
json_t *sl_props_to_json(const sl_props_t *p);

/**
 * Loads a connector config file in Kafka Connect's shape
 * {"name": "...", "config": {"connector.class": "...", ...}}.
 * A flat object with "name" and "connector.class" at the top level (the
 * PUT /config shape) is accepted too. On success *name (malloc'd) and
 * *config are set and 0 is returned; on error -1 and err says what and
 * where (file, key).
 */
int sl_connector_config_load(const char *path, char **name, sl_props_t **config,
                             char *err, size_t errlen);

/** Loads a worker config file: a flat JSON object -> props (NULL on error). */
sl_props_t *sl_worker_config_load(const char *path, char *err, size_t errlen);

/**
 * Resolves config providers in every value, in place:
 *   ${env:VAR}            the environment variable VAR (error if unset)
 *   ${env:VAR:-default}   VAR, or default when VAR is unset or empty (the
 *                         default ends at the first '}')
 *   ${file:path:key}      key from a file: a JSON object file, or a
 *                         key=value file (Java .properties or a .env file:
 *                         '#' comments, optional 'export ', optional single
 *                         or double quotes around the value)
 *   ${file:path}          the whole file, trailing newline stripped
 * A value may hold several references and literal text around them; "$${"
 * stands for a literal "${". An unknown provider, a missing variable, file
 * or key is an error naming the config key and the reference - never the
 * resolved value. Returns 0 or -1 with err set.
 */
int sl_props_resolve(sl_props_t *p, char *err, size_t errlen);

/** Called once per problem found by sl_config_validate(). */
typedef void (*sl_config_error_fn)(void *arg, const char *key, const char *message);

/**
 * Validates props against a plugin's definitions (array of def_size-byte
 * strides, terminated by name == NULL): required keys present and non-empty,
 * INT / DOUBLE / BOOL values parse (whole string, finite), numbers inside
 * [min,max] when min < max, STRING values among 'allowed' ("a|b|c") when set.
 * Each problem is reported to on_error (may be NULL); returns the number of
 * problems (0 = valid).
 */
int sl_config_validate(const sl_props_t *p, const sluice_config_def_t *defs,
                       size_t def_size, sl_config_error_fn on_error, void *arg);

/** Looks up a definition by name (NULL when not declared). */
const sluice_config_def_t *sl_config_def_find(const sluice_config_def_t *defs,
                                              size_t def_size, const char *name);

/** Value of key or the def's default (NULL when neither). */
const char *sl_config_value(const sl_props_t *p, const sluice_config_def_t *defs,
                            size_t def_size, const char *key);

/** Parsers shared by validation and the typed getters: 0 on success, -1 when
 *  the whole string is not a valid value of the type. */
int sl_parse_int64(const char *s, int64_t *out);
int sl_parse_double(const char *s, double *out);
int sl_parse_bool(const char *s, int *out);

/** Replaces the file at path with text atomically (temp file with mode
 *  0600, fsync, rename); 0 or -1 with err naming the file. */
int sl_file_write_atomic(const char *path, const char *text, char *err, size_t errlen);

#endif
