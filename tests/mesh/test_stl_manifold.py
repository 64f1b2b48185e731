#!/usr/bin/python3
"""
mesh.stl_manifold (issue 16): every STL recon3d-mesh writes, read back as a
slicer reads it (tests/mesh/stl_check.py: numpy, vertices welded by exact
coordinates), is closed, 2-manifold (no edge in more than two triangles, no
vertex where two sheets meet), consistently oriented and outward, with no
triangle without area; and every structure is within its triangle budget
with no decimation fallback, on every shared CT series that makes a volume
and on phantoms. The checker is first shown to find each defect on
hand-made STLs, so that a pass means something.

Series: pancreas-ct-cb001, ge-head-tilt (--interpolate-gaps), the rt-utils
GE CT, highdicom's CT2 (--interpolate-gaps), TotalSegmentator's example
series, a stack of 12 copies of the cornerstone CT slice (made as
mesh.surface_vtk makes it: the slice is one image, and a volume needs two),
and recon3d-phantom axial and tilted series.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stl_check  # noqa: E402
from test_surface_vtk import cornerstone_stack  # noqa: E402

MESH = os.environ["R3D_MESH_BIN"]
PHANTOM = os.environ["R3D_PHANTOM_BIN"]
DATA = os.environ["R3D_DATA"]


def write_stl(path, tris):
    with open(path, "wb") as f:
        f.write(b"\0" * 80 + struct.pack("<I", len(tris)))
        for t in tris:
            f.write(struct.pack("<3f", 0, 0, 0))
            for p in t:
                f.write(struct.pack("<3f", *p))
            f.write(b"\0\0")


def tetra(o):
    a, b, c, d = [tuple(np.add(o, v)) for v in ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1))]
    return [(a, c, b), (a, b, d), (a, d, c), (b, c, d)]


def self_test(tmp):
    """The checker finds each defect it is meant to find."""
    p = os.path.join(tmp, "ok.stl")
    write_stl(p, tetra((0, 0, 0)))
    r = stl_check.check(p)
    assert r["closed"] and r["manifold"] and r["outward"] and r["euler"] == 2, r
    # Two tetrahedra touching at one vertex (the corner (1,0,0) of the first
    # is the origin of the second): a pinch.
    write_stl(p, tetra((0, 0, 0)) + tetra((1, 0, 0)))
    r = stl_check.check(p)
    assert r["closed"] and r["pinched_vertices"] == 1 and not r["manifold"], r
    # Two tetrahedra sharing an edge: four triangles on it.
    t2 = [tuple((x, y, -z) for (x, y, z) in t[::-1]) for t in tetra((0, 0, 0))]
    write_stl(p, tetra((0, 0, 0)) + t2)
    r = stl_check.check(p)
    assert r["nonmanifold_edges"] >= 1 and not r["manifold"], r
    # One triangle missing: open.
    write_stl(p, tetra((0, 0, 0))[:3])
    r = stl_check.check(p)
    assert r["boundary_edges"] == 3 and not r["closed"], r
    # One triangle flipped: misoriented.
    t = tetra((0, 0, 0))
    t[0] = t[0][::-1]
    write_stl(p, t)
    r = stl_check.check(p)
    assert r["misoriented_edges"] == 3 and not r["manifold"], r
    # A triangle without area.
    write_stl(p, tetra((0, 0, 0)) + [((5, 0, 0), (6, 0, 0), (7, 0, 0))])
    assert stl_check.check(p)["zero_area"] == 1
    print("checker: finds pinches, shared edges, holes, flips and zero-area triangles")


def run_case(name, series, out, extra, expect_none=False):
    cmd = [MESH, series, "-o", out] + extra
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit("%s: recon3d-mesh failed: %s" % (name, p.stderr.strip()))
    with open(os.path.join(out, "report.json")) as f:
        rep = json.load(f)
    made = 0
    for s in rep["structures"]:
        if "triangles" not in s:
            continue
        made += 1
        key = s["key"]
        d = s.get("decimation", {})
        where = "%s/%s" % (name, key)
        assert s["triangles"] <= s["max_triangles"], \
            "%s: %d triangles over its budget of %d" % (where, s["triangles"], s["max_triangles"])
        assert d.get("fallback") is None, "%s: decimation fell back: %s" % (where, d.get("fallback"))
        assert s["watertight"] and s["zero_area_triangles"] == 0, "%s: report: %s" % (where, s)
        r = stl_check.check(os.path.join(out, s["file"]))
        assert r["triangles"] == s["triangles"], (where, r["triangles"], s["triangles"])
        assert r["closed"], "%s: %d boundary edges" % (where, r["boundary_edges"])
        assert r["nonmanifold_edges"] == 0, "%s: %d edges in more than two triangles" % (
            where, r["nonmanifold_edges"])
        assert r["pinched_vertices"] == 0, "%s: %d vertices where sheets meet" % (
            where, r["pinched_vertices"])
        assert r["misoriented_edges"] == 0 and r["degenerate"] == 0, (where, r)
        assert r["outward"], "%s: inward (volume %.1f)" % (where, r["volume"])
        assert r["zero_area"] == 0, "%s: %d triangles without area" % (where, r["zero_area"])
        assert r["euler"] == s["euler"], (where, r["euler"], s["euler"])
        print("%-28s %7d / %7d triangles, closed, 2-manifold, outward, euler %d, "
              "error mean %.3f max %.3f mm" % (where, s["triangles"], s["max_triangles"],
                                                r["euler"], d.get("error_mm", {}).get("mean", 0),
                                                d.get("error_mm", {}).get("max", 0)))
    if expect_none:
        # A 16x16 test series: nothing of a body in it; every structure
        # says why it was skipped.
        assert made == 0 and all(s.get("skipped_reason") for s in rep["structures"]), rep
        print("%-28s no structure (every one skipped with its reason)" % name)
    else:
        assert made > 0, "%s: no structure made" % name


def main():
    tmp = tempfile.mkdtemp(prefix="r3d-stl-")
    try:
        self_test(tmp)
        ph = os.path.join(tmp, "phantom")
        subprocess.run([PHANTOM, "--out", ph], check=True, capture_output=True)
        pt = os.path.join(tmp, "phantom-tilt")
        subprocess.run([PHANTOM, "--out", pt, "--geometry", "tilt", "--angle", "20"],
                       check=True, capture_output=True)
        cases = [
            ("pancreas-ct-cb001", os.path.join(DATA, "ct", "pancreas-ct-cb001"), []),
            ("ge-head-tilt", os.path.join(DATA, "ct", "ge-head-tilt"), ["--interpolate-gaps"]),
            ("rt-utils", os.path.join(DATA, "seg", "rt-utils", "sample"), []),
            ("highdicom-ct2", os.path.join(DATA, "seg", "highdicom-ct", "CT2"),
             ["--interpolate-gaps"], True),
            ("totalseg-example", os.path.join(DATA, "totalseg", "example_ct_dicom"), []),
            ("cornerstone-stack", cornerstone_stack(os.path.join(tmp, "cs")), []),
            ("phantom", ph, []),
            ("phantom-tilt", pt, []),
        ]
        for case in cases:
            name, series = case[0], case[1]
            if not os.path.isdir(series):
                raise SystemExit("%s: %s is missing" % (name, series))
            run_case(name, series, os.path.join(tmp, name), *case[2:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("mesh.stl_manifold: ok")


if __name__ == "__main__":
    main()
