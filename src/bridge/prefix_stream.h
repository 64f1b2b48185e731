/*
 * prefix_stream.h: a DCMTK input stream over bytes already in memory (the
 * first bytes of a file, read at once) on which DCMTK can leave long values
 * unread, as it does on a file stream.
 *
 * Why: DCMTK 3.6.7 reads a value of up to maxReadLength bytes at once and
 * leaves a longer one for later only when the stream can make a factory for
 * a second stream at the same place (DcmInputStream::newFactory()). A
 * DcmInputBufferStream cannot, so every value is read at once, and DCMTK
 * allocates the length the element claims (up to 4 GiB) before it finds the
 * bytes are not there: a 5 KB file made the bridge allocate 2.7 GB (found by
 * tests/fuzz/fuzz_dicom; docs/security.md, "Fuzzing"). This stream's
 * factory shares the bytes, so a long value is skipped (and fails the parse
 * when it runs past the end, which the caller treats as "read the file from
 * disk"), and read only if it is asked for.
 *
 * Any thread; one stream per thread, as DCMTK's own.
 */
#ifndef R3D_BRIDGE_PREFIX_STREAM_H
#define R3D_BRIDGE_PREFIX_STREAM_H

#include <memory>
#include <vector>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcistrma.h"
#include "dcmtk/dcmdata/dcistrmb.h"

class PrefixStream : public DcmInputStream {
public:
	typedef std::shared_ptr<const std::vector<char>> bytes;

	/* Starts at byte offset of b (which it keeps alive). */
	explicit PrefixStream(bytes b, offile_off_t offset = 0)
		: DcmInputStream(&producer_), bytes_(std::move(b))
	{
		producer_.setBuffer(bytes_->data(), static_cast<offile_off_t>(bytes_->size()));
		producer_.setEos();
		if (offset > 0)
			skip(offset);
	}
	DcmInputStreamFactory *newFactory() const override;

private:
	DcmBufferProducer producer_;  /* used by the base only after construction */
	bytes bytes_;
};

class PrefixStreamFactory : public DcmInputStreamFactory {
public:
	PrefixStreamFactory(PrefixStream::bytes b, offile_off_t offset)
		: bytes_(std::move(b)), offset_(offset)
	{
	}
	DcmInputStream *create() const override
	{
		return new PrefixStream(bytes_, offset_);
	}
	DcmInputStreamFactory *clone() const override
	{
		return new PrefixStreamFactory(bytes_, offset_);
	}
	/* DCMTK asks only to tell a temporary file's factory from the others. */
	DcmInputStreamFactoryType ident() const override
	{
		return DFT_DcmInputFileStreamFactory;
	}

private:
	PrefixStream::bytes bytes_;
	offile_off_t offset_;
};

inline DcmInputStreamFactory *PrefixStream::newFactory() const
{
	return new PrefixStreamFactory(bytes_, tell());
}

#endif
