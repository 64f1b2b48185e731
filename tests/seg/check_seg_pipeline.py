#!/usr/bin/python3
"""seg.pipeline_*: the DICOM Segmentation the pipeline writes holds exactly
the masks the meshes were made from, checked in patient coordinates.

recon3d-mesh runs on a CT series (a real one, or a phantom that
recon3d-phantom writes: oblique, gantry-tilted so the volume is resampled,
or Enhanced CT multi-frame) with --save-masks (each meshed mask on the
volume grid, its affine in report.json) and --dicom-seg. Then, with an
independent reader (pydicom + numpy):

- the SEG is a BINARY Segmentation of the source study and Frame of
  Reference, one segment per meshed structure, in report order;
- every frame's Derivation Image names a source instance (and, for a
  multi-frame source, its Referenced Frame Number) whose Image Position
  (Patient), read from the CT files, equals the frame's Plane Position, and
  its orientation and pixel spacing are the source's;
- every pixel of every frame is taken to patient coordinates (Plane
  Position + orientation * spacing), then through the inverse of the
  volume's affine to the nearest voxel of the saved mask (outside: 0), and
  must equal it; every (segment, source slice) without a frame must map to
  an empty mask. Pixels whose centre falls within 1e-3 voxel of a voxel
  boundary may go either way (rounding; at most 1 in 10,000), nothing else
  may differ;
- masks are not trivially small, so the comparison proves something;
- dciodvfy reports no error.

usage: check_seg_pipeline.py MESH_BIN OUT_DIR --ct DIR [mesh options...]
       check_seg_pipeline.py MESH_BIN OUT_DIR --phantom PHANTOM_BIN
                             [phantom options...] -- [mesh options...]
"""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pydicom

SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
TIE = 1e-3  # voxel units: a pixel centre this close to a voxel boundary may round either way


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def run(cmd, timeout=600):
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        fail("%s exited with %d" % (os.path.basename(cmd[0]), r.returncode))
    return time.monotonic() - t0


def source_slices(ct_dir):
    """(SOP Instance UID, frame number or 0) -> (dataset, IPP, IOP, spacing),
    read from the CT files themselves."""
    out = {}
    for root, _dirs, files in os.walk(ct_dir):
        for name in sorted(files):
            try:
                ds = pydicom.dcmread(os.path.join(root, name), stop_before_pixels=True)
            except pydicom.errors.InvalidDicomError:
                continue
            if "PerFrameFunctionalGroupsSequence" in ds:
                shared = ds.SharedFunctionalGroupsSequence[0]
                for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
                    def grp(kw):
                        return getattr(item, kw, None) or getattr(shared, kw)
                    ipp = [float(v) for v in grp("PlanePositionSequence")[0].ImagePositionPatient]
                    iop = [float(v) for v in grp("PlaneOrientationSequence")[0].ImageOrientationPatient]
                    ps = [float(v) for v in grp("PixelMeasuresSequence")[0].PixelSpacing]
                    out[(ds.SOPInstanceUID, f + 1)] = (ds, ipp, iop, ps)
            else:
                out[(ds.SOPInstanceUID, 0)] = (ds, [float(v) for v in ds.ImagePositionPatient],
                                               [float(v) for v in ds.ImageOrientationPatient],
                                               [float(v) for v in ds.PixelSpacing])
    return out


def expected_plane(mask, inv, ipp, iop, ps, rows, cols):
    """The saved mask at the voxel nearest each pixel centre of a plane, and
    where the rounding is a tie."""
    row, col = np.array(iop[:3]), np.array(iop[3:])
    r, c = np.mgrid[0:rows, 0:cols]
    pts = (np.array(ipp)[None, None, :] + c[..., None] * ps[1] * row[None, None, :]
           + r[..., None] * ps[0] * col[None, None, :])
    idx = np.einsum("ij,rcj->rci", inv[:3, :3], pts) + inv[:3, 3]
    near = np.floor(idx + 0.5)
    frac = idx - np.floor(idx)
    tie = np.any(np.abs(frac - 0.5) < TIE, axis=2)
    nz, ny, nx = mask.shape
    n = near.astype(np.int64)
    inside = ((n[..., 0] >= 0) & (n[..., 0] < nx) & (n[..., 1] >= 0) & (n[..., 1] < ny)
              & (n[..., 2] >= 0) & (n[..., 2] < nz))
    want = np.zeros((rows, cols), bool)
    ii = n[inside]
    want[inside] = mask[ii[:, 2], ii[:, 1], ii[:, 0]] != 0
    return want, tie


def main():
    mesh_bin, out = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    if args[0] == "--ct":
        ct_dir, mesh_opts = args[1], args[2:]
    elif args[0] == "--phantom":
        split = args.index("--")
        ct_dir = os.path.join(out, "series")
        run([args[1], "--out", ct_dir] + args[2:split])
        mesh_opts = args[split + 1:]
    else:
        fail("usage")
    seg_path = os.path.join(out, "seg.dcm")
    masks_dir = os.path.join(out, "masks")
    dt = run([mesh_bin, ct_dir, "-o", os.path.join(out, "models"), "--save-masks", masks_dir,
              "--dicom-seg", seg_path, "--threads", "2"] + mesh_opts)
    print("recon3d-mesh: %.1f s, SEG %.1f MB" % (dt, os.path.getsize(seg_path) / 1e6))

    report = json.load(open(os.path.join(out, "models", "report.json")))
    nx, ny, nz = report["volume"]["dims"]
    affine = np.array(report["volume"]["affine_lps_mm"], float).reshape(4, 4)
    inv = np.linalg.inv(affine)
    meshed = [s["name"] for s in report["structures"] if "file" in s]
    if not meshed:
        fail("no structure was meshed")
    masks = {}
    for name in meshed:
        m = np.fromfile(os.path.join(masks_dir, name + ".raw"), dtype=np.uint8)
        if m.size != nx * ny * nz:
            fail("mask %s: %d bytes for %dx%dx%d" % (name, m.size, nx, ny, nz))
        masks[name] = m.reshape(nz, ny, nx)
    print("volume %dx%dx%d (%s); meshed: %s" % (nx, ny, nz, report["note"], ", ".join(meshed)))

    src = source_slices(ct_dir)
    first = next(iter(src.values()))[0]
    multiframe = any(f for (_u, f) in src)

    seg = pydicom.dcmread(seg_path)
    if seg.SOPClassUID != SEG_CLASS or seg.Modality != "SEG" or seg.SegmentationType != "BINARY":
        fail("not a binary Segmentation: %s %s" % (seg.SOPClassUID, seg.Modality))
    for kw in ("PatientID", "StudyInstanceUID", "FrameOfReferenceUID"):
        if str(getattr(seg, kw, "")) != str(getattr(first, kw, "")):
            fail("%s differs from the source" % kw)
    if seg.SeriesInstanceUID == first.SeriesInstanceUID:
        fail("the SEG reuses the source series")
    if seg.SeriesDescription != "3D model: segmentation":
        fail("series description %r" % seg.SeriesDescription)
    refs = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    ref_uids = [it.ReferencedSOPInstanceUID for it in refs]
    if len(ref_uids) != len(set(ref_uids)) or set(ref_uids) != {u for (u, _f) in src}:
        fail("Referenced Instance Sequence is not the source instances, each once")
    labels = [s.SegmentLabel for s in seg.SegmentSequence]
    if labels != meshed:
        fail("segments %s, meshed structures %s" % (labels, meshed))
    rows, cols = int(seg.Rows), int(seg.Columns)
    shared = seg.SharedFunctionalGroupsSequence[0]
    iop = [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient]
    ps = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    any_src = next(iter(src.values()))
    if not np.allclose(iop, any_src[2], atol=1e-6) or not np.allclose(ps, any_src[3], atol=1e-6):
        fail("orientation %s / spacing %s differ from the source %s / %s"
             % (iop, ps, any_src[2], any_src[3]))
    if (rows, cols) != (int(first.Rows), int(first.Columns)):
        fail("SEG %dx%d, source %sx%s" % (cols, rows, first.Columns, first.Rows))

    pixels = seg.pixel_array
    nframes = int(seg.NumberOfFrames)
    if nframes == 1:
        pixels = pixels[np.newaxis]
    frames = {}
    for f, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        sn = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        sref = item.DerivationImageSequence[0].SourceImageSequence
        if len(sref) != 1:
            fail("frame %d: %d source images" % (f + 1, len(sref)))
        uid = sref[0].ReferencedSOPInstanceUID
        fn = int(sref[0].ReferencedFrameNumber) if "ReferencedFrameNumber" in sref[0] else 0
        if multiframe and fn == 0:
            fail("frame %d: multi-frame source without Referenced Frame Number" % (f + 1))
        if not multiframe and fn != 0:
            fail("frame %d: Referenced Frame Number %d for a single-frame source" % (f + 1, fn))
        if (uid, fn) not in src:
            fail("frame %d references %s frame %d, not in the source series" % (f + 1, uid, fn))
        if sref[0].ReferencedSOPClassUID != src[(uid, fn)][0].SOPClassUID:
            fail("frame %d: referenced SOP class differs" % (f + 1))
        ipp = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        if not np.allclose(ipp, src[(uid, fn)][1], atol=1e-3):
            fail("frame %d: position %s, its source slice is at %s" % (f + 1, ipp, src[(uid, fn)][1]))
        if (sn, uid, fn) in frames:
            fail("two frames for segment %d slice %s/%d" % (sn, uid, fn))
        frames[(sn, uid, fn)] = (f, ipp)

    # Every (segment, source slice): the SEG frame or nothing, against the mask.
    ties_total = 0
    compared = 0
    for s, name in enumerate(meshed, start=1):
        voxels = 0
        nfr = 0
        for (uid, fn), (_ds, sipp, siop, sps) in src.items():
            hit = frames.get((s, uid, fn))
            if hit is not None:
                f, ipp = hit
                got = pixels[f] != 0
                want, tie = expected_plane(masks[name], inv, ipp, iop, ps, rows, cols)
                nfr += 1
            else:
                got = np.zeros((rows, cols), bool)
                want, tie = expected_plane(masks[name], inv, sipp, siop, sps, rows, cols)
            diff = got != want
            bad = np.count_nonzero(diff & ~tie)
            if bad:
                fail("segment %s, slice %s frame %d: %d pixels differ from the mask%s"
                     % (name, uid, fn, bad, "" if hit else " (no SEG frame)"))
            ties_total += np.count_nonzero(diff & tie)
            compared += got.size
            voxels += int(got.sum())
        print("segment %s: %d voxels on %d frames equal the meshed mask in patient coordinates"
              % (name, voxels, nfr))
        if voxels < 1000:
            fail("segment %s: only %d voxels, the check would prove little" % (name, voxels))
    print("pixels on a voxel boundary that rounded the other way: %d of %d" % (ties_total, compared))
    if ties_total > compared // 10000:
        fail("too many pixels differ on voxel boundaries: the mapping is off by half a voxel?")

    r = subprocess.run(["dciodvfy", seg_path], capture_output=True, text=True, timeout=300)
    lines = (r.stdout + r.stderr).splitlines()
    errors = [ln for ln in lines if ln.startswith("Error")]
    for ln in errors + [ln for ln in lines if ln.startswith("Warning")]:
        print("dciodvfy: " + ln)
    if errors:
        fail("dciodvfy reports %d errors" % len(errors))
    print("PASS")


if __name__ == "__main__":
    main()
