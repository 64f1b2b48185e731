/*
 * explain.c: `recon3d --check-config`'s list of routes and `recon3d
 * --explain-route DIR`: which route and which series the node would choose
 * for the studies in a folder, and why, without processing anything. The
 * folder's files are indexed into a private in-memory index exactly as the
 * receiver indexes what it is sent, and the queue's own selection runs on
 * it, so the answer is the one processing gives.
 */
#define _XOPEN_SOURCE 700
#include "explain.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/bridge.h"
#include "r3d/index.h"
#include "r3d/route.h"

static const char *policy_name(enum route_policy p)
{
	return p == ROUTE_ALL ? "all" : p == ROUTE_IGNORE ? "ignore" : "best";
}

static void route_print(FILE *out, const struct config *cfg, const struct config_route *r)
{
	fprintf(out, "route %s: series = %s", r->name, policy_name(r->policy));
	if (r->ncalled > 0) {
		fprintf(out, "; called_ae");
		for (int i = 0; i < r->ncalled; i++)
			fprintf(out, " %s", r->called_ae[i]);
	}
	if (r->ncalling > 0) {
		fprintf(out, "; calling_ae");
		for (int i = 0; i < r->ncalling; i++)
			fprintf(out, " %s", r->calling_ae[i]);
	}
	for (int i = 0; i < r->nrules; i++)
		fprintf(out, "; %s = %s", config_route_attr_keyword(r->rules[i].attr), r->rules[i].pattern);
	if (r->nrules == 0 && r->ncalled == 0 && r->ncalling == 0 && r != &cfg->route_default)
		fprintf(out, "; matches every series");
	if (r->policy != ROUTE_IGNORE) {
		fprintf(out, "\n  structures:");
		for (size_t i = 0; i < cfg->structures.n; i++)
			if (route_makes(r, &cfg->structures.def[i]))
				fprintf(out, " %s", cfg->structures.def[i].key);
		fprintf(out, "\n  destinations:");
		int nd = 0;
		for (int d = 0; d < cfg->ndestinations; d++) {
			if (!r->destinations_set || (r->destinations & (1u << d)) != 0) {
				fprintf(out, " %s", cfg->destinations[d].name);
				nd++;
			}
		}
		if (nd == 0)
			fprintf(out, " none");
		const char *hook = r->webhook_set ? r->webhook_url : cfg->webhook_url;
		fprintf(out, "\n  webhook: %s", hook[0] != '\0' ? hook : "none");
		const char *engine = r->engine_set ? r->engine : cfg->import_engine;
		bool instead = r->engine_set ? r->engine_instead : cfg->import_engine_instead;
		if (engine[0] != '\0')
			fprintf(out, "\n  engine: %s (%s the structures)", engine, instead ? "instead of" : "beside");
	}
	fputc('\n', out);
}

void explain_print_routes(FILE *out, const struct config *cfg)
{
	for (int i = 0; i < cfg->nroutes; i++)
		route_print(out, cfg, &cfg->routes[i]);
	route_print(out, cfg, &cfg->route_default);
}

/* nftw has no context argument: one walk at a time. */
static struct {
	struct index *idx;
	const char *calling_ae, *called_ae;
	long files, skipped;
	char first_error[512];
} walk;

static int walk_file(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	struct bridge_instance_attrs a;
	struct r3d_err err;
	char old[8];

	(void)sb;
	(void)ftw;
	if (type != FTW_F)
		return 0;
	if (!bridge_read_instance_attrs(&err, path, &a)) {
		walk.skipped++;
		return 0;
	}
	if (!index_put_instance_from(&err, walk.idx, &a, path, 0, walk.calling_ae, walk.called_ae, 0.0,
				     old, sizeof(old))) {
		snprintf(walk.first_error, sizeof(walk.first_error), "%s: %s", path, err.msg);
		return 1;
	}
	walk.files++;
	return 0;
}

struct explain_ctx {
	FILE *out;
	const struct config *cfg;
	int studies;
};

static const struct route_series *sort_s;   /* qsort has no context either */

static int by_number(const void *a, const void *b)
{
	const struct route_series *x = &sort_s[*(const size_t *)a], *y = &sort_s[*(const size_t *)b];
	long nx = x->series_number < 0 ? 1L << 30 : x->series_number;
	long ny = y->series_number < 0 ? 1L << 30 : y->series_number;
	if (nx != ny)
		return nx < ny ? -1 : 1;
	int c = strcmp(x->series_uid, y->series_uid);
	return c != 0 ? c : strcmp(x->called_ae, y->called_ae);
}

static void explain_study(void *ctx, const char *study_uid, const struct route_series *s,
			  const struct route_choice *c, size_t n)
{
	struct explain_ctx *e = ctx;
	int chosen = 0;

	e->studies++;
	fprintf(e->out, "study %s: %zu series\n", study_uid, n);
	/* In series number order, as a viewer lists them. */
	size_t *order = malloc((n + 1) * sizeof(*order));
	if (order == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	sort_s = s;
	qsort(order, n, sizeof(*order), by_number);
	for (size_t k = 0; k < n; k++) {
		size_t i = order[k];
		double t = s[i].slice_thickness > 0 ? s[i].slice_thickness : s[i].spacing;
		fprintf(e->out, "  %-10s series %s", c[i].chosen ? "CHOSEN" : "not chosen", s[i].series_uid);
		if (s[i].series_number >= 0)
			fprintf(e->out, " #%ld", s[i].series_number);
		fprintf(e->out, " \"%s\" %s %.2g mm, %ld images, covers %.0f mm, route %s", s[i].series_description,
			s[i].modality, t, s[i].images, s[i].extent_mm, c[i].route->name);
		if (s[i].called_ae[0] != '\0')
			fprintf(e->out, " (called %s)", s[i].called_ae);
		fprintf(e->out, "\n             %s\n", c[i].reason);
		chosen += c[i].chosen;
	}
	free(order);
	if (chosen == 0)
		fprintf(e->out, "  -> no series qualifies: %s\n",
			n > 0 ? "one job, skipped with these reasons (none when every route ignores it)" :
				"nothing but segmentations (imported onto their source)");
	else
		fprintf(e->out, "  -> %d job%s\n", chosen, chosen > 1 ? "s" : "");
}

int explain_route(const struct config *cfg, const char *dir, const char *calling_ae,
		  const char *called_ae)
{
	struct r3d_err err;
	struct index *idx = NULL;

	if (!bridge_init(&err)) {
		fprintf(stderr, "recon3d: %s\n", err.msg);
		return 1;
	}
	if (!index_open(&err, ":memory:", &idx)) {
		fprintf(stderr, "recon3d: %s\n", err.msg);
		bridge_cleanup();
		return 1;
	}
	memset(&walk, 0, sizeof(walk));
	walk.idx = idx;
	walk.calling_ae = calling_ae;
	walk.called_ae = called_ae != NULL ? called_ae : cfg->ae_title;
	int rc = nftw(dir, walk_file, 32, FTW_PHYS);
	if (rc != 0) {
		if (walk.first_error[0] != '\0')
			fprintf(stderr, "recon3d: --explain-route: %s\n", walk.first_error);
		else
			fprintf(stderr, "recon3d: --explain-route: cannot read '%s'\n", dir);
		index_close(idx);
		bridge_cleanup();
		return 1;
	}
	printf("%ld DICOM files in %s (%ld other files skipped), called AE title %s%s%s\n", walk.files, dir,
	       walk.skipped, walk.called_ae, calling_ae != NULL && calling_ae[0] ? ", calling " : "",
	       calling_ae != NULL ? calling_ae : "");
	struct queue_rules rules = {
		.cfg = cfg,
		.stable_seconds = cfg->stable_seconds,
		.min_slices = cfg->min_slices,
		.import = cfg->import_enabled,
		.wait_for_source_s = cfg->import_wait_for_source_s,
	};
	struct explain_ctx e = {stdout, cfg, 0};
	bool ok = queue_explain(&err, idx, &rules, explain_study, &e);
	if (!ok)
		fprintf(stderr, "recon3d: --explain-route: %s\n", err.msg);
	else if (e.studies == 0)
		printf("no DICOM study in %s\n", dir);
	index_close(idx);
	bridge_cleanup();
	return ok ? 0 : 1;
}
