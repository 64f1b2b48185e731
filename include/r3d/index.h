/*
 * index.h: the SQLite index of received studies, series and instances, and
 * the job queue that stable studies feed (WAL mode; everything that must
 * survive a crash is a row here).
 *
 * One struct index is shared by the association threads, the queue thread
 * and the status thread; every function takes its lock, so any thread may
 * call any function.
 */
#ifndef R3D_INDEX_H
#define R3D_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/bridge.h"
#include "r3d/err.h"

struct config;

struct index;

enum job_state {
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_DONE,
	JOB_FAILED,
	JOB_SKIPPED,
	JOB_SUPERSEDED,
	JOB_WAITING,       /* a segmentation whose source series has not arrived yet */
	JOB_CANCELLED,     /* by the jobs API */
	JOB_NSTATES
};

const char *job_state_name(enum job_state s);

/* Opens (creating or migrating the schema) the index at path. On success the
 * caller owns *out and closes it with index_close(). */
bool index_open(struct r3d_err *err, const char *path, struct index **out);
void index_close(struct index *idx);

/* Records a stored instance at path (bytes long) in one transaction,
 * creating its study and series as needed. A SOP Instance UID already
 * indexed is replaced, without a second row; when its earlier file was at
 * another path, that path is copied to old_path (the caller removes the
 * file), else old_path is set to "". */
bool index_put_instance(struct r3d_err *err, struct index *idx,
			const struct bridge_instance_attrs *a, const char *path, uint64_t bytes,
			const char *calling_ae, double now, char *old_path, size_t old_path_size);

/* The same, received under called_ae (our AE title the peer called; NULL:
 * none): the series keeps every called AE title it came in on, for routes. */
bool index_put_instance_from(struct r3d_err *err, struct index *idx,
			     const struct bridge_instance_attrs *a, const char *path, uint64_t bytes,
			     const char *calling_ae, const char *called_ae, double now,
			     char *old_path, size_t old_path_size);

/* The path the instance with this SOP Instance UID is indexed at: 1 and
 * path filled, 0 when it is not indexed, -1 on error. */
int index_instance_path(struct r3d_err *err, struct index *idx, const char *sop_uid, char *path,
			size_t size);

/* durable: every commit is flushed to the disk before it returns (SQLite
 * synchronous = FULL), so an instance answered success survives a power
 * loss with its row; else (NORMAL, the default of index_open) a commit
 * survives a crash of the process, not of the machine. [storage] fsync. */
bool index_set_durable(struct r3d_err *err, struct index *idx, bool durable);

struct index_counts {
	int64_t studies, series, instances, bytes;
	int64_t jobs[JOB_NSTATES];
	int64_t series_ineligible;
};

bool index_counts(struct r3d_err *err, struct index *idx, struct index_counts *out);

/* Copies the write-ahead log into the database file (passive: never waits).
 * Called periodically by the queue thread so that commits answering a
 * C-STORE never carry a checkpoint. */
bool index_checkpoint(struct r3d_err *err, struct index *idx);

/* A trivial query: true when the database answers. */
bool index_ping(struct r3d_err *err, struct index *idx);

/* At start-up: jobs left running by a crash or a stop become queued again.
 * *requeued is how many. */
bool index_recover(struct r3d_err *err, struct index *idx, int *requeued);

/* A job a worker has claimed. For an import job, series_* name the source
 * series the pipeline reads and import_* the segmentation object. */
struct index_job {
	int64_t id;
	int attempts;                       /* including this one */
	char series_uid[BRIDGE_UID_MAX + 1];
	char study_uid[BRIDGE_UID_MAX + 1];
	char series_dir[4096];              /* folder holding the series' instances */
	int64_t instances;
	char import_path[4096];             /* the SEG or RTSTRUCT file; "" : not an import */
	char import_series_uid[BRIDGE_UID_MAX + 1];
	char import_sop_class_uid[BRIDGE_UID_MAX + 1];
	char route[64];                     /* its route's name ("default" when none) */
};

/* The job's series selection (JSON text, see route_selection_json), or NULL
 * when it has none or on error. The caller frees it. */
char *index_job_selection(struct r3d_err *err, struct index *idx, int64_t job_id);

/* Atomically moves the oldest queued job to running and fills *job.
 * Returns 1 when a job was claimed, 0 when none is queued, -1 on error. */
int index_job_claim(struct r3d_err *err, struct index *idx, double now, struct index_job *job);

/* Records a claimed job's outcome: state JOB_DONE, JOB_FAILED, JOB_SKIPPED
 * or JOB_CANCELLED (its worker saw cancel_requested), a one-line reason
 * (NULL for done), the folder of its results and the run's report (JSON
 * text; may be NULL). Only a running job changes: a cancelled one stays so. */
bool index_job_finish(struct r3d_err *err, struct index *idx, int64_t job_id, enum job_state state,
		      const char *reason, const char *results_dir, const char *result_json, double now);

/* One job as /status lists it: no patient data, only UIDs and reasons. */
struct index_job_row {
	int64_t id;
	char state[16];
	char kind[16];                      /* "series" or "import" */
	char series_uid[BRIDGE_UID_MAX + 1];        /* the series received */
	char source_series_uid[BRIDGE_UID_MAX + 1]; /* an import's CT series, or "" */
	char reason[512];
	double updated_at;
	char route[64];
	char selection[4096];               /* its series selection (JSON), "" when none or longer */
};

/* The max jobs changed last, newest first; the count or -1 on error. */
int index_jobs_recent(struct r3d_err *err, struct index *idx, struct index_job_row *rows, int max);

/* ---- outbox: result objects per destination ---- */

/* dropped: by the jobs API, never sent; final, like sent and failed. */
enum outbox_state { OUTBOX_PENDING, OUTBOX_SENT, OUTBOX_FAILED, OUTBOX_DROPPED, OUTBOX_NSTATES };
const char *outbox_state_name(enum outbox_state s);

struct outbox_row {
	int64_t id, job_id;
	char path[4096];
	char sop_instance_uid[BRIDGE_UID_MAX + 1];
	int attempts;
};

/* Queues path for destination; kind ("stl", "segmentation", ...; NULL:
 * none) names the kind of object. The same object (SOP Instance UID)
 * queued again for the same destination replaces its row: no second copy;
 * a row its own job already sent stays sent (a job run again after a crash
 * sends only what was not delivered). */
bool index_outbox_add(struct r3d_err *err, struct index *idx, int64_t job_id, const char *destination,
		      const char *path, const char *sop_instance_uid, const char *kind, double now);
/* A job cancelled or failed: its rows still pending are dropped, why as
 * their last error (those sent stay sent). Returns how many, -1 on error. */
int index_outbox_drop_job(struct r3d_err *err, struct index *idx, int64_t job_id, const char *why,
			  double now);
/* Up to max pending rows of destination that are due at now; -1 on error. */
int index_outbox_due(struct r3d_err *err, struct index *idx, const char *destination, double now,
		     struct outbox_row *rows, int max);
/* Records one row's outcome; dimse_status < 0: none; error may be NULL. */
bool index_outbox_result(struct r3d_err *err, struct index *idx, int64_t id, enum outbox_state state,
			 int attempts, double next_attempt_at, int dimse_status, const char *error,
			 double now);

struct outbox_counts {
	char destination[64];
	int64_t n[OUTBOX_NSTATES];
};
/* Rows per destination and state (up to max destinations); -1 on error. */
int index_outbox_counts(struct r3d_err *err, struct index *idx, struct outbox_counts *out, int max);

/* The instances of a series, for references in result objects. On success
 * (>= 0, the count) the caller frees *out. */
struct series_ref {
	char sop_class_uid[BRIDGE_UID_MAX + 1];
	char sop_instance_uid[BRIDGE_UID_MAX + 1];
	char path[4096];
};
int index_series_refs(struct r3d_err *err, struct index *idx, const char *series_uid,
		      struct series_ref **out);

/* ---- notifications: one webhook message per finished study ---- */

#define INDEX_STUDY_MAX_SERIES 64
#define INDEX_STUDY_MAX_DESTINATIONS 16

struct finished_series {
	char series_uid[BRIDGE_UID_MAX + 1];
	char state[16];            /* done, failed, skipped */
	char reason[R3D_ERR_MSG_MAX];
	char *report;              /* the job's report.json, or NULL; owned */
	double started_at, finished_at;
	char route[64];            /* the job's route */
};

struct finished_study {
	int64_t id;
	char study_uid[BRIDGE_UID_MAX + 1];
	char instance_path[4096];  /* one of its instances (accession number, name) */
	double received_at, finished_at;
	int nseries;
	struct finished_series series[INDEX_STUDY_MAX_SERIES];
	int ndest;
	struct {
		char name[64];
		int64_t sent, failed;
	} dest[INDEX_STUDY_MAX_DESTINATIONS];
};

/* One study whose jobs have all finished, whose objects are all sent or
 * finally failed, and that finished something since its last message:
 * 1 with *out filled (free with index_finished_study_free), 0 none, -1 error. */
int index_study_finished_next(struct r3d_err *err, struct index *idx, struct finished_study *out);
void index_finished_study_free(struct finished_study *s);

/* Queues the message for each URL and marks the study notified, in one
 * transaction. */
bool index_notification_add(struct r3d_err *err, struct index *idx, int64_t study_id,
			    const char *study_uid, const char *const *urls, int nurls,
			    const char *webhook_id, const char *body, double now);

struct notification_row {
	int64_t id;
	char url[2048];
	char webhook_id[64];
	char *body;                /* owned */
	int attempts;
};
/* Up to max due pending messages; -1 on error. Free each body. */
int index_notification_due(struct r3d_err *err, struct index *idx, double now,
			   struct notification_row *rows, int max);
/* Records one attempt (its own row) and the message's new state:
 * "pending" (retry at next_attempt_at), "delivered" or "failed". */
bool index_notification_result(struct r3d_err *err, struct index *idx, int64_t id, const char *state,
			       int attempts, double next_attempt_at, long http_status, int curl_code,
			       const char *error, double now);

struct notification_counts {
	int64_t pending, delivered, failed;
	int64_t attempts, attempts_failed;
};
bool index_notification_counts(struct r3d_err *err, struct index *idx, struct notification_counts *out);

/* ---- viewer links: the 3D page's capability token, one per study ---- */

/* Bytes of a token as stored, with the NUL. The caller makes tokens (at
 * least 128 random bits, see r3d/viewer.h); the index only keeps them. */
#define INDEX_VIEWER_TOKEN_MAX 128

/* Gives the study its link. When the study has a link valid at now, its
 * token and expiry are copied out and `candidate` is not used; otherwise
 * `candidate` becomes the study's token, valid from now to now + ttl_s
 * (an expired link of the study is replaced, so the old token stays dead).
 * *created is true when candidate was stored. token_out holds
 * INDEX_VIEWER_TOKEN_MAX bytes. */
bool index_viewer_link_ensure(struct r3d_err *err, struct index *idx, const char *study_uid,
			      const char *candidate, double now, double ttl_s,
			      char token_out[INDEX_VIEWER_TOKEN_MAX], double *expires_at,
			      bool *created);

/* 1 with study_uid filled when token names a link valid at now (expires_at
 * > now); 0 when the token is unknown or expired; -1 on error. */
int index_viewer_link_find(struct r3d_err *err, struct index *idx, const char *token, double now,
			   char study_uid[BRIDGE_UID_MAX + 1], double *expires_at);

/* Links valid at now. */
bool index_viewer_link_count(struct r3d_err *err, struct index *idx, double now, int64_t *active);

/* The latest done job of one series of a study, for the 3D page. */
struct index_viewer_series {
	char series_uid[BRIDGE_UID_MAX + 1];
	long series_number;            /* -1 when absent */
	char series_description[65];   /* may be empty */
	char results_dir[4096];
	char *report;                  /* the job's report.json text, or NULL; owned */
};

/* The series of the study whose latest finished job is done and has a
 * results folder, in series number order. On success (>= 0, the count) the
 * caller frees *out with index_viewer_series_free(*out, count); -1 on error. */
int index_viewer_study_series(struct r3d_err *err, struct index *idx, const char *study_uid,
			      struct index_viewer_series **out);
void index_viewer_series_free(struct index_viewer_series *rows, int n);

/* ---- jobs API: what the HTTP API lists and changes (src/index/api.c) ---- */

/* Rows handed out by one list call, at most. */
#define INDEX_API_LIST_MAX 1000
#define INDEX_API_ROUTE_MAX 64

/* A study as the API lists it: UIDs and times, never patient data. */
struct api_study {
	int64_t id;
	char study_uid[BRIDGE_UID_MAX + 1];
	double first_received, last_received;
	double stable_at;                       /* 0: not stable yet */
	bool pending;                           /* new instances not made into jobs yet */
	char route_override[INDEX_API_ROUTE_MAX];   /* a re-run's route, or "" */
};

struct api_series {
	int64_t id, study_id;
	char series_uid[BRIDGE_UID_MAX + 1];
	char modality[17];
	long series_number;                     /* -1 when absent */
	char description[65];
	int64_t instances;
	char status[16];                        /* receiving, queued, ineligible */
	char reason[512];
};

struct api_job {
	int64_t id, series_id, study_id;
	char state[16];
	char kind[8];                           /* "series" or "import" */
	char series_uid[BRIDGE_UID_MAX + 1];    /* the series received */
	char source_series_uid[BRIDGE_UID_MAX + 1];   /* an import's CT series, or "" */
	char study_uid[BRIDGE_UID_MAX + 1];
	char route[INDEX_API_ROUTE_MAX];        /* "" : none recorded */
	char reason[512];
	int attempts;
	bool cancel_requested;
	double created_at, updated_at;
	double started_at, finished_at;         /* 0: not yet */
	char *result;                           /* report.json text or NULL; index_api_job_get only */
	char *selection;                        /* JSON text or NULL; index_api_job_get only */
};

struct api_outbox {
	int64_t id, job_id;
	char destination[64];
	char sop_instance_uid[BRIDGE_UID_MAX + 1];
	char state[16];
	char kind[24];                          /* "stl", "segmentation", ...; "" not recorded */
	int attempts;
	int dimse_status;                       /* -1: no answer recorded */
	double next_attempt_at, created_at, updated_at;
	char last_error[512];
};

/* What a list call selects; 0 / NULL: any. */
struct api_filter {
	const char *state;
	int64_t study_id;
	int64_t job_id;
	int limit;                              /* 1..INDEX_API_LIST_MAX */
};

/* Lists, newest first (series in series number order). On success (>= 0,
 * the count) the caller frees *out with free(); -1 on error. */
int index_api_studies(struct r3d_err *err, struct index *idx, const struct api_filter *f,
		      struct api_study **out);
int index_api_series(struct r3d_err *err, struct index *idx, int64_t study_id,
		     struct api_series **out);
int index_api_jobs(struct r3d_err *err, struct index *idx, const struct api_filter *f,
		   struct api_job **out);
/* Outbox rows of f->job_id (every row of a job, in id order) or the newest. */
int index_api_outbox(struct r3d_err *err, struct index *idx, const struct api_filter *f,
		     struct api_outbox **out);

/* One job with its report and selection: 1 found (free with
 * index_api_job_free), 0 no such job, -1 error. */
int index_api_job_get(struct r3d_err *err, struct index *idx, int64_t id, struct api_job *out);
void index_api_job_free(struct api_job *j);

/* What a change did. CONFLICT: the row's state does not allow it (state
 * names it); NOT_FOUND: no such row. */
enum index_api_rc { INDEX_API_OK, INDEX_API_NOT_FOUND, INDEX_API_CONFLICT, INDEX_API_ERROR };

/* A failed, skipped or cancelled job: a new job for the same series (and
 * the same import object, source series and route), queued (an import
 * without a source yet: waiting again, as long as before). *new_id names
 * it. CONFLICT for other states, and while a job of the same series and
 * object is queued, waiting or running (conflict_job names it). */
enum index_api_rc index_api_job_retry(struct r3d_err *err, struct index *idx, int64_t id, double now,
				      int64_t *new_id, int64_t *conflict_job, char state[16]);

/* A queued or waiting job is cancelled at once; a running one gets
 * cancel_requested = 1 (its worker stops at its next stage boundary).
 * *state is the job's state afterwards ("cancelled" or "running").
 * CONFLICT for a finished job. */
enum index_api_rc index_api_job_cancel(struct r3d_err *err, struct index *idx, int64_t id, double now,
				       char state[16]);

/* 1 when the API asked the job to stop, 0 not, -1 error. Worker threads. */
int index_job_cancel_requested(struct r3d_err *err, struct index *idx, int64_t id);

/* The study, and each of its series, pending again with route_override =
 * route, for the queue thread's next stable-study pass. NOT_FOUND for an
 * unknown study. */
enum index_api_rc index_api_study_rerun(struct r3d_err *err, struct index *idx, const char *study_uid,
					const char *route, double now);

/* A failed row: pending, due now, attempts 0. CONFLICT for other states. */
enum index_api_rc index_api_outbox_retry(struct r3d_err *err, struct index *idx, int64_t id,
					 double now, char state[16]);
/* A pending or failed row: dropped, never sent. CONFLICT for other states. */
enum index_api_rc index_api_outbox_drop(struct r3d_err *err, struct index *idx, int64_t id,
					double now, char state[16]);

/* What one pass of the stable-study check did. */
struct queue_pass {
	int studies_stable;
	int jobs_queued;
	int series_ineligible;
	int jobs_waiting;      /* import jobs that started waiting for their source */
	int jobs_failed;       /* import jobs whose source never came or cannot be used */
};

/* How stable studies become jobs ([pipeline] and [import] in the config). */
struct queue_rules {
	const struct config *cfg;  /* routes and the structure catalogue (series selection) */
	int stable_seconds;
	int min_slices;
	bool import;               /* segmentations received become import jobs */
	int wait_for_source_s;     /* how long one waits for the series it refers to */
};

/* Every study that has new instances and received nothing since now -
 * stable_seconds is stable: each of its series with new instances becomes a
 * queued job if the pipeline can use it (modality CT, CT image instances of
 * one size, at least min_slices of them or a multi-frame CT), else it is
 * recorded as ineligible with the reason. A queued job not yet started for
 * the same series is superseded by the new one.
 *
 * A series of Segmentations or RT Structure Sets (rules->import) gives one
 * import job per new object instead, waiting for its source series: the
 * one it references (Referenced Series; else the CT series of its Frame of
 * Reference). Every pass, a waiting job whose source is stable is queued on
 * it; one whose source is not there after wait_for_source_s, or cannot be
 * used, fails with the reason. Logs one line per event. */
bool queue_scan_stable(struct r3d_err *err, struct index *idx, double now,
		       const struct queue_rules *rules, struct queue_pass *pass);

/* For `recon3d --explain-route`: the choice queue_scan_stable() would make
 * for every study of the index, from the same facts, handed to fn (n may be
 * 0: a study of segmentations only). Changes nothing. */
struct route_series;
struct route_choice;
typedef void (*queue_explain_fn)(void *ctx, const char *study_uid, const struct route_series *s,
				 const struct route_choice *c, size_t n);
bool queue_explain(struct r3d_err *err, struct index *idx, const struct queue_rules *rules,
		   queue_explain_fn fn, void *ctx);

#endif
