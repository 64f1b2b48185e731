/*
 * segimport.c: a DICOM Segmentation's segment (BINARY, FRACTIONAL or
 * LABELMAP, read into segobj.h records) to one grid on the SEG's own planes
 * (segimport.h), and what the RT Structure Set fill (contour.c) shares with
 * it: axes, checked allocation, padding planes. Any thread; no state.
 *
 * Planes: every frame of the object (all segments) is projected on the
 * normal (row x column cosines); the projections are sorted and a new plane
 * starts where one is more than SEGIMPORT_PLANE_TOLERANCE_MM beyond the
 * first frame of the current plane. A plane's reference frame is its frame
 * with the lowest frame index; plane_origin comes from that frame's Image
 * Position exactly (not a mean), so unevenly spaced planes keep their
 * positions.
 *
 * In-plane lattice: within one plane every frame must lie a whole number of
 * pixels (within SEGIMPORT_PLANE_TOLERANCE_MM in mm, per axis) from the
 * plane's reference frame, or the object is refused. Between planes any
 * in-plane shift is kept: each plane is put at the whole-pixel offset
 * nearest to its shift from frame 1 and the remaining fraction stays in its
 * plane_origin (a sheared stack, such as a SEG made on a gantry-tilted CT,
 * is represented as it is, not resampled).
 *
 * Frame index: (column c, row r) of a frame is voxel (i0 + c, j0 + r) of
 * its plane, i along row_dir (dx = pixel_spacing[1]), j along col_dir
 * (dy = pixel_spacing[0]); memory order x (i) fastest; LPS mm.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/segimport.h"
#include "r3d/util.h"
#include "segimport_internal.h"

/* ------------------------------------------------------------------ */
/* Shared with contour.c                                               */
/* ------------------------------------------------------------------ */

static double dot3(const double a[3], const double b[3])
{
	return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

bool segimport_axes(struct r3d_err *err, const char *what, const double o[6],
		    struct segimport_grid *g)
{
	const double *r = o, *c = o + 3;
	double nr, nc, d, len;

	for (int i = 0; i < 6; i++) {
		if (!isfinite(o[i]))
			return r3d_err_set(err, R3D_EINVAL, "%s: orientation has a non-finite value",
					   what);
	}
	nr = sqrt(dot3(r, r));
	nc = sqrt(dot3(c, c));
	d = dot3(r, c);
	if (fabs(nr - 1.0) > SEGIMPORT_ORIENT_TOLERANCE || fabs(nc - 1.0) > SEGIMPORT_ORIENT_TOLERANCE ||
	    fabs(d) > SEGIMPORT_ORIENT_TOLERANCE)
		return r3d_err_set(err, R3D_EINVAL,
				   "%s: orientation %g\\%g\\%g\\%g\\%g\\%g is not two orthogonal unit "
				   "vectors (norms %.6f and %.6f, dot %.6f)",
				   what, o[0], o[1], o[2], o[3], o[4], o[5], nr, nc, d);
	/* Gram-Schmidt: the row stays as given, the column loses its tiny
	 * row component; both exactly unit. */
	for (int i = 0; i < 3; i++)
		g->row_dir[i] = r[i] / nr;
	d = dot3(c, g->row_dir);
	for (int i = 0; i < 3; i++)
		g->col_dir[i] = c[i] - d * g->row_dir[i];
	len = sqrt(dot3(g->col_dir, g->col_dir));
	for (int i = 0; i < 3; i++)
		g->col_dir[i] /= len;
	g->normal[0] = g->row_dir[1] * g->col_dir[2] - g->row_dir[2] * g->col_dir[1];
	g->normal[1] = g->row_dir[2] * g->col_dir[0] - g->row_dir[0] * g->col_dir[2];
	g->normal[2] = g->row_dir[0] * g->col_dir[1] - g->row_dir[1] * g->col_dir[0];
	return true;
}

bool segimport_grid_alloc(struct r3d_err *err, const char *what, struct segimport_grid *g,
			  uint64_t nx, uint64_t ny, uint64_t nz)
{
	size_t n, nb;

	if (nx > SIZE_MAX || ny > SIZE_MAX || nz > SIZE_MAX ||
	    !size_mul3((size_t)nx, (size_t)ny, (size_t)nz, &n) || n > SEGIMPORT_MAX_VOXELS)
		return r3d_err_set(err, R3D_EINVAL,
				   "%s: its grid would be %llu x %llu x %llu voxels, more than "
				   "the limit of %llu (SEGIMPORT_MAX_VOXELS)",
				   what, (unsigned long long)nx, (unsigned long long)ny,
				   (unsigned long long)nz, (unsigned long long)SEGIMPORT_MAX_VOXELS);
	if (n == 0 || !size_mul3((size_t)nz, 3, sizeof(double), &nb))
		return r3d_err_set(err, R3D_EINVAL, "%s: empty or oversized grid", what);
	g->plane_origin = malloc(nb);
	if (g->plane_origin == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "%s: cannot allocate %zu plane origins", what,
				   (size_t)nz);
	g->field = bigbuf_alloc(err, n);
	if (g->field == NULL) {
		free(g->plane_origin);
		g->plane_origin = NULL;
		return r3d_err_prefix(err, "%s", what);
	}
	g->nx = (size_t)nx;
	g->ny = (size_t)ny;
	g->nz = (size_t)nz;
	return true;
}

void segimport_fill_origins(struct segimport_grid *g, const double *real, size_t nplanes,
			    long first_plane, double single_step_mm)
{
	for (size_t k = 0; k < g->nz; k++) {
		long p = first_plane + (long)k;
		double *o = g->plane_origin + 3 * k;

		if (p >= 0 && (size_t)p < nplanes) {
			memcpy(o, real + 3 * (size_t)p, 3 * sizeof(double));
			continue;
		}
		/* A padding plane, one beyond either end. */
		const double *end = real + (p < 0 ? 0 : 3 * (nplanes - 1));
		for (int a = 0; a < 3; a++) {
			double step;
			if (nplanes >= 2)
				step = p < 0 ? real[3 + a] - real[a]
					     : real[3 * (nplanes - 1) + a] - real[3 * (nplanes - 2) + a];
			else
				step = single_step_mm * g->normal[a];
			o[a] = p < 0 ? end[a] - step : end[a] + step;
		}
	}
}

void segimport_name(const struct segobj *s, unsigned number, char out[SEGIMPORT_NAME_MAX])
{
	const char *what = s != NULL && s->kind == SEGOBJ_RTSTRUCT ? "ROI" : "segment";
	const char *label = "";
	size_t n;

	for (size_t m = 0; s != NULL && m < s->nsegments; m++) {
		if (s->segments[m].number == number) {
			label = s->segments[m].label;
			break;
		}
	}
	if (label[0] == '\0') {
		snprintf(out, SEGIMPORT_NAME_MAX, "%s %u", what, number);
		return;
	}
	n = strlen(label);
	if (n <= SEGIMPORT_NAME_LABEL_MAX) {
		snprintf(out, SEGIMPORT_NAME_MAX, "%s %u '%s'", what, number, label);
		return;
	}
	/* Cut before a UTF-8 continuation byte's character, not inside it. */
	n = SEGIMPORT_NAME_LABEL_MAX;
	while (n > 0 && ((unsigned char)label[n] & 0xc0) == 0x80)
		n--;
	snprintf(out, SEGIMPORT_NAME_MAX, "%s %u '%.*s...'", what, number, (int)n, label);
}

void segimport_grid_free(struct segimport_grid *g)
{
	if (g == NULL)
		return;
	if (g->field != NULL)
		bigbuf_free(g->field, g->nx * g->ny * g->nz);
	free(g->plane_origin);
	memset(g, 0, sizeof(*g));
}

/* ------------------------------------------------------------------ */
/* SEG                                                                  */
/* ------------------------------------------------------------------ */

/* One frame's place on the grid. */
struct seg_place {
	double w;        /* its Image Position along the normal, mm */
	size_t frame;    /* index into s->frames */
	size_t plane;    /* after sorting */
	int64_t i, j;    /* where its pixel (0, 0) is in the global in-plane index */
};

/* One plane. */
struct seg_plane {
	size_t ref;      /* its reference frame: the lowest frame index on it */
	int64_t i, j;    /* the reference frame's global in-plane index */
};

static int seg_place_cmp(const void *pa, const void *pb)
{
	const struct seg_place *a = pa, *b = pb;

	if (a->w != b->w)
		return a->w < b->w ? -1 : 1;
	return a->frame < b->frame ? -1 : a->frame > b->frame;
}

/* The field value (0..255) of a stored pixel for this segment. */
static uint8_t seg_value(const struct segobj *s, unsigned segment, uint8_t v)
{
	switch (s->kind) {
	case SEGOBJ_SEG_FRACTIONAL:
		return (uint8_t)((510ull * v + s->max_fractional) / (2ull * s->max_fractional));
	case SEGOBJ_SEG_LABELMAP:
		return v == segment;
	default:
		return v != 0;
	}
}

static bool seg_frame_in_segment(const struct segobj *s, const struct segobj_frame *f,
				 unsigned segment)
{
	return s->kind == SEGOBJ_SEG_LABELMAP || f->segment == segment;
}

/* Sorts the frames along the normal into planes and puts every frame on the
 * in-plane lattice of its plane. places[] is indexed by frame after the
 * call; planes[] has *nplanes entries. */
static bool seg_planes(struct r3d_err *err, const struct segobj *s, const char *name,
		       const struct segimport_grid *g, struct seg_place *places,
		       struct seg_plane *planes, size_t *nplanes)
{
	const double *R = s->frames[0].position;
	size_t n = s->nframes, np = 0;
	double anchor = 0.0;
	bool ok = false;
	struct seg_place *sorted = malloc(n * sizeof(*sorted));

	if (sorted == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "%s: cannot allocate %zu frames", name, n);
	for (size_t f = 0; f < n; f++) {
		sorted[f].w = dot3(s->frames[f].position, g->normal);
		sorted[f].frame = f;
	}
	qsort(sorted, n, sizeof(*sorted), seg_place_cmp);
	for (size_t m = 0; m < n; m++) {
		if (m == 0 || sorted[m].w - anchor > SEGIMPORT_PLANE_TOLERANCE_MM) {
			anchor = sorted[m].w;
			planes[np].ref = sorted[m].frame;
			np++;
		} else if (sorted[m].frame < planes[np - 1].ref) {
			planes[np - 1].ref = sorted[m].frame;
		}
		sorted[m].plane = np - 1;
	}
	for (size_t m = 0; m < n; m++)
		places[sorted[m].frame] = sorted[m];

	/* Each plane's reference frame at the whole-pixel offset nearest to its
	 * in-plane shift from frame 1. */
	for (size_t k = 0; k < np; k++) {
		const double *P = s->frames[planes[k].ref].position;
		double d[3] = {P[0] - R[0], P[1] - R[1], P[2] - R[2]};
		double u = dot3(d, g->row_dir) / g->dx, v = dot3(d, g->col_dir) / g->dy;

		if (!(fabs(u) <= SEGIMPORT_MAX_OFFSET_PX && fabs(v) <= SEGIMPORT_MAX_OFFSET_PX)) {
			r3d_err_set(err, R3D_EINVAL,
				    "%s: frame %zu lies (%.0f, %.0f) pixels in-plane from "
				    "frame 1, more than %.0f",
				    name, planes[k].ref + 1, u, v, SEGIMPORT_MAX_OFFSET_PX);
			goto out;
		}
		planes[k].i = (int64_t)llround(u);
		planes[k].j = (int64_t)llround(v);
	}
	/* Every other frame a whole number of pixels from its plane's reference. */
	for (size_t f = 0; f < n; f++) {
		struct seg_place *pl = &places[f];
		const struct seg_plane *k = &planes[pl->plane];
		const double *P = s->frames[k->ref].position, *Q = s->frames[f].position;
		double d[3] = {Q[0] - P[0], Q[1] - P[1], Q[2] - P[2]};
		double u = dot3(d, g->row_dir) / g->dx, v = dot3(d, g->col_dir) / g->dy;

		if (!(fabs(u) <= SEGIMPORT_MAX_OFFSET_PX && fabs(v) <= SEGIMPORT_MAX_OFFSET_PX)) {
			r3d_err_set(err, R3D_EINVAL,
				    "%s: frame %zu lies (%.0f, %.0f) pixels in-plane from "
				    "frame %zu on its plane, more than %.0f",
				    name, f + 1, u, v, k->ref + 1, SEGIMPORT_MAX_OFFSET_PX);
			goto out;
		}
		double ru = (double)llround(u), rv = (double)llround(v);
		if (fabs(u - ru) * g->dx > SEGIMPORT_PLANE_TOLERANCE_MM ||
		    fabs(v - rv) * g->dy > SEGIMPORT_PLANE_TOLERANCE_MM) {
			r3d_err_set(err, R3D_EINVAL,
				    "%s: frames %zu and %zu are on one plane but (%.3f, %.3f) "
				    "pixels apart in-plane, not a whole number: the SEG's frames do "
				    "not share one pixel lattice",
				    name, k->ref + 1, f + 1, u, v);
			goto out;
		}
		pl->i = k->i + (int64_t)ru;
		pl->j = k->j + (int64_t)rv;
	}
	*nplanes = np;
	ok = true;
out:
	free(sorted);
	return ok;
}

/* The object-wide checks: kind, segment, geometry, every frame placed. */
static bool seg_check(struct r3d_err *err, const struct segobj *s, unsigned segment,
		      const char *name, struct segimport_grid *g, size_t *npix)
{
	bool found = false;
	size_t nseg = 0;

	if (s->kind != SEGOBJ_SEG_BINARY && s->kind != SEGOBJ_SEG_FRACTIONAL &&
	    s->kind != SEGOBJ_SEG_LABELMAP)
		return r3d_err_set(err, R3D_EINVAL, "%s: the object is not a Segmentation", name);
	for (size_t m = 0; m < s->nsegments; m++)
		found = found || s->segments[m].number == segment;
	if (!found)
		return r3d_err_set(err, R3D_EINVAL, "the Segmentation has no segment %u", segment);
	if (s->kind == SEGOBJ_SEG_LABELMAP && segment > UINT8_MAX)
		return r3d_err_set(err, R3D_EINVAL,
				   "%s: a label map's pixels are 8-bit here, so segment "
				   "numbers above 255 cannot be told apart",
				   name);
	if (s->kind == SEGOBJ_SEG_FRACTIONAL && s->max_fractional == 0)
		return r3d_err_set(err, R3D_EINVAL, "%s: Maximum Fractional Value is 0", name);
	if (s->rows == 0 || s->columns == 0 || !size_mul(s->rows, s->columns, npix))
		return r3d_err_set(err, R3D_EINVAL, "%s: frames are %u x %u pixels", name,
				   (unsigned)s->rows, (unsigned)s->columns);
	if (!(s->pixel_spacing[0] > 0.0 && s->pixel_spacing[1] > 0.0 &&
	      isfinite(s->pixel_spacing[0]) && isfinite(s->pixel_spacing[1])))
		return r3d_err_set(err, R3D_EINVAL, "%s: pixel spacing %g\\%g is not positive", name,
				   s->pixel_spacing[0], s->pixel_spacing[1]);
	if (!segimport_axes(err, name, s->orientation, g))
		return false;
	g->dx = s->pixel_spacing[1];
	g->dy = s->pixel_spacing[0];
	if (s->nframes == 0 || s->frames == NULL)
		return r3d_err_set(err, R3D_EINVAL, "%s: the Segmentation has no frames", name);
	if (s->nframes > SEGOBJ_MAX_FRAMES)
		return r3d_err_set(err, R3D_EINVAL, "%s: %zu frames, more than SEGOBJ_MAX_FRAMES (%d)",
				   name, s->nframes, SEGOBJ_MAX_FRAMES);
	/* Every frame of the object, not only this segment's: the planes are
	 * made of all of them. */
	for (size_t f = 0; f < s->nframes; f++) {
		const struct segobj_frame *fr = &s->frames[f];

		if (!fr->has_position)
			return r3d_err_set(err, R3D_EINVAL,
					   "%s: frame %zu of the Segmentation has no Plane Position "
					   "(Patient), so it cannot be placed",
					   name, f + 1);
		if (!isfinite(fr->position[0]) || !isfinite(fr->position[1]) ||
		    !isfinite(fr->position[2]))
			return r3d_err_set(err, R3D_EINVAL, "%s: frame %zu has a non-finite Image Position",
					   name, f + 1);
		if (seg_frame_in_segment(s, fr, segment)) {
			if (fr->pixels == NULL)
				return r3d_err_set(err, R3D_EINVAL, "%s: frame %zu has no pixel data",
						   name, f + 1);
			nseg++;
		}
	}
	if (nseg == 0)
		return r3d_err_set(err, R3D_EINVAL, "%s has no frame", name);
	return true;
}

bool segimport_seg_grid(struct r3d_err *err, const struct segobj *s, unsigned segment,
			struct segimport_grid *g)
{
	struct seg_place *places = NULL;
	struct seg_plane *planes = NULL;
	double *real = NULL;
	size_t npix = 0, nplanes = 0;
	int64_t imin = INT64_MAX, imax = INT64_MIN, jmin = INT64_MAX, jmax = INT64_MIN;
	size_t kmin = SIZE_MAX, kmax = 0;
	bool ok = false, labelmap;
	char name[SEGIMPORT_NAME_MAX];

	if (g == NULL || s == NULL)
		return r3d_err_set(err, R3D_EINVAL, "segimport_seg_grid: no object or no grid");
	labelmap = s->kind == SEGOBJ_SEG_LABELMAP;   /* seg_check: segment <= UINT8_MAX */
	memset(g, 0, sizeof(*g));
	segimport_name(s, segment, name);
	g->fractional = s->kind == SEGOBJ_SEG_FRACTIONAL;
	if (!seg_check(err, s, segment, name, g, &npix))
		goto out;

	places = malloc(s->nframes * sizeof(*places));
	planes = malloc(s->nframes * sizeof(*planes));
	if (places == NULL || planes == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "%s: cannot allocate %zu frames", name, s->nframes);
		goto out;
	}
	if (!seg_planes(err, s, name, g, places, planes, &nplanes))
		goto out;

	/* Pass 1: the bounding box of the segment's nonzero voxels. */
	for (size_t f = 0; f < s->nframes; f++) {
		const struct segobj_frame *fr = &s->frames[f];

		if (!seg_frame_in_segment(s, fr, segment))
			continue;
		for (size_t r = 0; r < s->rows; r++) {
			const uint8_t *row = fr->pixels + r * s->columns;
			/* A label map holds every label in each frame: a row without
			 * this one is skipped at memchr's speed (each label's pass
			 * over the whole map was 90 % of meshing 100 labels). */
			if (labelmap && memchr(row, (int)segment, s->columns) == NULL)
				continue;
			for (size_t c = 0; c < s->columns; c++) {
				if (s->kind == SEGOBJ_SEG_FRACTIONAL && row[c] > s->max_fractional) {
					r3d_err_set(err, R3D_EINVAL,
						    "%s: frame %zu has value %u above the "
						    "Maximum Fractional Value %u",
						    name, f + 1, row[c], s->max_fractional);
					goto out;
				}
				if (seg_value(s, segment, row[c]) == 0)
					continue;
				int64_t i = places[f].i + (int64_t)c, j = places[f].j + (int64_t)r;
				imin = i < imin ? i : imin;
				imax = i > imax ? i : imax;
				jmin = j < jmin ? j : jmin;
				jmax = j > jmax ? j : jmax;
				kmin = places[f].plane < kmin ? places[f].plane : kmin;
				kmax = places[f].plane > kmax ? places[f].plane : kmax;
			}
		}
	}
	if (kmin == SIZE_MAX) {
		/* All empty: nothing to mesh, the caller skips it. */
		g->voxels = 0;
		ok = true;
		goto out;
	}

	/* Crop: the box plus one empty voxel on every side. */
	int64_t i0 = imin - 1, j0 = jmin - 1;
	long k0 = (long)kmin - 1;
	if (!segimport_grid_alloc(err, name, g, (uint64_t)(imax - imin + 3),
				  (uint64_t)(jmax - jmin + 3), (uint64_t)(kmax - kmin + 3)))
		goto out;

	real = malloc(nplanes * 3 * sizeof(*real));
	if (real == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "%s: cannot allocate %zu planes", name, nplanes);
		goto out;
	}
	for (size_t k = 0; k < nplanes; k++) {
		const double *P = s->frames[planes[k].ref].position;
		double di = (double)(i0 - planes[k].i) * g->dx, dj = (double)(j0 - planes[k].j) * g->dy;
		for (int a = 0; a < 3; a++)
			real[3 * k + a] = P[a] + di * g->row_dir[a] + dj * g->col_dir[a];
	}
	double single = s->slice_thickness > 0.0 && isfinite(s->slice_thickness)
				? s->slice_thickness
				: fmin(s->pixel_spacing[0], s->pixel_spacing[1]);
	segimport_fill_origins(g, real, nplanes, k0, single);

	/* Pass 2: the values; a voxel two frames of the segment share keeps the
	 * larger. */
	for (size_t f = 0; f < s->nframes; f++) {
		const struct segobj_frame *fr = &s->frames[f];

		if (!seg_frame_in_segment(s, fr, segment))
			continue;
		size_t k = (size_t)((long)places[f].plane - k0);
		if (places[f].plane < kmin || places[f].plane > kmax)
			continue; /* no nonzero pixel */
		for (size_t r = 0; r < s->rows; r++) {
			const uint8_t *row = fr->pixels + r * s->columns;
			int64_t j = places[f].j + (int64_t)r - j0;
			if (labelmap && memchr(row, (int)segment, s->columns) == NULL)
				continue;
			for (size_t c = 0; c < s->columns; c++) {
				uint8_t v = seg_value(s, segment, row[c]);
				if (v == 0)
					continue;
				int64_t i = places[f].i + (int64_t)c - i0;
				uint8_t *dst = g->field + (size_t)i + g->nx * ((size_t)j + g->ny * k);
				if (v > *dst)
					*dst = v;
			}
		}
	}
	g->voxels = 0;
	size_t n = g->nx * g->ny * g->nz;
	for (size_t m = 0; m < n; m++)
		g->voxels += g->fractional ? g->field[m] >= 128 : g->field[m] != 0;
	ok = true;
out:
	free(real);
	free(planes);
	free(places);
	if (!ok)
		segimport_grid_free(g);
	return ok;
}
