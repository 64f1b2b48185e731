/*
 * segobj.h: a segmentation object another system made (a DICOM Segmentation,
 * binary, fractional or label map, or an RT Structure Set), read into plain
 * C records: what each segment or ROI is called and coded as, and where its
 * voxels or contours lie in patient coordinates. No DICOM types: the bridge
 * fills it (bridge_segobj_read(), src/bridge/segread.cpp); the import stage
 * (segimport.h) turns it into masks and catalogue entries.
 *
 * Geometry is as the object says: each SEG frame carries its own Image
 * Position, and the object's orientation and pixel spacing (from the Shared
 * or Per-Frame Functional Groups: Plane Orientation, Pixel Measures); each
 * RT contour its own points. Nothing is assumed from the CT it refers to.
 * Read-only once made; any thread may read it.
 */
#ifndef R3D_SEGOBJ_H
#define R3D_SEGOBJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SEGOBJ_UID_MAX 65          /* with the NUL */
#define SEGOBJ_LABEL_MAX 65        /* Segment Label / ROI Name (LO 64), with the NUL */
#define SEGOBJ_CODE_VALUE_MAX 17   /* Code Value (SH 16) ... */
#define SEGOBJ_CODE_SCHEME_MAX 17
#define SEGOBJ_CODE_MEANING_MAX 65
#define SEGOBJ_REASON_MAX 160
/* Documented limits: larger objects are refused with the limit named.
 * Segments: items of the Segment Sequence or Structure Set ROI Sequence (a
 * label map's background item included); each becomes one structure of a
 * job, and a job has at most STRUCTURE_MAX (256, r3d/structure.h) of them. */
#define SEGOBJ_MAX_SEGMENTS 256
#define SEGOBJ_MAX_FRAMES 65536
#define SEGOBJ_MAX_PIXELS (1ULL << 32)  /* rows x columns x frames, per object (one byte
					 * each in pixel_store: 4 GiB) */
#define SEGOBJ_MAX_CONTOURS 200000
#define SEGOBJ_MAX_POINTS 20000000  /* contour points in all, per object */

enum segobj_kind {
	SEGOBJ_SEG_BINARY,      /* Segmentation Storage, Segmentation Type BINARY */
	SEGOBJ_SEG_FRACTIONAL,  /* Segmentation Storage, FRACTIONAL (PROBABILITY or OCCUPANCY) */
	SEGOBJ_SEG_LABELMAP,    /* Label Map Segmentation Storage (1.2.840.10008.5.1.4.1.1.66.7) */
	SEGOBJ_RTSTRUCT,        /* RT Structure Set Storage */
};

struct segobj_code {         /* value "" when absent */
	char value[SEGOBJ_CODE_VALUE_MAX];
	char scheme[SEGOBJ_CODE_SCHEME_MAX];
	char meaning[SEGOBJ_CODE_MEANING_MAX];
};

/* One segment (SEG: an item of the Segment Sequence) or ROI (RTSTRUCT: a
 * Structure Set ROI with its ROI Contour and RT ROI Observations items). */
struct segobj_segment {
	unsigned number;                  /* Segment Number / ROI Number */
	char label[SEGOBJ_LABEL_MAX];     /* Segment Label / ROI Name ("" when absent) */
	bool has_color;
	float rgb[3];                     /* sRGB 0..1: from Recommended Display CIELab Value
					   * (SEG) or ROI Display Color (RTSTRUCT) */
	uint16_t cielab[3];               /* SEG: the CIELab value as stored (has_color) */
	struct segobj_code category;      /* Segmented Property Category Code */
	struct segobj_code type;          /* Segmented Property Type Code */
	struct segobj_code type_modifier; /* its first Segmented Property Type Modifier (laterality) */
	struct segobj_code region;        /* Anatomic Region Sequence */
	struct segobj_code region_modifier; /* its first Anatomic Region Modifier */
	char algorithm_type[17];          /* SEG: AUTOMATIC, SEMIAUTOMATIC, MANUAL */
	char algorithm_name[SEGOBJ_LABEL_MAX];
	char rt_interpreted_type[17];     /* RTSTRUCT: RT ROI Interpreted Type (ORGAN, GTV, ...) */
	/* RTSTRUCT: its Contour Geometric Types seen, as bits (1 << enum
	 * segobj_contour_type); SEG: 0. */
	unsigned contour_types;
	size_t nframes;                   /* SEG: frames of this segment (label map: 0) */
	size_t ncontours;                 /* RTSTRUCT: contours of this ROI */
};

/* One frame of a SEG: a plane of rows x columns pixels. */
struct segobj_frame {
	unsigned segment;                 /* Referenced Segment Number; label map: 0 */
	double position[3];               /* Image Position (Patient) of its first pixel, LPS mm */
	bool has_position;                /* false: the frame has no Plane Position (refused by import) */
	const uint8_t *pixels;            /* rows * columns values, column index fastest:
					   * BINARY 0/1, FRACTIONAL 0..max_fractional,
					   * LABELMAP the segment number (0: background) */
	char referenced_sop_instance_uid[SEGOBJ_UID_MAX]; /* its Derivation Image source, or "" */
};

enum segobj_contour_type {
	SEGOBJ_CLOSED_PLANAR,
	SEGOBJ_OPEN_PLANAR,
	SEGOBJ_OPEN_NONPLANAR,
	SEGOBJ_POINT,
	SEGOBJ_OTHER,                     /* anything else (CLOSEDPLANAR_XOR, ...) */
};

/* One contour of an RT Structure Set ROI. */
struct segobj_contour {
	unsigned roi;                     /* Referenced ROI Number */
	enum segobj_contour_type type;
	size_t npoints;
	const double *xyz;                /* npoints * 3, LPS mm (Contour Data) */
	char referenced_sop_instance_uid[SEGOBJ_UID_MAX]; /* Contour Image Sequence, or "" */
};

struct segobj {
	enum segobj_kind kind;
	char sop_class_uid[SEGOBJ_UID_MAX];
	char sop_instance_uid[SEGOBJ_UID_MAX];
	char series_uid[SEGOBJ_UID_MAX];
	char study_uid[SEGOBJ_UID_MAX];
	char frame_of_reference_uid[SEGOBJ_UID_MAX];  /* SEG: its own; RTSTRUCT: the Referenced
						       * Frame of Reference's ("" when absent) */
	/* The CT series it was made on: Referenced Series Sequence (SEG, or
	 * the first RT Referenced Series of an RTSTRUCT), "" when absent. */
	char referenced_series_uid[SEGOBJ_UID_MAX];
	/* SOP Instance UIDs it refers to (Referenced Instance Sequence items,
	 * the RT Contour Image Sequences); may be 0. */
	size_t nreferenced_instances;
	char (*referenced_instances)[SEGOBJ_UID_MAX];
	/* Of those, the distinct instances the object lists under
	 * referenced_series_uid itself (SEG: its Referenced Series Sequence
	 * item's Referenced Instance Sequence; RTSTRUCT: that RT Referenced
	 * Series' Contour Image Sequence); 0 when it lists none. A series
	 * given with fewer instances than this is incomplete. */
	size_t nseries_instances;
	char source_modality[17];         /* SEG: the referenced series' modality when the
					   * object says (e.g. from Source Image Sequence
					   * or its own Modality of the derivation), else "" */
	char manufacturer[SEGOBJ_LABEL_MAX];
	char software[SEGOBJ_LABEL_MAX];  /* Software Versions, first value */

	/* SEG geometry (shared by all frames: the import refuses an object whose
	 * frames differ in orientation or spacing; the bridge reads Per-Frame
	 * groups when there is no Shared one and checks they agree). */
	uint32_t rows, columns;
	double orientation[6];            /* Image Orientation (Patient): row, then column cosines */
	double pixel_spacing[2];          /* DICOM order: between rows, between columns (mm) */
	double slice_thickness;           /* Pixel Measures' Slice Thickness, 0 when absent */
	unsigned max_fractional;          /* FRACTIONAL: Maximum Fractional Value (e.g. 255) */

	size_t nsegments;
	struct segobj_segment *segments;
	size_t nframes;
	struct segobj_frame *frames;
	size_t ncontours;
	struct segobj_contour *contours;

	/* Owned storage behind the pointers above (one allocation each). */
	uint8_t *pixel_store;
	double *point_store;
};

#ifdef __cplusplus
}
#endif

#endif
