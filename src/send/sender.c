/*
 * sender.c: the sender thread (see r3d/sender.h). One thread serves every
 * destination in turn. Rows come in one by one while a job writes its
 * objects (the worker wakes this thread for each), so the association to a
 * destination is kept open between rounds, proposing every class we write,
 * and released once it has been idle SENDER_KEEP_OPEN_S.
 */
#include "r3d/sender.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "r3d/log.h"
#include "r3d/send.h"
#include "r3d/util.h"
#include "r3d/wake.h"

#define SENDER_BATCH 64          /* objects per round and destination */
#define SENDER_IDLE_MS 500
#define SENDER_KEEP_OPEN_S 1.0   /* an idle association is released after this */

/* What export.c writes: proposed on every association, so that one kept
 * open takes the objects of a job still being written. */
static const char *const sender_classes[] = {
	"1.2.840.10008.5.1.4.1.1.66.5",    /* Surface Segmentation */
	"1.2.840.10008.5.1.4.1.1.104.3",   /* Encapsulated STL */
	BRIDGE_UID_SEG_STORAGE,            /* Segmentation */
	"1.2.840.10008.5.1.4.1.1.7",       /* Secondary Capture (previews) */
};

/* An association kept open to one destination (the sender thread only). */
struct sender_link {
	struct bridge_scu *scu;
	double last_used;        /* clock_mono_s() */
};

struct sender {
	const struct config *cfg;
	struct index *idx;
	struct send_policy policy;
	pthread_t thread;
	atomic_bool stop;
	struct sender_link link[CONFIG_MAX_DESTINATIONS];
};

static void apply(struct sender *s, const struct config_destination *d, const struct outbox_row *row,
		  const struct send_item *it, double now)
{
	struct r3d_err err;
	enum outbox_state state;
	int attempts = row->attempts + 1;
	double next = now;

	switch (it->outcome) {
	case SEND_DELIVERED:
		state = OUTBOX_SENT;
		log_info("send", "delivered job=%lld destination=%s sop=%s attempt=%d", (long long)row->job_id,
			 d->name, row->sop_instance_uid, attempts);
		break;
	case SEND_RETRY:
		state = OUTBOX_PENDING;
		next = it->next_attempt;
		log_warn("send", "will retry job=%lld destination=%s sop=%s attempt=%d in=%.0fs reason=\"%s\"",
			 (long long)row->job_id, d->name, row->sop_instance_uid, attempts, next - now,
			 it->reason);
		break;
	case SEND_FAILED:
		state = OUTBOX_FAILED;
		log_error("send", "failed job=%lld destination=%s sop=%s attempt=%d reason=\"%s\"",
			  (long long)row->job_id, d->name, row->sop_instance_uid, attempts, it->reason);
		break;
	default:
		return;   /* not tried: the row stays as it was */
	}
	if (!index_outbox_result(&err, s->idx, row->id, state, attempts, next,
				 it->responded ? (int)it->status : -1,
				 state == OUTBOX_SENT ? NULL : it->reason, now))
		log_error("send", "cannot record a delivery: %s", err.msg);
}

/* A round's rows and where their outcomes go (the sender thread only). */
struct round_ctx {
	struct sender *s;
	const struct config_destination *d;
	const struct outbox_row *rows;
	bool *recorded;
};

/* One C-STORE answered: its row is updated at once, so that a delivery is
 * on record (and not sent again after a crash) while the batch goes on. */
static void item_done(void *arg, size_t i, const struct send_item *it)
{
	struct round_ctx *rc = arg;

	apply(rc->s, rc->d, &rc->rows[i], it, clock_wall_s());
	rc->recorded[i] = true;
}

static void round_for(struct sender *s, int di)
{
	const struct config_destination *d = &s->cfg->destinations[di];
	struct sender_link *link = &s->link[di];
	static struct outbox_row rows[SENDER_BATCH];   /* the sender thread only */
	struct send_item items[SENDER_BATCH];
	struct send_batch_stats stats;
	struct r3d_err err;
	double now = clock_wall_s();
	int n = index_outbox_due(&err, s->idx, d->name, now, rows, SENDER_BATCH);

	if (n < 0) {
		log_error("send", "cannot read the outbox: %s", err.msg);
		return;
	}
	if (n == 0) {
		if (link->scu != NULL && clock_mono_s() - link->last_used >= SENDER_KEEP_OPEN_S) {
			send_keep_close(link->scu);
			link->scu = NULL;
		}
		return;
	}
	memset(items, 0, sizeof(items));
	for (int i = 0; i < n; i++) {
		items[i].path = rows[i].path;
		items[i].attempts = (unsigned)rows[i].attempts;
	}
	/* TLS: the destination's own files, else [dicom]'s. */
	struct bridge_tls tls = {
		.certificate = d->tls_certificate[0] ? d->tls_certificate : s->cfg->dicom_tls_certificate,
		.private_key = d->tls_certificate[0] ? d->tls_private_key : s->cfg->dicom_tls_private_key,
		.trusted = d->tls_trusted[0] ? d->tls_trusted : s->cfg->dicom_tls_trusted,
		.verify_peer = true,
		.profile = (enum bridge_tls_profile)s->cfg->dicom_tls_profile,
		.peer_subject = d->tls_peer_subject,
	};
	struct send_destination dest = {
		.tls = d->tls ? &tls : NULL,
		.name = d->name,
		.host = d->host,
		.port = d->port,
		.called_ae = d->ae_title,
		.calling_ae = d->calling_ae_title[0] ? d->calling_ae_title : s->cfg->ae_title,
		.connect_timeout_s = d->connect_timeout_s,
		.acse_timeout_s = d->acse_timeout_s,
		.dimse_timeout_s = d->dimse_timeout_s,
		.extra_classes = sender_classes,
		.nextra_classes = sizeof(sender_classes) / sizeof(sender_classes[0]),
	};
	bool recorded[SENDER_BATCH] = {false};
	struct round_ctx rc = {.s = s, .d = d, .rows = rows, .recorded = recorded};
	if (!send_batch_keep(&err, &dest, &s->policy, now, items, (size_t)n, &stats, &link->scu,
			     item_done, &rc)) {
		log_error("send", "destination=%s: %s", d->name, err.msg);
		return;
	}
	link->last_used = clock_mono_s();
	/* The rest: a refused association gives every row the same outcome. */
	for (int i = 0; i < n; i++)
		if (!recorded[i])
			apply(s, d, &rows[i], &items[i], clock_wall_s());
	wake_post(WAKE_FINISHED);   /* that may have been a study's last object */
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	unsigned long seen = 0;

	while (!atomic_load(&s->stop)) {
		bool open = false;
		for (int i = 0; i < s->cfg->ndestinations && !atomic_load(&s->stop); i++) {
			round_for(s, i);
			open = open || s->link[i].scu != NULL;
		}
		/* New objects from a worker end the wait at once; an open
		 * association is looked at again when it may be released. */
		wake_wait(WAKE_OUTBOX, &seen,
			  open ? (int)(SENDER_KEEP_OPEN_S * 1000 / 2) : SENDER_IDLE_MS);
	}
	for (int i = 0; i < s->cfg->ndestinations; i++) {
		send_keep_close(s->link[i].scu);
		s->link[i].scu = NULL;
	}
	return NULL;
}

bool sender_start(struct r3d_err *err, const struct config *cfg, struct index *idx,
		  struct sender **out)
{
	struct sender *s;

	*out = NULL;
	if (cfg->ndestinations == 0)
		return true;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "sender: out of memory");
	s->cfg = cfg;
	s->idx = idx;
	s->policy = (struct send_policy){
		.initial_delay_s = cfg->retry_initial_delay_s,
		.max_delay_s = cfg->retry_max_delay_s,
		.max_attempts = (unsigned)cfg->retry_max_attempts,
		.jitter = SEND_JITTER_FULL,
	};
	if (!send_policy_check(err, &s->policy)) {
		free(s);
		return r3d_err_prefix(err, "[retry]");
	}
	if (pthread_create(&s->thread, NULL, sender_main, s) != 0) {
		free(s);
		return r3d_err_set(err, R3D_ENOMEM, "cannot start the sender thread");
	}
	log_info("send", "sender started for %d destinations", cfg->ndestinations);
	*out = s;
	return true;
}

void sender_stop(struct sender *s)
{
	if (s == NULL)
		return;
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	free(s);
}
