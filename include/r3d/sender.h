/*
 * sender.h: the sender thread. It drains the outbox: for each [destination
 * NAME], the rows that are due go out over one association (send_batch);
 * delivered rows become `sent`, transient failures wait for their next
 * attempt (exponential backoff from [retry]), permanent ones and those out of
 * attempts become `failed` with the DIMSE status or reason. Results wait in
 * the outbox while a PACS is down and go out when it is back, without a
 * restart. Started and stopped by the main thread.
 */
#ifndef R3D_SENDER_H
#define R3D_SENDER_H

#include <stdbool.h>

#include "r3d/config.h"
#include "r3d/err.h"
#include "r3d/index.h"

struct sender;

/* With no destination configured, no thread starts and *out is NULL. */
bool sender_start(struct r3d_err *err, const struct config *cfg, struct index *idx,
		  struct sender **out);
void sender_stop(struct sender *s);

#endif
