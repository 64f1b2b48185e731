/*
 * smooth.c: Taubin lambda/mu smoothing (Taubin 1995): alternate a shrinking
 * Laplacian step (lambda > 0) and an inflating one (mu < -lambda), which
 * together make a low-pass filter that removes the marching-cubes staircase
 * without the shrinkage of plain Laplacian smoothing. Uniform weights over
 * the edge neighbours. Any thread; one thread per mesh.
 *
 * Frame: any; it is the same before and after.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/mesh.h"
#include "r3d/util.h"

void mesh_smooth_defaults(struct mesh_smooth_params *p)
{
	p->iterations = 10;
	p->lambda = 0.5;
	p->mu = -0.53;
}

/* p_out = p_in + f * (mean of neighbours - p_in), for every vertex. */
static void smooth_step(const struct mesh *m, const size_t *first, const uint32_t *nb,
			const float *in, float *outp, double f)
{
	for (size_t v = 0; v < m->nvert; v++) {
		double s[3] = {0, 0, 0};
		size_t n = first[v + 1] - first[v];
		const float *p = in + 3 * v;

		if (n == 0) {
			memcpy(outp + 3 * v, p, 3 * sizeof(float));
			continue;
		}
		for (size_t h = first[v]; h < first[v + 1]; h++) {
			const float *q = in + 3 * (size_t)nb[h];
			s[0] += q[0];
			s[1] += q[1];
			s[2] += q[2];
		}
		for (int d = 0; d < 3; d++)
			outp[3 * v + d] = (float)(p[d] + f * (s[d] / (double)n - p[d]));
	}
}

bool mesh_smooth(struct r3d_err *err, struct mesh *m, const struct mesh_smooth_params *p)
{
	size_t *first = NULL, nhalf = 0, tmp_bytes = 0;
	uint32_t *nb = NULL;
	float *tmp = NULL;
	bool ok = false;

	if (p->iterations < 0 || p->iterations > MESH_MAX_SMOOTH_ITER || !isfinite(p->lambda) ||
	    !isfinite(p->mu) || p->lambda <= 0.0 || p->lambda >= 1.0 || p->mu >= 0.0 ||
	    p->mu <= -1.0) {
		r3d_err_set(err, R3D_EINVAL,
			    "smooth: need 0..%d iterations, 0 < lambda < 1, -1 < mu < 0",
			    MESH_MAX_SMOOTH_ITER);
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
	if (first == NULL || nb == NULL || tmp == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "smooth: cannot allocate neighbour lists");
		goto out;
	}
	/* Neighbours through both directions of every triangle edge: on a
	 * closed surface each neighbour is listed twice, so weights stay equal. */
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
	for (int it = 0; it < p->iterations; it++) {
		smooth_step(m, first, nb, m->xyz, tmp, p->lambda);
		smooth_step(m, first, nb, tmp, m->xyz, p->mu);
	}
	ok = true;
out:
	bigbuf_free(tmp, tmp_bytes);
	free(nb);
	free(first);
	return ok;
}
