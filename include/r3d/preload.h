/*
 * preload.h: the pre-loader (issue 15): CT images are decoded while their
 * study still arrives, so that the job that starts once the study is stable
 * finds its pixels in memory instead of reading the files back.
 *
 * The receiver offers each stored instance (preloader_offer, association
 * threads: a queue push, never a wait on a decode); one pre-loader thread of
 * its own decodes the offered CT images in arrival order into the bridge's
 * cache (bridge_preload_*), at most [pipeline] preload_mb in all. A worker
 * takes its series when its job starts (preloader_take: the files not yet
 * decoded are left to the job) and drops what is left when the job ends
 * (preloader_done). Nothing here can fail a job: a file that is not cached,
 * not decodable, changed since it was decoded, or over the cap is read by
 * the job as before. The cache is memory only: after a restart jobs read
 * their files.
 *
 * preloader_start/stop belong to the main thread (start before the worker
 * pool and the receiver, stop after both); the others to any thread. A NULL
 * preloader (preload_mb = 0) is accepted by every function and does nothing.
 */
#ifndef R3D_PRELOAD_H
#define R3D_PRELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "r3d/bridge.h"
#include "r3d/config.h"
#include "r3d/err.h"

#define PRELOAD_QUEUE_MAX 65536      /* instances waiting to be decoded; more are left to the job */
#define PRELOAD_UNCLAIMED_S 600      /* a series no job took this long after stable_seconds
				      * of quiet is dropped */

struct preloader;

/* *out = NULL (and true) when cfg->preload_mb is 0. On success the caller
 * owns *out and stops it with preloader_stop(). cfg must outlive it. */
bool preloader_start(struct r3d_err *err, const struct config *cfg, struct preloader **out);
/* Stops the thread (an offer being decoded is finished) and frees the cache. */
void preloader_stop(struct preloader *pl);

/* The instance a is stored at path: queued for decoding when it is a CT
 * image (CT, Enhanced CT or Legacy Converted Enhanced CT Image Storage). */
void preloader_offer(struct preloader *pl, const struct bridge_instance_attrs *a, const char *path);

/* Series series_uid's decoded files for its job (NULL: none); its files
 * still waiting are no longer decoded, and one being decoded is waited
 * for. The caller frees the set with bridge_preload_set_free(). */
struct bridge_preload_set *preloader_take(struct preloader *pl, const char *series_uid);
/* The job on series_uid is over: whatever arrived for it meanwhile is dropped. */
void preloader_done(struct preloader *pl, const char *series_uid);

void preloader_stats(struct preloader *pl, struct bridge_preload_stats *out);

#endif
