/*
 * main.c: the recon3d daemon. Reads the config, opens the index, starts the
 * status endpoint, the queue thread, the pre-loader (r3d/preload.h), the
 * workers, the sender and the notifier, then runs the DICOM receiver on the
 * main thread until SIGTERM or SIGINT. Signal handlers only set a flag.
 *
 *   recon3d [-c FILE] [--check-config] [--print-default-config] [--version]
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "r3d/bridge.h"
#include "r3d/config.h"
#include "r3d/index.h"
#include "r3d/log.h"
#include "r3d/notifier.h"
#include "r3d/notify.h"
#include "r3d/preload.h"
#include "r3d/receive.h"
#include "r3d/sender.h"
#include "r3d/status.h"
#include "r3d/util.h"
#include "r3d/worker.h"
#include "r3d/wake.h"

#include "explain.h"

#define QUEUE_POLL_MS 250
#define CHECKPOINT_EVERY 4   /* queue passes between index checkpoints (1 s) */

static atomic_bool stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_requested, true);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: recon3d [-c FILE] [--check-config] [--print-default-config] [--version]\n"
		"       recon3d [-c FILE] --explain-route DICOM_DIR [--called-ae AE] [--calling-ae AE]\n"
		"  -c, --config FILE        read FILE (INI); without it the embedded defaults apply\n"
		"      --check-config       validate the configuration and exit (0: valid)\n"
		"      --print-default-config  print the documented default configuration\n"
		"      --explain-route DIR  print which route and which series of each study in DIR\n"
		"                           would be chosen, and why, without processing anything\n"
		"      --called-ae AE       (with --explain-route) the AE title the study is sent to\n"
		"      --calling-ae AE      (with --explain-route) the AE title it comes from\n"
		"      --version            print the version\n");
}

/* ------------------------------------------------------------------ */
/* Queue thread: stable studies become jobs; index checkpoints         */
/* ------------------------------------------------------------------ */

struct queue_thread_ctx {
	const struct config *cfg;
	struct index *idx;
};

static void *queue_thread(void *arg)
{
	struct queue_thread_ctx *q = arg;
	unsigned long seen = 0;
	bool last_failed = false;
	unsigned passes = 0;

	while (!atomic_load(&stop_requested)) {
		struct queue_pass pass;
		struct r3d_err err;
		if (++passes % CHECKPOINT_EVERY == 0 && !index_checkpoint(&err, q->idx))
			log_warn("queue", "index checkpoint failed: %s", err.msg);
		struct queue_rules rules = {
			.cfg = q->cfg,
			.stable_seconds = q->cfg->stable_seconds,
			.min_slices = q->cfg->min_slices,
			.import = q->cfg->import_enabled,
			.wait_for_source_s = q->cfg->import_wait_for_source_s,
		};
		if (!queue_scan_stable(&err, q->idx, clock_wall_s(), &rules, &pass)) {
			if (!last_failed)
				log_error("queue", "stable-study check failed: %s", err.msg);
			last_failed = true;
		} else {
			last_failed = false;
			if (pass.jobs_queued > 0)
				wake_post(WAKE_JOBS);
			if (pass.studies_stable > 0 || pass.jobs_failed > 0)
				wake_post(WAKE_FINISHED);   /* a study with nothing usable is finished now */
		}
		/* A study re-run by the jobs API ends the wait at once. */
		wake_wait(WAKE_QUEUE, &seen, QUEUE_POLL_MS);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static int run_daemon(struct config *cfg)
{
	struct r3d_err err;
	struct index *idx = NULL;
	struct status_server *status = NULL;
	struct receiver *recv = NULL;
	struct worker_pool *workers = NULL;
	struct preloader *preload = NULL;
	struct sender *sender = NULL;
	struct notifier *notifier = NULL;
	struct queue_thread_ctx qctx;
	pthread_t qtid;
	bool queue_started = false;
	int requeued = 0;
	int rc = 1;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_info("main", "recon3d %s starting ae_title=%s", R3D_VERSION, cfg->ae_title);
	if (!bridge_init(&err) || !notify_global_init(&err)) {
		log_error("main", "%s", err.msg);
		return 1;
	}
	if (!config_check_paths(&err, cfg)) {
		log_error("main", "%s", err.msg);
		goto out;
	}
	if (!mkdir_p(&err, cfg->storage_dir)) {
		log_error("main", "[storage] dir: %s", err.msg);
		goto out;
	}
	if (!index_open(&err, cfg->database, &idx)) {
		log_error("main", "%s", err.msg);
		goto out;
	}
	/* [storage] fsync promises that an instance answered success survives a
	 * power loss: its index row too, not only its file. */
	if (cfg->fsync && !index_set_durable(&err, idx, true)) {
		log_error("main", "%s", err.msg);
		goto out;
	}
	if (!index_recover(&err, idx, &requeued)) {
		log_error("main", "%s", err.msg);
		goto out;
	}
	if (requeued > 0)
		log_info("main", "%d interrupted jobs queued again", requeued);
	char token_path[PATH_MAX];
	if (cfg->http_port != 0 && !status_token_default(&err, cfg, token_path, sizeof(token_path))) {
		log_error("main", "API token: %s", err.msg);
		goto out;
	}
	if (!status_start(&err, cfg, idx, &status)) {
		log_error("main", "%s", err.msg);
		goto out;
	}
	if (cfg->viewer_enabled && cfg->viewer_base_url[0] == '\0' &&
	    (strcmp(cfg->http_bind, "0.0.0.0") == 0 || strcmp(cfg->http_bind, "::") == 0))
		log_warn("main", "[viewer] base_url is empty: 3D page links will name %s, which no "
			 "browser can reach; set base_url", cfg->http_bind);
	qctx.cfg = cfg;
	qctx.idx = idx;
	if (pthread_create(&qtid, NULL, queue_thread, &qctx) != 0) {
		log_error("main", "cannot start the queue thread");
		goto out;
	}
	queue_started = true;
	if (!preloader_start(&err, cfg, &preload)) {
		log_error("main", "%s", err.msg);
		goto out;
	}
	if (!worker_pool_start(&err, cfg, idx, preload, &workers)) {
		log_error("main", "%s", err.msg);
		goto out;
	}
	status_set_workers(status, workers);
	if (!sender_start(&err, cfg, idx, &sender) || !notifier_start(&err, cfg, idx, &notifier)) {
		log_error("main", "%s", err.msg);
		goto out;
	}
	if (!receiver_open(&err, cfg, idx, &recv)) {
		log_error("main", "%s", err.msg);
		goto out;
	}
	status_set_receiver(status, recv);
	receiver_set_preloader(recv, preload);
	sd_notifyf(0, "READY=1\nSTATUS=listening on port %d as %s", cfg->dicom_port, cfg->ae_title);
	log_info("main", "ready");
	receiver_run(recv, &stop_requested);
	rc = 0;
	log_info("main", "stopping");
	sd_notify(0, "STOPPING=1");
out:
	atomic_store(&stop_requested, true);
	if (recv != NULL) {
		receiver_shutdown(recv, cfg->shutdown_grace_s);
		if (status != NULL)
			status_set_receiver(status, NULL);
	}
	if (queue_started)
		pthread_join(qtid, NULL);
	if (workers != NULL) {
		if (status != NULL)
			status_set_workers(status, NULL);
		log_info("main", "waiting for running jobs to finish");
		worker_pool_stop(workers);
	}
	preloader_stop(preload);   /* after the receiver and the workers: nobody offers or takes */
	sender_stop(sender);
	notifier_stop(notifier);
	status_stop(status);
	receiver_free(recv);
	index_close(idx);
	bridge_cleanup();
	notify_global_cleanup();
	log_info("main", "stopped");
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'k'},
		{"print-default-config", no_argument, NULL, 'p'},
		{"version", no_argument, NULL, 'V'},
		{"explain-route", required_argument, NULL, 'e'},
		{"called-ae", required_argument, NULL, 'A'},
		{"calling-ae", required_argument, NULL, 'a'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct config cfg;   /* large: keep it off the stack */
	const char *config_path = NULL;
	const char *explain_dir = NULL, *called_ae = NULL, *calling_ae = NULL;
	bool check_only = false;
	struct r3d_err err;
	int c;

	while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'k':
			check_only = true;
			break;
		case 'e':
			explain_dir = optarg;
			break;
		case 'A':
			called_ae = optarg;
			break;
		case 'a':
			calling_ae = optarg;
			break;
		case 'p':
			config_write_sample(stdout);
			return 0;
		case 'V':
			printf("recon3d %s\n", R3D_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	config_defaults(&cfg);
	if (config_path != NULL && !config_load(&err, config_path, &cfg)) {
		fprintf(stderr, "recon3d: config: %s\n", err.msg);
		return 1;
	}
	if (check_only) {
		if (!config_check_paths(&err, &cfg) || !notifier_check_config(&err, &cfg)) {
			fprintf(stderr, "recon3d: config: %s\n", err.msg);
			return 1;
		}
		printf("recon3d: configuration %s is valid\n", config_path ? config_path : "(defaults)");
		for (int i = 0; i < cfg.nengines; i++)
			printf("engine %s: %s (time limit %d s, %d at a time)%s\n", cfg.engines[i].name,
			       cfg.engines[i].command, cfg.engines[i].timeout_s, cfg.engines[i].concurrency,
			       strcmp(cfg.import_engine, cfg.engines[i].name) == 0 ?
				       (cfg.import_engine_instead ? "; every CT job, instead of the structures" :
								    "; every CT job, beside the structures") :
				       "; not used ([import] engine)");
		printf("segmentations received: %s\n", cfg.import_enabled ? "imported" : "stored only");
		explain_print_routes(stdout, &cfg);
		return 0;
	}
	if (explain_dir != NULL) {
		log_set_level(LOG_WARN);   /* the private index's migrations are not news */
		return explain_route(&cfg, explain_dir, calling_ae, called_ae);
	}
	log_set_level(cfg.log_level);
	return run_daemon(&cfg);
}
