/*
 * volume.c: volume assembly (see r3d/volume.h). Checks and sorts slice
 * headers, then either copies the slices into the volume (evenly spaced,
 * untilted, or tilted with keep_shear) or resamples them onto an orthogonal
 * grid (gantry tilt, uneven spacing, interpolated gaps). Called by job
 * worker threads and the offline command; no shared state. Resampling may
 * start opt->threads - 1 helper threads, each filling whole output planes,
 * joined before volume_assemble() returns.
 */
#include "r3d/volume.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/util.h"

#define VOLUME_ORIENT_TOL 1e-4     /* direction cosines that differ less are the same */
#define VOLUME_SPACING_TOL 1e-3    /* relative pixel spacing difference accepted */
#define VOLUME_DUP_MM 1e-3         /* positions closer than this along the normal are duplicates */
#define VOLUME_SHEAR_VOXELS 0.01   /* in-plane drift (in voxels) above which a stack is sheared */

struct sorted {
	size_t index;  /* into the caller's slices */
	double w;      /* position along the normal, mm */
	double a, b;   /* in-plane offset from the first sorted slice along rows and columns, mm */
};

static double dot3(const double a[3], const double b[3])
{
	return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

static const char *slice_name(const struct volume_slice *s, char *buf, size_t size)
{
	if (s->label != NULL && s->frame == 0)
		snprintf(buf, size, "%s", s->label);
	else if (s->label != NULL)
		snprintf(buf, size, "%s frame %u", s->label, s->frame + 1);
	else
		snprintf(buf, size, "instance %ld frame %u", s->instance_number, s->frame + 1);
	return buf;
}

static int sorted_cmp(const void *pa, const void *pb)
{
	const struct sorted *a = pa, *b = pb;

	if (a->w < b->w)
		return -1;
	if (a->w > b->w)
		return 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

static int double_cmp(const void *pa, const void *pb)
{
	double a = *(const double *)pa, b = *(const double *)pb;

	return a < b ? -1 : a > b;
}

static inline double stored_at(const struct volume_slice *s, size_t offset)
{
	if (s->pixel == VOLUME_PIXEL_S16)
		return (double)((const int16_t *)s->pixels)[offset];
	return (double)((const uint16_t *)s->pixels)[offset];
}

static inline int16_t hu_round(double v)
{
	if (v < -32768.0)
		return -32768;
	if (v > 32767.0)
		return 32767;
	return (int16_t)lrint(v);
}

void volume_options_default(struct volume_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->gap_factor = VOLUME_GAP_FACTOR;
	opt->uneven_tolerance = VOLUME_UNEVEN_TOLERANCE;
}

/* Checks every slice against the first; fills the unit row, column and
 * normal directions. */
static bool slices_check(struct r3d_err *err, const struct volume_slice *s, size_t n,
			 double row[3], double col[3], double nrm[3])
{
	char na[96], nb[96];
	const struct volume_slice *f = &s[0];
	double lr, lc;

	if (f->rows == 0 || f->columns == 0 || f->rows > VOLUME_MAX_DIM ||
	    f->columns > VOLUME_MAX_DIM)
		return r3d_err_set(err, R3D_EINVAL, "slice size %ux%u outside 1..%d", f->rows,
				   f->columns, VOLUME_MAX_DIM);
	for (int i = 0; i < 3; i++) {
		row[i] = f->orientation[i];
		col[i] = f->orientation[3 + i];
	}
	lr = sqrt(dot3(row, row));
	lc = sqrt(dot3(col, col));
	if (!(lr > 0.5 && lr < 1.5 && lc > 0.5 && lc < 1.5) || fabs(dot3(row, col)) > 1e-3 * lr * lc)
		return r3d_err_set(err, R3D_EINVAL, "Image Orientation (Patient) of %s is not two "
				   "orthogonal unit vectors", slice_name(f, na, sizeof(na)));
	for (int i = 0; i < 3; i++) {
		row[i] /= lr;
		col[i] /= lc;
	}
	nrm[0] = row[1] * col[2] - row[2] * col[1];
	nrm[1] = row[2] * col[0] - row[0] * col[2];
	nrm[2] = row[0] * col[1] - row[1] * col[0];
	for (size_t k = 0; k < n; k++) {
		const struct volume_slice *c = &s[k];
		if (c->rows != f->rows || c->columns != f->columns)
			return r3d_err_set(err, R3D_EINVAL, "mixed slice sizes: %s is %ux%u, %s is %ux%u",
					   slice_name(f, na, sizeof(na)), f->rows, f->columns,
					   slice_name(c, nb, sizeof(nb)), c->rows, c->columns);
		for (int i = 0; i < 6; i++) {
			double ref = i < 3 ? row[i] : col[i - 3];
			double len = i < 3 ? lr : lc;
			if (!isfinite(c->orientation[i]) ||
			    fabs(c->orientation[i] / len - ref) > VOLUME_ORIENT_TOL)
				return r3d_err_set(err, R3D_EINVAL, "mixed orientations: %s and %s differ "
						   "in Image Orientation (Patient)",
						   slice_name(f, na, sizeof(na)),
						   slice_name(c, nb, sizeof(nb)));
		}
		for (int i = 0; i < 2; i++) {
			if (!(c->pixel_spacing[i] > 0 && c->pixel_spacing[i] < 1000))
				return r3d_err_set(err, R3D_EINVAL, "%s has no valid Pixel Spacing",
						   slice_name(c, na, sizeof(na)));
			if (fabs(c->pixel_spacing[i] - f->pixel_spacing[i]) >
			    VOLUME_SPACING_TOL * f->pixel_spacing[i])
				return r3d_err_set(err, R3D_EINVAL, "mixed pixel spacing: %s and %s",
						   slice_name(f, na, sizeof(na)),
						   slice_name(c, nb, sizeof(nb)));
		}
		for (int i = 0; i < 3; i++)
			if (!isfinite(c->position[i]))
				return r3d_err_set(err, R3D_EINVAL, "%s has no valid Image Position "
						   "(Patient)", slice_name(c, na, sizeof(na)));
		if (!isfinite(c->rescale_slope) || c->rescale_slope == 0 ||
		    !isfinite(c->rescale_intercept))
			return r3d_err_set(err, R3D_EINVAL, "%s has an invalid rescale slope or "
					   "intercept", slice_name(c, na, sizeof(na)));
		if (c->pixels == NULL)
			return r3d_err_set(err, R3D_EINVAL, "%s has no pixel data",
					   slice_name(c, na, sizeof(na)));
	}
	return true;
}

static void hu_range(struct volume *v, size_t nvox)
{
	int16_t lo = INT16_MAX, hi = INT16_MIN;

	for (size_t i = 0; i < nvox; i++) {
		if (v->hu[i] < lo)
			lo = v->hu[i];
		if (v->hu[i] > hi)
			hi = v->hu[i];
	}
	v->hu_min = lo;
	v->hu_max = hi;
}

/* Bilinear HU of slice s at fractional pixel (x, y); false outside it. */
static bool slice_sample(const struct volume_slice *s, double x, double y, double *out)
{
	double cx = (double)s->columns - 1, cy = (double)s->rows - 1;

	if (x < -0.5 || y < -0.5 || x > cx + 0.5 || y > cy + 0.5)
		return false;
	x = x < 0 ? 0 : x > cx ? cx : x;
	y = y < 0 ? 0 : y > cy ? cy : y;
	size_t x0 = (size_t)x, y0 = (size_t)y;
	size_t x1 = x0 + 1 < s->columns ? x0 + 1 : x0, y1 = y0 + 1 < s->rows ? y0 + 1 : y0;
	double fx = x - (double)x0, fy = y - (double)y0;
	size_t w = s->columns;
	double v00 = stored_at(s, y0 * w + x0), v10 = stored_at(s, y0 * w + x1);
	double v01 = stored_at(s, y1 * w + x0), v11 = stored_at(s, y1 * w + x1);
	double v = (1 - fy) * ((1 - fx) * v00 + fx * v10) + fy * ((1 - fx) * v01 + fx * v11);
	*out = v * s->rescale_slope + s->rescale_intercept;
	return true;
}

static bool volume_alloc(struct r3d_err *err, size_t nx, size_t ny, size_t nz, struct volume **out)
{
	struct volume *v;
	size_t nvox, bytes;

	if (!size_mul3(nx, ny, nz, &nvox) || nvox > VOLUME_MAX_VOXELS ||
	    !size_mul(nvox, sizeof(int16_t), &bytes))
		return r3d_err_set(err, R3D_EINVAL, "volume %zux%zux%zu is over the limit of %llu voxels",
				   nx, ny, nz, (unsigned long long)VOLUME_MAX_VOXELS);
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "out of memory");
	v->hu = bigbuf_alloc(err, bytes);
	if (v->hu == NULL) {
		free(v);
		return false;
	}
	v->nx = nx;
	v->ny = ny;
	v->nz = nz;
	v->bytes = bytes;
	v->affine[3][3] = 1.0;
	*out = v;
	return true;
}

static void affine_set(struct volume *v, const double ax[3], const double ay[3], const double az[3],
		       const double origin[3])
{
	for (int r = 0; r < 3; r++) {
		v->affine[r][0] = ax[r];
		v->affine[r][1] = ay[r];
		v->affine[r][2] = az[r];
		v->affine[r][3] = origin[r];
	}
	v->spacing[0] = sqrt(dot3(ax, ax));
	v->spacing[1] = sqrt(dot3(ay, ay));
	v->spacing[2] = sqrt(dot3(az, az));
}

/* Copies the sorted slices as they are; the k axis is the mean position step. */
static bool volume_copy(struct r3d_err *err, const struct volume_slice *s, const struct sorted *ord,
			size_t n, const double row[3], const double col[3], struct volume **out)
{
	const struct volume_slice *f = &s[ord[0].index], *l = &s[ord[n - 1].index];
	size_t plane = (size_t)f->rows * f->columns;
	double ax[3], ay[3], az[3];
	struct volume *v = NULL;

	if (!volume_alloc(err, f->columns, f->rows, n, &v))
		return false;
	for (size_t k = 0; k < n; k++) {
		const struct volume_slice *c = &s[ord[k].index];
		int16_t *dst = v->hu + k * plane;
		/* Integer rescale (slope 1, whole intercept: nearly every CT) in
		 * integer arithmetic; anything else through doubles. */
		if (c->rescale_slope == 1.0 && c->rescale_intercept == floor(c->rescale_intercept) &&
		    fabs(c->rescale_intercept) <= 65536.0) {
			int32_t b = (int32_t)c->rescale_intercept;
			if (c->pixel == VOLUME_PIXEL_S16) {
				const int16_t *src = c->pixels;
				for (size_t i = 0; i < plane; i++) {
					int32_t h = (int32_t)src[i] + b;
					dst[i] = (int16_t)(h < INT16_MIN ? INT16_MIN : h > INT16_MAX ? INT16_MAX : h);
				}
			} else {
				const uint16_t *src = c->pixels;
				for (size_t i = 0; i < plane; i++) {
					int32_t h = (int32_t)src[i] + b;
					dst[i] = (int16_t)(h < INT16_MIN ? INT16_MIN : h > INT16_MAX ? INT16_MAX : h);
				}
			}
		} else if (c->pixel == VOLUME_PIXEL_S16) {
			const int16_t *src = c->pixels;
			for (size_t i = 0; i < plane; i++)
				dst[i] = hu_round((double)src[i] * c->rescale_slope + c->rescale_intercept);
		} else {
			const uint16_t *src = c->pixels;
			for (size_t i = 0; i < plane; i++)
				dst[i] = hu_round((double)src[i] * c->rescale_slope + c->rescale_intercept);
		}
	}
	for (int i = 0; i < 3; i++) {
		ax[i] = row[i] * f->pixel_spacing[1];
		ay[i] = col[i] * f->pixel_spacing[0];
		az[i] = (l->position[i] - f->position[i]) / (double)(n - 1);
	}
	affine_set(v, ax, ay, az, f->position);
	hu_range(v, plane * n);
	*out = v;
	return true;
}

/* One row of slice s in HU at fractional rows y and columns i + c
 * (i = 0..nx-1), bilinear; VOLUME_HU_PAD where the row leaves the slice.
 * Along a row the column fraction is constant, so the interior is a fixed
 * 4-tap weighted sum; only the edges go through slice_sample(). */
static void row_sample(const struct volume_slice *s, double y, double c, size_t nx, float *out)
{
	double cy = (double)s->rows - 1, cx = (double)s->columns - 1;
	size_t w = s->columns;

	if (y < -0.5 || y > cy + 0.5) {
		for (size_t i = 0; i < nx; i++)
			out[i] = (float)VOLUME_HU_PAD;
		return;
	}
	double yc = y < 0 ? 0 : y > cy ? cy : y;
	size_t y0 = (size_t)yc, y1 = y0 + 1 < s->rows ? y0 + 1 : y0;
	float fy = (float)(yc - (double)y0);
	/* Interior: 0 <= i + c and i + c + 1 <= cx, so x0 = i + floor(c), x0 + 1 in range. */
	double fc = floor(c);
	float fx = (float)(c - fc);
	long lo = (long)ceil(-c), hi = (long)floor(cx - 1 - c);
	if (lo < 0)
		lo = 0;
	if (hi > (long)nx - 1)
		hi = (long)nx - 1;
	for (size_t i = 0; i < nx; i++) {
		if ((long)i >= lo && (long)i <= hi) {
			long x0 = (long)i + (long)fc;
			float a, b, cc, d;
			if (s->pixel == VOLUME_PIXEL_S16) {
				const int16_t *p0 = (const int16_t *)s->pixels + y0 * w;
				const int16_t *p1 = (const int16_t *)s->pixels + y1 * w;
				a = p0[x0];
				b = p0[x0 + 1];
				cc = p1[x0];
				d = p1[x0 + 1];
			} else {
				const uint16_t *p0 = (const uint16_t *)s->pixels + y0 * w;
				const uint16_t *p1 = (const uint16_t *)s->pixels + y1 * w;
				a = p0[x0];
				b = p0[x0 + 1];
				cc = p1[x0];
				d = p1[x0 + 1];
			}
			float v = (1 - fy) * ((1 - fx) * a + fx * b) + fy * ((1 - fx) * cc + fx * d);
			out[i] = (float)(v * s->rescale_slope + s->rescale_intercept);
		} else {
			double h;
			out[i] = slice_sample(s, (double)i + c, y, &h) ? (float)h : (float)VOLUME_HU_PAD;
		}
	}
}

/* The resampling job shared by its threads (read-only but for the output planes). */
struct resample_job {
	const struct volume_slice *s;
	const struct sorted *ord;
	size_t n;
	struct volume *v;
	double umin, vmin, dx, dy, dz;
	size_t k_next;            /* next plane to take, under lock */
	pthread_mutex_t lock;
	bool failed;              /* a thread could not get its row buffers, under lock */
};

static void *resample_run(void *arg)
{
	struct resample_job *job = arg;
	struct volume *v = job->v;
	const struct sorted *ord = job->ord;
	size_t n = job->n;
	float *r0 = malloc(v->nx * sizeof(float)), *r1 = malloc(v->nx * sizeof(float));

	if (r0 == NULL || r1 == NULL) {
		pthread_mutex_lock(&job->lock);
		job->failed = true;
		pthread_mutex_unlock(&job->lock);
		goto out;
	}
	for (;;) {
		size_t k;
		pthread_mutex_lock(&job->lock);
		k = job->k_next++;
		pthread_mutex_unlock(&job->lock);
		if (k >= v->nz)
			break;
		double w = ord[0].w + (double)k * job->dz;
		if (w > ord[n - 1].w)
			w = ord[n - 1].w;
		size_t seg = 0;
		while (seg + 2 < n && ord[seg + 1].w < w)
			seg++;
		const struct sorted *p0 = &ord[seg], *p1 = &ord[seg + 1];
		float t = (float)((w - p0->w) / (p1->w - p0->w));
		t = t < 0 ? 0 : t > 1 ? 1 : t;
		const struct volume_slice *s0 = &job->s[p0->index], *s1 = &job->s[p1->index];
		int16_t *dst = v->hu + k * v->nx * v->ny;
		for (size_t j = 0; j < v->ny; j++) {
			double vv = job->vmin + (double)j * job->dy;
			/* The normal projection of the grid row onto each slice plane. */
			row_sample(s0, (vv - p0->b) / job->dy, (job->umin - p0->a) / job->dx, v->nx, r0);
			row_sample(s1, (vv - p1->b) / job->dy, (job->umin - p1->a) / job->dx, v->nx, r1);
			for (size_t i = 0; i < v->nx; i++)
				dst[j * v->nx + i] = hu_round((double)((1 - t) * r0[i] + t * r1[i]));
		}
	}
out:
	free(r1);
	free(r0);
	return NULL;
}

/* Resamples onto an orthogonal grid along row, col and the normal, covering
 * the union of the slices' in-plane extents, with spacing dz along the
 * normal, with up to `threads` threads (planes taken one at a time). */
static bool volume_resample(struct r3d_err *err, const struct volume_slice *s,
			    const struct sorted *ord, size_t n, const double row[3],
			    const double col[3], const double nrm[3], double dz, unsigned threads,
			    struct volume **out)
{
	const struct volume_slice *f = &s[ord[0].index];
	double dx = f->pixel_spacing[1], dy = f->pixel_spacing[0];
	double umin = 0, umax = 0, vmin = 0, vmax = 0, depth = ord[n - 1].w - ord[0].w;
	double fx, fy, fz, origin[3], ax[3], ay[3], az[3];
	struct volume *v = NULL;
	struct resample_job job;
	pthread_t tids[VOLUME_MAX_THREADS];
	unsigned started = 0;
	bool ok = false;

	for (size_t k = 0; k < n; k++) {
		if (ord[k].a < umin)
			umin = ord[k].a;
		if (ord[k].a > umax)
			umax = ord[k].a;
		if (ord[k].b < vmin)
			vmin = ord[k].b;
		if (ord[k].b > vmax)
			vmax = ord[k].b;
	}
	fx = floor((umax - umin) / dx + 1e-6) + (double)f->columns;
	fy = floor((vmax - vmin) / dy + 1e-6) + (double)f->rows;
	fz = floor(depth / dz + 0.5) + 1;
	if (fx > VOLUME_MAX_DIM || fy > VOLUME_MAX_DIM || fz > VOLUME_MAX_SLICES)
		return r3d_err_set(err, R3D_EINVAL, "resampled grid %.0fx%.0fx%.0f is over the limits",
				   fx, fy, fz);
	if (!volume_alloc(err, (size_t)fx, (size_t)fy, (size_t)fz, &v))
		return false;
	for (int i = 0; i < 3; i++) {
		origin[i] = f->position[i] + umin * row[i] + vmin * col[i];
		ax[i] = dx * row[i];
		ay[i] = dy * col[i];
		az[i] = dz * nrm[i];
	}
	memset(&job, 0, sizeof(job));
	job.s = s;
	job.ord = ord;
	job.n = n;
	job.v = v;
	job.umin = umin;
	job.vmin = vmin;
	job.dx = dx;
	job.dy = dy;
	job.dz = dz;
	pthread_mutex_init(&job.lock, NULL);
	if (threads > VOLUME_MAX_THREADS)
		threads = VOLUME_MAX_THREADS;
	for (unsigned t = 1; t < threads; t++) {
		if (pthread_create(&tids[started], NULL, resample_run, &job) != 0)
			break;  /* fewer helpers; the calling thread still does the work */
		started++;
	}
	resample_run(&job);
	for (unsigned t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	pthread_mutex_destroy(&job.lock);
	if (job.failed) {
		r3d_err_set(err, R3D_ENOMEM, "out of memory for resampling rows");
		goto out;
	}
	affine_set(v, ax, ay, az, origin);
	v->resampled = true;
	hu_range(v, v->nx * v->ny * v->nz);
	*out = v;
	v = NULL;
	ok = true;
out:
	volume_destroy(v);
	return ok;
}

bool volume_assemble(struct r3d_err *err, const struct volume_slice *slices, size_t count,
		     const struct volume_options *opt_in, struct volume **out)
{
	struct volume_options opt;
	struct sorted *ord = NULL;
	double *gaps = NULL;
	double row[3], col[3], nrm[3], median, gap_max = 0, drift = 0, shear_dev = 0;
	char na[96], nb[96];
	size_t gap_at = 0;
	bool uneven = false, ok = false;
	struct volume *v = NULL;

	*out = NULL;
	if (opt_in != NULL)
		opt = *opt_in;
	else
		volume_options_default(&opt);
	if (count < 2) {
		r3d_err_set(err, R3D_EINVAL, "a volume needs at least 2 slices, the series has %zu",
			    count);
		goto out;
	}
	if (count > VOLUME_MAX_SLICES) {
		r3d_err_set(err, R3D_EINVAL, "%zu slices is over the limit of %d", count,
			    VOLUME_MAX_SLICES);
		goto out;
	}
	if (!slices_check(err, slices, count, row, col, nrm))
		goto out;
	ord = calloc(count, sizeof(*ord));
	gaps = calloc(count, sizeof(*gaps));
	if (ord == NULL || gaps == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < count; k++) {
		ord[k].index = k;
		ord[k].w = dot3(slices[k].position, nrm);
	}
	qsort(ord, count, sizeof(*ord), sorted_cmp);
	for (size_t k = 0; k < count; k++) {
		double d[3];
		for (int i = 0; i < 3; i++)
			d[i] = slices[ord[k].index].position[i] - slices[ord[0].index].position[i];
		ord[k].a = dot3(d, row);
		ord[k].b = dot3(d, col);
	}
	for (size_t k = 0; k + 1 < count; k++) {
		double g = ord[k + 1].w - ord[k].w;
		if (g < VOLUME_DUP_MM) {
			r3d_err_set(err, R3D_EINVAL, "duplicate position: %s and %s are both at %.3f mm "
				    "along the slice normal",
				    slice_name(&slices[ord[k].index], na, sizeof(na)),
				    slice_name(&slices[ord[k + 1].index], nb, sizeof(nb)), ord[k].w);
			goto out;
		}
		gaps[k] = g;
		if (g > gap_max) {
			gap_max = g;
			gap_at = k;
		}
	}
	qsort(gaps, count - 1, sizeof(*gaps), double_cmp);
	median = (count - 1) % 2 ? gaps[(count - 1) / 2]
				 : 0.5 * (gaps[(count - 1) / 2 - 1] + gaps[(count - 1) / 2]);
	if (gap_max > opt.gap_factor * median && !opt.interpolate_gaps) {
		r3d_err_set(err, R3D_EINVAL, "gap of %.3f mm between %s and %s is over %.2gx the "
			    "median slice spacing of %.3f mm (missing slices?)", gap_max,
			    slice_name(&slices[ord[gap_at].index], na, sizeof(na)),
			    slice_name(&slices[ord[gap_at + 1].index], nb, sizeof(nb)),
			    opt.gap_factor, median);
		goto out;
	}
	for (size_t k = 0; k + 1 < count; k++)
		if (fabs(ord[k + 1].w - ord[k].w - median) > opt.uneven_tolerance * median)
			uneven = true;
	/* In-plane drift of the slice origins: gantry tilt shears the stack. */
	double ua = ord[count - 1].a / (ord[count - 1].w - ord[0].w);
	double ub = ord[count - 1].b / (ord[count - 1].w - ord[0].w);
	for (size_t k = 0; k < count; k++) {
		double da = fabs(ord[k].a) / slices[0].pixel_spacing[1];
		double db = fabs(ord[k].b) / slices[0].pixel_spacing[0];
		double ea = fabs(ord[k].a - ua * (ord[k].w - ord[0].w)) / slices[0].pixel_spacing[1];
		double eb = fabs(ord[k].b - ub * (ord[k].w - ord[0].w)) / slices[0].pixel_spacing[0];
		if (da > drift)
			drift = da;
		if (db > drift)
			drift = db;
		if (ea > shear_dev)
			shear_dev = ea;
		if (eb > shear_dev)
			shear_dev = eb;
	}
	bool sheared = drift > VOLUME_SHEAR_VOXELS;
	if (!uneven && (!sheared || (opt.keep_shear && shear_dev < VOLUME_SHEAR_VOXELS))) {
		if (!volume_copy(err, slices, ord, count, row, col, &v))
			goto out;
		v->sheared = sheared;
		snprintf(v->note, sizeof(v->note), "%zu slices as given%s", count,
			 sheared ? ", sheared affine (gantry tilt)" : "");
	} else {
		/* The finer of the median and the mean spacing: alternating gaps
		 * keep their slice count, a single gap does not coarsen the grid. */
		double mean = (ord[count - 1].w - ord[0].w) / (double)(count - 1);
		double dz = mean < median ? mean : median;
		if (!volume_resample(err, slices, ord, count, row, col, nrm, dz, opt.threads, &v))
			goto out;
		snprintf(v->note, sizeof(v->note), "resampled to %.4g mm along the normal:%s%s%s",
			 dz, sheared ? " gantry tilt (sheared positions)" : "",
			 uneven ? " uneven spacing" : "",
			 gap_max > opt.gap_factor * median ? " interpolated gaps" : "");
	}
	*out = v;
	ok = true;
out:
	free(gaps);
	free(ord);
	return ok;
}

void volume_destroy(struct volume *vol)
{
	if (vol == NULL)
		return;
	bigbuf_free(vol->hu, vol->bytes);
	free(vol);
}

void volume_index_to_patient(const struct volume *vol, double i, double j, double k,
			     double out[3])
{
	for (int r = 0; r < 3; r++)
		out[r] = vol->affine[r][0] * i + vol->affine[r][1] * j + vol->affine[r][2] * k +
			 vol->affine[r][3];
}

void volume_patient_to_index(const struct volume *vol, const double p[3], double out[3])
{
	const double(*m)[4] = vol->affine;
	double d[3], inv[3][3], det;

	for (int r = 0; r < 3; r++)
		d[r] = p[r] - m[r][3];
	inv[0][0] = m[1][1] * m[2][2] - m[1][2] * m[2][1];
	inv[0][1] = m[0][2] * m[2][1] - m[0][1] * m[2][2];
	inv[0][2] = m[0][1] * m[1][2] - m[0][2] * m[1][1];
	inv[1][0] = m[1][2] * m[2][0] - m[1][0] * m[2][2];
	inv[1][1] = m[0][0] * m[2][2] - m[0][2] * m[2][0];
	inv[1][2] = m[0][2] * m[1][0] - m[0][0] * m[1][2];
	inv[2][0] = m[1][0] * m[2][1] - m[1][1] * m[2][0];
	inv[2][1] = m[0][1] * m[2][0] - m[0][0] * m[2][1];
	inv[2][2] = m[0][0] * m[1][1] - m[0][1] * m[1][0];
	det = m[0][0] * inv[0][0] + m[0][1] * inv[1][0] + m[0][2] * inv[2][0];
	/* A built volume's axes are never degenerate (checked orientation, spacing > 0). */
	assert(det != 0.0);
	for (int r = 0; r < 3; r++)
		out[r] = (inv[r][0] * d[0] + inv[r][1] * d[1] + inv[r][2] * d[2]) / det;
}
