/*
 * sign.c: Standard Webhooks secrets and v1 signatures (see r3d/notify.h).
 * HMAC-SHA256 and base64 come from OpenSSL (EVP_MAC, EVP_EncodeBlock,
 * EVP_DecodeBlock); nothing here hashes or encodes by hand. Secrets are wiped
 * from every buffer this file fills and never quoted in an error. Any thread.
 */
#include "r3d/notify.h"
#include "r3d/util.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

#define SECRET_PREFIX "whsec_"
#define SIGN_DIGEST_BYTES 32   /* SHA-256 */
#define SIGN_TS_MAX 24         /* decimal int64 and NUL */

_Static_assert(3 + 4 * ((SIGN_DIGEST_BYTES + 2) / 3) + 1 <= NOTIFY_SIGNATURE_MAX,
	       "v1,<base64 of SHA-256> fits NOTIFY_SIGNATURE_MAX");

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Decodes standard base64 (padding optional) of `len` bytes at s into key.
 * The padded copy lives in `pad`, wiped by the caller. */
static bool b64_decode_key(struct r3d_err *err, const char *s, size_t len,
			   char pad[NOTIFY_SECRET_TEXT_MAX + 4], struct notify_secret *out)
{
	unsigned char raw[(NOTIFY_SECRET_TEXT_MAX + 4) / 4 * 3];
	size_t npad, padded;
	int n;
	bool ok = false;

	for (int i = 0; i < 2 && len > 0 && s[len - 1] == '='; i++)
		len--;
	for (size_t i = 0; i < len; i++)
		if (!is_b64(s[i]))
			return r3d_err_set(err, R3D_EINVAL,
					   "webhook secret is not base64 (expected whsec_<base64>)");
	if (len % 4 == 1 || len == 0)
		return r3d_err_set(err, R3D_EINVAL,
				   "webhook secret is not base64 (expected whsec_<base64>)");
	npad = (4 - len % 4) % 4;
	padded = len + npad;
	memcpy(pad, s, len);
	memset(pad + len, '=', npad);
	pad[padded] = '\0';
	n = EVP_DecodeBlock(raw, (const unsigned char *)pad, (int)padded);
	if (n < 0 || (size_t)n < npad) {
		r3d_err_set(err, R3D_EINVAL, "webhook secret is not base64 (expected whsec_<base64>)");
		goto out;
	}
	n -= (int)npad;   /* EVP_DecodeBlock counts the padding as zero bytes */
	if (n < NOTIFY_SECRET_MIN_BYTES || n > NOTIFY_SECRET_MAX_BYTES) {
		r3d_err_set(err, R3D_EINVAL,
			    "webhook secret decodes to %d bytes; Standard Webhooks wants %d to %d",
			    n, NOTIFY_SECRET_MIN_BYTES, NOTIFY_SECRET_MAX_BYTES);
		goto out;
	}
	memcpy(out->key, raw, (size_t)n);
	out->len = (size_t)n;
	ok = true;
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	return ok;
}

bool notify_secret_parse(struct r3d_err *err, const char *text, struct notify_secret *out)
{
	char pad[NOTIFY_SECRET_TEXT_MAX + 4];
	size_t len;
	bool ok;

	memset(out, 0, sizeof(*out));
	if (text == NULL)
		return r3d_err_set(err, R3D_EINVAL, "webhook secret missing");
	while (is_space(*text))
		text++;
	len = strnlen(text, NOTIFY_SECRET_TEXT_MAX + 1);
	if (len > NOTIFY_SECRET_TEXT_MAX)
		return r3d_err_set(err, R3D_EINVAL, "webhook secret longer than %d bytes",
				   NOTIFY_SECRET_TEXT_MAX);
	while (len > 0 && is_space(text[len - 1]))
		len--;
	if (len == 0)
		return r3d_err_set(err, R3D_EINVAL, "webhook secret empty");
	if (len >= strlen(SECRET_PREFIX) && memcmp(text, SECRET_PREFIX, strlen(SECRET_PREFIX)) == 0) {
		text += strlen(SECRET_PREFIX);
		len -= strlen(SECRET_PREFIX);
	}
	ok = b64_decode_key(err, text, len, pad, out);
	OPENSSL_cleanse(pad, sizeof(pad));
	if (!ok)
		notify_secret_clear(out);
	return ok;
}

bool notify_secret_read_file(struct r3d_err *err, const char *path, struct notify_secret *out)
{
	char buf[NOTIFY_SECRET_TEXT_MAX + 2];
	size_t len = 0;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	if (!read_secret_file(err, path, buf, sizeof(buf), &len)) {
		r3d_err_prefix(err, "webhook secret_file");
		goto out;
	}
	if (!notify_secret_parse(err, buf, out)) {
		r3d_err_prefix(err, "secret_file %s", path);
		goto out;
	}
	ok = true;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	return ok;
}

void notify_secret_clear(struct notify_secret *secret)
{
	if (secret != NULL)
		OPENSSL_cleanse(secret, sizeof(*secret));
}

/* The characters Standard Webhooks ids use; never '.', which delimits the
 * signed content. */
static bool id_valid(const char *id)
{
	size_t n = strnlen(id, NOTIFY_ID_MAX);

	if (n == 0 || n >= NOTIFY_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool notify_sign(struct r3d_err *err, const struct notify_secret *secret, const char *id,
		 int64_t timestamp, const char *body, size_t body_len,
		 char out[NOTIFY_SIGNATURE_MAX])
{
	OSSL_PARAM params[2];
	EVP_MAC *mac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	size_t mdlen = 0;
	char ts[SIGN_TS_MAX];
	bool ok = false;

	out[0] = '\0';
	if (secret == NULL || secret->len < NOTIFY_SECRET_MIN_BYTES ||
	    secret->len > NOTIFY_SECRET_MAX_BYTES)
		return r3d_err_set(err, R3D_EINVAL, "notify: no valid webhook secret");
	if (id == NULL || !id_valid(id))
		return r3d_err_set(err, R3D_EINVAL, "notify: message id empty, too long or not [A-Za-z0-9_-]");
	if (timestamp <= 0)
		return r3d_err_set(err, R3D_EINVAL, "notify: timestamp %" PRId64 " not positive", timestamp);
	if (body == NULL)
		return r3d_err_set(err, R3D_EINVAL, "notify: no body to sign");
	snprintf(ts, sizeof(ts), "%" PRId64, timestamp);

	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
	if (ctx == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "notify: OpenSSL HMAC unavailable");
		goto out;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(ctx, secret->key, secret->len, params) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)".", 1) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)ts, strlen(ts)) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)".", 1) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)body, body_len) != 1 ||
	    EVP_MAC_final(ctx, md, &mdlen, sizeof(md)) != 1 || mdlen != SIGN_DIGEST_BYTES) {
		r3d_err_set(err, R3D_ENOMEM, "notify: HMAC-SHA256 failed");
		goto out;
	}
	/* "v1," + 44 base64 characters + NUL fits NOTIFY_SIGNATURE_MAX. */
	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)out + 3, md, (int)mdlen);
	ok = true;
out:
	OPENSSL_cleanse(md, sizeof(md));
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return ok;
}
