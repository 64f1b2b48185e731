/*
 * send_files.c: sends files to one DICOM destination with send_batch()
 * (tests only). Without -r: one batch, each file's outcome as the batch
 * gave it. With -r: keeps retrying with the policy (sleeping until the
 * earliest next attempt) until every file is delivered or failed for good.
 *
 *   send_files [-r initial,max,attempts] [-j none|full|equal]
 *              [-t connect,acse,dimse] host port called_ae calling_ae file...
 *
 * stdout, one line per file: outcome, status (hex or -), code, attempts,
 * path, reason (tab-separated). stderr: one line per batch. Exit status 0
 * when every file was delivered, 1 otherwise, 2 on a usage error.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "r3d/bridge.h"
#include "r3d/send.h"
#include "r3d/util.h"

#define SEND_FILES_MAX 4096   /* files on one command line */

static int usage(void)
{
	fprintf(stderr, "usage: send_files [-r initial,max,attempts] [-j none|full|equal] "
			"[-t connect,acse,dimse] host port called_ae calling_ae file...\n");
	return 2;
}

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	struct send_policy pol = {1.0, 1.0, 2, SEND_JITTER_NONE};
	struct send_destination d = {"cli", NULL, 0, NULL, NULL, 5, 10, 30, NULL, NULL, 0};
	struct send_item *items = NULL, *pending = NULL;
	struct r3d_err err;
	bool retry_mode = false;
	int i = 1, rc = 0;
	long port = 0;
	size_t n, npending;

	signal(SIGPIPE, SIG_IGN);
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
			if (sscanf(argv[i + 1], "%lf,%lf,%u", &pol.initial_delay_s, &pol.max_delay_s,
				   &pol.max_attempts) != 3)
				return usage();
			retry_mode = true;
		} else if (strcmp(argv[i], "-j") == 0 && i + 1 < argc) {
			if (strcmp(argv[i + 1], "none") == 0)
				pol.jitter = SEND_JITTER_NONE;
			else if (strcmp(argv[i + 1], "full") == 0)
				pol.jitter = SEND_JITTER_FULL;
			else if (strcmp(argv[i + 1], "equal") == 0)
				pol.jitter = SEND_JITTER_EQUAL;
			else
				return usage();
		} else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
			if (sscanf(argv[i + 1], "%d,%d,%d", &d.connect_timeout_s, &d.acse_timeout_s,
				   &d.dimse_timeout_s) != 3)
				return usage();
		} else {
			return usage();
		}
		i += 2;
	}
	if (argc - i < 5)
		return usage();
	d.host = argv[i];
	if (!parse_long(&err, argv[i + 1], 1, 65535, &port)) {
		fprintf(stderr, "port: %s\n", err.msg);
		return 2;
	}
	d.port = (int)port;
	d.called_ae = argv[i + 2];
	d.calling_ae = argv[i + 3];
	n = (size_t)(argc - i - 4);
	if (n > SEND_FILES_MAX)
		return usage();
	if (!bridge_init(&err)) {
		fprintf(stderr, "bridge_init: %s\n", err.msg);
		return 2;
	}
	items = calloc(n, sizeof(*items));
	pending = calloc(n, sizeof(*pending));
	if (items == NULL || pending == NULL) {
		fprintf(stderr, "out of memory\n");
		return 2;
	}
	for (size_t k = 0; k < n; k++) {
		items[k].path = argv[i + 4 + (int)k];
		items[k].outcome = SEND_NOT_TRIED;
	}

	for (unsigned round = 1;; round++) {
		struct send_batch_stats st;
		double now = clock_mono_s();
		double wake = 0.0;

		/* The files due now (all of them on the first round). */
		npending = 0;
		for (size_t k = 0; k < n; k++) {
			bool open = items[k].outcome == SEND_NOT_TRIED || items[k].outcome == SEND_RETRY;
			if (open && (items[k].outcome == SEND_NOT_TRIED || items[k].next_attempt <= now))
				pending[npending++] = items[k];
		}
		if (npending > 0) {
			if (!send_batch(&err, &d, &pol, now, pending, npending, &st)) {
				fprintf(stderr, "batch: %s\n", err.msg);
				rc = 2;
				goto out;
			}
			fprintf(stderr,
				"round %u: files=%zu associated=%d nodelay=%d delivered=%u retry=%u "
				"failed=%u not_tried=%u seconds=%.3f\n",
				round, npending, st.associated, st.nodelay, st.delivered, st.retry,
				st.failed, st.not_tried, st.seconds);
			/* Write the outcomes back; count the attempt unless not tried. */
			size_t j = 0;
			for (size_t k = 0; k < n && j < npending; k++) {
				if (items[k].path != pending[j].path)
					continue;
				if (pending[j].outcome != SEND_NOT_TRIED)
					pending[j].attempts++;
				items[k] = pending[j++];
			}
			if (!retry_mode)
				break;
		}
		/* Sleep until the earliest retry, or stop when none is left. */
		bool open_left = false;
		for (size_t k = 0; k < n; k++) {
			if (items[k].outcome == SEND_RETRY) {
				if (!open_left || items[k].next_attempt < wake)
					wake = items[k].next_attempt;
				open_left = true;
			} else if (items[k].outcome == SEND_NOT_TRIED) {
				wake = now;
				open_left = true;
			}
		}
		if (!open_left)
			break;
		sleep_s(wake - clock_mono_s());
	}
	for (size_t k = 0; k < n; k++) {
		const struct send_item *it = &items[k];
		char status[8] = "-";
		if (it->responded)
			snprintf(status, sizeof(status), "%04x", it->status);
		printf("%s\t%s\t%s\t%u\t%s\t%s\n", send_outcome_name(it->outcome), status,
		       r3d_code_name(it->code), it->attempts, it->path, it->reason);
		if (it->outcome != SEND_DELIVERED)
			rc = 1;
	}
out:
	free(pending);
	free(items);
	bridge_cleanup();
	return rc;
}
