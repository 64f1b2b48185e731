#!/usr/bin/python3
"""
mesh_core.py: bench/mesh-core, the benchmark of recon3d's mesh core against
VTK's vtkFlyingEdges3D and meshoptimizer alone. Run with Debian's python
(python3-vtk9, numpy), on a release build (-DR3D_SANITIZE=OFF):

    /usr/bin/python3 bench/mesh_core.py --build build-mesh-rel [--reps 5]

1. mesh_bench (ours, C) builds a 512x512x400 int16 CT-like volume, writes
   it to a temporary raw file, and times our isosurface at iso 299.5 with 1
   and 2 threads (median of --reps after a warm-up), then our decimation to
   10 % (1 and 2 threads, median of 3 after a warm-up) against
   meshopt_simplify alone on the same raw mesh.
2. This script, in a fresh child process per thread count, loads the same
   raw volume and times vtkFlyingEdges3D on it at the same isovalue (normals,
   gradients and scalars off: ours computes none of them either), with the
   same thread count (vtkSMPTools) and the same number of runs.
Both sides run with GLIBC_TUNABLES=glibc.malloc.hugetlb=1, so VTK's malloc
gets transparent huge pages as our bigbuf_alloc() does (same allocator
setting). Prints the medians, the ratios ours/VTK, user/sys CPU time and
peak RSS of each process.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

NX, NY, NZ = 512, 512, 400
ISO = 299.5
ENV = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.hugetlb=1")


def vtk_child(raw, threads, reps, dims=None):
    import numpy as np
    import vtk
    from vtk.util import numpy_support as ns

    smp = vtk.vtkSMPTools()
    smp.Initialize(threads)
    nx, ny, nz = dims or (NX, NY, NZ)
    vol = np.fromfile(raw, dtype=np.int16)
    assert vol.size == nx * ny * nz
    img = vtk.vtkImageData()
    img.SetDimensions(nx, ny, nz)
    arr = ns.numpy_to_vtk(vol, deep=0, array_type=vtk.VTK_SHORT)
    img.GetPointData().SetScalars(arr)
    fe = vtk.vtkFlyingEdges3D()
    fe.SetInputData(img)
    fe.SetValue(0, ISO)
    fe.ComputeNormalsOff()
    fe.ComputeGradientsOff()
    fe.ComputeScalarsOff()
    times = []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for r in range(reps + 1):
        fe.Modified()
        t0 = time.perf_counter()
        fe.Update()
        t = time.perf_counter() - t0
        if r > 0:
            times.append(t)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    out = fe.GetOutput()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"vtk_cpu threads {threads} user_s_per_run {(r1.ru_utime - r0.ru_utime) / (reps + 1):.4f} "
          f"sys_s_per_run {(r1.ru_stime - r0.ru_stime) / (reps + 1):.4f}")
    print(f"vtk threads {threads} backend {smp.GetBackend()} "
          f"estimated_threads {smp.GetEstimatedNumberOfThreads()}")
    print(f"vtk_median_s {statistics.median(times):.4f}")
    print(f"vtk_counts triangles {out.GetNumberOfPolys()} vertices {out.GetNumberOfPoints()}")
    print(f"rusage user_s {ru.ru_utime:.2f} sys_s {ru.ru_stime:.2f} "
          f"peak_rss_mb {ru.ru_maxrss / 1024.0:.1f}")


def run(cmd):
    p = subprocess.run(cmd, env=ENV, check=True, capture_output=True, text=True)
    sys.stdout.write(p.stdout)
    return p.stdout.splitlines()


def field(lines, key, index):
    for ln in lines:
        parts = ln.split()
        if parts and parts[0] == key:
            return parts[index]
    raise KeyError(key)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-mesh-rel")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--vtk-child", nargs=3, metavar=("RAW", "THREADS", "REPS"))
    ap.add_argument("--in", dest="inp", nargs=4, metavar=("RAW", "NX", "NY", "NZ"),
                    help="an int16 volume (recon3d-mesh --save-volume) instead of the built-in one")
    ap.add_argument("--dims", nargs=3, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.vtk_child:
        vtk_child(a.vtk_child[0], int(a.vtk_child[1]), int(a.vtk_child[2]), a.dims)
        return 0
    tool = os.path.join(a.build, "src", "mesh", "mesh_bench")
    with tempfile.TemporaryDirectory() as tmp:
        if a.inp:
            raw = a.inp[0]
            dims = [str(int(x)) for x in a.inp[1:]]
            print("== ours (mesh_bench) on %s %s ==" % (raw, "x".join(dims)))
            ours = run([tool, "--in", raw] + dims + ["--reps", str(a.reps)])
        else:
            raw = os.path.join(tmp, "vol.raw")
            dims = [str(NX), str(NY), str(NZ)]
            print("== ours (mesh_bench) ==")
            ours = run([tool, "--raw", raw, "--reps", str(a.reps)])
        vtk = {}
        for threads in (1, 2):
            print(f"== VTK vtkFlyingEdges3D, {threads} thread(s) ==")
            vtk[threads] = run([sys.executable, os.path.abspath(__file__), "--vtk-child",
                                raw, str(threads), str(a.reps), "--dims"] + dims)
    print("== summary ==")
    for threads in (1, 2):
        o = next(float(ln.split()[3]) for ln in ours
                 if ln.startswith(f"iso_median_s threads {threads} "))
        v = float(field(vtk[threads], "vtk_median_s", 1))
        oc = next(ln.split() for ln in ours if ln.startswith(f"iso_cpu threads {threads} "))
        vcl = next(ln.split() for ln in vtk[threads] if ln.startswith("vtk_cpu"))
        print(f"isosurface {threads} thread(s): ours {o * 1000:.1f} ms, VTK {v * 1000:.1f} ms, "
              f"ours/VTK {o / v:.2f}x (goal <= 1.0x); CPU per run user/sys: ours "
              f"{float(oc[4]) * 1000:.0f}/{float(oc[6]) * 1000:.0f} ms, VTK "
              f"{float(vcl[4]) * 1000:.0f}/{float(vcl[6]) * 1000:.0f} ms")
    for threads in (1, 2):
        o = next(float(ln.split()[3]) for ln in ours
                 if ln.startswith(f"iso_reuse_median_s threads {threads} "))
        oc = next(ln.split() for ln in ours if ln.startswith(f"iso_reuse_cpu threads {threads} "))
        print(f"isosurface {threads} thread(s) with the job's scratch reused: ours "
              f"{o * 1000:.1f} ms; CPU per run user/sys {float(oc[4]) * 1000:.0f}/"
              f"{float(oc[6]) * 1000:.0f} ms")
    ot = next(ln for ln in ours if ln.startswith("iso_counts threads 1 "))
    ours_tri, vtk_tri = int(ot.split()[4]), int(field(vtk[1], "vtk_counts", 2))
    print(f"triangles: ours {ours_tri}, VTK {vtk_tri}" + (
        "" if ours_tri == vtk_tri else
        " (the surface crosses the volume's border: our padding closes it there, VTK leaves "
        "it open; tests/mesh/test_vtk_compare.py shows equal counts when both see the same "
        "closed surface)"))
    m = float(field(ours, "meshopt_alone_median_s", 1))
    mc = next(ln.split() for ln in ours if ln.startswith("meshopt_alone_cpu"))
    for threads in (1, 2):
        d = next(float(ln.split()[3]) for ln in ours
                 if ln.startswith(f"decimate_median_s threads {threads} "))
        dc = next(ln.split() for ln in ours if ln.startswith(f"decimate_cpu threads {threads} "))
        print(f"decimation to 10 %, {threads} thread(s): ours {d:.3f} s (weld, simplify, "
              f"repair; CPU per run user/sys {float(dc[4]):.2f}/{float(dc[6]):.2f} s), "
              f"meshopt_simplify alone (1 thread) {m:.3f} s (CPU {float(mc[4]):.2f}/"
              f"{float(mc[6]):.2f} s), ours/meshopt {d / m:.2f}x")
    print("ours: user {} s, sys {} s, peak RSS {} MB (whole mesh_bench run)".format(
        field(ours, "rusage", 2), field(ours, "rusage", 4), field(ours, "rusage", 6)))
    for threads in (1, 2):
        lines = vtk[threads]
        print("VTK {} thread(s): user {} s, sys {} s, peak RSS {} MB".format(
            threads, field(lines, "rusage", 2), field(lines, "rusage", 4),
            field(lines, "rusage", 6)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
