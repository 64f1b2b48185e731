#!/usr/bin/python3
"""segment_bench.py: wall time of each segment preset on pancreas-ct-cb001
(512x512x134, contrast-enhanced, 1.07 x 1.07 x 3 mm), 1 and 2 threads.

  /usr/bin/python3 bench/segment_bench.py BUILD_DIR [DICOM_DIR] [REPEAT]

BUILD_DIR is a release build (-DCMAKE_BUILD_TYPE=Release -DR3D_SANITIZE=OFF)
holding tests/segment/segment_raw. The series is read by the throwaway reader
of tests/segment/segment_real.py. Per preset: median of REPEAT runs (default
7) on one workspace, which is allocated once, so the first run's page faults
are not counted. The body step is shared: it is the skin time; contrast
detection runs before bone and is shown apart.
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'segment'))
import segment_real  # noqa: E402

import numpy as np  # noqa: E402


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    build = sys.argv[1]
    folder = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        HERE, '..', '..', 'shared', 'data', 'ct', 'pancreas-ct-cb001')
    repeat = sys.argv[3] if len(sys.argv) > 3 else '7'
    tool = None
    for cand in ('tests/segment/segment_raw', 'tests_segment/segment_raw'):
        if os.path.exists(os.path.join(build, cand)):
            tool = os.path.join(build, cand)
    if tool is None:
        sys.exit(f'no segment_raw under {build}')
    hu, spacing = segment_real.dicom_series(folder)
    nz, ny, nx = hu.shape
    with tempfile.TemporaryDirectory() as work:
        raw = os.path.join(work, 'v.raw')
        np.ascontiguousarray(hu, dtype='<i2').tofile(raw)
        print(f'pancreas-ct-cb001 {nx}x{ny}x{nz}, spacing {spacing[0]:.3f} x {spacing[1]:.3f} x {spacing[2]:.1f} mm, '
              f'median of {repeat}')
        print('%-8s %8s %8s %8s %8s %8s %9s %8s' % ('threads', 'skin', 'detect', 'bone', 'lungs',
                                                   'vessels', 'total', 'cpu'))
        for threads in ('1', '2'):
            cmd = [tool, raw, str(nx), str(ny), str(nz)] + ['%.6f' % s for s in spacing] + [
                os.path.join(work, 'm'), '--threads', threads, '--repeat', repeat]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            f = {}
            for line in out.splitlines():
                w = line.split()
                if w[0] == 'structure' and w[2] == 'voxels':
                    f[w[1]] = float(w[5])
                elif w[0] in ('total_ms', 'cpu_ms'):
                    f[w[0]] = float(w[1])
                elif w[0] == 'body_ms':
                    f['detect'] = float(w[3])
            print('%-8s %8.1f %8.1f %8.1f %8.1f %8.1f %9.1f %8.1f' % (
                threads, f.get('skin', 0), f.get('detect', 0), f.get('bone', 0), f.get('lungs', 0),
                f.get('vessels', 0), f.get('total_ms', 0), f.get('cpu_ms', 0)))
    print('(ms; total is the whole segment_run() for all four structures)')


if __name__ == '__main__':
    main()
