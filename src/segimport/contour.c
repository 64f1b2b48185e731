/*
 * contour.c: an RT Structure Set ROI's CLOSED_PLANAR contours to one grid
 * (segimport.h): every contour checked (points, planarity, parallel to the
 * grid planes, no crossing, an area; a point repeated in a row counts once), one plane per distinct
 * contour position along the normal, and an even-odd scanline fill of each
 * plane on the in-plane lattice of segimport_plane_grid refined `refine`
 * times per axis. Any thread; no state.
 *
 * Lattice: the CT pixel centres are origin + a * ps[1] * row + b * ps[0] *
 * col (a, b integer). Each CT pixel holds refine x refine sub-pixels whose
 * centres sit symmetrically inside it, at (m + 1/2) / refine - 1/2 pixel
 * from the CT pixel centre, m = 0 .. refine - 1 (refine 2: -1/4 and +1/4;
 * refine 1: the CT pixel centres themselves; odd refine: one sub-pixel
 * centred on the CT pixel centre). dx = ps[1] / refine, dy = ps[0] / refine.
 *
 * Fill: a sub-pixel is inside when its centre is inside an odd number of the
 * plane's contours: all edges of the plane are pooled and a horizontal line
 * through a row of centres counts an edge when one end is at or below it
 * and the other above (half-open, so a vertex on the line is counted once);
 * centre i is inside when an odd number of crossings lie strictly beyond it.
 * The test on the row is exact; the crossing abscissa is one division.
 *
 * Crop: the ROI's contour bounding box in the lattice plus one sub-pixel on
 * each side (those are empty by the rule above), all contour planes plus one
 * padding plane beyond each end.
 *
 * Frame: lattice (sub-pixel) index i along row_dir, j along col_dir, plane k
 * along the normal; memory order i fastest; positions LPS mm.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/segimport.h"
#include "r3d/util.h"
#include "segimport_internal.h"

/* A contour's points may spread this far along the grid normal. */
#define CONTOUR_PLANAR_MM 0.1
/* In-plane distances this small are zero: equal points, a point on a line. */
#define CONTOUR_EPS_MM 1e-6
/* Two rays from one point this close in angle (radians) coincide. */
#define CONTOUR_EPS_RAD 1e-9
/* Crossings in one row sorted by insertion up to this many, else qsort. */
#define CONTOUR_INSERTION_SORT_MAX 32

static const double PI = 3.14159265358979323846;

/* One accepted contour. */
struct rts_contour {
	size_t number;   /* 1-based among the ROI's contours, all types */
	size_t first;    /* its first point in the uv array */
	size_t n;        /* points kept (an exact closing repeat dropped) */
	double w;        /* mean position along the normal, mm */
	size_t plane;
};

/* One edge of a plane, in lattice units, that crosses rows j_first..j_last. */
struct rts_edge {
	double a0, b0, a1, b1;
	int64_t j_first, j_last;
};

/* An edge for the crossing sweep: its smallest u. */
struct rts_sweep {
	double umin;
	size_t e;
};

static double dot3(const double a[3], const double b[3])
{
	return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

/* Signed distance of r from the line p -> q (left positive), mm; |q - p| > 0. */
static double line_dist(const double p[2], const double q[2], const double r[2])
{
	double ex = q[0] - p[0], ey = q[1] - p[1];

	return (ex * (r[1] - p[1]) - ey * (r[0] - p[0])) / hypot(ex, ey);
}

static int sign_eps(double d)
{
	return d > CONTOUR_EPS_MM ? 1 : d < -CONTOUR_EPS_MM ? -1 : 0;
}

static double dist2(const double p[2], const double q[2])
{
	return hypot(q[0] - p[0], q[1] - p[1]);
}

/* Counter-clockwise angle from direction a to direction b, in [0, 2 pi). */
static double ccw_angle(double a, double b)
{
	double d = fmod(b - a, 2.0 * PI);

	return d < 0.0 ? d + 2.0 * PI : d;
}

/* Two passes through one point v (prev -> v -> next and prev2 -> v ->
 * next2): true when they cross, i.e. one ray of the second separates the
 * other from the first's sector. Rays that coincide are touching. */
static bool vertex_paths_cross(const double v[2], const double prev[2], const double next[2],
			       const double prev2[2], const double next2[2])
{
	double a1 = atan2(prev[1] - v[1], prev[0] - v[0]);
	double a2 = atan2(next[1] - v[1], next[0] - v[0]);
	double b1 = atan2(prev2[1] - v[1], prev2[0] - v[0]);
	double b2 = atan2(next2[1] - v[1], next2[0] - v[0]);
	double sector = ccw_angle(a1, a2), t1 = ccw_angle(a1, b1), t2 = ccw_angle(a1, b2);

	if (t1 < CONTOUR_EPS_RAD || t2 < CONTOUR_EPS_RAD || 2.0 * PI - t1 < CONTOUR_EPS_RAD ||
	    2.0 * PI - t2 < CONTOUR_EPS_RAD || fabs(t1 - sector) < CONTOUR_EPS_RAD ||
	    fabs(t2 - sector) < CONTOUR_EPS_RAD)
		return false;
	return (t1 < sector) != (t2 < sector);
}

/* Does edge e (uv[e] -> uv[e + 1]) cross edge f, not adjacent to it? On a
 * crossing *at is where (u, v). Proper crossings, a vertex on the other
 * edge's interior where the contour goes from one side to the other, and two
 * passes through one vertex that cross are crossings; touching and running
 * along each other are not. */
static bool edges_cross(const double *uv, size_t n, size_t e, size_t f, double at[2])
{
	const double *p = uv + 2 * e, *p2 = uv + 2 * ((e + 1) % n);
	const double *r = uv + 2 * f, *r2 = uv + 2 * ((f + 1) % n);
	const double *pprev = uv + 2 * ((e + n - 1) % n), *rprev = uv + 2 * ((f + n - 1) % n);
	double d1 = line_dist(p, p2, r), d2 = line_dist(p, p2, r2);
	double d3 = line_dist(r, r2, p), d4 = line_dist(r, r2, p2);
	int s1 = sign_eps(d1), s2 = sign_eps(d2), s3 = sign_eps(d3), s4 = sign_eps(d4);

	if (s1 * s2 < 0 && s3 * s4 < 0) {
		double t = d3 / (d3 - d4);
		at[0] = p[0] + t * (p2[0] - p[0]);
		at[1] = p[1] + t * (p2[1] - p[1]);
		return true;
	}
	/* r on the interior of e: does the contour pass from side to side? */
	if (s1 == 0 && dist2(r, p) > CONTOUR_EPS_MM && dist2(r, p2) > CONTOUR_EPS_MM) {
		double ex = p2[0] - p[0], ey = p2[1] - p[1];
		double t = ((r[0] - p[0]) * ex + (r[1] - p[1]) * ey) / (ex * ex + ey * ey);
		if (t > 0.0 && t < 1.0 && sign_eps(line_dist(p, p2, rprev)) * s2 < 0) {
			at[0] = r[0];
			at[1] = r[1];
			return true;
		}
	}
	/* p on the interior of f. */
	if (s3 == 0 && dist2(p, r) > CONTOUR_EPS_MM && dist2(p, r2) > CONTOUR_EPS_MM) {
		double ex = r2[0] - r[0], ey = r2[1] - r[1];
		double t = ((p[0] - r[0]) * ex + (p[1] - r[1]) * ey) / (ex * ex + ey * ey);
		if (t > 0.0 && t < 1.0 && sign_eps(line_dist(r, r2, pprev)) * s4 < 0) {
			at[0] = p[0];
			at[1] = p[1];
			return true;
		}
	}
	/* Two vertices in one place. */
	if (dist2(p, r) <= CONTOUR_EPS_MM && vertex_paths_cross(p, pprev, p2, rprev, r2)) {
		at[0] = p[0];
		at[1] = p[1];
		return true;
	}
	return false;
}

static int sweep_cmp(const void *pa, const void *pb)
{
	const struct rts_sweep *a = pa, *b = pb;

	if (a->umin != b->umin)
		return a->umin < b->umin ? -1 : 1;
	return a->e < b->e ? -1 : a->e > b->e;
}

/* Finds a crossing of two non-adjacent edges of the closed polygon uv (n
 * points): edges sorted by their smallest u, each compared with those that
 * start before it ends (and overlap it in v). */
static bool contour_crossing(const double *uv, size_t n, struct rts_sweep *sw, double at[2])
{
	for (size_t e = 0; e < n; e++) {
		const double *p = uv + 2 * e, *q = uv + 2 * ((e + 1) % n);
		sw[e].umin = fmin(p[0], q[0]);
		sw[e].e = e;
	}
	qsort(sw, n, sizeof(*sw), sweep_cmp);
	for (size_t x = 0; x < n; x++) {
		size_t e = sw[x].e;
		const double *p = uv + 2 * e, *p2 = uv + 2 * ((e + 1) % n);
		double umax = fmax(p[0], p2[0]) + CONTOUR_EPS_MM;
		double vmin = fmin(p[1], p2[1]) - CONTOUR_EPS_MM, vmax = fmax(p[1], p2[1]) + CONTOUR_EPS_MM;

		for (size_t y = x + 1; y < n && sw[y].umin <= umax; y++) {
			size_t f = sw[y].e;
			const double *r = uv + 2 * f, *r2 = uv + 2 * ((f + 1) % n);

			if (f == (e + 1) % n || e == (f + 1) % n)
				continue;
			if (fmax(r[1], r2[1]) < vmin || fmin(r[1], r2[1]) > vmax)
				continue;
			if (edges_cross(uv, n, e, f, at))
				return true;
		}
	}
	return false;
}

/* The 3D point of lattice-plane coordinates (u, v) on the plane at w. */
static void plane_point(const struct segimport_grid *g, const double Q[3], double u, double v,
			double w, double out[3])
{
	for (int a = 0; a < 3; a++)
		out[a] = Q[a] + u * g->row_dir[a] + v * g->col_dir[a] + w * g->normal[a];
}

/* Checks one CLOSED_PLANAR contour and projects it: uv gets its kept
 * points (mm from the lattice origin along row and column), c its count
 * and mean position along the normal. */
static bool contour_take(struct r3d_err *err, const struct segobj_contour *ct, const char *name,
			 const struct segimport_grid *g, const double L0[3], const double Q[3],
			 double *uv, struct rts_sweep *sw, struct rts_contour *c)
{
	size_t n = ct->npoints, number = c->number;
	double wmin = INFINITY, wmax = -INFINITY, w0, wsum = 0.0;

	if (n < 3)
		return r3d_err_set(err, R3D_EINVAL,
				   "%s: contour %zu has %zu point%s (at least 3 needed to enclose an "
				   "area)", name, number, n, n == 1 ? "" : "s");
	if (ct->xyz == NULL)
		return r3d_err_set(err, R3D_EINVAL, "%s: contour %zu has no Contour Data", name,
				   number);
	for (size_t m = 0; m < n; m++) {
		const double *p = ct->xyz + 3 * m;
		if (!isfinite(p[0]) || !isfinite(p[1]) || !isfinite(p[2]))
			return r3d_err_set(err, R3D_EINVAL, "%s: contour %zu: point %zu is not finite",
					   name, number, m + 1);
		double d[3] = {p[0] - L0[0], p[1] - L0[1], p[2] - L0[2]};
		uv[2 * m] = dot3(d, g->row_dir);
		uv[2 * m + 1] = dot3(d, g->col_dir);
	}
	/* Many systems repeat the first point at the end: that is the closing
	 * edge, not a zero-length one. */
	if (dist2(uv, uv + 2 * (n - 1)) <= CONTOUR_EPS_MM)
		n--;
	if (n < 3)
		return r3d_err_set(err, R3D_EINVAL,
				   "%s: contour %zu has %zu distinct points (at least 3 needed; "
				   "its last point repeats the first)",
				   name, number, n);

	/* Planar and parallel to the grid planes: all points within
	 * CONTOUR_PLANAR_MM along the normal. */
	w0 = dot3(ct->xyz, g->normal);
	for (size_t m = 0; m < n; m++) {
		double w = dot3(ct->xyz + 3 * m, g->normal);
		wmin = fmin(wmin, w);
		wmax = fmax(wmax, w);
		wsum += w - w0; /* exact when all points are on one plane */
	}
	if (wmax - wmin > CONTOUR_PLANAR_MM) {
		/* Which reason: tilted but flat, or not flat at all. Newell's
		 * normal about the centroid. */
		double cen[3] = {0, 0, 0}, N[3] = {0, 0, 0}, dmax = 0.0, len;
		size_t worst = 0;
		for (size_t m = 0; m < n; m++)
			for (int a = 0; a < 3; a++)
				cen[a] += ct->xyz[3 * m + a] / (double)n;
		for (size_t m = 0; m < n; m++) {
			const double *p = ct->xyz + 3 * m, *q = ct->xyz + 3 * ((m + 1) % n);
			double px = p[0] - cen[0], py = p[1] - cen[1], pz = p[2] - cen[2];
			double qx = q[0] - cen[0], qy = q[1] - cen[1], qz = q[2] - cen[2];
			N[0] += (py - qy) * (pz + qz);
			N[1] += (pz - qz) * (px + qx);
			N[2] += (px - qx) * (py + qy);
		}
		len = sqrt(dot3(N, N));
		if (len > 0.0) {
			for (int a = 0; a < 3; a++)
				N[a] /= len;
			for (size_t m = 0; m < n; m++) {
				const double *p = ct->xyz + 3 * m;
				double d[3] = {p[0] - cen[0], p[1] - cen[1], p[2] - cen[2]};
				double dist = fabs(dot3(d, N));
				if (dist > dmax) {
					dmax = dist;
					worst = m;
				}
			}
		}
		if (len > 0.0 && dmax > CONTOUR_PLANAR_MM) {
			const double *p = ct->xyz + 3 * worst;
			return r3d_err_set(err, R3D_EINVAL,
					   "%s: contour %zu is not planar: point %zu (%.1f, %.1f, "
					   "%.1f) mm is %.2f mm from its mean plane (at most %.1f)",
					   name, number, worst + 1, p[0], p[1], p[2], dmax,
					   CONTOUR_PLANAR_MM);
		}
		double tilt = len > 0.0 ? acos(fmin(1.0, fabs(dot3(N, g->normal)))) * 180.0 / PI : 90.0;
		return r3d_err_set(err, R3D_EINVAL,
				   "%s: contour %zu is not parallel to the CT's slices: it is "
				   "tilted %.1f degrees, its points span %.2f mm along the normal (at "
				   "most %.1f)",
				   name, number, tilt, wmax - wmin, CONTOUR_PLANAR_MM);
	}
	c->w = w0 + wsum / (double)n;
	c->n = n;

	/* A point repeated in a row (planning systems write them) is one
	 * vertex: the polygon is the same without the repeat. */
	size_t kept = 0;
	for (size_t m = 0; m < n; m++) {
		if (kept > 0 && dist2(uv + 2 * m, uv + 2 * (kept - 1)) <= CONTOUR_EPS_MM)
			continue;
		uv[2 * kept] = uv[2 * m];
		uv[2 * kept + 1] = uv[2 * m + 1];
		kept++;
	}
	if (kept > 1 && dist2(uv, uv + 2 * (kept - 1)) <= CONTOUR_EPS_MM)
		kept--;
	if (kept < 3) {
		const double *p = ct->xyz;
		return r3d_err_set(err, R3D_EINVAL,
				   "%s: contour %zu has %zu distinct point%s (at least 3 needed to "
				   "enclose an area) at (%.1f, %.1f, %.1f) mm",
				   name, number, kept, kept == 1 ? "" : "s", p[0], p[1], p[2]);
	}
	n = kept;
	c->n = n;

	double at[2], x[3];
	if (contour_crossing(uv, n, sw, at)) {
		plane_point(g, Q, at[0], at[1], c->w, x);
		return r3d_err_set(err, R3D_EINVAL,
				   "%s: contour %zu crosses itself near (%.1f, %.1f, %.1f) mm",
				   name, number, x[0], x[1], x[2]);
	}

	/* Zero area: all points on one line, or a path that goes out and
	 * back along itself (neither crosses). Small contours are kept: only
	 * an area below CONTOUR_EPS_MM per mm of perimeter, rounding's. */
	double area2 = 0.0, perimeter = 0.0;
	for (size_t m = 0; m < n; m++) {
		const double *p = uv + 2 * m, *q = uv + 2 * ((m + 1) % n);
		double pu = p[0] - uv[0], pv = p[1] - uv[1], qu = q[0] - uv[0], qv = q[1] - uv[1];
		area2 += pu * qv - qu * pv;
		perimeter += dist2(p, q);
	}
	if (fabs(0.5 * area2) <= CONTOUR_EPS_MM * perimeter) {
		plane_point(g, Q, uv[0], uv[1], c->w, x);
		return r3d_err_set(err, R3D_EINVAL,
				   "%s: contour %zu encloses no area (its %zu points lie on one line "
				   "or retrace one path) at (%.1f, %.1f, %.1f) mm",
				   name, number, n, x[0], x[1], x[2]);
	}
	return true;
}

static int contour_w_cmp(const void *pa, const void *pb)
{
	const struct rts_contour *a = pa, *b = pb;

	if (a->w != b->w)
		return a->w < b->w ? -1 : 1;
	return a->number < b->number ? -1 : a->number > b->number;
}

static int edge_cmp(const void *pa, const void *pb)
{
	const struct rts_edge *a = pa, *b = pb;

	return a->j_first < b->j_first ? -1 : a->j_first > b->j_first;
}

static int double_cmp(const void *pa, const void *pb)
{
	double a = *(const double *)pa, b = *(const double *)pb;

	return a < b ? -1 : a > b;
}

static void sort_doubles(double *x, size_t n)
{
	if (n > CONTOUR_INSERTION_SORT_MAX) {
		qsort(x, n, sizeof(*x), double_cmp);
		return;
	}
	for (size_t m = 1; m < n; m++) {
		double v = x[m];
		size_t k = m;
		for (; k > 0 && x[k - 1] > v; k--)
			x[k] = x[k - 1];
		x[k] = v;
	}
}

/* The even-odd fill of one grid plane k from contours c[0..nc - 1]; uses
 * the scratch arrays edges, active and xs (each as long as the plane's
 * points). Returns the voxels set. */
static size_t fill_plane(struct segimport_grid *g, const double *uv, const struct rts_contour *c,
			 size_t nc, size_t k, int64_t i0, int64_t j0, struct rts_edge *edges,
			 size_t *active, double *xs)
{
	size_t ne = 0, na = 0, next = 0, voxels = 0;
	int64_t jlo = INT64_MAX, jhi = INT64_MIN;

	for (size_t q = 0; q < nc; q++) {
		const double *p = uv + 2 * c[q].first;
		for (size_t m = 0; m < c[q].n; m++) {
			size_t m2 = (m + 1) % c[q].n;
			struct rts_edge *e = &edges[ne];
			e->a0 = p[2 * m] / g->dx;
			e->b0 = p[2 * m + 1] / g->dy;
			e->a1 = p[2 * m2] / g->dx;
			e->b1 = p[2 * m2 + 1] / g->dy;
			if (e->b0 == e->b1)
				continue; /* never crosses a row under the half-open rule */
			double bmin = fmin(e->b0, e->b1), bmax = fmax(e->b0, e->b1);
			e->j_first = (int64_t)ceil(bmin);
			e->j_last = (int64_t)ceil(bmax) - 1;
			if (e->j_first > e->j_last)
				continue; /* between two rows */
			jlo = e->j_first < jlo ? e->j_first : jlo;
			jhi = e->j_last > jhi ? e->j_last : jhi;
			ne++;
		}
	}
	if (ne == 0)
		return 0;
	qsort(edges, ne, sizeof(*edges), edge_cmp);
	for (int64_t j = jlo; j <= jhi; j++) {
		size_t nx = 0, keep = 0;
		double y = (double)j;

		while (next < ne && edges[next].j_first == j)
			active[na++] = next++;
		for (size_t q = 0; q < na; q++) {
			const struct rts_edge *e = &edges[active[q]];
			if (e->j_last < j)
				continue;
			active[keep++] = active[q];
			double x = e->a0 + (y - e->b0) * (e->a1 - e->a0) / (e->b1 - e->b0);
			xs[nx++] = fmin(fmax(x, fmin(e->a0, e->a1)), fmax(e->a0, e->a1));
		}
		na = keep;
		if (nx == 0)
			continue;
		/* Closed polygons cross a row an even number of times: both
		 * edges at a vertex compute its b the same way. */
		assert(nx % 2 == 0);
		sort_doubles(xs, nx);
		uint8_t *row = g->field + g->nx * ((size_t)(j - j0) + g->ny * k);
		for (size_t q = 0; q + 1 < nx; q += 2) {
			int64_t ia = (int64_t)ceil(xs[q]), ib = (int64_t)ceil(xs[q + 1]) - 1;
			assert(ib < ia || (ia > i0 && ib < i0 + (int64_t)g->nx - 1));
			for (int64_t i = ia; i <= ib; i++)
				row[i - i0] = 1;
			if (ib >= ia)
				voxels += (size_t)(ib - ia + 1);
		}
	}
	return voxels;
}

bool segimport_rtstruct_grid(struct r3d_err *err, const struct segobj *s, unsigned roi,
			     const struct segimport_plane_grid *pg, struct segimport_grid *g)
{
	struct rts_contour *c = NULL;
	struct rts_edge *edges = NULL;
	struct rts_sweep *sw = NULL;
	double *uv = NULL, *xs = NULL, *real = NULL, *planew = NULL;
	size_t *active = NULL;
	size_t nc = 0, npts = 0, maxn = 0, nplanes = 0, number = 0;
	double L0[3], Q[3], l0n;
	bool found = false, ok = false;
	char name[SEGIMPORT_NAME_MAX];

	if (g == NULL || s == NULL || pg == NULL)
		return r3d_err_set(err, R3D_EINVAL, "segimport_rtstruct_grid: no object, grid or plane grid");
	memset(g, 0, sizeof(*g));
	segimport_name(s, roi, name);
	if (s->kind != SEGOBJ_RTSTRUCT) {
		r3d_err_set(err, R3D_EINVAL, "%s: the object is not an RT Structure Set", name);
		goto out;
	}
	for (size_t m = 0; m < s->nsegments; m++)
		found = found || s->segments[m].number == roi;
	if (!found) {
		r3d_err_set(err, R3D_EINVAL, "the RT Structure Set has no ROI %u", roi);
		goto out;
	}
	if (pg->refine < 1 || pg->refine > 8) {
		r3d_err_set(err, R3D_EINVAL, "%s: refine %u is not 1..8", name, pg->refine);
		goto out;
	}
	if (!(pg->pixel_spacing[0] > 0.0 && pg->pixel_spacing[1] > 0.0 &&
	      isfinite(pg->pixel_spacing[0]) && isfinite(pg->pixel_spacing[1]))) {
		r3d_err_set(err, R3D_EINVAL, "%s: pixel spacing %g\\%g is not positive", name,
			    pg->pixel_spacing[0], pg->pixel_spacing[1]);
		goto out;
	}
	if (!isfinite(pg->origin[0]) || !isfinite(pg->origin[1]) || !isfinite(pg->origin[2])) {
		r3d_err_set(err, R3D_EINVAL, "%s: the grid origin is not finite", name);
		goto out;
	}
	if (!segimport_axes(err, name, pg->orientation, g))
		goto out;
	g->dx = pg->pixel_spacing[1] / pg->refine;
	g->dy = pg->pixel_spacing[0] / pg->refine;
	g->fractional = false;
	if (s->ncontours > SEGOBJ_MAX_CONTOURS || (s->ncontours > 0 && s->contours == NULL)) {
		r3d_err_set(err, R3D_EINVAL, "%s: the object has %zu contours, more than "
			    "SEGOBJ_MAX_CONTOURS (%d)", name, s->ncontours, SEGOBJ_MAX_CONTOURS);
		goto out;
	}

	/* The sub-pixel lattice origin, and its part in the plane. */
	double off = 0.5 / pg->refine - 0.5;
	for (int a = 0; a < 3; a++)
		L0[a] = pg->origin[a] + off * (pg->pixel_spacing[1] * g->row_dir[a] +
					       pg->pixel_spacing[0] * g->col_dir[a]);
	l0n = dot3(L0, g->normal);
	for (int a = 0; a < 3; a++)
		Q[a] = L0[a] - l0n * g->normal[a];

	for (size_t m = 0; m < s->ncontours; m++) {
		const struct segobj_contour *ct = &s->contours[m];
		if (ct->roi != roi || ct->type != SEGOBJ_CLOSED_PLANAR)
			continue;
		nc++;
		if (!size_add(npts, ct->npoints, &npts) || npts > SEGOBJ_MAX_POINTS) {
			r3d_err_set(err, R3D_EINVAL, "%s: more than %d contour points (SEGOBJ_MAX_POINTS)",
				    name, SEGOBJ_MAX_POINTS);
			goto out;
		}
		maxn = ct->npoints > maxn ? ct->npoints : maxn;
	}
	if (nc == 0) {
		/* Nothing closed: the caller lists the ROI as skipped. */
		ok = true;
		goto out;
	}
	c = calloc(nc, sizeof(*c));
	uv = malloc(2 * npts * sizeof(*uv));
	sw = malloc(maxn * sizeof(*sw));
	edges = malloc(npts * sizeof(*edges));
	active = malloc(npts * sizeof(*active));
	xs = malloc(npts * sizeof(*xs));
	real = malloc(3 * nc * sizeof(*real));
	planew = malloc(nc * sizeof(*planew));
	if (c == NULL || uv == NULL || sw == NULL || edges == NULL || active == NULL ||
	    xs == NULL || real == NULL || planew == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "%s: cannot allocate %zu contour points", name, npts);
		goto out;
	}

	/* Every contour checked and projected, in the order of the object. */
	size_t q = 0, first = 0;
	for (size_t m = 0; m < s->ncontours; m++) {
		const struct segobj_contour *ct = &s->contours[m];
		if (ct->roi != roi)
			continue;
		number++;
		if (ct->type != SEGOBJ_CLOSED_PLANAR)
			continue;
		c[q].number = number;
		c[q].first = first;
		if (!contour_take(err, ct, name, g, L0, Q, uv + 2 * first, sw, &c[q]))
			goto out;
		first += c[q].n;
		q++;
	}
	assert(q == nc);

	/* Planes: contours sorted along the normal; a new plane more than
	 * SEGIMPORT_PLANE_TOLERANCE_MM beyond the first contour of the current
	 * one; its position is the mean of its contours' means. */
	qsort(c, nc, sizeof(*c), contour_w_cmp);
	for (size_t m = 0, start = 0; m <= nc; m++) {
		if (m < nc && c[m].w - c[start].w <= SEGIMPORT_PLANE_TOLERANCE_MM) {
			c[m].plane = nplanes;
			continue;
		}
		double sum = 0.0;
		for (size_t k = start; k < m; k++)
			sum += c[k].w - c[start].w;
		planew[nplanes++] = c[start].w + sum / (double)(m - start);
		if (m < nc) {
			start = m;
			c[m].plane = nplanes;
		}
	}

	/* In-plane box over all points, in lattice units. */
	double amin = INFINITY, amax = -INFINITY, bmin = INFINITY, bmax = -INFINITY;
	for (size_t k = 0; k < nc; k++) {
		for (size_t m = 0; m < c[k].n; m++) {
			const double *p = uv + 2 * (c[k].first + m);
			double a = p[0] / g->dx, b = p[1] / g->dy;
			if (!(fabs(a) <= SEGIMPORT_MAX_OFFSET_PX && fabs(b) <= SEGIMPORT_MAX_OFFSET_PX)) {
				r3d_err_set(err, R3D_EINVAL,
					    "%s: contour %zu lies (%.0f, %.0f) sub-pixels from the "
					    "grid origin, more than %.0f",
					    name, c[k].number, a, b, SEGIMPORT_MAX_OFFSET_PX);
				goto out;
			}
			amin = fmin(amin, a);
			amax = fmax(amax, a);
			bmin = fmin(bmin, b);
			bmax = fmax(bmax, b);
		}
	}
	/* Sub-pixels ceil(min) - 1 and ceil(max) have no crossing beyond
	 * them (columns) or none at all (rows): empty. */
	int64_t i0 = (int64_t)ceil(amin) - 1, i1 = (int64_t)ceil(amax);
	int64_t j0 = (int64_t)ceil(bmin) - 1, j1 = (int64_t)ceil(bmax);
	if (!segimport_grid_alloc(err, name, g, (uint64_t)(i1 - i0 + 1), (uint64_t)(j1 - j0 + 1),
				  (uint64_t)nplanes + 2))
		goto out;
	for (size_t k = 0; k < nplanes; k++)
		plane_point(g, Q, (double)i0 * g->dx, (double)j0 * g->dy, planew[k], real + 3 * k);
	segimport_fill_origins(g, real, nplanes, -1,
			       fmin(pg->pixel_spacing[0], pg->pixel_spacing[1]));

	for (size_t m = 0; m < nc;) {
		size_t end = m;
		while (end < nc && c[end].plane == c[m].plane)
			end++;
		g->voxels += fill_plane(g, uv, c + m, end - m, c[m].plane + 1, i0, j0, edges,
					active, xs);
		m = end;
	}
	if (g->voxels == 0) {
		/* Contours too small to hold a sub-pixel centre: an empty grid
		 * that keeps its axes. */
		struct segimport_grid keep = *g;
		segimport_grid_free(g);
		memcpy(g->row_dir, keep.row_dir, sizeof(g->row_dir));
		memcpy(g->col_dir, keep.col_dir, sizeof(g->col_dir));
		memcpy(g->normal, keep.normal, sizeof(g->normal));
		g->dx = keep.dx;
		g->dy = keep.dy;
	}
	ok = true;
out:
	free(planew);
	free(real);
	free(xs);
	free(active);
	free(edges);
	free(sw);
	free(uv);
	free(c);
	if (!ok)
		segimport_grid_free(g);
	return ok;
}
