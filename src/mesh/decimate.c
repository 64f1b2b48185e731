/*
 * decimate.c: vertex welding, removal of degenerate triangles, and
 * decimation to a triangle budget with meshoptimizer's edge-collapse
 * simplifier (meshopt_simplify, called through its C API), and the repair
 * of what that simplifier can leave behind on thin parts (it does not test
 * the link condition): back-to-back duplicate triangles and sheets pinched
 * together at an edge or a vertex. Any thread; one thread per mesh;
 * mesh_decimate() with threads > 1 starts threads - 1 pthreads (one slab
 * each) and joins them.
 *
 * Frame: any; positions are only compared and moved by the simplifier.
 */
#include <float.h>
#include <math.h>
#include <meshoptimizer.h>
#include <stdlib.h>
#include <string.h>

#include "meshpar.h"
#include "r3d/mesh.h"
#include "r3d/util.h"

/* Replaces m->xyz by a new buffer of nvert vertices. */
static void decimate_swap_xyz(struct mesh *m, float *xyz, size_t bytes, size_t nvert)
{
	bigbuf_free(m->xyz, m->xyz_bytes);
	m->xyz = xyz;
	m->xyz_bytes = bytes;
	m->nvert = nvert;
}

static bool decimate_check_indices(struct r3d_err *err, const struct mesh *m)
{
	for (size_t i = 0; i < 3 * m->ntri; i++) {
		if (m->tri[i] >= m->nvert)
			return r3d_err_set(err, R3D_EINVAL, "triangle %zu uses vertex %u of %zu",
					   i / 3, m->tri[i], m->nvert);
	}
	return true;
}

size_t mesh_remove_degenerate(struct mesh *m)
{
	size_t n = 0;

	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		if (f[0] == f[1] || f[1] == f[2] || f[0] == f[2])
			continue;
		if (n != t)
			memmove(m->tri + 3 * n, f, 3 * sizeof(uint32_t));
		n++;
	}
	size_t removed = m->ntri - n;
	m->ntri = n;
	return removed;
}

bool mesh_weld(struct r3d_err *err, struct mesh *m)
{
	unsigned int *remap = NULL;
	float *xyz = NULL;
	size_t nuniq, bytes = 0;
	bool ok = false;

	if (!decimate_check_indices(err, m))
		goto out;
	if (m->nvert == 0 || m->ntri == 0) {
		ok = true;
		goto out;
	}
	remap = malloc(m->nvert * sizeof(*remap));
	if (remap == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "weld: cannot allocate the remap table");
		goto out;
	}
	/* Equal positions, bit for bit, become one vertex; unreferenced ones go. */
	nuniq = meshopt_generateVertexRemap(remap, m->tri, 3 * m->ntri, m->xyz, m->nvert,
					    3 * sizeof(float));
	bytes = 3 * sizeof(float) * nuniq; /* nuniq <= nvert: no overflow */
	xyz = bigbuf_alloc(err, bytes);
	if (xyz == NULL)
		goto out;
	meshopt_remapVertexBuffer(xyz, m->xyz, m->nvert, 3 * sizeof(float), remap);
	meshopt_remapIndexBuffer(m->tri, m->tri, 3 * m->ntri, remap);
	decimate_swap_xyz(m, xyz, bytes, nuniq);
	xyz = NULL;
	mesh_remove_degenerate(m);
	ok = true;
out:
	bigbuf_free(xyz, bytes);
	free(remap);
	return ok;
}

struct decimate_key {
	uint32_t v[3]; /* sorted vertex indices */
	uint32_t t;    /* triangle */
};

static int decimate_key_cmp(const void *a, const void *b)
{
	const struct decimate_key *x = a, *y = b;

	for (int i = 0; i < 3; i++) {
		if (x->v[i] != y->v[i])
			return x->v[i] < y->v[i] ? -1 : 1;
	}
	return (x->t > y->t) - (x->t < y->t);
}

/* True when triangle f runs v[0] -> v[1] (v sorted), i.e. has the winding
 * of (v[0], v[1], v[2]). */
static bool decimate_winding(const uint32_t *f, const uint32_t *v)
{
	return (f[0] == v[0] && f[1] == v[1]) || (f[1] == v[0] && f[2] == v[1]) ||
	       (f[2] == v[0] && f[0] == v[1]);
}

/* Removes triangles that repeat another one's three vertices: the simplifier
 * can fold a thin part flat, leaving two triangles back to back (opposite
 * windings) on one edge set, which makes their edges non-manifold. A group
 * of back-to-back pairs goes entirely; of same-winding copies one stays. */
static bool decimate_drop_duplicates(struct r3d_err *err, struct mesh *m, size_t *removed)
{
	struct decimate_key *k = NULL;
	uint8_t *drop = NULL;
	bool ok = false;

	*removed = 0;
	k = malloc((m->ntri > 0 ? m->ntri : 1) * sizeof(*k));
	drop = calloc(m->ntri > 0 ? m->ntri : 1, 1);
	if (k == NULL || drop == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "decimate: cannot allocate duplicate keys");
		goto out;
	}
	for (size_t t = 0; t < m->ntri; t++) {
		uint32_t a = m->tri[3 * t], b = m->tri[3 * t + 1], c = m->tri[3 * t + 2], s;
		if (a > b) { s = a; a = b; b = s; }
		if (b > c) { s = b; b = c; c = s; }
		if (a > b) { s = a; a = b; b = s; }
		k[t] = (struct decimate_key){{a, b, c}, (uint32_t)t};
	}
	qsort(k, m->ntri, sizeof(*k), decimate_key_cmp);
	for (size_t i = 0; i < m->ntri;) {
		size_t j = i + 1;
		while (j < m->ntri && memcmp(k[j].v, k[i].v, sizeof(k[i].v)) == 0)
			j++;
		if (j - i > 1) {
			/* Winding parity of each copy relative to the sorted order. */
			size_t npos = 0;
			for (size_t g = i; g < j; g++)
				npos += decimate_winding(m->tri + 3 * (size_t)k[g].t, k[i].v);
			size_t nneg = (j - i) - npos, keep_pos = 0, keep_neg = 0;
			if (npos > nneg)
				keep_pos = 1;
			else if (nneg > npos)
				keep_neg = 1;
			for (size_t g = i; g < j; g++) {
				bool pos = decimate_winding(m->tri + 3 * (size_t)k[g].t, k[i].v);
				if (pos && keep_pos > 0)
					keep_pos--;
				else if (!pos && keep_neg > 0)
					keep_neg--;
				else
					drop[k[g].t] = 1;
			}
		}
		i = j;
	}
	size_t n = 0;
	for (size_t t = 0; t < m->ntri; t++) {
		if (drop[t])
			continue;
		if (n != t)
			memmove(m->tri + 3 * n, m->tri + 3 * t, 3 * sizeof(uint32_t));
		n++;
	}
	*removed = m->ntri - n;
	m->ntri = n;
	ok = true;
out:
	free(drop);
	free(k);
	return ok;
}

static uint32_t decimate_find(uint32_t *parent, uint32_t i)
{
	while (parent[i] != i) {
		parent[i] = parent[parent[i]];
		i = parent[i];
	}
	return i;
}

/* Splits pinched vertices: around each vertex, triangles are grouped by
 * the edges they share with exactly one other triangle, in opposite
 * directions (manifold edges); each group after the first gets its own copy
 * of the vertex. Where the simplifier made two sheets touch along an edge
 * (four triangles on one edge) or at a vertex, they become separate again,
 * so every edge has exactly two triangles. The copies are appended after
 * the m->nvert vertices; (*src)[i] is the vertex copy i repeats.
 * On success the caller frees *src. */
static bool decimate_split_pinches(struct r3d_err *err, struct mesh *m, uint32_t **src,
				   size_t *nextra)
{
	size_t *first = NULL, maxdeg = 0, cap = 0;
	uint32_t *tl = NULL, *parent = NULL, *newid = NULL;
	bool ok = false;

	*src = NULL;
	*nextra = 0;
	first = calloc(m->nvert + 2, sizeof(*first));
	tl = malloc((3 * m->ntri + 1) * sizeof(*tl));
	if (first == NULL || tl == NULL)
		goto nomem;
	for (size_t i = 0; i < 3 * m->ntri; i++)
		first[m->tri[i] + 2]++;
	for (size_t v = 0; v < m->nvert; v++) {
		size_t d = first[v + 2];
		maxdeg = d > maxdeg ? d : maxdeg;
		first[v + 2] += first[v + 1];
	}
	for (size_t i = 0; i < 3 * m->ntri; i++)
		tl[first[m->tri[i] + 1]++] = (uint32_t)(i / 3);
	parent = malloc((maxdeg + 1) * sizeof(*parent));
	newid = malloc((maxdeg + 1) * sizeof(*newid));
	if (parent == NULL || newid == NULL)
		goto nomem;

	for (uint32_t v = 0; v < m->nvert; v++) {
		const uint32_t *t = tl + first[v];
		size_t deg = first[v + 1] - first[v];

		if (deg == 0)
			continue; /* unused vertex */
		for (size_t i = 0; i < deg; i++)
			parent[i] = (uint32_t)i;
		for (size_t i = 0; i < deg; i++) {
			const uint32_t *fi = m->tri + 3 * (size_t)t[i];
			int ci = fi[0] == v ? 0 : fi[1] == v ? 1 : 2;
			uint32_t w = fi[(ci + 1) % 3]; /* edge v -> w */
			size_t uses = 0, partner = deg; /* deg: none */
			for (size_t j = 0; j < deg; j++) {
				const uint32_t *fj = m->tri + 3 * (size_t)t[j];
				if (fj[0] != w && fj[1] != w && fj[2] != w)
					continue;
				uses++;
				int cj = fj[0] == v ? 0 : fj[1] == v ? 1 : 2;
				if (fj[(cj + 2) % 3] == w) /* edge w -> v */
					partner = j;
			}
			if (uses == 2 && partner < deg)
				parent[decimate_find(parent, (uint32_t)i)] =
					decimate_find(parent, (uint32_t)partner);
		}
		/* The group of the first triangle keeps v; others get copies. */
		uint32_t keep = decimate_find(parent, 0);
		for (size_t i = 0; i < deg; i++)
			newid[i] = UINT32_MAX;
		for (size_t i = 0; i < deg; i++) {
			uint32_t r = decimate_find(parent, (uint32_t)i);
			if (r == keep)
				continue;
			if (newid[r] == UINT32_MAX) {
				if (*nextra == cap) {
					size_t ncap = cap > 0 ? 2 * cap : 64;
					uint32_t *grown = realloc(*src, ncap * sizeof(*grown));
					if (grown == NULL)
						goto nomem;
					*src = grown;
					cap = ncap;
				}
				if (m->nvert + *nextra >= MESH_MAX_VERTICES) {
					r3d_err_set(err, R3D_EINVAL, "decimate: too many vertices");
					goto out;
				}
				(*src)[*nextra] = v;
				newid[r] = (uint32_t)(m->nvert + (*nextra)++);
			}
			uint32_t *fi = m->tri + 3 * (size_t)t[i];
			for (int c = 0; c < 3; c++) {
				if (fi[c] == v)
					fi[c] = newid[r];
			}
		}
	}
	ok = true;
	goto out;
nomem:
	r3d_err_set(err, R3D_ENOMEM, "decimate: cannot allocate vertex fans");
out:
	if (!ok) {
		free(*src);
		*src = NULL;
	}
	free(newid);
	free(parent);
	free(tl);
	free(first);
	return ok;
}

/* decimate_split_pinches(), then the copies appended after the vertices
 * (at their originals' positions). */
static bool decimate_split_append(struct r3d_err *err, struct mesh *m, uint32_t **src,
				  size_t *nextra)
{
	size_t bytes;
	float *xyz;

	if (!decimate_split_pinches(err, m, src, nextra))
		return false;
	if (*nextra == 0)
		return true;
	bytes = 3 * sizeof(float) * (m->nvert + *nextra);
	xyz = bigbuf_alloc(err, bytes);
	if (xyz == NULL)
		return false;
	memcpy(xyz, m->xyz, 3 * sizeof(float) * m->nvert);
	for (size_t i = 0; i < *nextra; i++)
		memcpy(xyz + 3 * (m->nvert + i), m->xyz + 3 * (size_t)(*src)[i], 3 * sizeof(float));
	decimate_swap_xyz(m, xyz, bytes, m->nvert + *nextra);
	return true;
}

/* A split pinch leaves each sheet its own copy of the vertex, at the same
 * position: the indices are manifold but an STL, which has no indices, is
 * welded by position by every slicer and sees the sheets joined again (four
 * triangles on an edge). Every vertex of a split, the original and its
 * copies, is moved by this fraction of its mean edge length towards the
 * centre of its own fan: a micrometre on a model, enough that no two share
 * a position (float resolution at 500 mm is 0.03 um). */
#define DECIMATE_SEPARATE_REL 2e-3

static bool decimate_separate_copies(struct r3d_err *err, struct mesh *m, const uint32_t *src,
				     size_t nextra, size_t first_copy)
{
	size_t nflag = 2 * nextra;
	uint32_t *slot = malloc(m->nvert * sizeof(*slot));
	double (*acc)[5] = calloc(nflag > 0 ? nflag : 1, sizeof(*acc));   /* sum xyz, edge length, count */
	uint32_t *vert = malloc((nflag > 0 ? nflag : 1) * sizeof(*vert));
	size_t nslot = 0;

	if (slot == NULL || acc == NULL || vert == NULL) {
		free(slot);
		free(acc);
		free(vert);
		return r3d_err_set(err, R3D_ENOMEM, "decimate: cannot allocate the split vertices");
	}
	memset(slot, 0xff, m->nvert * sizeof(*slot));
	for (size_t i = 0; i < nextra; i++) {
		uint32_t vs[2] = {src[i], (uint32_t)(first_copy + i)};
		for (int k = 0; k < 2; k++) {
			if (slot[vs[k]] == UINT32_MAX) {
				slot[vs[k]] = (uint32_t)nslot;
				vert[nslot++] = vs[k];
			}
		}
	}
	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		for (int c = 0; c < 3; c++) {
			uint32_t sl = slot[f[c]];
			if (sl == UINT32_MAX)
				continue;
			const float *p = m->xyz + 3 * (size_t)f[c];
			for (int o = 1; o <= 2; o++) {
				const float *q = m->xyz + 3 * (size_t)f[(c + o) % 3];
				double e2 = 0;
				for (int k = 0; k < 3; k++) {
					acc[sl][k] += q[k];
					e2 += ((double)q[k] - p[k]) * ((double)q[k] - p[k]);
				}
				acc[sl][3] += sqrt(e2);
				acc[sl][4] += 1;
			}
		}
	}
	for (size_t i = 0; i < nslot; i++) {
		float *p = m->xyz + 3 * (size_t)vert[i];
		double d[3], len = 0;
		if (acc[i][4] == 0)
			continue;
		for (int k = 0; k < 3; k++) {
			d[k] = acc[i][k] / acc[i][4] - p[k];
			len += d[k] * d[k];
		}
		len = sqrt(len);
		if (!(len > 0))
			continue;
		double step = DECIMATE_SEPARATE_REL * acc[i][3] / acc[i][4] / len;
		for (int k = 0; k < 3; k++)
			p[k] = (float)(p[k] + step * d[k]);
	}
	free(slot);
	free(acc);
	free(vert);
	return true;
}

/* ---------------------------------------------------------------------- */
/* Threaded simplification                                                 */
/* ---------------------------------------------------------------------- */

/* Below this many triangles per thread, one meshopt_simplify call is used. */
#define DECIMATE_MIN_TRI_PER_THREAD 100000
/* Bins of the histogram that splits the mesh into slabs. */
#define DECIMATE_BINS 4096

struct decimate_worker {
	const struct mesh *m;
	const uint8_t *slab; /* slab of each triangle */
	uint8_t id;
	size_t target;       /* triangles */
	float max_error;
	unsigned int *out;   /* simplified triangles, global vertex indices */
	size_t nout;         /* indices in out */
	bool failed;
	struct r3d_err err;
};

/* Simplifies one slab with its cut locked, so neighbouring slabs keep
 * identical vertices along the cut and the union stays closed. */
static void *decimate_slab(void *arg)
{
	struct decimate_worker *w = arg;
	const struct mesh *m = w->m;
	uint32_t *map = NULL, *l2g = NULL;
	unsigned int *idx = NULL, *dst = NULL;
	float *lxyz = NULL;
	size_t n = 0, nl = 0;

	for (size_t t = 0; t < m->ntri; t++)
		n += w->slab[t] == w->id;
	map = malloc(m->nvert * sizeof(*map));
	l2g = malloc((3 * n + 1) * sizeof(*l2g));
	idx = malloc((3 * n + 1) * sizeof(*idx));
	dst = malloc((3 * n + 1) * sizeof(*dst));
	lxyz = malloc((3 * n + 1) * 3 * sizeof(*lxyz));
	if (map == NULL || l2g == NULL || idx == NULL || dst == NULL || lxyz == NULL) {
		r3d_err_set(&w->err, R3D_ENOMEM, "decimate: cannot allocate a slab");
		w->failed = true;
		goto out;
	}
	memset(map, 0xff, m->nvert * sizeof(*map));
	size_t k = 0;
	for (size_t t = 0; t < m->ntri; t++) {
		if (w->slab[t] != w->id)
			continue;
		for (int c = 0; c < 3; c++) {
			uint32_t g = m->tri[3 * t + c];
			if (map[g] == UINT32_MAX) {
				map[g] = (uint32_t)nl;
				l2g[nl] = g;
				memcpy(lxyz + 3 * nl, m->xyz + 3 * (size_t)g, 3 * sizeof(float));
				nl++;
			}
			idx[k++] = map[g];
		}
	}
	w->nout = meshopt_simplify(dst, idx, k, lxyz, nl, 3 * sizeof(float), 3 * w->target,
				   w->max_error, meshopt_SimplifyLockBorder, NULL);
	for (size_t i = 0; i < w->nout; i++)
		dst[i] = l2g[dst[i]];
	w->out = dst;
	dst = NULL;
out:
	free(lxyz);
	free(dst);
	free(idx);
	free(l2g);
	free(map);
	return NULL;
}

/* Simplifies m in place with nthreads threads: the triangles are split into
 * slabs of equal count along the longest axis, each slab is simplified with
 * its cut locked, then the joined mesh (a full-resolution strip remains
 * along each cut) gets one last pass to the budget. */
static bool decimate_threaded(struct r3d_err *err, struct mesh *m, size_t target,
			      float max_error, int nthreads)
{
	struct decimate_worker wk[MESH_MAX_THREADS];
	uint8_t *slab = NULL;
	size_t *hist = NULL, total = 0, bytes = 0;
	unsigned int *joined = NULL;
	float *xyz = NULL;
	float lo[3] = {FLT_MAX, FLT_MAX, FLT_MAX}, hi[3] = {-FLT_MAX, -FLT_MAX, -FLT_MAX};
	bool ok = false;
	int axis = 0;

	memset(wk, 0, sizeof(wk));
	slab = malloc(m->ntri);
	hist = calloc(DECIMATE_BINS, sizeof(*hist));
	if (slab == NULL || hist == NULL)
		goto nomem;
	for (size_t v = 0; v < m->nvert; v++) {
		for (int d = 0; d < 3; d++) {
			lo[d] = m->xyz[3 * v + d] < lo[d] ? m->xyz[3 * v + d] : lo[d];
			hi[d] = m->xyz[3 * v + d] > hi[d] ? m->xyz[3 * v + d] : hi[d];
		}
	}
	for (int d = 1; d < 3; d++)
		axis = hi[d] - lo[d] > hi[axis] - lo[axis] ? d : axis;
	double scale = hi[axis] > lo[axis] ? (DECIMATE_BINS - 1) / (double)(hi[axis] - lo[axis]) : 0.0;
	/* Bin of each triangle's centroid, then bins -> slabs of equal count. */
	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		double c = (m->xyz[3 * (size_t)f[0] + axis] + m->xyz[3 * (size_t)f[1] + axis] +
			    m->xyz[3 * (size_t)f[2] + axis]) / 3.0;
		size_t b = (size_t)((c - lo[axis]) * scale);
		b = b < DECIMATE_BINS ? b : DECIMATE_BINS - 1;
		hist[b]++;
	}
	uint8_t bin_slab[DECIMATE_BINS];
	size_t run = 0;
	for (size_t b = 0; b < DECIMATE_BINS; b++) {
		size_t s = run * (size_t)nthreads / m->ntri;
		bin_slab[b] = (uint8_t)(s < (size_t)nthreads ? s : (size_t)nthreads - 1);
		run += hist[b];
	}
	size_t count[MESH_MAX_THREADS] = {0};
	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		double c = (m->xyz[3 * (size_t)f[0] + axis] + m->xyz[3 * (size_t)f[1] + axis] +
			    m->xyz[3 * (size_t)f[2] + axis]) / 3.0;
		size_t b = (size_t)((c - lo[axis]) * scale);
		slab[t] = bin_slab[b < DECIMATE_BINS ? b : DECIMATE_BINS - 1];
		count[slab[t]]++;
	}
	for (int t = 0; t < nthreads; t++) {
		wk[t].m = m;
		wk[t].slab = slab;
		wk[t].id = (uint8_t)t;
		wk[t].target = target * count[t] / m->ntri;
		wk[t].max_error = max_error;
	}
	meshpar_run(nthreads, wk, sizeof(wk[0]), decimate_slab);
	for (int t = 0; t < nthreads; t++) {
		if (wk[t].failed) {
			*err = wk[t].err;
			goto out;
		}
		total += wk[t].nout;
	}
	/* Join (total <= 3 * m->ntri), keep the vertices in use, last pass. */
	joined = malloc((total + 1) * sizeof(*joined));
	if (joined == NULL)
		goto nomem;
	total = 0;
	for (int t = 0; t < nthreads; t++) {
		memcpy(joined + total, wk[t].out, wk[t].nout * sizeof(*joined));
		total += wk[t].nout;
	}
	bytes = 3 * sizeof(float) * m->nvert;
	xyz = bigbuf_alloc(err, bytes);
	if (xyz == NULL)
		goto out;
	size_t nv = meshopt_optimizeVertexFetch(xyz, joined, total, m->xyz, m->nvert,
						3 * sizeof(float));
	decimate_swap_xyz(m, xyz, bytes, nv);
	xyz = NULL;
	if (total > 3 * target) {
		m->ntri = meshopt_simplify(m->tri, joined, total, m->xyz, m->nvert,
					   3 * sizeof(float), 3 * target, max_error, 0, NULL) / 3;
	} else {
		memcpy(m->tri, joined, total * sizeof(*joined));
		m->ntri = total / 3;
	}
	ok = true;
	goto out;
nomem:
	r3d_err_set(err, R3D_ENOMEM, "decimate: cannot allocate slabs");
out:
	for (int t = 0; t < nthreads; t++)
		free(wk[t].out);
	bigbuf_free(xyz, bytes);
	free(joined);
	free(hist);
	free(slab);
	return ok;
}

bool mesh_decimate(struct r3d_err *err, struct mesh *m, size_t target_tri, float max_error,
		   int threads)
{
	unsigned int *dst = NULL;
	uint32_t *src = NULL;
	float *xyz = NULL;
	size_t nidx, nv, dst_bytes = 0, bytes = 0;
	bool ok = false;

	if (!(max_error >= 0.0f && max_error <= 1.0f)) {
		r3d_err_set(err, R3D_EINVAL, "decimate: max_error %g outside 0..1", (double)max_error);
		goto out;
	}
	if (target_tri == 0) {
		r3d_err_set(err, R3D_EINVAL, "decimate: the triangle budget is 0");
		goto out;
	}
	if (threads < 1 || threads > MESH_MAX_THREADS) {
		r3d_err_set(err, R3D_EINVAL, "decimate: %d threads outside 1..%d", threads,
			    MESH_MAX_THREADS);
		goto out;
	}
	if (!mesh_weld(err, m)) {
		r3d_err_prefix(err, "decimate");
		goto out;
	}
	if (m->ntri <= target_tri) {
		ok = true;
		goto out;
	}
	if (threads > 1 && m->ntri / (size_t)threads >= DECIMATE_MIN_TRI_PER_THREAD) {
		if (!decimate_threaded(err, m, target_tri, max_error, threads))
			goto out;
	} else {
		dst_bytes = 3 * sizeof(*dst) * m->ntri; /* fits: the same as m->tri */
		dst = bigbuf_alloc(err, dst_bytes);
		if (dst == NULL)
			goto out;
		nidx = meshopt_simplify(dst, m->tri, 3 * m->ntri, m->xyz, m->nvert,
					3 * sizeof(float), 3 * target_tri, max_error, 0, NULL);
		memcpy(m->tri, dst, nidx * sizeof(*dst));
		m->ntri = nidx / 3;
	}
	mesh_remove_degenerate(m);
	size_t ndup, nextra, flipped, left, flat = 0;
	if (!decimate_drop_duplicates(err, m, &ndup) || !decimate_split_append(err, m, &src, &nextra))
		goto out;
	/* Collapses on flat regions leave zero-area triangles: flip them away
	 * (the split copies keep the edges manifold by index meanwhile). */
	if (!mesh_flip_slivers(err, m, &flipped, &left))
		goto out;
	if (nextra > 0) {
		/* The repairs can join the fans of a split vertex again: weld the
		 * copies back and split again only what is still pinched. */
		free(src);
		src = NULL;
		size_t first_copy;
		if (!mesh_weld(err, m))
			goto out;
		first_copy = m->nvert;
		if (!decimate_split_append(err, m, &src, &nextra))
			goto out;
		/* A split can cut loose a piece folded flat onto a face. */
		if (nextra > 0 && (!mesh_drop_flat_pieces(err, m, &flat) ||
				   !decimate_separate_copies(err, m, src, nextra, first_copy)))
			goto out;
	}
	/* Keep only the vertices still in use, in first-use order. */
	bytes = 3 * sizeof(float) * m->nvert;
	xyz = bigbuf_alloc(err, bytes);
	if (xyz == NULL)
		goto out;
	nv = meshopt_optimizeVertexFetch(xyz, m->tri, 3 * m->ntri, m->xyz, m->nvert,
					 3 * sizeof(float));
	decimate_swap_xyz(m, xyz, bytes, nv);
	xyz = NULL;
	ok = true;
out:
	free(src);
	bigbuf_free(xyz, bytes);
	bigbuf_free(dst, dst_bytes);
	return ok;
}
