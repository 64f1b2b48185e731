/*
 * fuzz_http.c: libFuzzer harness for the HTTP side of the daemon, black
 * box: the real status server (status_start(): /healthz, /status, /metrics,
 * /viewer/ and whatever routes it has when this runs) listens on
 * 127.0.0.1, on an index holding one study with a live viewer link whose
 * token is FUZZ_HTTP_TOKEN, and one admin API token, FUZZ_HTTP_API_TOKEN
 * (the seeds use both), and each input is written
 * as the raw bytes of one connection (request line, headers, body, several
 * requests or garbage), the write side is closed and the answer read until
 * the server closes. A crash or sanitizer report on the server's thread, a
 * leak, or a connection the server keeps open after the peer has gone
 * (FUZZ_EXCHANGE_TIMEOUT_MS) is a finding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "r3d/bridge.h"
#include "r3d/config.h"
#include "r3d/index.h"
#include "r3d/status.h"
#include "r3d/util.h"

#define FUZZ_HTTP_TOKEN "1111111111111111111111111111111111111111111111111111111111111111"
#define FUZZ_HTTP_STUDY "1.2.826.0.1.3680043.8.498.1"
#define FUZZ_HTTP_API_TOKEN "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz"

static struct config cfg;
static struct index *idx;
static struct status_server *server;

static void fixture_stop(void)
{
	status_stop(server);
	index_close(idx);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct r3d_err err = {0, {0}};
	char dir[FUZZ_PATH_MAX], db[FUZZ_PATH_MAX + 16], old[FUZZ_PATH_MAX];
	char tok[INDEX_VIEWER_TOKEN_MAX];
	double expires;
	bool made;

	(void)argc;
	(void)argv;
	fuzz_log_off();
	fuzz_scratch_dir("http", dir);
	config_defaults(&cfg);
	snprintf(cfg.storage_dir, sizeof(cfg.storage_dir), "%s", dir);
	snprintf(cfg.http_bind, sizeof(cfg.http_bind), "127.0.0.1");
	cfg.http_port = fuzz_free_port();
	cfg.viewer_enabled = true;
	/* One [token fuzz] section, role admin: the API's actions are reached. */
	cfg.ntokens = 1;
	snprintf(cfg.tokens[0].name, sizeof(cfg.tokens[0].name), "fuzz");
	snprintf(cfg.tokens[0].secret, sizeof(cfg.tokens[0].secret), "%s", FUZZ_HTTP_API_TOKEN);
	cfg.tokens[0].admin = true;
	snprintf(db, sizeof(db), "%s/index.db", dir);
	if (!index_open(&err, db, &idx))
		goto fail;
	for (int i = 0; i < 3; i++) {
		struct bridge_instance_attrs a;
		memset(&a, 0, sizeof(a));
		snprintf(a.study_uid, sizeof(a.study_uid), "%s", FUZZ_HTTP_STUDY);
		snprintf(a.series_uid, sizeof(a.series_uid), "%s.1", FUZZ_HTTP_STUDY);
		snprintf(a.sop_instance_uid, sizeof(a.sop_instance_uid), "%s.1.%d", FUZZ_HTTP_STUDY, i);
		snprintf(a.sop_class_uid, sizeof(a.sop_class_uid), "1.2.840.10008.5.1.4.1.1.2");
		snprintf(a.modality, sizeof(a.modality), "CT");
		a.rows = a.columns = 512;
		a.number_of_frames = 1;
		if (!index_put_instance(&err, idx, &a, a.sop_instance_uid, 100, "FUZZ", clock_wall_s(),
					old, sizeof(old)))
			goto fail;
	}
	if (!index_viewer_link_ensure(&err, idx, FUZZ_HTTP_STUDY, FUZZ_HTTP_TOKEN, clock_wall_s(),
				      86400, tok, &expires, &made))
		goto fail;
	if (!status_start(&err, &cfg, idx, &server))
		goto fail;
	atexit(fixture_stop);
	return 0;
fail:
	fprintf(stderr, "fuzz_http: %s\n", err.msg);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	long got = fuzz_exchange(cfg.http_port, data, size);
	if (getenv("R3D_FUZZ_DEBUG") != NULL)
		fprintf(stderr, "fuzz_http: %zu bytes out, %ld bytes back\n", size, got);
	if (got < 0)
		fuzz_hang("http: the server kept the connection open after the peer closed");
	return 0;
}
