/*
 * ws-probe - a tiny websocket client for tests: connects, sends messages,
 * prints every text frame it receives as one line on stdout (flushed).
 *
 *   ws-probe URL [--subscribe SYM]... [--unsubscribe SYM]... [--send TEXT]...
 *                [--after N] [--frames N] [--trades N] [--seconds T]
 *
 * URL is ws://HOST:PORT/PATH (no TLS), e.g. ws://127.0.0.1:4000/?token=abc.
 * Messages are sent in command-line order once connected; --after N makes
 * the messages that follow it wait until N frames have been received (so a
 * test can unsubscribe mid-stream). --subscribe SYM sends
 * {"type":"subscribe","symbol":SYM}, --unsubscribe likewise, --send TEXT
 * sends TEXT as it is.
 *
 * Stops after N frames (--frames), after N trades (--trades: the sum of the
 * "data" sizes of well-formed {"type":"trade"} frames: "p" and "v" numbers,
 * "s" a string, "t" an integer >= 0), or after T seconds (--seconds,
 * default 10), whichever comes first, closing the connection normally.
 * Exit status: 0 when stopped that way; 1 when the connection failed or the
 * server refused the upgrade (stderr says "refused: HTTP <status>" when the
 * server answered with one); 3 when the server closed or dropped the
 * connection first; 2 on bad arguments.
 */
#include <libwebsockets.h>
#include <jansson.h>

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_FRAME 1048576

typedef struct {
    char *text; /* owned */
    long after; /* frames to wait for */
} outmsg_t;

typedef struct {
    outmsg_t *out;
    size_t nout, sent;
    long frames_max, trades_max;
    long frames, trades;
    int64_t deadline_us;
    char *rx;
    size_t rx_len;
    bool rx_too_big;
    bool done;
    int rc;
    struct lws *wsi;
    struct lws_context *ctx;
    unsigned http_status;
    lws_sorted_usec_list_t tick;
} probe_t;

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Wakes the event loop every 50 ms so the deadline is seen in time. */
static void on_tick(lws_sorted_usec_list_t *sul) {
    probe_t *p = lws_container_of(sul, probe_t, tick);
    lws_sul_schedule(p->ctx, 0, &p->tick, on_tick, 50000);
}

static void usage(void) {
    fprintf(stderr, "usage: ws-probe URL [--subscribe SYM]... [--unsubscribe SYM]... [--send TEXT]...\n"
                    "                [--after N] [--frames N] [--trades N] [--seconds T]\n");
}

static char *symbol_message(const char *type, const char *symbol) {
    json_t *j = json_pack("{s:s, s:s}", "type", type, "symbol", symbol);
    char *txt = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    return txt;
}

static bool good_trade(json_t *t) {
    json_t *tt = json_object_get(t, "t");
    return json_is_number(json_object_get(t, "p")) && json_is_string(json_object_get(t, "s")) &&
           json_is_integer(tt) && json_integer_value(tt) >= 0 && json_is_number(json_object_get(t, "v"));
}

/* The trades of a well-formed {"type":"trade"} frame; 0 for anything else. */
static long count_trades(const char *text, size_t len) {
    json_t *m = json_loadb(text, len, 0, NULL);
    const char *type = json_string_value(json_object_get(m, "type"));
    json_t *data = json_object_get(m, "data");
    long n = 0;
    if (type && strcmp(type, "trade") == 0 && json_is_array(data)) {
        for (size_t i = 0; i < json_array_size(data); i++) {
            if (!good_trade(json_array_get(data, i))) {
                n = 0;
                break;
            }
            n++;
        }
    }
    json_decref(m);
    return n;
}

static void finish(probe_t *p, int rc) {
    if (p->done) return;
    p->done = true;
    p->rc = rc;
}

static void on_frame(probe_t *p, struct lws *wsi) {
    fwrite(p->rx ? p->rx : "", 1, p->rx_len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    p->frames++;
    p->trades += count_trades(p->rx ? p->rx : "", p->rx_len);
    if ((p->frames_max && p->frames >= p->frames_max) || (p->trades_max && p->trades >= p->trades_max))
        finish(p, 0);
    else if (p->sent < p->nout && p->out[p->sent].after <= p->frames)
        lws_callback_on_writable(wsi);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    (void)user;
    struct lws_context *ctx = lws_get_context(wsi);
    probe_t *p = ctx ? lws_context_user(ctx) : NULL;
    if (!p) return 0;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        p->http_status = lws_http_client_http_response(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        unsigned st = p->http_status ? p->http_status : lws_http_client_http_response(wsi);
        if (st) fprintf(stderr, "ws-probe: refused: HTTP %u (%s)\n", st, in ? (const char *)in : "");
        else fprintf(stderr, "ws-probe: connection failed: %s\n", in ? (const char *)in : "unknown error");
        p->wsi = NULL;
        finish(p, 1);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        p->wsi = wsi;
        if (p->nout > 0 && p->out[0].after <= 0) lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        if (p->done) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
            return -1;
        }
        if (p->sent >= p->nout || p->out[p->sent].after > p->frames) return 0;
        const char *t = p->out[p->sent++].text;
        size_t n = strlen(t);
        unsigned char *buf = malloc(LWS_PRE + n + 1);
        if (!buf) return -1;
        memcpy(buf + LWS_PRE, t, n);
        int w = lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT);
        free(buf);
        if (w < (int)n) return -1;
        if (p->sent < p->nout && p->out[p->sent].after <= p->frames) lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!p->rx_too_big) {
            if (p->rx_len + len > MAX_FRAME) p->rx_too_big = true;
            else {
                char *nb = realloc(p->rx, p->rx_len + len + 1);
                if (!nb) p->rx_too_big = true;
                else {
                    memcpy(nb + p->rx_len, in, len);
                    p->rx = nb;
                    p->rx_len += len;
                }
            }
        }
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0) return 0;
        if (p->rx_too_big) fprintf(stderr, "ws-probe: frame over %d bytes skipped\n", MAX_FRAME);
        else if (!p->done) on_frame(p, wsi);
        p->rx_len = 0;
        p->rx_too_big = false;
        if (p->done) lws_callback_on_writable(wsi); /* to close normally */
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (!p->done) fprintf(stderr, "ws-probe: the server closed the connection\n");
        p->wsi = NULL;
        finish(p, 3);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols PROTOCOLS[] = {
    {.name = "probe", .callback = callback, .rx_buffer_size = 65536},
    {.name = NULL},
};

static bool parse_long(const char *s, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 0) return false;
    *out = v;
    return true;
}

static int parse_args(int argc, char **argv, probe_t *p, const char **url, double *seconds) {
    long after = 0;
    *url = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            if (*url) return -1;
            *url = a;
            continue;
        }
        if (i + 1 >= argc) return -1;
        const char *v = argv[++i];
        char *text = NULL;
        if (strcmp(a, "--subscribe") == 0) text = symbol_message("subscribe", v);
        else if (strcmp(a, "--unsubscribe") == 0) text = symbol_message("unsubscribe", v);
        else if (strcmp(a, "--send") == 0) text = strdup(v);
        else if (strcmp(a, "--after") == 0) {
            if (!parse_long(v, &after)) return -1;
            continue;
        } else if (strcmp(a, "--frames") == 0) {
            if (!parse_long(v, &p->frames_max)) return -1;
            continue;
        } else if (strcmp(a, "--trades") == 0) {
            if (!parse_long(v, &p->trades_max)) return -1;
            continue;
        } else if (strcmp(a, "--seconds") == 0) {
            char *end;
            *seconds = strtod(v, &end);
            if (end == v || *end || !(*seconds > 0) || *seconds > 86400) return -1;
            continue;
        } else {
            return -1;
        }
        if (!text) return -1;
        outmsg_t *no = realloc(p->out, (p->nout + 1) * sizeof(*no));
        if (!no) {
            free(text);
            return -1;
        }
        p->out = no;
        p->out[p->nout++] = (outmsg_t){.text = text, .after = after};
    }
    return *url ? 0 : -1;
}

static void probe_free(probe_t *p) {
    for (size_t i = 0; i < p->nout; i++) free(p->out[i].text);
    free(p->out);
    free(p->rx);
}

static int run(probe_t *p, const char *url_arg, double seconds) {
    char *url = strdup(url_arg);
    if (!url) return 2;
    const char *prot, *address, *path;
    int port;
    if (lws_parse_uri(url, &prot, &address, &port, &path) || strcmp(prot, "ws") != 0) {
        fprintf(stderr, "ws-probe: bad URL '%s' (ws://HOST:PORT/PATH)\n", url_arg);
        free(url);
        return 2;
    }
    char *fullpath = malloc(strlen(path) + 2);
    if (!fullpath) {
        free(url);
        return 2;
    }
    snprintf(fullpath, strlen(path) + 2, "/%s", path);

    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = PROTOCOLS;
    info.user = p;
    p->ctx = lws_create_context(&info);
    int rc = 1;
    if (p->ctx) {
        struct lws_client_connect_info ci;
        memset(&ci, 0, sizeof(ci));
        ci.context = p->ctx;
        ci.address = address;
        ci.port = port;
        ci.path = fullpath;
        ci.host = address;
        ci.origin = address;
        ci.pwsi = &p->wsi;
        p->deadline_us = mono_us() + (int64_t)(seconds * 1e6);
        if (!lws_client_connect_via_info(&ci) && !p->done) {
            fprintf(stderr, "ws-probe: cannot connect to %s\n", url_arg);
            finish(p, 1);
        }
        lws_sul_schedule(p->ctx, 0, &p->tick, on_tick, 50000);
        while (!p->done && mono_us() < p->deadline_us && lws_service(p->ctx, 0) >= 0) {
        }
        if (!p->done) finish(p, 0); /* --seconds ran out */
        if (p->wsi) {
            lws_callback_on_writable(p->wsi); /* close normally */
            int64_t until = mono_us() + 1000000;
            while (p->wsi && mono_us() < until && lws_service(p->ctx, 0) >= 0) {
            }
        }
        rc = p->rc;
        lws_sul_cancel(&p->tick);
        lws_context_destroy(p->ctx);
    } else {
        fprintf(stderr, "ws-probe: cannot create the websocket context\n");
    }
    free(fullpath);
    free(url);
    return rc;
}

int main(int argc, char **argv) {
    probe_t p;
    memset(&p, 0, sizeof(p));
    const char *url;
    double seconds = 10;
    signal(SIGPIPE, SIG_IGN);
    if (parse_args(argc, argv, &p, &url, &seconds)) {
        usage();
        probe_free(&p);
        return 2;
    }
    int rc = run(&p, url, seconds);
    probe_free(&p);
    return rc;
}
