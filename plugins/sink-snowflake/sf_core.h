/*
 * sf_core.h - the pure parts of sink-snowflake: no network, no host.
 *
 *  - base64 / base64url, UUIDs;
 *  - Snowflake identifiers: the account and user as the key-pair JWT wants
 *    them, table names from topics and snowflake.topic2table.map;
 *  - the private key (PKCS#8 PEM, encrypted or not, or its bare base64 body),
 *    its public-key fingerprint and the RS256 JWT;
 *  - the table layout (columns from an Avro record schema plus the Kafka
 *    metadata columns), the SQL text of CREATE TABLE, INSERT and MERGE,
 *    and the NDJSON row of Snowpipe Streaming.
 *
 * Everything here is unit-tested in tests/test_snowflake.c. Strings returned
 * as char * are the caller's (free()). Functions that can fail for a reason a
 * user must see take an err buffer, which never receives key material.
 */
#ifndef SF_CORE_H
#define SF_CORE_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>
#include <jansson.h>
#include <openssl/evp.h>

/* The SQL API caps an expression list at 16,384 items: one INSERT binds at
 * most this many values. */
#define SF_MAX_BIND_ITEMS 16384

/* ------------------------------------------------------------------------ */
/* Text helpers                                                              */
/* ------------------------------------------------------------------------ */

/** Base64 of in[0..n): standard with padding, or base64url without padding
 *  when url is set. NULL on out of memory. */
char *sf_base64(const unsigned char *in, size_t n, int url);
/** Decodes standard base64, ignoring whitespace. 0 on success (*out is the
 *  caller's), -1 on bad input or out of memory. */
int sf_base64_decode(const char *in, unsigned char **out, size_t *out_len);
/** A random (version 4) UUID in out, 36 characters + NUL. 0 on success. */
int sf_uuid4(char out[37]);
/** 1 when s[0..n) is well-formed UTF-8. */
int sf_utf8_valid(const void *s, size_t n);

/* ------------------------------------------------------------------------ */
/* Account, user, URL, tables                                                */
/* ------------------------------------------------------------------------ */

/**
 * Splits snowflake.url.name into the base URL requests go to and the host.
 * Accepted: "acct.snowflakecomputing.com", "acct.snowflakecomputing.com:443",
 * "https://acct.snowflakecomputing.com[:port][/]", and "http://HOST:PORT" (a
 * local emulator: plain HTTP only when the scheme says so). Without a scheme
 * https is used. 0 on success (*base and *host are the caller's).
 */
int sf_parse_url(const char *url, char **base, char **host, char *err, size_t errlen);
/**
 * The account part of the JWT claims, from snowflake.account.name or, when
 * that is empty, from the URL host's first label. Upper-cased; an account
 * locator with a region ("xy12345.us-east-1", "xy12345.east-us-2.azure") is
 * cut at the first '.'; an "org.account" identifier has its '.' turned into
 * '-' ("myorg.acct" -> "MYORG-ACCT"). A ".global" account keeps only what is
 * before its first '-'. NULL when nothing is left.
 */
char *sf_normalize_account(const char *account);
/** The user name upper-cased (as Snowflake stores unquoted names). */
char *sf_normalize_user(const char *user);
/** 1 when s is an unquoted Snowflake identifier: [A-Za-z_][A-Za-z0-9_$]*,
 *  at most 255 characters. */
int sf_identifier_valid(const char *s);
/** The default table of a topic: upper-cased, every character that is not
 *  [A-Za-z0-9_$] replaced by '_', '_' prepended when it starts with a digit
 *  or '$'. */
char *sf_table_from_topic(const char *topic);

typedef struct sf_topic_map {
    char *topic;
    char *table; /* upper-cased */
} sf_topic_map_t;

/** Parses "t1:tbl1,t2:tbl2" (spaces around items ignored). Each table must
 *  be a valid identifier and each topic appear once. 0 on success. */
int sf_topic2table_parse(const char *text, sf_topic_map_t **out, size_t *n, char *err,
                         size_t errlen);
void sf_topic2table_free(sf_topic_map_t *m, size_t n);
/** The table of topic: mapped, else derived (caller frees). */
char *sf_table_for_topic(const sf_topic_map_t *m, size_t n, const char *topic);

/* ------------------------------------------------------------------------ */
/* Private key, fingerprint, JWT                                             */
/* ------------------------------------------------------------------------ */

/**
 * Loads an RSA private key from text: a PEM (PKCS#8 "ENCRYPTED PRIVATE KEY"
 * or "PRIVATE KEY", or PKCS#1 "RSA PRIVATE KEY"), or the base64 body of a
 * PKCS#8 key without its header lines (as Snowflake's Kafka connector
 * accepts), encrypted when passphrase is non-empty. NULL with a reason in err.
 */
EVP_PKEY *sf_load_private_key(const char *text, const char *passphrase, char *err,
                              size_t errlen);
/** "SHA256:" + base64(SHA-256(DER SubjectPublicKeyInfo)), the user's
 *  RSA_PUBLIC_KEY_FP. NULL on failure. */
char *sf_public_key_fp(EVP_PKEY *key);
/** The JWT claims as JSON text (for tests and the token). */
char *sf_jwt_claims(const char *account, const char *user, const char *fp, int64_t iat,
                    int64_t exp);
/** A signed RS256 JWT: iss "<ACCOUNT>.<USER>.<fp>", sub "<ACCOUNT>.<USER>",
 *  iat, exp. account and user must already be normalised. */
char *sf_jwt_make(EVP_PKEY *key, const char *account, const char *user, const char *fp,
                  int64_t iat, int64_t exp);

/* ------------------------------------------------------------------------ */
/* Table layout                                                              */
/* ------------------------------------------------------------------------ */

typedef enum sf_coltype {
    SF_TEXT = 1,      /* VARCHAR */
    SF_FIXED,         /* NUMBER(38,0) */
    SF_REAL,          /* FLOAT */
    SF_BOOLEAN,       /* BOOLEAN */
    SF_TIMESTAMP_NTZ, /* TIMESTAMP_NTZ(9), bound as epoch nanoseconds */
    SF_DATE,          /* DATE, bound as epoch milliseconds */
    SF_BINARY,        /* BINARY, bound as hex */
    SF_VARIANT,       /* VARIANT, bound as JSON text through PARSE_JSON */
} sf_coltype_t;

/* Where a column's value comes from. */
typedef enum sf_source {
    SF_SRC_FIELD = 1,      /* field `field` of the Avro record value */
    SF_SRC_CONTENT,        /* the whole value as JSON (RECORD_CONTENT) */
    SF_SRC_TOPIC,
    SF_SRC_PARTITION,
    SF_SRC_OFFSET,
    SF_SRC_KEY,
    SF_SRC_TIMESTAMP,
} sf_source_t;

typedef struct sf_column {
    char *name;        /* upper-cased identifier */
    sf_coltype_t type;
    sf_source_t source;
    int field;         /* SF_SRC_FIELD: index in the record */
    int64_t ns_per_unit; /* SF_TIMESTAMP_NTZ from a field: 1000000 (millis) or 1000 (micros) */
} sf_column_t;

typedef struct sf_layout {
    sf_column_t *cols;
    size_t ncols;
    int has_variant;
} sf_layout_t;

/** The SQL type of a column type ("NUMBER(38,0)", ...). */
const char *sf_coltype_sql(sf_coltype_t t);
/** The SQL API binding type of a column type ("FIXED", ...). */
const char *sf_coltype_binding(sf_coltype_t t);

/**
 * The layout for values of the Avro record schema (NULL: values without a
 * schema, stored whole in RECORD_CONTENT VARIANT), followed by KAFKA_TOPIC,
 * KAFKA_PARTITION, KAFKA_OFFSET, KAFKA_KEY and KAFKA_TIMESTAMP.
 * logical: the schema's JSON text (the .avsc) to read logicalType
 * annotations from (avro-c drops them), or NULL. renames: "field:COLUMN,..."
 * or NULL. 0 on success.
 */
int sf_layout_build(avro_schema_t schema, const char *logical, const char *renames,
                    sf_layout_t *out, char *err, size_t errlen);
void sf_layout_free(sf_layout_t *l);
/** Index of the column named name (case-insensitive), or -1. */
int sf_layout_find(const sf_layout_t *l, const char *name);

/** CREATE TABLE IF NOT EXISTS <table> (<col> <type>, ...). */
char *sf_sql_create_table(const char *table, const sf_layout_t *l);
/** Rows per INSERT so that it binds at most SF_MAX_BIND_ITEMS values. */
size_t sf_rows_per_statement(const sf_layout_t *l);
/**
 * The INSERT of nrows rows with positional '?' bindings, row after row:
 *   INSERT INTO T (A,B) VALUES (?,?),(?,?)
 * or, when the layout has VARIANT columns (PARSE_JSON is not allowed in a
 * VALUES clause):
 *   INSERT INTO T (A,B) SELECT column1, PARSE_JSON(column2) FROM VALUES (?,?),(?,?)
 */
char *sf_sql_insert(const char *table, const sf_layout_t *l, size_t nrows);
/**
 * The upsert of nrows rows (distinct keys) on the key columns:
 *   MERGE INTO T USING (SELECT column1 AS A, ... FROM VALUES (?,..),..) S
 *   ON T.K1 = S.K1 AND ... WHEN MATCHED THEN UPDATE SET T.A = S.A, ...
 *   WHEN NOT MATCHED THEN INSERT (A, ...) VALUES (S.A, ...)
 * keys: indexes of the key columns. NULL on bad arguments.
 */
char *sf_sql_merge(const char *table, const sf_layout_t *l, size_t nrows, const int *keys,
                   size_t nkeys);

/**
 * Appends a row's bindings to obj ("1": {"type":..., "value":...}, ...),
 * numbered from *next (advanced). vals[i] NULL binds NULL. 0 on success.
 */
int sf_bind_row(json_t *obj, size_t *next, const sf_layout_t *l, char *const *vals);

/**
 * A row for Snowpipe Streaming: one JSON object (no newline), keys the
 * column names in layout order, values typed as the REST API reads them:
 * NUMBER as a JSON integer, FLOAT as a number (NaN/inf as the strings
 * "NaN"/"inf"/"-inf"), BOOLEAN true/false, TIMESTAMP_NTZ (vals: epoch ns)
 * as "YYYY-MM-DDTHH:MM:SS.nnnnnnnnn" (an integer would be read as seconds,
 * ms, us or ns by its magnitude), DATE (vals: epoch ms) as "YYYY-MM-DD",
 * VARIANT as the JSON value itself, TEXT and BINARY (hex) as strings, NULL
 * as null. vals as for sf_bind_row. NULL with the reason in err (a value
 * that cannot be written, out of memory).
 */
char *sf_row_ndjson(const sf_layout_t *l, char *const *vals, char *err, size_t errlen);

#endif
