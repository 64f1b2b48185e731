/*
 * segread.cpp: reads a segmentation object another system made (a DICOM
 * Segmentation, BINARY, FRACTIONAL or Label Map, or an RT Structure Set)
 * into the plain records of r3d/segobj.h (see bridge_segobj_read() in
 * r3d/bridge.h). The dataset is walked with DCMTK's generic DcmItem API
 * rather than dcmseg's DcmSegmentation or dcmrt's classes: one reader for
 * all four kinds, tolerant of where other writers put things (a functional
 * group shared or per frame, a Type Modifier inside the type's item or next
 * to it), and DCMTK 3.6.7's dcmseg predates Label Map Segmentation.
 *
 * Compressed pixel data is decoded with the decoders bridge_init()
 * registered (RLE, JPEG, JPEG-LS). Strings are converted to UTF-8 from the
 * object's Specific Character Set.
 *
 * Any thread; nothing here keeps state between calls. No exception leaves
 * this file.
 */
#include "r3d/bridge.h"
#include "r3d/segobj.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <set>
#include <string>
#include <vector>

#include <sys/stat.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmiod/cielabutil.h>

extern "C" {
#include "r3d/err.h"
}

#include "bridge_util.h"

#define SEGREAD_UID_SEG "1.2.840.10008.5.1.4.1.1.66.4"
#define SEGREAD_UID_LABELMAP "1.2.840.10008.5.1.4.1.1.66.7"
#define SEGREAD_UID_RTSTRUCT "1.2.840.10008.5.1.4.1.1.481.3"

/* Frames agree in orientation when their cosines differ by less than this,
 * and in pixel spacing when it differs by less than this fraction. */
#define SEGREAD_ORIENTATION_TOLERANCE 1e-5
#define SEGREAD_SPACING_TOLERANCE 1e-5

namespace {

bool fail(struct r3d_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

bool fail(struct r3d_err *err, const char *fmt, ...)
{
	char msg[R3D_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return r3d_err_set(err, R3D_EINVAL, "%s", msg);
}

/* ---- strings ---------------------------------------------------------- */

/* A value without its trailing padding (spaces, NULs). */
std::string trimmed(const OFString &v)
{
	std::string s(v.c_str(), v.length());

	while (!s.empty() && (s.back() == ' ' || s.back() == '\0'))
		s.pop_back();
	return s;
}

/* Value `pos` of tag in it, trimmed; false when absent or empty. */
bool get_string(DcmItem *it, const DcmTagKey &tag, std::string &out, unsigned long pos = 0)
{
	OFString v;

	out.clear();
	if (it == nullptr || it->findAndGetOFString(tag, v, pos).bad())
		return false;
	out = trimmed(v);
	return !out.empty();
}

/* Copies s into dst (size bytes with the NUL) as valid UTF-8: a byte that
 * does not start a well-formed sequence becomes '?', control characters
 * become ' ', and a value too long is cut before the character that does
 * not fit. */
void copy_text(char *dst, size_t size, const std::string &s)
{
	size_t o = 0, i = 0, n = s.size();

	while (i < n) {
		unsigned char c = static_cast<unsigned char>(s[i]);
		size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
			     (c & 0xf8) == 0xf0 ? 4 : 0;
		bool ok = len > 0 && i + len <= n;
		for (size_t k = 1; ok && k < len; k++)
			ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
		if (!ok)
			len = 1;
		if (o + len > size - 1)
			break;
		if (!ok)
			dst[o] = '?';
		else if (len == 1)
			dst[o] = c < 0x20 || c == 0x7f ? ' ' : static_cast<char>(c);
		else
			memcpy(dst + o, s.data() + i, len);
		o += len;
		i += len;
	}
	dst[o] = '\0';
}

void get_text(DcmItem *it, const DcmTagKey &tag, char *dst, size_t size)
{
	std::string v;

	get_string(it, tag, v);
	copy_text(dst, size, v);
}

/* A UID, a code value or a scheme: an identity, refused when it does not
 * fit rather than cut. */
bool copy_id(struct r3d_err *err, char *dst, size_t size, const std::string &v, const char *what)
{
	if (v.size() > size - 1)
		return fail(err, "%s '%.80s' is longer than %zu characters", what, v.c_str(), size - 1);
	memcpy(dst, v.data(), v.size());
	dst[v.size()] = '\0';
	return true;
}

bool get_uid(struct r3d_err *err, DcmItem *it, const DcmTagKey &tag, char *dst, const char *what)
{
	std::string v;

	get_string(it, tag, v);
	return copy_id(err, dst, SEGOBJ_UID_MAX, v, what);
}

/* The first item of sequence tag in it (nullptr when absent or empty). */
DcmItem *first_item(DcmItem *it, const DcmTagKey &tag)
{
	DcmItem *item = nullptr;

	if (it == nullptr || it->findAndGetSequenceItem(tag, item, 0).bad())
		return nullptr;
	return item;
}

/* The items of sequence tag in it (none when absent), collected in one
 * walk: DCMTK's getItem(i) walks the list from its head each time. */
std::vector<DcmItem *> items_of(DcmItem *it, const DcmTagKey &tag)
{
	std::vector<DcmItem *> v;
	DcmSequenceOfItems *sq = nullptr;

	if (it == nullptr || it->findAndGetSequence(tag, sq).bad() || sq == nullptr)
		return v;
	v.reserve(sq->card());
	for (DcmObject *o = sq->nextInContainer(nullptr); o != nullptr; o = sq->nextInContainer(o))
		v.push_back(static_cast<DcmItem *>(o));
	return v;
}

/* The code of the first item of sequence seq (Code Sequence Macro): Code
 * Value, else Long Code Value or URN Code Value. Absent: all "". */
bool get_code(struct r3d_err *err, DcmItem *it, const DcmTagKey &seq, struct segobj_code *c,
	      const char *what)
{
	DcmItem *item = first_item(it, seq);
	std::string v;
	char label[96];

	memset(c, 0, sizeof(*c));
	if (item == nullptr)
		return true;
	if (!get_string(item, DCM_CodeValue, v) && !get_string(item, DCM_LongCodeValue, v))
		get_string(item, DCM_URNCodeValue, v);
	snprintf(label, sizeof label, "%s code value", what);
	if (!copy_id(err, c->value, sizeof c->value, v, label))
		return false;
	get_string(item, DCM_CodingSchemeDesignator, v);
	snprintf(label, sizeof label, "%s coding scheme", what);
	if (!copy_id(err, c->scheme, sizeof c->scheme, v, label))
		return false;
	get_text(item, DCM_CodeMeaning, c->meaning, sizeof c->meaning);
	return true;
}

/* n finite numbers (DS or FD) of tag; false when absent, fewer or not numbers. */
bool get_numbers(DcmItem *it, const DcmTagKey &tag, double *out, unsigned n)
{
	DcmElement *el = nullptr;

	if (it == nullptr || it->findAndGetElement(tag, el).bad() || el == nullptr ||
	    el->getVM() != n)
		return false;
	for (unsigned i = 0; i < n; i++) {
		Float64 v;
		if (el->getFloat64(v, i).bad() || !std::isfinite(v))
			return false;
		out[i] = v;
	}
	return true;
}

/* ---- the object being built ------------------------------------------- */

struct builder {
	struct segobj *s = nullptr;
	std::vector<struct segobj_segment> segments;
	std::vector<struct segobj_frame> frames;
	std::vector<struct segobj_contour> contours;
	std::vector<std::string> refs;
	std::set<std::string> ref_seen;
	std::string name;   /* the file's base name, for messages */

	void add_ref(const std::string &uid)
	{
		if (!uid.empty() && ref_seen.insert(uid).second)
			refs.push_back(uid);
	}
};

/* Copies the vectors into the object's own allocations (one each). */
bool builder_finish(struct r3d_err *err, builder &b)
{
	struct segobj *s = b.s;

	if (!b.segments.empty()) {
		s->segments = static_cast<struct segobj_segment *>(
			calloc(b.segments.size(), sizeof(*s->segments)));
		if (s->segments == nullptr)
			return r3d_err_set(err, R3D_ENOMEM, "out of memory for %zu segments",
					   b.segments.size());
		memcpy(s->segments, b.segments.data(), b.segments.size() * sizeof(*s->segments));
	}
	s->nsegments = b.segments.size();
	if (!b.frames.empty()) {
		s->frames = static_cast<struct segobj_frame *>(
			calloc(b.frames.size(), sizeof(*s->frames)));
		if (s->frames == nullptr)
			return r3d_err_set(err, R3D_ENOMEM, "out of memory for %zu frames",
					   b.frames.size());
		memcpy(s->frames, b.frames.data(), b.frames.size() * sizeof(*s->frames));
	}
	s->nframes = b.frames.size();
	if (!b.contours.empty()) {
		s->contours = static_cast<struct segobj_contour *>(
			calloc(b.contours.size(), sizeof(*s->contours)));
		if (s->contours == nullptr)
			return r3d_err_set(err, R3D_ENOMEM, "out of memory for %zu contours",
					   b.contours.size());
		memcpy(s->contours, b.contours.data(), b.contours.size() * sizeof(*s->contours));
	}
	s->ncontours = b.contours.size();
	if (!b.refs.empty()) {
		s->referenced_instances = static_cast<char (*)[SEGOBJ_UID_MAX]>(
			calloc(b.refs.size(), SEGOBJ_UID_MAX));
		if (s->referenced_instances == nullptr)
			return r3d_err_set(err, R3D_ENOMEM, "out of memory for %zu references",
					   b.refs.size());
		for (size_t i = 0; i < b.refs.size(); i++)
			if (!copy_id(err, s->referenced_instances[i], SEGOBJ_UID_MAX, b.refs[i],
				     "Referenced SOP Instance UID"))
				return false;
	}
	s->nreferenced_instances = b.refs.size();
	return true;
}

/* ---- colour ----------------------------------------------------------- */

/* sRGB transfer function of a linear value in [0, 1] (the thresholds of
 * DCMTK's IODCIELabUtil, so that bridge_rgb_to_cielab() round-trips). */
double srgb_gamma(double v)
{
	return v <= 0.0031306684425005883 ? 12.92 * v : 1.055 * pow(v, 1.0 / 2.4) - 0.055;
}

/* A DICOM CIELab value (L* 0..100, a* and b* -128..127 scaled to 0..65535,
 * D65) to sRGB in [0, 1]. CIELab to XYZ is DCMTK's; XYZ to linear sRGB uses
 * the exact inverse of the matrix DCMTK's rgb2Xyz() (and so
 * bridge_rgb_to_cielab()) uses. A colour outside the sRGB gamut is clamped
 * per channel: IODCIELabUtil::xyz2Rgb() instead shifts all three channels
 * by the most negative one and does not clamp above 1. */
void cielab_to_rgb(const uint16_t lab[3], float rgb[3])
{
	static const double m[3][3] = {
		{3.2406, -1.5372, -0.4986},
		{-0.9689, 1.8758, 0.0415},
		{0.0557, -0.2040, 1.0570},
	};
	double L, a, b, xyz[3];

	IODCIELabUtil::dicomlab2Lab(L, a, b, lab[0], lab[1], lab[2]);
	IODCIELabUtil::lab2Xyz(xyz[0], xyz[1], xyz[2], L, a, b);
	for (int k = 0; k < 3; k++) {
		double v = m[k][0] * xyz[0] + m[k][1] * xyz[1] + m[k][2] * xyz[2];
		v = v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
		rgb[k] = static_cast<float>(srgb_gamma(v));
	}
}

/* ---- Segmentation ----------------------------------------------------- */

/* The item of functional group macro seq for one frame: its Per-Frame
 * Functional Groups item first, then the Shared one (PS3.3 C.7.6.16: a
 * macro is in one or the other). */
DcmItem *fg_item(DcmItem *per_frame, DcmItem *shared, const DcmTagKey &seq)
{
	DcmItem *item = first_item(per_frame, seq);

	return item != nullptr ? item : first_item(shared, seq);
}

bool read_segments(struct r3d_err *err, DcmDataset *ds, builder &b)
{
	std::vector<DcmItem *> items = items_of(ds, DCM_SegmentSequence);
	std::set<unsigned> numbers;

	if (items.empty())
		return fail(err, "Segment Sequence (0062,0002) missing or empty");
	if (items.size() > SEGOBJ_MAX_SEGMENTS)
		return fail(err, "the Segment Sequence lists %zu segments; recon3d meshes at most %d "
			    "per object (SEGOBJ_MAX_SEGMENTS)", items.size(), SEGOBJ_MAX_SEGMENTS);
	for (size_t i = 0; i < items.size(); i++) {
		DcmItem *it = items[i];
		struct segobj_segment sg;
		Uint16 number = 0, lab[3];
		char what[64];

		memset(&sg, 0, sizeof sg);
		if (it->findAndGetUint16(DCM_SegmentNumber, number).bad())
			return fail(err, "item %zu of the Segment Sequence has no Segment Number "
				    "(0062,0004)", i + 1);
		if (!numbers.insert(number).second)
			return fail(err, "Segment Number %u appears twice in the Segment Sequence",
				    number);
		sg.number = number;
		get_text(it, DCM_SegmentLabel, sg.label, sizeof sg.label);
		get_text(it, DCM_SegmentAlgorithmType, sg.algorithm_type, sizeof sg.algorithm_type);
		get_text(it, DCM_SegmentAlgorithmName, sg.algorithm_name, sizeof sg.algorithm_name);
		if (it->findAndGetUint16(DCM_RecommendedDisplayCIELabValue, lab[0], 0).good() &&
		    it->findAndGetUint16(DCM_RecommendedDisplayCIELabValue, lab[1], 1).good() &&
		    it->findAndGetUint16(DCM_RecommendedDisplayCIELabValue, lab[2], 2).good()) {
			sg.has_color = true;
			for (int k = 0; k < 3; k++)
				sg.cielab[k] = lab[k];
			cielab_to_rgb(sg.cielab, sg.rgb);
		}
		snprintf(what, sizeof what, "segment %u: Segmented Property Category", number);
		if (!get_code(err, it, DCM_SegmentedPropertyCategoryCodeSequence, &sg.category, what))
			return false;
		snprintf(what, sizeof what, "segment %u: Segmented Property Type", number);
		if (!get_code(err, it, DCM_SegmentedPropertyTypeCodeSequence, &sg.type, what))
			return false;
		/* The modifier is inside the type's item since 2014; older
		 * writers put it next to the type. Likewise the region's. */
		DcmItem *type = first_item(it, DCM_SegmentedPropertyTypeCodeSequence);
		DcmItem *where = first_item(type, DCM_SegmentedPropertyTypeModifierCodeSequence) != nullptr
					 ? type : it;
		snprintf(what, sizeof what, "segment %u: Segmented Property Type Modifier", number);
		if (!get_code(err, where, DCM_SegmentedPropertyTypeModifierCodeSequence,
			      &sg.type_modifier, what))
			return false;
		snprintf(what, sizeof what, "segment %u: Anatomic Region", number);
		if (!get_code(err, it, DCM_AnatomicRegionSequence, &sg.region, what))
			return false;
		DcmItem *region = first_item(it, DCM_AnatomicRegionSequence);
		where = first_item(region, DCM_AnatomicRegionModifierSequence) != nullptr ? region : it;
		snprintf(what, sizeof what, "segment %u: Anatomic Region Modifier", number);
		if (!get_code(err, where, DCM_AnatomicRegionModifierSequence, &sg.region_modifier, what))
			return false;
		b.segments.push_back(sg);
	}
	return true;
}

/* Orientation and pixel spacing of every frame (per-frame or shared), which
 * must agree; Slice Thickness from the first frame's Pixel Measures. */
bool read_frame_geometry(struct r3d_err *err, builder &b, DcmItem *shared,
			 const std::vector<DcmItem *> &per_frame)
{
	struct segobj *s = b.s;
	bool have_iop = false, have_ps = false, any_position = false;

	for (size_t f = 0; f < b.frames.size(); f++) {
		DcmItem *pf = f < per_frame.size() ? per_frame[f] : nullptr;
		DcmItem *po = fg_item(pf, shared, DCM_PlaneOrientationSequence);
		DcmItem *pm = fg_item(pf, shared, DCM_PixelMeasuresSequence);
		double iop[6], ps[2];
		bool has_iop = po != nullptr && po->tagExists(DCM_ImageOrientationPatient);
		bool has_ps = pm != nullptr && pm->tagExists(DCM_PixelSpacing);

		if (b.frames[f].has_position)
			any_position = true;
		if (has_iop && !get_numbers(po, DCM_ImageOrientationPatient, iop, 6))
			return fail(err, "frame %zu: Image Orientation (Patient) is not 6 numbers", f + 1);
		if (has_ps && !get_numbers(pm, DCM_PixelSpacing, ps, 2))
			return fail(err, "frame %zu: Pixel Spacing is not 2 numbers", f + 1);
		if (f == 0) {
			double th = 0;
			have_iop = has_iop;
			have_ps = has_ps;
			if (has_iop)
				memcpy(s->orientation, iop, sizeof iop);
			if (has_ps)
				memcpy(s->pixel_spacing, ps, sizeof ps);
			if (pm != nullptr && pm->tagExists(DCM_SliceThickness) &&
			    (!get_numbers(pm, DCM_SliceThickness, &th, 1) || th < 0))
				return fail(err, "frame 1: Slice Thickness is not a number >= 0");
			s->slice_thickness = th;
			continue;
		}
		if (has_iop != have_iop)
			return fail(err, "frame %zu %s Image Orientation (Patient) and frame 1 %s",
				    f + 1, has_iop ? "has an" : "has no", have_iop ? "has one" : "none");
		if (has_ps != have_ps)
			return fail(err, "frame %zu %s Pixel Spacing and frame 1 %s", f + 1,
				    has_ps ? "has a" : "has no", have_ps ? "has one" : "none");
		for (int k = 0; has_iop && k < 6; k++)
			if (fabs(iop[k] - s->orientation[k]) > SEGREAD_ORIENTATION_TOLERANCE)
				return fail(err, "frame %zu's Image Orientation (Patient) differs from "
					    "frame 1's (frames in different orientations)", f + 1);
		for (int k = 0; has_ps && k < 2; k++)
			if (fabs(ps[k] - s->pixel_spacing[k]) >
			    SEGREAD_SPACING_TOLERANCE * fabs(s->pixel_spacing[k]))
				return fail(err, "frame %zu's Pixel Spacing (%g\\%g) differs from "
					    "frame 1's (%g\\%g)", f + 1, ps[0], ps[1],
					    s->pixel_spacing[0], s->pixel_spacing[1]);
	}
	/* A frame placed in patient space needs the plane it lies in. */
	if (any_position && !have_iop)
		return fail(err, "Plane Orientation (0020,9116) > Image Orientation (Patient) missing "
			    "(neither shared nor per frame)");
	if (any_position && !have_ps)
		return fail(err, "Pixel Measures (0028,9110) > Pixel Spacing missing (neither shared "
			    "nor per frame)");
	if (have_ps && !(s->pixel_spacing[0] > 0 && s->pixel_spacing[1] > 0))
		return fail(err, "Pixel Spacing %g\\%g is not positive", s->pixel_spacing[0],
			    s->pixel_spacing[1]);
	return true;
}

bool read_frames(struct r3d_err *err, DcmDataset *ds, builder &b, size_t nframes)
{
	struct segobj *s = b.s;
	DcmItem *shared = first_item(ds, DCM_SharedFunctionalGroupsSequence);
	std::vector<DcmItem *> per_frame = items_of(ds, DCM_PerFrameFunctionalGroupsSequence);
	std::map<unsigned, size_t> seg_index;

	if (!per_frame.empty() && per_frame.size() != nframes)
		return fail(err, "Per-Frame Functional Groups Sequence has %zu items for %zu frames",
			    per_frame.size(), nframes);
	for (size_t i = 0; i < b.segments.size(); i++)
		seg_index[b.segments[i].number] = i;
	b.frames.resize(nframes);
	for (size_t f = 0; f < nframes; f++) {
		DcmItem *pf = f < per_frame.size() ? per_frame[f] : nullptr;
		struct segobj_frame &fr = b.frames[f];
		char what[96];

		memset(&fr, 0, sizeof fr);
		DcmItem *pp = fg_item(pf, shared, DCM_PlanePositionSequence);
		if (pp != nullptr && pp->tagExists(DCM_ImagePositionPatient)) {
			if (!get_numbers(pp, DCM_ImagePositionPatient, fr.position, 3))
				return fail(err, "frame %zu: Image Position (Patient) is not 3 numbers",
					    f + 1);
			fr.has_position = true;
		}
		if (s->kind != SEGOBJ_SEG_LABELMAP) {
			DcmItem *si = fg_item(pf, shared, DCM_SegmentIdentificationSequence);
			Uint16 number;
			if (si == nullptr || si->findAndGetUint16(DCM_ReferencedSegmentNumber, number).bad())
				return fail(err, "frame %zu has no Segment Identification (0062,000A) > "
					    "Referenced Segment Number", f + 1);
			auto found = seg_index.find(number);
			if (found == seg_index.end())
				return fail(err, "frame %zu refers to segment %u, which the Segment "
					    "Sequence does not list", f + 1, number);
			fr.segment = number;
			b.segments[found->second].nframes++;
		}
		DcmItem *di = fg_item(pf, shared, DCM_DerivationImageSequence);
		DcmItem *src = first_item(di, DCM_SourceImageSequence);
		snprintf(what, sizeof what, "frame %zu: Source Image's Referenced SOP Instance UID", f + 1);
		if (!get_uid(err, src, DCM_ReferencedSOPInstanceUID, fr.referenced_sop_instance_uid, what))
			return false;
		b.add_ref(fr.referenced_sop_instance_uid);
	}
	return read_frame_geometry(err, b, shared, per_frame);
}

/* The Pixel Data bytes in file order (OW words as little-endian byte pairs,
 * which is how PS3.5 packs 1- and 8-bit pixels into words in either byte
 * order); need..max_len of them. */
bool pixel_bytes(struct r3d_err *err, DcmDataset *ds, size_t need, size_t max_len,
		 std::vector<Uint8> *copy, const Uint8 **out)
{
	DcmElement *el = nullptr;

	if (ds->findAndGetElement(DCM_PixelData, el).bad() || el == nullptr)
		return fail(err, "Pixel Data (7FE0,0010) missing");
	size_t len = el->getLength();
	if (len < need || len > max_len)
		return fail(err, "Pixel Data holds %zu bytes; rows x columns x frames needs %zu",
			    len, need);
	if (el->getVR() == EVR_OW) {
		Uint16 *w = nullptr;
		if (el->getUint16Array(w).bad() || w == nullptr)
			return fail(err, "cannot read Pixel Data");
		copy->resize(len);
		for (size_t i = 0; i + 1 < len; i += 2) {
			(*copy)[i] = static_cast<Uint8>(w[i / 2] & 0xff);
			(*copy)[i + 1] = static_cast<Uint8>(w[i / 2] >> 8);
		}
		*out = copy->data();
	} else {
		Uint8 *p = nullptr;
		if (el->getUint8Array(p).bad() || p == nullptr)
			return fail(err, "cannot read Pixel Data");
		*out = p;
	}
	return true;
}

bool read_pixels(struct r3d_err *err, DcmDataset *ds, builder &b, unsigned bits)
{
	struct segobj *s = b.s;
	size_t plane = static_cast<size_t>(s->rows) * s->columns;
	size_t nframes = b.frames.size();
	size_t total = plane * nframes;   /* rows, columns < 2^16 and frames <= 2^16: no overflow */
	size_t need;

	if (total > SEGOBJ_MAX_PIXELS)
		return fail(err, "%zu frames of %u x %u pixels are %zu pixels; recon3d reads at most "
			    "%llu per object (SEGOBJ_MAX_PIXELS, one byte each in memory)", nframes,
			    static_cast<unsigned>(s->rows), static_cast<unsigned>(s->columns), total,
			    SEGOBJ_MAX_PIXELS);
	{
		DcmXfer xfer(ds->getOriginalXfer());
		if (xfer.isEncapsulated()) {
			OFCondition c = ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
			if (c.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit))
				return fail(err, "cannot decode the pixel data (%s): %s",
					    xfer.getXferName(), c.bad() ? c.text() : "no decoder");
		}
	}
	need = bits == 1 ? (total + 7) / 8 : total * (bits / 8);
	std::vector<Uint8> copy;
	const Uint8 *p = nullptr;
	if (!pixel_bytes(err, ds, need, need + (need & 1), &copy, &p))
		return false;

	s->pixel_store = static_cast<uint8_t *>(malloc(total));
	if (s->pixel_store == nullptr)
		return r3d_err_set(err, R3D_ENOMEM, "out of memory for %zu pixels", total);
	uint8_t *dst = s->pixel_store;
	if (bits == 1) {
		/* Frame f starts at bit f * rows * columns, which need not be on
		 * a byte boundary; the first pixel is the least significant bit. */
		for (size_t i = 0; i < total; i++)
			dst[i] = static_cast<uint8_t>((p[i >> 3] >> (i & 7)) & 1);
	} else if (bits == 8) {
		memcpy(dst, p, total);
	} else {
		for (size_t i = 0; i < total; i++) {
			unsigned v = p[2 * i] | (static_cast<unsigned>(p[2 * i + 1]) << 8);
			if (v > 255)
				return fail(err, "label %u in frame %zu does not fit in 8 bits (segobj.h "
					    "keeps labels as uint8)", v, i / plane + 1);
			dst[i] = static_cast<uint8_t>(v);
		}
	}
	if (s->kind == SEGOBJ_SEG_FRACTIONAL)
		for (size_t i = 0; i < total; i++)
			if (dst[i] > s->max_fractional)
				return fail(err, "pixel value %u in frame %zu is over the Maximum "
					    "Fractional Value %u", dst[i], i / plane + 1, s->max_fractional);
	for (size_t f = 0; f < nframes; f++)
		b.frames[f].pixels = dst + f * plane;
	return true;
}

/* The Modality of the images of a SOP class, for the classes a
 * segmentation is made on; "" for the others. (DCMTK's
 * dcmSOPClassUIDToModality() gives its file name prefixes instead: "CTe"
 * for Enhanced CT, "PI" for PET, "VLw" for slide microscopy.) */
const char *modality_of(const std::string &sop_class)
{
	static const struct {
		const char *uid, *modality;
	} table[] = {
		{UID_CTImageStorage, "CT"},
		{UID_EnhancedCTImageStorage, "CT"},
		{UID_LegacyConvertedEnhancedCTImageStorage, "CT"},
		{UID_MRImageStorage, "MR"},
		{UID_EnhancedMRImageStorage, "MR"},
		{UID_LegacyConvertedEnhancedMRImageStorage, "MR"},
		{UID_PositronEmissionTomographyImageStorage, "PT"},
		{UID_EnhancedPETImageStorage, "PT"},
		{UID_LegacyConvertedEnhancedPETImageStorage, "PT"},
		{UID_NuclearMedicineImageStorage, "NM"},
		{UID_UltrasoundImageStorage, "US"},
		{UID_UltrasoundMultiframeImageStorage, "US"},
		{UID_VLWholeSlideMicroscopyImageStorage, "SM"},
	};

	for (const auto &t : table)
		if (sop_class == t.uid)
			return t.modality;
	return "";
}

bool read_seg(struct r3d_err *err, DcmDataset *ds, builder &b)
{
	struct segobj *s = b.s;
	Uint16 rows = 0, columns = 0, bits = 0, spp = 1, mfv = 0;
	Sint32 frames = 0;
	std::string type, ref_class;

	/* References to the source: the series, its instances, its modality. */
	std::vector<DcmItem *> series = items_of(ds, DCM_ReferencedSeriesSequence);
	if (!get_uid(err, series.empty() ? nullptr : series[0], DCM_SeriesInstanceUID,
		     s->referenced_series_uid, "Referenced Series Sequence's Series Instance UID"))
		return false;
	std::set<std::string> in_series;
	for (DcmItem *se : series)
		for (DcmItem *ri : items_of(se, DCM_ReferencedInstanceSequence)) {
			std::string uid, cls;
			get_string(ri, DCM_ReferencedSOPInstanceUID, uid);
			if (ref_class.empty() && get_string(ri, DCM_ReferencedSOPClassUID, cls))
				ref_class = cls;
			b.add_ref(uid);
			if (se == series[0] && !uid.empty())
				in_series.insert(uid);
		}
	s->nseries_instances = in_series.size();

	if (ds->findAndGetUint16(DCM_Rows, rows).bad() || rows == 0)
		return fail(err, "Rows (0028,0010) missing or 0");
	if (ds->findAndGetUint16(DCM_Columns, columns).bad() || columns == 0)
		return fail(err, "Columns (0028,0011) missing or 0");
	if (ds->findAndGetUint16(DCM_BitsAllocated, bits).bad())
		return fail(err, "Bits Allocated (0028,0100) missing");
	if (ds->tagExists(DCM_SamplesPerPixel) &&
	    (ds->findAndGetUint16(DCM_SamplesPerPixel, spp).bad() || spp != 1))
		return fail(err, "Samples per Pixel is %u, a Segmentation has 1", spp);
	if (ds->findAndGetSint32(DCM_NumberOfFrames, frames).bad())
		return fail(err, "Number of Frames (0028,0008) missing");
	if (frames < 1 || frames > SEGOBJ_MAX_FRAMES)
		return fail(err, "Number of Frames (0028,0008) is %ld; recon3d reads 1 to %d frames "
			    "per object (SEGOBJ_MAX_FRAMES)", static_cast<long>(frames),
			    SEGOBJ_MAX_FRAMES);
	s->rows = rows;
	s->columns = columns;

	get_string(ds, DCM_SegmentationType, type);
	if (s->kind == SEGOBJ_SEG_LABELMAP) {
		if (!type.empty() && type != "LABELMAP")
			return fail(err, "Label Map Segmentation with Segmentation Type '%.20s'",
				    type.c_str());
		if (bits != 8 && bits != 16)
			return fail(err, "Label Map Segmentation with Bits Allocated %u (8 or 16)", bits);
	} else if (type == "BINARY") {
		s->kind = SEGOBJ_SEG_BINARY;
		if (bits != 1)
			return fail(err, "BINARY Segmentation with Bits Allocated %u (1)", bits);
	} else if (type == "FRACTIONAL") {
		s->kind = SEGOBJ_SEG_FRACTIONAL;
		if (bits != 8)
			return fail(err, "FRACTIONAL Segmentation with Bits Allocated %u (8)", bits);
		if (ds->findAndGetUint16(DCM_MaximumFractionalValue, mfv).bad() || mfv == 0 ||
		    mfv > 255)
			return fail(err, "FRACTIONAL Segmentation without a Maximum Fractional Value "
				    "(0062,000E) of 1..255");
		s->max_fractional = mfv;
	} else if (type.empty()) {
		return fail(err, "Segmentation Type (0062,0001) missing");
	} else {
		return fail(err, "Segmentation Type '%.20s' (BINARY or FRACTIONAL)", type.c_str());
	}

	if (!read_segments(err, ds, b) || !read_frames(err, ds, b, static_cast<size_t>(frames)))
		return false;

	/* The source's modality, as the SOP class of what it references says. */
	if (ref_class.empty()) {
		DcmItem *pf = first_item(ds, DCM_PerFrameFunctionalGroupsSequence);
		DcmItem *shared = first_item(ds, DCM_SharedFunctionalGroupsSequence);
		DcmItem *src = first_item(fg_item(pf, shared, DCM_DerivationImageSequence),
					  DCM_SourceImageSequence);
		if (src == nullptr)
			src = first_item(ds, DCM_SourceImageSequence);
		get_string(src, DCM_ReferencedSOPClassUID, ref_class);
	}
	copy_text(s->source_modality, sizeof s->source_modality, modality_of(ref_class));
	return read_pixels(err, ds, b, bits);
}

/* ---- RT Structure Set ------------------------------------------------- */

enum segobj_contour_type contour_type(const std::string &t)
{
	if (t == "CLOSED_PLANAR")
		return SEGOBJ_CLOSED_PLANAR;
	if (t == "OPEN_PLANAR")
		return SEGOBJ_OPEN_PLANAR;
	if (t == "OPEN_NONPLANAR")
		return SEGOBJ_OPEN_NONPLANAR;
	if (t == "POINT")
		return SEGOBJ_POINT;
	return SEGOBJ_OTHER;
}

bool read_rois(struct r3d_err *err, DcmDataset *ds, builder &b, std::map<unsigned, size_t> &index,
	       std::string &roi_frame)
{
	std::vector<DcmItem *> items = items_of(ds, DCM_StructureSetROISequence);

	if (!ds->tagExists(DCM_StructureSetROISequence))
		return fail(err, "Structure Set ROI Sequence (3006,0020) missing");
	if (items.size() > SEGOBJ_MAX_SEGMENTS)
		return fail(err, "the Structure Set ROI Sequence lists %zu ROIs; recon3d meshes at "
			    "most %d per object (SEGOBJ_MAX_SEGMENTS)", items.size(),
			    SEGOBJ_MAX_SEGMENTS);
	for (size_t i = 0; i < items.size(); i++) {
		struct segobj_segment sg;
		Sint32 number = -1;
		std::string frame;

		memset(&sg, 0, sizeof sg);
		if (items[i]->findAndGetSint32(DCM_ROINumber, number).bad() || number < 0)
			return fail(err, "item %zu of the Structure Set ROI Sequence has no ROI Number "
				    "(3006,0022)", i + 1);
		sg.number = static_cast<unsigned>(number);
		if (!index.emplace(sg.number, b.segments.size()).second)
			return fail(err, "ROI Number %u appears twice in the Structure Set ROI Sequence",
				    sg.number);
		get_text(items[i], DCM_ROIName, sg.label, sizeof sg.label);
		/* One frame of reference for the whole object (segobj has one). */
		if (get_string(items[i], DCM_ReferencedFrameOfReferenceUID, frame)) {
			if (roi_frame.empty())
				roi_frame = frame;
			else if (frame != roi_frame)
				return fail(err, "ROI %u '%s' is in Frame of Reference %.64s, an earlier "
					    "ROI in %.64s", sg.number, sg.label, frame.c_str(),
					    roi_frame.c_str());
		}
		b.segments.push_back(sg);
	}
	return true;
}

/* A contour found in the first pass; its points are parsed in the second,
 * straight into the one store. */
struct pending_contour {
	DcmDecimalString *data;
	size_t points;
};

bool read_contours(struct r3d_err *err, DcmDataset *ds, builder &b,
		   const std::map<unsigned, size_t> &index)
{
	struct segobj *s = b.s;
	std::vector<DcmItem *> rois = items_of(ds, DCM_ROIContourSequence);
	std::vector<pending_contour> pending;
	size_t total_points = 0;

	for (size_t r = 0; r < rois.size(); r++) {
		DcmItem *rc = rois[r];
		Sint32 ref = -1, rgb[3];
		if (rc->findAndGetSint32(DCM_ReferencedROINumber, ref).bad() || ref < 0)
			return fail(err, "item %zu of the ROI Contour Sequence has no Referenced ROI "
				    "Number (3006,0084)", r + 1);
		auto found = index.find(static_cast<unsigned>(ref));
		if (found == index.end())
			return fail(err, "ROI Contour item %zu refers to ROI %ld, which the Structure "
				    "Set ROI Sequence does not list", r + 1, static_cast<long>(ref));
		struct segobj_segment &sg = b.segments[found->second];
		if (!sg.has_color && rc->findAndGetSint32(DCM_ROIDisplayColor, rgb[0], 0).good() &&
		    rc->findAndGetSint32(DCM_ROIDisplayColor, rgb[1], 1).good() &&
		    rc->findAndGetSint32(DCM_ROIDisplayColor, rgb[2], 2).good() &&
		    rgb[0] >= 0 && rgb[0] <= 255 && rgb[1] >= 0 && rgb[1] <= 255 &&
		    rgb[2] >= 0 && rgb[2] <= 255) {
			sg.has_color = true;
			for (int k = 0; k < 3; k++)
				sg.rgb[k] = static_cast<float>(rgb[k]) / 255.0f;
		}
		/* Contours are numbered in messages as in their ROI's sequence,
		 * from 1 (a second ROI Contour item of the same ROI goes on). */
		std::vector<DcmItem *> cs = items_of(rc, DCM_ContourSequence);
		for (size_t c = 0; c < cs.size(); c++) {
			DcmItem *ci = cs[c];
			struct segobj_contour ct;
			std::string gt;
			Sint32 npoints = -1;
			DcmElement *el = nullptr;
			size_t cn = sg.ncontours + 1;
			char what[96];

			memset(&ct, 0, sizeof ct);
			if (b.contours.size() >= SEGOBJ_MAX_CONTOURS)
				return fail(err, "more than SEGOBJ_MAX_CONTOURS (%d) contours",
					    SEGOBJ_MAX_CONTOURS);
			if (!get_string(ci, DCM_ContourGeometricType, gt))
				return fail(err, "ROI %u '%s': contour %zu has no Contour Geometric Type "
					    "(3006,0042)", sg.number, sg.label, cn);
			if (ci->findAndGetSint32(DCM_NumberOfContourPoints, npoints).bad() || npoints < 0)
				return fail(err, "ROI %u '%s': contour %zu has no Number of Contour "
					    "Points (3006,0046)", sg.number, sg.label, cn);
			if (ci->findAndGetElement(DCM_ContourData, el).bad() || el == nullptr)
				return fail(err, "ROI %u '%s': contour %zu has no Contour Data "
					    "(3006,0050)", sg.number, sg.label, cn);
			if (el->ident() != EVR_DS)
				return fail(err, "ROI %u '%s': contour %zu: Contour Data is not DS",
					    sg.number, sg.label, cn);
			unsigned long values = el->getLength() > 0 ? el->getVM() : 0;
			if (values != 3 * static_cast<unsigned long>(npoints))
				return fail(err, "ROI %u '%s': contour %zu has %lu values in Contour "
					    "Data, Number of Contour Points %ld needs %ld", sg.number,
					    sg.label, cn, values, static_cast<long>(npoints),
					    3 * static_cast<long>(npoints));
			if (npoints == 0)
				return fail(err, "ROI %u '%s': contour %zu has no points", sg.number,
					    sg.label, cn);
			total_points += static_cast<size_t>(npoints);
			if (total_points > SEGOBJ_MAX_POINTS)
				return fail(err, "more than SEGOBJ_MAX_POINTS (%d) contour points",
					    SEGOBJ_MAX_POINTS);
			ct.roi = sg.number;
			ct.type = contour_type(gt);
			ct.npoints = static_cast<size_t>(npoints);
			std::vector<DcmItem *> images = items_of(ci, DCM_ContourImageSequence);
			for (size_t k = 0; k < images.size(); k++) {
				std::string uid;
				get_string(images[k], DCM_ReferencedSOPInstanceUID, uid);
				snprintf(what, sizeof what, "ROI %u contour %zu: Contour Image's "
					 "Referenced SOP Instance UID", sg.number, cn);
				if (k == 0 && !copy_id(err, ct.referenced_sop_instance_uid,
						       SEGOBJ_UID_MAX, uid, what))
					return false;
				b.add_ref(uid);
			}
			sg.contour_types |= 1u << ct.type;
			sg.ncontours++;
			b.contours.push_back(ct);
			pending.push_back({static_cast<DcmDecimalString *>(el), ct.npoints});
		}
	}

	s->point_store = static_cast<double *>(malloc((total_points > 0 ? total_points : 1) *
						      3 * sizeof(double)));
	if (s->point_store == nullptr)
		return r3d_err_set(err, R3D_ENOMEM, "out of memory for %zu contour points",
				   total_points);
	double *dst = s->point_store;
	OFVector<Float64> v;
	for (size_t i = 0; i < pending.size(); i++) {
		struct segobj_contour &ct = b.contours[i];
		v.clear();
		if (pending[i].data->getFloat64Vector(v).bad() || v.size() != 3 * pending[i].points)
			return fail(err, "ROI %u: contour %zu of the object: Contour Data is not %zu "
				    "numbers", ct.roi, i + 1, 3 * pending[i].points);
		for (size_t k = 0; k < v.size(); k++) {
			if (!std::isfinite(v[k]))
				return fail(err, "ROI %u: contour %zu of the object: Contour Data holds "
					    "a value that is not finite", ct.roi, i + 1);
			dst[k] = v[k];
		}
		ct.xyz = dst;
		dst += v.size();
	}
	return true;
}

bool read_rtstruct(struct r3d_err *err, DcmDataset *ds, builder &b)
{
	struct segobj *s = b.s;
	std::map<unsigned, size_t> index;
	std::string roi_frame, frame, series;

	if (!read_rois(err, ds, b, index, roi_frame))
		return false;

	/* Frame of reference: the one the ROIs name, else the first the
	 * structure set references; the series: the first RT Referenced
	 * Series under that frame of reference (else under any). */
	std::vector<DcmItem *> fors = items_of(ds, DCM_ReferencedFrameOfReferenceSequence);
	DcmItem *chosen = nullptr;
	for (DcmItem *fr : fors) {
		std::string uid;
		get_string(fr, DCM_FrameOfReferenceUID, uid);
		if (chosen == nullptr && (roi_frame.empty() || uid == roi_frame))
			chosen = fr;
	}
	frame = roi_frame;
	if (frame.empty() && chosen != nullptr)
		get_string(chosen, DCM_FrameOfReferenceUID, frame);
	if (!copy_id(err, s->frame_of_reference_uid, SEGOBJ_UID_MAX, frame,
		     "Referenced Frame of Reference UID"))
		return false;
	for (int pass = 0; pass < 2 && series.empty(); pass++)
		for (DcmItem *fr : fors) {
			if (pass == 0 && fr != chosen)
				continue;
			for (DcmItem *st : items_of(fr, DCM_RTReferencedStudySequence))
				if (series.empty())
					get_string(first_item(st, DCM_RTReferencedSeriesSequence),
						   DCM_SeriesInstanceUID, series);
		}
	if (!copy_id(err, s->referenced_series_uid, SEGOBJ_UID_MAX, series,
		     "RT Referenced Series' Series Instance UID"))
		return false;
	/* The images the series items list, then those the contours name. */
	std::set<std::string> in_series;
	for (DcmItem *fr : fors)
		for (DcmItem *st : items_of(fr, DCM_RTReferencedStudySequence))
			for (DcmItem *se : items_of(st, DCM_RTReferencedSeriesSequence)) {
				std::string se_uid;
				get_string(se, DCM_SeriesInstanceUID, se_uid);
				for (DcmItem *img : items_of(se, DCM_ContourImageSequence)) {
					std::string uid;
					get_string(img, DCM_ReferencedSOPInstanceUID, uid);
					b.add_ref(uid);
					if (!uid.empty() && !series.empty() && se_uid == series)
						in_series.insert(uid);
				}
			}
	s->nseries_instances = in_series.size();

	if (!read_contours(err, ds, b, index))
		return false;

	for (DcmItem *ob : items_of(ds, DCM_RTROIObservationsSequence)) {
		Sint32 ref = -1;
		/* An observation of no listed ROI carries no geometry: ignored. */
		if (ob->findAndGetSint32(DCM_ReferencedROINumber, ref).bad() || ref < 0)
			continue;
		auto found = index.find(static_cast<unsigned>(ref));
		if (found == index.end())
			continue;
		struct segobj_segment &sg = b.segments[found->second];
		if (sg.rt_interpreted_type[0] == '\0')
			get_text(ob, DCM_RTROIInterpretedType, sg.rt_interpreted_type,
				 sizeof sg.rt_interpreted_type);
	}
	return true;
}

/* ---- the file --------------------------------------------------------- */

std::string base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash != nullptr ? slash + 1 : path;
}

/* "CT Image Storage" for 1.2.840.10008.5.1.4.1.1.2: DCMTK 3.6.7 names SOP
 * classes by keyword ("CTImageStorage"), split here into words. */
std::string class_name(const std::string &uid)
{
	const char *n = dcmFindNameOfUID(uid.c_str(), nullptr);
	std::string out;

	if (n == nullptr)
		return "an unknown SOP class";
	for (size_t i = 0; n[i] != '\0'; i++) {
		bool up = isupper(static_cast<unsigned char>(n[i])) != 0;
		bool prev_lower = i > 0 && islower(static_cast<unsigned char>(n[i - 1]));
		bool prev_upper = i > 0 && isupper(static_cast<unsigned char>(n[i - 1]));
		bool next_lower = islower(static_cast<unsigned char>(n[i + 1])) != 0;
		if (up && (prev_lower || (prev_upper && next_lower)))
			out += ' ';
		out += n[i];
	}
	return out;
}

bool read_object(struct r3d_err *err, const char *path, builder &b)
{
	struct segobj *s = b.s;
	struct stat st;
	DcmFileFormat ff;
	std::string cls;

	if (stat(path, &st) != 0)
		return r3d_err_set(err, R3D_EIO, "cannot read '%s': %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(err, "'%s' is not a regular file", path);
	if (!r3d_bridge_util::inflated_size_ok(err, path, b.name))
		return false;
	OFCondition c = ff.loadFile(OFFilename(path), EXS_Unknown, EGL_noChange, DCM_MaxReadLength,
				    ERM_autoDetect);
	if (c.bad())
		return fail(err, "%s cannot be parsed as DICOM (damaged, truncated or not DICOM): %s",
			    b.name.c_str(), c.text());
	DcmDataset *ds = ff.getDataset();
	/* Labels and meanings in UTF-8; a character set iconv does not know
	 * leaves the bytes, which copy_text() keeps only where valid. */
	(void)ds->convertToUTF8();

	if (!get_string(ds, DCM_SOPClassUID, cls))
		get_string(ff.getMetaInfo(), DCM_MediaStorageSOPClassUID, cls);
	if (cls.empty())
		return fail(err, "%s has no SOP Class UID (0008,0016): not a DICOM object",
			    b.name.c_str());
	if (cls == SEGREAD_UID_SEG) {
		s->kind = SEGOBJ_SEG_BINARY;   /* or FRACTIONAL: read_seg() says */
	} else if (cls == SEGREAD_UID_LABELMAP) {
		s->kind = SEGOBJ_SEG_LABELMAP;
	} else if (cls == SEGREAD_UID_RTSTRUCT) {
		s->kind = SEGOBJ_RTSTRUCT;
	} else {
		return fail(err, "%s is %s (%.64s), not a Segmentation or RT Structure Set",
			    b.name.c_str(), class_name(cls).c_str(), cls.c_str());
	}
	if (!copy_id(err, s->sop_class_uid, sizeof s->sop_class_uid, cls, "SOP Class UID"))
		return false;
	if (!get_uid(err, ds, DCM_SOPInstanceUID, s->sop_instance_uid, "SOP Instance UID"))
		return false;
	if (s->sop_instance_uid[0] == '\0')
		return fail(err, "SOP Instance UID (0008,0018) missing");
	if (!get_uid(err, ds, DCM_SeriesInstanceUID, s->series_uid, "Series Instance UID") ||
	    !get_uid(err, ds, DCM_StudyInstanceUID, s->study_uid, "Study Instance UID"))
		return false;
	get_text(ds, DCM_Manufacturer, s->manufacturer, sizeof s->manufacturer);
	get_text(ds, DCM_SoftwareVersions, s->software, sizeof s->software);

	if (s->kind == SEGOBJ_RTSTRUCT)
		return read_rtstruct(err, ds, b) && builder_finish(err, b);
	if (!get_uid(err, ds, DCM_FrameOfReferenceUID, s->frame_of_reference_uid,
		     "Frame of Reference UID"))
		return false;
	return read_seg(err, ds, b) && builder_finish(err, b);
}

} // namespace

extern "C" void bridge_segobj_free(struct segobj *s)
{
	if (s == nullptr)
		return;
	free(s->point_store);
	free(s->pixel_store);
	free(s->contours);
	free(s->frames);
	free(s->segments);
	free(s->referenced_instances);
	free(s);
}

extern "C" bool bridge_segobj_read(struct r3d_err *err, const char *path, struct segobj **out)
{
	bool ok = false;
	builder b;

	if (out == nullptr)
		return r3d_err_set(err, R3D_EINVAL, "no output given");
	*out = nullptr;
	if (path == nullptr || path[0] == '\0')
		return r3d_err_set(err, R3D_EINVAL, "no path given");
	b.s = static_cast<struct segobj *>(calloc(1, sizeof(struct segobj)));
	if (b.s == nullptr)
		return r3d_err_set(err, R3D_ENOMEM, "out of memory");
	try {
		b.name = base_name(path);
		ok = read_object(err, path, b);
		/* Every reason names the file it is about. */
		if (!ok && err != nullptr && strstr(err->msg, b.name.c_str()) == nullptr)
			r3d_err_prefix(err, "%s", b.name.c_str());
	} catch (const std::bad_alloc &) {
		ok = r3d_err_set(err, R3D_ENOMEM, "out of memory reading '%s'", path);
	} catch (...) {
		ok = r3d_err_set(err, R3D_EINVAL, "unexpected error reading '%s'", path);
	}
	if (!ok) {
		bridge_segobj_free(b.s);
		return false;
	}
	*out = b.s;
	return true;
}
