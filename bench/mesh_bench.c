/*
 * mesh_bench.c: benchmark of the mesh core (bench/mesh-core), driven by
 * bench/mesh_core.py, which times VTK on the same volume.
 *
 * Builds a 512x512x400 int16 CT-like volume in memory (x fastest, voxel
 * index frame): air at -1000, a body-like elliptic cylinder of soft tissue
 * with rib-like banded bony shells, a spine and two femur-like bones at
 * cortical density, with smooth (partial-volume) edges. Then times:
 *   - mesh_isosurface() at iso 299.5 with 1 and 2 threads (median of N
 *     after one warm-up run), with fresh scratch per call (the figure
 *     compared with VTK) and with the job's scratch reused;
 *   - mesh_smooth() with its defaults (one run);
 *   - mesh_decimate() to 10 % with 1 and 2 threads against meshopt_simplify
 *     alone on the same raw mesh (median of 3 after a warm-up: each run takes seconds).
 * Prints "key value" lines, including user/sys CPU time and peak RSS.
 * Usage: mesh_bench [--raw OUT.raw] [--reps N] [--no-decimate]
 * Single-threaded driver; the isosurface starts its own threads.
 */
#include <math.h>
#include <meshoptimizer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "r3d/mesh.h"
#include "r3d/util.h"

#define BENCH_NX 512
#define BENCH_NY 512
#define BENCH_NZ 400
#define BENCH_ISO 299.5
#define BENCH_MAX_REPS 50
#define BENCH_DECIMATE_REPS 3
#define BENCH_DECIMATE_ERROR 0.01f

/* Smooth step from 0 to 1 over one voxel around d = 0 (d < 0 inside). */
static double bench_edge(double d)
{
	if (d <= -0.5)
		return 1.0;
	if (d >= 0.5)
		return 0.0;
	return 0.5 - d;
}

/* Signed distance (approximate, in voxels) to an axis-aligned ellipse in
 * the xy plane with semi-axes a, b centred at (cx, cy). */
static double bench_ellipse_d(double x, double y, double cx, double cy, double a, double b)
{
	double u = (x - cx) / a, v = (y - cy) / b;
	double r = sqrt(u * u + v * v);
	double g = sqrt((u / a) * (u / a) + (v / b) * (v / b)); /* |grad r| */
	return r > 0.0 ? (r - 1.0) / g : -fmin(a, b);
}

static void bench_volume(int16_t *vol)
{
	const double cx = 255.5, cy = 260.0;
	double sx[BENCH_NX];

	for (size_t x = 0; x < BENCH_NX; x++)
		sx[x] = sin((double)x * 0.21);

	for (size_t z = 0; z < BENCH_NZ; z++) {
		/* Ribs: bands along z; the shell is bone where the band is on. */
		double band = sin((double)z * 2.0 * M_PI / 24.0);
		for (size_t y = 0; y < BENCH_NY; y++) {
			double syz = sin((double)y * 0.17 + (double)z * 0.05);
			for (size_t x = 0; x < BENCH_NX; x++) {
				double fx = (double)x, fy = (double)y;
				double body = bench_edge(bench_ellipse_d(fx, fy, cx, cy, 225.0, 160.0));
				double hu = -1000.0 + 1040.0 * body;
				if (body > 0.0) {
					/* Rib shell: 7 voxels thick, 12 inside the skin. */
					double d = bench_ellipse_d(fx, fy, cx, cy, 205.0, 142.0);
					double shell = bench_edge(fabs(d + 3.5) - 3.5);
					double rib = bench_edge(-4.0 * band - 0.5);
					/* Spine: a disc 28 voxels across behind the centre,
					 * with a hollow (marrow) core. */
					double sd = hypot(fx - cx, fy - (cy + 95.0)) - 28.0;
					double spine = bench_edge(fabs(sd + 5.0) - 5.0);
					/* Two long bones, lateral. */
					double f1 = hypot(fx - (cx - 110.0), fy - cy) - 18.0;
					double f2 = hypot(fx - (cx + 110.0), fy - cy) - 18.0;
					double fem = fmax(bench_edge(fabs(f1 + 4.0) - 4.0),
							  bench_edge(fabs(f2 + 4.0) - 4.0));
					double bone = fmax(fmax(shell * rib, spine), fem);
					/* Some texture so the soft tissue is not flat. */
					hu += 30.0 * sx[x] * syz;
					hu += bone * 900.0 * body;
				}
				vol[x + BENCH_NX * (y + BENCH_NY * z)] = (int16_t)lround(hu);
			}
		}
	}
}

static int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double bench_median(double *t, int n)
{
	qsort(t, (size_t)n, sizeof(*t), bench_cmp);
	return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static double bench_tv(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Prints the user and system CPU seconds per run since r0. */
static void bench_cpu(const char *what, int threads, const struct rusage *r0, long runs)
{
	struct rusage r1;

	getrusage(RUSAGE_SELF, &r1);
	printf("%s threads %d user_s_per_run %.4f sys_s_per_run %.4f\n", what, threads,
	       (bench_tv(r1.ru_utime) - bench_tv(r0->ru_utime)) / (double)runs,
	       (bench_tv(r1.ru_stime) - bench_tv(r0->ru_stime)) / (double)runs);
}

int main(int argc, char **argv)
{
	struct r3d_err err = {0};
	struct mesh_volume vol = {0};
	struct mesh *raw = NULL;
	int16_t *data = NULL;
	size_t bytes = 0;
	const char *raw_path = NULL;
	long reps = 5;
	bool decimate = true;
	double t[BENCH_MAX_REPS];
	int rc = 1;

	const char *in_path = NULL;
	size_t nx = BENCH_NX, ny = BENCH_NY, nz = BENCH_NZ;
	double iso = BENCH_ISO;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--raw") == 0 && i + 1 < argc) {
			raw_path = argv[++i];
		} else if (strcmp(argv[i], "--in") == 0 && i + 3 < argc) {
			/* an int16 volume made elsewhere (recon3d-mesh --save-volume) */
			long d[3];
			in_path = argv[++i];
			for (int k = 0; k < 3; k++) {
				if (!parse_long(&err, argv[++i], 2, MESH_MAX_DIM, &d[k]))
					goto fail;
			}
			nx = (size_t)d[0];
			ny = (size_t)d[1];
			nz = (size_t)d[2];
		} else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
			if (!parse_long(&err, argv[++i], 1, BENCH_MAX_REPS, &reps))
				goto fail;
		} else if (strcmp(argv[i], "--no-decimate") == 0) {
			decimate = false;
		} else {
			fprintf(stderr, "usage: %s [--raw OUT.raw | --in IN.raw NX NY NZ] [--reps N] "
					"[--no-decimate]\n", argv[0]);
			goto out;
		}
	}
	if (!size_mul3(nx * ny, nz, sizeof(int16_t), &bytes))
		goto out;
	data = bigbuf_alloc(&err, bytes);
	if (data == NULL)
		goto fail;
	double t0 = clock_mono_s();
	if (in_path != NULL) {
		FILE *f = fopen(in_path, "rb");
		bool read_ok = f != NULL && fread(data, 1, bytes, f) == bytes;
		if (f != NULL)
			fclose(f);
		if (!read_ok) {
			r3d_err_set(&err, R3D_EIO, "cannot read %zu bytes from %s", bytes, in_path);
			goto fail;
		}
	} else {
		bench_volume(data);
	}
	printf("volume %zux%zux%zu int16 iso %.1f generated_s %.3f\n", nx, ny, nz, iso,
	       clock_mono_s() - t0);
	if (raw_path != NULL) {
		FILE *f = fopen(raw_path, "wb");
		if (f == NULL || fwrite(data, 1, bytes, f) != bytes || fclose(f) != 0) {
			r3d_err_set(&err, R3D_EIO, "cannot write %s", raw_path);
			goto fail;
		}
	}
	vol = (struct mesh_volume){data, MESH_SCALAR_I16, nx, ny, nz, NULL, 0, 0};

	for (int threads = 1; threads <= 2; threads++) {
		struct mesh *m = NULL;
		struct rusage r0;
		getrusage(RUSAGE_SELF, &r0);
		for (long r = -1; r < reps; r++) {
			double s = clock_mono_s();
			if (!mesh_isosurface(&err, &vol, iso, threads, NULL, &m))
				goto fail;
			if (r >= 0)
				t[r] = clock_mono_s() - s;
			if (threads == 1 && raw == NULL) {
				raw = m;
			} else {
				printf("iso_counts threads %d triangles %zu vertices %zu\n", threads,
				       m->ntri, m->nvert);
				mesh_destroy(m);
			}
			m = NULL;
		}
		printf("iso_median_s threads %d %.4f\n", threads, bench_median(t, (int)reps));
		bench_cpu("iso_cpu", threads, &r0, reps + 1);

		/* The same with the job's scratch reused between calls. */
		struct mesh_iso_work *work = mesh_iso_work_create(&err);
		if (work == NULL)
			goto fail;
		getrusage(RUSAGE_SELF, &r0);
		for (long r = -1; r < reps; r++) {
			double s = clock_mono_s();
			bool ok = mesh_isosurface(&err, &vol, iso, threads, work, &m);
			if (r >= 0)
				t[r] = clock_mono_s() - s;
			mesh_destroy(m);
			m = NULL;
			if (!ok) {
				mesh_iso_work_destroy(work);
				goto fail;
			}
		}
		mesh_iso_work_destroy(work);
		printf("iso_reuse_median_s threads %d %.4f\n", threads, bench_median(t, (int)reps));
		bench_cpu("iso_reuse_cpu", threads, &r0, reps + 1);
	}

	struct mesh_stats st;
	if (!mesh_check(&err, raw, &st))
		goto fail;
	printf("raw_mesh triangles %zu vertices %zu closed %d manifold %d euler %ld\n", st.ntri,
	       st.nvert, st.closed, st.manifold, st.euler);
	double raw_volume = st.volume;

	{
		struct mesh *c = mesh_copy(&err, raw);
		struct mesh_smooth_params sp;
		if (c == NULL)
			goto fail;
		mesh_smooth_defaults(&sp);
		sp.threads = 2;
		double s = clock_mono_s();
		bool ok = mesh_smooth(&err, c, &sp);
		printf("smooth_s threads 2 %.4f iterations %d (one run)\n", clock_mono_s() - s,
		       sp.iterations);
		mesh_destroy(c);
		if (!ok)
			goto fail;
	}

	if (decimate) {
		size_t target = raw->ntri / 10, kept = 0;
		unsigned int *dst = malloc(3 * sizeof(*dst) * raw->ntri);
		struct rusage rm0;
		if (dst == NULL)
			goto fail;
		getrusage(RUSAGE_SELF, &rm0);
		for (int r = -1; r < BENCH_DECIMATE_REPS; r++) {
			double s = clock_mono_s();
			kept = meshopt_simplify(dst, raw->tri, 3 * raw->ntri, raw->xyz, raw->nvert,
						3 * sizeof(float), 3 * target, BENCH_DECIMATE_ERROR, 0,
						NULL) / 3;
			if (r >= 0)
				t[r] = clock_mono_s() - s;
		}
		free(dst);
		printf("meshopt_alone_median_s %.4f triangles %zu\n",
		       bench_median(t, BENCH_DECIMATE_REPS), kept);
		bench_cpu("meshopt_alone_cpu", 1, &rm0, BENCH_DECIMATE_REPS + 1);
		for (int threads = 1; threads <= 2; threads++) {
			struct rusage r0;
			getrusage(RUSAGE_SELF, &r0);
			for (int r = -1; r < BENCH_DECIMATE_REPS; r++) {
				struct mesh *c = mesh_copy(&err, raw);
				if (c == NULL)
					goto fail;
				double s = clock_mono_s();
				bool ok = mesh_decimate(&err, c, target, 0, threads, NULL);
				if (r >= 0)
					t[r] = clock_mono_s() - s;
				if (ok && r == BENCH_DECIMATE_REPS - 1) {
					ok = mesh_check(&err, c, &st);
					printf("decimated threads %d triangles %zu vertices %zu closed %d"
					       " manifold %d (boundary %zu nonmanifold %zu misoriented %zu"
					       " degenerate %zu) euler %ld volume_change_pct %.3f\n",
					       threads, st.ntri, st.nvert, st.closed, st.manifold,
					       st.boundary_edges, st.nonmanifold_edges,
					       st.misoriented_edges, st.degenerate_tri, st.euler,
					       100.0 * (st.volume / raw_volume - 1.0));
				}
				mesh_destroy(c);
				if (!ok)
					goto fail;
			}
			printf("decimate_median_s threads %d %.4f target %zu\n", threads,
			       bench_median(t, BENCH_DECIMATE_REPS), target);
			bench_cpu("decimate_cpu", threads, &r0, BENCH_DECIMATE_REPS + 1);
		}
	}

	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("rusage user_s %.2f sys_s %.2f peak_rss_mb %.1f\n",
	       (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
	       (double)ru.ru_maxrss / 1024.0);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "mesh_bench: %s\n", err.msg);
out:
	mesh_destroy(raw);
	bigbuf_free(data, bytes);
	return rc;
}
