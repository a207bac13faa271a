/*
 * finnhub-replay - a local websocket server that speaks the Finnhub trades
 * protocol (wss://ws.finnhub.io), for tests and demos: a recording replayed,
 * or a seeded generator, with the faults a real feed has (drops, malformed
 * frames, error messages, pings) on demand.
 *
 *   finnhub-replay (--token T | --token-file F)
 *                  [--port N] [--port-file F]
 *                  [--file F.jsonl | --synthetic [--seed S] [--start-ms MS|now]]
 *                  [--rate N] [--count N] [--batch N] [--ping-ms N]
 *                  [--drop-after N] [--malformed-every N] [--error-every N]
 *                  [--max-symbols N] [--sent-file F] [--log-file F]
 *
 * Listens on 127.0.0.1 only (port 0, the default, is an ephemeral port) and
 * prints "ws://127.0.0.1:PORT" on stdout once listening (and writes it to
 * --port-file, atomically). Clients connect Finnhub-style to
 * ws://127.0.0.1:PORT/?token=T; a missing or wrong token gets HTTP 401
 * instead of the websocket upgrade. One client is served at a time: a second
 * concurrent connection is refused with HTTP 429 (Finnhub allows one
 * connection per API key); once the first one closes, the next is served.
 *
 * Client messages: {"type":"subscribe","symbol":"X"} and
 * {"type":"unsubscribe","symbol":"X"} (symbols up to 256 bytes, spaces and
 * colons allowed); anything else is answered with {"type":"error","msg":...}.
 * Trades are sent only for the symbols subscribed on that connection; trades
 * that come up for other symbols are skipped, as on the live feed.
 *
 * Sources:
 *   --file F.jsonl   one server message per line, as Finnhub sent it:
 *                    {"data":[{"p":..,"s":..,"t":..,"v":..,"c":..}],"type":"trade"}
 *                    or {"type":"ping"}; other messages are forwarded as
 *                    they are. Played once per server run, in order (a
 *                    reconnecting client resumes where the last one left).
 *                    The file is checked whole at start: a bad line is an
 *                    error naming the line.
 *   --synthetic      the default: a random walk per subscribed symbol,
 *                    fractional volumes (sometimes 0), "c" sometimes null or
 *                    absent, bursts of back-to-back messages. The same seed
 *                    (--seed, default 1) and the same subscriptions give the
 *                    same trades. "t" starts at --start-ms (default
 *                    1700000000000; "now" for the wall clock) and moves on
 *                    0..39 ms a trade.
 *
 * Shaping (N >= 0 unless said):
 *   --rate N             trades per second on average (0 = flat out; 100)
 *   --count N            stop sending trades after N in total per server run
 *                        (across reconnects); pings go on (0 = no limit)
 *   --batch N            max trades per message, N >= 1 (synthetic: 1..N at
 *                        random, default 5; file: recorded messages are
 *                        split to at most N, default as recorded)
 *   --ping-ms N          {"type":"ping"} every N ms (5000; 0 = never)
 *   --drop-after N       once per run, after exactly N trades, close the
 *                        client's TCP connection without a websocket close
 *   --malformed-every N  every Nth message of the trade stream is malformed,
 *                        rotating: not JSON, truncated JSON, "p" a string,
 *                        "s" missing, "t" negative, "t" not an integer,
 *                        "p" 1e999, "type":"news"
 *   --error-every N      every Nth message of the trade stream is
 *                        {"type":"error","msg":...} (when both hit, error)
 *   --max-symbols N      subscriptions per connection (50); one more is
 *                        answered {"type":"error","msg":"Subscribing to too
 *                        many symbols"}
 * Pings, recorded non-trade messages and error replies to client messages
 * are not counted as stream messages; malformed and error frames never count
 * as trades.
 *
 * Output:
 *   --sent-file F   appends each trade sent as one JSON line, with the exact
 *                   text of its values in the message, flushed per message
 *   --log-file F    one line per protocol event: connect (token ok /
 *                   refused), subscribe, unsubscribe, bad client message,
 *                   drop, disconnect, count reached, recording finished
 *
 * SIGINT or SIGTERM closes the connection, prints "N trades sent" on stdout
 * and exits 0. Exit 1: cannot listen or open a file; 2: bad arguments or a
 * bad recording.
 */
#include <libwebsockets.h>
#include <jansson.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#define MAX_SYMBOL_LEN 256
#define MAX_CLIENT_MSG 65536
#define MAX_PENDING 64
#define MALFORMED_KINDS 8
#define TICK_US 100000 /* the loop wakes at least this often to see signals */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */

typedef struct {
    long port;
    const char *port_file;
    char *token; /* owned */
    const char *file;
    uint64_t seed;
    int64_t start_ms;
    long rate;
    long long count;
    long batch; /* 0 = source default */
    long ping_ms;
    long long drop_after;
    long malformed_every;
    long error_every;
    long max_symbols;
    const char *sent_file;
    const char *log_file;
} opts_t;

static void usage(FILE *f) {
    fputs("usage: finnhub-replay (--token T | --token-file F) [--port N] [--port-file F]\n"
          "         [--file F.jsonl | --synthetic [--seed S] [--start-ms MS|now]]\n"
          "         [--rate N] [--count N] [--batch N] [--ping-ms N] [--drop-after N]\n"
          "         [--malformed-every N] [--error-every N] [--max-symbols N]\n"
          "         [--sent-file F] [--log-file F]\n"
          "\n"
          "A local Finnhub trades websocket server on 127.0.0.1 (port 0 = ephemeral).\n"
          "Prints ws://127.0.0.1:PORT once listening; clients connect to\n"
          "ws://127.0.0.1:PORT/?token=T (wrong or missing token: HTTP 401; a second\n"
          "concurrent client: HTTP 429) and send {\"type\":\"subscribe\",\"symbol\":\"X\"}.\n"
          "\n"
          "  --file F.jsonl       replay a recording (one Finnhub message a line)\n"
          "  --synthetic          seeded random-walk trades (default; --seed 1)\n"
          "  --start-ms MS|now    synthetic: first trade time (1700000000000)\n"
          "  --rate N             trades/s (100; 0 = flat out)\n"
          "  --count N            stop trades after N in total (0 = no limit)\n"
          "  --batch N            max trades a message (synthetic 1..5 random)\n"
          "  --ping-ms N          {\"type\":\"ping\"} period (5000; 0 = never)\n"
          "  --drop-after N       close the connection abruptly once, after N trades\n"
          "  --malformed-every N  every Nth stream message is malformed\n"
          "  --error-every N      every Nth stream message is {\"type\":\"error\"}\n"
          "  --max-symbols N      subscriptions a connection (50)\n"
          "  --sent-file F        append every trade sent, one JSON line each\n"
          "  --log-file F         protocol events, one line each\n"
          "SIGINT/SIGTERM: prints \"N trades sent\" and exits 0.\n",
          f);
}

static bool parse_ll(const char *s, long long min, long long max, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

static char *read_token_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "finnhub-replay: cannot read --token-file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char buf[1024];
    char *tok = NULL;
    if (fgets(buf, sizeof(buf), f)) {
        size_t n = strcspn(buf, "\r\n");
        while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t')) n--;
        buf[n] = '\0';
        if (n > 0) tok = strdup(buf);
    }
    fclose(f);
    if (!tok) fprintf(stderr, "finnhub-replay: --token-file %s holds no token\n", path);
    return tok;
}

/* Returns 0, or 2 (usage error, already reported). */
static int parse_opts(int argc, char **argv, opts_t *o) {
    *o = (opts_t){.seed = 1, .start_ms = 1700000000000LL, .rate = 100, .ping_ms = 5000,
                  .max_symbols = 50};
    const char *token_file = NULL, *token = NULL;
    bool synthetic = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(a, "--synthetic") == 0) {
            synthetic = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "finnhub-replay: %s needs a value\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        long long n = 0;
        bool ok = true;
        if (strcmp(a, "--port") == 0) ok = parse_ll(v, 0, 65535, &n), o->port = (long)n;
        else if (strcmp(a, "--port-file") == 0) o->port_file = v;
        else if (strcmp(a, "--token") == 0) token = v;
        else if (strcmp(a, "--token-file") == 0) token_file = v;
        else if (strcmp(a, "--file") == 0) o->file = v;
        else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            o->seed = strtoull(v, &end, 10);
            ok = !errno && end != v && !*end && v[0] != '-';
        } else if (strcmp(a, "--start-ms") == 0) {
            if (strcmp(v, "now") == 0) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                o->start_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
            } else {
                ok = parse_ll(v, 0, 4102444800000LL, &n), o->start_ms = n;
            }
        } else if (strcmp(a, "--rate") == 0) ok = parse_ll(v, 0, 10000000, &n), o->rate = (long)n;
        else if (strcmp(a, "--count") == 0) ok = parse_ll(v, 0, LLONG_MAX, &o->count);
        else if (strcmp(a, "--batch") == 0) ok = parse_ll(v, 1, 10000, &n), o->batch = (long)n;
        else if (strcmp(a, "--ping-ms") == 0) ok = parse_ll(v, 0, 86400000, &n), o->ping_ms = (long)n;
        else if (strcmp(a, "--drop-after") == 0) ok = parse_ll(v, 0, LLONG_MAX, &o->drop_after);
        else if (strcmp(a, "--malformed-every") == 0)
            ok = parse_ll(v, 0, LONG_MAX, &n), o->malformed_every = (long)n;
        else if (strcmp(a, "--error-every") == 0)
            ok = parse_ll(v, 0, LONG_MAX, &n), o->error_every = (long)n;
        else if (strcmp(a, "--max-symbols") == 0)
            ok = parse_ll(v, 1, 100000, &n), o->max_symbols = (long)n;
        else if (strcmp(a, "--sent-file") == 0) o->sent_file = v;
        else if (strcmp(a, "--log-file") == 0) o->log_file = v;
        else {
            fprintf(stderr, "finnhub-replay: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "finnhub-replay: bad value for %s: '%s'\n", a, v);
            return 2;
        }
    }
    if (synthetic && o->file) {
        fprintf(stderr, "finnhub-replay: --file and --synthetic exclude each other\n");
        return 2;
    }
    if (!!token == !!token_file) {
        fprintf(stderr, "finnhub-replay: give exactly one of --token or --token-file\n");
        usage(stderr);
        return 2;
    }
    o->token = token ? strdup(token) : read_token_file(token_file);
    if (!o->token) return 2;
    if (!*o->token) {
        fprintf(stderr, "finnhub-replay: the token is empty\n");
        free(o->token);
        o->token = NULL;
        return 2;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Trades and their JSON text                                                */

typedef enum { COND_ABSENT, COND_NULL, COND_LIST } cond_kind_t;

/* A view: the strings belong to the recording or the generator. */
typedef struct {
    const char *s;
    double p, v;
    int64_t t;
    cond_kind_t ckind;
    const char *const *c;
    size_t nc;
} trade_t;

/* Growable text buffer with LWS_PRE bytes of headroom for lws_write. */
typedef struct {
    char *buf;
    size_t len, cap; /* len counts the text only */
    bool oom;
} sbuf_t;

static void sb_reset(sbuf_t *b) {
    b->len = 0;
    b->oom = false;
}

static void sb_add(sbuf_t *b, const char *s, size_t n) {
    if (b->oom) return;
    if (LWS_PRE + b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (LWS_PRE + b->len + n + 1 > cap) cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) {
            b->oom = true;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + LWS_PRE + b->len, s, n);
    b->len += n;
    b->buf[LWS_PRE + b->len] = '\0';
}

static void sb_str(sbuf_t *b, const char *s) { sb_add(b, s, strlen(s)); }

static const char *sb_text(const sbuf_t *b) { return b->buf ? b->buf + LWS_PRE : ""; }

/* A JSON string literal, escaped by jansson. */
static void sb_json_string(sbuf_t *b, const char *s) {
    json_t *j = json_string(s);
    char *txt = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    if (txt) sb_str(b, txt);
    else b->oom = true;
    free(txt);
    json_decref(j);
}

/* The shortest text that reads back as the same double, as Finnhub (and
 * most JSON encoders) print numbers: 7296.89, not 7296.8900000000003, and 80,
 * not 8e+01. Plain decimals where they are short, exponents otherwise. */
static void fmt_double(char out[40], double d) {
    double a = fabs(d);
    if (a == 0 || (a >= 1e-6 && a < 1e15)) {
        for (int prec = 0; prec <= 10; prec++) {
            snprintf(out, 40, "%.*f", prec, d);
            if (strtod(out, NULL) == d) return;
        }
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, 40, "%.*g", prec, d);
        if (strtod(out, NULL) == d) return;
    }
}

static void sb_trade(sbuf_t *b, const trade_t *t) {
    char num[40];
    sb_str(b, "{\"p\":");
    fmt_double(num, t->p);
    sb_str(b, num);
    sb_str(b, ",\"s\":");
    sb_json_string(b, t->s);
    snprintf(num, sizeof(num), ",\"t\":%" PRId64 ",\"v\":", t->t);
    sb_str(b, num);
    fmt_double(num, t->v);
    sb_str(b, num);
    if (t->ckind == COND_NULL) sb_str(b, ",\"c\":null");
    if (t->ckind == COND_LIST) {
        sb_str(b, ",\"c\":[");
        for (size_t i = 0; i < t->nc; i++) {
            if (i) sb_str(b, ",");
            sb_json_string(b, t->c[i]);
        }
        sb_str(b, "]");
    }
    sb_str(b, "}");
}

static void sb_trade_message(sbuf_t *b, const trade_t *trades, size_t n) {
    sb_str(b, "{\"data\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) sb_str(b, ",");
        sb_trade(b, &trades[i]);
    }
    sb_str(b, "],\"type\":\"trade\"}");
}

/* {"type":"error","msg":MSG}; returns malloc'd text or NULL. */
static char *error_message(const char *msg) {
    json_t *j = json_pack("{s:s, s:s}", "type", "error", "msg", msg);
    char *txt = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    return txt;
}

/* ------------------------------------------------------------------------ */
/* Recording (--file)                                                        */

typedef struct {
    trade_t *trades; /* NULL: a message forwarded as it is (raw) */
    size_t n;
    char *raw;
} rec_msg_t;

typedef struct {
    rec_msg_t *msgs;
    size_t n;
    size_t msg, trade; /* replay position */
    bool finished_logged;
} recording_t;

static void trade_free_owned(trade_t *t) {
    free((void *)t->s);
    for (size_t i = 0; i < t->nc; i++) free((void *)t->c[i]);
    free((void *)t->c);
}

static void recording_free(recording_t *r) {
    for (size_t i = 0; i < r->n; i++) {
        for (size_t j = 0; j < r->msgs[i].n; j++) trade_free_owned(&r->msgs[i].trades[j]);
        free(r->msgs[i].trades);
        free(r->msgs[i].raw);
    }
    free(r->msgs);
    *r = (recording_t){0};
}

/* Symbols are printable: no control characters (so log lines stay lines). */
static bool printable(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

/* Fills *t from a recorded trade object (strings copied); NULL or a reason. */
static const char *trade_from_json(json_t *o, trade_t *t) {
    *t = (trade_t){0};
    if (!json_is_object(o)) return "a trade is not an object";
    json_t *p = json_object_get(o, "p"), *s = json_object_get(o, "s"), *tt = json_object_get(o, "t"),
           *v = json_object_get(o, "v"), *c = json_object_get(o, "c");
    if (!json_is_number(p)) return "\"p\" is not a number";
    if (!json_is_string(s) || json_string_length(s) == 0 || json_string_length(s) > MAX_SYMBOL_LEN ||
        strlen(json_string_value(s)) != json_string_length(s) || !printable(json_string_value(s)))
        return "\"s\" is not a symbol";
    if (!json_is_integer(tt) || json_integer_value(tt) < 0) return "\"t\" is not a time in ms";
    if (!json_is_number(v)) return "\"v\" is not a number";
    if (c && !json_is_null(c) && !json_is_array(c)) return "\"c\" is not a list or null";
    for (size_t i = 0; json_is_array(c) && i < json_array_size(c); i++)
        if (!json_is_string(json_array_get(c, i))) return "\"c\" holds a non-string";
    t->p = json_number_value(p);
    t->v = json_number_value(v);
    t->t = json_integer_value(tt);
    t->s = strdup(json_string_value(s));
    if (!t->s) return "out of memory";
    t->ckind = !c ? COND_ABSENT : json_is_null(c) ? COND_NULL : COND_LIST;
    if (t->ckind == COND_LIST && json_array_size(c) > 0) {
        const char **list = calloc(json_array_size(c), sizeof(*list));
        if (!list) return "out of memory";
        t->c = list;
        for (size_t i = 0; i < json_array_size(c); i++) {
            list[i] = strdup(json_string_value(json_array_get(c, i)));
            if (!list[i]) return "out of memory";
            t->nc = i + 1;
        }
    }
    return NULL;
}

static const char *rec_msg_from_json(json_t *m, rec_msg_t *out) {
    *out = (rec_msg_t){0};
    if (!json_is_object(m)) return "not a JSON object";
    const char *type = json_string_value(json_object_get(m, "type"));
    if (!type) return "no \"type\"";
    if (strcmp(type, "trade") != 0) {
        out->raw = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
        return out->raw ? NULL : "out of memory";
    }
    json_t *data = json_object_get(m, "data");
    if (!json_is_array(data) || json_array_size(data) == 0) return "\"data\" is not a non-empty list";
    out->trades = calloc(json_array_size(data), sizeof(trade_t));
    if (!out->trades) return "out of memory";
    for (size_t i = 0; i < json_array_size(data); i++) {
        const char *why = trade_from_json(json_array_get(data, i), &out->trades[i]);
        out->n = i + 1; /* the failed one holds what it got: freed with the rest */
        if (why) return why;
    }
    return NULL;
}

/* Returns 0, or 2 with the reason on stderr. */
static int recording_load(recording_t *r, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "finnhub-replay: cannot open --file %s: %s\n", path, strerror(errno));
        return 2;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0, alloc = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t n = strspn(line, " \t\r\n");
        if ((ssize_t)n == len) continue; /* blank */
        if (r->n == alloc) {
            size_t na = alloc ? alloc * 2 : 64;
            rec_msg_t *nm = realloc(r->msgs, na * sizeof(*nm));
            if (!nm) {
                fprintf(stderr, "finnhub-replay: out of memory reading %s\n", path);
                rc = 2;
                break;
            }
            r->msgs = nm;
            alloc = na;
        }
        json_error_t err;
        json_t *m = json_loadb(line, (size_t)len, 0, &err);
        const char *why = m ? rec_msg_from_json(m, &r->msgs[r->n]) : err.text;
        if (m) r->n++; /* kept even when bad, so it is freed */
        if (why) fprintf(stderr, "finnhub-replay: %s:%zu: %s\n", path, lineno, why);
        json_decref(m);
        if (why) {
            rc = 2;
            break;
        }
    }
    free(line);
    if (!rc && ferror(f)) {
        fprintf(stderr, "finnhub-replay: error reading %s\n", path);
        rc = 2;
    }
    fclose(f);
    if (!rc && r->n == 0) {
        fprintf(stderr, "finnhub-replay: %s holds no messages\n", path);
        rc = 2;
    }
    if (rc) recording_free(r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Synthetic trades (--synthetic)                                            */

typedef struct {
    char *symbol;
    double price;
    int decimals; /* of the price */
    bool crypto;  /* EXCHANGE:PAIR style: fractional volumes */
} sym_state_t;

typedef struct {
    uint64_t rng;
    int64_t t_ms;
    sym_state_t *syms;
    size_t nsyms, cap;
    long burst_left;
} synth_t;

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static double rng_normal(uint64_t *s) {
    double u = rng_unit(s), v = rng_unit(s);
    if (u < 1e-300) u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* x rounded to a number of decimals, as the nearest double to that decimal
 * (so it prints short: 4261.94, not 4261.9400000000005). */
static double round_dec(double x, int decimals) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%.*f", decimals, x);
    return strtod(buf, NULL);
}

static void synth_free(synth_t *g) {
    for (size_t i = 0; i < g->nsyms; i++) free(g->syms[i].symbol);
    free(g->syms);
    *g = (synth_t){0};
}

/* The walk state of a symbol, created on first use (NULL: out of memory).
 * The start price depends on the seed and the symbol only. */
static sym_state_t *synth_symbol(synth_t *g, uint64_t seed, const char *symbol) {
    for (size_t i = 0; i < g->nsyms; i++)
        if (strcmp(g->syms[i].symbol, symbol) == 0) return &g->syms[i];
    if (g->nsyms == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 16;
        sym_state_t *ns = realloc(g->syms, nc * sizeof(*ns));
        if (!ns) return NULL;
        g->syms = ns;
        g->cap = nc;
    }
    uint64_t h = seed ^ 0xcbf29ce484222325ULL;
    for (const char *c = symbol; *c; c++) h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
    double price = exp(log(0.5) + rng_unit(&h) * (log(60000.0) - log(0.5)));
    static const struct {
        const char *part;
        double price;
    } known[] = {{"BTC", 37000}, {"ETH", 2000}, {"XRP", 0.6}, {"DOGE", 0.08}, {"AAPL", 190}};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strstr(symbol, known[i].part)) price = known[i].price * (0.9 + 0.2 * rng_unit(&h));
    sym_state_t *st = &g->syms[g->nsyms];
    st->symbol = strdup(symbol);
    if (!st->symbol) return NULL;
    st->decimals = price >= 1.0 ? 2 : 6;
    st->price = round_dec(price, st->decimals);
    st->crypto = strchr(symbol, ':') != NULL;
    g->nsyms++;
    return st;
}

static const char *const COND_CODES[] = {"1", "8", "12", "24", "37"};

/* One trade for st: the next step of its walk. */
static void synth_trade(synth_t *g, sym_state_t *st, trade_t *t, const char **cbuf) {
    double tick = pow(10.0, -st->decimals);
    st->price = fmax(round_dec(st->price * (1.0 + 0.0004 * rng_normal(&g->rng)), st->decimals), tick);
    double r = rng_unit(&g->rng), v;
    if (r < 0.02) v = 0; /* a price update without a trade */
    else if (st->crypto) v = fmax(round_dec(exp(-4.0 + 1.8 * rng_normal(&g->rng)), 6), 0.000001);
    else if (r < 0.12) v = fmax(round_dec(rng_unit(&g->rng) * 2.0, 4), 0.0001); /* fractional shares */
    else v = (double)(1 + rng_next(&g->rng) % 500);
    g->t_ms += (int64_t)(rng_next(&g->rng) % 40);
    *t = (trade_t){.s = st->symbol, .p = st->price, .v = v, .t = g->t_ms};
    double cr = rng_unit(&g->rng);
    if (cr < 0.15) t->ckind = COND_NULL;
    else if (cr < 0.25) t->ckind = COND_ABSENT;
    else {
        t->ckind = COND_LIST;
        t->nc = 1 + rng_next(&g->rng) % 2;
        for (size_t i = 0; i < t->nc; i++) cbuf[i] = COND_CODES[rng_next(&g->rng) % 5];
        t->c = cbuf;
    }
}

/* ------------------------------------------------------------------------ */
/* Server                                                                    */

typedef struct session {
    struct lws *wsi;
    char **subs;
    size_t nsubs, subs_cap;
    char *rx;
    size_t rx_len;
    bool rx_too_big;
    char *pending[MAX_PENDING]; /* replies to the client, oldest first */
    size_t npending;
    int64_t next_ping_us;
    bool drop_now;
    char peer[64];
} session_t;

typedef struct {
    opts_t o;
    FILE *sent, *log;
    recording_t rec; /* when --file */
    synth_t syn;     /* otherwise */
    uint64_t trades_sent, stream_msgs, malformed_sent, errors_sent;
    int64_t next_trade_us;
    bool dropped, count_logged;
    session_t *client;
    struct lws_context *ctx;
    lws_sorted_usec_list_t tick;
    sbuf_t out;
    trade_t *batch; /* room for one message's trades */
    const char **cbuf; /* room for synthetic "c" lists: 2 a trade */
    size_t batch_cap;
} server_t;

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void log_event(server_t *srv, const char *fmt, ...) {
    if (!srv->log) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(srv->log, "%s.%03ldZ ", when, ts.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(srv->log, fmt, ap);
    va_end(ap);
    fputc('\n', srv->log);
    fflush(srv->log);
}

static bool subscribed(const session_t *s, const char *symbol) {
    for (size_t i = 0; i < s->nsubs; i++)
        if (strcmp(s->subs[i], symbol) == 0) return true;
    return false;
}

static bool count_reached(const server_t *srv) {
    return srv->o.count > 0 && srv->trades_sent >= (uint64_t)srv->o.count;
}

static bool source_finished(const server_t *srv) {
    return srv->o.file && srv->rec.msg >= srv->rec.n;
}

static bool stream_active(const server_t *srv, const session_t *s) {
    return s->nsubs > 0 && !count_reached(srv) && !source_finished(srv);
}

/* Queues a reply (takes msg; NULL is out of memory and is dropped). */
static void queue_reply(server_t *srv, session_t *s, char *msg) {
    if (!msg) return;
    if (s->npending == MAX_PENDING) { /* a client flooding us: keep the oldest */
        log_event(srv, "reply dropped: %zu replies pending", s->npending);
        free(msg);
        return;
    }
    s->pending[s->npending++] = msg;
}

static void schedule(server_t *srv, session_t *s) {
    if (s->npending > 0 || s->drop_now) {
        lws_callback_on_writable(s->wsi);
        return;
    }
    int64_t due = INT64_MAX;
    if (srv->o.ping_ms > 0) due = s->next_ping_us;
    if (stream_active(srv, s)) {
        int64_t t = (srv->o.rate == 0 || srv->syn.burst_left > 0) ? 0 : srv->next_trade_us;
        if (t < due) due = t;
    }
    if (due == INT64_MAX) {
        lws_set_timer_usecs(s->wsi, LWS_SET_TIMER_USEC_CANCEL);
        return;
    }
    int64_t now = mono_us();
    if (due <= now) lws_callback_on_writable(s->wsi);
    else lws_set_timer_usecs(s->wsi, due - now);
}

static int send_text(struct lws *wsi, char *buf_with_pre, size_t len) {
    int n = lws_write(wsi, (unsigned char *)buf_with_pre + LWS_PRE, len, LWS_WRITE_TEXT);
    return n < (int)len ? -1 : 0;
}

static int send_string(server_t *srv, struct lws *wsi, const char *text) {
    sb_reset(&srv->out);
    sb_str(&srv->out, text);
    if (srv->out.oom) return -1;
    return send_text(wsi, srv->out.buf, srv->out.len);
}

static bool ensure_batch(server_t *srv, size_t n) {
    if (n <= srv->batch_cap) return true;
    trade_t *b = realloc(srv->batch, n * sizeof(*b));
    if (!b) return false;
    srv->batch = b;
    const char **c = realloc(srv->cbuf, n * 2 * sizeof(*c));
    if (!c) return false;
    srv->cbuf = c;
    srv->batch_cap = n;
    return true;
}

/* Up to limit trades for s from the recording: the rest of the current
 * message, skipping other symbols. *raw is set instead when the next message
 * is not a trade message. Returns the number of trades in srv->batch. */
static size_t replay_next(server_t *srv, session_t *s, size_t limit, const char **raw) {
    recording_t *r = &srv->rec;
    size_t n = 0;
    *raw = NULL;
    while (r->msg < r->n && n == 0) {
        rec_msg_t *m = &r->msgs[r->msg];
        if (!m->trades) {
            *raw = m->raw;
            r->msg++;
            return 0;
        }
        if (!ensure_batch(srv, limit < m->n ? limit : m->n)) return 0;
        while (r->trade < m->n && n < limit) {
            const trade_t *t = &m->trades[r->trade++];
            if (subscribed(s, t->s)) srv->batch[n++] = *t;
        }
        if (r->trade >= m->n) {
            r->msg++;
            r->trade = 0;
        }
    }
    return n;
}

static size_t synth_next(server_t *srv, session_t *s, size_t limit) {
    synth_t *g = &srv->syn;
    size_t max = srv->o.batch ? (size_t)srv->o.batch : 5;
    size_t n = 1 + rng_next(&g->rng) % max;
    if (n > limit) n = limit;
    if (!ensure_batch(srv, n)) return 0;
    for (size_t i = 0; i < n; i++) {
        sym_state_t *st = synth_symbol(g, srv->o.seed, s->subs[rng_next(&g->rng) % s->nsubs]);
        if (!st) return i;
        synth_trade(g, st, &srv->batch[i], &srv->cbuf[2 * i]);
    }
    if (g->burst_left > 0) g->burst_left--;
    else if (rng_next(&g->rng) % 100 < 3) g->burst_left = 5 + (long)(rng_next(&g->rng) % 16);
    return n;
}

static void build_malformed(server_t *srv, session_t *s) {
    static const char *const tmpl[MALFORMED_KINDS] = {
        "finnhub-replay: this frame is not JSON",
        "{\"data\":[{\"p\":101.25,\"s\":%S,\"t\":17000000",
        "{\"data\":[{\"p\":\"101.25\",\"s\":%S,\"t\":1700000000000,\"v\":1}],\"type\":\"trade\"}",
        "{\"data\":[{\"p\":101.25,\"t\":1700000000000,\"v\":1}],\"type\":\"trade\"}",
        "{\"data\":[{\"p\":101.25,\"s\":%S,\"t\":-1700000000000,\"v\":1}],\"type\":\"trade\"}",
        "{\"data\":[{\"p\":101.25,\"s\":%S,\"t\":1700000000000.5,\"v\":1}],\"type\":\"trade\"}",
        "{\"data\":[{\"p\":1e999,\"s\":%S,\"t\":1700000000000,\"v\":1}],\"type\":\"trade\"}",
        "{\"data\":[{\"headline\":\"finnhub-replay test news\",\"related\":%S}],\"type\":\"news\"}",
    };
    const char *t = tmpl[srv->malformed_sent++ % MALFORMED_KINDS];
    const char *sym = strstr(t, "%S");
    sb_reset(&srv->out);
    sb_add(&srv->out, t, sym ? (size_t)(sym - t) : strlen(t));
    if (sym) {
        sb_json_string(&srv->out, s->subs[0]);
        sb_str(&srv->out, sym + 2);
    }
}

static void write_sent(server_t *srv, size_t n) {
    if (!srv->sent) return;
    sbuf_t line = {0};
    for (size_t i = 0; i < n; i++) {
        sb_reset(&line);
        sb_trade(&line, &srv->batch[i]);
        if (!line.oom) fprintf(srv->sent, "%s\n", sb_text(&line));
    }
    free(line.buf);
    fflush(srv->sent);
}

/* Sends the next message of the trade stream. Returns -1 to close. */
static int send_stream_message(server_t *srv, session_t *s) {
    uint64_t slot = srv->stream_msgs + 1;
    if (srv->o.error_every && slot % (uint64_t)srv->o.error_every == 0) {
        char msg[96];
        snprintf(msg, sizeof(msg), "finnhub-replay: simulated error (stream message %" PRIu64 ")", slot);
        char *txt = error_message(msg);
        int rc = txt ? send_string(srv, s->wsi, txt) : -1;
        free(txt);
        srv->stream_msgs++;
        srv->errors_sent++;
        return rc;
    }
    if (srv->o.malformed_every && slot % (uint64_t)srv->o.malformed_every == 0) {
        build_malformed(srv, s);
        srv->stream_msgs++;
        return srv->out.oom ? -1 : send_text(s->wsi, srv->out.buf, srv->out.len);
    }
    uint64_t limit = UINT64_MAX;
    if (srv->o.count) limit = (uint64_t)srv->o.count - srv->trades_sent;
    if (srv->o.drop_after && !srv->dropped && (uint64_t)srv->o.drop_after - srv->trades_sent < limit)
        limit = (uint64_t)srv->o.drop_after - srv->trades_sent;
    if (srv->o.file && srv->o.batch && (uint64_t)srv->o.batch < limit) limit = (uint64_t)srv->o.batch;
    if (limit > 100000) limit = 100000;
    const char *raw = NULL;
    size_t n = srv->o.file ? replay_next(srv, s, (size_t)limit, &raw) : synth_next(srv, s, (size_t)limit);
    if (raw) return send_string(srv, s->wsi, raw);
    if (n == 0) {
        if (source_finished(srv) && !srv->rec.finished_logged) {
            srv->rec.finished_logged = true;
            log_event(srv, "recording finished: %" PRIu64 " trades sent", srv->trades_sent);
        }
        return 0;
    }
    sb_reset(&srv->out);
    sb_trade_message(&srv->out, srv->batch, n);
    if (srv->out.oom || send_text(s->wsi, srv->out.buf, srv->out.len) != 0) return -1;
    srv->stream_msgs++;
    srv->trades_sent += n;
    write_sent(srv, n);
    if (srv->o.rate > 0) {
        int64_t now = mono_us();
        srv->next_trade_us += (int64_t)n * 1000000 / srv->o.rate;
        if (srv->next_trade_us < now - 1000000) srv->next_trade_us = now; /* no catch-up rush */
    }
    if (srv->o.drop_after && !srv->dropped && srv->trades_sent >= (uint64_t)srv->o.drop_after) {
        srv->dropped = true;
        s->drop_now = true; /* once this message is out: the next writeable */
    }
    if (count_reached(srv) && !srv->count_logged) {
        srv->count_logged = true;
        log_event(srv, "count reached: %" PRIu64 " trades sent", srv->trades_sent);
    }
    if (source_finished(srv) && !srv->rec.finished_logged) {
        srv->rec.finished_logged = true;
        log_event(srv, "recording finished: %" PRIu64 " trades sent", srv->trades_sent);
    }
    return 0;
}

static int on_writeable(server_t *srv, session_t *s) {
    if (s->drop_now) {
        log_event(srv, "drop: closing the connection abruptly after %" PRIu64 " trades", srv->trades_sent);
        shutdown(lws_get_socket_fd(s->wsi), SHUT_RDWR);
        return -1;
    }
    if (s->npending > 0) {
        char *msg = s->pending[0];
        memmove(s->pending, s->pending + 1, (s->npending - 1) * sizeof(char *));
        s->npending--;
        int rc = send_string(srv, s->wsi, msg);
        free(msg);
        if (rc) return -1;
    } else {
        int64_t now = mono_us();
        if (srv->o.ping_ms > 0 && now >= s->next_ping_us) {
            if (send_string(srv, s->wsi, "{\"type\":\"ping\"}")) return -1;
            s->next_ping_us = now + (int64_t)srv->o.ping_ms * 1000;
        } else if (stream_active(srv, s) &&
                   (srv->o.rate == 0 || srv->syn.burst_left > 0 || now >= srv->next_trade_us)) {
            if (send_stream_message(srv, s)) return -1;
        }
    }
    schedule(srv, s);
    return 0;
}

static void handle_client_message(server_t *srv, session_t *s, const char *text, size_t len) {
    json_error_t err;
    json_t *m = json_loadb(text, len, 0, &err);
    const char *type = json_string_value(json_object_get(m, "type"));
    json_t *sym = json_object_get(m, "symbol");
    const char *symbol = json_string_value(sym);
    bool sub = type && strcmp(type, "subscribe") == 0, unsub = type && strcmp(type, "unsubscribe") == 0;
    const char *why = NULL;
    if (!m) why = "Invalid message: not JSON";
    else if (!json_is_object(m)) why = "Invalid message: not a JSON object";
    else if (!sub && !unsub) why = "Unknown message type";
    else if (!symbol || !*symbol || !printable(symbol)) why = "Invalid symbol";
    else if (strlen(symbol) > MAX_SYMBOL_LEN) why = "Invalid symbol: too long";
    if (why) {
        char shown[201];
        size_t n = len < 200 ? len : 200;
        for (size_t i = 0; i < n; i++) shown[i] = (unsigned char)text[i] < 0x20 ? '?' : text[i];
        shown[n] = '\0';
        log_event(srv, "bad client message (%s): %s", why, shown);
        queue_reply(srv, s, error_message(why));
    } else if (sub && subscribed(s, symbol)) {
        log_event(srv, "subscribe %s (already subscribed)", symbol);
    } else if (sub && s->nsubs >= (size_t)srv->o.max_symbols) {
        log_event(srv, "subscribe %s refused: %zu symbols already", symbol, s->nsubs);
        queue_reply(srv, s, error_message("Subscribing to too many symbols"));
    } else if (sub) {
        if (s->nsubs == s->subs_cap) {
            size_t nc = s->subs_cap ? s->subs_cap * 2 : 8;
            char **ns = realloc(s->subs, nc * sizeof(*ns));
            if (ns) s->subs = ns, s->subs_cap = nc;
        }
        char *copy = s->nsubs < s->subs_cap ? strdup(symbol) : NULL;
        if (copy) {
            s->subs[s->nsubs++] = copy;
            log_event(srv, "subscribe %s (at %" PRIu64 " trades sent)", symbol, srv->trades_sent);
        } else {
            queue_reply(srv, s, error_message("Server out of memory"));
        }
    } else {
        size_t i = 0;
        while (i < s->nsubs && strcmp(s->subs[i], symbol) != 0) i++;
        if (i < s->nsubs) {
            free(s->subs[i]);
            s->subs[i] = s->subs[--s->nsubs];
            log_event(srv, "unsubscribe %s (at %" PRIu64 " trades sent)", symbol, srv->trades_sent);
        } else {
            log_event(srv, "unsubscribe %s (was not subscribed)", symbol);
        }
    }
    json_decref(m);
}

static void on_receive(server_t *srv, session_t *s, const char *in, size_t len) {
    if (!s->rx_too_big) {
        if (s->rx_len + len > MAX_CLIENT_MSG) {
            s->rx_too_big = true;
        } else {
            char *nb = realloc(s->rx, s->rx_len + len + 1);
            if (!nb) s->rx_too_big = true;
            else {
                memcpy(nb + s->rx_len, in, len);
                s->rx = nb;
                s->rx_len += len;
                s->rx[s->rx_len] = '\0';
            }
        }
    }
    if (!lws_is_final_fragment(s->wsi) || lws_remaining_packet_payload(s->wsi) > 0) return;
    if (s->rx_too_big) {
        log_event(srv, "bad client message (too large)");
        queue_reply(srv, s, error_message("Invalid message: too large"));
    } else {
        handle_client_message(srv, s, s->rx ? s->rx : "", s->rx_len);
    }
    s->rx_len = 0;
    s->rx_too_big = false;
}

static void session_free(session_t *s) {
    for (size_t i = 0; i < s->nsubs; i++) free(s->subs[i]);
    free(s->subs);
    free(s->rx);
    for (size_t i = 0; i < s->npending; i++) free(s->pending[i]);
    *s = (session_t){0};
}

/* Returns 0 to let the upgrade go on, 1 once refused with an HTTP status. */
static int confirm_upgrade(server_t *srv, struct lws *wsi) {
    char peer[64] = "?", buf[1200];
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    const char *tok = lws_get_urlarg_by_name(wsi, "token=", buf, sizeof(buf));
    if (!tok || strcmp(tok, srv->o.token) != 0) {
        log_event(srv, "connect from %s: token refused (%s)", peer, tok ? "wrong token" : "no token");
        lws_return_http_status(wsi, HTTP_STATUS_UNAUTHORIZED, "Invalid API key");
        return 1;
    }
    if (srv->client) {
        log_event(srv, "connect from %s: token ok, refused: a client is already connected", peer);
        lws_return_http_status(wsi, 429, "One connection at a time");
        return 1;
    }
    log_event(srv, "connect from %s: token ok", peer);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    struct lws_context *ctx = lws_get_context(wsi);
    server_t *srv = ctx ? lws_context_user(ctx) : NULL;
    session_t *s = user;
    if (!srv) return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(srv, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        if (srv->client) return -1; /* raced past confirm_upgrade */
        *s = (session_t){.wsi = wsi};
        lws_get_peer_simple(wsi, s->peer, sizeof(s->peer));
        srv->client = s;
        s->next_ping_us = mono_us() + (int64_t)srv->o.ping_ms * 1000;
        if (srv->next_trade_us < mono_us()) srv->next_trade_us = mono_us();
        log_event(srv, "connected %s", s->peer);
        schedule(srv, s);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (srv->client != s) return -1;
        on_receive(srv, s, in, len);
        schedule(srv, s);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (srv->client != s) return 0;
        return on_writeable(srv, s);
    case LWS_CALLBACK_TIMER:
        if (srv->client == s) lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (srv->client == s) {
            log_event(srv, "disconnected %s: %" PRIu64 " trades sent so far", s->peer, srv->trades_sent);
            srv->client = NULL;
            session_free(s);
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static void on_tick(lws_sorted_usec_list_t *sul) {
    server_t *srv = lws_container_of(sul, server_t, tick);
    lws_sul_schedule(srv->ctx, 0, &srv->tick, on_tick, TICK_US);
}

static int write_port_file(const char *path, const char *url) {
    size_t n = strlen(path) + 8;
    char *tmp = malloc(n);
    if (!tmp) return -1;
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int rc = -1;
    if (f) {
        bool ok = fprintf(f, "%s\n", url) > 0;
        ok = (fclose(f) == 0) && ok;
        if (ok && rename(tmp, path) == 0) rc = 0;
        else unlink(tmp);
    }
    if (rc) fprintf(stderr, "finnhub-replay: cannot write --port-file %s: %s\n", path, strerror(errno));
    free(tmp);
    return rc;
}

static FILE *open_append(const char *path, const char *what) {
    FILE *f = fopen(path, "a");
    if (!f) fprintf(stderr, "finnhub-replay: cannot open %s %s: %s\n", what, path, strerror(errno));
    return f;
}

static void server_free(server_t *srv) {
    if (srv->sent) fclose(srv->sent);
    if (srv->log) fclose(srv->log);
    recording_free(&srv->rec);
    synth_free(&srv->syn);
    free(srv->out.buf);
    free(srv->batch);
    free(srv->cbuf);
    free(srv->o.token);
}

static const struct lws_protocols PROTOCOLS[] = {
    {.name = "finnhub", .callback = callback, .per_session_data_size = sizeof(session_t),
     .rx_buffer_size = 4096},
    {.name = NULL},
};

static int run(server_t *srv) {
    if (srv->o.file && recording_load(&srv->rec, srv->o.file)) return 2;
    srv->syn.rng = srv->o.seed;
    srv->syn.t_ms = srv->o.start_ms;
    if (srv->o.sent_file && !(srv->sent = open_append(srv->o.sent_file, "--sent-file"))) return 1;
    if (srv->o.log_file && !(srv->log = open_append(srv->o.log_file, "--log-file"))) return 1;

    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = (int)srv->o.port;
    info.iface = "127.0.0.1";
    info.protocols = PROTOCOLS;
    info.user = srv;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
                   LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    srv->ctx = lws_create_context(&info);
    if (!srv->ctx) {
        fprintf(stderr, "finnhub-replay: cannot create the websocket context\n");
        return 1;
    }
    struct lws_vhost *vh = lws_create_vhost(srv->ctx, &info);
    int port = vh ? lws_get_vhost_listen_port(vh) : -1;
    int rc = 0;
    if (port <= 0) {
        fprintf(stderr, "finnhub-replay: cannot listen on 127.0.0.1:%ld\n", srv->o.port);
        rc = 1;
    } else {
        char url[64];
        snprintf(url, sizeof(url), "ws://127.0.0.1:%d", port);
        if (srv->o.port_file && write_port_file(srv->o.port_file, url)) rc = 1;
        else {
            printf("%s\n", url);
            fflush(stdout);
            log_event(srv, "listening on %s", url);
        }
    }
    if (rc == 0) {
        lws_sul_schedule(srv->ctx, 0, &srv->tick, on_tick, TICK_US);
        while (!g_stop && lws_service(srv->ctx, 0) >= 0) {
        }
        lws_sul_cancel(&srv->tick);
    }
    lws_context_destroy(srv->ctx); /* closes the client: CLOSED frees its session */
    srv->ctx = NULL;
    if (rc == 0) {
        log_event(srv, "stopped: %" PRIu64 " trades sent", srv->trades_sent);
        printf("%" PRIu64 " trades sent\n", srv->trades_sent);
        fflush(stdout);
    }
    return rc;
}

int main(int argc, char **argv) {
    server_t srv;
    memset(&srv, 0, sizeof(srv));
    int rc = parse_opts(argc, argv, &srv.o);
    if (rc) return rc == 1 ? 0 : rc; /* 1: --help */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = run(&srv);
    server_free(&srv);
    return rc;
}
