/*
 * decimate.c: vertex welding by position, removal of degenerate triangles,
 * the split of vertices where two sheets meet (so that the mesh is a
 * 2-manifold as an STL reader welds it), and decimation to a triangle
 * budget by our own edge collapses (collapse.c), which keep a closed
 * 2-manifold closed, 2-manifold and of the same genus. meshoptimizer is
 * used for the vertex remap tables only. Any thread; one thread per mesh;
 * mesh_decimate() with threads > 1 starts threads - 1 pthreads (one slab
 * each) and joins them.
 *
 * Frame: any; positions are compared, and moved by the collapses. */
#include <float.h>
#include <math.h>
#include <meshoptimizer.h>
#include <stdlib.h>
#include <string.h>

#include "collapse.h"
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
/* Input repair                                                            */
/* ---------------------------------------------------------------------- */

bool mesh_split_pinches(struct r3d_err *err, struct mesh *m, size_t *split)
{
	uint32_t *src = NULL;
	size_t nextra = 0, first_copy;
	bool ok = false;

	*split = 0;
	if (!mesh_weld(err, m))
		goto out;
	first_copy = m->nvert;
	if (!decimate_split_append(err, m, &src, &nextra))
		goto out;
	if (nextra > 0 && !decimate_separate_copies(err, m, src, nextra, first_copy))
		goto out;
	*split = nextra;
	ok = true;
out:
	free(src);
	return ok;
}

/* ---------------------------------------------------------------------- */
/* Threaded simplification                                                 */
/* ---------------------------------------------------------------------- */

/* Below this many triangles per thread, one collapse_simplify call is used. */
#define DECIMATE_MIN_TRI_PER_THREAD 100000
/* Bins of the histogram that splits the mesh into slabs. */
#define DECIMATE_BINS 4096
/* owner[] of a vertex used by the triangles of two slabs. */
#define DECIMATE_SHARED 0xff

struct decimate_worker {
	struct mesh *m;
	const uint8_t *slab;  /* slab of each triangle */
	const uint8_t *owner; /* slab of each vertex, or DECIMATE_SHARED */
	uint8_t id;
	size_t target;        /* triangles */
	double max_dev;       /* collapse_simplify()'s */
	unsigned int *out;    /* simplified triangles, global vertex indices */
	size_t nout;          /* indices in out */
	struct collapse_stats cs;
	bool failed;
	struct r3d_err err;
};

/* owner[v]: the slab of the triangles using vertex v, DECIMATE_SHARED when
 * they are in two slabs, DECIMATE_SHARED - 1 when none uses it. */
static void decimate_owners(const struct mesh *m, const uint8_t *slab, uint8_t *owner)
{
	memset(owner, DECIMATE_SHARED - 1, m->nvert);
	for (size_t t = 0; t < m->ntri; t++) {
		for (int k = 0; k < 3; k++) {
			uint8_t *o = owner + m->tri[3 * t + k];
			if (*o == DECIMATE_SHARED - 1)
				*o = slab[t];
			else if (*o != slab[t])
				*o = DECIMATE_SHARED;
		}
	}
}

/* Adds the collapses of s (a later step) to d. */
static void decimate_stats_add(struct collapse_stats *d, const struct collapse_stats *s)
{
	d->collapses += s->collapses;
	d->rejected_link += s->rejected_link;
	d->rejected_shape += s->rejected_shape;
}

/* Simplifies one slab with the vertices it shares with another slab locked,
 * so neighbouring slabs keep identical vertices along the cut and the union
 * stays closed. Its own vertices are disjoint from the other slabs', so the
 * moved positions are written back to the shared mesh directly. */
static void *decimate_slab(void *arg)
{
	struct decimate_worker *w = arg;
	struct mesh *m = w->m;
	uint32_t *map = NULL, *l2g = NULL, *idx = NULL;
	uint8_t *lock = NULL;
	float *lxyz = NULL;
	size_t n = 0, nl = 0, kept = 0;

	for (size_t t = 0; t < m->ntri; t++)
		n += w->slab[t] == w->id;
	map = malloc(m->nvert * sizeof(*map));
	l2g = malloc((3 * n + 1) * sizeof(*l2g));
	idx = malloc((3 * n + 1) * sizeof(*idx));
	lxyz = malloc((3 * n + 1) * 3 * sizeof(*lxyz));
	lock = calloc(3 * n + 1, 1);
	if (map == NULL || l2g == NULL || idx == NULL || lxyz == NULL || lock == NULL) {
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
				lock[nl] = w->owner[g] == DECIMATE_SHARED;
				nl++;
			}
			idx[k++] = map[g];
		}
	}
	if (!collapse_simplify(&w->err, lxyz, nl, idx, n, lock, w->target, w->max_dev, &kept,
			       &w->cs)) {
		w->failed = true;
		goto out;
	}
	for (size_t i = 0; i < nl; i++) {
		if (!lock[i])
			memcpy(m->xyz + 3 * (size_t)l2g[i], lxyz + 3 * i, 3 * sizeof(float));
	}
	for (size_t i = 0; i < 3 * kept; i++)
		idx[i] = l2g[idx[i]];
	w->out = idx;
	w->nout = 3 * kept;
	idx = NULL;
out:
	free(lock);
	free(lxyz);
	free(idx);
	free(l2g);
	free(map);
	return NULL;
}

/* Rings of triangles around the vertices two slabs shared that make the
 * band of the last passes: next to a locked vertex a slab leaves its full
 * resolution (an edge with a locked end never collapses), and a few rings
 * further the slab's own decimation has reached its density. */
#define DECIMATE_SEAM_RINGS 4

/* The last passes over the joined mesh m: only the triangles within
 * DECIMATE_SEAM_RINGS rings of a vertex the slabs shared (owner ==
 * DECIMATE_SHARED) are simplified, with the vertices they share with the
 * rest locked, to the part of the target the rest leaves. st->reached and
 * st->budget_tri are those of the whole mesh. owner and slab (m->nvert and
 * at least m->ntri bytes) are reused as scratch. */
static bool decimate_seam(struct r3d_err *err, struct mesh *m, uint8_t *owner, uint8_t *slab,
			  size_t target, double max_dev, struct collapse_stats *st)
{
	struct decimate_worker w;
	size_t rest = 0, n = 0;

	/* owner becomes the ring of each vertex: 1 shared, r + 1 within r
	 * rings, 0 further. */
	for (size_t v = 0; v < m->nvert; v++)
		owner[v] = owner[v] == DECIMATE_SHARED;
	for (uint8_t r = 1; r <= DECIMATE_SEAM_RINGS; r++) {
		for (size_t t = 0; t < m->ntri; t++) {
			const uint32_t *f = m->tri + 3 * t;
			if (owner[f[0]] != r && owner[f[1]] != r && owner[f[2]] != r)
				continue;
			for (int k = 0; k < 3; k++) {
				if (owner[f[k]] == 0)
					owner[f[k]] = (uint8_t)(r + 1);
			}
		}
	}
	/* Band triangles (slab 0): a vertex within DECIMATE_SEAM_RINGS - 1
	 * rings; owner becomes 0 (band only), 1 (rest only) or shared. */
	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		bool band = false;
		for (int k = 0; k < 3; k++)
			band = band || (owner[f[k]] >= 1 && owner[f[k]] <= DECIMATE_SEAM_RINGS);
		slab[t] = band ? 0 : 1;
		n += band;
	}
	decimate_owners(m, slab, owner);
	rest = m->ntri - n;
	memset(&w, 0, sizeof(w));
	w.m = m;
	w.slab = slab;
	w.owner = owner;
	w.id = 0;
	w.target = target > rest + 4 ? target - rest : 4;
	w.max_dev = max_dev;
	if (n > 0) {
		decimate_slab(&w);
		if (w.failed) {
			*err = w.err;
			return false;
		}
	}
	/* The rest in place, in order, then the band's triangles. */
	size_t k = 0;
	for (size_t t = 0; t < m->ntri; t++) {
		if (slab[t] == 1) {
			memmove(m->tri + 3 * k, m->tri + 3 * t, 3 * sizeof(*m->tri));
			k++;
		}
	}
	if (n > 0)
		memcpy(m->tri + 3 * k, w.out, w.nout * sizeof(*m->tri));
	m->ntri = k + w.nout / 3;
	free(w.out);
	*st = w.cs;
	st->reached = m->ntri <= target;
	st->budget_tri = n > 0 ? rest + w.cs.budget_tri : m->ntri;
	return true;
}

/* Simplifies m in place with nthreads threads: the triangles are split into
 * slabs of equal count along the longest axis, each slab is simplified with
 * its cut locked, then the band along each cut (a full-resolution strip
 * remains there) gets the last passes to the budget (decimate_seam). */
static bool decimate_threaded(struct r3d_err *err, struct mesh *m, size_t target, double max_dev,
			      int nthreads, struct collapse_stats *cs)
{
	struct decimate_worker wk[MESH_MAX_THREADS];
	uint8_t *slab = NULL, *owner = NULL;
	size_t *hist = NULL, total = 0;
	float lo[3] = {FLT_MAX, FLT_MAX, FLT_MAX}, hi[3] = {-FLT_MAX, -FLT_MAX, -FLT_MAX};
	bool ok = false;
	int axis = 0;

	memset(wk, 0, sizeof(wk));
	slab = malloc(m->ntri);
	owner = malloc(m->nvert);
	hist = calloc(DECIMATE_BINS, sizeof(*hist));
	if (slab == NULL || owner == NULL || hist == NULL)
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
	decimate_owners(m, slab, owner);
	for (int t = 0; t < nthreads; t++) {
		wk[t].m = m;
		wk[t].slab = slab;
		wk[t].owner = owner;
		wk[t].id = (uint8_t)t;
		wk[t].target = target * count[t] / m->ntri;
		wk[t].max_dev = max_dev;
	}
	meshpar_run(nthreads, wk, sizeof(wk[0]), decimate_slab);
	for (int t = 0; t < nthreads; t++) {
		if (wk[t].failed) {
			*err = wk[t].err;
			goto out;
		}
		total += wk[t].nout;
		decimate_stats_add(cs, &wk[t].cs);
		cs->passes = wk[t].cs.passes > cs->passes ? wk[t].cs.passes : cs->passes;
	}
	/* Join (total <= 3 * m->ntri); then the band along the cuts, still at
	 * full resolution next to the locked vertices, gets the last passes,
	 * and only when that leaves the budget unreached the whole. */
	total = 0;
	for (int t = 0; t < nthreads; t++) {
		memcpy(m->tri + total, wk[t].out, wk[t].nout * sizeof(*m->tri));
		total += wk[t].nout;
	}
	m->ntri = total / 3;
	struct collapse_stats last;
	memset(&last, 0, sizeof(last));
	if (!decimate_seam(err, m, owner, slab, target, max_dev, &last))
		goto out;
	if (!last.reached) {
		size_t kept;
		struct collapse_stats whole;
		if (!collapse_simplify(err, m->xyz, m->nvert, m->tri, m->ntri, NULL, target,
				       max_dev, &kept, &whole))
			goto out;
		m->ntri = kept;
		decimate_stats_add(&last, &whole);
		last.passes += whole.passes;
		last.reached = whole.reached;
		last.budget_tri = whole.budget_tri;
	}
	decimate_stats_add(cs, &last);
	cs->passes += last.passes;
	cs->reached = last.reached;
	cs->budget_tri = last.budget_tri;
	ok = true;
	goto out;
nomem:
	r3d_err_set(err, R3D_ENOMEM, "decimate: cannot allocate slabs");
out:
	for (int t = 0; t < nthreads; t++)
		free(wk[t].out);
	free(hist);
	free(owner);
	free(slab);
	return ok;
}

bool mesh_decimate(struct r3d_err *err, struct mesh *m, size_t target_tri, double error_mm,
		   int threads, struct mesh_decimate_info *info)
{
	struct collapse_stats cs;
	float *xyz = NULL;
	size_t nv, bytes = 0, split = 0;
	bool ok = false;

	memset(&cs, 0, sizeof(cs));
	if (target_tri == 0) {
		r3d_err_set(err, R3D_EINVAL, "decimate: the triangle budget is 0");
		goto out;
	}
	if (threads < 1 || threads > MESH_MAX_THREADS) {
		r3d_err_set(err, R3D_EINVAL, "decimate: %d threads outside 1..%d", threads,
			    MESH_MAX_THREADS);
		goto out;
	}
	/* Welded by position, as an STL is read; a vertex where two sheets
	 * meet gets a copy per sheet, moved apart. */
	if (!mesh_split_pinches(err, m, &split)) {
		r3d_err_prefix(err, "decimate");
		goto out;
	}
	if (m->ntri <= target_tri && !(error_mm > 0)) {
		cs.reached = true;
		cs.budget_tri = m->ntri;
		ok = true;
		goto out;
	}
	if (threads > 1 && m->ntri / (size_t)threads >= DECIMATE_MIN_TRI_PER_THREAD) {
		if (!decimate_threaded(err, m, target_tri, error_mm, threads, &cs))
			goto out;
	} else {
		size_t kept;
		if (!collapse_simplify(err, m->xyz, m->nvert, m->tri, m->ntri, NULL, target_tri,
				       error_mm, &kept, &cs))
			goto out;
		m->ntri = kept;
	}
	/* Zero-area triangles the input had (the collapses make none). */
	size_t flipped, left;
	if (!mesh_flip_slivers(err, m, &flipped, &left))
		goto out;
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
	if (info != NULL) {
		memset(info, 0, sizeof(*info));
		info->pinches_split = split;
		info->passes = cs.passes;
		info->collapses = cs.collapses;
		info->rejected_link = cs.rejected_link;
		info->rejected_shape = cs.rejected_shape;
		info->reached = ok && cs.reached;
		info->budget_tri = cs.budget_tri;
	}
	bigbuf_free(xyz, bytes);
	return ok;
}
