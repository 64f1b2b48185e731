/*
 * mesh.h: the mesh stage of recon3d: a scalar volume in, watertight surface
 * models out. It knows nothing of DICOM, SQLite or the network: it takes a
 * plain volume and returns a plain struct mesh.
 *
 * Pipeline, one function per step, one step per file under src/mesh/:
 *
 *   mesh_isosurface()        isosurface.c  volume -> mesh, voxel-index frame
 *   mesh_transform()         transform.c   voxel index -> patient LPS mm
 *   mesh_smooth()            smooth.c      Taubin lambda/mu, volume preserving
 *   mesh_weld()              decimate.c    merge vertices with equal positions
 *   mesh_remove_degenerate() decimate.c    drop triangles with repeated vertices
 *   mesh_split_pinches()     decimate.c    one vertex per sheet where sheets meet
 *   mesh_decimate()          decimate.c    edge collapses, to a triangle budget
 *   mesh_distance()          distance.c    decimated against undecimated surface
 *   mesh_check()             meshcheck.c   closed, 2-manifold, Euler, volume...
 *   mesh_build()             build.c       all of the above for one structure
 *   mesh_stl_write()         stl.c         one structure, binary STL
 *   mesh_obj_write()         obj.c         several structures, OBJ + MTL
 *   mesh_bin_write()         meshbin.c     one structure, indexed, for the 3D page
 *
 * Memory order: volumes are x fastest, then y, then z:
 * value(x, y, z) = data[x + nx * (y + ny * z)].
 * Coordinate frames: mesh_isosurface() returns vertices in voxel-index
 * coordinates (the centre of voxel (i, j, k) is the point (i, j, k));
 * mesh_transform() maps them to patient LPS millimetres with the series'
 * 4x4 voxel-to-LPS affine. Every other step works in whatever frame the
 * mesh is in; mesh_check() reports volume in that frame's units cubed.
 *
 * Orientation: triangles are counter-clockwise seen from outside, so the
 * right-hand normal points out of the region "value > iso", and the signed
 * volume of a closed surface is positive.
 *
 * Threads: every function may be called from any thread; a struct mesh is
 * used by one thread at a time. mesh_isosurface() starts its own worker
 * threads (pthreads) and joins them before it returns; so do mesh_smooth()
 * and mesh_decimate().
 */
#ifndef R3D_MESH_H
#define R3D_MESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/err.h"

/* Input bounds. */
#define MESH_MAX_DIM 4096          /* voxels along any axis */
#define MESH_MAX_THREADS 64        /* worker threads of any mesh step */
#define MESH_MAX_VERTICES 0x7fffffffu /* indices are uint32 */
#define MESH_MAX_SMOOTH_ITER 1000
#define MESH_NAME_MAX 64           /* structure names in STL/OBJ, with the NUL */
#define MESH_MAX_PARTS 256         /* structures in one OBJ file (STRUCTURE_MAX) */

/* A triangle mesh. xyz holds 3 floats per vertex, tri 3 vertex indices per
 * triangle. The two buffers are owned by the mesh (see mesh_destroy()). */
struct mesh {
	float *xyz;
	uint32_t *tri;
	size_t nvert;
	size_t ntri;
	size_t xyz_bytes; /* allocation sizes; internal */
	size_t tri_bytes;
};

enum mesh_scalar {
	MESH_SCALAR_U8,  /* masks: 0 or 1 with iso 0.5 (0/255 needs iso 127.5:
			  * the vertex sits where the linear ramp crosses iso) */
	MESH_SCALAR_I16, /* HU volumes: iso a half-integer such as 299.5 */
};

/* A scalar volume, x fastest (see above). The mesh stage only reads it.
 *
 * Grey-level placement: when grey is set (U8 masks only), data says which
 * voxels are inside and grey (int16 HU on the same grid) says where on each
 * crossed voxel edge the vertex lies. The field is
 *   g = min(hu - grey_lo, grey_hi - hu)   (either bound may be infinite)
 * so g > 0 inside the HU range [grey_lo, grey_hi]; a voxel where the mask
 * and g disagree (the mask drew the boundary: a cut, a filled cavity, a
 * touching structure) takes g = +0.5 inside the mask and -0.5 outside, and
 * the vertex goes where the linear ramp between the two ends crosses 0. On
 * a threshold crossing the vertex is the interpolated HU crossing, exactly
 * the isosurface of the CT; between two voxels of which both disagree it is
 * the edge midpoint, as for the mask alone. Classification (and hence
 * topology, closedness, manifoldness) comes from the mask alone. */
struct mesh_volume {
	const void *data;
	enum mesh_scalar type;
	size_t nx, ny, nz;
	const int16_t *grey;      /* NULL: vertices by the values of data */
	double grey_lo, grey_hi;  /* HU range of g > 0 (half-integers; -INFINITY / INFINITY) */
};

/* Creates an empty mesh with room for nvert vertices and ntri triangles
 * (both set as the counts; contents zeroed). The caller owns the result
 * and frees it with mesh_destroy(). */
struct mesh *mesh_create(struct r3d_err *err, size_t nvert, size_t ntri);
/* A copy of m (vertices and triangles). The caller owns the result and
 * frees it with mesh_destroy(). */
struct mesh *mesh_copy(struct r3d_err *err, const struct mesh *m);
void mesh_destroy(struct mesh *m);

/* Scratch memory of mesh_isosurface() (bit rows, ~nx*ny*nz/8 bytes, and
 * per thread six edge index maps of 4*nx*ny bytes each), kept between the
 * calls of one job so that its pages are faulted in once, as for the other
 * big buffers of a job. Grows as needed. Used by one call at a time.
 * On success the caller owns the result (mesh_iso_work_destroy()). */
struct mesh_iso_work;
struct mesh_iso_work *mesh_iso_work_create(struct r3d_err *err);
void mesh_iso_work_destroy(struct mesh_iso_work *w);

/* Extracts the surface { value = iso } of the region { value > iso } by
 * marching cubes, organised Flying-Edges style (bit-packed x rows, one pass
 * to count, one to write), threaded over z slabs with nthreads threads
 * (1..MESH_MAX_THREADS).
 * - Watertight by construction: the volume is padded by one voxel of
 *   "outside" on every side, so a region touching the border still closes;
 *   a vertex between a border voxel and the padding lies half a voxel out.
 * - Each crossed voxel edge gets exactly one vertex, shared by every triangle
 *   that uses it. Face ambiguities are resolved by separating the corners
 *   above iso (the same choice as VTK's table), identically in both cubes
 *   that share a face, so the surface is closed and 2-manifold.
 * - Vertices are in voxel-index coordinates; memory order x fastest.
 * work may be NULL (scratch is then allocated and freed in the call).
 * On success the caller owns *out and frees it with mesh_destroy(). */
bool mesh_isosurface(struct r3d_err *err, const struct mesh_volume *vol, double iso,
		     int nthreads, struct mesh_iso_work *work, struct mesh **out);

/* Maps every vertex p to A * (p, 1), where A is a row-major 4x4 affine
 * (last row 0 0 0 1), normally voxel index -> patient LPS millimetres; it
 * may be sheared (gantry tilt). When the 3x3 part has a negative determinant
 * the winding of every triangle is reversed so that normals stay outward.
 * Fails on a singular or non-finite matrix. */
bool mesh_transform(struct r3d_err *err, struct mesh *m, const double affine[16]);
/* As mesh_transform() for planes that are parallel but may be unevenly
 * spaced (a Segmentation's frames, an RT Structure Set's contour planes):
 * vertex (i, j, k) goes to P(k) + i * u + j * v, with u and v the first two
 * columns of affine (its third column is used only when there is one plane,
 * as the step) and P(k) the centre of voxel (0, 0, k), linear between
 * planes[3 * floor(k)] and the next, extrapolated past the ends by the end
 * steps. The winding is reversed when (u x v) . step < 0. */
bool mesh_transform_planes(struct r3d_err *err, struct mesh *m, const double affine[16],
			   const double *planes, size_t nplanes);

struct mesh_smooth_params {
	int iterations; /* lambda/mu pairs, 0..MESH_MAX_SMOOTH_ITER */
	double lambda;  /* shrink step, e.g. 0.5 */
	double mu;      /* inflate step, negative, |mu| > lambda, e.g. -0.53 */
	int threads;    /* 1..MESH_MAX_THREADS */
	double clamp;   /* > 0: after every step each vertex is put back within
			 * +-clamp of its starting point on every axis (a box in
			 * the mesh's frame: in voxel index, 0.5 keeps a marching
			 * cubes vertex of a mask in the voxel cell around the
			 * edge it came from); 0: unconstrained */
};
/* Sensible defaults for a marching-cubes surface (10 pairs, 0.5, -0.53,
 * one thread, no clamp). */
void mesh_smooth_defaults(struct mesh_smooth_params *p);
/* Taubin lambda/mu smoothing with uniform (umbrella) weights: a low-pass
 * filter that removes the voxel staircase while keeping the enclosed
 * volume nearly unchanged. Topology is unchanged. Starts p->threads - 1
 * pthreads per step and joins them. */
bool mesh_smooth(struct r3d_err *err, struct mesh *m, const struct mesh_smooth_params *p);

/* Merges vertices with bit-identical positions and drops unreferenced
 * vertices; triangle indices are remapped. */
bool mesh_weld(struct r3d_err *err, struct mesh *m);
/* Removes triangles that use one vertex twice; returns how many. */
size_t mesh_remove_degenerate(struct mesh *m);
/* Welds by position, then gives each sheet its own copy of a vertex where
 * two sheets meet (two fans of triangles around one position, or four
 * triangles on one edge) and moves the copies apart by 0.2 % of their mean
 * edge length towards their own fans, so that no two vertices share a
 * position and an STL reader, which welds by position, sees a 2-manifold.
 * *split: copies made. */
bool mesh_split_pinches(struct r3d_err *err, struct mesh *m, size_t *split);
/* What mesh_decimate() did. */
struct mesh_decimate_info {
	size_t pinches_split;  /* vertex copies made by mesh_split_pinches() */
	size_t passes;         /* collapse passes (the longest slab's, plus the last) */
	size_t collapses;      /* edges collapsed */
	size_t rejected_link;  /* collapses refused: they would join two sheets */
	size_t rejected_shape; /* collapses refused: a triangle would flip or flatten */
	bool reached;          /* at most target_tri triangles */
	size_t budget_tri;     /* triangles when the budget was reached, before going on
				* by error_mm */
};
/* mesh_split_pinches(), then simplifies to at most target_tri triangles by
 * quadric edge collapses that keep a closed 2-manifold closed, 2-manifold,
 * consistently oriented, of the same genus and without zero-area triangles
 * (see collapse.h; vertices next to a defect of the input are left alone),
 * then removes zero-area triangles the input had (mesh_flip_slivers()) and
 * drops unused vertices. The budget comes first: there is no error bound
 * (mesh_distance() measures the error afterwards); it is missed only where
 * no allowed collapse is left (info->reached false). A mesh already within
 * budget is only welded and split, unless error_mm > 0: then the collapses go
 * on below the budget as long as each one keeps its new vertex within
 * error_mm (root mean square, area weighted) of the planes of the original
 * triangles it stands for, and stop when a pass removes under 2 % of the
 * triangles: flat and gently curved parts then cost few triangles, detail
 * keeps them. With threads > 1 (1..MESH_MAX_THREADS)
 * and at least 100k triangles per thread, the mesh is cut into slabs of
 * equal triangle count along its longest axis, the slabs are simplified in
 * parallel with the vertices on their cuts locked, and the joined mesh gets
 * a last pass. info may be NULL. */
bool mesh_decimate(struct r3d_err *err, struct mesh *m, size_t target_tri, double error_mm,
		   int threads, struct mesh_decimate_info *info);

/* Removes zero-area triangles (a vertex on its triangle's opposite edge, as
 * decimation leaves on flat caps) by flipping that edge with the neighbour's,
 * or, where no flip helps, by collapsing the vertex that lies on the edge:
 * the surface, its orientation and manifoldness are kept. The mesh must be
 * closed and consistently oriented (welded). *flipped: flips and collapses;
 * *left: slivers that remain. */
bool mesh_flip_slivers(struct r3d_err *err, struct mesh *m, size_t *flipped, size_t *left);
/* Zero-area triangles: twice the area below 1e-6 of the longest edge squared. */
size_t mesh_count_slivers(const struct mesh *m);
/* How far two surfaces are apart, both ways. */
struct mesh_distance {
	double mean;    /* mean distance of the sampled points, frame units */
	double max;     /* largest distance of a sampled point */
	size_t samples; /* points sampled, both ways together */
};
/* For up to max_samples vertices of a (every k-th when it has more), the
 * distance to the nearest point of b's surface, and the same from b's
 * vertices to a; *out gets the mean and the largest of them all (a sampled
 * Hausdorff distance). threads: 1..MESH_MAX_THREADS. */
bool mesh_distance(struct r3d_err *err, const struct mesh *a, const struct mesh *b,
		   size_t max_samples, int threads, struct mesh_distance *out);
struct mesh_stats {
	size_t nvert;             /* vertices used by at least one triangle */
	size_t ntri;
	size_t nedge;             /* undirected edges */
	size_t boundary_edges;    /* edges in one triangle */
	size_t nonmanifold_edges; /* edges in three or more triangles */
	size_t misoriented_edges; /* edges used twice in the same direction */
	size_t degenerate_tri;    /* triangles that use one vertex twice */
	size_t zero_area_tri;     /* triangles with (near) zero area: see mesh_flip_slivers() */
	bool closed;              /* no boundary edge */
	bool manifold;            /* every edge in exactly two triangles, oriented */
	long euler;               /* V - E + F: 2 for a sphere, 0 for a torus */
	double volume;            /* signed enclosed volume, frame units cubed */
	double volume_ml;         /* volume / 1000, when the frame is millimetres */
	double area;              /* frame units squared (mm2 in LPS) */
	double centroid[3];       /* centroid of the enclosed solid */
};
/* Fills *st. Fails only on bad input (an index out of range) or no memory. */
bool mesh_check(struct r3d_err *err, const struct mesh *m, struct mesh_stats *st);

/* The whole stage for one structure, as the workers and the offline command
 * run it: isosurface (voxel index) -> [mask smoothing, voxel index] ->
 * transform (LPS mm) -> [smoothing, mm] -> decimation -> check.
 * Uniform-weight smoothing commutes with the affine map, so smoothing in
 * voxel index or in millimetres gives the same points; the clamp box of the
 * mask smoothing is a voxel-index box. */
struct mesh_build_params {
	double iso;          /* 0.5 for masks, half-integer HU for volumes */
	int threads;         /* isosurface and smoothing threads, 1..MESH_MAX_THREADS */
	double affine[16];   /* voxel index -> LPS mm, row-major (see mesh_transform) */
	bool smooth;
	struct mesh_smooth_params smoothing;
	bool smooth_in_voxels; /* smoothing (and its clamp) in voxel index before
				* the transform; else in LPS mm after it */
	size_t max_tri;      /* triangle budget; 0: no decimation */
	double error_target_mm; /* > 0: below the budget, decimate on while each
				 * collapse stays this close (see mesh_decimate()) */
	double max_error_mm; /* decimation error (largest distance between the
			      * decimated and undecimated surface, mesh_distance())
			      * above which the result is flagged; 0: none */
	const double *planes;  /* NULL: the affine; else nplanes plane origins (see
				* mesh_transform_planes()), not owned */
	size_t nplanes;
};
/* Samples per direction of the decimation error measurement. */
#define MESH_BUILD_ERROR_SAMPLES 12500
struct mesh_build_times {
	double isosurface_s, transform_s, smooth_s, decimate_s, error_s, check_s;
	/* What decimation did: the budget (the params' max_tri), its own
	 * account, the error against the undecimated surface (valid when
	 * decimated), and the last resort: fallback is empty, or why the budget
	 * was not kept ("kept undecimated: ...", "over budget: ..."). */
	size_t decimate_target;
	struct mesh_decimate_info decimate;
	bool decimated;             /* mesh_decimate() changed the mesh */
	struct mesh_distance error; /* valid when decimated */
	bool error_exceeded;        /* error.max > max_error_mm > 0 */
	bool undecimated;           /* kept undecimated as the last resort */
	char fallback[160];
};
/* Sets iso 0.5, 1 thread, identity affine, grey-level smoothing on (see
 * mesh_build_grey_smoothing()), no decimation, no error flag. */
void mesh_build_defaults(struct mesh_build_params *p);
/* Smoothing of a surface placed on the CT's grey levels (already sub-voxel,
 * no terraces; what is left is CT noise): MESH_GREY_SMOOTH_ITER Taubin pairs
 * in LPS mm, each vertex kept within +-MESH_GREY_SMOOTH_CLAMP_MM of where
 * the isosurface put it on every axis, so the surface cannot move more than
 * that from the CT's crossing. */
#define MESH_GREY_SMOOTH_ITER 10
#define MESH_GREY_SMOOTH_CLAMP_MM 0.15
void mesh_build_grey_smoothing(struct mesh_build_params *p);
/* Smoothing of a surface from a mask alone (no grey levels: the vertices sit
 * on voxel-edge midpoints, in terraces): MESH_MASK_SMOOTH_ITER Taubin pairs
 * in voxel index, each vertex kept within half a voxel of its start on every
 * axis (in the voxel cell around the edge it came from), so the surface
 * stays within half a voxel of the mask boundary and loses the terraces. */
#define MESH_MASK_SMOOTH_ITER 20
void mesh_build_mask_smoothing(struct mesh_build_params *p);
/* Runs the stage; work (may be NULL) is the job's isosurface scratch.
 * On success the caller owns *out (mesh_destroy()); *st describes the final
 * mesh; times (may be NULL) gets the seconds per step. */
bool mesh_build(struct r3d_err *err, const struct mesh_volume *vol,
		const struct mesh_build_params *p, struct mesh_iso_work *work,
		struct mesh **out, struct mesh_stats *st, struct mesh_build_times *times);

/* Writes one structure as binary STL (little-endian, facet normals from the
 * winding), atomically: a temporary file in the same folder, then rename.
 * name (1..MESH_NAME_MAX-1 printable ASCII characters, the structure's
 * label) goes in the 80-byte header. */
bool mesh_stl_write(struct r3d_err *err, const char *path, const struct mesh *m,
		    const char *name);

/* Writes one structure as the indexed mesh the 3D page loads (see
 * meshbin.c for the layout), atomically. */
bool mesh_bin_write(struct r3d_err *err, const char *path, const struct mesh *m);

/* One named, coloured structure of an OBJ file. name: 1..MESH_NAME_MAX-1
 * characters from [A-Za-z0-9_.-]; rgb in [0, 1]. */
struct mesh_obj_part {
	const char *name;
	const struct mesh *mesh;
	float rgb[3];
};
/* Writes every part into obj_path as its own object with its own material,
 * and the materials into mtl_path (referenced from the OBJ by its base
 * name, so keep both in one folder). Both files are written atomically. */
bool mesh_obj_write(struct r3d_err *err, const char *obj_path, const char *mtl_path,
		    const struct mesh_obj_part *parts, size_t nparts);

#endif
