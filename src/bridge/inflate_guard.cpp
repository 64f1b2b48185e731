/*
 * inflate_guard.cpp: refuses a Deflated Explicit VR Little Endian file that
 * inflates to far more than it could plausibly hold, before DCMTK parses it.
 *
 * Why: DCMTK 3.6.7 cannot leave a value of a deflated dataset on disk for
 * later (the inflating stream makes no factory), so it reads every value at
 * once, at the length the element claims: a 0.5 MB file holding a 512 MB
 * run of zeros costs 512 MB of memory in whichever thread parses it (found
 * by fuzzing the dataset reader; docs/security.md, "Fuzzing"). One pass of
 * zlib over the file, into a small scratch buffer, says how big the dataset
 * really is. Any thread.
 */
#include "bridge_util.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <zlib.h>

namespace r3d_bridge_util {

namespace {

#define INFLATE_CHUNK 65536
#define META_MAX_BYTES (64 * 1024)   /* a File Meta Information group longer than this is not looked at */
#define UID_DEFLATED "1.2.840.10008.1.2.1.99"

/* The Transfer Syntax UID of the File Meta Information at buf (after the
 * preamble and "DICM"), and the offset where the dataset starts. False when
 * there is none to be found. */
bool meta_xfer(const unsigned char *buf, size_t n, std::string &uid, size_t &data_off)
{
	size_t off = 132;
	bool found = false;

	while (off + 8 <= n) {
		unsigned group = buf[off] | buf[off + 1] << 8;
		unsigned elem = buf[off + 2] | buf[off + 3] << 8;
		if (group != 0x0002)
			break;
		char vr[3] = {(char)buf[off + 4], (char)buf[off + 5], 0};
		size_t len, head;
		if (!strcmp(vr, "OB") || !strcmp(vr, "OW") || !strcmp(vr, "SQ") || !strcmp(vr, "UN") ||
		    !strcmp(vr, "UT") || !strcmp(vr, "UC") || !strcmp(vr, "UR") || !strcmp(vr, "OF") ||
		    !strcmp(vr, "OD") || !strcmp(vr, "OL") || !strcmp(vr, "OV")) {
			if (off + 12 > n)
				return false;
			len = (size_t)buf[off + 8] | (size_t)buf[off + 9] << 8 |
			      (size_t)buf[off + 10] << 16 | (size_t)buf[off + 11] << 24;
			head = 12;
		} else {
			len = (size_t)(buf[off + 6] | buf[off + 7] << 8);
			head = 8;
		}
		if (len > n || off + head + len > n)
			return false;
		if (elem == 0x0010) {
			uid.assign(reinterpret_cast<const char *>(buf + off + head), len);
			while (!uid.empty() && (uid.back() == '\0' || uid.back() == ' '))
				uid.pop_back();
			found = true;
		}
		off += head + len;
	}
	data_off = off;
	return found;
}

}  // namespace

bool inflated_size_ok(struct r3d_err *err, const char *path, const std::string &label)
{
	std::unique_ptr<unsigned char[]> buf(new (std::nothrow) unsigned char[META_MAX_BYTES]);
	std::unique_ptr<unsigned char[]> out(new (std::nothrow) unsigned char[INFLATE_CHUNK]);
	FILE *f;
	size_t n, data_off = 0;
	std::string uid;
	z_stream z;
	bool ok = true;
	uint64_t in_total = 0, out_total = 0;

	if (!buf || !out)
		return r3d_err_set(err, R3D_ENOMEM, "%s: out of memory", label.c_str());
	f = fopen(path, "rb");
	if (f == nullptr)
		return true;   /* the parser says why it cannot read it */
	n = fread(buf.get(), 1, META_MAX_BYTES, f);
	if (n < 132 || memcmp(buf.get() + 128, "DICM", 4) != 0 ||
	    !meta_xfer(buf.get(), n, uid, data_off) || uid != UID_DEFLATED) {
		fclose(f);
		return true;
	}
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -MAX_WBITS) != Z_OK) {
		fclose(f);
		return r3d_err_set(err, R3D_ENOMEM, "%s: zlib cannot start", label.c_str());
	}
	/* The bytes after the meta group first, then the rest of the file. */
	size_t have = n - data_off;
	memmove(buf.get(), buf.get() + data_off, have);
	for (;;) {
		if (have == 0) {
			have = fread(buf.get(), 1, META_MAX_BYTES, f);
			if (have == 0)
				break;
		}
		in_total += have;
		z.next_in = buf.get();
		z.avail_in = (uInt)have;
		int rc = Z_OK;
		while (z.avail_in > 0 && rc == Z_OK) {
			z.next_out = out.get();
			z.avail_out = INFLATE_CHUNK;
			rc = inflate(&z, Z_NO_FLUSH);
			out_total += INFLATE_CHUNK - z.avail_out;
			if (out_total > BRIDGE_MAX_INFLATED_BYTES &&
			    out_total > BRIDGE_MAX_INFLATE_RATIO * (in_total + data_off)) {
				ok = r3d_err_set(err, R3D_EINVAL,
						 "%s: deflated dataset inflates to more than %llu MB (%llu times "
						 "its size): refused", label.c_str(),
						 (unsigned long long)(BRIDGE_MAX_INFLATED_BYTES >> 20),
						 (unsigned long long)BRIDGE_MAX_INFLATE_RATIO);
				goto out;
			}
		}
		have = 0;
		if (rc != Z_OK)
			break;   /* the end of the stream, or damage: the parser judges */
	}
out:
	inflateEnd(&z);
	fclose(f);
	return ok;
}

}  // namespace r3d_bridge_util
