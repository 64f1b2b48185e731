/*
 * queue.c: stable-study detection. A study that has received nothing for
 * [pipeline] stable_seconds is complete: each of its series with new
 * instances becomes one queued job, or is recorded as ineligible with the
 * reason (see queue_scan_stable in r3d/index.h). Called by the queue thread;
 * takes the index lock.
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index_internal.h"
#include "r3d/config.h"
#include "r3d/log.h"
#include "r3d/route.h"

#define QUEUE_REASON_MAX 320

/* CT Image, Enhanced CT Image, Legacy Converted Enhanced CT Image Storage. */
#define CT_SOP_CLASSES                                                               \
	"('1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.5.1.4.1.1.2.1',"              \
	" '1.2.840.10008.5.1.4.1.1.2.2')"

/* Segmentation, Label Map Segmentation, RT Structure Set Storage. */
#define SEG_SOP_CLASSES                                                              \
	"('" BRIDGE_UID_SEG_STORAGE "', '" BRIDGE_UID_LABELMAP_SEG_STORAGE "',"       \
	" '" BRIDGE_UID_RTSTRUCT_STORAGE "')"

struct id_list {
	int64_t *ids;
	size_t n, cap;
};

static bool ids_push(struct id_list *l, int64_t id)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		int64_t *p = realloc(l->ids, cap * sizeof(*p));
		if (p == NULL)
			return false;
		l->ids = p;
		l->cap = cap;
	}
	l->ids[l->n++] = id;
	return true;
}

/* Collects the first integer column of every row of st (bound by the caller). */
static bool collect_ids(struct r3d_err *err, struct index *idx, sqlite3_stmt *st, struct id_list *l)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!ids_push(l, sqlite3_column_int64(st, 0)))
			return r3d_err_set(err, R3D_ENOMEM, "queue: out of memory");
	}
	if (rc != SQLITE_DONE)
		return index_sql_fail(err, idx, "scanning studies");
	return true;
}

struct series_facts {
	char uid[65];
	char modality[17];
	int64_t ct_images;
	int64_t max_frames;
	int64_t sizes;       /* distinct rows x columns among the CT images */
	int64_t instances;   /* all instances, CT or not */
};

static bool series_facts_get(struct r3d_err *err, struct index *idx, int64_t series_id,
			     struct series_facts *f)
{
	sqlite3_stmt *st = NULL;
	bool ok = false;
	const char *sql =
		"SELECT s.series_uid, coalesce(s.modality, ''),"
		" (SELECT count(*) FROM instances i WHERE i.series_id = s.id),"
		" (SELECT count(*) FROM instances i WHERE i.series_id = s.id AND i.sop_class_uid IN "
		CT_SOP_CLASSES "),"
		" (SELECT coalesce(max(frames), 0) FROM instances i WHERE i.series_id = s.id"
		"  AND i.sop_class_uid IN " CT_SOP_CLASSES "),"
		" (SELECT count(DISTINCT rows || 'x' || columns) FROM instances i"
		"  WHERE i.series_id = s.id AND i.sop_class_uid IN " CT_SOP_CLASSES ")"
		" FROM series s WHERE s.id = ?1";

	memset(f, 0, sizeof(*f));
	if (sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL) != SQLITE_OK)
		return index_sql_fail(err, idx, "reading series");
	sqlite3_bind_int64(st, 1, series_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(f->uid, sizeof(f->uid), "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(f->modality, sizeof(f->modality), "%s",
			 (const char *)sqlite3_column_text(st, 1));
		f->instances = sqlite3_column_int64(st, 2);
		f->ct_images = sqlite3_column_int64(st, 3);
		f->max_frames = sqlite3_column_int64(st, 4);
		f->sizes = sqlite3_column_int64(st, 5);
		ok = true;
	} else {
		index_sql_fail(err, idx, "reading series");
	}
	sqlite3_finalize(st);
	return ok;
}

/* Fills reason and returns false when the pipeline cannot use the series. */
static bool series_eligible(const struct series_facts *f, int min_slices, char *reason, size_t size)
{
	if (strcmp(f->modality, "CT") != 0) {
		snprintf(reason, size, "modality '%s' is not CT", f->modality);
		return false;
	}
	if (f->ct_images == 0) {
		snprintf(reason, size, "no CT image instances (%lld instances of other SOP classes)",
			 (long long)f->instances);
		return false;
	}
	if (f->sizes > 1) {
		snprintf(reason, size, "mixed image sizes (%lld different rows x columns)",
			 (long long)f->sizes);
		return false;
	}
	if (f->max_frames > 1)
		return true;   /* a multi-frame (Enhanced) CT holds its slices in frames */
	if (f->ct_images < min_slices) {
		snprintf(reason, size, "%lld CT images, fewer than min_slices = %d",
			 (long long)f->ct_images, min_slices);
		return false;
	}
	return true;
}

/* Runs one statement with ?1 = a, ?2 = d and ?3 = text (when not NULL);
 * a parameter the statement does not use is not bound (SQLITE_RANGE). */
static bool run(struct r3d_err *err, struct index *idx, const char *sql, int64_t a, double d,
		const char *text)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL) != SQLITE_OK)
		return index_sql_fail(err, idx, "preparing");
	int n = sqlite3_bind_parameter_count(st);
	sqlite3_bind_int64(st, 1, a);
	if (n >= 2)
		sqlite3_bind_double(st, 2, d);
	if (text != NULL && n >= 3)
		sqlite3_bind_text(st, 3, text, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return index_sql_fail(err, idx, "updating the queue");
	return true;
}

/* Count of the series' segmentation objects, or -1 on error. */
static int64_t series_segmentations(struct r3d_err *err, struct index *idx, int64_t series_id)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	if (sqlite3_prepare_v2(idx->db,
			       "SELECT count(*) FROM instances WHERE series_id = ?1 AND sop_class_uid IN "
			       SEG_SOP_CLASSES, -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "reading series");
		return -1;
	}
	sqlite3_bind_int64(st, 1, series_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		index_sql_fail(err, idx, "reading series");
	sqlite3_finalize(st);
	return n;
}

/* One waiting import job per segmentation object of the series that is new
 * (no job made since it was received); a job of the same object that has
 * not started yet is superseded by it. */
static bool queue_import_series(struct r3d_err *err, struct index *idx, int64_t series_id,
				const char *series_uid, double now, const struct queue_rules *rules,
				struct queue_pass *pass, int *jobs_in_study)
{
	struct id_list objs = {0};
	sqlite3_stmt *st = NULL;
	bool ok = false;

	if (sqlite3_prepare_v2(idx->db,
			       "SELECT i.id FROM instances i WHERE i.series_id = ?1 AND i.sop_class_uid IN "
			       SEG_SOP_CLASSES " AND NOT EXISTS (SELECT 1 FROM jobs j"
			       "  WHERE j.import_instance_id = i.id AND j.created_at >= i.received_at)"
			       " ORDER BY i.id",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "reading segmentations");
		goto out;
	}
	sqlite3_bind_int64(st, 1, series_id);
	if (!collect_ids(err, idx, st, &objs))
		goto out;
	for (size_t k = 0; k < objs.n; k++) {
		if (!run(err, idx,
			 "UPDATE jobs SET state = 'superseded', updated_at = ?2,"
			 " reason = 'superseded by the same segmentation received again'"
			 " WHERE import_instance_id = ?1 AND state IN ('queued', 'waiting')",
			 objs.ids[k], now, NULL))
			goto out;
		sqlite3_stmt *ins = NULL;
		if (sqlite3_prepare_v2(idx->db,
				       "INSERT INTO jobs(series_id, state, instances, created_at, updated_at,"
				       " import_instance_id, wait_until) VALUES(?1, 'waiting', 1, ?2, ?2, ?3, ?4)",
				       -1, &ins, NULL) != SQLITE_OK) {
			index_sql_fail(err, idx, "queueing an import");
			goto out;
		}
		sqlite3_bind_int64(ins, 1, series_id);
		sqlite3_bind_double(ins, 2, now);
		sqlite3_bind_int64(ins, 3, objs.ids[k]);
		sqlite3_bind_double(ins, 4, now + rules->wait_for_source_s);
		int rc = sqlite3_step(ins);
		sqlite3_finalize(ins);
		if (rc != SQLITE_DONE) {
			index_sql_fail(err, idx, "queueing an import");
			goto out;
		}
		pass->jobs_waiting++;
		(*jobs_in_study)++;
		log_info("queue", "import job waiting for its source job=%lld series=%s",
			 (long long)sqlite3_last_insert_rowid(idx->db), series_uid);
	}
	if (!run(err, idx, "UPDATE series SET pending = 0, status = 'queued', reason = NULL WHERE id = ?1",
		 series_id, now, NULL))
		goto out;
	ok = true;
out:
	sqlite3_finalize(st);
	free(objs.ids);
	return ok;
}

/* A series of segmentation objects: import jobs, or not eligible. Returns
 * 1 when series_id holds segmentations (handled), 0 when it does not, -1 on
 * error. */
static int queue_segmentations(struct r3d_err *err, struct index *idx, int64_t series_id, double now,
			       const struct queue_rules *rules, struct queue_pass *pass, int *jobs_in_study)
{
	struct series_facts f;
	char reason[QUEUE_REASON_MAX];

	int64_t nseg = series_segmentations(err, idx, series_id);
	if (nseg < 0)
		return -1;
	if (nseg == 0)
		return 0;
	if (!series_facts_get(err, idx, series_id, &f))
		return -1;
	if (rules->import)
		return queue_import_series(err, idx, series_id, f.uid, now, rules, pass, jobs_in_study) ? 1 : -1;
	snprintf(reason, sizeof(reason), "segmentation objects are not imported ([import] enabled = false)");
	if (!run(err, idx, "UPDATE series SET pending = 0, status = 'ineligible', reason = ?3 WHERE id = ?1",
		 series_id, now, reason))
		return -1;
	pass->series_ineligible++;
	log_info("queue", "series not eligible series=%s reason=\"%s\"", f.uid, reason);
	return 1;
}

/* One series of a study as selection sees it: one entry per called AE
 * title it came in on. */
struct cand {
	int64_t series_id;
	bool pending;              /* new instances since the last pass, or a re-run */
	struct route_series f;
};

static bool cands_push(struct cand **c, size_t *n, size_t *cap, const struct cand *one)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct cand *p = realloc(*c, nc * sizeof(*p));
		if (p == NULL)
			return false;
		*c = p;
		*cap = nc;
	}
	(*c)[(*n)++] = *one;
	return true;
}

static void col_text(sqlite3_stmt *st, int i, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(dst, size, "%s", t != NULL ? (const char *)t : "");
}

/* The study's series that selection chooses among (segmentation objects are
 * imports, not candidates), with their facts. */
static bool study_cands(struct r3d_err *err, struct index *idx, int64_t study_id,
			const struct queue_rules *rules, struct cand **out, size_t *nout)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 0;
	int rc;
	const char *sql =
		"SELECT s.id, s.series_uid, coalesce(s.modality, ''), coalesce(s.series_description, ''),"
		" coalesce(s.series_number, -1), coalesce(st.study_description, ''),"
		" coalesce(s.image_type, ''), coalesce(s.convolution_kernel, ''),"
		" coalesce(s.contrast_agent, ''), coalesce(s.body_part, ''), coalesce(s.manufacturer, ''),"
		" coalesce(s.calling_ae, ''), coalesce(s.called_ae, ''), coalesce(s.orientation, ''),"
		" coalesce(s.slice_thickness, 0), s.pending,"
		" (SELECT count(*) FROM instances i WHERE i.series_id = s.id),"
		" (SELECT count(*) FROM instances i WHERE i.series_id = s.id AND i.sop_class_uid IN "
		CT_SOP_CLASSES "),"
		" (SELECT coalesce(max(frames), 0) FROM instances i WHERE i.series_id = s.id"
		"  AND i.sop_class_uid IN " CT_SOP_CLASSES "),"
		" (SELECT count(DISTINCT rows || 'x' || columns) FROM instances i"
		"  WHERE i.series_id = s.id AND i.sop_class_uid IN " CT_SOP_CLASSES "),"
		" (SELECT count(*) FROM instances i WHERE i.series_id = s.id AND i.sop_class_uid IN "
		SEG_SOP_CLASSES "),"
		" (SELECT coalesce(max(slice_pos) - min(slice_pos), 0) FROM instances i"
		"  WHERE i.series_id = s.id AND i.sop_class_uid IN " CT_SOP_CLASSES "),"
		" (SELECT count(DISTINCT slice_pos) FROM instances i WHERE i.series_id = s.id"
		"  AND i.sop_class_uid IN " CT_SOP_CLASSES "),"
		" (SELECT coalesce(sop_class_uid, '') FROM instances i WHERE i.series_id = s.id"
		"  ORDER BY i.id LIMIT 1)"
		" FROM series s JOIN studies st ON st.id = s.study_id WHERE s.study_id = ?1 ORDER BY s.id";

	*out = NULL;
	*nout = 0;
	if (sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL) != SQLITE_OK)
		return index_sql_fail(err, idx, "reading a study's series");
	sqlite3_bind_int64(st, 1, study_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct cand c;
		struct series_facts sf;
		char called[256];

		if (sqlite3_column_int64(st, 20) > 0)
			continue;   /* segmentations: imported onto their source */
		memset(&c, 0, sizeof(c));
		c.series_id = sqlite3_column_int64(st, 0);
		col_text(st, 1, c.f.series_uid, sizeof(c.f.series_uid));
		col_text(st, 2, c.f.modality, sizeof(c.f.modality));
		col_text(st, 3, c.f.series_description, sizeof(c.f.series_description));
		c.f.series_number = (long)sqlite3_column_int64(st, 4);
		col_text(st, 5, c.f.study_description, sizeof(c.f.study_description));
		col_text(st, 6, c.f.image_type, sizeof(c.f.image_type));
		col_text(st, 7, c.f.kernel, sizeof(c.f.kernel));
		col_text(st, 8, c.f.contrast_agent, sizeof(c.f.contrast_agent));
		col_text(st, 9, c.f.body_part, sizeof(c.f.body_part));
		col_text(st, 10, c.f.manufacturer, sizeof(c.f.manufacturer));
		col_text(st, 11, c.f.calling_ae, sizeof(c.f.calling_ae));
		col_text(st, 12, called, sizeof(called));
		col_text(st, 13, c.f.orientation, sizeof(c.f.orientation));
		c.f.slice_thickness = sqlite3_column_double(st, 14);
		c.pending = sqlite3_column_int(st, 15) != 0;
		memset(&sf, 0, sizeof(sf));
		snprintf(sf.uid, sizeof(sf.uid), "%s", c.f.series_uid);
		snprintf(sf.modality, sizeof(sf.modality), "%s", c.f.modality);
		sf.instances = sqlite3_column_int64(st, 16);
		sf.ct_images = sqlite3_column_int64(st, 17);
		sf.max_frames = sqlite3_column_int64(st, 18);
		sf.sizes = sqlite3_column_int64(st, 19);
		series_eligible(&sf, rules->min_slices, c.f.unusable, sizeof(c.f.unusable));
		c.f.images = sf.max_frames > 1 ? (long)sf.max_frames : (long)sf.ct_images;
		double extent = sqlite3_column_double(st, 21);
		int64_t positions = sqlite3_column_int64(st, 22);
		if (positions >= 2 && extent > 0) {
			c.f.spacing = extent / (double)(positions - 1);
			c.f.extent_mm = extent + c.f.spacing;
		}
		col_text(st, 23, c.f.sop_class_uid, sizeof(c.f.sop_class_uid));
		/* One candidate per called AE title (a series sent to RECON3D_BONE
		 * and to RECON3D_KIDNEY is routed twice). */
		char *save = NULL;
		char *t = strtok_r(called, "\\", &save);
		do {
			snprintf(c.f.called_ae, sizeof(c.f.called_ae), "%s", t != NULL ? t : "");
			if (!cands_push(out, nout, &cap, &c)) {
				sqlite3_finalize(st);
				return r3d_err_set(err, R3D_ENOMEM, "queue: out of memory");
			}
		} while (t != NULL && (t = strtok_r(NULL, "\\", &save)) != NULL);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return index_sql_fail(err, idx, "reading a study's series");
	return true;
}

/* Jobs of the series in route that are queued, running or done. */
static int64_t live_jobs(struct r3d_err *err, struct index *idx, int64_t series_id, const char *route)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	if (sqlite3_prepare_v2(idx->db,
			       "SELECT count(*) FROM jobs WHERE series_id = ?1 AND import_instance_id IS NULL"
			       " AND state IN ('queued', 'running', 'done')"
			       " AND coalesce(route, 'default') = ?2", -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "reading jobs");
		return -1;
	}
	sqlite3_bind_int64(st, 1, series_id);
	sqlite3_bind_text(st, 2, route, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		index_sql_fail(err, idx, "reading jobs");
	sqlite3_finalize(st);
	return n;
}

/* Inserts a job of the series: queued, or (state "skipped") finished at
 * once with reason. Returns its id, or 0 on error. */
static int64_t insert_job(struct r3d_err *err, struct index *idx, int64_t series_id, double now,
			  const char *state, const char *reason, const char *route, const char *selection)
{
	sqlite3_stmt *st = NULL;
	int64_t id = 0;

	if (sqlite3_prepare_v2(idx->db,
			       "INSERT INTO jobs(series_id, state, reason, instances, created_at, updated_at,"
			       " finished_at, route, selection)"
			       " SELECT ?1, ?2, ?3, count(*), ?4, ?4, CASE WHEN ?2 = 'queued' THEN NULL"
			       " ELSE ?4 END, ?5, ?6 FROM instances WHERE series_id = ?1",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "queueing a job");
		return 0;
	}
	sqlite3_bind_int64(st, 1, series_id);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	if (reason != NULL)
		sqlite3_bind_text(st, 3, reason, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(st, 4, now);
	sqlite3_bind_text(st, 5, route, -1, SQLITE_STATIC);
	if (selection != NULL)
		sqlite3_bind_text(st, 6, selection, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		id = sqlite3_last_insert_rowid(idx->db);
	else
		index_sql_fail(err, idx, "queueing a job");
	sqlite3_finalize(st);
	return id;
}

/* Supersedes the queued and done jobs of route in the study's other series:
 * a better series was chosen. Returns how many, -1 on error. */
static int supersede_others(struct r3d_err *err, struct index *idx, int64_t study_id, int64_t keep,
			    const char *route, const char *uid, double now)
{
	sqlite3_stmt *st = NULL;
	char reason[160];
	int n = -1;

	snprintf(reason, sizeof(reason), "superseded by series %s, a better series for route %s", uid,
		 route);
	if (sqlite3_prepare_v2(idx->db,
			       "UPDATE jobs SET state = 'superseded', reason = ?4, updated_at = ?5"
			       " WHERE import_instance_id IS NULL AND series_id != ?2"
			       " AND series_id IN (SELECT id FROM series WHERE study_id = ?1)"
			       " AND state IN ('queued', 'done') AND coalesce(route, 'default') = ?3",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "superseding jobs");
		return -1;
	}
	sqlite3_bind_int64(st, 1, study_id);
	sqlite3_bind_int64(st, 2, keep);
	sqlite3_bind_text(st, 3, route, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, reason, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(st, 5, now);
	if (sqlite3_step(st) == SQLITE_DONE)
		n = sqlite3_changes(idx->db);
	else
		index_sql_fail(err, idx, "superseding jobs");
	sqlite3_finalize(st);
	return n;
}

static bool set_series_status(struct r3d_err *err, struct index *idx, int64_t series_id,
			      const char *status, const char *reason, const char *route)
{
	sqlite3_stmt *st = NULL;
	bool ok;

	if (sqlite3_prepare_v2(idx->db,
			       "UPDATE series SET pending = 0, status = ?2, reason = ?3, route = ?4 WHERE id = ?1",
			       -1, &st, NULL) != SQLITE_OK)
		return index_sql_fail(err, idx, "updating series");
	sqlite3_bind_int64(st, 1, series_id);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	if (reason != NULL)
		sqlite3_bind_text(st, 3, reason, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 4, route, -1, SQLITE_STATIC);
	ok = sqlite3_step(st) == SQLITE_DONE;
	sqlite3_finalize(st);
	return ok || index_sql_fail(err, idx, "updating series");
}

/* The embedded defaults, for callers that give no config (unit tests). */
static struct config default_cfg;
static pthread_once_t default_cfg_once = PTHREAD_ONCE_INIT;

static void default_cfg_init(void)
{
	config_defaults(&default_cfg);
}

static const struct config *rules_cfg(const struct queue_rules *rules)
{
	if (rules->cfg != NULL)
		return rules->cfg;
	pthread_once(&default_cfg_once, default_cfg_init);
	return &default_cfg;
}

/* Series selection for one stable study (issue 12): each route picks its
 * series; a chosen series gets a job unless it has one in its route already
 * and nothing new arrived; the route's jobs on other series are superseded;
 * a study where nothing qualifies gets one skipped job with every reason. */
static bool select_study(struct r3d_err *err, struct index *idx, int64_t study_id, double now,
			 const char *override, const struct queue_rules *rules, struct queue_pass *pass,
			 int *jobs_in_study)
{
	struct cand *c = NULL;
	struct route_series *f = NULL;
	struct route_choice *ch = NULL;
	char *selection = NULL;
	size_t n = 0;
	bool ok = false, any_pending = false, any_routed = false, any_chosen = false;

	if (!study_cands(err, idx, study_id, rules, &c, &n))
		goto out;
	if (n == 0) {
		ok = true;
		goto out;
	}
	f = calloc(n, sizeof(*f));
	ch = calloc(n, sizeof(*ch));
	if (f == NULL || ch == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "queue: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		f[i] = c[i].f;
		any_pending |= c[i].pending;
	}
	if (override != NULL && config_route_find(rules_cfg(rules), override) == NULL) {
		log_warn("queue", "study re-run with route %s, which is no longer configured: its series "
			 "are routed by the rules", override);
		override = NULL;
	}
	route_select(rules_cfg(rules), f, n, override, ch);
	selection = route_selection_json(f, ch, n);
	for (size_t i = 0; i < n; i++) {
		const char *route = ch[i].route->name;
		any_routed |= !ch[i].ignored;
		if (!ch[i].chosen) {
			if (!c[i].pending)
				continue;
			const char *status = ch[i].ignored ? "ignored" : ch[i].excluded ? "ineligible" :
					     "not chosen";
			if (!set_series_status(err, idx, c[i].series_id, status, ch[i].reason, route))
				goto out;
			if (ch[i].excluded)
				pass->series_ineligible++;
			log_info("queue", "series %s series=%s reason=\"%s\" route=%s",
				 ch[i].excluded ? "not eligible" : status, f[i].series_uid, ch[i].reason, route);
			continue;
		}
		any_chosen = true;
		int64_t live = live_jobs(err, idx, c[i].series_id, route);
		if (live < 0)
			goto out;
		if (!c[i].pending && live > 0)
			continue;   /* made already, and nothing new: a worse series changes nothing */
		/* A job not started yet would do the same work on fewer instances. */
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(idx->db,
				       "UPDATE jobs SET state = 'superseded', updated_at = ?2,"
				       " reason = 'superseded by a newer job for the same series'"
				       " WHERE series_id = ?1 AND state = 'queued' AND import_instance_id IS NULL"
				       " AND coalesce(route, 'default') = ?3", -1, &st, NULL) != SQLITE_OK) {
			index_sql_fail(err, idx, "superseding jobs");
			goto out;
		}
		sqlite3_bind_int64(st, 1, c[i].series_id);
		sqlite3_bind_double(st, 2, now);
		sqlite3_bind_text(st, 3, route, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			index_sql_fail(err, idx, "superseding jobs");
			goto out;
		}
		int superseded = sqlite3_changes(idx->db);
		int64_t job_id = insert_job(err, idx, c[i].series_id, now, "queued", NULL, route, selection);
		if (job_id == 0 || !set_series_status(err, idx, c[i].series_id, "queued", NULL, route))
			goto out;
		int others = ch[i].route->policy == ROUTE_BEST ?
			     supersede_others(err, idx, study_id, c[i].series_id, route, f[i].series_uid, now) : 0;
		if (others < 0)
			goto out;
		pass->jobs_queued++;
		(*jobs_in_study)++;
		log_info("queue", "job queued job=%lld series=%s route=%s instances=%ld%s%s reason=\"%s\"",
			 (long long)job_id, f[i].series_uid, route, f[i].images,
			 superseded > 0 ? " (supersedes a queued job)" : "",
			 others > 0 ? " (supersedes the jobs of a worse series)" : "", ch[i].reason);
	}
	/* A re-run with another route replaces what the study's other routes made. */
	if (override != NULL && *jobs_in_study > 0) {
		sqlite3_stmt *st = NULL;
		char why[128];
		snprintf(why, sizeof(why), "superseded by a re-run of the study with route %s", override);
		if (sqlite3_prepare_v2(idx->db,
				       "UPDATE jobs SET state = 'superseded', reason = ?3, updated_at = ?4"
				       " WHERE import_instance_id IS NULL AND state IN ('queued', 'done')"
				       " AND coalesce(route, 'default') != ?2"
				       " AND series_id IN (SELECT id FROM series WHERE study_id = ?1)",
				       -1, &st, NULL) != SQLITE_OK) {
			index_sql_fail(err, idx, "superseding jobs");
			goto out;
		}
		sqlite3_bind_int64(st, 1, study_id);
		sqlite3_bind_text(st, 2, override, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, why, -1, SQLITE_TRANSIENT);
		sqlite3_bind_double(st, 4, now);
		int rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			index_sql_fail(err, idx, "superseding jobs");
			goto out;
		}
	}
	/* Nothing qualifies: one skipped job says why, series by series. */
	if (!any_chosen && any_routed && any_pending) {
		int64_t live = 0;
		for (size_t i = 0; i < n && live == 0; i++) {
			int64_t l = live_jobs(err, idx, c[i].series_id, ch[i].route->name);
			if (l < 0)
				goto out;
			live += l;
		}
		if (live == 0) {
			char reason[1024];
			size_t len = (size_t)snprintf(reason, sizeof(reason), "no series of the study qualifies:");
			for (size_t i = 0; i < n && len < sizeof(reason); i++)
				len += (size_t)snprintf(reason + len, sizeof(reason) - len, "%s %s: %s",
							i > 0 ? ";" : "", f[i].series_uid, ch[i].reason);
			int64_t job_id = insert_job(err, idx, c[0].series_id, now, "skipped", reason,
						    ch[0].route->name, selection);
			if (job_id == 0)
				goto out;
			(*jobs_in_study)++;
			log_info("queue", "job skipped job=%lld reason=\"%s\"", (long long)job_id, reason);
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (c[i].pending && !run(err, idx, "UPDATE series SET pending = 0 WHERE id = ?1",
					 c[i].series_id, now, NULL))
			goto out;
	}
	ok = true;
out:
	free(selection);
	free(ch);
	free(f);
	free(c);
	return ok;
}

/* The source series of one waiting import job: 1 found (*series_id, and
 * *stable when neither it nor its study is still receiving), 0 not there,
 * -1 error. By the series the object names when it names one; else by the
 * image it names (the series holding that SOP instance); else the CT series
 * with most images in its Frame of Reference. */
static int find_source(struct r3d_err *err, struct index *idx, const char *ref_series,
		       const char *ref_sop, const char *frame, int64_t *series_id, bool *stable)
{
	sqlite3_stmt *st = NULL;
	int found = 0;
	const char *sql, *key;

	if (ref_series[0] != '\0') {
		sql = "SELECT s.id, s.pending OR st.pending FROM series s JOIN studies st"
		      " ON st.id = s.study_id WHERE s.series_uid = ?1";
		key = ref_series;
	} else if (ref_sop[0] != '\0') {
		sql = "SELECT s.id, s.pending OR st.pending FROM series s JOIN studies st"
		      " ON st.id = s.study_id JOIN instances i ON i.series_id = s.id WHERE i.sop_uid = ?1";
		key = ref_sop;
	} else {
		sql = "SELECT s.id, s.pending OR st.pending FROM series s JOIN studies st"
		      " ON st.id = s.study_id JOIN instances i ON i.series_id = s.id"
		      " WHERE i.frame_of_reference_uid = ?1 AND i.sop_class_uid IN " CT_SOP_CLASSES
		      " GROUP BY s.id ORDER BY count(*) DESC, s.id LIMIT 1";
		key = frame;
	}
	if (sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "finding a source series");
		return -1;
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*series_id = sqlite3_column_int64(st, 0);
		*stable = sqlite3_column_int(st, 1) == 0;
		found = 1;
	} else if (rc != SQLITE_DONE) {
		found = -1;
		index_sql_fail(err, idx, "finding a source series");
	}
	sqlite3_finalize(st);
	return found;
}

static bool fail_import(struct r3d_err *err, struct index *idx, int64_t job_id, double now,
			const char *reason, struct queue_pass *pass)
{
	if (!run(err, idx,
		 "UPDATE jobs SET state = 'failed', reason = ?3, finished_at = ?2, updated_at = ?2"
		 " WHERE id = ?1",
		 job_id, now, reason))
		return false;
	pass->jobs_failed++;
	log_warn("queue", "import job failed job=%lld reason=\"%s\"", (long long)job_id, reason);
	return true;
}

/* Every waiting import job: queued on its source once that is stable and
 * usable; failed when it cannot be used or did not come in time. */
static bool resolve_waiting(struct r3d_err *err, struct index *idx, double now,
			    const struct queue_rules *rules, struct queue_pass *pass)
{
	struct waiting {
		int64_t job_id;
		double wait_until;
		char ref_series[65], ref_sop[65], frame[65];
	} *w = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st = NULL;
	bool ok = false;
	int rc;

	if (sqlite3_prepare_v2(idx->db,
			       "SELECT j.id, coalesce(j.wait_until, 0), coalesce(i.ref_series_uid, ''),"
			       " coalesce(i.frame_of_reference_uid, ''), coalesce(i.ref_sop_uid, '') FROM jobs j"
			       " JOIN instances i ON i.id = j.import_instance_id WHERE j.state = 'waiting'"
			       " ORDER BY j.id",
			       -1, &st, NULL) != SQLITE_OK)
		return index_sql_fail(err, idx, "reading waiting jobs");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			size_t c = cap ? cap * 2 : 8;
			struct waiting *p = realloc(w, c * sizeof(*p));
			if (p == NULL) {
				r3d_err_set(err, R3D_ENOMEM, "queue: out of memory");
				goto out;
			}
			w = p;
			cap = c;
		}
		w[n].job_id = sqlite3_column_int64(st, 0);
		w[n].wait_until = sqlite3_column_double(st, 1);
		snprintf(w[n].ref_series, sizeof(w[n].ref_series), "%s",
			 (const char *)sqlite3_column_text(st, 2));
		snprintf(w[n].frame, sizeof(w[n].frame), "%s", (const char *)sqlite3_column_text(st, 3));
		snprintf(w[n].ref_sop, sizeof(w[n].ref_sop), "%s", (const char *)sqlite3_column_text(st, 4));
		n++;
	}
	if (rc != SQLITE_DONE) {
		index_sql_fail(err, idx, "reading waiting jobs");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	for (size_t k = 0; k < n; k++) {
		char reason[QUEUE_REASON_MAX];
		int64_t source = 0;
		bool stable = false;

		if (w[k].ref_series[0] == '\0' && w[k].ref_sop[0] == '\0' && w[k].frame[0] == '\0') {
			if (!fail_import(err, idx, w[k].job_id, now,
					 "the segmentation names no source series (Referenced Series Sequence),"
					 " no source image and no Frame of Reference", pass))
				goto out;
			continue;
		}
		int found = find_source(err, idx, w[k].ref_series, w[k].ref_sop, w[k].frame, &source,
					&stable);
		if (found < 0)
			goto out;
		if (found == 0 || !stable) {
			if (found == 0 && now >= w[k].wait_until) {
				if (w[k].ref_series[0] != '\0')
					snprintf(reason, sizeof(reason),
						 "source series %s not received within %d s", w[k].ref_series,
						 rules->wait_for_source_s);
				else if (w[k].ref_sop[0] != '\0')
					snprintf(reason, sizeof(reason),
						 "source image %s not received within %d s", w[k].ref_sop,
						 rules->wait_for_source_s);
				else
					snprintf(reason, sizeof(reason),
						 "no CT series of Frame of Reference %s received within %d s",
						 w[k].frame, rules->wait_for_source_s);
				if (!fail_import(err, idx, w[k].job_id, now, reason, pass))
					goto out;
			}
			continue;   /* not there yet, or still arriving */
		}
		struct series_facts f;
		char why[200];
		if (!series_facts_get(err, idx, source, &f))
			goto out;
		/* The object says which slices it covers: any number will do. */
		if (!series_eligible(&f, 1, why, sizeof(why))) {
			snprintf(reason, sizeof(reason), "source series %s cannot be used: %s", f.uid, why);
			if (!fail_import(err, idx, w[k].job_id, now, reason, pass))
				goto out;
			continue;
		}
		sqlite3_stmt *u = NULL;
		if (sqlite3_prepare_v2(idx->db, "UPDATE jobs SET state = 'queued', updated_at = ?3,"
				       " source_series_id = ?2,"
				       " instances = (SELECT count(*) FROM instances WHERE series_id = ?2),"
				       /* the destinations and webhook of its CT's route */
				       " route = (SELECT j2.route FROM jobs j2 WHERE j2.series_id = ?2"
				       "  AND j2.import_instance_id IS NULL"
				       "  AND j2.state IN ('queued', 'running', 'done') ORDER BY j2.id DESC LIMIT 1)"
				       " WHERE id = ?1", -1, &u, NULL) != SQLITE_OK) {
			index_sql_fail(err, idx, "queueing an import");
			goto out;
		}
		sqlite3_bind_int64(u, 1, w[k].job_id);
		sqlite3_bind_int64(u, 2, source);
		sqlite3_bind_double(u, 3, now);
		rc = sqlite3_step(u);
		sqlite3_finalize(u);
		if (rc != SQLITE_DONE) {
			index_sql_fail(err, idx, "queueing an import");
			goto out;
		}
		/* The study has something to make after all: its "nothing
		 * qualifies" job is replaced by the import. */
		if (!run(err, idx,
			 "UPDATE jobs SET state = 'superseded', updated_at = ?2,"
			 " reason = 'superseded by the import of a segmentation of the study'"
			 " WHERE state = 'skipped' AND import_instance_id IS NULL"
			 " AND reason LIKE 'no series of the study qualifies:%'"
			 " AND series_id IN (SELECT id FROM series WHERE study_id ="
			 "  (SELECT study_id FROM series WHERE id = ?1))",
			 source, now, NULL))
			goto out;
		pass->jobs_queued++;
		log_info("queue", "import job queued job=%lld source=%s", (long long)w[k].job_id, f.uid);
	}
	ok = true;
out:
	sqlite3_finalize(st);
	free(w);
	return ok;
}

static bool scan_locked(struct r3d_err *err, struct index *idx, double now,
			const struct queue_rules *rules, struct queue_pass *pass)
{
	struct id_list studies = {0};
	sqlite3_stmt *st = NULL;
	bool ok = false;

	if (sqlite3_prepare_v2(idx->db,
			       /* last_received may lag by up to INDEX_TOUCH_S; the
				* instances' own times are exact. */
			       "SELECT st.id FROM studies st WHERE st.pending = 1 AND st.last_received <= ?1"
			       " AND NOT EXISTS (SELECT 1 FROM series s JOIN instances i"
			       "  ON i.series_id = s.id WHERE s.study_id = st.id AND i.received_at > ?1)",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "scanning studies");
		goto out;
	}
	sqlite3_bind_double(st, 1, now - (double)rules->stable_seconds);
	if (!collect_ids(err, idx, st, &studies))
		goto out;
	sqlite3_finalize(st);
	st = NULL;

	for (size_t i = 0; i < studies.n; i++) {
		struct id_list series = {0};
		char study_uid[65] = "";
		int jobs = 0;
		bool sok;

		char override[CONFIG_NAME_MAX + 1] = "";
		if (sqlite3_prepare_v2(idx->db,
				       "SELECT s.id, st.study_uid, coalesce(st.route_override, '') FROM series s"
				       " JOIN studies st ON st.id = s.study_id WHERE s.study_id = ?1"
				       " AND s.pending = 1",
				       -1, &st, NULL) != SQLITE_OK) {
			index_sql_fail(err, idx, "scanning series");
			goto out;
		}
		sqlite3_bind_int64(st, 1, studies.ids[i]);
		int rc;
		sok = true;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			snprintf(study_uid, sizeof(study_uid), "%s",
				 (const char *)sqlite3_column_text(st, 1));
			snprintf(override, sizeof(override), "%s", (const char *)sqlite3_column_text(st, 2));
			if (!ids_push(&series, sqlite3_column_int64(st, 0))) {
				sok = r3d_err_set(err, R3D_ENOMEM, "queue: out of memory");
				break;
			}
		}
		if (sok && rc != SQLITE_DONE)
			sok = index_sql_fail(err, idx, "scanning series");
		sqlite3_finalize(st);
		st = NULL;
		for (size_t j = 0; sok && j < series.n; j++)
			sok = queue_segmentations(err, idx, series.ids[j], now, rules, pass, &jobs) >= 0;
		free(series.ids);
		if (sok && series.n > 0)
			sok = select_study(err, idx, studies.ids[i], now,
					   override[0] != '\0' ? override : NULL, rules, pass, &jobs);
		if (!sok)
			goto out;
		if (!run(err, idx, "UPDATE studies SET pending = 0, stable_at = ?2 WHERE id = ?1",
			 studies.ids[i], now, NULL))
			goto out;
		pass->studies_stable++;
		if (study_uid[0] != '\0')
			log_info("queue", "study stable study=%s series=%zu jobs=%d", study_uid, series.n,
				 jobs);
	}
	ok = resolve_waiting(err, idx, now, rules, pass);
out:
	sqlite3_finalize(st);
	free(studies.ids);
	return ok;
}

bool queue_scan_stable(struct r3d_err *err, struct index *idx, double now,
		       const struct queue_rules *rules, struct queue_pass *pass)
{
	bool ok;

	memset(pass, 0, sizeof(*pass));
	pthread_mutex_lock(&idx->lock);
	/* Inside one write transaction, an instance stored meanwhile either
	 * lands before (and the study is not stable yet) or after (and sets
	 * pending again): none is lost. */
	ok = index_exec(err, idx, "BEGIN IMMEDIATE");
	if (ok) {
		ok = scan_locked(err, idx, now, rules, pass);
		if (ok)
			ok = index_exec(err, idx, "COMMIT");
		if (!ok) {
			index_exec(NULL, idx, "ROLLBACK");
			memset(pass, 0, sizeof(*pass));
		}
	}
	pthread_mutex_unlock(&idx->lock);
	return ok;
}

/* ------------------------------------------------------------------ */
/* Claiming and finishing jobs (worker threads)                        */
/* ------------------------------------------------------------------ */

static int claim_locked(struct r3d_err *err, struct index *idx, double now, struct index_job *job)
{
	sqlite3_stmt *st = NULL;
	int rc, found = 0;
	int64_t series_id = 0, import_id = 0;

	if (sqlite3_prepare_v2(idx->db,
			       "UPDATE jobs SET state = 'running', attempts = attempts + 1,"
			       " started_at = ?1, updated_at = ?1"
			       " WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1)"
			       " RETURNING id, attempts, coalesce(source_series_id, series_id),"
			       " coalesce(import_instance_id, 0), coalesce(route, 'default')",
			       -1, &st, NULL) != SQLITE_OK)
		return index_sql_fail(err, idx, "claiming a job") ? 0 : -1;
	sqlite3_bind_double(st, 1, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		job->id = sqlite3_column_int64(st, 0);
		job->attempts = sqlite3_column_int(st, 1);
		series_id = sqlite3_column_int64(st, 2);
		import_id = sqlite3_column_int64(st, 3);
		snprintf(job->route, sizeof(job->route), "%s", (const char *)sqlite3_column_text(st, 4));
		found = 1;
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		index_sql_fail(err, idx, "claiming a job");
		return -1;
	}
	if (!found)
		return 0;
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT s.series_uid, st.study_uid, (SELECT count(*) FROM instances i"
			       "  WHERE i.series_id = s.id), (SELECT path FROM instances i"
			       "  WHERE i.series_id = s.id AND (?2 = 0 OR i.sop_class_uid NOT IN "
			       SEG_SOP_CLASSES ") LIMIT 1)"
			       " FROM series s JOIN studies st ON st.id = s.study_id WHERE s.id = ?1",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "reading a job's series");
		return -1;
	}
	sqlite3_bind_int64(st, 1, series_id);
	sqlite3_bind_int64(st, 2, import_id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		index_sql_fail(err, idx, "reading a job's series");
		return -1;
	}
	snprintf(job->series_uid, sizeof(job->series_uid), "%s", (const char *)sqlite3_column_text(st, 0));
	snprintf(job->study_uid, sizeof(job->study_uid), "%s", (const char *)sqlite3_column_text(st, 1));
	job->instances = sqlite3_column_int64(st, 2);
	const char *path = (const char *)sqlite3_column_text(st, 3);
	snprintf(job->series_dir, sizeof(job->series_dir), "%s", path != NULL ? path : "");
	char *slash = strrchr(job->series_dir, '/');
	if (slash != NULL)
		*slash = '\0';
	sqlite3_finalize(st);
	if (import_id == 0)
		return 1;
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT i.path, s.series_uid, coalesce(i.sop_class_uid, '') FROM instances i"
			       " JOIN series s ON s.id = i.series_id WHERE i.id = ?1",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "reading a job's segmentation");
		return -1;
	}
	sqlite3_bind_int64(st, 1, import_id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		index_sql_fail(err, idx, "reading a job's segmentation");
		return -1;
	}
	snprintf(job->import_path, sizeof(job->import_path), "%s", (const char *)sqlite3_column_text(st, 0));
	snprintf(job->import_series_uid, sizeof(job->import_series_uid), "%s",
		 (const char *)sqlite3_column_text(st, 1));
	snprintf(job->import_sop_class_uid, sizeof(job->import_sop_class_uid), "%s",
		 (const char *)sqlite3_column_text(st, 2));
	sqlite3_finalize(st);
	return 1;
}

int index_job_claim(struct r3d_err *err, struct index *idx, double now, struct index_job *job)
{
	int rc;

	memset(job, 0, sizeof(*job));
	pthread_mutex_lock(&idx->lock);
	if (!index_exec(err, idx, "BEGIN IMMEDIATE")) {
		pthread_mutex_unlock(&idx->lock);
		return -1;
	}
	rc = claim_locked(err, idx, now, job);
	if (rc >= 0 && !index_exec(err, idx, "COMMIT"))
		rc = -1;
	if (rc < 0)
		index_exec(NULL, idx, "ROLLBACK");
	pthread_mutex_unlock(&idx->lock);
	return rc;
}

bool index_job_finish(struct r3d_err *err, struct index *idx, int64_t job_id, enum job_state state,
		      const char *reason, const char *results_dir, const char *result_json, double now)
{
	sqlite3_stmt *st = NULL;
	bool ok;

	assert(state == JOB_DONE || state == JOB_FAILED || state == JOB_SKIPPED ||
	       state == JOB_CANCELLED);
	pthread_mutex_lock(&idx->lock);
	ok = sqlite3_prepare_v2(idx->db,
				"UPDATE jobs SET state = ?2, reason = ?3, results_dir = ?4, result = ?5,"
				" finished_at = ?6, updated_at = ?6 WHERE id = ?1 AND state = 'running'",
				-1, &st, NULL) == SQLITE_OK;
	if (ok) {
		sqlite3_bind_int64(st, 1, job_id);
		sqlite3_bind_text(st, 2, job_state_name(state), -1, SQLITE_STATIC);
		if (reason != NULL)
			sqlite3_bind_text(st, 3, reason, -1, SQLITE_TRANSIENT);
		if (results_dir != NULL)
			sqlite3_bind_text(st, 4, results_dir, -1, SQLITE_TRANSIENT);
		if (result_json != NULL)
			sqlite3_bind_text(st, 5, result_json, -1, SQLITE_TRANSIENT);
		sqlite3_bind_double(st, 6, now);
		ok = sqlite3_step(st) == SQLITE_DONE;
	}
	if (!ok)
		index_sql_fail(err, idx, "recording a job's outcome");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return ok;
}

int index_jobs_recent(struct r3d_err *err, struct index *idx, struct index_job_row *rows, int max)
{
	sqlite3_stmt *st = NULL;
	int n = 0, rc;

	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db,
			       "SELECT j.id, j.state, CASE WHEN j.import_instance_id IS NULL THEN 'series'"
			       " ELSE 'import' END, s.series_uid,"
			       " coalesce((SELECT series_uid FROM series WHERE id = j.source_series_id), ''),"
			       " coalesce(j.reason, ''), j.updated_at, coalesce(j.route, 'default'),"
			       " coalesce(j.selection, '')"
			       " FROM jobs j JOIN series s ON s.id = j.series_id"
			       " ORDER BY j.updated_at DESC, j.id DESC LIMIT ?1",
			       -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "listing jobs");
		pthread_mutex_unlock(&idx->lock);
		return -1;
	}
	sqlite3_bind_int(st, 1, max);
	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct index_job_row *r = &rows[n++];
		r->id = sqlite3_column_int64(st, 0);
		snprintf(r->state, sizeof(r->state), "%s", (const char *)sqlite3_column_text(st, 1));
		snprintf(r->kind, sizeof(r->kind), "%s", (const char *)sqlite3_column_text(st, 2));
		snprintf(r->series_uid, sizeof(r->series_uid), "%s", (const char *)sqlite3_column_text(st, 3));
		snprintf(r->source_series_uid, sizeof(r->source_series_uid), "%s",
			 (const char *)sqlite3_column_text(st, 4));
		snprintf(r->reason, sizeof(r->reason), "%s", (const char *)sqlite3_column_text(st, 5));
		r->updated_at = sqlite3_column_double(st, 6);
		snprintf(r->route, sizeof(r->route), "%s", (const char *)sqlite3_column_text(st, 7));
		const char *sel = (const char *)sqlite3_column_text(st, 8);
		if (strlen(sel) < sizeof(r->selection))
			memcpy(r->selection, sel, strlen(sel) + 1);
		else
			r->selection[0] = '\0';
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return n;
}

char *index_job_selection(struct r3d_err *err, struct index *idx, int64_t job_id)
{
	sqlite3_stmt *st = NULL;
	char *out = NULL;

	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db, "SELECT selection FROM jobs WHERE id = ?1", -1, &st, NULL) !=
	    SQLITE_OK) {
		index_sql_fail(err, idx, "reading a job");
	} else {
		sqlite3_bind_int64(st, 1, job_id);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL) {
			out = strdup((const char *)sqlite3_column_text(st, 0));
			if (out == NULL)
				r3d_err_set(err, R3D_ENOMEM, "out of memory");
		}
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&idx->lock);
	return out;
}

bool queue_explain(struct r3d_err *err, struct index *idx, const struct queue_rules *rules,
		   queue_explain_fn fn, void *ctx)
{
	struct id_list studies = {0};
	sqlite3_stmt *st = NULL;
	bool ok = false;

	pthread_mutex_lock(&idx->lock);
	if (sqlite3_prepare_v2(idx->db, "SELECT id FROM studies ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
		index_sql_fail(err, idx, "listing studies");
		goto out;
	}
	if (!collect_ids(err, idx, st, &studies))
		goto out;
	for (size_t i = 0; i < studies.n; i++) {
		struct cand *c = NULL;
		size_t n = 0;
		char uid[BRIDGE_UID_MAX + 1] = "";
		sqlite3_stmt *u = NULL;
		if (sqlite3_prepare_v2(idx->db, "SELECT study_uid FROM studies WHERE id = ?1", -1, &u,
				       NULL) == SQLITE_OK) {
			sqlite3_bind_int64(u, 1, studies.ids[i]);
			if (sqlite3_step(u) == SQLITE_ROW)
				col_text(u, 0, uid, sizeof(uid));
		}
		sqlite3_finalize(u);
		if (!study_cands(err, idx, studies.ids[i], rules, &c, &n))
			goto out;
		struct route_series *f = calloc(n + 1, sizeof(*f));
		struct route_choice *ch = calloc(n + 1, sizeof(*ch));
		if (f == NULL || ch == NULL) {
			free(f);
			free(ch);
			free(c);
			r3d_err_set(err, R3D_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t k = 0; k < n; k++)
			f[k] = c[k].f;
		route_select(rules_cfg(rules), f, n, NULL, ch);
		fn(ctx, uid, f, ch, n);
		free(f);
		free(ch);
		free(c);
	}
	ok = true;
out:
	sqlite3_finalize(st);
	free(studies.ids);
	pthread_mutex_unlock(&idx->lock);
	return ok;
}
