/*
 * pairs.c: lists of structure pairs as the config writes them, e.g. the
 * [print] and [route NAME] key "distances = tumour:artery, kidney:vessels"
 * (see r3d/structure.h). Read by the config loader (to refuse a malformed
 * list at --check-config) and by the pipeline (to pick the pairs measured).
 * Any thread.
 */
#include <string.h>

#include "r3d/structure.h"

bool structure_pairs_parse(struct r3d_err *err, const char *text,
			   struct structure_pair *pairs, size_t max, size_t *n)
{
	char buf[STRUCTURE_PAIRS_TEXT_MAX];
	char *save = NULL;

	*n = 0;
	if (strlen(text) >= sizeof(buf))
		return r3d_err_set(err, R3D_EINVAL, "longer than %d characters",
				   STRUCTURE_PAIRS_TEXT_MAX - 1);
	memcpy(buf, text, strlen(text) + 1);
	for (char *t = strtok_r(buf, ", \t", &save); t != NULL; t = strtok_r(NULL, ", \t", &save)) {
		char *colon = strchr(t, ':');
		if (colon == NULL)
			return r3d_err_set(err, R3D_EINVAL, "'%s' is not a pair KEY:KEY", t);
		*colon = '\0';
		if (!structure_key_valid(t) || !structure_key_valid(colon + 1))
			return r3d_err_set(err, R3D_EINVAL, "'%s:%s' is not a pair of structure keys "
					   "([a-z0-9_], a letter first)", t, colon + 1);
		if (strcmp(t, colon + 1) == 0)
			return r3d_err_set(err, R3D_EINVAL, "'%s:%s' pairs a structure with itself", t,
					   colon + 1);
		if (*n >= max)
			return r3d_err_set(err, R3D_EINVAL, "more than %zu pairs", max);
		memcpy(pairs[*n].a, t, strlen(t) + 1);
		memcpy(pairs[*n].b, colon + 1, strlen(colon + 1) + 1);
		(*n)++;
	}
	return true;
}
