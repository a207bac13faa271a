/* window_core.c - see window_core.h. */
#include "window_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE INT64_MIN

typedef struct win {
    struct win *next; /* hash chain */
    uint64_t h;
    char *key;
    int64_t start;
    size_t heap_idx;
    int dirty; /* changed since its last early update */
    int64_t count;
    double volume, pv, psum, min, max, first, last;
    int64_t first_ts, last_ts; /* ties: first keeps the lower offset, last the higher */
} win_t;

typedef struct cand {
    int64_t offset, ts;
    int64_t valid_at; /* offset at which every window starting <= ts was closed; -1 not yet */
} cand_t;

typedef struct part {
    char *topic;
    int32_t partition;
    int64_t max_ts;     /* NONE: nothing seen */
    int64_t idle_wm;    /* watermark raised by the idle timeout, or NONE */
    int64_t last_offset, last_arrival;
    int replay;         /* opened at a committed offset */
    int64_t replay_base; /* ts of the first record of a replay; NONE until seen */
    win_t **buckets;
    size_t nbuckets, nwins;
    win_t **heap; /* by (end, key, start) */
    size_t cap_heap;
    cand_t *cands;
    size_t ncands, cap_cands, nvalid;
} part_t;

struct wc {
    wc_conf_t c;
    part_t **parts;
    size_t nparts;
    wc_idle_fn idle_ok; /* NULL: quiet partitions always advance */
    void *idle_arg;
};

void wc_set_idle_check(wc_t *w, wc_idle_fn fn, void *arg) {
    w->idle_ok = fn;
    w->idle_arg = arg;
}

static uint64_t hash_ks(const char *k, int64_t start) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)k; *p; p++) h = (h ^ *p) * 1099511628211ull;
    h ^= (uint64_t)start + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

wc_t *wc_new(const wc_conf_t *conf, char *why, size_t wl) {
    if (conf->size_ms <= 0 || conf->slide_ms <= 0 || conf->slide_ms > conf->size_ms) {
        snprintf(why, wl, "window size and slide must be > 0 with slide <= size (got %lld, %lld)",
                 (long long)conf->size_ms, (long long)conf->slide_ms);
        return NULL;
    }
    if (conf->lateness_ms < 0 || conf->idle_ms < 0) {
        snprintf(why, wl, "lateness and idle timeout must be >= 0");
        return NULL;
    }
    wc_t *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(why, wl, "out of memory");
        return NULL;
    }
    w->c = *conf;
    return w;
}

static void part_clear(part_t *p) {
    for (size_t b = 0; b < p->nbuckets; b++) {
        for (win_t *x = p->buckets[b], *n; x; x = n) {
            n = x->next;
            free(x->key);
            free(x);
        }
    }
    free(p->buckets);
    free(p->heap);
    free(p->cands);
    p->buckets = NULL;
    p->heap = NULL;
    p->cands = NULL;
    p->nbuckets = p->nwins = p->cap_heap = p->ncands = p->cap_cands = p->nvalid = 0;
}

static void part_free(part_t *p) {
    part_clear(p);
    free(p->topic);
    free(p);
}

void wc_free(wc_t *w) {
    if (!w) return;
    for (size_t i = 0; i < w->nparts; i++) part_free(w->parts[i]);
    free(w->parts);
    free(w);
}

static part_t *part_find(const wc_t *w, const char *topic, int32_t partition, size_t *idx) {
    for (size_t i = 0; i < w->nparts; i++) {
        part_t *p = w->parts[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) {
            if (idx) *idx = i;
            return p;
        }
    }
    return NULL;
}

static part_t *part_new(wc_t *w, const char *topic, int32_t partition, int64_t committed) {
    part_t **g = realloc(w->parts, (w->nparts + 1) * sizeof(*g));
    if (!g) return NULL;
    w->parts = g;
    part_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->topic = strdup(topic))) {
        free(p);
        return NULL;
    }
    p->partition = partition;
    p->max_ts = p->idle_wm = p->replay_base = NONE;
    p->last_offset = -1;
    p->replay = committed >= 0;
    w->parts[w->nparts++] = p;
    return p;
}

int wc_open(wc_t *w, const char *topic, int32_t partition, int64_t committed) {
    wc_close(w, topic, partition);
    return part_new(w, topic, partition, committed) ? 0 : -1;
}

void wc_close(wc_t *w, const char *topic, int32_t partition) {
    size_t i;
    part_t *p = part_find(w, topic, partition, &i);
    if (!p) return;
    part_free(p);
    w->parts[i] = w->parts[--w->nparts];
}

static int64_t watermark(const wc_t *w, const part_t *p) {
    if (p->max_ts == NONE) return p->idle_wm;
    int64_t wm = p->max_ts - w->c.lateness_ms;
    return p->idle_wm > wm ? p->idle_wm : wm;
}

/* heap order: end, then key, then start (start decides among equal ends
 * only when sizes differ, which they do not; kept for a total order) */
static int win_less(const win_t *a, const win_t *b) {
    if (a->start != b->start) return a->start < b->start;
    return strcmp(a->key, b->key) < 0;
}

static void heap_swap(part_t *p, size_t i, size_t j) {
    win_t *t = p->heap[i];
    p->heap[i] = p->heap[j];
    p->heap[j] = t;
    p->heap[i]->heap_idx = i;
    p->heap[j]->heap_idx = j;
}

static void heap_up(part_t *p, size_t i) {
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!win_less(p->heap[i], p->heap[up])) break;
        heap_swap(p, i, up);
        i = up;
    }
}

static void heap_down(part_t *p, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < p->nwins && win_less(p->heap[l], p->heap[m])) m = l;
        if (r < p->nwins && win_less(p->heap[r], p->heap[m])) m = r;
        if (m == i) break;
        heap_swap(p, i, m);
        i = m;
    }
}

static int rehash(part_t *p) {
    size_t nb = p->nbuckets ? p->nbuckets * 2 : 64;
    win_t **b = calloc(nb, sizeof(*b));
    if (!b) return -1;
    for (size_t i = 0; i < p->nbuckets; i++) {
        for (win_t *x = p->buckets[i], *n; x; x = n) {
            n = x->next;
            x->next = b[x->h % nb];
            b[x->h % nb] = x;
        }
    }
    free(p->buckets);
    p->buckets = b;
    p->nbuckets = nb;
    return 0;
}

static win_t *win_get(part_t *p, const char *key, int64_t start) {
    uint64_t h = hash_ks(key, start);
    if (p->nbuckets) {
        for (win_t *x = p->buckets[h % p->nbuckets]; x; x = x->next)
            if (x->h == h && x->start == start && strcmp(x->key, key) == 0) return x;
    }
    if ((p->nwins + 1 > p->nbuckets && rehash(p) != 0)) return NULL;
    if (p->nwins == p->cap_heap) {
        size_t cap = p->cap_heap ? p->cap_heap * 2 : 64;
        win_t **g = realloc(p->heap, cap * sizeof(*g));
        if (!g) return NULL;
        p->heap = g;
        p->cap_heap = cap;
    }
    win_t *x = calloc(1, sizeof(*x));
    if (!x || !(x->key = strdup(key))) {
        free(x);
        return NULL;
    }
    x->h = h;
    x->start = start;
    x->next = p->buckets[h % p->nbuckets];
    p->buckets[h % p->nbuckets] = x;
    x->heap_idx = p->nwins;
    p->heap[p->nwins++] = x;
    heap_up(p, x->heap_idx);
    return x;
}

static void win_unlink(part_t *p, win_t *x) {
    win_t **pp = &p->buckets[x->h % p->nbuckets];
    while (*pp != x) pp = &(*pp)->next;
    *pp = x->next;
}

static void fill(const wc_t *w, const part_t *p, const win_t *x, int64_t position, int final,
                 wc_result_t *r) {
    *r = (wc_result_t){
        .topic = p->topic,
        .partition = p->partition,
        .position = position,
        .key = x->key,
        .start = x->start,
        .end = x->start + w->c.size_ms,
        .final = final,
        .count = x->count,
        .volume = x->volume,
        .vwap = x->volume != 0 ? x->pv / x->volume : x->psum / (double)x->count,
        .min = x->min,
        .max = x->max,
        .first = x->first,
        .last = x->last,
        .mean = x->psum / (double)x->count,
        .pvm = x->pv / (double)x->count,
    };
}

/* Closes every window whose end is <= the watermark, oldest first, and
 * validates the commit candidates this makes safe. */
static void close_due(wc_t *w, part_t *p, int64_t position, wc_emit_fn fn, void *arg) {
    int64_t wm = watermark(w, p);
    while (p->nwins > 0 && wm != NONE && p->heap[0]->start + w->c.size_ms <= wm) {
        win_t *x = p->heap[0];
        wc_result_t r;
        fill(w, p, x, position, 1, &r);
        fn(arg, &r);
        heap_swap(p, 0, --p->nwins);
        heap_down(p, 0);
        win_unlink(p, x);
        free(x->key);
        free(x);
    }
    /* Windows still to come start after wm - size; open ones at heap[0]. */
    if (wm == NONE) return;
    int64_t lo = wm - w->c.size_ms + 1;
    if (p->nwins > 0 && p->heap[0]->start < lo) lo = p->heap[0]->start;
    while (p->nvalid < p->ncands && p->cands[p->nvalid].ts < lo)
        p->cands[p->nvalid++].valid_at = position;
}

static int add_cand(wc_t *w, part_t *p, int64_t offset, int64_t ts) {
    if (p->ncands > 0 &&
        floor_div(p->cands[p->ncands - 1].ts, w->c.slide_ms) == floor_div(ts, w->c.slide_ms))
        return 0; /* one per slide: fewer, earlier candidates are just as safe */
    if (p->ncands == p->cap_cands) {
        size_t cap = p->cap_cands ? p->cap_cands * 2 : 16;
        cand_t *g = realloc(p->cands, cap * sizeof(*g));
        if (!g) return -1;
        p->cands = g;
        p->cap_cands = cap;
    }
    p->cands[p->ncands++] = (cand_t){offset, ts, -1};
    return 0;
}

int wc_add(wc_t *w, const char *topic, int32_t partition, int64_t offset, const char *key,
           int64_t ts, double price, double volume, int64_t now_ms, wc_emit_fn fn, void *arg) {
    part_t *p = part_find(w, topic, partition, NULL);
    if (!p && !(p = part_new(w, topic, partition, -1))) return -1;
    p->last_offset = offset;
    p->last_arrival = now_ms;
    if (p->max_ts == NONE || ts >= p->max_ts) {
        if (p->replay && p->replay_base == NONE) p->replay_base = ts;
        if (add_cand(w, p, offset, ts) != 0) return -1;
        p->max_ts = ts;
    }
    int64_t wm = watermark(w, p);
    int64_t last_start = floor_div(ts, w->c.slide_ms) * w->c.slide_ms;
    int rc;
    if (wm != NONE && last_start + w->c.size_ms <= wm) {
        rc = WC_LATE;
    } else {
        rc = WC_REPLAYED;
        for (int64_t s = last_start; s + w->c.size_ms > ts; s -= w->c.slide_ms) {
            if (wm != NONE && s + w->c.size_ms <= wm) break; /* this and earlier: closed */
            if (p->replay_base != NONE && s <= p->replay_base) break;
            win_t *x = win_get(p, key, s);
            if (!x) return -1;
            if (x->count == 0) {
                x->min = x->max = x->first = x->last = price;
                x->first_ts = x->last_ts = ts;
            } else {
                if (price < x->min) x->min = price;
                if (price > x->max) x->max = price;
                if (ts < x->first_ts) x->first_ts = ts, x->first = price;
                if (ts >= x->last_ts) x->last_ts = ts, x->last = price;
            }
            x->count++;
            x->volume += volume;
            x->pv += price * volume;
            x->psum += price;
            x->dirty = 1;
            rc = WC_ADDED;
        }
    }
    close_due(w, p, offset, fn, arg);
    return rc;
}

void wc_tick(wc_t *w, int64_t now_ms, int early, wc_emit_fn fn, void *arg) {
    for (size_t i = 0; i < w->nparts; i++) {
        part_t *p = w->parts[i];
        if (p->max_ts == NONE) continue;
        int64_t quiet = now_ms - p->last_arrival;
        if (w->c.idle_ms > 0 && quiet >= w->c.idle_ms && p->nwins > 0) {
            int64_t wm = p->max_ts - w->c.lateness_ms + quiet;
            /* only when it closes a window, and the partition is idle */
            if (wm > watermark(w, p) && p->heap[0]->start + w->c.size_ms <= wm &&
                (!w->idle_ok || w->idle_ok(w->idle_arg, p->topic, p->partition, quiet, wm))) {
                p->idle_wm = wm;
                close_due(w, p, p->last_offset, fn, arg);
            }
        }
        if (!early) continue;
        for (size_t j = 0; j < p->nwins; j++) {
            win_t *x = p->heap[j];
            if (!x->dirty) continue;
            wc_result_t r;
            fill(w, p, x, p->last_offset, 0, &r);
            fn(arg, &r);
            x->dirty = 0;
        }
    }
}

int64_t wc_commit_offset(wc_t *w, const char *topic, int32_t partition, int64_t durable) {
    part_t *p = part_find(w, topic, partition, NULL);
    if (!p) return -1;
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < p->nvalid; i++)
        if (p->cands[i].valid_at + 1 < durable) best = i;
    if (best == SIZE_MAX) return -1;
    int64_t off = p->cands[best].offset;
    /* later commits never go back: drop what precedes the chosen one */
    memmove(p->cands, p->cands + best, (p->ncands - best) * sizeof(*p->cands));
    p->ncands -= best;
    p->nvalid -= best;
    return off;
}

size_t wc_open_windows(const wc_t *w) {
    size_t n = 0;
    for (size_t i = 0; i < w->nparts; i++) n += w->parts[i]->nwins;
    return n;
}

int64_t wc_watermark(const wc_t *w, const char *topic, int32_t partition) {
    const part_t *p = part_find(w, topic, partition, NULL);
    return p ? watermark(w, p) : NONE;
}
