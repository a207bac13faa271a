/*
 * sluice/plugin.h - the Sluice plugin SDK: the one header a plugin needs.
 *
 * A Sluice plugin is a shared object (.so) that exports exactly one symbol,
 * SLUICE_PLUGIN_ENTRY_SYMBOL ("sluice_plugin_entry_v1"). The worker dlopen()s
 * the file, looks the symbol up, calls it once with the host-services table and
 * receives a pointer to the plugin's descriptor (sluice_plugin_t). The plugin
 * never links against the worker: everything the host offers is reached through
 * the sluice_host_api_t function table (the Redis modules / SQLite extension
 * model), and everything the host owns is an opaque handle.
 *
 *
 * VERSIONING RULE
 * ---------------
 * The ABI has a major and a minor number (SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR).
 *
 *  - The major number is part of the entry symbol's name. An incompatible change
 *    (a field removed, reordered or retyped, a callback's meaning changed) bumps
 *    the major and renames the symbol (sluice_plugin_entry_v2, ...), so an old
 *    plugin can never be called through a new contract by accident.
 *  - A compatible change bumps the minor. Structs defined here only ever grow
 *    at their end, and each carries its own size (struct_size) as compiled into
 *    the side that filled it. The host reads a plugin's struct field only if
 *    struct_size covers it; a plugin uses a host service only if
 *    SLUICE_HOST_HAS(host, member) says the host's table is long enough.
 *  - The worker loads a plugin when the plugin's major equals the worker's and
 *    the plugin's minor is not greater than the worker's (a plugin built
 *    against a newer SDK may depend on services this worker lacks). Anything
 *    else is refused, with one log line naming the file and the reason, before
 *    any of the plugin's callbacks runs.
 *
 *
 * THREADING
 * ---------
 * Every task runs on a thread of its own. All callbacks of one task instance,
 * including its timer callbacks, are made on that thread, one at a time, so a
 * task's state needs no locking. Host services may be called from the task's
 * callbacks; they must not be called from threads the plugin starts itself,
 * except log(), now_ms() and err2str(), which are thread-safe.
 *
 *
 * OWNERSHIP
 * ---------
 * Handles the host gives a task (metrics, timers, schemas from schema_get)
 * stay valid until the task's stop() returns.
 * "Owned by the host" means: do not free, do not keep past the callback that
 * handed it to you unless stated otherwise. A record made with record_new() is
 * the plugin's until it is passed to emit() (which takes it in every case,
 * success or not) or freed with record_free(). Strings returned by the host are
 * host-owned unless the function says "free with host->free()".
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>

#ifdef __cplusplus
extern "C" {
#endif

/** ABI version implemented by this header. See VERSIONING RULE above. */
#define SLUICE_ABI_MAJOR 1
#define SLUICE_ABI_MINOR 3

/** Identifies a Sluice plugin descriptor in memory ("SLCE"). */
#define SLUICE_PLUGIN_MAGIC 0x534c4345u

#define SLUICE_STR_(x) #x
#define SLUICE_STR(x) SLUICE_STR_(x)
#define SLUICE_CAT_(a, b) a##b
#define SLUICE_CAT(a, b) SLUICE_CAT_(a, b)

/** The entry function's name: sluice_plugin_entry_v<MAJOR>. */
#define SLUICE_PLUGIN_ENTRY SLUICE_CAT(sluice_plugin_entry_v, SLUICE_ABI_MAJOR)
/** The same name as a string, for dlsym(). */
#define SLUICE_PLUGIN_ENTRY_SYMBOL "sluice_plugin_entry_v" SLUICE_STR(SLUICE_ABI_MAJOR)

#if defined(__GNUC__)
#define SLUICE_EXPORT __attribute__((visibility("default")))
#define SLUICE_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SLUICE_EXPORT
#define SLUICE_PRINTF(fmt, args)
#endif

/* ------------------------------------------------------------------------ */
/* Error codes                                                               */
/* ------------------------------------------------------------------------ */

/**
 * Every callback and host service that can fail returns one of these.
 * host->err2str() gives a constant description.
 */
typedef enum sluice_err {
    SLUICE_OK = 0,
    /** A transient failure: the host retries the same call later (within
     *  errors.retry.timeout), e.g. the destination answered 503. */
    SLUICE_ERR_RETRIABLE = -1,
    /** The task cannot go on: the host stops it and marks it FAILED. */
    SLUICE_ERR_FATAL = -2,
    /** An argument was invalid (NULL, out of range, wrong state). */
    SLUICE_ERR_INVALID_ARG = -3,
    /** Out of memory. */
    SLUICE_ERR_NOMEM = -4,
    /** One record is bad (cannot be converted, violates the schema): the host
     *  applies errors.tolerance and the dead-letter queue to it. */
    SLUICE_ERR_BAD_RECORD = -5,
    /** A configuration value is invalid. */
    SLUICE_ERR_CONFIG = -6,
    /** The thing asked for does not exist (config key, offset, schema). */
    SLUICE_ERR_NOT_FOUND = -7,
    /** The plugin has nothing to do now (e.g. poll() with no data). */
    SLUICE_ERR_NO_DATA = -8,
} sluice_err_t;

/* ------------------------------------------------------------------------ */
/* Opaque handles: owned by the host                                         */
/* ------------------------------------------------------------------------ */

/** One running task instance of a connector (or a transform in its chain). */
typedef struct sluice_task sluice_task_t;
/** One record: key, typed value and schema, timestamp, headers, position. */
typedef struct sluice_record sluice_record_t;
/** A counter or gauge exported by the worker's metrics. */
typedef struct sluice_metric sluice_metric_t;
/** A periodic timer on a task's thread. */
typedef struct sluice_timer sluice_timer_t;

/** The host-services table (defined below). */
typedef struct sluice_host_api sluice_host_api_t;

/* ------------------------------------------------------------------------ */
/* Config definitions: declared by the plugin, enforced by the host          */
/* ------------------------------------------------------------------------ */

typedef enum sluice_config_type {
    SLUICE_CONFIG_STRING = 1,
    SLUICE_CONFIG_INT = 2,    /**< 64-bit signed integer */
    SLUICE_CONFIG_DOUBLE = 3, /**< finite double */
    SLUICE_CONFIG_BOOL = 4,   /**< true/false (case-insensitive) */
    SLUICE_CONFIG_LIST = 5,   /**< comma-separated list of strings */
} sluice_config_type_t;

/** Config definition flags. */
#define SLUICE_CONFIG_REQUIRED 0x1u /**< must be set (no default applies) */
#define SLUICE_CONFIG_SECRET 0x2u   /**< never logged or echoed in clear */

/**
 * One config key a plugin accepts. A plugin declares an array of them,
 * terminated by an entry whose name is NULL. The host validates a connector's
 * config against it before the plugin sees the config: type, required, range
 * (for INT and DOUBLE, when min < max) and allowed values (for STRING). Keys
 * the plugin does not declare are passed through untouched (as in Kafka
 * Connect) but are not typed.
 *
 * The array's stride is the descriptor's config_def_size, so this struct may
 * grow at its end in a later minor version.
 */
typedef struct sluice_config_def {
    const char *name;             /**< e.g. "finnhub.symbols" */
    sluice_config_type_t type;
    unsigned flags;               /**< SLUICE_CONFIG_REQUIRED | _SECRET */
    const char *default_value;    /**< as text, or NULL for none */
    const char *doc;              /**< one-line description */
    double min, max;              /**< numeric range, used when min < max */
    const char *allowed;          /**< STRING: "a|b|c" of accepted values, or NULL */
} sluice_config_def_t;

/* ------------------------------------------------------------------------ */
/* Topic partitions: sink and transform partition callbacks                  */
/* ------------------------------------------------------------------------ */

/** An offset value meaning "not set; let the host decide". */
#define SLUICE_OFFSET_UNSET INT64_C(-1001)

/**
 * A Kafka topic partition and an offset. In open() the offset is in/out: the
 * host sets the consumer group's committed offset (SLUICE_OFFSET_UNSET when
 * there is none) and a task may write the offset of the next record it
 * wants instead (restoring its position from the destination, for
 * exactly-once). In pre_commit() the host passes, for each assigned
 * partition, the offset after the last record handed to put(); the task
 * lowers each to the offset after the last record durable in its destination
 * (or sets SLUICE_OFFSET_UNSET to commit nothing for that partition).
 */
typedef struct sluice_topic_partition {
    const char *topic;    /**< host-owned */
    int32_t partition;
    int64_t offset;
} sluice_topic_partition_t;

/* ------------------------------------------------------------------------ */
/* Lifecycle callbacks, per plugin kind                                      */
/* ------------------------------------------------------------------------ */

typedef enum sluice_plugin_kind {
    SLUICE_PLUGIN_SOURCE = 1,
    SLUICE_PLUGIN_SINK = 2,
    SLUICE_PLUGIN_TRANSFORM = 3,
} sluice_plugin_kind_t;

/**
 * A source task reads an outside system and emits records to Kafka topics.
 *
 *  start:  create the task's state (stored in *state). Read config with
 *          host->config_*(), the last committed source offsets with
 *          host->offset_get(). Fail with SLUICE_ERR_CONFIG or _FATAL.
 *  poll:   wait at most timeout_ms for data; emit zero or more records with
 *          host->emit(). Return SLUICE_OK, SLUICE_ERR_NO_DATA when nothing
 *          came, _RETRIABLE to be called again after a back-off, _FATAL to
 *          stop. Each record should carry its source partition and offset
 *          (record_set_source_position) so the host can store the offset once
 *          Kafka has acknowledged it.
 *  commit: optional. The host has stored the offsets of every record emitted
 *          so far that Kafka acknowledged. A source with an upstream ack
 *          (a queue) acknowledges here.
 *  stop:   release everything in state. Called once, after the last poll.
 */
typedef struct sluice_source_ops {
    uint32_t struct_size; /**< sizeof(sluice_source_ops_t) */
    sluice_err_t (*start)(sluice_task_t *task, void **state);
    sluice_err_t (*poll)(void *state, sluice_task_t *task, int timeout_ms);
    void (*commit)(void *state, sluice_task_t *task);
    void (*stop)(void *state, sluice_task_t *task);
} sluice_source_ops_t;

/**
 * A sink task receives records from Kafka topics and writes them out.
 *
 *  start:      create the task's state.
 *  open:       partitions were assigned to this task (consumer-group
 *              rebalance), each with the group's committed offset. Set
 *              parts[i].offset to resume from a position the destination
 *              remembers; leave it to resume from the committed offset (or
 *              auto.offset.reset when UNSET). Optional.
 *  close:      partitions were revoked: write or drop what is buffered for
 *              them; they will not be seen again unless reassigned. Optional.
 *  put:        records, in offset order within each partition, borrowed for
 *              the duration of the call. Buffer or write them. Return
 *              SLUICE_OK; _RETRIABLE to get the same batch again after a
 *              back-off (until errors.retry.timeout); _BAD_RECORD when some
 *              records were bad and were reported with host->dead_letter()
 *              while the rest were taken: the batch counts as handled when
 *              errors.tolerance=all, and fails the task otherwise; any
 *              other error fails the task.
 *  pre_commit: the host is about to commit offsets: make durable what you
 *              can (a flush) and lower each offset to what is durable (see
 *              sluice_topic_partition_t). Optional: without it the host
 *              commits everything handed to put() once put() returned OK.
 *  stop:       release everything. Called once.
 */
typedef struct sluice_sink_ops {
    uint32_t struct_size; /**< sizeof(sluice_sink_ops_t) */
    sluice_err_t (*start)(sluice_task_t *task, void **state);
    sluice_err_t (*open)(void *state, sluice_task_t *task,
                         sluice_topic_partition_t *parts, size_t n);
    sluice_err_t (*close)(void *state, sluice_task_t *task,
                          const sluice_topic_partition_t *parts, size_t n);
    sluice_err_t (*put)(void *state, sluice_task_t *task,
                        sluice_record_t *const *records, size_t n);
    sluice_err_t (*pre_commit)(void *state, sluice_task_t *task,
                               sluice_topic_partition_t *offsets, size_t n);
    void (*stop)(void *state, sluice_task_t *task);
} sluice_sink_ops_t;

/**
 * A transform sits in a sink or source connector's chain
 * ("transforms": "w", "transforms.w.type": "<plugin name>") and rewrites
 * records between Kafka and the task.
 *
 *  start:      create the transform's state; its config is the connector's
 *              "transforms.<alias>.*" keys with the prefix removed.
 *  apply:      takes ownership of rec. Emit zero or more records with
 *              host->emit() (the same record, changed, or new ones) and/or
 *              free it with host->record_free(). A stateful transform keeps
 *              what it needs and emits later from a timer (host->timer_start)
 *              - the "tick" - or from a later apply.
 *  open/close: partitions assigned / revoked (sink chains only): a stateful
 *              transform rebuilds or drops per-partition state. Optional.
 *  pre_commit: lower each offset to the first one the transform still needs
 *              (e.g. the earliest record of an open window), so a crash
 *              replays it. Optional.
 *  stop:       release everything.
 */
typedef struct sluice_transform_ops {
    uint32_t struct_size; /**< sizeof(sluice_transform_ops_t) */
    sluice_err_t (*start)(sluice_task_t *task, void **state);
    sluice_err_t (*apply)(void *state, sluice_task_t *task, sluice_record_t *rec);
    sluice_err_t (*open)(void *state, sluice_task_t *task,
                         sluice_topic_partition_t *parts, size_t n);
    sluice_err_t (*close)(void *state, sluice_task_t *task,
                          const sluice_topic_partition_t *parts, size_t n);
    sluice_err_t (*pre_commit)(void *state, sluice_task_t *task,
                               sluice_topic_partition_t *offsets, size_t n);
    void (*stop)(void *state, sluice_task_t *task);
} sluice_transform_ops_t;

/* ------------------------------------------------------------------------ */
/* The plugin descriptor                                                     */
/* ------------------------------------------------------------------------ */

/**
 * What a plugin is. Returned by the entry function; must stay valid (static)
 * while the plugin is loaded. Fill the first four members with
 * SLUICE_PLUGIN_HEADER. Exactly one of source/sink/transform is set, the one
 * matching kind.
 */
typedef struct sluice_plugin {
    uint32_t magic;           /**< SLUICE_PLUGIN_MAGIC */
    uint16_t abi_major;       /**< SLUICE_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;       /**< SLUICE_ABI_MINOR the plugin was built with */
    uint32_t struct_size;     /**< sizeof(sluice_plugin_t) */
    uint32_t config_def_size; /**< sizeof(sluice_config_def_t) */

    sluice_plugin_kind_t kind;
    const char *name;        /**< unique: [a-z0-9._-]+, used as connector.class */
    const char *version;     /**< the plugin's own version, e.g. "1.2.0" */
    const char *description; /**< one line */
    const sluice_config_def_t *config; /**< NULL-name terminated, or NULL */

    const sluice_source_ops_t *source;
    const sluice_sink_ops_t *sink;
    const sluice_transform_ops_t *transform;
} sluice_plugin_t;

/** Fills magic, ABI version and struct sizes of a sluice_plugin_t. */
#define SLUICE_PLUGIN_HEADER                                                  \
    .magic = SLUICE_PLUGIN_MAGIC, .abi_major = SLUICE_ABI_MAJOR,              \
    .abi_minor = SLUICE_ABI_MINOR, .struct_size = sizeof(sluice_plugin_t),    \
    .config_def_size = sizeof(sluice_config_def_t)

/**
 * The entry function every plugin defines, once:
 *
 *     SLUICE_EXPORT const sluice_plugin_t *
 *     SLUICE_PLUGIN_ENTRY(const sluice_host_api_t *host) { ... return &desc; }
 *
 * It is called once per load, on the loader thread, before any other
 * callback. It may keep the host pointer (it stays valid while the plugin is
 * loaded) and must not do I/O. Returning NULL refuses the load.
 */
typedef const sluice_plugin_t *(*sluice_plugin_entry_fn)(const sluice_host_api_t *host);

/** The entry function's prototype, so the compiler checks a plugin's
 *  definition against it. */
SLUICE_EXPORT const sluice_plugin_t *SLUICE_PLUGIN_ENTRY(const sluice_host_api_t *host);

/* ------------------------------------------------------------------------ */
/* The host-services table                                                   */
/* ------------------------------------------------------------------------ */

typedef enum sluice_log_level {
    SLUICE_LOG_ERROR = 3,
    SLUICE_LOG_WARN = 4,
    SLUICE_LOG_INFO = 6,
    SLUICE_LOG_DEBUG = 7,
} sluice_log_level_t;

typedef void (*sluice_timer_fn)(void *arg, sluice_task_t *task);

/** True when the host's table has the member (it was added in this
 *  host's minor version or earlier). */
#define SLUICE_HOST_HAS(host, member)                                         \
    ((host)->struct_size >= offsetof(sluice_host_api_t, member) +             \
                                sizeof((host)->member) &&                     \
     (host)->member != NULL)

struct sluice_host_api {
    uint16_t abi_major;   /**< the worker's SLUICE_ABI_MAJOR */
    uint16_t abi_minor;   /**< the worker's SLUICE_ABI_MINOR */
    uint32_t struct_size; /**< sizeof(sluice_host_api_t) in the worker */
    const char *worker_version;

    /* --- logging -------------------------------------------------------- */

    /** Logs one line tagged with the task (connector name, task id); task may
     *  be NULL. Values of SECRET config keys are masked if they appear. */
    void (*log)(sluice_task_t *task, sluice_log_level_t level,
                const char *fmt, ...) SLUICE_PRINTF(3, 4);
    /** True when a message at level would be written (skip costly work). */
    int (*log_enabled)(sluice_task_t *task, sluice_log_level_t level);

    /* --- config (validated and provider-resolved before start) ---------- */

    /** The value of key, or its declared default, or NULL. */
    const char *(*config_string)(sluice_task_t *task, const char *key);
    /** Typed getters: SLUICE_OK, _NOT_FOUND (unset and no default) or
     *  _CONFIG (value does not parse as that type). */
    sluice_err_t (*config_int)(sluice_task_t *task, const char *key, int64_t *out);
    sluice_err_t (*config_double)(sluice_task_t *task, const char *key, double *out);
    sluice_err_t (*config_bool)(sluice_task_t *task, const char *key, int *out);

    /* --- identity ------------------------------------------------------- */

    const char *(*task_connector)(sluice_task_t *task); /**< connector name */
    int (*task_id)(sluice_task_t *task);    /**< 0 .. task_count-1 */
    int (*task_count)(sluice_task_t *task); /**< tasks running for connector */

    /* --- schemas -------------------------------------------------------- */

    /** The Avro schema named name ("trades" -> <schemas.path>/trades.avsc),
     *  parsed once and host-owned. NULL if missing or invalid (logged). */
    avro_schema_t (*schema_get)(sluice_task_t *task, const char *name);

    /* --- records -------------------------------------------------------- */

    /** A new empty record (null key and value, timestamp unset = -1), owned
     *  by the caller until emit() or record_free(). NULL on OOM. */
    sluice_record_t *(*record_new)(sluice_task_t *task);
    void (*record_free)(sluice_record_t *rec);
    /** Destination topic (sources; transforms may reroute). Copied. */
    sluice_err_t (*record_set_topic)(sluice_record_t *rec, const char *topic);
    /** Key bytes, copied; NULL/0 for no key. */
    sluice_err_t (*record_set_key)(sluice_record_t *rec, const void *key, size_t len);
    /** Gives the record an Avro value of the schema (a reference is taken)
     *  and returns it in *value for the caller to fill with avro-c's
     *  avro_value_* setters. Owned by the record. */
    sluice_err_t (*record_set_value_avro)(sluice_record_t *rec, avro_schema_t schema,
                                          avro_value_t **value);
    /** A schemaless value: raw bytes, copied (e.g. an unparseable frame for
     *  the dead-letter queue). */
    sluice_err_t (*record_set_value_bytes)(sluice_record_t *rec, const void *data,
                                           size_t len);
    /** Event time in milliseconds since the epoch. */
    sluice_err_t (*record_set_timestamp)(sluice_record_t *rec, int64_t ts_ms);
    /** Appends a header; name and value copied. */
    sluice_err_t (*record_add_header)(sluice_record_t *rec, const char *name,
                                      const void *value, size_t len);
    /** Source partition and offset as JSON objects in text, e.g.
     *  '{"symbol":"AAPL"}' and '{"seq":42}'. Both copied; must parse. */
    sluice_err_t (*record_set_source_position)(sluice_record_t *rec,
                                               const char *partition_json,
                                               const char *offset_json);

    const char *(*record_topic)(const sluice_record_t *rec);
    /** Key bytes or NULL. */
    const void *(*record_key)(const sluice_record_t *rec, size_t *len);
    /** The Avro value and its schema, or NULL when the value is not Avro. */
    avro_value_t *(*record_value_avro)(sluice_record_t *rec, avro_schema_t *schema);
    /** Schemaless value bytes, or NULL. */
    const void *(*record_value_bytes)(const sluice_record_t *rec, size_t *len);
    int64_t (*record_timestamp)(const sluice_record_t *rec);
    /** Kafka partition and offset of a consumed record (-1 otherwise). */
    int32_t (*record_partition)(const sluice_record_t *rec);
    int64_t (*record_offset)(const sluice_record_t *rec);
    /** Number of headers, and the i-th (0-based); NULL when out of range. */
    size_t (*record_header_count)(const sluice_record_t *rec);
    const char *(*record_header_at)(const sluice_record_t *rec, size_t i,
                                    const void **value, size_t *len);

    /* --- data flow ------------------------------------------------------ */

    /** Source and transform: hands rec on (to Kafka, or to the next step of
     *  the chain). Always takes ownership of rec, also on failure. Returns
     *  SLUICE_OK; _BAD_RECORD when rec could not be encoded (it went to the
     *  dead-letter queue: do not emit it again); _FATAL when the task is
     *  failing (stop emitting and return _FATAL from poll). */
    sluice_err_t (*emit)(sluice_task_t *task, sluice_record_t *rec);
    /** Reports a bad record: counted, logged (rate limited), and written to
     *  the connector's dead-letter queue when one is configured, with the
     *  reason in its headers. Does not take ownership. */
    sluice_err_t (*dead_letter)(sluice_task_t *task, const sluice_record_t *rec,
                                sluice_err_t err, const char *reason);

    /* --- offsets -------------------------------------------------------- */

    /** Source tasks: the last stored offset (JSON text) for a source
     *  partition (JSON text), or NULL. Free with host->free(). */
    char *(*offset_get)(sluice_task_t *task, const char *partition_json);
    void (*free)(void *ptr);

    /* --- metrics -------------------------------------------------------- */

    /** A counter (monotonic) or gauge of this task, created once by name
     *  (same name -> same metric). Host-owned. */
    sluice_metric_t *(*metric_counter)(sluice_task_t *task, const char *name,
                                       const char *help);
    sluice_metric_t *(*metric_gauge)(sluice_task_t *task, const char *name,
                                     const char *help);
    void (*metric_add)(sluice_metric_t *m, double delta);
    void (*metric_set)(sluice_metric_t *m, double value);

    /* --- timers --------------------------------------------------------- */

    /** Calls fn(arg, task) every interval_ms on the task's thread, between
     *  other callbacks, until timer_stop() or the task stops. */
    sluice_timer_t *(*timer_start)(sluice_task_t *task, int64_t interval_ms,
                                   sluice_timer_fn fn, void *arg);
    void (*timer_stop)(sluice_task_t *task, sluice_timer_t *timer);

    /* --- misc ----------------------------------------------------------- */

    /** Wall-clock time in ms since the epoch. */
    int64_t (*now_ms)(void);
    const char *(*err2str)(sluice_err_t err);
    /** Attaches a message to the error the current callback is about to
     *  return (shown as the task's trace). */
    void (*set_error)(sluice_task_t *task, const char *fmt, ...) SLUICE_PRINTF(2, 3);

    /* --- ABI 1.1 --------------------------------------------------------- */

    /** Transforms in a sink chain: gives a record the Kafka position (topic,
     *  partition, offset) of a consumed input record, e.g. a window result
     *  emitted when the record at that offset closed the window. The host
     *  treats the offset as consumed once the record is put(), and the sink
     *  sees it through record_topic/_partition/_offset. topic is copied. */
    sluice_err_t (*record_set_kafka_position)(sluice_record_t *rec, const char *topic,
                                              int32_t partition, int64_t offset);

    /* --- ABI 1.2 --------------------------------------------------------- */

    /** A histogram of this task (Prometheus type histogram: cumulative
     *  _bucket{le=...}, _sum, _count), created once by name. bounds are the
     *  buckets' upper limits, finite and strictly ascending, at most 32
     *  (+Inf is implicit); copied. NULL on bad bounds or when the name is
     *  already a counter or gauge. Host-owned. */
    sluice_metric_t *(*metric_histogram)(sluice_task_t *task, const char *name,
                                         const char *help, const double *bounds,
                                         size_t nbounds);
    /** Records one observation (e.g. a batch size, a latency in seconds). */
    void (*metric_observe)(sluice_metric_t *m, double value);

    /* --- ABI 1.3 --------------------------------------------------------- */

    /** Transforms in a sink chain: whether the sink's consumer has handed
     *  the chain every record the partition holds - 1 yes (it is idle); 0
     *  no: records are waiting, or a broker the consumer fetches from is not
     *  reachable (a broker down: the partition may be stalled, and what it
     *  holds will come later); -1 the host cannot tell (not a sink chain, or
     *  the partition is not assigned to this task). No broker round trip;
     *  meant for processing-time decisions such as an idle timeout. */
    int (*partition_at_end)(sluice_task_t *task, const char *topic, int32_t partition);

    /* New members are added here, at the end, with a minor version bump. */
};

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_PLUGIN_H */
