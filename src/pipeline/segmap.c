/*
 * segmap.c: the meshed masks on the source slice grid (keep_masks) and the
 * binary DICOM Segmentation written from them (see r3d/pipeline.h and
 * pipeline_int.h). Any thread; one pipeline_result per call.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline_int.h"
#include "r3d/util.h"

struct seg_order {
	size_t index;   /* into the decoded slices */
	double w;       /* position along the slice normal, mm */
};

static int seg_order_cmp(const void *pa, const void *pb)
{
	const struct seg_order *a = pa, *b = pb;

	if (a->w < b->w)
		return -1;
	if (a->w > b->w)
		return 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

static int seg_uid_cmp(const void *pa, const void *pb)
{
	const struct pipeline_seg_slice *const *a = pa, *const *b = pb;

	return strcmp((*a)->sop_instance_uid, (*b)->sop_instance_uid);
}

/* The source slices in the volume's order (sorted along the normal of their
 * orientation by position, ties by decoding order, as volume_assemble()
 * does), with their UIDs, frame numbers and positions: copied now, before
 * the decoded series is freed. */
bool seg_slices_build(struct r3d_err *err, const struct bridge_series *series,
			     const struct volume_slice *slices, size_t n, const char *sop_class,
			     struct pipeline_seg *g)
{
	struct seg_order *ord = NULL;
	struct pipeline_seg_slice **byuid = NULL;
	const double *o = slices[0].orientation;
	double nrm[3] = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5],
			 o[0] * o[4] - o[1] * o[3]};
	bool ok = false;

	if (n == 0 || n > VOLUME_MAX_SLICES)
		return r3d_err_set(err, R3D_EINVAL, "%zu slices for the segmentation grid", n);
	ord = calloc(n, sizeof(*ord));
	byuid = calloc(n, sizeof(*byuid));
	g->slices = calloc(n, sizeof(*g->slices));
	if (ord == NULL || byuid == NULL || g->slices == NULL) {
		r3d_err_set(err, R3D_ENOMEM, "out of memory for the segmentation grid");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		ord[i].index = i;
		ord[i].w = slices[i].position[0] * nrm[0] + slices[i].position[1] * nrm[1] +
			   slices[i].position[2] * nrm[2];
	}
	qsort(ord, n, sizeof(*ord), seg_order_cmp);
	for (size_t k = 0; k < n; k++) {
		const struct volume_slice *s = &slices[ord[k].index];
		struct pipeline_seg_slice *d = &g->slices[k];
		const char *uid = bridge_series_sop_uid(series, ord[k].index);
		/* Each slice's own class (a series may mix CT and Enhanced CT
		 * instances); the series' first instance's when it has none. */
		const char *cls = bridge_series_sop_class(series, ord[k].index);
		snprintf(d->sop_class_uid, sizeof(d->sop_class_uid), "%s",
			 cls != NULL && cls[0] != '\0' ? cls : sop_class);
		snprintf(d->sop_instance_uid, sizeof(d->sop_instance_uid), "%s", uid != NULL ? uid : "");
		memcpy(d->position, s->position, sizeof(d->position));
		d->frame_number = s->frame + 1;   /* cleared below for single-frame instances */
		byuid[k] = d;
	}
	/* An instance that gives one slice is single-frame: no frame number. */
	qsort(byuid, n, sizeof(*byuid), seg_uid_cmp);
	for (size_t a = 0; a < n;) {
		size_t b = a + 1;
		while (b < n && strcmp(byuid[a]->sop_instance_uid, byuid[b]->sop_instance_uid) == 0)
			b++;
		if (b - a == 1 && byuid[a]->frame_number == 1)
			byuid[a]->frame_number = 0;
		a = b;
	}
	g->nslices = n;
	g->rows = slices[0].rows;
	g->columns = slices[0].columns;
	memcpy(g->orientation, slices[0].orientation, sizeof(g->orientation));
	memcpy(g->pixel_spacing, slices[0].pixel_spacing, sizeof(g->pixel_spacing));
	g->slice_thickness = n > 1 ? (ord[n - 1].w - ord[0].w) / (double)(n - 1) : 1.0;
	ok = true;
out:
	free(byuid);
	free(ord);
	if (!ok) {
		free(g->slices);
		memset(g, 0, sizeof(*g));
	}
	return ok;
}

static bool near_int(double v, double *r)
{
	*r = floor(v + 0.5);
	return fabs(v - *r) < 1e-4;
}

/* mask (on the volume grid) onto the source slice grid g, one bit per
 * pixel: an exact copy of the volume plane when the slice is one (the
 * slices as given), else the voxel nearest each pixel centre in patient
 * coordinates (0 outside the volume). On success the caller owns *out
 * (free()). */
bool seg_map(struct r3d_err *err, const struct pipeline_seg *g, const struct volume *vol,
		    const uint8_t *mask, uint8_t **out, size_t *nset, bool *mapped)
{
	const double *row = g->orientation, *col = g->orientation + 3;
	const double dc = g->pixel_spacing[1], dr = g->pixel_spacing[0];
	size_t total = 0, count = 0;
	uint8_t *bits;

	if (!size_mul3(g->columns, g->rows, g->nslices, &total))
		return r3d_err_set(err, R3D_EINVAL, "segmentation grid too large");
	bits = calloc(total / 8 + 1, 1);
	if (bits == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "out of memory for the segmentation masks");
	for (size_t k = 0; k < g->nslices; k++) {
		const double *p0 = g->slices[k].position;
		double p[3], i0[3], ic[3], ir[3], ri, rj, rk;
		size_t base = (size_t)g->columns * g->rows * k;

		volume_patient_to_index(vol, p0, i0);
		for (int a = 0; a < 3; a++)
			p[a] = p0[a] + dc * row[a];
		volume_patient_to_index(vol, p, ic);
		for (int a = 0; a < 3; a++)
			p[a] = p0[a] + dr * col[a];
		volume_patient_to_index(vol, p, ir);
		for (int a = 0; a < 3; a++) {
			ic[a] -= i0[a];
			ir[a] -= i0[a];
		}
		bool same = near_int(i0[0], &ri) && ri == 0 && near_int(i0[1], &rj) && rj == 0 &&
			    near_int(i0[2], &rk) && rk >= 0 && rk < (double)vol->nz &&
			    g->columns == vol->nx && g->rows == vol->ny &&
			    fabs(ic[0] - 1) < 1e-6 && fabs(ic[1]) < 1e-6 && fabs(ic[2]) < 1e-6 &&
			    fabs(ir[0]) < 1e-6 && fabs(ir[1] - 1) < 1e-6 && fabs(ir[2]) < 1e-6;
		if (same) {
			const uint8_t *m = mask + (size_t)rk * vol->nx * vol->ny;
			for (size_t v = 0; v < (size_t)g->columns * g->rows; v++) {
				if (m[v] != 0) {
					bits[(base + v) >> 3] |= (uint8_t)(1u << ((base + v) & 7));
					count++;
				}
			}
			continue;
		}
		*mapped = true;
		for (uint32_t y = 0; y < g->rows; y++) {
			for (uint32_t x = 0; x < g->columns; x++) {
				double fi = floor(i0[0] + x * ic[0] + y * ir[0] + 0.5);
				double fj = floor(i0[1] + x * ic[1] + y * ir[1] + 0.5);
				double fk = floor(i0[2] + x * ic[2] + y * ir[2] + 0.5);
				if (fi < 0 || fj < 0 || fk < 0 || fi >= (double)vol->nx ||
				    fj >= (double)vol->ny || fk >= (double)vol->nz)
					continue;
				size_t vv = (size_t)fi + vol->nx * ((size_t)fj + vol->ny * (size_t)fk);
				if (mask[vv] != 0) {
					size_t b = base + (size_t)x + (size_t)g->columns * y;
					bits[b >> 3] |= (uint8_t)(1u << (b & 7));
					count++;
				}
			}
		}
	}
	*out = bits;
	*nset = count;
	return true;
}

bool pipeline_write_segmentation(struct r3d_err *err, const struct pipeline_result *res,
				 const struct bridge_export_info *info, const char *path)
{
	struct bridge_seg_structure st[PIPELINE_MAX_STRUCTURES];
	struct bridge_seg_slice *sl = NULL;
	size_t nst = 0;
	bool ok = false;

	if (res->seg.nslices == 0)
		return r3d_err_set(err, R3D_EINVAL, "segmentation: the masks were not kept");
	for (size_t i = 0; i < res->nstructures; i++) {
		const struct pipeline_structure *ps = &res->structures[i];
		if (ps->mesh == NULL || ps->seg_bits == NULL)
			continue;
		memset(&st[nst], 0, sizeof(st[nst]));
		st[nst].name = ps->def.label;
		memcpy(st[nst].rgb, ps->def.rgb, sizeof(st[nst].rgb));
		pipeline_structure_codes(&ps->def, &st[nst].codes);
		st[nst].bits = ps->seg_bits;
		nst++;
	}
	if (nst == 0)
		return r3d_err_set(err, R3D_EINVAL, "segmentation: no structure was meshed");
	sl = calloc(res->seg.nslices, sizeof(*sl));
	if (sl == NULL)
		return r3d_err_set(err, R3D_ENOMEM, "segmentation: out of memory");
	for (size_t k = 0; k < res->seg.nslices; k++) {
		sl[k].sop_class_uid = res->seg.slices[k].sop_class_uid;
		sl[k].sop_instance_uid = res->seg.slices[k].sop_instance_uid;
		sl[k].frame_number = res->seg.slices[k].frame_number;
		memcpy(sl[k].position, res->seg.slices[k].position, sizeof(sl[k].position));
	}
	struct bridge_seg_input in = {
		.slices = sl,
		.nslices = res->seg.nslices,
		.rows = res->seg.rows,
		.columns = res->seg.columns,
		.pixel_spacing = {res->seg.pixel_spacing[0], res->seg.pixel_spacing[1]},
		.slice_thickness = res->seg.slice_thickness,
		.structures = st,
		.nstructures = nst,
	};
	memcpy(in.orientation, res->seg.orientation, sizeof(in.orientation));
	ok = bridge_write_segmentation(err, path, info, &in);
	free(sl);
	return ok;
}
