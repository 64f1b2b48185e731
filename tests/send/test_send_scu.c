/*
 * test_send_scu.c: the storage SCU (bridge_scu_*) and send_batch() against
 * peers on 127.0.0.1 whose behaviour the test sets: recon3d's own storage
 * SCP (bridge_net_*) in a thread, answering any status, rejecting the
 * association (busy or unknown called AE), sleeping past the DIMSE timeout or
 * aborting mid-batch; a port where nothing listens; a socket that accepts
 * TCP but never answers the association request. The files are small CT
 * slices written by the bridge in several transfer syntaxes into a
 * temporary folder. Checks each failure's class (R3D_ENET / R3D_EREFUSED),
 * its reason text, and each batch item's outcome.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "r3d/bridge.h"
#include "r3d/send.h"
#include "r3d/test.h"
#include "r3d/util.h"

#define UID_CT "1.2.840.10008.5.1.4.1.1.2"
#define TS_EXPLICIT "1.2.840.10008.1.2.1"
#define TS_IMPLICIT "1.2.840.10008.1.2"
#define TS_JPEG_LL "1.2.840.10008.1.2.4.70"
#define TS_J2K "1.2.840.10008.1.2.4.90"

enum peer_mode { PEER_ACCEPT, PEER_REJECT_BUSY, PEER_REJECT_CALLED };

struct peer {
	struct bridge_net *net;
	int port;
	pthread_t thread;
	char tmp_dir[PATH_MAX];
	atomic_bool stop;
	/* behaviour for the next associations */
	atomic_int mode;
	atomic_uint status;        /* answered to every C-STORE */
	atomic_int sleep_ms;       /* inside each C-STORE */
	atomic_int abort_after;    /* A-ABORT after this many C-STOREs (0: never) */
	/* what it saw */
	atomic_uint associations, stores, assoc_stores;
	pthread_mutex_t lock;
	char last_ts[BRIDGE_UID_MAX + 1];
	char last_called[BRIDGE_AE_MAX + 1];
};

static struct peer peer;
static char work_dir[64];   /* /tmp/r3d-send-XXXXXX */

static uint16_t peer_store(void *ctx, const struct bridge_store_req *req, char *comment,
			   size_t comment_size)
{
	struct peer *p = ctx;
	uint16_t status = (uint16_t)atomic_load(&p->status);
	int ms = atomic_load(&p->sleep_ms);

	pthread_mutex_lock(&p->lock);
	snprintf(p->last_ts, sizeof(p->last_ts), "%s", req->transfer_syntax);
	pthread_mutex_unlock(&p->lock);
	atomic_fetch_add(&p->stores, 1);
	atomic_fetch_add(&p->assoc_stores, 1);
	if (ms > 0) {
		struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (status == BRIDGE_STATUS_SUCCESS)
		unlink(req->tmp_path);   /* "moved away": we keep nothing */
	else
		snprintf(comment, comment_size, "test peer says 0x%04x", status);
	return status;
}

static bool peer_stopping(void *ctx)
{
	struct peer *p = ctx;
	int after = atomic_load(&p->abort_after);

	return atomic_load(&p->stop) ||
	       (after > 0 && atomic_load(&p->assoc_stores) >= (unsigned)after);
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	struct bridge_serve_ops ops = {peer_store, NULL, peer_stopping, p};

	while (!atomic_load(&p->stop)) {
		struct r3d_err err;
		struct bridge_assoc *a = NULL;
		struct bridge_assoc_info info;
		struct bridge_serve_stats st;
		unsigned accepted = 0;

		if (bridge_net_accept(&err, p->net, 100, &a, &info) != 1)
			continue;
		atomic_fetch_add(&p->associations, 1);
		atomic_store(&p->assoc_stores, 0);
		pthread_mutex_lock(&p->lock);
		snprintf(p->last_called, sizeof(p->last_called), "%s", info.called_ae);
		pthread_mutex_unlock(&p->lock);
		switch (atomic_load(&p->mode)) {
		case PEER_REJECT_BUSY:
			bridge_assoc_reject(a, BRIDGE_REJECT_BUSY);
			continue;
		case PEER_REJECT_CALLED:
			bridge_assoc_reject(a, BRIDGE_REJECT_CALLED_AE);
			continue;
		default:
			break;
		}
		if (!bridge_assoc_accept(&err, a, &accepted))
			continue;
		(void)bridge_assoc_serve(&err, a, p->tmp_dir, 30, &ops, &st);
	}
	return NULL;
}

static void peer_set(int mode, unsigned status, int sleep_ms, int abort_after)
{
	atomic_store(&peer.mode, mode);
	atomic_store(&peer.status, status);
	atomic_store(&peer.sleep_ms, sleep_ms);
	atomic_store(&peer.abort_after, abort_after);
}

/* A TCP port on loopback where nothing listens right now. */
static int free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		perror("free_port");
		exit(2);
	}
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* A listening socket that never accepts: TCP connects, DICOM never answers. */
static int mute_listener(int *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		perror("mute_listener");
		exit(2);
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

/* ---- test files -------------------------------------------------------- */

#define NFILES 6
static char files[NFILES][PATH_MAX];
static const char *file_ts[NFILES] = {TS_EXPLICIT, TS_EXPLICIT, TS_EXPLICIT,
				      TS_IMPLICIT, TS_JPEG_LL, TS_J2K};
static const enum bridge_ts file_bts[NFILES] = {BRIDGE_TS_EXPLICIT_LE, BRIDGE_TS_EXPLICIT_LE,
						BRIDGE_TS_EXPLICIT_LE, BRIDGE_TS_IMPLICIT_LE,
						BRIDGE_TS_JPEG_LL, BRIDGE_TS_J2K};
static char junk_file[PATH_MAX];
static char missing_file[PATH_MAX];

static void make_files(void)
{
	char study[BRIDGE_UID_MAX + 1], series[BRIDGE_UID_MAX + 1], frame[BRIDGE_UID_MAX + 1];
	uint16_t pixels[32 * 32];
	struct r3d_err err;

	bridge_uid_generate(study);
	bridge_uid_generate(series);
	bridge_uid_generate(frame);
	for (int i = 0; i < 32 * 32; i++)
		pixels[i] = (uint16_t)(1000 + (i * 37) % 900);
	for (int k = 0; k < NFILES; k++) {
		char sop[BRIDGE_UID_MAX + 1];
		struct bridge_ct_image img;

		bridge_uid_generate(sop);
		memset(&img, 0, sizeof(img));
		img.patient_name = "SEND^TEST";
		img.patient_id = "SEND1";
		img.study_uid = study;
		img.series_uid = series;
		img.sop_instance_uid = sop;
		img.frame_of_reference_uid = frame;
		img.study_date = "20260101";
		img.study_time = "120000";
		img.series_number = 1;
		img.instance_number = k + 1;
		img.rows = 32;
		img.columns = 32;
		img.position[2] = k;
		img.orientation[0] = 1.0;
		img.orientation[4] = 1.0;
		img.pixel_spacing[0] = img.pixel_spacing[1] = 1.0;
		img.slice_thickness = 1.0;
		img.bits_stored = 12;
		img.rescale_slope = 1.0;
		img.rescale_intercept = -1024.0;
		img.pixels = pixels;
		snprintf(files[k], sizeof(files[k]), "%s/ct%d.dcm", work_dir, k);
		if (!bridge_ct_write(&err, files[k], &img, file_bts[k])) {
			fprintf(stderr, "cannot write %s: %s\n", files[k], err.msg);
			exit(2);
		}
	}
	snprintf(junk_file, sizeof(junk_file), "%s/junk.dcm", work_dir);
	FILE *f = fopen(junk_file, "w");
	if (f == NULL) {
		perror(junk_file);
		exit(2);
	}
	fputs("this is not DICOM\n", f);
	fclose(f);
	snprintf(missing_file, sizeof(missing_file), "%s/missing.dcm", work_dir);
}

static struct bridge_scu_params params_for(int port)
{
	struct bridge_scu_params p;

	memset(&p, 0, sizeof(p));
	p.host = "127.0.0.1";
	p.port = port;
	p.called_ae = "TESTPEER";
	p.calling_ae = "RECON3D";
	p.connect_timeout_s = 5;
	p.acse_timeout_s = 5;
	p.dimse_timeout_s = 10;
	return p;
}

static const char *const *file_list(void)
{
	static const char *list[NFILES];

	for (int k = 0; k < NFILES; k++)
		list[k] = files[k];
	return list;
}

/* ---- the SCU ----------------------------------------------------------- */

static void test_store_each_syntax(void)
{
	struct r3d_err err;
	struct bridge_scu *scu = NULL;
	struct bridge_scu_params p = params_for(peer.port);
	struct bridge_scu_info info;

	peer_set(PEER_ACCEPT, 0, 0, 0);
	unsigned before = atomic_load(&peer.stores);
	CHECK(bridge_scu_open(&err, &p, file_list(), NFILES, &scu));
	if (scu == NULL) {
		fprintf(stderr, "open: %s\n", err.msg);
		return;
	}
	bridge_scu_get_info(scu, &info);
	CHECK(info.files_readable == NFILES);
	/* CT in [explicit, implicit] (the fallback of every file but J2K),
	 * [implicit], [JPEG lossless], [J2K]. */
	CHECK(info.proposed_contexts == 4);
	CHECK(info.accepted_contexts == 4);
	/* bridge_init set TCP_NODELAY in the environment and DCMTK applied it. */
	CHECK(info.nodelay_by_dcmtk);
	CHECK(info.nodelay);
	pthread_mutex_lock(&peer.lock);
	CHECK(strcmp(peer.last_called, "TESTPEER") == 0);
	pthread_mutex_unlock(&peer.lock);
	for (int k = 0; k < NFILES; k++) {
		struct bridge_scu_result res;
		bool ok = bridge_scu_store(&err, scu, files[k], &res);
		CHECK(ok);
		if (!ok)
			fprintf(stderr, "store %s: %s\n", files[k], err.msg);
		CHECK(res.responded && res.status == 0);
		CHECK(strcmp(res.transfer_syntax, file_ts[k]) == 0);
		CHECK(!res.converted);
		CHECK(bridge_uid_valid(res.sop_instance_uid));
		pthread_mutex_lock(&peer.lock);
		CHECK(strcmp(peer.last_ts, file_ts[k]) == 0);   /* received as the file is */
		pthread_mutex_unlock(&peer.lock);
	}
	CHECK(atomic_load(&peer.stores) == before + NFILES);

	/* A file that is not DICOM: permanent, and the association stays usable. */
	struct bridge_scu_result res;
	CHECK(!bridge_scu_store(&err, scu, junk_file, &res));
	CHECK(err.code == R3D_EIO && !r3d_err_retryable(&err));
	CHECK(!bridge_scu_store(&err, scu, missing_file, &res));
	CHECK(err.code == R3D_EIO);
	CHECK(bridge_scu_alive(scu));
	CHECK(bridge_scu_store(&err, scu, files[0], &res));
	CHECK(bridge_scu_release(&err, scu));
}

static void test_statuses(void)
{
	static const struct {
		unsigned status;
		bool delivered;
		int code;
		const char *text;
	} cases[] = {
		{0xA700, false, R3D_ENET, "Out of Resources"},
		{0xA7FE, false, R3D_ENET, "Out of Resources"},
		{0xA900, false, R3D_EREFUSED, "Data Set does not match SOP Class"},
		{0xC000, false, R3D_EREFUSED, "Cannot understand"},
		{0x0110, false, R3D_EREFUSED, "Processing failure"},
		{0x0122, false, R3D_EREFUSED, "SOP class not supported"},
		{0xB000, true, R3D_OK, NULL},
		{0xB007, true, R3D_OK, NULL},
	};
	struct r3d_err err;
	struct bridge_scu *scu = NULL;
	struct bridge_scu_params p = params_for(peer.port);

	peer_set(PEER_ACCEPT, 0, 0, 0);
	CHECK(bridge_scu_open(&err, &p, file_list(), 1, &scu));
	if (scu == NULL)
		return;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bridge_scu_result res;
		char want[64];

		atomic_store(&peer.status, cases[i].status);
		r3d_err_clear(&err);
		bool ok = bridge_scu_store(&err, scu, files[0], &res);
		CHECK(ok == cases[i].delivered);
		CHECK(res.responded && res.status == cases[i].status);
		snprintf(want, sizeof(want), "test peer says 0x%04x", cases[i].status);
		CHECK(strcmp(res.error_comment, want) == 0);
		if (!cases[i].delivered) {
			CHECK(err.code == cases[i].code);
			CHECK(strstr(err.msg, cases[i].text) != NULL);
			CHECK(strstr(err.msg, want) != NULL);   /* the peer's Error Comment */
		}
		CHECK(bridge_scu_alive(scu));   /* a failure status leaves it open */
	}
	CHECK(bridge_scu_release(&err, scu));
}

static void test_rejections(void)
{
	struct r3d_err err;
	struct bridge_scu *scu = NULL;
	struct bridge_scu_params p = params_for(peer.port);

	peer_set(PEER_REJECT_BUSY, 0, 0, 0);
	CHECK(!bridge_scu_open(&err, &p, file_list(), NFILES, &scu) && scu == NULL);
	CHECK(err.code == R3D_ENET);
	CHECK(strcmp(err.msg, "association rejected (transient): local limit exceeded") == 0);

	peer_set(PEER_REJECT_CALLED, 0, 0, 0);
	CHECK(!bridge_scu_open(&err, &p, file_list(), NFILES, &scu) && scu == NULL);
	CHECK(err.code == R3D_EREFUSED);
	CHECK(strcmp(err.msg, "association rejected (permanent): called AE title not recognized") == 0);
	peer_set(PEER_ACCEPT, 0, 0, 0);
}

static void test_unreachable(void)
{
	struct r3d_err err;
	struct bridge_scu *scu = NULL;
	struct bridge_scu_params p = params_for(free_port());
	double t0 = clock_mono_s();

	/* connection refused */
	CHECK(!bridge_scu_open(&err, &p, file_list(), NFILES, &scu) && scu == NULL);
	CHECK(err.code == R3D_ENET);
	CHECK(strstr(err.msg, "association request to 127.0.0.1:") != NULL);
	CHECK(clock_mono_s() - t0 < 3.0);
	fprintf(stderr, "refused: %s\n", err.msg);

	/* TCP connects but nobody answers the A-ASSOCIATE-RQ */
	int port = 0;
	int fd = mute_listener(&port);
	p = params_for(port);
	p.acse_timeout_s = 1;
	t0 = clock_mono_s();
	CHECK(!bridge_scu_open(&err, &p, file_list(), NFILES, &scu) && scu == NULL);
	double dt = clock_mono_s() - t0;
	CHECK(err.code == R3D_ENET);
	CHECK(dt >= 0.9 && dt < 5.0);
	fprintf(stderr, "mute peer after %.1f s: %s\n", dt, err.msg);
	close(fd);

	/* invalid parameters never touch the network */
	p = params_for(peer.port);
	p.called_ae = "THIS AE TITLE IS TOO LONG";
	CHECK(!bridge_scu_open(&err, &p, file_list(), NFILES, &scu) && err.code == R3D_EINVAL);
	p = params_for(peer.port);
	p.dimse_timeout_s = 0;
	CHECK(!bridge_scu_open(&err, &p, file_list(), NFILES, &scu) && err.code == R3D_EINVAL);
	const char *bad[] = {junk_file, missing_file};
	p = params_for(peer.port);
	CHECK(!bridge_scu_open(&err, &p, bad, 2, &scu) && err.code == R3D_EIO);
}

static void test_dimse_timeout(void)
{
	struct r3d_err err;
	struct bridge_scu *scu = NULL;
	struct bridge_scu_params p = params_for(peer.port);
	struct bridge_scu_result res;

	p.dimse_timeout_s = 1;
	peer_set(PEER_ACCEPT, 0, 2500, 0);
	CHECK(bridge_scu_open(&err, &p, file_list(), 1, &scu));
	if (scu == NULL)
		return;
	double t0 = clock_mono_s();
	CHECK(!bridge_scu_store(&err, scu, files[0], &res));
	CHECK(err.code == R3D_ENET && !res.responded);
	CHECK(strstr(err.msg, "no C-STORE response") != NULL);
	/* 1 s for the response, then the A-ABORT waits at most the ACSE
	 * timeout for the (sleeping) peer to close. */
	double dt = clock_mono_s() - t0;
	fprintf(stderr, "DIMSE timeout after %.1f s: %s\n", dt, err.msg);
	CHECK(dt >= 0.9 && dt < 1.0 + p.acse_timeout_s + 0.5);
	CHECK(!bridge_scu_alive(scu));
	/* later stores fail at once, transient */
	CHECK(!bridge_scu_store(&err, scu, files[1], &res) && err.code == R3D_ENET);
	bridge_scu_abort(scu);
	peer_set(PEER_ACCEPT, 0, 0, 0);
	sleep(2);   /* let the peer finish its sleeping C-STORE */
}

/* ---- send_batch -------------------------------------------------------- */

static struct send_destination dest_for(int port, const char *called)
{
	struct send_destination d = {"test", "127.0.0.1", port, called, "RECON3D", 5, 5, 10, NULL, NULL, 0};
	return d;
}

static void items_init(struct send_item *items, const char *const *paths, size_t n,
		       unsigned attempts)
{
	memset(items, 0, n * sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		items[i].path = paths[i];
		items[i].attempts = attempts;
	}
}

static void test_batches(void)
{
	struct send_policy pol = {2.0, 60.0, 5, SEND_JITTER_NONE};
	struct send_item items[NFILES + 2];
	struct send_batch_stats st;
	struct r3d_err err;
	const double now = 1000.0;

	/* everything delivered, each file in its own syntax */
	peer_set(PEER_ACCEPT, 0, 0, 0);
	struct send_destination d = dest_for(peer.port, "TESTPEER");
	items_init(items, file_list(), NFILES, 0);
	CHECK(send_batch(&err, &d, &pol, now, items, NFILES, &st));
	CHECK(st.associated && st.delivered == NFILES && st.retry == 0 && st.failed == 0);
	CHECK(st.nodelay);
	for (int k = 0; k < NFILES; k++)
		CHECK(items[k].outcome == SEND_DELIVERED && items[k].status == 0 &&
		      items[k].code == R3D_OK);

	/* a missing file among good ones: it alone fails for good */
	const char *mixed[] = {files[0], missing_file, files[1]};
	items_init(items, mixed, 3, 0);
	CHECK(send_batch(&err, &d, &pol, now, items, 3, &st));
	CHECK(items[0].outcome == SEND_DELIVERED && items[2].outcome == SEND_DELIVERED);
	CHECK(items[1].outcome == SEND_FAILED && items[1].code == R3D_EIO);

	/* the peer aborts after the first C-STORE: retry, then not tried */
	peer_set(PEER_ACCEPT, 0, 0, 1);
	items_init(items, file_list(), 3, 0);
	CHECK(send_batch(&err, &d, &pol, now, items, 3, &st));
	CHECK(items[0].outcome == SEND_DELIVERED);
	CHECK(items[1].outcome == SEND_RETRY && items[1].code == R3D_ENET);
	CHECK_NEAR(items[1].next_attempt, now + 2.0, 1e-9);
	CHECK(items[2].outcome == SEND_NOT_TRIED);
	fprintf(stderr, "abort mid-batch: %s | %s\n", items[1].reason, items[2].reason);
	peer_set(PEER_ACCEPT, 0, 0, 0);

	/* Out of Resources: retry with backoff from the row's attempts */
	peer_set(PEER_ACCEPT, 0xA702, 0, 0);
	items_init(items, file_list(), 2, 3);
	CHECK(send_batch(&err, &d, &pol, now, items, 2, &st));
	CHECK(items[0].outcome == SEND_RETRY && items[0].responded && items[0].status == 0xA702);
	CHECK_NEAR(items[0].next_attempt, now + 16.0, 1e-9);   /* 4th failure: 2 * 2^3 */
	/* ... and on the last allowed attempt it gives up */
	items_init(items, file_list(), 1, 4);
	CHECK(send_batch(&err, &d, &pol, now, items, 1, &st));
	CHECK(items[0].outcome == SEND_FAILED && items[0].code == R3D_ENET);
	CHECK(strstr(items[0].reason, "gave up after 5 attempts: status 0xa702 (Out of Resources)") ==
	      items[0].reason);

	/* a failure status: failed for good with the status */
	peer_set(PEER_ACCEPT, 0xA900, 0, 0);
	items_init(items, file_list(), 2, 0);
	CHECK(send_batch(&err, &d, &pol, now, items, 2, &st));
	CHECK(st.failed == 2);
	CHECK(items[0].outcome == SEND_FAILED && items[0].code == R3D_EREFUSED &&
	      items[0].status == 0xA900);
	CHECK(strstr(items[0].reason, "0xa900") != NULL);

	/* a warning counts as delivered, with the status kept */
	peer_set(PEER_ACCEPT, 0xB000, 0, 0);
	items_init(items, file_list(), 1, 0);
	CHECK(send_batch(&err, &d, &pol, now, items, 1, &st));
	CHECK(items[0].outcome == SEND_DELIVERED && items[0].status == 0xB000);
	CHECK(strstr(items[0].reason, "Warning") != NULL);

	/* rejected for good: every item failed with the reason, no retry */
	peer_set(PEER_REJECT_CALLED, 0, 0, 0);
	items_init(items, file_list(), NFILES, 0);
	CHECK(send_batch(&err, &d, &pol, now, items, NFILES, &st));
	CHECK(!st.associated && st.failed == NFILES);
	for (int k = 0; k < NFILES; k++)
		CHECK(items[k].outcome == SEND_FAILED && items[k].code == R3D_EREFUSED &&
		      strstr(items[k].reason, "called AE title not recognized") != NULL);

	/* rejected as busy: every item retried */
	peer_set(PEER_REJECT_BUSY, 0, 0, 0);
	items_init(items, file_list(), NFILES, 1);
	CHECK(send_batch(&err, &d, &pol, now, items, NFILES, &st));
	CHECK(st.retry == NFILES);
	CHECK_NEAR(items[0].next_attempt, now + 4.0, 1e-9);
	peer_set(PEER_ACCEPT, 0, 0, 0);

	/* nobody listening: retry; after max_attempts: failed */
	struct send_destination down = dest_for(free_port(), "TESTPEER");
	items_init(items, file_list(), 2, 0);
	CHECK(send_batch(&err, &down, &pol, now, items, 2, &st));
	CHECK(items[0].outcome == SEND_RETRY && items[1].outcome == SEND_RETRY);
	CHECK(!items[0].responded && items[0].code == R3D_ENET);
	items_init(items, file_list(), 2, 4);
	CHECK(send_batch(&err, &down, &pol, now, items, 2, &st));
	CHECK(items[0].outcome == SEND_FAILED);
	CHECK(strncmp(items[0].reason, "gave up after 5 attempts", 24) == 0);

	/* only unreadable files: failed for good without a connection */
	const char *bad[] = {junk_file, missing_file};
	items_init(items, bad, 2, 0);
	CHECK(send_batch(&err, &d, &pol, now, items, 2, &st));
	CHECK(items[0].outcome == SEND_FAILED && items[1].outcome == SEND_FAILED);

	/* an unusable batch: false, nothing tried */
	struct send_destination bad_ae = dest_for(peer.port, "");
	items_init(items, file_list(), 2, 0);
	CHECK(!send_batch(&err, &bad_ae, &pol, now, items, 2, &st) && err.code == R3D_EINVAL);
	CHECK(items[0].outcome == SEND_NOT_TRIED && st.not_tried == 2);
	struct send_policy bad_pol = {0.0, 1.0, 1, SEND_JITTER_NONE};
	CHECK(!send_batch(&err, &d, &bad_pol, now, items, 2, &st) && err.code == R3D_EINVAL);
	CHECK(!send_batch(&err, &d, &pol, now, items, 0, &st) && err.code == R3D_EINVAL);
}

/* send_batch_keep(): one association carries batch after batch; one the
 * peer closed while idle is reopened without counting an attempt. */
static void test_keep(void)
{
	struct send_policy pol = {2.0, 60.0, 5, SEND_JITTER_NONE};
	struct send_item items[NFILES];
	struct send_batch_stats st;
	struct r3d_err err;
	struct bridge_scu *keep = NULL;
	const double now = 1000.0;
	static const char *const extra[] = {"1.2.840.10008.5.1.4.1.1.7"};

	peer_set(PEER_ACCEPT, 0, 0, 0);
	struct send_destination d = dest_for(peer.port, "TESTPEER");
	d.extra_classes = extra;
	d.nextra_classes = 1;
	unsigned before = atomic_load(&peer.associations);
	items_init(items, file_list(), 2, 0);
	CHECK(send_batch_keep(&err, &d, &pol, now, items, 2, &st, &keep, NULL, NULL));
	CHECK(st.associated && !st.reused && st.delivered == 2 && keep != NULL);
	/* the next batch on the same association */
	items_init(items, file_list() + 2, 2, 0);
	CHECK(send_batch_keep(&err, &d, &pol, now, items, 2, &st, &keep, NULL, NULL));
	CHECK(!st.associated && st.reused && st.delivered == 2 && keep != NULL);
	CHECK(atomic_load(&peer.associations) == before + 1);

	/* the peer drops the idle association: the next batch opens another,
	 * and the first file's failed try on the dead one is no attempt */
	atomic_store(&peer.abort_after, 1);
	struct timespec ts = {1, 500 * 1000000L};   /* the peer looks once a second */
	nanosleep(&ts, NULL);
	atomic_store(&peer.abort_after, 0);
	items_init(items, file_list(), 2, 0);
	CHECK(send_batch_keep(&err, &d, &pol, now, items, 2, &st, &keep, NULL, NULL));
	CHECK(st.associated && !st.reused && st.delivered == 2 && keep != NULL);
	CHECK(items[0].outcome == SEND_DELIVERED && items[1].outcome == SEND_DELIVERED);
	CHECK(atomic_load(&peer.associations) == before + 2);
	send_keep_close(keep);
	keep = NULL;
	fprintf(stderr, "keep: %u associations for 3 batches, the second reused\n",
		atomic_load(&peer.associations) - before);
}

int main(void)
{
	struct r3d_err err;
	char tmpl[] = "/tmp/r3d-send-XXXXXX";

	signal(SIGPIPE, SIG_IGN);
	if (!bridge_init(&err)) {
		fprintf(stderr, "bridge_init: %s\n", err.msg);
		return 2;
	}
	if (mkdtemp(tmpl) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(work_dir, sizeof(work_dir), "%s", tmpl);
	make_files();

	memset(&peer, 0, sizeof(peer));
	pthread_mutex_init(&peer.lock, NULL);
	snprintf(peer.tmp_dir, sizeof(peer.tmp_dir), "%s", work_dir);
	peer.port = free_port();
	if (!bridge_net_open(&err, "127.0.0.1", peer.port, 65536, &peer.net)) {
		fprintf(stderr, "peer: %s\n", err.msg);
		return 2;
	}
	pthread_create(&peer.thread, NULL, peer_main, &peer);

	test_store_each_syntax();
	test_statuses();
	test_rejections();
	test_unreachable();
	test_dimse_timeout();
	test_batches();
	test_keep();

	atomic_store(&peer.stop, true);
	pthread_join(peer.thread, NULL);
	bridge_net_close(peer.net);
	for (int k = 0; k < NFILES; k++)
		unlink(files[k]);
	unlink(junk_file);
	rmdir(work_dir);   /* fails (harmlessly) if the peer left a file behind */
	bridge_cleanup();
	return test_summary();
}
