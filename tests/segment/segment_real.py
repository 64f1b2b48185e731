#!/usr/bin/python3
"""segment_real.py: the segment presets on real CT, checked against truth that
does not come from our code.

  segment_real.py totalseg SEGMENT_RAW DATA_DIR WORK_DIR
      example_ct.nii.gz (3 mm, plain CT) against TotalSegmentator's label map
      example_seg_fast_force_split.nii.gz (same 112-slice grid), and
      example_ct_sm.nii.gz against example_seg.nii.gz (30 slices): bone
      covers >= 90 % of the vertebrae (labels 26-50) and <= 5 % of the aorta
      (52); lungs (10-14) Dice >= 0.90; the skin holds >= 99 % of every
      labelled voxel; vessels are skipped as not contrast-enhanced.
  segment_real.py totalseg_dicom SEGMENT_RAW DATA_DIR WORK_DIR SEGMENT_J2K
      The issue's own check on example_ct_dicom (20 slices, JPEG 2000
      lossless, decoded by segment_j2k) against example_seg_dicom.nii.gz,
      aligned as data/README.md says: bone covers >= 90 % of the vertebrae
      and <= 5 % of the aorta.
  segment_real.py pancreas SEGMENT_RAW DICOM_DIR WORK_DIR
      pancreas-ct-cb001 (contrast, CT table in view): all four structures
      are produced, contrast is detected, and no mask reaches the table
      (rows y >= 395, which hold only the couch in every slice: checked here
      from the raw HU too).

Reads NIfTI-1 and this one Implicit VR Little Endian series with the standard
library and numpy only (Debian's /usr/bin/python3). Exit 77 when the data is
missing (ctest SKIP_RETURN_CODE).
"""
import gzip
import os
import struct
import subprocess
import sys

import numpy as np

SKIP = 77
VERTEBRAE = range(26, 51)      # TotalSegmentator v2: vertebrae_S1 .. vertebrae_C1
AORTA = 52
LUNG_LOBES = range(10, 15)     # lung_upper_lobe_left .. lung_lower_lobe_right
TABLE_ROW = 395                # pancreas-ct-cb001: first row below every body voxel


def nifti_load(path):
    """NIfTI-1 (348-byte header): array indexed [z, y, x] (x fastest) and pixdim."""
    b = gzip.open(path).read()
    if struct.unpack_from('<i', b, 0)[0] != 348:
        raise ValueError(f'{path}: not little-endian NIfTI-1')
    dim = struct.unpack_from('<8h', b, 40)
    dtype = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 512: np.uint16}[
        struct.unpack_from('<h', b, 70)[0]]
    pixdim = struct.unpack_from('<8f', b, 76)
    offset = int(struct.unpack_from('<f', b, 108)[0])
    slope, inter = struct.unpack_from('<2f', b, 112)
    n = dim[1] * dim[2] * dim[3]
    a = np.frombuffer(b, dtype, n, offset).reshape(dim[3], dim[2], dim[1])
    if slope not in (0.0, 1.0) or inter != 0.0:
        a = a * slope + inter
    return a, pixdim[1:4]


def dicom_skip_undefined(b, off, end):
    while True:
        g, e = struct.unpack_from('<HH', b, off)
        ln = struct.unpack_from('<I', b, off + 4)[0]
        off += 8
        if (g, e) == end:
            return off
        if ln == 0xFFFFFFFF:
            item = (g, e) == (0xFFFE, 0xE000)
            off = dicom_skip_undefined(b, off, (0xFFFE, 0xE00D) if item else (0xFFFE, 0xE0DD))
        else:
            off += ln


def dicom_read(path):
    """Elements of a Part-10 file whose data set is Implicit VR Little Endian."""
    b = open(path, 'rb').read()
    off = 132 if b[128:132] == b'DICM' else 0
    tags = {}
    while off < len(b):
        g, e = struct.unpack_from('<HH', b, off)
        if g == 2:   # file meta: explicit VR
            vr = b[off + 4:off + 6]
            if vr in (b'OB', b'OW', b'UN', b'SQ', b'UT', b'OF'):
                ln, voff = struct.unpack_from('<I', b, off + 8)[0], off + 12
            else:
                ln, voff = struct.unpack_from('<H', b, off + 6)[0], off + 8
        else:
            ln, voff = struct.unpack_from('<I', b, off + 4)[0], off + 8
        if ln == 0xFFFFFFFF:
            off = dicom_skip_undefined(b, voff, (0xFFFE, 0xE0DD))
            continue
        tags[(g, e)] = b[voff:voff + ln]
        if (g, e) == (0x7FE0, 0x0010):
            break
        off = voff + ln
    return tags


def dicom_series(folder):
    """HU volume [z, y, x] sorted by z position, and spacing (x, y, z) in mm."""
    def text(t, k):
        return t[k].decode().strip('\0 ')
    slices = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith('.dcm'):
            continue
        t = dicom_read(os.path.join(folder, name))
        ipp = [float(x) for x in text(t, (0x20, 0x32)).split('\\')]
        ps = [float(x) for x in text(t, (0x28, 0x30)).split('\\')]
        rows, cols = struct.unpack('<H', t[(0x28, 0x10)])[0], struct.unpack('<H', t[(0x28, 0x11)])[0]
        signed = struct.unpack('<H', t[(0x28, 0x103)])[0]
        slope, inter = float(text(t, (0x28, 0x1053))), float(text(t, (0x28, 0x1052)))
        px = np.frombuffer(t[(0x7FE0, 0x10)], np.int16 if signed else np.uint16, rows * cols)
        slices.append((ipp[2], px.reshape(rows, cols).astype(np.float32) * slope + inter, ps))
    slices.sort(key=lambda s: s[0])
    vol = np.stack([s[1] for s in slices]).round().clip(-32768, 32767).astype(np.int16)
    dz = float(np.median(np.diff([s[0] for s in slices])))
    return vol, (slices[0][2][1], slices[0][2][0], dz)


LONG_VR = (b'OB', b'OW', b'OF', b'OD', b'OL', b'OV', b'SQ', b'UT', b'UN', b'UC', b'UR', b'SV', b'UV')


def dicom_explicit_items(b, off, end):
    """Skips explicit-VR LE elements and items up to the delimiter end."""
    while True:
        g, e = struct.unpack_from('<HH', b, off)
        if g == 0xFFFE:
            ln = struct.unpack_from('<I', b, off + 4)[0]
            off += 8
            if (g, e) == end:
                return off
            if ln == 0xFFFFFFFF:
                off = dicom_explicit_items(b, off, (0xFFFE, 0xE00D))
            else:
                off += ln
            continue
        vr = b[off + 4:off + 6]
        if vr in LONG_VR:
            ln, off = struct.unpack_from('<I', b, off + 8)[0], off + 12
        else:
            ln, off = struct.unpack_from('<H', b, off + 6)[0], off + 8
        if ln == 0xFFFFFFFF:
            off = dicom_explicit_items(b, off, (0xFFFE, 0xE0DD))
        else:
            off += ln


def dicom_read_explicit(path):
    """Top-level elements of an Explicit VR Little Endian file; encapsulated
    pixel data comes back as the list of its fragments (offset table dropped)."""
    b = open(path, 'rb').read()
    off = 132 if b[128:132] == b'DICM' else 0
    tags = {}
    while off < len(b):
        g, e = struct.unpack_from('<HH', b, off)
        vr = b[off + 4:off + 6]
        if vr in LONG_VR:
            ln, voff = struct.unpack_from('<I', b, off + 8)[0], off + 12
        else:
            ln, voff = struct.unpack_from('<H', b, off + 6)[0], off + 8
        if (g, e) == (0x7FE0, 0x0010) and ln == 0xFFFFFFFF:
            frags, p = [], voff
            while True:
                tg = struct.unpack_from('<HH', b, p)
                fl = struct.unpack_from('<I', b, p + 4)[0]
                p += 8
                if tg == (0xFFFE, 0xE0DD):
                    break
                frags.append(b[p:p + fl])
                p += fl
            tags[(g, e)] = frags[1:]
            break
        if ln == 0xFFFFFFFF:
            off = dicom_explicit_items(b, voff, (0xFFFE, 0xE0DD))
            continue
        tags[(g, e)] = b[voff:voff + ln]
        off = voff + ln
    return tags


def dicom_series_j2k(folder, j2k_tool, work):
    """example_ct_dicom: HU [z, y, x] sorted by ascending z, spacing (x, y, z)."""
    def text(t, k):
        return t[k].decode().strip('\0 ')
    slices = []
    os.makedirs(work, exist_ok=True)
    for name in sorted(os.listdir(folder)):
        t = dicom_read_explicit(os.path.join(folder, name))
        ipp = [float(x) for x in text(t, (0x20, 0x32)).split('\\')]
        ps = [float(x) for x in text(t, (0x28, 0x30)).split('\\')]
        rows, cols = struct.unpack('<H', t[(0x28, 0x10)])[0], struct.unpack('<H', t[(0x28, 0x11)])[0]
        signed = struct.unpack('<H', t[(0x28, 0x103)])[0]
        slope, inter = float(text(t, (0x28, 0x1053))), float(text(t, (0x28, 0x1052)))
        j2k, raw = os.path.join(work, 'f.j2k'), os.path.join(work, 'f.raw')
        with open(j2k, 'wb') as f:
            f.write(b''.join(t[(0x7FE0, 0x10)]))
        out = subprocess.run([j2k_tool, j2k, raw], capture_output=True, text=True, check=True).stdout.split()
        if (int(out[0]), int(out[1])) != (cols, rows):
            raise SystemExit(f'{name}: decoded {out[0]}x{out[1]}, header says {cols}x{rows}')
        px = np.fromfile(raw, np.int16 if signed else np.uint16).reshape(rows, cols)
        os.remove(j2k)
        os.remove(raw)
        slices.append((ipp[2], px.astype(np.float32) * slope + inter, ps))
    slices.sort(key=lambda s: s[0])
    vol = np.stack([s[1] for s in slices]).round().clip(-32768, 32767).astype(np.int16)
    dz = float(np.median(np.diff([s[0] for s in slices])))
    return vol, (slices[0][2][1], slices[0][2][0], dz)


def run_presets(tool, hu, spacing, work, name):
    os.makedirs(work, exist_ok=True)
    raw = os.path.join(work, name + '.raw')
    np.ascontiguousarray(hu, dtype='<i2').tofile(raw)
    prefix = os.path.join(work, name)
    for s in ('skin', 'bone', 'lungs', 'vessels'):
        if os.path.exists(f'{prefix}_{s}.u8'):
            os.remove(f'{prefix}_{s}.u8')
    nz, ny, nx = hu.shape
    cmd = [tool, raw, str(nx), str(ny), str(nz)] + ['%.6f' % s for s in spacing] + [prefix]
    out = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(out.stdout)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f'{tool} failed with {out.returncode}')
    masks, skipped = {}, {}
    for line in out.stdout.splitlines():
        w = line.split()
        if w[:1] == ['structure'] and w[2] == 'skipped':
            skipped[w[1]] = ' '.join(w[3:])
    for s in ('skin', 'bone', 'lungs', 'vessels'):
        path = f'{prefix}_{s}.u8'
        if os.path.exists(path):
            masks[s] = np.fromfile(path, np.uint8).reshape(hu.shape).astype(bool)
    os.remove(raw)
    return masks, skipped, out.stdout


failures = []


def check(cond, what):
    print(('ok   ' if cond else 'FAIL ') + what)
    if not cond:
        failures.append(what)


def dice(a, b):
    return 2.0 * (a & b).sum() / max(1, a.sum() + b.sum())


def totalseg_one(tool, ct_path, seg_path, work, name):
    print(f'-- {os.path.basename(ct_path)} against {os.path.basename(seg_path)}')
    ct, spacing = nifti_load(ct_path)
    seg, _ = nifti_load(seg_path)
    check(ct.shape == seg.shape, f'label map on the CT grid {ct.shape}')
    hu = np.clip(ct, -32768, 32767).astype(np.int16)
    masks, skipped, _ = run_presets(tool, hu, spacing, work, name)
    for s in ('skin', 'bone', 'lungs'):
        check(s in masks, f'{s} produced')
    if any(s not in masks for s in ('skin', 'bone', 'lungs')):
        return
    bone, lungs, skin = masks['bone'], masks['lungs'], masks['skin']
    vert = np.isin(seg, list(VERTEBRAE))
    aorta = seg == AORTA
    lung_ref = np.isin(seg, list(LUNG_LOBES))
    check(vert.sum() > 1000 and aorta.sum() > 500, 'reference has vertebrae and aorta')
    cov = (bone & vert).sum() / vert.sum()
    check(cov >= 0.90, f'bone covers {100 * cov:.1f} % of the vertebrae (>= 90 %)')
    cov = (bone & aorta).sum() / aorta.sum()
    check(cov <= 0.05, f'bone covers {100 * cov:.2f} % of the aorta (<= 5 %)')
    d = dice(lungs, lung_ref)
    check(d >= 0.90, f'lungs Dice {d:.3f} against lobes 10-14 (>= 0.90)')
    labelled = seg > 0
    cov = (skin & labelled).sum() / labelled.sum()
    check(cov >= 0.99, f'skin holds {100 * cov:.2f} % of all labelled voxels (>= 99 %)')
    check((skin & (hu < -500)).sum() <= (lungs.sum() + 0.05 * skin.sum()),
          'skin holds no more air than the lungs and bowel gas')
    check(((~skin) & (hu < -500)).sum() > 0.3 * hu.size, 'the outside air is not body')
    check('vessels' not in masks and 'not contrast' in skipped.get('vessels', ''),
          'vessels skipped: ' + skipped.get('vessels', '(produced)'))


def totalseg(tool, data, work):
    pairs = [('example_ct.nii.gz', 'example_seg_fast_force_split.nii.gz'),
             ('example_ct_sm.nii.gz', 'example_seg.nii.gz')]
    paths = [(os.path.join(data, c), os.path.join(data, l)) for c, l in pairs]
    if not all(os.path.exists(c) and os.path.exists(l) for c, l in paths):
        print('skip: TotalSegmentator reference files missing')
        return SKIP
    for (ct_path, seg_path), (name, _) in zip(paths, pairs):
        totalseg_one(tool, ct_path, seg_path, work, name.split('.')[0])
    return 1 if failures else 0


def totalseg_dicom(tool, data, work, j2k_tool):
    folder = os.path.join(data, 'example_ct_dicom')
    seg_path = os.path.join(data, 'example_seg_dicom.nii.gz')
    if not (os.path.isdir(folder) and os.path.exists(seg_path)):
        print('skip: example_ct_dicom or its label map missing')
        return SKIP
    hu, spacing = dicom_series_j2k(folder, j2k_tool, work)
    seg, _ = nifti_load(seg_path)
    # data/README.md: the label map aligns after transpose(seg, (2, 1, 0))[:, ::-1, :]
    # on nibabel's [x, y, z] array; nifti_load() already returns [z, y, x].
    seg = seg[:, ::-1, :]
    check(hu.shape == seg.shape, f'label map on the CT grid {hu.shape}')
    vert = np.isin(seg, list(VERTEBRAE))
    aorta = seg == AORTA
    check(vert.sum() > 1000 and aorta.sum() > 1000, 'reference has vertebrae and aorta')
    # Independent of our code: the labels sit on the right HU.
    check(np.median(hu[vert]) > 150 and 0 < np.median(hu[aorta]) < 400,
          f'alignment: vertebrae median {np.median(hu[vert]):.0f} HU, aorta {np.median(hu[aorta]):.0f} HU')
    masks, skipped, out = run_presets(tool, hu, spacing, work, 'example_ct_dicom')
    check('bone' in masks, 'bone produced')
    if 'bone' not in masks:
        return 1
    bone = masks['bone']
    cov = (bone & vert).sum() / vert.sum()
    check(cov >= 0.90, f'bone covers {100 * cov:.1f} % of the vertebrae (>= 90 %)')
    cov = (bone & aorta).sum() / aorta.sum()
    check(cov <= 0.05, f'bone covers {100 * cov:.2f} % of the aorta (<= 5 %)')
    if 'skin' in masks:
        labelled = seg > 0
        cov = (masks['skin'] & labelled).sum() / labelled.sum()
        check(cov >= 0.99, f'skin holds {100 * cov:.2f} % of all labelled voxels (>= 99 %)')
    lung_ref = np.isin(seg, list(LUNG_LOBES))
    if lung_ref.sum() > 1000:
        d = dice(masks.get('lungs', np.zeros_like(bone)), lung_ref)
        check(d >= 0.90, f'lungs Dice {d:.3f} against lobes 10-14 (>= 0.90)')
    return 1 if failures else 0


def pancreas(tool, folder, work):
    if not os.path.isdir(folder):
        print('skip: pancreas-ct-cb001 missing')
        return SKIP
    hu, spacing = dicom_series(folder)
    check(hu.shape == (134, 512, 512), f'series read as {hu.shape}')
    check(hu.min() == -1000 and hu.max() == 1988, f'HU range {hu.min()}..{hu.max()} as documented')
    masks, skipped, out = run_presets(tool, hu, spacing, work, 'pancreas')
    for s in ('skin', 'bone', 'lungs', 'vessels'):
        check(s in masks, f'{s} produced' + (f' ({skipped[s]})' if s in skipped else ''))
    check('contrast 1' in out, 'contrast enhancement detected')
    table = np.zeros(hu.shape, bool)
    table[:, TABLE_ROW:, :] = True
    check((table & (hu > 100)).sum() > 50000, 'the couch is in the field of view below row %d' % TABLE_ROW)
    for s, m in masks.items():
        check((m & table).sum() == 0, f'{s} stays off the table ({(m & table).sum()} voxels)')
    if 'skin' in masks:
        low = np.nonzero(masks['skin'].any(axis=(0, 2)))[0].max()
        check(low >= TABLE_ROW - 15, f'the skin reaches the body lying on the couch (row {low})')
    if 'bone' in masks and 'vessels' in masks:
        check((masks['bone'] & masks['vessels']).sum() == 0, 'no voxel is both bone and vessel')
    return 1 if failures else 0


def main():
    if len(sys.argv) < 5 or sys.argv[1] not in ('totalseg', 'totalseg_dicom', 'pancreas'):
        sys.exit(__doc__)
    mode, tool, data, work = sys.argv[1:5]
    if mode == 'totalseg':
        rc = totalseg(tool, data, work)
    elif mode == 'totalseg_dicom':
        if len(sys.argv) != 6:
            sys.exit(__doc__)
        rc = totalseg_dicom(tool, data, work, sys.argv[5])
    else:
        rc = pancreas(tool, data, work)
    print('failures: %d' % len(failures))
    sys.exit(rc)


if __name__ == '__main__':
    main()
