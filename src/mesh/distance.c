/*
 * distance.c: how far two surfaces are apart, both ways: the decimation
 * error of a structure (decimated against undecimated surface). Points of
 * each mesh (its vertices, every k-th when there are more than the sample
 * bound) are projected onto the other mesh's nearest triangle, found
 * through a uniform grid of triangle bounding boxes searched in growing
 * shells of cells. Exact for the points sampled (closest point on a
 * triangle, Ericson's Real-Time Collision Detection 5.1.5). Any thread;
 * read-only on both meshes; starts threads - 1 pthreads and joins them.
 *
 * Frame: the meshes' (both in one frame; LPS mm gives mm).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "meshgeom.h"
#include "meshpar.h"
#include "r3d/mesh.h"

/* Grid cell size in mean edge lengths of the target mesh. */
#define DISTANCE_CELL_EDGES 2.0
#define DISTANCE_MAX_CELLS (1u << 26)

struct distance_grid {
	const struct mesh *m;
	double lo[3], cell;
	size_t n[3];
	uint32_t *first;  /* CSR: cell -> triangles */
	uint32_t *tris;
};

static size_t grid_axis(const struct distance_grid *g, int k, double x)
{
	double c = (x - g->lo[k]) / g->cell;
	if (!(c > 0))
		return 0;
	return c >= (double)g->n[k] ? g->n[k] - 1 : (size_t)c;
}

static bool grid_build(struct r3d_err *err, const struct mesh *m, struct distance_grid *g)
{
	double hi[3] = {-DBL_MAX, -DBL_MAX, -DBL_MAX}, ext[3], vol = 1;
	size_t ncell, total = 0;

	memset(g, 0, sizeof(*g));
	g->m = m;
	g->lo[0] = g->lo[1] = g->lo[2] = DBL_MAX;
	for (size_t i = 0; i < 3 * m->ntri; i++) {
		const float *p = m->xyz + 3 * (size_t)m->tri[i];
		for (int k = 0; k < 3; k++) {
			g->lo[k] = p[k] < g->lo[k] ? p[k] : g->lo[k];
			hi[k] = p[k] > hi[k] ? p[k] : hi[k];
		}
	}
	for (int k = 0; k < 3; k++) {
		ext[k] = hi[k] - g->lo[k] > 1e-6 ? hi[k] - g->lo[k] : 1e-6;
		vol *= ext[k];
	}
	/* Cells of about DISTANCE_CELL_EDGES mean edge lengths (sampled), so
	 * that a cell holds a few triangles, within DISTANCE_MAX_CELLS. */
	double esum = 0;
	size_t en = 0, step = m->ntri / 4096 + 1;
	for (size_t t = 0; t < m->ntri; t += step) {
		const float *a = m->xyz + 3 * (size_t)m->tri[3 * t];
		const float *b = m->xyz + 3 * (size_t)m->tri[3 * t + 1];
		esum += sqrt(((double)a[0] - b[0]) * ((double)a[0] - b[0]) +
			     ((double)a[1] - b[1]) * ((double)a[1] - b[1]) +
			     ((double)a[2] - b[2]) * ((double)a[2] - b[2]));
		en++;
	}
	g->cell = en > 0 && esum > 0 ? DISTANCE_CELL_EDGES * esum / (double)en : 1.0;
	if (vol / (g->cell * g->cell * g->cell) > (double)DISTANCE_MAX_CELLS)
		g->cell = cbrt(vol / (double)DISTANCE_MAX_CELLS);
	ncell = 1;
	for (int k = 0; k < 3; k++) {
		g->n[k] = (size_t)(ext[k] / g->cell) + 1;
		ncell *= g->n[k];
	}
	g->first = calloc(ncell + 1, sizeof(*g->first));
	if (g->first == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "distance: cannot allocate %zu cells", ncell);
	/* Two passes over the triangles' cell boxes: count, then fill. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t t = 0; t < m->ntri; t++) {
			const uint32_t *f = m->tri + 3 * t;
			size_t a[3], b[3];
			for (int k = 0; k < 3; k++) {
				double l = DBL_MAX, h = -DBL_MAX;
				for (int c = 0; c < 3; c++) {
					double x = m->xyz[3 * (size_t)f[c] + k];
					l = x < l ? x : l;
					h = x > h ? x : h;
				}
				a[k] = grid_axis(g, k, l);
				b[k] = grid_axis(g, k, h);
			}
			for (size_t z = a[2]; z <= b[2]; z++)
				for (size_t y = a[1]; y <= b[1]; y++)
					for (size_t x = a[0]; x <= b[0]; x++) {
						size_t c = x + g->n[0] * (y + g->n[1] * z);
						if (pass == 0)
							g->first[c + 1]++;
						else
							g->tris[g->first[c]++] = (uint32_t)t;
					}
		}
		if (pass == 0) {
			for (size_t c = 0; c < ncell; c++) {
				total += g->first[c + 1];
				if (total > UINT32_MAX)
					return r3d_err_set(err, R3D_EINVAL, "distance: grid too large");
				g->first[c + 1] = (uint32_t)total;
			}
			g->tris = malloc((total > 0 ? total : 1) * sizeof(*g->tris));
			if (g->tris == NULL)
				return r3d_err_set(err, R3D_ENOMEM, "distance: cannot allocate the grid");
		}
	}
	/* The fill moved every start to the next cell's: shift back. */
	for (size_t c = ncell; c > 0; c--)
		g->first[c] = g->first[c - 1];
	g->first[0] = 0;
	return true;
}

static void grid_free(struct distance_grid *g)
{
	free(g->first);
	free(g->tris);
}

static double dot3(const double a[3], const double b[3])
{
	return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

void meshgeom_closest_on_triangle(const double p[3], const double a[3], const double b[3],
				  const double c[3], double q[3])
{
	double ab[3], ac[3], ap[3], bp[3], cp[3];
	for (int k = 0; k < 3; k++) {
		ab[k] = b[k] - a[k];
		ac[k] = c[k] - a[k];
		ap[k] = p[k] - a[k];
		bp[k] = p[k] - b[k];
		cp[k] = p[k] - c[k];
	}
	double d1 = dot3(ab, ap), d2 = dot3(ac, ap);
	if (d1 <= 0 && d2 <= 0) {
		memcpy(q, a, 3 * sizeof(double));
		return;
	}
	double d3 = dot3(ab, bp), d4 = dot3(ac, bp);
	if (d3 >= 0 && d4 <= d3) {
		memcpy(q, b, 3 * sizeof(double));
		return;
	}
	double vc = d1 * d4 - d3 * d2;
	if (vc <= 0 && d1 >= 0 && d3 <= 0) {
		double v = d1 / (d1 - d3);
		for (int k = 0; k < 3; k++)
			q[k] = a[k] + v * ab[k];
		return;
	}
	double d5 = dot3(ab, cp), d6 = dot3(ac, cp);
	if (d6 >= 0 && d5 <= d6) {
		memcpy(q, c, 3 * sizeof(double));
		return;
	}
	double vb = d5 * d2 - d1 * d6;
	if (vb <= 0 && d2 >= 0 && d6 <= 0) {
		double w = d2 / (d2 - d6);
		for (int k = 0; k < 3; k++)
			q[k] = a[k] + w * ac[k];
		return;
	}
	double va = d3 * d6 - d5 * d4;
	if (va <= 0 && (d4 - d3) >= 0 && (d5 - d6) >= 0) {
		double w = (d4 - d3) / ((d4 - d3) + (d5 - d6));
		for (int k = 0; k < 3; k++)
			q[k] = b[k] + w * (c[k] - b[k]);
		return;
	}
	double den = 1.0 / (va + vb + vc), v = vb * den, w = vc * den;
	for (int k = 0; k < 3; k++)
		q[k] = a[k] + ab[k] * v + ac[k] * w;
}

double meshgeom_point_triangle_d2(const double p[3], const double a[3], const double b[3],
				  const double c[3])
{
	double q[3];

	meshgeom_closest_on_triangle(p, a, b, c, q);
	for (int k = 0; k < 3; k++)
		q[k] -= p[k];
	return dot3(q, q);
}

/* Distance from p to the nearest triangle of g's mesh. */
static double grid_nearest(const struct distance_grid *g, const double p[3])
{
	const struct mesh *m = g->m;
	size_t c0[3];
	double best = DBL_MAX;
	size_t maxr = g->n[0] + g->n[1] + g->n[2];

	double d0 = DBL_MAX; /* from p to the nearest face of its own cell */
	for (int k = 0; k < 3; k++) {
		c0[k] = grid_axis(g, k, p[k]);
		double x = p[k] - (g->lo[k] + (double)c0[k] * g->cell);
		double to_face = x < g->cell - x ? x : g->cell - x;
		to_face = to_face > 0 ? to_face : 0;
		d0 = to_face < d0 ? to_face : d0;
	}
	for (size_t r = 0; r <= maxr; r++) {
		/* Every cell of shell r (Chebyshev distance r from c0). */
		long lo[3], hi[3];
		for (int k = 0; k < 3; k++) {
			lo[k] = (long)c0[k] - (long)r;
			hi[k] = (long)c0[k] + (long)r;
		}
		for (long z = lo[2] < 0 ? 0 : lo[2]; z <= hi[2] && z < (long)g->n[2]; z++)
			for (long y = lo[1] < 0 ? 0 : lo[1]; y <= hi[1] && y < (long)g->n[1]; y++)
				for (long x = lo[0] < 0 ? 0 : lo[0]; x <= hi[0] && x < (long)g->n[0]; x++) {
					if (z != lo[2] && z != hi[2] && y != lo[1] && y != hi[1] &&
					    x != lo[0] && x != hi[0])
						continue; /* inside: an earlier shell */
					size_t c = (size_t)x + g->n[0] * ((size_t)y + g->n[1] * (size_t)z);
					for (uint32_t i = g->first[c]; i < g->first[c + 1]; i++) {
						const uint32_t *f = m->tri + 3 * (size_t)g->tris[i];
						double v[3][3];
						for (int q = 0; q < 3; q++)
							for (int k = 0; k < 3; k++)
								v[q][k] = m->xyz[3 * (size_t)f[q] + k];
						double d2 = meshgeom_point_triangle_d2(p, v[0], v[1], v[2]);
						best = d2 < best ? d2 : best;
					}
				}
		/* Anything in a later shell is further than r cells and the way
		 * from p to its own cell's nearest face. */
		if (best < DBL_MAX && sqrt(best) <= (double)r * g->cell + d0)
			break;
	}
	return best < DBL_MAX ? sqrt(best) : 0.0;
}

struct distance_worker {
	const struct distance_grid *g;
	const struct mesh *from;
	size_t begin, end, stride;
	double sum, max;
	size_t n;
};

static void *distance_run(void *arg)
{
	struct distance_worker *w = arg;

	for (size_t i = w->begin; i < w->end; i++) {
		size_t v = i * w->stride;
		double p[3] = {w->from->xyz[3 * v], w->from->xyz[3 * v + 1], w->from->xyz[3 * v + 2]};
		double d = grid_nearest(w->g, p);
		w->sum += d;
		w->max = d > w->max ? d : w->max;
		w->n++;
	}
	return NULL;
}

/* Samples of from's vertices against to's surface. */
static bool distance_one_way(struct r3d_err *err, const struct mesh *from, const struct mesh *to,
			     size_t max_samples, int threads, double *sum, double *max, size_t *n)
{
	struct distance_grid g;
	struct distance_worker wk[MESH_MAX_THREADS];
	bool ok = false;

	if (from->nvert == 0 || to->ntri == 0)
		return true;
	if (!grid_build(err, to, &g))
		goto out;
	size_t stride = (from->nvert + max_samples - 1) / max_samples;
	stride = stride > 0 ? stride : 1;
	size_t count = (from->nvert + stride - 1) / stride;
	memset(wk, 0, sizeof(wk));
	for (int t = 0; t < threads; t++) {
		wk[t].g = &g;
		wk[t].from = from;
		wk[t].stride = stride;
		wk[t].begin = count * (size_t)t / (size_t)threads;
		wk[t].end = count * (size_t)(t + 1) / (size_t)threads;
	}
	meshpar_run(threads, wk, sizeof(wk[0]), distance_run);
	for (int t = 0; t < threads; t++) {
		*sum += wk[t].sum;
		*max = wk[t].max > *max ? wk[t].max : *max;
		*n += wk[t].n;
	}
	ok = true;
out:
	grid_free(&g);
	return ok;
}

bool mesh_distance(struct r3d_err *err, const struct mesh *a, const struct mesh *b,
		   size_t max_samples, int threads, struct mesh_distance *out)
{
	double sum = 0, max = 0;
	size_t n = 0;

	memset(out, 0, sizeof(*out));
	if (max_samples == 0 || threads < 1 || threads > MESH_MAX_THREADS)
		return r3d_err_set(err, R3D_EINVAL, "distance: %zu samples, %d threads", max_samples,
				   threads);
	if (!distance_one_way(err, a, b, max_samples, threads, &sum, &max, &n) ||
	    !distance_one_way(err, b, a, max_samples, threads, &sum, &max, &n))
		return false;
	out->mean = n > 0 ? sum / (double)n : 0.0;
	out->max = max;
	out->samples = n;
	return true;
}
