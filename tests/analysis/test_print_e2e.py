"""
Print readiness end to end (issue 14, docs/printing.md): a volume phantom
(recon3d-phantom's standard scene) through recon3d-mesh, and report.json's
"measurements", "print" and "distances" checked as a print lab's tools read
the outputs: the STL files welded by coordinates, with numpy and VTK, and
the phantom's analytic truth.

  - every meshed structure carries the viewer contract's fields, typed;
  - shells: connected pieces of the STL (welded by position) with their
    signed volumes and triangle counts, computed here, equal the report's;
  - extents: the principal axes of the STL surface computed here with
    numpy; the skin's (the body ellipsoid) match its analytic diameters;
  - distance bone:skin: VTK's vtkImplicitPolyDataDistance from each mesh's
    vertices to the other surface is never below ours and within 0.1 mm;
  - self-intersections: an independent Moller interval test finds a
    crossing pair of triangles next to the reported point;
  - wall thickness: VTK's vtkOBBTree ray cast from the reported vertex and
    its 1-ring gives the reported robust minimum, which is not next to a
    self-intersection;
  - --drop-loose-shells removes exactly the small shells, --min-wall-mm
    flags thin walls.

usage: test_print_e2e.py RECON3D_MESH RECON3D_PHANTOM
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
import vtk
from vtk.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray

MESH_BIN, PHANTOM_BIN = sys.argv[1], sys.argv[2]


def read_stl(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<I", data[80:84])[0]
    rec = np.frombuffer(data[84:84 + 50 * n], dtype=np.dtype(
        [("n", "<3f4"), ("v", "<9f4"), ("a", "<u2")]))
    return rec["v"].reshape(-1, 3, 3).astype(np.float64)


def weld(tris):
    """Vertices welded by exact coordinates, as an STL reader does."""
    pts, inv = np.unique(tris.reshape(-1, 3), axis=0, return_inverse=True)
    return pts, inv.reshape(-1, 3)


def components(nv, faces):
    parent = np.arange(nv)

    def find(x):
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root
    for a, b, c in faces:
        ra, rb, rc = find(a), find(b), find(c)
        parent[rb] = ra
        parent[find(rc)] = ra
    roots = np.array([find(f[0]) for f in faces])
    return roots


def shells_of(tris):
    pts, faces = weld(tris)
    roots = components(len(pts), faces)
    ref = pts[0]
    a, b, c = (tris[:, i] - ref for i in range(3))
    vol = np.einsum("ij,ij->i", a, np.cross(b, c)) / 6.0
    out = []
    for r in np.unique(roots):
        sel = roots == r
        out.append((vol[sel].sum() / 1000.0, int(sel.sum())))
    return sorted(out, key=lambda s: -abs(s[0]))


def polydata(tris):
    pts, faces = weld(tris)
    pd = vtk.vtkPolyData()
    p = vtk.vtkPoints()
    p.SetData(numpy_to_vtk(pts, deep=True))
    pd.SetPoints(p)
    cells = np.hstack([np.full((len(faces), 1), 3), faces]).astype(np.int64).ravel()
    ca = vtk.vtkCellArray()
    ca.SetCells(len(faces), numpy_to_vtkIdTypeArray(cells, deep=True))
    pd.SetPolys(ca)
    return pd, pts, faces


def moller_cross(A, B):
    """Moller's interval test for two triangles (not coplanar)."""
    nB = np.cross(B[1] - B[0], B[2] - B[0])
    nA = np.cross(A[1] - A[0], A[2] - A[0])
    dA, dB = (A - B[0]) @ nB, (B - A[0]) @ nA
    if (dA > 0).all() or (dA < 0).all() or (dB > 0).all() or (dB < 0).all() or (dA == 0).all():
        return False
    D = np.cross(nA, nB)

    def interval(T, d):
        p, s = T @ D, np.sign(d)
        for i in range(3):
            j, k = (i + 1) % 3, (i + 2) % 3
            if s[i] != 0 and s[j] != s[i] and s[k] != s[i]:
                return sorted([p[i] + (p[j] - p[i]) * d[i] / (d[i] - d[j]),
                               p[i] + (p[k] - p[i]) * d[i] / (d[i] - d[k])])
        return None
    I, J = interval(A, dA), interval(B, dB)
    return I is not None and J is not None and I[1] > J[0] and J[1] > I[0]


class PrintE2E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="r3d-print-")
        cls.ph = os.path.join(cls.work, "phantom")
        subprocess.run([PHANTOM_BIN, "--out", cls.ph, "--size", "256", "--slices", "128"],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(cls.ph, "truth.json")) as f:
            cls.truth = {s["name"]: s for s in json.load(f)["shapes"]}
        cls.out = cls.run_mesh("out", "--structures", "bone,skin", "--distances", "bone:skin")
        with open(os.path.join(cls.out, "report.json")) as f:
            cls.report = json.load(f)
        cls.s = {s["key"]: s for s in cls.report["structures"]}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    @classmethod
    def run_mesh(cls, name, *args):
        out = os.path.join(cls.work, name)
        r = subprocess.run([MESH_BIN, cls.ph, "-o", out, "--threads", "2"] + list(args),
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return out

    def stl(self, key):
        return read_stl(os.path.join(self.out, key + ".stl"))

    def test_contract_fields(self):
        for key in ("bone", "skin"):
            m, p = self.s[key]["measurements"], self.s[key]["print"]
            self.assertIsInstance(m["volume_ml"], float)
            self.assertEqual(len(m["extents_mm"]), 3)
            self.assertEqual(m["extents_mm"], sorted(m["extents_mm"], reverse=True))
            for ax in m["axes_lps"]:
                self.assertAlmostEqual(float(np.linalg.norm(ax)), 1.0, places=6)
            self.assertAlmostEqual(abs(np.linalg.det(np.array(m["axes_lps"]))), 1.0, places=6)
            self.assertEqual(len(m["centroid_lps_mm"]), 3)
            for k in ("closed", "manifold", "outward", "thin_wall", "printable"):
                self.assertIsInstance(p[k], bool, k)
            self.assertIsInstance(p["self_intersections"], int)
            self.assertIsInstance(p["min_wall_mm"], float)
            self.assertEqual(len(p["min_wall_at_lps_mm"]), 3)
            self.assertEqual(p["min_wall_limit_mm"], 1.0)
            self.assertEqual(p["thin_wall"], p["min_wall_mm"] < 1.0)
            self.assertEqual(p["loose_shells_dropped"], 0)
            self.assertEqual(p["printable"], p["closed"] and p["manifold"] and p["outward"]
                             and p["self_intersections"] == 0 and not p["thin_wall"])
            self.assertGreater(p["analysis_ms"], 0)
            if p["self_intersections"] == 0:
                self.assertIsNone(p["self_intersection_at_lps_mm"])
            # the sum of the shells is the structure's volume
            self.assertAlmostEqual(sum(x["volume_ml"] for x in p["shells"]), m["volume_ml"],
                                   delta=1e-6 * abs(m["volume_ml"]) + 1e-9)
            self.assertAlmostEqual(m["volume_ml"], self.s[key]["volume_ml"],
                                   delta=1e-4 * self.s[key]["volume_ml"])
            self.assertEqual(sum(x["triangles"] for x in p["shells"]), self.s[key]["triangles"])

    def test_shells_match_the_stl(self):
        for key in ("bone", "skin"):
            mine = shells_of(self.stl(key))
            rep = [(x["volume_ml"], x["triangles"]) for x in self.s[key]["print"]["shells"]]
            self.assertEqual(len(mine), len(rep), key)
            for (v1, n1), (v2, n2) in zip(mine, rep):
                self.assertEqual(n1, n2)
                self.assertAlmostEqual(v1, v2, delta=1e-5 * abs(v1) + 1e-9)
        # the phantom's bone: the two spheres, the shell (outer and its
        # cavity, the only negative one) and the two vessels of 300 HU
        bone = self.s["bone"]["print"]["shells"]
        self.assertEqual(len(bone), 6)
        self.assertEqual(sum(1 for x in bone if x["volume_ml"] < 0), 1)
        self.assertEqual(len(self.s["skin"]["print"]["shells"]), 1)

    def test_extents(self):
        for key in ("bone", "skin"):
            tris = self.stl(key)
            a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]
            area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
            ref = a[0]
            q = [x - ref for x in (a, b, c)]
            s = q[0] + q[1] + q[2]
            m2 = sum(np.einsum("i,ij,ik->jk", area, x, x) for x in q) + \
                np.einsum("i,ij,ik->jk", area, s, s)
            m2 /= 12.0 * area.sum()
            cen = (area[:, None] * s / 3.0).sum(axis=0) / area.sum()
            w, v = np.linalg.eigh(m2 - np.outer(cen, cen))
            pts, _ = weld(tris)
            proj = pts @ v
            ext = sorted(proj.max(axis=0) - proj.min(axis=0), reverse=True)
            for e1, e2 in zip(ext, self.s[key]["measurements"]["extents_mm"]):
                self.assertAlmostEqual(e1, e2, delta=0.01)
        # analytic: the body ellipsoid's diameters, largest (S) first
        body = self.truth["body"]["radii_mm"]
        for e, r in zip(self.s["skin"]["measurements"]["extents_mm"],
                        sorted(body, reverse=True)):
            self.assertAlmostEqual(e, 2 * r, delta=0.015 * 2 * r)
        axes = np.abs(np.array(self.s["skin"]["measurements"]["axes_lps"]))
        self.assertGreater(axes[0][2], 0.99)   # S
        self.assertGreater(axes[1][0], 0.99)   # L
        self.assertGreater(axes[2][1], 0.99)   # P
        for k in range(3):
            self.assertAlmostEqual(self.s["skin"]["measurements"]["centroid_lps_mm"][k],
                                   self.truth["body"]["center_lps_mm"][k], delta=0.5)

    def test_distance_against_vtk(self):
        d = self.report["distances"]
        self.assertEqual([(x["a"], x["b"]) for x in d], [("bone", "skin")])
        mm = d[0]["mm"]
        self.assertAlmostEqual(float(np.linalg.norm(np.subtract(d[0]["a_lps_mm"],
                                                                d[0]["b_lps_mm"]))), mm, delta=1e-4)
        pb, bpts, _ = polydata(self.stl("bone"))
        ps, spts, _ = polydata(self.stl("skin"))
        best = []
        for surf, pts in ((ps, bpts), (pb, spts)):
            f = vtk.vtkImplicitPolyDataDistance()
            f.SetInput(surf)
            best.append(min(abs(f.EvaluateFunction(*p)) for p in pts))
        vtk_mm = min(best)
        print("bone:skin distance: ours %.4f mm, VTK vertex-to-surface %.4f mm" % (mm, vtk_mm))
        self.assertGreaterEqual(vtk_mm, mm - 1e-4)
        self.assertLess(vtk_mm - mm, 0.1)
        # the closest points lie on the two surfaces
        fb = vtk.vtkImplicitPolyDataDistance()
        fb.SetInput(pb)
        fs = vtk.vtkImplicitPolyDataDistance()
        fs.SetInput(ps)
        self.assertLess(abs(fb.EvaluateFunction(*d[0]["a_lps_mm"])), 1e-3)
        self.assertLess(abs(fs.EvaluateFunction(*d[0]["b_lps_mm"])), 1e-3)

    def test_self_intersection_found_independently(self):
        for key in ("bone", "skin"):
            p = self.s[key]["print"]
            if p["self_intersections"] == 0:
                continue
            tris = self.stl(key)
            at = np.array(p["self_intersection_at_lps_mm"])
            near = np.where(np.linalg.norm(tris.mean(axis=1) - at, axis=1) < 3.0)[0]
            _, faces = weld(tris)
            found = 0
            for i in range(len(near)):
                for j in range(i + 1, len(near)):
                    if set(faces[near[i]]) & set(faces[near[j]]):
                        continue
                    found += moller_cross(tris[near[i]], tris[near[j]])
            self.assertGreater(found, 0, key)

    def test_min_wall_by_vtk_rays(self):
        for key in ("bone",):
            p = self.s[key]["print"]
            tris = self.stl(key)
            pd, pts, faces = polydata(tris)
            at = np.array(p["min_wall_at_lps_mm"])
            v = int(np.argmin(np.linalg.norm(pts - at, axis=1)))
            self.assertLess(np.linalg.norm(pts[v] - at), 1e-4)
            fn = np.cross(pts[faces[:, 1]] - pts[faces[:, 0]], pts[faces[:, 2]] - pts[faces[:, 0]])
            normal = np.zeros_like(pts)
            for k in range(3):
                np.add.at(normal, faces[:, k], fn)
            obb = vtk.vtkOBBTree()
            obb.SetDataSet(pd)
            obb.BuildLocator()

            def thickness(u):
                ring = set(np.where((faces == u).any(axis=1))[0])
                d = -normal[u] / np.linalg.norm(normal[u])
                hits, ids = vtk.vtkPoints(), vtk.vtkIdList()
                obb.IntersectWithLine(pts[u], pts[u] + 500.0 * d, hits, ids)
                # the first hit where the ray leaves the material: a triangle
                # facing along the ray, outside the vertex's own triangles
                ts = [np.dot(np.array(hits.GetPoint(i)) - pts[u], d)
                      for i in range(hits.GetNumberOfPoints())
                      if ids.GetId(i) not in ring and np.dot(fn[ids.GetId(i)], d) > 0]
                ts = [t for t in ts if t > 1e-9]
                return min(ts) if ts else np.inf
            ring_v = set(faces[(faces == v).any(axis=1)].ravel())
            if p["self_intersections"] > 0:
                far = np.linalg.norm(at - np.array(p["self_intersection_at_lps_mm"]))
                self.assertGreater(far, 1.0)
            robust = max(thickness(u) for u in ring_v)
            print("%s: min wall %.4f mm, VTK rays over its 1-ring %.4f mm" %
                  (key, p["min_wall_mm"], robust))
            self.assertAlmostEqual(robust, p["min_wall_mm"], delta=1e-3)
            # the bone shell's wall is 3.33 mm along its axes (the preset's
            # threshold puts each surface a fraction of a voxel outward)
            wall = self.truth["bone_shell"]["radii_mm"][0] - self.truth["shell_inside"]["radii_mm"][0]
            self.assertLess(abs(p["min_wall_mm"] - wall), 1.0)

    def test_drop_and_flag(self):
        out = self.run_mesh("drop", "--structures", "bone", "--drop-loose-shells",
                            "--min-shell-ml", "3", "--min-wall-mm", "5")
        with open(os.path.join(out, "report.json")) as f:
            bone = {s["key"]: s for s in json.load(f)["structures"]}["bone"]
        before = self.s["bone"]["print"]["shells"]
        small = [x for x in before if 0 <= x["volume_ml"] < 3.0]
        self.assertGreaterEqual(len(small), 1)
        p = bone["print"]
        self.assertEqual(p["loose_shells_dropped"], len(small))
        self.assertEqual(len(p["shells"]), len(before) - len(small))
        self.assertEqual(bone["triangles"],
                         self.s["bone"]["triangles"] - sum(x["triangles"] for x in small))
        self.assertEqual(len(shells_of(read_stl(os.path.join(out, "bone.stl")))),
                         len(p["shells"]))
        self.assertEqual(p["min_wall_limit_mm"], 5.0)
        self.assertTrue(p["thin_wall"])
        self.assertFalse(p["printable"])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
