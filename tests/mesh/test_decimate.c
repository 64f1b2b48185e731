/*
 * test_decimate.c: unit.decimate (issue 16). Surfaces built to provoke the
 * collapses that break a mesh (one-voxel bridges, two sheets one voxel
 * apart, voxels touching at an edge or a corner, a sponge with 32 handles,
 * thin plates) are meshed from masks and decimated to 5 % of their
 * triangles, with one and two threads; each must reach the budget and stay
 * closed, 2-manifold, consistently oriented, without zero-area triangles,
 * with the Euler characteristic (components and genus) of its analytic
 * truth, checked after welding by position as an STL reader does; and its
 * decimation error must be measured. Single-threaded driver.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/mesh.h"
#include "r3d/test.h"

#define N 64

static uint8_t *vol_new(void)
{
	return calloc((size_t)N * N * N, 1);
}

static void box(uint8_t *v, int x0, int x1, int y0, int y1, int z0, int z1, uint8_t val)
{
	for (int z = z0; z < z1; z++)
		for (int y = y0; y < y1; y++)
			for (int x = x0; x < x1; x++)
				v[(size_t)x + N * ((size_t)y + N * (size_t)z)] = val;
}

/* Meshes v, then decimates to 5 % of the undecimated triangles and checks. */
static void run(const char *name, const uint8_t *v, long euler_truth, bool smooth)
{
	struct r3d_err err = {0};
	struct mesh_volume mv = {v, MESH_SCALAR_U8, N, N, N, NULL, 0, 0};
	struct mesh_build_params p;
	struct mesh_build_times tm;
	struct mesh_stats st0, st;
	struct mesh *m0 = NULL, *m = NULL;

	mesh_build_defaults(&p);
	mesh_build_mask_smoothing(&p);
	p.smooth = smooth;
	p.affine[0] = p.affine[5] = p.affine[10] = 0.8;
	CHECK(mesh_build(&err, &mv, &p, NULL, &m0, &st0, &tm));
	if (m0 == NULL) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		return;
	}
	CHECK(st0.closed && st0.manifold);
	CHECK(st0.euler == euler_truth);
	for (int threads = 1; threads <= 2; threads++) {
		p.threads = threads;
		p.max_tri = st0.ntri / 20;
		CHECK(mesh_build(&err, &mv, &p, NULL, &m, &st, &tm));
		if (m == NULL) {
			fprintf(stderr, "%s: %s\n", name, err.msg);
			break;
		}
		printf("%-22s threads %d: %zu -> %zu triangles (budget %zu), euler %ld -> %ld, "
		       "closed %d manifold %d zero-area %zu, error mean %.4f max %.4f mm, "
		       "%zu collapses refused by the link condition\n",
		       name, threads, st0.ntri, st.ntri, p.max_tri, st0.euler, st.euler, st.closed,
		       st.manifold, st.zero_area_tri, tm.error.mean, tm.error.max,
		       tm.decimate.rejected_link);
		CHECK(st.ntri <= p.max_tri);
		CHECK(tm.decimate.reached);
		CHECK(tm.fallback[0] == '\0');
		CHECK(!tm.undecimated);
		CHECK(st.closed);
		CHECK(st.manifold);
		CHECK(st.nonmanifold_edges == 0 && st.misoriented_edges == 0);
		CHECK(st.zero_area_tri == 0);
		CHECK(st.euler == euler_truth);
		CHECK(st.volume > 0);
		CHECK(tm.decimated && tm.error.samples > 0 && tm.error.max >= tm.error.mean);
		/* Within a couple of voxels of the undecimated surface. */
		CHECK(tm.error.max < 4 * 0.8);
		mesh_destroy(m);
		m = NULL;
	}
	mesh_destroy(m0);
}

int main(void)
{
	uint8_t *v;

	/* A sponge: a 48^3 block with 4 x 4 square tunnels along z and 4 x 4
	 * along x that pass between them: genus 32, Euler 2 - 2 * 32. */
	v = vol_new();
	box(v, 8, 56, 8, 56, 8, 56, 1);
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++) {
			box(v, 12 + 11 * i, 16 + 11 * i, 12 + 11 * j, 15 + 11 * j, 0, N, 0);
			box(v, 0, N, 17 + 11 * j, 20 + 11 * j, 12 + 11 * i, 16 + 11 * i, 0);
		}
	run("sponge (genus 32)", v, 2 - 2 * 32, true);
	free(v);

	/* Two blobs joined by five bridges one voxel thick: genus 4. */
	v = vol_new();
	box(v, 6, 26, 10, 54, 10, 54, 1);
	box(v, 38, 58, 10, 54, 10, 54, 1);
	for (int k = 0; k < 5; k++)
		box(v, 26, 38, 14 + 8 * k, 15 + 8 * k, 30, 31, 1);
	run("one-voxel bridges", v, 2 - 2 * 4, true);
	free(v);

	/* Two slabs one voxel apart, a plate two voxels thick beside them,
	 * and a one-voxel sheet: four spheres. */
	v = vol_new();
	box(v, 4, 60, 4, 60, 4, 20, 1);
	box(v, 4, 60, 4, 60, 21, 36, 1);
	box(v, 4, 60, 4, 60, 40, 42, 1);
	box(v, 4, 60, 4, 60, 46, 47, 1);
	run("sheets a voxel apart", v, 4 * 2, true);
	free(v);

	/* Cubes touching only at an edge and only at a corner: marching
	 * cubes keeps them apart, and so must decimation (four spheres). */
	v = vol_new();
	box(v, 4, 20, 4, 20, 4, 60, 1);
	box(v, 20, 36, 20, 36, 4, 60, 1);
	box(v, 40, 52, 40, 52, 4, 16, 1);
	box(v, 52, 62, 52, 62, 16, 30, 1);
	run("edge and corner contact", v, 4 * 2, true);
	free(v);

	/* The same sponge without smoothing: flat faces, where collapses
	 * make zero-area triangles if nothing stops them. */
	v = vol_new();
	box(v, 8, 56, 8, 56, 8, 56, 1);
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			box(v, 12 + 11 * i, 16 + 11 * i, 12 + 11 * j, 15 + 11 * j, 0, N, 0);
	run("flat sponge (genus 16)", v, 2 - 2 * 16, false);
	free(v);

	return test_summary();
}
