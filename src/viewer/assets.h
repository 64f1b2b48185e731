/*
 * assets.h: the 3D page's files, embedded at build time by r3d_embed (see
 * CMakeLists.txt): three.js from npm and our own page, script and style.
 * Read-only data; any thread. Internal to src/viewer.
 */
#ifndef R3D_VIEWER_ASSETS_H
#define R3D_VIEWER_ASSETS_H

#include <stddef.h>

struct viewer_asset {
	const char *name;    /* path under /viewer/, e.g. "assets/three.core.js" */
	const char *type;    /* Content-Type */
	const char *data;
	size_t size;
	const char *gz;      /* the same, gzip-compressed */
	size_t gz_size;      /* 0 when compressing did not make it smaller */
};

extern const struct viewer_asset viewer_assets[];
extern const size_t viewer_nassets;

#endif
