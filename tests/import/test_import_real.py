"""
import.real: segmentation objects other software wrote, meshed by
`recon3d-mesh CT_DIR --segmentation FILE`, checked against the objects as
pydicom reads them (an independent reader) and the STL files as a slicer
reads them (welded by position):

- SEG (highdicom binary, fractional, overlapping, single frame; dcmqi's
  liver and partial overlaps): one closed model per segment, named by its
  Segment Label, coloured by its CIELab value, coded by its property codes.
  Each segment's voxels on the SEG's own grid (its frames' positions, read
  here with pydicom) against the same voxel centres tested inside the STL
  (the STL cut in each frame's plane, even-odd): Dice >= 0.97 for segments
  of 1,000 voxels or more in the default output; and the raw surface
  (--no-smooth --no-decimate) puts every voxel centre on its own side.
- RTSTRUCT (MIM's structure set on its GE slices): per contour plane,
  the area the ROI's contours enclose (inner contours as holes, even-odd)
  against the area of the model's cross-section in that plane: within 2 %
  or 2 mm^2. POINT ROIs are listed as skipped with the reason.
- Refused, with the reason: a SEG on another series than the CT given, a
  Label Map SEG on a microscopy image.

The other real objects (rt-utils' two broken structure sets, dicompyler's
breast plan with 1 of its 98 slices, pydicom's structure set without file
meta information, the microscopy SEGs, the single-frame SEG) and the bad
objects made from these are in test_import_bad.py (import.bad).
"""
import glob
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import pydicom

BIN = os.environ["R3D_MESH_BIN"]
DATA = os.environ["R3D_DATA"]
SEG = os.path.join(DATA, "seg")


def run(*args):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=600)


def read_stl(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<I", data[80:84])[0]
    assert len(data) == 84 + 50 * n, "binary STL size does not match its triangle count"
    rec = np.frombuffer(data[84:], dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)),
                                                   ("a", "<u2")]), count=n)
    tri = rec["v"].reshape(-1, 3).astype(np.float64)
    verts, idx = np.unique(tri, axis=0, return_inverse=True)
    return verts, idx.reshape(-1, 3)


def closed_as_welded(verts, faces):
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    n = len(verts)
    und = np.sort(directed, axis=1)
    _, uses = np.unique(und[:, 0] * n + und[:, 1], return_counts=True)
    _, duses = np.unique(directed[:, 0] * n + directed[:, 1], return_counts=True)
    return int((uses != 2).sum()) == 0 and int((duses != 1).sum()) == 0


def plane_section(verts, faces, origin, normal, u, v):
    """The closed mesh's cross-section by a plane, as 2-D segments (u, v
    coordinates from origin), each crossing edge interpolated once."""
    d = (verts - origin) @ normal
    above = d > 0
    fa = above[faces]
    f = faces[fa.any(1) & ~fa.all(1)]
    pts, crosses = [], []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        i, j = np.minimum(f[:, a], f[:, b]), np.maximum(f[:, a], f[:, b])
        crosses.append(above[i] != above[j])   # the same edge always gives the same point
        with np.errstate(divide="ignore", invalid="ignore"):
            t = d[i] / (d[i] - d[j])
        p = verts[i] + t[:, None] * (verts[j] - verts[i])
        pts.append(np.stack([(p - origin) @ u, (p - origin) @ v], axis=1))
    pts = np.stack(pts, axis=1)                 # faces x 3 edges x 2
    crosses = np.stack(crosses, axis=1)
    order = np.argsort(~crosses, axis=1, kind="stable")[:, :2]
    two = np.take_along_axis(pts, order[:, :, None], axis=1)
    return two.reshape(-1, 4)


def inside_section(segs, pu, pv):
    """Even-odd: points (pu, pv) inside the section's loops (a ray along +u)."""
    inside = np.zeros(len(pu), bool)
    if len(segs) == 0:
        return inside
    x1, y1, x2, y2 = segs[:, 0], segs[:, 1], segs[:, 2], segs[:, 3]
    for s0 in range(0, len(pu), 2048):
        x = pu[s0:s0 + 2048, None]
        y = pv[s0:s0 + 2048, None]
        straddle = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside[s0:s0 + 2048] = (np.count_nonzero(straddle & (xc > x), axis=1) % 2) == 1
    return inside


def inside_mesh_frames(verts, faces, frames, row, col, ps):
    """For each frame (its LPS position and a rows x columns pixel grid),
    which pixel centres lie inside the closed mesh: the mesh cut 0.1 um
    off the frame's plane (its vertices lie on it), the centres tested in
    that section with the even-odd rule, moved 1e-4 pixel off
    the rows (which the section's vertices lie on too)."""
    n = np.cross(row, col)
    out = []
    for ipp, rows, cols in frames:
        segs = plane_section(verts, faces, ipp + 1e-4 * n, n, row, col)
        jj, ii = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        pu = (ii * ps[1]).ravel() + 1.3e-4 * ps[1]
        pv = (jj * ps[0]).ravel() + 2.9e-4 * ps[0]
        out.append(inside_section(segs, pu, pv))
    return np.concatenate(out) if out else np.zeros(0, bool)


def seg_voxels(ds, number):
    """The segment's set voxel centres and all voxel centres of its frames
    (LPS mm), from the SEG's own per-frame positions (pydicom)."""
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    ps = np.array(shared.PixelMeasuresSequence[0].PixelSpacing, float)
    row, col = iop[:3], iop[3:]
    arr = ds.pixel_array
    if arr.ndim == 2:
        arr = arr[None]
    frac = ds.SegmentationType == "FRACTIONAL"
    maxv = float(getattr(ds, "MaximumFractionalValue", 1)) if frac else 1.0
    jj, ii = np.meshgrid(np.arange(ds.Rows), np.arange(ds.Columns), indexing="ij")
    inside, every, frames = [], [], []
    for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        if int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber) != number:
            continue
        ipp = np.array(item.PlanePositionSequence[0].ImagePositionPatient, float)
        centres = (ipp[None, None, :] + ii[..., None] * ps[1] * row + jj[..., None] * ps[0] * col)
        values = arr[f].astype(float) / maxv
        set_ = values >= 0.5 if frac else values > 0
        inside.append(set_.ravel())
        every.append(centres.reshape(-1, 3))
        frames.append((ipp, ds.Rows, ds.Columns))
    return (np.concatenate(inside) if inside else np.zeros(0, bool),
            np.concatenate(every) if every else np.zeros((0, 3)), ps, frames, row, col)


def cielab_to_rgb(lab):
    L = lab[0] * 100.0 / 65535.0
    a = lab[1] * 255.0 / 65535.0 - 128.0
    b = lab[2] * 255.0 / 65535.0 - 128.0
    fy = (L + 16) / 116
    fx = fy + a / 500
    fz = fy - b / 200

    def finv(t):
        return t ** 3 if t ** 3 > 0.008856 else (t - 16 / 116) / 7.787
    X, Y, Z = 0.95047 * finv(fx), 1.0 * finv(fy), 1.08883 * finv(fz)
    r = 3.2406 * X - 1.5372 * Y - 0.4986 * Z
    g = -0.9689 * X + 1.8758 * Y + 0.0415 * Z
    bb = 0.0557 * X - 0.2040 * Y + 1.0570 * Z

    def gamma(c):
        c = min(max(c, 0.0), 1.0)
        return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055
    return [gamma(r), gamma(g), gamma(bb)]


class Base(unittest.TestCase):
    def mesh(self, ct_dir, seg_file, *extra):
        out = tempfile.mkdtemp(prefix="r3d-import-")
        self.addCleanup(shutil.rmtree, out, True)
        r = run(ct_dir, "-o", out, "--segmentation", seg_file, "--threads", "2", *extra)
        rep = None
        if r.returncode == 0:
            with open(os.path.join(out, "report.json")) as f:
                rep = json.load(f)
        return r, out, rep


def ct_folder_of(files):
    """A temporary folder of links to the given CT files."""
    d = tempfile.mkdtemp(prefix="r3d-ct-")
    for f in files:
        os.symlink(f, os.path.join(d, os.path.basename(f)))
    return d


class SegObjects(Base):
    CASES = [
        ("highdicom-ct/CT2", "highdicom-ct/seg_image_ct_binary.dcm"),
        ("highdicom-ct/CT2", "highdicom-ct/seg_image_ct_binary_fractional.dcm"),
        ("highdicom-ct/CT2", "highdicom-ct/seg_image_ct_true_fractional.dcm"),
        ("highdicom-ct/CT2", "highdicom-ct/seg_image_ct_binary_overlap.dcm"),
        ("dcmqi-liver", "dcmqi-liver/liver.dcm"),
        ("dcmqi-liver", "dcmqi-liver/partial_overlaps.dcm"),
    ]

    def check_seg(self, ct_rel, seg_rel):
        self.check_seg_run(ct_rel, seg_rel, False)
        self.check_seg_run(ct_rel, seg_rel, True)

    def check_seg_run(self, ct_rel, seg_rel, raw):
        ct = os.path.join(SEG, ct_rel)
        if ct_rel == "dcmqi-liver":
            ct = ct_folder_of([os.path.join(ct, f) for f in sorted(os.listdir(ct))
                               if f.startswith("ct-")])
            self.addCleanup(shutil.rmtree, ct, True)
        seg_path = os.path.join(SEG, seg_rel)
        ds = pydicom.dcmread(seg_path)
        # CT2's four slices are 200 mm apart: the SEG is meshed on its own
        # grid, the CT only has to be a volume.
        extra = ["--no-smooth", "--no-decimate"] if raw else []
        r, out, rep = self.mesh(ct, seg_path, "--interpolate-gaps", *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        by_label = {s["label"]: s for s in rep["structures"]}
        for item in ds.SegmentSequence:
            label = str(item.SegmentLabel)[:48]
            self.assertIn(label, by_label, "%s: segment %s missing" % (seg_rel, label))
            s = by_label[label]
            self.assertEqual(s["source"], "mask" if ds.SegmentationType != "FRACTIONAL"
                             else s["source"])
            self.assertEqual(s["codes"]["type"]["value"],
                             item.SegmentedPropertyTypeCodeSequence[0].CodeValue)
            self.assertEqual(s["codes"]["category"]["value"],
                             item.SegmentedPropertyCategoryCodeSequence[0].CodeValue)
            if "RecommendedDisplayCIELabValue" in item:
                want = cielab_to_rgb([int(x) for x in item.RecommendedDisplayCIELabValue])
                self.assertTrue(np.allclose(s["color_rgb"], want, atol=0.02),
                                "%s: colour %s, the SEG says %s" % (label, s["color_rgb"], want))
            truth, every, ps, frames, row, col = seg_voxels(ds, int(item.SegmentNumber))
            if truth.sum() == 0:
                self.assertIn("skipped_reason", s)
                continue
            self.assertNotIn("skipped_reason", s, s)
            verts, faces = read_stl(os.path.join(out, s["file"]))
            self.assertTrue(closed_as_welded(verts, faces), label)
            got = inside_mesh_frames(verts, faces, frames, row, col, ps)
            dice = 2.0 * (got & truth).sum() / max(1, got.sum() + truth.sum())
            print("%s %s %s: %d voxels, Dice %.4f" % (seg_rel, label, "raw" if raw else "default",
                                                     truth.sum(), dice))
            if raw:
                # The raw surface passes between the voxel centres inside and
                # outside (binary: halfway; fractional: where the fraction
                # crosses half its maximum): every centre on its own side.
                self.assertEqual(int((got != truth).sum()), 0,
                                 "%s raw: %d voxel centres on the wrong side" %
                                 (label, int((got != truth).sum())))
            elif truth.sum() >= 1000:
                self.assertGreaterEqual(dice, 0.97, label)

    def test_highdicom_binary(self):
        self.check_seg(*self.CASES[0])

    def test_highdicom_fractional(self):
        self.check_seg(*self.CASES[1])
        self.check_seg(*self.CASES[2])

    def test_highdicom_overlap(self):
        self.check_seg(*self.CASES[3])

    def test_dcmqi_liver(self):
        self.check_seg(*self.CASES[4])
        self.check_seg(*self.CASES[5])


def section_area(verts, faces, origin, normal, u, v):
    """Net area of the closed mesh's cross-section by the plane (outer loops
    minus holes), from the oriented segments each crossing triangle leaves."""
    d = (verts - origin) @ normal
    area = 0.0
    for f in faces:
        s = d[f]
        if (s > 0).all() or (s < 0).all():
            continue
        pts = []
        for a, b in ((0, 1), (1, 2), (2, 0)):
            if (s[a] > 0) != (s[b] > 0):
                t = s[a] / (s[a] - s[b])
                p = verts[f[a]] + t * (verts[f[b]] - verts[f[a]])
                pts.append(p)
        if len(pts) != 2:
            continue
        n_tri = np.cross(verts[f[1]] - verts[f[0]], verts[f[2]] - verts[f[0]])
        p, q = pts
        # orient so the solid is on the left of p -> q seen from +normal
        if np.dot(np.cross(normal, q - p), n_tri) > 0:
            p, q = q, p
        pu, pv = (p - origin) @ u, (p - origin) @ v
        qu, qv = (q - origin) @ u, (q - origin) @ v
        area += 0.5 * (pu * qv - qu * pv)
    return abs(area)


def polygon_area(pts2):
    x, y = pts2[:, 0], pts2[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


class RtStruct(Base):
    def check_rt(self, ct_dir, rt_path, min_checked):
        ds = pydicom.dcmread(rt_path, force=True)
        r, out, rep = self.mesh(ct_dir, rt_path, "--no-decimate", "--no-smooth")
        self.assertEqual(r.returncode, 0, r.stderr)
        names = {int(x.ROINumber): str(x.ROIName) for x in ds.StructureSetROISequence}
        by_label = {s["label"]: s for s in rep["structures"]}
        checked = 0
        for rc in ds.ROIContourSequence:
            name = names[int(rc.ReferencedROINumber)][:48]
            s = by_label[name]
            contours = [c for c in getattr(rc, "ContourSequence", [])
                        if c.ContourGeometricType == "CLOSED_PLANAR"]
            if not contours:
                self.assertIn("skipped_reason", s)
                continue
            self.assertNotIn("skipped_reason", s, s)
            if "ROIDisplayColor" in rc:
                want = [int(x) / 255.0 for x in rc.ROIDisplayColor]
                self.assertTrue(np.allclose(s["color_rgb"], want, atol=0.01), name)
            verts, faces = read_stl(os.path.join(out, s["file"]))
            self.assertTrue(closed_as_welded(verts, faces), name)
            planes = {}
            for c in contours:
                pts = np.array(c.ContourData, float).reshape(-1, 3)
                planes.setdefault(round(pts[:, 2].mean(), 2), []).append(pts)
            for z, polys in planes.items():
                # axial contours: even-odd area = sum with nesting parity
                u, v, n = np.array([1., 0, 0]), np.array([0., 1, 0]), np.array([0., 0, 1])
                want = 0.0
                for i, p in enumerate(polys):
                    depth = sum(1 for j, q in enumerate(polys) if j != i and
                                point_in_polygon(p[0, :2], q[:, :2]))
                    want += polygon_area(p[:, :2]) * (1 if depth % 2 == 0 else -1)
                got = section_area(verts, faces, np.array([0, 0, z]), n, u, v)
                tol = max(0.02 * want, 2.0)
                self.assertLess(abs(got - want), tol,
                                "%s at z %.2f: contours enclose %.1f mm2, the model's section "
                                "%.1f mm2" % (name, z, want, got))
                checked += 1
        self.assertGreaterEqual(checked, min_checked)
        return rep

    def test_mim_structure_set(self):
        d = os.path.join(SEG, "rt-utils", "sample")
        ct = ct_folder_of([os.path.join(d, f) for f in sorted(os.listdir(d)) if f != "rt.dcm"])
        self.addCleanup(shutil.rmtree, ct, True)
        self.check_rt(ct, os.path.join(d, "rt.dcm"), 3)


def point_in_polygon(pt, poly):
    x, y = pt
    inside = False
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


class SeriesChoice(Base):
    def test_folder_of_two_series_uses_the_referenced_one(self):
        # CT2 (4 slices) is the larger series; the liver SEG refers to dcmqi's 3 slices.
        d = ct_folder_of(sorted(glob.glob(os.path.join(SEG, "highdicom-ct", "CT2", "*.dcm"))) +
                         sorted(glob.glob(os.path.join(SEG, "dcmqi-liver", "ct-3slice_*.dcm"))))
        self.addCleanup(shutil.rmtree, d, True)
        r, _, rep = self.mesh(d, os.path.join(SEG, "dcmqi-liver", "liver.dcm"))
        self.assertEqual(r.returncode, 0, r.stderr)
        import pydicom
        want = str(pydicom.dcmread(os.path.join(SEG, "dcmqi-liver", "ct-3slice_01.dcm"),
                                   stop_before_pixels=True).SeriesInstanceUID)
        self.assertEqual(rep["series_instance_uid"], want)
        self.assertEqual([x["label"] for x in rep["structures"] if x.get("triangles")], ["Liver"])
        self.assertIn("the series the segmentation refers to", json.dumps(rep))


class Refused(Base):
    def test_seg_on_another_series(self):
        # the dcmqi liver SEG against the highdicom CT
        r, _, _ = self.mesh(os.path.join(SEG, "highdicom-ct", "CT2"),
                            os.path.join(SEG, "dcmqi-liver", "liver.dcm"), "--interpolate-gaps")
        self.assertEqual(r.returncode, 1)
        self.assertIn("refers to series", r.stderr)

    def test_labelmap_on_microscopy(self):
        r, _, _ = self.mesh(os.path.join(SEG, "highdicom-ct", "CT2"),
                            os.path.join(SEG, "highdicom-labelmap-sm",
                                         "seg_image_sm_control_labelmap.dcm"), "--interpolate-gaps")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, "refers to series|microscopy|not CT|frame of reference")


if __name__ == "__main__":
    unittest.main(verbosity=2)
