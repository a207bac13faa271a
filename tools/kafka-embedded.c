/*
 * kafka-embedded - a Kafka-protocol broker cluster for tests and local runs:
 * librdkafka's mock cluster, in its own process so it outlives worker
 * restarts.
 *
 *   kafka-embedded [--brokers N] [--topic NAME[:PARTITIONS[:REPLICATION]]]...
 *                  [--bootstrap-file FILE]
 *
 * Prints the bootstrap list on stdout (and writes it to FILE when asked),
 * then runs until SIGINT or SIGTERM. Data lives in memory; each partition's
 * log is capped by the mock (old records age out like size-based retention).
 */
#include "kafka.h"
#include "log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(void) {
    fprintf(stderr, "usage: kafka-embedded [--brokers N] [--topic NAME[:PARTITIONS[:REPLICATION]]]... "
                    "[--bootstrap-file FILE]\n");
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
    const char *bootstrap_file = NULL;
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
    int sig = 0;
    sigwait(&set, &sig);
    sl_embedded_stop(e);
    return 0;
}
