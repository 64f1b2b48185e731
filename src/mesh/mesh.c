/*
 * mesh.c: creation and destruction of struct mesh, the plain triangle mesh
 * every mesh stage takes and returns. Buffers come from bigbuf_alloc() so
 * that big meshes get huge pages. Any thread; one thread per mesh.
 */
#include <stdlib.h>

#include <string.h>

#include "r3d/mesh.h"
#include "r3d/util.h"

struct mesh *mesh_create(struct r3d_err *err, size_t nvert, size_t ntri)
{
	struct mesh *m = NULL;
	size_t xyz_bytes, tri_bytes;
	bool ok = false;

	if (nvert > MESH_MAX_VERTICES) {
		r3d_err_set(err, R3D_EINVAL, "mesh of %zu vertices exceeds the limit of %u",
			    nvert, MESH_MAX_VERTICES);
		goto out;
	}
	if (!size_mul3(nvert, 3, sizeof(float), &xyz_bytes) ||
	    !size_mul3(ntri, 3, sizeof(uint32_t), &tri_bytes)) {
		r3d_err_set(err, R3D_EINVAL, "mesh of %zu vertices, %zu triangles is too large",
			    nvert, ntri);
		goto out;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "cannot allocate a mesh");
		goto out;
	}
	m->xyz = bigbuf_alloc(err, xyz_bytes);
	if (m->xyz == NULL)
		goto out;
	m->xyz_bytes = xyz_bytes;
	m->tri = bigbuf_alloc(err, tri_bytes);
	if (m->tri == NULL)
		goto out;
	m->tri_bytes = tri_bytes;
	m->nvert = nvert;
	m->ntri = ntri;
	ok = true;
out:
	if (!ok) {
		mesh_destroy(m);
		m = NULL;
	}
	return m;
}

struct mesh *mesh_copy(struct r3d_err *err, const struct mesh *m)
{
	struct mesh *c = mesh_create(err, m->nvert, m->ntri);

	if (c != NULL) {
		memcpy(c->xyz, m->xyz, 3 * sizeof(float) * m->nvert);
		memcpy(c->tri, m->tri, 3 * sizeof(uint32_t) * m->ntri);
	}
	return c;
}

void mesh_destroy(struct mesh *m)
{
	if (m == NULL)
		return;
	bigbuf_free(m->tri, m->tri_bytes);
	bigbuf_free(m->xyz, m->xyz_bytes);
	free(m);
}
