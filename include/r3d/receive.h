/*
 * receive.h: the DICOM receiver: the accept loop, the association policy
 * (called AE title, allowed callers, max_associations) and the storage of
 * each C-STORE (atomic rename into the storage folder, then the index, then
 * the "success" answer).
 *
 * receiver_open/run/shutdown/free belong to the main thread; each accepted
 * association is served by a thread of its own; receiver_stats may be called
 * from any thread.
 */
#ifndef R3D_RECEIVE_H
#define R3D_RECEIVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "r3d/config.h"
#include "r3d/err.h"
#include "r3d/index.h"

struct receiver;

struct receive_stats {
	int64_t associations_open;
	int64_t associations_total;      /* accepted */
	int64_t associations_rejected;
	int64_t tls_handshake_failures;  /* on the TLS listener: the peer or we gave up */
	int64_t echoes;
	int64_t instances_stored;
	int64_t instances_failed;
	int64_t bytes_received;
	bool listening;
};

/* Prepares the storage folders (removing temporary files a crash left) and
 * opens the listener. On success the caller owns *out and frees it with
 * receiver_free() after receiver_shutdown(). cfg and idx must outlive it. */
bool receiver_open(struct r3d_err *err, const struct config *cfg, struct index *idx,
		   struct receiver **out);

/* Accepts associations until *stop becomes true. */
void receiver_run(struct receiver *r, const atomic_bool *stop);

/* Stops listening, lets open associations finish for grace_s seconds, then
 * aborts the rest and waits until every association thread has ended. */
void receiver_shutdown(struct receiver *r, int grace_s);

void receiver_free(struct receiver *r);

/* Each CT image stored from now on is offered to pl (NULL: none). Main
 * thread, before receiver_run(); pl must outlive receiver_shutdown(). */
struct preloader;
void receiver_set_preloader(struct receiver *r, struct preloader *pl);

void receiver_stats(const struct receiver *r, struct receive_stats *out);

/* The absolute storage folder in use. */
const char *receiver_storage_dir(const struct receiver *r);

#endif
