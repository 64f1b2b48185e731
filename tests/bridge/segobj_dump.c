/*
 * segobj_dump.c: reads one Segmentation or RT Structure Set with
 * bridge_segobj_read() and prints the struct segobj as one JSON object on
 * stdout, for test_segobj_read.py to compare with its own reading of the
 * file. Every field is printed; pixels are summarised per frame (count of
 * non-zero pixels, sum, and sum of value * (index + 1) so that a pixel in
 * the wrong place shows), contours by their point count, first and last
 * point and the sum of their coordinates.
 *
 * Exit status 0 with the JSON, or 1 with "segobj_dump: <code>: <reason>" on
 * stderr when the reader refuses the file. "segobj_dump --cielab R G B"
 * prints bridge_rgb_to_cielab() of an sRGB colour instead, so that the test
 * can check that reading gives back the colour the writers wrote.
 * Single-threaded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/bridge.h"
#include "r3d/segobj.h"

static void put_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void put_key_str(const char *key, const char *value, int comma)
{
	printf("\"%s\": ", key);
	put_str(value);
	if (comma)
		printf(", ");
}

static void put_code(const char *key, const struct segobj_code *c)
{
	printf("\"%s\": {", key);
	put_key_str("value", c->value, 1);
	put_key_str("scheme", c->scheme, 1);
	put_key_str("meaning", c->meaning, 0);
	printf("}, ");
}

static const char *kind_name(enum segobj_kind k)
{
	switch (k) {
	case SEGOBJ_SEG_BINARY:
		return "BINARY";
	case SEGOBJ_SEG_FRACTIONAL:
		return "FRACTIONAL";
	case SEGOBJ_SEG_LABELMAP:
		return "LABELMAP";
	case SEGOBJ_RTSTRUCT:
		return "RTSTRUCT";
	}
	return "?";
}

static const char *contour_type_name(enum segobj_contour_type t)
{
	switch (t) {
	case SEGOBJ_CLOSED_PLANAR:
		return "CLOSED_PLANAR";
	case SEGOBJ_OPEN_PLANAR:
		return "OPEN_PLANAR";
	case SEGOBJ_OPEN_NONPLANAR:
		return "OPEN_NONPLANAR";
	case SEGOBJ_POINT:
		return "POINT";
	case SEGOBJ_OTHER:
		return "OTHER";
	}
	return "?";
}

static void put_segment(const struct segobj_segment *g)
{
	printf("{\"number\": %u, ", g->number);
	put_key_str("label", g->label, 1);
	printf("\"has_color\": %s, \"rgb\": [%.6f, %.6f, %.6f], \"cielab\": [%u, %u, %u], ",
	       g->has_color ? "true" : "false", g->rgb[0], g->rgb[1], g->rgb[2], g->cielab[0],
	       g->cielab[1], g->cielab[2]);
	put_code("category", &g->category);
	put_code("type", &g->type);
	put_code("type_modifier", &g->type_modifier);
	put_code("region", &g->region);
	put_code("region_modifier", &g->region_modifier);
	put_key_str("algorithm_type", g->algorithm_type, 1);
	put_key_str("algorithm_name", g->algorithm_name, 1);
	put_key_str("rt_interpreted_type", g->rt_interpreted_type, 1);
	printf("\"contour_types\": %u, \"nframes\": %zu, \"ncontours\": %zu}", g->contour_types,
	       g->nframes, g->ncontours);
}

static void put_frame(const struct segobj *s, const struct segobj_frame *f)
{
	size_t n = (size_t)s->rows * s->columns;
	uint64_t nonzero = 0, sum = 0, wsum = 0;

	for (size_t i = 0; i < n; i++) {
		nonzero += f->pixels[i] != 0;
		sum += f->pixels[i];
		wsum += (uint64_t)f->pixels[i] * (i + 1);
	}
	printf("{\"segment\": %u, \"has_position\": %s, \"position\": [%.6f, %.6f, %.6f], ",
	       f->segment, f->has_position ? "true" : "false", f->position[0], f->position[1],
	       f->position[2]);
	printf("\"nonzero\": %llu, \"sum\": %llu, \"wsum\": %llu, ", (unsigned long long)nonzero,
	       (unsigned long long)sum, (unsigned long long)wsum);
	put_key_str("referenced_sop_instance_uid", f->referenced_sop_instance_uid, 0);
	printf("}");
}

static void put_contour(const struct segobj_contour *c)
{
	double sum = 0;
	const double *last = c->xyz + 3 * (c->npoints - 1);

	for (size_t i = 0; i < 3 * c->npoints; i++)
		sum += c->xyz[i];
	printf("{\"roi\": %u, \"type\": \"%s\", \"npoints\": %zu, ", c->roi,
	       contour_type_name(c->type), c->npoints);
	printf("\"first\": [%.6f, %.6f, %.6f], \"last\": [%.6f, %.6f, %.6f], \"sum\": %.6f, ",
	       c->xyz[0], c->xyz[1], c->xyz[2], last[0], last[1], last[2], sum);
	put_key_str("referenced_sop_instance_uid", c->referenced_sop_instance_uid, 0);
	printf("}");
}

static void dump(const struct segobj *s)
{
	printf("{\"kind\": \"%s\", ", kind_name(s->kind));
	put_key_str("sop_class_uid", s->sop_class_uid, 1);
	put_key_str("sop_instance_uid", s->sop_instance_uid, 1);
	put_key_str("series_uid", s->series_uid, 1);
	put_key_str("study_uid", s->study_uid, 1);
	put_key_str("frame_of_reference_uid", s->frame_of_reference_uid, 1);
	put_key_str("referenced_series_uid", s->referenced_series_uid, 1);
	printf("\"referenced_instances\": [");
	for (size_t i = 0; i < s->nreferenced_instances; i++) {
		put_str(s->referenced_instances[i]);
		if (i + 1 < s->nreferenced_instances)
			printf(", ");
	}
	printf("], ");
	put_key_str("source_modality", s->source_modality, 1);
	put_key_str("manufacturer", s->manufacturer, 1);
	put_key_str("software", s->software, 1);
	printf("\"rows\": %u, \"columns\": %u, ", s->rows, s->columns);
	printf("\"orientation\": [%.9f, %.9f, %.9f, %.9f, %.9f, %.9f], ", s->orientation[0],
	       s->orientation[1], s->orientation[2], s->orientation[3], s->orientation[4],
	       s->orientation[5]);
	printf("\"pixel_spacing\": [%.9f, %.9f], \"slice_thickness\": %.9f, \"max_fractional\": %u, ",
	       s->pixel_spacing[0], s->pixel_spacing[1], s->slice_thickness, s->max_fractional);
	printf("\"segments\": [");
	for (size_t i = 0; i < s->nsegments; i++) {
		put_segment(&s->segments[i]);
		if (i + 1 < s->nsegments)
			printf(", ");
	}
	printf("], \"frames\": [");
	for (size_t i = 0; i < s->nframes; i++) {
		put_frame(s, &s->frames[i]);
		if (i + 1 < s->nframes)
			printf(", ");
	}
	printf("], \"contours\": [");
	for (size_t i = 0; i < s->ncontours; i++) {
		put_contour(&s->contours[i]);
		if (i + 1 < s->ncontours)
			printf(", ");
	}
	printf("]}\n");
}

int main(int argc, char **argv)
{
	struct r3d_err err;
	struct segobj *s = NULL;

	if (argc == 5 && strcmp(argv[1], "--cielab") == 0) {
		float rgb[3];
		uint16_t lab[3];
		for (int k = 0; k < 3; k++) {
			char *end = NULL;
			rgb[k] = strtof(argv[2 + k], &end);
			if (end == argv[2 + k] || *end != '\0') {
				fprintf(stderr, "segobj_dump: '%s' is not a number\n", argv[2 + k]);
				return 2;
			}
		}
		bridge_rgb_to_cielab(rgb, lab);
		printf("%u %u %u\n", lab[0], lab[1], lab[2]);
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: segobj_dump FILE | segobj_dump --cielab R G B\n");
		return 2;
	}
	r3d_err_clear(&err);
	if (!bridge_init(&err)) {
		fprintf(stderr, "segobj_dump: %s: %s\n", r3d_code_name(err.code), err.msg);
		return 1;
	}
	if (!bridge_segobj_read(&err, argv[1], &s)) {
		fprintf(stderr, "segobj_dump: %s: %s\n", r3d_code_name(err.code), err.msg);
		bridge_cleanup();
		return 1;
	}
	dump(s);
	bridge_segobj_free(s);
	bridge_cleanup();
	return 0;
}
