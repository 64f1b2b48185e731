/*
 * seg.cpp: the binary DICOM Segmentation (voxel masks) writer (see "DICOM
 * Segmentation (voxel masks)" in r3d/bridge.h), built with DCMTK's dcmseg
 * module: one segment per structure, frames aligned to the source CT slices.
 * Patient, study and Frame of Reference come from one source instance; the
 * file is written under a unique temporary name, synced and renamed.
 * Any thread; nothing here keeps state between calls.
 */
extern "C" {
#include "r3d/err.h"
}
#include "r3d/bridge.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmfg/fgseg.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>
#include "bridge_util.h"

using r3d_bridge_util::code_ok;
using r3d_bridge_util::code_present;
using r3d_bridge_util::codes_ok;
using r3d_bridge_util::host_serial;
using r3d_bridge_util::identity_check;
using r3d_bridge_util::save_atomic;
using r3d_bridge_util::put_recognizable;
using r3d_bridge_util::text_ok;

#define SEG_DS_MAX 16   /* characters of a DS value */
#define SEG_MANUFACTURER "recon3d"
#define SEG_ALGORITHM "recon3d"
#define SEG_CONTENT_LABEL "RECON3D"

namespace {




/* A DS value of at most 16 characters, as precise as fits. */
OFString ds(double v)
{
	char buf[64];

	for (int prec = 15; prec > 1; prec--) {
		snprintf(buf, sizeof buf, "%.*g", prec, v);
		if (strlen(buf) <= SEG_DS_MAX)
			break;
	}
	return OFString(buf);
}

bool check(struct r3d_err *err, const struct bridge_export_info *info,
	   const struct bridge_seg_input *in)
{
	if (in == nullptr)
		return r3d_err_set(err, R3D_EINVAL, "no input given");
	if (!identity_check(err, info))
		return false;
	if (in->nslices == 0 || in->nslices > BRIDGE_SEG_MAX_SLICES || in->slices == nullptr)
		return r3d_err_set(err, R3D_EINVAL, "%zu source slices (1..%d)", in->nslices,
				   BRIDGE_SEG_MAX_SLICES);
	if (in->rows == 0 || in->columns == 0 || in->rows > BRIDGE_SEG_MAX_DIM ||
	    in->columns > BRIDGE_SEG_MAX_DIM)
		return r3d_err_set(err, R3D_EINVAL, "slice size %ux%u out of range", in->columns,
				   in->rows);
	if (in->nstructures == 0 || in->nstructures > BRIDGE_EXPORT_MAX_STRUCTURES ||
	    in->structures == nullptr)
		return r3d_err_set(err, R3D_EINVAL, "%zu structures (1..%d)", in->nstructures,
				   BRIDGE_EXPORT_MAX_STRUCTURES);
	for (int i = 0; i < 6; i++)
		if (!std::isfinite(in->orientation[i]))
			return r3d_err_set(err, R3D_EINVAL, "orientation not finite");
	if (!(in->pixel_spacing[0] > 0 && in->pixel_spacing[1] > 0 && in->slice_thickness > 0) ||
	    !std::isfinite(in->pixel_spacing[0]) || !std::isfinite(in->pixel_spacing[1]) ||
	    !std::isfinite(in->slice_thickness))
		return r3d_err_set(err, R3D_EINVAL, "pixel spacing or slice thickness not positive");
	for (size_t k = 0; k < in->nslices; k++) {
		const struct bridge_seg_slice *s = &in->slices[k];
		if (!bridge_uid_valid(s->sop_class_uid) || !bridge_uid_valid(s->sop_instance_uid))
			return r3d_err_set(err, R3D_EINVAL, "slice %zu has a malformed UID", k);
		for (int a = 0; a < 3; a++)
			if (!std::isfinite(s->position[a]))
				return r3d_err_set(err, R3D_EINVAL, "slice %zu: position not finite", k);
		if (s->frame_number > 65535)
			return r3d_err_set(err, R3D_EINVAL, "slice %zu: frame number %u over 65535", k,
					   s->frame_number);
	}
	for (size_t i = 0; i < in->nstructures; i++) {
		const struct bridge_seg_structure *s = &in->structures[i];
		if (!text_ok(s->name, BRIDGE_LO_MAX))
			return r3d_err_set(err, R3D_EINVAL, "structure %zu: name empty, too long or "
					   "with control characters", i);
		if ((s->mask == nullptr) == (s->bits == nullptr))
			return r3d_err_set(err, R3D_EINVAL, "structure %zu (%s): give a mask or bits "
					   "(exactly one)", i, s->name);
		if (!codes_ok(&s->codes))
			return r3d_err_set(err, R3D_EINVAL, "structure %zu (%s): category and type "
					   "codes missing or a code malformed", i, s->name);
	}
	return true;
}

bool dcm_fail(struct r3d_err *err, const char *what, const OFCondition &c)
{
	return r3d_err_set(err, R3D_EINVAL, "segmentation: %s: %s", what, c.text());
}

/* The optional codes of a segment: the type's modifier (laterality), the
 * Anatomic Region and its modifier. */
bool put_segment_codes(struct r3d_err *err, DcmSegment *segment, const struct bridge_segment_codes &sc)
{
	OFCondition c;

	if (code_present(&sc.type_modifier)) {
		CodeSequenceMacro *m = new CodeSequenceMacro(sc.type_modifier.value, sc.type_modifier.scheme,
							     sc.type_modifier.meaning);
		segment->getSegmentedPropertyTypeModifierCode().push_back(m);
	}
	if (code_present(&sc.region)) {
		GeneralAnatomyMacro &ga = segment->getGeneralAnatomyCode();
		c = ga.getAnatomicRegion().set(sc.region.value, sc.region.scheme, sc.region.meaning);
		if (c.bad())
			return dcm_fail(err, "anatomic region", c);
		if (code_present(&sc.region_modifier)) {
			CodeSequenceMacro *m = new CodeSequenceMacro(sc.region_modifier.value,
								     sc.region_modifier.scheme,
								     sc.region_modifier.meaning);
			ga.getAnatomicRegionModifier().push_back(m);
		}
	}
	return true;
}



/* Common Instance Reference: the source series and its slices. */
bool put_referenced_series(DcmDataset *ds, const char *series_uid,
			   const struct bridge_seg_input *in)
{
	DcmItem *series = nullptr;

	ds->findAndDeleteElement(DCM_ReferencedSeriesSequence);
	if (ds->findOrCreateSequenceItem(DCM_ReferencedSeriesSequence, series, 0).bad())
		return false;
	if (series->putAndInsertString(DCM_SeriesInstanceUID, series_uid).bad())
		return false;
	std::set<std::string> seen;
	for (size_t k = 0; k < in->nslices; k++) {
		DcmItem *it = nullptr;
		if (!seen.insert(in->slices[k].sop_instance_uid).second)
			continue;   /* another frame of a multi-frame instance */
		if (series->findOrCreateSequenceItem(DCM_ReferencedInstanceSequence, it, -2).bad() ||
		    it->putAndInsertString(DCM_ReferencedSOPClassUID, in->slices[k].sop_class_uid).bad() ||
		    it->putAndInsertString(DCM_ReferencedSOPInstanceUID,
					   in->slices[k].sop_instance_uid).bad())
			return false;
	}
	return true;
}

/* Voxels [first, first + n) of a structure's mask or bits: any set? */
bool has_voxels(const struct bridge_seg_structure *s, size_t first, size_t n)
{
	if (s->mask != nullptr) {
		for (size_t i = first; i < first + n; i++)
			if (s->mask[i] != 0)
				return true;
		return false;
	}
	size_t v = first, end = first + n;
	while (v < end) {
		if ((v & 7) == 0 && v + 8 <= end) {
			if (s->bits[v >> 3] != 0)
				return true;
			v += 8;
			continue;
		}
		if ((s->bits[v >> 3] >> (v & 7)) & 1)
			return true;
		v++;
	}
	return false;
}

/* Voxels [first, first + n) as 0/1 bytes. */
void unpack(const struct bridge_seg_structure *s, size_t first, size_t n, Uint8 *out)
{
	if (s->mask != nullptr) {
		for (size_t p = 0; p < n; p++)
			out[p] = s->mask[first + p] != 0 ? 1 : 0;
		return;
	}
	for (size_t p = 0; p < n; p++) {
		size_t v = first + p;
		out[p] = static_cast<Uint8>((s->bits[v >> 3] >> (v & 7)) & 1);
	}
}

bool write_seg(struct r3d_err *err, const char *path, const struct bridge_export_info *info,
	       const struct bridge_seg_input *in)
{
	const size_t plane = static_cast<size_t>(in->rows) * in->columns;
	std::string serial = info->device_serial_number != nullptr ? info->device_serial_number
								    : host_serial();
	IODGeneralEquipmentModule::EquipmentInfo equip(SEG_MANUFACTURER, SEG_MANUFACTURER,
						       serial.c_str(), R3D_VERSION);
	char inst[32];
	snprintf(inst, sizeof inst, "%ld", info->instance_number);
	ContentIdentificationMacro ident(inst, SEG_CONTENT_LABEL, "3D model: segmentation", "");
	DcmSegmentation *raw = nullptr;
	OFCondition c;
	char source_series[BRIDGE_UID_MAX + 1] = "";

	/* Count the frames first: refuse before building anything. */
	size_t nframes = 0;
	for (size_t i = 0; i < in->nstructures; i++) {
		size_t n = 0;
		for (size_t k = 0; k < in->nslices; k++)
			if (has_voxels(&in->structures[i], k * plane, plane))
				n++;
		nframes += n > 0 ? n : 1;
	}
	if (nframes > BRIDGE_SEG_MAX_FRAMES)
		return r3d_err_set(err, R3D_EINVAL, "%zu frames (at most %d)", nframes,
				   BRIDGE_SEG_MAX_FRAMES);

	c = DcmSegmentation::createBinarySegmentation(raw, static_cast<Uint16>(in->rows),
						      static_cast<Uint16>(in->columns), equip, ident);
	if (c.bad() || raw == nullptr)
		return dcm_fail(err, "create", c);
	std::unique_ptr<DcmSegmentation> seg(raw);
	seg->setCheckFGOnWrite(OFTrue);

	{
		DcmFileFormat src;
		c = src.loadFile(info->source_path, EXS_Unknown, EGL_noChange, 64 * 1024);
		if (c.bad())
			return r3d_err_set(err, R3D_EINVAL, "cannot read source '%s': %s",
					   info->source_path, c.text());
		OFString fo, su;
		if (src.getDataset()->findAndGetOFString(DCM_FrameOfReferenceUID, fo).bad() || fo.empty())
			return r3d_err_set(err, R3D_EINVAL, "source has no Frame of Reference UID");
		if (src.getDataset()->findAndGetOFString(DCM_SeriesInstanceUID, su).bad() ||
		    !bridge_uid_valid(su.c_str()))
			return r3d_err_set(err, R3D_EINVAL, "source has no valid Series Instance UID");
		snprintf(source_series, sizeof source_series, "%s", su.c_str());
		c = seg->importFromSourceImage(*src.getDataset(), OFTrue);
		if (c.bad())
			return dcm_fail(err, "import patient/study/frame of reference", c);
	}

	/* Shared: orientation and pixel measures. */
	{
		FGPlaneOrientationPatient *po = FGPlaneOrientationPatient::createMinimal(
			ds(in->orientation[0]), ds(in->orientation[1]), ds(in->orientation[2]),
			ds(in->orientation[3]), ds(in->orientation[4]), ds(in->orientation[5]));
		if (po == nullptr)
			return r3d_err_set(err, R3D_EINVAL, "segmentation: bad orientation");
		std::unique_ptr<FGPlaneOrientationPatient> hold(po);
		c = seg->addForAllFrames(*po);
		if (c.bad())
			return dcm_fail(err, "plane orientation", c);
		FGPixelMeasures pm;
		OFString sp = ds(in->pixel_spacing[0]) + "\\" + ds(in->pixel_spacing[1]);
		if (pm.setPixelSpacing(sp).bad() || pm.setSliceThickness(ds(in->slice_thickness)).bad())
			return r3d_err_set(err, R3D_EINVAL, "segmentation: bad pixel measures");
		c = seg->addForAllFrames(pm);
		if (c.bad())
			return dcm_fail(err, "pixel measures", c);
	}

	/* Dimension organization: segment number, then position. */
	{
		char dim_uid[BRIDGE_UID_MAX + 1];
		if (!bridge_uid_derive(err, info->sop_instance_uid, "segmentation dimensions", dim_uid))
			return false;
		IODMultiframeDimensionModule &dims = seg->getDimensions();
		c = dims.addDimensionIndex(DCM_ReferencedSegmentNumber, dim_uid,
					   DCM_SegmentIdentificationSequence, "ReferencedSegmentNumber");
		if (c.good())
			c = dims.addDimensionIndex(DCM_ImagePositionPatient, dim_uid,
						   DCM_PlanePositionSequence, "ImagePositionPatient");
		if (c.bad())
			return dcm_fail(err, "dimension index", c);
	}

	std::vector<Uint8> frame(plane);
	for (size_t i = 0; i < in->nstructures; i++) {
		const struct bridge_seg_structure *s = &in->structures[i];
		const struct bridge_segment_codes &sc = s->codes;
		CodeSequenceMacro ccat(sc.category.value, sc.category.scheme, sc.category.meaning);
		CodeSequenceMacro ctyp(sc.type.value, sc.type.scheme, sc.type.meaning);
		DcmSegment *segment = nullptr;
		c = DcmSegment::create(segment, s->name, ccat, ctyp, DcmSegTypes::SAT_AUTOMATIC,
				       SEG_ALGORITHM);
		if (c.bad() || segment == nullptr)
			return dcm_fail(err, "segment", c);
		if (!put_segment_codes(err, segment, sc)) {
			delete segment;
			return false;
		}
		uint16_t lab[3];
		bridge_rgb_to_cielab(s->rgb, lab);
		segment->setRecommendedDisplayCIELabValue(lab[0], lab[1], lab[2]);
		Uint16 number = 0;
		c = seg->addSegment(segment, number);
		if (c.bad()) {
			delete segment;
			return dcm_fail(err, "add segment", c);
		}

		/* An empty segment keeps one empty frame on the first slice. */
		bool empty = !has_voxels(s, 0, plane * in->nslices);
		for (size_t k = 0; k < in->nslices; k++) {
			if (!has_voxels(s, k * plane, plane) && !(empty && k == 0))
				continue;
			unpack(s, k * plane, plane, frame.data());

			const struct bridge_seg_slice *sl = &in->slices[k];
			FGPlanePosPatient *pp = FGPlanePosPatient::createMinimal(
				ds(sl->position[0]), ds(sl->position[1]), ds(sl->position[2]));
			if (pp == nullptr)
				return r3d_err_set(err, R3D_EINVAL, "segmentation: bad position");
			std::unique_ptr<FGPlanePosPatient> hold_pp(pp);
			FGFrameContent fc;
			fc.setDimensionIndexValues(number, 0);
			fc.setDimensionIndexValues(static_cast<Uint32>(k + 1), 1);
			FGDerivationImage di;
			DerivationImageItem *item = nullptr;
			c = di.addDerivationImageItem(CodeSequenceMacro("113076", "DCM", "Segmentation"),
						      "", item);
			if (c.bad() || item == nullptr)
				return dcm_fail(err, "derivation image", c);
			SourceImageItem *src = new (std::nothrow) SourceImageItem();
			if (src == nullptr)
				return r3d_err_set(err, R3D_ENOMEM, "out of memory");
			src->getPurposeOfReferenceCode().set("121322", "DCM",
				"Source image for image processing operation");
			src->getImageSOPInstanceReference().setReferencedSOPClassUID(sl->sop_class_uid);
			src->getImageSOPInstanceReference().setReferencedSOPInstanceUID(sl->sop_instance_uid);
			if (sl->frame_number > 0) {
				c = src->getImageSOPInstanceReference().addReferencedFrameNumber(
					static_cast<Uint16>(sl->frame_number));
				if (c.bad()) {
					delete src;
					return dcm_fail(err, "referenced frame number", c);
				}
			}
			item->getSourceImageItems().push_back(src);
			FGSegmentation fs;
			fs.setReferencedSegmentNumber(number);

			OFVector<FGBase *> groups;
			groups.push_back(pp);
			groups.push_back(&fc);
			groups.push_back(&di);
			groups.push_back(&fs);
			c = seg->addFrame(frame.data(), number, groups);
			if (c.bad())
				return dcm_fail(err, "add frame", c);
		}
	}

	/* Identity of the new object. */
	{
		IODGeneralSeriesModule &series = seg->getSeries();
		series.setSeriesInstanceUID(info->series_uid);
		series.setSeriesDescription(info->series_description);
		char num[32];
		snprintf(num, sizeof num, "%ld", info->series_number);
		series.setSeriesNumber(num);
		seg->getSOPCommon().setSOPInstanceUID(info->sop_instance_uid);
		char date[16], tim[16];
		if (info->content_date != nullptr && info->content_time != nullptr) {
			snprintf(date, sizeof date, "%s", info->content_date);
			snprintf(tim, sizeof tim, "%.13s", info->content_time);
		} else {
			time_t now = time(nullptr);
			struct tm tm;
			localtime_r(&now, &tm);
			strftime(date, sizeof date, "%Y%m%d", &tm);
			strftime(tim, sizeof tim, "%H%M%S", &tm);
		}
		seg->getGeneralImage().setContentDate(date);
		seg->getGeneralImage().setContentTime(tim);
	}

	DcmFileFormat ff;
	DcmDataset *out = ff.getDataset();
	c = seg->writeDataset(*out);
	if (c.bad())
		return dcm_fail(err, "write dataset", c);
	if (!put_referenced_series(out, source_series, in) || !put_recognizable(out, info))
		return r3d_err_set(err, R3D_ENOMEM, "cannot add the referenced series");
	return save_atomic(err, ff, path, EET_ExplicitLength);
}

} // namespace

extern "C" bool bridge_write_segmentation(struct r3d_err *err, const char *path,
					  const struct bridge_export_info *info,
					  const struct bridge_seg_input *in)
{
	if (path == nullptr)
		return r3d_err_set(err, R3D_EINVAL, "no output path");
	if (!check(err, info, in))
		return false;
	try {
		return write_seg(err, path, info, in);
	} catch (const std::bad_alloc &) {
		return r3d_err_set(err, R3D_ENOMEM, "out of memory writing the segmentation");
	} catch (...) {
		return r3d_err_set(err, R3D_EIO, "unexpected error writing the segmentation");
	}
}
