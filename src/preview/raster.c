/*
 * raster.c: preview_render(): orthographic projection of every mesh onto
 * the view's image plane, fitted to the scene's projected extent, a float
 * z-buffer, Gouraud-interpolated Lambert + ambient intensity (light from
 * the viewer, linear light), then the colours composited once per pixel
 * and the annotation burned in. Single-threaded, deterministic; any thread.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "preview_int.h"
#include "r3d/util.h"

/* Screen-space vertex: pixel x, pixel y (down), depth (larger is nearer),
 * shading intensity. */
struct svert {
	float x, y, z, i;
};

struct target {
	int w, h;
	float *zbuf;      /* w * h, -INFINITY where empty */
	float *ibuf;      /* intensity of the nearest surface */
	uint16_t *idbuf;  /* mesh index + 1 of the nearest surface, 0: background */
};

static double dot3(const double a[3], const float p[3])
{
	return a[0] * p[0] + a[1] * p[1] + a[2] * p[2];
}

static double srgb_to_linear(double c)
{
	return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
}

static uint8_t linear_to_srgb8(double l)
{
	if (l <= 0)
		return 0;
	if (l >= 1)
		return 255;
	double c = l <= 0.0031308 ? 12.92 * l : 1.055 * pow(l, 1.0 / 2.4) - 0.055;
	return (uint8_t)(c * 255.0 + 0.5);
}

/* Checks indices and vertices; widens the projected extent [lo, hi] (right,
 * up) over the vertices the triangles use. */
static bool mesh_extent(struct r3d_err *err, size_t k, const struct mesh *m,
			const struct preview_camera *cam, double lo[2], double hi[2])
{
	for (size_t t = 0; t < 3 * m->ntri; t++)
		if (m->tri[t] >= m->nvert)
			return r3d_err_set(err, R3D_EINVAL,
					   "preview: mesh %zu: triangle %zu uses vertex %u of %zu",
					   k, t / 3, (unsigned)m->tri[t], m->nvert);
	for (size_t v = 0; v < m->nvert; v++) {
		const float *p = m->xyz + 3 * v;
		if (!isfinite(p[0]) || !isfinite(p[1]) || !isfinite(p[2]))
			return r3d_err_set(err, R3D_EINVAL,
					   "preview: mesh %zu: vertex %zu is not finite", k, v);
		double r = dot3(cam->right, p), u = dot3(cam->up, p);
		if (r < lo[0]) lo[0] = r;
		if (r > hi[0]) hi[0] = r;
		if (u < lo[1]) lo[1] = u;
		if (u > hi[1]) hi[1] = u;
	}
	return true;
}

/* Projects and shades the vertices of m into sv (m->nvert entries); nrm is
 * scratch of 3 * nvert floats. */
static void mesh_project(const struct mesh *m, const struct preview_camera *cam,
			 double scale, const double centre[2], int w, int h,
			 float *nrm, struct svert *sv)
{
	memset(nrm, 0, 3 * m->nvert * sizeof *nrm);
	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *ix = m->tri + 3 * t;
		const float *a = m->xyz + 3 * ix[0], *b = m->xyz + 3 * ix[1],
			    *c = m->xyz + 3 * ix[2];
		float e1[3] = { b[0] - a[0], b[1] - a[1], b[2] - a[2] };
		float e2[3] = { c[0] - a[0], c[1] - a[1], c[2] - a[2] };
		float n[3] = { e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2],
			       e1[0] * e2[1] - e1[1] * e2[0] }; /* area-weighted */
		for (int j = 0; j < 3; j++) {
			float *o = nrm + 3 * ix[j];
			o[0] += n[0];
			o[1] += n[1];
			o[2] += n[2];
		}
	}
	for (size_t v = 0; v < m->nvert; v++) {
		const float *p = m->xyz + 3 * v;
		const float *n = nrm + 3 * v;
		double len = sqrt((double)n[0] * n[0] + (double)n[1] * n[1] + (double)n[2] * n[2]);
		double lambert = len > 0 ? fabs(dot3(cam->toward, n)) / len : 0;
		sv[v].x = (float)(0.5 * w + (dot3(cam->right, p) - centre[0]) * scale);
		sv[v].y = (float)(0.5 * h - (dot3(cam->up, p) - centre[1]) * scale);
		sv[v].z = (float)dot3(cam->toward, p);
		sv[v].i = (float)(PREVIEW_AMBIENT + (1.0 - PREVIEW_AMBIENT) * lambert);
	}
}

/* Edge function: twice the signed area of the screen triangle (a, b, p).
 * A point is inside a triangle when its three edge values have the sign of
 * the triangle's own (made positive by draw_triangle()). */
static double edge(double ax, double ay, double bx, double by, double px, double py)
{
	return (bx - ax) * (py - ay) - (by - ay) * (px - ax);
}

static void draw_triangle(struct target *tg, const struct svert *a, const struct svert *b,
			  const struct svert *c, uint16_t id)
{
	double area = edge(a->x, a->y, b->x, b->y, c->x, c->y);
	if (area == 0 || !isfinite(area))
		return;
	if (area < 0) { /* both sides are drawn: make the winding positive */
		const struct svert *t = b;
		b = c;
		c = t;
		area = -area;
	}
	double fminx = fmin(a->x, fmin(b->x, c->x)), fmaxx = fmax(a->x, fmax(b->x, c->x));
	double fminy = fmin(a->y, fmin(b->y, c->y)), fmaxy = fmax(a->y, fmax(b->y, c->y));
	/* pixel (x, y) has its centre at (x + 0.5, y + 0.5) */
	int x0 = (int)ceil(fminx - 0.5), x1 = (int)floor(fmaxx - 0.5);
	int y0 = (int)ceil(fminy - 0.5), y1 = (int)floor(fmaxy - 0.5);
	if (x0 < 0) x0 = 0;
	if (y0 < 0) y0 = 0;
	if (x1 > tg->w - 1) x1 = tg->w - 1;
	if (y1 > tg->h - 1) y1 = tg->h - 1;
	if (x0 > x1 || y0 > y1)
		return;

	/* Barycentric weights step linearly: w_a = edge(b, c, p) etc. */
	double px = x0 + 0.5, py = y0 + 0.5;
	double wa_row = edge(b->x, b->y, c->x, c->y, px, py);
	double wb_row = edge(c->x, c->y, a->x, a->y, px, py);
	double wc_row = edge(a->x, a->y, b->x, b->y, px, py);
	/* d/dx of edge(p0, p1, p) = -(p1.y - p0.y); d/dy = (p1.x - p0.x) */
	double wa_dx = -(c->y - b->y), wa_dy = c->x - b->x;
	double wb_dx = -(a->y - c->y), wb_dy = a->x - c->x;
	double wc_dx = -(b->y - a->y), wc_dy = b->x - a->x;
	double inv = 1.0 / area;

	for (int y = y0; y <= y1; y++) {
		double wa = wa_row, wb = wb_row, wc = wc_row;
		size_t row = (size_t)y * (size_t)tg->w;
		for (int x = x0; x <= x1; x++) {
			if (wa >= 0 && wb >= 0 && wc >= 0) {
				float z = (float)((wa * a->z + wb * b->z + wc * c->z) * inv);
				size_t o = row + (size_t)x;
				if (z > tg->zbuf[o]) {
					tg->zbuf[o] = z;
					tg->ibuf[o] = (float)((wa * a->i + wb * b->i + wc * c->i) * inv);
					tg->idbuf[o] = id;
				}
			}
			wa += wa_dx;
			wb += wb_dx;
			wc += wc_dx;
		}
		wa_row += wa_dy;
		wb_row += wb_dy;
		wc_row += wc_dy;
	}
}

bool preview_render(struct r3d_err *err, const struct preview_mesh *meshes, size_t n,
		    enum preview_view view, int w, int h, uint8_t *rgb_out,
		    struct preview_info *info)
{
	struct preview_info scratch_info;
	struct preview_camera cam;
	struct target tg = { w, h, NULL, NULL, NULL };
	float *nrm = NULL;
	struct svert *sv = NULL;
	size_t npix = 0, maxv = 0, ntri = 0;
	bool ok = false;

	if (!info)
		info = &scratch_info;
	memset(info, 0, sizeof *info);
	if (!rgb_out)
		return r3d_err_set(err, R3D_EINVAL, "preview: no output buffer");
	if (w < PREVIEW_MIN_DIM || w > PREVIEW_MAX_DIM || h < PREVIEW_MIN_DIM ||
	    h > PREVIEW_MAX_DIM)
		return r3d_err_set(err, R3D_EINVAL, "preview: image %d x %d outside %d..%d", w, h,
				   PREVIEW_MIN_DIM, PREVIEW_MAX_DIM);
	if (n > PREVIEW_MAX_MESHES)
		return r3d_err_set(err, R3D_EINVAL, "preview: %zu meshes, at most %d", n,
				   PREVIEW_MAX_MESHES);
	if (n > 0 && !meshes)
		return r3d_err_set(err, R3D_EINVAL, "preview: no meshes");
	if (!preview_camera_of(view, &cam))
		return r3d_err_set(err, R3D_EINVAL, "preview: unknown view %d", (int)view);
	npix = (size_t)w * (size_t)h;
	memset(rgb_out, 0, 3 * npix);

	/* Extent of the scene on the image plane. */
	double lo[2] = { INFINITY, INFINITY }, hi[2] = { -INFINITY, -INFINITY };
	for (size_t k = 0; k < n; k++) {
		const struct mesh *m = meshes[k].mesh;
		if (!m || m->ntri == 0)
			continue;
		if (!m->xyz || !m->tri)
			return r3d_err_set(err, R3D_EINVAL, "preview: mesh %zu has no buffers", k);
		for (int c = 0; c < 3; c++)
			if (!(meshes[k].rgb[c] >= 0.0f && meshes[k].rgb[c] <= 1.0f))
				return r3d_err_set(err, R3D_EINVAL,
						   "preview: mesh %zu: colour outside [0, 1]", k);
		if (!mesh_extent(err, k, m, &cam, lo, hi))
			return false;
		if (m->nvert > maxv)
			maxv = m->nvert;
		ntri += m->ntri;
	}
	if (ntri == 0)
		return true; /* empty scene: background only */

	double avail = (double)(w < h ? w : h) * PREVIEW_MARGIN;
	double ext_r = hi[0] - lo[0], ext_u = hi[1] - lo[1];
	double sx = ext_r > 0 ? (w - 2 * avail) / ext_r : INFINITY;
	double sy = ext_u > 0 ? (h - 2 * avail) / ext_u : INFINITY;
	double scale = fmin(sx, sy);
	if (!isfinite(scale))
		scale = 1.0; /* a scene of one point or one line along the view */
	double centre[2] = { 0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1]) };

	size_t nrm_bytes, sv_bytes;
	if (!size_mul3(maxv, 3, sizeof *nrm, &nrm_bytes) || !size_mul(maxv, sizeof *sv, &sv_bytes)) {
		r3d_err_set(err, R3D_EINVAL, "preview: %zu vertices overflow", maxv);
		goto out;
	}
	tg.zbuf = malloc(npix * sizeof *tg.zbuf);
	tg.ibuf = malloc(npix * sizeof *tg.ibuf);
	tg.idbuf = calloc(npix, sizeof *tg.idbuf);
	nrm = malloc(nrm_bytes);
	sv = malloc(sv_bytes);
	if (!tg.zbuf || !tg.ibuf || !tg.idbuf || !nrm || !sv) {
		r3d_err_set(err, R3D_ENOMEM, "preview: no memory for %d x %d and %zu vertices", w,
			    h, maxv);
		goto out;
	}
	for (size_t i = 0; i < npix; i++) {
		tg.zbuf[i] = -INFINITY;
		tg.ibuf[i] = 0;
	}

	double lin[PREVIEW_MAX_MESHES][3];
	for (size_t k = 0; k < n; k++) {
		const struct mesh *m = meshes[k].mesh;
		for (int c = 0; c < 3; c++)
			lin[k][c] = srgb_to_linear(meshes[k].rgb[c]);
		if (!m || m->ntri == 0)
			continue;
		mesh_project(m, &cam, scale, centre, w, h, nrm, sv);
		for (size_t t = 0; t < m->ntri; t++) {
			const uint32_t *ix = m->tri + 3 * t;
			draw_triangle(&tg, sv + ix[0], sv + ix[1], sv + ix[2], (uint16_t)(k + 1));
		}
	}

	for (size_t i = 0; i < npix; i++) {
		if (tg.idbuf[i] == 0)
			continue;
		const double *l = lin[tg.idbuf[i] - 1];
		double s = tg.ibuf[i];
		rgb_out[3 * i + 0] = linear_to_srgb8(l[0] * s);
		rgb_out[3 * i + 1] = linear_to_srgb8(l[1] * s);
		rgb_out[3 * i + 2] = linear_to_srgb8(l[2] * s);
	}

	info->mm_per_pixel = 1.0 / scale;
	preview_annotate(rgb_out, w, h, &cam, info->mm_per_pixel, info);
	ok = true;
out:
	free(sv);
	free(nrm);
	free(tg.idbuf);
	free(tg.ibuf);
	free(tg.zbuf);
	return ok;
}
