/*
 * fuzz_config.c: libFuzzer harness for the INI config loader: the input is
 * a config file, loaded by config_load() on top of the defaults as the
 * daemon does at start (then config_check_paths() and the caller allow-list,
 * which read what was loaded). Every call ends with a config or a reason
 * naming the line; a crash, a sanitizer report, a leak or a hang is a
 * finding. Nothing is created: config_check_paths() only looks.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "r3d/config.h"

static char path[FUZZ_PATH_MAX + 16];
static struct config cfg;   /* large: not on the stack */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[FUZZ_PATH_MAX];

	(void)argc;
	(void)argv;
	fuzz_log_off();
	fuzz_scratch_dir("config", dir);
	snprintf(path, sizeof(path), "%s/recon3d.conf", dir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct r3d_err err = {0, {0}};

	fuzz_write_file(path, data, size);
	config_defaults(&cfg);
	if (config_load(&err, path, &cfg)) {
		memset(&err, 0, sizeof(err));
		if (!config_check_paths(&err, &cfg))
			fuzz_check_reason(&err, "config_check_paths");
		(void)config_caller_allowed(&cfg, "STORESCU", "127.0.0.1");
		for (int i = 0; i < cfg.nengines; i++)
			(void)config_engine_find(&cfg, cfg.engines[i].name);
	} else {
		fuzz_check_reason(&err, "config_load");
	}
	unlink(path);
	return 0;
}
