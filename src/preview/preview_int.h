/*
 * preview_int.h: what the files of the preview stage share (not public):
 * the camera of a view and the annotation pass. Any thread.
 */
#ifndef R3D_PREVIEW_INT_H
#define R3D_PREVIEW_INT_H

#include <stdint.h>

#include "r3d/preview.h"

/* An orthonormal camera in patient LPS: image right, image up, and the
 * direction towards the viewer (right x up = toward). */
struct preview_camera {
	double right[3];
	double up[3];
	double toward[3];
};

/* False for an unknown view. */
bool preview_camera_of(enum preview_view view, struct preview_camera *cam);

/* Patient direction letters of a unit vector in LPS: components with a
 * magnitude of at least PREVIEW_LETTER_MIN (the largest always), strongest
 * first; out gets at most 3 letters and a NUL. */
void preview_direction_letters(const double dir[3], char out[4]);

/* Burns the edge letters and, when mm_per_pixel > 0, the scale bar into
 * rgb (w x h, RGB8). Fills info's letters and bar fields. */
void preview_annotate(uint8_t *rgb, int w, int h, const struct preview_camera *cam,
		      double mm_per_pixel, struct preview_info *info);

#endif
