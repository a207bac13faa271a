/*
 * test_window.c - the windowing core of transform-window
 * (plugins/transform-window/window_core.c, included here).
 *
 * Random streams (several partitions, many symbols, out of order within the
 * allowed lateness, late records, tumbling and hopping windows) against a
 * brute-force recomputation; a crash at a random point, then a replay from
 * the committed offset into an upserted table, gives the same final table.
 * The seed comes from WINDOW_SEED (default: the time) and is printed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../plugins/transform-window/window_core.c"

static unsigned seed;

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64*: the same on every libc */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static int64_t rnd_in(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }

typedef struct trade {
    int32_t part;
    int64_t offset, ts;
    char key[16];
    double price, volume;
} trade_t;

typedef struct stream {
    trade_t *t; /* interleaved across partitions, offsets increasing per partition */
    size_t n;
    int nparts;
} stream_t;

/* Mostly increasing event time, jitter within the lateness, a few records
 * far behind (late), some zero volumes. */
static stream_t gen(int nparts, int nkeys, size_t n, int64_t lateness, int64_t size) {
    stream_t s = {calloc(n, sizeof(trade_t)), n, nparts};
    int64_t *base = calloc((size_t)nparts, sizeof(int64_t)), *next = calloc((size_t)nparts, sizeof(int64_t));
    for (int p = 0; p < nparts; p++) base[p] = 1700000000000 + rnd_in(0, 5000);
    for (size_t i = 0; i < n; i++) {
        trade_t *t = &s.t[i];
        t->part = (int32_t)rnd_in(0, nparts - 1);
        t->offset = next[t->part]++;
        base[t->part] += rnd_in(0, 40);
        int64_t r = rnd_in(0, 99);
        t->ts = base[t->part] - (r < 60 ? 0 : r < 95 ? rnd_in(0, lateness) : rnd_in(lateness, lateness + 2 * size));
        /* symbols live in one partition each (Kafka keyed by symbol) */
        int k = (int)rnd_in(0, nkeys - 1);
        k = k - k % nparts + t->part;
        snprintf(t->key, sizeof(t->key), "S%03d", k);
        t->price = (double)rnd_in(1000, 2000) / 8.0;
        t->volume = rnd_in(0, 9) == 0 ? 0.0 : (double)rnd_in(1, 400) / 4.0;
    }
    free(base);
    free(next);
    return s;
}

typedef struct res {
    char key[16];
    int64_t start;
    wc_result_t r;
} res_t;

typedef struct table { /* an upserted table: (key, start) -> last result */
    res_t *rows;
    size_t n, cap;
} table_t;

static void table_put(table_t *t, const wc_result_t *r) {
    for (size_t i = 0; i < t->n; i++) {
        if (t->rows[i].start == r->start && strcmp(t->rows[i].key, r->key) == 0) {
            t->rows[i].r = *r;
            t->rows[i].r.key = NULL; /* rows move (realloc, qsort): use rows[i].key */
            return;
        }
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->rows = realloc(t->rows, t->cap * sizeof(res_t));
        assert_non_null(t->rows);
    }
    res_t *x = &t->rows[t->n++];
    snprintf(x->key, sizeof(x->key), "%s", r->key);
    x->start = r->start;
    x->r = *r;
    x->r.key = NULL;
}

static int res_cmp(const void *a, const void *b) {
    const res_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Brute force: each record's windows from the definition (accepted where
 * the window's end is after the partition's watermark including the
 * record), aggregates summed in offset order, final where end <= the
 * partition's last watermark. */
static table_t brute(const stream_t *s, const wc_conf_t *c, size_t *late) {
    table_t t = {0};
    int64_t *maxts = malloc((size_t)s->nparts * sizeof(int64_t));
    for (int p = 0; p < s->nparts; p++) maxts[p] = INT64_MIN;
    *late = 0;
    typedef struct acc { char key[16]; int64_t start; int32_t part; wc_result_t r; int64_t fts, lts; } acc_t;
    acc_t *a = NULL;
    size_t na = 0, cap = 0;
    for (size_t i = 0; i < s->n; i++) {
        const trade_t *x = &s->t[i];
        if (x->ts > maxts[x->part]) maxts[x->part] = x->ts;
        int64_t wm = maxts[x->part] - c->lateness_ms;
        int any = 0;
        for (int64_t st = floor_div(x->ts, c->slide_ms) * c->slide_ms; st + c->size_ms > x->ts; st -= c->slide_ms) {
            if (st + c->size_ms <= wm) continue;
            any = 1;
            acc_t *w = NULL;
            for (size_t j = 0; j < na && !w; j++)
                if (a[j].start == st && strcmp(a[j].key, x->key) == 0) w = &a[j];
            if (!w) {
                if (na == cap) a = realloc(a, (cap = cap ? cap * 2 : 256) * sizeof(acc_t));
                w = &a[na++];
                memset(w, 0, sizeof(*w));
                snprintf(w->key, sizeof(w->key), "%s", x->key);
                w->start = st;
                w->part = x->part;
                w->r.min = w->r.max = w->r.first = w->r.last = x->price;
                w->fts = w->lts = x->ts;
            }
            if (x->price < w->r.min) w->r.min = x->price;
            if (x->price > w->r.max) w->r.max = x->price;
            if (x->ts < w->fts) w->fts = x->ts, w->r.first = x->price;
            if (x->ts >= w->lts) w->lts = x->ts, w->r.last = x->price;
            w->r.count++;
            w->r.volume += x->volume;
            w->r.vwap += x->price * x->volume; /* pv for now */
            w->r.mean += x->price;             /* price sum for now */
        }
        if (!any) (*late)++;
    }
    for (size_t j = 0; j < na; j++) {
        acc_t *w = &a[j];
        if (w->start + c->size_ms > maxts[w->part] - c->lateness_ms) continue; /* still open */
        double pv = w->r.vwap, ps = w->r.mean;
        wc_result_t r = w->r;
        r.key = w->key;
        r.start = w->start;
        r.end = w->start + c->size_ms;
        r.final = 1;
        r.vwap = r.volume != 0 ? pv / r.volume : ps / (double)r.count;
        r.mean = ps / (double)r.count;
        r.pvm = pv / (double)r.count;
        table_put(&t, &r);
    }
    free(a);
    free(maxts);
    return t;
}

static void assert_same(table_t *got, table_t *want, const char *what) {
    qsort(got->rows, got->n, sizeof(res_t), res_cmp);
    qsort(want->rows, want->n, sizeof(res_t), res_cmp);
    if (got->n != want->n) fail_msg("%s: %zu windows, want %zu (WINDOW_SEED=%u)", what, got->n, want->n, seed);
    for (size_t i = 0; i < got->n; i++) {
        const wc_result_t *g = &got->rows[i].r, *w = &want->rows[i].r;
        if (strcmp(got->rows[i].key, want->rows[i].key) || g->start != w->start || g->end != w->end || g->count != w->count ||
            g->volume != w->volume || g->vwap != w->vwap || g->min != w->min || g->max != w->max ||
            g->first != w->first || g->last != w->last || g->mean != w->mean || g->pvm != w->pvm ||
            !g->final)
            fail_msg("%s: window %s@%lld differs: count %lld/%lld vwap %.17g/%.17g first %g/%g last %g/%g "
                     "(WINDOW_SEED=%u)",
                     what, want->rows[i].key, (long long)w->start, (long long)g->count, (long long)w->count, g->vwap,
                     w->vwap, g->first, w->first, g->last, w->last, seed);
    }
}

typedef struct sink { /* results as a sink with upsert sees them */
    table_t table;
    size_t late;
    int64_t *last_pos; /* per partition: position of the last result */
    wc_result_t *log;  /* every result in emission order (for a partial flush) */
    size_t nlog, caplog;
    int keep_log;
} sink_t;

static void on_result(void *arg, const wc_result_t *r) {
    sink_t *k = arg;
    assert_true(r->position >= k->last_pos[r->partition]); /* positions never go back */
    k->last_pos[r->partition] = r->position;
    if (k->keep_log) {
        if (k->nlog == k->caplog) k->log = realloc(k->log, (k->caplog = k->caplog ? k->caplog * 2 : 256) * sizeof(wc_result_t));
        k->log[k->nlog] = *r;
        k->log[k->nlog].key = strdup(r->key);
        k->nlog++;
    } else if (r->final) {
        table_put(&k->table, r);
    }
}

static wc_conf_t random_conf(void) {
    static const int64_t sizes[] = {1000, 2000, 500};
    wc_conf_t c = {.size_ms = sizes[rnd_in(0, 2)]};
    int64_t div = rnd_in(1, 4); /* tumbling or hopping */
    c.slide_ms = c.size_ms / div;
    c.lateness_ms = rnd_in(0, 3) * 250;
    return c;
}

static void run_all(wc_t *w, const stream_t *s, size_t from, size_t to, const int64_t *start_off, sink_t *k) {
    char topic[] = "trades";
    for (size_t i = from; i < to; i++) {
        const trade_t *x = &s->t[i];
        if (start_off && x->offset < start_off[x->part]) continue;
        int rc = wc_add(w, topic, x->part, x->offset, x->key, x->ts, x->price, x->volume, 0, on_result, k);
        assert_true(rc >= 0);
        if (rc == WC_LATE) k->late++;
    }
}

static void test_random_vs_brute(void **st) {
    (void)st;
    for (int trial = 0; trial < 30; trial++) {
        wc_conf_t c = random_conf();
        int nparts = (int)rnd_in(1, 4), nkeys = (int)rnd_in(1, 40);
        stream_t s = gen(nparts, nkeys, (size_t)rnd_in(200, 3000), c.lateness_ms, c.size_ms);
        size_t late_want;
        table_t want = brute(&s, &c, &late_want);
        char why[128];
        wc_t *w = wc_new(&c, why, sizeof(why));
        assert_non_null(w);
        sink_t k = {.last_pos = calloc((size_t)nparts, sizeof(int64_t))};
        run_all(w, &s, 0, s.n, NULL, &k);
        /* memory: open windows per key (at most nkeys + nparts keys) are bounded by
         * (size + lateness) / slide */
        size_t bound = (size_t)(nkeys + nparts) * (size_t)((c.size_ms + c.lateness_ms) / c.slide_ms + 2);
        if (wc_open_windows(w) > bound) fail_msg("%zu open windows > %zu", wc_open_windows(w), bound);
        assert_int_equal(k.late, late_want);
        assert_same(&k.table, &want, "random stream");
        wc_free(w);
        free(k.table.rows);
        free(k.last_pos);
        free(want.rows);
        free(s.t);
    }
}

/* Commits along the way (durable = after the last result, sometimes less),
 * a crash at a random point losing a random suffix of the results not yet
 * committed, then a new owner from the committed offsets: the upserted
 * table equals the brute force. Twice per trial (a crash during replay). */
static void test_crash_replay(void **st) {
    (void)st;
    for (int trial = 0; trial < 40; trial++) {
        wc_conf_t c = random_conf();
        int nparts = (int)rnd_in(1, 3), nkeys = (int)rnd_in(1, 30);
        stream_t s = gen(nparts, nkeys, (size_t)rnd_in(300, 2500), c.lateness_ms, c.size_ms);
        size_t late_want;
        table_t want = brute(&s, &c, &late_want);
        table_t table = {0};
        int64_t *committed = malloc((size_t)nparts * sizeof(int64_t));
        for (int p = 0; p < nparts; p++) committed[p] = -1;
        char why[128];
        for (int crash = 0; crash <= 2; crash++) {
            wc_t *w = wc_new(&c, why, sizeof(why));
            assert_non_null(w);
            for (int p = 0; p < nparts; p++) assert_int_equal(wc_open(w, "trades", p, committed[p]), 0);
            sink_t k = {.last_pos = calloc((size_t)nparts, sizeof(int64_t)), .keep_log = 1};
            size_t end = crash < 2 ? (size_t)rnd_in(0, (int64_t)s.n) : s.n;
            size_t flushed = 0; /* results durable in the table */
            for (size_t i = 0; i < end; i += 50) {
                size_t to = i + 50 < end ? i + 50 : end;
                run_all(w, &s, i, to, committed, &k);
                for (; flushed < k.nlog; flushed++) table_put(&table, &k.log[flushed]);
                if (rnd_in(0, 2) == 0) continue;
                for (int p = 0; p < nparts; p++) { /* pre_commit: the sink's durable, maybe lower */
                    int64_t durable = k.last_pos[p] + 1 - rnd_in(0, 1);
                    int64_t off = wc_commit_offset(w, "trades", p, durable);
                    if (off >= 0) {
                        assert_true(off >= committed[p]);
                        committed[p] = off;
                    }
                }
            }
            /* the crash: results after the last flush get lost (a prefix may land) */
            run_all(w, &s, end, end, committed, &k);
            for (size_t i = 0; i < k.nlog; i++) free((char *)k.log[i].key);
            free(k.log);
            free(k.last_pos);
            wc_free(w);
        }
        /* only final results were emitted (no early updates): drop nothing */
        assert_same(&table, &want, "crash and replay");
        free(table.rows);
        free(want.rows);
        free(committed);
        free(s.t);
    }
}

static void collect_all(void *arg, const wc_result_t *r) {
    table_t *t = arg;
    table_put(t, r);
}

/* A quiet partition closes its windows on processing time. */
static void test_idle_timeout(void **st) {
    (void)st;
    wc_conf_t c = {.size_ms = 1000, .slide_ms = 1000, .lateness_ms = 500, .idle_ms = 2000};
    char why[128];
    wc_t *w = wc_new(&c, why, sizeof(why));
    table_t t = {0};
    assert_int_equal(wc_add(w, "t", 0, 0, "A", 10500, 1, 1, 100000, collect_all, &t), WC_ADDED);
    assert_int_equal(wc_add(w, "t", 0, 1, "B", 10900, 2, 1, 100100, collect_all, &t), WC_ADDED);
    wc_tick(w, 101000, 0, collect_all, &t); /* not idle long enough */
    assert_int_equal(t.n, 0);
    wc_tick(w, 102200, 0, collect_all, &t); /* idle 2.1 s: watermark 10900-500+2100 = 12500 */
    assert_int_equal(t.n, 2);
    assert_int_equal(t.rows[0].r.position, 1); /* the partition's last offset */
    assert_true(t.rows[0].r.final);
    assert_int_equal(wc_open_windows(w), 0);
    /* a record behind the idle watermark is late */
    assert_int_equal(wc_add(w, "t", 0, 2, "A", 11000, 1, 1, 102300, collect_all, &t), WC_LATE);
    free(t.rows);
    wc_free(w);
}

/* Early updates: only changed windows, not final, then the final result. */
/* The idle check of a stalled partition (leader down, records waiting):
 * the watermark stays, the windows stay open, and the trades that come
 * after the outage are not late. */
typedef struct idle_probe {
    int answer, asked;
    int64_t quiet, wm;
} idle_probe_t;

static int probe_idle(void *arg, const char *topic, int32_t partition, int64_t quiet_ms,
                      int64_t wm) {
    idle_probe_t *p = arg;
    assert_string_equal(topic, "t");
    assert_int_equal(partition, 0);
    p->asked++;
    p->quiet = quiet_ms;
    p->wm = wm;
    return p->answer;
}

static void test_idle_stalled(void **st) {
    (void)st;
    wc_conf_t c = {.size_ms = 1000, .slide_ms = 1000, .lateness_ms = 500, .idle_ms = 2000};
    char why[128];
    wc_t *w = wc_new(&c, why, sizeof(why));
    idle_probe_t probe = {.answer = 0};
    wc_set_idle_check(w, probe_idle, &probe);
    table_t t = {0};
    assert_int_equal(wc_add(w, "t", 0, 0, "A", 10500, 1, 1, 100000, collect_all, &t), WC_ADDED);
    wc_tick(w, 101000, 0, collect_all, &t); /* not quiet long enough: not asked */
    assert_int_equal(probe.asked, 0);
    wc_tick(w, 103000, 0, collect_all, &t); /* quiet 3 s, but stalled */
    assert_int_equal(probe.asked, 1);
    assert_int_equal(probe.quiet, 3000);
    assert_int_equal(probe.wm, 10500 - 500 + 3000);
    assert_int_equal(t.n, 0);
    assert_int_equal(wc_open_windows(w), 1);
    assert_int_equal(wc_watermark(w, "t", 0), 10000);
    /* the outage ends: what was held back is in time, and closes the window */
    assert_int_equal(wc_add(w, "t", 0, 1, "A", 10900, 2, 1, 103100, collect_all, &t), WC_ADDED);
    assert_int_equal(wc_add(w, "t", 0, 2, "A", 11600, 3, 1, 103100, collect_all, &t), WC_ADDED);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.rows[0].r.count, 2);
    /* idle for real: the check says so and the watermark moves on */
    probe.answer = 1;
    wc_tick(w, 106000, 0, collect_all, &t);
    assert_int_equal(probe.asked, 2);
    assert_int_equal(t.n, 2);
    assert_int_equal(wc_open_windows(w), 0);
    /* nothing open: nothing to close, so not asked again */
    wc_tick(w, 109000, 0, collect_all, &t);
    assert_int_equal(probe.asked, 2);
    free(t.rows);
    wc_free(w);
}

static void test_early_updates(void **st) {
    (void)st;
    wc_conf_t c = {.size_ms = 1000, .slide_ms = 1000};
    char why[128];
    wc_t *w = wc_new(&c, why, sizeof(why));
    table_t t = {0};
    wc_add(w, "t", 0, 0, "A", 100, 10, 2, 0, collect_all, &t);
    wc_add(w, "t", 0, 1, "B", 200, 20, 0, 0, collect_all, &t);
    wc_tick(w, 0, 1, collect_all, &t);
    assert_int_equal(t.n, 2);
    assert_false(t.rows[0].r.final);
    wc_add(w, "t", 0, 2, "A", 300, 14, 2, 0, collect_all, &t);
    size_t before = t.n;
    wc_tick(w, 0, 1, collect_all, &t);
    assert_int_equal(t.n, before); /* A updated in place (upsert) */
    wc_add(w, "t", 0, 3, "A", 1000, 1, 1, 0, collect_all, &t); /* watermark 1000 closes [0,1000) */
    qsort(t.rows, t.n, sizeof(res_t), res_cmp);
    assert_true(t.rows[0].r.final);
    assert_int_equal(t.rows[0].r.count, 2);
    assert_true(t.rows[0].r.vwap == 12.0); /* (10*2 + 14*2) / 4 */
    assert_true(t.rows[0].r.first == 10 && t.rows[0].r.last == 14);
    assert_true(t.rows[1].r.vwap == 20.0); /* B: volume 0 -> mean price */
    assert_int_equal(t.rows[0].r.position, 3);
    free(t.rows);
    wc_free(w);
}

static void test_bad_conf(void **st) {
    (void)st;
    char why[128];
    wc_conf_t c = {.size_ms = 1000, .slide_ms = 2000};
    assert_null(wc_new(&c, why, sizeof(why)));
    assert_non_null(strstr(why, "slide"));
    c = (wc_conf_t){.size_ms = 0, .slide_ms = 0};
    assert_null(wc_new(&c, why, sizeof(why)));
}

int main(void) {
    const char *e = getenv("WINDOW_SEED");
    seed = e && *e ? (unsigned)strtoul(e, NULL, 10) : (unsigned)time(NULL);
    printf("WINDOW_SEED=%u\n", seed);
    rng_state = 0x9e3779b97f4a7c15ull ^ seed;
    if (!rng_state) rng_state = 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_vs_brute), cmocka_unit_test(test_crash_replay),
        cmocka_unit_test(test_idle_timeout),    cmocka_unit_test(test_idle_stalled),
        cmocka_unit_test(test_early_updates),
        cmocka_unit_test(test_bad_conf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
