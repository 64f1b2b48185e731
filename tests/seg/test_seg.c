/*
 * test_seg.c: unit.seg, the refusals of bridge_write_segmentation(): every
 * bad input fails with R3D_EINVAL before anything is read or written, and
 * the target path stays untouched. Needs no data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "r3d/bridge.h"

static int failures;

static void expect_refused(const char *what, const char *path,
			   const struct bridge_export_info *info,
			   const struct bridge_seg_input *in)
{
	struct r3d_err err = {0};

	if (bridge_write_segmentation(&err, path, info, in) || err.code != R3D_EINVAL ||
	    err.msg[0] == '\0') {
		fprintf(stderr, "FAIL: %s was not refused with a reason (code %d)\n", what, err.code);
		failures++;
	} else {
		printf("ok: %s: %s\n", what, err.msg);
	}
	if (path != NULL && access(path, F_OK) == 0) {
		fprintf(stderr, "FAIL: %s left a file at %s\n", what, path);
		failures++;
	}
}

int main(void)
{
	static uint8_t mask[4 * 3 * 2];
	const struct bridge_seg_slice sl[2] = {
		{"1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.1", {0, 0, 0}, 0},
		{"1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.2", {0, 0, 1}, 0},
	};
	const struct bridge_segment_codes bone = {
		.category = {"85756007", "SCT", "Tissue"}, .type = {"3138006", "SCT", "Bone"},
	};
	struct bridge_seg_structure st = {.name = "bone", .rgb = {1, 1, 1}, .codes = bone,
					  .mask = mask};
	struct bridge_seg_input in = {
		.slices = sl, .nslices = 2, .rows = 3, .columns = 4,
		.orientation = {1, 0, 0, 0, 1, 0}, .pixel_spacing = {1, 1},
		.slice_thickness = 1, .structures = &st, .nstructures = 1,
	};
	struct bridge_export_info info = {
		.source_path = "/nonexistent/source.dcm", .series_uid = "1.2.3.5",
		.series_number = 1, .series_description = "3D model: segmentation",
		.sop_instance_uid = "1.2.3.6", .instance_number = 1,
	};
	const struct bridge_code bad = {"", "SCT", "x"};
	char path[] = "/tmp/r3d-unit-seg-XXXXXX";
	char target[64];
	struct r3d_err err = {0};

	if (mkdtemp(path) == NULL)
		return 2;
	snprintf(target, sizeof target, "%s/seg.dcm", path);
	if (!bridge_init(&err))
		return 2;

	expect_refused("no path", NULL, &info, &in);
	expect_refused("no input", target, &info, NULL);
	info.series_uid = "1.2.x";
	expect_refused("malformed series UID", target, &info, &in);
	info.series_uid = "1.2.3.5";
	info.series_description = "";
	expect_refused("empty series description", target, &info, &in);
	info.series_description = "3D model: segmentation";
	info.content_date = "2026-11-22";
	expect_refused("malformed content date", target, &info, &in);
	info.content_date = NULL;
	in.nslices = 0;
	expect_refused("no slices", target, &info, &in);
	in.nslices = BRIDGE_SEG_MAX_SLICES + 1;
	expect_refused("too many slices", target, &info, &in);
	in.nslices = 2;
	in.rows = BRIDGE_SEG_MAX_DIM + 1;
	expect_refused("too many rows", target, &info, &in);
	in.rows = 3;
	in.slice_thickness = 0;
	expect_refused("zero slice thickness", target, &info, &in);
	in.slice_thickness = 1;
	st.mask = NULL;
	expect_refused("no mask", target, &info, &in);
	st.bits = mask;
	expect_refused("both mask and bits", target, &info, &in);
	st.bits = NULL;
	st.mask = mask;
	{
		struct bridge_seg_slice big[2] = {sl[0], sl[1]};
		big[1].frame_number = 65536;
		in.slices = big;
		expect_refused("a frame number over 65535", target, &info, &in);
		in.slices = sl;
	}
	memset(&st.codes, 0, sizeof(st.codes));
	expect_refused("no codes", target, &info, &in);
	st.codes.category = bone.category;
	expect_refused("only one code", target, &info, &in);
	st.codes.type = bad;
	expect_refused("a malformed code", target, &info, &in);
	st.codes = bone;
	st.codes.region_modifier = (struct bridge_code){"7771000", "SCT", "Left"};
	expect_refused("a region modifier without a region", target, &info, &in);
	st.codes = bone;
	in.nstructures = BRIDGE_EXPORT_MAX_STRUCTURES + 1;
	expect_refused("too many structures", target, &info, &in);
	in.nstructures = 1;
	expect_refused("an unreadable source", target, &info, &in);

	bridge_cleanup();
	rmdir(path);
	if (failures != 0)
		return 1;
	printf("PASS\n");
	return 0;
}
