/*
 * api.c: the index side of the jobs API (see "jobs API" in r3d/index.h):
 * the studies, series, jobs and outbox rows the HTTP API lists, and the
 * changes it asks for (retry or cancel a job, re-run a study with another
 * route, retry or drop an outbox row). Nothing here reads patient data: the
 * tables hold none. Any thread (libmicrohttpd's, a worker's); takes the
 * index lock.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index_internal.h"

#define API_CANCEL_REASON "cancelled by the jobs API"

static void col_text(sqlite3_stmt *st, int col, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, size, "%s", t != NULL ? (const char *)t : "");
}

static char *col_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return t != NULL ? strdup((const char *)t) : NULL;
}

static int clamp_limit(int limit)
{
	if (limit <= 0 || limit > INDEX_API_LIST_MAX)
		return INDEX_API_LIST_MAX;
	return limit;
}

/* Grows *rows (of elem bytes each) to hold one more; false when out of memory. */
static bool rows_grow(void **rows, int n, int *cap, size_t elem)
{
	if (n < *cap)
		return true;
	int ncap = *cap ? *cap * 2 : 16;
	void *p = realloc(*rows, (size_t)ncap * elem);
	if (p == NULL)
		return false;
	*rows = p;
	*cap = ncap;
	return true;
}

/* ------------------------------------------------------------------ */
/* Lists                                                               */
/* ------------------------------------------------------------------ */

int index_api_studies(struct r3d_err *err, struct index *idx, const struct api_filter *f,
		      struct api_study **out)
{
	sqlite3_stmt *st = NULL;
	struct api_study *rows = NULL;
	int n = 0, cap = 0, rc;

	*out = NULL;
	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT id, study_uid, first_received, last_received, coalesce(stable_at, 0),"
			       " pending, coalesce(route_override, '') FROM studies"
			       " WHERE (?1 = 0 OR id = ?1) ORDER BY last_received DESC, id DESC LIMIT ?2",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "listing studies");
		pthread_mutex_unlock(&idx->lock);
		return -1;
	}
	sqlite3_bind_int64(st, 1, f->study_id);
	sqlite3_bind_int(st, 2, clamp_limit(f->limit));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!rows_grow((void **)&rows, n, &cap, sizeof(*rows))) {
			rc = SQLITE_NOMEM;
			break;
		}
		struct api_study *r = &rows[n++];
		memset(r, 0, sizeof(*r));
		r->id = sqlite3_column_int64(st, 0);
		col_text(st, 1, r->study_uid, sizeof(r->study_uid));
		r->first_received = sqlite3_column_double(st, 2);
		r->last_received = sqlite3_column_double(st, 3);
		r->stable_at = sqlite3_column_double(st, 4);
		r->pending = sqlite3_column_int(st, 5) != 0;
		col_text(st, 6, r->route_override, sizeof(r->route_override));
	}
	if (rc != SQLITE_DONE) {
		if (rc == SQLITE_NOMEM)
			r3d_err_set(err, R3D_ENOMEM, "index: out of memory");
		else
			index_sql_fail(err, idx, "listing studies");
		free(rows);
		rows = NULL;
		n = -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	*out = rows;
	return n;
}

int index_api_series(struct r3d_err *err, struct index *idx, int64_t study_id,
		     struct api_series **out)
{
	sqlite3_stmt *st = NULL;
	struct api_series *rows = NULL;
	int n = 0, cap = 0, rc;

	*out = NULL;
	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT s.id, s.study_id, s.series_uid, coalesce(s.modality, ''),"
			       " coalesce(s.series_number, -1), coalesce(s.series_description, ''),"
			       " (SELECT count(*) FROM instances i WHERE i.series_id = s.id), s.status,"
			       " coalesce(s.reason, '') FROM series s WHERE s.study_id = ?1"
			       " ORDER BY s.series_number IS NULL, s.series_number, s.id",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "listing series");
		pthread_mutex_unlock(&idx->lock);
		return -1;
	}
	sqlite3_bind_int64(st, 1, study_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!rows_grow((void **)&rows, n, &cap, sizeof(*rows))) {
			rc = SQLITE_NOMEM;
			break;
		}
		struct api_series *r = &rows[n++];
		memset(r, 0, sizeof(*r));
		r->id = sqlite3_column_int64(st, 0);
		r->study_id = sqlite3_column_int64(st, 1);
		col_text(st, 2, r->series_uid, sizeof(r->series_uid));
		col_text(st, 3, r->modality, sizeof(r->modality));
		r->series_number = (long)sqlite3_column_int64(st, 4);
		col_text(st, 5, r->description, sizeof(r->description));
		r->instances = sqlite3_column_int64(st, 6);
		col_text(st, 7, r->status, sizeof(r->status));
		col_text(st, 8, r->reason, sizeof(r->reason));
	}
	if (rc != SQLITE_DONE) {
		if (rc == SQLITE_NOMEM)
			r3d_err_set(err, R3D_ENOMEM, "index: out of memory");
		else
			index_sql_fail(err, idx, "listing series");
		free(rows);
		rows = NULL;
		n = -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	*out = rows;
	return n;
}

/* The columns of a job, as fill_job() reads them. */
#define JOB_COLUMNS                                                                           \
	"j.id, j.series_id, s.study_id, j.state,"                                             \
	" CASE WHEN j.import_instance_id IS NULL THEN 'series' ELSE 'import' END,"            \
	" s.series_uid, coalesce((SELECT series_uid FROM series WHERE id = j.source_series_id), ''),"\
	" st.study_uid, coalesce(j.route, ''), coalesce(j.reason, ''), j.attempts,"          \
	" j.cancel_requested, j.created_at, j.updated_at, coalesce(j.started_at, 0),"         \
	" coalesce(j.finished_at, 0)"
#define JOB_FROM " FROM jobs j JOIN series s ON s.id = j.series_id JOIN studies st ON st.id = s.study_id"

static void fill_job(sqlite3_stmt *st, struct api_job *r)
{
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(st, 0);
	r->series_id = sqlite3_column_int64(st, 1);
	r->study_id = sqlite3_column_int64(st, 2);
	col_text(st, 3, r->state, sizeof(r->state));
	col_text(st, 4, r->kind, sizeof(r->kind));
	col_text(st, 5, r->series_uid, sizeof(r->series_uid));
	col_text(st, 6, r->source_series_uid, sizeof(r->source_series_uid));
	col_text(st, 7, r->study_uid, sizeof(r->study_uid));
	col_text(st, 8, r->route, sizeof(r->route));
	col_text(st, 9, r->reason, sizeof(r->reason));
	r->attempts = sqlite3_column_int(st, 10);
	r->cancel_requested = sqlite3_column_int(st, 11) != 0;
	r->created_at = sqlite3_column_double(st, 12);
	r->updated_at = sqlite3_column_double(st, 13);
	r->started_at = sqlite3_column_double(st, 14);
	r->finished_at = sqlite3_column_double(st, 15);
}

int index_api_jobs(struct r3d_err *err, struct index *idx, const struct api_filter *f,
		   struct api_job **out)
{
	sqlite3_stmt *st = NULL;
	struct api_job *rows = NULL;
	int n = 0, cap = 0, rc;

	*out = NULL;
	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT " JOB_COLUMNS JOB_FROM
			       " WHERE (?1 IS NULL OR j.state = ?1) AND (?2 = 0 OR s.study_id = ?2)"
			       " ORDER BY j.id DESC LIMIT ?3",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "listing jobs");
		pthread_mutex_unlock(&idx->lock);
		return -1;
	}
	if (f->state != NULL)
		sqlite3_bind_text(st, 1, f->state, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, f->study_id);
	sqlite3_bind_int(st, 3, clamp_limit(f->limit));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!rows_grow((void **)&rows, n, &cap, sizeof(*rows))) {
			rc = SQLITE_NOMEM;
			break;
		}
		fill_job(st, &rows[n++]);
	}
	if (rc != SQLITE_DONE) {
		if (rc == SQLITE_NOMEM)
			r3d_err_set(err, R3D_ENOMEM, "index: out of memory");
		else
			index_sql_fail(err, idx, "listing jobs");
		free(rows);
		rows = NULL;
		n = -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	*out = rows;
	return n;
}

int index_api_job_get(struct r3d_err *err, struct index *idx, int64_t id, struct api_job *out)
{
	sqlite3_stmt *st = NULL;
	int found = 0, rc;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db, "SELECT " JOB_COLUMNS ", j.result, j.selection" JOB_FROM
			       " WHERE j.id = ?1", -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "reading a job");
		pthread_mutex_unlock(&idx->lock);
		return -1;
	}
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		fill_job(st, out);
		out->result = col_dup(st, 16);
		out->selection = col_dup(st, 17);
		found = 1;
	} else if (rc != SQLITE_DONE) {
		index_sql_fail(err, idx, "reading a job");
		found = -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return found;
}

void index_api_job_free(struct api_job *j)
{
	free(j->result);
	free(j->selection);
	j->result = j->selection = NULL;
}

int index_api_outbox(struct r3d_err *err, struct index *idx, const struct api_filter *f,
		     struct api_outbox **out)
{
	sqlite3_stmt *st = NULL;
	struct api_outbox *rows = NULL;
	int n = 0, cap = 0, rc;

	*out = NULL;
	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT id, job_id, destination, sop_instance_uid, state, attempts,"
			       " coalesce(dimse_status, -1), next_attempt_at, created_at, updated_at,"
			       " coalesce(last_error, ''), coalesce(kind, '') FROM outbox"
			       " WHERE (?1 IS NULL OR state = ?1) AND (?2 = 0 OR job_id = ?2)"
			       " ORDER BY CASE WHEN ?2 = 0 THEN -id ELSE id END LIMIT ?3",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "listing the outbox");
		pthread_mutex_unlock(&idx->lock);
		return -1;
	}
	if (f->state != NULL)
		sqlite3_bind_text(st, 1, f->state, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, f->job_id);
	sqlite3_bind_int(st, 3, clamp_limit(f->limit));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!rows_grow((void **)&rows, n, &cap, sizeof(*rows))) {
			rc = SQLITE_NOMEM;
			break;
		}
		struct api_outbox *r = &rows[n++];
		memset(r, 0, sizeof(*r));
		r->id = sqlite3_column_int64(st, 0);
		r->job_id = sqlite3_column_int64(st, 1);
		col_text(st, 2, r->destination, sizeof(r->destination));
		col_text(st, 3, r->sop_instance_uid, sizeof(r->sop_instance_uid));
		col_text(st, 4, r->state, sizeof(r->state));
		r->attempts = sqlite3_column_int(st, 5);
		r->dimse_status = sqlite3_column_int(st, 6);
		r->next_attempt_at = sqlite3_column_double(st, 7);
		r->created_at = sqlite3_column_double(st, 8);
		r->updated_at = sqlite3_column_double(st, 9);
		col_text(st, 10, r->last_error, sizeof(r->last_error));
		col_text(st, 11, r->kind, sizeof(r->kind));
	}
	if (rc != SQLITE_DONE) {
		if (rc == SQLITE_NOMEM)
			r3d_err_set(err, R3D_ENOMEM, "index: out of memory");
		else
			index_sql_fail(err, idx, "listing the outbox");
		free(rows);
		rows = NULL;
		n = -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	*out = rows;
	return n;
}

/* ------------------------------------------------------------------ */
/* Changes                                                             */
/* ------------------------------------------------------------------ */

/* The state sql (?1 = id) reads: 1 found, 0 no such row, -1 error. Lock held. */
static int row_state(struct r3d_err *err, struct index *idx, const char *sql, int64_t id,
		     char state[16])
{
	sqlite3_stmt *st = NULL;
	int found = 0, rc;

	state[0] = '\0';
	if (sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "reading a state");
		return -1;
	}
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		col_text(st, 0, state, 16);
		found = 1;
	} else if (rc != SQLITE_DONE) {
		index_sql_fail(err, idx, "reading a state");
		found = -1;
	}
	sqlite3_finalize(st);
	return found;
}

/* Runs one change with ?1 = id, ?2 = now and ?3 = text (when the statement
 * has it); *changes is how many rows it changed. Lock held. */
static bool change(struct r3d_err *err, struct index *idx, const char *sql, int64_t id, double now,
		   const char *text, int *changes)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL) != SQLITE_OK)
		return index_sql_fail(err, idx, "preparing a change");
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_double(st, 2, now);
	if (text != NULL && sqlite3_bind_parameter_count(st) >= 3)
		sqlite3_bind_text(st, 3, text, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return index_sql_fail(err, idx, "changing a row");
	*changes = sqlite3_changes(idx->db);
	return true;
}

static bool begin(struct r3d_err *err, struct index *idx)
{
	pthread_mutex_lock(&idx->lock);
	if (!index_exec(err, idx, "BEGIN IMMEDIATE")) {
		pthread_mutex_unlock(&idx->lock);
		return false;
	}
	return true;
}

/* Commits on OK (rolls back otherwise) and drops the lock. */
static enum index_api_rc end(struct r3d_err *err, struct index *idx, enum index_api_rc rc)
{
	if (rc == INDEX_API_OK && !index_exec(err, idx, "COMMIT"))
		rc = INDEX_API_ERROR;
	if (rc != INDEX_API_OK)
		index_exec(NULL, idx, "ROLLBACK");
	pthread_mutex_unlock(&idx->lock);
	return rc;
}

/* A job of the same series and import object that is not finished: its id, 0 none, -1 error. */
static int64_t job_open_twin(struct r3d_err *err, struct index *idx, int64_t id)
{
	sqlite3_stmt *st = NULL;
	int64_t twin = 0;
	int rc;

	if (sqlite3_prepare_v2(idx->db,
			       "SELECT o.id FROM jobs o JOIN jobs j ON j.id = ?1 WHERE o.series_id = j.series_id"
			       " AND o.import_instance_id IS j.import_instance_id"
			       " AND o.state IN ('queued', 'waiting', 'running') ORDER BY o.id LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "reading jobs");
		return -1;
	}
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		twin = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE) {
		index_sql_fail(err, idx, "reading jobs");
		twin = -1;
	}
	sqlite3_finalize(st);
	return twin;
}

enum index_api_rc index_api_job_retry(struct r3d_err *err, struct index *idx, int64_t id, double now,
				      int64_t *new_id, int64_t *conflict_job, char state[16])
{
	enum index_api_rc rc = INDEX_API_ERROR;
	char reason[64];
	int found, n = 0;

	*new_id = 0;
	*conflict_job = 0;
	if (!begin(err, idx))
		return INDEX_API_ERROR;
	found = row_state(err, idx, "SELECT state FROM jobs WHERE id = ?1", id, state);
	if (found <= 0) {
		rc = found == 0 ? INDEX_API_NOT_FOUND : INDEX_API_ERROR;
		goto out;
	}
	if (strcmp(state, "failed") != 0 && strcmp(state, "skipped") != 0 &&
	    strcmp(state, "cancelled") != 0) {
		rc = INDEX_API_CONFLICT;
		goto out;
	}
	*conflict_job = job_open_twin(err, idx, id);
	if (*conflict_job != 0) {
		rc = *conflict_job < 0 ? INDEX_API_ERROR : INDEX_API_CONFLICT;
		if (*conflict_job < 0)
			*conflict_job = 0;
		goto out;
	}
	/* The same series, import object, source and route; an import whose
	 * source never came waits for it again, as long as it did before. */
	snprintf(reason, sizeof(reason), "retry of job %lld (jobs API)", (long long)id);
	if (!change(err, idx,
		    "INSERT INTO jobs(series_id, state, reason, instances, created_at, updated_at,"
		    " import_instance_id, source_series_id, wait_until, route, selection)"
		    " SELECT series_id,"
		    "  CASE WHEN import_instance_id IS NOT NULL AND source_series_id IS NULL"
		    "   THEN 'waiting' ELSE 'queued' END, ?3,"
		    "  (SELECT count(*) FROM instances i WHERE i.series_id = coalesce(j.source_series_id,"
		    "   j.series_id)), ?2, ?2, import_instance_id, source_series_id,"
		    "  CASE WHEN import_instance_id IS NOT NULL AND source_series_id IS NULL"
		    "   THEN ?2 + max(coalesce(wait_until, created_at) - created_at, 0) END,"
		    "  route, selection FROM jobs j WHERE j.id = ?1",
		    id, now, reason, &n) || n != 1)
		goto out;
	*new_id = sqlite3_last_insert_rowid(idx->db);
	rc = INDEX_API_OK;
out:
	return end(err, idx, rc);
}

enum index_api_rc index_api_job_cancel(struct r3d_err *err, struct index *idx, int64_t id, double now,
				       char state[16])
{
	enum index_api_rc rc = INDEX_API_ERROR;
	int n = 0, found;

	if (!begin(err, idx))
		return INDEX_API_ERROR;
	found = row_state(err, idx, "SELECT state FROM jobs WHERE id = ?1", id, state);
	if (found <= 0) {
		rc = found == 0 ? INDEX_API_NOT_FOUND : INDEX_API_ERROR;
		goto out;
	}
	if (strcmp(state, "queued") == 0 || strcmp(state, "waiting") == 0) {
		if (!change(err, idx,
			    "UPDATE jobs SET state = 'cancelled', reason = ?3, finished_at = ?2,"
			    " updated_at = ?2 WHERE id = ?1 AND state IN ('queued', 'waiting')",
			    id, now, API_CANCEL_REASON, &n))
			goto out;
		snprintf(state, 16, "cancelled");
		rc = INDEX_API_OK;
	} else if (strcmp(state, "running") == 0) {
		/* Its worker sees it at the next stage boundary. */
		if (!change(err, idx, "UPDATE jobs SET cancel_requested = 1, updated_at = ?2 WHERE id = ?1",
			    id, now, NULL, &n))
			goto out;
		rc = INDEX_API_OK;
	} else {
		rc = INDEX_API_CONFLICT;
	}
out:
	return end(err, idx, rc);
}

int index_job_cancel_requested(struct r3d_err *err, struct index *idx, int64_t id)
{
	sqlite3_stmt *st = NULL;
	int yes = -1;

	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db, "SELECT cancel_requested FROM jobs WHERE id = ?1", -1, &st,
			       NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "reading a job");
		pthread_mutex_unlock(&idx->lock);
		return -1;
	}
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		yes = sqlite3_column_int(st, 0) != 0;
	else if (rc == SQLITE_DONE)
		yes = 0;
	else
		index_sql_fail(err, idx, "reading a job");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return yes;
}

enum index_api_rc index_api_study_rerun(struct r3d_err *err, struct index *idx, const char *study_uid,
					const char *route, double now)
{
	enum index_api_rc rc = INDEX_API_ERROR;
	sqlite3_stmt *st = NULL;
	int64_t study_id = 0;
	int n = 0, step;

	if (!begin(err, idx))
		return INDEX_API_ERROR;
	if (sqlite3_prepare_v2(idx->db, "SELECT id FROM studies WHERE study_uid = ?1", -1, &st, NULL) !=
	    SQLITE_OK) {
		index_sql_fail(err, idx, "reading a study");
		goto out;
	}
	sqlite3_bind_text(st, 1, study_uid, -1, SQLITE_TRANSIENT);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		study_id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (step != SQLITE_ROW) {
		rc = step == SQLITE_DONE ? INDEX_API_NOT_FOUND : INDEX_API_ERROR;
		if (step != SQLITE_DONE)
			index_sql_fail(err, idx, "reading a study");
		goto out;
	}
	/* The next stable-study pass sees the study stable at once (nothing
	 * new arrived) and chooses its series again, with the route given. */
	if (!change(err, idx, "UPDATE studies SET route_override = ?3, pending = 1 WHERE id = ?1",
		    study_id, now, route, &n) ||
	    !change(err, idx, "UPDATE series SET pending = 1 WHERE study_id = ?1", study_id, now, NULL,
		    &n))
		goto out;
	rc = INDEX_API_OK;
out:
	return end(err, idx, rc);
}

enum index_api_rc index_api_outbox_retry(struct r3d_err *err, struct index *idx, int64_t id,
					 double now, char state[16])
{
	enum index_api_rc rc = INDEX_API_ERROR;
	int n = 0, found;

	if (!begin(err, idx))
		return INDEX_API_ERROR;
	found = row_state(err, idx, "SELECT state FROM outbox WHERE id = ?1", id, state);
	if (found <= 0) {
		rc = found == 0 ? INDEX_API_NOT_FOUND : INDEX_API_ERROR;
		goto out;
	}
	if (strcmp(state, "failed") != 0) {
		rc = INDEX_API_CONFLICT;
		goto out;
	}
	if (!change(err, idx,
		    "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?2,"
		    " updated_at = ?2 WHERE id = ?1 AND state = 'failed'",
		    id, now, NULL, &n))
		goto out;
	snprintf(state, 16, "pending");
	rc = INDEX_API_OK;
out:
	return end(err, idx, rc);
}

enum index_api_rc index_api_outbox_drop(struct r3d_err *err, struct index *idx, int64_t id,
					double now, char state[16])
{
	enum index_api_rc rc = INDEX_API_ERROR;
	int n = 0, found;

	if (!begin(err, idx))
		return INDEX_API_ERROR;
	found = row_state(err, idx, "SELECT state FROM outbox WHERE id = ?1", id, state);
	if (found <= 0) {
		rc = found == 0 ? INDEX_API_NOT_FOUND : INDEX_API_ERROR;
		goto out;
	}
	if (strcmp(state, "pending") != 0 && strcmp(state, "failed") != 0) {
		rc = INDEX_API_CONFLICT;
		goto out;
	}
	if (!change(err, idx,
		    "UPDATE outbox SET state = 'dropped', updated_at = ?2"
		    " WHERE id = ?1 AND state IN ('pending', 'failed')",
		    id, now, NULL, &n))
		goto out;
	snprintf(state, 16, "dropped");
	rc = INDEX_API_OK;
out:
	return end(err, idx, rc);
}
