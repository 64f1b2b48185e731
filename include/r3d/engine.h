/*
 * engine.h: external segmentation engines ([engine NAME], issue 11). A job's
 * CT series goes to a command (TotalSegmentator, an nnU-Net model, a
 * vendor's tool) as the folder of its DICOM files; what the command writes
 * into its output folder (a NIfTI label map, a DICOM Segmentation or an RT
 * Structure Set) is then imported like a segmentation received by C-STORE.
 *
 * The command runs without a shell: its words are the config's, with
 * {input} and {output} replaced by folder paths recon3d made. It runs in its
 * own process group with stdin from /dev/null, stdout and stderr into files
 * of the job's results folder; at its time limit (or when recon3d stops) the
 * group gets SIGTERM, then SIGKILL 5 s later. At most `concurrency` commands
 * of one engine run at once; a job beyond that waits for a slot.
 *
 * Any worker thread; engine_slots is shared by them.
 */
#ifndef R3D_ENGINE_H
#define R3D_ENGINE_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "r3d/config.h"
#include "r3d/err.h"

#define ENGINE_KILL_GRACE_S 5
#define ENGINE_REASON_LINE_MAX 200   /* the stderr line quoted in a failure */

struct engine_slots;   /* the running count per engine */

bool engine_slots_new(struct r3d_err *err, const struct config *cfg, struct engine_slots **out);
void engine_slots_free(struct engine_slots *s);

/* What the engine made. */
struct engine_output {
	char path[PATH_MAX];
	bool labelmap;        /* a NIfTI label map; else a SEG or RTSTRUCT file */
	double seconds;       /* the command's run time */
	int exit_status;
};

/*
 * Runs engine e on the DICOM folder input_dir, in work_dir (created; the
 * command's output folder is work_dir/output, its stdout and stderr
 * work_dir/stdout.txt and stderr.txt). Waits for a slot first. Fails (with
 * R3D_EIO) with one line naming the engine and what happened: it could not
 * be started, exited with status N or was killed by signal N (with the last
 * line it wrote to stderr), ran out of its time limit, or wrote nothing
 * recon3d can import. stop (may be NULL) ends a wait or a run early.
 */
bool engine_run(struct r3d_err *err, struct engine_slots *slots, const struct config_engine *e,
		const char *input_dir, const char *work_dir, const atomic_bool *stop,
		struct engine_output *out);

#endif
