/*
 * log.c: one whole line per event on stderr (see r3d/log.h). Any thread.
 */
#include "r3d/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 1024

static atomic_int log_threshold = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

bool log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	return false;
}

const char *log_level_name(enum log_level level)
{
	if (level < LOG_DEBUG || level > LOG_ERROR)
		return "?";
	return level_names[level];
}

void log_set_level(enum log_level level)
{
	atomic_store(&log_threshold, (int)level);
}

bool log_enabled(enum log_level level)
{
	return (int)level >= atomic_load(&log_threshold);
}

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int k;
	va_list ap;

	if (!log_enabled(level))
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	k = snprintf(line + n, sizeof(line) - n, ".%03dZ %-5s %s: ",
		     (int)(tv.tv_usec / 1000), log_level_name(level), module);
	if (k > 0)
		n += (size_t)k;
	if (n < sizeof(line)) {
		va_start(ap, fmt);
		k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		if (k > 0)
			n += (size_t)k;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	/* One line per event: fold any newline the message carried. */
	for (size_t i = 0; i < n; i++) {
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	}
	line[n++] = '\n';
	/* A single write keeps lines from different threads whole. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}
