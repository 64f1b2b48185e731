/*
 * obj.c: Wavefront OBJ + MTL writer: several structures in one file, each
 * its own object ("o name") with its own material ("usemtl name", diffuse
 * colour Kd), for viewers and for the offline command. Both files are
 * written atomically. Any thread; read-only on the meshes.
 *
 * Frame: the meshes' own (patient LPS millimetres once transformed).
 * Coordinates are written with 4 decimals (0.1 micrometre in mm).
 */
#include <math.h>
#include <string.h>

#include "meshfile.h"
#include "r3d/mesh.h"

#define OBJ_MAX_ABS_COORD 1e9 /* beyond this a coordinate is refused */
#define OBJ_LINE_MAX 128

static size_t obj_fmt_uint(char *p, unsigned long long u)
{
	char rev[24];
	size_t n = 0, r = 0;

	do {
		rev[r++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	while (r > 0)
		p[n++] = rev[--r];
	return n;
}

/* Appends v with 4 decimals; returns the characters written. */
static size_t obj_fmt_fixed(char *p, double v)
{
	long long s = llround(v * 10000.0);
	unsigned long long u = s < 0 ? (unsigned long long)(-s) : (unsigned long long)s;
	size_t n = 0;

	if (s < 0)
		p[n++] = '-';
	n += obj_fmt_uint(p + n, u / 10000);
	p[n++] = '.';
	u %= 10000;
	for (int d = 3; d >= 0; d--, u /= 10)
		p[n + (size_t)d] = (char)('0' + u % 10);
	return n + 4;
}

static bool obj_check_parts(struct r3d_err *err, const struct mesh_obj_part *parts,
			    size_t nparts)
{
	if (nparts == 0 || nparts > MESH_MAX_PARTS)
		return r3d_err_set(err, R3D_EINVAL, "obj: %zu structures outside 1..%d", nparts,
				   MESH_MAX_PARTS);
	for (size_t i = 0; i < nparts; i++) {
		const struct mesh *m = parts[i].mesh;
		if (!meshfile_name_ok(parts[i].name))
			return r3d_err_set(err, R3D_EINVAL, "obj: structure %zu has a bad name", i);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(parts[i].name, parts[j].name) == 0)
				return r3d_err_set(err, R3D_EINVAL, "obj: two structures named %s",
						   parts[i].name);
		}
		for (int c = 0; c < 3; c++) {
			if (!(parts[i].rgb[c] >= 0.0f && parts[i].rgb[c] <= 1.0f))
				return r3d_err_set(err, R3D_EINVAL, "obj: %s: colour outside 0..1",
						   parts[i].name);
		}
		if (m == NULL)
			return r3d_err_set(err, R3D_EINVAL, "obj: %s: no mesh", parts[i].name);
		for (size_t v = 0; v < 3 * m->nvert; v++) {
			if (!(fabs(m->xyz[v]) <= OBJ_MAX_ABS_COORD))
				return r3d_err_set(err, R3D_EINVAL, "obj: %s: bad coordinate",
						   parts[i].name);
		}
		for (size_t t = 0; t < 3 * m->ntri; t++) {
			if (m->tri[t] >= m->nvert)
				return r3d_err_set(err, R3D_EINVAL, "obj: %s: bad vertex index",
						   parts[i].name);
		}
	}
	return true;
}

static bool obj_write_mtl(struct r3d_err *err, const char *mtl_path,
			  const struct mesh_obj_part *parts, size_t nparts)
{
	struct meshfile mf = {0};
	bool ok = false;

	if (!meshfile_open(err, &mf, mtl_path))
		goto out;
	fprintf(mf.f, "# recon3d materials\n");
	for (size_t i = 0; i < nparts; i++) {
		fprintf(mf.f, "newmtl %s\nKa 0 0 0\nKd %.4f %.4f %.4f\nKs 0.1 0.1 0.1\nNs 20\nd 1\nillum 2\n\n",
			parts[i].name, (double)parts[i].rgb[0], (double)parts[i].rgb[1],
			(double)parts[i].rgb[2]);
	}
	ok = meshfile_commit(err, &mf);
out:
	meshfile_abort(&mf);
	return ok;
}

bool mesh_obj_write(struct r3d_err *err, const char *obj_path, const char *mtl_path,
		    const struct mesh_obj_part *parts, size_t nparts)
{
	struct meshfile mf = {0};
	const char *mtl_base;
	char line[OBJ_LINE_MAX];
	unsigned long long base = 1; /* OBJ indices start at 1 */
	bool ok = false;

	if (!obj_check_parts(err, parts, nparts))
		goto out;
	mtl_base = strrchr(mtl_path, '/');
	mtl_base = mtl_base != NULL ? mtl_base + 1 : mtl_path;
	if (!obj_write_mtl(err, mtl_path, parts, nparts))
		goto out;
	if (!meshfile_open(err, &mf, obj_path))
		goto out;
	fprintf(mf.f, "# recon3d surface models, patient LPS millimetres\nmtllib %s\n", mtl_base);
	for (size_t i = 0; i < nparts; i++) {
		const struct mesh *m = parts[i].mesh;
		fprintf(mf.f, "o %s\nusemtl %s\n", parts[i].name, parts[i].name);
		for (size_t v = 0; v < m->nvert; v++) {
			size_t n = 0;
			line[n++] = 'v';
			for (int d = 0; d < 3; d++) {
				line[n++] = ' ';
				n += obj_fmt_fixed(line + n, m->xyz[3 * v + d]);
			}
			line[n++] = '\n';
			fwrite(line, 1, n, mf.f);
		}
		for (size_t t = 0; t < m->ntri; t++) {
			size_t n = 0;
			line[n++] = 'f';
			for (int c = 0; c < 3; c++) {
				line[n++] = ' ';
				n += obj_fmt_uint(line + n, base + m->tri[3 * t + c]);
			}
			line[n++] = '\n';
			fwrite(line, 1, n, mf.f);
		}
		base += m->nvert;
	}
	ok = meshfile_commit(err, &mf);
out:
	meshfile_abort(&mf);
	return ok;
}
