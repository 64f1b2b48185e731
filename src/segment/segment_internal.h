/*
 * segment_internal.h: what the segment kernels share and nobody else sees:
 * a static parallel-for over pthreads. Called from whichever thread runs a
 * segment function; the workers it starts only run the given function.
 */
#ifndef R3D_SEGMENT_INTERNAL_H
#define R3D_SEGMENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <stdint.h>

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

#endif
