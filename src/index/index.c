/*
 * index.c: the SQLite index: schema and migrations, instance upserts,
 * counters and recovery (see r3d/index.h). Any thread; one mutex serialises
 * the single connection.
 */
#include "r3d/index.h"

#include <assert.h>
#include <pthread.h>
#include <sqlite3.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index_internal.h"
#include "r3d/log.h"
#include "r3d/route.h"

#define INDEX_BUSY_TIMEOUT_MS 5000
#define INDEX_TOUCH_S 1.0   /* see needs_touch() */

/* Each entry moves the schema from version i to i + 1. Never edit a shipped
 * entry: append a new one. */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE studies ("
	"  id INTEGER PRIMARY KEY,"
	"  study_uid TEXT NOT NULL UNIQUE,"
	"  first_received REAL NOT NULL,"
	"  last_received REAL NOT NULL,"
	"  calling_ae TEXT,"
	"  pending INTEGER NOT NULL DEFAULT 1,"
	"  stable_at REAL);"
	"CREATE TABLE series ("
	"  id INTEGER PRIMARY KEY,"
	"  study_id INTEGER NOT NULL REFERENCES studies(id),"
	"  series_uid TEXT NOT NULL UNIQUE,"
	"  modality TEXT,"
	"  series_description TEXT,"
	"  series_number INTEGER,"
	"  first_received REAL NOT NULL,"
	"  last_received REAL NOT NULL,"
	"  calling_ae TEXT,"
	"  pending INTEGER NOT NULL DEFAULT 1,"
	"  status TEXT NOT NULL DEFAULT 'receiving',"
	"  reason TEXT);"
	"CREATE INDEX series_study ON series(study_id);"
	"CREATE TABLE instances ("
	"  id INTEGER PRIMARY KEY,"
	"  series_id INTEGER NOT NULL REFERENCES series(id),"
	"  sop_uid TEXT NOT NULL UNIQUE,"
	"  sop_class_uid TEXT,"
	"  transfer_syntax TEXT,"
	"  frames INTEGER NOT NULL DEFAULT 1,"
	"  rows INTEGER, columns INTEGER,"
	"  bytes INTEGER NOT NULL,"
	"  path TEXT NOT NULL,"
	"  received_at REAL NOT NULL,"
	"  calling_ae TEXT);"
	"CREATE INDEX instances_series ON instances(series_id, received_at);"
	/* Totals are derived from the instances, so they can never drift. */
	"CREATE VIEW series_totals AS SELECT s.id AS series_id, s.series_uid,"
	"  count(i.id) AS instances, coalesce(sum(i.bytes), 0) AS bytes,"
	"  min(i.received_at) AS first_received, max(i.received_at) AS last_received"
	"  FROM series s LEFT JOIN instances i ON i.series_id = s.id GROUP BY s.id;"
	"CREATE VIEW study_totals AS SELECT st.id AS study_id, st.study_uid,"
	"  count(i.id) AS instances, coalesce(sum(i.bytes), 0) AS bytes,"
	"  min(i.received_at) AS first_received, max(i.received_at) AS last_received"
	"  FROM studies st LEFT JOIN series s ON s.study_id = st.id"
	"  LEFT JOIN instances i ON i.series_id = s.id GROUP BY st.id;"
	"CREATE TABLE jobs ("
	"  id INTEGER PRIMARY KEY,"
	"  series_id INTEGER NOT NULL REFERENCES series(id),"
	"  state TEXT NOT NULL,"
	"  reason TEXT,"
	"  instances INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  created_at REAL NOT NULL,"
	"  updated_at REAL NOT NULL,"
	"  next_attempt_at REAL);"
	"CREATE INDEX jobs_state ON jobs(state);"
	"CREATE INDEX jobs_series ON jobs(series_id);",
	/* 1 -> 2: what a worker did with a job */
	"ALTER TABLE jobs ADD COLUMN started_at REAL;"
	"ALTER TABLE jobs ADD COLUMN finished_at REAL;"
	"ALTER TABLE jobs ADD COLUMN results_dir TEXT;"
	"ALTER TABLE jobs ADD COLUMN result TEXT;",   /* report.json of the run, or NULL */
	/* 2 -> 3: objects waiting for, or sent to, each destination */
	"CREATE TABLE outbox ("
	"  id INTEGER PRIMARY KEY,"
	"  job_id INTEGER NOT NULL REFERENCES jobs(id),"
	"  destination TEXT NOT NULL,"
	"  path TEXT NOT NULL,"
	"  sop_instance_uid TEXT NOT NULL,"
	"  state TEXT NOT NULL,"          /* pending, sent, failed */
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt_at REAL NOT NULL,"
	"  dimse_status INTEGER,"
	"  last_error TEXT,"
	"  created_at REAL NOT NULL,"
	"  updated_at REAL NOT NULL,"
	"  UNIQUE(destination, sop_instance_uid));"
	"CREATE INDEX outbox_due ON outbox(destination, state, next_attempt_at);",
	/* 3 -> 4: webhook messages and every attempt to deliver them */
	"ALTER TABLE studies ADD COLUMN notified_at REAL;"
	"CREATE TABLE notifications ("
	"  id INTEGER PRIMARY KEY,"
	"  study_uid TEXT NOT NULL,"
	"  url TEXT NOT NULL,"
	"  webhook_id TEXT NOT NULL,"
	"  body TEXT NOT NULL,"
	"  state TEXT NOT NULL,"          /* pending, delivered, failed */
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt_at REAL NOT NULL,"
	"  last_http_status INTEGER,"
	"  last_error TEXT,"
	"  created_at REAL NOT NULL,"
	"  updated_at REAL NOT NULL);"
	"CREATE INDEX notifications_due ON notifications(state, next_attempt_at);"
	"CREATE TABLE notification_attempts ("
	"  id INTEGER PRIMARY KEY,"
	"  notification_id INTEGER NOT NULL REFERENCES notifications(id),"
	"  at REAL NOT NULL,"
	"  http_status INTEGER,"
	"  curl_code INTEGER,"
	"  error TEXT);",
	/* 4 -> 5: the 3D page's links, one capability token per study */
	"CREATE TABLE viewer_links ("
	"  id INTEGER PRIMARY KEY,"
	"  token TEXT NOT NULL UNIQUE,"
	"  study_uid TEXT NOT NULL UNIQUE,"
	"  created_at REAL NOT NULL,"
	"  expires_at REAL NOT NULL);",
	/* 5 -> 6: segmentations received (issue 11): what an instance refers to,
	 * and import jobs (the SEG or RTSTRUCT instance, the CT series it was
	 * matched to, and how long it may wait for that series) */
	"ALTER TABLE instances ADD COLUMN frame_of_reference_uid TEXT;"
	"ALTER TABLE instances ADD COLUMN ref_series_uid TEXT;"
	"ALTER TABLE instances ADD COLUMN ref_sop_uid TEXT;"
	"CREATE INDEX instances_for ON instances(frame_of_reference_uid);"
	"ALTER TABLE jobs ADD COLUMN import_instance_id INTEGER REFERENCES instances(id);"
	"ALTER TABLE jobs ADD COLUMN source_series_id INTEGER REFERENCES series(id);"
	"ALTER TABLE jobs ADD COLUMN wait_until REAL;",
	/* 6 -> 7: series selection and routing (issue 12): what the route rules
	 * and the choice of the best series read, the route and choice of each
	 * job, and what the jobs API asks of a job or a study */
	"ALTER TABLE studies ADD COLUMN study_description TEXT;"
	"ALTER TABLE studies ADD COLUMN route_override TEXT;"   /* a re-run's route, or NULL */
	"ALTER TABLE series ADD COLUMN image_type TEXT;"
	"ALTER TABLE series ADD COLUMN slice_thickness REAL;"
	"ALTER TABLE series ADD COLUMN convolution_kernel TEXT;"
	"ALTER TABLE series ADD COLUMN contrast_agent TEXT;"
	"ALTER TABLE series ADD COLUMN body_part TEXT;"
	"ALTER TABLE series ADD COLUMN manufacturer TEXT;"
	"ALTER TABLE series ADD COLUMN orientation TEXT;"   /* axial, sagittal, coronal, oblique */
	"ALTER TABLE series ADD COLUMN called_ae TEXT;"
	"ALTER TABLE series ADD COLUMN route TEXT;"
	"ALTER TABLE instances ADD COLUMN slice_pos REAL;"  /* position along the slice normal, mm */
	"ALTER TABLE jobs ADD COLUMN route TEXT;"
	"ALTER TABLE jobs ADD COLUMN selection TEXT;"       /* JSON: the study's series, chosen or why not */
	"ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;",
	/* 7 -> 8: overlap (issue 15): rows are queued as each object is written,
	 * and a kind of object fails on its own: each row names its kind */
	"ALTER TABLE outbox ADD COLUMN kind TEXT;",
};

#define INDEX_SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

static const char *const job_state_names[JOB_NSTATES] = {
	"queued", "running", "done", "failed", "skipped", "superseded", "waiting", "cancelled",
};

const char *job_state_name(enum job_state s)
{
	if ((int)s < 0 || s >= JOB_NSTATES)
		return "unknown";
	return job_state_names[s];
}

bool index_sql_fail(struct r3d_err *err, struct index *idx, const char *what)
{
	int rc = sqlite3_extended_errcode(idx->db);
	int code = R3D_EIO;

	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		code = R3D_EBUSY;
	else if ((rc & 0xff) == SQLITE_FULL)
		code = R3D_ENOSPC;
	return r3d_err_set(err, code, "index: %s: %s", what, sqlite3_errmsg(idx->db));
}

bool index_exec(struct r3d_err *err, struct index *idx, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(idx->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		bool r = index_sql_fail(err, idx, sql);
		sqlite3_free(msg);
		return r;
	}
	return true;
}

static bool migrate(struct r3d_err *err, struct index *idx)
{
	sqlite3_stmt *st = NULL;
	int version = 0;

	if (sqlite3_prepare_v2(idx->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return index_sql_fail(err, idx, "reading schema version");
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > INDEX_SCHEMA_VERSION)
		return r3d_err_set(err, R3D_EINVAL,
				   "index schema version %d is newer than this recon3d (%d)", version,
				   INDEX_SCHEMA_VERSION);
	while (version < INDEX_SCHEMA_VERSION) {
		char setv[64];
		if (!index_exec(err, idx, "BEGIN IMMEDIATE"))
			return false;
		snprintf(setv, sizeof(setv), "PRAGMA user_version = %d", version + 1);
		if (!index_exec(err, idx, migrations[version]) || !index_exec(err, idx, setv)) {
			index_exec(NULL, idx, "ROLLBACK");
			return r3d_err_prefix(err, "migrating the index to version %d", version + 1);
		}
		if (!index_exec(err, idx, "COMMIT"))
			return false;
		log_info("index", "schema migrated to version %d", version + 1);
		version++;
	}
	return true;
}

static const char *const stmt_sql[STMT_COUNT] = {
	[STMT_STUDY_FIND] = "SELECT id, pending, last_received FROM studies WHERE study_uid = ?1",
	[STMT_STUDY_INSERT] =
		"INSERT INTO studies(study_uid, first_received, last_received, calling_ae, pending,"
		" study_description) VALUES(?1, ?2, ?2, ?3, 1, nullif(?4, ''))",
	[STMT_STUDY_TOUCH] =
		"UPDATE studies SET last_received = max(last_received, ?2), calling_ae = ?3,"
		" study_description = coalesce(nullif(?4, ''), study_description),"
		" pending = 1 WHERE id = ?1",
	[STMT_SERIES_FIND] = "SELECT id, pending, last_received FROM series WHERE series_uid = ?1",
	[STMT_SERIES_INSERT] =
		"INSERT INTO series(study_id, series_uid, modality, series_description, series_number,"
		" first_received, last_received, calling_ae, pending, image_type, slice_thickness,"
		" convolution_kernel, contrast_agent, body_part, manufacturer, orientation)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, 1, nullif(?8, ''), nullif(?9, 0),"
		" nullif(?10, ''), nullif(?11, ''), nullif(?12, ''), nullif(?13, ''), ?14)",
	[STMT_SERIES_TOUCH] =
		"UPDATE series SET last_received = max(last_received, ?6),"
		" modality = coalesce(nullif(?3, ''), modality),"
		" series_description = coalesce(nullif(?4, ''), series_description),"
		" series_number = coalesce(?5, series_number), calling_ae = ?7, pending = 1,"
		" image_type = coalesce(nullif(?8, ''), image_type),"
		" slice_thickness = coalesce(nullif(?9, 0), slice_thickness),"
		" convolution_kernel = coalesce(nullif(?10, ''), convolution_kernel),"
		" contrast_agent = coalesce(nullif(?11, ''), contrast_agent),"
		" body_part = coalesce(nullif(?12, ''), body_part),"
		" manufacturer = coalesce(nullif(?13, ''), manufacturer),"
		" orientation = coalesce(?14, orientation)"
		" WHERE id = ?1",
	/* Every called AE title the series came in on, backslash-separated. */
	[STMT_SERIES_CALLED] =
		"UPDATE series SET called_ae = CASE WHEN called_ae IS NULL THEN ?2"
		" ELSE called_ae || '\\' || ?2 END WHERE id = ?1 AND (called_ae IS NULL OR"
		" instr('\\' || called_ae || '\\', '\\' || ?2 || '\\') = 0)",
	[STMT_INSTANCE_FIND] = "SELECT path FROM instances WHERE sop_uid = ?1",
	[STMT_INSTANCE_UPSERT] =
		"INSERT INTO instances(series_id, sop_uid, sop_class_uid, transfer_syntax, frames,"
		" rows, columns, bytes, path, received_at, calling_ae, frame_of_reference_uid,"
		" ref_series_uid, ref_sop_uid, slice_pos)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
		" ON CONFLICT(sop_uid) DO UPDATE SET series_id = ?1, sop_class_uid = ?3,"
		" transfer_syntax = ?4, frames = ?5, rows = ?6, columns = ?7, bytes = ?8, path = ?9,"
		" received_at = ?10, calling_ae = ?11, frame_of_reference_uid = ?12,"
		" ref_series_uid = ?13, ref_sop_uid = ?14, slice_pos = ?15",
};

static bool prepare_all(struct r3d_err *err, struct index *idx)
{
	for (int i = 0; i < STMT_COUNT; i++) {
		if (sqlite3_prepare_v3(idx->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &idx->stmt[i], NULL) != SQLITE_OK)
			return index_sql_fail(err, idx, "preparing statements");
	}
	return true;
}

bool index_open(struct r3d_err *err, const char *path, struct index **out)
{
	struct index *idx;

	*out = NULL;
	idx = calloc(1, sizeof(*idx));
	if (idx == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "index: out of memory");
	pthread_mutex_init(&idx->lock, NULL);
	if (sqlite3_open_v2(path, &idx->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK) {
		r3d_err_set(err, R3D_EIO, "index: cannot open '%s': %s", path,
			    idx->db != NULL ? sqlite3_errmsg(idx->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(idx->db, INDEX_BUSY_TIMEOUT_MS);
	/* WAL with synchronous=NORMAL: a commit survives a crash of the process;
	 * [storage] fsync adds the file flush for power loss. */
	/* Checkpoints run from the queue thread (index_checkpoint), not inside
	 * the commit that answers a C-STORE. */
	if (!index_exec(err, idx, "PRAGMA journal_mode = WAL") ||
	    !index_exec(err, idx, "PRAGMA synchronous = NORMAL") ||
	    !index_exec(err, idx, "PRAGMA wal_autocheckpoint = 0") ||
	    !index_exec(err, idx, "PRAGMA foreign_keys = ON") || !migrate(err, idx) ||
	    !prepare_all(err, idx))
		goto fail;
	*out = idx;
	return true;
fail:
	index_close(idx);
	return false;
}

bool index_checkpoint(struct r3d_err *err, struct index *idx)
{
	bool ok = true;

	pthread_mutex_lock(&idx->lock);
	if (sqlite3_wal_checkpoint_v2(idx->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) != SQLITE_OK)
		ok = index_sql_fail(err, idx, "checkpoint");
	pthread_mutex_unlock(&idx->lock);
	return ok;
}

void index_close(struct index *idx)
{
	if (idx == NULL)
		return;
	if (idx->db != NULL)
		sqlite3_wal_checkpoint_v2(idx->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	for (int i = 0; i < STMT_COUNT; i++)
		sqlite3_finalize(idx->stmt[i]);
	sqlite3_close(idx->db);
	pthread_mutex_destroy(&idx->lock);
	free(idx);
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL || s[0] == '\0')
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static bool step_done(struct r3d_err *err, struct index *idx, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	stmt_done(st);
	if (rc != SQLITE_DONE)
		return index_sql_fail(err, idx, what);
	return true;
}

/* Looks a row up by UID: 1 found (id, pending, last_received set), 0 not
 * found, -1 error. */
static int find_row(struct r3d_err *err, struct index *idx, sqlite3_stmt *st, const char *uid,
		    int64_t *id, bool *pending, double *last)
{
	int rc;

	sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		*pending = sqlite3_column_int(st, 1) != 0;
		*last = sqlite3_column_double(st, 2);
	}
	stmt_done(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	index_sql_fail(err, idx, "looking up");
	return -1;
}

/* A study or series row is rewritten only when it is not pending or its
 * last_received is older than INDEX_TOUCH_S: most instances of a series then
 * write one page fewer each. The stable-study check reads the exact time from
 * the instances. */
static bool needs_touch(bool pending, double last, double now)
{
	return !pending || now - last >= INDEX_TOUCH_S;
}

static void bind_series(sqlite3_stmt *st, int64_t first, const struct bridge_instance_attrs *a,
			double now, const char *calling_ae)
{
	sqlite3_bind_int64(st, 1, first);
	sqlite3_bind_text(st, 2, a->series_uid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, a->modality, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, a->series_description, -1, SQLITE_STATIC);
	if (a->series_number >= 0)
		sqlite3_bind_int64(st, 5, a->series_number);
	else
		sqlite3_bind_null(st, 5);
	sqlite3_bind_double(st, 6, now);
	bind_text_or_null(st, 7, calling_ae);
	sqlite3_bind_text(st, 8, a->image_type, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 9, a->slice_thickness);
	sqlite3_bind_text(st, 10, a->kernel, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, a->contrast_agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 12, a->body_part, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 13, a->manufacturer, -1, SQLITE_STATIC);
	if (a->has_orientation)
		sqlite3_bind_text(st, 14, route_orientation(a->orientation), -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 14);
}

/* The position of an image along its slice normal (mm), for the length a
 * series covers; false when the image has no geometry. */
static bool slice_position(const struct bridge_instance_attrs *a, double *out)
{
	const double *o = a->orientation;
	double n[3] = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};

	if (!a->has_position || !a->has_orientation)
		return false;
	*out = n[0] * a->position[0] + n[1] * a->position[1] + n[2] * a->position[2];
	return isfinite(*out);
}

static bool put_locked(struct r3d_err *err, struct index *idx, const struct bridge_instance_attrs *a,
		       const char *path, uint64_t bytes, const char *calling_ae,
		       const char *called_ae, double now,
		       char *old_path, size_t old_path_size)
{
	sqlite3_stmt *st;
	int64_t study_id = 0, series_id = 0;
	bool pending = false;
	double last = 0;
	int found;

	found = find_row(err, idx, idx->stmt[STMT_STUDY_FIND], a->study_uid, &study_id, &pending, &last);
	if (found < 0)
		return false;
	if (found == 0) {
		st = idx->stmt[STMT_STUDY_INSERT];
		sqlite3_bind_text(st, 1, a->study_uid, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 2, now);
		bind_text_or_null(st, 3, calling_ae);
		sqlite3_bind_text(st, 4, a->study_description, -1, SQLITE_STATIC);
		if (!step_done(err, idx, st, "adding study"))
			return false;
		study_id = sqlite3_last_insert_rowid(idx->db);
	} else if (needs_touch(pending, last, now)) {
		st = idx->stmt[STMT_STUDY_TOUCH];
		sqlite3_bind_int64(st, 1, study_id);
		sqlite3_bind_double(st, 2, now);
		bind_text_or_null(st, 3, calling_ae);
		sqlite3_bind_text(st, 4, a->study_description, -1, SQLITE_STATIC);
		if (!step_done(err, idx, st, "updating study"))
			return false;
	}

	found = find_row(err, idx, idx->stmt[STMT_SERIES_FIND], a->series_uid, &series_id, &pending,
			 &last);
	if (found < 0)
		return false;
	if (found == 0) {
		st = idx->stmt[STMT_SERIES_INSERT];
		bind_series(st, study_id, a, now, calling_ae);
		if (!step_done(err, idx, st, "adding series"))
			return false;
		series_id = sqlite3_last_insert_rowid(idx->db);
	} else if (needs_touch(pending, last, now)) {
		st = idx->stmt[STMT_SERIES_TOUCH];
		bind_series(st, series_id, a, now, calling_ae);
		if (!step_done(err, idx, st, "updating series"))
			return false;
	}

	st = idx->stmt[STMT_INSTANCE_FIND];
	sqlite3_bind_text(st, 1, a->sop_instance_uid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *p = sqlite3_column_text(st, 0);
		if (p != NULL && strcmp((const char *)p, path) != 0)
			snprintf(old_path, old_path_size, "%s", (const char *)p);
	}
	stmt_done(st);

	st = idx->stmt[STMT_INSTANCE_UPSERT];
	sqlite3_bind_int64(st, 1, series_id);
	sqlite3_bind_text(st, 2, a->sop_instance_uid, -1, SQLITE_STATIC);
	bind_text_or_null(st, 3, a->sop_class_uid);
	bind_text_or_null(st, 4, a->transfer_syntax);
	sqlite3_bind_int64(st, 5, a->number_of_frames);
	sqlite3_bind_int64(st, 6, a->rows);
	sqlite3_bind_int64(st, 7, a->columns);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)bytes);
	sqlite3_bind_text(st, 9, path, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 10, now);
	bind_text_or_null(st, 11, calling_ae);
	bind_text_or_null(st, 12, a->frame_of_reference_uid[0] != '\0' ? a->frame_of_reference_uid : NULL);
	bind_text_or_null(st, 13, a->ref_series_uid[0] != '\0' ? a->ref_series_uid : NULL);
	bind_text_or_null(st, 14, a->ref_sop_uid[0] != '\0' ? a->ref_sop_uid : NULL);
	double pos;
	if (slice_position(a, &pos))
		sqlite3_bind_double(st, 15, pos);
	else
		sqlite3_bind_null(st, 15);
	if (!step_done(err, idx, st, "storing instance"))
		return false;
	if (called_ae == NULL || called_ae[0] == '\0')
		return true;
	st = idx->stmt[STMT_SERIES_CALLED];
	sqlite3_bind_int64(st, 1, series_id);
	sqlite3_bind_text(st, 2, called_ae, -1, SQLITE_STATIC);
	return step_done(err, idx, st, "updating series");
}

int index_instance_path(struct r3d_err *err, struct index *idx, const char *sop_uid, char *path,
			size_t size)
{
	sqlite3_stmt *st = NULL;
	int rc, found = -1;

	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db, "SELECT path FROM instances WHERE sop_uid = ?1", -1, &st,
			       NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "looking up an instance");
		goto out;
	}
	sqlite3_bind_text(st, 1, sop_uid, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(path, size, "%s", (const char *)sqlite3_column_text(st, 0));
		found = 1;
	} else if (rc == SQLITE_DONE) {
		found = 0;
	} else {
		index_sql_fail(err, idx, "looking up an instance");
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return found;
}

bool index_set_durable(struct r3d_err *err, struct index *idx, bool durable)
{
	bool ok;

	pthread_mutex_lock(&idx->lock);
	ok = index_exec(err, idx, durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
	pthread_mutex_unlock(&idx->lock);
	return ok;
}

bool index_put_instance(struct r3d_err *err, struct index *idx,
			const struct bridge_instance_attrs *a, const char *path, uint64_t bytes,
			const char *calling_ae, double now, char *old_path, size_t old_path_size)
{
	return index_put_instance_from(err, idx, a, path, bytes, calling_ae, NULL, now, old_path,
				       old_path_size);
}

bool index_put_instance_from(struct r3d_err *err, struct index *idx,
			     const struct bridge_instance_attrs *a, const char *path, uint64_t bytes,
			     const char *calling_ae, const char *called_ae, double now,
			     char *old_path, size_t old_path_size)
{
	bool ok;

	old_path[0] = '\0';
	pthread_mutex_lock(&idx->lock);
	ok = index_exec(err, idx, "BEGIN IMMEDIATE");
	if (ok) {
		ok = put_locked(err, idx, a, path, bytes, calling_ae, called_ae, now, old_path,
				old_path_size);
		if (ok)
			ok = index_exec(err, idx, "COMMIT");
		if (!ok) {
			index_exec(NULL, idx, "ROLLBACK");
			old_path[0] = '\0';
		}
	}
	pthread_mutex_unlock(&idx->lock);
	return ok;
}

static bool count_query(struct r3d_err *err, struct index *idx, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	bool ok = false;

	if (sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL) != SQLITE_OK)
		return index_sql_fail(err, idx, "counting");
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		ok = true;
	} else {
		index_sql_fail(err, idx, "counting");
	}
	sqlite3_finalize(st);
	return ok;
}

bool index_counts(struct r3d_err *err, struct index *idx, struct index_counts *out)
{
	sqlite3_stmt *st = NULL;
	bool ok;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&idx->lock);
	ok = count_query(err, idx, "SELECT count(*) FROM studies", &out->studies) &&
	     count_query(err, idx, "SELECT count(*) FROM series", &out->series) &&
	     count_query(err, idx, "SELECT count(*) FROM instances", &out->instances) &&
	     count_query(err, idx, "SELECT coalesce(sum(bytes), 0) FROM instances", &out->bytes) &&
	     count_query(err, idx, "SELECT count(*) FROM series WHERE status = 'ineligible'",
			 &out->series_ineligible);
	if (ok && sqlite3_prepare_v2(idx->db, "SELECT state, count(*) FROM jobs GROUP BY state", -1,
				     &st, NULL) != SQLITE_OK)
		ok = index_sql_fail(err, idx, "counting jobs");
	while (ok && sqlite3_step(st) == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(st, 0);
		for (int i = 0; state != NULL && i < JOB_NSTATES; i++) {
			if (strcmp(state, job_state_names[i]) == 0)
				out->jobs[i] = sqlite3_column_int64(st, 1);
		}
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return ok;
}

bool index_ping(struct r3d_err *err, struct index *idx)
{
	int64_t one = 0;
	bool ok;

	pthread_mutex_lock(&idx->lock);
	ok = count_query(err, idx, "SELECT 1", &one) && one == 1;
	pthread_mutex_unlock(&idx->lock);
	return ok;
}

bool index_recover(struct r3d_err *err, struct index *idx, int *requeued)
{
	bool ok;

	*requeued = 0;
	pthread_mutex_lock(&idx->lock);
	/* A job the jobs API asked to stop is not taken up again. */
	ok = index_exec(err, idx,
			"UPDATE jobs SET state = 'cancelled', updated_at = strftime('%s','now'),"
			" finished_at = strftime('%s','now'), reason = 'cancelled by the jobs API'"
			" WHERE state = 'running' AND cancel_requested = 1") &&
	     index_exec(err, idx,
			"UPDATE jobs SET state = 'queued', updated_at = strftime('%s','now'),"
			" reason = 'interrupted by a stop or crash; taken up again'"
			" WHERE state = 'running'");
	if (ok)
		*requeued = sqlite3_changes(idx->db);
	pthread_mutex_unlock(&idx->lock);
	return ok;
}

/* ------------------------------------------------------------------ */
/* Outbox                                                              */
/* ------------------------------------------------------------------ */

static const char *const outbox_state_names[OUTBOX_NSTATES] = {"pending", "sent", "failed",
								 "dropped"};

const char *outbox_state_name(enum outbox_state s)
{
	if ((int)s < 0 || s >= OUTBOX_NSTATES)
		return "unknown";
	return outbox_state_names[s];
}

bool index_outbox_add(struct r3d_err *err, struct index *idx, int64_t job_id, const char *destination,
		      const char *path, const char *sop_instance_uid, const char *kind, double now)
{
	sqlite3_stmt *st = NULL;
	bool ok;

	pthread_mutex_lock(&idx->lock);
	ok = sqlite3_prepare_v2(idx->db,
				"INSERT INTO outbox(job_id, destination, path, sop_instance_uid, kind, state,"
				" next_attempt_at, created_at, updated_at)"
				" VALUES(?1, ?2, ?3, ?4, ?6, 'pending', ?5, ?5, ?5)"
				" ON CONFLICT(destination, sop_instance_uid) DO UPDATE SET job_id = ?1,"
				" path = ?3, kind = ?6, state = 'pending', attempts = 0, next_attempt_at = ?5,"
				" dimse_status = NULL, last_error = NULL, updated_at = ?5"
				/* The same job run again (after a crash) does not send
				 * what it already delivered. */
				" WHERE NOT (outbox.state = 'sent' AND outbox.job_id = ?1)",
				-1, &st, NULL) == SQLITE_OK;
	if (ok) {
		sqlite3_bind_int64(st, 1, job_id);
		sqlite3_bind_text(st, 2, destination, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, path, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, sop_instance_uid, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 5, now);
		if (kind != NULL)
			sqlite3_bind_text(st, 6, kind, -1, SQLITE_STATIC);
		ok = sqlite3_step(st) == SQLITE_DONE;
	}
	if (!ok)
		index_sql_fail(err, idx, "adding to the outbox");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return ok;
}

int index_outbox_drop_job(struct r3d_err *err, struct index *idx, int64_t job_id, const char *why,
			  double now)
{
	sqlite3_stmt *st = NULL;
	int n = -1;

	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db,
			       "UPDATE outbox SET state = 'dropped', last_error = ?3,"
			       " updated_at = ?2 WHERE job_id = ?1 AND state = 'pending'",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, job_id);
		sqlite3_bind_double(st, 2, now);
		sqlite3_bind_text(st, 3, why, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_DONE)
			n = sqlite3_changes(idx->db);
	}
	if (n < 0)
		index_sql_fail(err, idx, "dropping a job's outbox rows");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return n;
}

int index_outbox_due(struct r3d_err *err, struct index *idx, const char *destination, double now,
		     struct outbox_row *rows, int max)
{
	sqlite3_stmt *st = NULL;
	int n = 0, rc;

	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT id, job_id, path, sop_instance_uid, attempts FROM outbox"
			       " WHERE destination = ?1 AND state = 'pending' AND next_attempt_at <= ?2"
			       " ORDER BY next_attempt_at, id LIMIT ?3",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "reading the outbox");
		pthread_mutex_unlock(&idx->lock);
		return -1;
	}
	sqlite3_bind_text(st, 1, destination, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, now);
	sqlite3_bind_int(st, 3, max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < max) {
		struct outbox_row *r = &rows[n++];
		r->id = sqlite3_column_int64(st, 0);
		r->job_id = sqlite3_column_int64(st, 1);
		snprintf(r->path, sizeof(r->path), "%s", (const char *)sqlite3_column_text(st, 2));
		snprintf(r->sop_instance_uid, sizeof(r->sop_instance_uid), "%s",
			 (const char *)sqlite3_column_text(st, 3));
		r->attempts = sqlite3_column_int(st, 4);
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		index_sql_fail(err, idx, "reading the outbox");
		n = -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return n;
}

bool index_outbox_result(struct r3d_err *err, struct index *idx, int64_t id, enum outbox_state state,
			 int attempts, double next_attempt_at, int dimse_status, const char *error,
			 double now)
{
	sqlite3_stmt *st = NULL;
	bool ok;

	pthread_mutex_lock(&idx->lock);
	ok = sqlite3_prepare_v2(idx->db,
				/* A row the jobs API dropped while it was being sent
				 * stays dropped, unless it did arrive. */
				"UPDATE outbox SET state = ?2, attempts = ?3, next_attempt_at = ?4,"
				" dimse_status = ?5, last_error = ?6, updated_at = ?7"
				" WHERE id = ?1 AND (state != 'dropped' OR ?2 = 'sent')",
				-1, &st, NULL) == SQLITE_OK;
	if (ok) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, outbox_state_name(state), -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, attempts);
		sqlite3_bind_double(st, 4, next_attempt_at);
		if (dimse_status >= 0)
			sqlite3_bind_int(st, 5, dimse_status);
		if (error != NULL && error[0] != '\0')
			sqlite3_bind_text(st, 6, error, -1, SQLITE_TRANSIENT);
		sqlite3_bind_double(st, 7, now);
		ok = sqlite3_step(st) == SQLITE_DONE;
	}
	if (!ok)
		index_sql_fail(err, idx, "recording a delivery");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return ok;
}

int index_outbox_counts(struct r3d_err *err, struct index *idx, struct outbox_counts *out, int max)
{
	sqlite3_stmt *st = NULL;
	int n = 0, rc;

	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT destination, state, count(*) FROM outbox GROUP BY destination, state"
			       " ORDER BY destination",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "counting the outbox");
		pthread_mutex_unlock(&idx->lock);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *dest = (const char *)sqlite3_column_text(st, 0);
		const char *state = (const char *)sqlite3_column_text(st, 1);
		int i;
		for (i = 0; i < n && strcmp(out[i].destination, dest) != 0; i++)
			;
		if (i == n) {
			if (n == max)
				continue;
			memset(&out[n], 0, sizeof(out[n]));
			snprintf(out[n].destination, sizeof(out[n].destination), "%s", dest);
			n++;
		}
		for (int k = 0; k < OUTBOX_NSTATES; k++) {
			if (strcmp(state, outbox_state_names[k]) == 0)
				out[i].n[k] = sqlite3_column_int64(st, 2);
		}
	}
	if (rc != SQLITE_DONE) {
		index_sql_fail(err, idx, "counting the outbox");
		n = -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return n;
}

int index_series_refs(struct r3d_err *err, struct index *idx, const char *series_uid,
		      struct series_ref **out)
{
	sqlite3_stmt *st = NULL;
	struct series_ref *refs = NULL;
	int n = 0, cap = 0, rc;

	*out = NULL;
	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT i.sop_class_uid, i.sop_uid, i.path FROM instances i"
			       " JOIN series s ON s.id = i.series_id WHERE s.series_uid = ?1 ORDER BY i.id",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "reading a series' instances");
		pthread_mutex_unlock(&idx->lock);
		return -1;
	}
	sqlite3_bind_text(st, 1, series_uid, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			int ncap = cap ? cap * 2 : 256;
			struct series_ref *p = realloc(refs, (size_t)ncap * sizeof(*p));
			if (p == NULL) {
				r3d_err_set(err, R3D_ENOMEM, "out of memory");
				rc = SQLITE_NOMEM;
				break;
			}
			refs = p;
			cap = ncap;
		}
		struct series_ref *r = &refs[n++];
		snprintf(r->sop_class_uid, sizeof(r->sop_class_uid), "%s",
			 (const char *)sqlite3_column_text(st, 0));
		snprintf(r->sop_instance_uid, sizeof(r->sop_instance_uid), "%s",
			 (const char *)sqlite3_column_text(st, 1));
		snprintf(r->path, sizeof(r->path), "%s", (const char *)sqlite3_column_text(st, 2));
	}
	if (rc != SQLITE_DONE) {
		if (rc != SQLITE_NOMEM)
			index_sql_fail(err, idx, "reading a series' instances");
		free(refs);
		refs = NULL;
		n = -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	*out = refs;
	return n;
}
