/*
 * test_index.c: unit tests for the SQLite index and the stable-study queue:
 * upserts and replacement, counters, eligibility reasons, supersession,
 * multi-frame CT, recovery of running jobs, and schema reopen.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "r3d/index.h"
#include "r3d/log.h"
#include "r3d/test.h"

#define CT "1.2.840.10008.5.1.4.1.1.2"

static struct bridge_instance_attrs attrs(const char *study, const char *series, const char *sop,
					  const char *modality, long rows, long frames)
{
	struct bridge_instance_attrs a;

	memset(&a, 0, sizeof(a));
	snprintf(a.study_uid, sizeof(a.study_uid), "%s", study);
	snprintf(a.series_uid, sizeof(a.series_uid), "%s", series);
	snprintf(a.sop_instance_uid, sizeof(a.sop_instance_uid), "%s", sop);
	snprintf(a.sop_class_uid, sizeof(a.sop_class_uid), "%s", CT);
	snprintf(a.modality, sizeof(a.modality), "%s", modality);
	a.rows = rows;
	a.columns = 512;
	a.number_of_frames = frames;
	a.series_number = 1;
	return a;
}

static bool put(struct index *idx, const char *study, const char *series, int n, const char *modality,
		double t)
{
	struct r3d_err err;
	char old[256];

	for (int i = 0; i < n; i++) {
		char sop[64], path[128];
		snprintf(sop, sizeof(sop), "%s.%d", series, i);
		snprintf(path, sizeof(path), "/data/%s.dcm", sop);
		struct bridge_instance_attrs a = attrs(study, series, sop, modality, 512, 1);
		if (!index_put_instance(&err, idx, &a, path, 1000, "SCU", t, old, sizeof(old)))
			return false;
	}
	return true;
}

static char *reason_of(const char *db_path, const char *series)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char *out = NULL;

	sqlite3_open(db_path, &db);
	sqlite3_prepare_v2(db, "SELECT reason FROM series WHERE series_uid = ?1", -1, &st, NULL);
	sqlite3_bind_text(st, 1, series, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
		out = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return out;
}

/* Viewer links: one token per study, found until it expires, dead after;
 * an expired study link is replaced by a new token, the old one stays dead.
 * The series list holds only done jobs, the latest per series. */
static void test_viewer_links(struct index *idx, const char *db_path)
{
	struct r3d_err err;
	char tok[INDEX_VIEWER_TOKEN_MAX], uid[BRIDGE_UID_MAX + 1];
	double exp = 0, now = 5000.0, day = 86400.0;
	bool created = false;
	int64_t active = -1;
	const char *t1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	const char *t2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
	const char *t3 = "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd";

	CHECK(index_viewer_link_count(&err, idx, now, &active) && active == 0);
	CHECK(index_viewer_link_find(&err, idx, t1, now, uid, &exp) == 0 && uid[0] == '\0');
	CHECK(index_viewer_link_ensure(&err, idx, "1.1", t1, now, 7 * day, tok, &exp, &created));
	CHECK(created && strcmp(tok, t1) == 0);
	CHECK_NEAR(exp, now + 7 * day, 1e-6);
	/* Same study again: the first token stays, the candidate is not used. */
	CHECK(index_viewer_link_ensure(&err, idx, "1.1", t2, now + 10, 7 * day, tok, &exp, &created));
	CHECK(!created && strcmp(tok, t1) == 0);
	CHECK_NEAR(exp, now + 7 * day, 1e-6);
	/* Another study, another token; the same token twice is refused. */
	CHECK(!index_viewer_link_ensure(&err, idx, "2.2", t1, now, 7 * day, tok, &exp, &created));
	CHECK(tok[0] == '\0' && !created);
	CHECK(index_viewer_link_ensure(&err, idx, "2.2", t2, now, day, tok, &exp, &created));
	CHECK(created && strcmp(tok, t2) == 0);
	CHECK(index_viewer_link_count(&err, idx, now, &active) && active == 2);
	/* Lookups: valid, wrong, expired (at the very second and after). */
	CHECK(index_viewer_link_find(&err, idx, t1, now + 6 * day, uid, &exp) == 1 &&
	      strcmp(uid, "1.1") == 0);
	CHECK(index_viewer_link_find(&err, idx, t3, now, uid, &exp) == 0);
	CHECK(index_viewer_link_find(&err, idx, "", now, uid, &exp) == 0);
	CHECK(index_viewer_link_find(&err, idx, t2, now + day, uid, &exp) == 0);
	CHECK(index_viewer_link_find(&err, idx, t1, now + 8 * day, uid, &exp) == 0 && uid[0] == '\0');
	CHECK(index_viewer_link_count(&err, idx, now + 2 * day, &active) && active == 1);
	CHECK(!index_viewer_link_ensure(&err, idx, "3.3", "", now, day, tok, &exp, &created));
	CHECK(!index_viewer_link_ensure(&err, idx, "3.3", t3, now, 0, tok, &exp, &created));
	/* Expired: a new token replaces it; the old one stays dead. */
	CHECK(index_viewer_link_ensure(&err, idx, "2.2", t3, now + 2 * day, day, tok, &exp, &created));
	CHECK(created && strcmp(tok, t3) == 0);
	CHECK(index_viewer_link_find(&err, idx, t2, now + 2 * day, uid, &exp) == 0);
	CHECK(index_viewer_link_find(&err, idx, t3, now + 2 * day, uid, &exp) == 1 &&
	      strcmp(uid, "2.2") == 0);

	/* Done series of a study: none yet; then one done job with a report,
	 * a later failed job of the same series hides it. */
	struct index_viewer_series *rows = NULL;
	CHECK(index_viewer_study_series(&err, idx, "1.1", &rows) == 0);
	index_viewer_series_free(rows, 0);
	{
		sqlite3 *db;
		sqlite3_open(db_path, &db);
		CHECK(sqlite3_exec(db,
				   "UPDATE jobs SET state = 'done', results_dir = '/r/' || id,"
				   " result = '{\"structures\":[]}', finished_at = 1"
				   " WHERE id = (SELECT max(id) FROM jobs)",
				   NULL, NULL, NULL) == SQLITE_OK);
		sqlite3_close(db);
	}
	int n = index_viewer_study_series(&err, idx, "2.2", &rows);
	CHECK(n == 1);
	if (n == 1) {
		CHECK(strcmp(rows[0].series_uid, "2.2.4") == 0 || strcmp(rows[0].series_uid, "2.2.5") == 0);
		CHECK(rows[0].report != NULL && strstr(rows[0].report, "structures") != NULL);
		CHECK(strncmp(rows[0].results_dir, "/r/", 3) == 0);
		CHECK(rows[0].series_number == 1);
	}
	index_viewer_series_free(rows, n);
	{
		sqlite3 *db;
		sqlite3_open(db_path, &db);
		CHECK(sqlite3_exec(db,
				   "INSERT INTO jobs(series_id, state, instances, created_at, updated_at)"
				   " SELECT series_id, 'failed', 1, 2, 2 FROM jobs WHERE state = 'done'",
				   NULL, NULL, NULL) == SQLITE_OK);
		sqlite3_close(db);
	}
	CHECK(index_viewer_study_series(&err, idx, "2.2", &rows) == 0);
	index_viewer_series_free(rows, 0);
}

int main(void)
{
	char dir[] = "/tmp/r3d-test-index-XXXXXX";
	char path[256];
	struct index *idx = NULL;
	struct index_counts c;
	struct queue_pass pass;
	struct r3d_err err;
	char old[256];
	int requeued = 0;

	log_set_level(LOG_ERROR);
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/index.db", dir);
	CHECK(index_open(&err, path, &idx));
	if (idx == NULL)
		return test_summary();

	/* Upserts and replacement. */
	CHECK(put(idx, "1.1", "1.1.1", 25, "CT", 1000.0));
	CHECK(index_counts(&err, idx, &c));
	CHECK(c.studies == 1 && c.series == 1 && c.instances == 25 && c.bytes == 25000);
	struct bridge_instance_attrs a = attrs("1.1", "1.1.1", "1.1.1.0", "CT", 512, 1);
	CHECK(index_put_instance(&err, idx, &a, "/data/1.1.1.0.dcm", 1500, "SCU", 1001.0, old, sizeof(old)));
	CHECK(old[0] == '\0');   /* same path: nothing to remove */
	CHECK(index_put_instance(&err, idx, &a, "/elsewhere/x.dcm", 1500, "SCU", 1001.0, old, sizeof(old)));
	CHECK(strcmp(old, "/data/1.1.1.0.dcm") == 0);
	CHECK(index_counts(&err, idx, &c));
	CHECK(c.instances == 25 && c.bytes == 24 * 1000 + 1500);

	/* Not stable yet: nothing queued. */
	CHECK(queue_scan_stable(&err, idx, 1005.0, 20, 20, &pass));
	CHECK(pass.studies_stable == 0 && pass.jobs_queued == 0);
	/* Stable: one job. */
	CHECK(queue_scan_stable(&err, idx, 1021.5, 20, 20, &pass));
	CHECK(pass.studies_stable == 1 && pass.jobs_queued == 1);
	CHECK(index_counts(&err, idx, &c) && c.jobs[JOB_QUEUED] == 1);
	/* Nothing new: no second job. */
	CHECK(queue_scan_stable(&err, idx, 1100.0, 20, 20, &pass));
	CHECK(pass.jobs_queued == 0);

	/* A re-send after the job: a new job supersedes the queued one. */
	CHECK(put(idx, "1.1", "1.1.1", 1, "CT", 1200.0));
	CHECK(queue_scan_stable(&err, idx, 1221.0, 20, 20, &pass));
	CHECK(pass.jobs_queued == 1);
	CHECK(index_counts(&err, idx, &c));
	CHECK(c.jobs[JOB_QUEUED] == 1 && c.jobs[JOB_SUPERSEDED] == 1 && c.instances == 25);

	/* Ineligible series, each with its reason; one study, three series. */
	CHECK(put(idx, "2.2", "2.2.1", 30, "MR", 2000.0));
	CHECK(put(idx, "2.2", "2.2.2", 3, "CT", 2000.0));
	struct bridge_instance_attrs sc = attrs("2.2", "2.2.3", "2.2.3.0", "CT", 512, 1);
	snprintf(sc.sop_class_uid, sizeof(sc.sop_class_uid), "1.2.840.10008.5.1.4.1.1.7");
	CHECK(index_put_instance(&err, idx, &sc, "/data/sc.dcm", 10, "SCU", 2000.0, old, sizeof(old)));
	/* A multi-frame CT counts although it is one instance. */
	struct bridge_instance_attrs mf = attrs("2.2", "2.2.4", "2.2.4.0", "CT", 512, 300);
	CHECK(index_put_instance(&err, idx, &mf, "/data/mf.dcm", 10, "SCU", 2000.0, old, sizeof(old)));
	/* Mixed sizes. */
	CHECK(put(idx, "2.2", "2.2.5", 25, "CT", 2000.0));
	struct bridge_instance_attrs small = attrs("2.2", "2.2.5", "2.2.5.99", "CT", 256, 1);
	CHECK(index_put_instance(&err, idx, &small, "/data/s.dcm", 10, "SCU", 2000.0, old, sizeof(old)));
	CHECK(queue_scan_stable(&err, idx, 2030.0, 20, 20, &pass));
	CHECK(pass.studies_stable == 1 && pass.jobs_queued == 1 && pass.series_ineligible == 4);
	char *r1 = reason_of(path, "2.2.1"), *r2 = reason_of(path, "2.2.2"),
	     *r3 = reason_of(path, "2.2.3"), *r5 = reason_of(path, "2.2.5");
	CHECK(r1 != NULL && strcmp(r1, "modality 'MR' is not CT") == 0);
	CHECK(r2 != NULL && strcmp(r2, "3 CT images, fewer than min_slices = 20") == 0);
	CHECK(r3 != NULL && strstr(r3, "no CT image instances") != NULL);
	CHECK(r5 != NULL && strstr(r5, "mixed image sizes") != NULL);
	CHECK(reason_of(path, "2.2.4") == NULL);
	free(r1);
	free(r2);
	free(r3);
	free(r5);

	/* Recovery: a running job becomes queued again. */
	{
		sqlite3 *db;
		sqlite3_open(path, &db);
		sqlite3_exec(db, "UPDATE jobs SET state = 'running' WHERE state = 'queued'", NULL, NULL, NULL);
		sqlite3_close(db);
	}
	CHECK(index_recover(&err, idx, &requeued) && requeued == 2);
	CHECK(index_counts(&err, idx, &c) && c.jobs[JOB_QUEUED] == 2 && c.jobs[JOB_RUNNING] == 0);
	CHECK(index_ping(&err, idx));
	test_viewer_links(idx, path);
	index_close(idx);

	/* Reopen: the schema is there, nothing migrates twice, data kept. */
	idx = NULL;
	CHECK(index_open(&err, path, &idx));
	CHECK(idx != NULL && index_counts(&err, idx, &c) && c.studies == 2);
	index_close(idx);

	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return test_summary();
}
