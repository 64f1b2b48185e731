/*
 * meshfile.h: internal to src/mesh: files written atomically (a temporary
 * name in the same folder, then rename) and little-endian encoding, shared
 * by the STL and OBJ writers. Any thread.
 */
#ifndef R3D_MESHFILE_H
#define R3D_MESHFILE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "r3d/err.h"

struct meshfile {
	FILE *f;
	char path[PATH_MAX];
	char tmp[PATH_MAX];
};

/* Opens a temporary file beside path. On success mf->f is open; finish
 * with meshfile_commit() or meshfile_abort(). */
bool meshfile_open(struct r3d_err *err, struct meshfile *mf, const char *path);
/* Flushes, syncs and closes the file, then renames it to its final path. */
bool meshfile_commit(struct r3d_err *err, struct meshfile *mf);
/* Closes and removes the temporary file, if any. */
void meshfile_abort(struct meshfile *mf);

/* Valid structure name: 1..MESH_NAME_MAX-1 characters of [A-Za-z0-9_.-]. */
bool meshfile_name_ok(const char *name);

static inline void meshfile_put_u32le(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static inline void meshfile_put_f32le(unsigned char *p, float f)
{
	union {
		float f;
		uint32_t u;
	} c = {.f = f};
	meshfile_put_u32le(p, c.u);
}

#endif
