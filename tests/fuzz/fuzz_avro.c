/*
 * fuzz_avro.c - libFuzzer target: decoding incoming Kafka record values.
 * The first input byte picks the converter (raw Avro or Confluent-framed
 * Avro with the trades / finnhub_message schema, or JSON); the rest is the
 * message payload. A payload that decodes must encode again, and that
 * encoding must decode to a value that encodes to the same bytes. Built by
 * `make fuzz`; SLUICE_SCHEMAS_DIR is the repository's schemas/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "converter.h"
#include "record.h"
#include "schemas.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define NCONV 5
static sl_converter_t conv[NCONV];

static void init_one(sl_converter_t *c, sl_schemas_t *schemas, const char *kind,
                     const char *schema, const char *wire) {
    sl_props_t *p = sl_props_new();
    char err[256];
    sl_props_set(p, "value.converter", kind);
    if (schema) sl_props_set(p, "value.converter.schema", schema);
    if (wire) {
        sl_props_set(p, "value.converter.wire.format", wire);
        sl_props_set(p, "value.converter.schema.id", "7");
    }
    if (sl_converter_init(c, "value.converter", p, NULL, "bytes", schemas, err, sizeof err) != 0)
        abort();
    sl_props_free(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *dir = getenv("SLUICE_SCHEMAS_DIR");
    sl_schemas_t *schemas = sl_schemas_new(dir ? dir : SLUICE_SCHEMAS_DIR);
    if (!schemas) abort();
    init_one(&conv[0], schemas, "avro", "trades", NULL);
    init_one(&conv[1], schemas, "avro", "trades", "confluent");
    init_one(&conv[2], schemas, "avro", "finnhub_message", NULL);
    init_one(&conv[3], schemas, "json", "trades", NULL);
    init_one(&conv[4], schemas, "json", NULL, NULL);
    /* converters hold their own schema references */
    sl_schemas_free(schemas);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const sl_converter_t *c = &conv[data[0] % NCONV];
    char err[512];
    sluice_record_t *rec = sl_record_new();
    if (!rec) return 0;
    sluice_err_t e = sl_converter_decode(c, data + 1, size - 1, rec, err, sizeof err);
    if (e == SLUICE_OK) {
        void *out = NULL;
        size_t len = 0;
        if (sl_converter_encode(c, rec, &out, &len, err, sizeof err) == SLUICE_OK) {
            sluice_record_t *again = sl_record_new();
            if (sl_converter_decode(c, out, len, again, err, sizeof err) != SLUICE_OK)
                abort(); /* our own encoding must decode */
            void *out2 = NULL;
            size_t len2 = 0;
            if (sl_converter_encode(c, again, &out2, &len2, err, sizeof err) != SLUICE_OK ||
                len2 != len || (len && memcmp(out, out2, len) != 0))
                abort(); /* and be stable */
            free(out2);
            sl_record_free(again);
        }
        free(out);
    } else if (!err[0]) {
        abort(); /* a refusal says why */
    }
    sl_record_free(rec);
    return 0;
}
