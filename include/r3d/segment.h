/*
 * segment.h: the SEGMENT stage. Turns a plain HU volume into binary masks of
 * the structures a surgeon plans with (skin/body, bone, lungs and airways,
 * contrast-enhanced vessels), with the CT table and cushions removed.
 *
 * Pure numeric code: no DICOM, no database, no network. Any thread may call
 * these functions; one struct segment_ctx (and one struct segment_cc) is used
 * by one thread at a time. The kernels start their own worker threads
 * (pthreads) when asked for more than one.
 *
 * Memory order everywhere: x fastest, then y, then z; voxel (x, y, z) is at
 * index x + nx * (y + ny * z). Frame: voxel indices; spacings are in
 * millimetres and only scale kernel radii and volumes. Masks are uint8_t,
 * 0 or 1, on the same grid as the HU volume.
 */
#ifndef R3D_SEGMENT_H
#define R3D_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/err.h"

#define SEGMENT_MAX_DIM 4096             /* per axis */
#define SEGMENT_MAX_VOXELS 0x7fffffffu   /* run and label indices are uint32 */
#define SEGMENT_MAX_THREADS 64
#define SEGMENT_MAX_RADIUS_VOX 255       /* morphology radius per axis */
#define SEGMENT_REASON_MAX 160

/* ---- the input grid ---------------------------------------------------- */

struct segment_volume {
	const int16_t *hu;      /* nx * ny * nz Hounsfield units, x fastest */
	size_t nx, ny, nz;
	double spacing_mm[3];   /* x, y, z voxel size */
};

/* ---- kernels --------------------------------------------------------- */

/* Connected components by runs and union-find. A struct segment_cc holds its
 * run buffers between calls (allocated once, grown when a mask needs more). */
struct segment_cc;

/* threads: workers for cutting runs and painting (1..SEGMENT_MAX_THREADS).
 * On success the caller owns *out and frees it with segment_cc_destroy(). */
bool segment_cc_create(struct r3d_err *err, int threads, struct segment_cc **out);
void segment_cc_destroy(struct segment_cc *cc);

/* Labels the non-zero voxels of mask with connectivity 6 or 26 (4 or 8 when
 * nz == 1 is the same thing). Components are numbered 1..count in raster
 * order of their first voxel. */
bool segment_cc_label(struct r3d_err *err, struct segment_cc *cc, const uint8_t *mask,
		      size_t nx, size_t ny, size_t nz, int connectivity);
size_t segment_cc_count(const struct segment_cc *cc);
/* Voxel count of component id (1..count); 0 for an unknown id. */
size_t segment_cc_size(const struct segment_cc *cc, size_t id);
/* The id of the largest component, 0 when there is none. */
size_t segment_cc_largest(const struct segment_cc *cc);
/* labels[v] = component id of voxel v, 0 for background. */
void segment_cc_write_labels(const struct segment_cc *cc, uint32_t *labels);
/* out[v] = 1 where voxel v belongs to a component whose keep[id] is non-zero
 * (keep has count + 1 entries), 0 elsewhere. out may alias the labelled mask. */
void segment_cc_paint(const struct segment_cc *cc, const uint8_t *keep, uint8_t *out);
/* out = only the components of at least min_voxels voxels. */
void segment_cc_paint_min_size(const struct segment_cc *cc, size_t min_voxels, uint8_t *out);

/* Separable box morphology with windows clipped at the volume border (the
 * outside neither adds nor erodes). Radii are in voxels per axis, 0 leaves
 * an axis alone. in and out may be the same buffer; tmp is a volume-sized
 * scratch buffer distinct from both. */
bool segment_dilate(struct r3d_err *err, const uint8_t *in, uint8_t *out, uint8_t *tmp,
		    size_t nx, size_t ny, size_t nz, const unsigned radius[3], int threads);
bool segment_erode(struct r3d_err *err, const uint8_t *in, uint8_t *out, uint8_t *tmp,
		   size_t nx, size_t ny, size_t nz, const unsigned radius[3], int threads);

/* Hole filling slice by slice (axial, z constant): background pixels that are
 * not 4-connected to the slice border become 1. A hole is filled only when its
 * area is at most max_hole_px (0: any size) and, when hu is not NULL, its mean
 * HU is above min_mean_hu. In place. */
bool segment_fill_holes_2d(struct r3d_err *err, uint8_t *mask, size_t nx, size_t ny, size_t nz,
			   size_t max_hole_px, const int16_t *hu, double min_mean_hu, int threads);
/* 3D hole filling: background not 6-connected to any face of the volume
 * becomes 1. tmp is a volume-sized scratch buffer. In place. */
bool segment_fill_holes_3d(struct r3d_err *err, struct segment_cc *cc, uint8_t *mask, uint8_t *tmp,
			   size_t nx, size_t ny, size_t nz);

/* ---- presets ------------------------------------------------------------ */

enum segment_preset {
	SEGMENT_SKIN = 0,
	SEGMENT_BONE,
	SEGMENT_LUNGS,
	SEGMENT_VESSELS,
	SEGMENT_PRESET_COUNT
};

/* Thresholds are half-integers on integer HU (hu > 299.5). Lengths in mm are
 * in [0, SEGMENT_MAX_PARAM_MM], fractions in [0, 1] (blood_min_soft_excess
 * in [-1, 1]); segment_run() refuses others. */
#define SEGMENT_MAX_PARAM_MM 1000.0
struct segment_skin_params {
	double body_hu;          /* body = hu > body_hu (foam cushions stay below) */
	double open_mm;          /* in-plane opening that cuts the table's thin bridges */
	double min_ml;           /* no body smaller than this */
	double min_part_fraction;    /* parts apart from the trunk (arms) of at least
				      * this fraction of it ... */
	double part_min_bone_fraction; /* ... holding this fraction of bone voxels
				      * (a table rail holds none) ... */
	double part_min_soft_fraction; /* ... and this fraction of soft tissue (a
				      * dense table slab has none) belong to the body */
};

struct segment_bone_params {
	double dense_hu;         /* seeds: cortex */
	double low_hu;           /* everything over low_hu connected to the core and
				  * outside blood blobs (marrow, partial volume) */
	double contrast_low_hu;  /* the same on a contrast series (enhanced organs), ... */
	double contrast_reach_mm;/* ... and only this far from the core (0: no limit) */
	/* Blood, never bone: voxels in (low, vessels.high_hu], low being
	 * vessels.detect_low_hu on a contrast series and low_hu otherwise, whose
	 * in-plane neighbourhood of radius blood_window_mm has a mean |HU step|
	 * under blood_max_grad_hu (trabecular bone is rougher) ... */
	double blood_window_mm;
	double blood_max_grad_hu;
	double blood_open_mm;    /* ... and survive this in-plane opening, ... */
	double blood_close_mm;   /* ... closed in-plane over rough plaque, ... */
	double blood_margin_mm;  /* ... grown by this (the vessel wall) ... */
	double blood_min_soft_excess; /* ... when the fraction of that margin under
				  * low_hu (fat, soft tissue) exceeds the fraction
				  * over dense_hu (cortex around marrow) by this */
	double close_mm;         /* in-plane closing of the shell before hole filling */
	double hole_max_mm2;     /* marrow holes up to this area are filled per slice */
	double hole_min_mean_hu; /* ... when their mean HU is above this */
	double min_island_ml;    /* smaller islands are removed */
};

struct segment_lung_params {
	double air_hu;           /* air = hu < air_hu inside the body */
	double min_ml;           /* smaller air pockets are not lung */
	double hole_max_mm2;     /* vessels inside the lung up to this area are lung */
	double gas_hu;           /* pure gas: hu < gas_hu ... */
	double gas_max_fraction; /* ... pockets with more of it are bowel gas, not lung */
};

struct segment_vessel_params {
	double low_hu, high_hu;  /* contrast blood is in (low_hu, high_hu] */
	double detect_low_hu;    /* detection: blood over this (weak contrast: ~150 HU) ... */
	double detect_open_mm;   /* ... that an opening leaves as thick blobs ... */
	double detect_min_ml_per_cm; /* ... of this volume per cm of scan length
				      * (mean thick cross-section, cm^2) means
				      * contrast-enhanced */
	double bone_margin_mm;   /* voxels this close to bone (for the detection: to
				  * the dense bone core) are not vessel */
	double min_ml;           /* smaller vessel pieces are removed */
};

struct segment_params {
	struct segment_skin_params skin;
	struct segment_bone_params bone;
	struct segment_lung_params lungs;
	struct segment_vessel_params vessels;
	int threads;             /* 1..SEGMENT_MAX_THREADS */
};

/* Fills p with the defaults measured on the reference series. */
void segment_params_default(struct segment_params *p);

/* "skin", "bone", "lungs", "vessels". */
const char *segment_preset_name(enum segment_preset s);
/* SEGMENT_PRESET_COUNT when name is unknown. */
enum segment_preset segment_preset_from_name(const char *name);

/* Workspace for one grid size: every volume-sized buffer, allocated once
 * with huge pages and reused by each segment_run() on that grid.
 * On success the caller owns *out and frees it with segment_ctx_destroy(). */
struct segment_ctx;
bool segment_ctx_create(struct r3d_err *err, size_t nx, size_t ny, size_t nz,
			struct segment_ctx **out);
void segment_ctx_destroy(struct segment_ctx *ctx);

struct segment_result {
	/* Mask per structure, owned by the ctx and valid until the next
	 * segment_run() or segment_ctx_destroy(); NULL when skipped. */
	const uint8_t *mask[SEGMENT_PRESET_COUNT];
	char skipped_reason[SEGMENT_PRESET_COUNT][SEGMENT_REASON_MAX]; /* "" when produced */
	size_t voxels[SEGMENT_PRESET_COUNT];
	double ms[SEGMENT_PRESET_COUNT];  /* wall time per structure */
	/* The HU range whose crossing draws each mask's boundary where the
	 * mask follows the CT (-INFINITY / INFINITY for an open end): the
	 * grey-level surface of r3d/mesh.h's struct mesh_volume. */
	double range_lo[SEGMENT_PRESET_COUNT], range_hi[SEGMENT_PRESET_COUNT];
	double body_ms;                      /* shared body step (also in ms[SKIN]) */
	double detect_ms;                    /* contrast detection, before bone */
	bool contrast;                       /* contrast enhancement detected */
	double contrast_ml;                  /* volume of the thick contrast blobs */
};

/* Runs the presets whose bit (1u << structure) is set in structures.
 * vol must match the ctx grid. A structure that cannot be produced (not
 * contrast-enhanced, no lungs in the field of view, ...) is not an error: its
 * mask is NULL and skipped_reason says why. Returns false only for invalid
 * input or out of memory. */
bool segment_run(struct r3d_err *err, struct segment_ctx *ctx, const struct segment_volume *vol,
		 const struct segment_params *p, unsigned structures, struct segment_result *res);

#endif
