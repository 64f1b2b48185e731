/*
 * fill.c: hole filling. Per axial slice (z constant): a flood from the slice
 * border marks the outside background (4-connected), each remaining
 * background region is a hole and is filled when it passes the size and
 * mean-HU tests; slices are split over worker threads. In 3D: the background
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

enum { PX_FG = 0, PX_BG = 1, PX_OUT = 2, PX_DONE = 3 };

struct fill_arg {
	uint8_t *mask;
	const int16_t *hu;
	size_t nx, ny;
	size_t max_hole_px;
	double min_mean_hu;
	uint8_t *state;     /* per worker: nx * ny */
	uint32_t *queue;    /* per worker: nx * ny */
};

/* Floods state from seed (already in queue[0..n)) over PX_BG pixels, marking
 * them as mark; returns the number of pixels in queue at the end. */
static size_t flood(uint8_t *state, uint32_t *queue, size_t n, size_t nx, size_t ny,
		    uint8_t mark)
{
	size_t head = 0;

	while (head < n) {
		uint32_t i = queue[head++];
		size_t x = i % nx, y = i / nx;

		if (x > 0 && state[i - 1] == PX_BG) {
			state[i - 1] = mark;
			queue[n++] = i - 1;
		}
		if (x + 1 < nx && state[i + 1] == PX_BG) {
			state[i + 1] = mark;
			queue[n++] = i + 1;
		}
		if (y > 0 && state[i - nx] == PX_BG) {
			state[i - nx] = mark;
			queue[n++] = (uint32_t)(i - nx);
		}
		if (y + 1 < ny && state[i + nx] == PX_BG) {
			state[i + nx] = mark;
			queue[n++] = (uint32_t)(i + nx);
		}
	}
	return n;
}

static void seed(uint8_t *state, uint32_t *queue, size_t *n, size_t i, uint8_t mark)
{
	if (state[i] == PX_BG) {
		state[i] = mark;
		queue[(*n)++] = (uint32_t)i;
	}
}

static void fill_slices(void *p, size_t begin, size_t end, int worker)
{
	const struct fill_arg *a = p;
	size_t nx = a->nx, ny = a->ny, plane = nx * ny, z, i, k, n;
	uint8_t *state = a->state + (size_t)worker * plane;
	uint32_t *queue = a->queue + (size_t)worker * plane;

	for (z = begin; z < end; z++) {
		uint8_t *m = a->mask + z * plane;
		const int16_t *hu = a->hu != NULL ? a->hu + z * plane : NULL;

		for (i = 0; i < plane; i++)
			state[i] = m[i] ? PX_FG : PX_BG;
		n = 0;
		for (i = 0; i < nx; i++) {
			seed(state, queue, &n, i, PX_OUT);
			seed(state, queue, &n, (ny - 1) * nx + i, PX_OUT);
		}
		for (i = 0; i < ny; i++) {
			seed(state, queue, &n, i * nx, PX_OUT);
			seed(state, queue, &n, i * nx + nx - 1, PX_OUT);
		}
		(void)flood(state, queue, n, nx, ny, PX_OUT);
		for (i = 0; i < plane; i++) {
			double sum = 0;
			bool fill;

			if (state[i] != PX_BG)
				continue;
			n = 0;
			seed(state, queue, &n, i, PX_DONE);
			n = flood(state, queue, n, nx, ny, PX_DONE);
			fill = a->max_hole_px == 0 || n <= a->max_hole_px;
			if (fill && hu != NULL) {
				for (k = 0; k < n; k++)
					sum += hu[queue[k]];
				fill = sum / (double)n > a->min_mean_hu;
			}
			if (fill)
				for (k = 0; k < n; k++)
					m[queue[k]] = 1;
		}
	}
}

bool segment_fill_holes_2d(struct r3d_err *err, uint8_t *mask, size_t nx, size_t ny, size_t nz,
			   size_t max_hole_px, const int16_t *hu, double min_mean_hu, int threads)
{
	struct fill_arg a;
	size_t plane;
	int nt = segment_threads_clamp(threads, nz);
	bool ok = false;

	memset(&a, 0, sizeof(a));
	if (nx == 0 || ny == 0 || nz == 0 || nx > SEGMENT_MAX_DIM || ny > SEGMENT_MAX_DIM ||
	    nz > SEGMENT_MAX_DIM) {
		r3d_err_set(err, R3D_EINVAL, "bad grid %zux%zux%zu for hole filling", nx, ny, nz);
		goto out;
	}
	plane = nx * ny;
	a.mask = mask;
	a.hu = hu;
	a.nx = nx;
	a.ny = ny;
	a.max_hole_px = max_hole_px;
	a.min_mean_hu = min_mean_hu;
	a.state = malloc((size_t)nt * plane);
	a.queue = malloc((size_t)nt * plane * sizeof(uint32_t));
	if (a.state == NULL || a.queue == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "no memory for hole filling");
		goto out;
	}
	segment_parallel(nt, nz, fill_slices, &a);
	ok = true;
out:
	free(a.queue);
	free(a.state);
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
