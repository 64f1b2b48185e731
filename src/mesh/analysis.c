/*
 * analysis.c: print readiness and measurements of a surface (see
 * r3d/analysis.h): shells, self-intersections, wall thickness, principal
 * extents, and the shortest distance between two surfaces.
 *
 * Every query goes through one bounding-volume hierarchy over the
 * triangles (median split on the longest axis of the triangle centroids,
 * at most BVH_LEAF triangles per leaf). Vertices are first welded by
 * position, as an STL reader would, so that the topology (shells, 1-rings,
 * "shares a vertex") is the printed file's.
 *
 * Threads: any thread; mesh_analyse() and mesh_gap() split their
 * per-vertex / per-triangle loops over up to `threads` workers with
 * meshpar_run() and join them before returning. Nothing is shared between
 * workers but read-only arrays; each worker writes its own slice.
 */
#include <float.h>
#include <stdatomic.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshgeom.h"
#include "meshpar.h"
#include "r3d/analysis.h"
#include "r3d/util.h"

#define BVH_LEAF 4            /* triangles per leaf, at most */
#define BVH_STACK 128         /* traversal stack; depth is ~log2(n / BVH_LEAF) */
/* Wall rays are first cast only so far: a thicker wall cannot be the
 * minimum when a thinner one exists, and a ray through a bulky solid (the
 * body, 300 mm) is the expensive one. The first length is twice the
 * thinnest wall of a sample (every WALL_SAMPLE_STEP-th vertex, rays of any
 * length), at least WALL_FIRST_CAP (frame units: mm); only when no wall is
 * found within it are the rays cast again to any length. */
#define WALL_FIRST_CAP 10.0
#define CROSS_TASKS_PER_THREAD 64   /* node pairs shared out per thread */
#define WALL_SAMPLE_STEP 64

/* ------------------------------------------------------------------ */
/* Small vector helpers                                                */
/* ------------------------------------------------------------------ */

/* fmin/fmax without NaN handling, inlined (the libm calls cost a quarter of
 * the run time). */
static inline double dmin(double a, double b)
{
	return a < b ? a : b;
}

static inline double dmax(double a, double b)
{
	return a > b ? a : b;
}

static inline void v_sub(double r[3], const double a[3], const double b[3])
{
	r[0] = a[0] - b[0];
	r[1] = a[1] - b[1];
	r[2] = a[2] - b[2];
}

static inline double v_dot(const double a[3], const double b[3])
{
	return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

static inline void v_cross(double r[3], const double a[3], const double b[3])
{
	r[0] = a[1] * b[2] - a[2] * b[1];
	r[1] = a[2] * b[0] - a[0] * b[2];
	r[2] = a[0] * b[1] - a[1] * b[0];
}

static inline void v_lerp(double r[3], const double a[3], const double b[3], double t)
{
	for (int k = 0; k < 3; k++)
		r[k] = a[k] + t * (b[k] - a[k]);
}

static inline double v_dist2(const double a[3], const double b[3])
{
	double d[3];
	v_sub(d, a, b);
	return v_dot(d, d);
}

/* ------------------------------------------------------------------ */
/* Welding by position                                                 */
/* ------------------------------------------------------------------ */

/* The mesh as the analysis sees it: vertices welded by position (double),
 * triangles on the welded vertices, and each vertex's triangles (CSR). */
struct welded {
	size_t nv, nt;
	double *p;          /* 3 * nv */
	uint32_t *t;        /* 3 * nt, welded indices */
	size_t *vt_off;     /* nv + 1 */
	uint32_t *vt;       /* 3 * nt: triangles of each vertex */
};

static void welded_free(struct welded *w)
{
	free(w->p);
	free(w->t);
	free(w->vt_off);
	free(w->vt);
	memset(w, 0, sizeof(*w));
}

static bool weld_hash(const struct mesh *m, uint32_t **map, size_t *nv);

static bool welded_make(struct r3d_err *err, const struct mesh *m, struct welded *w)
{
	uint32_t *map = NULL;
	size_t *cnt = NULL;
	bool ok = false;

	memset(w, 0, sizeof(*w));
	if (m->ntri > ANALYSIS_MAX_TRIANGLES || m->nvert > MESH_MAX_VERTICES)
		return r3d_err_set(err, R3D_EINVAL, "mesh of %zu triangles, %zu vertices: too large "
				   "to analyse", m->ntri, m->nvert);
	for (size_t i = 0; i < 3 * m->ntri; i++)
		if (m->tri[i] >= m->nvert)
			return r3d_err_set(err, R3D_EINVAL, "triangle %zu: vertex index out of range",
					   i / 3);
	if (!weld_hash(m, &map, &w->nv))
		goto nomem;
	w->nt = m->ntri;
	w->p = malloc((w->nv + 1) * 3 * sizeof(*w->p));
	w->t = malloc((w->nt + 1) * 3 * sizeof(*w->t));
	w->vt_off = calloc(w->nv + 1, sizeof(*w->vt_off));
	w->vt = malloc((w->nt + 1) * 3 * sizeof(*w->vt));
	cnt = calloc(w->nv + 1, sizeof(*cnt));
	if (w->p == NULL || w->t == NULL || w->vt_off == NULL || w->vt == NULL || cnt == NULL)
		goto nomem;
	for (size_t i = 0; i < m->nvert; i++)
		for (int k = 0; k < 3; k++)
			w->p[3 * (size_t)map[i] + k] = m->xyz[3 * i + k];
	for (size_t i = 0; i < 3 * w->nt; i++) {
		w->t[i] = map[m->tri[i]];
		cnt[w->t[i]]++;
	}
	for (size_t v = 0; v < w->nv; v++)
		w->vt_off[v + 1] = w->vt_off[v] + cnt[v];
	memset(cnt, 0, (w->nv + 1) * sizeof(*cnt));
	for (size_t i = 0; i < 3 * w->nt; i++) {
		uint32_t v = w->t[i];
		w->vt[w->vt_off[v] + cnt[v]++] = (uint32_t)(i / 3);
	}
	ok = true;
	goto out;
nomem:
	r3d_err_set(err, R3D_ENOMEM, "no memory to analyse a mesh of %zu triangles", m->ntri);
out:
	if (!ok)
		welded_free(w);
	free(cnt);
	free(map);
	return ok;
}

/* The bits of a coordinate, -0 taken as +0 (equal positions weld). */
static inline uint32_t weld_bits(float x)
{
	uint32_t u;
	if (x == 0.0f)
		x = 0.0f;
	memcpy(&u, &x, sizeof(u));
	return u;
}

/* *map: for each vertex of m, its welded index 0..*nv-1 (first-seen
 * order), by an open-addressing hash of the position's bits. On success
 * the caller frees *map. */
static bool weld_hash(const struct mesh *m, uint32_t **map, size_t *nv)
{
	size_t cap = 16;
	uint32_t *slot, *out = malloc((m->nvert + 1) * sizeof(*out));

	while (cap < 2 * m->nvert)
		cap *= 2;
	slot = malloc(cap * sizeof(*slot));    /* a vertex index of m, or UINT32_MAX */
	if (out == NULL || slot == NULL) {
		free(out);
		free(slot);
		return false;
	}
	memset(slot, 0xff, cap * sizeof(*slot));
	*nv = 0;
	for (size_t i = 0; i < m->nvert; i++) {
		const float *p = m->xyz + 3 * i;
		uint32_t a = weld_bits(p[0]), b = weld_bits(p[1]), c = weld_bits(p[2]);
		uint64_t h = (a * 0x9e3779b97f4a7c15ull) ^ (b * 0xc2b2ae3d27d4eb4full) ^
			     (c * 0x165667b19e3779f9ull);
		size_t k = (size_t)(h ^ (h >> 29)) & (cap - 1);
		for (;; k = (k + 1) & (cap - 1)) {
			uint32_t j = slot[k];
			if (j == UINT32_MAX) {
				slot[k] = (uint32_t)i;
				out[i] = (uint32_t)(*nv)++;
				break;
			}
			const float *q = m->xyz + 3 * (size_t)j;
			if (q[0] == p[0] && q[1] == p[1] && q[2] == p[2]) {
				out[i] = out[j];
				break;
			}
		}
	}
	free(slot);
	*map = out;
	return true;
}

/* The three welded corners of triangle t. */
static inline void tri_corners(const struct welded *w, size_t t, const double **a,
			       const double **b, const double **c)
{
	*a = w->p + 3 * (size_t)w->t[3 * t];
	*b = w->p + 3 * (size_t)w->t[3 * t + 1];
	*c = w->p + 3 * (size_t)w->t[3 * t + 2];
}

/* ------------------------------------------------------------------ */
/* Bounding-volume hierarchy over triangles                            */
/* ------------------------------------------------------------------ */

struct bvh_node {
	double lo[3], hi[3];
	uint32_t first;   /* leaf: first index into bvh.order; inner: left child (right = +1) */
	uint32_t count;   /* leaf: triangles; 0: inner */
	uint32_t end;     /* the node's triangles are order[begin..end): the crossing
			   * test skips nodes that end before the triangle it tests */
	uint32_t pad;
};

struct bvh {
	struct bvh_node *node;
	size_t nnode;
	uint32_t *order;  /* triangle indices, leaves index ranges of it */
	const struct welded *w;
};

static void bvh_free(struct bvh *b)
{
	free(b->node);
	free(b->order);
	memset(b, 0, sizeof(*b));
}

/* Partially sorts order[lo..hi) (and key[lo..hi), key[i] belonging to
 * order[i]) so that position k has the k-th smallest key (centroid
 * coordinate) with smaller keys before it (quickselect). */
static void bvh_select(uint32_t *order, float *key, size_t lo, size_t hi, size_t k)
{
	while (hi - lo > 1) {
		float pivot = key[lo + (hi - lo) / 2];
		size_t i = lo, j = hi - 1;
		while (i <= j) {
			while (key[i] < pivot)
				i++;
			while (key[j] > pivot)
				j--;
			if (i <= j) {
				uint32_t s = order[i];
				float f = key[i];
				order[i] = order[j];
				order[j] = s;
				key[i] = key[j];
				key[j] = f;
				i++;
				if (j == 0)
					break;
				j--;
			}
		}
		if (k <= j)
			hi = j + 1;
		else if (k >= i)
			lo = i;
		else
			return;
	}
}

/* What building needs per triangle: its centroid and its box. */
struct bvh_build_ctx {
	const float *cen;      /* 3 per triangle */
	const double *box;     /* 6 per triangle: lo xyz, hi xyz */
	float *key;            /* key[i]: the split coordinate of order[i]; each half
				* of the root writes its own range of positions */
	bool split_root;       /* build the root's two halves in two threads */
};

struct bvh_half {
	struct bvh *b;
	size_t ni, begin, end;
	const struct bvh_build_ctx *c;
	size_t next;           /* the next free node of this half's range */
};

static void *bvh_half_run(void *arg);

static void bvh_build_node(struct bvh *b, size_t ni, size_t begin, size_t end,
			   const struct bvh_build_ctx *c, size_t *next)
{
	struct bvh_node *n = &b->node[ni];

	n->end = (uint32_t)end;
	double clo[3] = {DBL_MAX, DBL_MAX, DBL_MAX}, chi[3] = {-DBL_MAX, -DBL_MAX, -DBL_MAX};

	for (int k = 0; k < 3; k++) {
		n->lo[k] = DBL_MAX;
		n->hi[k] = -DBL_MAX;
	}
	for (size_t i = begin; i < end; i++) {
		const double *bx = c->box + 6 * (size_t)b->order[i];
		const float *ce = c->cen + 3 * (size_t)b->order[i];
		for (int k = 0; k < 3; k++) {
			n->lo[k] = dmin(n->lo[k], bx[k]);
			n->hi[k] = dmax(n->hi[k], bx[3 + k]);
			clo[k] = dmin(clo[k], ce[k]);
			chi[k] = dmax(chi[k], ce[k]);
		}
	}
	int axis = 0;
	for (int k = 1; k < 3; k++)
		if (chi[k] - clo[k] > chi[axis] - clo[axis])
			axis = k;
	if (end - begin <= BVH_LEAF) {
		n->first = (uint32_t)begin;
		n->count = (uint32_t)(end - begin);
		return;
	}
	size_t mid = begin + (end - begin) / 2;
	for (size_t i = begin; i < end; i++)
		c->key[i] = c->cen[3 * (size_t)b->order[i] + axis];
	bvh_select(b->order, c->key, begin, end, mid);
	size_t left = *next;
	*next += 2;
	n->first = (uint32_t)left;
	n->count = 0;
	if (c->split_root) {
		/* The two halves in two threads, each numbering its nodes in a
		 * range of its own (a subtree of m triangles has < 2 m nodes). */
		struct bvh_half h[2] = {{b, left, begin, mid, c, left + 2},
					{b, left + 1, mid, end, c, left + 2 + 2 * (mid - begin)}};
		meshpar_run(2, h, sizeof(h[0]), bvh_half_run);
		*next = h[1].next;
		return;
	}
	bvh_build_node(b, left, begin, mid, c, next);
	bvh_build_node(b, left + 1, mid, end, c, next);
}

static void *bvh_half_run(void *arg)
{
	struct bvh_half *h = arg;
	struct bvh_build_ctx c = *h->c;
	c.split_root = false;
	bvh_build_node(h->b, h->ni, h->begin, h->end, &c, &h->next);
	return NULL;
}

static bool bvh_build(struct r3d_err *err, const struct welded *w, int threads, struct bvh *b)
{
	float *cen = NULL, *key = NULL;
	double *box = NULL;
	bool ok = false;

	memset(b, 0, sizeof(*b));
	b->w = w;
	b->order = malloc((w->nt + 1) * sizeof(*b->order));
	/* A binary tree with leaves of >= 1 triangle has < 2 nt nodes. */
	b->node = malloc((2 * w->nt + 4) * sizeof(*b->node));
	cen = malloc((w->nt + 1) * 3 * sizeof(*cen));
	key = malloc((w->nt + 1) * sizeof(*key));
	box = malloc((w->nt + 1) * 6 * sizeof(*box));
	if (b->order == NULL || b->node == NULL || cen == NULL || key == NULL || box == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "no memory for a BVH of %zu triangles", w->nt);
		goto out;
	}
	for (size_t t = 0; t < w->nt; t++) {
		const double *a, *bb, *c;
		tri_corners(w, t, &a, &bb, &c);
		b->order[t] = (uint32_t)t;
		for (int k = 0; k < 3; k++) {
			cen[3 * t + k] = (float)((a[k] + bb[k] + c[k]) / 3.0);
			box[6 * t + k] = dmin(a[k], dmin(bb[k], c[k]));
			box[6 * t + 3 + k] = dmax(a[k], dmax(bb[k], c[k]));
		}
	}
	struct bvh_build_ctx ctx = {cen, box, key, threads > 1 && w->nt > 4 * BVH_LEAF};
	b->nnode = 1;
	bvh_build_node(b, 0, 0, w->nt, &ctx, &b->nnode);
	ok = true;
out:
	if (!ok)
		bvh_free(b);
	free(box);
	free(cen);
	free(key);
	return ok;
}

/* ------------------------------------------------------------------ */
/* Geometric predicates                                                */
/* ------------------------------------------------------------------ */

/* Ray o + t d against triangle (a, b, c), Moller-Trumbore: t of the hit
 * with t > 0, or INFINITY. */
static double ray_triangle(const double o[3], const double d[3], const double a[3],
			   const double b[3], const double c[3])
{
	double e1[3], e2[3], pv[3], tv[3], qv[3];
	v_sub(e1, b, a);
	v_sub(e2, c, a);
	v_cross(pv, d, e2);
	double det = v_dot(e1, pv);
	if (fabs(det) < 1e-300)
		return INFINITY;
	double inv = 1.0 / det;
	v_sub(tv, o, a);
	double u = v_dot(tv, pv) * inv;
	if (u < 0.0 || u > 1.0)
		return INFINITY;
	v_cross(qv, tv, e1);
	double v = v_dot(d, qv) * inv;
	if (v < 0.0 || u + v > 1.0)
		return INFINITY;
	double t = v_dot(e2, qv) * inv;
	return t > 0.0 ? t : INFINITY;
}

/* Segment p..q through triangle (a, b, c): true with the crossing point.
 * A segment in the triangle's plane does not count. */
static bool segment_triangle(const double p[3], const double q[3], const double a[3],
			     const double b[3], const double c[3], double at[3])
{
	double d[3], e1[3], e2[3], pv[3], tv[3], qv[3];
	v_sub(d, q, p);
	v_sub(e1, b, a);
	v_sub(e2, c, a);
	v_cross(pv, d, e2);
	double det = v_dot(e1, pv);
	double scale = sqrt(v_dot(d, d) * v_dot(e1, e1) * v_dot(e2, e2));
	if (fabs(det) <= 1e-12 * scale)
		return false;
	double inv = 1.0 / det;
	v_sub(tv, p, a);
	double u = v_dot(tv, pv) * inv;
	if (u < 0.0 || u > 1.0)
		return false;
	v_cross(qv, tv, e1);
	double v = v_dot(d, qv) * inv;
	if (v < 0.0 || u + v > 1.0)
		return false;
	double t = v_dot(e2, qv) * inv;
	if (t < 0.0 || t > 1.0)
		return false;
	v_lerp(at, p, q, t);
	return true;
}

/* Two triangles cross when an edge of one passes through the other (the
 * ends of their intersection segment lie on such edges). */
static bool plane_separates(const double *const t[3], const double *const u[3])
{
	double e1[3], e2[3], n[3], d[3];
	v_sub(e1, t[1], t[0]);
	v_sub(e2, t[2], t[0]);
	v_cross(n, e1, e2);
	for (int i = 0; i < 3; i++) {
		v_sub(e1, u[i], t[0]);
		d[i] = v_dot(n, e1);
	}
	return (d[0] > 0 && d[1] > 0 && d[2] > 0) || (d[0] < 0 && d[1] < 0 && d[2] < 0);
}

static bool triangles_cross(const double *const ta[3], const double *const tb[3], double at[3])
{
	/* Moller's early rejection: all of one triangle on one side of the
	 * other's plane. */
	if (plane_separates(ta, tb) || plane_separates(tb, ta))
		return false;
	for (int e = 0; e < 3; e++) {
		if (segment_triangle(ta[e], ta[(e + 1) % 3], tb[0], tb[1], tb[2], at))
			return true;
		if (segment_triangle(tb[e], tb[(e + 1) % 3], ta[0], ta[1], ta[2], at))
			return true;
	}
	return false;
}

static double clamp01(double x)
{
	return x < 0 ? 0 : (x > 1 ? 1 : x);
}

/* The closest points of segments p1..q1 and p2..q2 (Ericson 5.1.9). */
static void closest_segments(const double p1[3], const double q1[3], const double p2[3],
			     const double q2[3], double c1[3], double c2[3])
{
	double d1[3], d2[3], r[3];
	v_sub(d1, q1, p1);
	v_sub(d2, q2, p2);
	v_sub(r, p1, p2);
	double a = v_dot(d1, d1), e = v_dot(d2, d2), f = v_dot(d2, r);
	double s, t;
	if (a <= 1e-300 && e <= 1e-300) {
		s = t = 0;
	} else if (a <= 1e-300) {
		s = 0;
		t = clamp01(f / e);
	} else {
		double c = v_dot(d1, r);
		if (e <= 1e-300) {
			t = 0;
			s = clamp01(-c / a);
		} else {
			double b = v_dot(d1, d2), denom = a * e - b * b;
			s = denom > 0 ? clamp01((b * f - c * e) / denom) : 0;
			t = (b * s + f) / e;
			if (t < 0) {
				t = 0;
				s = clamp01(-c / a);
			} else if (t > 1) {
				t = 1;
				s = clamp01((b - c) / a);
			}
		}
	}
	v_lerp(c1, p1, q1, s);
	v_lerp(c2, p2, q2, t);
}

/* Squared distance between two triangles with their closest points; 0
 * when they cross. */
static double triangles_dist2(const double *const ta[3], const double *const tb[3],
			      double pa[3], double pb[3])
{
	double best = INFINITY, c1[3], c2[3];

	if (triangles_cross(ta, tb, c1)) {
		memcpy(pa, c1, sizeof(c1));
		memcpy(pb, c1, sizeof(c1));
		return 0.0;
	}
	for (int i = 0; i < 3; i++) {
		meshgeom_closest_on_triangle(ta[i], tb[0], tb[1], tb[2], c2);
		double d = v_dist2(ta[i], c2);
		if (d < best) {
			best = d;
			memcpy(pa, ta[i], sizeof(c1));
			memcpy(pb, c2, sizeof(c2));
		}
		meshgeom_closest_on_triangle(tb[i], ta[0], ta[1], ta[2], c1);
		d = v_dist2(tb[i], c1);
		if (d < best) {
			best = d;
			memcpy(pa, c1, sizeof(c1));
			memcpy(pb, tb[i], sizeof(c2));
		}
	}
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++) {
			closest_segments(ta[i], ta[(i + 1) % 3], tb[j], tb[(j + 1) % 3], c1, c2);
			double d = v_dist2(c1, c2);
			if (d < best) {
				best = d;
				memcpy(pa, c1, sizeof(c1));
				memcpy(pb, c2, sizeof(c2));
			}
		}
	return best;
}

/* Squared distance between two boxes (0 when they overlap). */
static inline double box_dist2(const double alo[3], const double ahi[3], const double blo[3],
			       const double bhi[3])
{
	double d2 = 0;
	for (int k = 0; k < 3; k++) {
		double g = dmax(blo[k] - ahi[k], alo[k] - bhi[k]);
		if (g > 0)
			d2 += g * g;
	}
	return d2;
}

/* Entry t of ray o + t d into the box, or INFINITY (inv: 1 / d). */
static inline double ray_box(const double o[3], const double inv[3], const double lo[3],
			     const double hi[3], double tmax)
{
	double t0 = 0, t1 = tmax;
	for (int k = 0; k < 3; k++) {
		double a = (lo[k] - o[k]) * inv[k], b = (hi[k] - o[k]) * inv[k];
		if (a > b) {
			double s = a;
			a = b;
			b = s;
		}
		t0 = dmax(t0, a);
		t1 = dmin(t1, b);
		if (t0 > t1)
			return INFINITY;
	}
	return t0;
}

/* ------------------------------------------------------------------ */
/* Shells                                                              */
/* ------------------------------------------------------------------ */

static uint32_t uf_find(uint32_t *parent, uint32_t x)
{
	while (parent[x] != x) {
		parent[x] = parent[parent[x]];
		x = parent[x];
	}
	return x;
}

/* shell_of[t]: the shell (0..*nshells-1) of each triangle, by shared
 * welded vertices. */
static bool shells_label(struct r3d_err *err, const struct welded *w, uint32_t *shell_of,
			 size_t *nshells)
{
	uint32_t *parent = malloc((w->nv + 1) * sizeof(*parent));
	uint32_t *id = malloc((w->nv + 1) * sizeof(*id));
	bool ok = parent != NULL && id != NULL;

	if (!ok) {
		r3d_err_set(err, R3D_ENOMEM, "no memory for the shells of %zu vertices", w->nv);
		goto out;
	}
	for (size_t v = 0; v < w->nv; v++) {
		parent[v] = (uint32_t)v;
		id[v] = UINT32_MAX;
	}
	for (size_t t = 0; t < w->nt; t++) {
		uint32_t a = uf_find(parent, w->t[3 * t]);
		for (int k = 1; k < 3; k++) {
			uint32_t b = uf_find(parent, w->t[3 * t + k]);
			if (a != b)
				parent[b] = a;
		}
	}
	*nshells = 0;
	for (size_t t = 0; t < w->nt; t++) {
		uint32_t r = uf_find(parent, w->t[3 * t]);
		if (id[r] == UINT32_MAX)
			id[r] = (uint32_t)(*nshells)++;
		shell_of[t] = id[r];
	}
out:
	free(id);
	free(parent);
	return ok;
}

static int shell_cmp(const void *a, const void *b)
{
	double va = fabs(((const struct mesh_shell *)a)->volume);
	double vb = fabs(((const struct mesh_shell *)b)->volume);
	return va > vb ? -1 : (va < vb ? 1 : 0);
}

/* ------------------------------------------------------------------ */
/* Wall thickness                                                      */
/* ------------------------------------------------------------------ */

struct wall_worker {
	const struct bvh *b;
	const uint8_t *crossed; /* per triangle: in a self-intersection */
	const double *normal;   /* 3 * nv, inward unit directions (0 0 0: none) */
	double cap;             /* hits at or beyond this do not count */
	double *thick;          /* nv; INFINITY: none found below cap */
	size_t v0, v1;
};

/* The thickness at vertex v: the first hit of its inward ray on a
 * triangle outside its 1-ring. */
static double wall_at_vertex(const struct bvh *b, const uint8_t *crossed, const double *dirs,
			     uint32_t v, double cap)
{
	const struct welded *w = b->w;
	const double *o = w->p + 3 * (size_t)v, *d = dirs + 3 * (size_t)v;
	double inv[3], best = cap;
	uint32_t hit = UINT32_MAX;
	uint32_t stack[BVH_STACK];
	int sp = 0;

	if (d[0] == 0 && d[1] == 0 && d[2] == 0)
		return INFINITY;
	for (int k = 0; k < 3; k++)
		inv[k] = 1.0 / d[k];   /* +-inf for 0: the slab test handles it */
	stack[sp++] = 0;
	while (sp > 0) {
		const struct bvh_node *n = &b->node[stack[--sp]];
		if (ray_box(o, inv, n->lo, n->hi, best) == INFINITY)
			continue;
		if (n->count == 0) {
			const struct bvh_node *l = &b->node[n->first], *r = &b->node[n->first + 1];
			double tl = ray_box(o, inv, l->lo, l->hi, best);
			double tr = ray_box(o, inv, r->lo, r->hi, best);
			if (sp + 2 > BVH_STACK)
				continue;   /* cannot happen for a median-split tree */
			/* The nearer child last, so that it is taken first. */
			if (tl <= tr) {
				if (tr != INFINITY)
					stack[sp++] = n->first + 1;
				if (tl != INFINITY)
					stack[sp++] = n->first;
			} else {
				if (tl != INFINITY)
					stack[sp++] = n->first;
				stack[sp++] = n->first + 1;
			}
			continue;
		}
		for (uint32_t i = 0; i < n->count; i++) {
			uint32_t t = b->order[n->first + i];
			const uint32_t *tv = w->t + 3 * (size_t)t;
			if (tv[0] == v || tv[1] == v || tv[2] == v)
				continue;
			const double *pa = w->p + 3 * (size_t)tv[0], *pb = w->p + 3 * (size_t)tv[1],
				     *pc = w->p + 3 * (size_t)tv[2];
			double h = ray_triangle(o, d, pa, pb, pc);
			if (h < best) {
				/* The ray leaves the material through a triangle that
				 * faces along it; one that faces back is a surface the
				 * ray enters, which only a self-crossing makes: not a
				 * wall, it is counted as a self-intersection. */
				double e1[3], e2[3], fn[3];
				v_sub(e1, pb, pa);
				v_sub(e2, pc, pa);
				v_cross(fn, e1, e2);
				if (v_dot(fn, d) > 0) {
					best = h;
					hit = t;
				}
			}
		}
	}
	/* A wall that ends in a self-intersection is not a wall of the solid. */
	return hit == UINT32_MAX || crossed[hit] ? INFINITY : best;
}

static void *wall_run(void *arg)
{
	struct wall_worker *ww = arg;
	const struct welded *w = ww->b->w;
	for (size_t v = ww->v0; v < ww->v1; v++) {
		bool near_crossing = false;
		for (size_t i = w->vt_off[v]; i < w->vt_off[v + 1]; i++)
			near_crossing |= ww->crossed[w->vt[i]] != 0;
		ww->thick[v] = near_crossing ? INFINITY
					     : wall_at_vertex(ww->b, ww->crossed, ww->normal,
							      (uint32_t)v, ww->cap);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Self-intersections                                                  */
/* ------------------------------------------------------------------ */

/* Self-intersections by a traversal of the tree against itself: node
 * pairs whose boxes overlap are split until both are leaves, so that each
 * pair of triangles is looked at once. The pairs of the first levels are
 * the tasks the workers take, one at a time. */
struct node_pair {
	uint32_t a, b;
};

struct cross_worker {
	const struct bvh *b;
	const struct node_pair *tasks;
	size_t ntasks;
	atomic_size_t *next;    /* the next task to take, shared */
	size_t count;
	uint64_t first_key;     /* smallest (tree position pair) with a crossing: a stable point */
	double at[3];
	uint32_t *tris;         /* both triangles of every crossing found (malloc) */
	size_t ntris, cap;
	bool oom;
};

static bool share_vertex(const uint32_t *a, const uint32_t *b)
{
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++)
			if (a[i] == b[j])
				return true;
	return false;
}

static inline bool nodes_overlap(const struct bvh_node *x, const struct bvh_node *y)
{
	for (int k = 0; k < 3; k++)
		if (x->lo[k] > y->hi[k] || y->lo[k] > x->hi[k])
			return false;
	return true;
}

/* The pairs a node pair splits into (at most 3), overlapping or not. */
static int pair_split(const struct bvh *b, struct node_pair p, struct node_pair out[3])
{
	const struct bvh_node *na = &b->node[p.a], *nb = &b->node[p.b];

	if (p.a == p.b) {
		uint32_t l = na->first;
		out[0] = (struct node_pair){l, l};
		out[1] = (struct node_pair){l, l + 1};
		out[2] = (struct node_pair){l + 1, l + 1};
		return 3;
	}
	/* Split the inner one, the larger when both are. */
	bool split_b = na->count != 0 ||
		       (nb->count == 0 && nb->end - b->node[nb->first].end >
					  na->end - b->node[na->first].end);
	if (split_b) {
		out[0] = (struct node_pair){p.a, nb->first};
		out[1] = (struct node_pair){p.a, nb->first + 1};
	} else {
		out[0] = (struct node_pair){na->first, p.b};
		out[1] = (struct node_pair){na->first + 1, p.b};
	}
	return 2;
}

static void cross_note(struct cross_worker *cw, uint32_t ia, uint32_t ib, const double at[3])
{
	const struct bvh *b = cw->b;
	uint32_t lo = ia < ib ? ia : ib, hi = ia < ib ? ib : ia;
	uint64_t key = (uint64_t)lo << 32 | hi;

	cw->count++;
	if (cw->ntris + 2 > cw->cap) {
		size_t cap = cw->cap < 64 ? 64 : 2 * cw->cap;
		uint32_t *grown = realloc(cw->tris, cap * sizeof(*grown));
		if (grown == NULL) {
			cw->oom = true;
			return;
		}
		cw->tris = grown;
		cw->cap = cap;
	}
	cw->tris[cw->ntris++] = b->order[ia];
	cw->tris[cw->ntris++] = b->order[ib];
	if (key < cw->first_key) {
		cw->first_key = key;
		memcpy(cw->at, at, 3 * sizeof(double));
	}
}

/* Two leaves (or one leaf with itself): every pair of their triangles
 * that share no vertex. */
static void cross_leaves(struct cross_worker *cw, const struct bvh_node *na,
			 const struct bvh_node *nb, bool same)
{
	const struct welded *w = cw->b->w;
	const uint32_t *order = cw->b->order;

	for (uint32_t i = 0; i < na->count; i++) {
		uint32_t ia = na->first + i;
		const uint32_t *tv = w->t + 3 * (size_t)order[ia];
		const double *ta[3] = {w->p + 3 * (size_t)tv[0], w->p + 3 * (size_t)tv[1],
				       w->p + 3 * (size_t)tv[2]};
		for (uint32_t j = same ? i + 1 : 0; j < nb->count; j++) {
			uint32_t ib = nb->first + j;
			const uint32_t *uv = w->t + 3 * (size_t)order[ib];
			double at[3];
			if (share_vertex(tv, uv))
				continue;
			const double *tb[3] = {w->p + 3 * (size_t)uv[0], w->p + 3 * (size_t)uv[1],
					       w->p + 3 * (size_t)uv[2]};
			if (triangles_cross(ta, tb, at))
				cross_note(cw, ia, ib, at);
		}
	}
}

static void cross_pair(struct cross_worker *cw, struct node_pair p)
{
	const struct bvh *b = cw->b;
	const struct bvh_node *na = &b->node[p.a], *nb = &b->node[p.b];
	struct node_pair sub[3];

	if (!nodes_overlap(na, nb))
		return;
	if (na->count != 0 && nb->count != 0) {
		cross_leaves(cw, na, nb, p.a == p.b);
		return;
	}
	int n = pair_split(b, p, sub);
	for (int i = 0; i < n; i++)
		cross_pair(cw, sub[i]);
}

static void *cross_run(void *arg)
{
	struct cross_worker *cw = arg;

	cw->first_key = UINT64_MAX;
	for (;;) {
		size_t t = atomic_fetch_add(cw->next, 1);
		if (t >= cw->ntasks)
			break;
		cross_pair(cw, cw->tasks[t]);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Principal axes: symmetric 3x3 eigenvectors by cyclic Jacobi         */
/* ------------------------------------------------------------------ */

/* a: symmetric, destroyed; ev[i]: eigenvalues; vec[i]: the eigenvector of
 * ev[i] (rows). */
static void jacobi3(double a[3][3], double ev[3], double vec[3][3])
{
	double v[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};

	for (int sweep = 0; sweep < 50; sweep++) {
		double off = fabs(a[0][1]) + fabs(a[0][2]) + fabs(a[1][2]);
		double diag = fabs(a[0][0]) + fabs(a[1][1]) + fabs(a[2][2]);
		if (off <= 1e-15 * diag || off == 0)
			break;
		for (int p = 0; p < 2; p++)
			for (int q = p + 1; q < 3; q++) {
				if (a[p][q] == 0)
					continue;
				double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
				double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
				double c = 1 / sqrt(t * t + 1), s = t * c;
				for (int k = 0; k < 3; k++) {   /* A <- A J */
					double akp = a[k][p], akq = a[k][q];
					a[k][p] = c * akp - s * akq;
					a[k][q] = s * akp + c * akq;
				}
				for (int k = 0; k < 3; k++) {   /* A <- J^T A */
					double apk = a[p][k], aqk = a[q][k];
					a[p][k] = c * apk - s * aqk;
					a[q][k] = s * apk + c * aqk;
				}
				for (int k = 0; k < 3; k++) {   /* V <- V J */
					double vkp = v[k][p], vkq = v[k][q];
					v[k][p] = c * vkp - s * vkq;
					v[k][q] = s * vkp + c * vkq;
				}
			}
	}
	for (int i = 0; i < 3; i++) {
		ev[i] = a[i][i];
		for (int k = 0; k < 3; k++)
			vec[i][k] = v[k][i];
	}
}

static void measure_axes(const struct welded *w, struct mesh_analysis *an)
{
	double area = 0, c[3] = {0, 0, 0}, m2[3][3] = {{0}};
	double cov[3][3], ev[3], vec[3][3], lo[3], hi[3], ext[3];
	int idx[3] = {0, 1, 2};

	/* Second moments of the surface about the first vertex (for precision):
	 * integral of x x^T over a triangle = A / 12 (sum v v^T + s s^T), s = sum v. */
	const double *ref = w->p;
	for (size_t t = 0; t < w->nt; t++) {
		const double *p[3];
		double q[3][3], e1[3], e2[3], n[3], s[3] = {0, 0, 0};
		tri_corners(w, t, &p[0], &p[1], &p[2]);
		for (int i = 0; i < 3; i++)
			v_sub(q[i], p[i], ref);
		v_sub(e1, q[1], q[0]);
		v_sub(e2, q[2], q[0]);
		v_cross(n, e1, e2);
		double at = 0.5 * sqrt(v_dot(n, n));
		for (int i = 0; i < 3; i++)
			for (int k = 0; k < 3; k++)
				s[k] += q[i][k];
		area += at;
		for (int k = 0; k < 3; k++)
			c[k] += at * s[k] / 3.0;
		for (int j = 0; j < 3; j++)
			for (int k = 0; k < 3; k++) {
				double sum = s[j] * s[k];
				for (int i = 0; i < 3; i++)
					sum += q[i][j] * q[i][k];
				m2[j][k] += at / 12.0 * sum;
			}
	}
	if (area <= 0)
		return;
	for (int k = 0; k < 3; k++)
		c[k] /= area;
	for (int j = 0; j < 3; j++)
		for (int k = 0; k < 3; k++)
			cov[j][k] = m2[j][k] / area - c[j] * c[k];
	jacobi3(cov, ev, vec);
	for (int i = 0; i < 3; i++) {
		lo[i] = DBL_MAX;
		hi[i] = -DBL_MAX;
	}
	for (size_t v = 0; v < w->nv; v++) {
		if (w->vt_off[v + 1] == w->vt_off[v])
			continue;   /* a vertex no triangle uses is not part of the surface */
		for (int i = 0; i < 3; i++) {
			double x = v_dot(w->p + 3 * v, vec[i]);
			lo[i] = dmin(lo[i], x);
			hi[i] = dmax(hi[i], x);
		}
	}
	for (int i = 0; i < 3; i++)
		ext[i] = hi[i] - lo[i];
	for (int i = 0; i < 3; i++)   /* largest extent first */
		for (int j = i + 1; j < 3; j++)
			if (ext[idx[j]] > ext[idx[i]]) {
				int s = idx[i];
				idx[i] = idx[j];
				idx[j] = s;
			}
	for (int i = 0; i < 3; i++) {
		const double *e = vec[idx[i]];
		int big = 0;
		for (int k = 1; k < 3; k++)
			if (fabs(e[k]) > fabs(e[big]))
				big = k;
		double sign = e[big] < 0 ? -1 : 1;   /* largest component positive */
		an->extents[i] = ext[idx[i]];
		for (int k = 0; k < 3; k++)
			an->axes[i][k] = sign * e[k];
	}
}

/* ------------------------------------------------------------------ */
/* mesh_analyse                                                        */
/* ------------------------------------------------------------------ */

static int clamp_threads(int threads)
{
	return threads < 1 ? 1 : (threads > MESH_MAX_THREADS ? MESH_MAX_THREADS : threads);
}

/* Shells with volumes and areas, the solid's volume and centroid. */
static bool analyse_shells(struct r3d_err *err, const struct welded *w, struct mesh_analysis *an)
{
	uint32_t *shell_of = malloc((w->nt + 1) * sizeof(*shell_of));
	size_t ns = 0;
	double vc[3] = {0, 0, 0}, sc[3] = {0, 0, 0};
	const double *ref = w->nv > 0 ? w->p : vc;
	bool ok = false;

	if (shell_of == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "no memory for shells");
		goto out;
	}
	if (!shells_label(err, w, shell_of, &ns))
		goto out;
	an->shells = calloc(ns + 1, sizeof(*an->shells));
	if (an->shells == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "no memory for %zu shells", ns);
		goto out;
	}
	an->nshells = ns;
	for (size_t t = 0; t < w->nt; t++) {
		const double *p[3];
		double a[3], b[3], c[3], n[3];
		tri_corners(w, t, &p[0], &p[1], &p[2]);
		v_sub(a, p[0], ref);
		v_sub(b, p[1], ref);
		v_sub(c, p[2], ref);
		double e1[3], e2[3], cr[3];
		v_cross(cr, b, c);
		double vol = v_dot(a, cr) / 6.0;   /* tetrahedron (ref, a, b, c) */
		v_sub(e1, b, a);
		v_sub(e2, c, a);
		v_cross(n, e1, e2);
		double ar = 0.5 * sqrt(v_dot(n, n));
		struct mesh_shell *s = &an->shells[shell_of[t]];
		s->volume += vol;
		s->area += ar;
		s->ntri++;
		an->volume += vol;
		an->area += ar;
		for (int k = 0; k < 3; k++) {
			vc[k] += vol * (a[k] + b[k] + c[k]) / 4.0;
			sc[k] += ar * (a[k] + b[k] + c[k]) / 3.0;
		}
	}
	for (int k = 0; k < 3; k++) {
		double r = w->nv > 0 ? w->p[k] : 0;
		if (fabs(an->volume) > 1e-12 * pow(an->area, 1.5) && an->volume != 0)
			an->centroid[k] = r + vc[k] / an->volume;
		else if (an->area > 0)
			an->centroid[k] = r + sc[k] / an->area;
	}
	qsort(an->shells, ns, sizeof(*an->shells), shell_cmp);
	ok = true;
out:
	free(shell_of);
	return ok;
}

/* Inward unit directions: minus the area-weighted vertex normal. */
static bool vertex_inward(struct r3d_err *err, const struct welded *w, double **out)
{
	double *n = calloc(3 * (w->nv + 1), sizeof(*n));

	if (n == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "no memory for vertex normals");
	for (size_t t = 0; t < w->nt; t++) {
		const double *p[3];
		double e1[3], e2[3], fn[3];
		tri_corners(w, t, &p[0], &p[1], &p[2]);
		v_sub(e1, p[1], p[0]);
		v_sub(e2, p[2], p[0]);
		v_cross(fn, e1, e2);   /* twice the area times the unit normal */
		for (int i = 0; i < 3; i++)
			for (int k = 0; k < 3; k++)
				n[3 * (size_t)w->t[3 * t + i] + k] += fn[k];
	}
	for (size_t v = 0; v < w->nv; v++) {
		double *d = n + 3 * v, len = sqrt(v_dot(d, d));
		for (int k = 0; k < 3; k++)
			d[k] = len > 0 ? -d[k] / len : 0;
	}
	*out = n;
	return true;
}

static void wall_robust_min(const struct welded *w, const double *thick, struct mesh_analysis *an);

static bool analyse_wall(struct r3d_err *err, const struct bvh *b, const uint8_t *crossed,
			 int threads, struct mesh_analysis *an)
{
	const struct welded *w = b->w;
	struct wall_worker ww[MESH_MAX_THREADS];
	double *dirs = NULL, *thick = NULL;
	bool ok = false;

	if (!vertex_inward(err, w, &dirs))
		goto out;
	thick = malloc((w->nv + 1) * sizeof(*thick));
	if (thick == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "no memory for wall thickness");
		goto out;
	}
	/* First rays up to cap; if the robust minimum is below it,
	 * it is exact (a vertex with a longer ray in its 1-ring has a robust
	 * value above the cap); else every ray again, to any length. */
	double smin = INFINITY;
	for (size_t v = 0; v < w->nv; v += WALL_SAMPLE_STEP)
		smin = dmin(smin, wall_at_vertex(b, crossed, dirs, (uint32_t)v, INFINITY));
	double cap = dmax(WALL_FIRST_CAP, 2.0 * smin);
	for (int pass = 0; pass < 2 && !an->has_wall; pass++) {
		for (int t = 0; t < threads; t++) {
			ww[t].b = b;
			ww[t].crossed = crossed;
			ww[t].normal = dirs;
			ww[t].cap = pass == 0 ? cap : INFINITY;
			ww[t].thick = thick;
			ww[t].v0 = w->nv * (size_t)t / (size_t)threads;
			ww[t].v1 = w->nv * (size_t)(t + 1) / (size_t)threads;
		}
		meshpar_run(threads, ww, sizeof(ww[0]), wall_run);
		wall_robust_min(w, thick, an);
	}
	if (!an->has_wall)
		an->min_wall = 0;
	ok = true;
out:
	free(thick);
	free(dirs);
	return ok;
}

/* Robust minimum: each vertex takes the largest thickness over itself and
 * its 1-ring; the minimum is over those. */
static void wall_robust_min(const struct welded *w, const double *thick, struct mesh_analysis *an)
{
	an->has_wall = false;
	an->min_wall = INFINITY;
	for (size_t v = 0; v < w->nv; v++) {
		double r = thick[v];
		if (!(r < an->min_wall))
			continue;
		for (size_t i = w->vt_off[v]; i < w->vt_off[v + 1] && r < an->min_wall; i++) {
			const uint32_t *tv = w->t + 3 * (size_t)w->vt[i];
			for (int k = 0; k < 3; k++)
				r = dmax(r, thick[tv[k]]);
		}
		if (r < an->min_wall) {
			an->min_wall = r;
			an->has_wall = true;
			memcpy(an->wall_at, w->p + 3 * v, sizeof(an->wall_at));
		}
	}
}

/* Counts the crossings; *crossed (owned by the caller, free()): 1 for each
 * triangle in one. */
static bool analyse_crossings(struct r3d_err *err, const struct bvh *b, int threads,
			      struct mesh_analysis *an, uint8_t **crossed)
{
	struct cross_worker cw[MESH_MAX_THREADS];
	uint64_t first = UINT64_MAX;
	bool ok = true;
	atomic_size_t next = 0;
	size_t cap = CROSS_TASKS_PER_THREAD * (size_t)threads * 4, n = 1;
	struct node_pair *tasks = malloc(cap * sizeof(*tasks));
	struct node_pair *more = malloc(cap * sizeof(*more));

	*crossed = NULL;
	if (tasks == NULL || more == NULL) {
		free(tasks);
		free(more);
		return r3d_err_set(err, R3D_ENOMEM, "no memory for the self-intersections");
	}
	/* The tasks: the overlapping node pairs of the first levels, split
	 * breadth-first until there are enough to share out (leaf pairs stay). */
	tasks[0] = (struct node_pair){0, 0};
	while (n < CROSS_TASKS_PER_THREAD * (size_t)threads) {
		size_t m = 0;
		bool split = false;
		for (size_t i = 0; i < n; i++) {
			const struct bvh_node *na = &b->node[tasks[i].a], *nb = &b->node[tasks[i].b];
			struct node_pair sub[3];
			int k = 0;
			if (na->count != 0 && nb->count != 0)
				sub[k++] = tasks[i];
			else
				k = pair_split(b, tasks[i], sub);
			split |= k > 1;
			for (int j = 0; j < k; j++)
				if (m < cap && nodes_overlap(&b->node[sub[j].a], &b->node[sub[j].b]))
					more[m++] = sub[j];
		}
		struct node_pair *swap = tasks;
		tasks = more;
		more = swap;
		n = m;
		if (!split || 3 * n > cap)
			break;
	}
	for (int t = 0; t < threads; t++) {
		memset(&cw[t], 0, sizeof(cw[t]));
		cw[t].b = b;
		cw[t].tasks = tasks;
		cw[t].ntasks = n;
		cw[t].next = &next;
	}
	meshpar_run(threads, cw, sizeof(cw[0]), cross_run);
	free(tasks);
	free(more);
	an->self_intersections = 0;
	*crossed = calloc(b->w->nt + 1, 1);
	for (int t = 0; t < threads; t++) {
		an->self_intersections += cw[t].count;
		if (cw[t].count > 0 && cw[t].first_key < first) {
			first = cw[t].first_key;
			memcpy(an->si_at, cw[t].at, sizeof(an->si_at));
		}
		for (size_t i = 0; *crossed != NULL && i < cw[t].ntris; i++)
			(*crossed)[cw[t].tris[i]] = 1;
		ok = ok && !cw[t].oom;
		free(cw[t].tris);
	}
	if (!ok || *crossed == NULL) {
		free(*crossed);
		*crossed = NULL;
		return r3d_err_set(err, R3D_ENOMEM, "no memory for the self-intersections");
	}
	return true;
}

bool mesh_analyse(struct r3d_err *err, const struct mesh *m, int threads,
		  struct mesh_analysis *a)
{
	struct welded w;
	struct bvh b;
	uint8_t *crossed = NULL;
	double t0 = clock_mono_s();
	bool ok = false;

	memset(a, 0, sizeof(*a));
	memset(&b, 0, sizeof(b));
	threads = clamp_threads(threads);
	if (!welded_make(err, m, &w))
		return false;
	if (!analyse_shells(err, &w, a))
		goto out;
	if (w.nt > 0) {
		if (!bvh_build(err, &w, threads, &b) ||
		    !analyse_crossings(err, &b, threads, a, &crossed) ||
		    !analyse_wall(err, &b, crossed, threads, a))
			goto out;
		measure_axes(&w, a);
	}
	a->seconds = clock_mono_s() - t0;
	ok = true;
out:
	free(crossed);
	bvh_free(&b);
	welded_free(&w);
	if (!ok)
		mesh_analysis_free(a);
	return ok;
}

void mesh_analysis_free(struct mesh_analysis *a)
{
	free(a->shells);
	a->shells = NULL;
	a->nshells = 0;
}

/* ------------------------------------------------------------------ */
/* mesh_gap                                                       */
/* ------------------------------------------------------------------ */

struct dist_worker {
	const struct welded *wa;
	const struct bvh *b;
	size_t t0, t1;
	double best2;
	double pa[3], pb[3];
};

static void *dist_run(void *arg)
{
	struct dist_worker *dw = arg;
	const struct bvh *b = dw->b;
	const struct welded *wb = b->w, *wa = dw->wa;
	uint32_t stack[BVH_STACK];

	for (size_t t = dw->t0; t < dw->t1 && dw->best2 > 0; t++) {
		const double *ta[3];
		double lo[3], hi[3];
		int sp = 0;
		tri_corners(wa, t, &ta[0], &ta[1], &ta[2]);
		for (int k = 0; k < 3; k++) {
			lo[k] = dmin(ta[0][k], dmin(ta[1][k], ta[2][k]));
			hi[k] = dmax(ta[0][k], dmax(ta[1][k], ta[2][k]));
		}
		stack[sp++] = 0;
		while (sp > 0 && dw->best2 > 0) {
			const struct bvh_node *n = &b->node[stack[--sp]];
			if (box_dist2(lo, hi, n->lo, n->hi) >= dw->best2)
				continue;
			if (n->count == 0) {
				/* Nearer child last, so that it is visited first. */
				const struct bvh_node *l = &b->node[n->first], *r = &b->node[n->first + 1];
				double dl = box_dist2(lo, hi, l->lo, l->hi);
				double dr = box_dist2(lo, hi, r->lo, r->hi);
				if (sp + 2 > BVH_STACK)
					continue;
				if (dl < dr) {
					stack[sp++] = n->first + 1;
					stack[sp++] = n->first;
				} else {
					stack[sp++] = n->first;
					stack[sp++] = n->first + 1;
				}
				continue;
			}
			for (uint32_t i = 0; i < n->count; i++) {
				const double *tb[3];
				double ca[3], cb[3];
				tri_corners(wb, b->order[n->first + i], &tb[0], &tb[1], &tb[2]);
				double d2 = triangles_dist2(ta, tb, ca, cb);
				if (d2 < dw->best2) {
					dw->best2 = d2;
					memcpy(dw->pa, ca, sizeof(ca));
					memcpy(dw->pb, cb, sizeof(cb));
				}
			}
		}
	}
	return NULL;
}

bool mesh_gap(struct r3d_err *err, const struct mesh *a, const struct mesh *b, int threads,
		   double *dist, double pa[3], double pb[3])
{
	struct welded wa, wb;
	struct bvh tree;
	struct dist_worker dw[MESH_MAX_THREADS];
	bool ok = false;
	int best = 0;

	memset(&wa, 0, sizeof(wa));
	memset(&wb, 0, sizeof(wb));
	memset(&tree, 0, sizeof(tree));
	threads = clamp_threads(threads);
	if (a->ntri == 0 || b->ntri == 0)
		return r3d_err_set(err, R3D_EINVAL, "distance of an empty mesh");
	if (!welded_make(err, a, &wa) || !welded_make(err, b, &wb) || !bvh_build(err, &wb, threads, &tree))
		goto out;
	for (int t = 0; t < threads; t++) {
		memset(&dw[t], 0, sizeof(dw[t]));
		dw[t].wa = &wa;
		dw[t].b = &tree;
		dw[t].t0 = wa.nt * (size_t)t / (size_t)threads;
		dw[t].t1 = wa.nt * (size_t)(t + 1) / (size_t)threads;
		dw[t].best2 = INFINITY;
	}
	meshpar_run(threads, dw, sizeof(dw[0]), dist_run);
	for (int t = 1; t < threads; t++)
		if (dw[t].best2 < dw[best].best2)
			best = t;
	*dist = sqrt(dw[best].best2);
	memcpy(pa, dw[best].pa, 3 * sizeof(double));
	memcpy(pb, dw[best].pb, 3 * sizeof(double));
	ok = true;
out:
	bvh_free(&tree);
	welded_free(&wb);
	welded_free(&wa);
	return ok;
}

/* ------------------------------------------------------------------ */
/* mesh_drop_small_shells                                              */
/* ------------------------------------------------------------------ */

bool mesh_drop_small_shells(struct r3d_err *err, struct mesh *m, double min_volume,
			    size_t *dropped)
{
	struct welded w;
	uint32_t *shell_of = NULL, *vmap = NULL;
	double *vol = NULL;
	size_t ns = 0, nt = 0, nv = 0;
	bool ok = false;

	*dropped = 0;
	if (!welded_make(err, m, &w))
		return false;
	shell_of = malloc((w.nt + 1) * sizeof(*shell_of));
	if (shell_of == NULL)
		goto nomem;
	if (!shells_label(err, &w, shell_of, &ns))
		goto out;
	vol = calloc(ns + 1, sizeof(*vol));
	vmap = malloc((m->nvert + 1) * sizeof(*vmap));
	if (vol == NULL || vmap == NULL)
		goto nomem;
	for (size_t t = 0; t < w.nt; t++) {
		const double *p[3];
		double cr[3];
		tri_corners(&w, t, &p[0], &p[1], &p[2]);
		v_cross(cr, p[1], p[2]);
		vol[shell_of[t]] += v_dot(p[0], cr) / 6.0;
	}
	for (size_t s = 0; s < ns; s++)
		if (vol[s] >= 0 && vol[s] < min_volume)
			(*dropped)++;
	for (size_t t = 0; *dropped > 0 && t < w.nt; t++) {
		double v = vol[shell_of[t]];
		if (!(v >= 0 && v < min_volume))
			break;
		if (t + 1 == w.nt)
			*dropped = 0;   /* every piece is small: the model is kept whole */
	}
	if (*dropped == 0) {
		ok = true;
		goto out;
	}
	for (size_t t = 0; t < m->ntri; t++) {
		double v = vol[shell_of[t]];
		if (v >= 0 && v < min_volume)
			continue;
		memmove(m->tri + 3 * nt, m->tri + 3 * t, 3 * sizeof(*m->tri));
		nt++;
	}
	m->ntri = nt;
	for (size_t v = 0; v < m->nvert; v++)
		vmap[v] = UINT32_MAX;
	for (size_t i = 0; i < 3 * nt; i++) {
		uint32_t v = m->tri[i];
		if (vmap[v] == UINT32_MAX)
			vmap[v] = 0;
	}
	for (size_t v = 0; v < m->nvert; v++) {
		if (vmap[v] == UINT32_MAX)
			continue;
		vmap[v] = (uint32_t)nv;
		memmove(m->xyz + 3 * nv, m->xyz + 3 * v, 3 * sizeof(*m->xyz));
		nv++;
	}
	m->nvert = nv;
	for (size_t i = 0; i < 3 * nt; i++)
		m->tri[i] = vmap[m->tri[i]];
	ok = true;
	goto out;
nomem:
	r3d_err_set(err, R3D_ENOMEM, "no memory to drop shells");
out:
	free(vmap);
	free(vol);
	free(shell_of);
	welded_free(&w);
	return ok;
}
