/*
 * file_sink.c - "sink-file", an example Sluice SINK plugin.
 *
 * Appends one JSON line per record to a file:
 *
 *   {"topic":"t","partition":0,"offset":41,"timestamp":1700000000000,
 *    "key":"k","value":{...}}
 *
 * (one line; "timestamp" and "key" may be null). "value" is the Avro value
 * as JSON, or a bytes value embedded as JSON when it is a JSON object or
 * array, else as a JSON string, or null.
 *
 * It demonstrates exactly-once delivery into a destination that can remember
 * its own position:
 *
 *  - put() only buffers (stdio); pre_commit() flushes (and fsyncs) and then
 *    reports, per partition, the offset after the last record that is
 *    durable, so the host never commits what could still be lost;
 *  - open() restores the position from the destination itself: it scans the
 *    file for the largest offset per topic partition and asks the host to
 *    resume right after it;
 *  - put() drops records below that position (redelivered after a crash or a
 *    retried batch), and start()/open() cut off a last line a crash left
 *    incomplete, so the file holds every record exactly once;
 *  - bad records go to host->dead_letter() and put() returns
 *    SLUICE_ERR_BAD_RECORD, so errors.tolerance and the DLQ apply;
 *  - a failed write or flush is FATAL: the task restarts and open() recovers
 *    from what the file really holds.
 *
 * Config:
 *   file   STRING  (required)  path of the JSON-lines output file
 *   fsync  BOOL    true        fsync() the file on every pre_commit/close
 *
 * One file has one writer: with tasks.max > 1, "file" must contain {task},
 * replaced by each task's id (out-{task}.jsonl -> out-0.jsonl, out-1.jsonl).
 * A partition moving between tasks resumes at the further of the group's
 * committed offset and what the new owner's file holds.
 */
#include <sluice/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* The host-services table, set once by the entry function: the only global. */
static const sluice_host_api_t *host;

/* ------------------------------------------------------------------------ */
/* A growable byte buffer with a sticky out-of-memory flag                   */
/* ------------------------------------------------------------------------ */

typedef struct sbuf {
    char *data;
    size_t len, cap;
    int oom;
} sbuf_t;

static int sb_reserve(sbuf_t *b, size_t extra) {
    if (b->oom) return -1;
    if (extra > SIZE_MAX - b->len - 1) {
        b->oom = 1;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *grown = realloc(b->data, cap);
    if (!grown) {
        b->oom = 1;
        return -1;
    }
    b->data = grown;
    b->cap = cap;
    return 0;
}

static void sb_put(sbuf_t *b, const void *p, size_t n) {
    if (sb_reserve(b, n) != 0) return;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_puts(sbuf_t *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf_t *b, const char *fmt, ...) SLUICE_PRINTF(2, 3);
static void sb_printf(sbuf_t *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) { /* only used for numbers */
        b->oom = 1;
        return;
    }
    sb_put(b, tmp, (size_t)n);
}

/* ------------------------------------------------------------------------ */
/* JSON text                                                                 */
/* ------------------------------------------------------------------------ */

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n) {
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;      /* no overlong forms */
        else if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;      /* no overlong forms */
        else if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return len;
}

/* Appends s[0..n) as a quoted JSON string: '"' and '\' escaped, control
 * characters as \u00XX, valid UTF-8 copied, and each byte that is not valid
 * UTF-8 as \u00XX (read as Latin-1) so the line stays valid JSON. */
static void sb_json_string(sbuf_t *b, const void *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = s, *end = p + n;
    sb_put(b, "\"", 1);
    while (p < end && !b->oom) {
        const unsigned char *run = p; /* copy runs of plain characters at once */
        size_t len;
        while (p < end && *p >= 0x20 && *p != '"' && *p != '\\' &&
               (len = utf8_len(p, (size_t)(end - p))) != 0)
            p += len;
        sb_put(b, run, (size_t)(p - run));
        if (p == end) break;
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            sb_put(b, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 0xF]};
            sb_put(b, esc, 6);
        }
        p++;
    }
    sb_put(b, "\"", 1);
}

/* A small JSON validator (RFC 8259), used to decide whether a bytes value
 * can be embedded as JSON as it is. */
typedef struct jscan {
    const unsigned char *p, *end;
    int depth;
} jscan_t;

#define JSON_MAX_DEPTH 128

static void js_ws(jscan_t *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int js_lit(jscan_t *j, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0) return -1;
    j->p += n;
    return 0;
}

static int js_digits(jscan_t *j) {
    const unsigned char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    return j->p > start ? 0 : -1;
}

static int js_number(jscan_t *j) {
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (js_digits(j) != 0)
        return -1;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (js_digits(j) != 0) return -1;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (js_digits(j) != 0) return -1;
    }
    return 0;
}

static int js_string(jscan_t *j) {
    j->p++; /* the opening quote */
    while (j->p < j->end) {
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            return 0;
        }
        if (c < 0x20) return -1;
        if (c == '\\') {
            if (++j->p >= j->end) return -1;
            c = *j->p++;
            if (c == 'u') {
                for (int i = 0; i < 4; i++, j->p++) {
                    if (j->p >= j->end) return -1;
                    unsigned char h = *j->p;
                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
                          (h >= 'A' && h <= 'F')))
                        return -1;
                }
            } else if (c == 0 || !strchr("\"\\/bfnrt", c)) {
                return -1;
            }
            continue;
        }
        size_t len = utf8_len(j->p, (size_t)(j->end - j->p));
        if (!len) return -1;
        j->p += len;
    }
    return -1;
}

static int js_value(jscan_t *j);

/* An object or array: open is '{' or '['. */
static int js_container(jscan_t *j, unsigned char close) {
    if (++j->depth > JSON_MAX_DEPTH) return -1;
    j->p++;
    js_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 0;
    }
    for (;;) {
        if (close == '}') {
            if (j->p >= j->end || *j->p != '"' || js_string(j) != 0) return -1;
            js_ws(j);
            if (j->p >= j->end || *j->p != ':') return -1;
            j->p++;
            js_ws(j);
        }
        if (js_value(j) != 0) return -1;
        js_ws(j);
        if (j->p >= j->end) return -1;
        if (*j->p == close) {
            j->p++;
            j->depth--;
            return 0;
        }
        if (*j->p != ',') return -1;
        j->p++;
        js_ws(j);
    }
}

static int js_value(jscan_t *j) {
    if (j->p >= j->end) return -1;
    switch (*j->p) {
    case '{': return js_container(j, '}');
    case '[': return js_container(j, ']');
    case '"': return js_string(j);
    case 't': return js_lit(j, "true");
    case 'f': return js_lit(j, "false");
    case 'n': return js_lit(j, "null");
    default: return js_number(j);
    }
}

static int json_valid(const void *data, size_t len) {
    jscan_t j = {.p = data, .end = (const unsigned char *)data + len, .depth = 0};
    js_ws(&j);
    if (js_value(&j) != 0) return 0;
    js_ws(&j);
    return j.p == j.end;
}

/* Appends valid JSON text on one line: in valid JSON a raw CR or LF can only
 * be whitespace between tokens (never inside a string), so a space does. */
static void sb_json_oneline(sbuf_t *b, const char *json, size_t len) {
    size_t start = b->len;
    sb_put(b, json, len);
    if (b->oom) return;
    for (size_t i = start; i < b->len; i++)
        if (b->data[i] == '\n' || b->data[i] == '\r') b->data[i] = ' ';
}

/* Parses a decimal int64 at *p (< end), advancing *p. */
static int parse_i64(const char **p, const char *end, int64_t *out) {
    const char *s = *p;
    int neg = 0;
    if (s < end && *s == '-') {
        neg = 1;
        s++;
    }
    if (s >= end || *s < '0' || *s > '9') return -1;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (limit - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    *p = s;
    return 0;
}

static int expect(const char **p, const char *end, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0) return -1;
    *p += n;
    return 0;
}

/*
 * Parses the fixed start of a line this sink wrote,
 *   {"topic":"<escaped>","partition":<int>,"offset":<int>,
 * giving the topic as written (still escaped: compare it with the escaped
 * form of a name), the partition and the offset. The topic comes first and is
 * escaped, so nothing in the key or value can be mistaken for these fields.
 */
static int parse_line(const char *line, size_t len, const char **topic, size_t *topic_len,
                      int32_t *partition, int64_t *offset) {
    const char *p = line, *end = line + len;
    if (expect(&p, end, "{\"topic\":\"") != 0) return -1;
    const char *t = p;
    while (p < end && *p != '"') {
        if (*p == '\\' && ++p == end) return -1;
        p++;
    }
    if (p >= end) return -1;
    *topic = t;
    *topic_len = (size_t)(p - t);
    p++;
    int64_t part;
    if (expect(&p, end, ",\"partition\":") != 0 || parse_i64(&p, end, &part) != 0 ||
        part < 0 || part > INT32_MAX || expect(&p, end, ",\"offset\":") != 0 ||
        parse_i64(&p, end, offset) != 0 || *offset < 0 || p >= end || *p != ',')
        return -1;
    *partition = (int32_t)part;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Task state                                                                */
/* ------------------------------------------------------------------------ */

/* What the sink knows about one topic partition. */
typedef struct fs_part {
    char *topic;
    int32_t partition;
    /* Offset after the last record of this partition in the file (or handed
     * to the dead-letter queue); SLUICE_OFFSET_UNSET when none. Records below
     * it are duplicates. Once flushed, it is what pre_commit() reports. */
    int64_t next;
} fs_part_t;

typedef struct file_sink {
    char *path;
    int do_fsync;
    int fd;
    FILE *fp;    /* fd, buffered, in append mode */
    int dirty;   /* written since the last flush */
    int failed;  /* a write or flush failed: what the file holds is unknown */
    fs_part_t *parts;
    size_t nparts, cap;
    size_t last; /* index of the last partition found (records come in runs) */
    sbuf_t line;
    sluice_metric_t *written;
} file_sink_t;

/* Logs the message and attaches it to the error rc being returned. */
static sluice_err_t fail(sluice_task_t *task, sluice_err_t rc, const char *fmt, ...)
    SLUICE_PRINTF(3, 4);
static sluice_err_t fail(sluice_task_t *task, sluice_err_t rc, const char *fmt, ...) {
    char msg[1024];
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

static fs_part_t *part_find(file_sink_t *s, const char *topic, int32_t partition) {
    if (s->last < s->nparts && s->parts[s->last].partition == partition &&
        strcmp(s->parts[s->last].topic, topic) == 0)
        return &s->parts[s->last];
    for (size_t i = 0; i < s->nparts; i++) {
        if (s->parts[i].partition == partition && strcmp(s->parts[i].topic, topic) == 0) {
            s->last = i;
            return &s->parts[i];
        }
    }
    return NULL;
}

/* Finds or adds a partition; NULL on out of memory. */
static fs_part_t *part_get(file_sink_t *s, const char *topic, int32_t partition) {
    fs_part_t *e = part_find(s, topic, partition);
    if (e) return e;
    if (s->nparts == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        fs_part_t *grown = realloc(s->parts, cap * sizeof(*grown));
        if (!grown) return NULL;
        s->parts = grown;
        s->cap = cap;
    }
    char *copy = strdup(topic);
    if (!copy) return NULL;
    s->last = s->nparts;
    e = &s->parts[s->nparts++];
    *e = (fs_part_t){.topic = copy, .partition = partition, .next = SLUICE_OFFSET_UNSET};
    return e;
}

static void part_remove(file_sink_t *s, const char *topic, int32_t partition) {
    fs_part_t *e = part_find(s, topic, partition);
    if (!e) return;
    free(e->topic);
    *e = s->parts[--s->nparts];
    s->last = 0;
}

/* Makes what put() buffered durable: fflush, then fsync when configured. */
static sluice_err_t fs_flush(file_sink_t *s, sluice_task_t *task) {
    if (s->failed)
        return fail(task, SLUICE_ERR_FATAL, "an earlier write to %s failed; restart the task",
                    s->path);
    if (!s->dirty) return SLUICE_OK;
    if (fflush(s->fp) != 0) {
        s->failed = 1;
        return fail(task, SLUICE_ERR_FATAL, "writing %s failed: %s", s->path, strerror(errno));
    }
    if (s->do_fsync && fsync(s->fd) != 0) {
        s->failed = 1; /* after a failed fsync the page cache cannot be trusted */
        return fail(task, SLUICE_ERR_FATAL, "fsync(%s) failed: %s", s->path, strerror(errno));
    }
    s->dirty = 0;
    return SLUICE_OK;
}

/* fsyncs the directory holding path, so a newly created file's entry is
 * durable too. */
static int fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int saved = errno;
    if (close(fd) != 0 && rc == 0) return -1;
    errno = saved;
    return rc;
}

/*
 * A crash can leave the file ending in a partial line (the process died in
 * the middle of a write). Cuts the file back to the end of its last complete
 * line: the records of the partial line are redelivered, as the host resumes
 * after the last complete one.
 */
static sluice_err_t trim_partial_line(file_sink_t *s, sluice_task_t *task) {
    struct stat st;
    if (fstat(s->fd, &st) != 0)
        return fail(task, SLUICE_ERR_FATAL, "fstat(%s) failed: %s", s->path, strerror(errno));
    off_t size = st.st_size, end = size;
    char buf[65536];
    int found = 0;
    while (end > 0 && !found) {
        size_t chunk = end < (off_t)sizeof(buf) ? (size_t)end : sizeof(buf);
        off_t at = end - (off_t)chunk;
        ssize_t got = pread(s->fd, buf, chunk, at);
        if (got < 0 && errno == EINTR) continue;
        if (got != (ssize_t)chunk)
            return fail(task, SLUICE_ERR_FATAL, "reading %s failed: %s", s->path,
                        got < 0 ? strerror(errno) : "short read");
        for (size_t i = chunk; i-- > 0;) {
            if (buf[i] == '\n') {
                end = at + (off_t)i + 1;
                found = 1;
                break;
            }
        }
        if (!found) end = at;
    }
    if (end == size) return SLUICE_OK;
    if (ftruncate(s->fd, end) != 0)
        return fail(task, SLUICE_ERR_FATAL, "ftruncate(%s) failed: %s", s->path, strerror(errno));
    if (s->do_fsync && fsync(s->fd) != 0)
        return fail(task, SLUICE_ERR_FATAL, "fsync(%s) failed: %s", s->path, strerror(errno));
    host->log(task, SLUICE_LOG_WARN,
              "%s ended in an incomplete line (a crash during a write): removed its %lld bytes",
              s->path, (long long)(size - end));
    return SLUICE_OK;
}

static void fs_free(file_sink_t *s) {
    if (!s) return;
    for (size_t i = 0; i < s->nparts; i++) free(s->parts[i].topic);
    free(s->parts);
    free(s->line.data);
    free(s->path);
    free(s);
}

/* tmpl with every "{task}" replaced by the task id; -1 when out won't hold it. */
static int expand_task(const char *tmpl, int id, char *out, size_t cap) {
    size_t o = 0;
    if (!tmpl) tmpl = "";
    while (*tmpl) {
        if (strncmp(tmpl, "{task}", 6) == 0) {
            int n = snprintf(out + o, cap - o, "%d", id);
            if (n < 0 || (size_t)n >= cap - o) return -1;
            o += (size_t)n;
            tmpl += 6;
        } else {
            if (o + 1 >= cap) return -1;
            out[o++] = *tmpl++;
        }
    }
    out[o] = '\0';
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */

static sluice_err_t fs_start(sluice_task_t *task, void **state) {
    if (!task || !state) return SLUICE_ERR_INVALID_ARG;
    *state = NULL;
    const char *tmpl = host->config_string(task, "file");
    if (host->task_count(task) > 1 && tmpl && !strstr(tmpl, "{task}"))
        return fail(task, SLUICE_ERR_CONFIG,
                    "config 'file': with tasks.max > 1 each task needs its own file: "
                    "put {task} in the name");
    file_sink_t *s = calloc(1, sizeof(*s));
    if (!s) return fail(task, SLUICE_ERR_FATAL, "out of memory allocating the task state");
    s->fd = -1;

    sluice_err_t rc;
    char path[4096];
    if (expand_task(tmpl, host->task_id(task), path, sizeof(path)) != 0) {
        rc = fail(task, SLUICE_ERR_CONFIG, "config 'file': name too long");
        goto fail;
    }
    if (!*path) {
        rc = fail(task, SLUICE_ERR_CONFIG, "config 'file' is required");
        goto fail;
    }
    if ((rc = host->config_bool(task, "fsync", &s->do_fsync)) != SLUICE_OK) {
        rc = fail(task, SLUICE_ERR_CONFIG, "config 'fsync': %s", host->err2str(rc));
        goto fail;
    }
    if (!(s->path = strdup(path))) {
        rc = fail(task, SLUICE_ERR_FATAL, "out of memory copying the file name");
        goto fail;
    }

    struct stat st;
    int existed = stat(s->path, &st) == 0;
    s->fd = open(s->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        int e = errno;
        rc = fail(task,
                  e == ENOENT || e == ENOTDIR || e == EACCES || e == EPERM || e == EISDIR ||
                          e == EROFS
                      ? SLUICE_ERR_CONFIG
                      : SLUICE_ERR_FATAL,
                  "config 'file': cannot open %s: %s", s->path, strerror(e));
        goto fail;
    }
    if (fstat(s->fd, &st) != 0) {
        rc = fail(task, SLUICE_ERR_FATAL, "fstat(%s) failed: %s", s->path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = fail(task, SLUICE_ERR_CONFIG, "config 'file': %s is not a regular file", s->path);
        goto fail;
    }
    if (!existed && s->do_fsync && fsync_parent_dir(s->path) != 0)
        host->log(task, SLUICE_LOG_WARN, "fsync of the directory of %s failed: %s", s->path,
                  strerror(errno));
    if ((rc = trim_partial_line(s, task)) != SLUICE_OK) goto fail;
    if (!(s->fp = fdopen(s->fd, "a"))) {
        rc = fail(task, SLUICE_ERR_FATAL, "fdopen(%s) failed: %s", s->path, strerror(errno));
        goto fail;
    }

    s->written = host->metric_counter(task, "records_written", "Records appended to the file");
    if (!s->written)
        host->log(task, SLUICE_LOG_WARN, "metric_counter(records_written) failed; not counted");
    host->log(task, SLUICE_LOG_INFO, "appending to %s (fsync %s)", s->path,
              s->do_fsync ? "on" : "off");
    *state = s;
    return SLUICE_OK;

fail:
    if (s->fd >= 0 && close(s->fd) != 0)
        host->log(task, SLUICE_LOG_WARN, "close(%s) failed: %s", s->path, strerror(errno));
    fs_free(s);
    return rc;
}

/*
 * Restores each assigned partition's position from the file: the largest
 * offset it holds + 1, which the host resumes from. Reads the whole file:
 * simple and always right (the file is the truth), at the cost of a scan per
 * rebalance - fine for an example; a real sink would keep an index.
 */
static sluice_err_t fs_open(void *state, sluice_task_t *task, sluice_topic_partition_t *parts,
                            size_t n) {
    file_sink_t *s = state;
    if (!s || (!parts && n)) return SLUICE_ERR_INVALID_ARG;
    if (n == 0) return SLUICE_OK;
    sluice_err_t rc = fs_flush(s, task); /* the scan must see what we buffered */
    if (rc == SLUICE_OK) rc = trim_partial_line(s, task); /* (start() did it already) */
    if (rc != SLUICE_OK) return rc;

    /* The assigned topics as the file spells them (escaped). */
    sbuf_t *esc = calloc(n, sizeof(*esc));
    int64_t *max = malloc(n * sizeof(*max));
    FILE *in = NULL;
    char *line = NULL;
    size_t line_cap = 0;
    if (!esc || !max) {
        rc = fail(task, SLUICE_ERR_RETRIABLE, "out of memory in open()");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        max[i] = -1;
        if (!parts[i].topic) {
            rc = fail(task, SLUICE_ERR_FATAL, "open(): partition %zu has no topic", i);
            goto out;
        }
        sb_json_string(&esc[i], parts[i].topic, strlen(parts[i].topic));
        if (esc[i].oom) {
            rc = fail(task, SLUICE_ERR_RETRIABLE, "out of memory in open()");
            goto out;
        }
    }

    if (!(in = fopen(s->path, "r"))) {
        rc = fail(task, SLUICE_ERR_FATAL, "cannot read %s: %s", s->path, strerror(errno));
        goto out;
    }
    size_t lineno = 0, bad = 0, first_bad = 0;
    ssize_t len;
    while ((len = getline(&line, &line_cap, in)) >= 0) {
        lineno++;
        if (len == 0 || line[len - 1] != '\n') break; /* partial last line: not ours yet */
        const char *topic;
        size_t topic_len;
        int32_t partition;
        int64_t offset;
        if (parse_line(line, (size_t)len, &topic, &topic_len, &partition, &offset) != 0) {
            if (!bad++) first_bad = lineno;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            /* the escaped form includes the quotes; the parsed one does not */
            if (parts[i].partition == partition && esc[i].len == topic_len + 2 &&
                memcmp(esc[i].data + 1, topic, topic_len) == 0 && offset > max[i])
                max[i] = offset;
        }
    }
    if (ferror(in)) {
        rc = fail(task, SLUICE_ERR_FATAL, "reading %s failed: %s", s->path, strerror(errno));
        goto out;
    }
    if (bad)
        host->log(task, SLUICE_LOG_WARN,
                  "%s: %zu line(s) not written by this sink ignored (first: line %zu)", s->path,
                  bad, first_bad);

    for (size_t i = 0; i < n; i++) {
        fs_part_t *e = part_get(s, parts[i].topic, parts[i].partition);
        if (!e) {
            rc = fail(task, SLUICE_ERR_RETRIABLE, "out of memory in open()");
            goto out;
        }
        if (max[i] >= 0 && max[i] < INT64_MAX && (e->next < 0 || max[i] + 1 > e->next))
            e->next = max[i] + 1;
        /* The group's committed offset (given by the host) wins when it is
         * further: another task wrote those records while this one did
         * not own the partition. */
        int committed = parts[i].offset >= 0 && parts[i].offset > e->next;
        if (committed) e->next = parts[i].offset;
        if (committed)
            host->log(task, SLUICE_LOG_INFO,
                      "%s[%d]: resuming at %" PRId64 ", the group's committed offset (%s holds %s)",
                      parts[i].topic, parts[i].partition, e->next, s->path,
                      max[i] >= 0 ? "less of it" : "none of it");
        else if (e->next >= 0)
            host->log(task, SLUICE_LOG_INFO, "%s[%d]: %s holds offsets up to %" PRId64
                      ", resuming at %" PRId64, parts[i].topic, parts[i].partition, s->path,
                      e->next - 1, e->next);
        if (e->next >= 0) parts[i].offset = e->next;
    }
    rc = SLUICE_OK;

out:
    if (in && fclose(in) != 0)
        host->log(task, SLUICE_LOG_WARN, "fclose(%s) failed: %s", s->path, strerror(errno));
    free(line);
    for (size_t i = 0; esc && i < n; i++) free(esc[i].data);
    free(esc);
    free(max);
    return rc;
}

static sluice_err_t fs_close(void *state, sluice_task_t *task,
                             const sluice_topic_partition_t *parts, size_t n) {
    file_sink_t *s = state;
    if (!s || (!parts && n)) return SLUICE_ERR_INVALID_ARG;
    sluice_err_t rc = fs_flush(s, task);
    /* Forget them: if they come back, open() reads their position again. */
    for (size_t i = 0; i < n; i++)
        if (parts[i].topic) part_remove(s, parts[i].topic, parts[i].partition);
    return rc;
}

/* Appends the JSON of the record's value to b. SLUICE_ERR_BAD_RECORD with
 * a reason when it cannot be converted. */
static sluice_err_t append_value(sbuf_t *b, sluice_record_t *rec, char *reason,
                                 size_t reason_len) {
    avro_schema_t schema = NULL;
    avro_value_t *value = host->record_value_avro(rec, &schema);
    if (value) {
        char *json = NULL;
        if (avro_value_to_json(value, 1, &json) != 0 || !json) {
            snprintf(reason, reason_len, "the Avro value cannot be written as JSON: %s",
                     avro_strerror());
            free(json);
            return SLUICE_ERR_BAD_RECORD;
        }
        sb_json_oneline(b, json, strlen(json));
        free(json);
        return SLUICE_OK;
    }
    size_t len = 0;
    const void *bytes = host->record_value_bytes(rec, &len);
    if (!bytes) {
        sb_puts(b, "null");
    } else {
        const char first = len ? *(const char *)bytes : '\0';
        if ((first == '{' || first == '[') && json_valid(bytes, len))
            sb_json_oneline(b, bytes, len);
        else
            sb_json_string(b, bytes, len);
    }
    return SLUICE_OK;
}

/* Formats the record's line into s->line. */
static sluice_err_t format_line(file_sink_t *s, sluice_record_t *rec, const char *topic,
                                int32_t partition, int64_t offset, char *reason,
                                size_t reason_len) {
    sbuf_t *b = &s->line;
    b->len = 0;
    b->oom = 0;
    sb_puts(b, "{\"topic\":");
    sb_json_string(b, topic, strlen(topic));
    sb_printf(b, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"timestamp\":", partition,
              offset);
    int64_t ts = host->record_timestamp(rec);
    if (ts >= 0)
        sb_printf(b, "%" PRId64, ts);
    else
        sb_puts(b, "null");
    sb_puts(b, ",\"key\":");
    size_t key_len = 0;
    const void *key = host->record_key(rec, &key_len);
    if (key)
        sb_json_string(b, key, key_len);
    else
        sb_puts(b, "null");
    sb_puts(b, ",\"value\":");
    sluice_err_t rc = append_value(b, rec, reason, reason_len);
    if (rc != SLUICE_OK) return rc;
    sb_puts(b, "}\n");
    return b->oom ? SLUICE_ERR_NOMEM : SLUICE_OK;
}

static sluice_err_t fs_put(void *state, sluice_task_t *task, sluice_record_t *const *records,
                           size_t n) {
    file_sink_t *s = state;
    if (!s || (!records && n)) return SLUICE_ERR_INVALID_ARG;
    if (s->failed)
        return fail(task, SLUICE_ERR_FATAL, "an earlier write to %s failed; restart the task",
                    s->path);
    size_t written = 0, skipped = 0;
    int bad = 0;
    sluice_err_t rc = SLUICE_OK;
    for (size_t i = 0; i < n && rc == SLUICE_OK; i++) {
        sluice_record_t *rec = records[i];
        if (!rec) continue;
        char reason[512] = "";
        const char *topic = host->record_topic(rec);
        int32_t partition = host->record_partition(rec);
        int64_t offset = host->record_offset(rec);
        fs_part_t *e = NULL;
        int64_t prev_next = SLUICE_OFFSET_UNSET;
        sluice_err_t r;
        if (!topic || partition < 0 || offset < 0) {
            snprintf(reason, sizeof(reason), "record has no Kafka topic, partition or offset");
            r = SLUICE_ERR_BAD_RECORD;
        } else {
            if (!(e = part_get(s, topic, partition))) {
                rc = fail(task, SLUICE_ERR_RETRIABLE, "out of memory tracking %s[%d]", topic,
                          partition);
                break;
            }
            if (e->next >= 0 && offset < e->next) { /* already in the file */
                skipped++;
                continue;
            }
            r = format_line(s, rec, topic, partition, offset, reason, sizeof(reason));
            if (r == SLUICE_ERR_NOMEM) {
                rc = fail(task, SLUICE_ERR_RETRIABLE, "out of memory formatting %s[%d]@%" PRId64,
                          topic, partition, offset);
                break;
            }
            if (r == SLUICE_OK) {
                if (fwrite(s->line.data, 1, s->line.len, s->fp) != s->line.len) {
                    s->failed = 1;
                    rc = fail(task, SLUICE_ERR_FATAL, "writing %s failed: %s", s->path,
                              strerror(errno));
                    break;
                }
                s->dirty = 1;
                written++;
            }
            /* Written, or handed to the dead-letter queue below: done with. */
            prev_next = e->next;
            e->next = offset < INT64_MAX ? offset + 1 : INT64_MAX;
        }
        if (r == SLUICE_ERR_BAD_RECORD) {
            sluice_err_t dl = host->dead_letter(task, rec, SLUICE_ERR_BAD_RECORD, reason);
            if (dl != SLUICE_OK) {
                /* Not done with it after all. The host sends the batch again;
                 * what was written from it is skipped then. */
                if (e) e->next = prev_next;
                rc = fail(task, dl == SLUICE_ERR_FATAL ? SLUICE_ERR_FATAL : SLUICE_ERR_RETRIABLE,
                          "dead_letter failed (%s) for a bad record: %s", host->err2str(dl),
                          reason);
                break;
            }
            bad = 1;
        }
    }
    if (written && s->written) host->metric_add(s->written, (double)written);
    if (skipped)
        host->log(task, SLUICE_LOG_DEBUG, "skipped %zu record(s) already in %s", skipped,
                  s->path);
    if (rc != SLUICE_OK) return rc;
    return bad ? SLUICE_ERR_BAD_RECORD : SLUICE_OK;
}

static sluice_err_t fs_pre_commit(void *state, sluice_task_t *task,
                                  sluice_topic_partition_t *offsets, size_t n) {
    file_sink_t *s = state;
    if (!s || (!offsets && n)) return SLUICE_ERR_INVALID_ARG;
    sluice_err_t rc = fs_flush(s, task);
    for (size_t i = 0; i < n; i++) {
        const fs_part_t *e =
            rc == SLUICE_OK && offsets[i].topic
                ? part_find(s, offsets[i].topic, offsets[i].partition)
                : NULL;
        if (!e || e->next < 0)
            offsets[i].offset = SLUICE_OFFSET_UNSET; /* nothing durable: commit nothing */
        else if (offsets[i].offset < 0 || offsets[i].offset > e->next)
            offsets[i].offset = e->next; /* only ever lowered to what is durable */
    }
    return rc;
}

static void fs_stop(void *state, sluice_task_t *task) {
    file_sink_t *s = state;
    if (!s) return;
    if (!s->failed && s->dirty) (void)fs_flush(s, task); /* logs its own failure */
    if (s->fp) {
        if (fclose(s->fp) != 0 && !s->failed)
            host->log(task, SLUICE_LOG_ERROR, "closing %s failed: %s", s->path, strerror(errno));
    } else if (s->fd >= 0 && close(s->fd) != 0) {
        host->log(task, SLUICE_LOG_WARN, "close(%s) failed: %s", s->path, strerror(errno));
    }
    fs_free(s);
}

/* ------------------------------------------------------------------------ */
/* Descriptor and entry                                                      */
/* ------------------------------------------------------------------------ */

static const sluice_config_def_t fs_config[] = {
    {.name = "file",
     .type = SLUICE_CONFIG_STRING,
     .flags = SLUICE_CONFIG_REQUIRED,
     .doc = "Path of the JSON-lines file records are appended to (created if missing); "
            "{task} is replaced by the task id (required when tasks.max > 1)"},
    {.name = "fsync",
     .type = SLUICE_CONFIG_BOOL,
     .default_value = "true",
     .doc = "fsync() the file before offsets are committed (durable across power loss)"},
    {.name = NULL},
};

static const sluice_sink_ops_t fs_ops = {
    .struct_size = sizeof(sluice_sink_ops_t),
    .start = fs_start,
    .open = fs_open,
    .close = fs_close,
    .put = fs_put,
    .pre_commit = fs_pre_commit,
    .stop = fs_stop,
};

static const sluice_plugin_t fs_plugin = {
    SLUICE_PLUGIN_HEADER,
    .kind = SLUICE_PLUGIN_SINK,
    .name = "sink-file",
    .version = "1.0.0",
    .description = "Example sink: appends records as JSON lines to a file, exactly once",
    .config = fs_config,
    .sink = &fs_ops,
};

SLUICE_EXPORT const sluice_plugin_t *SLUICE_PLUGIN_ENTRY(const sluice_host_api_t *api) {
    if (!api || api->abi_major != SLUICE_ABI_MAJOR) return NULL;
    /* Every service this plugin calls must be in the host's table. */
    const char *missing = NULL;
#define NEED(member) \
    if (!missing && !SLUICE_HOST_HAS(api, member)) missing = #member
    NEED(log); NEED(config_string); NEED(config_bool); NEED(task_count);
    NEED(record_topic); NEED(record_key); NEED(record_value_avro);
    NEED(record_value_bytes); NEED(record_timestamp); NEED(record_partition);
    NEED(record_offset); NEED(dead_letter); NEED(metric_counter); NEED(metric_add);
    NEED(err2str); NEED(set_error);
#undef NEED
    if (missing) {
        if (SLUICE_HOST_HAS(api, log))
            api->log(NULL, SLUICE_LOG_ERROR, "sink-file: the host lacks the %s service",
                     missing);
        return NULL;
    }
    host = api;
    return &fs_plugin;
}
