/*
 * receive.c: the DICOM receiver (see r3d/receive.h). The main thread runs
 * the accept loop and the association policy; each accepted association
 * gets a detached thread that serves it through the bridge and stores every
 * instance: temporary file (written by the bridge) -> parse the index
 * attributes -> rename into <dir>/<study>/<series>/<sop>.dcm -> index row ->
 * offered to the pre-loader (r3d/preload.h: a queue push) -> answer
 * success. Anything that fails on the way answers a failure status and
 * loses nothing that was stored before.
 */
#include "r3d/receive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "r3d/bridge.h"
#include "r3d/log.h"
#include "r3d/preload.h"
#include "r3d/util.h"

#define RECEIVE_ACCEPT_POLL_MS 500
#define RECEIVE_TMP_SUBDIR ".incoming"

struct receiver {
	const struct config *cfg;
	struct index *idx;
	struct bridge_net *net;
	struct preloader *preload;   /* may be NULL; set before receiver_run() */
	char storage_dir[PATH_MAX];
	char tmp_dir[PATH_MAX];

	pthread_mutex_t lock;        /* guards open_assocs */
	pthread_cond_t changed;      /* signalled when an association ends */
	int open_assocs;
	atomic_bool abort_all;       /* association threads abort at their next poll */

	atomic_llong next_assoc_id;
	atomic_llong associations_total;
	atomic_llong associations_rejected;
	atomic_llong tls_handshake_failures;
	atomic_llong echoes;
	atomic_llong instances_stored;
	atomic_llong instances_failed;
	atomic_llong bytes_received;
	atomic_bool listening;
};

struct assoc_job {
	struct receiver *r;
	struct bridge_assoc *assoc;
	struct bridge_assoc_info info;
	long long id;
	unsigned failed_counted;   /* failures already added to the receiver's counter */
};

/* ------------------------------------------------------------------ */
/* Storing one instance (association threads)                          */
/* ------------------------------------------------------------------ */

static bool fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = fsync(fd) == 0;
	close(fd);
	return ok;
}

static bool receive_can_store(void *ctx, char *comment, size_t size)
{
	struct assoc_job *job = ctx;
	struct receiver *r = job->r;
	struct statvfs vfs;

	if (statvfs(r->storage_dir, &vfs) != 0)
		return true;   /* cannot tell; the write itself will tell */
	uint64_t free_bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
	if (free_bytes < (uint64_t)r->cfg->min_free_mb * 1024u * 1024u) {
		snprintf(comment, size, "storage nearly full");
		job->failed_counted++;
		atomic_fetch_add(&r->instances_failed, 1);
		log_error("receive", "instance refused assoc=%lld calling=%s reason=\"storage nearly "
				     "full: %llu MB free, min_free_mb = %ld\"",
			  job->id, job->info.calling_ae, (unsigned long long)(free_bytes >> 20),
			  r->cfg->min_free_mb);
		return false;
	}
	return true;
}

static uint16_t refuse(struct assoc_job *job, const char *sop, uint16_t status, char *comment,
		       size_t size, const char *reason)
{
	snprintf(comment, size, "%s", reason);
	job->failed_counted++;
	atomic_fetch_add(&job->r->instances_failed, 1);
	log_warn("receive", "instance refused assoc=%lld calling=%s sop=%s status=0x%04x reason=\"%s\"",
		 job->id, job->info.calling_ae, sop[0] != '\0' ? sop : "-", status, reason);
	return status;
}

static uint16_t receive_store(void *ctx, const struct bridge_store_req *req, char *comment,
			      size_t size)
{
	struct assoc_job *job = ctx;
	struct receiver *r = job->r;
	struct bridge_instance_attrs a;
	struct r3d_err err;
	char dir[PATH_MAX];
	char final_path[PATH_MAX];
	char old_path[PATH_MAX];
	int n;

	/* PS3.7 9.1.1: a C-STORE travels on a presentation context negotiated
	 * for its SOP Class. */
	if (strcmp(req->sop_class_uid, req->context_sop_class_uid) != 0)
		return refuse(job, req->sop_instance_uid, BRIDGE_STATUS_SOP_CLASS_NOT_SUPPORTED, comment,
			      size, "SOP Class UID of the command is not the presentation context's");
	if (!bridge_read_instance_attrs(&err, req->tmp_path, &a))
		return refuse(job, req->sop_instance_uid, BRIDGE_STATUS_CANNOT_UNDERSTAND, comment,
			      size, err.msg);
	if (strcmp(a.sop_instance_uid, req->sop_instance_uid) != 0)
		return refuse(job, req->sop_instance_uid, BRIDGE_STATUS_CANNOT_UNDERSTAND, comment,
			      size, "SOP Instance UID differs between command and dataset");
	if (strcmp(a.sop_class_uid, req->sop_class_uid) != 0)
		return refuse(job, req->sop_instance_uid, BRIDGE_STATUS_DATASET_MISMATCH, comment, size,
			      "SOP Class UID differs between command and dataset");

	/* UIDs were checked to be digits and dots: safe as path components. */
	n = snprintf(dir, sizeof(dir), "%s/%s/%s", r->storage_dir, a.study_uid, a.series_uid);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return refuse(job, a.sop_instance_uid, BRIDGE_STATUS_PROCESSING_FAILURE, comment, size,
			      "storage path too long");
	n = snprintf(final_path, sizeof(final_path), "%s/%s.dcm", dir, a.sop_instance_uid);
	if (n < 0 || (size_t)n >= sizeof(final_path))
		return refuse(job, a.sop_instance_uid, BRIDGE_STATUS_PROCESSING_FAILURE, comment, size,
			      "storage path too long");
	struct stat st;
	if ((stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) && !mkdir_p(&err, dir))
		return refuse(job, a.sop_instance_uid, BRIDGE_STATUS_OUT_OF_RESOURCES, comment, size,
			      err.msg);
	if (r->cfg->fsync && !fsync_path(req->tmp_path, O_RDONLY))
		return refuse(job, a.sop_instance_uid, BRIDGE_STATUS_OUT_OF_RESOURCES, comment, size,
			      "cannot flush the instance to disk");
	/* A hard link, not a rename: until the index row is committed, the
	 * temporary name stays in .incoming, and a crash in between leaves that
	 * trace for recover_incoming() to remove the copy nobody indexed. The
	 * same instance again at the same path replaces the indexed copy with
	 * rename(), atomic: a reader sees the old copy or the new one.
	 * (A file system without hard links gets the rename() too.) */
	bool linked = link(req->tmp_path, final_path) == 0;
	if (!linked) {
		int e = errno;
		bool can_rename = e == EEXIST || e == EPERM || e == ENOTSUP || e == EOPNOTSUPP;
		if (!can_rename || rename(req->tmp_path, final_path) != 0) {
			char why[128];
			snprintf(why, sizeof(why), "cannot move the instance into storage: %s",
				 strerror(can_rename ? errno : e));
			return refuse(job, a.sop_instance_uid, BRIDGE_STATUS_OUT_OF_RESOURCES, comment,
				      size, why);
		}
	}
	if (r->cfg->fsync)
		(void)fsync_path(dir, O_RDONLY | O_DIRECTORY);
	if (!index_put_instance_from(&err, r->idx, &a, final_path, req->bytes, job->info.calling_ae,
				     job->info.called_ae,
				clock_wall_s(), old_path, sizeof(old_path))) {
		/* Nothing unindexed stays: the sender is told to retry. (A copy
		 * that replaced an indexed one is that instance, still indexed.) */
		if (linked)
			(void)unlink(final_path);
		return refuse(job, a.sop_instance_uid, BRIDGE_STATUS_OUT_OF_RESOURCES, comment, size,
			      err.msg);
	}
	if (linked && unlink(req->tmp_path) != 0)
		log_warn("receive", "cannot remove the temporary name sop=%s: %s", a.sop_instance_uid,
			 strerror(errno));
	if (old_path[0] != '\0' && unlink(old_path) != 0 && errno != ENOENT)
		log_warn("receive", "cannot remove replaced copy sop=%s: %s", a.sop_instance_uid,
			 strerror(errno));
	/* Decoded now, while the rest of the study arrives (a queue push). */
	preloader_offer(r->preload, &a, final_path);
	atomic_fetch_add(&r->bytes_received, (long long)req->bytes);
	atomic_fetch_add(&r->instances_stored, 1);
	log_info("receive", "instance stored sop=%s series=%s bytes=%llu ts=%s", a.sop_instance_uid,
		 a.series_uid, (unsigned long long)req->bytes, req->transfer_syntax);
	return BRIDGE_STATUS_SUCCESS;
}

static bool receive_stopping(void *ctx)
{
	struct assoc_job *job = ctx;

	return atomic_load(&job->r->abort_all);
}

/* ------------------------------------------------------------------ */
/* Association threads                                                 */
/* ------------------------------------------------------------------ */

static void *assoc_thread(void *arg)
{
	struct assoc_job *job = arg;
	struct receiver *r = job->r;
	struct bridge_serve_ops ops = {
		.store = receive_store,
		.can_store = receive_can_store,
		.stopping = receive_stopping,
		.ctx = job,
	};
	struct bridge_serve_stats st;
	struct r3d_err err;
	double t0 = clock_mono_s();
	bool ok;

	r3d_err_clear(&err);
	ok = bridge_assoc_serve(&err, job->assoc, r->tmp_dir, r->cfg->idle_timeout_s, &ops, &st);
	atomic_fetch_add(&r->echoes, st.echoes);
	/* Stores are counted as they happen; the bridge's own failures (file
	 * not creatable or writable) only show in its totals. */
	if (st.stores_failed > job->failed_counted)
		atomic_fetch_add(&r->instances_failed, st.stores_failed - job->failed_counted);
	if (ok)
		log_info("receive",
			 "association closed assoc=%lld calling=%s peer=%s stored=%u failed=%u "
			 "echoes=%u seconds=%.2f",
			 job->id, job->info.calling_ae, job->info.peer_host, st.stores_ok,
			 st.stores_failed, st.echoes, clock_mono_s() - t0);
	else
		log_warn("receive",
			 "association ended assoc=%lld calling=%s peer=%s stored=%u failed=%u "
			 "echoes=%u seconds=%.2f reason=\"%s\"",
			 job->id, job->info.calling_ae, job->info.peer_host, st.stores_ok,
			 st.stores_failed, st.echoes, clock_mono_s() - t0, err.msg);
	pthread_mutex_lock(&r->lock);
	r->open_assocs--;
	pthread_cond_broadcast(&r->changed);
	pthread_mutex_unlock(&r->lock);
	free(job);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Accept loop and policy (main thread)                                */
/* ------------------------------------------------------------------ */

static void reject(struct receiver *r, struct bridge_assoc *a, const struct bridge_assoc_info *info,
		   enum bridge_reject_reason why, const char *reason)
{
	bridge_assoc_reject(a, why);
	atomic_fetch_add(&r->associations_rejected, 1);
	log_warn("receive", "association rejected calling=%s called=%s peer=%s reason=\"%s\"",
		 info->calling_ae, info->called_ae, info->peer_host, reason);
}

static void handle_request(struct receiver *r, struct bridge_assoc *a,
			   const struct bridge_assoc_info *info)
{
	struct assoc_job *job;
	struct r3d_err err;
	unsigned accepted = 0;
	pthread_t tid;
	pthread_attr_t attr;
	bool full;

	if (!config_called_ae_ours(r->cfg, info->called_ae)) {
		reject(r, a, info, BRIDGE_REJECT_CALLED_AE,
		       "called AE title is not ours ([dicom] ae_title or a route's called_ae)");
		return;
	}
	if (!config_caller_allowed(r->cfg, info->calling_ae, info->peer_host)) {
		reject(r, a, info, BRIDGE_REJECT_CALLING_AE,
		       "calling AE title not in allowed_callers for this host");
		return;
	}
	pthread_mutex_lock(&r->lock);
	full = r->open_assocs >= r->cfg->max_associations;
	if (!full)
		r->open_assocs++;   /* counted before the thread runs, so the limit holds */
	pthread_mutex_unlock(&r->lock);
	if (full) {
		reject(r, a, info, BRIDGE_REJECT_BUSY, "max_associations reached");
		return;
	}
	job = calloc(1, sizeof(*job));
	if (job == NULL) {
		reject(r, a, info, BRIDGE_REJECT_BUSY, "out of memory");
		goto undo_count;
	}
	job->r = r;
	job->info = *info;
	job->id = atomic_fetch_add(&r->next_assoc_id, 1) + 1;
	if (!bridge_assoc_accept(&err, a, &accepted)) {
		log_warn("receive", "association failed calling=%s peer=%s reason=\"%s\"",
			 info->calling_ae, info->peer_host, err.msg);
		free(job);
		goto undo_count;
	}
	job->assoc = a;
	atomic_fetch_add(&r->associations_total, 1);
	if (info->tls)
		log_info("receive", "association opened assoc=%lld calling=%s called=%s peer=%s contexts=%u/%u "
			 "tls=yes subject=\"%s\"", job->id, info->calling_ae, info->called_ae, info->peer_host,
			 accepted, info->proposed_contexts, info->peer_subject);
	else
		log_info("receive", "association opened assoc=%lld calling=%s called=%s peer=%s contexts=%u/%u",
			 job->id, info->calling_ae, info->called_ae, info->peer_host, accepted,
			 info->proposed_contexts);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&tid, &attr, assoc_thread, job) != 0) {
		pthread_attr_destroy(&attr);
		log_error("receive", "cannot start a thread for assoc=%lld: aborting it", job->id);
		bridge_assoc_abort(job->assoc);
		free(job);
		goto undo_count;
	}
	pthread_attr_destroy(&attr);
	return;
undo_count:
	pthread_mutex_lock(&r->lock);
	r->open_assocs--;
	pthread_cond_broadcast(&r->changed);
	pthread_mutex_unlock(&r->lock);
}

/* Removes temporary files an earlier run left behind when it stopped in the
 * middle of a C-STORE: the sender was never told success for them. One that
 * has a second name was linked into storage; that copy goes too unless the
 * index holds it (the crash came between the commit and the unlink). */
static void recover_incoming(struct receiver *r)
{
	DIR *d = opendir(r->tmp_dir);
	struct dirent *e;
	int removed = 0, unindexed = 0;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char p[PATH_MAX], final_path[PATH_MAX], indexed[PATH_MAX];
		struct bridge_instance_attrs a;
		struct r3d_err err;
		struct stat tst, fst;
		size_t len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 5, ".part") != 0)
			continue;
		if (snprintf(p, sizeof(p), "%s/%s", r->tmp_dir, e->d_name) >= (int)sizeof(p))
			continue;
		if (stat(p, &tst) == 0 && tst.st_nlink > 1 && bridge_read_instance_attrs(&err, p, &a) &&
		    snprintf(final_path, sizeof(final_path), "%s/%s/%s/%s.dcm", r->storage_dir, a.study_uid,
			     a.series_uid, a.sop_instance_uid) < (int)sizeof(final_path) &&
		    stat(final_path, &fst) == 0 && fst.st_dev == tst.st_dev && fst.st_ino == tst.st_ino) {
			int found = index_instance_path(&err, r->idx, a.sop_instance_uid, indexed,
							sizeof(indexed));
			if (found == 0 || (found == 1 && strcmp(indexed, final_path) != 0)) {
				if (unlink(final_path) == 0)
					unindexed++;
			} else if (found < 0) {
				log_warn("receive", "cannot check %s: %s", final_path, err.msg);
			}
		}
		if (unlink(p) == 0)
			removed++;
	}
	closedir(d);
	if (removed > 0)
		log_info("receive", "removed %d partial files left by an earlier run (%d copies never "
				    "indexed)", removed, unindexed);
}

bool receiver_open(struct r3d_err *err, const struct config *cfg, struct index *idx,
		   struct receiver **out)
{
	struct receiver *r;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "receiver: out of memory");
	r->cfg = cfg;
	r->idx = idx;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->changed, NULL);
	if (!mkdir_p(err, cfg->storage_dir))
		goto fail;
	if (realpath(cfg->storage_dir, r->storage_dir) == NULL) {
		r3d_err_set(err, R3D_EIO, "storage folder '%s': %s", cfg->storage_dir, strerror(errno));
		goto fail;
	}
	if (snprintf(r->tmp_dir, sizeof(r->tmp_dir), "%s/%s", r->storage_dir, RECEIVE_TMP_SUBDIR) >=
	    (int)sizeof(r->tmp_dir)) {
		r3d_err_set(err, R3D_EINVAL, "storage folder path too long");
		goto fail;
	}
	if (!mkdir_p(err, r->tmp_dir))
		goto fail;
	recover_incoming(r);
	struct bridge_tls tls = {
		.certificate = cfg->dicom_tls_certificate,
		.private_key = cfg->dicom_tls_private_key,
		.trusted = cfg->dicom_tls_trusted,
		.verify_peer = cfg->dicom_tls_verify_peer,
		.profile = (enum bridge_tls_profile)cfg->dicom_tls_profile,
		.peer_subject = "",
	};
	if (!bridge_net_open_tls(err, cfg->dicom_bind, cfg->dicom_port, cfg->dicom_tls_port, &tls,
				 cfg->max_pdu, &r->net))
		goto fail;
	/* A connection that says nothing is let go as soon as a silent
	 * association would be. */
	bridge_net_set_request_timeout(r->net, cfg->idle_timeout_s);
	atomic_store(&r->listening, true);
	if (cfg->dicom_tls_port > 0)
		log_info("receive", "listening ae_title=%s bind=%s port=%d tls_port=%d (%s, client "
			 "certificates %s) storage=%s", cfg->ae_title, cfg->dicom_bind, cfg->dicom_port,
			 cfg->dicom_tls_port, config_tls_profile_name(cfg->dicom_tls_profile),
			 cfg->dicom_tls_verify_peer ? "required" : "not asked", r->storage_dir);
	else
		log_info("receive", "listening ae_title=%s bind=%s port=%d storage=%s", cfg->ae_title,
			 cfg->dicom_bind, cfg->dicom_port, r->storage_dir);
	*out = r;
	return true;
fail:
	receiver_free(r);
	return false;
}

void receiver_run(struct receiver *r, const atomic_bool *stop)
{
	while (!atomic_load(stop)) {
		struct bridge_assoc *a = NULL;
		struct bridge_assoc_info info;
		struct r3d_err err;
		int rc = bridge_net_accept(&err, r->net, RECEIVE_ACCEPT_POLL_MS, &a, &info);
		if (rc == 0)
			continue;
		if (rc == BRIDGE_ACCEPT_TLS_FAILED) {
			atomic_fetch_add(&r->tls_handshake_failures, 1);
			log_warn("receive", "TLS handshake failed peer=%s reason=\"%s\"", info.peer_host, err.msg);
			continue;
		}
		if (rc < 0) {
			log_warn("receive", "association request failed: %s", err.msg);
			continue;
		}
		handle_request(r, a, &info);
	}
}

void receiver_shutdown(struct receiver *r, int grace_s)
{
	struct timespec deadline;

	if (r == NULL)
		return;
	if (r->net != NULL) {
		bridge_net_close(r->net);
		r->net = NULL;
	}
	atomic_store(&r->listening, false);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += grace_s;
	pthread_mutex_lock(&r->lock);
	if (r->open_assocs > 0)
		log_info("receive", "waiting up to %d s for %d open associations", grace_s,
			 r->open_assocs);
	while (r->open_assocs > 0) {
		if (pthread_cond_timedwait(&r->changed, &r->lock, &deadline) == ETIMEDOUT)
			break;
	}
	if (r->open_assocs > 0) {
		log_warn("receive", "aborting %d open associations", r->open_assocs);
		atomic_store(&r->abort_all, true);
		while (r->open_assocs > 0)
			pthread_cond_wait(&r->changed, &r->lock);
	}
	pthread_mutex_unlock(&r->lock);
}

void receiver_set_preloader(struct receiver *r, struct preloader *pl)
{
	r->preload = pl;
}

void receiver_free(struct receiver *r)
{
	if (r == NULL)
		return;
	if (r->net != NULL)
		bridge_net_close(r->net);
	pthread_cond_destroy(&r->changed);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

void receiver_stats(const struct receiver *r, struct receive_stats *out)
{
	struct receiver *m = (struct receiver *)r;

	pthread_mutex_lock(&m->lock);
	out->associations_open = m->open_assocs;
	pthread_mutex_unlock(&m->lock);
	out->associations_total = atomic_load(&m->associations_total);
	out->associations_rejected = atomic_load(&m->associations_rejected);
	out->tls_handshake_failures = atomic_load(&m->tls_handshake_failures);
	out->echoes = atomic_load(&m->echoes);
	out->instances_stored = atomic_load(&m->instances_stored);
	out->instances_failed = atomic_load(&m->instances_failed);
	out->bytes_received = atomic_load(&m->bytes_received);
	out->listening = atomic_load(&m->listening);
}

const char *receiver_storage_dir(const struct receiver *r)
{
	return r->storage_dir;
}
