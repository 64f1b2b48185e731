/*
 * test_analysis.c: unit tests of the print-readiness analysis
 * (r3d/analysis.h) on meshes with known answers, made here: icospheres of
 * known radii (a hollow sphere is an outer sphere plus an inner one with
 * reversed winding), two disjoint spheres, two overlapping spheres joined
 * into one mesh (self-intersecting), two spheres a known gap apart, and a
 * rotated box of known extents. Each triangle gets its own three vertices,
 * as a binary STL has them: the analysis must weld by position to see the
 * topology. Single-threaded driver; the analysis starts its own threads.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/analysis.h"
#include "r3d/mesh.h"
#include "r3d/test.h"

#define PI 3.14159265358979323846
#define MAX_TRI 400000

/* Triangles with unit-sphere corners, 3 doubles per corner. */
struct soup {
	double *p;   /* 9 per triangle */
	size_t n;
};

static void soup_add(struct soup *s, const double a[3], const double b[3], const double c[3])
{
	memcpy(s->p + 9 * s->n, a, 3 * sizeof(double));
	memcpy(s->p + 9 * s->n + 3, b, 3 * sizeof(double));
	memcpy(s->p + 9 * s->n + 6, c, 3 * sizeof(double));
	s->n++;
}

static void unit_mid(double r[3], const double a[3], const double b[3])
{
	double m[3] = {a[0] + b[0], a[1] + b[1], a[2] + b[2]};
	double l = sqrt(m[0] * m[0] + m[1] * m[1] + m[2] * m[2]);
	for (int k = 0; k < 3; k++)
		r[k] = m[k] / l;
}

/* An icosphere on the unit sphere: 20 * 4^level triangles, outward. */
static struct soup icosphere(int level)
{
	const double t = (1.0 + sqrt(5.0)) / 2.0;
	double v[12][3] = {{-1, t, 0}, {1, t, 0}, {-1, -t, 0}, {1, -t, 0}, {0, -1, t}, {0, 1, t},
			   {0, -1, -t}, {0, 1, -t}, {t, 0, -1}, {t, 0, 1}, {-t, 0, -1}, {-t, 0, 1}};
	static const int f[20][3] = {{0, 11, 5}, {0, 5, 1}, {0, 1, 7}, {0, 7, 10}, {0, 10, 11},
				     {1, 5, 9}, {5, 11, 4}, {11, 10, 2}, {10, 7, 6}, {7, 1, 8},
				     {3, 9, 4}, {3, 4, 2}, {3, 2, 6}, {3, 6, 8}, {3, 8, 9},
				     {4, 9, 5}, {2, 4, 11}, {6, 2, 10}, {8, 6, 7}, {9, 8, 1}};
	size_t cap = 20;
	for (int i = 0; i < level; i++)
		cap *= 4;
	struct soup s = {malloc(cap * 9 * sizeof(double)), 0};
	struct soup tmp = {malloc(cap * 9 * sizeof(double)), 0};

	for (int i = 0; i < 12; i++) {
		double l = sqrt(v[i][0] * v[i][0] + v[i][1] * v[i][1] + v[i][2] * v[i][2]);
		for (int k = 0; k < 3; k++)
			v[i][k] /= l;
	}
	for (int i = 0; i < 20; i++)
		soup_add(&s, v[f[i][0]], v[f[i][1]], v[f[i][2]]);
	for (int l = 0; l < level; l++) {
		tmp.n = 0;
		for (size_t i = 0; i < s.n; i++) {
			const double *a = s.p + 9 * i, *b = a + 3, *c = a + 6;
			double ab[3], bc[3], ca[3];
			unit_mid(ab, a, b);
			unit_mid(bc, b, c);
			unit_mid(ca, c, a);
			soup_add(&tmp, a, ab, ca);
			soup_add(&tmp, b, bc, ab);
			soup_add(&tmp, c, ca, bc);
			soup_add(&tmp, ab, bc, ca);
		}
		struct soup x = s;
		s = tmp;
		tmp = x;
	}
	free(tmp.p);
	return s;
}

/* Appends the sphere (centre c, radius r; inward: reversed winding) to m,
 * three vertices per triangle. */
static void mesh_add_sphere(struct mesh *m, const struct soup *u, const double c[3], double r,
			    bool inward)
{
	for (size_t i = 0; i < u->n; i++) {
		for (int j = 0; j < 3; j++) {
			int jj = inward ? 2 - j : j;
			for (int k = 0; k < 3; k++)
				m->xyz[3 * m->nvert + k] = (float)(c[k] + r * u->p[9 * i + 3 * jj + k]);
			m->tri[3 * m->ntri + j] = (uint32_t)m->nvert++;
		}
		m->ntri++;
	}
}

static struct mesh *mesh_empty(size_t ntri)
{
	struct r3d_err err;
	struct mesh *m = mesh_create(&err, 3 * ntri, ntri);
	if (m == NULL) {
		fprintf(stderr, "mesh_create: %s\n", err.msg);
		exit(1);
	}
	m->nvert = m->ntri = 0;
	return m;
}

static double sphere_ml(double r)
{
	return 4.0 / 3.0 * PI * r * r * r / 1000.0;
}

static double dist3(const double a[3], const double b[3])
{
	return sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) +
		    (a[2] - b[2]) * (a[2] - b[2]));
}

/* A hollow sphere: outer radius ro, wall w; min_wall must be w +- 0.1. */
static void test_hollow(const struct soup *u, double ro, double wall, int threads)
{
	struct r3d_err err;
	struct mesh_analysis a;
	struct mesh *m = mesh_empty(2 * u->n);
	const double c[3] = {12.5, -40.0, 300.0};

	mesh_add_sphere(m, u, c, ro, false);
	mesh_add_sphere(m, u, c, ro - wall, true);
	CHECK(mesh_analyse(&err, m, threads, &a));
	CHECK(a.has_wall);
	CHECK_NEAR(a.min_wall, wall, 0.1);
	CHECK_NEAR(a.min_wall, wall, 0.01);  /* facets lie within 0.01 mm of the spheres here */
	CHECK_NEAR(dist3(a.wall_at, c), ro, wall + 0.01);
	CHECK(a.nshells == 2);
	if (a.nshells == 2) {
		CHECK_NEAR(a.shells[0].volume / 1000.0, sphere_ml(ro), 0.01 * sphere_ml(ro));
		CHECK_NEAR(a.shells[1].volume / 1000.0, -sphere_ml(ro - wall),
			   0.01 * sphere_ml(ro - wall));
		CHECK(a.shells[0].ntri == u->n && a.shells[1].ntri == u->n);
		CHECK_NEAR(a.shells[0].area, 4 * PI * ro * ro, 0.01 * 4 * PI * ro * ro);
	}
	CHECK_NEAR(a.volume / 1000.0, sphere_ml(ro) - sphere_ml(ro - wall),
		   0.02 * (sphere_ml(ro) - sphere_ml(ro - wall)));
	CHECK(a.self_intersections == 0);
	printf("hollow sphere r=%.1f wall=%.2f: min_wall=%.4f at %.1f mm from the centre, %.1f ms\n",
	       ro, wall, a.min_wall, dist3(a.wall_at, c), a.seconds * 1e3);
	mesh_analysis_free(&a);
	mesh_destroy(m);
}

static void test_solid_and_extents(const struct soup *u)
{
	struct r3d_err err;
	struct mesh_analysis a;
	struct mesh *m = mesh_empty(u->n);
	const double c[3] = {-5, 7, 1};

	mesh_add_sphere(m, u, c, 8.0, false);
	CHECK(mesh_analyse(&err, m, 2, &a));
	CHECK(a.nshells == 1);
	CHECK_NEAR(a.min_wall, 16.0, 0.05);      /* the diameter */
	CHECK_NEAR(a.volume / 1000.0, sphere_ml(8), 0.01 * sphere_ml(8));
	for (int i = 0; i < 3; i++) {
		CHECK_NEAR(a.extents[i], 16.0, 0.1);
		CHECK_NEAR(a.centroid[i], c[i], 1e-3);
	}
	CHECK(a.self_intersections == 0);
	mesh_analysis_free(&a);
	mesh_destroy(m);
}

/* A 40 x 20 x 10 box rotated about z by 30 degrees then about x by 20:
 * extents 40, 20, 10 along the rotated axes. */
static void test_box_extents(void)
{
	static const int quad[6][4] = {{0, 2, 3, 1}, {4, 5, 7, 6}, {0, 1, 5, 4},
				       {2, 6, 7, 3}, {0, 4, 6, 2}, {1, 3, 7, 5}};
	const double size[3] = {40, 20, 10};
	const double cz = cos(PI / 6), sz = sin(PI / 6), cx = cos(PI / 9), sx = sin(PI / 9);
	/* R = Rx * Rz; columns are the box's axes in the frame */
	const double R[3][3] = {{cz, -sz, 0}, {cx * sz, cx * cz, -sx}, {sx * sz, sx * cz, cx}};
	struct r3d_err err;
	struct mesh_analysis a;
	struct mesh *m = mesh_empty(12);
	double corner[8][3];

	for (int i = 0; i < 8; i++) {
		double q[3] = {(i & 1 ? 0.5 : -0.5) * size[0], (i & 2 ? 0.5 : -0.5) * size[1],
			       (i & 4 ? 0.5 : -0.5) * size[2]};
		for (int k = 0; k < 3; k++)
			corner[i][k] = 100 + R[k][0] * q[0] + R[k][1] * q[1] + R[k][2] * q[2];
	}
	for (int f = 0; f < 6; f++) {
		int tris[2][3] = {{quad[f][0], quad[f][1], quad[f][2]},
				  {quad[f][0], quad[f][2], quad[f][3]}};
		for (int t = 0; t < 2; t++) {
			for (int j = 0; j < 3; j++) {
				for (int k = 0; k < 3; k++)
					m->xyz[3 * m->nvert + k] = (float)corner[tris[t][j]][k];
				m->tri[3 * m->ntri + j] = (uint32_t)m->nvert++;
			}
			m->ntri++;
		}
	}
	CHECK(mesh_analyse(&err, m, 1, &a));
	CHECK(a.nshells == 1);
	CHECK_NEAR(a.volume, 40.0 * 20 * 10, 0.5);
	for (int i = 0; i < 3; i++) {
		double d = 0;
		CHECK_NEAR(a.extents[i], size[i], 1e-3);
		for (int k = 0; k < 3; k++)
			d += a.axes[i][k] * R[k][i];
		CHECK_NEAR(fabs(d), 1.0, 1e-6);
		CHECK_NEAR(a.centroid[i], 100.0, 1e-3);
	}
	CHECK(a.self_intersections == 0);
	printf("box: extents %.4f %.4f %.4f, min_wall %.3f\n", a.extents[0], a.extents[1],
	       a.extents[2], a.min_wall);
	mesh_analysis_free(&a);
	mesh_destroy(m);
}

/* Two disjoint spheres: two shells with their volumes, no crossing; then
 * the small one dropped as a loose shell. */
static void test_two_shells(const struct soup *u)
{
	struct r3d_err err;
	struct mesh_analysis a;
	struct mesh *m = mesh_empty(2 * u->n);
	const double c1[3] = {0, 0, 0}, c2[3] = {30, 0, 0};
	size_t dropped = 0;

	mesh_add_sphere(m, u, c1, 10.0, false);
	mesh_add_sphere(m, u, c2, 2.0, false);
	CHECK(mesh_analyse(&err, m, 2, &a));
	CHECK(a.nshells == 2);
	if (a.nshells == 2) {
		CHECK_NEAR(a.shells[0].volume / 1000.0, sphere_ml(10), 0.01 * sphere_ml(10));
		CHECK_NEAR(a.shells[1].volume / 1000.0, sphere_ml(2), 0.01 * sphere_ml(2));
		printf("two spheres: shells %.4f ml (truth %.4f), %.5f ml (truth %.5f)\n",
		       a.shells[0].volume / 1000, sphere_ml(10), a.shells[1].volume / 1000,
		       sphere_ml(2));
	}
	CHECK(a.self_intersections == 0);
	CHECK_NEAR(a.min_wall, 4.0, 0.05);   /* the small sphere's diameter */
	mesh_analysis_free(&a);
	/* 0.1 ml drops the 0.034 ml sphere and keeps the 4.2 ml one. */
	CHECK(mesh_drop_small_shells(&err, m, 100.0, &dropped));
	CHECK(dropped == 1);
	CHECK(m->ntri == u->n);
	CHECK(mesh_analyse(&err, m, 2, &a));
	CHECK(a.nshells == 1);
	CHECK_NEAR(a.volume / 1000.0, sphere_ml(10), 0.01 * sphere_ml(10));
	mesh_analysis_free(&a);
	mesh_destroy(m);
}

/* A cavity is never dropped: the hollow sphere's inner shell stays. */
static void test_cavity_kept(const struct soup *u)
{
	struct r3d_err err;
	struct mesh *m = mesh_empty(2 * u->n);
	const double c[3] = {0, 0, 0};
	size_t dropped = 5;

	mesh_add_sphere(m, u, c, 10.0, false);
	mesh_add_sphere(m, u, c, 1.0, true);
	CHECK(mesh_drop_small_shells(&err, m, 100.0, &dropped));
	CHECK(dropped == 0);
	CHECK(m->ntri == 2 * u->n);
	mesh_destroy(m);
}

/* A model made only of small pieces is kept whole. */
static void test_all_small_kept(const struct soup *u)
{
	struct r3d_err err;
	struct mesh *m = mesh_empty(2 * u->n);
	const double c1[3] = {0, 0, 0}, c2[3] = {10, 0, 0};
	size_t dropped = 5;

	mesh_add_sphere(m, u, c1, 2.0, false);
	mesh_add_sphere(m, u, c2, 1.0, false);
	CHECK(mesh_drop_small_shells(&err, m, 100.0, &dropped));
	CHECK(dropped == 0);
	CHECK(m->ntri == 2 * u->n);
	mesh_destroy(m);
}

/* Two overlapping spheres in one mesh cross along a circle. */
static void test_self_intersection(const struct soup *u)
{
	struct r3d_err err;
	struct mesh_analysis a;
	struct mesh *m = mesh_empty(2 * u->n);
	const double c1[3] = {0, 0, 0}, c2[3] = {6, 0, 0};

	mesh_add_sphere(m, u, c1, 5.0, false);
	mesh_add_sphere(m, u, c2, 5.0, false);
	CHECK(mesh_analyse(&err, m, 2, &a));
	CHECK(a.self_intersections > 0);
	/* The crossing circle: x = 3, radius 4. */
	CHECK_NEAR(a.si_at[0], 3.0, 0.05);
	CHECK_NEAR(hypot(a.si_at[1], a.si_at[2]), 4.0, 0.05);
	CHECK(a.nshells == 2);
	printf("overlapping spheres: %zu crossing pairs, one at (%.3f, %.3f, %.3f)\n",
	       a.self_intersections, a.si_at[0], a.si_at[1], a.si_at[2]);
	mesh_analysis_free(&a);
	mesh_destroy(m);
}

/* The shortest distance between two spheres a known gap apart. */
static void test_distance(const struct soup *u, int threads)
{
	struct r3d_err err;
	struct mesh *a = mesh_empty(u->n), *b = mesh_empty(u->n), *c = mesh_empty(u->n);
	const double ca[3] = {10, 20, 30};
	const double dir[3] = {0.48, 0.6, 0.64};   /* unit */
	const double ra = 6.0, rb = 4.0, gap = 2.7;
	double cb[3], cc[3], d = -1, pa[3], pb[3];

	for (int k = 0; k < 3; k++) {
		cb[k] = ca[k] + (ra + rb + gap) * dir[k];
		cc[k] = ca[k] + (ra + rb - 1.0) * dir[k];   /* overlapping a by 1 mm */
	}
	mesh_add_sphere(a, u, ca, ra, false);
	mesh_add_sphere(b, u, cb, rb, false);
	mesh_add_sphere(c, u, cc, rb, false);
	CHECK(mesh_gap(&err, a, b, threads, &d, pa, pb));
	CHECK_NEAR(d, gap, 0.1);
	CHECK_NEAR(d, gap, 0.02);
	CHECK_NEAR(dist3(pa, ca), ra, 0.02);
	CHECK_NEAR(dist3(pb, cb), rb, 0.02);
	CHECK_NEAR(dist3(pa, pb), d, 1e-6);
	for (int k = 0; k < 3; k++)
		CHECK_NEAR(pa[k], ca[k] + ra * dir[k], 0.5);
	printf("spheres %.2f mm apart: distance %.4f mm (%d threads)\n", gap, d, threads);
	CHECK(mesh_gap(&err, a, c, threads, &d, pa, pb));
	CHECK(d == 0.0);
	CHECK_NEAR(dist3(pa, ca), ra, 0.02);
	CHECK_NEAR(dist3(pa, cc), rb, 0.02);
	mesh_destroy(a);
	mesh_destroy(b);
	mesh_destroy(c);
}

static void test_bad_input(void)
{
	struct r3d_err err;
	struct mesh_analysis a;
	struct mesh *m = mesh_empty(1);

	m->nvert = 3;
	m->ntri = 1;
	m->tri[0] = 0;
	m->tri[1] = 1;
	m->tri[2] = 7;
	CHECK(!mesh_analyse(&err, m, 1, &a));
	CHECK(err.code == R3D_EINVAL);
	mesh_destroy(m);
}

int main(void)
{
	struct soup u5 = icosphere(5);   /* 20480 triangles */
	struct soup u4 = icosphere(4);   /* 5120 */

	test_hollow(&u5, 10.0, 0.6, 2);
	test_hollow(&u5, 10.0, 0.6, 1);
	test_hollow(&u5, 10.0, 3.0, 2);
	test_solid_and_extents(&u4);
	test_box_extents();
	test_two_shells(&u4);
	test_cavity_kept(&u4);
	test_all_small_kept(&u4);
	test_self_intersection(&u5);
	test_distance(&u5, 2);
	test_distance(&u5, 1);
	test_bad_input();
	free(u5.p);
	free(u4.p);
	return test_summary();
}
