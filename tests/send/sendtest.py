"""
sendtest: what the sender's real-peer tests share. Each test runs inside a
private network namespace (`unshare -n`, loopback only), because storescp
3.6.7 and Orthanc 1.10 listen on every interface; the peers, our send_files
driver and the HTTP checks all run in that namespace. Servers are started
with a parent-death signal and killed in `finally`, so none outlives the test.

Environment (set by ctest): R3D_SEND_FILES (the send_files binary), R3D_DATA
(the shared data folder).
"""
import ctypes
import json
import os
import urllib.request
import signal
import socket
import struct
import subprocess
import sys
import time

# The DICOM file helpers the integration tests already have.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from r3dtest import cornerstone_files, dataset_bytes, dcm_value  # noqa: E402

SEND_FILES = os.environ.get("R3D_SEND_FILES", "")
DATA = os.environ.get("R3D_DATA", "")
PANCREAS = os.path.join(DATA, "ct", "pancreas-ct-cb001")
CORNERSTONE = os.path.join(DATA, "ts", "cornerstone-ct")
SKIP = 77


def enter_netns(need_send_files=True):
    """Re-runs this script in a new network namespace with loopback up.
    Returns only inside the namespace."""
    if os.environ.get("R3D_SEND_NETNS") == "1":
        return
    if need_send_files and (not SEND_FILES or not os.path.exists(SEND_FILES)):
        print("R3D_SEND_FILES does not point at send_files", file=sys.stderr)
        sys.exit(2)
    env = dict(os.environ, R3D_SEND_NETNS="1")
    script = 'ip link set lo up && exec "$0" "$@"'
    cmd = ["unshare", "-n", "sh", "-c", script, sys.executable] + sys.argv
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        print("no private network namespace here (%s): skipped" % probe.stderr.strip(),
              file=sys.stderr)
        sys.exit(SKIP)
    sys.exit(subprocess.call(cmd, env=env))


def _die_with_parent():
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


class Server:
    """A peer process; stop() is idempotent and safe in finally."""

    def __init__(self, args, log_path, cwd=None, env=None):
        self.args = args
        self.log_path = log_path
        self.cwd = cwd
        self.env = env
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.cwd, env=self.env,
                                     preexec_fn=_die_with_parent)
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.proc = None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("server exited with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nothing listens on port %d after %d s" % (port, timeout))


class Outcome:
    def __init__(self, line):
        f = line.rstrip("\n").split("\t")
        self.outcome, self.status, self.code = f[0], f[1], f[2]
        self.attempts = int(f[3])
        self.path = f[4]
        self.reason = f[5] if len(f) > 5 else ""

    def __repr__(self):
        return "%s %s %s x%d %s: %s" % (self.outcome, self.status, self.code, self.attempts,
                                        os.path.basename(self.path), self.reason)


def send(host, port, called, files, calling="RECON3D", retry=None, timeouts="3,5,30",
         timeout=300):
    """Runs send_files; returns (exit code, [Outcome] in file order, stderr)."""
    args = [SEND_FILES, "-t", timeouts]
    if retry is not None:
        args += ["-r", retry]
    args += [host, str(port), called, calling] + list(files)
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    outs = [Outcome(l) for l in r.stdout.splitlines() if l.strip()]
    assert len(outs) == len(files), (r.returncode, r.stdout, r.stderr)
    return r.returncode, outs, r.stderr


def start_send(host, port, called, files, calling="RECON3D", retry=None, timeouts="3,5,30"):
    """send_files in the background: (Popen, stdout path, stderr path)."""
    args = [SEND_FILES, "-t", timeouts]
    if retry is not None:
        args += ["-r", retry]
    args += [host, str(port), called, calling] + list(files)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_die_with_parent)


def pancreas_files(n):
    names = sorted(f for f in os.listdir(PANCREAS) if f.endswith(".dcm"))
    return [os.path.join(PANCREAS, f) for f in names[:n]]


def canonical(path, workdir):
    """The dataset of path as dcmconv rewrites it (explicit lengths, no group
    lengths, same transfer syntax): equal for two files that hold the same
    attributes in the same syntax, whatever lengths the encoders chose."""
    out = os.path.join(workdir, "canonical.dcm")
    subprocess.run(["dcmconv", "-q", "+e", "-g", path, out], capture_output=True, check=True)
    return dataset_bytes(out)


def pixel_data(path, workdir):
    """Native pixel data bytes of a file as dcmdump +W writes them."""
    os.makedirs(workdir, exist_ok=True)
    for f in os.listdir(workdir):
        os.unlink(os.path.join(workdir, f))
    subprocess.run(["dcmdump", "-q", "+W", workdir, path], capture_output=True, check=True)
    raws = [f for f in os.listdir(workdir) if f.endswith(".raw")]
    assert len(raws) == 1, raws
    with open(os.path.join(workdir, raws[0]), "rb") as f:
        return f.read()


# ---- a real PACS: our own Orthanc instance (never the system service) ----

AET = "R3DTESTPACS"


class Orthanc:
    def __init__(self, workdir):
        self.dir = workdir
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.conf = os.path.join(workdir, "orthanc.json")
        conf = {
            "Name": "recon3d-send-test",
            "DicomAet": AET,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "DicomServerEnabled": True,
            "HttpServerEnabled": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "StorageDirectory": os.path.join(workdir, "storage"),
            "IndexDirectory": os.path.join(workdir, "index"),
            "DicomCheckCalledAet": True,
            "UnknownSopClassAccepted": False,
            "Plugins": [],
            "LuaScripts": [],
            "HttpThreadsCount": 4,
            "DicomThreadsCount": 2,
            "ConcurrentJobs": 1,
            "SaveJobs": False,
        }
        with open(self.conf, "w") as f:
            json.dump(conf, f, indent=2)
        self.server = None

    def start(self):
        self.server = Server(["Orthanc", self.conf], os.path.join(self.dir, "orthanc.log"),
                             cwd=self.dir).start()
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.server.proc.poll() is not None:
                raise AssertionError("Orthanc exited:\n" + self.server.log_text()[-3000:])
            try:
                self.get("/system")
                wait_port(self.dicom_port, self.server.proc, timeout=10)
                return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError("Orthanc did not start:\n" + self.server.log_text()[-3000:])

    def stop(self):
        if self.server is not None:
            self.server.stop()
            self.server = None

    def get(self, path):
        url = "http://127.0.0.1:%d%s" % (self.http_port, path)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body.decode()

    def post(self, path, data):
        url = "http://127.0.0.1:%d%s" % (self.http_port, path)
        req = urllib.request.Request(url, data=data.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def instance(self, sop_uid):
        """Orthanc's id of the instance with this SOP Instance UID, or None."""
        hits = [h for h in self.post("/tools/lookup", sop_uid) if h.get("Type") == "Instance"]
        return hits[0]["ID"] if hits else None

    def count(self):
        return self.get("/statistics")["CountInstances"]
