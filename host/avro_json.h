/* JSON -> Avro decoding (avro-c only ships the opposite direction,
 * avro_value_to_json).
 *
 * Two JSON dialects are accepted, mixed freely within one document:
 *
 *  - Avro's official JSON encoding, as produced by avro_value_to_json:
 *    a non-null union value is wrapped as {"<branch type name>": value},
 *    bytes and fixed are strings whose code points are 0-255.
 *  - Plain JSON: a union value may be given bare; the branch is the first
 *    one (in schema order) the value fits best: null -> null; a JSON
 *    integer -> the first int (int32 range) / long / float / double branch
 *    that holds it exactly; a JSON real -> the first float/double branch
 *    that holds it exactly (else the first float/double branch at all);
 *    a string -> string, enum (symbol must match), bytes, fixed;
 *    an object -> a record whose fields it matches, else a map;
 *    an array -> the array branch.
 *
 * A one-key object given for a union is read as the tagged form when its
 * key names a branch ("int", "string", "array", "map", a named type's
 * name or full name "ns.Name"), except when the wrapped value is of the
 * wrong JSON kind for that branch while the whole object fits some branch
 * bare ({"map": 5} for a map of ints), or when the wrapped value is of the
 * right kind but invalid while the whole object exactly matches a record
 * branch. So a plain map whose only key is a branch name, e.g. {"int": 5}
 * for ["null","int",{"type":"map","values":"int"}], is read as the int 5.
 *
 * Records: every JSON key must name a field (extra keys are an error);
 * a missing field is set to null when its type is null or a union with
 * a null branch, otherwise it is an error. avro-c does not keep field
 * defaults from the schema text, so other defaults cannot be applied.
 *
 * float/double also accept the strings "NaN", "Infinity", "-Infinity".
 * int/long accept integral JSON reals (5.0) but reject 5.5.
 * A value nested deeper than SL_AVRO_JSON_MAX_DEPTH levels (the root is
 * level 1; every JSON value, scalars included, is one level below its
 * container) is refused, so hostile input cannot exhaust the stack.
 *
 * Errors go to err (always NUL-terminated when errlen > 0) prefixed by the
 * path of the offending value: record fields and identifier-like map keys
 * as ".name", other map keys as ["key"], array elements as [i], union tags
 * left out; paths longer than 400 bytes are cut and end in "...". E.g.
 *   "data[3].p: expected a number (double), got string"
 *   "data[3].p: string value matches no branch of union [null, double]"
 *   "data[0].q: unknown field (record Data has no field of that name)"
 *   "<root>: expected an object (record TestObject), got array"
 * When no union branch fits exactly, the first branch of the right JSON
 * kind is decoded so its error is reported ("3000000000 is out of range
 * for int"). In unions "NaN"/"Infinity" pick float/double only when no
 * string, enum or bytes branch accepts the string.
 * On error dest may hold a partially filled value; reset it before reuse
 * (sl_avro_from_json resets it on entry).
 *
 * The functions keep no global state and are safe to call concurrently on
 * distinct dest values.
 */
#ifndef SLUICE_HOST_AVRO_JSON_H
#define SLUICE_HOST_AVRO_JSON_H

#include <stddef.h>
#include <jansson.h>
#include <avro.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_AVRO_JSON_MAX_DEPTH 64

/* Fills dest (a generic value created from the schema, e.g. with
 * avro_generic_class_from_schema + avro_generic_value_new) from a JSON
 * document. Returns 0, or -1 with a message in err naming the field path
 * (e.g. "data[3].p: expected a number, got string"). */
int sl_avro_from_json(const json_t *json, avro_value_t *dest, char *err, size_t errlen);

/* Convenience: parse text (len bytes, need not be NUL-terminated; may
 * contain \u0000 escapes, duplicate object keys are rejected) then
 * sl_avro_from_json. */
int sl_avro_from_json_text(const char *text, size_t len, avro_value_t *dest, char *err,
                           size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_HOST_AVRO_JSON_H */
