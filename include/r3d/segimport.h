/*
 * segimport.h: from a segmentation object (segobj.h) to what the mesh stage
 * takes: one grid per segment, on the object's own geometry.
 *
 * A SEG segment is meshed on the SEG's own planes (its frames' Image
 * Positions, sorted along the normal of its orientation; planes may be
 * unevenly spaced, and a segment may have no frame on some of them: those
 * are empty), cropped to the segment's voxels plus one empty voxel on every
 * side. BINARY and LABELMAP give a 0/1 mask; FRACTIONAL gives the stored
 * fraction scaled to 0..255, meshed at half its maximum as a grey-level
 * field.
 *
 * An RT Structure Set ROI's CLOSED_PLANAR contours are filled on a grid in
 * the planes of the contours: in-plane the given pixel grid (normally the
 * referenced CT's orientation and pixel spacing) refined by `refine` per
 * axis, one plane per distinct contour plane. A pixel is inside when its
 * centre is inside an odd number of the ROI's contours on that plane (inner
 * contours are holes, as treatment planning systems draw them).
 *
 * Pure C, no DICOM; any thread; functions share no state.
 */
#ifndef R3D_SEGIMPORT_H
#define R3D_SEGIMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/err.h"
#include "r3d/segobj.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SEGIMPORT_PLANE_TOLERANCE_MM 0.01  /* frames this close along the normal share a plane */
#define SEGIMPORT_MAX_VOXELS (1ULL << 31)  /* one segment's cropped grid */

/* One segment's voxels on planes that are parallel but may be unevenly
 * spaced. Voxel (i, j, k) is field[i + nx * (j + ny * k)]; its centre is
 * plane_origin[k] + i * dx * row_dir + j * dy * col_dir (LPS mm). */
struct segimport_grid {
	size_t nx, ny, nz;
	double row_dir[3], col_dir[3];  /* unit: along a row (i), along a column (j) */
	double normal[3];               /* row_dir x col_dir */
	double dx, dy;                  /* mm between columns (along row_dir), between rows */
	double *plane_origin;           /* nz * 3: centre of voxel (0, 0, k) */
	uint8_t *field;                 /* nx * ny * nz */
	bool fractional;                /* field 0..255, surface at 127.5; else 0/1 mask */
	size_t voxels;                  /* mask: voxels set; fractional: voxels >= 128 */
};

void segimport_grid_free(struct segimport_grid *g);

#define SEGIMPORT_NAME_MAX 64
#define SEGIMPORT_NAME_LABEL_MAX 40  /* bytes of the label a name keeps */

/* How a reason names segment or ROI `number` of s: "segment 2 'Spine'",
 * "ROI 3 'Heart'" (the label cut at a character boundary after
 * SEGIMPORT_NAME_LABEL_MAX bytes, "..." added), or "ROI 3" when it has no
 * label. The reasons of the two functions below start with it. */
void segimport_name(const struct segobj *s, unsigned number, char out[SEGIMPORT_NAME_MAX]);

/* The grid of SEG segment number `segment` of s (BINARY, FRACTIONAL or
 * LABELMAP). Refuses with the reason (R3D_EINVAL), which starts with
 * segimport_name(): a frame of the object without a position, a segment
 * with no frame, an orientation that is not two
 * orthogonal unit vectors, a pixel spacing that is not positive. A segment
 * whose frames are all empty gives voxels == 0 (the caller skips it). On
 * success the caller owns g's buffers (segimport_grid_free()). */
bool segimport_seg_grid(struct r3d_err *err, const struct segobj *s, unsigned segment,
			struct segimport_grid *g);

/* The in-plane pixel grid contours are filled on. */
struct segimport_plane_grid {
	double orientation[6];          /* row cosines, column cosines (a CT's IOP) */
	double pixel_spacing[2];        /* DICOM order: between rows, between columns */
	double origin[3];               /* centre of a pixel of the grid (a CT's IPP): the
					 * lattice the pixels are on */
	unsigned refine;                /* 1..8 sub-pixels per axis */
};

/* The grid of RT ROI number `roi` of s: its CLOSED_PLANAR contours filled
 * as described above, cropped to the ROI plus one empty voxel on every side.
 * Contours of other types are ignored (the caller lists a ROI with none
 * closed as skipped). Refuses with the reason (R3D_EINVAL; the caller skips
 * this ROI with it and meshes the others): a contour with fewer than 3
 * distinct points, one that is not planar within 0.1 mm or not parallel to
 * the grid's planes, one that crosses itself ("ROI 3 'Heart': contour 12
 * crosses itself near (x, y, z) mm"), one that encloses no area (its points
 * on one line, or a path retracing itself; tiny contours are kept). No
 * contour is ever silently changed or dropped; a point repeated in a row,
 * and a last point repeating the first, count once. */
bool segimport_rtstruct_grid(struct r3d_err *err, const struct segobj *s, unsigned roi,
			     const struct segimport_plane_grid *pg, struct segimport_grid *g);

#ifdef __cplusplus
}
#endif

#endif
