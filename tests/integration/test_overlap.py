"""
Overlap, not sequence (issue 15): each result object goes to the outbox the
moment it is written, and the sender starts while the others are made; a
kind of object that fails does not hold back the others.

- Orthanc as the PACS, pancreas-ct-cb001: the first of our objects that
  Orthanc received (Orthanc's own change log, in its order) was delivered,
  by the node's outbox record (stamped when Orthanc's C-STORE response
  came, so after Orthanc stored it), before the job wrote its last object
  (report.json "exports", the node's own record). No wall-clock threshold:
  two records of the same clock are compared. Every object arrives once,
  and the jobs API names the kind of each row.
- One kind fails twice over, on a small phantom CT: the Surface
  Segmentation cannot be written (its file name is taken by a folder), and
  the destination (storescp with a profile of its own) does not accept the
  Segmentation SOP class. The STL and the previews arrive all the same; the
  job is done, and its reason, report.json, the jobs API and the webhook say
  which kinds failed and why.

Orthanc 1.10 cannot listen on loopback only, so the test runs in a private
network namespace (skipped where none can be made).
"""
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "send"))
import sendtest  # noqa: E402
from r3dtest import Daemon, free_port, pancreas_files  # noqa: E402

PHANTOM = os.environ.get("R3D_PHANTOM_BIN", "recon3d-phantom")
OBJECTS = 13   # one Surface Segmentation + four STL + one Segmentation + seven previews
KINDS = {"surface_segmentation": 1, "stl": 4, "segmentation": 1, "preview": 7}
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
SURFACE_SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.5"
STL_CLASS = "1.2.840.10008.5.1.4.1.1.104.3"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"

# A storescp profile that takes what we send except the Segmentation.
NO_SEG_PROFILE = """
[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = LittleEndianImplicit

[[PresentationContexts]]
[NoSeg]
PresentationContext1 = VerificationSOPClass\\Uncompressed
PresentationContext2 = %s\\Uncompressed
PresentationContext3 = %s\\Uncompressed
PresentationContext4 = %s\\Uncompressed

[[Profiles]]
[NoSeg]
PresentationContexts = NoSeg
""" % (SURFACE_SEG_CLASS, STL_CLASS, SC_CLASS)


class Hook(http.server.BaseHTTPRequestHandler):
    bodies = []

    def do_POST(self):
        Hook.bodies.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def outbox_rows(d):
    with d.db() as db:
        return db.execute("SELECT sop_instance_uid, state, kind, updated_at, coalesce(last_error, '')"
                          " FROM outbox ORDER BY id").fetchall()


def stop_clean(test, d):
    """Stops the daemon: exit 0, no sanitizer report (the ASan build)."""
    test.assertEqual(d.stop(), 0, d.log_text()[-2000:])
    log = d.log_text()
    test.assertNotIn("Sanitizer", log, log[-4000:])
    test.assertNotIn("runtime error", log, log[-4000:])


class Overlap(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="r3d-overlap-")
        self.stops = []

    def tearDown(self):
        for stop in reversed(self.stops):
            stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def test_first_object_arrives_before_the_last_is_written(self):
        os.makedirs(os.path.join(self.work, "orthanc"))
        orthanc = sendtest.Orthanc(os.path.join(self.work, "orthanc")).start()
        self.stops.append(orthanc.stop)
        os.makedirs(os.path.join(self.work, "r3d"))
        d = Daemon(workdir=os.path.join(self.work, "r3d"), pipeline__workers=1,
                   pipeline__stable_seconds=1)
        self.stops.append(d.cleanup)
        self.stops.append(d.stop)
        d.conf["destination orthanc"] = {"ae_title": sendtest.AET, "host": "127.0.0.1",
                                         "port": orthanc.dicom_port}
        d.write_conf()
        d.start()
        r = d.storescu(pancreas_files())
        self.assertEqual(r.returncode, 0, r.stderr[-1500:])
        d.wait_for(lambda s: s["jobs"].get("done") == 1 and
                   any(x["name"] == "orthanc" and x["sent"] == OBJECTS for x in s["destinations"]),
                   timeout=300, what="the job done and its objects in Orthanc")
        rows = outbox_rows(d)
        self.assertEqual(len(rows), OBJECTS)
        self.assertTrue(all(r[1] == "sent" for r in rows), rows)
        sent_at = {r[0]: r[3] for r in rows}
        # The jobs API names each row's kind.
        code, job, _ = d.api("GET", "/api/jobs/1")
        self.assertEqual(code, 200)
        kinds = {}
        for row in job["outbox"]:
            kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
        self.assertEqual(kinds, KINDS)
        self.assertIsNone(job["reason"])
        with open(os.path.join(d.dir, "results", "1", "report.json")) as f:
            exports = json.load(f)["exports"]
        self.assertEqual({k: e["objects"] for k, e in exports.items()}, KINDS)
        self.assertFalse(any("error" in e for e in exports.values()), exports)
        last_written = max(e["last_written_at"] for e in exports.values())

        # Orthanc's own order of reception: its change log.
        arrived = []
        since = 0
        while True:
            ch = orthanc.get("/changes?since=%d&limit=1000" % since)
            for c in ch["Changes"]:
                if c["ChangeType"] == "NewInstance":
                    uid = orthanc.get("/instances/%s" % c["ID"])["MainDicomTags"]["SOPInstanceUID"]
                    if uid in sent_at:
                        arrived.append(uid)
            since = ch["Last"]
            if ch["Done"]:
                break
        self.assertEqual(sorted(arrived), sorted(sent_at), "each object once in Orthanc")
        first = arrived[0]
        print("first object delivered %.3f s before the last was written" % (last_written - sent_at[first]), file=sys.stderr)
        self.assertLess(sent_at[first], last_written,
                        "the first object Orthanc received was delivered only after the job "
                        "wrote its last object: sequence, not overlap")
        # And the node says so in its log: a delivery before the export's summary line.
        log = d.log_text().splitlines()
        first_delivery = next(i for i, ln in enumerate(log) if "delivered job=1 " in ln)
        written = next(i for i, ln in enumerate(log) if "DICOM objects written" in ln)
        self.assertLess(first_delivery, written, "\n".join(log[-40:]))
        stop_clean(self, d)

    def test_one_kind_failing_leaves_the_others(self):
        series = os.path.join(self.work, "ct")
        subprocess.run([PHANTOM, "--out", series, "--size", "96", "--slices", "48",
                        "--spacing", "2,2,2.5"], check=True, capture_output=True)
        os.unlink(os.path.join(series, "truth.json"))
        files = sorted(os.path.join(series, f) for f in os.listdir(series))
        # The destination: storescp that does not accept the Segmentation.
        profile = os.path.join(self.work, "noseg.cfg")
        with open(profile, "w") as f:
            f.write(NO_SEG_PROFILE)
        got = os.path.join(self.work, "received")
        os.makedirs(got)
        port = free_port()
        scp = sendtest.Server(["storescp", "-aet", "NOSEG", "-xf", profile, "NoSeg", "-od", got,
                               str(port)], os.path.join(self.work, "storescp.log")).start()
        self.stops.append(scp.stop)
        sendtest.wait_port(port, scp.proc)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.stops.append(server.server_close)
        self.stops.append(server.shutdown)
        Hook.bodies.clear()
        os.makedirs(os.path.join(self.work, "r3d"))
        d = Daemon(workdir=os.path.join(self.work, "r3d"), pipeline__workers=1,
                   pipeline__stable_seconds=1, retry__max_attempts=3, retry__initial_delay_s=1,
                   retry__max_delay_s=1,
                   webhook__url="http://127.0.0.1:%d/" % server.server_address[1],
                   webhook__secret="whsec_" + "A" * 44)
        self.stops.append(d.cleanup)
        self.stops.append(d.stop)
        d.conf["destination noseg"] = {"ae_title": "NOSEG", "host": "127.0.0.1", "port": port}
        d.write_conf()
        # The Surface Segmentation's file name is taken: it cannot be written.
        taken = os.path.join(d.dir, "results", "1", "dicom", "surface-segmentation.dcm")
        os.makedirs(taken)
        open(os.path.join(taken, "keep"), "w").close()
        d.start()
        r = d.storescu(files)
        self.assertEqual(r.returncode, 0, r.stderr[-1500:])
        d.wait_for(lambda s: s["jobs"].get("done") == 1 and s["outbox"].get("pending", 0) == 0
                   and s["outbox"].get("sent", 0) > 0, timeout=300,
                   what="the job done and its objects sent or failed")
        rows = outbox_rows(d)
        by_kind = {}
        for uid, state, kind, _, error in rows:
            by_kind.setdefault(kind, []).append((state, error))
        self.assertNotIn("surface_segmentation", by_kind, "an object that was not written was queued")
        self.assertEqual(by_kind["segmentation"], [("failed", by_kind["segmentation"][0][1])])
        self.assertIn("not accepted", by_kind["segmentation"][0][1])
        self.assertIn("Segmentation", by_kind["segmentation"][0][1])
        self.assertTrue(by_kind["stl"] and all(s == "sent" for s, _ in by_kind["stl"]), by_kind)
        self.assertEqual([s for s, _ in by_kind["preview"]], ["sent"] * 7)
        # What storescp holds: the STL and the previews, nothing else of ours.
        import pydicom
        classes = {}
        for name in os.listdir(got):
            ds = pydicom.dcmread(os.path.join(got, name), stop_before_pixels=True)
            classes[ds.SOPClassUID] = classes.get(ds.SOPClassUID, 0) + 1
        self.assertEqual(classes, {STL_CLASS: len(by_kind["stl"]), SC_CLASS: 7})
        # The job is done and says which kind failed and why.
        code, job, _ = d.api("GET", "/api/jobs/1")
        self.assertEqual(code, 200)
        self.assertEqual(job["state"], "done")
        self.assertIn("surface_segmentation failed", job["reason"])
        self.assertIn("surface-segmentation.dcm", job["reason"])
        recent = d.status()["recent_jobs"]
        self.assertIn("surface_segmentation failed", recent[0]["reason"], recent)
        seg_rows = [x for x in job["outbox"] if x["kind"] == "segmentation"]
        self.assertEqual([x["state"] for x in seg_rows], ["failed"])
        self.assertIn("not accepted", seg_rows[0]["last_error"])
        with open(os.path.join(d.dir, "results", "1", "report.json")) as f:
            exports = json.load(f)["exports"]
        self.assertIn("surface-segmentation.dcm", exports["surface_segmentation"]["error"])
        self.assertEqual(exports["surface_segmentation"]["objects"], 0)
        self.assertEqual(exports["preview"]["objects"], 7)
        self.assertTrue(any("warnings=" in ln and "surface_segmentation failed" in ln
                            for ln in d.log_text().splitlines()))
        # The webhook: done, with the warning, and one object failed at the destination.
        deadline = time.time() + 60
        while not Hook.bodies and time.time() < deadline:
            time.sleep(0.2)
        self.assertTrue(Hook.bodies, d.log_text()[-2000:])
        data = Hook.bodies[0]["data"]
        series_msg = data["series"][0]
        self.assertEqual(series_msg["outcome"], "done")
        self.assertIn("surface_segmentation failed", series_msg["warnings"])
        self.assertEqual([x["failed"] for x in data["destinations"]], [1])
        stop_clean(self, d)


if __name__ == "__main__":
    for tool in ("Orthanc", "storescp"):
        if shutil.which(tool) is None:
            print("%s is not installed: skipped" % tool, file=sys.stderr)
            sys.exit(sendtest.SKIP)
    sendtest.enter_netns(need_send_files=False)
    unittest.main(verbosity=2)
