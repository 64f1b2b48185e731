"""
End to end with a real PACS: pancreas-ct-cb001 pushed to recon3d comes back
to Orthanc (Debian package, our own configuration, never the system service)
as DICOM objects in the same study: one Surface Segmentation, one
Encapsulated STL per structure, one binary DICOM Segmentation (Modality SEG
too: told apart by SOP class and description) and seven preview images,
checked through Orthanc's REST API and with dciodvfy; the STL taken back out of Orthanc is a valid binary STL inside the
CT volume. On the way: Orthanc is down when the results are ready, so they
wait in the outbox with their attempts counted and go out once it starts,
without restarting recon3d; a second destination whose called AE title
Orthanc rejects is marked failed at the first rejection and not retried.
Killed (SIGKILL) during a job and restarted, recon3d completes the job and
Orthanc ends with one copy of each object (the UIDs derive from the job).

Orthanc 1.10 cannot listen on loopback only, so the whole test runs in a
private network namespace (skipped where none can be made).
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "send"))
import sendtest  # noqa: E402
from r3dtest import Daemon, pancreas_files  # noqa: E402

OBJECTS = 13   # one Surface Segmentation + four STL + one Segmentation + seven preview images
SURFACE_SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.5"
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def outbox(d):
    with d.db() as db:
        return db.execute("SELECT destination, state, attempts, coalesce(last_error, '')"
                          " FROM outbox ORDER BY destination, id").fetchall()


class EndToEnd(unittest.TestCase):
    def test_results_reach_orthanc(self):
        work = tempfile.mkdtemp(prefix="r3d-e2e-")
        os.makedirs(os.path.join(work, "orthanc"))
        orthanc = sendtest.Orthanc(os.path.join(work, "orthanc"))
        d = Daemon(pipeline__workers=1, pipeline__stable_seconds=1,
                   retry__initial_delay_s=1, retry__max_delay_s=2, retry__max_attempts=1000)
        d.conf["destination orthanc"] = {"ae_title": sendtest.AET, "host": "127.0.0.1",
                                         "port": orthanc.dicom_port, "connect_timeout_s": 2}
        d.conf["destination wrong-ae"] = {"ae_title": "NOTORTHANC", "host": "127.0.0.1",
                                          "port": orthanc.dicom_port}
        d.write_conf()
        d.start()
        try:
            r = d.storescu(pancreas_files())
            self.assertEqual(r.returncode, 0, r.stderr[-1500:])
            # Orthanc is down: the objects wait, attempts counted.
            deadline = time.time() + 300
            while time.time() < deadline:
                rows = [x for x in outbox(d) if x[0] == "orthanc"]
                if len(rows) == OBJECTS and all(x[2] >= 2 for x in rows):
                    break
                time.sleep(0.5)
            rows = [x for x in outbox(d) if x[0] == "orthanc"]
            self.assertEqual(len(rows), OBJECTS, d.log_text()[-3000:])
            self.assertTrue(all(x[1] == "pending" and x[2] >= 2 for x in rows), rows)
            self.assertIn("association request", rows[0][3])
            st = d.status()
            self.assertEqual(st["jobs"]["done"], 1)
            self.assertGreaterEqual(st["outbox"]["pending"], OBJECTS)

            orthanc.start()
            # The PACS holds the CT it sent us.
            r = subprocess.run(["storescu", "-aec", sendtest.AET, "127.0.0.1", str(orthanc.dicom_port)]
                               + pancreas_files(), capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr[-1500:])
            st = d.wait_for(lambda s: any(x["name"] == "orthanc" and x["sent"] == OBJECTS
                                          for x in s["destinations"]),
                            timeout=120, what="objects delivered to Orthanc")
            # The rejecting destination: retried only while nothing listened
            # (transient), failed at the first rejection, and left alone then.
            d.wait_for(lambda s: any(x["name"] == "wrong-ae" and x["failed"] == OBJECTS
                                     for x in s["destinations"]), timeout=60,
                       what="rejected objects marked failed")
            wrong = [x for x in outbox(d) if x[0] == "wrong-ae"]
            self.assertEqual(len(wrong), OBJECTS)
            for dest, state, attempts, error in wrong:
                self.assertEqual(state, "failed")
                self.assertIn("called AE title not recognized", error)
            time.sleep(3)
            self.assertEqual([x[2] for x in outbox(d) if x[0] == "wrong-ae"],
                             [x[2] for x in wrong], "a rejected object was retried")
            self.assertRegex(d.metrics(),
                             r'recon3d_outbox\{destination="orthanc",state="sent"\} %d' % OBJECTS)

            # Orthanc: one study holding the CT and the five new series.
            studies = orthanc.get("/studies")
            self.assertEqual(len(studies), 1)
            series = [orthanc.get("/series/" + s) for s in orthanc.get("/studies/" + studies[0])["Series"]]
            by_modality = {}
            for s in series:
                by_modality.setdefault(s["MainDicomTags"].get("Modality"), []).append(s)
            self.assertEqual(len(by_modality["CT"][0]["Instances"]), 134)
            # Modality SEG: the Surface Segmentation and the binary Segmentation.
            self.assertEqual(sorted(s["MainDicomTags"].get("SeriesDescription")
                                    for s in by_modality["SEG"]),
                             ["3D model: segmentation", "3D models (surface segmentation)"])
            self.assertTrue(all(len(s["Instances"]) == 1 for s in by_modality["SEG"]))
            self.assertEqual(len(by_modality["M3D"]), 4)
            self.assertEqual(len(by_modality["OT"]), 1)
            previews = by_modality["OT"][0]
            self.assertEqual(previews["MainDicomTags"].get("SeriesDescription"), "3D model: preview")
            self.assertEqual(len(previews["Instances"]), 7)
            names = sorted(s["MainDicomTags"].get("SeriesDescription") for s in by_modality["M3D"])
            self.assertEqual(names, ["3D model: %s (STL)" % n for n in
                                     ("bone", "lungs", "skin", "vessels")])
            ct_study = by_modality["CT"][0]["ParentStudy"]
            self.assertTrue(all(s["ParentStudy"] == ct_study for s in series))

            # dciodvfy on every object Orthanc holds for us; the STL back out.
            rep = json.load(open(os.path.join(d.dir, "results", "1", "report.json")))
            import numpy as np
            a = np.array(rep["volume"]["affine_lps_mm"]).reshape(4, 4)
            dims = rep["volume"]["dims"]
            corners = np.array([[i, j, k, 1] for i in (0, dims[0] - 1) for j in (0, dims[1] - 1)
                                for k in (0, dims[2] - 1)], float) @ a.T
            margin = 0.5 * np.array(rep["volume"]["spacing_mm"]) + 0.5
            lo, hi = corners[:, :3].min(0) - margin, corners[:, :3].max(0) + margin
            objects = [(s, i) for s in by_modality["SEG"] + by_modality["M3D"] + by_modality["OT"]
                       for i in s["Instances"]]
            for s, iid in objects:
                path = os.path.join(work, iid + ".dcm")
                with urllib.request.urlopen("http://127.0.0.1:%d/instances/%s/file"
                                            % (orthanc.http_port, iid), timeout=30) as f, \
                        open(path, "wb") as out:
                    out.write(f.read())
                v = subprocess.run(["dciodvfy", path], capture_output=True, text=True)
                errors = [ln for ln in (v.stdout + v.stderr).splitlines() if ln.startswith("Error")]
                self.assertEqual(errors, [], s["MainDicomTags"].get("SeriesDescription"))
                if s in by_modality["SEG"]:
                    import pydicom
                    ds = pydicom.dcmread(path)
                    if s["MainDicomTags"].get("SeriesDescription") == "3D model: segmentation":
                        # Voxel masks of every meshed structure on the CT's slices.
                        self.assertEqual(ds.SOPClassUID, SEG_CLASS)
                        self.assertEqual(ds.SegmentationType, "BINARY")
                        self.assertEqual(int(ds.SeriesNumber), 9080)
                        self.assertEqual([x.SegmentLabel for x in ds.SegmentSequence],
                                         ["skin", "bone", "lungs", "vessels"])
                        self.assertEqual((int(ds.Rows), int(ds.Columns)), (512, 512))
                        self.assertEqual(ds.ReferencedSeriesSequence[0].SeriesInstanceUID,
                                         by_modality["CT"][0]["MainDicomTags"]["SeriesInstanceUID"])
                        px = ds.pixel_array
                        sn = [int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
                              for f in ds.PerFrameFunctionalGroupsSequence]
                        for number in (1, 2, 3, 4):
                            vox = sum(int(px[i].sum()) for i, n in enumerate(sn) if n == number)
                            self.assertGreater(vox, 10000, "segment %d is nearly empty" % number)
                    else:
                        self.assertEqual(ds.SOPClassUID, SURFACE_SEG_CLASS)
                if s in by_modality["OT"]:
                    import pydicom
                    ds = pydicom.dcmread(path)
                    self.assertEqual(ds.BurnedInAnnotation, "YES")
                    px = ds.pixel_array.reshape(-1, 3).astype(int)
                    lit = px.max(1) > 20
                    self.assertGreater(lit.mean(), 0.05, "preview %s is blank" % ds.ImageComments)
                    # The inner structures in their colours: the vessels' red (r well
                    # above g and b) and the lungs' blue (b above r) in every view.
                    red = (px[:, 0] > 2 * px[:, 1] + 20) & (px[:, 0] > 2 * px[:, 2] + 20)
                    blue = px[:, 2] > px[:, 0] + 30
                    self.assertGreater(red.sum() + blue.sum(), 200, ds.ImageComments)
                    self.assertGreater(blue.sum(), 50, ds.ImageComments)
                if s in by_modality["M3D"]:
                    with urllib.request.urlopen("http://127.0.0.1:%d/instances/%s/content/0042-0011"
                                                % (orthanc.http_port, iid), timeout=30) as f:
                        stl = f.read()
                    n = struct.unpack("<I", stl[80:84])[0]
                    self.assertGreaterEqual(len(stl), 84 + 50 * n)
                    self.assertLessEqual(len(stl), 84 + 50 * n + 1)   # even-length padding
                    rec = np.frombuffer(stl[84:84 + 50 * n], dtype=np.dtype(
                        [("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")]))
                    pts = rec["v"].reshape(-1, 3)
                    self.assertTrue((pts.min(0) >= lo).all() and (pts.max(0) <= hi).all())
        finally:
            d.stop()
            d.cleanup()
            orthanc.stop()
            shutil.rmtree(work, ignore_errors=True)

    def test_sigkill_during_job_one_copy_in_orthanc(self):
        work = tempfile.mkdtemp(prefix="r3d-e2e-kill-")
        os.makedirs(os.path.join(work, "orthanc"))
        orthanc = sendtest.Orthanc(os.path.join(work, "orthanc")).start()
        d = Daemon(pipeline__workers=1, pipeline__stable_seconds=1)
        d.conf["destination orthanc"] = {"ae_title": sendtest.AET, "host": "127.0.0.1",
                                         "port": orthanc.dicom_port}
        d.write_conf()
        d.start()
        try:
            r = d.storescu(pancreas_files())
            self.assertEqual(r.returncode, 0, r.stderr[-1500:])
            deadline = time.time() + 120
            while time.time() < deadline and "job started job=1" not in d.log_text():
                time.sleep(0.05)
            d.kill()
            d.start()
            d.wait_for(lambda s: any(x["name"] == "orthanc" and x["sent"] == OBJECTS
                                     for x in s["destinations"]), timeout=300,
                       what="objects delivered after the restart")
            st = d.status()
            self.assertEqual((st["jobs"]["done"], sum(st["jobs"].values())), (1, 1))
            with d.db() as db:
                sent = {row[0] for row in db.execute("SELECT sop_instance_uid FROM outbox")}
            self.assertEqual(len(sent), OBJECTS)
            # One copy of each object, with the SOP Instance UIDs recon3d sent.
            self.assertEqual(orthanc.count(), OBJECTS)
            for uid in sent:
                self.assertIsNotNone(orthanc.instance(uid), uid)
        finally:
            d.stop()
            d.cleanup()
            orthanc.stop()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if shutil.which("Orthanc") is None:
        print("Orthanc is not installed: skipped", file=sys.stderr)
        sys.exit(sendtest.SKIP)
    sendtest.enter_netns(need_send_files=False)
    unittest.main(verbosity=2)
