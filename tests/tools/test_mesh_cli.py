"""
recon3d-mesh, the offline command, end to end on real data and on refused
input. Real data: pancreas-ct-cb001 gives bone, skin, lungs and vessels as
watertight binary STL in patient LPS millimetres, inside the CT volume and off
the CT table; report.json says so. Refused input: an empty folder, one slice,
a folder of two series (the largest is used and the choice is said; --series
picks the other), a non-CT series, a file that is not DICOM among the slices,
and a cut DICOM file: each gives one clear message and a non-zero exit (or,
for the skipped file, a note), never a crash (the suite runs under ASan).
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np

BIN = os.environ["R3D_MESH_BIN"]
DATA = os.environ["R3D_DATA"]
PANCREAS = os.path.join(DATA, "ct", "pancreas-ct-cb001")
HEAD = os.path.join(DATA, "ct", "ge-head-tilt")
# pancreas-ct-cb001: image row 395 and below hold the CT table and no body
# voxel (measured on the raw pixels, see tests/segment/segment_real.py);
# rows run along +y (posterior) from y = -178.1 mm in 1.0742 mm steps.
TABLE_TOP_Y = -178.1 + 395 * 1.07421875


def run(*args):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=600)


def read_stl(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<I", data[80:84])[0]
    assert len(data) == 84 + 50 * n, "binary STL size does not match its triangle count"
    rec = np.frombuffer(data[84:], dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)),
                                                   ("a", "<u2")]), count=n)
    return rec["v"].reshape(-1, 3)


def dicom_files(folder, n=None):
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".dcm"))
    return files[:n] if n else files


class RealSeries(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="r3d-mesh-")
        cls.r = run(PANCREAS, "-o", cls.out, "--threads", "2")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def test_outputs_and_report(self):
        self.assertEqual(self.r.returncode, 0, self.r.stderr)
        with open(os.path.join(self.out, "report.json")) as f:
            rep = json.load(f)
        self.assertEqual(rep["series_instance_uid"],
                         "1.3.6.1.4.1.14519.5.2.1.302382790855582445722435410442490497846")
        self.assertEqual(rep["volume"]["dims"], [512, 512, 134])
        self.assertAlmostEqual(rep["volume"]["spacing_mm"][2], 3.0, places=3)
        self.assertTrue(rep["contrast_enhanced"])
        names = [s["name"] for s in rep["structures"]]
        self.assertEqual(sorted(names), ["bone", "lungs", "skin", "vessels"])
        for s in rep["structures"]:
            self.assertNotIn("skipped_reason", s, s)
            self.assertTrue(s["watertight"], s["name"])
            self.assertGreater(s["triangles"], 1000)
            self.assertGreater(s["volume_ml"], 10)
            self.assertGreater(s["area_mm2"], 0)
        for stage in ("scan", "load", "volume", "segment", "mesh", "write"):
            self.assertIn(stage, rep["timings_ms"])
        self.assertGreater(rep["peak_rss_bytes"], 0)
        self.assertTrue(os.path.getsize(os.path.join(self.out, "model.obj")) > 0)
        mtl = open(os.path.join(self.out, "model.mtl")).read()
        for n in names:
            self.assertIn(n, mtl)

    def test_stl_inside_volume_and_off_the_table(self):
        self.assertEqual(self.r.returncode, 0, self.r.stderr)
        with open(os.path.join(self.out, "report.json")) as f:
            rep = json.load(f)
        a = np.array(rep["volume"]["affine_lps_mm"]).reshape(4, 4)
        dims = rep["volume"]["dims"]
        corners = np.array([[i, j, k, 1] for i in (0, dims[0] - 1) for j in (0, dims[1] - 1)
                            for k in (0, dims[2] - 1)], float) @ a.T
        # The volume covers its outer voxel centres plus half a voxel (where the
        # padded border closes the surfaces); 0.5 mm more: Taubin smoothing
        # moves the rim of a cap a few tenths of a millimetre outward.
        margin = 0.5 * np.array(rep["volume"]["spacing_mm"]) + 0.5
        lo, hi = corners[:, :3].min(0) - margin, corners[:, :3].max(0) + margin
        for s in rep["structures"]:
            v = read_stl(os.path.join(self.out, s["file"]))
            self.assertEqual(len(v), 3 * s["triangles"])
            self.assertTrue((v.min(0) >= lo).all() and (v.max(0) <= hi).all(),
                            "%s outside the CT volume: %s %s" % (s["name"], v.min(0), v.max(0)))
            self.assertLess(v[:, 1].max(), TABLE_TOP_Y,
                            "%s reaches the CT table (y %.1f mm)" % (s["name"], v[:, 1].max()))
            # No degenerate triangle: every one has area (checked on the STL
            # itself, relative to its longest edge), and the report agrees.
            t = v.reshape(-1, 3, 3).astype(np.float64)
            twice_area = np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)
            longest = np.max([np.sum((t[:, (i + 1) % 3] - t[:, i]) ** 2, axis=1)
                              for i in range(3)], axis=0)
            self.assertEqual(int((twice_area <= 1e-6 * longest).sum()), 0, s["name"])
            self.assertEqual(s["zero_area_triangles"], 0)
            # Watertight as a slicer reads it: vertices welded by position,
            # every undirected edge in exactly two triangles, once each way.
            _, idx = np.unique(v, axis=0, return_inverse=True)
            f = idx.reshape(-1, 3).astype(np.int64)
            directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
            n = int(f.max()) + 1
            undirected = np.sort(directed, axis=1)
            _, uses = np.unique(undirected[:, 0] * n + undirected[:, 1], return_counts=True)
            _, dir_uses = np.unique(directed[:, 0] * n + directed[:, 1], return_counts=True)
            self.assertEqual(int((uses != 2).sum()), 0,
                             "%s: %d edges not in exactly two triangles when welded by position"
                             % (s["name"], int((uses != 2).sum())))
            self.assertEqual(int((dir_uses != 1).sum()), 0, "%s: mis-oriented edges" % s["name"])


def dcm_numbers(path, tag):
    out = subprocess.run(["dcmdump", "-q", "+P", tag, path], capture_output=True, text=True).stdout
    return [float(x) for x in out.split("[")[1].split("]")[0].split("\\")]


class GantryTilt(unittest.TestCase):
    """ge-head-tilt (gantry tilt, uneven gaps up to 7 mm): refused by default
    with the gap named; with --interpolate-gaps the skull surface lies where
    one raw slice, mapped with its own position and orientation, puts it."""

    def test_refused_by_default(self):
        out = tempfile.mkdtemp(prefix="r3d-tilt-")
        try:
            r = run(HEAD, "-o", out)
            self.assertEqual(r.returncode, 1)
            self.assertIn("gap of", r.stderr)
            self.assertIn("median slice spacing", r.stderr)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def test_decimated_models_stay_watertight(self):
        # Decimating this head's skin to its budget once left 4 open edges;
        # the models delivered must still be closed and 2-manifold.
        out = tempfile.mkdtemp(prefix="r3d-tilt-")
        try:
            r = run(HEAD, "-o", out, "--interpolate-gaps", "--structures", "skin,bone",
                    "--threads", "2")
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(out, "report.json")) as f:
                rep = json.load(f)
            for s in rep["structures"]:
                self.assertTrue(s["watertight"], s)
                self.assertNotIn("defects", s)
                self.assertEqual(s["zero_area_triangles"], 0, s["name"])
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def test_skull_where_the_raw_slice_puts_it(self):
        work = tempfile.mkdtemp(prefix="r3d-tilt-")
        try:
            out = os.path.join(work, "out")
            r = run(HEAD, "-o", out, "--threshold", "700", "--interpolate-gaps", "--no-decimate",
                    "--threads", "2")
            self.assertEqual(r.returncode, 0, r.stderr)
            surface = read_stl(os.path.join(out, "custom.stl"))
            # Independent truth: slice 14's own pixels and geometry, no volume code.
            src = os.path.join(HEAD, "14.dcm")
            subprocess.run(["dcmdump", "-q", "+W", work, src], check=True, capture_output=True)
            raw = np.fromfile(os.path.join(work, "14.dcm.0.raw"), dtype="<i2").reshape(512, 512)
            slope = dcm_numbers(src, "0028,1053")[0]
            intercept = dcm_numbers(src, "0028,1052")[0]
            hu = raw.astype(float) * slope + intercept
            ipp = np.array(dcm_numbers(src, "0020,0032"))
            iop = np.array(dcm_numbers(src, "0020,0037"))
            ps = dcm_numbers(src, "0028,0030")   # between rows, between columns
            checked = 0
            for row in (200, 256, 300):
                line = hu[row]
                # Outer skull edge from the left and from the right: the first
                # crossing of 700 HU, linearly interpolated between pixels.
                for cols in (range(0, 511), range(511, 0, -1)):
                    for c in cols:
                        nxt = c + 1 if cols.step == 1 else c - 1
                        if line[c] < 700 <= line[nxt]:
                            col = c + (700 - line[c]) / (line[nxt] - line[c]) * (nxt - c)
                            break
                    else:
                        continue
                    p = ipp + iop[:3] * ps[1] * col + iop[3:] * ps[0] * row
                    d = np.sqrt(((surface - p) ** 2).sum(1)).min()
                    self.assertLess(d, 1.0, "row %d: skull edge %s is %.2f mm from the surface"
                                    % (row, np.round(p, 2), d))
                    checked += 1
            self.assertGreaterEqual(checked, 4)
        finally:
            shutil.rmtree(work, ignore_errors=True)


class RefusedInput(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="r3d-mesh-bad-")
        self.out = os.path.join(self.tmp, "out")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def folder(self, name, files):
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        for f in files:
            shutil.copy(f, d)
        return d

    def assertRefused(self, r, text):
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(text, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertNotIn("AddressSanitizer", r.stderr)

    def test_empty_folder(self):
        self.assertRefused(run(self.folder("empty", []), "-o", self.out), "no DICOM images")

    def test_one_slice(self):
        d = self.folder("one", dicom_files(PANCREAS, 1))
        r = run(d, "-o", self.out)
        self.assertEqual(r.returncode, 1)
        self.assertIn("slice", r.stderr)

    def test_two_series(self):
        d = self.folder("two", dicom_files(PANCREAS, 30) + dicom_files(HEAD))
        r = run(d, "-o", self.out, "--structures", "bone", "--no-decimate")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 series in the folder: using the largest CT series", r.stderr)
        with open(os.path.join(self.out, "report.json")) as f:
            rep = json.load(f)
        self.assertEqual(rep["volume"]["dims"][2], 30)
        r = run(d, "-o", self.out, "--series", "1.2.3.4.does.not.exist")
        self.assertRefused(r, "is not in the folder")

    def test_not_ct(self):
        d = self.folder("mr", dicom_files(PANCREAS, 5))
        for f in os.listdir(d):
            subprocess.run(["dcmodify", "-nb", "-q", "-m", "(0008,0060)=MR", os.path.join(d, f)],
                           check=True)
        self.assertRefused(run(d, "-o", self.out), "not CT")

    def test_unreadable_files(self):
        d = self.folder("junk", dicom_files(PANCREAS, 25))
        with open(os.path.join(d, "notes.dcm"), "w") as f:
            f.write("this is not DICOM\n")
        r = run(d, "-o", self.out, "--structures", "bone")
        self.assertEqual(r.returncode, 0, r.stderr)
        # A cut DICOM file in the series: refused with the file named.
        victim = sorted(f for f in os.listdir(d) if f.endswith(".dcm") and f != "notes.dcm")[10]
        path = os.path.join(d, victim)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size // 2)
        r = run(d, "-o", self.out, "--structures", "bone")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(victim, r.stderr)
        self.assertNotIn("AddressSanitizer", r.stderr)

    def test_usage(self):
        r = run(PANCREAS)
        self.assertEqual(r.returncode, 2)
        r = run(PANCREAS, "-o", self.out, "--structures", "brain")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown structure 'brain'", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
