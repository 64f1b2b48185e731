/*
 * par.c: static parallel-for for the segment kernels. Splits [0, count) in
 * equal contiguous ranges, runs the first on the calling thread and the others
 * on short-lived pthreads (a start costs ~50 us; every kernel that uses this
 * does milliseconds of work per range). Also the word-at-a-time voxel count.
 * Any thread may call these.
 */
#include <pthread.h>
#include <string.h>

#include "r3d/segment.h"
#include "segment_internal.h"

struct par_job {
	segment_par_fn fn;
	void *arg;
	size_t begin, end;
	int worker;
};

static void *par_main(void *p)
{
	struct par_job *job = p;

	job->fn(job->arg, job->begin, job->end, job->worker);
	return NULL;
}

int segment_threads_clamp(int threads, size_t count)
{
	if (threads < 1)
		threads = 1;
	if (threads > SEGMENT_MAX_THREADS)
		threads = SEGMENT_MAX_THREADS;
	if ((size_t)threads > count)
		threads = count == 0 ? 1 : (int)count;
	return threads;
}

void segment_parallel(int threads, size_t count, segment_par_fn fn, void *arg)
{
	struct par_job jobs[SEGMENT_MAX_THREADS];
	pthread_t tid[SEGMENT_MAX_THREADS];
	bool started[SEGMENT_MAX_THREADS];
	int i, n = segment_threads_clamp(threads, count);

	for (i = 0; i < n; i++) {
		jobs[i].fn = fn;
		jobs[i].arg = arg;
		jobs[i].begin = count * (size_t)i / (size_t)n;
		jobs[i].end = count * (size_t)(i + 1) / (size_t)n;
		jobs[i].worker = i;
		started[i] = false;
	}
	for (i = 1; i < n; i++)
		started[i] = pthread_create(&tid[i], NULL, par_main, &jobs[i]) == 0;
	fn(arg, jobs[0].begin, jobs[0].end, 0);
	for (i = 1; i < n; i++) {
		if (started[i])
			pthread_join(tid[i], NULL);
		else
			fn(arg, jobs[i].begin, jobs[i].end, jobs[i].worker);
	}
}

size_t segment_count_set(const uint8_t *m, size_t n)
{
	size_t i = 0, c = 0;

	/* Bytes are 0 or 1: the multiply sums the eight of a word in the top byte. */
	for (; i + 8 <= n; i += 8) {
		uint64_t w;

		memcpy(&w, m + i, sizeof(w));
		c += (size_t)((w * UINT64_C(0x0101010101010101)) >> 56);
	}
	for (; i < n; i++)
		c += m[i] != 0;
	return c;
}
