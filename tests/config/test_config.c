/*
 * test_config.c: unit tests for the config key table, loader and caller policy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "r3d/config.h"
#include "r3d/test.h"

static struct config cfg;

static bool load_text(struct r3d_err *err, const char *text)
{
	char path[] = "/tmp/r3d-test-config-XXXXXX";
	int fd = mkstemp(path);
	bool ok;

	if (fd < 0)
		return false;
	ssize_t w = write(fd, text, strlen(text));
	close(fd);
	if (w < 0)
		return false;
	config_defaults(&cfg);
	ok = config_load(err, path, &cfg);
	unlink(path);
	return ok;
}

static void test_defaults(void)
{
	config_defaults(&cfg);
	CHECK(strcmp(cfg.ae_title, "RECON3D") == 0);
	CHECK(cfg.dicom_port == 11112);
	CHECK(cfg.any_caller);
	CHECK(cfg.max_associations == 16);
	CHECK(cfg.stable_seconds == 20);
	CHECK(cfg.min_slices == 20);
	CHECK(strcmp(cfg.http_bind, "127.0.0.1") == 0);
	CHECK(cfg.log_level == LOG_INFO);
	CHECK(cfg.fsync);   /* on by default: docs/reliability.md */
}

static void test_load(void)
{
	struct r3d_err err;

	CHECK(load_text(&err, "[dicom]\nae_title = NODE1\nport = 104\nmax_associations = 3\n"
			      "allowed_callers = PACS@127.0.0.1, CT1@*\n  LATE@127.0.0.2\n"
			      "[pipeline]\nstable_seconds = 5\n[storage]\nfsync = yes\n"
			      "[log]\nlevel = debug\n"));
	CHECK(strcmp(cfg.ae_title, "NODE1") == 0);
	CHECK(cfg.dicom_port == 104);
	CHECK(cfg.max_associations == 3);
	CHECK(cfg.stable_seconds == 5);
	CHECK(cfg.fsync);
	CHECK(cfg.log_level == LOG_DEBUG);
	CHECK(!cfg.any_caller);
	CHECK(cfg.ncallers == 3);
	CHECK(config_caller_allowed(&cfg, "PACS", "127.0.0.1"));
	CHECK(!config_caller_allowed(&cfg, "PACS", "127.0.0.9"));
	CHECK(config_caller_allowed(&cfg, "CT1", "10.1.2.3"));
	CHECK(config_caller_allowed(&cfg, "LATE", "127.0.0.2"));
	CHECK(!config_caller_allowed(&cfg, "pacs", "127.0.0.1"));   /* AE titles are case-sensitive */
	CHECK(!config_caller_allowed(&cfg, "OTHER", "127.0.0.1"));
}

static void test_errors(void)
{
	struct r3d_err err;

	CHECK(!load_text(&err, "[dicom]\nport = 70000\n"));
	CHECK(strstr(err.msg, "[dicom] port") != NULL && strstr(err.msg, "out of range") != NULL);
	CHECK(strstr(err.msg, ":2:") != NULL);   /* names the line */
	/* port 0 is TLS only, and needs a TLS port. */
	CHECK(!load_text(&err, "[dicom]\nport = 0\n"));
	CHECK(strstr(err.msg, "no listener") != NULL);
	CHECK(!load_text(&err, "[dicom]\nportt = 1\n"));
	CHECK(strstr(err.msg, "[dicom] portt: unknown key") != NULL);
	CHECK(!load_text(&err, "[nope]\nport = 1\n"));
	CHECK(strstr(err.msg, "unknown section [nope]") != NULL);
	CHECK(!load_text(&err, "port = 1\n"));
	CHECK(strstr(err.msg, "outside any [section]") != NULL);
	CHECK(!load_text(&err, "[storage]\nfsync = perhaps\n"));
	CHECK(strstr(err.msg, "[storage] fsync") != NULL);
	CHECK(!load_text(&err, "[dicom]\nae_title = A\\B\n"));
	CHECK(!load_text(&err, "[dicom]\nallowed_callers = @host\n"));
	CHECK(!load_text(&err, "[dicom]\nallowed_callers = NOHOST@\n"));
	CHECK(!load_text(&err, "[log]\nlevel = loud\n"));
	CHECK(!load_text(&err, "[storage]\ndir =\n"));
	CHECK(!load_text(&err, "[dicom\nport = 1\n"));
	config_defaults(&cfg);
	CHECK(!config_load(&err, "/nonexistent/recon3d.conf", &cfg));
	CHECK(strstr(err.msg, "/nonexistent/recon3d.conf") != NULL);
}

static void test_sample_roundtrip(void)
{
	struct r3d_err err;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	config_write_sample(f);
	fclose(f);
	/* The generated sample is itself a valid config giving the defaults. */
	CHECK(load_text(&err, buf));
	CHECK(cfg.dicom_port == 11112 && cfg.any_caller && cfg.http_port == 8480);
	CHECK(strstr(buf, "[dicom]\n") != NULL && strstr(buf, "allowed_callers = any") != NULL);
	free(buf);
}

/* [token NAME] sections: role, secret or secret_file, refusals at file:line. */
static void test_tokens(void)
{
	struct r3d_err err;
	const char *a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";    /* 36 characters */
	const char *b = "0123456789abcdef0123456789abcdef";        /* 32 */
	char text[2048], file[] = "/tmp/r3d-test-token-XXXXXX";
	int fd = mkstemp(file);

	CHECK(fd >= 0);
	CHECK(write(fd, "0123456789abcdef0123456789abcdef-file\n", 38) == 38);
	close(fd);
	config_defaults(&cfg);
	CHECK(cfg.ntokens == 0);
	snprintf(text, sizeof(text), "[token ops]\nrole = admin\nsecret = %s\n"
		 "[token monitor]\nsecret = %s\n[token filed]\nrole = read\nsecret_file = %s\n",
		 a, b, file);
	CHECK(load_text(&err, text));
	CHECK(cfg.ntokens == 3);
	CHECK(strcmp(cfg.tokens[0].name, "ops") == 0 && cfg.tokens[0].admin &&
	      strcmp(cfg.tokens[0].secret, a) == 0);
	CHECK(strcmp(cfg.tokens[1].name, "monitor") == 0 && !cfg.tokens[1].admin);   /* read by default */
	CHECK(strcmp(cfg.tokens[2].secret, "0123456789abcdef0123456789abcdef-file") == 0);

	/* Too short: refused at its line, the token itself not in the message. */
	CHECK(!load_text(&err, "[http]\nport = 8480\n[token short]\nrole = read\nsecret = abcdefghij\n"));
	CHECK(strstr(err.msg, ":5:") != NULL && strstr(err.msg, "at least 32") != NULL);
	CHECK(strstr(err.msg, "abcdefghij") == NULL);
	snprintf(text, sizeof(text), "[token x]\nrole = root\nsecret = %s\n", a);
	CHECK(!load_text(&err, text) && strstr(err.msg, ":2:") != NULL && strstr(err.msg, "read or admin"));
	snprintf(text, sizeof(text), "[token x]\nsecret = %s\nsecret_file = %s\n", a, file);
	CHECK(!load_text(&err, text) && strstr(err.msg, ":3:") != NULL);
	snprintf(text, sizeof(text), "[token x]\nsecret = %s with space\n", a);
	CHECK(!load_text(&err, text) && strstr(err.msg, ":2:") != NULL);
	CHECK(!load_text(&err, "[token x]\nsecret_file = /nonexistent/token\n") &&
	      strstr(err.msg, ":2:") != NULL && strstr(err.msg, "/nonexistent/token") != NULL);
	/* No secret at all; an empty section: at the section's header. */
	CHECK(!load_text(&err, "[http]\nport = 1\n[token nosecret]\nrole = admin\n") &&
	      strstr(err.msg, ":3:") != NULL && strstr(err.msg, "secret or secret_file") != NULL);
	CHECK(!load_text(&err, "[http]\nport = 1\n\n[token empty]\n") &&
	      strstr(err.msg, ":4:") != NULL && strstr(err.msg, "[token empty]") != NULL);
	snprintf(text, sizeof(text), "[token one]\nsecret = %s\n[token two]\nsecret = %s\n", a, a);
	CHECK(!load_text(&err, text) && strstr(err.msg, ":3:") != NULL && strstr(err.msg, "same secret"));
	snprintf(text, sizeof(text), "[token x]\nsecret = %s\ncolour = red\n", a);
	CHECK(!load_text(&err, text) && strstr(err.msg, ":3:") != NULL && strstr(err.msg, "unknown key"));
	unlink(file);
}

int main(void)
{
	test_tokens();
	test_defaults();
	test_load();
	test_errors();
	test_sample_roundtrip();
	return test_summary();
}
