/*
 * api.h: what status.c and api.c share (not for other modules): the bearer
 * tokens of the HTTP API and the jobs API's answers (docs/api.md). Built by
 * the main thread at status_start(); read by libmicrohttpd's thread.
 */
#ifndef R3D_STATUS_API_H
#define R3D_STATUS_API_H

#include <stdbool.h>
#include <stddef.h>

#include "r3d/config.h"
#include "r3d/index.h"

#define API_DIGEST_LEN 32      /* SHA-256 */
#define API_BODY_MAX 65536     /* bytes of a request body, at most */

/* The configured tokens, kept as their SHA-256 digests: a presented token
 * is hashed once and compared with every digest in constant time. */
struct api_tokens {
	int n;
	unsigned char digest[CONFIG_MAX_TOKENS][API_DIGEST_LEN];
	bool admin[CONFIG_MAX_TOKENS];
};

bool api_tokens_init(struct r3d_err *err, const struct config *cfg, struct api_tokens *t);

/* What an Authorization header value is worth. */
enum api_auth { API_AUTH_NONE, API_AUTH_INVALID, API_AUTH_READ, API_AUTH_ADMIN };
enum api_auth api_tokens_check(const struct api_tokens *t, const char *authorization);

/* One request under /api/, its body read. */
struct api_request {
	const char *method;
	const char *path;          /* the URL path, from "/api/" on */
	const char *state;         /* ?state=, or NULL */
	const char *limit;         /* ?limit=, or NULL */
	const char *body;          /* may be NULL */
	size_t body_len;
	bool admin;
};

struct api_reply {
	unsigned status;
	char *body;                /* JSON; the caller frees it */
	const char *allow;         /* for 405: the methods the path takes */
};

/* Answers req from the index and returns the HTTP status; always fills
 * *rep (500 with a JSON error at worst; body NULL only when out of memory). */
unsigned api_handle(const struct config *cfg, struct index *idx, const struct api_request *req,
		struct api_reply *rep);

/* {"error": msg}, for every error answer; free() the result. */
char *api_error_body(const char *msg);

#endif
