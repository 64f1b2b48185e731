/*
 * config.h: recon3d's configuration: one INI file, every key in one table
 * (name, default, bounds, validator, one-line comment) that also generates
 * the documented sample conf/recon3d.conf. Loaded once by the main thread
 * before any other thread starts; read-only afterwards.
 */
#ifndef R3D_CONFIG_H
#define R3D_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

#include "r3d/err.h"
#include "r3d/log.h"
#include "r3d/structure.h"

#define CONFIG_AE_MAX 16
#define CONFIG_HOST_MAX 256
#define CONFIG_MAX_CALLERS 256
#define CONFIG_MAX_CALLER_ADDRS 8
#define CONFIG_MAX_DESTINATIONS 16
#define CONFIG_NAME_MAX 32
#define CONFIG_MAX_ENGINES 8
#define CONFIG_ENGINE_MAX_ARGS 64
#define CONFIG_MAX_ROUTES 32
#define CONFIG_ROUTE_MAX_RULES 16
#define CONFIG_ROUTE_MAX_AES 8
#define CONFIG_ROUTE_PATTERN_MAX 256
#define CONFIG_MAX_TOKENS 16

/* One allowed calling AE title and the numeric addresses it may come from. */
struct config_caller {
	char ae_title[CONFIG_AE_MAX + 1];
	char host[CONFIG_HOST_MAX];   /* as written, or "*" for any host */
	int naddrs;
	char addrs[CONFIG_MAX_CALLER_ADDRS][64];
};

/* DICOM TLS security profiles DCMTK offers (PS3.15 B.9 to B.11). */
enum config_tls_profile {
	CONFIG_TLS_BCP195_ND,        /* Non-downgrading BCP 195: TLS 1.2+, AES-GCM, (EC)DHE */
	CONFIG_TLS_BCP195_EXTENDED,  /* Extended BCP 195: TLS 1.2 only, adds ECDSA */
	CONFIG_TLS_BCP195,           /* BCP 195 with fall-back to TLS 1.0 and older suites */
	CONFIG_TLS_NPROFILES
};
const char *config_tls_profile_name(enum config_tls_profile p);

/* One [destination NAME] section: a PACS that receives the results. */
struct config_destination {
	char name[CONFIG_NAME_MAX + 1];
	char ae_title[CONFIG_AE_MAX + 1];
	char host[CONFIG_HOST_MAX];
	int port;
	char calling_ae_title[CONFIG_AE_MAX + 1];   /* "" : [dicom] ae_title */
	int connect_timeout_s, acse_timeout_s, dimse_timeout_s;
	bool tls;                                  /* DICOM TLS to this PACS */
	char tls_certificate[PATH_MAX];            /* our client certificate; "": [dicom]'s */
	char tls_private_key[PATH_MAX];
	char tls_trusted[PATH_MAX];                /* CAs of its certificate; "": [dicom]'s */
	char tls_peer_subject[512];                /* "": any subject the CAs vouch for */
};

/* One [engine NAME] section: an external segmentation command (issue 11).
 * The command is split into words here, once; {input} and {output} are the
 * only placeholders, replaced by folder paths recon3d makes: no DICOM value
 * ever reaches the command line, and no shell runs it. */
struct config_engine {
	char name[CONFIG_NAME_MAX + 1];
	char command[4096];                    /* as written */
	int argc;
	int argoff[CONFIG_ENGINE_MAX_ARGS];    /* word i starts at words + argoff[i] */
	char words[4096];                      /* the words, each NUL-terminated */
	char label_table[PATH_MAX];            /* for a label map: JSON table; "": TotalSegmentator */
	bool input_nifti;                      /* {input}: the series' volume as one .nii file */
	int timeout_s;
	int concurrency;
};

/* What a [route NAME] rule reads: one DICOM attribute of the study or series
 * (its keyword is the rule's key). Patient data cannot be matched. */
enum route_attr {
	ROUTE_ATTR_MODALITY,
	ROUTE_ATTR_BODY_PART,            /* BodyPartExamined */
	ROUTE_ATTR_STUDY_DESCRIPTION,
	ROUTE_ATTR_SERIES_DESCRIPTION,
	ROUTE_ATTR_SLICE_THICKNESS,      /* a range: MIN..MAX in mm */
	ROUTE_ATTR_KERNEL,               /* ConvolutionKernel */
	ROUTE_ATTR_CONTRAST,             /* ContrastBolusAgent: present, absent or a pattern */
	ROUTE_ATTR_MANUFACTURER,
	ROUTE_ATTR_IMAGE_TYPE,
	ROUTE_NATTRS
};

/* One match rule: a POSIX extended regular expression, case-insensitive,
 * found anywhere in the value unless anchored; or a range; or presence. */
struct config_route_rule {
	enum route_attr attr;
	char pattern[CONFIG_ROUTE_PATTERN_MAX];   /* as written */
	double lo, hi;                             /* ROUTE_ATTR_SLICE_THICKNESS */
	int presence;                              /* 0 pattern, 1 present, -1 absent */
	int line;
};

enum route_policy { ROUTE_BEST, ROUTE_ALL, ROUTE_IGNORE };

/* One [route NAME] section (issue 12): which series of a study it takes
 * (its rules, all of which must hold, and its AE titles), and what it makes
 * of them. An unset selection falls back to the node's own settings. */
struct config_route {
	char name[CONFIG_NAME_MAX + 1];
	int line;                                  /* of its [route NAME] header */
	int nrules;
	struct config_route_rule rules[CONFIG_ROUTE_MAX_RULES];
	int ncalling, ncalled;                     /* 0: any */
	char calling_ae[CONFIG_ROUTE_MAX_AES][CONFIG_AE_MAX + 1];
	char called_ae[CONFIG_ROUTE_MAX_AES][CONFIG_AE_MAX + 1];
	enum route_policy policy;                  /* series = best | all | ignore */
	bool structures_set;                       /* else every enabled structure */
	char structures[2048];                     /* catalogue keys, space separated */
	bool destinations_set;                     /* else every destination */
	char destination_names[512];               /* as written; "none": no destination */
	unsigned destinations;                     /* bit d: destinations[d] */
	bool webhook_set;                          /* else [webhook] url */
	char webhook_url[4096];                    /* "" : none */
	bool engine_set;                           /* else [import] engine */
	char engine[CONFIG_NAME_MAX + 1];          /* "" : none */
	bool engine_instead;
	bool distances_set;                        /* else [print] distances */
	char distances[STRUCTURE_PAIRS_TEXT_MAX];  /* structure pairs, "a:b, c:d" */
};

/* One [token NAME] section: a bearer token of the HTTP API. */
struct config_token {
	char name[CONFIG_NAME_MAX + 1];
	bool admin;                                /* role = admin; else read */
	char secret[256];                          /* the token itself */
};

#define CONFIG_TOKEN_MIN 32        /* characters of a token, at least */
#define CONFIG_TOKEN_FILE_MAX 512  /* bytes of a token file, at most */

/* Reads a token file (secret_file, or the daemon's own api-token): one
 * token of at least CONFIG_TOKEN_MIN characters of letters, digits and
 * - . _ ~ + / =, its trailing newline dropped, into out (size bytes). */
bool config_token_file_read(struct r3d_err *err, const char *path, char *out, size_t size);

struct config {
	/* [dicom] */
	char ae_title[CONFIG_AE_MAX + 1];
	char dicom_bind[CONFIG_HOST_MAX];
	int dicom_port;
	int max_associations;
	bool any_caller;
	int ncallers;
	struct config_caller callers[CONFIG_MAX_CALLERS];
	int max_pdu;
	int idle_timeout_s;
	int dicom_tls_port;                        /* 0: no TLS listener */
	char dicom_tls_certificate[PATH_MAX];
	char dicom_tls_private_key[PATH_MAX];
	char dicom_tls_trusted[PATH_MAX];          /* a PEM file or a hashed folder */
	bool dicom_tls_verify_peer;
	enum config_tls_profile dicom_tls_profile;
	int shutdown_grace_s;
	/* [storage] */
	char storage_dir[PATH_MAX];
	char database[PATH_MAX];
	char results_dir[PATH_MAX];
	long min_free_mb;
	bool fsync;
	/* [pipeline] */
	int stable_seconds;
	int workers;
	int min_slices;
	long preload_mb;            /* [pipeline] preload_mb: 0 = no pre-loader */
	double mesh_max_error_mm;   /* [mesh] max_decimation_error_mm */
	double mesh_error_target_mm; /* [mesh] error_target_mm */
	/* [http] */
	char http_bind[CONFIG_HOST_MAX];
	int http_port;
	char http_tls_certificate[PATH_MAX];       /* both set: HTTPS */
	char http_tls_private_key[PATH_MAX];
	/* [log] */
	enum log_level log_level;
	/* [export] */
	bool export_surface_segmentation;
	bool export_stl;
	bool export_preview;
	int export_preview_size;
	bool export_segmentation;
	/* [import] */
	bool import_enabled;
	int import_wait_for_source_s;
	bool import_send_segmentation;
	char import_engine[CONFIG_NAME_MAX + 1];   /* "" : none */
	bool import_engine_instead;               /* engine = ...; engine_models = instead */
	/* [print] (issue 14: docs/printing.md) */
	double print_min_wall_mm;     /* thinner walls are flagged */
	double print_min_shell_ml;    /* loose shells below this ... */
	bool print_drop_loose_shells; /* ... are dropped from the model */
	char print_distances[STRUCTURE_PAIRS_TEXT_MAX];  /* "a:b, c:d"; "": none */
	/* [viewer] */
	bool viewer_enabled;
	int viewer_link_ttl_days;
	char viewer_base_url[1024];   /* no trailing slash; "" : http://<http bind>:<http port> */
	/* [webhook] */
	char webhook_url[4096];       /* one or more URLs, space separated; "" : none */
	char webhook_secret[256];
	char webhook_secret_file[PATH_MAX];
	bool webhook_include_patient_name;
	char webhook_ca_file[PATH_MAX];            /* "": the system's CAs */
	bool webhook_tls_insecure;
	int webhook_timeout_s;
	/* [retry] */
	int retry_initial_delay_s;
	int retry_max_delay_s;
	int retry_max_attempts;
	/* [structure KEY]: the structure catalogue (built-in presets changed,
	 * switched off, or site structures added) */
	struct structure_catalog structures;
	/* [destination NAME] */
	int ndestinations;
	struct config_destination destinations[CONFIG_MAX_DESTINATIONS];
	/* [engine NAME] */
	int nengines;
	struct config_engine engines[CONFIG_MAX_ENGINES];
	/* [route NAME], in file order, then the fallback: route_default, named
	 * "default" ([route default] sets it; else the node's own settings) */
	int nroutes;
	struct config_route routes[CONFIG_MAX_ROUTES];
	struct config_route route_default;
	/* [token NAME] */
	int ntokens;
	struct config_token tokens[CONFIG_MAX_TOKENS];
};

/* The DICOM keyword of a rule's attribute ("Modality", ...). */
const char *config_route_attr_keyword(enum route_attr a);

/* The route called name (the fallback is "default"), or NULL. */
const struct config_route *config_route_find(const struct config *cfg, const char *name);

/* The engine called name, or NULL. */
const struct config_engine *config_engine_find(const struct config *cfg, const char *name);

/* Fills cfg with the embedded defaults. */
void config_defaults(struct config *cfg);

/* Loads path on top of the defaults. Fails naming the line, section and key,
 * and the reason: unknown key, bad value, unreadable file; for a [structure
 * KEY] section also a key given twice and an entry structure_def_check()
 * refuses (a range with min above max or outside the CT's range, a
 * malformed colour or code, a budget of 0), at the section's first line. */
bool config_load(struct r3d_err *err, const char *path, struct config *cfg);

/* Checks what can only be checked on this machine: the storage folder and
 * the database folder exist (or can be created) and are readable and
 * writable. Creates nothing. */
bool config_check_paths(struct r3d_err *err, const struct config *cfg);

/* Writes the documented sample config (every key, default, comment). */
void config_write_sample(FILE *out);

/* True when called_ae is one of ours: [dicom] ae_title or a route's called_ae. */
bool config_called_ae_ours(const struct config *cfg, const char *called_ae);

/* True when a calling AE title from peer_host may associate. */
bool config_caller_allowed(const struct config *cfg, const char *calling_ae, const char *peer_host);

#endif
