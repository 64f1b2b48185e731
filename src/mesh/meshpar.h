/*
 * meshpar.h: internal to src/mesh: runs one function on n workers, n - 1 of
 * them in new pthreads and one in the calling thread, and joins them. If a
 * thread cannot be started, its worker runs in the caller afterwards, so
 * the work is always done. Called by the stages that thread their kernels.
 */
#ifndef R3D_MESHPAR_H
#define R3D_MESHPAR_H

#include <stddef.h>

/* Calls fn(workers + t * stride) for t in 0..n-1, 1 <= n <= MESH_MAX_THREADS. */
void meshpar_run(int n, void *workers, size_t stride, void *(*fn)(void *));

#endif
