"""
Receiving a real CT series: C-ECHO, C-STORE of pancreas-ct-cb001 (134 files)
with DCMTK's storescu, the index counts in /status and /metrics, the job that
a stable study becomes, a re-send, and no patient data in the log.
"""
import os
import re
import unittest

from r3dtest import (Daemon, dataset_bytes, dcm_value, http_get, main, pancreas_files,
                     store_responses)


class StoreSeries(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(pipeline__stable_seconds=3, pipeline__min_slices=20).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.d.cleanup()

    def test_1_echo(self):
        r = self.d.echoscu()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("Received Echo Response (Success)", r.stdout + r.stderr)

    def test_2_store_series_and_job(self):
        files = pancreas_files()
        self.assertEqual(len(files), 134)
        r = self.d.storescu(files)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        responses = store_responses(r.stdout + r.stderr)
        self.assertEqual(len(responses), 134)
        self.assertTrue(all(s == "Success" for _, s in responses), responses[:3])

        st = self.d.status()
        self.assertEqual((st["studies"], st["series"], st["instances"]), (1, 1, 134))
        # Every stored file is on disk, bit for bit what was sent.
        sop = dcm_value(files[0], "0008,0018")
        study = dcm_value(files[0], "0020,000d")
        series = dcm_value(files[0], "0020,000e")
        stored = os.path.join(self.d.storage, study, series, sop + ".dcm")
        self.assertTrue(os.path.exists(stored), stored)
        # storescu sent it in the first syntax it proposed (explicit VR LE):
        # the stored copy says so and holds the same instance.
        self.assertEqual(dcm_value(stored, "0002,0010"), "1.2.840.10008.1.2.1")
        self.assertEqual(dcm_value(stored, "0008,0018"), sop)
        self.assertEqual(dcm_value(stored, "0028,0010"), dcm_value(files[0], "0028,0010"))
        on_disk = [f for _, _, fs in os.walk(os.path.join(self.d.storage, study)) for f in fs]
        self.assertEqual(len(on_disk), 134)

        # No job before the study is quiet for stable_seconds, one after.
        self.assertEqual(st["jobs"]["queued"], 0)
        st = self.d.wait_for(lambda s: s["jobs"]["queued"] == 1, timeout=30, what="one queued job")
        self.assertEqual(sum(st["jobs"].values()), 1)
        self.assertIn("study stable study=" + study, self.d.log_text())

        metrics = self.d.metrics()
        self.assertRegex(metrics, r"(?m)^recon3d_instances 134$")
        self.assertRegex(metrics, r'(?m)^recon3d_jobs\{state="queued"\} 1$')
        self.assertRegex(metrics, r"(?m)^recon3d_studies 1$")

    def test_3_resend_replaces_and_requeues(self):
        files = pancreas_files()
        r = self.d.storescu(files)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        st = self.d.status()
        self.assertEqual((st["studies"], st["series"], st["instances"]), (1, 1, 134))
        with self.d.db() as db:
            self.assertEqual(db.execute("SELECT count(*) FROM instances").fetchone()[0], 134)
            self.assertEqual(db.execute("SELECT instances FROM series_totals").fetchone()[0], 134)
        on_disk = [f for _, _, fs in os.walk(self.d.storage) for f in fs if f.endswith(".dcm")]
        self.assertEqual(len(on_disk), 134)
        # A re-send is never silently ignored: a new job, the old queued one superseded.
        st = self.d.wait_for(lambda s: s["jobs"]["superseded"] == 1 and s["jobs"]["queued"] == 1,
                             timeout=30, what="re-send queued again")

    def test_4_no_patient_data_in_log_or_metrics(self):
        f = pancreas_files()[0]
        log = self.d.log_text()
        metrics = self.d.metrics()
        _, status = http_get(self.d.url("/status"), token=self.d.token)
        self.assertIn("instance stored sop=", log)
        for tag in ("0010,0010", "0010,0020", "0010,0030"):
            value = dcm_value(f, tag)
            if not value:
                continue
            for part in re.split(r"[\^ ]", value):
                if len(part) >= 3:
                    self.assertNotIn(part, log, "patient data %s in log" % tag)
                    self.assertNotIn(part, metrics)
                    self.assertNotIn(part, status)

    def test_5_healthz(self):
        code, body = http_get(self.d.url("/healthz"))
        self.assertEqual((code, body.strip()), (200, "ok"))
        code, _ = http_get(self.d.url("/nope"))
        self.assertEqual(code, 404)


if __name__ == "__main__":
    main()
