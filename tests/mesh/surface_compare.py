"""
surface_compare.py: our threshold surfaces against VTK's vtkFlyingEdges3D on
the same decoded volume, read as their consumers read them. Shared by the
test mesh.surface_vtk and by bench/surface; Debian's /usr/bin/python3
(python3-vtk9, numpy).

compare(tool, series, T, tmp, extra) runs
  recon3d-mesh SERIES --threshold T --no-smooth --no-decimate --save-volume
(plus extra arguments, e.g. --mask-surfaces), reads custom.stl welded by
coordinates as a slicer does, and builds the reference from the saved volume:
  - the same voxels: our threshold structure keeps the 26-connected
    components of at least 27 voxels of { HU >= T }; the voxels of smaller
    components are set to T - 1 for VTK (no marching cube holds voxels of
    two 26-connected components, so this removes exactly those surfaces);
  - closed the same way: the volume is padded with one layer whose value
    mirrors the border voxel about the isovalue where it is inside
    (2T - 1 - v) and repeats it elsewhere, so VTK's surface closes half a
    voxel outside the scanned field, where ours does;
  - vtkFlyingEdges3D at T - 0.5, its points mapped to LPS mm by the affine of
    report.json.
Distances are point to surface both ways (vtkDistancePolyDataFilter);
volumes are the divergence-theorem volumes of the two closed surfaces.
"""
import json
import os
import struct
import subprocess

import numpy as np
import vtk
from vtk.util import numpy_support as ns

MIN_COMPONENT = 27


def read_stl(path):
    """Binary STL welded by coordinates: (points (n, 3), triangles (m, 3))."""
    with open(path, "rb") as f:
        f.seek(80)
        n = struct.unpack("<I", f.read(4))[0]
        rec = np.frombuffer(f.read(50 * n), dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", 9),
                                                             ("a", "<u2")]))
    if len(rec) != n:
        raise ValueError("%s: %d triangles announced, %d present" % (path, n, len(rec)))
    v = rec["v"].reshape(-1, 3).astype(np.float64)
    uniq, inv = np.unique(v, axis=0, return_inverse=True)
    return uniq, inv.reshape(-1, 3)


def edge_check(tri):
    """(boundary edges, edges used more than twice, inconsistently oriented
    edges) of a triangle list: all 0 for a closed, 2-manifold, oriented mesh."""
    e = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    key = np.minimum(e[:, 0], e[:, 1]) * (int(tri.max()) + 1) + np.maximum(e[:, 0], e[:, 1])
    _, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    fwd = np.bincount(inv, weights=(e[:, 0] < e[:, 1]).astype(float))
    two = cnt == 2
    return int((cnt == 1).sum()), int((cnt > 2).sum()), int((two & (fwd != 1)).sum())


def polydata(pts, tri):
    pd = vtk.vtkPolyData()
    p = vtk.vtkPoints()
    p.SetData(ns.numpy_to_vtk(np.ascontiguousarray(pts), deep=1))
    pd.SetPoints(p)
    cells = np.hstack([np.full((len(tri), 1), 3, np.int64), tri.astype(np.int64)]).ravel()
    ca = vtk.vtkCellArray()
    ca.SetCells(len(tri), ns.numpy_to_vtkIdTypeArray(cells, deep=1))
    pd.SetPolys(ca)
    return pd


def enclosed_volume(pts, tri):
    a, b, c = pts[tri[:, 0]], pts[tri[:, 1]], pts[tri[:, 2]]
    return abs(np.einsum("ij,ij->i", a, np.cross(b, c)).sum()) / 6.0


def image(vol):
    nz, ny, nx = vol.shape
    img = vtk.vtkImageData()
    img.SetDimensions(nx, ny, nz)
    img.GetPointData().SetScalars(ns.numpy_to_vtk(np.ascontiguousarray(vol).ravel(), deep=1,
                                                  array_type=vtk.VTK_SHORT))
    return img


def components26(mask):
    """26-connected component labels of a boolean [z, y, x] mask (0 outside)
    and each label's size. VTK's vtkImageConnectivityFilter labels
    face-connected (6) regions; those touching along an edge or a corner are
    then merged here with a union-find over the label pairs."""
    img = vtk.vtkImageData()
    nz, ny, nx = mask.shape
    img.SetDimensions(nx, ny, nz)
    img.GetPointData().SetScalars(ns.numpy_to_vtk(mask.astype(np.uint8).ravel(), deep=1,
                                                  array_type=vtk.VTK_UNSIGNED_CHAR))
    f = vtk.vtkImageConnectivityFilter()
    f.SetInputData(img)
    f.SetScalarRange(1, 1)
    f.SetExtractionModeToAllRegions()
    f.SetLabelModeToSizeRank()
    f.SetLabelScalarTypeToInt()
    f.Update()
    lab = ns.vtk_to_numpy(f.GetOutput().GetPointData().GetScalars()).reshape(mask.shape)
    lab = np.where(mask, lab, 0).astype(np.int64)
    parent = np.arange(int(lab.max()) + 1)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    offsets = [(dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
               if abs(dz) + abs(dy) + abs(dx) >= 2 and (dz, dy, dx) > (0, 0, 0)]
    for dz, dy, dx in offsets:
        def sl(d, n):
            return (slice(0, n - d), slice(d, n)) if d >= 0 else (slice(-d, n), slice(0, n + d))
        (az, bz), (ay, by), (ax, bx) = sl(dz, nz), sl(dy, ny), sl(dx, nx)
        a, b = lab[az, ay, ax], lab[bz, by, bx]
        sel = (a > 0) & (b > 0) & (a != b)
        for p, q in set(zip(a[sel].tolist(), b[sel].tolist())):
            rp, rq = find(p), find(q)
            if rp != rq:
                parent[max(rp, rq)] = min(rp, rq)
    root = np.array([find(i) for i in range(len(parent))])
    lab = root[lab]
    return lab, np.bincount(lab.ravel())


def drop_small_components(vol, T):
    """vol with the voxels of 26-connected components of { vol >= T } smaller
    than MIN_COMPONENT set to T - 1; also returns how many were dropped."""
    mask = vol >= T
    lab, size = components26(mask)
    drop = mask & (size[lab] < MIN_COMPONENT)
    out = vol.copy()
    out[drop] = T - 1
    return out, int(drop.sum())


def flying_edges(vol, iso):
    """VTK's isosurface of vol ([z, y, x]) at iso: points in voxel index."""
    fe = vtk.vtkFlyingEdges3D()
    fe.SetInputData(image(vol))
    fe.SetValue(0, iso)
    fe.ComputeNormalsOff()
    fe.ComputeGradientsOff()
    fe.ComputeScalarsOff()
    fe.Update()
    out = fe.GetOutput()
    ijk = ns.vtk_to_numpy(out.GetPoints().GetData()).astype(np.float64)
    tri = ns.vtk_to_numpy(out.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    return ijk, tri


def distances(a, b):
    """Unsigned point-to-surface distances of a's points to b and of b's to a."""
    f = vtk.vtkDistancePolyDataFilter()
    f.SetInputData(0, a)
    f.SetInputData(1, b)
    f.SignedDistanceOff()
    f.ComputeSecondDistanceOn()
    f.Update()
    da = ns.vtk_to_numpy(f.GetOutput().GetPointData().GetArray("Distance"))
    db = ns.vtk_to_numpy(f.GetSecondDistanceOutput().GetPointData().GetArray("Distance"))
    return np.abs(da), np.abs(db)


def run_mesh(tool, series, out, args):
    p = subprocess.run([tool, series, "-o", out] + args, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError("recon3d-mesh %s failed: %s" % (" ".join(args), p.stderr.decode()))
    return json.load(open(os.path.join(out, "report.json")))


def reference(vol, T, A):
    """VTK's closed surface of our threshold structure's voxels, in LPS mm:
    (points, triangles, voxels dropped as small components)."""
    vol, dropped = drop_small_components(vol, T)
    iso = T - 0.5
    pad = np.pad(vol, 1, mode="edge").astype(np.int32)
    inner = np.zeros(pad.shape, bool)
    inner[1:-1, 1:-1, 1:-1] = True
    mirror = np.where(pad > iso, np.clip(2 * T - 1 - pad, -32768, 32767), pad)
    pad = np.where(inner, pad, mirror).astype(np.int16)
    ijk, tri = flying_edges(pad, iso)
    ijk -= 1.0
    return ijk @ A[:3, :3].T + A[:3, 3], tri, dropped


def compare(tool, series, T, tmp, extra=()):
    """Our raw threshold surface at T against VTK's. Returns a dict: mean,
    p95, max (mm, symmetric), ours_to_vtk, vtk_to_ours (means), volume_ml,
    vtk_volume_ml, volume_err_pct, triangles, vtk_triangles, dropped, open
    (edge_check of our STL), report."""
    out = os.path.join(tmp, "mesh")
    volfile = os.path.join(tmp, "vol.raw")
    rep = run_mesh(tool, series, out, ["--threshold", str(T), "--no-smooth", "--no-decimate",
                                       "--save-volume", volfile] + list(extra))
    dims = rep["volume"]["dims"]
    A = np.array(rep["volume"]["affine_lps_mm"], float).reshape(4, 4)
    vol = np.fromfile(volfile, dtype="<i2").reshape(dims[2], dims[1], dims[0])
    pts, tri = read_stl(os.path.join(out, "custom.stl"))
    vpts, vtri, dropped = reference(vol, T, A)
    d_our, d_vtk = distances(polydata(pts, tri), polydata(vpts, vtri))
    sym = np.concatenate([d_our, d_vtk])
    v, vv = enclosed_volume(pts, tri), enclosed_volume(vpts, vtri)
    return {"mean": float(sym.mean()), "p95": float(np.percentile(sym, 95)),
            "max": float(sym.max()), "ours_to_vtk": float(d_our.mean()),
            "vtk_to_ours": float(d_vtk.mean()), "volume_ml": v / 1e3, "vtk_volume_ml": vv / 1e3,
            "volume_err_pct": 100.0 * (v - vv) / vv, "triangles": len(tri),
            "vtk_triangles": len(vtri), "dropped": dropped, "open": edge_check(tri),
            "report": rep}
