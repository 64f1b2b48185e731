/*
 * collapse.c: quadric edge-collapse simplification that keeps a closed
 * 2-manifold closed and 2-manifold (see collapse.h). Called by decimate.c;
 * any thread, no threads of its own.
 *
 * How: every vertex carries the sum of the area-weighted plane quadrics of
 * the triangles around it (Garland and Heckbert 1997). The mesh is
 * simplified in passes. A pass builds the vertex -> triangle lists, gives
 * every edge the cost of its best collapse (the least summed quadric at the
 * two ends, their midpoint and the quadric's own minimum when it is near
 * the edge), sorts the edges by cost (radix sort of the float bits), and
 * walks them cheapest first. A collapse locks its two ends and their
 * neighbours for the rest of the pass, so every later collapse of the pass
 * sees only triangles, lists and positions that are still true; the next
 * pass rebuilds them. A collapse is refused when it breaks the link
 * condition (the ends share a neighbour other than the two opposite
 * vertices: the collapse would pinch the surface or close a handle), leaves
 * a vertex with fewer than three triangles (a tetrahedron), turns a
 * remaining triangle over or flattens it. Those are the cases in which an
 * edge collapse changes the topology or the orientation of a closed
 * 2-manifold; everything else keeps it closed, 2-manifold and of the same
 * genus, so no repair is needed afterwards.
 *
 * Frame: any. The quadrics are in coordinates relative to the centre of
 * the bounding box, in double precision.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "collapse.h"
#include "meshgeom.h"
#include "r3d/util.h"

/* A triangle may turn by at most acos(COLLAPSE_MIN_COS), about 78 degrees. */
#define COLLAPSE_MIN_COS 0.2
/* Twice a new triangle's area must be at least this much of its longest
 * edge squared (an angle of about 0.006 degrees): a hundred times the
 * threshold of mesh_count_slivers(), so no collapse makes a triangle that
 * counts as one without area. */
#define COLLAPSE_MIN_SHAPE 1e-4
/* Below the budget, a pass that removes less than 1/COLLAPSE_ERROR_TAIL of
 * the triangles is the last. */
#define COLLAPSE_ERROR_TAIL 50
/* Never fewer triangles than a tetrahedron's. */
#define COLLAPSE_MIN_TRI 4
#define COLLAPSE_AREA_WEIGHT 0
/* Below the budget, the first positions of a collapse's ends must stay
 * within this many max_dev of the new fan. */
#define COLLAPSE_ANCHOR 2.0
/* Radix sort of the 32-bit cost keys in passes of this many bits. */
#define COLLAPSE_RADIX_BITS 11
#define COLLAPSE_RADIX (1u << COLLAPSE_RADIX_BITS)
/* The vertices of a triangle removed in this pass (until the compaction). */
#define COLLAPSE_DEAD UINT32_MAX

struct quadric {
	double a00, a01, a02, a11, a12, a22, b0, b1, b2, c;
	double w; /* the area the planes stand for */
};

struct collapse {
	float *xyz;
	size_t nvert;
	uint32_t *tri;
	size_t ntri;          /* live triangles, tri[0 .. 3 * ntri) after compaction */
	double origin[3];
	struct quadric *q;
	uint32_t *deg;        /* triangles around each vertex, kept current */
	uint8_t *fixed;       /* never an end of a collapse */
	uint32_t *plock;      /* == pass: locked for this pass */
	uint32_t *mark;       /* stamps of the link test */
	uint32_t stamp;
	uint32_t pass;
	uint32_t *off;        /* vertex -> triangles, rebuilt each pass */
	uint32_t *adj;
	float *tcost;         /* per corner k of a triangle: the cost of the edge
			       * from corner k to k + 1, kept between passes while
			       * neither end changes (moved with the triangle) */
	uint32_t *ea, *eb, *key, *order, *tmp;
	size_t ecap;
	double max_dev2;      /* below the budget: deviation limit squared (0: none) */
	float *orig;          /* below the budget: every vertex's first position */
	struct collapse_stats st;
};

static void quadric_add(struct quadric *d, const struct quadric *s)
{
	d->a00 += s->a00;
	d->a01 += s->a01;
	d->a02 += s->a02;
	d->a11 += s->a11;
	d->a12 += s->a12;
	d->a22 += s->a22;
	d->b0 += s->b0;
	d->b1 += s->b1;
	d->b2 += s->b2;
	d->c += s->c;
	d->w += s->w;
}

static double quadric_eval(const struct quadric *q, const double p[3])
{
	double x = p[0], y = p[1], z = p[2];

	return q->a00 * x * x + q->a11 * y * y + q->a22 * z * z +
	       2.0 * (q->a01 * x * y + q->a02 * x * z + q->a12 * y * z) +
	       2.0 * (q->b0 * x + q->b1 * y + q->b2 * z) + q->c;
}

/* The minimum of q, when the 3x3 system is well conditioned. */
static bool quadric_minimum(const struct quadric *q, double p[3])
{
	double a = q->a00, b = q->a01, c = q->a02, d = q->a11, e = q->a12, f = q->a22;
	double c00 = d * f - e * e, c01 = c * e - b * f, c02 = b * e - c * d;
	double det = a * c00 + b * c01 + c * c02;
	double scale = fabs(a) + fabs(d) + fabs(f);

	if (!(fabs(det) > 1e-9 * scale * scale * scale))
		return false;
	double c11 = a * f - c * c, c12 = b * c - a * e, c22 = a * d - b * b;
	double r0 = -q->b0, r1 = -q->b1, r2 = -q->b2;
	p[0] = (c00 * r0 + c01 * r1 + c02 * r2) / det;
	p[1] = (c01 * r0 + c11 * r1 + c12 * r2) / det;
	p[2] = (c02 * r0 + c12 * r1 + c22 * r2) / det;
	return isfinite(p[0]) && isfinite(p[1]) && isfinite(p[2]);
}

static void collapse_local(const struct collapse *c, uint32_t v, double p[3])
{
	for (int k = 0; k < 3; k++)
		p[k] = (double)c->xyz[3 * (size_t)v + k] - c->origin[k];
}

/* The best place for the vertex that replaces a and b, and its cost. */
static double collapse_place(const struct collapse *c, uint32_t a, uint32_t b, double p[3])
{
	struct quadric q = c->q[a];
	double pa[3], pb[3], cand[3], best, e;

	quadric_add(&q, &c->q[b]);
	collapse_local(c, a, pa);
	collapse_local(c, b, pb);
	best = quadric_eval(&q, pa);
	memcpy(p, pa, sizeof(pa));
	e = quadric_eval(&q, pb);
	if (e < best) {
		best = e;
		memcpy(p, pb, sizeof(pb));
	}
	double mid[3] = {(pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2, (pa[2] + pb[2]) / 2};
	e = quadric_eval(&q, mid);
	if (e < best) {
		best = e;
		memcpy(p, mid, sizeof(mid));
	}
	if (quadric_minimum(&q, cand)) {
		/* Only near the edge: within half its length of the midpoint. */
		double l2 = 0, d2 = 0;
		for (int k = 0; k < 3; k++) {
			l2 += (pb[k] - pa[k]) * (pb[k] - pa[k]);
			d2 += (cand[k] - mid[k]) * (cand[k] - mid[k]);
		}
		e = quadric_eval(&q, cand);
		if (d2 <= 0.25 * l2 && e < best) {
			best = e;
			memcpy(p, cand, sizeof(cand));
		}
	}
	return best > 0 ? best : 0;
}

static void collapse_quadrics(struct collapse *c)
{
	for (size_t t = 0; t < c->ntri; t++) {
		const uint32_t *f = c->tri + 3 * t;
		double p0[3], p1[3], p2[3], n[3], len;
		collapse_local(c, f[0], p0);
		collapse_local(c, f[1], p1);
		collapse_local(c, f[2], p2);
		double e1[3] = {p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2]};
		double e2[3] = {p2[0] - p0[0], p2[1] - p0[1], p2[2] - p0[2]};
		n[0] = e1[1] * e2[2] - e1[2] * e2[1];
		n[1] = e1[2] * e2[0] - e1[0] * e2[2];
		n[2] = e1[0] * e2[1] - e1[1] * e2[0];
		len = sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
		if (!(len > 0))
			continue;
		/* Weight: the area (len / 2); plane n.x + d = 0 with |n| = 1. */
		double w = COLLAPSE_AREA_WEIGHT ? len / 2 : 1.0, d;
		for (int k = 0; k < 3; k++)
			n[k] /= len;
		d = -(n[0] * p0[0] + n[1] * p0[1] + n[2] * p0[2]);
		struct quadric q = {w * n[0] * n[0], w * n[0] * n[1], w * n[0] * n[2],
				    w * n[1] * n[1], w * n[1] * n[2], w * n[2] * n[2],
				    w * d * n[0], w * d * n[1], w * d * n[2], w * d * d, w};
		for (int k = 0; k < 3; k++)
			quadric_add(&c->q[f[k]], &q);
	}
}

/* Vertex -> triangle lists of the live triangles, and the degrees. */
static void collapse_lists(struct collapse *c)
{
	memset(c->off, 0, (c->nvert + 1) * sizeof(*c->off));
	for (size_t i = 0; i < 3 * c->ntri; i++)
		c->off[c->tri[i] + 1]++;
	for (size_t v = 0; v < c->nvert; v++) {
		c->deg[v] = c->off[v + 1];
		c->off[v + 1] += c->off[v];
	}
	for (size_t i = 0; i < 3 * c->ntri; i++)
		c->adj[c->off[c->tri[i]]++] = (uint32_t)(i / 3);
	for (size_t v = c->nvert; v > 0; v--)
		c->off[v] = c->off[v - 1];
	c->off[0] = 0;
}

static int corner_of(const uint32_t *f, uint32_t v)
{
	return f[0] == v ? 0 : f[1] == v ? 1 : f[2] == v ? 2 : -1;
}

/* Marks as fixed every vertex whose fan is not one closed, consistently
 * oriented disc: an end of a boundary or non-manifold edge, a vertex where
 * two sheets are pinched, a corner of a triangle that repeats a vertex. */
static void collapse_find_defects(struct collapse *c)
{
	for (size_t t = 0; t < c->ntri; t++) {
		const uint32_t *f = c->tri + 3 * t;
		if (f[0] == f[1] || f[1] == f[2] || f[0] == f[2])
			c->fixed[f[0]] = c->fixed[f[1]] = c->fixed[f[2]] = 1;
	}
	for (uint32_t u = 0; u < c->nvert; u++) {
		const uint32_t *t = c->adj + c->off[u];
		uint32_t deg = c->off[u + 1] - c->off[u];
		bool bad = false;

		if (deg == 0 || c->fixed[u])
			continue;
		if (deg < 3)
			bad = true;
		/* Every half-edge u -> w once, and w -> u once. */
		for (uint32_t i = 0; i < deg && !bad; i++) {
			const uint32_t *fi = c->tri + 3 * (size_t)t[i];
			uint32_t w = fi[(corner_of(fi, u) + 1) % 3];
			int out = 0, in = 0;
			for (uint32_t j = 0; j < deg; j++) {
				const uint32_t *fj = c->tri + 3 * (size_t)t[j];
				int cj = corner_of(fj, u);
				out += fj[(cj + 1) % 3] == w;
				in += fj[(cj + 2) % 3] == w;
			}
			bad = out != 1 || in != 1;
		}
		/* One fan: walking from triangle to triangle around u returns to
		 * the start after deg steps. */
		if (!bad) {
			uint32_t cur = t[0], steps = 0;
			do {
				const uint32_t *fc = c->tri + 3 * (size_t)cur;
				uint32_t w = fc[(corner_of(fc, u) + 2) % 3]; /* edge w -> u */
				uint32_t next = UINT32_MAX;
				for (uint32_t j = 0; j < deg; j++) {
					const uint32_t *fj = c->tri + 3 * (size_t)t[j];
					if (fj[(corner_of(fj, u) + 1) % 3] == w)
						next = t[j]; /* edge u -> w */
				}
				cur = next;
				steps++;
			} while (cur != UINT32_MAX && cur != t[0] && steps <= deg);
			bad = cur != t[0] || steps != deg;
		}
		if (bad)
			c->fixed[u] = 1;
	}
}

/* Sorts order[0..n) by key, stable, least significant digit first. */
static void collapse_sort(struct collapse *c, size_t n)
{
	static const int shifts[] = {0, COLLAPSE_RADIX_BITS, 2 * COLLAPSE_RADIX_BITS};
	uint32_t *src = c->order, *dst = c->tmp;

	for (size_t i = 0; i < n; i++)
		src[i] = (uint32_t)i;
	for (int s = 0; s < 3; s++) {
		size_t count[COLLAPSE_RADIX + 1];
		memset(count, 0, sizeof(count));
		for (size_t i = 0; i < n; i++)
			count[((c->key[src[i]] >> shifts[s]) & (COLLAPSE_RADIX - 1)) + 1]++;
		for (size_t b = 1; b <= COLLAPSE_RADIX; b++)
			count[b] += count[b - 1];
		for (size_t i = 0; i < n; i++)
			dst[count[(c->key[src[i]] >> shifts[s]) & (COLLAPSE_RADIX - 1)]++] = src[i];
		uint32_t *x = src;
		src = dst;
		dst = x;
	}
	/* src holds the result; dst is the other buffer. */
	c->order = src;
	c->tmp = dst;
}

static void cross_sub(const double a[3], const double b[3], const double o[3], double n[3])
{
	double e1[3] = {a[0] - o[0], a[1] - o[1], a[2] - o[2]};
	double e2[3] = {b[0] - o[0], b[1] - o[1], b[2] - o[2]};
	n[0] = e1[1] * e2[2] - e1[2] * e2[1];
	n[1] = e1[2] * e2[0] - e1[0] * e2[2];
	n[2] = e1[0] * e2[1] - e1[1] * e2[0];
}

/* True when moving the triangles of 'from' (except those with 'other') to
 * p keeps each one facing the same way and with area. */
static bool collapse_shape_ok(const struct collapse *c, uint32_t from, uint32_t other,
			      const double p[3])
{
	for (uint32_t i = c->off[from]; i < c->off[from + 1]; i++) {
		const uint32_t *f = c->tri + 3 * (size_t)c->adj[i];
		double o[3][3], nw[3][3], n0[3], n1[3];
		if (f[0] == COLLAPSE_DEAD || f[0] == other || f[1] == other || f[2] == other)
			continue;
		for (int k = 0; k < 3; k++) {
			collapse_local(c, f[k], o[k]);
			if (f[k] == from)
				memcpy(nw[k], p, 3 * sizeof(double));
			else
				memcpy(nw[k], o[k], sizeof(o[k]));
		}
		cross_sub(o[1], o[2], o[0], n0);
		cross_sub(nw[1], nw[2], nw[0], n1);
		/* Squared, without the roots: d > cos * l0 * l1 and d > 0. */
		double d = n0[0] * n1[0] + n0[1] * n1[1] + n0[2] * n1[2];
		double l0 = n0[0] * n0[0] + n0[1] * n0[1] + n0[2] * n0[2];
		double l1 = n1[0] * n1[0] + n1[1] * n1[1] + n1[2] * n1[2];
		if (!(d > 0 && d * d > COLLAPSE_MIN_COS * COLLAPSE_MIN_COS * l0 * l1))
			return false;
		double emax = 0;
		for (int k = 0; k < 3; k++) {
			const double *a = nw[k], *b = nw[(k + 1) % 3];
			double e = (a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) +
				   (a[2] - b[2]) * (a[2] - b[2]);
			emax = e > emax ? e : emax;
		}
		if (!(l1 >= COLLAPSE_MIN_SHAPE * COLLAPSE_MIN_SHAPE * emax * emax))
			return false;
	}
	return true;
}

/* Below the budget: the larger of the squared distances from the first
 * positions of u and v to the fan u would have at p. The quadric alone
 * lets a thin part retract along its own sides (a vessel's tip, a
 * peninsula of a flat cap: the planes that stay contain the direction it
 * moves in); its first position then lies off the new fan. */
static double collapse_anchor_d2(const struct collapse *c, uint32_t u, uint32_t v, const double p[3])
{
	double worst = 0;
	const uint32_t ends[2] = {u, v};

	for (int e = 0; e < 2; e++) {
		double a[3], best = INFINITY;
		for (int k = 0; k < 3; k++)
			a[k] = (double)c->orig[3 * (size_t)ends[e] + k] - c->origin[k];
		for (int s = 0; s < 2; s++) {
			uint32_t from = ends[s], other = ends[1 - s];
			for (uint32_t i = c->off[from]; i < c->off[from + 1]; i++) {
				const uint32_t *f = c->tri + 3 * (size_t)c->adj[i];
				double q[3][3];
				if (f[0] == COLLAPSE_DEAD || f[0] == other || f[1] == other || f[2] == other)
					continue;
				for (int k = 0; k < 3; k++) {
					if (f[k] == from)
						memcpy(q[k], p, 3 * sizeof(double));
					else
						collapse_local(c, f[k], q[k]);
				}
				double d2 = meshgeom_point_triangle_d2(a, q[0], q[1], q[2]);
				best = d2 < best ? d2 : best;
			}
		}
		worst = best > worst ? best : worst;
	}
	return worst;
}

/* Tries to collapse edge (u, v) into u; true when done. */
static bool collapse_try(struct collapse *c, uint32_t u, uint32_t v)
{
	uint32_t opp[2] = {0, 0}, common = 0, s;
	double p[3];

	if (c->plock[u] == c->pass || c->plock[v] == c->pass)
		return false;
	if (c->stamp >= UINT32_MAX - 2) {
		memset(c->mark, 0, c->nvert * sizeof(*c->mark));
		c->stamp = 0;
	}
	c->stamp += 2;
	s = c->stamp;
	for (uint32_t i = c->off[u]; i < c->off[u + 1]; i++) {
		const uint32_t *f = c->tri + 3 * (size_t)c->adj[i];
		if (f[0] == COLLAPSE_DEAD)
			continue;
		for (int k = 0; k < 3; k++)
			c->mark[f[k]] = s;
	}
	for (uint32_t i = c->off[v]; i < c->off[v + 1]; i++) {
		const uint32_t *f = c->tri + 3 * (size_t)c->adj[i];
		if (f[0] == COLLAPSE_DEAD)
			continue;
		for (int k = 0; k < 3; k++) {
			uint32_t w = f[k];
			if (w == u || w == v || c->mark[w] != s)
				continue;
			c->mark[w] = s + 1;
			if (common < 2)
				opp[common] = w;
			common++;
		}
	}
	if (common != 2 || c->deg[u] + c->deg[v] < 7 || c->deg[opp[0]] < 4 ||
	    c->deg[opp[1]] < 4) {
		c->st.rejected_link++;
		return false;
	}
	collapse_place(c, u, v, p);
	if (!collapse_shape_ok(c, u, v, p) || !collapse_shape_ok(c, v, u, p)) {
		c->st.rejected_shape++;
		return false;
	}
	if (c->max_dev2 > 0 &&
	    !(collapse_anchor_d2(c, u, v, p) <= COLLAPSE_ANCHOR * COLLAPSE_ANCHOR * c->max_dev2)) {
		c->st.rejected_shape++;
		return false;
	}
	/* Collapse: u moves to p and takes v's triangles; the two on the edge go. */
	for (int k = 0; k < 3; k++)
		c->xyz[3 * (size_t)u + k] = (float)(p[k] + c->origin[k]);
	quadric_add(&c->q[u], &c->q[v]);
	for (uint32_t i = c->off[v]; i < c->off[v + 1]; i++) {
		uint32_t t = c->adj[i];
		uint32_t *f = c->tri + 3 * (size_t)t;
		if (f[0] == COLLAPSE_DEAD)
			continue;
		if (f[0] == u || f[1] == u || f[2] == u) {
			f[0] = f[1] = f[2] = COLLAPSE_DEAD;
			continue;
		}
		f[corner_of(f, v)] = u;
	}
	c->deg[u] = c->deg[u] + c->deg[v] - 4;
	c->deg[v] = 0;
	c->deg[opp[0]]--;
	c->deg[opp[1]]--;
	/* Only u gained triangles (v's, not in u's list): lock it; v is gone. */
	c->plock[u] = c->plock[v] = c->pass;
	c->st.collapses++;
	return true;
}

static void collapse_compact(struct collapse *c)
{
	size_t n = 0;

	for (size_t t = 0; t < c->ntri; t++) {
		if (c->tri[3 * t] == COLLAPSE_DEAD)
			continue;
		if (n != t) {
			memcpy(c->tri + 3 * n, c->tri + 3 * t, 3 * sizeof(uint32_t));
			memcpy(c->tcost + 3 * n, c->tcost + 3 * t, 3 * sizeof(float));
		}
		n++;
	}
	c->ntri = n;
}

/* One pass; returns the collapses made. cap: only the edges that would be
 * among the cheapest 'needed' ones. */
static void collapse_pass(struct collapse *c, size_t target, bool cap, bool by_error,
			  size_t *made)
{
	size_t ne = 0, needed, done = 0;
	uint32_t limit = UINT32_MAX;

	*made = 0;
	c->pass++;
	c->st.passes++;
	collapse_lists(c);
	for (size_t t = 0; t < c->ntri; t++) {
		const uint32_t *f = c->tri + 3 * t;
		for (int k = 0; k < 3; k++) {
			uint32_t a = f[k], b = f[(k + 1) % 3];
			if (a > b || c->fixed[a] || c->fixed[b] || ne >= c->ecap)
				continue;
			/* Changed in the last pass (or the first pass): cost it anew. */
			float cost = c->tcost[3 * t + k];
			if (c->pass == 1 || c->plock[a] == c->pass - 1 || c->plock[b] == c->pass - 1) {
				double p[3];
				cost = (float)collapse_place(c, a, b, p);
				c->tcost[3 * t + k] = cost;
			}
			/* Below the budget, only the collapses that keep the
			 * surface within max_dev of the planes it replaces. */
			if (by_error && !((double)cost <= c->max_dev2 * (c->q[a].w + c->q[b].w)))
				continue;
			uint32_t bits;
			memcpy(&bits, &cost, sizeof(bits));
			c->ea[ne] = a;
			c->eb[ne] = b;
			c->key[ne] = bits;
			ne++;
		}
	}
	if (ne == 0)
		return;
	needed = (c->ntri - target + 1) / 2;
	if (cap && needed < ne) {
		/* As meshoptimizer does: up to 1.5 times the cost of the edge at
		 * the rank of the collapses still needed. Only the edges that can
		 * be under that limit are sorted: a histogram of the keys' top
		 * bits finds the bucket of that rank, and everything up to 1.5
		 * times the top of that bucket is kept. */
		size_t hist[COLLAPSE_RADIX], run = 0, b = 0, keep = 0;
		float top, lim;
		memset(hist, 0, sizeof(hist));
		for (size_t i = 0; i < ne; i++)
			hist[c->key[i] >> (32 - COLLAPSE_RADIX_BITS)]++;
		while (b + 1 < COLLAPSE_RADIX && run + hist[b] < needed)
			run += hist[b++];
		uint32_t upper = (uint32_t)(b + 1) << (32 - COLLAPSE_RADIX_BITS);
		memcpy(&top, &upper, sizeof(top));
		lim = top * 1.5f;
		uint32_t coarse;
		memcpy(&coarse, &lim, sizeof(coarse));
		for (size_t i = 0; i < ne; i++) {
			if (c->key[i] > coarse)
				continue;
			c->ea[keep] = c->ea[i];
			c->eb[keep] = c->eb[i];
			c->key[keep] = c->key[i];
			keep++;
		}
		ne = keep;
		collapse_sort(c, ne);
		float at;
		uint32_t bits = c->key[c->order[(needed < ne ? needed : ne) - 1]];
		memcpy(&at, &bits, sizeof(at));
		lim = at * 1.5f;
		memcpy(&limit, &lim, sizeof(limit));
	} else {
		collapse_sort(c, ne);
	}
	for (size_t i = 0; i < ne && done < needed; i++) {
		uint32_t e = c->order[i];
		if (c->key[e] > limit)
			break;
		done += collapse_try(c, c->ea[e], c->eb[e]);
	}
	collapse_compact(c);
	*made = done;
}

bool collapse_simplify(struct r3d_err *err, float *xyz, size_t nvert, uint32_t *tri, size_t ntri,
		       const uint8_t *locked, size_t target, double max_dev, size_t *ntri_out,
		       struct collapse_stats *st)
{
	struct collapse c;
	unsigned char *arena = NULL;
	size_t arena_bytes = 0;
	bool ok = false, cap = true;
	float lo[3] = {FLT_MAX, FLT_MAX, FLT_MAX}, hi[3] = {-FLT_MAX, -FLT_MAX, -FLT_MAX};

	memset(&c, 0, sizeof(c));
	c.xyz = xyz;
	c.nvert = nvert;
	c.tri = tri;
	c.ntri = ntri;
	*ntri_out = ntri;
	if ((ntri <= target && !(max_dev > 0)) || nvert == 0) {
		c.st.reached = ntri <= target;
		c.st.budget_tri = ntri;
		ok = true;
		goto out;
	}
	if (3 * ntri > UINT32_MAX || nvert >= UINT32_MAX) {
		r3d_err_set(err, R3D_EINVAL, "decimate: %zu triangles are too many", ntri);
		goto out;
	}
	for (size_t v = 0; v < nvert; v++) {
		for (int k = 0; k < 3; k++) {
			lo[k] = xyz[3 * v + k] < lo[k] ? xyz[3 * v + k] : lo[k];
			hi[k] = xyz[3 * v + k] > hi[k] ? xyz[3 * v + k] : hi[k];
		}
	}
	for (int k = 0; k < 3; k++)
		c.origin[k] = ((double)lo[k] + hi[k]) / 2;
	/* One mapping for all of it (zeroed, huge pages where offered): the
	 * state is touched once per pass, and fresh small pages cost more than
	 * the work on them. */
	c.ecap = 3 * ntri / 2 + 1;
	const size_t sizes[] = {
		nvert * sizeof(*c.q), nvert * sizeof(*c.deg), nvert, nvert * sizeof(*c.plock),
		nvert * sizeof(*c.mark), (nvert + 1) * sizeof(*c.off), 3 * ntri * sizeof(*c.adj),
		3 * ntri * sizeof(*c.tcost), max_dev > 0 ? 3 * nvert * sizeof(*c.orig) : 0,
		c.ecap * sizeof(*c.ea), c.ecap * sizeof(*c.eb), c.ecap * sizeof(*c.key),
		c.ecap * sizeof(*c.order), c.ecap * sizeof(*c.tmp)};
	void **parts[] = {(void **)&c.q, (void **)&c.deg, (void **)&c.fixed, (void **)&c.plock,
			  (void **)&c.mark, (void **)&c.off, (void **)&c.adj, (void **)&c.tcost,
			  (void **)&c.orig, (void **)&c.ea, (void **)&c.eb, (void **)&c.key,
			  (void **)&c.order, (void **)&c.tmp};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		arena_bytes += (sizes[i] + 63) & ~(size_t)63;
	arena = bigbuf_alloc(err, arena_bytes);
	if (arena == NULL) {
		r3d_err_prefix(err, "decimate");
		goto out;
	}
	size_t at = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		*parts[i] = sizes[i] > 0 ? arena + at : NULL;
		at += (sizes[i] + 63) & ~(size_t)63;
	}
	if (locked != NULL)
		memcpy(c.fixed, locked, nvert);
	if (c.orig != NULL)
		memcpy(c.orig, xyz, 3 * nvert * sizeof(*c.orig));
	collapse_quadrics(&c);
	collapse_lists(&c);
	collapse_find_defects(&c);
	while (c.ntri > target) {
		size_t made;
		collapse_pass(&c, target, cap, false, &made);
		if (made == 0) {
			if (!cap)
				break; /* nothing left that may collapse */
			cap = false;
		} else {
			cap = true;
		}
	}
	c.st.reached = c.ntri <= target;
	c.st.budget_tri = c.ntri;
	/* Then on while the collapses stay within the deviation allowed, until
	 * a pass removes under 1/COLLAPSE_ERROR_TAIL of the triangles. */
	if (max_dev > 0 && c.st.reached) {
		c.max_dev2 = max_dev * max_dev;
		for (;;) {
			size_t made, before = c.ntri;
			collapse_pass(&c, COLLAPSE_MIN_TRI, false, true, &made);
			if (made == 0 || made * COLLAPSE_ERROR_TAIL < before)
				break;
		}
	}
	*ntri_out = c.ntri;
	ok = true;
out:
	if (st != NULL)
		*st = c.st;
	bigbuf_free(arena, arena_bytes);
	return ok;
}
