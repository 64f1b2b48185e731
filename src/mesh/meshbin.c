/*
 * meshbin.c: the indexed mesh file the 3D page loads (<name>.mesh): the
 * vertices once, then the triangles as vertex indices, a third of the
 * binary STL's size. Layout, little-endian: "R3DMESH1", uint32 vertex
 * count, uint32 triangle count, float32 x y z per vertex, uint32 three
 * indices per triangle. Written atomically. Any thread; read-only on the
 * mesh.
 */
#include <stdlib.h>
#include <string.h>

#include "meshfile.h"
#include "r3d/mesh.h"

#define MESHBIN_MAGIC "R3DMESH1"
#define MESHBIN_CHUNK 4096   /* values encoded per write */

/* Writes n little-endian 32-bit values, floats or not, in chunks. */
static bool put_values(FILE *f, unsigned char *buf, const void *values, size_t n, bool is_float)
{
	for (size_t i0 = 0; i0 < n; i0 += MESHBIN_CHUNK) {
		size_t k = n - i0 < MESHBIN_CHUNK ? n - i0 : MESHBIN_CHUNK;
		for (size_t i = 0; i < k; i++) {
			if (is_float)
				meshfile_put_f32le(buf + 4 * i, ((const float *)values)[i0 + i]);
			else
				meshfile_put_u32le(buf + 4 * i, ((const uint32_t *)values)[i0 + i]);
		}
		if (fwrite(buf, 4, k, f) != k)
			return false;
	}
	return true;
}

bool mesh_bin_write(struct r3d_err *err, const char *path, const struct mesh *m)
{
	struct meshfile mf = {0};
	unsigned char head[16], *buf = NULL;
	bool ok = false;

	if (m->nvert > UINT32_MAX || m->ntri > UINT32_MAX)
		return r3d_err_set(err, R3D_EINVAL, "mesh: too large for %s", path);
	buf = malloc(4 * MESHBIN_CHUNK);
	if (buf == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "mesh: cannot allocate a write buffer");
	if (!meshfile_open(err, &mf, path))
		goto out;
	memcpy(head, MESHBIN_MAGIC, 8);
	meshfile_put_u32le(head + 8, (uint32_t)m->nvert);
	meshfile_put_u32le(head + 12, (uint32_t)m->ntri);
	if (fwrite(head, sizeof(head), 1, mf.f) != 1 ||
	    !put_values(mf.f, buf, m->xyz, 3 * m->nvert, true) ||
	    !put_values(mf.f, buf, m->tri, 3 * m->ntri, false)) {
		r3d_err_set(err, R3D_EIO, "mesh: cannot write %s", path);
		goto out;
	}
	ok = meshfile_commit(err, &mf);
out:
	meshfile_abort(&mf);
	free(buf);
	return ok;
}
