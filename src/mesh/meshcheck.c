/*
 * meshcheck.c: the checks a surgical model must pass before it leaves:
 * closed and 2-manifold with consistent orientation (each edge in exactly
 * two triangles, once in each direction), the Euler characteristic, and the
 * signed enclosed volume, area and centroid. Any thread; read-only.
 *
 * Frame: whatever frame the mesh is in (voxel index or LPS mm).
 *
 * Edges are found through a compressed list of outgoing half-edges per
 * vertex (counting sort by start vertex), so the cost is linear in the
 * number of triangles.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/mesh.h"
#include "r3d/util.h"

/* Number of directed half-edges a -> b in a's list. */
static size_t check_count(const size_t *first, const uint32_t *to, uint32_t a, uint32_t b)
{
	size_t n = 0;

	for (size_t h = first[a]; h < first[a + 1]; h++)
		n += to[h] == b;
	return n;
}

static void check_geometry(const struct mesh *m, struct mesh_stats *st)
{
	double ref[3] = {0, 0, 0}, vol6 = 0, area2 = 0, cen[3] = {0, 0, 0};

	/* Sums about a point near the mesh keep float round-off small. */
	if (m->ntri > 0) {
		const float *p = m->xyz + 3 * (size_t)m->tri[0];
		ref[0] = p[0];
		ref[1] = p[1];
		ref[2] = p[2];
	}
	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		double v[3][3];
		for (int c = 0; c < 3; c++) {
			for (int d = 0; d < 3; d++)
				v[c][d] = m->xyz[3 * (size_t)f[c] + d] - ref[d];
		}
		double e1[3] = {v[1][0] - v[0][0], v[1][1] - v[0][1], v[1][2] - v[0][2]};
		double e2[3] = {v[2][0] - v[0][0], v[2][1] - v[0][1], v[2][2] - v[0][2]};
		double n[3] = {e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2],
			       e1[0] * e2[1] - e1[1] * e2[0]};
		area2 += sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
		/* Tetrahedron (ref, v0, v1, v2): 6 * volume = v0 . (v1 x v2). */
		double t6 = v[0][0] * (v[1][1] * v[2][2] - v[1][2] * v[2][1]) -
			    v[0][1] * (v[1][0] * v[2][2] - v[1][2] * v[2][0]) +
			    v[0][2] * (v[1][0] * v[2][1] - v[1][1] * v[2][0]);
		vol6 += t6;
		for (int d = 0; d < 3; d++)
			cen[d] += t6 * (v[0][d] + v[1][d] + v[2][d]) / 4.0;
	}
	st->volume = vol6 / 6.0;
	st->volume_ml = st->volume / 1000.0;
	st->area = area2 / 2.0;
	for (int d = 0; d < 3; d++)
		st->centroid[d] = vol6 != 0.0 ? cen[d] / vol6 + ref[d] : ref[d];
}

bool mesh_check(struct r3d_err *err, const struct mesh *m, struct mesh_stats *st)
{
	size_t *first = NULL, nhalf = 0;
	uint32_t *to = NULL;
	uint8_t *used = NULL;
	bool ok = false;

	memset(st, 0, sizeof(*st));
	st->ntri = m->ntri;
	for (size_t i = 0; i < 3 * m->ntri; i++) {
		if (m->tri[i] >= m->nvert) {
			r3d_err_set(err, R3D_EINVAL, "check: triangle %zu uses vertex %u of %zu",
				    i / 3, m->tri[i], m->nvert);
			goto out;
		}
	}
	if (!size_mul(m->ntri, 3, &nhalf)) {
		r3d_err_set(err, R3D_EINVAL, "check: too many triangles");
		goto out;
	}
	first = calloc(m->nvert + 2, sizeof(*first));
	to = malloc((nhalf > 0 ? nhalf : 1) * sizeof(*to));
	used = calloc(m->nvert + 1, 1);
	if (first == NULL || to == NULL || used == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "check: cannot allocate edge lists");
		goto out;
	}
	/* Counting sort of half-edges a -> b by a. */
	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		if (f[0] == f[1] || f[1] == f[2] || f[0] == f[2])
			st->degenerate_tri++;
		for (int c = 0; c < 3; c++) {
			first[f[c] + 2]++;
			used[f[c]] = 1;
		}
	}
	for (size_t v = 0; v < m->nvert; v++) {
		first[v + 2] += first[v + 1];
		st->nvert += used[v];
	}
	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		for (int c = 0; c < 3; c++)
			to[first[f[c] + 1]++] = f[(c + 1) % 3];
	}
	/* Now first[a] .. first[a + 1] are a's half-edges. Each undirected
	 * edge is counted once: at its first copy in the list of its smaller
	 * end, or of its only end when no half-edge runs back. */
	for (uint32_t a = 0; a < m->nvert; a++) {
		for (size_t h = first[a]; h < first[a + 1]; h++) {
			uint32_t b = to[h];
			size_t back = check_count(first, to, b, a);
			bool first_copy = true;

			if (a > b && back > 0)
				continue;
			for (size_t g = first[a]; g < h; g++)
				first_copy = first_copy && to[g] != b;
			if (!first_copy)
				continue;
			size_t same = check_count(first, to, a, b);
			st->nedge++;
			if (same + back == 1)
				st->boundary_edges++;
			else if (same + back > 2)
				st->nonmanifold_edges++;
			else if (same != 1)
				st->misoriented_edges++;
		}
	}
	st->closed = st->boundary_edges == 0;
	st->manifold = st->closed && st->nonmanifold_edges == 0 && st->misoriented_edges == 0 &&
		       st->degenerate_tri == 0;
	st->euler = (long)st->nvert - (long)st->nedge + (long)st->ntri;
	st->zero_area_tri = mesh_count_slivers(m);
	check_geometry(m, st);
	ok = true;
out:
	free(used);
	free(to);
	free(first);
	return ok;
}
