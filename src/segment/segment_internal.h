/*
 * segment_internal.h: what the segment kernels share and nobody else sees:
 * the labeller's run tables, a static parallel-for over pthreads, run
 * scanning and voxel counting. Called from whichever thread runs a segment
 * function; the workers it starts only run the given function.
 */
#ifndef R3D_SEGMENT_INTERNAL_H
#define R3D_SEGMENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "r3d/err.h"

/* The labeller's state, read by fill.c and presets.c: rows are y + ny * z;
 * the runs of row r are [row_start[r], row_start[r + 1]). After labelling,
 * parent[k] is the component id of run k. */
struct segment_cc {
	size_t nx, ny, nz;
	uint32_t *row_start;   /* nrows + 1 */
	size_t row_cap;
	uint32_t *rx0, *rx1;   /* run [x0, x1) */
	uint32_t *parent;      /* union-find, then the component id */
	size_t run_cap, nruns;
	size_t *sizes;         /* count + 1 */
	size_t sizes_cap, count;
	int threads;
};

/* fn(arg, begin, end, worker) is called on disjoint ranges covering [0, count),
 * one per worker (worker 0 runs on the calling thread). When a thread cannot be
 * started, its range runs on the calling thread. */
typedef void (*segment_par_fn)(void *arg, size_t begin, size_t end, int worker);
void segment_parallel(int threads, size_t count, segment_par_fn fn, void *arg);

/* Clamps a thread count to 1..SEGMENT_MAX_THREADS and to the work available. */
int segment_threads_clamp(int threads, size_t count);

/* First x in [x, n) where row[x] != 0 (want_set) or == 0 (!want_set); n when
 * none. Masks hold 0 or 1; eight bytes are skipped at a time. */
static inline size_t segment_row_next(const uint8_t *row, size_t x, size_t n, bool want_set)
{
	const uint64_t skip = want_set ? 0 : UINT64_C(0x0101010101010101);

	while (x < n && (x & 7) != 0) {
		if ((row[x] != 0) == want_set)
			return x;
		x++;
	}
	while (x + 8 <= n) {
		uint64_t w;

		memcpy(&w, row + x, sizeof(w));
		if (w != skip)
			break;
		x += 8;
	}
	while (x < n && (row[x] != 0) != want_set)
		x++;
	return x;
}

/* Number of non-zero bytes of a 0/1 mask. */
size_t segment_count_set(const uint8_t *m, size_t n);

#endif
