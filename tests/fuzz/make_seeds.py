#!/usr/bin/python3
"""make_seeds.py: builds the seed corpora of the fuzz harnesses, at build time,
into OUT/<harness>/ (the build tree, never the repository).

  dicom   real CT files of DATA (../shared/data) as they are; a 4-slice 16x16
          CT series joined into one input (fuzz_dicom.c's separator); the same
          slices in every transfer syntax the bridge writes and as Enhanced CT
          (seed_dicom, which reads them from DATA)
  seg     every Segmentation and RT Structure Set of DATA/seg up to MAX_SEG
  config  the documented sample config of the checkout (conf/recon3d.conf),
          each of its sections alone, and small configs with every section kind
  http    requests to every route the status server has today, good and bad
  pdu     what DCMTK's echoscu and storescu (real files of DATA) send to a
          storescp, recorded by a proxy in between, plus short hand-made PDUs

and OUT/regress-made/dicom/: regression inputs too big to keep in the
repository, made from DATA (fuzz.regress.dicom replays them).

Usage: make_seeds.py OUT DATA SOURCE_DIR SEED_DICOM_EXE
"""
import io
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

SEP = b"\0R3DNXT\0"
MAX_SEG = 128 * 1024        # bytes: larger objects slow every execution (per-pixel loops)
MAX_DICOM = 160 * 1024
TOKEN = "1" * 64             # fuzz_http.c's FUZZ_HTTP_TOKEN
API_TOKEN = "fuzz" * 10      # fuzz_http.c's FUZZ_HTTP_API_TOKEN (admin)
AE = "RECON3D"               # fuzz_pdu.c's FUZZ_PDU_AE


def put(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(p):
    with open(p, "rb") as f:
        return f.read()


def dicom_seeds(out, data, seed_exe):
    ct2 = sorted(os.path.join(data, "seg/highdicom-ct/CT2", f)
                 for f in os.listdir(os.path.join(data, "seg/highdicom-ct/CT2")))
    for p in ct2 + [os.path.join(data, "seg/highdicom-ct/ct_image.dcm")]:
        put(out, "real_" + os.path.basename(p), read(p))
    put(out, "real_ct2_series.dcm", SEP.join(read(p) for p in ct2))
    put(out, "real_ct2_even.dcm", SEP.join(read(p) for p in ct2[1:]))
    for p in [os.path.join(data, "ts/cornerstone-ct", f) for f in
              sorted(os.listdir(os.path.join(data, "ts/cornerstone-ct")))]:
        if os.path.isfile(p) and os.path.getsize(p) <= MAX_DICOM and read(p)[128:132] == b"DICM":
            put(out, "real_" + os.path.basename(p), read(p))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([seed_exe, tmp] + ct2[1:], check=True)
        names = sorted(os.listdir(tmp))
        for ts in sorted({n.rsplit("_", 1)[0] for n in names}):
            slices = sorted(n for n in names if n.startswith(ts + "_") and n[len(ts) + 1].isdigit())
            put(out, "ts_%s_series.dcm" % ts, SEP.join(read(os.path.join(tmp, n)) for n in slices))
            put(out, "ts_%s_enhanced.dcm" % ts, read(os.path.join(tmp, ts + "_enhanced.dcm")))


def deflate_bomb(out, data):
    """A regression input made here rather than kept (it is 300 KB): a real
    16x16 CT slice as Deflated Explicit VR Little Endian with a private OB
    element of 300 MB of zeros before its image attributes. DCMTK holds every
    value of a deflated dataset in memory; the bridge refuses it first
    (src/bridge/inflate_guard.cpp)."""
    import pydicom
    import zlib
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian
    ds = pydicom.dcmread(os.path.join(data, "seg/highdicom-ct/CT2/17136.dcm"))
    ds.add_new(0x00090010, "LO", "R3D FUZZ")
    ds.add_new(0x00091000, "OB", b"\xa5" * 8)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    plain = io.BytesIO()
    ds.save_as(plain, write_like_original=False)
    raw = plain.getvalue()
    mark = struct.pack("<HH", 0x0009, 0x1000) + b"OB\0\0" + struct.pack("<I", 8) + b"\xa5" * 8
    at = raw.index(mark)
    # (0002,0000) UL, right after "DICM": the meta group's length.
    glen = struct.unpack("<I", raw[140:144])[0]
    meta_end = 144 + glen
    ts_old = ExplicitVRLittleEndian.encode() + (b"\0" if len(ExplicitVRLittleEndian) % 2 else b"")
    ts_new = DeflatedExplicitVRLittleEndian.encode() + (b"\0" if len(DeflatedExplicitVRLittleEndian) % 2 else b"")
    # The Transfer Syntax UID's own length and the group length change with it.
    meta = raw[:meta_end].replace(struct.pack("<H", len(ts_old)) + ts_old,
                                  struct.pack("<H", len(ts_new)) + ts_new)
    meta = meta[:140] + struct.pack("<I", glen + len(ts_new) - len(ts_old)) + meta[144:]
    n = 300 * 1024 * 1024
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [z.compress(raw[meta_end:at] + mark[:8] + struct.pack("<I", n))]
    chunk = bytes(1 << 20)
    for _ in range(n >> 20):
        parts.append(z.compress(chunk))
    parts.append(z.compress(raw[at + len(mark):]))
    parts.append(z.flush())
    put(out, "deflate-bomb-300mb.dcm", meta + b"".join(parts))


def seg_seeds(out, data):
    for root, _, files in os.walk(os.path.join(data, "seg")):
        for f in sorted(files):
            p = os.path.join(root, f)
            if os.path.getsize(p) > MAX_SEG or not f.endswith(".dcm"):
                continue
            head = read(p)
            # SEG (…66.4, …66.7) and RTSTRUCT (…481.3) only: CT files are the
            # dicom harness' business.
            if b"1.2.840.10008.5.1.4.1.1.66." in head or b"1.2.840.10008.5.1.4.1.1.481.3" in head:
                put(out, os.path.relpath(p, data).replace("/", "_"), head)


def config_seeds(out, src):
    sample = read(os.path.join(src, "conf/recon3d.conf"))
    put(out, "sample.conf", sample)
    sections = sample.split(b"\n[")
    for i, s in enumerate(sections[1:]):
        put(out, "section_%02d.conf" % i, b"[" + s)
    put(out, "small_dicom.conf", b"[dicom]\nae_title = NODE1\nport = 104\n"
        b"allowed_callers = PACS@127.0.0.1 CT1@* \n  MODALITY@localhost\nmax_pdu = 16384\n")
    put(out, "small_dest.conf", b"[destination pacs]\nae_title = PACS\nhost = 127.0.0.1\nport = 4242\n"
        b"[destination other]\nae_title = OTHER\nhost = ::1\nport = 11112\ncalling_ae_title = R3D\n")
    put(out, "small_structure.conf", b"[structure bone]\nenabled = false\n"
        b"[structure implant]\nlabel = Implant\nsource = threshold\nrange = 2000 3000\n"
        b"color = 200 200 255\ncategory = 260787004^SCT^Physical object\n"
        b"type = 40388003^SCT^Implant\nbudget = 50000\n")
    put(out, "small_engine.conf", b"[import]\nengine = ts\n[engine ts]\n"
        b"command = /bin/true --in {input} --out \"{output}\"\ninput = nifti\ntimeout_s = 60\n")
    put(out, "small_webhook.conf", b"[webhook]\nurl = https://a.example/x http://b.example/y\n"
        b"secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\ninclude_patient_name = yes\n"
        b"[log]\nlevel = debug\n; comment\n# comment\n")


def http_seeds(out):
    reqs = {
        "healthz": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "status": b"GET /status HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        "metrics": b"GET /metrics HTTP/1.0\r\n\r\n",
        "head": b"HEAD /status HTTP/1.1\r\nHost: x\r\n\r\n",
        "post": b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 11\r\n\r\n{\"a\": true}",
        "chunked": b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n0\r\n\r\n",
        "api_auth": b"GET /api/jobs?state=failed&limit=10 HTTP/1.1\r\nHost: x\r\n"
                    b"Authorization: Bearer 0123456789abcdef\r\n\r\n",
        "api_basic": b"GET /api/studies/1.2.3 HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Basic YWRtaW46c2VjcmV0\r\n\r\n",
        "viewer_page": ("GET /viewer/%s HTTP/1.1\r\nHost: x\r\n\r\n" % TOKEN).encode(),
        "viewer_models": ("GET /viewer/%s/models.json HTTP/1.1\r\nHost: x\r\n\r\n" % TOKEN).encode(),
        "viewer_stl": ("GET /viewer/%s/bone.stl HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99\r\n\r\n"
                       % TOKEN).encode(),
        "viewer_mesh": ("GET /viewer/%s/skin.mesh HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
                        % TOKEN).encode(),
        "viewer_asset": b"GET /viewer/assets/viewer.js HTTP/1.1\r\nHost: x\r\n"
                        b"If-None-Match: \"abc\"\r\nAccept-Encoding: gzip, deflate\r\n\r\n",
        "viewer_bad_token": b"GET /viewer/zzzz/models.json HTTP/1.1\r\nHost: x\r\n\r\n",
        "pipelined": b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        "percent": b"GET /%76iewer/%2e%2e/status?x=%00 HTTP/1.1\r\nHost: x\r\n\r\n",
        "long_header": b"GET /status HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 2000 + b"\r\n\r\n",
        "folded": b"GET /status HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n",
        "http09": b"GET /\r\n\r\n",
        "options": b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        "expect": b"PUT /api/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nabcd",
    }
    auth = ("Authorization: Bearer %s\r\n" % API_TOKEN).encode()
    study = b"1.2.826.0.1.3680043.8.498.1"   # fuzz_http.c's FUZZ_HTTP_STUDY
    for name, method, path, body in (
            ("api_studies", b"GET", b"/api/studies", b""),
            ("api_study", b"GET", b"/api/studies/" + study, b""),
            ("api_rerun", b"POST", b"/api/studies/" + study + b"/rerun", b'{"route": "bone"}'),
            ("api_jobs", b"GET", b"/api/jobs?state=failed&limit=5", b""),
            ("api_job", b"GET", b"/api/jobs/1", b""),
            ("api_retry", b"POST", b"/api/jobs/1/retry", b""),
            ("api_cancel", b"POST", b"/api/jobs/1/cancel", b""),
            ("api_outbox", b"GET", b"/api/outbox", b""),
            ("api_outbox_retry", b"POST", b"/api/outbox/1/retry", b""),
            ("api_outbox_drop", b"POST", b"/api/outbox/1/drop", b"")):
        reqs[name + "_token"] = (method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth +
                                 (b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
                                  if body else b"") + b"\r\n" + body)
    for k, v in reqs.items():
        put(out, k + ".http", v)


def pdu_handmade(out):
    def item(t, body):
        return struct.pack(">BBH", t, 0, len(body)) + body

    def rq(called=AE, calling="FUZZ", contexts=((1, "1.2.840.10008.1.1", ["1.2.840.10008.1.2"]),)):
        body = struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode() + bytes(32)
        body += item(0x10, b"1.2.840.10008.3.1.1.1")
        for pcid, asx, tss in contexts:
            pc = struct.pack(">BBBB", pcid, 0, 0, 0) + item(0x30, asx.encode())
            for ts in tss:
                pc += item(0x40, ts.encode())
            body += item(0x20, pc)
        user = item(0x51, struct.pack(">I", 16384)) + item(0x52, b"1.2.276.0.7230010.3.0.3.6.7")
        body += item(0x50, user)
        return struct.pack(">BBI", 1, 0, len(body)) + body

    put(out, "hand_rq_echo.pdu", rq())
    put(out, "hand_rq_then_abort.pdu", rq() + bytes([7, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
    put(out, "hand_rq_then_release.pdu", rq() + bytes([5, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
    put(out, "hand_rq_wrong_called.pdu", rq(called="SOMEONE"))
    put(out, "hand_pdata_first.pdu", bytes([4, 0, 0, 0, 0, 6, 0, 0, 0, 2, 1, 3]))
    put(out, "hand_huge_length.pdu", bytes([1, 0, 0xff, 0xff, 0xff, 0xff]) + b"\0" * 64)


class Recorder:
    """A proxy on a free port in front of storescp: records what the client sends."""

    def __init__(self, target_port):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.data = b""

    def run_once(self):
        c, _ = self.sock.accept()
        s = socket.create_connection(("127.0.0.1", self.target))
        chunks = []

        def pump(a, b, keep):
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if keep:
                    chunks.append(d)
                b.sendall(d)
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        t = threading.Thread(target=pump, args=(s, c, False))
        t.start()
        pump(c, s, True)
        t.join()
        c.close()
        s.close()
        self.data = b"".join(chunks)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pdu_recorded(out, data):
    ct2 = sorted(os.path.join(data, "seg/highdicom-ct/CT2", f)
                 for f in os.listdir(os.path.join(data, "seg/highdicom-ct/CT2")))
    seg = os.path.join(data, "seg/highdicom-ct/seg_image_ct_binary.dcm")
    rt = os.path.join(data, "seg/pydicom-rtstruct/rtstruct.dcm")
    base = ["-aec", AE, "-aet", "FUZZ"]
    scenarios = {   # name: (program, options, files)
        "echo": ("echoscu", base, []),
        "store_implicit": ("storescu", base + ["-R", "-xi"], [ct2[0]]),
        "store_explicit_two": ("storescu", base + ["-R", "-xe"], [ct2[1], ct2[2]]),
        "store_big": ("storescu", base + ["-R", "-xb"], [ct2[3]]),
        "store_seg": ("storescu", base + ["-R", "-xe"], [seg]),
        "store_small_pdu": ("storescu", base + ["-R", "-xi", "-pdu", "4096"], [ct2[0]]),
        "store_rtstruct_forced": ("storescu", base + ["-R", "-xi", "+f"], [rt]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        sport = free_port()
        scp = subprocess.Popen(["storescp", "-aet", AE, "-od", tmp, str(sport)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", sport)).close()
                    break
                except OSError:
                    time.sleep(0.05)
            for name, (prog, opts, files) in scenarios.items():
                rec = Recorder(sport)
                t = threading.Thread(target=rec.run_once)
                t.start()
                subprocess.run([prog] + opts + ["127.0.0.1", str(rec.port)] + files,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
                t.join(30)
                rec.sock.close()
                if not rec.data:
                    sys.exit("make_seeds: nothing recorded for %s" % name)
                put(out, "rec_%s.pdu" % name, rec.data)
        finally:
            scp.terminate()
            scp.wait()


def main():
    out, data, src, seed_exe = sys.argv[1:5]
    for h in ("dicom", "seg", "config", "http", "pdu"):
        d = os.path.join(out, h)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    dicom_seeds(os.path.join(out, "dicom"), data, seed_exe)
    seg_seeds(os.path.join(out, "seg"), data)
    config_seeds(os.path.join(out, "config"), src)
    http_seeds(os.path.join(out, "http"))
    pdu_handmade(os.path.join(out, "pdu"))
    pdu_recorded(os.path.join(out, "pdu"), data)
    bombs = os.path.join(out, "regress-made", "dicom")
    shutil.rmtree(bombs, ignore_errors=True)
    os.makedirs(bombs)
    deflate_bomb(bombs, data)
    for h in ("dicom", "seg", "config", "http", "pdu"):
        n = len(os.listdir(os.path.join(out, h)))
        if n == 0:
            sys.exit("make_seeds: no seeds for %s" % h)


if __name__ == "__main__":
    main()
