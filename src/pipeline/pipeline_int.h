/*
 * pipeline_int.h: what the files of src/pipeline share: the masks on the
 * source slice grid (segmap.c) and report.json (report.c). Any thread; one
 * pipeline run per struct pipeline_result.
 */
#ifndef R3D_PIPELINE_INT_H
#define R3D_PIPELINE_INT_H

#include "r3d/bridge.h"
#include "r3d/pipeline.h"
#include "r3d/volume.h"

/* The source slices in the volume's order (sorted along the normal of their
 * orientation by position, ties by decoding order, as volume_assemble()
 * does), with their UIDs, frame numbers and positions: copied before the
 * decoded series is freed. sop_class: the series' first instance's class,
 * for slices that have none of their own. */
bool seg_slices_build(struct r3d_err *err, const struct bridge_series *series,
		      const struct volume_slice *slices, size_t n, const char *sop_class,
		      struct pipeline_seg *g);

/* mask (on the volume grid) onto the source slice grid g, one bit per
 * pixel (see struct pipeline_seg). Sets *mapped when a slice is not a
 * plane of the volume. On success the caller owns *out (free()). */
bool seg_map(struct r3d_err *err, const struct pipeline_seg *g, const struct volume *vol,
	     const uint8_t *mask, uint8_t **out, size_t *nset, bool *mapped);

/* The peak resident set of this process, bytes (-1 when unknown). */
long pipeline_peak_rss(void);

#endif
