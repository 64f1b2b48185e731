#!/usr/bin/python3
"""
stl_check.py: reads a binary STL the way a slicer does (no indices: vertices
welded by their exact coordinates) and tells whether the surface is closed,
2-manifold and consistently oriented, with numpy only (independent of the
recon3d code that wrote the file).

  stl_check.py FILE.stl...      prints one JSON line per file

Also imported by the tests: check(path) -> dict.
"""
import json
import struct
import sys

import numpy as np


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 84:
        raise ValueError("%s: shorter than an STL header" % path)
    (n,) = struct.unpack_from("<I", data, 80)
    if len(data) != 84 + 50 * n:
        raise ValueError("%s: %d bytes for %d triangles" % (path, len(data), n))
    rec = np.frombuffer(data, dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)),
                                              ("a", "<u2")]), count=n, offset=84)
    return rec["v"].copy()


def check(path):
    tri = read(path)                          # (n, 3, 3) float32
    n = len(tri)
    pts = tri.reshape(-1, 3)
    # Weld by exact coordinates (bit patterns), as a slicer does.
    keys = np.ascontiguousarray(pts).view(np.dtype((np.void, 12))).ravel()
    uniq, idx = np.unique(keys, return_inverse=True)
    f = idx.reshape(n, 3).astype(np.int64)
    nv = len(uniq)
    degenerate = int(np.count_nonzero((f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) |
                                      (f[:, 0] == f[:, 2])))
    # Directed half-edges a -> b.
    a = f.ravel()
    b = f[:, [1, 2, 0]].ravel()
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    fwd = a < b
    key = lo * nv + hi
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    counts = np.diff(np.r_[starts, len(ks)])
    nfwd = np.add.reduceat(fwd[order].astype(np.int64), starts)
    boundary = int(np.count_nonzero(counts == 1))
    nonmanifold = int(np.count_nonzero(counts > 2))
    misoriented = int(np.count_nonzero((counts == 2) & (nfwd != 1)))
    nedge = len(starts)
    used = len(np.unique(f))
    # Zero-area triangles: twice the area below 1e-6 of the longest edge squared.
    t64 = tri.astype(np.float64)
    cr = np.cross(t64[:, 1] - t64[:, 0], t64[:, 2] - t64[:, 0])
    area2 = np.linalg.norm(cr, axis=1)
    e2 = np.max(np.stack([np.sum((t64[:, 1] - t64[:, 0]) ** 2, axis=1),
                          np.sum((t64[:, 2] - t64[:, 1]) ** 2, axis=1),
                          np.sum((t64[:, 0] - t64[:, 2]) ** 2, axis=1)]), axis=0)
    zero_area = int(np.count_nonzero(area2 < 1e-6 * e2))
    # Signed volume (outward normals: positive).
    volume = float(np.sum(np.einsum("ij,ij->i", t64[:, 0], np.cross(t64[:, 1], t64[:, 2]))) / 6.0)
    # Vertices where two sheets meet: more than one fan (edges fine but a
    # vertex shared by two separate cones of triangles).
    closed = boundary == 0
    manifold = closed and nonmanifold == 0 and misoriented == 0 and degenerate == 0
    pinched = 0
    if manifold:
        # Each vertex's fan: with every edge in two triangles, the number
        # of triangles around v equals its number of distinct neighbours
        # for a single fan; count vertices whose triangles split into
        # separate cycles by union-find over the triangle corners.
        pinched = count_pinches(f, nv)
    return {
        "file": path, "triangles": n, "vertices": used, "edges": nedge,
        "boundary_edges": boundary, "nonmanifold_edges": nonmanifold,
        "misoriented_edges": misoriented, "degenerate": degenerate,
        "zero_area": zero_area, "pinched_vertices": pinched,
        "euler": used - nedge + n, "volume": volume,
        "closed": closed, "manifold": manifold and pinched == 0,
        "outward": volume > 0,
    }


def count_pinches(f, nv):
    """Vertices around which the triangles form more than one fan: the
    corners at one vertex are joined across each edge they share with the
    neighbouring triangle; a vertex whose corners fall into two groups is
    where two sheets meet."""
    n = len(f)
    a = f.ravel()
    b = f[:, [1, 2, 0]].ravel()
    h = np.arange(3 * n)
    k = h % 3
    t = h // 3
    hkey = a * nv + b
    order = np.argsort(hkey)
    sk = hkey[order]
    pos = np.minimum(np.searchsorted(sk, b * nv + a), len(sk) - 1)
    ok = sk[pos] == b * nv + a
    h2 = order[pos][ok]
    h1 = h[ok]
    t1, k1 = t[ok], k[ok]
    t2, k2 = h2 // 3, h2 % 3
    # a's corner in t1 is 3*t1+k1, in t2 3*t2+(k2+1)%3; b's 3*t1+(k1+1)%3 and 3*t2+k2.
    p1 = np.concatenate([3 * t1 + k1, 3 * t1 + (k1 + 1) % 3])
    p2 = np.concatenate([3 * t2 + (k2 + 1) % 3, 3 * t2 + k2])
    lab = np.arange(3 * n)
    while True:
        new = lab.copy()
        np.minimum.at(new, p1, lab[p2])
        np.minimum.at(new, p2, lab[p1])
        new = new[new]
        if np.array_equal(new, lab):
            break
        lab = new
    pairs = np.unique(a.astype(np.int64) * (3 * n) + lab)
    per_vertex = np.bincount(pairs // (3 * n), minlength=nv)
    return int(np.count_nonzero(per_vertex > 1))


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(json.dumps(check(p)))
