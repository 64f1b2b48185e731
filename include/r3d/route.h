/*
 * route.h: routing profiles and series selection (issue 12). A study's
 * series are matched to [route NAME] sections (first match wins, then the
 * default route); each route takes the best series of those it matched, or
 * all of them, or none, and says for every series why it was or was not
 * chosen. Pure functions of the facts given: the queue thread calls them on
 * what the index holds, `recon3d --explain-route` on a folder's files, so
 * both make the same choice. No DICOM parsing, no database, no logging.
 */
#ifndef R3D_ROUTE_H
#define R3D_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "r3d/bridge.h"
#include "r3d/config.h"

/* Thickness limits of the preferred reconstructions: series up to
 * ROUTE_THICK_CAP_MM thick are preferred to thicker ones; below
 * ROUTE_THIN_FLOOR_MM a thinner series is not preferred (it only adds noise
 * and memory to a surface model). */
#define ROUTE_THICK_CAP_MM 3.0
#define ROUTE_THIN_FLOOR_MM 0.5
/* A series covering less than this part of the longest candidate's length
 * is not preferred for being thinner or better reconstructed. */
#define ROUTE_COVERAGE_MIN 0.8
#define ROUTE_REASON_MAX 320

/* The facts of one series of a study, as rules and selection read them.
 * Strings are "" and numbers 0 when unknown. */
struct route_series {
	char series_uid[BRIDGE_UID_MAX + 1];
	long series_number;                      /* -1 when absent */
	char modality[17];
	char sop_class_uid[BRIDGE_UID_MAX + 1];  /* of its first instance */
	char series_description[65];
	char study_description[65];
	char image_type[65];
	char kernel[65];
	char contrast_agent[65];
	char body_part[17];
	char manufacturer[65];
	char calling_ae[CONFIG_AE_MAX + 1];
	char called_ae[CONFIG_AE_MAX + 1];       /* one called AE title: a series received
						  * under two is two entries */
	char orientation[12];                    /* axial, sagittal, coronal, oblique */
	double slice_thickness;                  /* mm */
	double spacing;                          /* mean distance between slices, mm */
	double extent_mm;                        /* length covered along the slice normal */
	long images;                             /* CT images, or frames of a multi-frame */
	char unusable[ROUTE_REASON_MAX];         /* "": the pipeline can use it; else why not */
};

struct route_choice {
	const struct config_route *route;        /* the route it matched */
	bool chosen;                             /* a job is made on it */
	bool excluded;                           /* not usable at all (localizer, ...) */
	bool ignored;                            /* its route's series = ignore */
	char reason[ROUTE_REASON_MAX];           /* why it was chosen, or why not */
};

/* The first route of cfg (file order) whose rules all hold for s, else the
 * default route. */
const struct config_route *route_match(const struct config *cfg, const struct route_series *s);

/* Chooses among the n series of one study: each is matched to its route
 * (override: every series goes to the route of that name, for a re-run), then
 * each route's policy picks (best: one series by the rules documented in
 * docs/routing.md; all: every usable series; ignore: none). */
void route_select(const struct config *cfg, const struct route_series *s, size_t n,
		  const char *override, struct route_choice *out);

/* The choice as JSON text for the job (every series with its facts, route,
 * chosen or not, and why); NULL when out of memory. The caller frees it. */
char *route_selection_json(const struct route_series *s, const struct route_choice *c, size_t n);

/* One series' orientation from its Image Orientation (Patient): "axial",
 * "coronal" or "sagittal" when the slice normal lies within about 37
 * degrees of that axis (a tilted gantry stays axial), else "oblique". */
const char *route_orientation(const double iop[6]);

/* The class of a Convolution Kernel value as the vendors name them (GE,
 * Siemens, Philips, Canon/Toshiba; docs/routing.md lists them). */
enum route_kernel_class { ROUTE_KERNEL_UNKNOWN, ROUTE_KERNEL_SOFT, ROUTE_KERNEL_SHARP };
enum route_kernel_class route_kernel_class(const char *manufacturer, const char *kernel);

/* The contrast phase a series shows, from Contrast/Bolus Agent and its
 * description. */
enum route_phase { ROUTE_PHASE_NONE, ROUTE_PHASE_UNKNOWN, ROUTE_PHASE_ARTERIAL,
		   ROUTE_PHASE_VENOUS };
enum route_phase route_series_phase(const struct route_series *s);

/* Whether the route makes structure d: the ones its structures key names
 * (even when switched off in the catalogue), else the enabled ones. */
bool route_makes(const struct config_route *r, const struct structure_def *d);

/* True when one rule holds for s (exposed for the unit test). */
bool route_rule_holds(const struct config_route_rule *r, const struct route_series *s);

#endif
