/*
 * post.c: one webhook delivery attempt over HTTP(S) with libcurl, and what
 * its outcome means for retrying (see r3d/notify.h). Each call makes and
 * frees its own easy handle, so any thread may post; notify_global_init()
 * must have run in main() before threads started.
 */
#include "r3d/notify.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "r3d/util.h"

#define POST_HEADER_MAX 128   /* "webhook-signature: v1,<44>" and the like */

bool notify_global_init(struct r3d_err *err)
{
	CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (rc != CURLE_OK)
		return r3d_err_set(err, R3D_ENOMEM, "notify: curl_global_init: %s",
				   curl_easy_strerror(rc));
	return true;
}

void notify_global_cleanup(void)
{
	curl_global_cleanup();
}

int notify_classify_status(long http_status)
{
	if (http_status >= 200 && http_status <= 299)
		return R3D_OK;
	if (http_status == 408 || http_status == 429 || (http_status >= 500 && http_status <= 599))
		return R3D_ENET;
	return R3D_EREFUSED;
}

int notify_classify_curl(int curl_code)
{
	switch ((CURLcode)curl_code) {
	case CURLE_OK:
		return R3D_OK;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_NOT_BUILT_IN:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_UNKNOWN_OPTION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CRL_BADFILE:
		return R3D_EINVAL;      /* our configuration: fix it, do not retry */
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return R3D_EREFUSED;    /* the peer's certificate is not trusted */
	case CURLE_OUT_OF_MEMORY:
		return R3D_ENOMEM;
	default:
		/* Connection refused or reset, timeouts, DNS failures, TLS handshake
		 * errors, empty replies: a later attempt may succeed. */
		return R3D_ENET;
	}
}

/* The response body is read and dropped; nothing from the receiver is kept. */
static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void)ptr;
	(void)userdata;
	return size * nmemb;
}

static bool attempt_fail(struct r3d_err *err, struct notify_attempt *a, int code, const char *fmt,
			 ...) __attribute__((format(printf, 4, 5)));
static bool attempt_fail(struct r3d_err *err, struct notify_attempt *a, int code, const char *fmt,
			 ...)
{
	va_list ap;

	a->code = code;
	va_start(ap, fmt);
	vsnprintf(a->error, sizeof(a->error), fmt, ap);
	va_end(ap);
	return r3d_err_set(err, code, "%s", a->error);
}

/* Adds one header line; false when out of memory (the list is kept whole). */
static bool add_header(struct curl_slist **list, const char *line)
{
	struct curl_slist *n = curl_slist_append(*list, line);

	if (n == NULL)
		return false;
	*list = n;
	return true;
}

bool notify_post(struct r3d_err *err, const struct notify_target *target,
		 const struct notify_message *msg, int64_t timestamp, struct notify_attempt *out)
{
	char signature[NOTIFY_SIGNATURE_MAX];
	char h_id[POST_HEADER_MAX], h_ts[POST_HEADER_MAX], h_sig[POST_HEADER_MAX];
	char curl_msg[CURL_ERROR_SIZE];
	struct curl_slist *headers = NULL;
	struct r3d_err sign_err;
	CURL *curl = NULL;
	CURLcode rc;
	curl_off_t retry_after = 0;
	long timeout_ms, connect_ms, status = 0;
	double started = clock_mono_s();
	bool ok = false;

	memset(out, 0, sizeof(*out));
	out->timestamp = timestamp;
	curl_msg[0] = '\0';
	if (target == NULL || target->url == NULL || target->url[0] == '\0') {
		attempt_fail(err, out, R3D_EINVAL, "webhook: no URL");
		goto out;
	}
	if (strnlen(target->url, NOTIFY_URL_MAX + 1) > NOTIFY_URL_MAX) {
		attempt_fail(err, out, R3D_EINVAL, "webhook: URL longer than %d bytes", NOTIFY_URL_MAX);
		goto out;
	}
	timeout_ms = target->timeout_ms == 0 ? NOTIFY_TIMEOUT_MS_DEFAULT : target->timeout_ms;
	connect_ms = target->connect_timeout_ms == 0 ? NOTIFY_CONNECT_TIMEOUT_MS_DEFAULT
						     : target->connect_timeout_ms;
	if (timeout_ms < 1 || timeout_ms > NOTIFY_TIMEOUT_MS_MAX || connect_ms < 1 ||
	    connect_ms > NOTIFY_TIMEOUT_MS_MAX) {
		attempt_fail(err, out, R3D_EINVAL, "webhook: timeouts must be 1 to %d ms",
			     NOTIFY_TIMEOUT_MS_MAX);
		goto out;
	}
	if (msg == NULL || msg->body == NULL || msg->body_len > NOTIFY_BODY_MAX) {
		attempt_fail(err, out, R3D_EINVAL, "webhook: no message or body too large");
		goto out;
	}
	if (!notify_sign(&sign_err, target->secret, msg->id, timestamp, msg->body, msg->body_len,
			 signature)) {
		attempt_fail(err, out, sign_err.code, "%s", sign_err.msg);
		goto out;
	}
	snprintf(h_id, sizeof(h_id), "webhook-id: %s", msg->id);
	snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %" PRId64, timestamp);
	snprintf(h_sig, sizeof(h_sig), "webhook-signature: %s", signature);
	/* "Expect:" stops curl from waiting for a 100 Continue on larger bodies. */
	if (!add_header(&headers, "Content-Type: application/json") || !add_header(&headers, h_id) ||
	    !add_header(&headers, h_ts) || !add_header(&headers, h_sig) ||
	    !add_header(&headers, "Expect:")) {
		attempt_fail(err, out, R3D_ENOMEM, "webhook: out of memory");
		goto out;
	}
	curl = curl_easy_init();
	if (curl == NULL) {
		attempt_fail(err, out, R3D_ENOMEM, "webhook: curl_easy_init failed");
		goto out;
	}
	rc = CURLE_OK;
#define SETOPT(opt, val)                                      \
	do {                                                  \
		if (rc == CURLE_OK)                           \
			rc = curl_easy_setopt(curl, opt, val); \
	} while (0)
	SETOPT(CURLOPT_ERRORBUFFER, curl_msg);
	SETOPT(CURLOPT_URL, target->url);
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_POST, 1L);
	SETOPT(CURLOPT_POSTFIELDS, msg->body);
	SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)msg->body_len);
	SETOPT(CURLOPT_HTTPHEADER, headers);
	SETOPT(CURLOPT_USERAGENT, "recon3d/" R3D_VERSION);
	SETOPT(CURLOPT_SSL_VERIFYPEER, target->insecure ? 0L : 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, target->insecure ? 0L : 2L);
	if (target->ca_file != NULL)
		SETOPT(CURLOPT_CAINFO, target->ca_file);
	SETOPT(CURLOPT_TIMEOUT_MS, timeout_ms);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_WRITEFUNCTION, discard);
#undef SETOPT
	if (rc != CURLE_OK) {
		out->curl_code = (int)rc;
		attempt_fail(err, out, R3D_EINVAL, "webhook: curl option: %s", curl_easy_strerror(rc));
		goto out;
	}
	rc = curl_easy_perform(curl);
	out->curl_code = (int)rc;
	if (curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
		out->http_status = status;
	if (curl_easy_getinfo(curl, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
	    retry_after > 0)
		out->retry_after_s = (double)retry_after;
	if (rc != CURLE_OK) {
		attempt_fail(err, out, notify_classify_curl((int)rc), "webhook: %s (curl %d)",
			     curl_msg[0] != '\0' ? curl_msg : curl_easy_strerror(rc), (int)rc);
		goto out;
	}
	out->code = notify_classify_status(status);
	if (out->code != R3D_OK) {
		attempt_fail(err, out, out->code, "webhook: HTTP %ld%s", status,
			     out->code == R3D_ENET ? " (retry later)" : " (permanent)");
		goto out;
	}
	ok = true;
out:
	out->seconds = clock_mono_s() - started;
	curl_easy_cleanup(curl);
	curl_slist_free_all(headers);
	return ok;
}
