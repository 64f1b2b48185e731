#!/usr/bin/python3
"""
A small segmentation engine for the tests, run by recon3d as an [engine]
command:  engine_phantom.py MODE INPUT_DIR OUTPUT_DIR [LOG]

MODE
  labels   reads the CT slices of INPUT_DIR (pydicom), labels the phantom's
           bone_sphere (1000 HU: the voxels above 520 HU joined to the
           brightest one) as 1, and writes
           OUTPUT_DIR/labels.nii: a NIfTI-1 label map whose affine is the
           series' own geometry in RAS (written here by hand from the DICOM
           attributes, independently of recon3d). With LOG, appends
           "start end" (wall clock) to it and takes one second, so that a
           test can see how many runs overlapped.
  labels-nifti
           the same from INPUT, the series' volume as a NIfTI file (read
           here by hand), the label map on its grid and affine.
  slabs    from the NIfTI INPUT too: 70 labels, the body's soft tissue cut
           into 70 slabs along the columns (more segments than a preset set).
  sleep    sleeps for a minute (a time limit must end it), after starting a
           child process that sleeps too (the whole process group must go).
  fail     writes two lines to stderr and exits with status 3.
  nothing  exits 0 and writes nothing.
  crash    writes a line to stderr and dies of SIGSEGV.
"""
import glob
import os
import signal
import struct
import subprocess
import sys
import time


def write_nifti(path, labels, affine):
    """labels: uint8 array (k, j, i); affine: 4x4 voxel (i, j, k) -> RAS mm."""
    import numpy as np
    nk, nj, ni = labels.shape
    hdr = bytearray(352)
    struct.pack_into("<i", hdr, 0, 348)
    struct.pack_into("<8h", hdr, 40, 3, ni, nj, nk, 1, 1, 1, 1)
    struct.pack_into("<hh", hdr, 70, 2, 8)                  # datatype uint8, bitpix
    sx = np.linalg.norm(affine[:3, 0])
    sy = np.linalg.norm(affine[:3, 1])
    sz = np.linalg.norm(affine[:3, 2])
    struct.pack_into("<8f", hdr, 76, 1.0, sx, sy, sz, 0, 0, 0, 0)
    struct.pack_into("<f", hdr, 108, 352.0)                 # vox_offset
    struct.pack_into("<ff", hdr, 112, 1.0, 0.0)             # scl_slope, scl_inter
    struct.pack_into("<hh", hdr, 252, 0, 1)                 # qform_code, sform_code
    for r in range(3):
        struct.pack_into("<4f", hdr, 280 + 16 * r, *[float(v) for v in affine[r]])
    hdr[344:348] = b"n+1\0"
    with open(path, "wb") as f:
        f.write(bytes(hdr))
        f.write(np.ascontiguousarray(labels, dtype=np.uint8).tobytes())


def read_nifti(path):
    """A NIfTI-1 file read by hand: (voxels (k, j, i), sform 4x4)."""
    import numpy as np
    with open(path, "rb") as f:
        b = f.read()
    assert struct.unpack_from("<i", b, 0)[0] == 348 and b[344:347] == b"n+1", "not NIfTI-1"
    dim = struct.unpack_from("<8h", b, 40)
    datatype = struct.unpack_from("<h", b, 70)[0]
    assert datatype == 4, "datatype %d, not int16" % datatype
    offset = int(struct.unpack_from("<f", b, 108)[0])
    slope, inter = struct.unpack_from("<ff", b, 112)
    assert struct.unpack_from("<h", b, 254)[0] > 0, "no sform"
    affine = np.eye(4)
    for r in range(3):
        affine[r] = struct.unpack_from("<4f", b, 280 + 16 * r)
    ni, nj, nk = dim[1:4]
    vox = np.frombuffer(b, dtype="<i2", count=ni * nj * nk, offset=offset).reshape(nk, nj, ni)
    return vox.astype(np.float64) * (slope or 1.0) + inter, affine


def brightest(vol):
    """The voxels above 520 HU joined to the brightest one (the phantom's
    1000 HU sphere in 40 HU: the mask's edge is where the object's is)."""
    import numpy as np
    inside = vol >= 520
    labels = np.zeros(vol.shape, np.uint8)
    todo = [tuple(int(x) for x in np.unravel_index(np.argmax(vol), vol.shape))]
    while todo:
        p = todo.pop()
        if labels[p] or not inside[p]:
            continue
        labels[p] = 1
        for ax in range(3):
            for step in (-1, 1):
                q = list(p)
                q[ax] += step
                if 0 <= q[ax] < vol.shape[ax]:
                    todo.append(tuple(q))
    return labels


def labels_mode(inp, out, log):
    import numpy as np
    import pydicom
    t0 = time.time()
    slices = [pydicom.dcmread(p) for p in glob.glob(os.path.join(inp, "**", "*"), recursive=True)
              if os.path.isfile(p)]
    slices = [s for s in slices if "ImagePositionPatient" in s]
    row = np.array([float(v) for v in slices[0].ImageOrientationPatient[:3]])
    col = np.array([float(v) for v in slices[0].ImageOrientationPatient[3:]])
    normal = np.cross(row, col)
    slices.sort(key=lambda s: float(np.dot(normal, [float(v) for v in s.ImagePositionPatient])))
    vol = np.stack([s.pixel_array * float(s.RescaleSlope) + float(s.RescaleIntercept)
                    for s in slices])
    labels = brightest(vol)                                # (k, row j, column i)
    dr, dc = (float(v) for v in slices[0].PixelSpacing)     # between rows, between columns
    p0 = np.array([float(v) for v in slices[0].ImagePositionPatient])
    p1 = np.array([float(v) for v in slices[1].ImagePositionPatient])
    lps = np.eye(4)
    lps[:3, 0] = row * dc
    lps[:3, 1] = col * dr
    lps[:3, 2] = p1 - p0
    lps[:3, 3] = p0
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps         # LPS -> RAS
    write_nifti(os.path.join(out, "labels.nii"), labels, affine)
    if log:
        time.sleep(max(0.0, 1.0 - (time.time() - t0)))
        with open(log, "a") as f:
            f.write("%.3f %.3f\n" % (t0, time.time()))


def main():
    mode, inp, out = sys.argv[1:4]
    log = sys.argv[4] if len(sys.argv) > 4 else None
    if mode == "labels":
        labels_mode(inp, out, log)
    elif mode == "slabs":
        # 70 labels: the body (0..100 HU) cut into 70 slabs along the columns.
        import numpy as np
        vol, affine = read_nifti(inp)
        soft = (vol >= 0) & (vol <= 100)
        used = np.nonzero(soft.any(axis=(0, 1)))[0]
        lo, width = used.min(), used.max() - used.min() + 1
        cols = np.broadcast_to((np.arange(vol.shape[2]) - lo) * 70 // width + 1, vol.shape)
        labels = np.where(soft, cols, 0).astype(np.uint8)
        write_nifti(os.path.join(out, "labels.nii"), labels, affine)
    elif mode == "labels-nifti":
        vol, affine = read_nifti(inp)
        write_nifti(os.path.join(out, "labels.nii"), brightest(vol), affine)
    elif mode == "sleep":
        child = subprocess.Popen(["sleep", "61"])
        if log:
            with open(log, "w") as f:
                f.write("%d\n" % child.pid)
        time.sleep(60)
    elif mode == "fail":
        sys.stderr.write("loading the model\nmodel weights not found: /opt/models/kidney.pt\n")
        sys.exit(3)
    elif mode == "nothing":
        pass
    elif mode == "crash":
        sys.stderr.write("segmenting\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
