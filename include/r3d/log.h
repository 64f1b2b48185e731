/*
 * log.h: one line per event on stderr.
 *
 * Format: `2026-11-22T19:00:00.123Z info  receive: instance stored sop=1.2.3 bytes=527488`
 * Lines are written whole with one write() so that threads do not interleave.
 * Patient names, IDs and birth dates never go to a line at info level or
 * above: log UIDs, job ids and AE titles. Any thread.
 */
#ifndef R3D_LOG_H
#define R3D_LOG_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Parses "debug", "info", "warn" or "error". */
bool log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(mod, ...) log_msg(LOG_DEBUG, mod, __VA_ARGS__)
#define log_info(mod, ...) log_msg(LOG_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_msg(LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_msg(LOG_ERROR, mod, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif
