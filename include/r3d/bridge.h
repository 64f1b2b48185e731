/*
 * bridge.h: the only door to DCMTK. Everything DICOM (networking, parsing,
 * decoding, writing) that recon3d does goes through the functions declared
 * here; they are implemented in C++17 under src/bridge/ and no C++ exception
 * crosses this header. Nothing else in the project includes a DCMTK header.
 *
 * Strings are NUL-terminated UTF-8 or ASCII; UIDs are at most 64 characters.
 * Every function that can fail takes a struct r3d_err first.
 */
#ifndef R3D_BRIDGE_H
#define R3D_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BRIDGE_UID_MAX 64   /* DICOM UI values are at most 64 characters */
#define BRIDGE_AE_MAX 16    /* AE titles are at most 16 characters */
#define BRIDGE_HOST_MAX 64

/* Once per process, before any thread starts: loads the data dictionary,
 * registers the decoders, and asks DCMTK to set TCP_NODELAY on every socket
 * it opens or accepts. */
bool bridge_init(struct r3d_err *err);
/* Once at exit, after every thread using the bridge has stopped. */
void bridge_cleanup(void);

/* ===================================================================== */
/* Network: the storage SCP (receive thread and association threads)     */
/* ===================================================================== */

struct bridge_net;   /* a listening DICOM acceptor; main thread only */
struct bridge_assoc; /* one association; one thread at a time */

struct bridge_assoc_info {
	char calling_ae[BRIDGE_AE_MAX + 1];
	char called_ae[BRIDGE_AE_MAX + 1];
	char peer_host[BRIDGE_HOST_MAX];   /* numeric address of the peer */
	unsigned proposed_contexts;
};

enum bridge_reject_reason {
	BRIDGE_REJECT_CALLING_AE,   /* permanent: calling AE title not recognised */
	BRIDGE_REJECT_CALLED_AE,    /* permanent: called AE title not recognised */
	BRIDGE_REJECT_BUSY,         /* transient: local limit exceeded */
	BRIDGE_REJECT_NO_REASON,    /* permanent: no reason given */
};

/* Opens a listening socket on bind:port. On success the caller owns *out and
 * closes it with bridge_net_close(). */
bool bridge_net_open(struct r3d_err *err, const char *bind, int port, int max_pdu,
		     struct bridge_net **out);
void bridge_net_close(struct bridge_net *net);

/* Waits up to timeout_ms for an association request and reads it. Returns 1
 * with *out and *info set (the caller owns *out and must accept or reject it),
 * 0 when nothing arrived in time, -1 on error (err set; the acceptor stays
 * usable). */
int bridge_net_accept(struct r3d_err *err, struct bridge_net *net, int timeout_ms,
		      struct bridge_assoc **out, struct bridge_assoc_info *info);

/* Sends A-ASSOCIATE-RJ with the reason, closes and frees the association. */
void bridge_assoc_reject(struct bridge_assoc *assoc, enum bridge_reject_reason why);

/* Accepts Verification and every storage SOP class, each in the first
 * transfer syntax the peer proposes that recon3d stores (so that an instance
 * is kept as the sender has it), and sends A-ASSOCIATE-AC. *accepted is the
 * number of accepted presentation contexts. On failure the association is
 * aborted and freed. */
bool bridge_assoc_accept(struct r3d_err *err, struct bridge_assoc *assoc, unsigned *accepted);

/* What the storage callback is told about one received C-STORE. */
struct bridge_store_req {
	char sop_class_uid[BRIDGE_UID_MAX + 1];    /* from the command */
	char sop_instance_uid[BRIDGE_UID_MAX + 1]; /* from the command */
	char transfer_syntax[BRIDGE_UID_MAX + 1];  /* of the presentation context */
	const char *tmp_path;  /* the received file: meta header + dataset as received */
	uint64_t bytes;        /* size of tmp_path */
};

/* DIMSE status codes the callback may return. */
#define BRIDGE_STATUS_SUCCESS 0x0000
#define BRIDGE_STATUS_OUT_OF_RESOURCES 0xA700
#define BRIDGE_STATUS_DATASET_MISMATCH 0xA900
#define BRIDGE_STATUS_CANNOT_UNDERSTAND 0xC000
#define BRIDGE_STATUS_PROCESSING_FAILURE 0x0110

struct bridge_serve_ops {
	/* Called once the dataset is in req->tmp_path. Returns the DIMSE status
	 * to answer with, and for a failure a short reason in comment (sent to
	 * the peer as Error Comment, at most 64 characters). On success the
	 * callee has moved tmp_path away; otherwise the bridge removes it. */
	uint16_t (*store)(void *ctx, const struct bridge_store_req *req, char *comment,
			  size_t comment_size);
	/* Called before a dataset is received: false answers Out of Resources
	 * (0xA700) without writing anything, e.g. when the disk is nearly full. */
	bool (*can_store)(void *ctx, char *comment, size_t comment_size);
	/* Polled between messages and while waiting: true ends the association
	 * (A-ABORT) because the daemon is stopping. */
	bool (*stopping)(void *ctx);
	void *ctx;
};

struct bridge_serve_stats {
	unsigned echoes;
	unsigned stores_ok;
	unsigned stores_failed;
	bool released;  /* peer released normally (false: aborted or error) */
};

/* Sends A-ABORT, closes and frees an accepted association. */
void bridge_assoc_abort(struct bridge_assoc *assoc);

/* Serves C-ECHO and C-STORE on an accepted association until the peer
 * releases or aborts it, the link fails, idle_timeout_s passes without a
 * message, or ops->stopping() says so. Incoming datasets are written to
 * unique files in tmp_dir. Frees the association. Returns false with err set
 * only for a link or protocol failure. */
bool bridge_assoc_serve(struct r3d_err *err, struct bridge_assoc *assoc, const char *tmp_dir,
			int idle_timeout_s, const struct bridge_serve_ops *ops,
			struct bridge_serve_stats *stats);

/* ===================================================================== */
/* Index attributes of a stored instance (association threads)           */
/* ===================================================================== */

struct bridge_instance_attrs {
	char study_uid[BRIDGE_UID_MAX + 1];
	char series_uid[BRIDGE_UID_MAX + 1];
	char sop_instance_uid[BRIDGE_UID_MAX + 1];
	char sop_class_uid[BRIDGE_UID_MAX + 1];
	char transfer_syntax[BRIDGE_UID_MAX + 1];
	char modality[17];
	char series_description[65];   /* not patient data; may be empty */
	long series_number;            /* -1 when absent */
	long number_of_frames;         /* 1 when absent */
	long rows, columns;            /* 0 when absent */
};

/* Reads the attributes the index needs from a DICOM file without loading
 * its pixel data. Fails with R3D_EINVAL when the file cannot be parsed or a
 * Study, Series or SOP Instance UID is missing or malformed. */
bool bridge_read_instance_attrs(struct r3d_err *err, const char *path,
				struct bridge_instance_attrs *out);

/* True when uid is a syntactically valid DICOM UID (digits and dots, 1..64). */
bool bridge_uid_valid(const char *uid);

/* ===================================================================== */
/* Series for the pipeline: slice headers and decoded frames (issue 3)   */
/* ===================================================================== */

#define BRIDGE_SCAN_MAX_FILES 200000  /* files looked at under one folder */
#define BRIDGE_SCAN_MAX_DEPTH 16       /* folder nesting followed */
#define BRIDGE_READ_MAX_THREADS 16     /* decoding threads of one bridge_series_load() */

struct volume_slice;  /* r3d/volume.h: the plain slice record the volume stage takes */

/* One series found by bridge_scan_dir(). */
struct bridge_series_info {
	char series_uid[BRIDGE_UID_MAX + 1];
	char study_uid[BRIDGE_UID_MAX + 1];
	char frame_of_reference_uid[BRIDGE_UID_MAX + 1];  /* empty when absent */
	char sop_class_uid[BRIDGE_UID_MAX + 1];           /* of its first instance */
	char modality[17];
	char series_description[65];
	long series_number;   /* -1 when absent */
	size_t instances;     /* files */
	size_t frames;        /* sum of Number of Frames (1 when absent) */
};

struct bridge_scan;    /* the series under a folder; read-only once made */
struct bridge_series;  /* the decoded frames of one series */

/* Scans dir and its subfolders (symbolic links are not followed) for DICOM
 * files and groups them by Series Instance UID; files that are not DICOM are
 * counted as skipped. Images with an empty or missing Series Instance UID
 * (de-identified data) form one series whose series_uid is "". Series are listed
 * largest (most frames) first. Pixel data is not read. On success the caller
 * owns *out and frees it with bridge_scan_free(). Any thread. */
bool bridge_scan_dir(struct r3d_err *err, const char *dir, struct bridge_scan **out);
size_t bridge_scan_count(const struct bridge_scan *scan);
const struct bridge_series_info *bridge_scan_series(const struct bridge_scan *scan, size_t i);
size_t bridge_scan_skipped(const struct bridge_scan *scan);
void bridge_scan_free(struct bridge_scan *scan);

/* Reads every instance of series i of scan and decodes every frame, one
 * struct volume_slice per frame (Enhanced CT frames take their geometry and
 * rescale from the per-frame, then shared, functional groups). Decodes
 * uncompressed LE/BE, deflate, RLE, JPEG (baseline, extended, lossless, SV1,
 * spectral, progressive), JPEG-LS through DCMTK and JPEG 2000 through
 * OpenJPEG. Files are decoded by up to `threads` threads (0 or 1: the calling
 * thread only). A frame that cannot be decoded fails the whole call with the
 * file and the reason. On success the caller owns *out and frees it with
 * bridge_series_free(). Any thread. */
bool bridge_series_load(struct r3d_err *err, const struct bridge_scan *scan, size_t i,
			unsigned threads, struct bridge_series **out);
/* Same, for the frames of one file. */
bool bridge_file_load(struct r3d_err *err, const char *path, struct bridge_series **out);

/* The decoded slices (file order, then frame order); pixels and labels stay
 * valid until bridge_series_free(). */
const struct volume_slice *bridge_series_slices(const struct bridge_series *s, size_t *count);
/* SOP Instance UID and transfer syntax UID of the instance slice i came from. */
const char *bridge_series_sop_uid(const struct bridge_series *s, size_t i);
const char *bridge_series_transfer_syntax(const struct bridge_series *s, size_t i);
void bridge_series_free(struct bridge_series *s);

/* ===================================================================== */
/* Writing DICOM objects: phantoms and results (issues 3 and 4)          */
/* ===================================================================== */

/* Transfer syntaxes the writers produce. JPEG-LS, JPEG lossless and
 * JPEG 2000 (reversible) are lossless; BRIDGE_TS_J2K_LOSSY is not. */
enum bridge_ts {
	BRIDGE_TS_IMPLICIT_LE, /* 1.2.840.10008.1.2 */
	BRIDGE_TS_EXPLICIT_LE, /* 1.2.840.10008.1.2.1 */
	BRIDGE_TS_EXPLICIT_BE, /* 1.2.840.10008.1.2.2 (retired, still received) */
	BRIDGE_TS_DEFLATE,     /* 1.2.840.10008.1.2.1.99 */
	BRIDGE_TS_RLE,         /* 1.2.840.10008.1.2.5 */
	BRIDGE_TS_JPEG_LL,     /* 1.2.840.10008.1.2.4.70 JPEG lossless SV1 */
	BRIDGE_TS_JPEGLS,      /* 1.2.840.10008.1.2.4.80 JPEG-LS lossless */
	BRIDGE_TS_J2K,         /* 1.2.840.10008.1.2.4.90 JPEG 2000 lossless, via OpenJPEG */
	BRIDGE_TS_J2K_LOSSY,   /* 1.2.840.10008.1.2.4.91 JPEG 2000 irreversible */
};

/* Parses a short name: implicit, explicit, big, deflate, rle, jpegll,
 * jpegls, j2k, j2k-lossy. */
bool bridge_ts_parse(struct r3d_err *err, const char *name, enum bridge_ts *out);
const char *bridge_ts_name(enum bridge_ts ts);

/* Writes a fresh UID (DCMTK's root + host/process/time/counter) into out.
 * Thread-safe. */
void bridge_uid_generate(char out[BRIDGE_UID_MAX + 1]);

/* One CT Image Storage instance (one slice). Strings may be NULL (written
 * empty where the attribute is type 2). Pixels: rows*columns 16-bit stored
 * values, x fastest; reinterpreted as int16 when is_signed. */
struct bridge_ct_image {
	const char *patient_name, *patient_id;   /* as given; the phantom writes PHANTOM^ONE */
	const char *study_uid, *series_uid, *sop_instance_uid, *frame_of_reference_uid;
	const char *study_date, *study_time;     /* DA YYYYMMDD, TM HHMMSS */
	const char *study_id, *series_description, *manufacturer;
	long series_number, instance_number;
	uint32_t rows, columns;
	double position[3];       /* Image Position (Patient), LPS mm */
	double orientation[6];    /* Image Orientation (Patient): row, then column cosines */
	double pixel_spacing[2];  /* DICOM order: between rows, between columns (mm) */
	double slice_thickness;   /* mm */
	double gantry_tilt_deg;   /* Gantry/Detector Tilt */
	unsigned bits_stored;     /* 8..16 (Bits Allocated is always 16) */
	bool is_signed;           /* Pixel Representation 1 */
	double rescale_slope, rescale_intercept;
	const uint16_t *pixels;
};

/* Writes img as a Part 10 file at path in transfer syntax ts (the file is
 * written under a temporary name and renamed). Any thread; registers the
 * encoders it needs on first use. */
bool bridge_ct_write(struct r3d_err *err, const char *path, const struct bridge_ct_image *img,
		     enum bridge_ts ts);

/* Writes frames[0..count) as one Enhanced CT Image Storage instance: patient,
 * study, series, size, spacing, orientation and rescale from frames[0] (in the
 * shared functional groups), each frame's Image Position in the per-frame
 * functional groups, pixels concatenated in frame order. Same rules as
 * bridge_ct_write(). */
bool bridge_ct_write_enhanced(struct r3d_err *err, const char *path,
			      const struct bridge_ct_image *frames, size_t count, enum bridge_ts ts);

/* ===================================================================== */
/* Result objects: Surface Segmentation and Encapsulated STL (issue 4)   */
/* ===================================================================== */

/* (reserved: the export writers go here) */

/* ===================================================================== */
/* Storage SCU: sending objects to a PACS (issue 4)                      */
/* ===================================================================== */

/* (reserved: the sender's association and C-STORE functions go here) */

#ifdef __cplusplus
}
#endif

#endif
