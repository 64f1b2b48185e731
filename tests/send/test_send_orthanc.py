"""
send.orthanc: recon3d's sender against a real Orthanc PACS (Debian package,
our own configuration in a temporary folder, never the system service), in
a private network namespace because Orthanc 1.10 has no option to listen on
loopback only. What Orthanc received is checked through its REST API.

- Pancreas slices and every cornerstone-ct file over one association: all
  delivered; Orthanc holds every SOP Instance UID, each pancreas slice in
  its own transfer syntax.
- A called AE title Orthanc does not answer to (DicomCheckCalledAet):
  failed for good, "association rejected (permanent): called AE title not
  recognized".
- A SOP class Orthanc does not accept: that file failed for good, the
  others of the batch delivered.
- Nothing listening: retry (connection refused).
- Orthanc stopped: the file is retried (transient); Orthanc started again
  while the sender's retry loop runs: delivered, without restarting the
  sender.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sendtest  # noqa: E402
from sendtest import AET, Orthanc, free_port, send, start_send, wait_port  # noqa: E402

class OrthancPeer(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="r3d-send-orthanc-")
        self.orthanc = Orthanc(self.work)

    def tearDown(self):
        self.orthanc.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def test_delivered_and_stored(self):
        o = self.orthanc.start()
        pancreas = sendtest.pancreas_files(8)
        files = pancreas + sendtest.cornerstone_files()
        rc, outs, err = send("127.0.0.1", o.dicom_port, AET, files)
        self.assertEqual(rc, 0, "%s\n%s" % (outs, err))
        self.assertTrue(all(x.outcome == "delivered" for x in outs), outs)
        self.assertIn("associated=1 nodelay=1", err)
        uids = {sendtest.dcm_value(f, "0008,0018") for f in files}
        self.assertEqual(o.count(), len(uids))   # cornerstone shares some UIDs
        for f in files:
            self.assertIsNotNone(o.instance(sendtest.dcm_value(f, "0008,0018")), f)
        for f in pancreas:
            oid = o.instance(sendtest.dcm_value(f, "0008,0018"))
            ts = o.get("/instances/%s/metadata/TransferSyntax" % oid)
            self.assertEqual(ts, sendtest.dcm_value(f, "0002,0010"), f)
            tags = o.get("/instances/%s/simplified-tags" % oid)
            self.assertEqual(tags["SeriesInstanceUID"], sendtest.dcm_value(f, "0020,000e"))

    def test_unknown_called_ae_fails_for_good(self):
        o = self.orthanc.start()
        rc, outs, _ = send("127.0.0.1", o.dicom_port, "NOTTHEPACS", sendtest.pancreas_files(3))
        self.assertEqual(rc, 1)
        for x in outs:
            self.assertEqual((x.outcome, x.code, x.attempts), ("failed", "refused", 1), x)
            self.assertEqual(x.reason,
                             "association rejected (permanent): called AE title not recognized")
        self.assertEqual(o.count(), 0)

    def test_unaccepted_sop_class_fails_alone(self):
        o = self.orthanc.start()
        ct = sendtest.pancreas_files(2)
        odd = os.path.join(self.work, "odd-class.dcm")
        shutil.copy(ct[0], odd)
        os.chmod(odd, 0o644)
        # a private SOP class (the meta header follows: dcmodify updates it)
        subprocess.run(["dcmodify", "-nb", "-m", "(0008,0016)=1.2.826.0.1.3680043.9.7777.1.1",
                        "-m", "(0008,0018)=1.2.826.0.1.3680043.9.7777.2.1", odd],
                       check=True, capture_output=True)
        self.assertEqual(sendtest.dcm_value(odd, "0002,0002"), "1.2.826.0.1.3680043.9.7777.1.1")
        rc, outs, _ = send("127.0.0.1", o.dicom_port, AET, [ct[0], odd, ct[1]])
        self.assertEqual(rc, 1)
        self.assertEqual([x.outcome for x in outs], ["delivered", "failed", "delivered"], outs)
        self.assertEqual(outs[1].code, "refused")
        self.assertIn("not accepted", outs[1].reason)
        self.assertEqual(o.count(), 2)
        # alone, the association itself carries nothing Orthanc accepts
        rc, outs, _ = send("127.0.0.1", o.dicom_port, AET, [odd])
        self.assertEqual((outs[0].outcome, outs[0].code), ("failed", "refused"), outs)
        self.assertIn("accepted none of the 2 presentation contexts", outs[0].reason)

    def test_nobody_listening_is_transient(self):
        rc, outs, _ = send("127.0.0.1", free_port(), AET, sendtest.pancreas_files(2))
        self.assertEqual(rc, 1)
        for x in outs:
            self.assertEqual((x.outcome, x.code, x.status), ("retry", "network", "-"), x)
            self.assertIn("Connection refused", x.reason)

    def test_stopped_then_started(self):
        o = self.orthanc.start()
        files = sendtest.pancreas_files(6)
        rc, outs, _ = send("127.0.0.1", o.dicom_port, AET, files[:1])
        self.assertEqual((rc, outs[0].outcome), (0, "delivered"), outs)
        o.stop()
        rc, outs, _ = send("127.0.0.1", o.dicom_port, AET, files[1:])
        self.assertEqual(rc, 1)
        self.assertTrue(all((x.outcome, x.code) == ("retry", "network") for x in outs), outs)
        # The retry loop runs while Orthanc is down, then Orthanc comes back.
        p = start_send("127.0.0.1", o.dicom_port, AET, files[1:], retry="0.3,1.5,60")
        try:
            time.sleep(2.0)
            self.assertIsNone(p.poll(), "the sender gave up while Orthanc was down")
            o.start()
            stdout, stderr = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, stdout + stderr)
        outs = [sendtest.Outcome(l) for l in stdout.splitlines()]
        self.assertTrue(all(x.outcome == "delivered" and x.attempts >= 3 for x in outs), outs)
        self.assertGreaterEqual(stderr.count("associated=0"), 2, stderr)
        self.assertEqual(o.count(), 6)   # the first one survived the restart


if __name__ == "__main__":
    if shutil.which("Orthanc") is None:
        print("Orthanc is not installed: skipped", file=sys.stderr)
        sys.exit(sendtest.SKIP)
    sendtest.enter_netns()
    unittest.main(verbosity=2)
