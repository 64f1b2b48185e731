/*
 * decimate.c: vertex welding, removal of degenerate triangles, and
 * decimation to a triangle budget with meshoptimizer's edge-collapse
 * simplifier (meshopt_simplify, called through its C API). Any thread;
 * one thread per mesh.
 *
 * Frame: any; positions are only compared and moved by the simplifier.
 */
#include <meshoptimizer.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/mesh.h"
#include "r3d/util.h"

/* Replaces m->xyz by a new buffer of nvert vertices. */
static void decimate_swap_xyz(struct mesh *m, float *xyz, size_t bytes, size_t nvert)
{
	bigbuf_free(m->xyz, m->xyz_bytes);
	m->xyz = xyz;
	m->xyz_bytes = bytes;
	m->nvert = nvert;
}

static bool decimate_check_indices(struct r3d_err *err, const struct mesh *m)
{
	for (size_t i = 0; i < 3 * m->ntri; i++) {
		if (m->tri[i] >= m->nvert)
			return r3d_err_set(err, R3D_EINVAL, "triangle %zu uses vertex %u of %zu",
					   i / 3, m->tri[i], m->nvert);
	}
	return true;
}

size_t mesh_remove_degenerate(struct mesh *m)
{
	size_t n = 0;

	for (size_t t = 0; t < m->ntri; t++) {
		const uint32_t *f = m->tri + 3 * t;
		if (f[0] == f[1] || f[1] == f[2] || f[0] == f[2])
			continue;
		if (n != t)
			memmove(m->tri + 3 * n, f, 3 * sizeof(uint32_t));
		n++;
	}
	size_t removed = m->ntri - n;
	m->ntri = n;
	return removed;
}

bool mesh_weld(struct r3d_err *err, struct mesh *m)
{
	unsigned int *remap = NULL;
	float *xyz = NULL;
	size_t nuniq, bytes = 0;
	bool ok = false;

	if (!decimate_check_indices(err, m))
		goto out;
	if (m->nvert == 0 || m->ntri == 0) {
		ok = true;
		goto out;
	}
	remap = malloc(m->nvert * sizeof(*remap));
	if (remap == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "weld: cannot allocate the remap table");
		goto out;
	}
	/* Equal positions, bit for bit, become one vertex; unreferenced ones go. */
	nuniq = meshopt_generateVertexRemap(remap, m->tri, 3 * m->ntri, m->xyz, m->nvert,
					    3 * sizeof(float));
	bytes = 3 * sizeof(float) * nuniq; /* nuniq <= nvert: no overflow */
	xyz = bigbuf_alloc(err, bytes);
	if (xyz == NULL)
		goto out;
	meshopt_remapVertexBuffer(xyz, m->xyz, m->nvert, 3 * sizeof(float), remap);
	meshopt_remapIndexBuffer(m->tri, m->tri, 3 * m->ntri, remap);
	decimate_swap_xyz(m, xyz, bytes, nuniq);
	xyz = NULL;
	mesh_remove_degenerate(m);
	ok = true;
out:
	bigbuf_free(xyz, bytes);
	free(remap);
	return ok;
}

bool mesh_decimate(struct r3d_err *err, struct mesh *m, size_t target_tri, float max_error)
{
	unsigned int *dst = NULL;
	float *xyz = NULL;
	size_t nidx, nv, dst_bytes = 0, bytes = 0;
	bool ok = false;

	if (!(max_error >= 0.0f && max_error <= 1.0f)) {
		r3d_err_set(err, R3D_EINVAL, "decimate: max_error %g outside 0..1", (double)max_error);
		goto out;
	}
	if (target_tri == 0) {
		r3d_err_set(err, R3D_EINVAL, "decimate: the triangle budget is 0");
		goto out;
	}
	if (!mesh_weld(err, m)) {
		r3d_err_prefix(err, "decimate");
		goto out;
	}
	if (m->ntri <= target_tri) {
		ok = true;
		goto out;
	}
	dst_bytes = 3 * sizeof(*dst) * m->ntri; /* fits: the same as m->tri */
	dst = bigbuf_alloc(err, dst_bytes);
	if (dst == NULL)
		goto out;
	nidx = meshopt_simplify(dst, m->tri, 3 * m->ntri, m->xyz, m->nvert, 3 * sizeof(float),
				3 * target_tri, max_error, 0, NULL);
	memcpy(m->tri, dst, nidx * sizeof(*dst));
	m->ntri = nidx / 3;
	mesh_remove_degenerate(m);

	/* Keep only the vertices still in use, in first-use order. */
	bytes = 3 * sizeof(float) * m->nvert;
	xyz = bigbuf_alloc(err, bytes);
	if (xyz == NULL)
		goto out;
	nv = meshopt_optimizeVertexFetch(xyz, m->tri, 3 * m->ntri, m->xyz, m->nvert,
					 3 * sizeof(float));
	decimate_swap_xyz(m, xyz, bytes, nv);
	xyz = NULL;
	ok = true;
out:
	bigbuf_free(xyz, bytes);
	bigbuf_free(dst, dst_bytes);
	return ok;
}
