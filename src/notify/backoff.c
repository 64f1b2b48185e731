/*
 * backoff.c: when to try a webhook again (see r3d/notify.h). Pure functions
 * of their arguments; the caller keeps the attempt count and the clock.
 * Any thread.
 */
#include "r3d/notify.h"

#include <math.h>

bool notify_backoff_check(struct r3d_err *err, const struct notify_backoff *p)
{
	if (p == NULL)
		return r3d_err_set(err, R3D_EINVAL, "webhook retry: no policy");
	if (!isfinite(p->initial_delay_s) || p->initial_delay_s <= 0 ||
	    p->initial_delay_s > NOTIFY_BACKOFF_MAX_DELAY_S)
		return r3d_err_set(err, R3D_EINVAL, "webhook retry: initial_delay_s must be > 0 and <= %.0f",
				   NOTIFY_BACKOFF_MAX_DELAY_S);
	if (!isfinite(p->max_delay_s) || p->max_delay_s < p->initial_delay_s ||
	    p->max_delay_s > NOTIFY_BACKOFF_MAX_DELAY_S)
		return r3d_err_set(err, R3D_EINVAL,
				   "webhook retry: max_delay_s must be >= initial_delay_s and <= %.0f",
				   NOTIFY_BACKOFF_MAX_DELAY_S);
	if (p->max_attempts < 1 || p->max_attempts > NOTIFY_BACKOFF_MAX_ATTEMPTS)
		return r3d_err_set(err, R3D_EINVAL, "webhook retry: max_attempts must be 1 to %d",
				   NOTIFY_BACKOFF_MAX_ATTEMPTS);
	if (!isfinite(p->jitter) || p->jitter < 0 || p->jitter > 1)
		return r3d_err_set(err, R3D_EINVAL, "webhook retry: jitter must be 0 to 1");
	return true;
}

bool notify_backoff_next(const struct notify_backoff *p, unsigned attempts_made,
			 double retry_after_s, double u, double *delay_s)
{
	double delay;

	*delay_s = 0;
	if (!notify_backoff_check(NULL, p))
		return false;
	if (attempts_made >= p->max_attempts)
		return false;
	if (attempts_made == 0)
		return true;   /* the first attempt goes now */
	delay = p->initial_delay_s;
	/* attempts_made < max_attempts <= NOTIFY_BACKOFF_MAX_ATTEMPTS bounds the loop. */
	for (unsigned i = 1; i < attempts_made && delay < p->max_delay_s; i++)
		delay *= 2;
	if (delay > p->max_delay_s)
		delay = p->max_delay_s;
	if (!isfinite(u) || u < 0)
		u = 0;
	if (u >= 1)
		u = nextafter(1.0, 0.0);
	delay *= 1.0 - p->jitter * u;
	if (isfinite(retry_after_s) && retry_after_s > 0) {
		double ra = retry_after_s < p->max_delay_s ? retry_after_s : p->max_delay_s;
		if (ra > delay)
			delay = ra;
	}
	*delay_s = delay;
	return true;
}
