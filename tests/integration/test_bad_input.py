"""
Bad input gets a clear failure status and loses nothing: an instance without
a Series Instance UID, one whose Study UID tries to leave the storage folder,
a disk below min_free_mb (Out of Resources), and series the pipeline cannot
use (not CT, too few slices, mixed sizes) which are recorded with a reason.
The daemon keeps running and the next good push succeeds.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

from r3dtest import Daemon, main, pancreas_files, store_responses


def modified_copy(src, dst, *dcmodify_args):
    shutil.copy(src, dst)
    r = subprocess.run(["dcmodify", "-nb", "-q"] + list(dcmodify_args) + [dst],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return dst


class BadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="r3d-bad-")
        cls.d = Daemon(pipeline__stable_seconds=2, pipeline__min_slices=20).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.d.cleanup()
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_1_malformed_instances_fail_and_daemon_goes_on(self):
        src = pancreas_files()[0]
        no_series = modified_copy(src, os.path.join(self.work, "no_series.dcm"),
                                  "-ea", "(0020,000e)", "-m", "(0008,0018)=1.2.826.0.1.99.1")
        escape = modified_copy(src, os.path.join(self.work, "escape.dcm"),
                               "-m", "(0020,000d)=1.2.3/../../../evil",
                               "-m", "(0008,0018)=1.2.826.0.1.99.2")
        r = self.d.storescu([no_series, escape, src], extra=["-nh"])
        responses = dict(store_responses(r.stdout + r.stderr))
        self.assertEqual(responses.get(no_series), "Error: CannotUnderstand", r.stdout + r.stderr)
        self.assertEqual(responses.get(escape), "Error: CannotUnderstand")
        self.assertEqual(responses.get(src), "Success")
        # Nothing escaped the storage folder, nothing half-written stays.
        self.assertFalse(os.path.exists(os.path.join(self.d.dir, "evil")))
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.d.dir), "evil")))
        incoming = os.path.join(self.d.storage, ".incoming")
        self.assertEqual(os.listdir(incoming), [])
        log = self.d.log_text()
        self.assertIn('reason="Series Instance UID (0020,000E) missing"', log)
        self.assertIn('reason="Study Instance UID is not a valid UID"', log)
        st = self.d.status()
        self.assertEqual(st["instances"], 1)
        self.assertEqual(st["received"]["instances_failed"], 2)
        r = self.d.echoscu()
        self.assertEqual(r.returncode, 0)

    def test_2_ineligible_series_recorded_with_reason(self):
        files = pancreas_files()
        # 25 slices relabelled MR, in a series of their own.
        mr = []
        for i, f in enumerate(files[:25]):
            mr.append(modified_copy(f, os.path.join(self.work, "mr%02d.dcm" % i),
                                    "-m", "(0008,0060)=MR",
                                    "-m", "(0020,000d)=1.2.826.0.1.98",
                                    "-m", "(0020,000e)=1.2.826.0.1.98.1",
                                    "-m", "(0008,0018)=1.2.826.0.1.98.1.%d" % i))
        # 5 CT slices in a study of their own: fewer than min_slices.
        few = []
        for i, f in enumerate(files[:5]):
            few.append(modified_copy(f, os.path.join(self.work, "few%02d.dcm" % i),
                                     "-m", "(0020,000d)=1.2.826.0.1.97",
                                     "-m", "(0020,000e)=1.2.826.0.1.97.1",
                                     "-m", "(0008,0018)=1.2.826.0.1.97.1.%d" % i))
        # 24 CT slices, one of them claiming 256 rows: mixed sizes.
        mixed = []
        for i, f in enumerate(files[:24]):
            args = ["-m", "(0020,000d)=1.2.826.0.1.96", "-m", "(0020,000e)=1.2.826.0.1.96.1",
                    "-m", "(0008,0018)=1.2.826.0.1.96.1.%d" % i]
            if i == 3:
                args += ["-m", "(0028,0010)=256"]
            mixed.append(modified_copy(f, os.path.join(self.work, "mixed%02d.dcm" % i), *args))
        r = self.d.storescu(mr + few + mixed)
        self.assertEqual(r.returncode, 0, r.stderr[-1500:])
        # Three here, and the single slice that test_1 stored.
        st = self.d.wait_for(lambda s: s["series_ineligible"] == 4, timeout=30,
                             what="four ineligible series")
        self.assertEqual(st["jobs"]["queued"], 0)
        with self.d.db() as db:
            reasons = dict(db.execute("SELECT series_uid, reason FROM series WHERE status = 'ineligible'"))
        self.assertEqual(reasons["1.2.826.0.1.98.1"], "modality 'MR' is not CT")
        self.assertEqual(reasons["1.2.826.0.1.97.1"], "5 CT images, fewer than min_slices = 20")
        self.assertEqual(reasons["1.2.826.0.1.96.1"], "mixed image sizes (2 different rows x columns)")
        self.assertIn('series not eligible series=1.2.826.0.1.98.1 reason="modality', self.d.log_text())

    def test_3_disk_nearly_full(self):
        d = Daemon(storage__min_free_mb=1048576).start()   # 1 TiB: more than this disk has
        try:
            src = pancreas_files()[0]
            r = d.storescu([src, pancreas_files()[1]], extra=["-nh"])
            responses = store_responses(r.stdout + r.stderr)
            self.assertEqual([s for _, s in responses], ["Refused: OutOfResources"] * 2,
                             r.stdout + r.stderr)
            st = d.status()
            self.assertEqual(st["instances"], 0)
            self.assertEqual(st["received"]["instances_failed"], 2)
            self.assertIn("storage nearly full", d.log_text())
            self.assertEqual(d.echoscu().returncode, 0)
        finally:
            d.stop()
            d.cleanup()


if __name__ == "__main__":
    main()
