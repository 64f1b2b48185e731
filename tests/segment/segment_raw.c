/*
 * segment_raw.c: runs the segment presets on a raw little-endian int16 HU
 * volume (x fastest) and writes one raw uint8 mask per produced structure.
 * Used by the real-data tests (the Python drivers read NIfTI / DICOM and
 * write the raw volume) and by bench/segment_bench.sh. Single-threaded main;
 * the library starts its own workers.
 *
 *   segment_raw IN.raw NX NY NZ SX SY SZ OUT_PREFIX [--structures a,b]
 *               [--threads N] [--repeat N] [--set group.key=value]...
 *
 * Prints "structure <name> voxels <n> ms <median>" or
 * "structure <name> skipped <reason>", then "contrast <0|1> <ml>",
 * "total_ms <median of the whole run>" and "cpu_ms <CPU time per run, all
 * threads, mean>" (less sensitive than wall time to other load on the box).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "r3d/segment.h"
#include "r3d/util.h"

#define RAW_MAX_REPEAT 50
#define RAW_MAX_PATH 4096

struct param_name {
	const char *name;
	size_t offset;
};

#define P(group, key) { #group "." #key, offsetof(struct segment_params, group.key) }
static const struct param_name params_table[] = {
	P(skin, body_hu), P(skin, open_mm), P(skin, min_ml), P(skin, min_part_fraction),
	P(skin, part_min_bone_fraction), P(skin, part_min_soft_fraction),
	P(bone, dense_hu), P(bone, low_hu), P(bone, contrast_low_hu), P(bone, contrast_reach_mm), P(bone, blood_open_mm),
	P(bone, blood_max_grad_hu), P(bone, blood_window_mm),
	P(bone, blood_margin_mm), P(bone, blood_close_mm),
	P(bone, blood_min_soft_excess),
	P(bone, close_mm), P(bone, hole_max_mm2), P(bone, hole_min_mean_hu),
	P(bone, min_island_ml),
	P(lungs, air_hu), P(lungs, min_ml), P(lungs, hole_max_mm2), P(lungs, gas_hu), P(lungs, gas_max_fraction),
	P(vessels, low_hu), P(vessels, high_hu), P(vessels, detect_low_hu),
	P(vessels, detect_open_mm),
	P(vessels, detect_min_ml_per_cm), P(vessels, bone_margin_mm), P(vessels, min_ml),
};
#undef P

static bool param_set(struct r3d_err *err, struct segment_params *p, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char *end;
	double v;
	size_t i;

	if (eq == NULL)
		return r3d_err_set(err, R3D_EINVAL, "--set wants group.key=value");
	v = strtod(eq + 1, &end);
	if (end == eq + 1 || *end != '\0')
		return r3d_err_set(err, R3D_EINVAL, "bad number in '%s'", arg);
	for (i = 0; i < sizeof(params_table) / sizeof(params_table[0]); i++) {
		if (strlen(params_table[i].name) == (size_t)(eq - arg) &&
		    strncmp(params_table[i].name, arg, (size_t)(eq - arg)) == 0) {
			*(double *)((char *)p + params_table[i].offset) = v;
			return true;
		}
	}
	return r3d_err_set(err, R3D_EINVAL, "unknown parameter in '%s'", arg);
}

static bool parse_structures(struct r3d_err *err, const char *list, unsigned *out)
{
	char buf[256], *tok, *save = NULL;

	if (strlen(list) >= sizeof(buf))
		return r3d_err_set(err, R3D_EINVAL, "structure list too long");
	strcpy(buf, list);
	*out = 0;
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		enum segment_preset s = segment_preset_from_name(tok);

		if (s == SEGMENT_PRESET_COUNT)
			return r3d_err_set(err, R3D_EINVAL, "unknown structure '%s'", tok);
		*out |= 1u << s;
	}
	return true;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	struct r3d_err err = { 0 };
	struct segment_params p;
	struct segment_volume vol;
	struct segment_result res;
	struct segment_ctx *ctx = NULL;
	int16_t *hu = NULL;
	size_t nvox = 0, bytes = 0;
	long dims[3], repeat = 1, threads = 2;
	double ms[SEGMENT_PRESET_COUNT][RAW_MAX_REPEAT], total[RAW_MAX_REPEAT], cpu0;
	unsigned structures = (1u << SEGMENT_PRESET_COUNT) - 1;
	FILE *f = NULL;
	int i, s, rc = 1;
	long rep;

	segment_params_default(&p);
	if (argc < 9) {
		fprintf(stderr, "usage: %s IN.raw NX NY NZ SX SY SZ OUT_PREFIX [--structures a,b] "
			"[--threads N] [--repeat N] [--set group.key=value]...\n", argv[0]);
		goto out;
	}
	for (i = 0; i < 3; i++)
		if (!parse_long(&err, argv[2 + i], 1, SEGMENT_MAX_DIM, &dims[i]))
			goto fail;
	for (i = 0; i < 3; i++) {
		char *end;

		vol.spacing_mm[i] = strtod(argv[5 + i], &end);
		if (*end != '\0' || end == argv[5 + i]) {
			r3d_err_set(&err, R3D_EINVAL, "bad spacing '%s'", argv[5 + i]);
			goto fail;
		}
	}
	for (i = 9; i < argc; i++) {
		if (i + 1 >= argc) {
			r3d_err_set(&err, R3D_EINVAL, "%s wants a value", argv[i]);
			goto fail;
		}
		if (strcmp(argv[i], "--structures") == 0) {
			if (!parse_structures(&err, argv[++i], &structures))
				goto fail;
		} else if (strcmp(argv[i], "--threads") == 0) {
			if (!parse_long(&err, argv[++i], 1, SEGMENT_MAX_THREADS, &threads))
				goto fail;
		} else if (strcmp(argv[i], "--repeat") == 0) {
			if (!parse_long(&err, argv[++i], 1, RAW_MAX_REPEAT, &repeat))
				goto fail;
		} else if (strcmp(argv[i], "--set") == 0) {
			if (!param_set(&err, &p, argv[++i]))
				goto fail;
		} else {
			r3d_err_set(&err, R3D_EINVAL, "unknown option '%s'", argv[i]);
			goto fail;
		}
	}
	p.threads = (int)threads;
	if (!size_mul3((size_t)dims[0], (size_t)dims[1], (size_t)dims[2], &nvox) ||
	    !size_mul(nvox, sizeof(int16_t), &bytes)) {
		r3d_err_set(&err, R3D_EINVAL, "volume too large");
		goto fail;
	}
	hu = bigbuf_alloc(&err, bytes);
	if (hu == NULL)
		goto fail;
	f = fopen(argv[1], "rb");
	if (f == NULL || fread(hu, 1, bytes, f) != bytes) {
		r3d_err_set(&err, R3D_EIO, "cannot read %zu bytes from %s", bytes, argv[1]);
		goto fail;
	}
	fclose(f);
	f = NULL;
	vol.hu = hu;
	vol.nx = (size_t)dims[0];
	vol.ny = (size_t)dims[1];
	vol.nz = (size_t)dims[2];
	if (!segment_ctx_create(&err, vol.nx, vol.ny, vol.nz, &ctx))
		goto fail;
	cpu0 = cpu_s();
	for (rep = 0; rep < repeat; rep++) {
		double t0 = clock_mono_s();

		if (!segment_run(&err, ctx, &vol, &p, structures, &res))
			goto fail;
		total[rep] = (clock_mono_s() - t0) * 1e3;
		for (s = 0; s < SEGMENT_PRESET_COUNT; s++)
			ms[s][rep] = res.ms[s];
	}
	for (s = 0; s < SEGMENT_PRESET_COUNT; s++) {
		char path[RAW_MAX_PATH];

		if (res.mask[s] == NULL) {
			printf("structure %s skipped %s\n", segment_preset_name(s),
			       res.skipped_reason[s]);
			continue;
		}
		printf("structure %s voxels %zu ms %.1f\n", segment_preset_name(s), res.voxels[s],
		       median(ms[s], (size_t)repeat));
		if (snprintf(path, sizeof(path), "%s_%s.u8", argv[8], segment_preset_name(s)) >=
		    (int)sizeof(path)) {
			r3d_err_set(&err, R3D_EINVAL, "output prefix too long");
			goto fail;
		}
		f = fopen(path, "wb");
		if (f == NULL || fwrite(res.mask[s], 1, nvox, f) != nvox || fclose(f) != 0) {
			f = NULL;
			r3d_err_set(&err, R3D_EIO, "cannot write %s", path);
			goto fail;
		}
		f = NULL;
	}
	printf("contrast %d %.1f\n", res.contrast ? 1 : 0, res.contrast_ml);
	printf("body_ms %.1f detect_ms %.1f\n", res.body_ms, res.detect_ms);
	printf("total_ms %.1f\n", median(total, (size_t)repeat));
	printf("cpu_ms %.1f\n", (cpu_s() - cpu0) * 1e3 / (double)repeat);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "segment_raw: %s\n", err.msg);
out:
	if (f != NULL)
		fclose(f);
	segment_ctx_destroy(ctx);
	bigbuf_free(hu, bytes);
	return rc;
}
