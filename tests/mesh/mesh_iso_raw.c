/*
 * mesh_iso_raw.c: test tool: reads a raw volume (x fastest, native byte
 * order), extracts our raw isosurface (no smoothing, no decimation) in
 * voxel-index coordinates and writes it for test_vtk_compare.py:
 *   u64 nvert, u64 ntri, float xyz[3 * nvert], u32 tri[3 * ntri].
 * Usage: mesh_iso_raw IN.raw u8|i16 NX NY NZ ISO THREADS OUT.bin
 * Single-threaded driver.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/mesh.h"
#include "r3d/util.h"

int main(int argc, char **argv)
{
	struct r3d_err err = {0};
	struct mesh_volume vol = {0};
	struct mesh *m = NULL;
	void *data = NULL;
	FILE *f = NULL;
	long n[3], threads;
	size_t count, bytes, esz;
	char *end;
	double isov;
	int rc = 1;

	if (argc != 9) {
		fprintf(stderr, "usage: %s IN.raw u8|i16 NX NY NZ ISO THREADS OUT.bin\n", argv[0]);
		goto out;
	}
	vol.type = strcmp(argv[2], "u8") == 0 ? MESH_SCALAR_U8 : MESH_SCALAR_I16;
	esz = vol.type == MESH_SCALAR_U8 ? 1 : 2;
	for (int i = 0; i < 3; i++) {
		if (!parse_long(&err, argv[3 + i], 1, MESH_MAX_DIM, &n[i]))
			goto fail;
	}
	if (!parse_long(&err, argv[7], 1, MESH_MAX_THREADS, &threads))
		goto fail;
	isov = strtod(argv[6], &end);
	if (*end != '\0') {
		r3d_err_set(&err, R3D_EINVAL, "bad iso value '%s'", argv[6]);
		goto fail;
	}
	vol.nx = (size_t)n[0];
	vol.ny = (size_t)n[1];
	vol.nz = (size_t)n[2];
	if (!size_mul3(vol.nx * vol.ny, vol.nz, esz, &bytes)) {
		r3d_err_set(&err, R3D_EINVAL, "volume too large");
		goto fail;
	}
	data = malloc(bytes);
	f = fopen(argv[1], "rb");
	if (data == NULL || f == NULL || fread(data, 1, bytes, f) != bytes) {
		r3d_err_set(&err, R3D_EIO, "cannot read %zu bytes from %s", bytes, argv[1]);
		goto fail;
	}
	fclose(f);
	f = NULL;
	vol.data = data;
	if (!mesh_isosurface(&err, &vol, isov, (int)threads, NULL, &m))
		goto fail;
	f = fopen(argv[8], "wb");
	uint64_t head[2] = {m->nvert, m->ntri};
	count = 0;
	if (f != NULL) {
		count += fwrite(head, sizeof(head), 1, f);
		count += fwrite(m->xyz, 3 * sizeof(float), m->nvert, f) == m->nvert;
		count += fwrite(m->tri, 3 * sizeof(uint32_t), m->ntri, f) == m->ntri;
	}
	if (f == NULL || count != 3 || fclose(f) != 0) {
		f = NULL;
		r3d_err_set(&err, R3D_EIO, "cannot write %s", argv[8]);
		goto fail;
	}
	f = NULL;
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "mesh_iso_raw: %s\n", err.msg);
out:
	if (f != NULL)
		fclose(f);
	mesh_destroy(m);
	free(data);
	return rc;
}
