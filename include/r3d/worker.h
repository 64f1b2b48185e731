/*
 * worker.h: the worker pool. [pipeline] workers threads claim queued jobs
 * from the index (atomically), run the pipeline on the job's series, write
 * the models under [storage] results/<job id>/, and record the outcome:
 * done, skipped (the series cannot be used, with the reason) or failed (an
 * error on our side, with the reason). One job's failure never stops the
 * others. A job interrupted by a crash or stop is queued again at start-up
 * (index_recover) and taken up again.
 *
 * worker_pool_start/stop belong to the main thread; the stats may be read
 * from any thread.
 */
#ifndef R3D_WORKER_H
#define R3D_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "r3d/config.h"
#include "r3d/err.h"
#include "r3d/index.h"
#include "r3d/pipeline.h"

struct worker_pool;
struct preloader;

/* pl (may be NULL): the pre-loader a job takes its series' decoded images
 * from (r3d/preload.h); it must outlive worker_pool_stop(). */
bool worker_pool_start(struct r3d_err *err, const struct config *cfg, struct index *idx,
		       struct preloader *pl, struct worker_pool **out);

/* Lets every worker finish the job it is running, then joins them. */
void worker_pool_stop(struct worker_pool *pool);

struct worker_stats {
	int64_t jobs_running;
	int64_t jobs_finished;                  /* since start, any outcome */
	double stage_seconds[PIPELINE_NSTAGES]; /* totals since start */
	/* Per entry of the configured structure catalogue ([structure KEY],
	 * same order): structures meshed and skipped since start. */
	int64_t structures_made[STRUCTURE_MAX];
	int64_t structures_skipped[STRUCTURE_MAX];
	/* Decimations that fell back (kept undecimated or over budget), and
	 * those further from the undecimated surface than allowed. */
	int64_t decimation_fallbacks[STRUCTURE_MAX];
	int64_t decimation_error_exceeded[STRUCTURE_MAX];
};
void worker_pool_stats(struct worker_pool *pool, struct worker_stats *out);

#endif
