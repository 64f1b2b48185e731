/*
 * meshpar.c: the worker-thread runner of the mesh stage (see meshpar.h).
 * Any thread.
 */
#include <assert.h>
#include <pthread.h>
#include <stdbool.h>

#include "meshpar.h"
#include "r3d/mesh.h"

void meshpar_run(int n, void *workers, size_t stride, void *(*fn)(void *))
{
	pthread_t tid[MESH_MAX_THREADS];
	bool started[MESH_MAX_THREADS] = {false};
	char *w = workers;

	assert(n >= 1 && n <= MESH_MAX_THREADS);
	for (int t = 1; t < n; t++)
		started[t] = pthread_create(&tid[t], NULL, fn, w + (size_t)t * stride) == 0;
	fn(w);
	for (int t = 1; t < n; t++) {
		if (started[t])
			pthread_join(tid[t], NULL);
		else
			fn(w + (size_t)t * stride);
	}
}
