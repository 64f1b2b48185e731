#!/usr/bin/python3
"""seg.real: runs seg_write on a real CT series, then checks the binary DICOM
Segmentation it wrote with an independent reader (pydicom + numpy):

- SOP class 1.2.840.10008.5.1.4.1.1.66.4, Modality SEG, BINARY, 1 bit;
- segments 1..3 labelled bone, custom, lungs with their SNOMED codes;
  custom with its type modifier (Left) inside the type item, an Anatomic
  Region (Abdomen) with its modifier (Right); the others with none;
- patient, study and Frame of Reference equal the source CT's;
- every frame references a source CT instance (Derivation Image) whose
  Image Position (Patient) equals the frame's Plane Position, and carries
  the shared orientation of the source;
- for every segment, its voxels equal the raw mask slice for slice (slices
  without a frame must be empty), frames matched to slices by Referenced SOP
  Instance UID and by Image Position (Patient);
- bone is also recomputed from the CT files themselves (HU > 299.5), so the
  masks, the slice order and the pixel layout are checked against the
  source, not only against what the C side wrote;
- dciodvfy reports no error.

usage: check_seg.py SEG_WRITE CT_DIR OUT_DIR
"""
import os
import subprocess
import sys

import numpy as np
import pydicom

SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
EXPECT = [("bone", "3138006"), ("custom", "64033007"), ("lungs", "39607008")]
# The optional codes of segment 2 (a site structure with laterality and region).
EXPECT_CUSTOM = {"modifier": "7771000", "region": "818983003", "region_modifier": "24028007"}


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    tool, ct_dir, out = sys.argv[1:4]
    for name in os.listdir(out):
        os.unlink(os.path.join(out, name))
    r = subprocess.run([tool, ct_dir, out], capture_output=True, text=True, timeout=240)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        fail("seg_write exited with %d" % r.returncode)

    facts = open(os.path.join(out, "facts.txt")).read().split("\n")
    nx = ny = nz = 0
    k_uid, k_pos = [], []
    for line in facts:
        f = line.split()
        if not f:
            continue
        if f[0] == "grid":
            nx, ny, nz = int(f[1]), int(f[2]), int(f[3])
        elif f[0] == "slice":
            k_uid.append(f[2])
            k_pos.append([float(v) for v in f[3:6]])
    if len(k_uid) != nz or nz < 2:
        fail("facts.txt: %d slices for nz %d" % (len(k_uid), nz))
    masks = []
    for i in range(len(EXPECT)):
        m = np.fromfile(os.path.join(out, "mask_%d.raw" % (i + 1)), dtype=np.uint8)
        if m.size != nx * ny * nz:
            fail("mask %d has %d bytes" % (i + 1, m.size))
        masks.append(m.reshape(nz, ny, nx))

    # The source series, read independently.
    src = {}
    for name in sorted(os.listdir(ct_dir)):
        try:
            ds = pydicom.dcmread(os.path.join(ct_dir, name))
        except pydicom.errors.InvalidDicomError:
            continue  # not DICOM (the bridge skips these too)
        src[ds.SOPInstanceUID] = ds
    first = next(iter(src.values()))

    seg_path = os.path.join(out, "seg.dcm")
    seg = pydicom.dcmread(seg_path)
    if seg.SOPClassUID != SEG_CLASS or seg.file_meta.MediaStorageSOPClassUID != SEG_CLASS:
        fail("SOP class %s" % seg.SOPClassUID)
    if seg.Modality != "SEG" or seg.SegmentationType != "BINARY":
        fail("modality %s, type %s" % (seg.Modality, seg.SegmentationType))
    if seg.BitsAllocated != 1 or seg.BitsStored != 1:
        fail("bits allocated %s" % seg.BitsAllocated)
    if int(seg.Rows) != ny or int(seg.Columns) != nx:
        fail("size %sx%s, grid %dx%d" % (seg.Columns, seg.Rows, nx, ny))
    for kw in ("PatientID", "PatientName", "StudyInstanceUID", "FrameOfReferenceUID"):
        if str(getattr(seg, kw, "")) != str(getattr(first, kw, "")):
            fail("%s differs from the source" % kw)
    if seg.SeriesInstanceUID == first.SeriesInstanceUID:
        fail("the SEG reuses the source series")
    if seg.SeriesDescription != "3D model: segmentation":
        fail("series description %r" % seg.SeriesDescription)
    refser = seg.ReferencedSeriesSequence
    if len(refser) != 1 or refser[0].SeriesInstanceUID != first.SeriesInstanceUID:
        fail("Referenced Series Sequence does not name the source series")
    if {it.ReferencedSOPInstanceUID for it in refser[0].ReferencedInstanceSequence} != set(src):
        fail("Referenced Instance Sequence is not the source series")

    segs = seg.SegmentSequence
    if len(segs) != len(EXPECT):
        fail("%d segments" % len(segs))
    for i, (label, code) in enumerate(EXPECT):
        s = segs[i]
        if int(s.SegmentNumber) != i + 1 or s.SegmentLabel != label:
            fail("segment %d: number %s label %s" % (i + 1, s.SegmentNumber, s.SegmentLabel))
        t = s.SegmentedPropertyTypeCodeSequence[0]
        if t.CodeValue != code or t.CodingSchemeDesignator != "SCT":
            fail("segment %s: type code %s" % (label, t.CodeValue))
        mods = t.get("SegmentedPropertyTypeModifierCodeSequence", [])
        regions = s.get("AnatomicRegionSequence", [])
        if label == "custom":
            if [m.CodeValue for m in mods] != [EXPECT_CUSTOM["modifier"]]:
                fail("segment custom: type modifier %s" % [m.CodeValue for m in mods])
            if [r.CodeValue for r in regions] != [EXPECT_CUSTOM["region"]]:
                fail("segment custom: anatomic region %s" % [r.CodeValue for r in regions])
            rmods = regions[0].get("AnatomicRegionModifierSequence", [])
            if [m.CodeValue for m in rmods] != [EXPECT_CUSTOM["region_modifier"]]:
                fail("segment custom: region modifier %s" % [m.CodeValue for m in rmods])
        elif len(mods) or len(regions):
            fail("segment %s: codes it was not given" % label)
        if s.SegmentAlgorithmType != "AUTOMATIC":
            fail("segment %s: algorithm type" % label)

    shared = seg.SharedFunctionalGroupsSequence[0]
    iop = [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient]
    if not np.allclose(iop, [float(v) for v in first.ImageOrientationPatient], atol=1e-6):
        fail("orientation %s" % iop)
    ps = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    if not np.allclose(ps, [float(v) for v in first.PixelSpacing], atol=1e-6):
        fail("pixel spacing %s" % ps)
    if len(seg.DimensionIndexSequence) != 2:
        fail("dimension index sequence has %d items" % len(seg.DimensionIndexSequence))

    nframes = int(seg.NumberOfFrames)
    pf = seg.PerFrameFunctionalGroupsSequence
    if len(pf) != nframes:
        fail("%d per-frame items for %d frames" % (len(pf), nframes))
    pixels = seg.pixel_array
    if nframes == 1:
        pixels = pixels[np.newaxis]
    if pixels.shape != (nframes, ny, nx):
        fail("pixel array shape %s" % (pixels.shape,))

    pos_to_k = {}
    for k, p in enumerate(k_pos):
        pos_to_k[tuple(np.round(p, 2))] = k
    uid_to_k = {u: k for k, u in enumerate(k_uid)}
    seen = {}
    got = [np.zeros((nz, ny, nx), np.uint8) for _ in EXPECT]
    for f in range(nframes):
        item = pf[f]
        sn = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        if not 1 <= sn <= len(EXPECT):
            fail("frame %d: segment number %d" % (f + 1, sn))
        srcs = item.DerivationImageSequence[0].SourceImageSequence
        if len(srcs) != 1:
            fail("frame %d: %d source images" % (f + 1, len(srcs)))
        uid = srcs[0].ReferencedSOPInstanceUID
        if uid not in src or srcs[0].ReferencedSOPClassUID != src[uid].SOPClassUID:
            fail("frame %d references an instance not in the source series" % (f + 1))
        ipp = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        if not np.allclose(ipp, [float(v) for v in src[uid].ImagePositionPatient], atol=1e-3):
            fail("frame %d: position %s, its source slice is at %s"
                 % (f + 1, ipp, list(src[uid].ImagePositionPatient)))
        k = uid_to_k.get(uid)
        if k is None or pos_to_k.get(tuple(np.round(ipp, 2))) != k:
            fail("frame %d: UID and position do not name the same slice" % (f + 1))
        if (sn, k) in seen:
            fail("frames %d and %d are both segment %d slice %d" % (seen[(sn, k)], f + 1, sn, k))
        seen[(sn, k)] = f + 1
        dim = [int(v) for v in item.FrameContentSequence[0].DimensionIndexValues]
        if dim[0] != sn:
            fail("frame %d: dimension index values %s" % (f + 1, dim))
        got[sn - 1][k] = pixels[f]

    for i, (label, _) in enumerate(EXPECT):
        diff = np.count_nonzero(got[i] != (masks[i] != 0))
        if diff:
            fail("segment %s: %d voxels differ from the mask" % (label, diff))
        print("segment %s: %d voxels on %d frames, equal to the mask"
              % (label, int(got[i].sum()),
                 sum(1 for (s, _k) in seen if s == i + 1)))
    if got[0].sum() < 10000 or got[1].sum() < 100:
        fail("masks implausibly small: the test would prove little")
    if got[2].sum() != 0:
        fail("the empty segment has voxels")

    # Bone straight from the CT files: frames in patient coordinates.
    bone_frames = 0
    for (sn, k), f in seen.items():
        if sn != 1:
            continue
        ct = src[k_uid[k]]
        hu = ct.pixel_array.astype(np.float64) * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
        diff = np.count_nonzero((hu > 299.5) != (pixels[f - 1] != 0))
        if diff:
            fail("bone frame %d: %d voxels differ from HU > 299.5 of %s" % (f, diff, k_uid[k]))
        bone_frames += 1
    for k, uid in enumerate(k_uid):
        ct = src[uid]
        if (1, k) not in seen:
            hu = ct.pixel_array.astype(np.float64) * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
            if np.any(hu > 299.5):
                fail("slice %d has bone but no bone frame" % k)
    print("bone: %d frames equal HU > 299.5 of their source slice" % bone_frames)

    r = subprocess.run(["dciodvfy", seg_path], capture_output=True, text=True, timeout=120)
    report = r.stdout + r.stderr
    errors = [ln for ln in report.splitlines() if ln.startswith("Error")]
    warnings = [ln for ln in report.splitlines() if ln.startswith("Warning")]
    for ln in errors + warnings:
        print("dciodvfy: " + ln)
    if errors:
        fail("dciodvfy reports %d errors" % len(errors))
    print("dciodvfy: no error (%d warnings)" % len(warnings))
    print("PASS")


if __name__ == "__main__":
    main()
