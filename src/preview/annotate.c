/*
 * annotate.c: burns the orientation letters and the scale bar into a
 * rendered preview, with our own 5x7 bitmap glyphs (the letters A P R L S I,
 * the digits, 'm' and space). Layout in include/r3d/preview.h. Any thread.
 */
#include <string.h>

#include "preview_int.h"

#define GLYPH_W 5
#define GLYPH_H 7

struct glyph {
	char c;
	uint8_t rows[GLYPH_H]; /* bit 4 is the leftmost column */
};

static const struct glyph font[] = {
	{ 'A', { 0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11 } },
	{ 'P', { 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10 } },
	{ 'R', { 0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11 } },
	{ 'L', { 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F } },
	{ 'S', { 0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E } },
	{ 'I', { 0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E } },
	{ 'm', { 0x00, 0x00, 0x1A, 0x15, 0x15, 0x15, 0x15 } },
	{ '0', { 0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E } },
	{ '1', { 0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E } },
	{ '2', { 0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F } },
	{ '3', { 0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E } },
	{ '4', { 0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02 } },
	{ '5', { 0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E } },
	{ '6', { 0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E } },
	{ '7', { 0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08 } },
	{ '8', { 0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E } },
	{ '9', { 0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C } },
};

struct canvas {
	uint8_t *rgb;
	int w, h;
	int scale; /* glyph pixel size */
};

static const uint8_t *glyph_rows(char c)
{
	for (size_t i = 0; i < sizeof font / sizeof font[0]; i++)
		if (font[i].c == c)
			return font[i].rows;
	return NULL; /* space and anything unknown: blank */
}

static void fill_rect(const struct canvas *cv, int x0, int y0, int rw, int rh)
{
	for (int y = y0; y < y0 + rh; y++) {
		if (y < 0 || y >= cv->h)
			continue;
		for (int x = x0; x < x0 + rw; x++) {
			if (x < 0 || x >= cv->w)
				continue;
			uint8_t *p = cv->rgb + 3 * ((size_t)y * (size_t)cv->w + (size_t)x);
			p[0] = p[1] = p[2] = 255;
		}
	}
}

/* Advance of one character, and the width of a string, in pixels. */
static int char_advance(const struct canvas *cv)
{
	return (GLYPH_W + 1) * cv->scale;
}

static int text_width(const struct canvas *cv, const char *s)
{
	int n = (int)strlen(s);
	return n > 0 ? n * char_advance(cv) - cv->scale : 0;
}

static void draw_text(const struct canvas *cv, int x0, int y0, const char *s)
{
	for (; *s; s++, x0 += char_advance(cv)) {
		const uint8_t *rows = glyph_rows(*s);
		if (!rows)
			continue;
		for (int r = 0; r < GLYPH_H; r++)
			for (int c = 0; c < GLYPH_W; c++)
				if (rows[r] & (0x10 >> c))
					fill_rect(cv, x0 + c * cv->scale, y0 + r * cv->scale,
						  cv->scale, cv->scale);
	}
}

static void draw_scale_bar(const struct canvas *cv, double mm_per_pixel,
			   struct preview_info *info)
{
	static const int lengths_mm[] = { 1, 2, 5, 10, 20, 50, 100, 200, 500 };
	int mm = lengths_mm[0];

	for (size_t i = 0; i < sizeof lengths_mm / sizeof lengths_mm[0]; i++)
		if (lengths_mm[i] / mm_per_pixel <= PREVIEW_BAR_FRACTION * cv->w)
			mm = lengths_mm[i];
	int px = (int)(mm / mm_per_pixel + 0.5);
	if (px < 1)
		px = 1;
	int pad = 2 * cv->scale;
	int thick = cv->scale;
	int tick = 2 * cv->scale;
	int x1 = cv->w - pad;          /* bar's right end, exclusive */
	int x0 = x1 - px;
	int ybar = cv->h - pad - thick; /* top row of the bar */

	fill_rect(cv, x0, ybar, px, thick);
	fill_rect(cv, x0, ybar - tick, thick, tick);      /* end ticks */
	fill_rect(cv, x1 - thick, ybar - tick, thick, tick);

	char label[16];
	int len = 0;
	char digits[8];
	int nd = 0;
	for (int v = mm; v > 0 && nd < (int)sizeof digits; v /= 10)
		digits[nd++] = (char)('0' + v % 10);
	while (nd > 0)
		label[len++] = digits[--nd];
	memcpy(label + len, " mm", 4);
	int tw = text_width(cv, label);
	draw_text(cv, x1 - tw, ybar - tick - pad - GLYPH_H * cv->scale, label);

	info->scale_bar_mm = mm;
	info->scale_bar_px = px;
}

void preview_annotate(uint8_t *rgb, int w, int h, const struct preview_camera *cam,
		      double mm_per_pixel, struct preview_info *info)
{
	struct canvas cv = { rgb, w, h, (w < h ? w : h) / 160 };
	if (cv.scale < 1)
		cv.scale = 1;

	double left[3] = { -cam->right[0], -cam->right[1], -cam->right[2] };
	double down[3] = { -cam->up[0], -cam->up[1], -cam->up[2] };
	preview_direction_letters(left, info->letters[0]);
	preview_direction_letters(cam->right, info->letters[1]);
	preview_direction_letters(cam->up, info->letters[2]);
	preview_direction_letters(down, info->letters[3]);

	int pad = 2 * cv.scale;
	int gh = GLYPH_H * cv.scale;
	draw_text(&cv, pad, (h - gh) / 2, info->letters[0]);
	draw_text(&cv, w - pad - text_width(&cv, info->letters[1]), (h - gh) / 2,
		  info->letters[1]);
	draw_text(&cv, (w - text_width(&cv, info->letters[2])) / 2, pad, info->letters[2]);
	draw_text(&cv, (w - text_width(&cv, info->letters[3])) / 2, h - pad - gh,
		  info->letters[3]);

	info->scale_bar_mm = 0;
	info->scale_bar_px = 0;
	if (mm_per_pixel > 0)
		draw_scale_bar(&cv, mm_per_pixel, info);
}
