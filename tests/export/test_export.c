/*
 * test_export.c: unit tests of the export writers' helpers and input checks
 * (r3d/bridge.h, "Result objects"): deterministic UIDs against values
 * computed independently (Python hashlib), CIELab conversion against
 * published values, structure codes, and refusals of bad input. With the
 * shared data folder as argument it also checks that a refused write leaves
 * no file behind.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "r3d/bridge.h"
#include "r3d/pipeline.h"
#include "r3d/structure.h"
#include "r3d/test.h"

static void test_uid_derive(void)
{
	struct r3d_err err;
	char a[BRIDGE_UID_MAX + 1], b[BRIDGE_UID_MAX + 1];

	/* Expected values: Python hashlib.sha256(root + b"\0" + label), first
	 * 16 bytes, byte 6 = (b6 & 0x0f) | 0x80, byte 8 = (b8 & 0x3f) | 0x80,
	 * as one big-endian integer in decimal. */
	CHECK(bridge_uid_derive(&err, "1.2.3", "job 1", a));
	CHECK(strcmp(a, "2.25.121370216323351671011972283055498412957") == 0);
	CHECK(bridge_uid_derive(&err, "1.2.840.113619.2.55.3", "job 42 surfseg instance", a));
	CHECK(strcmp(a, "2.25.121297445727523529052193171197985106092") == 0);
	CHECK(bridge_uid_valid(a));
	CHECK(strlen(a) <= BRIDGE_UID_MAX);

	/* Stable across calls, different for another label or root. */
	CHECK(bridge_uid_derive(&err, "1.2.3.4", "job 7 stl bone", a));
	CHECK(bridge_uid_derive(&err, "1.2.3.4", "job 7 stl bone", b));
	CHECK(strcmp(a, b) == 0);
	CHECK(bridge_uid_derive(&err, "1.2.3.4", "job 7 stl skin", b));
	CHECK(strcmp(a, b) != 0);
	CHECK(bridge_uid_derive(&err, "1.2.3.5", "job 7 stl bone", b));
	CHECK(strcmp(a, b) != 0);
	/* The separator keeps ("1.2", "3x") apart from ("1.23", "x"). */
	CHECK(bridge_uid_derive(&err, "1.2", "3x", a));
	CHECK(bridge_uid_derive(&err, "1.23", "x", b));
	CHECK(strcmp(a, b) != 0);
	CHECK(strncmp(a, "2.25.", 5) == 0 && a[5] != '0');

	/* Refusals. */
	CHECK(!bridge_uid_derive(&err, "1..2", "x", a) && err.code == R3D_EINVAL);
	CHECK(a[0] == '\0');
	CHECK(!bridge_uid_derive(&err, "", "x", a) && err.code == R3D_EINVAL);
	CHECK(!bridge_uid_derive(&err, "1.2", "", a) && err.code == R3D_EINVAL);
	char long_label[BRIDGE_UID_LABEL_MAX + 2];
	memset(long_label, 'x', sizeof(long_label) - 1);
	long_label[sizeof(long_label) - 1] = '\0';
	CHECK(!bridge_uid_derive(&err, "1.2", long_label, a) && err.code == R3D_EINVAL);
	long_label[BRIDGE_UID_LABEL_MAX] = '\0';
	CHECK(bridge_uid_derive(&err, "1.2", long_label, a));
}

static void test_cielab(void)
{
	uint16_t lab[3];
	/* DICOM scaling: L* 0..100 -> 0..65535, a*, b* -128..127 -> 0..65535. */
	const double s_l = 65535.0 / 100.0, s_ab = 65535.0 / 255.0;

	/* White and black: L* 100 and 0, a* = b* = 0, within 0.01 % (DCMTK's
	 * D65 white point and matrix differ from others in the 4th digit). */
	bridge_rgb_to_cielab((const float[3]){1.0f, 1.0f, 1.0f}, lab);
	CHECK_NEAR(lab[0], 65535, 8);
	CHECK_NEAR(lab[1], 128.0 * s_ab, 8);
	CHECK_NEAR(lab[2], 128.0 * s_ab, 8);
	bridge_rgb_to_cielab((const float[3]){0.0f, 0.0f, 0.0f}, lab);
	CHECK(lab[0] == 0);
	CHECK_NEAR(lab[1], 128.0 * s_ab, 8);
	/* Out of range is clamped. */
	uint16_t lab2[3];
	bridge_rgb_to_cielab((const float[3]){2.0f, -1.0f, 0.5f}, lab);
	bridge_rgb_to_cielab((const float[3]){1.0f, 0.0f, 0.5f}, lab2);
	CHECK(memcmp(lab, lab2, sizeof(lab)) == 0);
	/* sRGB red, D65: L* 53.24, a* 80.09, b* 67.20 (published conversions). */
	bridge_rgb_to_cielab((const float[3]){1.0f, 0.0f, 0.0f}, lab);
	CHECK_NEAR(lab[0], 53.24 * s_l, 0.3 * s_l);
	CHECK_NEAR(lab[1], (80.09 + 128.0) * s_ab, 0.5 * s_ab);
	CHECK_NEAR(lab[2], (67.20 + 128.0) * s_ab, 0.5 * s_ab);
	/* sRGB blue: L* 32.30, a* 79.19, b* -107.86. */
	bridge_rgb_to_cielab((const float[3]){0.0f, 0.0f, 1.0f}, lab);
	CHECK_NEAR(lab[0], 32.30 * s_l, 0.3 * s_l);
	CHECK_NEAR(lab[1], (79.19 + 128.0) * s_ab, 0.5 * s_ab);
	CHECK_NEAR(lab[2], (-107.86 + 128.0) * s_ab, 0.5 * s_ab);
}

/* The catalogue's presets carry the codes the exporters write. */
static void test_codes(void)
{
	struct structure_catalog c;
	const struct structure_def *d;
	struct bridge_segment_codes bc;

	structure_catalog_default(&c);
	d = structure_catalog_get(&c, "bone");
	CHECK(d != NULL);
	if (d == NULL)
		return;
	pipeline_structure_codes(d, &bc);
	CHECK(strcmp(bc.category.value, "85756007") == 0 && strcmp(bc.category.scheme, "SCT") == 0);
	CHECK(strcmp(bc.type.value, "3138006") == 0 && strcmp(bc.type.meaning, "Bone") == 0);
	CHECK(bc.type_modifier.value == NULL && bc.region.value == NULL);
	d = structure_catalog_get(&c, "lungs");
	pipeline_structure_codes(d, &bc);
	CHECK(strcmp(bc.category.value, "91723000") == 0 && strcmp(bc.type.value, "39607008") == 0);
	d = structure_catalog_get(&c, "vessels");
	pipeline_structure_codes(d, &bc);
	CHECK(strcmp(bc.category.value, "85756007") == 0 && strcmp(bc.type.value, "59820001") == 0);
	d = structure_catalog_get(&c, "skin");
	pipeline_structure_codes(d, &bc);
	CHECK(strcmp(bc.type.value, "39937001") == 0 && strcmp(bc.type.scheme, "SCT") == 0);
	CHECK(structure_catalog_get(&c, "liver") == NULL);
}

static bool exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

/* Nothing but the expected entries in dir (no temporary file left over). */
static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void test_refusals(const char *data)
{
	struct r3d_err err;
	char src[1024], tmpdir[] = "/tmp/r3d-test-export-XXXXXX", out[1200], stl[1200];
	char note[1200];
	const float xyz[] = {0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1};
	const uint32_t tri[] = {0, 2, 1, 0, 1, 3, 0, 3, 2, 1, 2, 3};
	struct bridge_export_ref ref = {"1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5"};
	struct bridge_export_info info = {
		.refs = &ref, .nrefs = 1, .series_uid = "1.2.3.4.6", .series_number = 900,
		.series_description = "3D models (surface segmentation)",
		.sop_instance_uid = "1.2.3.4.7", .instance_number = 1,
	};
	struct bridge_export_structure s = {
		.name = "bone", .rgb = {0.9f, 0.85f, 0.7f}, .xyz = xyz, .tri = tri,
		.nvert = 4, .ntri = 4,
		.codes = {.category = {"85756007", "SCT", "Tissue"}, .type = {"3138006", "SCT", "Bone"}},
	};
	const struct bridge_segment_codes bone_codes = s.codes;
	uint32_t bad_tri[12];
	FILE *f;

	snprintf(src, sizeof(src), "%s/ct/pancreas-ct-cb001/1-001.dcm", data);
	info.source_path = src;
	if (mkdtemp(tmpdir) == NULL) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(out, sizeof(out), "%s/out.dcm", tmpdir);

	/* A good write first, so that the refusals below are about their input. */
	CHECK(bridge_write_surface_segmentation(&err, out, &info, &s, 1));
	if (!exists(out))
		fprintf(stderr, "write failed: %s\n", err.msg);
	CHECK(dir_entries(tmpdir) == 1);
	unlink(out);

	memcpy(bad_tri, tri, sizeof(tri));
	bad_tri[7] = 4;  /* one past the last vertex */
	s.tri = bad_tri;
	CHECK(!bridge_write_surface_segmentation(&err, out, &info, &s, 1) && err.code == R3D_EINVAL);
	s.tri = tri;
	s.ntri = 0;
	CHECK(!bridge_write_surface_segmentation(&err, out, &info, &s, 1) && err.code == R3D_EINVAL);
	s.ntri = 4;
	s.name = "liver";  /* no codes given */
	memset(&s.codes, 0, sizeof(s.codes));
	CHECK(!bridge_write_surface_segmentation(&err, out, &info, &s, 1) && err.code == R3D_EINVAL);
	struct bridge_code cat = {"85756007", "SCT", "Tissue"}, typ = {"10200004", "SCT", "Liver"};
	s.codes.category = cat;
	CHECK(!bridge_write_surface_segmentation(&err, out, &info, &s, 1) && err.code == R3D_EINVAL);
	s.codes.type = typ;
	CHECK(bridge_write_surface_segmentation(&err, out, &info, &s, 1));
	unlink(out);
	/* Optional codes: a region modifier needs a region, a code needs all three parts. */
	s.codes.region_modifier = (struct bridge_code){"7771000", "SCT", "Left"};
	CHECK(!bridge_write_surface_segmentation(&err, out, &info, &s, 1) && err.code == R3D_EINVAL);
	s.codes.region = (struct bridge_code){"10200004", "SCT", NULL};
	CHECK(!bridge_write_surface_segmentation(&err, out, &info, &s, 1) && err.code == R3D_EINVAL);
	s.codes.region.meaning = "Liver";
	s.codes.type_modifier = (struct bridge_code){"7771000", "SCT", "Left"};
	CHECK(bridge_write_surface_segmentation(&err, out, &info, &s, 1));
	unlink(out);
	/* Non-ASCII text with a UTF-8 source (ISO_IR 192). */
	s.name = "Os (\xc3\xa9" "chantillon)";
	info.series_description = "Mod\xc3\xa8" "les 3D";
	CHECK(bridge_write_surface_segmentation(&err, out, &info, &s, 1));
	unlink(out);
	info.series_description = "3D models (surface segmentation)";
	s.name = "bone";
	s.codes = bone_codes;
	s.rgb[1] = 1.5f;
	CHECK(!bridge_write_surface_segmentation(&err, out, &info, &s, 1) && err.code == R3D_EINVAL);
	s.rgb[1] = 0.85f;
	info.sop_instance_uid = "1.2.3.04.x";
	CHECK(!bridge_write_surface_segmentation(&err, out, &info, &s, 1) && err.code == R3D_EINVAL);
	info.sop_instance_uid = "1.2.3.4.7";
	info.nrefs = 0;
	CHECK(!bridge_write_surface_segmentation(&err, out, &info, &s, 1) && err.code == R3D_EINVAL);
	info.nrefs = 1;
	info.content_date = "2026-11-22";
	CHECK(!bridge_write_surface_segmentation(&err, out, &info, &s, 1) && err.code == R3D_EINVAL);
	info.content_date = NULL;
	info.series_description = "two\\values";
	CHECK(!bridge_write_surface_segmentation(&err, out, &info, &s, 1) && err.code == R3D_EINVAL);
	info.series_description = "3D models (surface segmentation)";

	/* A source that is not DICOM, and one without a Frame of Reference. */
	snprintf(note, sizeof(note), "%s/note.txt", tmpdir);
	f = fopen(note, "w");
	CHECK(f != NULL);
	if (f != NULL) {
		fputs("not DICOM\n", f);
		fclose(f);
	}
	info.source_path = note;
	CHECK(!bridge_write_surface_segmentation(&err, out, &info, &s, 1) && err.code == R3D_EINVAL);
	info.source_path = src;

	/* STL: missing file, and a file whose size does not match its count. */
	snprintf(stl, sizeof(stl), "%s/none.stl", tmpdir);
	CHECK(!bridge_write_encapsulated_stl(&err, out, &info, "bone", stl));
	CHECK(!bridge_write_encapsulated_stl(&err, out, &info, "bone", note) && err.code == R3D_EINVAL);
	snprintf(stl, sizeof(stl), "%s/bad.stl", tmpdir);
	f = fopen(stl, "wb");
	CHECK(f != NULL);
	if (f != NULL) {
		unsigned char hdr[84 + 50] = {0};
		hdr[80] = 2;  /* claims two triangles, holds one */
		fwrite(hdr, 1, sizeof(hdr), f);
		fclose(f);
	}
	CHECK(!bridge_write_encapsulated_stl(&err, out, &info, "bone", stl) && err.code == R3D_EINVAL);

	/* No refused write left a file or a temporary behind. */
	CHECK(!exists(out));
	CHECK(dir_entries(tmpdir) == 2);
	unlink(note);
	unlink(stl);
	rmdir(tmpdir);
}

int main(int argc, char **argv)
{
	struct r3d_err err;

	CHECK(bridge_init(&err));
	test_uid_derive();
	test_cielab();
	test_codes();
	if (argc > 1)
		test_refusals(argv[1]);
	bridge_cleanup();
	return test_summary();
}
