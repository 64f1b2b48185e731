/*
 * seed_dicom.c: writes the transcoded part of fuzz_dicom's seed corpus.
 * Reads real CT slices (from ../shared/data, named on the command line),
 * and writes each again, pixels and geometry unchanged, in every transfer
 * syntax the bridge writes (bridge_ct_write), plus all of them as one
 * Enhanced CT per transfer syntax: out_dir/<ts>_<k>.dcm and
 * out_dir/<ts>_enhanced.dcm. make_seeds.py joins these into series inputs.
 * Usage: seed_dicom OUT_DIR CT_FILE...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/bridge.h"
#include "r3d/volume.h"

#define SEED_MAX_FILES 8

static const enum bridge_ts all_ts[] = {
	BRIDGE_TS_IMPLICIT_LE, BRIDGE_TS_EXPLICIT_LE, BRIDGE_TS_EXPLICIT_BE, BRIDGE_TS_DEFLATE,
	BRIDGE_TS_RLE,         BRIDGE_TS_JPEG_LL,     BRIDGE_TS_JPEGLS,      BRIDGE_TS_J2K,
	BRIDGE_TS_J2K_LOSSY,
};

int main(int argc, char **argv)
{
	struct r3d_err err = {0, {0}};
	struct bridge_series *in[SEED_MAX_FILES] = {0};
	struct bridge_ct_image img[SEED_MAX_FILES];
	char study[BRIDGE_UID_MAX + 1], series[BRIDGE_UID_MAX + 1], frame[BRIDGE_UID_MAX + 1];
	char sop[SEED_MAX_FILES][BRIDGE_UID_MAX + 1];
	char path[4096];
	int n = argc - 2, rc = 1;

	if (argc < 3 || n > SEED_MAX_FILES) {
		fprintf(stderr, "usage: seed_dicom OUT_DIR CT_FILE... (at most %d)\n", SEED_MAX_FILES);
		return 2;
	}
	if (!bridge_init(&err))
		goto out;
	bridge_uid_generate(study);
	bridge_uid_generate(series);
	bridge_uid_generate(frame);
	for (int i = 0; i < n; i++) {
		const struct volume_slice *s;
		size_t count;
		if (!bridge_file_load(&err, argv[i + 2], &in[i]))
			goto out;
		s = bridge_series_slices(in[i], &count);
		if (count != 1) {
			fprintf(stderr, "seed_dicom: %s: one frame expected\n", argv[i + 2]);
			goto out;
		}
		bridge_uid_generate(sop[i]);
		memset(&img[i], 0, sizeof(img[i]));
		img[i].patient_name = "FUZZ^SEED";
		img[i].patient_id = "FUZZ";
		img[i].study_uid = study;
		img[i].series_uid = series;
		img[i].sop_instance_uid = sop[i];
		img[i].frame_of_reference_uid = frame;
		img[i].study_date = "20240101";
		img[i].study_time = "120000";
		img[i].series_number = 1;
		img[i].instance_number = i + 1;
		img[i].rows = s->rows;
		img[i].columns = s->columns;
		memcpy(img[i].position, s->position, sizeof(img[i].position));
		memcpy(img[i].orientation, s->orientation, sizeof(img[i].orientation));
		memcpy(img[i].pixel_spacing, s->pixel_spacing, sizeof(img[i].pixel_spacing));
		img[i].slice_thickness = 1.25;
		img[i].bits_stored = 16;
		img[i].is_signed = s->pixel == VOLUME_PIXEL_S16;
		img[i].rescale_slope = s->rescale_slope;
		img[i].rescale_intercept = s->rescale_intercept;
		img[i].pixels = s->pixels;
	}
	for (size_t t = 0; t < sizeof(all_ts) / sizeof(all_ts[0]); t++) {
		const char *name = bridge_ts_name(all_ts[t]);
		for (int i = 0; i < n; i++) {
			snprintf(path, sizeof(path), "%s/%s_%d.dcm", argv[1], name, i);
			if (!bridge_ct_write(&err, path, &img[i], all_ts[t]))
				goto out;
		}
		snprintf(path, sizeof(path), "%s/%s_enhanced.dcm", argv[1], name);
		if (!bridge_ct_write_enhanced(&err, path, img, (size_t)n, all_ts[t]))
			goto out;
	}
	rc = 0;
out:
	if (rc != 0 && err.msg[0] != '\0')
		fprintf(stderr, "seed_dicom: %s\n", err.msg);
	for (int i = 0; i < n; i++)
		bridge_series_free(in[i]);
	bridge_cleanup();
	return rc;
}
