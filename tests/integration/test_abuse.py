"""
The network under abuse (issue 13, part 4): raw PDUs built here with struct
where DCMTK's tools cannot produce the abuse, DCMTK's echoscu/storescu as the
legitimate peers. Each case checks what the peer received (the bytes of the
A-ABORT / A-ASSOCIATE-RJ, or the DIMSE status), what is on disk and in the
index, and that the daemon still serves a C-ECHO afterwards.

  1. silent peers: TCP connections that say nothing and associations that go
     quiet are let go after idle_timeout_s; max_associations is never exceeded;
     storescu gets in while some slots are taken and once they are free.
  2. PDU lengths of 4 GB (and an A-ASSOCIATE-RQ too large to wait for): A-ABORT
     at once, no huge allocation (the daemon's VmHWM/VmPeak), serving goes on.
  3. an association aborted (A-ABORT, TCP reset) in the middle of a data set:
     nothing partial on disk or in the index, no job from it.
  4. P-DATA fragments out of order or on a wrong presentation context: A-ABORT
     or a failure status, nothing stored.
  5. a C-STORE whose data set does not match its command: 0xA900 / 0xC000, one
     log line, nothing stored.
  6. an unknown calling AE title: A-ASSOCIATE-RJ (1, 1, 3) with one log line
     naming the peer, over plain TCP and (when the build has it) DICOM TLS.
"""
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import r3dtest
from r3dtest import BIN, Daemon, dataset_bytes, dcm_value, main, pancreas_files, store_responses

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
OTHER_UID = "1.2.826.0.1.3680043.2.1125.99.1"

PDU_AC, PDU_RJ, PDU_PDATA, PDU_ABORT = 0x02, 0x03, 0x04, 0x07
# A-ABORT PDUs (PS3.8 9.3.8): source 0 (service user), or 2 (service provider) with a reason.
ABORT_USER = bytes([7, 0, 0, 0, 0, 4, 0, 0, 0, 0])
ABORT_PROVIDER_UNRECOGNIZED_PDU = bytes([7, 0, 0, 0, 0, 4, 0, 0, 2, 1])
ABORT_PROVIDER_INVALID_PARAMETER = bytes([7, 0, 0, 0, 0, 4, 0, 0, 2, 6])
# Presentation context IDs of assoc_rq()'s default proposal.
PC_ECHO, PC_CT, PC_MR, PC_REFUSED = 1, 3, 5, 7
FRAGMENT = 16000   # PDV bytes per P-DATA-TF, under every max PDU involved


# ---- PDUs and DIMSE messages, by hand -------------------------------------

def item(t, payload):
    return struct.pack(">BBH", t, 0, len(payload)) + payload


def assoc_rq(called="RECON3D", calling="RAWSCU",
             contexts=((PC_ECHO, VERIFICATION), (PC_CT, CT), (PC_MR, MR), (PC_REFUSED, "1.2.3.4.5.6"))):
    """An A-ASSOCIATE-RQ (PS3.8 9.3.2), implicit VR little endian for every context."""
    pcs = b"".join(item(0x20, bytes([pcid, 0, 0, 0]) + item(0x30, uid.encode()) +
                        item(0x40, IMPLICIT_LE.encode())) for pcid, uid in contexts)
    user = item(0x50, item(0x51, struct.pack(">I", 16384)) + item(0x52, b"1.2.3.4"))
    body = struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode() + \
        bytes(32) + item(0x10, b"1.2.840.10008.3.1.1.1") + pcs + user
    return struct.pack(">BBI", 1, 0, len(body)) + body


def pdata(pcid, header, data):
    """One P-DATA-TF with one PDV; header bit 0: command, bit 1: last fragment."""
    pdv = struct.pack(">IBB", len(data) + 2, pcid, header) + data
    return struct.pack(">BBI", PDU_PDATA, 0, len(pdv)) + pdv


def element(group, elem, value):
    if isinstance(value, str):
        value = value.encode()
        if len(value) % 2:
            value += b"\0"
    elif isinstance(value, int):
        value = struct.pack("<H", value)
    return struct.pack("<HHI", group, elem, len(value)) + value


def command(*elements):
    body = b"".join(elements)
    return element(0, 0, struct.pack("<I", len(body))) + body


def echo_rq(msg_id=1):
    return command(element(0, 0x2, VERIFICATION), element(0, 0x100, 0x0030),
                   element(0, 0x110, msg_id), element(0, 0x800, 0x0101))


def store_rq(sop_class, sop_instance, msg_id=1):
    return command(element(0, 0x2, sop_class), element(0, 0x100, 0x0001), element(0, 0x110, msg_id),
                   element(0, 0x700, 0), element(0, 0x800, 0x0000), element(0, 0x1000, sop_instance))


def parse_elements(b):
    out, i = {}, 0
    while i + 8 <= len(b):
        g, e, n = struct.unpack("<HHI", b[i:i + 8])
        out[(g, e)] = b[i + 8:i + 8 + n]
        i += 8 + n
    return out


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            break
        b += chunk
    return b


def read_pdu(s, timeout=10):
    """(PDU type, whole PDU bytes); (None, b"") when the peer closed or reset,
    ("timeout", b"") when nothing came."""
    s.settimeout(timeout)
    try:
        head = recv_exact(s, 6)
        if len(head) < 6:
            return None, b""
        return head[0], head + recv_exact(s, struct.unpack(">I", head[2:6])[0])
    except socket.timeout:
        return "timeout", b""
    except (ConnectionResetError, ssl.SSLError):
        return None, b""


def read_response(s, timeout=10):
    """("rsp", command elements) of the next DIMSE message, or (PDU type, bytes) of another PDU."""
    cmd = b""
    while True:
        t, pdu = read_pdu(s, timeout)
        if t != PDU_PDATA:
            return t, pdu
        i = 6
        while i < len(pdu):
            n, _, header = struct.unpack(">IBB", pdu[i:i + 6])
            cmd += pdu[i + 6:i + 4 + n]
            i += 4 + n
            if header & 3 == 3:
                return "rsp", parse_elements(cmd)


def status_of(elements):
    return struct.unpack("<H", elements[(0, 0x900)])[0]


def text_of(elements, tag):
    return elements.get(tag, b"").rstrip(b"\0 ").decode()


def send_dataset(s, pcid, data, last=True):
    """data as P-DATA fragments; the last carries the last-fragment flag when last."""
    chunks = [data[i:i + FRAGMENT] for i in range(0, len(data), FRAGMENT)]
    for n, chunk in enumerate(chunks):
        s.sendall(pdata(pcid, 2 if last and n == len(chunks) - 1 else 0, chunk))


# ---- the daemon from outside ------------------------------------------------

def proc_status(pid):
    """VmRSS, VmHWM and VmPeak of a process in kB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "VmPeak"):
                out[key] = int(value.split()[0])
    return out


def metric(d, name):
    m = re.search(r"^recon3d_%s (\d+)$" % name, d.metrics(), re.M)
    return int(m.group(1)) if m else None


def count_rows(d, table):
    with d.db() as db:
        return db.execute("SELECT count(*) FROM %s" % table).fetchone()[0]


def stored_files(d):
    """Every file under the storage folder, the temporary folder included."""
    out = []
    for root, _, files in os.walk(d.storage):
        out += [os.path.join(root, f) for f in files]
    return out


def wait_until(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def log_lines(d, needle):
    return [l for l in d.log_text().splitlines() if needle in l]


def has_tls_port():
    out = subprocess.run([BIN, "--print-default-config"], capture_output=True, text=True).stdout
    return re.search(r"^tls_port\s*=", out, re.M) is not None


class Abuse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        files = pancreas_files()
        if len(files) < 12:
            raise unittest.SkipTest("pancreas series not found under R3D_DATA")
        cls.files = files[:12]
        cls.ds = dataset_bytes(cls.files[0])   # implicit VR little endian, CT Image Storage
        cls.sop = dcm_value(cls.files[0], "0008,0018")
        assert dcm_value(cls.files[0], "0002,0010") == IMPLICIT_LE
        assert dcm_value(cls.files[0], "0008,0016") == CT

    def setUp(self):
        self.daemons, self.sockets = [], []

    def tearDown(self):
        for s in self.sockets:
            s.close()
        for d in self.daemons:
            rc = d.stop()
            log = d.log_text()
            d.cleanup()
            # Under ASan/UBSan a leak or undefined behaviour shows here.
            self.assertEqual(rc, 0, log[-3000:])
            self.assertNotIn("AddressSanitizer", log)
            self.assertNotIn("runtime error:", log)

    def daemon(self, **kw):
        d = Daemon(**kw).start()
        self.daemons.append(d)
        return d

    def connect(self, d):
        s = socket.create_connection(("127.0.0.1", d.dicom_port), timeout=10)
        self.sockets.append(s)
        return s

    def associate(self, d, **kw):
        s = self.connect(d)
        s.sendall(assoc_rq(**kw))
        t, pdu = read_pdu(s)
        self.assertEqual(t, PDU_AC, "A-ASSOCIATE-AC expected, got %r %r" % (t, pdu[:16]))
        return s

    def raw_store(self, s, sop_class=CT, sop=None, data=None, pcid=PC_CT):
        """One C-STORE over s; its response's command elements."""
        s.sendall(pdata(pcid, 3, store_rq(sop_class, sop or self.sop)))
        send_dataset(s, pcid, self.ds if data is None else data)
        t, rsp = read_response(s)
        self.assertEqual(t, "rsp", "a C-STORE response expected, got %r %r" % (t, rsp))
        return rsp

    def assert_serving(self, d):
        r = d.echoscu()
        self.assertEqual(r.returncode, 0, r.stderr)

    def assert_nothing_stored(self, d):
        # The temporary file of a failed store goes as the association ends.
        wait_until(lambda: stored_files(d) == [], 10, "no file left in storage: %s" % stored_files(d))
        for table in ("instances", "series", "studies", "jobs"):
            self.assertEqual(count_rows(d, table), 0, table)

    # ---- 1 ---------------------------------------------------------------

    def test_1_silent_peers(self):
        d = self.daemon(dicom__max_associations=3, dicom__idle_timeout_s=3)
        samples, stop = [], threading.Event()

        def watch():
            while not stop.is_set():
                try:
                    samples.append(d.status()["associations_open"])
                except Exception:   # noqa: BLE001 - a missed sample is no failure
                    pass
                time.sleep(0.05)
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            # 70 TCP connections that never send a byte (more than the 64 the
            # node keeps waiting) and two associations that go quiet.
            t_silent = time.time()
            tcp = [self.connect(d) for _ in range(70)]
            held = [self.associate(d) for _ in range(2)]
            wait_until(lambda: d.status()["associations_open"] == 2, 5, "two open associations")
            # With two of three slots taken, storescu gets in.
            r = d.storescu(self.files[:2])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([s for _, s in store_responses(r.stdout + r.stderr)], ["Success"] * 2)
            # The third slot taken: one more is rejected, transient (2),
            # service provider (3), local limit exceeded (2).
            held.append(self.associate(d))
            s = self.connect(d)
            s.sendall(assoc_rq())
            t, rj = read_pdu(s)
            self.assertEqual(rj, bytes([PDU_RJ, 0, 0, 0, 0, 4, 0, 2, 3, 2]))
            r = d.storescu(self.files[2:4])
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("local limit exceeded", (r.stdout + r.stderr).lower())
            self.assertEqual(metric(d, "associations_open"), 3)

            # idle_timeout_s: each quiet association gets an A-ABORT ...
            for h in held:
                t, pdu = read_pdu(h, 15)
                self.assertEqual(pdu, ABORT_USER)
            # ... and each silent connection is closed, within about the same time.
            for c in tcp:
                self.assertEqual(read_pdu(c, 15)[0], None)
            self.assertLess(time.time() - t_silent, 3 + 5)
            wait_until(lambda: d.status()["associations_open"] == 0, 5, "slots free")
            r = d.storescu(self.files[2:4])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assert_serving(d)
        finally:
            stop.set()
            watcher.join()
        self.assertTrue(samples)
        self.assertLessEqual(max(samples), 3, "max_associations exceeded")
        self.assertEqual(count_rows(d, "instances"), 4)
        self.assertEqual(len(log_lines(d, "aborted after 3 s without a message")), 3)
        self.assertEqual(len(log_lines(d, 'reason="max_associations reached"')), 2)
        self.assertTrue(log_lines(d, "sent no complete association request within 3 s"))
        # Never more than three "opened" lines between "closed"/"ended" ones.
        open_now = 0
        for line in d.log_text().splitlines():
            if "association opened" in line:
                open_now += 1
                self.assertLessEqual(open_now, 3, line)
            elif "association closed" in line or "association ended" in line:
                open_now -= 1

    # ---- 2 ---------------------------------------------------------------

    def test_2_huge_pdu_lengths(self):
        d = self.daemon()
        self.assert_serving(d)
        before = proc_status(d.proc.pid)
        huge = 0xFFFFFFFF

        # A first PDU that says 4 GB: A-ABORT (PS3.8 Sta2, AA-1), then the close.
        s = self.connect(d)
        s.sendall(struct.pack(">BBI", 1, 0, huge) + assoc_rq()[6:])
        self.assertEqual(read_pdu(s, 5)[1], ABORT_USER)
        self.assertEqual(read_pdu(s, 5)[0], None)
        # One that says 1 MB and then waits: nobody else waits behind it.
        s = self.connect(d)
        s.sendall(struct.pack(">BBI", 1, 0, 1 << 20) + assoc_rq()[6:])
        t0 = time.time()
        self.assert_serving(d)
        self.assertLess(time.time() - t0, 3)
        self.assertEqual(read_pdu(s, 5)[1], ABORT_USER)
        # Something that is not DICOM at all.
        s = self.connect(d)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(read_pdu(s, 5)[1], ABORT_USER)

        # Inside an association (Sta6, AA-8): an A-ABORT from the service
        # provider, reason invalid PDU parameter value (6) or unrecognised PDU (1).
        cases = [
            ("P-DATA of 4 GB", struct.pack(">BBI", PDU_PDATA, 0, huge) + struct.pack(">IBB", huge - 4, 1, 3),
             ABORT_PROVIDER_INVALID_PARAMETER),
            ("PDV of 4 GB", struct.pack(">BBI", PDU_PDATA, 0, 100) + struct.pack(">IBB", huge, 1, 3) + bytes(94),
             ABORT_PROVIDER_INVALID_PARAMETER),
            ("unknown PDU type of 4 GB", struct.pack(">BBI", 0x55, 0, huge) + bytes(64),
             ABORT_PROVIDER_UNRECOGNIZED_PDU),
        ]
        for what, data, answer in cases:
            with self.subTest(what):
                s = self.associate(d)
                s.sendall(data)
                self.assertEqual(read_pdu(s, 5)[1], answer)
                self.assertEqual(read_pdu(s, 5)[0], None)
        # The same in the middle of a C-STORE's data set.
        s = self.associate(d)
        s.sendall(pdata(PC_CT, 3, store_rq(CT, self.sop)))
        send_dataset(s, PC_CT, self.ds[:3 * FRAGMENT], last=False)
        s.sendall(struct.pack(">BBI", PDU_PDATA, 0, huge) + struct.pack(">IBB", huge - 4, PC_CT, 0))
        self.assertEqual(read_pdu(s, 5)[1], ABORT_PROVIDER_INVALID_PARAMETER)

        self.assert_serving(d)
        after = proc_status(d.proc.pid)
        # Nothing near 4 GB was reserved or touched.
        self.assertLess(after["VmHWM"] - before["VmHWM"], 64 * 1024, (before, after))
        self.assertLess(after["VmPeak"] - before["VmPeak"], 1024 * 1024, (before, after))
        self.assert_nothing_stored(d)
        self.assertEqual(len(log_lines(d, "A-ASSOCIATE-RQ of 4294967295 bytes, more than 65536; A-ABORT sent")), 1)
        self.assertEqual(len(log_lines(d, "first PDU of type 0x47 is not an A-ASSOCIATE-RQ")), 1)
        self.assertEqual(len(log_lines(d, "Illegal PDU Length 4294967295")), 2)

    # ---- 3 ---------------------------------------------------------------

    def test_3_aborted_in_the_middle_of_a_data_set(self):
        d = self.daemon()
        incoming = os.path.join(d.storage, ".incoming")
        for how in ("A-ABORT", "TCP reset"):
            with self.subTest(how):
                s = self.associate(d)
                s.sendall(pdata(PC_CT, 3, store_rq(CT, self.sop)))
                send_dataset(s, PC_CT, self.ds[:len(self.ds) // 2], last=False)
                # The node is writing it ...
                wait_until(lambda: any(f.endswith(".part") for f in os.listdir(incoming)), 5,
                           "a partial file being written")
                # ... when the peer goes.
                if how == "A-ABORT":
                    s.sendall(ABORT_USER)
                else:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
                self.sockets.remove(s)
                self.assert_nothing_stored(d)
                self.assert_serving(d)
        lines = log_lines(d, "association ended")
        self.assertEqual(len(lines), 2, lines)
        self.assertIn("peer aborted association", lines[0].lower())
        self.assertIn("stored=0", lines[1])
        # Ten complete slices of the same series after it: a job of exactly
        # those ten, never the aborted instance.
        r = d.storescu(self.files[1:11])
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: count_rows(d, "jobs") == 1, 20, "the job of the ten slices")
        time.sleep(1)
        with d.db() as db:
            self.assertEqual(db.execute("SELECT instances FROM jobs").fetchall(), [(10,)])
            self.assertEqual(db.execute("SELECT count(*) FROM instances WHERE sop_uid = ?",
                                        (self.sop,)).fetchone()[0], 0)
        self.assertEqual(len([f for f in stored_files(d) if f.endswith(".dcm")]), 10)
        self.assertEqual(os.listdir(incoming), [])

    # ---- 4 ---------------------------------------------------------------

    def test_4_fragments_out_of_order(self):
        d = self.daemon()
        ds, sop = self.ds, self.sop
        # (what, the PDUs after the A-ASSOCIATE-AC, C-STORE status expected
        # before the end or None, the end: an A-ABORT PDU)
        cases = [
            ("more data after the last fragment",
             [pdata(PC_CT, 3, store_rq(CT, sop)), pdata(PC_CT, 2, ds[:1000]), pdata(PC_CT, 0, ds[1000:2000])],
             0xC000),
            ("a command fragment among data fragments",
             [pdata(PC_CT, 3, store_rq(CT, sop)), pdata(PC_CT, 0, ds[:1000]), pdata(PC_CT, 3, echo_rq())],
             None),
            ("data fragments before any command", [pdata(PC_CT, 2, ds[:1000])], None),
            ("a command on a presentation context never proposed", [pdata(9, 3, echo_rq())], None),
            ("a command on a refused presentation context", [pdata(PC_REFUSED, 3, echo_rq())], None),
            ("a whole data set on another presentation context than its command",
             [pdata(PC_CT, 3, store_rq(CT, sop))] +
             [pdata(PC_ECHO, 2 if i + FRAGMENT >= len(ds) else 0, ds[i:i + FRAGMENT])
              for i in range(0, len(ds), FRAGMENT)], None),
            ("a command that stops after its first fragment",
             [pdata(PC_CT, 1, store_rq(CT, sop)[:20]), pdata(PC_CT, 2, ds[:1000])], None),
        ]
        for what, pdus, status in cases:
            with self.subTest(what):
                s = self.associate(d)
                for p in pdus:
                    s.sendall(p)
                t, rsp = read_response(s)
                if status is not None:
                    self.assertEqual(t, "rsp")
                    self.assertEqual(status_of(rsp), status)
                    t, rsp = read_response(s)
                self.assertEqual(t, PDU_ABORT, (t, rsp))
                self.assertEqual(read_pdu(s, 5)[0], None)
                self.assert_nothing_stored(d)
        # A C-STORE on an accepted context negotiated for another SOP Class:
        # refused, SOP Class not supported (PS3.7 0x0122); the association goes on.
        s = self.associate(d)
        rsp = self.raw_store(s, pcid=PC_MR)
        self.assertEqual(status_of(rsp), 0x0122)
        self.assertEqual(text_of(rsp, (0, 0x1000)), sop)
        self.assert_nothing_stored(d)
        # The control: the same PDUs in order store the instance.
        rsp = self.raw_store(s)
        self.assertEqual(status_of(rsp), 0x0000)
        self.assertEqual(count_rows(d, "instances"), 1)
        self.assert_serving(d)

    # ---- 5 ---------------------------------------------------------------

    def test_5_data_set_does_not_match_its_command(self):
        d = self.daemon()
        mr_ds = self.ds.replace(CT.encode() + b"\0", MR.encode() + b"\0", 1)
        self.assertNotEqual(mr_ds, self.ds)
        cases = [
            ("command CT, data set MR", dict(sop_class=CT, data=mr_ds, pcid=PC_CT), 0xA900,
             "SOP Class UID differs between command and dataset"),
            ("command MR, data set CT", dict(sop_class=MR, pcid=PC_MR), 0xA900,
             "SOP Class UID differs between command and dataset"),
            ("SOP Instance UIDs differ", dict(sop=OTHER_UID), 0xC000,
             "SOP Instance UID differs between command and dataset"),
        ]
        s = self.associate(d)
        for n, (what, args, status, reason) in enumerate(cases, 1):
            with self.subTest(what):
                rsp = self.raw_store(s, **args)
                self.assertEqual(status_of(rsp), status)
                self.assertEqual(text_of(rsp, (0, 0x902)), reason)   # Error Comment
                self.assertEqual(text_of(rsp, (0, 0x1000)), args.get("sop", self.sop))
                lines = log_lines(d, "instance refused")
                self.assertEqual(len(lines), n)
                self.assertIn('status=0x%04x reason="%s"' % (status, reason), lines[-1])
                self.assert_nothing_stored(d)
        # The control: the matching C-STORE on the same association is stored.
        self.assertEqual(status_of(self.raw_store(s)), 0x0000)
        self.assertEqual(count_rows(d, "instances"), 1)
        self.assert_serving(d)

    # ---- 6 ---------------------------------------------------------------

    def check_unknown_caller(self, d, sock):
        sock.sendall(assoc_rq(calling="INTRUDER"))
        t, rj = read_pdu(sock)
        # Rejected-permanent (1), DICOM UL service-user (1), calling AE title not recognised (3).
        self.assertEqual(rj, bytes([PDU_RJ, 0, 0, 0, 0, 4, 0, 1, 1, 3]))
        wait_until(lambda: log_lines(d, "association rejected calling=INTRUDER"), 5, "the log line")
        lines = log_lines(d, "association rejected calling=INTRUDER")
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("peer=127.0.0.1 ", lines[0])
        self.assertIn("calling AE title not in allowed_callers", lines[0])

    def test_6_unknown_calling_ae(self):
        d = self.daemon(dicom__allowed_callers="STORESCU@127.0.0.1 ECHOSCU@127.0.0.1")
        self.check_unknown_caller(d, self.connect(d))
        # A wrong called AE title: rejected-permanent, service-user, called AE not recognised (7).
        s = self.connect(d)
        s.sendall(assoc_rq(called="SOMEONE", calling="STORESCU"))
        self.assertEqual(read_pdu(s)[1], bytes([PDU_RJ, 0, 0, 0, 0, 4, 0, 1, 1, 7]))
        r = d.storescu(self.files[:1], calling="INTRUDER")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("calling ae title not recognized", (r.stdout + r.stderr).lower())
        self.assert_nothing_stored(d)
        self.assertEqual(d.status()["associations_rejected"], 3)
        self.assert_serving(d)

    @unittest.skipUnless(has_tls_port(), "DICOM TLS is not configured in this build "
                                         "(no [dicom] tls_port in --print-default-config)")
    def test_6_unknown_calling_ae_over_tls(self):
        import tls_certs
        work = tempfile.mkdtemp(prefix="r3d-abuse-tls-")
        try:
            c = tls_certs.make(work)
            d = self.daemon(dicom__allowed_callers="STORESCU@127.0.0.1 ECHOSCU@127.0.0.1",
                            dicom__tls_port=r3dtest.free_port(), dicom__tls_certificate=c["server_cert"],
                            dicom__tls_private_key=c["server_key"], dicom__tls_trusted_certificates=c["ca"])
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(c["ca"])
            ctx.load_cert_chain(c["client_cert"], c["client_key"])
            raw = socket.create_connection(("127.0.0.1", d.conf["dicom"]["tls_port"]), timeout=10)
            s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            self.sockets.append(s)
            self.check_unknown_caller(d, s)
            self.assert_nothing_stored(d)
            self.assert_serving(d)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
