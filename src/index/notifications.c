/*
 * notifications.c: the index side of the webhook: which studies are
 * finished (every job finished, every object sent or finally failed), the
 * messages waiting to go out, and every attempt (see r3d/index.h). Any
 * thread; takes the index lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index_internal.h"

static void copy_col(sqlite3_stmt *st, int col, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, size, "%s", t != NULL ? (const char *)t : "");
}

/* The latest finished job of each series of the study, per route (a series
 * sent to two called AE titles may be made twice, once per route). */
#define LATEST_JOBS                                                                         \
	"SELECT max(j.id) FROM jobs j JOIN series s ON s.id = j.series_id"                  \
	" WHERE s.study_id = ?1 AND j.state IN ('done', 'failed', 'skipped')"                \
	" GROUP BY s.id, coalesce(j.route, 'default')"

static bool fill_locked(struct r3d_err *err, struct index *idx, struct finished_study *out)
{
	sqlite3_stmt *st = NULL;
	bool ok = false;
	int rc;

	if (sqlite3_prepare_v2(idx->db,
			       "SELECT s.series_uid, j.state, coalesce(j.reason, ''), j.result,"
			       " coalesce(j.started_at, 0), coalesce(j.finished_at, 0),"
			       " coalesce(j.route, 'default')"
			       " FROM jobs j JOIN series s ON s.id = j.series_id"
			       " WHERE j.id IN (" LATEST_JOBS ") ORDER BY s.id",
			       -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, out->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && out->nseries < INDEX_STUDY_MAX_SERIES) {
		struct finished_series *f = &out->series[out->nseries++];
		copy_col(st, 0, f->series_uid, sizeof(f->series_uid));
		copy_col(st, 1, f->state, sizeof(f->state));
		copy_col(st, 2, f->reason, sizeof(f->reason));
		const unsigned char *r = sqlite3_column_text(st, 3);
		f->report = r != NULL ? strdup((const char *)r) : NULL;
		f->started_at = sqlite3_column_double(st, 4);
		f->finished_at = sqlite3_column_double(st, 5);
		copy_col(st, 6, f->route, sizeof(f->route));
		if (f->finished_at > out->finished_at)
			out->finished_at = f->finished_at;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT destination, sum(state = 'sent'), sum(state = 'failed'),"
			       " max(updated_at) FROM outbox WHERE job_id IN (" LATEST_JOBS ")"
			       " GROUP BY destination ORDER BY destination",
			       -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, out->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && out->ndest < INDEX_STUDY_MAX_DESTINATIONS) {
		copy_col(st, 0, out->dest[out->ndest].name, sizeof(out->dest[0].name));
		out->dest[out->ndest].sent = sqlite3_column_int64(st, 1);
		out->dest[out->ndest].failed = sqlite3_column_int64(st, 2);
		if (sqlite3_column_double(st, 3) > out->finished_at)
			out->finished_at = sqlite3_column_double(st, 3);
		out->ndest++;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT i.path FROM instances i JOIN series s ON s.id = i.series_id"
			       " WHERE s.study_id = ?1 LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, out->id);
	if (sqlite3_step(st) == SQLITE_ROW)
		copy_col(st, 0, out->instance_path, sizeof(out->instance_path));
	ok = true;
fail:
	if (!ok)
		index_sql_fail(err, idx, "reading a finished study");
	sqlite3_finalize(st);
	return ok;
}

int index_study_finished_next(struct r3d_err *err, struct index *idx, struct finished_study *out)
{
	sqlite3_stmt *st = NULL;
	int found = 0, rc;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(
		    idx->db,
		    "SELECT st.id, st.study_uid, st.first_received FROM studies st WHERE st.pending = 0"
		    " AND EXISTS (SELECT 1 FROM jobs j JOIN series s ON s.id = j.series_id"
		    "  WHERE s.study_id = st.id AND j.state IN ('done', 'failed', 'skipped')"
		    "  AND j.finished_at > coalesce(st.notified_at, 0))"
		    " AND NOT EXISTS (SELECT 1 FROM jobs j JOIN series s ON s.id = j.series_id"
		    "  WHERE s.study_id = st.id AND j.state IN ('queued', 'running', 'waiting'))"
		    /* every object sent or final: failed, or dropped by the jobs API */
		    " AND NOT EXISTS (SELECT 1 FROM outbox o JOIN jobs j ON j.id = o.job_id"
		    "  JOIN series s ON s.id = j.series_id WHERE s.study_id = st.id"
		    "  AND o.state = 'pending')"
		    " ORDER BY st.id LIMIT 1",
		    -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "finding finished studies");
		pthread_mutex_unlock(&idx->lock);
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->id = sqlite3_column_int64(st, 0);
		copy_col(st, 1, out->study_uid, sizeof(out->study_uid));
		out->received_at = sqlite3_column_double(st, 2);
		found = 1;
	} else if (rc != SQLITE_DONE) {
		index_sql_fail(err, idx, "finding finished studies");
		found = -1;
	}
	sqlite3_finalize(st);
	if (found == 1 && !fill_locked(err, idx, out))
		found = -1;
	pthread_mutex_unlock(&idx->lock);
	if (found < 0)
		index_finished_study_free(out);
	return found;
}

void index_finished_study_free(struct finished_study *s)
{
	for (int i = 0; i < s->nseries; i++) {
		free(s->series[i].report);
		s->series[i].report = NULL;
	}
}

bool index_notification_add(struct r3d_err *err, struct index *idx, int64_t study_id,
			    const char *study_uid, const char *const *urls, int nurls,
			    const char *webhook_id, const char *body, double now)
{
	sqlite3_stmt *st = NULL;
	bool ok;

	pthread_mutex_lock(&idx->lock);
	ok = index_exec(err, idx, "BEGIN IMMEDIATE");
	for (int i = 0; ok && i < nurls; i++) {
		ok = sqlite3_prepare_v2(idx->db,
					"INSERT INTO notifications(study_uid, url, webhook_id, body, state,"
					" next_attempt_at, created_at, updated_at)"
					" VALUES(?1, ?2, ?3, ?4, 'pending', ?5, ?5, ?5)",
					-1, &st, NULL) == SQLITE_OK;
		if (ok) {
			sqlite3_bind_text(st, 1, study_uid, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, urls[i], -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, webhook_id, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 4, body, -1, SQLITE_STATIC);
			sqlite3_bind_double(st, 5, now);
			ok = sqlite3_step(st) == SQLITE_DONE;
		}
		if (!ok)
			index_sql_fail(err, idx, "queueing a message");
		sqlite3_finalize(st);
		st = NULL;
	}
	if (ok) {
		ok = sqlite3_prepare_v2(idx->db, "UPDATE studies SET notified_at = ?2 WHERE id = ?1", -1,
					&st, NULL) == SQLITE_OK;
		if (ok) {
			sqlite3_bind_int64(st, 1, study_id);
			sqlite3_bind_double(st, 2, now);
			ok = sqlite3_step(st) == SQLITE_DONE;
		}
		if (!ok)
			index_sql_fail(err, idx, "marking a study notified");
		sqlite3_finalize(st);
	}
	if (ok)
		ok = index_exec(err, idx, "COMMIT");
	if (!ok)
		index_exec(NULL, idx, "ROLLBACK");
	pthread_mutex_unlock(&idx->lock);
	return ok;
}

int index_notification_due(struct r3d_err *err, struct index *idx, double now,
			   struct notification_row *rows, int max)
{
	sqlite3_stmt *st = NULL;
	int n = 0, rc;

	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT id, url, webhook_id, body, attempts FROM notifications"
			       " WHERE state = 'pending' AND next_attempt_at <= ?1"
			       " ORDER BY next_attempt_at, id LIMIT ?2",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "reading messages");
		pthread_mutex_unlock(&idx->lock);
		return -1;
	}
	sqlite3_bind_double(st, 1, now);
	sqlite3_bind_int(st, 2, max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < max) {
		struct notification_row *r = &rows[n];
		r->id = sqlite3_column_int64(st, 0);
		copy_col(st, 1, r->url, sizeof(r->url));
		copy_col(st, 2, r->webhook_id, sizeof(r->webhook_id));
		r->body = strdup((const char *)sqlite3_column_text(st, 3));
		r->attempts = sqlite3_column_int(st, 4);
		if (r->body == NULL)
			break;
		n++;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return n;
}

bool index_notification_result(struct r3d_err *err, struct index *idx, int64_t id, const char *state,
			       int attempts, double next_attempt_at, long http_status, int curl_code,
			       const char *error, double now)
{
	sqlite3_stmt *st = NULL;
	bool ok;

	pthread_mutex_lock(&idx->lock);
	ok = index_exec(err, idx, "BEGIN IMMEDIATE");
	if (ok) {
		ok = sqlite3_prepare_v2(idx->db,
					"INSERT INTO notification_attempts(notification_id, at, http_status,"
					" curl_code, error) VALUES(?1, ?2, ?3, ?4, ?5)",
					-1, &st, NULL) == SQLITE_OK;
		if (ok) {
			sqlite3_bind_int64(st, 1, id);
			sqlite3_bind_double(st, 2, now);
			if (http_status > 0)
				sqlite3_bind_int64(st, 3, http_status);
			sqlite3_bind_int(st, 4, curl_code);
			if (error != NULL && error[0] != '\0')
				sqlite3_bind_text(st, 5, error, -1, SQLITE_TRANSIENT);
			ok = sqlite3_step(st) == SQLITE_DONE;
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	if (ok) {
		ok = sqlite3_prepare_v2(idx->db,
					"UPDATE notifications SET state = ?2, attempts = ?3, next_attempt_at = ?4,"
					" last_http_status = ?5, last_error = ?6, updated_at = ?7 WHERE id = ?1",
					-1, &st, NULL) == SQLITE_OK;
		if (ok) {
			sqlite3_bind_int64(st, 1, id);
			sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
			sqlite3_bind_int(st, 3, attempts);
			sqlite3_bind_double(st, 4, next_attempt_at);
			if (http_status > 0)
				sqlite3_bind_int64(st, 5, http_status);
			if (error != NULL && error[0] != '\0')
				sqlite3_bind_text(st, 6, error, -1, SQLITE_TRANSIENT);
			sqlite3_bind_double(st, 7, now);
			ok = sqlite3_step(st) == SQLITE_DONE;
		}
		sqlite3_finalize(st);
	}
	if (ok)
		ok = index_exec(err, idx, "COMMIT");
	else
		index_sql_fail(err, idx, "recording a message attempt");
	if (!ok)
		index_exec(NULL, idx, "ROLLBACK");
	pthread_mutex_unlock(&idx->lock);
	return ok;
}

bool index_notification_counts(struct r3d_err *err, struct index *idx, struct notification_counts *out)
{
	sqlite3_stmt *st = NULL;
	bool ok;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&idx->lock);
	ok = sqlite3_prepare_v2(idx->db,
				"SELECT (SELECT count(*) FROM notifications WHERE state = 'pending'),"
				" (SELECT count(*) FROM notifications WHERE state = 'delivered'),"
				" (SELECT count(*) FROM notifications WHERE state = 'failed'),"
				" (SELECT count(*) FROM notification_attempts),"
				" (SELECT count(*) FROM notification_attempts"
				"  WHERE http_status IS NULL OR http_status < 200 OR http_status > 299)",
				-1, &st, NULL) == SQLITE_OK &&
	     sqlite3_step(st) == SQLITE_ROW;
	if (ok) {
		out->pending = sqlite3_column_int64(st, 0);
		out->delivered = sqlite3_column_int64(st, 1);
		out->failed = sqlite3_column_int64(st, 2);
		out->attempts = sqlite3_column_int64(st, 3);
		out->attempts_failed = sqlite3_column_int64(st, 4);
	} else {
		index_sql_fail(err, idx, "counting messages");
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return ok;
}
