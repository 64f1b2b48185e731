/*
 * analysis.h: print readiness and measurements of a surface model, the
 * numeric core of issue 14 (src/mesh/analysis.c). A plain struct mesh in,
 * plain structs out; nothing here knows DICOM, SQLite or the network, so
 * the pipeline, the offline tool, the tests and bench/analysis all call the
 * same code.
 *
 * What it computes, per structure (mesh_analyse()):
 *   - shells: the connected pieces of the surface as an STL reader sees
 *     them (vertices welded by position, pieces joined through shared
 *     vertices), each with its signed volume (negative: a cavity, a shell
 *     facing inward), triangle count and area;
 *   - self-intersections: pairs of triangles that share no vertex and
 *     cross (an edge of one passes through the other); coplanar overlaps
 *     are not counted;
 *   - wall thickness: from every vertex a ray is cast inward, against the
 *     area-weighted vertex normal, to the first triangle of the same mesh
 *     that is not in the vertex's own 1-ring and faces along the ray (where
 *     the ray leaves the material; a triangle facing back is one the ray
 *     enters, which only a self-crossing makes); the hit distance is the
 *     local thickness. Vertices on a triangle of a self-intersection, and
 *     rays that end on one, are not measured (the crossing is reported
 *     instead). The reported minimum is robust to single stray rays: each
 *     vertex takes the largest thickness of itself and its 1-ring
 *     neighbours, and the minimum is taken over those (a thin region must
 *     be at least a vertex and its neighbours wide to count);
 *   - measurements: enclosed volume, solid centroid, principal axes of the
 *     surface (area-weighted covariance, eigenvectors by Jacobi) and the
 *     extents of the surface along them (largest first).
 * and between two structures (mesh_gap()): the shortest distance
 * between their surfaces, exact triangle-to-triangle, 0 where they cross.
 *
 * Frame: whatever the mesh is in; the pipeline's meshes are patient LPS
 * millimetres, so lengths are mm, areas mm2 and volumes mm3 (ml = / 1000).
 *
 * Threads: any thread; each call starts up to its threads argument - 1
 * pthreads (src/mesh/meshpar.c) and joins them before it returns. The mesh
 * is only read.
 */
#ifndef R3D_ANALYSIS_H
#define R3D_ANALYSIS_H

#include <stdbool.h>
#include <stddef.h>

#include "r3d/err.h"
#include "r3d/mesh.h"

#define ANALYSIS_MAX_TRIANGLES 50000000u   /* refused above this */

struct mesh_shell {
	double volume;     /* signed, frame units cubed (mm3); < 0: a cavity */
	double area;       /* frame units squared */
	size_t ntri;
};

struct mesh_analysis {
	/* Shells, largest |volume| first. Owned: mesh_analysis_free(). */
	struct mesh_shell *shells;
	size_t nshells;
	/* Self-intersections: crossing pairs of triangles that share no
	 * (welded) vertex; si_at: a point on the first crossing found. */
	size_t self_intersections;
	double si_at[3];
	/* Wall thickness (robust minimum, see above); has_wall false when no
	 * inward ray hit anything (an open sheet). wall_at: the vertex. */
	bool has_wall;
	double min_wall;
	double wall_at[3];
	/* Measurements. */
	double volume;         /* signed enclosed volume, sum over the shells */
	double area;
	double centroid[3];    /* of the enclosed solid (of the surface if volume is 0) */
	double extents[3];     /* along axes[0..2], largest first */
	double axes[3][3];     /* unit principal axes of the surface */
	double seconds;        /* wall-clock time of mesh_analyse() */
};

/* Analyses m with up to threads (1..MESH_MAX_THREADS) threads. On success
 * the caller frees a with mesh_analysis_free(). Fails on bad input (an
 * index out of range, more than ANALYSIS_MAX_TRIANGLES) or no memory. */
bool mesh_analyse(struct r3d_err *err, const struct mesh *m, int threads,
		  struct mesh_analysis *a);
void mesh_analysis_free(struct mesh_analysis *a);

/* The shortest distance between the surfaces of a and b (both non-empty),
 * into *dist, with the closest points pa (on a) and pb (on b); 0 and a
 * point of the crossing when they cross. Exact up to float rounding: the
 * minimum over triangle pairs of their distance (vertex-triangle and
 * edge-edge), found with a bounding-volume hierarchy over b. */
bool mesh_gap(struct r3d_err *err, const struct mesh *a, const struct mesh *b, int threads,
		   double *dist, double pa[3], double pb[3]);

/* Removes the shells (as mesh_analyse() finds them) whose signed volume is
 * in [0, min_volume): loose pieces too small to print. Cavities (negative
 * volume) are kept: removing one would fill a void of the solid around it.
 * When every shell is that small, nothing is removed (a model made only of
 * small pieces is still the model). *dropped: shells removed; unused
 * vertices are dropped. */
bool mesh_drop_small_shells(struct r3d_err *err, struct mesh *m, double min_volume,
			    size_t *dropped);

#endif
