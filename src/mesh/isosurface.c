/*
 * isosurface.c: marching-cubes isosurface of a scalar volume, organised in
 * the Flying Edges manner (Schroeder et al. 2015): classify once, count,
 * then write every vertex and triangle straight into its final place.
 *
 * Called from any thread; it starts nthreads - 1 pthreads of its own for
 * each pass and joins them before returning.
 *
 * Memory order: x fastest (value(x,y,z) = data[x + nx*(y + ny*z)]).
 * Frame: output vertices are in voxel-index coordinates.
 *
 * The volume is padded (virtually, nothing is copied) with one layer of
 * "outside" voxels on every side: padded index (i, j, k) is voxel
 * (i-1, j-1, k-1), and padded dims are px = nx+2, py = ny+2, pz = nz+2.
 *
 * Pass 1 (threads split the planes evenly): each padded row becomes a row of
 *   bits, bit i set when voxel i is inside (value > iso). SSE2 packs 16
 *   voxels per compare.
 * Pass 2 (same split): per plane block k, count the crossed edges, which are
 *   word operations on the bit rows: x edges m ^ (m >> 1), y edges
 *   row(j) ^ row(j+1), z edges plane(k) ^ plane(k+1). A plane block holds
 *   the x and y edges of plane k and the z edges from plane k to k+1, in a
 *   fixed order (row by row: x, then y, then z edges, each by increasing x),
 *   so a prefix sum gives every vertex its global index.
 * Pass 3 (threads split the cube layers so that each gets about the same
 *   number of vertices): per cube layer k, fill the vertex index maps of
 *   planes k and k+1 (writing coordinates only for the blocks this thread
 *   owns; the next thread's first plane is only numbered), then visit the
 *   active cubes found with word operations (cubes whose 8 corners are not
 *   all equal) and emit the triangles of their case.
 *
 * The case table is built at first use from one rule instead of being typed
 * in: on every cube face the contour segments run with the inside on their
 * right seen from outside, and on an ambiguous face (diagonal corners
 * inside) each inside corner is cut off on its own. Both cubes sharing a
 * face make the same choice, hence the surface is closed; each contour loop
 * on the cube's surface becomes a triangle fan whose diagonals never lie in
 * a cube face, hence every edge has exactly two triangles. This rule gives, for each of
 * the 256 cases, as many triangles as VTK's marching-cubes table.
 */
#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "meshpar.h"
#include "r3d/mesh.h"
#include "r3d/util.h"

#define ISO_CASES 256
#define ISO_CASE_MAX_TRI 10 /* 12 crossed edges in one loop; the table needs <= 5 */
#define ISO_WORD_BITS 64

/* ---------------------------------------------------------------------- */
/* The case table                                                          */
/* ---------------------------------------------------------------------- */

/* Corner c of a cube is at (c & 1, (c >> 1) & 1, (c >> 2) & 1). */
static const uint8_t iso_edge_corner[12][2] = {
	{0, 1}, {2, 3}, {4, 5}, {6, 7}, /* x edges: y0z0, y1z0, y0z1, y1z1 */
	{0, 2}, {1, 3}, {4, 6}, {5, 7}, /* y edges: x0z0, x1z0, x0z1, x1z1 */
	{0, 4}, {1, 5}, {2, 6}, {3, 7}, /* z edges: x0y0, x1y0, x0y1, x1y1 */
};

/* Corners of each face, counter-clockwise seen from outside the cube. */
static const uint8_t iso_face_corner[6][4] = {
	{0, 4, 6, 2}, {1, 3, 7, 5}, {0, 1, 5, 4}, {2, 6, 7, 3}, {0, 2, 3, 1}, {4, 5, 7, 6},
};

struct iso_case {
	uint8_t ntri;
	uint8_t edge[ISO_CASE_MAX_TRI * 3];
};

static struct iso_case iso_table[ISO_CASES];
static pthread_once_t iso_table_once = PTHREAD_ONCE_INIT;

static int iso_edge_of(int a, int b)
{
	for (int e = 0; e < 12; e++) {
		if ((iso_edge_corner[e][0] == a && iso_edge_corner[e][1] == b) ||
		    (iso_edge_corner[e][0] == b && iso_edge_corner[e][1] == a))
			return e;
	}
	abort(); /* unreachable: faces only name cube edges */
}

/* Bit f set when cube edge e lies on face f. */
static unsigned iso_edge_faces(int e)
{
	unsigned set = 0;

	for (int f = 0; f < 6; f++) {
		int hit = 0;
		for (int k = 0; k < 4; k++)
			hit += iso_face_corner[f][k] == iso_edge_corner[e][0] ||
			       iso_face_corner[f][k] == iso_edge_corner[e][1];
		if (hit == 2)
			set |= 1u << f;
	}
	return set;
}

/* The fan apex of a contour loop: the first vertex that shares no cube face
 * with any vertex it is not already joined to. A diagonal inside one face
 * could be chosen by the neighbouring cube as well, and the edge would then
 * have four triangles; one that crosses the cube cannot. Every loop of this
 * table has such an apex (checked by the unit tests' noise volume). */
static int iso_fan_apex(const int *loop, int n)
{
	for (int a = 0; a < n; a++) {
		bool good = true;
		for (int b = 0; b < n; b++) {
			if (b == a || b == (a + 1) % n || b == (a + n - 1) % n)
				continue;
			good = good && (iso_edge_faces(loop[a]) & iso_edge_faces(loop[b])) == 0;
		}
		if (good)
			return a;
	}
	return 0;
}

static void iso_case_build(int cs, struct iso_case *out)
{
	int next[12];
	bool seen[12] = {false};

	for (int e = 0; e < 12; e++)
		next[e] = -1;
	for (int f = 0; f < 6; f++) {
		const uint8_t *fc = iso_face_corner[f];
		int in[4], oi[2], io[2], noi = 0, nio = 0;

		for (int k = 0; k < 4; k++)
			in[k] = (cs >> fc[k]) & 1;
		for (int k = 0; k < 4; k++) {
			int k1 = (k + 1) & 3;
			if (!in[k] && in[k1])
				oi[noi++] = k;
			if (in[k] && !in[k1])
				io[nio++] = k;
		}
		if (noi == 1) {
			next[iso_edge_of(fc[oi[0]], fc[(oi[0] + 1) & 3])] =
				iso_edge_of(fc[io[0]], fc[(io[0] + 1) & 3]);
		} else if (noi == 2) {
			/* Ambiguous face: cut off each inside corner fc[k+1]. */
			for (int n = 0; n < 2; n++) {
				int k = oi[n], m = (k + 1) & 3;
				next[iso_edge_of(fc[k], fc[(k + 1) & 3])] =
					iso_edge_of(fc[m], fc[(m + 1) & 3]);
			}
		}
	}
	out->ntri = 0;
	for (int e0 = 0; e0 < 12; e0++) {
		int loop[12], n = 0;

		if (next[e0] < 0 || seen[e0])
			continue;
		for (int e = e0; !seen[e]; e = next[e]) {
			seen[e] = true;
			loop[n++] = e;
		}
		int apex = iso_fan_apex(loop, n);
		for (int t = 1; t + 1 < n; t++) {
			uint8_t *tri = &out->edge[3 * out->ntri++];
			tri[0] = (uint8_t)loop[apex];
			tri[1] = (uint8_t)loop[(apex + t) % n];
			tri[2] = (uint8_t)loop[(apex + t + 1) % n];
		}
	}
}

static void iso_table_build(void)
{
	for (int cs = 0; cs < ISO_CASES; cs++)
		iso_case_build(cs, &iso_table[cs]);
}

/* ---------------------------------------------------------------------- */
/* Shared state of one extraction                                          */
/* ---------------------------------------------------------------------- */

/* Scratch kept between calls (see mesh.h): bit rows, and the six edge
 * index maps of each thread. Sizes are capacities in bytes. */
struct mesh_iso_work {
	uint64_t *bits;
	size_t bits_bytes;
	uint32_t *maps[MESH_MAX_THREADS];
	size_t maps_bytes[MESH_MAX_THREADS];
};

struct mesh_iso_work *mesh_iso_work_create(struct r3d_err *err)
{
	struct mesh_iso_work *w = calloc(1, sizeof(*w));

	if (w == NULL)
		r3d_err_set(err, R3D_ENOMEM, "isosurface: cannot allocate scratch");
	return w;
}

void mesh_iso_work_destroy(struct mesh_iso_work *w)
{
	if (w == NULL)
		return;
	for (int t = 0; t < MESH_MAX_THREADS; t++)
		bigbuf_free(w->maps[t], w->maps_bytes[t]);
	bigbuf_free(w->bits, w->bits_bytes);
	free(w);
}

/* Returns buf when its capacity *cap is at least need bytes; otherwise
 * frees it and returns a new zeroed buffer (NULL, *cap 0 on failure). */
static void *iso_work_reserve(struct r3d_err *err, void *buf, size_t *cap, size_t need)
{
	if (buf != NULL && *cap >= need)
		return buf;
	bigbuf_free(buf, *cap);
	*cap = 0;
	buf = bigbuf_alloc(err, need);
	if (buf != NULL)
		*cap = need;
	return buf;
}

struct iso_job {
	const struct mesh_volume *vol;
	double iso;
	long thr;          /* inside iff value > thr (thr = floor(iso)) */
	size_t px, py, pz; /* padded dims */
	size_t words;      /* 64-bit words per bit row */
	uint64_t *bits;    /* pz * py * words */
	struct mesh_iso_work *work; /* scratch: bits and the threads' maps */
	size_t *block_nv;  /* vertices per plane block, pz entries */
	size_t *block_off; /* first vertex index of each block, pz + 1 entries */
	float *xyz;
	uint32_t *tri;
};

struct iso_worker {
	struct iso_job *job;
	size_t k0, k1;       /* planes (passes 1, 2) or cube layers (pass 3) */
	size_t tri_first;    /* pass 3: first triangle slot of this thread */
	size_t tri_cap;      /* pass 3: slots reserved for this thread */
	size_t ntri;         /* pass 3: triangles written */
	int index;           /* which thread: its maps in the scratch */
};

static inline const uint64_t *iso_row(const struct iso_job *jb, size_t j, size_t k)
{
	return jb->bits + (k * jb->py + j) * jb->words;
}

/* Word w of row r shifted right by one bit: bit x holds voxel x + 1. */
static inline uint64_t iso_shr1(const uint64_t *r, size_t w, size_t words)
{
	return (r[w] >> 1) | (w + 1 < words ? r[w + 1] << 63 : 0);
}

/* ---------------------------------------------------------------------- */
/* Pass 1: bit rows                                                        */
/* ---------------------------------------------------------------------- */

/* Packs n values into out (zeroed): bit i + 1 of the row for value i. */
static void iso_pack_i16(uint64_t *out, const int16_t *v, size_t n, long thr)
{
	size_t i = 0;
	int16_t t = (int16_t)thr;

#ifdef __SSE2__
	const __m128i tv = _mm_set1_epi16(t);
	for (; i + 64 <= n; i += 64) {
		uint64_t w = 0;
		for (int q = 0; q < 4; q++) {
			__m128i a = _mm_loadu_si128((const __m128i *)(v + i + 16 * q));
			__m128i b = _mm_loadu_si128((const __m128i *)(v + i + 16 * q + 8));
			__m128i c = _mm_packs_epi16(_mm_cmpgt_epi16(a, tv), _mm_cmpgt_epi16(b, tv));
			w |= (uint64_t)(uint32_t)_mm_movemask_epi8(c) << (16 * q);
		}
		size_t bit = i + 1;
		out[bit / 64] |= w << (bit % 64);
		out[bit / 64 + 1] |= w >> (64 - bit % 64); /* bit % 64 == 1 here */
	}
#endif
	for (; i < n; i++) {
		size_t bit = i + 1;
		out[bit / 64] |= (uint64_t)(v[i] > t) << (bit % 64);
	}
}

static void iso_pack_u8(uint64_t *out, const uint8_t *v, size_t n, long thr)
{
	size_t i = 0;

#ifdef __SSE2__
	const __m128i flip = _mm_set1_epi8((char)0x80);
	const __m128i tv = _mm_set1_epi8((char)(uint8_t)(thr ^ 0x80));
	for (; i + 64 <= n; i += 64) {
		uint64_t w = 0;
		for (int q = 0; q < 4; q++) {
			__m128i a = _mm_loadu_si128((const __m128i *)(v + i + 16 * q));
			__m128i c = _mm_cmpgt_epi8(_mm_xor_si128(a, flip), tv);
			w |= (uint64_t)(uint32_t)_mm_movemask_epi8(c) << (16 * q);
		}
		size_t bit = i + 1;
		out[bit / 64] |= w << (bit % 64);
		out[bit / 64 + 1] |= w >> (64 - bit % 64);
	}
#endif
	for (; i < n; i++) {
		size_t bit = i + 1;
		out[bit / 64] |= (uint64_t)(v[i] > thr) << (bit % 64);
	}
}

static void *iso_pass_bits(void *arg)
{
	struct iso_worker *wk = arg;
	const struct iso_job *jb = wk->job;
	const struct mesh_volume *vol = jb->vol;
	size_t W = jb->words;

	/* Every row is cleared first: the buffer may be reused from an
	 * earlier call. Padding planes, rows and bits stay zero. */
	for (size_t k = wk->k0; k < wk->k1; k++) {
		uint64_t *plane = jb->bits + k * jb->py * W;
		if (k == 0 || k == jb->pz - 1) {
			memset(plane, 0, jb->py * W * sizeof(uint64_t));
			continue;
		}
		memset(plane, 0, W * sizeof(uint64_t));
		memset(plane + (jb->py - 1) * W, 0, W * sizeof(uint64_t));
		for (size_t j = 1; j + 1 < jb->py; j++) {
			uint64_t *row = plane + j * W;
			size_t first = vol->nx * ((j - 1) + vol->ny * (k - 1));
			memset(row, 0, W * sizeof(uint64_t));
			if (vol->type == MESH_SCALAR_I16)
				iso_pack_i16(row, (const int16_t *)vol->data + first, vol->nx, jb->thr);
			else
				iso_pack_u8(row, (const uint8_t *)vol->data + first, vol->nx, jb->thr);
		}
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Pass 2: counting                                                        */
/* ---------------------------------------------------------------------- */

static size_t iso_block_count(const struct iso_job *jb, size_t k)
{
	size_t n = 0, W = jb->words;

	if (k + 1 >= jb->pz)
		return 0; /* the last padding plane has no crossing */
	for (size_t j = 0; j < jb->py; j++) {
		const uint64_t *r = iso_row(jb, j, k);
		const uint64_t *ry = j + 1 < jb->py ? iso_row(jb, j + 1, k) : r;
		const uint64_t *rz = iso_row(jb, j, k + 1);
		for (size_t w = 0; w < W; w++) {
			n += (size_t)__builtin_popcountll(r[w] ^ iso_shr1(r, w, W));
			n += (size_t)__builtin_popcountll(r[w] ^ ry[w]);
			n += (size_t)__builtin_popcountll(r[w] ^ rz[w]);
		}
	}
	return n;
}

static void *iso_pass_count(void *arg)
{
	struct iso_worker *wk = arg;
	struct iso_job *jb = wk->job;

	for (size_t k = wk->k0; k < wk->k1; k++)
		jb->block_nv[k] = iso_block_count(jb, k);
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Pass 3: vertices and triangles                                          */
/* ---------------------------------------------------------------------- */

/* Value of padded voxel (i, j, k), which must be a real voxel. */
static inline double iso_value(const struct iso_job *jb, size_t i, size_t j, size_t k)
{
	const struct mesh_volume *vol = jb->vol;
	size_t at = (i - 1) + vol->nx * ((j - 1) + vol->ny * (k - 1));

	if (vol->type == MESH_SCALAR_I16)
		return ((const int16_t *)vol->data)[at];
	return ((const uint8_t *)vol->data)[at];
}

/* Grey-level field of padded voxel (i, j, k), a real voxel, whose class
 * (inside the mask or not) is inside: g of r3d/mesh.h, or +-0.5 where the
 * mask and g disagree. */
static inline double iso_grey(const struct iso_job *jb, size_t i, size_t j, size_t k, bool inside)
{
	const struct mesh_volume *vol = jb->vol;
	size_t at = (i - 1) + vol->nx * ((j - 1) + vol->ny * (k - 1));
	double hu = vol->grey[at];
	double g = fmin(hu - vol->grey_lo, vol->grey_hi - hu);

	if (inside)
		return g > 0.0 ? g : 0.5;
	return g < 0.0 ? g : -0.5;
}

static inline bool iso_is_pad(const struct iso_job *jb, size_t i, size_t j, size_t k)
{
	return i == 0 || j == 0 || k == 0 || i + 1 == jb->px || j + 1 == jb->py ||
	       k + 1 == jb->pz;
}

/* Writes the vertex on the edge from padded voxel (i, j, k) to its
 * neighbour along axis (0 x, 1 y, 2 z), in voxel-index coordinates. */
static void iso_vertex(const struct iso_job *jb, uint32_t id, size_t i, size_t j, size_t k,
		       int axis)
{
	size_t i1 = i + (axis == 0), j1 = j + (axis == 1), k1 = k + (axis == 2);
	double t = 0.5;
	float *p = jb->xyz + 3 * (size_t)id;

	if (!iso_is_pad(jb, i, j, k) && !iso_is_pad(jb, i1, j1, k1)) {
		double a = iso_value(jb, i, j, k), b = iso_value(jb, i1, j1, k1);
		if (jb->vol->grey != NULL) {
			/* Exactly one end is inside: the edge is crossed. */
			bool ain = a > jb->iso;
			double ga = iso_grey(jb, i, j, k, ain), gb = iso_grey(jb, i1, j1, k1, !ain);
			t = ga / (ga - gb);
		} else {
			t = (jb->iso - a) / (b - a);
		}
	}
	p[0] = (float)((double)i - 1.0 + (axis == 0 ? t : 0.0));
	p[1] = (float)((double)j - 1.0 + (axis == 1 ? t : 0.0));
	p[2] = (float)((double)k - 1.0 + (axis == 2 ? t : 0.0));
}

/* Numbers the vertices of plane block k into the index maps mx, my, mz
 * (px * py entries each, indexed j * px + i) starting at block_off[k];
 * writes their coordinates when own is set. Returns the count. */
static size_t iso_block_fill(const struct iso_job *jb, size_t k, uint32_t *mx, uint32_t *my,
			     uint32_t *mz, bool own)
{
	size_t W = jb->words, px = jb->px;
	uint32_t id = (uint32_t)jb->block_off[k];
	uint32_t id0 = id;

	if (k + 1 >= jb->pz)
		return 0;
	for (size_t j = 0; j < jb->py; j++) {
		const uint64_t *r = iso_row(jb, j, k);
		const uint64_t *ry = j + 1 < jb->py ? iso_row(jb, j + 1, k) : r;
		const uint64_t *rz = iso_row(jb, j, k + 1);
		size_t rowbase = j * px;

		for (size_t w = 0; w < W; w++) {
			uint64_t c = r[w] ^ iso_shr1(r, w, W);
			while (c != 0) {
				size_t i = w * 64 + (size_t)__builtin_ctzll(c);
				c &= c - 1;
				mx[rowbase + i] = id;
				if (own)
					iso_vertex(jb, id, i, j, k, 0);
				id++;
			}
		}
		for (size_t w = 0; w < W; w++) {
			uint64_t c = r[w] ^ ry[w];
			while (c != 0) {
				size_t i = w * 64 + (size_t)__builtin_ctzll(c);
				c &= c - 1;
				my[rowbase + i] = id;
				if (own)
					iso_vertex(jb, id, i, j, k, 1);
				id++;
			}
		}
		for (size_t w = 0; w < W; w++) {
			uint64_t c = r[w] ^ rz[w];
			while (c != 0) {
				size_t i = w * 64 + (size_t)__builtin_ctzll(c);
				c &= c - 1;
				mz[rowbase + i] = id;
				if (own)
					iso_vertex(jb, id, i, j, k, 2);
				id++;
			}
		}
	}
	return id - id0;
}

/* Emits the triangles of cube layer k (planes k and k+1). */
static size_t iso_layer_emit(const struct iso_job *jb, size_t k, uint32_t *const mx[2],
			     uint32_t *const my[2], const uint32_t *mz, uint32_t *out)
{
	size_t W = jb->words, px = jb->px, n = 0;
	const uint32_t *eptr[12] = {
		mx[0], mx[0], mx[1], mx[1], my[0], my[0], my[1], my[1], mz, mz, mz, mz,
	};
	const size_t eoff[12] = {0, px, 0, px, 0, 1, 0, 1, 0, 1, px, px + 1};

	for (size_t j = 0; j + 1 < jb->py; j++) {
		const uint64_t *a = iso_row(jb, j, k), *b = iso_row(jb, j + 1, k);
		const uint64_t *c = iso_row(jb, j, k + 1), *d = iso_row(jb, j + 1, k + 1);

		for (size_t w = 0; w < W; w++) {
			uint64_t a0 = a[w], b0 = b[w], c0 = c[w], d0 = d[w];
			uint64_t a1 = iso_shr1(a, w, W), b1 = iso_shr1(b, w, W);
			uint64_t c1 = iso_shr1(c, w, W), d1 = iso_shr1(d, w, W);
			uint64_t all = a0 & b0 & c0 & d0 & a1 & b1 & c1 & d1;
			uint64_t any = a0 | b0 | c0 | d0 | a1 | b1 | c1 | d1;
			uint64_t act = any & ~all;

			while (act != 0) {
				unsigned x = (unsigned)__builtin_ctzll(act);
				act &= act - 1;
				unsigned cs = (unsigned)((a0 >> x) & 1) | (unsigned)((a1 >> x) & 1) << 1 |
					      (unsigned)((b0 >> x) & 1) << 2 | (unsigned)((b1 >> x) & 1) << 3 |
					      (unsigned)((c0 >> x) & 1) << 4 | (unsigned)((c1 >> x) & 1) << 5 |
					      (unsigned)((d0 >> x) & 1) << 6 | (unsigned)((d1 >> x) & 1) << 7;
				const struct iso_case *ic = &iso_table[cs];
				size_t base = j * px + w * 64 + x;
				for (unsigned t = 0; t < 3u * ic->ntri; t++) {
					unsigned e = ic->edge[t];
					out[3 * n + t] = eptr[e][base + eoff[e]];
				}
				n += ic->ntri;
			}
		}
	}
	return n;
}

static void *iso_pass_emit(void *arg)
{
	struct iso_worker *wk = arg;
	const struct iso_job *jb = wk->job;
	uint32_t *maps;
	size_t plane;

	wk->ntri = 0;
	if (wk->k0 >= wk->k1)
		return NULL;
	/* Six maps (x, y and z edges of two successive plane blocks), given
	 * by the driver from the scratch. */
	plane = jb->px * jb->py;
	maps = jb->work->maps[wk->index];
	uint32_t *mx[2] = {maps, maps + plane};
	uint32_t *my[2] = {maps + 2 * plane, maps + 3 * plane};
	uint32_t *mz[2] = {maps + 4 * plane, maps + 5 * plane};
	uint32_t *out = jb->tri + 3 * wk->tri_first;

	iso_block_fill(jb, wk->k0, mx[0], my[0], mz[0], true);
	for (size_t k = wk->k0; k < wk->k1; k++) {
		size_t s0 = (k - wk->k0) & 1, s1 = s0 ^ 1;
		uint32_t *const lx[2] = {mx[s0], mx[s1]};
		uint32_t *const ly[2] = {my[s0], my[s1]};

		iso_block_fill(jb, k + 1, mx[s1], my[s1], mz[s1], k + 1 < wk->k1);
		wk->ntri += iso_layer_emit(jb, k, lx, ly, mz[s0], out + 3 * wk->ntri);
		assert(wk->ntri <= wk->tri_cap); /* the 4-per-vertex bound */
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Driver                                                                  */
/* ---------------------------------------------------------------------- */

static bool iso_check_input(struct r3d_err *err, const struct mesh_volume *vol, double iso,
			    int nthreads)
{
	if (vol == NULL || vol->data == NULL)
		return r3d_err_set(err, R3D_EINVAL, "isosurface: no volume");
	if (vol->nx == 0 || vol->ny == 0 || vol->nz == 0 || vol->nx > MESH_MAX_DIM ||
	    vol->ny > MESH_MAX_DIM || vol->nz > MESH_MAX_DIM)
		return r3d_err_set(err, R3D_EINVAL,
				   "isosurface: volume %zux%zux%zu outside 1..%d per axis", vol->nx,
				   vol->ny, vol->nz, MESH_MAX_DIM);
	if (vol->type != MESH_SCALAR_U8 && vol->type != MESH_SCALAR_I16)
		return r3d_err_set(err, R3D_EINVAL, "isosurface: unknown scalar type %d",
				   (int)vol->type);
	if (nthreads < 1 || nthreads > MESH_MAX_THREADS)
		return r3d_err_set(err, R3D_EINVAL, "isosurface: %d threads outside 1..%d",
				   nthreads, MESH_MAX_THREADS);
	if (!isfinite(iso))
		return r3d_err_set(err, R3D_EINVAL, "isosurface: iso value is not finite");
	if (vol->grey != NULL &&
	    (vol->type != MESH_SCALAR_U8 || isnan(vol->grey_lo) || isnan(vol->grey_hi) ||
	     !(vol->grey_lo < vol->grey_hi) || (isinf(vol->grey_lo) && isinf(vol->grey_hi))))
		return r3d_err_set(err, R3D_EINVAL,
				   "isosurface: grey levels need a mask and a range with a finite end");
	if (vol->type == MESH_SCALAR_U8 && (iso < 0.0 || iso > 255.0))
		return r3d_err_set(err, R3D_EINVAL, "isosurface: iso %g outside 0..255", iso);
	if (vol->type == MESH_SCALAR_I16 && (iso < -32768.0 || iso > 32767.0))
		return r3d_err_set(err, R3D_EINVAL, "isosurface: iso %g outside -32768..32767",
				   iso);
	return true;
}

bool mesh_isosurface(struct r3d_err *err, const struct mesh_volume *vol, double iso,
		     int nthreads, struct mesh_iso_work *work, struct mesh **out)
{
	struct iso_job jb = {0};
	struct mesh_iso_work *own = NULL;
	size_t bits_bytes, maps_bytes;
	struct iso_worker wk[MESH_MAX_THREADS];
	struct mesh *m = NULL;
	size_t nv = 0, cap = 0, tri_bytes = 0;
	bool ok = false;

	*out = NULL;
	if (!iso_check_input(err, vol, iso, nthreads))
		goto out;
	pthread_once(&iso_table_once, iso_table_build);

	jb.vol = vol;
	jb.iso = iso;
	jb.thr = (long)floor(iso);
	jb.px = vol->nx + 2;
	jb.py = vol->ny + 2;
	jb.pz = vol->nz + 2;
	jb.words = (jb.px + ISO_WORD_BITS - 1) / ISO_WORD_BITS;
	if (!size_mul3(jb.pz * jb.py, jb.words, sizeof(uint64_t), &bits_bytes) ||
	    !size_mul3(jb.px * jb.py, 6, sizeof(uint32_t), &maps_bytes)) {
		r3d_err_set(err, R3D_EINVAL, "isosurface: volume too large");
		goto out;
	}
	if (work == NULL) {
		own = mesh_iso_work_create(err);
		if (own == NULL)
			goto out;
		work = own;
	}
	jb.work = work;
	work->bits = iso_work_reserve(err, work->bits, &work->bits_bytes, bits_bytes);
	if (work->bits == NULL)
		goto out;
	jb.bits = work->bits;
	for (int t = 0; t < nthreads; t++) {
		work->maps[t] = iso_work_reserve(err, work->maps[t], &work->maps_bytes[t], maps_bytes);
		if (work->maps[t] == NULL)
			goto out;
	}
	jb.block_nv = calloc(jb.pz, sizeof(size_t));
	jb.block_off = calloc(jb.pz + 1, sizeof(size_t));
	if (jb.block_nv == NULL || jb.block_off == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "isosurface: cannot allocate block counts");
		goto out;
	}

	/* Passes 1 and 2: planes split evenly. */
	memset(wk, 0, sizeof(wk));
	for (int t = 0; t < nthreads; t++) {
		wk[t].job = &jb;
		wk[t].index = t;
		wk[t].k0 = jb.pz * (size_t)t / (size_t)nthreads;
		wk[t].k1 = jb.pz * (size_t)(t + 1) / (size_t)nthreads;
	}
	meshpar_run(nthreads, wk, sizeof(wk[0]), iso_pass_bits);
	meshpar_run(nthreads, wk, sizeof(wk[0]), iso_pass_count);
	for (size_t k = 0; k < jb.pz; k++) {
		jb.block_off[k] = nv;
		nv += jb.block_nv[k];
	}
	jb.block_off[jb.pz] = nv;
	if (nv > MESH_MAX_VERTICES) {
		r3d_err_set(err, R3D_EINVAL, "isosurface: %zu vertices exceed the limit of %u", nv,
			    MESH_MAX_VERTICES);
		goto out;
	}

	/* Pass 3: cube layers 0 .. pz-2, split by vertex count. Each crossed
	 * edge is in at most 4 cubes and a cube with c crossed edges has at
	 * most c - 2 triangles, so a thread needs at most 4 slots per vertex
	 * of its blocks and of the first block after them. */
	size_t nlayer = jb.pz - 1, k = 0;
	for (int t = 0; t < nthreads; t++) {
		size_t goal = nv * (size_t)(t + 1) / (size_t)nthreads;
		wk[t].k0 = k;
		while (k < nlayer && (t == nthreads - 1 || jb.block_off[k + 1] <= goal))
			k++;
		wk[t].k1 = k;
		wk[t].tri_first = cap;
		wk[t].tri_cap = 4 * (jb.block_off[wk[t].k1] - jb.block_off[wk[t].k0] +
				     jb.block_nv[wk[t].k1]);
		cap += wk[t].tri_cap;
	}
	if (!size_mul3(cap, 3, sizeof(uint32_t), &tri_bytes)) {
		r3d_err_set(err, R3D_EINVAL, "isosurface: surface too large");
		goto out;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "isosurface: cannot allocate a mesh");
		goto out;
	}
	m->xyz_bytes = 3 * sizeof(float) * nv; /* nv <= 2^31: no overflow */
	m->xyz = bigbuf_alloc(err, m->xyz_bytes);
	if (m->xyz == NULL)
		goto out;
	m->tri_bytes = tri_bytes;
	m->tri = bigbuf_alloc(err, tri_bytes);
	if (m->tri == NULL)
		goto out;
	m->nvert = nv;
	jb.xyz = m->xyz;
	jb.tri = m->tri;
	meshpar_run(nthreads, wk, sizeof(wk[0]), iso_pass_emit);

	/* Close the gaps between the threads' triangle ranges. */
	size_t ntri = 0;
	for (int t = 0; t < nthreads; t++) {
		if (wk[t].tri_first != ntri && wk[t].ntri > 0)
			memmove(m->tri + 3 * ntri, m->tri + 3 * wk[t].tri_first,
				3 * sizeof(uint32_t) * wk[t].ntri);
		ntri += wk[t].ntri;
	}
	m->ntri = ntri;
	*out = m;
	m = NULL;
	ok = true;
out:
	mesh_destroy(m);
	free(jb.block_off);
	free(jb.block_nv);
	mesh_iso_work_destroy(own);
	return ok;
}
