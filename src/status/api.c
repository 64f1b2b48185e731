/*
 * api.c: the jobs API under /api/ (docs/api.md) and its bearer tokens:
 * lists of studies, jobs and outbox rows, one job with its stages, and the
 * admin changes (retry or cancel a job, re-run a study with another route,
 * retry or drop an outbox row). JSON in and out (jansson); the index does
 * the SQL (src/index/api.c). No answer carries patient data: the index
 * holds none, and a job's report is cut down to its stage timings.
 * libmicrohttpd's thread, through status.c.
 */
#include "api.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "r3d/log.h"
#include "r3d/util.h"
#include "r3d/wake.h"

#define API_LIST_DEFAULT 100    /* rows of a list without ?limit= */
#define API_STUDY_JOBS_MAX 1000 /* jobs listed under one study's series */

/* ------------------------------------------------------------------ */
/* Tokens                                                              */
/* ------------------------------------------------------------------ */

static bool digest(const char *s, size_t n, unsigned char out[API_DIGEST_LEN])
{
	unsigned int len = 0;

	return EVP_Digest(s, n, out, &len, EVP_sha256(), NULL) == 1 && len == API_DIGEST_LEN;
}

bool api_tokens_init(struct r3d_err *err, const struct config *cfg, struct api_tokens *t)
{
	memset(t, 0, sizeof(*t));
	for (int i = 0; i < cfg->ntokens && i < CONFIG_MAX_TOKENS; i++) {
		const char *s = cfg->tokens[i].secret;
		if (!digest(s, strlen(s), t->digest[i]))
			return r3d_err_set(err, R3D_ENOMEM, "status: SHA-256 unavailable");
		t->admin[i] = cfg->tokens[i].admin;
		t->n = i + 1;
	}
	return true;
}

enum api_auth api_tokens_check(const struct api_tokens *t, const char *authorization)
{
	unsigned char d[API_DIGEST_LEN];
	const char *p = authorization;
	int match = -1;

	if (p == NULL)
		return API_AUTH_NONE;
	while (*p == ' ')
		p++;
	if (strncasecmp(p, "Bearer ", 7) != 0)
		return API_AUTH_NONE;
	p += 7;
	while (*p == ' ')
		p++;
	size_t n = strlen(p);
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= CONFIG_TOKEN_FILE_MAX || !digest(p, n, d))
		return API_AUTH_INVALID;
	/* Every token is compared, in constant time, whatever matched before. */
	for (int i = 0; i < t->n; i++) {
		if (CRYPTO_memcmp(d, t->digest[i], API_DIGEST_LEN) == 0)
			match = i;
	}
	OPENSSL_cleanse(d, sizeof(d));
	if (match < 0)
		return API_AUTH_INVALID;
	return t->admin[match] ? API_AUTH_ADMIN : API_AUTH_READ;
}

/* ------------------------------------------------------------------ */
/* Answers                                                             */
/* ------------------------------------------------------------------ */

char *api_error_body(const char *msg)
{
	json_t *j = json_pack("{s:s}", "error", msg);
	char *out = j != NULL ? json_dumps(j, JSON_ENSURE_ASCII) : NULL;
	size_t n;

	json_decref(j);
	if (out == NULL)
		return NULL;
	n = strlen(out);
	char *nl = realloc(out, n + 2);   /* a newline, for curl */
	if (nl == NULL)
		return out;
	nl[n] = '\n';
	nl[n + 1] = '\0';
	return nl;
}

static unsigned reply_json(struct api_reply *rep, unsigned status, json_t *j)
{
	rep->status = status;
	rep->body = NULL;
	if (j != NULL) {
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		json_decref(j);
		if (s != NULL) {
			size_t n = strlen(s);
			char *nl = realloc(s, n + 2);
			if (nl != NULL) {
				nl[n] = '\n';
				nl[n + 1] = '\0';
				s = nl;
			}
			rep->body = s;
			return rep->status;
		}
	}
	rep->status = 500;
	rep->body = api_error_body("out of memory");
	return rep->status;
}

static unsigned reply_error(struct api_reply *rep, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static unsigned reply_error(struct api_reply *rep, unsigned status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rep->status = status;
	rep->body = api_error_body(msg);
	return rep->status;
}

/* 500 for an index error, logged (the message names no patient data). */
static unsigned reply_index_error(struct api_reply *rep, const struct r3d_err *err)
{
	log_error("api", "%s", err->msg);
	reply_error(rep, err->code == R3D_EBUSY ? 503 : 500, "%s", err->msg);
	return rep->status;
}

static json_t *time_or_null(double t)
{
	return t > 0 ? json_real(t) : json_null();
}

static json_t *text_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

static json_t *job_json(const struct api_job *j)
{
	json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:i, s:b, s:f, s:o, s:o, s:f}",
			      "id", (json_int_t)j->id, "state", j->state, "kind", j->kind,
			      "series_uid", j->series_uid, "study_uid", j->study_uid,
			      "route", text_or_null(j->route), "reason", text_or_null(j->reason),
			      "attempts", j->attempts, "cancel_requested", j->cancel_requested,
			      "created_at", j->created_at, "started_at", time_or_null(j->started_at),
			      "finished_at", time_or_null(j->finished_at), "updated_at", j->updated_at);
	if (o != NULL && j->source_series_uid[0] != '\0')
		json_object_set_new(o, "source_series_uid", json_string(j->source_series_uid));
	return o;
}

static json_t *outbox_json(const struct api_outbox *r)
{
	return json_pack("{s:I, s:I, s:s, s:s, s:o, s:s, s:i, s:o, s:o, s:f, s:f, s:f}",
			 "id", (json_int_t)r->id, "job_id", (json_int_t)r->job_id,
			 "destination", r->destination, "sop_instance_uid", r->sop_instance_uid,
			 "kind", text_or_null(r->kind),
			 "state", r->state, "attempts", r->attempts,
			 "dimse_status", r->dimse_status >= 0 ? json_integer(r->dimse_status) : json_null(),
			 "last_error", text_or_null(r->last_error),
			 "next_attempt_at", r->next_attempt_at, "created_at", r->created_at,
			 "updated_at", r->updated_at);
}

/* ?limit=: 1..INDEX_API_LIST_MAX; false (400 filled) when malformed. */
static bool parse_limit(const struct api_request *req, struct api_reply *rep, int *limit)
{
	struct r3d_err err;
	long v = API_LIST_DEFAULT;

	if (req->limit != NULL && !parse_long(&err, req->limit, 1, INDEX_API_LIST_MAX, &v)) {
		reply_error(rep, 400, "limit: %s", err.msg);
		return false;
	}
	*limit = (int)v;
	return true;
}

/* A decimal id of at most 18 digits; 0 when s is not one. s ends at '/' or NUL. */
static int64_t parse_id(const char *s, const char **end)
{
	int64_t v = 0;
	int n = 0;

	while (s[n] >= '0' && s[n] <= '9' && n < 18) {
		v = v * 10 + (s[n] - '0');
		n++;
	}
	*end = s + n;
	if (n == 0 || (s[n] != '\0' && s[n] != '/'))
		return 0;
	return v;
}

/* The request's body as a JSON object (an empty body: an empty object);
 * NULL with 400 filled when it is not one. */
static json_t *body_object(const struct api_request *req, struct api_reply *rep)
{
	json_error_t jerr;
	json_t *j;

	if (req->body == NULL || req->body_len == 0)
		return json_object();
	j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		reply_error(rep, 400, "the body is not JSON: %s (line %d)", jerr.text, jerr.line);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		reply_error(rep, 400, "the body must be a JSON object");
		return NULL;
	}
	return j;
}

static bool job_state_known(const char *s)
{
	for (int i = 0; i < JOB_NSTATES; i++) {
		if (strcmp(s, job_state_name((enum job_state)i)) == 0)
			return true;
	}
	return false;
}

static bool outbox_state_known(const char *s)
{
	for (int i = 0; i < OUTBOX_NSTATES; i++) {
		if (strcmp(s, outbox_state_name((enum outbox_state)i)) == 0)
			return true;
	}
	return false;
}

/* ---- GET /api/studies ---- */

static unsigned get_studies(struct index *idx, const struct api_request *req, struct api_reply *rep)
{
	struct r3d_err err;
	struct api_study *studies = NULL;
	struct api_filter f = {0};
	json_t *list;
	int n;

	if (!parse_limit(req, rep, &f.limit))
		return rep->status;
	n = index_api_studies(&err, idx, &f, &studies);
	if (n < 0)
		return reply_index_error(rep, &err);
	list = json_array();
	for (int i = 0; i < n; i++) {
		const struct api_study *s = &studies[i];
		struct api_series *series = NULL;
		struct api_job *jobs = NULL;
		struct api_filter jf = {.study_id = s->id, .limit = API_STUDY_JOBS_MAX};
		int ns = index_api_series(&err, idx, s->id, &series);
		int nj = ns < 0 ? -1 : index_api_jobs(&err, idx, &jf, &jobs);
		if (ns < 0 || nj < 0) {
			free(series);
			free(studies);
			json_decref(list);
			return reply_index_error(rep, &err);
		}
		json_t *sj = json_array();
		for (int k = 0; k < ns; k++) {
			const struct api_series *r = &series[k];
			json_t *jl = json_array();
			for (int m = nj - 1; m >= 0; m--) {   /* oldest first */
				if (jobs[m].series_id == r->id)
					json_array_append_new(jl, json_pack("{s:I, s:s}", "id",
									    (json_int_t)jobs[m].id,
									    "state", jobs[m].state));
			}
			json_array_append_new(
				sj, json_pack("{s:s, s:o, s:o, s:o, s:I, s:s, s:o, s:o}", "series_uid",
					      r->series_uid, "modality", text_or_null(r->modality),
					      "series_number", r->series_number >= 0 ?
						      json_integer(r->series_number) : json_null(),
					      "description", text_or_null(r->description),
					      "instances", (json_int_t)r->instances, "status", r->status,
					      "reason", text_or_null(r->reason), "jobs", jl));
		}
		json_array_append_new(
			list, json_pack("{s:s, s:f, s:f, s:o, s:b, s:o, s:o}", "study_uid", s->study_uid,
					"first_received", s->first_received, "last_received",
					s->last_received, "stable_at", time_or_null(s->stable_at),
					"pending", s->pending, "route_override",
					text_or_null(s->route_override), "series", sj));
		free(series);
		free(jobs);
	}
	free(studies);
	reply_json(rep, 200, json_pack("{s:o}", "studies", list));
	return rep->status;
}

/* ---- GET /api/jobs, GET /api/jobs/{id} ---- */

static unsigned get_jobs(struct index *idx, const struct api_request *req, struct api_reply *rep)
{
	struct r3d_err err;
	struct api_job *jobs = NULL;
	struct api_filter f = {0};
	json_t *list;
	int n;

	if (!parse_limit(req, rep, &f.limit))
		return rep->status;
	if (req->state != NULL && !job_state_known(req->state))
		return reply_error(rep, 400, "state: '%.40s' is not a job state (queued, running, done, "
				   "failed, skipped, superseded, waiting, cancelled)", req->state);
	f.state = req->state;
	n = index_api_jobs(&err, idx, &f, &jobs);
	if (n < 0)
		return reply_index_error(rep, &err);
	list = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(list, job_json(&jobs[i]));
	free(jobs);
	reply_json(rep, 200, json_pack("{s:o}", "jobs", list));
	return rep->status;
}

/* The stage timings of a job's report.json (its timings_ms), or null. */
static json_t *stages_of(const char *report)
{
	json_t *r, *t, *out = NULL;

	if (report == NULL)
		return json_null();
	r = json_loads(report, 0, NULL);
	t = json_object_get(r, "timings_ms");
	if (json_is_object(t)) {
		const char *key;
		json_t *v;
		out = json_object();
		json_object_foreach(t, key, v) {
			if (json_is_number(v))
				json_object_set_new(out, key, json_real(json_number_value(v)));
		}
	}
	json_decref(r);
	return out != NULL ? out : json_null();
}

static unsigned get_job(struct index *idx, int64_t id, struct api_reply *rep)
{
	struct r3d_err err;
	struct api_job j;
	struct api_outbox *rows = NULL;
	struct api_filter f = {.job_id = id, .limit = INDEX_API_LIST_MAX};
	int found = index_api_job_get(&err, idx, id, &j);

	if (found < 0)
		return reply_index_error(rep, &err);
	if (found == 0)
		return reply_error(rep, 404, "no job %lld", (long long)id);
	int n = index_api_outbox(&err, idx, &f, &rows);
	if (n < 0) {
		index_api_job_free(&j);
		return reply_index_error(rep, &err);
	}
	json_t *o = job_json(&j);
	json_t *sel = j.selection != NULL ? json_loads(j.selection, 0, NULL) : NULL;
	json_object_set_new(o, "stages", stages_of(j.result));
	json_object_set_new(o, "selection", sel != NULL ? sel : json_null());
	json_t *ob = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(ob, outbox_json(&rows[i]));
	json_object_set_new(o, "outbox", ob);
	free(rows);
	index_api_job_free(&j);
	reply_json(rep, 200, o);
	return rep->status;
}

/* ---- POST /api/jobs/{id}/retry, /cancel ---- */

static unsigned post_job_retry(struct index *idx, int64_t id, struct api_reply *rep)
{
	struct r3d_err err;
	char state[16];
	int64_t new_id = 0, twin = 0;

	switch (index_api_job_retry(&err, idx, id, clock_wall_s(), &new_id, &twin, state)) {
	case INDEX_API_OK:
		log_info("api", "job retried job=%lld new_job=%lld", (long long)id, (long long)new_id);
		wake_post(WAKE_JOBS);
		return reply_json(rep, 201, json_pack("{s:I, s:s, s:I}", "id", (json_int_t)new_id,
						      "state", "queued", "retry_of", (json_int_t)id));
	case INDEX_API_NOT_FOUND:
		return reply_error(rep, 404, "no job %lld", (long long)id);
	case INDEX_API_CONFLICT:
		if (twin > 0)
			return reply_error(rep, 409, "job %lld of the same series is not finished yet",
					   (long long)twin);
		return reply_error(rep, 409, "job %lld is %s; only a failed, skipped or cancelled job "
				   "can be retried (re-run its study instead)", (long long)id, state);
	case INDEX_API_ERROR:
		break;
	}
	reply_index_error(rep, &err);
	return rep->status;
}

static unsigned post_job_cancel(struct index *idx, int64_t id, struct api_reply *rep)
{
	struct r3d_err err;
	char state[16];

	switch (index_api_job_cancel(&err, idx, id, clock_wall_s(), state)) {
	case INDEX_API_OK:
		if (strcmp(state, "running") == 0) {
			log_info("api", "job cancel requested job=%lld (it stops at its next stage)",
				 (long long)id);
			return reply_json(rep, 202, json_pack("{s:I, s:s, s:b}", "id", (json_int_t)id,
							      "state", state, "cancel_requested", 1));
		}
		log_info("api", "job cancelled job=%lld", (long long)id);
		wake_post(WAKE_FINISHED);
		return reply_json(rep, 200, json_pack("{s:I, s:s, s:b}", "id", (json_int_t)id, "state",
						      state, "cancel_requested", 0));
	case INDEX_API_NOT_FOUND:
		return reply_error(rep, 404, "no job %lld", (long long)id);
	case INDEX_API_CONFLICT:
		return reply_error(rep, 409, "job %lld is %s; only a queued, waiting or running job can "
				   "be cancelled", (long long)id, state);
	case INDEX_API_ERROR:
		break;
	}
	reply_index_error(rep, &err);
	return rep->status;
}

/* ---- POST /api/studies/{uid}/rerun ---- */

static bool uid_valid(const char *s, size_t n)
{
	if (n == 0 || n > BRIDGE_UID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
			return false;
	}
	return true;
}

static unsigned post_study_rerun(const struct config *cfg, struct index *idx, const char *uid,
			     const struct api_request *req, struct api_reply *rep)
{
	struct r3d_err err;
	json_t *body = body_object(req, rep);

	if (body == NULL)
		return rep->status;
	json_t *route = json_object_get(body, "route");
	if (!json_is_string(route)) {
		json_decref(body);
		return reply_error(rep, 400, "give the route: {\"route\": \"NAME\"}");
	}
	const char *name = json_string_value(route);
	if (config_route_find(cfg, name) == NULL) {
		reply_error(rep, 400, "no route '%.40s' ([route NAME] sections, or default)", name);
		json_decref(body);
		return rep->status;
	}
	switch (index_api_study_rerun(&err, idx, uid, name, clock_wall_s())) {
	case INDEX_API_OK:
		log_info("api", "study re-run study=%s route=%s", uid, name);
		wake_post(WAKE_QUEUE);
		reply_json(rep, 202, json_pack("{s:s, s:s, s:s}", "study_uid", uid, "route", name,
					       "state", "pending"));
		break;
	case INDEX_API_NOT_FOUND:
		reply_error(rep, 404, "no study %s", uid);
		break;
	default:
		reply_index_error(rep, &err);
		break;
	}
	json_decref(body);
	return rep->status;
}

/* ---- GET /api/outbox, POST /api/outbox/{id}/retry, /drop ---- */

static unsigned get_outbox(struct index *idx, const struct api_request *req, struct api_reply *rep)
{
	struct r3d_err err;
	struct api_outbox *rows = NULL;
	struct api_filter f = {0};
	json_t *list;
	int n;

	if (!parse_limit(req, rep, &f.limit))
		return rep->status;
	if (req->state != NULL && !outbox_state_known(req->state))
		return reply_error(rep, 400, "state: '%.40s' is not an outbox state (pending, sent, "
				   "failed, dropped)", req->state);
	f.state = req->state;
	n = index_api_outbox(&err, idx, &f, &rows);
	if (n < 0)
		return reply_index_error(rep, &err);
	list = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(list, outbox_json(&rows[i]));
	free(rows);
	reply_json(rep, 200, json_pack("{s:o}", "outbox", list));
	return rep->status;
}

static unsigned post_outbox(struct index *idx, int64_t id, bool drop, struct api_reply *rep)
{
	struct r3d_err err;
	char state[16];
	enum index_api_rc rc = drop ? index_api_outbox_drop(&err, idx, id, clock_wall_s(), state) :
				      index_api_outbox_retry(&err, idx, id, clock_wall_s(), state);

	switch (rc) {
	case INDEX_API_OK:
		log_info("api", "outbox row %s id=%lld", drop ? "dropped" : "retried", (long long)id);
		/* a retried row goes at once; a dropped one may finish its study */
		wake_post(drop ? WAKE_FINISHED : WAKE_OUTBOX);
		return reply_json(rep, 200, json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", state));
	case INDEX_API_NOT_FOUND:
		return reply_error(rep, 404, "no outbox row %lld", (long long)id);
	case INDEX_API_CONFLICT:
		return reply_error(rep, 409, drop ? "outbox row %lld is %s; only a pending or failed row "
						    "can be dropped" :
						    "outbox row %lld is %s; only a failed row can be retried",
				   (long long)id, state);
	case INDEX_API_ERROR:
		break;
	}
	reply_index_error(rep, &err);
	return rep->status;
}

/* ---- routing ---- */

/* The path after "/api/" names a collection, maybe an item and an action. */
unsigned api_handle(const struct config *cfg, struct index *idx, const struct api_request *req,
		struct api_reply *rep)
{
	const char *p = req->path + 5;   /* after "/api/" */
	bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
	bool post = strcmp(req->method, "POST") == 0;
	const char *end = NULL;
	bool is_post_route = false;
	int64_t id = 0;

	memset(rep, 0, sizeof(*rep));
	if (strncmp(req->path, "/api/", 5) != 0)
		return reply_error(rep, 404, "not found");
	/* Which route, and the methods it takes, before anything is done. */
	enum { R_NONE, R_STUDIES, R_RERUN, R_JOBS, R_JOB, R_JOB_RETRY, R_JOB_CANCEL, R_OUTBOX,
	       R_OUTBOX_RETRY, R_OUTBOX_DROP } route = R_NONE;
	const char *uid = NULL;
	size_t uid_len = 0;
	if (strcmp(p, "studies") == 0) {
		route = R_STUDIES;
	} else if (strncmp(p, "studies/", 8) == 0) {
		uid = p + 8;
		const char *slash = strchr(uid, '/');
		if (slash != NULL && strcmp(slash, "/rerun") == 0) {
			uid_len = (size_t)(slash - uid);
			route = R_RERUN;
		}
	} else if (strcmp(p, "jobs") == 0) {
		route = R_JOBS;
	} else if (strncmp(p, "jobs/", 5) == 0) {
		id = parse_id(p + 5, &end);
		if (id > 0 && *end == '\0')
			route = R_JOB;
		else if (id > 0 && strcmp(end, "/retry") == 0)
			route = R_JOB_RETRY;
		else if (id > 0 && strcmp(end, "/cancel") == 0)
			route = R_JOB_CANCEL;
	} else if (strcmp(p, "outbox") == 0) {
		route = R_OUTBOX;
	} else if (strncmp(p, "outbox/", 7) == 0) {
		id = parse_id(p + 7, &end);
		if (id > 0 && strcmp(end, "/retry") == 0)
			route = R_OUTBOX_RETRY;
		else if (id > 0 && strcmp(end, "/drop") == 0)
			route = R_OUTBOX_DROP;
	}
	if (route == R_NONE)
		return reply_error(rep, 404, "not found: %.100s (docs/api.md lists the endpoints)",
				   req->path);
	is_post_route = route == R_RERUN || route == R_JOB_RETRY || route == R_JOB_CANCEL ||
			route == R_OUTBOX_RETRY || route == R_OUTBOX_DROP;
	if (is_post_route ? !post : !get) {
		rep->allow = is_post_route ? "POST" : "GET, HEAD";
		return reply_error(rep, 405, "%s takes %s", req->path, rep->allow);
	}
	if (is_post_route && !req->admin)
		return reply_error(rep, 403, "this token may only read (role = read); changes need "
				   "an admin token");
	switch (route) {
	case R_STUDIES:
		return get_studies(idx, req, rep);
	case R_RERUN:
		if (!uid_valid(uid, uid_len))
			return reply_error(rep, 400, "not a study UID (digits and dots, at most %d)",
					   BRIDGE_UID_MAX);
		char buf[BRIDGE_UID_MAX + 1];
		memcpy(buf, uid, uid_len);
		buf[uid_len] = '\0';
		return post_study_rerun(cfg, idx, buf, req, rep);
	case R_JOBS:
		return get_jobs(idx, req, rep);
	case R_JOB:
		return get_job(idx, id, rep);
	case R_JOB_RETRY:
	case R_JOB_CANCEL: {
		json_t *body = body_object(req, rep);   /* nothing to give, but it must be JSON */
		if (body == NULL)
			return rep->status;
		json_decref(body);
		if (route == R_JOB_RETRY)
			post_job_retry(idx, id, rep);
		else
			post_job_cancel(idx, id, rep);
		return rep->status;
	}
	case R_OUTBOX:
		return get_outbox(idx, req, rep);
	case R_OUTBOX_RETRY:
	case R_OUTBOX_DROP: {
		json_t *body = body_object(req, rep);
		if (body == NULL)
			return rep->status;
		json_decref(body);
		return post_outbox(idx, id, route == R_OUTBOX_DROP, rep);
	}
	case R_NONE:
		break;
	}
	reply_error(rep, 404, "not found");
	return rep->status;
}
