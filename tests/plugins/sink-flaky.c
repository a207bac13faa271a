/*
 * sink-flaky.c - a test sink whose destination can be made unavailable.
 *
 * put() appends "topic partition offset" per record to "file"; while the
 * path in "block.file" exists it writes nothing and returns
 * SLUICE_ERR_RETRIABLE instead, as a sink whose database is down would.
 * Lets the integration tests drive the host's retry, back-off, pause and
 * errors.retry.timeout paths against a real consumer group.
 */
#include <sluice/plugin.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const sluice_host_api_t *host;

typedef struct {
    FILE *out;
    const char *block;
    sluice_metric_t *refused;
} flaky_t;

static sluice_err_t fl_start(sluice_task_t *task, void **state) {
    const char *path = host->config_string(task, "file");
    flaky_t *f = calloc(1, sizeof(*f));
    if (!f) return SLUICE_ERR_NOMEM;
    if (!(f->out = fopen(path, "a"))) {
        host->set_error(task, "cannot open %s: %s", path, strerror(errno));
        free(f);
        return SLUICE_ERR_CONFIG;
    }
    f->block = host->config_string(task, "block.file");
    f->refused = host->metric_counter(task, "puts_refused", "put() calls refused while blocked");
    *state = f;
    return SLUICE_OK;
}

static sluice_err_t fl_put(void *state, sluice_task_t *task, sluice_record_t *const *recs,
                           size_t n) {
    flaky_t *f = state;
    if (f->block && *f->block && access(f->block, F_OK) == 0) {
        host->metric_add(f->refused, 1);
        host->set_error(task, "destination unavailable (%s exists)", f->block);
        return SLUICE_ERR_RETRIABLE;
    }
    for (size_t i = 0; i < n; i++)
        fprintf(f->out, "%s %d %lld\n", host->record_topic(recs[i]),
                (int)host->record_partition(recs[i]), (long long)host->record_offset(recs[i]));
    return fflush(f->out) == 0 ? SLUICE_OK : SLUICE_ERR_FATAL;
}

static void fl_stop(void *state, sluice_task_t *task) {
    (void)task;
    flaky_t *f = state;
    if (!f) return;
    fclose(f->out);
    free(f);
}

static const sluice_config_def_t fl_config[] = {
    {.name = "file", .type = SLUICE_CONFIG_STRING, .flags = SLUICE_CONFIG_REQUIRED,
     .doc = "where records are appended as 'topic partition offset' lines"},
    {.name = "block.file", .type = SLUICE_CONFIG_STRING, .default_value = "",
     .doc = "while this path exists, put() returns RETRIABLE"},
    {.name = NULL},
};

static const sluice_sink_ops_t fl_ops = {
    .struct_size = sizeof(sluice_sink_ops_t),
    .start = fl_start,
    .put = fl_put,
    .stop = fl_stop,
};

static const sluice_plugin_t fl_plugin = {
    SLUICE_PLUGIN_HEADER,
    .kind = SLUICE_PLUGIN_SINK,
    .name = "sink-flaky",
    .version = "0.0.1",
    .description = "Test sink that refuses put() while a file exists",
    .config = fl_config,
    .sink = &fl_ops,
};

SLUICE_EXPORT const sluice_plugin_t *SLUICE_PLUGIN_ENTRY(const sluice_host_api_t *api) {
    if (!api || api->abi_major != SLUICE_ABI_MAJOR) return NULL;
    host = api;
    return &fl_plugin;
}
