/*
 * report.c: a run's outputs on disk (see r3d/pipeline.h): <key>.stl and
 * <key>.mesh per structure, model.obj + model.mtl, and report.json, which
 * carries each structure's catalogue entry (key, label, source, colour as
 * RGB and CIELab, codes, budget) for the consumers that read the results
 * folder (the 3D page, the webhook). Any thread.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline_int.h"
#include "r3d/util.h"

/* A half-integer HU bound, null for an open end. */
static json_t *hu_json(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static json_t *code_json(const struct structure_code *c)
{
	if (c->value[0] == '\0')
		return json_null();
	return json_pack("{s:s, s:s, s:s}", "value", c->value, "scheme", c->scheme, "meaning",
			 c->meaning);
}

/* The size of a file just written, or -1. */
static long long report_file_bytes(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* The catalogue entry of a structure as report.json carries it. "name" is
 * the key (the name results before the catalogue used). */
static json_t *structure_json(const struct structure_def *d)
{
	uint16_t lab[3];
	json_t *s, *codes, *range;

	bridge_rgb_to_cielab(d->rgb, lab);
	codes = json_pack("{s:o, s:o, s:o, s:o, s:o}", "category", code_json(&d->category), "type",
			  code_json(&d->type), "type_modifier", code_json(&d->type_modifier),
			  "anatomic_region", code_json(&d->region), "anatomic_region_modifier",
			  code_json(&d->region_modifier));
	range = json_pack("{s:o, s:o}", "min_hu", d->has_min ? json_integer(d->min_hu) : json_null(),
			  "max_hu", d->has_max ? json_integer(d->max_hu) : json_null());
	if (d->has_contrast_min)
		json_object_set_new(range, "contrast_min_hu", json_integer(d->contrast_min_hu));
	s = json_pack("{s:s, s:s, s:s, s:s, s:[f,f,f], s:[i,i,i], s:o, s:o, s:I, s:b}",
		      "name", d->key, "key", d->key, "label", d->label,
		      "source", structure_source_name(d->source),
		      "color_rgb", (double)d->rgb[0], (double)d->rgb[1], (double)d->rgb[2],
		      "color_cielab", (int)lab[0], (int)lab[1], (int)lab[2],
		      "codes", codes, "range", range,
		      "max_triangles", (json_int_t)d->max_triangles,
		      "body_surface", d->body_surface);
	return s;
}

static json_t *vec3_json(const double v[3])
{
	return json_pack("[f,f,f]", v[0], v[1], v[2]);
}

/* "measurements" of a meshed structure (the viewer's contract). */
static json_t *measurements_json(const struct pipeline_structure *ps)
{
	const struct mesh_analysis *a = &ps->analysis;
	return json_pack("{s:f, s:[f,f,f], s:[o,o,o], s:o}", "volume_ml", a->volume / 1000.0,
			 "extents_mm", a->extents[0], a->extents[1], a->extents[2],
			 "axes_lps", vec3_json(a->axes[0]), vec3_json(a->axes[1]),
			 vec3_json(a->axes[2]), "centroid_lps_mm", vec3_json(a->centroid));
}

/* "print": what a 3D print lab checks (docs/printing.md). */
static json_t *print_json(const struct pipeline_structure *ps)
{
	const struct mesh_analysis *a = &ps->analysis;
	json_t *shells = json_array();

	for (size_t i = 0; i < a->nshells; i++)
		json_array_append_new(shells, json_pack("{s:f, s:I, s:f}", "volume_ml",
							a->shells[i].volume / 1000.0, "triangles",
							(json_int_t)a->shells[i].ntri, "area_mm2",
							a->shells[i].area));
	return json_pack("{s:o, s:b, s:b, s:b, s:I, s:o, s:o, s:o, s:f, s:b, s:I, s:b, s:f}",
			 "shells", shells,
			 "closed", ps->stats.closed,
			 "manifold", ps->stats.manifold,
			 "outward", ps->stats.volume > 0,
			 "self_intersections", (json_int_t)a->self_intersections,
			 "self_intersection_at_lps_mm",
			 a->self_intersections > 0 ? vec3_json(a->si_at) : json_null(),
			 "min_wall_mm", a->has_wall ? json_real(a->min_wall) : json_null(),
			 "min_wall_at_lps_mm", a->has_wall ? vec3_json(a->wall_at) : json_null(),
			 "min_wall_limit_mm", ps->min_wall_limit_mm,
			 "thin_wall", ps->thin_wall,
			 "loose_shells_dropped", (json_int_t)ps->loose_shells_dropped,
			 "printable", ps->printable,
			 "analysis_ms", ps->analysis_ms);
}

static json_t *distances_json(const struct pipeline_result *res)
{
	json_t *list = json_array();

	for (size_t i = 0; i < res->ndistances; i++) {
		const struct pipeline_distance *d = &res->distances[i];
		json_array_append_new(list, json_pack("{s:s, s:s, s:f, s:o, s:o}", "a", d->a, "b", d->b,
						      "mm", d->mm, "a_lps_mm", vec3_json(d->a_lps),
						      "b_lps_mm", vec3_json(d->b_lps)));
	}
	return list;
}

static json_t *report_json(const struct pipeline_result *res)
{
	json_t *structures = json_array();
	json_t *timings = json_object();

	for (size_t i = 0; i < res->nstructures; i++) {
		const struct pipeline_structure *ps = &res->structures[i];
		json_t *s = structure_json(&ps->def);
		if (ps->mesh != NULL) {
			json_object_set_new(s, "surface", json_string(ps->grey ? "grey-level" : "mask"));
			if (ps->grey)
				json_object_set_new(s, "surface_hu", json_pack("[o,o]", hu_json(ps->range_lo),
									     hu_json(ps->range_hi)));
			json_object_set_new(s, "file", json_sprintf("%s.stl", ps->def.key));
			json_object_set_new(s, "mesh_file", json_sprintf("%s.mesh", ps->def.key));
			if (ps->stl_bytes >= 0 && ps->mesh_bytes > 0)
				json_object_set_new(s, "bytes", json_pack("{s:I, s:I}", "stl",
									  (json_int_t)ps->stl_bytes, "mesh",
									  (json_int_t)ps->mesh_bytes));
			json_object_set_new(s, "triangles", json_integer((json_int_t)ps->stats.ntri));
			json_object_set_new(s, "vertices", json_integer((json_int_t)ps->stats.nvert));
			json_object_set_new(s, "volume_ml", json_real(ps->stats.volume_ml));
			json_object_set_new(s, "area_mm2", json_real(ps->stats.area));
			json_object_set_new(s, "watertight",
					    json_boolean(ps->stats.closed && ps->stats.manifold));
			json_object_set_new(s, "euler", json_integer(ps->stats.euler));
			json_object_set_new(s, "zero_area_triangles",
					    json_integer((json_int_t)ps->stats.zero_area_tri));
			if (!(ps->stats.closed && ps->stats.manifold))
				json_object_set_new(s, "defects",
						    json_pack("{s:I, s:I, s:I}",
							      "boundary_edges", (json_int_t)ps->stats.boundary_edges,
							      "nonmanifold_edges", (json_int_t)ps->stats.nonmanifold_edges,
							      "misoriented_edges", (json_int_t)ps->stats.misoriented_edges));
			json_object_set_new(s, "centroid_lps_mm",
					    json_pack("[f,f,f]", ps->stats.centroid[0],
						      ps->stats.centroid[1], ps->stats.centroid[2]));
			if (ps->analysed) {
				json_object_set_new(s, "measurements", measurements_json(ps));
				json_object_set_new(s, "print", print_json(ps));
			}
			json_object_set_new(s, "segment_ms", json_real(ps->segment_ms));
			json_object_set_new(s, "mesh_ms", json_real(ps->mesh_ms));
			if (ps->mesh_times.decimate_target > 0) {
				const struct mesh_build_times *mt = &ps->mesh_times;
				json_t *d = json_pack("{s:I, s:b, s:b, s:s?, s:I, s:I, s:I}", "target",
						      (json_int_t)mt->decimate_target, "reached",
						      ps->mesh->ntri <= mt->decimate_target, "undecimated",
						      mt->undecimated, "fallback",
						      mt->fallback[0] != '\0' ? mt->fallback : NULL,
						      "collapses", (json_int_t)mt->decimate.collapses,
						      "pinches_split", (json_int_t)mt->decimate.pinches_split,
						      "passes", (json_int_t)mt->decimate.passes);
				if (mt->decimated)
					json_object_set_new(d, "error_mm",
							    json_pack("{s:f, s:f, s:I, s:b}", "mean",
								      mt->error.mean, "max", mt->error.max,
								      "samples", (json_int_t)mt->error.samples,
								      "exceeded", mt->error_exceeded));
				json_object_set_new(s, "decimation", d);
			}
			json_object_set_new(s, "mesh_steps_ms",
					    json_pack("{s:f, s:f, s:f, s:f, s:f}",
						      "isosurface", ps->mesh_times.isosurface_s * 1e3,
						      "smooth", ps->mesh_times.smooth_s * 1e3,
						      "decimate", ps->mesh_times.decimate_s * 1e3,
						      "decimation_error", ps->mesh_times.error_s * 1e3,
						      "check", ps->mesh_times.check_s * 1e3));
		} else {
			json_object_set_new(s, "skipped_reason", json_string(ps->skipped_reason));
		}
		json_array_append_new(structures, s);
	}
	for (int st = 0; st < PIPELINE_NSTAGES; st++)
		json_object_set_new(timings, pipeline_stage_name((enum pipeline_stage)st), json_real(res->ms[st]));
	return json_pack("{s:s, s:s, s:s, s:I, s:{s:[I,I,I], s:[f,f,f], s:[ffff ffff ffff ffff], s:I},"
			 " s:b, s:s, s:o, s:o, s:o, s:I, s:s}",
			 "series_instance_uid", res->series_uid,
			 "study_instance_uid", res->study_uid,
			 "modality", res->modality,
			 "series_in_folder", (json_int_t)res->series_in_folder,
			 "volume",
			 "dims", (json_int_t)res->dims[0], (json_int_t)res->dims[1],
			 (json_int_t)res->dims[2],
			 "spacing_mm", res->spacing_mm[0], res->spacing_mm[1], res->spacing_mm[2],
			 "affine_lps_mm",
			 res->affine[0], res->affine[1], res->affine[2], res->affine[3],
			 res->affine[4], res->affine[5], res->affine[6], res->affine[7],
			 res->affine[8], res->affine[9], res->affine[10], res->affine[11],
			 res->affine[12], res->affine[13], res->affine[14], res->affine[15],
			 "slices", (json_int_t)res->slices,
			 "contrast_enhanced", res->contrast,
			 "note", res->note,
			 "structures", structures,
			 "distances", distances_json(res),
			 "timings_ms", timings,
			 "peak_rss_bytes", (json_int_t)res->peak_rss_bytes,
			 "generator", "recon3d " R3D_VERSION);
}

bool pipeline_write_outputs(struct r3d_err *err, const char *out_dir, struct pipeline_result *res)
{
	struct mesh_obj_part parts[PIPELINE_MAX_STRUCTURES];
	size_t nparts = 0;
	char path[4096], mtl[4096], tmp[4200];
	double t = clock_mono_s();
	json_t *report = NULL;
	bool ok = false;

	if (!mkdir_p(err, out_dir))
		return false;
	for (size_t i = 0; i < res->nstructures; i++) {
		struct pipeline_structure *ps = &res->structures[i];
		if (ps->mesh == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s.stl", out_dir, ps->def.key);
		if (!mesh_stl_write(err, path, ps->mesh, ps->def.label))
			return false;
		ps->stl_bytes = report_file_bytes(path);
		snprintf(path, sizeof(path), "%s/%s.mesh", out_dir, ps->def.key);
		if (!mesh_bin_write(err, path, ps->mesh))
			return false;
		ps->mesh_bytes = report_file_bytes(path);
		parts[nparts].name = ps->def.key;
		parts[nparts].mesh = ps->mesh;
		memcpy(parts[nparts].rgb, ps->def.rgb, sizeof(parts[nparts].rgb));
		nparts++;
	}
	if (nparts > 0) {
		snprintf(path, sizeof(path), "%s/model.obj", out_dir);
		snprintf(mtl, sizeof(mtl), "%s/model.mtl", out_dir);
		if (!mesh_obj_write(err, path, mtl, parts, nparts))
			return false;
	}
	res->ms[PIPELINE_WRITE] = (clock_mono_s() - t) * 1e3;
	res->peak_rss_bytes = pipeline_peak_rss();
	report = report_json(res);
	if (report == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "cannot build report.json");
	/* Where the load stage got its files: the pre-loader or the disk. */
	json_object_set_new(report, "load", json_pack("{s:I, s:I}", "instances_preloaded",
						      (json_int_t)res->instances_preloaded,
						      "instances_read", (json_int_t)res->instances_read));
	snprintf(path, sizeof(path), "%s/report.json", out_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (json_dump_file(report, tmp, JSON_INDENT(2) | JSON_ENSURE_ASCII) != 0) {
		r3d_err_set(err, R3D_EIO, "cannot write %s", tmp);
		goto out;
	}
	if (rename(tmp, path) != 0) {
		r3d_err_set(err, R3D_EIO, "cannot rename %s", tmp);
		unlink(tmp);
		goto out;
	}
	ok = true;
out:
	json_decref(report);
	return ok;
}
