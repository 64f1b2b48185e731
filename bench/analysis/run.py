#!/usr/bin/python3
"""
bench/analysis/run.py: the print-readiness analysis time per structure
(issue 14; goal: at most 1 s per structure of 500k triangles on 2 cores),
ours against VTK on the same meshes. Run with Debian's python (python3-vtk9),
on a release build:

    /usr/bin/python3 bench/analysis/run.py --build build/release [--reps 5]
        [--data ../shared/data/ct/pancreas-ct-cb001] [--threads 2]

1. recon3d-mesh makes the structures of pancreas-ct-cb001 (STL files, with
   --no-print so that nothing is analysed twice).
2. For each structure's STL and for a generated 500k-triangle UV sphere,
   analysis_bench (ours, C, one process each) runs the whole analysis
   (shells, self-intersections, wall thickness, principal extents) --reps
   times on --threads threads and prints the median; this script reads the
   child's user/sys time and peak RSS with wait4.
3. The reference, in a child process per mesh: VTK's vtkSTLReader (merging
   points, as our welding does), vtkMassProperties (volume, area) and
   vtkPolyDataConnectivityFilter (shells), the same number of runs. VTK has
   no wall-thickness or self-intersection filter on one mesh, so the
   reference does less than ours; the ratio is ours (everything) over VTK
   (volume + shells).
4. Distances (bone:skin, vessels:bone): ours (mesh_gap) against
   vtkDistancePolyDataFilter (the signed distance of every vertex of one
   mesh to the other surface, both ways; the minimum |d|), VTK's side run
   --vtk-distance-reps times (default 1: about a minute per run).
Prints medians, ratios, user/sys, peak RSS, and whether the figures agree
(shell count equal, volume within 0.1 %, distance: VTK's vertex minimum
never below ours and within 0.1 mm).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run_child(cmd):
    """Runs cmd; returns (stdout, user_s, sys_s, peak_rss_mib). Linux keeps
    the peak RSS across exec, so this (the parent) must stay small."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit("failed: %s" % " ".join(cmd))
    return out, ru.ru_utime, ru.ru_stime, ru.ru_maxrss / 1024.0


def vtk_child(args):
    import vtk
    smp = vtk.vtkSMPTools()
    smp.Initialize(args.threads)
    res = {}
    if args.vtk_mode == "analyse":
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            r = vtk.vtkSTLReader()
            r.SetFileName(args.files[0])
            r.Update()
            mp = vtk.vtkMassProperties()
            mp.SetInputConnection(r.GetOutputPort())
            mp.Update()
            cf = vtk.vtkPolyDataConnectivityFilter()
            cf.SetInputConnection(r.GetOutputPort())
            cf.SetExtractionModeToAllRegions()
            cf.Update()
            times.append(time.perf_counter() - t0)
            res = {"volume_ml": mp.GetVolume() / 1000.0, "area_mm2": mp.GetSurfaceArea(),
                   "shells": cf.GetNumberOfExtractedRegions(),
                   "triangles": r.GetOutput().GetNumberOfCells()}
    else:
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            polys = []
            for f in args.files:
                r = vtk.vtkSTLReader()
                r.SetFileName(f)
                r.Update()
                polys.append(r.GetOutput())
            best = float("inf")
            for a, b in ((0, 1), (1, 0)):
                df = vtk.vtkDistancePolyDataFilter()
                df.SetInputData(0, polys[a])
                df.SetInputData(1, polys[b])
                df.ComputeSecondDistanceOff()
                df.SignedDistanceOff()
                df.Update()
                lo, _ = df.GetOutput().GetPointData().GetScalars().GetRange()
                best = min(best, lo)
            times.append(time.perf_counter() - t0)
            res = {"mm": best}
    res["median_s"] = statistics.median(times)
    res["runs_s"] = times
    print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "..", "shared", "data", "ct",
                                                   "pancreas-ct-cb001"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sphere", type=int, default=500000)
    ap.add_argument("--vtk-distance-reps", type=int, default=1,
                    help="runs of vtkDistancePolyDataFilter (about a minute each on bone:skin)")
    ap.add_argument("--vtk-mode")
    ap.add_argument("--write-sphere")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    if args.vtk_mode:
        return vtk_child(args)
    if args.write_sphere:
        return write_uv_sphere(args.write_sphere, args.sphere)
    bench = os.path.join(args.build, "src", "mesh", "analysis_bench")
    mesh = os.path.join(args.build, "src", "tools", "recon3d-mesh")
    work = tempfile.mkdtemp(prefix="r3d-bench-analysis-")
    subprocess.run([mesh, args.data, "-o", work, "--no-print", "--threads", str(args.threads)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(work, "report.json")) as f:
        keys = [s["key"] for s in json.load(f)["structures"] if "file" in s]
    # the sphere as an STL too, for VTK (written by ours: analysis_bench reads it back)
    cases = [(k, os.path.join(work, k + ".stl")) for k in keys]
    sphere_stl = os.path.join(work, "sphere.stl")
    # in a child: peak RSS is inherited through fork, so this process stays small
    subprocess.run([sys.executable, os.path.abspath(__file__), "--write-sphere", sphere_stl,
                    "--sphere", str(args.sphere)], check=True)
    cases.append(("sphere%dk" % (args.sphere // 1000), sphere_stl))
    me = os.path.abspath(__file__)
    print("print-readiness analysis, %d threads, median of %d runs (%s)" %
          (args.threads, args.reps, os.path.basename(os.path.normpath(args.data))))
    print("%-12s %9s %9s %9s %7s %11s %11s %9s  %s" % (
        "structure", "triangles", "ours_s", "vtk_s", "ratio", "ours u/s", "vtk u/s",
        "rss o/v", "agree (shells, volume)"))
    all_ok = True
    for name, stl in cases:
        o, ou, os_, orss = run_child([bench, "--threads", str(args.threads), "--reps",
                                      str(args.reps), "analyse", stl])
        ours = json.loads(o)
        v, vu, vs, vrss = run_child([sys.executable, me, "--vtk-mode", "analyse", "--reps",
                                     str(args.reps), "--threads", str(args.threads), stl])
        ref = json.loads(v)
        ok = ours["shells"] == ref["shells"] and \
            abs(ours["volume_ml"] - ref["volume_ml"]) <= 1e-3 * abs(ref["volume_ml"])
        all_ok &= ok
        print("%-12s %9d %9.3f %9.3f %7.2f %5.2f/%-5.2f %5.2f/%-5.2f %4.0f/%-4.0f  %s "
              "(%d vs %d shells, %.2f vs %.2f ml; ours also: %d self-intersections, min wall "
              "%.2f mm)" % (
                  name, ours["triangles"], ours["median_s"], ref["median_s"],
                  ours["median_s"] / ref["median_s"], ou, os_, vu, vs, orss, vrss,
                  "yes" if ok else "NO", ours["shells"], ref["shells"], ours["volume_ml"],
                  ref["volume_ml"], ours["self_intersections"], ours["min_wall_mm"]))
    print()
    print("%-16s %15s %9s %9s %7s %11s %11s  %s" % ("distance", "triangles", "ours_s", "vtk_s",
                                                    "ratio", "ours u/s", "vtk u/s", "mm ours / vtk"))
    for a, b in (("bone", "skin"), ("vessels", "bone")):
        fa, fb = os.path.join(work, a + ".stl"), os.path.join(work, b + ".stl")
        if not (os.path.exists(fa) and os.path.exists(fb)):
            continue
        o, ou, os_, _ = run_child([bench, "--threads", str(args.threads), "--reps",
                                   str(args.reps), "distance", fa, fb])
        ours = json.loads(o)
        v, vu, vs, _ = run_child([sys.executable, me, "--vtk-mode", "distance", "--reps",
                                  str(args.vtk_distance_reps), "--threads", str(args.threads),
                                  fa, fb])
        ref = json.loads(v)
        ok = ref["mm"] >= ours["mm"] - 1e-4 and ref["mm"] - ours["mm"] < 0.1
        all_ok &= ok
        print("%-16s %15s %9.3f %9.3f %7.2f %5.2f/%-5.2f %5.2f/%-5.2f  %.3f / %.3f %s" % (
            a + ":" + b, "%d+%d" % tuple(ours["triangles"]), ours["median_s"], ref["median_s"],
            ours["median_s"] / ref["median_s"], ou, os_, vu, vs, ours["mm"], ref["mm"],
            "agree" if ok else "DISAGREE"))
    print("\nall figures agree with VTK" if all_ok else "\nSOME FIGURES DISAGREE")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all_ok else 1


def write_uv_sphere(path, ntri):
    """A UV sphere of radius 50 mm, 2 nu^2 triangles, as binary STL."""
    import math
    import struct
    nu = int(math.sqrt(ntri / 2.0))
    nv = nu + 1
    pts = [(0.0, 0.0, 50.0), (0.0, 0.0, -50.0)]
    for r in range(1, nv):
        th = math.pi * r / nv
        for s in range(nu):
            ph = 2 * math.pi * s / nu
            pts.append((50 * math.sin(th) * math.cos(ph), 50 * math.sin(th) * math.sin(ph),
                        50 * math.cos(th)))

    def ring(r, s):
        return 2 + (r - 1) * nu + (s % nu)
    tris = []
    for s in range(nu):
        tris.append((0, ring(1, s), ring(1, s + 1)))
        tris.append((1, ring(nv - 1, s + 1), ring(nv - 1, s)))
    for r in range(1, nv - 1):
        for s in range(nu):
            tris.append((ring(r, s), ring(r + 1, s), ring(r + 1, s + 1)))
            tris.append((ring(r, s), ring(r + 1, s + 1), ring(r, s + 1)))
    with open(path, "wb") as f:
        f.write(b"uv sphere".ljust(80, b" "))
        f.write(struct.pack("<I", len(tris)))
        rec = struct.Struct("<12fH")
        for t in tris:
            a, b, c = (pts[i] for i in t)
            f.write(rec.pack(0, 0, 0, *a, *b, *c, 0))


if __name__ == "__main__":
    sys.exit(main())
