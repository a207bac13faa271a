/*
 * window_core.h - event-time windowed aggregation, pure logic (no host, no
 * Avro): windows per (topic partition, key), tumbling or hopping, allowed
 * lateness, a data watermark per partition (max event time - lateness), an
 * idle timeout that advances it on processing time, early updates, and the
 * offset a partition may commit so that a replay from it rebuilds the open
 * windows and re-emits nothing but identical results.
 *
 * Commit points. A replay from offset C reproduces the run exactly when
 *  (1) the record at C held the partition's maximum event time so far (a
 *      "record-high"): from C on, the replayed watermark equals the
 *      original one, so every late/closed decision is the same;
 *  (2) every window that may hold a record before C (start <= ts(C)) was
 *      closed, and its result durable, before C was committed: the replay
 *      suppresses those windows (it only opens windows starting after
 *      ts(C)), and every other window holds records >= C only.
 * wc_commit_offset() picks the latest such C. See docs/transform-window.md.
 */
#ifndef SLUICE_WINDOW_CORE_H
#define SLUICE_WINDOW_CORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct wc_conf {
    int64_t size_ms;     /* window length, > 0 */
    int64_t slide_ms;    /* hop, 0 < slide <= size (== size: tumbling) */
    int64_t lateness_ms; /* allowed lateness, >= 0 */
    int64_t idle_ms;     /* 0: never advance the watermark on processing time */
} wc_conf_t;

typedef struct wc_result {
    const char *topic;
    int32_t partition;
    int64_t position; /* Kafka offset of the input record the result goes with */
    const char *key;
    int64_t start, end; /* [start, end) in ms */
    int final;          /* 1: the window closed; 0: an early update */
    int64_t count;
    double volume;    /* sum of volume */
    double vwap;      /* sum(price*volume)/sum(volume); mean price when volume is 0 */
    double min, max;  /* price */
    double first, last; /* price of the earliest/latest event (ties: lower/higher offset) */
    double mean;      /* mean price */
    double pvm;       /* mean of price*volume (price_volume_multiply) */
} wc_result_t;

typedef void (*wc_emit_fn)(void *arg, const wc_result_t *r);

typedef enum wc_add_rc {
    WC_ADDED = 0,   /* in at least one window */
    WC_LATE = 1,    /* every window holding it is closed: count / DLQ it */
    WC_REPLAYED = 2 /* only in windows closed before the committed offset */
} wc_add_rc_t;

typedef struct wc wc_t;

/* NULL on a bad conf (why written) or out of memory. */
wc_t *wc_new(const wc_conf_t *conf, char *why, size_t wl);
void wc_free(wc_t *w);

/* A partition was assigned, reading from committed (< 0: from the start,
 * no replay). Drops any state it had. 0 or -1 (out of memory). */
int wc_open(wc_t *w, const char *topic, int32_t partition, int64_t committed);
/* A partition was revoked: its state is dropped. */
void wc_close(wc_t *w, const char *topic, int32_t partition);

/* One input record (in offset order within its partition); now_ms is
 * processing time (idle timeout). Results of windows it closes are emitted
 * through fn with position = offset. -1 on out of memory. */
int wc_add(wc_t *w, const char *topic, int32_t partition, int64_t offset, const char *key,
           int64_t ts, double price, double volume, int64_t now_ms, wc_emit_fn fn, void *arg);

/* Processing-time work: idle partitions' watermarks advance (closing
 * windows), and with early != 0 every window changed since its last update
 * is emitted as an early (non-final) result. Positions: the partition's
 * last offset. */
void wc_tick(wc_t *w, int64_t now_ms, int early, wc_emit_fn fn, void *arg);

/* Asked by wc_tick before a partition quiet for idle_ms advances its
 * watermark to wm on processing time, only when that would close a window:
 * 1 lets it advance; 0 keeps it where it is, for a partition that is
 * stalled rather than idle (records waiting in Kafka that cannot be
 * fetched, e.g. its leader is down: advancing would make them late). quiet_ms
 * is the time since its last record. Without a check (the default, or fn
 * NULL) quiet partitions always advance. */
typedef int (*wc_idle_fn)(void *arg, const char *topic, int32_t partition, int64_t quiet_ms,
                          int64_t wm);
void wc_set_idle_check(wc_t *w, wc_idle_fn fn, void *arg);

/* The offset to commit for a partition whose results are durable up to
 * (excluding) offset durable: a record-high whose closed windows were all
 * emitted at positions < durable - 1. -1: nothing safe to commit yet. */
int64_t wc_commit_offset(wc_t *w, const char *topic, int32_t partition, int64_t durable);

/* Open windows (all partitions), and of one partition's watermark
 * (INT64_MIN when it has seen nothing). */
size_t wc_open_windows(const wc_t *w);
int64_t wc_watermark(const wc_t *w, const char *topic, int32_t partition);

#endif
