/*
 * seg_write.c: test helper for the seg.* tests. Reads a real CT series
 * through the bridge, assembles the volume, makes three masks by simple
 * thresholds (bone: HU > 299.5; custom: soft tissue -99.5 < HU < 100.5 in a
 * box off the centre, so that many slices have none; lungs: an empty mask,
 * which must still become a segment), writes them as one binary DICOM
 * Segmentation, and leaves for the checker: mask_<n>.raw (uint8, x fastest,
 * then y, then k) and facts.txt (grid size, and per k the source SOP
 * Instance UID and Image Position of that slice).
 *
 * usage: seg_write CT_DIR OUT_DIR
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/bridge.h"
#include "r3d/volume.h"

#define NSTRUCT 3

static int fail(const char *what, const struct r3d_err *err)
{
	fprintf(stderr, "seg_write: %s: %s\n", what, err != NULL ? err->msg : "");
	return 1;
}

static bool write_raw(const char *path, const uint8_t *m, size_t n)
{
	FILE *f = fopen(path, "wb");
	bool ok;

	if (f == NULL)
		return false;
	ok = fwrite(m, 1, n, f) == n;
	return fclose(f) == 0 && ok;
}

int main(int argc, char **argv)
{
	struct r3d_err err = {0};
	struct bridge_scan *scan = NULL;
	struct bridge_series *series = NULL;
	struct volume *vol = NULL;
	uint8_t *masks[NSTRUCT] = {NULL};
	struct bridge_seg_slice *sl = NULL;
	const struct volume_slice *slices;
	size_t count, nvox;
	char path[4096], series_uid[BRIDGE_UID_MAX + 1], sop_uid[BRIDGE_UID_MAX + 1];
	const char *sop_class;
	int rc = 1;
	FILE *facts = NULL;

	if (argc != 3) {
		fprintf(stderr, "usage: seg_write CT_DIR OUT_DIR\n");
		return 2;
	}
	if (!bridge_init(&err))
		return fail("init", &err);
	if (!bridge_scan_dir(&err, argv[1], &scan)) {
		rc = fail("scan", &err);
		goto out;
	}
	if (bridge_scan_count(scan) < 1 ||
	    !bridge_series_load(&err, scan, 0, 2, &series)) {
		rc = fail("load", &err);
		goto out;
	}
	slices = bridge_series_slices(series, &count);
	if (!volume_assemble(&err, slices, count, NULL, &vol)) {
		rc = fail("assemble", &err);
		goto out;
	}
	if (vol->resampled || vol->nz != count) {
		fprintf(stderr, "seg_write: volume resampled (%s); the test needs the slices as given\n",
			vol->note);
		goto out;
	}
	sop_class = bridge_scan_series(scan, 0)->sop_class_uid;

	/* The source slice of each volume k: the one at the patient position of
	 * voxel (0, 0, k). */
	sl = calloc(vol->nz, sizeof *sl);
	if (sl == NULL)
		goto out;
	for (size_t k = 0; k < vol->nz; k++) {
		double p[3];
		size_t found = count;
		volume_index_to_patient(vol, 0, 0, (double)k, p);
		for (size_t s = 0; s < count; s++) {
			double d = fabs(slices[s].position[0] - p[0]) + fabs(slices[s].position[1] - p[1]) +
				   fabs(slices[s].position[2] - p[2]);
			if (d < 1e-3)
				found = s;
		}
		if (found == count) {
			fprintf(stderr, "seg_write: no source slice at k=%zu\n", k);
			goto out;
		}
		sl[k].sop_class_uid = sop_class;
		sl[k].sop_instance_uid = bridge_series_sop_uid(series, found);
		memcpy(sl[k].position, slices[found].position, sizeof sl[k].position);
	}

	nvox = vol->nx * vol->ny * vol->nz;
	for (int i = 0; i < NSTRUCT; i++) {
		masks[i] = calloc(nvox, 1);
		if (masks[i] == NULL)
			goto out;
	}
	for (size_t k = 0; k < vol->nz; k++)
		for (size_t y = 0; y < vol->ny; y++)
			for (size_t x = 0; x < vol->nx; x++) {
				size_t v = x + vol->nx * (y + vol->ny * k);
				int16_t h = vol->hu[v];
				masks[0][v] = h > 299.5;
				masks[1][v] = h > -99.5 && h < 100.5 && x >= vol->nx / 2 &&
					      x < vol->nx / 2 + 60 && y >= vol->ny / 3 &&
					      y < vol->ny / 3 + 40 && k >= vol->nz / 4 &&
					      k < vol->nz / 2;
			}

	{
		const struct bridge_code tissue = {"85756007", "SCT", "Tissue"};
		const struct bridge_seg_structure st[NSTRUCT] = {
			{.name = "bone", .rgb = {0.95f, 0.9f, 0.8f}, .mask = masks[0],
			 .codes = {.category = tissue, .type = {"3138006", "SCT", "Bone"}}},
			/* a site structure with every optional code */
			{.name = "custom", .rgb = {0.8f, 0.2f, 0.2f}, .mask = masks[1],
			 .codes = {.category = tissue, .type = {"64033007", "SCT", "Kidney"},
				   .type_modifier = {"7771000", "SCT", "Left"},
				   .region = {"818983003", "SCT", "Abdomen"},
				   .region_modifier = {"24028007", "SCT", "Right"}}},
			{.name = "lungs", .rgb = {0.6f, 0.7f, 0.9f}, .mask = masks[2],
			 .codes = {.category = {"91723000", "SCT", "Anatomical Structure"},
				   .type = {"39607008", "SCT", "Lung"}}},
		};
		struct bridge_seg_input in = {
			.slices = sl, .nslices = vol->nz,
			.rows = (uint32_t)vol->ny, .columns = (uint32_t)vol->nx,
			.pixel_spacing = {slices[0].pixel_spacing[0], slices[0].pixel_spacing[1]},
			.slice_thickness = vol->spacing[2],
			.structures = st, .nstructures = NSTRUCT,
		};
		struct bridge_export_ref ref = {sop_class, sl[0].sop_instance_uid};
		struct bridge_export_info info = {0};
		char source[4096];
		DIR *d = opendir(argv[1]);
		struct dirent *de;

		memcpy(in.orientation, slices[0].orientation, sizeof in.orientation);
		source[0] = '\0';
		while (d != NULL && (de = readdir(d)) != NULL) {
			size_t n = strlen(de->d_name);
			if (n > 4 && strcmp(de->d_name + n - 4, ".dcm") == 0) {
				snprintf(source, sizeof source, "%s/%s", argv[1], de->d_name);
				break;
			}
		}
		if (d != NULL)
			closedir(d);
		if (source[0] == '\0') {
			fprintf(stderr, "seg_write: no .dcm file in %s\n", argv[1]);
			goto out;
		}
		if (!bridge_uid_derive(&err, bridge_scan_series(scan, 0)->series_uid, "seg test series",
				       series_uid) ||
		    !bridge_uid_derive(&err, bridge_scan_series(scan, 0)->series_uid,
				       "seg test instance", sop_uid)) {
			rc = fail("uid", &err);
			goto out;
		}
		info.source_path = source;
		info.refs = &ref;
		info.nrefs = 1;
		info.series_uid = series_uid;
		info.series_number = 9001;
		info.series_description = "3D model: segmentation";
		info.sop_instance_uid = sop_uid;
		info.instance_number = 1;
		snprintf(path, sizeof path, "%s/seg.dcm", argv[2]);
		if (!bridge_write_segmentation(&err, path, &info, &in)) {
			rc = fail("write segmentation", &err);
			goto out;
		}

		/* refusals */
		in.nstructures = 0;
		if (bridge_write_segmentation(&err, path, &info, &in) || err.code != R3D_EINVAL) {
			fprintf(stderr, "seg_write: no structures was not refused\n");
			goto out;
		}
		in.nstructures = NSTRUCT;
		in.rows = 0;
		if (bridge_write_segmentation(&err, path, &info, &in) || err.code != R3D_EINVAL) {
			fprintf(stderr, "seg_write: zero rows was not refused\n");
			goto out;
		}
	}

	for (int i = 0; i < NSTRUCT; i++) {
		snprintf(path, sizeof path, "%s/mask_%d.raw", argv[2], i + 1);
		if (!write_raw(path, masks[i], nvox)) {
			fprintf(stderr, "seg_write: cannot write %s\n", path);
			goto out;
		}
	}
	snprintf(path, sizeof path, "%s/facts.txt", argv[2]);
	facts = fopen(path, "w");
	if (facts == NULL)
		goto out;
	fprintf(facts, "grid %zu %zu %zu\n", vol->nx, vol->ny, vol->nz);
	fprintf(facts, "segments bone custom lungs\n");
	fprintf(facts, "sop %s\nseries %s\n", sop_uid, series_uid);
	for (size_t k = 0; k < vol->nz; k++)
		fprintf(facts, "slice %zu %s %.6f %.6f %.6f\n", k, sl[k].sop_instance_uid,
			sl[k].position[0], sl[k].position[1], sl[k].position[2]);
	if (fclose(facts) != 0) {
		facts = NULL;
		goto out;
	}
	facts = NULL;
	rc = 0;
out:
	if (facts != NULL)
		fclose(facts);
	for (int i = NSTRUCT - 1; i >= 0; i--)
		free(masks[i]);
	free(sl);
	volume_destroy(vol);
	bridge_series_free(series);
	bridge_scan_free(scan);
	bridge_cleanup();
	return rc;
}
