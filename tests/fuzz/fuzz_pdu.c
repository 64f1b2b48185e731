/*
 * fuzz_pdu.c: libFuzzer harness for the association layer, black box: the
 * real receiver (receiver_open() + receiver_run() on a thread of its own,
 * the daemon's accept loop, association policy and storage) listens on
 * 127.0.0.1 with a scratch storage folder and index, and each input is the
 * raw byte stream of one TCP connection (A-ASSOCIATE-RQ, P-DATA-TF with
 * DIMSE commands and datasets, A-RELEASE-RQ, A-ABORT, or garbage). The
 * bytes are written, the write side closed, the answer read until the node
 * closes, and the harness waits until the association's thread has ended
 * before the next input. A crash or sanitizer report on any thread, a
 * leak, or an association that outlives its peer by
 * FUZZ_EXCHANGE_TIMEOUT_MS is a finding.
 *
 * Every calling AE title is allowed (the policy is exercised by the
 * integration tests; here the parsers behind it are the target); the
 * called AE title is FUZZ_PDU_AE, as in the seeds.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "r3d/bridge.h"
#include "r3d/config.h"
#include "r3d/index.h"
#include "r3d/receive.h"

#define FUZZ_PDU_AE "RECON3D"
#define FUZZ_PDU_CLEAN_EVERY 2000   /* inputs between emptyings of the storage folder */

static struct config cfg;
static struct index *idx;
static struct receiver *recv_;
static pthread_t accept_thread;
static atomic_bool stop;
static unsigned long inputs;

static void *accept_main(void *arg)
{
	(void)arg;
	receiver_run(recv_, &stop);
	return NULL;
}

static void fixture_stop(void)
{
	atomic_store(&stop, true);
	pthread_join(accept_thread, NULL);
	receiver_shutdown(recv_, 1);
	receiver_free(recv_);
	index_close(idx);
	bridge_cleanup();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct r3d_err err = {0, {0}};
	char dir[FUZZ_PATH_MAX], db[FUZZ_PATH_MAX + 16];

	(void)argc;
	(void)argv;
	fuzz_log_off();
	if (!bridge_init(&err))
		goto fail;
	fuzz_scratch_dir("pdu", dir);
	config_defaults(&cfg);
	snprintf(cfg.ae_title, sizeof(cfg.ae_title), "%s", FUZZ_PDU_AE);
	snprintf(cfg.dicom_bind, sizeof(cfg.dicom_bind), "127.0.0.1");
	cfg.dicom_port = fuzz_free_port();
	cfg.any_caller = true;
	cfg.idle_timeout_s = 2;
	cfg.min_free_mb = 0;
	snprintf(cfg.storage_dir, sizeof(cfg.storage_dir), "%s/storage", dir);
	snprintf(db, sizeof(db), "%s/index.db", dir);
	if (!index_open(&err, db, &idx) || !receiver_open(&err, &cfg, idx, &recv_))
		goto fail;
	if (pthread_create(&accept_thread, NULL, accept_main, NULL) != 0) {
		fprintf(stderr, "fuzz_pdu: cannot start the accept thread\n");
		abort();
	}
	atexit(fixture_stop);
	return 0;
fail:
	fprintf(stderr, "fuzz_pdu: %s\n", err.msg);
	abort();
}

/* Waits until the receiver has no open association (its thread has ended). */
static void wait_idle(void)
{
	struct timespec t0, t;
	struct receive_stats st;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		receiver_stats(recv_, &st);
		if (st.associations_open == 0)
			return;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >
		    FUZZ_EXCHANGE_TIMEOUT_MS)
			fuzz_hang("pdu: an association outlived its peer");
		usleep(200);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fuzz_exchange(cfg.dicom_port, data, size) < 0)
		fuzz_hang("pdu: the node kept the connection open after the peer closed");
	wait_idle();
	if (++inputs % FUZZ_PDU_CLEAN_EVERY == 0) {
		/* Stored instances pile up on tmpfs; the index rows stay. */
		char cmd[FUZZ_PATH_MAX * 2];
		snprintf(cmd, sizeof(cmd), "find '%s' -name '*.dcm' -delete", cfg.storage_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "fuzz_pdu: could not empty %s\n", cfg.storage_dir);
	}
	return 0;
}
