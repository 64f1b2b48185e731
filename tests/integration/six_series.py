#!/usr/bin/python3
"""
six_series: a real CT study as scanners send it (issue 12), made from
../shared/data/ct/pancreas-ct-cb001 with pydicom. Every series shares the
pancreas study (Study Instance UID, Frame of Reference):

  thin      the pancreas series itself, unchanged (3 mm, Philips kernel B)
  thick     a 5 mm reconstruction of it (slabs averaged), kernel B
  localizer one coronal LOCALIZER image
  bone      a copy of the thin series with a sharp kernel (Philips D), sharpened
  sc        three Secondary Capture images, Image Type DERIVED\\SECONDARY
  dose      an X-Ray Radiation Dose SR (modality SR), as a dose report

Usage: six_series.py OUT_DIR [--only thin,thick,...]  (one folder per series)
"""
import copy
import os
import shutil
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

DATA = os.environ.get("R3D_DATA") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "..", "..", "..", "shared", "data")
PANCREAS = os.path.join(DATA, "ct", "pancreas-ct-cb001")
SERIES = ("thin", "thick", "localizer", "bone", "sc", "dose")
SC_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"
DOSE_SR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.67"


def pancreas_slices():
    """The pancreas series sorted head to feet: (path, dataset) pairs."""
    files = sorted(os.path.join(PANCREAS, f) for f in os.listdir(PANCREAS) if f.endswith(".dcm"))
    ds = [(f, pydicom.dcmread(f)) for f in files]
    ds.sort(key=lambda p: -float(p[1].ImagePositionPatient[2]))
    return ds


def _save(ds, folder, name):
    os.makedirs(folder, exist_ok=True)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = "1.2.826.0.1.3680043.10.1079.1"
    ds.is_implicit_VR = False
    ds.is_little_endian = True
    path = os.path.join(folder, name)
    ds.save_as(path, write_like_original=False)
    return path


def _derived(src, series_uid, number, description, instance):
    """A copy of one slice's header in a new series, with a new SOP Instance UID."""
    ds = copy.deepcopy(src)
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.SeriesDescription = description
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = instance
    return ds


def _pixels(ds):
    return ds.pixel_array.astype(np.float64)


def _store(ds, arr):
    ds.PixelData = np.clip(np.rint(arr), 0, 65535).astype(np.uint16).tobytes()


def make_thin(out, slices):
    folder = os.path.join(out, "thin")
    os.makedirs(folder, exist_ok=True)
    for path, _ in slices:
        shutil.copy(path, folder)
    return folder


def make_thick(out, slices, thickness=5.0):
    """Slabs of thickness mm, every thickness mm: the mean of the 3 mm slices
    whose centres fall in each slab."""
    folder = os.path.join(out, "thick")
    uid = generate_uid()
    z = np.array([float(d.ImagePositionPatient[2]) for _, d in slices])
    vol = np.stack([_pixels(d) for _, d in slices])
    top, bottom = z.max(), z.min()
    n = 0
    centre = top - thickness / 2
    while centre - thickness / 2 >= bottom - 1.5:
        inside = np.abs(z - centre) <= thickness / 2
        if not inside.any():
            break
        n += 1
        src = slices[int(np.argmin(np.abs(z - centre)))][1]
        ds = _derived(src, uid, 202, "PANCREAS 5mm", n)
        pos = list(src.ImagePositionPatient)
        pos[2] = round(centre, 3)
        ds.ImagePositionPatient = pos
        ds.SliceLocation = round(centre, 3)
        ds.SliceThickness = thickness
        _store(ds, vol[inside].mean(axis=0))
        _save(ds, folder, "%03d.dcm" % n)
        centre -= thickness
    return folder


def make_bone(out, slices):
    """The thin series again, reconstructed with a sharp (bone) kernel: the
    same geometry, edges enhanced (unsharp mask), kernel D."""
    folder = os.path.join(out, "bone")
    uid = generate_uid()
    for i, (_, src) in enumerate(slices):
        ds = _derived(src, uid, 203, "PANCREAS BONE", i + 1)
        ds.ConvolutionKernel = "D"
        a = _pixels(src)
        blur = (a + np.roll(a, 1, 0) + np.roll(a, -1, 0) + np.roll(a, 1, 1) + np.roll(a, -1, 1)) / 5
        _store(ds, a + 0.8 * (a - blur))
        _save(ds, folder, "%03d.dcm" % (i + 1))
    return folder


def make_localizer(out, slices):
    """One coronal projection image through the volume, Image Type LOCALIZER."""
    folder = os.path.join(out, "localizer")
    src = slices[0][1]
    ds = _derived(src, generate_uid(), 1, "Surview", 1)
    vol = np.stack([_pixels(d) for _, d in slices])          # z, y, x
    proj = vol.mean(axis=1)                                  # z, x
    rows = np.linspace(0, proj.shape[0] - 1, 512).round().astype(int)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.ImagePositionPatient = [float(src.ImagePositionPatient[0]), 0.0, float(src.ImagePositionPatient[2])]
    ds.Rows, ds.Columns = 512, proj.shape[1]
    ds.PixelSpacing = [0.8, float(src.PixelSpacing[1])]
    _store(ds, proj[rows])
    _save(ds, folder, "001.dcm")
    return folder


def make_sc(out, slices):
    """Three key images as Secondary Capture, DERIVED\\SECONDARY."""
    folder = os.path.join(out, "sc")
    uid = generate_uid()
    for k, i in enumerate((40, 60, 80)):
        src = slices[i][1]
        ds = _derived(src, uid, 300, "Key images", k + 1)
        ds.SOPClassUID = SC_SOP_CLASS
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.ConversionType = "WSD"
        _save(ds, folder, "%03d.dcm" % (k + 1))
    return folder


def make_dose(out, slices):
    """An X-Ray Radiation Dose SR with a title and one value, as CT
    scanners send their dose report."""
    folder = os.path.join(out, "dose")
    src = slices[0][1]
    ds = Dataset()
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
               "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName",
               "StudyDescription", "Manufacturer"):
        if kw in src:
            setattr(ds, kw, getattr(src, kw))
    ds.SOPClassUID = DOSE_SR_SOP_CLASS
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "SR"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 999
    ds.SeriesDescription = "Dose Report"
    ds.InstanceNumber = 1
    ds.ValueType = "CONTAINER"
    title = Dataset()
    title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning = "113701", "DCM", "X-Ray Radiation Dose Report"
    ds.ConceptNameCodeSequence = Sequence([title])
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    name = Dataset()
    name.CodeValue, name.CodingSchemeDesignator, name.CodeMeaning = "121106", "DCM", "Comment"
    item.ConceptNameCodeSequence = Sequence([name])
    item.TextValue = "CTDIvol 12.3 mGy"
    ds.ContentSequence = Sequence([item])
    _save(ds, folder, "001.dcm")
    return folder


MAKERS = {"thin": make_thin, "thick": make_thick, "localizer": make_localizer, "bone": make_bone,
          "sc": make_sc, "dose": make_dose}


def make(out, only=SERIES):
    """Writes the series named in only under out/<name>/; returns {name: folder}."""
    slices = pancreas_slices()
    return {name: MAKERS[name](out, slices) for name in only}


def series_uid(folder):
    f = sorted(os.listdir(folder))[0]
    return str(pydicom.dcmread(os.path.join(folder, f), stop_before_pixels=True).SeriesInstanceUID)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    only = SERIES
    if len(sys.argv) == 4 and sys.argv[2] == "--only":
        only = tuple(sys.argv[3].split(","))
    for name, folder in make(sys.argv[1], only).items():
        print(name, folder, series_uid(folder))
