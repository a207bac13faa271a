/*
 * rest.h - the worker's REST API (Kafka Connect's endpoint set, JSON shapes
 * and status codes; see docs/rest-api.md) over libmicrohttpd, answering
 * through a herder (herder.h).
 *
 * Worker config keys:
 *   rest.port             port to listen on (8083; 0 = any free port)
 *   rest.host             address to bind (127.0.0.1); "listeners"
 *                         ("http://host:port") is read when rest.* is unset
 *   rest.port.file        file the bound port is written to (for tests)
 *   rest.auth.token       when set, every request needs
 *                         "Authorization: Bearer <token>" (401 otherwise)
 *   rest.max.body.bytes   larger request bodies are refused (413); 1 MiB
 *   rest.rate.limit       requests per second over all clients, bursts of
 *                         as many (429 beyond); 0 = no limit; 200
 *
 * Besides Connect's endpoints, GET /metrics answers the worker's metrics in
 * Prometheus text format, with rest_requests_total and rest_errors_total
 * (answers >= 400) among them.
 */
#ifndef SLUICE_HOST_REST_H
#define SLUICE_HOST_REST_H

#include <stddef.h>
#include "herder.h"

typedef struct sl_rest sl_rest_t;

/** Binds and serves until sl_rest_stop(); rt (the worker's config,
 *  bootstrap for "kafka_cluster_id", metrics for GET /metrics) and h are
 *  not owned. NULL with err (bad key, port taken). */
sl_rest_t *sl_rest_start(const sl_runtime_t *rt, sl_herder_t *h, char *err, size_t errlen);
/** "host:port" the API listens on: the worker id in statuses. */
const char *sl_rest_worker_id(const sl_rest_t *r);
void sl_rest_stop(sl_rest_t *r);

#endif
