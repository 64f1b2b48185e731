/*
 * presets.c: the four segmentation presets (skin, bone, lungs, vessels) built
 * from the kernels in label.c, morph.c and fill.c, their default parameters,
 * and the per-grid workspace.
 *
 *   body    hu > body_hu; an in-plane opening cuts the thin bridges to the
 *           table; the largest 6-connected component is the trunk, and parts
 *           lying apart (arms) join it when big enough and holding bone
 *           (table rails and cushions hold none); holes are filled slice by
 *           slice. skin is this mask.
 *   bone    dense voxels (cortex) inside the body, closed in-plane and with
 *           marrow holes filled slice by slice (small holes of bone-like
 *           mean HU only, so the thorax is not filled): the core. Blood
 *           blobs are found first: smooth (mean |HU step| under
 *           blood_max_grad_hu; trabecular bone is rough), thick regions of
 *           blood density, grown by a wall margin, and kept only when that
 *           margin is partly fat or soft tissue (smooth marrow inside a
 *           vertebra is wrapped in bone). Then every voxel over low_hu
 *           (contrast_low_hu on a contrast series) connected to the core and
 *           outside the blood blobs; closed and filled again; small islands
 *           removed.
 *   lungs   air inside the filled body, 6-connected components of lung size
 *           with little pure gas (bowel gas is nearly all under gas_hu, lung
 *           parenchyma is not); small in-plane holes (vessels) filled.
 *   vessels voxels of contrast-blood density inside the body and away from
 *           bone; the series counts as contrast-enhanced when an opening
 *           leaves thick blobs (aorta, heart, kidneys) of enough volume away
 *           from the bone core. Detection runs before bone, which uses it.
 *
 * Memory order x fastest; frame: voxel indices, spacing only scales radii and
 * volumes. One ctx is used by one thread at a time; the kernels start their
 * own workers (p->threads).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/segment.h"
#include "r3d/util.h"
#include "segment_internal.h"

#define SEGMENT_MIN_SPACING_MM 0.01
#define SEGMENT_MAX_SPACING_MM 100.0
#define SEGMENT_SCRATCH 3
#define BODY_SOFT_LO_HU (-200)  /* fat to soft tissue, for telling a limb from the table */
#define BODY_SOFT_HI_HU 200

struct segment_ctx {
	size_t nx, ny, nz, nvox;
	uint8_t *buf;                           /* one big buffer for all masks */
	size_t buf_bytes;
	uint8_t *mask[SEGMENT_PRESET_COUNT]; /* results */
	uint8_t *scratch[SEGMENT_SCRATCH];
	struct segment_cc *cc;
};

static const char *const structure_names[SEGMENT_PRESET_COUNT] = {
	"skin", "bone", "lungs", "vessels",
};

const char *segment_preset_name(enum segment_preset s)
{
	return (unsigned)s < SEGMENT_PRESET_COUNT ? structure_names[s] : "unknown";
}

enum segment_preset segment_preset_from_name(const char *name)
{
	int s;

	for (s = 0; s < SEGMENT_PRESET_COUNT; s++)
		if (strcmp(name, structure_names[s]) == 0)
			return (enum segment_preset)s;
	return SEGMENT_PRESET_COUNT;
}

void segment_params_default(struct segment_params *p)
{
	memset(p, 0, sizeof(*p));
	p->skin.body_hu = -399.5;
	p->skin.open_mm = 3.0;
	p->skin.min_ml = 100.0;
	p->skin.min_part_fraction = 0.01;
	p->skin.part_min_bone_fraction = 0.01;
	p->skin.part_min_soft_fraction = 0.5;

	p->bone.dense_hu = 299.5;
	p->bone.low_hu = 99.5;
	p->bone.contrast_low_hu = 149.5;
	p->bone.contrast_reach_mm = 10.0;
	p->bone.blood_open_mm = 3.0;
	p->bone.blood_max_grad_hu = 17.5;
	p->bone.blood_window_mm = 3.0;
	p->bone.blood_margin_mm = 6.0;
	p->bone.blood_close_mm = 4.0;
	p->bone.blood_min_soft_excess = 0.05;
	p->bone.close_mm = 2.0;
	p->bone.hole_max_mm2 = 2500.0;
	p->bone.hole_min_mean_hu = 59.5;
	p->bone.min_island_ml = 0.5;

	p->lungs.air_hu = -399.5;
	p->lungs.min_ml = 20.0;
	p->lungs.hole_max_mm2 = 300.0;
	p->lungs.gas_hu = -949.5;
	p->lungs.gas_max_fraction = 0.3;

	p->vessels.low_hu = 149.5;
	p->vessels.high_hu = 599.5;
	p->vessels.detect_low_hu = 119.5;
	p->vessels.detect_open_mm = 4.0;
	p->vessels.detect_min_ml_per_cm = 1.0;
	p->vessels.bone_margin_mm = 2.0;
	p->vessels.min_ml = 1.0;

	p->threads = 2;
}

bool segment_ctx_create(struct r3d_err *err, size_t nx, size_t ny, size_t nz,
			struct segment_ctx **out)
{
	struct segment_ctx *ctx = NULL;
	size_t nvox, bytes, i;
	bool ok = false;

	*out = NULL;
	if (nx == 0 || ny == 0 || nz == 0 || nx > SEGMENT_MAX_DIM || ny > SEGMENT_MAX_DIM ||
	    nz > SEGMENT_MAX_DIM || !size_mul3(nx, ny, nz, &nvox) || nvox > SEGMENT_MAX_VOXELS) {
		r3d_err_set(err, R3D_EINVAL, "bad grid %zux%zux%zu for segmentation", nx, ny, nz);
		goto out;
	}
	if (!size_mul(nvox, SEGMENT_PRESET_COUNT + SEGMENT_SCRATCH, &bytes)) {
		r3d_err_set(err, R3D_EINVAL, "segmentation buffers overflow");
		goto out;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "no memory for a segmentation context");
		goto out;
	}
	ctx->nx = nx;
	ctx->ny = ny;
	ctx->nz = nz;
	ctx->nvox = nvox;
	if (!segment_cc_create(err, 1, &ctx->cc))
		goto out;
	ctx->buf = bigbuf_alloc(err, bytes);
	if (ctx->buf == NULL)
		goto out;
	ctx->buf_bytes = bytes;
	for (i = 0; i < SEGMENT_PRESET_COUNT; i++)
		ctx->mask[i] = ctx->buf + i * nvox;
	for (i = 0; i < SEGMENT_SCRATCH; i++)
		ctx->scratch[i] = ctx->buf + (SEGMENT_PRESET_COUNT + i) * nvox;
	*out = ctx;
	ctx = NULL;
	ok = true;
out:
	segment_ctx_destroy(ctx);
	return ok;
}

void segment_ctx_destroy(struct segment_ctx *ctx)
{
	if (ctx == NULL)
		return;
	bigbuf_free(ctx->buf, ctx->buf_bytes);
	segment_cc_destroy(ctx->cc);
	free(ctx);
}

/* ---- small threaded voxel loops --------------------------------------- */

enum vox_op {
	VOX_ABOVE,      /* out = hu > lo (&& within) */
	VOX_BELOW,      /* out = hu < lo (&& within) */
	VOX_BAND,       /* out = lo < hu <= hi (&& within) */
	VOX_AND,        /* out &= a */
	VOX_ANDNOT,     /* out &= !a */
	VOX_OR,         /* out |= a */
};

struct vox_arg {
	enum vox_op op;
	const int16_t *hu;
	const uint8_t *a;       /* within / operand */
	uint8_t *out;
	double lo, hi;
};

/* Half-integer threshold t on integer HU: hu > t <=> hu >= above_min(t). */
static int16_t hu_above_min(double t)
{
	double v = floor(t) + 1;

	return (int16_t)(v < INT16_MIN ? INT16_MIN : v > INT16_MAX ? INT16_MAX : v);
}

static void vox_range(void *p, size_t begin, size_t end, int worker)
{
	const struct vox_arg *v = p;
	const int16_t *hu = v->hu;
	const uint8_t *a = v->a;
	uint8_t *o = v->out;
	size_t i;
	/* hu > lo <=> hu >= lo_min; hu <= hi <=> hu < hi_min; hu < lo <=> hu < lo_min */
	int16_t lo_min = hu_above_min(v->lo), hi_min = hu_above_min(v->hi);

	(void)worker;
	if (v->op == VOX_BELOW)
		lo_min = (int16_t)fmax(INT16_MIN, fmin(INT16_MAX, ceil(v->lo)));
	switch (v->op) {
	case VOX_ABOVE:
		if (a == NULL)
			for (i = begin; i < end; i++)
				o[i] = hu[i] >= lo_min;
		else
			for (i = begin; i < end; i++)
				o[i] = (hu[i] >= lo_min) & (a[i] != 0);
		break;
	case VOX_BELOW:
		if (a == NULL)
			for (i = begin; i < end; i++)
				o[i] = hu[i] < lo_min;
		else
			for (i = begin; i < end; i++)
				o[i] = (hu[i] < lo_min) & (a[i] != 0);
		break;
	case VOX_BAND:
		if (a == NULL)
			for (i = begin; i < end; i++)
				o[i] = (hu[i] >= lo_min) & (hu[i] < hi_min);
		else
			for (i = begin; i < end; i++)
				o[i] = (hu[i] >= lo_min) & (hu[i] < hi_min) & (a[i] != 0);
		break;
	case VOX_AND:
		for (i = begin; i < end; i++)
			o[i] &= a[i];
		break;
	case VOX_ANDNOT:
		for (i = begin; i < end; i++)
			o[i] &= (uint8_t)(a[i] ^ 1);
		break;
	case VOX_OR:
		for (i = begin; i < end; i++)
			o[i] |= a[i];
		break;
	}
}

static void vox_run(int threads, size_t n, enum vox_op op, const int16_t *hu, const uint8_t *a,
		    uint8_t *out, double lo, double hi)
{
	struct vox_arg v = { op, hu, a, out, lo, hi };

	segment_parallel(threads, n, vox_range, &v);
}

/* Radius in voxels for mm along an axis of spacing sp (at least 0). */
static unsigned radius_vox(double mm, double sp)
{
	double r = floor(mm / sp + 0.5);

	if (r < 0)
		return 0;
	if (r > SEGMENT_MAX_RADIUS_VOX)
		return SEGMENT_MAX_RADIUS_VOX;
	return (unsigned)r;
}

static size_t voxels_for_ml(const struct segment_volume *vol, double ml)
{
	double v = vol->spacing_mm[0] * vol->spacing_mm[1] * vol->spacing_mm[2];
	double n = ceil(ml * 1000.0 / v);

	return n < 1 ? 1 : (size_t)n;
}

/* Scan length along z in cm. */
static double scan_cm(const struct segment_volume *vol)
{
	return (double)vol->nz * vol->spacing_mm[2] / 10.0;
}

static double ml_of(const struct segment_volume *vol, size_t voxels)
{
	return (double)voxels * vol->spacing_mm[0] * vol->spacing_mm[1] * vol->spacing_mm[2] / 1000.0;
}

/* Opening (open = true) or closing in the xy plane, in place on m. */
static bool morph_plane(struct r3d_err *err, struct segment_ctx *ctx, const struct segment_volume *vol,
			uint8_t *m, uint8_t *tmp, double mm, bool open, int threads)
{
	unsigned r[3];

	r[0] = radius_vox(mm, vol->spacing_mm[0]);
	r[1] = radius_vox(mm, vol->spacing_mm[1]);
	r[2] = 0;
	if (r[0] == 0 && r[1] == 0)
		return true;
	if (open)
		return segment_erode(err, m, m, tmp, ctx->nx, ctx->ny, ctx->nz, r, threads) &&
		       segment_dilate(err, m, m, tmp, ctx->nx, ctx->ny, ctx->nz, r, threads);
	return segment_dilate(err, m, m, tmp, ctx->nx, ctx->ny, ctx->nz, r, threads) &&
	       segment_erode(err, m, m, tmp, ctx->nx, ctx->ny, ctx->nz, r, threads);
}

/* ---- presets ------------------------------------------------------------ */

/* Paints into body the largest component id of the labelled mask and the
 * other parts (arms, legs lying apart) of at least min_part_fraction of its
 * size that hold bone (part_min_bone_fraction of voxels over dense_hu; a
 * table rail or a cushion holds none) and are mostly soft tissue
 * (part_min_soft_fraction in (-200, 200) HU; a dense table slab is not). */
static bool body_parts(struct r3d_err *err, struct segment_ctx *ctx, const struct segment_volume *vol,
		       const struct segment_params *p, size_t id, uint8_t *body)
{
	struct segment_cc *cc = ctx->cc;
	uint8_t *keep = calloc(cc->count + 1, 1);
	size_t *dense = calloc(cc->count + 1, sizeof(size_t));
	size_t *soft = calloc(cc->count + 1, sizeof(size_t));
	size_t r, k, j, min_part = (size_t)(p->skin.min_part_fraction * (double)cc->sizes[id]);
	int16_t dense_min = hu_above_min(p->bone.dense_hu);
	bool ok = false;

	if (keep == NULL || dense == NULL || soft == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "no memory for the body components");
		goto out;
	}
	for (r = 0; r < ctx->ny * ctx->nz; r++) {
		const int16_t *h = vol->hu + r * ctx->nx;

		for (k = cc->row_start[r]; k < cc->row_start[r + 1]; k++) {
			size_t c = 0, t = 0;
			uint32_t x;

			if (cc->sizes[cc->parent[k]] < min_part)
				continue;
			for (x = cc->rx0[k]; x < cc->rx1[k]; x++) {
				c += h[x] >= dense_min;
				t += h[x] > BODY_SOFT_LO_HU && h[x] < BODY_SOFT_HI_HU;
			}
			dense[cc->parent[k]] += c;
			soft[cc->parent[k]] += t;
		}
	}
	for (j = 1; j <= cc->count; j++)
		keep[j] = j == id ||
			  (cc->sizes[j] >= min_part &&
			   (double)dense[j] >= p->skin.part_min_bone_fraction * (double)cc->sizes[j] &&
			   (double)soft[j] >= p->skin.part_min_soft_fraction * (double)cc->sizes[j]);
	segment_cc_paint(cc, keep, body);
	ok = true;
out:
	free(soft);
	free(dense);
	free(keep);
	return ok;
}

/* ctx->mask[SKIN] = filled body. False with err on failure; *found false when
 * there is no body of at least min_ml. */
static bool run_body(struct r3d_err *err, struct segment_ctx *ctx, const struct segment_volume *vol,
		     const struct segment_params *p, bool *found)
{
	uint8_t *body = ctx->mask[SEGMENT_SKIN], *t1 = ctx->scratch[0];
	size_t id;

	*found = false;
	vox_run(p->threads, ctx->nvox, VOX_ABOVE, vol->hu, NULL, body, p->skin.body_hu, 0);
	if (!morph_plane(err, ctx, vol, body, t1, p->skin.open_mm, true, p->threads))
		return false;
	if (!segment_cc_label(err, ctx->cc, body, ctx->nx, ctx->ny, ctx->nz, 6))
		return false;
	id = segment_cc_largest(ctx->cc);
	if (id == 0 || segment_cc_size(ctx->cc, id) < voxels_for_ml(vol, p->skin.min_ml)) {
		memset(body, 0, ctx->nvox);
		return true;
	}
	if (!body_parts(err, ctx, vol, p, id, body))
		return false;
	if (!segment_fill_holes_2d(err, body, ctx->nx, ctx->ny, ctx->nz, 0, NULL, 0, p->threads))
		return false;
	*found = true;
	return true;
}

/* Marks the components of m (26-connected) that contain a voxel of seed;
 * m keeps only those. */
static bool keep_seeded(struct r3d_err *err, struct segment_ctx *ctx, uint8_t *m, const uint8_t *seed)
{
	struct segment_cc *cc = ctx->cc;
	uint8_t *keep = NULL;
	size_t r, k, x;
	bool ok = false;

	if (!segment_cc_label(err, cc, m, ctx->nx, ctx->ny, ctx->nz, 26))
		goto out;
	keep = calloc(cc->count + 1, 1);
	if (keep == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "no memory for the bone components");
		goto out;
	}
	for (r = 0; r < ctx->ny * ctx->nz; r++) {
		const uint8_t *srow = seed + r * ctx->nx;

		for (k = cc->row_start[r]; k < cc->row_start[r + 1]; k++) {
			if (keep[cc->parent[k]])
				continue;
			for (x = cc->rx0[k]; x < cc->rx1[k]; x++) {
				if (srow[x]) {
					keep[cc->parent[k]] = 1;
					break;
				}
			}
		}
	}
	segment_cc_paint(cc, keep, m);
	ok = true;
out:
	free(keep);
	return ok;
}

/* Dense voxels, closed in-plane, with the marrow holes filled: the bone core.
 * In place on m; uses scratch 0. */
static bool bone_core(struct r3d_err *err, struct segment_ctx *ctx, const struct segment_volume *vol,
		      const struct segment_params *p, uint8_t *m)
{
	const struct segment_bone_params *b = &p->bone;
	size_t max_hole = (size_t)(b->hole_max_mm2 / (vol->spacing_mm[0] * vol->spacing_mm[1]));

	if (!morph_plane(err, ctx, vol, m, ctx->scratch[0], b->close_mm, false, p->threads))
		return false;
	if (!segment_fill_holes_2d(err, m, ctx->nx, ctx->ny, ctx->nz, max_hole == 0 ? 1 : max_hole,
				   vol->hu, b->hole_min_mean_hu, p->threads))
		return false;
	vox_run(p->threads, ctx->nvox, VOX_AND, NULL, ctx->mask[SEGMENT_SKIN], m, 0, 0);
	return true;
}

/* Thick blobs of contrast-blood density away from the bone core decide
 * whether the series is contrast-enhanced. Leaves the bone core in
 * ctx->mask[SEGMENT_BONE]; uses scratch 0..2. */
static bool detect_contrast(struct r3d_err *err, struct segment_ctx *ctx,
			    const struct segment_volume *vol, const struct segment_params *p,
			    struct segment_result *res)
{
	const struct segment_vessel_params *v = &p->vessels;
	const uint8_t *body = ctx->mask[SEGMENT_SKIN];
	uint8_t *core = ctx->mask[SEGMENT_BONE], *near = ctx->scratch[1], *blobs = ctx->scratch[2];
	uint8_t *tmp = ctx->scratch[0];
	unsigned r[3];
	int i;

	vox_run(p->threads, ctx->nvox, VOX_ABOVE, vol->hu, body, core, p->bone.dense_hu, 0);
	if (!bone_core(err, ctx, vol, p, core))
		return false;
	for (i = 0; i < 3; i++)
		r[i] = radius_vox(v->bone_margin_mm, vol->spacing_mm[i]);
	if (!segment_dilate(err, core, near, tmp, ctx->nx, ctx->ny, ctx->nz, r, p->threads))
		return false;
	vox_run(p->threads, ctx->nvox, VOX_BAND, vol->hu, body, blobs, v->detect_low_hu, v->high_hu);
	vox_run(p->threads, ctx->nvox, VOX_ANDNOT, NULL, near, blobs, 0, 0);
	for (i = 0; i < 3; i++)
		r[i] = radius_vox(v->detect_open_mm, vol->spacing_mm[i]);
	if (!segment_erode(err, blobs, blobs, tmp, ctx->nx, ctx->ny, ctx->nz, r, p->threads) ||
	    !segment_dilate(err, blobs, blobs, tmp, ctx->nx, ctx->ny, ctx->nz, r, p->threads))
		return false;
	res->contrast_ml = ml_of(vol, segment_count_set(blobs, ctx->nvox));
	res->contrast = res->contrast_ml >= v->detect_min_ml_per_cm * scan_cm(vol);
	return true;
}

/* Per slice: out = hu in (lo, hi] where the mean |HU step| (x and y) over a
 * (2r+1)^2 in-plane window is below max_grad. Box sums are separable
 * running sums; each worker has its own slice buffers. */
struct smooth_arg {
	const int16_t *hu;
	const uint8_t *within;
	uint8_t *out;
	size_t nx, ny;
	int16_t lo_min, hi_min;
	unsigned r;
	double max_grad;
	int nworkers;
	uint32_t *buf;          /* per worker: 2 * nx * ny, then 2 * nx */
};

static void smooth_slices(void *p, size_t begin, size_t end, int worker)
{
	const struct smooth_arg *a = p;
	size_t nx = a->nx, ny = a->ny, plane = nx * ny, z, x, y;
	uint32_t *g = a->buf + (size_t)worker * 2 * plane, *sx = g + plane;
	uint32_t *acc = a->buf + (size_t)a->nworkers * 2 * plane + (size_t)worker * 2 * nx;
	uint32_t *wx = acc + nx;
	size_t r = a->r;

	for (x = 0; x < nx; x++)
		wx[x] = (uint32_t)((x + r < nx ? x + r : nx - 1) - (x > r ? x - r : 0) + 1);
	for (z = begin; z < end; z++) {
		const int16_t *h = a->hu + z * plane;
		const uint8_t *w = a->within + z * plane;
		uint8_t *o = a->out + z * plane;

		/* g = |step along x| + |step along y|, then running sums along x. */
		for (y = 0; y < ny; y++) {
			const int16_t *hr = h + y * nx, *hn = y + 1 < ny ? hr + nx : hr;
			uint32_t *gr = g + y * nx, *srow = sx + y * nx;
			uint64_t s = 0;

			for (x = 0; x + 1 < nx; x++)
				gr[x] = (uint32_t)(abs(hr[x + 1] - hr[x]) + abs(hn[x] - hr[x]));
			gr[nx - 1] = (uint32_t)abs(hn[nx - 1] - hr[nx - 1]);
			for (x = 0; x < r && x < nx; x++)
				s += gr[x];
			for (x = 0; x < nx; x++) {
				if (x + r < nx)
					s += gr[x + r];
				if (x > r)
					s -= gr[x - r - 1];
				srow[x] = (uint32_t)s;
			}
		}
		/* Running sums of the rows along y, row by row. */
		memset(acc, 0, nx * sizeof(*acc));
		for (y = 0; y < r && y < ny; y++)
			for (x = 0; x < nx; x++)
				acc[x] += sx[y * nx + x];
		for (y = 0; y < ny; y++) {
			size_t i0 = y * nx;
			double wy = (double)((y + r < ny ? y + r : ny - 1) - (y > r ? y - r : 0) + 1);
			double lim = a->max_grad * 2.0 * wy;

			if (y + r < ny)
				for (x = 0; x < nx; x++)
					acc[x] += sx[(y + r) * nx + x];
			if (y > r)
				for (x = 0; x < nx; x++)
					acc[x] -= sx[(y - r - 1) * nx + x];
			for (x = 0; x < nx; x++) {
				size_t i = i0 + x;

				o[i] = w[i] && h[i] >= a->lo_min && h[i] < a->hi_min &&
				       (double)acc[x] < lim * (double)wx[x];
			}
		}
	}
}

/* blood = thick, smooth regions of contrast-blood density (aorta, heart, big
 * veins): voxels in (low_hu, vessels.high_hu] whose neighbourhood is smooth
 * (mean |HU step| below blood_max_grad_hu; trabecular bone of the same
 * density is rougher), kept where an in-plane opening of blood_open_mm
 * leaves them, closed over plaque, grown by blood_margin_mm in-plane to take
 * their wall, and kept when that margin holds more soft tissue (under
 * low_hu) than dense bone (over dense_hu), by blood_min_soft_excess of it.
 * Uses scratch 0 and 1. */
static bool blood_blobs(struct r3d_err *err, struct segment_ctx *ctx, const struct segment_volume *vol,
			const struct segment_params *p, double low_hu, uint8_t *blood)
{
	const struct segment_bone_params *b = &p->bone;
	struct segment_cc *cc = ctx->cc;
	struct smooth_arg a;
	uint8_t *grown = ctx->scratch[1], *keep = NULL;
	size_t *ring = NULL, *soft = NULL, *dense = NULL, r, k, id;
	int16_t soft_lt = hu_above_min(b->low_hu), dense_min = hu_above_min(b->dense_hu);
	unsigned margin[3];
	int nt = segment_threads_clamp(p->threads, ctx->nz);
	bool ok = false;

	memset(&a, 0, sizeof(a));
	a.nworkers = nt;
	a.buf = malloc((size_t)nt * 2 * (ctx->nx * ctx->ny + ctx->nx) * sizeof(uint32_t));
	if (a.buf == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "no memory for the blood map");
		goto out;
	}
	a.hu = vol->hu;
	a.within = ctx->mask[SEGMENT_SKIN];
	a.out = blood;
	a.nx = ctx->nx;
	a.ny = ctx->ny;
	a.lo_min = hu_above_min(low_hu);
	a.hi_min = hu_above_min(p->vessels.high_hu);
	a.r = radius_vox(b->blood_window_mm, fmin(vol->spacing_mm[0], vol->spacing_mm[1]));
	a.max_grad = b->blood_max_grad_hu;
	segment_parallel(nt, ctx->nz, smooth_slices, &a);
	if (!morph_plane(err, ctx, vol, blood, ctx->scratch[0], b->blood_open_mm, true, p->threads))
		goto out;
	/* Calcified plaque makes parts of a lumen rough: close over them. */
	if (!morph_plane(err, ctx, vol, blood, ctx->scratch[0], b->blood_close_mm, false, p->threads))
		goto out;
	/* Grow each blob by the wall margin; a blob whose margin lies mostly in
	 * tissue over low_hu is smooth marrow inside a vertebra, not a vessel
	 * (a vessel's margin is largely fat and soft tissue). */
	margin[0] = radius_vox(b->blood_margin_mm, vol->spacing_mm[0]);
	margin[1] = radius_vox(b->blood_margin_mm, vol->spacing_mm[1]);
	margin[2] = 0;
	if (!segment_dilate(err, blood, grown, ctx->scratch[0], ctx->nx, ctx->ny, ctx->nz, margin,
			    p->threads))
		goto out;
	if (!segment_cc_label(err, cc, grown, ctx->nx, ctx->ny, ctx->nz, 26))
		goto out;
	keep = calloc(cc->count + 1, 1);
	ring = calloc(cc->count + 1, sizeof(*ring));
	soft = calloc(cc->count + 1, sizeof(*soft));
	dense = calloc(cc->count + 1, sizeof(*dense));
	if (keep == NULL || ring == NULL || soft == NULL || dense == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "no memory for the blood components");
		goto out;
	}
	for (r = 0; r < ctx->ny * ctx->nz; r++) {
		const int16_t *h = vol->hu + r * ctx->nx;
		const uint8_t *in = blood + r * ctx->nx;

		for (k = cc->row_start[r]; k < cc->row_start[r + 1]; k++) {
			size_t nr = 0, ns = 0, nd = 0;
			uint32_t x;

			for (x = cc->rx0[k]; x < cc->rx1[k]; x++) {
				if (in[x])
					continue;
				nr++;
				ns += h[x] < soft_lt;
				nd += h[x] >= dense_min;
			}
			ring[cc->parent[k]] += nr;
			soft[cc->parent[k]] += ns;
			dense[cc->parent[k]] += nd;
		}
	}
	/* Measured: vessel and heart margins 0.23..0.54 soft minus dense,
	 * vertebral marrow -0.65..-0.13. */
	for (id = 1; id <= cc->count; id++)
		keep[id] = ring[id] > 0 && (double)soft[id] - (double)dense[id] >=
						   b->blood_min_soft_excess * (double)ring[id];
	segment_cc_paint(cc, keep, blood);
	ok = true;
out:
	free(dense);
	free(soft);
	free(ring);
	free(keep);
	free(a.buf);
	return ok;
}

/* From the core in ctx->mask[SEGMENT_BONE]: the bone mask. */
static bool run_bone(struct r3d_err *err, struct segment_ctx *ctx, const struct segment_volume *vol,
		     const struct segment_params *p, bool contrast)
{
	const struct segment_bone_params *b = &p->bone;
	const uint8_t *body = ctx->mask[SEGMENT_SKIN];
	uint8_t *bone = ctx->mask[SEGMENT_BONE], *seed = ctx->scratch[2];
	uint8_t *blood = ctx->mask[SEGMENT_VESSELS];

	/* Smooth blobs of blood density (aorta, heart: weak contrast may have
	 * gone undetected) leave the core. The blood mask lives in the vessels
	 * buffer until run_vessels() overwrites it. */
	if (!blood_blobs(err, ctx, vol, p, contrast ? p->vessels.detect_low_hu : b->low_hu, blood))
		return false;
	/* Everything over the low threshold that is connected to the core:
	 * marrow, partial volume at the surface, gaps of a thin cortex. On a
	 * contrast series the threshold is higher (enhanced organs) and blood
	 * cannot be reached through its blobs, which are excluded. */
	memcpy(seed, bone, ctx->nvox);
	vox_run(p->threads, ctx->nvox, VOX_ABOVE, vol->hu, body, bone,
		contrast ? b->contrast_low_hu : b->low_hu, 0);
	vox_run(p->threads, ctx->nvox, VOX_ANDNOT, NULL, blood, bone, 0, 0);
	vox_run(p->threads, ctx->nvox, VOX_OR, NULL, seed, bone, 0, 0);
	if (!keep_seeded(err, ctx, bone, seed))
		return false;
	if (contrast && b->contrast_reach_mm > 0) {
		/* Enhanced organs touching bone (a kidney on a rib) are reached
		 * too: keep only what lies near the core. */
		uint8_t *near = ctx->scratch[1];
		unsigned r[3];
		int i;

		for (i = 0; i < 3; i++)
			r[i] = radius_vox(b->contrast_reach_mm, vol->spacing_mm[i]);
		if (!segment_dilate(err, seed, near, ctx->scratch[0], ctx->nx, ctx->ny, ctx->nz, r,
				    p->threads))
			return false;
		vox_run(p->threads, ctx->nvox, VOX_AND, NULL, near, bone, 0, 0);
	}
	/* The grown shell may close rings the core left open. */
	if (!bone_core(err, ctx, vol, p, bone))
		return false;
	vox_run(p->threads, ctx->nvox, VOX_ANDNOT, NULL, blood, bone, 0, 0);
	if (!segment_cc_label(err, ctx->cc, bone, ctx->nx, ctx->ny, ctx->nz, 26))
		return false;
	segment_cc_paint_min_size(ctx->cc, voxels_for_ml(vol, b->min_island_ml), bone);
	return true;
}

static bool run_lungs(struct r3d_err *err, struct segment_ctx *ctx, const struct segment_volume *vol,
		      const struct segment_params *p, size_t *kept)
{
	const struct segment_lung_params *l = &p->lungs;
	struct segment_cc *cc = ctx->cc;
	uint8_t *lungs = ctx->mask[SEGMENT_LUNGS], *keep = NULL;
	size_t *gas = NULL;
	size_t min_vox = voxels_for_ml(vol, l->min_ml), r, k, id, nx = ctx->nx, hole_px;
	int gas_lt = (int)ceil(l->gas_hu);
	bool ok = false;

	*kept = 0;
	vox_run(p->threads, ctx->nvox, VOX_BELOW, vol->hu, ctx->mask[SEGMENT_SKIN], lungs, l->air_hu, 0);
	if (!segment_cc_label(err, cc, lungs, ctx->nx, ctx->ny, ctx->nz, 6))
		goto out;
	keep = calloc(cc->count + 1, 1);
	gas = calloc(cc->count + 1, sizeof(*gas));
	if (keep == NULL || gas == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "no memory for the lung components");
		goto out;
	}
	for (r = 0; r < ctx->ny * ctx->nz; r++) {
		const int16_t *h = vol->hu + r * nx;

		for (k = cc->row_start[r]; k < cc->row_start[r + 1]; k++) {
			size_t c = 0;
			uint32_t x;

			if (cc->sizes[cc->parent[k]] < min_vox)
				continue;
			for (x = cc->rx0[k]; x < cc->rx1[k]; x++)
				c += h[x] < gas_lt;
			gas[cc->parent[k]] += c;
		}
	}
	for (id = 1; id <= cc->count; id++) {
		double frac;

		if (cc->sizes[id] < min_vox)
			continue;
		frac = (double)gas[id] / (double)cc->sizes[id];
		if (frac > l->gas_max_fraction)
			continue;
		keep[id] = 1;
		(*kept)++;
	}
	segment_cc_paint(cc, keep, lungs);
	/* Vessels and nodules inside the lung belong to it; the dome of the
	 * liver seen through the lung base does not. */
	hole_px = (size_t)(l->hole_max_mm2 / (vol->spacing_mm[0] * vol->spacing_mm[1]));
	if (hole_px > 0 &&
	    !segment_fill_holes_2d(err, lungs, ctx->nx, ctx->ny, ctx->nz, hole_px, NULL, 0, p->threads))
		goto out;
	ok = true;
out:
	free(gas);
	free(keep);
	return ok;
}

static bool run_vessels(struct r3d_err *err, struct segment_ctx *ctx, const struct segment_volume *vol,
			const struct segment_params *p)
{
	const struct segment_vessel_params *v = &p->vessels;
	uint8_t *ves = ctx->mask[SEGMENT_VESSELS], *near = ctx->scratch[1], *tmp = ctx->scratch[0];
	unsigned r[3];
	int i;

	for (i = 0; i < 3; i++)
		r[i] = radius_vox(v->bone_margin_mm, vol->spacing_mm[i]);
	if (!segment_dilate(err, ctx->mask[SEGMENT_BONE], near, tmp, ctx->nx, ctx->ny, ctx->nz, r,
			    p->threads))
		return false;
	vox_run(p->threads, ctx->nvox, VOX_BAND, vol->hu, ctx->mask[SEGMENT_SKIN], ves, v->low_hu,
		v->high_hu);
	vox_run(p->threads, ctx->nvox, VOX_ANDNOT, NULL, near, ves, 0, 0);
	if (!segment_cc_label(err, ctx->cc, ves, ctx->nx, ctx->ny, ctx->nz, 26))
		return false;
	segment_cc_paint_min_size(ctx->cc, voxels_for_ml(vol, v->min_ml), ves);
	return true;
}

static bool mm_ok(double v)
{
	return v >= 0 && v <= SEGMENT_MAX_PARAM_MM;
}

static bool fraction_ok(double v)
{
	return v >= 0 && v <= 1;
}

/* Lengths, volumes and fractions in range (thresholds may be anything). */
static bool params_check(struct r3d_err *err, const struct segment_params *p)
{
	const struct segment_skin_params *s = &p->skin;
	const struct segment_bone_params *b = &p->bone;
	const struct segment_lung_params *l = &p->lungs;
	const struct segment_vessel_params *v = &p->vessels;

	if (p->threads < 1 || p->threads > SEGMENT_MAX_THREADS)
		return r3d_err_set(err, R3D_EINVAL, "thread count %d not in 1..%d", p->threads,
				   SEGMENT_MAX_THREADS);
	if (!mm_ok(s->open_mm) || !mm_ok(b->contrast_reach_mm) || !mm_ok(b->blood_window_mm) ||
	    !mm_ok(b->blood_open_mm) || !mm_ok(b->blood_close_mm) || !mm_ok(b->blood_margin_mm) ||
	    !mm_ok(b->close_mm) || !mm_ok(v->detect_open_mm) || !mm_ok(v->bone_margin_mm))
		return r3d_err_set(err, R3D_EINVAL, "a segmentation length is outside 0..%g mm",
				   SEGMENT_MAX_PARAM_MM);
	if (!fraction_ok(s->min_part_fraction) || !fraction_ok(s->part_min_bone_fraction) ||
	    !fraction_ok(s->part_min_soft_fraction) || !fraction_ok(l->gas_max_fraction) ||
	    !(b->blood_min_soft_excess >= -1 && b->blood_min_soft_excess <= 1))
		return r3d_err_set(err, R3D_EINVAL, "a segmentation fraction is outside 0..1");
	if (!(s->min_ml >= 0) || !(b->min_island_ml >= 0) || !(b->hole_max_mm2 >= 0) ||
	    !(l->min_ml >= 0) || !(l->hole_max_mm2 >= 0) || !(v->detect_min_ml_per_cm >= 0) ||
	    !(v->min_ml >= 0) || !(b->blood_max_grad_hu >= 0))
		return r3d_err_set(err, R3D_EINVAL, "a segmentation size is negative");
	return true;
}

static void skip(struct segment_result *res, int s, const char *why)
{
	res->mask[s] = NULL;
	snprintf(res->skipped_reason[s], sizeof(res->skipped_reason[s]), "%s", why);
}

static void range_set(struct segment_result *res, int s, double lo, double hi)
{
	res->range_lo[s] = lo;
	res->range_hi[s] = hi;
}

bool segment_run(struct r3d_err *err, struct segment_ctx *ctx, const struct segment_volume *vol,
		 const struct segment_params *p, unsigned structures, struct segment_result *res)
{
	bool want[SEGMENT_PRESET_COUNT], found = false, ok = false, have_bone = false;
	double t0, t1;
	size_t nlungs = 0;
	int s;

	memset(res, 0, sizeof(*res));
	if (vol->hu == NULL || vol->nx != ctx->nx || vol->ny != ctx->ny || vol->nz != ctx->nz) {
		r3d_err_set(err, R3D_EINVAL, "volume %zux%zux%zu does not match the workspace %zux%zux%zu",
			    vol->nx, vol->ny, vol->nz, ctx->nx, ctx->ny, ctx->nz);
		goto out;
	}
	for (s = 0; s < 3; s++) {
		double sp = vol->spacing_mm[s];

		if (!(sp >= SEGMENT_MIN_SPACING_MM && sp <= SEGMENT_MAX_SPACING_MM)) {
			r3d_err_set(err, R3D_EINVAL, "voxel spacing %g mm out of range", sp);
			goto out;
		}
	}
	if (!params_check(err, p))
		goto out;
	ctx->cc->threads = p->threads;
	for (s = 0; s < SEGMENT_PRESET_COUNT; s++) {
		want[s] = (structures >> s) & 1u;
		if (!want[s])
			skip(res, s, "not requested");
	}

	t0 = clock_mono_s();
	if (!run_body(err, ctx, vol, p, &found))
		goto out;
	t1 = clock_mono_s();
	res->body_ms = (t1 - t0) * 1e3;
	if (!found) {
		for (s = 0; s < SEGMENT_PRESET_COUNT; s++)
			if (want[s])
				skip(res, s, "no body found in the field of view");
		ok = true;
		goto out;
	}
	if (want[SEGMENT_SKIN]) {
		res->mask[SEGMENT_SKIN] = ctx->mask[SEGMENT_SKIN];
		res->ms[SEGMENT_SKIN] = res->body_ms;
	}
	if (want[SEGMENT_BONE] || want[SEGMENT_VESSELS]) {
		t0 = clock_mono_s();
		if (!detect_contrast(err, ctx, vol, p, res))
			goto out;
		t1 = clock_mono_s();
		res->detect_ms = (t1 - t0) * 1e3;
		if (!run_bone(err, ctx, vol, p, res->contrast))
			goto out;
		have_bone = true;
		res->ms[SEGMENT_BONE] = (clock_mono_s() - t1) * 1e3;
		if (want[SEGMENT_BONE])
			res->mask[SEGMENT_BONE] = ctx->mask[SEGMENT_BONE];
	}
	if (want[SEGMENT_LUNGS]) {
		t0 = clock_mono_s();
		if (!run_lungs(err, ctx, vol, p, &nlungs))
			goto out;
		res->ms[SEGMENT_LUNGS] = (clock_mono_s() - t0) * 1e3;
		if (nlungs > 0)
			res->mask[SEGMENT_LUNGS] = ctx->mask[SEGMENT_LUNGS];
		else
			skip(res, SEGMENT_LUNGS, "no air-filled lung inside the body in the field of view");
	}
	if (want[SEGMENT_VESSELS]) {
		t0 = clock_mono_s();
		if (!have_bone)
			goto out;
		if (res->contrast && !run_vessels(err, ctx, vol, p))
			goto out;
		res->ms[SEGMENT_VESSELS] = (clock_mono_s() - t0) * 1e3;
		if (res->contrast) {
			res->mask[SEGMENT_VESSELS] = ctx->mask[SEGMENT_VESSELS];
		} else {
			snprintf(res->skipped_reason[SEGMENT_VESSELS], SEGMENT_REASON_MAX,
				 "series is not contrast-enhanced (%.1f ml of thick blood over %.0f HU, %.1f ml needed)",
				 res->contrast_ml, p->vessels.detect_low_hu,
				 p->vessels.detect_min_ml_per_cm * scan_cm(vol));
		}
	}
	for (s = 0; s < SEGMENT_PRESET_COUNT; s++)
		if (res->mask[s] != NULL)
			res->voxels[s] = segment_count_set(res->mask[s], ctx->nvox);
	ok = true;
out:
	range_set(res, SEGMENT_SKIN, p->skin.body_hu, INFINITY);
	range_set(res, SEGMENT_BONE, res->contrast ? p->bone.contrast_low_hu : p->bone.low_hu, INFINITY);
	range_set(res, SEGMENT_LUNGS, -INFINITY, p->lungs.air_hu);
	range_set(res, SEGMENT_VESSELS, p->vessels.low_hu, p->vessels.high_hu);
	return ok;
}
