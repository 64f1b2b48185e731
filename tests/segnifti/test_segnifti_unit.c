/*
 * test_segnifti_unit.c: unit.segnifti, TotalSegmentator's class tables
 * (totalseg.c) and segnifti_read()'s argument checks. Needs no data.
 *
 * The expected codes are TotalSegmentator's
 * resources/totalsegmentator_snomed_mapping.csv rows (commit 0e65a448),
 * written out here by hand; the laterality rule is checked against every
 * class by re-deriving it from the name.
 */
#include <stdio.h>
#include <string.h>

#include "r3d/segnifti.h"
#include "r3d/test.h"

static bool code_is(const struct totalseg_code *c, const char *value, const char *scheme,
		    const char *meaning)
{
	return strcmp(c->value, value) == 0 && strcmp(c->scheme, scheme) == 0 &&
	       strcmp(c->meaning, meaning) == 0;
}

static bool code_empty(const struct totalseg_code *c)
{
	return code_is(c, "", "", "");
}

/* The side the name says: _left / _right as a whole word, or 0. */
static int name_side(const char *name)
{
	static const char *const words[2] = {"_left", "_right"};
	int w;

	for (w = 0; w < 2; w++) {
		const char *p = name;
		size_t n = strlen(words[w]);

		while ((p = strstr(p, words[w])) != NULL) {
			if (p[n] == '\0' || p[n] == '_')
				return w == 0 ? 'L' : 'R';
			p += n;
		}
	}
	return 0;
}

static void test_find(void)
{
	const struct totalseg_class *c;

	c = totalseg_find("kidney_left");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(strcmp(c->name, "kidney_left") == 0);
		CHECK(code_is(&c->category, "123037004", "SCT", "Anatomical Structure"));
		CHECK(code_is(&c->type, "64033007", "SCT", "Kidney"));
		CHECK(code_is(&c->laterality, "7771000", "SCT", "Left"));
		CHECK(c->laterality_source == TOTALSEG_LAT_TYPE_MODIFIER);
		CHECK(code_is(&c->type_modifier, "7771000", "SCT", "Left"));
		CHECK(c->has_color && c->rgb[0] == 46 && c->rgb[1] == 138 && c->rgb[2] == 184);
	}
	c = totalseg_find("kidney_right");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(code_is(&c->type, "64033007", "SCT", "Kidney"));
		CHECK(code_is(&c->laterality, "24028007", "SCT", "Right"));
		CHECK(c->has_color && c->rgb[0] == 34 && c->rgb[1] == 102 && c->rgb[2] == 136);
	}
	c = totalseg_find("liver");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(code_is(&c->category, "123037004", "SCT", "Anatomical Structure"));
		CHECK(code_is(&c->type, "10200004", "SCT", "Liver"));
		CHECK(code_empty(&c->laterality) && c->laterality_source == TOTALSEG_LAT_NONE);
		CHECK(code_empty(&c->type_modifier) && code_empty(&c->region));
		CHECK(c->has_color && c->rgb[0] == 40 && c->rgb[1] == 140 && c->rgb[2] == 40);
	}
	/* Laterality on the region (the cyst is the type), and from the name. */
	c = totalseg_find("kidney_cyst_left");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(code_is(&c->type, "367643001", "SCT", "Cyst"));
		CHECK(code_is(&c->region, "64033007", "SCT", "Kidney"));
		CHECK(code_is(&c->laterality, "7771000", "SCT", "Left"));
		CHECK(c->laterality_source == TOTALSEG_LAT_REGION_MODIFIER);
		CHECK(code_empty(&c->type_modifier));
	}
	c = totalseg_find("lung_middle_lobe_right");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(code_is(&c->type, "72481006", "SCT", "Middle lobe of right lung"));
		CHECK(code_is(&c->laterality, "24028007", "SCT", "Right"));
		CHECK(c->laterality_source == TOTALSEG_LAT_NAME);
		CHECK(code_empty(&c->type_modifier));
	}
	/* A type modifier that is no laterality. */
	c = totalseg_find("lung_covid_infiltrate");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(code_is(&c->type_modifier, "840539006", "SCT", "COVID-19"));
		CHECK(code_empty(&c->laterality));
	}
	c = totalseg_find("rib_left_1");
	CHECK(c != NULL && code_is(&c->laterality, "7771000", "SCT", "Left"));

	CHECK(totalseg_find("spleen_and_kidney") == NULL);
	CHECK(totalseg_find("Liver") == NULL);        /* case matters */
	CHECK(totalseg_find("liver ") == NULL);
	CHECK(totalseg_find("") == NULL);
	CHECK(totalseg_find(NULL) == NULL);
}

static void test_tables(void)
{
	const struct totalseg_class *c, *d;
	size_t i, j, n = 0;
	unsigned t;

	for (i = 0; (c = totalseg_class_at(i)) != NULL; i++) {
		int side = name_side(c->name);
		bool lat = c->laterality.value[0] != '\0';

		n++;
		/* Every string fits the segobj field it is copied into. */
		CHECK(strlen(c->name) < SEGOBJ_LABEL_MAX);
		CHECK(strlen(c->type.value) < SEGOBJ_CODE_VALUE_MAX &&
		      strlen(c->type.meaning) < SEGOBJ_CODE_MEANING_MAX);
		CHECK(strcmp(c->category.scheme, "SCT") == 0 && strcmp(c->type.scheme, "SCT") == 0);
		CHECK(c->has_color);
		/* Laterality: present exactly when the name has a side, and that side. */
		if (side != 0 || lat) {
			const char *want = side == 'L' ? "7771000" : "24028007";

			if (!(side != 0 && lat && strcmp(c->laterality.value, want) == 0 &&
			      c->laterality_source != TOTALSEG_LAT_NONE)) {
				fprintf(stderr, "laterality of %s\n", c->name);
				CHECK(false);
			}
		} else {
			CHECK(c->laterality_source == TOTALSEG_LAT_NONE);
		}
		if (c->laterality_source == TOTALSEG_LAT_TYPE_MODIFIER)
			CHECK(strcmp(c->type_modifier.value, c->laterality.value) == 0);
		for (j = 0; j < i; j++) {
			d = totalseg_class_at(j);
			if (strcmp(c->name, d->name) == 0) {
				fprintf(stderr, "%s twice\n", c->name);
				CHECK(false);
			}
		}
		CHECK(totalseg_find(c->name) == c);
	}
	CHECK(n == 170);   /* the CSV's rows */

	CHECK(totalseg_total_name(0) == NULL);
	CHECK(totalseg_total_name(TOTALSEG_TOTAL_CLASSES + 1) == NULL);
	CHECK(strcmp(totalseg_total_name(1), "spleen") == 0);
	CHECK(strcmp(totalseg_total_name(2), "kidney_right") == 0);
	CHECK(strcmp(totalseg_total_name(3), "kidney_left") == 0);
	CHECK(strcmp(totalseg_total_name(5), "liver") == 0);
	CHECK(strcmp(totalseg_total_name(26), "vertebrae_S1") == 0);
	CHECK(strcmp(totalseg_total_name(117), "costal_cartilages") == 0);
	for (t = 1; t <= TOTALSEG_TOTAL_CLASSES; t++) {
		const char *name = totalseg_total_name(t);

		CHECK(name != NULL);
		if (name != NULL && totalseg_find(name) == NULL) {
			fprintf(stderr, "'total' class %u %s has no codes\n", t, name);
			CHECK(false);
		}
	}
}

static void test_read_args(void)
{
	struct r3d_err err = {0};
	struct segobj *s = (struct segobj *)&err;   /* must be reset to NULL */

	CHECK(!segnifti_read(&err, NULL, NULL, &s));
	CHECK(s == NULL && err.code == R3D_EINVAL);
	s = (struct segobj *)&err;
	CHECK(!segnifti_read(&err, "/nonexistent/seg.nii.gz", NULL, &s));
	CHECK(s == NULL && err.code == R3D_EIO && strstr(err.msg, "/nonexistent/seg.nii.gz"));
	printf("ok: missing file: %s\n", err.msg);
	CHECK(!segnifti_read(&err, "/nonexistent/seg.nii.gz", "/nonexistent/table.json", &s));
	CHECK(s == NULL && strstr(err.msg, "label table /nonexistent/table.json") != NULL);
	segnifti_free(NULL);
}

int main(void)
{
	test_find();
	test_tables();
	test_read_args();
	return test_summary();
}
