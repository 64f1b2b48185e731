/*
 * util.h: small helpers shared by every module: checked size arithmetic,
 * range-checked number parsing, monotonic and wall clocks, huge-page buffers.
 * All functions are thread-safe.
 */
#ifndef R3D_UTIL_H
#define R3D_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* *out = a * b; false on overflow. */
bool size_mul(size_t a, size_t b, size_t *out);
/* *out = a * b * c; false on overflow. */
bool size_mul3(size_t a, size_t b, size_t c, size_t *out);
/* *out = a + b; false on overflow. */
bool size_add(size_t a, size_t b, size_t *out);

/* Parses a whole decimal integer in [min, max]; no sign games, no trailing junk. */
bool parse_long(struct r3d_err *err, const char *s, long min, long max, long *out);
/* A finite decimal number in [min, max] (strtod, the whole string). */
bool parse_double(struct r3d_err *err, const char *s, double min, double max, double *out);
/* Parses "true/false/yes/no/on/off/1/0". */
bool parse_bool(struct r3d_err *err, const char *s, bool *out);

/* Seconds since an arbitrary start, for durations. */
double clock_mono_s(void);
/* Seconds since the epoch, wall clock, for timestamps stored in the index. */
double clock_wall_s(void);

/* A large zeroed buffer backed by huge pages where the kernel offers them.
 * On success the caller owns the result and frees it with bigbuf_free(p, size). */
void *bigbuf_alloc(struct r3d_err *err, size_t size);
void bigbuf_free(void *p, size_t size);
/* Unmaps the freed buffers bigbuf_free() kept for reuse (a worker, after
 * each job: the process gives the memory back). */
void bigbuf_trim(void);

/* Reads a small secret file (a token, a webhook secret) whole into buf:
 * a regular file of at most size - 2 bytes without NUL bytes, NUL-terminated,
 * its length in *len. The caller wipes buf when done. */
bool read_secret_file(struct r3d_err *err, const char *path, char *buf, size_t size, size_t *len);

/* Creates a directory and its parents (mode 0750); true if it exists at the end. */
bool mkdir_p(struct r3d_err *err, const char *path);

#ifdef __cplusplus
}
#endif

#endif
