/*
 * test_structure.c: unit.structure, the structure catalogue. The built-in
 * entries take their thresholds from the segmentation defaults and give them
 * back unchanged; config values and --structure specs are parsed and refused
 * with the reason; a new threshold entry needs nothing but its range; the
 * grey-level range is the half-integer crossing. Main thread.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "r3d/structure.h"
#include "r3d/test.h"

static void test_defaults(void)
{
	struct structure_catalog c;
	struct segment_params def, p;
	unsigned bits = 0;
	double lo, hi;

	structure_catalog_default(&c);
	CHECK(c.n == 4);
	CHECK(strcmp(c.def[0].key, "skin") == 0 && c.def[0].body_surface);
	for (size_t i = 0; i < c.n; i++) {
		struct r3d_err err;
		CHECK(structure_def_check(&err, &c.def[i]));
		CHECK(c.def[i].enabled && c.def[i].source == STRUCTURE_PRESET);
		CHECK(i == 0 || !c.def[i].body_surface);
	}
	/* The presets' ranges are the segmentation defaults, round trip. */
	segment_params_default(&def);
	segment_params_default(&p);
	p.skin.body_hu = p.bone.low_hu = p.lungs.air_hu = p.vessels.low_hu = 0;
	structure_catalog_segment_params(&c, &p, &bits);
	CHECK(bits == (1u << SEGMENT_PRESET_COUNT) - 1);
	CHECK(p.skin.body_hu == def.skin.body_hu && p.bone.low_hu == def.bone.low_hu);
	CHECK(p.bone.contrast_low_hu == def.bone.contrast_low_hu);
	CHECK(p.lungs.air_hu == def.lungs.air_hu);
	CHECK(p.vessels.low_hu == def.vessels.low_hu && p.vessels.high_hu == def.vessels.high_hu);
	/* bone: HU >= 100 is the crossing at 99.5; on a contrast series 149.5. */
	const struct structure_def *bone = structure_catalog_get(&c, "bone");
	CHECK(bone != NULL && bone->min_hu == 100 && !bone->has_max);
	CHECK(structure_def_range(bone, false, &lo, &hi) && lo == 99.5 && isinf(hi) && hi > 0);
	CHECK(structure_def_range(bone, true, &lo, &hi) && lo == 149.5);
	const struct structure_def *lungs = structure_catalog_get(&c, "lungs");
	CHECK(structure_def_range(lungs, false, &lo, &hi) && isinf(lo) && lo < 0 && hi == -399.5);
	/* Switching a preset off drops its bit, not its thresholds. */
	structure_catalog_find(&c, "vessels")->enabled = false;
	structure_catalog_segment_params(&c, &p, &bits);
	CHECK(bits == ((1u << SEGMENT_PRESET_COUNT) - 1) - (1u << SEGMENT_VESSELS));
	CHECK(structure_catalog_get(&c, "liver") == NULL);
}

static void test_set(void)
{
	struct structure_catalog c;
	struct structure_def d;
	struct r3d_err err;

	structure_catalog_default(&c);
	structure_def_threshold(&d, "dense_bone");
	CHECK(!structure_def_check(&err, &d) && strstr(err.msg, "min_hu") != NULL);
	CHECK(structure_def_set(&err, &d, "min_hu", "700"));
	CHECK(structure_def_check(&err, &d));
	CHECK(structure_def_set(&err, &d, "label", "dense bone"));
	CHECK(structure_def_set(&err, &d, "color", "#f0e6c8"));
	CHECK(fabsf(d.rgb[0] - 240.0f / 255.0f) < 1e-6f && fabsf(d.rgb[2] - 200.0f / 255.0f) < 1e-6f);
	CHECK(structure_def_set(&err, &d, "color", "10, 20,30"));
	CHECK(fabsf(d.rgb[1] - 20.0f / 255.0f) < 1e-6f);
	CHECK(structure_def_set(&err, &d, "type", "3138006^SCT^Bone"));
	CHECK(strcmp(d.type.value, "3138006") == 0 && strcmp(d.type.meaning, "Bone") == 0);
	CHECK(structure_def_set(&err, &d, "laterality", "7771000^SCT^Left"));
	CHECK(structure_def_set(&err, &d, "laterality", ""));
	CHECK(d.type_modifier.value[0] == '\0');
	CHECK(structure_def_set(&err, &d, "max_triangles", "50000") && d.max_triangles == 50000);
	CHECK(structure_catalog_add(&err, &c, &d) && c.n == 5);
	CHECK(!structure_catalog_add(&err, &c, &d) && strstr(err.msg, "twice") != NULL);

	/* Refusals, each with its reason. */
	struct {
		const char *name, *value, *reason;
	} bad[] = {
		{"min_hu", "seven", "integer HU"},
		{"min_hu", "5000", "range"},
		{"max_hu", "-2000", "range"},
		{"color", "#f0e6c", "color"},
		{"color", "300,0,0", "color"},
		{"color", "red", "color"},
		{"type", "3138006^SCT", "VALUE^SCHEME^MEANING"},
		{"type", "^SCT^Bone", "VALUE^SCHEME^MEANING"},
		{"category", "", "VALUE^SCHEME^MEANING"},
		{"region", "12345678901234567^SCT^x", "VALUE^SCHEME^MEANING"},
		{"max_triangles", "0", "max_triangles"},
		{"enabled", "maybe", "enabled"},
		{"label", "", "label"},
		{"label", "a\\b", "label"},
		{"contrast_min_hu", "150", "bone preset only"},
		{"opacity", "1", "unknown key"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct structure_def t = d;
		bool refused = !structure_def_set(&err, &t, bad[i].name, bad[i].value);
		CHECK(refused);
		if (refused && strstr(err.msg, bad[i].reason) == NULL)
			fprintf(stderr, "%s = %s: '%s' lacks '%s'\n", bad[i].name, bad[i].value, err.msg,
				bad[i].reason);
		CHECK(!refused || strstr(err.msg, bad[i].reason) != NULL);
	}
	/* min above max is a check of the whole entry. */
	CHECK(structure_def_set(&err, &d, "max_hu", "600"));
	CHECK(!structure_def_check(&err, &d) && strstr(err.msg, "above") != NULL);
	/* A preset has only the ends its segmentation uses. */
	struct structure_def *skin = structure_catalog_find(&c, "skin");
	CHECK(!structure_def_set(&err, skin, "max_hu", "100") && strstr(err.msg, "no max_hu") != NULL);
	CHECK(structure_def_set(&err, skin, "min_hu", "-300") && skin->min_hu == -300);
	CHECK(structure_def_set(&err, skin, "enabled", "false") && !skin->enabled);
	/* Key names. */
	CHECK(structure_key_valid("kidney_left") && !structure_key_valid("Kidney"));
	CHECK(!structure_key_valid("1bone") && !structure_key_valid("") &&
	      !structure_key_valid("a-b") && !structure_key_valid("abcdefghijklmnopqrstuvwxyz012345"));
}

static void test_cli(void)
{
	struct structure_catalog c;
	const struct structure_def *d = NULL;
	struct r3d_err err;

	structure_catalog_default(&c);
	CHECK(structure_catalog_parse_cli(&err, &c, "metal:2500:", &d));
	CHECK(d != NULL && d->source == STRUCTURE_THRESHOLD && d->has_min && !d->has_max &&
	      d->min_hu == 2500 && c.n == 5);
	CHECK(structure_catalog_parse_cli(&err, &c, "soft:-100:100", &d) && d->max_hu == 100);
	CHECK(structure_catalog_parse_cli(&err, &c, "soft::50", &d) && !d->has_min && d->max_hu == 50);
	CHECK(c.n == 6);
	/* An existing preset's range moves; its missing end stays missing. */
	CHECK(structure_catalog_parse_cli(&err, &c, "bone:200:", &d) && d->min_hu == 200);
	CHECK(!structure_catalog_parse_cli(&err, &c, "bone:200:900", &d));
	CHECK(!structure_catalog_parse_cli(&err, &c, "x:5:1", &d) && strstr(err.msg, "above"));
	CHECK(!structure_catalog_parse_cli(&err, &c, "x::", &d));
	CHECK(!structure_catalog_parse_cli(&err, &c, "x:1", &d));
	CHECK(!structure_catalog_parse_cli(&err, &c, "Bad:1:", &d));
	CHECK(c.n == 6);
	CHECK(structure_catalog_enable_only(&err, &c, "bone,metal"));
	for (size_t i = 0; i < c.n; i++)
		CHECK(c.def[i].enabled == (strcmp(c.def[i].key, "bone") == 0 ||
					   strcmp(c.def[i].key, "metal") == 0));
	CHECK(!structure_catalog_enable_only(&err, &c, "bone,liver") && strstr(err.msg, "liver"));
}

/* The sample config's sections read back into the same catalogue. */
static void test_config_text(void)
{
	struct structure_catalog c, back;
	char buf[16384], *line, *save = NULL, key[64] = "";
	FILE *f = fmemopen(buf, sizeof(buf), "w");
	struct r3d_err err;

	structure_catalog_default(&c);
	CHECK(f != NULL);
	if (f == NULL)
		return;
	structure_catalog_write_config(f, &c);
	fclose(f);
	structure_catalog_default(&back);
	for (size_t i = 0; i < back.n; i++)
		memset(&back.def[i].rgb, 0, sizeof(back.def[i].rgb));
	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char *eq;
		if (line[0] == '#')
			continue;
		if (sscanf(line, "[structure %63[^]]]", key) == 1)
			continue;
		eq = strstr(line, " =");
		CHECK(eq != NULL);
		if (eq == NULL)
			continue;
		*eq = '\0';
		const char *value = eq[2] == ' ' ? eq + 3 : eq + 2;
		CHECK(structure_def_set(&err, structure_catalog_find(&back, key), line, value));
	}
	for (size_t i = 0; i < c.n; i++) {
		for (int k = 0; k < 3; k++)
			CHECK(fabsf(back.def[i].rgb[k] - c.def[i].rgb[k]) <= 0.5f / 255.0f + 1e-6f);
		memcpy(back.def[i].rgb, c.def[i].rgb, sizeof(c.def[i].rgb));
		CHECK(memcmp(&back.def[i], &c.def[i], sizeof(c.def[i])) == 0);
	}
}

int main(void)
{
	test_defaults();
	test_set();
	test_cli();
	test_config_text();
	return test_summary();
}
