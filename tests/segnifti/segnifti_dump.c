/*
 * segnifti_dump.c: segnifti_read() as a command, for the Python checks.
 *
 *   segnifti_dump NIFTI [TABLE|-] [RAW]
 *
 * Prints the segobj as one JSON object on stdout: geometry, each frame's
 * position and its pixel count per label, each segment's number, label,
 * colour and codes. With RAW, also writes every frame's pixels (through the
 * frame pointers, frame after frame) to that file. A refusal prints
 * {"ok": false, "code": ..., "msg": ...} and exits 2; a usage or output
 * error exits 1. Tests only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "r3d/segnifti.h"

static json_t *code_json(const struct segobj_code *c)
{
	return json_pack("[sss]", c->value, c->scheme, c->meaning);
}

static json_t *doubles_json(const double *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_real(v[i]));
	return a;
}

static const char *kind_name(enum segobj_kind k)
{
	switch (k) {
	case SEGOBJ_SEG_BINARY: return "SEG_BINARY";
	case SEGOBJ_SEG_FRACTIONAL: return "SEG_FRACTIONAL";
	case SEGOBJ_SEG_LABELMAP: return "SEG_LABELMAP";
	case SEGOBJ_RTSTRUCT: return "RTSTRUCT";
	}
	return "?";
}

int main(int argc, char **argv)
{
	struct r3d_err err = {0};
	struct segobj *s = NULL;
	const char *table = NULL;
	json_t *root, *frames, *segments;
	size_t plane, k, i;
	int rc = 1;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: segnifti_dump NIFTI [TABLE|-] [RAW]\n");
		return 1;
	}
	if (argc >= 3 && strcmp(argv[2], "-") != 0)
		table = argv[2];
	if (!segnifti_read(&err, argv[1], table, &s)) {
		root = json_pack("{sbssss}", "ok", 0, "code", r3d_code_name(err.code), "msg",
				 err.msg);
		json_dumpf(root, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(root);
		return 2;
	}
	plane = (size_t)s->rows * s->columns;
	frames = json_array();
	for (k = 0; k < s->nframes; k++) {
		const struct segobj_frame *f = &s->frames[k];
		size_t counts[256] = {0};
		json_t *c = json_object();
		char key[8];

		for (i = 0; i < plane; i++)
			counts[f->pixels[i]]++;
		for (i = 1; i < 256; i++) {
			if (counts[i] == 0)
				continue;
			snprintf(key, sizeof key, "%zu", i);
			json_object_set_new(c, key, json_integer((json_int_t)counts[i]));
		}
		json_array_append_new(frames, json_pack("{so sb si sb so}",
			"position", doubles_json(f->position, 3), "has_position", f->has_position,
			"segment", (int)f->segment, "has_reference",
			f->referenced_sop_instance_uid[0] != '\0', "counts", c));
	}
	segments = json_array();
	for (i = 0; i < s->nsegments; i++) {
		const struct segobj_segment *g = &s->segments[i];
		double rgb[3] = {g->rgb[0], g->rgb[1], g->rgb[2]};

		json_array_append_new(segments, json_pack(
			"{si ss sb so s[iii] so so so so so si}",
			"number", (int)g->number, "label", g->label, "has_color", g->has_color,
			"rgb", doubles_json(rgb, 3),
			"cielab", (int)g->cielab[0], (int)g->cielab[1], (int)g->cielab[2],
			"category", code_json(&g->category), "type", code_json(&g->type),
			"type_modifier", code_json(&g->type_modifier),
			"region", code_json(&g->region),
			"region_modifier", code_json(&g->region_modifier),
			"nframes", (int)g->nframes));
	}
	root = json_pack("{sb ss ss ss ss si si so so sf si si so so}",
		"ok", 1, "kind", kind_name(s->kind), "sop_class_uid", s->sop_class_uid,
		"frame_of_reference_uid", s->frame_of_reference_uid,
		"referenced_series_uid", s->referenced_series_uid,
		"rows", (int)s->rows, "columns", (int)s->columns,
		"orientation", doubles_json(s->orientation, 6),
		"pixel_spacing", doubles_json(s->pixel_spacing, 2),
		"slice_thickness", s->slice_thickness,
		"nframes", (int)s->nframes, "ncontours", (int)s->ncontours,
		"frames", frames, "segments", segments);
	if (json_dumpf(root, stdout, JSON_COMPACT | JSON_REAL_PRECISION(17)) != 0)
		goto out;
	putchar('\n');
	if (argc == 4) {
		FILE *f = fopen(argv[3], "wb");

		if (f == NULL)
			goto out;
		for (k = 0; k < s->nframes; k++)
			if (fwrite(s->frames[k].pixels, 1, plane, f) != plane)
				break;
		if (fclose(f) != 0 || k != s->nframes)
			goto out;
	}
	rc = 0;
out:
	json_decref(root);
	segnifti_free(s);
	return rc;
}
