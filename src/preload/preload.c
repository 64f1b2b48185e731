/*
 * preload.c: the pre-loader thread and its queue (see r3d/preload.h).
 *
 * Threads: preloader_offer() runs on the receiver's association threads
 * (it appends to the queue under the lock and signals); preloader_take(),
 * preloader_done() and preloader_stats() on worker threads; one thread of
 * its own (preload_main) pops the queue in arrival order and decodes each
 * file with the lock released, into the bridge's cache (which has a lock
 * of its own). The queue's lock is never held while decoding, so a store
 * is never slowed by a decode, and a take waits at most for the one file
 * of its series being decoded. One thread only: decoding a 512x512 image
 * takes about 1 ms (uncompressed) to 30 ms (JPEG 2000), and the cores are
 * the receiver's and the running jobs' too.
 *
 * Nothing here holds patient data; logs name series UIDs.
 */
#include "r3d/preload.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "r3d/log.h"
#include "r3d/util.h"

#define PRELOAD_POLL_MS 1000   /* the thread looks for unclaimed series this often */

/* CT Image, Enhanced CT Image, Legacy Converted Enhanced CT Image Storage:
 * what the queue makes jobs of (src/index/queue.c). */
static const char *const preload_classes[] = {
	"1.2.840.10008.5.1.4.1.1.2",
	"1.2.840.10008.5.1.4.1.1.2.1",
	"1.2.840.10008.5.1.4.1.1.2.2",
};

struct preload_item {
	struct preload_item *next;
	char series_uid[BRIDGE_UID_MAX + 1];
	size_t estimate;   /* decoded bytes, from the header */
	char *path;        /* owned */
};

struct preloader {
	const struct config *cfg;
	struct bridge_preload *cache;
	pthread_t thread;
	pthread_mutex_t lock;   /* guards everything below */
	pthread_cond_t changed; /* an item queued, a decode done, stop */
	struct preload_item *head, *tail;
	size_t queued;
	bool stop;
	char decoding[BRIDGE_UID_MAX + 1];   /* series of the file being decoded, or "" */
	char refused_logged[BRIDGE_UID_MAX + 1];  /* last series the cap was logged for */
	unsigned long long queue_full;       /* offers dropped: the queue was full */
};

static void item_free(struct preload_item *it)
{
	if (it == NULL)
		return;
	free(it->path);
	free(it);
}

static bool is_ct_image(const struct bridge_instance_attrs *a)
{
	if (a->is_segmentation || strcmp(a->modality, "CT") != 0)
		return false;
	for (size_t i = 0; i < sizeof(preload_classes) / sizeof(preload_classes[0]); i++)
		if (strcmp(a->sop_class_uid, preload_classes[i]) == 0)
			return true;
	return false;
}

/* Decodes one item; the lock is not held. */
static void preload_one(struct preloader *pl, const struct preload_item *it)
{
	struct r3d_err err;
	int rc;

	r3d_err_clear(&err);
	rc = bridge_preload_file(&err, pl->cache, it->series_uid, it->path, it->estimate,
				 clock_mono_s(), (double)pl->cfg->stable_seconds);
	if (rc < 0) {
		/* Its job reads it again and says what is wrong with it. */
		log_debug("preload", "not decoded series=%s: %s", it->series_uid, err.msg);
		return;
	}
	if (rc == 0) {
		pthread_mutex_lock(&pl->lock);
		bool logged = strcmp(pl->refused_logged, it->series_uid) == 0;
		snprintf(pl->refused_logged, sizeof(pl->refused_logged), "%s", it->series_uid);
		pthread_mutex_unlock(&pl->lock);
		if (!logged)
			log_info("preload", "series=%s: not all of it fits in [pipeline] preload_mb = %ld: "
				 "its job reads the rest from the files", it->series_uid,
				 pl->cfg->preload_mb);
	}
}

static void *preload_main(void *arg)
{
	struct preloader *pl = arg;
	double last_expire = clock_mono_s();

	pthread_mutex_lock(&pl->lock);
	while (!pl->stop) {
		struct preload_item *it = pl->head;
		if (it == NULL) {
			struct timespec until;
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += PRELOAD_POLL_MS / 1000;
			(void)pthread_cond_timedwait(&pl->changed, &pl->lock, &until);
		} else {
			pl->head = it->next;
			if (pl->head == NULL)
				pl->tail = NULL;
			pl->queued--;
			snprintf(pl->decoding, sizeof(pl->decoding), "%s", it->series_uid);
			pthread_mutex_unlock(&pl->lock);
			preload_one(pl, it);
			item_free(it);
			pthread_mutex_lock(&pl->lock);
			pl->decoding[0] = '\0';
			pthread_cond_broadcast(&pl->changed);
		}
		double now = clock_mono_s();
		if (now - last_expire >= PRELOAD_POLL_MS / 1000.0) {
			last_expire = now;
			pthread_mutex_unlock(&pl->lock);
			size_t n = bridge_preload_expire(pl->cache, now,
							 pl->cfg->stable_seconds + (double)PRELOAD_UNCLAIMED_S);
			if (n > 0)
				log_info("preload", "%zu series no job took were dropped", n);
			pthread_mutex_lock(&pl->lock);
		}
	}
	pthread_mutex_unlock(&pl->lock);
	return NULL;
}

bool preloader_start(struct r3d_err *err, const struct config *cfg, struct preloader **out)
{
	struct preloader *pl = NULL;
	pthread_condattr_t ca;
	size_t cap = 0;
	bool cond_made = false;

	*out = NULL;
	if (cfg->preload_mb <= 0)
		return true;
	if (!size_mul((size_t)cfg->preload_mb, 1024u * 1024u, &cap))
		return r3d_err_set(err, R3D_EINVAL, "[pipeline] preload_mb too large");
	pl = calloc(1, sizeof(*pl));
	if (pl == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "pre-loader: out of memory");
	pl->cfg = cfg;
	if (!bridge_preload_create(err, cap, &pl->cache))
		goto fail;
	pthread_mutex_init(&pl->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pl->changed, &ca);
	pthread_condattr_destroy(&ca);
	cond_made = true;
	if (pthread_create(&pl->thread, NULL, preload_main, pl) != 0) {
		r3d_err_set(err, R3D_ENOMEM, "cannot start the pre-loader thread: %s", strerror(errno));
		goto fail;
	}
	log_info("preload", "pre-loader started: up to %ld MB of decoded CT images", cfg->preload_mb);
	*out = pl;
	return true;
fail:
	if (cond_made) {
		pthread_cond_destroy(&pl->changed);
		pthread_mutex_destroy(&pl->lock);
	}
	bridge_preload_destroy(pl->cache);
	free(pl);
	return false;
}

void preloader_stop(struct preloader *pl)
{
	struct bridge_preload_stats st;

	if (pl == NULL)
		return;
	pthread_mutex_lock(&pl->lock);
	pl->stop = true;
	pthread_cond_broadcast(&pl->changed);
	pthread_mutex_unlock(&pl->lock);
	pthread_join(pl->thread, NULL);
	while (pl->head != NULL) {
		struct preload_item *it = pl->head;
		pl->head = it->next;
		item_free(it);
	}
	bridge_preload_get_stats(pl->cache, &st);
	log_info("preload", "pre-loader stopped: %llu files decoded, %llu over the cap, %llu not "
		 "decodable, %llu series dropped unclaimed, %llu offers over the queue's %d",
		 (unsigned long long)st.files_kept, (unsigned long long)st.files_refused,
		 (unsigned long long)st.files_failed, (unsigned long long)st.series_evicted,
		 pl->queue_full, PRELOAD_QUEUE_MAX);
	bridge_preload_destroy(pl->cache);
	pthread_cond_destroy(&pl->changed);
	pthread_mutex_destroy(&pl->lock);
	free(pl);
}

void preloader_offer(struct preloader *pl, const struct bridge_instance_attrs *a, const char *path)
{
	struct preload_item *it;
	size_t estimate = 0;
	long frames = a->number_of_frames > 0 ? a->number_of_frames : 1;

	if (pl == NULL || !is_ct_image(a) || a->rows <= 0 || a->columns <= 0)
		return;
	if (!size_mul3((size_t)a->rows, (size_t)a->columns, (size_t)frames, &estimate) ||
	    !size_mul(estimate, sizeof(uint16_t), &estimate))
		return;   /* nothing that large fits: its job reads it */
	it = calloc(1, sizeof(*it));
	if (it == NULL)
		return;
	it->path = strdup(path);
	if (it->path == NULL) {
		free(it);
		return;
	}
	snprintf(it->series_uid, sizeof(it->series_uid), "%s", a->series_uid);
	it->estimate = estimate;
	pthread_mutex_lock(&pl->lock);
	if (pl->stop || pl->queued >= PRELOAD_QUEUE_MAX) {
		pl->queue_full++;
		pthread_mutex_unlock(&pl->lock);
		item_free(it);
		return;
	}
	if (pl->tail != NULL)
		pl->tail->next = it;
	else
		pl->head = it;
	pl->tail = it;
	pl->queued++;
	pthread_cond_broadcast(&pl->changed);
	pthread_mutex_unlock(&pl->lock);
}

struct bridge_preload_set *preloader_take(struct preloader *pl, const char *series_uid)
{
	struct preload_item **link;

	if (pl == NULL)
		return NULL;
	pthread_mutex_lock(&pl->lock);
	link = &pl->head;
	pl->tail = NULL;
	while (*link != NULL) {
		struct preload_item *it = *link;
		if (strcmp(it->series_uid, series_uid) == 0) {
			*link = it->next;
			pl->queued--;
			item_free(it);
		} else {
			pl->tail = it;
			link = &it->next;
		}
	}
	while (strcmp(pl->decoding, series_uid) == 0)
		pthread_cond_wait(&pl->changed, &pl->lock);
	pthread_mutex_unlock(&pl->lock);
	return bridge_preload_take(pl->cache, series_uid);
}

void preloader_done(struct preloader *pl, const char *series_uid)
{
	if (pl != NULL)
		bridge_preload_drop(pl->cache, series_uid);
}

void preloader_stats(struct preloader *pl, struct bridge_preload_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (pl != NULL)
		bridge_preload_get_stats(pl->cache, out);
}
