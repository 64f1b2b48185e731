/*
 * err.c: the caller-owned error record (see r3d/err.h). Any thread.
 */
#include "r3d/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bool r3d_err_set(struct r3d_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return false;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return false;
}

bool r3d_err_prefix(struct r3d_err *err, const char *fmt, ...)
{
	char prefix[R3D_ERR_MSG_MAX];
	char old[R3D_ERR_MSG_MAX];
	va_list ap;

	if (err == NULL)
		return false;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Truncation is fine: the message is a one-line reason. */
	int n = snprintf(err->msg, sizeof(err->msg), "%s: ", prefix);
	if (n > 0 && (size_t)n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, "%s", old);
	return false;
}

void r3d_err_clear(struct r3d_err *err)
{
	if (err == NULL)
		return;
	err->code = R3D_OK;
	err->msg[0] = '\0';
}

bool r3d_err_retryable(const struct r3d_err *err)
{
	switch (err->code) {
	case R3D_ENOMEM:
	case R3D_ENOSPC:
	case R3D_EBUSY:
	case R3D_ENET:
		return true;
	default:
		return false;
	}
}

const char *r3d_code_name(int code)
{
	switch (code) {
	case R3D_OK: return "ok";
	case R3D_EINVAL: return "invalid";
	case R3D_ENOMEM: return "nomem";
	case R3D_EIO: return "io";
	case R3D_ENOSPC: return "nospace";
	case R3D_EBUSY: return "busy";
	case R3D_ENET: return "network";
	case R3D_EREFUSED: return "refused";
	case R3D_ESTOP: return "stopping";
	default: return "unknown";
	}
}
