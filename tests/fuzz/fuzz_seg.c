/*
 * fuzz_seg.c: libFuzzer harness for the segmentation objects in: the
 * bridge's SEG / RT Structure Set reader (bridge_segobj_read(),
 * src/bridge/segread.cpp) and the import stage that turns what it read
 * into grids (segimport_seg_grid(), segimport_rtstruct_grid()). Input: the
 * bytes of one file, with or without File Meta Information. Every call ends
 * with a result or with a reason; a crash, a sanitizer report, a leak or a
 * hang is a finding.
 *
 * RT contours are filled on an axial 1 mm lattice through the origin,
 * refined twice per axis as the pipeline does on a CT's lattice; an input
 * of odd size gets a 0.7 mm lattice refined once, so that both the in-plane
 * spacing and the refinement vary. Grids are made for the first
 * FUZZ_SEG_MAX_GRIDS segments only: a label map's segment scans every frame,
 * so 256 segments cost 256 scans of the same pixels through the same code,
 * which only slows the fuzzer down (the reader still sees all of them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "r3d/bridge.h"
#include "r3d/segimport.h"
#include "r3d/segobj.h"

#define FUZZ_SEG_MAX_GRIDS 8

static char path[FUZZ_PATH_MAX + 16];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct r3d_err err = {0, {0}};
	char dir[FUZZ_PATH_MAX];

	(void)argc;
	(void)argv;
	fuzz_log_off();
	if (!bridge_init(&err)) {
		fprintf(stderr, "fuzz_seg: %s\n", err.msg);
		abort();
	}
	fuzz_scratch_dir("seg", dir);
	snprintf(path, sizeof(path), "%s/obj.dcm", dir);
	return 0;
}

static void grids(const struct segobj *s, size_t size)
{
	struct segimport_plane_grid pg;

	memset(&pg, 0, sizeof(pg));
	pg.orientation[0] = 1.0;
	pg.orientation[4] = 1.0;
	pg.pixel_spacing[0] = pg.pixel_spacing[1] = (size & 1) ? 0.7 : 1.0;
	pg.refine = (size & 1) ? 1 : 2;
	for (size_t i = 0; i < s->nsegments && i < FUZZ_SEG_MAX_GRIDS; i++) {
		struct segimport_grid g;
		struct r3d_err err = {0, {0}};
		char name[SEGIMPORT_NAME_MAX];
		unsigned number = s->segments[i].number;
		bool ok;

		segimport_name(s, number, name);
		memset(&g, 0, sizeof(g));
		if (s->kind == SEGOBJ_RTSTRUCT)
			ok = segimport_rtstruct_grid(&err, s, number, &pg, &g);
		else
			ok = segimport_seg_grid(&err, s, number, &g);
		if (ok)
			segimport_grid_free(&g);
		else
			fuzz_check_reason(&err, s->kind == SEGOBJ_RTSTRUCT ? "segimport_rtstruct_grid"
									   : "segimport_seg_grid");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct r3d_err err = {0, {0}};
	struct segobj *s = NULL;

	fuzz_write_file(path, data, size);
	if (bridge_segobj_read(&err, path, &s)) {
		grids(s, size);
		bridge_segobj_free(s);
	} else {
		fuzz_check_reason(&err, "bridge_segobj_read");
	}
	unlink(path);
	return 0;
}
