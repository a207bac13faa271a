/* metrics.c - see metrics.h. A flat list: a worker has tens of metrics, and
 * plugins look theirs up once and keep the pointer. */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sluice_metric {
    sl_metrics_t *owner;
    sl_metric_kind_t kind;
    char *name, *help, *connector;
    int task;
    double value; /* counter/gauge value; histogram: sum of observations */
    /* histogram only: upper bounds and per-bucket (not cumulative) counts,
     * counts[nbounds] being the +Inf bucket */
    size_t nbounds;
    double bounds[SL_METRIC_MAX_BUCKETS];
    uint64_t counts[SL_METRIC_MAX_BUCKETS + 1];
};

struct sl_metrics {
    pthread_mutex_t lock;
    sluice_metric_t **items;
    size_t n, cap;
};

const double sl_metrics_seconds_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10, 30};
const size_t sl_metrics_seconds_nbuckets =
    sizeof(sl_metrics_seconds_buckets) / sizeof(sl_metrics_seconds_buckets[0]);
const double sl_metrics_size_buckets[] = {1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 100000};
const size_t sl_metrics_size_nbuckets =
    sizeof(sl_metrics_size_buckets) / sizeof(sl_metrics_size_buckets[0]);

double sl_metrics_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

sl_metrics_t *sl_metrics_new(void) {
    sl_metrics_t *m = calloc(1, sizeof(*m));
    if (m) pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void metric_free(sluice_metric_t *x) {
    free(x->name);
    free(x->help);
    free(x->connector);
    free(x);
}

void sl_metrics_free(sl_metrics_t *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) metric_free(m->items[i]);
    free(m->items);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static int same_owner(const sluice_metric_t *x, const char *name, const char *connector,
                      int task) {
    if (strcmp(x->name, name) != 0 || x->task != task) return 0;
    if (!x->connector || !connector) return x->connector == connector;
    return strcmp(x->connector, connector) == 0;
}

static sluice_metric_t *metric_new(sl_metrics_t *m, sl_metric_kind_t kind, const char *name,
                                   const char *help, const char *connector, int task) {
    sluice_metric_t *x = calloc(1, sizeof(*x));
    if (!x) return NULL;
    x->owner = m;
    x->kind = kind;
    x->task = task;
    x->name = strdup(name);
    x->help = strdup(help ? help : "");
    x->connector = connector ? strdup(connector) : NULL;
    if (!x->name || !x->help || (connector && !x->connector)) {
        metric_free(x);
        return NULL;
    }
    return x;
}

static sluice_metric_t *get_metric(sl_metrics_t *m, sl_metric_kind_t kind, const char *name,
                                   const char *help, const char *connector, int task,
                                   const double *bounds, size_t nbounds) {
    if (!m || !name || !*name) return NULL;
    sluice_metric_t *found = NULL;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n && !found; i++)
        if (same_owner(m->items[i], name, connector, task)) found = m->items[i];
    if (found) {
        if (found->kind != kind) found = NULL;
        goto out;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 32;
        sluice_metric_t **grown = realloc(m->items, cap * sizeof(*grown));
        if (!grown) goto out;
        m->items = grown;
        m->cap = cap;
    }
    if ((found = metric_new(m, kind, name, help, connector, task)) != NULL) {
        found->nbounds = nbounds;
        if (nbounds) memcpy(found->bounds, bounds, nbounds * sizeof(*bounds));
        m->items[m->n++] = found;
    }
out:
    pthread_mutex_unlock(&m->lock);
    return found;
}

sluice_metric_t *sl_metrics_get(sl_metrics_t *m, sl_metric_kind_t kind, const char *name,
                                const char *help, const char *connector, int task) {
    if (kind == SL_METRIC_HISTOGRAM) return NULL; /* needs bounds */
    return get_metric(m, kind, name, help, connector, task, NULL, 0);
}

sluice_metric_t *sl_metrics_histogram(sl_metrics_t *m, const char *name, const char *help,
                                      const char *connector, int task, const double *bounds,
                                      size_t nbounds) {
    if (!bounds || nbounds == 0 || nbounds > SL_METRIC_MAX_BUCKETS) return NULL;
    for (size_t i = 0; i < nbounds; i++)
        if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1])) return NULL;
    return get_metric(m, SL_METRIC_HISTOGRAM, name, help, connector, task, bounds, nbounds);
}

/* Caller holds the lock. */
static void observe_locked(sluice_metric_t *x, double v) {
    size_t i = 0;
    while (i < x->nbounds && v > x->bounds[i]) i++; /* le: v <= bound */
    x->counts[i]++;
    x->value += v;
}

void sl_metric_observe(sluice_metric_t *x, double value) {
    if (!x || x->kind != SL_METRIC_HISTOGRAM) return;
    pthread_mutex_lock(&x->owner->lock);
    observe_locked(x, value);
    pthread_mutex_unlock(&x->owner->lock);
}

static uint64_t hist_count(const sluice_metric_t *x) {
    uint64_t n = 0;
    for (size_t i = 0; i <= x->nbounds; i++) n += x->counts[i];
    return n;
}

void sl_metric_add(sluice_metric_t *x, double delta) {
    if (!x) return;
    pthread_mutex_lock(&x->owner->lock);
    if (x->kind == SL_METRIC_HISTOGRAM)
        observe_locked(x, delta);
    else
        x->value += delta;
    pthread_mutex_unlock(&x->owner->lock);
}

void sl_metric_set(sluice_metric_t *x, double value) {
    if (!x) return;
    pthread_mutex_lock(&x->owner->lock);
    if (x->kind == SL_METRIC_HISTOGRAM)
        observe_locked(x, value);
    else
        x->value = value;
    pthread_mutex_unlock(&x->owner->lock);
}

double sl_metric_value(sluice_metric_t *x) {
    if (!x) return 0;
    pthread_mutex_lock(&x->owner->lock);
    double v = x->kind == SL_METRIC_HISTOGRAM ? (double)hist_count(x) : x->value;
    pthread_mutex_unlock(&x->owner->lock);
    return v;
}

double sl_metrics_sum(sl_metrics_t *m, const char *name, const char *connector) {
    double sum = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n; i++) {
        sluice_metric_t *x = m->items[i];
        if (strcmp(x->name, name) != 0) continue;
        if (connector && (!x->connector || strcmp(x->connector, connector) != 0)) continue;
        sum += x->value;
    }
    pthread_mutex_unlock(&m->lock);
    return sum;
}

/* Prometheus text escaping: HELP escapes \\ and newline; label values
 * also escape the double quote. */
static void write_escaped(FILE *out, const char *s, int label) {
    for (; *s; s++) {
        if (*s == '\\') fputs("\\\\", out);
        else if (*s == '\n') fputs("\\n", out);
        else if (label && *s == '"') fputs("\\\"", out);
        else fputc(*s, out);
    }
}

/* One sample line: sluice_<name><suffix>{connector=..,task=..,le=..} v.
 * le is NULL outside histogram buckets. */
static void write_line(FILE *out, const sluice_metric_t *x, const char *suffix, const char *le,
                       double v) {
    fprintf(out, "sluice_%s%s", x->name, suffix);
    if (x->connector || le) fputc('{', out);
    if (x->connector) {
        fputs("connector=\"", out);
        write_escaped(out, x->connector, 1);
        fprintf(out, "\",task=\"%d\"", x->task);
    }
    if (le) fprintf(out, "%sle=\"%s\"", x->connector ? "," : "", le);
    if (x->connector || le) fputc('}', out);
    fprintf(out, " %.17g\n", v);
}

static void write_sample(FILE *out, const sluice_metric_t *x) {
    if (x->kind != SL_METRIC_HISTOGRAM) {
        write_line(out, x, "", NULL, x->value);
        return;
    }
    uint64_t cum = 0;
    char le[40];
    for (size_t i = 0; i < x->nbounds; i++) {
        cum += x->counts[i];
        snprintf(le, sizeof le, "%.17g", x->bounds[i]);
        write_line(out, x, "_bucket", le, (double)cum);
    }
    cum += x->counts[x->nbounds];
    write_line(out, x, "_bucket", "+Inf", (double)cum);
    write_line(out, x, "_sum", NULL, x->value);
    write_line(out, x, "_count", NULL, (double)cum);
}

static const char *kind_name(sl_metric_kind_t k) {
    return k == SL_METRIC_COUNTER ? "counter" : k == SL_METRIC_GAUGE ? "gauge" : "histogram";
}

void sl_metrics_write(sl_metrics_t *m, FILE *out) {
    pthread_mutex_lock(&m->lock);
    /* One HELP/TYPE block per name, every sample of that name under it. */
    for (size_t i = 0; i < m->n; i++) {
        const sluice_metric_t *x = m->items[i];
        size_t first = 0;
        while (strcmp(m->items[first]->name, x->name) != 0) first++;
        if (first != i) continue; /* written with its first occurrence */
        fprintf(out, "# HELP sluice_%s ", x->name);
        write_escaped(out, x->help, 0);
        fprintf(out, "\n# TYPE sluice_%s %s\n", x->name,
                kind_name(x->kind));
        for (size_t j = i; j < m->n; j++)
            if (strcmp(m->items[j]->name, x->name) == 0) write_sample(out, m->items[j]);
    }
    pthread_mutex_unlock(&m->lock);
}
