/*
 * collapse.h: internal to src/mesh: quadric edge-collapse simplification
 * that keeps a closed 2-manifold closed and 2-manifold by construction.
 * Called by decimate.c (one call per slab or per mesh); any thread, one
 * call per thread at a time; no threads of its own.
 *
 * Frame: any; positions are compared and the surviving vertex of a
 * collapse is placed where the summed quadric of its two ends is least.
 */
#ifndef R3D_COLLAPSE_H
#define R3D_COLLAPSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/err.h"

struct collapse_stats {
	size_t passes;          /* passes over the candidate edges */
	size_t collapses;       /* edges collapsed */
	size_t rejected_link;   /* would have joined two sheets (link condition) */
	size_t rejected_shape;  /* would have flipped or flattened a triangle */
	bool reached;           /* the triangle count is at most the target */
	size_t budget_tri;      /* triangles when the target was reached (or not) */
};

/* Simplifies the triangles tri[3 * ntri] over the vertices xyz[3 * nvert]
 * to at most target triangles, then, when max_dev > 0, on below it as long
 * as each collapse keeps the new vertex within max_dev (root mean square,
 * weighted by area) of the planes of the original triangles it stands for;
 * cheapest collapse (Garland-Heckbert
 * quadric, area weighted) first, in passes over an independent set of
 * edges (no two collapses of a pass touch one triangle). A collapse is made
 * only when
 * - neither end is locked (locked may be NULL) nor touches an edge that is
 *   not shared by exactly two triangles in opposite directions;
 * - the ends have exactly two common neighbours (the link condition), and
 *   every vertex keeps at least three triangles: the surface stays a
 *   2-manifold of the same genus, and no two sheets are joined;
 * - no remaining triangle around it turns by more than about 78 degrees
 *   or loses its area (twice its area below COLLAPSE_MIN_SHAPE of its
 *   longest edge squared).
 * So a closed, consistently oriented 2-manifold stays one, and an open or
 * defective one is simplified only away from its defects. The surviving
 * vertex of each collapse is moved in xyz; the removed ones are left
 * unreferenced. tri is compacted in place; *ntri_out gets the new count.
 * *st (may be NULL) describes the run. Fails only for no memory. */
bool collapse_simplify(struct r3d_err *err, float *xyz, size_t nvert, uint32_t *tri, size_t ntri,
		       const uint8_t *locked, size_t target, double max_dev, size_t *ntri_out,
		       struct collapse_stats *st);

#endif
