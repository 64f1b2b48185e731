"""
`recon3d --check-config`: a valid file passes; a bad port, an unknown key and
an unusable storage folder are each rejected with a message naming them. The
shipped conf/recon3d.conf is exactly what --print-default-config documents.
"""
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import unittest

from r3dtest import BIN, SOURCE, main


def check(conf_text, as_user=None):
    d = tempfile.mkdtemp(prefix="r3d-cfg-")
    os.chmod(d, 0o755)
    path = os.path.join(d, "c.conf")
    with open(path, "w") as f:
        f.write(conf_text)
    os.chmod(path, 0o644)
    cmd = [BIN, "-c", path, "--check-config"]
    if as_user:
        pw = pwd.getpwnam(as_user)
        cmd = ["setpriv", "--reuid", str(pw.pw_uid), "--regid", str(pw.pw_gid),
               "--clear-groups"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True)
    shutil.rmtree(d, ignore_errors=True)
    return r.returncode, r.stdout + r.stderr


class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="r3d-cfgdir-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def storage(self, extra=""):
        return ("[storage]\ndir = %s/inst\ndatabase = %s/db.sqlite\n%s"
                % (self.tmp, self.tmp, extra))

    def test_valid(self):
        rc, out = check("[dicom]\nport = 11112\nallowed_callers = PACS@127.0.0.1\n"
                        "  CT1@localhost\n" + self.storage())
        self.assertEqual(rc, 0, out)
        self.assertIn("is valid", out)

    def test_bad_port(self):
        rc, out = check("[dicom]\nport = 70000\n" + self.storage())
        self.assertNotEqual(rc, 0)
        self.assertIn("[dicom] port", out)
        self.assertIn("out of range", out)
        rc, out = check("[dicom]\nport = eleven\n" + self.storage())
        self.assertNotEqual(rc, 0)
        self.assertIn("[dicom] port", out)

    def test_unknown_key(self):
        rc, out = check("[dicom]\nae_titel = RECON3D\n" + self.storage())
        self.assertNotEqual(rc, 0)
        self.assertIn("[dicom] ae_titel: unknown key", out)
        rc, out = check("[dicomm]\nport = 1\n" + self.storage())
        self.assertNotEqual(rc, 0)
        self.assertIn("unknown section [dicomm]", out)

    def test_bad_values(self):
        rc, out = check("[dicom]\nae_title = THIS_TITLE_IS_TOO_LONG\n" + self.storage())
        self.assertNotEqual(rc, 0)
        self.assertIn("[dicom] ae_title", out)
        rc, out = check("[dicom]\nallowed_callers = nohost\n" + self.storage())
        self.assertNotEqual(rc, 0)
        self.assertIn("[dicom] allowed_callers", out)

    def test_unusable_storage_folder(self):
        # A file where the folder should be.
        blocker = os.path.join(self.tmp, "afile")
        open(blocker, "w").close()
        rc, out = check("[storage]\ndir = %s\ndatabase = %s/db.sqlite\n" % (blocker, self.tmp))
        self.assertNotEqual(rc, 0)
        self.assertIn("[storage] dir", out)
        self.assertIn(blocker, out)
        # A folder the daemon's user cannot read or write (checked as nobody).
        if os.geteuid() == 0 and shutil.which("setpriv"):
            locked = os.path.join(self.tmp, "locked")
            os.mkdir(locked, 0o700)
            os.chmod(self.tmp, 0o755)
            rc, out = check("[storage]\ndir = %s\ndatabase = /tmp/r3d-nobody-%d.db\n"
                            % (locked, os.getpid()), as_user="nobody")
            self.assertNotEqual(rc, 0, out)
            self.assertIn("[storage] dir", out)
            self.assertIn("not readable and writable", out)

    def test_shipped_config_is_documented_default(self):
        r = subprocess.run([BIN, "--print-default-config"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        with open(os.path.join(SOURCE, "conf", "recon3d.conf")) as f:
            self.assertEqual(f.read(), r.stdout,
                             "conf/recon3d.conf differs from `recon3d --print-default-config`")
        # Every key in it has a comment line above it.
        lines = r.stdout.splitlines()
        for i, line in enumerate(lines):
            if "=" in line and not line.startswith("#"):
                self.assertTrue(lines[i - 1].startswith("# "), line)

    def test_install_configs_list_every_key(self):
        """systemd/recon3d.conf.example and docker/recon3d.conf say they hold
        every key: they do, and every path in them is absolute (neither
        service has a working directory to hang a relative path on)."""
        def keys(text, name=None):
            out, section = set(), None
            for line in text.splitlines():
                line = line.strip()
                if line.startswith("["):
                    section = line.strip("[]")
                elif "=" in line and not line.startswith("#"):
                    k, v = (x.strip() for x in line.split("=", 1))
                    out.add((section, k))
                    if name and section == "storage" and k in ("dir", "database", "results"):
                        self.assertTrue(v.startswith("/"), "%s: [storage] %s = %s" % (name, k, v))
            return out
        r = subprocess.run([BIN, "--print-default-config"], capture_output=True, text=True)
        want = keys(r.stdout)
        for name in ("systemd/recon3d.conf.example", "docker/recon3d.conf"):
            with open(os.path.join(SOURCE, name)) as f:
                have = keys(f.read(), name)
            self.assertEqual(sorted(want - have), [], name + " lacks keys")
            self.assertEqual(sorted(have - want), [], name + " has unknown keys")


if __name__ == "__main__":
    main()
