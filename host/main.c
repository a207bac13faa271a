/*
 * main.c - the sluice command.
 *
 *   sluice plugins [--plugin-path DIRS] [worker.json]
 *   sluice validate worker.json connector.json [...]
 *   sluice standalone worker.json [connector.json ...]
 *   sluice distributed worker.json
 *   sluice version
 */
#include "config.h"
#include "herder.h"
#include "log.h"
#include "rest.h"

#include <curl/curl.h>
#include "worker.h"

#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: sluice <command> [args]\n"
            "  plugins [--plugin-path DIRS] [worker.json]   list plugins found, refusals on stderr\n"
            "  validate worker.json connector.json...       check connector configs, run nothing\n"
            "  standalone worker.json [connector.json...]   run connectors (and the REST API)\n"
            "                                               until SIGINT/SIGTERM\n"
            "  distributed worker.json                      join the cluster of its group.id\n"
            "                                               (configs, statuses in Kafka topics)\n"
            "  version                                      worker and ABI version\n");
}

static char *exe_dir(void) {
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (n <= 0) return strdup(".");
    path[n] = '\0';
    return strdup(dirname(path));
}

static sl_props_t *load_worker(const char *path) {
    char err[1024];
    sl_props_t *p = sl_worker_config_load(path, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "sluice: %s\n", err);
        return NULL;
    }
    if (sl_props_resolve(p, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice: %s: %s\n", path, err);
        sl_props_free(p);
        return NULL;
    }
    return p;
}

static void print_refusal(void *arg, const char *path, const char *reason) {
    int *refused = arg;
    (*refused)++;
    fprintf(stderr, "sluice: plugin %s refused: %s\n", path, reason);
}

static int cmd_plugins(int argc, char **argv) {
    const char *path_arg = NULL, *worker_file = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--plugin-path") == 0 && i + 1 < argc)
            path_arg = argv[++i];
        else
            worker_file = argv[i];
    }
    char *dir = exe_dir(), *path = NULL;
    sl_props_t *worker = worker_file ? load_worker(worker_file) : NULL;
    if (worker_file && !worker) {
        free(dir);
        return 1;
    }
    const char *wp = worker ? sl_props_get(worker, "plugin.path") : NULL;
    path = strdup(path_arg ? path_arg : wp ? wp : "");
    if (!*path) {
        free(path);
        path = sl_default_plugin_path(dir);
    }
    if (!path) {
        fprintf(stderr, "sluice: out of memory\n");
        sl_props_free(worker);
        free(dir);
        return 1;
    }
    int refused = 0;
    sl_registry_t *r = sl_registry_scan(path, sl_host_api(), print_refusal, &refused);
    printf("%-24s %-10s %-10s %-5s %s\n", "NAME", "KIND", "VERSION", "ABI", "FILE");
    for (size_t i = 0; i < sl_registry_count(r); i++) {
        const sl_plugin_t *p = sl_registry_at(r, i);
        printf("%-24s %-10s %-10s %u.%-3u %s\n", p->desc->name, sl_plugin_kind_name(p->desc->kind),
               p->desc->version, p->desc->abi_major, p->desc->abi_minor, p->path);
    }
    sl_registry_free(r);
    sl_props_free(worker);
    free(path);
    free(dir);
    return 0;
}

/* Loads worker + connectors into a new worker; NULL after printing why. */
static sl_worker_t *build_worker(int argc, char **argv, int dry_run, int *problems) {
    sl_props_t *props = load_worker(argv[0]);
    if (!props) return NULL;
    char err[4096], *dir = exe_dir();
    sl_worker_t *w = sl_worker_new(props, dir, dry_run, err, sizeof(err));
    free(dir);
    if (!w) {
        fprintf(stderr, "sluice: %s: %s\n", argv[0], err);
        return NULL;
    }
    for (int i = 1; i < argc; i++) {
        char *name = NULL;
        sl_props_t *cfg = NULL;
        if (sl_connector_config_load(argv[i], &name, &cfg, err, sizeof(err)) != 0 ||
            sl_worker_add_connector(w, name, cfg, err, sizeof(err)) != 0) {
            fprintf(stderr, "sluice: connector %s refused: %s\n", name ? name : argv[i], err);
            (*problems)++;
        }
        free(name);
        sl_props_free(cfg);
    }
    return w;
}

static int cmd_validate(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    int problems = 0;
    sl_worker_t *w = build_worker(argc, argv, 1, &problems);
    if (!w) return 1;
    if (problems == 0) printf("%d connector config(s) valid\n", argc - 1);
    sl_worker_free(w);
    return problems ? 1 : 0;
}

/* The REST side of a worker: the herder (standalone: REST-submitted
 * connectors from config.storage.file.filename; distributed: the cluster's
 * topics) and the API. */
static int start_rest(sl_worker_t *w, int distributed, sl_herder_t **h, sl_rest_t **rest) {
    char err[1024];
    const sl_runtime_t *rt = sl_worker_runtime(w);
    if (!distributed)
        *h = sl_standalone_herder_new(w, sl_props_get(rt->worker, "config.storage.file.filename"),
                                      err, sizeof(err));
    /* distributed: the worker starts first, so connectors assigned to it
     * start as soon as the herder has them */
    if ((distributed || *h) && sl_worker_start(w, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return -1;
    }
    if (distributed) *h = sl_distributed_herder_new(w, err, sizeof(err));
    if (!*h) {
        fprintf(stderr, "sluice: %s\n", err);
        return -1;
    }
    *rest = sl_rest_start(rt, *h, err, sizeof(err));
    if (!*rest) {
        fprintf(stderr, "sluice: %s\n", err);
        return -1;
    }
    return 0;
}

static int cmd_run(int argc, char **argv, int distributed) {
    if (argc < 1 || (distributed && argc != 1)) {
        usage(stderr);
        return 2;
    }
    /* Every thread inherits this mask; only the main thread takes signals. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    signal(SIGINT, SIG_DFL); /* a parent may have left them ignored */
    signal(SIGTERM, SIG_DFL);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int problems = 0;
    sl_worker_t *w = build_worker(argc, argv, 0, &problems);
    if (!w) return 1;
    sl_herder_t *h = NULL;
    sl_rest_t *rest = NULL;
    int rc = 0;
    if (problems || start_rest(w, distributed, &h, &rest) != 0) {
        rc = 1;
        goto out;
    }
    sl_worker_lock(w);
    size_t n = sl_worker_count(w);
    sl_worker_unlock(w);
    SL_INFO("worker", "%s worker running %zu connector(s); Ctrl-C to stop",
            distributed ? "distributed" : "standalone", n);
    struct timespec tick = {1, 0};
    int sig;
    while ((sig = sigtimedwait(&set, NULL, &tick)) < 0) sl_worker_report(w);
    SL_INFO("worker", "%s: stopping (flush, commit)", sig == SIGINT ? "SIGINT" : "SIGTERM");
    sl_rest_stop(rest); /* no REST change while the worker stops */
    rest = NULL;
    if (distributed && h) { /* leaves the group: the others take over now */
        h->ops->free(h);
        h = NULL;
    }
    sl_worker_stop(w);
    sl_worker_report(w);
    SL_INFO("worker", "stopped");
out:
    sl_rest_stop(rest);
    sl_worker_free(w);
    if (h) h->ops->free(h);
    return rc;
}

int main(int argc, char **argv) {
    sl_log_init();
    /* before any thread: the REST API forwards with libcurl (rest.c), and
     * sink-snowflake uses it too */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    int rc;
    if (strcmp(cmd, "plugins") == 0)
        rc = cmd_plugins(argc - 2, argv + 2);
    else if (strcmp(cmd, "validate") == 0)
        rc = cmd_validate(argc - 2, argv + 2);
    else if (strcmp(cmd, "standalone") == 0)
        rc = cmd_run(argc - 2, argv + 2, 0);
    else if (strcmp(cmd, "distributed") == 0)
        rc = cmd_run(argc - 2, argv + 2, 1);
    else if (strcmp(cmd, "version") == 0) {
        printf("sluice %s (plugin ABI %d.%d)\n", SLUICE_VERSION, SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR);
        rc = 0;
    } else if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0) {
        usage(stdout);
        rc = 0;
    } else {
        fprintf(stderr, "sluice: unknown command '%s'\n", cmd);
        usage(stderr);
        rc = 2;
    }
    curl_global_cleanup();
    sl_log_shutdown();
    return rc;
}
