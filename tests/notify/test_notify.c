/*
 * test_notify.c: unit tests of r3d_notify without a network: Standard
 * Webhooks signatures against values computed elsewhere (the reference
 * library's published test vector, and Python's hmac/base64), secret parsing,
 * the JSON body and its id, outcome classification and backoff. Tests only.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "r3d/notify.h"
#include "r3d/test.h"

/* ---- signatures ------------------------------------------------------------ */

/* The published vector of the Standard Webhooks reference library
 * (libraries/python/tests/test_webhooks.py, test_sign_function). */
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS 1614265330
#define SPEC_BODY "{\"test\": 2432232314}"
#define SPEC_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* Computed with /usr/bin/python3:
 *   k = bytes(range(32)); "whsec_" + base64.b64encode(k)
 *   base64.b64encode(hmac.new(k, b"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W.1674087231." + body,
 *                             hashlib.sha256).digest())
 * with body the spec's minified example. */
#define PY_SECRET "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define PY_ID "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
#define PY_TS 1674087231
#define PY_BODY "{\"type\":\"contact.created\",\"timestamp\":\"2022-11-03T20:26:10.344522Z\"," \
		"\"data\":{\"id\":\"1f81eb52-5198-4599-803e-771906343485\"}}"
#define PY_SIG "v1,4PMU5Dl90B4kgwxDpwuMZ/cnZ5ztf+Y+kviYQD66rJg="

static bool sign_with(const char *secret_text, const char *id, int64_t ts, const char *body,
		      char out[NOTIFY_SIGNATURE_MAX])
{
	struct notify_secret secret;
	struct r3d_err err;
	bool ok;

	if (!notify_secret_parse(&err, secret_text, &secret)) {
		fprintf(stderr, "secret: %s\n", err.msg);
		return false;
	}
	ok = notify_sign(&err, &secret, id, ts, body, strlen(body), out);
	if (!ok)
		fprintf(stderr, "sign: %s\n", err.msg);
	notify_secret_clear(&secret);
	return ok;
}

static void test_signatures(void)
{
	char sig[NOTIFY_SIGNATURE_MAX];

	CHECK(sign_with(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, sig));
	CHECK(strcmp(sig, SPEC_SIG) == 0);
	/* Without the prefix the text is still base64, as in the reference libraries. */
	CHECK(sign_with("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SPEC_ID, SPEC_TS, SPEC_BODY, sig));
	CHECK(strcmp(sig, SPEC_SIG) == 0);
	/* Surrounding white space (a file's newline) does not change the key. */
	CHECK(sign_with("  " SPEC_SECRET "\n", SPEC_ID, SPEC_TS, SPEC_BODY, sig));
	CHECK(strcmp(sig, SPEC_SIG) == 0);

	CHECK(sign_with(PY_SECRET, PY_ID, PY_TS, PY_BODY, sig));
	CHECK(strcmp(sig, PY_SIG) == 0);
	/* Unpadded base64 gives the same 32-byte key. */
	CHECK(sign_with("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", PY_ID, PY_TS, PY_BODY, sig));
	CHECK(strcmp(sig, PY_SIG) == 0);

	/* Any change of id, timestamp, body or key changes the signature. */
	CHECK(sign_with(PY_SECRET, PY_ID, PY_TS + 1, PY_BODY, sig) && strcmp(sig, PY_SIG) != 0);
	CHECK(sign_with(PY_SECRET, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4X", PY_TS, PY_BODY, sig) &&
	      strcmp(sig, PY_SIG) != 0);
	CHECK(sign_with(PY_SECRET, PY_ID, PY_TS, PY_BODY " ", sig) && strcmp(sig, PY_SIG) != 0);
	CHECK(sign_with(SPEC_SECRET, PY_ID, PY_TS, PY_BODY, sig) && strcmp(sig, PY_SIG) != 0);
}

static void test_secret_and_sign_refusals(void)
{
	struct notify_secret s;
	struct r3d_err err;
	char sig[NOTIFY_SIGNATURE_MAX];
	char path[] = "/tmp/r3d-notify-secret-XXXXXX";
	int fd;

	CHECK(!notify_secret_parse(&err, NULL, &s) && err.code == R3D_EINVAL);
	CHECK(!notify_secret_parse(&err, "", &s) && err.code == R3D_EINVAL);
	CHECK(!notify_secret_parse(&err, "whsec_", &s) && err.code == R3D_EINVAL);
	CHECK(!notify_secret_parse(&err, "whsec_not base64 at all!", &s) && err.code == R3D_EINVAL);
	CHECK(strstr(err.msg, "not base64") != NULL && strstr(err.msg, "at all") == NULL);
	/* 45 characters: no base64 text has length 1 mod 4. */
	CHECK(!notify_secret_parse(&err, "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8AA", &s));
	CHECK(!notify_secret_parse(&err, "whsec_AAECAwQFBgcICQoLD=A0ODxAREhMUFRYXGBkaGxwdHh8=", &s));
	/* 16 bytes: below the spec's 24. */
	CHECK(!notify_secret_parse(&err, "whsec_AAECAwQFBgcICQoLDA0ODw==", &s) &&
	      err.code == R3D_EINVAL && strstr(err.msg, "16 bytes") != NULL);
	/* 66 bytes: above the spec's 64. */
	CHECK(!notify_secret_parse(&err,
				   "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
				   "AAAAAAAAAAAAAAAAAAAAAAAA", &s) && err.code == R3D_EINVAL);
	CHECK(notify_secret_parse(&err, PY_SECRET, &s) && s.len == 32 && s.key[31] == 31);
	notify_secret_clear(&s);
	CHECK(s.len == 0 && s.key[31] == 0);

	/* A secret file with a trailing newline. */
	fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(write(fd, SPEC_SECRET "\n", strlen(SPEC_SECRET) + 1) ==
		      (ssize_t)strlen(SPEC_SECRET) + 1);
		close(fd);
		CHECK(notify_secret_read_file(&err, path, &s) && s.len == 24);
		CHECK(notify_sign(&err, &s, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), sig) &&
		      strcmp(sig, SPEC_SIG) == 0);
		unlink(path);
	}
	CHECK(!notify_secret_read_file(&err, path, &s) && err.code == R3D_EIO);

	CHECK(notify_secret_parse(&err, SPEC_SECRET, &s));
	/* '.' would make the signed content ambiguous. */
	CHECK(!notify_sign(&err, &s, "msg.1", SPEC_TS, "{}", 2, sig) && err.code == R3D_EINVAL);
	CHECK(!notify_sign(&err, &s, "", SPEC_TS, "{}", 2, sig) && err.code == R3D_EINVAL);
	CHECK(!notify_sign(&err, &s, SPEC_ID, 0, "{}", 2, sig) && err.code == R3D_EINVAL);
	CHECK(!notify_sign(&err, NULL, SPEC_ID, SPEC_TS, "{}", 2, sig) && err.code == R3D_EINVAL);
	notify_secret_clear(&s);
}

/* ---- the message ----------------------------------------------------------- */

static const struct notify_structure structs_a[] = {
	{"bone", "bone of the head", "3138006", "SCT", "Bone", 251234, 812.4449,
	 true, false, true, 0.6049, 3, 14},
	{"skin", NULL, NULL, NULL, NULL, 100000, 5123.456, false, false, false, 0, 0, 0},
};
static const struct notify_distance dists_a[] = {{"bone", "skin", 9.98176}};
static const struct notify_series series_ok[] = {
	{"1.2.840.113619.2.55.3.1", NOTIFY_SERIES_DONE, NULL, structs_a, 2, {0.6104, 1.9, 2.25, -1},
	 dists_a, 1},
	{"1.2.840.113619.2.55.3.2", NOTIFY_SERIES_SKIPPED, "fewer than 10 slices", NULL, 0,
	 {-1, -1, -1, -1}, NULL, 0},
};
static const struct notify_destination dests[] = {
	{"pacs", "ORTHANC", 12, 0},
	{"backup", NULL, 10, 2},
};

static struct notify_study sample_study(void)
{
	struct notify_study st = {
		.study_uid = "1.2.840.113619.2.55.3.604688",
		.accession_number = "ACC123",
		.patient_name = "DOE^JANE",
		.outcome = NOTIFY_PARTIAL,
		.received_at = 1763840391.5,
		.finished_at = 1763840405.25,
		.processing_s = 8.4123,
		.delivery_s = -1,
		.series = series_ok,
		.nseries = 2,
		.destinations = dests,
		.ndestinations = 2,
	};
	return st;
}

static json_t *parse(const struct notify_message *m)
{
	json_error_t jerr;
	json_t *root = json_loadb(m->body, m->body_len, 0, &jerr);

	if (root == NULL)
		fprintf(stderr, "body does not parse: %s\n%s\n", jerr.text, m->body);
	return root;
}

static bool str_is(json_t *v, const char *want)
{
	return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

static void test_message_fields(void)
{
	struct notify_study st = sample_study();
	struct notify_options opt = {false, "RECON3D"};
	struct notify_message m;
	struct r3d_err err;
	json_t *root, *data, *s0, *st0, *d1;

	CHECK(notify_message_build(&err, &st, &opt, &m));
	if (m.body == NULL)
		return;
	CHECK(m.body_len == strlen(m.body));
	root = parse(&m);
	CHECK(root != NULL);
	if (root == NULL) {
		notify_message_free(&m);
		return;
	}
	data = json_object_get(root, "data");
	CHECK(str_is(json_object_get(root, "type"), "study.finished"));
	/* 1763840405 is 2025-11-22T19:40:05Z (Python's datetime). */
	CHECK(str_is(json_object_get(root, "timestamp"), "2025-11-22T19:40:05Z"));
	CHECK(json_integer_value(json_object_get(data, "schema_version")) == 1);
	CHECK(str_is(json_object_get(data, "study_instance_uid"), "1.2.840.113619.2.55.3.604688"));
	CHECK(str_is(json_object_get(data, "accession_number"), "ACC123"));
	CHECK(str_is(json_object_get(data, "outcome"), "partial"));
	CHECK(str_is(json_object_get(json_object_get(data, "node"), "ae_title"), "RECON3D"));
	CHECK(str_is(json_object_get(json_object_get(data, "node"), "version"), R3D_VERSION));
	CHECK(str_is(json_object_get(data, "received_at"), "2025-11-22T19:39:51Z"));
	CHECK(str_is(json_object_get(data, "finished_at"), "2025-11-22T19:40:05Z"));
	CHECK_NEAR(json_real_value(json_object_get(json_object_get(data, "seconds"), "processing")),
		   8.412, 1e-9);
	CHECK(json_object_get(json_object_get(data, "seconds"), "delivery") == NULL);
	CHECK_NEAR(json_real_value(json_object_get(json_object_get(data, "seconds"), "total")),
		   13.75, 1e-9);
	CHECK(json_array_size(json_object_get(data, "series")) == 2);
	s0 = json_array_get(json_object_get(data, "series"), 0);
	CHECK(str_is(json_object_get(s0, "series_instance_uid"), "1.2.840.113619.2.55.3.1"));
	CHECK(str_is(json_object_get(s0, "outcome"), "done"));
	CHECK(json_object_get(s0, "reason") == NULL);
	CHECK_NEAR(json_real_value(json_object_get(json_object_get(s0, "seconds"), "volume")), 0.61, 1e-9);
	CHECK(json_object_get(json_object_get(s0, "seconds"), "export") == NULL);
	CHECK(json_array_size(json_object_get(s0, "structures")) == 2);
	st0 = json_array_get(json_object_get(s0, "structures"), 0);
	CHECK(str_is(json_object_get(st0, "name"), "bone"));
	CHECK(str_is(json_object_get(st0, "label"), "bone of the head"));
	CHECK(str_is(json_object_get(json_object_get(st0, "code"), "value"), "3138006"));
	CHECK(str_is(json_object_get(json_object_get(st0, "code"), "meaning"), "Bone"));
	CHECK(json_object_get(json_array_get(json_object_get(s0, "structures"), 1), "label") == NULL);
	CHECK(json_object_get(json_array_get(json_object_get(s0, "structures"), 1), "code") == NULL);
	CHECK(json_integer_value(json_object_get(st0, "triangles")) == 251234);
	CHECK_NEAR(json_real_value(json_object_get(st0, "volume_ml")), 812.44, 1e-9);
	/* Print readiness: the compact summary of report.json's "print". */
	json_t *pr = json_object_get(st0, "print");
	CHECK(json_is_false(json_object_get(pr, "printable")));
	CHECK(json_is_true(json_object_get(pr, "thin_wall")));
	CHECK_NEAR(json_real_value(json_object_get(pr, "min_wall_mm")), 0.60, 1e-9);
	CHECK(json_integer_value(json_object_get(pr, "shells")) == 3);
	CHECK(json_integer_value(json_object_get(pr, "self_intersections")) == 14);
	CHECK(json_object_get(json_array_get(json_object_get(s0, "structures"), 1), "print") == NULL);
	json_t *dl = json_object_get(s0, "distances");
	CHECK(json_array_size(dl) == 1);
	CHECK(str_is(json_object_get(json_array_get(dl, 0), "a"), "bone"));
	CHECK(str_is(json_object_get(json_array_get(dl, 0), "b"), "skin"));
	CHECK_NEAR(json_real_value(json_object_get(json_array_get(dl, 0), "mm")), 9.98, 1e-9);
	CHECK(json_object_get(json_array_get(json_object_get(data, "series"), 1), "distances") == NULL);
	CHECK(str_is(json_object_get(json_array_get(json_object_get(data, "series"), 1), "reason"),
		     "fewer than 10 slices"));
	CHECK(str_is(json_object_get(json_array_get(json_object_get(data, "series"), 1), "outcome"),
		     "skipped"));
	CHECK(json_array_size(json_object_get(data, "destinations")) == 2);
	d1 = json_array_get(json_object_get(data, "destinations"), 1);
	CHECK(str_is(json_object_get(d1, "name"), "backup"));
	CHECK(json_object_get(d1, "ae_title") == NULL);
	CHECK(json_integer_value(json_object_get(d1, "delivered")) == 10);
	CHECK(json_integer_value(json_object_get(d1, "failed")) == 2);
	CHECK(json_integer_value(json_object_get(json_array_get(json_object_get(data, "destinations"), 0),
						 "delivered")) == 12);
	/* No patient name unless asked, under any key. */
	CHECK(json_object_get(data, "patient_name") == NULL);
	CHECK(strstr(m.body, "DOE") == NULL && strstr(m.body, "JANE") == NULL);
	CHECK(strstr(m.body, "patient") == NULL);
	json_decref(root);
	notify_message_free(&m);
	CHECK(m.body == NULL && m.id[0] == '\0');
}

/* viewer_url: present when given, absent for NULL and "", and part of the id. */
static void test_message_viewer_url(void)
{
	struct notify_study st = sample_study();
	struct notify_message a, b;
	struct r3d_err err;
	json_t *root;
	char long_url[NOTIFY_MAX_STRING + 16];

	CHECK(notify_message_build(&err, &st, NULL, &a));
	CHECK(a.body != NULL && strstr(a.body, "viewer_url") == NULL);
	st.viewer_url = "";
	CHECK(notify_message_build(&err, &st, NULL, &b));
	CHECK(b.body != NULL && a.body != NULL && strcmp(a.body, b.body) == 0);
	notify_message_free(&b);
	st.viewer_url = "https://r3d.example.org/viewer/00ff";
	CHECK(notify_message_build(&err, &st, NULL, &b));
	root = b.body != NULL ? parse(&b) : NULL;
	CHECK(root != NULL &&
	      str_is(json_object_get(json_object_get(root, "data"), "viewer_url"),
		     "https://r3d.example.org/viewer/00ff"));
	CHECK(strcmp(a.id, b.id) != 0);
	json_decref(root);
	notify_message_free(&a);
	notify_message_free(&b);
	memset(long_url, 'a', sizeof(long_url) - 1);
	long_url[sizeof(long_url) - 1] = '\0';
	st.viewer_url = long_url;
	CHECK(!notify_message_build(&err, &st, NULL, &a) && err.code == R3D_EINVAL);
}

static void test_message_patient_name(void)
{
	struct notify_study st = sample_study();
	struct notify_options opt = {true, NULL};
	struct notify_message m;
	struct r3d_err err;
	json_t *root;

	CHECK(notify_message_build(&err, &st, &opt, &m));
	root = m.body != NULL ? parse(&m) : NULL;
	CHECK(root != NULL);
	CHECK(str_is(json_object_get(json_object_get(root, "data"), "patient_name"), "DOE^JANE"));
	CHECK(json_object_get(json_object_get(json_object_get(root, "data"), "node"), "ae_title") == NULL);
	json_decref(root);
	notify_message_free(&m);

	/* Not UTF-8 (ISO 8859-1 "MÜLLER"): still valid JSON, non-ASCII as '?'. */
	st.patient_name = "M\xdcLLER^HANS";
	CHECK(notify_message_build(&err, &st, &opt, &m));
	root = m.body != NULL ? parse(&m) : NULL;
	CHECK(str_is(json_object_get(json_object_get(root, "data"), "patient_name"), "M?LLER^HANS"));
	json_decref(root);
	notify_message_free(&m);

	/* UTF-8 is kept, sent as \u escapes. */
	st.patient_name = "M\xc3\x9cLLER^HANS";
	CHECK(notify_message_build(&err, &st, &opt, &m));
	CHECK(m.body != NULL && strstr(m.body, "M\\u00DCLLER^HANS") != NULL);
	root = m.body != NULL ? parse(&m) : NULL;
	CHECK(str_is(json_object_get(json_object_get(root, "data"), "patient_name"), "M\xc3\x9cLLER^HANS"));
	json_decref(root);
	notify_message_free(&m);
}

static bool id_shape(const char *id)
{
	if (strncmp(id, "msg_", 4) != 0 || strlen(id) != 36)
		return false;
	for (const char *p = id + 4; *p != '\0'; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static void test_message_id(void)
{
	struct notify_study st = sample_study();
	struct notify_message a, b;
	struct r3d_err err;
	char id[NOTIFY_ID_MAX];

	/* SHA-256("abc") starts ba7816bf8f01cfea414140de5dae2223 (FIPS 180-2). */
	CHECK(notify_message_id(&err, "abc", 3, id));
	CHECK(strcmp(id, "msg_ba7816bf8f01cfea414140de5dae2223") == 0);

	/* The same input gives the same bytes and id: a rebuilt retry dedups. */
	CHECK(notify_message_build(&err, &st, NULL, &a));
	CHECK(notify_message_build(&err, &st, NULL, &b));
	CHECK(a.body != NULL && b.body != NULL && strcmp(a.body, b.body) == 0);
	CHECK(strcmp(a.id, b.id) == 0 && id_shape(a.id));
	notify_message_free(&b);
	/* Another event (another finish time) gets another id. */
	st.finished_at += 60;
	CHECK(notify_message_build(&err, &st, NULL, &b));
	CHECK(strcmp(a.id, b.id) != 0 && id_shape(b.id));
	notify_message_free(&a);
	notify_message_free(&b);
}

static void test_message_refusals(void)
{
	struct notify_study st;
	struct notify_structure bad_struct = {"bone", NULL, NULL, NULL, NULL, 1, NAN,
					      false, false, false, 0, 0, 0};
	struct notify_series bad_series = {"1.2.3", NOTIFY_SERIES_DONE, NULL, &bad_struct, 1,
					   {0, 0, 0, 0}, NULL, 0};
	struct notify_message m;
	struct r3d_err err;
	char *long_uid = malloc(NOTIFY_MAX_STRING + 2);

	st = sample_study();
	st.study_uid = NULL;
	CHECK(!notify_message_build(&err, &st, NULL, &m) && err.code == R3D_EINVAL && m.body == NULL);
	st = sample_study();
	st.finished_at = 0;
	CHECK(!notify_message_build(&err, &st, NULL, &m) && err.code == R3D_EINVAL);
	st = sample_study();
	st.nseries = NOTIFY_MAX_SERIES + 1;
	CHECK(!notify_message_build(&err, &st, NULL, &m) && err.code == R3D_EINVAL);
	st = sample_study();
	st.series = &bad_series;
	st.nseries = 1;
	CHECK(!notify_message_build(&err, &st, NULL, &m) && err.code == R3D_EINVAL);
	bad_struct.volume_ml = -1;
	CHECK(!notify_message_build(&err, &st, NULL, &m) && err.code == R3D_EINVAL);
	bad_struct.volume_ml = 1;
	bad_struct.code_value = "3138006";   /* a code without scheme and meaning */
	CHECK(!notify_message_build(&err, &st, NULL, &m) && err.code == R3D_EINVAL);
	bad_struct.code_scheme = "SCT";
	bad_struct.code_meaning = "Bone";
	CHECK(notify_message_build(&err, &st, NULL, &m));
	notify_message_free(&m);
	st = sample_study();
	st.outcome = (enum notify_outcome)7;
	CHECK(!notify_message_build(&err, &st, NULL, &m) && err.code == R3D_EINVAL);
	if (long_uid != NULL) {
		memset(long_uid, '1', NOTIFY_MAX_STRING + 1);
		long_uid[NOTIFY_MAX_STRING + 1] = '\0';
		st = sample_study();
		st.study_uid = long_uid;
		CHECK(!notify_message_build(&err, &st, NULL, &m) && err.code == R3D_EINVAL);
		free(long_uid);
	}
	/* A study without series or destinations is still a valid message. */
	st = sample_study();
	st.nseries = 0;
	st.ndestinations = 0;
	st.accession_number = "";
	st.outcome = NOTIFY_FAILED;
	CHECK(notify_message_build(&err, &st, NULL, &m));
	CHECK(m.body != NULL && strstr(m.body, "\"accession_number\":null") != NULL &&
	      strstr(m.body, "\"series\":[]") != NULL && strstr(m.body, "\"outcome\":\"failed\"") != NULL);
	notify_message_free(&m);
}

/* ---- classification and backoff ------------------------------------------- */

static void test_classify(void)
{
	CHECK(notify_classify_status(200) == R3D_OK);
	CHECK(notify_classify_status(204) == R3D_OK);
	CHECK(notify_classify_status(299) == R3D_OK);
	CHECK(notify_classify_status(408) == R3D_ENET);
	CHECK(notify_classify_status(429) == R3D_ENET);
	CHECK(notify_classify_status(500) == R3D_ENET);
	CHECK(notify_classify_status(503) == R3D_ENET);
	CHECK(notify_classify_status(599) == R3D_ENET);
	CHECK(notify_classify_status(301) == R3D_EREFUSED);
	CHECK(notify_classify_status(302) == R3D_EREFUSED);
	CHECK(notify_classify_status(400) == R3D_EREFUSED);
	CHECK(notify_classify_status(401) == R3D_EREFUSED);
	CHECK(notify_classify_status(404) == R3D_EREFUSED);
	CHECK(notify_classify_status(410) == R3D_EREFUSED);
	CHECK(notify_classify_status(0) == R3D_EREFUSED);
	CHECK(notify_classify_curl(CURLE_COULDNT_CONNECT) == R3D_ENET);
	CHECK(notify_classify_curl(CURLE_OPERATION_TIMEDOUT) == R3D_ENET);
	CHECK(notify_classify_curl(CURLE_COULDNT_RESOLVE_HOST) == R3D_ENET);
	CHECK(notify_classify_curl(CURLE_GOT_NOTHING) == R3D_ENET);
	CHECK(notify_classify_curl(CURLE_RECV_ERROR) == R3D_ENET);
	CHECK(notify_classify_curl(CURLE_SSL_CONNECT_ERROR) == R3D_ENET);
	CHECK(notify_classify_curl(CURLE_PEER_FAILED_VERIFICATION) == R3D_EREFUSED);
	CHECK(notify_classify_curl(CURLE_UNSUPPORTED_PROTOCOL) == R3D_EINVAL);
	CHECK(notify_classify_curl(CURLE_URL_MALFORMAT) == R3D_EINVAL);
}

static void test_post_refusals_offline(void)
{
	struct notify_study st = sample_study();
	struct notify_secret s;
	struct notify_message m;
	struct notify_attempt a;
	struct r3d_err err;
	struct notify_target t = {"ftp://127.0.0.1/x", &s, 1000, 1000, NULL, false};

	CHECK(notify_secret_parse(&err, SPEC_SECRET, &s));
	CHECK(notify_message_build(&err, &st, NULL, &m));
	/* Only http and https are spoken. */
	CHECK(!notify_post(&err, &t, &m, 1763840405, &a) && err.code == R3D_EINVAL &&
	      a.code == R3D_EINVAL && a.curl_code == CURLE_UNSUPPORTED_PROTOCOL && a.http_status == 0);
	CHECK(a.timestamp == 1763840405 && a.error[0] != '\0');
	t.url = "file:///etc/passwd";
	CHECK(!notify_post(&err, &t, &m, 1763840405, &a) && a.code == R3D_EINVAL);
	t.url = NULL;
	CHECK(!notify_post(&err, &t, &m, 1763840405, &a) && a.code == R3D_EINVAL);
	t.url = "http://127.0.0.1:9/";
	t.secret = NULL;
	CHECK(!notify_post(&err, &t, &m, 1763840405, &a) && a.code == R3D_EINVAL && a.curl_code == 0);
	t.secret = &s;
	t.timeout_ms = NOTIFY_TIMEOUT_MS_MAX + 1;
	CHECK(!notify_post(&err, &t, &m, 1763840405, &a) && a.code == R3D_EINVAL);
	notify_message_free(&m);
	notify_secret_clear(&s);
}

static void test_backoff(void)
{
	struct notify_backoff p = {2.0, 60.0, 5, 0.0};
	struct r3d_err err;
	double d = -1;

	CHECK(notify_backoff_check(&err, &p));
	CHECK(notify_backoff_next(&p, 0, 0, 0, &d) && d == 0);
	CHECK(notify_backoff_next(&p, 1, 0, 0, &d) && d == 2);
	CHECK(notify_backoff_next(&p, 2, 0, 0, &d) && d == 4);
	CHECK(notify_backoff_next(&p, 3, 0, 0, &d) && d == 8);
	CHECK(notify_backoff_next(&p, 4, 0, 0, &d) && d == 16);
	CHECK(!notify_backoff_next(&p, 5, 0, 0, &d));   /* 5 attempts made: give up */
	CHECK(!notify_backoff_next(&p, 9, 0, 0, &d));
	p.max_attempts = 1000;
	CHECK(notify_backoff_next(&p, 6, 0, 0, &d) && d == 60);   /* 64 capped */
	CHECK(notify_backoff_next(&p, 999, 0, 0, &d) && d == 60);
	/* Jitter shortens by up to jitter * u. */
	p.jitter = 0.5;
	CHECK(notify_backoff_next(&p, 3, 0, 0.5, &d) && d == 6);
	CHECK(notify_backoff_next(&p, 3, 0, 0, &d) && d == 8);
	p.jitter = 0;
	/* Retry-After wins when longer, capped at max_delay_s. */
	CHECK(notify_backoff_next(&p, 1, 30, 0, &d) && d == 30);
	CHECK(notify_backoff_next(&p, 1, 3600, 0, &d) && d == 60);
	CHECK(notify_backoff_next(&p, 4, 1, 0, &d) && d == 16);
	/* Bad policies. */
	p.max_delay_s = 1;
	CHECK(!notify_backoff_check(&err, &p) && err.code == R3D_EINVAL);
	CHECK(!notify_backoff_next(&p, 1, 0, 0, &d));
	p.max_delay_s = 60;
	p.max_attempts = 0;
	CHECK(!notify_backoff_check(&err, &p));
	p.max_attempts = 3;
	p.initial_delay_s = NAN;
	CHECK(!notify_backoff_check(&err, &p));
	p.initial_delay_s = 1;
	p.jitter = 1.5;
	CHECK(!notify_backoff_check(&err, &p));
}

int main(void)
{
	struct r3d_err err;

	if (!notify_global_init(&err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	test_signatures();
	test_secret_and_sign_refusals();
	test_message_fields();
	test_message_viewer_url();
	test_message_patient_name();
	test_message_id();
	test_message_refusals();
	test_classify();
	test_post_refusals_offline();
	test_backoff();
	notify_global_cleanup();
	return test_summary();
}
