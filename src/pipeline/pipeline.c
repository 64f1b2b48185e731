/*
 * pipeline.c: one CT series to surface models (see r3d/pipeline.h): scan ->
 * load (bridge) -> volume -> segment -> mesh -> outputs. Any thread.
 */
#include "r3d/pipeline.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "r3d/bridge.h"
#include "r3d/util.h"
#include "r3d/volume.h"

#define PIPELINE_CUSTOM_MIN_VOXELS 27   /* custom: components smaller than 3x3x3 are dropped */

static const char *const stage_names[PIPELINE_NSTAGES] = {
	"scan", "load", "volume", "segment", "mesh", "write",
};

const char *pipeline_stage_name(enum pipeline_stage s)
{
	if ((int)s < 0 || s >= PIPELINE_NSTAGES)
		return "?";
	return stage_names[s];
}

/* Colours a surgeon recognises, as 0..1 RGB (also the OBJ materials). */
static const float structure_rgb[PIPELINE_MAX_STRUCTURES][3] = {
	[SEGMENT_SKIN] = {0.94f, 0.76f, 0.65f},
	[SEGMENT_BONE] = {0.89f, 0.85f, 0.79f},
	[SEGMENT_LUNGS] = {0.55f, 0.75f, 0.95f},
	[SEGMENT_VESSELS] = {0.80f, 0.12f, 0.12f},
	[SEGMENT_STRUCTURE_COUNT] = {0.70f, 0.70f, 0.70f},
};

void pipeline_options_default(struct pipeline_options *o)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	memset(o, 0, sizeof(*o));
	o->structures = (1u << SEGMENT_STRUCTURE_COUNT) - 1;
	o->smooth = true;
	o->decimate = true;
	o->threads = cpus < 1 ? 1 : (cpus > MESH_MAX_THREADS ? MESH_MAX_THREADS : (int)cpus);
	o->max_tri[SEGMENT_SKIN] = 300000;
	o->max_tri[SEGMENT_BONE] = 600000;
	o->max_tri[SEGMENT_LUNGS] = 300000;
	o->max_tri[SEGMENT_VESSELS] = 300000;
	o->max_tri[SEGMENT_STRUCTURE_COUNT] = 600000;
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

/* Picks the series: the one asked for, or the largest (saying so). */
static bool choose_series(struct r3d_err *err, const struct bridge_scan *scan,
			  const struct pipeline_options *o, struct pipeline_result *res,
			  size_t *which)
{
	size_t n = bridge_scan_count(scan);
	const struct bridge_series_info *info;

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

static long peak_rss(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return ru.ru_maxrss * 1024L;
}

/* The custom structure: voxels at or above hu, in components of at least
 * PIPELINE_CUSTOM_MIN_VOXELS (26-connected); nothing else. */
static bool custom_mask(struct r3d_err *err, const struct volume *vol, int hu, int threads,
			uint8_t **out, size_t *bytes)
{
	struct segment_cc *cc = NULL;
	uint8_t *mask = NULL, *kept = NULL;
	size_t n = 0;
	bool ok = false;

	if (!size_mul3(vol->nx, vol->ny, vol->nz, &n))
		return r3d_err_set(err, R3D_EINVAL, "volume too large");
	mask = bigbuf_alloc(err, n);
	kept = bigbuf_alloc(err, n);
	if (mask == NULL || kept == NULL)
		goto out;
	for (size_t i = 0; i < n; i++)
		mask[i] = vol->hu[i] >= hu;
	if (!segment_cc_create(err, threads, &cc) ||
	    !segment_cc_label(err, cc, mask, vol->nx, vol->ny, vol->nz, 26))
		goto out;
	segment_cc_paint_min_size(cc, PIPELINE_CUSTOM_MIN_VOXELS, kept);
	*out = kept;
	*bytes = n;
	kept = NULL;
	ok = true;
out:
	segment_cc_destroy(cc);
	bigbuf_free(kept, n);
	bigbuf_free(mask, n);
	return ok;
}

/* ---- masks on the source slice grid (keep_masks) ---------------------- */

struct seg_order {
	size_t index;   /* into the decoded slices */
	double w;       /* position along the slice normal, mm */
};

static int seg_order_cmp(const void *pa, const void *pb)
{
	const struct seg_order *a = pa, *b = pb;

	if (a->w < b->w)
		return -1;
	if (a->w > b->w)
		return 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

static int seg_uid_cmp(const void *pa, const void *pb)
{
	const struct pipeline_seg_slice *const *a = pa, *const *b = pb;

	return strcmp((*a)->sop_instance_uid, (*b)->sop_instance_uid);
}

/* The source slices in the volume's order (sorted along the normal of their
 * orientation by position, ties by decoding order, as volume_assemble()
 * does), with their UIDs, frame numbers and positions: copied now, before
 * the decoded series is freed. */
static bool seg_slices_build(struct r3d_err *err, const struct bridge_series *series,
			     const struct volume_slice *slices, size_t n, const char *sop_class,
			     struct pipeline_seg *g)
{
	struct seg_order *ord = NULL;
	struct pipeline_seg_slice **byuid = NULL;
	const double *o = slices[0].orientation;
	double nrm[3] = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5],
			 o[0] * o[4] - o[1] * o[3]};
	bool ok = false;

	if (n == 0 || n > VOLUME_MAX_SLICES)
		return r3d_err_set(err, R3D_EINVAL, "%zu slices for the segmentation grid", n);
	ord = calloc(n, sizeof(*ord));
	byuid = calloc(n, sizeof(*byuid));
	g->slices = calloc(n, sizeof(*g->slices));
	if (ord == NULL || byuid == NULL || g->slices == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "out of memory for the segmentation grid");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		ord[i].index = i;
		ord[i].w = slices[i].position[0] * nrm[0] + slices[i].position[1] * nrm[1] +
			   slices[i].position[2] * nrm[2];
	}
	qsort(ord, n, sizeof(*ord), seg_order_cmp);
	for (size_t k = 0; k < n; k++) {
		const struct volume_slice *s = &slices[ord[k].index];
		struct pipeline_seg_slice *d = &g->slices[k];
		const char *uid = bridge_series_sop_uid(series, ord[k].index);
		/* Each slice's own class (a series may mix CT and Enhanced CT
		 * instances); the series' first instance's when it has none. */
		const char *cls = bridge_series_sop_class(series, ord[k].index);
		snprintf(d->sop_class_uid, sizeof(d->sop_class_uid), "%s",
			 cls != NULL && cls[0] != '\0' ? cls : sop_class);
		snprintf(d->sop_instance_uid, sizeof(d->sop_instance_uid), "%s", uid != NULL ? uid : "");
		memcpy(d->position, s->position, sizeof(d->position));
		d->frame_number = s->frame + 1;   /* cleared below for single-frame instances */
		byuid[k] = d;
	}
	/* An instance that gives one slice is single-frame: no frame number. */
	qsort(byuid, n, sizeof(*byuid), seg_uid_cmp);
	for (size_t a = 0; a < n;) {
		size_t b = a + 1;
		while (b < n && strcmp(byuid[a]->sop_instance_uid, byuid[b]->sop_instance_uid) == 0)
			b++;
		if (b - a == 1 && byuid[a]->frame_number == 1)
			byuid[a]->frame_number = 0;
		a = b;
	}
	g->nslices = n;
	g->rows = slices[0].rows;
	g->columns = slices[0].columns;
	memcpy(g->orientation, slices[0].orientation, sizeof(g->orientation));
	memcpy(g->pixel_spacing, slices[0].pixel_spacing, sizeof(g->pixel_spacing));
	g->slice_thickness = n > 1 ? (ord[n - 1].w - ord[0].w) / (double)(n - 1) : 1.0;
	ok = true;
out:
	free(byuid);
	free(ord);
	if (!ok) {
		free(g->slices);
		memset(g, 0, sizeof(*g));
	}
	return ok;
}

static bool near_int(double v, double *r)
{
	*r = floor(v + 0.5);
	return fabs(v - *r) < 1e-4;
}

/* mask (on the volume grid) onto the source slice grid g, one bit per
 * pixel: an exact copy of the volume plane when the slice is one (the
 * slices as given), else the voxel nearest each pixel centre in patient
 * coordinates (0 outside the volume). On success the caller owns *out
 * (free()). */
static bool seg_map(struct r3d_err *err, const struct pipeline_seg *g, const struct volume *vol,
		    const uint8_t *mask, uint8_t **out, size_t *nset, bool *mapped)
{
	const double *row = g->orientation, *col = g->orientation + 3;
	const double dc = g->pixel_spacing[1], dr = g->pixel_spacing[0];
	size_t total = 0, count = 0;
	uint8_t *bits;

	if (!size_mul3(g->columns, g->rows, g->nslices, &total))
		return r3d_err_set(err, R3D_EINVAL, "segmentation grid too large");
	bits = calloc(total / 8 + 1, 1);
	if (bits == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "out of memory for the segmentation masks");
	for (size_t k = 0; k < g->nslices; k++) {
		const double *p0 = g->slices[k].position;
		double p[3], i0[3], ic[3], ir[3], ri, rj, rk;
		size_t base = (size_t)g->columns * g->rows * k;

		volume_patient_to_index(vol, p0, i0);
		for (int a = 0; a < 3; a++)
			p[a] = p0[a] + dc * row[a];
		volume_patient_to_index(vol, p, ic);
		for (int a = 0; a < 3; a++)
			p[a] = p0[a] + dr * col[a];
		volume_patient_to_index(vol, p, ir);
		for (int a = 0; a < 3; a++) {
			ic[a] -= i0[a];
			ir[a] -= i0[a];
		}
		bool same = near_int(i0[0], &ri) && ri == 0 && near_int(i0[1], &rj) && rj == 0 &&
			    near_int(i0[2], &rk) && rk >= 0 && rk < (double)vol->nz &&
			    g->columns == vol->nx && g->rows == vol->ny &&
			    fabs(ic[0] - 1) < 1e-6 && fabs(ic[1]) < 1e-6 && fabs(ic[2]) < 1e-6 &&
			    fabs(ir[0]) < 1e-6 && fabs(ir[1] - 1) < 1e-6 && fabs(ir[2]) < 1e-6;
		if (same) {
			const uint8_t *m = mask + (size_t)rk * vol->nx * vol->ny;
			for (size_t v = 0; v < (size_t)g->columns * g->rows; v++) {
				if (m[v] != 0) {
					bits[(base + v) >> 3] |= (uint8_t)(1u << ((base + v) & 7));
					count++;
				}
			}
			continue;
		}
		*mapped = true;
		for (uint32_t y = 0; y < g->rows; y++) {
			for (uint32_t x = 0; x < g->columns; x++) {
				double fi = floor(i0[0] + x * ic[0] + y * ir[0] + 0.5);
				double fj = floor(i0[1] + x * ic[1] + y * ir[1] + 0.5);
				double fk = floor(i0[2] + x * ic[2] + y * ir[2] + 0.5);
				if (fi < 0 || fj < 0 || fk < 0 || fi >= (double)vol->nx ||
				    fj >= (double)vol->ny || fk >= (double)vol->nz)
					continue;
				size_t vv = (size_t)fi + vol->nx * ((size_t)fj + vol->ny * (size_t)fk);
				if (mask[vv] != 0) {
					size_t b = base + (size_t)x + (size_t)g->columns * y;
					bits[b >> 3] |= (uint8_t)(1u << (b & 7));
					count++;
				}
			}
		}
	}
	*out = bits;
	*nset = count;
	return true;
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
static bool mask_keep(struct r3d_err *err, const struct pipeline_options *o,
		      struct pipeline_result *res, struct pipeline_structure *ps,
		      const uint8_t *mask, const struct volume *vol)
{
	if (o->save_masks != NULL && !mask_save(err, o->save_masks, ps->name, mask, vol))
		return false;
	if (o->keep_masks && res->seg.nslices > 0 &&
	    !seg_map(err, &res->seg, vol, mask, &ps->seg_bits, &ps->seg_voxels, &res->seg.mapped))
		return r3d_err_prefix(err, "%s", ps->name);
	return true;
}

static bool mesh_one(struct r3d_err *err, const struct pipeline_options *o, struct pipeline_result *res,
		     struct pipeline_structure *ps, const uint8_t *mask, const struct volume *vol,
		     double lo, double hi, size_t max_tri, struct mesh_iso_work *work)
{
	struct mesh_volume mv = {mask, MESH_SCALAR_U8, vol->nx, vol->ny, vol->nz, NULL, 0, 0};

	if (!o->mask_surfaces) {
		mv.grey = vol->hu;
		mv.grey_lo = lo;
		mv.grey_hi = hi;
	}
	struct mesh_build_params bp;
	double t0 = clock_mono_s();

	mesh_build_defaults(&bp);
	bp.iso = 0.5;
	bp.threads = o->threads;
	memcpy(bp.affine, res->affine, sizeof(bp.affine));
	bp.smooth = o->smooth;
	bp.smoothing.threads = o->threads;
	bp.max_tri = o->decimate ? max_tri : 0;
	if (!mesh_build(err, &mv, &bp, work, &ps->mesh, &ps->stats, NULL))
		return r3d_err_prefix(err, "meshing %s", ps->name);
	ps->mesh_ms = (clock_mono_s() - t0) * 1e3;
	return true;
}

bool pipeline_run_dir(struct r3d_err *err, const char *dir, const struct pipeline_options *o,
		      struct pipeline_result *res)
{
	struct bridge_scan *scan = NULL;
	struct bridge_series *series = NULL;
	struct volume *vol = NULL;
	struct segment_ctx *sctx = NULL;
	struct mesh_iso_work *work = NULL;
	uint8_t *custom = NULL;
	size_t custom_bytes = 0;
	size_t which = 0;
	bool ok = false;
	double t;

	memset(res, 0, sizeof(*res));

	progress(o, PIPELINE_SCAN, dir);
	t = clock_mono_s();
	if (!bridge_scan_dir(err, dir, &scan))
		goto out;
	res->series_in_folder = bridge_scan_count(scan);
	res->files_skipped = bridge_scan_skipped(scan);
	if (res->series_in_folder == 0) {
		r3d_err_set(err, R3D_EINVAL, "no DICOM images in '%s' (%zu other files)", dir,
			    res->files_skipped);
		goto out;
	}
	if (!choose_series(err, scan, o, res, &which))
		goto out;
	const struct bridge_series_info *info = bridge_scan_series(scan, which);
	snprintf(res->series_uid, sizeof(res->series_uid), "%s", info->series_uid);
	snprintf(res->study_uid, sizeof(res->study_uid), "%s", info->study_uid);
	snprintf(res->modality, sizeof(res->modality), "%s", info->modality);
	if (strcmp(info->modality, "CT") != 0) {
		r3d_err_set(err, R3D_EINVAL, "series %s is %s, not CT", res->series_uid,
			    info->modality[0] ? info->modality : "of no modality");
		goto out;
	}
	res->ms[PIPELINE_SCAN] = (clock_mono_s() - t) * 1e3;

	progress(o, PIPELINE_LOAD, res->series_uid);
	t = clock_mono_s();
	if (!bridge_series_load(err, scan, which, (unsigned)o->threads, &series))
		goto out;
	size_t nslices = 0;
	const struct volume_slice *slices = bridge_series_slices(series, &nslices);
	res->slices = nslices;
	if (o->keep_masks && nslices > 0 &&
	    !seg_slices_build(err, series, slices, nslices, info->sop_class_uid, &res->seg))
		goto out;
	res->ms[PIPELINE_LOAD] = (clock_mono_s() - t) * 1e3;

	progress(o, PIPELINE_VOLUME, "");
	t = clock_mono_s();
	struct volume_options vo;
	volume_options_default(&vo);
	vo.interpolate_gaps = o->interpolate_gaps;
	vo.threads = o->threads;
	if (!volume_assemble(err, slices, nslices, &vo, &vol))
		goto out;
	bridge_series_free(series);   /* the decoded frames are in the volume now */
	series = NULL;
	res->dims[0] = vol->nx;
	res->dims[1] = vol->ny;
	res->dims[2] = vol->nz;
	memcpy(res->spacing_mm, vol->spacing, sizeof(res->spacing_mm));
	for (int r = 0; r < 4; r++)
		for (int c = 0; c < 4; c++)
			res->affine[r * 4 + c] = vol->affine[r][c];
	if (vol->note[0] != '\0')
		note_add(res, "%s", vol->note);
	if (o->save_volume != NULL) {
		FILE *f = fopen(o->save_volume, "wb");
		bool wrote = f != NULL && fwrite(vol->hu, 1, vol->bytes, f) == vol->bytes;
		if (f != NULL && fclose(f) != 0)
			wrote = false;
		if (!wrote) {
			r3d_err_set(err, R3D_EIO, "cannot write the volume to '%s'", o->save_volume);
			goto out;
		}
	}
	res->ms[PIPELINE_VOLUME] = (clock_mono_s() - t) * 1e3;

	progress(o, PIPELINE_SEGMENT, "");
	t = clock_mono_s();
	struct segment_volume sv = {vol->hu, vol->nx, vol->ny, vol->nz,
				    {vol->spacing[0], vol->spacing[1], vol->spacing[2]}};
	struct segment_result sres;
	memset(&sres, 0, sizeof(sres));
	if (o->structures != 0) {
		struct segment_params sp;
		segment_params_default(&sp);
		sp.threads = o->threads;
		if (!segment_ctx_create(err, vol->nx, vol->ny, vol->nz, &sctx) ||
		    !segment_run(err, sctx, &sv, &sp, o->structures, &sres))
			goto out;
		res->contrast = sres.contrast;
	}
	if (o->custom && !custom_mask(err, vol, o->custom_hu, o->threads, &custom, &custom_bytes))
		goto out;
	res->ms[PIPELINE_SEGMENT] = (clock_mono_s() - t) * 1e3;

	progress(o, PIPELINE_MESH, "");
	t = clock_mono_s();
	if (o->save_masks != NULL && !mkdir_p(err, o->save_masks))
		goto out;
	work = mesh_iso_work_create(err);
	if (work == NULL)
		goto out;
	for (int s = 0; s < SEGMENT_STRUCTURE_COUNT; s++) {
		if (!(o->structures & (1u << s)))
			continue;
		struct pipeline_structure *ps = &res->structures[res->nstructures++];
		snprintf(ps->name, sizeof(ps->name), "%s", segment_structure_name((enum segment_structure)s));
		memcpy(ps->rgb, structure_rgb[s], sizeof(ps->rgb));
		ps->segment_ms = sres.ms[s];
		if (sres.mask[s] == NULL) {
			snprintf(ps->skipped_reason, sizeof(ps->skipped_reason), "%s",
				 sres.skipped_reason[s][0] ? sres.skipped_reason[s] : "not produced");
			continue;
		}
		if (sres.voxels[s] == 0) {
			snprintf(ps->skipped_reason, sizeof(ps->skipped_reason), "no voxels");
			continue;
		}
		if (!mesh_one(err, o, res, ps, sres.mask[s], vol, sres.range_lo[s], sres.range_hi[s],
			      o->max_tri[s], work) ||
		    !mask_keep(err, o, res, ps, sres.mask[s], vol))
			goto out;
	}
	if (o->custom) {
		struct pipeline_structure *ps = &res->structures[res->nstructures++];
		snprintf(ps->name, sizeof(ps->name), "custom");
		memcpy(ps->rgb, structure_rgb[SEGMENT_STRUCTURE_COUNT], sizeof(ps->rgb));
		size_t any = 0;
		for (size_t i = 0; i < custom_bytes && any == 0; i++)
			any = custom[i];
		if (any == 0)
			snprintf(ps->skipped_reason, sizeof(ps->skipped_reason),
				 "no voxel at or above %d HU", o->custom_hu);
		else if (!mesh_one(err, o, res, ps, custom, vol, o->custom_hu - 0.5, INFINITY,
				   o->max_tri[SEGMENT_STRUCTURE_COUNT], work) ||
			 !mask_keep(err, o, res, ps, custom, vol))
			goto out;
	}
	res->ms[PIPELINE_MESH] = (clock_mono_s() - t) * 1e3;
	ok = true;
out:
	res->peak_rss_bytes = peak_rss();
	mesh_iso_work_destroy(work);
	bigbuf_free(custom, custom_bytes);
	segment_ctx_destroy(sctx);
	volume_destroy(vol);
	bridge_series_free(series);
	bridge_scan_free(scan);
	if (!ok)
		pipeline_result_free(res);
	return ok;
}

static json_t *report_json(const struct pipeline_result *res)
{
	json_t *structures = json_array();
	json_t *timings = json_object();

	for (size_t i = 0; i < res->nstructures; i++) {
		const struct pipeline_structure *ps = &res->structures[i];
		json_t *s = json_pack("{s:s, s:[f,f,f]}", "name", ps->name, "color_rgb",
				      (double)ps->rgb[0], (double)ps->rgb[1], (double)ps->rgb[2]);
		if (ps->mesh != NULL) {
			json_object_set_new(s, "file", json_sprintf("%s.stl", ps->name));
			json_object_set_new(s, "mesh_file", json_sprintf("%s.mesh", ps->name));
			json_object_set_new(s, "triangles", json_integer((json_int_t)ps->stats.ntri));
			json_object_set_new(s, "vertices", json_integer((json_int_t)ps->stats.nvert));
			json_object_set_new(s, "volume_ml", json_real(ps->stats.volume_ml));
			json_object_set_new(s, "area_mm2", json_real(ps->stats.area));
			json_object_set_new(s, "watertight",
					    json_boolean(ps->stats.closed && ps->stats.manifold));
			json_object_set_new(s, "euler", json_integer(ps->stats.euler));
			json_object_set_new(s, "zero_area_triangles",
					    json_integer((json_int_t)ps->stats.zero_area_tri));
			if (!(ps->stats.closed && ps->stats.manifold))
				json_object_set_new(s, "defects",
						    json_pack("{s:I, s:I, s:I}",
							      "boundary_edges", (json_int_t)ps->stats.boundary_edges,
							      "nonmanifold_edges", (json_int_t)ps->stats.nonmanifold_edges,
							      "misoriented_edges", (json_int_t)ps->stats.misoriented_edges));
			json_object_set_new(s, "centroid_lps_mm",
					    json_pack("[f,f,f]", ps->stats.centroid[0],
						      ps->stats.centroid[1], ps->stats.centroid[2]));
			json_object_set_new(s, "segment_ms", json_real(ps->segment_ms));
			json_object_set_new(s, "mesh_ms", json_real(ps->mesh_ms));
		} else {
			json_object_set_new(s, "skipped_reason", json_string(ps->skipped_reason));
		}
		json_array_append_new(structures, s);
	}
	for (int st = 0; st < PIPELINE_NSTAGES; st++)
		json_object_set_new(timings, stage_names[st], json_real(res->ms[st]));
	return json_pack("{s:s, s:s, s:s, s:I, s:{s:[I,I,I], s:[f,f,f], s:[ffff ffff ffff ffff], s:I},"
			 " s:b, s:s, s:o, s:o, s:I, s:s}",
			 "series_instance_uid", res->series_uid,
			 "study_instance_uid", res->study_uid,
			 "modality", res->modality,
			 "series_in_folder", (json_int_t)res->series_in_folder,
			 "volume",
			 "dims", (json_int_t)res->dims[0], (json_int_t)res->dims[1],
			 (json_int_t)res->dims[2],
			 "spacing_mm", res->spacing_mm[0], res->spacing_mm[1], res->spacing_mm[2],
			 "affine_lps_mm",
			 res->affine[0], res->affine[1], res->affine[2], res->affine[3],
			 res->affine[4], res->affine[5], res->affine[6], res->affine[7],
			 res->affine[8], res->affine[9], res->affine[10], res->affine[11],
			 res->affine[12], res->affine[13], res->affine[14], res->affine[15],
			 "slices", (json_int_t)res->slices,
			 "contrast_enhanced", res->contrast,
			 "note", res->note,
			 "structures", structures,
			 "timings_ms", timings,
			 "peak_rss_bytes", (json_int_t)res->peak_rss_bytes,
			 "generator", "recon3d " R3D_VERSION);
}

bool pipeline_write_outputs(struct r3d_err *err, const char *out_dir, struct pipeline_result *res)
{
	struct mesh_obj_part parts[PIPELINE_MAX_STRUCTURES];
	size_t nparts = 0;
	char path[4096], mtl[4096], tmp[4200];
	double t = clock_mono_s();
	json_t *report = NULL;
	bool ok = false;

	if (!mkdir_p(err, out_dir))
		return false;
	for (size_t i = 0; i < res->nstructures; i++) {
		struct pipeline_structure *ps = &res->structures[i];
		if (ps->mesh == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s.stl", out_dir, ps->name);
		if (!mesh_stl_write(err, path, ps->mesh, ps->name))
			return false;
		snprintf(path, sizeof(path), "%s/%s.mesh", out_dir, ps->name);
		if (!mesh_bin_write(err, path, ps->mesh))
			return false;
		parts[nparts].name = ps->name;
		parts[nparts].mesh = ps->mesh;
		memcpy(parts[nparts].rgb, ps->rgb, sizeof(parts[nparts].rgb));
		nparts++;
	}
	if (nparts > 0) {
		snprintf(path, sizeof(path), "%s/model.obj", out_dir);
		snprintf(mtl, sizeof(mtl), "%s/model.mtl", out_dir);
		if (!mesh_obj_write(err, path, mtl, parts, nparts))
			return false;
	}
	res->ms[PIPELINE_WRITE] = (clock_mono_s() - t) * 1e3;
	res->peak_rss_bytes = peak_rss();
	report = report_json(res);
	if (report == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "cannot build report.json");
	snprintf(path, sizeof(path), "%s/report.json", out_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (json_dump_file(report, tmp, JSON_INDENT(2) | JSON_ENSURE_ASCII) != 0) {
		r3d_err_set(err, R3D_EIO, "cannot write %s", tmp);
		goto out;
	}
	if (rename(tmp, path) != 0) {
		r3d_err_set(err, R3D_EIO, "cannot rename %s", tmp);
		unlink(tmp);
		goto out;
	}
	ok = true;
out:
	json_decref(report);
	return ok;
}

void pipeline_result_free(struct pipeline_result *res)
{
	for (size_t i = 0; i < res->nstructures; i++) {
		mesh_destroy(res->structures[i].mesh);
		res->structures[i].mesh = NULL;
		free(res->structures[i].seg_bits);
		res->structures[i].seg_bits = NULL;
	}
	free(res->seg.slices);
	memset(&res->seg, 0, sizeof(res->seg));
}

bool pipeline_write_segmentation(struct r3d_err *err, const struct pipeline_result *res,
				 const struct bridge_export_info *info, const char *path)
{
	struct bridge_seg_structure st[PIPELINE_MAX_STRUCTURES];
	struct bridge_seg_slice *sl = NULL;
	size_t nst = 0;
	bool ok = false;

	if (res->seg.nslices == 0)
		return r3d_err_set(err, R3D_EINVAL, "segmentation: the masks were not kept");
	for (size_t i = 0; i < res->nstructures; i++) {
		const struct pipeline_structure *ps = &res->structures[i];
		if (ps->mesh == NULL || ps->seg_bits == NULL)
			continue;
		memset(&st[nst], 0, sizeof(st[nst]));
		st[nst].name = ps->name;
		memcpy(st[nst].rgb, ps->rgb, sizeof(st[nst].rgb));
		st[nst].bits = ps->seg_bits;
		nst++;
	}
	if (nst == 0)
		return r3d_err_set(err, R3D_EINVAL, "segmentation: no structure was meshed");
	sl = calloc(res->seg.nslices, sizeof(*sl));
	if (sl == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "segmentation: out of memory");
	for (size_t k = 0; k < res->seg.nslices; k++) {
		sl[k].sop_class_uid = res->seg.slices[k].sop_class_uid;
		sl[k].sop_instance_uid = res->seg.slices[k].sop_instance_uid;
		sl[k].frame_number = res->seg.slices[k].frame_number;
		memcpy(sl[k].position, res->seg.slices[k].position, sizeof(sl[k].position));
	}
	struct bridge_seg_input in = {
		.slices = sl,
		.nslices = res->seg.nslices,
		.rows = res->seg.rows,
		.columns = res->seg.columns,
		.pixel_spacing = {res->seg.pixel_spacing[0], res->seg.pixel_spacing[1]},
		.slice_thickness = res->seg.slice_thickness,
		.structures = st,
		.nstructures = nst,
	};
	memcpy(in.orientation, res->seg.orientation, sizeof(in.orientation));
	ok = bridge_write_segmentation(err, path, info, &in);
	free(sl);
	return ok;
}
