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

/* The kinds of object; a kind fails or succeeds on its own. */
enum export_kind {
	EXPORT_SURFACE_SEGMENTATION,
	EXPORT_STL,
	EXPORT_SEGMENTATION,
	EXPORT_PREVIEW,
	EXPORT_NKINDS
};

/* "surface_segmentation", "stl", "segmentation", "preview" (logs, report.json,
 * the jobs API); "?" out of range. */
const char *export_kind_name(enum export_kind k);

/* The kind of an object from its file name under results_dir/dicom/, or -1. */
int export_kind_of_path(const char *path);

struct export_object {
	char path[PATH_MAX];
	char sop_instance_uid[BRIDGE_UID_MAX + 1];
	char description[65];
	enum export_kind kind;
};

struct export_result {
	int n;
	struct export_object obj[EXPORT_MAX_OBJECTS];
	double ms[EXPORT_NKINDS];          /* wall time spent writing each kind */
	double done_at[EXPORT_NKINDS];     /* clock_wall_s() when its last object was written; 0: none */
	int nfailed;                       /* kinds that failed */
	char failed[EXPORT_NKINDS][R3D_ERR_MSG_MAX];   /* why each kind failed; "" it did not */
	bool stopped;                      /* opt->written failed */
};

/* Called once per object, as soon as its file is complete on disk, from
 * the thread that wrote it (the caller's or the preview thread: two may
 * run at once). False (err set) stops the export: the job fails. */
typedef bool (*export_written_fn)(struct r3d_err *err, void *ctx, const struct export_object *o);

struct export_options {
	bool surface_segmentation;   /* [export] surface_segmentation */
	bool stl;                    /* [export] stl */
	bool segmentation;           /* [export] segmentation: one binary DICOM Segmentation
				      * (needs the pipeline run with keep_masks) */
	bool preview;                /* [export] preview: one image per view, one series */
	int preview_size;            /* pixels, square */
	export_written_fn written;   /* NULL: none; see export_written_fn */
	void *written_ctx;
};

/* Writes the objects of res (its STL files must already be in results_dir,
 * as pipeline_write_outputs() leaves them) under results_dir/dicom/. refs:
 * the source series' instances (nrefs >= 1; the first is the source of the
 * patient and study attributes). Structures that were skipped are left out;
 * with none made, nothing is written and out->n is 0. The previews render
 * on a thread of their own while the others are written; opt->written hears
 * of each object the moment it is complete. A kind that fails is recorded
 * in out->failed[kind] (out->nfailed counts them) and the other kinds are
 * still written: false only when nothing can be written (no source, no
 * folder, no memory) or opt->written failed. */
bool export_job(struct r3d_err *err, const struct pipeline_result *res, int64_t job_id,
		const struct series_ref *refs, int nrefs, const char *results_dir,
		const struct export_options *opt, struct export_result *out);

/* The same, in steps, so that each structure's STL goes out while the next
 * is meshed: export_begin() before the pipeline runs, export_structure()
 * as each structure is meshed (pipeline_options.structure_meshed), then
 * export_finish() for the rest (the Surface Segmentation and the
 * Segmentation need every structure, the previews draw them all) and
 * export_end(). out of export_finish() holds every object and outcome,
 * those of export_structure() included. export_structure() and
 * export_finish() write results_dir/<key>.stl themselves (the job runs
 * pipeline_write_outputs() after them: it writes the same bytes);
 * export_structure() fails only when opt->written does (its own failure is recorded
 * for export_finish()). One thread at a time per session. On success the
 * caller owns *out and frees it with export_end(). */
struct export_session;
bool export_begin(struct r3d_err *err, int64_t job_id, const struct series_ref *refs, int nrefs,
		  const char *results_dir, const struct export_options *opt,
		  struct export_session **out);
bool export_structure(struct r3d_err *err, struct export_session *x,
		      const struct pipeline_result *res, size_t i);
bool export_finish(struct r3d_err *err, struct export_session *x,
		   const struct pipeline_result *res, struct export_result *out);
void export_end(struct export_session *x);

#endif
