/*
 * segimport_internal.h: what the SEG grid (segimport.c) and the RT Structure
 * Set fill (contour.c) share: the axes check, the checked allocation of a
 * grid and the plane origins of the padding planes. Internal to the import
 * stage; any thread.
 */
#ifndef R3D_SEGIMPORT_INTERNAL_H
#define R3D_SEGIMPORT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/err.h"
#include "r3d/segimport.h"

/* An orientation is accepted as two orthogonal unit vectors when each
 * norm is within this of 1 and their dot product within this of 0 (DICOM
 * writes direction cosines with 6 to 16 digits); it is then made exactly
 * orthonormal. */
#define SEGIMPORT_ORIENT_TOLERANCE 1e-3

/* Frame and contour offsets from the grid's reference, in (sub-)pixels:
 * beyond this the object is refused before any index arithmetic. */
#define SEGIMPORT_MAX_OFFSET_PX 1e9

/* Checks orientation (row, then column cosines) and makes g's row_dir,
 * col_dir and normal of it. `what` names the object in the reason. */
bool segimport_axes(struct r3d_err *err, const char *what, const double orientation[6],
		    struct segimport_grid *g);

/* Checks nx * ny * nz against SEGIMPORT_MAX_VOXELS (and overflow) and
 * allocates g->field (zeroed) and g->plane_origin (nz * 3). Sets g->nx, ny,
 * nz. On failure g holds no buffer. */
bool segimport_grid_alloc(struct r3d_err *err, const char *what, struct segimport_grid *g,
			  uint64_t nx, uint64_t ny, uint64_t nz);

/* Fills g->plane_origin for the grid's planes k = 0 .. g->nz - 1, which are
 * the object's planes first_plane .. first_plane + nz - 1; first_plane may be
 * -1 and the last may be nplanes (one padding plane beyond each end).
 * plane_origin of object plane p (0 .. nplanes - 1) is real[3 * p]. A
 * padding plane is the neighbouring plane moved by the neighbouring plane
 * step (the difference of the two nearest plane origins), or by
 * single_step_mm along the normal when there is only one plane. */
void segimport_fill_origins(struct segimport_grid *g, const double *real, size_t nplanes,
			    long first_plane, double single_step_mm);

#endif
