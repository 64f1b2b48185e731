/*
 * wake.c: process-wide wake-ups between the daemon's stages (see r3d/wake.h).
 */
#include "r3d/wake.h"

#include <pthread.h>
#include <time.h>

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned long posts[WAKE_NTOPICS];
} wake = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}};

/* The condition variable waits on CLOCK_REALTIME (the static initialiser's
 * clock); a wall-clock jump only shortens or lengthens one wait. */
void wake_post(enum wake_topic topic)
{
	if ((unsigned)topic >= WAKE_NTOPICS)
		return;
	pthread_mutex_lock(&wake.lock);
	wake.posts[topic]++;
	pthread_cond_broadcast(&wake.cond);
	pthread_mutex_unlock(&wake.lock);
}

void wake_wait(enum wake_topic topic, unsigned long *seen, int timeout_ms)
{
	struct timespec until;

	if ((unsigned)topic >= WAKE_NTOPICS)
		return;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&wake.lock);
	while (wake.posts[topic] == *seen) {
		if (pthread_cond_timedwait(&wake.cond, &wake.lock, &until) != 0)
			break;
	}
	*seen = wake.posts[topic];
	pthread_mutex_unlock(&wake.lock);
}
