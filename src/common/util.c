/*
 * util.c: checked arithmetic, number parsing, clocks, huge-page buffers and
 * directories (see r3d/util.h). Any thread.
 */
#include "r3d/util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
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

void *bigbuf_alloc(struct r3d_err *err, size_t size)
{
	void *p;

	if (size == 0)
		size = 1;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		r3d_err_set(err, R3D_ENOMEM, "cannot map %zu bytes: %s", size, strerror(errno));
		return NULL;
	}
#ifdef MADV_HUGEPAGE
	/* Where transparent huge pages are offered, a first touch costs ~20x less. */
	(void)madvise(p, size, MADV_HUGEPAGE);
#endif
	return p;
}

void bigbuf_free(void *p, size_t size)
{
	if (p != NULL)
		munmap(p, size == 0 ? 1 : size);
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
