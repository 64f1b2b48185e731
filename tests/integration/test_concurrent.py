"""
Eight storescu processes push pancreas-ct-cb001 at once (1,072 C-STOREs of
the same 134 instances, replacing each other): all succeed, and the index
ends with 134 instances, one series, one study, and one file per instance.
"""
import os
import subprocess
import unittest

from r3dtest import Daemon, main, pancreas_files, store_responses


class Concurrent(unittest.TestCase):
    def test_eight_senders(self):
        d = Daemon(dicom__max_associations=16, pipeline__stable_seconds=30).start()
        try:
            files = pancreas_files()
            procs = [subprocess.Popen(["storescu", "-v", "-aet", "SENDER%d" % i, "-aec", "RECON3D",
                                       "127.0.0.1", str(d.dicom_port)] + files,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                     for i in range(8)]
            outputs = [p.communicate(timeout=600)[0] for p in procs]
            for i, (p, out) in enumerate(zip(procs, outputs)):
                self.assertEqual(p.returncode, 0, "sender %d: %s" % (i, out[-1500:]))
                responses = store_responses(out)
                self.assertEqual(len(responses), 134, "sender %d" % i)
                self.assertTrue(all(s == "Success" for _, s in responses), "sender %d" % i)
            st = d.status()
            self.assertEqual((st["studies"], st["series"], st["instances"]), (1, 1, 134))
            self.assertEqual(st["associations_total"], 8)
            self.assertEqual(st["associations_rejected"], 0)
            self.assertEqual(st["received"]["instances_ok"], 8 * 134)
            on_disk = [f for _, _, fs in os.walk(d.storage) for f in fs if f.endswith(".dcm")]
            self.assertEqual(len(on_disk), 134)
            with d.db() as db:
                self.assertEqual(db.execute("SELECT instances FROM series_totals").fetchone()[0], 134)
                self.assertEqual(db.execute("SELECT instances FROM study_totals").fetchone()[0], 134)
                paths = [r[0] for r in db.execute("SELECT path FROM instances")]
            self.assertTrue(all(os.path.exists(p) for p in paths))
        finally:
            d.stop()
            d.cleanup()


if __name__ == "__main__":
    main()
