/*
 * fuzz_util.c: the harnesses' shared fixture (see fuzz_util.h).
 */
#include "fuzz_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "r3d/log.h"

#define FUZZ_MAX_SCRATCH 4

static char scratch[FUZZ_MAX_SCRATCH][FUZZ_PATH_MAX];
static int nscratch;

static void die(const char *what)
{
	fprintf(stderr, "fuzz fixture: %s: %s\n", what, strerror(errno));
	abort();
}

void fuzz_log_off(void)
{
	/* One above the highest level: nothing passes log_enabled(). */
	log_set_level((enum log_level)(LOG_ERROR + 1));
}

static void scratch_remove(void)
{
	for (int i = 0; i < nscratch; i++) {
		char cmd[FUZZ_PATH_MAX + 16];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch[i]);
		if (system(cmd) != 0)
			fprintf(stderr, "fuzz fixture: could not remove %s\n", scratch[i]);
	}
	nscratch = 0;
}

void fuzz_scratch_dir(const char *tag, char out[FUZZ_PATH_MAX])
{
	const char *base = "/dev/shm";
	struct stat st;

	if (stat(base, &st) != 0 || !S_ISDIR(st.st_mode) || access(base, W_OK) != 0) {
		base = getenv("TMPDIR");
		if (base == NULL || base[0] == '\0')
			base = "/tmp";
	}
	snprintf(out, FUZZ_PATH_MAX, "%s/r3d-fuzz-%s-XXXXXX", base, tag);
	if (mkdtemp(out) == NULL)
		die("mkdtemp");
	if (nscratch < FUZZ_MAX_SCRATCH) {
		snprintf(scratch[nscratch++], FUZZ_PATH_MAX, "%s", out);
		if (nscratch == 1)
			atexit(scratch_remove);
	}
}

void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t off = 0;

	if (fd < 0)
		die(path);
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die(path);
		off += (size_t)n;
	}
	if (close(fd) != 0)
		die(path);
}

int fuzz_free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int port;

	if (fd < 0)
		die("socket");
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		die("bind 127.0.0.1:0");
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

long fuzz_exchange(int port, const uint8_t *data, size_t size)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	size_t off = 0;
	long got = 0;
	bool wr_open = true;
	double deadline = now_ms() + FUZZ_EXCHANGE_TIMEOUT_MS;
	char buf[16384];

	if (fd < 0)
		die("socket");
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int tries = 0;; tries++) {
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		if (errno != ECONNREFUSED || tries > 200)
			die("connect to the server under test");
		usleep(10000);   /* the listener is still coming up */
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0)
		die("fcntl");
	if (size == 0) {
		shutdown(fd, SHUT_WR);
		wr_open = false;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN | (wr_open ? POLLOUT : 0)};
		double left = deadline - now_ms();
		if (left <= 0) {
			got = -1;
			break;
		}
		int rc = poll(&p, 1, (int)left + 1);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			die("poll");
		if (rc == 0)
			continue;
		if (wr_open && (p.revents & POLLOUT)) {
			ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			/* The server may close before reading it all (a rejected
			 * association, a bad request): that is its answer. */
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || off == size) {
				shutdown(fd, SHUT_WR);
				wr_open = false;
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n > 0) {
				got += n;
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			break;   /* closed (or reset) by the server */
		}
	}
	close(fd);
	return got;
}

void fuzz_hang(const char *what)
{
	fprintf(stderr, "R3D-FUZZ-HANG %s\n", what);
	abort();
}

void fuzz_check_reason(const struct r3d_err *err, const char *what)
{
	if (err->code == R3D_OK || err->msg[0] == '\0') {
		fprintf(stderr, "R3D-FUZZ-NOREASON %s failed without a reason (code %d)\n", what,
			err->code);
		abort();
	}
}
