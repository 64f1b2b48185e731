/*
 * send.c: the sender's retry policy and batch delivery (see r3d/send.h).
 *
 * The policy functions are pure arithmetic. send_batch() opens one
 * association through the bridge, sends the files in order and turns each
 * bridge result into an outcome for the caller's outbox row; it keeps no
 * state between calls; send_batch_keep() hands its association back to
 * the caller for the next batch. Any thread; one batch per thread at a
 * time.
 */
#include "r3d/send.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "r3d/util.h"

bool send_policy_check(struct r3d_err *err, const struct send_policy *p)
{
	/* Written so that NaN fails every comparison. */
	if (!(p->initial_delay_s >= SEND_MIN_DELAY_S && p->initial_delay_s <= SEND_MAX_DELAY_S))
		return r3d_err_set(err, R3D_EINVAL, "[retry] initial_delay_s must be %g..%g s",
				   SEND_MIN_DELAY_S, SEND_MAX_DELAY_S);
	if (!(p->max_delay_s >= p->initial_delay_s && p->max_delay_s <= SEND_MAX_DELAY_S))
		return r3d_err_set(err, R3D_EINVAL,
				   "[retry] max_delay_s must be initial_delay_s..%g s", SEND_MAX_DELAY_S);
	if (p->max_attempts < 1 || p->max_attempts > SEND_MAX_ATTEMPTS)
		return r3d_err_set(err, R3D_EINVAL, "[retry] max_attempts must be 1..%d",
				   SEND_MAX_ATTEMPTS);
	if (p->jitter != SEND_JITTER_NONE && p->jitter != SEND_JITTER_FULL &&
	    p->jitter != SEND_JITTER_EQUAL)
		return r3d_err_set(err, R3D_EINVAL, "unknown jitter mode %d", (int)p->jitter);
	return true;
}

double send_backoff_delay(const struct send_policy *p, unsigned attempts, double u)
{
	double d = p->initial_delay_s;
	double lo;

	/* Doubling stops at the cap: at most ~30 steps for the bounds above. */
	for (unsigned i = 1; i < attempts && d < p->max_delay_s; i++)
		d *= 2.0;
	if (d > p->max_delay_s)
		d = p->max_delay_s;
	if (!(u >= 0.0))
		u = 0.0;
	if (u >= 1.0)
		u = 1.0;
	switch (p->jitter) {
	case SEND_JITTER_FULL:
		lo = p->initial_delay_s < d ? p->initial_delay_s : d;
		return lo + u * (d - lo);
	case SEND_JITTER_EQUAL:
		return d / 2.0 + u * (d / 2.0);
	case SEND_JITTER_NONE:
	default:
		return d;
	}
}

double send_next_attempt(const struct send_policy *p, unsigned attempts, double now, double u)
{
	return now + send_backoff_delay(p, attempts, u);
}

bool send_should_retry(const struct send_policy *p, unsigned attempts, const struct r3d_err *err)
{
	return r3d_err_retryable(err) && attempts < p->max_attempts;
}

static _Thread_local uint64_t rng_state;

double send_random_unit(void)
{
	if (rng_state == 0) {
		uint64_t seed = 0;
		struct timespec ts;
		if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
			seed = 0;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed ^= (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec ^
			((uint64_t)gettid() << 32);
		rng_state = seed != 0 ? seed : 0x2545F4914F6CDD1Dull;
	}
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	uint64_t r = rng_state * 0x2545F4914F6CDD1Dull;
	return (double)(r >> 11) * (1.0 / 9007199254740992.0);   /* 53 bits in [0, 1) */
}

const char *send_outcome_name(enum send_outcome o)
{
	switch (o) {
	case SEND_NOT_TRIED: return "not_tried";
	case SEND_DELIVERED: return "delivered";
	case SEND_RETRY: return "retry";
	case SEND_FAILED: return "failed";
	default: return "unknown";
	}
}

/* Writes a one-line reason into it->reason (truncated to fit). */
static void item_reason(struct send_item *it, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void item_reason(struct send_item *it, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(it->reason, sizeof(it->reason), fmt, ap);
	va_end(ap);
}

/* The outcome of a failed attempt: retry at a time, or failed for good. */
static void item_failed(struct send_item *it, const struct r3d_err *e,
			const struct send_policy *policy, double now)
{
	unsigned attempts = it->attempts + 1;

	it->code = e->code;
	if (send_should_retry(policy, attempts, e)) {
		it->outcome = SEND_RETRY;
		it->next_attempt = send_next_attempt(policy, attempts, now, send_random_unit());
		item_reason(it, "%s", e->msg);
	} else if (r3d_err_retryable(e)) {
		it->outcome = SEND_FAILED;
		item_reason(it, "gave up after %u attempts: %s", attempts, e->msg);
	} else {
		it->outcome = SEND_FAILED;
		item_reason(it, "%s", e->msg);
	}
}

static bool dest_check(struct r3d_err *err, const struct send_destination *d)
{
	if (d->host == NULL || d->called_ae == NULL || d->calling_ae == NULL)
		return r3d_err_set(err, R3D_EINVAL, "destination %s: host and AE titles are required",
				   d->name != NULL ? d->name : "?");
	return true;
}

/* Opens the association a batch goes on. false with err: the batch or the
 * destination is unusable; true with *scu NULL: refused or unreachable,
 * every item has its outcome. */
static bool batch_open(struct r3d_err *err, const struct send_destination *dest,
		       const struct send_policy *policy, double now, struct send_item *items,
		       size_t n, const char **paths, struct bridge_scu **scu)
{
	struct bridge_scu_params bp;
	struct r3d_err e;
	const char *name = dest->name != NULL ? dest->name : dest->host;

	*scu = NULL;
	memset(&bp, 0, sizeof(bp));
	bp.host = dest->host;
	bp.port = dest->port;
	bp.called_ae = dest->called_ae;
	bp.calling_ae = dest->calling_ae;
	bp.connect_timeout_s = dest->connect_timeout_s;
	bp.acse_timeout_s = dest->acse_timeout_s;
	bp.dimse_timeout_s = dest->dimse_timeout_s;
	bp.tls = dest->tls;
	bp.extra_classes = dest->extra_classes;
	bp.nextra_classes = dest->nextra_classes;
	r3d_err_clear(&e);
	if (bridge_scu_open(&e, &bp, paths, n, scu))
		return true;
	if (e.code == R3D_EINVAL || e.code == R3D_ENOMEM)
		/* The batch or the destination is unusable as given. */
		return r3d_err_set(err, e.code, "destination %s: %s", name, e.msg);
	/* Refused, unreachable, rejected or unreadable: the same for all. */
	for (size_t i = 0; i < n; i++)
		item_failed(&items[i], &e, policy, now);
	return true;
}

static bool batch_run(struct r3d_err *err, const struct send_destination *dest,
		      const struct send_policy *policy, double now, struct send_item *items,
		      size_t n, struct send_batch_stats *stats, struct bridge_scu **keep,
		      send_item_fn on_item, void *on_item_ctx)
{
	const char **paths = NULL;
	struct bridge_scu *scu = NULL;
	struct bridge_scu_info info;
	struct r3d_err e;
	double t0 = clock_mono_s();
	const char *name = dest->name != NULL ? dest->name : dest->host;
	bool ok = false, reused = false;
	size_t bytes;

	memset(stats, 0, sizeof(*stats));
	for (size_t i = 0; i < n; i++) {
		items[i].outcome = SEND_NOT_TRIED;
		items[i].responded = false;
		items[i].status = 0;
		items[i].code = R3D_OK;
		items[i].reason[0] = '\0';
		items[i].next_attempt = 0.0;
	}
	if (n == 0 || n > SEND_BATCH_MAX)
		return r3d_err_set(err, R3D_EINVAL, "a batch holds 1..%d files, not %zu",
				   SEND_BATCH_MAX, n);
	if (!send_policy_check(err, policy) || !dest_check(err, dest))
		return false;
	if (!size_mul(n, sizeof(*paths), &bytes))
		return r3d_err_set(err, R3D_EINVAL, "batch too large");
	paths = malloc(bytes);
	if (paths == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		paths[i] = items[i].path;

	if (keep != NULL && *keep != NULL) {
		/* The kept association, when it can carry every file. */
		bool fits = bridge_scu_alive(*keep);
		for (size_t i = 0; fits && i < n; i++)
			fits = bridge_scu_proposes(*keep, paths[i]);
		if (fits) {
			scu = *keep;
			reused = true;
		} else {
			send_keep_close(*keep);
		}
		*keep = NULL;
	}
	if (scu == NULL) {
		if (!batch_open(err, dest, policy, now, items, n, paths, &scu))
			goto out;
		if (scu == NULL) {
			ok = true;
			goto out;
		}
		bridge_scu_get_info(scu, &info);
		stats->associated = true;
		stats->nodelay = info.nodelay;
	}
	stats->reused = reused;

	for (size_t i = 0; i < n; i++) {
		struct send_item *it = &items[i];
		struct bridge_scu_result res;

		if (!bridge_scu_alive(scu)) {
			item_reason(it, "not attempted: the association to %s was lost", name);
			continue;
		}
		r3d_err_clear(&e);
		bool delivered = bridge_scu_store(&e, scu, it->path, &res);
		if (!delivered && reused && i == 0 && !res.responded && !bridge_scu_alive(scu)) {
			/* The kept association was closed by the peer while idle:
			 * this is no attempt; a new association, once. */
			bridge_scu_abort(scu);
			scu = NULL;
			reused = false;
			stats->reused = false;
			if (!batch_open(err, dest, policy, now, items, n, paths, &scu))
				goto out;
			if (scu == NULL) {
				ok = true;
				goto out;
			}
			bridge_scu_get_info(scu, &info);
			stats->associated = true;
			stats->nodelay = info.nodelay;
			r3d_err_clear(&e);
			delivered = bridge_scu_store(&e, scu, it->path, &res);
		}
		it->responded = res.responded;
		it->status = res.status;
		if (delivered) {
			it->outcome = SEND_DELIVERED;
			it->code = R3D_OK;
			if (res.status != 0)
				item_reason(it, "status 0x%04x (%s)%s%s", res.status,
					    bridge_store_status_text(res.status),
					    res.error_comment[0] != '\0' ? ": " : "", res.error_comment);
		} else {
			item_failed(it, &e, policy, now);
		}
		if (on_item != NULL)
			on_item(on_item_ctx, i, it);
	}
	if (keep != NULL && bridge_scu_alive(scu)) {
		*keep = scu;   /* for the next batch */
		scu = NULL;
	} else {
		/* A release that is not confirmed changes no outcome: every file
		 * counted as delivered was answered by the peer. */
		r3d_err_clear(&e);
		(void)bridge_scu_release(&e, scu);
		scu = NULL;
	}
	ok = true;
out:
	bridge_scu_abort(scu);
	free(paths);
	for (size_t i = 0; i < n; i++) {
		switch (items[i].outcome) {
		case SEND_DELIVERED: stats->delivered++; break;
		case SEND_RETRY: stats->retry++; break;
		case SEND_FAILED: stats->failed++; break;
		default: stats->not_tried++; break;
		}
	}
	stats->seconds = clock_mono_s() - t0;
	return ok;
}

bool send_batch(struct r3d_err *err, const struct send_destination *dest,
		const struct send_policy *policy, double now, struct send_item *items, size_t n,
		struct send_batch_stats *stats)
{
	return batch_run(err, dest, policy, now, items, n, stats, NULL, NULL, NULL);
}

bool send_batch_keep(struct r3d_err *err, const struct send_destination *dest,
		     const struct send_policy *policy, double now, struct send_item *items,
		     size_t n, struct send_batch_stats *stats, struct bridge_scu **keep,
		     send_item_fn on_item, void *on_item_ctx)
{
	return batch_run(err, dest, policy, now, items, n, stats, keep, on_item, on_item_ctx);
}

void send_keep_close(struct bridge_scu *keep)
{
	struct r3d_err e;

	if (keep == NULL)
		return;
	r3d_err_clear(&e);
	if (!bridge_scu_alive(keep))
		bridge_scu_abort(keep);
	else
		(void)bridge_scu_release(&e, keep);
}
