#!/usr/bin/python3
"""
test_vtk_compare.py: compares our raw isosurface (mesh_iso_raw: no smoothing,
no decimation) with VTK's vtkFlyingEdges3D on the same int16 volume and
isovalue. Run with Debian's /usr/bin/python3 (python3-vtk9, numpy):

    test_vtk_compare.py PATH/TO/mesh_iso_raw

Checks, for each volume:
  - the triangle count is exactly VTK's: both use marching cubes with the
    same resolution of ambiguous faces (corners above iso are separated),
    hence the same number of triangles in every one of the 256 cases;
  - the vertex count is VTK's, and each of our vertices lies within 0.01
    voxel of a VTK vertex on the same voxel edge (both interpolate linearly
    along the edge, so the nearest VTK vertex is the one on that edge).
Volume 1: a smooth analytic field plus a rasterised mask, below iso at the
border, at iso 299.5 (1 and 2 threads) and -400.5. Volume 2: uint8 over
the whole 0..255 range, iso 171.5 and 60.5. Volume 3: a field that crosses
the border of the volume: VTK is given the volume padded with one layer of
-32768 (our virtual padding is "outside", at half a voxel) so the counts
still agree; vertices are compared away from the padding. Our surfaces of
volumes 1 and 3 are also checked closed and consistently oriented here, with
numpy (not with our own mesh_check()). Exits non-zero on any failure.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import vtk
from vtk.util import numpy_support as ns

TOL_VOXEL = 0.01


def vtk_surface(vol, iso, origin=(0.0, 0.0, 0.0), vtk_type=vtk.VTK_SHORT):
    """vol is indexed [z, y, x]; returns (points (n,3) x,y,z, triangles (m,3))."""
    nz, ny, nx = vol.shape
    img = vtk.vtkImageData()
    img.SetDimensions(nx, ny, nz)
    img.SetOrigin(*origin)
    arr = ns.numpy_to_vtk(np.ascontiguousarray(vol).ravel(), deep=1,
                          array_type=vtk_type)
    img.GetPointData().SetScalars(arr)
    fe = vtk.vtkFlyingEdges3D()
    fe.SetInputData(img)
    fe.SetValue(0, iso)
    fe.ComputeNormalsOff()
    fe.ComputeGradientsOff()
    fe.ComputeScalarsOff()
    fe.Update()
    out = fe.GetOutput()
    pts = ns.vtk_to_numpy(out.GetPoints().GetData()).astype(np.float64)
    polys = ns.vtk_to_numpy(out.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    return pts, polys


def our_surface(tool, vol, iso, threads, tmp):
    nz, ny, nx = vol.shape
    raw = os.path.join(tmp, "vol.raw")
    outp = os.path.join(tmp, "mesh.bin")
    vol.tofile(raw)
    kind = "u8" if vol.dtype == np.uint8 else "i16"
    subprocess.run([tool, raw, kind, str(nx), str(ny), str(nz), repr(iso),
                    str(threads), outp], check=True)
    with open(outp, "rb") as f:
        nv, nt = np.frombuffer(f.read(16), dtype=np.uint64)
        xyz = np.frombuffer(f.read(int(nv) * 12), dtype=np.float32).reshape(-1, 3)
        tri = np.frombuffer(f.read(int(nt) * 12), dtype=np.uint32).reshape(-1, 3)
    return xyz.astype(np.float64), tri


def edge_keys(p):
    """Key of the voxel edge a vertex lies on: the lower grid corner and the
    axis along which the coordinate is fractional."""
    fl = np.floor(p + 1e-9)
    frac = p - fl
    axis = np.argmax(frac, axis=1)
    c = fl.astype(np.int64) + 2  # non-negative, room for padding at -1
    return ((c[:, 2] * 8192 + c[:, 1]) * 8192 + c[:, 0]) * 4 + axis, axis


def compare(name, ours, theirs, failures, keep=None):
    xyz, tri = ours
    pts, polys = theirs
    print(f"{name}: ours {len(tri)} triangles {len(xyz)} vertices; "
          f"VTK {len(polys)} triangles {len(pts)} vertices")
    if len(tri) != len(polys):
        failures.append(f"{name}: triangle count {len(tri)} != VTK {len(polys)}")
    if len(xyz) != len(pts):
        failures.append(f"{name}: vertex count {len(xyz)} != VTK {len(pts)}")
    # Each triangle must join vertices on edges of one cube.
    span = (xyz[tri].max(axis=1) - xyz[tri].min(axis=1)).max() if len(tri) else 0
    if span > 1.0 + 1e-6:
        failures.append(f"{name}: a triangle spans {span} voxels")
    if keep is not None:
        xyz = xyz[keep(xyz)]
        pts = pts[keep(pts)]
    ko, ao = edge_keys(xyz)
    kv, _ = edge_keys(pts)
    order = np.argsort(kv)
    kv_sorted = kv[order]
    pos = np.searchsorted(kv_sorted, ko)
    pos = np.minimum(pos, len(kv_sorted) - 1)
    found = kv_sorted[pos] == ko
    if not found.all():
        failures.append(f"{name}: {int((~found).sum())} of our vertices have no VTK "
                        f"vertex on their voxel edge")
    match = pts[order[pos[found]]]
    d = np.abs(xyz[found] - match).max(axis=1) if found.any() else np.zeros(1)
    print(f"{name}: max distance to VTK's vertex on the same edge {d.max():.2e} voxel")
    if d.max() > TOL_VOXEL:
        failures.append(f"{name}: vertex {d.max():.4f} voxel from VTK's")


def check_closed(name, ours, failures):
    """Independent of our mesh_check(): every directed edge once, its reverse
    present (closed, 2-manifold, consistently oriented), positive volume."""
    xyz, tri = ours
    n = np.int64(len(xyz))
    a = tri.astype(np.int64)
    directed = np.concatenate([a[:, 0] * n + a[:, 1], a[:, 1] * n + a[:, 2],
                               a[:, 2] * n + a[:, 0]])
    reverse = np.concatenate([a[:, 1] * n + a[:, 0], a[:, 2] * n + a[:, 1],
                              a[:, 0] * n + a[:, 2]])
    uniq = np.unique(directed)
    if len(uniq) != len(directed):
        failures.append(f"{name}: {len(directed) - len(uniq)} directed edges repeated")
    missing = int((~np.isin(reverse, uniq)).sum())
    if missing:
        failures.append(f"{name}: {missing} edges without their reverse (open or misoriented)")
    p = xyz[tri]
    vol = np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() / 6.0
    if vol <= 0:
        failures.append(f"{name}: signed volume {vol} is not positive")


def field_volume():
    nz, ny, nx = 57, 66, 83  # nx not a multiple of 64: SIMD and tail paths
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(np.float64)
    f = (400.0 * np.sin(x / 5.3) * np.cos(y / 4.1) * np.sin(z / 3.7 + 0.4)
         + 250.0 * np.cos((x + 2 * y) / 7.9) + 100.0 * np.sin(z * y / 41.0))
    # Rasterised mask: a sphere at bone density.
    sphere = (x - 40.2) ** 2 + (y - 31.7) ** 2 + (z - 27.1) ** 2 < 15.5 ** 2
    f = np.where(sphere, 1200.0, f)
    vol = np.clip(np.round(f), -1024, 3000).astype(np.int16)
    vol[0, :, :] = vol[-1, :, :] = -1000
    vol[:, 0, :] = vol[:, -1, :] = -1000
    vol[:, :, 0] = vol[:, :, -1] = -1000
    return vol


def u8_volume():
    """Values over the whole 0..255 range, so the unsigned compare matters."""
    nz, ny, nx = 45, 38, 131
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(np.float64)
    f = 127.5 + 120.0 * np.sin(x / 4.7) * np.cos(y / 3.9 + 0.2) * np.cos(z / 5.1)
    vol = np.clip(np.round(f), 0, 255).astype(np.uint8)
    vol[0, :, :] = vol[-1, :, :] = 0
    vol[:, 0, :] = vol[:, -1, :] = 0
    vol[:, :, 0] = vol[:, :, -1] = 0
    return vol


def border_volume():
    nz, ny, nx = 40, 35, 70
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(np.float64)
    f = 600.0 * np.sin(x / 6.1 + 0.3) * np.sin(y / 5.2 + 0.7) + 300.0 * np.cos(z / 4.3)
    return np.round(f).astype(np.int16)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    tool = sys.argv[1]
    failures = []
    iso = 299.5
    with tempfile.TemporaryDirectory() as tmp:
        vol = field_volume()
        theirs = vtk_surface(vol, iso)
        for threads in (1, 2):
            ours = our_surface(tool, vol, iso, threads, tmp)
            compare(f"field+mask, {threads} thread(s)", ours, theirs, failures)
            check_closed(f"field+mask, {threads} thread(s)", ours, failures)

        # Negative isovalue (air/tissue) on the same int16 field.
        vol = field_volume()
        compare("field, iso -400.5", our_surface(tool, vol, -400.5, 2, tmp),
                vtk_surface(vol, -400.5), failures)

        # uint8, values above 127 inside and outside.
        vol = u8_volume()
        for u8_iso in (171.5, 60.5):
            compare(f"uint8 field, iso {u8_iso}", our_surface(tool, vol, u8_iso, 2, tmp),
                    vtk_surface(vol, u8_iso, vtk_type=vtk.VTK_UNSIGNED_CHAR), failures)

        vol = border_volume()
        padded = np.pad(vol, 1, mode="constant", constant_values=-32768)
        theirs = vtk_surface(padded, iso, origin=(-1.0, -1.0, -1.0))
        nz, ny, nx = vol.shape
        hi = np.array([nx - 1, ny - 1, nz - 1], dtype=np.float64)

        def inside_grid(p):
            return ((p >= 0.0) & (p <= hi)).all(axis=1)

        ours = our_surface(tool, vol, iso, 2, tmp)
        compare("border field, 2 threads", ours, theirs, failures, keep=inside_grid)
        check_closed("border field, 2 threads", ours, failures)
    for f in failures:
        print("FAIL:", f)
    print("OK" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
