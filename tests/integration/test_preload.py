"""
Start before the study is stable (issue 15 item 3): the pre-loader decodes
each CT image as it is stored, and the job takes the decoded images instead
of reading the files back. The results must be those of a job that read
every file.

- pancreas-ct-cb001 pushed with storescu to a daemon with the pre-loader on
  and to one with it off: every structure's .mesh file, the STL triangle
  payload (after the 80-byte header) and the report's volume geometry are
  byte-identical; report.json and the log say all 134 instances came from
  the pre-loader in the first case and none in the second (so the test
  fails if the pre-loader silently does nothing).
- The same series pushed in reverse slice order to a daemon with the
  pre-loader on: identical to the normal-order run of the daemon without it.
- A phantom series, one instance of which is sent again (same SOP Instance
  UID) with a bright block painted into its pixels before the study is
  stable: the pre-loader run equals a run without the pre-loader of the
  same pushes, and differs from a run of the original series (so stale
  pixels would be caught). With a cap of 1 MB, the job takes what fits and
  reads the rest, still identical.
- Nothing breaks: a series with a malformed instance (its Pixel Data cut in
  half) is skipped with the same reason with the pre-loader on and off; a
  daemon stopped while the job waits (workers = 0) and started again with a
  worker reads every file and makes the same meshes.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from r3dtest import Daemon, pancreas_files, main  # noqa: E402

PHANTOM = os.environ.get("R3D_PHANTOM_BIN", "recon3d-phantom")
PYTHON = "/usr/bin/python3"   # Debian's, with pydicom
LOAD_LINE = re.compile(r"job=(\d+): load: (\d+) instances from the pre-loader, (\d+) read from their files")

# Pixel Data cut in half: the header is fine, the pixels are not all there.
TRUNCATE = r"""
import sys
import pydicom
ds = pydicom.dcmread(sys.argv[1])
ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
ds.save_as(sys.argv[2])
"""

# A bright block in one slice, same SOP Instance UID: what a modality sends
# again after a correction.
PAINT = r"""
import sys
import pydicom
ds = pydicom.dcmread(sys.argv[1])
px = ds.pixel_array.copy()
r, c = px.shape
px[r // 4: r // 2, c // 4: c // 2] = 3000 + 1024   # 3000 HU at intercept -1024
ds.PixelData = px.astype(px.dtype).tobytes()
ds.save_as(sys.argv[2])
"""


class Run:
    """One daemon, some pushes, its one job's outputs."""

    def __init__(self, work, name, preload_mb, structures):
        os.makedirs(os.path.join(work, name))
        self.d = Daemon(workdir=os.path.join(work, name), pipeline__workers=1,
                        pipeline__stable_seconds=2, pipeline__preload_mb=preload_mb,
                        export__surface_segmentation="false", export__stl="false",
                        export__segmentation="false", export__preview="false")
        self.d.conf["route default"] = {"structures": structures}
        self.d.write_conf()
        self.d.start()

    def push(self, test, files):
        r = self.d.storescu(files)
        test.assertEqual(r.returncode, 0, r.stderr[-1500:])

    def finish(self, test, timeout):
        self.d.wait_for(lambda s: s["jobs"].get("done") == 1, timeout=timeout, what="the job done")
        return self.collect(test)

    def collect(self, test):
        with self.d.db() as db:
            job_id, results = db.execute("SELECT id, results_dir FROM jobs WHERE state = 'done'").fetchone()
        with open(os.path.join(results, "report.json")) as f:
            self.report = json.load(f)
        self.files = {}
        for s in self.report["structures"]:
            if "mesh_file" not in s:
                continue
            with open(os.path.join(results, s["mesh_file"]), "rb") as f:
                self.files[s["mesh_file"]] = f.read()
            with open(os.path.join(results, s["file"]), "rb") as f:
                self.files[s["file"] + " (triangles)"] = f.read()[80:]
        test.assertEqual(self.d.stop(), 0, self.d.log_text()[-2000:])
        self.log = self.d.log_text()
        test.assertNotIn("Sanitizer", self.log, self.log[-4000:])
        test.assertNotIn("runtime error", self.log, self.log[-4000:])
        lines = [m for m in LOAD_LINE.finditer(self.log) if int(m.group(1)) == job_id]
        test.assertEqual(len(lines), 1, self.log[-3000:])
        self.logged = (int(lines[0].group(2)), int(lines[0].group(3)))
        load = self.report["load"]
        test.assertEqual(self.logged, (load["instances_preloaded"], load["instances_read"]))
        return self

    def same_as(self, test, other):
        test.assertTrue(self.files, "no structure was meshed")
        test.assertEqual(sorted(self.files), sorted(other.files))
        for name in self.files:
            test.assertTrue(self.files[name] == other.files[name], "%s differs" % name)
        # dims, spacing, affine, slices: the geometry of the assembled volume
        test.assertEqual(self.report["volume"], other.report["volume"])


class Preload(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="r3d-preload-")
        self.runs = []

    def tearDown(self):
        for r in self.runs:
            r.d.cleanup()
        shutil.rmtree(self.work, ignore_errors=True)

    def run_of(self, name, preload_mb, structures):
        r = Run(self.work, name, preload_mb, structures)
        self.runs.append(r)
        return r

    def test_pancreas_normal_and_reverse_order_identical(self):
        files = pancreas_files()
        n = len(files)
        self.assertGreater(n, 100)
        off = self.run_of("off", 0, "bone, skin")
        off.push(self, files)
        off.finish(self, 600)
        self.assertEqual(off.logged, (0, n))

        on = self.run_of("on", 512, "bone, skin")
        on.push(self, files)
        on.finish(self, 600)
        self.assertEqual(on.logged, (n, 0), "the pre-loader did not feed the job")
        on.same_as(self, off)

        rev = self.run_of("reverse", 512, "bone, skin")
        rev.push(self, list(reversed(files)))
        rev.finish(self, 600)
        self.assertEqual(rev.logged, (n, 0), "the pre-loader did not feed the job")
        rev.same_as(self, off)

    def phantom(self):
        series = os.path.join(self.work, "phantom")
        if not os.path.isdir(series):
            subprocess.run([PHANTOM, "--out", series, "--size", "128", "--slices", "64",
                            "--spacing", "1.5,1.5,2"], check=True, capture_output=True)
        return sorted(os.path.join(series, f) for f in os.listdir(series) if f.endswith(".dcm"))

    def test_malformed_instance_and_restart(self):
        files = self.phantom()
        n = len(files)
        broken = os.path.join(self.work, "broken.dcm")
        subprocess.run([PYTHON, "-c", TRUNCATE, files[n // 3], broken], check=True)
        with_broken = [broken if i == n // 3 else f for i, f in enumerate(files)]
        reasons = []
        for name, mb in (("broken-on", 512), ("broken-off", 0)):
            r = self.run_of(name, mb, "bone")
            r.push(self, with_broken)
            r.d.wait_for(lambda s: s["jobs"].get("skipped") == 1, timeout=300, what="the job skipped")
            with r.d.db() as db:
                reasons.append(db.execute("SELECT reason FROM jobs").fetchone()[0])
            self.assertEqual(r.d.stop(), 0)
            self.assertNotIn("Sanitizer", r.d.log_text())
        self.assertIn("Pixel Data", reasons[0])
        self.assertEqual(reasons[0], reasons[1])

        # Received, then a restart before the job runs: every file is read.
        first = self.run_of("restart", 512, "bone")
        first.d.conf["pipeline"]["workers"] = 0
        first.d.write_conf()
        first.d.stop()
        first.d.start()
        first.push(self, files)
        first.d.wait_for(lambda s: s["jobs"].get("queued") == 1, timeout=60, what="the job queued")
        first.d.stop()
        first.d.conf["pipeline"]["workers"] = 1
        first.d.write_conf()
        first.d.start()
        first.finish(self, 300)
        self.assertEqual(first.logged, (0, n))
        normal = self.run_of("normal", 512, "bone")
        normal.push(self, files)
        normal.finish(self, 300)
        self.assertEqual(normal.logged, (n, 0))
        first.same_as(self, normal)

    def test_resent_instance_is_read_anew(self):
        files = self.phantom()
        changed = os.path.join(self.work, "changed.dcm")
        subprocess.run([PYTHON, "-c", PAINT, files[len(files) // 2], changed], check=True)
        n = len(files)

        original = self.run_of("original", 512, "bone")
        original.push(self, files)
        original.finish(self, 300)
        self.assertEqual(original.logged, (n, 0))

        results = {}
        for name, mb in (("resent-on", 512), ("resent-off", 0), ("resent-cap", 1)):
            r = self.run_of(name, mb, "bone")
            r.push(self, files)
            r.push(self, [changed])   # within stable_seconds of the others
            results[name] = r.finish(self, 300)
        self.assertEqual(results["resent-on"].logged, (n, 0))
        self.assertEqual(results["resent-off"].logged, (0, n))
        cap = results["resent-cap"].logged
        self.assertEqual(sum(cap), n)
        self.assertGreater(cap[0], 0, "nothing fitted in 1 MB")
        self.assertGreater(cap[1], 0, "the 1 MB cap did not bind")
        self.assertIn("preload_mb = 1", results["resent-cap"].log)
        results["resent-on"].same_as(self, results["resent-off"])
        results["resent-cap"].same_as(self, results["resent-off"])
        # The painted block shows in the bone: stale pixels would not.
        self.assertNotEqual(results["resent-on"].files, original.files)


if __name__ == "__main__":
    main()
