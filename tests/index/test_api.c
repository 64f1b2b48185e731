/*
 * test_api.c: unit tests for the index side of the jobs API (src/index/api.c):
 * lists, job retry and cancel with their conflicts, a cancel request seen by
 * the worker and at recovery, a cancelled job that index_job_finish leaves
 * alone, study re-run, outbox retry and drop (a dropped row stays dropped
 * unless it arrived).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/index.h"
#include "r3d/log.h"
#include "r3d/test.h"

static const struct queue_rules rules = {.stable_seconds = 20, .min_slices = 20, .import = true,
					 .wait_for_source_s = 60};

static bool put(struct index *idx, const char *study, const char *series, int n, double t)
{
	struct r3d_err err;
	char old[256];

	for (int i = 0; i < n; i++) {
		struct bridge_instance_attrs a;
		memset(&a, 0, sizeof(a));
		snprintf(a.study_uid, sizeof(a.study_uid), "%s", study);
		snprintf(a.series_uid, sizeof(a.series_uid), "%s", series);
		snprintf(a.sop_instance_uid, sizeof(a.sop_instance_uid), "%s.%d", series, i);
		snprintf(a.sop_class_uid, sizeof(a.sop_class_uid), "1.2.840.10008.5.1.4.1.1.2");
		snprintf(a.modality, sizeof(a.modality), "CT");
		snprintf(a.series_description, sizeof(a.series_description), "thin");
		a.rows = a.columns = 512;
		a.number_of_frames = 1;
		a.series_number = 3;
		if (!index_put_instance(&err, idx, &a, a.sop_instance_uid, 1000, "SCU", t, old, sizeof(old)))
			return false;
	}
	return true;
}

static const char *state_of(struct index *idx, int64_t id, char buf[16])
{
	struct r3d_err err;
	struct api_job j;

	buf[0] = '\0';
	if (index_api_job_get(&err, idx, id, &j) == 1) {
		snprintf(buf, 16, "%s", j.state);
		index_api_job_free(&j);
	}
	return buf;
}

int main(void)
{
	char dir[] = "/tmp/r3d-test-index-api-XXXXXX";
	char path[256], st[16], buf[16];
	struct index *idx = NULL;
	struct queue_pass pass;
	struct r3d_err err;
	struct index_job job;
	int64_t new_id = 0, twin = 0;
	int requeued = 0;

	log_set_level(LOG_ERROR);
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/index.db", dir);
	CHECK(index_open(&err, path, &idx));
	if (idx == NULL)
		return test_summary();
	CHECK(put(idx, "1.1", "1.1.1", 25, 1000.0));
	CHECK(queue_scan_stable(&err, idx, 1030.0, &rules, &pass) && pass.jobs_queued == 1);

	/* Lists: the study, its series and its job. */
	struct api_filter any = {.limit = 10};
	struct api_study *studies = NULL;
	CHECK(index_api_studies(&err, idx, &any, &studies) == 1);
	CHECK(studies != NULL && strcmp(studies[0].study_uid, "1.1") == 0 && studies[0].stable_at == 1030.0 &&
	      !studies[0].pending && studies[0].route_override[0] == '\0');
	struct api_series *series = NULL;
	CHECK(index_api_series(&err, idx, studies[0].id, &series) == 1);
	CHECK(series != NULL && series[0].instances == 25 && series[0].series_number == 3 &&
	      strcmp(series[0].status, "queued") == 0 && strcmp(series[0].description, "thin") == 0);
	struct api_filter of_study = {.study_id = studies[0].id, .limit = 10};
	struct api_job *jobs = NULL;
	CHECK(index_api_jobs(&err, idx, &of_study, &jobs) == 1);
	CHECK(jobs != NULL && jobs[0].id == 1 && strcmp(jobs[0].state, "queued") == 0 &&
	      strcmp(jobs[0].kind, "series") == 0 && jobs[0].started_at == 0);
	free(studies);
	free(series);
	free(jobs);
	struct api_filter failed = {.state = "failed", .limit = 10};
	CHECK(index_api_jobs(&err, idx, &failed, &jobs) == 0);
	free(jobs);
	struct api_job one;
	CHECK(index_api_job_get(&err, idx, 999, &one) == 0);

	/* A queued job: nothing to retry; cancelled at once; twice: conflict. */
	CHECK(index_api_job_retry(&err, idx, 1, 1100.0, &new_id, &twin, st) == INDEX_API_CONFLICT &&
	      strcmp(st, "queued") == 0 && twin == 0);
	CHECK(index_api_job_cancel(&err, idx, 1, 1100.0, st) == INDEX_API_OK && strcmp(st, "cancelled") == 0);
	CHECK(index_api_job_cancel(&err, idx, 1, 1100.0, st) == INDEX_API_CONFLICT &&
	      strcmp(st, "cancelled") == 0);
	CHECK(index_api_job_cancel(&err, idx, 42, 1100.0, st) == INDEX_API_NOT_FOUND);
	/* Retried: a new queued job of the same series; again: its twin is open. */
	CHECK(index_api_job_retry(&err, idx, 1, 1101.0, &new_id, &twin, st) == INDEX_API_OK && new_id == 2);
	CHECK(strcmp(state_of(idx, 2, buf), "queued") == 0);
	CHECK(index_api_job_retry(&err, idx, 1, 1102.0, &new_id, &twin, st) == INDEX_API_CONFLICT && twin == 2);

	/* Running: a request, seen by the worker; finished cancelled, a later
	 * finish does not overwrite it. */
	CHECK(index_job_claim(&err, idx, 1103.0, &job) == 1 && job.id == 2 && job.instances == 25);
	CHECK(index_job_cancel_requested(&err, idx, 2) == 0);
	CHECK(index_api_job_cancel(&err, idx, 2, 1104.0, st) == INDEX_API_OK && strcmp(st, "running") == 0);
	CHECK(index_job_cancel_requested(&err, idx, 2) == 1);
	CHECK(index_job_finish(&err, idx, 2, JOB_CANCELLED, "cancelled by the jobs API", NULL, NULL, 1105.0));
	CHECK(index_job_finish(&err, idx, 2, JOB_DONE, NULL, "/r/2", "{}", 1106.0));
	CHECK(strcmp(state_of(idx, 2, buf), "cancelled") == 0);

	/* A crash with a cancel requested: cancelled at recovery, not queued. */
	CHECK(index_api_job_retry(&err, idx, 2, 1107.0, &new_id, &twin, st) == INDEX_API_OK && new_id == 3);
	CHECK(index_job_claim(&err, idx, 1108.0, &job) == 1 && job.id == 3);
	CHECK(index_api_job_cancel(&err, idx, 3, 1109.0, st) == INDEX_API_OK);
	CHECK(index_recover(&err, idx, &requeued) && requeued == 0);
	CHECK(strcmp(state_of(idx, 3, buf), "cancelled") == 0);

	/* Outbox: retry a failed row, drop a pending one; a delivery that comes
	 * back for a dropped row leaves it dropped unless it arrived. */
	CHECK(index_outbox_add(&err, idx, 3, "pacs", "/r/a.dcm", "9.1", "stl", 1110.0));
	CHECK(index_outbox_add(&err, idx, 3, "pacs", "/r/b.dcm", "9.2", "stl", 1110.0));
	CHECK(index_outbox_add(&err, idx, 3, "pacs", "/r/c.dcm", "9.3", "stl", 1110.0));
	CHECK(index_outbox_result(&err, idx, 1, OUTBOX_FAILED, 7, 1111.0, 0xA700, "refused", 1111.0));
	CHECK(index_api_outbox_retry(&err, idx, 2, 1112.0, st) == INDEX_API_CONFLICT && strcmp(st, "pending") == 0);
	CHECK(index_api_outbox_retry(&err, idx, 1, 1112.0, st) == INDEX_API_OK && strcmp(st, "pending") == 0);
	struct outbox_row due[4];
	CHECK(index_outbox_due(&err, idx, "pacs", 1112.0, due, 4) == 3);
	CHECK(due[2].id == 1 && due[2].attempts == 0);   /* due now, after the older rows */
	CHECK(index_api_outbox_drop(&err, idx, 2, 1113.0, st) == INDEX_API_OK && strcmp(st, "dropped") == 0);
	CHECK(index_api_outbox_drop(&err, idx, 2, 1113.0, st) == INDEX_API_CONFLICT);
	CHECK(index_api_outbox_drop(&err, idx, 99, 1113.0, st) == INDEX_API_NOT_FOUND);
	CHECK(index_outbox_due(&err, idx, "pacs", 1113.0, due, 4) == 2);   /* never sent */
	CHECK(index_outbox_result(&err, idx, 2, OUTBOX_PENDING, 1, 1114.0, -1, "timeout", 1114.0));
	CHECK(index_api_outbox_drop(&err, idx, 3, 1113.0, st) == INDEX_API_OK);
	CHECK(index_outbox_result(&err, idx, 3, OUTBOX_SENT, 1, 1114.0, 0, NULL, 1114.0));
	struct api_outbox *rows = NULL;
	struct api_filter of_job = {.job_id = 3, .limit = 10};
	CHECK(index_api_outbox(&err, idx, &of_job, &rows) == 3);
	CHECK(rows != NULL && strcmp(rows[0].state, "pending") == 0 && strcmp(rows[1].state, "dropped") == 0 &&
	      strcmp(rows[2].state, "sent") == 0 && strcmp(rows[0].last_error, "refused") == 0);
	free(rows);
	struct outbox_counts oc[2];
	CHECK(index_outbox_counts(&err, idx, oc, 2) == 1 && oc[0].n[OUTBOX_DROPPED] == 1 &&
	      oc[0].n[OUTBOX_SENT] == 1 && oc[0].n[OUTBOX_PENDING] == 1);
	CHECK(strcmp(outbox_state_name(OUTBOX_DROPPED), "dropped") == 0);

	/* Issue 15: a row names its kind; the same job queueing a sent object
	 * again (run again after a crash) leaves it sent; another job's does
	 * not; a job that did not finish drops its pending rows only. */
	CHECK(index_api_outbox(&err, idx, &of_job, &rows) == 3);
	CHECK(rows != NULL && strcmp(rows[2].kind, "stl") == 0);
	free(rows);
	CHECK(index_outbox_add(&err, idx, 3, "pacs", "/r/c.dcm", "9.3", "stl", 1115.0));
	CHECK(index_outbox_add(&err, idx, 3, "pacs", "/r/d.dcm", "9.4", "preview", 1115.0));
	CHECK(index_outbox_add(&err, idx, 3, "pacs", "/r/e.dcm", "9.5", "segmentation", 1115.0));
	CHECK(index_outbox_result(&err, idx, 5, OUTBOX_SENT, 1, 1116.0, 0, NULL, 1116.0));
	CHECK(index_outbox_drop_job(&err, idx, 3, "the job did not finish", 1117.0) == 2);  /* 9.1, 9.4 */
	CHECK(index_api_outbox(&err, idx, &of_job, &rows) == 5);
	CHECK(rows != NULL && strcmp(rows[0].state, "dropped") == 0 &&
	      strcmp(rows[0].last_error, "the job did not finish") == 0 &&
	      strcmp(rows[2].state, "sent") == 0 && rows[2].attempts == 1 &&   /* 9.3: not reset */
	      strcmp(rows[3].state, "dropped") == 0 && strcmp(rows[3].kind, "preview") == 0 &&
	      strcmp(rows[4].state, "sent") == 0 && strcmp(rows[4].kind, "segmentation") == 0);
	free(rows);
	CHECK(index_outbox_add(&err, idx, 2, "pacs", "/r/c.dcm", "9.3", "stl", 1118.0));
	CHECK(index_outbox_due(&err, idx, "pacs", 1118.0, due, 4) == 1 && due[0].job_id == 2);

	/* Re-run: unknown study; then pending again with the route, and the
	 * next pass queues a job at once (nothing new arrived). */
	CHECK(index_api_study_rerun(&err, idx, "7.7", "default", 1200.0) == INDEX_API_NOT_FOUND);
	CHECK(index_api_study_rerun(&err, idx, "1.1", "bone", 1200.0) == INDEX_API_OK);
	CHECK(index_api_studies(&err, idx, &any, &studies) == 1);
	CHECK(studies != NULL && studies[0].pending && strcmp(studies[0].route_override, "bone") == 0);
	free(studies);
	CHECK(queue_scan_stable(&err, idx, 1200.5, &rules, &pass) && pass.jobs_queued == 1);
	CHECK(strcmp(state_of(idx, 4, buf), "queued") == 0);

	index_close(idx);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return test_summary();
}
