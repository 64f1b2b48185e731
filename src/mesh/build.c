/*
 * build.c: the mesh stage for one structure in one call, in the order the
 * daemon's workers and the offline command use: isosurface in voxel index,
 * transform to patient LPS millimetres, Taubin smoothing in millimetres,
 * decimation to the structure's budget, final check. Any thread; it starts
 * its own threads for the isosurface and the smoothing.
 */
#include <string.h>

#include "r3d/mesh.h"
#include "r3d/util.h"

#define BUILD_DEFAULT_MAX_ERROR 0.005f

void mesh_build_defaults(struct mesh_build_params *p)
{
	memset(p, 0, sizeof(*p));
	p->iso = 0.5;
	p->threads = 1;
	p->affine[0] = p->affine[5] = p->affine[10] = p->affine[15] = 1.0;
	p->smooth = true;
	mesh_smooth_defaults(&p->smoothing);
	p->max_tri = 0;
	p->max_error = BUILD_DEFAULT_MAX_ERROR;
}

bool mesh_build(struct r3d_err *err, const struct mesh_volume *vol,
		const struct mesh_build_params *p, struct mesh_iso_work *work,
		struct mesh **out, struct mesh_stats *st, struct mesh_build_times *times)
{
	struct mesh_build_times tm = {0};
	struct mesh *m = NULL;
	struct mesh_smooth_params sp = p->smoothing;
	double t0;
	bool ok = false;

	*out = NULL;
	t0 = clock_mono_s();
	if (!mesh_isosurface(err, vol, p->iso, p->threads, work, &m))
		goto out;
	tm.isosurface_s = clock_mono_s() - t0;

	t0 = clock_mono_s();
	if (!mesh_transform(err, m, p->affine))
		goto out;
	tm.transform_s = clock_mono_s() - t0;

	if (p->smooth) {
		t0 = clock_mono_s();
		sp.threads = p->threads;
		if (!mesh_smooth(err, m, &sp))
			goto out;
		tm.smooth_s = clock_mono_s() - t0;
	}
	if (p->max_tri > 0) {
		t0 = clock_mono_s();
		if (!mesh_decimate(err, m, p->max_tri, p->max_error, p->threads))
			goto out;
		tm.decimate_s = clock_mono_s() - t0;
	}
	t0 = clock_mono_s();
	if (!mesh_check(err, m, st))
		goto out;
	tm.check_s = clock_mono_s() - t0;
	*out = m;
	m = NULL;
	ok = true;
out:
	if (times != NULL)
		*times = tm;
	mesh_destroy(m);
	return ok;
}
