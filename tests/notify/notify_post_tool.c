/*
 * notify_post_tool.c: a small client of r3d_notify that the HTTP tests drive.
 * Builds a fixed sample study's message, posts it up to --attempts times
 * (waiting as notify_backoff_next() says, with short test delays), stops at
 * delivery or at a permanent failure, and prints one JSON line per attempt.
 * Tests only.
 *
 *   notify_post_tool --url URL --secret S [--attempts N] [--timeout-ms MS]
 *                    [--ca-file PEM] [--patient-name] [--body-out FILE]
 *
 * stdout: {"id":..., "body_len":...} then {"attempt":n, "id":..., "timestamp":...,
 *         "code":"ok|network|refused|invalid", "http_status":..., "curl_code":...,
 *         "retry_after_s":..., "error":...} per attempt.
 * Exit: 0 delivered, 2 still failing after N retryable attempts, 3 permanent
 * failure, 1 usage or setup error.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "r3d/notify.h"
#include "r3d/util.h"

#define TOOL_MAX_ATTEMPTS 20

static const struct notify_structure tool_structs[] = {
	{"bone", NULL, NULL, NULL, NULL, 251234, 812.44, false, false, false, 0, 0, 0},
	{"lungs", NULL, NULL, NULL, NULL, 88000, 4321.5, false, false, false, 0, 0, 0},
};
static const struct notify_series tool_series[] = {
	{"1.2.826.0.1.3680043.8.498.1", NOTIFY_SERIES_DONE, NULL, tool_structs, 2, {0.6, 1.9, 2.3, 0.4},
	 NULL, 0},
};
static const struct notify_destination tool_dests[] = {
	{"pacs", "ORTHANC", 4, 0},
};

static void print_json(json_t *j)
{
	char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	if (s != NULL)
		printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(j);
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

	while (nanosleep(&ts, &ts) != 0)
		;
}

static int usage(void)
{
	fprintf(stderr, "usage: notify_post_tool --url URL --secret S [--attempts N] [--timeout-ms MS]"
			" [--ca-file PEM] [--patient-name] [--body-out FILE]\n");
	return 1;
}

int main(int argc, char **argv)
{
	const char *url = NULL, *secret_text = NULL, *ca_file = NULL, *body_out = NULL;
	long attempts = 1, timeout_ms = 5000;
	struct notify_options opt = {false, "RECON3D"};
	struct notify_backoff policy = {0.05, 0.2, 1, 0.0};
	struct notify_study st = {
		.study_uid = "1.2.826.0.1.3680043.8.498.99",
		.accession_number = "ACC-42",
		.patient_name = "DOE^JANE",
		.outcome = NOTIFY_COMPLETE,
		.received_at = 0,
		.finished_at = 0,
		.processing_s = 5.2,
		.delivery_s = 1.1,
		.series = tool_series,
		.nseries = 1,
		.destinations = tool_dests,
		.ndestinations = 1,
	};
	struct notify_secret secret;
	struct notify_message msg = {0};
	struct notify_target target;
	struct r3d_err err;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--patient-name") == 0) {
			opt.include_patient_name = true;
			continue;
		}
		if (v == NULL)
			return usage();
		i++;
		if (strcmp(a, "--url") == 0) {
			url = v;
		} else if (strcmp(a, "--secret") == 0) {
			secret_text = v;
		} else if (strcmp(a, "--ca-file") == 0) {
			ca_file = v;
		} else if (strcmp(a, "--body-out") == 0) {
			body_out = v;
		} else if (strcmp(a, "--attempts") == 0) {
			if (!parse_long(&err, v, 1, TOOL_MAX_ATTEMPTS, &attempts))
				return usage();
		} else if (strcmp(a, "--timeout-ms") == 0) {
			if (!parse_long(&err, v, 1, NOTIFY_TIMEOUT_MS_MAX, &timeout_ms))
				return usage();
		} else {
			return usage();
		}
	}
	if (url == NULL || secret_text == NULL)
		return usage();
	if (!notify_global_init(&err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	if (!notify_secret_parse(&err, secret_text, &secret)) {
		fprintf(stderr, "%s\n", err.msg);
		goto out;
	}
	st.finished_at = clock_wall_s();
	st.received_at = st.finished_at - 7.5;
	if (!notify_message_build(&err, &st, &opt, &msg)) {
		fprintf(stderr, "%s\n", err.msg);
		goto out;
	}
	if (body_out != NULL) {
		FILE *f = fopen(body_out, "wb");
		if (f == NULL || fwrite(msg.body, 1, msg.body_len, f) != msg.body_len) {
			fprintf(stderr, "cannot write %s\n", body_out);
			if (f != NULL)
				fclose(f);
			goto out;
		}
		fclose(f);
	}
	print_json(json_pack("{s:s, s:I}", "id", msg.id, "body_len", (json_int_t)msg.body_len));

	target = (struct notify_target){url, &secret, timeout_ms, timeout_ms, ca_file, false};
	policy.max_attempts = (unsigned)attempts;
	for (unsigned n = 1;; n++) {
		struct notify_attempt a;
		bool delivered = notify_post(&err, &target, &msg, (int64_t)time(NULL), &a);
		double delay;

		print_json(json_pack("{s:i, s:s, s:I, s:s, s:i, s:i, s:f, s:f, s:s}",
				     "attempt", (int)n, "id", msg.id, "timestamp", (json_int_t)a.timestamp,
				     "code", r3d_code_name(a.code), "http_status", (int)a.http_status,
				     "curl_code", a.curl_code, "retry_after_s", a.retry_after_s,
				     "seconds", a.seconds, "error", a.error));
		if (delivered) {
			rc = 0;
			break;
		}
		if (!r3d_err_retryable(&err)) {
			rc = 3;
			break;
		}
		if (!notify_backoff_next(&policy, n, a.retry_after_s, 0, &delay)) {
			rc = 2;
			break;
		}
		sleep_s(delay);
	}
out:
	notify_message_free(&msg);
	notify_secret_clear(&secret);
	notify_global_cleanup();
	return rc;
}
