/*
 * attrs.cpp: reads the attributes the index needs from a received DICOM file
 * without loading its pixel data (see r3d/bridge.h). Association threads.
 */
#include "r3d/bridge.h"

#include <cstdio>
#include <cstring>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcmetinf.h"

#include "bridge_util.h"
#include "prefix_stream.h"

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <new>
#include <vector>

/* Values longer than this are left on disk while parsing. */
#define ATTRS_MAX_READ_LENGTH 256
/* The attributes we need come before (0028,0012); in a CT file they sit in
 * the first few kilobytes. One read of this much is parsed in memory; a file
 * whose header is longer is parsed from disk. */
#define ATTRS_PREFIX_BYTES (64 * 1024)
static const DcmTagKey attrs_stop_tag(0x0028, 0x0012);

/* Parses the header from one read of the file's first bytes. False when the
 * attributes are not all within them (the caller then reads the file). */
static bool parse_prefix(const char *path, DcmFileFormat &ff)
{
	auto buf = std::make_shared<std::vector<char>>();
	ssize_t n = 0;
	int fd;

	try {
		buf->resize(ATTRS_PREFIX_BYTES);
	} catch (const std::bad_alloc &) {
		return false;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	while (n < ATTRS_PREFIX_BYTES) {
		ssize_t r = read(fd, buf->data() + n, (size_t)(ATTRS_PREFIX_BYTES - n));
		if (r <= 0)
			break;
		n += r;
	}
	close(fd);
	if (n < 132)
		return false;
	buf->resize((size_t)n);
	/* Not a DcmInputBufferStream: on one, DCMTK allocates every value at the
	 * length it claims before reading it (prefix_stream.h). */
	PrefixStream in(buf);
	ff.transferInit();
	OFCondition cond = ff.readUntilTag(in, EXS_Unknown, EGL_noChange, ATTRS_MAX_READ_LENGTH,
					   attrs_stop_tag);
	ff.transferEnd();
	if (cond.bad())
		return false;
	/* Everything needed must be there: a cut header is re-read from disk. */
	OFString v;
	return ff.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, v).good();
}

static void get_str(DcmItem *item, const DcmTagKey &tag, char *dst, size_t size)
{
	OFString v;

	dst[0] = '\0';
	if (item != NULL && item->findAndGetOFString(tag, v).good()) {
		snprintf(dst, size, "%s", v.c_str());
		/* trailing spaces/NUL padding are not part of the value */
		size_t n = strlen(dst);
		while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\0'))
			dst[--n] = '\0';
	}
}

static long get_long(DcmItem *item, const DcmTagKey &tag, long fallback)
{
	OFString v;
	long out;
	char *end = NULL;

	if (item->findAndGetOFString(tag, v).bad() || v.empty())
		return fallback;
	out = strtol(v.c_str(), &end, 10);
	if (end == v.c_str())
		return fallback;
	return out;
}

/* All n values of a decimal string (DS), or false. */
static bool get_doubles(DcmItem *item, const DcmTagKey &tag, double *out, unsigned long n)
{
	DcmElement *el = NULL;

	if (item->findAndGetElement(tag, el).bad() || el == NULL || el->getVM() < n)
		return false;
	for (unsigned long i = 0; i < n; i++) {
		Float64 v;
		if (el->getFloat64(v, i).bad())
			return false;
		out[i] = v;
	}
	return true;
}

/* Every value of a multi-valued string, backslashes kept. */
static void get_all(DcmItem *item, const DcmTagKey &tag, char *dst, size_t size)
{
	OFString v;

	dst[0] = '\0';
	if (item->findAndGetOFStringArray(tag, v).good()) {
		snprintf(dst, size, "%s", v.c_str());
		size_t n = strlen(dst);
		while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\0'))
			dst[--n] = '\0';
	}
}

static long get_us(DcmItem *item, const DcmTagKey &tag)
{
	Uint16 v = 0;

	if (item->findAndGetUint16(tag, v).bad())
		return 0;
	return (long)v;
}

static DcmItem *first_item(DcmItem *item, const DcmTagKey &seq)
{
	DcmItem *out = NULL;

	if (item == NULL || item->findAndGetSequenceItem(seq, out, 0).bad())
		return NULL;
	return out;
}

/* The series (and an RTSTRUCT's Frame of Reference) a Segmentation or RT
 * Structure Set refers to. The header read stops before (0028,0012); the
 * RTSTRUCT's references come after it, so these objects are read whole
 * (long values such as Pixel Data and Contour Data stay on disk). */
static bool read_references(const char *path, struct bridge_instance_attrs *out)
{
	DcmFileFormat ff;

	if (ff.loadFile(OFFilename(path), EXS_Unknown, EGL_noChange, ATTRS_MAX_READ_LENGTH,
			ERM_autoDetect).bad())
		return false;
	DcmDataset *ds = ff.getDataset();
	if (strcmp(out->sop_class_uid, BRIDGE_UID_RTSTRUCT_STORAGE) != 0) {
		get_str(first_item(ds, DCM_ReferencedSeriesSequence), DCM_SeriesInstanceUID,
			out->ref_series_uid, sizeof(out->ref_series_uid));
		DcmItem *fg = first_item(ds, DCM_SharedFunctionalGroupsSequence);
		DcmItem *src = first_item(first_item(fg, DCM_DerivationImageSequence), DCM_SourceImageSequence);
		if (src == NULL) {
			fg = first_item(ds, DCM_PerFrameFunctionalGroupsSequence);
			src = first_item(first_item(fg, DCM_DerivationImageSequence), DCM_SourceImageSequence);
		}
		get_str(src, DCM_ReferencedSOPInstanceUID, out->ref_sop_uid, sizeof(out->ref_sop_uid));
		return true;
	}
	DcmItem *fr = first_item(ds, DCM_ReferencedFrameOfReferenceSequence);
	if (fr == NULL)
		return true;
	get_str(fr, DCM_FrameOfReferenceUID, out->frame_of_reference_uid,
		sizeof(out->frame_of_reference_uid));
	get_str(first_item(first_item(fr, DCM_RTReferencedStudySequence), DCM_RTReferencedSeriesSequence),
		DCM_SeriesInstanceUID, out->ref_series_uid, sizeof(out->ref_series_uid));
	DcmItem *roi = first_item(ds, DCM_ROIContourSequence);
	get_str(first_item(first_item(roi, DCM_ContourSequence), DCM_ContourImageSequence),
		DCM_ReferencedSOPInstanceUID, out->ref_sop_uid, sizeof(out->ref_sop_uid));
	return true;
}

extern "C" bool bridge_read_instance_attrs(struct r3d_err *err, const char *path,
					   struct bridge_instance_attrs *out)
{
	memset(out, 0, sizeof(*out));
	try {
		DcmFileFormat ff;
		if (!r3d_bridge_util::inflated_size_ok(err, path, "dataset"))
			return false;
		if (!parse_prefix(path, ff)) {
			ff.clear();
			OFCondition cond = ff.loadFileUntilTag(OFFilename(path), EXS_Unknown,
							       EGL_noChange, ATTRS_MAX_READ_LENGTH,
							       ERM_autoDetect, attrs_stop_tag);
			if (cond.bad())
				return r3d_err_set(err, R3D_EINVAL, "cannot parse dataset: %s",
						   cond.text());
		}
		DcmDataset *ds = ff.getDataset();
		DcmMetaInfo *meta = ff.getMetaInfo();
		get_str(ds, DCM_StudyInstanceUID, out->study_uid, sizeof(out->study_uid));
		get_str(ds, DCM_SeriesInstanceUID, out->series_uid, sizeof(out->series_uid));
		get_str(ds, DCM_SOPInstanceUID, out->sop_instance_uid, sizeof(out->sop_instance_uid));
		get_str(ds, DCM_SOPClassUID, out->sop_class_uid, sizeof(out->sop_class_uid));
		if (meta != NULL)
			get_str(meta, DCM_TransferSyntaxUID, out->transfer_syntax,
				sizeof(out->transfer_syntax));
		get_str(ds, DCM_Modality, out->modality, sizeof(out->modality));
		get_str(ds, DCM_SeriesDescription, out->series_description,
			sizeof(out->series_description));
		out->series_number = get_long(ds, DCM_SeriesNumber, -1);
		out->number_of_frames = get_long(ds, DCM_NumberOfFrames, 1);
		if (out->number_of_frames < 1)
			out->number_of_frames = 1;
		get_str(ds, DCM_AccessionNumber, out->accession_number, sizeof(out->accession_number));
		get_str(ds, DCM_PatientName, out->patient_name, sizeof(out->patient_name));
		out->rows = get_us(ds, DCM_Rows);
		out->columns = get_us(ds, DCM_Columns);
		get_str(ds, DCM_FrameOfReferenceUID, out->frame_of_reference_uid,
			sizeof(out->frame_of_reference_uid));
		get_all(ds, DCM_ImageType, out->image_type, sizeof(out->image_type));
		get_str(ds, DCM_StudyDescription, out->study_description, sizeof(out->study_description));
		get_str(ds, DCM_Manufacturer, out->manufacturer, sizeof(out->manufacturer));
		get_str(ds, DCM_BodyPartExamined, out->body_part, sizeof(out->body_part));
		get_str(ds, DCM_ContrastBolusAgent, out->contrast_agent, sizeof(out->contrast_agent));
		get_all(ds, DCM_ConvolutionKernel, out->kernel, sizeof(out->kernel));
		if (!get_doubles(ds, DCM_SliceThickness, &out->slice_thickness, 1) ||
		    !(out->slice_thickness > 0 && out->slice_thickness < 1000))
			out->slice_thickness = 0;
		out->has_position = get_doubles(ds, DCM_ImagePositionPatient, out->position, 3);
		out->has_orientation = get_doubles(ds, DCM_ImageOrientationPatient, out->orientation, 6);
		out->is_segmentation = strcmp(out->sop_class_uid, BRIDGE_UID_SEG_STORAGE) == 0 ||
				       strcmp(out->sop_class_uid, BRIDGE_UID_LABELMAP_SEG_STORAGE) == 0 ||
				       strcmp(out->sop_class_uid, BRIDGE_UID_RTSTRUCT_STORAGE) == 0;
		if (out->is_segmentation && !read_references(path, out))
			return r3d_err_set(err, R3D_EINVAL, "cannot parse the segmentation's references");
	} catch (...) {
		return r3d_err_set(err, R3D_EINVAL, "cannot parse dataset");
	}
	if (out->study_uid[0] == '\0')
		return r3d_err_set(err, R3D_EINVAL, "Study Instance UID (0020,000D) missing");
	if (out->series_uid[0] == '\0')
		return r3d_err_set(err, R3D_EINVAL, "Series Instance UID (0020,000E) missing");
	if (out->sop_instance_uid[0] == '\0')
		return r3d_err_set(err, R3D_EINVAL, "SOP Instance UID (0008,0018) missing");
	if (!bridge_uid_valid(out->study_uid))
		return r3d_err_set(err, R3D_EINVAL, "Study Instance UID is not a valid UID");
	if (!bridge_uid_valid(out->series_uid))
		return r3d_err_set(err, R3D_EINVAL, "Series Instance UID is not a valid UID");
	if (!bridge_uid_valid(out->sop_instance_uid))
		return r3d_err_set(err, R3D_EINVAL, "SOP Instance UID is not a valid UID");
	return true;
}
