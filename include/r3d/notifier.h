/*
 * notifier.h: the notifier thread. When every job of a study has finished
 * and every result object is delivered or has finally failed, it builds one
 * signed message (src/notify) per [webhook] url, keeps it in the index, and
 * POSTs it, retrying with backoff ([retry]); every attempt is recorded. A
 * study that receives more images later gets a new message when its new
 * jobs finish. With [viewer] enabled it also gives each such study (with at
 * least one series done) its 3D page link (r3d/viewer.h), which the message
 * carries; this happens with or without a webhook URL. Started and stopped
 * by the main thread.
 */
#ifndef R3D_NOTIFIER_H
#define R3D_NOTIFIER_H

#include <stdbool.h>

#include "r3d/config.h"
#include "r3d/err.h"
#include "r3d/index.h"

struct notifier;

/* Checks [webhook]: the URLs and that the secret parses. */
bool notifier_check_config(struct r3d_err *err, const struct config *cfg);

/* With no [webhook] url and the viewer disabled, no thread starts and *out
 * is NULL. */
bool notifier_start(struct r3d_err *err, const struct config *cfg, struct index *idx,
		    struct notifier **out);
void notifier_stop(struct notifier *n);

#endif
