/*
 * test_mesh.c: unit tests of the mesh stage against analytic truth:
 * spheres, ellipsoids and a torus rasterised in memory, their enclosed
 * volume, topology (closed, 2-manifold, Euler characteristic), orientation
 * and centroid, before and after the voxel-to-LPS transform, smoothing and
 * decimation; the STL and OBJ writers read back. Single-threaded test
 * driver (the isosurface starts its own threads).
 */
#include <math.h>
#include <meshoptimizer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "r3d/mesh.h"
#include "r3d/test.h"

#define PI 3.14159265358979323846
#define SUPERSAMPLE 6 /* per axis, for partial-volume voxels */

/* An analytic solid in voxel-index coordinates: inside(p) < 0. */
struct solid {
	int kind; /* 0 ellipsoid (c, r[3]), 1 torus about z (c, R = r[0], tube r[1]) */
	double c[3];
	double r[3];
};

static double solid_f(const struct solid *s, double x, double y, double z)
{
	double dx = x - s->c[0], dy = y - s->c[1], dz = z - s->c[2];

	if (s->kind == 0)
		return dx * dx / (s->r[0] * s->r[0]) + dy * dy / (s->r[1] * s->r[1]) +
		       dz * dz / (s->r[2] * s->r[2]) - 1.0;
	double q = sqrt(dx * dx + dy * dy) - s->r[0];
	return (q * q + dz * dz) / (s->r[1] * s->r[1]) - 1.0;
}

static double solid_volume(const struct solid *s)
{
	if (s->kind == 0)
		return 4.0 / 3.0 * PI * s->r[0] * s->r[1] * s->r[2];
	return 2.0 * PI * PI * s->r[0] * s->r[1] * s->r[1];
}

/* Fraction of voxel (x, y, z) inside the solid, by supersampling where the
 * voxel may straddle the surface. */
static double solid_fraction(const struct solid *s, int x, int y, int z)
{
	double f = solid_f(s, x, y, z);
	int in = 0;

	/* Far from the surface for the sizes used here (radii >= 7). */
	if (fabs(f) > 0.35)
		return f < 0 ? 1.0 : 0.0;
	for (int a = 0; a < SUPERSAMPLE; a++)
		for (int b = 0; b < SUPERSAMPLE; b++)
			for (int c = 0; c < SUPERSAMPLE; c++) {
				double px = x - 0.5 + (a + 0.5) / SUPERSAMPLE;
				double py = y - 0.5 + (b + 0.5) / SUPERSAMPLE;
				double pz = z - 0.5 + (c + 0.5) / SUPERSAMPLE;
				in += solid_f(s, px, py, pz) < 0.0;
			}
	return (double)in / (SUPERSAMPLE * SUPERSAMPLE * SUPERSAMPLE);
}

/* int16 volume: 0 outside, 1000 inside, partial volume in between. */
static int16_t *raster_i16(const struct solid *s, size_t nx, size_t ny, size_t nz)
{
	int16_t *v = malloc(nx * ny * nz * sizeof(*v));

	for (size_t z = 0; z < nz; z++)
		for (size_t y = 0; y < ny; y++)
			for (size_t x = 0; x < nx; x++)
				v[x + nx * (y + ny * z)] =
					(int16_t)lround(1000.0 * solid_fraction(s, (int)x, (int)y, (int)z));
	return v;
}

/* uint8 mask: 1 where the voxel centre is inside. */
static uint8_t *raster_u8(const struct solid *s, size_t nx, size_t ny, size_t nz)
{
	uint8_t *v = malloc(nx * ny * nz);

	for (size_t z = 0; z < nz; z++)
		for (size_t y = 0; y < ny; y++)
			for (size_t x = 0; x < nx; x++)
				v[x + nx * (y + ny * z)] = solid_f(s, x, y, z) < 0.0;
	return v;
}

/* Scratch shared by every extraction of the tests, so that reuse with other
 * sizes, thread counts and leftover contents is exercised throughout. */
static struct mesh_iso_work *test_work;

static struct mesh *iso(const void *data, enum mesh_scalar type, size_t nx, size_t ny, size_t nz,
			double isoval, int threads)
{
	struct r3d_err err = {0};
	struct mesh_volume vol = {data, type, nx, ny, nz, NULL, 0, 0};
	struct mesh *m = NULL;

	if (!mesh_isosurface(&err, &vol, isoval, threads, test_work, &m)) {
		fprintf(stderr, "isosurface: %s\n", err.msg);
		return NULL;
	}
	return m;
}

static struct mesh_stats stats(const struct mesh *m)
{
	struct r3d_err err = {0};
	struct mesh_stats st;

	if (!mesh_check(&err, m, &st)) {
		fprintf(stderr, "check: %s\n", err.msg);
		memset(&st, 0, sizeof(st));
	}
	return st;
}

static bool closed_manifold(const struct mesh_stats *st)
{
	if (!st->closed || !st->manifold)
		fprintf(stderr, "  boundary %zu nonmanifold %zu misoriented %zu degenerate %zu\n",
			st->boundary_edges, st->nonmanifold_edges, st->misoriented_edges,
			st->degenerate_tri);
	return st->closed && st->manifold;
}

/* One voxel: an octahedron with vertices half a voxel out. */
static void test_single_voxel(void)
{
	uint8_t one = 1;
	struct mesh *m = iso(&one, MESH_SCALAR_U8, 1, 1, 1, 0.5, 1);

	CHECK(m != NULL);
	if (m == NULL)
		return;
	struct mesh_stats st = stats(m);
	CHECK(m->nvert == 6);
	CHECK(m->ntri == 8);
	CHECK(closed_manifold(&st));
	CHECK(st.euler == 2);
	CHECK_NEAR(st.volume, 4.0 / 3.0 * 0.125, 1e-6);
	CHECK_NEAR(st.centroid[0], 0.0, 1e-6);
	mesh_destroy(m);
}

/* A mask filling its whole box still closes thanks to the padding. */
static void test_full_box(void)
{
	size_t nx = 70, ny = 5, nz = 4;
	uint8_t *v = malloc(nx * ny * nz);
	memset(v, 1, nx * ny * nz);
	struct mesh *m = iso(v, MESH_SCALAR_U8, nx, ny, nz, 0.5, 2);

	CHECK(m != NULL);
	if (m != NULL) {
		struct mesh_stats st = stats(m);
		CHECK(closed_manifold(&st));
		CHECK(st.euler == 2);
		CHECK(st.volume > 0.0);
		/* Box [-0.5, n-0.5] with its 12 edges and 8 corners chamfered. */
		CHECK(st.volume < (double)(nx * ny * nz));
		CHECK(st.volume > (double)(nx * ny * nz) * 0.9);
		CHECK_NEAR(st.centroid[0], (nx - 1) / 2.0, 1e-3);
		CHECK_NEAR(st.centroid[1], (ny - 1) / 2.0, 1e-3);
		CHECK_NEAR(st.centroid[2], (nz - 1) / 2.0, 1e-3);
	}
	mesh_destroy(m);
	free(v);
}

/* Sphere from a binary mask: topology, orientation, determinism across
 * thread counts; its volume is close to the voxel count. */
static void test_sphere_mask(void)
{
	struct solid s = {0, {40.3, 38.7, 37.2}, {30, 30, 30}};
	size_t nx = 81, ny = 78, nz = 76;
	uint8_t *v = raster_u8(&s, nx, ny, nz);
	struct mesh *m1 = iso(v, MESH_SCALAR_U8, nx, ny, nz, 0.5, 1);
	struct mesh *m3 = iso(v, MESH_SCALAR_U8, nx, ny, nz, 0.5, 3);

	CHECK(m1 != NULL && m3 != NULL);
	if (m1 != NULL && m3 != NULL) {
		struct mesh_stats st = stats(m1);
		CHECK(closed_manifold(&st));
		CHECK(st.euler == 2);
		CHECK(st.volume > 0.0);
		printf("sphere mask r=30: volume %.1f analytic %.1f (%.2f %%)\n", st.volume,
		       solid_volume(&s), 100.0 * (st.volume / solid_volume(&s) - 1.0));
		CHECK(fabs(st.volume / solid_volume(&s) - 1.0) < 0.01);
		CHECK(fabs(st.area / (4 * PI * 900.0) - 1.0) < 0.1);
		for (int d = 0; d < 3; d++)
			CHECK_NEAR(st.centroid[d], s.c[d], 0.1);
		CHECK(m1->nvert == m3->nvert && m1->ntri == m3->ntri);
		if (m1->nvert == m3->nvert && m1->ntri == m3->ntri) {
			CHECK(memcmp(m1->xyz, m3->xyz, 12 * m1->nvert) == 0);
			CHECK(memcmp(m1->tri, m3->tri, 12 * m1->ntri) == 0);
		}
	}
	mesh_destroy(m1);
	mesh_destroy(m3);
	free(v);
}

/* Partial-volume int16 ellipsoid: volume within 1 %, then the transform to
 * LPS with an oblique rotation, anisotropic spacing and a shear (gantry
 * tilt) and a mirror: centroid within 0.5 mm, volume scaled by |det|. */
static void test_ellipsoid_transform(void)
{
	struct solid s = {0, {35.4, 30.2, 26.9}, {27, 21, 16}};
	size_t nx = 71, ny = 61, nz = 54;
	int16_t *v = raster_i16(&s, nx, ny, nz);
	double ca = cos(0.5), sa = sin(0.5), cb = cos(0.3), sb = sin(0.3);
	/* Rotation about z by 0.5 rad, then about x by 0.3 rad; spacing 0.7,
	 * 0.8, 1.25 mm; shear of z into y (tilt 15 degrees); translation. */
	double rz[3][3] = {{ca, -sa, 0}, {sa, ca, 0}, {0, 0, 1}};
	double rx[3][3] = {{1, 0, 0}, {0, cb, -sb}, {0, sb, cb}};
	double sp[3] = {0.7, 0.8, 1.25}, tilt = tan(15.0 * PI / 180.0);
	double sh[3][3] = {{sp[0], 0, 0}, {0, sp[1], tilt * sp[2]}, {0, 0, sp[2]}};
	double r[3][3], a3[3][3];
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++) {
			r[i][j] = 0;
			for (int k = 0; k < 3; k++)
				r[i][j] += rx[i][k] * rz[k][j];
		}
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++) {
			a3[i][j] = 0;
			for (int k = 0; k < 3; k++)
				a3[i][j] += r[i][k] * sh[k][j];
		}
	double det = a3[0][0] * (a3[1][1] * a3[2][2] - a3[1][2] * a3[2][1]) -
		     a3[0][1] * (a3[1][0] * a3[2][2] - a3[1][2] * a3[2][0]) +
		     a3[0][2] * (a3[1][0] * a3[2][1] - a3[1][1] * a3[2][0]);
	double t[3] = {-120.5, 84.25, -310.0};

	for (int mirror = 0; mirror < 2; mirror++) {
		struct mesh *m = iso(v, MESH_SCALAR_I16, nx, ny, nz, 499.5, 2);
		double A[16] = {0};
		struct r3d_err err = {0};

		CHECK(m != NULL);
		if (m == NULL)
			continue;
		struct mesh_stats st = stats(m);
		CHECK(closed_manifold(&st));
		CHECK(st.euler == 2);
		printf("ellipsoid i16: volume %.1f analytic %.1f (%.3f %%)\n", st.volume,
		       solid_volume(&s), 100.0 * (st.volume / solid_volume(&s) - 1.0));
		CHECK(fabs(st.volume / solid_volume(&s) - 1.0) < 0.01);
		for (int d = 0; d < 3; d++)
			CHECK_NEAR(st.centroid[d], s.c[d], 0.05);

		for (int i = 0; i < 3; i++) {
			for (int j = 0; j < 3; j++)
				A[4 * i + j] = a3[i][j] * (mirror && j == 0 ? -1.0 : 1.0);
			A[4 * i + 3] = t[i];
		}
		A[15] = 1.0;
		CHECK(mesh_transform(&err, m, A));
		struct mesh_stats sl = stats(m);
		double truth[3];
		for (int i = 0; i < 3; i++)
			truth[i] = A[4 * i] * s.c[0] + A[4 * i + 1] * s.c[1] + A[4 * i + 2] * s.c[2] +
				   A[4 * i + 3];
		CHECK(closed_manifold(&sl));
		CHECK(sl.volume > 0.0);
		printf("ellipsoid LPS (mirror %d): %.3f mL, analytic %.3f mL; centroid off by"
		       " %.3f %.3f %.3f mm\n", mirror, sl.volume_ml,
		       solid_volume(&s) * fabs(det) / 1000.0, sl.centroid[0] - truth[0],
		       sl.centroid[1] - truth[1], sl.centroid[2] - truth[2]);
		CHECK(fabs(sl.volume / (solid_volume(&s) * fabs(det)) - 1.0) < 0.01);
		for (int d = 0; d < 3; d++)
			CHECK_NEAR(sl.centroid[d], truth[d], 0.5);
		mesh_destroy(m);
	}
	free(v);
}

/* Hollow ellipsoid (a shell around a cavity): two closed surfaces, Euler
 * 2 + 2, and the cavity's surface faces into the cavity, so the signed
 * volume is outer minus inner. */
static void test_hollow(void)
{
	struct solid outer = {0, {35.4, 30.2, 26.9}, {27, 21, 16}};
	struct solid inner = {0, {35.4, 30.2, 26.9}, {20, 14, 9}};
	size_t nx = 71, ny = 61, nz = 54;
	int16_t *a = raster_i16(&outer, nx, ny, nz), *b = raster_i16(&inner, nx, ny, nz);

	for (size_t i = 0; i < nx * ny * nz; i++)
		a[i] = (int16_t)(a[i] - b[i]);
	struct mesh *m = iso(a, MESH_SCALAR_I16, nx, ny, nz, 499.5, 2);
	CHECK(m != NULL);
	if (m != NULL) {
		struct mesh_stats st = stats(m);
		double truth = solid_volume(&outer) - solid_volume(&inner);
		CHECK(closed_manifold(&st));
		CHECK(st.euler == 4);
		printf("hollow ellipsoid: volume %.1f analytic %.1f\n", st.volume, truth);
		CHECK(fabs(st.volume / truth - 1.0) < 0.01);
	}
	mesh_destroy(m);
	free(a);
	free(b);
}

/* RMS distance of the vertices from a sphere's surface. */
static double sphere_rms(const struct mesh *m, const struct solid *s)
{
	double sum = 0.0;

	for (size_t v = 0; v < m->nvert; v++) {
		const float *p = m->xyz + 3 * v;
		double d = hypot(hypot(p[0] - s->c[0], p[1] - s->c[1]), p[2] - s->c[2]) - s->r[0];
		sum += d * d;
	}
	return m->nvert > 0 ? sqrt(sum / (double)m->nvert) : 0.0;
}

/* Smoothing removes the staircase of a binary mask: the vertices get
 * closer to the true sphere while the volume stays. */
static void test_smooth_quality(void)
{
	struct solid s = {0, {30.3, 29.7, 28.2}, {24, 24, 24}};
	size_t nx = 61, ny = 60, nz = 58;
	uint8_t *v = raster_u8(&s, nx, ny, nz);
	struct mesh *m = iso(v, MESH_SCALAR_U8, nx, ny, nz, 0.5, 1);
	struct mesh_smooth_params sp;
	struct r3d_err err = {0};

	CHECK(m != NULL);
	if (m != NULL) {
		double before = sphere_rms(m, &s);
		mesh_smooth_defaults(&sp);
		CHECK(mesh_smooth(&err, m, &sp));
		double after = sphere_rms(m, &s);
		printf("smooth quality: RMS distance to the sphere %.3f -> %.3f voxel\n", before,
		       after);
		CHECK(after < 0.75 * before);
	}
	mesh_destroy(m);
	free(v);
}

/* Torus: genus 1, Euler characteristic 0. */
static void test_torus(void)
{
	struct solid s = {1, {30.5, 29.5, 12.3}, {18, 7, 0}};
	size_t nx = 62, ny = 60, nz = 26;
	int16_t *v = raster_i16(&s, nx, ny, nz);
	struct mesh *m = iso(v, MESH_SCALAR_I16, nx, ny, nz, 499.5, 2);

	CHECK(m != NULL);
	if (m != NULL) {
		struct mesh_stats st = stats(m);
		CHECK(closed_manifold(&st));
		CHECK(st.euler == 0);
		CHECK(fabs(st.volume / solid_volume(&s) - 1.0) < 0.01);
	}
	mesh_destroy(m);
	free(v);
}

/* Smoothing keeps the volume within 1 %; decimation to 10 % keeps the
 * surface closed, manifold, and its volume within 1 %. */
static void test_smooth_decimate(void)
{
	struct solid s = {0, {40.3, 38.7, 37.2}, {32, 28, 25}};
	size_t nx = 81, ny = 78, nz = 76;
	uint8_t *v = raster_u8(&s, nx, ny, nz);
	struct mesh *m = iso(v, MESH_SCALAR_U8, nx, ny, nz, 0.5, 2);
	struct mesh_smooth_params sp;
	struct r3d_err err = {0};

	CHECK(m != NULL);
	if (m == NULL)
		goto out;
	struct mesh_stats s0 = stats(m);
	mesh_smooth_defaults(&sp);
	struct mesh *m1 = iso(v, MESH_SCALAR_U8, nx, ny, nz, 0.5, 1);
	CHECK(m1 != NULL && mesh_smooth(&err, m1, &sp));
	sp.threads = 2;
	CHECK(mesh_smooth(&err, m, &sp));
	/* Each vertex is computed from the same inputs whatever the threads. */
	CHECK(m1 != NULL && m1->nvert == m->nvert &&
	      memcmp(m1->xyz, m->xyz, 12 * m->nvert) == 0);
	mesh_destroy(m1);
	struct mesh_stats s1 = stats(m);
	printf("smooth: volume %.1f -> %.1f (analytic %.1f)\n", s0.volume, s1.volume,
	       solid_volume(&s));
	CHECK(closed_manifold(&s1));
	CHECK(fabs(s1.volume / s0.volume - 1.0) < 0.01);
	CHECK(fabs(s1.volume / solid_volume(&s) - 1.0) < 0.01);
	CHECK(s1.area < s0.area); /* the staircase is gone */

	size_t target = m->ntri / 10;
	CHECK(mesh_decimate(&err, m, target, 0, 1, NULL));
	struct mesh_stats s2 = stats(m);
	printf("decimate: %zu -> %zu triangles (target %zu), volume %.1f\n", s1.ntri, s2.ntri,
	       target, s2.volume);
	CHECK(s2.ntri <= target + target / 20);
	CHECK(s2.ntri > target / 2);
	CHECK(closed_manifold(&s2));
	CHECK(s2.euler == 2);
	CHECK(s2.nvert == m->nvert); /* no unused vertex left */
	CHECK(fabs(s2.volume / s1.volume - 1.0) < 0.01);

	/* Bad parameters are refused. */
	sp.mu = 0.2;
	CHECK(!mesh_smooth(&err, m, &sp) && err.code == R3D_EINVAL);
	CHECK(!mesh_decimate(&err, m, 0, 0, 1, NULL) && err.code == R3D_EINVAL);
	CHECK(!mesh_decimate(&err, m, 100, 0, 0, NULL) && err.code == R3D_EINVAL);
out:
	mesh_destroy(m);
	free(v);
}

/* Thin banded shells, decimated hard: meshopt_simplify alone folds thin
 * parts flat and pinches sheets together (non-manifold edges); our
 * decimation repairs that and keeps every edge in exactly two triangles. */
static void test_decimate_thin(void)
{
	size_t nx = 96, ny = 90, nz = 80;
	uint8_t *v = malloc(nx * ny * nz);
	struct r3d_err err = {0};

	for (size_t z = 0; z < nz; z++)
		for (size_t y = 0; y < ny; y++)
			for (size_t x = 0; x < nx; x++) {
				double dx = (x - 47.5) / 42.0, dy = (y - 44.5) / 38.0;
				double r = sqrt(dx * dx + dy * dy) * 40.0;
				bool shell = fabs(r - 36.0) < 1.0 && sin(z * 2.0 * PI / 9.0) > -0.2;
				bool rod = hypot(x - 47.5, y - 60.0) < 1.7 && z > 4 && z < 75;
				v[x + nx * (y + ny * z)] = shell || rod;
			}
	struct mesh *m = iso(v, MESH_SCALAR_U8, nx, ny, nz, 0.5, 2);
	CHECK(m != NULL);
	if (m == NULL)
		goto out;
	size_t target = m->ntri / 10;
	unsigned int *dst = malloc(12 * m->ntri);
	struct mesh alone = *m;
	alone.tri = dst;
	alone.ntri = meshopt_simplify(dst, m->tri, 3 * m->ntri, m->xyz, m->nvert, 12, 3 * target,
				      0.01f, 0, NULL) / 3;
	struct mesh_stats sa = stats(&alone);
	free(dst);
	CHECK(mesh_decimate(&err, m, target, 0, 1, NULL));
	struct mesh_stats sd = stats(m);
	printf("thin shells: meshopt alone %zu triangles, %zu non-manifold edges; ours %zu"
	       " triangles, %zu non-manifold edges\n", sa.ntri, sa.nonmanifold_edges, sd.ntri,
	       sd.nonmanifold_edges);
	CHECK(sa.nonmanifold_edges > 0); /* the case is hard enough */
	CHECK(closed_manifold(&sd));
	CHECK(sd.ntri <= target + target / 20);
	/* As a slicer reads the STL: welded by position, still closed (the
	 * copies of a split pinch must not share a position). */
	size_t nvert_indexed = m->nvert;
	CHECK(mesh_weld(&err, m));
	struct mesh_stats sw = stats(m);
	printf("thin shells welded by position: %zu -> %zu vertices, %zu non-manifold edges\n",
	       nvert_indexed, m->nvert, sw.nonmanifold_edges);
	CHECK(closed_manifold(&sw) && m->nvert == nvert_indexed);
	mesh_destroy(m);
out:
	free(v);
}

/* Threaded decimation (slabs with locked cuts, then a last pass) on a
 * surface big enough to use it: closed, manifold, sphere topology, volume
 * kept, budget met. */
static void test_decimate_threaded(void)
{
	struct solid s = {0, {100.3, 90.6, 80.2}, {95, 85, 75}};
	size_t nx = 202, ny = 182, nz = 162;
	uint8_t *v = raster_u8(&s, nx, ny, nz);
	struct mesh *m = iso(v, MESH_SCALAR_U8, nx, ny, nz, 0.5, 2);
	struct r3d_err err = {0};

	CHECK(m != NULL);
	if (m == NULL)
		goto out;
	struct mesh_stats s0 = stats(m);
	size_t target = m->ntri / 10;
	CHECK(m->ntri >= 200000); /* 100k per thread: the threaded path runs */
	CHECK(mesh_decimate(&err, m, target, 0, 2, NULL));
	struct mesh_stats s1 = stats(m);
	printf("threaded decimate: %zu -> %zu triangles (target %zu), volume %.0f -> %.0f\n",
	       s0.ntri, s1.ntri, target, s0.volume, s1.volume);
	CHECK(closed_manifold(&s1));
	CHECK(s1.euler == 2);
	CHECK(s1.ntri <= target + target / 20);
	CHECK(s1.ntri > target / 2);
	CHECK(fabs(s1.volume / s0.volume - 1.0) < 0.01);
	CHECK(s1.nvert == m->nvert);
out:
	mesh_destroy(m);
	free(v);
}

/* The whole stage on a mask with CT-like geometry (0.78 x 0.78 x 2.5 mm,
 * oblique, tilted): closed 2-manifold sphere topology, volume within 1 %,
 * centroid within 0.5 mm in LPS. */
static void test_build(void)
{
	struct solid s = {0, {60.2, 55.9, 14.3}, {45, 38, 10}};
	size_t nx = 121, ny = 112, nz = 30;
	uint8_t *v = raster_u8(&s, nx, ny, nz);
	struct mesh_volume vol = {v, MESH_SCALAR_U8, nx, ny, nz, NULL, 0, 0};
	struct mesh_build_params p;
	struct mesh_build_times tm;
	struct mesh_stats st;
	struct mesh *m = NULL;
	struct r3d_err err = {0};
	double c = cos(0.2), sn = sin(0.2), tilt = tan(12.0 * PI / 180.0);
	/* Columns: row direction * 0.78, column direction * 0.78, slice
	 * normal * 2.5 tilted along the column direction. */
	double A[16] = {
		0.78 * c, -0.78 * sn, 0.0, -180.0,
		0.78 * sn, 0.78 * c, 2.5 * tilt, -150.0,
		0.0, 0.0, 2.5, 40.0,
		0, 0, 0, 1,
	};
	double det = 0.78 * 0.78 * 2.5;

	mesh_build_defaults(&p);
	p.threads = 2;
	memcpy(p.affine, A, sizeof(A));
	p.max_tri = 8000;
	CHECK(mesh_build(&err, &vol, &p, test_work, &m, &st, &tm));
	if (m != NULL) {
		double truth[3];
		for (int i = 0; i < 3; i++)
			truth[i] = A[4 * i] * s.c[0] + A[4 * i + 1] * s.c[1] + A[4 * i + 2] * s.c[2] +
				   A[4 * i + 3];
		printf("build: %zu triangles, %.3f mL (analytic %.3f), centroid off %.3f %.3f %.3f mm\n",
		       st.ntri, st.volume_ml, solid_volume(&s) * det / 1000.0,
		       st.centroid[0] - truth[0], st.centroid[1] - truth[1], st.centroid[2] - truth[2]);
		CHECK(closed_manifold(&st));
		CHECK(st.euler == 2);
		CHECK(st.ntri <= p.max_tri);
		CHECK(fabs(st.volume / (solid_volume(&s) * det) - 1.0) < 0.01);
		for (int d = 0; d < 3; d++)
			CHECK_NEAR(st.centroid[d], truth[d], 0.5);
		CHECK(tm.isosurface_s > 0.0 && tm.decimate_s > 0.0);
	}
	mesh_destroy(m);
	m = NULL;
	p.threads = 0;
	CHECK(!mesh_build(&err, &vol, &p, NULL, &m, &st, NULL) && m == NULL && err.code == R3D_EINVAL);
	free(v);
}

/* A noisy field with many ambiguous faces still gives a closed 2-manifold. */
static void test_noise(void)
{
	size_t nx = 67, ny = 40, nz = 33;
	int16_t *v = malloc(nx * ny * nz * sizeof(*v));
	uint32_t seed = 12345;

	for (size_t i = 0; i < nx * ny * nz; i++) {
		seed = seed * 1664525u + 1013904223u;
		v[i] = (int16_t)((int)(seed >> 16) % 2000 - 1000);
	}
	for (int threads = 1; threads <= 2; threads++) {
		struct mesh *m = iso(v, MESH_SCALAR_I16, nx, ny, nz, 0.5, threads);
		CHECK(m != NULL);
		if (m != NULL) {
			struct mesh_stats st = stats(m);
			CHECK(closed_manifold(&st));
			CHECK(st.volume > 0.0);
		}
		mesh_destroy(m);
	}
	free(v);
}

/* Reused scratch, dirty from bigger volumes and more threads, gives the
 * same surface as fresh scratch. */
static void test_work_reuse(void)
{
	struct solid s = {0, {12.2, 10.7, 9.4}, {9, 7, 6}};
	size_t nx = 70, ny = 22, nz = 20; /* x over one 64-bit word */
	int16_t *v = raster_i16(&s, nx, ny, nz);
	struct mesh_volume vol = {v, MESH_SCALAR_I16, nx, ny, nz, NULL, 0, 0};
	struct mesh *fresh = NULL, *reused = NULL;
	struct r3d_err err = {0};

	CHECK(mesh_isosurface(&err, &vol, 499.5, 2, NULL, &fresh));
	CHECK(mesh_isosurface(&err, &vol, 499.5, 2, test_work, &reused));
	CHECK(fresh != NULL && reused != NULL);
	if (fresh != NULL && reused != NULL) {
		CHECK(fresh->nvert == reused->nvert && fresh->ntri == reused->ntri);
		if (fresh->nvert == reused->nvert && fresh->ntri == reused->ntri) {
			CHECK(memcmp(fresh->xyz, reused->xyz, 12 * fresh->nvert) == 0);
			CHECK(memcmp(fresh->tri, reused->tri, 12 * fresh->ntri) == 0);
		}
	}
	mesh_destroy(fresh);
	mesh_destroy(reused);
	free(v);
}

/* Refusals: a clear EINVAL, no crash. */
static void test_refusals(void)
{
	struct r3d_err err = {0};
	uint8_t one = 1;
	struct mesh_volume vol = {&one, MESH_SCALAR_U8, 1, 1, 1, NULL, 0, 0};
	struct mesh *m = NULL;
	double sing[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

	CHECK(!mesh_isosurface(&err, &vol, 0.5, 0, NULL, &m) && err.code == R3D_EINVAL && m == NULL);
	CHECK(!mesh_isosurface(&err, &vol, 300.0, 1, NULL, &m) && err.code == R3D_EINVAL);
	CHECK(!mesh_isosurface(&err, &vol, NAN, 1, NULL, &m) && err.code == R3D_EINVAL);
	vol.nx = 0;
	CHECK(!mesh_isosurface(&err, &vol, 0.5, 1, NULL, &m) && err.code == R3D_EINVAL);
	vol.nx = MESH_MAX_DIM + 1;
	CHECK(!mesh_isosurface(&err, &vol, 0.5, 1, NULL, &m) && err.code == R3D_EINVAL);
	vol.nx = 1;
	one = 0;
	CHECK(mesh_isosurface(&err, &vol, 0.5, 1, NULL, &m));
	CHECK(m != NULL && m->ntri == 0 && m->nvert == 0);
	if (m != NULL)
		CHECK(!mesh_transform(&err, m, sing) && err.code == R3D_EINVAL);
	mesh_destroy(m);
}

static long file_size(const char *path)
{
	FILE *f = fopen(path, "rb");
	long n;

	if (f == NULL)
		return -1;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fclose(f);
	return n;
}

static void test_writers(void)
{
	struct solid s = {0, {10.2, 9.7, 8.9}, {6, 5, 4}};
	size_t nx = 21, ny = 20, nz = 18;
	uint8_t *v = raster_u8(&s, nx, ny, nz);
	struct mesh *a = iso(v, MESH_SCALAR_U8, nx, ny, nz, 0.5, 1);
	struct mesh *b = iso(v, MESH_SCALAR_U8, 3, 3, 3, 0.5, 1);
	struct r3d_err err = {0};
	char dir[] = "/tmp/r3d_mesh_test_XXXXXX", stl[64], obj[64], mtl[64], line[256];

	CHECK(a != NULL && b != NULL && mkdtemp(dir) != NULL);
	if (a == NULL || b == NULL)
		goto out;
	snprintf(stl, sizeof(stl), "%s/a.stl", dir);
	snprintf(obj, sizeof(obj), "%s/model.obj", dir);
	snprintf(mtl, sizeof(mtl), "%s/model.mtl", dir);

	CHECK(mesh_stl_write(&err, stl, a, "bone"));
	CHECK(file_size(stl) == 84 + 50 * (long)a->ntri);
	FILE *f = fopen(stl, "rb");
	unsigned char head[84 + 50];
	CHECK(f != NULL && fread(head, 1, sizeof(head), f) == sizeof(head));
	if (f != NULL)
		fclose(f);
	CHECK(memcmp(head, "solid", 5) != 0);
	CHECK((head[80] | head[81] << 8 | head[82] << 16 | (uint32_t)head[83] << 24) == a->ntri);
	float first[12];
	memcpy(first, head + 84, sizeof(first)); /* little-endian host */
	for (int d = 0; d < 3; d++)
		CHECK(first[3 + d] == a->xyz[3 * (size_t)a->tri[0] + d]);
	CHECK(mesh_stl_write(&err, stl, a, "cortical bone (site)"));   /* a label, spaces and all */
	CHECK(!mesh_stl_write(&err, stl, a, "bad\tname") && err.code == R3D_EINVAL);
	CHECK(!mesh_stl_write(&err, stl, a, "") && err.code == R3D_EINVAL);

	struct mesh_obj_part parts[2] = {
		{"bone", a, {0.9f, 0.85f, 0.7f}},
		{"skin", b, {0.8f, 0.6f, 0.5f}},
	};
	CHECK(mesh_obj_write(&err, obj, mtl, parts, 2));
	f = fopen(obj, "r");
	size_t nv = 0, nf = 0, no = 0, maxidx = 0;
	bool mtllib = false;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		unsigned long i0, i1, i2;
		nv += line[0] == 'v' && line[1] == ' ';
		no += line[0] == 'o' && line[1] == ' ';
		mtllib = mtllib || strcmp(line, "mtllib model.mtl\n") == 0;
		if (sscanf(line, "f %lu %lu %lu", &i0, &i1, &i2) == 3) {
			nf++;
			maxidx = i0 > maxidx ? i0 : maxidx;
		}
	}
	if (f != NULL)
		fclose(f);
	CHECK(mtllib);
	CHECK(no == 2);
	CHECK(nv == a->nvert + b->nvert);
	CHECK(nf == a->ntri + b->ntri);
	CHECK(maxidx <= nv);
	f = fopen(mtl, "r");
	int nmtl = 0;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		nmtl += strncmp(line, "newmtl ", 7) == 0;
	if (f != NULL)
		fclose(f);
	CHECK(nmtl == 2);
	parts[1].name = "bone";
	CHECK(!mesh_obj_write(&err, obj, mtl, parts, 2) && err.code == R3D_EINVAL);
	unlink(stl);
	unlink(obj);
	unlink(mtl);
	rmdir(dir);
out:
	mesh_destroy(a);
	mesh_destroy(b);
	free(v);
}


/* An octahedron with a zero-area triangle: vertex r sits on edge p-q and
 * the sliver (p, q, r) closes the gap. mesh_flip_slivers() must remove it
 * and keep the solid: closed, 2-manifold, Euler 2, volume 4/3. */
static void test_slivers(void)
{
	static const float xyz[] = {
		1, 0, 0,  -1, 0, 0,  0, 1, 0,  0, -1, 0,  0, 0, 1,  0, 0, -1,
		0.5f, 0.5f, 0,   /* 6: r, the midpoint of edge 0-2 */
	};
	/* Octahedron faces, outward (counter-clockwise seen from outside). The
	 * face (0, 2, 4) is split at r into (0, 6, 4) and (6, 2, 4); the sliver
	 * (2, 6, 0) fills the slit between r and edge 0-2, whose other side is
	 * the face (2, 0, 5). */
	static const uint32_t tri[] = {
		0, 6, 4,  6, 2, 4,  2, 1, 4,  1, 3, 4,  3, 0, 4,
		2, 0, 5,  1, 2, 5,  3, 1, 5,  0, 3, 5,
		2, 6, 0,
	};
	struct r3d_err err;
	struct mesh_stats st;
	size_t flipped = 0, left = 0;
	struct mesh *m = mesh_create(&err, 7, 10);

	CHECK(m != NULL);
	if (m == NULL)
		return;
	memcpy(m->xyz, xyz, sizeof(xyz));
	memcpy(m->tri, tri, sizeof(tri));
	CHECK(mesh_check(&err, m, &st));
	CHECK(st.zero_area_tri == 1 && st.closed && st.manifold);
	CHECK(mesh_count_slivers(m) == 1);
	CHECK(mesh_flip_slivers(&err, m, &flipped, &left));
	CHECK(flipped == 1 && left == 0);
	CHECK(mesh_check(&err, m, &st));
	CHECK(st.zero_area_tri == 0 && st.closed && st.manifold && st.euler == 2);
	CHECK_NEAR(st.volume, 4.0 / 3.0, 1e-6);
	mesh_destroy(m);
}

/* The sliver no flip can fix, as decimation left it on a pancreas CT's skin:
 * face (0, 2, 4) of an octahedron replaced by a fold around q = 7, a
 * valence-3 vertex on the line through 0 and 2 beyond 2: the sliver
 * (0, 2, 7), the big triangle (0, 7, 4) and the fold (2, 4, 7) back over
 * it. The flip across 0-7 would make edge 2-4, which exists; collapsing the
 * apex 2 would move a vertex of the solid. Collapsing 7 into 2 restores the
 * octahedron exactly: volume 4/3. */
static void test_sliver_fold(void)
{
	static const float xyz[] = {
		1, 0, 0,  -1, 0, 0,  0, 1, 0,  0, -1, 0,  0, 0, 1,  0, 0, -1,
		0, 0, 0,      /* 6: unused */
		-1, 2, 0,     /* 7: q = 2 * v2 - v0 */
	};
	static const uint32_t tri[] = {
		0, 2, 7,  2, 4, 7,  0, 7, 4,
		2, 1, 4,  1, 3, 4,  3, 0, 4,
		2, 0, 5,  1, 2, 5,  3, 1, 5,  0, 3, 5,
	};
	struct r3d_err err;
	struct mesh_stats st;
	size_t flipped = 0, left = 0;
	struct mesh *m = mesh_create(&err, 8, 10);

	CHECK(m != NULL);
	if (m == NULL)
		return;
	memcpy(m->xyz, xyz, sizeof(xyz));
	memcpy(m->tri, tri, sizeof(tri));
	CHECK(mesh_check(&err, m, &st));
	CHECK(st.zero_area_tri == 1 && st.closed && st.manifold);
	CHECK_NEAR(st.volume, 4.0 / 3.0, 1e-6);
	CHECK(mesh_flip_slivers(&err, m, &flipped, &left));
	CHECK(flipped == 1 && left == 0);
	CHECK(mesh_check(&err, m, &st));
	CHECK(st.zero_area_tri == 0 && st.closed && st.manifold && st.euler == 2);
	CHECK(m->ntri == 8);
	CHECK_NEAR(st.volume, 4.0 / 3.0, 1e-6);
	mesh_destroy(m);
}

/* Planes that are parallel but unevenly spaced (a Segmentation's frames):
 * a 3x3x3 block meshed on planes at S = 0, 1, 3, 6, 10 mm. Evenly spaced
 * planes give exactly what the affine gives; uneven ones put each vertex
 * where its fractional plane index falls between its two planes, so the
 * block spans S 0.5..8 (halfway between planes 0-1 and 3-4); planes in
 * descending order mirror it and the winding follows (volume positive). */
static void test_transform_planes(void)
{
	uint8_t v[5 * 5 * 5] = {0};
	struct mesh_volume vol = {v, MESH_SCALAR_U8, 5, 5, 5, NULL, 0, 0};
	struct r3d_err err;
	struct mesh *a = NULL, *b = NULL;
	const double affine[16] = {1, 0, 0, 10, 0, 1, 0, 20, 0, 0, 2, 30, 0, 0, 0, 1};
	double even[15], uneven[15], down[15];
	const double s_uneven[5] = {0, 1, 3, 6, 10};
	struct mesh_stats st;

	for (int z = 1; z <= 3; z++)
		for (int y = 1; y <= 3; y++)
			for (int x = 1; x <= 3; x++)
				v[x + 5 * (y + 5 * z)] = 1;
	for (int k = 0; k < 5; k++) {
		even[3 * k] = 10;
		even[3 * k + 1] = 20;
		even[3 * k + 2] = 30 + 2.0 * k;
		uneven[3 * k] = 10;
		uneven[3 * k + 1] = 20;
		uneven[3 * k + 2] = s_uneven[k];
		down[3 * k] = 10;
		down[3 * k + 1] = 20;
		down[3 * k + 2] = -s_uneven[k];
	}
	CHECK(mesh_isosurface(&err, &vol, 0.5, 1, test_work, &a));
	CHECK(mesh_isosurface(&err, &vol, 0.5, 1, test_work, &b));
	if (a == NULL || b == NULL)
		goto out;
	CHECK(mesh_transform(&err, a, affine));
	CHECK(mesh_transform_planes(&err, b, affine, even, 5));
	bool same = a->nvert == b->nvert;
	for (size_t i = 0; same && i < 3 * a->nvert; i++)
		same = fabsf(a->xyz[i] - b->xyz[i]) < 1e-5f;
	CHECK(same);
	mesh_destroy(b);
	b = NULL;
	CHECK(mesh_isosurface(&err, &vol, 0.5, 1, test_work, &b));
	CHECK(mesh_transform_planes(&err, b, affine, uneven, 5));
	float lo = INFINITY, hi = -INFINITY;
	for (size_t i = 0; i < b->nvert; i++) {
		lo = fminf(lo, b->xyz[3 * i + 2]);
		hi = fmaxf(hi, b->xyz[3 * i + 2]);
	}
	CHECK_NEAR(lo, 0.5, 1e-6);
	CHECK_NEAR(hi, 8.0, 1e-6);
	CHECK(mesh_check(&err, b, &st) && st.closed && st.manifold && st.volume > 0);
	double up_volume = st.volume;
	mesh_destroy(b);
	b = NULL;
	CHECK(mesh_isosurface(&err, &vol, 0.5, 1, test_work, &b));
	CHECK(mesh_transform_planes(&err, b, affine, down, 5));
	CHECK(mesh_check(&err, b, &st) && st.closed && st.manifold);
	CHECK_NEAR(st.volume, up_volume, 1e-6 * up_volume);
	/* A single plane steps by the affine's third column. */
	CHECK(!mesh_transform_planes(&err, b, affine, NULL, 0));
out:
	mesh_destroy(a);
	mesh_destroy(b);
}

int main(void)
{
	struct r3d_err err = {0};
	int rc;

	test_work = mesh_iso_work_create(&err);
	if (test_work == NULL)
		return 1;
	test_single_voxel();
	test_full_box();
	test_sphere_mask();
	test_ellipsoid_transform();
	test_torus();
	test_hollow();
	test_smooth_quality();
	test_smooth_decimate();
	test_decimate_thin();
	test_decimate_threaded();
	test_build();
	test_noise();
	test_refusals();
	test_writers();
	test_work_reuse();
	test_slivers();
	test_sliver_fold();
	test_transform_planes();
	rc = test_summary();
	mesh_iso_work_destroy(test_work);
	return rc;
}
