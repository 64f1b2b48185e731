/*
 * analysis_bench.c: times the print-readiness analysis (r3d/analysis.h) on
 * binary STL files or on a generated UV sphere, for bench/analysis/run.py.
 * One process per call so that the driver reads its user/sys time and peak
 * memory. Single-threaded driver; the analysis starts its own threads.
 *
 *   analysis_bench [--threads N] [--reps R] analyse FILE.stl | sphere:NTRI
 *   analysis_bench [--threads N] [--reps R] distance A.stl B.stl
 *
 * Prints one JSON object: the median and every run's seconds, and what
 * was found (so the driver can compare it with VTK's).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/analysis.h"
#include "r3d/mesh.h"
#include "r3d/util.h"

#define BENCH_MAX_REPS 50
#define BENCH_MAX_TRI 50000000u
#define PI 3.14159265358979323846

static struct mesh *stl_read(const char *path)
{
	struct r3d_err err;
	unsigned char head[84], rec[50];
	struct mesh *m = NULL;
	FILE *f = fopen(path, "rb");
	uint32_t n;

	if (f == NULL || fread(head, 1, 84, f) != 84)
		goto fail;
	n = (uint32_t)head[80] | (uint32_t)head[81] << 8 | (uint32_t)head[82] << 16 |
	    (uint32_t)head[83] << 24;
	if (n == 0 || n > BENCH_MAX_TRI)
		goto fail;
	m = mesh_create(&err, 3 * (size_t)n, n);
	if (m == NULL)
		goto fail;
	for (uint32_t t = 0; t < n; t++) {
		if (fread(rec, 1, 50, f) != 50)
			goto fail;
		for (int k = 0; k < 9; k++) {
			uint32_t u = (uint32_t)rec[12 + 4 * k] | (uint32_t)rec[13 + 4 * k] << 8 |
				     (uint32_t)rec[14 + 4 * k] << 16 | (uint32_t)rec[15 + 4 * k] << 24;
			memcpy(&m->xyz[9 * (size_t)t + k], &u, 4);
		}
		for (int j = 0; j < 3; j++)
			m->tri[3 * (size_t)t + j] = 3 * t + (uint32_t)j;
	}
	fclose(f);
	return m;
fail:
	fprintf(stderr, "analysis_bench: cannot read %s as binary STL\n", path);
	if (f != NULL)
		fclose(f);
	mesh_destroy(m);
	return NULL;
}

/* A UV sphere of radius 50 mm with nu segments and nu + 1 rings:
 * 2 nu^2 triangles. */
static struct mesh *uv_sphere(size_t ntri)
{
	struct r3d_err err;
	size_t nu = (size_t)sqrt((double)ntri / 2.0), nv = nu + 1;
	size_t nvert = 2 + nu * (nv - 1), nt = 2 * nu * (nv - 1), t = 0;
	struct mesh *m = mesh_create(&err, nvert, nt);

	if (m == NULL)
		return NULL;
	m->xyz[0] = m->xyz[1] = 0;
	m->xyz[2] = 50;
	m->xyz[3] = m->xyz[4] = 0;
	m->xyz[5] = -50;
	for (size_t r = 1; r < nv; r++) {
		double th = PI * (double)r / (double)nv;
		for (size_t s = 0; s < nu; s++) {
			double ph = 2 * PI * (double)s / (double)nu;
			float *p = m->xyz + 3 * (2 + (r - 1) * nu + s);
			p[0] = (float)(50 * sin(th) * cos(ph));
			p[1] = (float)(50 * sin(th) * sin(ph));
			p[2] = (float)(50 * cos(th));
		}
	}
#define RING(r, s) ((uint32_t)(2 + ((r) - 1) * nu + ((s) % nu)))
	for (size_t s = 0; s < nu; s++) {
		uint32_t *q = m->tri + 3 * t++;
		q[0] = 0, q[1] = RING(1, s), q[2] = RING(1, s + 1);
		q = m->tri + 3 * t++;
		q[0] = 1, q[1] = RING(nv - 1, s + 1), q[2] = RING(nv - 1, s);
	}
	for (size_t r = 1; r + 1 < nv; r++)
		for (size_t s = 0; s < nu; s++) {
			uint32_t *q = m->tri + 3 * t++;
			q[0] = RING(r, s), q[1] = RING(r + 1, s), q[2] = RING(r + 1, s + 1);
			q = m->tri + 3 * t++;
			q[0] = RING(r, s), q[1] = RING(r + 1, s + 1), q[2] = RING(r, s + 1);
		}
#undef RING
	return m;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : (x > y ? 1 : 0);
}

static void print_times(const double *s, int reps)
{
	double sorted[BENCH_MAX_REPS];
	memcpy(sorted, s, (size_t)reps * sizeof(double));
	qsort(sorted, (size_t)reps, sizeof(double), cmp_double);
	printf("\"median_s\": %.6f, \"runs_s\": [", sorted[reps / 2]);
	for (int i = 0; i < reps; i++)
		printf("%s%.6f", i ? ", " : "", s[i]);
	printf("]");
}

int main(int argc, char **argv)
{
	struct r3d_err err;
	int threads = 2, reps = 5, i = 1;
	double times[BENCH_MAX_REPS];

	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (strcmp(argv[i], "--threads") == 0)
			threads = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--reps") == 0)
			reps = atoi(argv[i + 1]);
	}
	if (threads < 1 || threads > MESH_MAX_THREADS || reps < 1 || reps > BENCH_MAX_REPS ||
	    i >= argc) {
		fprintf(stderr, "usage: analysis_bench [--threads N] [--reps R] analyse FILE|sphere:N"
				" | distance A B\n");
		return 2;
	}
	if (strcmp(argv[i], "analyse") == 0 && i + 1 < argc) {
		struct mesh_analysis a;
		struct mesh *m = strncmp(argv[i + 1], "sphere:", 7) == 0
					 ? uv_sphere((size_t)atol(argv[i + 1] + 7))
					 : stl_read(argv[i + 1]);
		if (m == NULL)
			return 1;
		for (int r = 0; r < reps; r++) {
			double t0 = clock_mono_s();
			if (!mesh_analyse(&err, m, threads, &a)) {
				fprintf(stderr, "analysis_bench: %s\n", err.msg);
				return 1;
			}
			times[r] = clock_mono_s() - t0;
			if (r + 1 < reps)
				mesh_analysis_free(&a);
		}
		printf("{\"triangles\": %zu, \"threads\": %d, ", m->ntri, threads);
		print_times(times, reps);
		printf(", \"shells\": %zu, \"volume_ml\": %.6f, \"area_mm2\": %.4f, "
		       "\"self_intersections\": %zu, \"min_wall_mm\": %.4f, "
		       "\"extents_mm\": [%.3f, %.3f, %.3f]}\n",
		       a.nshells, a.volume / 1000.0, a.area, a.self_intersections,
		       a.has_wall ? a.min_wall : -1.0, a.extents[0], a.extents[1], a.extents[2]);
		mesh_analysis_free(&a);
		mesh_destroy(m);
		return 0;
	}
	if (strcmp(argv[i], "distance") == 0 && i + 2 < argc) {
		struct mesh *a = stl_read(argv[i + 1]), *b = stl_read(argv[i + 2]);
		double d = 0, pa[3], pb[3];
		if (a == NULL || b == NULL)
			return 1;
		for (int r = 0; r < reps; r++) {
			double t0 = clock_mono_s();
			if (!mesh_gap(&err, a, b, threads, &d, pa, pb)) {
				fprintf(stderr, "analysis_bench: %s\n", err.msg);
				return 1;
			}
			times[r] = clock_mono_s() - t0;
		}
		printf("{\"triangles\": [%zu, %zu], \"threads\": %d, ", a->ntri, b->ntri, threads);
		print_times(times, reps);
		printf(", \"mm\": %.5f}\n", d);
		mesh_destroy(a);
		mesh_destroy(b);
		return 0;
	}
	fprintf(stderr, "analysis_bench: unknown command %s\n", argv[i]);
	return 2;
}
