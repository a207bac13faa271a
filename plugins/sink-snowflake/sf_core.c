/*
 * sf_core.c - the pure parts of sink-snowflake (see sf_core.h).
 */
#include "sf_core.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A growable string. */
typedef struct sfbuf {
    char *p;
    size_t len, cap;
    int oom;
} sfbuf_t;

static void sfb_put(sfbuf_t *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *g = realloc(b->p, cap);
        if (!g) {
            b->oom = 1;
            return;
        }
        b->p = g;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sfb_puts(sfbuf_t *b, const char *s) { sfb_put(b, s, strlen(s)); }

static char *sfb_done(sfbuf_t *b) {
    if (b->oom || !b->p) {
        free(b->p);
        return NULL;
    }
    return b->p;
}

static char *upper_dup(const char *s, size_t n) {
    char *r = malloc(n + 1);
    if (!r) return NULL;
    for (size_t i = 0; i < n; i++) r[i] = (char)toupper((unsigned char)s[i]);
    r[n] = '\0';
    return r;
}

/* ------------------------------------------------------------------------ */
/* base64, UUID, UTF-8                                                       */
/* ------------------------------------------------------------------------ */

char *sf_base64(const unsigned char *in, size_t n, int url) {
    static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char urls[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *tab = url ? urls : std;
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3) return NULL;
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        if (!url) {
            *o++ = '=';
            *o++ = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        if (!url) *o++ = '=';
    }
    *o = '\0';
    return out;
}

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int sf_base64_decode(const char *in, unsigned char **out, size_t *out_len) {
    size_t n = strlen(in);
    unsigned char *r = malloc(n / 4 * 3 + 3);
    if (!r) return -1;
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        if (isspace((unsigned char)*p)) continue;
        if (*p == '=') {
            pad++;
            continue;
        }
        int v = b64val((unsigned char)*p);
        if (v < 0 || pad) {
            free(r);
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            r[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (pad > 2 || bits >= 6) {
        free(r);
        return -1;
    }
    *out = r;
    *out_len = o;
    return 0;
}

int sf_uuid4(char out[37]) {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) return -1;
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return 0;
}

int sf_utf8_valid(const void *s, size_t n) {
    const unsigned char *p = s, *end = p + n;
    while (p < end) {
        unsigned char c = *p;
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            p++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            else if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            else if (c == 0xF4) hi = 0x8F;
        } else {
            return 0;
        }
        if ((size_t)(end - p) < len || p[1] < lo || p[1] > hi) return 0;
        for (size_t i = 2; i < len; i++)
            if (p[i] < 0x80 || p[i] > 0xBF) return 0;
        p += len;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Account, user, URL, tables                                                */
/* ------------------------------------------------------------------------ */

int sf_parse_url(const char *url, char **base, char **host, char *err, size_t errlen) {
    *base = *host = NULL;
    if (!url || !*url) {
        seterr(err, errlen, "snowflake.url.name is empty");
        return -1;
    }
    const char *scheme = "https";
    const char *p = url;
    if (strncasecmp(p, "https://", 8) == 0) {
        p += 8;
    } else if (strncasecmp(p, "http://", 7) == 0) {
        scheme = "http";
        p += 7;
    } else if (strstr(p, "://")) {
        seterr(err, errlen, "snowflake.url.name: only http:// and https:// are supported");
        return -1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl == 0) {
        seterr(err, errlen, "snowflake.url.name has no host");
        return -1;
    }
    for (size_t i = 0; i < hl; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!isalnum(c) && c != '-' && c != '.' && c != '_') {
            seterr(err, errlen, "snowflake.url.name: invalid character in the host");
            return -1;
        }
    }
    const char *rest = p + hl;
    long port = 0;
    if (*rest == ':') {
        char *end;
        port = strtol(rest + 1, &end, 10);
        if (end == rest + 1 || port <= 0 || port > 65535 || (*end && strcmp(end, "/") != 0)) {
            seterr(err, errlen, "snowflake.url.name: invalid port");
            return -1;
        }
    } else if (*rest && strcmp(rest, "/") != 0) {
        seterr(err, errlen, "snowflake.url.name: a path is not expected (give the host only)");
        return -1;
    }
    *host = strndup(p, hl);
    size_t blen = strlen(scheme) + 3 + hl + 8;
    *base = malloc(blen);
    if (!*host || !*base) {
        free(*host);
        free(*base);
        *base = *host = NULL;
        seterr(err, errlen, "out of memory");
        return -1;
    }
    if (port)
        snprintf(*base, blen, "%s://%.*s:%ld", scheme, (int)hl, p, port);
    else
        snprintf(*base, blen, "%s://%.*s", scheme, (int)hl, p);
    return 0;
}

char *sf_normalize_account(const char *account) {
    if (!account) return NULL;
    while (isspace((unsigned char)*account)) account++;
    size_t n = strlen(account);
    while (n && isspace((unsigned char)account[n - 1])) n--;
    char *a = upper_dup(account, n);
    if (!a) return NULL;
    char *global = strstr(a, ".GLOBAL");
    if (global) {
        /* a global URL's account: "<account>-<hash>.global" */
        *global = '\0';
        char *dash = strchr(a, '-');
        if (dash) *dash = '\0';
    } else {
        char *dot = strchr(a, '.');
        if (dot) {
            /* "org.account" (two parts, the second a plain name) joins with
             * '-'; "locator.region[.cloud]" drops the region. Regions always
             * hold a '-' ("us-east-1", "east-us-2.azure") or a second '.'. */
            const char *second = dot + 1;
            if (*second && !strchr(second, '.') && !strchr(second, '-'))
                *dot = '-';
            else
                *dot = '\0';
        }
    }
    if (!*a) {
        free(a);
        return NULL;
    }
    return a;
}

char *sf_normalize_user(const char *user) {
    if (!user) return NULL;
    while (isspace((unsigned char)*user)) user++;
    size_t n = strlen(user);
    while (n && isspace((unsigned char)user[n - 1])) n--;
    if (!n) return NULL;
    return upper_dup(user, n);
}

int sf_identifier_valid(const char *s) {
    if (!s || !*s || strlen(s) > 255) return 0;
    if (!isalpha((unsigned char)s[0]) && s[0] != '_') return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '$') return 0;
    return 1;
}

char *sf_table_from_topic(const char *topic) {
    if (!topic || !*topic) return NULL;
    size_t n = strlen(topic);
    if (n > 250) n = 250;
    char *t = malloc(n + 2), *o = t;
    if (!t) return NULL;
    if (isdigit((unsigned char)topic[0])) *o++ = '_';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)topic[i];
        *o++ = isalnum(c) || c == '_' ? (char)toupper(c) : '_';
    }
    *o = '\0';
    return t;
}

void sf_topic2table_free(sf_topic_map_t *m, size_t n) {
    for (size_t i = 0; m && i < n; i++) {
        free(m[i].topic);
        free(m[i].table);
    }
    free(m);
}

static char *trim_dup(const char *s, size_t n) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    return strndup(s, n);
}

int sf_topic2table_parse(const char *text, sf_topic_map_t **out, size_t *n, char *err,
                         size_t errlen) {
    *out = NULL;
    *n = 0;
    if (!text) return 0;
    sf_topic_map_t *m = NULL;
    size_t cnt = 0;
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, ",");
        char *item = trim_dup(p, len);
        p += len;
        if (*p == ',') p++;
        if (!item) goto oom;
        if (!*item) {
            free(item);
            continue;
        }
        char *colon = strrchr(item, ':');
        if (!colon || colon == item || !colon[1]) {
            seterr(err, errlen, "snowflake.topic2table.map: '%s' is not topic:table", item);
            free(item);
            goto fail;
        }
        char *topic = trim_dup(item, (size_t)(colon - item));
        char *table0 = trim_dup(colon + 1, strlen(colon + 1));
        free(item);
        char *table = table0 ? upper_dup(table0, strlen(table0)) : NULL;
        free(table0);
        if (!topic || !table) {
            free(topic);
            free(table);
            goto oom;
        }
        int bad = !sf_identifier_valid(table);
        for (size_t i = 0; !bad && i < cnt; i++)
            if (strcmp(m[i].topic, topic) == 0) bad = 2;
        if (bad) {
            if (bad == 1)
                seterr(err, errlen,
                       "snowflake.topic2table.map: table '%s' (topic %s) is not a valid "
                       "identifier ([A-Za-z_][A-Za-z0-9_$]*)",
                       table, topic);
            else
                seterr(err, errlen, "snowflake.topic2table.map: topic %s is mapped twice", topic);
            free(topic);
            free(table);
            goto fail;
        }
        sf_topic_map_t *g = realloc(m, (cnt + 1) * sizeof(*g));
        if (!g) {
            free(topic);
            free(table);
            goto oom;
        }
        m = g;
        m[cnt].topic = topic;
        m[cnt].table = table;
        cnt++;
    }
    *out = m;
    *n = cnt;
    return 0;
oom:
    seterr(err, errlen, "out of memory");
fail:
    sf_topic2table_free(m, cnt);
    return -1;
}

char *sf_table_for_topic(const sf_topic_map_t *m, size_t n, const char *topic) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(m[i].topic, topic) == 0) return strdup(m[i].table);
    return sf_table_from_topic(topic);
}

/* ------------------------------------------------------------------------ */
/* Private key, fingerprint, JWT                                             */
/* ------------------------------------------------------------------------ */

typedef struct pass_arg {
    const char *pass;
} pass_arg_t;

static int pass_cb(char *buf, int size, int rwflag, void *u) {
    (void)rwflag;
    const pass_arg_t *a = u;
    if (!a || !a->pass) return -1; /* an encrypted key without a passphrase */
    size_t n = strlen(a->pass);
    if (n > (size_t)size) return -1;
    memcpy(buf, a->pass, n);
    return (int)n;
}

static EVP_PKEY *read_pem(const char *pem, size_t len, const char *pass) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) return NULL;
    pass_arg_t a = {pass && *pass ? pass : NULL};
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, pass_cb, &a);
    BIO_free(bio);
    return k;
}

/* Wraps a bare base64 body in PEM lines of 64 characters. */
static char *wrap_pem(const char *body, const char *label) {
    sfbuf_t b = {0};
    sfb_puts(&b, "-----BEGIN ");
    sfb_puts(&b, label);
    sfb_puts(&b, "-----\n");
    size_t col = 0;
    for (const char *p = body; *p; p++) {
        if (isspace((unsigned char)*p)) continue;
        sfb_put(&b, p, 1);
        if (++col == 64) {
            sfb_put(&b, "\n", 1);
            col = 0;
        }
    }
    if (col) sfb_put(&b, "\n", 1);
    sfb_puts(&b, "-----END ");
    sfb_puts(&b, label);
    sfb_puts(&b, "-----\n");
    return sfb_done(&b);
}

EVP_PKEY *sf_load_private_key(const char *text, const char *passphrase, char *err,
                              size_t errlen) {
    if (!text || !*text) {
        seterr(err, errlen, "no private key given");
        return NULL;
    }
    int encrypted_pem = strstr(text, "ENCRYPTED PRIVATE KEY") != NULL;
    EVP_PKEY *k = NULL;
    if (strstr(text, "-----BEGIN")) {
        /* A PEM pasted with literal "\n" sequences (JSON configs) works too. */
        char *copy = strdup(text);
        if (!copy) {
            seterr(err, errlen, "out of memory");
            return NULL;
        }
        char *o = copy;
        for (const char *p = text; *p; p++) {
            if (p[0] == '\\' && p[1] == 'n') {
                *o++ = '\n';
                p++;
            } else {
                *o++ = *p;
            }
        }
        *o = '\0';
        k = read_pem(copy, strlen(copy), passphrase);
        OPENSSL_cleanse(copy, strlen(copy));
        free(copy);
    } else {
        /* The body only: encrypted PKCS#8 when a passphrase is given. */
        int has_pass = passphrase && *passphrase;
        for (int attempt = 0; attempt < 2 && !k; attempt++) {
            const char *label = (attempt == 0) == has_pass ? "ENCRYPTED PRIVATE KEY"
                                                           : "PRIVATE KEY";
            char *pem = wrap_pem(text, label);
            if (!pem) {
                seterr(err, errlen, "out of memory");
                return NULL;
            }
            k = read_pem(pem, strlen(pem), passphrase);
            if (k || attempt == 0) encrypted_pem = strcmp(label, "ENCRYPTED PRIVATE KEY") == 0;
            OPENSSL_cleanse(pem, strlen(pem));
            free(pem);
        }
    }
    if (!k) {
        unsigned long e = ERR_peek_last_error();
        char why[160] = "";
        if (e) ERR_error_string_n(e, why, sizeof(why));
        ERR_clear_error();
        if (encrypted_pem && !(passphrase && *passphrase))
            seterr(err, errlen,
                   "the private key is encrypted: set snowflake.private.key.passphrase");
        else if (encrypted_pem)
            seterr(err, errlen,
                   "the private key cannot be decrypted (wrong snowflake.private.key.passphrase?)");
        else
            seterr(err, errlen, "the private key cannot be read (%s)",
                   why[0] ? why : "not a PKCS#8 PEM key");
        return NULL;
    }
    ERR_clear_error();
    if (EVP_PKEY_base_id(k) != EVP_PKEY_RSA) {
        EVP_PKEY_free(k);
        seterr(err, errlen, "the private key is not an RSA key (Snowflake key-pair "
                            "authentication needs RSA)");
        return NULL;
    }
    return k;
}

char *sf_public_key_fp(EVP_PKEY *key) {
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(key, &der);
    if (len <= 0) return NULL;
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(der, (size_t)len, md);
    OPENSSL_free(der);
    char *b = sf_base64(md, sizeof(md), 0);
    if (!b) return NULL;
    char *fp = malloc(strlen(b) + 8);
    if (fp) {
        strcpy(fp, "SHA256:");
        strcat(fp, b);
    }
    free(b);
    return fp;
}

char *sf_jwt_claims(const char *account, const char *user, const char *fp, int64_t iat,
                    int64_t exp) {
    size_t n = strlen(account) + strlen(user) + strlen(fp) + 8;
    char *iss = malloc(n), *sub = malloc(n);
    json_t *o = NULL;
    char *text = NULL;
    if (!iss || !sub) goto out;
    snprintf(iss, n, "%s.%s.%s", account, user, fp);
    snprintf(sub, n, "%s.%s", account, user);
    o = json_pack("{s:s, s:s, s:I, s:I}", "iss", iss, "sub", sub, "iat", (json_int_t)iat, "exp",
                  (json_int_t)exp);
    if (o) text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
    json_decref(o);
    free(iss);
    free(sub);
    return text;
}

char *sf_jwt_make(EVP_PKEY *key, const char *account, const char *user, const char *fp,
                  int64_t iat, int64_t exp) {
    static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
    char *claims = sf_jwt_claims(account, user, fp, iat, exp);
    char *h64 = sf_base64((const unsigned char *)header, strlen(header), 1);
    char *c64 = claims ? sf_base64((const unsigned char *)claims, strlen(claims), 1) : NULL;
    char *input = NULL, *s64 = NULL, *jwt = NULL;
    unsigned char *sig = NULL;
    EVP_MD_CTX *ctx = NULL;
    if (!h64 || !c64) goto out;
    size_t in_len = strlen(h64) + 1 + strlen(c64);
    if (!(input = malloc(in_len + 1))) goto out;
    snprintf(input, in_len + 1, "%s.%s", h64, c64);
    size_t sig_len = 0;
    if (!(ctx = EVP_MD_CTX_new()) ||
        EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(ctx, NULL, &sig_len, (const unsigned char *)input, in_len) != 1 ||
        !(sig = malloc(sig_len)) ||
        EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)input, in_len) != 1)
        goto out;
    if (!(s64 = sf_base64(sig, sig_len, 1))) goto out;
    if ((jwt = malloc(in_len + 1 + strlen(s64) + 1)))
        sprintf(jwt, "%s.%s", input, s64);
out:
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    free(claims);
    free(h64);
    free(c64);
    free(input);
    free(sig);
    free(s64);
    return jwt;
}

/* ------------------------------------------------------------------------ */
/* Table layout                                                              */
/* ------------------------------------------------------------------------ */

const char *sf_coltype_sql(sf_coltype_t t) {
    switch (t) {
    case SF_TEXT: return "VARCHAR";
    case SF_FIXED: return "NUMBER(38,0)";
    case SF_REAL: return "FLOAT";
    case SF_BOOLEAN: return "BOOLEAN";
    case SF_TIMESTAMP_NTZ: return "TIMESTAMP_NTZ(9)";
    case SF_DATE: return "DATE";
    case SF_BINARY: return "BINARY";
    case SF_VARIANT: return "VARIANT";
    }
    return "VARCHAR";
}

const char *sf_coltype_binding(sf_coltype_t t) {
    switch (t) {
    case SF_TEXT: return "TEXT";
    case SF_FIXED: return "FIXED";
    case SF_REAL: return "REAL";
    case SF_BOOLEAN: return "BOOLEAN";
    case SF_TIMESTAMP_NTZ: return "TIMESTAMP_NTZ";
    case SF_DATE: return "DATE";
    case SF_BINARY: return "BINARY";
    case SF_VARIANT: return "TEXT";
    }
    return "TEXT";
}

void sf_layout_free(sf_layout_t *l) {
    if (!l) return;
    for (size_t i = 0; i < l->ncols; i++) free(l->cols[i].name);
    free(l->cols);
    l->cols = NULL;
    l->ncols = 0;
    l->has_variant = 0;
}

int sf_layout_find(const sf_layout_t *l, const char *name) {
    for (size_t i = 0; i < l->ncols; i++)
        if (strcasecmp(l->cols[i].name, name) == 0) return (int)i;
    return -1;
}

/* The logicalType of a field of the record in the .avsc text (through a
 * ["null", T] union), or NULL. Points into the json tree. */
static const char *field_logical(json_t *root, const char *field) {
    json_t *fields = json_object_get(root, "fields");
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f) {
        const char *name = json_string_value(json_object_get(f, "name"));
        if (!name || strcmp(name, field) != 0) continue;
        json_t *t = json_object_get(f, "type");
        if (json_is_array(t)) {
            json_t *b, *pick = NULL;
            size_t j;
            json_array_foreach(t, j, b) {
                if (!(json_is_string(b) && strcmp(json_string_value(b), "null") == 0)) {
                    if (pick) return NULL; /* not a nullable single type */
                    pick = b;
                }
            }
            t = pick;
        }
        return json_is_object(t) ? json_string_value(json_object_get(t, "logicalType")) : NULL;
    }
    return NULL;
}

/* The non-null branch of a ["null", T] / [T, "null"] union, or NULL. */
static avro_schema_t nullable_branch(avro_schema_t s) {
    if (!is_avro_union(s) || avro_schema_union_size(s) != 2) return NULL;
    avro_schema_t a = avro_schema_union_branch(s, 0), b = avro_schema_union_branch(s, 1);
    if (is_avro_null(a) && !is_avro_null(b)) return b;
    if (is_avro_null(b) && !is_avro_null(a)) return a;
    return NULL;
}

static int add_col(sf_layout_t *l, const char *name, sf_coltype_t type, sf_source_t src,
                   int field, int64_t scale) {
    sf_column_t *g = realloc(l->cols, (l->ncols + 1) * sizeof(*g));
    if (!g) return -1;
    l->cols = g;
    char *n = upper_dup(name, strlen(name));
    if (!n) return -1;
    l->cols[l->ncols++] =
        (sf_column_t){.name = n, .type = type, .source = src, .field = field, .ns_per_unit = scale};
    if (type == SF_VARIANT) l->has_variant = 1;
    return 0;
}

/* The column name of a field: renamed when renames says so. */
static char *rename_field(const char *renames, const char *field) {
    if (renames) {
        sf_topic_map_t *m = NULL;
        size_t n = 0;
        if (sf_topic2table_parse(renames, &m, &n, NULL, 0) == 0) {
            for (size_t i = 0; i < n; i++) {
                if (strcmp(m[i].topic, field) == 0) {
                    char *r = strdup(m[i].table);
                    sf_topic2table_free(m, n);
                    return r;
                }
            }
            sf_topic2table_free(m, n);
        }
    }
    return strdup(field);
}

int sf_layout_build(avro_schema_t schema, const char *logical, const char *renames,
                    sf_layout_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    json_t *avsc = NULL;
    if (renames) {
        sf_topic_map_t *m = NULL;
        size_t n = 0;
        if (sf_topic2table_parse(renames, &m, &n, err, errlen) != 0) return -1;
        sf_topic2table_free(m, n);
    }
    if (schema) {
        if (!is_avro_record(schema)) {
            seterr(err, errlen, "the value schema is a %s, not a record: no columns to map",
                   avro_schema_type_name(schema));
            return -1;
        }
        if (logical) avsc = json_loads(logical, 0, NULL);
        size_t nf = avro_schema_record_size(schema);
        for (size_t i = 0; i < nf; i++) {
            const char *fname = avro_schema_record_field_name(schema, (int)i);
            avro_schema_t fs = avro_schema_record_field_get_by_index(schema, (int)i);
            avro_schema_t inner = nullable_branch(fs);
            if (inner) fs = inner;
            const char *lt = avsc ? field_logical(avsc, fname) : NULL;
            sf_coltype_t t = SF_VARIANT;
            int64_t scale = 0;
            switch (avro_typeof(fs)) {
            case AVRO_STRING:
            case AVRO_ENUM: t = SF_TEXT; break;
            case AVRO_INT32:
                t = lt && strcmp(lt, "date") == 0 ? SF_DATE : SF_FIXED;
                break;
            case AVRO_INT64:
                t = SF_FIXED;
                if (lt && strcmp(lt, "timestamp-millis") == 0) {
                    t = SF_TIMESTAMP_NTZ;
                    scale = 1000000;
                } else if (lt && strcmp(lt, "timestamp-micros") == 0) {
                    t = SF_TIMESTAMP_NTZ;
                    scale = 1000;
                } else if (lt && (strcmp(lt, "local-timestamp-millis") == 0)) {
                    t = SF_TIMESTAMP_NTZ;
                    scale = 1000000;
                }
                break;
            case AVRO_FLOAT:
            case AVRO_DOUBLE: t = SF_REAL; break;
            case AVRO_BOOLEAN: t = SF_BOOLEAN; break;
            case AVRO_BYTES:
            case AVRO_FIXED: t = SF_BINARY; break;
            case AVRO_NULL: t = SF_TEXT; break;
            default: t = SF_VARIANT; break; /* record, array, map, other unions */
            }
            char *col = rename_field(renames, fname);
            if (!col || !sf_identifier_valid(col)) {
                seterr(err, errlen, "field %s: column name %s is not a valid identifier", fname,
                       col ? col : "(none)");
                free(col);
                goto fail;
            }
            int rc = add_col(out, col, t, SF_SRC_FIELD, (int)i, scale);
            free(col);
            if (rc != 0) goto oom;
        }
    } else if (add_col(out, "RECORD_CONTENT", SF_VARIANT, SF_SRC_CONTENT, -1, 0) != 0) {
        goto oom;
    }
    if (add_col(out, "KAFKA_TOPIC", SF_TEXT, SF_SRC_TOPIC, -1, 0) != 0 ||
        add_col(out, "KAFKA_PARTITION", SF_FIXED, SF_SRC_PARTITION, -1, 0) != 0 ||
        add_col(out, "KAFKA_OFFSET", SF_FIXED, SF_SRC_OFFSET, -1, 0) != 0 ||
        add_col(out, "KAFKA_KEY", SF_TEXT, SF_SRC_KEY, -1, 0) != 0 ||
        add_col(out, "KAFKA_TIMESTAMP", SF_TIMESTAMP_NTZ, SF_SRC_TIMESTAMP, -1, 1000000) != 0)
        goto oom;
    for (size_t i = 0; i < out->ncols; i++)
        for (size_t j = i + 1; j < out->ncols; j++)
            if (strcmp(out->cols[i].name, out->cols[j].name) == 0) {
                seterr(err, errlen, "two columns are named %s", out->cols[i].name);
                goto fail;
            }
    json_decref(avsc);
    return 0;
oom:
    seterr(err, errlen, "out of memory");
fail:
    json_decref(avsc);
    sf_layout_free(out);
    return -1;
}

char *sf_sql_create_table(const char *table, const sf_layout_t *l) {
    sfbuf_t b = {0};
    sfb_puts(&b, "CREATE TABLE IF NOT EXISTS ");
    sfb_puts(&b, table);
    sfb_puts(&b, " (");
    for (size_t i = 0; i < l->ncols; i++) {
        if (i) sfb_puts(&b, ", ");
        sfb_puts(&b, l->cols[i].name);
        sfb_puts(&b, " ");
        sfb_puts(&b, sf_coltype_sql(l->cols[i].type));
    }
    sfb_puts(&b, ")");
    return sfb_done(&b);
}

size_t sf_rows_per_statement(const sf_layout_t *l) {
    if (!l->ncols) return 0;
    size_t r = SF_MAX_BIND_ITEMS / l->ncols;
    return r ? r : 1;
}

static void values_list(sfbuf_t *b, size_t ncols, size_t nrows) {
    for (size_t r = 0; r < nrows; r++) {
        sfb_puts(b, r ? ",(" : "(");
        for (size_t c = 0; c < ncols; c++) sfb_puts(b, c ? ",?" : "?");
        sfb_puts(b, ")");
    }
}

static void col_expr(sfbuf_t *b, const sf_column_t *c, size_t i) {
    char tmp[64];
    if (c->type == SF_VARIANT)
        snprintf(tmp, sizeof(tmp), "PARSE_JSON(column%zu)", i + 1);
    else
        snprintf(tmp, sizeof(tmp), "column%zu", i + 1);
    sfb_puts(b, tmp);
}

char *sf_sql_insert(const char *table, const sf_layout_t *l, size_t nrows) {
    if (!nrows || !l->ncols) return NULL;
    sfbuf_t b = {0};
    sfb_puts(&b, "INSERT INTO ");
    sfb_puts(&b, table);
    sfb_puts(&b, " (");
    for (size_t i = 0; i < l->ncols; i++) {
        if (i) sfb_puts(&b, ",");
        sfb_puts(&b, l->cols[i].name);
    }
    sfb_puts(&b, ") ");
    if (l->has_variant) {
        sfb_puts(&b, "SELECT ");
        for (size_t i = 0; i < l->ncols; i++) {
            if (i) sfb_puts(&b, ", ");
            col_expr(&b, &l->cols[i], i);
        }
        sfb_puts(&b, " FROM VALUES ");
    } else {
        sfb_puts(&b, "VALUES ");
    }
    values_list(&b, l->ncols, nrows);
    return sfb_done(&b);
}

char *sf_sql_merge(const char *table, const sf_layout_t *l, size_t nrows, const int *keys,
                   size_t nkeys) {
    if (!nrows || !l->ncols || !nkeys) return NULL;
    for (size_t k = 0; k < nkeys; k++)
        if (keys[k] < 0 || (size_t)keys[k] >= l->ncols) return NULL;
    sfbuf_t b = {0};
    sfb_puts(&b, "MERGE INTO ");
    sfb_puts(&b, table);
    sfb_puts(&b, " T USING (SELECT ");
    for (size_t i = 0; i < l->ncols; i++) {
        if (i) sfb_puts(&b, ", ");
        col_expr(&b, &l->cols[i], i);
        sfb_puts(&b, " AS ");
        sfb_puts(&b, l->cols[i].name);
    }
    sfb_puts(&b, " FROM VALUES ");
    values_list(&b, l->ncols, nrows);
    sfb_puts(&b, ") S ON ");
    for (size_t k = 0; k < nkeys; k++) {
        const char *n = l->cols[keys[k]].name;
        if (k) sfb_puts(&b, " AND ");
        sfb_puts(&b, "T.");
        sfb_puts(&b, n);
        sfb_puts(&b, " = S.");
        sfb_puts(&b, n);
    }
    sfb_puts(&b, " WHEN MATCHED THEN UPDATE SET ");
    int first = 1;
    for (size_t i = 0; i < l->ncols; i++) {
        int is_key = 0;
        for (size_t k = 0; k < nkeys; k++) is_key |= keys[k] == (int)i;
        if (is_key) continue;
        if (!first) sfb_puts(&b, ", ");
        first = 0;
        sfb_puts(&b, "T.");
        sfb_puts(&b, l->cols[i].name);
        sfb_puts(&b, " = S.");
        sfb_puts(&b, l->cols[i].name);
    }
    sfb_puts(&b, " WHEN NOT MATCHED THEN INSERT (");
    for (size_t i = 0; i < l->ncols; i++) {
        if (i) sfb_puts(&b, ", ");
        sfb_puts(&b, l->cols[i].name);
    }
    sfb_puts(&b, ") VALUES (");
    for (size_t i = 0; i < l->ncols; i++) {
        if (i) sfb_puts(&b, ", ");
        sfb_puts(&b, "S.");
        sfb_puts(&b, l->cols[i].name);
    }
    sfb_puts(&b, ")");
    return sfb_done(&b);
}

int sf_bind_row(json_t *obj, size_t *next, const sf_layout_t *l, char *const *vals) {
    for (size_t i = 0; i < l->ncols; i++) {
        char key[24];
        snprintf(key, sizeof(key), "%zu", (*next)++);
        json_t *v = vals[i] ? json_string(vals[i]) : json_null();
        if (!v) return -1;
        json_t *b = json_pack("{s:s, s:o}", "type", sf_coltype_binding(l->cols[i].type),
                              "value", v);
        if (!b || json_object_set_new_nocheck(obj, key, b) != 0) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Snowpipe Streaming rows                                                   */
/* ------------------------------------------------------------------------ */

/* Epoch nanoseconds as "YYYY-MM-DDTHH:MM:SS.nnnnnnnnn" (with_time) or
 * epoch milliseconds as "YYYY-MM-DD". -1 when out of range. */
static int iso_text(int64_t v, int64_t per_s, int with_time, char *out, size_t n) {
    int64_t sec = v / per_s, frac = v % per_s;
    if (frac < 0) {
        frac += per_s;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 1 || tm.tm_year + 1900 > 9999) return -1;
    if (with_time)
        snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%09" PRId64, tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    else
        snprintf(out, n, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    return 0;
}

/* One column's value as the JSON Snowpipe Streaming reads for its type. */
static json_t *ndjson_value(const sf_column_t *c, const char *v, char *err, size_t errlen) {
    char *end = NULL, buf[48];
    errno = 0;
    switch (c->type) {
    case SF_FIXED: {
        long long x = strtoll(v, &end, 10);
        if (end != v && !*end && errno == 0) return json_integer(x);
        return json_string(v); /* a decimal: Snowflake reads the text */
    }
    case SF_REAL: {
        double d = strtod(v, &end);
        if (end != v && !*end && isfinite(d)) return json_real(d);
        return json_string(v); /* NaN, inf, -inf: not JSON numbers */
    }
    case SF_BOOLEAN: return json_boolean(strcmp(v, "true") == 0);
    case SF_TIMESTAMP_NTZ:
    case SF_DATE: {
        long long x = strtoll(v, &end, 10);
        int ts = c->type == SF_TIMESTAMP_NTZ;
        if (end == v || *end || errno ||
            iso_text(x, ts ? 1000000000 : 1000, ts, buf, sizeof(buf)) != 0) {
            seterr(err, errlen, "column %s: %s is not a %s this sink can write", c->name, v,
                   ts ? "timestamp" : "date");
            return NULL;
        }
        return json_string(buf);
    }
    case SF_VARIANT: {
        json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
        if (!j) seterr(err, errlen, "column %s: the value is not JSON", c->name);
        return j;
    }
    case SF_TEXT:
    case SF_BINARY: /* hex */
    default: return json_string(v);
    }
}

char *sf_row_ndjson(const sf_layout_t *l, char *const *vals, char *err, size_t errlen) {
    json_t *o = json_object();
    if (err && errlen) err[0] = '\0';
    if (!o) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < l->ncols; i++) {
        json_t *v = vals[i] ? ndjson_value(&l->cols[i], vals[i], err, errlen) : json_null();
        if (!v || json_object_set_new_nocheck(o, l->cols[i].name, v) != 0) {
            if (err && errlen && !err[0]) seterr(err, errlen, "out of memory");
            json_decref(o);
            return NULL;
        }
    }
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!line) seterr(err, errlen, "out of memory");
    return line;
}
