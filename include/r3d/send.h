/*
 * send.h: the sender's retry policy and batch delivery, without DICOM or
 * SQLite of its own. The policy is pure arithmetic on attempt counts and
 * times (exponential backoff with jitter); send_batch() delivers files to
 * one destination over one association through the bridge and says, per
 * file, whether it was delivered, should be tried again at a given time, or
 * failed for good (with the DIMSE status or the rejection reason). The
 * caller keeps the outbox rows (attempts, next attempt time, state).
 *
 * Threads: every function is reentrant; one send_batch() call uses one
 * association on the calling thread.
 */
#ifndef R3D_SEND_H
#define R3D_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/bridge.h"
#include "r3d/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SEND_MAX_ATTEMPTS 100000     /* [retry] max_attempts upper bound */
#define SEND_MAX_DELAY_S 604800.0    /* [retry] max_delay_s upper bound: one week */
#define SEND_MIN_DELAY_S 0.001       /* [retry] initial_delay_s lower bound */
#define SEND_BATCH_MAX 10000         /* files in one send_batch() */

/* How the delay before a retry is spread, so that many rows (or many
 * nodes) that failed together do not all come back at once. With d the
 * capped exponential delay below:
 *   SEND_JITTER_NONE:  exactly d (tests, or one row per destination);
 *   SEND_JITTER_FULL:  uniform in [initial_delay_s, d] ("full jitter", with
 *                      the initial delay as a floor so a retry never follows
 *                      at once);
 *   SEND_JITTER_EQUAL: uniform in [d/2, d] (never less than half the step). */
enum send_jitter {
	SEND_JITTER_NONE,
	SEND_JITTER_FULL,
	SEND_JITTER_EQUAL,
};

/* [retry] of the config. */
struct send_policy {
	double initial_delay_s;  /* delay after the first failed attempt, > 0 */
	double max_delay_s;      /* cap of every delay, >= initial_delay_s */
	unsigned max_attempts;   /* attempts in all, counting the first; 1 = never retry */
	enum send_jitter jitter;
};

/* Checks the bounds above; R3D_EINVAL with the key at fault otherwise. */
bool send_policy_check(struct r3d_err *err, const struct send_policy *p);

/* The delay before attempt number attempts + 1, when `attempts` attempts
 * (>= 1) have failed: d = min(max_delay_s, initial_delay_s * 2^(attempts-1)),
 * then spread by the policy's jitter using u, a uniform number in [0, 1)
 * (ignored by SEND_JITTER_NONE). Pure; never more than max_delay_s. */
double send_backoff_delay(const struct send_policy *p, unsigned attempts, double u);

/* now + send_backoff_delay(p, attempts, u): when to try again. */
double send_next_attempt(const struct send_policy *p, unsigned attempts, double now, double u);

/* True when a row whose latest attempt failed with err, after `attempts`
 * attempts in all, is to be tried again: the failure is retryable
 * (r3d_err_retryable) and attempts < max_attempts. */
bool send_should_retry(const struct send_policy *p, unsigned attempts, const struct r3d_err *err);

/* A uniform number in [0, 1) from a per-thread generator seeded from the
 * clock, the thread and getrandom(); for the jitter, not for secrets. */
double send_random_unit(void);

/* ---------------------------------------------------------------------- */
/* One batch of files to one destination                                  */
/* ---------------------------------------------------------------------- */

/* A [destination NAME] section of the config, with the timeouts the
 * sender uses. */
struct send_destination {
	const char *name;        /* for messages only */
	const char *host;
	int port;
	const char *called_ae;   /* the destination's ae_title */
	const char *calling_ae;  /* calling_ae_title, else our own AE title */
	int connect_timeout_s;
	int acse_timeout_s;
	int dimse_timeout_s;
	const struct bridge_tls *tls;   /* NULL: plain TCP; else DICOM TLS (r3d/bridge.h) */
	const char *const *extra_classes;   /* SOP classes to propose besides the files' own
					     * (an association kept for objects to come) */
	size_t nextra_classes;
};

enum send_outcome {
	SEND_NOT_TRIED,   /* not attempted (the association was lost before it): leave the row as it was */
	SEND_DELIVERED,   /* the peer answered Success or Warning */
	SEND_RETRY,       /* transient failure and attempts left: try again at next_attempt */
	SEND_FAILED,      /* permanent failure, or no attempts left: mark the row failed */
};

/* One file of a batch: path and attempts in, the rest out. */
struct send_item {
	const char *path;         /* in */
	unsigned attempts;        /* in: attempts already made for this file (0 the first time) */

	enum send_outcome outcome;
	bool responded;           /* a C-STORE-RSP came: status is valid */
	uint16_t status;          /* DIMSE status (Success, Warning or the failure) */
	int code;                 /* R3D_OK when delivered, else the failure's r3d code */
	char reason[R3D_ERR_MSG_MAX];  /* why it failed; for warnings, the status and comment */
	double next_attempt;      /* SEND_RETRY: when to try again (the clock of `now`) */
};

/* What happened to the association of one batch. */
struct send_batch_stats {
	bool associated;          /* the association was accepted */
	unsigned delivered, retry, failed, not_tried;
	bool nodelay;             /* TCP_NODELAY was on for the association */
	bool reused;              /* send_batch_keep(): the kept association carried the batch */
	double seconds;           /* from the request to the release */
};

/* Sends items[0..n) to dest over one association, each in its own transfer
 * syntax where the peer accepts it. Fills every item's outcome: an
 * association that cannot be opened gives every item the same outcome
 * (transient: SEND_RETRY, permanent: SEND_FAILED) and reason; a link lost
 * mid-batch gives the file being sent SEND_RETRY and later files
 * SEND_NOT_TRIED. An item's attempt is counted (attempts + 1) for the
 * retry decision whenever its outcome is not SEND_NOT_TRIED. now is the
 * caller's clock (e.g. clock_wall_s()) for next_attempt. Returns false with
 * err only when the batch itself is unusable (n == 0 or > SEND_BATCH_MAX,
 * invalid destination or policy, too many presentation contexts: send fewer
 * files at once); then every item is SEND_NOT_TRIED. */
bool send_batch(struct r3d_err *err, const struct send_destination *dest,
		const struct send_policy *policy, double now, struct send_item *items, size_t n,
		struct send_batch_stats *stats);

/* send_batch() on an association kept between calls: *keep NULL opens one
 * (proposing the files' contexts and dest->extra_classes) and leaves it in
 * *keep; an open one is used again while it is alive and proposes every
 * file (bridge_scu_proposes()), else it is released and a new one opened.
 * When a kept association turns out to be gone before the first file of
 * the batch got an answer (the peer closed it while idle), that file is
 * not counted as an attempt and a new association is opened once. On
 * return *keep is the association, or NULL when it was lost; the caller
 * ends it with send_keep_close(). stats->associated tells whether one was
 * opened by this call (reused: false, stats->reused true). */
/* on_item (NULL: none) hears of each item as soon as its outcome is known
 * (after its C-STORE response), on the calling thread, so that the caller
 * records a delivery at once rather than at the end of the batch; items
 * never tried are not reported. */
typedef void (*send_item_fn)(void *ctx, size_t i, const struct send_item *it);
bool send_batch_keep(struct r3d_err *err, const struct send_destination *dest,
		     const struct send_policy *policy, double now, struct send_item *items,
		     size_t n, struct send_batch_stats *stats, struct bridge_scu **keep,
		     send_item_fn on_item, void *on_item_ctx);

/* Releases a kept association (NULL allowed). */
void send_keep_close(struct bridge_scu *keep);

/* Stable lower-case name of an outcome ("delivered", "retry", ...). */
const char *send_outcome_name(enum send_outcome o);

#ifdef __cplusplus
}
#endif

#endif
