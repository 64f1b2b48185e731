"""
DICOM TLS both ways, HTTPS for the webhook and for the HTTP server (issue
13), with real peers and certificates made by openssl (tls_certs.py): a CA,
server and client certificates it signs, a second CA nobody trusts, an
expired client certificate.

- The TLS listener (beside the plain one, and alone with port = 0): DCMTK's
  echoscu/storescu with +tls and a good client certificate get in and store;
  no certificate, a certificate of another CA, an expired one, plain TCP on
  the TLS port, and a client that does not trust our CA all fail the
  handshake: one log line each with the peer address and the reason, and
  recon3d_dicom_tls_handshake_failures_total counts them; nothing is
  stored. The calling-AE allow-list still applies over TLS.
- tls_verify_peer = false: a client without a certificate gets in.
- Destinations with tls = true: the models reach DCMTK's storescp +tls and
  an Orthanc with DICOM TLS; a destination whose CA we do not trust, or
  whose certificate subject is not the pinned one, gets nothing and the
  outbox says why.
- The webhook over https: verified against [webhook] ca_file (delivered),
  refused against the system's CAs (not delivered, the reason names the
  certificate), delivered with tls_insecure = true and a warning in the log.
- [http] tls_certificate: /healthz answers over https, verified with the CA;
  plain http gets no answer.

storescp and Orthanc cannot listen on loopback only, so the test runs in a
private network namespace (skipped where none can be made).
"""
import base64
import glob
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "send"))
import sendtest  # noqa: E402
import tls_certs  # noqa: E402
from r3dtest import Daemon, PANCREAS  # noqa: E402
from test_engine import make_phantom  # noqa: E402

RECEIVER = os.path.join(HERE, "..", "notify", "receiver.py")
STL_CLASS = "1.2.840.10008.5.1.4.1.1.104.3"


def metric(d, name):
    m = re.search(r"^recon3d_%s (\d+)$" % name, d.metrics(), re.M)
    return int(m.group(1)) if m else None


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="r3d-tls-")
        cls.c = tls_certs.make(os.path.join(cls.work, "certs"))
        cls.ct = os.path.join(cls.work, "ct")
        make_phantom(cls.ct)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def setUp(self):
        self.daemons, self.servers = [], []

    def tearDown(self):
        for d in self.daemons:
            d.stop()
            d.cleanup()
        for s in self.servers:
            s.stop()

    def daemon(self, extra=None, **kw):
        c = self.c
        base = dict(dicom__tls_port=sendtest.free_port(), dicom__tls_certificate=c["server_cert"],
                    dicom__tls_private_key=c["server_key"], dicom__tls_trusted_certificates=c["ca"],
                    pipeline__min_slices=10)
        base.update(kw)
        d = Daemon(**base)
        for section, keys in (extra or {}).items():
            d.conf[section] = keys
        d.write_conf()
        d.start()
        self.daemons.append(d)
        return d

    def tls_args(self, cert, key, ca=None):
        args = ["+tls", key, cert] if cert else ["+tla"]
        return args + ["+cf", ca or self.c["ca"]]

    def echo(self, d, tls, calling="ECHOSCU"):
        return subprocess.run(["echoscu", "-aet", calling, "-aec", "RECON3D"] + tls +
                              ["127.0.0.1", str(d.conf["dicom"]["tls_port"])],
                              capture_output=True, text=True, timeout=60)

    def ct_files(self):
        return sorted(os.path.join(self.ct, f) for f in os.listdir(self.ct))

    def stored(self, d):
        with d.db() as db:
            return db.execute("SELECT count(*) FROM instances").fetchone()[0]

    # ---- the listener ------------------------------------------------------

    def test_listener_verifies_callers(self):
        c = self.c
        d = self.daemon(dicom__allowed_callers="CTSCANNER@127.0.0.1 ECHOSCU@127.0.0.1")
        self.assertEqual(self.echo(d, self.tls_args(c["client_cert"], c["client_key"])).returncode, 0)
        files = self.ct_files()
        r = subprocess.run(["storescu", "-aet", "CTSCANNER", "-aec", "RECON3D"] +
                           self.tls_args(c["client_cert"], c["client_key"]) +
                           ["127.0.0.1", str(d.conf["dicom"]["tls_port"])] + files,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr[-1500:])
        self.assertEqual(self.stored(d), len(files))
        self.assertIn('tls=yes subject="CN=ctscanner.test,O=recon3d test"', d.log_text())
        # The plain port still works beside it.
        self.assertEqual(d.echoscu().returncode, 0)
        bad = [("no certificate", self.tls_args(None, None), "peer did not return a certificate"),
               ("another CA", self.tls_args(c["rogue_cert"], c["rogue_key"]), "certificate verify failed"),
               ("expired", self.tls_args(c["expired_cert"], c["expired_key"]), "certificate verify failed"),
               ("client does not trust us", self.tls_args(c["client_cert"], c["client_key"], c["otherca"]),
                "unknown ca"),
               ("plain TCP on the TLS port", [], "wrong version number")]
        for n, (what, args, reason) in enumerate(bad, 1):
            with self.subTest(what):
                self.assertNotEqual(self.echo(d, args).returncode, 0)
                deadline = time.time() + 10
                while time.time() < deadline and metric(d, "dicom_tls_handshake_failures_total") < n:
                    time.sleep(0.1)
                self.assertEqual(metric(d, "dicom_tls_handshake_failures_total"), n)
                lines = [l for l in d.log_text().splitlines() if "TLS handshake failed" in l]
                self.assertEqual(len(lines), n)
                self.assertIn("peer=127.0.0.1 reason=", lines[-1])
                self.assertIn(reason, lines[-1])
        self.assertEqual(self.stored(d), len(files))   # nothing more
        # The allow-list applies over TLS: a good certificate, an unknown AE title.
        r = self.echo(d, self.tls_args(c["client_cert"], c["client_key"]), calling="INTRUDER")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Association Rejected", r.stderr + r.stdout)
        deadline = time.time() + 10
        while time.time() < deadline and "association rejected calling=INTRUDER" not in d.log_text():
            time.sleep(0.1)
        self.assertIn("association rejected calling=INTRUDER", d.log_text())

    def test_tls_only_without_client_certificates(self):
        d = self.daemon(dicom__port=0, dicom__tls_verify_peer="false")
        self.assertEqual(self.echo(d, self.tls_args(None, None)).returncode, 0)
        self.assertIn("port=0 tls_port=%d (bcp195-nd, client certificates not asked)"
                      % d.conf["dicom"]["tls_port"], d.log_text())
        self.assertNotEqual(d.echoscu().returncode, 0)   # no plain listener

    def test_config_refusals(self):
        from test_check_config import check
        c = self.c
        for body, reason in (
                ("[dicom]\ntls_port = 2762\n", "give tls_certificate and tls_private_key"),
                ("[dicom]\ntls_port = 2762\ntls_certificate = %s\ntls_private_key = %s\n"
                 % (c["server_cert"], c["server_key"]), "give tls_trusted_certificates"),
                ("[dicom]\nport = 0\n", "no listener"),
                ("[destination p]\nae_title = P\nhost = h\nport = 1\ntls = true\n", "tls = true: give"),
                ("[http]\ntls_certificate = %s\n" % c["server_cert"], "both tls_certificate and"),
                ("[dicom]\ntls_profile = tls1.0\n", "give bcp195-nd")):
            with self.subTest(body=body):
                rc, out = check(body)
                self.assertNotEqual(rc, 0, out)
                self.assertIn(reason, out)

    # ---- destinations ------------------------------------------------------

    def storescp_tls(self, name):
        folder = os.path.join(self.work, name)
        os.makedirs(folder)
        port = sendtest.free_port()
        c = self.c
        s = sendtest.Server(["storescp", "-aet", "TLSPACS", "-od", folder, "+tls", c["pacs_key"], c["pacs_cert"],
                             "+cf", c["ca"], str(port)], os.path.join(self.work, name + ".log")).start()
        sendtest.wait_port(port, s.proc)
        self.servers.append(s)
        return folder, port

    def run_job(self, d):
        r = d.storescu(self.ct_files())
        self.assertEqual(r.returncode, 0, r.stderr[-1500:])

    def outbox(self, d):
        with d.db() as db:
            return db.execute("SELECT destination, state, coalesce(last_error, '') FROM outbox").fetchall()

    def test_destinations_over_tls(self):
        good, gport = self.storescp_tls("good")
        pinned, pport = self.storescp_tls("pinned")
        untrusted, uport = self.storescp_tls("untrusted")
        os.makedirs(os.path.join(self.work, "orthanc"))
        o = sendtest.Orthanc(os.path.join(self.work, "orthanc"))
        with open(o.conf) as f:
            oc = json.load(f)
        oc.update({"DicomTlsEnabled": True, "DicomTlsCertificate": self.c["pacs_cert"],
                   "DicomTlsPrivateKey": self.c["pacs_key"], "DicomTlsTrustedCertificates": self.c["ca"],
                   "DicomTlsRemoteCertificateRequired": True})
        with open(o.conf, "w") as f:
            json.dump(oc, f)
        o.start()
        self.servers.append(o)
        c = self.c
        d = self.daemon(extra={
            "destination good": {"ae_title": "TLSPACS", "host": "127.0.0.1", "port": gport, "tls": "true",
                                 "tls_certificate": c["client_cert"], "tls_private_key": c["client_key"]},
            "destination orthanc": {"ae_title": sendtest.AET, "host": "127.0.0.1", "port": o.dicom_port,
                                    "tls": "true", "tls_certificate": c["client_cert"],
                                    "tls_private_key": c["client_key"]},
            "destination pinned": {"ae_title": "TLSPACS", "host": "127.0.0.1", "port": pport, "tls": "true",
                                   "tls_certificate": c["client_cert"], "tls_private_key": c["client_key"],
                                   "tls_peer_subject": "CN=someone.else,O=recon3d test"},
            "destination untrusted": {"ae_title": "TLSPACS", "host": "127.0.0.1", "port": uport,
                                      "tls": "true", "tls_trusted_certificates": c["otherca"]},
        }, pipeline__workers=1, pipeline__stable_seconds=1, export__preview="false", retry__max_attempts=1)
        self.run_job(d)
        d.wait_for(lambda s: all(x["pending"] == 0 for x in s["destinations"]) and len(s["destinations"]) == 4
                   and s["jobs"].get("done", 0) == 1, timeout=180, what="delivery")
        rows = self.outbox(d)
        by = {}
        for dest, state, error in rows:
            by.setdefault(dest, set()).add((state, error if state != "sent" else ""))
        self.assertEqual({s for s, _ in by["good"]}, {"sent"}, by)
        self.assertEqual({s for s, _ in by["orthanc"]}, {"sent"}, by)
        self.assertEqual({s for s, _ in by["pinned"]}, {"failed"}, by)
        self.assertTrue(any("not the pinned tls_peer_subject" in e for _, e in by["pinned"]), by)
        self.assertEqual({s for s, _ in by["untrusted"]}, {"failed"}, by)
        self.assertTrue(any("certificate verify failed" in e for _, e in by["untrusted"]), by)
        n = len([r for r in rows if r[0] == "good"])
        self.assertEqual(len(glob.glob(os.path.join(good, "*"))), n)
        self.assertEqual(o.count(), n)
        self.assertEqual(glob.glob(os.path.join(pinned, "*")) + glob.glob(os.path.join(untrusted, "*")), [])

    # ---- HTTPS --------------------------------------------------------------

    def test_webhook_and_http_over_tls(self):
        c = self.c
        secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        log = os.path.join(self.work, "hooks.jsonl")
        recv = subprocess.Popen([sys.executable, RECEIVER, "--secret", secret, "--log", log, "--script", "200",
                                 "--max-seconds", "300", "--tls-cert", c["pacs_cert"], "--tls-key", c["pacs_key"]],
                                stdout=subprocess.PIPE, text=True)
        try:
            port = int(recv.stdout.readline().split()[1])
            url = "https://127.0.0.1:%d/hook" % port
            for case, kw, delivered in (("ca_file", {"webhook__ca_file": c["ca"]}, True),
                                        ("system CAs", {}, False),
                                        ("insecure", {"webhook__tls_insecure": "true"}, True)):
                with self.subTest(case):
                    d = self.daemon(pipeline__workers=1, pipeline__stable_seconds=1, export__preview="false",
                                    webhook__url=url, webhook__secret=secret, retry__max_attempts=1, **kw)
                    before = len(open(log).readlines()) if os.path.exists(log) else 0
                    self.run_job(d)
                    d.wait_for(lambda s: s["webhook"]["delivered"] + s["webhook"]["failed"] >= 1, timeout=180,
                               what="the webhook's outcome")
                    st = d.status()
                    self.assertEqual(st["webhook"]["delivered"], 1 if delivered else 0, st["webhook"])
                    after = len(open(log).readlines()) if os.path.exists(log) else 0
                    self.assertEqual(after - before, 1 if delivered else 0)
                    if not delivered:
                        with d.db() as db:
                            err = db.execute("SELECT last_error FROM notifications").fetchone()[0]
                        self.assertRegex(err, "(?i)certificate")
                    if case == "insecure":
                        self.assertIn("tls_insecure = true", d.log_text())
                    d.stop()
        finally:
            recv.terminate()
            recv.wait()
            recv.stdout.close()

    def status_over_https(self, d):
        ctx = ssl.create_default_context(cafile=self.c["ca"])
        with urllib.request.urlopen("https://127.0.0.1:%d/healthz" % d.http_port, context=ctx, timeout=10) as r:
            return r.status

    def test_http_server_https_only(self):
        c = self.c
        d = Daemon(http__tls_certificate=c["server_cert"], http__tls_private_key=c["server_key"])
        d.start(wait=False)
        self.daemons.append(d)
        deadline = time.time() + 20
        code = None
        while time.time() < deadline and code is None:
            try:
                code = self.status_over_https(d)
            except OSError:
                time.sleep(0.2)
        self.assertEqual(code, 200)
        self.assertIn("status endpoint on https://127.0.0.1:%d/status" % d.http_port, d.log_text())
        with self.assertRaises(Exception):
            urllib.request.urlopen("http://127.0.0.1:%d/healthz" % d.http_port, timeout=5).read()


if __name__ == "__main__":
    for tool in ("storescp", "echoscu", "openssl", "Orthanc"):
        if shutil.which(tool) is None:
            print(tool + " is not installed: skipped", file=sys.stderr)
            sys.exit(sendtest.SKIP)
    sendtest.enter_netns(need_send_files=False)
    unittest.main(verbosity=2)
