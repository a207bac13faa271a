/* log.c - see log.h. The logger is process-wide by nature (stderr is), so
 * its state is the one module-level singleton, behind a mutex. */
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SECRET_MASK "[hidden]"

static struct {
    pthread_mutex_t lock;
    sluice_log_level_t level;
    char **secrets;
    size_t nsecrets;
} g_log = {PTHREAD_MUTEX_INITIALIZER, SLUICE_LOG_INFO, NULL, 0};

void sl_log_init(void) {
    const char *env = getenv("SLUICE_LOG_LEVEL");
    int lvl = env ? sl_log_parse_level(env) : -1;
    if (lvl > 0) g_log.level = (sluice_log_level_t)lvl;
}

void sl_log_shutdown(void) {
    pthread_mutex_lock(&g_log.lock);
    for (size_t i = 0; i < g_log.nsecrets; i++) free(g_log.secrets[i]);
    free(g_log.secrets);
    g_log.secrets = NULL;
    g_log.nsecrets = 0;
    pthread_mutex_unlock(&g_log.lock);
}

void sl_log_set_level(sluice_log_level_t level) { g_log.level = level; }
sluice_log_level_t sl_log_get_level(void) { return g_log.level; }
int sl_log_enabled(sluice_log_level_t level) { return level <= g_log.level; }

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
    }
out:
    pthread_mutex_unlock(&g_log.lock);
}

/* Replaces every registered secret in buf (in place, buf has room for cap). */
static void mask_secrets(char *buf, size_t cap) {
    for (size_t i = 0; i < g_log.nsecrets; i++) {
        const char *s = g_log.secrets[i];
        size_t slen = strlen(s), mlen = strlen(SECRET_MASK);
        char *hit, *from = buf;
        while ((hit = strstr(from, s)) != NULL) {
            size_t tail = strlen(hit + slen);
            if ((size_t)(hit - buf) + mlen + tail + 1 > cap) tail = cap - (size_t)(hit - buf) - mlen - 1;
            memmove(hit + mlen, hit + slen, tail);
            hit[mlen + tail] = '\0';
            memcpy(hit, SECRET_MASK, mlen);
            from = hit + mlen;
        }
    }
}

static const char *level_name(sluice_log_level_t level) {
    switch (level) {
    case SLUICE_LOG_ERROR: return "ERROR";
    case SLUICE_LOG_WARN: return "WARN ";
    case SLUICE_LOG_INFO: return "INFO ";
    default: return "DEBUG";
    }
}

void sl_logv(sluice_log_level_t level, const char *component, const char *fmt, va_list ap) {
    if (!sl_log_enabled(level)) return;
    char msg[4096];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&g_log.lock);
    mask_secrets(msg, sizeof(msg));
    fprintf(stderr, "%s.%03ldZ %s [%s] %s\n", when, ts.tv_nsec / 1000000L, level_name(level),
            component ? component : "worker", msg);
    pthread_mutex_unlock(&g_log.lock);
}

void sl_log(sluice_log_level_t level, const char *component, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_logv(level, component, fmt, ap);
    va_end(ap);
}
