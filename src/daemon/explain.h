/*
 * explain.h: the routes as --check-config lists them, and
 * `recon3d --explain-route DIR` (see explain.c).
 */
#ifndef R3D_DAEMON_EXPLAIN_H
#define R3D_DAEMON_EXPLAIN_H

#include <stdio.h>

#include "r3d/config.h"

void explain_print_routes(FILE *out, const struct config *cfg);

/* Prints the route and series the node would choose for each study under
 * dir, and why; 0 on success, 1 when dir cannot be read. calling_ae and
 * called_ae are the AE titles to assume (NULL: none, and [dicom] ae_title). */
int explain_route(const struct config *cfg, const char *dir, const char *calling_ae,
		  const char *called_ae);

#endif
