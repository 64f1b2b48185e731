/*
 * route.c: route rules and the choice of a study's best series (see
 * r3d/route.h; the rules are documented for PACS administrators in
 * docs/routing.md). Any thread; no state.
 */
#include "r3d/route.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ */
/* Rules                                                               */
/* ------------------------------------------------------------------ */

/* Case-insensitive POSIX extended expression found anywhere in value. The
 * config loader compiled it once already, so a failure here is a no-match. */
static bool pattern_found(const char *pattern, const char *value)
{
	regex_t re;
	bool found;

	if (regcomp(&re, pattern, REG_EXTENDED | REG_ICASE | REG_NOSUB) != 0)
		return false;
	found = regexec(&re, value, 0, NULL, 0) == 0;
	regfree(&re);
	return found;
}

/* The thickness that describes a reconstruction: Slice Thickness, else the
 * distance between its slices; 0 unknown. */
static double thickness_of(const struct route_series *s)
{
	return s->slice_thickness > 0 ? s->slice_thickness : s->spacing;
}

static const char *attr_value(enum route_attr a, const struct route_series *s)
{
	switch (a) {
	case ROUTE_ATTR_MODALITY:
		return s->modality;
	case ROUTE_ATTR_BODY_PART:
		return s->body_part;
	case ROUTE_ATTR_STUDY_DESCRIPTION:
		return s->study_description;
	case ROUTE_ATTR_SERIES_DESCRIPTION:
		return s->series_description;
	case ROUTE_ATTR_KERNEL:
		return s->kernel;
	case ROUTE_ATTR_CONTRAST:
		return s->contrast_agent;
	case ROUTE_ATTR_MANUFACTURER:
		return s->manufacturer;
	case ROUTE_ATTR_IMAGE_TYPE:
		return s->image_type;
	case ROUTE_ATTR_SLICE_THICKNESS:
	case ROUTE_NATTRS:
		break;
	}
	return "";
}

bool route_rule_holds(const struct config_route_rule *r, const struct route_series *s)
{
	if (r->attr == ROUTE_ATTR_SLICE_THICKNESS) {
		double t = thickness_of(s);
		return t > 0 && t >= r->lo - 1e-6 && t <= r->hi + 1e-6;
	}
	const char *v = attr_value(r->attr, s);
	if (r->presence != 0)
		return (v[0] != '\0') == (r->presence > 0);
	return pattern_found(r->pattern, v);
}

static bool ae_listed(const char list[][CONFIG_AE_MAX + 1], int n, const char *ae)
{
	if (n == 0)
		return true;
	for (int i = 0; i < n; i++) {
		if (strcmp(list[i], ae) == 0)
			return true;
	}
	return false;
}

static bool route_holds(const struct config_route *r, const struct route_series *s)
{
	if (!ae_listed(r->calling_ae, r->ncalling, s->calling_ae) ||
	    !ae_listed(r->called_ae, r->ncalled, s->called_ae))
		return false;
	for (int i = 0; i < r->nrules; i++) {
		if (!route_rule_holds(&r->rules[i], s))
			return false;
	}
	return true;
}

const struct config_route *route_match(const struct config *cfg, const struct route_series *s)
{
	for (int i = 0; i < cfg->nroutes; i++) {
		if (route_holds(&cfg->routes[i], s))
			return &cfg->routes[i];
	}
	return &cfg->route_default;
}

/* ------------------------------------------------------------------ */
/* What a series is                                                    */
/* ------------------------------------------------------------------ */

const char *route_orientation(const double iop[6])
{
	/* The slice normal: row x column direction cosines. */
	double n[3] = {
		iop[1] * iop[5] - iop[2] * iop[4],
		iop[2] * iop[3] - iop[0] * iop[5],
		iop[0] * iop[4] - iop[1] * iop[3],
	};
	double len = sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
	if (!(len > 0.5))
		return "oblique";
	double x = fabs(n[0]) / len, y = fabs(n[1]) / len, z = fabs(n[2]) / len;
	if (z >= 0.8)
		return "axial";
	if (y >= 0.8)
		return "coronal";
	if (x >= 0.8)
		return "sagittal";
	return "oblique";
}

/* True when the backslash-separated multi-value holds word (whole value). */
static bool value_has(const char *multi, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = multi; *p != '\0';) {
		const char *e = strchr(p, '\\');
		size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
		while (len > 0 && p[len - 1] == ' ')
			len--;
		while (len > 0 && *p == ' ') {
			p++;
			len--;
		}
		if (len == n && strncasecmp(p, word, n) == 0)
			return true;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return false;
}

/* The first value of a multi-value, upper case, into out. */
static void first_value(const char *multi, char *out, size_t size)
{
	size_t i = 0;

	while (*multi == ' ')
		multi++;
	for (; multi[i] != '\0' && multi[i] != '\\' && i + 1 < size; i++)
		out[i] = (char)toupper((unsigned char)multi[i]);
	while (i > 0 && out[i - 1] == ' ')
		i--;
	out[i] = '\0';
}

/* Kernel names, from the vendors' conformance statements and operator
 * manuals: GE names its kernels in words (SOFT, STANDARD, DETAIL: soft
 * tissue; BONE, BONEPLUS, EDGE, LUNG, CHEST: sharp); Siemens writes a family
 * letter, a subgroup letter, a two-digit sharpness and the rotation
 * ("B30f", "Br40d", "Hr38", "Bl57", "I70f"): up to 49 soft, 50 and above
 * sharp, a subgroup l (lung) sharp; Philips uses letters (A, B, UA, UB, CB:
 * soft; C, D, E, EB, L, YA..YD: sharp); Canon/Toshiba "FC" and two digits
 * (FC01..FC29: soft; FC30 and above: bone and lung). */
enum route_kernel_class route_kernel_class(const char *manufacturer, const char *kernel)
{
	static const char *const soft_words[] = {"SOFT", "STANDARD", "STND", "SMOOTH", "DETAIL",
						 "BODY", "ABDOMEN", "BRAIN", "HEAD", NULL};
	static const char *const sharp_words[] = {"BONE", "BONEPLUS", "EDGE", "LUNG", "CHEST",
						  "SHARP", "ULTRA", NULL};
	static const char *const philips_soft[] = {"A", "B", "UA", "UB", "CB", "XCA", NULL};
	static const char *const philips_sharp[] = {"C", "D", "E", "EB", "L", "YA", "YB", "YC",
						    "YD", "YE", NULL};
	char k[65];

	(void)manufacturer;   /* the name forms do not overlap between vendors */
	first_value(kernel, k, sizeof(k));
	if (k[0] == '\0')
		return ROUTE_KERNEL_UNKNOWN;
	for (int i = 0; soft_words[i] != NULL; i++)
		if (strcmp(k, soft_words[i]) == 0)
			return ROUTE_KERNEL_SOFT;
	for (int i = 0; sharp_words[i] != NULL; i++)
		if (strcmp(k, sharp_words[i]) == 0)
			return ROUTE_KERNEL_SHARP;
	/* GE "HD STANDARD", "BONE PLUS", "LUNG ..." */
	if (strstr(k, "BONE") != NULL || strstr(k, "LUNG") != NULL || strstr(k, "EDGE") != NULL)
		return ROUTE_KERNEL_SHARP;
	if (strstr(k, "STANDARD") != NULL || strstr(k, "SOFT") != NULL)
		return ROUTE_KERNEL_SOFT;
	/* Canon / Toshiba FCnn */
	if (k[0] == 'F' && k[1] == 'C' && isdigit((unsigned char)k[2]) && isdigit((unsigned char)k[3]))
		return atoi(k + 2) >= 30 ? ROUTE_KERNEL_SHARP : ROUTE_KERNEL_SOFT;
	/* Siemens: letter, optional subgroup letter, two digits */
	const char *d = k + 1;
	bool lung = false;
	if (isalpha((unsigned char)*d)) {
		lung = *d == 'L';
		d++;
	}
	if (isalpha((unsigned char)k[0]) && isdigit((unsigned char)d[0]) && isdigit((unsigned char)d[1]))
		return lung || atoi(d) >= 50 ? ROUTE_KERNEL_SHARP : ROUTE_KERNEL_SOFT;
	for (int i = 0; philips_soft[i] != NULL; i++)
		if (strcmp(k, philips_soft[i]) == 0)
			return ROUTE_KERNEL_SOFT;
	for (int i = 0; philips_sharp[i] != NULL; i++)
		if (strcmp(k, philips_sharp[i]) == 0)
			return ROUTE_KERNEL_SHARP;
	return ROUTE_KERNEL_UNKNOWN;
}

enum route_phase route_series_phase(const struct route_series *s)
{
	const char *d = s->series_description;

	if (pattern_found("(^|[^a-z])(non[- ]?con|native|plain|pre[- ]?contrast|without|w/o|nc)"
			  "([^a-z]|$)", d))
		return ROUTE_PHASE_NONE;
	if (pattern_found("arter|(^|[^a-z])(art|cta|angio|aorta)([^a-z]|$)", d))
		return ROUTE_PHASE_ARTERIAL;
	if (pattern_found("venous|portal|(^|[^a-z])(pv|delay(ed)?|late|nephro|excretory)([^a-z]|$)", d))
		return ROUTE_PHASE_VENOUS;
	if (s->contrast_agent[0] != '\0' || pattern_found("contrast|(^|[^a-z])c\\+", d))
		return ROUTE_PHASE_UNKNOWN;
	return ROUTE_PHASE_NONE;
}

static const char *phase_name(enum route_phase p)
{
	static const char *const names[] = {"no contrast", "contrast, phase unknown", "arterial",
					    "venous"};
	return names[p];
}

static const char *kernel_class_name(enum route_kernel_class k)
{
	static const char *const names[] = {"unknown", "soft-tissue", "sharp (bone/lung)"};
	return names[k];
}

/* Why the pipeline or the route rules cannot take s at all, or NULL. */
static const char *excluded(const struct route_series *s, char *buf, size_t size)
{
	if (strcmp(s->modality, "SR") == 0 || strncmp(s->sop_class_uid, "1.2.840.10008.5.1.4.1.1.88.", 27) == 0) {
		snprintf(buf, size, "a structured report (dose report), not images");
		return buf;
	}
	if (value_has(s->image_type, "LOCALIZER")) {
		snprintf(buf, size, "a localizer (Image Type %s)", s->image_type);
		return buf;
	}
	if (strncmp(s->sop_class_uid, "1.2.840.10008.5.1.4.1.1.7", 25) == 0) {
		snprintf(buf, size, "a secondary capture, not CT images");
		return buf;
	}
	if (value_has(s->image_type, "SCREEN SAVE") || value_has(s->image_type, "DOSE INFO") ||
	    pattern_found("dose (report|info)|patient protocol", s->series_description)) {
		snprintf(buf, size, "a dose report or screen capture (Image Type %s)", s->image_type);
		return buf;
	}
	char first[17];
	first_value(s->image_type, first, sizeof(first));
	const char *second = strchr(s->image_type, '\\');
	if (strcmp(first, "DERIVED") == 0 || (second != NULL && strncasecmp(second + 1, "SECONDARY", 9) == 0)) {
		snprintf(buf, size, "derived or secondary images (Image Type %s)", s->image_type);
		return buf;
	}
	if (s->unusable[0] != '\0')
		return s->unusable;
	if (s->orientation[0] != '\0' && strcmp(s->orientation, "axial") != 0) {
		snprintf(buf, size, "a %s reconstruction, not axial", s->orientation);
		return buf;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The best series of a route                                          */
/* ------------------------------------------------------------------ */

/* What the route's structures ask of a series. */
struct needs {
	enum structure_phase phase;        /* arterial when any structure needs it */
	enum route_kernel_class kernel;    /* sharp when every structure with a wish asks
					    * for it, soft when any asks for soft */
};

bool route_makes(const struct config_route *r, const struct structure_def *d)
{
	if (!r->structures_set)
		return d->enabled;
	size_t n = strlen(d->key);
	for (const char *p = r->structures; (p = strstr(p, d->key)) != NULL; p += n) {
		bool start = p == r->structures || p[-1] == ' ' || p[-1] == ',';
		bool end = p[n] == '\0' || p[n] == ' ' || p[n] == ',';
		if (start && end)
			return true;
	}
	return false;
}

static struct needs needs_of(const struct config *cfg, const struct config_route *r)
{
	struct needs nd = {STRUCTURE_PHASE_ANY, ROUTE_KERNEL_UNKNOWN};
	bool soft = false, sharp = false;

	for (size_t i = 0; i < cfg->structures.n; i++) {
		const struct structure_def *d = &cfg->structures.def[i];
		if (!route_makes(r, d))
			continue;
		if (d->phase == STRUCTURE_PHASE_ARTERIAL)
			nd.phase = STRUCTURE_PHASE_ARTERIAL;
		else if (d->phase == STRUCTURE_PHASE_VENOUS && nd.phase == STRUCTURE_PHASE_ANY)
			nd.phase = STRUCTURE_PHASE_VENOUS;
		soft |= d->kernel == STRUCTURE_KERNEL_SOFT;
		sharp |= d->kernel == STRUCTURE_KERNEL_SHARP;
	}
	nd.kernel = soft ? ROUTE_KERNEL_SOFT : sharp ? ROUTE_KERNEL_SHARP : ROUTE_KERNEL_UNKNOWN;
	return nd;
}

static int phase_score(const struct needs *nd, enum route_phase p)
{
	if (nd->phase == STRUCTURE_PHASE_ARTERIAL)
		return p == ROUTE_PHASE_ARTERIAL ? 3 : p == ROUTE_PHASE_UNKNOWN ? 2 :
		       p == ROUTE_PHASE_VENOUS ? 1 : 0;
	if (nd->phase == STRUCTURE_PHASE_VENOUS)
		return p == ROUTE_PHASE_VENOUS ? 3 : p == ROUTE_PHASE_UNKNOWN ? 2 :
		       p == ROUTE_PHASE_ARTERIAL ? 1 : 0;
	return 0;
}

static int kernel_score(const struct needs *nd, enum route_kernel_class k)
{
	if (nd->kernel == ROUTE_KERNEL_UNKNOWN || k == ROUTE_KERNEL_UNKNOWN)
		return 1;
	return k == nd->kernel ? 2 : 0;
}

static double clamped_thickness(const struct route_series *s)
{
	double t = thickness_of(s);
	if (!(t > 0))
		return ROUTE_THICK_CAP_MM;   /* unknown: as a series at the cap */
	return t < ROUTE_THIN_FLOOR_MM ? ROUTE_THIN_FLOOR_MM : t;
}

/* > 0 when a is better than b for the route; when b loses, why into why. */
static int compare(const struct needs *nd, const struct route_series *a, const struct route_series *b,
		   double longest, char *why, size_t size)
{
	int d;

	d = phase_score(nd, route_series_phase(a)) - phase_score(nd, route_series_phase(b));
	if (d != 0) {
		snprintf(why, size, "contrast phase %s where the structures need %s (chosen: %s)",
			 phase_name(route_series_phase(d > 0 ? b : a)), structure_phase_name(nd->phase),
			 phase_name(route_series_phase(d > 0 ? a : b)));
		return d;
	}
	double ta = thickness_of(a), tb = thickness_of(b);
	bool ina = ta > 0 && ta <= ROUTE_THICK_CAP_MM + 1e-6, inb = tb > 0 && tb <= ROUTE_THICK_CAP_MM + 1e-6;
	if (ina != inb) {
		const struct route_series *lose = ina ? b : a, *win = ina ? a : b;
		snprintf(why, size, "%.2g mm thick, over the %.0f mm preferred (chosen: %.2g mm)",
			 thickness_of(lose), ROUTE_THICK_CAP_MM, thickness_of(win));
		return ina ? 1 : -1;
	}
	if (longest > 0 && a->extent_mm > 0 && b->extent_mm > 0) {
		bool fa = a->extent_mm >= ROUTE_COVERAGE_MIN * longest;
		bool fb = b->extent_mm >= ROUTE_COVERAGE_MIN * longest;
		if (fa != fb) {
			const struct route_series *lose = fa ? b : a, *win = fa ? a : b;
			snprintf(why, size, "covers %.0f mm of the body where the chosen series covers %.0f mm",
				 lose->extent_mm, win->extent_mm);
			return fa ? 1 : -1;
		}
	}
	enum route_kernel_class ka = route_kernel_class(a->manufacturer, a->kernel);
	enum route_kernel_class kb = route_kernel_class(b->manufacturer, b->kernel);
	d = kernel_score(nd, ka) - kernel_score(nd, kb);
	if (d != 0) {
		const struct route_series *lose = d > 0 ? b : a, *win = d > 0 ? a : b;
		snprintf(why, size, "%s kernel (%s) where the structures are best made on a %s one "
			 "(chosen: %s)", kernel_class_name(route_kernel_class(lose->manufacturer, lose->kernel)),
			 lose->kernel, kernel_class_name(nd->kernel), win->kernel);
		return d;
	}
	double ca = clamped_thickness(a), cb = clamped_thickness(b);
	if (fabs(ca - cb) > 0.05) {
		const struct route_series *lose = ca < cb ? b : a, *win = ca < cb ? a : b;
		snprintf(why, size, "thicker reconstruction (%.2g mm; chosen: %.2g mm)",
			 thickness_of(lose), thickness_of(win));
		return ca < cb ? 1 : -1;
	}
	if (fabs(a->extent_mm - b->extent_mm) > 1.0) {
		const struct route_series *lose = a->extent_mm > b->extent_mm ? b : a;
		const struct route_series *win = lose == a ? b : a;
		snprintf(why, size, "covers %.0f mm (chosen: %.0f mm)", lose->extent_mm, win->extent_mm);
		return a->extent_mm > b->extent_mm ? 1 : -1;
	}
	/* Equal by every rule: the lower series number, then the UID, so that the
	 * choice never depends on the order of arrival. */
	long na = a->series_number < 0 ? 1L << 30 : a->series_number;
	long nb = b->series_number < 0 ? 1L << 30 : b->series_number;
	d = na != nb ? (na < nb ? 1 : -1) : strcmp(b->series_uid, a->series_uid);
	snprintf(why, size, "equal to the chosen series by every rule; the lower series number wins");
	return d > 0 ? 1 : d < 0 ? -1 : 0;
}

void route_select(const struct config *cfg, const struct route_series *s, size_t n,
		  const char *override, struct route_choice *out)
{
	const struct config_route *forced = override != NULL ? config_route_find(cfg, override) : NULL;
	char buf[ROUTE_REASON_MAX];

	for (size_t i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		out[i].route = forced != NULL ? forced : route_match(cfg, &s[i]);
	}
	/* Each route on its own series. */
	for (size_t i = 0; i < n; i++) {
		const struct config_route *r = out[i].route;
		bool first = true;
		for (size_t j = 0; j < i; j++)
			first &= out[j].route != r;
		if (!first)
			continue;
		struct needs nd = needs_of(cfg, r);
		size_t best = n, ncand = 0;
		double longest = 0;
		for (size_t j = i; j < n; j++) {
			if (out[j].route != r)
				continue;
			const char *why = excluded(&s[j], buf, sizeof(buf));
			if (r->policy == ROUTE_IGNORE) {
				snprintf(out[j].reason, sizeof(out[j].reason), "route %s ignores it", r->name);
				out[j].ignored = true;
				continue;
			}
			if (why != NULL) {
				snprintf(out[j].reason, sizeof(out[j].reason), "%s", why);
				out[j].excluded = true;
				continue;
			}
			out[j].chosen = true;   /* a candidate, for now */
			ncand++;
			if (s[j].extent_mm > longest)
				longest = s[j].extent_mm;
		}
		if (r->policy == ROUTE_ALL) {
			for (size_t j = i; j < n; j++) {
				if (out[j].route == r && out[j].chosen)
					snprintf(out[j].reason, sizeof(out[j].reason),
						 "route %s takes every usable series", r->name);
			}
			continue;
		}
		for (size_t j = i; j < n; j++) {
			if (out[j].route != r || !out[j].chosen)
				continue;
			if (best == n || compare(&nd, &s[j], &s[best], longest, buf, sizeof(buf)) > 0)
				best = j;
		}
		for (size_t j = i; j < n; j++) {
			if (out[j].route != r || !out[j].chosen || j == best)
				continue;
			out[j].chosen = false;
			compare(&nd, &s[best], &s[j], longest, out[j].reason, sizeof(out[j].reason));
		}
		if (best < n) {
			double t = thickness_of(&s[best]);
			char of[48];
			if (ncand > 1)
				snprintf(of, sizeof(of), "the best of %zu usable series", ncand);
			else
				snprintf(of, sizeof(of), "the only usable series");
			snprintf(out[best].reason, sizeof(out[best].reason),
				 "%s for route %s: %.2g mm, %s kernel%s%s%s, %s, covers %.0f mm",
				 of, r->name, t,
				 kernel_class_name(route_kernel_class(s[best].manufacturer, s[best].kernel)),
				 s[best].kernel[0] ? " (" : "", s[best].kernel, s[best].kernel[0] ? ")" : "",
				 phase_name(route_series_phase(&s[best])), s[best].extent_mm);
		}
	}
}

/* DICOM text may be in any character set: JSON gets its ASCII, '?' else. */
static const char *ascii(const char *in, char *buf, size_t size)
{
	size_t i = 0;

	for (; in[i] != '\0' && i + 1 < size; i++)
		buf[i] = (unsigned char)in[i] >= 0x20 && (unsigned char)in[i] < 0x7f ? in[i] : '?';
	buf[i] = '\0';
	return buf;
}

char *route_selection_json(const struct route_series *s, const struct route_choice *c, size_t n)
{
	json_t *arr = json_array();
	char *text;
	char a[4][ROUTE_REASON_MAX];

	if (arr == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:I}",
				      "series_uid", s[i].series_uid, "called_ae",
				      ascii(s[i].called_ae, a[0], sizeof(a[0])),
				      "route", c[i].route->name, "chosen", c[i].chosen, "reason",
				      ascii(c[i].reason, a[1], sizeof(a[1])), "series_description",
				      ascii(s[i].series_description, a[2], sizeof(a[2])),
				      "image_type", s[i].image_type, "kernel",
				      ascii(s[i].kernel, a[3], sizeof(a[3])),
				      "orientation", s[i].orientation, "thickness_mm",
				      thickness_of(&s[i]), "extent_mm", s[i].extent_mm, "images",
				      (json_int_t)s[i].images);
		if (o == NULL) {
			json_decref(arr);
			return NULL;
		}
		if (s[i].series_number >= 0)
			json_object_set_new(o, "series_number", json_integer(s[i].series_number));
		json_object_set_new(o, "contrast_phase", json_string(phase_name(route_series_phase(&s[i]))));
		json_array_append_new(arr, o);
	}
	text = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return text;
}
