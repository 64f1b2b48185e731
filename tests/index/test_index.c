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
#include "../../src/index/index_internal.h"

static const struct queue_rules rules20 = {.stable_seconds = 20, .min_slices = 20, .import = true, .wait_for_source_s = 60};

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

static int synchronous(struct index *idx)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(idx->db, "PRAGMA synchronous", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
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

static bool put_seg(struct index *idx, const char *study, const char *series, const char *sop_class,
		    const char *ref_series, const char *frame, double t)
{
	struct r3d_err err;
	char old[256], sop[64], path[128];

	snprintf(sop, sizeof(sop), "%s.0", series);
	snprintf(path, sizeof(path), "/data/%s.dcm", sop);
	struct bridge_instance_attrs a = attrs(study, series, sop, "SEG", 0, 1);
	snprintf(a.sop_class_uid, sizeof(a.sop_class_uid), "%s", sop_class);
	snprintf(a.ref_series_uid, sizeof(a.ref_series_uid), "%s", ref_series);
	snprintf(a.frame_of_reference_uid, sizeof(a.frame_of_reference_uid), "%s", frame);
	a.is_segmentation = true;
	return index_put_instance(&err, idx, &a, path, 100, "AI", t, old, sizeof(old));
}

/* The state and reason of the newest job of a series, "state|reason". */
static char *job_of(const char *db_path, const char *series)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char *out = NULL;

	sqlite3_open(db_path, &db);
	sqlite3_prepare_v2(db, "SELECT j.state || '|' || coalesce(j.reason, '') || '|' ||"
			   " coalesce((SELECT series_uid FROM series WHERE id = j.source_series_id), '')"
			   " FROM jobs j JOIN series s ON s.id = j.series_id WHERE s.series_uid = ?1"
			   " ORDER BY j.id DESC LIMIT 1", -1, &st, NULL);
	sqlite3_bind_text(st, 1, series, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
		out = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return out;
}

static bool job_is(const char *db_path, const char *series, const char *want)
{
	char *got = job_of(db_path, series);
	bool ok = got != NULL && strcmp(got, want) == 0;
	if (!ok)
		fprintf(stderr, "job of %s: got '%s', want '%s'\n", series, got ? got : "(none)", want);
	free(got);
	return ok;
}

#define SEG_CLASS "1.2.840.10008.5.1.4.1.1.66.4"
#define RTSTRUCT_CLASS "1.2.840.10008.5.1.4.1.1.481.3"

/* Segmentations received: import jobs wait for their source series. */
static void test_import(struct index *idx, const char *path)
{
	struct queue_pass pass;
	struct r3d_err err;
	struct index_counts c;
	char old[256];

	/* SEG first, its CT after the study was stable: waits, then queued on it
	 * (a CT of 5 slices is too short for the presets, not for the import). */
	CHECK(put_seg(idx, "3.3", "3.3.9", SEG_CLASS, "3.3.1", "", 3000.0));
	CHECK(queue_scan_stable(&err, idx, 3021.0, &rules20, &pass));
	CHECK(pass.jobs_waiting == 1 && pass.jobs_queued == 0);
	CHECK(index_counts(&err, idx, &c) && c.jobs[JOB_WAITING] == 1);
	CHECK(job_is(path, "3.3.9", "waiting||"));
	CHECK(put(idx, "3.3", "3.3.1", 5, "CT", 3030.0));
	CHECK(queue_scan_stable(&err, idx, 3040.0, &rules20, &pass));   /* still arriving */
	CHECK(pass.jobs_queued == 0 && job_is(path, "3.3.9", "waiting||"));
	CHECK(queue_scan_stable(&err, idx, 3051.0, &rules20, &pass));
	CHECK(pass.jobs_queued == 1 && pass.series_ineligible == 1);
	CHECK(job_is(path, "3.3.9", "queued||3.3.1"));
	/* The worker gets the CT's folder and the object's file. */
	{
		sqlite3 *db;
		sqlite3_open(path, &db);
		sqlite3_exec(db, "UPDATE jobs SET state = 'done' WHERE state = 'queued' AND import_instance_id IS NULL",
			     NULL, NULL, NULL);
		sqlite3_close(db);
	}
	struct index_job job;
	CHECK(index_job_claim(&err, idx, 3052.0, &job) == 1);
	CHECK(strcmp(job.series_uid, "3.3.1") == 0 && strcmp(job.series_dir, "/data") == 0);
	CHECK(strcmp(job.import_path, "/data/3.3.9.0.dcm") == 0);
	CHECK(strcmp(job.import_series_uid, "3.3.9") == 0 && job.instances == 5);
	CHECK(index_job_finish(&err, idx, job.id, JOB_DONE, NULL, "/r", NULL, 3053.0));
	/* The same object again: a new job; the same object is not re-queued
	 * by later passes. */
	CHECK(put_seg(idx, "3.3", "3.3.9", SEG_CLASS, "3.3.1", "", 3100.0));
	CHECK(queue_scan_stable(&err, idx, 3121.0, &rules20, &pass));
	CHECK(pass.jobs_waiting == 1 && pass.jobs_queued == 1);
	CHECK(queue_scan_stable(&err, idx, 3200.0, &rules20, &pass));
	CHECK(pass.jobs_waiting == 0 && pass.jobs_queued == 0);

	/* A source that never comes: fails after wait_for_source_s. */
	CHECK(put_seg(idx, "4.4", "4.4.9", SEG_CLASS, "4.4.1", "", 4000.0));
	CHECK(queue_scan_stable(&err, idx, 4021.0, &rules20, &pass) && pass.jobs_waiting == 1);
	CHECK(queue_scan_stable(&err, idx, 4080.0, &rules20, &pass) && pass.jobs_failed == 0);
	CHECK(queue_scan_stable(&err, idx, 4082.0, &rules20, &pass) && pass.jobs_failed == 1);
	CHECK(job_is(path, "4.4.9", "failed|source series 4.4.1 not received within 60 s|"));

	/* An RT Structure Set naming only a Frame of Reference: the CT of that
	 * frame, in the same pass as the CT's own job. */
	for (int i = 0; i < 25; i++) {
		char sop[64], p[128];
		snprintf(sop, sizeof(sop), "5.5.1.%d", i);
		snprintf(p, sizeof(p), "/data/5/%s.dcm", sop);
		struct bridge_instance_attrs a = attrs("5.5", "5.5.1", sop, "CT", 512, 1);
		snprintf(a.frame_of_reference_uid, sizeof(a.frame_of_reference_uid), "9.9");
		CHECK(index_put_instance(&err, idx, &a, p, 1000, "SCU", 5000.0, old, sizeof(old)));
	}
	CHECK(put_seg(idx, "5.5", "5.5.9", RTSTRUCT_CLASS, "", "9.9", 5000.0));
	CHECK(queue_scan_stable(&err, idx, 5021.0, &rules20, &pass));
	CHECK(pass.jobs_waiting == 1 && pass.jobs_queued == 2);
	CHECK(job_is(path, "5.5.9", "queued||5.5.1"));

	/* No reference at all; a source that is not CT. */
	CHECK(put_seg(idx, "6.6", "6.6.9", SEG_CLASS, "", "", 6000.0));
	CHECK(put(idx, "7.7", "7.7.1", 30, "MR", 7000.0));
	CHECK(put_seg(idx, "7.7", "7.7.9", SEG_CLASS, "7.7.1", "", 7000.0));
	CHECK(queue_scan_stable(&err, idx, 7021.0, &rules20, &pass) && pass.jobs_failed == 2);
	CHECK(job_is(path, "6.6.9", "failed|the segmentation names no source series (Referenced Series"
				    " Sequence), no source image and no Frame of Reference|"));
	CHECK(job_is(path, "7.7.9", "failed|source series 7.7.1 cannot be used: modality 'MR' is not CT|"));

	/* A SEG that names only a source image: the series holding it, and
	 * not another CT series of the same Frame of Reference. */
	for (int i = 0; i < 25; i++) {
		char sop[64], p[128];
		snprintf(sop, sizeof(sop), "9.9.1.%d", i);
		snprintf(p, sizeof(p), "/data/9/%s.dcm", sop);
		struct bridge_instance_attrs a = attrs("9.9", i < 20 ? "9.9.1" : "9.9.2", sop, "CT", 512, 1);
		snprintf(a.frame_of_reference_uid, sizeof(a.frame_of_reference_uid), "7.7.7");
		CHECK(index_put_instance(&err, idx, &a, p, 1000, "SCU", 9000.0, old, sizeof(old)));
	}
	{
		char o2[256];
		struct bridge_instance_attrs a = attrs("9.9", "9.9.9", "9.9.9.0", "SEG", 0, 1);
		snprintf(a.sop_class_uid, sizeof(a.sop_class_uid), "%s", SEG_CLASS);
		snprintf(a.frame_of_reference_uid, sizeof(a.frame_of_reference_uid), "7.7.7");
		snprintf(a.ref_sop_uid, sizeof(a.ref_sop_uid), "9.9.1.22");   /* in the smaller series */
		a.is_segmentation = true;
		CHECK(index_put_instance(&err, idx, &a, "/data/9.9.9.0.dcm", 10, "AI", 9000.0, o2, sizeof(o2)));
		struct bridge_instance_attrs b = attrs("10.1", "10.1.9", "10.1.9.0", "SEG", 0, 1);
		snprintf(b.sop_class_uid, sizeof(b.sop_class_uid), "%s", SEG_CLASS);
		snprintf(b.ref_sop_uid, sizeof(b.ref_sop_uid), "10.1.1.5");
		b.is_segmentation = true;
		CHECK(index_put_instance(&err, idx, &b, "/data/10.1.9.0.dcm", 10, "AI", 9000.0, o2, sizeof(o2)));
	}
	CHECK(queue_scan_stable(&err, idx, 9021.0, &rules20, &pass));
	CHECK(job_is(path, "9.9.9", "queued||9.9.2"));
	CHECK(queue_scan_stable(&err, idx, 9082.0, &rules20, &pass));
	CHECK(job_is(path, "10.1.9", "failed|source image 10.1.1.5 not received within 60 s|"));

	/* [import] enabled = false: the series is recorded, not imported. */
	struct queue_rules off = rules20;
	off.import = false;
	CHECK(put_seg(idx, "8.8", "8.8.9", SEG_CLASS, "3.3.1", "", 8000.0));
	CHECK(queue_scan_stable(&err, idx, 8021.0, &off, &pass));
	CHECK(pass.jobs_waiting == 0 && pass.series_ineligible == 1);
	char *r = reason_of(path, "8.8.9");
	CHECK(r != NULL && strstr(r, "[import] enabled = false") != NULL);
	free(r);
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
	CHECK(queue_scan_stable(&err, idx, 1005.0, &rules20, &pass));
	CHECK(pass.studies_stable == 0 && pass.jobs_queued == 0);
	/* Stable: one job. */
	CHECK(queue_scan_stable(&err, idx, 1021.5, &rules20, &pass));
	CHECK(pass.studies_stable == 1 && pass.jobs_queued == 1);
	CHECK(index_counts(&err, idx, &c) && c.jobs[JOB_QUEUED] == 1);
	/* Nothing new: no second job. */
	CHECK(queue_scan_stable(&err, idx, 1100.0, &rules20, &pass));
	CHECK(pass.jobs_queued == 0);

	/* A re-send after the job: a new job supersedes the queued one. */
	CHECK(put(idx, "1.1", "1.1.1", 1, "CT", 1200.0));
	CHECK(queue_scan_stable(&err, idx, 1221.0, &rules20, &pass));
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
	CHECK(queue_scan_stable(&err, idx, 2030.0, &rules20, &pass));
	CHECK(pass.studies_stable == 1 && pass.jobs_queued == 1 && pass.series_ineligible == 4);
	char *r1 = reason_of(path, "2.2.1"), *r2 = reason_of(path, "2.2.2"),
	     *r3 = reason_of(path, "2.2.3"), *r5 = reason_of(path, "2.2.5");
	CHECK(r1 != NULL && strcmp(r1, "modality 'MR' is not CT") == 0);
	CHECK(r2 != NULL && strcmp(r2, "3 CT images, fewer than min_slices = 20") == 0);
	CHECK(r3 != NULL && strstr(r3, "a secondary capture") != NULL);
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
	/* [storage] fsync: commits flushed (FULL); else a crash of the process
	 * only (NORMAL). */
	CHECK(synchronous(idx) == 1);
	CHECK(index_set_durable(&err, idx, true) && synchronous(idx) == 2);
	CHECK(index_set_durable(&err, idx, false) && synchronous(idx) == 1);
	/* The path of an instance by its SOP Instance UID (receiver start-up). */
	{
		char p[256];
		CHECK(index_instance_path(&err, idx, "1.1.1.3", p, sizeof(p)) == 1 &&
		      strcmp(p, "/data/1.1.1.3.dcm") == 0);
		CHECK(index_instance_path(&err, idx, "9.9.9", p, sizeof(p)) == 0);
	}
	test_viewer_links(idx, path);
	test_import(idx, path);
	index_close(idx);

	/* Reopen: the schema is there, nothing migrates twice, data kept. */
	idx = NULL;
	CHECK(index_open(&err, path, &idx));
	CHECK(idx != NULL && index_counts(&err, idx, &c) && c.studies == 10);
	index_close(idx);

	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return test_summary();
}
