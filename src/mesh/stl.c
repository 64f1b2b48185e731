/*
 * stl.c: binary STL writer, one structure per file (what 3D printing and
 * the Encapsulated STL object use). Little-endian, facet normals from the
 * counter-clockwise winding, written atomically. Any thread; read-only on
 * the mesh.
 *
 * Frame: the mesh's own (patient LPS millimetres once transformed).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "meshfile.h"
#include "r3d/mesh.h"

#define STL_HEADER_BYTES 80
#define STL_FACET_BYTES 50
#define STL_CHUNK_FACETS 4096

static void stl_facet(unsigned char *p, const struct mesh *m, size_t t)
{
	const uint32_t *f = m->tri + 3 * t;
	const float *a = m->xyz + 3 * (size_t)f[0], *b = m->xyz + 3 * (size_t)f[1];
	const float *c = m->xyz + 3 * (size_t)f[2];
	double u[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
	double v[3] = {c[0] - a[0], c[1] - a[1], c[2] - a[2]};
	double n[3] = {u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2],
		       u[0] * v[1] - u[1] * v[0]};
	double len = sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);

	for (int d = 0; d < 3; d++) {
		meshfile_put_f32le(p + 4 * d, len > 0.0 ? (float)(n[d] / len) : 0.0f);
		meshfile_put_f32le(p + 12 + 4 * d, a[d]);
		meshfile_put_f32le(p + 24 + 4 * d, b[d]);
		meshfile_put_f32le(p + 36 + 4 * d, c[d]);
	}
	p[48] = 0; /* attribute byte count */
	p[49] = 0;
}

/* The header is free text: a structure's display label (spaces and all). */
static bool stl_name_ok(const char *name)
{
	size_t n = name != NULL ? strlen(name) : 0;

	if (n == 0 || n >= MESH_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (name[i] < 0x20 || name[i] > 0x7e)
			return false;
	}
	return true;
}

bool mesh_stl_write(struct r3d_err *err, const char *path, const struct mesh *m,
		    const char *name)
{
	struct meshfile mf = {0};
	unsigned char head[STL_HEADER_BYTES + 4];
	unsigned char *chunk = NULL;
	bool ok = false;

	if (!stl_name_ok(name)) {
		r3d_err_set(err, R3D_EINVAL, "stl: the name is not 1..%d printable ASCII characters",
			    MESH_NAME_MAX - 1);
		goto out;
	}
	if (m->ntri > UINT32_MAX) {
		r3d_err_set(err, R3D_EINVAL, "stl: %zu triangles do not fit in STL", m->ntri);
		goto out;
	}
	for (size_t i = 0; i < 3 * m->ntri; i++) {
		if (m->tri[i] >= m->nvert) {
			r3d_err_set(err, R3D_EINVAL, "stl: triangle %zu uses a bad vertex", i / 3);
			goto out;
		}
	}
	chunk = malloc(STL_CHUNK_FACETS * STL_FACET_BYTES);
	if (chunk == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "stl: cannot allocate a write buffer");
		goto out;
	}
	if (!meshfile_open(err, &mf, path))
		goto out;
	/* The header must not start with "solid", which marks ASCII STL. */
	memset(head, ' ', STL_HEADER_BYTES);
	int n = snprintf((char *)head, STL_HEADER_BYTES, "recon3d binary STL: %s", name);
	if (n > 0 && n < STL_HEADER_BYTES)
		head[n] = ' ';
	meshfile_put_u32le(head + STL_HEADER_BYTES, (uint32_t)m->ntri);
	if (fwrite(head, sizeof(head), 1, mf.f) != 1)
		goto io;
	for (size_t t0 = 0; t0 < m->ntri; t0 += STL_CHUNK_FACETS) {
		size_t nt = m->ntri - t0 < STL_CHUNK_FACETS ? m->ntri - t0 : STL_CHUNK_FACETS;
		for (size_t t = 0; t < nt; t++)
			stl_facet(chunk + STL_FACET_BYTES * t, m, t0 + t);
		if (fwrite(chunk, STL_FACET_BYTES, nt, mf.f) != nt)
			goto io;
	}
	ok = meshfile_commit(err, &mf);
	goto out;
io:
	r3d_err_set(err, R3D_EIO, "stl: cannot write %s", path);
out:
	meshfile_abort(&mf);
	free(chunk);
	return ok;
}
