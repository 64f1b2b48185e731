/*
 * notifier.c: the notifier thread (see r3d/notifier.h): finished studies
 * become messages in the index, and due messages are posted.
 */
#include "r3d/notifier.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "r3d/bridge.h"
#include "r3d/log.h"
#include "r3d/notify.h"
#include "r3d/send.h"
#include "r3d/util.h"
#include "r3d/viewer.h"
#include "r3d/wake.h"

#define NOTIFIER_MAX_URLS 8
#define NOTIFIER_IDLE_MS 500
#define NOTIFIER_BATCH 16
#define NOTIFIER_MAX_STRUCTURES NOTIFY_MAX_STRUCTURES   /* an imported SEG may hold ~120 */

struct notifier {
	const struct config *cfg;
	struct index *idx;
	struct notify_secret secret;
	struct notify_backoff backoff;
	char urls_buf[sizeof(((struct config *)0)->webhook_url)];
	const char *urls[NOTIFIER_MAX_URLS];
	int nurls;
	pthread_t thread;
	atomic_bool stop;
};

static bool split_urls(struct r3d_err *err, const char *text, char *buf, size_t size,
		       const char **urls, int *n)
{
	char *save = NULL;

	*n = 0;
	snprintf(buf, size, "%s", text);
	for (char *tok = strtok_r(buf, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
		if (*n == NOTIFIER_MAX_URLS)
			return r3d_err_set(err, R3D_EINVAL, "[webhook] url: more than %d URLs",
					   NOTIFIER_MAX_URLS);
		if (strncmp(tok, "http://", 7) != 0 && strncmp(tok, "https://", 8) != 0)
			return r3d_err_set(err, R3D_EINVAL, "[webhook] url: '%s' is not http:// or https://",
					   tok);
		urls[(*n)++] = tok;
	}
	return true;
}

static bool load_secret(struct r3d_err *err, const struct config *cfg, struct notify_secret *out)
{
	bool ok = cfg->webhook_secret_file[0] != '\0' ?
			  notify_secret_read_file(err, cfg->webhook_secret_file, out) :
			  notify_secret_parse(err, cfg->webhook_secret, out);
	if (!ok)
		r3d_err_prefix(err, "[webhook] %s", cfg->webhook_secret_file[0] ? "secret_file" : "secret");
	return ok;
}

bool notifier_check_config(struct r3d_err *err, const struct config *cfg)
{
	char buf[sizeof(cfg->webhook_url)];
	const char *urls[NOTIFIER_MAX_URLS];
	struct notify_secret secret;
	int n;

	if (cfg->webhook_url[0] == '\0')
		return true;
	if (!split_urls(err, cfg->webhook_url, buf, sizeof(buf), urls, &n) || !load_secret(err, cfg, &secret))
		return false;
	notify_secret_clear(&secret);
	return true;
}

/* The URLs of a study's message: the webhooks of its jobs' routes (a
 * route without its own webhook key has [webhook] url), each once. */
static int study_urls(const struct notifier *n, const struct finished_study *fs, char *buf, size_t size,
		      const char **urls, int max)
{
	size_t used = 0;
	int nu = 0;

	for (int i = 0; i < fs->nseries || (i == 0 && fs->nseries == 0); i++) {
		const struct config_route *r = i < fs->nseries ? config_route_find(n->cfg, fs->series[i].route) :
					       NULL;
		const char *text = r != NULL && r->webhook_set ? r->webhook_url : n->cfg->webhook_url;
		char tmp[sizeof(n->cfg->webhook_url)];
		char *save = NULL;
		snprintf(tmp, sizeof(tmp), "%s", text);
		for (char *t = strtok_r(tmp, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
			bool seen = false;
			for (int k = 0; k < nu; k++)
				seen |= strcmp(urls[k], t) == 0;
			size_t len = strlen(t) + 1;
			if (seen || nu == max || used + len > size)
				continue;
			memcpy(buf + used, t, len);
			urls[nu++] = buf + used;
			used += len;
		}
	}
	return nu;
}

/* ---- a finished study becomes a message ---- */

static enum notify_series_outcome series_outcome(const char *state)
{
	if (strcmp(state, "done") == 0)
		return NOTIFY_SERIES_DONE;
	if (strcmp(state, "skipped") == 0)
		return NOTIFY_SERIES_SKIPPED;
	return NOTIFY_SERIES_FAILED;
}

static void queue_message(struct notifier *n, struct finished_study *fs)
{
	struct notify_series series[INDEX_STUDY_MAX_SERIES];
	/* 64 series x 256 structures: on the heap */
	struct notify_structure(*structures)[NOTIFIER_MAX_STRUCTURES] =
		calloc(INDEX_STUDY_MAX_SERIES, sizeof(*structures));
	struct notify_destination dests[INDEX_STUDY_MAX_DESTINATIONS];
	struct notify_distance distances[INDEX_STUDY_MAX_SERIES][NOTIFY_MAX_DISTANCES];
	json_t *reports[INDEX_STUDY_MAX_SERIES] = {0};
	struct bridge_instance_attrs attrs;
	struct notify_message msg = {0};
	struct r3d_err err;
	int done = 0;
	int64_t sent = 0, failed = 0;
	double processing = 0, last_job = 0;

	memset(series, 0, sizeof(series));
	if (structures == NULL) {
		log_error("notify", "study=%s: out of memory for the message", fs->study_uid);
		return;
	}
	for (int i = 0; i < fs->nseries; i++) {
		struct finished_series *f = &fs->series[i];
		struct notify_series *s = &series[i];
		s->series_uid = f->series_uid;
		s->outcome = series_outcome(f->state);
		s->reason = f->reason[0] ? f->reason : NULL;
		done += s->outcome == NOTIFY_SERIES_DONE;
		processing += f->finished_at - f->started_at;
		if (f->finished_at > last_job)
			last_job = f->finished_at;
		reports[i] = f->report != NULL ? json_loads(f->report, 0, NULL) : NULL;
		json_t *arr = json_object_get(reports[i], "structures");
		size_t k;
		json_t *st;
		json_array_foreach(arr, k, st) {
			if (s->nstructures == NOTIFIER_MAX_STRUCTURES || json_object_get(st, "triangles") == NULL)
				continue;
			struct notify_structure *ns = &structures[i][s->nstructures++];
			ns->name = json_string_value(json_object_get(st, "name"));
			ns->label = json_string_value(json_object_get(st, "label"));
			json_t *type = json_object_get(json_object_get(st, "codes"), "type");
			ns->code_value = json_string_value(json_object_get(type, "value"));
			ns->code_scheme = json_string_value(json_object_get(type, "scheme"));
			ns->code_meaning = json_string_value(json_object_get(type, "meaning"));
			if (ns->code_value == NULL || ns->code_scheme == NULL || ns->code_meaning == NULL)
				ns->code_value = ns->code_scheme = ns->code_meaning = NULL;
			ns->triangles = (uint64_t)json_integer_value(json_object_get(st, "triangles"));
			ns->volume_ml = json_number_value(json_object_get(st, "volume_ml"));
			json_t *pr = json_object_get(st, "print");
			if (json_is_object(pr)) {
				json_t *mw = json_object_get(pr, "min_wall_mm");
				json_int_t si = json_integer_value(json_object_get(pr, "self_intersections"));
				ns->has_print = true;
				ns->printable = json_is_true(json_object_get(pr, "printable"));
				ns->thin_wall = json_is_true(json_object_get(pr, "thin_wall"));
				ns->min_wall_mm = json_is_number(mw) ? json_number_value(mw) : NAN;
				ns->shells = (uint32_t)json_array_size(json_object_get(pr, "shells"));
				ns->self_intersections = si > 0 ? (uint64_t)si : 0;
			}
		}
		s->structures = structures[i];
		json_t *dl = json_object_get(reports[i], "distances");
		json_t *dj;
		json_array_foreach(dl, k, dj) {
			struct notify_distance *nd = &distances[i][s->ndistances];
			nd->a = json_string_value(json_object_get(dj, "a"));
			nd->b = json_string_value(json_object_get(dj, "b"));
			nd->mm = json_number_value(json_object_get(dj, "mm"));
			if (nd->a != NULL && nd->b != NULL && s->ndistances < NOTIFY_MAX_DISTANCES)
				s->ndistances++;
		}
		s->distances = distances[i];
		json_t *t = json_object_get(reports[i], "timings_ms");
		s->seconds.volume = json_number_value(json_object_get(t, "volume")) / 1e3;
		s->seconds.segment = json_number_value(json_object_get(t, "segment")) / 1e3;
		s->seconds.mesh = json_number_value(json_object_get(t, "mesh")) / 1e3;
	}
	for (int i = 0; i < fs->ndest; i++) {
		dests[i].name = fs->dest[i].name;
		dests[i].ae_title = NULL;
		for (int d = 0; d < n->cfg->ndestinations; d++) {
			if (strcmp(n->cfg->destinations[d].name, fs->dest[i].name) == 0)
				dests[i].ae_title = n->cfg->destinations[d].ae_title;
		}
		dests[i].delivered = (uint32_t)fs->dest[i].sent;
		dests[i].failed = (uint32_t)fs->dest[i].failed;
		sent += fs->dest[i].sent;
		failed += fs->dest[i].failed;
	}
	/* The 3D page's link exists whether or not a webhook is configured. */
	char viewer_url[VIEWER_URL_MAX] = "";
	if (n->cfg->viewer_enabled && done > 0 &&
	    !viewer_link_for_study(&err, n->cfg, n->idx, fs->study_uid, clock_wall_s(), viewer_url,
				   sizeof(viewer_url)))
		log_error("viewer", "study=%s: no link: %s", fs->study_uid, err.msg);
	char ubuf[2 * sizeof(n->cfg->webhook_url)];
	const char *urls[2 * NOTIFIER_MAX_URLS];
	int nurls = study_urls(n, fs, ubuf, sizeof(ubuf), urls, 2 * NOTIFIER_MAX_URLS);
	if (nurls == 0) {
		/* Only the link: mark the study so that it is not picked again. */
		if (!index_notification_add(&err, n->idx, fs->id, fs->study_uid, NULL, 0, "", "",
					    clock_wall_s()))
			log_error("notify", "study=%s: cannot mark it done: %s", fs->study_uid, err.msg);
		goto out;
	}
	memset(&attrs, 0, sizeof(attrs));
	if (fs->instance_path[0] != '\0' && !bridge_read_instance_attrs(&err, fs->instance_path, &attrs))
		log_warn("notify", "study=%s: cannot read its accession number: %s", fs->study_uid, err.msg);
	struct notify_study study = {
		.study_uid = fs->study_uid,
		.accession_number = attrs.accession_number,
		.patient_name = attrs.patient_name,
		.viewer_url = viewer_url,
		.outcome = done == fs->nseries && failed == 0 ? NOTIFY_COMPLETE :
			   (done == 0 || (fs->ndest > 0 && sent == 0)) ? NOTIFY_FAILED : NOTIFY_PARTIAL,
		.received_at = fs->received_at,
		.finished_at = fs->finished_at,
		.processing_s = processing,
		.delivery_s = fs->finished_at > last_job ? fs->finished_at - last_job : 0,
		.series = series,
		.nseries = (size_t)fs->nseries,
		.destinations = dests,
		.ndestinations = (size_t)fs->ndest,
	};
	struct notify_options opt = {n->cfg->webhook_include_patient_name, n->cfg->ae_title};
	if (!notify_message_build(&err, &study, &opt, &msg)) {
		log_error("notify", "study=%s: cannot build the message: %s", fs->study_uid, err.msg);
	} else if (!index_notification_add(&err, n->idx, fs->id, fs->study_uid, urls, nurls, msg.id,
					   msg.body, clock_wall_s())) {
		log_error("notify", "study=%s: cannot queue the message: %s", fs->study_uid, err.msg);
	} else {
		log_info("notify", "message queued study=%s id=%s outcome=%s urls=%d", fs->study_uid,
			 msg.id, notify_outcome_name(study.outcome), nurls);
	}
	notify_message_free(&msg);
out:
	memset(viewer_url, 0, sizeof(viewer_url));
	for (int i = 0; i < fs->nseries; i++)
		json_decref(reports[i]);
	free(structures);
}

/* ---- due messages are posted ---- */

static void post_due(struct notifier *n)
{
	struct notification_row rows[NOTIFIER_BATCH];
	struct r3d_err err;
	int count = index_notification_due(&err, n->idx, clock_wall_s(), rows, NOTIFIER_BATCH);

	if (count < 0) {
		log_error("notify", "cannot read messages: %s", err.msg);
		return;
	}
	for (int i = 0; i < count && !atomic_load(&n->stop); i++) {
		struct notification_row *r = &rows[i];
		struct notify_target target = {r->url, &n->secret, n->cfg->webhook_timeout_s * 1000L, 0,
					       n->cfg->webhook_ca_file[0] ? n->cfg->webhook_ca_file : NULL,
					       n->cfg->webhook_tls_insecure};
		struct notify_message msg;
		struct notify_attempt at;
		const char *state;
		double next = clock_wall_s(), delay = 0;
		int attempts = r->attempts + 1;

		memset(&msg, 0, sizeof(msg));
		snprintf(msg.id, sizeof(msg.id), "%s", r->webhook_id);
		msg.body = r->body;
		msg.body_len = strlen(r->body);
		bool delivered = notify_post(&err, &target, &msg, (int64_t)time(NULL), &at);
		if (delivered) {
			state = "delivered";
			log_info("notify", "delivered id=%s url=%s attempt=%d status=%ld", r->webhook_id, r->url,
				 attempts, at.http_status);
		} else if (at.code == R3D_ENET &&
			   notify_backoff_next(&n->backoff, (unsigned)attempts, at.retry_after_s,
					       send_random_unit(), &delay)) {
			state = "pending";
			next += delay;
			log_warn("notify", "will retry id=%s url=%s attempt=%d in=%.0fs reason=\"%s\"",
				 r->webhook_id, r->url, attempts, delay, at.error);
		} else {
			state = "failed";
			log_error("notify", "failed id=%s url=%s attempt=%d reason=\"%s\"", r->webhook_id, r->url,
				  attempts, at.error);
		}
		if (!index_notification_result(&err, n->idx, r->id, state, attempts, next, at.http_status,
					       at.curl_code, delivered ? NULL : at.error, clock_wall_s()))
			log_error("notify", "cannot record an attempt: %s", err.msg);
	}
	for (int i = 0; i < count; i++)
		free(rows[i].body);
}

static void *notifier_main(void *arg)
{
	struct notifier *n = arg;
	unsigned long seen = 0;

	while (!atomic_load(&n->stop)) {
		struct finished_study fs;
		struct r3d_err err;
		int rc;
		while (!atomic_load(&n->stop) && (rc = index_study_finished_next(&err, n->idx, &fs)) == 1) {
			queue_message(n, &fs);
			index_finished_study_free(&fs);
		}
		post_due(n);
		wake_wait(WAKE_FINISHED, &seen, NOTIFIER_IDLE_MS);
	}
	return NULL;
}

bool notifier_start(struct r3d_err *err, const struct config *cfg, struct index *idx,
		    struct notifier **out)
{
	struct notifier *n;

	*out = NULL;
	bool route_hooks = cfg->route_default.webhook_url[0] != '\0';
	for (int i = 0; i < cfg->nroutes; i++)
		route_hooks |= cfg->routes[i].webhook_url[0] != '\0';
	if (cfg->webhook_url[0] == '\0' && !route_hooks && !cfg->viewer_enabled)
		return true;
	n = calloc(1, sizeof(*n));
	if (n == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "notifier: out of memory");
	n->cfg = cfg;
	n->idx = idx;
	n->backoff = (struct notify_backoff){cfg->retry_initial_delay_s, cfg->retry_max_delay_s,
					     (unsigned)cfg->retry_max_attempts, 0.5};
	if (!split_urls(err, cfg->webhook_url, n->urls_buf, sizeof(n->urls_buf), n->urls, &n->nurls) ||
	    ((n->nurls > 0 || route_hooks) && !load_secret(err, cfg, &n->secret)) ||
	    !notify_backoff_check(err, &n->backoff)) {
		free(n);
		return false;
	}
	if (pthread_create(&n->thread, NULL, notifier_main, n) != 0) {
		notify_secret_clear(&n->secret);
		free(n);
		return r3d_err_set(err, R3D_ENOMEM, "cannot start the notifier thread");
	}
	if (cfg->webhook_tls_insecure)
		log_warn("notify", "[webhook] tls_insecure = true: https:// webhooks are sent without "
			 "checking the server's certificate or name; anyone on the path can read and answer "
			 "them");
	log_info("notify", "notifier started for %d URLs%s", n->nurls,
		 cfg->viewer_enabled ? " and the 3D page's links" : "");
	*out = n;
	return true;
}

void notifier_stop(struct notifier *n)
{
	if (n == NULL)
		return;
	atomic_store(&n->stop, true);
	pthread_join(n->thread, NULL);
	notify_secret_clear(&n->secret);
	free(n);
}
