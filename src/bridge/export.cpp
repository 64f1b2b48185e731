/*
 * export.cpp: the result objects recon3d sends back to the PACS (see "Result
 * objects" in r3d/bridge.h): one Surface Segmentation holding every
 * structure as a surface mesh, one Encapsulated STL per structure, and the
 * deterministic UIDs that let a retried job write the same instances again.
 * Patient, study and frame of reference are copied from one instance of the
 * source series; the source instances are referenced. Files are written
 * under a unique temporary name in the target folder, synced and renamed.
 * Any thread; nothing here keeps state between calls.
 */
extern "C" {
#include "r3d/err.h"
#include "r3d/util.h"
}
#include "r3d/bridge.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <new>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmiod/cielabutil.h>

#include <openssl/evp.h>
#include "bridge_util.h"

using r3d_bridge_util::code_ok;
using r3d_bridge_util::code_present;
using r3d_bridge_util::codes_ok;
using r3d_bridge_util::host_serial;
using r3d_bridge_util::identity_check;
using r3d_bridge_util::save_atomic;
using r3d_bridge_util::put_recognizable;
using r3d_bridge_util::text_ok;

/* Values longer than this stay on disk while the source header is parsed. */
#define EXPORT_MAX_READ_LENGTH (64 * 1024)
#define EXPORT_STL_HEADER 84    /* binary STL: 80-byte header + uint32 count */
#define EXPORT_STL_FACET 50     /* binary STL: bytes per triangle */

namespace {

/* ---------------------------------------------------------------------- */
/* Codes                                                                  */
/* ---------------------------------------------------------------------- */

/* Algorithm family (CID 7162, Surface Processing Algorithm Families) of the
 * surface generation: marching cubes decides each vertex from a 2x2x2 voxel
 * neighbourhood of the segmented mask. */
const struct bridge_code algorithm_family = {"123101", "DCM", "Neighborhood Analysis"};
const struct bridge_code unit_mm = {"mm", "UCUM", "mm"};

#define EXPORT_ALGORITHM_NAME "recon3d"
#define EXPORT_CONTENT_LABEL "RECON3D"
#define EXPORT_MANUFACTURER "recon3d"
#define EXPORT_MODEL_NAME "recon3d"

/* Patient, study and frame of reference attributes copied from the source
 * when present (Patient, Clinical Trial Subject, General Study, Patient
 * Study, Clinical Trial Study and Frame of Reference modules). */
const DcmTagKey copied_tags[] = {
	DCM_SpecificCharacterSet,
	DCM_PatientName, DCM_PatientID, DCM_IssuerOfPatientID,
	DCM_IssuerOfPatientIDQualifiersSequence, DCM_TypeOfPatientID, DCM_PatientBirthDate,
	DCM_PatientBirthTime, DCM_PatientSex, DCM_OtherPatientIDsSequence, DCM_OtherPatientNames,
	DCM_PatientComments, DCM_PatientSpeciesDescription, DCM_PatientSpeciesCodeSequence,
	DCM_PatientBreedDescription, DCM_PatientBreedCodeSequence, DCM_BreedRegistrationSequence,
	DCM_ResponsiblePerson, DCM_ResponsiblePersonRole, DCM_ResponsibleOrganization,
	DCM_PatientIdentityRemoved, DCM_DeidentificationMethod,
	DCM_DeidentificationMethodCodeSequence, DCM_QualityControlSubject,
	DCM_ClinicalTrialSponsorName, DCM_ClinicalTrialProtocolID, DCM_ClinicalTrialProtocolName,
	DCM_ClinicalTrialSiteID, DCM_ClinicalTrialSiteName, DCM_ClinicalTrialSubjectID,
	DCM_ClinicalTrialSubjectReadingID,
	DCM_StudyInstanceUID, DCM_StudyDate, DCM_StudyTime, DCM_ReferringPhysicianName,
	DCM_ReferringPhysicianIdentificationSequence, DCM_StudyID, DCM_AccessionNumber,
	DCM_IssuerOfAccessionNumberSequence, DCM_StudyDescription, DCM_PhysiciansOfRecord,
	DCM_NameOfPhysiciansReadingStudy, DCM_ProcedureCodeSequence,
	DCM_ReasonForPerformedProcedureCodeSequence,
	DCM_AdmittingDiagnosesDescription, DCM_PatientAge, DCM_PatientSize, DCM_PatientWeight,
	DCM_ClinicalTrialTimePointID, DCM_ClinicalTrialTimePointDescription,
	DCM_FrameOfReferenceUID, DCM_PositionReferenceIndicator,
};

/* Type 2 attributes of those modules: present, empty when the source lacks them. */
const DcmTagKey type2_tags[] = {
	DCM_PatientName, DCM_PatientID, DCM_PatientBirthDate, DCM_PatientSex,
	DCM_StudyDate, DCM_StudyTime, DCM_ReferringPhysicianName, DCM_StudyID,
	DCM_AccessionNumber, DCM_PositionReferenceIndicator,
};

/* ---------------------------------------------------------------------- */
/* Checks                                                                 */
/* ---------------------------------------------------------------------- */

bool is_ascii(const char *s)
{
	for (; s != nullptr && *s != '\0'; s++)
		if (static_cast<unsigned char>(*s) >= 0x80)
			return false;
	return true;
}




bool info_check(struct r3d_err *err, const struct bridge_export_info *info)
{
	if (!identity_check(err, info))
		return false;
	if (info->nrefs == 0 || info->refs == nullptr)
		return r3d_err_set(err, R3D_EINVAL, "no source instances to reference");
	if (info->nrefs > BRIDGE_EXPORT_MAX_REFS)
		return r3d_err_set(err, R3D_EINVAL, "%zu source instances (at most %d)", info->nrefs,
				   BRIDGE_EXPORT_MAX_REFS);
	for (size_t i = 0; i < info->nrefs; i++)
		if (!bridge_uid_valid(info->refs[i].sop_class_uid) ||
		    !bridge_uid_valid(info->refs[i].sop_instance_uid))
			return r3d_err_set(err, R3D_EINVAL, "source reference %zu has a malformed UID", i);
	return true;
}

bool structure_check(struct r3d_err *err, const struct bridge_export_structure *s, size_t i)
{
	if (!text_ok(s->name, BRIDGE_LO_MAX))
		return r3d_err_set(err, R3D_EINVAL, "structure %zu: name empty, too long or with "
				   "control characters", i);
	if (s->nvert == 0 || s->ntri == 0 || s->xyz == nullptr || s->tri == nullptr)
		return r3d_err_set(err, R3D_EINVAL, "structure %zu (%s): empty mesh", i, s->name);
	if (s->nvert > BRIDGE_EXPORT_MAX_POINTS || s->ntri > BRIDGE_EXPORT_MAX_TRIANGLES)
		return r3d_err_set(err, R3D_EINVAL, "structure %zu (%s): %zu points, %zu triangles "
				   "(at most %u each)", i, s->name, s->nvert, s->ntri,
				   BRIDGE_EXPORT_MAX_POINTS);
	for (int c = 0; c < 3; c++)
		if (!(s->rgb[c] >= 0.0f && s->rgb[c] <= 1.0f))
			return r3d_err_set(err, R3D_EINVAL, "structure %zu (%s): colour outside [0, 1]",
					   i, s->name);
	for (size_t k = 0; k < s->nvert * 3; k++)
		if (!std::isfinite(s->xyz[k]))
			return r3d_err_set(err, R3D_EINVAL, "structure %zu (%s): point %zu not finite",
					   i, s->name, k / 3);
	for (size_t k = 0; k < s->ntri * 3; k++)
		if (s->tri[k] >= s->nvert)
			return r3d_err_set(err, R3D_EINVAL, "structure %zu (%s): triangle %zu uses "
					   "vertex %u of %zu", i, s->name, k / 3, s->tri[k], s->nvert);
	const int flags[] = {s->finite_volume, s->manifold};
	for (int f : flags)
		if (f != BRIDGE_FLAG_UNKNOWN && f != BRIDGE_FLAG_YES && f != BRIDGE_FLAG_NO)
			return r3d_err_set(err, R3D_EINVAL, "structure %zu (%s): bad check flag %d",
					   i, s->name, f);
	if (!codes_ok(&s->codes))
		return r3d_err_set(err, R3D_EINVAL, "structure %zu (%s): category and type codes "
				   "missing or a code malformed", i, s->name);
	return true;
}

/* ---------------------------------------------------------------------- */
/* Dataset building                                                       */
/* ---------------------------------------------------------------------- */

bool put(DcmItem *it, const DcmTagKey &tag, const char *value)
{
	return it->putAndInsertString(tag, value != nullptr ? value : "").good();
}

bool put_long(DcmItem *it, const DcmTagKey &tag, long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", v);
	return put(it, tag, buf);
}

/* Appends one item with the Code Sequence Macro to sequence seq of parent. */
bool put_code(DcmItem *parent, const DcmTagKey &seq, const struct bridge_code &c)
{
	DcmItem *it = nullptr;

	return parent->findOrCreateSequenceItem(seq, it, -2).good() &&
	       put(it, DCM_CodeValue, c.value) && put(it, DCM_CodingSchemeDesignator, c.scheme) &&
	       put(it, DCM_CodeMeaning, c.meaning);
}

/* Segmented Property Category and Type (with the type's modifier, the
 * laterality, inside the type's item) of one segment or surface. */
bool put_property_codes(DcmItem *parent, const struct bridge_segment_codes &c)
{
	DcmItem *type = nullptr;

	if (!put_code(parent, DCM_SegmentedPropertyCategoryCodeSequence, c.category) ||
	    !put_code(parent, DCM_SegmentedPropertyTypeCodeSequence, c.type) ||
	    parent->findOrCreateSequenceItem(DCM_SegmentedPropertyTypeCodeSequence, type, 0).bad())
		return false;
	return !code_present(&c.type_modifier) ||
	       put_code(type, DCM_SegmentedPropertyTypeModifierCodeSequence, c.type_modifier);
}

/* Anatomic Region Sequence (with its modifier) when the segment has one. */
bool put_region(DcmItem *parent, const struct bridge_segment_codes &c)
{
	DcmItem *region = nullptr;

	if (!code_present(&c.region))
		return true;
	if (!put_code(parent, DCM_AnatomicRegionSequence, c.region) ||
	    parent->findOrCreateSequenceItem(DCM_AnatomicRegionSequence, region, 0).bad())
		return false;
	return !code_present(&c.region_modifier) ||
	       put_code(region, DCM_AnatomicRegionModifierSequence, c.region_modifier);
}

/* Appends one item with the Algorithm Identification Macro. */
bool put_algorithm(DcmItem *parent, const DcmTagKey &seq)
{
	DcmItem *it = nullptr;

	return parent->findOrCreateSequenceItem(seq, it, -2).good() &&
	       put_code(it, DCM_AlgorithmFamilyCodeSequence, algorithm_family) &&
	       put(it, DCM_AlgorithmName, EXPORT_ALGORITHM_NAME) &&
	       put(it, DCM_AlgorithmVersion, R3D_VERSION);
}

/* Appends one item per source instance (SOP Instance Reference Macro). */
bool put_refs(DcmItem *parent, const DcmTagKey &seq, const struct bridge_export_info *info)
{
	bool ok = parent->insertEmptyElement(seq).good();

	for (size_t i = 0; ok && i < info->nrefs; i++) {
		DcmItem *it = nullptr;
		ok = parent->findOrCreateSequenceItem(seq, it, -2).good() &&
		     put(it, DCM_ReferencedSOPClassUID, info->refs[i].sop_class_uid) &&
		     put(it, DCM_ReferencedSOPInstanceUID, info->refs[i].sop_instance_uid);
	}
	return ok;
}

/* The date and time of this writing, or the caller's. */
struct stamp {
	char date[16];
	char time[16];
};

void stamp_make(const struct bridge_export_info *info, struct stamp *st)
{
	time_t now = time(nullptr);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(st->date, sizeof(st->date), "%Y%m%d", &tm);
	strftime(st->time, sizeof(st->time), "%H%M%S", &tm);
	if (info->content_date != nullptr)
		snprintf(st->date, sizeof(st->date), "%s", info->content_date);
	if (info->content_time != nullptr)
		snprintf(st->time, sizeof(st->time), "%s", info->content_time);
}

/* What the writers take from the source instance besides the copied tags. */
struct source_facts {
	OFString series_uid;
	OFString frame_of_reference_uid;
};

/* Loads the source header (not its pixel data) and copies the patient, study
 * and frame of reference attributes into ds. Non-ASCII strings of ours need
 * a dataset in UTF-8: the copied values are converted when the source uses
 * another character set. */
bool copy_source(struct r3d_err *err, const struct bridge_export_info *info, bool need_utf8,
		 DcmDataset *ds, struct source_facts *facts)
{
	DcmFileFormat src;
	DcmDataset *sds = src.getDataset();
	OFString study_uid, charset;
	OFCondition cond;

	cond = src.loadFileUntilTag(info->source_path, EXS_Unknown, EGL_noChange,
				    EXPORT_MAX_READ_LENGTH, ERM_autoDetect, DCM_PixelData);
	if (cond.bad())
		return r3d_err_set(err, R3D_EINVAL, "cannot read source instance '%s': %s",
				   info->source_path, cond.text());
	if (sds->findAndGetOFString(DCM_StudyInstanceUID, study_uid).bad() ||
	    !bridge_uid_valid(study_uid.c_str()) ||
	    sds->findAndGetOFString(DCM_SeriesInstanceUID, facts->series_uid).bad() ||
	    !bridge_uid_valid(facts->series_uid.c_str()))
		return r3d_err_set(err, R3D_EINVAL, "source instance '%s' lacks a valid study or "
				   "series UID", info->source_path);
	if (sds->findAndGetOFString(DCM_FrameOfReferenceUID, facts->frame_of_reference_uid).bad() ||
	    !bridge_uid_valid(facts->frame_of_reference_uid.c_str()))
		return r3d_err_set(err, R3D_EINVAL, "source instance '%s' has no Frame of Reference "
				   "UID: surfaces cannot be placed", info->source_path);
	for (const DcmTagKey &t : copied_tags) {
		DcmElement *e = nullptr;
		/* An empty value is left out: a Type 1C attribute such as Specific
		 * Character Set must not be empty (the Type 2 ones come back below). */
		if (sds->findAndGetElement(t, e).bad() || e == nullptr || e->getLength() == 0)
			continue;
		DcmElement *copy = OFstatic_cast(DcmElement *, e->clone());
		if (copy == nullptr || ds->insert(copy, true).bad()) {
			delete copy;
			return r3d_err_set(err, R3D_ENOMEM, "cannot copy the source attributes");
		}
	}
	for (const DcmTagKey &t : type2_tags)
		if (!ds->tagExists(t) && ds->insertEmptyElement(t).bad())
			return r3d_err_set(err, R3D_ENOMEM, "cannot insert an empty attribute");
	if (!need_utf8)
		return true;
	ds->findAndGetOFStringArray(DCM_SpecificCharacterSet, charset);
	if (charset.empty() || charset == "ISO_IR 192") {
		/* ASCII (the default repertoire) is a subset of UTF-8. */
		return put(ds, DCM_SpecificCharacterSet, "ISO_IR 192") ||
		       r3d_err_set(err, R3D_ENOMEM, "cannot set the character set");
	}
	cond = ds->convertToUTF8();
	if (cond.bad())
		return r3d_err_set(err, R3D_EINVAL, "cannot convert the source's character set "
				   "'%s' to UTF-8 for non-ASCII names: %s", charset.c_str(), cond.text());
	return true;
}


/* SOP Common, series, equipment, frame of reference and the Common Instance
 * Reference module: everything both objects share. */
bool fill_common(struct r3d_err *err, DcmDataset *ds, const struct bridge_export_info *info,
		 const char *sop_class, const char *modality, const struct stamp &st,
		 const struct source_facts &facts)
{
	std::string serial = info->device_serial_number != nullptr ?
		std::string(info->device_serial_number) : host_serial();
	DcmItem *series = nullptr;
	bool ok = true;

	ok &= put(ds, DCM_SOPClassUID, sop_class);
	ok &= put(ds, DCM_SOPInstanceUID, info->sop_instance_uid);
	ok &= put(ds, DCM_InstanceCreationDate, st.date);
	ok &= put(ds, DCM_InstanceCreationTime, st.time);
	ok &= put(ds, DCM_Modality, modality);
	ok &= put(ds, DCM_SeriesInstanceUID, info->series_uid);
	ok &= put_long(ds, DCM_SeriesNumber, info->series_number);
	ok &= put(ds, DCM_SeriesDate, st.date);
	ok &= put(ds, DCM_SeriesTime, st.time);
	ok &= put(ds, DCM_SeriesDescription, info->series_description);
	ok &= put_long(ds, DCM_InstanceNumber, info->instance_number);
	ok &= put(ds, DCM_ContentDate, st.date);
	ok &= put(ds, DCM_ContentTime, st.time);
	/* General and Enhanced General Equipment: recon3d made these objects. */
	ok &= put(ds, DCM_Manufacturer, EXPORT_MANUFACTURER);
	ok &= put(ds, DCM_ManufacturerModelName, EXPORT_MODEL_NAME);
	ok &= put(ds, DCM_DeviceSerialNumber, serial.c_str());
	ok &= put(ds, DCM_SoftwareVersions, R3D_VERSION);
	/* Common Instance Reference: the source series, same study. */
	ok &= ok && ds->findOrCreateSequenceItem(DCM_ReferencedSeriesSequence, series, 0).good() &&
	      put(series, DCM_SeriesInstanceUID, facts.series_uid.c_str()) &&
	      put_refs(series, DCM_ReferencedInstanceSequence, info);
	if (!ok)
		return r3d_err_set(err, R3D_ENOMEM, "cannot fill the common attributes");
	return true;
}

/* Area-weighted unit normals per point. A point whose triangles all have
 * zero area (collapsed slivers do occur in decimated meshes) takes the mean
 * of its neighbours' normals, spreading over up to EXPORT_NORMAL_PASSES
 * rings; a point no triangle with area reaches keeps a zero vector. */
#define EXPORT_NORMAL_PASSES 8
void point_normals(const struct bridge_export_structure *s, std::vector<Float32> &out)
{
	std::vector<double> acc(s->nvert * 3, 0.0);
	std::vector<unsigned char> has(s->nvert, 0);
	size_t missing = 0;

	for (size_t t = 0; t < s->ntri; t++) {
		const uint32_t *v = &s->tri[t * 3];
		const float *a = &s->xyz[v[0] * 3], *b = &s->xyz[v[1] * 3], *c = &s->xyz[v[2] * 3];
		double e1[3], e2[3], n[3];
		for (int k = 0; k < 3; k++) {
			e1[k] = static_cast<double>(b[k]) - a[k];
			e2[k] = static_cast<double>(c[k]) - a[k];
		}
		n[0] = e1[1] * e2[2] - e1[2] * e2[1];
		n[1] = e1[2] * e2[0] - e1[0] * e2[2];
		n[2] = e1[0] * e2[1] - e1[1] * e2[0];
		for (int j = 0; j < 3; j++)
			for (int k = 0; k < 3; k++)
				acc[v[j] * 3 + k] += n[k];
	}
	out.assign(s->nvert * 3, 0.0f);
	for (size_t i = 0; i < s->nvert; i++) {
		double *n = &acc[i * 3];
		double len = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
		if (len > 0.0 && std::isfinite(len)) {
			for (int k = 0; k < 3; k++)
				out[i * 3 + k] = static_cast<Float32>(n[k] / len);
			has[i] = 1;
		} else {
			missing++;
		}
	}
	for (int pass = 0; pass < EXPORT_NORMAL_PASSES && missing > 0; pass++) {
		std::fill(acc.begin(), acc.end(), 0.0);
		for (size_t t = 0; t < s->ntri; t++) {
			const uint32_t *v = &s->tri[t * 3];
			for (int j = 0; j < 3; j++) {
				if (has[v[j]])
					continue;
				for (int o = 1; o < 3; o++) {
					uint32_t w = v[(j + o) % 3];
					if (has[w] == 1)
						for (int k = 0; k < 3; k++)
							acc[v[j] * 3 + k] += out[w * 3 + k];
				}
			}
		}
		/* Mark this pass's points 2 so they only feed the next pass. */
		for (size_t i = 0; i < s->nvert; i++) {
			double *n = &acc[i * 3];
			double len = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
			if (has[i] || !(len > 0.0 && std::isfinite(len)))
				continue;
			for (int k = 0; k < 3; k++)
				out[i * 3 + k] = static_cast<Float32>(n[k] / len);
			has[i] = 2;
			missing--;
		}
		for (size_t i = 0; i < s->nvert; i++)
			if (has[i] == 2)
				has[i] = 1;
	}
}

const char *flag_value(enum bridge_surface_flag f)
{
	return f == BRIDGE_FLAG_YES ? "YES" : f == BRIDGE_FLAG_NO ? "NO" : "UNKNOWN";
}

/* One item of the Surface Sequence (Surface Mesh module). */
bool put_surface(struct r3d_err *err, DcmItem *surface, const struct bridge_export_structure *s,
		 unsigned number)
{
	uint16_t lab[3];
	DcmItem *points = nullptr, *normals = nullptr, *prims = nullptr;
	std::vector<Float32> nrm;
	std::vector<Uint32> idx(s->ntri * 3);
	Float32 box[6] = {INFINITY, INFINITY, INFINITY, -INFINITY, -INFINITY, -INFINITY};
	bool ok = true;

	bridge_rgb_to_cielab(s->rgb, lab);
	for (size_t i = 0; i < s->nvert; i++)
		for (int k = 0; k < 3; k++) {
			box[k] = std::fmin(box[k], s->xyz[i * 3 + k]);
			box[3 + k] = std::fmax(box[3 + k], s->xyz[i * 3 + k]);
		}
	/* Surface Mesh point indices start at 1. */
	for (size_t k = 0; k < s->ntri * 3; k++)
		idx[k] = s->tri[k] + 1;
	point_normals(s, nrm);

	ok &= surface->putAndInsertUint32(DCM_SurfaceNumber, number).good();
	ok &= put(surface, DCM_SurfaceComments, s->name);
	ok &= put_property_codes(surface, s->codes);
	/* Smoothing and decimation are the generation algorithm's own steps, not
	 * a later processing of a finished surface. */
	ok &= put(surface, DCM_SurfaceProcessing, "NO");
	/* L* alone, scaled to 16 bits, for a grey display. */
	ok &= surface->putAndInsertUint16(DCM_RecommendedDisplayGrayscaleValue, lab[0]).good();
	ok &= surface->putAndInsertUint16Array(DCM_RecommendedDisplayCIELabValue, lab, 3).good();
	ok &= surface->putAndInsertFloat32(DCM_RecommendedPresentationOpacity, 1.0f).good();
	ok &= put(surface, DCM_RecommendedPresentationType, "SURFACE");
	ok &= put(surface, DCM_FiniteVolume, flag_value(s->finite_volume));
	ok &= put(surface, DCM_Manifold, flag_value(s->manifold));
	ok &= ok && surface->findOrCreateSequenceItem(DCM_SurfacePointsSequence, points, 0).good() &&
	      points->putAndInsertUint32(DCM_NumberOfSurfacePoints, static_cast<Uint32>(s->nvert)).good() &&
	      points->putAndInsertFloat32Array(DCM_PointCoordinatesData, s->xyz,
					       static_cast<unsigned long>(s->nvert * 3)).good() &&
	      points->putAndInsertFloat32Array(DCM_PointsBoundingBoxCoordinates, box, 6).good();
	ok &= ok && surface->findOrCreateSequenceItem(DCM_SurfacePointsNormalsSequence, normals, 0).good() &&
	      normals->putAndInsertUint32(DCM_NumberOfVectors, static_cast<Uint32>(s->nvert)).good() &&
	      normals->putAndInsertUint16(DCM_VectorDimensionality, 3).good() &&
	      normals->putAndInsertFloat32Array(DCM_VectorCoordinateData, nrm.data(),
						static_cast<unsigned long>(nrm.size())).good();
	/* Long Triangle Point Index List (OL, 32-bit): the 16-bit Triangle Point
	 * Index List is retired and could not index more than 65535 points. */
	ok &= ok && surface->findOrCreateSequenceItem(DCM_SurfaceMeshPrimitivesSequence, prims, 0).good() &&
	      prims->insertEmptyElement(DCM_LongVertexPointIndexList).good() &&
	      prims->insertEmptyElement(DCM_LongEdgePointIndexList).good() &&
	      prims->putAndInsertUint32Array(DCM_LongTrianglePointIndexList, idx.data(),
					     static_cast<unsigned long>(idx.size())).good() &&
	      prims->insertEmptyElement(DCM_TriangleStripSequence).good() &&
	      prims->insertEmptyElement(DCM_TriangleFanSequence).good() &&
	      prims->insertEmptyElement(DCM_LineSequence).good() &&
	      prims->insertEmptyElement(DCM_FacetSequence).good();
	if (!ok)
		return r3d_err_set(err, R3D_ENOMEM, "cannot store surface %u (%s)", number, s->name);
	return true;
}

/* One item of the Segment Sequence (Surface Segmentation module). */
bool put_segment(struct r3d_err *err, DcmItem *seg, const struct bridge_export_structure *s,
		 unsigned number, const struct bridge_export_info *info)
{
	DcmItem *ref = nullptr;
	bool ok = true;

	ok &= seg->putAndInsertUint16(DCM_SegmentNumber, static_cast<Uint16>(number)).good();
	ok &= put(seg, DCM_SegmentLabel, s->name);
	ok &= put(seg, DCM_SegmentAlgorithmType, "AUTOMATIC");
	ok &= put_property_codes(seg, s->codes);
	ok &= put_region(seg, s->codes);
	ok &= seg->putAndInsertUint32(DCM_SurfaceCount, 1).good();
	ok &= ok && seg->findOrCreateSequenceItem(DCM_ReferencedSurfaceSequence, ref, 0).good() &&
	      ref->putAndInsertUint32(DCM_ReferencedSurfaceNumber, number).good() &&
	      put_algorithm(ref, DCM_SegmentSurfaceGenerationAlgorithmIdentificationSequence) &&
	      put_refs(ref, DCM_SegmentSurfaceSourceInstanceSequence, info);
	if (!ok)
		return r3d_err_set(err, R3D_ENOMEM, "cannot store segment %u (%s)", number, s->name);
	return true;
}

/* ---------------------------------------------------------------------- */
/* Files                                                                  */
/* ---------------------------------------------------------------------- */


/* Reads a binary STL file whole and checks its size against its triangle count. */
bool stl_read(struct r3d_err *err, const char *path, std::vector<Uint8> &out)
{
	FILE *f = fopen(path, "rb");
	struct stat sb;
	uint32_t count;
	size_t n;

	if (f == nullptr)
		return r3d_err_set(err, R3D_EIO, "cannot open STL '%s': %s", path, strerror(errno));
	if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < EXPORT_STL_HEADER ||
	    static_cast<uint64_t>(sb.st_size) > BRIDGE_EXPORT_MAX_STL_BYTES) {
		fclose(f);
		return r3d_err_set(err, R3D_EINVAL, "STL '%s' is not a regular file of %d bytes to "
				   "%u bytes", path, EXPORT_STL_HEADER, BRIDGE_EXPORT_MAX_STL_BYTES);
	}
	out.resize(static_cast<size_t>(sb.st_size));
	n = fread(out.data(), 1, out.size(), f);
	fclose(f);
	if (n != out.size())
		return r3d_err_set(err, R3D_EIO, "short read of STL '%s'", path);
	count = static_cast<uint32_t>(out[80]) | static_cast<uint32_t>(out[81]) << 8 |
		static_cast<uint32_t>(out[82]) << 16 | static_cast<uint32_t>(out[83]) << 24;
	if (count == 0 || (out.size() - EXPORT_STL_HEADER) / EXPORT_STL_FACET != count ||
	    (out.size() - EXPORT_STL_HEADER) % EXPORT_STL_FACET != 0)
		return r3d_err_set(err, R3D_EINVAL, "'%s' is not a binary STL (%zu bytes for %u "
				   "triangles)", path, out.size(), count);
	return true;
}

bool surface_segmentation_write(struct r3d_err *err, const char *path,
				const struct bridge_export_info *info,
				const struct bridge_export_structure *structures, size_t count)
{
	DcmFileFormat ff;
	DcmDataset *ds = ff.getDataset();
	struct source_facts facts;
	struct stamp st;
	bool need_utf8, ok = true;

	if (!info_check(err, info))
		return false;
	if (count == 0 || structures == nullptr || count > BRIDGE_EXPORT_MAX_STRUCTURES)
		return r3d_err_set(err, R3D_EINVAL, "%zu structures (1..%d)", count,
				   BRIDGE_EXPORT_MAX_STRUCTURES);
	need_utf8 = !is_ascii(info->series_description) || !is_ascii(info->device_serial_number);
	for (size_t i = 0; i < count; i++) {
		if (!structure_check(err, &structures[i], i))
			return false;
		need_utf8 |= !is_ascii(structures[i].name);
	}
	stamp_make(info, &st);
	if (!copy_source(err, info, need_utf8, ds, &facts) ||
	    !fill_common(err, ds, info, UID_SurfaceSegmentationStorage, "SEG", st, facts))
		return false;
	/* Surface Segmentation module: Content Identification and date. */
	ok &= put(ds, DCM_ContentLabel, EXPORT_CONTENT_LABEL);
	ok &= put(ds, DCM_ContentDescription, info->series_description);
	ok &= ds->insertEmptyElement(DCM_ContentCreatorName).good();
	ok &= ds->putAndInsertUint32(DCM_NumberOfSurfaces, static_cast<Uint32>(count)).good();
	if (!ok)
		return r3d_err_set(err, R3D_ENOMEM, "cannot fill the Surface Segmentation attributes");
	for (size_t i = 0; i < count; i++) {
		const struct bridge_export_structure *s = &structures[i];
		DcmItem *seg = nullptr, *surface = nullptr;
		unsigned number = static_cast<unsigned>(i + 1);

		if (ds->findOrCreateSequenceItem(DCM_SegmentSequence, seg, -2).bad() ||
		    ds->findOrCreateSequenceItem(DCM_SurfaceSequence, surface, -2).bad())
			return r3d_err_set(err, R3D_ENOMEM, "cannot add segment %u", number);
		if (!put_segment(err, seg, s, number, info) || !put_surface(err, surface, s, number))
			return false;
	}
	return save_atomic(err, ff, path, EET_UndefinedLength);
}

bool encapsulated_stl_write(struct r3d_err *err, const char *path,
			    const struct bridge_export_info *info, const char *name,
			    const char *stl_path)
{
	DcmFileFormat ff;
	DcmDataset *ds = ff.getDataset();
	struct source_facts facts;
	struct stamp st;
	std::vector<Uint8> stl;
	std::string title, description;
	size_t length;
	bool need_utf8, ok = true;

	if (!info_check(err, info))
		return false;
	if (!text_ok(name, BRIDGE_LO_MAX - 16))
		return r3d_err_set(err, R3D_EINVAL, "structure name empty, too long or with control "
				   "characters");
	if (stl_path == nullptr || !stl_read(err, stl_path, stl))
		return stl_path == nullptr ? r3d_err_set(err, R3D_EINVAL, "no STL file given") : false;
	length = stl.size();
	/* The value has even length; Encapsulated Document Length keeps the true one. */
	if (stl.size() & 1)
		stl.push_back(0);
	title = std::string("3D model: ") + name + " (STL)";
	description = std::string("3D model: ") + name;
	need_utf8 = !is_ascii(info->series_description) || !is_ascii(info->device_serial_number) ||
		    !is_ascii(name);
	stamp_make(info, &st);
	if (!copy_source(err, info, need_utf8, ds, &facts) ||
	    !fill_common(err, ds, info, UID_EncapsulatedSTLStorage, "M3D", st, facts))
		return false;
	/* Encapsulated Document module. */
	ok &= ds->insertEmptyElement(DCM_AcquisitionDateTime).good();
	ok &= put(ds, DCM_BurnedInAnnotation, "NO");
	ok &= put_recognizable(ds, info);
	ok &= put_refs(ds, DCM_SourceInstanceSequence, info);
	ok &= put(ds, DCM_DocumentTitle, title.c_str());
	ok &= ds->insertEmptyElement(DCM_ConceptNameCodeSequence).good();
	ok &= put(ds, DCM_MIMETypeOfEncapsulatedDocument, "model/stl");
	ok &= ds->putAndInsertUint8Array(DCM_EncapsulatedDocument, stl.data(),
					 static_cast<unsigned long>(stl.size())).good();
	ok &= ds->putAndInsertUint32(DCM_EncapsulatedDocumentLength, static_cast<Uint32>(length)).good();
	/* Manufacturing 3D Model module: millimetres, not mirrored. */
	ok &= put_code(ds, DCM_MeasurementUnitsCodeSequence, unit_mm);
	ok &= put(ds, DCM_ModelMirroring, "NO");
	ok &= put(ds, DCM_ContentDescription, description.c_str());
	ok &= put_algorithm(ds, DCM_DerivationAlgorithmSequence);
	if (!ok)
		return r3d_err_set(err, R3D_ENOMEM, "cannot fill the Encapsulated STL attributes");
	return save_atomic(err, ff, path, EET_UndefinedLength);
}

/* One rendered view as a Secondary Capture image. */
bool preview_write(struct r3d_err *err, const char *path, const struct bridge_export_info *info,
		   const uint8_t *rgb, uint32_t width, uint32_t height, const char *view_name,
		   const char *row_dir, const char *col_dir)
{
	DcmFileFormat ff;
	DcmDataset *ds = ff.getDataset();
	struct source_facts facts;
	struct stamp st;
	std::string orientation;
	bool ok = true;

	if (!info_check(err, info))
		return false;
	if (rgb == nullptr || width == 0 || height == 0 || width > BRIDGE_PREVIEW_MAX_DIM ||
	    height > BRIDGE_PREVIEW_MAX_DIM)
		return r3d_err_set(err, R3D_EINVAL, "preview: bad image size %ux%u", width, height);
	if (!text_ok(view_name, BRIDGE_LO_MAX))
		return r3d_err_set(err, R3D_EINVAL, "preview: bad view name");
	stamp_make(info, &st);
	if (!copy_source(err, info, !is_ascii(info->series_description), ds, &facts) ||
	    !fill_common(err, ds, info, UID_SecondaryCaptureImageStorage, "OT", st, facts))
		return false;
	if (row_dir != nullptr && row_dir[0] != '\0' && col_dir != nullptr && col_dir[0] != '\0') {
		/* Patient Orientation spells superior H (head) and inferior F (foot). */
		orientation = std::string(row_dir) + "\\" + col_dir;
		for (char &c : orientation)
			c = c == 'S' ? 'H' : c == 'I' ? 'F' : c;
	}
	/* General Image, SC Equipment, Image Pixel. */
	ok &= put(ds, DCM_PatientOrientation, orientation.c_str()) || orientation.empty();
	if (orientation.empty())
		ok &= ds->insertEmptyElement(DCM_PatientOrientation).good();
	ok &= put(ds, DCM_ImageType, "DERIVED\\SECONDARY");
	ok &= ds->insertEmptyElement(DCM_Laterality).good();   /* type 2C: not a paired part */
	ok &= put(ds, DCM_ConversionType, "SYN");
	ok &= put(ds, DCM_BurnedInAnnotation, "YES");
	ok &= put_recognizable(ds, info);
	ok &= put(ds, DCM_LossyImageCompression, "00");
	ok &= put(ds, DCM_ImageComments, view_name);
	ok &= put_refs(ds, DCM_SourceImageSequence, info);
	ok &= ds->putAndInsertUint16(DCM_SamplesPerPixel, 3).good();
	ok &= put(ds, DCM_PhotometricInterpretation, "RGB");
	ok &= ds->putAndInsertUint16(DCM_PlanarConfiguration, 0).good();
	ok &= ds->putAndInsertUint16(DCM_Rows, static_cast<Uint16>(height)).good();
	ok &= ds->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(width)).good();
	ok &= ds->putAndInsertUint16(DCM_BitsAllocated, 8).good();
	ok &= ds->putAndInsertUint16(DCM_BitsStored, 8).good();
	ok &= ds->putAndInsertUint16(DCM_HighBit, 7).good();
	ok &= ds->putAndInsertUint16(DCM_PixelRepresentation, 0).good();
	ok &= ds->putAndInsertUint8Array(DCM_PixelData, rgb,
					 static_cast<unsigned long>(width) * height * 3).good();
	if (!ok)
		return r3d_err_set(err, R3D_ENOMEM, "cannot fill the Secondary Capture attributes");
	return save_atomic(err, ff, path, EET_ExplicitLength);
}

/* Decimal digits of a big-endian unsigned integer (destroys it). */
std::string big_decimal(unsigned char *v, size_t n)
{
	std::string digits;
	bool zero = false;

	while (!zero) {
		unsigned rem = 0;
		zero = true;
		for (size_t i = 0; i < n; i++) {
			unsigned cur = rem * 256 + v[i];
			v[i] = static_cast<unsigned char>(cur / 10);
			rem = cur % 10;
			if (v[i] != 0)
				zero = false;
		}
		digits.insert(digits.begin(), static_cast<char>('0' + rem));
	}
	return digits;
}

} // namespace

extern "C" void bridge_rgb_to_cielab(const float rgb[3], uint16_t lab[3])
{
	double c[3], out[3];

	for (int k = 0; k < 3; k++)
		c[k] = rgb[k] >= 0.0f && rgb[k] <= 1.0f ? rgb[k] : rgb[k] > 1.0f ? 1.0 : 0.0;
	IODCIELabUtil::rgb2DicomLab(out[0], out[1], out[2], c[0], c[1], c[2]);
	for (int k = 0; k < 3; k++) {
		double v = std::round(out[k]);
		lab[k] = static_cast<uint16_t>(v < 0.0 ? 0.0 : v > 65535.0 ? 65535.0 : v);
	}
}

extern "C" bool bridge_uid_derive(struct r3d_err *err, const char *root_uid, const char *label,
				  char out[BRIDGE_UID_MAX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx;
	bool ok;

	out[0] = '\0';
	if (!bridge_uid_valid(root_uid))
		return r3d_err_set(err, R3D_EINVAL, "malformed root UID");
	if (label == nullptr || label[0] == '\0' || strlen(label) > BRIDGE_UID_LABEL_MAX)
		return r3d_err_set(err, R3D_EINVAL, "UID label empty or over %d characters",
				   BRIDGE_UID_LABEL_MAX);
	ctx = EVP_MD_CTX_new();
	if (ctx == nullptr)
		return r3d_err_set(err, R3D_ENOMEM, "cannot create a digest context");
	/* The NUL between them keeps ("1.2", "3x") apart from ("1.23", "x"). */
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
	     EVP_DigestUpdate(ctx, root_uid, strlen(root_uid) + 1) == 1 &&
	     EVP_DigestUpdate(ctx, label, strlen(label)) == 1 &&
	     EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= 16;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return r3d_err_set(err, R3D_EIO, "SHA-256 failed");
	/* A name-based UUID (RFC 9562 version 8: the first 128 bits of the hash
	 * with the version and variant bits set), written as a 2.25 UID (PS3.5
	 * B.2): at most 4 + 39 characters. */
	md[6] = static_cast<unsigned char>((md[6] & 0x0f) | 0x80);
	md[8] = static_cast<unsigned char>((md[8] & 0x3f) | 0x80);
	std::string uid = "2.25." + big_decimal(md, 16);
	snprintf(out, BRIDGE_UID_MAX + 1, "%s", uid.c_str());
	return true;
}

extern "C" bool bridge_write_surface_segmentation(struct r3d_err *err, const char *path,
						  const struct bridge_export_info *info,
						  const struct bridge_export_structure *structures,
						  size_t count)
{
	try {
		return surface_segmentation_write(err, path, info, structures, count);
	} catch (const std::bad_alloc &) {
		return r3d_err_set(err, R3D_ENOMEM, "out of memory writing '%s'", path);
	} catch (...) {
		return r3d_err_set(err, R3D_EIO, "unexpected failure writing '%s'", path);
	}
}

extern "C" bool bridge_write_encapsulated_stl(struct r3d_err *err, const char *path,
					      const struct bridge_export_info *info,
					      const char *name, const char *stl_path)
{
	try {
		return encapsulated_stl_write(err, path, info, name, stl_path);
	} catch (const std::bad_alloc &) {
		return r3d_err_set(err, R3D_ENOMEM, "out of memory writing '%s'", path);
	} catch (...) {
		return r3d_err_set(err, R3D_EIO, "unexpected failure writing '%s'", path);
	}
}

extern "C" bool bridge_write_preview(struct r3d_err *err, const char *path,
				     const struct bridge_export_info *info, const uint8_t *rgb,
				     uint32_t width, uint32_t height, const char *view_name,
				     const char *row_dir, const char *col_dir)
{
	try {
		return preview_write(err, path, info, rgb, width, height, view_name, row_dir, col_dir);
	} catch (...) {
		return r3d_err_set(err, R3D_ENOMEM, "preview: unexpected error");
	}
}
