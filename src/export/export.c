/*
 * export.c: a job's models as Surface Segmentation, Encapsulated STL,
 * binary Segmentation and Secondary Capture preview objects (see
 * r3d/export.h), handed to the caller one by one as each is written. Any
 * thread; export_finish() starts one preview thread of its own, which calls
 * opt->written too.
 */
#include "r3d/export.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/log.h"
#include "r3d/mesh.h"
#include "r3d/preview.h"
#include "r3d/util.h"

/* snprintf into a path buffer; false (err set) when it does not fit. */
static bool path_fmt(struct r3d_err *err, char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static bool path_fmt(struct r3d_err *err, char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		return r3d_err_set(err, R3D_EINVAL, "export: path too long");
	return true;
}

static bool derive(struct r3d_err *err, const char *root, int64_t job_id, const char *what,
		   char out[BRIDGE_UID_MAX + 1])
{
	char label[BRIDGE_UID_LABEL_MAX];

	snprintf(label, sizeof(label), "recon3d job %lld %s", (long long)job_id, what);
	return bridge_uid_derive(err, root, label, out);
}

static const char *const kind_names[EXPORT_NKINDS] = {
	"surface_segmentation", "stl", "segmentation", "preview",
};

const char *export_kind_name(enum export_kind k)
{
	if ((int)k < 0 || k >= EXPORT_NKINDS)
		return "?";
	return kind_names[k];
}

int export_kind_of_path(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base != NULL ? base + 1 : path;
	if (strcmp(base, "surface-segmentation.dcm") == 0)
		return EXPORT_SURFACE_SEGMENTATION;
	if (strcmp(base, "segmentation.dcm") == 0)
		return EXPORT_SEGMENTATION;
	if (strncmp(base, "stl-", 4) == 0)
		return EXPORT_STL;
	if (strncmp(base, "preview-", 8) == 0)
		return EXPORT_PREVIEW;
	return -1;
}

/* What the writers of one export share. */
struct export_run {
	const struct pipeline_result *res;
	int64_t job_id;
	const char *dir;                   /* results_dir/dicom */
	const struct export_options *opt;
};

/* One object is complete: count it and hand it to opt->written. False:
 * the caller stops (out->stopped is set, err says why). */
static bool object_done(struct r3d_err *err, struct export_run *run, struct export_result *out,
			enum export_kind kind)
{
	struct export_object *o = &out->obj[out->n];

	o->kind = kind;
	out->n++;
	out->done_at[kind] = clock_wall_s();
	if (run->opt->written != NULL && !run->opt->written(err, run->opt->written_ctx, o)) {
		out->stopped = true;
		return false;
	}
	return true;
}

/* Seven rendered views, one Secondary Capture series, shared out view by
 * view: the preview thread starts on them while the other objects are
 * written, and the writing thread joins in once it is done, so the two
 * cores finish together. The body surface (the catalogue's body_surface
 * entries: the skin) hides the structures inside it, so it is left out
 * when there are any. */
struct preview_task {
	struct export_run *run;
	struct bridge_export_info info;    /* series fields set; instance fields per view */
	char series_uid[BRIDGE_UID_MAX + 1];
	struct preview_mesh meshes[PIPELINE_MAX_STRUCTURES];
	size_t nmeshes;
	size_t rgb_bytes;
	atomic_int next_view;              /* the next view to take */
	atomic_bool stop;                  /* a view failed or opt->written did: take no more */
	pthread_mutex_t lock;              /* guards the fields below */
	struct export_object obj[PREVIEW_NVIEWS];
	bool written[PREVIEW_NVIEWS];
	double done_at;
	double ms;                         /* the views' render and write time, summed */
	struct r3d_err err;                /* the first failure */
	bool failed, stopped;              /* a view failed; opt->written failed */
};

/* Everything the views share; false (err set) when the previews cannot be
 * made at all. */
static bool preview_prepare(struct r3d_err *err, struct preview_task *t)
{
	const struct pipeline_result *res = t->run->res;
	const struct export_options *opt = t->run->opt;
	bool inner = false, body = false;

	for (size_t i = 0; i < res->nstructures; i++)
		inner = inner || (res->structures[i].mesh != NULL && !res->structures[i].def.body_surface);
	for (size_t i = 0; i < res->nstructures; i++) {
		const struct pipeline_structure *ps = &res->structures[i];
		if (ps->mesh == NULL || (inner && ps->def.body_surface))
			continue;
		t->meshes[t->nmeshes].mesh = ps->mesh;
		memcpy(t->meshes[t->nmeshes].rgb, ps->def.rgb, sizeof(t->meshes[0].rgb));
		body = body || ps->def.body_surface;
		t->nmeshes++;
	}
	/* A body surface drawn alone shows the face of a head CT. */
	t->info.recognizable = body ? BRIDGE_FLAG_YES : BRIDGE_FLAG_NO;
	if (!size_mul3((size_t)opt->preview_size, (size_t)opt->preview_size, 3, &t->rgb_bytes))
		return r3d_err_set(err, R3D_EINVAL, "export: preview size");
	if (!derive(err, res->series_uid, t->run->job_id, "preview series", t->series_uid))
		return false;
	t->info.series_uid = t->series_uid;
	t->info.series_number = EXPORT_SERIES_NUMBER_BASE + 90;
	t->info.series_description = "3D model: preview";
	return true;
}

/* One view, rendered into rgb and written; its object handed to
 * opt->written. */
static bool preview_one(struct r3d_err *err, struct preview_task *t, int v, uint8_t *rgb,
			bool *stopped)
{
	const struct export_run *run = t->run;
	const struct export_options *opt = run->opt;
	struct bridge_export_info info = t->info;
	struct preview_info pi;
	struct export_object o;
	const char *name = preview_view_name((enum preview_view)v);
	char what[96];

	memset(&o, 0, sizeof(o));
	o.kind = EXPORT_PREVIEW;
	if (!preview_render(err, t->meshes, t->nmeshes, (enum preview_view)v, opt->preview_size,
			    opt->preview_size, rgb, &pi))
		return false;
	snprintf(what, sizeof(what), "preview %s instance", name);
	if (!derive(err, run->res->series_uid, run->job_id, what, o.sop_instance_uid) ||
	    !path_fmt(err, o.path, sizeof(o.path), "%s/preview-%s.dcm", run->dir, name))
		return false;
	snprintf(o.description, sizeof(o.description), "3D model: preview (%s)", name);
	info.sop_instance_uid = o.sop_instance_uid;
	info.instance_number = v + 1;
	/* Patient Orientation: the letters at the right and bottom edges. */
	if (!bridge_write_preview(err, o.path, &info, rgb, (uint32_t)opt->preview_size,
				  (uint32_t)opt->preview_size, name, pi.letters[1], pi.letters[3]))
		return false;
	pthread_mutex_lock(&t->lock);
	t->obj[v] = o;
	t->written[v] = true;
	t->done_at = clock_wall_s();
	pthread_mutex_unlock(&t->lock);
	if (opt->written != NULL && !opt->written(err, opt->written_ctx, &t->obj[v])) {
		*stopped = true;
		return false;
	}
	return true;
}

/* Takes views until none is left (either thread). */
static void preview_take(struct preview_task *t)
{
	uint8_t *rgb = malloc(t->rgb_bytes);
	struct r3d_err e;
	int v;

	r3d_err_clear(&e);
	if (rgb == NULL)
		r3d_err_set(&e, R3D_ENOMEM, "export: out of memory");
	while (rgb != NULL && !atomic_load(&t->stop) &&
	       (v = atomic_fetch_add(&t->next_view, 1)) < PREVIEW_NVIEWS) {
		bool stopped = false;
		double t0 = clock_mono_s();
		bool ok = preview_one(&e, t, v, rgb, &stopped);
		pthread_mutex_lock(&t->lock);
		t->ms += (clock_mono_s() - t0) * 1e3;
		if (!ok && !t->failed && !t->stopped) {
			t->err = e;
			t->failed = !stopped;
			t->stopped = stopped;
		}
		pthread_mutex_unlock(&t->lock);
		if (!ok)
			atomic_store(&t->stop, true);
	}
	if (rgb == NULL) {
		pthread_mutex_lock(&t->lock);
		if (!t->failed && !t->stopped) {
			t->err = e;
			t->failed = true;
		}
		pthread_mutex_unlock(&t->lock);
	}
	free(rgb);
}

static void *preview_thread(void *arg)
{
	preview_take(arg);
	return NULL;
}

/* A kind failed: say why, and go on with the others (unless it was
 * opt->written that failed). */
static void kind_failed(struct export_result *out, enum export_kind kind, const struct r3d_err *e)
{
	if (out->failed[kind][0] != '\0')
		return;   /* the first reason is the one that matters */
	snprintf(out->failed[kind], sizeof(out->failed[kind]), "%s", e->msg);
	out->nfailed++;
	log_warn("export", "%s failed: %s", export_kind_name(kind), e->msg);
}

/* One Surface Segmentation with every structure. */
static bool write_surface_segmentation(struct r3d_err *err, struct export_run *run,
				       struct bridge_export_info *info,
				       const struct bridge_export_structure *st, size_t nst,
				       struct export_result *out)
{
	const struct pipeline_result *res = run->res;
	struct export_object *o = &out->obj[out->n];
	char series_uid[BRIDGE_UID_MAX + 1];

	if (!derive(err, res->series_uid, run->job_id, "surface segmentation series", series_uid) ||
	    !derive(err, res->series_uid, run->job_id, "surface segmentation instance",
		    o->sop_instance_uid))
		return false;
	snprintf(o->description, sizeof(o->description), "3D models (surface segmentation)");
	if (!path_fmt(err, o->path, sizeof(o->path), "%s/surface-segmentation.dcm", run->dir))
		return false;
	info->series_uid = series_uid;
	info->series_number = EXPORT_SERIES_NUMBER_BASE;
	info->series_description = o->description;
	info->sop_instance_uid = o->sop_instance_uid;
	return bridge_write_surface_segmentation(err, o->path, info, st, nst) &&
	       object_done(err, run, out, EXPORT_SURFACE_SEGMENTATION);
}

/* The Encapsulated STL of structure i (its own series). */
static bool write_stl(struct r3d_err *err, struct export_run *run, struct bridge_export_info *info,
		      const char *results_dir, const struct structure_def *def, const char *name,
		      size_t i, struct export_result *out)
{
	const struct pipeline_result *res = run->res;
	struct export_object *o = &out->obj[out->n];
	char series_uid[BRIDGE_UID_MAX + 1], what[128], stl[PATH_MAX];

	snprintf(what, sizeof(what), "stl %s series", def->key);
	if (!derive(err, res->series_uid, run->job_id, what, series_uid))
		return false;
	snprintf(what, sizeof(what), "stl %s instance", def->key);
	if (!derive(err, res->series_uid, run->job_id, what, o->sop_instance_uid))
		return false;
	snprintf(o->description, sizeof(o->description), "3D model: %s (STL)", def->label);
	if (!path_fmt(err, o->path, sizeof(o->path), "%s/stl-%s.dcm", run->dir, def->key) ||
	    !path_fmt(err, stl, sizeof(stl), "%s/%s.stl", results_dir, def->key))
		return false;
	info->series_uid = series_uid;
	info->series_number = EXPORT_SERIES_NUMBER_BASE + 1 + (long)i;
	info->series_description = o->description;
	info->sop_instance_uid = o->sop_instance_uid;
	info->instance_number = 1;
	info->recognizable = def->body_surface ? BRIDGE_FLAG_YES : BRIDGE_FLAG_NO;
	return bridge_write_encapsulated_stl(err, o->path, info, name, stl) &&
	       object_done(err, run, out, EXPORT_STL);
}

/* One binary Segmentation: the meshed masks on the source slices. */
static bool write_segmentation(struct r3d_err *err, struct export_run *run,
			       struct bridge_export_info *info,
			       const struct structure_def *const *def, size_t nst,
			       struct export_result *out)
{
	const struct pipeline_result *res = run->res;
	struct export_object *o = &out->obj[out->n];
	char series_uid[BRIDGE_UID_MAX + 1];

	if (!derive(err, res->series_uid, run->job_id, "segmentation series", series_uid) ||
	    !derive(err, res->series_uid, run->job_id, "segmentation instance", o->sop_instance_uid))
		return false;
	snprintf(o->description, sizeof(o->description), "3D model: segmentation");
	if (!path_fmt(err, o->path, sizeof(o->path), "%s/segmentation.dcm", run->dir))
		return false;
	info->series_uid = series_uid;
	info->series_number = EXPORT_SERIES_NUMBER_BASE + EXPORT_SEG_SERIES_OFFSET;
	info->series_description = o->description;
	info->sop_instance_uid = o->sop_instance_uid;
	info->instance_number = 1;
	info->recognizable = BRIDGE_FLAG_NO;
	for (size_t i = 0; i < nst; i++)
		if (def[i]->body_surface)
			info->recognizable = BRIDGE_FLAG_YES;
	return pipeline_write_segmentation(err, res, info, o->path) &&
	       object_done(err, run, out, EXPORT_SEGMENTATION);
}

/* ---- a job's export, structure by structure ------------------------- */

struct export_session {
	int64_t job_id;
	const struct export_options *opt;
	char results_dir[PATH_MAX];
	char dir[PATH_MAX];                     /* results_dir/dicom */
	struct bridge_export_ref *brefs;
	struct bridge_export_info info;         /* the source and refs; the rest per object */
	bool stl_done[PIPELINE_MAX_STRUCTURES]; /* export_structure() did (or tried) it */
	bool write_stl_files;                   /* results_dir/<key>.stl is ours to write */
	struct export_result out;               /* what export_structure() wrote */
};

bool export_begin(struct r3d_err *err, int64_t job_id, const struct series_ref *refs, int nrefs,
		  const char *results_dir, const struct export_options *opt,
		  struct export_session **out)
{
	struct export_session *x;

	*out = NULL;
	if (nrefs < 1)
		return r3d_err_set(err, R3D_EINVAL, "export: no source instances");
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "export: out of memory");
	x->job_id = job_id;
	x->opt = opt;
	if (!path_fmt(err, x->results_dir, sizeof(x->results_dir), "%s", results_dir) ||
	    !path_fmt(err, x->dir, sizeof(x->dir), "%s/dicom", results_dir))
		goto fail;
	x->brefs = calloc((size_t)nrefs, sizeof(*x->brefs));
	if (x->brefs == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "export: out of memory");
		goto fail;
	}
	for (int i = 0; i < nrefs; i++) {
		x->brefs[i].sop_class_uid = refs[i].sop_class_uid;
		x->brefs[i].sop_instance_uid = refs[i].sop_instance_uid;
	}
	x->info.source_path = refs[0].path;
	x->info.refs = x->brefs;
	x->info.nrefs = (size_t)nrefs;
	x->info.instance_number = 1;
	x->write_stl_files = true;
	*out = x;
	return true;
fail:
	export_end(x);
	return false;
}

void export_end(struct export_session *x)
{
	if (x == NULL)
		return;
	free(x->brefs);
	free(x);
}

/* The structures with a mesh, in result order, as the bridge takes them. */
static size_t export_structures(const struct pipeline_result *res, size_t upto,
				struct bridge_export_structure *st, const struct structure_def **def,
				size_t *index)
{
	size_t nst = 0;

	for (size_t i = 0; i < upto; i++) {
		const struct pipeline_structure *ps = &res->structures[i];
		if (ps->mesh == NULL)
			continue;
		bool verified = ps->stats.closed && ps->stats.manifold;
		def[nst] = &ps->def;
		index[nst] = i;
		st[nst] = (struct bridge_export_structure){
			.name = ps->def.label,
			.rgb = {ps->def.rgb[0], ps->def.rgb[1], ps->def.rgb[2]},
			.xyz = ps->mesh->xyz,
			.tri = ps->mesh->tri,
			.nvert = ps->mesh->nvert,
			.ntri = ps->mesh->ntri,
			.finite_volume = verified ? BRIDGE_FLAG_YES : BRIDGE_FLAG_NO,
			.manifold = verified ? BRIDGE_FLAG_YES : BRIDGE_FLAG_NO,
		};
		pipeline_structure_codes(&ps->def, &st[nst].codes);
		nst++;
	}
	return nst;
}

bool export_structure(struct r3d_err *err, struct export_session *x,
		      const struct pipeline_result *res, size_t i)
{
	struct export_run run = {.res = res, .job_id = x->job_id, .opt = x->opt, .dir = x->dir};
	const struct pipeline_structure *ps;
	struct bridge_export_info info = x->info;
	struct r3d_err e;
	char stl[PATH_MAX];
	size_t nth = 0;

	if (i >= res->nstructures || i >= PIPELINE_MAX_STRUCTURES)
		return r3d_err_set(err, R3D_EINVAL, "export: no structure %zu", i);
	ps = &res->structures[i];
	if (!x->opt->stl || ps->mesh == NULL || x->stl_done[i])
		return true;
	x->stl_done[i] = true;
	/* Its series number: its place among the structures with a mesh. */
	for (size_t k = 0; k < i; k++)
		nth += res->structures[k].mesh != NULL;
	r3d_err_clear(&e);
	double t = clock_mono_s();
	if (x->out.n >= EXPORT_MAX_OBJECTS) {
		r3d_err_set(&e, R3D_EINVAL, "too many objects");
	} else if (!mkdir_p(&e, x->dir) ||
		   !path_fmt(&e, stl, sizeof(stl), "%s/%s.stl", x->results_dir, ps->def.key) ||
		   !mesh_stl_write(&e, stl, ps->mesh, ps->def.label) ||
		   !write_stl(&e, &run, &info, x->results_dir, &ps->def, ps->def.label, nth, &x->out)) {
		if (x->out.stopped) {
			*err = e;
			return r3d_err_prefix(err, "export");
		}
	} else {
		e.code = R3D_OK;
	}
	if (e.code != R3D_OK) {
		r3d_err_prefix(&e, "%s", ps->def.key);
		kind_failed(&x->out, EXPORT_STL, &e);
	}
	x->out.ms[EXPORT_STL] += (clock_mono_s() - t) * 1e3;
	return true;
}

/* Appends the objects and outcomes of b to a (b's kinds failing count too). */
static void result_merge(struct export_result *a, const struct export_result *b)
{
	for (int i = 0; i < b->n && a->n < EXPORT_MAX_OBJECTS; i++)
		a->obj[a->n++] = b->obj[i];
	for (int k = 0; k < EXPORT_NKINDS; k++) {
		a->ms[k] += b->ms[k];
		if (b->done_at[k] > a->done_at[k])
			a->done_at[k] = b->done_at[k];
		if (b->failed[k][0] != '\0' && a->failed[k][0] == '\0') {
			snprintf(a->failed[k], sizeof(a->failed[k]), "%s", b->failed[k]);
			a->nfailed++;
		}
	}
}

bool export_finish(struct r3d_err *err, struct export_session *x,
		   const struct pipeline_result *res, struct export_result *out)
{
	const struct export_options *opt = x->opt;
	struct preview_task *pt = NULL;
	pthread_t pt_thread;
	bool pt_running = false;
	struct bridge_export_structure st[PIPELINE_MAX_STRUCTURES];
	const struct structure_def *def[PIPELINE_MAX_STRUCTURES];   /* of st[i] */
	size_t index[PIPELINE_MAX_STRUCTURES];                      /* of st[i] in res */
	struct bridge_export_info info = x->info;
	struct export_run run = {.res = res, .job_id = x->job_id, .opt = opt, .dir = x->dir};
	struct r3d_err e;
	size_t nst;
	bool ok = false, prepared = false;

	memset(out, 0, sizeof(*out));
	result_merge(out, &x->out);   /* the STL written while the others were meshed */
	nst = export_structures(res, res->nstructures, st, def, index);
	if (nst == 0)
		return true;
	if (!mkdir_p(err, x->dir))
		return false;

	if (opt->preview) {
		pt = calloc(1, sizeof(*pt));
		if (pt == NULL) {
			r3d_err_set(err, R3D_ENOMEM, "export: out of memory");
			goto out;
		}
		pt->run = &run;
		pt->info = info;
		pthread_mutex_init(&pt->lock, NULL);
		r3d_err_clear(&pt->err);
		prepared = preview_prepare(&pt->err, pt);
		if (!prepared) {
			pt->failed = true;
		} else {
			pt_running = pthread_create(&pt_thread, NULL, preview_thread, pt) == 0;
			if (!pt_running)   /* no thread to be had: render them here, after the others */
				log_debug("export", "preview thread not started; rendering in line");
		}
	}

	/* The small objects first: each goes to the outbox as it is done. */
	double t = clock_mono_s();
	r3d_err_clear(&e);
	if (opt->surface_segmentation && !write_surface_segmentation(&e, &run, &info, st, nst, out)) {
		if (out->stopped)
			goto fatal;
		kind_failed(out, EXPORT_SURFACE_SEGMENTATION, &e);
	}
	out->ms[EXPORT_SURFACE_SEGMENTATION] = (clock_mono_s() - t) * 1e3;
	t = clock_mono_s();
	for (size_t i = 0; opt->stl && i < nst; i++) {
		char stl[PATH_MAX];
		if (index[i] < PIPELINE_MAX_STRUCTURES && x->stl_done[index[i]])
			continue;
		r3d_err_clear(&e);
		if (x->write_stl_files &&
		    (!path_fmt(&e, stl, sizeof(stl), "%s/%s.stl", x->results_dir, def[i]->key) ||
		     !mesh_stl_write(&e, stl, res->structures[index[i]].mesh, def[i]->label))) {
			r3d_err_prefix(&e, "%s", def[i]->key);
			kind_failed(out, EXPORT_STL, &e);
			continue;
		}
		if (!write_stl(&e, &run, &info, x->results_dir, def[i], st[i].name, i, out)) {
			if (out->stopped)
				goto fatal;
			r3d_err_prefix(&e, "%s", def[i]->key);
			kind_failed(out, EXPORT_STL, &e);
		}
	}
	out->ms[EXPORT_STL] += (clock_mono_s() - t) * 1e3;
	t = clock_mono_s();
	/* Only structures meshed on the CT's own grid have masks on its slices
	 * (an imported segment lives on its object's grid): none, no SEG. */
	bool masks = false;
	for (size_t i = 0; i < res->nstructures; i++)
		masks |= res->structures[i].mesh != NULL && res->structures[i].seg_bits != NULL;
	r3d_err_clear(&e);
	if (opt->segmentation && res->seg.nslices > 0 && masks &&
	    !write_segmentation(&e, &run, &info, def, nst, out)) {
		if (out->stopped)
			goto fatal;
		kind_failed(out, EXPORT_SEGMENTATION, &e);
	}
	out->ms[EXPORT_SEGMENTATION] = (clock_mono_s() - t) * 1e3;
	/* Done with the others: help with the views left. */
	if (prepared)
		preview_take(pt);
	if (pt_running) {
		pthread_join(pt_thread, NULL);
		pt_running = false;
	}
	if (pt != NULL) {
		if (pt->stopped) {
			e = pt->err;
			goto fatal;
		}
		for (int v = 0; v < PREVIEW_NVIEWS && out->n < EXPORT_MAX_OBJECTS; v++)
			if (pt->written[v])
				out->obj[out->n++] = pt->obj[v];
		out->ms[EXPORT_PREVIEW] = pt->ms;
		if (pt->done_at > 0)
			out->done_at[EXPORT_PREVIEW] = pt->done_at;
		if (pt->failed)
			kind_failed(out, EXPORT_PREVIEW, &pt->err);
	}
	ok = true;
	goto out;
fatal:
	*err = e;
out:
	/* On an early failure the preview thread still owns pt: stop it, wait. */
	if (pt_running) {
		atomic_store(&pt->stop, true);
		pthread_join(pt_thread, NULL);
	}
	if (pt != NULL)
		pthread_mutex_destroy(&pt->lock);
	free(pt);
	if (!ok)
		r3d_err_prefix(err, "export");
	return ok;
}

bool export_job(struct r3d_err *err, const struct pipeline_result *res, int64_t job_id,
		const struct series_ref *refs, int nrefs, const char *results_dir,
		const struct export_options *opt, struct export_result *out)
{
	struct export_session *x = NULL;
	bool ok;

	memset(out, 0, sizeof(*out));
	if (!export_begin(err, job_id, refs, nrefs, results_dir, opt, &x))
		return false;
	x->write_stl_files = false;   /* pipeline_write_outputs() left them there */
	ok = export_finish(err, x, res, out);
	export_end(x);
	return ok;
}
