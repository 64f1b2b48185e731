"""
`recon3d --check-config`: a valid file passes; a bad port, an unknown key and
an unusable storage folder are each rejected with a message naming them. The
shipped conf/recon3d.conf is exactly what --print-default-config documents.
Bad [structure KEY] sections (docs/structures.md) are each refused with the
file, the line and a reason that names the problem; a valid site catalogue
passes.
"""
import os
import pwd
import re
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


def line_of(text, wanted, nth=1):
    """The 1-based number of the nth line of text that reads wanted (blanks
    around it ignored)."""
    seen = 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() == wanted:
            seen += 1
            if seen == nth:
                return number
    raise AssertionError("no line %r (#%d) in:\n%s" % (wanted, nth, text))


# What --check-config prints for a refused file: the path check() wrote, the
# line, the reason.
REFUSAL = re.compile(r"^recon3d: config: (/\S*/r3d-cfg-[^/\s]+/c\.conf):(-?\d+): (.*)$", re.M)

# A valid site catalogue (docs/structures.md's example with both ends, a
# preset switched off and one recoloured with R,G,B).
VALID_STRUCTURES = """\
[structure dense_bone]
label = dense bone
min_hu = 700
max_hu = 3071
color = #f0e6c8
category = 85756007^SCT^Tissue
type = 3138006^SCT^Bone
max_triangles = 400000

[structure skin]
enabled = false

[structure vessels]
color = 204, 31, 31
"""


class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="r3d-cfgdir-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def storage(self, extra=""):
        return ("[storage]\ndir = %s/inst\ndatabase = %s/db.sqlite\n%s"
                % (self.tmp, self.tmp, extra))

    def structures(self, body):
        """A whole file: a [dicom] and a [storage] section, a comment, then
        body (the [structure] sections), so no line number is trivial."""
        return ("[dicom]\nport = 11112\n\n" + self.storage() +
                "\n; the site's structures\n\n" + body)

    def assertRefusedAt(self, conf, line_text, reasons, nth=1):
        """conf is refused (rc != 0) with the file, the number of the nth line
        reading line_text and every one of reasons in the message."""
        want = line_of(conf, line_text, nth)
        rc, out = check(conf)
        self.assertNotEqual(rc, 0, "accepted:\n" + conf + "\n" + out)
        m = REFUSAL.search(out)
        self.assertIsNotNone(m, "no 'recon3d: config: FILE:LINE: reason' in: " + out)
        self.assertEqual(int(m.group(2)), want,
                         "the error is not at line %d (%s): %s" % (want, line_text, out))
        for reason in reasons:
            self.assertIn(reason, m.group(3), out)
        return m.group(3)

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

    def test_structure_valid(self):
        conf = self.structures(VALID_STRUCTURES)
        rc, out = check(conf)
        self.assertEqual(rc, 0, conf + "\n" + out)
        self.assertIn("is valid", out)
        # The sections are read, not skipped: one wrong value in each is
        # refused at its line.
        for old, new, reason in (
                ("max_hu = 3071", "max_hu = 3072", "max_hu '3072'"),
                ("enabled = false", "enabled = maybe", "enabled 'maybe' is not true or false"),
                ("color = 204, 31, 31", "color = 204, 31, 256", "color '204, 31, 256'")):
            with self.subTest(new=new):
                self.assertRefusedAt(self.structures(VALID_STRUCTURES.replace(old, new)),
                                     new, [reason])

    def test_structure_unknown_key(self):
        for section, key in (("dense_bone", "min_huu"), ("bone", "colour")):
            with self.subTest(section=section, key=key):
                conf = self.structures("[structure %s]\nmin_hu = 700\n%s = 3\n"
                                       "max_triangles = 1000\n" % (section, key))
                self.assertRefusedAt(conf, "%s = 3" % key,
                                     ["[structure %s] %s: unknown key" % (section, key)])

    def test_engine_refusals(self):
        for body, line, reason in (
                ("[engine ai]\ncommand = /opt/ai {input} {series}\n", "command = /opt/ai {input} {series}",
                 "[engine ai] command: unknown placeholder in '{series}' (only {input} and {output})"),
                ("[engine ai]\ncommand = /opt/ai \"{input}\n", "command = /opt/ai \"{input}",
                 "[engine ai] command: a double quote is not closed"),
                ("[engine ai]\ncommand = /opt/ai\ntimeout_s = 0\n", "timeout_s = 0", "[engine ai] timeout_s"),
                ("[engine ai]\ncommand = /opt/ai\nshell = true\n", "shell = true",
                 "[engine ai] shell: unknown key"),
                ("[import]\nengine_models = both\n", "engine_models = both", "'both': give with or instead")):
            with self.subTest(body=body):
                self.assertRefusedAt(self.structures(body), line, [reason])
        # Whole-file checks: a missing section, a section without a command.
        for body, reason in (("[import]\nengine = ai\n", "[import] engine: no [engine ai] section"),
                             ("[engine ai]\ntimeout_s = 10\n", "[engine ai] command: missing"),
                             ("[engine ai]\ncommand = /opt/nothing/ai {input} {output}\n",
                              "[engine ai] command: '/opt/nothing/ai' is not an executable file"),
                             ("[engine ai]\ncommand = no-such-segmenter {input}\n",
                              "[engine ai] command: 'no-such-segmenter' is not an executable file"
                              " (nor found on PATH)")):
            with self.subTest(body=body):
                rc, out = check(self.structures(body))
                self.assertNotEqual(rc, 0, out)
                self.assertIn(reason, out)
        rc, out = check(self.structures("[import]\nengine = ai\nengine_models = instead\n\n"
                                        "[engine ai]\ncommand = /usr/bin/python3 \"/opt/my models/seg.py\""
                                        " {input} {output}/x.nii.gz\nconcurrency = 2\n"))
        self.assertEqual(rc, 0, out)
        self.assertIn("engine ai: /usr/bin/python3 \"/opt/my models/seg.py\" {input} {output}/x.nii.gz"
                      " (time limit 3600 s, 2 at a time); every CT job, instead of the structures", out)

    def test_route_refusals(self):
        """Routing profiles (issue 12): each mistake with the file and its line."""
        for body, line, reason in (
                ("[route kidney]\nStudyDescription = (kidney|renal\n", "StudyDescription = (kidney|renal",
                 "[route kidney] StudyDescription: '(kidney|renal' is not a valid regular expression"),
                ("[route kidney]\nBodyPart = KIDNEY\n", "BodyPart = KIDNEY",
                 "unknown attribute keyword 'BodyPart'"),
                ("[route kidney]\nPatientID = 123\n", "PatientID = 123",
                 "PatientID is patient data: a route cannot match on it"),
                ("[route kidney]\nSliceThickness = 2..1\n", "SliceThickness = 2..1",
                 "is not a range MIN..MAX in mm"),
                ("[route kidney]\nseries = first\n", "series = first", "'first' is not best, all or ignore"),
                ("[route kidney]\ncalled_ae = RECON3D_KIDNEY_PLANNING\n", "called_ae = RECON3D_KIDNEY_PLANNING",
                 "is not an AE title"),
                # Names are checked once the whole file is read: still at their line.
                ("[route kidney]\nModality = CT\nstructures = vessels kidney_left\n",
                 "structures = vessels kidney_left", "[route kidney] structures: unknown structure 'kidney_left'"),
                ("[route kidney]\nModality = CT\ndestinations = urology\n", "destinations = urology",
                 "[route kidney] destinations: no [destination urology] section"),
                ("[route kidney]\nModality = CT\nengine = totalseg\n", "engine = totalseg",
                 "[route kidney] engine: no [engine totalseg] section"),
                # print readiness (docs/printing.md): pairs of structure keys
                ("[route kidney]\nModality = CT\ndistances = kidney-artery\n",
                 "distances = kidney-artery", "[route kidney] distances: 'kidney-artery' is not a pair"),
                ("[route kidney]\nModality = CT\ndistances = kidney:Artery\n",
                 "distances = kidney:Artery", "is not a pair of structure keys"),
                ("[route kidney]\nModality = CT\ndistances = vessels:vessels\n",
                 "distances = vessels:vessels", "pairs a structure with itself")):
            with self.subTest(body=body):
                self.assertRefusedAt(self.structures(body), line, [reason])
        # A valid set of routes is listed by --check-config.
        rc, out = check(self.structures(
            "[structure renal]\nmin_hu = 40\nmax_hu = 200\nenabled = false\n\n"
            "[route ortho]\ncalled_ae = RECON3D_BONE\nstructures = bone\n\n"
            "[route kidney]\nStudyDescription = kidney|renal\nContrastBolusAgent = present\n"
            "structures = vessels renal\n\n[route default]\nseries = ignore\n"))
        self.assertEqual(rc, 0, out)
        self.assertIn("route ortho: series = best; called_ae RECON3D_BONE\n  structures: bone\n", out)
        self.assertIn("route kidney: series = best; StudyDescription = kidney|renal; ContrastBolusAgent = present"
                      "\n  structures: vessels renal\n", out)
        self.assertIn("route default: series = ignore\n", out)

    def test_print_section(self):
        """[print] (issue 14): numbers in range, pairs of keys, no unknown key."""
        for body, line, reason in (
                ("[print]\nmin_wall_mm = thin\n", "min_wall_mm = thin",
                 "[print] min_wall_mm: 'thin' is not a number from 0 to 50"),
                ("[print]\nmin_wall_mm = 60\n", "min_wall_mm = 60", "is not a number from 0 to 50"),
                ("[print]\nmin_shell_ml = -1\n", "min_shell_ml = -1", "is not a number from 0 to 1000"),
                ("[print]\ndistances = bone:skin, lungs\n", "distances = bone:skin, lungs",
                 "'lungs' is not a pair KEY:KEY"),
                ("[print]\nmin_wall = 1\n", "min_wall = 1", "min_wall")):
            with self.subTest(body=body):
                self.assertRefusedAt(self.structures(body), line, [reason])
        rc, out = check(self.structures(
            "[print]\nmin_wall_mm = 0.8\nmin_shell_ml = 0.05\ndrop_loose_shells = true\n"
            "distances = bone:skin, vessels:bone\n\n"
            "[route kidney]\nStudyDescription = kidney\ndistances = vessels:skin\n"))
        self.assertEqual(rc, 0, out)

    def test_structure_duplicate(self):
        # The same key in two sections of one structure: refused at the second.
        body = ("[structure dense_bone]\nlabel = dense bone\nmin_hu = 700\n\n"
                "[structure skin]\nenabled = false\n\n"
                "[structure dense_bone]\nmax_triangles = 1000\nmin_hu = 800\n")
        with self.subTest("a key given in both sections"):
            self.assertRefusedAt(self.structures(body), "min_hu = 800",
                                 ["[structure dense_bone] min_hu: given twice"])
        # Two sections of one structure with different keys: the second
        # header is the mistake (a copy made to edit, an old one left behind).
        body = ("[structure dense_bone]\nlabel = dense bone\nmin_hu = 700\n\n"
                "[structure dense_bone]\nmax_hu = 3071\n")
        with self.subTest("two sections of one structure"):
            msg = self.assertRefusedAt(self.structures(body), "[structure dense_bone]",
                                       ["[structure dense_bone]"], nth=2)
            self.assertRegex(msg, r"twice|duplicate|again|already")

    def test_structure_bad_key(self):
        long_key = "a" * 32
        for key in ("Bad-Key", "1bone", "Dense", long_key):
            with self.subTest(key=key):
                conf = self.structures("[structure %s]\nmin_hu = 700\n" % key)
                self.assertRefusedAt(conf, "min_hu = 700",
                                     ["[structure %s]" % key, "'%s' is not a structure key" % key])
        # 31 characters is the longest key the catalogue takes.
        rc, out = check(self.structures("[structure %s]\nmin_hu = 700\n" % long_key[1:]))
        self.assertEqual(rc, 0, out)
        # A badly formed key is refused even when its section sets nothing.
        with self.subTest("empty section"):
            conf = self.structures("[structure Bad-Key]\n\n[structure skin]\nenabled = false\n")
            self.assertRefusedAt(conf, "[structure Bad-Key]", ["'Bad-Key' is not a structure key"])

    def test_structure_without_range(self):
        # A new threshold structure needs min_hu, max_hu or both (refused at
        # its section's header: no one key is wrong).
        conf = self.structures("[structure dense_bone]\nlabel = dense bone\n")
        self.assertRefusedAt(conf, "[structure dense_bone]",
                             ["[structure dense_bone]", "needs min_hu, max_hu or both"])
        with self.subTest("empty section"):
            conf = self.structures("[structure dense_bone]\n\n[structure skin]\nenabled = false\n")
            self.assertRefusedAt(conf, "[structure dense_bone]",
                                 ["[structure dense_bone]", "needs min_hu, max_hu or both"])

    def test_structure_min_above_max(self):
        # Neither key alone is wrong, so the error points at the section's
        # header (docs/structures.md: "recon3d.conf:6: [structure dense_bone]: ...").
        for body, reason in (
                ("[structure dense_bone]\nlabel = dense bone\nmin_hu = 800\nmax_hu = 700\n",
                 "min_hu 800 is above max_hu 700"),
                ("[structure dense_bone]\nmax_hu = 700\nmin_hu = 701\n",
                 "min_hu 701 is above max_hu 700"),
                # A preset's own other end: vessels' max_hu is 599.
                ("[structure vessels]\nmin_hu = 650\n", "min_hu 650 is above max_hu 599")):
            header = body.splitlines()[0]
            with self.subTest(body=body):
                self.assertRefusedAt(self.structures("[structure skin]\nenabled = false\n\n" + body),
                                     header, [header + ":", reason])
        # min_hu == max_hu is one HU, and valid.
        rc, out = check(self.structures("[structure dense_bone]\nmin_hu = 700\nmax_hu = 700\n"))
        self.assertEqual(rc, 0, out)
        # The header may carry a comment; the line is still the header's.
        with self.subTest("header with a comment"):
            conf = self.structures("[structure dense_bone] ; cortical bone\n"
                                   "min_hu = 800\nmax_hu = 700\n")
            self.assertRefusedAt(conf, "[structure dense_bone] ; cortical bone",
                                 ["min_hu 800 is above max_hu 700"])

    def test_structure_range_outside_ct(self):
        for key, value in (("min_hu", "5000"), ("max_hu", "5000"), ("min_hu", "-2000"),
                           ("max_hu", "-2000"), ("min_hu", "3072"), ("max_hu", "-1025")):
            with self.subTest(key=key, value=value):
                other = "max_hu = 3071" if key == "min_hu" else "min_hu = -1024"
                conf = self.structures("[structure dense_bone]\n%s\n%s = %s\n"
                                       % (other, key, value))
                self.assertRefusedAt(conf, "%s = %s" % (key, value),
                                     ["[structure dense_bone] %s" % key,
                                      "%s '%s'" % (key, value), "-1024..3071"])
        # The ends themselves are inside.
        rc, out = check(self.structures("[structure dense_bone]\nmin_hu = -1024\nmax_hu = 3071\n"))
        self.assertEqual(rc, 0, out)

    def test_structure_bad_color(self):
        for value in ("1 2", "#12345g", "300,0,0", "#12345", "1,2,3,4", "-1,2,3", "1,,3"):
            with self.subTest(color=value):
                conf = self.structures("[structure dense_bone]\nmin_hu = 700\ncolor = %s\n"
                                       "max_triangles = 1000\n" % value)
                self.assertRefusedAt(conf, "color = %s" % value,
                                     ["[structure dense_bone] color",
                                      "color '%s' is not #rrggbb or R,G,B" % value])

    def test_structure_bad_code(self):
        for key, value in (("category", "85756007^Tissue"),          # no scheme
                           ("type", "3138006^SCT"),                  # no meaning
                           ("type", "3138006^SCT^"),                 # empty meaning
                           ("type", "3138006^^Bone"),                # empty scheme
                           ("type", "^SCT^Bone"),                    # no value
                           ("category", "85756007^SCT^Tissue^x"),    # a fourth part
                           ("type", "3138006^SCTSCTSCTSCTSCTSC^Bone"),  # scheme > 16
                           ("laterality", "Left"),
                           ("region", "1234")):
            with self.subTest(key=key, value=value):
                conf = self.structures("[structure dense_bone]\nmin_hu = 700\n%s = %s\n"
                                       "max_triangles = 1000\n" % (key, value))
                self.assertRefusedAt(conf, "%s = %s" % (key, value),
                                     ["[structure dense_bone] %s" % key,
                                      "%s '%s' is not a code VALUE^SCHEME^MEANING" % (key, value)])

    def test_structure_bad_budget(self):
        for value in ("0", "10000001", "-1"):
            with self.subTest(max_triangles=value):
                conf = self.structures("[structure dense_bone]\nmin_hu = 700\n"
                                       "max_triangles = %s\nlabel = dense bone\n" % value)
                self.assertRefusedAt(conf, "max_triangles = %s" % value,
                                     ["[structure dense_bone] max_triangles",
                                      "max_triangles '%s' must be 1..10000000" % value])

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
