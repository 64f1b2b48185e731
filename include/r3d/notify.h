/*
 * notify.h: the signed webhook that tells the surgeon's systems a study is
 * finished (issue 4, item 4).
 *
 * Four steps, each usable alone:
 *   1. notify_message_build(): a plain struct describing the finished study
 *      becomes a JSON body (schema below) and a message id.
 *   2. notify_sign(): the Standard Webhooks v1 signature, HMAC-SHA256 over
 *      "<id>.<timestamp>.<body>" with the key of a `whsec_<base64>` secret.
 *   3. notify_post(): one HTTP POST attempt with libcurl, classified as
 *      delivered, retry later (R3D_ENET) or failed for good (R3D_EREFUSED,
 *      R3D_EINVAL), every detail of the attempt in a struct notify_attempt.
 *   4. notify_backoff_next(): the pure delay before the next attempt.
 * Nothing here touches SQLite or sleeps: the caller stores the message (id and
 * body) and each attempt in its own rows and schedules the next attempt.
 *
 * Threads: notify_global_init() runs once in main() before any thread starts
 * (it calls curl_global_init()); notify_global_cleanup() once after they have
 * all stopped. Everything else is thread-safe: notify_post() makes its own
 * curl handle per call and never shares it.
 *
 * ---- JSON body (type "study.finished", schema_version 1) -------------------
 *
 * Compact JSON, ASCII only (other characters as \uXXXX), keys in this order,
 * the same bytes for the same input (so the id is stable, see below):
 *
 * {
 *   "type": "study.finished",
 *   "timestamp": "2026-11-22T19:40:05Z",          finished_at, UTC, seconds
 *   "data": {
 *     "schema_version": 1,
 *     "study_instance_uid": "1.2.840...",
 *     "accession_number": "A123" | null,          null when absent or empty
 *     "patient_name": "DOE^JANE",                 ONLY with include_patient_name
 *     "outcome": "complete" | "partial" | "failed",
 *     "viewer_url": "https://.../viewer/<token>", ONLY with [viewer] enabled and
 *                                                 at least one series done: the
 *                                                 study's 3D page (a capability:
 *                                                 whoever has it sees the models)
 *     "node": {"ae_title": "RECON3D", "version": "0.1.0"},   ae_title if given
 *     "received_at": "2026-11-22T19:39:51Z",      if known (last instance stored)
 *     "finished_at": "2026-11-22T19:40:05Z",
 *     "seconds": {"processing": 8.412, "delivery": 3.1, "total": 14.0},
 *                                                 each key only if known; total
 *                                                 is finished_at - received_at
 *     "series": [
 *       {"series_instance_uid": "1.2.840...",
 *        "outcome": "done" | "failed" | "skipped",
 *        "reason": "fewer than 10 slices",        only if given and not done
 *        "seconds": {"volume": 0.61, "segment": 1.9, "mesh": 2.3, "export": 0.4},
 *                                                 each key only if known
 *        "structures": [
 *          {"name": "bone", "label": "bone",       name: the catalogue key;
 *           "code": {"value": "3138006",           label, code: if known (the
 *                    "scheme": "SCT", "meaning": "Bone"},  Segmented Property Type)
 *           "triangles": 251234, "volume_ml": 812.44,
 *           "print": {"printable": true, "thin_wall": false,   if analysed
 *                     "min_wall_mm": 1.82 | null, "shells": 1,  (docs/printing.md)
 *                     "self_intersections": 0}}],
 *        "distances": [{"a": "tumour", "b": "artery", "mm": 4.21}]}],
 *                                                 if any pair was measured
 *     "destinations": [
 *       {"name": "pacs", "ae_title": "ORTHANC",   ae_title if given
 *        "delivered": 12, "failed": 0}]           objects each destination got
 *   }
 * }
 *
 * Seconds are rounded to the millisecond, volumes to 0.01 mL. No patient ID,
 * birth date or other patient attribute is ever sent; the patient name only
 * when include_patient_name is true (config `[webhook] include_patient_name`,
 * default false). Strings that are not valid UTF-8 are sent with every
 * non-ASCII byte replaced by '?'.
 *
 * ---- Message id -------------------------------------------------------------
 *
 * "msg_" followed by 32 lowercase hex digits: the first 16 bytes of the
 * SHA-256 of the body. The same body always gets the same id, so a retry of
 * the stored message, or a body rebuilt from the same index rows, carries the
 * same webhook-id and the receiver can deduplicate; a different event
 * (another finished_at) gets another id. A caller may put its own id in
 * msg->id instead (characters [A-Za-z0-9_-] only, never '.').
 *
 * ---- Secrets ----------------------------------------------------------------
 *
 * Standard Webhooks serialises a symmetric secret as `whsec_` followed by the
 * base64 of 24 to 64 random bytes; the HMAC key is the decoded bytes, not the
 * text. notify_secret_parse() strips the prefix and decodes the rest (padded
 * or unpadded standard base64). A secret WITHOUT the prefix is decoded as
 * base64 as well, exactly as the reference libraries do (their Webhook("...")
 * accepts both forms), so a receiver configured with the same string verifies.
 * A secret that is not base64, or decodes to fewer than 24 or more than 64
 * bytes, is refused (R3D_EINVAL) rather than used as raw text bytes: a
 * receiver using a Standard Webhooks library would decode it and never
 * verify. Make one with:  printf 'whsec_%s\n' "$(openssl rand -base64 32)"
 */
#ifndef R3D_NOTIFY_H
#define R3D_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- bounds ---------------------------------------------------------------- */

#define NOTIFY_MAX_SERIES 256          /* series in one message */
#define NOTIFY_MAX_STRUCTURES 256      /* structures in one series (STRUCTURE_MAX) */
#define NOTIFY_MAX_DISTANCES 16        /* distances in one series (STRUCTURE_PAIRS_MAX) */
#define NOTIFY_MAX_DESTINATIONS 64     /* destinations in one message */
#define NOTIFY_MAX_STRING 1024         /* bytes of any one string field */
#define NOTIFY_BODY_MAX (1024 * 1024)  /* bytes of the JSON body */
#define NOTIFY_ID_MAX 64               /* bytes of a message id, with the NUL */
#define NOTIFY_SIGNATURE_MAX 64        /* bytes of "v1,<base64>", with the NUL */
#define NOTIFY_SECRET_MIN_BYTES 24     /* decoded key, Standard Webhooks minimum */
#define NOTIFY_SECRET_MAX_BYTES 64     /* decoded key, Standard Webhooks maximum */
#define NOTIFY_SECRET_TEXT_MAX 256     /* bytes of a secret as written in a file */
#define NOTIFY_URL_MAX 2048            /* bytes of a webhook URL */
#define NOTIFY_TIMEOUT_MS_DEFAULT 15000        /* whole request (spec: 15 to 30 s) */
#define NOTIFY_CONNECT_TIMEOUT_MS_DEFAULT 5000 /* TCP + TLS connect */
#define NOTIFY_TIMEOUT_MS_MAX 300000
#define NOTIFY_BACKOFF_MAX_ATTEMPTS 1000
#define NOTIFY_BACKOFF_MAX_DELAY_S (7.0 * 24 * 3600)

/* ---- global ---------------------------------------------------------------- */

/* curl_global_init(). Once, in main(), before any thread starts. */
bool notify_global_init(struct r3d_err *err);
/* curl_global_cleanup(). Once, after every thread that posts has stopped. */
void notify_global_cleanup(void);

/* ---- the message ----------------------------------------------------------- */

enum notify_outcome {
	NOTIFY_COMPLETE = 0, /* every series done and every object delivered */
	NOTIFY_PARTIAL,      /* some series or objects failed, some made it */
	NOTIFY_FAILED,       /* nothing reached any destination */
};

enum notify_series_outcome {
	NOTIFY_SERIES_DONE = 0,
	NOTIFY_SERIES_FAILED,
	NOTIFY_SERIES_SKIPPED,
};

struct notify_structure {
	const char *name;     /* the catalogue key: "bone", "skin", ... */
	const char *label;    /* its display name; NULL: none given */
	const char *code_value, *code_scheme, *code_meaning;  /* Segmented Property Type;
							       * all NULL: none */
	uint64_t triangles;
	double volume_ml;     /* finite, >= 0 */
	/* Print readiness (report.json "print", docs/printing.md); has_print
	 * false leaves the key out (a report from before the analysis). */
	bool has_print;
	bool printable, thin_wall;
	double min_wall_mm;   /* NAN: none measured (null) */
	uint32_t shells;
	uint64_t self_intersections;
};

/* The shortest distance between two structures' surfaces (report.json
 * "distances"). */
struct notify_distance {
	const char *a, *b;    /* catalogue keys */
	double mm;            /* finite, >= 0 */
};

/* Per-stage wall seconds of the series' job; a negative value is "unknown"
 * and leaves the key out. */
struct notify_stage_seconds {
	double volume, segment, mesh, exporting;
};

struct notify_series {
	const char *series_uid;
	enum notify_series_outcome outcome;
	const char *reason;   /* NULL, or our one-line reason (no patient data) */
	const struct notify_structure *structures;
	size_t nstructures;
	struct notify_stage_seconds seconds;
	const struct notify_distance *distances;   /* "distances", left out when none */
	size_t ndistances;
};

struct notify_destination {
	const char *name;     /* the [destination NAME] of the config */
	const char *ae_title; /* NULL to leave out */
	uint32_t delivered;   /* objects stored at this destination */
	uint32_t failed;      /* objects that finally failed there */
};

/* A finished study. Plain data, owned by the caller; nothing is kept. */
struct notify_study {
	const char *study_uid;         /* required */
	const char *accession_number;  /* NULL or "" when absent */
	const char *patient_name;      /* sent only with include_patient_name */
	const char *viewer_url;        /* the study's 3D page; NULL or "" to leave out */
	enum notify_outcome outcome;
	double received_at;            /* wall seconds since the epoch; <= 0 unknown */
	double finished_at;            /* wall seconds since the epoch; required */
	double processing_s;           /* < 0 unknown */
	double delivery_s;             /* < 0 unknown */
	const struct notify_series *series;
	size_t nseries;
	const struct notify_destination *destinations;
	size_t ndestinations;
};

struct notify_options {
	bool include_patient_name;     /* [webhook] include_patient_name */
	const char *node_ae_title;     /* this node's AE title, NULL to leave out */
};

/* A message ready to send: plain struct, caller-owned. */
struct notify_message {
	char id[NOTIFY_ID_MAX];
	char *body;                    /* NUL-terminated JSON */
	size_t body_len;               /* strlen(body) */
};

/* Builds the JSON body and id of `study` (schema above). opt may be NULL (no
 * patient name, no AE title). R3D_EINVAL for input out of bounds or missing
 * required fields, R3D_ENOMEM. On success the caller owns out->body and frees
 * it with notify_message_free(); on failure *out is empty. */
bool notify_message_build(struct r3d_err *err, const struct notify_study *study,
			  const struct notify_options *opt, struct notify_message *out);

/* Frees msg->body (NULL is fine) and empties msg. */
void notify_message_free(struct notify_message *msg);

/* The message id of a body ("msg_" + 32 hex digits, see above) into out. */
bool notify_message_id(struct r3d_err *err, const char *body, size_t body_len,
		       char out[NOTIFY_ID_MAX]);

const char *notify_outcome_name(enum notify_outcome outcome);
const char *notify_series_outcome_name(enum notify_series_outcome outcome);

/* ---- signing --------------------------------------------------------------- */

/* A decoded HMAC key. Plain struct; clear it with notify_secret_clear(). */
struct notify_secret {
	unsigned char key[NOTIFY_SECRET_MAX_BYTES];
	size_t len;
};

/* Parses "whsec_<base64>" (or bare base64, see above); surrounding white
 * space is ignored. R3D_EINVAL with a reason that never quotes the secret. */
bool notify_secret_parse(struct r3d_err *err, const char *text, struct notify_secret *out);

/* Reads a secret file (config `secret_file`): one secret, as above, at most
 * NOTIFY_SECRET_TEXT_MAX bytes, trailing newline allowed. R3D_EIO, R3D_EINVAL. */
bool notify_secret_read_file(struct r3d_err *err, const char *path, struct notify_secret *out);

/* Wipes the key (OPENSSL_cleanse). */
void notify_secret_clear(struct notify_secret *secret);

/* out = "v1,<base64 HMAC-SHA256(key, id "." timestamp "." body)>", the value of
 * the webhook-signature header. id: [A-Za-z0-9_-]+; timestamp: seconds since
 * the epoch, > 0, written in decimal. R3D_EINVAL, R3D_ENOMEM. */
bool notify_sign(struct r3d_err *err, const struct notify_secret *secret, const char *id,
		 int64_t timestamp, const char *body, size_t body_len,
		 char out[NOTIFY_SIGNATURE_MAX]);

/* ---- delivery -------------------------------------------------------------- */

struct notify_target {
	const char *url;               /* http:// or https://; nothing else is spoken */
	const struct notify_secret *secret;
	long timeout_ms;               /* whole attempt; 0 = NOTIFY_TIMEOUT_MS_DEFAULT */
	long connect_timeout_ms;       /* 0 = NOTIFY_CONNECT_TIMEOUT_MS_DEFAULT */
	const char *ca_file;           /* PEM bundle to trust; NULL = system store */
	bool insecure;                 /* true: no certificate or host name check (logged) */
};

/* Everything about one attempt, filled in whatever the result. */
struct notify_attempt {
	int64_t timestamp;             /* the webhook-timestamp sent */
	int code;                      /* R3D_OK delivered; R3D_ENET retry later;
					  R3D_EREFUSED or R3D_EINVAL never retry;
					  R3D_ENOMEM */
	long http_status;              /* 0 when no response came */
	int curl_code;                 /* CURLcode, 0 when the exchange completed */
	double retry_after_s;          /* the response's Retry-After, 0 if none */
	double seconds;                /* duration of the attempt */
	char error[R3D_ERR_MSG_MAX];   /* one-line reason, "" when delivered */
};

/* One POST of msg->body to target->url with Content-Type application/json
 * and the webhook-id, webhook-timestamp and webhook-signature headers; TLS
 * peer and host verification on; redirects not followed (a 3xx is a
 * permanent failure); the response body is read and discarded. Classified:
 *   2xx                                   -> true, R3D_OK
 *   408, 429, 5xx; connection refused or
 *   reset, timeout, DNS failure, TLS
 *   handshake error, other network errors -> false, R3D_ENET (retry later)
 *   other status (3xx, 4xx but 408/429)  -> false, R3D_EREFUSED, "HTTP <n>"
 *   certificate not trusted               -> false, R3D_EREFUSED
 *   bad URL, unsupported scheme, bad CA
 *   file, bad id or secret                -> false, R3D_EINVAL
 * *out records the attempt in every case; err gets the same code and reason.
 * timestamp: seconds since the epoch (normally time(NULL)), > 0. */
bool notify_post(struct r3d_err *err, const struct notify_target *target,
		 const struct notify_message *msg, int64_t timestamp, struct notify_attempt *out);

/* The classification above for a completed exchange: R3D_OK, R3D_ENET or
 * R3D_EREFUSED. Pure. */
int notify_classify_status(long http_status);
/* The classification above for a curl error (curl_code != 0). Pure. */
int notify_classify_curl(int curl_code);

/* ---- retries --------------------------------------------------------------- */

/* Exponential backoff: the delay after attempt n (n = 1, 2, ...) is
 * initial_delay_s * 2^(n-1), at most max_delay_s, shortened by up to
 * jitter (a fraction in [0, 1]) times u, and never shorter than the
 * server's Retry-After (itself capped at max_delay_s). */
struct notify_backoff {
	double initial_delay_s;        /* > 0 */
	double max_delay_s;            /* >= initial_delay_s, <= NOTIFY_BACKOFF_MAX_DELAY_S */
	unsigned max_attempts;         /* attempts in all, 1 .. NOTIFY_BACKOFF_MAX_ATTEMPTS */
	double jitter;                 /* 0 .. 1; 0 = none */
};

/* Checks the parameters' ranges. R3D_EINVAL naming the bad one. */
bool notify_backoff_check(struct r3d_err *err, const struct notify_backoff *policy);

/* After `attempts_made` attempts (>= 1) that all asked to retry later: true
 * and *delay_s = seconds to wait before the next one, or false when no
 * attempt is left (attempts_made >= max_attempts) or the policy is invalid.
 * retry_after_s: the last attempt's Retry-After (0 if none); u: a random
 * number in [0, 1) from the caller (0 for no jitter). Pure. */
bool notify_backoff_next(const struct notify_backoff *policy, unsigned attempts_made,
			 double retry_after_s, double u, double *delay_s);

#ifdef __cplusplus
}
#endif

#endif
