/*
 * viewer_links.c: the index side of the 3D page (see r3d/index.h): one
 * capability token per study with its expiry, the lookup that the HTTP
 * thread does for every page request, and the done series of a study. Any
 * thread; takes the index lock. Tokens are never logged here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index_internal.h"

#define VIEWER_MAX_SERIES INDEX_STUDY_MAX_SERIES

static void copy_col(sqlite3_stmt *st, int col, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, size, "%s", t != NULL ? (const char *)t : "");
}

bool index_viewer_link_ensure(struct r3d_err *err, struct index *idx, const char *study_uid,
			      const char *candidate, double now, double ttl_s,
			      char token_out[INDEX_VIEWER_TOKEN_MAX], double *expires_at,
			      bool *created)
{
	sqlite3_stmt *st = NULL;
	bool ok = false;
	int rc;

	token_out[0] = '\0';
	*expires_at = 0;
	*created = false;
	if (candidate == NULL || candidate[0] == '\0' ||
	    strlen(candidate) >= INDEX_VIEWER_TOKEN_MAX || !(ttl_s > 0))
		return r3d_err_set(err, R3D_EINVAL, "index: viewer link: bad token or lifetime");
	pthread_mutex_lock(&idx->lock);
	if (!index_exec(err, idx, "BEGIN IMMEDIATE"))
		goto unlock;
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT token, expires_at FROM viewer_links WHERE study_uid = ?1"
			       " AND expires_at > ?2",
			       -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, study_uid, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		copy_col(st, 0, token_out, INDEX_VIEWER_TOKEN_MAX);
		*expires_at = sqlite3_column_double(st, 1);
	} else if (rc != SQLITE_DONE) {
		goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (token_out[0] == '\0') {
		/* None, or an expired one: the candidate replaces it. */
		if (sqlite3_prepare_v2(idx->db,
				       "INSERT INTO viewer_links(token, study_uid, created_at, expires_at)"
				       " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(study_uid) DO UPDATE SET"
				       " token = excluded.token, created_at = excluded.created_at,"
				       " expires_at = excluded.expires_at",
				       -1, &st, NULL) != SQLITE_OK)
			goto fail;
		sqlite3_bind_text(st, 1, candidate, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, study_uid, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 3, now);
		sqlite3_bind_double(st, 4, now + ttl_s);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto fail;
		snprintf(token_out, INDEX_VIEWER_TOKEN_MAX, "%s", candidate);
		*expires_at = now + ttl_s;
		*created = true;
	}
	if (!index_exec(err, idx, "COMMIT"))
		goto rollback;
	ok = true;
	goto unlock;
fail:
	index_sql_fail(err, idx, "storing a viewer link");
rollback:
	index_exec(NULL, idx, "ROLLBACK");
	token_out[0] = '\0';
	*created = false;
unlock:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return ok;
}

int index_viewer_link_find(struct r3d_err *err, struct index *idx, const char *token, double now,
			   char study_uid[BRIDGE_UID_MAX + 1], double *expires_at)
{
	sqlite3_stmt *st = NULL;
	int found = 0, rc;

	study_uid[0] = '\0';
	if (expires_at != NULL)
		*expires_at = 0;
	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT study_uid, expires_at FROM viewer_links WHERE token = ?1"
			       " AND expires_at > ?2",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "reading a viewer link");
		pthread_mutex_unlock(&idx->lock);
		return -1;
	}
	sqlite3_bind_text(st, 1, token, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		copy_col(st, 0, study_uid, BRIDGE_UID_MAX + 1);
		if (expires_at != NULL)
			*expires_at = sqlite3_column_double(st, 1);
		found = 1;
	} else if (rc != SQLITE_DONE) {
		index_sql_fail(err, idx, "reading a viewer link");
		found = -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return found;
}

bool index_viewer_link_count(struct r3d_err *err, struct index *idx, double now, int64_t *active)
{
	sqlite3_stmt *st = NULL;
	bool ok;

	*active = 0;
	pthread_mutex_lock(&idx->lock);
	ok = sqlite3_prepare_v2(idx->db, "SELECT count(*) FROM viewer_links WHERE expires_at > ?1", -1,
				&st, NULL) == SQLITE_OK;
	if (ok) {
		sqlite3_bind_double(st, 1, now);
		ok = sqlite3_step(st) == SQLITE_ROW;
	}
	if (ok)
		*active = sqlite3_column_int64(st, 0);
	else
		index_sql_fail(err, idx, "counting viewer links");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return ok;
}

int index_viewer_study_series(struct r3d_err *err, struct index *idx, const char *study_uid,
			      struct index_viewer_series **out)
{
	sqlite3_stmt *st = NULL;
	struct index_viewer_series *rows;
	int n = 0, rc;

	*out = NULL;
	rows = calloc(VIEWER_MAX_SERIES, sizeof(*rows));
	if (rows == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "index: out of memory");
		return -1;
	}
	pthread_mutex_lock(&idx->lock);
	/* The latest finished job of each series; only those that are done. */
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT s.series_uid, s.series_number, s.series_description,"
			       " j.results_dir, j.result FROM jobs j JOIN series s ON s.id = j.series_id"
			       " JOIN studies st ON st.id = s.study_id WHERE st.study_uid = ?1"
			       " AND j.id IN (SELECT max(j2.id) FROM jobs j2 WHERE j2.series_id = s.id"
			       "  AND j2.state IN ('done', 'failed', 'skipped'))"
			       " AND j.state = 'done' AND j.results_dir IS NOT NULL"
			       " ORDER BY coalesce(s.series_number, 2147483647), s.id",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "reading a study's models");
		pthread_mutex_unlock(&idx->lock);
		free(rows);
		return -1;
	}
	sqlite3_bind_text(st, 1, study_uid, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < VIEWER_MAX_SERIES) {
		struct index_viewer_series *r = &rows[n];
		const unsigned char *rep = sqlite3_column_text(st, 4);

		copy_col(st, 0, r->series_uid, sizeof(r->series_uid));
		r->series_number = sqlite3_column_type(st, 1) == SQLITE_NULL ?
					   -1 : (long)sqlite3_column_int64(st, 1);
		copy_col(st, 2, r->series_description, sizeof(r->series_description));
		copy_col(st, 3, r->results_dir, sizeof(r->results_dir));
		r->report = rep != NULL ? strdup((const char *)rep) : NULL;
		n++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		index_sql_fail(err, idx, "reading a study's models");
		sqlite3_finalize(st);
		pthread_mutex_unlock(&idx->lock);
		index_viewer_series_free(rows, n);
		return -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	*out = rows;
	return n;
}

void index_viewer_series_free(struct index_viewer_series *rows, int n)
{
	if (rows == NULL)
		return;
	for (int i = 0; i < n; i++)
		free(rows[i].report);
	free(rows);
}
