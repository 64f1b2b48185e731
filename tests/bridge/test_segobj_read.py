#!/usr/bin/python3
"""bridge.segobj_read: bridge_segobj_read() against an independent reading.

For every DICOM file under $R3D_DATA/seg, segobj_dump ($R3D_SEGOBJ_DUMP)
prints what the bridge read (struct segobj as JSON) and this test reads the
same file itself with pydicom and numpy (Debian's /usr/bin/python3): the
pixels are unpacked here from the raw Pixel Data bytes, the CIELab colours
converted here with the textbook formulas, the RT contours taken as pydicom
parses them. Segmentations and RT Structure Sets must match field for
field; every other object (CT, slide microscopy) must be refused with the
reason. Broken or unusual variants of the real files are made with pydicom
in a temporary folder: each must be read as described in segobj.h or
refused with its reason. No patient name or ID may appear in any output.
"""
import copy
import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

DATA = os.environ.get("R3D_DATA", os.path.join(os.path.dirname(__file__), "../../../shared/data"))
DUMP = os.environ.get("R3D_SEGOBJ_DUMP", "")
SEG_DIR = os.path.join(DATA, "seg")

UID_SEG = "1.2.840.10008.5.1.4.1.1.66.4"
UID_LABELMAP = "1.2.840.10008.5.1.4.1.1.66.7"
UID_RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
CONTOUR_BITS = {"CLOSED_PLANAR": 0, "OPEN_PLANAR": 1, "OPEN_NONPLANAR": 2, "POINT": 3}
MODALITY = {"1.2.840.10008.5.1.4.1.1.2": "CT", "1.2.840.10008.5.1.4.1.1.77.1.6": "SM"}


def run_dump(path):
    p = subprocess.run([DUMP, path], capture_output=True, text=True, timeout=120)
    out = json.loads(p.stdout) if p.returncode == 0 else None
    return p.returncode, out, p.stdout, p.stderr


def s(v):
    """A DICOM value as the bridge gives it: str, trailing padding gone."""
    return "" if v is None else str(v).rstrip(" \0")


# ---- independent reading: colour -----------------------------------------

def cielab_to_srgb(lab):
    """DICOM CIELab (D65) to sRGB in [0, 1], clamped per channel
    (CIE 15 / IEC 61966-2-1 formulas, Lindbloom's matrix)."""
    L = lab[0] * 100.0 / 65535.0
    a = lab[1] * 255.0 / 65535.0 - 128.0
    b = lab[2] * 255.0 / 65535.0 - 128.0
    eps, kappa = 216.0 / 24389.0, 24389.0 / 27.0
    fy = (L + 16.0) / 116.0
    fx, fz = fy + a / 500.0, fy - b / 200.0
    xr = fx ** 3 if fx ** 3 > eps else (116.0 * fx - 16.0) / kappa
    yr = fy ** 3 if L > kappa * eps else L / kappa
    zr = fz ** 3 if fz ** 3 > eps else (116.0 * fz - 16.0) / kappa
    xyz = np.array([0.95047 * xr, 1.0 * yr, 1.08883 * zr])
    m = np.array([[3.2404542, -1.5371385, -0.4985314],
                  [-0.9692660, 1.8760108, 0.0415560],
                  [0.0556434, -0.2040259, 1.0572252]])
    out = []
    for v in np.clip(m @ xyz, 0.0, 1.0):
        out.append(12.92 * v if v <= 0.0031308 else 1.055 * v ** (1.0 / 2.4) - 0.055)
    return out


# ---- independent reading: Segmentation -----------------------------------

def code_of(item, seq):
    if item is None or seq not in item or len(item[seq].value) == 0:
        return {"value": "", "scheme": "", "meaning": ""}
    c = item[seq][0]
    value = s(c.get("CodeValue")) or s(c.get("LongCodeValue")) or s(c.get("URNCodeValue"))
    return {"value": value, "scheme": s(c.get("CodingSchemeDesignator")),
            "meaning": s(c.get("CodeMeaning"))}


def fg(ds, f, seq):
    """The item of functional group seq for frame f: per-frame, else shared."""
    pf = ds.PerFrameFunctionalGroupsSequence[f] if "PerFrameFunctionalGroupsSequence" in ds else None
    if pf is not None and seq in pf and len(pf[seq].value):
        return pf[seq][0]
    sh = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    if sh is not None and seq in sh and len(sh[seq].value):
        return sh[seq][0]
    return None


def seg_pixels(ds):
    """All frames as uint8 (nframes, rows, cols), from the raw bytes."""
    n, rows, cols = int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns)
    raw = np.frombuffer(ds.PixelData, dtype=np.uint8)
    total = n * rows * cols
    if ds.BitsAllocated == 1:
        px = np.unpackbits(raw, bitorder="little")[:total]
    elif ds.BitsAllocated == 8:
        px = raw[:total]
    else:
        px = np.frombuffer(ds.PixelData, dtype="<u2")[:total]
    return px.reshape(n, rows, cols).astype(np.uint8)


def expect_seg(path):
    ds = pydicom.dcmread(path, force=True)
    labelmap = s(ds.SOPClassUID) == UID_LABELMAP
    kind = "LABELMAP" if labelmap else s(ds.SegmentationType)
    nframes = int(ds.NumberOfFrames)
    refs = []

    def add(uid):
        if uid and uid not in refs:
            refs.append(uid)

    ref_series, ref_class = "", ""
    for i, se in enumerate(ds.get("ReferencedSeriesSequence", [])):
        if i == 0:
            ref_series = s(se.get("SeriesInstanceUID"))
        for ri in se.get("ReferencedInstanceSequence", []):
            add(s(ri.get("ReferencedSOPInstanceUID")))
            ref_class = ref_class or s(ri.get("ReferencedSOPClassUID"))
    segments = []
    for it in ds.SegmentSequence:
        tm_item = it.SegmentedPropertyTypeCodeSequence[0] if "SegmentedPropertyTypeCodeSequence" in it else None
        tm_where = tm_item if tm_item is not None and "SegmentedPropertyTypeModifierCodeSequence" in tm_item else it
        ar_item = it.AnatomicRegionSequence[0] if "AnatomicRegionSequence" in it else None
        ar_where = ar_item if ar_item is not None and "AnatomicRegionModifierSequence" in ar_item else it
        lab = [int(v) for v in it.get("RecommendedDisplayCIELabValue", [])]
        segments.append({
            "number": int(it.SegmentNumber), "label": s(it.get("SegmentLabel")),
            "has_color": len(lab) == 3, "cielab": lab if len(lab) == 3 else [0, 0, 0],
            "rgb": cielab_to_srgb(lab) if len(lab) == 3 else [0, 0, 0],
            "category": code_of(it, "SegmentedPropertyCategoryCodeSequence"),
            "type": code_of(it, "SegmentedPropertyTypeCodeSequence"),
            "type_modifier": code_of(tm_where, "SegmentedPropertyTypeModifierCodeSequence"),
            "region": code_of(it, "AnatomicRegionSequence"),
            "region_modifier": code_of(ar_where, "AnatomicRegionModifierSequence"),
            "algorithm_type": s(it.get("SegmentAlgorithmType")),
            "algorithm_name": s(it.get("SegmentAlgorithmName")),
            "rt_interpreted_type": "", "contour_types": 0, "nframes": 0, "ncontours": 0})
    by_number = {g["number"]: g for g in segments}
    px = seg_pixels(ds)
    index = np.arange(1, int(ds.Rows) * int(ds.Columns) + 1, dtype=np.uint64)
    frames = []
    for f in range(nframes):
        pp = fg(ds, f, "PlanePositionSequence")
        has_pos = pp is not None and "ImagePositionPatient" in pp
        si = fg(ds, f, "SegmentIdentificationSequence")
        number = 0 if labelmap else int(si.ReferencedSegmentNumber)
        if not labelmap:
            by_number[number]["nframes"] += 1
        di = fg(ds, f, "DerivationImageSequence")
        ref = ""
        if di is not None and "SourceImageSequence" in di and len(di.SourceImageSequence):
            ref = s(di.SourceImageSequence[0].get("ReferencedSOPInstanceUID"))
            ref_class = ref_class or s(di.SourceImageSequence[0].get("ReferencedSOPClassUID"))
        add(ref)
        v = px[f].reshape(-1).astype(np.uint64)
        frames.append({
            "segment": number, "has_position": has_pos,
            "position": [float(x) for x in pp.ImagePositionPatient] if has_pos else [0, 0, 0],
            "nonzero": int(np.count_nonzero(v)), "sum": int(v.sum()),
            "wsum": int((v * index).sum()), "referenced_sop_instance_uid": ref})
    po, pm = fg(ds, 0, "PlaneOrientationSequence"), fg(ds, 0, "PixelMeasuresSequence")
    orientation = [float(x) for x in po.ImageOrientationPatient] if po is not None else [0.0] * 6
    spacing = [float(x) for x in pm.PixelSpacing] if pm is not None and "PixelSpacing" in pm else [0, 0]
    thickness = float(pm.SliceThickness) if pm is not None and "SliceThickness" in pm else 0.0
    software = ds.get("SoftwareVersions", "")
    if isinstance(software, pydicom.multival.MultiValue):
        software = software[0]
    return {
        "kind": kind, "sop_class_uid": s(ds.SOPClassUID), "sop_instance_uid": s(ds.SOPInstanceUID),
        "series_uid": s(ds.get("SeriesInstanceUID")), "study_uid": s(ds.get("StudyInstanceUID")),
        "frame_of_reference_uid": s(ds.get("FrameOfReferenceUID")),
        "referenced_series_uid": ref_series, "referenced_instances": refs,
        "source_modality": MODALITY.get(ref_class, ""),
        "manufacturer": s(ds.get("Manufacturer")), "software": s(software),
        "rows": int(ds.Rows), "columns": int(ds.Columns), "orientation": orientation,
        "pixel_spacing": spacing, "slice_thickness": thickness,
        "max_fractional": int(ds.MaximumFractionalValue) if kind == "FRACTIONAL" else 0,
        "segments": segments, "frames": frames, "contours": []}, px


# ---- independent reading: RT Structure Set -------------------------------

def expect_rtstruct(path):
    ds = pydicom.dcmread(path, force=True)
    segments, index, roi_for = [], {}, ""
    for it in ds.StructureSetROISequence:
        g = {"number": int(it.ROINumber), "label": s(it.get("ROIName")), "has_color": False,
             "rgb": [0, 0, 0], "cielab": [0, 0, 0], "algorithm_type": "", "algorithm_name": "",
             "rt_interpreted_type": "", "contour_types": 0, "nframes": 0, "ncontours": 0}
        for k in ("category", "type", "type_modifier", "region", "region_modifier"):
            g[k] = {"value": "", "scheme": "", "meaning": ""}
        roi_for = roi_for or s(it.get("ReferencedFrameOfReferenceUID"))
        index[g["number"]] = g
        segments.append(g)
    fors = list(ds.get("ReferencedFrameOfReferenceSequence", []))
    chosen = next((f for f in fors if not roi_for or s(f.get("FrameOfReferenceUID")) == roi_for), None)
    frame = roi_for or (s(chosen.get("FrameOfReferenceUID")) if chosen is not None else "")
    series = ""
    for f in ([chosen] if chosen is not None else []) + fors:
        for st in f.get("RTReferencedStudySequence", []):
            if not series and len(st.get("RTReferencedSeriesSequence", [])):
                series = s(st.RTReferencedSeriesSequence[0].get("SeriesInstanceUID"))
    refs = []

    def add(uid):
        if uid and uid not in refs:
            refs.append(uid)

    for f in fors:
        for st in f.get("RTReferencedStudySequence", []):
            for se in st.get("RTReferencedSeriesSequence", []):
                for img in se.get("ContourImageSequence", []):
                    add(s(img.get("ReferencedSOPInstanceUID")))
    contours = []
    for rc in ds.get("ROIContourSequence", []):
        g = index[int(rc.ReferencedROINumber)]
        color = [int(v) for v in rc.get("ROIDisplayColor", [])]
        if not g["has_color"] and len(color) == 3:
            g["has_color"], g["rgb"] = True, [v / 255.0 for v in color]
        for c in rc.get("ContourSequence", []):
            pts = np.array([float(v) for v in c.ContourData]).reshape(-1, 3)
            assert len(pts) == int(c.NumberOfContourPoints)
            gt = s(c.ContourGeometricType)
            imgs = [s(i.get("ReferencedSOPInstanceUID")) for i in c.get("ContourImageSequence", [])]
            for uid in imgs:
                add(uid)
            g["ncontours"] += 1
            g["contour_types"] |= 1 << CONTOUR_BITS.get(gt, 4)
            contours.append({"roi": g["number"], "type": gt if gt in CONTOUR_BITS else "OTHER",
                             "npoints": len(pts), "first": list(pts[0]), "last": list(pts[-1]),
                             "sum": float(pts.sum()),
                             "referenced_sop_instance_uid": imgs[0] if imgs else ""})
    for ob in ds.get("RTROIObservationsSequence", []):
        g = index.get(int(ob.ReferencedROINumber))
        if g is not None and not g["rt_interpreted_type"]:
            g["rt_interpreted_type"] = s(ob.get("RTROIInterpretedType"))
    software = ds.get("SoftwareVersions", "")
    if isinstance(software, pydicom.multival.MultiValue):
        software = software[0]
    return {
        "kind": "RTSTRUCT", "sop_class_uid": s(ds.SOPClassUID), "sop_instance_uid": s(ds.SOPInstanceUID),
        "series_uid": s(ds.get("SeriesInstanceUID")), "study_uid": s(ds.get("StudyInstanceUID")),
        "frame_of_reference_uid": frame, "referenced_series_uid": series,
        "referenced_instances": refs, "source_modality": "",
        "manufacturer": s(ds.get("Manufacturer")), "software": s(software),
        "rows": 0, "columns": 0, "orientation": [0.0] * 6, "pixel_spacing": [0, 0],
        "slice_thickness": 0.0, "max_fractional": 0, "segments": segments, "frames": [],
        "contours": contours}


# ---- comparison -----------------------------------------------------------

def compare(tc, got, want, where=""):
    """got (the dump) against want (pydicom), floats within 1e-5 (colours 2e-3)."""
    if isinstance(want, dict):
        tc.assertIsInstance(got, dict, where)
        tc.assertEqual(sorted(got.keys()), sorted(want.keys()), where)
        for k in want:
            compare(tc, got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        tc.assertIsInstance(got, list, where)
        tc.assertEqual(len(got), len(want), where)
        for i, (g, w) in enumerate(zip(got, want)):
            compare(tc, g, w, f"{where}[{i}]")
    elif isinstance(want, bool) or isinstance(want, str):
        tc.assertEqual(got, want, where)
    else:
        tol = 2e-3 if where.endswith(".rgb") or ".rgb[" in where else 1e-5
        if where.endswith(".sum") and isinstance(want, float):
            tol = 1e-3
        tc.assertAlmostEqual(float(got), float(want), delta=tol, msg=where)


def patient_strings(path):
    ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    name, pid = s(ds.get("PatientName")), s(ds.get("PatientID"))
    parts = [p for p in name.replace("=", "^").split("^") if len(p) >= 3]
    return parts, pid


def json_strings(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from json_strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from json_strings(x)
    elif isinstance(v, str):
        yield v


def all_files():
    return sorted(glob.glob(os.path.join(SEG_DIR, "**", "*.dcm"), recursive=True))


class RealFiles(unittest.TestCase):
    def test_every_file(self):
        files = all_files()
        self.assertGreaterEqual(len(files), 30, "the shared seg folder looks incomplete")
        read = refused = 0
        for path in files:
            rel = os.path.relpath(path, SEG_DIR)
            with self.subTest(file=rel):
                ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
                cls = s(ds.get("SOPClassUID"))
                rc, got, out, err = run_dump(path)
                names, pid = patient_strings(path)
                for text in (out, err):
                    for part in names:
                        self.assertNotIn(part, text, "a patient name part was printed")
                if got is not None:
                    for v in json_strings(got):
                        self.assertNotEqual(v, pid, "the patient ID was printed")
                if cls in (UID_SEG, UID_LABELMAP):
                    self.assertEqual(rc, 0, err)
                    want, _ = expect_seg(path)
                    compare(self, got, want, rel)
                    read += 1
                elif cls == UID_RTSTRUCT:
                    self.assertEqual(rc, 0, err)
                    compare(self, got, expect_rtstruct(path), rel)
                    read += 1
                else:
                    self.assertNotEqual(rc, 0)
                    self.assertIn("not a Segmentation or RT Structure Set", err)
                    self.assertEqual(len(err.strip().splitlines()), 1, err)
                    refused += 1
        # INSPECTION.txt lists 15 SEG / RTSTRUCT objects and 15 images (CT, SM)
        self.assertEqual(read, 15)
        self.assertEqual(refused, 15)

    def test_known_facts(self):
        """Facts of INSPECTION.txt and the README, not derived from pydicom's reading."""
        _, got, _, err = run_dump(os.path.join(SEG_DIR, "highdicom-ct/seg_image_ct_binary_overlap.dcm"))
        self.assertIsNotNone(got, err)
        self.assertEqual(len(got["frames"]), 8)
        self.assertEqual([g["nframes"] for g in got["segments"]], [4, 4])
        zs = sorted({round(f["position"][2], 2) for f in got["frames"]})
        self.assertEqual(zs, [-99.48, 103.02, 104.27, 105.52])
        _, got, _, err = run_dump(os.path.join(SEG_DIR, "highdicom-ct/seg_image_ct_true_fractional.dcm"))
        self.assertEqual(got["kind"], "FRACTIONAL")
        self.assertEqual(got["max_fractional"], 255)
        _, got, _, err = run_dump(os.path.join(SEG_DIR, "highdicom-labelmap-sm/seg_image_sm_control_labelmap.dcm"))
        self.assertEqual(got["kind"], "LABELMAP")
        self.assertEqual(got["source_modality"], "SM")
        self.assertEqual(len(got["segments"]), 21)
        self.assertTrue(all(not f["has_position"] for f in got["frames"]))
        _, got, _, err = run_dump(os.path.join(SEG_DIR, "dicompyler-core/rtss.dcm"))
        self.assertEqual([g["ncontours"] for g in got["segments"]],
                         [141, 0, 2, 48, 33, 165, 4, 6, 18, 24])
        self.assertEqual(sum(c["npoints"] for c in got["contours"] if c["roi"] == 1), 51846)
        self.assertEqual(len(got["referenced_instances"]), 98)
        _, got, _, err = run_dump(os.path.join(SEG_DIR, "pydicom-rtstruct/rtstruct.dcm"))
        self.assertEqual([g["rt_interpreted_type"] for g in got["segments"]],
                         ["EXTERNAL", "ISOCENTER", "ISOCENTER"])
        self.assertEqual([g["contour_types"] for g in got["segments"]], [1, 8, 8])
        # the liver colour is Slicer's (221, 130, 101) give or take rounding
        _, got, _, err = run_dump(os.path.join(SEG_DIR, "dcmqi-liver/liver.dcm"))
        rgb = [round(v * 255) for v in got["segments"][0]["rgb"]]
        for a, b in zip(rgb, (221, 130, 101)):
            self.assertLessEqual(abs(a - b), 1, rgb)
        self.assertEqual(got["source_modality"], "CT")


class Variants(unittest.TestCase):
    """Variants of the real files made with pydicom in a temporary folder."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="r3d-segobj-")
        self.n = 0

    def tearDown(self):
        self.tmp.cleanup()

    def load(self, rel):
        return pydicom.dcmread(os.path.join(SEG_DIR, rel), force=True)

    def save(self, ds, name=None, meta=True):
        self.n += 1
        path = os.path.join(self.tmp.name, name or f"v{self.n}.dcm")
        if meta:
            ds.save_as(path)
        else:
            ds = copy.deepcopy(ds)
            ds.file_meta = FileMetaDataset()
            ds.preamble = None
            ds.is_little_endian, ds.is_implicit_VR = True, True
            pydicom.dcmwrite(path, ds, write_like_original=True)
        return path

    def refused(self, path, *needles):
        rc, got, out, err = run_dump(path)
        self.assertNotEqual(rc, 0, f"read although broken: {out[:200]}")
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        for n in needles:
            self.assertIn(n, err)
        return err

    def read_ok(self, path):
        rc, got, out, err = run_dump(path)
        self.assertEqual(rc, 0, err)
        return got

    def test_ct_image_refused(self):
        self.refused(os.path.join(SEG_DIR, "dcmqi-liver/ct-3slice_01.dcm"),
                     "CT Image Storage", "1.2.840.10008.5.1.4.1.1.2",
                     "not a Segmentation or RT Structure Set")

    def test_missing_and_not_dicom(self):
        self.refused(os.path.join(self.tmp.name, "absent.dcm"), "No such file")
        p = os.path.join(self.tmp.name, "text.dcm")
        with open(p, "w") as f:
            f.write("not DICOM at all\n" * 20)
        self.refused(p, "cannot be parsed as DICOM")

    def test_truncated(self):
        for rel, keep in (("dcmqi-liver/liver.dcm", 60000), ("rt-utils/sample/rt.dcm", 20000),
                          ("highdicom-ct/seg_image_ct_binary.dcm", 3000)):
            with open(os.path.join(SEG_DIR, rel), "rb") as f:
                data = f.read()
            p = os.path.join(self.tmp.name, "cut-" + os.path.basename(rel))
            with open(p, "wb") as f:
                f.write(data[:keep])
            self.refused(p, os.path.basename(p))

    def test_short_pixel_data(self):
        ds = self.load("highdicom-ct/seg_image_ct_binary_overlap.dcm")
        ds.PixelData = ds.PixelData[:-2]
        self.refused(self.save(ds), "Pixel Data holds", "needs")
        ds = self.load("highdicom-ct/seg_image_ct_true_fractional.dcm")
        ds.NumberOfFrames = 4   # one frame more than the data holds
        ds.PerFrameFunctionalGroupsSequence.append(copy.deepcopy(ds.PerFrameFunctionalGroupsSequence[0]))
        self.refused(self.save(ds), "Pixel Data holds")

    def test_without_file_meta(self):
        for rel in ("highdicom-labelmap-sm/seg_image_sm_control.dcm", "dcmqi-liver/partial_overlaps.dcm",
                    "rt-utils/sample/rt.dcm"):
            path = self.save(self.load(rel), meta=False)
            with open(path, "rb") as f:
                self.assertNotEqual(f.read(132)[128:132], b"DICM")
            got = self.read_ok(path)
            _, orig, _, _ = run_dump(os.path.join(SEG_DIR, rel))
            self.assertEqual(got, orig)

    def test_unaligned_frames(self):
        """10 x 10 frames: frame f starts at bit 100 f, mid-byte for odd f."""
        path = os.path.join(SEG_DIR, "highdicom-labelmap-sm/seg_image_sm_control.dcm")
        got = self.read_ok(path)
        want, px = expect_seg(path)
        ds = pydicom.dcmread(path)
        np.testing.assert_array_equal(ds.pixel_array.astype(np.uint8), px)  # the test's own unpacking
        self.assertEqual([f["wsum"] for f in got["frames"]], [f["wsum"] for f in want["frames"]])
        self.assertTrue(any(f["nonzero"] for f in got["frames"][1::2]))

    def test_big_endian_ow(self):
        """Explicit VR Big Endian, Pixel Data as OW: 1- and 8-bit pixels are
        packed into 16-bit words (first pixel in the low byte), so the file
        holds each pair of bytes swapped."""
        from pydicom.uid import ExplicitVRBigEndian
        for rel in ("highdicom-labelmap-sm/seg_image_sm_control.dcm",
                    "highdicom-ct/seg_image_ct_true_fractional.dcm"):
            ds = self.load(rel)
            data = ds.PixelData + (b"\0" if len(ds.PixelData) % 2 else b"")
            ds.PixelData = bytes(np.frombuffer(data, dtype="<u2").astype(">u2").tobytes())
            ds["PixelData"].VR = "OW"
            ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
            ds.is_little_endian, ds.is_implicit_VR = False, False
            got = self.read_ok(self.save(ds))
            _, orig, _, _ = run_dump(os.path.join(SEG_DIR, rel))
            self.assertEqual(got, orig)

    def test_too_many_segments(self):
        ds = self.load("highdicom-ct/seg_image_ct_binary_overlap.dcm")
        for n in range(3, 514):
            item = copy.deepcopy(ds.SegmentSequence[0])
            item.SegmentNumber = n
            ds.SegmentSequence.append(item)
        self.refused(self.save(ds), "513 segments", "SEGOBJ_MAX_SEGMENTS")

    def test_rle_fractional(self):
        ds = self.load("highdicom-ct/seg_image_ct_true_fractional.dcm")
        ds.compress(RLELossless)
        path = self.save(ds)
        got = self.read_ok(path)
        _, orig, _, _ = run_dump(os.path.join(SEG_DIR, "highdicom-ct/seg_image_ct_true_fractional.dcm"))
        self.assertEqual(got["frames"], orig["frames"])

    def test_per_frame_geometry(self):
        rel = "highdicom-ct/seg_image_ct_binary_overlap.dcm"
        ds = self.load(rel)
        shared = ds.SharedFunctionalGroupsSequence[0]
        for item in ds.PerFrameFunctionalGroupsSequence:
            item.PlaneOrientationSequence = copy.deepcopy(shared.PlaneOrientationSequence)
            item.PixelMeasuresSequence = copy.deepcopy(shared.PixelMeasuresSequence)
        del shared.PlaneOrientationSequence
        del shared.PixelMeasuresSequence
        got = self.read_ok(self.save(ds))
        compare(self, got, expect_seg(os.path.join(self.tmp.name, f"v{self.n}.dcm"))[0])
        _, orig, _, _ = run_dump(os.path.join(SEG_DIR, rel))
        self.assertEqual(got["orientation"], orig["orientation"])
        self.assertEqual(got["pixel_spacing"], orig["pixel_spacing"])
        self.assertEqual(got["slice_thickness"], orig["slice_thickness"])

        tilted = copy.deepcopy(ds)
        tilted.PerFrameFunctionalGroupsSequence[5].PlaneOrientationSequence[0].ImageOrientationPatient = \
            [1, 0, 0, 0, 0.9848078, 0.1736482]
        self.refused(self.save(tilted), "frame 6", "Image Orientation")
        coarse = copy.deepcopy(ds)
        coarse.PerFrameFunctionalGroupsSequence[2].PixelMeasuresSequence[0].PixelSpacing = [0.9, 0.9]
        self.refused(self.save(coarse), "frame 3", "Pixel Spacing")
        none = copy.deepcopy(ds)
        for item in none.PerFrameFunctionalGroupsSequence:
            del item.PlaneOrientationSequence
        self.refused(self.save(none), "Plane Orientation", "missing")

    def test_frame_without_position_kept(self):
        ds = self.load("highdicom-ct/seg_image_ct_binary.dcm")
        del ds.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence
        got = self.read_ok(self.save(ds))
        self.assertEqual([f["has_position"] for f in got["frames"]], [True, False, True])

    def test_codes_and_modifiers(self):
        def code(v, sch, m):
            c = Dataset()
            c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = v, sch, m
            return c
        for new_style in (True, False):
            ds = self.load("highdicom-ct/seg_image_ct_binary.dcm")
            seg = ds.SegmentSequence[0]
            region = code("39607008", "SCT", "Lung")
            mod = Sequence([code("7771000", "SCT", "Left")])
            rmod = Sequence([code("24028007", "SCT", "Right")])
            if new_style:
                seg.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = mod
                region.AnatomicRegionModifierSequence = rmod
            else:
                seg.SegmentedPropertyTypeModifierCodeSequence = mod
                seg.AnatomicRegionModifierSequence = rmod
            seg.AnatomicRegionSequence = Sequence([region])
            path = self.save(ds)
            got = self.read_ok(path)["segments"][0]
            self.assertEqual(got["type_modifier"], {"value": "7771000", "scheme": "SCT", "meaning": "Left"})
            self.assertEqual(got["region"], {"value": "39607008", "scheme": "SCT", "meaning": "Lung"})
            self.assertEqual(got["region_modifier"], {"value": "24028007", "scheme": "SCT", "meaning": "Right"})
            compare(self, got, expect_seg(path)[0]["segments"][0])

    def test_code_value_too_long(self):
        ds = self.load("highdicom-ct/seg_image_ct_binary.dcm")
        t = ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0]
        del t.CodeValue
        t.LongCodeValue = "1234567890123456789"
        self.refused(self.save(ds), "segment 1", "Segmented Property Type", "longer than 16")

    def test_colours(self):
        ds = self.load("highdicom-ct/seg_image_ct_binary_overlap.dcm")
        # in gamut, and far outside it (a* high, b* low: red and blue over 1, green under 0)
        ds.SegmentSequence[0].RecommendedDisplayCIELabValue = [40000, 20000, 50000]
        ds.SegmentSequence[1].RecommendedDisplayCIELabValue = [30000, 60000, 10000]
        got = self.read_ok(self.save(ds))
        for g, lab in zip(got["segments"], ([40000, 20000, 50000], [30000, 60000, 10000])):
            self.assertTrue(g["has_color"])
            self.assertEqual(g["cielab"], lab)
            for a, b in zip(g["rgb"], cielab_to_srgb(lab)):
                self.assertAlmostEqual(a, b, delta=2e-3, msg=(g["rgb"], lab))
        self.assertEqual(got["segments"][1]["rgb"][1], 0.0)
        self.assertEqual(got["segments"][1]["rgb"][2], 1.0)

    def test_colour_round_trip(self):
        """Colours written with bridge_rgb_to_cielab() read back as written."""
        colours = [(0.8, 0.3, 0.2), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.1, 0.9, 0.4),
                   (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)]
        for i in range(0, len(colours), 2):
            ds = self.load("highdicom-ct/seg_image_ct_binary_overlap.dcm")
            for k in range(2):
                p = subprocess.run([DUMP, "--cielab"] + [str(v) for v in colours[i + k]],
                                   capture_output=True, text=True, check=True)
                ds.SegmentSequence[k].RecommendedDisplayCIELabValue = [int(v) for v in p.stdout.split()]
            got = self.read_ok(self.save(ds))
            for k in range(2):
                for a, b in zip(got["segments"][k]["rgb"], colours[i + k]):
                    self.assertAlmostEqual(a, b, delta=5e-4, msg=(got["segments"][k], colours[i + k]))

    def test_latin1_labels(self):
        ds = self.load("highdicom-ct/seg_image_ct_binary_overlap.dcm")
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SegmentSequence[0].SegmentLabel = "Lébère"
        ds.SegmentSequence[1].SegmentLabel = "é" * 64   # 64 characters, 128 bytes in UTF-8
        path = self.save(ds)
        with open(path, "rb") as f:
            self.assertIn("Lébère".encode("latin-1"), f.read())
        got = self.read_ok(path)
        self.assertEqual(got["segments"][0]["label"], "Lébère")
        self.assertEqual(got["segments"][1]["label"], "é" * 32)

    def test_labelmap_16_bit(self):
        rel = "highdicom-labelmap-sm/seg_image_sm_control_labelmap.dcm"
        ds = self.load(rel)
        px = np.frombuffer(ds.PixelData, dtype=np.uint8)[: int(ds.NumberOfFrames) * 100]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelData = px.astype("<u2").tobytes()
        ds["PixelData"].VR = "OW"
        got = self.read_ok(self.save(ds))
        _, orig, _, _ = run_dump(os.path.join(SEG_DIR, rel))
        self.assertEqual(got, orig)
        big = px.astype("<u2")
        big[250] = 300
        ds.PixelData = big.tobytes()
        self.refused(self.save(ds), "label 300", "frame 3", "8 bits")

    def test_seg_refusals(self):
        rel = "highdicom-ct/seg_image_ct_binary_overlap.dcm"
        ds = self.load(rel)
        del ds.SegmentSequence
        self.refused(self.save(ds), "Segment Sequence (0062,0002)")
        ds = self.load(rel)
        ds.PerFrameFunctionalGroupsSequence[4].SegmentIdentificationSequence[0].ReferencedSegmentNumber = 7
        self.refused(self.save(ds), "frame 5", "segment 7")
        ds = self.load(rel)
        del ds.PerFrameFunctionalGroupsSequence[2].SegmentIdentificationSequence
        self.refused(self.save(ds), "frame 3", "Segment Identification")
        ds = self.load(rel)
        del ds.Rows
        self.refused(self.save(ds), "Rows (0028,0010)")
        ds = self.load(rel)
        ds.SegmentSequence[1].SegmentNumber = 1
        self.refused(self.save(ds), "Segment Number 1 appears twice")
        ds = self.load(rel)
        ds.NumberOfFrames = 70000
        self.refused(self.save(ds), "SEGOBJ_MAX_FRAMES")
        ds = self.load("highdicom-ct/seg_image_ct_true_fractional.dcm")
        ds.MaximumFractionalValue = 100
        self.refused(self.save(ds), "over the Maximum Fractional Value 100")
        ds = self.load(rel)
        del ds.SegmentationType
        self.refused(self.save(ds), "Segmentation Type (0062,0001) missing")

    def test_contour_point_count(self):
        ds = self.load("rt-utils/sample/rt.dcm")
        c = ds.ROIContourSequence[3].ContourSequence[1]
        c.NumberOfContourPoints = int(c.NumberOfContourPoints) + 1
        err = self.refused(self.save(ds), "ROI 4 'ROI-4'", "contour 2", "Number of Contour Points")
        self.assertIn(str(len(c.ContourData)) + " values", err)
        ds = self.load("pydicom-rtstruct/rtstruct.dcm")
        ds.ROIContourSequence[0].ContourSequence[2].ContourData = \
            ds.ROIContourSequence[0].ContourSequence[2].ContourData[:-1]
        self.refused(self.save(ds, meta=False), "ROI 1 'patient'", "contour 3")

    def test_rt_refusals(self):
        ds = self.load("rt-utils/sample/rt.dcm")
        ds.ROIContourSequence[1].ReferencedROINumber = 9
        self.refused(self.save(ds), "refers to ROI 9")
        ds = self.load("rt-utils/sample/rt.dcm")
        del ds.ROIContourSequence[0].ContourSequence[0].NumberOfContourPoints
        self.refused(self.save(ds), "ROI 1 'ROI-1'", "contour 1", "Number of Contour Points (3006,0046)")
        ds = self.load("rt-utils/sample/rt.dcm")
        ds.StructureSetROISequence[2].ReferencedFrameOfReferenceUID = "1.2.3.4"
        self.refused(self.save(ds), "ROI 3 'ROI-3'", "Frame of Reference")
        ds = self.load("rt-utils/sample/rt.dcm")
        del ds.StructureSetROISequence
        self.refused(self.save(ds), "Structure Set ROI Sequence (3006,0020) missing")

    def test_rt_second_frame_of_reference_listed(self):
        """A structure set that also references a registered series keeps its ROIs' frame."""
        ds = self.load("rt-utils/sample/rt.dcm")
        other = copy.deepcopy(ds.ReferencedFrameOfReferenceSequence[0])
        other.FrameOfReferenceUID = "1.2.3.4.5"
        other.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID = "1.2.3.4.6"
        ds.ReferencedFrameOfReferenceSequence.insert(0, other)
        path = self.save(ds)
        got = self.read_ok(path)
        self.assertEqual(got["frame_of_reference_uid"], "1.2.840.113619.2.405.3.84541899.902.1605198123.912.6060.1")
        self.assertEqual(got["referenced_series_uid"], "2.16.840.1.114362.1.11940992.23790159890.563423471.893.88")
        compare(self, got, expect_rtstruct(path))


if __name__ == "__main__":
    if not DUMP or not os.access(DUMP, os.X_OK):
        sys.exit("R3D_SEGOBJ_DUMP must name the segobj_dump executable")
    unittest.main(verbosity=2)
