/*
 * test_segimport.c: unit tests of the import stage (segimport.h) on segobj
 * records built by hand. The truth is geometric and independent of the code
 * under test: every nonzero SEG pixel must land, with its value, on the
 * voxel whose centre is that pixel's own patient position (and nothing
 * else may be set); every RT voxel must be set exactly when its centre,
 * taken from plane_origin, row_dir and col_dir, is inside an odd number of
 * the contours on its plane by a plain crossing-number test in millimetres;
 * areas against the analytic shapes. Single-threaded.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/segimport.h"
#include "r3d/test.h"

#define PI 3.14159265358979323846

static double dot3(const double a[3], const double b[3])
{
	return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

/* Rotation of angle t about the unit axis k: column c of R is R e_c. */
static void rotation(const double axis[3], double t, double R[3][3])
{
	double n = sqrt(dot3(axis, axis)), k[3] = {axis[0] / n, axis[1] / n, axis[2] / n};
	double c = cos(t), s = sin(t), v = 1.0 - c;

	R[0][0] = c + k[0] * k[0] * v;
	R[0][1] = k[0] * k[1] * v - k[2] * s;
	R[0][2] = k[0] * k[2] * v + k[1] * s;
	R[1][0] = k[1] * k[0] * v + k[2] * s;
	R[1][1] = c + k[1] * k[1] * v;
	R[1][2] = k[1] * k[2] * v - k[0] * s;
	R[2][0] = k[2] * k[0] * v - k[1] * s;
	R[2][1] = k[2] * k[1] * v + k[0] * s;
	R[2][2] = c + k[2] * k[2] * v;
}

static void rot_col(double R[3][3], int c, double out[3])
{
	for (int a = 0; a < 3; a++)
		out[a] = R[a][c];
}

/* p = o + x * e1 + y * e2 + z * e3 */
static void combo(const double o[3], double x, const double e1[3], double y, const double e2[3],
		  double z, const double e3[3], double p[3])
{
	for (int a = 0; a < 3; a++)
		p[a] = o[a] + x * e1[a] + y * e2[a] + z * e3[a];
}

static bool has(const struct r3d_err *err, const char *s)
{
	return strstr(err->msg, s) != NULL;
}

static size_t count_nonzero(const struct segimport_grid *g)
{
	size_t n = 0;

	for (size_t m = 0; m < g->nx * g->ny * g->nz; m++)
		n += g->field[m] != 0;
	return n;
}

/* Every voxel on the outer layer of the grid is 0. */
static bool border_empty(const struct segimport_grid *g)
{
	for (size_t k = 0; k < g->nz; k++)
		for (size_t j = 0; j < g->ny; j++)
			for (size_t i = 0; i < g->nx; i++) {
				bool edge = i == 0 || j == 0 || k == 0 || i + 1 == g->nx ||
					    j + 1 == g->ny || k + 1 == g->nz;
				if (edge && g->field[i + g->nx * (j + g->ny * k)] != 0)
					return false;
			}
	return true;
}

/* Each face layer one inside the border has a set voxel (the crop is tight). */
static bool crop_tight(const struct segimport_grid *g)
{
	size_t lo[3] = {SIZE_MAX, SIZE_MAX, SIZE_MAX}, hi[3] = {0, 0, 0};

	for (size_t k = 0; k < g->nz; k++)
		for (size_t j = 0; j < g->ny; j++)
			for (size_t i = 0; i < g->nx; i++) {
				if (g->field[i + g->nx * (j + g->ny * k)] == 0)
					continue;
				size_t ix[3] = {i, j, k};
				for (int a = 0; a < 3; a++) {
					lo[a] = ix[a] < lo[a] ? ix[a] : lo[a];
					hi[a] = ix[a] > hi[a] ? ix[a] : hi[a];
				}
			}
	return lo[0] == 1 && lo[1] == 1 && lo[2] == 1 && hi[0] == g->nx - 2 && hi[1] == g->ny - 2 &&
	       hi[2] == g->nz - 2;
}

static bool near3(const double a[3], const double b[3], double tol)
{
	return fabs(a[0] - b[0]) <= tol && fabs(a[1] - b[1]) <= tol && fabs(a[2] - b[2]) <= tol;
}

/* ================================================================== */
/* SEG records                                                         */
/* ================================================================== */

#define SB_MAX_FRAMES 64
#define SB_MAX_PIX 64

struct segbuild {
	struct segobj s;
	struct segobj_segment seg[8];
	struct segobj_frame fr[SB_MAX_FRAMES];
	uint8_t pix[SB_MAX_FRAMES][SB_MAX_PIX];
};

static struct segbuild SB;

static void sb_init(enum segobj_kind kind, uint32_t rows, uint32_t cols, const double row[3],
		    const double col[3], double ps_rows, double ps_cols)
{
	memset(&SB, 0, sizeof(SB));
	SB.s.kind = kind;
	SB.s.rows = rows;
	SB.s.columns = cols;
	memcpy(SB.s.orientation, row, 3 * sizeof(double));
	memcpy(SB.s.orientation + 3, col, 3 * sizeof(double));
	SB.s.pixel_spacing[0] = ps_rows;
	SB.s.pixel_spacing[1] = ps_cols;
	SB.s.segments = SB.seg;
	SB.s.frames = SB.fr;
	SB.s.max_fractional = 255;
}

static void sb_segment(unsigned number)
{
	SB.seg[SB.s.nsegments++].number = number;
}

static uint8_t *sb_frame(unsigned segment, const double pos[3])
{
	struct segobj_frame *f = &SB.fr[SB.s.nframes];

	f->segment = segment;
	memcpy(f->position, pos, sizeof(f->position));
	f->has_position = true;
	f->pixels = SB.pix[SB.s.nframes];
	SB.s.nframes++;
	return SB.pix[SB.s.nframes - 1];
}

/* The voxel value a stored pixel should have. */
static unsigned expect_value(const struct segobj *s, unsigned segment, uint8_t v)
{
	if (s->kind == SEGOBJ_SEG_FRACTIONAL)
		return (unsigned)lround(255.0 * v / s->max_fractional);
	if (s->kind == SEGOBJ_SEG_LABELMAP)
		return v == segment;
	return v != 0;
}

/* Every pixel of the segment's frames is found at its own patient position
 * with its value; the grid holds no other nonzero voxel. Returns the number
 * of disagreements. */
static size_t seg_mismatches(const struct segobj *s, unsigned segment,
			     const struct segimport_grid *g)
{
	size_t bad = 0, nonzero = 0;
	const double *row = s->orientation, *col = s->orientation + 3;
	double n[3] = {row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2],
		       row[0] * col[1] - row[1] * col[0]};

	for (size_t f = 0; f < s->nframes; f++) {
		const struct segobj_frame *fr = &s->frames[f];
		if (s->kind != SEGOBJ_SEG_LABELMAP && fr->segment != segment)
			continue;
		for (uint32_t r = 0; r < s->rows; r++)
			for (uint32_t c = 0; c < s->columns; c++) {
				unsigned want = expect_value(s, segment, fr->pixels[r * s->columns + c]);
				double X[3];
				combo(fr->position, c * s->pixel_spacing[1], row, r * s->pixel_spacing[0],
				      col, 0.0, n, X);
				nonzero += want != 0;
				/* the voxel whose centre is X */
				long hit = -1;
				for (size_t k = 0; k < g->nz; k++) {
					const double *o = g->plane_origin + 3 * k;
					double d[3] = {X[0] - o[0], X[1] - o[1], X[2] - o[2]};
					if (fabs(dot3(d, g->normal)) > 0.005)
						continue;
					double fi = dot3(d, g->row_dir) / g->dx, fj = dot3(d, g->col_dir) / g->dy;
					long i = lround(fi), j = lround(fj);
					if (fabs(fi - i) > 1e-6 || fabs(fj - j) > 1e-6) {
						bad++; /* between voxel centres */
						continue;
					}
					if (i >= 0 && j >= 0 && (size_t)i < g->nx && (size_t)j < g->ny)
						hit = i + (long)g->nx * (j + (long)g->ny * (long)k);
				}
				unsigned got = hit < 0 ? 0 : g->field[hit];
				if (got != want)
					bad++;
			}
	}
	if (g->field != NULL && count_nonzero(g) != nonzero)
		bad++;
	return bad;
}

/* Oblique orientation, uneven planes given out of order, a segment with an
 * empty frame and no frame on one plane, a second segment overlapping it. */
static void test_seg_oblique(void)
{
	double R[3][3], row[3], col[3], nrm[3];
	const double axis[3] = {1, 2, 3}, O[3] = {-100.25, 30.5, 12.75};
	const double t[5] = {0.0, 1.0, 2.5, 3.0, 5.5};
	double pos[5][3];
	struct segimport_grid g;
	struct r3d_err err = {0};

	rotation(axis, 0.7, R);
	rot_col(R, 0, row);
	rot_col(R, 1, col);
	rot_col(R, 2, nrm);
	sb_init(SEGOBJ_SEG_BINARY, 6, 7, row, col, 0.8, 0.6);
	sb_segment(1);
	sb_segment(2);
	for (int k = 0; k < 5; k++)
		combo(O, 0, row, 0, col, t[k], nrm, pos[k]);
	/* frames out of order: segment 2 everywhere, segment 1 on 0..3 (0 empty) */
	uint8_t *s2p4 = sb_frame(2, pos[4]);
	uint8_t *s1p2 = sb_frame(1, pos[2]);
	uint8_t *s1p0 = sb_frame(1, pos[0]);
	(void)sb_frame(2, pos[0]);
	uint8_t *s1p3 = sb_frame(1, pos[3]);
	uint8_t *s2p3 = sb_frame(2, pos[3]);
	uint8_t *s1p1 = sb_frame(1, pos[1]);
	(void)sb_frame(2, pos[1]);
	(void)sb_frame(2, pos[2]);
	(void)s1p0;
	s1p1[2 * 7 + 3] = 1;
	s1p2[2 * 7 + 3] = s1p2[2 * 7 + 4] = s1p2[3 * 7 + 3] = s1p2[3 * 7 + 4] = 1;
	s1p3[4 * 7 + 1] = 1;
	s2p3[0] = 1;
	s2p3[4 * 7 + 1] = 1; /* the same voxel as segment 1's on plane 3 */
	s2p4[5 * 7 + 6] = 1;

	CHECK(segimport_seg_grid(&err, &SB.s, 1, &g));
	/* columns 1..4, rows 2..4, planes 1..3, plus one on every side */
	CHECK(g.nx == 6 && g.ny == 5 && g.nz == 5);
	CHECK(g.voxels == 6);
	CHECK(!g.fractional);
	CHECK_NEAR(g.dx, 0.6, 1e-15);
	CHECK_NEAR(g.dy, 0.8, 1e-15);
	CHECK(near3(g.normal, nrm, 1e-12));
	CHECK(near3(g.row_dir, row, 1e-12));
	CHECK(seg_mismatches(&SB.s, 1, &g) == 0);
	CHECK(border_empty(&g));
	CHECK(crop_tight(&g));
	for (size_t k = 0; k < 5; k++) {
		double want[3];
		combo(O, 0 * 0.6, row, 1 * 0.8, col, t[k], nrm, want);
		CHECK(near3(g.plane_origin + 3 * k, want, 1e-9));
	}
	segimport_grid_free(&g);
	CHECK(g.field == NULL && g.plane_origin == NULL && g.nx == 0);

	CHECK(segimport_seg_grid(&err, &SB.s, 2, &g));
	/* columns 0..6, rows 0..5, planes 3..4: planes 2..5, 5 padding */
	CHECK(g.nx == 9 && g.ny == 8 && g.nz == 4);
	CHECK(g.voxels == 3);
	CHECK(seg_mismatches(&SB.s, 2, &g) == 0);
	CHECK(border_empty(&g));
	{
		double want[3];
		combo(O, -0.6, row, -0.8, col, t[2], nrm, want);
		CHECK(near3(g.plane_origin, want, 1e-9));
		/* beyond the last plane by the last step (5.5 - 3.0) */
		combo(O, -0.6, row, -0.8, col, 5.5 + 2.5, nrm, want);
		CHECK(near3(g.plane_origin + 9, want, 1e-9));
	}
	segimport_grid_free(&g);
}

/* Frames tiled in one plane (whole pixels apart) and planes shifted in-plane
 * by a fraction of a pixel (a sheared stack): every pixel at its place. */
static void test_seg_tiles_and_shear(void)
{
	const double row[3] = {1, 0, 0}, col[3] = {0, 1, 0}, n[3] = {0, 0, 1};
	const double O[3] = {10.0, 20.0, 30.0};
	double p[3];
	struct segimport_grid g;
	struct r3d_err err = {0};

	sb_init(SEGOBJ_SEG_BINARY, 2, 3, row, col, 0.5, 0.25);
	sb_segment(4);
	combo(O, 0, row, 0, col, 0, n, p);
	uint8_t *a = sb_frame(4, p);
	combo(O, 3 * 0.25, row, 2 * 0.5, col, 0, n, p); /* tile: 3 columns right, 2 rows down */
	uint8_t *b = sb_frame(4, p);
	combo(O, 0.3 * 0.25, row, 0, col, 1.5, n, p);  /* 0.3 pixel shear */
	uint8_t *c = sb_frame(4, p);
	combo(O, 0.7 * 0.25, row, -0.2 * 0.5, col, 2.5, n, p); /* 0.7 and -0.2 pixel */
	uint8_t *d = sb_frame(4, p);
	a[0] = 1;
	b[1 * 3 + 2] = 1;
	c[0] = c[4] = 1;
	d[5] = 1;

	CHECK(segimport_seg_grid(&err, &SB.s, 4, &g));
	CHECK(g.voxels == 5);
	CHECK(seg_mismatches(&SB.s, 4, &g) == 0);
	CHECK(border_empty(&g));
	/* the planes keep their fractional shift */
	CHECK(g.nz == 5);
	if (g.nz == 5) {
		double d1[3], d2[3];
		for (int x = 0; x < 3; x++) {
			d1[x] = g.plane_origin[6 + x] - g.plane_origin[3 + x];
			d2[x] = g.plane_origin[9 + x] - g.plane_origin[3 + x];
		}
		double w1[3] = {0.3 * 0.25, 0, 1.5}, w2[3] = {(0.7 - 1.0) * 0.25, -0.2 * 0.5, 2.5};
		CHECK(near3(d1, w1, 1e-12));
		/* 0.7 pixel is put on the next whole pixel and keeps -0.3 */
		CHECK(near3(d2, w2, 1e-12));
	}
	segimport_grid_free(&g);
}

static void test_seg_fractional(void)
{
	const double row[3] = {0, 1, 0}, col[3] = {0, 0, -1}, n[3] = {-1, 0, 0};
	const double O[3] = {5.0, -3.0, 7.0};
	double p[3];
	struct segimport_grid g;
	struct r3d_err err = {0};

	sb_init(SEGOBJ_SEG_FRACTIONAL, 2, 3, row, col, 1.0, 1.0);
	SB.s.max_fractional = 200;
	sb_segment(1);
	combo(O, 0, row, 0, col, 0, n, p);
	uint8_t *a = sb_frame(1, p);
	combo(O, 0, row, 0, col, 2.0, n, p);
	uint8_t *b = sb_frame(1, p);
	/* 255 * v / 200: 1 -> 1.275, 100 -> 127.5, 101 -> 128.8, 200 -> 255, 57 -> 72.7 */
	a[0] = 1;
	a[1] = 100;
	a[2] = 101;
	b[3] = 200;
	b[4] = 57;

	CHECK(segimport_seg_grid(&err, &SB.s, 1, &g));
	CHECK(g.fractional);
	CHECK(g.voxels == 3); /* 128, 129, 255 */
	CHECK(seg_mismatches(&SB.s, 1, &g) == 0);
	CHECK(g.nx == 5 && g.ny == 4 && g.nz == 4);
	if (g.nx == 5 && g.ny == 4 && g.nz == 4) {
		/* b is 2 mm further along the normal (-x): the upper plane. Frame
		 * a's pixel (0, c) is voxel (1 + c, 1, 1), b's (1, c) (1 + c, 2, 2). */
		CHECK(g.field[1 + 5 * (1 + 4 * 1)] == 1);
		CHECK(g.field[2 + 5 * (1 + 4 * 1)] == 128);
		CHECK(g.field[3 + 5 * (1 + 4 * 1)] == 129);
		CHECK(g.field[1 + 5 * (2 + 4 * 2)] == 255);
		CHECK(g.field[2 + 5 * (2 + 4 * 2)] == 73);
	}
	segimport_grid_free(&g);

	/* a second frame of the segment on a's place: the larger value wins */
	uint8_t *a2 = sb_frame(1, SB.fr[0].position);
	a2[0] = 50;  /* 63.75 -> 64 > 1 */
	a2[1] = 10;  /* 12.75 -> 13 < 128 */
	CHECK(segimport_seg_grid(&err, &SB.s, 1, &g));
	if (g.nx == 5 && g.ny == 4 && g.nz == 4) {
		CHECK(g.field[1 + 5 * (1 + 4 * 1)] == 64);
		CHECK(g.field[2 + 5 * (1 + 4 * 1)] == 128);
	}
	segimport_grid_free(&g);
	SB.s.nframes--;

	b[5] = 201;
	CHECK(!segimport_seg_grid(&err, &SB.s, 1, &g));
	CHECK(err.code == R3D_EINVAL && has(&err, "above the Maximum Fractional Value"));
	CHECK(g.field == NULL);
}

static void test_seg_labelmap(void)
{
	const double row[3] = {1, 0, 0}, col[3] = {0, 1, 0}, n[3] = {0, 0, 1};
	const double O[3] = {0.0, 0.0, -50.0};
	double p[3];
	struct segimport_grid g;
	struct r3d_err err = {0};

	sb_init(SEGOBJ_SEG_LABELMAP, 3, 3, row, col, 0.7, 0.7);
	sb_segment(1);
	sb_segment(2);
	sb_segment(3);
	for (int k = 0; k < 3; k++) {
		combo(O, 0, row, 0, col, 1.25 * k, n, p);
		uint8_t *px = sb_frame(0, p);
		for (int m = 0; m < 9; m++)
			px[m] = (uint8_t)((m + k) % 3); /* 0, 1, 2 */
	}
	for (unsigned s = 1; s <= 2; s++) {
		CHECK(segimport_seg_grid(&err, &SB.s, s, &g));
		CHECK(g.voxels == 9);
		CHECK(!g.fractional);
		CHECK(seg_mismatches(&SB.s, s, &g) == 0);
		CHECK(border_empty(&g));
		segimport_grid_free(&g);
	}
	/* a segment that appears nowhere in the label map: empty, not an error */
	CHECK(segimport_seg_grid(&err, &SB.s, 3, &g));
	CHECK(g.voxels == 0 && g.nx == 0 && g.field == NULL);
	segimport_grid_free(&g);
	CHECK(!segimport_seg_grid(&err, &SB.s, 9, &g));
	CHECK(has(&err, "no segment 9"));
}

static void test_seg_single_plane(void)
{
	const double row[3] = {1, 0, 0}, col[3] = {0, 1, 0};
	const double O[3] = {1.0, 2.0, 3.0};
	struct segimport_grid g;
	struct r3d_err err = {0};

	sb_init(SEGOBJ_SEG_BINARY, 1, 1, row, col, 0.9, 0.6);
	sb_segment(1);
	sb_frame(1, O)[0] = 1;
	SB.s.slice_thickness = 2.5;
	CHECK(segimport_seg_grid(&err, &SB.s, 1, &g));
	CHECK(g.nx == 3 && g.ny == 3 && g.nz == 3 && g.voxels == 1);
	if (g.nz == 3) {
		CHECK_NEAR(g.plane_origin[2], 3.0 - 2.5, 1e-12);
		CHECK_NEAR(g.plane_origin[8], 3.0 + 2.5, 1e-12);
		CHECK(g.plane_origin[5] == 3.0);
		CHECK_NEAR(g.plane_origin[3], 1.0 - 0.6, 1e-12);
		CHECK_NEAR(g.plane_origin[4], 2.0 - 0.9, 1e-12);
		CHECK(g.field[1 + 3 * (1 + 3 * 1)] == 1);
	}
	segimport_grid_free(&g);
	SB.s.slice_thickness = 0.0; /* then the smaller pixel spacing */
	CHECK(segimport_seg_grid(&err, &SB.s, 1, &g));
	if (g.nz == 3) {
		CHECK_NEAR(g.plane_origin[2], 3.0 - 0.6, 1e-12);
		CHECK_NEAR(g.plane_origin[8], 3.0 + 0.6, 1e-12);
	}
	segimport_grid_free(&g);
}

static void test_seg_refusals(void)
{
	const double row[3] = {1, 0, 0}, col[3] = {0, 1, 0}, n[3] = {0, 0, 1};
	const double O[3] = {0, 0, 0};
	double p[3];
	struct segimport_grid g;
	struct r3d_err err = {0};

	/* a frame without Plane Position (of another segment: it still breaks
	 * the planes of the object) */
	sb_init(SEGOBJ_SEG_BINARY, 2, 2, row, col, 1.0, 1.0);
	sb_segment(1);
	sb_segment(2);
	sb_frame(1, O)[0] = 1;
	sb_frame(2, O)[0] = 1;
	SB.fr[1].has_position = false;
	CHECK(!segimport_seg_grid(&err, &SB.s, 1, &g));
	CHECK(err.code == R3D_EINVAL &&
	      has(&err, "segment 1: frame 2 of the Segmentation has no Plane Position"));
	CHECK(g.field == NULL && g.plane_origin == NULL);

	/* two frames on one plane half a pixel apart */
	SB.fr[1].has_position = true;
	combo(O, 0.5, row, 0, col, 0.004, n, SB.fr[1].position);
	CHECK(!segimport_seg_grid(&err, &SB.s, 1, &g));
	CHECK(has(&err, "not a whole number") && has(&err, "frames 1 and 2"));
	/* ... and whole pixels apart is fine */
	combo(O, 5.0, row, -2.0, col, 0.004, n, SB.fr[1].position);
	CHECK(segimport_seg_grid(&err, &SB.s, 2, &g));
	CHECK(g.voxels == 1 && g.nz == 3 && seg_mismatches(&SB.s, 2, &g) == 0);
	segimport_grid_free(&g);
	/* the plane is where its lowest-numbered frame is, even when another
	 * frame of it is lower along the normal */
	combo(O, 5.0, row, -2.0, col, -0.004, n, SB.fr[1].position);
	CHECK(segimport_seg_grid(&err, &SB.s, 2, &g));
	CHECK(g.nz == 3 && g.plane_origin[5] == 0.0);
	segimport_grid_free(&g);
	combo(O, 5.0, row, -2.0, col, 0.004, n, SB.fr[1].position);

	/* a segment with no frame */
	sb_segment(3);
	CHECK(!segimport_seg_grid(&err, &SB.s, 3, &g));
	CHECK(has(&err, "segment 3 has no frame"));

	/* all frames empty: no voxel, no error */
	SB.pix[0][0] = 0;
	CHECK(segimport_seg_grid(&err, &SB.s, 1, &g));
	CHECK(g.voxels == 0 && g.field == NULL && g.nz == 0);
	segimport_grid_free(&g);

	/* orientation, spacing, kind */
	SB.s.orientation[3] = 0.1;
	CHECK(!segimport_seg_grid(&err, &SB.s, 2, &g));
	CHECK(has(&err, "not two orthogonal unit vectors"));
	SB.s.orientation[3] = 0.0;
	SB.s.pixel_spacing[1] = 0.0;
	CHECK(!segimport_seg_grid(&err, &SB.s, 2, &g));
	CHECK(has(&err, "not positive"));
	SB.s.pixel_spacing[1] = 1.0;
	SB.s.kind = SEGOBJ_RTSTRUCT;
	CHECK(!segimport_seg_grid(&err, &SB.s, 2, &g));
	CHECK(has(&err, "not a Segmentation"));
	SB.s.kind = SEGOBJ_SEG_BINARY;
	CHECK(segimport_seg_grid(&err, &SB.s, 2, &g));
	segimport_grid_free(&g);

	/* a grid over the limit is refused before it is allocated:
	 * 1 x 1 frames 60000 pixels apart on both axes */
	sb_init(SEGOBJ_SEG_BINARY, 1, 1, row, col, 1.0, 1.0);
	sb_segment(1);
	sb_frame(1, O)[0] = 1;
	combo(O, 60000, row, 60000, col, 0, n, p);
	sb_frame(1, p)[0] = 1;
	CHECK(!segimport_seg_grid(&err, &SB.s, 1, &g));
	CHECK(err.code == R3D_EINVAL && has(&err, "SEGIMPORT_MAX_VOXELS"));
	CHECK(g.field == NULL);
}

/* ================================================================== */
/* RT Structure Set records                                            */
/* ================================================================== */

#define RB_MAX_CONTOURS 32
#define RB_MAX_POINTS 20000

struct rtbuild {
	struct segobj s;
	struct segobj_segment seg[8];
	struct segobj_contour ct[RB_MAX_CONTOURS];
	double pts[3 * RB_MAX_POINTS];
	size_t used;
};

static struct rtbuild RB;

static void rb_init(void)
{
	memset(&RB, 0, sizeof(RB));
	RB.s.kind = SEGOBJ_RTSTRUCT;
	RB.s.segments = RB.seg;
	RB.s.contours = RB.ct;
}

static void rb_roi(unsigned number)
{
	RB.seg[RB.s.nsegments++].number = number;
}

/* A contour of n points; returns its point array to fill. */
static double *rb_contour(unsigned roi, enum segobj_contour_type type, size_t n)
{
	struct segobj_contour *c = &RB.ct[RB.s.ncontours++];

	c->roi = roi;
	c->type = type;
	c->npoints = n;
	c->xyz = RB.pts + 3 * RB.used;
	RB.used += n;
	return RB.pts + 3 * (RB.used - n);
}

/* A polygon given by (x, y) pairs on the plane o + x e1 + y e2. */
static void rb_poly(unsigned roi, const double o[3], const double e1[3], const double e2[3],
		    const double *xy, size_t n)
{
	double *p = rb_contour(roi, SEGOBJ_CLOSED_PLANAR, n);
	const double zero[3] = {0, 0, 0};

	for (size_t m = 0; m < n; m++)
		combo(o, xy[2 * m], e1, xy[2 * m + 1], e2, 0.0, zero, p + 3 * m);
}

static void rb_rect(unsigned roi, const double o[3], const double e1[3], const double e2[3],
		    double x0, double y0, double x1, double y1)
{
	double xy[8] = {x0, y0, x1, y0, x1, y1, x0, y1};

	rb_poly(roi, o, e1, e2, xy, 4);
}

static const double AX_ROW[3] = {1, 0, 0}, AX_COL[3] = {0, 1, 0};

static struct segimport_plane_grid axial_grid(double ps_rows, double ps_cols, unsigned refine)
{
	struct segimport_plane_grid pg = {
		.orientation = {1, 0, 0, 0, 1, 0},
		.pixel_spacing = {ps_rows, ps_cols},
		.origin = {-250.0, -200.0, -80.0},
		.refine = refine,
	};
	return pg;
}

/* Crossing-number test of (x, y) against polygon pts (3D, projected on e1, e2). */
static bool pnpoly(const double *pts, size_t n, const double e1[3], const double e2[3], double x,
		   double y)
{
	bool in = false;

	for (size_t i = 0, j = n - 1; i < n; j = i++) {
		double xi = dot3(pts + 3 * i, e1), yi = dot3(pts + 3 * i, e2);
		double xj = dot3(pts + 3 * j, e1), yj = dot3(pts + 3 * j, e2);
		if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi)
			in = !in;
	}
	return in;
}

/* Voxels that disagree with the even-odd rule applied, per plane, to the
 * ROI's closed contours at their own positions. */
static size_t rt_mismatches(const struct segobj *s, unsigned roi, const struct segimport_grid *g)
{
	size_t bad = 0;

	for (size_t k = 0; k < g->nz; k++) {
		const double *o = g->plane_origin + 3 * k;
		double w = dot3(o, g->normal);
		for (size_t j = 0; j < g->ny; j++)
			for (size_t i = 0; i < g->nx; i++) {
				double X[3];
				combo(o, i * g->dx, g->row_dir, j * g->dy, g->col_dir, 0.0, g->normal, X);
				double x = dot3(X, g->row_dir), y = dot3(X, g->col_dir);
				bool in = false;
				for (size_t c = 0; c < s->ncontours; c++) {
					const struct segobj_contour *ct = &s->contours[c];
					if (ct->roi != roi || ct->type != SEGOBJ_CLOSED_PLANAR)
						continue;
					if (fabs(dot3(ct->xyz, g->normal) - w) > 0.02)
						continue;
					in ^= pnpoly(ct->xyz, ct->npoints, g->row_dir, g->col_dir, x, y);
				}
				bad += in != (g->field[i + g->nx * (j + g->ny * k)] != 0);
			}
	}
	return bad;
}

static void test_rt_square_hole(void)
{
	struct segimport_plane_grid pg = axial_grid(1.0, 1.0, 2);
	const double o[3] = {0, 0, 12.5};
	struct segimport_grid g;
	struct r3d_err err = {0};

	/* Edges half-way between sub-pixel centres (-250 - 1/4 + m / 2): the
	 * count is exact, 40 x 40 - 20 x 20 centres. */
	rb_init();
	rb_roi(1);
	rb_rect(1, o, AX_ROW, AX_COL, 0, 0, 20, 20);
	rb_rect(1, o, AX_ROW, AX_COL, 5, 5, 15, 15);
	CHECK(segimport_rtstruct_grid(&err, &RB.s, 1, &pg, &g));
	CHECK(g.voxels == 1200);
	CHECK(g.voxels * g.dx * g.dy == 300.0);
	CHECK(g.nx == 42 && g.ny == 42 && g.nz == 3);
	CHECK(!g.fractional);
	CHECK(g.dx == 0.5 && g.dy == 0.5);
	CHECK(rt_mismatches(&RB.s, 1, &g) == 0);
	CHECK(border_empty(&g));
	CHECK(crop_tight(&g));
	if (g.nz == 3 && g.nx == 42) {
		/* voxel (0, 0, 1) is the sub-pixel centre just outside the corner */
		CHECK(g.plane_origin[3] == -0.25 && g.plane_origin[4] == -0.25);
		CHECK(g.plane_origin[5] == 12.5);
		CHECK(g.plane_origin[2] == 11.5 && g.plane_origin[8] == 13.5);
		/* the hole's centre is empty, the ring is set */
		CHECK(g.field[20 + 42 * (20 + 42 * 1)] == 0);
		CHECK(g.field[3 + 42 * (20 + 42 * 1)] == 1);
	}
	segimport_grid_free(&g);

	/* Arbitrary edges: the count against the sub-pixel boundary bound of
	 * each rectangle, |n dx - W| < dx per axis. */
	rb_init();
	rb_roi(1);
	const double R1[4] = {0.1, 0.33, 20.37, 19.91}, R2[4] = {5.2, 4.9, 15.05, 15.2};
	rb_rect(1, o, AX_ROW, AX_COL, R1[0], R1[1], R1[2], R1[3]);
	rb_rect(1, o, AX_ROW, AX_COL, R2[0], R2[1], R2[2], R2[3]);
	CHECK(segimport_rtstruct_grid(&err, &RB.s, 1, &pg, &g));
	double W1 = R1[2] - R1[0], H1 = R1[3] - R1[1], W2 = R2[2] - R2[0], H2 = R2[3] - R2[1];
	double bound = (0.5 * (H1 + 0.5) + W1 * 0.5) + (0.5 * (H2 + 0.5) + W2 * 0.5);
	CHECK(fabs(g.voxels * 0.25 - (W1 * H1 - W2 * H2)) < bound);
	CHECK(rt_mismatches(&RB.s, 1, &g) == 0);
	CHECK(border_empty(&g) && crop_tight(&g));
	segimport_grid_free(&g);

	/* The same ring as one keyhole contour (the cut runs along itself
	 * both ways): accepted, the same voxels as outer + hole. */
	rb_init();
	rb_roi(1);
	const double key[24] = {0, 0, 10, 0, 10, 5, 5, 5, 5, 15, 15, 15,
				15, 5, 10, 5, 10, 0, 20, 0, 20, 20, 0, 20};
	rb_poly(1, o, AX_ROW, AX_COL, key, 12);
	CHECK(segimport_rtstruct_grid(&err, &RB.s, 1, &pg, &g));
	CHECK(g.voxels == 1200);
	CHECK(rt_mismatches(&RB.s, 1, &g) == 0);
	segimport_grid_free(&g);
}

static void test_rt_circle(void)
{
	const double c[3] = {3.3, -7.1, 5.0}, r = 10.0;
	const size_t npts[2] = {200, 2000};
	struct segimport_plane_grid pg = axial_grid(1.0, 1.0, 2);
	struct segimport_grid g;
	struct r3d_err err = {0};

	for (int t = 0; t < 2; t++) {
		rb_init();
		rb_roi(2);
		double *p = rb_contour(2, SEGOBJ_CLOSED_PLANAR, npts[t]);
		for (size_t m = 0; m < npts[t]; m++) {
			double a = 2.0 * PI * m / npts[t];
			p[3 * m] = c[0] + r * cos(a);
			p[3 * m + 1] = c[1] + r * sin(a);
			p[3 * m + 2] = c[2];
		}
		CHECK(segimport_rtstruct_grid(&err, &RB.s, 2, &pg, &g));
		double area = g.voxels * g.dx * g.dy;
		CHECK(fabs(area - PI * r * r) < 0.01 * PI * r * r);
		CHECK(rt_mismatches(&RB.s, 2, &g) == 0);
		CHECK(border_empty(&g) && crop_tight(&g));
		segimport_grid_free(&g);
	}
}

/* Uneven planes, two contours of one plane merged (within the tolerance)
 * and filled even-odd, a contour type that is ignored. */
static void test_rt_planes(void)
{
	struct segimport_plane_grid pg = axial_grid(0.8, 0.8, 1);
	const double z[3] = {10.0, 11.0, 13.7};
	struct segimport_grid g;
	struct r3d_err err = {0};

	rb_init();
	rb_roi(3);
	rb_roi(4);
	for (int k = 0; k < 3; k++) {
		double o[3] = {0, 0, z[k]};
		rb_rect(3, o, AX_ROW, AX_COL, -5.1 + k, -4.3, 6.2, 3.9 + k);
	}
	/* overlapping second square on plane z = 11, written 0.004 mm higher */
	double o2[3] = {0, 0, 11.004};
	rb_rect(3, o2, AX_ROW, AX_COL, 2.05, 1.1, 9.3, 8.45);
	/* another ROI and an open contour of this one: ignored */
	double o3[3] = {0, 0, 40.0};
	rb_rect(4, o3, AX_ROW, AX_COL, -30, -30, 30, 30);
	double *op = rb_contour(3, SEGOBJ_OPEN_PLANAR, 2);
	op[0] = -60;
	op[1] = op[2] = 0;
	op[3] = 60;
	op[4] = 0;
	op[5] = 90;

	CHECK(segimport_rtstruct_grid(&err, &RB.s, 3, &pg, &g));
	CHECK(g.nz == 5);
	if (g.nz == 5) {
		CHECK(g.plane_origin[3 + 2] == 10.0);
		CHECK_NEAR(g.plane_origin[6 + 2], 11.002, 1e-12); /* mean of 11 and 11.004 */
		CHECK(g.plane_origin[9 + 2] == 13.7);
		CHECK_NEAR(g.plane_origin[2], 10.0 - 1.002, 1e-12); /* 10 - (11.002 - 10) */
		CHECK_NEAR(g.plane_origin[12 + 2], 13.7 + (13.7 - 11.002), 1e-12);
		for (int k = 0; k < 5; k++) /* in-plane, every plane on the same lattice */
			CHECK(g.plane_origin[3 * k] == g.plane_origin[0] &&
			      g.plane_origin[3 * k + 1] == g.plane_origin[1]);
	}
	/* the lattice: refine 1, the CT pixel centres -250 + 0.8 m */
	double fx = (g.plane_origin[0] + 250.0) / 0.8;
	CHECK(fabs(fx - round(fx)) < 1e-9);
	CHECK(rt_mismatches(&RB.s, 3, &g) == 0);
	CHECK(border_empty(&g));
	CHECK(g.nx < 40 && g.ny < 40); /* ROI 4 and the open contour left out */
	/* the overlap of the two squares on z = 11 is a hole */
	{
		double X[3] = {4.0, 3.0, 11.002};
		double d[3] = {X[0] - g.plane_origin[6], X[1] - g.plane_origin[7], 0};
		long i = lround(d[0] / g.dx), j = lround(d[1] / g.dy);
		CHECK(g.field[i + (long)g.nx * (j + (long)g.ny * 2)] == 0);
		X[0] = 8.0; /* only in the second square */
		i = lround((X[0] - g.plane_origin[6]) / g.dx);
		CHECK(g.field[i + (long)g.nx * (j + (long)g.ny * 2)] == 1);
	}
	segimport_grid_free(&g);

	/* only an open contour: nothing closed, an empty grid */
	rb_init();
	rb_roi(5);
	double *q = rb_contour(5, SEGOBJ_OPEN_PLANAR, 3);
	for (int m = 0; m < 9; m++)
		q[m] = m;
	CHECK(segimport_rtstruct_grid(&err, &RB.s, 5, &pg, &g));
	CHECK(g.voxels == 0 && g.field == NULL && g.nz == 0);
	segimport_grid_free(&g);
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 6, &pg, &g));
	CHECK(has(&err, "no ROI 6"));
}

/* The sub-pixel centres sit symmetrically in the CT pixel: refine 4 gives
 * -3/8, -1/8, +1/8, +3/8 pixel. */
static void test_rt_sublattice(void)
{
	struct segimport_plane_grid pg = axial_grid(0.6, 1.2, 4);
	const double o[3] = {0, 0, 0};
	struct segimport_grid g;
	struct r3d_err err = {0};

	rb_init();
	rb_roi(1);
	rb_rect(1, o, AX_ROW, AX_COL, 1.01, 2.03, 7.7, 5.9);
	CHECK(segimport_rtstruct_grid(&err, &RB.s, 1, &pg, &g));
	CHECK_NEAR(g.dx, 0.3, 1e-15);
	CHECK_NEAR(g.dy, 0.15, 1e-15);
	double fx = (g.plane_origin[3] + 250.0) / 1.2, fy = (g.plane_origin[4] + 200.0) / 0.6;
	/* offset from a CT centre + 3/8 is a whole number of quarter pixels */
	CHECK(fabs((fx + 0.375) * 4 - round((fx + 0.375) * 4)) < 1e-9);
	CHECK(fabs((fy + 0.375) * 4 - round((fy + 0.375) * 4)) < 1e-9);
	CHECK(fabs(fx * 4 - round(fx * 4)) > 0.4); /* never on a CT centre */
	/* one plane: the padding planes one (smaller) CT pixel spacing away */
	CHECK(g.nz == 3);
	CHECK(g.plane_origin[2] == -0.6 && g.plane_origin[8] == 0.6);
	CHECK(rt_mismatches(&RB.s, 1, &g) == 0);
	segimport_grid_free(&g);
}

/* Vertices exactly on sub-pixel centres (refine 1, whole-mm pixels, so the
 * lattice arithmetic is exact): the half-open rule counts each boundary row
 * and column once, and these lattice polygons come out at their area. */
static void test_rt_on_lattice(void)
{
	struct segimport_plane_grid pg = axial_grid(1.0, 1.0, 1);
	const double o[3] = {0, 0, -7.0};
	const double diamond[8] = {5, 0, 0, 5, -5, 0, 0, -5};
	struct segimport_grid g;
	struct r3d_err err = {0};

	rb_init();
	rb_roi(1);
	rb_rect(1, o, AX_ROW, AX_COL, 0, 0, 10, 10);
	CHECK(segimport_rtstruct_grid(&err, &RB.s, 1, &pg, &g));
	CHECK(g.voxels == 100);
	CHECK(rt_mismatches(&RB.s, 1, &g) == 0);
	CHECK(border_empty(&g));
	segimport_grid_free(&g);

	rb_init();
	rb_roi(1);
	rb_poly(1, o, AX_ROW, AX_COL, diamond, 4);
	CHECK(segimport_rtstruct_grid(&err, &RB.s, 1, &pg, &g));
	CHECK(g.voxels == 50);
	CHECK(rt_mismatches(&RB.s, 1, &g) == 0);
	CHECK(border_empty(&g));
	segimport_grid_free(&g);
}

static void test_rt_closing_repeat(void)
{
	struct segimport_plane_grid pg = axial_grid(1.0, 1.0, 2);
	const double o[3] = {0, 0, 3.0};
	const double sq[10] = {0.3, 0.4, 9.1, 0.4, 9.1, 7.7, 0.3, 7.7, 0.3, 0.4};
	struct segimport_grid g, h;
	struct r3d_err err = {0};

	rb_init();
	rb_roi(1);
	rb_poly(1, o, AX_ROW, AX_COL, sq, 4);
	CHECK(segimport_rtstruct_grid(&err, &RB.s, 1, &pg, &g));
	rb_init();
	rb_roi(1);
	rb_poly(1, o, AX_ROW, AX_COL, sq, 5);
	CHECK(segimport_rtstruct_grid(&err, &RB.s, 1, &pg, &h));
	CHECK(g.voxels > 0 && g.voxels == h.voxels);
	CHECK(g.nx == h.nx && g.ny == h.ny && g.nz == h.nz);
	CHECK(g.field && h.field && memcmp(g.field, h.field, g.nx * g.ny * g.nz) == 0);
	segimport_grid_free(&g);
	segimport_grid_free(&h);
}

static void test_rt_refusals(void)
{
	struct segimport_plane_grid pg = axial_grid(1.0, 1.0, 2);
	const double o[3] = {0, 0, 2.0};
	struct segimport_grid g;
	struct r3d_err err = {0};

	/* bow-tie, the third contour of ROI 7 (an open one counts) */
	rb_init();
	rb_roi(7);
	double *op = rb_contour(7, SEGOBJ_OPEN_PLANAR, 2);
	op[0] = op[1] = op[3] = 1.0;
	op[2] = op[5] = 2.0;
	op[4] = 3.0;
	rb_rect(7, o, AX_ROW, AX_COL, 20, 20, 30, 30);
	const double bow[8] = {0, 0, 10, 10, 10, 0, 0, 10};
	rb_poly(7, o, AX_ROW, AX_COL, bow, 4);
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(err.code == R3D_EINVAL);
	CHECK(has(&err, "ROI 7: contour 3 crosses itself near (5.0, 5.0, 2.0) mm"));
	CHECK(g.field == NULL && g.plane_origin == NULL);

	/* crossing through a vertex on the other edge */
	rb_init();
	rb_roi(7);
	const double tee[10] = {0, 0, 10, 10, 10, 0, 5, 5, 0, 10};
	rb_poly(7, o, AX_ROW, AX_COL, tee, 5);
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(has(&err, "ROI 7: contour 1 crosses itself near (5.0, 5.0, 2.0) mm"));

	/* a figure eight through one point visited twice */
	rb_init();
	rb_roi(7);
	const double eight[12] = {0, 0, 5, 5, 10, 10, 10, 0, 5, 5, 0, 10};
	rb_poly(7, o, AX_ROW, AX_COL, eight, 6);
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(has(&err, "crosses itself near (5.0, 5.0, 2.0) mm"));

	/* non-planar: one corner 2 mm up */
	rb_init();
	rb_roi(7);
	double *p = rb_contour(7, SEGOBJ_CLOSED_PLANAR, 4);
	const double np[12] = {0, 0, 2, 10, 0, 2, 10, 10, 4, 0, 10, 2};
	memcpy(p, np, sizeof(np));
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(has(&err, "ROI 7: contour 1 is not planar"));

	/* planar but tilted: z = 2 + 0.1 x */
	rb_init();
	rb_roi(7);
	p = rb_contour(7, SEGOBJ_CLOSED_PLANAR, 4);
	const double tp[12] = {0, 0, 2, 10, 0, 3, 10, 10, 3, 0, 10, 2};
	memcpy(p, tp, sizeof(tp));
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(has(&err, "is not parallel to the CT's slices") && has(&err, "5.7 degrees"));

	/* ... within 0.1 mm it is accepted */
	p[5] = p[8] = 2.09;
	CHECK(segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(g.voxels > 0);
	segimport_grid_free(&g);

	/* fewer than 3 points, or 3 with the last repeating the first */
	rb_init();
	rb_roi(7);
	const double two[6] = {0, 0, 5, 5, 0, 0};
	rb_poly(7, o, AX_ROW, AX_COL, two, 2);
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(has(&err, "ROI 7: contour 1 has 2 points (at least 3 needed"));
	rb_init();
	rb_roi(7);
	rb_poly(7, o, AX_ROW, AX_COL, two, 3);
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(has(&err, "has 2 distinct points"));

	/* a point repeated in a row (MIM writes them) is one vertex: the same
	 * voxels as the square without it */
	rb_init();
	rb_roi(7);
	const double sq[8] = {0, 0, 10, 0, 10, 10, 0, 10};
	rb_poly(7, o, AX_ROW, AX_COL, sq, 4);
	CHECK(segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	size_t square_voxels = g.voxels;
	segimport_grid_free(&g);
	rb_init();
	rb_roi(7);
	const double dup[10] = {0, 0, 10, 0, 10, 0, 10, 10, 0, 10};
	rb_poly(7, o, AX_ROW, AX_COL, dup, 5);
	CHECK(segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(square_voxels > 0 && g.voxels == square_voxels);
	segimport_grid_free(&g);
	/* only repeats: fewer than 3 distinct points */
	rb_init();
	rb_roi(7);
	const double reps[8] = {0, 0, 0, 0, 5, 5, 5, 5};
	rb_poly(7, o, AX_ROW, AX_COL, reps, 4);
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(has(&err, "has 2 distinct points"));

	/* zero area: three or more distinct points on one line (the crossing
	 * test sees nothing), a path out and back along itself; the ROI's
	 * label names it */
	rb_init();
	rb_roi(7);
	snprintf(RB.seg[0].label, sizeof(RB.seg[0].label), "Heart");
	rb_rect(7, o, AX_ROW, AX_COL, 20, 20, 30, 30);
	const double line[8] = {0, 0, 3, 1.5, 10, 5, 6, 3};
	rb_poly(7, o, AX_ROW, AX_COL, line, 4);
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(has(&err, "ROI 7 'Heart': contour 2 encloses no area (its 4 points lie on one line"));
	CHECK(has(&err, "at (0.0, 0.0, 2.0) mm"));
	CHECK(g.field == NULL && g.plane_origin == NULL);
	rb_init();
	rb_roi(7);
	const double back[8] = {0, 0, 4, 0, 4, 3, 4, 0};
	rb_poly(7, o, AX_ROW, AX_COL, back, 4);
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(has(&err, "ROI 7: contour 1 encloses no area"));
	/* ... while a tiny contour (the 0.05 mm diamonds of a planning
	 * system, 0.00125 mm^2) is kept: it just holds no voxel */
	rb_init();
	rb_roi(7);
	const double tiny[8] = {26.32, 10.31, 26.29, 10.28, 26.32, 10.26, 26.34, 10.28};
	rb_poly(7, o, AX_ROW, AX_COL, tiny, 4);
	CHECK(segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(g.voxels == 0);
	segimport_grid_free(&g);

	/* the grid: refine, spacing, orientation, kind, size */
	rb_init();
	rb_roi(7);
	rb_rect(7, o, AX_ROW, AX_COL, 0, 0, 10, 10);
	pg.refine = 0;
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(has(&err, "refine 0"));
	pg.refine = 9;
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	pg.refine = 8;
	CHECK(segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(g.voxels == 80 * 80);
	segimport_grid_free(&g);
	pg.orientation[4] = 0.5;
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(has(&err, "not two orthogonal unit vectors"));
	pg.orientation[4] = 1.0;
	pg.pixel_spacing[0] = -1.0;
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(has(&err, "not positive"));
	pg.pixel_spacing[0] = 0.01;
	pg.pixel_spacing[1] = 0.01;
	rb_rect(7, o, AX_ROW, AX_COL, -4000, -4000, 4000, 4000);
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(has(&err, "SEGIMPORT_MAX_VOXELS") && g.field == NULL);
	pg.pixel_spacing[0] = pg.pixel_spacing[1] = 1.0;
	RB.s.kind = SEGOBJ_SEG_BINARY;
	CHECK(!segimport_rtstruct_grid(&err, &RB.s, 7, &pg, &g));
	CHECK(has(&err, "not an RT Structure Set"));
}

/* An oblique CT grid (rotated about (1, 2, 3), anisotropic pixels, refine
 * 3) and a rectangle and a triangle drawn in its plane. */
static void test_rt_oblique(void)
{
	double R[3][3], row[3], col[3], nrm[3];
	const double axis[3] = {1, 2, 3}, C[3] = {12.5, -40.0, 77.0};
	struct segimport_plane_grid pg = {.pixel_spacing = {0.9, 0.7}, .refine = 3};
	struct segimport_grid g;
	struct r3d_err err = {0};

	rotation(axis, 0.7, R);
	rot_col(R, 0, row);
	rot_col(R, 1, col);
	rot_col(R, 2, nrm);
	memcpy(pg.orientation, row, sizeof(row));
	memcpy(pg.orientation + 3, col, sizeof(col));
	combo(C, -100.0, row, -100.0, col, -3.3, nrm, pg.origin);

	rb_init();
	rb_roi(1);
	double o[3], o2[3];
	combo(C, 0, row, 0, col, 1.75, nrm, o);
	combo(C, 0, row, 0, col, 4.0, nrm, o2);
	rb_rect(1, o, row, col, -6.03, -4.1, 5.97, 3.95);
	const double tri[6] = {-3.1, -2.2, 4.4, -1.9, 0.3, 5.1};
	rb_poly(1, o2, row, col, tri, 3);

	CHECK(segimport_rtstruct_grid(&err, &RB.s, 1, &pg, &g));
	CHECK(g.nz == 4);
	CHECK(near3(g.normal, nrm, 1e-12) && near3(g.col_dir, col, 1e-12));
	CHECK_NEAR(g.dx, 0.7 / 3, 1e-15);
	CHECK_NEAR(g.dy, 0.3, 1e-15);
	CHECK(rt_mismatches(&RB.s, 1, &g) == 0);
	CHECK(border_empty(&g) && crop_tight(&g));
	/* the rectangle's area, within the sub-pixel bound of each axis */
	size_t in1 = 0, in2 = 0;
	for (size_t m = 0; m < g.nx * g.ny; m++) {
		in1 += g.field[m + g.nx * g.ny * 1];
		in2 += g.field[m + g.nx * g.ny * 2];
	}
	CHECK(in1 + in2 == g.voxels);
	double W = 12.0, H = 8.05;
	CHECK(fabs(in1 * g.dx * g.dy - W * H) < g.dx * (H + g.dy) + W * g.dy);
	/* triangle area 0.5 |(b - a) x (c - a)| = 26.865; a wrong cell has its
	 * centre within half a cell diagonal of the boundary */
	double per = hypot(7.5, 0.3) + hypot(4.1, 7.0) + hypot(3.4, 7.3);
	CHECK(fabs(in2 * g.dx * g.dy - 26.865) < per * hypot(g.dx, g.dy));
	if (g.nz == 4) {
		/* plane positions along the normal, exactly where drawn */
		CHECK_NEAR(dot3(g.plane_origin + 3, nrm), dot3(o, nrm), 1e-9);
		CHECK_NEAR(dot3(g.plane_origin + 6, nrm), dot3(o2, nrm), 1e-9);
		/* sub-pixel lattice in the CT pixel: 1/3 pixel steps from a centre */
		double d[3] = {g.plane_origin[3] - pg.origin[0], g.plane_origin[4] - pg.origin[1],
			       g.plane_origin[5] - pg.origin[2]};
		double fu = dot3(d, row) / 0.7 * 3, fv = dot3(d, col) / 0.9 * 3;
		CHECK(fabs(fu - round(fu)) < 1e-6 && fabs(fv - round(fv)) < 1e-6);
	}
	segimport_grid_free(&g);
}

/* How reasons name segments and ROIs. */
static void test_names(void)
{
	char name[SEGIMPORT_NAME_MAX];

	rb_init();
	rb_roi(3);
	rb_roi(4);
	snprintf(RB.seg[0].label, sizeof(RB.seg[0].label), "Tumor Bed");
	segimport_name(&RB.s, 3, name);
	CHECK(strcmp(name, "ROI 3 'Tumor Bed'") == 0);
	segimport_name(&RB.s, 4, name);
	CHECK(strcmp(name, "ROI 4") == 0);
	/* 64 bytes of label: cut after 40, not inside the two-byte e-acute */
	memset(RB.seg[0].label, 'a', 64);
	RB.seg[0].label[64] = '\0';
	RB.seg[0].label[39] = (char)0xc3;
	RB.seg[0].label[40] = (char)0xa9;
	segimport_name(&RB.s, 3, name);
	CHECK(strlen(name) == strlen("ROI 3 ''...") + 39 && strstr(name, "...'") != NULL);
	sb_init(SEGOBJ_SEG_BINARY, 2, 2, (const double[3]){1, 0, 0}, (const double[3]){0, 1, 0},
		1.0, 1.0);
	sb_segment(2);
	snprintf(SB.seg[0].label, sizeof(SB.seg[0].label), "Spine");
	segimport_name(&SB.s, 2, name);
	CHECK(strcmp(name, "segment 2 'Spine'") == 0);
}

int main(void)
{
	test_seg_oblique();
	test_seg_tiles_and_shear();
	test_seg_fractional();
	test_seg_labelmap();
	test_seg_single_plane();
	test_seg_refusals();
	test_rt_square_hole();
	test_rt_circle();
	test_rt_planes();
	test_rt_sublattice();
	test_rt_on_lattice();
	test_rt_closing_repeat();
	test_rt_refusals();
	test_rt_oblique();
	test_names();
	return test_summary();
}
