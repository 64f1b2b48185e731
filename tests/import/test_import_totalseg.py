"""
import.totalseg: TotalSegmentator's own example, meshed by
`recon3d-mesh CT_DIR --labels example_seg_dicom.nii.gz` (no --label-table:
TotalSegmentator's 'total' classes are the default) and checked against
the label map as this file reads it (gzip + numpy, the NIfTI-1 header
parsed here, not by nifticlib) and the STL files as a slicer reads them.

The CT (../shared/data/totalseg/example_ct_dicom: 20 slices, 512x512, JPEG
2000) had its SOP Class, SOP Instance, Study and Series Instance UIDs
emptied by de-identification. The test copies it into a temporary folder
and fills them with pydicom: SOP Class CT Image Storage, each SOP Instance
UID from its file meta (Media Storage SOP Instance UID, which is also the
file's name after "CT."), one study and one series UID derived from fixed text (so
every run makes the same ones), the file meta's implementation UID
pydicom's since pydicom wrote the file. The pixel data is copied as it is.

Checked:
- the geometry fact of ../shared/data/README.md: the map's voxel (i, j, k)
  is the CT's pixel (row 511 - j, column i) of the k-th slice by ascending
  z, with the map's affine (RAS, x and y negated into LPS) against the
  slices' own positions (pydicom);
- one model per nonzero label present in the map, and no other, each
  named by TotalSegmentator's class name for its label (class_map["total"]
  in totalsegmentator/map_to_binary.py), with the SNOMED CT codes and
  colour of its row in totalsegmentator_snomed_mapping.csv (copied below);
- laterality: every _left/_right class carries SCT 7771000 Left or
  24028007 Right as its type modifier, and each left/right pair of the map
  shares its type and differs in the side;
- each STL closed and consistently oriented when welded by position;
- Dice >= 0.97 (labels of 1,000 voxels or more) between the label's voxels
  and the voxel centres of the map's grid that lie inside its STL (the STL
  cut in each slice plane, even-odd scanlines; the grid from the map's
  affine);
- refused, with the reason: the same map against another CT (pancreas-ct-
  cb001: a grid it does not lie on; ge-head-tilt resampled: other axes).
"""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import pydicom
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, generate_uid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_import_real import closed_as_welded, plane_section, read_stl  # noqa: E402

BIN = os.environ["R3D_MESH_BIN"]
DATA = os.environ["R3D_DATA"]
TS = os.path.join(DATA, "totalseg")
CT_SRC = os.path.join(TS, "example_ct_dicom")
LABELS = os.path.join(TS, "example_seg_dicom.nii.gz")
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

LEFT, RIGHT = "7771000", "24028007"
# Label -> (class name, SNOMED type code, type modifier, DicomRGBColor), for
# the labels the example map holds: TotalSegmentator's map_to_binary.py
# class_map["total"] and resources/totalsegmentator_snomed_mapping.csv
# (github.com/wasserth/TotalSegmentator; every class here has category
# SCT 123037004 Anatomical Structure and no anatomic region).
TOTALSEG = {
    1: ("spleen", "78961009", None, (50, 170, 60)),
    5: ("liver", "10200004", None, (40, 140, 40)),
    6: ("stomach", "69695003", None, (180, 70, 160)),
    7: ("pancreas", "15776009", None, (60, 150, 80)),
    8: ("adrenal_gland_right", "23451007", RIGHT, (178, 128, 26)),
    20: ("colon", "71854001", None, (150, 40, 170)),
    32: ("vertebrae_T12", "23215003", None, (69, 44, 9)),
    33: ("vertebrae_T11", "12989004", None, (32, 7, 228)),
    52: ("aorta", "15825003", None, (216, 108, 54)),
    63: ("inferior_vena_cava", "64131007", None, (0, 70, 200)),
    64: ("portal_vein_and_splenic_vein", "110765007", None, (0, 90, 220)),
    69: ("humerus_left", "85050009", LEFT, (71, 62, 248)),
    70: ("humerus_right", "85050009", RIGHT, (115, 46, 184)),
    79: ("spinal_cord", "2748008", None, (255, 215, 0)),
    86: ("autochthon_left", "244849004", LEFT, (241, 126, 57)),
    87: ("autochthon_right", "244849004", RIGHT, (178, 94, 42)),
    97: ("rib_left_6", "59558009", LEFT, (121, 216, 54)),
    98: ("rib_left_7", "24915002", LEFT, (149, 54, 216)),
    99: ("rib_left_8", "5953002", LEFT, (216, 81, 54)),
    100: ("rib_left_9", "22565002", LEFT, (216, 54, 167)),
    101: ("rib_left_10", "77644006", LEFT, (54, 146, 216)),
    102: ("rib_left_11", "58830002", LEFT, (158, 253, 91)),
    103: ("rib_left_12", "43993008", LEFT, (216, 54, 86)),
    109: ("rib_right_6", "59558009", RIGHT, (216, 54, 189)),
    110: ("rib_right_7", "24915002", RIGHT, (216, 54, 132)),
    111: ("rib_right_8", "5953002", RIGHT, (216, 203, 54)),
    112: ("rib_right_9", "22565002", RIGHT, (216, 197, 54)),
    113: ("rib_right_10", "77644006", RIGHT, (216, 159, 54)),
    114: ("rib_right_11", "58830002", RIGHT, (54, 135, 216)),
    115: ("rib_right_12", "43993008", RIGHT, (181, 216, 54)),
    117: ("costal_cartilages", "50016007", None, (250, 220, 190)),
}

NIFTI_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4"}


def run(*args):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=600)


def read_nifti1(path):
    """A NIfTI-1 label map: (labels as an [k, j, i] array, the 4x4 affine
    voxel (i, j, k) -> LPS mm). Little-endian, sform preferred, else qform."""
    with gzip.open(path, "rb") as f:
        b = f.read()
    if struct.unpack("<i", b[:4])[0] != 348 or b[344:348] not in (b"n+1\0", b"ni1\0"):
        raise ValueError("%s: not a little-endian single-file NIfTI-1" % path)
    dim = struct.unpack("<8h", b[40:56])
    datatype = struct.unpack("<h", b[70:72])[0]
    pixdim = struct.unpack("<8f", b[76:108])
    vox_offset = int(struct.unpack("<f", b[108:112])[0])
    slope, inter = struct.unpack("<2f", b[112:120])
    qform_code, sform_code = struct.unpack("<2h", b[252:256])
    if dim[0] < 3 or any(d != 1 for d in dim[4:dim[0] + 1]):
        raise ValueError("%s: not one 3D volume (dim %s)" % (path, dim))
    nx, ny, nz = dim[1:4]
    data = np.frombuffer(b, dtype="<" + NIFTI_DTYPES[datatype], count=nx * ny * nz,
                         offset=vox_offset).reshape(nz, ny, nx)
    if slope not in (0.0, 1.0) or inter != 0.0:
        data = data * slope + inter
    ras = np.eye(4)
    if sform_code > 0:
        ras[:3] = np.array(struct.unpack("<12f", b[280:328]), float).reshape(3, 4)
    elif qform_code > 0:
        qb, qc, qd, qx, qy, qz = struct.unpack("<6f", b[256:280])
        qa = np.sqrt(max(0.0, 1.0 - (qb * qb + qc * qc + qd * qd)))
        rot = np.array([
            [qa * qa + qb * qb - qc * qc - qd * qd, 2 * (qb * qc - qa * qd), 2 * (qb * qd + qa * qc)],
            [2 * (qb * qc + qa * qd), qa * qa + qc * qc - qb * qb - qd * qd, 2 * (qc * qd - qa * qb)],
            [2 * (qb * qd - qa * qc), 2 * (qc * qd + qa * qb), qa * qa + qd * qd - qc * qc - qb * qb]])
        qfac = -1.0 if pixdim[0] < 0 else 1.0
        ras[:3, :3] = rot * np.array([pixdim[1], pixdim[2], qfac * pixdim[3]])
        ras[:3, 3] = (qx, qy, qz)
    else:
        raise ValueError("%s: neither sform nor qform" % path)
    return np.asarray(data), np.diag([-1.0, -1.0, 1.0, 1.0]) @ ras


def fill_uids(src, dst):
    """Copies the example CT into dst with its emptied UIDs filled (see the
    head of this file). Returns the (study, series) UIDs made."""
    study = generate_uid(entropy_srcs=["recon3d import.totalseg example_ct_dicom study"])
    series = generate_uid(entropy_srcs=["recon3d import.totalseg example_ct_dicom series"])
    seen = set()
    for name in sorted(os.listdir(src)):
        ds = pydicom.dcmread(os.path.join(src, name))
        meta = ds.file_meta
        uid = str(meta.MediaStorageSOPInstanceUID)
        # The emptied attributes and nothing else: refuse to guess otherwise.
        for kw in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
            if str(ds.get(kw, "")) != "":
                raise ValueError("%s: %s is not empty" % (name, kw))
        if meta.MediaStorageSOPClassUID != CT_IMAGE_STORAGE or ds.Modality != "CT":
            raise ValueError("%s: not a CT image (%s)" % (name, meta.MediaStorageSOPClassUID))
        if not pydicom.uid.UID(uid).is_valid or uid in seen or name != "CT." + uid:
            raise ValueError("%s: Media Storage SOP Instance UID %r invalid, repeated or "
                             "not the file's name" % (name, uid))
        seen.add(uid)
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = uid
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = "PYDICOM " + pydicom.__version__
        ds.save_as(os.path.join(dst, name + ".dcm"), write_like_original=False)
    return study, series


def inside_mesh_grid(verts, faces, affine, shape):
    """Which voxel centres of the grid (shape [k, j, i], affine voxel ->
    LPS mm) lie inside the closed mesh: per slice k the mesh is cut by the
    slice's plane (1 um off it, where vertices lie) and each row j of
    centres is filled between the section's crossings, even-odd."""
    nz, ny, nx = shape
    iax, jax, kax = affine[:3, 0], affine[:3, 1], affine[:3, 2]
    di, dj = np.linalg.norm(iax), np.linalg.norm(jax)
    u, v = iax / di, jax / dj
    n = np.cross(u, v)
    if np.dot(n, kax) < 0:
        n = -n
    out = np.zeros(shape, bool)
    xs = np.arange(nx) * di + 1.3e-4 * di      # centres off the section's vertices
    for k in range(nz):
        origin = affine[:3, 3] + k * kax
        with np.errstate(invalid="ignore"):    # 0/0 on edges in no crossing, unused
            segs = plane_section(verts, faces, origin + 1e-3 * n, n, u, v)
        if len(segs) == 0:
            continue
        y1, y2 = segs[:, 1], segs[:, 3]
        lo, hi = np.minimum(y1, y2), np.maximum(y1, y2)
        off = 2.9e-4 * dj
        # the rows j whose y = j * dj + off satisfies lo <= y < hi, as (y1 > y) != (y2 > y)
        j0 = np.ceil((lo - off) / dj).astype(np.int64)
        j1 = np.ceil((hi - off) / dj).astype(np.int64)
        j0, j1 = np.clip(j0, 0, ny), np.clip(j1, 0, ny)
        cnt = np.maximum(j1 - j0, 0)
        if cnt.sum() == 0:
            continue
        seg_of = np.repeat(np.arange(len(segs)), cnt)
        row = np.repeat(j0, cnt) + (np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt))
        y = row * dj + off
        s = segs[seg_of]
        xc = s[:, 0] + (y - s[:, 1]) * (s[:, 2] - s[:, 0]) / (s[:, 3] - s[:, 1])
        order = np.lexsort((xc, row))
        row, xc = row[order], xc[order]
        # per row: the crossings left of each centre, counted by searchsorted
        starts = np.searchsorted(row, np.arange(ny), side="left")
        ends = np.searchsorted(row, np.arange(ny), side="right")
        for j in np.nonzero(ends > starts)[0]:
            c = np.searchsorted(xc[starts[j]:ends[j]], xs, side="left")
            out[k, j] = (c % 2) == 1
    return out


class TotalSegExample(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="r3d-import-ts-")
        cls.ct = os.path.join(cls.tmp, "ct")
        os.mkdir(cls.ct)
        cls.study, cls.series = fill_uids(CT_SRC, cls.ct)
        cls.labels, cls.affine = read_nifti1(LABELS)
        cls.out = os.path.join(cls.tmp, "out")
        cls.result = run(cls.ct, "-o", cls.out, "--labels", LABELS, "--threads", "2")
        cls.rep = None
        if cls.result.returncode == 0:
            with open(os.path.join(cls.out, "report.json")) as f:
                cls.rep = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, True)

    def setUp(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)

    def by_label(self):
        return {s["label"]: s for s in self.rep["structures"]}

    def test_filled_series(self):
        files = sorted(os.listdir(self.ct))
        self.assertEqual(len(files), 20)
        for name in files:
            ds = pydicom.dcmread(os.path.join(self.ct, name), stop_before_pixels=True)
            self.assertEqual(ds.SOPClassUID, CT_IMAGE_STORAGE)
            self.assertEqual(ds.file_meta.MediaStorageSOPClassUID, ds.SOPClassUID)
            self.assertEqual(ds.file_meta.MediaStorageSOPInstanceUID, ds.SOPInstanceUID)
            self.assertEqual(name, "CT." + ds.SOPInstanceUID + ".dcm")
            self.assertEqual(ds.file_meta.TransferSyntaxUID, "1.2.840.10008.1.2.4.90")
            self.assertEqual((ds.StudyInstanceUID, ds.SeriesInstanceUID), (self.study, self.series))
        self.assertEqual(self.rep["series_instance_uid"], self.series)
        self.assertEqual(self.rep["study_instance_uid"], self.study)
        self.assertEqual(self.rep["volume"]["dims"], [512, 512, 20])

    def test_readme_alignment(self):
        """Voxel (i, j, k) of the map lies on pixel (row 511 - j, column i) of
        the k-th CT slice by ascending z, through the map's affine."""
        slices = [pydicom.dcmread(os.path.join(self.ct, f), stop_before_pixels=True)
                  for f in os.listdir(self.ct)]
        slices.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
        nz, ny, nx = self.labels.shape
        self.assertEqual((nz, ny, nx), (len(slices), slices[0].Rows, slices[0].Columns))
        for k in (0, nz // 2, nz - 1):
            ds = slices[k]
            ipp = np.array(ds.ImagePositionPatient, float)
            iop = np.array(ds.ImageOrientationPatient, float)
            ps = np.array(ds.PixelSpacing, float)
            for i, j in ((0, 0), (nx - 1, 0), (0, ny - 1), (nx - 1, ny - 1), (100, 300)):
                r, c = ny - 1 - j, i
                ct_lps = ipp + c * ps[1] * iop[:3] + r * ps[0] * iop[3:]
                map_lps = (self.affine @ np.array([i, j, k, 1.0]))[:3]
                self.assertLess(np.abs(ct_lps - map_lps).max(), 1e-3,
                                "voxel %d %d %d: map %s, CT %s" % (i, j, k, map_lps, ct_lps))

    def test_one_model_per_label(self):
        present = sorted(int(x) for x in np.unique(self.labels) if x != 0)
        self.assertEqual(sorted(TOTALSEG), present, "the example map's labels changed")
        got = self.by_label()
        self.assertEqual(sorted(got), sorted(TOTALSEG[x][0] for x in present))
        for label in present:
            name, type_code, modifier, rgb = TOTALSEG[label]
            s = got[name]
            self.assertNotIn("skipped_reason", s, s)
            self.assertEqual(s["source"], "mask")
            codes = s["codes"]
            self.assertEqual((codes["category"]["value"], codes["category"]["scheme"]),
                             ("123037004", "SCT"), name)
            self.assertEqual((codes["type"]["value"], codes["type"]["scheme"]), (type_code, "SCT"),
                             name)
            self.assertIsNone(codes["anatomic_region"], name)
            self.assertTrue(np.allclose(s["color_rgb"], np.array(rgb) / 255.0, atol=0.003),
                            "%s: colour %s, TotalSegmentator's %s" % (name, s["color_rgb"], rgb))
            if modifier is None:
                self.assertIsNone(codes["type_modifier"], name)
            else:
                self.assertEqual(codes["type_modifier"]["value"], modifier, name)

    def test_laterality(self):
        got = self.by_label()
        pairs = 0
        for name, s in got.items():
            side = "_left" in name and LEFT or "_right" in name and RIGHT or None
            mod = s["codes"]["type_modifier"]
            if side is None:
                self.assertIsNone(mod, name)
                continue
            self.assertEqual(mod["value"], side, name)
            self.assertEqual(mod["meaning"], "Left" if side == LEFT else "Right", name)
            if side == LEFT and name.replace("_left", "_right") in got:
                other = got[name.replace("_left", "_right")]
                self.assertEqual(other["codes"]["type"], s["codes"]["type"], name)
                self.assertNotEqual(other["codes"]["type_modifier"], mod, name)
                # and the sides are where the names say: left is +x in LPS
                self.assertGreater(s["centroid_lps_mm"][0], other["centroid_lps_mm"][0], name)
                pairs += 1
        self.assertGreaterEqual(pairs, 9)   # humerus, autochthon, ribs 6..12

    def test_closed_and_dice(self):
        got = self.by_label()
        checked = 0
        worst = (2.0, "")
        for label, (name, _, _, _) in sorted(TOTALSEG.items()):
            s = got[name]
            verts, faces = read_stl(os.path.join(self.out, s["file"]))
            self.assertTrue(closed_as_welded(verts, faces), "%s is not closed" % name)
            self.assertTrue(s["watertight"], name)
            truth = self.labels == label
            inside = inside_mesh_grid(verts, faces, self.affine, self.labels.shape)
            dice = 2.0 * (inside & truth).sum() / max(1, inside.sum() + truth.sum())
            print("%-30s %7d voxels, Dice %.4f" % (name, truth.sum(), dice))
            if truth.sum() >= 1000:
                self.assertGreaterEqual(dice, 0.97, name)
                checked += 1
                worst = min(worst, (dice, name))
        print("%d labels of >= 1000 voxels, lowest Dice %.4f (%s)" % (checked, worst[0], worst[1]))
        self.assertGreaterEqual(checked, 25)


class Refused(unittest.TestCase):
    def refused(self, ct, *extra):
        out = tempfile.mkdtemp(prefix="r3d-import-ts-")
        self.addCleanup(shutil.rmtree, out, True)
        r = run(ct, "-o", out, "--labels", LABELS, "--threads", "2", *extra)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "report.json")))
        return r.stderr

    def test_map_on_another_grid(self):
        err = self.refused(os.path.join(DATA, "ct", "pancreas-ct-cb001"))
        self.assertRegex(err, r"the label map does not lie on the CT series: its voxels span "
                              r"-?[0-9.]+\.\.-?[0-9.]+ along the CT's (row|column|slice) axis, "
                              r"which has [0-9]+ voxels")
        self.assertEqual(err.count("\n"), 1, err)   # one line

    def test_map_on_other_axes(self):
        # ge-head-tilt, resampled across its gaps: tilted axes, not the map's
        err = self.refused(os.path.join(DATA, "ct", "ge-head-tilt"), "--interpolate-gaps")
        self.assertIn("the label map's axes are not the CT series'", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
