/*
 * test_route.c: unit.route, routing profiles and series selection on series
 * of known facts: the vendors' kernel names, orientation from Image
 * Orientation, the contrast phase, each rule kind, first match wins, and
 * the choice among candidates (thinner within the cap, soft kernel for
 * soft structures and sharp for bone, coverage, arterial for vessels, the
 * tie broken by series number whatever the order), with the reason for
 * every series not chosen. Routes are loaded from a config file as an
 * administrator writes them. Main thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "r3d/config.h"
#include "r3d/route.h"
#include "r3d/test.h"

static struct config cfg;

static bool load(const char *text)
{
	char path[] = "/tmp/r3d-route-XXXXXX";
	int fd = mkstemp(path);
	struct r3d_err err;
	bool ok;

	if (fd < 0)
		return false;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		close(fd);
		return false;
	}
	close(fd);
	config_defaults(&cfg);
	ok = config_load(&err, path, &cfg);
	if (!ok)
		fprintf(stderr, "  (config: %s)\n", err.msg);
	unlink(path);
	return ok;
}

static struct route_series ct(const char *uid, double thick, double extent, const char *kernel)
{
	struct route_series s;

	memset(&s, 0, sizeof(s));
	snprintf(s.series_uid, sizeof(s.series_uid), "%s", uid);
	snprintf(s.modality, sizeof(s.modality), "CT");
	snprintf(s.sop_class_uid, sizeof(s.sop_class_uid), "1.2.840.10008.5.1.4.1.1.2");
	snprintf(s.image_type, sizeof(s.image_type), "ORIGINAL\\PRIMARY\\AXIAL");
	snprintf(s.kernel, sizeof(s.kernel), "%s", kernel);
	snprintf(s.orientation, sizeof(s.orientation), "axial");
	snprintf(s.called_ae, sizeof(s.called_ae), "RECON3D");
	s.slice_thickness = thick;
	s.extent_mm = extent;
	s.images = (long)(extent / thick);
	s.series_number = 1;
	return s;
}

static void test_kernels(void)
{
	CHECK(route_kernel_class("GE MEDICAL SYSTEMS", "STANDARD") == ROUTE_KERNEL_SOFT);
	CHECK(route_kernel_class("GE MEDICAL SYSTEMS", "SOFT") == ROUTE_KERNEL_SOFT);
	CHECK(route_kernel_class("GE MEDICAL SYSTEMS", "BONE") == ROUTE_KERNEL_SHARP);
	CHECK(route_kernel_class("GE MEDICAL SYSTEMS", "BONEPLUS") == ROUTE_KERNEL_SHARP);
	CHECK(route_kernel_class("GE MEDICAL SYSTEMS", "LUNG") == ROUTE_KERNEL_SHARP);
	CHECK(route_kernel_class("SIEMENS", "B30f") == ROUTE_KERNEL_SOFT);
	CHECK(route_kernel_class("SIEMENS", "Br40d\\3") == ROUTE_KERNEL_SOFT);
	CHECK(route_kernel_class("SIEMENS", "B70f") == ROUTE_KERNEL_SHARP);
	CHECK(route_kernel_class("SIEMENS", "Bl57d") == ROUTE_KERNEL_SHARP);
	CHECK(route_kernel_class("SIEMENS", "Hr38h") == ROUTE_KERNEL_SOFT);
	CHECK(route_kernel_class("SIEMENS", "I70f") == ROUTE_KERNEL_SHARP);
	CHECK(route_kernel_class("Philips", "B") == ROUTE_KERNEL_SOFT);
	CHECK(route_kernel_class("Philips", "D") == ROUTE_KERNEL_SHARP);
	CHECK(route_kernel_class("Philips", "YC") == ROUTE_KERNEL_SHARP);
	CHECK(route_kernel_class("TOSHIBA", "FC03") == ROUTE_KERNEL_SOFT);
	CHECK(route_kernel_class("TOSHIBA", "FC30") == ROUTE_KERNEL_SHARP);
	CHECK(route_kernel_class("", "") == ROUTE_KERNEL_UNKNOWN);
	CHECK(route_kernel_class("", "WHATEVER") == ROUTE_KERNEL_UNKNOWN);
}

static void test_orientation_phase(void)
{
	const double axial[6] = {1, 0, 0, 0, 1, 0};
	const double tilted[6] = {1, 0, 0, 0, 0.9483, -0.3173};   /* 18.5 degrees */
	const double coronal[6] = {1, 0, 0, 0, 0, -1};
	const double sagittal[6] = {0, 1, 0, 0, 0, -1};
	const double oblique[6] = {1, 0, 0, 0, 0.7071, -0.7071};

	CHECK(strcmp(route_orientation(axial), "axial") == 0);
	CHECK(strcmp(route_orientation(tilted), "axial") == 0);
	CHECK(strcmp(route_orientation(coronal), "coronal") == 0);
	CHECK(strcmp(route_orientation(sagittal), "sagittal") == 0);
	CHECK(strcmp(route_orientation(oblique), "oblique") == 0);

	struct route_series s = ct("1", 1, 300, "B30f");
	CHECK(route_series_phase(&s) == ROUTE_PHASE_NONE);
	snprintf(s.series_description, sizeof(s.series_description), "Abdomen ARTERIAL 1.0 B30f");
	CHECK(route_series_phase(&s) == ROUTE_PHASE_ARTERIAL);
	snprintf(s.series_description, sizeof(s.series_description), "CTA thorax");
	CHECK(route_series_phase(&s) == ROUTE_PHASE_ARTERIAL);
	snprintf(s.series_description, sizeof(s.series_description), "Portal venous 3mm");
	CHECK(route_series_phase(&s) == ROUTE_PHASE_VENOUS);
	snprintf(s.series_description, sizeof(s.series_description), "Abdomen 1.0");
	snprintf(s.contrast_agent, sizeof(s.contrast_agent), "Omnipaque 350");
	CHECK(route_series_phase(&s) == ROUTE_PHASE_UNKNOWN);
	snprintf(s.series_description, sizeof(s.series_description), "NON CON abdomen");
	CHECK(route_series_phase(&s) == ROUTE_PHASE_NONE);
}

static void test_rules(void)
{
	CHECK(load("[route kidney]\n"
		   "StudyDescription = kidney|renal|nephr\n"
		   "SliceThickness = 0.5..2\n"
		   "ContrastBolusAgent = present\n"
		   "structures = vessels\n"
		   "[route bone]\n"
		   "called_ae = RECON3D_BONE\n"
		   "structures = bone\n"
		   "[route other]\n"
		   "series = ignore\n"));
	CHECK(cfg.nroutes == 3);
	struct route_series s = ct("1", 1, 300, "B30f");
	snprintf(s.study_description, sizeof(s.study_description), "CT RENAL MASS protocol");
	CHECK(strcmp(route_match(&cfg, &s)->name, "other") == 0);     /* no contrast */
	snprintf(s.contrast_agent, sizeof(s.contrast_agent), "Iomeron");
	CHECK(strcmp(route_match(&cfg, &s)->name, "kidney") == 0);
	s.slice_thickness = 3;
	CHECK(strcmp(route_match(&cfg, &s)->name, "other") == 0);     /* too thick */
	s.slice_thickness = 0;
	s.spacing = 1.5;   /* no Slice Thickness: the spacing stands in */
	CHECK(strcmp(route_match(&cfg, &s)->name, "kidney") == 0);
	snprintf(s.called_ae, sizeof(s.called_ae), "RECON3D_BONE");
	CHECK(strcmp(route_match(&cfg, &s)->name, "kidney") == 0);    /* first match wins */
	snprintf(s.study_description, sizeof(s.study_description), "knee");
	CHECK(strcmp(route_match(&cfg, &s)->name, "bone") == 0);
	CHECK(config_called_ae_ours(&cfg, "RECON3D_BONE") && config_called_ae_ours(&cfg, "RECON3D") &&
	      !config_called_ae_ours(&cfg, "RECON3D_KNEE"));
	/* Without routes, the default route takes everything. */
	CHECK(load("[pipeline]\nmin_slices = 10\n"));
	CHECK(strcmp(route_match(&cfg, &s)->name, "default") == 0);
}

static void test_bad_routes(void)
{
	CHECK(!load("[route a]\nStudyDescription = (kidney\n"));          /* invalid expression */
	CHECK(!load("[route a]\nBodyPart = KNEE\n"));                      /* not a keyword we match */
	CHECK(!load("[route a]\nPatientName = DOE\n"));                    /* patient data */
	CHECK(!load("[route a]\nstructures = bone kidney_left\n"));        /* not in the catalogue */
	CHECK(!load("[route a]\ndestinations = pacs\n"));                  /* no such section */
	CHECK(!load("[route a]\nSliceThickness = 3..1\n"));
	CHECK(!load("[route a]\nseries = some\n"));
	CHECK(!load("[route a]\ncalled_ae = MUCH_TOO_LONG_AE_TITLE\n"));
	CHECK(!load("[route default]\nModality = CT\n"));                  /* the fallback has no rules */
	CHECK(load("[route a]\nstructures = kidney\n[structure kidney]\nmin_hu = 100\nmax_hu = 300\n"));
}

static size_t chosen_of(const struct route_choice *c, size_t n)
{
	size_t k = n;
	for (size_t i = 0; i < n; i++)
		if (c[i].chosen) {
			CHECK(k == n);   /* at most one per route here */
			k = i;
		}
	return k;
}

static void test_choice(void)
{
	struct route_series s[6];
	struct route_choice c[6];

	CHECK(load("[route bone]\ncalled_ae = RECON3D_BONE\nstructures = bone\n"
		   "[route vessels]\ncalled_ae = RECON3D_CTA\nstructures = vessels\n"));
	/* Default route (skin, bone, lungs, vessels: soft kernel wins). */
	s[0] = ct("thick", 5, 400, "B");
	s[1] = ct("thin", 0.5, 400, "B");
	s[2] = ct("sharp", 0.5, 400, "D");
	s[3] = ct("thinner", 0.3, 400, "B");
	s[4] = ct("short", 0.6, 150, "B");
	s[5] = ct("loc", 1, 400, "B");
	snprintf(s[5].image_type, sizeof(s[5].image_type), "ORIGINAL\\PRIMARY\\LOCALIZER");
	s[3].series_number = 2;   /* 0.3 mm is below the floor: equal to 0.5 mm, loses on number */
	route_select(&cfg, s, 6, NULL, c);
	CHECK(chosen_of(c, 6) == 1);
	CHECK(strstr(c[0].reason, "5 mm thick, over the 3 mm preferred") != NULL);
	CHECK(strstr(c[2].reason, "sharp (bone/lung) kernel (D)") != NULL);
	CHECK(strstr(c[3].reason, "lower series number") != NULL);
	CHECK(strstr(c[4].reason, "covers 150 mm") != NULL);
	CHECK(c[5].excluded && strstr(c[5].reason, "localizer") != NULL);
	CHECK(strstr(c[1].reason, "the best of 5 usable series for route default") != NULL);
	/* The same series in another order: the same choice. */
	struct route_series r[6];
	struct route_choice rc[6];
	for (int i = 0; i < 6; i++)
		r[i] = s[5 - i];
	route_select(&cfg, r, 6, NULL, rc);
	CHECK(strcmp(r[chosen_of(rc, 6)].series_uid, "thin") == 0);
	/* A bone route prefers the sharp kernel. */
	for (int i = 0; i < 6; i++)
		snprintf(s[i].called_ae, sizeof(s[i].called_ae), "RECON3D_BONE");
	route_select(&cfg, s, 6, NULL, c);
	CHECK(chosen_of(c, 6) == 2 && strcmp(c[2].route->name, "bone") == 0);
	CHECK(strstr(c[1].reason, "soft-tissue kernel (B) where the structures are best made on a sharp") != NULL);
	/* Vessels need the arterial phase. */
	s[0] = ct("venous", 1, 400, "B");
	snprintf(s[0].series_description, sizeof(s[0].series_description), "portal venous");
	s[1] = ct("arterial", 2, 400, "B");
	snprintf(s[1].series_description, sizeof(s[1].series_description), "arterial phase");
	s[2] = ct("plain", 1, 400, "B");
	for (int i = 0; i < 3; i++)
		snprintf(s[i].called_ae, sizeof(s[i].called_ae), "RECON3D_CTA");
	route_select(&cfg, s, 3, NULL, c);
	CHECK(chosen_of(c, 3) == 1);
	CHECK(strstr(c[0].reason, "contrast phase venous where the structures need arterial") != NULL);
	/* A re-run with another route: every series goes there. */
	route_select(&cfg, s, 3, "bone", c);
	CHECK(strcmp(c[0].route->name, "bone") == 0 && strcmp(c[2].route->name, "bone") == 0);
	/* all and ignore. */
	CHECK(load("[route every]\nseries = all\nSeriesDescription = ^keep\n[route default]\nseries = ignore\n"));
	s[0] = ct("a", 1, 400, "B");
	s[1] = ct("b", 5, 400, "B");
	s[2] = ct("c", 1, 400, "B");
	snprintf(s[0].series_description, sizeof(s[0].series_description), "keep 1");
	snprintf(s[1].series_description, sizeof(s[1].series_description), "keep 2");
	route_select(&cfg, s, 3, NULL, c);
	CHECK(c[0].chosen && c[1].chosen && !c[2].chosen && c[2].ignored);
	char *json = route_selection_json(s, c, 3);
	CHECK(json != NULL && strstr(json, "\"route\":\"every\"") != NULL &&
	      strstr(json, "route default ignores it") != NULL);
	free(json);
}

int main(void)
{
	test_kernels();
	test_orientation_phase();
	test_rules();
	test_bad_routes();
	test_choice();
	return test_summary();
}
