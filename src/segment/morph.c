/*
 * morph.c: binary dilation and erosion with a box structuring element, done
 * as three separable 1D passes (x, then y, then z) with sliding window counts,
 * so the cost does not depend on the kernel size. Windows are clipped at the
 * volume border: the outside neither grows nor erodes the mask, so an opening
 * keeps a body that is cut by the first or last slice.
 *
 * Memory order x fastest; frame: voxel indices (radii in voxels per axis).
 * The x and y passes split slices over worker threads, the z pass splits rows
 * of y. Any thread may call; the buffers passed are used by this call only.
 */
#include <stdlib.h>
#include <string.h>

#include "r3d/segment.h"
#include "r3d/util.h"
#include "segment_internal.h"

struct morph_arg {
	const uint8_t *src;
	uint8_t *dst;
	size_t nx, ny, nz;
	unsigned r;
	bool erode;
	uint8_t *scratch;   /* per worker: nx * ny bytes */
	uint16_t *count;    /* per worker: nx * ny counters */
};

/* Window [i - r, i + r] clipped to [0, n): its length. */
static size_t win_len(size_t i, size_t n, size_t r)
{
	size_t lo = i > r ? i - r : 0;
	size_t hi = i + r < n ? i + r : n - 1;

	return hi - lo + 1;
}

/* Sets dst[k] from cnt[k] for k < len, for the window length wl. */
static void emit(uint8_t *dst, const uint16_t *cnt, size_t len, size_t wl, bool erode)
{
	size_t k;

	if (erode) {
		for (k = 0; k < len; k++)
			dst[k] = cnt[k] == wl;
	} else {
		for (k = 0; k < len; k++)
			dst[k] = cnt[k] != 0;
	}
}

static void add_row(uint16_t *cnt, const uint8_t *row, size_t len)
{
	size_t k;

	for (k = 0; k < len; k++)
		cnt[k] += row[k];
}

static void sub_row(uint16_t *cnt, const uint8_t *row, size_t len)
{
	size_t k;

	for (k = 0; k < len; k++)
		cnt[k] -= row[k];
}

/* x pass, slices [begin, end), run by run: a run [a, b) dilates to
 * [a - r, b + r) and erodes to [a + r, b - r), clipped windows keeping the
 * ends that touch the border. src and dst may alias (such rows are copied). */
static void pass_x(void *p, size_t begin, size_t end, int worker)
{
	const struct morph_arg *a = p;
	uint8_t *line = a->scratch + (size_t)worker * a->nx * a->ny;
	size_t nx = a->nx, r = a->r, rows = (end - begin) * a->ny, j;
	const uint8_t *src = a->src + begin * a->ny * nx;
	uint8_t *dst = a->dst + begin * a->ny * nx;

	for (j = 0; j < rows; j++) {
		uint8_t *out = dst + j * nx;
		const uint8_t *in = src + j * nx;
		size_t x0, x1;

		if (in == out) {
			memcpy(line, in, nx);
			in = line;
		}
		memset(out, 0, nx);
		x0 = segment_row_next(in, 0, nx, true);
		while (x0 < nx) {
			size_t lo, hi;

			x1 = segment_row_next(in, x0, nx, false);
			if (a->erode) {
				lo = x0 == 0 ? 0 : x0 + r;
				hi = x1 == nx ? nx : (x1 > r ? x1 - r : 0);
			} else {
				lo = x0 > r ? x0 - r : 0;
				hi = x1 + r < nx ? x1 + r : nx;
			}
			if (hi > lo)
				memset(out + lo, 1, hi - lo);
			x0 = segment_row_next(in, x1, nx, true);
		}
	}
}

/* y pass in place, slices [begin, end): each slice is copied first. */
static void pass_y(void *p, size_t begin, size_t end, int worker)
{
	const struct morph_arg *a = p;
	size_t nx = a->nx, ny = a->ny, r = a->r, z, y;
	uint8_t *copy = a->scratch + (size_t)worker * nx * ny;
	uint16_t *cnt = a->count + (size_t)worker * nx * ny;

	for (z = begin; z < end; z++) {
		uint8_t *slice = a->dst + z * nx * ny;

		memcpy(copy, slice, nx * ny);
		memset(cnt, 0, nx * sizeof(*cnt));
		for (y = 0; y < r && y < ny; y++)
			add_row(cnt, copy + y * nx, nx);
		for (y = 0; y < ny; y++) {
			if (y + r < ny)
				add_row(cnt, copy + (y + r) * nx, nx);
			if (y > r)
				sub_row(cnt, copy + (y - r - 1) * nx, nx);
			emit(slice + y * nx, cnt, nx, win_len(y, ny, r), a->erode);
		}
	}
}

/* z pass src -> dst (distinct), rows of y [begin, end) through every slice. */
static void pass_z(void *p, size_t begin, size_t end, int worker)
{
	const struct morph_arg *a = p;
	size_t nx = a->nx, ny = a->ny, nz = a->nz, r = a->r, z;
	size_t len = (end - begin) * nx, plane = nx * ny, off = begin * nx;
	uint16_t *cnt = a->count + (size_t)worker * nx * ny;

	memset(cnt, 0, len * sizeof(*cnt));
	for (z = 0; z < r && z < nz; z++)
		add_row(cnt, a->src + z * plane + off, len);
	for (z = 0; z < nz; z++) {
		if (z + r < nz)
			add_row(cnt, a->src + (z + r) * plane + off, len);
		if (z > r)
			sub_row(cnt, a->src + (z - r - 1) * plane + off, len);
		emit(a->dst + z * plane + off, cnt, len, win_len(z, nz, r), a->erode);
	}
}

static bool morph(struct r3d_err *err, const uint8_t *in, uint8_t *out, uint8_t *tmp,
		  size_t nx, size_t ny, size_t nz, const unsigned radius[3], int threads,
		  bool erode)
{
	struct morph_arg a;
	size_t nvox, plane;
	uint8_t *stage;
	int i, nt = segment_threads_clamp(threads, nz > ny ? nz : ny);
	bool ok = false;

	memset(&a, 0, sizeof(a));
	if (nx == 0 || ny == 0 || nz == 0 || nx > SEGMENT_MAX_DIM || ny > SEGMENT_MAX_DIM ||
	    nz > SEGMENT_MAX_DIM || !size_mul3(nx, ny, nz, &nvox)) {
		r3d_err_set(err, R3D_EINVAL, "bad grid %zux%zux%zu for morphology", nx, ny, nz);
		goto out;
	}
	for (i = 0; i < 3; i++) {
		if (radius[i] > SEGMENT_MAX_RADIUS_VOX) {
			r3d_err_set(err, R3D_EINVAL, "morphology radius %u over %d voxels",
				    radius[i], SEGMENT_MAX_RADIUS_VOX);
			goto out;
		}
	}
	if (tmp == in || tmp == out) {
		r3d_err_set(err, R3D_EINVAL, "morphology scratch must be its own buffer");
		goto out;
	}
	plane = nx * ny;
	a.scratch = malloc((size_t)nt * plane);
	a.count = malloc((size_t)nt * plane * sizeof(uint16_t));
	if (a.scratch == NULL || a.count == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "no memory for morphology scratch");
		goto out;
	}
	a.nx = nx;
	a.ny = ny;
	a.nz = nz;
	a.erode = erode;
	/* x: in -> stage; y: stage in place; z: stage -> out. */
	stage = radius[2] > 0 ? tmp : out;
	a.src = in;
	a.dst = stage;
	a.r = radius[0];
	if (radius[0] > 0)
		segment_parallel(nt, nz, pass_x, &a);
	else if (stage != in)
		memcpy(stage, in, nvox);
	if (radius[1] > 0) {
		a.r = radius[1];
		segment_parallel(nt, nz, pass_y, &a);
	}
	if (radius[2] > 0) {
		a.src = stage;
		a.dst = out;
		a.r = radius[2];
		segment_parallel(nt, ny, pass_z, &a);
	}
	ok = true;
out:
	free(a.count);
	free(a.scratch);
	return ok;
}

bool segment_dilate(struct r3d_err *err, const uint8_t *in, uint8_t *out, uint8_t *tmp,
		    size_t nx, size_t ny, size_t nz, const unsigned radius[3], int threads)
{
	return morph(err, in, out, tmp, nx, ny, nz, radius, threads, false);
}

bool segment_erode(struct r3d_err *err, const uint8_t *in, uint8_t *out, uint8_t *tmp,
		   size_t nx, size_t ny, size_t nz, const unsigned radius[3], int threads)
{
	return morph(err, in, out, tmp, nx, ny, nz, radius, threads, true);
}
