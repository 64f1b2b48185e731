/*
 * status.c: /healthz, /status and /metrics over libmicrohttpd (see
 * r3d/status.h), hands /viewer/ to the 3D page (r3d/viewer.h) and /api/ to
 * the jobs API (api.c). /status and /api/ need a bearer token ([token NAME],
 * or the daemon's own api-token file); /healthz, /metrics and the 3D page
 * (its link is its own capability) do not. Counters come from the receiver
 * (atomics) and the index (its own lock); nothing here holds patient data.
 */
#include "r3d/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "api.h"
#include "r3d/log.h"
#include "r3d/util.h"
#include "r3d/viewer.h"

#define STATUS_METRICS_MAX 32768
#define STATUS_RECENT_JOBS 20   /* jobs listed with their state and reason */
#define STATUS_TOKEN_BYTES 32    /* random bytes of the daemon's own token (64 hex digits) */
#define STATUS_LOG_PATH_MAX 120  /* characters of a request path in a log line */

#define STATUS_PEM_MAX (1 << 20)

struct status_server {
	const struct config *cfg;
	struct index *idx;
	_Atomic(struct receiver *) recv;
	pthread_mutex_t workers_lock;   /* held while the pool pointer is used */
	struct worker_pool *workers;
	struct MHD_Daemon *mhd;
	double started_mono;
	struct addrinfo *addr;
	struct api_tokens tokens;
	char *tls_cert, *tls_key;       /* PEM text for HTTPS, or NULL */
};

/* One request's state between libmicrohttpd's calls: the body read so far. */
struct request {
	char *body;
	size_t len;
	bool too_big;
};

struct snapshot {
	struct index_counts idx;
	bool idx_ok;
	struct receive_stats recv;
	bool recv_up;
	struct worker_stats work;
	struct notification_counts webhook;
	struct outbox_counts outbox[CONFIG_MAX_DESTINATIONS];
	int noutbox;
	int64_t storage_free_bytes;
	int64_t viewer_links_active;
	double uptime_s;
	struct index_job_row recent[STATUS_RECENT_JOBS];
	int nrecent;
};

static void snapshot_take(struct status_server *s, struct snapshot *snap)
{
	struct r3d_err err;
	struct receiver *recv = atomic_load(&s->recv);
	struct statvfs vfs;
	const char *dir;

	memset(snap, 0, sizeof(*snap));
	snap->uptime_s = clock_mono_s() - s->started_mono;
	snap->idx_ok = index_counts(&err, s->idx, &snap->idx);
	(void)index_notification_counts(&err, s->idx, &snap->webhook);
	snap->noutbox = index_outbox_counts(&err, s->idx, snap->outbox, CONFIG_MAX_DESTINATIONS);
	if (snap->noutbox < 0)
		snap->noutbox = 0;
	snap->nrecent = index_jobs_recent(&err, s->idx, snap->recent, STATUS_RECENT_JOBS);
	if (snap->nrecent < 0)
		snap->nrecent = 0;
	if (s->cfg->viewer_enabled &&
	    !index_viewer_link_count(&err, s->idx, clock_wall_s(), &snap->viewer_links_active))
		snap->viewer_links_active = 0;
	if (recv != NULL) {
		receiver_stats(recv, &snap->recv);
		snap->recv_up = snap->recv.listening;
	}
	pthread_mutex_lock(&s->workers_lock);
	if (s->workers != NULL)
		worker_pool_stats(s->workers, &snap->work);
	pthread_mutex_unlock(&s->workers_lock);
	dir = recv != NULL ? receiver_storage_dir(recv) : s->cfg->storage_dir;
	if (statvfs(dir, &vfs) == 0)
		snap->storage_free_bytes = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
	else
		snap->storage_free_bytes = -1;
}

char *status_render_json(struct status_server *s)
{
	struct snapshot snap;
	json_t *root, *jobs, *stages, *dests, *outbox;
	char *out;
	int64_t totals[OUTBOX_NSTATES] = {0};

	snapshot_take(s, &snap);
	dests = json_array();
	for (int i = 0; i < snap.noutbox; i++) {
		json_t *d = json_pack("{s:s}", "name", snap.outbox[i].destination);
		for (int k = 0; k < OUTBOX_NSTATES; k++) {
			json_object_set_new(d, outbox_state_name((enum outbox_state)k),
					    json_integer(snap.outbox[i].n[k]));
			totals[k] += snap.outbox[i].n[k];
		}
		json_array_append_new(dests, d);
	}
	outbox = json_object();
	for (int k = 0; k < OUTBOX_NSTATES; k++)
		json_object_set_new(outbox, outbox_state_name((enum outbox_state)k), json_integer(totals[k]));
	stages = json_object();
	for (int i = 0; i < PIPELINE_NSTAGES; i++)
		json_object_set_new(stages, pipeline_stage_name((enum pipeline_stage)i),
				    json_real(snap.work.stage_seconds[i]));
	/* The structure catalogue, with what became of each entry since start. */
	json_t *structures = json_array();
	for (size_t i = 0; i < s->cfg->structures.n; i++) {
		const struct structure_def *d = &s->cfg->structures.def[i];
		json_array_append_new(structures,
				      json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:I}", "key", d->key,
						"label", d->label, "source",
						structure_source_name(d->source), "enabled",
						d->enabled, "made",
						(json_int_t)snap.work.structures_made[i], "skipped",
						(json_int_t)snap.work.structures_skipped[i],
						"decimation_fallbacks",
						(json_int_t)snap.work.decimation_fallbacks[i]));
	}
	jobs = json_object();
	for (int i = 0; i < JOB_NSTATES; i++)
		json_object_set_new(jobs, job_state_name((enum job_state)i),
				    json_integer(snap.idx.jobs[i]));
	/* What happened last, and why: a failed import names its reason here. */
	json_t *recent = json_array();
	for (int i = 0; i < snap.nrecent; i++) {
		const struct index_job_row *r = &snap.recent[i];
		json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:f}", "id", (json_int_t)r->id, "state",
				      r->state, "kind", r->kind, "series_uid", r->series_uid,
				      "updated_at", r->updated_at);
		if (r->source_series_uid[0] != '\0')
			json_object_set_new(j, "source_series_uid", json_string(r->source_series_uid));
		json_object_set_new(j, "route", json_string(r->route));
		/* the study's series: chosen or why not */
		json_t *sel = r->selection[0] != '\0' ? json_loads(r->selection, 0, NULL) : NULL;
		if (sel != NULL)
			json_object_set_new(j, "selection", sel);
		if (r->reason[0] != '\0')
			json_object_set_new(j, "reason", json_string(r->reason));
		json_array_append_new(recent, j);
	}
	root = json_pack("{s:s, s:s, s:f, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:I, s:o, s:o,"
			 " s:o, s:o, s:o, s:o, s:I,"
			 " s:{s:I, s:I, s:I, s:I}}",
			 "version", R3D_VERSION,
			 "ae_title", s->cfg->ae_title,
			 "uptime_s", snap.uptime_s,
			 "receiver_up", snap.recv_up,
			 "database_up", snap.idx_ok,
			 "associations_open", (json_int_t)snap.recv.associations_open,
			 "associations_total", (json_int_t)snap.recv.associations_total,
			 "associations_rejected", (json_int_t)snap.recv.associations_rejected,
			 "tls_handshake_failures", (json_int_t)snap.recv.tls_handshake_failures,
			 "studies", (json_int_t)snap.idx.studies,
			 "series", (json_int_t)snap.idx.series,
			 "series_ineligible", (json_int_t)snap.idx.series_ineligible,
			 "instances", (json_int_t)snap.idx.instances,
			 "stored_bytes", (json_int_t)snap.idx.bytes,
			 "jobs", jobs,
			 "recent_jobs", recent,
			 "jobs_finished_since_start", (json_int_t)snap.work.jobs_finished,
			 "stage_seconds_total", stages,
			 "structures", structures,
			 "outbox", outbox,
			 "webhook", json_pack("{s:I, s:I, s:I, s:I, s:I}",
					      "pending", (json_int_t)snap.webhook.pending,
					      "delivered", (json_int_t)snap.webhook.delivered,
					      "failed", (json_int_t)snap.webhook.failed,
					      "attempts", (json_int_t)snap.webhook.attempts,
					      "attempts_failed", (json_int_t)snap.webhook.attempts_failed),
			 "viewer", json_pack("{s:b, s:I}", "enabled", s->cfg->viewer_enabled,
					     "links_active", (json_int_t)snap.viewer_links_active),
			 "destinations", dests,
			 "storage_free_bytes", (json_int_t)snap.storage_free_bytes,
			 "received",
			 "instances_ok", (json_int_t)snap.recv.instances_stored,
			 "instances_failed", (json_int_t)snap.recv.instances_failed,
			 "echoes", (json_int_t)snap.recv.echoes,
			 "bytes", (json_int_t)snap.recv.bytes_received);
	if (root == NULL)
		return NULL;
	out = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	json_decref(root);
	return out;
}

/* Appends one line to the metrics buffer; silently stops at the end. */
static void metric(char *buf, size_t *len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void metric(char *buf, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len >= STATUS_METRICS_MAX)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, STATUS_METRICS_MAX - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len += (size_t)n;
}

#define GAUGE(name, help, value)                                                                \
	metric(buf, &len, "# HELP recon3d_" name " " help "\n# TYPE recon3d_" name " gauge\n"   \
			  "recon3d_" name " %lld\n", (long long)(value))
#define COUNTER(name, help, value)                                                              \
	metric(buf, &len, "# HELP recon3d_" name " " help "\n# TYPE recon3d_" name " counter\n" \
			  "recon3d_" name " %lld\n", (long long)(value))

char *status_render_metrics(struct status_server *s)
{
	struct snapshot snap;
	char *buf = malloc(STATUS_METRICS_MAX + 1);
	size_t len = 0;

	if (buf == NULL)
		return NULL;
	snapshot_take(s, &snap);
	metric(buf, &len, "# HELP recon3d_info Version of this node.\n# TYPE recon3d_info gauge\n"
			  "recon3d_info{version=\"%s\"} 1\n", R3D_VERSION);
	metric(buf, &len, "# HELP recon3d_uptime_seconds Seconds since start.\n"
			  "# TYPE recon3d_uptime_seconds gauge\nrecon3d_uptime_seconds %.3f\n",
	       snap.uptime_s);
	GAUGE("receiver_up", "1 while the DICOM listener accepts associations.", snap.recv_up);
	GAUGE("database_up", "1 while the index answers.", snap.idx_ok);
	GAUGE("associations_open", "Associations being served.", snap.recv.associations_open);
	COUNTER("associations_total", "Associations accepted.", snap.recv.associations_total);
	COUNTER("associations_rejected_total", "Associations rejected.",
		snap.recv.associations_rejected);
	COUNTER("dicom_tls_handshake_failures_total", "DICOM TLS handshakes that failed on the TLS listener.",
		snap.recv.tls_handshake_failures);
	GAUGE("studies", "Studies in the index.", snap.idx.studies);
	GAUGE("series", "Series in the index.", snap.idx.series);
	GAUGE("series_ineligible", "Series the pipeline cannot use.", snap.idx.series_ineligible);
	GAUGE("instances", "Instances in the index.", snap.idx.instances);
	GAUGE("stored_bytes", "Bytes of indexed instances.", snap.idx.bytes);
	metric(buf, &len, "# HELP recon3d_jobs Jobs by state.\n# TYPE recon3d_jobs gauge\n");
	for (int i = 0; i < JOB_NSTATES; i++)
		metric(buf, &len, "recon3d_jobs{state=\"%s\"} %lld\n",
		       job_state_name((enum job_state)i), (long long)snap.idx.jobs[i]);
	GAUGE("storage_free_bytes", "Free bytes in the storage folder.", snap.storage_free_bytes);
	COUNTER("jobs_finished_total", "Jobs finished since start, any outcome.", snap.work.jobs_finished);
	metric(buf, &len, "# HELP recon3d_webhook_messages Webhook messages by state.\n"
			  "# TYPE recon3d_webhook_messages gauge\n"
			  "recon3d_webhook_messages{state=\"pending\"} %lld\n"
			  "recon3d_webhook_messages{state=\"delivered\"} %lld\n"
			  "recon3d_webhook_messages{state=\"failed\"} %lld\n",
	       (long long)snap.webhook.pending, (long long)snap.webhook.delivered,
	       (long long)snap.webhook.failed);
	GAUGE("viewer_links_active", "3D page links that have not expired.", snap.viewer_links_active);
	COUNTER("webhook_attempts_total", "Webhook delivery attempts.", snap.webhook.attempts);
	COUNTER("webhook_attempts_failed_total", "Webhook attempts without a 2xx answer.",
		snap.webhook.attempts_failed);
	metric(buf, &len, "# HELP recon3d_outbox Result objects per destination and state "
			  "(pending: waiting or being retried).\n# TYPE recon3d_outbox gauge\n");
	for (int i = 0; i < snap.noutbox; i++) {
		for (int k = 0; k < OUTBOX_NSTATES; k++)
			metric(buf, &len, "recon3d_outbox{destination=\"%s\",state=\"%s\"} %lld\n",
			       snap.outbox[i].destination, outbox_state_name((enum outbox_state)k),
			       (long long)snap.outbox[i].n[k]);
	}
	metric(buf, &len, "# HELP recon3d_stage_seconds_total Time spent per pipeline stage.\n"
			  "# TYPE recon3d_stage_seconds_total counter\n");
	for (int i = 0; i < PIPELINE_NSTAGES; i++)
		metric(buf, &len, "recon3d_stage_seconds_total{stage=\"%s\"} %.3f\n",
		       pipeline_stage_name((enum pipeline_stage)i), snap.work.stage_seconds[i]);
	metric(buf, &len, "# HELP recon3d_structures_total Structures of the catalogue meshed "
			  "(made) or not (skipped) since start.\n# TYPE recon3d_structures_total counter\n");
	for (size_t i = 0; i < s->cfg->structures.n; i++) {
		const char *key = s->cfg->structures.def[i].key;   /* [a-z0-9_]: a safe label */
		metric(buf, &len, "recon3d_structures_total{structure=\"%s\",outcome=\"made\"} %lld\n"
				  "recon3d_structures_total{structure=\"%s\",outcome=\"skipped\"} %lld\n",
		       key, (long long)snap.work.structures_made[i], key,
		       (long long)snap.work.structures_skipped[i]);
	}
	metric(buf, &len, "# HELP recon3d_decimation_fallbacks_total Decimations that did not keep "
			  "the budget (kept undecimated or over budget), by structure.\n"
			  "# TYPE recon3d_decimation_fallbacks_total counter\n");
	for (size_t i = 0; i < s->cfg->structures.n; i++)
		metric(buf, &len, "recon3d_decimation_fallbacks_total{structure=\"%s\"} %lld\n",
		       s->cfg->structures.def[i].key, (long long)snap.work.decimation_fallbacks[i]);
	metric(buf, &len, "# HELP recon3d_decimation_error_exceeded_total Decimations further from "
			  "the undecimated surface than [mesh] max_decimation_error_mm, by structure.\n"
			  "# TYPE recon3d_decimation_error_exceeded_total counter\n");
	for (size_t i = 0; i < s->cfg->structures.n; i++)
		metric(buf, &len, "recon3d_decimation_error_exceeded_total{structure=\"%s\"} %lld\n",
		       s->cfg->structures.def[i].key,
		       (long long)snap.work.decimation_error_exceeded[i]);
	COUNTER("instances_received_total", "C-STORE requests answered success.",
		snap.recv.instances_stored);
	COUNTER("instances_failed_total", "C-STORE requests answered with a failure.",
		snap.recv.instances_failed);
	COUNTER("echoes_total", "C-ECHO requests answered.", snap.recv.echoes);
	COUNTER("received_bytes_total", "Bytes of instances stored.", snap.recv.bytes_received);
	buf[len < STATUS_METRICS_MAX ? len : STATUS_METRICS_MAX] = '\0';
	return buf;
}

static enum MHD_Result reply_with(struct MHD_Connection *conn, unsigned code, const char *type,
				  char *body, const char *header, const char *value)
{
	struct MHD_Response *rsp;
	enum MHD_Result ret;

	if (body == NULL)
		return MHD_NO;
	rsp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (rsp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(rsp, "Content-Type", type);
	MHD_add_response_header(rsp, "Cache-Control", "no-store");
	if (header != NULL && value != NULL)
		MHD_add_response_header(rsp, header, value);
	ret = MHD_queue_response(conn, code, rsp);
	MHD_destroy_response(rsp);
	return ret;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type,
			     char *body)
{
	return reply_with(conn, code, type, body, NULL, NULL);
}

/* The peer's numeric address, for a log line. */
static void peer_address(struct MHD_Connection *conn, char *out, size_t size)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;
	socklen_t len = sa != NULL && sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
								  sizeof(struct sockaddr_in);

	snprintf(out, size, "unknown");
	if (sa != NULL && getnameinfo(sa, len, out, (socklen_t)size, NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(out, size, "unknown");
}

/* A request path as a log line may carry it: printable ASCII, cut short. */
static void path_for_log(const char *url, char *out, size_t size)
{
	size_t n = 0;

	for (; url[n] != '\0' && n + 1 < size && n < STATUS_LOG_PATH_MAX; n++)
		out[n] = url[n] > 0x20 && url[n] < 0x7f && url[n] != '"' ? url[n] : '?';
	out[n] = '\0';
}

/* 401 for a request without a valid token: one warning line with the peer
 * and the path, never what was presented. */
static enum MHD_Result unauthorized(struct MHD_Connection *conn, const char *method,
				    const char *url, enum api_auth auth)
{
	char peer[64], path[STATUS_LOG_PATH_MAX + 1];
	bool presented = auth == API_AUTH_INVALID;

	peer_address(conn, peer, sizeof(peer));
	path_for_log(url, path, sizeof(path));
	log_warn("http", "unauthorized request peer=%s method=%.8s path=%s reason=\"%s\"", peer,
		 method, path, presented ? "token not valid" : "no bearer token");
	return reply_with(conn, MHD_HTTP_UNAUTHORIZED, "application/json",
			  api_error_body(presented ? "the bearer token is not valid" :
						     "this needs a bearer token (Authorization: Bearer TOKEN)"),
			  MHD_HTTP_HEADER_WWW_AUTHENTICATE,
			  presented ? "Bearer realm=\"recon3d\", error=\"invalid_token\"" :
				      "Bearer realm=\"recon3d\"");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (r != NULL) {
		free(r->body);
		free(r);
		*con_cls = NULL;
	}
}

static bool needs_token(const char *url)
{
	return strcmp(url, "/status") == 0 || strcmp(url, "/api") == 0 || strncmp(url, "/api/", 5) == 0;
}

static enum MHD_Result answer_api(struct status_server *s, struct MHD_Connection *conn,
				  const char *url, const char *method, const struct request *r,
				  bool admin)
{
	struct api_reply rep;
	struct api_request req = {
		.method = method,
		.path = url,
		.state = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "state"),
		.limit = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit"),
		.body = r != NULL ? r->body : NULL,
		.body_len = r != NULL ? r->len : 0,
		.admin = admin,
	};

	if (strcmp(url, "/api") == 0)
		req.path = "/api/";
	api_handle(s->cfg, s->idx, &req, &rep);
	return reply_with(conn, rep.status, "application/json", rep.body,
			  rep.allow != NULL ? MHD_HTTP_HEADER_ALLOW : NULL, rep.allow);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct status_server *s = cls;
	struct request *r = *con_cls;
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	(void)version;
	if (needs_token(url)) {
		/* The token is checked when the headers are in, before any body is read. */
		enum api_auth auth = API_AUTH_NONE;
		if (r == NULL) {
			auth = api_tokens_check(&s->tokens, MHD_lookup_connection_value(
								     conn, MHD_HEADER_KIND,
								     MHD_HTTP_HEADER_AUTHORIZATION));
			if (auth == API_AUTH_NONE || auth == API_AUTH_INVALID)
				return unauthorized(conn, method, url, auth);
			if (!get) {
				/* Read the body first; answer once it is all in. */
				r = calloc(1, sizeof(*r));
				if (r == NULL)
					return MHD_NO;
				*con_cls = r;
				return MHD_YES;
			}
		} else if (*upload_size > 0) {
			if (!r->too_big && r->len + *upload_size <= API_BODY_MAX) {
				char *p = realloc(r->body, r->len + *upload_size + 1);
				if (p == NULL)
					return MHD_NO;
				memcpy(p + r->len, upload, *upload_size);
				r->body = p;
				r->len += *upload_size;
				r->body[r->len] = '\0';
			} else {
				r->too_big = true;
			}
			*upload_size = 0;
			return MHD_YES;
		} else {
			/* The body is in: the token was checked on the first call. */
			auth = api_tokens_check(&s->tokens, MHD_lookup_connection_value(
								     conn, MHD_HEADER_KIND,
								     MHD_HTTP_HEADER_AUTHORIZATION));
		}
		if (r != NULL && r->too_big)
			return reply(conn, MHD_HTTP_CONTENT_TOO_LARGE, "application/json",
				     api_error_body("the body is larger than 64 KiB"));
		if (strcmp(url, "/status") == 0) {
			if (!get)
				return reply_with(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json",
						  api_error_body("/status takes GET, HEAD"),
						  MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
			return reply(conn, MHD_HTTP_OK, "application/json", status_render_json(s));
		}
		return answer_api(s, conn, url, method, r, auth == API_AUTH_ADMIN);
	}
	(void)upload;
	if (!get)
		return reply_with(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
				  strdup("method not allowed\n"), MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (strcmp(url, "/healthz") == 0) {
		struct r3d_err err;
		struct receiver *recv = atomic_load(&s->recv);
		struct receive_stats st = {0};
		if (recv != NULL)
			receiver_stats(recv, &st);
		if (!st.listening)
			return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain",
				     strdup("receiver not listening\n"));
		if (!index_ping(&err, s->idx)) {
			char msg[300];
			snprintf(msg, sizeof(msg), "database: %s\n", err.msg);
			return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", strdup(msg));
		}
		return reply(conn, MHD_HTTP_OK, "text/plain", strdup("ok\n"));
	}
	if (strcmp(url, "/metrics") == 0)
		return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4", status_render_metrics(s));
	/* The 3D page: its link is its capability (surgeons follow it from the webhook). */
	if (strncmp(url, "/viewer/", 8) == 0)
		return viewer_answer(s->cfg, s->idx, conn, url + 8);
	return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", strdup("not found\n"));
}

/* A certificate or key file's text, for libmicrohttpd (which takes PEM in
 * memory), or NULL with err set. */
static char *read_pem(struct r3d_err *err, const char *what, const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0;

	if (f == NULL) {
		r3d_err_set(err, R3D_EIO, "%s: cannot read '%s': %s", what, path, strerror(errno));
		return NULL;
	}
	buf = malloc(STATUS_PEM_MAX + 1);
	if (buf != NULL)
		n = fread(buf, 1, STATUS_PEM_MAX + 1, f);
	fclose(f);
	if (buf == NULL || n == 0 || n > STATUS_PEM_MAX) {
		r3d_err_set(err, R3D_EINVAL, "%s: '%s' is empty or larger than %d bytes", what, path,
			    STATUS_PEM_MAX);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

bool status_start(struct r3d_err *err, const struct config *cfg, struct index *idx,
		  struct status_server **out)
{
	struct status_server *s;
	struct addrinfo hints;
	char service[16];
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "status: out of memory");
	s->cfg = cfg;
	s->idx = idx;
	s->started_mono = clock_mono_s();
	atomic_store(&s->recv, NULL);
	pthread_mutex_init(&s->workers_lock, NULL);
	if (!api_tokens_init(err, cfg, &s->tokens)) {
		pthread_mutex_destroy(&s->workers_lock);
		free(s);
		return false;
	}
	if (cfg->http_port == 0) {
		*out = s;   /* no endpoint, the renderers still work */
		return true;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(service, sizeof(service), "%d", cfg->http_port);
	rc = getaddrinfo(cfg->http_bind, service, &hints, &s->addr);
	if (rc != 0) {
		r3d_err_set(err, R3D_EINVAL, "[http] bind '%s': %s", cfg->http_bind, gai_strerror(rc));
		free(s);
		return false;
	}
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (s->addr->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	bool tls = cfg->http_tls_certificate[0] != '\0';
	if (tls) {
		/* HTTPS only, for sites that show the 3D page without a reverse proxy. */
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			r3d_err_set(err, R3D_EINVAL, "[http] tls_certificate: this libmicrohttpd has no TLS");
			goto fail_addr;
		}
		s->tls_cert = read_pem(err, "[http] tls_certificate", cfg->http_tls_certificate);
		s->tls_key = s->tls_cert != NULL ? read_pem(err, "[http] tls_private_key",
							    cfg->http_tls_private_key) : NULL;
		if (s->tls_key == NULL)
			goto fail_addr;
		flags |= MHD_USE_TLS;
	}
	struct MHD_OptionItem opts[] = {
		{MHD_OPTION_SOCK_ADDR, 0, s->addr->ai_addr},
		{MHD_OPTION_CONNECTION_TIMEOUT, 10, NULL},
		{MHD_OPTION_CONNECTION_LIMIT, 64, NULL},
		{MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL},
		{tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, s->tls_cert},
		{tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, s->tls_key},
		{MHD_OPTION_END, 0, NULL},
	};
	s->mhd = MHD_start_daemon(flags, (uint16_t)cfg->http_port, NULL, NULL, on_request, s,
				  MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (s->mhd == NULL) {
		r3d_err_set(err, R3D_EIO, "cannot start the status endpoint on %s:%d (port in use%s?)",
			    cfg->http_bind, cfg->http_port, tls ? ", or a certificate it cannot use" : "");
		goto fail_addr;
	}
	log_info("status", "status endpoint on %s://%s:%d/status, jobs API under /api/ (%d tokens)",
		 tls ? "https" : "http", cfg->http_bind, cfg->http_port, s->tokens.n);
	*out = s;
	return true;
fail_addr:
	freeaddrinfo(s->addr);
	free(s->tls_cert);
	free(s->tls_key);
	free(s);
	return false;
}

/* The daemon's own admin token when the config has no [token] section:
 * <folder of [storage] database>/api-token, made once (32 random bytes as
 * hex, mode 0600, written under a temporary name and linked into place so
 * that a crash never leaves half a token), read on every later start. */
bool status_token_default(struct r3d_err *err, struct config *cfg, char *path, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[STATUS_TOKEN_BYTES];
	char text[2 * STATUS_TOKEN_BYTES + 2] = "", tmp[PATH_MAX + 16] = "";
	struct config_token *t;
	struct stat st;
	bool ok = false;
	int n, fd = -1;

	path[0] = '\0';
	if (cfg->ntokens > 0)
		return true;
	const char *slash = strrchr(cfg->database, '/');
	if (slash == NULL)
		n = snprintf(path, size, "api-token");
	else
		n = snprintf(path, size, "%.*s/api-token", (int)(slash - cfg->database), cfg->database);
	if (n < 0 || (size_t)n >= size)
		return r3d_err_set(err, R3D_EINVAL, "[storage] database: path too long for api-token");
	t = &cfg->tokens[0];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "api-token");
	t->admin = true;
	if (lstat(path, &st) != 0) {
		if (errno != ENOENT)
			return r3d_err_set(err, R3D_EIO, "cannot read '%s': %s", path, strerror(errno));
		if (RAND_bytes(raw, sizeof(raw)) != 1)
			return r3d_err_set(err, R3D_EIO, "the random generator failed");
		for (size_t i = 0; i < sizeof(raw); i++) {
			text[2 * i] = hex[raw[i] >> 4];
			text[2 * i + 1] = hex[raw[i] & 0x0F];
		}
		text[2 * STATUS_TOKEN_BYTES] = '\n';
		text[2 * STATUS_TOKEN_BYTES + 1] = '\0';
		OPENSSL_cleanse(raw, sizeof(raw));
		if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp)) {
			r3d_err_set(err, R3D_EINVAL, "'%s': path too long", path);
			tmp[0] = '\0';
			goto out;
		}
		fd = mkstemp(tmp);   /* mode 0600 */
		if (fd < 0) {
			r3d_err_set(err, R3D_EIO, "cannot create '%s': %s", tmp, strerror(errno));
			tmp[0] = '\0';
			goto out;
		}
		size_t len = strlen(text);
		if (fchmod(fd, 0600) != 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) != 0) {
			r3d_err_set(err, R3D_EIO, "cannot write '%s': %s", tmp, strerror(errno));
			goto out;
		}
		close(fd);
		fd = -1;
		/* link() fails when another start made the file meanwhile: that one wins. */
		if (link(tmp, path) != 0 && errno != EEXIST) {
			r3d_err_set(err, R3D_EIO, "cannot create '%s': %s", path, strerror(errno));
			goto out;
		}
		log_info("status", "no [token] section: made an admin token for the HTTP API in %s", path);
	} else if ((st.st_mode & 077) != 0) {
		log_warn("status", "%s can be read by other users (mode %03o): chmod 600 it", path,
			 (unsigned)(st.st_mode & 0777));
	}
	if (!config_token_file_read(err, path, t->secret, sizeof(t->secret)))
		goto out;
	cfg->ntokens = 1;
	log_info("status", "the HTTP API takes the admin token in %s (Authorization: Bearer ...)", path);
	ok = true;
out:
	if (fd >= 0)
		close(fd);
	if (tmp[0] != '\0')
		unlink(tmp);   /* the temporary name; the token stays under path */
	OPENSSL_cleanse(text, sizeof(text));
	return ok;
}

void status_set_receiver(struct status_server *s, struct receiver *recv)
{
	atomic_store(&s->recv, recv);
}

void status_set_workers(struct status_server *s, struct worker_pool *pool)
{
	pthread_mutex_lock(&s->workers_lock);
	s->workers = pool;
	pthread_mutex_unlock(&s->workers_lock);
}

void status_stop(struct status_server *s)
{
	if (s == NULL)
		return;
	if (s->mhd != NULL)
		MHD_stop_daemon(s->mhd);
	if (s->addr != NULL)
		freeaddrinfo(s->addr);
	free(s->tls_cert);
	if (s->tls_key != NULL)
		memset(s->tls_key, 0, strlen(s->tls_key));
	free(s->tls_key);
	pthread_mutex_destroy(&s->workers_lock);
	free(s);
}
