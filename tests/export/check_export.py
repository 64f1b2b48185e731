#!/usr/bin/python3
"""check_export.py EXPORT_WRITE CT_DIR TMP_DIR [--pipeline]

Runs export_write twice on the real CT series (once, with --pipeline: then
the structures are the pipeline's real meshes) and checks what it wrote with
tools and code that are not recon3d's writer:
- dicom3tools' dciodvfy: no error for any object (warnings are printed);
- DCMTK's dcmdump: SOP class, modality, patient/study attributes and Frame
  of Reference equal to the source's;
- a small independent Part 10 parser (Explicit VR Little Endian): the STL
  inside each Encapsulated STL equals the file mesh_stl_write() made, its
  Encapsulated Document Length is its size; the Surface Segmentation holds
  each mesh's points bit for bit, its triangles as 1-based indices, normals
  of unit length pointing outwards, the right codes, colours and flags;
- deterministic UIDs: both runs give the same UIDs.
Exit status 0 only when every check passes.
"""
import math
import os
import shutil
import struct
import subprocess
import sys

FAILS = []
PASSED = [0]


def check(cond, what):
    PASSED[0] += 1 if cond else 0
    if not cond:
        FAILS.append(what)
        print("FAIL: " + what)
    return cond


# ---------------------------------------------------------------- parser

LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
ITEM, ITEM_END, SEQ_END = (0xFFFE, 0xE000), (0xFFFE, 0xE00D), (0xFFFE, 0xE0DD)


def parse_items(buf, pos, length):
    items = []
    end = None if length == 0xFFFFFFFF else pos + length
    while end is None or pos < end:
        g, e, ilen = struct.unpack_from("<HHI", buf, pos)
        pos += 8
        if (g, e) == SEQ_END:
            break
        if (g, e) != ITEM:
            raise ValueError("expected an item at %d" % pos)
        if ilen == 0xFFFFFFFF:
            item, pos = parse(buf, pos, len(buf), True)
        else:
            item, _ = parse(buf, pos, pos + ilen, False)
            pos += ilen
        items.append(item)
    return items, pos


def parse(buf, pos, end, in_item):
    """Explicit VR Little Endian elements from pos to end (or to the item
    delimiter): {(group, element): (vr, bytes or [items])}."""
    out = {}
    while pos < end:
        g, e = struct.unpack_from("<HH", buf, pos)
        if (g, e) == ITEM_END and in_item:
            return out, pos + 8
        vr = buf[pos + 4:pos + 6].decode("ascii")
        if vr in LONG_VRS:
            length = struct.unpack_from("<I", buf, pos + 8)[0]
            pos += 12
        else:
            length = struct.unpack_from("<H", buf, pos + 6)[0]
            pos += 8
        if vr == "SQ":
            items, pos = parse_items(buf, pos, length)
            out[(g, e)] = (vr, items)
        else:
            out[(g, e)] = (vr, buf[pos:pos + length])
            pos += length
    return out, pos


def read_part10(path):
    with open(path, "rb") as f:
        buf = f.read()
    if buf[128:132] != b"DICM":
        raise ValueError(path + ": no DICM prefix")
    ds, _ = parse(buf, 132, len(buf), False)
    ts = text(ds, 0x0002, 0x0010)
    if ts != "1.2.840.10008.1.2.1":
        raise ValueError(path + ": transfer syntax " + ts)
    return ds


def text(ds, g, e):
    v = ds.get((g, e))
    if v is None:
        return None
    return v[1].decode("utf-8").rstrip(" \0")


def u32(ds, g, e):
    return struct.unpack("<I", ds[(g, e)][1])[0]


def u16s(ds, g, e):
    b = ds[(g, e)][1]
    return list(struct.unpack("<%dH" % (len(b) // 2), b))


def items(ds, g, e):
    v = ds.get((g, e))
    return v[1] if v is not None else None


def code_of(ds, g, e):
    it = items(ds, g, e)
    if not it or len(it) != 1:
        return None
    return (text(it[0], 0x0008, 0x0100), text(it[0], 0x0008, 0x0102), text(it[0], 0x0008, 0x0104))


# ---------------------------------------------------------------- tools

def dump_top(path, tag):
    """Top-level value of tag as dcmdump prints it ('' when empty, None when absent)."""
    out = subprocess.run(["dcmdump", "-q", "-Un", "+p", "+P", tag, path],
                         capture_output=True, text=True, errors="replace").stdout
    for line in out.splitlines():
        if line.startswith("(" + tag + ") "):
            if "(no value available)" in line:
                return ""
            if "[" in line:
                return line[line.index("[") + 1:line.rindex("]")]
            return line.split()[2]
    return None


def dciodvfy(path):
    p = subprocess.run(["dciodvfy", path], capture_output=True, text=True,
                       errors="replace")
    lines = (p.stdout + p.stderr).splitlines()
    errors = [l for l in lines if l.startswith("Error")]
    warnings = [l for l in lines if l.startswith("Warning")]
    return lines, errors, warnings


# ---------------------------------------------------------------- checks

PATIENT_STUDY_TAGS = [
    "0010,0010", "0010,0020", "0010,0030", "0010,0040", "0020,000d", "0008,0020",
    "0008,0030", "0020,0010", "0008,0050", "0008,0090", "0008,1030", "0012,0062",
    "0020,0052", "0008,0005",
]

EXPECTED_CODES = {
    "bone": (("85756007", "SCT", "Tissue"), ("3138006", "SCT", "Bone")),
    "custom": (("85756007", "SCT", "Tissue"), ("85756007", "SCT", "Tissue")),
    "lungs": (("91723000", "SCT", "Anatomical Structure"), ("39607008", "SCT", "Lung")),
    "skin": (("85756007", "SCT", "Tissue"), ("39937001", "SCT", "Skin")),
    "vessels": (("85756007", "SCT", "Tissue"), ("59820001", "SCT", "Blood vessel")),
}


def read_facts(out):
    facts = {"structures": [], "objects": {}}
    with open(os.path.join(out, "facts.txt")) as f:
        for line in f:
            w = line.split()
            if w[0] == "source":
                facts["source"] = w[1]
            elif w[0] == "refs":
                facts["refs"] = int(w[1])
            elif w[0] == "structure":
                facts["structures"].append({
                    "name": w[1], "nvert": int(w[2]), "ntri": int(w[3]), "finite": w[4],
                    "manifold": w[5], "convex": w[6] == "1",
                    "rgb": [float(x) for x in w[7:10]]})
            elif w[0] == "object":
                facts["objects"][w[1]] = {"path": w[2], "series": w[3], "sop": w[4]}
    return facts


def check_common(name, path, ds, facts, sop_class, modality):
    src = facts["source"]
    check(dump_top(path, "0008,0016") == sop_class, name + ": SOP class")
    check(dump_top(path, "0008,0060") == modality, name + ": modality")
    for tag in PATIENT_STUDY_TAGS:
        check(dump_top(path, tag) == dump_top(src, tag),
              "%s: %s = %r, source %r" % (name, tag, dump_top(path, tag), dump_top(src, tag)))
    obj = facts["objects"][name]
    check(text(ds, 0x0020, 0x000E) == obj["series"], name + ": series UID")
    check(text(ds, 0x0008, 0x0018) == obj["sop"], name + ": SOP instance UID")
    check(text(ds, 0x0002, 0x0003) == obj["sop"], name + ": meta SOP instance UID")
    check(obj["series"] != dump_top(src, "0020,000e"), name + ": a new series")
    check(text(ds, 0x0008, 0x0070) == "recon3d", name + ": manufacturer")
    check(text(ds, 0x0018, 0x1020) not in (None, ""), name + ": software versions")
    # Common Instance Reference: the source series and all its instances.
    rs = items(ds, 0x0008, 0x1115)
    if check(rs is not None and len(rs) == 1, name + ": one referenced series"):
        check(text(rs[0], 0x0020, 0x000E) == dump_top(src, "0020,000e"),
              name + ": referenced series is the source's")
        ri = items(rs[0], 0x0008, 0x114A)
        check(ri is not None and len(ri) == facts["refs"], name + ": referenced instances")
        if ri:
            uids = {text(i, 0x0008, 0x1155) for i in ri}
            check(dump_top(src, "0008,0018") in uids, name + ": source instance referenced")


def check_stl(name, path, ds, facts, out):
    check(text(ds, 0x0042, 0x0012) == "model/stl", name + ": MIME type")
    doc = ds[(0x0042, 0x0011)][1]
    with open(os.path.join(out, name[4:] + ".stl"), "rb") as f:
        stl = f.read()
    length = u32(ds, 0x0042, 0x0015)
    check(length == len(stl), "%s: Encapsulated Document Length %d, STL %d bytes" %
          (name, length, len(stl)))
    check(len(doc) % 2 == 0 and len(doc) - len(stl) in (0, 1), name + ": even padded value")
    check(doc[:length] == stl, name + ": encapsulated bytes equal mesh_stl_write's STL")
    check(text(ds, 0x0042, 0x0010) == "3D model: %s (STL)" % name[4:], name + ": title")
    check(text(ds, 0x0008, 0x103E) == "3D model: %s (STL)" % name[4:], name + ": series description")
    check(code_of(ds, 0x0040, 0x08EA) == ("mm", "UCUM", "mm"), name + ": units mm")
    check(text(ds, 0x0008, 0x1090) == "recon3d", name + ": model name")
    check(text(ds, 0x0018, 0x1000) not in (None, ""), name + ": device serial number")
    si = items(ds, 0x0042, 0x0013)
    check(si is not None and len(si) == facts["refs"], name + ": source instance sequence")
    # Cross-check the STL itself: count and size.
    n = struct.unpack_from("<I", stl, 80)[0]
    st = [s for s in facts["structures"] if s["name"] == name[4:]][0]
    check(n == st["ntri"] and len(stl) == 84 + 50 * n, name + ": STL triangle count")


def lab_of(rgb):
    """sRGB -> CIELab (D65) -> DICOM scaled, written here independently."""
    def lin(c):
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(c) for c in rgb)
    x = 0.4124564 * r + 0.3575761 * g + 0.1804375 * b
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = 0.0193339 * r + 0.1191920 * g + 0.9503041 * b
    def f(t):
        return t ** (1.0 / 3.0) if t > (6.0 / 29.0) ** 3 else t / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0
    fx, fy, fz = f(x / 0.95047), f(y / 1.0), f(z / 1.08883)
    L, a, bb = 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)
    return [L * 65535 / 100, (a + 128) * 65535 / 255, (bb + 128) * 65535 / 255]


def check_surfseg(path, ds, facts, out):
    name = "surfseg"
    check(text(ds, 0x0070, 0x0080) == "RECON3D", name + ": content label")
    check(text(ds, 0x0008, 0x103E) == "3D models (surface segmentation)", name + ": series description")
    structs = facts["structures"]
    check(u32(ds, 0x0066, 0x0001) == len(structs), name + ": Number of Surfaces")
    segs, surfs = items(ds, 0x0062, 0x0002), items(ds, 0x0066, 0x0002)
    if not check(segs is not None and surfs is not None and len(segs) == len(structs)
                 and len(surfs) == len(structs), name + ": one segment and surface per structure"):
        return
    for i, st in enumerate(structs):
        seg, surf, n = segs[i], surfs[i], st["name"]
        what = "%s segment %d (%s)" % (name, i + 1, n)
        check(struct.unpack("<H", seg[(0x0062, 0x0004)][1])[0] == i + 1, what + ": number")
        check(text(seg, 0x0062, 0x0005) == n, what + ": label")
        check(text(seg, 0x0062, 0x0008) == "AUTOMATIC", what + ": algorithm type")
        cat, typ = EXPECTED_CODES[n]
        check(code_of(seg, 0x0062, 0x0003) == cat, what + ": category %r" % (code_of(seg, 0x0062, 0x0003),))
        check(code_of(seg, 0x0062, 0x000F) == typ, what + ": type %r" % (code_of(seg, 0x0062, 0x000F),))
        check(u32(seg, 0x0066, 0x002A) == 1, what + ": surface count")
        rs = items(seg, 0x0066, 0x002B)
        if check(rs is not None and len(rs) == 1, what + ": referenced surface"):
            check(u32(rs[0], 0x0066, 0x002C) == i + 1, what + ": referenced surface number")
            alg = items(rs[0], 0x0066, 0x002D)
            check(alg and text(alg[0], 0x0066, 0x0036) == "recon3d" and
                  text(alg[0], 0x0066, 0x0031) not in (None, ""), what + ": algorithm")
            src = items(rs[0], 0x0066, 0x002E)
            check(src is not None and len(src) == facts["refs"], what + ": source instances")
        # Surface Mesh.
        check(u32(surf, 0x0066, 0x0003) == i + 1, what + ": surface number")
        check(text(surf, 0x0066, 0x000E) == st["finite"], what + ": Finite Volume")
        check(text(surf, 0x0066, 0x0010) == st["manifold"], what + ": Manifold")
        lab = u16s(surf, 0x0062, 0x000D)
        want = lab_of(st["rgb"])
        check(all(abs(lab[k] - want[k]) <= 40 for k in range(3)),
              what + ": CIELab %r, expected %r" % (lab, [round(w) for w in want]))
        pts = items(surf, 0x0066, 0x0011)[0]
        nvert = u32(pts, 0x0066, 0x0015)
        check(nvert == st["nvert"], what + ": %d points, mesh %d" % (nvert, st["nvert"]))
        coords = pts[(0x0066, 0x0016)][1]
        check(pts[(0x0066, 0x0016)][0] == "OF", what + ": points are OF (float32)")
        with open(os.path.join(out, n + ".xyz"), "rb") as f:
            check(coords == f.read(), what + ": points equal the mesh's, bit for bit")
        prim = items(surf, 0x0066, 0x0013)[0]
        check(prim[(0x0066, 0x0041)][0] == "OL", what + ": Long Triangle Point Index List")
        idx = prim[(0x0066, 0x0041)][1]
        tri = struct.unpack("<%dI" % (len(idx) // 4), idx)
        check(len(tri) == 3 * st["ntri"], what + ": %d indices for %d triangles" % (len(tri), st["ntri"]))
        check(min(tri) == 1 and max(tri) == st["nvert"], what + ": 1-based index range %d..%d" %
              (min(tri), max(tri)))
        with open(os.path.join(out, n + ".tri"), "rb") as f:
            zero = f.read()
        ztri = struct.unpack("<%dI" % (len(zero) // 4), zero)
        check(len(ztri) == len(tri) and all(a == b + 1 for a, b in zip(tri, ztri)),
              what + ": indices are the mesh's plus one")
        nrm_seq = items(surf, 0x0066, 0x0012)
        if check(nrm_seq and len(nrm_seq) == 1, what + ": normals"):
            nrm = nrm_seq[0]
            check(u32(nrm, 0x0066, 0x001E) == nvert, what + ": one normal per point")
            check(struct.unpack("<H", nrm[(0x0066, 0x001F)][1])[0] == 3, what + ": 3D normals")
            vec = struct.unpack("<%df" % (nvert * 3), nrm[(0x0066, 0x0021)][1])
            xyz = struct.unpack("<%df" % (nvert * 3), coords)
            centre = [sum(xyz[k::3]) / nvert for k in range(3)]
            # A point on a triangle with area has a unit normal; a point
            # whose triangles all have zero area may borrow its neighbours'
            # or, in a component without any area, have none (zero vector).
            area = [False] * nvert
            for t in range(st["ntri"]):
                p = [xyz[3 * ztri[3 * t + j]:3 * ztri[3 * t + j] + 3] for j in range(3)]
                e1 = [p[1][k] - p[0][k] for k in range(3)]
                e2 = [p[2][k] - p[0][k] for k in range(3)]
                cr = (e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2],
                      e1[0] * e2[1] - e1[1] * e2[0])
                if cr != (0.0, 0.0, 0.0):
                    for j in range(3):
                        area[ztri[3 * t + j]] = True
            lens = [math.sqrt(vec[3 * v] ** 2 + vec[3 * v + 1] ** 2 + vec[3 * v + 2] ** 2)
                    for v in range(nvert)]
            bad = [v for v in range(nvert) if abs(lens[v] - 1) >= 1e-4 and
                   (area[v] or lens[v] != 0.0)]
            check(not bad, what + ": unit normals (%d points without)" % len(bad))
            zero = sum(1 for v in range(nvert) if lens[v] == 0.0)
            noarea = area.count(False)
            if noarea:
                print("%s: %d points only on zero-area triangles, %d of them without a normal" %
                      (what, noarea, zero))
            if st["convex"]:
                out_ok = all(sum(vec[3 * v + k] * (xyz[3 * v + k] - centre[k]) for k in range(3)) > 0
                             for v in range(nvert))
                check(out_ok, what + ": normals point outwards")


def run_once(tool, ct, out, extra):
    if os.path.isdir(out):
        shutil.rmtree(out)
    p = subprocess.run([tool, ct, out] + extra, capture_output=True, text=True)
    if not check(p.returncode == 0, "export_write %s failed: %s" % (out, p.stderr.strip())):
        return None
    return read_facts(out)


def main():
    tool, ct, tmp = sys.argv[1:4]
    pipeline = sys.argv[4:] == ["--pipeline"]
    extra = ["--pipeline"] if pipeline else []
    out = os.path.join(tmp, "export_pipeline" if pipeline else "export_a")
    a = run_once(tool, ct, out, extra)
    # The second run only checks that the UIDs are stable (not for the slow pipeline).
    b = a if pipeline else run_once(tool, ct, os.path.join(tmp, "export_b"), extra)
    if a is None or b is None:
        return 1
    check(len(a["structures"]) >= (4 if pipeline else 3), "structures: %d" % len(a["structures"]))
    for name, obj in sorted(a["objects"].items()):
        lines, errors, warnings = dciodvfy(obj["path"])
        iod = "SurfaceSegmentation" if name == "surfseg" else "EncapsulatedSTL"
        check(any(l.strip() == iod for l in lines), "%s: dciodvfy does not see a %s: %s" %
              (name, iod, lines[:3]))
        check(not errors, "%s: dciodvfy errors: %s" % (name, errors))
        for w in warnings:
            print("dciodvfy %s: %s" % (name, w))
        ds = read_part10(obj["path"])
        if name == "surfseg":
            check_common(name, obj["path"], ds, a, "1.2.840.10008.5.1.4.1.1.66.5", "SEG")
            check_surfseg(obj["path"], ds, a, out)
        else:
            check_common(name, obj["path"], ds, a, "1.2.840.10008.5.1.4.1.1.104.3", "M3D")
            check_stl(name, obj["path"], ds, a, out)
        # Deterministic UIDs: the second run made the same instance.
        check(b["objects"][name]["sop"] == obj["sop"] and b["objects"][name]["series"] == obj["series"],
              name + ": UIDs stable across runs")
        check(read_part10(b["objects"][name]["path"])[(0x0008, 0x0018)] == ds[(0x0008, 0x0018)],
              name + ": written SOP Instance UID stable across runs")
    uids = [o["sop"] for o in a["objects"].values()] + [o["series"] for o in a["objects"].values()]
    check(len(set(uids)) == len(uids), "every object and series has its own UID")
    leftovers = [f for f in os.listdir(out) if ".tmp." in f]
    check(not leftovers, "temporary files left: %r" % leftovers)
    print("%d checks passed, %d failed" % (PASSED[0], len(FAILS)))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
