"""
Association policy with real peers: unknown calling AE titles and a wrong
called AE title are rejected with the right reason, max_associations is
enforced (one more is rejected as transient, local limit exceeded), a silent
association is aborted after idle_timeout_s, and SIGTERM stops the daemon
cleanly even with an association open. Connections that send nothing, or
only part of an association request, delay no other caller.
"""
import signal
import socket
import time
import unittest

from r3dtest import Daemon, main, open_raw_association

PDU_AC, PDU_RJ, PDU_ABORT = 0x02, 0x03, 0x07


def read_pdu_type(sock, timeout):
    sock.settimeout(timeout)
    try:
        head = sock.recv(10)
    except socket.timeout:
        return "timeout"
    except ConnectionResetError:
        return None
    return head[0] if head else None


class Policy(unittest.TestCase):
    def test_allowed_callers(self):
        d = Daemon(dicom__allowed_callers="GOODSCU@127.0.0.1 OTHER@*").start()
        try:
            r = d.echoscu(calling="GOODSCU")
            self.assertEqual(r.returncode, 0, r.stderr)
            r = d.echoscu(calling="OTHER")
            self.assertEqual(r.returncode, 0, r.stderr)
            r = d.echoscu(calling="BADSCU")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("calling ae title not recognized", (r.stdout + r.stderr).lower())
            r = d.echoscu(calling="GOODSCU", called="SOMEONE")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("called ae title not recognized", (r.stdout + r.stderr).lower())
            st = d.status()
            self.assertEqual(st["associations_rejected"], 2)
            self.assertEqual(st["received"]["echoes"], 2)
            self.assertIn('association rejected calling=BADSCU', d.log_text())
        finally:
            d.stop()
            d.cleanup()

    def test_max_associations_idle_and_sigterm(self):
        d = Daemon(dicom__max_associations=1, dicom__idle_timeout_s=3,
                   dicom__shutdown_grace_s=1).start()
        try:
            held, answer = open_raw_association(d.dicom_port)
            self.assertEqual(answer, PDU_AC)
            d.wait_for(lambda s: s["associations_open"] == 1, what="one open association")
            # One more: A-ASSOCIATE-RJ, transient (2), service provider (3), local limit (2).
            s2 = socket.create_connection(("127.0.0.1", d.dicom_port), timeout=10)
            from r3dtest import associate_rq
            s2.sendall(associate_rq())
            rj = s2.recv(10)
            s2.close()
            self.assertEqual(rj[0], PDU_RJ)
            self.assertEqual((rj[7], rj[8], rj[9]), (2, 3, 2))
            r = d.echoscu()
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("local limit exceeded", (r.stdout + r.stderr).lower())
            # The silent association is aborted after idle_timeout_s ...
            t0 = time.time()
            self.assertIn(read_pdu_type(held, 15), (PDU_ABORT, None))
            self.assertLess(time.time() - t0, 10)
            held.close()
            # ... which frees its place.
            d.wait_for(lambda s: s["associations_open"] == 0, what="association closed")
            r = d.echoscu()
            self.assertEqual(r.returncode, 0, r.stderr)

            # SIGTERM with an association open: it is aborted after the grace
            # period and the daemon exits 0.
            held, answer = open_raw_association(d.dicom_port)
            self.assertEqual(answer, PDU_AC)
            d.wait_for(lambda s: s["associations_open"] == 1, what="one open association")
            t0 = time.time()
            self.assertEqual(d.stop(signal.SIGTERM, timeout=20), 0)
            self.assertLess(time.time() - t0, 10)
            self.assertIn(read_pdu_type(held, 5), (PDU_ABORT, None))
            held.close()
            log = d.log_text()
            self.assertIn("aborting 1 open associations", log)
            self.assertIn("main: stopped", log)
        finally:
            d.stop()
            d.cleanup()

    def test_silent_connections_block_nobody(self):
        d = Daemon().start()
        silent = []
        try:
            from r3dtest import associate_rq
            rq = associate_rq()
            # Ten connections that say nothing, and one that stops halfway
            # through its A-ASSOCIATE-RQ.
            for _ in range(10):
                silent.append(socket.create_connection(("127.0.0.1", d.dicom_port), timeout=10))
            half = socket.create_connection(("127.0.0.1", d.dicom_port), timeout=10)
            half.sendall(rq[:len(rq) // 2])
            silent.append(half)
            time.sleep(0.3)
            for _ in range(3):
                t0 = time.time()
                r = d.echoscu()
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertLess(time.time() - t0, 3, "C-ECHO waited behind silent connections")
            # A port probe (connect, close) is not an error worth a log line.
            socket.create_connection(("127.0.0.1", d.dicom_port), timeout=10).close()
            # The half request, completed late, is still served.
            half.sendall(rq[len(rq) // 2:])
            self.assertEqual(read_pdu_type(half, 10), PDU_AC)
            r = d.echoscu()
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("association request failed", d.log_text())
        finally:
            for s in silent:
                s.close()
            d.stop()
            d.cleanup()


if __name__ == "__main__":
    main()
