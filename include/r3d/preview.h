/*
 * preview.h: a small software rasterizer that renders a run's surface
 * models to an RGB8 image (no GPU, no X server), for the rendered preview
 * images of issue 5. It knows nothing of DICOM: it takes plain struct mesh
 * (vertices in patient LPS millimetres) and writes plain pixels. The
 * Secondary Capture wrapping is someone else's job (the bridge).
 *
 * One stage per file under src/preview/:
 *
 *   views.c     the camera of each standard view, names, edge letters
 *   raster.c    projection, z-buffer, Lambert + ambient shading
 *   annotate.c  5x7 bitmap font, orientation letters, scale bar
 *
 * Rendering: orthographic projection that fits the projected extent of all
 * vertices of all meshes into the image with PREVIEW_MARGIN of the shorter
 * side left free on every side (the letters and the scale bar live there);
 * one isotropic scale (square pixels), centred. Z-buffer; smooth (Gouraud)
 * shading with area-weighted vertex normals, light from the viewer,
 * intensity = PREVIEW_AMBIENT + (1 - PREVIEW_AMBIENT) * |n . v| in linear
 * light, then encoded back to sRGB, so a colour keeps its hue. Triangles
 * are drawn from both sides (no culling), so an open mesh looks right too.
 * Background black; letters and scale bar white.
 *
 * Coordinate frame: patient LPS millimetres, +x towards the patient's left,
 * +y towards posterior, +z towards superior. Image: rgb_out[3 * (x + w * y)]
 * with y = 0 the top row, x = 0 the left column (row-major, x fastest).
 *
 * Views (a true camera view from where the viewer stands; "left" and "up"
 * are the image's):
 *
 *   view       viewer at   looks to    image up     image left    letters (left, right, top, bottom)
 *   anterior   -y (front)  +y          superior     patient right  R L S I  (radiological)
 *   posterior  +y (back)   -y          superior     patient left   L R S I
 *   left       +x          -x          superior     anterior       A P S I
 *   right      -x          +x          superior     posterior      P A S I
 *   superior   +z (above)  -z          anterior     patient left   L R A P
 *   inferior   -z (below)  +z          anterior     patient right  R L A P  (as axial CT)
 *   oblique    front, left, above: direction to the viewer
 *              (sin 45 cos 30, -cos 45 cos 30, sin 30) = anterior-left-superior,
 *              image up = superior projected on the image plane; each edge is
 *              labelled with the patient directions whose component along it
 *              exceeds PREVIEW_LETTER_MIN, strongest first (e.g. "RA" on the left).
 *
 * Annotation: each edge gets its letters at its middle; the scale bar (the
 * largest of 1, 2, 5, 10, 20, 50, 100, 200, 500 mm whose length is at most
 * PREVIEW_BAR_FRACTION of the width) sits in the bottom-right corner, its
 * label ("50 mm") above it. Glyphs are 5x7, scaled by max(1, min(w, h) / 160).
 *
 * Threads: every function may be called from any thread; one call renders
 * single-threaded and is deterministic (same input, same bytes).
 * Speed at 512 x 512, one core, even in the ASan/UBSan build: 0.06 s for a
 * 600k-triangle sphere, 0.12 s for 1.2M triangles of CT bone, lungs, vessels.
 */
#ifndef R3D_PREVIEW_H
#define R3D_PREVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/err.h"
#include "r3d/mesh.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Input bounds. */
#define PREVIEW_MIN_DIM 32          /* pixels, each side */
#define PREVIEW_MAX_DIM 8192        /* pixels, each side */
#define PREVIEW_MAX_MESHES 256

/* Rendering constants (documented above; the tests use them). */
#define PREVIEW_MARGIN 0.12         /* of min(w, h), free on each side */
#define PREVIEW_AMBIENT 0.2         /* linear-light intensity facing away */
#define PREVIEW_BAR_FRACTION 0.3    /* scale bar at most this share of the width */
#define PREVIEW_LETTER_MIN 0.4      /* oblique edges: components that earn a letter */

enum preview_view {
	PREVIEW_ANTERIOR,
	PREVIEW_POSTERIOR,
	PREVIEW_LEFT,
	PREVIEW_RIGHT,
	PREVIEW_SUPERIOR,
	PREVIEW_INFERIOR,
	PREVIEW_OBLIQUE,
	PREVIEW_NVIEWS
};

/* One structure to draw: a mesh in patient LPS mm and its sRGB colour,
 * each channel in [0, 1] (as struct pipeline_structure.rgb). The mesh is
 * only read. */
struct preview_mesh {
	const struct mesh *mesh;
	float rgb[3];
};

/* What a render chose, for the caller's captions and for tests. */
struct preview_info {
	double mm_per_pixel;   /* 0 for an empty scene */
	int scale_bar_mm;      /* 0 when no bar was drawn */
	int scale_bar_px;
	char letters[4][4];    /* left, right, top, bottom edge letters, NUL-terminated */
};

/* Short stable name: "anterior", "posterior", "left", "right", "superior",
 * "inferior", "oblique"; "?" for an unknown value. */
const char *preview_view_name(enum preview_view view);

/* Renders meshes[0..n) as seen from view into rgb_out (w * h * 3 bytes,
 * caller-owned, fully overwritten). w and h in [PREVIEW_MIN_DIM,
 * PREVIEW_MAX_DIM]; n at most PREVIEW_MAX_MESHES; meshes may be NULL when
 * n is 0; a NULL or empty mesh is skipped. A scene without triangles gives
 * a plain background (no letters, no bar). Fails (R3D_EINVAL) on bad
 * arguments, a triangle index out of range or a non-finite vertex, and
 * (R3D_ENOMEM) when scratch memory (a z-buffer and one float quad per
 * vertex of the largest mesh) cannot be had; rgb_out is then unspecified.
 * info may be NULL. */
bool preview_render(struct r3d_err *err, const struct preview_mesh *meshes, size_t n,
		    enum preview_view view, int w, int h, uint8_t *rgb_out,
		    struct preview_info *info);

#ifdef __cplusplus
}
#endif

#endif
