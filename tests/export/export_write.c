/*
 * export_write.c: test helper for export.* tests. Builds three meshes whose
 * truth is known (a closed octahedron "bone", an open octahedron "custom"
 * with one face removed and a zero-area sliver added, and a closed UV sphere "lungs" with more points
 * than a 16-bit index can address), writes them as one Surface Segmentation
 * and one Encapsulated STL each (from the STL mesh_stl_write() makes), with
 * patient and study from a real CT series, UIDs derived from the source
 * series UID. Next to the objects it leaves what a checker needs: the STL
 * files, raw points (float32 LE) and triangles (uint32 LE, 0-based) per
 * structure, and facts.txt.
 *
 * With --pipeline the structures are instead the ones recon3d's pipeline
 * makes from the series (pipeline_run_dir(), default options, 2 threads).
 *
 * usage: export_write CT_DIR OUT_DIR [--pipeline]
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "r3d/bridge.h"
#include "r3d/mesh.h"
#include "r3d/pipeline.h"
#include "r3d/structure.h"
#include "r3d/util.h"

#define UV_LAT 200  /* rings: 2 + 199 * 400 = 79602 points */
#define UV_LON 400
#define MAX_REFS 4096
#define MAX_PARTS PIPELINE_MAX_STRUCTURES

/* A regular octahedron; open: without its -x-y-z face and with a zero-area
 * sliver (+x, midpoint of +x..+y, +y), whose middle point has no normal of
 * its own. */
static struct mesh *octahedron(struct r3d_err *err, const double c[3], double r, bool open)
{
	struct mesh *m = mesh_create(err, open ? 7 : 6, 8);
	size_t t = 0;

	if (m == NULL)
		return NULL;
	/* +x, -x, +y, -y, +z, -z */
	for (int v = 0; v < 6; v++) {
		for (int k = 0; k < 3; k++)
			m->xyz[v * 3 + k] = (float)c[k];
		m->xyz[v * 3 + v / 2] += (float)(v % 2 ? -r : r);
	}
	for (int oct = 0; oct < 8; oct++) {
		int sx = oct & 1, sy = (oct >> 1) & 1, sz = (oct >> 2) & 1;
		uint32_t a = (uint32_t)sx, b = (uint32_t)(2 + sy), d = (uint32_t)(4 + sz);
		if (open && oct == 7)
			continue;
		/* (x, y, z) is counter-clockwise from outside in the +++ octant;
		 * each mirrored axis flips the winding. */
		m->tri[t * 3] = a;
		if ((sx + sy + sz) % 2 == 0) {
			m->tri[t * 3 + 1] = b;
			m->tri[t * 3 + 2] = d;
		} else {
			m->tri[t * 3 + 1] = d;
			m->tri[t * 3 + 2] = b;
		}
		t++;
	}
	if (open) {
		for (int k = 0; k < 3; k++)
			m->xyz[6 * 3 + k] = (m->xyz[0 * 3 + k] + m->xyz[2 * 3 + k]) / 2.0f;
		m->tri[t * 3] = 0;
		m->tri[t * 3 + 1] = 6;
		m->tri[t * 3 + 2] = 2;
	}
	return m;
}

static struct mesh *uv_sphere(struct r3d_err *err, const double c[3], double r)
{
	size_t nv = 2 + (size_t)(UV_LAT - 1) * UV_LON;
	size_t nt = 2 * (size_t)UV_LON * (UV_LAT - 1);
	struct mesh *m = mesh_create(err, nv, nt);
	size_t t = 0;
	uint32_t south = (uint32_t)(nv - 1);

	if (m == NULL)
		return NULL;
	for (size_t v = 0; v < nv; v++) {
		double th, ph;
		if (v == 0 || v == nv - 1) {
			th = v == 0 ? 0.0 : M_PI;
			ph = 0.0;
		} else {
			th = M_PI * (double)((v - 1) / UV_LON + 1) / UV_LAT;
			ph = 2.0 * M_PI * (double)((v - 1) % UV_LON) / UV_LON;
		}
		m->xyz[v * 3] = (float)(c[0] + r * sin(th) * cos(ph));
		m->xyz[v * 3 + 1] = (float)(c[1] + r * sin(th) * sin(ph));
		m->xyz[v * 3 + 2] = (float)(c[2] + r * cos(th));
	}
#define RING(i, j) ((uint32_t)(1 + ((i) - 1) * UV_LON + ((j) % UV_LON)))
	for (int j = 0; j < UV_LON; j++) {
		uint32_t tn[3] = {0, RING(1, j), RING(1, j + 1)};
		uint32_t ts[3] = {south, RING(UV_LAT - 1, j + 1), RING(UV_LAT - 1, j)};
		memcpy(&m->tri[t++ * 3], tn, sizeof(tn));
		memcpy(&m->tri[t++ * 3], ts, sizeof(ts));
	}
	for (int i = 1; i < UV_LAT - 1; i++) {
		for (int j = 0; j < UV_LON; j++) {
			uint32_t a = RING(i, j), b = RING(i, j + 1);
			uint32_t cc = RING(i + 1, j), d = RING(i + 1, j + 1);
			uint32_t t1[3] = {a, cc, d}, t2[3] = {a, d, b};
			memcpy(&m->tri[t++ * 3], t1, sizeof(t1));
			memcpy(&m->tri[t++ * 3], t2, sizeof(t2));
		}
	}
#undef RING
	return t == nt ? m : NULL;
}

static bool write_raw(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	bool ok = f != NULL && fwrite(p, 1, n, f) == n;

	if (f != NULL && fclose(f) != 0)
		ok = false;
	return ok;
}

static int dcm_filter(const struct dirent *e)
{
	size_t n = strlen(e->d_name);
	return n > 4 && strcmp(e->d_name + n - 4, ".dcm") == 0;
}

static const char *flag_name(enum bridge_surface_flag f)
{
	return f == BRIDGE_FLAG_YES ? "YES" : f == BRIDGE_FLAG_NO ? "NO" : "UNKNOWN";
}

/* The structures to export: meshes borrowed from res or owned in own[]. */
struct parts {
	size_t count;
	const char *name[MAX_PARTS];
	float rgb[MAX_PARTS][3];
	const struct mesh *mesh[MAX_PARTS];
	bool convex[MAX_PARTS];       /* normals must point away from the centroid */
	struct bridge_segment_codes codes[MAX_PARTS];
	struct structure_def def[MAX_PARTS];   /* the codes point into these */
	struct mesh *own[MAX_PARTS];
	struct pipeline_result res;
	bool have_res;
};

static bool parts_synthetic(struct r3d_err *err, struct parts *p)
{
	const double c0[3] = {-40.0, -120.0, 400.0}, c2[3] = {10.0, -150.0, 420.0};
	const char *names[3] = {"bone", "custom", "lungs"};
	const float colours[3][3] = {{0.95f, 0.84f, 0.57f}, {0.5f, 0.5f, 0.5f},
				     {0.2f, 0.5f, 0.9f}};

	p->own[0] = octahedron(err, c0, 30.0, false);
	p->own[1] = octahedron(err, c0, 20.0, true);
	p->own[2] = uv_sphere(err, c2, 60.0);
	struct structure_catalog cat;
	structure_catalog_default(&cat);
	for (size_t i = 0; i < 3; i++) {
		const struct structure_def *d = structure_catalog_get(&cat, names[i]);
		if (p->own[i] == NULL)
			return false;
		if (d != NULL)
			p->def[i] = *d;
		else
			structure_def_threshold(&p->def[i], names[i]);
		pipeline_structure_codes(&p->def[i], &p->codes[i]);
		p->name[i] = names[i];
		memcpy(p->rgb[i], colours[i], sizeof(p->rgb[i]));
		p->mesh[i] = p->own[i];
		p->convex[i] = i != 1;
	}
	p->count = 3;
	return true;
}

static bool parts_pipeline(struct r3d_err *err, const char *dir, struct parts *p)
{
	struct pipeline_options o;

	pipeline_options_default(&o);
	o.threads = 2;
	if (!pipeline_run_dir(err, dir, &o, &p->res))
		return false;
	p->have_res = true;
	for (size_t i = 0; i < p->res.nstructures; i++) {
		struct pipeline_structure *ps = &p->res.structures[i];
		if (ps->mesh == NULL)
			continue;
		p->name[p->count] = ps->def.key;
		memcpy(p->rgb[p->count], ps->def.rgb, sizeof(ps->def.rgb));
		pipeline_structure_codes(&ps->def, &p->codes[p->count]);
		p->mesh[p->count] = ps->mesh;
		p->convex[p->count] = false;
		p->count++;
	}
	return p->count > 0 || r3d_err_set(err, R3D_EINVAL, "the pipeline made no structure");
}

int main(int argc, char **argv)
{
	struct r3d_err err;
	struct dirent **names = NULL;
	static struct bridge_instance_attrs attrs[MAX_REFS];
	static struct bridge_export_ref refs[MAX_REFS];
	static struct parts parts;
	struct bridge_export_structure s[MAX_PARTS];
	char path[2048], src[2048], series_uid[BRIDGE_UID_MAX + 1], sop_uid[BRIDGE_UID_MAX + 1];
	char label[128], desc[64];
	int n = 0, status = 1;
	FILE *facts = NULL;
	struct bridge_export_info info;
	double t0;
	bool pipeline = argc == 4 && strcmp(argv[3], "--pipeline") == 0;

	if (argc != 3 && !pipeline) {
		fprintf(stderr, "usage: export_write CT_DIR OUT_DIR [--pipeline]\n");
		return 2;
	}
	if (!bridge_init(&err)) {
		fprintf(stderr, "bridge_init: %s\n", err.msg);
		return 1;
	}
	if (!mkdir_p(&err, argv[2])) {
		fprintf(stderr, "%s: %s\n", argv[2], err.msg);
		goto out;
	}
	n = scandir(argv[1], &names, dcm_filter, alphasort);
	if (n <= 0 || n > MAX_REFS) {
		fprintf(stderr, "no or too many .dcm files in %s\n", argv[1]);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", argv[1], names[i]->d_name);
		if (!bridge_read_instance_attrs(&err, path, &attrs[i])) {
			fprintf(stderr, "%s: %s\n", path, err.msg);
			goto out;
		}
		refs[i].sop_class_uid = attrs[i].sop_class_uid;
		refs[i].sop_instance_uid = attrs[i].sop_instance_uid;
	}
	snprintf(src, sizeof(src), "%s/%s", argv[1], names[0]->d_name);
	if (!(pipeline ? parts_pipeline(&err, argv[1], &parts) : parts_synthetic(&err, &parts)))
		goto fail;

	snprintf(path, sizeof(path), "%s/facts.txt", argv[2]);
	facts = fopen(path, "w");
	if (facts == NULL) {
		fprintf(stderr, "cannot write %s\n", path);
		goto out;
	}
	fprintf(facts, "source %s\nrefs %d\n", src, n);
	for (size_t i = 0; i < parts.count; i++) {
		const struct mesh *m = parts.mesh[i];
		struct mesh_stats st;
		if (!mesh_check(&err, m, &st))
			goto fail;
		memset(&s[i], 0, sizeof(s[i]));
		s[i].name = parts.name[i];
		s[i].codes = parts.codes[i];
		memcpy(s[i].rgb, parts.rgb[i], sizeof(s[i].rgb));
		s[i].xyz = m->xyz;
		s[i].tri = m->tri;
		s[i].nvert = m->nvert;
		s[i].ntri = m->ntri;
		s[i].finite_volume = st.closed ? BRIDGE_FLAG_YES : BRIDGE_FLAG_NO;
		s[i].manifold = st.manifold ? BRIDGE_FLAG_YES : BRIDGE_FLAG_NO;
		fprintf(facts, "structure %s %zu %zu %s %s %d %.6f %.6f %.6f\n", s[i].name,
			m->nvert, m->ntri, flag_name(s[i].finite_volume), flag_name(s[i].manifold),
			parts.convex[i] ? 1 : 0, s[i].rgb[0], s[i].rgb[1], s[i].rgb[2]);
		snprintf(path, sizeof(path), "%s/%s.xyz", argv[2], s[i].name);
		if (!write_raw(path, m->xyz, m->nvert * 3 * sizeof(float))) {
			fprintf(stderr, "cannot write %s\n", path);
			goto out;
		}
		snprintf(path, sizeof(path), "%s/%s.tri", argv[2], s[i].name);
		if (!write_raw(path, m->tri, m->ntri * 3 * sizeof(uint32_t))) {
			fprintf(stderr, "cannot write %s\n", path);
			goto out;
		}
		snprintf(path, sizeof(path), "%s/%s.stl", argv[2], s[i].name);
		if (!mesh_stl_write(&err, path, m, s[i].name))
			goto fail;
	}

	/* One Surface Segmentation with every structure. */
	memset(&info, 0, sizeof(info));
	info.source_path = src;
	info.refs = refs;
	info.nrefs = (size_t)n;
	info.series_uid = series_uid;
	info.series_number = 9001;
	info.series_description = "3D models (surface segmentation)";
	info.sop_instance_uid = sop_uid;
	info.instance_number = 1;
	if (!bridge_uid_derive(&err, attrs[0].series_uid, "export test surfseg series", series_uid) ||
	    !bridge_uid_derive(&err, attrs[0].series_uid, "export test surfseg instance", sop_uid))
		goto fail;
	snprintf(path, sizeof(path), "%s/surfseg.dcm", argv[2]);
	t0 = clock_mono_s();
	if (!bridge_write_surface_segmentation(&err, path, &info, s, parts.count))
		goto fail;
	fprintf(facts, "object surfseg %s %s %s\n", path, series_uid, sop_uid);
	fprintf(facts, "seconds surfseg %.3f\n", clock_mono_s() - t0);
	t0 = clock_mono_s();

	/* One Encapsulated STL per structure, each in its own series. */
	for (size_t i = 0; i < parts.count; i++) {
		char stl[2048];
		snprintf(label, sizeof(label), "export test stl %s series", s[i].name);
		if (!bridge_uid_derive(&err, attrs[0].series_uid, label, series_uid))
			goto fail;
		snprintf(label, sizeof(label), "export test stl %s instance", s[i].name);
		if (!bridge_uid_derive(&err, attrs[0].series_uid, label, sop_uid))
			goto fail;
		snprintf(desc, sizeof(desc), "3D model: %s (STL)", s[i].name);
		info.series_description = desc;
		info.series_number = 9010 + (long)i;
		snprintf(stl, sizeof(stl), "%s/%s.stl", argv[2], s[i].name);
		snprintf(path, sizeof(path), "%s/stl_%s.dcm", argv[2], s[i].name);
		if (!bridge_write_encapsulated_stl(&err, path, &info, s[i].name, stl))
			goto fail;
		fprintf(facts, "object stl_%s %s %s %s\n", s[i].name, path, series_uid, sop_uid);
	}
	fprintf(facts, "seconds stl %.3f\n", clock_mono_s() - t0);
	status = 0;
	goto out;
fail:
	fprintf(stderr, "export_write: %s\n", err.msg);
out:
	if (facts != NULL && fclose(facts) != 0)
		status = 1;
	for (size_t i = 0; i < MAX_PARTS; i++)
		mesh_destroy(parts.own[i]);
	if (parts.have_res)
		pipeline_result_free(&parts.res);
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	bridge_cleanup();
	return status;
}
