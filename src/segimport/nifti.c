/*
 * nifti.c: a NIfTI label map read into a segobj (segnifti.h) with
 * nifticlib, named and coded by TotalSegmentator's 'total' classes or by a
 * JSON label table.
 *
 * Steps, in order: the label table (when given) is parsed and checked; the
 * NIfTI header is read alone and checked (dimensions, datatype, scaling,
 * affine, bounds) so that nothing large is allocated for a file that is
 * refused; then the voxels are loaded, checked to be labels 0..255 and
 * copied into one 8-bit store that the frames point into; last, one segment
 * per label present.
 *
 * Coordinates: NIfTI's affine maps voxel indices to RAS+ mm; LPS (DICOM) is
 * (-x, -y, z). Memory order of the store: i fastest, then j, then k, which
 * is a frame's column index fastest, then rows, then frames.
 *
 * Any thread; no shared state.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>
#include <nifti2_io.h>

#include "r3d/segnifti.h"
#include "r3d/util.h"

/* Axes shorter than this (mm) are degenerate. */
#define AXIS_MIN_MM 1e-6

/* ===================================================================== */
/* Small helpers                                                         */
/* ===================================================================== */

static void copy_str(char *dst, size_t size, const char *src)
{
	assert(strlen(src) < size);
	snprintf(dst, size, "%s", src);
}

static void copy_code(struct segobj_code *dst, const struct totalseg_code *src)
{
	copy_str(dst->value, sizeof dst->value, src->value);
	copy_str(dst->scheme, sizeof dst->scheme, src->scheme);
	copy_str(dst->meaning, sizeof dst->meaning, src->meaning);
}

static double vec_len(const double v[3])
{
	return sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
}

static double vec_dot(const double a[3], const double b[3])
{
	return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

/* -0 (from negating a zero RAS component) written as 0. */
static double no_negative_zero(double v)
{
	return v == 0.0 ? 0.0 : v;
}

/* ===================================================================== */
/* The JSON label table                                                  */
/* ===================================================================== */

/* One entry of the table; defined false when the table has none. */
struct table_entry {
	bool defined;
	char name[SEGOBJ_LABEL_MAX];
	bool has_color;
	float rgb[3];
	struct segobj_code category, type, laterality;
};

/* "VALUE^SCHEME^MEANING", each part non-empty and within segobj's sizes. */
static bool table_code(struct r3d_err *err, const char *member, const char *s,
		       struct segobj_code *c)
{
	const char *a = strchr(s, '^');
	const char *b = a != NULL ? strchr(a + 1, '^') : NULL;
	size_t lv, ls, lm;

	if (a == NULL || b == NULL || strchr(b + 1, '^') != NULL)
		return r3d_err_set(err, R3D_EINVAL, "%s \"%s\" is not VALUE^SCHEME^MEANING",
				   member, s);
	lv = (size_t)(a - s);
	ls = (size_t)(b - a - 1);
	lm = strlen(b + 1);
	if (lv == 0 || ls == 0 || lm == 0)
		return r3d_err_set(err, R3D_EINVAL, "%s \"%s\" has an empty part", member, s);
	if (lv >= sizeof c->value || ls >= sizeof c->scheme || lm >= sizeof c->meaning)
		return r3d_err_set(err, R3D_EINVAL,
				   "%s \"%s\": value, scheme or meaning too long (%zu, %zu, %zu "
				   "bytes at most)", member, s, sizeof c->value - 1,
				   sizeof c->scheme - 1, sizeof c->meaning - 1);
	memcpy(c->value, s, lv);
	c->value[lv] = '\0';
	memcpy(c->scheme, a + 1, ls);
	c->scheme[ls] = '\0';
	memcpy(c->meaning, b + 1, lm);
	c->meaning[lm] = '\0';
	return true;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "#rrggbb" or [r, g, b] with integers 0..255. */
static bool table_color(struct r3d_err *err, const json_t *v, float rgb[3])
{
	int c[3], i;

	if (json_is_string(v)) {
		const char *s = json_string_value(v);

		if (strlen(s) != 7 || s[0] != '#')
			return r3d_err_set(err, R3D_EINVAL, "color \"%s\" is not #rrggbb", s);
		for (i = 0; i < 3; i++) {
			int hi = hex_digit(s[1 + 2 * i]), lo = hex_digit(s[2 + 2 * i]);

			if (hi < 0 || lo < 0)
				return r3d_err_set(err, R3D_EINVAL, "color \"%s\" is not #rrggbb", s);
			c[i] = hi * 16 + lo;
		}
	} else if (json_is_array(v)) {
		if (json_array_size(v) != 3)
			return r3d_err_set(err, R3D_EINVAL, "color has %zu values, not [r, g, b]",
					   json_array_size(v));
		for (i = 0; i < 3; i++) {
			const json_t *e = json_array_get(v, (size_t)i);
			json_int_t x;

			if (!json_is_integer(e))
				return r3d_err_set(err, R3D_EINVAL,
						   "color [r, g, b] value %d is not a whole number", i + 1);
			x = json_integer_value(e);
			if (x < 0 || x > 255)
				return r3d_err_set(err, R3D_EINVAL,
						   "color [r, g, b] value %d is %lld, not 0..255", i + 1,
						   (long long)x);
			c[i] = (int)x;
		}
	} else {
		return r3d_err_set(err, R3D_EINVAL, "color is neither \"#rrggbb\" nor [r, g, b]");
	}
	for (i = 0; i < 3; i++)
		rgb[i] = (float)c[i] / 255.0f;
	return true;
}

static bool table_name(struct r3d_err *err, const json_t *v, char name[SEGOBJ_LABEL_MAX])
{
	const char *s;
	size_t n, i;

	if (!json_is_string(v))
		return r3d_err_set(err, R3D_EINVAL, "name is not a string");
	s = json_string_value(v);
	n = strlen(s);
	if (n == 0 || n >= SEGOBJ_LABEL_MAX)
		return r3d_err_set(err, R3D_EINVAL, "name is %zu bytes, not 1..%d", n,
				   SEGOBJ_LABEL_MAX - 1);
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\')
			return r3d_err_set(err, R3D_EINVAL,
					   "name has a control character or a backslash "
					   "(not allowed in a Segment Label)");
	copy_str(name, SEGOBJ_LABEL_MAX, s);
	return true;
}

static bool table_laterality(struct r3d_err *err, const json_t *v, struct segobj_code *c)
{
	const char *s;

	if (!json_is_string(v))
		return r3d_err_set(err, R3D_EINVAL, "laterality is not a string");
	s = json_string_value(v);
	if (strcasecmp(s, "left") == 0)
		s = "7771000^SCT^Left";
	else if (strcasecmp(s, "right") == 0)
		s = "24028007^SCT^Right";
	return table_code(err, "laterality", s, c);
}

static bool table_entry_read(struct r3d_err *err, const json_t *obj, struct table_entry *e)
{
	const char *k;
	json_t *v;

	if (!json_is_object(obj))
		return r3d_err_set(err, R3D_EINVAL, "is not an object");
	json_object_foreach((json_t *)obj, k, v) {
		bool ok;

		if (strcmp(k, "name") == 0) {
			ok = table_name(err, v, e->name);
		} else if (strcmp(k, "color") == 0) {
			ok = table_color(err, v, e->rgb);
			e->has_color = ok;
		} else if (strcmp(k, "category") == 0 || strcmp(k, "type") == 0) {
			if (json_is_string(v))
				ok = table_code(err, k, json_string_value(v),
						k[0] == 'c' ? &e->category : &e->type);
			else
				ok = r3d_err_set(err, R3D_EINVAL, "%s is not a string", k);
		} else if (strcmp(k, "laterality") == 0) {
			ok = table_laterality(err, v, &e->laterality);
		} else {
			ok = r3d_err_set(err, R3D_EINVAL,
					 "unknown member \"%s\" (name, color, category, type, "
					 "laterality)", k);
		}
		if (!ok)
			return false;
	}
	if (e->name[0] == '\0')
		return r3d_err_set(err, R3D_EINVAL, "has no name");
	e->defined = true;
	return true;
}

/* Reads the table file into entries[0..SEGNIFTI_MAX_LABEL]. */
static bool table_read(struct r3d_err *err, const char *path, struct table_entry *entries)
{
	FILE *f = NULL;
	char *buf = NULL;
	json_t *root = NULL;
	json_error_t jerr;
	struct stat st;
	const char *key;
	json_t *v;
	size_t n;
	bool ok = false;

	f = fopen(path, "rb");
	if (f == NULL) {
		r3d_err_set(err, R3D_EIO, "cannot open: %s", strerror(errno));
		goto out;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		r3d_err_set(err, R3D_EIO, "not a regular file");
		goto out;
	}
	if (st.st_size > SEGNIFTI_MAX_TABLE_BYTES) {
		r3d_err_set(err, R3D_EINVAL, "%lld bytes, more than SEGNIFTI_MAX_TABLE_BYTES (%d)",
			    (long long)st.st_size, SEGNIFTI_MAX_TABLE_BYTES);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "out of memory");
		goto out;
	}
	n = fread(buf, 1, (size_t)st.st_size, f);
	if (n != (size_t)st.st_size || ferror(f)) {
		r3d_err_set(err, R3D_EIO, "short read");
		goto out;
	}
	root = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		r3d_err_set(err, R3D_EINVAL, "not JSON: line %d: %s", jerr.line, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		r3d_err_set(err, R3D_EINVAL, "is not a JSON object of label values");
		goto out;
	}
	json_object_foreach(root, key, v) {
		long label;

		if (!parse_long(err, key, 1, SEGNIFTI_MAX_LABEL, &label)) {
			r3d_err_prefix(err, "key \"%s\" is not a label 1..%d", key,
				       SEGNIFTI_MAX_LABEL);
			goto out;
		}
		/* parse_long takes "01" and "1" alike: two spellings of one label. */
		if (entries[label].defined) {
			r3d_err_set(err, R3D_EINVAL, "label %ld is given twice", label);
			goto out;
		}
		if (!table_entry_read(err, v, &entries[label])) {
			r3d_err_prefix(err, "label \"%s\"", key);
			goto out;
		}
	}
	ok = true;
out:
	json_decref(root);
	free(buf);
	if (f != NULL)
		fclose(f);
	return ok;
}

/* ===================================================================== */
/* The NIfTI header                                                      */
/* ===================================================================== */

struct geometry {
	size_t nx, ny, nz;
	double iax[3], jax[3], kax[3], origin[3];   /* LPS mm */
};

static bool header_check(struct r3d_err *err, const nifti_image *nim, struct geometry *g)
{
	const nifti_dmat44 *m;
	const char *which;
	double li, lj, cosang, normal[3];
	size_t nvox;
	int d, r;

	/* Dimensions: one 3D volume (trailing dimensions of size 1 are fine). */
	if (nim->ndim < 3)
		return r3d_err_set(err, R3D_EINVAL, "is %dD: a label map must be a 3D volume",
				   (int)nim->ndim);
	if (nim->ndim > 7)
		return r3d_err_set(err, R3D_EINVAL, "has %d dimensions", (int)nim->ndim);
	for (d = 4; d <= nim->ndim; d++)
		if (nim->dim[d] != 1)
			return r3d_err_set(err, R3D_EINVAL,
					   "is %dD with %lld values along dimension %d: a label "
					   "map must be one 3D volume", (int)nim->ndim,
					   (long long)nim->dim[d], d);
	for (d = 1; d <= 3; d++)
		if (nim->dim[d] < 1)
			return r3d_err_set(err, R3D_EINVAL, "dimension %d is %lld", d,
					   (long long)nim->dim[d]);
	if (nim->dim[1] > SEGNIFTI_MAX_DIM || nim->dim[2] > SEGNIFTI_MAX_DIM)
		return r3d_err_set(err, R3D_EINVAL, "%lld x %lld voxels per slice: more than "
				   "SEGNIFTI_MAX_DIM (%d) along i or j", (long long)nim->dim[1],
				   (long long)nim->dim[2], SEGNIFTI_MAX_DIM);
	if (nim->dim[3] > SEGOBJ_MAX_FRAMES)
		return r3d_err_set(err, R3D_EINVAL, "%lld slices: more than SEGOBJ_MAX_FRAMES (%d)",
				   (long long)nim->dim[3], SEGOBJ_MAX_FRAMES);
	g->nx = (size_t)nim->dim[1];
	g->ny = (size_t)nim->dim[2];
	g->nz = (size_t)nim->dim[3];
	if (!size_mul3(g->nx, g->ny, g->nz, &nvox) || nvox > SEGNIFTI_MAX_VOXELS)
		return r3d_err_set(err, R3D_EINVAL,
				   "%zu x %zu x %zu voxels: more than SEGNIFTI_MAX_VOXELS (%llu)",
				   g->nx, g->ny, g->nz, (unsigned long long)SEGNIFTI_MAX_VOXELS);

	/* Datatype and scaling: stored values must be the labels. */
	switch (nim->datatype) {
	case DT_UINT8: case DT_INT8: case DT_UINT16: case DT_INT16:
	case DT_UINT32: case DT_INT32: case DT_UINT64: case DT_INT64:
		break;
	default:
		return r3d_err_set(err, R3D_EINVAL,
				   "datatype %s (%d) is not an integer type: a label map holds "
				   "whole label values", nifti_datatype_string(nim->datatype),
				   nim->datatype);
	}
	if (nim->scl_slope != 0 && (nim->scl_slope != 1 || nim->scl_inter != 0))
		return r3d_err_set(err, R3D_EINVAL,
				   "scaled (scl_slope %g, scl_inter %g): stored values are not labels",
				   nim->scl_slope, nim->scl_inter);

	/* Affine: sform when it has a code, else qform, else no position. */
	if (nim->sform_code > 0) {
		m = &nim->sto_xyz;
		which = "sform";
	} else if (nim->qform_code > 0) {
		m = &nim->qto_xyz;
		which = "qform";
	} else {
		return r3d_err_set(err, R3D_EINVAL,
				   "has neither an sform nor a qform (sform_code and qform_code "
				   "0): its voxels have no position in patient space");
	}
	for (r = 0; r < 3; r++) {
		const double sign = r < 2 ? -1.0 : 1.0;   /* RAS to LPS */

		for (d = 0; d < 4; d++)
			if (!isfinite(m->m[r][d]))
				return r3d_err_set(err, R3D_EINVAL, "its %s is not finite", which);
		g->iax[r] = no_negative_zero(sign * m->m[r][0]);
		g->jax[r] = no_negative_zero(sign * m->m[r][1]);
		g->kax[r] = no_negative_zero(sign * m->m[r][2]);
		g->origin[r] = no_negative_zero(sign * m->m[r][3]);
	}
	li = vec_len(g->iax);
	lj = vec_len(g->jax);
	if (li < AXIS_MIN_MM || lj < AXIS_MIN_MM)
		return r3d_err_set(err, R3D_EINVAL, "its %s has a zero-length i or j axis", which);
	cosang = vec_dot(g->iax, g->jax) / (li * lj);
	if (fabs(cosang) > SEGNIFTI_SHEAR_TOLERANCE)
		return r3d_err_set(err, R3D_EINVAL,
				   "its %s is sheared: the i and j axes are %.4f degrees apart, not "
				   "90 (a sheared label map cannot be a DICOM Segmentation's frames)",
				   which, acos(cosang) * 180.0 / M_PI);
	/* Frames must lie on distinct planes when there are several. */
	normal[0] = g->iax[1] * g->jax[2] - g->iax[2] * g->jax[1];
	normal[1] = g->iax[2] * g->jax[0] - g->iax[0] * g->jax[2];
	normal[2] = g->iax[0] * g->jax[1] - g->iax[1] * g->jax[0];
	if (g->nz > 1 && fabs(vec_dot(normal, g->kax)) / (li * lj) < AXIS_MIN_MM)
		return r3d_err_set(err, R3D_EINVAL,
				   "its %s's k axis lies in the slices' plane: the slices coincide",
				   which);
	return true;
}

/* ===================================================================== */
/* Voxels to 8-bit labels                                                */
/* ===================================================================== */

/* Each converter copies n values to dst and marks the labels seen; on a
 * value outside 0..255 it stops and returns its index, with the value
 * written into bad. Returns n when all are labels. */
#define SEGNIFTI_CONVERT_SIGNED(fname, ctype)                                      \
	static size_t fname(const void *src, uint8_t *dst, size_t n, bool *seen,   \
			    char *bad, size_t badsize)                              \
	{                                                                          \
		const ctype *p = src;                                              \
		size_t i;                                                          \
		for (i = 0; i < n; i++) {                                          \
			if (p[i] < 0 || p[i] > SEGNIFTI_MAX_LABEL) {               \
				snprintf(bad, badsize, "%lld", (long long)p[i]);   \
				return i;                                          \
			}                                                          \
			dst[i] = (uint8_t)p[i];                                    \
			seen[dst[i]] = true;                                       \
		}                                                                  \
		return n;                                                          \
	}
#define SEGNIFTI_CONVERT_UNSIGNED(fname, ctype)                                    \
	static size_t fname(const void *src, uint8_t *dst, size_t n, bool *seen,   \
			    char *bad, size_t badsize)                              \
	{                                                                          \
		const ctype *p = src;                                              \
		size_t i;                                                          \
		for (i = 0; i < n; i++) {                                          \
			if (p[i] > SEGNIFTI_MAX_LABEL) {                           \
				snprintf(bad, badsize, "%llu",                     \
					 (unsigned long long)p[i]);                \
				return i;                                          \
			}                                                          \
			dst[i] = (uint8_t)p[i];                                    \
			seen[dst[i]] = true;                                       \
		}                                                                  \
		return n;                                                          \
	}

SEGNIFTI_CONVERT_SIGNED(convert_int8, int8_t)
SEGNIFTI_CONVERT_SIGNED(convert_int16, int16_t)
SEGNIFTI_CONVERT_SIGNED(convert_int32, int32_t)
SEGNIFTI_CONVERT_SIGNED(convert_int64, int64_t)
SEGNIFTI_CONVERT_UNSIGNED(convert_uint16, uint16_t)
SEGNIFTI_CONVERT_UNSIGNED(convert_uint32, uint32_t)
SEGNIFTI_CONVERT_UNSIGNED(convert_uint64, uint64_t)

static size_t convert_uint8(const void *src, uint8_t *dst, size_t n, bool *seen, char *bad,
			    size_t badsize)
{
	const uint8_t *p = src;
	size_t i;

	(void)bad;
	(void)badsize;
	memcpy(dst, p, n);
	for (i = 0; i < n; i++)
		seen[p[i]] = true;
	return n;
}

static bool labels_convert(struct r3d_err *err, const nifti_image *nim,
			   const struct geometry *g, uint8_t *dst, bool seen[SEGNIFTI_MAX_LABEL + 1])
{
	size_t (*conv)(const void *, uint8_t *, size_t, bool *, char *, size_t);
	size_t n = g->nx * g->ny * g->nz, at;
	char bad[32] = "";

	switch (nim->datatype) {
	case DT_UINT8: conv = convert_uint8; break;
	case DT_INT8: conv = convert_int8; break;
	case DT_UINT16: conv = convert_uint16; break;
	case DT_INT16: conv = convert_int16; break;
	case DT_UINT32: conv = convert_uint32; break;
	case DT_INT32: conv = convert_int32; break;
	case DT_UINT64: conv = convert_uint64; break;
	case DT_INT64: conv = convert_int64; break;
	default:
		assert(!"header_check() let a non-integer datatype through");
		return r3d_err_set(err, R3D_EINVAL, "datatype %d", nim->datatype);
	}
	at = conv(nim->data, dst, n, seen, bad, sizeof bad);
	if (at == n)
		return true;
	return r3d_err_set(err, R3D_EINVAL,
			   "label %s at voxel (%zu, %zu, %zu): %s", bad, at % g->nx,
			   at / g->nx % g->ny, at / (g->nx * g->ny),
			   bad[0] == '-' ? "labels cannot be negative"
					 : "labels above 255 do not fit a Label Map Segmentation's "
					   "8-bit pixels");
}

/* ===================================================================== */
/* Segments                                                              */
/* ===================================================================== */

static void segment_from_totalseg(struct segobj_segment *seg, unsigned label)
{
	const char *name = totalseg_total_name(label);
	const struct totalseg_class *c = totalseg_find(name);
	int i;

	if (name == NULL) {
		snprintf(seg->label, sizeof seg->label, "label %u", label);
		return;
	}
	copy_str(seg->label, sizeof seg->label, name);
	if (c == NULL)
		return;
	copy_code(&seg->category, &c->category);
	copy_code(&seg->type, &c->type);
	copy_code(&seg->type_modifier, &c->type_modifier);
	copy_code(&seg->region, &c->region);
	copy_code(&seg->region_modifier, &c->region_modifier);
	seg->has_color = c->has_color;
	for (i = 0; i < 3; i++)
		seg->rgb[i] = c->has_color ? (float)c->rgb[i] / 255.0f : 0.0f;
}

static void segment_from_table(struct segobj_segment *seg, unsigned label,
			       const struct table_entry *e)
{
	if (!e->defined) {
		snprintf(seg->label, sizeof seg->label, "label %u", label);
		return;
	}
	copy_str(seg->label, sizeof seg->label, e->name);
	seg->has_color = e->has_color;
	memcpy(seg->rgb, e->rgb, sizeof seg->rgb);
	seg->category = e->category;
	seg->type = e->type;
	seg->type_modifier = e->laterality;
}

/* ===================================================================== */
/* The label map                                                         */
/* ===================================================================== */

static bool label_map_read(struct r3d_err *err, const char *path,
			   const struct table_entry *table, struct segobj *s)
{
	nifti_image *nim = NULL;
	struct geometry g = {0};
	struct stat st;
	bool seen[SEGNIFTI_MAX_LABEL + 1] = {false};
	size_t plane, k, nseg;
	unsigned label;
	bool ok = false;

	/* nifticlib says only "cannot read" (on stderr); say why when we can. */
	if (stat(path, &st) != 0) {
		r3d_err_set(err, R3D_EIO, "cannot open: %s", strerror(errno));
		goto out;
	}
	nim = nifti_image_read(path, 0);
	if (nim == NULL) {
		r3d_err_set(err, R3D_EINVAL, "nifticlib cannot read a NIfTI header from it");
		goto out;
	}
	if (!header_check(err, nim, &g))
		goto out;
	if (nifti_image_load(nim) != 0 || nim->data == NULL) {
		r3d_err_set(err, R3D_EINVAL,
			    "nifticlib cannot read its voxels (truncated or corrupt file)");
		goto out;
	}

	plane = g.nx * g.ny;
	s->kind = SEGOBJ_SEG_LABELMAP;
	s->columns = (uint32_t)g.nx;
	s->rows = (uint32_t)g.ny;
	for (k = 0; k < 3; k++) {
		s->orientation[k] = g.iax[k] / vec_len(g.iax);
		s->orientation[3 + k] = g.jax[k] / vec_len(g.jax);
	}
	s->pixel_spacing[0] = vec_len(g.jax);
	s->pixel_spacing[1] = vec_len(g.iax);
	/* rows, columns and nframes first: segnifti_free() unmaps the store by them. */
	s->nframes = g.nz;
	s->pixel_store = bigbuf_alloc(err, plane * g.nz);
	if (s->pixel_store == NULL)
		goto out;
	s->frames = calloc(g.nz, sizeof *s->frames);
	if (s->frames == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "out of memory for %zu frames", g.nz);
		goto out;
	}
	if (!labels_convert(err, nim, &g, s->pixel_store, seen))
		goto out;
	for (k = 0; k < g.nz; k++) {
		struct segobj_frame *f = &s->frames[k];
		int d;

		f->segment = 0;
		for (d = 0; d < 3; d++)
			f->position[d] = no_negative_zero(g.origin[d] + (double)k * g.kax[d]);
		f->has_position = true;
		f->pixels = s->pixel_store + k * plane;
	}

	nseg = 0;
	for (label = 1; label <= SEGNIFTI_MAX_LABEL; label++)
		nseg += seen[label];
	assert(nseg <= SEGOBJ_MAX_SEGMENTS);
	if (nseg > 0) {
		s->segments = calloc(nseg, sizeof *s->segments);
		if (s->segments == NULL) {
			r3d_err_set(err, R3D_ENOMEM, "out of memory for %zu segments", nseg);
			goto out;
		}
	}
	for (label = 1; label <= SEGNIFTI_MAX_LABEL; label++) {
		struct segobj_segment *seg;

		if (!seen[label])
			continue;
		seg = &s->segments[s->nsegments++];
		seg->number = label;
		if (table == NULL)
			segment_from_totalseg(seg, label);
		else
			segment_from_table(seg, label, &table[label]);
	}
	ok = true;
out:
	if (nim != NULL)
		nifti_image_free(nim);
	return ok;
}

/* ===================================================================== */
/* API                                                                   */
/* ===================================================================== */

bool segnifti_read(struct r3d_err *err, const char *path, const char *label_table,
		   struct segobj **out)
{
	struct table_entry *table = NULL;
	struct segobj *s = NULL;
	bool ok = false;

	assert(out != NULL);
	*out = NULL;
	if (path == NULL)
		return r3d_err_set(err, R3D_EINVAL, "no NIfTI path");
	if (label_table != NULL) {
		table = calloc(SEGNIFTI_MAX_LABEL + 1, sizeof *table);
		if (table == NULL) {
			r3d_err_set(err, R3D_ENOMEM, "out of memory for the label table");
			goto out;
		}
		if (!table_read(err, label_table, table)) {
			r3d_err_prefix(err, "label table %s", label_table);
			goto out;
		}
	}
	s = calloc(1, sizeof *s);
	if (s == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "out of memory");
		goto out;
	}
	if (!label_map_read(err, path, table, s)) {
		r3d_err_prefix(err, "NIfTI %s", path);
		goto out;
	}
	*out = s;
	s = NULL;
	ok = true;
out:
	segnifti_free(s);
	free(table);
	return ok;
}

void segnifti_free(struct segobj *s)
{
	if (s == NULL)
		return;
	bigbuf_free(s->pixel_store, (size_t)s->rows * s->columns * s->nframes);
	free(s->frames);
	free(s->segments);
	free(s->referenced_instances);
	free(s->contours);
	free(s->point_store);
	free(s);
}

bool segnifti_write_volume(struct r3d_err *err, const char *path, const int16_t *hu, size_t nx,
			   size_t ny, size_t nz, const double affine_lps[4][4])
{
	int64_t dims[8] = {3, (int64_t)nx, (int64_t)ny, (int64_t)nz, 1, 1, 1, 1};
	nifti_image *nim;
	struct stat st;
	size_t n = nx * ny * nz;

	if (nx == 0 || ny == 0 || nz == 0)
		return r3d_err_set(err, R3D_EINVAL, "NIfTI: empty volume");
	nim = nifti_make_new_nim(dims, DT_INT16, 0);
	if (nim == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "NIfTI: out of memory");
	nim->nifti_type = NIFTI_FTYPE_NIFTI1_1;
	nim->xyz_units = NIFTI_UNITS_MM;
	nim->scl_slope = 1;
	nim->scl_inter = 0;
	nim->sform_code = NIFTI_XFORM_SCANNER_ANAT;
	nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
	for (int r = 0; r < 4; r++)
		for (int c = 0; c < 4; c++)
			nim->sto_xyz.m[r][c] = (r < 2 ? -1.0 : 1.0) * affine_lps[r][c];
	nim->sto_xyz.m[3][0] = nim->sto_xyz.m[3][1] = nim->sto_xyz.m[3][2] = 0;
	nim->sto_xyz.m[3][3] = 1;
	nim->sto_ijk = nifti_dmat44_inverse(nim->sto_xyz);
	double dx, dy, dz;
	nifti_dmat44_to_quatern(nim->sto_xyz, &nim->quatern_b, &nim->quatern_c, &nim->quatern_d,
				&nim->qoffset_x, &nim->qoffset_y, &nim->qoffset_z, &dx, &dy, &dz,
				&nim->qfac);
	nim->dx = nim->pixdim[1] = dx;
	nim->dy = nim->pixdim[2] = dy;
	nim->dz = nim->pixdim[3] = dz;
	nim->qto_xyz = nifti_quatern_to_dmat44(nim->quatern_b, nim->quatern_c, nim->quatern_d,
					       nim->qoffset_x, nim->qoffset_y, nim->qoffset_z, dx, dy,
					       dz, nim->qfac);
	nim->qto_ijk = nifti_dmat44_inverse(nim->qto_xyz);
	if (nifti_set_filenames(nim, path, 0, 1) != 0) {
		nifti_image_free(nim);
		return r3d_err_set(err, R3D_EINVAL, "NIfTI: cannot name '%s'", path);
	}
	nim->data = (void *)hu;   /* written, not freed: detached before the free */
	nifti_image_write(nim);
	nim->data = NULL;
	nifti_image_free(nim);
	if (stat(path, &st) != 0 || (uint64_t)st.st_size < 352 + 2 * (uint64_t)n)
		return r3d_err_set(err, R3D_EIO, "NIfTI: cannot write '%s' (%llu voxels)", path,
				   (unsigned long long)n);
	return true;
}
