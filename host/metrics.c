/* metrics.c - see metrics.h. A flat list: a worker has tens of metrics, and
 * plugins look theirs up once and keep the pointer. */
#include "metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct sluice_metric {
    sl_metrics_t *owner;
    sl_metric_kind_t kind;
    char *name, *help, *connector;
    int task;
    double value;
};

struct sl_metrics {
    pthread_mutex_t lock;
    sluice_metric_t **items;
    size_t n, cap;
};

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

sluice_metric_t *sl_metrics_get(sl_metrics_t *m, sl_metric_kind_t kind, const char *name,
                                const char *help, const char *connector, int task) {
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
    if ((found = metric_new(m, kind, name, help, connector, task)) != NULL)
        m->items[m->n++] = found;
out:
    pthread_mutex_unlock(&m->lock);
    return found;
}

void sl_metric_add(sluice_metric_t *x, double delta) {
    if (!x) return;
    pthread_mutex_lock(&x->owner->lock);
    x->value += delta;
    pthread_mutex_unlock(&x->owner->lock);
}

void sl_metric_set(sluice_metric_t *x, double value) {
    if (!x) return;
    pthread_mutex_lock(&x->owner->lock);
    x->value = value;
    pthread_mutex_unlock(&x->owner->lock);
}

double sl_metric_value(sluice_metric_t *x) {
    if (!x) return 0;
    pthread_mutex_lock(&x->owner->lock);
    double v = x->value;
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

static void write_sample(FILE *out, const sluice_metric_t *x) {
    fprintf(out, "sluice_%s", x->name);
    if (x->connector) {
        fputs("{connector=\"", out);
        write_escaped(out, x->connector, 1);
        fprintf(out, "\",task=\"%d\"}", x->task);
    }
    fprintf(out, " %.17g\n", x->value);
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
                x->kind == SL_METRIC_COUNTER ? "counter" : "gauge");
        for (size_t j = i; j < m->n; j++)
            if (strcmp(m->items[j]->name, x->name) == 0) write_sample(out, m->items[j]);
    }
    pthread_mutex_unlock(&m->lock);
}
