/*
 * schemas.h - Avro schemas by name from a directory of .avsc files
 * ("trades" -> <dir>/trades.avsc), parsed once, shared by every task.
 * The cache owns one reference on each schema; callers borrow.
 */
#ifndef SLUICE_HOST_SCHEMAS_H
#define SLUICE_HOST_SCHEMAS_H

#include <stddef.h>
#include <avro.h>

typedef struct sl_schemas sl_schemas_t;

sl_schemas_t *sl_schemas_new(const char *dir);
void sl_schemas_free(sl_schemas_t *s);
/** The schema, or NULL with the reason in err (missing file, parse error). */
avro_schema_t sl_schemas_get(sl_schemas_t *s, const char *name, char *err, size_t errlen);

#endif
