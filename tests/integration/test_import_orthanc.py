"""
Segmentations received by C-STORE become models in the PACS (issue 11), end
to end with real peers: DCMTK's storescu sends, Orthanc (Debian package, our
own configuration in a temporary folder) receives, pydicom and dciodvfy read
what Orthanc holds.

- CT first, then its SEG (dcmqi's liver Segmentation on its three CT slices,
  too few for the presets: only the import makes models): one Surface
  Segmentation and one STL reach Orthanc in the CT's study, with the
  segment's own label, colour (its Recommended Display CIELab Value) and
  codes; the imported SEG is not sent back; dciodvfy finds no error.
- The SEG first, the CT after the SEG's study was stable: the job waits
  (state "waiting" in /status), then runs once the CT is there; same models.
- An RT Structure Set whose CT never comes (MIM's, from rt-utils): the job
  fails after [import] wait_for_source_s with "source series ... not
  received within 2 s" on the job and in /status; the object itself is kept.

Orthanc 1.10 cannot listen on loopback only, so the whole test runs in a
private network namespace (skipped where none can be made).
"""
import base64
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "send"))
import sendtest  # noqa: E402
from r3dtest import Daemon  # noqa: E402
from test_e2e_orthanc import code_of, dciodvfy_errors, edge_check  # noqa: E402

DATA = os.environ.get("R3D_DATA", os.path.join(HERE, "..", "..", "..", "shared", "data"))
LIVER = os.path.join(DATA, "seg", "dcmqi-liver")
RT = os.path.join(DATA, "seg", "rt-utils", "sample")
RECEIVER = os.path.join(HERE, "..", "notify", "receiver.py")
SURFACE_SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.5"
STL_CLASS = "1.2.840.10008.5.1.4.1.1.104.3"
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def liver_ct():
    return sorted(glob.glob(os.path.join(LIVER, "ct-3slice_*.dcm")))


class ImportEndToEnd(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="r3d-import-e2e-")
        os.makedirs(os.path.join(self.work, "orthanc"))
        self.orthanc = sendtest.Orthanc(os.path.join(self.work, "orthanc")).start()
        secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        self.hook_log = os.path.join(self.work, "requests.jsonl")
        self.recv = subprocess.Popen([sys.executable, RECEIVER, "--secret", secret, "--log",
                                      self.hook_log, "--script", "200", "--max-seconds", "300"],
                                     stdout=subprocess.PIPE, text=True)
        port = int(self.recv.stdout.readline().split()[1])
        self.d = Daemon(pipeline__workers=1, pipeline__stable_seconds=1, export__preview="false",
                        import__wait_for_source_s=2, webhook__url="http://127.0.0.1:%d/hook" % port,
                        webhook__secret=secret, viewer__enabled="true")
        self.d.conf["destination orthanc"] = {"ae_title": sendtest.AET, "host": "127.0.0.1",
                                              "port": self.orthanc.dicom_port}
        self.d.write_conf()
        self.d.start()

    def tearDown(self):
        self.d.stop()
        self.d.cleanup()
        self.recv.terminate()
        self.recv.wait()
        self.orthanc.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def store(self, files, calling="STORESCU"):
        r = self.d.storescu(files, calling=calling, extra=("-R",))
        self.assertEqual(r.returncode, 0, r.stderr[-1500:])

    def store_orthanc(self, files):
        r = subprocess.run(["storescu", "-R", "-aet", "CTSCANNER", "-aec", sendtest.AET, "127.0.0.1",
                            str(self.orthanc.dicom_port)] + list(files),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr[-1500:])

    def jobs(self):
        with self.d.db() as db:
            return db.execute("SELECT j.id, j.state, coalesce(j.reason, ''),"
                              " j.import_instance_id IS NOT NULL FROM jobs j ORDER BY j.id").fetchall()

    def wait_delivered(self, n, what):
        # The objects go out while a job still runs (issue 15): its end too.
        return self.d.wait_for(lambda s: (any(x["name"] == "orthanc" and x["sent"] >= n
                                              for x in s["destinations"])
                                          and not s["jobs"].get("running"))
                               or s["jobs"].get("failed", 0) > 0,
                               timeout=120, what=what)

    def download(self, iid):
        path = os.path.join(self.work, iid + ".dcm")
        with urllib.request.urlopen("http://127.0.0.1:%d/instances/%s/file"
                                    % (self.orthanc.http_port, iid), timeout=30) as f, \
                open(path, "wb") as out:
            out.write(f.read())
        return path

    def check_liver_models(self):
        """What Orthanc holds after the liver import: the CT's study with one
        Surface Segmentation and one STL of the segment 'Liver', named,
        coloured and coded as the SEG says; no Segmentation sent back."""
        import numpy as np
        import pydicom
        seg = pydicom.dcmread(os.path.join(LIVER, "liver.dcm"), stop_before_pixels=True)
        ct = pydicom.dcmread(liver_ct()[0], stop_before_pixels=True)
        src = seg.SegmentSequence[0]
        studies = self.orthanc.get("/studies")
        self.assertEqual(len(studies), 1)
        study = self.orthanc.get("/studies/" + studies[0])
        self.assertEqual(study["MainDicomTags"]["StudyInstanceUID"], str(ct.StudyInstanceUID))
        by_class = {}
        for sid in study["Series"]:
            for iid in self.orthanc.get("/series/" + sid)["Instances"]:
                tags = self.orthanc.get("/instances/%s/simplified-tags" % iid)
                by_class.setdefault(tags["SOPClassUID"], []).append((iid, tags))
        # Orthanc holds the CT (sent to it directly), the Surface
        # Segmentation and the STL; no SEG of ours (the imported one is not
        # sent back).
        self.assertEqual(len(by_class.get(SURFACE_SEG_CLASS, [])), 1, sorted(by_class))
        self.assertEqual(len(by_class.get(STL_CLASS, [])), 1, sorted(by_class))
        self.assertNotIn(SEG_CLASS, by_class)

        ss_path = self.download(by_class[SURFACE_SEG_CLASS][0][0])
        self.assertEqual(dciodvfy_errors(ss_path), [], "Surface Segmentation")
        ss = pydicom.dcmread(ss_path)
        self.assertEqual([str(x.SegmentLabel) for x in ss.SegmentSequence], [str(src.SegmentLabel)])
        mine = ss.SegmentSequence[0]
        for kw in ("SegmentedPropertyCategoryCodeSequence", "SegmentedPropertyTypeCodeSequence"):
            self.assertEqual(code_of(mine, kw), code_of(src, kw), kw)
        surf = ss.SurfaceSequence[0]
        self.assertEqual([int(v) for v in surf.RecommendedDisplayCIELabValue],
                         [int(v) for v in src.RecommendedDisplayCIELabValue])
        idx = np.frombuffer(surf.SurfaceMeshPrimitivesSequence[0].LongTrianglePointIndexList,
                            dtype="<u4").reshape(-1, 3).astype(np.int64) - 1
        self.assertGreater(len(idx), 100)
        self.assertEqual(edge_check(idx), (0, 0, 0), "surface as stored")
        # It references the CT slices it was made on.
        refs = {str(i.ReferencedSOPInstanceUID) for s in ss.ReferencedSeriesSequence
                for i in s.ReferencedInstanceSequence}
        self.assertEqual(refs, {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                                for p in liver_ct()})

        stl_path = self.download(by_class[STL_CLASS][0][0])
        self.assertEqual(dciodvfy_errors(stl_path), [], "STL")
        stl = pydicom.dcmread(stl_path)
        self.assertEqual(str(stl.SeriesDescription), "3D model: %s (STL)" % src.SegmentLabel)

        # report.json of the import job names the segment as the object did.
        jobs = self.jobs()
        done = [j for j in jobs if j[3] and j[1] == "done"]
        self.assertEqual(len(done), 1, jobs)
        with open(os.path.join(self.d.dir, "results", str(done[0][0]), "report.json")) as f:
            rep = json.load(f)
        self.assertEqual([x["label"] for x in rep["structures"]], [str(src.SegmentLabel)])

    def test_ct_then_seg(self):
        self.store_orthanc(liver_ct())
        self.store(liver_ct())
        # Three slices: too few for the presets; nothing but the import will be made.
        self.d.wait_for(lambda s: s["series_ineligible"] == 1, what="the CT judged")
        self.store([os.path.join(LIVER, "liver.dcm")], calling="AIENGINE")
        st = self.wait_delivered(2, "the liver's models in Orthanc")
        self.assertEqual(st["jobs"].get("failed", 0), 0, st["recent_jobs"])
        self.check_liver_models()
        job = [j for j in st["recent_jobs"] if j["kind"] == "import"][0]
        self.assertEqual(job["state"], "done")
        # The webhook names the segment as the SEG does.
        self.d.wait_for(lambda s: s["webhook"]["delivered"] >= 1, what="the webhook message")
        with open(self.hook_log) as f:
            bodies = [json.loads(json.loads(line)["body"]) for line in f if line.strip()]
        done = [x for b in bodies for x in b["data"]["series"] if x["outcome"] == "done"]
        self.assertEqual(len(done), 1, bodies)
        self.assertEqual([x["label"] for x in done[0]["structures"]], ["Liver"])
        # The 3D page of the study lists it, with the SEG's colour, and serves its STL.
        link = [b["data"]["viewer_url"] for b in bodies if b["data"].get("viewer_url")][-1]
        with urllib.request.urlopen(link + "/models.json", timeout=10) as r:
            models = json.loads(r.read())
        self.assertEqual([m["label"] for m in models["structures"]], ["Liver"])
        seg = __import__("pydicom").dcmread(os.path.join(LIVER, "liver.dcm"), stop_before_pixels=True)
        with open(os.path.join(self.d.dir, "results", str(job["id"]), "report.json")) as f:
            rgb = json.load(f)["structures"][0]["color_rgb"]
        self.assertEqual(models["structures"][0]["color_rgb"], [round(255 * c) for c in rgb])
        self.assertNotEqual(list(seg.SegmentSequence[0].RecommendedDisplayCIELabValue), [0, 0, 0])
        with urllib.request.urlopen(link + "/" + models["structures"][0]["file"], timeout=10) as r:
            stl = r.read()
        self.assertEqual(len(stl), 84 + 50 * int.from_bytes(stl[80:84], "little"))
        self.assertEqual(job["source_series_uid"], str(__import__("pydicom").dcmread(
            liver_ct()[0], stop_before_pixels=True).SeriesInstanceUID))

    def test_seg_then_ct(self):
        self.store([os.path.join(LIVER, "liver.dcm")], calling="AIENGINE")
        self.d.wait_for(lambda s: s["jobs"].get("waiting", 0) == 1, what="the import waiting")
        # The daemon's wait is 2 s; the CT comes within it.
        self.store_orthanc(liver_ct())
        self.store(liver_ct())
        st = self.wait_delivered(2, "the liver's models in Orthanc")
        self.assertEqual(st["jobs"].get("failed", 0), 0, st["recent_jobs"])
        self.assertEqual(st["jobs"].get("waiting", 0), 0)
        self.check_liver_models()

    def test_source_never_arrives(self):
        rt = os.path.join(RT, "rt.dcm")
        self.store([rt], calling="PLANNING")
        st = self.d.wait_for(lambda s: s["jobs"].get("failed", 0) == 1, timeout=30,
                             what="the import failed")
        import pydicom
        ref = pydicom.dcmread(rt, stop_before_pixels=True)
        series = str(ref.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
                     .RTReferencedSeriesSequence[0].SeriesInstanceUID)
        job = [j for j in st["recent_jobs"] if j["kind"] == "import"][0]
        self.assertEqual(job["state"], "failed")
        self.assertEqual(job["reason"], "source series %s not received within 2 s" % series)
        self.assertEqual(job["series_uid"], str(ref.SeriesInstanceUID))
        # The object is kept like any other instance; nothing went to Orthanc.
        with self.d.db() as db:
            paths = [r[0] for r in db.execute("SELECT path FROM instances")]
        self.assertEqual(len(paths), 1)
        self.assertTrue(os.path.exists(paths[0]))
        self.assertEqual(self.orthanc.count(), 0)
        self.assertIn("import job failed job=%d" % job["id"], self.d.log_text())


if __name__ == "__main__":
    if shutil.which("Orthanc") is None:
        print("Orthanc is not installed: skipped", file=sys.stderr)
        sys.exit(sendtest.SKIP)
    if not os.path.isdir(LIVER):
        print("no ../shared/data/seg: skipped", file=sys.stderr)
        sys.exit(sendtest.SKIP)
    sendtest.enter_netns(need_send_files=False)
    unittest.main(verbosity=2)
