/*
 * printcheck.c: print readiness and measurements of a run's structures
 * (issue 14; see pipeline_print_run() in r3d/pipeline.h): loose shells
 * dropped on request, each meshed structure analysed (src/mesh/analysis.c),
 * the flags a 3D print lab reads (thin_wall, printable), and the shortest
 * distance of the pairs the config names. report.c writes it all into
 * report.json. Called by pipeline_run_dir() (pipeline_print_one() by each
 * mesher thread of its mesh stage, as a structure is made) and by the
 * worker (pipeline_print_run(), deferred); pipeline_print_run() analyses
 * up to o->threads structures at once, each analysis starting up to
 * o->threads - 1 threads of its own.
 */
#include <math.h>
#include <string.h>

#include "pipeline_int.h"

#include "r3d/pipeline.h"
#include "r3d/util.h"

void pipeline_print_defaults(struct pipeline_print_options *p)
{
	memset(p, 0, sizeof(*p));
	p->min_wall_mm = PIPELINE_PRINT_MIN_WALL_MM;
	p->min_shell_ml = PIPELINE_PRINT_MIN_SHELL_ML;
	p->drop_loose_shells = false;
}

static struct pipeline_structure *find_made(struct pipeline_result *res, const char *key)
{
	for (size_t i = 0; i < res->nstructures; i++)
		if (res->structures[i].mesh != NULL && strcmp(res->structures[i].def.key, key) == 0)
			return &res->structures[i];
	return NULL;
}

bool pipeline_print_drop(struct r3d_err *err, const struct pipeline_options *o,
			 struct pipeline_structure *ps)
{
	const struct pipeline_print_options *po = &o->print;

	if (ps->shells_done)
		return true;
	ps->shells_done = true;
	if (po->off || !po->drop_loose_shells || ps->mesh == NULL || ps->mesh->ntri == 0)
		return true;
	if (!mesh_drop_small_shells(err, ps->mesh, po->min_shell_ml * 1000.0,
				    &ps->loose_shells_dropped))
		return r3d_err_prefix(err, "%s: dropping loose shells", ps->def.key);
	/* The model changed: its figures are the printed file's. */
	if (ps->loose_shells_dropped > 0 && !mesh_check(err, ps->mesh, &ps->stats))
		return r3d_err_prefix(err, "%s: checking the mesh", ps->def.key);
	return true;
}

bool pipeline_print_one(struct r3d_err *err, const struct pipeline_options *o,
			struct pipeline_structure *ps)
{
	const struct pipeline_print_options *po = &o->print;
	double t0 = clock_mono_s();

	if (po->off || ps->analysed || ps->mesh == NULL || ps->mesh->ntri == 0)
		return true;
	ps->min_wall_limit_mm = po->min_wall_mm;
	if (!mesh_analyse(err, ps->mesh, o->threads, &ps->analysis))
		return r3d_err_prefix(err, "%s: print readiness", ps->def.key);
	ps->analysed = true;
	ps->thin_wall = ps->analysis.has_wall && ps->analysis.min_wall < po->min_wall_mm;
	ps->printable = ps->stats.closed && ps->stats.manifold && ps->stats.volume > 0 &&
			ps->analysis.self_intersections == 0 && !ps->thin_wall;
	ps->analysis_ms = (clock_mono_s() - t0) * 1e3;
	return true;
}

struct print_each_ctx {
	const struct pipeline_options *o;
	struct pipeline_result *res;
};

/* pipeline_each(): structure i. */
static bool print_each(struct r3d_err *err, void *ctx, int t, size_t i)
{
	struct print_each_ctx *pc = ctx;

	(void)t;
	return pipeline_print_one(err, pc->o, &pc->res->structures[i]);
}

bool pipeline_print_run(struct r3d_err *err, const struct pipeline_options *o,
			struct pipeline_result *res)
{
	struct structure_pair pairs[STRUCTURE_PAIRS_MAX];
	size_t npairs = 0;
	struct print_each_ctx pc = {o, res};

	if (o->print.off)
		return true;
	/* Up to o->threads structures at once (those analysed are skipped). */
	if (!pipeline_each(err, o->threads, res->nstructures, print_each, &pc))
		return false;
	if (!structure_pairs_parse(err, o->print.distances, pairs, STRUCTURE_PAIRS_MAX, &npairs))
		return r3d_err_prefix(err, "[print] distances");
	res->ndistances = 0;
	for (size_t k = 0; k < npairs; k++) {
		struct pipeline_structure *a = find_made(res, pairs[k].a);
		struct pipeline_structure *b = find_made(res, pairs[k].b);
		struct pipeline_distance *d = &res->distances[res->ndistances];
		if (a == NULL || b == NULL || a->mesh->ntri == 0 || b->mesh->ntri == 0)
			continue;   /* a pair is measured only when both were made */
		if (!mesh_gap(err, a->mesh, b->mesh, o->threads, &d->mm, d->a_lps, d->b_lps))
			return r3d_err_prefix(err, "distance %s:%s", pairs[k].a, pairs[k].b);
		memcpy(d->a, pairs[k].a, sizeof(d->a));
		memcpy(d->b, pairs[k].b, sizeof(d->b));
		res->ndistances++;
	}
	return true;
}

void pipeline_print_free(struct pipeline_result *res)
{
	for (size_t i = 0; i < res->nstructures; i++) {
		mesh_analysis_free(&res->structures[i].analysis);
		res->structures[i].analysed = false;
	}
}
