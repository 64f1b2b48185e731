/*
 * fill.c: hole filling. Per axial slice (z constant): the background is
 * labelled by runs (4-connected); regions that touch the slice border are
 * outside, each other region is a hole and is filled when it passes the size
 * and mean-HU tests; slices are split over worker threads, each with its own
 * labeller. In 3D: the background
 * is labelled with 6 connectivity and every component that touches no face of
 * the volume is filled.
 *
 * Memory order x fastest; frame: voxel indices. Any thread may call; the
 * buffers passed are used by this call only.
 */
#include <stdlib.h>
#include <string.h>

#include "r3d/segment.h"
#include "r3d/util.h"
#include "segment_internal.h"

/* One worker's state: its own labeller and per-component buffers. */
struct fill_worker {
	struct segment_cc *cc;
	uint8_t *bg;          /* nx * ny: the slice's background */
	uint8_t *fill;        /* per component: 1 = outside or kept open, 2 = fill */
	double *sum;          /* per component: HU sum */
	size_t cap;
	struct r3d_err err;
	bool failed;
};

struct fill_arg {
	uint8_t *mask;
	const int16_t *hu;
	size_t nx, ny;
	size_t max_hole_px;
	double min_mean_hu;
	struct fill_worker *w;
};

static bool worker_reserve(struct fill_worker *w, size_t n)
{
	uint8_t *f;
	double *s;

	if (n <= w->cap)
		return true;
	f = realloc(w->fill, n);
	if (f == NULL)
		return r3d_err_set(&w->err, R3D_ENOMEM, "no memory for hole filling");
	w->fill = f;
	s = realloc(w->sum, n * sizeof(*s));
	if (s == NULL)
		return r3d_err_set(&w->err, R3D_ENOMEM, "no memory for hole filling");
	w->sum = s;
	w->cap = n;
	return true;
}

/* Each slice: label its background (4-connected) by runs; components that
 * touch the slice border are outside, the others are holes. */
static void fill_slices(void *p, size_t begin, size_t end, int worker)
{
	const struct fill_arg *a = p;
	struct fill_worker *w = &a->w[worker];
	struct segment_cc *cc = w->cc;
	size_t nx = a->nx, ny = a->ny, plane = nx * ny, z, i, r, id;
	uint32_t k;

	for (z = begin; z < end && !w->failed; z++) {
		uint8_t *m = a->mask + z * plane;
		const int16_t *hu = a->hu != NULL ? a->hu + z * plane : NULL;

		for (i = 0; i < plane; i++)
			w->bg[i] = m[i] == 0;
		if (!segment_cc_label(&w->err, cc, w->bg, nx, ny, 1, 6) ||
		    !worker_reserve(w, cc->count + 1)) {
			w->failed = true;
			break;
		}
		memset(w->fill, 0, cc->count + 1);
		memset(w->sum, 0, (cc->count + 1) * sizeof(*w->sum));
		for (r = 0; r < ny; r++) {
			for (k = cc->row_start[r]; k < cc->row_start[r + 1]; k++) {
				if (r == 0 || r + 1 == ny || cc->rx0[k] == 0 || cc->rx1[k] == nx)
					w->fill[cc->parent[k]] = 1;
				if (hu != NULL) {
					const int16_t *h = hu + r * nx;
					long s = 0;
					uint32_t x;

					for (x = cc->rx0[k]; x < cc->rx1[k]; x++)
						s += h[x];
					w->sum[cc->parent[k]] += (double)s;
				}
			}
		}
		for (id = 1; id <= cc->count; id++) {
			size_t n = cc->sizes[id];

			if (w->fill[id] != 0)
				continue;
			if (a->max_hole_px != 0 && n > a->max_hole_px)
				continue;
			if (hu != NULL && !(w->sum[id] / (double)n > a->min_mean_hu))
				continue;
			w->fill[id] = 2;
		}
		for (r = 0; r < ny; r++)
			for (k = cc->row_start[r]; k < cc->row_start[r + 1]; k++)
				if (w->fill[cc->parent[k]] == 2)
					memset(m + r * nx + cc->rx0[k], 1, cc->rx1[k] - cc->rx0[k]);
	}
}

bool segment_fill_holes_2d(struct r3d_err *err, uint8_t *mask, size_t nx, size_t ny, size_t nz,
			   size_t max_hole_px, const int16_t *hu, double min_mean_hu, int threads)
{
	struct fill_worker w[SEGMENT_MAX_THREADS];
	struct fill_arg a;
	int i, nt = segment_threads_clamp(threads, nz);
	bool ok = false;

	memset(w, 0, sizeof(w));
	if (nx == 0 || ny == 0 || nz == 0 || nx > SEGMENT_MAX_DIM || ny > SEGMENT_MAX_DIM ||
	    nz > SEGMENT_MAX_DIM) {
		r3d_err_set(err, R3D_EINVAL, "bad grid %zux%zux%zu for hole filling", nx, ny, nz);
		goto out;
	}
	for (i = 0; i < nt; i++) {
		if (!segment_cc_create(err, 1, &w[i].cc))
			goto out;
		w[i].bg = malloc(nx * ny);
		if (w[i].bg == NULL) {
			r3d_err_set(err, R3D_ENOMEM, "no memory for hole filling");
			goto out;
		}
	}
	a.mask = mask;
	a.hu = hu;
	a.nx = nx;
	a.ny = ny;
	a.max_hole_px = max_hole_px;
	a.min_mean_hu = min_mean_hu;
	a.w = w;
	segment_parallel(nt, nz, fill_slices, &a);
	for (i = 0; i < nt; i++) {
		if (w[i].failed) {
			if (err != NULL)
				*err = w[i].err;
			goto out;
		}
	}
	ok = true;
out:
	for (i = 0; i < nt; i++) {
		free(w[i].sum);
		free(w[i].fill);
		free(w[i].bg);
		segment_cc_destroy(w[i].cc);
	}
	return ok;
}

bool segment_fill_holes_3d(struct r3d_err *err, struct segment_cc *cc, uint8_t *mask, uint8_t *tmp,
			   size_t nx, size_t ny, size_t nz)
{
	uint8_t *outside = NULL;
	size_t nvox, i, r, k;
	bool ok = false;

	if (!size_mul3(nx, ny, nz, &nvox)) {
		r3d_err_set(err, R3D_EINVAL, "bad grid for hole filling");
		goto out;
	}
	for (i = 0; i < nvox; i++)
		tmp[i] = !mask[i];
	if (!segment_cc_label(err, cc, tmp, nx, ny, nz, 6))
		goto out;
	outside = calloc(cc->count + 1, 1);
	if (outside == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "no memory for hole filling");
		goto out;
	}
	for (r = 0; r < ny * nz; r++) {
		size_t y = r % ny, z = r / ny;
		bool face_row = y == 0 || y + 1 == ny || z == 0 || z + 1 == nz;

		for (k = cc->row_start[r]; k < cc->row_start[r + 1]; k++)
			if (face_row || cc->rx0[k] == 0 || cc->rx1[k] == nx)
				outside[cc->parent[k]] = 1;
	}
	for (r = 0; r < ny * nz; r++)
		for (k = cc->row_start[r]; k < cc->row_start[r + 1]; k++)
			if (!outside[cc->parent[k]])
				memset(mask + r * nx + cc->rx0[k], 1, cc->rx1[k] - cc->rx0[k]);
	ok = true;
out:
	free(outside);
	return ok;
}
