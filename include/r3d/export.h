/*
 * export.h: a finished job's models as the DICOM objects that go back to the
 * PACS: one Surface Segmentation holding every structure, one
 * Encapsulated STL per structure, one binary DICOM Segmentation (voxel
 * masks on the source slices, every meshed structure a segment) and the
 * rendered previews, each in a series of its own described for a surgeon
 * ("3D model: bone (STL)", "3D model: segmentation"). UIDs are derived from the source series
 * and the job id, so a job run again writes the same instances (a PACS keeps
 * one copy). Written through the bridge. Any thread.
 */
#ifndef R3D_EXPORT_H
#define R3D_EXPORT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "r3d/bridge.h"
#include "r3d/err.h"
#include "r3d/index.h"
#include "r3d/pipeline.h"

/* Surface Segmentation + one STL per structure + one Segmentation + one
 * image per preview view. */
#define EXPORT_MAX_OBJECTS (PIPELINE_MAX_STRUCTURES + 1 + 1 + 7)
#define EXPORT_SEG_SERIES_OFFSET 80      /* the Segmentation is series 9080 (previews: 9090) */
#define EXPORT_SERIES_NUMBER_BASE 9000   /* new series are numbered from here */

struct export_object {
	char path[PATH_MAX];
	char sop_instance_uid[BRIDGE_UID_MAX + 1];
	char description[65];
};

/* Wall time spent writing each kind of object, for logs and benchmarks. */
enum export_kind {
	EXPORT_SURFACE_SEGMENTATION,
	EXPORT_STL,
	EXPORT_SEGMENTATION,
	EXPORT_PREVIEW,
	EXPORT_NKINDS
};

struct export_result {
	int n;
	struct export_object obj[EXPORT_MAX_OBJECTS];
	double ms[EXPORT_NKINDS];
};

struct export_options {
	bool surface_segmentation;   /* [export] surface_segmentation */
	bool stl;                    /* [export] stl */
	bool segmentation;           /* [export] segmentation: one binary DICOM Segmentation
				      * (needs the pipeline run with keep_masks) */
	bool preview;                /* [export] preview: one image per view, one series */
	int preview_size;            /* pixels, square */
};

/* Writes the objects of res (its STL files must already be in results_dir,
 * as pipeline_write_outputs() leaves them) under results_dir/dicom/. refs:
 * the source series' instances (nrefs >= 1; the first is the source of the
 * patient and study attributes). Structures that were skipped are left out;
 * with none made, nothing is written and out->n is 0. */
bool export_job(struct r3d_err *err, const struct pipeline_result *res, int64_t job_id,
		const struct series_ref *refs, int nrefs, const char *results_dir,
		const struct export_options *opt, struct export_result *out);

#endif
