"""
r3dtest: what the integration tests share. Starts the real recon3d daemon on
127.0.0.1 with ports the test picks and a temporary folder, and drives it with
real DICOM tools (DCMTK's echoscu/storescu) and real HTTP requests.

Paths come from the environment set by ctest: R3D_BIN (the daemon),
R3D_DATA (../shared/data), R3D_SOURCE (the checkout).
"""
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

BIN = os.environ.get("R3D_BIN", "")
DATA = os.environ.get("R3D_DATA", "")
SOURCE = os.environ.get("R3D_SOURCE", "")
PANCREAS = os.path.join(DATA, "ct", "pancreas-ct-cb001")


def free_port():
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The bearer tokens every Daemon is configured with unless told otherwise
# ([token NAME] sections; docs/api.md): /status and /api/ need one.
ADMIN_TOKEN = "r3dtest-admin-0123456789abcdef0123456789abcdef"
READ_TOKEN = "r3dtest-read-fedcba9876543210fedcba9876543210"


def http_request(url, method="GET", token=None, body=None, timeout=5, headers=None):
    """(status code, body bytes, response headers) of a real HTTP request;
    body (a dict or list) goes as JSON."""
    data = None
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def http_get(url, timeout=5, token=None):
    """(status code, body text) of a real HTTP GET."""
    code, body, _ = http_request(url, token=token, timeout=timeout)
    return code, body.decode()


def cornerstone_files():
    """The DICOM files of ts/cornerstone-ct (its .ts files are not DICOM)."""
    folder = os.path.join(DATA, "ts", "cornerstone-ct")
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder))
            if f.endswith(".dcm") or f in ("CT1_J2KR", "CT2_J2KR")]


def pancreas_files():
    return sorted(os.path.join(PANCREAS, f) for f in os.listdir(PANCREAS) if f.endswith(".dcm"))


def dataset_bytes(path):
    """The bytes of a Part 10 file after its meta header (group 0002)."""
    with open(path, "rb") as f:
        b = f.read()
    if b[128:132] != b"DICM":
        raise ValueError(path + " is not a Part 10 file")
    i = 132
    while True:
        group, _ = struct.unpack("<HH", b[i:i + 4])
        if group != 2:
            return b[i:]
        vr = b[i + 4:i + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            length = struct.unpack("<I", b[i + 8:i + 12])[0]
            i += 12 + length
        else:
            length = struct.unpack("<H", b[i + 6:i + 8])[0]
            i += 8 + length


def dcm_value(path, tag):
    """A single attribute value as DCMTK's dcmdump prints it, or None."""
    out = subprocess.run(["dcmdump", "-q", "-Un", "+P", tag, path], capture_output=True, text=True).stdout
    m = re.search(r"\[(.*?)\]", out)
    return m.group(1) if m else None


class Daemon:
    """One recon3d process with its own config, storage and ports."""

    def __init__(self, workdir=None, tokens=True, **overrides):
        self.dir = workdir or tempfile.mkdtemp(prefix="r3d-it-")
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.storage = os.path.join(self.dir, "instances")
        self.database = os.path.join(self.dir, "index.db")
        self.log_path = os.path.join(self.dir, "recon3d.log")
        self.conf = {
            "dicom": {"bind": "127.0.0.1", "port": self.dicom_port, "ae_title": "RECON3D",
                      "idle_timeout_s": 30, "shutdown_grace_s": 2},
            "storage": {"dir": self.storage, "database": self.database, "min_free_mb": 1,
                        "results": os.path.join(self.dir, "results")},
            # No workers unless a test asks: jobs stay queued where the
            # receiver is what is tested.
            "pipeline": {"stable_seconds": 2, "min_slices": 10, "workers": 0},
            "http": {"bind": "127.0.0.1", "port": self.http_port},
            "log": {"level": "info"},
        }
        if tokens:
            self.conf["token test-admin"] = {"role": "admin", "secret": ADMIN_TOKEN}
            self.conf["token test-read"] = {"role": "read", "secret": READ_TOKEN}
        self.token = ADMIN_TOKEN if tokens else None   # what status() and api() send
        for key, value in overrides.items():
            section, name = key.split("__")
            self.conf.setdefault(section, {})[name] = value
        self.conf_path = os.path.join(self.dir, "recon3d.conf")
        self.proc = None
        self.write_conf()

    def write_conf(self):
        with open(self.conf_path, "w") as f:
            for section, keys in self.conf.items():
                f.write("[%s]\n" % section)
                for k, v in keys.items():
                    f.write("%s = %s\n" % (k, v))

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "-c", self.conf_path], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("recon3d exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
            try:
                code, _ = http_get(self.url("/healthz"), timeout=1)
                if code == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("recon3d not healthy after %s s:\n%s" % (timeout, self.log_text()))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def status(self):
        code, body = http_get(self.url("/status"), token=self.token)
        assert code == 200, (code, body)
        return json.loads(body)

    def api(self, method, path, body=None, token="default", timeout=10):
        """(status code, parsed JSON answer or None, raw bytes) of one jobs API call."""
        code, raw, _ = http_request(self.url(path), method=method,
                                    token=self.token if token == "default" else token,
                                    body=body, timeout=timeout)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return code, parsed, raw

    def metrics(self):
        code, body = http_get(self.url("/metrics"))
        assert code == 200, (code, body)
        return body

    def wait_for(self, predicate, timeout=30, what="condition"):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = self.status()
            if predicate(last):
                return last
            time.sleep(0.2)
        raise AssertionError("timed out waiting for %s; last status: %s\nlog:\n%s"
                             % (what, json.dumps(last), self.log_text()[-3000:]))

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("recon3d did not stop within %s s" % timeout)
        self.log.close()
        return self.proc.returncode

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def db(self):
        return sqlite3.connect(self.database, timeout=10)

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- real DICOM peers -------------------------------------------------

    def echoscu(self, calling="ECHOSCU", called="RECON3D"):
        return subprocess.run(["echoscu", "-v", "-aet", calling, "-aec", called, "127.0.0.1",
                               str(self.dicom_port)], capture_output=True, text=True, timeout=60)

    def storescu(self, files, calling="STORESCU", called="RECON3D", extra=(), timeout=300):
        args = ["storescu", "-v", "-aet", calling, "-aec", called] + list(extra) + \
               ["127.0.0.1", str(self.dicom_port)] + list(files)
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def store_responses(storescu_output):
    """[(file, status text)] from `storescu -v` output, one per file sent."""
    out = []
    current = None
    for line in storescu_output.splitlines():
        m = re.search(r"Sending file: (.*)$", line)
        if m:
            current = m.group(1).strip()
            continue
        m = re.search(r"Received Store Response \((.*)\)", line)
        if m and current is not None:
            out.append((current, m.group(1)))
            current = None
    return out


def associate_rq(called="RECON3D", calling="RAWSCU"):
    """A minimal A-ASSOCIATE-RQ PDU proposing Verification (PS3.8 9.3.2)."""
    def item(t, payload):
        return struct.pack(">BBH", t, 0, len(payload)) + payload
    app = item(0x10, b"1.2.840.10008.3.1.1.1")
    pc = item(0x20, bytes([1, 0, 0, 0]) + item(0x30, b"1.2.840.10008.1.1") +
              item(0x40, b"1.2.840.10008.1.2"))
    user = item(0x50, item(0x51, struct.pack(">I", 16384)) + item(0x52, b"1.2.3.4"))
    body = struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode() + \
        bytes(32) + app + pc + user
    return struct.pack(">BBI", 1, 0, len(body)) + body


def open_raw_association(port, called="RECON3D", calling="RAWSCU"):
    """Opens an association by hand and keeps it open; returns (socket, PDU type answered)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(associate_rq(called, calling))
    head = b""
    while len(head) < 6:
        chunk = s.recv(6 - len(head))
        if not chunk:
            return s, None
        head += chunk
    remaining = struct.unpack(">I", head[2:6])[0]
    while remaining > 0:
        chunk = s.recv(min(remaining, 65536))
        if not chunk:
            break
        remaining -= len(chunk)
    return s, head[0]


def main():
    if not BIN or not os.path.exists(BIN):
        raise SystemExit("R3D_BIN does not point at the recon3d binary")
    unittest.main(verbosity=2)
