/*
 * test_phantom.c: unit tests of the phantom scene (no DICOM): the analytic
 * volumes against Monte Carlo counts of phantom_shape_contains(), the scene
 * inside the sampled grid for every geometry up to the largest angle, and the
 * rendered voxels against point membership away from surfaces.
 * Single-threaded test executable.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/phantom.h"
#include "r3d/test.h"

#define MC_SAMPLES 400000

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static double rng_unit(void)
{
	/* xorshift64*: deterministic, good enough for Monte Carlo volumes. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static void request_default(struct phantom_request *req, enum phantom_geometry g, double angle)
{
	memset(req, 0, sizeof(*req));
	req->columns = 64;
	req->rows = 72;
	req->slices = 50;
	req->spacing[0] = 1.2;
	req->spacing[1] = 1.0;
	req->spacing[2] = 1.6;
	req->geometry = g;
	req->angle_deg = angle;
	req->center[0] = 12.5;
	req->center[1] = -20.0;
	req->center[2] = 35.0;
}

/* Bounding half-extent of a shape along each LPS axis. */
static void shape_extent(const struct phantom_shape *s, double e[3])
{
	for (int i = 0; i < 3; i++) {
		if (s->kind == PHANTOM_CYLINDER)
			e[i] = s->half_length * fabs(s->axis[i]) +
			       s->radii[0] * sqrt(fmax(0.0, 1.0 - s->axis[i] * s->axis[i]));
		else
			e[i] = s->radii[i];
	}
}

static void test_volumes(void)
{
	struct phantom_request req;
	struct phantom ph;
	struct r3d_err err = {0};

	request_default(&req, PHANTOM_AXIAL, 0);
	CHECK(phantom_init(&err, &ph, &req));
	CHECK(ph.nshapes >= 10);
	for (size_t i = 0; i < ph.nshapes; i++) {
		const struct phantom_shape *s = &ph.shapes[i];
		double e[3], box = 1, tv, tc[3], m[3] = {0, 0, 0};
		size_t in = 0;
		shape_extent(s, e);
		for (int a = 0; a < 3; a++)
			box *= 2 * e[a];
		for (size_t k = 0; k < MC_SAMPLES; k++) {
			double p[3];
			bool inside;
			for (int a = 0; a < 3; a++)
				p[a] = s->center[a] + (2 * rng_unit() - 1) * e[a];
			inside = phantom_shape_contains(s, p);
			for (size_t j = 0; inside && j < ph.nshapes; j++)
				if (ph.shapes[j].cut_from == (int)i && phantom_shape_contains(&ph.shapes[j], p))
					inside = false;
			if (!inside)
				continue;
			in++;
			for (int a = 0; a < 3; a++)
				m[a] += p[a];
		}
		phantom_shape_truth(&ph, i, &tv, tc);
		double mv = box * (double)in / MC_SAMPLES;
		/* Standard error of the count, with a floor for the thin shell. */
		double tol = 4.0 * box * sqrt((double)in) / MC_SAMPLES + 0.002 * tv;
		printf("%-18s volume %.1f mm3, Monte Carlo %.1f (tol %.1f)\n", s->name, tv, mv, tol);
		CHECK_NEAR(mv, tv, tol);
		for (int a = 0; a < 3; a++)
			CHECK_NEAR(m[a] / (double)in, tc[a], 0.02 * e[a] + 0.05);
	}
}

/* Every shape lies inside the sampled grid, whatever the geometry. */
static void test_fits(void)
{
	static const enum phantom_geometry geoms[] = {PHANTOM_AXIAL, PHANTOM_OBLIQUE, PHANTOM_TILT};
	struct phantom_request req;
	struct phantom ph;
	struct r3d_err err = {0};

	for (size_t g = 0; g < 3; g++) {
		for (double angle = 0; angle <= PHANTOM_MAX_ANGLE_DEG; angle += 15) {
			request_default(&req, geoms[g], angle);
			CHECK(phantom_init(&err, &ph, &req));
			/* Grid index of an LPS point: solve p - origin = i A + j B + k C. */
			double a[3], b[3], c[3];
			for (int i = 0; i < 3; i++) {
				a[i] = req.spacing[0] * ph.row_dir[i];
				b[i] = req.spacing[1] * ph.col_dir[i];
				c[i] = ph.step[i];
			}
			double det = a[0] * (b[1] * c[2] - b[2] * c[1]) - b[0] * (a[1] * c[2] - a[2] * c[1]) +
				     c[0] * (a[1] * b[2] - a[2] * b[1]);
			size_t outside = 0;
			for (size_t si = 0; si < ph.nshapes; si++) {
				const struct phantom_shape *s = &ph.shapes[si];
				for (size_t k = 0; k < 20000; k++) {
					double p[3], d[3], e[3];
					shape_extent(s, e);
					for (int i = 0; i < 3; i++)
						p[i] = s->center[i] + (2 * rng_unit() - 1) * e[i];
					if (!phantom_shape_contains(s, p))
						continue;
					for (int i = 0; i < 3; i++)
						d[i] = p[i] - ph.origin[i];
					/* Cramer's rule */
					double fi = (d[0] * (b[1] * c[2] - b[2] * c[1]) - b[0] * (d[1] * c[2] - d[2] * c[1]) +
						     c[0] * (d[1] * b[2] - d[2] * b[1])) / det;
					double fj = (a[0] * (d[1] * c[2] - d[2] * c[1]) - d[0] * (a[1] * c[2] - a[2] * c[1]) +
						     c[0] * (a[1] * d[2] - a[2] * d[1])) / det;
					double fk = (a[0] * (b[1] * d[2] - b[2] * d[1]) - b[0] * (a[1] * d[2] - a[2] * d[1]) +
						     d[0] * (a[1] * b[2] - a[2] * b[1])) / det;
					if (fi < 0 || fj < 0 || fk < 0 || fi > req.columns - 1 ||
					    fj > req.rows - 1 || fk > req.slices - 1)
						outside++;
				}
			}
			if (outside > 0)
				printf("geometry %zu angle %g: %zu points outside the grid\n", g, angle, outside);
			CHECK(outside == 0);
		}
	}
}

/* +1 when the ball of radius d around p lies inside s, -1 when it lies
 * outside, 0 when it may cross the surface: the shape grown or shrunk by d
 * (semi-axes, half sizes, radius and half length +-d) bounds its parallel body. */
static int shape_classify(const struct phantom_shape *s, const double p[3], double d)
{
	struct phantom_shape grown = *s, shrunk = *s;

	for (int i = 0; i < 3; i++) {
		grown.radii[i] += d;
		shrunk.radii[i] -= d;
	}
	grown.half_length += d;
	shrunk.half_length -= d;
	if (!phantom_shape_contains(&grown, p))
		return -1;
	if (shrunk.radii[0] > 0 && shrunk.half_length >= 0 &&
	    (s->kind == PHANTOM_CYLINDER || (shrunk.radii[1] > 0 && shrunk.radii[2] > 0)) &&
	    phantom_shape_contains(&shrunk, p))
		return 1;
	return 0;
}

static void test_render(enum phantom_geometry g)
{
	struct phantom_request req;
	struct phantom ph;
	struct r3d_err err = {0};
	int16_t *hu;
	size_t checked = 0, wrong = 0, partial = 0;
	double reach = 0;

	request_default(&req, g, 20);
	CHECK(phantom_init(&err, &ph, &req));
	/* Half the longest diagonal of the voxel parallelepiped. */
	for (int c = 0; c < 4; c++) {
		double v[3], l = 0;
		for (int a = 0; a < 3; a++) {
			v[a] = 0.5 * (req.spacing[0] * ph.row_dir[a] * ((c & 1) ? -1 : 1) +
				      req.spacing[1] * ph.col_dir[a] * ((c & 2) ? -1 : 1) + ph.step[a]);
			l += v[a] * v[a];
		}
		reach = sqrt(l) > reach ? sqrt(l) : reach;
	}
	hu = malloc((size_t)req.rows * req.columns * sizeof(*hu));
	CHECK(hu != NULL);
	if (hu == NULL)
		return;
	for (uint32_t k = 0; k < req.slices; k += 3) {
		phantom_render_slice(&ph, k, hu);
		for (uint32_t j = 0; j < req.rows; j++)
			for (uint32_t i = 0; i < req.columns; i++) {
				double p[3];
				int top = -1;
				bool uniform = true;
				for (int a = 0; a < 3; a++)
					p[a] = ph.origin[a] + (double)k * ph.step[a] +
					       (double)j * req.spacing[1] * ph.col_dir[a] +
					       (double)i * req.spacing[0] * ph.row_dir[a];
				/* Uniform voxel: no surface within reach of its centre. */
				for (size_t si = 0; si < ph.nshapes && uniform; si++) {
					int c = shape_classify(&ph.shapes[si], p, reach);
					if (c == 0)
						uniform = false;
					else if (c > 0)
						top = (int)si;
				}
				int16_t v = hu[(size_t)j * req.columns + i];
				if (!uniform) {
					/* A voxel on a surface holds a value between its neighbours'. */
					if (v < PHANTOM_HU_AIR || v > 1000)
						wrong++;
					partial++;
					continue;
				}
				double expect = top < 0 ? PHANTOM_HU_AIR : ph.shapes[top].hu;
				checked++;
				if (fabs(v - expect) > 0.5) {
					if (wrong < 5)
						printf("  voxel %u,%u,%u: %d, expected %g (%s)\n", i, j, k, v,
						       expect, top < 0 ? "air" : ph.shapes[top].name);
					wrong++;
				}
			}
	}
	printf("render geometry %d: %zu uniform voxels checked, %zu partial, %zu wrong\n", (int)g,
	       checked, partial, wrong);
	CHECK(checked > 10000);
	CHECK(partial > 1000);
	CHECK(wrong == 0);
	free(hu);
}

static void test_refusals(void)
{
	struct phantom_request req;
	struct phantom ph;
	struct r3d_err err = {0};

	request_default(&req, PHANTOM_AXIAL, 0);
	req.slices = 1;
	CHECK(!phantom_init(&err, &ph, &req) && err.code == R3D_EINVAL);
	request_default(&req, PHANTOM_AXIAL, 0);
	req.columns = PHANTOM_MAX_DIM + 1;
	CHECK(!phantom_init(&err, &ph, &req));
	request_default(&req, PHANTOM_TILT, PHANTOM_MAX_ANGLE_DEG + 1);
	CHECK(!phantom_init(&err, &ph, &req));
	request_default(&req, PHANTOM_AXIAL, 0);
	req.spacing[2] = 0;
	CHECK(!phantom_init(&err, &ph, &req));
}

int main(void)
{
	test_volumes();
	test_fits();
	test_render(PHANTOM_AXIAL);
	test_render(PHANTOM_OBLIQUE);
	test_render(PHANTOM_TILT);
	test_refusals();
	return test_summary();
}
