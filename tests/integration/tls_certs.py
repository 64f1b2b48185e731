"""
tls_certs: certificates for the TLS tests, made with the openssl command
line as a site would make them (docs/security.md gives the same commands):
a CA, a server and a client certificate it signs, a second CA nobody
trusts with a client certificate of its own, and an expired client
certificate from the good CA.

    make(folder) -> {"ca": path, "server_cert": ..., "server_key": ..., ...}
"""
import os
import subprocess


def _run(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr))


def _ca(cwd, name):
    _run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
          "-subj", "/O=recon3d test/CN=%s" % name, "-keyout", name + ".key", "-out", name + ".pem"], cwd)


def _leaf(cwd, ca, name, cn, server, days=30, expired=False):
    ext = os.path.join(cwd, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n")
        f.write("extendedKeyUsage=%s\n" % ("serverAuth" if server else "clientAuth"))
        if server:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run(["req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-subj", "/O=recon3d test/CN=%s" % cn,
          "-keyout", name + ".key", "-out", name + ".csr"], cwd)
    if not expired:
        _run(["x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
              "-CAcreateserial", "-days", str(days), "-sha256", "-extfile", name + ".ext",
              "-out", name + ".pem"], cwd)
        return
    # `openssl ca` takes explicit start and end dates: a certificate that
    # expired in 2021.
    db = os.path.join(cwd, ca + "-db")
    os.makedirs(db, exist_ok=True)
    open(os.path.join(db, "index.txt"), "w").close()
    with open(os.path.join(db, "serial"), "w") as f:
        f.write("1000\n")
    conf = os.path.join(cwd, ca + "-ca.conf")
    with open(conf, "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\nserial = %s/serial\n"
                "new_certs_dir = %s\ndefault_md = sha256\npolicy = p\ncopy_extensions = copy\n"
                "unique_subject = no\n[p]\ncommonName = supplied\norganizationName = optional\n"
                % (db, db, db))
    _run(["ca", "-batch", "-config", conf, "-in", name + ".csr", "-cert", ca + ".pem", "-keyfile",
          ca + ".key", "-startdate", "20200101000000Z", "-enddate", "20210101000000Z",
          "-extfile", name + ".ext", "-out", name + ".pem", "-notext"], cwd)


def make(folder):
    os.makedirs(folder, exist_ok=True)
    _ca(folder, "ca")
    _ca(folder, "otherca")
    _leaf(folder, "ca", "server", "recon3d.test", server=True)
    _leaf(folder, "ca", "client", "ctscanner.test", server=False)
    _leaf(folder, "ca", "pacs", "pacs.test", server=True)
    _leaf(folder, "otherca", "rogue", "rogue.test", server=False)
    _leaf(folder, "ca", "expired", "expired.test", server=False, expired=True)
    out = {"ca": os.path.join(folder, "ca.pem"), "otherca": os.path.join(folder, "otherca.pem")}
    for n in ("server", "client", "pacs", "rogue", "expired"):
        out[n + "_cert"] = os.path.join(folder, n + ".pem")
        out[n + "_key"] = os.path.join(folder, n + ".key")
    return out
