/*
 * kafka-embedded - a Kafka-protocol broker cluster for tests and local runs:
 * librdkafka's mock cluster, in its own process so it outlives worker
 * restarts.
 *
 *   kafka-embedded [--brokers N] [--topic NAME[:PARTITIONS[:REPLICATION]]]...
 *                  [--bootstrap-file FILE] [--control FIFO]
 *
 * Prints the bootstrap list on stdout (and writes it to FILE when asked),
 * then runs until SIGINT or SIGTERM. Data lives in memory; each partition's
 * log is capped by the mock (old records age out like size-based retention).
 *
 * --control FIFO: a named pipe (made when missing) read for fault-injection
 * commands, one a line (tests/it_faults.sh; docs/faults.md):
 *   down ID                broker ID (1..N) closes its connections and refuses
 *                          new ones (rd_kafka_mock_broker_set_down)
 *   up ID                  broker ID serves again (rd_kafka_mock_broker_set_up)
 *   errors APIKEY ERR CNT  the next CNT requests of that API (0 Produce,
 *                          1 Fetch, 8 OffsetCommit, ...) fail with Kafka error
 *                          code ERR (rd_kafka_mock_push_request_errors_array)
 * Each command is acknowledged on stderr ("control: ..."), a bad one named.
 */
#include "kafka.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(void) {
    fprintf(stderr, "usage: kafka-embedded [--brokers N] [--topic NAME[:PARTITIONS[:REPLICATION]]]... "
                    "[--bootstrap-file FILE] [--control FIFO]\n");
}

/* One --control command; 0 done, -1 not understood. */
static int control(rd_kafka_mock_cluster_t *mc, const char *line) {
    int id, key, code, cnt;
    char extra;
    rd_kafka_resp_err_t rc;
    if (sscanf(line, "down %d %c", &id, &extra) == 1) {
        rc = rd_kafka_mock_broker_set_down(mc, id);
    } else if (sscanf(line, "up %d %c", &id, &extra) == 1) {
        rc = rd_kafka_mock_broker_set_up(mc, id);
    } else if (sscanf(line, "errors %d %d %d %c", &key, &code, &cnt, &extra) == 3 && key >= 0 &&
               cnt >= 1 && cnt <= 100000) {
        rd_kafka_resp_err_t *errs = malloc(sizeof(*errs) * (size_t)cnt);
        if (!errs) return -1;
        for (int i = 0; i < cnt; i++) errs[i] = (rd_kafka_resp_err_t)code;
        rd_kafka_mock_push_request_errors_array(mc, (int16_t)key, (size_t)cnt, errs);
        free(errs);
        rc = RD_KAFKA_RESP_ERR_NO_ERROR;
    } else {
        return -1;
    }
    if (rc) fprintf(stderr, "control: %s: %s\n", line, rd_kafka_err2str(rc));
    else fprintf(stderr, "control: %s: done\n", line);
    return 0;
}

typedef struct {
    rd_kafka_mock_cluster_t *mc;
    FILE *in;
} control_arg_t;

static void *control_thread(void *p) {
    control_arg_t *c = p;
    char line[256];
    while (fgets(line, sizeof(line), c->in)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] && control(c->mc, line) != 0)
            fprintf(stderr, "control: bad command '%s' (down ID | up ID | errors APIKEY ERR COUNT)\n", line);
    }
    return NULL;
}

static int create_topic(sl_embedded_t *e, const char *spec, int brokers) {
    char name[256];
    int partitions = 4, replication = brokers < 3 ? brokers : 3;
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (len == 0 || len >= sizeof(name)) return -1;
    memcpy(name, spec, len);
    name[len] = '\0';
    if (colon && sscanf(colon + 1, "%d:%d", &partitions, &replication) < 1) return -1;
    if (partitions < 1 || replication < 1 || replication > brokers) return -1;
    char err[512];
    if (sl_embedded_create_topic(e, name, partitions, replication, err, sizeof(err)) != 0) {
        fprintf(stderr, "kafka-embedded: %s\n", err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int brokers = 3;
    const char *bootstrap_file = NULL, *control_path = NULL;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
            brokers = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--bootstrap-file") == 0 && i + 1 < argc) {
            bootstrap_file = argv[++i];
        } else if (strcmp(argv[i], "--control") == 0 && i + 1 < argc) {
            control_path = argv[++i];
        } else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
            i++; /* created below, once the cluster is up */
        } else {
            usage();
            return 2;
        }
    }
    if (brokers < 1 || brokers > 16) {
        fprintf(stderr, "kafka-embedded: --brokers must be 1..16\n");
        return 2;
    }
    char err[512];
    sl_embedded_t *e = sl_embedded_start(brokers, err, sizeof(err));
    if (!e) {
        fprintf(stderr, "kafka-embedded: %s\n", err);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--topic") != 0) continue;
        if (create_topic(e, argv[++i], brokers) != 0) {
            fprintf(stderr, "kafka-embedded: bad --topic '%s' (NAME[:PARTITIONS[:REPLICATION]])\n",
                    argv[i]);
            sl_embedded_stop(e);
            return 2;
        }
    }
    const char *bs = sl_embedded_bootstraps(e);
    printf("%s\n", bs);
    fflush(stdout);
    if (bootstrap_file) {
        /* Written whole then renamed, so a reader never sees half a line. */
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", bootstrap_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%s\n", bs) < 0 || fclose(f) != 0 || rename(tmp, bootstrap_file) != 0) {
            fprintf(stderr, "kafka-embedded: cannot write %s\n", bootstrap_file);
            sl_embedded_stop(e);
            return 1;
        }
    }
    control_arg_t ctl = {sl_embedded_mock(e), NULL};
    if (control_path) {
        /* Opened read-write: writers come and go without an EOF here. */
        int fd = -1;
        if ((mkfifo(control_path, 0600) == 0 || errno == EEXIST) &&
            (fd = open(control_path, O_RDWR | O_CLOEXEC)) >= 0)
            ctl.in = fdopen(fd, "r");
        pthread_t t;
        if (!ctl.in || pthread_create(&t, NULL, control_thread, &ctl) != 0) {
            fprintf(stderr, "kafka-embedded: cannot read --control %s: %s\n", control_path, strerror(errno));
            if (fd >= 0 && !ctl.in) close(fd);
            sl_embedded_stop(e);
            return 1;
        }
        pthread_detach(t);
    }
    int sig = 0;
    sigwait(&set, &sig);
    sl_embedded_stop(e);
    return 0;
}
