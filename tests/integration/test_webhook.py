"""
The signed webhook, end to end: pancreas-ct-cb001 pushed to recon3d; once
its job is done (no PACS destination here), exactly one message for the
study reaches a real HTTP receiver (tests/notify/receiver.py, which checks
the Standard Webhooks signature itself with Python's hmac). The receiver
answers 500 twice and then 200: the message arrives on the third attempt
with the same webhook-id, every attempt is recorded, and no further message
follows. The body names the study, its series and structures, and carries no
patient name.
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

from r3dtest import Daemon, dcm_value, main, pancreas_files

RECEIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "notify", "receiver.py")


class Webhook(unittest.TestCase):
    def test_one_signed_message_after_retries(self):
        work = tempfile.mkdtemp(prefix="r3d-hook-")
        secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        log = os.path.join(work, "requests.jsonl")
        recv = subprocess.Popen([sys.executable, RECEIVER, "--secret", secret, "--log", log,
                                 "--script", "500,500,200", "--max-seconds", "300"],
                                stdout=subprocess.PIPE, text=True)
        port = int(recv.stdout.readline().split()[1])
        d = Daemon(pipeline__workers=1, pipeline__stable_seconds=1, retry__initial_delay_s=1,
                   retry__max_delay_s=2, webhook__url="http://127.0.0.1:%d/hook" % port,
                   webhook__secret=secret, print__distances="bone:skin, vessels:bone")
        d.start()
        try:
            r = d.storescu(pancreas_files())
            self.assertEqual(r.returncode, 0, r.stderr[-1500:])
            st = d.wait_for(lambda s: s["webhook"]["delivered"] == 1, timeout=300,
                            what="the message delivered")
            self.assertEqual(st["webhook"]["attempts"], 3)
            self.assertEqual(st["webhook"]["attempts_failed"], 2)
            time.sleep(3)   # nothing more may come
            with open(log) as f:
                reqs = [json.loads(line) for line in f if line.strip()]
            self.assertEqual([q["status"] for q in reqs], [500, 500, 200])
            self.assertTrue(all(q["sig_ok"] for q in reqs), "signature did not verify")
            self.assertEqual(len({q["webhook_id"] for q in reqs}), 1)
            self.assertEqual(reqs[0]["content_type"], "application/json")
            body = json.loads(reqs[-1]["body"])
            src = pancreas_files()[0]
            self.assertEqual(body["data"]["study_instance_uid"], dcm_value(src, "0020,000d"))
            self.assertEqual(body["data"]["outcome"], "complete")
            series = body["data"]["series"]
            self.assertEqual(len(series), 1)
            self.assertEqual(series[0]["outcome"], "done")
            self.assertEqual(sorted(s["name"] for s in series[0]["structures"]),
                             ["bone", "lungs", "skin", "vessels"])
            # Print readiness (docs/printing.md): the body's summary is the
            # job's report.json, structure by structure, and its distances.
            reports = [os.path.join(root, "report.json")
                       for root, _, files in os.walk(os.path.join(d.dir, "results"))
                       if "report.json" in files]
            self.assertEqual(len(reports), 1)
            with open(reports[0]) as f:
                report = json.load(f)
            by_key = {s["key"]: s for s in report["structures"] if "print" in s}
            self.assertEqual(sorted(by_key), ["bone", "lungs", "skin", "vessels"])
            for s in series[0]["structures"]:
                p, rp = s["print"], by_key[s["name"]]["print"]
                self.assertEqual(p["printable"], rp["printable"])
                self.assertEqual(p["thin_wall"], rp["thin_wall"])
                self.assertEqual(p["shells"], len(rp["shells"]))
                self.assertGreaterEqual(p["shells"], 1)
                self.assertEqual(p["self_intersections"], rp["self_intersections"])
                self.assertAlmostEqual(p["min_wall_mm"], rp["min_wall_mm"], delta=0.006)
            self.assertEqual([(x["a"], x["b"]) for x in series[0]["distances"]],
                             [("bone", "skin"), ("vessels", "bone")])
            for x, rx in zip(series[0]["distances"], report["distances"]):
                self.assertAlmostEqual(x["mm"], rx["mm"], delta=0.006)
                # the closest points are that far apart
                gap = sum((a - b) ** 2 for a, b in zip(rx["a_lps_mm"], rx["b_lps_mm"])) ** 0.5
                self.assertAlmostEqual(gap, rx["mm"], delta=1e-3)
            self.assertNotIn("patient_name", body["data"])
            self.assertNotIn("viewer_url", body["data"])   # [viewer] enabled is false by default
            name = dcm_value(src, "0010,0010")
            if name:
                self.assertNotIn(name.split("^")[0], reqs[-1]["body"])
            with d.db() as db:
                self.assertEqual(db.execute("SELECT count(*) FROM notification_attempts").fetchone()[0], 3)
            self.assertRegex(d.metrics(), r"recon3d_webhook_attempts_total 3")
        finally:
            d.stop()
            d.cleanup()
            recv.terminate()
            recv.wait()


if __name__ == "__main__":
    main()
