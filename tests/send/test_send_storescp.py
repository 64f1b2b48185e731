"""
send.storescp: recon3d's sender against DCMTK's storescp, in a private
network namespace (loopback only).

- storescp +xa (every syntax): five pancreas-ct-cb001 slices and every
  cornerstone-ct file (15 transfer syntaxes, CT and Enhanced CT) over one
  association: all delivered, each stored (storescp +B) in its own transfer
  syntax with the same attributes and pixel bytes as the file (compared after
  dcmconv normalises sequence and group lengths, which DCMTK's sender
  re-encodes); TCP_NODELAY on; 60 slices well under the 2.4 s that
  delayed ACKs against storescp's Nagle would cost.
- storescp with its default (uncompressed only): JPEG, JPEG-LS and RLE files
  are decompressed by the sender and arrive with the same pixels DCMTK's
  own decoders give; JPEG 2000 (no decoder in DCMTK) fails for good.
- storescp --refuse: every file failed for good, "association rejected
  (permanent)"; --abort-during: the first file retried, the rest not tried;
  nothing listening: retry (connection refused); a peer that starts late is
  reached by the retry loop.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sendtest  # noqa: E402
from sendtest import Server, free_port, send, start_send, wait_port  # noqa: E402

J2K = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")
UNCOMPRESSED = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
DECODERS = {
    "1.2.840.10008.1.2.4.50": "dcmdjpeg", "1.2.840.10008.1.2.4.51": "dcmdjpeg",
    "1.2.840.10008.1.2.4.53": "dcmdjpeg", "1.2.840.10008.1.2.4.55": "dcmdjpeg",
    "1.2.840.10008.1.2.4.57": "dcmdjpeg", "1.2.840.10008.1.2.4.70": "dcmdjpeg",
    "1.2.840.10008.1.2.4.80": "dcmdjpls", "1.2.840.10008.1.2.4.81": "dcmdjpls",
    "1.2.840.10008.1.2.5": "dcmdrle",
}
# JPEG processes 6+8, 10+12 and 14 (retired): storescp +xa does not accept them.
NOT_IN_XA = ("1.2.840.10008.1.2.4.53", "1.2.840.10008.1.2.4.55", "1.2.840.10008.1.2.4.57")


def received(outdir):
    """{(SOP Instance UID, transfer syntax): [paths]} of what storescp wrote."""
    got = {}
    for f in os.listdir(outdir):
        p = os.path.join(outdir, f)
        key = (sendtest.dcm_value(p, "0008,0018"), sendtest.dcm_value(p, "0002,0010"))
        got.setdefault(key, []).append(p)
    return got


class StoreScp(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="r3d-send-scp-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def storescp(self, name, *opts, port=None, wait=True):
        port = port or free_port()
        out = os.path.join(self.work, name)
        os.makedirs(out, exist_ok=True)
        # DCMTK's default: Nagle's algorithm on (no TCP_NODELAY), like most PACS
        env = {k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}
        s = Server(["storescp", "-aet", "STORESCP", "+uf", "-od", out] + list(opts) + [str(port)],
                   os.path.join(self.work, name + ".log"), env=env)
        self.servers.append(s)
        s.start()
        if wait:
            wait_port(port, s.proc)
        return s, port, out

    def test_every_syntax_as_is(self):
        files = sendtest.pancreas_files(5) + sendtest.cornerstone_files()
        self.assertGreaterEqual(len(files), 24)
        _, port, out = self.storescp("all", "+xa", "+B")
        rc, outs, err = send("127.0.0.1", port, "STORESCP", files)
        self.assertEqual(rc, 0, "%s\n%s" % (outs, err))
        self.assertTrue(all(o.outcome == "delivered" and o.status == "0000" for o in outs), outs)
        self.assertIn("associated=1 nodelay=1", err)
        got = received(out)
        self.assertEqual(sum(len(v) for v in got.values()), len(files))
        syntaxes, as_is = set(), 0
        for src in files:
            key = (sendtest.dcm_value(src, "0008,0018"), sendtest.dcm_value(src, "0002,0010"))
            syntaxes.add(key[1])
            if key[1] in NOT_IN_XA:
                # storescp +xa does not take these: decoded on the way
                self.assert_converted(src, key[1], key[0], got)
                continue
            self.assertIn(key, got, "%s not received in its own syntax" % src)
            # DCMTK re-encodes sequence and group lengths on the way (as
            # storescu does); every attribute and pixel byte must be intact.
            want = sendtest.canonical(src, self.work)
            self.assertTrue(any(sendtest.canonical(p, self.work) == want for p in got[key]),
                            "%s changed on the way" % src)
            as_is += 1
        self.assertGreaterEqual(len(syntaxes), 15)
        self.assertEqual(as_is, len(files) - 3)

    def assert_converted(self, src, ts, uid, got):
        """src arrived uncompressed with the pixels DCMTK's decoder gives."""
        # (cornerstone files share SOP Instance UIDs across syntaxes)
        arrived = [p for (u, t), ps in got.items() if u == uid and t in UNCOMPRESSED for p in ps]
        self.assertTrue(arrived, "%s: nothing uncompressed arrived" % src)
        ref = os.path.join(self.work, "ref.dcm")
        subprocess.run([DECODERS[ts], src, ref], check=True, capture_output=True)
        want = sendtest.pixel_data(ref, os.path.join(self.work, "raw-ref"))
        self.assertTrue(any(sendtest.pixel_data(p, os.path.join(self.work, "raw-got")) == want
                            for p in arrived), "%s: pixels differ" % src)

    def test_no_delayed_ack_stall(self):
        # storescp writes each response in small pieces with Nagle on; unless
        # the sender ACKs at once, every C-STORE waits ~40 ms (25 images/s).
        files = sendtest.pancreas_files(60)
        _, port, _ = self.storescp("speed", "+xa", "--ignore")
        rc, outs, err = send("127.0.0.1", port, "STORESCP", files)
        self.assertEqual(rc, 0, err)
        seconds = float(err.split("seconds=")[1].split()[0])
        print("60 slices in %.3f s" % seconds, file=sys.stderr)
        self.assertLess(seconds, 1.2, "%d files took %.2f s: delayed-ACK stalls?" % (len(files), seconds))

    def test_decompress_when_peer_takes_uncompressed_only(self):
        files = sendtest.cornerstone_files()
        _, port, out = self.storescp("native", "+B")
        rc, outs, err = send("127.0.0.1", port, "STORESCP", files)
        self.assertEqual(rc, 1)
        got = received(out)
        converted = 0
        for o in outs:
            ts = sendtest.dcm_value(o.path, "0002,0010")
            uid = sendtest.dcm_value(o.path, "0008,0018")
            if ts in J2K:
                self.assertEqual((o.outcome, o.code), ("failed", "refused"), o)
                self.assertIn("cannot be converted", o.reason)
                continue
            self.assertEqual(o.outcome, "delivered", o)
            if ts in DECODERS:
                self.assert_converted(o.path, ts, uid, got)
                converted += 1
        self.assertGreaterEqual(converted, 10)
        self.assertEqual(sum(1 for o in outs if o.outcome == "failed"), 4)

    def test_refused_association_fails_for_good(self):
        _, port, _ = self.storescp("refuse", "--refuse")
        rc, outs, _ = send("127.0.0.1", port, "STORESCP", sendtest.pancreas_files(3))
        self.assertEqual(rc, 1)
        for o in outs:
            self.assertEqual((o.outcome, o.code, o.status), ("failed", "refused", "-"), o)
            self.assertEqual(o.reason, "association rejected (permanent): no reason given")

    def test_abort_during_store_is_transient(self):
        _, port, _ = self.storescp("abort", "--abort-during")
        rc, outs, _ = send("127.0.0.1", port, "STORESCP", sendtest.pancreas_files(3))
        self.assertEqual(rc, 1)
        self.assertEqual((outs[0].outcome, outs[0].code), ("retry", "network"), outs)
        self.assertEqual([o.outcome for o in outs[1:]], ["not_tried", "not_tried"], outs)

    def test_connect_timeout_is_transient(self):
        # A veth end with a static neighbour that never answers: the SYN
        # leaves and nothing comes back, so only the connect timeout ends it.
        setup = ("ip link add r3dv0 type veth peer name r3dv1 && "
                 "ip addr add 10.213.0.1/24 dev r3dv0 && ip link set r3dv0 up && "
                 "ip neigh add 10.213.0.2 lladdr 02:00:00:00:00:02 dev r3dv0 nud permanent")
        r = subprocess.run(["sh", "-c", setup], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("no veth in this namespace: " + r.stderr.strip())
        try:
            t0 = time.time()
            rc, outs, _ = send("10.213.0.2", 104, "STORESCP", sendtest.pancreas_files(2),
                               timeouts="2,5,5")
            dt = time.time() - t0
        finally:
            subprocess.run(["ip", "link", "del", "r3dv0"], capture_output=True)
        self.assertEqual(rc, 1)
        self.assertTrue(1.9 <= dt < 4.0, dt)
        for o in outs:
            self.assertEqual((o.outcome, o.code), ("retry", "network"), o)
            self.assertIn("Timeout", o.reason)

    def test_nobody_listening_then_late_peer(self):
        port = free_port()
        rc, outs, _ = send("127.0.0.1", port, "STORESCP", sendtest.pancreas_files(2))
        self.assertEqual(rc, 1)
        for o in outs:
            self.assertEqual((o.outcome, o.code), ("retry", "network"), o)
            self.assertIn("Connection refused", o.reason)
        # The retry loop keeps trying (0.2 s, 0.4 s, 0.8 s, 1 s, ...) and
        # delivers once storescp comes up 1.5 s later.
        files = sendtest.pancreas_files(4)
        p = start_send("127.0.0.1", port, "STORESCP", files, retry="0.2,1,30")
        try:
            time.sleep(1.5)
            self.assertIsNone(p.poll(), "sender gave up early")
            self.storescp("late", "+xa", port=port, wait=False)
            stdout, stderr = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, stdout + stderr)
        outs = [sendtest.Outcome(l) for l in stdout.splitlines()]
        self.assertTrue(all(o.outcome == "delivered" for o in outs), outs)
        self.assertTrue(all(o.attempts >= 3 for o in outs), outs)
        self.assertGreaterEqual(stderr.count("associated=0"), 3, stderr)


if __name__ == "__main__":
    sendtest.enter_netns()
    unittest.main(verbosity=2)
