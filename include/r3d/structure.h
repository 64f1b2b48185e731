/*
 * structure.h: the structure catalogue. Every structure recon3d can make is
 * one entry of a table (struct structure_def): its key, display name, where
 * it comes from (a segmentation preset, a threshold range on the CT, a mask
 * given to the pipeline), its colour, its SNOMED CT codes, its triangle
 * budget and whether it is made. The pipeline, every exporter, the previews,
 * report.json (and through it the 3D page and the webhook) read the entry;
 * a new structure is a new entry, from the built-in presets, a site's
 * [structure KEY] config section, recon3d-mesh --structure, or (later) an
 * imported segment. No code anywhere switches on which structure it is.
 *
 * Pure data and parsing: no DICOM, no database, no network. A catalogue is
 * filled by one thread (the config loader, the command line) and read-only
 * afterwards; any thread may then read it.
 *
 * Thresholds are inclusive integer HU (min_hu = 100 means HU >= 100); the
 * surface passes through the half-integer crossing (99.5 HU) of the CT's
 * interpolated grey levels: structure_def_range().
 */
#ifndef R3D_STRUCTURE_H
#define R3D_STRUCTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "r3d/err.h"
#include "r3d/segment.h"

#define STRUCTURE_MAX 256             /* entries of one catalogue (presets, site structures and
				       * the segments of an imported object: TotalSegmentator
				       * has 117 classes) */
#define STRUCTURE_KEY_MAX 32          /* key, with the NUL: [a-z0-9_], a letter first */
#define STRUCTURE_LABEL_MAX 49        /* display name, with the NUL: "3D model: <label> (STL)"
				       * stays within a DICOM LO of 64 */
#define STRUCTURE_CODE_VALUE_MAX 17   /* Code Value (SH 16), with the NUL */
#define STRUCTURE_CODE_SCHEME_MAX 17  /* Coding Scheme Designator (SH 16) */
#define STRUCTURE_CODE_MEANING_MAX 65 /* Code Meaning (LO 64) */
#define STRUCTURE_HU_MIN (-1024)      /* a threshold outside the CT's range ... */
#define STRUCTURE_HU_MAX 3071         /* ... (12-bit CT, intercept -1024) is refused */
#define STRUCTURE_MAX_TRIANGLES 10000000u
#define STRUCTURE_DEFAULT_TRIANGLES 600000u

enum structure_source {
	STRUCTURE_PRESET,     /* a segmentation preset (segment.h): bone, skin/body, lungs, vessels */
	STRUCTURE_THRESHOLD,  /* voxels in [min_hu, max_hu], components of >= 27 voxels */
	STRUCTURE_MASK,       /* a mask given to the pipeline with no grey levels (imported) */
};

/* What a structure asks of the series it is made from (series selection,
 * issue 12): the reconstruction kernel it is best made on, and the contrast
 * phase it needs to be visible at all. */
enum structure_kernel { STRUCTURE_KERNEL_ANY, STRUCTURE_KERNEL_SOFT, STRUCTURE_KERNEL_SHARP };
enum structure_phase { STRUCTURE_PHASE_ANY, STRUCTURE_PHASE_ARTERIAL, STRUCTURE_PHASE_VENOUS };

/* A coded concept; value "" means absent (for the optional ones). */
struct structure_code {
	char value[STRUCTURE_CODE_VALUE_MAX];
	char scheme[STRUCTURE_CODE_SCHEME_MAX];
	char meaning[STRUCTURE_CODE_MEANING_MAX];
};

struct structure_def {
	char key[STRUCTURE_KEY_MAX];        /* "bone", "kidney_left": file names, URLs, JSON */
	char label[STRUCTURE_LABEL_MAX];    /* Segment Label and series names: "3D model: <label>" */
	enum structure_source source;
	enum segment_preset preset;         /* STRUCTURE_PRESET only */
	/* The HU range whose crossing draws the boundary (presets: the range
	 * their masks are thresholded at; see structure_catalog_segment_params). */
	bool has_min, has_max;
	int min_hu, max_hu;                 /* inclusive */
	bool has_contrast_min;              /* bone preset: min_hu on a contrast-enhanced series */
	int contrast_min_hu;
	float rgb[3];                       /* sRGB in [0, 1] (STL/OBJ/viewer; DICOM CIELab from it) */
	struct structure_code category;     /* Segmented Property Category (CID 7150) */
	struct structure_code type;         /* Segmented Property Type (CID 7151) */
	struct structure_code type_modifier;/* laterality (CID 244: Left, Right, ...) or "" */
	struct structure_code region;       /* Anatomic Region, or "" */
	struct structure_code region_modifier; /* its laterality, or "" */
	size_t max_triangles;               /* decimation budget, 1..STRUCTURE_MAX_TRIANGLES */
	enum structure_kernel kernel;       /* kernel = soft | sharp | any */
	enum structure_phase phase;         /* phase = arterial | venous | any */
	bool enabled;                       /* made by default */
	bool body_surface;                  /* the outer surface of the body: it can show a
					     * face (Recognizable Visual Features YES), it
					     * hides the others (previews draw it alone, the
					     * 3D page starts with it hidden) */
};

struct structure_catalog {
	size_t n;
	struct structure_def def[STRUCTURE_MAX];
};

/* Fills c with the built-in presets (skin, bone, lungs, vessels), each
 * enabled, thresholds from segment_params_default(). */
void structure_catalog_default(struct structure_catalog *c);

/* The entry with this key, NULL when there is none. */
struct structure_def *structure_catalog_find(struct structure_catalog *c, const char *key);
const struct structure_def *structure_catalog_get(const struct structure_catalog *c,
						  const char *key);

/* A new threshold entry named key with the defaults of a site structure:
 * label = key, grey, Tissue / Tissue, STRUCTURE_DEFAULT_TRIANGLES, enabled,
 * no range yet (give min_hu and/or max_hu). */
void structure_def_threshold(struct structure_def *d, const char *key);

/* Appends d (a copy). Fails for a duplicate key, a full catalogue or an
 * entry that structure_def_check() refuses. */
bool structure_catalog_add(struct r3d_err *err, struct structure_catalog *c,
			   const struct structure_def *d);

/* Checks one entry: key format, label, a threshold entry's range (at least
 * one end, min <= max, both within STRUCTURE_HU_MIN..MAX), the preset's
 * allowed ends, colour in [0, 1], codes well formed (category and type
 * present), budget 1..STRUCTURE_MAX_TRIANGLES. The message names the key. */
bool structure_def_check(struct r3d_err *err, const struct structure_def *d);

/* True when key is 1..STRUCTURE_KEY_MAX-1 characters of [a-z0-9_] starting
 * with a letter. */
bool structure_key_valid(const char *key);

/* A pair of structure keys, and lists of them as the config writes them
 * (pairs.c): "a:b, c:d", pairs separated by commas or spaces, each two
 * valid keys joined by a colon. At most max pairs into pairs[0..*n). */
#define STRUCTURE_PAIRS_MAX 16          /* pairs in one list */
#define STRUCTURE_PAIRS_TEXT_MAX 512    /* characters of a list, with the NUL */
struct structure_pair {
	char a[STRUCTURE_KEY_MAX], b[STRUCTURE_KEY_MAX];
};
bool structure_pairs_parse(struct r3d_err *err, const char *text,
			   struct structure_pair *pairs, size_t max, size_t *n);

/* Sets one attribute of d from its config text (the keys of a [structure
 * KEY] section): enabled, label, min_hu, max_hu, contrast_min_hu, color,
 * category, type, laterality, region, region_laterality, max_triangles.
 * Codes are written VALUE^SCHEME^MEANING (e.g. 3138006^SCT^Bone), colours
 * #rrggbb or R,G,B (0..255). Fails with the reason for an unknown name, a
 * key the preset does not have, or a malformed value. */
bool structure_def_set(struct r3d_err *err, struct structure_def *d, const char *name,
		       const char *value);

/* "soft", "sharp", "any"; "arterial", "venous", "any". */
const char *structure_kernel_name(enum structure_kernel k);
const char *structure_phase_name(enum structure_phase p);

/* The attribute names structure_def_set() takes, NULL-terminated, and a
 * one-line description of each (for the sample config and the docs). */
extern const char *const structure_attr_names[];
const char *structure_attr_comment(const char *name);

/* recon3d-mesh --structure KEY:MIN:MAX (either bound may be empty): adds a
 * threshold entry, or changes the range of an existing one, and enables it.
 * *out (may be NULL) is set to the entry. */
bool structure_catalog_parse_cli(struct r3d_err *err, struct structure_catalog *c,
				 const char *spec, const struct structure_def **out);

/* Enables exactly the entries named in a comma-separated list. */
bool structure_catalog_enable_only(struct r3d_err *err, struct structure_catalog *c,
				   const char *list);

/* The half-integer HU range of the grey-level surface: g > 0 on
 * (lo, hi); -INFINITY / INFINITY for an open end. contrast selects the
 * contrast-series minimum where the entry has one. False when the entry
 * has no range (a mask: meshed from the mask alone). */
bool structure_def_range(const struct structure_def *d, bool contrast, double *lo, double *hi);

/* Writes the presets' thresholds into the segmentation parameters (skin
 * min_hu -> body_hu, bone min_hu / contrast_min_hu -> low_hu /
 * contrast_low_hu, lungs max_hu -> air_hu, vessels -> (low_hu, high_hu]),
 * and returns in *presets the bits (1u << preset) of the enabled presets. */
void structure_catalog_segment_params(const struct structure_catalog *c, struct segment_params *p,
				      unsigned *presets);

/* "preset", "threshold", "mask". */
const char *structure_source_name(enum structure_source s);

/* One line per entry: key, label, source and range, colour, codes, budget,
 * on/off (recon3d-mesh --list-structures, recon3d -n -v). */
void structure_catalog_print(FILE *out, const struct structure_catalog *c);

/* Writes every entry as a [structure KEY] section with a comment line above
 * each key (the documented sample config). */
void structure_catalog_write_config(FILE *out, const struct structure_catalog *c);

#endif
