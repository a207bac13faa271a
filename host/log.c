/* log.c - see log.h. The logger is process-wide by nature (stderr is), so
 * its state is the one module-level singleton, behind a mutex. */
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#define SECRET_MASK "[hidden]"

static struct {
    pthread_mutex_t lock;
    sluice_log_level_t level;
    char **secrets;
    size_t nsecrets;
    sl_logger_level_t *loggers; /* per-component levels, over the root one */
    size_t nloggers;
    sl_log_format_t format;
    FILE *out; /* NULL = stderr */
} g_log = {PTHREAD_MUTEX_INITIALIZER, SLUICE_LOG_INFO, NULL, 0, NULL, 0, SL_LOG_TEXT, NULL};
/* Whether any component has its own level: read without the lock on every
 * line, so that lines below the root level stay cheap when none has. */
static atomic_int g_has_loggers;

void sl_log_init(void) {
    const char *env = getenv("SLUICE_LOG_LEVEL");
    int lvl = env ? sl_log_parse_level(env) : -1;
    if (lvl > 0) g_log.level = (sluice_log_level_t)lvl;
    env = getenv("SLUICE_LOG_FORMAT");
    int fmt = env ? sl_log_parse_format(env) : -1;
    if (fmt >= 0) g_log.format = (sl_log_format_t)fmt;
}

int sl_log_parse_format(const char *s) {
    if (!s) return -1;
    if (strcasecmp(s, "text") == 0) return SL_LOG_TEXT;
    if (strcasecmp(s, "logfmt") == 0) return SL_LOG_LOGFMT;
    if (strcasecmp(s, "json") == 0) return SL_LOG_JSON;
    return -1;
}

void sl_log_set_format(sl_log_format_t format) {
    pthread_mutex_lock(&g_log.lock);
    g_log.format = format;
    pthread_mutex_unlock(&g_log.lock);
}

void sl_log_set_output(FILE *out) {
    pthread_mutex_lock(&g_log.lock);
    g_log.out = out;
    pthread_mutex_unlock(&g_log.lock);
}

void sl_log_shutdown(void) {
    pthread_mutex_lock(&g_log.lock);
    for (size_t i = 0; i < g_log.nsecrets; i++) free(g_log.secrets[i]);
    free(g_log.secrets);
    g_log.secrets = NULL;
    g_log.nsecrets = 0;
    for (size_t i = 0; i < g_log.nloggers; i++) free(g_log.loggers[i].name);
    free(g_log.loggers);
    g_log.loggers = NULL;
    g_log.nloggers = 0;
    atomic_store(&g_has_loggers, 0);
    pthread_mutex_unlock(&g_log.lock);
}

void sl_log_set_level(sluice_log_level_t level) { g_log.level = level; }
sluice_log_level_t sl_log_get_level(void) { return g_log.level; }
int sl_log_enabled(sluice_log_level_t level) { return level <= g_log.level; }

const char *sl_log_level_name(sluice_log_level_t level) {
    switch (level) {
    case SLUICE_LOG_ERROR: return "ERROR";
    case SLUICE_LOG_WARN: return "WARN";
    case SLUICE_LOG_INFO: return "INFO";
    default: return "DEBUG";
    }
}

/* A component's own level, or the root level; called with the lock held. */
static sluice_log_level_t level_of(const char *component) {
    for (size_t i = 0; component && i < g_log.nloggers; i++)
        if (strcmp(g_log.loggers[i].name, component) == 0) return g_log.loggers[i].level;
    return g_log.level;
}

int sl_log_set_component_level(const char *component, int level) {
    int rc = 0;
    pthread_mutex_lock(&g_log.lock);
    size_t i = 0;
    while (i < g_log.nloggers && strcmp(g_log.loggers[i].name, component) != 0) i++;
    if (i < g_log.nloggers && level < 0) {
        free(g_log.loggers[i].name);
        g_log.loggers[i] = g_log.loggers[--g_log.nloggers];
    } else if (i < g_log.nloggers) {
        g_log.loggers[i].level = (sluice_log_level_t)level;
    } else if (level >= 0) {
        sl_logger_level_t *grown = realloc(g_log.loggers, (i + 1) * sizeof(*grown));
        char *name = grown ? strdup(component) : NULL;
        if (grown) g_log.loggers = grown;
        if (name) g_log.loggers[g_log.nloggers++] = (sl_logger_level_t){name, (sluice_log_level_t)level};
        rc = name ? 0 : -1;
    }
    atomic_store(&g_has_loggers, g_log.nloggers > 0);
    pthread_mutex_unlock(&g_log.lock);
    return rc;
}

size_t sl_log_component_levels(sl_logger_level_t **out) {
    pthread_mutex_lock(&g_log.lock);
    size_t n = g_log.nloggers;
    *out = calloc(n ? n : 1, sizeof(**out));
    for (size_t i = 0; *out && i < n; i++) {
        (*out)[i].name = strdup(g_log.loggers[i].name);
        (*out)[i].level = g_log.loggers[i].level;
    }
    pthread_mutex_unlock(&g_log.lock);
    return *out ? n : 0;
}

int sl_log_parse_level(const char *s) {
    static const struct { const char *name; sluice_log_level_t level; } names[] = {
        {"error", SLUICE_LOG_ERROR}, {"warn", SLUICE_LOG_WARN},
        {"warning", SLUICE_LOG_WARN}, {"info", SLUICE_LOG_INFO},
        {"debug", SLUICE_LOG_DEBUG}, {"trace", SLUICE_LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(s, names[i].name) == 0) return (int)names[i].level;
    return -1;
}

/* Longest first, so a secret that contains a shorter one is hidden whole. */
static int by_length_desc(const void *a, const void *b) {
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

void sl_log_add_secret(const char *value) {
    if (!value || strlen(value) < 4) return;
    pthread_mutex_lock(&g_log.lock);
    for (size_t i = 0; i < g_log.nsecrets; i++)
        if (strcmp(g_log.secrets[i], value) == 0) goto out;
    char **grown = realloc(g_log.secrets, (g_log.nsecrets + 1) * sizeof(*grown));
    if (grown) {
        g_log.secrets = grown;
        char *copy = strdup(value);
        if (copy) g_log.secrets[g_log.nsecrets++] = copy;
        qsort(g_log.secrets, g_log.nsecrets, sizeof(char *), by_length_desc);
    }
out:
    pthread_mutex_unlock(&g_log.lock);
}

/* msg with every registered secret replaced by the mask; malloc'd (NULL on
 * OOM). Called with the lock held. */
static char *mask_secrets(const char *msg) {
    size_t mlen = strlen(SECRET_MASK), cap = strlen(msg) + 1;
    for (size_t i = 0; i < g_log.nsecrets; i++) {
        size_t hits = 0;
        for (const char *p = msg; (p = strstr(p, g_log.secrets[i])) != NULL; p++) hits++;
        cap += hits * mlen;
    }
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t o = 0;
    for (const char *p = msg; *p;) {
        size_t hit = 0;
        for (size_t i = 0; i < g_log.nsecrets && !hit; i++) {
            size_t slen = strlen(g_log.secrets[i]);
            if (strncmp(p, g_log.secrets[i], slen) == 0) hit = slen;
        }
        if (hit) {
            memcpy(out + o, SECRET_MASK, mlen);
            o += mlen;
            p += hit;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    return out;
}

static const char *level_name(sluice_log_level_t level) {
    switch (level) {
    case SLUICE_LOG_ERROR: return "ERROR";
    case SLUICE_LOG_WARN: return "WARN ";
    case SLUICE_LOG_INFO: return "INFO ";
    default: return "DEBUG";
    }
}

/* logfmt value: bare when it needs no quoting, else "..." with \\, \" and
 * control characters escaped. */
static void logfmt_value(FILE *f, const char *v) {
    int bare = *v != '\0';
    for (const char *p = v; *p && bare; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p < 0x20) bare = 0;
    if (bare) {
        fputs(v, f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p == '\r') fputs("\\r", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* One line in the configured format; called with the lock held. */
static void write_line(const char *when, sluice_log_level_t level, const char *component,
                       const char *msg) {
    FILE *f = g_log.out ? g_log.out : stderr;
    if (g_log.format == SL_LOG_TEXT) {
        fprintf(f, "%s %s [%s] %s\n", when, level_name(level), component, msg);
        return;
    }
    char lower[8];
    const char *name = sl_log_level_name(level);
    size_t i = 0;
    for (; name[i] && i < sizeof(lower) - 1; i++) lower[i] = (char)(name[i] | 0x20);
    lower[i] = '\0';
    if (g_log.format == SL_LOG_LOGFMT) {
        fprintf(f, "ts=%s level=%s logger=", when, lower);
        logfmt_value(f, component);
        fputs(" msg=", f);
        logfmt_value(f, msg);
        fputc('\n', f);
        return;
    }
    /* json: jansson does the escaping (a message that is not UTF-8 is
     * written with its invalid bytes replaced, never dropped) */
    json_t *o = json_pack("{s:s,s:s,s:s?}", "ts", when, "level", lower, "logger", component);
    json_t *m = json_string(msg);
    if (!m) { /* not UTF-8 */
        char *fixed = strdup(msg);
        for (unsigned char *p = (unsigned char *)fixed; fixed && *p; p++)
            if (*p >= 0x80) *p = '?';
        m = json_string(fixed ? fixed : "");
        free(fixed);
    }
    if (o) json_object_set_new(o, "msg", m);
    else json_decref(m);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text) fprintf(f, "%s\n", text);
    free(text);
    json_decref(o);
}

void sl_logv(sluice_log_level_t level, const char *component, const char *fmt, va_list ap) {
    int has_loggers = atomic_load(&g_has_loggers);
    if (!has_loggers && !sl_log_enabled(level)) return;
    if (has_loggers) {
        pthread_mutex_lock(&g_log.lock);
        int on = level <= level_of(component ? component : "worker");
        pthread_mutex_unlock(&g_log.lock);
        if (!on) return;
    }
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char secs[24], when[48];
    strftime(secs, sizeof(secs), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when, sizeof(when), "%s.%03ldZ", secs, ts.tv_nsec / 1000000L);
    pthread_mutex_lock(&g_log.lock);
    char *masked = g_log.nsecrets ? mask_secrets(msg) : NULL;
    /* A message that cannot be masked (OOM) is not written at all. */
    if (masked || !g_log.nsecrets)
        write_line(when, level, component ? component : "worker", masked ? masked : msg);
    pthread_mutex_unlock(&g_log.lock);
    free(masked);
    free(msg);
}

void sl_log(sluice_log_level_t level, const char *component, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_logv(level, component, fmt, ap);
    va_end(ap);
}
