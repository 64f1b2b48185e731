"""
External segmentation engines ([engine NAME], [import] engine, issue 11),
with a small engine of our own (engine_phantom.py): it reads the CT folder
recon3d gives it with pydicom and writes a NIfTI label map of the phantom's
bone sphere, its affine made from the DICOM geometry by hand.

- engine_models = instead: the job's only structure is the engine's label,
  named and coloured by the engine's JSON label table; its STL, welded by
  coordinates, is closed and encloses the sphere's analytic volume (within
  4 %) around its analytic centre (within 0.5 mm): the label map was placed
  by its affine, right to left and front to back.
- input = nifti: the same from the series' volume written as NIfTI-1 by
  recon3d and read back by the engine with its own header parser.
- engine_models = with, two CT series, two workers, concurrency = 1: both jobs
  hold the presets and the engine's label; the engine's two runs never
  overlapped.
- Failures, each with its reason on the job and in /status: a command that
  exits 3 (its status and last stderr line), one that dies of SIGSEGV, one that is gone (at start
  recon3d refuses to start; removed later, the job fails: could not be started),
  one that writes nothing, one that outlives timeout_s (killed with the
  child it started).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from r3dtest import Daemon  # noqa: E402
from test_e2e_orthanc import edge_check  # noqa: E402

PHANTOM = os.environ.get("R3D_PHANTOM_BIN", "recon3d-phantom")
ENGINE = os.path.join(HERE, "engine_phantom.py")
TABLE = {"1": {"name": "bone_sphere", "color": "#ff8000",
               "category": "91723000^SCT^Anatomical Structure", "type": "3138006^SCT^Bone"}}


def make_phantom(path):
    subprocess.run([PHANTOM, "--out", path, "--size", "128", "--slices", "64",
                    "--spacing", "1.5,1.5,2"], check=True, capture_output=True)
    with open(os.path.join(path, "truth.json")) as f:
        truth = json.load(f)
    os.rename(os.path.join(path, "truth.json"), path + ".truth.json")   # only slices are sent
    return truth


def read_stl(path):
    import numpy as np
    with open(path, "rb") as f:
        b = f.read()
    n = int.from_bytes(b[80:84], "little")
    rec = np.frombuffer(b[84:84 + 50 * n], dtype=np.dtype(
        [("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")]))
    pts, tri = np.unique(rec["v"].reshape(-1, 3), axis=0, return_inverse=True)
    return pts.astype(np.float64), tri.reshape(-1, 3)


class Engine(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="r3d-engine-")
        self.table = os.path.join(self.work, "table.json")
        with open(self.table, "w") as f:
            json.dump(TABLE, f)
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.stop()
            d.cleanup()
        shutil.rmtree(self.work, ignore_errors=True)

    def daemon(self, mode, extra_words="", workers=1, models="instead", timeout_s=60, concurrency=1,
               engine_input="dicom"):
        d = Daemon(pipeline__workers=workers, pipeline__stable_seconds=1, pipeline__min_slices=10,
                   import__engine="phantom", import__engine_models=models)
        d.conf["engine phantom"] = {
            "command": "/usr/bin/python3 %s %s {input} {output}%s" % (ENGINE, mode, extra_words),
            "label_table": self.table, "timeout_s": timeout_s, "concurrency": concurrency,
            "input": engine_input}
        d.write_conf()
        d.start()
        self.daemons.append(d)
        return d

    def phantom(self, name="ct"):
        path = os.path.join(self.work, name)
        return path, make_phantom(path)

    def store(self, d, folder):
        files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
        r = d.storescu(files)
        self.assertEqual(r.returncode, 0, r.stderr[-1500:])

    def finished(self, d, n, timeout=120):
        return d.wait_for(lambda s: sum(s["jobs"].get(k, 0) for k in ("done", "failed", "skipped")) >= n,
                          timeout=timeout, what="%d jobs finished" % n)

    def report(self, d, job_id):
        with open(os.path.join(d.dir, "results", str(job_id), "report.json")) as f:
            return json.load(f)

    def test_label_map_instead_of_presets(self):
        self.check_sphere(self.daemon("labels"))

    def test_engine_chosen_by_route(self):
        """A routing profile picks the engine (issue 12): studies sent to
        RECON3D_AI go to it, instead of the presets; [import] engine is unset."""
        d = Daemon(pipeline__workers=1, pipeline__stable_seconds=1, pipeline__min_slices=10)
        d.conf["engine phantom"] = {"command": "/usr/bin/python3 %s labels {input} {output}" % ENGINE,
                                    "label_table": self.table}
        d.conf["route ai"] = {"called_ae": "RECON3D_AI", "engine": "phantom", "engine_models": "instead"}
        d.write_conf()
        d.start()
        self.daemons.append(d)
        ct, _ = self.phantom()
        files = sorted(os.path.join(ct, f) for f in os.listdir(ct))
        r = d.storescu(files, called="RECON3D_AI")
        self.assertEqual(r.returncode, 0, r.stderr[-1500:])
        st = self.finished(d, 1)
        self.assertEqual(st["jobs"].get("done", 0), 1, st["recent_jobs"])
        self.assertEqual(st["recent_jobs"][0]["route"], "ai")
        made = [s["label"] for s in self.report(d, 1)["structures"] if s.get("triangles")]
        self.assertEqual(made, ["bone_sphere"])
        self.assertTrue(os.path.exists(os.path.join(d.dir, "results", "1", "engine", "output", "labels.nii")))

    def test_nifti_input(self):
        """input = nifti: the engine reads the series' volume from one .nii file
        (our writer's affine read back by hand) and writes its map on that grid."""
        d = self.daemon("labels-nifti", engine_input="nifti")
        self.check_sphere(d)
        self.assertTrue(os.path.exists(os.path.join(d.dir, "results", "1", "engine", "input", "ct.nii")))

    def test_seventy_segments(self):
        """More segments than any fixed set of presets (up to 70 slabs, those
        present in the map): all reach report.json and the Surface
        Segmentation (pydicom reads it)."""
        import pydicom
        d = Daemon(pipeline__workers=1, pipeline__stable_seconds=1, pipeline__min_slices=10,
                   import__engine="phantom", import__engine_models="instead", export__preview="false")
        d.conf["engine phantom"] = {"command": "/usr/bin/python3 %s slabs {input} {output}" % ENGINE,
                                    "input": "nifti"}
        d.write_conf()
        d.start()
        self.daemons.append(d)
        ct, _ = self.phantom()
        self.store(d, ct)
        st = self.finished(d, 1, timeout=300)
        self.assertEqual(st["jobs"].get("done", 0), 1, st["recent_jobs"])
        rep = self.report(d, 1)
        made = [s for s in rep["structures"] if s.get("triangles")]
        import numpy as np
        with open(os.path.join(d.dir, "results", "1", "engine", "output", "labels.nii"), "rb") as f:
            present = np.unique(np.frombuffer(f.read()[352:], dtype=np.uint8))
        present = [int(v) for v in present if v != 0]
        self.assertGreater(len(present), 64)   # more than any earlier fixed limit
        # No label_table: TotalSegmentator's class names, one per label present.
        self.assertEqual(len(made), len(present), [(s["label"], s.get("skipped_reason"))
                                                   for s in rep["structures"] if not s.get("triangles")])
        self.assertEqual(len({s["label"] for s in made}), len(made))
        self.assertIn("spleen", {s["label"] for s in made})   # label 1 of the 'total' task
        ss = pydicom.dcmread(os.path.join(d.dir, "results", "1", "dicom", "surface-segmentation.dcm"))
        self.assertEqual(len(ss.SegmentSequence), len(present))
        self.assertEqual(len(ss.SurfaceSequence), len(present))
        self.assertEqual(sorted(str(x.SegmentLabel) for x in ss.SegmentSequence),
                         sorted(s["label"] for s in made))

    def check_sphere(self, d):
        import numpy as np
        ct, truth = self.phantom()
        self.store(d, ct)
        st = self.finished(d, 1)
        self.assertEqual(st["jobs"].get("done", 0), 1, st["recent_jobs"])
        rep = self.report(d, 1)
        made = [s for s in rep["structures"] if s.get("triangles")]
        self.assertEqual([s["label"] for s in made], ["bone_sphere"])
        entry = made[0]
        self.assertTrue(np.allclose(entry["color_rgb"], [1.0, 128 / 255.0, 0.0], atol=1e-3),
                        entry["color_rgb"])
        self.assertEqual(entry["codes"]["type"]["value"], "3138006")
        sphere = [s for s in truth["shapes"] if s["name"] == "bone_sphere"][0]
        pts, tri = read_stl(os.path.join(d.dir, "results", "1", entry["file"]))
        self.assertEqual(edge_check(tri), (0, 0, 0), "open, non-manifold or mis-oriented when welded")
        a, b, c = (pts[tri[:, k]] for k in range(3))
        six_v = np.einsum("ij,ij->i", a, np.cross(b, c))
        vol_ml = six_v.sum() / 6.0 / 1000.0
        centroid = ((a + b + c) / 4.0 * six_v[:, None]).sum(axis=0) / six_v.sum()
        self.assertAlmostEqual(vol_ml, sphere["volume_ml"], delta=0.04 * sphere["volume_ml"])
        self.assertLess(np.linalg.norm(centroid - np.array(sphere["center_lps_mm"])), 0.5,
                        (centroid, sphere["center_lps_mm"]))
        # The engine's own output and logs stay with the job, for the on-call engineer.
        self.assertTrue(os.path.exists(os.path.join(d.dir, "results", "1", "engine", "output",
                                                    "labels.nii")))
        self.assertIn("engine finished engine=phantom", d.log_text())

    def test_with_presets_one_at_a_time(self):
        log = os.path.join(self.work, "runs.txt")
        d = self.daemon("labels", " " + log, workers=2, models="with", concurrency=1)
        for name in ("a", "b"):
            ct, _ = self.phantom(name)
            self.store(d, ct)
        st = self.finished(d, 2)
        self.assertEqual(st["jobs"].get("done", 0), 2, st["recent_jobs"])
        for job in (1, 2):
            labels = {s["label"] for s in self.report(d, job)["structures"] if s.get("triangles")}
            self.assertIn("bone_sphere", labels)
            self.assertIn("bone", labels)   # the preset, beside the engine's label
        with open(log) as f:
            runs = sorted(tuple(float(x) for x in line.split()) for line in f)
        self.assertEqual(len(runs), 2)
        self.assertLessEqual(runs[0][1], runs[1][0] + 0.05, "the engine ran twice at once: %r" % runs)

    def check_failure(self, d, want):
        ct, _ = self.phantom()
        self.store(d, ct)
        st = self.finished(d, 1)
        self.assertEqual(st["jobs"].get("failed", 0), 1, st["recent_jobs"])
        job = st["recent_jobs"][0]
        self.assertEqual((job["state"], job["reason"]), ("failed", want))
        with d.db() as db:
            self.assertEqual(db.execute("SELECT reason FROM jobs").fetchall(), [(want,)])
        self.assertIn(want, d.log_text())

    def test_engine_exits_with_an_error(self):
        self.check_failure(self.daemon("fail"),
                           "engine phantom exited with status 3; its last line: "
                           "model weights not found: /opt/models/kidney.pt")

    def test_engine_crashes(self):
        self.check_failure(self.daemon("crash"),
                           "engine phantom was killed by signal 11; its last line: segmenting")

    def test_engine_writes_nothing(self):
        self.check_failure(self.daemon("nothing"),
                           "engine phantom exited with status 0 but wrote no NIfTI label map, "
                           "DICOM Segmentation or RT Structure Set into its output folder")

    def test_engine_missing(self):
        # Not there at start: recon3d does not start, and says why.
        d = Daemon(pipeline__workers=1, pipeline__stable_seconds=1, pipeline__min_slices=10,
                   import__engine="phantom")
        d.conf["engine phantom"] = {"command": "/nonexistent/segment {input} {output}"}
        d.write_conf()
        self.daemons.append(d)
        d.start(wait=False)
        self.assertEqual(d.proc.wait(timeout=20), 1)
        self.assertIn("[engine phantom] command: '/nonexistent/segment' is not an executable file",
                      d.log_text())
        # Gone after start (a broken installation): the job fails with the reason.
        prog = os.path.join(self.work, "segment")
        shutil.copy("/bin/true", prog)
        d = Daemon(pipeline__workers=1, pipeline__stable_seconds=1, pipeline__min_slices=10,
                   import__engine="phantom")
        d.conf["engine phantom"] = {"command": prog + " {input} {output}"}
        d.write_conf()
        d.start()
        self.daemons.append(d)
        os.unlink(prog)
        self.check_failure(d, "engine phantom could not be started: cannot run %s: "
                              "No such file or directory" % prog)

    def test_engine_timeout(self):
        pidfile = os.path.join(self.work, "child.pid")
        d = self.daemon("sleep", " " + pidfile, timeout_s=2)
        t0 = time.time()
        self.check_failure(d, "engine phantom timed out after 2 s (timeout_s)")
        self.assertLess(time.time() - t0, 30)
        with open(pidfile) as f:
            child = int(f.read())
        time.sleep(0.5)
        alive = False
        try:
            with open("/proc/%d/stat" % child) as f:
                alive = f.read().split()[2] != "Z"
        except OSError:
            pass
        self.assertFalse(alive, "the engine's child process outlived the time limit")


if __name__ == "__main__":
    unittest.main(verbosity=2)
