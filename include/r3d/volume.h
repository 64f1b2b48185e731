/*
 * volume.h: volume assembly, from a CT series' slice headers and decoded
 * frames to one HU volume in patient geometry. Knows no DICOM library: the
 * bridge (or a test) fills plain struct volume_slice records.
 *
 * Memory order: voxel (i, j, k) is hu[i + nx * (j + ny * k)], x (i, along a
 * row of the source slices) fastest. Coordinate frame: affine maps the voxel
 * index (i, j, k, 1) to patient LPS millimetres (DICOM patient coordinates).
 *
 * Any thread; functions share no state. volume_assemble() may start
 * opt->threads - 1 helper threads for resampling and joins them before it
 * returns. The volume is one big buffer from bigbuf_alloc (huge pages where
 * offered).
 */
#ifndef R3D_VOLUME_H
#define R3D_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VOLUME_MAX_SLICES 4096       /* slices (or frames) in one series */
#define VOLUME_MAX_DIM 4096          /* rows or columns of a slice, and of a resampled grid */
#define VOLUME_MAX_VOXELS (1ULL << 32) /* 8 GiB of int16: refused above, before any allocation */
#define VOLUME_GAP_FACTOR 1.5        /* a gap over this times the median spacing is refused */
#define VOLUME_UNEVEN_TOLERANCE 0.01 /* relative spacing deviation that needs resampling */
#define VOLUME_HU_PAD (-1024)        /* resampled voxels that no slice covers */
#define VOLUME_MAX_THREADS 64

enum volume_pixel {
	VOLUME_PIXEL_U16, /* unsigned stored values */
	VOLUME_PIXEL_S16, /* signed (two's complement) stored values */
};

/* One slice (one frame of an instance) as the bridge decoded it. */
struct volume_slice {
	uint32_t rows, columns;
	double position[3];        /* Image Position (Patient): centre of the first voxel, LPS mm */
	double orientation[6];     /* Image Orientation (Patient): row cosines, then column cosines */
	double pixel_spacing[2];   /* DICOM order: between rows (along columns), between columns */
	double rescale_slope;      /* HU = stored * slope + intercept */
	double rescale_intercept;
	enum volume_pixel pixel;
	const void *pixels;        /* rows * columns stored values, x fastest; not owned */
	long instance_number;      /* for messages */
	uint32_t frame;            /* 0-based frame in its instance */
	const char *label;         /* for messages (file name or SOP Instance UID); may be NULL */
};

struct volume_options {
	bool interpolate_gaps;     /* resample across gaps instead of refusing them */
	bool keep_shear;           /* gantry tilt: carry the sheared affine instead of resampling */
	double gap_factor;         /* VOLUME_GAP_FACTOR */
	double uneven_tolerance;   /* VOLUME_UNEVEN_TOLERANCE */
	unsigned threads;          /* resampling threads, 0 or 1: the calling thread only */
};

struct volume {
	int16_t *hu;               /* nx * ny * nz HU values, x fastest */
	size_t nx, ny, nz;
	double spacing[3];         /* mm between voxel centres along i, j, k */
	double affine[4][4];       /* (i, j, k, 1) -> LPS mm; row-major, last row 0 0 0 1 */
	bool resampled;            /* the grid is not the slices as given (tilt, uneven, gaps) */
	bool sheared;              /* the k axis is not orthogonal to the slice plane */
	int16_t hu_min, hu_max;
	size_t bytes;              /* size of the hu buffer */
	char note[160];            /* how the grid was made, for logs and reports */
};

void volume_options_default(struct volume_options *opt);

/* Sorts the slices along the normal of their orientation by position, checks
 * them (same rows/columns, orientation and pixel spacing; no duplicate
 * positions; no gap over gap_factor times the median spacing unless
 * interpolate_gaps; at least 2 slices), converts each to HU with its own
 * slope and intercept, and builds the volume. Uneven spacing and gantry tilt
 * are resampled (linear across slices, bilinear within them) to an
 * orthogonal grid spaced by the finer of the median and the mean slice
 * spacing, unless keep_shear asks for a sheared affine of an evenly tilted
 * stack. opt may be NULL for defaults. On success the caller owns *out and
 * frees it with volume_destroy(). */
bool volume_assemble(struct r3d_err *err, const struct volume_slice *slices, size_t count,
		     const struct volume_options *opt, struct volume **out);

void volume_destroy(struct volume *vol);

/* Patient LPS mm of the (possibly fractional) voxel index (i, j, k). */
void volume_index_to_patient(const struct volume *vol, double i, double j, double k,
			     double out[3]);

/* The fractional voxel index (i, j, k) of patient point p (LPS mm); the
 * inverse of volume_index_to_patient(), sheared affines included. */
void volume_patient_to_index(const struct volume *vol, const double p[3], double out[3]);

#ifdef __cplusplus
}
#endif

#endif
