"""
test_http.py: r3d_notify over real HTTP on loopback. Each test starts
receiver.py (Python's http.server, its own hmac check of the Standard
Webhooks signature) on 127.0.0.1 with a port the kernel picks, drives our
notify_post_tool against it, and checks what the receiver recorded. Every
receiver stops by itself after RECEIVER_MAX_S and is also stopped by the test.

Environment (from ctest): NOTIFY_TOOL, the notify_post_tool executable.
"""
import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

TOOL = os.environ.get("NOTIFY_TOOL", "")
HERE = os.path.dirname(os.path.abspath(__file__))
RECEIVER = os.path.join(HERE, "receiver.py")
RECEIVER_MAX_S = 30
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def free_port():
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env():
    """The environment without proxies, so that loopback is reached directly."""
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


class Receiver:
    def __init__(self, tmp, secret=SECRET, script="200", delay=0.0, retry_after=None, tls=None):
        self.log = os.path.join(tmp, "requests-%d.jsonl" % id(self))
        args = [sys.executable, RECEIVER, "--secret", secret, "--log", self.log,
                "--script", script, "--delay", str(delay), "--max-seconds", str(RECEIVER_MAX_S)]
        if retry_after is not None:
            args += ["--retry-after", str(retry_after)]
        if tls is not None:
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=clean_env())
        line = self.proc.stdout.readline()
        m = re.match(r"PORT (\d+)", line or "")
        if not m:
            self.stop()
            raise AssertionError("receiver did not start: %r" % line)
        self.port = int(m.group(1))

    def url(self, scheme="http", host="127.0.0.1"):
        return "%s://%s:%d/hooks/recon3d" % (scheme, host, self.port)

    def requests(self):
        try:
            with open(self.log) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def run_tool(url, attempts=1, secret=SECRET, extra=(), timeout=60):
    """(exit code, header line, attempt lines, body bytes) of one tool run."""
    with tempfile.NamedTemporaryFile(prefix="r3d-notify-body-", delete=False) as f:
        body_path = f.name
    try:
        p = subprocess.run([TOOL, "--url", url, "--secret", secret, "--attempts", str(attempts),
                            "--body-out", body_path] + list(extra),
                           capture_output=True, text=True, timeout=timeout, env=clean_env())
        lines = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        with open(body_path, "rb") as f:
            body = f.read()
    finally:
        os.unlink(body_path)
    if not lines:
        raise AssertionError("tool printed nothing; exit %d, stderr: %s" % (p.returncode, p.stderr))
    return p.returncode, lines[0], lines[1:], body


class NotifyHttp(unittest.TestCase):
    def setUp(self):
        self.assertTrue(TOOL and os.access(TOOL, os.X_OK), "NOTIFY_TOOL not set")
        self.tmp = tempfile.mkdtemp(prefix="r3d-notify-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def receiver(self, **kw):
        r = Receiver(self.tmp, **kw)
        self.addCleanup(r.stop)
        return r

    def check_signed(self, req, head, body):
        self.assertTrue(req["sig_ok"], "receiver's hmac check failed: %r" % req)
        self.assertEqual(req["content_type"], "application/json")
        self.assertEqual(req["webhook_id"], head["id"])
        self.assertEqual(req["body"].encode(), body)
        self.assertRegex(req["webhook_signature"], r"^v1,[A-Za-z0-9+/]{43}=$")
        self.assertLess(abs(int(req["webhook_timestamp"]) - time.time()), 120)

    def test_one_signed_request(self):
        r = self.receiver(script="200")
        rc, head, attempts, body = run_tool(r.url(), attempts=3)
        self.assertEqual(rc, 0, attempts)
        reqs = r.requests()
        self.assertEqual(len(reqs), 1, reqs)
        self.assertEqual(reqs[0]["path"], "/hooks/recon3d")
        self.check_signed(reqs[0], head, body)
        self.assertEqual(len(attempts), 1)
        self.assertEqual(attempts[0]["code"], "ok")
        self.assertEqual(attempts[0]["http_status"], 200)
        self.assertEqual(attempts[0]["timestamp"], int(reqs[0]["webhook_timestamp"]))
        # The id is msg_ + the first 16 bytes of SHA-256 of the body, in hex.
        self.assertEqual(head["id"], "msg_" + hashlib.sha256(body).hexdigest()[:32])
        doc = json.loads(body)
        self.assertEqual(doc["type"], "study.finished")
        data = doc["data"]
        self.assertEqual(data["study_instance_uid"], "1.2.826.0.1.3680043.8.498.99")
        self.assertEqual(data["accession_number"], "ACC-42")
        self.assertEqual(data["outcome"], "complete")
        self.assertEqual(data["series"][0]["series_instance_uid"], "1.2.826.0.1.3680043.8.498.1")
        self.assertEqual([(s["name"], s["triangles"], s["volume_ml"]) for s in data["series"][0]["structures"]],
                         [("bone", 251234, 812.44), ("lungs", 88000, 4321.5)])
        self.assertEqual(data["destinations"], [{"name": "pacs", "ae_title": "ORTHANC",
                                                 "delivered": 4, "failed": 0}])
        self.assertAlmostEqual(data["seconds"]["total"], 7.5, places=2)
        self.assertNotIn("patient_name", data)
        self.assertNotIn(b"DOE", body)

    def test_patient_name_only_when_asked(self):
        r = self.receiver(script="200")
        rc, head, attempts, body = run_tool(r.url(), extra=["--patient-name"])
        self.assertEqual(rc, 0, attempts)
        reqs = r.requests()
        self.assertEqual(len(reqs), 1)
        self.check_signed(reqs[0], head, body)
        self.assertEqual(json.loads(body)["data"]["patient_name"], "DOE^JANE")

    def test_wrong_secret_fails_verification(self):
        # The receiver's check can fail: signed with another secret, it must say no.
        r = self.receiver(script="200", secret=OTHER_SECRET)
        rc, head, attempts, body = run_tool(r.url())
        reqs = r.requests()
        self.assertEqual(len(reqs), 1)
        self.assertFalse(reqs[0]["sig_ok"])

    def test_500_twice_then_200(self):
        r = self.receiver(script="500,500,200")
        rc, head, attempts, body = run_tool(r.url(), attempts=3)
        self.assertEqual(rc, 0, attempts)
        self.assertEqual([a["code"] for a in attempts], ["network", "network", "ok"])
        self.assertEqual([a["http_status"] for a in attempts], [500, 500, 200])
        reqs = r.requests()
        self.assertEqual(len(reqs), 3, reqs)
        for req in reqs:
            self.check_signed(req, head, body)
        self.assertEqual(len({req["webhook_id"] for req in reqs}), 1)
        self.assertEqual([req["status"] for req in reqs], [500, 500, 200])

    def test_500_until_attempts_run_out(self):
        r = self.receiver(script="503")
        rc, head, attempts, body = run_tool(r.url(), attempts=2)
        self.assertEqual(rc, 2, attempts)
        self.assertEqual(len(r.requests()), 2)
        self.assertEqual([a["code"] for a in attempts], ["network", "network"])

    def test_400_is_permanent(self):
        r = self.receiver(script="400,200")
        rc, head, attempts, body = run_tool(r.url(), attempts=3)
        self.assertEqual(rc, 3, attempts)
        self.assertEqual(len(r.requests()), 1)
        self.assertEqual(attempts[0]["code"], "refused")
        self.assertEqual(attempts[0]["http_status"], 400)
        self.assertIn("HTTP 400", attempts[0]["error"])

    def test_429_retry_after(self):
        r = self.receiver(script="429,200", retry_after=1)
        rc, head, attempts, body = run_tool(r.url(), attempts=3)
        self.assertEqual(rc, 0, attempts)
        self.assertEqual(attempts[0]["code"], "network")
        self.assertEqual(attempts[0]["http_status"], 429)
        self.assertEqual(attempts[0]["retry_after_s"], 1.0)
        self.assertEqual(len(r.requests()), 2)

    def test_redirect_not_followed(self):
        r = self.receiver(script="302")
        rc, head, attempts, body = run_tool(r.url(), attempts=3)
        self.assertEqual(rc, 3, attempts)
        self.assertEqual(attempts[0]["http_status"], 302)
        reqs = r.requests()
        self.assertEqual(len(reqs), 1, reqs)
        self.assertEqual(reqs[0]["path"], "/hooks/recon3d")

    def test_closed_port_is_transient(self):
        url = "http://127.0.0.1:%d/hooks" % free_port()
        rc, head, attempts, body = run_tool(url, attempts=2)
        self.assertEqual(rc, 2, attempts)
        self.assertEqual([a["code"] for a in attempts], ["network", "network"])
        self.assertEqual(attempts[0]["curl_code"], 7)   # CURLE_COULDNT_CONNECT
        self.assertEqual(attempts[0]["http_status"], 0)

    def test_timeout_is_transient(self):
        r = self.receiver(script="200", delay=3)
        rc, head, attempts, body = run_tool(r.url(), attempts=1, extra=["--timeout-ms", "500"])
        self.assertEqual(rc, 2, attempts)
        self.assertEqual(attempts[0]["code"], "network")
        self.assertEqual(attempts[0]["curl_code"], 28)  # CURLE_OPERATION_TIMEDOUT
        self.assertLess(attempts[0]["seconds"], 2.5)

    def test_dns_failure_is_transient(self):
        # .invalid never resolves (RFC 2606).
        rc, head, attempts, body = run_tool("http://recon3d-webhook-test.invalid/hooks", attempts=1,
                                            extra=["--timeout-ms", "3000"])
        self.assertEqual(rc, 2, attempts)
        self.assertEqual(attempts[0]["code"], "network")
        self.assertIn(attempts[0]["curl_code"], (6, 28))  # resolve failed, or resolver timed out

    def make_cert(self, name, san):
        cert = os.path.join(self.tmp, name + "-cert.pem")
        key = os.path.join(self.tmp, name + "-key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=" + name, "-addext", "subjectAltName=" + san,
                        "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
        return cert, key

    @unittest.skipUnless(shutil.which("openssl"), "openssl command not found")
    def test_tls_verified(self):
        cert, key = self.make_cert("loopback", "IP:127.0.0.1")
        r = self.receiver(script="200", tls=(cert, key))
        # A certificate nobody trusts: refused for good, nothing delivered.
        rc, head, attempts, body = run_tool(r.url("https"), attempts=3)
        self.assertEqual(rc, 3, attempts)
        self.assertEqual(attempts[0]["code"], "refused")
        self.assertEqual(attempts[0]["curl_code"], 60)  # CURLE_PEER_FAILED_VERIFICATION
        self.assertEqual(len(r.requests()), 0)
        # Trusted through ca_file: delivered and signed.
        rc, head, attempts, body = run_tool(r.url("https"), attempts=1, extra=["--ca-file", cert])
        self.assertEqual(rc, 0, attempts)
        reqs = r.requests()
        self.assertEqual(len(reqs), 1)
        self.check_signed(reqs[0], head, body)

    @unittest.skipUnless(shutil.which("openssl"), "openssl command not found")
    def test_tls_host_name_checked(self):
        # Trusted, but issued to another name: the host check refuses it.
        cert, key = self.make_cert("elsewhere", "DNS:elsewhere.example")
        r = self.receiver(script="200", tls=(cert, key))
        rc, head, attempts, body = run_tool(r.url("https"), attempts=1, extra=["--ca-file", cert])
        self.assertEqual(rc, 3, attempts)
        self.assertEqual(attempts[0]["code"], "refused")
        self.assertEqual(attempts[0]["curl_code"], 60)
        self.assertEqual(len(r.requests()), 0)

if __name__ == "__main__":
    unittest.main(verbosity=2)
