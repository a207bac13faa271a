/*
 * fuzz_config.c - libFuzzer target: connector/worker config parsing and the
 * config providers. The input is a JSON document handled as a connector
 * config ({"name", "config"} or flat), then its values resolved through
 * ${env:...} / ${file:...} (only a sandbox file and variable exist) and
 * validated against a plugin-style config definition table. Errors are fine;
 * crashes, leaks and hangs are not.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const sluice_config_def_t defs[] = {
    {.name = "connector.class", .type = SLUICE_CONFIG_STRING, .flags = SLUICE_CONFIG_REQUIRED},
    {.name = "tasks.max", .type = SLUICE_CONFIG_INT, .default_value = "1", .min = 1, .max = 64},
    {.name = "topics", .type = SLUICE_CONFIG_LIST},
    {.name = "ratio", .type = SLUICE_CONFIG_DOUBLE},
    {.name = "enabled", .type = SLUICE_CONFIG_BOOL, .default_value = "false"},
    {.name = "mode", .type = SLUICE_CONFIG_STRING, .allowed = "a|b|c"},
    {.name = "finnhub.token", .type = SLUICE_CONFIG_STRING, .flags = SLUICE_CONFIG_SECRET},
    {0},
};

static void on_error(void *arg, const char *key, const char *message) {
    (void)key;
    if (!message || !message[0]) abort(); /* every problem says what */
    (*(int *)arg)++;
}

static char dir[] = "/tmp/sluice-fuzz-XXXXXX";
static void cleanup(void) {
    unlink("a.properties");
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    /* The working directory holds the one file a ${file:...} reference can
     * name by a relative path (run.sh passes absolute corpus paths). */
    if (mkdtemp(dir) && chdir(dir) == 0) {
        FILE *f = fopen("a.properties", "w");
        if (f) { fputs("k=v\nsecret=s3cr3t\n", f); fclose(f); }
        atexit(cleanup);
    }
    setenv("FUZZ_VAR", "value", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) return 0;
    json_t *obj = json_object_get(doc, "config");
    if (!json_is_object(obj)) obj = doc;
    if (json_is_object(obj)) {
        sl_props_t *p = sl_props_from_json(obj, err, sizeof err);
        if (p) {
            sl_props_t *copy = sl_props_dup(p);
            if (sl_props_resolve(copy, err, sizeof err) == 0) {
                int problems = 0;
                sl_config_validate(copy, defs, sizeof defs[0], on_error, &problems);
                for (size_t i = 0; i < sl_props_count(copy); i++) {
                    int64_t iv; double dv; int bv;
                    const char *v = sl_props_value_at(copy, i);
                    (void)sl_parse_int64(v, &iv);
                    (void)sl_parse_double(v, &dv);
                    (void)sl_parse_bool(v, &bv);
                }
                sl_props_t *sub = sl_props_sub(copy, "value.converter.");
                sl_props_free(sub);
            } else if (!err[0] || (strstr(err, "s3cr3t") && !memmem(data, size, "s3cr3t", 6))) {
                abort(); /* errors name the reference, never a resolved value */
            }
            json_t *back = sl_props_to_json(p);
            json_decref(back);
            sl_props_free(copy);
            sl_props_free(p);
        } else if (!err[0]) {
            abort();
        }
    }
    json_decref(doc);
    return 0;
}
