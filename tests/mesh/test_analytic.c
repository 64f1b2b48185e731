/*
 * test_analytic.c: mesh.analytic, the grey-level surface against analytic
 * truth. A sphere, a tilted capped cylinder and a 2 mm plate are rendered by
 * the phantom with the fraction of each voxel inside (8x8 lines per voxel,
 * exact coverage along each) on axial, double-oblique and gantry-tilted
 * grids of 0.5 mm voxels, thresholded midway between the shape and air as a
 * threshold structure is (mask of the HU range, surface through the grey
 * level crossing), and meshed raw and as the pipeline's default output.
 * Asserted: raw volume within 0.5 % of the analytic volume, default output
 * within 1 %; raw vertices within 0.1 mm of the analytic surface (p99 over
 * all; every vertex away from the cylinder's and the plate's rims, where the
 * voxel's partial volume rounds the edge); the plate closed, 2-manifold and
 * 2 +- 0.2 mm thick on its faces.
 *
 * And a mask-only structure (the sphere's mask with no grey levels, as an
 * imported segment is): every vertex within half a voxel diagonal of the
 * boundary of the mask's voxels, and no terraces. The terrace measure is the
 * angle between the normals of the two triangles at each edge: a terraced
 * surface (marching cubes on a mask) has a crease at every step, so many
 * edges turn by 30 degrees or more; a smooth surface of this size turns by
 * a few degrees. Asserted: at most 1 % of edges at 30 degrees or more, and
 * the unsmoothed mask surface must fail that.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/mesh.h"
#include "r3d/phantom.h"
#include "r3d/test.h"

#define SHAPE_HU 1000.0
#define THRESHOLD_HU 0       /* midway between air (-1000) and the shape */
#define SUBLINES 8
#define RIM_MM 0.75          /* vertices this close to a rim are not held to 0.1 mm */

static struct mesh_iso_work *work;

struct scene {
	const char *name;
	uint32_t n;          /* voxels per axis */
	double spacing;      /* mm */
	size_t nshapes;      /* 2: a shell, the second carved out of the first */
	struct phantom_shape shape[2];
	double thickness;    /* a plate's or a shell's wall, mm; 0: none to check */
};

static double vlen(const double v[3])
{
	return sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
}

/* Unsigned distance from x to the surface of shape s, and the distance to
 * its nearest rim (an edge of a box or a cylinder's cap; INFINITY for an
 * ellipsoid, which must be a sphere here). */
static double shape_distance(const struct phantom_shape *s, const double x[3], double *rim)
{
	double d[3];

	for (int k = 0; k < 3; k++)
		d[k] = x[k] - s->center[k];
	if (s->kind == PHANTOM_ELLIPSOID) {
		*rim = INFINITY;
		return fabs(vlen(d) - s->radii[0]);
	}
	if (s->kind == PHANTOM_CYLINDER) {
		double t = d[0] * s->axis[0] + d[1] * s->axis[1] + d[2] * s->axis[2], perp[3];
		for (int k = 0; k < 3; k++)
			perp[k] = d[k] - t * s->axis[k];
		double dr = vlen(perp) - s->radii[0], da = fabs(t) - s->half_length;
		*rim = hypot(dr, da);
		return dr > 0 && da > 0 ? *rim : fabs(fmax(dr, da));
	}
	/* box: distance to the surface and to the nearest of its 12 edges */
	double q[3], out2 = 0, in = -INFINITY;
	for (int k = 0; k < 3; k++) {
		q[k] = fabs(d[k]) - s->radii[k];
		if (q[k] > 0)
			out2 += q[k] * q[k];
		in = fmax(in, q[k]);
	}
	*rim = INFINITY;
	for (int k = 0; k < 3; k++) {
		int a = (k + 1) % 3, b = (k + 2) % 3;   /* an edge along axis k */
		double along = fmax(q[k], 0);
		*rim = fmin(*rim, sqrt(q[a] * q[a] + q[b] * q[b] + along * along));
	}
	return in > 0 ? sqrt(out2) : -in;
}

/* Voxel index -> LPS mm of the phantom's grid (row-major, see mesh_transform). */
static void grid_affine(const struct phantom *p, double a[16])
{
	memset(a, 0, 16 * sizeof(double));
	for (int r = 0; r < 3; r++) {
		a[4 * r + 0] = p->row_dir[r] * p->req.spacing[0];
		a[4 * r + 1] = p->col_dir[r] * p->req.spacing[1];
		a[4 * r + 2] = p->step[r];
		a[4 * r + 3] = p->origin[r];
	}
	a[15] = 1;
}

static int16_t *render(const struct phantom *p)
{
	size_t plane = (size_t)p->req.columns * p->req.rows;
	int16_t *hu = malloc(plane * p->req.slices * sizeof(*hu));

	if (hu == NULL)
		return NULL;
	for (uint32_t k = 0; k < p->req.slices; k++)
		phantom_render_slice(p, k, hu + k * plane);
	return hu;
}

static uint8_t *threshold_mask(const int16_t *hu, size_t n, int min_hu)
{
	uint8_t *m = malloc(n);

	if (m == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		m[i] = hu[i] >= min_hu;
	return m;
}

/* Meshes the threshold structure [min_hu, inf) of hu: raw (no smoothing, no
 * decimation) or the pipeline's default output (grey-level smoothing;
 * decimate to the given budget, 0 for none). */
static struct mesh *mesh_threshold(const struct phantom *p, const int16_t *hu, const uint8_t *mask,
				   int min_hu, bool smooth, size_t max_tri, struct mesh_stats *st)
{
	struct r3d_err err;
	struct mesh_volume mv = {mask, MESH_SCALAR_U8, p->req.columns, p->req.rows, p->req.slices,
				 hu, min_hu - 0.5, INFINITY};
	struct mesh_build_params bp;
	struct mesh *m = NULL;

	mesh_build_defaults(&bp);
	bp.threads = 2;
	bp.smoothing.threads = 2;
	bp.smooth = smooth;
	bp.max_tri = max_tri;
	grid_affine(p, bp.affine);
	if (!mesh_build(&err, &mv, &bp, work, &m, st, NULL)) {
		fprintf(stderr, "mesh_build: %s\n", err.msg);
		return NULL;
	}
	return m;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Mean radius of the vertices nearer the outer sphere minus that of those
 * nearer the inner one. */
static double shell_thickness(const struct mesh *m, const struct scene *sc)
{
	const double *c = sc->shape[0].center, mid = 0.5 * (sc->shape[0].radii[0] + sc->shape[1].radii[0]);
	double outer = 0, inner = 0;
	size_t no = 0, ni = 0;

	for (size_t v = 0; v < m->nvert; v++) {
		const float *x = m->xyz + 3 * v;
		double d[3] = {x[0] - c[0], x[1] - c[1], x[2] - c[2]}, r = vlen(d);
		if (r > mid) {
			outer += r;
			no++;
		} else {
			inner += r;
			ni++;
		}
	}
	return no > 0 && ni > 0 ? outer / no - inner / ni : NAN;
}

/* A plate's (a box thin along S): mean S of the vertices on its top face
 * minus that on its bottom face, away from the rims; a shell's by
 * shell_thickness(). */
static double wall_thickness(const struct mesh *m, const struct scene *sc)
{
	const struct phantom_shape *s = &sc->shape[0];
	double top = 0, bottom = 0;
	size_t nt = 0, nb = 0;

	if (sc->nshapes == 2)
		return shell_thickness(m, sc);
	for (size_t v = 0; v < m->nvert; v++) {
		const float *x = m->xyz + 3 * v;
		double dx = x[0] - s->center[0], dy = x[1] - s->center[1], dz = x[2] - s->center[2];
		if (fabs(dx) > s->radii[0] - 2 * RIM_MM || fabs(dy) > s->radii[1] - 2 * RIM_MM)
			continue;
		if (dz > 0) {
			top += dz;
			nt++;
		} else {
			bottom += dz;
			nb++;
		}
	}
	return nt > 0 && nb > 0 ? top / nt - bottom / nb : NAN;
}

static void check_scene(const struct scene *sc, enum phantom_geometry geom, double angle)
{
	static const char *const geom_name[] = {"axial", "oblique", "tilt"};
	struct phantom_request req = {sc->n, sc->n, sc->n, {sc->spacing, sc->spacing, sc->spacing},
				      geom, angle, {0, 0, 0}, 0, SUBLINES};
	struct r3d_err err;
	struct phantom p;
	struct mesh_stats raw_st, def_st;
	struct mesh *raw = NULL, *def = NULL;
	int16_t *hu = NULL;
	uint8_t *mask = NULL;
	double truth, centroid[3];
	double *dist = NULL;
	size_t n = (size_t)sc->n * sc->n * sc->n, nd = 0;
	double worst_away = 0, p99, mean = 0;

	if (!phantom_init_shapes(&err, &p, &req, sc->shape, sc->nshapes)) {
		fprintf(stderr, "phantom: %s\n", err.msg);
		CHECK(false);
		return;
	}
	phantom_shape_truth(&p, 0, &truth, centroid);
	hu = render(&p);
	mask = hu != NULL ? threshold_mask(hu, n, THRESHOLD_HU) : NULL;
	CHECK(mask != NULL);
	if (mask == NULL)
		goto out;
	raw = mesh_threshold(&p, hu, mask, THRESHOLD_HU, false, 0, &raw_st);
	/* Default output: smoothed, and decimated to a quarter (a budget far
	 * below the raw count, as the real structures are). */
	def = raw != NULL ? mesh_threshold(&p, hu, mask, THRESHOLD_HU, true, raw->ntri / 4, &def_st)
			  : NULL;
	CHECK(raw != NULL && def != NULL);
	if (raw == NULL || def == NULL)
		goto out;
	dist = malloc(raw->nvert * sizeof(*dist));
	if (dist == NULL)
		goto out;
	for (size_t v = 0; v < raw->nvert; v++) {
		double x[3] = {raw->xyz[3 * v], raw->xyz[3 * v + 1], raw->xyz[3 * v + 2]}, rim;
		double d = shape_distance(&sc->shape[0], x, &rim);
		if (sc->nshapes == 2) {
			double rim2, d2 = shape_distance(&sc->shape[1], x, &rim2);
			d = fmin(d, d2);
			rim = fmin(rim, rim2);
		}
		dist[nd++] = d;
		mean += d;
		if (rim > RIM_MM)
			worst_away = fmax(worst_away, d);
	}
	mean /= (double)nd;
	qsort(dist, nd, sizeof(*dist), cmp_double);
	p99 = dist[(size_t)(0.99 * (double)(nd - 1))];
	double raw_err = 100.0 * (raw_st.volume - truth) / truth;
	double def_err = 100.0 * (def_st.volume - truth) / truth;
	printf("%-8s %-7s: truth %.1f mm3, raw %+.3f %% (%zu tri), default %+.3f %% (%zu tri); "
	       "distance mean %.4f p99 %.4f mm, worst away from rims %.4f mm",
	       sc->name, geom_name[geom], truth, raw_err, raw->ntri, def_err, def->ntri, mean, p99,
	       worst_away);
	CHECK(raw_st.closed && raw_st.manifold && raw_st.euler == 2 * (long)sc->nshapes);
	CHECK(def_st.closed && def_st.manifold && def_st.euler == 2 * (long)sc->nshapes &&
	      def_st.zero_area_tri == 0);
	CHECK(fabs(raw_err) <= 0.5);
	CHECK(fabs(def_err) <= 1.0);
	CHECK(p99 <= 0.1);
	CHECK(worst_away <= 0.1);
	if (sc->thickness > 0) {
		double t_raw = wall_thickness(raw, sc), t_def = wall_thickness(def, sc);
		printf("; thickness raw %.3f default %.3f mm (true %.3f)", t_raw, t_def, sc->thickness);
		CHECK(fabs(t_raw - sc->thickness) <= 0.2);
		CHECK(fabs(t_def - sc->thickness) <= 0.2);
	}
	printf("\n");
	if (!(def_st.closed && def_st.manifold && def_st.zero_area_tri == 0) ||
	    def_st.euler != 2 * (long)sc->nshapes)
		printf("  default output: boundary edges %zu, non-manifold %zu, zero-area %zu, euler %ld\n",
		       (size_t)def_st.boundary_edges, (size_t)def_st.nonmanifold_edges,
		       (size_t)def_st.zero_area_tri, def_st.euler);
out:
	free(dist);
	mesh_destroy(raw);
	mesh_destroy(def);
	free(mask);
	free(hu);
}

/* ------------------------------------------------------------------ */
/* Mask only                                                            */
/* ------------------------------------------------------------------ */

/* Distance in mm from x (voxel index, grid spacing sp) to the boundary of
 * the union of the mask's voxel cells (unit cubes around the voxel centres). */
static double mask_boundary_distance(const uint8_t *mask, const size_t dim[3], const double sp[3],
				     const float x[3])
{
	double best = INFINITY;
	long c[3];

	for (int k = 0; k < 3; k++)
		c[k] = lround(x[k]);
	for (long k = c[2] - 2; k <= c[2] + 2; k++) {
		for (long j = c[1] - 2; j <= c[1] + 2; j++) {
			for (long i = c[0] - 2; i <= c[0] + 2; i++) {
				long v[3] = {i, j, k};
				bool in = i >= 0 && j >= 0 && k >= 0 && (size_t)i < dim[0] &&
					  (size_t)j < dim[1] && (size_t)k < dim[2] &&
					  mask[((size_t)k * dim[1] + (size_t)j) * dim[0] + (size_t)i];
				if (!in)
					continue;
				for (int ax = 0; ax < 3; ax++) {
					for (int sgn = -1; sgn <= 1; sgn += 2) {
						long w[3] = {v[0], v[1], v[2]};
						w[ax] += sgn;
						bool win = w[0] >= 0 && w[1] >= 0 && w[2] >= 0 &&
							   (size_t)w[0] < dim[0] && (size_t)w[1] < dim[1] &&
							   (size_t)w[2] < dim[2] &&
							   mask[((size_t)w[2] * dim[1] + (size_t)w[1]) * dim[0] +
								(size_t)w[0]];
						if (win)
							continue;
						/* the face between v and w: a square at v + sgn/2 on ax */
						double d2 = 0;
						for (int a = 0; a < 3; a++) {
							double e;
							if (a == ax)
								e = x[a] - (v[a] + 0.5 * sgn);
							else
								e = fmax(fabs(x[a] - v[a]) - 0.5, 0);
							d2 += e * e * sp[a] * sp[a];
						}
						best = fmin(best, d2);
					}
				}
			}
		}
	}
	return sqrt(best);
}

struct edge_tri {
	uint64_t edge;   /* undirected: low vertex << 32 | high vertex */
	uint32_t tri;
};

static int edge_tri_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct edge_tri *)a)->edge, y = ((const struct edge_tri *)b)->edge;
	return (x > y) - (x < y);
}

/* Fraction of the edges where the normals of the two triangles turn by at
 * least limit_deg. */
static double crease_fraction(const struct mesh *m, double limit_deg)
{
	size_t n = 3 * m->ntri, creased = 0, edges = 0;
	struct edge_tri *et = malloc(n * sizeof(*et));
	double (*nrm)[3] = malloc(m->ntri * sizeof(*nrm));
	double cos_lim = cos(limit_deg * 3.14159265358979323846 / 180);
	double frac = NAN;

	if (et == NULL || nrm == NULL)
		goto out;
	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		const float *a = m->xyz + 3 * (size_t)f[0], *b = m->xyz + 3 * (size_t)f[1],
			    *c = m->xyz + 3 * (size_t)f[2];
		double u[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
		double w[3] = {c[0] - a[0], c[1] - a[1], c[2] - a[2]};
		double cr[3] = {u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2],
				u[0] * w[1] - u[1] * w[0]};
		double l = vlen(cr);
		for (int k = 0; k < 3; k++)
			nrm[t][k] = l > 0 ? cr[k] / l : 0;
		for (int i = 0; i < 3; i++) {
			uint64_t p = f[i], q = f[(i + 1) % 3];
			et[3 * t + (size_t)i].edge = p < q ? p << 32 | q : q << 32 | p;
			et[3 * t + (size_t)i].tri = (uint32_t)t;
		}
	}
	qsort(et, n, sizeof(*et), edge_tri_cmp);
	for (size_t i = 0; i + 1 < n; i++) {
		if (et[i].edge != et[i + 1].edge)
			continue;
		const double *a = nrm[et[i].tri], *b = nrm[et[i + 1].tri];
		edges++;
		creased += a[0] * b[0] + a[1] * b[1] + a[2] * b[2] <= cos_lim;
		i++;
	}
	frac = edges > 0 ? (double)creased / (double)edges : NAN;
out:
	free(et);
	free(nrm);
	return frac;
}

static void check_mask_only(const double sp[3], double radius)
{
	const size_t dim[3] = {(size_t)ceil(2 * (radius + 3) / sp[0]),
			       (size_t)ceil(2 * (radius + 3) / sp[1]),
			       (size_t)ceil(2 * (radius + 3) / sp[2])};
	struct phantom_shape sphere = {PHANTOM_ELLIPSOID, "sphere", "bone", SHAPE_HU, {0, 0, 0},
				       {radius, radius, radius}, {0, 0, 0}, 0, -1};
	struct phantom_request req = {(uint32_t)dim[0], (uint32_t)dim[1], (uint32_t)dim[2],
				      {sp[0], sp[1], sp[2]}, PHANTOM_AXIAL, 0, {0, 0, 0}, 0, 4};
	struct r3d_err err;
	struct phantom p;
	struct mesh_stats st;
	struct mesh *smooth = NULL, *terraced = NULL;
	int16_t *hu = NULL;
	uint8_t *mask = NULL;
	double half_diag = 0.5 * sqrt(sp[0] * sp[0] + sp[1] * sp[1] + sp[2] * sp[2]);
	double worst = 0;

	CHECK(phantom_init_shapes(&err, &p, &req, &sphere, 1));
	hu = render(&p);
	mask = hu != NULL ? threshold_mask(hu, dim[0] * dim[1] * dim[2], THRESHOLD_HU) : NULL;
	CHECK(mask != NULL);
	if (mask == NULL)
		goto out;
	/* As the pipeline meshes a mask-only structure: the mask's surface, the
	 * mask smoothing in voxel index (each vertex kept in its cell), no
	 * decimation; kept in voxel index here to measure against the cells. */
	struct mesh_volume mv = {mask, MESH_SCALAR_U8, dim[0], dim[1], dim[2], NULL, 0, 0};
	struct mesh_build_params bp;
	mesh_build_defaults(&bp);
	mesh_build_mask_smoothing(&bp);
	bp.threads = bp.smoothing.threads = 2;
	CHECK(mesh_build(&err, &mv, &bp, work, &smooth, &st, NULL));
	CHECK(st.closed && st.manifold);
	bp.smooth = false;
	CHECK(mesh_build(&err, &mv, &bp, work, &terraced, &st, NULL));
	if (smooth == NULL || terraced == NULL)
		goto out;
	for (size_t v = 0; v < smooth->nvert; v++)
		worst = fmax(worst, mask_boundary_distance(mask, dim, sp, smooth->xyz + 3 * v));
	double f_smooth = crease_fraction(smooth, 30), f_terraced = crease_fraction(terraced, 30);
	printf("mask-only sphere r %.0f mm, voxels %.2f x %.2f x %.2f mm: worst vertex %.3f mm from "
	       "the mask boundary (half diagonal %.3f); edges turning >= 30 deg: smoothed %.2f %%, "
	       "unsmoothed %.2f %%\n",
	       radius, sp[0], sp[1], sp[2], worst, half_diag, 100 * f_smooth, 100 * f_terraced);
	CHECK(worst <= half_diag + 1e-6);
	CHECK(f_smooth <= 0.01);
	CHECK(f_terraced > 0.01);   /* the measure sees terraces where there are */
out:
	mesh_destroy(smooth);
	mesh_destroy(terraced);
	free(mask);
	free(hu);
}

int main(void)
{
	struct r3d_err err = {0};
	const double ax[3] = {0.3, 0.4, 0.866};
	double axn = vlen(ax);
	/* Sizes of real parts (a femoral head, a rod, a fixation plate, a thin
	 * shell as the issue measured it): sharp edges are rounded by the
	 * partial volume itself (see the header), so their share of the volume
	 * must be what it is in a real model. */
	const struct scene scenes[] = {
		{"sphere", 64, 0.5, 1,
		 {{PHANTOM_ELLIPSOID, "sphere", "bone", SHAPE_HU, {0.3, -0.2, 0.1}, {9, 9, 9},
		   {0, 0, 0}, 0, -1}}, 0},
		{"cylinder", 112, 0.5, 1,
		 {{PHANTOM_CYLINDER, "cylinder", "vessel", SHAPE_HU, {0.2, 0.1, -0.3}, {5, 0, 0},
		   {ax[0] / axn, ax[1] / axn, ax[2] / axn}, 20, -1}}, 0},
		{"plate", 160, 0.34, 1,
		 {{PHANTOM_BOX, "plate", "bone", SHAPE_HU, {0.1, 0.2, 0.05}, {20, 15, 1}, {0, 0, 0}, 0,
		   -1}}, 2.0},
		{"shell", 68, 0.2, 2,
		 {{PHANTOM_ELLIPSOID, "shell", "bone", SHAPE_HU, {0.03, -0.02, 0.01}, {6, 6, 6},
		   {0, 0, 0}, 0, -1},
		  {PHANTOM_ELLIPSOID, "contents", "air", PHANTOM_HU_AIR, {0.03, -0.02, 0.01},
		   {5.4, 5.4, 5.4}, {0, 0, 0}, 0, 0}}, 0.6},
	};
	const struct {
		enum phantom_geometry g;
		double angle;
	} grids[] = {{PHANTOM_AXIAL, 0}, {PHANTOM_OBLIQUE, 20}, {PHANTOM_TILT, 15}};
	int rc;

	work = mesh_iso_work_create(&err);
	if (work == NULL)
		return 1;
	for (size_t s = 0; s < sizeof(scenes) / sizeof(scenes[0]); s++) {
		for (size_t g = 0; g < sizeof(grids) / sizeof(grids[0]); g++)
			check_scene(&scenes[s], grids[g].g, grids[g].angle);
	}
	check_mask_only((const double[3]){0.5, 0.5, 0.5}, 9);
	check_mask_only((const double[3]){0.7, 0.7, 2.0}, 20);
	rc = test_summary();
	mesh_iso_work_destroy(work);
	return rc;
}
