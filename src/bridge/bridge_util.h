/*
 * bridge_util.h: helpers shared by the bridge's object writers (export.cpp,
 * seg.cpp) and readers. Internal to src/bridge; C++. Any thread.
 */
#ifndef R3D_BRIDGE_UTIL_H
#define R3D_BRIDGE_UTIL_H

#include <cstddef>
#include <string>

#include "r3d/bridge.h"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcfilefo.h"

namespace r3d_bridge_util {

#define BRIDGE_LO_MAX 64   /* characters of an LO value (labels, descriptions) */

/* 1..max characters, none of them a control character or a backslash. */
bool text_ok(const char *s, size_t max);
/* min..max digits (and dots after the sixth character when dot). */
bool digits_ok(const char *s, size_t min, size_t max, bool dot);
/* A code with a value, scheme and meaning that fit their VRs. */
bool code_ok(const struct bridge_code *c);
/* A code given (its value not NULL nor empty). */
bool code_present(const struct bridge_code *c);
/* Category and type well formed, the optional ones absent or well formed. */
bool codes_ok(const struct bridge_segment_codes *c);
/* This host's name as an LO value, for Device Serial Number. */
std::string host_serial();
/* Saves ff as Explicit VR Little Endian (sequences with enc) under a unique
 * temporary name in the folder of path, syncs it and renames it to path. */
bool save_atomic(struct r3d_err *err, DcmFileFormat &ff, const char *path, E_EncodingType enc);
/* The identity every written object takes from info: source instance,
 * series and SOP instance UIDs, series and instance numbers, series
 * description, device serial number, content date and time. */
bool identity_check(struct r3d_err *err, const struct bridge_export_info *info);
/* Recognizable Visual Features from info->recognizable (nothing when UNKNOWN). */
bool put_recognizable(DcmItem *it, const struct bridge_export_info *info);

/* A deflated dataset (Deflated Explicit VR Little Endian) that inflates to
 * more than BRIDGE_MAX_INFLATED_BYTES and more than BRIDGE_MAX_INFLATE_RATIO
 * times the file's size is refused before DCMTK parses it (inflate_guard.cpp:
 * DCMTK would hold all of it in memory). True for every other file, and for
 * files it cannot read (the parser then says why); label names the file in
 * the reason. */
#define BRIDGE_MAX_INFLATED_BYTES (256ull << 20)
#define BRIDGE_MAX_INFLATE_RATIO 32ull
bool inflated_size_ok(struct r3d_err *err, const char *path, const std::string &label);

}  // namespace r3d_bridge_util

#endif
