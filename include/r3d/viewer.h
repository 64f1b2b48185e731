/*
 * viewer.h: the 3D page (issue 5, item 3). With [viewer] enabled, every
 * study whose models are done gets one link, /viewer/<token>, where <token>
 * is 256 random bits in hex (a capability: whoever has the link sees the
 * models, nobody else can guess it). The link expires [viewer] link_ttl_days
 * after it is made. The status server hands every request under /viewer/ to
 * viewer_answer():
 *
 *   /viewer/<token>                 the page (HTML; three.js, embedded)
 *   /viewer/<token>/models.json     the study's structures (names, colours,
 *                                   volumes, download names)
 *   /viewer/<token>/<name>.stl      one structure's binary STL, as a download
 *   /viewer/assets/<file>           the page's script, style and three.js
 *
 * A token that is malformed, unknown or expired gets the same 404 as any
 * unknown path. Tokens never reach a log line at info level; the study UID
 * does.
 *
 * Threads: viewer_link_for_study() is called by the notifier thread,
 * viewer_answer() by libmicrohttpd's thread; both only use the index (its
 * own lock) and read-only data.
 */
#ifndef R3D_VIEWER_H
#define R3D_VIEWER_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "r3d/config.h"
#include "r3d/err.h"
#include "r3d/index.h"

#define VIEWER_TOKEN_BYTES 32                       /* random bytes per token */
#define VIEWER_TOKEN_LEN (2 * VIEWER_TOKEN_BYTES)   /* lowercase hex digits */
#define VIEWER_URL_MAX 2048
#define VIEWER_MAX_STRUCTURES 512                   /* per study, all series */

/* A fresh token: VIEWER_TOKEN_BYTES from OpenSSL's RAND_bytes, in hex.
 * R3D_EIO when the generator fails (never a weaker token). */
bool viewer_token_new(struct r3d_err *err, char out[VIEWER_TOKEN_LEN + 1]);

/* True when s is exactly VIEWER_TOKEN_LEN lowercase hex digits. */
bool viewer_token_valid(const char *s);

/* "<base>/viewer/<token>" where base is [viewer] base_url, or
 * http://<[http] bind>:<[http] port> when that is empty. */
bool viewer_link_url(struct r3d_err *err, const struct config *cfg, const char *token, char *out,
		     size_t size);

/* The study's link (made now when it has none valid at now) as a URL.
 * Logs one info line, with the study UID, when a link is made. */
bool viewer_link_for_study(struct r3d_err *err, const struct config *cfg, struct index *idx,
			   const char *study_uid, double now, char *url, size_t size);

/* Answers a GET or HEAD of /viewer/<path> (path: what follows "/viewer/",
 * query string already removed by libmicrohttpd). */
enum MHD_Result viewer_answer(const struct config *cfg, struct index *idx,
			      struct MHD_Connection *conn, const char *path);

#endif
