/*
 * counter.c - "source-counter", an example Sluice SOURCE plugin.
 *
 * Every task counts on its own: task <id> emits n = 0, 1, 2, ... as Avro
 * records {task, n, ts} to one topic. Small as it is, it demonstrates what a
 * real source needs:
 *
 *  - the entry function and a static descriptor (SLUICE_PLUGIN_HEADER), and
 *    checking the host table with SLUICE_HOST_HAS before using it;
 *  - declared config definitions (types, defaults, ranges, docs), read in
 *    start() with the typed getters;
 *  - per-task state made in start() and released in stop(), with no global
 *    state besides the host pointer (so tasks need no locking);
 *  - building Avro values from an inline schema with avro-c
 *    (host->record_set_value_avro + avro_value_get_by_name / set_*);
 *  - source partitions and offsets: each record carries '{"task":<id>}' and
 *    '{"n":<n>}', and start() resumes after host->offset_get(), so a restart
 *    neither repeats nor skips a number;
 *  - pacing without blocking the task: poll() returns SLUICE_ERR_NO_DATA
 *    until the next batch is due and never waits longer than timeout_ms;
 *  - a metric counter, logging and set_error() through the host table.
 *
 * Config:
 *   topic        STRING  "counter"  destination topic
 *   count        INT     0          numbers per task (n = 0..count-1), 0 = unlimited
 *   batch.size   INT     100        records emitted per poll (1..100000)
 *   interval.ms  INT     0          pause between polls that emit
 */
#include <sluice/plugin.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The host-services table, set once by the entry function: the only global. */
static const sluice_host_api_t *host;

#define COUNTER_SCHEMA                                                                   \
    "{\"type\":\"record\",\"name\":\"Counter\",\"namespace\":\"io.sluice.example\","     \
    "\"fields\":[{\"name\":\"task\",\"type\":\"int\"},{\"name\":\"n\",\"type\":\"long\"}," \
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}]}"

/* Upper bound for INT keys that only have a lower bound (a range is applied
 * only when min < max). */
#define INT64_MAX_D ((double)INT64_MAX)

typedef struct counter {
    char *topic;           /* copy of the "topic" config value */
    int64_t count;         /* numbers per task; 0 = unlimited */
    int64_t batch_size;    /* records per poll */
    int64_t interval_ms;   /* pause between polls that emit */
    int task_id;
    int64_t next_n;        /* the next number to emit */
    int64_t next_due_ms;   /* CLOCK_MONOTONIC ms when the next batch is due */
    int done_logged;
    avro_schema_t schema;  /* ours: released in stop() */
    sluice_metric_t *emitted;
    char partition_json[48]; /* {"task":<id>} */
    char key[32];            /* task-<id> */
    size_t key_len;
} counter_t;

/* Logs the message and attaches it to the error rc being returned. */
static sluice_err_t fail(sluice_task_t *task, sluice_err_t rc, const char *fmt, ...)
    SLUICE_PRINTF(3, 4);
static sluice_err_t fail(sluice_task_t *task, sluice_err_t rc, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) snprintf(msg, sizeof(msg), "%s (message could not be formatted)", fmt);
    /* a retriable failure is expected now and then: a warning, not an error */
    host->log(task, rc == SLUICE_ERR_RETRIABLE ? SLUICE_LOG_WARN : SLUICE_LOG_ERROR, "%s", msg);
    host->set_error(task, "%s", msg);
    return rc;
}

/* Milliseconds on the monotonic clock (for pacing; wall-clock time can jump). */
static int mono_ms(int64_t *out) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return -1;
    *out = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return 0;
}

/* Sleeps ms (> 0) milliseconds; an interrupted sleep just ends early. */
static void sleep_ms(sluice_task_t *task, int64_t ms) {
    if (ms <= 0) return;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
        host->log(task, SLUICE_LOG_WARN, "nanosleep(%" PRId64 " ms) failed: %s", ms,
                  strerror(errno));
}

/* Reads an INT config key and re-checks its range (the host validated it
 * already; a plugin must still never trust its input blindly). */
static sluice_err_t config_int(sluice_task_t *task, const char *key, int64_t min, int64_t max,
                               int64_t *out) {
    sluice_err_t rc = host->config_int(task, key, out);
    if (rc != SLUICE_OK)
        return fail(task, SLUICE_ERR_CONFIG, "config '%s': %s", key, host->err2str(rc));
    if (*out < min || *out > max)
        return fail(task, SLUICE_ERR_CONFIG,
                    "config '%s' = %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", key,
                    *out, min, max);
    return SLUICE_OK;
}

/*
 * Parses the n of a stored offset such as {"n":41} or {"n": 41} without a JSON
 * library: finds the "n" key, then strtoll after its ':'. Returns 0 with *n,
 * or -1 when the text does not have that shape.
 */
static int parse_offset_n(const char *json, int64_t *n) {
    const char *p = strstr(json, "\"n\"");
    if (!p) return -1;
    p += 3;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p != ':') return -1;
    p++;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno == ERANGE || v < 0) return -1;
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r') end++;
    if (*end != '}' && *end != ',') return -1;
    *n = (int64_t)v;
    return 0;
}

static void counter_free(counter_t *c) {
    if (!c) return;
    free(c->topic);
    if (c->schema) avro_schema_decref(c->schema);
    free(c);
}

static sluice_err_t counter_start(sluice_task_t *task, void **state) {
    if (!task || !state) return SLUICE_ERR_INVALID_ARG;
    *state = NULL;
    counter_t *c = calloc(1, sizeof(*c));
    if (!c) return fail(task, SLUICE_ERR_FATAL, "out of memory allocating the task state");

    sluice_err_t rc;
    const char *topic = host->config_string(task, "topic");
    if (!topic || !*topic) {
        rc = fail(task, SLUICE_ERR_CONFIG, "config 'topic' is empty");
        goto fail;
    }
    if (!(c->topic = strdup(topic))) {
        rc = fail(task, SLUICE_ERR_FATAL, "out of memory copying the topic name");
        goto fail;
    }
    if ((rc = config_int(task, "count", 0, INT64_MAX, &c->count)) != SLUICE_OK ||
        (rc = config_int(task, "batch.size", 1, 100000, &c->batch_size)) != SLUICE_OK ||
        (rc = config_int(task, "interval.ms", 0, INT64_MAX, &c->interval_ms)) != SLUICE_OK)
        goto fail;

    c->task_id = host->task_id(task);
    if (c->task_id < 0) {
        rc = fail(task, SLUICE_ERR_FATAL, "host->task_id() returned %d", c->task_id);
        goto fail;
    }
    int n = snprintf(c->partition_json, sizeof(c->partition_json), "{\"task\":%d}", c->task_id);
    int k = snprintf(c->key, sizeof(c->key), "task-%d", c->task_id);
    if (n < 0 || (size_t)n >= sizeof(c->partition_json) || k < 0 || (size_t)k >= sizeof(c->key)) {
        rc = fail(task, SLUICE_ERR_FATAL, "snprintf of the source partition or key failed");
        goto fail;
    }
    c->key_len = (size_t)k;

    if (avro_schema_from_json_length(COUNTER_SCHEMA, sizeof(COUNTER_SCHEMA) - 1, &c->schema) != 0) {
        c->schema = NULL;
        rc = fail(task, SLUICE_ERR_FATAL, "avro_schema_from_json_length(Counter schema) failed: %s",
                  avro_strerror());
        goto fail;
    }

    /* Resume after the last number Kafka acknowledged (the host stored its
     * offset), so a restart neither repeats nor skips a number. */
    char *stored = host->offset_get(task, c->partition_json);
    if (stored) {
        int64_t last;
        if (parse_offset_n(stored, &last) != 0) {
            rc = fail(task, SLUICE_ERR_FATAL,
                      "stored offset '%s' for source partition %s is not {\"n\":<number>}",
                      stored, c->partition_json);
            host->free(stored);
            goto fail;
        }
        host->free(stored);
        c->next_n = last < INT64_MAX ? last + 1 : INT64_MAX;
    }

    c->emitted = host->metric_counter(task, "records_emitted", "Records handed to emit()");
    if (!c->emitted)
        host->log(task, SLUICE_LOG_WARN, "metric_counter(records_emitted) failed; not counted");

    host->log(task, SLUICE_LOG_INFO,
              "counting from n=%" PRId64 " (task %d of %d, topic %s, count %" PRId64
              ", batch.size %" PRId64 ", interval.ms %" PRId64 ")",
              c->next_n, c->task_id, host->task_count(task), c->topic, c->count, c->batch_size,
              c->interval_ms);
    *state = c;
    return SLUICE_OK;

fail:
    counter_free(c);
    return rc;
}

static int counter_exhausted(const counter_t *c) {
    return c->next_n == INT64_MAX || (c->count > 0 && c->next_n >= c->count);
}

/* A failed record or emit: a retry can succeed after OOM or back-pressure;
 * anything else is a bug or a broken host and stops the task. */
static sluice_err_t emit_error(sluice_err_t rc) {
    return rc == SLUICE_ERR_NOMEM || rc == SLUICE_ERR_RETRIABLE ? SLUICE_ERR_RETRIABLE
                                                                : SLUICE_ERR_FATAL;
}

/* Sets a field of the Counter record; 0 or an avro-c error. */
static int set_field(avro_value_t *rec, const char *name, int is_long, int64_t v) {
    avro_value_t field;
    int err = avro_value_get_by_name(rec, name, &field, NULL);
    if (err) return err;
    return is_long ? avro_value_set_long(&field, v) : avro_value_set_int(&field, (int32_t)v);
}

/* Builds and emits the record for c->next_n. */
static sluice_err_t emit_one(counter_t *c, sluice_task_t *task) {
    const int64_t n = c->next_n;
    const int64_t ts = host->now_ms();
    char offset_json[48];
    int len = snprintf(offset_json, sizeof(offset_json), "{\"n\":%" PRId64 "}", n);
    if (len < 0 || (size_t)len >= sizeof(offset_json))
        return fail(task, SLUICE_ERR_FATAL, "snprintf of the offset for n=%" PRId64 " failed", n);

    sluice_record_t *rec = host->record_new(task);
    if (!rec) return fail(task, SLUICE_ERR_RETRIABLE, "record_new failed (out of memory)");

    sluice_err_t rc;
    const char *what;
    avro_value_t *value = NULL;
    if ((rc = host->record_set_topic(rec, c->topic)) != SLUICE_OK) {
        what = "record_set_topic";
        goto fail;
    }
    if ((rc = host->record_set_key(rec, c->key, c->key_len)) != SLUICE_OK) {
        what = "record_set_key";
        goto fail;
    }
    if ((rc = host->record_set_value_avro(rec, c->schema, &value)) != SLUICE_OK || !value) {
        what = "record_set_value_avro";
        if (rc == SLUICE_OK) rc = SLUICE_ERR_FATAL;
        goto fail;
    }
    if (set_field(value, "task", 0, c->task_id) != 0 || set_field(value, "n", 1, n) != 0 ||
        set_field(value, "ts", 1, ts) != 0) {
        host->record_free(rec);
        return fail(task, SLUICE_ERR_FATAL, "filling the Avro Counter record failed: %s",
                    avro_strerror());
    }
    if ((rc = host->record_set_timestamp(rec, ts)) != SLUICE_OK) {
        what = "record_set_timestamp";
        goto fail;
    }
    if ((rc = host->record_set_source_position(rec, c->partition_json, offset_json)) !=
        SLUICE_OK) {
        what = "record_set_source_position";
        goto fail;
    }
    /* emit() takes the record in every case. */
    if ((rc = host->emit(task, rec)) != SLUICE_OK)
        return fail(task, emit_error(rc), "emit of n=%" PRId64 " failed: %s", n,
                    host->err2str(rc));
    return SLUICE_OK;

fail:
    host->record_free(rec);
    return fail(task, emit_error(rc), "%s failed for n=%" PRId64 ": %s", what, n,
                host->err2str(rc));
}

static sluice_err_t counter_poll(void *state, sluice_task_t *task, int timeout_ms) {
    counter_t *c = state;
    if (!c || !task) return SLUICE_ERR_INVALID_ARG;
    if (timeout_ms < 0) timeout_ms = 0;

    if (counter_exhausted(c)) {
        if (!c->done_logged) {
            host->log(task, SLUICE_LOG_INFO, "count %" PRId64 " reached: nothing more to emit",
                      c->count);
            c->done_logged = 1;
        }
        sleep_ms(task, timeout_ms); /* nothing will come: do not spin the thread */
        return SLUICE_ERR_NO_DATA;
    }

    int64_t now;
    if (c->interval_ms > 0) {
        if (mono_ms(&now) != 0)
            return fail(task, SLUICE_ERR_FATAL, "clock_gettime(CLOCK_MONOTONIC) failed: %s",
                        strerror(errno));
        if (now < c->next_due_ms) {
            int64_t wait = c->next_due_ms - now;
            sleep_ms(task, wait < timeout_ms ? wait : timeout_ms);
            if (mono_ms(&now) != 0)
                return fail(task, SLUICE_ERR_FATAL, "clock_gettime(CLOCK_MONOTONIC) failed: %s",
                            strerror(errno));
            if (now < c->next_due_ms) return SLUICE_ERR_NO_DATA;
        }
    }

    int64_t todo = c->batch_size;
    if (c->count > 0 && c->count - c->next_n < todo) todo = c->count - c->next_n;
    int64_t done = 0;
    sluice_err_t rc = SLUICE_OK;
    while (done < todo && !counter_exhausted(c)) {
        /* n advances only once emit() accepted the record: after a failure
         * the next poll emits the same n again. */
        if ((rc = emit_one(c, task)) != SLUICE_OK) break;
        c->next_n++;
        done++;
    }
    if (done > 0 && c->emitted) host->metric_add(c->emitted, (double)done);

    if (c->interval_ms > 0) {
        if (mono_ms(&now) != 0)
            return fail(task, SLUICE_ERR_FATAL, "clock_gettime(CLOCK_MONOTONIC) failed: %s",
                        strerror(errno));
        c->next_due_ms = now > INT64_MAX - c->interval_ms ? INT64_MAX : now + c->interval_ms;
    }
    return rc;
}

static void counter_stop(void *state, sluice_task_t *task) {
    counter_t *c = state;
    if (!c) return;
    host->log(task, SLUICE_LOG_INFO, "stopping; next n would be %" PRId64, c->next_n);
    counter_free(c);
}

static const sluice_config_def_t counter_config[] = {
    {.name = "topic",
     .type = SLUICE_CONFIG_STRING,
     .default_value = "counter",
     .doc = "Kafka topic the counter records are written to"},
    {.name = "count",
     .type = SLUICE_CONFIG_INT,
     .default_value = "0",
     .doc = "Numbers each task emits (n = 0..count-1); 0 = unlimited",
     .min = 0,
     .max = INT64_MAX_D},
    {.name = "batch.size",
     .type = SLUICE_CONFIG_INT,
     .default_value = "100",
     .doc = "Records emitted per poll",
     .min = 1,
     .max = 100000},
    {.name = "interval.ms",
     .type = SLUICE_CONFIG_INT,
     .default_value = "0",
     .doc = "Pause between polls that emit, in milliseconds; 0 = none",
     .min = 0,
     .max = INT64_MAX_D},
    {.name = NULL},
};

static const sluice_source_ops_t counter_ops = {
    .struct_size = sizeof(sluice_source_ops_t),
    .start = counter_start,
    .poll = counter_poll,
    .commit = NULL,
    .stop = counter_stop,
};

static const sluice_plugin_t counter_plugin = {
    SLUICE_PLUGIN_HEADER,
    .kind = SLUICE_PLUGIN_SOURCE,
    .name = "source-counter",
    .version = "1.0.0",
    .description = "Example source: per-task counter as Avro records, resumable from offsets",
    .config = counter_config,
    .source = &counter_ops,
};

SLUICE_EXPORT const sluice_plugin_t *SLUICE_PLUGIN_ENTRY(const sluice_host_api_t *api) {
    if (!api || api->abi_major != SLUICE_ABI_MAJOR) return NULL;
    /* Every service this plugin calls must be in the host's table. */
    const char *missing = NULL;
#define NEED(member) \
    if (!missing && !SLUICE_HOST_HAS(api, member)) missing = #member
    NEED(log); NEED(config_string); NEED(config_int); NEED(task_id); NEED(task_count);
    NEED(record_new); NEED(record_free); NEED(record_set_topic); NEED(record_set_key);
    NEED(record_set_value_avro); NEED(record_set_timestamp);
    NEED(record_set_source_position); NEED(emit); NEED(offset_get); NEED(free);
    NEED(metric_counter); NEED(metric_add); NEED(now_ms); NEED(err2str); NEED(set_error);
#undef NEED
    if (missing) {
        if (SLUICE_HOST_HAS(api, log))
            api->log(NULL, SLUICE_LOG_ERROR, "source-counter: the host lacks the %s service",
                     missing);
        return NULL;
    }
    host = api;
    return &counter_plugin;
}
