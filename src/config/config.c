/*
 * config.c: the configuration key table, the INI loader (inih) and the
 * sample-config generator (see r3d/config.h). Main thread, before any other
 * thread starts; config_caller_allowed() is read-only and any thread may call it.
 */
#include "r3d/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <ini.h>
#include <netdb.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "r3d/util.h"

/* ------------------------------------------------------------------ */
/* The key table                                                       */
/* ------------------------------------------------------------------ */

enum key_type { KEY_STR, KEY_INT, KEY_LONG, KEY_DOUBLE, KEY_BOOL, KEY_SPECIAL };

struct config_key;
typedef bool (*key_setter)(struct r3d_err *err, const struct config_key *key, const char *value,
			   struct config *cfg, bool append);

struct config_key {
	const char *section;
	const char *name;
	enum key_type type;
	const char *def;      /* default, as it would be written in the file */
	long min, max;        /* bounds for numbers */
	size_t offset;        /* where the value lives in struct config */
	size_t size;          /* for strings: the buffer size */
	key_setter special;   /* for KEY_SPECIAL, or an extra validator */
	const char *comment;  /* one line for the sample config */
};

static bool set_ae_title(struct r3d_err *err, const struct config_key *key, const char *value,
			 struct config *cfg, bool append);
static bool set_callers(struct r3d_err *err, const struct config_key *key, const char *value,
			struct config *cfg, bool append);
static bool set_log_level(struct r3d_err *err, const struct config_key *key, const char *value,
			  struct config *cfg, bool append);
static bool check_nonempty(struct r3d_err *err, const struct config_key *key, const char *value,
			   struct config *cfg, bool append);
static bool check_base_url(struct r3d_err *err, const struct config_key *key, const char *value,
			   struct config *cfg, bool append);
static bool set_engine_models(struct r3d_err *err, const struct config_key *key, const char *value,
			      struct config *cfg, bool append);
static bool set_tls_profile(struct r3d_err *err, const struct config_key *key, const char *value,
			    struct config *cfg, bool append);
static bool set_print_number(struct r3d_err *err, const struct config_key *key, const char *value,
			     struct config *cfg, bool append);
static bool check_pairs(struct r3d_err *err, const struct config_key *key, const char *value,
			struct config *cfg, bool append);

#define STR_FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define NUM_FIELD(f) offsetof(struct config, f), 0

static const struct config_key config_keys[] = {
	{"dicom", "ae_title", KEY_SPECIAL, "RECON3D", 0, 0, STR_FIELD(ae_title), set_ae_title,
	 "AE title recon3d answers to; associations called with another title are rejected"},
	{"dicom", "bind", KEY_STR, "0.0.0.0", 0, 0, STR_FIELD(dicom_bind), check_nonempty,
	 "address the DICOM listener binds to (0.0.0.0: every IPv4 interface)"},
	{"dicom", "port", KEY_INT, "11112", 0, 65535, NUM_FIELD(dicom_port), NULL,
	 "TCP port of the DICOM listener (0: none, TLS only)"},
	{"dicom", "tls_port", KEY_INT, "0", 0, 65535, NUM_FIELD(dicom_tls_port), NULL,
	 "TCP port of the DICOM TLS listener, beside or instead of port (0: no TLS listener)"},
	{"dicom", "tls_certificate", KEY_STR, "", 0, 0, STR_FIELD(dicom_tls_certificate), NULL,
	 "PEM certificate (chain) the TLS listener presents; also the client certificate for "
	 "destinations with tls = true"},
	{"dicom", "tls_private_key", KEY_STR, "", 0, 0, STR_FIELD(dicom_tls_private_key), NULL,
	 "PEM private key of tls_certificate (unencrypted; keep it readable by recon3d only)"},
	{"dicom", "tls_trusted_certificates", KEY_STR, "", 0, 0, STR_FIELD(dicom_tls_trusted), NULL,
	 "PEM file or folder (c_rehash'ed) of the CAs whose certificates peers may present"},
	{"dicom", "tls_verify_peer", KEY_BOOL, "true", 0, 0, NUM_FIELD(dicom_tls_verify_peer), NULL,
	 "true: a TLS caller must present a certificate from a trusted CA; false: none is asked"},
	{"dicom", "tls_profile", KEY_SPECIAL, "bcp195-nd", 0, 0, NUM_FIELD(dicom_tls_profile),
	 set_tls_profile,
	 "bcp195-nd (TLS 1.2 and 1.3, AES-GCM with ECDHE/DHE only), bcp195-extended (TLS 1.2 only, "
	 "adds ECDSA) or bcp195 (falls back to TLS 1.0 and 3DES: for old peers only)"},
	{"dicom", "max_associations", KEY_INT, "16", 1, 1000, NUM_FIELD(max_associations), NULL,
	 "associations served at once; one more is rejected (transient, local limit exceeded)"},
	{"dicom", "allowed_callers", KEY_SPECIAL, "any", 0, 0, NUM_FIELD(any_caller), set_callers,
	 "'any', or calling AE titles as AETITLE@host (host: address, name or *), space separated"},
	{"dicom", "max_pdu", KEY_INT, "131072", 4096, 131072, NUM_FIELD(max_pdu), NULL,
	 "largest PDU recon3d receives, in bytes"},
	{"dicom", "idle_timeout_s", KEY_INT, "60", 0, 86400, NUM_FIELD(idle_timeout_s), NULL,
	 "an association silent this long is aborted (0: never)"},
	{"dicom", "shutdown_grace_s", KEY_INT, "10", 0, 600, NUM_FIELD(shutdown_grace_s), NULL,
	 "on SIGTERM, open associations may finish for this long before they are aborted"},
	{"storage", "dir", KEY_STR, "var/instances", 0, 0, STR_FIELD(storage_dir), check_nonempty,
	 "folder for received instances (relative paths start at the working directory)"},
	{"storage", "database", KEY_STR, "var/recon3d.db", 0, 0, STR_FIELD(database), check_nonempty,
	 "SQLite index file (WAL mode)"},
	{"storage", "results", KEY_STR, "var/results", 0, 0, STR_FIELD(results_dir), check_nonempty,
	 "folder for each job's models (STL, OBJ, report.json), one subfolder per job"},
	{"storage", "min_free_mb", KEY_LONG, "512", 0, 1048576, NUM_FIELD(min_free_mb), NULL,
	 "below this much free space in dir, C-STORE is answered Out of Resources (0xA700)"},
	{"storage", "fsync", KEY_BOOL, "true", 0, 0, NUM_FIELD(fsync), NULL,
	 "flush each instance and its index row to the disk before answering success (survives a power loss; false: a crash of recon3d only, about 1.6 to 1.8 times the ingest rate)"},
	{"pipeline", "stable_seconds", KEY_INT, "20", 1, 86400, NUM_FIELD(stable_seconds), NULL,
	 "a study that received nothing for this long is complete and its series become jobs"},
	{"pipeline", "workers", KEY_INT, "2", 0, 64, NUM_FIELD(workers), NULL,
	 "reconstruction jobs run at once (0: jobs wait in the queue, e.g. to pause processing)"},
	{"pipeline", "min_slices", KEY_INT, "20", 1, 4096, NUM_FIELD(min_slices), NULL,
	 "a single-frame CT series needs at least this many images to become a job"},
	{"pipeline", "preload_mb", KEY_LONG, "512", 0, 65536, NUM_FIELD(preload_mb), NULL,
	 "MB of CT images decoded while their study arrives, so its job need not read the files back (0: off); 512 holds a 1000-slice 512x512 series"},
	{"mesh", "error_target_mm", KEY_DOUBLE, "0.05", 0, 10, NUM_FIELD(mesh_error_target_mm), NULL,
	 "under max_triangles, decimation goes on while each collapse stays this close to the "
	 "surface it replaces (0: keep max_triangles)"},
	{"mesh", "max_decimation_error_mm", KEY_DOUBLE, "0.5", 0, 100, NUM_FIELD(mesh_max_error_mm),
	 NULL, "a model further than this from its undecimated surface is flagged in report.json, "
	 "the log and /metrics (0: never)"},
	{"http", "bind", KEY_STR, "127.0.0.1", 0, 0, STR_FIELD(http_bind), check_nonempty,
	 "address of the status endpoint (/healthz, /status, /metrics)"},
	{"http", "port", KEY_INT, "8480", 0, 65535, NUM_FIELD(http_port), NULL,
	 "TCP port of the status endpoint (0: no status endpoint)"},
	{"http", "tls_certificate", KEY_STR, "", 0, 0, STR_FIELD(http_tls_certificate), NULL,
	 "PEM certificate: with tls_private_key, the HTTP server speaks HTTPS only"},
	{"http", "tls_private_key", KEY_STR, "", 0, 0, STR_FIELD(http_tls_private_key), NULL,
	 "PEM private key of tls_certificate"},
	{"log", "level", KEY_SPECIAL, "info", 0, 0, NUM_FIELD(log_level), set_log_level,
	 "debug, info, warn or error; patient data is never logged at info or above"},
	{"export", "surface_segmentation", KEY_BOOL, "true", 0, 0, NUM_FIELD(export_surface_segmentation),
	 NULL, "send one Surface Segmentation per series, every structure in it"},
	{"export", "stl", KEY_BOOL, "true", 0, 0, NUM_FIELD(export_stl), NULL,
	 "send one Encapsulated STL per structure (for 3D printing and model viewers)"},
	{"export", "preview", KEY_BOOL, "true", 0, 0, NUM_FIELD(export_preview), NULL,
	 "send rendered views of the models (Secondary Capture, seven directions) any viewer shows"},
	{"export", "preview_size", KEY_INT, "512", 128, 2048, NUM_FIELD(export_preview_size), NULL,
	 "width and height of each rendered view, in pixels"},
	{"export", "segmentation", KEY_BOOL, "true", 0, 0, NUM_FIELD(export_segmentation), NULL,
	 "send one DICOM Segmentation (voxel masks on the CT slices) per series, for OHIF, Slicer, Weasis"},
	{"import", "enabled", KEY_BOOL, "true", 0, 0, NUM_FIELD(import_enabled), NULL,
	 "a Segmentation or RT Structure Set received is meshed, one surface per segment, on its CT"},
	{"import", "wait_for_source_s", KEY_INT, "3600", 0, 604800, NUM_FIELD(import_wait_for_source_s),
	 NULL, "a segmentation whose CT series is not here waits this long for it, then fails"},
	{"import", "send_segmentation", KEY_BOOL, "false", 0, 0, NUM_FIELD(import_send_segmentation),
	 NULL, "true: an imported object's segments also go back as a new DICOM Segmentation"},
	{"import", "engine", KEY_STR, "", 0, 0, STR_FIELD(import_engine), NULL,
	 "name of an [engine NAME] section every CT job is sent to first (empty: none)"},
	{"import", "engine_models", KEY_SPECIAL, "with", 0, 0, NUM_FIELD(import_engine_instead),
	 set_engine_models, "with: the engine's segments beside the structures; instead: only the engine's"},
	{"print", "min_wall_mm", KEY_SPECIAL, "1.0", 0, 50, NUM_FIELD(print_min_wall_mm),
	 set_print_number, "walls thinner than this (mm) are flagged thin_wall and the model not "
	 "printable (1.0: what the usual powder and resin printers hold; docs/printing.md)"},
	{"print", "min_shell_ml", KEY_SPECIAL, "0.1", 0, 1000, NUM_FIELD(print_min_shell_ml),
	 set_print_number, "a loose shell of less than this (ml) is dropped when drop_loose_shells is true"},
	{"print", "drop_loose_shells", KEY_BOOL, "false", 0, 0, NUM_FIELD(print_drop_loose_shells), NULL,
	 "true: loose shells under min_shell_ml are removed from every output (STL, Surface "
	 "Segmentation, page); report.json counts them"},
	{"print", "distances", KEY_STR, "", 0, 0, STR_FIELD(print_distances), check_pairs,
	 "structure pairs whose shortest surface distance goes in report.json, e.g. "
	 "tumour:artery, kidney:vessels (measured when both are made; a route may set its own)"},
	{"viewer", "enabled", KEY_BOOL, "false", 0, 0, NUM_FIELD(viewer_enabled), NULL,
	 "true: the HTTP server shows each study's models at /viewer/<token>; the webhook carries the link"},
	{"viewer", "link_ttl_days", KEY_INT, "7", 1, 3650, NUM_FIELD(viewer_link_ttl_days), NULL,
	 "a viewer link stops working this many days after it was made"},
	{"viewer", "base_url", KEY_STR, "", 0, 0, STR_FIELD(viewer_base_url), check_base_url,
	 "address surgeons reach the HTTP server at, e.g. https://recon3d.example.org (empty: http://bind:port)"},
	{"webhook", "url", KEY_STR, "", 0, 0, STR_FIELD(webhook_url), NULL,
	 "where a signed JSON message goes when a study's models are delivered (space separated; empty: none)"},
	{"webhook", "secret", KEY_STR, "", 0, 0, STR_FIELD(webhook_secret), NULL,
	 "signing secret, whsec_<base64 of 24 to 64 bytes> (Standard Webhooks); or secret_file"},
	{"webhook", "secret_file", KEY_STR, "", 0, 0, STR_FIELD(webhook_secret_file), NULL,
	 "file holding the signing secret (preferred over secret: keep it out of this file)"},
	{"webhook", "include_patient_name", KEY_BOOL, "false", 0, 0,
	 NUM_FIELD(webhook_include_patient_name), NULL,
	 "true: the message carries the patient's name (it never carries the ID or birth date)"},
	{"webhook", "ca_file", KEY_STR, "", 0, 0, STR_FIELD(webhook_ca_file), NULL,
	 "PEM file of the CAs an https:// webhook's certificate is verified against (\"\": the "
	 "system's)"},
	{"webhook", "tls_insecure", KEY_BOOL, "false", 0, 0, NUM_FIELD(webhook_tls_insecure), NULL,
	 "true: do not verify an https:// webhook's certificate or name (testing only; logged as a "
	 "warning)"},
	{"webhook", "timeout_s", KEY_INT, "15", 1, 300, NUM_FIELD(webhook_timeout_s), NULL,
	 "seconds one delivery attempt may take"},
	{"retry", "initial_delay_s", KEY_INT, "5", 1, 3600, NUM_FIELD(retry_initial_delay_s), NULL,
	 "after a transient failure (PACS down, busy, timeout) the first retry waits this long"},
	{"retry", "max_delay_s", KEY_INT, "600", 1, 86400, NUM_FIELD(retry_max_delay_s), NULL,
	 "each further retry waits twice as long, up to this"},
	{"retry", "max_attempts", KEY_INT, "50", 1, 10000, NUM_FIELD(retry_max_attempts), NULL,
	 "attempts per object before it is marked failed"},
};

#define CONFIG_NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

/* ------------------------------------------------------------------ */
/* Setters and validators                                              */
/* ------------------------------------------------------------------ */

static bool ae_title_valid(const char *s)
{
	size_t n = strlen(s);
	bool nonspace = false;

	if (n == 0 || n > CONFIG_AE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c > 0x7e || c == '\\')
			return false;
		if (c != ' ')
			nonspace = true;
	}
	return nonspace;
}

/* [print] min_wall_mm, min_shell_ml: a decimal number within the key's
 * bounds, into a double. */
static bool set_print_number(struct r3d_err *err, const struct config_key *key, const char *value,
			     struct config *cfg, bool append)
{
	char *end = NULL;
	double v;

	(void)append;
	v = strtod(value, &end);
	if (end == value || *end != '\0' || !isfinite(v) || v < (double)key->min ||
	    v > (double)key->max)
		return r3d_err_set(err, R3D_EINVAL, "'%s' is not a number from %ld to %ld", value,
				   key->min, key->max);
	*(double *)(void *)((char *)cfg + key->offset) = v;
	return true;
}

/* [print] distances: a list of structure pairs (r3d/structure.h). */
static bool check_pairs(struct r3d_err *err, const struct config_key *key, const char *value,
			struct config *cfg, bool append)
{
	struct structure_pair pairs[STRUCTURE_PAIRS_MAX];
	size_t n;

	(void)key;
	(void)cfg;
	(void)append;
	return structure_pairs_parse(err, value, pairs, STRUCTURE_PAIRS_MAX, &n);
}

/* [viewer] base_url: an http(s) address (its trailing slash is dropped after loading). */
static bool check_base_url(struct r3d_err *err, const struct config_key *key, const char *value,
			   struct config *cfg, bool append)
{
	(void)append;
	(void)key;
	size_t n = strlen(value);
	if (n == 0)
		return true;
	if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
		return r3d_err_set(err, R3D_EINVAL, "'%s' is not an http:// or https:// address", value);
	if (strpbrk(value, " \t\"<>") != NULL)
		return r3d_err_set(err, R3D_EINVAL, "'%s' has a space, quote or angle bracket", value);
	(void)cfg;
	return true;
}

static bool set_ae_title(struct r3d_err *err, const struct config_key *key, const char *value,
			 struct config *cfg, bool append)
{
	(void)append;
	if (!ae_title_valid(value))
		return r3d_err_set(err, R3D_EINVAL,
				   "'%s' is not an AE title (1 to 16 printable characters, no backslash)",
				   value);
	snprintf((char *)cfg + key->offset, key->size, "%s", value);
	return true;
}

static bool check_nonempty(struct r3d_err *err, const struct config_key *key, const char *value,
			   struct config *cfg, bool append)
{
	(void)key;
	(void)cfg;
	(void)append;
	if (value[0] == '\0')
		return r3d_err_set(err, R3D_EINVAL, "must not be empty");
	return true;
}

static bool set_log_level(struct r3d_err *err, const struct config_key *key, const char *value,
			  struct config *cfg, bool append)
{
	(void)key;
	(void)append;
	if (!log_level_parse(value, &cfg->log_level))
		return r3d_err_set(err, R3D_EINVAL, "'%s' is not one of debug, info, warn, error",
				   value);
	return true;
}

/* Resolves host to numeric addresses, so that matching an association is a
 * string comparison with no lookup on the accept path. */
static bool caller_resolve(struct r3d_err *err, struct config_caller *c)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	int rc;

	c->naddrs = 0;
	if (strcmp(c->host, "*") == 0)
		return true;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(c->host, NULL, &hints, &res);
	if (rc != 0)
		return r3d_err_set(err, R3D_EINVAL, "cannot resolve host '%s': %s", c->host,
				   gai_strerror(rc));
	for (struct addrinfo *ai = res; ai != NULL && c->naddrs < CONFIG_MAX_CALLER_ADDRS;
	     ai = ai->ai_next) {
		char buf[64];
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, buf, sizeof(buf), NULL, 0,
				NI_NUMERICHOST) != 0)
			continue;
		bool dup = false;
		for (int i = 0; i < c->naddrs; i++)
			dup = dup || strcmp(c->addrs[i], buf) == 0;
		if (!dup)
			snprintf(c->addrs[c->naddrs++], sizeof(c->addrs[0]), "%s", buf);
	}
	freeaddrinfo(res);
	return true;
}

static bool set_callers(struct r3d_err *err, const struct config_key *key, const char *value,
			struct config *cfg, bool append)
{
	char buf[4096];
	char *save = NULL;

	(void)key;
	if (!append) {
		cfg->any_caller = false;
		cfg->ncallers = 0;
	}
	if (strlen(value) >= sizeof(buf))
		return r3d_err_set(err, R3D_EINVAL, "list too long; continue it on indented lines");
	snprintf(buf, sizeof(buf), "%s", value);
	for (char *tok = strtok_r(buf, " \t,", &save); tok != NULL; tok = strtok_r(NULL, " \t,", &save)) {
		if (strcasecmp(tok, "any") == 0) {
			cfg->any_caller = true;
			continue;
		}
		char *at = strrchr(tok, '@');
		if (at == NULL || at == tok || at[1] == '\0')
			return r3d_err_set(err, R3D_EINVAL, "'%s' is not AETITLE@host", tok);
		*at = '\0';
		if (!ae_title_valid(tok))
			return r3d_err_set(err, R3D_EINVAL, "'%s' is not an AE title", tok);
		if (cfg->ncallers >= CONFIG_MAX_CALLERS)
			return r3d_err_set(err, R3D_EINVAL, "more than %d callers", CONFIG_MAX_CALLERS);
		struct config_caller *c = &cfg->callers[cfg->ncallers];
		memset(c, 0, sizeof(*c));
		snprintf(c->ae_title, sizeof(c->ae_title), "%s", tok);
		snprintf(c->host, sizeof(c->host), "%s", at + 1);
		if (!caller_resolve(err, c))
			return false;
		cfg->ncallers++;
	}
	if (!cfg->any_caller && cfg->ncallers == 0)
		return r3d_err_set(err, R3D_EINVAL, "empty list: write 'any' or AETITLE@host entries");
	return true;
}

static bool key_set(struct r3d_err *err, const struct config_key *key, const char *value,
		    struct config *cfg, bool append)
{
	char *base = (char *)cfg;
	long v = 0;
	bool b = false;

	switch (key->type) {
	case KEY_STR:
		if (key->special != NULL && !key->special(err, key, value, cfg, append))
			return false;
		if (key->size > 0 && strlen(value) >= key->size)
			return r3d_err_set(err, R3D_EINVAL, "value longer than %zu characters",
					   key->size - 1);
		snprintf(base + key->offset, key->size, "%s", value);
		return true;
	case KEY_INT:
		if (!parse_long(err, value, key->min, key->max, &v))
			return false;
		*(int *)(void *)(base + key->offset) = (int)v;
		return true;
	case KEY_LONG:
		if (!parse_long(err, value, key->min, key->max, &v))
			return false;
		*(long *)(void *)(base + key->offset) = v;
		return true;
	case KEY_DOUBLE: {
		double d;
		if (!parse_double(err, value, (double)key->min, (double)key->max, &d))
			return false;
		*(double *)(void *)(base + key->offset) = d;
		return true;
	}
	case KEY_BOOL:
		if (!parse_bool(err, value, &b))
			return false;
		*(bool *)(void *)(base + key->offset) = b;
		return true;
	case KEY_SPECIAL:
		return key->special(err, key, value, cfg, append);
	}
	return r3d_err_set(err, R3D_EINVAL, "internal: bad key type");
}

static const struct config_key *key_find(const char *section, const char *name)
{
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	}
	return NULL;
}

static bool section_known(const char *section)
{
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		if (strcmp(config_keys[i].section, section) == 0)
			return true;
	}
	return false;
}

void config_defaults(struct config *cfg)
{
	struct r3d_err err;

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		/* Defaults are compile-time constants checked by the unit test. */
		if (!key_set(&err, &config_keys[i], config_keys[i].def, cfg, false))
			log_error("config", "internal: default of [%s] %s: %s", config_keys[i].section,
				  config_keys[i].name, err.msg);
	}
	structure_catalog_default(&cfg->structures);
	snprintf(cfg->route_default.name, sizeof(cfg->route_default.name), "default");
	cfg->route_default.policy = ROUTE_BEST;
}

const struct config_route *config_route_find(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->nroutes; i++) {
		if (strcmp(cfg->routes[i].name, name) == 0)
			return &cfg->routes[i];
	}
	return strcmp(name, cfg->route_default.name) == 0 ? &cfg->route_default : NULL;
}

/* ------------------------------------------------------------------ */
/* [structure KEY] sections                                            */
/* ------------------------------------------------------------------ */

/* What the loader remembers of each catalogue entry a file touched. */
struct structure_seen {
	int line;          /* 1: a section of the file sets it; 0: untouched */
	unsigned attrs;    /* bit i: structure_attr_names[i] was given */
};

/* One key of a [structure KEY] section: a built-in entry is changed, a new
 * key becomes a threshold structure. */
static bool structure_set(struct r3d_err *err, struct config *cfg, struct structure_seen *seen,
			  const char *key, const char *name, const char *value)
{
	struct structure_catalog *c = &cfg->structures;
	struct structure_def *d = structure_catalog_find(c, key);
	size_t a;

	for (a = 0; structure_attr_names[a] != NULL; a++)
		if (strcmp(structure_attr_names[a], name) == 0)
			break;
	if (structure_attr_names[a] == NULL)
		return r3d_err_set(err, R3D_EINVAL, "unknown key (one of enabled, label, min_hu, max_hu, "
				   "contrast_min_hu, color, category, type, laterality, region, "
				   "region_laterality, max_triangles, kernel, phase)");
	if (d == NULL) {
		if (!structure_key_valid(key))
			return r3d_err_set(err, R3D_EINVAL, "'%s' is not a structure key (1 to %d "
					   "characters of a-z, 0-9 and _, a letter first)", key,
					   STRUCTURE_KEY_MAX - 1);
		if (c->n == STRUCTURE_MAX)
			return r3d_err_set(err, R3D_EINVAL, "more than %d structures", STRUCTURE_MAX);
		d = &c->def[c->n++];
		structure_def_threshold(d, key);
	}
	struct structure_seen *sn = &seen[d - c->def];
	sn->line = 1;
	if (sn->attrs & (1u << a))
		return r3d_err_set(err, R3D_EINVAL, "given twice");
	sn->attrs |= 1u << a;
	return structure_def_set(err, d, name, value);
}

/* ------------------------------------------------------------------ */
/* [destination NAME] sections                                         */
/* ------------------------------------------------------------------ */

#define DEST_DEFAULT_CONNECT_S 5
#define ENGINE_DEFAULT_TIMEOUT_S 3600
#define DEST_DEFAULT_ACSE_S 10
#define DEST_DEFAULT_DIMSE_S 30

static bool destination_name_valid(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > CONFIG_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = n[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static bool destination_set(struct r3d_err *err, struct config *cfg, const char *dname,
			    const char *key, const char *value)
{
	struct config_destination *d = NULL;
	long v;

	if (!destination_name_valid(dname))
		return r3d_err_set(err, R3D_EINVAL, "'%s' is not a destination name (letters, digits, - _ .)",
				   dname);
	for (int i = 0; i < cfg->ndestinations; i++) {
		if (strcmp(cfg->destinations[i].name, dname) == 0)
			d = &cfg->destinations[i];
	}
	if (d == NULL) {
		if (cfg->ndestinations >= CONFIG_MAX_DESTINATIONS)
			return r3d_err_set(err, R3D_EINVAL, "more than %d destinations",
					   CONFIG_MAX_DESTINATIONS);
		d = &cfg->destinations[cfg->ndestinations++];
		memset(d, 0, sizeof(*d));
		snprintf(d->name, sizeof(d->name), "%s", dname);
		d->connect_timeout_s = DEST_DEFAULT_CONNECT_S;
		d->acse_timeout_s = DEST_DEFAULT_ACSE_S;
		d->dimse_timeout_s = DEST_DEFAULT_DIMSE_S;
	}
	if (strcmp(key, "ae_title") == 0 || strcmp(key, "calling_ae_title") == 0) {
		if (!ae_title_valid(value))
			return r3d_err_set(err, R3D_EINVAL, "'%s' is not an AE title", value);
		if (key[0] == 'a')
			snprintf(d->ae_title, sizeof(d->ae_title), "%s", value);
		else
			snprintf(d->calling_ae_title, sizeof(d->calling_ae_title), "%s", value);
		return true;
	}
	if (strcmp(key, "host") == 0) {
		if (value[0] == '\0' || strlen(value) >= sizeof(d->host))
			return r3d_err_set(err, R3D_EINVAL, "bad host '%s'", value);
		snprintf(d->host, sizeof(d->host), "%s", value);
		return true;
	}
	if (strcmp(key, "port") == 0) {
		if (!parse_long(err, value, 1, 65535, &v))
			return false;
		d->port = (int)v;
		return true;
	}
	if (strcmp(key, "tls") == 0) {
		if (!parse_bool(err, value, &d->tls))
			return r3d_err_set(err, R3D_EINVAL, "'%s' is not true or false", value);
		return true;
	}
	char *path = strcmp(key, "tls_certificate") == 0 ? d->tls_certificate :
		     strcmp(key, "tls_private_key") == 0 ? d->tls_private_key :
		     strcmp(key, "tls_trusted_certificates") == 0 ? d->tls_trusted : NULL;
	if (path != NULL) {
		if (strlen(value) >= PATH_MAX)
			return r3d_err_set(err, R3D_EINVAL, "path too long");
		snprintf(path, PATH_MAX, "%s", value);
		return true;
	}
	if (strcmp(key, "tls_peer_subject") == 0) {
		if (strlen(value) >= sizeof(d->tls_peer_subject))
			return r3d_err_set(err, R3D_EINVAL, "longer than %zu characters",
					   sizeof(d->tls_peer_subject) - 1);
		snprintf(d->tls_peer_subject, sizeof(d->tls_peer_subject), "%s", value);
		return true;
	}
	int *t = strcmp(key, "connect_timeout_s") == 0 ? &d->connect_timeout_s :
		 strcmp(key, "acse_timeout_s") == 0 ? &d->acse_timeout_s :
		 strcmp(key, "dimse_timeout_s") == 0 ? &d->dimse_timeout_s : NULL;
	if (t != NULL) {
		if (!parse_long(err, value, 1, 3600, &v))
			return false;
		*t = (int)v;
		return true;
	}
	return r3d_err_set(err, R3D_EINVAL, "unknown key (ae_title, host, port, calling_ae_title, "
					   "connect_timeout_s, acse_timeout_s, dimse_timeout_s, tls, "
					   "tls_certificate, tls_private_key, tls_trusted_certificates, "
					   "tls_peer_subject)");
}

static bool set_tls_profile(struct r3d_err *err, const struct config_key *key, const char *value,
			    struct config *cfg, bool append)
{
	(void)key;
	(void)append;
	for (int p = 0; p < CONFIG_TLS_NPROFILES; p++) {
		if (strcmp(value, config_tls_profile_name((enum config_tls_profile)p)) == 0) {
			cfg->dicom_tls_profile = (enum config_tls_profile)p;
			return true;
		}
	}
	return r3d_err_set(err, R3D_EINVAL, "'%s': give bcp195-nd, bcp195-extended or bcp195", value);
}

const char *config_tls_profile_name(enum config_tls_profile p)
{
	static const char *const names[CONFIG_TLS_NPROFILES] = {"bcp195-nd", "bcp195-extended", "bcp195"};
	return (unsigned)p < CONFIG_TLS_NPROFILES ? names[p] : "bcp195-nd";
}

static bool set_engine_models(struct r3d_err *err, const struct config_key *key, const char *value,
			      struct config *cfg, bool append)
{
	(void)key;
	(void)append;
	if (strcmp(value, "with") == 0 || strcmp(value, "instead") == 0) {
		cfg->import_engine_instead = value[0] == 'i';
		return true;
	}
	return r3d_err_set(err, R3D_EINVAL, "'%s': give with or instead", value);
}

const struct config_engine *config_engine_find(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->nengines; i++) {
		if (strcmp(cfg->engines[i].name, name) == 0)
			return &cfg->engines[i];
	}
	return NULL;
}

/* Splits an engine's command into words: spaces separate them, double
 * quotes keep spaces inside one; {input} and {output} are the only
 * placeholders (kept as written here, replaced per job). */
static bool engine_split(struct r3d_err *err, struct config_engine *e)
{
	const char *p = e->command;
	char *w = e->words;
	char *end = e->words + sizeof(e->words) - 1;

	e->argc = 0;
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (e->argc >= CONFIG_ENGINE_MAX_ARGS)
			return r3d_err_set(err, R3D_EINVAL, "more than %d words", CONFIG_ENGINE_MAX_ARGS);
		e->argoff[e->argc++] = (int)(w - e->words);
		bool quoted = false;
		while (*p != '\0' && (quoted || (*p != ' ' && *p != '\t'))) {
			if (*p == '"') {
				quoted = !quoted;
				p++;
				continue;
			}
			if (w >= end)
				return r3d_err_set(err, R3D_EINVAL, "command too long");
			*w++ = *p++;
		}
		if (quoted)
			return r3d_err_set(err, R3D_EINVAL, "a double quote is not closed");
		*w++ = '\0';
	}
	if (e->argc == 0)
		return r3d_err_set(err, R3D_EINVAL, "empty command");
	for (int i = 0; i < e->argc; i++) {
		const char *word = e->words + e->argoff[i];
		for (const char *b = strchr(word, '{'); b != NULL; b = strchr(b + 1, '{')) {
			if (strncmp(b, "{input}", 7) != 0 && strncmp(b, "{output}", 8) != 0)
				return r3d_err_set(err, R3D_EINVAL, "unknown placeholder in '%s' (only {input} "
						   "and {output})", word);
		}
	}
	return true;
}

static bool engine_set(struct r3d_err *err, struct config *cfg, const char *ename, const char *key,
		       const char *value)
{
	struct config_engine *e = NULL;
	long v;

	if (!destination_name_valid(ename))
		return r3d_err_set(err, R3D_EINVAL, "'%s' is not an engine name (letters, digits, - _ .)",
				   ename);
	for (int i = 0; i < cfg->nengines; i++) {
		if (strcmp(cfg->engines[i].name, ename) == 0)
			e = &cfg->engines[i];
	}
	if (e == NULL) {
		if (cfg->nengines >= CONFIG_MAX_ENGINES)
			return r3d_err_set(err, R3D_EINVAL, "more than %d engines", CONFIG_MAX_ENGINES);
		e = &cfg->engines[cfg->nengines++];
		memset(e, 0, sizeof(*e));
		snprintf(e->name, sizeof(e->name), "%s", ename);
		e->timeout_s = ENGINE_DEFAULT_TIMEOUT_S;
		e->concurrency = 1;
	}
	if (strcmp(key, "command") == 0) {
		if (strlen(value) >= sizeof(e->command))
			return r3d_err_set(err, R3D_EINVAL, "command too long");
		snprintf(e->command, sizeof(e->command), "%s", value);
		return engine_split(err, e);
	}
	if (strcmp(key, "label_table") == 0) {
		if (strlen(value) >= sizeof(e->label_table))
			return r3d_err_set(err, R3D_EINVAL, "path too long");
		snprintf(e->label_table, sizeof(e->label_table), "%s", value);
		return true;
	}
	if (strcmp(key, "input") == 0) {
		if (strcmp(value, "dicom") != 0 && strcmp(value, "nifti") != 0)
			return r3d_err_set(err, R3D_EINVAL, "'%s': give dicom or nifti", value);
		e->input_nifti = value[0] == 'n';
		return true;
	}
	if (strcmp(key, "timeout_s") == 0) {
		if (!parse_long(err, value, 1, 86400, &v))
			return false;
		e->timeout_s = (int)v;
		return true;
	}
	if (strcmp(key, "concurrency") == 0) {
		if (!parse_long(err, value, 1, 64, &v))
			return false;
		e->concurrency = (int)v;
		return true;
	}
	return r3d_err_set(err, R3D_EINVAL, "unknown key (command, input, label_table, timeout_s, concurrency)");
}

/* ------------------------------------------------------------------ */
/* [route NAME] sections (issue 12)                                    */
/* ------------------------------------------------------------------ */

static const char *const route_attr_keywords[ROUTE_NATTRS] = {
	[ROUTE_ATTR_MODALITY] = "Modality",
	[ROUTE_ATTR_BODY_PART] = "BodyPartExamined",
	[ROUTE_ATTR_STUDY_DESCRIPTION] = "StudyDescription",
	[ROUTE_ATTR_SERIES_DESCRIPTION] = "SeriesDescription",
	[ROUTE_ATTR_SLICE_THICKNESS] = "SliceThickness",
	[ROUTE_ATTR_KERNEL] = "ConvolutionKernel",
	[ROUTE_ATTR_CONTRAST] = "ContrastBolusAgent",
	[ROUTE_ATTR_MANUFACTURER] = "Manufacturer",
	[ROUTE_ATTR_IMAGE_TYPE] = "ImageType",
};

#define ROUTE_ATTR_LIST "Modality, BodyPartExamined, StudyDescription, SeriesDescription, " \
	"SliceThickness, ConvolutionKernel, ContrastBolusAgent, Manufacturer, ImageType"

const char *config_route_attr_keyword(enum route_attr a)
{
	return (unsigned)a < ROUTE_NATTRS ? route_attr_keywords[a] : "";
}

/* Adds the space- or comma-separated words of value to a list. */
static bool words_append(char *dst, size_t size, const char *value)
{
	size_t n = strlen(dst);
	int w = snprintf(dst + n, size - n, "%s%s", n > 0 ? " " : "", value);
	for (char *p = dst + n; *p != '\0'; p++)
		if (*p == ',' || *p == '\t')
			*p = ' ';
	return w >= 0 && (size_t)w < size - n;
}

static bool route_aes(struct r3d_err *err, const char *value, char list[][CONFIG_AE_MAX + 1], int *n)
{
	char buf[1024];
	char *save = NULL;

	if (snprintf(buf, sizeof(buf), "%s", value) >= (int)sizeof(buf))
		return r3d_err_set(err, R3D_EINVAL, "too long");
	for (char *p = buf; *p != '\0'; p++)
		if (*p == ',')
			*p = ' ';
	for (char *t = strtok_r(buf, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
		if (!ae_title_valid(t))
			return r3d_err_set(err, R3D_EINVAL, "'%s' is not an AE title", t);
		if (*n >= CONFIG_ROUTE_MAX_AES)
			return r3d_err_set(err, R3D_EINVAL, "more than %d AE titles", CONFIG_ROUTE_MAX_AES);
		snprintf(list[(*n)++], CONFIG_AE_MAX + 1, "%s", t);
	}
	return true;
}

static bool route_set(struct r3d_err *err, struct config *cfg, const char *rname, const char *key,
		      const char *value)
{
	struct config_route *r = NULL;

	if (!destination_name_valid(rname))
		return r3d_err_set(err, R3D_EINVAL, "'%s' is not a route name (letters, digits, - _ .)",
				   rname);
	if (strcmp(rname, "default") == 0) {
		r = &cfg->route_default;
	} else {
		for (int i = 0; i < cfg->nroutes; i++) {
			if (strcmp(cfg->routes[i].name, rname) == 0)
				r = &cfg->routes[i];
		}
	}
	if (r == NULL) {
		if (cfg->nroutes >= CONFIG_MAX_ROUTES)
			return r3d_err_set(err, R3D_EINVAL, "more than %d routes", CONFIG_MAX_ROUTES);
		r = &cfg->routes[cfg->nroutes++];
		memset(r, 0, sizeof(*r));
		snprintf(r->name, sizeof(r->name), "%s", rname);
		r->policy = ROUTE_BEST;
	}
	if (strcmp(key, "series") == 0) {
		if (strcmp(value, "best") == 0)
			r->policy = ROUTE_BEST;
		else if (strcmp(value, "all") == 0)
			r->policy = ROUTE_ALL;
		else if (strcmp(value, "ignore") == 0)
			r->policy = ROUTE_IGNORE;
		else
			return r3d_err_set(err, R3D_EINVAL, "'%s' is not best, all or ignore", value);
		return true;
	}
	if (strcmp(key, "structures") == 0) {
		r->structures_set = true;
		if (!words_append(r->structures, sizeof(r->structures), value))
			return r3d_err_set(err, R3D_EINVAL, "too long");
		return true;
	}
	if (strcmp(key, "destinations") == 0) {
		/* Names are resolved once every [destination] section is read. */
		r->destinations_set = true;
		if (!words_append(r->destination_names, sizeof(r->destination_names), value))
			return r3d_err_set(err, R3D_EINVAL, "too long");
		return true;
	}
	if (strcmp(key, "webhook") == 0) {
		r->webhook_set = true;
		if (strcmp(value, "none") == 0)
			return true;
		if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
			return r3d_err_set(err, R3D_EINVAL, "'%s' is not an http:// or https:// URL "
					   "(or none)", value);
		if (!words_append(r->webhook_url, sizeof(r->webhook_url), value))
			return r3d_err_set(err, R3D_EINVAL, "too long");
		return true;
	}
	if (strcmp(key, "engine") == 0) {
		r->engine_set = true;
		if (strcmp(value, "none") == 0)
			return true;
		if (strlen(value) >= sizeof(r->engine))
			return r3d_err_set(err, R3D_EINVAL, "'%s' is not an engine name", value);
		snprintf(r->engine, sizeof(r->engine), "%s", value);
		return true;
	}
	if (strcmp(key, "engine_models") == 0) {
		if (strcmp(value, "with") != 0 && strcmp(value, "instead") != 0)
			return r3d_err_set(err, R3D_EINVAL, "'%s' is not with or instead", value);
		r->engine_instead = strcmp(value, "instead") == 0;
		return true;
	}
	if (strcmp(key, "distances") == 0) {
		struct structure_pair pairs[STRUCTURE_PAIRS_MAX];
		size_t n;
		if (!structure_pairs_parse(err, value, pairs, STRUCTURE_PAIRS_MAX, &n))
			return false;
		r->distances_set = true;
		snprintf(r->distances, sizeof(r->distances), "%s", value);
		return true;
	}
	if (strcmp(key, "calling_ae") == 0)
		return route_aes(err, value, r->calling_ae, &r->ncalling);
	if (strcmp(key, "called_ae") == 0)
		return route_aes(err, value, r->called_ae, &r->ncalled);
	/* Anything else is a rule on the DICOM attribute the key names. */
	int a;
	for (a = 0; a < ROUTE_NATTRS; a++)
		if (strcmp(route_attr_keywords[a], key) == 0)
			break;
	if (a == ROUTE_NATTRS) {
		static const char *const patient[] = {"PatientName", "PatientID", "PatientBirthDate",
						      "PatientSex", "PatientAge", "OtherPatientIDs",
						      NULL};
		for (int i = 0; patient[i] != NULL; i++)
			if (strcmp(key, patient[i]) == 0)
				return r3d_err_set(err, R3D_EINVAL, "%s is patient data: a route cannot "
						   "match on it", key);
		return r3d_err_set(err, R3D_EINVAL, "unknown attribute keyword '%s' (a route matches "
				   "on " ROUTE_ATTR_LIST ", calling_ae, called_ae)", key);
	}
	if (r == &cfg->route_default)
		return r3d_err_set(err, R3D_EINVAL, "the default route takes what no other route "
				   "matched: it has no rules");
	for (int i = 0; i < r->nrules; i++)
		if (r->rules[i].attr == (enum route_attr)a)
			return r3d_err_set(err, R3D_EINVAL, "%s given twice in one route (one "
					   "expression can hold alternatives: A|B)", key);
	if (r->nrules >= CONFIG_ROUTE_MAX_RULES)
		return r3d_err_set(err, R3D_EINVAL, "more than %d rules", CONFIG_ROUTE_MAX_RULES);
	struct config_route_rule *rule = &r->rules[r->nrules];
	memset(rule, 0, sizeof(*rule));
	rule->attr = (enum route_attr)a;
	if (strlen(value) >= sizeof(rule->pattern))
		return r3d_err_set(err, R3D_EINVAL, "longer than %d characters",
				   CONFIG_ROUTE_PATTERN_MAX - 1);
	snprintf(rule->pattern, sizeof(rule->pattern), "%s", value);
	if (a == ROUTE_ATTR_SLICE_THICKNESS) {
		char *end = NULL;
		rule->lo = strtod(value, &end);
		if (end == value || strncmp(end, "..", 2) != 0)
			return r3d_err_set(err, R3D_EINVAL, "'%s' is not a range MIN..MAX in mm", value);
		const char *hi = end + 2;
		rule->hi = strtod(hi, &end);
		if (end == hi || *end != '\0' || !(rule->lo >= 0) || !(rule->hi >= rule->lo) ||
		    rule->hi > 1000)
			return r3d_err_set(err, R3D_EINVAL, "'%s' is not a range MIN..MAX in mm "
					   "(0 <= MIN <= MAX)", value);
	} else if (a == ROUTE_ATTR_CONTRAST && strcmp(value, "present") == 0) {
		rule->presence = 1;
	} else if (a == ROUTE_ATTR_CONTRAST && strcmp(value, "absent") == 0) {
		rule->presence = -1;
	} else {
		regex_t re;
		int rc = regcomp(&re, value, REG_EXTENDED | REG_ICASE | REG_NOSUB);
		if (rc != 0) {
			char msg[128];
			regerror(rc, &re, msg, sizeof(msg));
			return r3d_err_set(err, R3D_EINVAL, "'%s' is not a valid regular expression: %s",
					   value, msg);
		}
		regfree(&re);
	}
	r->nrules++;
	return true;
}

/* The line of key in section [section] of path (the section's header when
 * key is NULL), or 0: end-of-load checks point at it. */
static int section_key_line(const char *path, const char *section, const char *key)
{
	char line[4096];
	FILE *f = fopen(path, "r");
	int lineno = 0, found = 0, header = 0;
	bool inside = false;

	while (f != NULL && found == 0 && fgets(line, sizeof(line), f) != NULL) {
		char *p = line;
		lineno++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '[') {
			char *e = strchr(p, ']');
			inside = e != NULL && (size_t)(e - p - 1) == strlen(section) &&
				 strncmp(p + 1, section, strlen(section)) == 0;
			if (inside && header == 0)
				header = lineno;
			if (inside && key == NULL)
				found = lineno;
			continue;
		}
		if (!inside || key == NULL || p != line)
			continue;
		size_t n = strlen(key);
		if (strncmp(p, key, n) == 0 && (p[n] == ' ' || p[n] == '\t' || p[n] == '=' || p[n] == ':'))
			found = lineno;
	}
	if (f != NULL)
		fclose(f);
	return found != 0 ? found : header;
}

/* Each route's names, once every section is read: structures of the
 * catalogue, destinations, the engine. */
static bool routes_complete(struct r3d_err *err, const char *path, struct config *cfg)
{
	for (int i = 0; i <= cfg->nroutes; i++) {
		struct config_route *r = i < cfg->nroutes ? &cfg->routes[i] : &cfg->route_default;
		char section[64], buf[sizeof(r->structures)];
		char *save = NULL;
		snprintf(section, sizeof(section), "route %s", r->name);
		snprintf(buf, sizeof(buf), "%s", r->structures);
		for (char *t = strtok_r(buf, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
			if (structure_catalog_get(&cfg->structures, t) == NULL)
				return r3d_err_set(err, R3D_EINVAL, "%s:%d: [%s] structures: unknown "
						   "structure '%s' (`recon3d --check-config` lists "
						   "the catalogue)", path,
						   section_key_line(path, section, "structures"), section, t);
		}
		if (r->structures_set && r->structures[0] == '\0')
			return r3d_err_set(err, R3D_EINVAL, "%s:%d: [%s] structures: empty (series = ignore "
					   "makes nothing)", path, section_key_line(path, section, "structures"),
					   section);
		snprintf(buf, sizeof(buf), "%s", r->destination_names);
		r->destinations = 0;
		for (char *t = strtok_r(buf, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
			int d;
			if (strcmp(t, "none") == 0)
				continue;
			for (d = 0; d < cfg->ndestinations; d++)
				if (strcmp(cfg->destinations[d].name, t) == 0)
					break;
			if (d == cfg->ndestinations)
				return r3d_err_set(err, R3D_EINVAL, "%s:%d: [%s] destinations: no "
						   "[destination %s] section", path,
						   section_key_line(path, section, "destinations"), section, t);
			r->destinations |= 1u << d;
		}
		if (r->engine[0] != '\0' && config_engine_find(cfg, r->engine) == NULL)
			return r3d_err_set(err, R3D_EINVAL, "%s:%d: [%s] engine: no [engine %s] section",
					   path, section_key_line(path, section, "engine"), section, r->engine);
		if (r->webhook_url[0] != '\0' &&
		    (cfg->webhook_secret[0] != '\0') == (cfg->webhook_secret_file[0] != '\0'))
			return r3d_err_set(err, R3D_EINVAL, "%s:%d: [%s] webhook: needs [webhook] secret "
					   "or secret_file (messages are signed with it)", path,
					   section_key_line(path, section, "webhook"), section);
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* [token NAME] sections: bearer tokens of the HTTP API                */
/* ------------------------------------------------------------------ */

/* What the loader remembers of each [token NAME] section. */
struct token_seen {
	bool secret;        /* secret or secret_file given */
	bool role;
};

/* RFC 6750's b64token characters: a token needs no quoting in a header. */
static bool token_secret_valid(struct r3d_err *err, const char *s)
{
	size_t n = strlen(s);

	if (n < CONFIG_TOKEN_MIN)
		return r3d_err_set(err, R3D_EINVAL, "the token has %zu characters; give at least %d "
				   "(e.g. `openssl rand -hex 32`)", n, CONFIG_TOKEN_MIN);
	if (n >= sizeof(((struct config_token *)0)->secret))
		return r3d_err_set(err, R3D_EINVAL, "the token is longer than %zu characters",
				   sizeof(((struct config_token *)0)->secret) - 1);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("-._~+/=", c) != NULL))
			return r3d_err_set(err, R3D_EINVAL, "the token holds a character other than "
					   "letters, digits and - . _ ~ + / =");
	}
	return true;
}

bool config_token_file_read(struct r3d_err *err, const char *path, char *out, size_t size)
{
	char buf[CONFIG_TOKEN_FILE_MAX + 2];
	size_t len = 0;
	bool ok = false;

	out[0] = '\0';
	if (!read_secret_file(err, path, buf, sizeof(buf), &len))
		goto out;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	if (!token_secret_valid(err, buf)) {
		r3d_err_prefix(err, "'%s'", path);
		goto out;
	}
	if (len >= size) {
		r3d_err_set(err, R3D_EINVAL, "'%s': the token is too long", path);
		goto out;
	}
	memcpy(out, buf, len + 1);
	ok = true;
out:
	memset(buf, 0, sizeof(buf));
	return ok;
}

static bool token_set(struct r3d_err *err, struct config *cfg, struct token_seen *seen,
		      const char *tname, const char *key, const char *value)
{
	struct config_token *t = NULL;
	int i;

	if (!destination_name_valid(tname))
		return r3d_err_set(err, R3D_EINVAL, "'%s' is not a token name (letters, digits, - _ .)",
				   tname);
	for (i = 0; i < cfg->ntokens; i++) {
		if (strcmp(cfg->tokens[i].name, tname) == 0) {
			t = &cfg->tokens[i];
			break;
		}
	}
	if (t == NULL) {
		if (cfg->ntokens >= CONFIG_MAX_TOKENS)
			return r3d_err_set(err, R3D_EINVAL, "more than %d tokens", CONFIG_MAX_TOKENS);
		i = cfg->ntokens++;
		t = &cfg->tokens[i];
		memset(t, 0, sizeof(*t));
		memset(&seen[i], 0, sizeof(seen[i]));
		snprintf(t->name, sizeof(t->name), "%s", tname);
	}
	if (strcmp(key, "role") == 0) {
		if (seen[i].role)
			return r3d_err_set(err, R3D_EINVAL, "given twice");
		if (strcmp(value, "read") != 0 && strcmp(value, "admin") != 0)
			return r3d_err_set(err, R3D_EINVAL, "'%s': give read or admin", value);
		t->admin = value[0] == 'a';
		seen[i].role = true;
		return true;
	}
	if (strcmp(key, "secret") == 0 || strcmp(key, "secret_file") == 0) {
		if (seen[i].secret)
			return r3d_err_set(err, R3D_EINVAL, "give one of secret and secret_file, once");
		seen[i].secret = true;
		if (key[6] == '\0') {
			if (!token_secret_valid(err, value))
				return false;
			snprintf(t->secret, sizeof(t->secret), "%s", value);
			return true;
		}
		return config_token_file_read(err, value, t->secret, sizeof(t->secret));
	}
	return r3d_err_set(err, R3D_EINVAL, "unknown key (role, secret, secret_file)");
}

/* The line of the first [token NAME] header of path whose name is not one
 * of cfg's tokens (an empty section: inih never hands it over), or of name
 * when name is not NULL; 0 when there is none. A header is what inih takes
 * for one: '[' first on its line (after blanks), the name up to ']'. */
static int token_header(const char *path, const struct config *cfg, const char *name,
			char *found, size_t found_size)
{
	char line[1024];
	FILE *f = fopen(path, "r");
	int lineno = 0, at = 0;

	while (f != NULL && at == 0 && fgets(line, sizeof(line), f) != NULL) {
		char *p = line, *e;
		lineno++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '[' || strncmp(p + 1, "token ", 6) != 0)
			continue;
		p += 7;
		e = strchr(p, ']');
		if (e == NULL)
			continue;
		*e = '\0';
		if (name != NULL) {
			if (strcmp(p, name) == 0)
				at = lineno;
			continue;
		}
		bool known = false;
		for (int i = 0; i < cfg->ntokens; i++)
			known = known || strcmp(cfg->tokens[i].name, p) == 0;
		if (!known) {
			snprintf(found, found_size, "%s", p);
			at = lineno;
		}
	}
	if (f != NULL)
		fclose(f);
	return at;
}

/* Every [token NAME] section has its secret, and no two share one. */
static bool tokens_complete(struct r3d_err *err, const char *path, const struct config *cfg,
			    const struct token_seen *seen)
{
	char empty[256] = "";
	int line = token_header(path, cfg, NULL, empty, sizeof(empty));

	if (line > 0)
		return r3d_err_set(err, R3D_EINVAL, "%s:%d: [token %s]: give secret or secret_file",
				   path, line, empty);
	for (int i = 0; i < cfg->ntokens; i++) {
		const struct config_token *t = &cfg->tokens[i];
		line = token_header(path, cfg, t->name, NULL, 0);
		if (!seen[i].secret)
			return r3d_err_set(err, R3D_EINVAL, "%s:%d: [token %s]: give secret or secret_file",
					   path, line, t->name);
		for (int j = 0; j < i; j++) {
			if (strcmp(cfg->tokens[j].secret, t->secret) == 0)
				return r3d_err_set(err, R3D_EINVAL, "%s:%d: [token %s]: the same secret as "
						   "[token %s]; give each token its own", path, line,
						   t->name, cfg->tokens[j].name);
		}
	}
	return true;
}

static bool destinations_complete(struct r3d_err *err, const struct config *cfg)
{
	for (int i = 0; i < cfg->nengines; i++) {
		if (cfg->engines[i].argc == 0)
			return r3d_err_set(err, R3D_EINVAL, "[engine %s] command: missing",
					   cfg->engines[i].name);
	}
	if (cfg->import_engine[0] != '\0' && config_engine_find(cfg, cfg->import_engine) == NULL)
		return r3d_err_set(err, R3D_EINVAL, "[import] engine: no [engine %s] section",
				   cfg->import_engine);
	for (int i = 0; i < cfg->ndestinations; i++) {
		const struct config_destination *d = &cfg->destinations[i];
		const char *missing = d->ae_title[0] == '\0' ? "ae_title" :
				      d->host[0] == '\0' ? "host" : d->port == 0 ? "port" : NULL;
		if (missing != NULL)
			return r3d_err_set(err, R3D_EINVAL, "[destination %s] %s: missing", d->name,
					   missing);
	}
	if (cfg->dicom_port == 0 && cfg->dicom_tls_port == 0)
		return r3d_err_set(err, R3D_EINVAL, "[dicom] port and tls_port are both 0: no listener");
	if (cfg->dicom_port != 0 && cfg->dicom_port == cfg->dicom_tls_port)
		return r3d_err_set(err, R3D_EINVAL, "[dicom] tls_port: %d is port too", cfg->dicom_tls_port);
	if (cfg->dicom_tls_port != 0 &&
	    (cfg->dicom_tls_certificate[0] == '\0' || cfg->dicom_tls_private_key[0] == '\0'))
		return r3d_err_set(err, R3D_EINVAL, "[dicom] tls_port is set: give tls_certificate and "
				   "tls_private_key");
	if (cfg->dicom_tls_port != 0 && cfg->dicom_tls_verify_peer && cfg->dicom_tls_trusted[0] == '\0')
		return r3d_err_set(err, R3D_EINVAL, "[dicom] tls_verify_peer = true: give "
				   "tls_trusted_certificates (the CAs of the callers' certificates)");
	for (int i = 0; i < cfg->ndestinations; i++) {
		const struct config_destination *d = &cfg->destinations[i];
		if (d->tls && d->tls_trusted[0] == '\0' && cfg->dicom_tls_trusted[0] == '\0')
			return r3d_err_set(err, R3D_EINVAL, "[destination %s] tls = true: give "
					   "tls_trusted_certificates (the CA of its certificate), here or "
					   "in [dicom]", d->name);
		if (!d->tls && (d->tls_certificate[0] || d->tls_private_key[0] || d->tls_peer_subject[0]))
			return r3d_err_set(err, R3D_EINVAL, "[destination %s] tls_* keys without tls = true",
					   d->name);
	}
	if ((cfg->http_tls_certificate[0] != '\0') != (cfg->http_tls_private_key[0] != '\0'))
		return r3d_err_set(err, R3D_EINVAL, "[http] give both tls_certificate and tls_private_key, "
				   "or neither");
	if (cfg->webhook_url[0] != '\0' &&
	    (cfg->webhook_secret[0] != '\0') == (cfg->webhook_secret_file[0] != '\0'))
		return r3d_err_set(err, R3D_EINVAL, "[webhook] url is set: give exactly one of secret "
						   "and secret_file");
	if (cfg->viewer_enabled && cfg->http_port == 0)
		return r3d_err_set(err, R3D_EINVAL, "[viewer] enabled: needs the HTTP server ([http] port is 0)");
	if (cfg->retry_max_delay_s < cfg->retry_initial_delay_s)
		return r3d_err_set(err, R3D_EINVAL,
				   "[retry] max_delay_s: %d is less than initial_delay_s (%d)",
				   cfg->retry_max_delay_s, cfg->retry_initial_delay_s);
	return true;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

struct load_ctx {
	struct config *cfg;
	struct r3d_err *err;
	bool failed;
	struct structure_seen structures[STRUCTURE_MAX];
	struct token_seen tokens[CONFIG_MAX_TOKENS];
	char last_section[64];
	char last_name[64];
	int line;
};

static int load_handler(void *user, const char *section, const char *name, const char *value
#if INI_HANDLER_LINENO
			, int lineno
#endif
)
{
	struct load_ctx *ctx = user;
	const struct config_key *key;
	bool append;

#if INI_HANDLER_LINENO
	ctx->line = lineno;
#endif
	if (ctx->failed)
		return 0;
	if (strncmp(section, "structure ", 10) == 0) {
		if (!structure_set(ctx->err, ctx->cfg, ctx->structures, section + 10, name, value)) {
			ctx->failed = true;
			r3d_err_prefix(ctx->err, "[%s] %s", section, name);
			return 0;
		}
		return 1;
	}
	if (strncmp(section, "engine ", 7) == 0) {
		if (!engine_set(ctx->err, ctx->cfg, section + 7, name, value)) {
			ctx->failed = true;
			r3d_err_prefix(ctx->err, "[%s] %s", section, name);
			return 0;
		}
		return 1;
	}
	if (strncmp(section, "route ", 6) == 0) {
		if (!route_set(ctx->err, ctx->cfg, section + 6, name, value)) {
			ctx->failed = true;
			r3d_err_prefix(ctx->err, "[%s] %s", section, name);
			return 0;
		}
		return 1;
	}
	if (strncmp(section, "token ", 6) == 0) {
		if (!token_set(ctx->err, ctx->cfg, ctx->tokens, section + 6, name, value)) {
			ctx->failed = true;
			r3d_err_prefix(ctx->err, "[%s] %s", section, name);
			return 0;
		}
		return 1;
	}
	if (strncmp(section, "destination ", 12) == 0) {
		if (!destination_set(ctx->err, ctx->cfg, section + 12, name, value)) {
			ctx->failed = true;
			r3d_err_prefix(ctx->err, "[%s] %s", section, name);
			return 0;
		}
		return 1;
	}
	key = key_find(section, name);
	if (key == NULL) {
		ctx->failed = true;
		if (section[0] == '\0')
			r3d_err_set(ctx->err, R3D_EINVAL, "key '%s' is outside any [section]", name);
		else if (!section_known(section))
			r3d_err_set(ctx->err, R3D_EINVAL, "[%s] %s: unknown section [%s]", section, name,
				    section);
		else
			r3d_err_set(ctx->err, R3D_EINVAL, "[%s] %s: unknown key", section, name);
		return 0;
	}
	/* inih hands an indented continuation line over as the same key again. */
	append = strcmp(ctx->last_section, section) == 0 && strcmp(ctx->last_name, name) == 0;
	snprintf(ctx->last_section, sizeof(ctx->last_section), "%s", section);
	snprintf(ctx->last_name, sizeof(ctx->last_name), "%s", name);
	if (!key_set(ctx->err, key, value, ctx->cfg, append)) {
		ctx->failed = true;
		r3d_err_prefix(ctx->err, "[%s] %s", section, name);
		return 0;
	}
	return 1;
}

/* The [structure KEY] headers of path in file order, with their lines:
 * inih does not hand line numbers to the handler in Debian's build and
 * never calls it for a section with no keys, so the loader finds the
 * headers itself to point an error at its section, to see empty sections
 * and to refuse a structure given two sections. A header is what inih takes
 * for one: '[' first on its line (after blanks), the name up to ']'. */
struct structure_header {
	int line;
	char key[64];
};

static size_t structure_headers(const char *path, struct structure_header *h, size_t max)
{
	char line[1024];
	FILE *f = fopen(path, "r");
	size_t n = 0;
	int lineno = 0;

	while (f != NULL && n < max && fgets(line, sizeof(line), f) != NULL) {
		char *p = line, *e;
		lineno++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '[' || strncmp(p + 1, "structure ", 10) != 0)
			continue;
		p += 11;
		e = strchr(p, ']');
		if (e == NULL || (size_t)(e - p) >= sizeof(h[n].key))
			continue;   /* inih refuses the line, or no key fits: not ours */
		h[n].line = lineno;
		memcpy(h[n].key, p, (size_t)(e - p));
		h[n].key[e - p] = '\0';
		n++;
	}
	if (f != NULL)
		fclose(f);
	return n;
}

/* Each [structure KEY] section, once the keys are read: one section per
 * structure, a well-formed key even for an empty section, a new structure
 * with its range, and every entry the file touched consistent. */
static bool structures_complete(struct r3d_err *err, const char *path, struct config *cfg,
				struct load_ctx *ctx)
{
	static struct structure_header h[2 * STRUCTURE_MAX + 8];
	struct structure_catalog *c = &cfg->structures;
	size_t n = structure_headers(path, h, sizeof(h) / sizeof(h[0]));

	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < i; j++) {
			if (strcmp(h[i].key, h[j].key) == 0)
				return r3d_err_set(err, R3D_EINVAL, "%s:%d: [structure %s]: section "
						   "given twice (the first is at line %d); give each "
						   "structure one section", path,
						   h[i].line, h[i].key, h[j].line);
		}
		struct structure_def *d = structure_catalog_find(c, h[i].key);
		if (d == NULL) {
			/* A section with no keys: the handler never saw it. */
			if (!structure_key_valid(h[i].key))
				return r3d_err_set(err, R3D_EINVAL, "%s:%d: [structure %s]: '%s' is not a "
						   "structure key (1 to %d characters of a-z, 0-9 and _, "
						   "a letter first)", path, h[i].line, h[i].key, h[i].key,
						   STRUCTURE_KEY_MAX - 1);
			if (c->n == STRUCTURE_MAX)
				return r3d_err_set(err, R3D_EINVAL, "%s:%d: [structure %s]: more than %d "
						   "structures", path, h[i].line, h[i].key, STRUCTURE_MAX);
			d = &c->def[c->n++];
			structure_def_threshold(d, h[i].key);
			ctx->structures[d - c->def].line = 1;
		}
		if (ctx->structures[d - c->def].line != 0 && !structure_def_check(err, d))
			return r3d_err_prefix(err, "%s:%d: [structure %s]", path, h[i].line, h[i].key);
	}
	return true;
}

bool config_load(struct r3d_err *err, const char *path, struct config *cfg)
{
	struct load_ctx ctx;
	FILE *f;
	int rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = cfg;
	ctx.err = err;
	f = fopen(path, "r");
	if (f == NULL)
		return r3d_err_set(err, R3D_EIO, "cannot read config file '%s': %s", path,
				   strerror(errno));
	rc = ini_parse_file(f, load_handler, &ctx);
	fclose(f);
	if (ctx.failed)
		return r3d_err_prefix(err, "%s:%d", path, rc);
	if (rc != 0)
		return r3d_err_set(err, R3D_EINVAL, "%s:%d: syntax error (expected [section] or key = value)",
				   path, rc);
	if (!destinations_complete(err, cfg))
		return r3d_err_prefix(err, "%s", path);
	if (!structures_complete(err, path, cfg, &ctx))
		return false;
	if (!routes_complete(err, path, cfg))
		return false;
	if (!tokens_complete(err, path, cfg, ctx.tokens))
		return false;
	for (size_t n = strlen(cfg->viewer_base_url); n > 0 && cfg->viewer_base_url[n - 1] == '/';)
		cfg->viewer_base_url[--n] = '\0';
	return true;
}

/* ------------------------------------------------------------------ */
/* Checks that need the machine                                        */
/* ------------------------------------------------------------------ */

/* A folder we will write to must be a readable, writable directory, or not
 * exist yet under a parent we can write to. */
static bool check_dir(struct r3d_err *err, const char *what, const char *dir)
{
	struct stat st;
	char parent[PATH_MAX];

	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return r3d_err_set(err, R3D_EINVAL, "%s: '%s' is not a directory", what, dir);
		if (access(dir, R_OK | W_OK | X_OK) != 0)
			return r3d_err_set(err, R3D_EINVAL, "%s: '%s' is not readable and writable: %s",
					   what, dir, strerror(errno));
		return true;
	}
	if (errno != ENOENT)
		return r3d_err_set(err, R3D_EINVAL, "%s: cannot access '%s': %s", what, dir,
				   strerror(errno));
	/* Walk up to the first existing ancestor: it must let us create the rest. */
	snprintf(parent, sizeof(parent), "%s", dir);
	for (;;) {
		char *slash = strrchr(parent, '/');
		if (slash == NULL) {
			snprintf(parent, sizeof(parent), ".");
		} else if (slash == parent) {
			parent[1] = '\0';
		} else {
			*slash = '\0';
		}
		if (stat(parent, &st) == 0)
			break;
		if (errno != ENOENT || strcmp(parent, ".") == 0 || strcmp(parent, "/") == 0)
			return r3d_err_set(err, R3D_EINVAL, "%s: cannot access '%s': %s", what, parent,
					   strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return r3d_err_set(err, R3D_EINVAL, "%s: '%s' is not a directory", what, parent);
	if (access(parent, W_OK | X_OK) != 0)
		return r3d_err_set(err, R3D_EINVAL, "%s: cannot create '%s' in '%s': %s", what, dir,
				   parent, strerror(errno));
	return true;
}

/* True when prog is an executable file: as given when it holds a '/', else
 * in a folder of PATH (as execvp looks for it). */
static bool program_found(const char *prog)
{
	struct stat st;

	if (strchr(prog, '/') != NULL)
		return stat(prog, &st) == 0 && S_ISREG(st.st_mode) && access(prog, X_OK) == 0;
	const char *path = getenv("PATH");
	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path != '\0') {
		const char *colon = strchr(path, ':');
		size_t n = colon != NULL ? (size_t)(colon - path) : strlen(path);
		char full[PATH_MAX];
		if (snprintf(full, sizeof(full), "%.*s/%s", (int)n, n > 0 ? path : ".", prog) <
			    (int)sizeof(full) &&
		    stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
			return true;
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

bool config_check_paths(struct r3d_err *err, const struct config *cfg)
{
	char dbdir[PATH_MAX];
	char *slash;

	if (!check_dir(err, "[storage] dir", cfg->storage_dir) ||
	    !check_dir(err, "[storage] results", cfg->results_dir))
		return false;
	snprintf(dbdir, sizeof(dbdir), "%s", cfg->database);
	slash = strrchr(dbdir, '/');
	if (slash == NULL)
		snprintf(dbdir, sizeof(dbdir), ".");
	else if (slash == dbdir)
		dbdir[1] = '\0';
	else
		*slash = '\0';
	if (!check_dir(err, "[storage] database", dbdir))
		return false;
	struct stat st;
	if (stat(cfg->database, &st) == 0 &&
	    (!S_ISREG(st.st_mode) || access(cfg->database, R_OK | W_OK) != 0))
		return r3d_err_set(err, R3D_EINVAL, "[storage] database: '%s' is not a readable, writable file",
				   cfg->database);
	const struct {
		const char *what, *path;
	} files[] = {
		{"[dicom] tls_certificate", cfg->dicom_tls_certificate},
		{"[dicom] tls_private_key", cfg->dicom_tls_private_key},
		{"[dicom] tls_trusted_certificates", cfg->dicom_tls_trusted},
		{"[http] tls_certificate", cfg->http_tls_certificate},
		{"[http] tls_private_key", cfg->http_tls_private_key},
		{"[webhook] ca_file", cfg->webhook_ca_file},
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (files[i].path[0] != '\0' && access(files[i].path, R_OK) != 0)
			return r3d_err_set(err, R3D_EINVAL, "%s: cannot read '%s': %s", files[i].what,
					   files[i].path, strerror(errno));
	}
	for (int i = 0; i < cfg->ndestinations; i++) {
		const struct config_destination *d = &cfg->destinations[i];
		const char *paths[] = {d->tls_certificate, d->tls_private_key, d->tls_trusted};
		for (int k = 0; k < 3; k++)
			if (paths[k][0] != '\0' && access(paths[k], R_OK) != 0)
				return r3d_err_set(err, R3D_EINVAL, "[destination %s] cannot read '%s': %s",
						   d->name, paths[k], strerror(errno));
	}
	for (int i = 0; i < cfg->nengines; i++) {
		const struct config_engine *e = &cfg->engines[i];
		if (!program_found(e->words + e->argoff[0]))
			return r3d_err_set(err, R3D_EINVAL, "[engine %s] command: '%s' is not an executable "
					   "file (nor found on PATH)", e->name, e->words + e->argoff[0]);
		if (e->label_table[0] != '\0' && access(e->label_table, R_OK) != 0)
			return r3d_err_set(err, R3D_EINVAL, "[engine %s] label_table: cannot read '%s'",
					   e->name, e->label_table);
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Sample config and caller policy                                     */
/* ------------------------------------------------------------------ */

void config_write_sample(FILE *out)
{
	const char *section = "";

	fprintf(out, "# recon3d configuration: every key, its default and what it does.\n"
		     "# Generated by `recon3d --print-default-config`; check a file with\n"
		     "# `recon3d -c FILE --check-config`. Relative paths start at the working\n"
		     "# directory. A list may go on over indented lines.\n");
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		const struct config_key *k = &config_keys[i];
		if (strcmp(section, k->section) != 0) {
			section = k->section;
			fprintf(out, "\n[%s]\n", section);
		}
		fprintf(out, "# %s", k->comment);
		if (k->type == KEY_INT || k->type == KEY_LONG || k->type == KEY_DOUBLE)
			fprintf(out, " (%ld to %ld)", k->min, k->max);
		fprintf(out, "\n%s = %s\n", k->name, k->def);
	}
	fprintf(out, "\n# One section per PACS that receives the results (none by default):\n"
		     "# [destination pacs]\n"
		     "# ae_title = PACS              (its AE title)\n"
		     "# host = pacs.hospital.local\n"
		     "# port = 104\n"
		     "# calling_ae_title = RECON3D    (default: [dicom] ae_title)\n"
		     "# tls = false                   (true: DICOM TLS, the [dicom] tls_profile; the PACS's\n"
		     "#                                certificate is verified against tls_trusted_certificates)\n"
		     "# tls_trusted_certificates =     (default: [dicom] tls_trusted_certificates)\n"
		     "# tls_certificate =  tls_private_key =   (client certificate; default: [dicom]'s)\n"
		     "# tls_peer_subject =             (the PACS certificate's subject must equal this, RFC 2253)\n"
		     "# connect_timeout_s = %d  acse_timeout_s = %d  dimse_timeout_s = %d\n",
		DEST_DEFAULT_CONNECT_S, DEST_DEFAULT_ACSE_S, DEST_DEFAULT_DIMSE_S);
	fprintf(out, "\n# Routing profiles (docs/routing.md): one model set per study, on its best\n"
		     "# series; [route NAME] sections, tried in file order, pick by DICOM attributes\n"
		     "# (POSIX regular expressions, case-insensitive), calling or called AE title,\n"
		     "# and set what is made; unset keys keep the node's own settings. Check a\n"
		     "# study folder with `recon3d -c FILE --explain-route DIR`. Example:\n"
		     "# [route kidney]\n"
		     "# StudyDescription = kidney|renal    (also Modality, BodyPartExamined, SeriesDescription,\n"
		     "#                                     SliceThickness = 0.5..2, ConvolutionKernel,\n"
		     "#                                     ContrastBolusAgent = present|absent, Manufacturer, ImageType)\n"
		     "# called_ae = RECON3D_KIDNEY         (accepted as one of ours; calling_ae = SENDERS...)\n"
		     "# series = best                      (best, all or ignore)\n"
		     "# structures = vessels               (catalogue keys)\n"
		     "# destinations = pacs                (or none; default: all)\n"
		     "# webhook = https://urology.hospital.local/hook   (or none; default: [webhook] url)\n"
		     "# engine = totalseg                  (or none; default: [import] engine)\n"
		     "# engine_models = with\n"
		     "# distances = kidney:vessels       (structure pairs measured; default: [print] distances)\n"
		     "# [route default]                    (what matched no route: no rules)\n"
		     "# series = ignore\n");
	fprintf(out, "\n# External segmentation engines: one [engine NAME] section each; [import]\n"
		     "# engine = NAME sends every CT job to it (docs/import.md). The command runs\n"
		     "# without a shell; {input} is the series' DICOM folder, {output} the folder\n"
		     "# it must write one NIfTI label map, DICOM Segmentation or RT Structure Set\n"
		     "# into. Example (TotalSegmentator; label_table empty: its class names):\n"
		     "# [engine totalseg]\n"
		     "# command = /opt/totalseg/bin/TotalSegmentator -i {input} -o {output}/labels.nii.gz --ml\n"
		     "# input = dicom        (or nifti: {input} is the series' volume as one .nii file)\n"
		     "# label_table =\n"
		     "# timeout_s = %d\n"
		     "# concurrency = 1\n",
		ENGINE_DEFAULT_TIMEOUT_S);
	fprintf(out, "\n# Bearer tokens of the HTTP API (/status and /api/; docs/api.md): one\n"
		     "# [token NAME] section each, role = read (GET only) or admin (also the\n"
		     "# changes: retry, cancel, re-run, outbox retry and drop). The token is at\n"
		     "# least %d characters of letters, digits and - . _ ~ + / =; secret_file\n"
		     "# (read at start, its trailing newline dropped) keeps it out of this file.\n"
		     "# Without any [token] section recon3d makes one admin token at start, in\n"
		     "# the file api-token next to [storage] database (mode 0600), and logs where.\n"
		     "# /healthz, /metrics and the 3D page (/viewer/<link>) need no token.\n"
		     "# [token monitoring]\n"
		     "# role = read\n"
		     "# secret_file = /etc/recon3d/monitoring.token\n"
		     "# [token pacs-admin]\n"
		     "# role = admin\n"
		     "# secret = 6f1c0e...   (openssl rand -hex 32)\n",
		CONFIG_TOKEN_MIN);
	fprintf(out, "\n# The structure catalogue: one section per structure. The built-in presets\n"
		     "# follow; change a key, or switch one off with enabled = false. A new\n"
		     "# [structure KEY] section adds a structure of the voxels in [min_hu, max_hu]\n"
		     "# (either end may be left out; components of at least 27 voxels), meshed\n"
		     "# through the CT's grey-level crossing; unset keys take a site structure's\n"
		     "# defaults (label = KEY, grey, Tissue/Tissue, 600000 triangles). Example:\n"
		     "# [structure dense_bone]\n"
		     "# label = dense bone\n"
		     "# min_hu = 700\n"
		     "# color = #f0e6c8\n"
		     "# category = 85756007^SCT^Tissue\n"
		     "# type = 3138006^SCT^Bone\n"
		     "# max_triangles = 400000\n");
	struct structure_catalog c;
	structure_catalog_default(&c);
	structure_catalog_write_config(out, &c);
}

bool config_called_ae_ours(const struct config *cfg, const char *called_ae)
{
	if (strcmp(called_ae, cfg->ae_title) == 0)
		return true;
	for (int i = 0; i < cfg->nroutes; i++) {
		for (int j = 0; j < cfg->routes[i].ncalled; j++)
			if (strcmp(cfg->routes[i].called_ae[j], called_ae) == 0)
				return true;
	}
	return false;
}

bool config_caller_allowed(const struct config *cfg, const char *calling_ae, const char *peer_host)
{
	if (cfg->any_caller)
		return true;
	for (int i = 0; i < cfg->ncallers; i++) {
		const struct config_caller *c = &cfg->callers[i];
		if (strcmp(c->ae_title, calling_ae) != 0)
			continue;
		if (strcmp(c->host, "*") == 0)
			return true;
		for (int j = 0; j < c->naddrs; j++) {
			if (strcmp(c->addrs[j], peer_host) == 0)
				return true;
		}
	}
	return false;
}
