/*
 * write.cpp: the bridge's DICOM writers (see "Writing DICOM objects" in
 * r3d/bridge.h): CT Image Storage slices and Enhanced CT multi-frame
 * instances for the phantom generator, in every transfer syntax the node
 * accepts. Uncompressed, deflated and RLE/JPEG/JPEG-LS
 * objects go through DCMTK's encoders; JPEG 2000 is encoded with OpenJPEG and
 * encapsulated here. Any thread may call these functions; the encoders are
 * registered once, on first use, under std::call_once.
 */
/* Harmless if err.h and util.h carry their own extern "C" guards. */
extern "C" {
#include "r3d/err.h"
#include "r3d/util.h"
}
#include "r3d/bridge.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include <unistd.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/dcmjpls/djrparam.h>

#include <openjpeg.h>

#define WRITE_MAX_DIM 8192          /* rows or columns of one slice */
#define WRITE_MAX_FRAMES 4096      /* frames in one Enhanced CT instance */
#define WRITE_J2K_LOSSY_RATIO 10.0  /* compression ratio of BRIDGE_TS_J2K_LOSSY */

namespace {

struct ts_entry {
	enum bridge_ts ts;
	const char *name;
	E_TransferSyntax xfer;
};

const ts_entry ts_table[] = {
	{BRIDGE_TS_IMPLICIT_LE, "implicit", EXS_LittleEndianImplicit},
	{BRIDGE_TS_EXPLICIT_LE, "explicit", EXS_LittleEndianExplicit},
	{BRIDGE_TS_EXPLICIT_BE, "big", EXS_BigEndianExplicit},
	{BRIDGE_TS_DEFLATE, "deflate", EXS_DeflatedLittleEndianExplicit},
	{BRIDGE_TS_RLE, "rle", EXS_RLELossless},
	{BRIDGE_TS_JPEG_LL, "jpegll", EXS_JPEGProcess14SV1},
	{BRIDGE_TS_JPEGLS, "jpegls", EXS_JPEGLSLossless},
	{BRIDGE_TS_J2K, "j2k", EXS_JPEG2000LosslessOnly},
	{BRIDGE_TS_J2K_LOSSY, "j2k-lossy", EXS_JPEG2000},
};

std::once_flag encoders_once;

void encoders_register()
{
	std::call_once(encoders_once, [] {
		DcmRLEEncoderRegistration::registerCodecs();
		DJEncoderRegistration::registerCodecs();
		DJLSEncoderRegistration::registerCodecs();
		/* The JPEG and JPEG-LS encoders (through dcmimgle) report every
		 * frame at info level. */
		OFLog::getLogger("dcmtk.dcmjpeg").setLogLevel(OFLogger::WARN_LOG_LEVEL);
		OFLog::getLogger("dcmtk.dcmjpls").setLogLevel(OFLogger::WARN_LOG_LEVEL);
		OFLog::getLogger("dcmtk.dcmimgle").setLogLevel(OFLogger::WARN_LOG_LEVEL);
	});
}

const ts_entry *ts_find(enum bridge_ts ts)
{
	for (const ts_entry &e : ts_table)
		if (e.ts == ts)
			return &e;
	return nullptr;
}

std::string ds_join(const double *v, int n)
{
	std::string s;
	char buf[32];

	for (int i = 0; i < n; i++) {
		/* DS is at most 16 characters per value. */
		snprintf(buf, sizeof(buf), "%.10g", v[i]);
		if (strlen(buf) > 16)
			snprintf(buf, sizeof(buf), "%.8g", v[i]);
		if (i > 0)
			s += '\\';
		s += buf;
	}
	return s;
}

/* OpenJPEG output stream into a growing vector. */
OPJ_SIZE_T j2k_write_cb(void *buf, OPJ_SIZE_T n, void *user)
{
	auto *out = static_cast<std::vector<Uint8> *>(user);
	const Uint8 *p = static_cast<const Uint8 *>(buf);

	out->insert(out->end(), p, p + n);
	return n;
}

OPJ_OFF_T j2k_skip_cb(OPJ_OFF_T n, void *user)
{
	auto *out = static_cast<std::vector<Uint8> *>(user);

	if (n < 0)
		return -1;
	out->resize(out->size() + static_cast<size_t>(n), 0);
	return n;
}

OPJ_BOOL j2k_seek_cb(OPJ_OFF_T, void *)
{
	return OPJ_FALSE;  /* the J2K codestream writer never seeks */
}

/* Encodes one grey frame into a raw J2K codestream. */
bool j2k_encode(struct r3d_err *err, const struct bridge_ct_image *img, bool lossy,
		std::vector<Uint8> &out)
{
	opj_cparameters_t params;
	opj_image_cmptparm_t cmpt;
	opj_image_t *image = nullptr;
	opj_codec_t *codec = nullptr;
	opj_stream_t *stream = nullptr;
	size_t npix = static_cast<size_t>(img->rows) * img->columns;
	bool ok = false;

	opj_set_default_encoder_parameters(&params);
	params.tcp_numlayers = 1;
	params.cp_disto_alloc = 1;
	/* OpenJPEG's default of 6 resolutions needs 32 pixels a side: fewer
	 * for smaller frames (a 16x16 image gets 5), so that they encode. */
	while (params.numresolution > 1 &&
	       std::min(img->rows, img->columns) < (1u << (params.numresolution - 1)))
		params.numresolution--;
	if (lossy) {
		params.irreversible = 1;
		params.tcp_rates[0] = static_cast<float>(WRITE_J2K_LOSSY_RATIO);
	} else {
		params.irreversible = 0;
		params.tcp_rates[0] = 0;  /* lossless */
	}
	memset(&cmpt, 0, sizeof(cmpt));
	cmpt.dx = 1;
	cmpt.dy = 1;
	cmpt.w = img->columns;
	cmpt.h = img->rows;
	cmpt.prec = img->bits_stored;
	cmpt.sgnd = img->is_signed ? 1 : 0;
	image = opj_image_create(1, &cmpt, OPJ_CLRSPC_GRAY);
	if (image == nullptr) {
		r3d_err_set(err, R3D_ENOMEM, "OpenJPEG cannot create an image");
		goto out;
	}
	image->x0 = 0;
	image->y0 = 0;
	image->x1 = img->columns;
	image->y1 = img->rows;
	for (size_t i = 0; i < npix; i++)
		image->comps[0].data[i] = img->is_signed ? static_cast<OPJ_INT32>(
			static_cast<Sint16>(img->pixels[i])) : static_cast<OPJ_INT32>(img->pixels[i]);
	codec = opj_create_compress(OPJ_CODEC_J2K);
	if (codec == nullptr || !opj_setup_encoder(codec, &params, image)) {
		r3d_err_set(err, R3D_EINVAL, "OpenJPEG refuses the encoder parameters");
		goto out;
	}
	stream = opj_stream_default_create(OPJ_FALSE);
	if (stream == nullptr) {
		r3d_err_set(err, R3D_ENOMEM, "OpenJPEG cannot create a stream");
		goto out;
	}
	opj_stream_set_user_data(stream, &out, nullptr);
	opj_stream_set_write_function(stream, j2k_write_cb);
	opj_stream_set_skip_function(stream, j2k_skip_cb);
	opj_stream_set_seek_function(stream, j2k_seek_cb);
	if (!opj_start_compress(codec, image, stream) || !opj_encode(codec, stream) ||
	    !opj_end_compress(codec, stream)) {
		r3d_err_set(err, R3D_EINVAL, "OpenJPEG failed to encode the frame");
		goto out;
	}
	ok = true;
out:
	if (stream != nullptr)
		opj_stream_destroy(stream);
	if (codec != nullptr)
		opj_destroy_codec(codec);
	if (image != nullptr)
		opj_image_destroy(image);
	return ok;
}

/* Puts one J2K codestream per frame into an encapsulated Pixel Data element,
 * one fragment per frame, with a Basic Offset Table. */
bool j2k_insert(struct r3d_err *err, DcmDataset *ds, const struct bridge_ct_image *frames,
		size_t count, bool lossy, E_TransferSyntax xfer)
{
	std::vector<std::vector<Uint8>> codes(count);
	std::vector<Uint32> offsets;
	size_t total = 0;

	for (size_t f = 0; f < count; f++) {
		if (!j2k_encode(err, &frames[f], lossy, codes[f]))
			return false;
		if (codes[f].size() & 1)
			codes[f].push_back(0);  /* fragments have even length */
		if (total > UINT32_MAX - codes[f].size() - 8)
			return r3d_err_set(err, R3D_EINVAL, "JPEG 2000 data over 4 GiB");
		offsets.push_back(static_cast<Uint32>(total));
		total += codes[f].size() + 8;  /* item header + fragment */
	}
	DcmPixelSequence *seq = new DcmPixelSequence(DCM_PixelSequenceTag);
	DcmPixelItem *bot = new DcmPixelItem(DCM_PixelItemTag);
	if (count > 1)
		bot->putUint8Array(reinterpret_cast<const Uint8 *>(offsets.data()),
				   static_cast<unsigned long>(offsets.size() * 4));
	seq->insert(bot);
	for (size_t f = 0; f < count; f++) {
		DcmPixelItem *frag = new DcmPixelItem(DCM_PixelItemTag);
		if (frag->putUint8Array(codes[f].data(),
					static_cast<unsigned long>(codes[f].size())).bad() ||
		    seq->insert(frag).bad()) {
			delete frag;
			delete seq;
			return r3d_err_set(err, R3D_ENOMEM, "cannot store a JPEG 2000 fragment");
		}
	}
	DcmPixelData *pd = new DcmPixelData(DCM_PixelData);
	pd->putOriginalRepresentation(xfer, nullptr, seq);
	if (ds->insert(pd, true).bad()) {
		delete pd;
		return r3d_err_set(err, R3D_ENOMEM, "cannot insert Pixel Data");
	}
	if (lossy) {
		size_t raw = static_cast<size_t>(frames[0].rows) * frames[0].columns * 2 * count;
		char ratio[32];
		snprintf(ratio, sizeof(ratio), "%.2f", static_cast<double>(raw) /
			 static_cast<double>(total));
		ds->putAndInsertString(DCM_LossyImageCompression, "01");
		ds->putAndInsertString(DCM_LossyImageCompressionRatio, ratio);
		ds->putAndInsertString(DCM_LossyImageCompressionMethod, "ISO_15444_1");
	}
	return true;
}

bool uid_ok(const char *u)
{
	size_t n = u != nullptr ? strlen(u) : 0;

	if (n == 0 || n > BRIDGE_UID_MAX || u[0] == '.' || u[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((u[i] >= '0' && u[i] <= '9') || u[i] == '.') || (u[i] == '.' && u[i + 1] == '.'))
			return false;
	return true;
}

bool put(DcmDataset *ds, const DcmTagKey &tag, const char *value)
{
	return ds->putAndInsertString(tag, value != nullptr ? value : "").good();
}

bool ct_fill(struct r3d_err *err, DcmDataset *ds, const struct bridge_ct_image *img)
{
	char num[32];
	bool ok = true;

	ok &= put(ds, DCM_SpecificCharacterSet, "ISO_IR 100");
	/* Tilted and oblique phantoms are still axial acquisitions for CT's Image Type. */
	ok &= put(ds, DCM_ImageType, "ORIGINAL\\PRIMARY\\AXIAL");
	ok &= put(ds, DCM_SOPClassUID, UID_CTImageStorage);
	ok &= put(ds, DCM_SOPInstanceUID, img->sop_instance_uid);
	ok &= put(ds, DCM_StudyDate, img->study_date);
	ok &= put(ds, DCM_StudyTime, img->study_time);
	ok &= put(ds, DCM_ContentDate, img->study_date);
	ok &= put(ds, DCM_ContentTime, img->study_time);
	ok &= put(ds, DCM_AccessionNumber, "");
	ok &= put(ds, DCM_Modality, "CT");
	ok &= put(ds, DCM_Manufacturer, img->manufacturer);
	ok &= put(ds, DCM_ReferringPhysicianName, "");
	ok &= put(ds, DCM_SeriesDescription, img->series_description);
	ok &= put(ds, DCM_BodyPartExamined, "CHEST");
	ok &= put(ds, DCM_PatientName, img->patient_name);
	ok &= put(ds, DCM_PatientID, img->patient_id);
	ok &= put(ds, DCM_PatientBirthDate, "");
	ok &= put(ds, DCM_PatientSex, "O");
	ok &= put(ds, DCM_KVP, "120");
	ok &= put(ds, DCM_SliceThickness, ds_join(&img->slice_thickness, 1).c_str());
	ok &= put(ds, DCM_GantryDetectorTilt, ds_join(&img->gantry_tilt_deg, 1).c_str());
	ok &= put(ds, DCM_PatientPosition, "HFS");
	ok &= put(ds, DCM_StudyInstanceUID, img->study_uid);
	ok &= put(ds, DCM_SeriesInstanceUID, img->series_uid);
	ok &= put(ds, DCM_StudyID, img->study_id);
	snprintf(num, sizeof(num), "%ld", img->series_number);
	ok &= put(ds, DCM_SeriesNumber, num);
	ok &= put(ds, DCM_AcquisitionNumber, "1");
	snprintf(num, sizeof(num), "%ld", img->instance_number);
	ok &= put(ds, DCM_InstanceNumber, num);
	ok &= put(ds, DCM_ImagePositionPatient, ds_join(img->position, 3).c_str());
	ok &= put(ds, DCM_ImageOrientationPatient, ds_join(img->orientation, 6).c_str());
	ok &= put(ds, DCM_FrameOfReferenceUID, img->frame_of_reference_uid);
	ok &= put(ds, DCM_PositionReferenceIndicator, "");
	ok &= ds->putAndInsertUint16(DCM_SamplesPerPixel, 1).good();
	ok &= put(ds, DCM_PhotometricInterpretation, "MONOCHROME2");
	ok &= ds->putAndInsertUint16(DCM_Rows, static_cast<Uint16>(img->rows)).good();
	ok &= ds->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(img->columns)).good();
	ok &= put(ds, DCM_PixelSpacing, ds_join(img->pixel_spacing, 2).c_str());
	ok &= ds->putAndInsertUint16(DCM_BitsAllocated, 16).good();
	ok &= ds->putAndInsertUint16(DCM_BitsStored, static_cast<Uint16>(img->bits_stored)).good();
	ok &= ds->putAndInsertUint16(DCM_HighBit, static_cast<Uint16>(img->bits_stored - 1)).good();
	ok &= ds->putAndInsertUint16(DCM_PixelRepresentation, img->is_signed ? 1 : 0).good();
	ok &= put(ds, DCM_WindowCenter, "40");
	ok &= put(ds, DCM_WindowWidth, "400");
	ok &= put(ds, DCM_RescaleIntercept, ds_join(&img->rescale_intercept, 1).c_str());
	ok &= put(ds, DCM_RescaleSlope, ds_join(&img->rescale_slope, 1).c_str());
	ok &= put(ds, DCM_RescaleType, "HU");
	if (!ok)
		return r3d_err_set(err, R3D_ENOMEM, "cannot fill the CT attributes");
	return true;
}

bool ct_check(struct r3d_err *err, const struct bridge_ct_image *img)
{
	if (img->rows == 0 || img->columns == 0 || img->rows > WRITE_MAX_DIM ||
	    img->columns > WRITE_MAX_DIM)
		return r3d_err_set(err, R3D_EINVAL, "slice size %ux%u outside 1..%d", img->rows,
				   img->columns, WRITE_MAX_DIM);
	if (img->bits_stored < 8 || img->bits_stored > 16)
		return r3d_err_set(err, R3D_EINVAL, "bits stored %u outside 8..16", img->bits_stored);
	if (img->pixels == nullptr)
		return r3d_err_set(err, R3D_EINVAL, "no pixels");
	const char *uids[] = {img->study_uid, img->series_uid, img->sop_instance_uid,
			      img->frame_of_reference_uid};
	for (const char *u : uids)
		if (!uid_ok(u))
			return r3d_err_set(err, R3D_EINVAL, "missing or malformed UID '%s'",
					   u != nullptr ? u : "");
	return true;
}

/* Enhanced CT: the classic per-slice plane, rescale and acquisition
 * attributes move into the shared and per-frame functional groups. */
bool enhanced_fill(struct r3d_err *err, DcmDataset *ds, const struct bridge_ct_image *frames,
		   size_t count)
{
	const struct bridge_ct_image *img = &frames[0];
	char dim_uid[BRIDGE_UID_MAX + 1];
	DcmItem *shared = nullptr, *it = nullptr;
	bool ok = true;
	static const DcmTagKey moved[] = {
		DCM_ImagePositionPatient, DCM_ImageOrientationPatient, DCM_PixelSpacing,
		DCM_SliceThickness, DCM_RescaleIntercept, DCM_RescaleSlope, DCM_RescaleType,
		DCM_WindowCenter, DCM_WindowWidth, DCM_GantryDetectorTilt, DCM_KVP,
	};

	for (const DcmTagKey &t : moved)
		delete ds->remove(t);
	bridge_uid_generate(dim_uid);
	ok &= put(ds, DCM_SOPClassUID, UID_EnhancedCTImageStorage);
	ok &= put(ds, DCM_ImageType, "ORIGINAL\\PRIMARY\\VOLUME\\NONE");
	ok &= put(ds, DCM_AcquisitionDateTime, "20260101120000");
	ok &= ds->putAndInsertFloat64(DCM_AcquisitionDuration, 1.0).good();
	ok &= ds->insertEmptyElement(DCM_AcquisitionContextSequence).good();
	ok &= put(ds, DCM_PixelPresentation, "MONOCHROME");
	ok &= put(ds, DCM_VolumetricProperties, "VOLUME");
	ok &= put(ds, DCM_VolumeBasedCalculationTechnique, "NONE");
	ok &= put(ds, DCM_ContentQualification, "RESEARCH");
	ok &= put(ds, DCM_BurnedInAnnotation, "NO");
	ok &= put(ds, DCM_ManufacturerModelName, "recon3d-phantom");
	ok &= put(ds, DCM_DeviceSerialNumber, "1");
	ok &= put(ds, DCM_SoftwareVersions, R3D_VERSION);
	ok &= put(ds, DCM_PresentationLUTShape, "IDENTITY");
	if (!ds->tagExists(DCM_LossyImageCompression))
		ok &= put(ds, DCM_LossyImageCompression, "00");
	ok &= ds->findOrCreateSequenceItem(DCM_DimensionOrganizationSequence, it, 0).good() &&
	      it->putAndInsertString(DCM_DimensionOrganizationUID, dim_uid).good();
	ok &= ds->findOrCreateSequenceItem(DCM_DimensionIndexSequence, it, 0).good() &&
	      it->putAndInsertTagKey(DCM_DimensionIndexPointer, DCM_ImagePositionPatient).good() &&
	      it->putAndInsertTagKey(DCM_FunctionalGroupPointer, DCM_PlanePositionSequence).good() &&
	      it->putAndInsertString(DCM_DimensionOrganizationUID, dim_uid).good();
	ok &= ds->findOrCreateSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0).good();
	if (!ok)
		return r3d_err_set(err, R3D_ENOMEM, "cannot fill the Enhanced CT attributes");
	ok &= shared->findOrCreateSequenceItem(DCM_PixelMeasuresSequence, it, 0).good() &&
	      it->putAndInsertString(DCM_PixelSpacing, ds_join(img->pixel_spacing, 2).c_str()).good() &&
	      it->putAndInsertString(DCM_SliceThickness, ds_join(&img->slice_thickness, 1).c_str()).good();
	ok &= shared->findOrCreateSequenceItem(DCM_PlaneOrientationSequence, it, 0).good() &&
	      it->putAndInsertString(DCM_ImageOrientationPatient,
				     ds_join(img->orientation, 6).c_str()).good();
	ok &= shared->findOrCreateSequenceItem(DCM_PixelValueTransformationSequence, it, 0).good() &&
	      it->putAndInsertString(DCM_RescaleIntercept,
				     ds_join(&img->rescale_intercept, 1).c_str()).good() &&
	      it->putAndInsertString(DCM_RescaleSlope, ds_join(&img->rescale_slope, 1).c_str()).good() &&
	      it->putAndInsertString(DCM_RescaleType, "HU").good();
	ok &= shared->findOrCreateSequenceItem(DCM_FrameVOILUTSequence, it, 0).good() &&
	      it->putAndInsertString(DCM_WindowCenter, "40").good() &&
	      it->putAndInsertString(DCM_WindowWidth, "400").good();
	ok &= shared->findOrCreateSequenceItem(DCM_CTImageFrameTypeSequence, it, 0).good() &&
	      it->putAndInsertString(DCM_FrameType, "ORIGINAL\\PRIMARY\\VOLUME\\NONE").good() &&
	      it->putAndInsertString(DCM_PixelPresentation, "MONOCHROME").good() &&
	      it->putAndInsertString(DCM_VolumetricProperties, "VOLUME").good() &&
	      it->putAndInsertString(DCM_VolumeBasedCalculationTechnique, "NONE").good();
	ok &= shared->findOrCreateSequenceItem(DCM_CTAcquisitionDetailsSequence, it, 0).good() &&
	      it->putAndInsertString(DCM_GantryDetectorTilt,
				     ds_join(&img->gantry_tilt_deg, 1).c_str()).good() &&
	      it->putAndInsertString(DCM_DataCollectionDiameter, "500").good() &&
	      it->putAndInsertString(DCM_TableHeight, "150").good() &&
	      it->putAndInsertString(DCM_RotationDirection, "CW").good() &&
	      it->putAndInsertFloat64(DCM_RevolutionTime, 1.0).good() &&
	      it->putAndInsertFloat64(DCM_SingleCollimationWidth, 0.625).good() &&
	      it->putAndInsertFloat64(DCM_TotalCollimationWidth, 40.0).good();
	/* The acquisition macros Enhanced CT requires, with plausible values
	 * for a synthetic sequenced acquisition. */
	ok &= shared->findOrCreateSequenceItem(DCM_CTAcquisitionTypeSequence, it, 0).good() &&
	      it->putAndInsertString(DCM_AcquisitionType, "SEQUENCED").good() &&
	      it->putAndInsertString(DCM_ConstantVolumeFlag, "NO").good() &&
	      it->putAndInsertString(DCM_FluoroscopyFlag, "NO").good();
	/* Table speed and feed are only for spiral acquisitions: an empty item. */
	ok &= shared->findOrCreateSequenceItem(DCM_CTTableDynamicsSequence, it, 0).good();
	const double *mid = frames[count / 2].position;
	ok &= shared->findOrCreateSequenceItem(DCM_CTPositionSequence, it, 0).good() &&
	      it->putAndInsertFloat64(DCM_TablePosition, mid[2]).good() &&
	      it->putAndInsertFloat64Array(DCM_ReconstructionTargetCenterPatient, mid, 3).good() &&
	      it->putAndInsertFloat64Array(DCM_DataCollectionCenterPatient, mid, 3).good();
	ok &= shared->findOrCreateSequenceItem(DCM_CTGeometrySequence, it, 0).good() &&
	      it->putAndInsertFloat64(DCM_DistanceSourceToDataCollectionCenter, 541.0).good() &&
	      it->putAndInsertString(DCM_DistanceSourceToDetector, "949").good();
	ok &= shared->findOrCreateSequenceItem(DCM_CTReconstructionSequence, it, 0).good() &&
	      it->putAndInsertString(DCM_ReconstructionAlgorithm, "FILTER_BACK_PROJ").good() &&
	      it->putAndInsertString(DCM_ConvolutionKernel, "STANDARD").good() &&
	      it->putAndInsertString(DCM_ConvolutionKernelGroup, "SOFT_TISSUE").good() &&
	      it->putAndInsertString(DCM_ReconstructionDiameter, "500").good() &&
	      it->putAndInsertFloat64Array(DCM_ReconstructionPixelSpacing, img->pixel_spacing, 2)
		      .good() &&
	      it->putAndInsertFloat64(DCM_ReconstructionAngle, 360.0).good() &&
	      it->putAndInsertString(DCM_ImageFilter, "NONE").good();
	ok &= shared->findOrCreateSequenceItem(DCM_CTExposureSequence, it, 0).good() &&
	      it->putAndInsertFloat64(DCM_ExposureTimeInms, 1000.0).good() &&
	      it->putAndInsertFloat64(DCM_XRayTubeCurrentInmA, 200.0).good() &&
	      it->putAndInsertFloat64(DCM_ExposureInmAs, 200.0).good() &&
	      it->putAndInsertString(DCM_ExposureModulationType, "NONE").good();
	ok &= shared->findOrCreateSequenceItem(DCM_CTXRayDetailsSequence, it, 0).good() &&
	      it->putAndInsertString(DCM_KVP, "120").good() &&
	      it->putAndInsertString(DCM_FocalSpots, "0.7").good() &&
	      it->putAndInsertString(DCM_FilterType, "BODY").good() &&
	      it->putAndInsertString(DCM_FilterMaterial, "ALUMINUM").good();
	DcmItem *region = nullptr;
	ok &= shared->findOrCreateSequenceItem(DCM_FrameAnatomySequence, it, 0).good() &&
	      it->putAndInsertString(DCM_FrameLaterality, "U").good() &&
	      it->findOrCreateSequenceItem(DCM_AnatomicRegionSequence, region, 0).good() &&
	      region->putAndInsertString(DCM_CodeValue, "51185008").good() &&
	      region->putAndInsertString(DCM_CodingSchemeDesignator, "SCT").good() &&
	      region->putAndInsertString(DCM_CodeMeaning, "Chest").good();
	char event_uid[BRIDGE_UID_MAX + 1];
	bridge_uid_generate(event_uid);
	ok &= shared->findOrCreateSequenceItem(DCM_IrradiationEventIdentificationSequence, it, 0)
		      .good() &&
	      it->putAndInsertString(DCM_IrradiationEventUID, event_uid).good();
	for (size_t f = 0; ok && f < count; f++) {
		DcmItem *per = nullptr;
		char pos[32];
		snprintf(pos, sizeof(pos), "%zu", f + 1);
		ok &= ds->findOrCreateSequenceItem(DCM_PerFrameFunctionalGroupsSequence, per, -2).good();
		ok &= ok && per->findOrCreateSequenceItem(DCM_PlanePositionSequence, it, 0).good() &&
		      it->putAndInsertString(DCM_ImagePositionPatient,
					     ds_join(frames[f].position, 3).c_str()).good();
		ok &= ok && per->findOrCreateSequenceItem(DCM_FrameContentSequence, it, 0).good() &&
		      it->putAndInsertString(DCM_FrameAcquisitionDateTime, "20260101120000").good() &&
		      it->putAndInsertString(DCM_FrameReferenceDateTime, "20260101120000").good() &&
		      it->putAndInsertFloat64(DCM_FrameAcquisitionDuration, 1000.0).good() &&
		      it->putAndInsertString(DCM_StackID, "1").good() &&
		      it->putAndInsertUint32(DCM_InStackPositionNumber, static_cast<Uint32>(f + 1)).good() &&
		      it->putAndInsertUint32(DCM_DimensionIndexValues, static_cast<Uint32>(f + 1)).good();
	}
	if (!ok)
		return r3d_err_set(err, R3D_ENOMEM, "cannot fill the functional groups");
	return true;
}

bool ct_write(struct r3d_err *err, const char *path, const struct bridge_ct_image *frames,
	      size_t count, enum bridge_ts ts, bool enhanced)
{
	const ts_entry *te = ts_find(ts);
	DcmFileFormat ff;
	DcmDataset *ds = ff.getDataset();
	std::string tmp = std::string(path) + ".tmp";
	OFCondition cond;
	size_t npix = static_cast<size_t>(frames[0].rows) * frames[0].columns, total;

	if (te == nullptr)
		return r3d_err_set(err, R3D_EINVAL, "unknown transfer syntax %d", static_cast<int>(ts));
	if (count == 0 || count > WRITE_MAX_FRAMES || (!enhanced && count != 1))
		return r3d_err_set(err, R3D_EINVAL, "%zu frames outside 1..%d", count, WRITE_MAX_FRAMES);
	for (size_t f = 0; f < count; f++) {
		if (!ct_check(err, &frames[f]))
			return false;
		if (frames[f].rows != frames[0].rows || frames[f].columns != frames[0].columns)
			return r3d_err_set(err, R3D_EINVAL, "frames of different sizes");
	}
	if (!ct_fill(err, ds, &frames[0]))
		return false;
	if (enhanced) {
		/* Before the pixels: the encoders split the data by Number of Frames. */
		char num[32];
		snprintf(num, sizeof(num), "%zu", count);
		if (!put(ds, DCM_NumberOfFrames, num))
			return r3d_err_set(err, R3D_ENOMEM, "cannot set Number of Frames");
	}
	encoders_register();
	if (ts == BRIDGE_TS_J2K || ts == BRIDGE_TS_J2K_LOSSY) {
		if (!j2k_insert(err, ds, frames, count, ts == BRIDGE_TS_J2K_LOSSY, te->xfer))
			return false;
	} else {
		std::vector<Uint16> all;
		const Uint16 *px = frames[0].pixels;
		if (!size_mul(npix, count, &total) || total > UINT32_MAX / 2)
			return r3d_err_set(err, R3D_EINVAL, "pixel data over 4 GiB");
		if (count > 1) {
			all.resize(total);
			for (size_t f = 0; f < count; f++)
				memcpy(all.data() + f * npix, frames[f].pixels, npix * sizeof(Uint16));
			px = all.data();
		}
		cond = ds->putAndInsertUint16Array(DCM_PixelData, px, static_cast<unsigned long>(total));
		if (cond.bad())
			return r3d_err_set(err, R3D_ENOMEM, "cannot store pixels: %s", cond.text());
		if (ts == BRIDGE_TS_RLE || ts == BRIDGE_TS_JPEG_LL || ts == BRIDGE_TS_JPEGLS) {
			DJ_RPLossless jpeg_params(1, 0);          /* SV1, no point transform */
			DJLSRepresentationParameter jls_params(0, OFTrue);
			const DcmRepresentationParameter *rp = nullptr;
			if (ts == BRIDGE_TS_JPEG_LL)
				rp = &jpeg_params;
			else if (ts == BRIDGE_TS_JPEGLS)
				rp = &jls_params;
			cond = ds->chooseRepresentation(te->xfer, rp);
			if (cond.bad() || !ds->canWriteXfer(te->xfer))
				return r3d_err_set(err, R3D_EINVAL, "cannot encode as %s: %s", te->name,
						   cond.bad() ? cond.text() : "no encoder");
		}
	}
	if (enhanced && !enhanced_fill(err, ds, frames, count))
		return false;
	if (enhanced)
		delete ds->remove(DCM_DerivationDescription);  /* not in the Enhanced CT IOD */
	cond = ff.saveFile(tmp.c_str(), te->xfer, EET_ExplicitLength, EGL_recalcGL, EPD_noChange);
	if (cond.bad()) {
		int e = errno;
		unlink(tmp.c_str());
		return r3d_err_set(err, e == ENOSPC ? R3D_ENOSPC : R3D_EIO, "cannot write '%s': %s",
				   tmp.c_str(), cond.text());
	}
	if (rename(tmp.c_str(), path) != 0) {
		int e = errno;
		unlink(tmp.c_str());
		return r3d_err_set(err, R3D_EIO, "cannot rename to '%s': %s", path, strerror(e));
	}
	return true;
}

} // namespace

extern "C" bool bridge_ts_parse(struct r3d_err *err, const char *name, enum bridge_ts *out)
{
	for (const ts_entry &e : ts_table) {
		if (strcmp(e.name, name) == 0) {
			*out = e.ts;
			return true;
		}
	}
	return r3d_err_set(err, R3D_EINVAL, "unknown transfer syntax '%s' (implicit, explicit, big, "
			   "deflate, rle, jpegll, jpegls, j2k, j2k-lossy)", name);
}

extern "C" const char *bridge_ts_name(enum bridge_ts ts)
{
	const ts_entry *e = ts_find(ts);

	return e != nullptr ? e->name : "unknown";
}

extern "C" void bridge_uid_generate(char out[BRIDGE_UID_MAX + 1])
{
	char buf[100];

	dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
	size_t n = strnlen(buf, BRIDGE_UID_MAX);  /* DCMTK keeps UIDs within 64 */
	memcpy(out, buf, n);
	out[n] = '\0';
}

extern "C" bool bridge_ct_write(struct r3d_err *err, const char *path,
				const struct bridge_ct_image *img, enum bridge_ts ts)
{
	try {
		return ct_write(err, path, img, 1, ts, false);
	} catch (const std::bad_alloc &) {
		return r3d_err_set(err, R3D_ENOMEM, "out of memory writing '%s'", path);
	} catch (...) {
		return r3d_err_set(err, R3D_EIO, "unexpected failure writing '%s'", path);
	}
}

extern "C" bool bridge_ct_write_enhanced(struct r3d_err *err, const char *path,
					 const struct bridge_ct_image *frames, size_t count,
					 enum bridge_ts ts)
{
	try {
		return ct_write(err, path, frames, count, ts, true);
	} catch (const std::bad_alloc &) {
		return r3d_err_set(err, R3D_ENOMEM, "out of memory writing '%s'", path);
	} catch (...) {
		return r3d_err_set(err, R3D_EIO, "unexpected failure writing '%s'", path);
	}
}
