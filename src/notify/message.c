/*
 * message.c: the JSON body and the id of a webhook message (see r3d/notify.h
 * for the schema). Builds with jansson from a caller-owned plain struct; keeps
 * nothing. Any thread.
 */
#include "r3d/notify.h"

#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MESSAGE_TYPE "study.finished"
#define MESSAGE_SCHEMA_VERSION 1
#define MESSAGE_ID_DIGEST_BYTES 16
/* Upper bound of the wall clocks we accept (year 9999), so that gmtime_r and
 * the ISO text never fail or grow. */
#define MESSAGE_MAX_EPOCH_S 253402300799.0

const char *notify_outcome_name(enum notify_outcome outcome)
{
	switch (outcome) {
	case NOTIFY_COMPLETE: return "complete";
	case NOTIFY_PARTIAL: return "partial";
	case NOTIFY_FAILED: return "failed";
	}
	return NULL;
}

const char *notify_series_outcome_name(enum notify_series_outcome outcome)
{
	switch (outcome) {
	case NOTIFY_SERIES_DONE: return "done";
	case NOTIFY_SERIES_FAILED: return "failed";
	case NOTIFY_SERIES_SKIPPED: return "skipped";
	}
	return NULL;
}

/* ---- input checks --------------------------------------------------------- */

static bool check_string(struct r3d_err *err, const char *what, const char *s, bool required)
{
	if (s == NULL || s[0] == '\0') {
		if (required)
			return r3d_err_set(err, R3D_EINVAL, "notify: %s missing", what);
		return true;
	}
	if (strnlen(s, NOTIFY_MAX_STRING + 1) > NOTIFY_MAX_STRING)
		return r3d_err_set(err, R3D_EINVAL, "notify: %s longer than %d bytes", what,
				   NOTIFY_MAX_STRING);
	return true;
}

static bool check_study(struct r3d_err *err, const struct notify_study *st,
			const struct notify_options *opt)
{
	if (!check_string(err, "study UID", st->study_uid, true) ||
	    !check_string(err, "accession number", st->accession_number, false) ||
	    !check_string(err, "node AE title", opt->node_ae_title, false) ||
	    !check_string(err, "viewer URL", st->viewer_url, false))
		return false;
	if (opt->include_patient_name &&
	    !check_string(err, "patient name", st->patient_name, false))
		return false;
	if (notify_outcome_name(st->outcome) == NULL)
		return r3d_err_set(err, R3D_EINVAL, "notify: study outcome %d unknown", (int)st->outcome);
	if (!isfinite(st->finished_at) || st->finished_at <= 0 ||
	    st->finished_at > MESSAGE_MAX_EPOCH_S)
		return r3d_err_set(err, R3D_EINVAL, "notify: finished_at missing or out of range");
	if (!isfinite(st->received_at) || st->received_at > MESSAGE_MAX_EPOCH_S)
		return r3d_err_set(err, R3D_EINVAL, "notify: received_at out of range");
	if (!isfinite(st->processing_s) || !isfinite(st->delivery_s))
		return r3d_err_set(err, R3D_EINVAL, "notify: study seconds not finite");
	if (st->nseries > NOTIFY_MAX_SERIES)
		return r3d_err_set(err, R3D_EINVAL, "notify: %zu series, more than %d", st->nseries,
				   NOTIFY_MAX_SERIES);
	if (st->nseries > 0 && st->series == NULL)
		return r3d_err_set(err, R3D_EINVAL, "notify: series missing");
	if (st->ndestinations > NOTIFY_MAX_DESTINATIONS)
		return r3d_err_set(err, R3D_EINVAL, "notify: %zu destinations, more than %d",
				   st->ndestinations, NOTIFY_MAX_DESTINATIONS);
	if (st->ndestinations > 0 && st->destinations == NULL)
		return r3d_err_set(err, R3D_EINVAL, "notify: destinations missing");
	for (size_t i = 0; i < st->nseries; i++) {
		const struct notify_series *se = &st->series[i];
		const struct notify_stage_seconds *t = &se->seconds;

		if (!check_string(err, "series UID", se->series_uid, true) ||
		    !check_string(err, "series reason", se->reason, false))
			return r3d_err_prefix(err, "series %zu", i);
		if (notify_series_outcome_name(se->outcome) == NULL)
			return r3d_err_set(err, R3D_EINVAL, "notify: series %zu outcome %d unknown", i,
					   (int)se->outcome);
		if (!isfinite(t->volume) || !isfinite(t->segment) || !isfinite(t->mesh) ||
		    !isfinite(t->exporting))
			return r3d_err_set(err, R3D_EINVAL, "notify: series %zu seconds not finite", i);
		if (se->nstructures > NOTIFY_MAX_STRUCTURES)
			return r3d_err_set(err, R3D_EINVAL, "notify: series %zu has %zu structures, more than %d",
					   i, se->nstructures, NOTIFY_MAX_STRUCTURES);
		if (se->nstructures > 0 && se->structures == NULL)
			return r3d_err_set(err, R3D_EINVAL, "notify: series %zu structures missing", i);
		for (size_t k = 0; k < se->nstructures; k++) {
			const struct notify_structure *s = &se->structures[k];

			if (!check_string(err, "structure name", s->name, true) ||
			    !check_string(err, "structure label", s->label, false) ||
			    !check_string(err, "structure code", s->code_value, false) ||
			    !check_string(err, "structure code", s->code_scheme, false) ||
			    !check_string(err, "structure code", s->code_meaning, false))
				return r3d_err_prefix(err, "series %zu structure %zu", i, k);
			if ((s->code_value == NULL) != (s->code_scheme == NULL) ||
			    (s->code_value == NULL) != (s->code_meaning == NULL))
				return r3d_err_set(err, R3D_EINVAL, "notify: series %zu structure %zu: "
						   "a code needs value, scheme and meaning", i, k);
			if (!isfinite(s->volume_ml) || s->volume_ml < 0)
				return r3d_err_set(err, R3D_EINVAL,
						   "notify: series %zu structure %zu volume not finite and >= 0", i, k);
			if (s->triangles > (uint64_t)INT64_MAX)
				return r3d_err_set(err, R3D_EINVAL,
						   "notify: series %zu structure %zu triangle count too large", i, k);
			if (s->has_print && (s->self_intersections > (uint64_t)INT64_MAX ||
					     (!isnan(s->min_wall_mm) &&
					      (!isfinite(s->min_wall_mm) || s->min_wall_mm < 0))))
				return r3d_err_set(err, R3D_EINVAL,
						   "notify: series %zu structure %zu: bad print figures", i, k);
		}
		if (se->ndistances > NOTIFY_MAX_DISTANCES ||
		    (se->ndistances > 0 && se->distances == NULL))
			return r3d_err_set(err, R3D_EINVAL, "notify: series %zu distances missing or "
					   "more than %d", i, NOTIFY_MAX_DISTANCES);
		for (size_t k = 0; k < se->ndistances; k++) {
			const struct notify_distance *d = &se->distances[k];
			if (!check_string(err, "distance structure", d->a, true) ||
			    !check_string(err, "distance structure", d->b, true))
				return r3d_err_prefix(err, "series %zu distance %zu", i, k);
			if (!isfinite(d->mm) || d->mm < 0)
				return r3d_err_set(err, R3D_EINVAL, "notify: series %zu distance %zu not "
						   "finite and >= 0", i, k);
		}
	}
	for (size_t i = 0; i < st->ndestinations; i++) {
		const struct notify_destination *d = &st->destinations[i];

		if (!check_string(err, "destination name", d->name, true) ||
		    !check_string(err, "destination AE title", d->ae_title, false))
			return r3d_err_prefix(err, "destination %zu", i);
	}
	return true;
}

/* ---- JSON helpers ---------------------------------------------------------- */

static bool utf8_valid(const unsigned char *s)
{
	while (*s != '\0') {
		size_t n;
		uint32_t cp;

		if (s[0] < 0x80) {
			s++;
			continue;
		}
		if ((s[0] & 0xE0) == 0xC0) {
			n = 1;
			cp = s[0] & 0x1Fu;
		} else if ((s[0] & 0xF0) == 0xE0) {
			n = 2;
			cp = s[0] & 0x0Fu;
		} else if ((s[0] & 0xF8) == 0xF0) {
			n = 3;
			cp = s[0] & 0x07u;
		} else {
			return false;
		}
		for (size_t i = 1; i <= n; i++) {
			if ((s[i] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i] & 0x3Fu);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		s += n + 1;
	}
	return true;
}

/* A JSON string of s; invalid UTF-8 is sent with non-ASCII bytes as '?'.
 * NULL only when out of memory. */
static json_t *jstr(const char *s)
{
	char *copy;
	json_t *j;

	if (utf8_valid((const unsigned char *)s))
		return json_string(s);
	copy = strdup(s);
	if (copy == NULL)
		return NULL;
	for (char *p = copy; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

/* A JSON string, or null for NULL and "". */
static json_t *jstr_or_null(const char *s)
{
	return s == NULL || s[0] == '\0' ? json_null() : jstr(s);
}

/* value rounded to `scale` steps per unit (1000: milliseconds). */
static json_t *jreal(double value, double scale)
{
	return json_real(round(value * scale) / scale);
}

/* "2026-11-22T19:40:05Z" of wall seconds (checked in range by the caller). */
static json_t *jtime(double wall_s)
{
	time_t t = (time_t)floor(wall_s);
	struct tm tm;
	char buf[32];

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return NULL;
	return json_string(buf);
}

/* obj[key] = value (stolen). A NULL value (out of memory) or a failure sets
 * *ok to false, so that a build checks once at the end. */
static void put(bool *ok, json_t *obj, const char *key, json_t *value)
{
	if (json_object_set_new(obj, key, value) != 0)
		*ok = false;
}

static void append(bool *ok, json_t *arr, json_t *value)
{
	if (json_array_append_new(arr, value) != 0)
		*ok = false;
}

/* obj[key] = seconds, only when known (>= 0). */
static void put_seconds(bool *ok, json_t *obj, const char *key, double seconds)
{
	if (seconds >= 0)
		put(ok, obj, key, jreal(seconds, 1000.0));
}

/* ---- the body -------------------------------------------------------------- */

static json_t *series_json(bool *ok, const struct notify_series *se)
{
	json_t *o = json_object(), *secs = json_object(), *structs = json_array();

	if (o == NULL || secs == NULL || structs == NULL) {
		json_decref(o);
		json_decref(secs);
		json_decref(structs);
		*ok = false;
		return NULL;
	}
	put(ok, o, "series_instance_uid", jstr(se->series_uid));
	put(ok, o, "outcome", json_string(notify_series_outcome_name(se->outcome)));
	if (se->outcome != NOTIFY_SERIES_DONE && se->reason != NULL && se->reason[0] != '\0')
		put(ok, o, "reason", jstr(se->reason));
	/* Done, but a kind of object could not be written: which and why. */
	if (se->outcome == NOTIFY_SERIES_DONE && se->reason != NULL && se->reason[0] != '\0')
		put(ok, o, "warnings", jstr(se->reason));
	put_seconds(ok, secs, "volume", se->seconds.volume);
	put_seconds(ok, secs, "segment", se->seconds.segment);
	put_seconds(ok, secs, "mesh", se->seconds.mesh);
	put_seconds(ok, secs, "export", se->seconds.exporting);
	put(ok, o, "seconds", secs);
	for (size_t k = 0; k < se->nstructures; k++) {
		const struct notify_structure *s = &se->structures[k];
		json_t *js = json_object();

		if (js == NULL) {
			*ok = false;
			break;
		}
		put(ok, js, "name", jstr(s->name));
		if (s->label != NULL)
			put(ok, js, "label", jstr(s->label));
		if (s->code_value != NULL)
			put(ok, js, "code", json_pack("{s:o, s:o, s:o}", "value", jstr(s->code_value),
						      "scheme", jstr(s->code_scheme), "meaning",
						      jstr(s->code_meaning)));
		put(ok, js, "triangles", json_integer((json_int_t)s->triangles));
		put(ok, js, "volume_ml", jreal(s->volume_ml, 100.0));
		if (s->has_print)
			put(ok, js, "print",
			    json_pack("{s:b, s:b, s:o, s:I, s:I}", "printable", s->printable, "thin_wall",
				      s->thin_wall, "min_wall_mm",
				      isnan(s->min_wall_mm) ? json_null() : jreal(s->min_wall_mm, 100.0),
				      "shells", (json_int_t)s->shells, "self_intersections",
				      (json_int_t)s->self_intersections));
		append(ok, structs, js);
	}
	put(ok, o, "structures", structs);
	if (se->ndistances > 0) {
		json_t *dl = json_array();
		if (dl == NULL)
			*ok = false;
		for (size_t k = 0; dl != NULL && k < se->ndistances; k++)
			append(ok, dl, json_pack("{s:o, s:o, s:o}", "a", jstr(se->distances[k].a), "b",
						 jstr(se->distances[k].b), "mm",
						 jreal(se->distances[k].mm, 100.0)));
		if (dl != NULL)
			put(ok, o, "distances", dl);
	}
	return o;
}

static json_t *destination_json(bool *ok, const struct notify_destination *d)
{
	json_t *o = json_object();

	if (o == NULL) {
		*ok = false;
		return NULL;
	}
	put(ok, o, "name", jstr(d->name));
	if (d->ae_title != NULL && d->ae_title[0] != '\0')
		put(ok, o, "ae_title", jstr(d->ae_title));
	put(ok, o, "delivered", json_integer((json_int_t)d->delivered));
	put(ok, o, "failed", json_integer((json_int_t)d->failed));
	return o;
}

static json_t *study_json(const struct notify_study *st, const struct notify_options *opt)
{
	bool ok = true;
	json_t *root = json_object(), *data = json_object(), *node = json_object();
	json_t *secs = json_object(), *series = json_array(), *dests = json_array();

	if (root == NULL || data == NULL || node == NULL || secs == NULL || series == NULL ||
	    dests == NULL) {
		json_decref(root);
		json_decref(data);
		json_decref(node);
		json_decref(secs);
		json_decref(series);
		json_decref(dests);
		return NULL;
	}
	put(&ok, root, "type", json_string(MESSAGE_TYPE));
	put(&ok, root, "timestamp", jtime(st->finished_at));
	put(&ok, data, "schema_version", json_integer(MESSAGE_SCHEMA_VERSION));
	put(&ok, data, "study_instance_uid", jstr(st->study_uid));
	put(&ok, data, "accession_number", jstr_or_null(st->accession_number));
	if (opt->include_patient_name)
		put(&ok, data, "patient_name", jstr_or_null(st->patient_name));
	put(&ok, data, "outcome", json_string(notify_outcome_name(st->outcome)));
	if (st->viewer_url != NULL && st->viewer_url[0] != '\0')
		put(&ok, data, "viewer_url", jstr(st->viewer_url));
	if (opt->node_ae_title != NULL && opt->node_ae_title[0] != '\0')
		put(&ok, node, "ae_title", jstr(opt->node_ae_title));
	put(&ok, node, "version", json_string(R3D_VERSION));
	put(&ok, data, "node", node);
	if (st->received_at > 0)
		put(&ok, data, "received_at", jtime(st->received_at));
	put(&ok, data, "finished_at", jtime(st->finished_at));
	put_seconds(&ok, secs, "processing", st->processing_s);
	put_seconds(&ok, secs, "delivery", st->delivery_s);
	if (st->received_at > 0 && st->finished_at >= st->received_at)
		put_seconds(&ok, secs, "total", st->finished_at - st->received_at);
	put(&ok, data, "seconds", secs);
	for (size_t i = 0; i < st->nseries; i++)
		append(&ok, series, series_json(&ok, &st->series[i]));
	put(&ok, data, "series", series);
	for (size_t i = 0; i < st->ndestinations; i++)
		append(&ok, dests, destination_json(&ok, &st->destinations[i]));
	put(&ok, data, "destinations", dests);
	put(&ok, root, "data", data);
	if (!ok) {
		json_decref(root);
		return NULL;
	}
	return root;
}

/* ---- id and public functions ----------------------------------------------- */

bool notify_message_id(struct r3d_err *err, const char *body, size_t body_len,
		       char out[NOTIFY_ID_MAX])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t n = 0;

	out[0] = '\0';
	if (body == NULL)
		return r3d_err_set(err, R3D_EINVAL, "notify: no body to name");
	if (EVP_Digest(body, body_len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < MESSAGE_ID_DIGEST_BYTES)
		return r3d_err_set(err, R3D_ENOMEM, "notify: SHA-256 of the body failed");
	memcpy(out, "msg_", 4);
	n = 4;
	for (size_t i = 0; i < MESSAGE_ID_DIGEST_BYTES; i++) {
		out[n++] = hex[md[i] >> 4];
		out[n++] = hex[md[i] & 0x0F];
	}
	out[n] = '\0';
	return true;
}

bool notify_message_build(struct r3d_err *err, const struct notify_study *study,
			  const struct notify_options *opt, struct notify_message *out)
{
	static const struct notify_options defaults = {false, NULL};
	json_t *root = NULL;
	char *body = NULL;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	if (opt == NULL)
		opt = &defaults;
	if (study == NULL)
		return r3d_err_set(err, R3D_EINVAL, "notify: no study");
	if (!check_study(err, study, opt))
		return false;
	root = study_json(study, opt);
	if (root == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "notify: building the JSON body failed");
		goto out;
	}
	body = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15));
	if (body == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "notify: writing the JSON body failed");
		goto out;
	}
	out->body_len = strlen(body);
	if (out->body_len > NOTIFY_BODY_MAX) {
		r3d_err_set(err, R3D_EINVAL, "notify: body of %zu bytes, more than %d", out->body_len,
			    NOTIFY_BODY_MAX);
		goto out;
	}
	if (!notify_message_id(err, body, out->body_len, out->id))
		goto out;
	out->body = body;
	body = NULL;
	ok = true;
out:
	free(body);
	json_decref(root);
	if (!ok)
		memset(out, 0, sizeof(*out));
	return ok;
}

void notify_message_free(struct notify_message *msg)
{
	if (msg == NULL)
		return;
	free(msg->body);
	memset(msg, 0, sizeof(*msg));
}
