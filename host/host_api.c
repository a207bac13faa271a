/* host_api.c - the host-services table handed to every plugin (see
 * include/sluice/plugin.h for each member's contract). Each function here is
 * a thin adapter from the ABI to a host module. */
#include "log.h"
#include "offset_store.h"
#include "record.h"
#include "task.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void api_log(sluice_task_t *task, sluice_log_level_t level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_logv(level, task ? task->tag : "plugin", fmt, ap);
    va_end(ap);
}

static int api_log_enabled(sluice_task_t *task, sluice_log_level_t level) {
    (void)task;
    return sl_log_enabled(level);
}

static size_t def_size(const sluice_task_t *t) { return t->plugin->desc->config_def_size; }

static const char *api_config_string(sluice_task_t *t, const char *key) {
    if (!t || !key) return NULL;
    return sl_config_value(t->config, t->plugin->desc->config, def_size(t), key);
}

static sluice_err_t typed(sluice_task_t *t, const char *key, const char **text) {
    *text = api_config_string(t, key);
    return *text && **text ? SLUICE_OK : SLUICE_ERR_NOT_FOUND;
}

static sluice_err_t api_config_int(sluice_task_t *t, const char *key, int64_t *out) {
    const char *v;
    if (typed(t, key, &v) != SLUICE_OK) return SLUICE_ERR_NOT_FOUND;
    return sl_parse_int64(v, out) == 0 ? SLUICE_OK : SLUICE_ERR_CONFIG;
}

static sluice_err_t api_config_double(sluice_task_t *t, const char *key, double *out) {
    const char *v;
    if (typed(t, key, &v) != SLUICE_OK) return SLUICE_ERR_NOT_FOUND;
    return sl_parse_double(v, out) == 0 ? SLUICE_OK : SLUICE_ERR_CONFIG;
}

static sluice_err_t api_config_bool(sluice_task_t *t, const char *key, int *out) {
    const char *v;
    if (typed(t, key, &v) != SLUICE_OK) return SLUICE_ERR_NOT_FOUND;
    return sl_parse_bool(v, out) == 0 ? SLUICE_OK : SLUICE_ERR_CONFIG;
}

static const char *api_task_connector(sluice_task_t *t) { return t ? t->connector : NULL; }
static int api_task_id(sluice_task_t *t) { return t ? t->id : -1; }
static int api_task_count(sluice_task_t *t) { return t ? t->count : 0; }

static avro_schema_t api_schema_get(sluice_task_t *t, const char *name) {
    char err[512];
    avro_schema_t s = sl_schemas_get(t->svc->schemas, name, err, sizeof(err));
    if (!s) SL_ERROR(t->tag, "%s", err);
    return s;
}

static sluice_record_t *api_record_new(sluice_task_t *t) {
    (void)t;
    return sl_record_new();
}

static void api_record_free(sluice_record_t *rec) { sl_record_free(rec); }

static const char *api_record_topic(const sluice_record_t *rec) { return rec ? rec->topic : NULL; }

static const void *api_record_key(const sluice_record_t *rec, size_t *len) {
    if (len) *len = rec ? rec->key_len : 0;
    if (!rec) return NULL;
    return rec->key;
}

static avro_value_t *api_record_value_avro(sluice_record_t *rec, avro_schema_t *schema) {
    if (!rec || !rec->has_avro) return NULL;
    if (schema) *schema = rec->schema;
    return &rec->avro;
}

static const void *api_record_value_bytes(const sluice_record_t *rec, size_t *len) {
    if (len) *len = rec ? rec->bytes_len : 0;
    if (!rec) return NULL;
    return rec->bytes;
}

static int64_t api_record_timestamp(const sluice_record_t *rec) { return rec ? rec->timestamp : -1; }
static int32_t api_record_partition(const sluice_record_t *rec) { return rec ? rec->partition : -1; }
static int64_t api_record_offset(const sluice_record_t *rec) { return rec ? rec->offset : -1; }
static size_t api_record_header_count(const sluice_record_t *rec) { return rec ? rec->nheaders : 0; }

static const char *api_record_header_at(const sluice_record_t *rec, size_t i,
                                        const void **value, size_t *len) {
    if (!rec || i >= rec->nheaders) return NULL;
    if (value) *value = rec->headers[i].value;
    if (len) *len = rec->headers[i].len;
    return rec->headers[i].name;
}

static sluice_err_t api_emit(sluice_task_t *t, sluice_record_t *rec) {
    if (!rec) return SLUICE_ERR_INVALID_ARG;
    if (!t || !t->emit) {
        sl_record_free(rec);
        return SLUICE_ERR_INVALID_ARG;
    }
    /* A record made by a transform inherits the Kafka position of the record
     * being applied, so the sink sees where it came from. */
    if (t->input && rec->partition < 0 && rec != t->input) {
        rec->partition = t->input->partition;
        rec->offset = t->input->offset;
        if (!rec->topic && t->input->topic) rec->topic = strdup(t->input->topic);
    }
    return t->emit(t->emit_arg, t, rec);
}

static sluice_err_t api_dead_letter(sluice_task_t *t, const sluice_record_t *rec,
                                    sluice_err_t err, const char *reason) {
    if (!t || !rec) return SLUICE_ERR_INVALID_ARG;
    sl_metric_add(t->m_errors, 1);
    if (!t->dead_letter) {
        SL_WARN(t->tag, "bad record dropped (no dead-letter queue): %s",
                reason ? reason : sl_host_api()->err2str(err));
        return SLUICE_OK;
    }
    return t->dead_letter(t->dead_letter_arg, t, rec, err, reason);
}

static char *api_offset_get(sluice_task_t *t, const char *partition_json) {
    if (!t || !partition_json || !t->svc->offsets) return NULL;
    return sl_offset_store_get(t->svc->offsets, t->connector, partition_json);
}

static void api_free(void *p) { free(p); }

static sluice_metric_t *api_metric_counter(sluice_task_t *t, const char *name, const char *help) {
    return sl_metrics_get(t->svc->metrics, SL_METRIC_COUNTER, name, help, t->connector, t->id);
}

static sluice_metric_t *api_metric_gauge(sluice_task_t *t, const char *name, const char *help) {
    return sl_metrics_get(t->svc->metrics, SL_METRIC_GAUGE, name, help, t->connector, t->id);
}

static sluice_metric_t *api_metric_histogram(sluice_task_t *t, const char *name, const char *help,
                                             const double *bounds, size_t nbounds) {
    return sl_metrics_histogram(t->svc->metrics, name, help, t->connector, t->id, bounds, nbounds);
}

static sluice_timer_t *api_timer_start(sluice_task_t *t, int64_t interval_ms, sluice_timer_fn fn,
                                       void *arg) {
    if (!t || !fn || interval_ms <= 0) return NULL;
    sluice_timer_t *tm = calloc(1, sizeof(*tm));
    if (!tm) return NULL;
    tm->interval_ms = interval_ms;
    tm->due_ms = sl_mono_ms() + interval_ms;
    tm->fn = fn;
    tm->arg = arg;
    tm->next = t->timers;
    t->timers = tm;
    return tm;
}

static void api_timer_stop(sluice_task_t *t, sluice_timer_t *timer) {
    (void)t;
    if (timer) timer->stopped = 1; /* freed with the task */
}

static const char *api_err2str(sluice_err_t err) {
    switch (err) {
    case SLUICE_OK: return "success";
    case SLUICE_ERR_RETRIABLE: return "retriable error";
    case SLUICE_ERR_FATAL: return "fatal error";
    case SLUICE_ERR_INVALID_ARG: return "invalid argument";
    case SLUICE_ERR_NOMEM: return "out of memory";
    case SLUICE_ERR_BAD_RECORD: return "bad record";
    case SLUICE_ERR_CONFIG: return "invalid configuration";
    case SLUICE_ERR_NOT_FOUND: return "not found";
    case SLUICE_ERR_NO_DATA: return "no data";
    }
    return "unknown error";
}

static void api_set_error(sluice_task_t *t, const char *fmt, ...) {
    if (!t) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->error, sizeof(t->error), fmt, ap);
    va_end(ap);
}

static sluice_err_t api_record_set_kafka_position(sluice_record_t *rec, const char *topic,
                                                  int32_t partition, int64_t offset) {
    if (!rec || !topic || partition < 0 || offset < 0) return SLUICE_ERR_INVALID_ARG;
    sluice_err_t rc = sl_record_set_topic(rec, topic);
    if (rc != SLUICE_OK) return rc;
    rec->partition = partition;
    rec->offset = offset;
    return SLUICE_OK;
}

static int api_partition_at_end(sluice_task_t *t, const char *topic, int32_t partition) {
    if (!t || !topic || partition < 0 || !t->at_end) return -1;
    return t->at_end(t->at_end_arg, topic, partition);
}

static const sluice_host_api_t host_api = {
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR,
    .struct_size = sizeof(sluice_host_api_t),
    .worker_version = SLUICE_VERSION,
    .log = api_log,
    .log_enabled = api_log_enabled,
    .config_string = api_config_string,
    .config_int = api_config_int,
    .config_double = api_config_double,
    .config_bool = api_config_bool,
    .task_connector = api_task_connector,
    .task_id = api_task_id,
    .task_count = api_task_count,
    .schema_get = api_schema_get,
    .record_new = api_record_new,
    .record_free = api_record_free,
    .record_set_topic = sl_record_set_topic,
    .record_set_key = sl_record_set_key,
    .record_set_value_avro = sl_record_set_value_avro,
    .record_set_value_bytes = sl_record_set_value_bytes,
    .record_set_timestamp = sl_record_set_timestamp,
    .record_add_header = sl_record_add_header,
    .record_set_source_position = sl_record_set_source_position,
    .record_topic = api_record_topic,
    .record_key = api_record_key,
    .record_value_avro = api_record_value_avro,
    .record_value_bytes = api_record_value_bytes,
    .record_timestamp = api_record_timestamp,
    .record_partition = api_record_partition,
    .record_offset = api_record_offset,
    .record_header_count = api_record_header_count,
    .record_header_at = api_record_header_at,
    .emit = api_emit,
    .dead_letter = api_dead_letter,
    .offset_get = api_offset_get,
    .free = api_free,
    .metric_counter = api_metric_counter,
    .metric_gauge = api_metric_gauge,
    .metric_add = sl_metric_add,
    .metric_set = sl_metric_set,
    .timer_start = api_timer_start,
    .timer_stop = api_timer_stop,
    .now_ms = sl_now_ms,
    .err2str = api_err2str,
    .set_error = api_set_error,
    .record_set_kafka_position = api_record_set_kafka_position,
    .metric_histogram = api_metric_histogram,
    .metric_observe = sl_metric_observe,
    .partition_at_end = api_partition_at_end,
};

const sluice_host_api_t *sl_host_api(void) { return &host_api; }
