/*
 * viewer.c: the 3D page's server side (see r3d/viewer.h): tokens, link URLs,
 * and the answers under /viewer/ (page, models.json, STL downloads, the
 * embedded assets). Runs on libmicrohttpd's thread (answers) and the
 * notifier thread (links); keeps no state of its own.
 */
#include "r3d/viewer.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

#include "assets.h"
#include "r3d/log.h"
#include "r3d/util.h"

#define VIEWER_KEY_MAX 160          /* bytes of a structure's download name */
#define VIEWER_LABEL_MAX 160        /* bytes of a series label */
#define VIEWER_NAME_MAX 64          /* bytes of a structure name we accept */
#define VIEWER_DAY_S 86400.0

/* Everything under /viewer/ is ours: nothing may be loaded from elsewhere,
 * nothing may frame the page, and the link never leaves in a Referer. */
#define VIEWER_CSP                                                                     \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
#define CACHE_PRIVATE "no-store"
#define CACHE_ASSET "public, max-age=86400"
#define NOT_FOUND_BODY "not found\n"

/* ---- tokens and links ------------------------------------------------------ */

bool viewer_token_new(struct r3d_err *err, char out[VIEWER_TOKEN_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[VIEWER_TOKEN_BYTES];

	out[0] = '\0';
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return r3d_err_set(err, R3D_EIO, "viewer: the random generator failed");
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 0x0F];
	}
	out[VIEWER_TOKEN_LEN] = '\0';
	return true;
}

bool viewer_token_valid(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		if (n == VIEWER_TOKEN_LEN)
			return false;
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	}
	return n == VIEWER_TOKEN_LEN;
}

bool viewer_link_url(struct r3d_err *err, const struct config *cfg, const char *token, char *out,
		     size_t size)
{
	int n;

	if (cfg->viewer_base_url[0] != '\0')
		n = snprintf(out, size, "%s/viewer/%s", cfg->viewer_base_url, token);
	else if (strchr(cfg->http_bind, ':') != NULL)   /* IPv6 literal */
		n = snprintf(out, size, "http://[%s]:%d/viewer/%s", cfg->http_bind, cfg->http_port, token);
	else
		n = snprintf(out, size, "%s://%s:%d/viewer/%s",
			     cfg->http_tls_certificate[0] != '\0' ? "https" : "http", cfg->http_bind,
			     cfg->http_port, token);
	if (n < 0 || (size_t)n >= size)
		return r3d_err_set(err, R3D_EINVAL, "viewer: [viewer] base_url too long for a link");
	return true;
}

bool viewer_link_for_study(struct r3d_err *err, const struct config *cfg, struct index *idx,
			   const char *study_uid, double now, char *url, size_t size)
{
	char candidate[VIEWER_TOKEN_LEN + 1], token[INDEX_VIEWER_TOKEN_MAX];
	double expires_at = 0;
	bool created = false, ok = false;

	url[0] = '\0';
	if (!viewer_token_new(err, candidate))
		return false;
	if (!index_viewer_link_ensure(err, idx, study_uid, candidate, now,
				      cfg->viewer_link_ttl_days * VIEWER_DAY_S, token, &expires_at,
				      &created))
		goto out;
	if (!viewer_link_url(err, cfg, token, url, size))
		goto out;
	if (created)
		log_info("viewer", "link made study=%s valid_days=%d", study_uid,
			 cfg->viewer_link_ttl_days);
	ok = true;
out:
	memset(candidate, 0, sizeof(candidate));
	memset(token, 0, sizeof(token));
	if (!ok)
		url[0] = '\0';
	return ok;
}

/* ---- the study's structures ------------------------------------------------ */

struct vstructure {
	const char *name;              /* in reports[]: the catalogue key */
	const char *label;             /* in reports[]: the display name */
	bool body_surface;             /* the body's outer surface: hidden at first */
	char key[VIEWER_KEY_MAX];      /* download name without ".stl", unique in the study */
	int series;                    /* index into rows */
	int rgb[3];
	double volume_ml;
	json_int_t triangles;
	const char *file;              /* in reports[]; checked to be a plain name */
	const char *mesh_file;         /* the indexed mesh for the page, or NULL (older results) */
	json_t *measurements;          /* in reports[], passed through, or NULL (older results) */
	json_t *print;                 /* in reports[]: print readiness, passed through, or NULL */
};

struct vskipped {
	const char *name, *label, *reason;
	int series;
};

struct vstudy {
	struct index_viewer_series *rows;
	int nrows;
	json_t *reports[INDEX_STUDY_MAX_SERIES];
	struct vstructure *s;
	int ns;
	struct vskipped *skipped;
	int nskipped;
};

static void vstudy_free(struct vstudy *v)
{
	for (int i = 0; i < v->nrows; i++)
		json_decref(v->reports[i]);
	index_viewer_series_free(v->rows, v->nrows);
	free(v->s);
	free(v->skipped);
	memset(v, 0, sizeof(*v));
}

/* A file name from a report we are willing to open under results_dir. */
static bool plain_name(const char *f, const char *suffix)
{
	size_t n = f != NULL ? strlen(f) : 0, ns = strlen(suffix);

	return n > ns && n < VIEWER_KEY_MAX && f[0] != '.' && strchr(f, '/') == NULL &&
	       strcmp(f + n - ns, suffix) == 0;
}


/* Letters, digits, '-' and '_' only: safe in a URL path and a file name. */
static void sanitize(char *s)
{
	for (; *s != '\0'; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			*s = '_';
	}
}

static int colour_byte(double v, bool unit)
{
	double x = unit ? v * 255.0 : v;

	if (!isfinite(x) || x < 0)
		return 0;
	return x > 255 ? 255 : (int)lround(x);
}

static void series_label(const struct index_viewer_series *r, int pos, char *out, size_t size)
{
	if (r->series_number >= 0 && r->series_description[0] != '\0')
		snprintf(out, size, "series %ld: %s", r->series_number, r->series_description);
	else if (r->series_number >= 0)
		snprintf(out, size, "series %ld", r->series_number);
	else if (r->series_description[0] != '\0')
		snprintf(out, size, "series %d: %s", pos + 1, r->series_description);
	else
		snprintf(out, size, "series %d", pos + 1);
}

/* Every done series' structures; download names made unique: the structure
 * name alone when only one series has it, else with the series number. */
static bool vstudy_load(struct r3d_err *err, struct index *idx, const char *study_uid,
			struct vstudy *v)
{
	memset(v, 0, sizeof(*v));
	v->nrows = index_viewer_study_series(err, idx, study_uid, &v->rows);
	if (v->nrows < 0) {
		v->nrows = 0;
		return false;
	}
	v->s = calloc(VIEWER_MAX_STRUCTURES, sizeof(*v->s));
	v->skipped = calloc(VIEWER_MAX_STRUCTURES, sizeof(*v->skipped));
	if (v->s == NULL || v->skipped == NULL) {
		vstudy_free(v);
		return r3d_err_set(err, R3D_ENOMEM, "viewer: out of memory");
	}
	for (int i = 0; i < v->nrows; i++) {
		json_t *arr, *st;
		size_t k;

		v->reports[i] = v->rows[i].report != NULL ? json_loads(v->rows[i].report, 0, NULL) : NULL;
		arr = json_object_get(v->reports[i], "structures");
		json_array_foreach(arr, k, st) {
			const char *name = json_string_value(json_object_get(st, "name"));
			const char *label = json_string_value(json_object_get(st, "label"));
			const char *file = json_string_value(json_object_get(st, "file"));
			json_t *body = json_object_get(st, "body_surface");
			json_t *rgb = json_object_get(st, "color_rgb");
			bool unit = true;

			if (name == NULL || name[0] == '\0' || strlen(name) >= VIEWER_NAME_MAX)
				continue;
			/* Results from before the structure catalogue have no label. */
			if (label == NULL || label[0] == '\0' || strlen(label) >= VIEWER_NAME_MAX)
				label = name;
			if (file == NULL || json_object_get(st, "triangles") == NULL) {
				if (v->nskipped < VIEWER_MAX_STRUCTURES) {
					struct vskipped *sk = &v->skipped[v->nskipped++];
					sk->name = name;
					sk->label = label;
					sk->reason = json_string_value(json_object_get(st, "skipped_reason"));
					sk->series = i;
				}
				continue;
			}
			if (!plain_name(file, ".stl") || v->ns == VIEWER_MAX_STRUCTURES)
				continue;
			struct vstructure *s = &v->s[v->ns++];
			s->name = name;
			s->label = label;
			/* ... nor a body_surface flag: their body surface was "skin". */
			s->body_surface = json_is_boolean(body) ? json_is_true(body) : strcmp(name, "skin") == 0;
			s->file = file;
			s->mesh_file = json_string_value(json_object_get(st, "mesh_file"));
			if (!plain_name(s->mesh_file, ".mesh"))
				s->mesh_file = NULL;
			s->measurements = json_object_get(st, "measurements");
			if (!json_is_object(s->measurements))
				s->measurements = NULL;
			s->print = json_object_get(st, "print");
			if (!json_is_object(s->print))
				s->print = NULL;
			s->series = i;
			s->triangles = json_integer_value(json_object_get(st, "triangles"));
			s->volume_ml = json_number_value(json_object_get(st, "volume_ml"));
			for (int c = 0; c < 3; c++)
				if (json_number_value(json_array_get(rgb, (size_t)c)) > 1.0)
					unit = false;
			for (int c = 0; c < 3; c++)
				s->rgb[c] = colour_byte(json_number_value(json_array_get(rgb, (size_t)c)), unit);
		}
	}
	for (int a = 0; a < v->ns; a++) {
		bool shared = false;
		for (int b = 0; b < v->ns; b++)
			if (b != a && strcmp(v->s[a].name, v->s[b].name) == 0)
				shared = true;
		if (!shared)
			snprintf(v->s[a].key, sizeof(v->s[a].key), "%s", v->s[a].name);
		else if (v->rows[v->s[a].series].series_number >= 0)
			snprintf(v->s[a].key, sizeof(v->s[a].key), "%s_series%ld", v->s[a].name,
				 v->rows[v->s[a].series].series_number);
		else
			snprintf(v->s[a].key, sizeof(v->s[a].key), "%s_%d", v->s[a].name, v->s[a].series + 1);
		sanitize(v->s[a].key);
	}
	/* Two series with the same number: the later one gets its position too. */
	for (int a = 0; a < v->ns; a++)
		for (int b = 0; b < a; b++)
			if (strcmp(v->s[a].key, v->s[b].key) == 0) {
				size_t n = strlen(v->s[a].key);
				snprintf(v->s[a].key + n, sizeof(v->s[a].key) - n, "_%d", a + 1);
				break;
			}
	return true;
}

static json_t *jtime(double wall_s)
{
	time_t t = (time_t)floor(wall_s);
	struct tm tm;
	char buf[32];

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return json_null();
	return json_string(buf);
}

/* A JSON string of text that may not be UTF-8 (series descriptions). */
static json_t *jtext(const char *s)
{
	json_t *j = json_string(s);
	char *copy;

	if (j != NULL)
		return j;
	copy = strdup(s);
	if (copy == NULL)
		return json_null();
	for (char *p = copy; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j != NULL ? j : json_null();
}

/* The viewer key of structure `name` of series `series`, or NULL. */
static const char *vstudy_key(const struct vstudy *v, int series, const char *name)
{
	for (int k = 0; k < v->ns; k++)
		if (v->s[k].series == series && strcmp(v->s[k].name, name) == 0)
			return v->s[k].key;
	return NULL;
}

/* Each report's "distances" (shortest surface-to-surface distance of two
 * structures), unchanged but for "a" and "b", which become the page's keys
 * (the structure name alone unless two series have it). */
static void distances_add(const struct vstudy *v, json_t *out)
{
	for (int i = 0; i < v->nrows; i++) {
		json_t *d;
		size_t k;

		json_array_foreach(json_object_get(v->reports[i], "distances"), k, d) {
			const char *a = json_string_value(json_object_get(d, "a"));
			const char *b = json_string_value(json_object_get(d, "b"));
			const char *ka = a != NULL ? vstudy_key(v, i, a) : NULL;
			const char *kb = b != NULL ? vstudy_key(v, i, b) : NULL;
			json_t *copy;

			if (ka == NULL || kb == NULL || !json_is_object(d))
				continue;
			copy = json_copy(d);
			if (copy == NULL)
				continue;
			json_object_set_new(copy, "a", json_string(ka));
			json_object_set_new(copy, "b", json_string(kb));
			json_array_append_new(out, copy);
		}
	}
}

static char *models_json(const struct vstudy *v, double expires_at)
{
	json_t *root = json_object(), *series = json_array(), *structs = json_array(),
	       *skipped = json_array();
	char label[VIEWER_LABEL_MAX], file[VIEWER_KEY_MAX + 8];
	char *out;

	if (root == NULL || series == NULL || structs == NULL || skipped == NULL) {
		json_decref(root);
		json_decref(series);
		json_decref(structs);
		json_decref(skipped);
		return NULL;
	}
	for (int i = 0; i < v->nrows; i++) {
		const struct index_viewer_series *r = &v->rows[i];
		series_label(r, i, label, sizeof(label));
		json_array_append_new(series,
				      json_pack("{s:o, s:o, s:o}", "label", jtext(label), "number",
						r->series_number >= 0 ? json_integer(r->series_number) :
									json_null(),
						"description", jtext(r->series_description)));
	}
	for (int k = 0; k < v->ns; k++) {
		const struct vstructure *s = &v->s[k];
		snprintf(file, sizeof(file), "%s.stl", s->key);
		json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:i, s:[i,i,i], s:f, s:I, s:s}", "name",
				      s->name, "label", s->label, "key", s->key, "body_surface",
				      s->body_surface, "series", s->series, "color_rgb", s->rgb[0],
				      s->rgb[1], s->rgb[2], "volume_ml",
				      round(s->volume_ml * 100.0) / 100.0, "triangles",
				      s->triangles, "file", file);
		if (o != NULL && s->mesh_file != NULL) {
			snprintf(file, sizeof(file), "%s.mesh", s->key);
			json_object_set_new(o, "mesh", json_string(file));
		}
		if (o != NULL && s->measurements != NULL)
			json_object_set(o, "measurements", s->measurements);
		if (o != NULL && s->print != NULL)
			json_object_set(o, "print", s->print);
		json_array_append_new(structs, o);
	}
	for (int k = 0; k < v->nskipped; k++) {
		const struct vskipped *s = &v->skipped[k];
		json_array_append_new(skipped, json_pack("{s:s, s:s, s:i, s:s}", "name", s->name,
							 "label", s->label, "series", s->series, "reason",
							 s->reason != NULL ? s->reason : "not produced"));
	}
	json_object_set_new(root, "expires_at", jtime(expires_at));
	json_object_set_new(root, "series", series);
	json_object_set_new(root, "structures", structs);
	json_object_set_new(root, "skipped", skipped);
	json_t *distances = json_array();
	if (distances != NULL) {
		distances_add(v, distances);
		json_object_set_new(root, "distances", distances);
	}
	json_object_set_new(root, "generator", json_string("recon3d " R3D_VERSION));
	out = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(root);
	return out;
}

/* ---- answers --------------------------------------------------------------- */

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned code, struct MHD_Response *rsp,
			     const char *type, const char *cache)
{
	enum MHD_Result ret;

	if (rsp == NULL)
		return MHD_NO;
	MHD_add_response_header(rsp, "Content-Type", type);
	MHD_add_response_header(rsp, "Cache-Control", cache);
	MHD_add_response_header(rsp, "Content-Security-Policy", VIEWER_CSP);
	MHD_add_response_header(rsp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(rsp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(rsp, "X-Frame-Options", "DENY");
	ret = MHD_queue_response(conn, code, rsp);
	MHD_destroy_response(rsp);
	return ret;
}

/* One answer for every miss: malformed, unknown or expired token, unknown
 * structure or asset. Nothing tells them apart. */
static enum MHD_Result not_found(struct MHD_Connection *conn)
{
	return queue(conn, MHD_HTTP_NOT_FOUND,
		     MHD_create_response_from_buffer(strlen(NOT_FOUND_BODY), (void *)NOT_FOUND_BODY,
						     MHD_RESPMEM_PERSISTENT),
		     "text/plain", CACHE_PRIVATE);
}

static enum MHD_Result server_error(struct MHD_Connection *conn)
{
	static const char body[] = "internal error\n";

	return queue(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
		     MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT),
		     "text/plain", CACHE_PRIVATE);
}

static const struct viewer_asset *asset_find(const char *name)
{
	for (size_t i = 0; i < viewer_nassets; i++)
		if (strcmp(viewer_assets[i].name, name) == 0)
			return &viewer_assets[i];
	return NULL;
}

/* True when the request's Accept-Encoding names gzip (without q=0). */
static bool accepts_gzip(struct MHD_Connection *conn)
{
	const char *ae = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept-Encoding");
	const char *g = ae != NULL ? strstr(ae, "gzip") : NULL;

	if (g == NULL)
		return false;
	g += 4;
	while (*g == ' ')
		g++;
	return !(strncmp(g, ";q=0", 4) == 0 && strspn(g + 4, "0.") == strcspn(g + 4, ","));
}

static enum MHD_Result send_asset(struct MHD_Connection *conn, const struct viewer_asset *a,
				  const char *cache)
{
	bool gz = a->gz_size > 0 && accepts_gzip(conn);
	struct MHD_Response *rsp = MHD_create_response_from_buffer(
		gz ? a->gz_size : a->size, (void *)(gz ? a->gz : a->data), MHD_RESPMEM_PERSISTENT);

	if (rsp != NULL) {
		if (gz)
			MHD_add_response_header(rsp, "Content-Encoding", "gzip");
		if (a->gz_size > 0)
			MHD_add_response_header(rsp, "Vary", "Accept-Encoding");
	}
	return queue(conn, MHD_HTTP_OK, rsp, a->type, cache);
}

/* An STL compressed while it is sent (gzip, level 1: binary STL halves, at
 * about 60 MB/s of one core, a chunk per call, so the HTTP thread never
 * blocks on a whole file). */
#define GZ_CHUNK (64 * 1024)

struct gz_stream {
	int fd;
	bool eof, done;
	z_stream z;
	unsigned char in[GZ_CHUNK];
};

static ssize_t gz_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct gz_stream *g = cls;

	(void)pos;
	if (g->done)
		return MHD_CONTENT_READER_END_OF_STREAM;
	g->z.next_out = (Bytef *)buf;
	g->z.avail_out = (uInt)(max > UINT32_MAX ? UINT32_MAX : max);
	while (g->z.avail_out > 0 && !g->done) {
		if (g->z.avail_in == 0 && !g->eof) {
			ssize_t n = read(g->fd, g->in, sizeof(g->in));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			g->eof = n == 0;
			g->z.next_in = g->in;
			g->z.avail_in = (uInt)n;
		}
		int rc = deflate(&g->z, g->eof ? Z_FINISH : Z_NO_FLUSH);
		if (rc == Z_STREAM_END)
			g->done = true;
		else if (rc != Z_OK && rc != Z_BUF_ERROR)
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	size_t produced = (size_t)(g->z.next_out - (Bytef *)buf);
	return produced > 0 ? (ssize_t)produced : MHD_CONTENT_READER_END_OF_STREAM;
}

static void gz_free(void *cls)
{
	struct gz_stream *g = cls;

	deflateEnd(&g->z);
	close(g->fd);
	free(g);
}

/* A response that sends fd gzip-compressed; takes fd (closed on failure). */
static struct MHD_Response *gz_response(int fd)
{
	struct gz_stream *g = calloc(1, sizeof(*g));
	struct MHD_Response *rsp;

	if (g == NULL) {
		close(fd);
		return NULL;
	}
	g->fd = fd;
	if (deflateInit2(&g->z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		close(fd);
		free(g);
		return NULL;
	}
	rsp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, GZ_CHUNK, gz_read, g, gz_free);
	if (rsp == NULL)
		gz_free(g);
	return rsp;
}

/* One structure's STL (a download) or, with mesh, its indexed mesh (for the page). */
static enum MHD_Result send_model(struct MHD_Connection *conn, const struct vstudy *v,
				  const char *key, const char *study_uid, bool mesh)
{
	char path[4096 + VIEWER_KEY_MAX + 2], disposition[VIEWER_KEY_MAX + 64];
	struct MHD_Response *rsp;
	struct stat sb;
	int fd;

	for (int k = 0; k < v->ns; k++) {
		const struct vstructure *s = &v->s[k];
		if (strcmp(s->key, key) != 0)
			continue;
		const char *file = mesh ? s->mesh_file : s->file;
		if (file == NULL)
			return not_found(conn);
		snprintf(path, sizeof(path), "%s/%s", v->rows[s->series].results_dir, file);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
			log_warn("viewer", "study=%s: model %s missing from its results folder", study_uid,
				 file);
			if (fd >= 0)
				close(fd);
			return not_found(conn);
		}
		bool gz = accepts_gzip(conn);
		if (gz) {
			rsp = gz_response(fd);   /* owns fd */
		} else {
			rsp = MHD_create_response_from_fd((uint64_t)sb.st_size, fd);   /* owns fd */
			if (rsp == NULL)
				close(fd);
		}
		if (rsp == NULL)
			return MHD_NO;
		if (gz)
			MHD_add_response_header(rsp, "Content-Encoding", "gzip");
		MHD_add_response_header(rsp, "Vary", "Accept-Encoding");
		if (mesh) {
			log_debug("viewer", "model study=%s structure=%s format=mesh", study_uid, s->key);
			return queue(conn, MHD_HTTP_OK, rsp, "application/octet-stream", CACHE_PRIVATE);
		}
		snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s.stl\"", s->key);
		MHD_add_response_header(rsp, "Content-Disposition", disposition);
		log_debug("viewer", "download study=%s structure=%s", study_uid, s->key);
		return queue(conn, MHD_HTTP_OK, rsp, "model/stl", CACHE_PRIVATE);
	}
	return not_found(conn);
}

enum MHD_Result viewer_answer(const struct config *cfg, struct index *idx,
			      struct MHD_Connection *conn, const char *path)
{
	char token[VIEWER_TOKEN_LEN + 1], study_uid[BRIDGE_UID_MAX + 1];
	const char *rest, *slash;
	struct r3d_err err;
	struct vstudy v;
	double expires_at = 0;
	enum MHD_Result ret;
	int found;

	if (!cfg->viewer_enabled)
		return not_found(conn);
	if (strncmp(path, "assets/", 7) == 0) {
		const struct viewer_asset *a = asset_find(path);
		return a != NULL ? send_asset(conn, a, CACHE_ASSET) : not_found(conn);
	}
	slash = strchr(path, '/');
	if ((slash != NULL ? (size_t)(slash - path) : strlen(path)) != VIEWER_TOKEN_LEN)
		return not_found(conn);
	memcpy(token, path, VIEWER_TOKEN_LEN);
	token[VIEWER_TOKEN_LEN] = '\0';
	rest = slash != NULL ? slash + 1 : NULL;
	if (!viewer_token_valid(token))
		return not_found(conn);
	found = index_viewer_link_find(&err, idx, token, clock_wall_s(), study_uid, &expires_at);
	memset(token, 0, sizeof(token));
	if (found < 0) {
		log_error("viewer", "%s", err.msg);
		return server_error(conn);
	}
	if (found == 0)
		return not_found(conn);
	if (rest == NULL) {
		const struct viewer_asset *page = asset_find("page");
		log_debug("viewer", "page study=%s", study_uid);
		return page != NULL ? send_asset(conn, page, CACHE_PRIVATE) : server_error(conn);
	}
	if (!vstudy_load(&err, idx, study_uid, &v)) {
		log_error("viewer", "study=%s: %s", study_uid, err.msg);
		return server_error(conn);
	}
	if (strcmp(rest, "models.json") == 0) {
		char *body = models_json(&v, expires_at);
		if (body == NULL) {
			ret = server_error(conn);
		} else {
			struct MHD_Response *rsp =
				MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
			if (rsp == NULL)
				free(body);
			ret = queue(conn, MHD_HTTP_OK, rsp, "application/json", CACHE_PRIVATE);
		}
	} else {
		/* <key>.stl (a download) or <key>.mesh (the page's model). */
		const char *dot = strrchr(rest, '.');
		size_t n = dot != NULL ? (size_t)(dot - rest) : 0;
		bool mesh = dot != NULL && strcmp(dot, ".mesh") == 0;
		char key[VIEWER_KEY_MAX];
		if (n > 0 && n < sizeof(key) && (mesh || strcmp(dot, ".stl") == 0)) {
			memcpy(key, rest, n);
			key[n] = '\0';
			ret = send_model(conn, &v, key, study_uid, mesh);
		} else {
			ret = not_found(conn);
		}
	}
	vstudy_free(&v);
	return ret;
}
