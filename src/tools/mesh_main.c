/*
 * mesh_main.c: recon3d-mesh, the offline command. Runs the same pipeline as
 * the daemon's workers on a folder of DICOM files:
 *
 *   recon3d-mesh DICOM_DIR -o OUT_DIR [--config FILE] [--structures LIST]
 *                [--structure KEY:MIN:MAX]... [--threshold HU] [--series UID]
 *                [--interpolate-gaps] [--no-smooth] [--no-decimate] [--error-target MM]
 *                [--mask-surfaces] [--threads N] [--save-volume FILE]
 *                [--save-masks DIR] [--dicom-seg FILE]
 *   recon3d-mesh [--config FILE] [--structure ...] --list-structures
 *
 * The structures are the daemon's catalogue (r3d/structure.h): the built-in
 * presets, a config file's [structure KEY] sections, and --structure.
 * Writes OUT_DIR/<key>.stl, model.obj, model.mtl and report.json;
 * --dicom-seg also the meshed masks as a binary DICOM Segmentation of the
 * source series (the same object the daemon sends back to the PACS).
 * Exit status 0 on success, 1 with one clear message when the input is
 * refused or a stage fails, 2 for a usage error. Main thread only.
 */
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "r3d/bridge.h"
#include "r3d/config.h"
#include "r3d/pipeline.h"
#include "r3d/util.h"


static void usage(FILE *out)
{
	fprintf(out,
		"usage: recon3d-mesh DICOM_DIR -o OUT_DIR [options]\n"
		"  -o, --output DIR        where the models go (created)\n"
		"  --config FILE           take the structures of a recon3d config file's\n"
		"                          [structure KEY] sections (nothing else of it)\n"
		"  --structures LIST       comma-separated keys of the catalogue to make\n"
		"                          (default: every enabled one; see --list-structures)\n"
		"  --structure KEY:MIN:MAX a structure of the voxels in [MIN, MAX] HU (either may\n"
		"                          be empty), or a new range for an existing key; may\n"
		"                          repeat; only these are made unless --structures names more\n"
		"  --threshold HU          the same as --structure custom:HU:\n"
		"  --list-structures       print the catalogue and exit\n"
		"  --segmentation FILE     a DICOM Segmentation or RT Structure Set made on the\n"
		"                          series: one model per segment or ROI, with its own\n"
		"                          label, colour and codes (only these are made unless\n"
		"                          --structures or --structure name catalogue entries)\n"
		"  --labels FILE           a NIfTI label map (.nii, .nii.gz) on the series: one\n"
		"                          model per label present, placed by its affine\n"
		"  --label-table FILE      its labels (JSON: value -> name, color, codes; default:\n"
		"                          TotalSegmentator's class names and SNOMED codes)\n"
		"  --series UID            the series to use when the folder holds several\n"
		"                          (default: the largest CT series)\n"
		"  --interpolate-gaps      resample across missing slices instead of refusing\n"
		"  --save-volume FILE      also write the HU volume (int16, x fastest; dims in report.json)\n"
		"  --save-masks DIR        also write each meshed structure's mask on the volume grid\n"
		"                          as DIR/<name>.raw (uint8 0/1, x fastest; dims, affine in\n"
		"                          report.json)\n"
		"  --dicom-seg FILE        also write the meshed masks as a binary DICOM Segmentation\n"
		"                          on the source slices (series 9080 '3D model: segmentation')\n"
		"  --no-smooth             raw isosurface, no smoothing\n"
		"  --no-decimate           keep every triangle\n"
		"  --error-target MM       below each structure's max_triangles, decimate on while\n"
		"                          each collapse stays within MM of the surface it replaces\n"
		"                          (default 0.05, or [mesh] error_target_mm of --config;\n"
		"                          0: keep max_triangles)\n"
		"  --mask-surfaces         mesh each structure from its binary mask alone, not from\n"
		"                          the CT's grey levels (for comparisons: half a voxel off)\n"
		"  --threads N             worker threads (default: online CPUs)\n"
		"print readiness (docs/printing.md; defaults from --config's [print] section):\n"
		"  --min-wall-mm MM        flag walls thinner than this (default 1.0)\n"
		"  --min-shell-ml ML       loose shells below this are dropped with\n"
		"                          --drop-loose-shells (default 0.1)\n"
		"  --drop-loose-shells     remove them from the models\n"
		"  --distances LIST        structure pairs to measure, e.g. bone:skin,a:b\n"
		"  --no-print              skip the print-readiness analysis\n");
}

struct progress_state {
	bool tty;
	double t0;
};

static void on_progress(void *ctx, enum pipeline_stage stage, const char *what)
{
	struct progress_state *p = ctx;

	if (!p->tty)
		return;
	fprintf(stderr, "recon3d-mesh: [%d/%d] %-7s %s (%.1f s)\n", (int)stage + 1, PIPELINE_NSTAGES,
		pipeline_stage_name(stage), what, clock_mono_s() - p->t0);
}

/* The file of the source series that holds a given SOP instance (nftw
 * has no context argument: one search at a time, main thread). */
static struct {
	const char *uid;
	char path[PATH_MAX];
} find_state;

static int find_visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	struct bridge_instance_attrs a;
	struct r3d_err err;

	(void)st;
	(void)ftw;
	if (type != FTW_F || !bridge_read_instance_attrs(&err, path, &a))
		return 0;
	if (strcmp(a.sop_instance_uid, find_state.uid) != 0)
		return 0;
	snprintf(find_state.path, sizeof(find_state.path), "%s", path);
	return 1;
}

/* --dicom-seg: the Segmentation of the masks the meshes were made from,
 * identified like the daemon's (UIDs derived from the source series). */
static bool write_dicom_seg(struct r3d_err *err, const char *dicom_dir,
			    const struct pipeline_result *res, const char *path)
{
	struct bridge_export_info info;
	char series_uid[BRIDGE_UID_MAX + 1], sop_uid[BRIDGE_UID_MAX + 1];
	const char *root;
	double t0 = clock_mono_s();

	if (res->seg.nslices == 0)
		return r3d_err_set(err, R3D_EINVAL, "--dicom-seg: no masks kept");
	find_state.uid = res->seg.slices[0].sop_instance_uid;
	find_state.path[0] = '\0';
	if (nftw(dicom_dir, find_visit, 16, FTW_PHYS) != 1 || find_state.path[0] == '\0')
		return r3d_err_set(err, R3D_EIO, "--dicom-seg: the file of instance %s is not in '%s'",
				   find_state.uid, dicom_dir);
	root = bridge_uid_valid(res->series_uid) ? res->series_uid : res->seg.slices[0].sop_instance_uid;
	if (!bridge_uid_derive(err, root, "recon3d-mesh segmentation series", series_uid) ||
	    !bridge_uid_derive(err, root, "recon3d-mesh segmentation instance", sop_uid))
		return false;
	memset(&info, 0, sizeof(info));
	info.source_path = find_state.path;
	info.series_uid = series_uid;
	info.series_number = 9080;
	info.series_description = "3D model: segmentation";
	info.sop_instance_uid = sop_uid;
	info.instance_number = 1;
	if (!pipeline_write_segmentation(err, res, &info, path))
		return false;
	fprintf(stderr, "recon3d-mesh: segmentation %s written in %.0f ms%s\n", path,
		(clock_mono_s() - t0) * 1e3,
		res->seg.mapped ? " (masks mapped from the resampled volume to the source slices)" : "");
	return true;
}

int main(int argc, char **argv)
{
	enum { OPT_STRUCTURES = 1000, OPT_STRUCTURE, OPT_LIST, OPT_CONFIG, OPT_THRESHOLD, OPT_SERIES, OPT_NO_SMOOTH, OPT_NO_DECIMATE, OPT_MASK_SURFACES,
	       OPT_THREADS, OPT_INTERPOLATE, OPT_SAVE_VOLUME, OPT_SAVE_MASKS, OPT_DICOM_SEG, OPT_SEGMENTATION, OPT_LABELS, OPT_LABEL_TABLE,
	       OPT_ERROR_TARGET, OPT_MIN_WALL, OPT_MIN_SHELL, OPT_DROP_SHELLS, OPT_DISTANCES,
	       OPT_NO_PRINT };
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},
		{"structures", required_argument, NULL, OPT_STRUCTURES},
		{"structure", required_argument, NULL, OPT_STRUCTURE},
		{"list-structures", no_argument, NULL, OPT_LIST},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"threshold", required_argument, NULL, OPT_THRESHOLD},
		{"series", required_argument, NULL, OPT_SERIES},
		{"interpolate-gaps", no_argument, NULL, OPT_INTERPOLATE},
		{"save-volume", required_argument, NULL, OPT_SAVE_VOLUME},
		{"save-masks", required_argument, NULL, OPT_SAVE_MASKS},
		{"dicom-seg", required_argument, NULL, OPT_DICOM_SEG},
		{"segmentation", required_argument, NULL, OPT_SEGMENTATION},
		{"labels", required_argument, NULL, OPT_LABELS},
		{"label-table", required_argument, NULL, OPT_LABEL_TABLE},
		{"no-smooth", no_argument, NULL, OPT_NO_SMOOTH},
		{"no-decimate", no_argument, NULL, OPT_NO_DECIMATE},
		{"error-target", required_argument, NULL, OPT_ERROR_TARGET},
		{"mask-surfaces", no_argument, NULL, OPT_MASK_SURFACES},
		{"threads", required_argument, NULL, OPT_THREADS},
		{"min-wall-mm", required_argument, NULL, OPT_MIN_WALL},
		{"min-shell-ml", required_argument, NULL, OPT_MIN_SHELL},
		{"drop-loose-shells", no_argument, NULL, OPT_DROP_SHELLS},
		{"distances", required_argument, NULL, OPT_DISTANCES},
		{"no-print", no_argument, NULL, OPT_NO_PRINT},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct pipeline_result res;
	struct pipeline_options o;
	struct progress_state prog = {isatty(STDERR_FILENO) != 0, clock_mono_s()};
	struct r3d_err err;
	static struct config cfg;
	const char *out_dir = NULL, *dicom_seg = NULL, *only = NULL, *config_path = NULL;
	bool error_target_set = false;
	const char *added[STRUCTURE_MAX];
	char threshold_spec[64];
	size_t nadded = 0;
	bool list = false, cli_drop = false;
	double cli_min_wall = -1, cli_min_shell = -1;
	const char *cli_distances = NULL;
	long v;
	int c;

	pipeline_options_default(&o);
	o.progress = on_progress;
	o.progress_ctx = &prog;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out_dir = optarg;
			break;
		case OPT_STRUCTURES:
			only = optarg;
			break;
		case OPT_STRUCTURE:
		case OPT_THRESHOLD:
			if (nadded == STRUCTURE_MAX) {
				fprintf(stderr, "recon3d-mesh: more than %d structures\n", STRUCTURE_MAX);
				return 2;
			}
			if (c == OPT_THRESHOLD) {
				if (!parse_long(&err, optarg, STRUCTURE_HU_MIN, STRUCTURE_HU_MAX, &v)) {
					fprintf(stderr, "recon3d-mesh: --threshold: %s\n", err.msg);
					return 2;
				}
				snprintf(threshold_spec, sizeof(threshold_spec), "custom:%ld:", v);
				added[nadded++] = threshold_spec;
			} else {
				added[nadded++] = optarg;
			}
			break;
		case OPT_LIST:
			list = true;
			break;
		case OPT_CONFIG:
			config_path = optarg;
			break;
		case OPT_SERIES:
			o.series_uid = optarg;
			break;
		case OPT_SEGMENTATION:
			o.segmentation = optarg;
			break;
		case OPT_LABELS:
			o.labels = optarg;
			break;
		case OPT_LABEL_TABLE:
			o.label_table = optarg;
			break;
		case OPT_SAVE_VOLUME:
			o.save_volume = optarg;
			break;
		case OPT_SAVE_MASKS:
			o.save_masks = optarg;
			break;
		case OPT_DICOM_SEG:
			dicom_seg = optarg;
			o.keep_masks = true;
			break;
		case OPT_INTERPOLATE:
			o.interpolate_gaps = true;
			break;
		case OPT_NO_SMOOTH:
			o.smooth = false;
			break;
		case OPT_NO_DECIMATE:
			o.decimate = false;
			break;
		case OPT_ERROR_TARGET:
			if (!parse_double(&err, optarg, 0, 10, &o.error_target_mm)) {
				fprintf(stderr, "recon3d-mesh: --error-target: %s\n", err.msg);
				return 2;
			}
			error_target_set = true;
			break;
		case OPT_MASK_SURFACES:
			o.mask_surfaces = true;
			break;
		case OPT_THREADS:
			if (!parse_long(&err, optarg, 1, MESH_MAX_THREADS, &v)) {
				fprintf(stderr, "recon3d-mesh: --threads: %s\n", err.msg);
				return 2;
			}
			o.threads = (int)v;
			break;
		case OPT_MIN_WALL:
		case OPT_MIN_SHELL: {
			char *end = NULL;
			double x = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || !(x >= 0 && x <= 1000)) {
				fprintf(stderr, "recon3d-mesh: --%s: '%s' is not a number from 0 to 1000\n",
					c == OPT_MIN_WALL ? "min-wall-mm" : "min-shell-ml", optarg);
				return 2;
			}
			*(c == OPT_MIN_WALL ? &cli_min_wall : &cli_min_shell) = x;
			break;
		}
		case OPT_DROP_SHELLS:
			cli_drop = true;
			break;
		case OPT_DISTANCES:
			cli_distances = optarg;
			break;
		case OPT_NO_PRINT:
			o.print.off = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	/* The catalogue: built in, then the config's sections, then the
	 * command line's; only what was added, or what --structures names. */
	config_defaults(&cfg);
	if (config_path != NULL && !config_load(&err, config_path, &cfg)) {
		fprintf(stderr, "recon3d-mesh: %s\n", err.msg);
		return 2;
	}
	o.catalog = cfg.structures;
	if (config_path != NULL && !error_target_set)
		o.error_target_mm = cfg.mesh_error_target_mm;
	if (config_path != NULL)
		o.max_error_mm = cfg.mesh_max_error_mm;
	o.print.min_wall_mm = cli_min_wall >= 0 ? cli_min_wall : cfg.print_min_wall_mm;
	o.print.min_shell_ml = cli_min_shell >= 0 ? cli_min_shell : cfg.print_min_shell_ml;
	o.print.drop_loose_shells = cli_drop || cfg.print_drop_loose_shells;
	if (cli_distances != NULL) {
		struct structure_pair pairs[STRUCTURE_PAIRS_MAX];
		size_t npairs;
		if (!structure_pairs_parse(&err, cli_distances, pairs, STRUCTURE_PAIRS_MAX, &npairs)) {
			fprintf(stderr, "recon3d-mesh: --distances: %s\n", err.msg);
			return 2;
		}
	}
	snprintf(o.print.distances, sizeof(o.print.distances), "%s",
		 cli_distances != NULL ? cli_distances : cfg.print_distances);
	bool given[STRUCTURE_MAX] = {false};
	for (size_t i = 0; i < nadded; i++) {
		const struct structure_def *d = NULL;
		if (!structure_catalog_parse_cli(&err, &o.catalog, added[i], &d)) {
			fprintf(stderr, "recon3d-mesh: %s\n", err.msg);
			return 2;
		}
		given[d - o.catalog.def] = true;
	}
	for (size_t i = 0; only == NULL && nadded > 0 && i < o.catalog.n; i++)
		o.catalog.def[i].enabled = given[i];
	for (size_t i = 0; (o.segmentation != NULL || o.labels != NULL) && only == NULL && nadded == 0 && i < o.catalog.n; i++)
		o.catalog.def[i].enabled = false;   /* the object's segments only */
	if (only != NULL && !structure_catalog_enable_only(&err, &o.catalog, only)) {
		fprintf(stderr, "recon3d-mesh: --structures: %s\n", err.msg);
		return 2;
	}
	if (list) {
		structure_catalog_print(stdout, &o.catalog);
		return 0;
	}
	if (optind != argc - 1 || out_dir == NULL) {
		usage(stderr);
		return 2;
	}
	if (!bridge_init(&err)) {
		fprintf(stderr, "recon3d-mesh: %s\n", err.msg);
		return 1;
	}
	if (!pipeline_run_dir(&err, argv[optind], &o, &res)) {
		fprintf(stderr, "recon3d-mesh: %s\n", err.msg);
		bridge_cleanup();
		return 1;
	}
	if (res.note[0] != '\0')
		fprintf(stderr, "recon3d-mesh: note: %s\n", res.note);
	on_progress(&prog, PIPELINE_WRITE, out_dir);
	if (!pipeline_write_outputs(&err, out_dir, &res)) {
		fprintf(stderr, "recon3d-mesh: %s\n", err.msg);
		pipeline_result_free(&res);
		bridge_cleanup();
		return 1;
	}
	if (dicom_seg != NULL && !write_dicom_seg(&err, argv[optind], &res, dicom_seg)) {
		fprintf(stderr, "recon3d-mesh: %s\n", err.msg);
		pipeline_result_free(&res);
		bridge_cleanup();
		return 1;
	}
	for (size_t i = 0; i < res.nstructures; i++) {
		const struct pipeline_structure *ps = &res.structures[i];
		if (ps->mesh == NULL)
			printf("%-8s skipped: %s\n", ps->def.key, ps->skipped_reason);
		else
			printf("%-8s %9zu triangles %10.1f mL %s\n", ps->def.key, ps->stats.ntri,
			       ps->stats.volume_ml, ps->stats.closed && ps->stats.manifold ?
			       "watertight" : "NOT watertight");
		if (ps->mesh != NULL && ps->analysed)
			printf("%-8s %s: %zu shells, %zu self-intersections, min wall %.2f mm%s, "
			       "extents %.1f x %.1f x %.1f mm, %.0f ms\n", "", ps->printable ?
			       "printable" : "NOT printable", ps->analysis.nshells,
			       ps->analysis.self_intersections, ps->analysis.min_wall,
			       ps->thin_wall ? " (thin)" : "", ps->analysis.extents[0],
			       ps->analysis.extents[1], ps->analysis.extents[2], ps->analysis_ms);
	}
	for (size_t i = 0; i < res.ndistances; i++)
		printf("distance %s:%s %.2f mm\n", res.distances[i].a, res.distances[i].b,
		       res.distances[i].mm);
	printf("total    %.0f ms, peak RSS %.0f MiB\n",
	       res.ms[PIPELINE_SCAN] + res.ms[PIPELINE_LOAD] + res.ms[PIPELINE_VOLUME] +
		       res.ms[PIPELINE_SEGMENT] + res.ms[PIPELINE_MESH] + res.ms[PIPELINE_WRITE],
	       (double)res.peak_rss_bytes / (1024.0 * 1024.0));
	pipeline_result_free(&res);
	bridge_cleanup();
	return 0;
}
