"""
Phantom geometry through the whole offline command: recon3d-phantom writes
a CT series of known shapes (axial, oblique, gantry-tilted), recon3d-mesh
--threshold makes the surface, and the STL piece around the 1000 HU sphere is
compared with the analytic truth: enclosed volume within 1 %, centroid within
0.5 mm in patient coordinates, closed and 2-manifold, Euler characteristic 2,
positive signed volume (outward normals).

The phantom renders partial volume at edges, so the threshold is the midpoint
between the sphere's HU and the body's (520): there the surface lies on the
true boundary. Other shapes at that threshold are ignored.
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

MESH = os.environ["R3D_MESH_BIN"]
PHANTOM = os.environ["R3D_PHANTOM_BIN"]


def read_stl(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<I", data[80:84])[0]
    assert len(data) == 84 + 50 * n
    rec = np.frombuffer(data[84:], dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)),
                                                   ("a", "<u2")]), count=n)
    return rec["v"].astype(np.float64)


def pieces(tris):
    """Splits a triangle soup into connected pieces (shared vertex positions)."""
    flat = tris.reshape(-1, 3)
    _, vid = np.unique(np.round(flat, 4), axis=0, return_inverse=True)
    vid = vid.reshape(-1, 3)
    parent = np.arange(vid.max() + 1)

    def find(a):
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root
    for a, b, c in vid:
        ra, rb, rc = find(a), find(b), find(c)
        parent[rb] = ra
        parent[find(rc)] = ra
    roots = np.array([find(v) for v in vid[:, 0]])
    return [(tris[roots == r], vid[roots == r]) for r in np.unique(roots)]


def solid(tris):
    """Signed volume (mm3) and centroid of the solid a closed surface bounds."""
    v0, v1, v2 = tris[:, 0], tris[:, 1], tris[:, 2]
    six_v = np.einsum("ij,ij->i", v0, np.cross(v1, v2))
    vol = six_v.sum() / 6.0
    centroid = ((v0 + v1 + v2) * six_v[:, None]).sum(0) / (4.0 * six_v.sum())
    return vol, centroid


def topology(vid):
    edges = np.sort(np.concatenate([vid[:, [0, 1]], vid[:, [1, 2]], vid[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    nv = len(np.unique(vid))
    return bool((counts == 2).all()), nv - len(counts) + len(vid)


class PhantomGeometry(unittest.TestCase):
    def check_geometry(self, kind):
        work = tempfile.mkdtemp(prefix="r3d-phantom-geo-")
        try:
            series = os.path.join(work, "series")
            out = os.path.join(work, "out")
            r = subprocess.run([PHANTOM, "--out", series, "--size", "256", "--slices", "128",
                                "--geometry", kind, "--angle", "15"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(series, "truth.json")) as f:
                truth = json.load(f)
            sphere = next(s for s in truth["shapes"] if s["name"] == "bone_sphere")
            body = next(s for s in truth["shapes"] if s["name"] == "body")
            threshold = int(round((sphere["hu"] + body["hu"]) / 2))
            r = subprocess.run([MESH, series, "-o", out, "--threshold", str(threshold),
                                "--no-decimate", "--threads", "2"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            tris = read_stl(os.path.join(out, "custom.stl"))
            want_c = np.array(sphere["centroid_lps_mm"])
            best = None
            for t, vid in pieces(tris):
                vol, c = solid(t)
                d = np.linalg.norm(c - want_c)
                if best is None or d < best[0]:
                    best = (d, vol, c, t, vid)
            d, vol, c, t, vid = best
            manifold, euler = topology(vid)
            want_v = sphere["volume_ml"] * 1000.0
            print("%s: volume %.1f mm3 (truth %.1f, %+.2f %%), centroid %s (truth %s, %.3f mm), "
                  "euler %d" % (kind, vol, want_v, 100 * (vol - want_v) / want_v,
                                np.round(c, 3), want_c, d, euler))
            self.assertGreater(vol, 0, "normals point inward")
            self.assertLess(abs(vol - want_v) / want_v, 0.01)
            self.assertLess(d, 0.5)
            self.assertTrue(manifold, "not closed and 2-manifold")
            self.assertEqual(euler, 2)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def test_axial(self):
        self.check_geometry("axial")

    def test_oblique(self):
        self.check_geometry("oblique")

    def test_tilt(self):
        self.check_geometry("tilt")


if __name__ == "__main__":
    unittest.main(verbosity=2)
