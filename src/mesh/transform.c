/*
 * transform.c: maps a mesh from voxel-index coordinates to patient LPS
 * millimetres with the series' 4x4 voxel-to-LPS affine, which may be
 * sheared (gantry tilt) or mirrored. Any thread; one thread per mesh.
 *
 * Frame: input in voxel index (x fastest volume), output in LPS mm.
 */
#include <math.h>

#include "r3d/mesh.h"

/* Below this |det| (mm3 per voxel) the affine is treated as singular. */
#define MESH_AFFINE_MIN_DET 1e-12

bool mesh_transform(struct r3d_err *err, struct mesh *m, const double a[16])
{
	double det;

	for (int i = 0; i < 16; i++) {
		if (!isfinite(a[i]))
			return r3d_err_set(err, R3D_EINVAL, "transform: affine has a non-finite entry");
	}
	if (a[12] != 0.0 || a[13] != 0.0 || a[14] != 0.0 || a[15] != 1.0)
		return r3d_err_set(err, R3D_EINVAL, "transform: last row is not 0 0 0 1");
	det = a[0] * (a[5] * a[10] - a[6] * a[9]) - a[1] * (a[4] * a[10] - a[6] * a[8]) +
	      a[2] * (a[4] * a[9] - a[5] * a[8]);
	if (fabs(det) < MESH_AFFINE_MIN_DET)
		return r3d_err_set(err, R3D_EINVAL, "transform: affine is singular (det %g)", det);

	for (size_t v = 0; v < m->nvert; v++) {
		float *p = m->xyz + 3 * v;
		double x = p[0], y = p[1], z = p[2];
		p[0] = (float)(a[0] * x + a[1] * y + a[2] * z + a[3]);
		p[1] = (float)(a[4] * x + a[5] * y + a[6] * z + a[7]);
		p[2] = (float)(a[8] * x + a[9] * y + a[10] * z + a[11]);
	}
	/* A mirror turns counter-clockwise into clockwise: swap two corners. */
	if (det < 0.0) {
		for (size_t t = 0; t < m->ntri; t++) {
			uint32_t *f = m->tri + 3 * t, s = f[1];
			f[1] = f[2];
			f[2] = s;
		}
	}
	return true;
}

bool mesh_transform_planes(struct r3d_err *err, struct mesh *m, const double a[16],
			   const double *planes, size_t nplanes)
{
	double u[3] = {a[0], a[4], a[8]}, w[3] = {a[1], a[5], a[9]}, step[3], cr[3], det;

	if (nplanes == 0 || planes == NULL)
		return r3d_err_set(err, R3D_EINVAL, "transform: no planes");
	for (size_t i = 0; i < 3 * nplanes; i++) {
		if (!isfinite(planes[i]))
			return r3d_err_set(err, R3D_EINVAL, "transform: plane %zu is not finite", i / 3);
	}
	for (int k = 0; k < 3; k++)
		step[k] = nplanes > 1 ? planes[3 + k] - planes[k] : a[4 * k + 2];
	cr[0] = u[1] * w[2] - u[2] * w[1];
	cr[1] = u[2] * w[0] - u[0] * w[2];
	cr[2] = u[0] * w[1] - u[1] * w[0];
	det = cr[0] * step[0] + cr[1] * step[1] + cr[2] * step[2];
	if (!isfinite(det) || fabs(det) < MESH_AFFINE_MIN_DET)
		return r3d_err_set(err, R3D_EINVAL, "transform: planes and axes are degenerate (det %g)",
				   det);
	for (size_t v = 0; v < m->nvert; v++) {
		float *p = m->xyz + 3 * v;
		double x = p[0], y = p[1], z = p[2], o[3];
		if (nplanes == 1) {
			for (int k = 0; k < 3; k++)
				o[k] = planes[k] + z * step[k];
		} else {
			double f = floor(z);
			size_t k0 = f < 0 ? 0 : (f > (double)(nplanes - 2) ? nplanes - 2 : (size_t)f);
			double t = z - (double)k0;   /* < 0 or > 1 past the ends: extrapolated */
			for (int k = 0; k < 3; k++)
				o[k] = planes[3 * k0 + k] + t * (planes[3 * (k0 + 1) + k] - planes[3 * k0 + k]);
		}
		for (int k = 0; k < 3; k++)
			p[k] = (float)(o[k] + x * u[k] + y * w[k]);
	}
	if (det < 0.0) {
		for (size_t t = 0; t < m->ntri; t++) {
			uint32_t *f = m->tri + 3 * t, s = f[1];
			f[1] = f[2];
			f[2] = s;
		}
	}
	return true;
}
