/*
 * metrics.h - counters, gauges and histograms of the worker and its tasks, named
 * "<name>{connector=...,task=...}". A registry owns its metrics; metric
 * pointers stay valid until sl_metrics_free(). Thread-safe.
 */
#ifndef SLUICE_HOST_METRICS_H
#define SLUICE_HOST_METRICS_H

#include <stdio.h>
#include <sluice/plugin.h>

typedef struct sl_metrics sl_metrics_t;

typedef enum { SL_METRIC_COUNTER, SL_METRIC_GAUGE, SL_METRIC_HISTOGRAM } sl_metric_kind_t;

sl_metrics_t *sl_metrics_new(void);
void sl_metrics_free(sl_metrics_t *m);
/** Finds or creates a metric; NULL on OOM or when the name exists with the
 *  other kind. connector may be NULL (worker-level), task -1. */
sluice_metric_t *sl_metrics_get(sl_metrics_t *m, sl_metric_kind_t kind, const char *name,
                                const char *help, const char *connector, int task);
/** Finds or creates a histogram with the given upper bounds (ascending,
 *  finite; +Inf is implicit; at most SL_METRIC_MAX_BUCKETS). NULL on OOM, on
 *  bad bounds, or when the name exists with another kind. */
#define SL_METRIC_MAX_BUCKETS 32
sluice_metric_t *sl_metrics_histogram(sl_metrics_t *m, const char *name, const char *help,
                                      const char *connector, int task, const double *bounds,
                                      size_t nbounds);
/** Records one observation in a histogram (no-op for other kinds). */
void sl_metric_observe(sluice_metric_t *metric, double value);
/** Counter/gauge: adds to / sets the value. On a histogram both record an
 *  observation, so a plugin holding one is never wrong. */
void sl_metric_add(sluice_metric_t *metric, double delta);
void sl_metric_set(sluice_metric_t *metric, double value);
/** Value of a counter or gauge; a histogram's observation count. */
double sl_metric_value(sluice_metric_t *metric);
/** Sum of a metric's values over every task of a connector (NULL = all). */
double sl_metrics_sum(sl_metrics_t *m, const char *name, const char *connector);
/** Bucket bounds the host's own histograms use. */
extern const double sl_metrics_seconds_buckets[]; /* 0.0005 s .. 30 s */
extern const size_t sl_metrics_seconds_nbuckets;
extern const double sl_metrics_size_buckets[]; /* 1 .. 100000 records */
extern const size_t sl_metrics_size_nbuckets;
/** Monotonic clock in seconds (for latency observations). */
double sl_metrics_now_s(void);
/** Writes every metric in Prometheus text format. */
void sl_metrics_write(sl_metrics_t *m, FILE *out);

#endif
