/*
 * engine.c: external segmentation engines (see r3d/engine.h): a slot per
 * running command, posix_spawnp without a shell, a time limit enforced on
 * the command's whole process group, and the search of its output folder.
 */
#include "r3d/engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "r3d/bridge.h"
#include "r3d/log.h"
#include "r3d/util.h"

#define ENGINE_POLL_MS 50
#define ENGINE_OUTPUT_DEPTH 3     /* folders searched below the output folder */
#define ENGINE_ARG_MAX 8192       /* one word after its placeholders are replaced */

struct engine_slots {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	int n;
	int running[CONFIG_MAX_ENGINES];
	const struct config *cfg;
};

bool engine_slots_new(struct r3d_err *err, const struct config *cfg, struct engine_slots **out)
{
	struct engine_slots *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (s == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "engines: out of memory");
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->freed, NULL);
	s->n = cfg->nengines;
	s->cfg = cfg;
	*out = s;
	return true;
}

void engine_slots_free(struct engine_slots *s)
{
	if (s == NULL)
		return;
	pthread_cond_destroy(&s->freed);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int engine_index(const struct engine_slots *s, const struct config_engine *e)
{
	for (int i = 0; i < s->n; i++) {
		if (&s->cfg->engines[i] == e)
			return i;
	}
	return -1;
}

/* Waits for a free slot of engine i; false when stop was set meanwhile. */
static bool slot_take(struct engine_slots *s, int i, int limit, const atomic_bool *stop)
{
	bool ok = true;

	pthread_mutex_lock(&s->lock);
	while (s->running[i] >= limit) {
		if (stop != NULL && atomic_load(stop)) {
			ok = false;
			break;
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 200 * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->freed, &s->lock, &until);
	}
	if (ok)
		s->running[i]++;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

static void slot_give(struct engine_slots *s, int i)
{
	pthread_mutex_lock(&s->lock);
	s->running[i]--;
	pthread_cond_broadcast(&s->freed);
	pthread_mutex_unlock(&s->lock);
}

/* word with {input} and {output} replaced, into dst. */
static bool expand(const char *word, const char *input, const char *output, char *dst, size_t size)
{
	size_t n = 0;

	for (const char *p = word; *p != '\0';) {
		const char *rep = NULL;
		size_t skip = 1;
		if (strncmp(p, "{input}", 7) == 0) {
			rep = input;
			skip = 7;
		} else if (strncmp(p, "{output}", 8) == 0) {
			rep = output;
			skip = 8;
		}
		if (rep != NULL) {
			size_t l = strlen(rep);
			if (n + l >= size)
				return false;
			memcpy(dst + n, rep, l);
			n += l;
		} else {
			if (n + 1 >= size)
				return false;
			dst[n++] = *p;
		}
		p += skip;
	}
	dst[n] = '\0';
	return true;
}

/* The last non-empty line of the file (at most ENGINE_REASON_LINE_MAX
 * characters of it, control characters as spaces), or "". */
static void last_line(const char *path, char *out, size_t size)
{
	char buf[4096];
	FILE *f = fopen(path, "rb");
	size_t n = 0;

	out[0] = '\0';
	if (f == NULL)
		return;
	if (fseek(f, 0, SEEK_END) == 0) {
		long len = ftell(f);
		if (len > (long)sizeof(buf) - 1)
			fseek(f, len - (long)sizeof(buf) + 1, SEEK_SET);
		else
			fseek(f, 0, SEEK_SET);
		n = fread(buf, 1, sizeof(buf) - 1, f);
	}
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	char *start = strrchr(buf, '\n');
	start = start != NULL ? start + 1 : buf;
	size_t k = 0;
	for (; start[k] != '\0' && k + 1 < size && k < ENGINE_REASON_LINE_MAX; k++)
		out[k] = (unsigned char)start[k] < 0x20 ? ' ' : start[k];
	out[k] = '\0';
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The first importable file under dir (names in sorted order, depth first):
 * a NIfTI label map by its name, else a DICOM SEG or RTSTRUCT by its SOP
 * class. 1 found, 0 none. */
static int find_output(const char *dir, int depth, struct engine_output *out)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);
	int found = 0;

	if (n < 0)
		return 0;
	for (int pass = 0; pass < 3 && !found; pass++) {
		for (int i = 0; i < n && !found; i++) {
			const char *name = names[i]->d_name;
			char path[PATH_MAX];
			struct stat st;
			if (name[0] == '.')
				continue;
			if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
				continue;
			if (lstat(path, &st) != 0)
				continue;
			if (S_ISDIR(st.st_mode)) {
				if (pass == 2 && depth < ENGINE_OUTPUT_DEPTH)
					found = find_output(path, depth + 1, out);
				continue;
			}
			if (!S_ISREG(st.st_mode))
				continue;
			if (pass == 0 && (has_suffix(name, ".nii") || has_suffix(name, ".nii.gz"))) {
				snprintf(out->path, sizeof(out->path), "%s", path);
				out->labelmap = true;
				found = 1;
			} else if (pass == 1) {
				struct bridge_instance_attrs a;
				struct r3d_err ignored;
				if (bridge_read_instance_attrs(&ignored, path, &a) && a.is_segmentation) {
					snprintf(out->path, sizeof(out->path), "%s", path);
					out->labelmap = false;
					found = 1;
				}
			}
		}
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return found;
}

static void kill_group(pid_t pid, int sig)
{
	if (kill(-pid, sig) != 0)
		kill(pid, sig);
}

bool engine_run(struct r3d_err *err, struct engine_slots *slots, const struct config_engine *e,
		const char *input_dir, const char *work_dir, const atomic_bool *stop,
		struct engine_output *out)
{
	char output_dir[PATH_MAX], out_log[PATH_MAX], err_log[PATH_MAX];
	char *argv[CONFIG_ENGINE_MAX_ARGS + 1] = {0};
	bool ok = false;
	int slot = engine_index(slots, e);

	memset(out, 0, sizeof(*out));
	if (slot < 0)
		return r3d_err_set(err, R3D_EINVAL, "engine %s: not configured", e->name);
	if (snprintf(output_dir, sizeof(output_dir), "%s/output", work_dir) >= (int)sizeof(output_dir) ||
	    snprintf(out_log, sizeof(out_log), "%s/stdout.txt", work_dir) >= (int)sizeof(out_log) ||
	    snprintf(err_log, sizeof(err_log), "%s/stderr.txt", work_dir) >= (int)sizeof(err_log))
		return r3d_err_set(err, R3D_EINVAL, "engine %s: work folder path too long", e->name);
	if (!mkdir_p(err, output_dir))
		return r3d_err_prefix(err, "engine %s", e->name);
	for (int i = 0; i < e->argc; i++) {
		argv[i] = malloc(ENGINE_ARG_MAX);
		if (argv[i] == NULL) {
			r3d_err_set(err, R3D_ENOMEM, "engine %s: out of memory", e->name);
			goto out;
		}
		if (!expand(e->words + e->argoff[i], input_dir, output_dir, argv[i], ENGINE_ARG_MAX)) {
			r3d_err_set(err, R3D_EINVAL, "engine %s: word %d too long", e->name, i + 1);
			goto out;
		}
	}
	if (!slot_take(slots, slot, e->concurrency, stop)) {
		r3d_err_set(err, R3D_EIO, "engine %s: recon3d stopped while the job waited for it", e->name);
		goto out;
	}
	int fd_out = open(out_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	int fd_err = open(err_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	int fd_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd_out < 0 || fd_err < 0 || fd_in < 0) {
		r3d_err_set(err, R3D_EIO, "engine %s: cannot create its log files in %s: %s", e->name,
			    work_dir, strerror(errno));
		if (fd_out >= 0)
			close(fd_out);
		if (fd_err >= 0)
			close(fd_err);
		if (fd_in >= 0)
			close(fd_in);
		slot_give(slots, slot);
		goto out;
	}
	/* posix_spawn, not fork: in a threaded process only async-signal-safe
	 * calls may follow a fork, and a child that reported its failed exec
	 * with stdio could hang on a lock another thread held (seen under
	 * ASan). posix_spawn reports a failed exec to us as its return value.
	 * The child: its own process group (the time limit ends all of it),
	 * the three descriptors, nothing else inherited, SIGPIPE default. */
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t dflt;
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGPIPE);
	int rc = posix_spawn_file_actions_init(&fa);
	if (rc == 0)
		rc = posix_spawnattr_init(&attr);
	if (rc == 0) {
		if (posix_spawn_file_actions_adddup2(&fa, fd_in, 0) != 0 ||
		    posix_spawn_file_actions_adddup2(&fa, fd_out, 1) != 0 ||
		    posix_spawn_file_actions_adddup2(&fa, fd_err, 2) != 0 ||
		    posix_spawn_file_actions_addclosefrom_np(&fa, 3) != 0 ||
		    posix_spawnattr_setpgroup(&attr, 0) != 0 ||
		    posix_spawnattr_setsigdefault(&attr, &dflt) != 0 ||
		    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF) != 0)
			rc = ENOMEM;
	}
	double t0 = clock_mono_s();
	pid_t pid = -1;
	if (rc == 0)
		rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(fd_in);
	close(fd_out);
	if (rc != 0) {
		/* The reason goes where the command's own would have: its stderr
		 * log, beside the job's other files. */
		dprintf(fd_err, "cannot run %s: %s\n", argv[0], strerror(rc));
		close(fd_err);
		r3d_err_set(err, R3D_EIO, "engine %s could not be started: cannot run %s: %s", e->name,
			    argv[0], strerror(rc));
		slot_give(slots, slot);
		goto out;
	}
	close(fd_err);
	log_info("engine", "engine started engine=%s pid=%d", e->name, (int)pid);
	int status = 0;
	bool timed_out = false, stopped = false;
	double term_at = 0;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			status = -1;
			break;
		}
		double now = clock_mono_s();
		if (term_at == 0 && now - t0 > e->timeout_s) {
			timed_out = true;
			term_at = now;
			kill_group(pid, SIGTERM);
		} else if (term_at == 0 && stop != NULL && atomic_load(stop)) {
			stopped = true;
			term_at = now;
			kill_group(pid, SIGTERM);
		} else if (term_at > 0 && now - term_at > ENGINE_KILL_GRACE_S) {
			kill_group(pid, SIGKILL);
		}
		struct timespec pause = {0, ENGINE_POLL_MS * 1000000L};
		nanosleep(&pause, NULL);
	}
	/* Whatever the command left behind in its group goes too. */
	kill_group(pid, SIGKILL);
	slot_give(slots, slot);
	out->seconds = clock_mono_s() - t0;
	char line[ENGINE_REASON_LINE_MAX + 1];
	last_line(err_log, line, sizeof(line));
	if (timed_out) {
		r3d_err_set(err, R3D_EIO, "engine %s timed out after %d s (timeout_s)", e->name, e->timeout_s);
	} else if (stopped) {
		r3d_err_set(err, R3D_EIO, "engine %s was stopped: recon3d is shutting down", e->name);
	} else if (status == -1) {
		r3d_err_set(err, R3D_EIO, "engine %s: lost its process", e->name);
	} else if (WIFSIGNALED(status)) {
		r3d_err_set(err, R3D_EIO, "engine %s was killed by signal %d%s%s", e->name, WTERMSIG(status),
			    line[0] != '\0' ? "; its last line: " : "", line);
	} else if (WEXITSTATUS(status) != 0) {
		out->exit_status = WEXITSTATUS(status);
		r3d_err_set(err, R3D_EIO, "engine %s exited with status %d%s%s", e->name,
			    WEXITSTATUS(status), line[0] != '\0' ? "; its last line: " : "", line);
	} else if (!find_output(output_dir, 0, out)) {
		r3d_err_set(err, R3D_EIO, "engine %s exited with status 0 but wrote no NIfTI label map, "
			    "DICOM Segmentation or RT Structure Set into its output folder", e->name);
	} else {
		ok = true;
	}
	log_info("engine", "engine finished engine=%s pid=%d seconds=%.2f outcome=%s", e->name, (int)pid,
		 out->seconds, ok ? "ok" : "failed");
out:
	for (int i = 0; i < e->argc; i++)
		free(argv[i]);
	return ok;
}
