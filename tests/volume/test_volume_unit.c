/*
 * test_volume_unit.c: unit tests of volume assembly on synthetic slice
 * headers (no DICOM): sorting, HU conversion, affine, refusals, oblique and
 * tilted geometry, uneven spacing and gaps. Single-threaded test executable.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/test.h"
#include "r3d/volume.h"

#define T_COLS 12
#define T_ROWS 10
#define T_MAX 16

struct stack {
	size_t n;
	struct volume_slice s[T_MAX];
	uint16_t px[T_MAX][T_ROWS * T_COLS];
};

/* A linear field of patient position, so that any (bi/tri)linear resampling
 * must reproduce it exactly away from the borders. */
static double field(const double p[3])
{
	return 100.0 + 2.0 * p[0] - 3.0 * p[1] + 5.0 * p[2];
}

static void stack_make(struct stack *st, size_t n, const double row[3], const double col[3],
		       const double step[3], const double *offsets)
{
	memset(st, 0, sizeof(*st));
	st->n = n;
	for (size_t k = 0; k < n; k++) {
		struct volume_slice *s = &st->s[k];
		double along = offsets != NULL ? offsets[k] : (double)k;
		s->rows = T_ROWS;
		s->columns = T_COLS;
		for (int i = 0; i < 3; i++) {
			s->orientation[i] = row[i];
			s->orientation[3 + i] = col[i];
			s->position[i] = 10.0 * (double)(i + 1) + along * step[i];
		}
		s->pixel_spacing[0] = 0.5; /* between rows */
		s->pixel_spacing[1] = 0.7; /* between columns */
		s->rescale_slope = 1.0;
		s->rescale_intercept = -1024.0;
		s->pixel = VOLUME_PIXEL_U16;
		s->pixels = st->px[k];
		s->instance_number = (long)k + 1;
		for (uint32_t y = 0; y < T_ROWS; y++) {
			for (uint32_t x = 0; x < T_COLS; x++) {
				double p[3];
				for (int i = 0; i < 3; i++)
					p[i] = s->position[i] + x * 0.7 * row[i] + y * 0.5 * col[i];
				st->px[k][y * T_COLS + x] = (uint16_t)lrint(field(p) + 1024.0);
			}
		}
	}
}

static const double ax_row[3] = {1, 0, 0}, ax_col[3] = {0, 1, 0}, ax_step[3] = {0, 0, 2.0};

/* Largest |volume - field| over voxels whose patient point lies inside every
 * slice's extent (so no padding is involved). */
static double field_error(const struct volume *v, size_t margin)
{
	double worst = 0;

	for (size_t k = 0; k < v->nz; k++)
		for (size_t j = margin; j + margin < v->ny; j++)
			for (size_t i = margin; i + margin < v->nx; i++) {
				double p[3];
				volume_index_to_patient(v, (double)i, (double)j, (double)k, p);
				double e = fabs(v->hu[i + v->nx * (j + v->ny * k)] - field(p));
				if (e > worst)
					worst = e;
			}
	return worst;
}

static void test_sorted_axial(void)
{
	static struct stack st, sh;
	struct r3d_err err = {0};
	struct volume *v = NULL;

	stack_make(&st, 5, ax_row, ax_col, ax_step, NULL);
	/* Shuffle: 3 1 4 0 2 */
	size_t order[5] = {3, 1, 4, 0, 2};
	sh = st;
	for (size_t k = 0; k < 5; k++) {
		sh.s[k] = st.s[order[k]];
	}
	/* One slice with its own slope and intercept. */
	for (size_t i = 0; i < T_ROWS * T_COLS; i++)
		st.px[order[2]][i] = (uint16_t)((st.px[order[2]][i] - 24) / 2);
	sh.s[2].rescale_slope = 2.0;
	sh.s[2].rescale_intercept = -1000.0;
	CHECK(volume_assemble(&err, sh.s, sh.n, NULL, &v));
	if (v == NULL) {
		fprintf(stderr, "%s\n", err.msg);
		return;
	}
	CHECK(v->nx == T_COLS && v->ny == T_ROWS && v->nz == 5);
	CHECK(!v->resampled && !v->sheared);
	CHECK_NEAR(v->spacing[0], 0.7, 1e-9);
	CHECK_NEAR(v->spacing[1], 0.5, 1e-9);
	CHECK_NEAR(v->spacing[2], 2.0, 1e-9);
	CHECK_NEAR(v->affine[0][3], 10.0, 1e-9);
	CHECK_NEAR(v->affine[2][3], 30.0, 1e-9);
	CHECK_NEAR(v->affine[2][2], 2.0, 1e-9);
	CHECK(field_error(v, 0) <= 1.5);  /* stored rounding plus the halved slice's lost unit */
	volume_destroy(v);
}

static void expect_refusal(const struct volume_slice *s, size_t n, const char *word)
{
	struct r3d_err err = {0};
	struct volume *v = NULL;

	CHECK(!volume_assemble(&err, s, n, NULL, &v));
	CHECK(v == NULL);
	CHECK(err.code == R3D_EINVAL);
	CHECK(strstr(err.msg, word) != NULL);
	if (strstr(err.msg, word) == NULL)
		fprintf(stderr, "  expected '%s' in: %s\n", word, err.msg);
	volume_destroy(v);
}

static void test_refusals(void)
{
	static struct stack st;

	stack_make(&st, 6, ax_row, ax_col, ax_step, NULL);
	expect_refusal(st.s, 1, "at least 2 slices");
	expect_refusal(st.s, 0, "at least 2 slices");

	stack_make(&st, 6, ax_row, ax_col, ax_step, NULL);
	st.s[3].rows = T_ROWS - 1;
	expect_refusal(st.s, st.n, "mixed slice sizes");

	stack_make(&st, 6, ax_row, ax_col, ax_step, NULL);
	st.s[4].orientation[1] = 0.1;
	st.s[4].orientation[0] = sqrt(1 - 0.01);
	expect_refusal(st.s, st.n, "mixed orientations");

	stack_make(&st, 6, ax_row, ax_col, ax_step, NULL);
	memcpy(st.s[4].position, st.s[2].position, sizeof(st.s[2].position));
	expect_refusal(st.s, st.n, "duplicate position");

	stack_make(&st, 6, ax_row, ax_col, ax_step, NULL);
	st.s[5].pixel_spacing[0] = 0.6;
	expect_refusal(st.s, st.n, "mixed pixel spacing");

	/* A missing slice: offsets 0 1 2 4 5 6 -> gap of 2x the median. */
	double offs[6] = {0, 1, 2, 4, 5, 6};
	stack_make(&st, 6, ax_row, ax_col, ax_step, offs);
	expect_refusal(st.s, st.n, "gap of 4.000 mm");

	/* 1.4x the median is not a gap. */
	double offs2[6] = {0, 1, 2, 3.4, 4.4, 5.4};
	struct r3d_err err = {0};
	struct volume *v = NULL;
	stack_make(&st, 6, ax_row, ax_col, ax_step, offs2);
	CHECK(volume_assemble(&err, st.s, st.n, NULL, &v));
	CHECK(v != NULL && v->resampled);
	volume_destroy(v);
}

static void test_gap_interpolated(void)
{
	static struct stack st;
	double offs[6] = {0, 1, 2, 4, 5, 6};
	struct volume_options opt;
	struct r3d_err err = {0};
	struct volume *v = NULL;

	stack_make(&st, 6, ax_row, ax_col, ax_step, offs);
	volume_options_default(&opt);
	opt.interpolate_gaps = true;
	CHECK(volume_assemble(&err, st.s, st.n, &opt, &v));
	if (v == NULL)
		return;
	CHECK(v->resampled);
	CHECK(v->nz == 7);
	CHECK_NEAR(v->spacing[2], 2.0, 1e-9);
	CHECK(field_error(v, 0) <= 0.51);
	CHECK(strstr(v->note, "gap") != NULL);
	volume_destroy(v);
}

static void test_uneven(void)
{
	static struct stack st;
	double offs[7] = {0, 1, 2.2, 3, 4.1, 5, 6};
	struct r3d_err err = {0};
	struct volume *v = NULL;

	stack_make(&st, 7, ax_row, ax_col, ax_step, offs);
	CHECK(volume_assemble(&err, st.s, st.n, NULL, &v));
	if (v == NULL)
		return;
	CHECK(v->resampled && !v->sheared);
	CHECK(v->nx == T_COLS && v->ny == T_ROWS);
	CHECK(v->nz == 7);
	CHECK_NEAR(v->spacing[2], 2.0, 1e-9);
	CHECK(field_error(v, 0) <= 0.51);
	volume_destroy(v);
}

static void test_oblique(void)
{
	static struct stack st;
	double c = cos(0.3), s = sin(0.3);
	/* Rotated about S by 0.3 rad, then tilted columns: still orthonormal. */
	double row[3] = {c, s, 0};
	double col[3] = {-s * cos(0.2), c * cos(0.2), sin(0.2)};
	double n[3] = {row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2],
		       row[0] * col[1] - row[1] * col[0]};
	double step[3] = {1.5 * n[0], 1.5 * n[1], 1.5 * n[2]};
	struct r3d_err err = {0};
	struct volume *v = NULL;

	stack_make(&st, 6, row, col, step, NULL);
	/* Reverse the order: sorting must use the normal, not the file order. */
	for (size_t k = 0; k < 3; k++) {
		struct volume_slice t = st.s[k];
		st.s[k] = st.s[5 - k];
		st.s[5 - k] = t;
	}
	CHECK(volume_assemble(&err, st.s, st.n, NULL, &v));
	if (v == NULL)
		return;
	CHECK(!v->resampled && !v->sheared);
	for (int i = 0; i < 3; i++) {
		CHECK_NEAR(v->affine[i][0], 0.7 * row[i], 1e-9);
		CHECK_NEAR(v->affine[i][1], 0.5 * col[i], 1e-9);
		CHECK_NEAR(v->affine[i][2], step[i], 1e-9);
	}
	CHECK(field_error(v, 0) <= 0.51);
	volume_destroy(v);
}

static void test_tilt(void)
{
	static struct stack st;
	double t = 18.5 * M_PI / 180.0;
	double row[3] = {1, 0, 0}, col[3] = {0, cos(t), -sin(t)};
	double step[3] = {0, 0, 0.8};  /* the table moves along S; the planes are tilted */
	struct volume_options opt;
	struct r3d_err err = {0};
	struct volume *v = NULL;

	stack_make(&st, 8, row, col, step, NULL);
	CHECK(volume_assemble(&err, st.s, st.n, NULL, &v));
	if (v == NULL) {
		fprintf(stderr, "%s\n", err.msg);
		return;
	}
	CHECK(v->resampled);
	/* Orthogonal grid: k along the normal, spacing 0.8 cos(t). */
	CHECK_NEAR(v->spacing[2], 0.8 * cos(t), 1e-9);
	CHECK_NEAR(v->affine[0][0] * v->affine[0][2] + v->affine[1][0] * v->affine[1][2] +
		   v->affine[2][0] * v->affine[2][2], 0, 1e-9);
	CHECK_NEAR(v->affine[0][1] * v->affine[0][2] + v->affine[1][1] * v->affine[1][2] +
		   v->affine[2][1] * v->affine[2][2], 0, 1e-9);
	/* The stack drifts by 7 * 0.8 * sin(t) mm along the columns: the grid grows. */
	CHECK(v->ny == T_ROWS + (size_t)floor(7 * 0.8 * sin(t) / 0.5 + 1e-6));
	/* Voxels covered by two slices reproduce the linear field. */
	double worst = 0;
	size_t checked = 0;
	for (size_t k = 0; k < v->nz; k++)
		for (size_t j = 0; j < v->ny; j++)
			for (size_t i = 0; i < v->nx; i++) {
				double p[3];
				volume_index_to_patient(v, (double)i, (double)j, (double)k, p);
				/* Inside every slice? Column coordinate of p in slice 0 and 7. */
				double y0 = ((p[1] - st.s[0].position[1]) * col[1] +
					     (p[2] - st.s[0].position[2]) * col[2]) / 0.5;
				double y7 = ((p[1] - st.s[7].position[1]) * col[1] +
					     (p[2] - st.s[7].position[2]) * col[2]) / 0.5;
				if (y0 < 0 || y0 > T_ROWS - 1 || y7 < 0 || y7 > T_ROWS - 1)
					continue;
				double e = fabs(v->hu[i + v->nx * (j + v->ny * k)] - field(p));
				checked++;
				if (e > worst)
					worst = e;
			}
	CHECK(checked > 100);
	printf("tilt: %zu voxels checked, worst %g\n", checked, worst);
	CHECK(worst <= 1.0);  /* stored rounding (0.5) plus output rounding (0.5) */

	/* Three threads give the very same voxels as one. */
	struct volume *v3 = NULL;
	volume_options_default(&opt);
	opt.threads = 3;
	CHECK(volume_assemble(&err, st.s, st.n, &opt, &v3));
	CHECK(v3 != NULL && v3->nx == v->nx && v3->ny == v->ny && v3->nz == v->nz &&
	      memcmp(v3->hu, v->hu, v->bytes) == 0);
	volume_destroy(v3);
	volume_destroy(v);

	/* keep_shear: the slices as given with the sheared step as k axis. */
	volume_options_default(&opt);
	opt.keep_shear = true;
	CHECK(volume_assemble(&err, st.s, st.n, &opt, &v));
	if (v == NULL)
		return;
	CHECK(!v->resampled && v->sheared);
	CHECK(v->nz == 8 && v->ny == T_ROWS);
	CHECK_NEAR(v->affine[2][2], 0.8, 1e-9);
	CHECK_NEAR(v->affine[1][2], 0.0, 1e-9);
	CHECK(field_error(v, 0) <= 0.51);
	/* patient -> index inverts index -> patient, sheared axes included */
	double p[3], back[3];
	volume_index_to_patient(v, 3.25, 7.5, 5.75, p);
	volume_patient_to_index(v, p, back);
	CHECK_NEAR(back[0], 3.25, 1e-9);
	CHECK_NEAR(back[1], 7.5, 1e-9);
	CHECK_NEAR(back[2], 5.75, 1e-9);
	volume_destroy(v);
}

static void test_signed(void)
{
	static struct stack st;
	struct r3d_err err = {0};
	struct volume *v = NULL;

	stack_make(&st, 3, ax_row, ax_col, ax_step, NULL);
	for (size_t k = 0; k < 3; k++) {
		st.s[k].pixel = VOLUME_PIXEL_S16;
		st.s[k].rescale_intercept = 0;
		int16_t *p = (int16_t *)st.px[k];
		for (size_t i = 0; i < T_ROWS * T_COLS; i++)
			p[i] = (int16_t)(i % 2 ? -1500 : 2000);
	}
	CHECK(volume_assemble(&err, st.s, st.n, NULL, &v));
	if (v == NULL)
		return;
	CHECK(v->hu_min == -1500 && v->hu_max == 2000);
	CHECK(v->hu[1] == -1500 && v->hu[0] == 2000);
	volume_destroy(v);
}

int main(void)
{
	test_sorted_axial();
	test_refusals();
	test_gap_interpolated();
	test_uneven();
	test_oblique();
	test_tilt();
	test_signed();
	return test_summary();
}
