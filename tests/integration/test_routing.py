"""
One model set per study, chosen by rules (issue 12), end to end with real
peers: DCMTK's storescu sends a six-series study made from pancreas-ct-cb001
(six_series.py: the pancreas series, a 5 mm reconstruction, a localizer, a
bone-kernel copy, secondary captures, a dose report), Orthanc and storescp
receive the models, a webhook receiver counts the messages.

- The six series at once: exactly one job, on the pancreas series; the
  others are on the job with their reasons (the index, report.json, the log
  at info level without patient data); one model set in Orthanc; one
  webhook; `recon3d --explain-route` on the same files names the same series.
- The 5 mm series first, processed, then the 3 mm one: the thin one
  supersedes (a new job, the thick job marked superseded); the thick one
  sent again afterwards changes nothing.
- Two called AE titles route the same series to two profiles with different
  structures, destinations (two storescp) and webhooks; an AE title that
  is none of ours is rejected.
- A study with nothing usable (localizer, secondary capture, dose report):
  one skipped job with the reason for each series, nothing sent.

Orthanc 1.10 and storescp cannot listen on loopback only, so the test runs
in a private network namespace (skipped where none can be made).
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
import six_series  # noqa: E402
from r3dtest import BIN, Daemon  # noqa: E402

RECEIVER = os.path.join(HERE, "..", "notify", "receiver.py")
SURFACE_SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.5"
STL_CLASS = "1.2.840.10008.5.1.4.1.1.104.3"

STUDY = None   # made once: {name: folder}


def study():
    global STUDY
    if STUDY is None:
        STUDY = six_series.make(tempfile.mkdtemp(prefix="r3d-six-"))
    return STUDY


def files_of(*names):
    out = []
    for n in names:
        out += sorted(glob.glob(os.path.join(study()[n], "*.dcm")))
    return out


class Hooks:
    """The webhook receiver of tests/notify: every request, signature checked."""

    def __init__(self, work):
        self.secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        self.log = os.path.join(work, "requests.jsonl")
        self.proc = subprocess.Popen([sys.executable, RECEIVER, "--secret", self.secret, "--log", self.log,
                                      "--script", "200", "--max-seconds", "500"],
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline().split()[1])

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def requests(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.proc.stdout.close()


class Routing(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="r3d-routing-")
        self.hooks = Hooks(self.work)
        self.servers = []
        self.d = None

    def tearDown(self):
        if self.d is not None:
            self.d.stop()
            self.d.cleanup()
        for s in self.servers:
            s.stop()
        self.hooks.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def daemon(self, extra_conf=None, **overrides):
        kw = dict(pipeline__workers=1, pipeline__stable_seconds=2, export__preview="false",
                  webhook__url=self.hooks.url(), webhook__secret=self.hooks.secret)
        kw.update(overrides)
        self.d = Daemon(**kw)
        for section, keys in (extra_conf or {}).items():
            self.d.conf[section] = keys
        self.d.write_conf()
        self.d.start()
        return self.d

    def orthanc(self):
        os.makedirs(os.path.join(self.work, "orthanc"))
        o = sendtest.Orthanc(os.path.join(self.work, "orthanc")).start()
        self.servers.append(o)
        return o

    def storescp(self, name, aet):
        folder = os.path.join(self.work, name)
        os.makedirs(folder)
        port = sendtest.free_port()
        s = sendtest.Server(["storescp", "-aet", aet, "-od", folder, "--sort-on-study-uid", "st", str(port)],
                            os.path.join(self.work, name + ".log")).start()
        sendtest.wait_port(port, s.proc)
        self.servers.append(s)
        return folder, port

    def store(self, files, called="RECON3D"):
        r = self.d.storescu(files, called=called, extra=("-R",))
        self.assertEqual(r.returncode, 0, r.stderr[-1500:])

    def jobs(self):
        with self.d.db() as db:
            return db.execute("SELECT j.id, j.state, coalesce(j.reason, ''), s.series_uid,"
                              " coalesce(j.route, ''), j.selection, j.results_dir FROM jobs j"
                              " JOIN series s ON s.id = j.series_id ORDER BY j.id").fetchall()

    def wait_jobs(self, pred, what, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            j = self.jobs()
            if pred(j):
                return j
            time.sleep(0.3)
        self.fail("timed out waiting for %s: %s\n%s" % (what, self.jobs(), self.d.log_text()[-3000:]))

    def wait_hooks(self, n, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline and len(self.hooks.requests()) < n:
            time.sleep(0.3)
        return self.hooks.requests()

    def settled(self, delivered):
        """True when no job is queued or running and the outbox is empty."""
        with self.d.db() as db:
            busy = db.execute("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')").fetchone()[0]
            pending = db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        return busy == 0 and pending == 0 and delivered()

    # ------------------------------------------------------------------

    def test_six_series_one_model_set(self):
        o = self.orthanc()
        self.daemon(extra_conf={"destination pacs": {"ae_title": sendtest.AET, "host": "127.0.0.1",
                                                     "port": o.dicom_port}})
        uids = {n: six_series.series_uid(f) for n, f in study().items()}
        self.store(files_of(*six_series.SERIES))
        jobs = self.wait_jobs(lambda j: j and all(x[1] not in ("queued", "running") for x in j), "the job")
        hooks = self.wait_hooks(1)
        time.sleep(3)   # a second job or message would have come by now
        jobs = self.jobs()
        self.assertEqual(len(jobs), 1, jobs)
        job_id, state, reason, series, route, selection, results = jobs[0]
        self.assertEqual((state, series, route), ("done", uids["thin"], "default"), reason)
        # Every series is on the job, with why it was or was not chosen.
        sel = {s["series_uid"]: s for s in json.loads(selection)}
        self.assertEqual(set(sel), set(uids.values()))
        self.assertTrue(sel[uids["thin"]]["chosen"])
        expect = {"thick": "5 mm thick", "localizer": "localizer", "bone": "kernel (D)",
                  "sc": "secondary capture", "dose": "dose report"}
        for name, words in expect.items():
            self.assertFalse(sel[uids[name]]["chosen"], name)
            self.assertIn(words, sel[uids[name]]["reason"], name)
        with open(os.path.join(results, "report.json")) as f:
            report = json.load(f)
        self.assertEqual(report["route"], "default")
        self.assertEqual({s["series_uid"] for s in report["selection"]}, set(uids.values()))
        # The index says it per series too; the log at info level, without patient data.
        with self.d.db() as db:
            st = dict(db.execute("SELECT series_uid, status FROM series").fetchall())
        self.assertEqual(st[uids["thin"]], "queued")
        self.assertEqual(st[uids["thick"]], "not chosen")
        self.assertEqual(st[uids["localizer"]], "ineligible")
        log = self.d.log_text()
        for name in expect:
            self.assertIn("series=%s reason=" % uids[name], log)
        import pydicom
        ct = pydicom.dcmread(files_of("thin")[0], stop_before_pixels=True)
        for value in (str(ct.PatientName), str(ct.PatientID)):
            if value:
                self.assertNotIn(value, log)
        # One model set in Orthanc: one Surface Segmentation, STLs of one series.
        self.d.wait_for(lambda s: self.settled(lambda: True), timeout=120, what="delivery")
        classes = {}
        refs = set()
        for iid in o.get("/instances"):
            tags = o.get("/instances/%s/simplified-tags" % iid)
            classes[tags["SOPClassUID"]] = classes.get(tags["SOPClassUID"], 0) + 1
        self.assertEqual(classes.get(SURFACE_SEG_CLASS), 1, classes)
        self.assertGreaterEqual(classes.get(STL_CLASS, 0), 1, classes)
        for iid in o.get("/instances"):
            path = os.path.join(self.work, iid + ".dcm")
            url = "http://127.0.0.1:%d/instances/%s/file" % (o.http_port, iid)
            with urllib.request.urlopen(url, timeout=30) as f, open(path, "wb") as out:
                out.write(f.read())
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            if ds.SOPClassUID == SURFACE_SEG_CLASS:
                refs.add(str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID))
        self.assertEqual(refs, {uids["thin"]})
        # One webhook message, for the study, naming one series.
        self.assertEqual(len(hooks), 1, hooks)
        self.assertEqual(len(self.hooks.requests()), 1)
        body = json.loads(hooks[0]["body"])
        self.assertEqual([s["series_instance_uid"] for s in body["data"]["series"]], [uids["thin"]])
        # --explain-route on the same files makes the same choice.
        out = subprocess.run([BIN, "-c", self.d.conf_path, "--explain-route",
                              os.path.dirname(study()["thin"])], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        chosen = [line.split()[2] for line in out.stdout.splitlines() if line.strip().startswith("CHOSEN")]
        self.assertEqual(chosen, [uids["thin"]], out.stdout)
        self.assertIn("5 mm thick", out.stdout)

    def test_better_series_later_supersedes(self):
        o = self.orthanc()
        self.daemon(extra_conf={"destination pacs": {"ae_title": sendtest.AET, "host": "127.0.0.1",
                                                     "port": o.dicom_port},
                                "route default": {"structures": "bone"}})
        thin, thick = six_series.series_uid(study()["thin"]), six_series.series_uid(study()["thick"])
        self.store(files_of("thick"))
        self.wait_jobs(lambda j: len(j) == 1 and j[0][1] == "done", "the thick series' job")
        self.wait_hooks(1)
        # The 3 mm series arrives later: it is better, it supersedes.
        self.store(files_of("thin"))
        jobs = self.wait_jobs(lambda j: len(j) == 2 and j[1][1] == "done", "the thin series' job")
        self.assertEqual(jobs[0][3], thick)
        self.assertEqual(jobs[0][1], "superseded")
        self.assertIn("superseded by series %s" % thin, jobs[0][2])
        self.assertEqual(jobs[1][3], thin)
        hooks = self.wait_hooks(2)
        self.assertEqual(len(hooks), 2)
        # The worse one again afterwards: nothing changes.
        self.store(files_of("thick"))
        time.sleep(6)
        jobs = self.jobs()
        self.assertEqual(len(jobs), 2, jobs)
        self.assertEqual(jobs[1][1], "done")
        self.assertIn("series not chosen series=%s" % thick, self.d.log_text())
        # The 3D page's study shows the thin series only.
        with self.d.db() as db:
            live = db.execute("SELECT count(*) FROM jobs WHERE state = 'done'").fetchone()[0]
        self.assertEqual(live, 1)

    def test_rerun_with_another_route(self):
        o = self.orthanc()
        self.daemon(extra_conf={"destination pacs": {"ae_title": sendtest.AET, "host": "127.0.0.1",
                                                     "port": o.dicom_port},
                                "route default": {"structures": "lungs"},
                                "route ortho": {"called_ae": "RECON3D_BONE", "structures": "bone"}})
        thin, bone = six_series.series_uid(study()["thin"]), six_series.series_uid(study()["bone"])
        self.store(files_of("thin", "bone"))
        jobs = self.wait_jobs(lambda j: len(j) == 1 and j[0][1] == "done", "the first job")
        self.assertEqual((jobs[0][3], jobs[0][4]), (thin, "default"))   # lungs: no kernel wish, series 201
        self.wait_hooks(1)
        study_uid = str(__import__("pydicom").dcmread(files_of("thin")[0], stop_before_pixels=True)
                        .StudyInstanceUID)
        code, _, body = self.d.api("POST", "/api/studies/%s/rerun" % study_uid, {"route": "nosuch"})
        self.assertEqual(code, 400, body)
        code, _, body = self.d.api("POST", "/api/studies/%s/rerun" % study_uid, {"route": "ortho"})
        self.assertEqual(code, 202, body)
        jobs = self.wait_jobs(lambda j: len(j) == 2 and j[1][1] == "done", "the re-run")
        # Bone only: the sharp kernel is chosen now; the first job is superseded.
        self.assertEqual((jobs[1][3], jobs[1][4]), (bone, "ortho"))
        self.assertEqual(jobs[0][1], "superseded")
        self.assertIn("re-run of the study with route ortho", jobs[0][2])
        code, job, body = self.d.api("GET", "/api/jobs/%d" % jobs[1][0])
        self.assertEqual(code, 200, body)
        self.assertEqual(job["route"], "ortho")
        chosen = [s["series_uid"] for s in job["selection"] if s["chosen"]]
        self.assertEqual(chosen, [bone])

    def test_called_ae_routes(self):
        bone_dir, bone_port = self.storescp("bone", "BONEPACS")
        kid_dir, kid_port = self.storescp("kidney", "KIDPACS")
        self.daemon(extra_conf={
            "destination bonepacs": {"ae_title": "BONEPACS", "host": "127.0.0.1", "port": bone_port},
            "destination kidpacs": {"ae_title": "KIDPACS", "host": "127.0.0.1", "port": kid_port},
            "route ortho": {"called_ae": "RECON3D_BONE", "structures": "bone", "destinations": "bonepacs",
                            "webhook": self.hooks.url("/ortho")},
            "route kidney": {"called_ae": "RECON3D_KIDNEY", "structures": "lungs",
                             "destinations": "kidpacs", "webhook": self.hooks.url("/kidney")},
            "route default": {"series": "ignore"},
        }, pipeline__stable_seconds=4)
        # An AE title that is none of ours is refused at association time.
        r = self.d.echoscu(called="RECON3D_OTHER")
        self.assertNotEqual(r.returncode, 0)
        thin = files_of("thin")
        self.store(thin, called="RECON3D_BONE")
        self.store(thin, called="RECON3D_KIDNEY")
        jobs = self.wait_jobs(lambda j: len(j) == 2 and all(x[1] == "done" for x in j), "two jobs")
        self.assertEqual(sorted(x[4] for x in jobs), ["kidney", "ortho"])

        def labels(folder):
            import pydicom
            out = set()
            for path in glob.glob(os.path.join(folder, "**", "*"), recursive=True):
                if os.path.isfile(path):
                    ds = pydicom.dcmread(path, stop_before_pixels=True)
                    if ds.SOPClassUID == STL_CLASS:
                        out.add(str(ds.SeriesDescription))
            return out
        deadline = time.time() + 60
        while time.time() < deadline and not (labels(bone_dir) and labels(kid_dir)):
            time.sleep(0.5)
        self.assertEqual(labels(bone_dir), {"3D model: bone (STL)"})
        self.assertEqual(labels(kid_dir), {"3D model: lungs (STL)"})
        hooks = self.wait_hooks(2)
        self.assertEqual(sorted(h["path"] for h in hooks), ["/kidney", "/ortho"])
        # The default route ignores what comes in on [dicom] ae_title.
        self.store(files_of("thick"))
        time.sleep(6)
        self.assertEqual(len(self.jobs()), 2)
        self.assertIn("series ignored series=%s reason=\"route default ignores it\" route=default"
                      % six_series.series_uid(study()["thick"]),
                      self.d.log_text())

    def test_nothing_qualifies(self):
        o = self.orthanc()
        self.daemon(extra_conf={"destination pacs": {"ae_title": sendtest.AET, "host": "127.0.0.1",
                                                     "port": o.dicom_port}})
        self.store(files_of("localizer", "sc", "dose"))
        jobs = self.wait_jobs(lambda j: len(j) == 1, "the skipped job", timeout=60)
        self.assertEqual(jobs[0][1], "skipped")
        reason = jobs[0][2]
        self.assertTrue(reason.startswith("no series of the study qualifies:"), reason)
        for name, words in (("localizer", "localizer"), ("sc", "secondary capture"), ("dose", "dose report")):
            self.assertIn("%s: " % six_series.series_uid(study()[name]), reason)
            self.assertIn(words, reason)
        time.sleep(3)
        self.assertEqual(len(self.jobs()), 1)
        self.assertEqual(o.count(), 0)


if __name__ == "__main__":
    for tool in ("Orthanc", "storescp"):
        if shutil.which(tool) is None:
            print(tool + " is not installed: skipped", file=sys.stderr)
            sys.exit(sendtest.SKIP)
    if not os.path.isdir(six_series.PANCREAS):
        print("no ../shared/data: skipped", file=sys.stderr)
        sys.exit(sendtest.SKIP)
    sendtest.enter_netns(need_send_files=False)
    unittest.main(verbosity=2)
