/*
 * phantom.c: the synthetic CT scene, its sampling geometry, partial-volume
 * rendering of one slice and the analytic truth (see r3d/phantom.h).
 * Rendering works line by line: every voxel row is a line in patient space,
 * and each shape cuts it in one interval found in closed form, so a 512x512
 * slice costs a few hundred thousand interval fills, not per-voxel tests.
 * Any thread; a struct phantom is read-only after phantom_init() or
 * phantom_init_shapes().
 */
#include "r3d/phantom.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define PHANTOM_EPS 1e-12

static double dot3(const double a[3], const double b[3])
{
	return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

static void cross3(const double a[3], const double b[3], double out[3])
{
	out[0] = a[1] * b[2] - a[2] * b[1];
	out[1] = a[2] * b[0] - a[0] * b[2];
	out[2] = a[0] * b[1] - a[1] * b[0];
}

static double norm3(const double a[3])
{
	return sqrt(dot3(a, a));
}

/* Distance from the centre of the parallelepiped spanned by a, b, c to the
 * pair of faces spanned by b and c. */
static double half_height(const double a[3], const double b[3], const double c[3])
{
	double bc[3];

	cross3(b, c, bc);
	return fabs(dot3(a, bc)) / (2.0 * norm3(bc));
}

static void shape_set(struct phantom_shape *s, enum phantom_kind kind, const char *name,
		      const char *structure, double hu, const double c0[3], double r,
		      double cx, double cy, double cz, double r0, double r1, double r2)
{
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->name = name;
	s->structure = structure;
	s->hu = hu;
	s->center[0] = c0[0] + cx * r;
	s->center[1] = c0[1] + cy * r;
	s->center[2] = c0[2] + cz * r;
	s->radii[0] = r0 * r;
	s->radii[1] = r1 * r;
	s->radii[2] = r2 * r;
	s->axis[2] = 1.0;
	s->cut_from = -1;
}

static void scene_place(struct phantom *p, double r)
{
	const double *c = p->req.center;
	struct phantom_shape *s = p->shapes;
	double oblique_axis[3] = {0.2, 0.3, 1.0};
	double len = norm3(oblique_axis);
	size_t n = 0;

	/* Painted in this order; everything but the table lies inside the body. */
	shape_set(&s[n++], PHANTOM_ELLIPSOID, "body", "body", PHANTOM_HU_BODY, c, r,
		  0, 0, 0, 0.80, 0.55, 0.90);
	shape_set(&s[n++], PHANTOM_BOX, "table", "table", 300, c, r,
		  0, 0.62, 0, 0.50, 0.03, 0.50);
	shape_set(&s[n++], PHANTOM_ELLIPSOID, "bone_sphere", "bone", 1000, c, r,
		  0.35, 0, -0.45, 0.15, 0.15, 0.15);
	shape_set(&s[n++], PHANTOM_ELLIPSOID, "small_bone_sphere", "bone", 700, c, r,
		  0, -0.30, -0.30, 0.08, 0.08, 0.08);
	shape_set(&s[n++], PHANTOM_ELLIPSOID, "bone_shell", "bone", 800, c, r,
		  -0.30, 0, 0.30, 0.22, 0.18, 0.20);
	shape_set(&s[n++], PHANTOM_ELLIPSOID, "shell_inside", "soft", 30, c, r,
		  -0.30, 0, 0.30, 0.22 - 0.035, 0.18 - 0.035, 0.20 - 0.035);
	s[n - 1].cut_from = (int)n - 2;
	shape_set(&s[n++], PHANTOM_ELLIPSOID, "air_cavity", "air", PHANTOM_HU_AIR, c, r,
		  0.30, -0.05, 0.30, 0.20, 0.20, 0.25);
	/* An airway leaving the cavity upwards (its cap just above the cavity's top). */
	shape_set(&s[n++], PHANTOM_CYLINDER, "airway", "air", PHANTOM_HU_AIR, c, r,
		  0.30, -0.05, 0.65, 0.04, 0, 0);
	s[n - 1].half_length = 0.10 * r;
	shape_set(&s[n++], PHANTOM_CYLINDER, "vessel_straight", "vessel", 300, c, r,
		  0, 0.25, -0.10, 0.07, 0, 0);
	s[n - 1].half_length = 0.40 * r;
	shape_set(&s[n++], PHANTOM_CYLINDER, "vessel_oblique", "vessel", 300, c, r,
		  -0.30, 0.10, -0.40, 0.06, 0, 0);
	s[n - 1].half_length = 0.25 * r;
	for (int i = 0; i < 3; i++)
		s[n - 1].axis[i] = oblique_axis[i] / len;
	p->nshapes = n;
}

/* Checks the request and derives the slice geometry; *r gets the radius of
 * the sphere inscribed in the sampled parallelepiped. */
static bool geometry_init(struct r3d_err *err, struct phantom *p, const struct phantom_request *req,
			  double *r_out)
{
	double a = req->angle_deg * M_PI / 180.0;
	double ca = cos(a), sa = sin(a);
	double ea[3], eb[3], ec[3];
	double r;

	memset(p, 0, sizeof(*p));
	if (req->columns < 8 || req->rows < 8 || req->columns > PHANTOM_MAX_DIM ||
	    req->rows > PHANTOM_MAX_DIM)
		return r3d_err_set(err, R3D_EINVAL, "slice size %ux%u outside 8..%d", req->columns,
				   req->rows, PHANTOM_MAX_DIM);
	if (req->slices < 2 || req->slices > PHANTOM_MAX_SLICES)
		return r3d_err_set(err, R3D_EINVAL, "%u slices outside 2..%d", req->slices,
				   PHANTOM_MAX_SLICES);
	for (int i = 0; i < 3; i++)
		if (!(req->spacing[i] >= 0.01 && req->spacing[i] <= 100.0))
			return r3d_err_set(err, R3D_EINVAL, "spacing %g mm outside 0.01..100",
					   req->spacing[i]);
	if (!(req->uneven >= 0.0 && req->uneven <= PHANTOM_MAX_UNEVEN))
		return r3d_err_set(err, R3D_EINVAL, "unevenness %g outside 0..%g", req->uneven,
				   PHANTOM_MAX_UNEVEN);
	if (!(req->angle_deg >= 0.0 && req->angle_deg <= PHANTOM_MAX_ANGLE_DEG))
		return r3d_err_set(err, R3D_EINVAL, "angle %g outside 0..%g degrees", req->angle_deg,
				   PHANTOM_MAX_ANGLE_DEG);
	if (req->sublines > PHANTOM_MAX_SUBLINES)
		return r3d_err_set(err, R3D_EINVAL, "%u sub-lines per voxel outside 1..%d",
				   req->sublines, PHANTOM_MAX_SUBLINES);
	p->req = *req;
	if (p->req.sublines == 0)
		p->req.sublines = PHANTOM_SUBLINES;
	switch (req->geometry) {
	case PHANTOM_AXIAL:
		p->row_dir[0] = 1;
		p->col_dir[1] = 1;
		break;
	case PHANTOM_OBLIQUE: {
		/* R = Rz(a) Rx(a): rows = R e_x, columns = R e_y. */
		double rx_ey[3] = {0, ca, sa};
		p->row_dir[0] = ca;
		p->row_dir[1] = sa;
		p->row_dir[2] = 0;
		p->col_dir[0] = -sa * rx_ey[1];
		p->col_dir[1] = ca * rx_ey[1];
		p->col_dir[2] = rx_ey[2];
		break;
	}
	case PHANTOM_TILT:
		p->row_dir[0] = 1;
		p->col_dir[1] = ca;
		p->col_dir[2] = -sa;
		p->tilt_deg = req->angle_deg;
		break;
	default:
		return r3d_err_set(err, R3D_EINVAL, "unknown geometry %d", (int)req->geometry);
	}
	cross3(p->row_dir, p->col_dir, p->normal);
	for (int i = 0; i < 3; i++) {
		if (req->geometry == PHANTOM_TILT)
			p->step[i] = i == 2 ? req->spacing[2] : 0.0;
		else
			p->step[i] = req->spacing[2] * p->normal[i];
		p->origin[i] = req->center[i] -
			       0.5 * (req->columns - 1) * req->spacing[0] * p->row_dir[i] -
			       0.5 * (req->rows - 1) * req->spacing[1] * p->col_dir[i] -
			       0.5 * (req->slices - 1) * p->step[i];
		ea[i] = (req->columns - 1) * req->spacing[0] * p->row_dir[i];
		eb[i] = (req->rows - 1) * req->spacing[1] * p->col_dir[i];
		ec[i] = (req->slices - 1) * p->step[i];
	}
	/* The scene fits the sphere inscribed in the sampled parallelepiped. */
	r = half_height(ea, eb, ec);
	if (half_height(eb, ec, ea) < r)
		r = half_height(eb, ec, ea);
	if (half_height(ec, ea, eb) < r)
		r = half_height(ec, ea, eb);
	*r_out = r;
	return true;
}

bool phantom_init(struct r3d_err *err, struct phantom *p, const struct phantom_request *req)
{
	double r;

	if (!geometry_init(err, p, req, &r))
		return false;
	scene_place(p, r);
	return true;
}

static bool shape_valid(struct r3d_err *err, const struct phantom_shape *s, size_t i)
{
	int nr = s->kind == PHANTOM_CYLINDER ? 1 : 3;

	if (s->kind != PHANTOM_ELLIPSOID && s->kind != PHANTOM_CYLINDER && s->kind != PHANTOM_BOX)
		return r3d_err_set(err, R3D_EINVAL, "shape %zu: unknown kind %d", i, (int)s->kind);
	for (int a = 0; a < 3; a++)
		if (!isfinite(s->center[a]) || !isfinite(s->axis[a]))
			return r3d_err_set(err, R3D_EINVAL, "shape %zu: non-finite centre or axis", i);
	for (int a = 0; a < nr; a++)
		if (!(s->radii[a] > 0.0 && isfinite(s->radii[a])))
			return r3d_err_set(err, R3D_EINVAL, "shape %zu: radius %g not positive", i,
					   s->radii[a]);
	if (s->kind == PHANTOM_CYLINDER &&
	    (!(s->half_length > 0.0 && isfinite(s->half_length)) ||
	     fabs(norm3(s->axis) - 1.0) > 1e-9))
		return r3d_err_set(err, R3D_EINVAL, "shape %zu: cylinder needs a unit axis and "
				   "a positive half length", i);
	if (!isfinite(s->hu) || s->cut_from < -1 || s->cut_from >= (int)i)
		return r3d_err_set(err, R3D_EINVAL, "shape %zu: bad value or cut_from", i);
	return true;
}

bool phantom_init_shapes(struct r3d_err *err, struct phantom *p,
			 const struct phantom_request *req,
			 const struct phantom_shape *shapes, size_t nshapes)
{
	double r;

	if (nshapes < 1 || nshapes > PHANTOM_MAX_SHAPES)
		return r3d_err_set(err, R3D_EINVAL, "%zu shapes outside 1..%d", nshapes,
				   PHANTOM_MAX_SHAPES);
	for (size_t i = 0; i < nshapes; i++)
		if (!shape_valid(err, &shapes[i], i))
			return false;
	if (!geometry_init(err, p, req, &r))
		return false;
	memcpy(p->shapes, shapes, nshapes * sizeof(shapes[0]));
	p->nshapes = nshapes;
	return true;
}

void phantom_slice_position(const struct phantom *p, uint32_t k, double pos[3])
{
	for (int i = 0; i < 3; i++)
		pos[i] = p->origin[i] + ((double)k + ((k & 1) ? p->req.uneven : 0.0)) * p->step[i];
}

/* Clips [*lo, *hi] to the t with |a + t b| <= h. False when empty. */
static bool clip_slab(double a, double b, double h, double *lo, double *hi)
{
	if (fabs(b) < PHANTOM_EPS)
		return fabs(a) <= h;
	double t0 = (-h - a) / b, t1 = (h - a) / b;
	if (t0 > t1) {
		double t = t0;
		t0 = t1;
		t1 = t;
	}
	if (t0 > *lo)
		*lo = t0;
	if (t1 < *hi)
		*hi = t1;
	return *lo < *hi;
}

/* Clips [*lo, *hi] to the t with A t^2 + B t + C <= 0 (A >= 0). */
static bool clip_quadric(double qa, double qb, double qc, double *lo, double *hi)
{
	if (qa < PHANTOM_EPS)
		return qc <= 0;  /* parallel to the axis: inside everywhere or nowhere */
	double disc = qb * qb - 4 * qa * qc;
	if (disc <= 0)
		return false;
	double sq = sqrt(disc);
	double t0 = (-qb - sq) / (2 * qa), t1 = (-qb + sq) / (2 * qa);
	if (t0 > *lo)
		*lo = t0;
	if (t1 < *hi)
		*hi = t1;
	return *lo < *hi;
}

/* The interval of t (voxel index units) where q + t d lies inside s. */
static bool shape_cut(const struct phantom_shape *s, const double q[3], const double d[3],
		      double *lo, double *hi)
{
	double w[3];

	*lo = -1e30;
	*hi = 1e30;
	for (int i = 0; i < 3; i++)
		w[i] = q[i] - s->center[i];
	switch (s->kind) {
	case PHANTOM_ELLIPSOID: {
		double u[3], v[3];
		for (int i = 0; i < 3; i++) {
			u[i] = w[i] / s->radii[i];
			v[i] = d[i] / s->radii[i];
		}
		return clip_quadric(dot3(v, v), 2 * dot3(u, v), dot3(u, u) - 1, lo, hi);
	}
	case PHANTOM_CYLINDER: {
		double wa = dot3(w, s->axis), va = dot3(d, s->axis);
		double pw[3], pv[3];
		for (int i = 0; i < 3; i++) {
			pw[i] = w[i] - wa * s->axis[i];
			pv[i] = d[i] - va * s->axis[i];
		}
		if (!clip_slab(wa, va, s->half_length, lo, hi))
			return false;
		return clip_quadric(dot3(pv, pv), 2 * dot3(pw, pv),
				    dot3(pw, pw) - s->radii[0] * s->radii[0], lo, hi);
	}
	case PHANTOM_BOX:
		for (int i = 0; i < 3; i++)
			if (!clip_slab(w[i], d[i], s->radii[i], lo, hi))
				return false;
		return true;
	}
	return false;
}

bool phantom_shape_contains(const struct phantom_shape *s, const double x[3])
{
	double w[3];

	for (int i = 0; i < 3; i++)
		w[i] = x[i] - s->center[i];
	switch (s->kind) {
	case PHANTOM_ELLIPSOID: {
		double q = 0;
		for (int i = 0; i < 3; i++)
			q += (w[i] / s->radii[i]) * (w[i] / s->radii[i]);
		return q <= 1.0;
	}
	case PHANTOM_CYLINDER: {
		double wa = dot3(w, s->axis), rr = dot3(w, w) - wa * wa;
		return fabs(wa) <= s->half_length && rr <= s->radii[0] * s->radii[0];
	}
	case PHANTOM_BOX:
		return fabs(w[0]) <= s->radii[0] && fabs(w[1]) <= s->radii[1] &&
		       fabs(w[2]) <= s->radii[2];
	}
	return false;
}

void phantom_render_slice(const struct phantom *p, uint32_t k, int16_t *hu)
{
	uint32_t nx = p->req.columns, ny = p->req.rows;
	float row_sum[PHANTOM_MAX_DIM];
	float sub[PHANTOM_MAX_DIM];
	double d[3], base[3], q[3];
	const float air = (float)PHANTOM_HU_AIR;
	const int nl = (int)p->req.sublines;
	const float nsub = (float)(nl * nl);

	for (int i = 0; i < 3; i++)
		d[i] = p->req.spacing[0] * p->row_dir[i];
	for (uint32_t j = 0; j < ny; j++) {
		for (uint32_t i = 0; i < nx; i++)
			row_sum[i] = 0;
		for (int i = 0; i < 3; i++)
			base[i] = p->origin[i] + ((double)k + ((k & 1) ? p->req.uneven : 0.0)) * p->step[i] +
				  (double)j * p->req.spacing[1] * p->col_dir[i];
		for (int sa = 0; sa < nl; sa++) {
			for (int sb = 0; sb < nl; sb++) {
				double fa = ((double)sa + 0.5) / nl - 0.5;
				double fb = ((double)sb + 0.5) / nl - 0.5;
				long hull_lo = (long)nx, hull_hi = -1;
				double lo[PHANTOM_MAX_SHAPES], hi[PHANTOM_MAX_SHAPES];
				bool hit[PHANTOM_MAX_SHAPES];

				for (int i = 0; i < 3; i++)
					q[i] = base[i] + fa * p->req.spacing[1] * p->col_dir[i] +
					       fb * p->step[i];
				for (size_t s = 0; s < p->nshapes; s++) {
					hit[s] = shape_cut(&p->shapes[s], q, d, &lo[s], &hi[s]);
					if (!hit[s])
						continue;
					if (hi[s] < -0.5 || lo[s] > (double)nx - 0.5) {
						hit[s] = false;
						continue;
					}
					long a = lo[s] < -0.5 ? 0 : (long)floor(lo[s] + 0.5);
					long b = hi[s] > (double)nx - 0.5 ? (long)nx - 1
									  : (long)floor(hi[s] + 0.5);
					if (a < hull_lo)
						hull_lo = a;
					if (b > hull_hi)
						hull_hi = b;
				}
				for (long i = hull_lo; i <= hull_hi; i++)
					sub[i] = air;
				for (size_t s = 0; s < p->nshapes; s++) {
					if (!hit[s])
						continue;
					float v = (float)p->shapes[s].hu;
					long a = lo[s] < -0.5 ? 0 : (long)floor(lo[s] + 0.5);
					long b = hi[s] > (double)nx - 0.5 ? (long)nx - 1
									  : (long)floor(hi[s] + 0.5);
					for (long i = a; i <= b; i++) {
						double c0 = (double)i - 0.5 > lo[s] ? (double)i - 0.5 : lo[s];
						double c1 = (double)i + 0.5 < hi[s] ? (double)i + 0.5 : hi[s];
						float f = (float)(c1 - c0);
						if (f <= 0)
							continue;
						if (f >= 1)
							sub[i] = v;
						else
							sub[i] = sub[i] * (1 - f) + v * f;
					}
				}
				for (long i = hull_lo; i <= hull_hi; i++)
					row_sum[i] += sub[i] - air;
			}
		}
		for (uint32_t i = 0; i < nx; i++)
			hu[(size_t)j * nx + i] = (int16_t)lrintf(air + row_sum[i] / nsub);
	}
}

static double shape_volume(const struct phantom_shape *s)
{
	switch (s->kind) {
	case PHANTOM_ELLIPSOID:
		return 4.0 / 3.0 * M_PI * s->radii[0] * s->radii[1] * s->radii[2];
	case PHANTOM_CYLINDER:
		return M_PI * s->radii[0] * s->radii[0] * 2.0 * s->half_length;
	case PHANTOM_BOX:
		return 8.0 * s->radii[0] * s->radii[1] * s->radii[2];
	}
	return 0;
}

void phantom_shape_truth(const struct phantom *p, size_t i, double *volume_mm3, double centroid[3])
{
	const struct phantom_shape *s = &p->shapes[i];
	double v = shape_volume(s), m[3];

	for (int a = 0; a < 3; a++)
		m[a] = v * s->center[a];
	for (size_t j = 0; j < p->nshapes; j++) {
		if (p->shapes[j].cut_from != (int)i)
			continue;
		double vj = shape_volume(&p->shapes[j]);
		v -= vj;
		for (int a = 0; a < 3; a++)
			m[a] -= vj * p->shapes[j].center[a];
	}
	*volume_mm3 = v;
	for (int a = 0; a < 3; a++)
		centroid[a] = v > 0 ? m[a] / v : s->center[a];
}

static const char *geometry_name(enum phantom_geometry g)
{
	switch (g) {
	case PHANTOM_AXIAL:
		return "axial";
	case PHANTOM_OBLIQUE:
		return "oblique";
	case PHANTOM_TILT:
		return "tilt";
	}
	return "unknown";
}

static const char *kind_name(enum phantom_kind k)
{
	switch (k) {
	case PHANTOM_ELLIPSOID:
		return "ellipsoid";
	case PHANTOM_CYLINDER:
		return "cylinder";
	case PHANTOM_BOX:
		return "box";
	}
	return "unknown";
}

static void json_vec(FILE *f, const double *v, int n)
{
	fputc('[', f);
	for (int i = 0; i < n; i++)
		fprintf(f, "%s%.9g", i > 0 ? ", " : "", v[i]);
	fputc(']', f);
}

bool phantom_truth_write(struct r3d_err *err, const struct phantom *p, const char *path,
			 const char *series_uid, const char *transfer_syntax)
{
	static const char *const structures[] = {"body", "table", "bone", "soft", "air", "vessel"};
	char tmp[4096];
	FILE *f = NULL;
	bool ok = false;
	double iop[6];
	double spacing_normal = fabs(dot3(p->step, p->normal));

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return r3d_err_set(err, R3D_EINVAL, "path too long: '%s'", path);
	f = fopen(tmp, "w");
	if (f == NULL)
		return r3d_err_set(err, R3D_EIO, "cannot create '%s'", tmp);
	memcpy(iop, p->row_dir, sizeof(p->row_dir));
	memcpy(iop + 3, p->col_dir, sizeof(p->col_dir));
	fprintf(f, "{\n  \"generator\": \"recon3d-phantom\",\n");
	fprintf(f, "  \"series_instance_uid\": \"%s\",\n", series_uid);
	fprintf(f, "  \"transfer_syntax\": \"%s\",\n", transfer_syntax);
	fprintf(f, "  \"coordinates\": \"patient LPS, millimetres\",\n");
	fprintf(f, "  \"geometry\": {\n    \"kind\": \"%s\",\n    \"angle_deg\": %.9g,\n",
		geometry_name(p->req.geometry), p->req.angle_deg);
	fprintf(f, "    \"columns\": %u,\n    \"rows\": %u,\n    \"slices\": %u,\n", p->req.columns,
		p->req.rows, p->req.slices);
	fprintf(f, "    \"pixel_spacing_mm\": ");
	double ps[2] = {p->req.spacing[1], p->req.spacing[0]};
	json_vec(f, ps, 2);
	fprintf(f, ",\n    \"slice_step_mm\": %.9g,\n    \"slice_spacing_along_normal_mm\": %.9g,\n",
		p->req.spacing[2], spacing_normal);
	fprintf(f, "    \"image_orientation_patient\": ");
	json_vec(f, iop, 6);
	fprintf(f, ",\n    \"normal\": ");
	json_vec(f, p->normal, 3);
	fprintf(f, ",\n    \"first_position\": ");
	json_vec(f, p->origin, 3);
	fprintf(f, ",\n    \"position_step\": ");
	json_vec(f, p->step, 3);
	fprintf(f, ",\n    \"odd_slice_shift_steps\": %.9g", p->req.uneven);
	fprintf(f, ",\n    \"gantry_tilt_deg\": %.9g,\n    \"center\": ", p->tilt_deg);
	json_vec(f, p->req.center, 3);
	fprintf(f, "\n  },\n  \"hu_outside\": %d,\n  \"shapes\": [\n", PHANTOM_HU_AIR);
	for (size_t i = 0; i < p->nshapes; i++) {
		const struct phantom_shape *s = &p->shapes[i];
		double v, c[3];
		phantom_shape_truth(p, i, &v, c);
		fprintf(f, "    {\"name\": \"%s\", \"structure\": \"%s\", \"kind\": \"%s\", "
			"\"hu\": %.9g,\n     \"center_lps_mm\": ", s->name, s->structure,
			kind_name(s->kind), s->hu);
		json_vec(f, s->center, 3);
		fprintf(f, ", \"radii_mm\": ");
		json_vec(f, s->radii, s->kind == PHANTOM_CYLINDER ? 1 : 3);
		if (s->kind == PHANTOM_CYLINDER) {
			fprintf(f, ", \"axis\": ");
			json_vec(f, s->axis, 3);
			fprintf(f, ", \"half_length_mm\": %.9g", s->half_length);
		}
		if (s->cut_from >= 0)
			fprintf(f, ", \"cut_from\": \"%s\"", p->shapes[s->cut_from].name);
		fprintf(f, ",\n     \"volume_mm3\": %.9g, \"volume_ml\": %.9g, \"centroid_lps_mm\": ",
			v, v / 1000.0);
		json_vec(f, c, 3);
		fprintf(f, "}%s\n", i + 1 < p->nshapes ? "," : "");
	}
	fprintf(f, "  ],\n  \"structures\": {\n");
	for (size_t k = 0; k < sizeof(structures) / sizeof(structures[0]); k++) {
		double vt = 0, m[3] = {0, 0, 0};
		for (size_t i = 0; i < p->nshapes; i++) {
			double v, c[3];
			if (strcmp(p->shapes[i].structure, structures[k]) != 0)
				continue;
			phantom_shape_truth(p, i, &v, c);
			vt += v;
			for (int a = 0; a < 3; a++)
				m[a] += v * c[a];
		}
		for (int a = 0; a < 3; a++)
			m[a] = vt > 0 ? m[a] / vt : 0;
		fprintf(f, "    \"%s\": {\"volume_mm3\": %.9g, \"volume_ml\": %.9g, "
			"\"centroid_lps_mm\": ", structures[k], vt, vt / 1000.0);
		json_vec(f, m, 3);
		fprintf(f, "}%s\n", k + 1 < sizeof(structures) / sizeof(structures[0]) ? "," : "");
	}
	fprintf(f, "  }\n}\n");
	if (ferror(f)) {
		r3d_err_set(err, R3D_EIO, "cannot write '%s'", tmp);
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		r3d_err_set(err, R3D_EIO, "cannot write '%s'", tmp);
		goto out;
	}
	f = NULL;
	if (rename(tmp, path) != 0) {
		r3d_err_set(err, R3D_EIO, "cannot rename '%s' to '%s'", tmp, path);
		goto out;
	}
	ok = true;
out:
	if (f != NULL)
		fclose(f);
	if (!ok)
		remove(tmp);
	return ok;
}
