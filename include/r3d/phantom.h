/*
 * phantom.h: synthetic CT scenes of known geometry, for tests and benchmarks.
 *
 * A scene is a list of shapes (ellipsoids, capped cylinders, boxes) placed in
 * patient LPS millimetres, painted in order (a later shape overwrites an
 * earlier one) over air. A sampling geometry (axial, double-oblique, or
 * gantry-tilted with sheared slice positions) says where each slice's voxels
 * lie. Rendering samples each voxel with partial-volume weighting (3x3 lines
 * per voxel across the row and slice directions by default, up to 32x32;
 * exact coverage along the row), so isosurfaces of the result land on the
 * analytic surfaces.
 *
 * Pure C, no DICOM: the recon3d-phantom command writes the slices through the
 * bridge; tests use the analytic truth directly. Every function is
 * thread-safe for distinct outputs (slices may be rendered in parallel).
 */
#ifndef R3D_PHANTOM_H
#define R3D_PHANTOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PHANTOM_MAX_SHAPES 16
#define PHANTOM_SUBLINES 3        /* default sub-lines per voxel along columns and along slices */
#define PHANTOM_MAX_SUBLINES 32
#define PHANTOM_MAX_DIM 2048      /* rows or columns */
#define PHANTOM_MAX_SLICES 4096
#define PHANTOM_MAX_ANGLE_DEG 45.0
#define PHANTOM_MAX_UNEVEN 0.45
#define PHANTOM_HU_AIR (-1000)
#define PHANTOM_HU_BODY 40

enum phantom_geometry {
	PHANTOM_AXIAL,   /* rows along L, columns along P, slices along S */
	PHANTOM_OBLIQUE, /* the axial grid rotated by angle about L, then about S */
	PHANTOM_TILT,    /* gantry tilt: columns tilted by angle about L, slice positions step along S */
};

enum phantom_kind {
	PHANTOM_ELLIPSOID, /* semi-axes radii[0..2] along L, P, S */
	PHANTOM_CYLINDER,  /* circular, capped: radius radii[0], unit axis, half_length */
	PHANTOM_BOX,       /* half sizes radii[0..2] along L, P, S */
};

struct phantom_shape {
	enum phantom_kind kind;
	const char *name;      /* static, unique in the scene: "bone_sphere", ... */
	const char *structure; /* what it stands for: body, bone, vessel, air, soft, table */
	double hu;             /* value painted inside */
	double center[3];      /* LPS mm */
	double radii[3];       /* mm, see phantom_kind */
	double axis[3];        /* cylinders: unit vector */
	double half_length;    /* cylinders: mm */
	int cut_from;          /* index of the shape this one is carved out of (a shell's inside), or -1 */
};

/* What the caller asks for. */
struct phantom_request {
	uint32_t columns, rows, slices;
	double spacing[3];   /* column spacing (along a row), row spacing, slice step (mm) */
	enum phantom_geometry geometry;
	double angle_deg;    /* oblique rotation or gantry tilt; 0..PHANTOM_MAX_ANGLE_DEG */
	double center[3];    /* LPS mm of the scene centre and of the grid centre */
	double uneven;       /* odd slices moved by uneven * step along it: gaps alternate
				(1 + uneven) and (1 - uneven) steps; 0..PHANTOM_MAX_UNEVEN */
	unsigned sublines;   /* partial-volume lines per voxel along columns and along
				slices (sublines^2 lines, exact coverage along each);
				0: PHANTOM_SUBLINES; 1..PHANTOM_MAX_SUBLINES */
};

struct phantom {
	struct phantom_request req;
	double row_dir[3];   /* Image Orientation (Patient), first triplet */
	double col_dir[3];   /* second triplet */
	double normal[3];    /* row_dir x col_dir */
	double step[3];      /* Image Position (Patient) of slice k+1 minus that of slice k */
	double origin[3];    /* Image Position (Patient) of slice 0 */
	double tilt_deg;     /* Gantry/Detector Tilt to write */
	size_t nshapes;
	struct phantom_shape shapes[PHANTOM_MAX_SHAPES];
};

/* Checks the request, derives the slice geometry and places the standard
 * scene (body, table, bone spheres, an ellipsoid bone shell with soft tissue
 * inside, an air cavity with an airway, two contrast vessels) so that it fits
 * the grid. */
bool phantom_init(struct r3d_err *err, struct phantom *p, const struct phantom_request *req);

/* As phantom_init(), but the scene is the caller's nshapes shapes (copied,
 * placed as given in LPS mm, not scaled to the grid): for tests that need
 * shapes of their own. Each shape needs positive finite radii (the ones its
 * kind uses), cylinders a unit axis and a positive half_length, and
 * cut_from -1 or the index of an earlier shape; 1..PHANTOM_MAX_SHAPES. */
bool phantom_init_shapes(struct r3d_err *err, struct phantom *p,
			 const struct phantom_request *req,
			 const struct phantom_shape *shapes, size_t nshapes);

/* Image Position (Patient) of slice k. */
void phantom_slice_position(const struct phantom *p, uint32_t k, double pos[3]);

/* Renders slice k into hu (rows*columns values, x = column index fastest),
 * rounded HU. */
void phantom_render_slice(const struct phantom *p, uint32_t k, int16_t *hu);

/* Analytic truth of shape i: the volume of what is painted with its value
 * (the shape minus the shapes carved out of it) and that region's centroid. */
void phantom_shape_truth(const struct phantom *p, size_t i, double *volume_mm3,
			 double centroid[3]);

/* True when LPS point x lies inside shape s (boundary included). */
bool phantom_shape_contains(const struct phantom_shape *s, const double x[3]);

/* Writes the geometry and the analytic truth as JSON to path. */
bool phantom_truth_write(struct r3d_err *err, const struct phantom *p, const char *path,
			 const char *series_uid, const char *transfer_syntax);

#ifdef __cplusplus
}
#endif

#endif
