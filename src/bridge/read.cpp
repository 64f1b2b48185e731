/*
 * read.cpp: the bridge's series reader (see "Series for the pipeline" in
 * r3d/bridge.h). Scans a folder tree for DICOM files, groups them by series,
 * reads slice headers (classic and Enhanced CT functional groups) and decodes
 * frames into plain struct volume_slice records for the volume stage.
 * JPEG/JPEG-LS/RLE go through DCMTK's decoders (16-bit predictor-6 lossless
 * JPEG is also tried with DCMTK's workaround for the known encoder bug);
 * JPEG 2000 fragments are split into frames and decoded here with OpenJPEG.
 *
 * Threads: called by job worker threads and the offline command; one
 * bridge_series_load() may start up to `threads` - 1 helper threads that
 * each decode whole files into their own buffers (no shared mutable state)
 * and are joined before it returns. Files the pre-loader decoded before
 * (bridge_series_load_preloaded, preload.cpp) are taken on the calling
 * thread first; the helpers decode the others. The decoders are registered once under
 * std::call_once (bridge_init registering them first is harmless: DCMTK
 * ignores a second registration).
 */
#include "r3d/bridge.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmjpeg/djcparam.h>
#include <dcmtk/dcmjpeg/djdeclol.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>

#include <openjpeg.h>

extern "C" {
#include "r3d/err.h"
#include "r3d/volume.h"
}

#include "bridge_util.h"
#include "read_int.h"

#define READ_HEADER_BYTES 4096   /* elements longer than this are not loaded while scanning */
#define READ_MAX_FRAMES 4096     /* frames in one instance */
#define READ_MAX_DIM 8192        /* rows or columns */

struct bridge_scan {
	struct entry {
		bridge_series_info info;
		std::vector<std::string> paths;
	};
	std::vector<entry> series;
	size_t skipped = 0;
};

namespace {

std::once_flag decoders_once;

void decoders_register()
{
	std::call_once(decoders_once, [] {
		DJDecoderRegistration::registerCodecs();
		DJLSDecoderRegistration::registerCodecs();
		DcmRLEDecoderRegistration::registerCodecs();
	});
}

void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = src != nullptr ? strnlen(src, size - 1) : 0;

	if (n > 0)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

void get_str(DcmItem *it, const DcmTagKey &tag, char *dst, size_t size)
{
	const char *v = nullptr;

	if (it->findAndGetString(tag, v).bad())
		v = nullptr;
	copy_str(dst, size, v);
}

bool get_f64s(DcmItem *it, const DcmTagKey &tag, double *out, int n)
{
	for (int i = 0; i < n; i++) {
		Float64 v;
		if (it->findAndGetFloat64(tag, v, static_cast<unsigned long>(i)).bad() || !std::isfinite(v))
			return false;
		out[i] = v;
	}
	return true;
}

long get_long(DcmItem *it, const DcmTagKey &tag, long dflt)
{
	Sint32 v;

	if (it->findAndGetSint32(tag, v).good())
		return v;
	return dflt;
}

std::string base_name(const std::string &path)
{
	size_t slash = path.find_last_of('/');

	return slash == std::string::npos ? path : path.substr(slash + 1);
}

/* ---- scanning ------------------------------------------------------- */

/* A Part 10 file ("DICM" after the preamble) or a bare dataset starting with
 * a group 0x0002 or 0x0008 element in little endian; anything else (licences,
 * JSON, DICOMDIR-less junk) is skipped without asking DCMTK, which would log
 * parse errors for it. */
bool looks_dicom(const std::string &path)
{
	unsigned char buf[132];
	FILE *f = fopen(path.c_str(), "rb");
	size_t n;

	if (f == nullptr)
		return false;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n == sizeof(buf) && memcmp(buf + 128, "DICM", 4) == 0)
		return true;
	return n >= 8 && (buf[0] == 0x02 || buf[0] == 0x08) && buf[1] == 0x00;
}

bool scan_dir(struct r3d_err *err, const char *dir, bridge_scan &scan)
{
	namespace fs = std::filesystem;
	std::error_code ec;
	std::map<std::string, size_t> by_uid;
	size_t seen = 0;

	if (!fs::is_directory(dir, ec))
		return r3d_err_set(err, R3D_EINVAL, "'%s' is not a readable folder", dir);
	fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
	if (ec)
		return r3d_err_set(err, R3D_EIO, "cannot read folder '%s': %s", dir,
				   ec.message().c_str());
	std::vector<std::string> files;
	for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
		if (ec)
			return r3d_err_set(err, R3D_EIO, "cannot read under '%s': %s", dir,
					   ec.message().c_str());
		if (it.depth() >= BRIDGE_SCAN_MAX_DEPTH)
			it.disable_recursion_pending();
		if (!it->is_regular_file(ec))
			continue;
		if (++seen > BRIDGE_SCAN_MAX_FILES)
			return r3d_err_set(err, R3D_EINVAL, "more than %d files under '%s'",
					   BRIDGE_SCAN_MAX_FILES, dir);
		files.push_back(it->path().string());
	}
	std::sort(files.begin(), files.end());  /* stable order whatever the file system */
	for (const std::string &path : files) {
		struct r3d_err bomb;
		if (!looks_dicom(path) || !r3d_bridge_util::inflated_size_ok(&bomb, path.c_str(), path)) {
			scan.skipped++;
			continue;
		}
		DcmFileFormat ff;
		OFCondition cond = ff.loadFile(path.c_str(), EXS_Unknown, EGL_noChange,
					       READ_HEADER_BYTES, ERM_autoDetect);
		DcmDataset *ds = ff.getDataset();
		const char *series_uid = nullptr;
		Uint16 rows = 0;
		/* A file damaged after its header still belongs to its series:
		 * loading the series then fails and names it, rather than the
		 * volume silently missing a slice. */
		if (ds->findAndGetString(DCM_SeriesInstanceUID, series_uid).bad() ||
		    series_uid == nullptr)
			series_uid = "";
		if (cond.bad() && *series_uid == '\0') {
			scan.skipped++;
			continue;
		}
		/* Images whose Series Instance UID was emptied (de-identified test
		 * data) form one series with an empty UID; anything else without
		 * a UID is not an image of a series. */
		if ((*series_uid == '\0' && (ds->findAndGetUint16(DCM_Rows, rows).bad() || rows == 0)) ||
		    strlen(series_uid) > BRIDGE_UID_MAX) {
			scan.skipped++;
			continue;
		}
		auto found = by_uid.find(series_uid);
		size_t idx;
		if (found == by_uid.end()) {
			idx = scan.series.size();
			by_uid[series_uid] = idx;
			scan.series.emplace_back();
			bridge_series_info &in = scan.series.back().info;
			memset(&in, 0, sizeof(in));
			copy_str(in.series_uid, sizeof(in.series_uid), series_uid);
			get_str(ds, DCM_StudyInstanceUID, in.study_uid, sizeof(in.study_uid));
			get_str(ds, DCM_FrameOfReferenceUID, in.frame_of_reference_uid,
				sizeof(in.frame_of_reference_uid));
			get_str(ds, DCM_SOPClassUID, in.sop_class_uid, sizeof(in.sop_class_uid));
			get_str(ds, DCM_Modality, in.modality, sizeof(in.modality));
			get_str(ds, DCM_SeriesDescription, in.series_description,
				sizeof(in.series_description));
			in.series_number = get_long(ds, DCM_SeriesNumber, -1);
		} else {
			idx = found->second;
		}
		bridge_scan::entry &e = scan.series[idx];
		long frames = get_long(ds, DCM_NumberOfFrames, 1);
		e.paths.push_back(path);
		e.info.instances++;
		e.info.frames += frames > 0 ? static_cast<size_t>(frames) : 1;
	}
	std::stable_sort(scan.series.begin(), scan.series.end(),
			 [](const bridge_scan::entry &a, const bridge_scan::entry &b) {
				 return a.info.frames > b.info.frames;
			 });
	return true;
}

/* ---- JPEG 2000 through OpenJPEG ------------------------------------- */

struct mem_src {
	const Uint8 *data;
	size_t size;
	size_t off;
};

OPJ_SIZE_T mem_read(void *buf, OPJ_SIZE_T n, void *user)
{
	auto *m = static_cast<mem_src *>(user);

	if (m->off >= m->size)
		return static_cast<OPJ_SIZE_T>(-1);
	size_t k = std::min(static_cast<size_t>(n), m->size - m->off);
	memcpy(buf, m->data + m->off, k);
	m->off += k;
	return k;
}

OPJ_OFF_T mem_skip(OPJ_OFF_T n, void *user)
{
	auto *m = static_cast<mem_src *>(user);
	OPJ_OFF_T to = static_cast<OPJ_OFF_T>(m->off) + n;

	if (to < 0)
		return -1;
	if (static_cast<size_t>(to) > m->size)
		to = static_cast<OPJ_OFF_T>(m->size);
	OPJ_OFF_T done = to - static_cast<OPJ_OFF_T>(m->off);
	m->off = static_cast<size_t>(to);
	return done;
}

OPJ_BOOL mem_seek(OPJ_OFF_T pos, void *user)
{
	auto *m = static_cast<mem_src *>(user);

	if (pos < 0 || static_cast<size_t>(pos) > m->size)
		return OPJ_FALSE;
	m->off = static_cast<size_t>(pos);
	return OPJ_TRUE;
}

void opj_message(const char *msg, void *user)
{
	auto *s = static_cast<std::string *>(user);

	if (s->empty()) {
		*s = msg;
		while (!s->empty() && (s->back() == '\n' || s->back() == '\r'))
			s->pop_back();
	}
}

void opj_quiet(const char *, void *)
{
}

struct header {
	uint32_t rows = 0, columns = 0;
	unsigned bits_allocated = 0, bits_stored = 0, samples = 1;
	bool is_signed = false;
	long frames = 1;
};

/* Stored value in 16 bits from a decoded value: masked to bits_stored,
 * sign-extended when the pixels are signed. */
uint16_t stored_norm(long v, const header &h)
{
	unsigned bits = h.bits_stored;
	unsigned long mask = bits >= 16 ? 0xffffUL : ((1UL << bits) - 1);
	unsigned long u = static_cast<unsigned long>(v) & mask;

	if (h.is_signed && bits < 16 && (u & (1UL << (bits - 1))))
		u |= ~mask & 0xffffUL;
	return static_cast<uint16_t>(u);
}

bool j2k_decode_frame(struct r3d_err *err, const std::string &label, long frame,
		      const Uint8 *data, size_t size, const header &h, uint16_t *dst,
		      bool *signed_out)
{
	static const Uint8 jp2_sig[12] = {0, 0, 0, 12, 'j', 'P', ' ', ' ', 13, 10, 0x87, 10};
	mem_src src = {data, size, 0};
	opj_dparameters_t params;
	opj_codec_t *codec = nullptr;
	opj_stream_t *stream = nullptr;
	opj_image_t *image = nullptr;
	std::string msg;
	bool ok = false;
	bool jp2 = size >= sizeof(jp2_sig) && memcmp(data, jp2_sig, sizeof(jp2_sig)) == 0;
	size_t npix = static_cast<size_t>(h.rows) * h.columns;

	if (!jp2 && (size < 4 || data[0] != 0xff || data[1] != 0x4f)) {
		r3d_err_set(err, R3D_EINVAL, "%s frame %ld: not a JPEG 2000 codestream", label.c_str(),
			    frame + 1);
		goto out;
	}
	codec = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
	if (codec == nullptr) {
		r3d_err_set(err, R3D_ENOMEM, "OpenJPEG cannot create a decoder");
		goto out;
	}
	opj_set_error_handler(codec, opj_message, &msg);
	opj_set_warning_handler(codec, opj_quiet, nullptr);
	opj_set_info_handler(codec, opj_quiet, nullptr);
	opj_set_default_decoder_parameters(&params);
	stream = opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE);
	if (stream == nullptr || !opj_setup_decoder(codec, &params)) {
		r3d_err_set(err, R3D_ENOMEM, "OpenJPEG cannot set up a decoder");
		goto out;
	}
	opj_stream_set_user_data(stream, &src, nullptr);
	opj_stream_set_user_data_length(stream, size);
	opj_stream_set_read_function(stream, mem_read);
	opj_stream_set_skip_function(stream, mem_skip);
	opj_stream_set_seek_function(stream, mem_seek);
	if (!opj_read_header(stream, codec, &image) || !opj_decode(codec, stream, image) ||
	    !opj_end_decompress(codec, stream)) {
		r3d_err_set(err, R3D_EINVAL, "%s frame %ld: JPEG 2000 decoding failed: %s",
			    label.c_str(), frame + 1, msg.empty() ? "no reason given" : msg.c_str());
		goto out;
	}
	if (image->numcomps != 1 || image->comps[0].w != h.columns || image->comps[0].h != h.rows ||
	    image->comps[0].data == nullptr) {
		r3d_err_set(err, R3D_EINVAL, "%s frame %ld: JPEG 2000 image is %u component(s) of "
			    "%ux%u, the header says 1 of %ux%u", label.c_str(), frame + 1,
			    image->numcomps, image->numcomps ? image->comps[0].w : 0,
			    image->numcomps ? image->comps[0].h : 0, h.columns, h.rows);
		goto out;
	}
	{
		const opj_image_comp_t &c = image->comps[0];
		unsigned prec = c.prec > 0 && c.prec <= 31 ? c.prec : 16;
		/* Some vendors' codestream signedness (SIZ) disagrees with Pixel
		 * Representation. Negative decoded values can only mean signed
		 * pixels, so a signed codestream makes the frame signed; an unsigned
		 * codestream under Pixel Representation 1 is reinterpreted as two's
		 * complement of its precision. */
		if (c.sgnd)
			*signed_out = true;
		header hs = h;
		hs.is_signed = h.is_signed || c.sgnd;
		for (size_t i = 0; i < npix; i++) {
			long v = c.data[i];
			if (!c.sgnd && hs.is_signed && prec < 31 && v >= (1L << (prec - 1)))
				v -= 1L << prec;
			dst[i] = stored_norm(v, hs);
		}
	}
	ok = true;
out:
	if (image != nullptr)
		opj_image_destroy(image);
	if (stream != nullptr)
		opj_stream_destroy(stream);
	if (codec != nullptr)
		opj_destroy_codec(codec);
	return ok;
}

bool is_j2k(E_TransferSyntax x)
{
	return x == EXS_JPEG2000LosslessOnly || x == EXS_JPEG2000 ||
	       x == EXS_JPEG2000MulticomponentLosslessOnly || x == EXS_JPEG2000Multicomponent;
}

/* Splits the encapsulated fragments into frames and decodes each. */
bool j2k_decode(struct r3d_err *err, DcmDataset *ds, E_TransferSyntax xfer, const std::string &label,
		header &h, std::vector<uint16_t> &out)
{
	DcmElement *el = nullptr;
	DcmPixelSequence *seq = nullptr;
	size_t npix = static_cast<size_t>(h.rows) * h.columns;

	if (ds->findAndGetElement(DCM_PixelData, el).bad() || el == nullptr)
		return r3d_err_set(err, R3D_EINVAL, "%s: no Pixel Data", label.c_str());
	DcmPixelData *pd = OFstatic_cast(DcmPixelData *, el);
	if (pd->getEncapsulatedRepresentation(xfer, nullptr, seq).bad() || seq == nullptr)
		return r3d_err_set(err, R3D_EINVAL, "%s: JPEG 2000 Pixel Data is not encapsulated",
				   label.c_str());
	unsigned long nitems = seq->card();
	if (nitems < 2)
		return r3d_err_set(err, R3D_EINVAL, "%s: JPEG 2000 Pixel Data has no fragments",
				   label.c_str());
	struct frag {
		const Uint8 *data;
		size_t size;
	};
	std::vector<frag> frags;
	for (unsigned long i = 1; i < nitems; i++) {
		DcmPixelItem *item = nullptr;
		Uint8 *data = nullptr;
		if (seq->getItem(item, i).bad() || item == nullptr)
			return r3d_err_set(err, R3D_EINVAL, "%s: unreadable fragment %lu", label.c_str(), i);
		if (item->getLength() > 0 && (item->getUint8Array(data).bad() || data == nullptr))
			return r3d_err_set(err, R3D_EINVAL, "%s: unreadable fragment %lu", label.c_str(), i);
		frags.push_back({data, item->getLength()});
	}
	/* Frame boundaries: one fragment per frame, or codestreams starting with SOC. */
	std::vector<std::vector<Uint8>> frames;
	if (h.frames == 1 || frags.size() == static_cast<size_t>(h.frames)) {
		size_t per = h.frames == 1 ? frags.size() : 1;
		for (size_t i = 0; i < frags.size(); i += per) {
			frames.emplace_back();
			for (size_t k = i; k < i + per; k++)
				frames.back().insert(frames.back().end(), frags[k].data,
						     frags[k].data + frags[k].size);
		}
	} else {
		for (const frag &f : frags) {
			bool start = f.size >= 2 && f.data[0] == 0xff && f.data[1] == 0x4f;
			if (start || frames.empty())
				frames.emplace_back();
			frames.back().insert(frames.back().end(), f.data, f.data + f.size);
		}
	}
	if (frames.size() != static_cast<size_t>(h.frames))
		return r3d_err_set(err, R3D_EINVAL, "%s: %zu JPEG 2000 codestreams for %ld frames",
				   label.c_str(), frames.size(), h.frames);
	out.assign(npix * frames.size(), 0);
	bool any_signed = false;
	for (size_t f = 0; f < frames.size(); f++)
		if (!j2k_decode_frame(err, label, static_cast<long>(f), frames[f].data(),
				      frames[f].size(), h, out.data() + f * npix, &any_signed))
			return false;
	if (any_signed)
		h.is_signed = true;
	return true;
}

/* ---- one file -------------------------------------------------------- */

bool header_read(struct r3d_err *err, DcmDataset *ds, const std::string &label, header &h)
{
	Uint16 rows = 0, cols = 0, ba = 0, bs = 0, pr = 0, spp = 1;

	if (ds->findAndGetUint16(DCM_Rows, rows).bad() || ds->findAndGetUint16(DCM_Columns, cols).bad() ||
	    rows == 0 || cols == 0 || rows > READ_MAX_DIM || cols > READ_MAX_DIM)
		return r3d_err_set(err, R3D_EINVAL, "%s: missing or invalid Rows/Columns", label.c_str());
	if (ds->findAndGetUint16(DCM_BitsAllocated, ba).bad() || (ba != 8 && ba != 16))
		return r3d_err_set(err, R3D_EINVAL, "%s: Bits Allocated %u is not supported (8 or 16)",
				   label.c_str(), ba);
	if (ds->findAndGetUint16(DCM_BitsStored, bs).bad() || bs == 0 || bs > ba)
		bs = ba;
	ds->findAndGetUint16(DCM_PixelRepresentation, pr);
	ds->findAndGetUint16(DCM_SamplesPerPixel, spp);
	if (spp != 1)
		return r3d_err_set(err, R3D_EINVAL, "%s: %u samples per pixel; only greyscale is "
				   "supported", label.c_str(), spp);
	h.rows = rows;
	h.columns = cols;
	h.bits_allocated = ba;
	h.bits_stored = bs;
	h.is_signed = pr == 1;
	h.frames = get_long(ds, DCM_NumberOfFrames, 1);
	if (h.frames < 1 || h.frames > READ_MAX_FRAMES)
		return r3d_err_set(err, R3D_EINVAL, "%s: Number of Frames %ld outside 1..%d",
				   label.c_str(), h.frames, READ_MAX_FRAMES);
	return true;
}

/* Precision (SOF3) and predictor (SOS Ss) of a lossless JPEG stream; false
 * when the markers cannot be found. */
bool jpeg_lossless_params(const Uint8 *d, size_t n, unsigned *precision, unsigned *predictor)
{
	bool have_sof = false;
	size_t i = 2;

	if (n < 4 || d[0] != 0xff || d[1] != 0xd8)
		return false;
	while (i + 4 <= n) {
		if (d[i] != 0xff)
			return false;
		unsigned marker = d[i + 1];
		size_t len = (static_cast<size_t>(d[i + 2]) << 8) | d[i + 3];
		if (marker == 0xff) {  /* fill byte */
			i++;
			continue;
		}
		if (len < 2 || i + 2 + len > n)
			return false;
		if (marker == 0xc3 && len >= 3) {
			*precision = d[i + 4];
			have_sof = true;
		} else if (marker == 0xda && len >= 3) {
			size_t ns = d[i + 4];
			if (len < 3 + 2 * ns + 1)
				return false;
			*predictor = d[i + 5 + 2 * ns];
			return have_sof;
		}
		i += 2 + len;
	}
	return false;
}

/* 16-bit lossless JPEG with predictor 6 written by encoders with the known
 * overflow bug decodes to noise unless DCMTK's workaround is on; that
 * workaround is per codec parameter, so such files are decoded here with a
 * private lossless decoder instead of the registered one. Returns 1 when it
 * decoded, 0 when the file is not of that kind, -1 on error. */
int jpeg_p6_decode(struct r3d_err *err, DcmDataset *ds, const std::string &label, const header &h,
		   std::vector<uint16_t> &out)
{
	DcmElement *el = nullptr;
	DcmPixelSequence *seq = nullptr;
	DcmPixelItem *item = nullptr;
	Uint8 *data = nullptr;
	unsigned precision = 0, predictor = 0;
	size_t npix = static_cast<size_t>(h.rows) * h.columns;

	if (h.bits_allocated != 16 || ds->getOriginalXfer() != EXS_JPEGProcess14)
		return 0;
	if (ds->findAndGetElement(DCM_PixelData, el).bad() || el == nullptr)
		return 0;
	DcmPixelData *pd = OFstatic_cast(DcmPixelData *, el);
	if (pd->getEncapsulatedRepresentation(EXS_JPEGProcess14, nullptr, seq).bad() ||
	    seq == nullptr || seq->card() < 2 || seq->getItem(item, 1).bad() || item == nullptr ||
	    item->getUint8Array(data).bad() || data == nullptr)
		return 0;
	if (!jpeg_lossless_params(data, item->getLength(), &precision, &predictor) ||
	    precision != 16 || predictor != 6)
		return 0;
	DJCodecParameter cp(ECC_lossyYCbCr, EDC_photometricInterpretation, EUC_default, EPC_default,
			    OFTrue /* predictor 6 workaround */);
	DJDecoderLossless codec;
	std::vector<Uint16> buf(npix);
	Uint32 start = 0;
	out.assign(npix * static_cast<size_t>(h.frames), 0);
	for (long f = 0; f < h.frames; f++) {
		OFString model;
		OFCondition cond = codec.decodeFrame(nullptr, seq, &cp, ds, static_cast<Uint32>(f), start,
						     buf.data(), static_cast<Uint32>(npix * 2), model);
		if (cond.bad()) {
			r3d_err_set(err, R3D_EINVAL, "%s frame %ld: cannot decode lossless JPEG: %s",
				    label.c_str(), f + 1, cond.text());
			return -1;
		}
		for (size_t i = 0; i < npix; i++)
			out[static_cast<size_t>(f) * npix + i] = stored_norm(static_cast<long>(buf[i]), h);
	}
	return 1;
}

/* Sum of absolute differences between horizontal neighbours. */
double total_variation(const std::vector<uint16_t> &px, const header &h)
{
	double tv = 0;

	for (size_t i = 1; i < px.size(); i++) {
		double a = h.is_signed ? static_cast<Sint16>(px[i - 1]) : px[i - 1];
		double b = h.is_signed ? static_cast<Sint16>(px[i]) : px[i];
		tv += std::fabs(b - a);
	}
	return tv;
}

bool native_decode_registered(struct r3d_err *err, DcmDataset *ds, const std::string &label,
			      const header &h, std::vector<uint16_t> &out);

bool native_decode(struct r3d_err *err, DcmDataset *ds, const std::string &label, const header &h,
		   std::vector<uint16_t> &out)
{
	std::vector<uint16_t> p6_pixels;
	struct r3d_err p6_err = {0, {0}};
	bool p6 = jpeg_p6_decode(&p6_err, ds, label, h, p6_pixels) > 0;

	if (!native_decode_registered(err, ds, label, h, out)) {
		if (!p6)
			return false;
		out.swap(p6_pixels);
		return true;
	}
	/* Predictor 6 at 16 bits is written correctly by some encoders and with
	 * the overflow bug by others; the wrong reading is wrapped noise, so keep
	 * the smoother of the two decodings. */
	if (p6 && total_variation(p6_pixels, h) < total_variation(out, h))
		out.swap(p6_pixels);
	return true;
}

bool native_decode_registered(struct r3d_err *err, DcmDataset *ds, const std::string &label,
			      const header &h, std::vector<uint16_t> &out)
{

	size_t npix = static_cast<size_t>(h.rows) * h.columns * static_cast<size_t>(h.frames);
	E_TransferSyntax xfer = ds->getOriginalXfer();
	DcmXfer xf(xfer);
	OFCondition cond = ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);

	if (cond.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit))
		return r3d_err_set(err, R3D_EINVAL, "%s: cannot decode %s: %s", label.c_str(),
				   xf.getXferName(), cond.bad() ? cond.text() : "no decoder");
	out.assign(npix, 0);
	if (h.bits_allocated == 16) {
		const Uint16 *p = nullptr;
		unsigned long n = 0;
		if (ds->findAndGetUint16Array(DCM_PixelData, p, &n).bad() || p == nullptr)
			return r3d_err_set(err, R3D_EINVAL, "%s: no readable Pixel Data", label.c_str());
		if (n < npix)
			return r3d_err_set(err, R3D_EINVAL, "%s: Pixel Data has %lu values, %zu expected",
					   label.c_str(), n, npix);
		for (size_t i = 0; i < npix; i++)
			out[i] = stored_norm(static_cast<long>(p[i]), h);
	} else {
		const Uint8 *p = nullptr;
		DcmElement *el = nullptr;
		if (ds->findAndGetElement(DCM_PixelData, el).bad() || el == nullptr ||
		    el->getUint8Array(OFconst_cast(Uint8 *&, p)).bad() || p == nullptr)
			return r3d_err_set(err, R3D_EINVAL, "%s: no readable Pixel Data", label.c_str());
		if (el->getLength() < npix)
			return r3d_err_set(err, R3D_EINVAL, "%s: Pixel Data has %lu bytes, %zu expected",
					   label.c_str(), static_cast<unsigned long>(el->getLength()), npix);
		for (size_t i = 0; i < npix; i++)
			out[i] = stored_norm(static_cast<long>(p[i]), h);
	}
	return true;
}

/* Geometry and rescale of frame f: per-frame group, then shared group, then
 * the top-level (classic) attributes. */
bool frame_geometry(struct r3d_err *err, DcmDataset *ds, long f, const std::string &label,
		    volume_slice &s)
{
	DcmItem *shared = nullptr, *per = nullptr;

	if (ds->findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0).bad())
		shared = nullptr;
	if (ds->findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, per,
				       static_cast<signed long>(f)).bad())
		per = nullptr;
	auto lookup = [&](const DcmTagKey &group, const DcmTagKey &tag, double *out, int n) {
		DcmItem *levels[2] = {per, shared};
		for (DcmItem *g : levels) {
			DcmItem *sub = nullptr;
			if (g != nullptr && g->findAndGetSequenceItem(group, sub, 0).good() &&
			    sub != nullptr && get_f64s(sub, tag, out, n))
				return true;
		}
		return get_f64s(ds, tag, out, n);
	};
	if (!lookup(DCM_PlanePositionSequence, DCM_ImagePositionPatient, s.position, 3))
		return r3d_err_set(err, R3D_EINVAL, "%s frame %ld: no Image Position (Patient)",
				   label.c_str(), f + 1);
	if (!lookup(DCM_PlaneOrientationSequence, DCM_ImageOrientationPatient, s.orientation, 6))
		return r3d_err_set(err, R3D_EINVAL, "%s frame %ld: no Image Orientation (Patient)",
				   label.c_str(), f + 1);
	if (!lookup(DCM_PixelMeasuresSequence, DCM_PixelSpacing, s.pixel_spacing, 2))
		return r3d_err_set(err, R3D_EINVAL, "%s frame %ld: no Pixel Spacing", label.c_str(),
				   f + 1);
	if (!lookup(DCM_PixelValueTransformationSequence, DCM_RescaleSlope, &s.rescale_slope, 1))
		s.rescale_slope = 1.0;
	if (!lookup(DCM_PixelValueTransformationSequence, DCM_RescaleIntercept,
		    &s.rescale_intercept, 1))
		s.rescale_intercept = 0.0;
	return true;
}

bool file_load(struct r3d_err *err, const std::string &path, bridge_series &out)
{
	DcmFileFormat ff;
	std::string label = base_name(path);
	if (!r3d_bridge_util::inflated_size_ok(err, path.c_str(), label))
		return false;
	OFCondition cond = ff.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength,
				       ERM_autoDetect);
	DcmDataset *ds = ff.getDataset();
	header h;
	std::vector<uint16_t> pixels;
	char sop[BRIDGE_UID_MAX + 1];

	if (cond.bad())
		return r3d_err_set(err, R3D_EINVAL, "%s: not a readable DICOM file: %s", label.c_str(),
				   cond.text());
	if (!header_read(err, ds, label, h))
		return false;
	E_TransferSyntax xfer = ds->getOriginalXfer();
	DcmXfer xf(xfer);
	if (is_j2k(xfer)) {
		if (!j2k_decode(err, ds, xfer, label, h, pixels))
			return false;
	} else if (!native_decode(err, ds, label, h, pixels)) {
		return false;
	}
	std::vector<volume_slice> slices;
	for (long f = 0; f < h.frames; f++) {
		volume_slice s;
		memset(&s, 0, sizeof(s));
		s.rows = h.rows;
		s.columns = h.columns;
		s.pixel = h.is_signed ? VOLUME_PIXEL_S16 : VOLUME_PIXEL_U16;
		s.instance_number = get_long(ds, DCM_InstanceNumber, 0);
		s.frame = static_cast<uint32_t>(f);
		if (!frame_geometry(err, ds, f, label, s))
			return false;
		slices.push_back(s);
	}
	get_str(ds, DCM_SOPInstanceUID, sop, sizeof(sop));
	out.labels.push_back(label);
	out.sop_uids.push_back(sop);
	get_str(ds, DCM_SOPClassUID, sop, sizeof(sop));
	out.sop_classes.push_back(sop);
	out.xfers.push_back(xf.getXferID());
	out.pixels.push_back(std::move(pixels));
	for (volume_slice &s : slices) {
		out.slices.push_back(s);
		out.slice_file.push_back(out.pixels.size() - 1);
	}
	return true;
}

/* Points every slice at its pixels and label once all files are in. */
void series_link(bridge_series &s)
{
	for (size_t i = 0; i < s.slices.size(); i++) {
		size_t f = s.slice_file[i];
		size_t plane = static_cast<size_t>(s.slices[i].rows) * s.slices[i].columns;
		s.slices[i].pixels = s.pixels[f].data() + plane * s.slices[i].frame;
		s.slices[i].label = s.labels[f].c_str();
	}
}

} // namespace

bool r3d_read::file_decode(struct r3d_err *err, const std::string &path, bridge_series &out)
{
	decoders_register();
	return file_load(err, path, out);
}

extern "C" bool bridge_scan_dir(struct r3d_err *err, const char *dir, struct bridge_scan **out)
{
	*out = nullptr;
	try {
		std::unique_ptr<bridge_scan> scan(new bridge_scan);
		if (!scan_dir(err, dir, *scan))
			return false;
		*out = scan.release();
		return true;
	} catch (const std::bad_alloc &) {
		return r3d_err_set(err, R3D_ENOMEM, "out of memory scanning '%s'", dir);
	} catch (const std::exception &e) {
		return r3d_err_set(err, R3D_EIO, "cannot scan '%s': %s", dir, e.what());
	} catch (...) {
		return r3d_err_set(err, R3D_EIO, "cannot scan '%s'", dir);
	}
}

extern "C" size_t bridge_scan_count(const struct bridge_scan *scan)
{
	return scan->series.size();
}

extern "C" const struct bridge_series_info *bridge_scan_series(const struct bridge_scan *scan,
							       size_t i)
{
	return i < scan->series.size() ? &scan->series[i].info : nullptr;
}

extern "C" size_t bridge_scan_skipped(const struct bridge_scan *scan)
{
	return scan->skipped;
}

extern "C" void bridge_scan_free(struct bridge_scan *scan)
{
	delete scan;
}

namespace {

/* Appends part (one file's frames) to s. */
void series_append(bridge_series &s, bridge_series &part)
{
	size_t base = s.pixels.size();

	for (size_t i = 0; i < part.labels.size(); i++) {
		s.labels.push_back(std::move(part.labels[i]));
		s.sop_uids.push_back(std::move(part.sop_uids[i]));
		s.sop_classes.push_back(std::move(part.sop_classes[i]));
		s.xfers.push_back(std::move(part.xfers[i]));
		s.pixels.push_back(std::move(part.pixels[i]));
	}
	for (size_t i = 0; i < part.slices.size(); i++) {
		s.slices.push_back(part.slices[i]);
		s.slice_file.push_back(base + part.slice_file[i]);
	}
}

/* Reads the files with up to `threads` threads (files are independent
 * datasets; DCMTK's codecs and OpenJPEG keep no shared mutable state per
 * decode). The first failing file in path order is reported. */
bool series_read(struct r3d_err *err, const std::vector<std::string> &paths, unsigned threads,
		 struct bridge_preload_set *set, bridge_series &out, size_t *from_set)
{
	size_t n = paths.size();
	std::vector<bridge_series> parts(n);
	std::vector<r3d_err> errs(n);
	std::vector<char> done(n, 0);
	std::atomic<size_t> next(0);
	std::atomic<bool> failed(false);

	/* The pre-loaded files first (one thread: the set is not shared). */
	*from_set = 0;
	for (size_t i = 0; set != nullptr && i < n; i++) {
		if (r3d_read::preload_set_take_file(set, paths[i], parts[i])) {
			done[i] = 1;
			(*from_set)++;
		}
	}
	auto work = [&]() {
		for (;;) {
			size_t i = next.fetch_add(1);
			if (i >= n || failed.load())
				return;
			if (done[i] != 0)
				continue;   /* pre-loaded */
			memset(&errs[i], 0, sizeof(errs[i]));
			bool ok;
			try {
				ok = file_load(&errs[i], paths[i], parts[i]);
			} catch (const std::bad_alloc &) {
				ok = r3d_err_set(&errs[i], R3D_ENOMEM, "out of memory reading %s",
						 base_name(paths[i]).c_str());
			} catch (...) {
				ok = r3d_err_set(&errs[i], R3D_EIO, "unexpected failure reading %s",
						 base_name(paths[i]).c_str());
			}
			done[i] = ok ? 1 : 2;
			if (!ok)
				failed.store(true);
		}
	};
	std::vector<std::thread> pool;
	if (threads > BRIDGE_READ_MAX_THREADS)
		threads = BRIDGE_READ_MAX_THREADS;
	for (unsigned t = 1; t < threads && t < n - *from_set; t++)
		pool.emplace_back(work);
	work();
	for (std::thread &t : pool)
		t.join();
	for (size_t i = 0; i < n; i++) {
		if (done[i] == 2) {
			*err = errs[i];
			return false;
		}
		if (done[i] == 0)
			break;  /* not reached: a later failure stopped the workers */
	}
	for (size_t i = 0; i < n; i++) {
		if (done[i] != 1)
			return r3d_err_set(err, R3D_EIO, "reading stopped before %s",
					   base_name(paths[i]).c_str());
		series_append(out, parts[i]);
	}
	return true;
}

} // namespace

extern "C" bool bridge_series_load(struct r3d_err *err, const struct bridge_scan *scan, size_t i,
				   unsigned threads, struct bridge_series **out)
{
	size_t from_set = 0;

	return bridge_series_load_preloaded(err, scan, i, threads, nullptr, out, &from_set);
}

extern "C" bool bridge_series_load_preloaded(struct r3d_err *err, const struct bridge_scan *scan,
					     size_t i, unsigned threads,
					     struct bridge_preload_set *set,
					     struct bridge_series **out, size_t *from_set)
{
	*out = nullptr;
	*from_set = 0;
	if (i >= scan->series.size())
		return r3d_err_set(err, R3D_EINVAL, "no series %zu in the scan", i);
	try {
		decoders_register();
		std::unique_ptr<bridge_series> s(new bridge_series);
		if (!series_read(err, scan->series[i].paths, threads, set, *s, from_set))
			return false;
		series_link(*s);
		*out = s.release();
		return true;
	} catch (const std::bad_alloc &) {
		return r3d_err_set(err, R3D_ENOMEM, "out of memory reading series %s",
				   scan->series[i].info.series_uid);
	} catch (...) {
		return r3d_err_set(err, R3D_EIO, "unexpected failure reading series %s",
				   scan->series[i].info.series_uid);
	}
}

extern "C" bool bridge_file_load(struct r3d_err *err, const char *path, struct bridge_series **out)
{
	*out = nullptr;
	try {
		decoders_register();
		std::unique_ptr<bridge_series> s(new bridge_series);
		if (!file_load(err, path, *s))
			return false;
		series_link(*s);
		*out = s.release();
		return true;
	} catch (const std::bad_alloc &) {
		return r3d_err_set(err, R3D_ENOMEM, "out of memory reading '%s'", path);
	} catch (...) {
		return r3d_err_set(err, R3D_EIO, "unexpected failure reading '%s'", path);
	}
}

extern "C" const struct volume_slice *bridge_series_slices(const struct bridge_series *s,
							   size_t *count)
{
	*count = s->slices.size();
	return s->slices.data();
}

extern "C" const char *bridge_series_sop_uid(const struct bridge_series *s, size_t i)
{
	return i < s->slices.size() ? s->sop_uids[s->slice_file[i]].c_str() : "";
}

extern "C" const char *bridge_series_sop_class(const struct bridge_series *s, size_t i)
{
	return i < s->slices.size() ? s->sop_classes[s->slice_file[i]].c_str() : "";
}

extern "C" const char *bridge_series_transfer_syntax(const struct bridge_series *s, size_t i)
{
	return i < s->slices.size() ? s->xfers[s->slice_file[i]].c_str() : "";
}

extern "C" void bridge_series_free(struct bridge_series *s)
{
	delete s;
}
