/*
 * fuzz_finnhub.c - libFuzzer target: the Finnhub source's pure parsers
 * (websocket text frames, symbol lists, feed URLs). Every input must parse
 * or be refused with a reason, never crash, leak or read out of bounds.
 * Built by `make fuzz` (tests/fuzz/fuzz.mk); corpus in tests/fuzz/corpus/finnhub.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fh_frame_t f;
    if (fh_frame_parse((const char *)data, size, &f) == 0 && f.kind == FH_FRAME_TRADE) {
        for (size_t i = 0; i < f.ntrades; i++) {
            const fh_trade_t *t = &f.trades[i];
            if (t->ok) {
                char id[33];
                fh_trade_id(t->symbol, t->time_ms, t->price, t->volume, t->index, id);
                if (strlen(id) != 32) abort();
                for (size_t c = 0; c < t->nconditions; c++)
                    if (!t->conditions[c]) abort();
            } else if (!t->reason[0]) {
                abort(); /* a refused entry always says why */
            }
        }
    } else if (f.kind == FH_FRAME_BAD && !f.reason[0]) {
        abort();
    }
    fh_frame_free(&f);

    /* The same bytes as a symbol list and as a feed URL (C strings). */
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    char err[256];
    char **syms = NULL;
    size_t n = 0;
    if (fh_symbols_parse(s, &syms, &n, err, sizeof err) == 0) {
        for (size_t i = 0; i < n; i++)
            if (!syms[i][0]) abort(); /* empty items are refused */
        fh_symbols_free(syms, n);
    }
    fh_url_t u;
    memset(&u, 0, sizeof u);
    if (fh_url_parse(s, &u, err, sizeof err) == 0) {
        if (u.path[0] != '/' || u.port <= 0 || u.port > 65535) abort();
        char *p = fh_url_path_with_token(&u, "t&k=n");
        free(p);
        fh_url_free(&u);
    }
    free(s);
    return 0;
}
