/*
 * test_preview.c: unit tests of the preview rasterizer against analytic
 * truth: spheres built here (UV spheres, counter-clockwise from outside) in
 * patient LPS mm; the area a sphere covers against the disc area pi r^2;
 * the side, height and depth order of spheres placed on the patient's
 * right, superior, anterior... in every view; hue; letters and scale bar
 * pixels; determinism; bad input; speed of a 600k-triangle mesh. Writes
 * every view of a test scene as PPM into the folder given as argv[1] (ctest:
 * <build>/tests/preview/images) or a fresh folder under /tmp, and prints
 * it, for a human to look at. Single-threaded.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "r3d/mesh.h"
#include "r3d/preview.h"
#include "r3d/test.h"
#include "r3d/util.h"

#define PI 3.14159265358979323846
#define W 512
#define H 512

/* A UV sphere of nlat bands and nlon sectors, centre c, radius r, with the
 * right-hand normal of every triangle pointing out. */
static struct mesh *sphere(double cx, double cy, double cz, double r, int nlat, int nlon)
{
	struct r3d_err err;
	size_t nvert = 2 + (size_t)(nlat - 1) * (size_t)nlon;
	size_t ntri = 2 * (size_t)nlon * (size_t)(nlat - 1);
	struct mesh *m = mesh_create(&err, nvert, ntri);
	if (!m)
		return NULL;
	float *p = m->xyz;
	/* 0: north pole (+z), 1: south pole, then rings from north to south */
	p[0] = (float)cx, p[1] = (float)cy, p[2] = (float)(cz + r);
	p[3] = (float)cx, p[4] = (float)cy, p[5] = (float)(cz - r);
	for (int i = 1; i < nlat; i++) {
		double th = PI * i / nlat;
		for (int j = 0; j < nlon; j++) {
			double ph = 2 * PI * j / nlon;
			float *q = m->xyz + 3 * (2 + (size_t)(i - 1) * nlon + j);
			q[0] = (float)(cx + r * sin(th) * cos(ph));
			q[1] = (float)(cy + r * sin(th) * sin(ph));
			q[2] = (float)(cz + r * cos(th));
		}
	}
#define RING(i, j) ((uint32_t)(2 + (size_t)((i) - 1) * nlon + (size_t)(((j) % nlon))))
	uint32_t *t = m->tri;
	for (int j = 0; j < nlon; j++) {
		/* seen from outside (above), phi increasing is counter-clockwise */
		*t++ = 0, *t++ = RING(1, j), *t++ = RING(1, j + 1);
		*t++ = 1, *t++ = RING(nlat - 1, j + 1), *t++ = RING(nlat - 1, j);
	}
	for (int i = 1; i < nlat - 1; i++)
		for (int j = 0; j < nlon; j++) {
			uint32_t a = RING(i, j), b = RING(i, j + 1), c = RING(i + 1, j),
				 d = RING(i + 1, j + 1);
			*t++ = a, *t++ = c, *t++ = d;
			*t++ = a, *t++ = d, *t++ = b;
		}
#undef RING
	return m;
}

/* Signed volume (positive when the winding is outward). */
static double mesh_volume(const struct mesh *m)
{
	double v = 0;
	for (size_t t = 0; t < m->ntri; t++) {
		const float *a = m->xyz + 3 * m->tri[3 * t], *b = m->xyz + 3 * m->tri[3 * t + 1],
			    *c = m->xyz + 3 * m->tri[3 * t + 2];
		v += (a[0] * ((double)b[1] * c[2] - (double)b[2] * c[1]) -
		      a[1] * ((double)b[0] * c[2] - (double)b[2] * c[0]) +
		      a[2] * ((double)b[0] * c[1] - (double)b[1] * c[0])) / 6.0;
	}
	return v;
}

static const float RED[3] = { 1, 0, 0 };
static const float BLUE[3] = { 0, 0, 1 };
static const float GREEN[3] = { 0, 1, 0 };

static struct preview_mesh pm(const struct mesh *m, const float rgb[3])
{
	struct preview_mesh p = { m, { rgb[0], rgb[1], rgb[2] } };
	return p;
}

/* Pixel classes: dominant channel, background, white. */
static bool is_red(const uint8_t *p) { return p[0] > 20 && p[1] == 0 && p[2] == 0; }
static bool is_blue(const uint8_t *p) { return p[2] > 20 && p[0] == 0 && p[1] == 0; }
static bool is_bg(const uint8_t *p) { return p[0] == 0 && p[1] == 0 && p[2] == 0; }

/* Centroid of the pixels of a class; count returned. */
static size_t centroid(const uint8_t *img, bool (*cls)(const uint8_t *), double *cx, double *cy)
{
	size_t n = 0;
	double sx = 0, sy = 0;
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++)
			if (cls(img + 3 * ((size_t)y * W + x))) {
				n++;
				sx += x + 0.5;
				sy += y + 0.5;
			}
	*cx = n ? sx / n : -1;
	*cy = n ? sy / n : -1;
	return n;
}

static double hue_deg(const uint8_t *p)
{
	double r = p[0], g = p[1], b = p[2];
	double mx = fmax(r, fmax(g, b)), mn = fmin(r, fmin(g, b));
	if (mx - mn < 1e-9)
		return -1;
	double h;
	if (mx == r)
		h = fmod((g - b) / (mx - mn), 6.0);
	else if (mx == g)
		h = (b - r) / (mx - mn) + 2;
	else
		h = (r - g) / (mx - mn) + 4;
	h *= 60;
	return h < 0 ? h + 360 : h;
}

static bool write_ppm(const char *dir, const char *name, const uint8_t *img)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s.ppm", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f)
		return false;
	fprintf(f, "P6\n%d %d\n255\n", W, H);
	bool ok = fwrite(img, 3, (size_t)W * H, f) == (size_t)W * H;
	return fclose(f) == 0 && ok;
}

static uint8_t img[3 * W * H], img2[3 * W * H];

static void test_sphere_mesh(void)
{
	struct mesh *s = sphere(0, 0, 0, 10, 32, 64);
	CHECK(s != NULL);
	if (!s)
		return;
	/* the generator itself: outward winding, volume near 4/3 pi r^3 */
	CHECK_NEAR(mesh_volume(s) / (4.0 / 3.0 * PI * 1000.0), 1.0, 0.02);
	mesh_destroy(s);
}

static void test_empty(void)
{
	struct r3d_err err;
	struct preview_info info;
	memset(img, 7, sizeof img);
	CHECK(preview_render(&err, NULL, 0, PREVIEW_ANTERIOR, W, H, img, &info));
	bool all_bg = true;
	for (size_t i = 0; i < (size_t)W * H; i++)
		all_bg = all_bg && is_bg(img + 3 * i);
	CHECK(all_bg);
	CHECK(info.mm_per_pixel == 0);

	struct mesh *e = mesh_create(&err, 0, 0);
	struct preview_mesh p = pm(e, RED);
	memset(img, 7, sizeof img);
	CHECK(preview_render(&err, &p, 1, PREVIEW_OBLIQUE, W, H, img, NULL));
	all_bg = true;
	for (size_t i = 0; i < (size_t)W * H; i++)
		all_bg = all_bg && is_bg(img + 3 * i);
	CHECK(all_bg);
	mesh_destroy(e);
}

/* One sphere: covered area against pi (r / mm_per_pixel)^2, scale against
 * the margin, hue of every coloured pixel, in every view. */
static void test_area_and_hue(void)
{
	struct r3d_err err;
	const double r = 60;
	const float orange[3] = { 0.9f, 0.55f, 0.2f };
	struct mesh *s = sphere(12, -30, 140, r, 96, 192);
	struct preview_mesh p = pm(s, orange);
	uint8_t ref[3] = { 230, 140, 51 };
	double want_hue = hue_deg(ref);

	for (int v = 0; v < PREVIEW_NVIEWS; v++) {
		struct preview_info info;
		CHECK(preview_render(&err, &p, 1, (enum preview_view)v, W, H, img, &info));
		/* the sphere's diameter fills the image less the margins */
		double want_mmpp = 2 * r / (W * (1 - 2 * PREVIEW_MARGIN));
		CHECK_NEAR(info.mm_per_pixel / want_mmpp, 1.0, 0.01);
		size_t n = 0, bad_hue = 0;
		double sx = 0, sy = 0;
		for (int y = 0; y < H; y++)
			for (int x = 0; x < W; x++) {
				const uint8_t *q = img + 3 * ((size_t)y * W + x);
				if (is_bg(q) || (q[0] == 255 && q[1] == 255 && q[2] == 255))
					continue;
				n++;
				sx += x + 0.5;
				sy += y + 0.5;
				double hh = hue_deg(q);
				if (hh < 0 || fabs(hh - want_hue) > 4)
					bad_hue++;
			}
		double rp = r / want_mmpp; /* independent of the code's own figure */
		double disc = PI * rp * rp;
		CHECK_NEAR((double)n / disc, 1.0, 0.03);
		CHECK(bad_hue <= n / 200); /* a handful of the darkest rim pixels at most */
		/* centred */
		CHECK_NEAR(sx / (double)n, W / 2.0, 1.0);
		CHECK_NEAR(sy / (double)n, H / 2.0, 1.0);
		if (fabs((double)n / disc - 1.0) > 0.03 || bad_hue > n / 200)
			fprintf(stderr, "view %s: %zu px, disc %.0f, bad hue %zu\n",
				preview_view_name((enum preview_view)v), n, disc, bad_hue);
	}
	mesh_destroy(s);
}

/* Red sphere at a patient direction, blue at the opposite one; where does
 * red land? side: -1 image left, +1 image right, -2 top, +2 bottom. */
static int red_side(enum preview_view v, const double dir[3])
{
	struct r3d_err err;
	struct mesh *a = sphere(80 * dir[0], 80 * dir[1], 80 * dir[2], 25, 24, 48);
	struct mesh *b = sphere(-80 * dir[0], -80 * dir[1], -80 * dir[2], 25, 24, 48);
	struct preview_mesh p[2] = { pm(a, RED), pm(b, BLUE) };
	int side = 0;
	if (preview_render(&err, p, 2, v, W, H, img, NULL)) {
		double rx, ry, bx, by;
		size_t nr = centroid(img, is_red, &rx, &ry);
		size_t nb = centroid(img, is_blue, &bx, &by);
		if (nr > 100 && nb > 100) {
			if (fabs(rx - bx) > 100 && fabs(ry - by) < 5)
				side = rx < bx ? -1 : 1;
			else if (fabs(ry - by) > 100 && fabs(rx - bx) < 5)
				side = ry < by ? -2 : 2;
		}
	}
	mesh_destroy(a);
	mesh_destroy(b);
	return side;
}

static void test_orientation(void)
{
	/* In LPS, +x is the patient's LEFT: the patient's right is -x. */
	const double right[3] = { -1, 0, 0 }, sup[3] = { 0, 0, 1 }, ant[3] = { 0, -1, 0 };

	/* patient right: image left from the front (radiological), right from behind */
	CHECK(red_side(PREVIEW_ANTERIOR, right) == -1);
	CHECK(red_side(PREVIEW_POSTERIOR, right) == 1);
	CHECK(red_side(PREVIEW_SUPERIOR, right) == 1);  /* from above, anterior up */
	CHECK(red_side(PREVIEW_INFERIOR, right) == -1); /* as axial CT */
	/* superior: top of the front, back and side views */
	CHECK(red_side(PREVIEW_ANTERIOR, sup) == -2);
	CHECK(red_side(PREVIEW_POSTERIOR, sup) == -2);
	CHECK(red_side(PREVIEW_LEFT, sup) == -2);
	CHECK(red_side(PREVIEW_RIGHT, sup) == -2);
	/* anterior: image left in the left view, right in the right view, top
	 * in the superior and inferior views */
	CHECK(red_side(PREVIEW_LEFT, ant) == -1);
	CHECK(red_side(PREVIEW_RIGHT, ant) == 1);
	CHECK(red_side(PREVIEW_SUPERIOR, ant) == -2);
	CHECK(red_side(PREVIEW_INFERIOR, ant) == -2);

	/* oblique (from anterior-left-superior): a patient-right sphere lands
	 * left of a patient-left one, a superior sphere above an inferior one */
	struct r3d_err err;
	struct mesh *a = sphere(-80, 0, 0, 25, 24, 48), *b = sphere(80, 0, 0, 25, 24, 48);
	struct preview_mesh p[2] = { pm(a, RED), pm(b, BLUE) };
	double rx, ry, bx, by;
	CHECK(preview_render(&err, p, 2, PREVIEW_OBLIQUE, W, H, img, NULL));
	CHECK(centroid(img, is_red, &rx, &ry) > 100 && centroid(img, is_blue, &bx, &by) > 100);
	CHECK(rx < bx - 100);
	mesh_destroy(a);
	mesh_destroy(b);
	a = sphere(0, 0, 80, 25, 24, 48);
	b = sphere(0, 0, -80, 25, 24, 48);
	p[0] = pm(a, RED);
	p[1] = pm(b, BLUE);
	CHECK(preview_render(&err, p, 2, PREVIEW_OBLIQUE, W, H, img, NULL));
	CHECK(centroid(img, is_red, &rx, &ry) > 100 && centroid(img, is_blue, &bx, &by) > 100);
	CHECK(ry < by - 100);
	mesh_destroy(a);
	mesh_destroy(b);
}

/* A smaller red sphere nearer the viewer than a bigger blue one on the same
 * line of sight: red in the centre and a blue ring from the red side; from
 * the opposite side only blue. For each axis. */
static void test_occlusion(void)
{
	struct r3d_err err;
	static const struct {
		double d[3];
		enum preview_view near_view, far_view;
	} cases[] = {
		{ { 0, -1, 0 }, PREVIEW_ANTERIOR, PREVIEW_POSTERIOR },
		{ { 0, 1, 0 }, PREVIEW_POSTERIOR, PREVIEW_ANTERIOR },
		{ { 1, 0, 0 }, PREVIEW_LEFT, PREVIEW_RIGHT },
		{ { -1, 0, 0 }, PREVIEW_RIGHT, PREVIEW_LEFT },
		{ { 0, 0, 1 }, PREVIEW_SUPERIOR, PREVIEW_INFERIOR },
		{ { 0, 0, -1 }, PREVIEW_INFERIOR, PREVIEW_SUPERIOR },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const double *d = cases[i].d;
		/* the nearer sphere is drawn first: the z-buffer, not the order,
		 * must decide */
		struct mesh *red = sphere(40 * d[0], 40 * d[1], 40 * d[2], 30, 32, 64);
		struct mesh *blue = sphere(-40 * d[0], -40 * d[1], -40 * d[2], 40, 32, 64);
		struct preview_mesh p[2] = { pm(red, RED), pm(blue, BLUE) };
		double x, y;

		CHECK(preview_render(&err, p, 2, cases[i].near_view, W, H, img, NULL));
		const uint8_t *c = img + 3 * ((size_t)(H / 2) * W + W / 2);
		CHECK(is_red(c));
		size_t nr = centroid(img, is_red, &x, &y), nb = centroid(img, is_blue, &x, &y);
		/* red disc of radius 30 inside blue of 40: areas in ratio 9 : 7 */
		CHECK(nr > 0 && nb > 0);
		CHECK_NEAR((double)nb / (double)nr, 7.0 / 9.0, 0.05);

		/* the other side: blue is nearer, so draw it first */
		p[0] = pm(blue, BLUE);
		p[1] = pm(red, RED);
		CHECK(preview_render(&err, p, 2, cases[i].far_view, W, H, img, NULL));
		CHECK(is_blue(img + 3 * ((size_t)(H / 2) * W + W / 2)));
		CHECK(centroid(img, is_red, &x, &y) == 0);
		mesh_destroy(red);
		mesh_destroy(blue);
	}
}

static double srgb8_to_linear(int v)
{
	double c = v / 255.0;
	return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
}

/* Lambert with light from the viewer: along a row through the centre of a
 * red sphere, the linear red value at distance d from the centre is
 * ambient + (1 - ambient) * sqrt(1 - (d / r)^2). */
static void test_lighting(void)
{
	struct r3d_err err;
	struct preview_info info;
	const double r = 80;
	struct mesh *s = sphere(0, 0, 0, r, 96, 192);
	struct preview_mesh p = pm(s, RED);
	CHECK(preview_render(&err, &p, 1, PREVIEW_ANTERIOR, W, H, img, &info));
	double rp = r / info.mm_per_pixel, worst = 0;
	for (int x = W / 2; x < W / 2 + (int)(0.97 * rp); x++) {
		double dd = (x + 0.5 - W / 2.0) / rp;
		double want = PREVIEW_AMBIENT + (1 - PREVIEW_AMBIENT) * sqrt(1 - dd * dd);
		double got = srgb8_to_linear(img[3 * ((size_t)(H / 2) * W + x)]);
		if (fabs(got - want) > worst)
			worst = fabs(got - want);
	}
	CHECK(worst < 0.03);
	if (worst >= 0.03)
		fprintf(stderr, "lighting: worst linear error %.3f\n", worst);
	CHECK(img[3 * ((size_t)(H / 2) * W + W / 2)] >= 253);
	mesh_destroy(s);
}

static size_t count_nonbg(const uint8_t *im, int x0, int y0, int x1, int y1)
{
	size_t n = 0;
	for (int y = y0; y < y1; y++)
		for (int x = x0; x < x1; x++)
			n += !is_bg(im + 3 * ((size_t)y * W + x));
	return n;
}

static void test_annotation(void)
{
	struct r3d_err err;
	struct preview_info info;
	struct mesh *s = sphere(0, 0, 0, 100, 32, 64);
	struct preview_mesh p = pm(s, GREEN);
	const int m = (int)(W * PREVIEW_MARGIN) - 4; /* inside the free margin */

	CHECK(preview_render(&err, &p, 1, PREVIEW_ANTERIOR, W, H, img, &info));
	CHECK(strcmp(info.letters[0], "R") == 0);
	CHECK(strcmp(info.letters[1], "L") == 0);
	CHECK(strcmp(info.letters[2], "S") == 0);
	CHECK(strcmp(info.letters[3], "I") == 0);
	/* something burnt into the middle of each edge */
	CHECK(count_nonbg(img, 0, H / 2 - 20, m, H / 2 + 20) > 30);     /* left */
	CHECK(count_nonbg(img, W - m, H / 2 - 20, W, H / 2 + 20) > 30); /* right */
	CHECK(count_nonbg(img, W / 2 - 20, 0, W / 2 + 20, m) > 30);     /* top */
	CHECK(count_nonbg(img, W / 2 - 20, H - m, W / 2 + 20, H) > 30); /* bottom */
	/* ... and nothing in the empty corners above */
	CHECK(count_nonbg(img, 0, 0, m, m) == 0);
	CHECK(count_nonbg(img, W - m, 0, W, m) == 0);
	/* the R on the left is not the L on the right: mirror the two boxes */
	size_t differ = 0;
	for (int y = H / 2 - 20; y < H / 2 + 20; y++)
		for (int x = 0; x < m; x++)
			differ += is_bg(img + 3 * ((size_t)y * W + x)) !=
				  is_bg(img + 3 * ((size_t)y * W + (W - m + x)));
	CHECK(differ > 10);

	/* scale bar: 200 mm sphere across 512 * 0.76 px: 0.514 mm/px, so at most
	 * 0.3 * 512 px = 79 mm: the bar is 50 mm, 97 px */
	CHECK(info.scale_bar_mm == 50);
	CHECK_NEAR(info.scale_bar_px, 50.0 / (200.0 / (W * (1 - 2 * PREVIEW_MARGIN))), 1.0);
	CHECK(count_nonbg(img, W - m, H - m, W, H) > 100);
	/* the bar is one horizontal run of scale_bar_px white pixels near the bottom */
	int longest = 0;
	for (int y = H - m; y < H; y++) {
		int run = 0;
		for (int x = 0; x < W; x++) {
			const uint8_t *q = img + 3 * ((size_t)y * W + x);
			run = (q[0] == 255 && q[1] == 255 && q[2] == 255) ? run + 1 : 0;
			if (run > longest)
				longest = run;
		}
	}
	CHECK_NEAR(longest, info.scale_bar_px, 1);

	/* a larger scene gets a longer bar */
	mesh_destroy(s);
	s = sphere(0, 0, 0, 400, 32, 64);
	p = pm(s, GREEN);
	CHECK(preview_render(&err, &p, 1, PREVIEW_LEFT, W, H, img, &info));
	CHECK(info.scale_bar_mm == 200);
	CHECK(strcmp(info.letters[0], "A") == 0 && strcmp(info.letters[1], "P") == 0);
	CHECK(preview_render(&err, &p, 1, PREVIEW_OBLIQUE, W, H, img, &info));
	CHECK(strcmp(info.letters[0], "RA") == 0 && strcmp(info.letters[1], "LP") == 0);
	CHECK(strcmp(info.letters[2], "S") == 0 && strcmp(info.letters[3], "I") == 0);
	mesh_destroy(s);
}

static void test_deterministic_and_bad_input(void)
{
	struct r3d_err err;
	struct mesh *a = sphere(-30, 10, 5, 40, 40, 80), *b = sphere(20, -20, 30, 35, 40, 80);
	struct preview_mesh p[2] = { pm(a, RED), pm(b, GREEN) };
	CHECK(preview_render(&err, p, 2, PREVIEW_OBLIQUE, W, H, img, NULL));
	memset(img2, 1, sizeof img2);
	CHECK(preview_render(&err, p, 2, PREVIEW_OBLIQUE, W, H, img2, NULL));
	CHECK(memcmp(img, img2, sizeof img) == 0);

	CHECK(!preview_render(&err, p, 2, PREVIEW_OBLIQUE, 8, H, img, NULL));
	CHECK(err.code == R3D_EINVAL);
	CHECK(!preview_render(&err, p, 2, PREVIEW_NVIEWS, W, H, img, NULL));
	CHECK(!preview_render(&err, p, 2, PREVIEW_ANTERIOR, W, H, NULL, NULL));
	uint32_t keep = a->tri[5];
	a->tri[5] = (uint32_t)a->nvert;
	CHECK(!preview_render(&err, p, 2, PREVIEW_ANTERIOR, W, H, img, NULL));
	CHECK(err.code == R3D_EINVAL && strstr(err.msg, "triangle") != NULL);
	a->tri[5] = keep;
	float kx = b->xyz[0];
	b->xyz[0] = NAN;
	CHECK(!preview_render(&err, p, 2, PREVIEW_ANTERIOR, W, H, img, NULL));
	b->xyz[0] = kx;
	p[1].rgb[1] = 1.5f;
	CHECK(!preview_render(&err, p, 2, PREVIEW_ANTERIOR, W, H, img, NULL));
	CHECK(strcmp(preview_view_name(PREVIEW_ANTERIOR), "anterior") == 0);
	CHECK(strcmp(preview_view_name(PREVIEW_OBLIQUE), "oblique") == 0);
	mesh_destroy(a);
	mesh_destroy(b);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_speed(void)
{
	struct r3d_err err;
	struct mesh *s = sphere(0, 0, 0, 100, 388, 776); /* 600k triangles */
	CHECK(s && s->ntri >= 600000);
	struct preview_mesh p = pm(s, RED);
	double t0 = now_s();
	CHECK(preview_render(&err, &p, 1, PREVIEW_OBLIQUE, W, H, img, NULL));
	double dt = now_s() - t0;
	printf("600k-triangle sphere, oblique, %dx%d: %.3f s\n", W, H, dt);
	/* well under a second at -O2; sanitizer builds are a few times slower */
	CHECK(dt < 3.0);
	mesh_destroy(s);
}

/* A scene with a known asymmetric shape, every view written out as PPM
 * into out_dir (created), or into a fresh folder under /tmp when NULL. */
static void write_gallery(const char *out_dir)
{
	struct r3d_err err;
	char tmp[] = "/tmp/r3d_preview_XXXXXX";
	const char *dir = out_dir;
	if (!dir)
		dir = mkdtemp(tmp);
	else if (!mkdir_p(&err, dir))
		dir = NULL;
	CHECK(dir != NULL);
	if (!dir)
		return;
	const float grey[3] = { 0.85f, 0.85f, 0.8f }, yellow[3] = { 0.95f, 0.8f, 0.2f };
	struct mesh *torso = sphere(0, 0, 0, 80, 64, 128);
	struct mesh *rt = sphere(-90, 0, 0, 30, 32, 64);  /* patient right: red */
	struct mesh *sup = sphere(0, 0, 100, 30, 32, 64); /* superior: blue */
	struct mesh *ant = sphere(0, -90, 20, 25, 32, 64); /* anterior: green */
	struct mesh *lft = sphere(70, 30, -70, 20, 32, 64); /* left posterior inferior */
	struct preview_mesh p[5] = { pm(torso, grey), pm(rt, RED), pm(sup, BLUE),
				     pm(ant, GREEN), pm(lft, yellow) };
	for (int v = 0; v < PREVIEW_NVIEWS; v++) {
		CHECK(preview_render(&err, p, 5, (enum preview_view)v, W, H, img, NULL));
		CHECK(write_ppm(dir, preview_view_name((enum preview_view)v), img));
	}
	printf("images: %s\n", dir);
	mesh_destroy(torso);
	mesh_destroy(rt);
	mesh_destroy(sup);
	mesh_destroy(ant);
	mesh_destroy(lft);
}

/* argv[1]: the folder for the images (optional). */
int main(int argc, char **argv)
{
	test_sphere_mesh();
	test_empty();
	test_area_and_hue();
	test_orientation();
	test_occlusion();
	test_lighting();
	test_annotation();
	test_deterministic_and_bad_input();
	test_speed();
	write_gallery(argc > 1 ? argv[1] : NULL);
	return test_summary();
}
