/*
 * util.c: checked arithmetic, number parsing, clocks, huge-page buffers (with
 * a small cache of freed ones) and directories (see r3d/util.h). Any thread.
 */
#include "r3d/util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

bool size_mul(size_t a, size_t b, size_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}

bool size_mul3(size_t a, size_t b, size_t c, size_t *out)
{
	size_t ab;

	return size_mul(a, b, &ab) && size_mul(ab, c, out);
}

bool size_add(size_t a, size_t b, size_t *out)
{
	return !__builtin_add_overflow(a, b, out);
}

bool parse_long(struct r3d_err *err, const char *s, long min, long max, long *out)
{
	char *end = NULL;
	long v;

	if (s == NULL || *s == '\0')
		return r3d_err_set(err, R3D_EINVAL, "empty value, expected a number");
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return r3d_err_set(err, R3D_EINVAL, "'%s' is not a whole number", s);
	if (v < min || v > max)
		return r3d_err_set(err, R3D_EINVAL, "%ld is out of range [%ld, %ld]", v, min, max);
	*out = v;
	return true;
}

bool parse_double(struct r3d_err *err, const char *s, double min, double max, double *out)
{
	char *end = NULL;
	double v;

	if (s == NULL || *s == '\0')
		return r3d_err_set(err, R3D_EINVAL, "empty value, expected a number");
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v))
		return r3d_err_set(err, R3D_EINVAL, "'%s' is not a number", s);
	if (v < min || v > max)
		return r3d_err_set(err, R3D_EINVAL, "%g is out of range [%g, %g]", v, min, max);
	*out = v;
	return true;
}

bool parse_bool(struct r3d_err *err, const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return r3d_err_set(err, R3D_EINVAL, "'%s' is not a boolean (true or false)", s);
}

double clock_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double clock_wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Freed buffers are kept for the next bigbuf_alloc() (up to
 * BIGBUF_CACHE_SLOTS of them, BIGBUF_CACHE_MAX_BYTES in all, until
 * bigbuf_trim()): the first touch of fresh memory (a page fault, the kernel
 * zeroing the page, and under a hypervisor the host backing it) costs
 * several times clearing memory that is already there; a mesh build
 * allocates and frees the same few sizes once per structure. A buffer
 * taken from the cache may be larger than asked for (at most twice, in
 * BIGBUF_ROUND steps); the live table remembers its size for the free. */
#define BIGBUF_ROUND ((size_t)2 << 20)
#define BIGBUF_CACHE_SLOTS 16
#define BIGBUF_CACHE_MAX_BYTES ((size_t)1 << 30)
#define BIGBUF_LIVE_SLOTS 256

struct bigbuf_map {
	void *p;
	size_t cap;
};

static pthread_mutex_t bigbuf_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bigbuf_map bigbuf_live[BIGBUF_LIVE_SLOTS];
static struct bigbuf_map bigbuf_cached[BIGBUF_CACHE_SLOTS];
static size_t bigbuf_cached_bytes;

static size_t bigbuf_cap(size_t size)
{
	size_t n = size == 0 ? 1 : size;

	return n > SIZE_MAX - BIGBUF_ROUND ? n : (n + BIGBUF_ROUND - 1) / BIGBUF_ROUND * BIGBUF_ROUND;
}

/* Under the lock: a free slot of the live table, or NULL. */
static struct bigbuf_map *bigbuf_live_slot(void *p)
{
	for (size_t i = 0; i < BIGBUF_LIVE_SLOTS; i++) {
		if (bigbuf_live[i].p == p)
			return &bigbuf_live[i];
	}
	return NULL;
}

void *bigbuf_alloc(struct r3d_err *err, size_t size)
{
	size_t cap = bigbuf_cap(size);
	void *p = NULL;

	pthread_mutex_lock(&bigbuf_lock);
	struct bigbuf_map *live = bigbuf_live_slot(NULL), *best = NULL;
	for (size_t i = 0; live != NULL && i < BIGBUF_CACHE_SLOTS; i++) {
		struct bigbuf_map *c = &bigbuf_cached[i];
		if (c->p != NULL && c->cap >= cap && c->cap / 2 <= cap && (best == NULL || c->cap < best->cap))
			best = c;
	}
	if (best != NULL) {
		p = best->p;
		*live = *best;
		bigbuf_cached_bytes -= best->cap;
		best->p = NULL;
	}
	pthread_mutex_unlock(&bigbuf_lock);
	if (p != NULL) {
		memset(p, 0, size);
		return p;
	}
	p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		r3d_err_set(err, R3D_ENOMEM, "cannot map %zu bytes: %s", size, strerror(errno));
		return NULL;
	}
#ifdef MADV_HUGEPAGE
	/* Where transparent huge pages are offered, a first touch costs ~20x less. */
	(void)madvise(p, cap, MADV_HUGEPAGE);
#endif
	return p;
}

void bigbuf_free(void *p, size_t size)
{
	struct bigbuf_map m = {p, bigbuf_cap(size)};

	if (p == NULL)
		return;
	pthread_mutex_lock(&bigbuf_lock);
	struct bigbuf_map *live = bigbuf_live_slot(p);
	if (live != NULL) {
		m.cap = live->cap;
		live->p = NULL;
	}
	for (size_t i = 0; i < BIGBUF_CACHE_SLOTS && m.p != NULL; i++) {
		if (bigbuf_cached[i].p == NULL && bigbuf_cached_bytes + m.cap <= BIGBUF_CACHE_MAX_BYTES) {
			bigbuf_cached[i] = m;
			bigbuf_cached_bytes += m.cap;
			m.p = NULL;
		}
	}
	pthread_mutex_unlock(&bigbuf_lock);
	if (m.p != NULL)
		munmap(m.p, m.cap);
}

void bigbuf_trim(void)
{
	struct bigbuf_map drop[BIGBUF_CACHE_SLOTS];

	pthread_mutex_lock(&bigbuf_lock);
	memcpy(drop, bigbuf_cached, sizeof(drop));
	memset(bigbuf_cached, 0, sizeof(bigbuf_cached));
	bigbuf_cached_bytes = 0;
	pthread_mutex_unlock(&bigbuf_lock);
	for (size_t i = 0; i < BIGBUF_CACHE_SLOTS; i++) {
		if (drop[i].p != NULL)
			munmap(drop[i].p, drop[i].cap);
	}
}

bool mkdir_p(struct r3d_err *err, const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return r3d_err_set(err, R3D_EINVAL, "bad directory path '%s'", path);
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char saved = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, 0750) != 0 && errno != EEXIST)
			return r3d_err_set(err, errno == ENOSPC ? R3D_ENOSPC : R3D_EIO,
					   "cannot create directory '%s': %s", buf, strerror(errno));
		buf[i] = saved;
	}
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return r3d_err_set(err, R3D_EIO, "'%s' is not a directory", path);
	return true;
}

bool read_secret_file(struct r3d_err *err, const char *path, char *buf, size_t size, size_t *len)
{
	struct stat st;
	bool ok = false;
	int fd;

	*len = 0;
	buf[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return r3d_err_set(err, R3D_EIO, "cannot read '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		r3d_err_set(err, R3D_EIO, "'%s' is not a regular file", path);
		goto out;
	}
	while (*len < size - 1) {
		ssize_t n = read(fd, buf + *len, size - 1 - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r3d_err_set(err, R3D_EIO, "cannot read '%s': %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	buf[*len] = '\0';
	if (*len > size - 2) {
		r3d_err_set(err, R3D_EINVAL, "'%s' is longer than %zu bytes", path, size - 2);
		goto out;
	}
	if (strlen(buf) != *len) {
		r3d_err_set(err, R3D_EINVAL, "'%s' holds a NUL byte", path);
		goto out;
	}
	ok = true;
out:
	close(fd);
	return ok;
}
