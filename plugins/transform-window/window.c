/*
 * window.c - "transform-window": event-time windowed aggregation in a sink
 * connector's chain (plugin glue; the logic is window_core.c).
 *
 * Input: Avro records with a key field (symbol), price and volume, event
 * time from a field or the record timestamp. Output: one trades_summary
 * record per (key, window) when the window closes (and early updates on a
 * timer), carrying the Kafka position of the input record that closed it
 * (record_set_kafka_position, ABI 1.1), so the sink and the host treat it
 * as that record's output. pre_commit lowers each partition's offset to a
 * point a replay rebuilds the open windows from (docs/transform-window.md).
 */
#include <sluice/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "window_core.h"

static const sluice_host_api_t *host;

typedef struct wstate {
    sluice_task_t *task;
    wc_t *core;
    char *key_field, *time_field, *price_field, *volume_field;
    int late_dlq;
    avro_schema_t out;
    int64_t early_ms, next_early;
    int64_t stall_logged; /* now_ms() of the last "stalled" line (at most one per 10 s) */
    sluice_timer_t *timer;
    sluice_err_t emit_rc; /* FATAL once emit() said the task is failing */
    sluice_metric_t *m_late, *m_results, *m_early, *m_bad, *m_open, *m_replayed;
} wstate_t;

static void wfree(wstate_t *s) {
    if (!s) return;
    wc_free(s->core);
    free(s->key_field);
    free(s->time_field);
    free(s->price_field);
    free(s->volume_field);
    free(s);
}

static char *dup_cfg(sluice_task_t *task, const char *key) {
    const char *v = host->config_string(task, key);
    return v && *v ? strdup(v) : NULL;
}

static int set_field(avro_value_t *v, const char *name, int kind, const void *x) {
    avro_value_t f;
    if (avro_value_get_by_name(v, name, &f, NULL) != 0) return -1;
    switch (kind) {
    case 's': return avro_value_set_string(&f, x);
    case 'l': return avro_value_set_long(&f, *(const int64_t *)x);
    case 'd': return avro_value_set_double(&f, *(const double *)x);
    default: return avro_value_set_boolean(&f, *(const int *)x);
    }
}

static void emit_result(void *arg, const wc_result_t *r) {
    wstate_t *s = arg;
    if (s->emit_rc == SLUICE_ERR_FATAL) return;
    sluice_record_t *rec = host->record_new(s->task);
    avro_value_t *v = NULL;
    if (!rec) {
        s->emit_rc = SLUICE_ERR_FATAL;
        host->set_error(s->task, "out of memory for a window result");
        return;
    }
    int bad = host->record_set_kafka_position(rec, r->topic, r->partition, r->position) != SLUICE_OK ||
              host->record_set_key(rec, r->key, strlen(r->key)) != SLUICE_OK ||
              host->record_set_timestamp(rec, r->end - 1) != SLUICE_OK ||
              host->record_set_value_avro(rec, s->out, &v) != SLUICE_OK;
    int64_t start = r->start, end = r->end, count = r->count;
    bad = bad || set_field(v, "symbol", 's', r->key) || set_field(v, "window_start", 'l', &start) ||
          set_field(v, "window_end", 'l', &end) || set_field(v, "is_final", 'b', &r->final) ||
          set_field(v, "trade_count", 'l', &count) || set_field(v, "volume", 'd', &r->volume) ||
          set_field(v, "vwap", 'd', &r->vwap) || set_field(v, "min_price", 'd', &r->min) ||
          set_field(v, "max_price", 'd', &r->max) || set_field(v, "first_price", 'd', &r->first) ||
          set_field(v, "last_price", 'd', &r->last) || set_field(v, "mean_price", 'd', &r->mean) ||
          set_field(v, "price_volume_multiply", 'd', &r->pvm);
    if (bad) {
        host->record_free(rec);
        s->emit_rc = SLUICE_ERR_FATAL;
        host->set_error(s->task, "cannot build a result of the output schema: %s", avro_strerror());
        return;
    }
    host->metric_add(r->final ? s->m_results : s->m_early, 1);
    if (host->emit(s->task, rec) == SLUICE_ERR_FATAL) s->emit_rc = SLUICE_ERR_FATAL;
}

/* A quiet partition's watermark advances on processing time only when the
 * host says the sink's consumer has every record the partition holds (a
 * partition whose leader is down is stalled, not idle: its records would
 * come late). Hosts before ABI 1.3 cannot tell: it advances. */
static int idle_check(void *arg, const char *topic, int32_t partition, int64_t quiet_ms,
                      int64_t wm) {
    wstate_t *s = arg;
    int at_end = SLUICE_HOST_HAS(host, partition_at_end)
                     ? host->partition_at_end(s->task, topic, partition)
                     : -1;
    if (at_end == 0) {
        int64_t now = host->now_ms();
        if (now - s->stall_logged < 10000) return 0;
        s->stall_logged = now;
        host->log(s->task, SLUICE_LOG_INFO,
                  "%s[%d]: no record for %lld ms, but records are waiting in Kafka or a broker "
                  "is not reachable: stalled, not idle; watermark kept",
                  topic, (int)partition, (long long)quiet_ms);
        return 0;
    }
    host->log(s->task, SLUICE_LOG_INFO,
              "%s[%d]: no record for %lld ms%s: watermark advanced to %lld on processing time "
              "(window.idle.timeout.ms)",
              topic, (int)partition, (long long)quiet_ms,
              at_end == 1 ? " and none waiting in Kafka" : "", (long long)wm);
    return 1;
}

static void on_timer(void *arg, sluice_task_t *task) {
    (void)task;
    wstate_t *s = arg;
    int64_t now = host->now_ms();
    int early = s->early_ms > 0 && now >= s->next_early;
    if (early) s->next_early = now + s->early_ms;
    wc_tick(s->core, now, early, emit_result, s);
    host->metric_set(s->m_open, (double)wc_open_windows(s->core));
}

static int is_record(avro_schema_t sc) { return avro_typeof(sc) == AVRO_RECORD; }

static sluice_err_t w_start(sluice_task_t *task, void **state) {
    char why[256];
    wstate_t *s = calloc(1, sizeof(*s));
    if (!s) return SLUICE_ERR_NOMEM;
    s->task = task;
    wc_conf_t c = {0};
    int64_t slide = 0;
    if (host->config_int(task, "window.size.ms", &c.size_ms) != SLUICE_OK ||
        host->config_int(task, "window.slide.ms", &slide) != SLUICE_OK ||
        host->config_int(task, "window.lateness.ms", &c.lateness_ms) != SLUICE_OK ||
        host->config_int(task, "window.idle.timeout.ms", &c.idle_ms) != SLUICE_OK ||
        host->config_int(task, "window.early.interval.ms", &s->early_ms) != SLUICE_OK) {
        host->set_error(task, "config 'window.*.ms': not an integer");
        wfree(s);
        return SLUICE_ERR_CONFIG;
    }
    c.slide_ms = slide > 0 ? slide : c.size_ms;
    if (!(s->core = wc_new(&c, why, sizeof(why)))) {
        host->set_error(task, "config 'window.size.ms'/'window.slide.ms': %s", why);
        wfree(s);
        return SLUICE_ERR_CONFIG;
    }
    wc_set_idle_check(s->core, idle_check, s);
    s->key_field = dup_cfg(task, "window.key.field");
    s->time_field = dup_cfg(task, "window.time.field");
    s->price_field = dup_cfg(task, "window.price.field");
    s->volume_field = dup_cfg(task, "window.volume.field");
    const char *late = host->config_string(task, "window.late.action");
    s->late_dlq = !late || strcmp(late, "dlq") == 0;
    const char *oname = host->config_string(task, "window.output.schema");
    if (!s->key_field || !s->price_field || !s->volume_field) {
        host->set_error(task, "config 'window.key.field', 'window.price.field' and "
                              "'window.volume.field' must not be empty");
        wfree(s);
        return SLUICE_ERR_CONFIG;
    }
    if (!(s->out = host->schema_get(task, oname))) {
        host->set_error(task, "config 'window.output.schema': schema %s not found", oname);
        wfree(s);
        return SLUICE_ERR_CONFIG;
    }
    static const char *const fields[] = {"symbol", "window_start", "window_end", "is_final",
                                         "trade_count", "volume", "vwap", "min_price",
                                         "max_price", "first_price", "last_price", "mean_price",
                                         "price_volume_multiply"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        /* avro_schema_record_field_get() does not say NULL for a missing name */
        if (!is_record(s->out) || avro_schema_record_field_get_index(s->out, fields[i]) < 0) {
            host->set_error(task, "config 'window.output.schema': schema %s has no field %s "
                                  "(see schemas/trades_summary.avsc)", oname, fields[i]);
            wfree(s);
            return SLUICE_ERR_CONFIG;
        }
    }
    s->m_late = host->metric_counter(task, "window_late_records_total",
                                     "records after the watermark (every window closed)");
    s->m_results = host->metric_counter(task, "window_results_total", "final window results emitted");
    s->m_early = host->metric_counter(task, "window_early_updates_total", "early updates emitted");
    s->m_bad = host->metric_counter(task, "window_bad_records_total",
                                    "records without a usable key, price, volume or time");
    s->m_replayed = host->metric_counter(task, "window_replayed_records_total",
                                         "records read again for windows already emitted");
    s->m_open = host->metric_gauge(task, "window_open_windows", "open (key, window) states");
    int64_t tick = 0;
    if (s->early_ms > 0) tick = s->early_ms;
    if (c.idle_ms > 0) {
        int64_t t = c.idle_ms / 4 > 20 ? c.idle_ms / 4 : 20;
        if (!tick || t < tick) tick = t;
    }
    if (!tick) tick = 1000; /* the open-windows gauge */
    s->next_early = host->now_ms() + s->early_ms;
    if (!(s->timer = host->timer_start(task, tick, on_timer, s))) {
        host->set_error(task, "cannot start the window timer");
        wfree(s);
        return SLUICE_ERR_FATAL;
    }
    host->log(task, SLUICE_LOG_INFO,
              "windows of %lld ms every %lld ms, lateness %lld ms, idle %lld ms, early %lld ms, "
              "key %s, time %s, late records: %s",
              (long long)c.size_ms, (long long)c.slide_ms, (long long)c.lateness_ms,
              (long long)c.idle_ms, (long long)s->early_ms, s->key_field,
              s->time_field ? s->time_field : "(record timestamp)", s->late_dlq ? "dlq" : "drop");
    *state = s;
    return SLUICE_OK;
}

static int get_double(avro_value_t *v, const char *name, double *out) {
    avro_value_t f;
    if (avro_value_get_by_name(v, name, &f, NULL) != 0) return -1;
    int32_t i;
    int64_t l;
    float fl;
    switch (avro_value_get_type(&f)) {
    case AVRO_DOUBLE: return avro_value_get_double(&f, out);
    case AVRO_FLOAT: if (avro_value_get_float(&f, &fl)) return -1; *out = fl; return 0;
    case AVRO_INT64: if (avro_value_get_long(&f, &l)) return -1; *out = (double)l; return 0;
    case AVRO_INT32: if (avro_value_get_int(&f, &i)) return -1; *out = i; return 0;
    default: return -1;
    }
}

static sluice_err_t reject(wstate_t *s, sluice_record_t *rec, const char *why) {
    host->metric_add(s->m_bad, 1);
    sluice_err_t rc = host->dead_letter(s->task, rec, SLUICE_ERR_BAD_RECORD, why);
    host->record_free(rec);
    return rc == SLUICE_ERR_FATAL ? rc : SLUICE_ERR_BAD_RECORD;
}

static sluice_err_t w_apply(void *state, sluice_task_t *task, sluice_record_t *rec) {
    (void)task;
    wstate_t *s = state;
    char why[256];
    const char *topic = host->record_topic(rec);
    int32_t partition = host->record_partition(rec);
    int64_t offset = host->record_offset(rec);
    if (!topic || partition < 0 || offset < 0)
        return reject(s, rec, "transform-window runs in a sink connector's chain: the record has "
                              "no Kafka position");
    avro_value_t *v = host->record_value_avro(rec, NULL);
    if (!v || avro_value_get_type(v) != AVRO_RECORD)
        return reject(s, rec, "the value is not an Avro record");
    avro_value_t kf;
    const char *key = NULL;
    size_t klen = 0;
    if (avro_value_get_by_name(v, s->key_field, &kf, NULL) != 0 ||
        avro_value_get_string(&kf, &key, &klen) != 0 || !key) {
        snprintf(why, sizeof(why), "field '%s' (window.key.field) is missing or not a string",
                 s->key_field);
        return reject(s, rec, why);
    }
    double price, volume;
    if (get_double(v, s->price_field, &price) != 0 || get_double(v, s->volume_field, &volume) != 0) {
        snprintf(why, sizeof(why), "field '%s' or '%s' is missing or not a number", s->price_field,
                 s->volume_field);
        return reject(s, rec, why);
    }
    int64_t ts = host->record_timestamp(rec);
    if (s->time_field) {
        avro_value_t tf;
        if (avro_value_get_by_name(v, s->time_field, &tf, NULL) != 0 ||
            avro_value_get_long(&tf, &ts) != 0) {
            snprintf(why, sizeof(why), "field '%s' (window.time.field) is missing or not a long",
                     s->time_field);
            return reject(s, rec, why);
        }
    } else if (ts < 0) {
        return reject(s, rec, "the record has no timestamp (set window.time.field)");
    }
    s->emit_rc = SLUICE_OK;
    int rc = wc_add(s->core, topic, partition, offset, key, ts, price, volume, host->now_ms(),
                    emit_result, s);
    if (rc < 0) {
        host->record_free(rec);
        host->set_error(task, "out of memory for window state");
        return SLUICE_ERR_FATAL;
    }
    sluice_err_t out = s->emit_rc;
    if (rc == WC_LATE) {
        host->metric_add(s->m_late, 1);
        if (s->late_dlq) {
            snprintf(why, sizeof(why), "late: event time %lld is behind the watermark %lld",
                     (long long)ts, (long long)wc_watermark(s->core, topic, partition));
            sluice_err_t d = host->dead_letter(task, rec, SLUICE_ERR_BAD_RECORD, why);
            if (d == SLUICE_ERR_FATAL) out = d;
        }
    } else if (rc == WC_REPLAYED) {
        host->metric_add(s->m_replayed, 1);
    }
    host->record_free(rec);
    return out;
}

static sluice_err_t w_open(void *state, sluice_task_t *task, sluice_topic_partition_t *parts,
                           size_t n) {
    wstate_t *s = state;
    for (size_t i = 0; i < n; i++) {
        if (wc_open(s->core, parts[i].topic, parts[i].partition,
                    parts[i].offset >= 0 ? parts[i].offset : -1) != 0) {
            host->set_error(task, "out of memory in open()");
            return SLUICE_ERR_FATAL;
        }
    }
    return SLUICE_OK;
}

static sluice_err_t w_close(void *state, sluice_task_t *task, const sluice_topic_partition_t *parts,
                            size_t n) {
    (void)task;
    wstate_t *s = state;
    for (size_t i = 0; i < n; i++) wc_close(s->core, parts[i].topic, parts[i].partition);
    host->metric_set(s->m_open, (double)wc_open_windows(s->core));
    return SLUICE_OK;
}

static sluice_err_t w_pre_commit(void *state, sluice_task_t *task, sluice_topic_partition_t *offsets,
                                 size_t n) {
    (void)task;
    wstate_t *s = state;
    for (size_t i = 0; i < n; i++) {
        if (!offsets[i].topic || offsets[i].offset < 0) continue;
        int64_t c = wc_commit_offset(s->core, offsets[i].topic, offsets[i].partition,
                                     offsets[i].offset);
        offsets[i].offset = c >= 0 ? c : SLUICE_OFFSET_UNSET;
    }
    return SLUICE_OK;
}

static void w_stop(void *state, sluice_task_t *task) {
    wstate_t *s = state;
    if (!s) return;
    if (s->timer) host->timer_stop(task, s->timer);
    wfree(s);
}

#define BIG ((double)INT64_MAX)

static const sluice_config_def_t w_config[] = {
    {.name = "window.size.ms", .type = SLUICE_CONFIG_INT, .default_value = "10000",
     .doc = "Window length (event time)", .min = 1, .max = BIG},
    {.name = "window.slide.ms", .type = SLUICE_CONFIG_INT, .default_value = "0",
     .doc = "Hop between window starts; 0: tumbling (= window.size.ms)", .min = 0, .max = BIG},
    {.name = "window.lateness.ms", .type = SLUICE_CONFIG_INT, .default_value = "0",
     .doc = "Allowed lateness: watermark = max event time - this", .min = 0, .max = BIG},
    {.name = "window.idle.timeout.ms", .type = SLUICE_CONFIG_INT, .default_value = "0",
     .doc = "After this long without records a partition's watermark advances with processing "
            "time; 0: never",
     .min = 0, .max = BIG},
    {.name = "window.early.interval.ms", .type = SLUICE_CONFIG_INT, .default_value = "0",
     .doc = "Emit early (is_final=false) updates of changed open windows this often; 0: never",
     .min = 0, .max = BIG},
    {.name = "window.key.field", .type = SLUICE_CONFIG_STRING, .default_value = "symbol",
     .doc = "String field the windows are keyed by"},
    {.name = "window.time.field", .type = SLUICE_CONFIG_STRING,
     .doc = "Long field with the event time in ms; unset: the record timestamp"},
    {.name = "window.price.field", .type = SLUICE_CONFIG_STRING, .default_value = "price",
     .doc = "Numeric price field"},
    {.name = "window.volume.field", .type = SLUICE_CONFIG_STRING, .default_value = "volume",
     .doc = "Numeric volume field"},
    {.name = "window.output.schema", .type = SLUICE_CONFIG_STRING,
     .default_value = "trades_summary", .doc = "Schema of the results (schemas.path)"},
    {.name = "window.late.action", .type = SLUICE_CONFIG_STRING, .default_value = "dlq",
     .doc = "Late records: dlq (dead-letter queue, counted) or drop (counted)",
     .allowed = "dlq|drop"},
    {.name = NULL},
};

static const sluice_transform_ops_t w_ops = {
    .struct_size = sizeof(sluice_transform_ops_t),
    .start = w_start,
    .apply = w_apply,
    .open = w_open,
    .close = w_close,
    .pre_commit = w_pre_commit,
    .stop = w_stop,
};

static const sluice_plugin_t w_plugin = {
    SLUICE_PLUGIN_HEADER,
    .kind = SLUICE_PLUGIN_TRANSFORM,
    .name = "transform-window",
    .version = "0.1.0",
    .description = "Event-time windowed aggregation (tumbling/hopping, VWAP), exactly once with "
                   "an upserting sink",
    .config = w_config,
    .transform = &w_ops,
};

SLUICE_EXPORT const sluice_plugin_t *SLUICE_PLUGIN_ENTRY(const sluice_host_api_t *api) {
    if (!api || api->abi_major != SLUICE_ABI_MAJOR) return NULL;
    if (!SLUICE_HOST_HAS(api, record_set_kafka_position)) {
        if (SLUICE_HOST_HAS(api, log))
            api->log(NULL, SLUICE_LOG_ERROR,
                     "transform-window: the host lacks record_set_kafka_position (ABI 1.1)");
        return NULL;
    }
    host = api;
    return &w_plugin;
}
