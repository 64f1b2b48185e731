/*
 * pipeline.c: one CT series to surface models (see r3d/pipeline.h), as a
 * short sequence of stages: scan -> load (bridge) -> volume -> segment ->
 * mesh, then outputs (report.c) and the masks on the source grid
 * (segmap.c). The structures come from the catalogue (r3d/structure.h):
 * each enabled entry gets its mask from its source (a preset, a threshold
 * range, or a mask given to the pipeline) and is meshed the same way, so a
 * new kind of source is one more case of structure_mask() and nothing
 * else. Any thread.
 */
#include "r3d/pipeline.h"

#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pipeline_int.h"
#include "r3d/segimport.h"
#include "r3d/segnifti.h"
#include "r3d/segobj.h"
#include "r3d/util.h"

#define PIPELINE_THRESHOLD_MIN_VOXELS 27   /* threshold structures: components smaller than
					    * 3x3x3 are dropped */

static const char *const stage_names[PIPELINE_NSTAGES] = {
	"scan", "load", "volume", "segment", "mesh", "write",
};

const char *pipeline_stage_name(enum pipeline_stage s)
{
	if ((int)s < 0 || s >= PIPELINE_NSTAGES)
		return "?";
	return stage_names[s];
}

void pipeline_options_default(struct pipeline_options *o)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	memset(o, 0, sizeof(*o));
	structure_catalog_default(&o->catalog);
	o->smooth = true;
	o->decimate = true;
	o->max_error_mm = PIPELINE_DEFAULT_MAX_ERROR_MM;
	o->error_target_mm = PIPELINE_DEFAULT_ERROR_TARGET_MM;
	pipeline_print_defaults(&o->print);
	o->threads = cpus < 1 ? 1 : (cpus > MESH_MAX_THREADS ? MESH_MAX_THREADS : (int)cpus);
}

static void progress(const struct pipeline_options *o, enum pipeline_stage s, const char *what)
{
	if (o->progress != NULL)
		o->progress(o->progress_ctx, s, what);
}

static void note_add(struct pipeline_result *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void note_add(struct pipeline_result *res, const char *fmt, ...)
{
	size_t n = strlen(res->note);
	va_list ap;

	if (n + 3 >= sizeof(res->note))
		return;
	if (n > 0) {
		res->note[n++] = ';';
		res->note[n++] = ' ';
		res->note[n] = '\0';
	}
	va_start(ap, fmt);
	vsnprintf(res->note + n, sizeof(res->note) - n, fmt, ap);
	va_end(ap);
}

/* The report's notes on a structure's decimation: its last resort, an
 * error beyond the one allowed. */
void pipeline_note_decimation(struct pipeline_result *res, const struct pipeline_structure *ps,
			      const struct mesh_build_params *bp)
{
	if (ps->mesh_times.fallback[0] != '\0') {
		note_add(res, "%s: %zu triangles, budget %zu: %s", ps->def.key, ps->mesh->ntri,
			 bp->max_tri, ps->mesh_times.fallback);
	}
	if (ps->mesh_times.error_exceeded) {
		note_add(res, "%s: decimated %.2f mm away from the undecimated surface at most, "
			 "beyond the %.2f mm allowed ([mesh] max_decimation_error_mm)", ps->def.key,
			 ps->mesh_times.error.max, bp->max_error_mm);
	}
}

/* Picks the series: the one asked for, or the largest (saying so). */
static bool choose_series(struct r3d_err *err, const struct bridge_scan *scan,
			  const struct pipeline_options *o, const char *preferred,
			  struct pipeline_result *res, size_t *which)
{
	size_t n = bridge_scan_count(scan);
	const struct bridge_series_info *info;

	/* A segmentation object names the series it was made on. */
	for (size_t i = 0; o->series_uid == NULL && preferred != NULL && preferred[0] != '\0' && i < n;
	     i++) {
		if (strcmp(bridge_scan_series(scan, i)->series_uid, preferred) == 0) {
			*which = i;
			if (n > 1)
				note_add(res, "%zu series in the folder: using %s, the series the "
					      "segmentation refers to", n, preferred);
			return true;
		}
	}

	if (o->series_uid != NULL) {
		for (size_t i = 0; i < n; i++) {
			if (strcmp(bridge_scan_series(scan, i)->series_uid, o->series_uid) == 0) {
				*which = i;
				return true;
			}
		}
		return r3d_err_set(err, R3D_EINVAL, "series %s is not in the folder (%zu series found)",
				   o->series_uid, n);
	}
	/* Largest CT series first: the scan lists series largest first. */
	for (size_t i = 0; i < n; i++) {
		info = bridge_scan_series(scan, i);
		if (strcmp(info->modality, "CT") == 0) {
			*which = i;
			if (n > 1)
				note_add(res, "%zu series in the folder: using the largest CT series %s "
					      "(%zu frames); choose another with --series UID",
					 n, info->series_uid[0] ? info->series_uid : "(no UID)", info->frames);
			return true;
		}
	}
	info = bridge_scan_series(scan, 0);
	return r3d_err_set(err, R3D_EINVAL, "no CT series in the folder (series %s is %s, not CT)",
			   info->series_uid[0] ? info->series_uid : "(no UID)",
			   info->modality[0] ? info->modality : "of no modality");
}

long pipeline_peak_rss(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return ru.ru_maxrss * 1024L;
}

void pipeline_structure_codes(const struct structure_def *d, struct bridge_segment_codes *out)
{
	const struct structure_code *in[] = {&d->category, &d->type, &d->type_modifier, &d->region,
					     &d->region_modifier};
	struct bridge_code *to[] = {&out->category, &out->type, &out->type_modifier, &out->region,
				    &out->region_modifier};

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		to[i]->value = in[i]->value[0] != '\0' ? in[i]->value : NULL;
		to[i]->scheme = in[i]->scheme;
		to[i]->meaning = in[i]->meaning;
	}
}

/* ---- the state of one run ------------------------------------------- */

struct run {
	const struct pipeline_options *o;
	struct pipeline_result *res;
	struct bridge_scan *scan;
	size_t which;                  /* the chosen series in the scan */
	struct bridge_series *series;  /* decoded; freed once in the volume */
	struct volume *vol;
	struct segment_ctx *sctx;
	struct segment_result sres;    /* the presets' masks */
	struct mesh_iso_work *work;    /* the imported segments' isosurfaces */
	struct segobj *import;         /* o->segmentation (read before the scan) or o->labels */
	void (*import_free)(struct segobj *);  /* its reader's free */
};

static void run_free(struct run *r)
{
	if (r->import != NULL)
		r->import_free(r->import);
	mesh_iso_work_destroy(r->work);
	segment_ctx_destroy(r->sctx);
	volume_destroy(r->vol);
	bridge_series_free(r->series);
	bridge_scan_free(r->scan);
}

/* ---- stages ------------------------------------------------------------ */

static bool stage_scan(struct r3d_err *err, struct run *r, const char *dir)
{
	struct pipeline_result *res = r->res;
	const struct bridge_series_info *info;

	if (!bridge_scan_dir(err, dir, &r->scan))
		return false;
	res->series_in_folder = bridge_scan_count(r->scan);
	res->files_skipped = bridge_scan_skipped(r->scan);
	if (res->series_in_folder == 0)
		return r3d_err_set(err, R3D_EINVAL, "no DICOM images in '%s' (%zu other files)", dir,
				   res->files_skipped);
	if (!choose_series(err, r->scan, r->o,
			   r->import != NULL ? r->import->referenced_series_uid : NULL, res, &r->which))
		return false;
	info = bridge_scan_series(r->scan, r->which);
	snprintf(res->series_uid, sizeof(res->series_uid), "%s", info->series_uid);
	snprintf(res->study_uid, sizeof(res->study_uid), "%s", info->study_uid);
	snprintf(res->modality, sizeof(res->modality), "%s", info->modality);
	if (strcmp(info->modality, "CT") != 0)
		return r3d_err_set(err, R3D_EINVAL, "series %s is %s, not CT", res->series_uid,
				   info->modality[0] ? info->modality : "of no modality");
	return true;
}

static bool stage_load(struct r3d_err *err, struct run *r)
{
	const struct bridge_series_info *info = bridge_scan_series(r->scan, r->which);
	size_t nslices = 0;
	const struct volume_slice *slices;

	size_t preloaded = 0;

	if (!bridge_series_load_preloaded(err, r->scan, r->which, (unsigned)r->o->threads,
					  r->o->preload, &r->series, &preloaded))
		return false;
	r->res->instances_preloaded = preloaded;
	r->res->instances_read = info->instances - preloaded;
	slices = bridge_series_slices(r->series, &nslices);
	r->res->slices = nslices;
	return !(r->o->keep_masks && nslices > 0 &&
		 !seg_slices_build(err, r->series, slices, nslices, info->sop_class_uid, &r->res->seg));
}

static bool stage_volume(struct r3d_err *err, struct run *r)
{
	struct pipeline_result *res = r->res;
	struct volume_options vo;
	size_t nslices = 0;
	const struct volume_slice *slices = bridge_series_slices(r->series, &nslices);

	volume_options_default(&vo);
	vo.interpolate_gaps = r->o->interpolate_gaps;
	vo.threads = r->o->threads;
	if (!volume_assemble(err, slices, nslices, &vo, &r->vol))
		return false;
	bridge_series_free(r->series);   /* the decoded frames are in the volume now */
	r->series = NULL;
	/* Frames decoded by the pre-loader were allocated in its thread's malloc
	 * arena: freed here they would stay in that arena, out of this thread's
	 * reach, and the masks would take fresh memory (about 60 MB more peak
	 * on a 134-slice series). Give them back to the system. */
	if (res->instances_preloaded > 0)
		(void)malloc_trim(0);
	res->dims[0] = r->vol->nx;
	res->dims[1] = r->vol->ny;
	res->dims[2] = r->vol->nz;
	memcpy(res->spacing_mm, r->vol->spacing, sizeof(res->spacing_mm));
	for (int row = 0; row < 4; row++)
		for (int c = 0; c < 4; c++)
			res->affine[row * 4 + c] = r->vol->affine[row][c];
	if (r->vol->note[0] != '\0')
		note_add(res, "%s", r->vol->note);
	if (r->o->save_volume != NULL) {
		FILE *f = fopen(r->o->save_volume, "wb");
		bool wrote = f != NULL && fwrite(r->vol->hu, 1, r->vol->bytes, f) == r->vol->bytes;
		if (f != NULL && fclose(f) != 0)
			wrote = false;
		if (!wrote)
			return r3d_err_set(err, R3D_EIO, "cannot write the volume to '%s'",
					   r->o->save_volume);
	}
	if (r->o->save_volume_nifti != NULL &&
	    !segnifti_write_volume(err, r->o->save_volume_nifti, r->vol->hu, r->vol->nx, r->vol->ny,
				   r->vol->nz, (const double(*)[4])r->vol->affine))
		return false;
	return true;
}

/* The presets the enabled entries need, in one segment_run() (they share
 * the body and the contrast detection); thresholds from the catalogue. */
static bool stage_segment(struct r3d_err *err, struct run *r)
{
	struct segment_volume sv = {r->vol->hu, r->vol->nx, r->vol->ny, r->vol->nz,
				    {r->vol->spacing[0], r->vol->spacing[1], r->vol->spacing[2]}};
	struct segment_params sp;
	unsigned presets = 0;

	segment_params_default(&sp);
	sp.threads = r->o->threads;
	structure_catalog_segment_params(&r->o->catalog, &sp, &presets);
	if (presets == 0)
		return true;
	if (!segment_ctx_create(err, r->vol->nx, r->vol->ny, r->vol->nz, &r->sctx) ||
	    !segment_run(err, r->sctx, &sv, &sp, presets, &r->sres))
		return false;
	r->res->contrast = r->sres.contrast;
	return true;
}

/* What a structure's source gives the mesh stage. */
struct structure_mask {
	const uint8_t *mask;   /* on the volume grid; NULL: skipped (reason) */
	size_t voxels;
	double ms;             /* time to make it */
	char reason[SEGMENT_REASON_MAX];
};

/* One thread of the mesh stage: what it needs of its own. */
struct mesher {
	struct mesh_stage *st;
	struct mesh_iso_work *work;
	struct segment_cc *cc;         /* threshold structures: components */
	uint8_t *scratch, *scratch2;   /* threshold structures: one mask at a time */
	size_t scratch_bytes;
	struct pipeline_structure ps;  /* the structure being made, copied in and out
					* under the stage's lock */
};

/* A threshold entry: voxels in its range, in 26-connected components of at
 * least PIPELINE_THRESHOLD_MIN_VOXELS, into the mesher's scratch mask. */
static bool source_threshold(struct r3d_err *err, struct run *r, struct mesher *m,
			     const struct structure_def *d, struct structure_mask *out)
{
	const struct volume *vol = r->vol;
	size_t n = 0;
	int lo = d->has_min ? d->min_hu : INT16_MIN, hi = d->has_max ? d->max_hu : INT16_MAX;

	if (!size_mul3(vol->nx, vol->ny, vol->nz, &n))
		return r3d_err_set(err, R3D_EINVAL, "volume too large");
	if (m->scratch == NULL) {
		m->scratch_bytes = n;
		m->scratch = bigbuf_alloc(err, n);
		m->scratch2 = m->scratch != NULL ? bigbuf_alloc(err, n) : NULL;
		if (m->scratch2 == NULL)
			return false;
	}
	if (m->cc == NULL && !segment_cc_create(err, r->o->threads, &m->cc))
		return false;
	for (size_t i = 0; i < n; i++)
		m->scratch2[i] = vol->hu[i] >= lo && vol->hu[i] <= hi;
	if (!segment_cc_label(err, m->cc, m->scratch2, vol->nx, vol->ny, vol->nz, 26))
		return false;
	segment_cc_paint_min_size(m->cc, PIPELINE_THRESHOLD_MIN_VOXELS, m->scratch);
	for (size_t i = 0; i < n; i++)
		out->voxels += m->scratch[i];
	out->mask = m->scratch;
	if (out->voxels == 0)
		snprintf(out->reason, sizeof(out->reason), "no component of %d voxels in %s",
			 PIPELINE_THRESHOLD_MIN_VOXELS, d->has_min && d->has_max ? "the HU range" :
			 d->has_min ? "the voxels at or above min_hu" : "the voxels at or below max_hu");
	return true;
}

/* The mask of entry d from its source. */
static bool structure_mask(struct r3d_err *err, struct run *r, struct mesher *m,
			   const struct structure_def *d, struct structure_mask *out)
{
	double t0 = clock_mono_s();

	memset(out, 0, sizeof(*out));
	switch (d->source) {
	case STRUCTURE_PRESET:
		out->mask = r->sres.mask[d->preset];
		out->voxels = r->sres.voxels[d->preset];
		out->ms = r->sres.ms[d->preset];
		if (out->mask == NULL)
			snprintf(out->reason, sizeof(out->reason), "%s",
				 r->sres.skipped_reason[d->preset][0] ? r->sres.skipped_reason[d->preset] :
									"not produced");
		else if (out->voxels == 0)
			snprintf(out->reason, sizeof(out->reason), "no voxels");
		return true;
	case STRUCTURE_THRESHOLD:
		if (!source_threshold(err, r, m, d, out))
			return false;
		out->ms = (clock_mono_s() - t0) * 1e3;
		return true;
	case STRUCTURE_MASK:
		break;
	}
	return r3d_err_set(err, R3D_EINVAL, "structure %s: its source (%s) gives no mask to a "
			   "CT series run", d->key, structure_source_name(d->source));
}

/* save_masks: the mask a mesh is made from, on the volume grid. */
static bool mask_save(struct r3d_err *err, const char *dir, const char *name, const uint8_t *mask,
		      const struct volume *vol)
{
	char path[4096];
	size_t n = vol->nx * vol->ny * vol->nz;
	FILE *f;
	bool wrote;

	if (snprintf(path, sizeof(path), "%s/%s.raw", dir, name) >= (int)sizeof(path))
		return r3d_err_set(err, R3D_EINVAL, "--save-masks: path too long");
	f = fopen(path, "wb");
	wrote = f != NULL && fwrite(mask, 1, n, f) == n;
	if (f != NULL && fclose(f) != 0)
		wrote = false;
	if (!wrote)
		return r3d_err_set(err, R3D_EIO, "cannot write the mask to '%s'", path);
	return true;
}

/* What keep_masks and save_masks ask for, once a structure is meshed. */
static bool mask_keep(struct r3d_err *err, const struct run *r, struct pipeline_structure *ps,
		      const uint8_t *mask)
{
	const struct pipeline_options *o = r->o;
	struct pipeline_result *res = r->res;

	if (o->save_masks != NULL && !mask_save(err, o->save_masks, ps->def.key, mask, r->vol))
		return false;
	if (o->keep_masks && res->seg.nslices > 0 &&
	    !seg_map(err, &res->seg, r->vol, mask, &ps->seg_bits, &ps->seg_voxels, &res->seg.mapped))
		return r3d_err_prefix(err, "%s", ps->def.key);
	return true;
}

/* One structure's surface: through the CT's grey-level crossing of its HU
 * range where it has one (the mask decides what is inside), else from the
 * mask alone with smoothing kept within each vertex's voxel cell. */
static bool mesh_one(struct r3d_err *err, struct run *r, struct mesh_iso_work *work, int threads,
		     struct pipeline_structure *ps, const uint8_t *mask)
{
	const struct volume *vol = r->vol;
	struct mesh_volume mv = {mask, MESH_SCALAR_U8, vol->nx, vol->ny, vol->nz, NULL, 0, 0};
	struct mesh_build_params bp;
	double t0 = clock_mono_s();

	mesh_build_defaults(&bp);
	bp.iso = 0.5;
	bp.threads = threads;
	memcpy(bp.affine, r->res->affine, sizeof(bp.affine));
	bp.smooth = r->o->smooth;
	ps->grey = !r->o->mask_surfaces &&
		   structure_def_range(&ps->def, r->res->contrast, &ps->range_lo, &ps->range_hi);
	if (ps->grey) {
		mv.grey = vol->hu;
		mv.grey_lo = ps->range_lo;
		mv.grey_hi = ps->range_hi;
	} else {
		mesh_build_mask_smoothing(&bp);
	}
	bp.smoothing.threads = threads;
	bp.max_tri = r->o->decimate ? ps->def.max_triangles : 0;
	bp.max_error_mm = r->o->max_error_mm;
	bp.error_target_mm = r->o->error_target_mm;
	if (!mesh_build(err, &mv, &bp, work, &ps->mesh, &ps->stats, &ps->mesh_times))
		return r3d_err_prefix(err, "meshing %s", ps->def.key);
	ps->mesh_ms = (clock_mono_s() - t0) * 1e3;
	return true;
}

/* The segments of o->segmentation, after the catalogue's entries; an RT
 * Structure Set's contours are filled on the CT's pixel lattice. */
static bool stage_import(struct r3d_err *err, struct run *r)
{
	const struct volume *v = r->vol;
	struct segimport_plane_grid pg;

	memset(&pg, 0, sizeof(pg));
	for (int k = 0; k < 3; k++) {
		pg.orientation[k] = v->affine[k][0] / v->spacing[0];
		pg.orientation[3 + k] = v->affine[k][1] / v->spacing[1];
		pg.origin[k] = v->affine[k][3];
	}
	pg.pixel_spacing[0] = v->spacing[1];
	pg.pixel_spacing[1] = v->spacing[0];
	pg.refine = 2;
	if (r->import->kind == SEGOBJ_SEG_LABELMAP && r->import->sop_instance_uid[0] == '\0' &&
	    !import_check_grid(err, r->import, v))
		return false;   /* a NIfTI label map: no UIDs, its place is all there is */
	return import_mesh(err, r->import, &pg, r->o, r->work, r->res);
}

/* The mesh stage's shared state. Structures are taken in catalogue order
 * by up to o->threads meshers at once (each with o->threads threads of its
 * own inside: the kernels are the same as when meshing one at a time, so
 * the meshes are too, and a mesher that is left alone uses every core);
 * everything a mesher writes into the result is written under the lock,
 * and structure_meshed sees the structures in catalogue order, each once,
 * all earlier ones done. */
struct mesh_stage {
	struct run *r;
	pthread_mutex_t lock;
	size_t first, n;       /* res->structures[first .. first + n): this stage's */
	size_t announced;      /* the ones given to structure_meshed */
	bool done[PIPELINE_MAX_STRUCTURES];
	struct mesher m[MESH_MAX_THREADS];   /* one per thread of pipeline_each() */
};

/* Under the lock: what is done, in order, to structure_meshed. */
static bool stage_announce(struct r3d_err *err, struct mesh_stage *st)
{
	const struct pipeline_options *o = st->r->o;

	while (st->announced < st->n && st->done[st->announced]) {
		size_t i = st->first + st->announced++;
		if (st->r->res->structures[i].mesh != NULL && o->structure_meshed != NULL &&
		    !o->structure_meshed(err, o->structure_meshed_ctx, st->r->res, i))
			return false;
	}
	return true;
}

/* One structure: its mask, its surface (a structure without voxels is
 * skipped with the reason), its kept mask, its loose shells. */
static bool mesher_one(struct r3d_err *err, struct mesher *m, size_t i)
{
	struct mesh_stage *st = m->st;
	struct run *r = st->r;
	struct pipeline_structure *ps = &m->ps;
	struct structure_mask sm;
	bool ok;

	pthread_mutex_lock(&st->lock);
	*ps = r->res->structures[i];
	pthread_mutex_unlock(&st->lock);
	if (!structure_mask(err, r, m, &ps->def, &sm))
		return false;
	ps->segment_ms = sm.ms;
	if (sm.mask == NULL || sm.voxels == 0) {
		snprintf(ps->skipped_reason, sizeof(ps->skipped_reason), "%s", sm.reason);
	} else if (!mesh_one(err, r, m->work, r->o->threads, ps, sm.mask) ||
		   !pipeline_print_drop(err, r->o, ps) ||
		   (!r->o->print.deferred && !pipeline_print_one(err, r->o, ps))) {
		mesh_analysis_free(&ps->analysis);
		mesh_destroy(ps->mesh);
		return false;
	}
	pthread_mutex_lock(&st->lock);
	r->res->structures[i] = *ps;
	ok = ps->mesh == NULL || mask_keep(err, r, &r->res->structures[i], sm.mask);
	if (ok && ps->mesh != NULL) {
		struct mesh_build_params bp = {.max_tri = r->o->decimate ? ps->def.max_triangles : 0,
					       .max_error_mm = r->o->max_error_mm};
		pipeline_note_decimation(r->res, &r->res->structures[i], &bp);
	}
	st->done[i - st->first] = true;
	/* Its STL can go out while the others are meshed. */
	ok = ok && stage_announce(err, st);
	pthread_mutex_unlock(&st->lock);
	return ok;
}

/* pipeline_each(): this stage's structure i, by thread t. */
static bool mesher_each(struct r3d_err *err, void *ctx, int t, size_t i)
{
	struct mesh_stage *st = ctx;
	struct mesher *m = &st->m[t];

	if (m->work == NULL && (m->work = mesh_iso_work_create(err)) == NULL)
		return false;
	return mesher_one(err, m, st->first + i);
}

/* Every enabled entry: its mask, its surface. */
static bool stage_mesh(struct r3d_err *err, struct run *r)
{
	const struct structure_catalog *cat = &r->o->catalog;
	struct pipeline_result *res = r->res;
	struct mesh_stage *st;
	bool ok;

	if (r->o->save_masks != NULL && !mkdir_p(err, r->o->save_masks))
		return false;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "out of memory");
	st->r = r;
	st->first = res->nstructures;
	for (size_t i = 0; i < cat->n; i++) {
		struct pipeline_structure *ps;
		if (!cat->def[i].enabled)
			continue;
		ps = &res->structures[res->nstructures++];
		ps->def = cat->def[i];
		ps->range_lo = ps->range_hi = NAN;
	}
	st->n = res->nstructures - st->first;
	for (int t = 0; t < MESH_MAX_THREADS; t++)
		st->m[t].st = st;
	pthread_mutex_init(&st->lock, NULL);
	ok = pipeline_each(err, r->o->threads, st->n, mesher_each, st);
	for (int t = 0; t < MESH_MAX_THREADS; t++) {
		struct mesher *m = &st->m[t];
		mesh_iso_work_destroy(m->work);
		bigbuf_free(m->scratch2, m->scratch2 != NULL ? m->scratch_bytes : 0);
		bigbuf_free(m->scratch, m->scratch != NULL ? m->scratch_bytes : 0);
		segment_cc_destroy(m->cc);
	}
	pthread_mutex_destroy(&st->lock);
	free(st);
	if (!ok)
		return false;
	if (r->import == NULL)
		return true;
	r->work = mesh_iso_work_create(err);
	return r->work != NULL && stage_import(err, r);
}

bool pipeline_run_dir(struct r3d_err *err, const char *dir, const struct pipeline_options *o,
		      struct pipeline_result *res)
{
	static bool (*const stages[])(struct r3d_err *, struct run *) = {
		[PIPELINE_LOAD] = stage_load,
		[PIPELINE_VOLUME] = stage_volume,
		[PIPELINE_SEGMENT] = stage_segment,
		[PIPELINE_MESH] = stage_mesh,
	};
	struct run r = {.o = o, .res = res};
	bool ok = false;
	double t;

	memset(res, 0, sizeof(*res));
	progress(o, PIPELINE_SCAN, dir);
	t = clock_mono_s();
	if (o->segmentation != NULL && o->labels != NULL) {
		r3d_err_set(err, R3D_EINVAL, "a segmentation object or a label map, not both");
		goto out;
	}
	/* Read first: it names the series to use when the folder holds several. */
	if (o->segmentation != NULL) {
		r.import_free = bridge_segobj_free;
		if (!bridge_segobj_read(err, o->segmentation, &r.import))
			goto out;
	}
	if (!stage_scan(err, &r, dir))
		goto out;
	if (o->segmentation != NULL &&
	    !import_check_source(err, r.import, bridge_scan_series(r.scan, r.which)))
		goto out;
	if (o->labels != NULL) {
		r.import_free = segnifti_free;
		if (!segnifti_read(err, o->labels, o->label_table, &r.import))
			goto out;
	}
	res->ms[PIPELINE_SCAN] = (clock_mono_s() - t) * 1e3;
	for (int s = PIPELINE_LOAD; s <= PIPELINE_MESH; s++) {
		progress(o, (enum pipeline_stage)s, s == PIPELINE_LOAD ? res->series_uid : "");
		t = clock_mono_s();
		if (!stages[s](err, &r))
			goto out;
		res->ms[s] = (clock_mono_s() - t) * 1e3;
		if (o->volume_only && s == PIPELINE_VOLUME)
			break;
	}
	/* The imported segments' shells too, before anything is exported. */
	for (size_t i = 0; !o->volume_only && i < res->nstructures; i++) {
		if (!pipeline_print_drop(err, o, &res->structures[i]))
			goto out;
	}
	if (!o->volume_only && !o->print.deferred && !pipeline_print_run(err, o, res))
		goto out;
	ok = true;
out:
	res->peak_rss_bytes = pipeline_peak_rss();
	run_free(&r);
	if (!ok)
		pipeline_result_free(res);
	return ok;
}

void pipeline_result_free(struct pipeline_result *res)
{
	pipeline_print_free(res);
	for (size_t i = 0; i < res->nstructures; i++) {
		mesh_destroy(res->structures[i].mesh);
		res->structures[i].mesh = NULL;
		free(res->structures[i].seg_bits);
		res->structures[i].seg_bits = NULL;
	}
	free(res->seg.slices);
	memset(&res->seg, 0, sizeof(res->seg));
}
