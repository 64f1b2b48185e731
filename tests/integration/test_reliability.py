"""
The reliability scenarios of issue 13, short (the full-length figures come
from bench/soak, docs/reliability.md): 8 associations pushing new series at
once for 20 s while workers mesh them; 10 SIGKILL cycles during ingest,
processing and sending with [storage] fsync = true and Orthanc as the
destination; a full disk (storage and index on a 200 MB tmpfs of this
test's own); 30 s of an Orthanc stopped and started every few seconds.
Plus the start-up's clean-up of a copy linked into storage but never
indexed (a crash between the link and the commit). Runs in private network
and mount namespaces (root; skipped otherwise).
"""
import os
import shutil
import subprocess
import tempfile
import unittest

import soak
from r3dtest import Daemon, dcm_value, main


class Reliability(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="r3d-it-soak-", dir=os.environ.get("R3D_SOAK_DIR"))

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def report(self, name, fig, problems):
        print("%s: %s" % (name, fig), flush=True)
        self.assertEqual(problems, [], "%s: %s" % (name, fig))

    def test_load(self):
        fig, problems = soak.load(self.work, associations=8, seconds=20, size=128, slices=40)
        self.report("load", fig, problems)
        self.assertGreater(fig["images_ok"], 8 * 40, fig)
        self.assertEqual(fig["errors"], 0)
        self.assertEqual(fig["indexed"], fig["images_ok"])

    def test_crashes(self):
        fig, problems = soak.crashes(self.work, cycles=10, seed=13)
        self.report("crashes", fig, problems)
        self.assertGreater(fig["acked"], 0)
        self.assertGreater(fig["objects"], 0, "no job's results reached Orthanc")

    def test_full_disk(self):
        fig, problems = soak.full_disk(self.work, size_mb=200, min_free_mb=60, series_size=256,
                                       slices=48)
        self.report("full disk", fig, problems)
        self.assertGreater(fig["statuses"].get(soak.STATUS_OUT_OF_RESOURCES, 0), 0)

    def test_flapping(self):
        fig, problems = soak.flapping(self.work, seconds=30, push_every_s=6.0, seed=13)
        self.report("flapping", fig, problems)
        self.assertGreaterEqual(fig["flaps"], 3)
        self.assertGreater(fig["objects"], 0)

    def test_unindexed_link_removed_at_start(self):
        """A crash after the instance was linked into storage and before its
        index row was committed leaves the temporary name in .incoming with a
        second link: the next start removes both, and keeps a copy the
        index does hold."""
        pool = soak.make_pool(self.work, 1, 128, 12)
        s = pool[0]
        os.makedirs(os.path.join(self.work, "d"))
        d = Daemon(workdir=os.path.join(self.work, "d"))
        try:
            d.start()
            s.retag(1)
            p = soak.Push(d.dicom_port, s.files[:1])
            p.wait(60)
            self.assertEqual(p.statuses, [soak.STATUS_SUCCESS])
            d.stop()
            kept = soak.index_rows(d)
            self.assertEqual(len(kept), 1)
            kept_path = list(kept.values())[0]
            inc = os.path.join(d.storage, ".incoming")
            # The indexed one, as if the crash came after the commit.
            os.link(kept_path, os.path.join(inc, "rcv-1-1.part"))
            # A second instance linked in but never indexed.
            study = dcm_value(s.files[1], "0020,000d")
            series = dcm_value(s.files[1], "0020,000e")
            sop = dcm_value(s.files[1], "0008,0018")
            final = os.path.join(d.storage, study, series, sop + ".dcm")
            tmp = os.path.join(inc, "rcv-1-2.part")
            shutil.copy(s.files[1], tmp)
            os.link(tmp, final)
            d.start()
            self.assertEqual(os.listdir(inc), [])
            self.assertFalse(os.path.exists(final), "an unindexed copy was left in storage")
            self.assertTrue(os.path.exists(kept_path), "an indexed copy was removed")
            problems = []
            soak.check_rows_vs_files(d, problems)
            self.assertEqual(problems, [])
            self.assertIn("1 copies never indexed", d.log_text())
        finally:
            d.stop()
            d.cleanup()


if __name__ == "__main__":
    soak.enter_namespaces()
    main()
