/*
 * tls.h: DICOM TLS for both sides of the bridge (net.cpp, scu.cpp):
 * DCMTK's DcmTLSTransportLayer set up from struct bridge_tls, and the
 * subject of a peer's certificate. Internal to src/bridge; C++.
 */
#ifndef R3D_BRIDGE_TLS_H
#define R3D_BRIDGE_TLS_H

#include <cstddef>

#include "r3d/bridge.h"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmnet/assoc.h"

class DcmTLSTransportLayer;

namespace r3d_bridge_tls {

/* A transport layer for role with t's profile, certificate, key and CAs, or
 * NULL with err set (naming the file and OpenSSL's reason). The caller owns
 * it (ASC_setTransportLayer with ownership hands it to a network). */
DcmTLSTransportLayer *layer_new(struct r3d_err *err, T_ASC_NetworkRole role, const struct bridge_tls *t);

/* The subject of the association's peer certificate in RFC 2253 form
 * ("CN=pacs,O=Hospital"), or "" when it presented none. */
void peer_subject(T_ASC_Association *a, char *out, size_t size);

}  // namespace r3d_bridge_tls

#endif
