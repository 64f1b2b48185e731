/*
 * build.c: the mesh stage for one structure in one call, in the order the
 * daemon's workers and the offline command use: isosurface in voxel index,
 * transform to patient LPS millimetres, Taubin smoothing in millimetres,
 * decimation to the structure's budget, final check. Any thread; it starts
 * its own threads for the isosurface and the smoothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "r3d/mesh.h"
#include "r3d/util.h"

/* Decimates *mp to the budget and measures the error against the
 * undecimated surface. The collapses keep a closed 2-manifold so by
 * construction; should the check, welded by position as an STL is read,
 * still find a defect the undecimated surface did not have, the
 * undecimated surface is kept (the last resort, said in tm->fallback). */
static bool build_decimate(struct r3d_err *err, struct mesh **mp,
			   const struct mesh_build_params *p, struct mesh_stats *st,
			   struct mesh_build_times *tm)
{
	struct mesh *orig = NULL;
	bool ok = false;
	double t0;

	tm->decimate_target = p->max_tri;
	if ((*mp)->ntri <= p->max_tri && !(p->error_target_mm > 0))
		return mesh_decimate(err, *mp, p->max_tri, p->error_target_mm, p->threads, &tm->decimate);
	orig = mesh_copy(err, *mp);
	if (orig == NULL)
		goto out;
	if (!mesh_decimate(err, *mp, p->max_tri, p->error_target_mm, p->threads, &tm->decimate) ||
	    !mesh_weld(err, *mp) || !mesh_check(err, *mp, st))
		goto out;
	tm->decimated = true;
	if (!(st->closed && st->manifold && st->zero_area_tri == 0)) {
		struct mesh_stats before;
		size_t split;
		if (!mesh_split_pinches(err, orig, &split) || !mesh_check(err, orig, &before))
			goto out;
		if (before.closed && before.manifold && before.zero_area_tri == 0) {
			snprintf(tm->fallback, sizeof(tm->fallback),
				 "kept undecimated: decimation left %zu open, %zu non-manifold, "
				 "%zu misoriented edges and %zu triangles without area",
				 st->boundary_edges, st->nonmanifold_edges, st->misoriented_edges,
				 st->zero_area_tri);
			mesh_destroy(*mp);
			*mp = orig;
			orig = NULL;
			tm->decimated = false;
			tm->undecimated = true;
			ok = true;
			goto out;
		}
	}
	if (!tm->decimate.reached)
		snprintf(tm->fallback, sizeof(tm->fallback),
			 "over budget: %zu triangles left where no collapse keeps the surface "
			 "2-manifold", (*mp)->ntri);
	t0 = clock_mono_s();
	if (!mesh_distance(err, orig, *mp, MESH_BUILD_ERROR_SAMPLES, p->threads, &tm->error))
		goto out;
	tm->error_s = clock_mono_s() - t0;
	tm->error_exceeded = p->max_error_mm > 0 && tm->error.max > p->max_error_mm;
	ok = true;
out:
	mesh_destroy(orig);
	return ok;
}

void mesh_build_defaults(struct mesh_build_params *p)
{
	memset(p, 0, sizeof(*p));
	p->iso = 0.5;
	p->threads = 1;
	p->affine[0] = p->affine[5] = p->affine[10] = p->affine[15] = 1.0;
	p->smooth = true;
	mesh_build_grey_smoothing(p);
	p->max_tri = 0;
	p->max_error_mm = 0;
}

void mesh_build_grey_smoothing(struct mesh_build_params *p)
{
	mesh_smooth_defaults(&p->smoothing);
	p->smoothing.iterations = MESH_GREY_SMOOTH_ITER;
	p->smoothing.clamp = MESH_GREY_SMOOTH_CLAMP_MM;
	p->smooth_in_voxels = false;
}

void mesh_build_mask_smoothing(struct mesh_build_params *p)
{
	mesh_smooth_defaults(&p->smoothing);
	p->smoothing.iterations = MESH_MASK_SMOOTH_ITER;
	p->smoothing.clamp = 0.5;
	p->smooth_in_voxels = true;
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

	/* A mask surface's smoothing keeps each vertex in its voxel cell: its
	 * box is in voxel index, so it runs before the transform. */
	if (p->smooth && p->smooth_in_voxels) {
		t0 = clock_mono_s();
		sp.threads = p->threads;
		if (!mesh_smooth(err, m, &sp))
			goto out;
		tm.smooth_s = clock_mono_s() - t0;
	}

	t0 = clock_mono_s();
	if (p->planes != NULL ? !mesh_transform_planes(err, m, p->affine, p->planes, p->nplanes)
			      : !mesh_transform(err, m, p->affine))
		goto out;
	tm.transform_s = clock_mono_s() - t0;

	if (p->smooth && !p->smooth_in_voxels) {
		t0 = clock_mono_s();
		sp.threads = p->threads;
		if (!mesh_smooth(err, m, &sp))
			goto out;
		tm.smooth_s = clock_mono_s() - t0;
	}
	if (p->max_tri > 0) {
		t0 = clock_mono_s();
		if (!build_decimate(err, &m, p, st, &tm))
			goto out;
		tm.decimate_s = clock_mono_s() - t0 - tm.error_s;
	} else {
		size_t split;
		if (!mesh_split_pinches(err, m, &split))
			goto out;
	}
	/* Checked as an STL is read: welded by position, so that the report's
	 * "watertight" is true of the file, which has no indices. */
	t0 = clock_mono_s();
	if (!mesh_weld(err, m) || !mesh_check(err, m, st))
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
