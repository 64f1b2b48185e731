"""
soak: the reliability scenarios of issue 13 (load, SIGKILL cycles, a full
disk, a PACS that flaps), shared by bench/soak (full length, figures for
docs/reliability.md) and tests/integration/test_reliability.py (short runs
that fail the suite). Each scenario starts the real daemon (r3dtest.Daemon),
real DCMTK storescu processes and, where a PACS is needed, a real Orthanc
(sendtest.Orthanc), and returns (figures, problems): a dict of numbers and a
list of sentences, empty when every promise held.

Everything runs inside private network and mount namespaces (enter_namespaces:
`unshare -n -m`, loopback only), because Orthanc 1.10 listens on every
interface and the full-disk scenario mounts a tmpfs of its own. Needs root.

Distinct series come from one recon3d-phantom series per pusher: its UIDs all
share one generated prefix, and Series.retag(n) overwrites one 10-digit
component of that prefix in place (the same length, at offsets found once),
so the n-th push of a pusher is a new study, series and set of SOP Instance
UIDs for the cost of a few pwrite() calls.

Environment: R3D_BIN (the daemon), R3D_PHANTOM_BIN (recon3d-phantom), as
ctest sets them; bench/soak points them at build/release.
"""
import hashlib
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "send"))
import r3dtest  # noqa: E402
from r3dtest import Daemon, dataset_bytes  # noqa: E402

SKIP = 77
STATUS_SUCCESS = "Success"
# storescu -v names DIMSE statuses with DCMTK's DU_cstoreStatusString().
STATUS_OUT_OF_RESOURCES = "Refused: OutOfResources"
TERMINAL_JOB_STATES = ("done", "failed", "skipped", "superseded", "cancelled")


def log(msg):
    print(msg, flush=True)


def loadavg():
    return "%.2f %.2f %.2f" % os.getloadavg()


# --------------------------------------------------------------------------
# Namespaces
# --------------------------------------------------------------------------

def enter_namespaces():
    """Re-runs this process in private network and mount namespaces with
    loopback up; returns only inside them. Exits 77 (skip) where that is
    not possible (not root, no unshare)."""
    if os.environ.get("R3D_SOAK_NS") == "1":
        return
    probe = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        print("no private network/mount namespace here (%s): skipped" % probe.stderr.strip(),
              file=sys.stderr)
        sys.exit(SKIP)
    cmd = ["unshare", "-n", "-m", "--propagation", "private", "sh", "-c",
           'ip link set lo up && exec "$0" "$@"', sys.executable] + sys.argv
    sys.exit(subprocess.call(cmd, env=dict(os.environ, R3D_SOAK_NS="1")))


# --------------------------------------------------------------------------
# Distinct series from one phantom series
# --------------------------------------------------------------------------

def phantom_bin():
    p = os.environ.get("R3D_PHANTOM_BIN", "")
    if not p or not os.path.exists(p):
        raise SystemExit("R3D_PHANTOM_BIN does not point at recon3d-phantom")
    return p


class Series:
    """One phantom series in its own folder whose UIDs retag() rewrites."""

    def __init__(self, folder, size=128, slices=40):
        self.dir = folder
        # Spacing such that the phantom's body fills the field of view
        # (about 150 to 200 mm): every series meshes to real structures.
        xy = 1.6 if size <= 128 else 1.2
        subprocess.run([phantom_bin(), "--out", folder, "--size", str(size), "--slices", str(slices),
                        "--spacing", "%g,%g,%g" % (xy, xy, 2.5 if size > 128 else 3.0),
                        "--threads", "1"], check=True, capture_output=True)
        os.unlink(os.path.join(folder, "truth.json"))
        self.files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".dcm"))
        # The generated UIDs are <root>.<host>.<pid>.<time>.<counter>: the
        # <time> component of each (10 digits; it can change within a
        # series when generation crosses a second) is the one rewritten.
        self.base_series = r3dtest.dcm_value(self.files[0], "0020,000e")
        self.offsets = []         # per file: offsets of a <time> component
        self.base_sops = []
        self.width = 10
        for path in self.files:
            with open(path, "rb") as f:
                b = f.read()
            offs = set()
            uids = [r3dtest.dcm_value(path, t) for t in ("0008,0018", "0020,000d", "0020,000e",
                                                          "0020,0052")]
            for u in uids:
                parts = u.split(".")
                assert len(parts[-2]) == self.width, u
                head = (".".join(parts[:-2]) + ".").encode()
                i = b.find(u.encode())
                while i >= 0:
                    offs.add(i + len(head))
                    i = b.find(u.encode(), i + 1)
            assert len(offs) >= 5, (path, len(offs))   # meta SOP, SOP, study, series, frame
            self.offsets.append(sorted(offs))
            self.base_sops.append(uids[0])
        self.tag = None

    def component(self, n):
        width = self.width
        return ("9" + ("%0*d" % (width - 1, n))[-(width - 1):]).encode()

    def retag(self, n):
        """Makes the files a new study and series (n: unique per pusher and run)."""
        new = self.component(n)
        for path, offs in zip(self.files, self.offsets):
            fd = os.open(path, os.O_WRONLY)
            try:
                for o in offs:
                    os.pwrite(fd, new, o)
            finally:
                os.close(fd)
        self.tag = n
        return self.uids(n)

    def uids(self, n):
        """(series UID, [SOP Instance UID per file]) after retag(n)."""
        new = self.component(n).decode()

        def sub(u):
            p = u.split(".")
            p[-2] = new
            return ".".join(p)
        return sub(self.base_series), [sub(s) for s in self.base_sops]

    def dataset_sha(self, i, n):
        """SHA-256 of file i's dataset (after its meta header) as retag(n) makes it."""
        with open(self.files[i], "rb") as f:
            b = bytearray(f.read())
        new = self.component(n)
        for o in self.offsets[i]:
            b[o:o + len(new)] = new
        tmp = self.files[i] + ".sha.tmp"
        with open(tmp, "wb") as f:
            f.write(b)
        try:
            return hashlib.sha256(dataset_bytes(tmp)).hexdigest()
        finally:
            os.unlink(tmp)


def make_pool(work, count, size, slices):
    pool = []
    for i in range(count):
        pool.append(Series(os.path.join(work, "series-%02d" % i), size=size, slices=slices))
    return pool


# --------------------------------------------------------------------------
# storescu with per-response timing
# --------------------------------------------------------------------------

class Push:
    """One `storescu -v` of a series; a reader thread times each response:
    from the line 'Sending Store Request' (printed just before the command
    goes out) to the line 'Received Store Response' (printed when the
    response has been read), both stamped when the line is read from the
    pipe."""

    def __init__(self, port, files, calling="SOAK", env=None, extra=()):
        self.files = list(files)
        self.statuses = []        # one per response, in file order
        self.latencies = []       # seconds, one per response
        self.lines = []
        self.proc = subprocess.Popen(["storescu", "-v", "-aet", calling, "-aec", "RECON3D"] +
                                     list(extra) + ["127.0.0.1", str(port)] + self.files,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, TCP_NODELAY="1", **(env or {})),
                                     text=True, bufsize=1)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        sent = None
        for line in self.proc.stdout:
            now = time.perf_counter()
            if "Sending Store Request" in line:
                sent = now
            else:
                m = re.search(r"Received Store Response \((.*)\)", line)
                if m:
                    self.statuses.append(m.group(1))
                    self.latencies.append(now - sent if sent is not None else float("nan"))
                    sent = None
                elif line.startswith(("E:", "F:", "W:")):
                    self.lines.append(line.rstrip())

    def running(self):
        return self.proc.poll() is None

    def wait(self, timeout=None):
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(10)
        self.proc.stdout.close()
        return rc

    def acked(self):
        """Indexes of the files answered with success."""
        return [i for i, s in enumerate(self.statuses) if s == STATUS_SUCCESS]


def cleanup(d):
    """Daemon.cleanup(), except that R3D_SOAK_KEEP=1 keeps its folder."""
    if os.environ.get("R3D_SOAK_KEEP") == "1":
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        return
    d.cleanup()


def percentile(xs, p):
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def rss_mib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------
# Checks on the index and the storage
# --------------------------------------------------------------------------

def index_rows(d):
    with d.db() as db:
        return dict(db.execute("SELECT sop_uid, path FROM instances"))


def integrity(d):
    with d.db() as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def sha_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def stored_files(storage):
    out = []
    for dirpath, dirnames, filenames in os.walk(storage):
        dirnames[:] = [x for x in dirnames if not x.startswith(".")]
        out += [os.path.join(dirpath, f) for f in filenames]
    return out


def check_acked(d, acked, problems, what="instance"):
    """acked: {sop: expected dataset sha or None}. Each is indexed, its file
    exists and (where a sha is given) holds exactly the dataset sent."""
    rows = index_rows(d)
    missing = [s for s in acked if s not in rows]
    if missing:
        problems.append("%d %ss answered success are not indexed (first %s)"
                        % (len(missing), what, missing[0]))
    bad = 0
    for sop, sha in acked.items():
        p = rows.get(sop)
        if p is None:
            continue
        if not os.path.exists(p):
            bad += 1
            continue
        if sha is not None and hashlib.sha256(dataset_bytes(p)).hexdigest() != sha:
            bad += 1
    if bad:
        problems.append("%d %ss answered success are missing or damaged on disk" % (bad, what))
    return rows


def check_rows_vs_files(d, problems):
    rows = index_rows(d)
    files = set(stored_files(d.storage))
    paths = set(rows.values())
    if paths - files:
        problems.append("%d index rows point at no file" % len(paths - files))
    if files - paths:
        problems.append("%d files in storage are not indexed" % len(files - paths))
    inc = os.path.join(d.storage, ".incoming")
    left = os.listdir(inc) if os.path.isdir(inc) else []
    if left:
        problems.append("%d partial files left in .incoming" % len(left))
    ic = integrity(d)
    if ic != "ok":
        problems.append("sqlite integrity_check: %s" % ic)
    return rows


def job_states(d):
    with d.db() as db:
        return dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state"))


def outbox_states(d):
    with d.db() as db:
        return dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state"))


def wait_quiet(d, timeout, with_outbox=True):
    """Waits until no job is queued, running or waiting and (with_outbox) no
    outbox row is pending. Returns (seconds waited, quiet?)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        js = job_states(d)
        busy = sum(js.get(s, 0) for s in ("queued", "running", "waiting"))
        pend = outbox_states(d).get("pending", 0) if with_outbox else 0
        # A study still inside its stable_seconds has no job yet.
        with d.db() as db:
            unrouted = db.execute("SELECT count(*) FROM series WHERE pending = 1").fetchone()[0]
        if busy == 0 and pend == 0 and unrouted == 0:
            return time.time() - t0, True
        if d.proc.poll() is not None:
            return time.time() - t0, False
        time.sleep(0.5)
    return time.time() - t0, False


def delivered_counts(d):
    """{sop: number of 'delivered' log lines} over the daemon's whole log."""
    counts = {}
    for m in re.finditer(r"delivered job=\d+ destination=\S+ sop=(\S+)", d.log_text()):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def check_pacs(d, orthanc, problems):
    """Every outbox row sent and in Orthanc; Orthanc holds nothing else.
    Returns figures."""
    with d.db() as db:
        rows = db.execute("SELECT o.sop_instance_uid, o.state, o.attempts, j.state FROM outbox o"
                          " JOIN jobs j ON j.id = o.job_id").fetchall()
        done_jobs = db.execute("SELECT count(*) FROM jobs WHERE state = 'done'").fetchone()[0]
    sops = {r[0] for r in rows}
    not_sent = [r for r in rows if r[1] != "sent"]
    if not_sent:
        problems.append("%d outbox rows not sent (%s)" % (
            len(not_sent), ", ".join(sorted({"%s/job %s" % (r[1], r[3]) for r in not_sent}))))
    in_orthanc = orthanc.count()
    absent = [s for s in sops if orthanc.instance(s) is None]
    if absent:
        problems.append("%d objects of the outbox are not in Orthanc (first %s)" % (len(absent), absent[0]))
    if in_orthanc != len(sops):
        problems.append("Orthanc holds %d instances, the outbox names %d distinct SOP Instance UIDs"
                        % (in_orthanc, len(sops)))
    dc = delivered_counts(d)
    return {"objects": len(sops), "done_jobs": done_jobs, "orthanc_instances": in_orthanc,
            "resent_logged": sum(1 for v in dc.values() if v > 1),
            "rows_more_than_one_attempt": sum(1 for r in rows if r[2] > 1)}


def orthanc_start(work):
    import sendtest
    odir = os.path.join(work, "orthanc")
    os.makedirs(odir, exist_ok=True)
    return sendtest.Orthanc(odir).start()


def pacs_daemon(work, orthanc, **kw):
    import sendtest
    conf = dict(pipeline__workers=2, pipeline__stable_seconds=1, pipeline__min_slices=10,
                export__preview_size=128, retry__initial_delay_s=1, retry__max_delay_s=4,
                retry__max_attempts=1000)
    conf.update(kw)
    os.makedirs(os.path.join(work, "recon3d"), exist_ok=True)
    d = Daemon(workdir=os.path.join(work, "recon3d"), **conf)
    d.conf["destination orthanc"] = {"ae_title": sendtest.AET, "host": "127.0.0.1",
                                     "port": orthanc.dicom_port, "connect_timeout_s": 2}
    d.write_conf()
    return d


# --------------------------------------------------------------------------
# 1. Load: N associations at once, each pushing a new series in turn
# --------------------------------------------------------------------------

def load(work, associations=32, seconds=300, size=256, slices=48, fsync=False, workers=2,
         say=log):
    pool = make_pool(work, associations, size, slices)
    os.makedirs(os.path.join(work, "recon3d"))
    d = Daemon(workdir=os.path.join(work, "recon3d"), dicom__max_associations=associations + 8,
               dicom__idle_timeout_s=120, storage__fsync="true" if fsync else "false",
               pipeline__workers=workers, pipeline__stable_seconds=2, pipeline__min_slices=10)
    d.start()
    problems = []
    lat, statuses, acked = [], {}, {}
    errors = []
    lock = threading.Lock()
    stop_at = time.time() + seconds
    rss = []
    pushes = [0]

    def pusher(w):
        s = pool[w]
        n = 0
        while time.time() < stop_at:
            n += 1
            tag = w * 100000 + n
            series_uid, sops = s.retag(tag)
            p = Push(d.dicom_port, s.files, calling="LOAD%02d" % w)
            rc = p.wait(timeout=600)
            with lock:
                pushes[0] += 1
                lat.extend(p.latencies)
                for st in p.statuses:
                    statuses[st] = statuses.get(st, 0) + 1
                for i in p.acked():
                    acked[sops[i]] = (w, i, tag)
                if rc != 0 or len(p.statuses) != len(s.files) or p.lines:
                    errors.append("LOAD%02d push %d: exit %s, %d responses of %d%s" % (
                        w, n, rc, len(p.statuses), len(s.files),
                        (": " + p.lines[0]) if p.lines else ""))

    def sampler():
        while time.time() < stop_at + 1:
            v = rss_mib(d.proc.pid)
            if v is not None:
                rss.append((time.time(), v))
            time.sleep(2)

    la0 = loadavg()
    t0 = time.time()
    threads = [threading.Thread(target=pusher, args=(w,), daemon=True) for w in range(associations)]
    mon = threading.Thread(target=sampler, daemon=True)
    mon.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    la1 = loadavg()
    mon.join(5)
    js = job_states(d)
    try:
        st = d.status()
    except Exception as e:   # noqa: BLE001
        st = {}
        problems.append("/status did not answer after the run: %s" % e)
    good = statuses.get(STATUS_SUCCESS, 0)
    bad = sum(v for k, v in statuses.items() if k != STATUS_SUCCESS)
    if bad:
        problems.append("%d responses were not success: %s" % (bad, statuses))
    if errors:
        problems.append("%d pushes had errors (first: %s)" % (len(errors), errors[0]))
    if d.proc.poll() is not None:
        problems.append("recon3d exited during the run (%s)" % d.proc.returncode)
    rows = index_rows(d)
    lost = [s for s in acked if s not in rows]
    if lost:
        problems.append("%d instances answered success are not indexed" % len(lost))
    # Memory: RSS over the run; growth compares the median of the second
    # quarter with that of the last quarter (the first quarter warms up:
    # worker buffers, allocator arenas of 32 association threads).
    vals = [v for _, v in rss]
    q = max(1, len(vals) // 4)
    early = statistics.median(vals[q:2 * q]) if len(vals) >= 4 else float("nan")
    late = statistics.median(vals[-q:]) if vals else float("nan")
    rc = d.stop(timeout=120)
    if rc != 0:
        problems.append("recon3d exited %s on SIGTERM" % rc)
    fig = {
        "associations": associations, "seconds": round(wall, 1), "series_pushed": pushes[0],
        "images_ok": good, "errors": bad + len(errors),
        "images_per_s": good / wall if wall > 0 else 0.0,
        "latency_p50_ms": percentile(lat, 50) * 1e3, "latency_p99_ms": percentile(lat, 99) * 1e3,
        "latency_max_ms": max(lat) * 1e3 if lat else float("nan"),
        "rss_start_mib": vals[0] if vals else float("nan"), "rss_q2_median_mib": early,
        "rss_q4_median_mib": late, "rss_max_mib": max(vals) if vals else float("nan"),
        "rss_growth_mib": late - early,
        "jobs": js, "status_instances": st.get("instances"), "indexed": len(rows),
        "size": size, "slices": slices, "fsync": fsync, "workers": workers,
        "loadavg_start": la0, "loadavg_end": la1,
    }
    cleanup(d)
    return fig, problems


# --------------------------------------------------------------------------
# 2. SIGKILL cycles during ingest, processing and sending
# --------------------------------------------------------------------------

def crashes(work, cycles=100, pushers=2, size=128, slices=40, window_s=6.0, seed=None, say=log):
    rnd = random.Random(seed)
    pool = make_pool(work, pushers, size, slices)
    orthanc = orthanc_start(work)
    d = pacs_daemon(work, orthanc, storage__fsync="true", storage__min_free_mb=1)
    problems = []
    acked = {}          # sop -> (pusher, file index, tag)
    phases = {"ingest": 0, "processing": 0, "sending": 0, "idle": 0}
    tags = [0] * pushers
    la0 = loadavg()
    t0 = time.time()
    try:
        for c in range(cycles):
            d.start()
            pushes = []
            for w in range(pushers):
                # Every push is a new series (a tag never pushed is skipped).
                tags[w] += 1
                tag = w * 1000000 + tags[w]
                pushes.append((w, tag, pool[w].uids(tag)[1]))
            # Each cycle aims at one phase; what was really going on at
            # the kill is read back below (often more than one phase).
            target = rnd.choice(("ingest", "processing", "sending"))
            started = []
            for w, tag, sops in pushes:
                pool[w].retag(tag)
                started.append((w, tag, sops, Push(d.dicom_port, pool[w].files, calling="CRASH%d" % w)))
                if target == "ingest":
                    break   # the second pusher's series comes next cycle
            t_start = time.time()
            if target == "ingest":
                time.sleep(rnd.uniform(0.02, 0.3))
            else:
                sql = ("SELECT count(*) FROM jobs WHERE state = 'running'" if target == "processing"
                       else "SELECT count(*) FROM outbox WHERE state = 'pending'")
                while time.time() - t_start < window_s:
                    with d.db() as db:
                        if db.execute(sql).fetchone()[0]:
                            break
                    time.sleep(0.005)
                time.sleep(rnd.uniform(0, 0.15 if target == "processing" else 0.5))
            hit = []
            if any(p.running() for _, _, _, p in started):
                hit.append("ingest")
            with d.db() as db:
                if db.execute("SELECT count(*) FROM jobs WHERE state = 'running'").fetchone()[0]:
                    hit.append("processing")
                if db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]:
                    hit.append("sending")
            d.kill()
            for h in hit or ["idle"]:
                phases[h] += 1
            for w, tag, sops, p in started:
                p.wait(timeout=120)
                for i in p.acked():
                    acked[sops[i]] = (w, i, tag)
            if (c + 1) % 10 == 0:
                say("crashes: %d/%d cycles, %d instances acknowledged, phases hit %s, load %s"
                    % (c + 1, cycles, len(acked), phases, loadavg()))
        cyc_s = time.time() - t0
        # The last start: everything must settle by itself.
        d.start()
        waited, quiet = wait_quiet(d, timeout=600)
        if not quiet:
            problems.append("not settled %.0f s after the last restart: jobs %s, outbox %s"
                            % (waited, job_states(d), outbox_states(d)))
        shas = {}
        for sop, (w, i, tag) in acked.items():
            shas[sop] = pool[w].dataset_sha(i, tag)
        check_acked(d, shas, problems)
        rows = check_rows_vs_files(d, problems)
        js = job_states(d)
        stuck = sum(js.get(s, 0) for s in ("queued", "running", "waiting"))
        if stuck:
            problems.append("%d jobs stuck: %s" % (stuck, js))
        pacs = check_pacs(d, orthanc, problems)
        with d.db() as db:
            reruns = db.execute("SELECT count(*) FROM jobs WHERE attempts > 1").fetchone()[0]
        fig = {"cycles": cycles, "cycle_seconds": round(cyc_s, 1), "acked": len(acked),
               "indexed": len(rows), "phases": phases, "jobs": js, "jobs_rerun": reruns,
               "settle_s": round(waited, 1), "loadavg_start": la0, "loadavg_end": loadavg()}
        fig.update(pacs)
        rc = d.stop(timeout=60)
        if rc != 0:
            problems.append("recon3d exited %s on SIGTERM" % rc)
        return fig, problems
    finally:
        cleanup(d)
        orthanc.stop()


# --------------------------------------------------------------------------
# 3. A full disk
# --------------------------------------------------------------------------

def full_disk(work, size_mb=200, min_free_mb=60, series_size=256, slices=48, say=log):
    disk = os.path.join(work, "disk")
    os.makedirs(disk)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mb, "soak-disk", disk], check=True)
    pool = make_pool(work, 1, series_size, slices)
    s = pool[0]
    d = Daemon(workdir=disk, storage__min_free_mb=min_free_mb)
    problems = []
    fig = {"tmpfs_mb": size_mb, "min_free_mb": min_free_mb}
    try:
        d.start()
        acked = {}
        hashes_before = None
        n = 0
        refused_at = None
        statuses = {}
        # Fill until the node refuses, then two more series.
        while n < 200:
            n += 1
            series_uid, sops = s.retag(n)
            p = Push(d.dicom_port, s.files, extra=["-nh"])
            p.wait(timeout=300)
            for st in p.statuses:
                statuses[st] = statuses.get(st, 0) + 1
            for i in p.acked():
                acked[sops[i]] = s.dataset_sha(i, n)
            if refused_at is None and any(st != STATUS_SUCCESS for st in p.statuses):
                refused_at = n
                fig["free_mb_at_refusal"] = shutil.disk_usage(disk).free / 2**20
            if refused_at is None:
                hashes_before = {f: sha_file(f) for f in stored_files(d.storage)}
            if refused_at is not None and n >= refused_at + 2:
                break
        fig["series_pushed"] = n
        fig["statuses"] = dict(statuses)
        fig["acked_before_resume"] = len(acked)
        if refused_at is None:
            problems.append("the node never refused an instance on a %d MB disk" % size_mb)
            return fig, problems
        others = [k for k in statuses if k not in (STATUS_SUCCESS, STATUS_OUT_OF_RESOURCES)]
        if others:
            problems.append("statuses other than success and out of resources: %s" % others)
        # Nothing stored before the disk filled changed.
        changed = [f for f, h in hashes_before.items()
                   if not os.path.exists(f) or sha_file(f) != h]
        if changed:
            problems.append("%d files stored before the disk filled changed or vanished" % len(changed))
        check_acked(d, acked, problems)
        check_rows_vs_files(d, problems)
        if d.proc.poll() is not None:
            problems.append("recon3d exited on a full disk")
            return fig, problems
        fig["healthz_when_full"] = r3dtest.http_get(d.url("/healthz"))[0]
        # Space returns (the file system grows); the node takes instances
        # again without a restart, the refused series included.
        subprocess.run(["mount", "-o", "remount,size=%dm" % (size_mb * 3), disk], check=True)
        resumed = {}
        for k in range(refused_at, n + 1):
            series_uid, sops = s.retag(k)
            p = Push(d.dicom_port, s.files)
            p.wait(timeout=300)
            for st in p.statuses:
                resumed[st] = resumed.get(st, 0) + 1
            for i in p.acked():
                acked[sops[i]] = s.dataset_sha(i, k)
        fig["statuses_after_space_returned"] = resumed
        if set(resumed) != {STATUS_SUCCESS}:
            problems.append("after space returned: %s" % resumed)
        check_acked(d, acked, problems)
        rows = check_rows_vs_files(d, problems)
        fig["indexed"] = len(rows)
        fig["acked"] = len(acked)
        if d.stop() != 0:
            problems.append("recon3d did not stop cleanly")
        return fig, problems
    finally:
        cleanup(d)
        subprocess.run(["umount", disk], capture_output=True)


# --------------------------------------------------------------------------
# 4. A PACS that flaps
# --------------------------------------------------------------------------

def flapping(work, seconds=120, push_every_s=8.0, up_s=(2.0, 5.0), down_s=(1.0, 4.0),
             size=128, slices=40, seed=None, say=log):
    rnd = random.Random(seed)
    pool = make_pool(work, 1, size, slices)
    s = pool[0]
    orthanc = orthanc_start(work)
    d = pacs_daemon(work, orthanc)
    problems = []
    flaps = 0
    pushed = 0
    la0 = loadavg()
    try:
        d.start()
        t0 = time.time()
        stop_at = t0 + seconds
        next_push = t0
        next_flip = t0 + rnd.uniform(*up_s)
        up = True
        while time.time() < stop_at:
            now = time.time()
            if now >= next_push:
                pushed += 1
                s.retag(pushed)
                p = Push(d.dicom_port, s.files, calling="FLAP")
                p.wait(timeout=120)
                if p.acked() != list(range(len(s.files))):
                    problems.append("push %d: %s" % (pushed, p.statuses))
                next_push = now + push_every_s
            elif now >= next_flip:
                if up:
                    orthanc.stop()
                    flaps += 1
                    next_flip = time.time() + rnd.uniform(*down_s)
                else:
                    orthanc.start()
                    next_flip = time.time() + rnd.uniform(*up_s)
                up = not up
            time.sleep(0.05)
        if not up:
            orthanc.start()
        t_up = time.time()
        waited, quiet = wait_quiet(d, timeout=300)
        if not quiet:
            problems.append("not delivered %.0f s after the PACS came back: jobs %s, outbox %s"
                            % (waited, job_states(d), outbox_states(d)))
        js = job_states(d)
        if js.get("done", 0) != pushed:
            problems.append("%d series pushed, jobs %s" % (pushed, js))
        fig = check_pacs(d, orthanc, problems)
        fig.update({"seconds": seconds, "flaps": flaps, "series_pushed": pushed, "jobs": js,
                    "drain_after_last_start_s": round(time.time() - t_up, 1),
                    "outbox": outbox_states(d), "loadavg_start": la0, "loadavg_end": loadavg()})
        dc = delivered_counts(d)
        twice = [k for k, v in dc.items() if v > 1]
        if twice:
            # Without a crash a row is recorded sent once; a second
            # 'delivered' line would be a send beyond at-least-once.
            problems.append("%d objects logged delivered more than once without a crash" % len(twice))
        if d.stop(timeout=60) != 0:
            problems.append("recon3d did not stop cleanly")
        return fig, problems
    finally:
        cleanup(d)
        orthanc.stop()


# --------------------------------------------------------------------------
# 5. Ingest with fsync on and off
# --------------------------------------------------------------------------

def ingest(work, fsync, associations=1, size=512, slices=100, runs=3, say=log):
    """images/s of `associations` storescu at once, each a new series of
    slices size x size images, into a fresh daemon on `work`'s file system
    (the real disk: tmpfs would make fsync free)."""
    import tempfile
    work = tempfile.mkdtemp(prefix="ingest-", dir=work)
    pool = make_pool(work, associations, size, slices)
    out = []
    for r in range(runs):
        os.makedirs(os.path.join(work, "ingest-%s-%d" % (fsync, r)))
        d = Daemon(workdir=os.path.join(work, "ingest-%s-%d" % (fsync, r)),
                   storage__fsync="true" if fsync else "false", pipeline__stable_seconds=86400,
                   dicom__max_associations=associations + 4)
        try:
            d.start()
            for w, s in enumerate(pool):
                s.retag(w * 1000 + r + 1)
            os.sync()
            t0 = time.perf_counter()
            ps = [Push(d.dicom_port, s.files, calling="ING%d" % w) for w, s in enumerate(pool)]
            ok = 0
            for p in ps:
                p.wait(timeout=600)
                ok += len(p.acked())
            secs = time.perf_counter() - t0
            if ok != associations * slices:
                raise AssertionError("ingest: %d of %d stored" % (ok, associations * slices))
            out.append(ok / secs)
            d.stop()
        finally:
            cleanup(d)
            os.sync()
    return out
