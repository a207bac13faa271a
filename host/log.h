/*
 * log.h - the worker's log: one line per event on stderr, in the format
 * set by log.format (worker config) or SLUICE_LOG_FORMAT:
 *   text    "2026-11-28T04:20:00.123Z LEVEL [component] message" (default)
 *   logfmt  ts=2026-11-28T04:20:00.123Z level=info logger=component msg="message"
 *   json    {"ts":"2026-11-28T04:20:00.123Z","level":"info","logger":"component","msg":"message"}
 *
 * Secrets: every value of a config key declared SECRET is registered with
 * sl_log_add_secret() before its connector starts; any log line containing
 * one has it replaced by "[hidden]". Thread-safe.
 */
#ifndef SLUICE_HOST_LOG_H
#define SLUICE_HOST_LOG_H

#include <stdarg.h>
#include <stdio.h>
#include <sluice/plugin.h>

typedef enum { SL_LOG_TEXT, SL_LOG_LOGFMT, SL_LOG_JSON } sl_log_format_t;

/** Reads SLUICE_LOG_LEVEL and SLUICE_LOG_FORMAT. */
void sl_log_init(void);
/** "text|logfmt|json" -> format; -1 when unknown. */
int sl_log_parse_format(const char *s);
void sl_log_set_format(sl_log_format_t format);
/** Where lines go: NULL = stderr (tests capture lines with a memstream). */
void sl_log_set_output(FILE *out);
void sl_log_shutdown(void);
void sl_log_set_level(sluice_log_level_t level);
sluice_log_level_t sl_log_get_level(void);
/** "error|warn|info|debug" -> level; -1 when unknown. */
int sl_log_parse_level(const char *s);
int sl_log_enabled(sluice_log_level_t level);
/** Registers a secret to mask (copied). Short values (< 4 chars) are not
 *  registered: masking them would garble ordinary text. */
void sl_log_add_secret(const char *value);

/** Per-component levels (Kafka Connect's /admin/loggers): a component's
 *  level, when set, replaces the root level for its lines. */
typedef struct sl_logger_level {
    char *name;
    sluice_log_level_t level;
} sl_logger_level_t;
/** "ERROR", "WARN", "INFO", "DEBUG". */
const char *sl_log_level_name(sluice_log_level_t level);
/** Sets component's level; level -1 removes it (back to the root level).
 *  0, or -1 on OOM. */
int sl_log_set_component_level(const char *component, int level);
/** A copy of the per-component levels (*out malloc'd, each name too). */
size_t sl_log_component_levels(sl_logger_level_t **out);

void sl_log(sluice_log_level_t level, const char *component, const char *fmt, ...)
    SLUICE_PRINTF(3, 4);
void sl_logv(sluice_log_level_t level, const char *component, const char *fmt, va_list ap);

#define SL_ERROR(comp, ...) sl_log(SLUICE_LOG_ERROR, comp, __VA_ARGS__)
#define SL_WARN(comp, ...) sl_log(SLUICE_LOG_WARN, comp, __VA_ARGS__)
#define SL_INFO(comp, ...) sl_log(SLUICE_LOG_INFO, comp, __VA_ARGS__)
#define SL_DEBUG(comp, ...) sl_log(SLUICE_LOG_DEBUG, comp, __VA_ARGS__)

#endif
