/*
 * err.h: the error record every recon3d function that can fail takes first.
 *
 * A caller owns a struct r3d_err (usually on its stack); a failing function
 * fills it once with a code and a one-line reason and returns false (or NULL).
 * The code says whether a retry can help. No memory is needed on the error
 * path. Any thread may use its own record.
 */
#ifndef R3D_ERR_H
#define R3D_ERR_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

enum r3d_code {
	R3D_OK = 0,
	R3D_EINVAL,   /* invalid input: retrying the same input cannot help */
	R3D_ENOMEM,   /* out of memory: may succeed later */
	R3D_EIO,      /* file or device error */
	R3D_ENOSPC,   /* disk full: may succeed once space is freed */
	R3D_EBUSY,    /* database busy or locked: retry */
	R3D_ENET,     /* network peer down, refused or timed out: retry */
	R3D_EREFUSED, /* peer refused for good (rejected association, bad status) */
	R3D_ESTOP,    /* the daemon is stopping */
};

#define R3D_ERR_MSG_MAX 256

struct r3d_err {
	int code;
	char msg[R3D_ERR_MSG_MAX];
};

/* Sets err (if not NULL) and returns false, so that callers can write
 * `return r3d_err_set(err, R3D_EINVAL, "...")`. */
bool r3d_err_set(struct r3d_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Adds "prefix: " in front of the message already in err. Returns false. */
bool r3d_err_prefix(struct r3d_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void r3d_err_clear(struct r3d_err *err);

/* True when a later attempt with the same input may succeed. */
bool r3d_err_retryable(const struct r3d_err *err);

/* Short stable name of a code ("invalid", "nospace", ...), for logs and rows. */
const char *r3d_code_name(int code);

#ifdef __cplusplus
}
#endif

#endif
