"""
SIGKILL in the middle of a push, then a restart: every instance storescu was
told had been stored is on disk and in the index, nothing half-written is
left, and the study is queued after the restart.
"""
import os
import re
import sqlite3
import subprocess
import time
import unittest

from r3dtest import Daemon, dcm_value, main, pancreas_files, store_responses


class Crash(unittest.TestCase):
    def test_sigkill_mid_push(self):
        d = Daemon(pipeline__stable_seconds=2, pipeline__min_slices=10).start()
        try:
            files = pancreas_files()
            push = subprocess.Popen(["storescu", "-v", "-aec", "RECON3D", "127.0.0.1",
                                     str(d.dicom_port)] + files,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            deadline = time.time() + 60
            while time.time() < deadline and d.log_text().count("instance stored") < 40:
                time.sleep(0.01)
            d.kill()
            out = push.communicate(timeout=120)[0]
            succeeded = [f for f, s in store_responses(out) if s == "Success"]
            self.assertGreaterEqual(len(succeeded), 40)
            self.assertLess(len(succeeded), len(files), "the push was not interrupted")

            d.start()
            with d.db() as db:
                indexed = dict(db.execute("SELECT sop_uid, path FROM instances"))
            for f in succeeded:
                sop = dcm_value(f, "0008,0018")
                self.assertIn(sop, indexed, "instance acknowledged but not indexed: " + f)
                self.assertTrue(os.path.exists(indexed[sop]), indexed[sop])
                self.assertEqual(dcm_value(indexed[sop], "0008,0018"), sop)
            self.assertEqual(os.listdir(os.path.join(d.storage, ".incoming")), [])
            st = d.wait_for(lambda s: s["jobs"]["queued"] == 1, timeout=30,
                            what="study queued after restart")
            self.assertEqual(st["instances"], len(indexed))
        finally:
            d.stop()
            d.cleanup()


if __name__ == "__main__":
    main()
