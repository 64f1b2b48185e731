/*
 * label.c: 3D connected components of a binary mask, 6 or 26 connectivity.
 *
 * The mask is cut into runs (maximal stretches of 1s along x); runs of
 * neighbouring rows that touch are joined with union-find, the smaller run
 * index always becoming the root, so that one ordered pass numbers the
 * components in raster order. Counting and cutting runs are split over rows
 * on worker threads; the unions run on the calling thread (there are far
 * fewer runs than voxels). Memory order x fastest; frame: voxel indices.
 * One struct segment_cc is used by one thread at a time.
 */
#include <stdlib.h>
#include <string.h>

#include "r3d/segment.h"
#include "r3d/util.h"
#include "segment_internal.h"


bool segment_cc_create(struct r3d_err *err, int threads, struct segment_cc **out)
{
	struct segment_cc *cc = calloc(1, sizeof(*cc));

	*out = NULL;
	if (cc == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "no memory for a component labeller");
	cc->threads = segment_threads_clamp(threads, SEGMENT_MAX_THREADS);
	*out = cc;
	return true;
}

void segment_cc_destroy(struct segment_cc *cc)
{
	if (cc == NULL)
		return;
	free(cc->row_start);
	free(cc->rx0);
	free(cc->rx1);
	free(cc->parent);
	free(cc->sizes);
	free(cc);
}

/* Grows *p to hold n elements of size elem; keeps the old contents. */
static bool grow(struct r3d_err *err, void **p, size_t *cap, size_t n, size_t elem)
{
	size_t bytes;
	void *q;

	if (n <= *cap)
		return true;
	if (!size_mul(n, elem, &bytes))
		return r3d_err_set(err, R3D_EINVAL, "component buffer size overflows");
	q = realloc(*p, bytes);
	if (q == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "no memory for %zu component entries", n);
	*p = q;
	*cap = n;
	return true;
}

struct cut_arg {
	struct segment_cc *cc;
	const uint8_t *mask;
	bool fill;             /* false: count runs per row; true: write them */
};

static void cut_rows(void *p, size_t begin, size_t end, int worker)
{
	struct cut_arg *a = p;
	struct segment_cc *cc = a->cc;
	size_t nx = cc->nx, r, x;

	(void)worker;
	for (r = begin; r < end; r++) {
		const uint8_t *row = a->mask + r * nx;
		uint32_t k = a->fill ? cc->row_start[r] : 0;

		x = segment_row_next(row, 0, nx, true);
		while (x < nx) {
			size_t x1 = segment_row_next(row, x, nx, false);

			if (a->fill) {
				cc->rx0[k] = (uint32_t)x;
				cc->rx1[k] = (uint32_t)x1;
				cc->parent[k] = k;
			}
			k++;
			x = segment_row_next(row, x1, nx, true);
		}
		if (!a->fill)
			cc->row_start[r + 1] = k;
	}
}

static uint32_t uf_find(uint32_t *parent, uint32_t i)
{
	while (parent[i] != i) {
		parent[i] = parent[parent[i]];
		i = parent[i];
	}
	return i;
}

static void uf_union(uint32_t *parent, uint32_t a, uint32_t b)
{
	a = uf_find(parent, a);
	b = uf_find(parent, b);
	if (a < b)
		parent[b] = a;
	else if (b < a)
		parent[a] = b;
}

/* Joins the touching runs of rows ra and rb; slack 1 also joins diagonal
 * neighbours along x (26 connectivity), slack 0 only overlapping runs. */
static void join_rows(struct segment_cc *cc, size_t ra, size_t rb, uint32_t slack)
{
	uint32_t i = cc->row_start[ra], ie = cc->row_start[ra + 1];
	uint32_t j = cc->row_start[rb], je = cc->row_start[rb + 1];

	while (i < ie && j < je) {
		if (cc->rx0[i] < cc->rx1[j] + slack && cc->rx0[j] < cc->rx1[i] + slack)
			uf_union(cc->parent, i, j);
		if (cc->rx1[i] < cc->rx1[j])
			i++;
		else
			j++;
	}
}

bool segment_cc_label(struct r3d_err *err, struct segment_cc *cc, const uint8_t *mask,
		      size_t nx, size_t ny, size_t nz, int connectivity)
{
	struct cut_arg arg;
	size_t nvox, nrows, r, y, z, i;
	uint32_t slack;
	bool ok = false;

	if (connectivity != 6 && connectivity != 26) {
		r3d_err_set(err, R3D_EINVAL, "connectivity must be 6 or 26, not %d", connectivity);
		goto out;
	}
	if (nx == 0 || ny == 0 || nz == 0 || nx > SEGMENT_MAX_DIM || ny > SEGMENT_MAX_DIM ||
	    nz > SEGMENT_MAX_DIM || !size_mul3(nx, ny, nz, &nvox) || nvox > SEGMENT_MAX_VOXELS) {
		r3d_err_set(err, R3D_EINVAL, "bad grid %zux%zux%zu for labelling", nx, ny, nz);
		goto out;
	}
	cc->nx = nx;
	cc->ny = ny;
	cc->nz = nz;
	cc->nruns = 0;
	cc->count = 0;
	nrows = ny * nz;
	if (!grow(err, (void **)&cc->row_start, &cc->row_cap, nrows + 1, sizeof(uint32_t)))
		goto out;
	arg.cc = cc;
	arg.mask = mask;
	arg.fill = false;
	cc->row_start[0] = 0;
	segment_parallel(cc->threads, nrows, cut_rows, &arg);
	for (r = 0; r < nrows; r++)
		cc->row_start[r + 1] += cc->row_start[r];
	cc->nruns = cc->row_start[nrows];
	if (cc->nruns > cc->run_cap) {
		size_t cap = cc->run_cap;

		if (!grow(err, (void **)&cc->rx0, &cap, cc->nruns, sizeof(uint32_t)))
			goto out;
		cap = cc->run_cap;
		if (!grow(err, (void **)&cc->rx1, &cap, cc->nruns, sizeof(uint32_t)))
			goto out;
		cap = cc->run_cap;
		if (!grow(err, (void **)&cc->parent, &cap, cc->nruns, sizeof(uint32_t)))
			goto out;
		cc->run_cap = cap;
	}
	arg.fill = true;
	segment_parallel(cc->threads, nrows, cut_rows, &arg);

	slack = connectivity == 26 ? 1 : 0;
	for (z = 0; z < nz; z++) {
		for (y = 0; y < ny; y++) {
			r = y + ny * z;
			if (cc->row_start[r] == cc->row_start[r + 1])
				continue;
			if (y > 0)
				join_rows(cc, r, r - 1, slack);
			if (z == 0)
				continue;
			join_rows(cc, r, r - ny, slack);
			if (connectivity == 26) {
				if (y > 0)
					join_rows(cc, r, r - ny - 1, slack);
				if (y + 1 < ny)
					join_rows(cc, r, r - ny + 1, slack);
			}
		}
	}

	/* parent[i] <= i always, so one ascending pass reaches every root. */
	for (i = 0; i < cc->nruns; i++) {
		uint32_t p = cc->parent[i];

		if (p == i)
			cc->parent[i] = (uint32_t)++cc->count;
		else
			cc->parent[i] = cc->parent[p];
	}
	if (!grow(err, (void **)&cc->sizes, &cc->sizes_cap, cc->count + 1, sizeof(size_t)))
		goto out;
	memset(cc->sizes, 0, (cc->count + 1) * sizeof(size_t));
	for (i = 0; i < cc->nruns; i++)
		cc->sizes[cc->parent[i]] += cc->rx1[i] - cc->rx0[i];
	ok = true;
out:
	if (!ok) {
		cc->nruns = 0;
		cc->count = 0;
	}
	return ok;
}

size_t segment_cc_count(const struct segment_cc *cc)
{
	return cc->count;
}

size_t segment_cc_size(const struct segment_cc *cc, size_t id)
{
	return id >= 1 && id <= cc->count ? cc->sizes[id] : 0;
}

size_t segment_cc_largest(const struct segment_cc *cc)
{
	size_t id, best = 0;

	for (id = 1; id <= cc->count; id++)
		if (best == 0 || cc->sizes[id] > cc->sizes[best])
			best = id;
	return best;
}

void segment_cc_write_labels(const struct segment_cc *cc, uint32_t *labels)
{
	size_t nrows = cc->ny * cc->nz, r;
	uint32_t k, x;

	for (r = 0; r < nrows; r++) {
		uint32_t *row = labels + r * cc->nx;

		memset(row, 0, cc->nx * sizeof(*row));
		for (k = cc->row_start[r]; k < cc->row_start[r + 1]; k++)
			for (x = cc->rx0[k]; x < cc->rx1[k]; x++)
				row[x] = cc->parent[k];
	}
}

struct paint_arg {
	const struct segment_cc *cc;
	const uint8_t *keep;
	size_t min_voxels;
	uint8_t *out;
};

static void paint_rows(void *p, size_t begin, size_t end, int worker)
{
	const struct paint_arg *a = p;
	const struct segment_cc *cc = a->cc;
	size_t r;
	uint32_t k;

	(void)worker;
	for (r = begin; r < end; r++) {
		uint8_t *row = a->out + r * cc->nx;

		memset(row, 0, cc->nx);
		for (k = cc->row_start[r]; k < cc->row_start[r + 1]; k++) {
			uint32_t id = cc->parent[k];
			bool on = a->keep != NULL ? a->keep[id] != 0 : cc->sizes[id] >= a->min_voxels;

			if (on)
				memset(row + cc->rx0[k], 1, cc->rx1[k] - cc->rx0[k]);
		}
	}
}

void segment_cc_paint(const struct segment_cc *cc, const uint8_t *keep, uint8_t *out)
{
	struct paint_arg a = { cc, keep, 0, out };

	segment_parallel(cc->threads, cc->ny * cc->nz, paint_rows, &a);
}

void segment_cc_paint_min_size(const struct segment_cc *cc, size_t min_voxels, uint8_t *out)
{
	struct paint_arg a = { cc, NULL, min_voxels, out };

	segment_parallel(cc->threads, cc->ny * cc->nz, paint_rows, &a);
}
