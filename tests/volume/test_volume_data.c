/*
 * test_volume_data.c: reading real and phantom series through the bridge and
 * assembling them. One executable, one ctest per mode:
 *   cornerstone DIR   every transfer syntax of one CT slice decodes, lossless
 *                     ones to the same HU as the uncompressed original
 *   pylibjpeg DIR     vendor oddities decode or fail with a reason
 *   pancreas DIR      512x512x134, HU -1000..1988
 *   getilt DIR        gantry tilt and uneven gaps: refused by default with the
 *                     reason, resampled on request, checked against the raw slices
 *   phantom BIN TMP   generate, read, assemble: geometry and HU as written
 *   totalseg DIR      a JPEG 2000 series whose UIDs were emptied
 *   badinput BIN TMP  empty, missing, nested, truncated and corrupted input
 * Single-threaded test executable.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "r3d/bridge.h"
#include "r3d/phantom.h"
#include "r3d/test.h"
#include "r3d/util.h"
#include "r3d/volume.h"

#define DATA_PATH_MAX 1024
#define DATA_MAX_FILES 64

static double slice_hu(const struct volume_slice *s, size_t i)
{
	double v = s->pixel == VOLUME_PIXEL_S16 ? (double)((const int16_t *)s->pixels)[i]
						 : (double)((const uint16_t *)s->pixels)[i];
	return v * s->rescale_slope + s->rescale_intercept;
}

/* ---- cornerstone ---------------------------------------------------- */

static void diff_hu(const struct volume_slice *a, const struct volume_slice *b, double *max_abs,
		    double *mean_abs)
{
	size_t n = (size_t)a->rows * a->columns;
	double m = 0, sum = 0;

	for (size_t i = 0; i < n; i++) {
		double d = fabs(slice_hu(a, i) - slice_hu(b, i));
		sum += d;
		if (d > m)
			m = d;
	}
	*max_abs = m;
	*mean_abs = sum / (double)n;
}

static int mode_cornerstone(const char *dir)
{
	char path[DATA_PATH_MAX];
	struct r3d_err err = {0};
	struct bridge_series *ref = NULL;
	const struct volume_slice *rs;
	size_t rn = 0, files = 0;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s/CTImage.dcm", dir);
	CHECK(bridge_file_load(&err, path, &ref));
	if (ref == NULL) {
		fprintf(stderr, "reference: %s\n", err.msg);
		return test_summary();
	}
	rs = bridge_series_slices(ref, &rn);
	CHECK(rn == 1 && rs[0].rows == 512 && rs[0].columns == 512);
	d = opendir(dir);
	CHECK(d != NULL);
	while (d != NULL && (e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		bool dcm = len > 4 && strcmp(e->d_name + len - 4, ".dcm") == 0;
		bool j2kr = strcmp(e->d_name, "CT1_J2KR") == 0 || strcmp(e->d_name, "CT2_J2KR") == 0;
		if (!dcm && !j2kr)
			continue;
		struct bridge_series *s = NULL;
		const struct volume_slice *ss;
		size_t sn = 0;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		files++;
		bool ok = bridge_file_load(&err, path, &s);
		CHECK(ok);
		if (!ok) {
			fprintf(stderr, "%s: %s\n", e->d_name, err.msg);
			continue;
		}
		ss = bridge_series_slices(s, &sn);
		CHECK(sn >= 1 && ss[0].rows == 512 && ss[0].columns == 512);
		const char *ts = bridge_series_transfer_syntax(s, 0);
		double mx = 0, mean = 0;
		if (!j2kr && strncmp(e->d_name, "CTImage", 7) == 0)
			diff_hu(&rs[0], &ss[0], &mx, &mean);
		printf("%-80s %-24s frames %zu max|dHU| %g mean %g\n", e->d_name, ts, sn, mx, mean);
		if (j2kr || strncmp(e->d_name, "CTImage", 7) != 0) {
			/* Other images: decoded, with plausible CT values. */
			double lo = 1e9, hi = -1e9;
			for (size_t f = 0; f < sn; f++)
				for (size_t i = 0; i < (size_t)ss[f].rows * ss[f].columns; i++) {
					double h = slice_hu(&ss[f], i);
					lo = h < lo ? h : lo;
					hi = h > hi ? h : hi;
				}
			printf("  HU range %g..%g\n", lo, hi);
			CHECK(lo >= -3100 && hi <= 4100 && hi - lo > 500);
		} else if (strcmp(ts, "1.2.840.10008.1.2.4.91") == 0) {
			CHECK(mx <= 5);
		} else if (strcmp(ts, "1.2.840.10008.1.2.4.81") == 0) {
			CHECK(mx <= 1);
		} else if (strcmp(ts, "1.2.840.10008.1.2.4.50") == 0) {
			/* 8-bit baseline of a 16-bit CT: slope 32 HU per step. */
			CHECK(mean <= 40);
		} else if (strcmp(ts, "1.2.840.10008.1.2.4.51") == 0 ||
			   strcmp(ts, "1.2.840.10008.1.2.4.53") == 0 ||
			   strcmp(ts, "1.2.840.10008.1.2.4.55") == 0) {
			/* 12-bit lossy DCT: slope 2 HU per step. */
			CHECK(mean <= 10);
		} else {
			CHECK(mx == 0);  /* every lossless syntax: identical HU */
		}
		bridge_series_free(s);
	}
	if (d != NULL)
		closedir(d);
	CHECK(files == 19);
	bridge_series_free(ref);
	return test_summary();
}

/* ---- pylibjpeg ------------------------------------------------------ */

static int mode_pylibjpeg(const char *dir)
{
	char path[DATA_PATH_MAX];
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t files = 0, decoded = 0;

	CHECK(d != NULL);
	while (d != NULL && (e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		if (len <= 4 || strcmp(e->d_name + len - 4, ".dcm") != 0)
			continue;
		struct r3d_err err = {0};
		struct bridge_series *s = NULL;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		files++;
		bool ok = bridge_file_load(&err, path, &s);
		if (ok) {
			size_t n = 0;
			const struct volume_slice *ss = bridge_series_slices(s, &n);
			double lo = 1e9, hi = -1e9;
			for (size_t i = 0; i < (size_t)ss[0].rows * ss[0].columns; i++) {
				double h = slice_hu(&ss[0], i);
				lo = h < lo ? h : lo;
				hi = h > hi ? h : hi;
			}
			printf("%-40s decoded %ux%u, %zu frame(s), HU %g..%g\n", e->d_name, ss[0].columns,
			       ss[0].rows, n, lo, hi);
			CHECK(n >= 1);
			/* Signedness mix-ups (J2K SIZ vs Pixel Representation) show as absurd HU. */
			CHECK(lo >= -3100 && hi <= 4100);
			decoded++;
		} else {
			printf("%-40s refused: %s\n", e->d_name, err.msg);
			CHECK(err.msg[0] != '\0' && err.code == R3D_EINVAL);
		}
		bridge_series_free(s);
	}
	if (d != NULL)
		closedir(d);
	CHECK(files == 7);
	/* All decode, including the 16-bit predictor-6 lossless JPEG of a buggy encoder. */
	CHECK(decoded == 7);

	/* The two Toshiba files differ only in which header says "signed"
	 * (J2K SIZ or Pixel Representation): the HU must be the same. */
	struct r3d_err err = {0};
	struct bridge_series *a = NULL, *b = NULL;
	snprintf(path, sizeof(path), "%s/TOSHIBA_J2K_SIZ0_PixRep1.dcm", dir);
	CHECK(bridge_file_load(&err, path, &a));
	snprintf(path, sizeof(path), "%s/TOSHIBA_J2K_SIZ1_PixRep0.dcm", dir);
	CHECK(bridge_file_load(&err, path, &b));
	if (a != NULL && b != NULL) {
		size_t na = 0, nb = 0;
		const struct volume_slice *sa = bridge_series_slices(a, &na);
		const struct volume_slice *sb = bridge_series_slices(b, &nb);
		double mx = 0, mean = 0;
		diff_hu(&sa[0], &sb[0], &mx, &mean);
		printf("Toshiba SIZ0/PixRep1 vs SIZ1/PixRep0: max|dHU| %g\n", mx);
		CHECK(mx == 0);
	}
	bridge_series_free(a);
	bridge_series_free(b);
	return test_summary();
}

/* ---- real series ---------------------------------------------------- */

static bool series_read(const char *dir, struct bridge_series **out, size_t expect_instances)
{
	struct r3d_err err = {0};
	struct bridge_scan *scan = NULL;
	bool ok = false;

	*out = NULL;
	CHECK(bridge_scan_dir(&err, dir, &scan));
	if (scan == NULL) {
		fprintf(stderr, "scan: %s\n", err.msg);
		return false;
	}
	CHECK(bridge_scan_count(scan) == 1);
	if (bridge_scan_count(scan) >= 1) {
		const struct bridge_series_info *in = bridge_scan_series(scan, 0);
		CHECK(in->instances == expect_instances);
		CHECK(strcmp(in->modality, "CT") == 0);
		ok = bridge_series_load(&err, scan, 0, 2, out);
		CHECK(ok);
		if (!ok)
			fprintf(stderr, "load: %s\n", err.msg);
	}
	bridge_scan_free(scan);
	return ok;
}

static int mode_pancreas(const char *dir)
{
	struct bridge_series *s = NULL;
	struct r3d_err err = {0};
	struct volume *v = NULL;
	const struct volume_slice *ss;
	size_t n = 0;

	if (!series_read(dir, &s, 134))
		return test_summary();
	ss = bridge_series_slices(s, &n);
	CHECK(n == 134);
	/* One thread reads the same slices, in the same order, as two. */
	struct bridge_scan *scan = NULL;
	struct bridge_series *s1 = NULL;
	CHECK(bridge_scan_dir(&err, dir, &scan));
	CHECK(scan != NULL && bridge_series_load(&err, scan, 0, 1, &s1));
	if (s1 != NULL) {
		size_t n1 = 0, same = 0;
		const struct volume_slice *s1s = bridge_series_slices(s1, &n1);
		for (size_t k = 0; k < n1 && n1 == n; k++)
			if (memcmp(s1s[k].position, ss[k].position, sizeof(ss[k].position)) == 0 &&
			    memcmp(s1s[k].pixels, ss[k].pixels, (size_t)ss[k].rows * ss[k].columns * 2) == 0 &&
			    strcmp(bridge_series_sop_uid(s1, k), bridge_series_sop_uid(s, k)) == 0)
				same++;
		CHECK(n1 == n && same == n);
	}
	bridge_series_free(s1);
	bridge_scan_free(scan);
	CHECK(volume_assemble(&err, ss, n, NULL, &v));
	if (v != NULL) {
		printf("pancreas: %zux%zux%zu spacing %g %g %g HU %d..%d (%s)\n", v->nx, v->ny, v->nz,
		       v->spacing[0], v->spacing[1], v->spacing[2], v->hu_min, v->hu_max, v->note);
		CHECK(v->nx == 512 && v->ny == 512 && v->nz == 134);
		CHECK(v->hu_min == -1000 && v->hu_max == 1988);
		CHECK(!v->resampled && !v->sheared);
		CHECK_NEAR(v->spacing[2], 3.0, 0.01);
		/* The first voxel is the Image Position of the most inferior slice. */
		double zmin = 1e9;
		for (size_t k = 0; k < n; k++)
			zmin = ss[k].position[2] < zmin ? ss[k].position[2] : zmin;
		CHECK_NEAR(v->affine[2][3], zmin, 1e-6);
		/* In-plane axes straight from Image Orientation and Pixel Spacing. */
		for (int i = 0; i < 3; i++) {
			CHECK_NEAR(v->affine[i][0], ss[0].orientation[i] * ss[0].pixel_spacing[1], 1e-9);
			CHECK_NEAR(v->affine[i][1], ss[0].orientation[3 + i] * ss[0].pixel_spacing[0], 1e-9);
		}
		CHECK_NEAR(v->affine[0][3], ss[0].position[0], 1e-6);
		CHECK_NEAR(v->affine[1][3], ss[0].position[1], 1e-6);
		/* Voxel (100, 200, k) is stored value + intercept of the slice at that z. */
		for (size_t k = 0; k < n; k += 33) {
			const struct volume_slice *sl = NULL;
			for (size_t q = 0; q < n; q++)
				if (fabs(ss[q].position[2] - (zmin + 3.0 * (double)k)) < 0.01)
					sl = &ss[q];
			CHECK(sl != NULL);
			if (sl != NULL)
				CHECK(v->hu[100 + 512 * (200 + 512 * k)] == (int)lrint(slice_hu(sl, 200 * 512 + 100)));
		}
	} else {
		fprintf(stderr, "assemble: %s\n", err.msg);
	}
	volume_destroy(v);
	bridge_series_free(s);
	return test_summary();
}

/* Tissue "mass" (weight HU + 1000, air and padding 0) is linear in HU, so
 * linear interpolation between slices preserves its integral. */
static double mass_weight(double hu)
{
	return hu < -1000.0 ? 0.0 : hu + 1000.0;
}

/* Tissue mass centroid from the raw tilted slices:
 * every raw pixel is a point at its own Image Position + in-plane offset,
 * standing for the slab halfway to its neighbours along the normal (the
 * trapezoid rule that linear interpolation between slices integrates). */
static void raw_centroid(const struct volume_slice *ss, size_t n, double c[3], double *mass)
{
	const double *o = ss[0].orientation;
	double nrm[3] = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5],
			 o[0] * o[4] - o[1] * o[3]};
	double w[DATA_MAX_FILES];
	size_t idx[DATA_MAX_FILES];
	double m = 0, acc[3] = {0, 0, 0};

	for (size_t k = 0; k < n; k++) {
		idx[k] = k;
		w[k] = ss[k].position[0] * nrm[0] + ss[k].position[1] * nrm[1] +
		       ss[k].position[2] * nrm[2];
	}
	for (size_t a = 0; a < n; a++)  /* insertion sort by w */
		for (size_t b = a; b > 0 && w[idx[b]] < w[idx[b - 1]]; b--) {
			size_t t = idx[b];
			idx[b] = idx[b - 1];
			idx[b - 1] = t;
		}
	for (size_t q = 0; q < n; q++) {
		const struct volume_slice *s = &ss[idx[q]];
		double lo = q > 0 ? w[idx[q - 1]] : w[idx[q]];
		double hi = q + 1 < n ? w[idx[q + 1]] : w[idx[q]];
		double thick = 0.5 * (hi - lo);
		for (uint32_t y = 0; y < s->rows; y++)
			for (uint32_t x = 0; x < s->columns; x++) {
				double h = mass_weight(slice_hu(s, (size_t)y * s->columns + x));
				if (h <= 0)
					continue;
				double wt = h * thick;
				for (int i = 0; i < 3; i++)
					acc[i] += wt * (s->position[i] + x * s->pixel_spacing[1] * o[i] +
							y * s->pixel_spacing[0] * o[3 + i]);
				m += wt;
			}
	}
	for (int i = 0; i < 3; i++)
		c[i] = acc[i] / m;
	*mass = m;
}

static void volume_centroid(const struct volume *v, double c[3], double *mass)
{
	double m = 0, acc[3] = {0, 0, 0};

	for (size_t k = 0; k < v->nz; k++)
		for (size_t j = 0; j < v->ny; j++)
			for (size_t i = 0; i < v->nx; i++) {
				double h = mass_weight(v->hu[i + v->nx * (j + v->ny * k)]), p[3];
				if (h <= 0)
					continue;
				volume_index_to_patient(v, (double)i, (double)j, (double)k, p);
				for (int a = 0; a < 3; a++)
					acc[a] += h * p[a];
				m += h;
			}
	for (int a = 0; a < 3; a++)
		c[a] = acc[a] / m;
	*mass = m * v->spacing[2];
}

static int mode_getilt(const char *dir)
{
	struct bridge_series *s = NULL;
	struct r3d_err err = {0};
	struct volume *v = NULL;
	struct volume_options opt;
	const struct volume_slice *ss;
	size_t n = 0;
	double lo = 1e9, hi = -1e9;

	if (!series_read(dir, &s, 28))
		return test_summary();
	ss = bridge_series_slices(s, &n);
	CHECK(n == 28 && n <= DATA_MAX_FILES);
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < (size_t)ss[k].rows * ss[k].columns; i++) {
			double h = slice_hu(&ss[k], i);
			lo = h < lo ? h : lo;
			hi = h > hi ? h : hi;
		}
	printf("ge-head-tilt raw HU %g..%g\n", lo, hi);
	CHECK(lo == -1500 && hi == 2121);

	/* Default: the 7.38 mm gaps are over 1.5x the median: refused, with the reason. */
	bool ok = volume_assemble(&err, ss, n, NULL, &v);
	printf("default: %s\n", ok ? v->note : err.msg);
	CHECK(!ok && strstr(err.msg, "gap of") != NULL);
	volume_destroy(v);
	v = NULL;

	/* Asked to interpolate: resampled onto an orthogonal grid (two threads). */
	volume_options_default(&opt);
	opt.interpolate_gaps = true;
	opt.threads = 2;
	CHECK(volume_assemble(&err, ss, n, &opt, &v));
	if (v == NULL) {
		fprintf(stderr, "interpolate: %s\n", err.msg);
		goto out;
	}
	printf("interpolated: %zux%zux%zu spacing %g %g %g (%s)\n", v->nx, v->ny, v->nz,
	       v->spacing[0], v->spacing[1], v->spacing[2], v->note);
	CHECK(v->resampled);
	/* Orthogonal axes, k along the slice normal. */
	const double *o = ss[0].orientation;
	double nrm[3] = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5],
			 o[0] * o[4] - o[1] * o[3]};
	for (int i = 0; i < 3; i++)
		CHECK_NEAR(v->affine[i][2] / v->spacing[2], nrm[i], 1e-6);
	/* Normal extent of the grid equals that of the raw positions. */
	double wmin = 1e9, wmax = -1e9;
	for (size_t k = 0; k < n; k++) {
		double w = ss[k].position[0] * nrm[0] + ss[k].position[1] * nrm[1] +
			   ss[k].position[2] * nrm[2];
		wmin = w < wmin ? w : wmin;
		wmax = w > wmax ? w : wmax;
	}
	CHECK_NEAR((double)(v->nz - 1) * v->spacing[2], wmax - wmin, v->spacing[2]);
	double o0[3], k0 = v->affine[0][3] * nrm[0] + v->affine[1][3] * nrm[1] +
			   v->affine[2][3] * nrm[2];
	(void)o0;
	CHECK_NEAR(k0, wmin, 1e-6);
	/* The head lies where the raw positions put it: a wrong shear would move
	 * the centroid by several millimetres (sin 18.5 deg per mm along the normal). */
	double cr[3], cv[3], mr, mv;
	raw_centroid(ss, n, cr, &mr);
	volume_centroid(v, cv, &mv);
	printf("tissue centroid raw %.2f %.2f %.2f, volume %.2f %.2f %.2f; mass ratio %.4f\n", cr[0],
	       cr[1], cr[2], cv[0], cv[1], cv[2], mv / mr);
	for (int i = 0; i < 3; i++)
		CHECK_NEAR(cv[i], cr[i], 1.0);
	CHECK_NEAR(mv / mr, 1.0, 0.03);
out:
	volume_destroy(v);
	bridge_series_free(s);
	return test_summary();
}

/* ---- phantoms ------------------------------------------------------- */

static bool run(const char *cmd)
{
	int st = system(cmd);

	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

struct phantom_case {
	const char *name;
	const char *args;
	enum phantom_geometry geometry;
	bool is_signed;
	double uneven;  /* as --uneven: resampled, so no voxel-exact comparison */
};

/* Partial-volume estimate of a sphere's volume and centroid in the volume:
 * fraction = (HU - background) / (inside - background) near the sphere. */
static void sphere_measure(const struct volume *v, const struct phantom_shape *sp, double bg,
			   double *vol_mm3, double c[3])
{
	double m = 0, acc[3] = {0, 0, 0};
	double det = fabs(v->affine[0][0] * (v->affine[1][1] * v->affine[2][2] -
					     v->affine[1][2] * v->affine[2][1]) -
			  v->affine[0][1] * (v->affine[1][0] * v->affine[2][2] -
					     v->affine[1][2] * v->affine[2][0]) +
			  v->affine[0][2] * (v->affine[1][0] * v->affine[2][1] -
					     v->affine[1][1] * v->affine[2][0]));
	double reach = 1.4 * sp->radii[0];

	for (size_t k = 0; k < v->nz; k++)
		for (size_t j = 0; j < v->ny; j++)
			for (size_t i = 0; i < v->nx; i++) {
				double p[3];
				volume_index_to_patient(v, (double)i, (double)j, (double)k, p);
				double d2 = 0;
				for (int a = 0; a < 3; a++)
					d2 += (p[a] - sp->center[a]) * (p[a] - sp->center[a]);
				if (d2 > reach * reach)
					continue;
				double f = (v->hu[i + v->nx * (j + v->ny * k)] - bg) / (sp->hu - bg);
				f = f < 0 ? 0 : f > 1 ? 1 : f;
				for (int a = 0; a < 3; a++)
					acc[a] += f * p[a];
				m += f;
			}
	*vol_mm3 = m * det;
	for (int a = 0; a < 3; a++)
		c[a] = acc[a] / m;
}

static void phantom_case_run(const char *bin, const char *tmp, const struct phantom_case *pc)
{
	char dir[DATA_PATH_MAX], cmd[3 * DATA_PATH_MAX];
	struct r3d_err err = {0};
	struct bridge_scan *scan = NULL;
	struct bridge_series *s = NULL;
	struct volume *v = NULL, *vs = NULL;
	struct phantom ph;
	struct phantom_request req;
	struct volume_options opt;
	const struct volume_slice *ss;
	int16_t *hu = NULL;
	size_t n = 0;

	printf("phantom %s: %s\n", pc->name, pc->args);
	snprintf(dir, sizeof(dir), "%s/%s", tmp, pc->name);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && '%s' --out '%s' --threads 2 %s", dir, bin, dir,
		 pc->args);
	CHECK(run(cmd));
	CHECK(bridge_scan_dir(&err, dir, &scan));
	if (scan == NULL)
		goto out;
	CHECK(bridge_scan_count(scan) == 1);
	CHECK(bridge_scan_skipped(scan) == 1);  /* truth.json */
	CHECK(bridge_series_load(&err, scan, 0, 2, &s));
	if (s == NULL) {
		fprintf(stderr, "load: %s\n", err.msg);
		goto out;
	}
	ss = bridge_series_slices(s, &n);
	/* The same scene, rebuilt from the same request, is the truth. */
	memset(&req, 0, sizeof(req));
	req.columns = ss[0].columns;
	req.rows = ss[0].rows;
	req.slices = (uint32_t)n;
	req.spacing[0] = ss[0].pixel_spacing[1];
	req.spacing[1] = ss[0].pixel_spacing[0];
	req.spacing[2] = 2.0;
	req.geometry = pc->geometry;
	req.angle_deg = pc->geometry == PHANTOM_AXIAL ? 0.0 : 20.0;
	req.center[0] = 12.5;
	req.center[1] = -20.0;
	req.center[2] = 35.0;
	req.uneven = pc->uneven;
	CHECK(phantom_init(&err, &ph, &req));
	hu = malloc((size_t)req.rows * req.columns * sizeof(*hu));
	CHECK(hu != NULL);
	if (hu == NULL)
		goto out;

	if (pc->uneven > 0)
		goto resampled;
	volume_options_default(&opt);
	opt.keep_shear = true;  /* the slices as written, whatever the tilt */
	CHECK(volume_assemble(&err, ss, n, &opt, &vs));
	if (vs == NULL) {
		fprintf(stderr, "assemble: %s\n", err.msg);
		goto out;
	}
	CHECK(vs->nx == req.columns && vs->ny == req.rows && vs->nz == req.slices);
	CHECK(!vs->resampled);
	CHECK(vs->sheared == (pc->geometry == PHANTOM_TILT));
	for (int i = 0; i < 3; i++) {
		CHECK_NEAR(vs->affine[i][0], req.spacing[0] * ph.row_dir[i], 1e-6);
		CHECK_NEAR(vs->affine[i][1], req.spacing[1] * ph.col_dir[i], 1e-6);
		CHECK_NEAR(vs->affine[i][2], ph.step[i], 1e-6);
		CHECK_NEAR(vs->affine[i][3], ph.origin[i], 1e-5);
	}
	size_t mismatches = 0, plane = (size_t)req.rows * req.columns;
	for (uint32_t k = 0; k < req.slices; k++) {
		phantom_render_slice(&ph, k, hu);
		for (size_t i = 0; i < plane; i++)
			if (vs->hu[k * plane + i] != hu[i])
				mismatches++;
	}
	printf("  %zu voxels differ from the rendered scene\n", mismatches);
	CHECK(mismatches == 0);

	/* Default assembly: tilted stacks are resampled to an orthogonal grid. */
resampled:
	CHECK(volume_assemble(&err, ss, n, NULL, &v));
	if (v == NULL) {
		fprintf(stderr, "assemble: %s\n", err.msg);
		goto out;
	}
	CHECK(v->resampled == (pc->geometry == PHANTOM_TILT || pc->uneven > 0));
	printf("  %s\n", v->note);
	for (size_t si = 0; si < ph.nshapes; si++) {
		const struct phantom_shape *sp = &ph.shapes[si];
		if (strcmp(sp->name, "bone_sphere") != 0)
			continue;
		double tv, tc[3], mv, mc[3];
		phantom_shape_truth(&ph, si, &tv, tc);
		sphere_measure(v, sp, PHANTOM_HU_BODY, &mv, mc);
		printf("  bone sphere: volume %.1f mm3 (truth %.1f), centroid %.2f %.2f %.2f "
		       "(truth %.2f %.2f %.2f)\n", mv, tv, mc[0], mc[1], mc[2], tc[0], tc[1], tc[2]);
		CHECK_NEAR(mv / tv, 1.0, 0.02);
		for (int a = 0; a < 3; a++)
			CHECK_NEAR(mc[a], tc[a], 0.3);
	}
out:
	free(hu);
	volume_destroy(v);
	volume_destroy(vs);
	bridge_series_free(s);
	bridge_scan_free(scan);
}

static int mode_phantom(const char *bin, const char *tmp)
{
	static const struct phantom_case cases[] = {
		{"axial_j2k", "--size 96 --slices 48 --spacing 1.1,1.3,2 --ts j2k", PHANTOM_AXIAL, false, 0},
		{"axial_signed_big", "--size 64 --slices 40 --spacing 1.1,1.3,2 --ts big --signed "
		 "--angle 0", PHANTOM_AXIAL, true, 0},
		{"axial_deflate", "--size 64 --slices 40 --spacing 1.1,1.3,2 --ts deflate",
		 PHANTOM_AXIAL, false, 0},
		{"axial_implicit", "--size 64 --slices 40 --spacing 1.1,1.3,2 --ts implicit",
		 PHANTOM_AXIAL, false, 0},
		{"oblique_rle", "--size 96 --slices 48 --spacing 1.1,1.3,2 --ts rle --geometry oblique "
		 "--angle 20", PHANTOM_OBLIQUE, false, 0},
		{"oblique_jpegll", "--size 64 --slices 40 --spacing 1.1,1.3,2 --ts jpegll "
		 "--geometry oblique --angle 20", PHANTOM_OBLIQUE, false, 0},
		{"tilt_jpegls", "--size 96 --slices 48 --spacing 1.1,1.3,2 --ts jpegls --geometry tilt "
		 "--angle 20", PHANTOM_TILT, false, 0},
		{"tilt_explicit", "--size 96 --slices 48 --spacing 1.1,1.3,2 --geometry tilt "
		 "--angle 20 --signed", PHANTOM_TILT, true, 0},
		/* Uneven slice gaps (1.3 and 0.7 steps): resampled along the normal. */
		{"uneven_axial", "--size 96 --slices 48 --spacing 1.1,1.3,2 --uneven 0.3",
		 PHANTOM_AXIAL, false, 0.3},
		{"uneven_tilt", "--size 96 --slices 48 --spacing 1.1,1.3,2 --uneven 0.3 --ts j2k "
		 "--geometry tilt --angle 20", PHANTOM_TILT, false, 0.3},
		/* Enhanced CT: one multi-frame file, geometry from the functional groups. */
		{"enhanced_rle_axial", "--size 64 --slices 40 --spacing 1.1,1.3,2 --ts rle --enhanced",
		 PHANTOM_AXIAL, false, 0},
		{"enhanced_j2k_tilt", "--size 96 --slices 48 --spacing 1.1,1.3,2 --ts j2k --enhanced "
		 "--geometry tilt --angle 20", PHANTOM_TILT, false, 0},
		{"enhanced_explicit_oblique", "--size 64 --slices 40 --spacing 1.1,1.3,2 --enhanced "
		 "--geometry oblique --angle 20 --signed", PHANTOM_OBLIQUE, true, 0},
	};
	char dir[DATA_PATH_MAX], cmd[3 * DATA_PATH_MAX];
	struct r3d_err err = {0};
	struct bridge_scan *scan = NULL;
	struct bridge_series *s = NULL;
	struct volume *v = NULL;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		phantom_case_run(bin, tmp, &cases[i]);

	/* A missing slice is a gap, refused with the reason. */
	snprintf(dir, sizeof(dir), "%s/gap", tmp);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && '%s' --out '%s' --size 32 --slices 12 --skip 5",
		 dir, bin, dir);
	CHECK(run(cmd));
	CHECK(bridge_scan_dir(&err, dir, &scan));
	if (scan != NULL && bridge_series_load(&err, scan, 0, 2, &s)) {
		size_t n = 0;
		const struct volume_slice *ss = bridge_series_slices(s, &n);
		CHECK(n == 11);
		CHECK(!volume_assemble(&err, ss, n, NULL, &v));
		printf("gap: %s\n", err.msg);
		CHECK(strstr(err.msg, "gap of 3.000 mm") != NULL);
	}
	volume_destroy(v);
	bridge_series_free(s);
	bridge_scan_free(scan);

	/* Bad options are refused with a message and a non-zero status. */
	snprintf(cmd, sizeof(cmd), "'%s' --out '%s/bad' --ts jpeg2001 2>/dev/null", bin, tmp);
	CHECK(!run(cmd));
	snprintf(cmd, sizeof(cmd), "'%s' --out '%s/bad' --size 5 2>/dev/null", bin, tmp);
	CHECK(!run(cmd));
	return test_summary();
}

/* ---- TotalSegmentator example: J2K, emptied UIDs ----------------------- */

static int mode_totalseg(const char *dir)
{
	struct r3d_err err = {0};
	struct bridge_scan *scan = NULL;
	struct bridge_series *s = NULL;
	struct volume *v = NULL;
	size_t n = 0;

	CHECK(bridge_scan_dir(&err, dir, &scan));
	if (scan == NULL)
		return test_summary();
	CHECK(bridge_scan_count(scan) == 1);
	if (bridge_scan_count(scan) == 1) {
		const struct bridge_series_info *in = bridge_scan_series(scan, 0);
		CHECK(in->series_uid[0] == '\0');  /* emptied by de-identification */
		CHECK(in->instances == 20);
		CHECK(bridge_series_load(&err, scan, 0, 2, &s));
	}
	if (s != NULL) {
		const struct volume_slice *ss = bridge_series_slices(s, &n);
		CHECK(n == 20);
		CHECK(volume_assemble(&err, ss, n, NULL, &v));
		if (v != NULL) {
			printf("totalseg: %zux%zux%zu spacing %g %g %g HU %d..%d (%s)\n", v->nx, v->ny,
			       v->nz, v->spacing[0], v->spacing[1], v->spacing[2], v->hu_min, v->hu_max,
			       v->note);
			CHECK(v->nx == 512 && v->ny == 512 && v->nz == 20);
			CHECK(v->hu_min >= -1100 && v->hu_max > 1000);
		} else {
			fprintf(stderr, "%s\n", err.msg);
		}
	}
	volume_destroy(v);
	bridge_series_free(s);
	bridge_scan_free(scan);
	return test_summary();
}

/* ---- bad input ------------------------------------------------------ */

/* Loads series 0 of dir: returns 1 when it loaded, 0 when refused with a
 * message (printed), -1 when the scan failed. */
static int load_outcome(const char *dir, size_t *nslices)
{
	struct r3d_err err = {0};
	struct bridge_scan *scan = NULL;
	struct bridge_series *s = NULL;
	int r = -1;

	*nslices = 0;
	if (!bridge_scan_dir(&err, dir, &scan) || bridge_scan_count(scan) == 0)
		goto out;
	if (bridge_series_load(&err, scan, 0, 2, &s)) {
		bridge_series_slices(s, nslices);
		r = 1;
	} else {
		printf("  refused: %s\n", err.msg);
		CHECK(err.msg[0] != '\0');
		r = 0;
	}
out:
	bridge_series_free(s);
	bridge_scan_free(scan);
	return r;
}

static int mode_badinput(const char *bin, const char *tmp)
{
	char dir[DATA_PATH_MAX], cmd[8 * DATA_PATH_MAX];
	struct r3d_err err = {0};
	struct bridge_scan *scan = NULL;
	size_t n = 0;

	/* Empty folder: no series; missing folder: an error with the reason. */
	snprintf(dir, sizeof(dir), "%s/empty", tmp);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", dir, dir);
	CHECK(run(cmd));
	CHECK(bridge_scan_dir(&err, dir, &scan));
	CHECK(scan != NULL && bridge_scan_count(scan) == 0);
	bridge_scan_free(scan);
	scan = NULL;
	snprintf(dir, sizeof(dir), "%s/does-not-exist", tmp);
	CHECK(!bridge_scan_dir(&err, dir, &scan) && strstr(err.msg, "not a readable folder"));

	/* Two series in nested folders plus junk: grouped, largest first. */
	snprintf(dir, sizeof(dir), "%s/two", tmp);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && '%s' --out '%s/a' --size 32 --slices 12 --ts rle "
		 "&& '%s' --out '%s/b/deeper' --size 32 --slices 5 --ts j2k && "
		 "echo 'not dicom' > '%s/junk.dcm'", dir, bin, dir, bin, dir, dir);
	CHECK(run(cmd));
	CHECK(bridge_scan_dir(&err, dir, &scan));
	if (scan != NULL) {
		CHECK(bridge_scan_count(scan) == 2);
		CHECK(bridge_scan_skipped(scan) == 3);  /* two truth.json and the junk */
		if (bridge_scan_count(scan) == 2) {
			CHECK(bridge_scan_series(scan, 0)->instances == 12);
			CHECK(bridge_scan_series(scan, 1)->instances == 5);
			CHECK(strcmp(bridge_scan_series(scan, 0)->series_uid,
				     bridge_scan_series(scan, 1)->series_uid) != 0);
		}
		bridge_scan_free(scan);
		scan = NULL;
	}

	/* A truncated file: refused, naming the file. */
	snprintf(dir, sizeof(dir), "%s/truncated", tmp);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && '%s' --out '%s' --size 64 --slices 6 && "
		 "truncate -s 5000 '%s/slice_0003.dcm'", dir, bin, dir, dir);
	CHECK(run(cmd));
	printf("truncated:\n");
	CHECK(load_outcome(dir, &n) == 0);

	/* Corrupted compressed data: refused or decoded, never a crash. */
	static const char *const syntaxes[] = {"j2k", "rle", "jpegls", "jpegll", "deflate"};
	for (size_t t = 0; t < sizeof(syntaxes) / sizeof(syntaxes[0]); t++) {
		for (int variant = 0; variant < 3; variant++) {
			static const char *const damage[] = {
				/* garbage over the middle of the file */
				"head -c 600 /dev/urandom | dd of=\"$f\" bs=1 seek=$((s * 2 / 3)) "
				"conv=notrunc 2>/dev/null",
				/* cut short */
				"truncate -s $((s - 40)) \"$f\"",
				/* garbage inside the last fragment, the file structure intact */
				"head -c 200 /dev/urandom | dd of=\"$f\" bs=1 seek=$((s - 300)) "
				"conv=notrunc 2>/dev/null",
			};
			snprintf(dir, sizeof(dir), "%s/corrupt_%s_%d", tmp, syntaxes[t], variant);
			snprintf(cmd, sizeof(cmd), "rm -rf '%s' && '%s' --out '%s' --size 128 --slices 3 "
				 "--ts %s && f='%s/slice_0002.dcm' && s=$(stat -c %%s \"$f\") && %s", dir,
				 bin, dir, syntaxes[t], dir, damage[variant]);
			CHECK(run(cmd));
			int r = load_outcome(dir, &n);
			printf("corrupt %s variant %d: %s\n", syntaxes[t], variant,
			       r == 1 ? "decoded" : r == 0 ? "refused" : "not scanned");
			CHECK(r == 0 || r == 1);
		}
	}

	/* One slice: read, then refused by the volume stage. */
	snprintf(dir, sizeof(dir), "%s/one", tmp);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && '%s' --out '%s' --size 32 --slices 2 --skip 1",
		 dir, bin, dir);
	CHECK(run(cmd));
	CHECK(bridge_scan_dir(&err, dir, &scan));
	if (scan != NULL) {
		struct bridge_series *s = NULL;
		struct volume *v = NULL;
		if (bridge_series_load(&err, scan, 0, 1, &s)) {
			const struct volume_slice *ss = bridge_series_slices(s, &n);
			CHECK(n == 1);
			CHECK(!volume_assemble(&err, ss, n, NULL, &v));
			CHECK(strstr(err.msg, "at least 2 slices") != NULL);
		} else {
			CHECK(false);
		}
		volume_destroy(v);
		bridge_series_free(s);
		bridge_scan_free(scan);
	}
	return test_summary();
}

/* Not a test: times scanning, reading and assembling the largest series. */
static int mode_load(const char *dir)
{
	struct r3d_err err = {0};
	struct bridge_scan *scan = NULL;
	struct bridge_series *s = NULL;
	struct volume *v = NULL;
	struct volume_options opt;
	const struct volume_slice *ss;
	size_t n = 0;
	int status = 1;
	double t0 = clock_mono_s(), t1, t2, t3;

	if (!bridge_scan_dir(&err, dir, &scan) || bridge_scan_count(scan) == 0)
		goto out;
	t1 = clock_mono_s();
	if (!bridge_series_load(&err, scan, 0, 2, &s))
		goto out;
	t2 = clock_mono_s();
	ss = bridge_series_slices(s, &n);
	volume_options_default(&opt);
	opt.threads = 2;
	if (!volume_assemble(&err, ss, n, &opt, &v))
		goto out;
	t3 = clock_mono_s();
	printf("%zu slices: scan %.3f s, read+decode %.3f s, assemble %.3f s; %zux%zux%zu (%s)\n", n,
	       t1 - t0, t2 - t1, t3 - t2, v->nx, v->ny, v->nz, v->note);
	status = 0;
out:
	if (status != 0)
		fprintf(stderr, "%s\n", err.msg);
	volume_destroy(v);
	bridge_series_free(s);
	bridge_scan_free(scan);
	return status;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "load") == 0)
		return mode_load(argv[2]);
	if (argc == 3 && strcmp(argv[1], "cornerstone") == 0)
		return mode_cornerstone(argv[2]);
	if (argc == 3 && strcmp(argv[1], "pylibjpeg") == 0)
		return mode_pylibjpeg(argv[2]);
	if (argc == 3 && strcmp(argv[1], "pancreas") == 0)
		return mode_pancreas(argv[2]);
	if (argc == 3 && strcmp(argv[1], "getilt") == 0)
		return mode_getilt(argv[2]);
	if (argc == 4 && strcmp(argv[1], "phantom") == 0)
		return mode_phantom(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "totalseg") == 0)
		return mode_totalseg(argv[2]);
	if (argc == 4 && strcmp(argv[1], "badinput") == 0)
		return mode_badinput(argv[2], argv[3]);
	fprintf(stderr, "usage: test_volume_data cornerstone|pylibjpeg|pancreas|getilt|totalseg|load DIR\n"
			"       test_volume_data phantom|badinput PHANTOM_BIN TMP_DIR\n");
	return 2;
}
