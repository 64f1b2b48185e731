/*
 * test_bridge_attrs.c: unit tests for the bridge's UID check and index
 * attribute reader, on real files of ../shared/data and broken copies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "r3d/bridge.h"
#include "r3d/test.h"

static bool truncated_copy(const char *src, const char *dst, long keep)
{
	FILE *in = fopen(src, "rb");
	FILE *out = fopen(dst, "wb");
	bool ok = in != NULL && out != NULL;

	for (long i = 0; ok && i < keep; i++) {
		int c = fgetc(in);
		if (c == EOF)
			break;
		fputc(c, out);
	}
	if (in)
		fclose(in);
	if (out)
		fclose(out);
	return ok;
}

int main(int argc, char **argv)
{
	struct r3d_err err;
	struct bridge_instance_attrs a;
	char path[1024];
	char tmp[] = "/tmp/r3d-test-attrs-XXXXXX";
	int fd;

	CHECK(bridge_uid_valid("1.2.840.10008.5.1.4.1.1.2"));
	CHECK(bridge_uid_valid("1"));
	CHECK(!bridge_uid_valid(""));
	CHECK(!bridge_uid_valid("1..2"));
	CHECK(!bridge_uid_valid(".1.2"));
	CHECK(!bridge_uid_valid("1.2."));
	CHECK(!bridge_uid_valid("1.2/../x"));
	CHECK(!bridge_uid_valid("1.2.3a"));
	/* 65 characters: one too many */
	CHECK(!bridge_uid_valid("1.234567890123456789012345678901234567890123456789012345678901234"));
	CHECK(bridge_uid_valid("1.23456789012345678901234567890123456789012345678901234567890123"));

	CHECK(bridge_init(&err));
	if (argc < 2)
		return test_summary();
	snprintf(path, sizeof(path), "%s/ct/pancreas-ct-cb001/1-001.dcm", argv[1]);
	CHECK(bridge_read_instance_attrs(&err, path, &a));
	CHECK(strcmp(a.modality, "CT") == 0);
	CHECK(strcmp(a.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2") == 0);
	CHECK(strcmp(a.transfer_syntax, "1.2.840.10008.1.2") == 0);
	CHECK(a.rows == 512 && a.columns == 512 && a.number_of_frames == 1);
	CHECK(strncmp(a.study_uid, "1.3.6.1.4.1.14519.5.2.1.", 24) == 0);
	CHECK(bridge_uid_valid(a.series_uid) && bridge_uid_valid(a.sop_instance_uid));

	CHECK(!a.is_segmentation && a.ref_series_uid[0] == '\0' && a.ref_sop_uid[0] == '\0');
	CHECK(bridge_uid_valid(a.frame_of_reference_uid));

	/* Segmentations: what they were made on (values as pydicom reads them). */
	snprintf(path, sizeof(path), "%s/seg/dcmqi-liver/liver.dcm", argv[1]);
	CHECK(bridge_read_instance_attrs(&err, path, &a));
	CHECK(a.is_segmentation);
	CHECK(strcmp(a.ref_series_uid, "1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1") == 0);
	CHECK(strcmp(a.ref_sop_uid, "1.2.392.200103.20080913.113635.2.2009.6.22.21.43.10.23433.1") == 0);
	CHECK(strcmp(a.frame_of_reference_uid,
		     "1.2.392.200103.20080913.113635.3.2009.6.22.21.44.34.23882.1") == 0);
	snprintf(path, sizeof(path), "%s/seg/rt-utils/sample/rt.dcm", argv[1]);
	CHECK(bridge_read_instance_attrs(&err, path, &a));
	CHECK(a.is_segmentation);
	CHECK(strcmp(a.ref_series_uid, "2.16.840.1.114362.1.11940992.23790159890.563423471.893.88") == 0);
	CHECK(strcmp(a.ref_sop_uid, "2.16.840.1.114362.1.11940992.23790159890.563423471.995.90") == 0);
	CHECK(strcmp(a.frame_of_reference_uid,
		     "1.2.840.113619.2.405.3.84541899.902.1605198123.912.6060.1") == 0);

	snprintf(path, sizeof(path), "%s/ts/cornerstone-ct/CT1_J2KR", argv[1]);
	CHECK(bridge_read_instance_attrs(&err, path, &a));
	CHECK(strcmp(a.transfer_syntax, "1.2.840.10008.1.2.4.90") == 0);

	/* Not DICOM at all, and a file cut inside its header: refused, no crash. */
	fd = mkstemp(tmp);
	CHECK(fd >= 0);
	if (fd >= 0) {
		ssize_t w = write(fd, "hello, not dicom\n", 17);
		(void)w;
		close(fd);
		CHECK(!bridge_read_instance_attrs(&err, tmp, &a));
		CHECK(err.code == R3D_EINVAL);
		snprintf(path, sizeof(path), "%s/ct/pancreas-ct-cb001/1-001.dcm", argv[1]);
		CHECK(truncated_copy(path, tmp, 700));
		CHECK(!bridge_read_instance_attrs(&err, tmp, &a));
		unlink(tmp);
	}
	CHECK(!bridge_read_instance_attrs(&err, "/nonexistent.dcm", &a));
	bridge_cleanup();
	return test_summary();
}
