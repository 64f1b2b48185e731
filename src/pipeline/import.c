/*
 * import.c: the structures of a segmentation object another system made (a
 * DICOM Segmentation or an RT Structure Set): each segment or ROI becomes
 * one pipeline structure whose catalogue entry carries the object's own
 * label, colour and codes, meshed on the object's own grid (segimport.h):
 * a binary or label-map segment and a filled RT ROI as a mask (terrace-free
 * smoothing kept within each voxel cell), a fractional segment through half
 * its maximum as a grey-level field. The rest of the pipeline (exporters,
 * previews, report.json) reads these entries as it reads the catalogue's.
 * Any thread; one run at a time per result.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline_int.h"
#include "r3d/segimport.h"
#include "r3d/segnifti.h"
#include "r3d/volume.h"
#include "r3d/segobj.h"
#include "r3d/util.h"

#define IMPORT_DEFAULT_TRIANGLES 200000u  /* per segment: an organ, not a skeleton */
#define IMPORT_RT_REFINE 2                /* sub-pixels per CT pixel and axis for RT contours */

/* Colours for segments that carry none: distinct, saturated, readable on
 * both the 3D page's dark background and a print preview's light one. */
static const float import_palette[][3] = {
	{0.90f, 0.30f, 0.24f}, {0.18f, 0.55f, 0.85f}, {0.20f, 0.70f, 0.35f}, {0.95f, 0.70f, 0.10f},
	{0.60f, 0.35f, 0.75f}, {0.10f, 0.75f, 0.75f}, {0.85f, 0.45f, 0.65f}, {0.55f, 0.60f, 0.20f},
};

const char *import_kind_name(int kind)
{
	switch ((enum segobj_kind)kind) {
	case SEGOBJ_SEG_BINARY:
		return "SEG (binary)";
	case SEGOBJ_SEG_FRACTIONAL:
		return "SEG (fractional)";
	case SEGOBJ_SEG_LABELMAP:
		return "Label Map SEG";
	case SEGOBJ_RTSTRUCT:
		return "RTSTRUCT";
	}
	return "?";
}

/* A SEG whose frames are not all placed in patient space (no Plane
 * Position (Patient)): none of it can be meshed, since the planes are made of
 * all frames. */
static bool import_check_placed(struct r3d_err *err, const struct segobj *s)
{
	size_t missing = 0, first = 0;

	if (s->kind == SEGOBJ_RTSTRUCT)
		return true;
	for (size_t f = 0; f < s->nframes; f++) {
		if (!s->frames[f].has_position && missing++ == 0)
			first = f;
	}
	if (missing == 0)
		return true;
	char name[SEGIMPORT_NAME_MAX] = "";
	if (s->kind != SEGOBJ_SEG_LABELMAP)
		segimport_name(s, s->frames[first].segment, name);
	return r3d_err_set(err, R3D_EINVAL, "the %s %s: %zu of its %zu frames have no Plane Position "
			   "(Patient) (the first: frame %zu%s%s); without it a frame cannot be placed",
			   import_kind_name(s->kind), s->sop_instance_uid, missing, s->nframes, first + 1,
			   name[0] ? ", " : "", name);
}

/*
 * Refuses an object that cannot be meshed on the CT series ct, with the
 * reason: one made on images that are not CT (its references say so), on
 * another series (Referenced Series UID, or else the Frame of Reference
 * UID), in another frame of reference than the series it names, on more
 * images of that series than the series given holds (an incomplete
 * series), or a SEG whose frames are not all placed (no Plane Position).
 */
bool import_check_source(struct r3d_err *err, const struct segobj *s,
			 const struct bridge_series_info *ct)
{
	const char *kind = import_kind_name(s->kind);
	const char *made = s->kind == SEGOBJ_RTSTRUCT ? "drawn" : "made";

	if (s->source_modality[0] != '\0' && strcmp(s->source_modality, "CT") != 0)
		return r3d_err_set(err, R3D_EINVAL, "the %s %s was %s on %s images (series %s), not "
				   "CT: recon3d meshes segmentations of CT series", kind,
				   s->sop_instance_uid, made, s->source_modality,
				   s->referenced_series_uid[0] ? s->referenced_series_uid : "not named");
	if (s->referenced_series_uid[0] != '\0') {
		if (strcmp(s->referenced_series_uid, ct->series_uid) != 0)
			return r3d_err_set(err, R3D_EINVAL, "the %s %s refers to series %s, not to the "
					   "CT series %s", kind, s->sop_instance_uid,
					   s->referenced_series_uid, ct->series_uid);
		/* The series it names, but its coordinates in another frame of
		 * reference: they are not the series' patient coordinates. */
		if (s->frame_of_reference_uid[0] != '\0' && ct->frame_of_reference_uid[0] != '\0' &&
		    strcmp(s->frame_of_reference_uid, ct->frame_of_reference_uid) != 0)
			return r3d_err_set(err, R3D_EINVAL, "the %s names this CT series but is in frame "
					   "of reference %s, the series in %s: its coordinates are not "
					   "the series'", kind, s->frame_of_reference_uid,
					   ct->frame_of_reference_uid);
		if (s->nseries_instances > ct->instances)
			return r3d_err_set(err, R3D_EINVAL, "the %s %s was %s on %zu images of this CT "
					   "series; the folder holds only %zu image%s of it: the series is "
					   "incomplete (give all its images)", kind, s->sop_instance_uid,
					   made, s->nseries_instances, ct->instances,
					   ct->instances == 1 ? "" : "s");
		return import_check_placed(err, s);
	}
	if (s->frame_of_reference_uid[0] != '\0' && ct->frame_of_reference_uid[0] != '\0') {
		if (strcmp(s->frame_of_reference_uid, ct->frame_of_reference_uid) != 0)
			return r3d_err_set(err, R3D_EINVAL, "the %s names no series, and its frame of "
					   "reference %s is not the CT series' (%s)", kind,
					   s->frame_of_reference_uid, ct->frame_of_reference_uid);
		return import_check_placed(err, s);
	}
	return r3d_err_set(err, R3D_EINVAL, "the %s %s names neither the series nor the frame of "
			   "reference it was made on", kind, s->sop_instance_uid);
}

bool import_check_grid(struct r3d_err *err, const struct segobj *s, const struct volume *v)
{
	double inv[3][3], det, lo[3], hi[3], row[3], col[3], nrm[3];
	const double (*a)[4] = v->affine;

	det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
	      a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
	      a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
	if (fabs(det) < 1e-12)
		return r3d_err_set(err, R3D_EINVAL, "the CT volume's affine is singular");
	for (int r = 0; r < 3; r++) {
		for (int c = 0; c < 3; c++) {
			int r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3;
			inv[r][c] = (a[r1][c1] * a[r2][c2] - a[r1][c2] * a[r2][c1]) / det;
		}
	}
	/* Its axes against the volume's: the rows, the columns, the normal. */
	for (int k = 0; k < 3; k++) {
		row[k] = a[k][0] / v->spacing[0];
		col[k] = a[k][1] / v->spacing[1];
	}
	nrm[0] = row[1] * col[2] - row[2] * col[1];
	nrm[1] = row[2] * col[0] - row[0] * col[2];
	nrm[2] = row[0] * col[1] - row[1] * col[0];
	const double *sr = s->orientation, *sc = s->orientation + 3;
	double cr = fabs(sr[0] * row[0] + sr[1] * row[1] + sr[2] * row[2]);
	double cc = fabs(sc[0] * col[0] + sc[1] * col[1] + sc[2] * col[2]);
	double sn[3] = {sr[1] * sc[2] - sr[2] * sc[1], sr[2] * sc[0] - sr[0] * sc[2],
			sr[0] * sc[1] - sr[1] * sc[0]};
	double cn = fabs(sn[0] * nrm[0] + sn[1] * nrm[1] + sn[2] * nrm[2]);
	double cos1 = cos(1.0 * M_PI / 180.0);
	if (!(cr >= cos1 && cc >= cos1) && !(cn >= cos1))
		return r3d_err_set(err, R3D_EINVAL, "the label map's axes are not the CT series': its "
				   "slice normal is %.1f degrees from the CT's, its rows %.1f and its "
				   "columns %.1f (at most 1): a label map of another space",
				   acos(fmin(cn, 1.0)) * 180.0 / M_PI, acos(fmin(cr, 1.0)) * 180.0 / M_PI,
				   acos(fmin(cc, 1.0)) * 180.0 / M_PI);
	/* Every frame's corner voxels, in the volume's voxel index. */
	for (int k = 0; k < 3; k++) {
		lo[k] = INFINITY;
		hi[k] = -INFINITY;
	}
	for (size_t f = 0; f < s->nframes; f++) {
		const struct segobj_frame *fr = &s->frames[f];
		for (int corner = 0; corner < 4; corner++) {
			double ci = (corner & 1) ? s->columns - 1.0 : 0, rj = (corner & 2) ? s->rows - 1.0 : 0;
			double p[3], d[3];
			for (int k = 0; k < 3; k++) {
				p[k] = fr->position[k] + ci * s->pixel_spacing[1] * sr[k] +
				       rj * s->pixel_spacing[0] * sc[k];
				d[k] = p[k] - a[k][3];
			}
			for (int r = 0; r < 3; r++) {
				double idx = inv[r][0] * d[0] + inv[r][1] * d[1] + inv[r][2] * d[2];
				lo[r] = fmin(lo[r], idx);
				hi[r] = fmax(hi[r], idx);
			}
		}
	}
	double n[3] = {(double)v->nx, (double)v->ny, (double)v->nz};
	for (int r = 0; r < 3; r++) {
		if (lo[r] < -1.0 || hi[r] > n[r])
			return r3d_err_set(err, R3D_EINVAL, "the label map does not lie on the CT series: its "
					   "voxels span %.1f..%.1f along the CT's %s axis, which has %zu "
					   "voxels (a label map of another series?)", lo[r], hi[r],
					   r == 0 ? "row" : r == 1 ? "column" : "slice",
					   r == 0 ? v->nx : r == 1 ? v->ny : v->nz);
	}
	return true;
}

/* A catalogue key from a label: lower case, runs of anything else than
 * [a-z0-9] as one '_', a letter first ("seg_" before a digit), at most
 * STRUCTURE_KEY_MAX - 1 characters, unique among the structures so far
 * ("_2", "_3", ... when taken). */
static void import_key(char key[STRUCTURE_KEY_MAX], const char *label, unsigned number,
		       const struct pipeline_result *res)
{
	char base[STRUCTURE_KEY_MAX] = "";
	size_t n = 0;
	bool sep = false;

	for (const char *p = label; *p != '\0' && n < sizeof(base) - 1; p++) {
		unsigned char c = (unsigned char)*p;
		if (isalnum(c) && c < 0x80) {
			if (sep && n > 0 && n < sizeof(base) - 2)
				base[n++] = '_';
			sep = false;
			base[n++] = (char)tolower(c);
		} else {
			sep = true;
		}
	}
	base[n] = '\0';
	if (n == 0)
		snprintf(base, sizeof(base), "segment_%u", number);
	else if (!isalpha((unsigned char)base[0])) {
		char tmp[STRUCTURE_KEY_MAX];
		snprintf(tmp, sizeof(tmp), "seg_%s", base);
		memcpy(base, tmp, sizeof(base));
	}
	snprintf(key, STRUCTURE_KEY_MAX, "%s", base);
	for (unsigned suffix = 2;; suffix++) {
		bool taken = false;
		for (size_t i = 0; i < res->nstructures && !taken; i++)
			taken = strcmp(res->structures[i].def.key, key) == 0;
		if (!taken)
			return;
		char tail[16];
		int tl = snprintf(tail, sizeof(tail), "_%u", suffix);
		size_t keep = strlen(base);
		if (keep + (size_t)tl > STRUCTURE_KEY_MAX - 1)
			keep = STRUCTURE_KEY_MAX - 1 - (size_t)tl;
		snprintf(key, STRUCTURE_KEY_MAX, "%.*s%s", (int)keep, base, tail);
	}
}

static void import_code(struct structure_code *to, const struct segobj_code *from)
{
	snprintf(to->value, sizeof(to->value), "%s", from->value);
	snprintf(to->scheme, sizeof(to->scheme), "%s", from->scheme);
	snprintf(to->meaning, sizeof(to->meaning), "%s", from->meaning);
}

static void import_tscode(struct structure_code *to, const struct totalseg_code *from)
{
	snprintf(to->value, sizeof(to->value), "%s", from->value);
	snprintf(to->scheme, sizeof(to->scheme), "%s", from->scheme);
	snprintf(to->meaning, sizeof(to->meaning), "%s", from->meaning);
}

/* The catalogue entry of one segment or ROI. */
static void import_def(struct structure_def *d, const struct segobj *s,
		       const struct segobj_segment *seg, size_t index,
		       const struct pipeline_result *res)
{
	char label[SEGOBJ_LABEL_MAX];

	memset(d, 0, sizeof(*d));
	if (seg->label[0] != '\0')
		snprintf(label, sizeof(label), "%s", seg->label);
	else
		snprintf(label, sizeof(label), "%s %u", s->kind == SEGOBJ_RTSTRUCT ? "ROI" : "segment",
			 seg->number);
	/* Printable ASCII only: the label names files' headers and DICOM LO values. */
	for (char *p = label; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '_';
	}
	import_key(d->key, label, seg->number, res);
	snprintf(d->label, sizeof(d->label), "%.*s", (int)sizeof(d->label) - 1, label);   /* at most 48 */
	d->source = STRUCTURE_MASK;
	if (seg->has_color) {
		memcpy(d->rgb, seg->rgb, sizeof(d->rgb));
	} else {
		memcpy(d->rgb, import_palette[index % (sizeof(import_palette) / sizeof(import_palette[0]))],
		       sizeof(d->rgb));
	}
	const struct totalseg_class *ts = totalseg_find(seg->label);
	if (seg->category.value[0] != '\0' && seg->type.value[0] != '\0') {
		import_code(&d->category, &seg->category);
		import_code(&d->type, &seg->type);
		import_code(&d->type_modifier, &seg->type_modifier);
		import_code(&d->region, &seg->region);
		import_code(&d->region_modifier, &seg->region_modifier);
		/* TotalSegmentator puts the side only in its class names
		 * (kidney_left): its table gives it back as a modifier. */
		if (ts != NULL && d->type_modifier.value[0] == '\0' &&
		    ts->laterality_source == TOTALSEG_LAT_TYPE_MODIFIER &&
		    strcmp(ts->type.value, d->type.value) == 0)
			import_tscode(&d->type_modifier, &ts->laterality);
		if (ts != NULL && d->region_modifier.value[0] == '\0' &&
		    ts->laterality_source == TOTALSEG_LAT_REGION_MODIFIER && d->region.value[0] != '\0')
			import_tscode(&d->region_modifier, &ts->laterality);
	} else if (ts != NULL) {
		import_tscode(&d->category, &ts->category);
		import_tscode(&d->type, &ts->type);
		import_tscode(&d->type_modifier, &ts->type_modifier);
		import_tscode(&d->region, &ts->region);
		import_tscode(&d->region_modifier, &ts->region_modifier);
	} else {
		/* An RT ROI (or a segment) without codes: the generic concept, as
		 * a site structure has until it is given codes. */
		snprintf(d->category.value, sizeof(d->category.value), "85756007");
		snprintf(d->category.scheme, sizeof(d->category.scheme), "SCT");
		snprintf(d->category.meaning, sizeof(d->category.meaning), "Tissue");
		d->type = d->category;
	}
	d->max_triangles = IMPORT_DEFAULT_TRIANGLES;
	d->enabled = true;
}

/* Meshes one grid into ps. */
static bool import_mesh_grid(struct r3d_err *err, const struct segimport_grid *g,
			     const struct pipeline_options *o, struct mesh_iso_work *work,
			     struct pipeline_structure *ps, struct pipeline_result *res)
{
	struct mesh_volume mv = {g->field, MESH_SCALAR_U8, g->nx, g->ny, g->nz, NULL, 0, 0};
	struct mesh_build_params bp;
	double t0 = clock_mono_s();

	mesh_build_defaults(&bp);
	bp.threads = o->threads;
	if (g->fractional) {
		bp.iso = 127.5;
	} else {
		bp.iso = 0.5;
		mesh_build_mask_smoothing(&bp);
	}
	bp.smooth = o->smooth;
	bp.smoothing.threads = o->threads;
	bp.max_tri = o->decimate ? ps->def.max_triangles : 0;
	bp.max_error_mm = o->max_error_mm;
	bp.error_target_mm = o->error_target_mm;
	/* In-plane axes; the third column steps a single plane. */
	double step = g->nz > 1 ? 0 : 1;
	for (int r = 0; r < 3; r++) {
		bp.affine[4 * r + 0] = g->row_dir[r] * g->dx;
		bp.affine[4 * r + 1] = g->col_dir[r] * g->dy;
		bp.affine[4 * r + 2] = g->normal[r] * (step > 0 ? fmin(g->dx, g->dy) : 1);
		bp.affine[4 * r + 3] = g->plane_origin[r];
	}
	bp.affine[15] = 1;
	bp.planes = g->plane_origin;
	bp.nplanes = g->nz;
	ps->grey = g->fractional;
	ps->range_lo = ps->range_hi = NAN;
	if (!mesh_build(err, &mv, &bp, work, &ps->mesh, &ps->stats, &ps->mesh_times))
		return r3d_err_prefix(err, "meshing %s", ps->def.key);
	pipeline_note_decimation(res, ps, &bp);
	ps->mesh_ms = (clock_mono_s() - t0) * 1e3;
	return true;
}

/* Why an RT ROI has nothing to fill, or "" when it has closed contours. */
static void import_rt_unusable(const struct segobj *s, const struct segobj_segment *seg,
			       char *why, size_t n)
{
	char name[SEGIMPORT_NAME_MAX];

	why[0] = '\0';
	if (seg->contour_types & (1u << SEGOBJ_CLOSED_PLANAR))
		return;
	segimport_name(s, seg->number, name);
	if (seg->ncontours == 0) {
		snprintf(why, n, "%s: no contours (nothing to fill)", name);
		return;
	}
	char only[48] = "";
	static const struct {
		enum segobj_contour_type type;
		const char *name;
	} types[] = {
		{SEGOBJ_POINT, "POINT"},
		{SEGOBJ_OPEN_PLANAR, "OPEN_PLANAR"},
		{SEGOBJ_OPEN_NONPLANAR, "OPEN_NONPLANAR"},
		{SEGOBJ_OTHER, "other"},
	};
	for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
		if (!(seg->contour_types & (1u << types[k].type)))
			continue;
		size_t l = strlen(only);
		snprintf(only + l, sizeof(only) - l, "%s%s", l > 0 ? " " : "", types[k].name);
	}
	snprintf(why, n, "%s: no CLOSED_PLANAR contour (only %s); nothing encloses a volume", name,
		 only);
}

/* Why a segment or ROI whose grid holds no voxel has none. */
static void import_no_voxels(const struct segobj *s, const struct segobj_segment *seg,
			     const struct segimport_plane_grid *ct, size_t frames, char *why,
			     size_t n)
{
	char name[SEGIMPORT_NAME_MAX];

	segimport_name(s, seg->number, name);
	if (s->kind == SEGOBJ_RTSTRUCT)
		snprintf(why, n, "%s: no voxels (its contours are too small to hold a centre of the "
			 "%.2f x %.2f mm fill grid)", name, ct->pixel_spacing[1] / ct->refine,
			 ct->pixel_spacing[0] / ct->refine);
	else if (s->kind == SEGOBJ_SEG_LABELMAP)
		snprintf(why, n, "%s: no voxels (no pixel of the label map has the value %u)", name,
			 seg->number);
	else if (frames == 0)
		snprintf(why, n, "%s: no voxels (no frame of the Segmentation belongs to it)", name);
	else
		snprintf(why, n, "%s: no voxels (its %zu frame%s %s empty)", name, frames,
			 frames == 1 ? "" : "s", frames == 1 ? "is" : "are all");
}

/* The frames of SEG segment `number` (a label map's: all). */
static size_t import_frames_of(const struct segobj *s, unsigned number)
{
	size_t n = 0;

	if (s->kind == SEGOBJ_SEG_LABELMAP)
		return s->nframes;
	for (size_t f = 0; f < s->nframes; f++)
		n += s->frames[f].segment == number;
	return n;
}

bool import_mesh(struct r3d_err *err, const struct segobj *s, const struct segimport_plane_grid *ct,
		 const struct pipeline_options *o, struct mesh_iso_work *work,
		 struct pipeline_result *res)
{
	size_t wanted = 0;

	for (size_t i = 0; i < s->nsegments; i++)
		wanted += !(s->kind == SEGOBJ_SEG_LABELMAP && s->segments[i].number == 0);
	if (res->nstructures + wanted > PIPELINE_MAX_STRUCTURES)
		return r3d_err_set(err, R3D_EINVAL, "the %s has %zu segments; with the %zu other "
				   "structures asked for that is more than the %d structures of one "
				   "job (PIPELINE_MAX_STRUCTURES)", import_kind_name(s->kind),
				   wanted, res->nstructures, PIPELINE_MAX_STRUCTURES);
	for (size_t i = 0; i < s->nsegments; i++) {
		const struct segobj_segment *seg = &s->segments[i];
		struct pipeline_structure *ps = &res->structures[res->nstructures];
		struct segimport_grid g;
		struct r3d_err e2;
		double t0 = clock_mono_s();
		size_t frames = 0;
		bool made;

		if (s->kind == SEGOBJ_SEG_LABELMAP && seg->number == 0)
			continue;   /* the background */
		memset(ps, 0, sizeof(*ps));
		import_def(&ps->def, s, seg, i, res);
		ps->range_lo = ps->range_hi = NAN;
		res->nstructures++;
		memset(&g, 0, sizeof(g));
		if (s->kind == SEGOBJ_RTSTRUCT) {
			import_rt_unusable(s, seg, ps->skipped_reason, sizeof(ps->skipped_reason));
			if (ps->skipped_reason[0] != '\0')
				continue;
			if (ct == NULL) {
				snprintf(ps->skipped_reason, sizeof(ps->skipped_reason),
					 "no CT pixel grid to fill the contours on");
				continue;
			}
			made = segimport_rtstruct_grid(&e2, s, seg->number, ct, &g);
		} else {
			frames = import_frames_of(s, seg->number);
			if (frames == 0) {
				/* A segment the Segment Sequence lists but no frame
				 * holds: empty, as writers leave an empty segment out. */
				import_no_voxels(s, seg, ct, 0, ps->skipped_reason,
						 sizeof(ps->skipped_reason));
				continue;
			}
			made = segimport_seg_grid(&e2, s, seg->number, &g);
		}
		ps->segment_ms = (clock_mono_s() - t0) * 1e3;
		if (!made) {
			/* This segment is unusable as given; the others are still meshed. */
			snprintf(ps->skipped_reason, sizeof(ps->skipped_reason), "%.*s",
				 (int)sizeof(ps->skipped_reason) - 1, e2.msg);
			continue;
		}
		if (g.voxels == 0) {
			import_no_voxels(s, seg, ct, frames, ps->skipped_reason,
					 sizeof(ps->skipped_reason));
			segimport_grid_free(&g);
			continue;
		}
		bool ok = import_mesh_grid(err, &g, o, work, ps, res);
		segimport_grid_free(&g);
		if (!ok)
			return false;
	}
	return true;
}
