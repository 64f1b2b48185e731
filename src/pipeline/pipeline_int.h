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

/* import.c: a segmentation object's segments as structures. */
struct segobj;
struct segimport_plane_grid;
struct mesh_iso_work;
const char *import_kind_name(int kind);
/* Refuses an object that cannot be meshed on the series: made on images
 * that are not CT, on another series or in another Frame of Reference, on
 * more images than the series holds, or a SEG with unplaced frames (the
 * whole contract is above the function in import.c). */
bool import_check_source(struct r3d_err *err, const struct segobj *s,
			 const struct bridge_series_info *ct);
/* Refuses a label map whose voxels do not lie in the CT volume (within
 * one voxel), or whose axes are not the volume's within 1 degree: a label
 * map of another series, or of another space, named with both extents. */
struct volume;
bool import_check_grid(struct r3d_err *err, const struct segobj *s, const struct volume *v);
/* Appends one structure per segment or ROI of s to res (after the
 * catalogue's), meshed on the object's own grid; RT contours are filled on
 * ct (the CT's pixel grid). A segment that cannot be used is listed as
 * skipped with the reason; false only for a failure of the run. */
bool import_mesh(struct r3d_err *err, const struct segobj *s, const struct segimport_plane_grid *ct,
		 const struct pipeline_options *o, struct mesh_iso_work *work,
		 struct pipeline_result *res);

/* The peak resident set of this process, bytes (-1 when unknown). */
long pipeline_peak_rss(void);

/* Adds the notes on ps's decimation (fallback, error beyond the allowed)
 * to res. Any thread that owns res. */
void pipeline_note_decimation(struct pipeline_result *res, const struct pipeline_structure *ps,
			      const struct mesh_build_params *bp);

/* Calls fn(err, ctx, t, i) for every i in 0..n-1, each once, on up to
 * nthreads threads (t in 0..nthreads-1: the calling thread's number, for
 * state of its own); the first failure stops the others taking more and
 * is returned in *err. (each.c) */
typedef bool (*pipeline_each_fn)(struct r3d_err *err, void *ctx, int t, size_t i);
bool pipeline_each(struct r3d_err *err, int nthreads, size_t n, pipeline_each_fn fn, void *ctx);

#endif
