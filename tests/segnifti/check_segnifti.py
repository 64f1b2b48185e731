#!/usr/bin/python3
"""segnifti.refusals and segnifti.real: segnifti_read() (through segnifti_dump)
checked against truth it did not make.

  check_segnifti.py synthetic DUMP TMPDIR
      Small NIfTI-1 files written here byte by byte with numpy (the header
      layout is public: nifti1.h), with geometry known by construction
      (rotations from axis and angle, Rodrigues' formula), and JSON label
      tables: what is read must match the construction; every refusal must
      be one, with its reason.
  check_segnifti.py real DUMP TMPDIR
      TotalSegmentator's label maps under $R3D_DATA/totalseg, read again here
      with gzip + numpy (no nibabel): labels present, per-frame counts, every
      pixel, positions, orientation, spacing; class names from the label
      table TotalSegmentator itself wrote into each file's NIfTI extension,
      and from its one-file-per-class masks; example_seg_dicom.nii.gz against
      the Image Position / Orientation / Pixel Spacing of the 20 CT slices it
      was made on (pydicom), within 0.01 mm.

Debian's /usr/bin/python3 with numpy and pydicom. Prints one line per check
and "N passed, N failed".
"""
import gzip
import json
import math
import os
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np

PASSED = 0
FAILED = 0


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL: " + what, flush=True)
    return cond


def close(a, b, tol):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=0, atol=tol)


# ---------------------------------------------------------------------------
# An independent NIfTI-1 reader (nifti1.h layout)
# ---------------------------------------------------------------------------

DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2",
          768: "u4", 1024: "i8", 1280: "u8"}


def nifti_read(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    e = "<" if struct.unpack_from("<i", raw, 0)[0] == 348 else ">"
    assert struct.unpack_from(e + "i", raw, 0)[0] == 348, path
    u = lambda fmt, off: struct.unpack_from(e + fmt, raw, off)
    h = {
        "dim": u("8h", 40), "datatype": u("h", 70)[0], "pixdim": u("8f", 76),
        "vox_offset": int(u("f", 108)[0]), "qform_code": u("h", 252)[0],
        "sform_code": u("h", 254)[0], "quatern": u("3f", 256), "qoffset": u("3f", 268),
        "srow": np.array(u("12f", 280), float).reshape(3, 4),
    }
    shape = tuple(h["dim"][1:1 + h["dim"][0]])
    dt = np.dtype(e + DTYPES[h["datatype"]])
    count = int(np.prod(shape))
    data = np.frombuffer(raw, dt, count, h["vox_offset"]).reshape(shape, order="F")
    h["data"] = data
    h["extensions"] = []
    off = 348
    if len(raw) >= 352 and raw[348] != 0:
        off = 352
        while off + 8 <= h["vox_offset"]:
            esize, ecode = u("2i", off)
            if esize < 8:
                break
            h["extensions"].append((ecode, raw[off + 8:off + esize]))
            off += esize
    return h


def quatern_matrix(b, c, d):
    """nifti1.h's qform rotation from (b, c, d), a = sqrt(1 - b2 - c2 - d2)."""
    a = math.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d)))
    return np.array([
        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
        [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b]])


def nifti_affine(h):
    """RAS affine (3x4): sform when its code > 0, else qform."""
    if h["sform_code"] > 0:
        return h["srow"]
    assert h["qform_code"] > 0
    r = quatern_matrix(*h["quatern"])
    qfac = h["pixdim"][0] if h["pixdim"][0] != 0 else 1.0
    m = r * np.array([h["pixdim"][1], h["pixdim"][2], qfac * h["pixdim"][3]])
    return np.hstack([m, np.array(h["qoffset"], float).reshape(3, 1)])


def expected_geometry(aff, nz):
    """The geometry segnifti.h defines, from a RAS affine."""
    lps = aff * np.array([[-1.0], [-1.0], [1.0]])
    i, j, k, o = lps[:, 0], lps[:, 1], lps[:, 2], lps[:, 3]
    return {
        "orientation": list(i / np.linalg.norm(i)) + list(j / np.linalg.norm(j)),
        "pixel_spacing": [np.linalg.norm(j), np.linalg.norm(i)],
        "positions": [o + kk * k for kk in range(nz)],
    }


def caret_labels(h):
    """Label key -> name from the CaretExtension XML TotalSegmentator writes."""
    for _, body in h["extensions"]:
        text = body.rstrip(b"\0 ").decode("utf-8", "replace")
        if "<CaretExtension>" not in text:
            continue
        root = ET.fromstring(text.strip())
        return {int(lab.get("Key")): (lab.text or "").strip() for lab in root.iter("Label")}
    return {}


# ---------------------------------------------------------------------------
# A NIfTI-1 writer for the synthetic cases
# ---------------------------------------------------------------------------

def nifti_write(path, data, sform=None, qform=None, dim0=None, extra_dims=(),
                scl=(1.0, 0.0), endian="<", truncate=0, datatype=None):
    """data indexed [i, j, k] (any integer/float numpy dtype); sform a 3x4
    RAS affine; qform (b, c, d, qx, qy, qz, dx, dy, dz, qfac)."""
    code = datatype
    if code is None:
        code = {v: k for k, v in DTYPES.items()}[data.dtype.str[1:]]
    shape = list(data.shape) + list(extra_dims)
    ndim = dim0 if dim0 is not None else len(shape)
    dims = [ndim] + shape + [1] * (7 - len(shape))
    hdr = bytearray(352)
    p = lambda fmt, off, *v: struct.pack_into(endian + fmt, hdr, off, *v)
    p("i", 0, 348)
    p("8h", 40, *dims)
    p("h", 70, code)
    p("h", 72, data.dtype.itemsize * 8)
    pixdim = [1.0] * 8
    if qform is not None:
        pixdim[0] = qform[9]
        pixdim[1:4] = qform[6:9]
        p("h", 252, 1)
        p("3f", 256, *qform[0:3])
        p("3f", 268, *qform[3:6])
    if sform is not None:
        p("h", 254, 1)
        p("12f", 280, *np.asarray(sform, float).reshape(12))
        if qform is None:
            pixdim[1:4] = [float(np.linalg.norm(np.asarray(sform)[:, c])) for c in range(3)]
    p("8f", 76, *pixdim)
    p("f", 108, 352.0)
    p("2f", 112, *scl)
    hdr[123] = 2  # mm
    hdr[344:348] = b"n+1\0"
    body = np.asarray(data).astype(data.dtype.newbyteorder(endian)).tobytes(order="F")
    blob = bytes(hdr) + body
    if truncate:
        blob = blob[:-truncate]
    if path.endswith(".gz"):
        blob = gzip.compress(blob)
    with open(path, "wb") as f:
        f.write(blob)


def nifti2_write(path, data, sform):
    """A NIfTI-2 file (540-byte header, int64 dims, double affine: nifti2.h)."""
    code = {v: k for k, v in DTYPES.items()}[data.dtype.str[1:]]
    hdr = bytearray(544)
    p = lambda fmt, off, *v: struct.pack_into("<" + fmt, hdr, off, *v)
    p("i", 0, 540)
    hdr[4:12] = b"n+2\0\r\n\x1a\n"
    p("h", 12, code)
    p("h", 14, data.dtype.itemsize * 8)
    p("8q", 16, 3, *data.shape, 1, 1, 1, 1)
    p("8d", 104, 1.0, *[float(np.linalg.norm(np.asarray(sform)[:, c])) for c in range(3)],
      1.0, 1.0, 1.0, 1.0)
    p("q", 168, 544)
    p("2d", 176, 1.0, 0.0)
    p("i", 348, 1)                                   # sform_code
    p("12d", 400, *np.asarray(sform, float).reshape(12))
    p("i", 500, 2)                                   # xyzt_units: mm
    with gzip.open(path, "wb") as f:
        f.write(bytes(hdr) + np.asarray(data).tobytes(order="F"))


def rotation(axis, degrees):
    """Rodrigues' formula: rotation by `degrees` about `axis`."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    t = math.radians(degrees)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * (k @ k)


def quaternion(axis, degrees):
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    s = math.sin(math.radians(degrees) / 2)
    return list(s * a)


# ---------------------------------------------------------------------------
# Running the dump tool
# ---------------------------------------------------------------------------

def dump(tool, nifti, table=None, raw=None):
    args = [tool, nifti, table or "-"] + ([raw] if raw else [])
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    out = json.loads(r.stdout) if r.stdout.strip() else None
    return r.returncode, out, r.stderr


def compare_to_volume(what, got, data, geom, raw):
    """got (dump) against an independent volume data[i, j, k] and geometry."""
    nx, ny, nz = data.shape[:3]
    check(got["kind"] == "SEG_LABELMAP", what + ": kind")
    check(got["columns"] == nx and got["rows"] == ny and got["nframes"] == nz,
          what + ": columns x rows x frames %s x %s x %s, want %d x %d x %d"
          % (got["columns"], got["rows"], got["nframes"], nx, ny, nz))
    check(close(got["orientation"], geom["orientation"], 1e-6),
          what + ": orientation %s, want %s" % (got["orientation"], geom["orientation"]))
    check(close(got["pixel_spacing"], geom["pixel_spacing"], 1e-6),
          what + ": pixel spacing %s, want %s" % (got["pixel_spacing"], geom["pixel_spacing"]))
    pos = [f["position"] for f in got["frames"]]
    check(len(pos) == nz and close(pos, geom["positions"], 1e-4),
          what + ": frame positions differ from the affine's voxel (0, 0, k)")
    check(all(f["has_position"] and f["segment"] == 0 and not f["has_reference"]
              for f in got["frames"]), what + ": frame flags")
    labels = sorted(int(v) for v in np.unique(data) if v != 0)
    numbers = [s["number"] for s in got["segments"]]
    check(numbers == labels, what + ": segments %s, want the labels present %s"
          % (numbers, labels))
    check(all(s["nframes"] == 0 for s in got["segments"]), what + ": segment nframes")
    bad = []
    for k in range(nz):
        sl = data[:, :, k]
        want = {str(int(v)): int(np.count_nonzero(sl == v)) for v in np.unique(sl) if v != 0}
        if got["frames"][k]["counts"] != want:
            bad.append(k)
    check(not bad, what + ": per-frame label counts differ on frames %s" % bad[:10])
    pixels = np.fromfile(raw, np.uint8)
    # frame k, row j, column i  <->  voxel (i, j, k)
    want = np.ascontiguousarray(np.transpose(data, (2, 1, 0))).astype(np.uint8).reshape(-1)
    check(pixels.size == want.size and np.array_equal(pixels, want),
          what + ": pixels are not voxel (i, j, k) at (column i, row j) of frame k")


def expect_refused(tool, what, nifti, table, needles, code="invalid"):
    rc, out, err = dump(tool, nifti, table)
    ok = (rc == 2 and out is not None and out.get("ok") is False and out.get("code") == code
          and all(n in out.get("msg", "") for n in needles))
    check(ok, "%s: not refused as %s with %s (rc %d, %s) %s"
          % (what, code, needles, rc, out, err.strip()[-300:]))
    if ok:
        print("ok: refused %s: %s" % (what, out["msg"]))


# ---------------------------------------------------------------------------
# Synthetic cases
# ---------------------------------------------------------------------------

def synthetic(tool, tmp):
    os.makedirs(tmp, exist_ok=True)
    path = lambda name: os.path.join(tmp, name)
    rng = np.random.default_rng(7)

    # A: oblique sform, uint8, labels 3, 200, 255 (and 0); no table.
    nx, ny, nz = 5, 4, 3
    vol = np.zeros((nx, ny, nz), np.uint8)
    vol[1, 0, 0] = 3          # column 1, row 0 of frame 0
    vol[4, 3, 2] = 200        # last column, last row of the last frame
    vol[0, 2, 1] = 255
    vol[2, 1, 1] = 3
    rot = rotation((1, 2, 3), 30)
    aff = np.hstack([rot * np.array([0.75, 1.25, 2.5]), [[10.0], [-20.0], [30.0]]])
    nifti_write(path("a.nii.gz"), vol, sform=aff,
                qform=(0.0, 0.0, 0.0, 99.0, 99.0, 99.0, 1.0, 1.0, 1.0, 1.0))
    geom = expected_geometry(aff, nz)
    rc, got, err = dump(tool, path("a.nii.gz"), raw=path("a.raw"))
    if check(rc == 0 and got and got["ok"], "A: read (%d %s %s)" % (rc, got, err)):
        compare_to_volume("A oblique sform (sform wins over qform)", got, vol, geom,
                          path("a.raw"))
        # The affine's LPS by hand for one number: x of voxel (0, 0, 0) is -10.
        check(close(got["frames"][0]["position"], [-10.0, 20.0, 30.0], 1e-5),
              "A: voxel (0, 0, 0) at RAS (10, -20, 30) is LPS (-10, 20, 30)")
        seg = {s["number"]: s for s in got["segments"]}
        s3 = seg.get(3, {})
        check(s3.get("label") == "kidney_left", "A: label 3 is kidney_left (TotalSegmentator 'total')")
        check(s3.get("type") == ["64033007", "SCT", "Kidney"] and
              s3.get("type_modifier") == ["7771000", "SCT", "Left"] and
              s3.get("category") == ["123037004", "SCT", "Anatomical Structure"],
              "A: kidney_left codes %s" % s3)
        check(s3.get("has_color") and close(s3.get("rgb"), np.array([46, 138, 184]) / 255, 1e-6),
              "A: kidney_left colour %s" % s3.get("rgb"))
        check(seg.get(200, {}).get("label") == "label 200" and not seg[200]["has_color"] and
              seg[200]["type"] == ["", "", ""], "A: label 200 has no 'total' class")
        check(seg.get(255, {}).get("label") == "label 255", "A: label 255")

    # A with a JSON label table.
    table = {
        "3": {"name": "left kidney", "color": "#ff8000",
              "category": "123037004^SCT^Anatomical Structure",
              "type": "64033007^SCT^Kidney", "laterality": "left"},
        "200": {"name": "Tumour 1", "color": [1, 2, 3], "type": "108369006^SCT^Neoplasm",
                "laterality": "24028007^SCT^Right"},
        "7": {"name": "not in the volume"},
    }
    with open(path("table.json"), "w") as f:
        json.dump(table, f)
    rc, got, err = dump(tool, path("a.nii.gz"), path("table.json"), path("a2.raw"))
    if check(rc == 0 and got and got["ok"], "A+table: read (%d %s %s)" % (rc, got, err)):
        seg = {s["number"]: s for s in got["segments"]}
        check(sorted(seg) == [3, 200, 255], "A+table: segments are the labels present, not "
              "the table's: %s" % sorted(seg))
        s3, s200, s255 = seg.get(3, {}), seg.get(200, {}), seg.get(255, {})
        check(s3.get("label") == "left kidney" and s3.get("has_color") and
              close(s3["rgb"], [1.0, 128 / 255, 0.0], 1e-6), "A+table: 3 %s" % s3)
        check(s3.get("category") == ["123037004", "SCT", "Anatomical Structure"] and
              s3.get("type") == ["64033007", "SCT", "Kidney"] and
              s3.get("type_modifier") == ["7771000", "SCT", "Left"], "A+table: 3 codes %s" % s3)
        check(s200.get("label") == "Tumour 1" and close(s200.get("rgb"), np.array([1, 2, 3]) / 255, 1e-6)
              and s200.get("category") == ["", "", ""] and
              s200.get("type") == ["108369006", "SCT", "Neoplasm"] and
              s200.get("type_modifier") == ["24028007", "SCT", "Right"], "A+table: 200 %s" % s200)
        check(s255.get("label") == "label 255" and not s255.get("has_color") and
              s255.get("type") == ["", "", ""], "A+table: 255 has no entry: %s" % s255)
        compare_to_volume("A+table", got, vol, geom, path("a2.raw"))

    # B: qform only, qfac -1, big-endian int16, uncompressed .nii.
    vol = rng.choice(np.array([0, 1, 5, 117], np.int16), size=(6, 3, 4), p=[.7, .1, .1, .1])
    q = quaternion((0.2, -1.0, 0.4), 70)
    qform = tuple(q) + (-5.5, 7.25, -100.0, 0.5, 0.8, 1.5, -1.0)
    nifti_write(path("b.nii"), vol, qform=qform, endian=">")
    rot = rotation((0.2, -1.0, 0.4), 70)
    aff = np.hstack([rot * np.array([0.5, 0.8, -1.5]), [[-5.5], [7.25], [-100.0]]])
    check(close(quatern_matrix(*q), rot, 1e-6), "B: the test's own quaternion and Rodrigues agree")
    rc, got, err = dump(tool, path("b.nii"), raw=path("b.raw"))
    if check(rc == 0 and got and got["ok"], "B: read (%d %s %s)" % (rc, got, err)):
        compare_to_volume("B qform, qfac -1, big-endian int16", got, vol,
                          expected_geometry(aff, vol.shape[2]), path("b.raw"))
        names = {s["number"]: s["label"] for s in got["segments"]}
        check(names == {1: "spleen", 5: "liver", 117: "costal_cartilages"}, "B: names %s" % names)

    # C: 4D with one time point, int32, and a k axis that is not the normal
    # (a gantry-tilt-like shear of k: frames keep their own positions).
    vol = rng.integers(0, 3, size=(4, 5, 6)).astype(np.int32)
    aff = np.array([[-0.9, 0, 0, 100.0], [0, -0.9, 0.6, 50.0], [0, 0, 2.0, -300.0]])
    nifti_write(path("c.nii.gz"), vol, sform=aff, extra_dims=(1,))
    rc, got, err = dump(tool, path("c.nii.gz"), raw=path("c.raw"))
    if check(rc == 0 and got and got["ok"], "C: 4D t=1 read (%d %s %s)" % (rc, got, err)):
        compare_to_volume("C 4D t=1, tilted k", got, vol, expected_geometry(aff, 6), path("c.raw"))

    # D: every integer datatype carries labels (uint16, uint32, int8, int64, uint64).
    for dt in ("u2", "u4", "i1", "i8", "u8"):
        vol = rng.integers(0, 4, size=(3, 2, 2)).astype(dt)
        vol[2, 1, 1] = 9
        aff = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])
        nifti_write(path("d.nii.gz"), vol, sform=aff)
        rc, got, err = dump(tool, path("d.nii.gz"), raw=path("d.raw"))
        if check(rc == 0 and got and got["ok"], "D %s: read (%d %s %s)" % (dt, rc, got, err)):
            compare_to_volume("D " + dt, got, vol, expected_geometry(aff, 2), path("d.raw"))

    # F: NIfTI-2 (double affine: an origin float32 would round).
    vol = rng.integers(0, 3, size=(4, 3, 2)).astype(np.uint8)
    aff = np.hstack([rotation((0, 0, 1), 90) * np.array([0.6, 0.6, 1.0]),
                     [[123.456789012], [-0.000001], [7.0]]])
    nifti2_write(path("f.nii.gz"), vol, aff)
    rc, got, err = dump(tool, path("f.nii.gz"), raw=path("f.raw"))
    if check(rc == 0 and got and got["ok"], "F: NIfTI-2 read (%d %s %s)" % (rc, got, err)):
        compare_to_volume("F NIfTI-2", got, vol, expected_geometry(aff, 2), path("f.raw"))
        check(abs(got["frames"][0]["position"][0] + 123.456789012) < 1e-9,
              "F: NIfTI-2's double origin kept to 1e-9 mm: %r" % got["frames"][0]["position"][0])

    # E: all background: read, no segment.
    nifti_write(path("e.nii.gz"), np.zeros((2, 2, 2), np.uint8), sform=aff)
    rc, got, err = dump(tool, path("e.nii.gz"))
    check(rc == 0 and got and got["ok"] and got["segments"] == [], "E: empty map (%d %s)" % (rc, got))

    # Refusals.
    good = np.zeros((3, 3, 3), np.int16)
    good[1, 1, 1] = 2
    nifti_write(path("r_float.nii.gz"), good.astype(np.float32), sform=aff)
    expect_refused(tool, "float32", path("r_float.nii.gz"), None, ["FLOAT32", "not an integer type"])
    nifti_write(path("r_2d.nii.gz"), good[:, :, 0], sform=aff)
    expect_refused(tool, "2D", path("r_2d.nii.gz"), None, ["is 2D"])
    nifti_write(path("r_noaffine.nii.gz"), good)
    expect_refused(tool, "no sform or qform", path("r_noaffine.nii.gz"), None,
                   ["neither an sform nor a qform"])
    big = good.copy()
    big[2, 0, 1] = 300
    nifti_write(path("r_300.nii.gz"), big, sform=aff)
    expect_refused(tool, "label 300", path("r_300.nii.gz"), None,
                   ["label 300 at voxel (2, 0, 1)", "above 255"])
    big = good.astype(np.uint16)
    big[0, 2, 2] = 256
    nifti_write(path("r_256.nii.gz"), big, sform=aff)
    expect_refused(tool, "label 256 (uint16)", path("r_256.nii.gz"), None,
                   ["label 256 at voxel (0, 2, 2)"])
    neg = good.copy()
    neg[0, 1, 0] = -2
    nifti_write(path("r_neg.nii.gz"), neg, sform=aff)
    expect_refused(tool, "negative label", path("r_neg.nii.gz"), None,
                   ["label -2 at voxel (0, 1, 0)", "negative"])
    shear = np.array([[1.0, 0.1, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])
    nifti_write(path("r_shear.nii.gz"), good, sform=shear)
    expect_refused(tool, "sheared i/j", path("r_shear.nii.gz"), None, ["sheared", "84.2"])
    flat = np.array([[1.0, 0, 1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 0]])
    nifti_write(path("r_flat.nii.gz"), good, sform=flat)
    expect_refused(tool, "k axis in the slice plane", path("r_flat.nii.gz"), None, ["coincide"])
    nifti_write(path("r_4d.nii.gz"), np.stack([good] * 3, axis=3), sform=aff)
    expect_refused(tool, "4D with 3 volumes", path("r_4d.nii.gz"), None, ["4D", "dimension 4"])
    nifti_write(path("r_scaled.nii.gz"), good, sform=aff, scl=(2.0, 0.0))
    expect_refused(tool, "scaled", path("r_scaled.nii.gz"), None, ["scaled", "scl_slope 2"])
    nifti_write(path("r_short.nii.gz"), good, sform=aff, truncate=10)
    expect_refused(tool, "truncated voxels", path("r_short.nii.gz"), None,
                   ["cannot read its voxels"])
    with open(path("r_junk.nii"), "wb") as f:
        f.write(bytes(range(256)) * 4)
    expect_refused(tool, "not NIfTI", path("r_junk.nii"), None, ["cannot read a NIfTI header"])
    expect_refused(tool, "missing file", path("absent.nii.gz"), None, ["cannot open"], code="io")

    # Malformed label tables (the map itself is good).
    nifti_write(path("ok.nii.gz"), good, sform=aff)
    tables = [
        ("not JSON", '{"1": {"name": "liver",}}', ["not JSON"]),
        ("an array", '[{"name": "liver"}]', ["not a JSON object"]),
        ("key 0", '{"0": {"name": "background"}}', ['key "0"']),
        ("key 256", '{"256": {"name": "x"}}', ['key "256"']),
        ("key abc", '{"abc": {"name": "x"}}', ['key "abc"']),
        ("duplicate key", '{"1": {"name": "a"}, "1": {"name": "b"}}', ["duplicate"]),
        ("one label twice", '{"1": {"name": "a"}, "01": {"name": "b"}}', ["label 1 is given twice"]),
        ("entry not an object", '{"1": "liver"}', ['label "1"', "not an object"]),
        ("no name", '{"2": {"color": "#ffffff"}}', ['label "2"', "has no name"]),
        ("empty name", '{"2": {"name": ""}}', ["name is 0 bytes"]),
        ("long name", json.dumps({"2": {"name": "x" * 65}}), ["name is 65 bytes"]),
        ("backslash", json.dumps({"2": {"name": "a\\b"}}), ["backslash"]),
        ("bad hex", '{"2": {"name": "a", "color": "#12345g"}}', ["#rrggbb"]),
        ("short hex", '{"2": {"name": "a", "color": "#12345"}}', ["#rrggbb"]),
        ("two values", '{"2": {"name": "a", "color": [1, 2]}}', ["2 values"]),
        ("value 256", '{"2": {"name": "a", "color": [1, 2, 256]}}', ["256, not 0..255"]),
        ("real value", '{"2": {"name": "a", "color": [1, 2.5, 3]}}', ["not a whole number"]),
        ("colour object", '{"2": {"name": "a", "color": {"r": 1}}}', ["neither"]),
        ("two-part code", '{"2": {"name": "a", "type": "10200004^SCT"}}',
         ["VALUE^SCHEME^MEANING"]),
        ("empty code part", '{"2": {"name": "a", "category": "^SCT^Tissue"}}', ["empty part"]),
        ("long code value", '{"2": {"name": "a", "type": "12345678901234567^SCT^x"}}',
         ["too long"]),
        ("code not a string", '{"2": {"name": "a", "type": 10200004}}', ["type is not a string"]),
        ("laterality word", '{"2": {"name": "a", "laterality": "up"}}', ["laterality \"up\""]),
        ("unknown member", '{"2": {"name": "a", "colour": "#ffffff"}}',
         ['unknown member "colour"']),
    ]
    for what, text, needles in tables:
        with open(path("bad.json"), "w") as f:
            f.write(text)
        expect_refused(tool, "table: " + what, path("ok.nii.gz"), path("bad.json"),
                       ["label table " + path("bad.json")] + needles)
    expect_refused(tool, "table: missing", path("ok.nii.gz"), path("absent.json"),
                   ["label table", "cannot open"], code="io")
    with open(path("big.json"), "w") as f:
        f.write(" " * (1 << 20) + "{}")
    expect_refused(tool, "table: too big", path("ok.nii.gz"), path("big.json"),
                   ["SEGNIFTI_MAX_TABLE_BYTES"])


# ---------------------------------------------------------------------------
# Real TotalSegmentator label maps
# ---------------------------------------------------------------------------

def real(tool, tmp):
    import pydicom

    data_dir = os.environ.get("R3D_DATA")
    if not check(data_dir and os.path.isdir(os.path.join(data_dir, "totalseg")),
                 "R3D_DATA/totalseg is there (%s)" % data_dir):
        return
    ts = os.path.join(data_dir, "totalseg")
    os.makedirs(tmp, exist_ok=True)
    results = {}
    for name in ("example_seg_dicom.nii.gz", "example_seg.nii.gz", "example_seg_fast.nii.gz"):
        f = os.path.join(ts, name)
        raw = os.path.join(tmp, name + ".raw")
        h = nifti_read(f)
        rc, got, err = dump(tool, f, raw=raw)
        if not check(rc == 0 and got and got["ok"], "%s: read (%d %s)" % (name, rc, err)):
            continue
        results[name] = (h, got)
        vol = h["data"]
        compare_to_volume(name, got, vol, expected_geometry(nifti_affine(h), vol.shape[2]), raw)
        # Names: the label table TotalSegmentator wrote into the file.
        caret = caret_labels(h)
        check(len(caret) >= 100, "%s: has its CaretExtension label table (%d)" % (name, len(caret)))
        wrong = [(s["number"], s["label"], caret.get(s["number"])) for s in got["segments"]
                 if caret.get(s["number"]) != s["label"]]
        check(not wrong, "%s: names differ from the file's own table: %s" % (name, wrong[:5]))
        liver = [s for s in got["segments"] if s["label"] == "liver"]
        check(len(liver) == 1 and liver[0]["number"] == 5 and
              liver[0]["type"] == ["10200004", "SCT", "Liver"] and
              liver[0]["category"] == ["123037004", "SCT", "Anatomical Structure"] and
              close(liver[0]["rgb"], np.array([40, 140, 40]) / 255, 1e-6),
              "%s: liver (5) with TotalSegmentator's codes and colour: %s" % (name, liver))
        nocode = [s["label"] for s in got["segments"] if not s["type"][0] or not s["has_color"]]
        check(not nocode, "%s: segments without codes or colour: %s" % (name, nocode))
        print("ok: %s: %d segments, %d frames, names as its extension says"
              % (name, len(got["segments"]), got["nframes"]))

    # The one-file-per-class masks of the same run name the labels too.
    if "example_seg_fast.nii.gz" in results:
        h, got = results["example_seg_fast.nii.gz"]
        mask_dir = os.path.join(ts, "example_seg_fast")
        mismatched, checked = [], 0
        for s in got["segments"]:
            mf = os.path.join(mask_dir, s["label"] + ".nii.gz")
            if not os.path.exists(mf):
                mismatched.append((s["number"], s["label"], "no mask file"))
                continue
            m = nifti_read(mf)["data"]
            checked += 1
            if not np.array_equal(m != 0, h["data"] == s["number"]):
                mismatched.append((s["number"], s["label"]))
        if check(checked >= 30 and checked == len(got["segments"]) and not mismatched,
                 "example_seg_fast: segment label vs per-class mask file: %d of %d checked, %s"
                 % (checked, len(got["segments"]), mismatched[:5])):
            print("ok: example_seg_fast: %d segments match their class's own mask file" % checked)

    # example_seg_dicom.nii.gz on its CT: the README says it aligns with the
    # slices sorted by ascending z after transpose(seg, (2, 1, 0))[:, ::-1, :],
    # i.e. our pixel (column c, row j) of frame k lies where CT slice k's
    # pixel (column c, row rows-1-j) does.
    if "example_seg_dicom.nii.gz" in results:
        h, got = results["example_seg_dicom.nii.gz"]
        ct_dir = os.path.join(ts, "example_ct_dicom")
        cts = [pydicom.dcmread(os.path.join(ct_dir, f), stop_before_pixels=True)
               for f in sorted(os.listdir(ct_dir))]
        cts.sort(key=lambda d: float(d.ImagePositionPatient[2]))
        check(len(cts) == got["nframes"] == 20, "CT: 20 slices and 20 frames")
        ct0 = cts[0]
        rows, cols = int(ct0.Rows), int(ct0.Columns)
        check(got["rows"] == rows and got["columns"] == cols, "CT: rows x columns")
        check(close(got["pixel_spacing"], [float(v) for v in ct0.PixelSpacing], 1e-6),
              "CT: pixel spacing %s vs %s" % (got["pixel_spacing"], list(ct0.PixelSpacing)))
        o = np.array(got["orientation"], float)
        worst = 0.0
        for k, ct in enumerate(cts):
            ipp = np.array([float(v) for v in ct.ImagePositionPatient])
            iop = np.array([float(v) for v in ct.ImageOrientationPatient])
            dr, dc = (float(v) for v in ct.PixelSpacing)   # between rows, between columns
            p0 = np.array(got["frames"][k]["position"], float)
            for c, j in ((0, 0), (cols - 1, 0), (0, rows - 1), (cols - 1, rows - 1), (100, 300)):
                ours = p0 + c * got["pixel_spacing"][1] * o[:3] + j * got["pixel_spacing"][0] * o[3:]
                theirs = ipp + c * dc * iop[:3] + (rows - 1 - j) * dr * iop[3:]
                worst = max(worst, float(np.linalg.norm(ours - theirs)))
        if check(worst <= 0.01, "CT: frame pixels lie on the CT's (flipped-row) pixels: worst "
                 "%.4f mm" % worst):
            print("ok: example_seg_dicom on example_ct_dicom: worst corner distance %.6f mm"
                  % worst)
        # And the sense of it: LPS x grows to the patient's left, so the liver
        # (label 5) must have x < 0 and the spleen (label 1) x > 0.
        seg = h["data"]
        lps = lambda label: [np.array(got["frames"][0]["position"]) +
                             i * got["pixel_spacing"][1] * o[:3] + j * got["pixel_spacing"][0] * o[3:]
                             for i, j in np.argwhere(seg[:, :, 0] == label)[::50]]
        liver_x = np.mean([p[0] for p in lps(5)])
        spleen_x = np.mean([p[0] for p in lps(1)])
        check(liver_x < 0 < spleen_x, "anatomy: liver at LPS x %.1f (right, < 0), spleen at %.1f "
              "(left, > 0)" % (liver_x, spleen_x))


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("synthetic", "real"):
        print(__doc__)
        return 2
    (synthetic if sys.argv[1] == "synthetic" else real)(sys.argv[2], sys.argv[3])
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 0 if FAILED == 0 and PASSED > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
