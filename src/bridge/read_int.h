/*
 * read_int.h: what the series reader (read.cpp) and the pre-loader's cache
 * (preload.cpp) share: the decoded series record and the one-file decoder.
 * Internal to src/bridge; C++. Any thread (each bridge_series is used by one
 * thread at a time).
 */
#ifndef R3D_READ_INT_H
#define R3D_READ_INT_H

#include <cstdint>
#include <string>
#include <vector>

extern "C" {
#include "r3d/err.h"
#include "r3d/volume.h"
}

struct bridge_series {
	std::vector<std::string> labels;            /* per file: name for messages */
	std::vector<std::string> sop_uids;          /* per file */
	std::vector<std::string> sop_classes;       /* per file */
	std::vector<std::string> xfers;             /* per file: transfer syntax UID */
	std::vector<std::vector<uint16_t>> pixels;  /* per file: all frames */
	std::vector<volume_slice> slices;
	std::vector<size_t> slice_file;
};

namespace r3d_read {

/* Decodes every frame of the file at path and appends it to out (its
 * slices' pixels and labels are linked once the series is complete). The
 * decoders are registered first. May throw std::bad_alloc. */
bool file_decode(struct r3d_err *err, const std::string &path, bridge_series &out);

/* The pre-loaded decoding of the file at path, moved into part, when set
 * holds one for exactly that file as it is now (same inode, size, mtime
 * and ctime, same name); the entry leaves the set. False: read the file. */
bool preload_set_take_file(struct bridge_preload_set *set, const std::string &path,
			   bridge_series &part);

} // namespace r3d_read

#endif
