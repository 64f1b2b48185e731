/*
 * views.c: the camera of each standard preview view in patient LPS
 * (+x left, +y posterior, +z superior), the views' names, and the patient
 * direction letters of an image edge. The conventions are tabled in
 * include/r3d/preview.h. Pure functions; any thread.
 */
#include <math.h>
#include <string.h>

#include "preview_int.h"

#define DEG (3.14159265358979323846 / 180.0)

static void cross3(const double a[3], const double b[3], double out[3])
{
	out[0] = a[1] * b[2] - a[2] * b[1];
	out[1] = a[2] * b[0] - a[0] * b[2];
	out[2] = a[0] * b[1] - a[1] * b[0];
}

static void set3(double v[3], double x, double y, double z)
{
	v[0] = x;
	v[1] = y;
	v[2] = z;
}

const char *preview_view_name(enum preview_view view)
{
	switch (view) {
	case PREVIEW_ANTERIOR: return "anterior";
	case PREVIEW_POSTERIOR: return "posterior";
	case PREVIEW_LEFT: return "left";
	case PREVIEW_RIGHT: return "right";
	case PREVIEW_SUPERIOR: return "superior";
	case PREVIEW_INFERIOR: return "inferior";
	case PREVIEW_OBLIQUE: return "oblique";
	case PREVIEW_NVIEWS: break;
	}
	return "?";
}

bool preview_camera_of(enum preview_view view, struct preview_camera *cam)
{
	switch (view) {
	case PREVIEW_ANTERIOR: /* from the front: patient right on image left */
		set3(cam->toward, 0, -1, 0);
		set3(cam->up, 0, 0, 1);
		break;
	case PREVIEW_POSTERIOR:
		set3(cam->toward, 0, 1, 0);
		set3(cam->up, 0, 0, 1);
		break;
	case PREVIEW_LEFT: /* viewer on the patient's left (+x) */
		set3(cam->toward, 1, 0, 0);
		set3(cam->up, 0, 0, 1);
		break;
	case PREVIEW_RIGHT:
		set3(cam->toward, -1, 0, 0);
		set3(cam->up, 0, 0, 1);
		break;
	case PREVIEW_SUPERIOR: /* from above the head, anterior up */
		set3(cam->toward, 0, 0, 1);
		set3(cam->up, 0, -1, 0);
		break;
	case PREVIEW_INFERIOR: /* from below the feet, anterior up (as axial CT) */
		set3(cam->toward, 0, 0, -1);
		set3(cam->up, 0, -1, 0);
		break;
	case PREVIEW_OBLIQUE: { /* anterior-left-superior, 45 degrees round, 30 up */
		double c = cos(30 * DEG), s = sin(30 * DEG), a = sin(45 * DEG);
		set3(cam->toward, a * c, -a * c, s);
		/* superior minus its component along toward, normalised */
		double up[3] = { -s * cam->toward[0], -s * cam->toward[1], 1 - s * cam->toward[2] };
		double len = sqrt(up[0] * up[0] + up[1] * up[1] + up[2] * up[2]);
		set3(cam->up, up[0] / len, up[1] / len, up[2] / len);
		break;
	}
	default:
		return false;
	}
	/* right = up x toward, so that right x up = toward (a right-handed camera) */
	cross3(cam->up, cam->toward, cam->right);
	return true;
}

void preview_direction_letters(const double dir[3], char out[4])
{
	static const char pos[3] = { 'L', 'P', 'S' };
	static const char neg[3] = { 'R', 'A', 'I' };
	int order[3] = { 0, 1, 2 };

	/* strongest first; ties keep the axis order x, y, z (stable) */
	for (int i = 1; i < 3; i++)
		for (int j = i; j > 0 && fabs(dir[order[j]]) > fabs(dir[order[j - 1]]) + 1e-9; j--) {
			int t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	int n = 0;
	for (int i = 0; i < 3; i++) {
		double c = dir[order[i]];
		if (i > 0 && fabs(c) < PREVIEW_LETTER_MIN)
			break;
		out[n++] = c >= 0 ? pos[order[i]] : neg[order[i]];
	}
	out[n] = '\0';
}
