/*
 * each.c: pipeline_each() (see pipeline_int.h): one function over the
 * indices 0..n-1 on up to nthreads threads, each index once, the first
 * failure stopping the rest. Used by the mesh stage (a structure per
 * index) and the print analysis. Any thread; starts nthreads - 1 pthreads
 * and joins them before it returns.
 */
#include <pthread.h>
#include <stdint.h>

#include "pipeline_int.h"
#include "r3d/mesh.h"

struct each {
	pipeline_each_fn fn;
	void *ctx;
	size_t n;
	pthread_mutex_t lock;
	size_t next;
	bool failed;
	struct r3d_err err;   /* the first failure */
};

struct each_thread {
	struct each *e;
	int t;
};

static void *each_main(void *arg)
{
	struct each_thread *et = arg;
	struct each *e = et->e;
	struct r3d_err err;

	for (;;) {
		pthread_mutex_lock(&e->lock);
		size_t i = e->failed || e->next >= e->n ? SIZE_MAX : e->next++;
		pthread_mutex_unlock(&e->lock);
		if (i == SIZE_MAX)
			return NULL;
		r3d_err_clear(&err);
		if (!e->fn(&err, e->ctx, et->t, i)) {
			pthread_mutex_lock(&e->lock);
			if (!e->failed) {
				e->failed = true;
				e->err = err;
			}
			pthread_mutex_unlock(&e->lock);
			return NULL;
		}
	}
}

bool pipeline_each(struct r3d_err *err, int nthreads, size_t n, pipeline_each_fn fn, void *ctx)
{
	struct each e = {.fn = fn, .ctx = ctx, .n = n};
	struct each_thread et[MESH_MAX_THREADS];
	pthread_t tid[MESH_MAX_THREADS];
	bool started[MESH_MAX_THREADS] = {false};
	int nt = n < (size_t)nthreads ? (int)n : nthreads;

	if (nt > MESH_MAX_THREADS)
		nt = MESH_MAX_THREADS;
	if (nt < 1)
		return true;
	pthread_mutex_init(&e.lock, NULL);
	for (int t = 0; t < nt; t++)
		et[t] = (struct each_thread){&e, t};
	/* A thread that cannot start: the others take its share. */
	for (int t = 1; t < nt; t++)
		started[t] = pthread_create(&tid[t], NULL, each_main, &et[t]) == 0;
	each_main(&et[0]);
	for (int t = 1; t < nt; t++) {
		if (started[t])
			pthread_join(tid[t], NULL);
	}
	pthread_mutex_destroy(&e.lock);
	if (e.failed) {
		*err = e.err;
		return false;
	}
	return true;
}
