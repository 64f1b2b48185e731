"""
import.bad: bad segmentation objects given to `recon3d-mesh CT_DIR
--segmentation FILE`. Each case ends in one of two ways, never in a crash:
the run is refused (exit status 1, one line on stderr naming what is wrong),
or the segment or ROI that cannot be used is listed in report.json with its
skipped_reason (which names it by number and label) while every other one
is meshed and checked against the object as pydicom reads it.

Real objects (../shared/data/seg, see its INSPECTION.txt and SOURCE.txt):
- dicompyler-core's breast plan: drawn on 98 CT slices, 1 of them present:
  refused as an incomplete series (with the 98 slices put back, by copies of
  the one present at the 98 positions, it is meshed and its ROI without
  contours, "Areola", is listed as skipped);
- pydicom's structure set without file meta information: refused for its
  series on the rt-utils CT; on a CT made for it (its series and frame of
  reference) its EXTERNAL ROI is meshed and its two POINT ROIs are skipped;
- rt-utils' two broken structure sets: the one that names the CT series
  but another frame of reference is refused; the one that names no series
  is matched by its frame of reference and meshed (and refused on a CT of
  another frame of reference);
- highdicom's segmentations of a slide-microscopy image (Label Map, Label
  Map with a palette, BINARY): refused as not CT, on their own source image
  and on a CT;
- highdicom's single-frame SEG on its single CT slice: refused, because
  the pipeline builds a CT volume first and one slice is not one (the SEG
  itself is fine: a limit of the pipeline, not of the object).

Made here with pydicom from the real objects:
- SEG frames without Plane Position (all, or only segment 2's): refused;
- a segment whose frames are all zero, and a segment the Segment Sequence
  lists but no frame holds: skipped as "no voxels", the other meshed
  voxel-exactly;
- more segments than SEGOBJ_MAX_SEGMENTS (257; 256 is accepted), more
  frames than SEGOBJ_MAX_FRAMES, more pixels than SEGOBJ_MAX_PIXELS:
  refused naming the limit (the frame and pixel counts are the header's,
  refused before any pixel is read, so the files stay small);
- MIM's structure set with a bow-tie contour, a contour of two points, one
  of two distinct points, and one of collinear points in one ROI: that ROI
  skipped with the reason, the other three meshed and their cross-sections
  checked against their contours;
- Contour Data with a value missing, and a Number of Contour Points that
  does not match: refused (the object's structure is broken, not one
  contour's shape).
"""
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import pydicom
from pydicom.pixel_data_handlers.numpy_handler import pack_bits
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_import_real as real  # noqa: E402  (the helpers of import.real)

BIN = os.environ["R3D_MESH_BIN"]
SEG = os.path.join(os.environ["R3D_DATA"], "seg")
MIM_DIR = os.path.join(SEG, "rt-utils", "sample")
MIM_RT = os.path.join(MIM_DIR, "rt.dcm")
CT2 = os.path.join(SEG, "highdicom-ct", "CT2")
OVERLAP = os.path.join(SEG, "highdicom-ct", "seg_image_ct_binary_overlap.dcm")


def run(*args):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=600)


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="r3d-bad-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.n = 0

    def path(self, name):
        self.n += 1
        return os.path.join(self.tmp, "%d-%s" % (self.n, name))

    def save(self, ds, name, meta=True):
        p = self.path(name)
        if meta:
            ds.save_as(p, write_like_original=False)
        else:
            pydicom.dcmwrite(p, ds, write_like_original=True)
        return p

    def ct_links(self, files):
        d = self.path("ct")
        os.mkdir(d)
        for f in files:
            os.symlink(f, os.path.join(d, os.path.basename(f)))
        return d

    def mim_ct(self):
        return self.ct_links([os.path.join(MIM_DIR, f) for f in sorted(os.listdir(MIM_DIR))
                              if f != "rt.dcm"])

    def mesh(self, ct_dir, seg_file, *extra):
        out = self.path("out")
        r = run(ct_dir, "-o", out, "--segmentation", seg_file, "--threads", "2", *extra)
        # Never a crash: 0 (meshed) or 1 (refused), and no sanitizer or
        # assertion report.
        self.assertIn(r.returncode, (0, 1), r.stderr)
        self.assertNotRegex(r.stderr, "Assertion|Sanitizer|runtime error|Segmentation fault")
        rep = None
        if r.returncode == 0:
            with open(os.path.join(out, "report.json")) as f:
                rep = json.load(f)
        return r, out, rep

    def refused(self, ct_dir, seg_file, *needles, extra=()):
        r, _, _ = self.mesh(ct_dir, seg_file, *extra)
        self.assertEqual(r.returncode, 1, "meshed although bad: %s" % r.stdout[-400:])
        msg = r.stderr.strip()
        self.assertEqual(len(msg.splitlines()), 1, msg)
        for n in needles:
            self.assertIn(n, msg)
        print("refused:", msg)
        return msg

    def by_label(self, rep):
        return {s["label"]: s for s in rep["structures"]}


def report_skips(rep):
    for s in rep["structures"]:
        if "skipped_reason" in s:
            print("skipped: %s: %s" % (s["label"], s["skipped_reason"]))


# ---------------------------------------------------------------------------
# Real objects
# ---------------------------------------------------------------------------

class RealObjects(Base):
    def test_dicompyler_incomplete_series(self):
        rt = os.path.join(SEG, "dicompyler-core", "rtss.dcm")
        ds = pydicom.dcmread(rt)
        fr = ds.ReferencedFrameOfReferenceSequence[0]
        se = fr.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
        listed = {str(i.ReferencedSOPInstanceUID) for i in se.ContourImageSequence}
        self.assertEqual(len(listed), 98)
        ct = self.ct_links([os.path.join(SEG, "dicompyler-core", "ct.0.dcm")])
        self.refused(ct, rt, "RTSTRUCT %s" % ds.SOPInstanceUID,
                     "drawn on 98 images of this CT series", "holds only 1 image of it",
                     "incomplete")

    def test_dicompyler_completed_series(self):
        """The same structure set on its series made whole (the one slice
        copied to the 98 instances and planes its contours name) is meshed:
        the refusal above is about the missing slices only."""
        rt = os.path.join(SEG, "dicompyler-core", "rtss.dcm")
        ds = pydicom.dcmread(rt)
        ct0 = pydicom.dcmread(os.path.join(SEG, "dicompyler-core", "ct.0.dcm"))
        planes = {}
        for rc in ds.ROIContourSequence:
            for c in getattr(rc, "ContourSequence", []):
                z = round(float(c.ContourData[2]), 2)
                uid = str(c.ContourImageSequence[0].ReferencedSOPInstanceUID)
                self.assertEqual(planes.setdefault(uid, z), z)
        self.assertEqual(len(planes), 98)
        d = self.path("ct")
        os.mkdir(d)
        for k, (uid, z) in enumerate(sorted(planes.items(), key=lambda t: t[1])):
            sl = copy.deepcopy(ct0)
            sl.SOPInstanceUID = uid
            sl.file_meta.MediaStorageSOPInstanceUID = uid
            sl.ImagePositionPatient = [ct0.ImagePositionPatient[0], ct0.ImagePositionPatient[1], z]
            sl.SliceLocation = z
            sl.InstanceNumber = k + 1
            sl.save_as(os.path.join(d, "%03d.dcm" % k), write_like_original=False)
        r, out, rep = self.mesh(d, rt)
        self.assertEqual(r.returncode, 0, r.stderr)
        report_skips(rep)
        names = {int(x.ROINumber): str(x.ROIName) for x in ds.StructureSetROISequence}
        got = self.by_label(rep)
        for rc in ds.ROIContourSequence:
            number = int(rc.ReferencedROINumber)
            s = got[names[number]]
            if not getattr(rc, "ContourSequence", None):
                self.assertEqual(s["skipped_reason"],
                                 "ROI %d '%s': no contours (nothing to fill)" % (number,
                                                                                  names[number]))
                continue
            self.assertNotIn("skipped_reason", s, s)
            self.assertTrue(s["watertight"], s["label"])

    def test_pydicom_no_file_meta_on_another_series(self):
        rt = os.path.join(SEG, "pydicom-rtstruct", "rtstruct.dcm")
        ds = pydicom.dcmread(rt, force=True)
        self.assertNotIn("TransferSyntaxUID", getattr(ds, "file_meta", {}))
        series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0] \
            .RTReferencedSeriesSequence[0].SeriesInstanceUID
        ct_series = pydicom.dcmread(os.path.join(MIM_DIR, sorted(os.listdir(MIM_DIR))[0])) \
            .SeriesInstanceUID
        self.refused(self.mim_ct(), rt, "refers to series %s, not to the CT series %s"
                     % (series, ct_series))

    def test_pydicom_no_file_meta_on_its_own_series(self):
        """A CT made for it (a real CT slice given its series, frame of
        reference and 1 mm pixels around the contours): the EXTERNAL ROI is
        meshed, its section equals its rectangles' area; the POINT ROIs are
        listed as skipped with the reason."""
        rt = os.path.join(SEG, "pydicom-rtstruct", "rtstruct.dcm")
        ds = pydicom.dcmread(rt, force=True)
        fr = ds.ReferencedFrameOfReferenceSequence[0]
        series = fr.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID
        tmpl = pydicom.dcmread(os.path.join(MIM_DIR, sorted(os.listdir(MIM_DIR))[0]))
        d = self.path("ct")
        os.mkdir(d)
        for k, z in enumerate((-210.0, -200.0, -190.0, -180.0, -170.0)):
            sl = copy.deepcopy(tmpl)
            sl.SeriesInstanceUID = series
            sl.StudyInstanceUID = ds.StudyInstanceUID
            sl.FrameOfReferenceUID = fr.FrameOfReferenceUID
            sl.SOPInstanceUID = generate_uid()
            sl.file_meta.MediaStorageSOPInstanceUID = sl.SOPInstanceUID
            sl.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            sl.ImagePositionPatient = [-255.5, -255.5, z]
            sl.PixelSpacing = [1, 1]
            sl.SliceLocation = z
            sl.InstanceNumber = k + 1
            sl.save_as(os.path.join(d, "%d.dcm" % k), write_like_original=False)
        r, out, rep = self.mesh(d, rt, "--no-smooth")
        self.assertEqual(r.returncode, 0, r.stderr)
        report_skips(rep)
        got = self.by_label(rep)
        for number, label in ((2, "Isocenter 1"), (3, "Isocenter 2")):
            self.assertEqual(got[label]["skipped_reason"],
                             "ROI %d '%s': no CLOSED_PLANAR contour (only POINT); nothing "
                             "encloses a volume" % (number, label))
        s = got["patient"]
        self.assertNotIn("skipped_reason", s, s)
        verts, faces = real.read_stl(os.path.join(out, s["file"]))
        self.assertTrue(real.closed_as_welded(verts, faces))
        for c in ds.ROIContourSequence[0].ContourSequence:
            pts = np.array(c.ContourData, float).reshape(-1, 3)
            want = real.polygon_area(pts[:, :2])
            area = real.section_area(verts, faces, np.array([0, 0, pts[0, 2]]),
                                     np.array([0., 0, 1]), np.array([1., 0, 0]),
                                     np.array([0., 1, 0]))
            self.assertLess(abs(area - want), max(0.02 * want, 2.0), (pts[0, 2], area, want))

    def test_rtutils_other_frame_of_reference(self):
        rt = os.path.join(SEG, "rt-utils", "extra_rt", "mock_rt_2contours.dcm")
        ds = pydicom.dcmread(rt)
        ct = pydicom.dcmread(os.path.join(MIM_DIR, sorted(os.listdir(MIM_DIR))[0]))
        fr = ds.ReferencedFrameOfReferenceSequence[0]
        self.assertEqual(fr.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
                         .SeriesInstanceUID, ct.SeriesInstanceUID)
        self.assertNotEqual(fr.FrameOfReferenceUID, ct.FrameOfReferenceUID)
        self.refused(self.mim_ct(), rt, "the RTSTRUCT names this CT series but is in frame of "
                     "reference %s, the series in %s: its coordinates are not the series'"
                     % (fr.FrameOfReferenceUID, ct.FrameOfReferenceUID))

    def test_rtutils_no_series_matched_by_frame_of_reference(self):
        rt = os.path.join(SEG, "rt-utils", "extra_rt", "non_existent_reference_rt.dcm")
        ds = pydicom.dcmread(rt)
        fr = ds.ReferencedFrameOfReferenceSequence[0]
        self.assertNotIn("RTReferencedStudySequence", fr)
        # Its contours are MIM's: the same checks as the original.
        t = real.RtStruct("test_mim_structure_set")
        t.addCleanup = self.addCleanup
        rep = t.check_rt(self.mim_ct(), rt, 3)
        self.assertEqual(sorted(s["label"] for s in rep["structures"]),
                         ["ROI-1", "ROI-2", "ROI-3", "ROI-4"])
        # ... and on a CT of another frame of reference it is refused.
        ct2 = pydicom.dcmread(os.path.join(CT2, sorted(os.listdir(CT2))[0]))
        self.refused(CT2, rt, "the RTSTRUCT names no series, and its frame of reference %s is "
                     "not the CT series' (%s)" % (fr.FrameOfReferenceUID, ct2.FrameOfReferenceUID),
                     extra=("--interpolate-gaps",))

    def test_microscopy_segmentations(self):
        d = os.path.join(SEG, "highdicom-labelmap-sm")
        sm = self.ct_links([os.path.join(d, "sm_image_control.dcm")])
        sm_series = pydicom.dcmread(os.path.join(d, "sm_image_control.dcm")).SeriesInstanceUID
        for name, kind in (("seg_image_sm_control_labelmap.dcm", "Label Map SEG"),
                           ("seg_image_sm_control_labelmap_palette_color.dcm", "Label Map SEG"),
                           ("seg_image_sm_control.dcm", "SEG (binary)")):
            p = os.path.join(d, name)
            uid = pydicom.dcmread(p).SOPInstanceUID
            # on its own source image: not a CT series at all
            self.refused(sm, p, "series %s is SM, not CT" % sm_series)
            # on a CT: the object says what it was made on
            self.refused(CT2, p, "the %s %s was made on SM images (series %s), not CT"
                         % (kind, uid, sm_series), extra=("--interpolate-gaps",))

    def test_single_frame_seg_on_one_ct_slice(self):
        ct = self.ct_links([os.path.join(SEG, "highdicom-ct", "ct_image.dcm")])
        self.refused(ct, os.path.join(SEG, "highdicom-ct", "seg_image_ct_binary_single_frame.dcm"),
                     "a volume needs at least 2 slices, the series has 1",
                     extra=("--interpolate-gaps",))


# ---------------------------------------------------------------------------
# Segmentations made bad
# ---------------------------------------------------------------------------

def seg_frames_of(ds, number):
    return [f for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence)
            if int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber) == number]


def set_binary_pixels(ds, arr):
    ds.PixelData = pack_bits(arr.astype(np.uint8).ravel())
    ds.NumberOfFrames = arr.shape[0]


class BadSeg(Base):
    def check_segment_meshed(self, ds, rep, out, number):
        """The segment's raw surface (--no-smooth --no-decimate) puts every
        voxel centre of its frames on its own side."""
        item = [x for x in ds.SegmentSequence if int(x.SegmentNumber) == number][0]
        s = self.by_label(rep)[str(item.SegmentLabel)]
        self.assertNotIn("skipped_reason", s, s)
        truth, _, ps, frames, row, col = real.seg_voxels(ds, number)
        verts, faces = real.read_stl(os.path.join(out, s["file"]))
        self.assertTrue(real.closed_as_welded(verts, faces))
        got = real.inside_mesh_frames(verts, faces, frames, row, col, ps)
        self.assertGreater(int(truth.sum()), 0)
        self.assertEqual(int((got != truth).sum()), 0)

    def test_frames_without_position(self):
        ds = pydicom.dcmread(OVERLAP)
        for item in ds.PerFrameFunctionalGroupsSequence:
            del item.PlanePositionSequence
        self.refused(CT2, self.save(ds, "nopos.dcm"),
                     "the SEG (binary) %s: 8 of its 8 frames have no Plane Position (Patient) "
                     "(the first: frame 1, segment 1 'first segment')" % ds.SOPInstanceUID,
                     "cannot be placed", extra=("--interpolate-gaps",))

    def test_frames_of_one_segment_without_position(self):
        ds = pydicom.dcmread(OVERLAP)
        two = seg_frames_of(ds, 2)
        for f in two:
            del ds.PerFrameFunctionalGroupsSequence[f].PlanePositionSequence
        self.refused(CT2, self.save(ds, "nopos2.dcm"),
                     "%d of its 8 frames have no Plane Position (Patient) (the first: "
                     "frame %d, segment 2 'second segment')" % (len(two), two[0] + 1),
                     extra=("--interpolate-gaps",))

    def test_segment_with_empty_frames(self):
        ds = pydicom.dcmread(OVERLAP)
        arr = ds.pixel_array.copy()
        two = seg_frames_of(ds, 2)
        arr[two] = 0
        set_binary_pixels(ds, arr)
        p = self.save(ds, "empty2.dcm")
        r, out, rep = self.mesh(CT2, p, "--interpolate-gaps", "--no-smooth", "--no-decimate")
        self.assertEqual(r.returncode, 0, r.stderr)
        report_skips(rep)
        self.assertEqual(self.by_label(rep)["second segment"]["skipped_reason"],
                         "segment 2 'second segment': no voxels (its %d frames are all empty)"
                         % len(two))
        self.check_segment_meshed(pydicom.dcmread(p), rep, out, 1)

    def test_segment_without_frames(self):
        ds = pydicom.dcmread(OVERLAP)
        arr = ds.pixel_array
        keep = [f for f in range(len(arr)) if f not in seg_frames_of(ds, 2)]
        pf = ds.PerFrameFunctionalGroupsSequence
        ds.PerFrameFunctionalGroupsSequence = Sequence([pf[f] for f in keep])
        set_binary_pixels(ds, arr[keep])
        p = self.save(ds, "noframes2.dcm")
        r, out, rep = self.mesh(CT2, p, "--interpolate-gaps", "--no-smooth", "--no-decimate")
        self.assertEqual(r.returncode, 0, r.stderr)
        report_skips(rep)
        self.assertEqual(self.by_label(rep)["second segment"]["skipped_reason"],
                         "segment 2 'second segment': no voxels (no frame of the "
                         "Segmentation belongs to it)")
        self.check_segment_meshed(pydicom.dcmread(p), rep, out, 1)

    def with_segments(self, n):
        """The binary SEG with segments 1..n: segment 1 has the frames,
        the others are listed only."""
        ds = pydicom.dcmread(os.path.join(SEG, "highdicom-ct", "seg_image_ct_binary.dcm"))
        for k in range(2, n + 1):
            item = copy.deepcopy(ds.SegmentSequence[0])
            item.SegmentNumber = k
            item.SegmentLabel = "segment %d" % k
            ds.SegmentSequence.append(item)
        return ds

    def test_segment_count_limit(self):
        ds = self.with_segments(257)
        self.refused(CT2, self.save(ds, "257.dcm"),
                     "the Segment Sequence lists 257 segments; recon3d meshes at most 256 per "
                     "object (SEGOBJ_MAX_SEGMENTS)", extra=("--interpolate-gaps",))
        # at the limit: read, segment 1 meshed, the 255 others empty
        ds = self.with_segments(256)
        p = self.save(ds, "256.dcm")
        r, out, rep = self.mesh(CT2, p, "--interpolate-gaps", "--no-smooth", "--no-decimate")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(rep["structures"]), 256)
        skipped = [s for s in rep["structures"] if "skipped_reason" in s]
        self.assertEqual(len(skipped), 255)
        self.assertEqual(skipped[-1]["skipped_reason"],
                         "segment 256 'segment 256': no voxels (no frame of the Segmentation "
                         "belongs to it)")
        self.check_segment_meshed(pydicom.dcmread(p), rep, out, 1)

    def test_frame_count_limit(self):
        ds = pydicom.dcmread(os.path.join(SEG, "highdicom-ct", "seg_image_ct_binary.dcm"))
        ds.NumberOfFrames = 65537
        self.refused(CT2, self.save(ds, "frames.dcm"),
                     "Number of Frames (0028,0008) is 65537; recon3d reads 1 to 65536 frames "
                     "per object (SEGOBJ_MAX_FRAMES)", extra=("--interpolate-gaps",))

    def test_pixel_count_limit(self):
        ds = pydicom.dcmread(os.path.join(SEG, "highdicom-ct", "seg_image_ct_binary.dcm"))
        ds.Rows = ds.Columns = 65535
        self.refused(CT2, self.save(ds, "pixels.dcm"),
                     "3 frames of 65535 x 65535 pixels are %d pixels; recon3d reads at most "
                     "%d per object (SEGOBJ_MAX_PIXELS" % (3 * 65535 * 65535, 1 << 32),
                     extra=("--interpolate-gaps",))


# ---------------------------------------------------------------------------
# RT Structure Sets made bad (MIM's on its GE slices)
# ---------------------------------------------------------------------------

def segments_cross(a, b, c, d):
    """Proper crossing of segments ab and cd (2-D), and where."""
    def orient(p, q, r):
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    o1, o2, o3, o4 = orient(a, b, c), orient(a, b, d), orient(c, d, a), orient(c, d, b)
    if o1 * o2 < 0 and o3 * o4 < 0:
        t = o3 / (o3 - o4)
        return a + t * (b - a)
    return None


def self_crossings(pts2):
    """Every proper crossing of two non-adjacent edges of a closed polygon
    (O(n^2); an independent check of the node's sweep)."""
    n = len(pts2)
    out = []
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue
            x = segments_cross(pts2[i], pts2[(i + 1) % n], pts2[j], pts2[(j + 1) % n])
            if x is not None:
                out.append(x)
    return out


class BadRtStruct(Base):
    def roi_contour(self, ds, number):
        return [rc for rc in ds.ROIContourSequence if int(rc.ReferencedROINumber) == number][0]

    def check_others(self, ds, rep, out, bad):
        """Every ROI but `bad` meshed, and its sections equal to its
        contours' areas (import.real's check)."""
        names = {int(x.ROINumber): str(x.ROIName) for x in ds.StructureSetROISequence}
        got = self.by_label(rep)
        for rc in ds.ROIContourSequence:
            number = int(rc.ReferencedROINumber)
            if number == bad:
                continue
            s = got[names[number]]
            self.assertNotIn("skipped_reason", s, s)
            verts, faces = real.read_stl(os.path.join(out, s["file"]))
            self.assertTrue(real.closed_as_welded(verts, faces))
            for c in rc.ContourSequence:
                pts = np.array(c.ContourData, float).reshape(-1, 3)
                want = real.polygon_area(pts[:, :2])
                area = real.section_area(verts, faces, np.array([0, 0, pts[0, 2]]),
                                         np.array([0., 0, 1]), np.array([1., 0, 0]),
                                         np.array([0., 1, 0]))
                self.assertLess(abs(area - want), max(0.02 * want, 2.0),
                                "%s at z %.1f" % (names[number], pts[0, 2]))

    def skipped_one(self, ds, bad, pattern):
        p = self.save(ds, "rt.dcm")
        r, out, rep = self.mesh(self.mim_ct(), p, "--no-smooth", "--no-decimate")
        self.assertEqual(r.returncode, 0, r.stderr)
        report_skips(rep)
        reason = self.by_label(rep)["ROI-%d" % bad]["skipped_reason"]
        self.assertRegex(reason, pattern)
        self.check_others(pydicom.dcmread(p), rep, out, bad)
        return reason

    def test_bow_tie(self):
        ds = pydicom.dcmread(MIM_RT)
        c = self.roi_contour(ds, 2).ContourSequence[0]
        pts = np.array(c.ContourData, float).reshape(-1, 3)
        n = len(pts)
        # reversing a run of the points twists the outline into a bow tie
        pts[n // 4:n // 2] = pts[n // 4:n // 2][::-1].copy()
        c.ContourData = ["%.6f" % v for v in pts.ravel()]
        crossings = self_crossings(pts[:, :2])
        self.assertGreater(len(crossings), 0)
        pattern = (r"^ROI 2 'ROI-2': contour 1 crosses itself near "
                   r"\((-?[\d.]+), (-?[\d.]+), (-?[\d.]+)\) mm$")
        reason = self.skipped_one(ds, 2, pattern)
        at = np.array([float(v) for v in re.match(pattern, reason).groups()])
        self.assertAlmostEqual(at[2], pts[0, 2], delta=0.05)
        self.assertLess(min(np.hypot(*(at[:2] - x)) for x in crossings), 0.1, (at, crossings))

    def test_two_points(self):
        ds = pydicom.dcmread(MIM_RT)
        c = self.roi_contour(ds, 3).ContourSequence[1]
        c.ContourData = c.ContourData[:6]
        c.NumberOfContourPoints = 2
        self.skipped_one(ds, 3, r"^ROI 3 'ROI-3': contour 2 has 2 points \(at least 3 needed "
                         r"to enclose an area\)$")

    def test_two_distinct_points(self):
        ds = pydicom.dcmread(MIM_RT)
        c = self.roi_contour(ds, 3).ContourSequence[1]
        p0, p1 = list(c.ContourData[:3]), list(c.ContourData[3:6])
        c.ContourData = p0 + p0 + p1 + p1 + p0      # repeats in a row, and the closing one
        c.NumberOfContourPoints = 5
        self.skipped_one(ds, 3, r"^ROI 3 'ROI-3': contour 2 has 2 distinct points \(at least 3 "
                         r"needed to enclose an area\) at \(-?[\d.]+, -?[\d.]+, -?[\d.]+\) mm$")

    def test_collinear_points(self):
        ds = pydicom.dcmread(MIM_RT)
        c = self.roi_contour(ds, 3).ContourSequence[1]
        pts = np.array(c.ContourData, float).reshape(-1, 3)
        # two decimals, so that the quarter points are exact decimals too
        a, b = np.round(pts[0], 2), np.round(pts[len(pts) // 2], 2)
        b[2] = a[2]
        line = [a + t * (b - a) for t in (0.0, 0.25, 1.0, 0.5)]
        c.ContourData = ["%.4f" % v for v in np.array(line).ravel()]
        c.NumberOfContourPoints = 4
        self.skipped_one(ds, 3, r"^ROI 3 'ROI-3': contour 2 encloses no area \(its 4 points lie on "
                         r"one line or retrace one path\) at \(-?[\d.]+, -?[\d.]+, -?[\d.]+\) mm$")

    def test_contour_data_value_missing(self):
        ds = pydicom.dcmread(MIM_RT)
        c = self.roi_contour(ds, 4).ContourSequence[1]
        npts = int(c.NumberOfContourPoints)
        c.ContourData = c.ContourData[:-1]
        self.refused(self.mim_ct(), self.save(ds, "odd.dcm"),
                     "ROI 4 'ROI-4': contour 2 has %d values in Contour Data, Number of Contour "
                     "Points %d needs %d" % (3 * npts - 1, npts, 3 * npts), "odd.dcm")

    def test_contour_point_count_mismatch(self):
        ds = pydicom.dcmread(MIM_RT)
        c = self.roi_contour(ds, 1).ContourSequence[0]
        npts = int(c.NumberOfContourPoints)
        c.NumberOfContourPoints = npts + 1
        self.refused(self.mim_ct(), self.save(ds, "count.dcm"),
                     "ROI 1 'ROI-1': contour 1 has %d values in Contour Data, Number of Contour "
                     "Points %d needs %d" % (3 * npts, npts + 1, 3 * npts + 3))


if __name__ == "__main__":
    unittest.main(verbosity=2)
