/*
 * test_segment.c: unit tests of the segment stage (unit.segment).
 *
 *  - connected components (6 and 26) against a brute-force flood fill on
 *    random small volumes, label for label;
 *  - box dilation and erosion against brute force (clipped windows, radii
 *    from 0 to beyond the grid, aliasing, 1 and 3 threads);
 *  - hole filling on known shapes (rings, broken rings, hollow boxes);
 *  - the presets on an in-memory phantom with known truth: a soft-tissue
 *    elliptic cylinder with a rib-like bone ring and a spine (cortex and
 *    rough trabecular marrow of contrast-blood density), two air lungs, a
 *    bowel gas pocket, a contrast vessel (250 HU), a smooth contrast pool
 *    denser than the bone seeds (380 HU), an arm apart from the trunk, and a
 *    dense table under a foam cushion, joined to the body by a thin bridge;
 *    with and without contrast.
 *
 * Single-threaded main; the library starts its own workers.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/segment.h"
#include "r3d/test.h"
#include "r3d/util.h"

static uint32_t rng_state = 12345;

static uint32_t rng_next(void)
{
	rng_state = rng_state * 1664525u + 1013904223u;
	return rng_state >> 8;
}

static double rng_unit(void)
{
	return (double)rng_next() / (double)(1u << 24);
}

/* ---- connected components ----------------------------------------------- */

/* Labels in raster order of the first voxel, flood fill with an explicit queue. */
static size_t brute_label(const uint8_t *m, size_t nx, size_t ny, size_t nz, int conn,
			  uint32_t *lab, size_t *queue)
{
	size_t n = nx * ny * nz, v, count = 0;

	memset(lab, 0, n * sizeof(*lab));
	for (v = 0; v < n; v++) {
		size_t head = 0, tail = 0;

		if (!m[v] || lab[v])
			continue;
		lab[v] = (uint32_t)++count;
		queue[tail++] = v;
		while (head < tail) {
			size_t u = queue[head++];
			long x = (long)(u % nx), y = (long)(u / nx % ny), z = (long)(u / (nx * ny));
			long dx, dy, dz;

			for (dz = -1; dz <= 1; dz++)
				for (dy = -1; dy <= 1; dy++)
					for (dx = -1; dx <= 1; dx++) {
						long X = x + dx, Y = y + dy, Z = z + dz;
						int d = abs((int)dx) + abs((int)dy) + abs((int)dz);
						size_t w;

						if (d == 0 || (conn == 6 && d > 1))
							continue;
						if (X < 0 || Y < 0 || Z < 0 || X >= (long)nx ||
						    Y >= (long)ny || Z >= (long)nz)
							continue;
						w = (size_t)X + nx * ((size_t)Y + ny * (size_t)Z);
						if (m[w] && !lab[w]) {
							lab[w] = (uint32_t)count;
							queue[tail++] = w;
						}
					}
		}
	}
	return count;
}

static void test_label_random(void)
{
	static const size_t dims[][3] = { { 7, 6, 5 }, { 13, 11, 9 }, { 31, 3, 17 }, { 40, 40, 1 },
					  { 1, 1, 1 }, { 64, 5, 4 } };
	struct r3d_err err = { 0 };
	struct segment_cc *cc = NULL;
	size_t d, trial;
	int conn;
	bool all_same = true, sizes_ok = true;

	CHECK(segment_cc_create(&err, 3, &cc));
	if (cc == NULL)
		return;
	for (d = 0; d < sizeof(dims) / sizeof(dims[0]); d++) {
		size_t nx = dims[d][0], ny = dims[d][1], nz = dims[d][2], n = nx * ny * nz, v;
		uint8_t *m = malloc(n);
		uint32_t *a = malloc(n * sizeof(*a)), *b = malloc(n * sizeof(*b));
		size_t *q = malloc(n * sizeof(*q));

		for (trial = 0; trial < 12; trial++) {
			double density = 0.15 + 0.07 * (double)trial;

			for (v = 0; v < n; v++)
				m[v] = rng_unit() < density;
			for (conn = 6; conn <= 26; conn += 20) {
				size_t count = brute_label(m, nx, ny, nz, conn, a, q), id, big = 0;

				CHECK(segment_cc_label(&err, cc, m, nx, ny, nz, conn));
				segment_cc_write_labels(cc, b);
				if (segment_cc_count(cc) != count || memcmp(a, b, n * sizeof(*a)) != 0)
					all_same = false;
				for (id = 1; id <= count; id++) {
					size_t c = 0;

					for (v = 0; v < n; v++)
						c += a[v] == id;
					if (segment_cc_size(cc, id) != c)
						sizes_ok = false;
					if (big == 0 || c > segment_cc_size(cc, big))
						big = id;
				}
				if (segment_cc_largest(cc) != big)
					sizes_ok = false;
			}
		}
		free(q);
		free(b);
		free(a);
		free(m);
	}
	CHECK(all_same);
	CHECK(sizes_ok);
	CHECK(!segment_cc_label(&err, cc, NULL, 4, 4, 4, 8));
	CHECK(err.code == R3D_EINVAL);
	segment_cc_destroy(cc);
}

static void test_label_paint(void)
{
	struct r3d_err err = { 0 };
	struct segment_cc *cc = NULL;
	uint8_t m[6 * 4 * 2] = { 0 }, keep[8] = { 0 };
	size_t v;

	/* Two blobs: 3 voxels at one corner, 1 at the opposite corner. */
	m[0] = m[1] = m[6] = 1;
	m[6 * 4 * 2 - 1] = 1;
	CHECK(segment_cc_create(&err, 1, &cc));
	if (cc == NULL)
		return;
	CHECK(segment_cc_label(&err, cc, m, 6, 4, 2, 6));
	CHECK(segment_cc_count(cc) == 2);
	CHECK(segment_cc_largest(cc) == 1);
	keep[2] = 1;
	segment_cc_paint(cc, keep, m);
	CHECK(m[0] == 0 && m[6 * 4 * 2 - 1] == 1);
	CHECK(segment_cc_label(&err, cc, m, 6, 4, 2, 26));
	segment_cc_paint_min_size(cc, 2, m);
	for (v = 0; v < sizeof(m); v++)
		CHECK(m[v] == 0);
	segment_cc_destroy(cc);
}

/* ---- morphology ------------------------------------------------------------- */

static void brute_morph(const uint8_t *in, uint8_t *out, size_t nx, size_t ny, size_t nz,
			const unsigned r[3], bool erode)
{
	size_t x, y, z;

	for (z = 0; z < nz; z++)
		for (y = 0; y < ny; y++)
			for (x = 0; x < nx; x++) {
				long X, Y, Z;
				bool any = false, all = true;

				for (Z = (long)z - r[2]; Z <= (long)z + (long)r[2]; Z++)
					for (Y = (long)y - r[1]; Y <= (long)y + (long)r[1]; Y++)
						for (X = (long)x - r[0]; X <= (long)x + (long)r[0]; X++) {
							uint8_t b;

							if (X < 0 || Y < 0 || Z < 0 || X >= (long)nx ||
							    Y >= (long)ny || Z >= (long)nz)
								continue;
							b = in[(size_t)X + nx * ((size_t)Y + ny * (size_t)Z)];
							any = any || b;
							all = all && b;
						}
				out[x + nx * (y + ny * z)] = erode ? all : any;
			}
}

static void test_morph_random(void)
{
	static const unsigned radii[][3] = { { 0, 0, 0 }, { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 1 },
					     { 1, 1, 1 }, { 2, 1, 3 }, { 3, 3, 0 }, { 9, 9, 9 } };
	struct r3d_err err = { 0 };
	size_t nx = 11, ny = 9, nz = 7, n = nx * ny * nz, v, k;
	uint8_t *in = malloc(n), *out = malloc(n), *tmp = malloc(n), *ref = malloc(n), *al = malloc(n);
	bool same = true, alias_same = true;
	int erode, threads;

	for (k = 0; k < sizeof(radii) / sizeof(radii[0]); k++) {
		for (erode = 0; erode <= 1; erode++) {
			for (threads = 1; threads <= 3; threads += 2) {
				double density = erode ? 0.8 : 0.1;

				for (v = 0; v < n; v++)
					in[v] = rng_unit() < density;
				brute_morph(in, ref, nx, ny, nz, radii[k], erode);
				memcpy(al, in, n);
				if (erode) {
					CHECK(segment_erode(&err, in, out, tmp, nx, ny, nz, radii[k], threads));
					CHECK(segment_erode(&err, al, al, tmp, nx, ny, nz, radii[k], threads));
				} else {
					CHECK(segment_dilate(&err, in, out, tmp, nx, ny, nz, radii[k], threads));
					CHECK(segment_dilate(&err, al, al, tmp, nx, ny, nz, radii[k], threads));
				}
				if (memcmp(out, ref, n) != 0)
					same = false;
				if (memcmp(al, ref, n) != 0)
					alias_same = false;
			}
		}
	}
	CHECK(same);
	CHECK(alias_same);
	{
		unsigned big[3] = { SEGMENT_MAX_RADIUS_VOX + 1, 0, 0 };

		CHECK(!segment_dilate(&err, in, out, tmp, nx, ny, nz, big, 1));
		CHECK(!segment_dilate(&err, in, out, out, nx, ny, nz, radii[1], 1));
	}
	free(al);
	free(ref);
	free(tmp);
	free(out);
	free(in);
}

/* ---- hole filling ------------------------------------------------------------ */

static void test_fill(void)
{
	struct r3d_err err = { 0 };
	struct segment_cc *cc = NULL;
	size_t nx = 40, ny = 30, nz = 4, n = nx * ny * nz, x, y, z, v;
	uint8_t *m = calloc(n, 1), *tmp = malloc(n);
	int16_t *hu = malloc(n * sizeof(*hu));
	bool ok_ring = true, ok_gap = true, ok_big = true, ok_hu = true;

	/* Slice 0: closed square ring 10..19 -> filled. Slice 1: the same ring
	 * with a one-pixel gap -> not filled. Slice 2: a ring 2..37 x 2..27 (hole
	 * 34 * 24 = 816 px) -> not filled with max 500 px. Slice 3: closed ring
	 * around low-HU content -> not filled with the mean-HU test. */
	for (z = 0; z < nz; z++)
		for (y = 0; y < ny; y++)
			for (x = 0; x < nx; x++) {
				bool edge = (x == 10 || x == 19) && y >= 10 && y <= 19;
				bool edge2 = (y == 10 || y == 19) && x >= 10 && x <= 19;
				bool big = ((x == 2 || x == 37) && y >= 2 && y <= 27) ||
					   ((y == 2 || y == 27) && x >= 2 && x <= 37);

				v = x + nx * (y + ny * z);
				hu[v] = z == 3 ? 0 : 200;
				if (z == 2)
					m[v] = big;
				else
					m[v] = edge || edge2;
				if (z == 1 && x == 19 && y == 15)
					m[v] = 0;
			}
	CHECK(segment_fill_holes_2d(&err, m, nx, ny, nz, 500, hu, 99.5, 2));
	for (y = 0; y < ny; y++)
		for (x = 0; x < nx; x++) {
			bool inside = x >= 10 && x <= 19 && y >= 10 && y <= 19;
			bool ring = inside && (x == 10 || x == 19 || y == 10 || y == 19);

			if (m[x + nx * y] != inside)
				ok_ring = false;
			if (m[x + nx * (y + ny)] != (ring && !(x == 19 && y == 15)))
				ok_gap = false;
			if (m[x + nx * (y + ny * 2)] && x > 2 && x < 37 && y > 2 && y < 27)
				ok_big = false;
			if (m[x + nx * (y + ny * 3)] != ring)
				ok_hu = false;
		}
	CHECK(ok_ring);
	CHECK(ok_gap);
	CHECK(ok_big);
	CHECK(ok_hu);
	/* Unlimited size and no HU test fill the big ring too. */
	CHECK(segment_fill_holes_2d(&err, m, nx, ny, nz, 0, NULL, 0, 1));
	CHECK(m[20 + nx * (15 + ny * 2)] == 1);

	/* 3D: a hollow box is filled; the same box with a hole in a wall is not. */
	CHECK(segment_cc_create(&err, 2, &cc));
	if (cc != NULL) {
		size_t NX = 12, NY = 10, NZ = 9, N = NX * NY * NZ, filled = 0;
		uint8_t *b = calloc(N, 1), *t = malloc(N);

		for (z = 2; z <= 7; z++)
			for (y = 2; y <= 7; y++)
				for (x = 2; x <= 9; x++)
					b[x + NX * (y + NY * z)] =
						z == 2 || z == 7 || y == 2 || y == 7 || x == 2 || x == 9;
		CHECK(segment_fill_holes_3d(&err, cc, b, t, NX, NY, NZ));
		for (v = 0; v < N; v++)
			filled += b[v];
		CHECK(filled == 6 * 6 * 8);
		memset(b, 0, N);
		for (z = 2; z <= 7; z++)
			for (y = 2; y <= 7; y++)
				for (x = 2; x <= 9; x++)
					b[x + NX * (y + NY * z)] =
						z == 2 || z == 7 || y == 2 || y == 7 || x == 2 || x == 9;
		b[9 + NX * (4 + NY * 4)] = 0;
		filled = 0;
		CHECK(segment_fill_holes_3d(&err, cc, b, t, NX, NY, NZ));
		for (v = 0; v < N; v++)
			filled += b[v];
		CHECK(filled == 6 * 6 * 8 - 4 * 4 * 6 - 1);
		free(t);
		free(b);
		segment_cc_destroy(cc);
	}
	free(hu);
	free(tmp);
	free(m);
}

/* ---- presets on a phantom --------------------------------------------------- */

#define PH_NX 176
#define PH_NY 160
#define PH_NZ 32
#define PH_SX 1.25
#define PH_SZ 3.0

enum ph_truth {
	PH_BODY = 1 << 0, PH_BONE = 1 << 1, PH_LUNG = 1 << 2, PH_VESSEL = 1 << 3,
	PH_TABLE = 1 << 4, PH_GAS = 1 << 5,
};

static double sq(double a)
{
	return a * a;
}

/* Builds the phantom (mm, centre of the body at cx, cy) and its truth bits. */
static void phantom_build(int16_t *hu, uint8_t *truth, bool contrast)
{
	const double cx = 110, cy = 100;          /* mm */
	size_t x, y, z;

	for (z = 0; z < PH_NZ; z++)
		for (y = 0; y < PH_NY; y++)
			for (x = 0; x < PH_NX; x++) {
				double X = ((double)x + 0.5) * PH_SX - cx, Y = ((double)y + 0.5) * PH_SX - cy;
				size_t v = x + PH_NX * (y + PH_NY * z);
				double e = sq(X / 90) + sq(Y / 65);
				double ring_out = sq(X / 80) + sq(Y / 55), ring_in = sq(X / 76) + sq(Y / 51);
				double spine = sqrt(sq(X) + sq(Y - 35));
				double noise = (rng_unit() - 0.5) * 20;
				bool lung_z = z >= 6 && z < 26;
				uint8_t t = 0;
				double h = -1000 + noise * 0.2;

				if (e <= 1) {
					t |= PH_BODY;
					h = 40 + noise;
					if (ring_out <= 1 && ring_in > 1) {
						t |= PH_BONE;
						h = 800 + noise;
					} else if (spine <= 15) {
						t |= PH_BONE;
						/* cortex, then trabecular marrow: rough, 100..400 HU */
						h = spine >= 12.5 ? 700 + noise : 250 + noise * 15;
					} else if (lung_z && (sq(X - 40) + sq(Y + 10) <= 400 ||
							      sq(X + 40) + sq(Y + 10) <= 400)) {
						t |= PH_LUNG;
						h = -850 + noise * 3;
					} else if (sq(X) + sq(Y) <= 144) {
						t |= PH_VESSEL;
						h = (contrast ? 250 : 40) + noise;
					} else if (sq(X + 35) + sq(Y - 25) <= 144) {
						t |= PH_VESSEL;  /* a pool denser than dense_hu */
						h = (contrast ? 380 : 40) + noise;
					} else if (sq(X - 40) + sq(Y - 25) + sq(((double)z + 0.5) * PH_SZ - 48) <= 144) {
						t |= PH_GAS;
						h = -1000 + noise * 0.2;
					}
				} else if (sq(X + 99) + sq(Y + 20) <= 81) {
					/* an arm lying apart from the trunk, with its bone */
					t |= PH_BODY;
					h = 40 + noise;
					if (sq(X + 99) + sq(Y + 20) <= 9) {
						t |= PH_BONE;
						h = 700 + noise;
					}
				} else if (Y > 69 && Y <= 75 && fabs(X) < 100) {
					t |= PH_TABLE;                /* dense slab under the body */
					h = 300 + noise;
				} else if (Y > 0 && Y <= 69 && fabs(X) < 100) {
					h = (fabs(X) < 2 && Y > 60) ? 0 + noise   /* thin bridge */
								  : -700 + noise; /* foam cushion */
				}
				hu[v] = (int16_t)lround(h);
				truth[v] = t;
			}
}

static double dice(const uint8_t *m, const uint8_t *truth, uint8_t bit, size_t n)
{
	size_t a = 0, b = 0, ab = 0, v;

	for (v = 0; v < n; v++) {
		bool p = m != NULL && m[v], t = (truth[v] & bit) != 0;

		a += p;
		b += t;
		ab += p && t;
	}
	return a + b == 0 ? 1.0 : 2.0 * (double)ab / (double)(a + b);
}

static size_t overlap(const uint8_t *m, const uint8_t *truth, uint8_t bit, size_t n)
{
	size_t v, c = 0;

	for (v = 0; m != NULL && v < n; v++)
		c += m[v] && (truth[v] & bit);
	return c;
}

static void test_presets(bool contrast)
{
	struct r3d_err err = { 0 };
	struct segment_params p;
	struct segment_volume vol;
	struct segment_result res;
	struct segment_ctx *ctx = NULL;
	size_t n = (size_t)PH_NX * PH_NY * PH_NZ, s;
	int16_t *hu = malloc(n * sizeof(*hu));
	uint8_t *truth = malloc(n);
	double d;

	phantom_build(hu, truth, contrast);
	vol.hu = hu;
	vol.nx = PH_NX;
	vol.ny = PH_NY;
	vol.nz = PH_NZ;
	vol.spacing_mm[0] = vol.spacing_mm[1] = PH_SX;
	vol.spacing_mm[2] = PH_SZ;
	segment_params_default(&p);
	p.lungs.min_ml = 5.0; /* the gas pocket (7 ml) must go by its gas, not its size */
	p.threads = 2;
	CHECK(segment_ctx_create(&err, PH_NX, PH_NY, PH_NZ, &ctx));
	if (ctx == NULL)
		goto out;
	CHECK(segment_run(&err, ctx, &vol, &p, 0xf, &res));
	CHECK(res.contrast == contrast);

	d = dice(res.mask[SEGMENT_SKIN], truth, PH_BODY, n);
	printf("phantom %s: skin dice %.4f", contrast ? "contrast" : "plain", d);
	CHECK(d > 0.99);
	d = dice(res.mask[SEGMENT_BONE], truth, PH_BONE, n);
	printf(", bone %.4f", d);
	CHECK(d > 0.97);
	d = dice(res.mask[SEGMENT_LUNGS], truth, PH_LUNG, n);
	printf(", lungs %.4f", d);
	CHECK(d > 0.97);
	if (contrast) {
		d = dice(res.mask[SEGMENT_VESSELS], truth, PH_VESSEL, n);
		printf(", vessels %.4f", d);
		CHECK(d > 0.95);
		CHECK(res.skipped_reason[SEGMENT_VESSELS][0] == '\0');
	} else {
		CHECK(res.mask[SEGMENT_VESSELS] == NULL);
		CHECK(strstr(res.skipped_reason[SEGMENT_VESSELS], "not contrast") != NULL);
	}
	printf("\n");
	for (s = 0; s < SEGMENT_PRESET_COUNT; s++)
		CHECK(overlap(res.mask[s], truth, PH_TABLE, n) == 0);
	CHECK(overlap(res.mask[SEGMENT_BONE], truth, PH_VESSEL, n) == 0);
	CHECK(overlap(res.mask[SEGMENT_LUNGS], truth, PH_GAS, n) == 0);
	/* The skin is filled: lungs, gas and vessel are inside it. */
	CHECK(overlap(res.mask[SEGMENT_SKIN], truth, PH_LUNG | PH_GAS | PH_VESSEL, n) ==
	      overlap(truth, truth, PH_LUNG | PH_GAS | PH_VESSEL, n));

	/* The thread count does not change a voxel. */
	{
		uint8_t *copy = malloc(n * SEGMENT_PRESET_COUNT);
		bool same = copy != NULL;

		for (s = 0; same && s < SEGMENT_PRESET_COUNT; s++) {
			if (res.mask[s] != NULL)
				memcpy(copy + s * n, res.mask[s], n);
			else
				memset(copy + s * n, 0, n);
		}
		p.threads = 3;
		CHECK(segment_run(&err, ctx, &vol, &p, 0xf, &res));
		for (s = 0; same && s < SEGMENT_PRESET_COUNT; s++)
			if (res.mask[s] != NULL && memcmp(copy + s * n, res.mask[s], n) != 0)
				same = false;
		CHECK(same);
		p.threads = 2;
		free(copy);
	}

	/* Only what is asked for is produced. */
	CHECK(segment_run(&err, ctx, &vol, &p, 1u << SEGMENT_LUNGS, &res));
	CHECK(res.mask[SEGMENT_LUNGS] != NULL && res.mask[SEGMENT_BONE] == NULL);
	CHECK(strcmp(res.skipped_reason[SEGMENT_BONE], "not requested") == 0);

	/* No body: everything skipped with the reason, not an error. */
	memset(hu, 0xfc, n * sizeof(*hu)); /* -772 HU everywhere */
	CHECK(segment_run(&err, ctx, &vol, &p, 0xf, &res));
	CHECK(res.mask[SEGMENT_SKIN] == NULL && strstr(res.skipped_reason[SEGMENT_SKIN], "no body") != NULL);

	/* Bad input is refused. */
	vol.nx = PH_NX - 1;
	CHECK(!segment_run(&err, ctx, &vol, &p, 0xf, &res) && err.code == R3D_EINVAL);
	vol.nx = PH_NX;
	vol.spacing_mm[2] = 0;
	CHECK(!segment_run(&err, ctx, &vol, &p, 0xf, &res) && err.code == R3D_EINVAL);
	vol.spacing_mm[2] = PH_SZ;
	p.bone.blood_margin_mm = -1;
	CHECK(!segment_run(&err, ctx, &vol, &p, 0xf, &res) && err.code == R3D_EINVAL);
	p.bone.blood_margin_mm = 6;
	p.threads = 0;
	CHECK(!segment_run(&err, ctx, &vol, &p, 0xf, &res) && err.code == R3D_EINVAL);
out:
	segment_ctx_destroy(ctx);
	free(truth);
	free(hu);
}

static void test_names(void)
{
	int s;

	for (s = 0; s < SEGMENT_PRESET_COUNT; s++)
		CHECK((int)segment_preset_from_name(segment_preset_name((enum segment_preset)s)) == s);
	CHECK(segment_preset_from_name("liver") == SEGMENT_PRESET_COUNT);
	CHECK(!segment_ctx_create(NULL, 0, 1, 1, &(struct segment_ctx *){ NULL }));
}

int main(void)
{
	test_label_random();
	test_label_paint();
	test_morph_random();
	test_fill();
	test_names();
	test_presets(true);
	test_presets(false);
	return test_summary();
}
