/*
 * structure.c: the structure catalogue (see r3d/structure.h): the built-in
 * entries, checks, the parsers of config values and of recon3d-mesh
 * --structure, and the mapping of preset thresholds to the segmentation
 * parameters. Filled by one thread, read by any afterwards.
 *
 * Codes: Segmented Property Category (CID 7150) and Type (CID 7151). Tissue
 * types come from CID 7166 (Common Tissue Segmentation Types, under category
 * Tissue 85756007), Lung from CID 4 (under Anatomical Structure 91723000).
 * CID 7166 lists Bone as SCT 3138006 (it used to be SRT T-D016E, SCT
 * 272673000, which 3D Slicer's tables still carry).
 */
#include "r3d/structure.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/util.h"

#define STRUCTURE_TEXT_MAX 256   /* one config value */

/* ------------------------------------------------------------------ */
/* Built-in entries                                                    */
/* ------------------------------------------------------------------ */

struct code_lit {
	const char *value, *scheme, *meaning;
};

/* A preset: what its entry starts as, and which ends of its range a site
 * may set (each end maps to one segmentation parameter). */
struct preset_row {
	const char *key, *label;
	enum segment_preset preset;
	float rgb[3];
	struct code_lit category, type;
	size_t max_triangles;
	bool body_surface;
	bool min_ok, max_ok, contrast_ok;
	enum structure_kernel kernel;
	enum structure_phase phase;
};

static const struct code_lit code_tissue = {"85756007", "SCT", "Tissue"};

static const struct preset_row presets[] = {
	{"skin", "skin", SEGMENT_SKIN, {0.94f, 0.76f, 0.65f},
	 {"85756007", "SCT", "Tissue"}, {"39937001", "SCT", "Skin"}, 300000, true,
	 true, false, false, STRUCTURE_KERNEL_ANY, STRUCTURE_PHASE_ANY},
	{"bone", "bone", SEGMENT_BONE, {0.89f, 0.85f, 0.79f},
	 {"85756007", "SCT", "Tissue"}, {"3138006", "SCT", "Bone"}, 600000, false,
	 true, false, true, STRUCTURE_KERNEL_SHARP, STRUCTURE_PHASE_ANY},
	{"lungs", "lungs", SEGMENT_LUNGS, {0.55f, 0.75f, 0.95f},
	 {"91723000", "SCT", "Anatomical Structure"}, {"39607008", "SCT", "Lung"}, 300000, false,
	 false, true, false, STRUCTURE_KERNEL_ANY, STRUCTURE_PHASE_ANY},
	{"vessels", "vessels", SEGMENT_VESSELS, {0.80f, 0.12f, 0.12f},
	 {"85756007", "SCT", "Tissue"}, {"59820001", "SCT", "Blood vessel"}, 300000, false,
	 true, true, false, STRUCTURE_KERNEL_SOFT, STRUCTURE_PHASE_ARTERIAL},
};

#define NPRESETS (sizeof(presets) / sizeof(presets[0]))

static const struct preset_row *preset_row_of(const struct structure_def *d)
{
	for (size_t i = 0; d->source == STRUCTURE_PRESET && i < NPRESETS; i++)
		if (presets[i].preset == d->preset)
			return &presets[i];
	return NULL;
}

static void code_set(struct structure_code *c, const struct code_lit *l)
{
	snprintf(c->value, sizeof(c->value), "%s", l->value);
	snprintf(c->scheme, sizeof(c->scheme), "%s", l->scheme);
	snprintf(c->meaning, sizeof(c->meaning), "%s", l->meaning);
}

/* Inclusive integer HU of a half-integer threshold: "hu > 99.5" is
 * "hu >= 100", "hu < -399.5" is "hu <= -400". */
static int hu_above(double t)
{
	return (int)floor(t) + 1;
}

static int hu_below(double t)
{
	return (int)ceil(t) - 1;
}

void structure_catalog_default(struct structure_catalog *c)
{
	struct segment_params sp;

	segment_params_default(&sp);
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NPRESETS; i++) {
		const struct preset_row *r = &presets[i];
		struct structure_def *d = &c->def[c->n++];
		snprintf(d->key, sizeof(d->key), "%s", r->key);
		snprintf(d->label, sizeof(d->label), "%s", r->label);
		d->source = STRUCTURE_PRESET;
		d->preset = r->preset;
		memcpy(d->rgb, r->rgb, sizeof(d->rgb));
		code_set(&d->category, &r->category);
		code_set(&d->type, &r->type);
		d->max_triangles = r->max_triangles;
		d->enabled = true;
		d->body_surface = r->body_surface;
		d->kernel = r->kernel;
		d->phase = r->phase;
	}
	/* The ranges the presets threshold at, from the one place they live. */
	for (size_t i = 0; i < c->n; i++) {
		struct structure_def *d = &c->def[i];
		switch (d->preset) {
		case SEGMENT_SKIN:
			d->has_min = true;
			d->min_hu = hu_above(sp.skin.body_hu);
			break;
		case SEGMENT_BONE:
			d->has_min = true;
			d->min_hu = hu_above(sp.bone.low_hu);
			d->has_contrast_min = true;
			d->contrast_min_hu = hu_above(sp.bone.contrast_low_hu);
			break;
		case SEGMENT_LUNGS:
			d->has_max = true;
			d->max_hu = hu_below(sp.lungs.air_hu);
			break;
		case SEGMENT_VESSELS:
			d->has_min = d->has_max = true;
			d->min_hu = hu_above(sp.vessels.low_hu);
			d->max_hu = hu_below(sp.vessels.high_hu);
			break;
		case SEGMENT_PRESET_COUNT:
			break;
		}
	}
}

void structure_catalog_segment_params(const struct structure_catalog *c, struct segment_params *p,
				      unsigned *bits)
{
	*bits = 0;
	for (size_t i = 0; i < c->n; i++) {
		const struct structure_def *d = &c->def[i];
		if (d->source != STRUCTURE_PRESET)
			continue;
		if (d->enabled)
			*bits |= 1u << d->preset;
		switch (d->preset) {
		case SEGMENT_SKIN:
			p->skin.body_hu = d->min_hu - 0.5;
			break;
		case SEGMENT_BONE:
			p->bone.low_hu = d->min_hu - 0.5;
			p->bone.contrast_low_hu = d->contrast_min_hu - 0.5;
			break;
		case SEGMENT_LUNGS:
			p->lungs.air_hu = d->max_hu + 0.5;
			break;
		case SEGMENT_VESSELS:
			p->vessels.low_hu = d->min_hu - 0.5;
			p->vessels.high_hu = d->max_hu + 0.5;
			break;
		case SEGMENT_PRESET_COUNT:
			break;
		}
	}
}

struct structure_def *structure_catalog_find(struct structure_catalog *c, const char *key)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->def[i].key, key) == 0)
			return &c->def[i];
	return NULL;
}

const struct structure_def *structure_catalog_get(const struct structure_catalog *c,
						  const char *key)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->def[i].key, key) == 0)
			return &c->def[i];
	return NULL;
}

void structure_def_threshold(struct structure_def *d, const char *key)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->key, sizeof(d->key), "%s", key);
	snprintf(d->label, sizeof(d->label), "%s", key);
	d->source = STRUCTURE_THRESHOLD;
	d->preset = SEGMENT_PRESET_COUNT;
	d->rgb[0] = d->rgb[1] = d->rgb[2] = 0.70f;
	code_set(&d->category, &code_tissue);
	code_set(&d->type, &code_tissue);
	d->max_triangles = STRUCTURE_DEFAULT_TRIANGLES;
	d->kernel = STRUCTURE_KERNEL_SOFT;
	d->enabled = true;
}

const char *structure_source_name(enum structure_source s)
{
	switch (s) {
	case STRUCTURE_PRESET:
		return "preset";
	case STRUCTURE_THRESHOLD:
		return "threshold";
	case STRUCTURE_MASK:
		return "mask";
	}
	return "?";
}

/* ------------------------------------------------------------------ */
/* Checks                                                              */
/* ------------------------------------------------------------------ */

bool structure_key_valid(const char *key)
{
	size_t n = strlen(key);

	if (n == 0 || n >= STRUCTURE_KEY_MAX || key[0] < 'a' || key[0] > 'z')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = key[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
			return false;
	}
	return true;
}

/* Printable ASCII without the characters DICOM text or our code syntax
 * cannot hold (backslash separates values, ^ separates the code's parts). */
static bool text_valid(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n >= max || s[0] == ' ' || s[n - 1] == ' ')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e || s[i] == '\\' ||
		    s[i] == '^')
			return false;
	return true;
}

static bool code_valid(const struct structure_code *c, bool required)
{
	if (c->value[0] == '\0' && c->scheme[0] == '\0' && c->meaning[0] == '\0')
		return !required;
	return text_valid(c->value, sizeof(c->value)) && text_valid(c->scheme, sizeof(c->scheme)) &&
	       text_valid(c->meaning, sizeof(c->meaning)) && strchr(c->value, ' ') == NULL &&
	       strchr(c->scheme, ' ') == NULL;
}

static bool hu_in_range(int hu)
{
	return hu >= STRUCTURE_HU_MIN && hu <= STRUCTURE_HU_MAX;
}

bool structure_def_check(struct r3d_err *err, const struct structure_def *d)
{
	const struct preset_row *r = preset_row_of(d);

	if (!structure_key_valid(d->key))
		return r3d_err_set(err, R3D_EINVAL, "structure '%s': a key is 1 to %d characters of "
				   "a-z, 0-9 and _, starting with a letter", d->key, STRUCTURE_KEY_MAX - 1);
	if (!text_valid(d->label, sizeof(d->label)))
		return r3d_err_set(err, R3D_EINVAL, "structure %s: label must be 1 to %d printable "
				   "ASCII characters without \\ or ^", d->key, STRUCTURE_LABEL_MAX - 1);
	if (d->source == STRUCTURE_PRESET && r == NULL)
		return r3d_err_set(err, R3D_EINVAL, "structure %s: unknown preset", d->key);
	if (d->source == STRUCTURE_THRESHOLD && !d->has_min && !d->has_max)
		return r3d_err_set(err, R3D_EINVAL, "structure %s: a threshold structure needs "
				   "min_hu, max_hu or both", d->key);
	if (r != NULL && ((d->has_min != r->min_ok) || (d->has_max != r->max_ok) ||
			  (d->has_contrast_min != r->contrast_ok)))
		return r3d_err_set(err, R3D_EINVAL, "structure %s: the preset's range ends are fixed",
				   d->key);
	if ((d->has_min && !hu_in_range(d->min_hu)) || (d->has_max && !hu_in_range(d->max_hu)) ||
	    (d->has_contrast_min && !hu_in_range(d->contrast_min_hu)))
		return r3d_err_set(err, R3D_EINVAL, "structure %s: a threshold outside the CT's range "
				   "%d..%d HU", d->key, STRUCTURE_HU_MIN, STRUCTURE_HU_MAX);
	if (d->has_min && d->has_max && d->min_hu > d->max_hu)
		return r3d_err_set(err, R3D_EINVAL, "structure %s: min_hu %d is above max_hu %d",
				   d->key, d->min_hu, d->max_hu);
	if (d->has_contrast_min && d->has_max && d->contrast_min_hu > d->max_hu)
		return r3d_err_set(err, R3D_EINVAL, "structure %s: contrast_min_hu %d is above "
				   "max_hu %d", d->key, d->contrast_min_hu, d->max_hu);
	for (int k = 0; k < 3; k++)
		if (!(d->rgb[k] >= 0.0f && d->rgb[k] <= 1.0f))
			return r3d_err_set(err, R3D_EINVAL, "structure %s: colour outside 0..1", d->key);
	if (!code_valid(&d->category, true) || !code_valid(&d->type, true))
		return r3d_err_set(err, R3D_EINVAL, "structure %s: category and type codes must be "
				   "VALUE^SCHEME^MEANING", d->key);
	if (!code_valid(&d->type_modifier, false) || !code_valid(&d->region, false) ||
	    !code_valid(&d->region_modifier, false))
		return r3d_err_set(err, R3D_EINVAL, "structure %s: malformed laterality or region "
				   "code", d->key);
	if (d->region_modifier.value[0] != '\0' && d->region.value[0] == '\0')
		return r3d_err_set(err, R3D_EINVAL, "structure %s: region_laterality without region",
				   d->key);
	if (d->max_triangles < 1 || d->max_triangles > STRUCTURE_MAX_TRIANGLES)
		return r3d_err_set(err, R3D_EINVAL, "structure %s: max_triangles must be 1..%u",
				   d->key, STRUCTURE_MAX_TRIANGLES);
	return true;
}

bool structure_catalog_add(struct r3d_err *err, struct structure_catalog *c,
			   const struct structure_def *d)
{
	if (structure_catalog_get(c, d->key) != NULL)
		return r3d_err_set(err, R3D_EINVAL, "structure %s is defined twice", d->key);
	if (c->n == STRUCTURE_MAX)
		return r3d_err_set(err, R3D_EINVAL, "more than %d structures", STRUCTURE_MAX);
	if (!structure_def_check(err, d))
		return false;
	c->def[c->n++] = *d;
	return true;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

static bool parse_hu(struct r3d_err *err, const char *key, const char *what, const char *v, int *out)
{
	long hu;

	if (!parse_long(err, v, STRUCTURE_HU_MIN, STRUCTURE_HU_MAX, &hu))
		return r3d_err_set(err, R3D_EINVAL, "structure %s: %s '%s' is not an integer HU in "
				   "the CT's range %d..%d", key, what, v, STRUCTURE_HU_MIN,
				   STRUCTURE_HU_MAX);
	*out = (int)hu;
	return true;
}

/* VALUE^SCHEME^MEANING */
static bool parse_code(struct r3d_err *err, const char *key, const char *what, const char *v,
		       struct structure_code *out, bool required)
{
	const char *a = strchr(v, '^'), *b = a != NULL ? strchr(a + 1, '^') : NULL;
	struct structure_code c;

	memset(&c, 0, sizeof(c));
	if (v[0] == '\0' && !required) {
		*out = c;
		return true;
	}
	if (a == NULL || b == NULL || strchr(b + 1, '^') != NULL ||
	    (size_t)(a - v) >= sizeof(c.value) || (size_t)(b - a - 1) >= sizeof(c.scheme) ||
	    strlen(b + 1) >= sizeof(c.meaning))
		goto bad;
	memcpy(c.value, v, (size_t)(a - v));
	memcpy(c.scheme, a + 1, (size_t)(b - a - 1));
	snprintf(c.meaning, sizeof(c.meaning), "%s", b + 1);
	if (!code_valid(&c, true))
		goto bad;
	*out = c;
	return true;
bad:
	return r3d_err_set(err, R3D_EINVAL, "structure %s: %s '%s' is not a code VALUE^SCHEME^MEANING "
			   "(value and scheme up to 16 characters, meaning up to 64)", key, what, v);
}

/* #rrggbb or R,G,B with 0..255 each. */
static bool parse_color(struct r3d_err *err, const char *key, const char *v, float rgb[3])
{
	unsigned c[3];
	int used = 0;

	if (v[0] == '#' && strlen(v) == 7 && strspn(v + 1, "0123456789abcdefABCDEF") == 6 &&
	    sscanf(v + 1, "%2x%2x%2x%n", &c[0], &c[1], &c[2], &used) == 3 && used == 6)
		goto ok;
	if (v[0] != '#') {
		char buf[STRUCTURE_TEXT_MAX], *save = NULL, *tok;
		int k = 0;
		snprintf(buf, sizeof(buf), "%s", v);
		for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
			long x;
			struct r3d_err e2;
			while (*tok == ' ')
				tok++;
			if (k == 3 || !parse_long(&e2, tok, 0, 255, &x))
				goto bad;
			c[k++] = (unsigned)x;
		}
		if (k == 3)
			goto ok;
	}
bad:
	return r3d_err_set(err, R3D_EINVAL, "structure %s: color '%s' is not #rrggbb or R,G,B "
			   "(0..255 each)", key, v);
ok:
	for (int k = 0; k < 3; k++)
		rgb[k] = (float)c[k] / 255.0f;
	return true;
}

const char *const structure_attr_names[] = {
	"enabled", "label", "min_hu", "max_hu", "contrast_min_hu", "color", "category", "type",
	"laterality", "region", "region_laterality", "max_triangles", "kernel", "phase", NULL,
};

static const char *const structure_attr_comments[] = {
	"true: made for every series; false: not made",
	"display name: Segment Label, series \"3D model: <label>\" (1..48 printable ASCII characters)",
	"lowest HU inside (inclusive); the surface passes through the CT's grey-level crossing",
	"highest HU inside (inclusive)",
	"bone preset only: min_hu on a contrast-enhanced series (enhanced organs stay out)",
	"display colour, #rrggbb or R,G,B",
	"Segmented Property Category, VALUE^SCHEME^MEANING (CID 7150), e.g. 85756007^SCT^Tissue",
	"Segmented Property Type, VALUE^SCHEME^MEANING (CID 7151), e.g. 3138006^SCT^Bone",
	"Segmented Property Type Modifier, e.g. 7771000^SCT^Left (empty: none)",
	"Anatomic Region, VALUE^SCHEME^MEANING (empty: none)",
	"Anatomic Region Modifier, e.g. 24028007^SCT^Right (empty: none)",
	"decimation budget: at most this many triangles (1..10000000)",
	"series selection: the reconstruction kernel it is best made on (soft, sharp or any)",
	"series selection: the contrast phase it needs (arterial, venous or any)",
};

const char *structure_attr_comment(const char *name)
{
	for (size_t i = 0; structure_attr_names[i] != NULL; i++)
		if (strcmp(structure_attr_names[i], name) == 0)
			return structure_attr_comments[i];
	return NULL;
}

bool structure_def_set(struct r3d_err *err, struct structure_def *d, const char *name,
		       const char *value)
{
	const struct preset_row *r = preset_row_of(d);
	long n;

	if (strcmp(name, "enabled") == 0) {
		if (!parse_bool(err, value, &d->enabled))
			return r3d_err_set(err, R3D_EINVAL, "structure %s: enabled '%s' is not true or "
					   "false", d->key, value);
		return true;
	}
	if (strcmp(name, "label") == 0) {
		if (!text_valid(value, sizeof(d->label)))
			return r3d_err_set(err, R3D_EINVAL, "structure %s: label must be 1 to %d "
					   "printable ASCII characters without \\ or ^", d->key,
					   STRUCTURE_LABEL_MAX - 1);
		snprintf(d->label, sizeof(d->label), "%s", value);
		return true;
	}
	if (strcmp(name, "min_hu") == 0) {
		if (r != NULL && !r->min_ok)
			return r3d_err_set(err, R3D_EINVAL, "structure %s: the %s preset has no min_hu "
					   "(its boundary is max_hu)", d->key, r->key);
		d->has_min = true;
		return parse_hu(err, d->key, name, value, &d->min_hu);
	}
	if (strcmp(name, "max_hu") == 0) {
		if (r != NULL && !r->max_ok)
			return r3d_err_set(err, R3D_EINVAL, "structure %s: the %s preset has no max_hu "
					   "(its boundary is min_hu)", d->key, r->key);
		d->has_max = true;
		return parse_hu(err, d->key, name, value, &d->max_hu);
	}
	if (strcmp(name, "contrast_min_hu") == 0) {
		if (r == NULL || !r->contrast_ok)
			return r3d_err_set(err, R3D_EINVAL, "structure %s: contrast_min_hu belongs to "
					   "the bone preset only", d->key);
		d->has_contrast_min = true;
		return parse_hu(err, d->key, name, value, &d->contrast_min_hu);
	}
	if (strcmp(name, "color") == 0)
		return parse_color(err, d->key, value, d->rgb);
	if (strcmp(name, "category") == 0)
		return parse_code(err, d->key, name, value, &d->category, true);
	if (strcmp(name, "type") == 0)
		return parse_code(err, d->key, name, value, &d->type, true);
	if (strcmp(name, "laterality") == 0)
		return parse_code(err, d->key, name, value, &d->type_modifier, false);
	if (strcmp(name, "region") == 0)
		return parse_code(err, d->key, name, value, &d->region, false);
	if (strcmp(name, "region_laterality") == 0)
		return parse_code(err, d->key, name, value, &d->region_modifier, false);
	if (strcmp(name, "max_triangles") == 0) {
		if (!parse_long(err, value, 1, STRUCTURE_MAX_TRIANGLES, &n))
			return r3d_err_set(err, R3D_EINVAL, "structure %s: max_triangles '%s' must be "
					   "1..%u", d->key, value, STRUCTURE_MAX_TRIANGLES);
		d->max_triangles = (size_t)n;
		return true;
	}
	if (strcmp(name, "kernel") == 0) {
		for (int k = 0; k < 3; k++) {
			if (strcmp(value, structure_kernel_name((enum structure_kernel)k)) == 0) {
				d->kernel = (enum structure_kernel)k;
				return true;
			}
		}
		return r3d_err_set(err, R3D_EINVAL, "structure %s: kernel '%s' is not soft, sharp or any",
				   d->key, value);
	}
	if (strcmp(name, "phase") == 0) {
		for (int k = 0; k < 3; k++) {
			if (strcmp(value, structure_phase_name((enum structure_phase)k)) == 0) {
				d->phase = (enum structure_phase)k;
				return true;
			}
		}
		return r3d_err_set(err, R3D_EINVAL, "structure %s: phase '%s' is not arterial, venous or "
				   "any", d->key, value);
	}
	return r3d_err_set(err, R3D_EINVAL, "structure %s: unknown key '%s'", d->key, name);
}

const char *structure_kernel_name(enum structure_kernel k)
{
	static const char *const names[] = {"any", "soft", "sharp"};
	return (unsigned)k < 3 ? names[k] : "any";
}

const char *structure_phase_name(enum structure_phase p)
{
	static const char *const names[] = {"any", "arterial", "venous"};
	return (unsigned)p < 3 ? names[p] : "any";
}

bool structure_catalog_parse_cli(struct r3d_err *err, struct structure_catalog *c, const char *spec,
				 const struct structure_def **out)
{
	char buf[STRUCTURE_TEXT_MAX];
	char *a, *b;
	struct structure_def d, *old;

	if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf))
		return r3d_err_set(err, R3D_EINVAL, "--structure: too long");
	a = strchr(buf, ':');
	b = a != NULL ? strchr(a + 1, ':') : NULL;
	if (a == NULL || b == NULL || strchr(b + 1, ':') != NULL)
		return r3d_err_set(err, R3D_EINVAL, "--structure '%s': want KEY:MIN:MAX (HU; "
				   "either may be empty)", spec);
	*a = *b = '\0';
	old = structure_catalog_find(c, buf);
	if (old != NULL)
		d = *old;
	else if (!structure_key_valid(buf))
		return r3d_err_set(err, R3D_EINVAL, "--structure '%s': a key is 1 to %d characters "
				   "of a-z, 0-9 and _, starting with a letter", spec,
				   STRUCTURE_KEY_MAX - 1);
	else
		structure_def_threshold(&d, buf);
	d.enabled = true;
	if (d.source == STRUCTURE_THRESHOLD)
		d.has_min = d.has_max = false;   /* the range given replaces the old one */
	if (a[1] != '\0' && !structure_def_set(err, &d, "min_hu", a + 1))
		return false;
	if (b[1] != '\0' && !structure_def_set(err, &d, "max_hu", b + 1))
		return false;
	if (old != NULL) {
		if (!structure_def_check(err, &d))
			return false;
		*old = d;
	} else if (!structure_catalog_add(err, c, &d)) {
		return false;
	}
	if (out != NULL)
		*out = structure_catalog_get(c, d.key);
	return true;
}

bool structure_catalog_enable_only(struct r3d_err *err, struct structure_catalog *c,
				   const char *list)
{
	char buf[STRUCTURE_TEXT_MAX * 4];
	char *save = NULL, *tok;
	bool want[STRUCTURE_MAX] = {false};

	if (snprintf(buf, sizeof(buf), "%s", list) >= (int)sizeof(buf))
		return r3d_err_set(err, R3D_EINVAL, "structure list too long");
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		const struct structure_def *d = structure_catalog_get(c, tok);
		if (d == NULL)
			return r3d_err_set(err, R3D_EINVAL, "unknown structure '%s' (see "
					   "--list-structures)", tok);
		want[d - c->def] = true;
	}
	for (size_t i = 0; i < c->n; i++)
		c->def[i].enabled = want[i];
	return true;
}

/* ------------------------------------------------------------------ */
/* Reading an entry                                                    */
/* ------------------------------------------------------------------ */

bool structure_def_range(const struct structure_def *d, bool contrast, double *lo, double *hi)
{
	if (!d->has_min && !d->has_max) {
		*lo = *hi = NAN;
		return false;
	}
	if (d->has_min)
		*lo = (contrast && d->has_contrast_min ? d->contrast_min_hu : d->min_hu) - 0.5;
	else
		*lo = -INFINITY;
	*hi = d->has_max ? d->max_hu + 0.5 : INFINITY;
	return true;
}

static void code_print(FILE *out, const char *what, const struct structure_code *c)
{
	if (c->value[0] != '\0')
		fprintf(out, " %s=%s^%s^%s", what, c->value, c->scheme, c->meaning);
}

void structure_catalog_print(FILE *out, const struct structure_catalog *c)
{
	for (size_t i = 0; i < c->n; i++) {
		const struct structure_def *d = &c->def[i];
		char range[64] = "";
		if (d->has_min && d->has_max)
			snprintf(range, sizeof(range), "%d..%d HU", d->min_hu, d->max_hu);
		else if (d->has_min)
			snprintf(range, sizeof(range), ">= %d HU", d->min_hu);
		else if (d->has_max)
			snprintf(range, sizeof(range), "<= %d HU", d->max_hu);
		else
			snprintf(range, sizeof(range), "mask");
		fprintf(out, "%-16s %-3s %-9s %-16s", d->key, d->enabled ? "on" : "off",
			structure_source_name(d->source), range);
		if (d->has_contrast_min)
			fprintf(out, " (contrast: >= %d HU)", d->contrast_min_hu);
		fprintf(out, " label=\"%s\" color=#%02x%02x%02x max_triangles=%zu", d->label,
			(unsigned)lroundf(d->rgb[0] * 255.0f), (unsigned)lroundf(d->rgb[1] * 255.0f),
			(unsigned)lroundf(d->rgb[2] * 255.0f), d->max_triangles);
		code_print(out, "category", &d->category);
		code_print(out, "type", &d->type);
		code_print(out, "laterality", &d->type_modifier);
		code_print(out, "region", &d->region);
		code_print(out, "region_laterality", &d->region_modifier);
		fputc('\n', out);
	}
}

/* ------------------------------------------------------------------ */
/* As config text                                                      */
/* ------------------------------------------------------------------ */

static void attr_write(FILE *out, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void attr_write(FILE *out, const char *name, const char *fmt, ...)
{
	va_list ap;

	char value[STRUCTURE_TEXT_MAX];

	va_start(ap, fmt);
	vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	fprintf(out, "# %s\n%s =%s%s\n", structure_attr_comment(name), name, value[0] ? " " : "",
		value);
}

static void code_write(FILE *out, const char *name, const struct structure_code *c)
{
	if (c->value[0] == '\0')
		attr_write(out, name, "%s", "");
	else
		attr_write(out, name, "%s^%s^%s", c->value, c->scheme, c->meaning);
}

void structure_catalog_write_config(FILE *out, const struct structure_catalog *c)
{
	for (size_t i = 0; i < c->n; i++) {
		const struct structure_def *d = &c->def[i];
		fprintf(out, "\n[structure %s]\n", d->key);
		attr_write(out, "enabled", "%s", d->enabled ? "true" : "false");
		attr_write(out, "label", "%s", d->label);
		if (d->has_min)
			attr_write(out, "min_hu", "%d", d->min_hu);
		if (d->has_contrast_min)
			attr_write(out, "contrast_min_hu", "%d", d->contrast_min_hu);
		if (d->has_max)
			attr_write(out, "max_hu", "%d", d->max_hu);
		attr_write(out, "color", "#%02x%02x%02x", (unsigned)lroundf(d->rgb[0] * 255.0f),
			   (unsigned)lroundf(d->rgb[1] * 255.0f), (unsigned)lroundf(d->rgb[2] * 255.0f));
		code_write(out, "category", &d->category);
		code_write(out, "type", &d->type);
		code_write(out, "laterality", &d->type_modifier);
		code_write(out, "region", &d->region);
		code_write(out, "region_laterality", &d->region_modifier);
		attr_write(out, "max_triangles", "%zu", d->max_triangles);
		attr_write(out, "kernel", "%s", structure_kernel_name(d->kernel));
		attr_write(out, "phase", "%s", structure_phase_name(d->phase));
	}
}
