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
	bool tls;                          /* came in on the TLS listener */
	char peer_subject[256];            /* its certificate's subject (RFC 2253), or "" */
};

/* DICOM TLS (issue 13), DCMTK's dcmtls over OpenSSL. The profiles are
 * DCMTK's: PS3.15 B.9 (BCP 195, may fall back to TLS 1.0), B.10
 * (Non-downgrading BCP 195: TLS 1.2 and up, AES-GCM with ECDHE or DHE
 * only) and B.11 (Extended BCP 195: TLS 1.2 only, adds ECDSA). */
enum bridge_tls_profile { BRIDGE_TLS_BCP195_ND, BRIDGE_TLS_BCP195_EXTENDED, BRIDGE_TLS_BCP195 };

struct bridge_tls {
	const char *certificate;   /* PEM certificate (chain); "" or NULL: none (a client) */
	const char *private_key;   /* PEM key of certificate */
	const char *trusted;       /* PEM file, or folder of hashed PEM files, of trusted CAs */
	bool verify_peer;          /* require the peer's certificate and verify it */
	enum bridge_tls_profile profile;
	const char *peer_subject;  /* SCU: the server certificate's subject must be this ("": any) */
};

/* bridge_net_accept: a TLS handshake failed (info->peer_host and err say
 * who and why). */
#define BRIDGE_ACCEPT_TLS_FAILED (-2)

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
/* The same with a TLS listener on tls_port beside (port > 0) or instead of
 * (port 0) the plain one; tls_port 0: none. The certificate, key and CAs are
 * read here: a file that cannot be used fails the call with the reason. */
bool bridge_net_open_tls(struct r3d_err *err, const char *bind, int port, int tls_port,
			 const struct bridge_tls *tls, int max_pdu, struct bridge_net **out);
void bridge_net_close(struct bridge_net *net);
/* How long a connection may take to send its whole A-ASSOCIATE-RQ before it
 * is closed: seconds (1..30); 0, or more than 30, means 30. */
void bridge_net_set_request_timeout(struct bridge_net *net, int seconds);

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
	char context_sop_class_uid[BRIDGE_UID_MAX + 1]; /* the context's abstract syntax */
	const char *tmp_path;  /* the received file: meta header + dataset as received */
	uint64_t bytes;        /* size of tmp_path */
};

/* DIMSE status codes the callback may return. */
#define BRIDGE_STATUS_SUCCESS 0x0000
#define BRIDGE_STATUS_OUT_OF_RESOURCES 0xA700
#define BRIDGE_STATUS_DATASET_MISMATCH 0xA900
#define BRIDGE_STATUS_CANNOT_UNDERSTAND 0xC000
#define BRIDGE_STATUS_PROCESSING_FAILURE 0x0110
#define BRIDGE_STATUS_SOP_CLASS_NOT_SUPPORTED 0x0122

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
	char accession_number[17];     /* may be empty */
	char patient_name[65];         /* patient data: never logged, only for the
					* webhook with include_patient_name */
	char frame_of_reference_uid[BRIDGE_UID_MAX + 1];  /* may be empty */
	/* A Segmentation or RT Structure Set only (else ""): the series it was
	 * made from (SEG: Referenced Series Sequence; RTSTRUCT: RT Referenced
	 * Series in its Referenced Frame of Reference) and, for an RTSTRUCT,
	 * the referenced Frame of Reference (a SEG's is its own). */
	char ref_series_uid[BRIDGE_UID_MAX + 1];
	/* When no series is named: an image it was derived from (SEG: the first
	 * frame's Source Image; RTSTRUCT: the first Contour Image), or "". */
	char ref_sop_uid[BRIDGE_UID_MAX + 1];
	bool is_segmentation;          /* SEG, Label Map SEG or RTSTRUCT SOP class */
	/* What series selection and route rules read (issue 12); "" or 0 when
	 * absent. Multi-valued ones keep their backslashes. */
	char image_type[65];           /* ORIGINAL\PRIMARY\AXIAL, ... */
	char study_description[65];
	char manufacturer[65];
	char body_part[17];            /* Body Part Examined */
	char contrast_agent[65];       /* Contrast/Bolus Agent */
	char kernel[65];               /* Convolution Kernel */
	double slice_thickness;        /* mm; 0 when absent */
	bool has_position, has_orientation;
	double position[3];            /* Image Position (Patient) */
	double orientation[6];         /* Image Orientation (Patient) */
};

/* SOP Class UIDs of the objects imported as segmentations (issue 11). */
#define BRIDGE_UID_SEG_STORAGE "1.2.840.10008.5.1.4.1.1.66.4"
#define BRIDGE_UID_LABELMAP_SEG_STORAGE "1.2.840.10008.5.1.4.1.1.66.7"
#define BRIDGE_UID_RTSTRUCT_STORAGE "1.2.840.10008.5.1.4.1.1.481.3"


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
/* SOP Class UID of the instance slice i came from. */
const char *bridge_series_sop_class(const struct bridge_series *s, size_t i);
const char *bridge_series_transfer_syntax(const struct bridge_series *s, size_t i);
void bridge_series_free(struct bridge_series *s);

/* ===================================================================== */
/* Pre-loaded series: decoded while they arrive (issue 15)               */
/* ===================================================================== */

/* The pre-loader's cache (src/bridge/preload.cpp): each instance of a series
 * that may become a job is decoded when it is stored, before the study is
 * stable, and kept in memory per series, at most cap_bytes in all. A job
 * takes its series' decoded files (bridge_preload_take) and its load stage
 * uses them for exactly the files it would have read: a file is matched by
 * its inode, size, mtime and ctime (as stat() gives them now) and its name,
 * so a replaced file (the receiver writes a new file and renames it over
 * the old: a new inode) or a file changed in any way is read again. The
 * result is the same as reading every file (the same decoder ran on the
 * same bytes). Every function takes the cache's lock; any thread. */
struct bridge_preload;       /* the cache */
struct bridge_preload_set;   /* one series' decoded files, owned by one job */

struct bridge_preload_stats {
	size_t bytes;              /* held now */
	size_t files;              /* decoded files held now */
	size_t series;             /* series held now */
	uint64_t files_kept;       /* decoded and kept, since the start */
	uint64_t files_refused;    /* not kept: the cap was reached */
	uint64_t files_failed;     /* could not be decoded (the job reads and reports them) */
	uint64_t series_evicted;   /* dropped unclaimed: idle too long, or for room */
};

/* On success the caller owns *out and frees it with bridge_preload_destroy(). */
bool bridge_preload_create(struct r3d_err *err, size_t cap_bytes, struct bridge_preload **out);
void bridge_preload_destroy(struct bridge_preload *p);

/* Decodes the file at path, an instance of series series_uid, and keeps it,
 * replacing what was kept for the same path. estimate_bytes (its decoded
 * size from its header) is checked against the cap before decoding: to
 * make room, whole series other than this one that received nothing for
 * evict_idle_s are dropped, least recently fed first. now: a monotonic
 * clock, seconds. Returns 1 kept, 0 not kept (no room, or the file changed
 * while it was read), -1 not decodable (err says why). */
int bridge_preload_file(struct r3d_err *err, struct bridge_preload *p, const char *series_uid,
			const char *path, size_t estimate_bytes, double now, double evict_idle_s);

/* Drops every series that received nothing for idle_s (its job did not
 * claim it); returns how many. */
size_t bridge_preload_expire(struct bridge_preload *p, double now, double idle_s);

/* Takes series_uid's decoded files out of the cache: the caller owns the
 * set (NULL: none held) and frees it with bridge_preload_set_free(). */
struct bridge_preload_set *bridge_preload_take(struct bridge_preload *p, const char *series_uid);
/* Drops what is held for series_uid. */
void bridge_preload_drop(struct bridge_preload *p, const char *series_uid);
void bridge_preload_get_stats(struct bridge_preload *p, struct bridge_preload_stats *out);

/* Decoded files in the set (not yet used by a load). NULL: 0. */
size_t bridge_preload_set_files(const struct bridge_preload_set *s);
void bridge_preload_set_free(struct bridge_preload_set *s);

/* bridge_series_load(), taking the files set holds (may be NULL) instead
 * of reading them: they leave the set. *from_set: files taken from it. The
 * series is the same as bridge_series_load() makes. */
bool bridge_series_load_preloaded(struct r3d_err *err, const struct bridge_scan *scan, size_t i,
				  unsigned threads, struct bridge_preload_set *set,
				  struct bridge_series **out, size_t *from_set);

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

/* The objects that go back to the PACS (docs: DESIGN "What goes back to the
 * PACS"): one Surface Segmentation per series with every structure, one
 * Encapsulated STL per structure. Both copy the patient, study and Frame of
 * Reference attributes from one instance of the source series, start the
 * series the caller names, reference the source instances (Common Instance
 * Reference module, and per segment or in Source Instance Sequence), and are
 * written as Explicit VR Little Endian Part 10 files under a unique temporary
 * name in the target folder, synced, then renamed over path. Equipment is
 * recon3d (Manufacturer, Manufacturer's Model Name "recon3d", Software
 * Versions R3D_VERSION). Any thread. */

#define BRIDGE_EXPORT_MAX_STRUCTURES 256         /* segments in one Surface Segmentation (STRUCTURE_MAX) */
#define BRIDGE_EXPORT_MAX_POINTS 300000000u      /* per surface (12 bytes each in one value) */
#define BRIDGE_EXPORT_MAX_TRIANGLES 300000000u   /* per surface (12 bytes each in one value) */
#define BRIDGE_EXPORT_MAX_REFS BRIDGE_SCAN_MAX_FILES /* source instances referenced */
#define BRIDGE_EXPORT_MAX_STL_BYTES 0x7ffffffeu  /* one encapsulated STL file */
#define BRIDGE_UID_LABEL_MAX 256                 /* label of bridge_uid_derive() */

/* A coded concept (Code Sequence Macro). Strings are not copied. */
struct bridge_code {
	const char *value;    /* Code Value, e.g. "39607008" */
	const char *scheme;   /* Coding Scheme Designator, e.g. "SCT" */
	const char *meaning;  /* Code Meaning, e.g. "Lung" */
};

/* The codes of one segment (from the structure catalogue, r3d/structure.h):
 * Segmented Property Category (CID 7150) and Type (CID 7151), required; the
 * type's modifier (laterality), the Anatomic Region and its modifier,
 * optional: a code whose value is NULL or "" is left out. */
struct bridge_segment_codes {
	struct bridge_code category, type;
	struct bridge_code type_modifier;
	struct bridge_code region, region_modifier;
};

/* sRGB in [0, 1] (clamped) to a DICOM Recommended Display CIELab Value:
 * L*, a*, b* (D65) scaled to 0..65535 (a*, b* offset by 128). */
void bridge_rgb_to_cielab(const float rgb[3], uint16_t lab[3]);

/* What a mesh check established about a surface; zero means not checked. */
enum bridge_surface_flag {
	BRIDGE_FLAG_UNKNOWN = 0,  /* not checked: written UNKNOWN */
	BRIDGE_FLAG_YES,          /* verified: written YES */
	BRIDGE_FLAG_NO,           /* checked, does not hold: written NO */
};

/* One structure as a triangle mesh (r3d/mesh.h's struct mesh gives xyz, tri,
 * nvert and ntri; mesh_check()'s closed and manifold give the flags). */
struct bridge_export_structure {
	const char *name;      /* Segment Label, 1..64 characters, e.g. "bone" */
	float rgb[3];          /* sRGB in [0, 1]: the recommended display colour */
	const float *xyz;      /* nvert * 3: points in patient LPS mm of the source FoR */
	const uint32_t *tri;   /* ntri * 3: 0-based vertex indices, counter-clockwise
				* seen from outside (written 1-based) */
	size_t nvert, ntri;    /* 1..BRIDGE_EXPORT_MAX_POINTS / _TRIANGLES */
	enum bridge_surface_flag finite_volume;  /* closed: encloses a finite volume */
	enum bridge_surface_flag manifold;       /* every edge in exactly two triangles */
	struct bridge_segment_codes codes;
};

/* One source instance to reference. */
struct bridge_export_ref {
	const char *sop_class_uid;
	const char *sop_instance_uid;
};

/* Identity of the object to write and where it comes from. UIDs should be
 * stable per job (bridge_uid_derive()) so that a retry rewrites the same
 * instance rather than making a second copy. */
struct bridge_export_info {
	const char *source_path;          /* one instance of the source series */
	const struct bridge_export_ref *refs; /* the source series' instances */
	size_t nrefs;                     /* 1..BRIDGE_EXPORT_MAX_REFS */
	const char *series_uid;           /* the new series */
	long series_number;               /* 0..2^31-1 */
	const char *series_description;   /* 1..64 characters, e.g. "3D model: bone (STL)" */
	const char *sop_instance_uid;
	long instance_number;             /* 1..2^31-1 */
	const char *content_date;         /* DA YYYYMMDD; NULL: today (local time) */
	const char *content_time;         /* TM HHMMSS[.F]; NULL: now */
	const char *device_serial_number; /* NULL: this host's name */
	/* Recognizable Visual Features (0028,0302) for the objects whose IOD has
	 * it (Encapsulated STL, Segmentation, Secondary Capture): YES when the
	 * object shows the body surface (a face can be recognised from a head
	 * CT's skin), NO when it does not; UNKNOWN leaves it out. The Surface
	 * Segmentation IOD has no such attribute. */
	int recognizable;                 /* enum bridge_flag */
};

/* Writes one Surface Segmentation (1.2.840.10008.5.1.4.1.1.66.5, Modality
 * SEG) at path holding structures[0..count) (1..BRIDGE_EXPORT_MAX_STRUCTURES):
 * segment i+1 refers to surface i+1; per surface the points (float32), a
 * unit normal per point (area-weighted; a point only on zero-area triangles
 * takes its neighbours', or a zero vector if none has one), the triangles
 * as a Long Triangle Point Index List, the colour as CIELab and grey value,
 * Finite Volume and Manifold from the flags. Algorithm: recon3d,
 * R3D_VERSION, AUTOMATIC.
 * Fails with R3D_EINVAL on bad input (an index out of range, a point not
 * finite, a source without Frame of Reference UID...), R3D_EIO/R3D_ENOSPC
 * when the file cannot be written; path is then untouched. */
bool bridge_write_surface_segmentation(struct r3d_err *err, const char *path,
				       const struct bridge_export_info *info,
				       const struct bridge_export_structure *structures,
				       size_t count);

/* Writes one Encapsulated STL (1.2.840.10008.5.1.4.1.1.104.3, Modality M3D)
 * at path holding the bytes of the binary STL file stl_path (as written by
 * mesh_stl_write(): little-endian, millimetres, patient LPS of the source
 * FoR), MIME type model/stl, Encapsulated Document Length the file's size
 * (the value is padded to even length), units UCUM mm, Document Title
 * "3D model: <name> (STL)". name: 1..48 characters. Errors as above. */
bool bridge_write_encapsulated_stl(struct r3d_err *err, const char *path,
				   const struct bridge_export_info *info, const char *name,
				   const char *stl_path);

/* Derives a UID from a job key: out = "2.25." followed by the decimal value
 * of a name-based UUID (RFC 9562 version 8) made of the first 128 bits of
 * SHA-256(root_uid, NUL, label). The same inputs always give the same UID;
 * root_uid is a valid UID (e.g. the source series UID), label 1..
 * BRIDGE_UID_LABEL_MAX characters naming the object (e.g. "job 42 stl bone
 * instance"). Thread-safe. */
bool bridge_uid_derive(struct r3d_err *err, const char *root_uid, const char *label,
		       char out[BRIDGE_UID_MAX + 1]);

/* ===================================================================== */
/* Storage SCU: sending objects to a PACS (issue 4)                      */
/* ===================================================================== */

/* Sends Part 10 files to a storage SCP over one association: one thread at
 * a time per struct bridge_scu (any thread). Every failure is classified by
 * its r3d_err code: R3D_ENET when a later attempt may succeed (connection
 * refused, timeout, association aborted or released by the peer, association
 * rejected-transient or for congestion, status Out of Resources 0xA7xx or
 * Resource Limitation 0x0213), R3D_EREFUSED when it will not (association rejected-permanent, no
 * presentation context accepted for the SOP class, a transfer syntax the
 * peer refuses that cannot be converted, any other failure status),
 * R3D_EINVAL / R3D_EIO when the file itself is unusable. err->msg says why,
 * e.g. "association rejected (permanent): called AE title not recognized".
 * The process must ignore SIGPIPE (the daemon does). */

#define BRIDGE_SCU_MAX_CONTEXTS 128  /* presentation contexts in one request (odd IDs 1..255) */
#define BRIDGE_SCU_MAX_TIMEOUT_S 3600 /* each of the timeouts below */
#define BRIDGE_COMMENT_MAX 64        /* Error Comment (LO) */

struct bridge_scu;  /* one requested association; one thread at a time */

struct bridge_scu_params {
	const char *host;        /* name or numeric IPv4 address of the peer */
	int port;                /* 1..65535 */
	const char *called_ae;   /* the peer's AE title, 1..16 characters */
	const char *calling_ae;  /* ours, 1..16 characters */
	int connect_timeout_s;   /* TCP connect, 1..BRIDGE_SCU_MAX_TIMEOUT_S (DCMTK keeps
				    this one process-wide: the last value set applies) */
	int acse_timeout_s;      /* waiting for A-ASSOCIATE-AC/RJ, A-RELEASE-RP */
	int dimse_timeout_s;     /* waiting for each C-STORE-RSP (plus at most 0.5 s spent
				    waiting to ACK its first bytes at once) */
	int max_pdu;             /* largest PDU we receive; 0: 16384 */
	const struct bridge_tls *tls;   /* NULL: plain TCP; else DICOM TLS, the server's
					 * certificate verified against tls->trusted */
	const char *const *extra_classes;   /* SOP classes proposed besides the files' own,
					     * each as [Explicit LE, Implicit LE]: an
					     * association kept open for objects still to come */
	size_t nextra_classes;
};

struct bridge_scu_info {
	unsigned files_readable;     /* files of the list whose meta header was read */
	unsigned proposed_contexts;
	unsigned accepted_contexts;
	bool nodelay_by_dcmtk;       /* TCP_NODELAY was already on when we looked (bridge_init) */
	bool nodelay;                /* TCP_NODELAY is on now (we set it when DCMTK had not) */
	long peer_max_pdu;           /* 0: unlimited */
};

/* Opens an association to p->host:p->port proposing the presentation
 * contexts files[0..nfiles) need: per SOP class, one context per transfer
 * syntax of its files with that syntax alone (the acceptor, not the
 * proposer, orders the syntaxes of a context), and one [Explicit VR Little
 * Endian, Implicit VR Little Endian] context to fall back on when a file is
 * uncompressed (also deflated or big endian) or DCMTK can decode it (JPEG,
 * JPEG-LS, RLE; not JPEG 2000). Only the meta header of each file is read
 * here; unreadable files are left out (bridge_scu_store() reports them).
 * Fails with R3D_EIO when no file is readable; R3D_EINVAL when an AE title or
 * timeout is invalid or more than BRIDGE_SCU_MAX_CONTEXTS contexts are needed
 * (send fewer files per association); R3D_ENET / R3D_EREFUSED as above,
 * R3D_EREFUSED also when the peer accepts none of the contexts. On success
 * the caller owns *out and ends it with bridge_scu_release() or
 * bridge_scu_abort(). */
bool bridge_scu_open(struct r3d_err *err, const struct bridge_scu_params *p,
		     const char *const *files, size_t nfiles, struct bridge_scu **out);

void bridge_scu_get_info(const struct bridge_scu *scu, struct bridge_scu_info *info);

/* What one C-STORE gave. */
struct bridge_scu_result {
	bool responded;            /* a C-STORE-RSP arrived; status is valid */
	uint16_t status;           /* its DIMSE status */
	char error_comment[BRIDGE_COMMENT_MAX + 1];  /* the peer's Error Comment, may be "" */
	char sop_instance_uid[BRIDGE_UID_MAX + 1];   /* of the file, once read */
	char transfer_syntax[BRIDGE_UID_MAX + 1];    /* the file was sent in this syntax */
	bool converted;            /* ... which is not the file's own */
};

/* Sends the file at path with C-STORE on the accepted presentation context
 * of its SOP class: the one in the file's own transfer syntax, else an
 * uncompressed one after converting (decompressing) the dataset. DCMTK
 * re-encodes the dataset on the way (explicit-length sequences, group
 * lengths recalculated): attributes and pixel bytes are unchanged, the
 * file's bytes may not be. Writing may block up to DCMTK's socket send
 * timeout (60 s, process-wide). Returns true when the object was delivered
 * (status Success or Warning; res->status says which); false with err
 * classified as above. After a transient network failure (timeout, abort,
 * broken link) the association is unusable: bridge_scu_alive() turns false
 * and later stores fail at once with R3D_ENET. */
bool bridge_scu_store(struct r3d_err *err, struct bridge_scu *scu, const char *path,
		      struct bridge_scu_result *res);

/* True while the association can carry another C-STORE. */
bool bridge_scu_alive(const struct bridge_scu *scu);

/* True when the file at path can go on this association: its SOP class
 * was proposed, with a context its transfer syntax can use (an unreadable
 * file: true, bridge_scu_store() reports it). Reads its meta header. */
bool bridge_scu_proposes(const struct bridge_scu *scu, const char *path);

/* Releases the association (A-RELEASE; A-ABORT if the release fails) and
 * frees scu. Returns false with err (R3D_ENET) when the release was not
 * confirmed; objects already answered are delivered either way. NULL is
 * allowed. */
bool bridge_scu_release(struct r3d_err *err, struct bridge_scu *scu);

/* Sends A-ABORT (while alive), closes and frees scu. NULL is allowed. */
void bridge_scu_abort(struct bridge_scu *scu);

/* How a C-STORE-RSP status is to be taken (PS3.4 B.2.3, PS3.7 C):
 * Success 0x0000; Warning 0x0001, 0x0107, 0x0116, 0xB000..0xBFFF (delivered);
 * transient failure 0xA700..0xA7FF Out of Resources, 0x0213 Resource
 * Limitation; every other status is a permanent failure (0xA9xx Data Set
 * does not match SOP Class, 0xCxxx Cannot understand, 0x0110 Processing
 * failure, 0x0122 SOP Class not supported, 0x0124 Not authorized, pending or
 * cancel codes which a C-STORE-RSP must not carry, ...). */
enum bridge_store_kind {
	BRIDGE_STORE_SUCCESS,
	BRIDGE_STORE_WARNING,
	BRIDGE_STORE_TRANSIENT,
	BRIDGE_STORE_PERMANENT,
};
enum bridge_store_kind bridge_store_status_kind(uint16_t status);
/* A short English name of the status ("Out of Resources", ...). */
const char *bridge_store_status_text(uint16_t status);

/* ===================================================================== */
/* DICOM Segmentation (voxel masks) (issue 5)                            */
/* ===================================================================== */

/* A binary DICOM Segmentation (1.2.840.10008.5.1.4.1.1.66.4, Modality SEG)
 * of voxel masks on the grid of the source CT slices, for viewers that show
 * masks (OHIF, 3D Slicer, Weasis). One segment per structure (segment i+1 is
 * structures[i]); one frame per (segment, source slice) where that segment
 * has at least one voxel on that slice (a segment with no voxel at all gets
 * one empty frame on the first slice, so that every segment has a frame).
 * Frames are ordered by segment, then by slice (the input's k order). Per
 * frame: Derivation Image (the source slice, purpose "Source image for image
 * processing operation"), Plane Position (the slice's Image Position), Frame
 * Content (Dimension Index Values: segment number, slice k + 1) and Segment
 * Identification; shared: Plane Orientation and Pixel Measures. Dimension
 * Organization: Referenced Segment Number, then Image Position (Patient).
 * Patient, study and Frame of Reference come from info->source_path; the
 * slices are referenced (Referenced Series Sequence); info->refs is not used.
 * Written like the result objects above (Explicit VR Little Endian, under a
 * temporary name, synced, renamed over path). Any thread. */

#define BRIDGE_SEG_MAX_SLICES 4096   /* source slices (VOLUME_MAX_SLICES) */
#define BRIDGE_SEG_MAX_DIM 4096      /* rows or columns */
#define BRIDGE_SEG_MAX_FRAMES 65535  /* frames of one object (our bound; the writer refuses more) */

/* One source slice, in the k order of the masks. A frame of a multi-frame
 * source (Enhanced CT) is referenced with its Referenced Frame Number (PS3.3
 * Image SOP Instance Reference Macro: required when the instance is
 * multi-frame and the reference is not to all of its frames), in the
 * frame's Source Image Sequence; the Referenced Series Sequence lists each
 * instance once. */
struct bridge_seg_slice {
	const char *sop_class_uid;
	const char *sop_instance_uid;
	double position[3];   /* Image Position (Patient), LPS mm */
	uint32_t frame_number; /* 1-based frame of a multi-frame instance (1..65535); 0: single-frame */
};

/* One structure as a voxel mask: bytes (mask) or bits (bits), exactly one
 * of the two. Voxel v = x + columns * (y + rows * k), x (along a row)
 * fastest, then row, then slice k. */
struct bridge_seg_structure {
	const char *name;      /* Segment Label, 1..64 characters */
	float rgb[3];          /* sRGB in [0, 1] */
	struct bridge_segment_codes codes;
	const uint8_t *mask;   /* one byte per voxel; non-zero is inside */
	const uint8_t *bits;   /* one bit per voxel: byte v / 8, bit v % 8 (least
				* significant first); 1 is inside */
};

struct bridge_seg_input {
	const struct bridge_seg_slice *slices;   /* 1..BRIDGE_SEG_MAX_SLICES */
	size_t nslices;
	uint32_t rows, columns;                  /* of every source slice */
	double orientation[6];                   /* Image Orientation (Patient) */
	double pixel_spacing[2];                 /* DICOM order: between rows, between columns */
	double slice_thickness;                  /* mm, > 0 */
	const struct bridge_seg_structure *structures;  /* 1..BRIDGE_EXPORT_MAX_STRUCTURES */
	size_t nstructures;
};

/* Writes the Segmentation described above at path. info gives the identity
 * (series, SOP instance, numbers, description, content date/time, device
 * serial) and the source instance. Fails with R3D_EINVAL on bad input (a
 * malformed UID, a mask missing, too many frames...), R3D_EIO/R3D_ENOSPC
 * when the file cannot be written; path is then untouched. */
bool bridge_write_segmentation(struct r3d_err *err, const char *path,
			       const struct bridge_export_info *info,
			       const struct bridge_seg_input *in);

/* ===================================================================== */
/* Secondary Capture previews (issue 5)                                  */
/* ===================================================================== */

/* Writes one Secondary Capture image (1.2.840.10008.5.1.4.1.1.7, Modality
 * OT, Conversion Type SYN) at path: rgb holds width * height pixels of 3
 * bytes, top row first; Burned In Annotation YES (the view's letters and
 * scale bar are drawn in); Patient Orientation from row_dir and col_dir
 * (e.g. "L", "F"; NULL or "" leaves it empty); Image Comments names the
 * view. Patient, study and source references as for the objects above. */
#define BRIDGE_PREVIEW_MAX_DIM 8192
bool bridge_write_preview(struct r3d_err *err, const char *path, const struct bridge_export_info *info,
			  const uint8_t *rgb, uint32_t width, uint32_t height, const char *view_name,
			  const char *row_dir, const char *col_dir);

/* ===================================================================== */
/* Segmentation objects in (segobj.h)                                     */
/* ===================================================================== */

struct segobj;

/* Reads a DICOM Segmentation (BINARY, FRACTIONAL, or Label Map
 * Segmentation) or an RT Structure Set from path, with or without File
 * Meta Information, into plain records (segobj.h). Refuses with one clear
 * reason (R3D_EINVAL): not one of those SOP classes ("... is CT Image
 * Storage, not a Segmentation or RT Structure Set"), a limit of segobj.h
 * exceeded (named), pixel data that does not match rows x columns x frames,
 * frames whose orientation or pixel spacing differ, a missing required
 * attribute (named). Frames without a Plane Position are kept with
 * has_position false (the import refuses them with its own reason). On
 * success the caller owns *out and frees it with bridge_segobj_free(). */
bool bridge_segobj_read(struct r3d_err *err, const char *path, struct segobj **out);
void bridge_segobj_free(struct segobj *s);

#ifdef __cplusplus
}
#endif

#endif
