"""
receiver.py: a webhook receiver for the notify tests (standard library only).

Listens on 127.0.0.1 on a port the kernel picks (printed as "PORT <n>" on
stdout), answers each POST with the next status of --script (the last one
repeats), checks every Standard Webhooks signature itself with hmac, and
appends one JSON line per request to --log. It stops by itself after
--max-seconds, whatever the test does.

    receiver.py --secret whsec_... --log FILE [--script 500,500,200]
                [--delay S] [--retry-after N] [--max-seconds S]
                [--tls-cert PEM --tls-key PEM]
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import signal
import ssl
import sys
import threading


def key_of(secret):
    """The HMAC key of a Standard Webhooks secret: base64 after whsec_."""
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_"):]
    return base64.b64decode(secret + "=" * (-len(secret) % 4), validate=True)


def signature_ok(key, msg_id, timestamp, body, header):
    """True when one v1 signature of the header is HMAC-SHA256 of id.timestamp.body."""
    if not msg_id or not timestamp or not header:
        return False
    expected = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body,
                        hashlib.sha256).digest()
    for entry in header.split(" "):
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except ValueError:
            continue
        if hmac.compare_digest(expected, given):
            return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secret", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--script", default="200")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--retry-after", default=None)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()

    key = key_of(args.secret)
    script = [int(s) for s in args.script.split(",")]
    lock = threading.Lock()
    count = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with lock:
                n = count[0]
                count[0] += 1
            status = script[min(n, len(script) - 1)]
            record = {
                "n": n,
                "method": "POST",
                "path": self.path,
                "status": status,
                "content_type": self.headers.get("Content-Type"),
                "webhook_id": self.headers.get("webhook-id"),
                "webhook_timestamp": self.headers.get("webhook-timestamp"),
                "webhook_signature": self.headers.get("webhook-signature"),
                "body": body.decode("utf-8", errors="replace"),
                "sig_ok": signature_ok(key, self.headers.get("webhook-id"),
                                       self.headers.get("webhook-timestamp"), body,
                                       self.headers.get("webhook-signature")),
            }
            with lock, open(args.log, "a") as f:
                f.write(json.dumps(record) + "\n")
            if args.delay > 0:
                threading.Event().wait(args.delay)
            reply = b'{"ok":true}' if 200 <= status < 300 else b'{"ok":false}'
            try:
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/redirected")
                if args.retry_after is not None:
                    self.send_header("Retry-After", args.retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except OSError:
                pass   # the client gave up (timeout test)

        def do_GET(self):
            with lock, open(args.log, "a") as f:
                f.write(json.dumps({"method": "GET", "path": self.path}) + "\n")
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    # Stops by itself: after --max-seconds, or on SIGTERM from the test.
    timer = threading.Timer(args.max_seconds, server.shutdown)
    timer.daemon = True
    timer.start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
