/*
 * segnifti.h: a NIfTI label map (.nii or .nii.gz, as TotalSegmentator and
 * most research tools write them) read into the record a DICOM Label Map
 * Segmentation is read into (segobj.h), so that the import stage
 * (segimport.h) meshes both the same way; and TotalSegmentator's class names
 * and codes, for its label maps and for the DICOM Segmentations it writes.
 *
 * Geometry. NIfTI maps voxel (i, j, k) to RAS+ millimetres with its sform
 * (used when sform_code > 0) or else its qform (qform_code > 0); a file with
 * neither has no position in patient space and is refused. RAS is turned
 * into DICOM's LPS by negating x and y. Then, exactly:
 *   frame k            = the NIfTI slice k along its third axis (k = 0 first)
 *   columns, rows      = dim[1] (i), dim[2] (j)
 *   pixel (col i, row j) of frame k = voxel (i, j, k)
 *   orientation        = unit LPS direction of the i axis (along a row),
 *                        then of the j axis (along a column)
 *   pixel_spacing      = { |j axis|, |i axis| } (DICOM order: between rows,
 *                        between columns), mm
 *   frame k's position = LPS of the centre of voxel (0, 0, k)
 * The k axis need not be perpendicular to the frames (each frame carries its
 * own position, as in a SEG); the i and j axes must be orthogonal.
 *
 * Any thread; the functions share no state (nifticlib's read path only reads
 * its global options, which recon3d never changes).
 */
#ifndef R3D_SEGNIFTI_H
#define R3D_SEGNIFTI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "r3d/err.h"
#include "r3d/segobj.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Input bounds, each refused with its name. */
#define SEGNIFTI_MAX_DIM 65535              /* rows, columns (DICOM US) */
#define SEGNIFTI_MAX_VOXELS (1ULL << 31)    /* i * j * k */
#define SEGNIFTI_MAX_LABEL 255              /* a Label Map Segmentation's 8-bit pixels */
#define SEGNIFTI_MAX_TABLE_BYTES (1 << 20)  /* a JSON label table file */
/* |cos| of the angle between the i and j axes above which the map is sheared. */
#define SEGNIFTI_SHEAR_TOLERANCE 1e-4

/* ===================================================================== */
/* NIfTI label maps                                                      */
/* ===================================================================== */

/*
 * Reads the label map at path into a segobj of kind SEGOBJ_SEG_LABELMAP
 * with the geometry above; frame k's pixels are the label values (0:
 * background). One segment per label value present in the volume (and only
 * those), ascending, number = the label value, named and coded by the table:
 *
 *   label_table NULL: TotalSegmentator v2's 'total' task, index to class
 *     name (totalseg_total_name()), with that class's colour and codes
 *     from totalseg_find(): category, type, type modifier (so kidney_left
 *     is Kidney with modifier Left, which TotalSegmentator's own SEGs leave
 *     out), region and region modifier, all as its table has them.
 *   label_table a path: a JSON object, label value to an entry,
 *       { "1": { "name": "liver", "color": "#rrggbb" or [r, g, b],
 *                "category": "VALUE^SCHEME^MEANING", "type": "...",
 *                "laterality": "VALUE^SCHEME^MEANING" or "left" / "right" } }
 *     with "name" required and the others optional (absent: no colour, ""
 *     codes); keys 1..255, no duplicates, no other members.
 *   A label with no entry in the table is named "label N", with no colour
 *   and no codes.
 *
 * A NIfTI carries no UIDs, Frame of Reference, CIELab value or algorithm:
 * those fields are "" / 0 (cielab stays {0, 0, 0}: the colour is rgb).
 * slice_thickness is 0 (absent); frames have has_position true, segment 0
 * and no referenced instance; segments have nframes 0.
 *
 * Refuses with one reason (R3D_EINVAL unless said): a file nifticlib cannot
 * read (R3D_EIO when it cannot be opened), no sform or qform, anything but a
 * 3D volume (a 4D one with one time point is fine), a datatype that is not
 * an integer type, scaling (scl_slope other than 0 or 1, or scl_inter not 0),
 * a non-finite or degenerate affine, sheared i and j axes, a bound above
 * exceeded (named), a negative label or one above 255 (the value and its
 * voxel named), a label table that is not as described (the entry and member
 * named). A map with no label at all gives nsegments 0. On success the
 * caller owns *out and frees it with segnifti_free() only (its pixel store
 * is a huge-page mapping: never free() it or pass it to bridge_segobj_free()).
 * Peak memory: the file's voxels in their own datatype plus one byte each.
 */
bool segnifti_read(struct r3d_err *err, const char *path, const char *label_table,
		   struct segobj **out);
void segnifti_free(struct segobj *s);

/* Writes a CT volume (int16 HU, x fastest, nx * ny * nz) as an uncompressed
 * NIfTI-1 file (.nii) for an external engine: sform and qform code 1
 * (scanner), the affine the volume's (i, j, k) -> LPS one turned into RAS
 * (x and y negated), pixdim the column lengths, units mm. Checks the file's
 * size after writing (nifticlib reports no error). */
bool segnifti_write_volume(struct r3d_err *err, const char *path, const int16_t *hu, size_t nx,
			   size_t ny, size_t nz, const double affine_lps[4][4]);

/* ===================================================================== */
/* TotalSegmentator's classes                                            */
/* ===================================================================== */

struct totalseg_code {            /* "" when absent; never NULL */
	const char *value;
	const char *scheme;
	const char *meaning;
};

enum totalseg_laterality_source {
	TOTALSEG_LAT_NONE,            /* unpaired or unsided */
	TOTALSEG_LAT_TYPE_MODIFIER,   /* the table's Segmented Property Type Modifier */
	TOTALSEG_LAT_REGION_MODIFIER, /* the table's Anatomic Region Modifier (kidney_cyst_left) */
	TOTALSEG_LAT_NAME,            /* the table has none: from the name's _left / _right */
};

/* One class as TotalSegmentator's SNOMED mapping table has it. Its DICOM
 * Segmentations carry the category and type only (laterality is in the
 * label, kidney_left); the other columns are given here as the table has
 * them. */
struct totalseg_class {
	const char *name;                       /* class name = TotalSegmentator's Segment Label */
	struct totalseg_code category;          /* Segmented Property Category */
	struct totalseg_code type;              /* Segmented Property Type */
	struct totalseg_code type_modifier;     /* the table's, laterality or other
						 * (lung_covid_infiltrate: COVID-19) */
	struct totalseg_code region;            /* Anatomic Region */
	struct totalseg_code region_modifier;
	/* SCT 7771000 Left or SCT 24028007 Right, or "" (source NONE). Source
	 * NAME is, in this table, always a class whose type already names the
	 * side ("Left atrium", "Middle lobe of right lung"): the side is given
	 * here but is no modifier to write. */
	struct totalseg_code laterality;
	enum totalseg_laterality_source laterality_source;
	bool has_color;
	uint8_t rgb[3];                         /* its display colour, 0..255 sRGB */
};

/* The class called exactly `name` (case matters), or NULL. Static storage. */
const struct totalseg_class *totalseg_find(const char *name);

/* The i-th class of the table (0-based, table order), NULL past the end. */
const struct totalseg_class *totalseg_class_at(size_t i);

/* TotalSegmentator v2's 'total' task: the class name of label `index`
 * (1..TOTALSEG_TOTAL_CLASSES), NULL otherwise. Static storage. */
#define TOTALSEG_TOTAL_CLASSES 117
const char *totalseg_total_name(unsigned index);

#ifdef __cplusplus
}
#endif

#endif
