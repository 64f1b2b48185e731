/*
 * main.c: recon3d-phantom, writes a synthetic CT series of known geometry
 * (one CT Image Storage file per slice) and its analytic truth (truth.json)
 * into a folder. Used by tests and benchmarks. The main thread parses the
 * options and starts --threads workers; each worker renders and writes every
 * N-th slice through the bridge.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/bridge.h"
#include "r3d/phantom.h"
#include "r3d/util.h"

#define PHANTOM_MAX_THREADS 16
#define PHANTOM_MAX_SKIPS 64
#define PHANTOM_STORED_OFFSET 1024   /* unsigned stored value = HU + 1024 */
#define PHANTOM_BITS_UNSIGNED 12

struct options {
	const char *out;
	struct phantom_request req;
	enum bridge_ts ts;
	bool is_signed;
	bool enhanced;           /* one Enhanced CT multi-frame file instead of one file per slice */
	const char *patient_name;
	long threads;
	size_t nskips;
	long skips[PHANTOM_MAX_SKIPS];
};

struct job {
	const struct options *opt;
	const struct phantom *ph;
	char study_uid[BRIDGE_UID_MAX + 1];
	char series_uid[BRIDGE_UID_MAX + 1];
	char frame_uid[BRIDGE_UID_MAX + 1];
	uint16_t *frames;        /* enhanced: every slice's stored values, rendered by the workers */
	pthread_mutex_t lock;
	bool failed;             /* under lock */
	struct r3d_err err;      /* the first failure, under lock */
};

struct worker {
	struct job *job;
	long index;
	pthread_t tid;
};

static void usage(FILE *f)
{
	fputs("usage: recon3d-phantom --out DIR [options]\n"
	      "  --out DIR             folder to write (created); slices as DIR/slice_NNNN.dcm,\n"
	      "                        analytic truth as DIR/truth.json\n"
	      "  --size N              rows = columns = N (default 256)\n"
	      "  --rows N --columns N  non-square slices\n"
	      "  --slices N            number of slices (default 128)\n"
	      "  --spacing X,Y,Z       column spacing, row spacing, slice step in mm (default 0.8,0.8,1.5)\n"
	      "  --ts NAME             implicit|explicit|big|deflate|rle|jpegll|jpegls|j2k|j2k-lossy\n"
	      "                        (default explicit)\n"
	      "  --geometry KIND       axial|oblique|tilt (default axial)\n"
	      "  --angle DEG           oblique rotation or gantry tilt, 0..45 (default 15)\n"
	      "  --center L,P,S        scene and grid centre in LPS mm (default 12.5,-20,35)\n"
	      "  --signed              signed pixels holding HU (default: unsigned 12 bits, intercept -1024)\n"
	      "  --enhanced            one Enhanced CT multi-frame file DIR/enhanced.dcm instead\n"
	      "  --skip K              leave out slice K (0-based; repeatable) to make gaps\n"
	      "  --uneven F            move odd slices by F steps (0..0.45): gaps alternate 1+F, 1-F\n"
	      "  --patient NAME        synthetic patient name (default PHANTOM^ONE)\n"
	      "  --threads N           worker threads (default 2)\n", f);
}

static bool parse_triple(struct r3d_err *err, const char *s, double min, double max, double out[3])
{
	char buf[128];
	char *parts[3];
	char *save = NULL;

	if (strlen(s) >= sizeof(buf))
		return r3d_err_set(err, R3D_EINVAL, "'%s' is too long", s);
	strcpy(buf, s);
	parts[0] = strtok_r(buf, ",", &save);
	parts[1] = strtok_r(NULL, ",", &save);
	parts[2] = strtok_r(NULL, ",", &save);
	if (parts[0] == NULL || parts[1] == NULL || parts[2] == NULL ||
	    strtok_r(NULL, ",", &save) != NULL)
		return r3d_err_set(err, R3D_EINVAL, "'%s' is not three numbers X,Y,Z", s);
	for (int i = 0; i < 3; i++)
		if (!parse_double(err, parts[i], min, max, &out[i]))
			return false;
	return true;
}

static bool options_parse(struct r3d_err *err, int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"out", required_argument, NULL, 'o'},     {"size", required_argument, NULL, 'n'},
		{"rows", required_argument, NULL, 'r'},    {"columns", required_argument, NULL, 'c'},
		{"slices", required_argument, NULL, 's'},  {"spacing", required_argument, NULL, 'p'},
		{"ts", required_argument, NULL, 't'},      {"geometry", required_argument, NULL, 'g'},
		{"angle", required_argument, NULL, 'a'},   {"center", required_argument, NULL, 'C'},
		{"signed", no_argument, NULL, 'S'},        {"skip", required_argument, NULL, 'k'},
		{"patient", required_argument, NULL, 'P'}, {"threads", required_argument, NULL, 'j'},
		{"enhanced", no_argument, NULL, 'E'},      {"uneven", required_argument, NULL, 'U'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	long v;
	int c;

	memset(o, 0, sizeof(*o));
	o->req.columns = 256;
	o->req.rows = 256;
	o->req.slices = 128;
	o->req.spacing[0] = 0.8;
	o->req.spacing[1] = 0.8;
	o->req.spacing[2] = 1.5;
	o->req.geometry = PHANTOM_AXIAL;
	o->req.angle_deg = 15.0;
	o->req.center[0] = 12.5;
	o->req.center[1] = -20.0;
	o->req.center[2] = 35.0;
	o->ts = BRIDGE_TS_EXPLICIT_LE;
	o->patient_name = "PHANTOM^ONE";
	o->threads = 2;
	opterr = 0;  /* one message of ours, not getopt's */
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			o->out = optarg;
			break;
		case 'n':
		case 'r':
		case 'c':
			if (!parse_long(err, optarg, 8, PHANTOM_MAX_DIM, &v))
				return r3d_err_prefix(err, "--size/--rows/--columns");
			if (c != 'c')
				o->req.rows = (uint32_t)v;
			if (c != 'r')
				o->req.columns = (uint32_t)v;
			break;
		case 's':
			if (!parse_long(err, optarg, 2, PHANTOM_MAX_SLICES, &v))
				return r3d_err_prefix(err, "--slices");
			o->req.slices = (uint32_t)v;
			break;
		case 'p':
			if (!parse_triple(err, optarg, 0.01, 100.0, o->req.spacing))
				return r3d_err_prefix(err, "--spacing");
			break;
		case 't':
			if (!bridge_ts_parse(err, optarg, &o->ts))
				return r3d_err_prefix(err, "--ts");
			break;
		case 'g':
			if (strcmp(optarg, "axial") == 0)
				o->req.geometry = PHANTOM_AXIAL;
			else if (strcmp(optarg, "oblique") == 0)
				o->req.geometry = PHANTOM_OBLIQUE;
			else if (strcmp(optarg, "tilt") == 0)
				o->req.geometry = PHANTOM_TILT;
			else
				return r3d_err_set(err, R3D_EINVAL,
						   "--geometry: '%s' is not axial, oblique or tilt", optarg);
			break;
		case 'a':
			if (!parse_double(err, optarg, 0.0, PHANTOM_MAX_ANGLE_DEG, &o->req.angle_deg))
				return r3d_err_prefix(err, "--angle");
			break;
		case 'C':
			if (!parse_triple(err, optarg, -1e4, 1e4, o->req.center))
				return r3d_err_prefix(err, "--center");
			break;
		case 'S':
			o->is_signed = true;
			break;
		case 'E':
			o->enhanced = true;
			break;
		case 'U':
			if (!parse_double(err, optarg, 0.0, PHANTOM_MAX_UNEVEN, &o->req.uneven))
				return r3d_err_prefix(err, "--uneven");
			break;
		case 'k':
			if (o->nskips >= PHANTOM_MAX_SKIPS)
				return r3d_err_set(err, R3D_EINVAL, "--skip: at most %d", PHANTOM_MAX_SKIPS);
			if (!parse_long(err, optarg, 0, PHANTOM_MAX_SLICES - 1, &o->skips[o->nskips]))
				return r3d_err_prefix(err, "--skip");
			o->nskips++;
			break;
		case 'P':
			if (strlen(optarg) > 64)
				return r3d_err_set(err, R3D_EINVAL, "--patient: at most 64 characters");
			o->patient_name = optarg;
			break;
		case 'j':
			if (!parse_long(err, optarg, 1, PHANTOM_MAX_THREADS, &o->threads))
				return r3d_err_prefix(err, "--threads");
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			if (optopt != 0 && optopt != '?')
				return r3d_err_set(err, R3D_EINVAL, "option needs a value or is unknown "
						   "(see --help)");
			return r3d_err_set(err, R3D_EINVAL, "unknown option '%s' (see --help)",
					   argv[optind - 1]);
		}
	}
	if (optind != argc)
		return r3d_err_set(err, R3D_EINVAL, "unexpected argument '%s'", argv[optind]);
	if (o->out == NULL)
		return r3d_err_set(err, R3D_EINVAL, "--out DIR is required");
	return true;
}

static bool slice_skipped(const struct options *o, uint32_t k)
{
	for (size_t i = 0; i < o->nskips; i++)
		if (o->skips[i] == (long)k)
			return true;
	return false;
}

/* Renders slice k and converts it to stored values. */
static void slice_render(const struct job *job, uint32_t k, int16_t *hu, uint16_t *stored)
{
	size_t npix = (size_t)job->ph->req.rows * job->ph->req.columns;

	phantom_render_slice(job->ph, k, hu);
	for (size_t i = 0; i < npix; i++) {
		if (job->opt->is_signed) {
			stored[i] = (uint16_t)hu[i];
		} else {
			long v = (long)hu[i] + PHANTOM_STORED_OFFSET;
			stored[i] = (uint16_t)(v < 0 ? 0 : v > 4095 ? 4095 : v);
		}
	}
}

/* The header of slice k; sop_uid must outlive img. */
static void slice_image(const struct job *job, uint32_t k, const uint16_t *stored,
			const char *sop_uid, struct bridge_ct_image *img)
{
	const struct options *o = job->opt;
	const struct phantom *ph = job->ph;

	memset(img, 0, sizeof(*img));
	img->patient_name = o->patient_name;
	img->patient_id = "PHANTOM1";
	img->study_uid = job->study_uid;
	img->series_uid = job->series_uid;
	img->sop_instance_uid = sop_uid;
	img->frame_of_reference_uid = job->frame_uid;
	img->study_date = "20260101";
	img->study_time = "120000";
	img->study_id = "1";
	img->series_description = "recon3d phantom";
	img->manufacturer = "recon3d";
	img->series_number = 1;
	img->instance_number = (long)k + 1;
	img->rows = ph->req.rows;
	img->columns = ph->req.columns;
	phantom_slice_position(ph, k, img->position);
	memcpy(img->orientation, ph->row_dir, sizeof(ph->row_dir));
	memcpy(img->orientation + 3, ph->col_dir, sizeof(ph->col_dir));
	img->pixel_spacing[0] = ph->req.spacing[1];
	img->pixel_spacing[1] = ph->req.spacing[0];
	img->slice_thickness = ph->req.spacing[2];
	img->gantry_tilt_deg = ph->tilt_deg;
	img->bits_stored = o->is_signed ? 16 : PHANTOM_BITS_UNSIGNED;
	img->is_signed = o->is_signed;
	img->rescale_slope = 1.0;
	img->rescale_intercept = o->is_signed ? 0.0 : -(double)PHANTOM_STORED_OFFSET;
	img->pixels = stored;
}

static bool slice_write(struct r3d_err *err, struct job *job, uint32_t k, int16_t *hu,
			uint16_t *stored)
{
	char sop_uid[BRIDGE_UID_MAX + 1];
	char path[PATH_MAX];
	struct bridge_ct_image img;
	size_t npix = (size_t)job->ph->req.rows * job->ph->req.columns;

	if (job->opt->enhanced) {
		slice_render(job, k, hu, job->frames + (size_t)k * npix);
		return true;
	}
	slice_render(job, k, hu, stored);
	bridge_uid_generate(sop_uid);
	slice_image(job, k, stored, sop_uid, &img);
	if (snprintf(path, sizeof(path), "%s/slice_%04u.dcm", job->opt->out, k + 1) >=
	    (int)sizeof(path))
		return r3d_err_set(err, R3D_EINVAL, "output path too long");
	return bridge_ct_write(err, path, &img, job->opt->ts);
}

/* Enhanced CT: every kept slice as a frame of one file. */
static bool enhanced_write(struct r3d_err *err, struct job *job)
{
	const struct options *o = job->opt;
	size_t npix = (size_t)job->ph->req.rows * job->ph->req.columns, n = 0;
	struct bridge_ct_image *imgs = calloc(job->ph->req.slices, sizeof(*imgs));
	char sop_uid[BRIDGE_UID_MAX + 1];
	char path[PATH_MAX];
	bool ok = false;

	if (imgs == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "out of memory");
		goto out;
	}
	bridge_uid_generate(sop_uid);
	for (uint32_t k = 0; k < job->ph->req.slices; k++)
		if (!slice_skipped(o, k))
			slice_image(job, k, job->frames + (size_t)k * npix, sop_uid, &imgs[n++]);
	if (snprintf(path, sizeof(path), "%s/enhanced.dcm", o->out) >= (int)sizeof(path)) {
		r3d_err_set(err, R3D_EINVAL, "output path too long");
		goto out;
	}
	ok = bridge_ct_write_enhanced(err, path, imgs, n, o->ts);
out:
	free(imgs);
	return ok;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct job *job = w->job;
	size_t npix = (size_t)job->ph->req.rows * job->ph->req.columns;
	int16_t *hu = malloc(npix * sizeof(*hu));
	uint16_t *stored = malloc(npix * sizeof(*stored));
	struct r3d_err err = {0};
	bool ok = true;

	if (hu == NULL || stored == NULL) {
		ok = r3d_err_set(&err, R3D_ENOMEM, "out of memory for a slice");
		goto out;
	}
	for (uint32_t k = (uint32_t)w->index; k < job->ph->req.slices; k += (uint32_t)job->opt->threads) {
		bool stop;
		pthread_mutex_lock(&job->lock);
		stop = job->failed;
		pthread_mutex_unlock(&job->lock);
		if (stop)
			break;
		if (slice_skipped(job->opt, k))
			continue;
		if (!slice_write(&err, job, k, hu, stored)) {
			ok = false;
			break;
		}
	}
out:
	if (!ok) {
		pthread_mutex_lock(&job->lock);
		if (!job->failed)
			job->err = err;
		job->failed = true;
		pthread_mutex_unlock(&job->lock);
	}
	free(stored);
	free(hu);
	return NULL;
}

int main(int argc, char **argv)
{
	struct options opt;
	struct phantom *ph = NULL;
	struct job job;
	struct worker workers[PHANTOM_MAX_THREADS];
	struct r3d_err err = {0};
	char path[PATH_MAX];
	long started = 0;
	int status = 1;

	memset(&job, 0, sizeof(job));
	pthread_mutex_init(&job.lock, NULL);
	if (!options_parse(&err, argc, argv, &opt))
		goto out;
	ph = malloc(sizeof(*ph));
	if (ph == NULL) {
		r3d_err_set(&err, R3D_ENOMEM, "out of memory");
		goto out;
	}
	if (!phantom_init(&err, ph, &opt.req) || !mkdir_p(&err, opt.out))
		goto out;
	job.opt = &opt;
	job.ph = ph;
	if (opt.enhanced) {
		size_t bytes;
		if (!size_mul3((size_t)opt.req.rows * opt.req.columns, opt.req.slices, sizeof(uint16_t),
			       &bytes)) {
			r3d_err_set(&err, R3D_EINVAL, "volume too large");
			goto out;
		}
		job.frames = malloc(bytes);
		if (job.frames == NULL) {
			r3d_err_set(&err, R3D_ENOMEM, "out of memory for %zu bytes of frames", bytes);
			goto out;
		}
	}
	bridge_uid_generate(job.study_uid);
	bridge_uid_generate(job.series_uid);
	bridge_uid_generate(job.frame_uid);
	for (long t = 0; t < opt.threads; t++) {
		workers[t].job = &job;
		workers[t].index = t;
		if (pthread_create(&workers[t].tid, NULL, worker_run, &workers[t]) != 0) {
			pthread_mutex_lock(&job.lock);
			if (!job.failed)
				r3d_err_set(&job.err, R3D_ENOMEM, "cannot start a thread");
			job.failed = true;
			pthread_mutex_unlock(&job.lock);
			break;
		}
		started++;
	}
	for (long t = 0; t < started; t++)
		pthread_join(workers[t].tid, NULL);
	if (job.failed) {
		err = job.err;
		goto out;
	}
	if (opt.enhanced && !enhanced_write(&err, &job))
		goto out;
	if (snprintf(path, sizeof(path), "%s/truth.json", opt.out) >= (int)sizeof(path)) {
		r3d_err_set(&err, R3D_EINVAL, "output path too long");
		goto out;
	}
	if (!phantom_truth_write(&err, ph, path, job.series_uid, bridge_ts_name(opt.ts)))
		goto out;
	status = 0;
out:
	if (status != 0 && err.code != R3D_OK)
		fprintf(stderr, "recon3d-phantom: %s\n", err.msg);
	free(job.frames);
	free(ph);
	pthread_mutex_destroy(&job.lock);
	return status;
}
