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
