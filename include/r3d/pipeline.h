/*
 * pipeline.h: one CT series from DICOM files to surface models: scan a
 * folder, pick the series, decode it (bridge), assemble the volume, segment
 * the structures, mesh each one, and write STL / OBJ + MTL / report.json.
 * The offline command recon3d-mesh and the daemon's workers both run it.
 *
 * Any thread; one struct pipeline_result per run. Progress lines go to the
 * callback (may be NULL), never to a log with patient data: only UIDs,
 * counts and times.
 */
#ifndef R3D_PIPELINE_H
#define R3D_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/analysis.h"
#include "r3d/err.h"
#include "r3d/mesh.h"
#include "r3d/segment.h"
#include "r3d/structure.h"

struct bridge_export_info;    /* r3d/bridge.h */
struct bridge_segment_codes;

#define PIPELINE_MAX_STRUCTURES STRUCTURE_MAX
#define PIPELINE_NOTE_MAX 512

/* Stages, for timings and progress. */
enum pipeline_stage {
	PIPELINE_SCAN,
	PIPELINE_LOAD,
	PIPELINE_VOLUME,
	PIPELINE_SEGMENT,
	PIPELINE_MESH,
	PIPELINE_WRITE,
	PIPELINE_NSTAGES
};
const char *pipeline_stage_name(enum pipeline_stage s);

/* Print readiness (issue 14, printcheck.c): what the analysis of each
 * meshed structure is measured against, and which pairs get a distance. */
#define PIPELINE_PRINT_MIN_WALL_MM 1.0     /* [print] min_wall_mm */
#define PIPELINE_PRINT_MIN_SHELL_ML 0.1    /* [print] min_shell_ml */
struct pipeline_print_options {
	bool off;                /* true: no analysis (report.json without "print") */
	bool deferred;           /* true: pipeline_run_dir() leaves pipeline_print_run()
				  * to its caller */
	double min_wall_mm;      /* a structure thinner than this is flagged thin_wall */
	double min_shell_ml;     /* loose shells below this ... */
	bool drop_loose_shells;  /* ... are removed from the model (every output) */
	char distances[STRUCTURE_PAIRS_TEXT_MAX];  /* "a:b, c:d": pairs measured when
						    * both are meshed; "": none */
};

struct pipeline_result;
struct bridge_preload_set;   /* r3d/bridge.h */

struct pipeline_options {
	/* The structures: every entry with enabled set is made, in catalogue
	 * order, each from its source (r3d/structure.h). */
	struct structure_catalog catalog;
	const char *series_uid;  /* NULL: the largest series in the folder */
	const char *segmentation; /* a DICOM Segmentation or RT Structure Set made on the
				   * series: its segments or ROIs are made too (after the
				   * enabled catalogue entries), each with its own label,
				   * colour and codes, on the object's own grid; NULL: none */
	const char *labels;       /* a NIfTI label map (.nii, .nii.gz) on the series' patient
				   * space: one structure per label present, placed by its
				   * affine; NULL: none */
	const char *label_table;  /* its label table (JSON: value -> name, colour, codes);
				   * NULL: TotalSegmentator's 'total' class names */
	bool interpolate_gaps;   /* resample across gaps instead of refusing the series */
	const char *save_volume; /* if set: write the HU volume there (int16, x fastest) */
	const char *save_volume_nifti; /* if set: write the HU volume there as NIfTI-1 (.nii) */
	bool volume_only;        /* stop after the volume stage (nothing is segmented) */
	const char *save_masks;  /* if set: a folder (created) that receives each meshed
				  * structure's mask on the volume grid as <key>.raw
				  * (uint8 0/1, x fastest; dims and affine in report.json) */
	bool keep_masks;         /* keep the meshed masks on the source slice grid
				  * (struct pipeline_result.seg, pipeline_structure.seg_bits)
				  * for a DICOM Segmentation */
	bool smooth;
	bool decimate;
	double max_error_mm;     /* decimation error flagged above this (mesh_build_params) */
	double error_target_mm;  /* below the budget, decimate on within this (0: stop at it) */
	struct pipeline_print_options print;
	bool mask_surfaces;      /* mesh every structure from its binary mask alone, as
				  * a structure without grey levels is (terrace-free
				  * smoothing within the voxel cell), instead of through
				  * the CT's grey-level crossing; for comparisons */
	int threads;             /* 1..MESH_MAX_THREADS */
	/* Files of the series decoded before the run (the daemon's pre-loader,
	 * r3d/preload.h): the load stage takes those that are exactly the
	 * files it would read, and reads the others. Taken files leave the set;
	 * the caller still owns and frees it. NULL: every file is read. */
	struct bridge_preload_set *preload;
	/* Called at the start of each stage; may be NULL. */
	void (*progress)(void *ctx, enum pipeline_stage stage, const char *what);
	void *progress_ctx;
	/* Called as soon as res->structures[i] has its mesh (and its masks, as
	 * asked), before the next structure is meshed, on the pipeline's
	 * thread: a job writes and queues that structure's STL while the
	 * others are made. False (err set) fails the run. May be NULL. */
	bool (*structure_meshed)(struct r3d_err *err, void *ctx, const struct pipeline_result *res,
				 size_t i);
	void *structure_meshed_ctx;
};

/* The built-in catalogue (every preset on), smoothing and decimation on,
 * threads = online CPUs. */
void pipeline_options_default(struct pipeline_options *o);
/* The default of [mesh] max_decimation_error_mm. */
#define PIPELINE_DEFAULT_MAX_ERROR_MM 0.5
/* The default of [mesh] error_target_mm. */
#define PIPELINE_DEFAULT_ERROR_TARGET_MM 0.05

struct pipeline_structure {
	struct structure_def def;   /* the catalogue entry (a copy): key, label, colour, codes */
	bool grey;                  /* surface through the CT's grey-level crossing of
				     * (range_lo, range_hi); false: from the mask alone */
	double range_lo, range_hi;  /* HU; -INFINITY / INFINITY for an open end */
	struct mesh *mesh;          /* NULL when skipped */
	struct mesh_stats stats;
	char skipped_reason[SEGMENT_REASON_MAX];
	double segment_ms, mesh_ms;
	struct mesh_build_times mesh_times;   /* mesh_ms by step */
	long long stl_bytes, mesh_bytes;      /* the files pipeline_write_outputs() wrote */
	/* keep_masks: the mask the mesh was made from on the source slice grid,
	 * one bit per source pixel (struct pipeline_seg), NULL when skipped. */
	uint8_t *seg_bits;
	size_t seg_voxels;          /* set bits */
	/* Print readiness (printcheck.c); analysed false when not run. The
	 * shells are owned (freed by pipeline_result_free()). */
	bool analysed;
	struct mesh_analysis analysis;
	bool thin_wall, printable;
	double min_wall_limit_mm;
	size_t loose_shells_dropped;
	bool shells_done;           /* pipeline_print_drop() has seen it */
	double analysis_ms;
};

/* The shortest surface-to-surface distance of one pair of structures. */
struct pipeline_distance {
	char a[STRUCTURE_KEY_MAX], b[STRUCTURE_KEY_MAX];
	double mm;
	double a_lps[3], b_lps[3];  /* the closest points; equal when they touch or cross */
};

/* One source slice (one frame of an instance), in sorted order. */
struct pipeline_seg_slice {
	char sop_class_uid[65];
	char sop_instance_uid[65];
	uint32_t frame_number;      /* 1-based frame of a multi-frame instance; 0: single frame */
	double position[3];         /* Image Position (Patient), LPS mm */
};

/* The source slice grid the kept masks are on (keep_masks). Bit v of a
 * structure's seg_bits (byte v / 8, bit v % 8, least significant first) is
 * pixel (x, y) of sorted slice k, v = x + columns * (y + rows * k). When the
 * volume is the slices as given, the bits are the meshed mask exactly; when
 * it was resampled (tilt, uneven spacing, gaps), each source pixel centre
 * takes the nearest volume voxel (outside the volume: 0). */
struct pipeline_seg {
	size_t nslices;             /* 0: no masks kept */
	uint32_t rows, columns;
	double orientation[6];      /* Image Orientation (Patient) */
	double pixel_spacing[2];    /* DICOM order: between rows, between columns */
	double slice_thickness;     /* mean step between sorted slices, mm */
	bool mapped;                /* resampled volume: nearest-voxel mapping */
	struct pipeline_seg_slice *slices;  /* nslices, sorted along the normal */
};

struct pipeline_result {
	char series_uid[65];
	char study_uid[65];
	char modality[17];
	size_t series_in_folder;    /* series found by the scan */
	size_t files_skipped;       /* files that were not DICOM */
	size_t slices;
	size_t instances_preloaded; /* files the load stage took from o->preload */
	size_t instances_read;      /* files it read and decoded itself */
	size_t dims[3];
	double spacing_mm[3];
	double affine[16];          /* voxel index -> LPS mm, row-major */
	bool contrast;              /* contrast enhancement detected */
	char note[PIPELINE_NOTE_MAX];  /* series choice and grid notes, one line */
	size_t nstructures;
	struct pipeline_structure structures[PIPELINE_MAX_STRUCTURES];
	double ms[PIPELINE_NSTAGES];
	long peak_rss_bytes;
	struct pipeline_seg seg;    /* keep_masks only */
	size_t ndistances;
	struct pipeline_distance distances[STRUCTURE_PAIRS_MAX];
};

/* Runs every stage on the CT series under dir. Refuses with a clear reason
 * (R3D_EINVAL): no DICOM files, a series UID not found, not CT, too few
 * slices or inconsistent geometry (from the volume stage), a frame that
 * cannot be decoded. A structure that cannot be made (no contrast, ...) is
 * not an error: it is listed with its skipped_reason. On success the caller
 * frees the meshes with pipeline_result_free(). */
bool pipeline_run_dir(struct r3d_err *err, const char *dir, const struct pipeline_options *o,
		      struct pipeline_result *res);

/* Writes <out_dir>/<key>.stl and <key>.mesh per structure made, model.obj + model.mtl with
 * every structure and its colour, and report.json. Creates out_dir. */
bool pipeline_write_outputs(struct r3d_err *err, const char *out_dir,
			    struct pipeline_result *res);

/* Frees the meshes and the kept masks. */
void pipeline_result_free(struct pipeline_result *res);

/* Print readiness (printcheck.c). Loose shells are dropped (when asked) from
 * each structure as it is meshed, before o->structure_meshed sees it, by
 * pipeline_print_drop(). The analysis of every meshed structure
 * (r3d/analysis.h) and the distances o->print names are measured by
 * pipeline_print_run(): at the end of pipeline_run_dir() (each structure
 * by pipeline_print_one() as soon as it is meshed, while the others are),
 * or, with o->print.deferred, by its caller (the worker runs it once the
 * DICOM objects are on their way: nothing the PACS receives waits for it).
 * pipeline_print_one() does nothing for a structure already analysed. */
void pipeline_print_defaults(struct pipeline_print_options *p);
bool pipeline_print_drop(struct r3d_err *err, const struct pipeline_options *o,
			 struct pipeline_structure *ps);
bool pipeline_print_one(struct r3d_err *err, const struct pipeline_options *o,
			struct pipeline_structure *ps);
bool pipeline_print_run(struct r3d_err *err, const struct pipeline_options *o,
			struct pipeline_result *res);
/* Frees what pipeline_print_run() kept (the shells). */
void pipeline_print_free(struct pipeline_result *res);

/* Writes the kept masks (o->keep_masks) as one binary DICOM Segmentation at
 * path through bridge_write_segmentation(): one segment per meshed
 * structure, frames on the source slices (Referenced Frame Number for the
 * frames of multi-frame sources). info gives the identity and the source
 * instance. R3D_EINVAL when no masks were kept or no structure was meshed. */
bool pipeline_write_segmentation(struct r3d_err *err, const struct pipeline_result *res,
				 const struct bridge_export_info *info, const char *path);

/* A catalogue entry's codes as the DICOM writers take them (pointers into
 * d; the optional ones that d leaves empty are left out). */
void pipeline_structure_codes(const struct structure_def *d, struct bridge_segment_codes *out);

#endif
