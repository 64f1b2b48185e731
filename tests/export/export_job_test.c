/*
 * export_job_test.c: export.job, export_job() on a real pipeline run (a
 * phantom series that recon3d-phantom wrote, passed as CT_DIR):
 * - [export] segmentation with the masks kept writes one binary DICOM
 *   Segmentation (segmentation.dcm, "3D model: segmentation", series 9080,
 *   Modality SEG, SOP class 1.2.840.10008.5.1.4.1.1.66.4) besides the
 *   Surface Segmentation and one STL per structure, and it is queued like
 *   them (it is in out->obj);
 * - a retry of the same job derives the same SOP Instance UID (the PACS
 *   keeps one copy), another job another one;
 * - segmentation off: no SEG; the pipeline without keep_masks keeps nothing
 *   (res.seg.nslices == 0, no bits) and export_job then writes no SEG;
 * - the kept bits are the meshed masks: their count equals the set voxels
 *   of the volume-grid masks --save-masks style (slices as given: exact).
 *
 * usage: export_job_test CT_DIR TMP_DIR
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "r3d/bridge.h"
#include "r3d/export.h"
#include "r3d/pipeline.h"

static int failures;

#define CHECK(c)                                                                  \
	do {                                                                      \
		if (!(c)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
			failures++;                                               \
		}                                                                 \
	} while (0)

static int find_seg(const struct export_result *ex)
{
	for (int i = 0; i < ex->n; i++)
		if (strcmp(ex->obj[i].description, "3D model: segmentation") == 0)
			return i;
	return -1;
}

static bool read_attrs(const char *path, struct bridge_instance_attrs *a)
{
	struct r3d_err err;

	return bridge_read_instance_attrs(&err, path, a);
}

int main(int argc, char **argv)
{
	static struct export_result ex, ex2;
	struct pipeline_result res;
	struct pipeline_options o;
	struct series_ref *refs = NULL;
	struct r3d_err err;
	struct export_options eo = {.surface_segmentation = true, .stl = true,
				    .segmentation = true, .preview = false, .preview_size = 64};
	char results[4096], path[4200], masks[4000];
	int nrefs = 0, meshed = 0;
	DIR *d;
	struct dirent *de;

	if (argc != 3) {
		fprintf(stderr, "usage: export_job_test CT_DIR TMP_DIR\n");
		return 2;
	}
	if (!bridge_init(&err))
		return 2;
	refs = calloc(BRIDGE_SEG_MAX_SLICES, sizeof(*refs));
	d = opendir(argv[1]);
	if (refs == NULL || d == NULL)
		return 2;
	while ((de = readdir(d)) != NULL && nrefs < BRIDGE_SEG_MAX_SLICES) {
		struct bridge_instance_attrs a;
		size_t n = strlen(de->d_name);
		if (n < 5 || strcmp(de->d_name + n - 4, ".dcm") != 0)
			continue;
		snprintf(refs[nrefs].path, sizeof(refs[nrefs].path), "%s/%s", argv[1], de->d_name);
		if (!read_attrs(refs[nrefs].path, &a))
			continue;
		snprintf(refs[nrefs].sop_class_uid, sizeof(refs[nrefs].sop_class_uid), "%s", a.sop_class_uid);
		snprintf(refs[nrefs].sop_instance_uid, sizeof(refs[nrefs].sop_instance_uid), "%s",
			 a.sop_instance_uid);
		nrefs++;
	}
	closedir(d);
	CHECK(nrefs >= 2);

	/* Masks kept: the SEG comes with the other objects. */
	snprintf(results, sizeof(results), "%s/kept", argv[2]);
	snprintf(masks, sizeof(masks), "%s/masks", argv[2]);
	pipeline_options_default(&o);
	o.threads = 2;
	o.keep_masks = true;
	o.save_masks = masks;
	if (!pipeline_run_dir(&err, argv[1], &o, &res) || !pipeline_write_outputs(&err, results, &res)) {
		fprintf(stderr, "pipeline: %s\n", err.msg);
		return 1;
	}
	CHECK(res.seg.nslices == res.slices);
	CHECK(res.seg.rows == res.dims[1] && res.seg.columns == res.dims[0]);
	CHECK(!res.seg.mapped);
	for (size_t i = 0; i < res.nstructures; i++) {
		const struct pipeline_structure *ps = &res.structures[i];
		CHECK((ps->mesh != NULL) == (ps->seg_bits != NULL));
		if (ps->mesh == NULL)
			continue;
		meshed++;
		/* The bits are the mask the mesh was made from (volume = slices). */
		snprintf(path, sizeof(path), "%s/%s.raw", masks, ps->def.key);
		FILE *f = fopen(path, "rb");
		size_t n = res.dims[0] * res.dims[1] * res.dims[2], set = 0, same = 0;
		uint8_t *m = malloc(n);
		CHECK(f != NULL && m != NULL && fread(m, 1, n, f) == n);
		for (size_t v = 0; m != NULL && v < n; v++) {
			int bit = (ps->seg_bits[v >> 3] >> (v & 7)) & 1;
			set += m[v] != 0;
			same += bit == (m[v] != 0);
		}
		CHECK(set == ps->seg_voxels && set > 100);
		CHECK(same == n);
		free(m);
		if (f != NULL)
			fclose(f);
	}
	CHECK(meshed >= 2);
	CHECK(export_job(&err, &res, 42, refs, nrefs, results, &eo, &ex));
	CHECK(ex.n == 1 + meshed + 1);
	int s = find_seg(&ex);
	CHECK(s >= 0);
	if (s >= 0) {
		struct bridge_instance_attrs a;
		struct stat st;
		CHECK(strstr(ex.obj[s].path, "/dicom/segmentation.dcm") != NULL);
		CHECK(stat(ex.obj[s].path, &st) == 0 && st.st_size > 1000);
		CHECK(read_attrs(ex.obj[s].path, &a));
		CHECK(strcmp(a.sop_class_uid, "1.2.840.10008.5.1.4.1.1.66.4") == 0);
		CHECK(strcmp(a.modality, "SEG") == 0);
		CHECK(a.series_number == 9080);
		CHECK(strcmp(a.sop_instance_uid, ex.obj[s].sop_instance_uid) == 0);
		CHECK(strcmp(a.study_uid, res.study_uid) == 0);
		CHECK(strcmp(a.series_uid, res.series_uid) != 0);
	}
	/* A retry: the same instance; another job: another one. */
	CHECK(export_job(&err, &res, 42, refs, nrefs, results, &eo, &ex2));
	CHECK(s >= 0 && find_seg(&ex2) == s &&
	      strcmp(ex.obj[s].sop_instance_uid, ex2.obj[s].sop_instance_uid) == 0);
	CHECK(export_job(&err, &res, 43, refs, nrefs, results, &eo, &ex2));
	CHECK(s >= 0 && find_seg(&ex2) == s &&
	      strcmp(ex.obj[s].sop_instance_uid, ex2.obj[s].sop_instance_uid) != 0);
	/* [export] segmentation = false: no SEG. */
	eo.segmentation = false;
	CHECK(export_job(&err, &res, 42, refs, nrefs, results, &eo, &ex2));
	CHECK(ex2.n == 1 + meshed && find_seg(&ex2) < 0);
	pipeline_result_free(&res);
	CHECK(res.seg.slices == NULL && res.seg.nslices == 0);

	/* Masks not kept: nothing held, no SEG even when asked. */
	snprintf(results, sizeof(results), "%s/not-kept", argv[2]);
	o.keep_masks = false;
	o.save_masks = NULL;
	if (!pipeline_run_dir(&err, argv[1], &o, &res) || !pipeline_write_outputs(&err, results, &res)) {
		fprintf(stderr, "pipeline: %s\n", err.msg);
		return 1;
	}
	CHECK(res.seg.nslices == 0 && res.seg.slices == NULL);
	for (size_t i = 0; i < res.nstructures; i++)
		CHECK(res.structures[i].seg_bits == NULL);
	eo.segmentation = true;
	CHECK(export_job(&err, &res, 42, refs, nrefs, results, &eo, &ex2));
	CHECK(ex2.n == 1 + meshed && find_seg(&ex2) < 0);
	CHECK(!pipeline_write_segmentation(&err, &res, NULL, "/nonexistent/x.dcm") &&
	      err.code == R3D_EINVAL);
	pipeline_result_free(&res);

	CHECK(EXPORT_MAX_OBJECTS >= PIPELINE_MAX_STRUCTURES + 1 + 1 + 7);
	free(refs);
	bridge_cleanup();
	if (failures != 0)
		return 1;
	printf("PASS\n");
	return 0;
}
