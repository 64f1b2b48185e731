/*
 * status.h: the HTTP status endpoint (libmicrohttpd): GET /healthz, /status
 * (JSON) and /metrics (Prometheus text), and with [viewer] enabled the 3D
 * page under /viewer/ (r3d/viewer.h), and the jobs API under /api/ (docs/api.md;
 * /status and /api/ need a bearer token). Started and stopped by the main
 * thread; requests are answered on libmicrohttpd's own thread, which only
 * reads counters and the index.
 */
#ifndef R3D_STATUS_H
#define R3D_STATUS_H

#include <stdbool.h>

#include "r3d/config.h"
#include "r3d/err.h"
#include "r3d/index.h"
#include "r3d/receive.h"
#include "r3d/worker.h"

struct status_server;

/* Listens on [http] bind/port. recv may be NULL until the receiver is up
 * (then /healthz answers 503). On success the caller owns *out. */
bool status_start(struct r3d_err *err, const struct config *cfg, struct index *idx,
		  struct status_server **out);
/* Without a [token] section in cfg: makes (once) or reads the daemon's own
 * admin token, <folder of [storage] database>/api-token (mode 0600), and
 * adds it to cfg->tokens; path receives the file's name. With tokens
 * configured it does nothing (path ""). Main thread, before status_start. */
bool status_token_default(struct r3d_err *err, struct config *cfg, char *path, size_t size);

void status_set_receiver(struct status_server *s, struct receiver *recv);
/* pool may be NULL (no per-stage times then). */
void status_set_workers(struct status_server *s, struct worker_pool *pool);
void status_stop(struct status_server *s);

/* Renders the bodies; exposed for the unit test. The caller frees the
 * result with free(). */
char *status_render_json(struct status_server *s);
char *status_render_metrics(struct status_server *s);

#endif
