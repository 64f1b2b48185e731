"""
The jobs API (issue 12, docs/api.md) on the real daemon, with a real PACS
(Orthanc, our own instance) where objects must arrive or must not.

- Tokens: every /api/ endpoint and /status without a token and with a wrong
  one is 401 (WWW-Authenticate: Bearer, a JSON error, one warning line with
  the peer address and path, never the token); a read token may GET (200)
  and never POST (403); an admin token may do both. /healthz, /metrics and
  the 3D page need none. Malformed requests: 400, 404, 405 with Allow, 409.
- Without any [token] section the daemon makes an admin token file next to
  the database (0600, 64 hex digits), logs its path and never the token, and
  keeps it across a restart.
- Retry after the cause is fixed: the results folder is replaced by a file,
  the job fails; the folder is put back, the job is retried, the new job is
  done and its objects are in Orthanc.
- Cancel: a queued job is cancelled at once and never starts; a running job
  (an engine that sleeps) is cancelled at its next stage boundary and
  Orthanc receives nothing from it; retried, the job then delivers.
- Outbox: Orthanc is down, the objects fail; one is dropped, the others are
  retried once Orthanc is up: they arrive, the dropped one never does, and
  /status and /metrics count it as dropped.
- A re-run with another route: 404 for an unknown study, 400 for an unknown
  route, 202 and a new job otherwise.
- The test series carry a patient name, ID and birth date: no API answer
  holds any of them.
"""
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "send"))
import sendtest  # noqa: E402
from r3dtest import ADMIN_TOKEN, READ_TOKEN, Daemon, http_get, http_request  # noqa: E402

PHANTOM = os.environ.get("R3D_PHANTOM_BIN", "recon3d-phantom")
ENGINE = os.path.join(HERE, "engine_phantom.py")
TABLE = {"1": {"name": "bone_sphere", "color": "#ff8000",
               "category": "91723000^SCT^Anatomical Structure", "type": "3138006^SCT^Bone"}}
# What the series carry and no answer may.
PATIENT_NAME = "APITEST^SECRETNAME"
PATIENT_ID = "APISECRETID42"
BIRTH_DATE = "19610203"
WRONG_TOKEN = "wrong-token-000000000000000000000000000000000"
CANCEL_REASON = "cancelled by the jobs API"


def make_series(folder):
    """A small phantom CT series (its own study) with patient name, ID and birth date."""
    import pydicom
    subprocess.run([PHANTOM, "--out", folder, "--size", "96", "--slices", "48",
                    "--spacing", "2,2,2.5", "--patient", PATIENT_NAME],
                   check=True, capture_output=True)
    os.unlink(os.path.join(folder, "truth.json"))
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    for f in files:
        ds = pydicom.dcmread(f)
        ds.PatientID = PATIENT_ID
        ds.PatientBirthDate = BIRTH_DATE
        ds.save_as(f)
    return files


class Api(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="r3d-api-")
        self.daemons = []
        self.orthanc = None
        self.answers = []   # every API answer body: none may hold patient data

    def tearDown(self):
        for d in self.daemons:
            d.stop()
            d.cleanup()
        if self.orthanc is not None:
            self.orthanc.stop()
        for body in self.answers:
            for secret in (b"APITEST", b"SECRETNAME", PATIENT_ID.encode(), BIRTH_DATE.encode(),
                           b"1961-02-03"):
                self.assertNotIn(secret, body, "patient data in an API answer")
        shutil.rmtree(self.work, ignore_errors=True)

    # ---- helpers ----------------------------------------------------------

    def pacs(self, start=True):
        os.makedirs(os.path.join(self.work, "orthanc"), exist_ok=True)
        self.orthanc = sendtest.Orthanc(os.path.join(self.work, "orthanc"))
        if start:
            self.orthanc.start()
        return self.orthanc

    def daemon(self, workers=1, destination=True, start=True, **kw):
        args = dict(pipeline__workers=workers, pipeline__stable_seconds=1,
                    pipeline__min_slices=10, export__preview="false",
                    retry__initial_delay_s=1, retry__max_delay_s=1)
        args.update(kw)
        d = Daemon(workdir=tempfile.mkdtemp(dir=self.work), **args)
        if destination:
            d.conf["destination orthanc"] = {"ae_title": sendtest.AET, "host": "127.0.0.1",
                                             "port": self.orthanc.dicom_port,
                                             "connect_timeout_s": 2}
        d.write_conf()
        self.daemons.append(d)
        if start:
            d.start()
        return d

    def call(self, d, method, path, body=None, token="default"):
        code, parsed, raw = d.api(method, path, body=body, token=token)
        self.answers.append(raw)
        return code, parsed

    def ok(self, d, method, path, want=200, body=None):
        code, parsed = self.call(d, method, path, body=body)
        self.assertEqual(code, want, (method, path, parsed, d.log_text()[-2000:]))
        return parsed

    def store(self, d, name):
        files = make_series(os.path.join(self.work, name))
        r = d.storescu(files)
        self.assertEqual(r.returncode, 0, r.stderr[-1500:])
        return files

    def wait_job(self, d, job_id, states, timeout=180):
        deadline = time.time() + timeout
        job = None
        while time.time() < deadline:
            code, job = self.call(d, "GET", "/api/jobs/%d" % job_id)
            if code == 200 and job["state"] in states:
                return job
            time.sleep(0.2)
        raise AssertionError("job %d not %s in %d s: %s\n%s" % (job_id, states, timeout, job,
                                                              d.log_text()[-3000:]))

    def wait_jobs(self, d, n, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            jobs = self.ok(d, "GET", "/api/jobs")["jobs"]
            if len(jobs) >= n:
                return sorted(jobs, key=lambda j: j["id"])
            time.sleep(0.2)
        raise AssertionError("fewer than %d jobs after %d s\n%s" % (n, timeout, d.log_text()[-3000:]))

    def wait_outbox(self, d, job_id, pred, timeout=120, what="outbox"):
        deadline = time.time() + timeout
        rows = []
        while time.time() < deadline:
            rows = self.ok(d, "GET", "/api/jobs/%d" % job_id)["outbox"]
            if rows and pred(rows):
                return rows
            time.sleep(0.3)
        raise AssertionError("%s: %s\n%s" % (what, rows, d.log_text()[-3000:]))

    def in_orthanc(self, rows):
        return [self.orthanc.instance(r["sop_instance_uid"]) is not None for r in rows]

    # ---- tokens and roles -------------------------------------------------

    def test_tokens_roles_and_errors(self):
        self.pacs(start=False)
        d = self.daemon(workers=0)   # the job stays queued
        self.store(d, "ct")
        job = self.wait_jobs(d, 1)[0]
        self.assertEqual(job["state"], "queued")
        study = job["study_uid"]
        gets = ["/status", "/api/studies", "/api/jobs", "/api/jobs?state=queued&limit=5",
                "/api/jobs/%d" % job["id"], "/api/outbox", "/api/outbox?state=failed"]
        posts = ["/api/jobs/%d/retry" % job["id"], "/api/jobs/%d/cancel" % job["id"],
                 "/api/studies/%s/rerun" % study, "/api/outbox/1/retry", "/api/outbox/1/drop"]
        unauthorized = 0
        for path in gets + posts:
            method = "GET" if path in gets else "POST"
            body = {"route": "default"} if path.endswith("/rerun") else None
            for token in (None, WRONG_TOKEN):
                code, raw, headers = http_request(d.url(path), method=method, token=token, body=body)
                self.answers.append(raw)
                self.assertEqual(code, 401, (method, path, token))
                self.assertTrue(headers.get("WWW-Authenticate", "").startswith("Bearer"), headers)
                self.assertIn("error", json.loads(raw))
                unauthorized += 1
            code, parsed = self.call(d, method, path, body=body, token=READ_TOKEN)
            self.assertEqual(code, 200 if method == "GET" else 403, (method, path, parsed))
            self.assertIsInstance(parsed, dict)
            if method == "POST":
                self.assertIn("role = read", parsed["error"])
        # The admin token: every GET answers; the changes as their states allow.
        for path in gets:
            self.ok(d, "GET", path)
        self.ok(d, "POST", "/api/jobs/%d/retry" % job["id"], want=409)   # queued: nothing to retry
        self.ok(d, "POST", "/api/outbox/1/retry", want=404)
        self.ok(d, "POST", "/api/outbox/1/drop", want=404)
        # The log: one warning per refused request, with the peer and path, no token.
        log = d.log_text()
        lines = [ln for ln in log.splitlines() if "unauthorized request" in ln]
        self.assertEqual(len(lines), unauthorized, lines[:4])
        self.assertTrue(all(" warn " in ln and "peer=127.0.0.1" in ln for ln in lines), lines[:2])
        self.assertTrue(any("path=/api/jobs/%d/cancel" % job["id"] in ln for ln in lines))
        for secret in (ADMIN_TOKEN, READ_TOKEN, WRONG_TOKEN):
            self.assertNotIn(secret, log)
        # No token needed: health, metrics, the 3D page (its link is its own token).
        self.assertEqual(http_get(d.url("/healthz"))[0], 200)
        code, metrics = http_get(d.url("/metrics"))
        self.assertEqual(code, 200)
        self.assertIn('recon3d_jobs{state="cancelled"}', metrics)
        self.assertNotEqual(http_get(d.url("/viewer/" + "ab" * 32))[0], 401)
        # Malformed requests.
        code, _, headers = http_request(d.url("/api/jobs/%d/cancel" % job["id"]), token=ADMIN_TOKEN)
        self.assertEqual(code, 405)
        self.assertEqual(headers.get("Allow"), "POST")
        self.assertEqual(self.call(d, "POST", "/api/jobs")[0], 405)
        self.assertEqual(self.call(d, "POST", "/status")[0], 405)
        self.assertEqual(self.call(d, "GET", "/api/nothing")[0], 404)
        self.assertEqual(self.call(d, "GET", "/api/jobs/999")[0], 404)
        self.assertEqual(self.call(d, "GET", "/api/jobs/abc")[0], 404)
        self.assertEqual(self.call(d, "GET", "/api/jobs?state=bogus")[0], 400)
        self.assertEqual(self.call(d, "GET", "/api/jobs?limit=0")[0], 400)
        self.assertEqual(self.call(d, "GET", "/api/outbox?state=queued")[0], 400)
        code, raw, _ = http_request(d.url("/api/studies/%s/rerun" % study), method="POST",
                                    token=ADMIN_TOKEN, body=b"{not json")
        self.assertEqual(code, 400)
        self.assertIn("not JSON", json.loads(raw)["error"])
        self.assertEqual(self.call(d, "POST", "/api/studies/%s/rerun" % study, body={})[0], 400)
        self.assertEqual(self.call(d, "POST", "/api/studies/1.2.3.4/rerun",
                                   body={"route": "default"})[0], 404)
        code, err = self.call(d, "POST", "/api/studies/%s/rerun" % study, body={"route": "nosuch"})
        self.assertEqual(code, 400)
        self.assertIn("nosuch", err["error"])

        # The lists: the study with its series and job; the job in full.
        studies = self.ok(d, "GET", "/api/studies")["studies"]
        self.assertEqual(len(studies), 1)
        s = studies[0]
        self.assertEqual(s["study_uid"], study)
        self.assertGreater(s["stable_at"], s["first_received"] - 1)
        self.assertEqual(len(s["series"]), 1)
        series = s["series"][0]
        self.assertEqual((series["modality"], series["instances"], series["status"]), ("CT", 48, "queued"))
        self.assertEqual(series["jobs"], [{"id": job["id"], "state": "queued"}])
        one = self.ok(d, "GET", "/api/jobs/%d" % job["id"])
        for key in ("id", "state", "kind", "series_uid", "study_uid", "route", "created_at", "started_at",
                    "finished_at", "reason", "attempts", "stages", "selection", "outbox"):
            self.assertIn(key, one)
        self.assertEqual((one["kind"], one["started_at"], one["outbox"]), ("series", None, []))

        # Cancel a queued job: at once; twice: 409; retried: a new queued job.
        got = self.ok(d, "POST", "/api/jobs/%d/cancel" % job["id"])
        self.assertEqual(got["state"], "cancelled")
        one = self.ok(d, "GET", "/api/jobs/%d" % job["id"])
        self.assertEqual((one["state"], one["reason"]), ("cancelled", CANCEL_REASON))
        self.assertIsNotNone(one["finished_at"])
        self.ok(d, "POST", "/api/jobs/%d/cancel" % job["id"], want=409)
        new = self.ok(d, "POST", "/api/jobs/%d/retry" % job["id"], want=201)
        self.assertEqual((new["state"], new["retry_of"]), ("queued", job["id"]))
        self.ok(d, "POST", "/api/jobs/%d/retry" % job["id"], want=409)   # its retry is not finished
        self.assertEqual([j["id"] for j in self.ok(d, "GET", "/api/jobs?state=cancelled")["jobs"]],
                         [job["id"]])
        self.assertEqual(d.status()["jobs"]["cancelled"], 1)

        # Re-run with a route: 202; the queue chooses again (a new job
        # supersedes the queued one) and the study names its route.
        got = self.ok(d, "POST", "/api/studies/%s/rerun" % study, want=202, body={"route": "default"})
        self.assertEqual(got, {"study_uid": study, "route": "default", "state": "pending"})
        jobs = self.wait_jobs(d, 3, timeout=30)
        self.assertEqual([j["state"] for j in jobs], ["cancelled", "superseded", "queued"])
        self.assertEqual(self.ok(d, "GET", "/api/studies")["studies"][0]["route_override"], "default")

    def test_default_token_file(self):
        self.pacs(start=False)
        d = self.daemon(workers=0, destination=False, tokens=False)
        path = os.path.join(os.path.dirname(d.database), "api-token")
        self.assertTrue(os.path.exists(path))
        mode = stat.S_IMODE(os.stat(path).st_mode)
        self.assertEqual(mode, 0o600)
        with open(path) as f:
            text = f.read()
        self.assertRegex(text, r"^[0-9a-f]{64}\n$")
        token = text.strip()
        log = d.log_text()
        self.assertIn(path, log)
        self.assertNotIn(token, log)
        self.assertEqual(http_get(d.url("/status"))[0], 401)
        self.assertEqual(http_get(d.url("/status"), token=ADMIN_TOKEN)[0], 401)
        self.assertEqual(http_get(d.url("/status"), token=token)[0], 200)
        code, _, _ = http_request(d.url("/api/jobs/1/cancel"), method="POST", token=token)
        self.assertEqual(code, 404)   # admin: past the role check
        # A restart keeps it; nothing else appears next to the database.
        d.stop()
        d.start()
        with open(path) as f:
            self.assertEqual(f.read(), text)
        self.assertEqual(http_get(d.url("/status"), token=token)[0], 200)
        self.assertEqual([f for f in os.listdir(os.path.dirname(path)) if f.startswith("api-token")],
                         ["api-token"])

    # ---- retry, cancel, outbox against Orthanc -----------------------------

    def test_retry_after_the_cause_is_fixed(self):
        self.pacs()
        d = self.daemon()
        results = os.path.join(d.dir, "results")
        os.rmdir(results)
        with open(results, "w") as f:   # the results folder is not a folder
            f.write("in the way\n")
        self.store(d, "ct")
        first = self.wait_jobs(d, 1)[0]["id"]
        job = self.wait_job(d, first, ("failed", "done", "skipped"))
        self.assertEqual(job["state"], "failed", job)
        self.assertIn("results", job["reason"])
        self.assertEqual(job["outbox"], [])
        self.ok(d, "POST", "/api/jobs/%d/cancel" % first, want=409)   # finished
        os.unlink(results)
        os.mkdir(results)
        new = self.ok(d, "POST", "/api/jobs/%d/retry" % first, want=201)["id"]
        self.assertNotEqual(new, first)
        job = self.wait_job(d, new, ("failed", "done", "skipped"))
        self.assertEqual(job["state"], "done", job)
        self.assertEqual(job["series_uid"], self.ok(d, "GET", "/api/jobs/%d" % first)["series_uid"])
        self.assertTrue(job["reason"] is None)
        self.assertIsInstance(job["stages"], dict)
        self.assertGreater(job["stages"]["mesh"], 0)
        rows = self.wait_outbox(d, new, lambda rs: all(r["state"] == "sent" for r in rs),
                                what="the retried job's objects sent")
        self.assertGreaterEqual(len(rows), 3)   # surface segmentation, STLs, segmentation
        self.assertTrue(all(self.in_orthanc(rows)), rows)
        self.assertEqual(self.orthanc.count(), len(rows))
        self.ok(d, "POST", "/api/jobs/%d/retry" % new, want=409)   # done: re-run the study instead
        self.assertEqual(self.ok(d, "GET", "/api/outbox?state=sent")["outbox"][0]["job_id"], new)

    def test_cancel_running_and_queued_jobs(self):
        self.pacs()
        table = os.path.join(self.work, "table.json")
        with open(table, "w") as f:
            json.dump(TABLE, f)
        flag = os.path.join(self.work, "slow")
        open(flag, "w").close()
        wrapper = os.path.join(self.work, "slow-engine.sh")
        with open(wrapper, "w") as f:
            f.write('#!/bin/sh\nif [ -e "%s" ]; then sleep 12; fi\n'
                    'exec /usr/bin/python3 "%s" labels "$1" "$2"\n' % (flag, ENGINE))
        d = self.daemon(start=False, import__engine="slow", import__engine_models="with")
        d.conf["engine slow"] = {"command": "/bin/sh %s {input} {output}" % wrapper,
                                 "label_table": table, "timeout_s": 120}
        d.write_conf()
        d.start()
        self.store(d, "ct-a")
        running = self.wait_jobs(d, 1)[0]["id"]
        self.wait_job(d, running, ("running",), timeout=30)
        self.store(d, "ct-b")
        queued = self.wait_jobs(d, 2)[-1]["id"]
        self.assertEqual(self.ok(d, "GET", "/api/jobs/%d" % queued)["state"], "queued")
        # Queued: cancelled at once. Running: asked, it stops at its next stage.
        self.assertEqual(self.ok(d, "POST", "/api/jobs/%d/cancel" % queued)["state"], "cancelled")
        got = self.ok(d, "POST", "/api/jobs/%d/cancel" % running, want=202)
        self.assertEqual((got["state"], got["cancel_requested"]), ("running", True))
        job = self.wait_job(d, running, ("cancelled", "done", "failed"), timeout=120)
        self.assertEqual((job["state"], job["reason"]), ("cancelled", CANCEL_REASON), job)
        self.assertTrue(job["cancel_requested"])
        self.assertEqual(job["outbox"], [])
        self.assertIsNone(self.ok(d, "GET", "/api/jobs/%d" % queued)["started_at"])
        self.assertIn("outcome=cancelled", d.log_text())
        time.sleep(3)   # the sender would have had time: nothing reaches the PACS
        self.assertEqual(self.orthanc.count(), 0)
        self.assertEqual(self.ok(d, "GET", "/api/outbox")["outbox"], [])
        # Retried without the delay: the same series is done and delivered.
        os.unlink(flag)
        new = self.ok(d, "POST", "/api/jobs/%d/retry" % running, want=201)["id"]
        job = self.wait_job(d, new, ("done", "failed", "skipped", "cancelled"))
        self.assertEqual(job["state"], "done", job)
        rows = self.wait_outbox(d, new, lambda rs: all(r["state"] == "sent" for r in rs),
                                what="the retried job's objects sent")
        self.assertEqual(self.orthanc.count(), len(rows))
        # The cancelled queued job never ran; its series stays without objects.
        self.assertEqual(self.ok(d, "GET", "/api/jobs/%d" % queued)["state"], "cancelled")

    def test_outbox_retry_and_drop(self):
        self.pacs(start=False)   # down
        d = self.daemon(retry__max_attempts=2)
        self.store(d, "ct")
        first = self.wait_jobs(d, 1)[0]["id"]
        job = self.wait_job(d, first, ("done", "failed", "skipped"))
        self.assertEqual(job["state"], "done", job)
        rows = self.wait_outbox(d, first, lambda rs: all(r["state"] == "failed" for r in rs),
                                what="objects failed while the PACS is down")
        self.assertTrue(all(r["attempts"] == 2 and r["last_error"] for r in rows), rows)
        self.assertEqual(len(self.ok(d, "GET", "/api/outbox?state=failed")["outbox"]), len(rows))
        dropped, retried = rows[0], rows[1:]
        self.assertEqual(self.ok(d, "POST", "/api/outbox/%d/drop" % dropped["id"])["state"], "dropped")
        self.ok(d, "POST", "/api/outbox/%d/retry" % dropped["id"], want=409)
        self.ok(d, "POST", "/api/outbox/%d/drop" % dropped["id"], want=409)
        self.orthanc.start()
        for r in retried:
            self.assertEqual(self.ok(d, "POST", "/api/outbox/%d/retry" % r["id"])["state"], "pending")
        rows = self.wait_outbox(d, first, lambda rs: all(r["state"] in ("sent", "dropped") for r in rs),
                                timeout=60, what="retried objects sent")
        states = {r["id"]: r["state"] for r in rows}
        self.assertEqual(states[dropped["id"]], "dropped")
        self.assertTrue(all(states[r["id"]] == "sent" for r in retried), rows)
        self.assertEqual(self.in_orthanc(rows), [r["id"] != dropped["id"] for r in rows])
        time.sleep(2)
        self.assertIsNone(self.orthanc.instance(dropped["sop_instance_uid"]))
        self.ok(d, "POST", "/api/outbox/%d/drop" % retried[0]["id"], want=409)   # sent
        self.ok(d, "POST", "/api/outbox/%d/retry" % retried[0]["id"], want=409)
        st = d.status()
        self.assertEqual((st["outbox"]["dropped"], st["outbox"]["sent"]), (1, len(retried)))
        self.assertRegex(d.metrics(), r'recon3d_outbox\{destination="orthanc",state="dropped"\} 1\n')
        self.assertEqual([r["id"] for r in self.ok(d, "GET", "/api/outbox?state=dropped")["outbox"]],
                         [dropped["id"]])


if __name__ == "__main__":
    if shutil.which("Orthanc") is None:
        print("Orthanc is not installed: skipped", file=sys.stderr)
        sys.exit(sendtest.SKIP)
    sendtest.enter_netns(need_send_files=False)
    unittest.main(verbosity=2)
