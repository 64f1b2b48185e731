/*
 * decimate_bench.c: the decimation benchmark of issue 16, driven by
 * bench/decimate (which adds VTK's vtkQuadricDecimation on the same input).
 *
 *   decimate_bench IN.stl TARGET [--reps N] [--out DIR] [--error MM]
 *       welds IN.stl by position, then decimates it to TARGET triangles with
 *       meshopt_simplify alone (no error bound, so that it goes as far as it
 *       can) and with mesh_decimate() on 1 and 2 threads, median of N runs
 *       after a warm-up each; for every result: triangles, whether it is
 *       closed and 2-manifold welded by position (mesh_check), the Euler
 *       characteristic, and the distance to the undecimated surface
 *       (mesh_distance, both ways). --out writes each result as an STL;
 *       --error goes on below TARGET by that error target (ours only).
 *   decimate_bench --distance A.stl B.stl
 *       the distance between two STL surfaces (for VTK's result).
 *   decimate_bench --sponge OUT.stl [N]
 *       a many-handled phantom: an N^3 mask (default 256) holding a block
 *       with 12 x 12 tunnels along z and 12 x 12 along x passing between them
 *       (genus 288), meshed with mask smoothing, undecimated.
 * Prints "key value" lines, with the process's user/sys CPU time and peak
 * RSS. Single-threaded driver; mesh_decimate() starts its own threads.
 */
#include <meshoptimizer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "r3d/mesh.h"
#include "r3d/util.h"

#define BENCH_MAX_REPS 25
#define BENCH_SAMPLES 100000
#define BENCH_SPONGE_TUNNELS 12

static struct mesh *stl_load(struct r3d_err *err, const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char head[84], rec[50];
	struct mesh *m = NULL;
	uint32_t n;

	if (f == NULL) {
		r3d_err_set(err, R3D_EIO, "cannot open %s", path);
		return NULL;
	}
	if (fread(head, 1, 84, f) != 84)
		goto bad;
	memcpy(&n, head + 80, 4);
	m = mesh_create(err, 3 * (size_t)n, n);
	if (m == NULL)
		goto out;
	for (uint32_t t = 0; t < n; t++) {
		if (fread(rec, 1, 50, f) != 50)
			goto bad;
		memcpy(m->xyz + 9 * (size_t)t, rec + 12, 36);
		for (int c = 0; c < 3; c++)
			m->tri[3 * (size_t)t + c] = 3 * t + (uint32_t)c;
	}
	if (!mesh_weld(err, m)) {
		mesh_destroy(m);
		m = NULL;
	}
	goto out;
bad:
	r3d_err_set(err, R3D_EIO, "%s is not a binary STL", path);
	mesh_destroy(m);
	m = NULL;
out:
	fclose(f);
	return m;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *t, int n)
{
	qsort(t, (size_t)n, sizeof(*t), cmp_double);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static double cpu_s(const struct rusage *r)
{
	return (double)r->ru_utime.tv_sec + (double)r->ru_utime.tv_usec / 1e6;
}

/* Prints what a result is, as an STL reader sees it. */
static bool report(struct r3d_err *err, const char *who, const struct mesh *orig, struct mesh *m,
		   double med, double user_per_run, const char *outdir)
{
	struct mesh_stats st;
	struct mesh_distance d;
	struct mesh *w = mesh_copy(err, m);
	bool ok = false;

	if (w == NULL)
		return false;
	if (!mesh_weld(err, w) || !mesh_check(err, w, &st) ||
	    !mesh_distance(err, orig, w, BENCH_SAMPLES, 2, &d))
		goto out;
	printf("%s median_s %.4f user_s_per_run %.4f triangles %zu closed %d manifold %d "
	       "boundary %zu nonmanifold %zu misoriented %zu zero_area %zu euler %ld "
	       "error_mean_mm %.4f error_max_mm %.4f\n",
	       who, med, user_per_run, st.ntri, st.closed, st.manifold, st.boundary_edges,
	       st.nonmanifold_edges, st.misoriented_edges, st.zero_area_tri, st.euler, d.mean,
	       d.max);
	if (outdir != NULL) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s.stl", outdir, who);
		if (!mesh_stl_write(err, path, w, who))
			goto out;
	}
	ok = true;
out:
	mesh_destroy(w);
	return ok;
}

static int sponge(struct r3d_err *err, const char *out, long n)
{
	size_t nn = (size_t)n;
	uint8_t *v = calloc(nn * nn * nn, 1);
	struct mesh_volume mv = {v, MESH_SCALAR_U8, nn, nn, nn, NULL, 0, 0};
	struct mesh_build_params p;
	struct mesh_stats st;
	struct mesh *m = NULL;
	long lo = n / 8, hi = n - n / 8, step = (hi - lo) / BENCH_SPONGE_TUNNELS;
	int rc = 1;

	if (v == NULL)
		return 1;
	for (long z = lo; z < hi; z++)
		for (long y = lo; y < hi; y++)
			for (long x = lo; x < hi; x++) {
				long ix = (x - lo) % step, iy = (y - lo) % step, iz = (z - lo) % step;
				bool zt = ix >= step / 4 && ix < step / 2 && iy >= step / 4 &&
					  iy < step / 2 && x < lo + BENCH_SPONGE_TUNNELS * step &&
					  y < lo + BENCH_SPONGE_TUNNELS * step;
				bool xt = iy >= 5 * step / 8 && iy < 7 * step / 8 && iz >= step / 4 &&
					  iz < step / 2 && y < lo + BENCH_SPONGE_TUNNELS * step &&
					  z < lo + BENCH_SPONGE_TUNNELS * step;
				v[(size_t)x + nn * ((size_t)y + nn * (size_t)z)] = !(zt || xt);
			}
	mesh_build_defaults(&p);
	mesh_build_mask_smoothing(&p);
	p.threads = 2;
	p.smoothing.threads = 2;
	p.affine[0] = p.affine[5] = p.affine[10] = 0.5;
	if (!mesh_build(err, &mv, &p, NULL, &m, &st, NULL) ||
	    !mesh_stl_write(err, out, m, "sponge"))
		goto out;
	printf("sponge %s triangles %zu euler %ld genus %ld closed %d manifold %d\n", out, st.ntri,
	       st.euler, (2 - st.euler) / 2, st.closed, st.manifold);
	rc = 0;
out:
	mesh_destroy(m);
	free(v);
	return rc;
}

int main(int argc, char **argv)
{
	struct r3d_err err = {0};
	struct mesh *orig = NULL, *m = NULL;
	const char *outdir = NULL;
	long target = 0, reps = 5;
	double error_mm = 0;
	double t[BENCH_MAX_REPS];
	int rc = 1;

	if (argc >= 3 && strcmp(argv[1], "--sponge") == 0) {
		long n = 256;
		if (argc > 3 && !parse_long(&err, argv[3], 64, 1024, &n))
			goto fail;
		rc = sponge(&err, argv[2], n);
		if (rc != 0)
			goto fail;
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "--distance") == 0) {
		struct mesh *a = stl_load(&err, argv[2]), *b = NULL;
		struct mesh_distance d;
		if (a == NULL || (b = stl_load(&err, argv[3])) == NULL ||
		    !mesh_distance(&err, a, b, BENCH_SAMPLES, 2, &d)) {
			mesh_destroy(a);
			goto fail;
		}
		printf("distance mean_mm %.4f max_mm %.4f samples %zu\n", d.mean, d.max, d.samples);
		mesh_destroy(a);
		mesh_destroy(b);
		return 0;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: %s IN.stl TARGET [--reps N] [--out DIR] | --distance A.stl "
				"B.stl | --sponge OUT.stl [N]\n", argv[0]);
		return 2;
	}
	if (!parse_long(&err, argv[2], 4, 1L << 30, &target))
		goto fail;
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
			if (!parse_long(&err, argv[++i], 1, BENCH_MAX_REPS, &reps))
				goto fail;
		} else if (strcmp(argv[i], "--error") == 0 && i + 1 < argc) {
			if (!parse_double(&err, argv[++i], 0, 10, &error_mm))
				goto fail;
		} else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
			outdir = argv[++i];
		} else {
			fprintf(stderr, "%s: unknown argument %s\n", argv[0], argv[i]);
			return 2;
		}
	}
	orig = stl_load(&err, argv[1]);
	if (orig == NULL)
		goto fail;
	printf("input %s triangles %zu vertices %zu target %ld\n", argv[1], orig->ntri, orig->nvert,
	       target);

	/* meshoptimizer alone, no error bound. */
	{
		struct rusage r0, r1;
		struct mesh *c = mesh_copy(&err, orig);
		if (c == NULL)
			goto fail;
		getrusage(RUSAGE_SELF, &r0);
		for (long r = -1; r < reps; r++) {
			double s = clock_mono_s();
			size_t nidx = meshopt_simplify(c->tri, orig->tri, 3 * orig->ntri, orig->xyz,
						       orig->nvert, 3 * sizeof(float),
						       3 * (size_t)target, 1.0f, 0, NULL);
			if (r >= 0)
				t[r] = clock_mono_s() - s;
			c->ntri = nidx / 3;
		}
		getrusage(RUSAGE_SELF, &r1);
		bool ok = report(&err, "meshopt", orig, c, median(t, (int)reps),
				 (cpu_s(&r1) - cpu_s(&r0)) / (double)(reps + 1), outdir);
		mesh_destroy(c);
		if (!ok)
			goto fail;
	}
	for (int threads = 1; threads <= 2; threads++) {
		struct rusage r0, r1;
		struct mesh_decimate_info info;
		getrusage(RUSAGE_SELF, &r0);
		for (long r = -1; r < reps; r++) {
			mesh_destroy(m);
			m = mesh_copy(&err, orig);
			if (m == NULL)
				goto fail;
			double s = clock_mono_s();
			if (!mesh_decimate(&err, m, (size_t)target, error_mm, threads, &info))
				goto fail;
			if (r >= 0)
				t[r] = clock_mono_s() - s;
		}
		getrusage(RUSAGE_SELF, &r1);
		char who[32];
		snprintf(who, sizeof(who), "ours_%dt", threads);
		if (!report(&err, who, orig, m, median(t, (int)reps),
			    (cpu_s(&r1) - cpu_s(&r0)) / (double)(reps + 1), outdir))
			goto fail;
		printf("%s reached %d collapses %zu passes %zu refused_link %zu refused_shape %zu\n",
		       who, info.reached, info.collapses, info.passes, info.rejected_link,
		       info.rejected_shape);
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("rusage user_s %.2f sys_s %.2f peak_rss_mb %.1f\n", cpu_s(&ru),
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
	       (double)ru.ru_maxrss / 1024.0);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "decimate_bench: %s\n", err.msg);
out:
	mesh_destroy(m);
	mesh_destroy(orig);
	return rc;
}
