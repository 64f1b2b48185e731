/*
 * smooth.c: Taubin lambda/mu smoothing (Taubin 1995): alternate a shrinking
 * Laplacian step (lambda > 0) and an inflating one (mu < -lambda), which
 * together make a low-pass filter that removes the marching-cubes staircase
 * without the shrinkage of plain Laplacian smoothing. Uniform weights over
 * the edge neighbours. Any thread; one thread per mesh; it starts
 * threads - 1 pthreads per step and joins them before going on.
 *
 * Frame: any; it is the same before and after.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "meshpar.h"
#include "r3d/mesh.h"
#include "r3d/util.h"

void mesh_smooth_defaults(struct mesh_smooth_params *p)
{
	p->iterations = 10;
	p->lambda = 0.5;
	p->mu = -0.53;
	p->threads = 1;
	p->clamp = 0.0;
}

struct smooth_worker {
	const size_t *first;
	const uint32_t *nb;
	const float *in;
	float *out;
	double f;
	const float *orig;   /* clamp > 0: the starting points */
	float clamp;
	size_t v0, v1;
};

/* p_out = p_in + f * (mean of neighbours - p_in), for vertices v0..v1-1. */
static void *smooth_step(void *arg)
{
	const struct smooth_worker *w = arg;

	for (size_t v = w->v0; v < w->v1; v++) {
		float s[3] = {0, 0, 0};
		size_t n = w->first[v + 1] - w->first[v];
		const float *p = w->in + 3 * v;

		if (n == 0) {
			memcpy(w->out + 3 * v, p, 3 * sizeof(float));
			continue;
		}
		for (size_t h = w->first[v]; h < w->first[v + 1]; h++) {
			const float *q = w->in + 3 * (size_t)w->nb[h];
			s[0] += q[0];
			s[1] += q[1];
			s[2] += q[2];
		}
		float inv = 1.0f / (float)n, f = (float)w->f;
		for (int d = 0; d < 3; d++)
			w->out[3 * v + d] = p[d] + f * (s[d] * inv - p[d]);
		if (w->clamp > 0.0f) {
			const float *o = w->orig + 3 * v;
			for (int d = 0; d < 3; d++) {
				float lo = o[d] - w->clamp, hi = o[d] + w->clamp, x = w->out[3 * v + d];
				w->out[3 * v + d] = x < lo ? lo : (x > hi ? hi : x);
			}
		}
	}
	return NULL;
}

/* One smoothing step over all vertices with n threads. */
static void smooth_run(int n, struct smooth_worker *wk, const float *in, float *out, double f)
{
	for (int t = 0; t < n; t++) {
		wk[t].in = in;
		wk[t].out = out;
		wk[t].f = f;
	}
	meshpar_run(n, wk, sizeof(wk[0]), smooth_step);
}

static int smooth_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

bool mesh_smooth(struct r3d_err *err, struct mesh *m, const struct mesh_smooth_params *p)
{
	size_t *first = NULL, nhalf = 0, tmp_bytes = 0;
	uint32_t *nb = NULL;
	float *tmp = NULL, *orig = NULL;
	bool ok = false;

	if (p->iterations < 0 || p->iterations > MESH_MAX_SMOOTH_ITER || !isfinite(p->lambda) ||
	    !isfinite(p->mu) || p->lambda <= 0.0 || p->lambda >= 1.0 || p->mu >= 0.0 ||
	    p->mu <= -1.0 || p->threads < 1 || p->threads > MESH_MAX_THREADS ||
	    !isfinite(p->clamp) || p->clamp < 0.0) {
		r3d_err_set(err, R3D_EINVAL,
			    "smooth: need 0..%d iterations, 0 < lambda < 1, -1 < mu < 0, 1..%d threads, "
			    "clamp >= 0", MESH_MAX_SMOOTH_ITER, MESH_MAX_THREADS);
		goto out;
	}
	if (p->iterations == 0 || m->ntri == 0) {
		ok = true;
		goto out;
	}
	if (!size_mul(m->ntri, 6, &nhalf) || !size_mul3(m->nvert, 3, sizeof(float), &tmp_bytes)) {
		r3d_err_set(err, R3D_EINVAL, "smooth: mesh too large");
		goto out;
	}
	first = calloc(m->nvert + 2, sizeof(*first));
	nb = malloc(nhalf * sizeof(*nb));
	tmp = bigbuf_alloc(err, tmp_bytes);
	if (p->clamp > 0.0)
		orig = bigbuf_alloc(err, tmp_bytes);
	if (first == NULL || nb == NULL || tmp == NULL || (p->clamp > 0.0 && orig == NULL)) {
		r3d_err_set(err, R3D_ENOMEM, "smooth: cannot allocate neighbour lists");
		goto out;
	}
	if (orig != NULL)
		memcpy(orig, m->xyz, tmp_bytes);
	/* Neighbours through both directions of every triangle edge, so that
	 * boundary vertices see all of theirs; repeats are dropped below. */
	for (size_t i = 0; i < 3 * m->ntri; i++) {
		if (m->tri[i] >= m->nvert) {
			r3d_err_set(err, R3D_EINVAL, "smooth: triangle %zu uses a bad vertex", i / 3);
			goto out;
		}
		first[m->tri[i] + 2] += 2;
	}
	for (size_t v = 0; v < m->nvert; v++)
		first[v + 2] += first[v + 1];
	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		for (int c = 0; c < 3; c++) {
			nb[first[f[c] + 1]++] = f[(c + 1) % 3];
			nb[first[f[c] + 1]++] = f[(c + 2) % 3];
		}
	}
	/* Keep each neighbour once: sort each short list, drop repeats, and
	 * pack the lists (first[] moves down as they shrink). */
	size_t w = 0, begin = 0;
	for (size_t v = 0; v < m->nvert; v++) {
		size_t end = first[v + 1];
		qsort(nb + begin, end - begin, sizeof(*nb), smooth_cmp_u32);
		first[v] = w;
		for (size_t h = begin; h < end; h++) {
			if (h == begin || nb[h] != nb[h - 1])
				nb[w++] = nb[h];
		}
		begin = end;
	}
	first[m->nvert] = w;

	struct smooth_worker wk[MESH_MAX_THREADS];
	for (int t = 0; t < p->threads; t++) {
		wk[t].first = first;
		wk[t].nb = nb;
		wk[t].orig = orig;
		wk[t].clamp = (float)p->clamp;
		wk[t].v0 = m->nvert * (size_t)t / (size_t)p->threads;
		wk[t].v1 = m->nvert * (size_t)(t + 1) / (size_t)p->threads;
	}
	for (int it = 0; it < p->iterations; it++) {
		smooth_run(p->threads, wk, m->xyz, tmp, p->lambda);
		smooth_run(p->threads, wk, tmp, m->xyz, p->mu);
	}
	ok = true;
out:
	bigbuf_free(orig, orig != NULL ? tmp_bytes : 0);
	bigbuf_free(tmp, tmp_bytes);
	free(nb);
	free(first);
	return ok;
}
