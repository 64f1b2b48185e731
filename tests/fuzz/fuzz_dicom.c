/*
 * fuzz_dicom.c: libFuzzer harness for the bridge's DICOM dataset reader and
 * the volume stage. Input: the bytes of one DICOM file, or of several joined
 * by FUZZ_DICOM_SEP (a series: the volume stage needs at least 2 slices).
 * Each is written into a scratch folder on tmpfs, then read the way the
 * daemon reads it: bridge_read_instance_attrs() on every file (what the
 * receiver indexes), bridge_scan_dir() on the folder, bridge_series_load()
 * and volume_assemble() for each series found (what a job does). Every
 * call ends with a result or with a reason (fuzz_check_reason()); a crash,
 * a sanitizer report, a leak or a hang is a finding.
 *
 * The volume options follow the input's size (bit 0: interpolate gaps,
 * bit 1: keep the shear of a tilted stack) so both paths are reached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "r3d/bridge.h"
#include "r3d/volume.h"

#define FUZZ_DICOM_SEP "\0R3DNXT\0"
#define FUZZ_DICOM_SEP_LEN 8
#define FUZZ_DICOM_MAX_FILES 8
#define FUZZ_DICOM_MAX_SERIES 4

static char dir[FUZZ_PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct r3d_err err = {0, {0}};

	(void)argc;
	(void)argv;
	fuzz_log_off();
	if (!bridge_init(&err)) {
		fprintf(stderr, "fuzz_dicom: %s\n", err.msg);
		abort();
	}
	fuzz_scratch_dir("dicom", dir);
	return 0;
}

static const uint8_t *find_sep(const uint8_t *p, size_t n)
{
	if (n < FUZZ_DICOM_SEP_LEN)
		return NULL;
	for (size_t i = 0; i + FUZZ_DICOM_SEP_LEN <= n; i++) {
		if (p[i] == 0 && memcmp(p + i, FUZZ_DICOM_SEP, FUZZ_DICOM_SEP_LEN) == 0)
			return p + i;
	}
	return NULL;
}

static void load_series(const struct bridge_scan *scan, size_t i, size_t size)
{
	struct r3d_err err = {0, {0}};
	struct bridge_series *s = NULL;
	struct volume *vol = NULL;
	struct volume_options opt;
	const struct volume_slice *slices;
	size_t n;

	if (!bridge_series_load(&err, scan, i, 1, &s)) {
		fuzz_check_reason(&err, "bridge_series_load");
		return;
	}
	slices = bridge_series_slices(s, &n);
	for (size_t k = 0; k < n; k++) {
		/* The accessors the pipeline uses must answer for every slice. */
		if (bridge_series_sop_uid(s, k) == NULL || bridge_series_sop_class(s, k) == NULL ||
		    bridge_series_transfer_syntax(s, k) == NULL)
			abort();
	}
	volume_options_default(&opt);
	opt.interpolate_gaps = (size & 1) != 0;
	opt.keep_shear = (size & 2) != 0;
	opt.threads = 1;
	memset(&err, 0, sizeof(err));
	if (volume_assemble(&err, slices, n, &opt, &vol))
		volume_destroy(vol);
	else
		fuzz_check_reason(&err, "volume_assemble");
	bridge_series_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char paths[FUZZ_DICOM_MAX_FILES][FUZZ_PATH_MAX + 16];
	int nfiles = 0;
	const uint8_t *p = data;
	size_t left = size;
	struct r3d_err err = {0, {0}};
	struct bridge_scan *scan = NULL;

	while (nfiles < FUZZ_DICOM_MAX_FILES) {
		const uint8_t *sep = find_sep(p, left);
		size_t len = sep != NULL ? (size_t)(sep - p) : left;
		snprintf(paths[nfiles], sizeof(paths[nfiles]), "%s/f%d.dcm", dir, nfiles);
		fuzz_write_file(paths[nfiles], p, len);
		nfiles++;
		if (sep == NULL)
			break;
		p = sep + FUZZ_DICOM_SEP_LEN;
		left -= len + FUZZ_DICOM_SEP_LEN;
	}
	for (int i = 0; i < nfiles; i++) {
		struct bridge_instance_attrs a;
		memset(&err, 0, sizeof(err));
		if (!bridge_read_instance_attrs(&err, paths[i], &a))
			fuzz_check_reason(&err, "bridge_read_instance_attrs");
	}
	memset(&err, 0, sizeof(err));
	if (bridge_scan_dir(&err, dir, &scan)) {
		size_t count = bridge_scan_count(scan);
		for (size_t i = 0; i < count && i < FUZZ_DICOM_MAX_SERIES; i++)
			load_series(scan, i, size);
		bridge_scan_free(scan);
	} else {
		fuzz_check_reason(&err, "bridge_scan_dir");
	}
	for (int i = 0; i < nfiles; i++)
		unlink(paths[i]);
	return 0;
}
