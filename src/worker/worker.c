/*
 * worker.c: the worker pool (see r3d/worker.h). Each worker thread loops:
 * claim a job -> pipeline_run_dir (each structure's STL written and queued
 * as soon as it is meshed) -> the other DICOM objects, each queued as it is
 * written (the preview thread of export.c queues its own) ->
 * pipeline_write_outputs -> record the outcome. Nothing here holds patient
 * data; logs name job ids and UIDs.
 */
#include "r3d/worker.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "r3d/engine.h"
#include "r3d/export.h"
#include "r3d/log.h"
#include "r3d/preload.h"
#include "r3d/route.h"
#include "r3d/util.h"
#include "r3d/wake.h"

#define WORKER_IDLE_MS 250
#define WORKER_MAX 64
#define WORKER_REPORT_MAX (1 << 20)   /* report.json kept in the job row */
#define WORKER_CANCEL_REASON "cancelled by the jobs API"

struct worker_pool {
	const struct config *cfg;
	struct index *idx;
	int nthreads;                /* started; joined at stop */
	long cpus;                   /* online CPUs; set before any worker starts */
	pthread_t threads[WORKER_MAX];
	atomic_bool stop;
	struct engine_slots *engines;
	struct preloader *preload;   /* may be NULL */
	pthread_mutex_t lock;   /* guards the stats below */
	struct worker_stats stats;
};

static char *read_text(const char *path, size_t max)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = malloc(max + 1);
	if (buf == NULL) {
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, max, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* The job's route; one removed from the config since the job was made is
 * the default route. */
static const struct config_route *job_route(const struct config *cfg, const struct index_job *job)
{
	const struct config_route *r = config_route_find(cfg, job->route);
	if (r == NULL) {
		log_warn("worker", "job=%lld: route %s is no longer configured: the default route applies",
			 (long long)job->id, job->route);
		r = &cfg->route_default;
	}
	return r;
}

/* report.json gets the job's route and series selection: why this series,
 * and why not the others. */
static bool report_add_selection(struct r3d_err *err, struct worker_pool *p, const struct index_job *job,
				 const char *report_path)
{
	json_error_t je;
	json_t *root = json_load_file(report_path, 0, &je);
	char *sel = index_job_selection(err, p->idx, job->id);
	bool ok = false;

	if (root == NULL) {
		free(sel);
		return r3d_err_set(err, R3D_EIO, "report.json: %s", je.text);
	}
	json_object_set_new(root, "route", json_string(job->route));
	json_t *s = sel != NULL ? json_loads(sel, 0, NULL) : NULL;
	json_object_set_new(root, "selection", s != NULL ? s : json_null());
	ok = json_dump_file(root, report_path, JSON_INDENT(2) | JSON_REAL_PRECISION(12)) == 0;
	json_decref(root);
	free(sel);
	return ok || r3d_err_set(err, R3D_EIO, "cannot write %s", report_path);
}

/* True when the jobs API asked the job to stop (POST /api/jobs/{id}/cancel).
 * A worker looks at each stage boundary: after the engine, after the
 * pipeline, before the DICOM objects are written and before each is
 * queued. Cancelled while they are written, the rows not yet sent are
 * dropped: what a destination already has stays there. */
static bool cancel_requested(struct worker_pool *p, const struct index_job *job)
{
	struct r3d_err err;
	int rc = index_job_cancel_requested(&err, p->idx, job->id);

	if (rc < 0)
		log_warn("worker", "job=%lld: cannot read its cancel request: %s", (long long)job->id,
			 err.msg);
	return rc == 1;
}

static void finish_cancelled(struct worker_pool *p, const struct index_job *job, const char *where,
			     double t0)
{
	struct r3d_err err;

	if (!index_job_finish(&err, p->idx, job->id, JOB_CANCELLED, WORKER_CANCEL_REASON, NULL, NULL,
			      clock_wall_s()))
		log_error("worker", "job=%lld: cannot record the outcome: %s", (long long)job->id, err.msg);
	log_info("worker", "job finished job=%lld series=%s outcome=cancelled seconds=%.2f "
		 "reason=\"" WORKER_CANCEL_REASON " (%s); nothing more sent\"", (long long)job->id,
		 job->series_uid, clock_mono_s() - t0, where);
}

/* What export_and_queue() hands to the export, for object_queue(). */
struct queue_ctx {
	struct worker_pool *p;
	const struct index_job *job;
	const struct config_route *route;
	atomic_bool cancelled;      /* seen once: nothing more is queued */
	atomic_int queued;          /* objects queued (for every destination of the route) */
};

/* One object is written: its outbox rows, one per destination of the
 * route, and the sender woken, while the others are still being made.
 * Called from the export's threads (two at once): the index and the wake
 * take their own locks. A cancelled job queues nothing more. */
static bool object_queue(struct r3d_err *err, void *arg, const struct export_object *o)
{
	struct queue_ctx *q = arg;
	const struct config *cfg = q->p->cfg;

	if (atomic_load(&q->cancelled))
		return true;
	if (cancel_requested(q->p, q->job)) {
		atomic_store(&q->cancelled, true);
		return true;
	}
	for (int d = 0; d < cfg->ndestinations; d++) {
		if (q->route->destinations_set && (q->route->destinations & (1u << d)) == 0)
			continue;
		if (!index_outbox_add(err, q->p->idx, q->job->id, cfg->destinations[d].name, o->path,
				      o->sop_instance_uid, export_kind_name(o->kind), clock_wall_s()))
			return false;
	}
	atomic_fetch_add(&q->queued, 1);
	wake_post(WAKE_OUTBOX);
	return true;
}

/* report.json gets what the export did, kind by kind: objects written,
 * wall time, when the last one was written, and why a kind failed. */
static bool report_add_exports(struct r3d_err *err, const struct export_result *ex,
			       const char *report_path)
{
	json_error_t je;
	json_t *root = json_load_file(report_path, 0, &je);
	json_t *all = json_object();
	bool ok;

	if (root == NULL || all == NULL) {
		json_decref(root);
		json_decref(all);
		return r3d_err_set(err, R3D_EIO, "report.json: %s", root == NULL ? je.text : "no memory");
	}
	for (int k = 0; k < EXPORT_NKINDS; k++) {
		int n = 0;
		for (int i = 0; i < ex->n; i++)
			n += ex->obj[i].kind == (enum export_kind)k;
		json_t *o = json_pack("{s:i, s:f}", "objects", n, "ms", ex->ms[k]);
		if (o == NULL)
			continue;
		if (ex->done_at[k] > 0)
			json_object_set_new(o, "last_written_at", json_real(ex->done_at[k]));
		if (ex->failed[k][0] != '\0')
			json_object_set_new(o, "error", json_string(ex->failed[k]));
		json_object_set_new(all, export_kind_name((enum export_kind)k), o);
	}
	json_object_set_new(root, "exports", all);
	ok = json_dump_file(root, report_path, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) == 0;
	json_decref(root);
	return ok || r3d_err_set(err, R3D_EIO, "cannot write %s", report_path);
}

/* A job's export, from before the pipeline runs (each structure's STL is
 * written and queued as soon as it is meshed) to its last object. */
struct job_export {
	struct queue_ctx q;
	struct export_options eo;
	struct series_ref *refs;
	struct export_session *x;   /* NULL: no session (export_job() at the end) */
};

static void job_export_begin(struct worker_pool *p, const struct index_job *job,
			     const char *results, struct job_export *je)
{
	struct r3d_err err;
	int nrefs;

	memset(je, 0, sizeof(*je));
	je->q = (struct queue_ctx){.p = p, .job = job, .route = job_route(p->cfg, job)};
	je->eo = (struct export_options){
		.surface_segmentation = p->cfg->export_surface_segmentation,
		.stl = p->cfg->export_stl,
		/* An imported object is not sent back as a copy of itself unless asked. */
		.segmentation = p->cfg->export_segmentation &&
				(job->import_path[0] == '\0' || p->cfg->import_send_segmentation),
		.preview = p->cfg->export_preview,
		.preview_size = p->cfg->export_preview_size,
		.written = object_queue,
		.written_ctx = &je->q,
	};
	/* Without a session the objects are all written at the end, and a
	 * failure here is met again there. */
	nrefs = index_series_refs(&err, p->idx, job->series_uid, &je->refs);
	if (nrefs > 0 && !export_begin(&err, job->id, je->refs, nrefs, results, &je->eo, &je->x))
		je->x = NULL;
}

static void job_export_end(struct job_export *je)
{
	export_end(je->x);
	free(je->refs);
}

/* pipeline_options.structure_meshed: that structure's STL, now. */
static bool structure_export(struct r3d_err *err, void *ctx, const struct pipeline_result *res,
			     size_t i)
{
	struct job_export *je = ctx;

	return je->x == NULL || export_structure(err, je->x, res, i);
}

/* The DICOM objects of a done job, each queued for every destination of
 * its route the moment it is written (the sender starts on the first while
 * the others are made). A kind that fails leaves the others alone: its
 * reason goes into *warnings (the job ends done, saying so). Cancelled
 * while writing: nothing more is queued (*cancelled set; the caller drops
 * the rows not yet sent). */
static bool export_and_queue(struct r3d_err *err, struct worker_pool *p, const struct index_job *job,
			     struct job_export *je, const struct pipeline_result *res,
			     const char *results, struct export_result *ex, char *warnings,
			     size_t warnings_size, bool *cancelled)
{
	struct series_ref *refs = NULL;
	int nrefs;
	bool ok = false;

	warnings[0] = '\0';
	*cancelled = false;
	if (je->x != NULL) {
		if (!export_finish(err, je->x, res, ex))
			goto out;
	} else {
		nrefs = index_series_refs(err, p->idx, job->series_uid, &refs);
		if (nrefs < 0 || !export_job(err, res, job->id, refs, nrefs, results, &je->eo, ex))
			goto out;
	}
	if (atomic_load(&je->q.cancelled) || cancel_requested(p, job)) {
		*cancelled = true;
		ok = true;
		goto out;
	}
	int ndest = 0;
	for (int d = 0; d < p->cfg->ndestinations; d++)
		ndest += !je->q.route->destinations_set || (je->q.route->destinations & (1u << d)) != 0;
	if (ex->n > 0)
		log_info("worker", "job=%lld: %d DICOM objects written, queued for %d destinations "
			 "(ms: surface_segmentation %.0f stl %.0f segmentation %.0f preview %.0f)",
			 (long long)job->id, ex->n, ndest,
			 ex->ms[EXPORT_SURFACE_SEGMENTATION], ex->ms[EXPORT_STL],
			 ex->ms[EXPORT_SEGMENTATION], ex->ms[EXPORT_PREVIEW]);
	if (p->cfg->export_segmentation && res->seg.nslices == 0)
		log_info("worker", "job=%lld: no segmentation: the masks were not kept", (long long)job->id);
	for (int k = 0; k < EXPORT_NKINDS; k++) {
		size_t n = strlen(warnings);
		if (ex->failed[k][0] == '\0' || n + 8 >= warnings_size)
			continue;
		snprintf(warnings + n, warnings_size - n, "%s%s failed: %s", n > 0 ? "; " : "",
			 export_kind_name((enum export_kind)k), ex->failed[k]);
	}
	ok = true;
out:
	free(refs);
	return ok;
}

/* A job that does not end done sends nothing more: its rows not yet sent
 * are dropped (an STL queued while the job still ran may already be in the
 * PACS: that stays). */
static void outbox_drop_unsent(struct worker_pool *p, const struct index_job *job, const char *why)
{
	struct r3d_err err;
	int n = index_outbox_drop_job(&err, p->idx, job->id, why, clock_wall_s());

	if (n < 0)
		log_error("worker", "job=%lld: cannot drop its outbox rows: %s", (long long)job->id,
			  err.msg);
	else if (n > 0)
		log_info("worker", "job=%lld: %d outbox rows not sent dropped (%s)", (long long)job->id,
			 n, why);
}

static void run_job(struct worker_pool *p, const struct index_job *job, int threads)
{
	static const char module[] = "worker";
	struct pipeline_options o;
	struct pipeline_result res;
	struct r3d_err err;
	char results[PATH_MAX];
	char report_path[PATH_MAX + 16];
	char *report = NULL;
	char warnings[R3D_ERR_MSG_MAX] = "";
	enum job_state outcome;
	const char *reason = NULL;
	double t0 = clock_mono_s();

	r3d_err_clear(&err);
	int n = snprintf(results, sizeof(results), "%s/%lld", p->cfg->results_dir, (long long)job->id);
	if (n < 0 || (size_t)n >= sizeof(results)) {
		index_job_finish(&err, p->idx, job->id, JOB_FAILED, "[storage] results path too long",
				 NULL, NULL, clock_wall_s());
		return;
	}
	bool import = job->import_path[0] != '\0';
	if (import)
		log_info(module, "job started job=%lld series=%s instances=%lld attempt=%d import=%s",
			 (long long)job->id, job->series_uid, (long long)job->instances, job->attempts,
			 job->import_series_uid);
	else
		log_info(module, "job started job=%lld series=%s instances=%lld attempt=%d",
			 (long long)job->id, job->series_uid, (long long)job->instances, job->attempts);
	pipeline_options_default(&o);
	o.catalog = p->cfg->structures;
	o.series_uid = job->series_uid;
	o.threads = threads;
	o.max_error_mm = p->cfg->mesh_max_error_mm;
	o.error_target_mm = p->cfg->mesh_error_target_mm;
	const struct config_route *route = job_route(p->cfg, job);
	for (size_t i = 0; !import && route->structures_set && i < o.catalog.n; i++)
		o.catalog.def[i].enabled = route_makes(route, &p->cfg->structures.def[i]);
	/* Print readiness (issue 14): the [print] section, the route's distances. */
	o.print.min_wall_mm = p->cfg->print_min_wall_mm;
	o.print.min_shell_ml = p->cfg->print_min_shell_ml;
	o.print.drop_loose_shells = p->cfg->print_drop_loose_shells;
	snprintf(o.print.distances, sizeof(o.print.distances), "%s",
		 route->distances_set ? route->distances : p->cfg->print_distances);
	/* only the Segmentation needs them */
	o.keep_masks = p->cfg->export_segmentation && (!import || p->cfg->import_send_segmentation);
	if (import) {
		/* The object's segments, not the presets: those are the CT job's. */
		o.segmentation = job->import_path;
		for (size_t i = 0; i < o.catalog.n; i++)
			o.catalog.def[i].enabled = false;
	}
	/* Every CT job goes to the engine first, when one is set. */
	const char *engine_name = route->engine_set ? route->engine : p->cfg->import_engine;
	bool engine_instead = route->engine_set ? route->engine_instead : p->cfg->import_engine_instead;
	const struct config_engine *engine =
		import || engine_name[0] == '\0' ? NULL : config_engine_find(p->cfg, engine_name);
	struct engine_output eo;
	if (engine != NULL) {
		char work[PATH_MAX + 16], nifti[PATH_MAX + 32];
		const char *input = job->series_dir;
		snprintf(work, sizeof(work), "%s/engine", results);
		bool ready = true;
		if (engine->input_nifti) {
			/* The volume as the pipeline assembles it (resampled where the
			 * slices are tilted or uneven), for engines that read NIfTI. */
			struct pipeline_options vo = o;
			struct pipeline_result vres;
			snprintf(nifti, sizeof(nifti), "%s/input", work);
			ready = mkdir_p(&err, nifti);
			snprintf(nifti, sizeof(nifti), "%s/input/ct.nii", work);
			vo.volume_only = true;
			vo.save_volume_nifti = nifti;
			vo.keep_masks = false;
			vo.segmentation = vo.labels = NULL;
			if (ready && pipeline_run_dir(&err, job->series_dir, &vo, &vres))
				pipeline_result_free(&vres);
			else
				ready = false;
			input = nifti;
		}
		if (!ready)
			r3d_err_prefix(&err, "engine %s: its NIfTI input", engine->name);
		bool ran = ready && engine_run(&err, p->engines, engine, input, work, &p->stop, &eo);
		if (cancel_requested(p, job)) {
			finish_cancelled(p, job, "after the engine", t0);
			return;
		}
		if (!ran) {
			/* A series the volume stage cannot use is skipped, as without an engine. */
			enum job_state st = !ready && err.code == R3D_EINVAL ? JOB_SKIPPED : JOB_FAILED;
			char why[R3D_ERR_MSG_MAX];
			snprintf(why, sizeof(why), "%s", err.msg);
			if (!index_job_finish(&err, p->idx, job->id, st, why, NULL, NULL, clock_wall_s()))
				log_error(module, "job=%lld: cannot record the outcome: %s",
					  (long long)job->id, err.msg);
			log_warn(module, "job finished job=%lld series=%s outcome=%s seconds=%.2f "
				 "reason=\"%s\"", (long long)job->id, job->series_uid, job_state_name(st),
				 clock_mono_s() - t0, why);
			return;
		}
		log_info(module, "job=%lld: engine %s wrote a %s in %.1f s", (long long)job->id,
			 engine->name, eo.labelmap ? "label map" : "segmentation", eo.seconds);
		if (eo.labelmap) {
			o.labels = eo.path;
			o.label_table = engine->label_table[0] != '\0' ? engine->label_table : NULL;
		} else {
			o.segmentation = eo.path;
		}
		for (size_t i = 0; engine_instead && i < o.catalog.n; i++)
			o.catalog.def[i].enabled = false;
	}
	/* The images the pre-loader decoded while the study arrived (not with
	 * an engine: it has read the files by now). */
	struct bridge_preload_set *pre = engine == NULL ? preloader_take(p->preload, job->series_uid) :
							  NULL;
	o.preload = pre;
	struct job_export je;
	job_export_begin(p, job, results, &je);
	o.structure_meshed = structure_export;
	o.print.deferred = true;   /* after the DICOM objects, before report.json */
	o.structure_meshed_ctx = &je;
	bool ran = pipeline_run_dir(&err, job->series_dir, &o, &res);
	bridge_preload_set_free(pre);   /* what the load stage did not take */
	preloader_done(p->preload, job->series_uid);
	if (ran) {
		bool cancelled = false;
		log_info(module, "job=%lld: load: %zu instances from the pre-loader, %zu read from "
			 "their files, %.0f ms (volume %.0f ms)", (long long)job->id,
			 res.instances_preloaded, res.instances_read, res.ms[PIPELINE_LOAD],
			 res.ms[PIPELINE_VOLUME]);
		struct export_result *ex = calloc(1, sizeof(*ex));   /* ~280 KB: not on the stack */
		outcome = JOB_DONE;
		snprintf(report_path, sizeof(report_path), "%s/report.json", results);
		/* The DICOM objects first (the PACS is waiting for them), then the
		 * files of the results folder and report.json. */
		if (ex == NULL) {
			r3d_err_set(&err, R3D_ENOMEM, "export: out of memory");
			outcome = JOB_FAILED;
		} else if (cancel_requested(p, job)) {
			outcome = JOB_CANCELLED;   /* after the pipeline */
		} else if (!export_and_queue(&err, p, job, &je, &res, results, ex, warnings,
					     sizeof(warnings), &cancelled)) {
			outcome = JOB_FAILED;
		} else if (cancelled) {
			outcome = JOB_CANCELLED;   /* while its objects were written */
		} else if (!pipeline_print_run(&err, &o, &res) ||
			   !pipeline_write_outputs(&err, results, &res) ||
			   !report_add_selection(&err, p, job, report_path) ||
			   !report_add_exports(&err, ex, report_path)) {
			outcome = JOB_FAILED;
		}
		free(ex);
		if (outcome == JOB_DONE) {
			report = read_text(report_path, WORKER_REPORT_MAX);
			if (warnings[0] != '\0')
				reason = warnings;   /* done, with the kinds that failed */
		} else if (outcome == JOB_FAILED) {
			reason = err.msg;
		}
		for (size_t i = 0; i < res.nstructures; i++) {
			const struct mesh_build_times *mt = &res.structures[i].mesh_times;
			if (mt->fallback[0] != '\0')
				log_warn(module, "job=%lld: decimation of %s fell back: %s",
					 (long long)job->id, res.structures[i].def.key, mt->fallback);
			if (mt->error_exceeded)
				log_warn(module, "job=%lld: decimation of %s: %.2f mm from the undecimated "
					 "surface at most, over the %.2f mm allowed", (long long)job->id,
					 res.structures[i].def.key, mt->error.max, p->cfg->mesh_max_error_mm);
		}
		pthread_mutex_lock(&p->lock);
		for (int s = 0; s < PIPELINE_NSTAGES; s++)
			p->stats.stage_seconds[s] += res.ms[s] / 1e3;
		for (size_t i = 0; i < res.nstructures; i++) {
			const struct structure_def *d = structure_catalog_get(&p->cfg->structures,
									      res.structures[i].def.key);
			if (d == NULL)
				continue;
			const struct mesh_build_times *mt = &res.structures[i].mesh_times;
			if (mt->fallback[0] != '\0')
				p->stats.decimation_fallbacks[d - p->cfg->structures.def]++;
			if (mt->error_exceeded)
				p->stats.decimation_error_exceeded[d - p->cfg->structures.def]++;
			if (res.structures[i].mesh != NULL)
				p->stats.structures_made[d - p->cfg->structures.def]++;
			else
				p->stats.structures_skipped[d - p->cfg->structures.def]++;
		}
		pthread_mutex_unlock(&p->lock);
		pipeline_result_free(&res);
	} else {
		/* Input the pipeline cannot use is skipped; anything else failed. */
		outcome = err.code == R3D_EINVAL ? JOB_SKIPPED : JOB_FAILED;
		reason = err.msg;
		if (cancel_requested(p, job))
			outcome = JOB_CANCELLED;
	}
	job_export_end(&je);
	/* The buffers the mesh stage kept for reuse go back to the system. */
	bigbuf_trim();
	if (outcome != JOB_DONE)
		outbox_drop_unsent(p, job, outcome == JOB_CANCELLED ? "the job was cancelled" :
					   "the job did not finish");
	if (outcome == JOB_CANCELLED) {
		finish_cancelled(p, job, "at a stage boundary", t0);
		free(report);
		return;
	}
	if (!index_job_finish(&err, p->idx, job->id, outcome, reason,
			      outcome == JOB_DONE ? results : NULL, report, clock_wall_s()))
		log_error(module, "job=%lld: cannot record the outcome: %s", (long long)job->id, err.msg);
	if (reason == NULL)
		log_info(module, "job finished job=%lld series=%s outcome=%s seconds=%.2f",
			 (long long)job->id, job->series_uid, job_state_name(outcome),
			 clock_mono_s() - t0);
	else if (outcome == JOB_DONE)
		log_warn(module, "job finished job=%lld series=%s outcome=done seconds=%.2f "
			 "warnings=\"%s\"", (long long)job->id, job->series_uid, clock_mono_s() - t0,
			 reason);
	else
		log_warn(module, "job finished job=%lld series=%s outcome=%s seconds=%.2f reason=\"%s\"",
			 (long long)job->id, job->series_uid, job_state_name(outcome),
			 clock_mono_s() - t0, reason);
	free(report);
}

static void *worker_main(void *arg)
{
	struct worker_pool *p = arg;
	unsigned long seen = 0;
	bool last_failed = false;

	while (!atomic_load(&p->stop)) {
		struct index_job job;
		struct r3d_err err;
		int rc = index_job_claim(&err, p->idx, clock_wall_s(), &job);
		if (rc < 0) {
			if (!last_failed)
				log_error("worker", "cannot claim a job: %s", err.msg);
			last_failed = true;
		}
		if (rc <= 0) {
			wake_wait(WAKE_JOBS, &seen, WORKER_IDLE_MS);
			continue;
		}
		last_failed = false;
		pthread_mutex_lock(&p->lock);
		p->stats.jobs_running++;
		/* The cores are shared by the jobs running now: a study processed
		 * alone gets all of them. */
		int threads = (int)(p->cpus / p->stats.jobs_running);
		pthread_mutex_unlock(&p->lock);
		run_job(p, &job, threads < 1 ? 1 : threads);
		wake_post(WAKE_OUTBOX);
		wake_post(WAKE_FINISHED);
		pthread_mutex_lock(&p->lock);
		p->stats.jobs_running--;
		p->stats.jobs_finished++;
		pthread_mutex_unlock(&p->lock);
	}
	return NULL;
}

bool worker_pool_start(struct r3d_err *err, const struct config *cfg, struct index *idx,
		       struct preloader *pl, struct worker_pool **out)
{
	struct worker_pool *p;

	*out = NULL;
	if (!mkdir_p(err, cfg->results_dir))
		return r3d_err_prefix(err, "[storage] results");
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "worker pool: out of memory");
	p->cfg = cfg;
	p->idx = idx;
	p->preload = pl;
	if (!engine_slots_new(err, cfg, &p->engines)) {
		free(p);
		return false;
	}
	pthread_mutex_init(&p->lock, NULL);
	p->cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (p->cpus < 1)
		p->cpus = 1;
	for (int i = 0; i < cfg->workers && i < WORKER_MAX; i++) {
		if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
			r3d_err_set(err, R3D_ENOMEM, "cannot start worker %d: %s", i, strerror(errno));
			worker_pool_stop(p);
			return false;
		}
		p->nthreads = i + 1;
	}
	log_info("worker", "%d workers started, results in %s", p->nthreads, cfg->results_dir);
	*out = p;
	return true;
}

void worker_pool_stop(struct worker_pool *p)
{
	if (p == NULL)
		return;
	atomic_store(&p->stop, true);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	engine_slots_free(p->engines);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void worker_pool_stats(struct worker_pool *p, struct worker_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->stats;
	pthread_mutex_unlock(&p->lock);
}
