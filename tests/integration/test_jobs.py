"""
Jobs run by the worker pool: pancreas-ct-cb001 pushed with storescu becomes
a job that ends `done` with the models in [storage] results/<job id>/; a
series the pipeline refuses (two slices at one position) ends `skipped` with
the reason while the other job still completes; a job interrupted by SIGKILL
is taken up again after the restart and completes.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from r3dtest import Daemon, main, pancreas_files


def modified_copy(src, dst, *dcmodify_args):
    shutil.copy(src, dst)
    subprocess.run(["dcmodify", "-nb", "-q"] + list(dcmodify_args) + [dst], check=True)
    return dst


def job_rows(d):
    with d.db() as db:
        return db.execute("SELECT id, state, reason, results_dir, result FROM jobs ORDER BY id").fetchall()


class Jobs(unittest.TestCase):
    def test_done_and_skipped(self):
        work = tempfile.mkdtemp(prefix="r3d-jobs-")
        d = Daemon(pipeline__workers=1, pipeline__stable_seconds=1).start()
        try:
            files = pancreas_files()
            # A second study: 24 slices, two of them at the same position.
            bad = []
            for i, f in enumerate(files[:24]):
                args = ["-m", "(0020,000d)=1.2.826.0.1.95", "-m", "(0020,000e)=1.2.826.0.1.95.1",
                        "-m", "(0008,0018)=1.2.826.0.1.95.1.%d" % i]
                if i == 5:
                    ipp = subprocess.run(["dcmdump", "-q", "+P", "0020,0032", files[4]],
                                         capture_output=True, text=True).stdout
                    ipp = ipp.split("[")[1].split("]")[0]
                    args += ["-m", "(0020,0032)=" + ipp]
                bad.append(modified_copy(f, os.path.join(work, "bad%02d.dcm" % i), *args))
            r = d.storescu(files + bad)
            self.assertEqual(r.returncode, 0, r.stderr[-1500:])
            st = d.wait_for(lambda s: s["jobs"]["done"] + s["jobs"]["skipped"] +
                            s["jobs"]["failed"] == 2, timeout=300, what="two finished jobs")
            self.assertEqual((st["jobs"]["done"], st["jobs"]["skipped"]), (1, 1), st["jobs"])
            rows = {row[1]: row for row in job_rows(d)}
            done, skipped = rows["done"], rows["skipped"]
            self.assertIn("duplicate", skipped[2])
            results = done[3]
            for name in ("bone.stl", "skin.stl", "lungs.stl", "vessels.stl", "model.obj",
                         "model.mtl", "report.json"):
                self.assertTrue(os.path.exists(os.path.join(results, name)), name)
            report = json.loads(done[4])
            self.assertEqual(report["volume"]["dims"], [512, 512, 134])
            self.assertTrue(all(s.get("watertight") for s in report["structures"]))
            self.assertGreater(st["stage_seconds_total"]["mesh"], 0)
            log = d.log_text()
            self.assertIn("outcome=done", log)
            self.assertIn("outcome=skipped", log)
            self.assertRegex(d.metrics(), r'recon3d_jobs\{state="done"\} 1')
            # Issue 16: every structure within its budget, its error measured,
            # and no decimation fallback: counted 0 in /metrics and /status,
            # no warning in the log.
            for s in report["structures"]:
                dec = s["decimation"]
                self.assertLessEqual(s["triangles"], s["max_triangles"], s["key"])
                self.assertIsNone(dec["fallback"], s["key"])
                self.assertGreater(dec["error_mm"]["samples"], 0, s["key"])
            m = d.metrics()
            for key in ("skin", "bone", "lungs", "vessels"):
                self.assertIn('recon3d_decimation_fallbacks_total{structure="%s"} 0' % key, m)
            self.assertEqual({e["key"]: e["decimation_fallbacks"] for e in st["structures"]
                              if e["key"] in ("skin", "bone")}, {"skin": 0, "bone": 0})
            self.assertNotIn("fell back", log)
        finally:
            d.stop()
            d.cleanup()
            shutil.rmtree(work, ignore_errors=True)

    def test_sigkill_during_job_then_restart(self):
        d = Daemon(pipeline__workers=1, pipeline__stable_seconds=1).start()
        try:
            r = d.storescu(pancreas_files())
            self.assertEqual(r.returncode, 0, r.stderr[-1500:])
            deadline = time.time() + 120
            while time.time() < deadline and "job started job=1" not in d.log_text():
                time.sleep(0.05)
            self.assertIn("job started job=1", d.log_text())
            d.kill()
            self.assertEqual([row[1] for row in job_rows(d)], ["running"])
            d.start()
            st = d.wait_for(lambda s: s["jobs"]["done"] == 1, timeout=300, what="job done after restart")
            self.assertEqual(sum(st["jobs"].values()), 1)
            self.assertIn("1 interrupted jobs queued again", d.log_text())
        finally:
            d.stop()
            d.cleanup()


if __name__ == "__main__":
    main()
