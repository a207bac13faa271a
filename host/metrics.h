/*
 * metrics.h - counters and gauges of the worker and its tasks, named
 * "<name>{connector=...,task=...}". A registry owns its metrics; metric
 * pointers stay valid until sl_metrics_free(). Thread-safe.
 */
#ifndef SLUICE_HOST_METRICS_H
#define SLUICE_HOST_METRICS_H

#include <stdio.h>
#include <sluice/plugin.h>

typedef struct sl_metrics sl_metrics_t;

typedef enum { SL_METRIC_COUNTER, SL_METRIC_GAUGE } sl_metric_kind_t;

sl_metrics_t *sl_metrics_new(void);
void sl_metrics_free(sl_metrics_t *m);
/** Finds or creates a metric; NULL on OOM or when the name exists with the
 *  other kind. connector may be NULL (worker-level), task -1. */
sluice_metric_t *sl_metrics_get(sl_metrics_t *m, sl_metric_kind_t kind, const char *name,
                                const char *help, const char *connector, int task);
void sl_metric_add(sluice_metric_t *metric, double delta);
void sl_metric_set(sluice_metric_t *metric, double value);
double sl_metric_value(sluice_metric_t *metric);
/** Sum of a metric's values over every task of a connector (NULL = all). */
double sl_metrics_sum(sl_metrics_t *m, const char *name, const char *connector);
/** Writes every metric in Prometheus text format. */
void sl_metrics_write(sl_metrics_t *m, FILE *out);

#endif
