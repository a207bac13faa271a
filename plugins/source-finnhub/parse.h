/*
 * parse.h - the pure parts of source-finnhub: symbol lists, feed URLs and
 * websocket frames. No I/O and no host services, so tests/test_finnhub.c
 * tests them directly (it #includes parse.c).
 */
#ifndef SOURCE_FINNHUB_PARSE_H
#define SOURCE_FINNHUB_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* Symbol lists                                                              */
/* ------------------------------------------------------------------------ */

/**
 * Splits a symbol list into *out (an array of *n strings; free with
 * fh_symbols_free). Two syntaxes are accepted:
 *
 *   BINANCE:BTCUSDT, AAPL, IC MARKETS:1          (comma list, items trimmed)
 *   ['BINANCE:BTCUSDT','BINANCE:ETHUSDT']        (the original .env syntax;
 *   ["AAPL", "IC MARKETS:1"]                      single or double quotes)
 *
 * Spaces and colons inside a symbol are kept. Duplicates are dropped (the
 * first one stays). Returns 0, or -1 with a message in err (an empty item,
 * an unterminated quote, nothing but spaces, out of memory).
 */
int fh_symbols_parse(const char *text, char ***out, size_t *n, char *err, size_t errlen);
void fh_symbols_free(char **syms, size_t n);

/* ------------------------------------------------------------------------ */
/* Feed URL                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct fh_url {
    int tls;       /* wss:// */
    char *host;    /* without brackets for an IPv6 literal */
    int port;      /* explicit, or 443 / 80 */
    char *path;    /* starts with '/', may hold a query; no token yet */
} fh_url_t;

/** Parses ws[s]://host[:port][/path][?query]. 0, or -1 with err. */
int fh_url_parse(const char *url, fh_url_t *u, char *err, size_t errlen);
void fh_url_free(fh_url_t *u);

/** The request path with the token appended as token=<percent-encoded>
 *  (after '?' or '&'); token NULL or "" appends nothing. malloc'd, or NULL
 *  on OOM. */
char *fh_url_path_with_token(const fh_url_t *u, const char *token);

/* ------------------------------------------------------------------------ */
/* Frames                                                                    */
/* ------------------------------------------------------------------------ */

typedef enum fh_frame_kind {
    FH_FRAME_BAD = 0,   /* not usable at all: reason says why */
    FH_FRAME_TRADE = 1, /* {"type":"trade","data":[...]} */
    FH_FRAME_PING = 2,  /* {"type":"ping"} */
    FH_FRAME_ERROR = 3, /* {"type":"error","msg":"..."} */
} fh_frame_kind_t;

/** One entry of a trade message's "data" array. */
typedef struct fh_trade {
    int ok;                /* 1: every field valid; 0: see reason, raw */
    size_t index;          /* position in "data" */
    const char *symbol;    /* "s", borrowed from the frame */
    double price;          /* "p" */
    double volume;         /* "v" */
    int64_t time_ms;       /* "t" */
    int has_conditions;    /* "c" present and not null */
    size_t nconditions;
    const char **conditions; /* borrowed strings; the array is the frame's */
    char reason[160];      /* when !ok */
    char *raw;             /* when !ok: the entry as compact JSON (frame-owned) */
} fh_trade_t;

typedef struct fh_frame {
    fh_frame_kind_t kind;
    char reason[200];     /* FH_FRAME_BAD */
    const char *error_msg; /* FH_FRAME_ERROR: "msg" or "" (borrowed) */
    size_t ntrades;        /* FH_FRAME_TRADE: entries in "data" */
    size_t nbad;           /* ... of which not ok */
    fh_trade_t *trades;
    void *json;            /* the parsed document (json_t *), owned */
} fh_frame_t;

/**
 * Parses one websocket text message. Always fills f (release it with
 * fh_frame_free, whatever the kind). A trade message whose "data" holds bad
 * entries among good ones is FH_FRAME_TRADE: each entry says ok or why not,
 * so the good ones can go on while the bad ones are dead-lettered.
 * Returns 0, or -1 on out of memory (f is then FH_FRAME_BAD).
 */
int fh_frame_parse(const char *data, size_t len, fh_frame_t *f);
void fh_frame_free(fh_frame_t *f);

/**
 * The stable trade id: 32 hex digits from two 64-bit FNV-1a hashes of
 * (symbol, time, price, volume, index), with the doubles taken as their
 * shortest round-trip decimal text. out must hold 33 bytes.
 */
void fh_trade_id(const char *symbol, int64_t time_ms, double price, double volume,
                 size_t index, char out[33]);

/**
 * Capped exponential back-off with "equal jitter": for attempt a (0-based)
 * the base is min(max_ms, initial_ms * 2^a); the delay is drawn uniformly in
 * [base * (1 - jitter), base] with jitter in [0, 1]. rnd is a uniform value
 * in [0, 1).
 */
int64_t fh_backoff_ms(int64_t initial_ms, int64_t max_ms, double jitter, unsigned attempt,
                      double rnd);

#endif
