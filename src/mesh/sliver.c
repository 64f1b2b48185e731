/*
 * sliver.c: removes zero-area triangles ("slivers") from a closed, oriented
 * mesh by edge flips. Decimation on a flat region (the caps where a body
 * leaves the volume) can leave a vertex r lying on the opposite edge p-q of
 * its triangle (p, q, r). With the neighbour (q, p, s) across p-q, the pair
 * covers exactly the triangle (q, p, s); replacing it by (q, r, s) and
 * (r, p, s) keeps the surface, its orientation and every edge in two
 * triangles, and both new triangles have area. Where a flip cannot help (the
 * neighbour is flat too, or the new edge exists), the sliver's apex is
 * collapsed into the nearer end of its long edge when the link condition
 * holds and no triangle folds. Frame-agnostic; any thread, one mesh per call.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/mesh.h"
#include "r3d/util.h"

#define SLIVER_MAX_PASSES 32
/* A triangle is a sliver when twice its area is below this fraction of its
 * longest edge squared (its height is below ~1e-6 of its longest edge). */
#define SLIVER_REL_AREA 1e-6
#define EDGE_EMPTY UINT64_MAX
#define EDGE_GONE (UINT64_MAX - 1)

/* Directed edge (from << 32 | to) -> triangle, open addressing, updated in
 * place as edges are flipped. */
struct edge_map {
	uint64_t *key;
	uint32_t *tri;
	size_t mask;
};

static uint64_t edge_key(uint32_t from, uint32_t to)
{
	return (uint64_t)from << 32 | to;
}

static size_t edge_slot(const struct edge_map *h, uint64_t key)
{
	uint64_t x = key * 0x9E3779B97F4A7C15ull;
	return (size_t)(x ^ (x >> 29)) & h->mask;
}

static void edge_put(struct edge_map *h, uint64_t key, uint32_t tri)
{
	size_t i = edge_slot(h, key);

	while (h->key[i] != EDGE_EMPTY && h->key[i] != EDGE_GONE && h->key[i] != key)
		i = (i + 1) & h->mask;
	h->key[i] = key;
	h->tri[i] = tri;
}

/* Triangle holding directed edge from -> to, or UINT32_MAX. */
static uint32_t edge_get(const struct edge_map *h, uint32_t from, uint32_t to)
{
	uint64_t key = edge_key(from, to);
	size_t i = edge_slot(h, key);

	while (h->key[i] != EDGE_EMPTY) {
		if (h->key[i] == key)
			return h->tri[i];
		i = (i + 1) & h->mask;
	}
	return UINT32_MAX;
}

static void edge_del(struct edge_map *h, uint32_t from, uint32_t to)
{
	uint64_t key = edge_key(from, to);
	size_t i = edge_slot(h, key);

	while (h->key[i] != EDGE_EMPTY) {
		if (h->key[i] == key) {
			h->key[i] = EDGE_GONE;
			return;
		}
		i = (i + 1) & h->mask;
	}
}

/* Twice the area, and the index (0..2) of the corner facing the longest
 * edge, of triangle t. */
static double tri_area2(const struct mesh *m, const uint32_t *t, int *apex, double *longest2)
{
	const float *v[3] = {m->xyz + 3 * (size_t)t[0], m->xyz + 3 * (size_t)t[1],
			     m->xyz + 3 * (size_t)t[2]};
	double e[3][3], len2[3], c[3];

	for (int i = 0; i < 3; i++) {
		/* e[i]: the edge facing corner i */
		const float *a = v[(i + 1) % 3], *b = v[(i + 2) % 3];
		len2[i] = 0;
		for (int k = 0; k < 3; k++) {
			e[i][k] = (double)b[k] - (double)a[k];
			len2[i] += e[i][k] * e[i][k];
		}
	}
	c[0] = e[1][1] * e[2][2] - e[1][2] * e[2][1];
	c[1] = e[1][2] * e[2][0] - e[1][0] * e[2][2];
	c[2] = e[1][0] * e[2][1] - e[1][1] * e[2][0];
	*apex = 0;
	for (int i = 1; i < 3; i++) {
		if (len2[i] > len2[*apex])
			*apex = i;
	}
	*longest2 = len2[*apex];
	return sqrt(c[0] * c[0] + c[1] * c[1] + c[2] * c[2]);
}

static bool is_sliver(const struct mesh *m, const uint32_t *t, int *apex)
{
	double longest2;
	double a2 = tri_area2(m, t, apex, &longest2);

	return longest2 > 0 && a2 <= SLIVER_REL_AREA * longest2;
}

size_t mesh_count_slivers(const struct mesh *m);


/* ------------------------------------------------------------------ */
/* Fallback: collapse the apex of a sliver the flips could not fix     */
/* ------------------------------------------------------------------ */

#define SLIVER_MAX_RING 256   /* vertices around one vertex we look at */

static void tri_normal(const struct mesh *m, const uint32_t *t, double n[3])
{
	const float *a = m->xyz + 3 * (size_t)t[0], *b = m->xyz + 3 * (size_t)t[1],
		    *c = m->xyz + 3 * (size_t)t[2];
	double u[3], v[3];

	for (int k = 0; k < 3; k++) {
		u[k] = (double)b[k] - (double)a[k];
		v[k] = (double)c[k] - (double)a[k];
	}
	n[0] = u[1] * v[2] - u[2] * v[1];
	n[1] = u[2] * v[0] - u[0] * v[2];
	n[2] = u[0] * v[1] - u[1] * v[0];
}

static bool tri_has(const uint32_t *t, uint32_t v)
{
	return t[0] == v || t[1] == v || t[2] == v;
}

static bool ring_add(uint32_t *ring, size_t *n, uint32_t v)
{
	for (size_t i = 0; i < *n; i++) {
		if (ring[i] == v)
			return true;
	}
	if (*n == SLIVER_MAX_RING)
		return false;
	ring[(*n)++] = v;
	return true;
}

/* Whether vertex r can be collapsed into vertex a keeping a closed
 * 2-manifold: the link condition (r and a share exactly the two vertices
 * opposite their edge) and no proper triangle around r folds over or loses
 * its area. *dv is the change of enclosed volume it would make: every
 * triangle around r ends up holding a, so it is minus the signed volumes of
 * the tetrahedra from a to those triangles. With apply, the collapse is made:
 * triangles that held both r and a are marked dead (all corners a). */
static bool collapse_into(struct mesh *m, uint32_t r, uint32_t a, bool apply, double *dv)
{
	uint32_t ring_r[SLIVER_MAX_RING], ring_a[SLIVER_MAX_RING];
	size_t nr = 0, na = 0, shared_tris = 0, common = 0;
	uint32_t opposite[2] = {UINT32_MAX, UINT32_MAX};

	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		bool hr = tri_has(f, r), ha = tri_has(f, a);
		if (f[0] == f[1] && f[1] == f[2])
			continue;   /* dead */
		for (int i = 0; i < 3; i++) {
			if (hr && f[i] != r && !ring_add(ring_r, &nr, f[i]))
				return false;
			if (ha && f[i] != a && !ring_add(ring_a, &na, f[i]))
				return false;
		}
		if (hr && ha) {
			if (shared_tris < 2)
				opposite[shared_tris] = f[0] + f[1] + f[2] - r - a;
			shared_tris++;
		}
	}
	if (shared_tris != 2)
		return false;
	for (size_t i = 0; i < nr; i++) {
		for (size_t j = 0; j < na; j++) {
			if (ring_r[i] != ring_a[j])
				continue;
			if (ring_r[i] != opposite[0] && ring_r[i] != opposite[1])
				return false;   /* the link condition fails */
			common++;
		}
	}
	if (common != 2)
		return false;
	/* Geometry: every triangle that keeps r (now a) keeps its side and area. */
	for (size_t t = 0; t < m->ntri; t++) {
		uint32_t *f = m->tri + 3 * t;
		if (!tri_has(f, r) || tri_has(f, a))
			continue;
		uint32_t g[3] = {f[0] == r ? a : f[0], f[1] == r ? a : f[1], f[2] == r ? a : f[2]};
		double n0[3], n1[3];
		int apex;
		/* A sliver has no side to keep (a fan of them shrinks by one);
		 * a proper triangle must keep its side and its area. */
		if (is_sliver(m, f, &apex))
			continue;
		tri_normal(m, f, n0);
		tri_normal(m, g, n1);
		if (n0[0] * n1[0] + n0[1] * n1[1] + n0[2] * n1[2] <= 0 || is_sliver(m, g, &apex))
			return false;
	}
	*dv = 0;
	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		const float *va = m->xyz + 3 * (size_t)a;
		double u[3][3];
		if (!tri_has(f, r) || (f[0] == f[1] && f[1] == f[2]))
			continue;
		for (int i = 0; i < 3; i++) {
			for (int k = 0; k < 3; k++)
				u[i][k] = (double)m->xyz[3 * (size_t)f[i] + k] - (double)va[k];
		}
		*dv -= (u[0][0] * (u[1][1] * u[2][2] - u[1][2] * u[2][1]) -
			u[0][1] * (u[1][0] * u[2][2] - u[1][2] * u[2][0]) +
			u[0][2] * (u[1][0] * u[2][1] - u[1][1] * u[2][0])) / 6.0;
	}
	if (!apply)
		return true;
	for (size_t t = 0; t < m->ntri; t++) {
		uint32_t *f = m->tri + 3 * t;
		if (!tri_has(f, r))
			continue;
		if (tri_has(f, a)) {
			f[0] = f[1] = f[2] = a;   /* dead: removed below */
			continue;
		}
		for (int i = 0; i < 3; i++) {
			if (f[i] == r)
				f[i] = a;
		}
	}
	return true;
}

static size_t collapse_slivers(struct mesh *m)
{
	size_t done = 0;

	for (size_t t = 0; t < m->ntri; t++) {
		uint32_t *f = m->tri + 3 * t;
		int apex;
		if (f[0] == f[1] && f[1] == f[2])
			continue;
		if (!is_sliver(m, f, &apex))
			continue;
		uint32_t p = f[(apex + 1) % 3], q = f[(apex + 2) % 3], r = f[apex];
		/* The apex into either end of the long edge, or either end into
		 * the apex (an end that is a valence-3 vertex folded back onto the
		 * apex's line blocks the flip and the apex's collapses alike):
		 * of those that keep a manifold, the one that changes the enclosed
		 * volume least. */
		const uint32_t cand[4][2] = {{r, p}, {r, q}, {p, r}, {q, r}};
		int best = -1;
		double best_dv = 0, dv;
		for (int c = 0; c < 4; c++) {
			if (collapse_into(m, cand[c][0], cand[c][1], false, &dv) &&
			    (best < 0 || fabs(dv) < best_dv)) {
				best = c;
				best_dv = fabs(dv);
			}
		}
		if (best >= 0 && collapse_into(m, cand[best][0], cand[best][1], true, &dv))
			done++;
	}
	return done;
}


/* ------------------------------------------------------------------ */
/* Flat components: closed pieces with no area at all                  */
/* ------------------------------------------------------------------ */

static uint32_t uf_find(uint32_t *parent, uint32_t i)
{
	while (parent[i] != i) {
		parent[i] = parent[parent[i]];
		i = parent[i];
	}
	return i;
}

/* Removes edge-connected components whose every triangle is a sliver: the
 * pinch repair after decimation can leave such a piece folded onto a line.
 * Its edges belong to it alone, so the rest stays closed. h must map the
 * current triangles. Returns the triangles removed. */
static size_t drop_flat_components(struct mesh *m, const struct edge_map *h, uint32_t *parent,
				   uint8_t *area_seen)
{
	size_t removed = 0;

	for (size_t t = 0; t < m->ntri; t++) {
		parent[t] = (uint32_t)t;
		area_seen[t] = 0;
	}
	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		for (int i = 0; i < 3; i++) {
			uint32_t u = edge_get(h, f[(i + 1) % 3], f[i]);
			if (u != UINT32_MAX) {
				uint32_t a = uf_find(parent, (uint32_t)t), b = uf_find(parent, u);
				if (a != b)
					parent[a] = b;
			}
		}
	}
	for (size_t t = 0; t < m->ntri; t++) {
		int apex;
		if (!is_sliver(m, m->tri + 3 * t, &apex))
			area_seen[uf_find(parent, (uint32_t)t)] = 1;
	}
	for (size_t t = 0; t < m->ntri; t++) {
		uint32_t *f = m->tri + 3 * t;
		if (!area_seen[uf_find(parent, (uint32_t)t)]) {
			f[1] = f[2] = f[0];   /* dead: removed by mesh_remove_degenerate */
			removed++;
		}
	}
	return removed;
}

bool mesh_flip_slivers(struct r3d_err *err, struct mesh *m, size_t *flipped, size_t *left)
{
	struct edge_map h = {NULL, NULL, 0};
	size_t ne = 0, cap = 1;
	bool ok = false;

	*flipped = 0;
	*left = 0;
	if (!size_mul(3, m->ntri, &ne))
		return r3d_err_set(err, R3D_EINVAL, "slivers: mesh too large");
	while (cap < 2 * ne + 1) {
		if (cap > SIZE_MAX / 4)
			return r3d_err_set(err, R3D_EINVAL, "slivers: mesh too large");
		cap *= 2;
	}
	h.key = malloc(cap * sizeof(*h.key));
	h.tri = malloc(cap * sizeof(*h.tri));
	h.mask = cap - 1;
	if (h.key == NULL || h.tri == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "slivers: out of memory");
		goto out;
	}
	memset(h.key, 0xff, cap * sizeof(*h.key));   /* EDGE_EMPTY */
	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		for (int i = 0; i < 3; i++)
			edge_put(&h, edge_key(f[i], f[(i + 1) % 3]), (uint32_t)t);
	}
	for (int pass = 0; pass < SLIVER_MAX_PASSES; pass++) {
		size_t done = 0;
		for (size_t t = 0; t < m->ntri; t++) {
			uint32_t *f = m->tri + 3 * t;
			int apex, apex2;
			if (!is_sliver(m, f, &apex))
				continue;
			/* f = (p, q, r) with r the apex facing the longest edge p -> q. */
			uint32_t p = f[(apex + 1) % 3], q = f[(apex + 2) % 3], r = f[apex];
			uint32_t t2 = edge_get(&h, q, p);
			if (t2 == UINT32_MAX || t2 == (uint32_t)t)
				continue;
			uint32_t *g = m->tri + 3 * (size_t)t2;
			uint32_t s = g[0] + g[1] + g[2] - p - q;   /* the corner of g off p-q */
			if (s == r || is_sliver(m, g, &apex2))
				continue;   /* a flat neighbour: a later flip may free it */
			/* A new edge r-s must not exist already (it would be in 3 triangles). */
			if (edge_get(&h, r, s) != UINT32_MAX || edge_get(&h, s, r) != UINT32_MAX)
				continue;
			/* (p, q, r) + (q, p, s) -> (q, r, s) + (r, p, s) */
			edge_del(&h, p, q);
			edge_del(&h, q, p);
			f[0] = q;
			f[1] = r;
			f[2] = s;
			g[0] = r;
			g[1] = p;
			g[2] = s;
			edge_put(&h, edge_key(r, s), (uint32_t)t);
			edge_put(&h, edge_key(s, q), (uint32_t)t);
			edge_put(&h, edge_key(s, r), t2);
			edge_put(&h, edge_key(r, p), t2);
			done++;
		}
		*flipped += done;
		if (done == 0)
			break;
	}
	/* Pieces with no area at all go whole. */
	if (mesh_count_slivers(m) > 0) {
		uint32_t *parent = malloc(m->ntri * sizeof(*parent));
		uint8_t *seen = malloc(m->ntri > 0 ? m->ntri : 1);
		if (parent == NULL || seen == NULL) {
			free(parent);
			free(seen);
			r3d_err_set(err, R3D_ENOMEM, "slivers: out of memory");
			goto out;
		}
		size_t gone = drop_flat_components(m, &h, parent, seen);
		free(parent);
		free(seen);
		if (gone > 0)
			mesh_remove_degenerate(m);
		*flipped += gone;
	}
	/* What flips cannot fix (a flat neighbour, an edge already there) is
	 * collapsed, a handful per mesh; each collapse scans the mesh. */
	if (mesh_count_slivers(m) > 0) {
		size_t collapsed = 0, c;
		for (int pass = 0; pass < SLIVER_MAX_PASSES; pass++) {
			c = collapse_slivers(m);
			collapsed += c;
			if (c == 0 || mesh_count_slivers(m) == 0)
				break;
		}
		if (collapsed > 0)
			mesh_remove_degenerate(m);
		*flipped += collapsed;
	}
	*left = mesh_count_slivers(m);
	ok = true;
out:
	free(h.tri);
	free(h.key);
	return ok;
}

size_t mesh_count_slivers(const struct mesh *m)
{
	size_t n = 0;

	for (size_t t = 0; t < m->ntri; t++) {
		int apex;
		if (is_sliver(m, m->tri + 3 * t, &apex))
			n++;
	}
	return n;
}
