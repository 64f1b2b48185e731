"""
End to end with a real PACS: pancreas-ct-cb001 pushed to recon3d comes back
to Orthanc (Debian package, our own configuration, never the system service)
as DICOM objects in the same study: one Surface Segmentation, one
Encapsulated STL per structure, one binary DICOM Segmentation (Modality SEG
too: told apart by SOP class and description) and seven preview images,
checked through Orthanc's REST API and with dciodvfy; the STL taken back out of Orthanc is a valid binary STL inside the
CT volume. On the way: Orthanc is down when the results are ready, so they
wait in the outbox with their attempts counted and go out once it starts,
without restarting recon3d; a second destination whose called AE title
Orthanc rejects is marked failed at the first rejection and not retried.
Killed (SIGKILL) during a job and restarted, recon3d completes the job and
Orthanc ends with one copy of each object (the UIDs derive from the job).

A structure that exists only in the test's config ([structure dense_bone]:
700..3071 HU, its own label with a space in it, colour, SNOMED CT codes and
triangle budget, next to the bone preset) reaches Orthanc as its own segment
and surface of the Surface Segmentation and segment of the Segmentation, with
that label, colour (CIELab converted here independently, equal to
report.json's, unlike any preset's) and codes, and as its own STL series
named after the label whose STL is closed when welded by coordinates; the
Segmentation's voxels are the CT's voxels >= 700 HU, read here from the
source slices; dciodvfy finds no error in any of them.

Orthanc 1.10 cannot listen on loopback only, so the whole test runs in a
private network namespace (skipped where none can be made).
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "send"))
import sendtest  # noqa: E402
from r3dtest import Daemon, pancreas_files  # noqa: E402

OBJECTS = 13   # one Surface Segmentation + four STL + one Segmentation + seven preview images
SURFACE_SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.5"
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
STL_CLASS = "1.2.840.10008.5.1.4.1.1.104.3"

# The site structure: only this test's config knows it. Its label has a
# space (labels are 1..48 printable ASCII characters, docs/structures.md);
# the codes are real SNOMED CT ones (CID 7150 / 7151) that no preset uses
# as a pair; the budget is below its undecimated surface on this CT (about
# 263,000 triangles), so only a budget that is applied keeps it under.
SITE_KEY = "dense_bone"
SITE_LABEL = "cortical bone"
SITE_RGB = (0x3c, 0xb4, 0x4b)
SITE_CATEGORY = ("91723000", "SCT", "Anatomical Structure")
SITE_TYPE = ("272673000", "SCT", "Bone")
SITE_MIN_HU = 700
SITE_MAX_TRIANGLES = 200000
# The presets' colours as docs/structures.md gives them.
PRESET_RGB = {"skin": (0xf0, 0xc2, 0xa6), "bone": (0xe3, 0xd9, 0xc9),
              "lungs": (0x8c, 0xbf, 0xf2), "vessels": (0xcc, 0x1f, 0x1f)}


def outbox(d):
    with d.db() as db:
        return db.execute("SELECT destination, state, attempts, coalesce(last_error, '')"
                          " FROM outbox ORDER BY destination, id").fetchall()


def lab_of(rgb8):
    """sRGB (0..255) -> CIELab (D65) -> DICOM's 16-bit scaling, written here
    independently of DCMTK (whose white point differs in the 4th digit)."""
    def lin(c):
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(c / 255.0) for c in rgb8)
    x = 0.4124564 * r + 0.3575761 * g + 0.1804375 * b
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = 0.0193339 * r + 0.1191920 * g + 0.9503041 * b

    def f(t):
        return t ** (1.0 / 3.0) if t > (6.0 / 29.0) ** 3 else t / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0
    fx, fy, fz = f(x / 0.95047), f(y / 1.0), f(z / 1.08883)
    L, a, bb = 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)
    return [L * 65535 / 100, (a + 128) * 65535 / 255, (bb + 128) * 65535 / 255]


def code_of(item, keyword):
    """(CodeValue, CodingSchemeDesignator, CodeMeaning) of a one-item code sequence."""
    seq = getattr(item, keyword, None)
    if seq is None or len(seq) != 1:
        return None
    return (str(seq[0].CodeValue), str(seq[0].CodingSchemeDesignator), str(seq[0].CodeMeaning))


def edge_check(tri):
    """(boundary edges, edges in more than two triangles, edges two triangles
    run the same way) of an (m, 3) index array: all 0 when the mesh is closed,
    2-manifold and consistently oriented."""
    import numpy as np
    e = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]).astype(np.int64)
    key = np.minimum(e[:, 0], e[:, 1]) * (int(tri.max()) + 1) + np.maximum(e[:, 0], e[:, 1])
    _, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    fwd = np.bincount(inv.ravel(), weights=(e[:, 0] < e[:, 1]).astype(float))
    two = cnt == 2
    return int((cnt == 1).sum()), int((cnt > 2).sum()), int((two & (fwd != 1)).sum())


def dciodvfy_errors(path):
    v = subprocess.run(["dciodvfy", path], capture_output=True, text=True)
    return [ln for ln in (v.stdout + v.stderr).splitlines() if ln.startswith("Error")]


class EndToEnd(unittest.TestCase):
    def test_results_reach_orthanc(self):
        work = tempfile.mkdtemp(prefix="r3d-e2e-")
        os.makedirs(os.path.join(work, "orthanc"))
        orthanc = sendtest.Orthanc(os.path.join(work, "orthanc"))
        d = Daemon(pipeline__workers=1, pipeline__stable_seconds=1,
                   retry__initial_delay_s=1, retry__max_delay_s=2, retry__max_attempts=1000)
        d.conf["destination orthanc"] = {"ae_title": sendtest.AET, "host": "127.0.0.1",
                                         "port": orthanc.dicom_port, "connect_timeout_s": 2}
        d.conf["destination wrong-ae"] = {"ae_title": "NOTORTHANC", "host": "127.0.0.1",
                                          "port": orthanc.dicom_port}
        d.write_conf()
        d.start()
        try:
            r = d.storescu(pancreas_files())
            self.assertEqual(r.returncode, 0, r.stderr[-1500:])
            # Orthanc is down: the objects wait, attempts counted.
            deadline = time.time() + 300
            while time.time() < deadline:
                rows = [x for x in outbox(d) if x[0] == "orthanc"]
                # Rows are queued while the job runs (issue 15): its end too.
                if len(rows) == OBJECTS and all(x[2] >= 2 for x in rows) and \
                        d.status()["jobs"].get("done") == 1:
                    break
                time.sleep(0.5)
            rows = [x for x in outbox(d) if x[0] == "orthanc"]
            self.assertEqual(len(rows), OBJECTS, d.log_text()[-3000:])
            self.assertTrue(all(x[1] == "pending" and x[2] >= 2 for x in rows), rows)
            self.assertIn("association request", rows[0][3])
            st = d.status()
            self.assertEqual(st["jobs"]["done"], 1)
            self.assertGreaterEqual(st["outbox"]["pending"], OBJECTS)

            orthanc.start()
            # The PACS holds the CT it sent us.
            r = subprocess.run(["storescu", "-aec", sendtest.AET, "127.0.0.1", str(orthanc.dicom_port)]
                               + pancreas_files(), capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr[-1500:])
            st = d.wait_for(lambda s: any(x["name"] == "orthanc" and x["sent"] == OBJECTS
                                          for x in s["destinations"]),
                            timeout=120, what="objects delivered to Orthanc")
            # The rejecting destination: retried only while nothing listened
            # (transient), failed at the first rejection, and left alone then.
            d.wait_for(lambda s: any(x["name"] == "wrong-ae" and x["failed"] == OBJECTS
                                     for x in s["destinations"]), timeout=60,
                       what="rejected objects marked failed")
            wrong = [x for x in outbox(d) if x[0] == "wrong-ae"]
            self.assertEqual(len(wrong), OBJECTS)
            for dest, state, attempts, error in wrong:
                self.assertEqual(state, "failed")
                self.assertIn("called AE title not recognized", error)
            time.sleep(3)
            self.assertEqual([x[2] for x in outbox(d) if x[0] == "wrong-ae"],
                             [x[2] for x in wrong], "a rejected object was retried")
            self.assertRegex(d.metrics(),
                             r'recon3d_outbox\{destination="orthanc",state="sent"\} %d' % OBJECTS)

            # Orthanc: one study holding the CT and the five new series.
            studies = orthanc.get("/studies")
            self.assertEqual(len(studies), 1)
            series = [orthanc.get("/series/" + s) for s in orthanc.get("/studies/" + studies[0])["Series"]]
            by_modality = {}
            for s in series:
                by_modality.setdefault(s["MainDicomTags"].get("Modality"), []).append(s)
            self.assertEqual(len(by_modality["CT"][0]["Instances"]), 134)
            # Modality SEG: the Surface Segmentation and the binary Segmentation.
            self.assertEqual(sorted(s["MainDicomTags"].get("SeriesDescription")
                                    for s in by_modality["SEG"]),
                             ["3D model: segmentation", "3D models (surface segmentation)"])
            self.assertTrue(all(len(s["Instances"]) == 1 for s in by_modality["SEG"]))
            self.assertEqual(len(by_modality["M3D"]), 4)
            self.assertEqual(len(by_modality["OT"]), 1)
            previews = by_modality["OT"][0]
            self.assertEqual(previews["MainDicomTags"].get("SeriesDescription"), "3D model: preview")
            self.assertEqual(len(previews["Instances"]), 7)
            names = sorted(s["MainDicomTags"].get("SeriesDescription") for s in by_modality["M3D"])
            self.assertEqual(names, ["3D model: %s (STL)" % n for n in
                                     ("bone", "lungs", "skin", "vessels")])
            ct_study = by_modality["CT"][0]["ParentStudy"]
            self.assertTrue(all(s["ParentStudy"] == ct_study for s in series))

            # dciodvfy on every object Orthanc holds for us; the STL back out.
            rep = json.load(open(os.path.join(d.dir, "results", "1", "report.json")))
            import numpy as np
            a = np.array(rep["volume"]["affine_lps_mm"]).reshape(4, 4)
            dims = rep["volume"]["dims"]
            corners = np.array([[i, j, k, 1] for i in (0, dims[0] - 1) for j in (0, dims[1] - 1)
                                for k in (0, dims[2] - 1)], float) @ a.T
            margin = 0.5 * np.array(rep["volume"]["spacing_mm"]) + 0.5
            lo, hi = corners[:, :3].min(0) - margin, corners[:, :3].max(0) + margin
            objects = [(s, i) for s in by_modality["SEG"] + by_modality["M3D"] + by_modality["OT"]
                       for i in s["Instances"]]
            for s, iid in objects:
                path = os.path.join(work, iid + ".dcm")
                with urllib.request.urlopen("http://127.0.0.1:%d/instances/%s/file"
                                            % (orthanc.http_port, iid), timeout=30) as f, \
                        open(path, "wb") as out:
                    out.write(f.read())
                v = subprocess.run(["dciodvfy", path], capture_output=True, text=True)
                errors = [ln for ln in (v.stdout + v.stderr).splitlines() if ln.startswith("Error")]
                self.assertEqual(errors, [], s["MainDicomTags"].get("SeriesDescription"))
                if s in by_modality["SEG"]:
                    import pydicom
                    ds = pydicom.dcmread(path)
                    if s["MainDicomTags"].get("SeriesDescription") == "3D model: segmentation":
                        # Voxel masks of every meshed structure on the CT's slices.
                        self.assertEqual(ds.SOPClassUID, SEG_CLASS)
                        self.assertEqual(ds.SegmentationType, "BINARY")
                        self.assertEqual(int(ds.SeriesNumber), 9080)
                        self.assertEqual([x.SegmentLabel for x in ds.SegmentSequence],
                                         ["skin", "bone", "lungs", "vessels"])
                        self.assertEqual((int(ds.Rows), int(ds.Columns)), (512, 512))
                        self.assertEqual(ds.ReferencedSeriesSequence[0].SeriesInstanceUID,
                                         by_modality["CT"][0]["MainDicomTags"]["SeriesInstanceUID"])
                        px = ds.pixel_array
                        sn = [int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
                              for f in ds.PerFrameFunctionalGroupsSequence]
                        for number in (1, 2, 3, 4):
                            vox = sum(int(px[i].sum()) for i, n in enumerate(sn) if n == number)
                            self.assertGreater(vox, 10000, "segment %d is nearly empty" % number)
                    else:
                        self.assertEqual(ds.SOPClassUID, SURFACE_SEG_CLASS)
                if s in by_modality["OT"]:
                    import pydicom
                    ds = pydicom.dcmread(path)
                    self.assertEqual(ds.BurnedInAnnotation, "YES")
                    px = ds.pixel_array.reshape(-1, 3).astype(int)
                    lit = px.max(1) > 20
                    self.assertGreater(lit.mean(), 0.05, "preview %s is blank" % ds.ImageComments)
                    # The inner structures in their colours: the vessels' red (r well
                    # above g and b) and the lungs' blue (b above r) in every view.
                    red = (px[:, 0] > 2 * px[:, 1] + 20) & (px[:, 0] > 2 * px[:, 2] + 20)
                    blue = px[:, 2] > px[:, 0] + 30
                    self.assertGreater(red.sum() + blue.sum(), 200, ds.ImageComments)
                    self.assertGreater(blue.sum(), 50, ds.ImageComments)
                if s in by_modality["M3D"]:
                    with urllib.request.urlopen("http://127.0.0.1:%d/instances/%s/content/0042-0011"
                                                % (orthanc.http_port, iid), timeout=30) as f:
                        stl = f.read()
                    n = struct.unpack("<I", stl[80:84])[0]
                    self.assertGreaterEqual(len(stl), 84 + 50 * n)
                    self.assertLessEqual(len(stl), 84 + 50 * n + 1)   # even-length padding
                    rec = np.frombuffer(stl[84:84 + 50 * n], dtype=np.dtype(
                        [("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")]))
                    pts = rec["v"].reshape(-1, 3)
                    self.assertTrue((pts.min(0) >= lo).all() and (pts.max(0) <= hi).all())
        finally:
            d.stop()
            d.cleanup()
            orthanc.stop()
            shutil.rmtree(work, ignore_errors=True)

    def test_sigkill_during_job_one_copy_in_orthanc(self):
        work = tempfile.mkdtemp(prefix="r3d-e2e-kill-")
        os.makedirs(os.path.join(work, "orthanc"))
        orthanc = sendtest.Orthanc(os.path.join(work, "orthanc")).start()
        d = Daemon(pipeline__workers=1, pipeline__stable_seconds=1)
        d.conf["destination orthanc"] = {"ae_title": sendtest.AET, "host": "127.0.0.1",
                                         "port": orthanc.dicom_port}
        d.write_conf()
        d.start()
        try:
            r = d.storescu(pancreas_files())
            self.assertEqual(r.returncode, 0, r.stderr[-1500:])
            deadline = time.time() + 120
            while time.time() < deadline and "job started job=1" not in d.log_text():
                time.sleep(0.05)
            d.kill()
            d.start()
            # The objects go out while the job still runs (issue 15): wait for both.
            d.wait_for(lambda s: any(x["name"] == "orthanc" and x["sent"] == OBJECTS
                                     for x in s["destinations"]) and s["jobs"].get("done") == 1,
                       timeout=300, what="objects delivered after the restart, the job done")
            st = d.status()
            self.assertEqual((st["jobs"]["done"], sum(st["jobs"].values())), (1, 1))
            with d.db() as db:
                sent = {row[0] for row in db.execute("SELECT sop_instance_uid FROM outbox")}
            self.assertEqual(len(sent), OBJECTS)
            # One copy of each object, with the SOP Instance UIDs recon3d sent.
            self.assertEqual(orthanc.count(), OBJECTS)
            for uid in sent:
                self.assertIsNotNone(orthanc.instance(uid), uid)
        finally:
            d.stop()
            d.cleanup()
            orthanc.stop()
            shutil.rmtree(work, ignore_errors=True)

    def test_site_structure_reaches_orthanc(self):
        """A [structure] section of the config, nothing else, gives Orthanc its
        segment, surface, Segmentation segment and STL series."""
        import numpy as np
        import pydicom
        work = tempfile.mkdtemp(prefix="r3d-e2e-site-")
        os.makedirs(os.path.join(work, "orthanc"))
        orthanc = sendtest.Orthanc(os.path.join(work, "orthanc")).start()
        d = Daemon(pipeline__workers=1, pipeline__stable_seconds=1, export__preview="false")
        d.conf["destination orthanc"] = {"ae_title": sendtest.AET, "host": "127.0.0.1",
                                         "port": orthanc.dicom_port}
        d.conf["structure " + SITE_KEY] = {
            "label": SITE_LABEL, "min_hu": SITE_MIN_HU, "max_hu": 3071,
            "color": "#%02x%02x%02x" % SITE_RGB,
            "category": "^".join(SITE_CATEGORY), "type": "^".join(SITE_TYPE),
            "max_triangles": SITE_MAX_TRIANGLES}
        # Bone stays as the preset beside it; the other presets are not made (time).
        for key in ("skin", "lungs", "vessels"):
            d.conf["structure " + key] = {"enabled": "false"}
        d.write_conf()
        objects = 4   # Surface Segmentation, STL of bone and of the site structure, Segmentation
        try:
            d.start()
            r = d.storescu(pancreas_files())
            self.assertEqual(r.returncode, 0, r.stderr[-1500:])
            st = d.wait_for(lambda s: s["jobs"].get("failed", 0) > 0 or
                            (any(x["name"] == "orthanc" and x["sent"] == objects
                                 for x in s["destinations"]) and s["jobs"].get("done") == 1),
                            timeout=120, what="the job's objects delivered to Orthanc")
            with d.db() as db:
                jobs = db.execute("SELECT id, state, coalesce(reason, '') FROM jobs").fetchall()
            self.assertEqual([j[1] for j in jobs], ["done"], "jobs: %r" % (jobs,))
            made = {x["key"]: x for x in st["structures"]}
            self.assertEqual((made[SITE_KEY]["label"], made[SITE_KEY]["made"]), (SITE_LABEL, 1))

            # What report.json says of the entry (the catalogue as the run used it).
            with open(os.path.join(d.dir, "results", "1", "report.json")) as f:
                rep = json.load(f)
            entries = {x["key"]: x for x in rep["structures"]}
            self.assertEqual(sorted(entries), ["bone", SITE_KEY])
            entry = entries[SITE_KEY]
            self.assertEqual(entry["label"], SITE_LABEL)
            self.assertEqual(entry["source"], "threshold")
            self.assertEqual(entry["range"], {"min_hu": SITE_MIN_HU, "max_hu": 3071})
            self.assertEqual(entry["max_triangles"], SITE_MAX_TRIANGLES)
            self.assertTrue(np.allclose(entry["color_rgb"], np.array(SITE_RGB) / 255.0, atol=1e-6),
                            entry["color_rgb"])
            self.assertEqual((entry["codes"]["category"]["value"], entry["codes"]["category"]["scheme"],
                              entry["codes"]["category"]["meaning"]), SITE_CATEGORY)
            self.assertEqual((entry["codes"]["type"]["value"], entry["codes"]["type"]["scheme"],
                              entry["codes"]["type"]["meaning"]), SITE_TYPE)
            site_lab = list(entry["color_cielab"])
            want = lab_of(SITE_RGB)
            self.assertTrue(all(abs(site_lab[k] - want[k]) <= 40 for k in range(3)),
                            "report.json CIELab %r, sRGB %r converts to %r"
                            % (site_lab, SITE_RGB, [round(w) for w in want]))
            for key, rgb in PRESET_RGB.items():
                other = lab_of(rgb)
                self.assertGreater(max(abs(site_lab[k] - other[k]) for k in range(3)), 2000,
                                   "the site colour is %s's" % key)
            self.assertLessEqual(entry["triangles"], SITE_MAX_TRIANGLES)
            self.assertTrue(entry["watertight"])

            # Orthanc: one study, the CT's (Orthanc was not sent the CT here),
            # holding the four new series.
            studies = orthanc.get("/studies")
            self.assertEqual(len(studies), 1)
            self.assertEqual(orthanc.get("/studies/" + studies[0])["MainDicomTags"]["StudyInstanceUID"],
                             str(pydicom.dcmread(pancreas_files()[0], stop_before_pixels=True)
                                 .StudyInstanceUID))
            series = [orthanc.get("/series/" + x) for x in orthanc.get("/studies/" + studies[0])["Series"]]
            by_desc = {}
            for x in series:
                by_desc.setdefault(x["MainDicomTags"].get("SeriesDescription"), []).append(x)
            self.assertEqual(sorted(k for k in by_desc if k is not None and k.startswith("3D model")),
                             ["3D model: bone (STL)", "3D model: %s (STL)" % SITE_LABEL,
                              "3D model: segmentation", "3D models (surface segmentation)"])

            def download(desc):
                self.assertEqual(len(by_desc[desc]), 1, desc)
                self.assertEqual(len(by_desc[desc][0]["Instances"]), 1, desc)
                iid = by_desc[desc][0]["Instances"][0]
                path = os.path.join(work, iid + ".dcm")
                with urllib.request.urlopen("http://127.0.0.1:%d/instances/%s/file"
                                            % (orthanc.http_port, iid), timeout=30) as f, \
                        open(path, "wb") as out:
                    out.write(f.read())
                self.assertEqual(dciodvfy_errors(path), [], desc)
                return pydicom.dcmread(path)

            # Surface Segmentation: a segment with the label and codes, and the
            # surface it references with the colour, closed as stored.
            ss = download("3D models (surface segmentation)")
            self.assertEqual(ss.SOPClassUID, SURFACE_SEG_CLASS)
            segs = {str(x.SegmentLabel): x for x in ss.SegmentSequence}
            self.assertEqual(sorted(segs), ["bone", SITE_LABEL])
            seg = segs[SITE_LABEL]
            self.assertEqual(code_of(seg, "SegmentedPropertyCategoryCodeSequence"), SITE_CATEGORY)
            self.assertEqual(code_of(seg, "SegmentedPropertyTypeCodeSequence"), SITE_TYPE)
            self.assertEqual(code_of(segs["bone"], "SegmentedPropertyTypeCodeSequence"),
                             ("3138006", "SCT", "Bone"))
            number = int(seg.ReferencedSurfaceSequence[0].ReferencedSurfaceNumber)
            surfs = [x for x in ss.SurfaceSequence if int(x.SurfaceNumber) == number]
            self.assertEqual(len(surfs), 1)
            surf = surfs[0]
            self.assertEqual([int(v) for v in surf.RecommendedDisplayCIELabValue], site_lab)
            bone_surf = [x for x in ss.SurfaceSequence if int(x.SurfaceNumber) ==
                         int(segs["bone"].ReferencedSurfaceSequence[0].ReferencedSurfaceNumber)][0]
            self.assertNotEqual([int(v) for v in bone_surf.RecommendedDisplayCIELabValue], site_lab)
            npts = int(surf.SurfacePointsSequence[0].NumberOfSurfacePoints)
            idx = np.frombuffer(surf.SurfaceMeshPrimitivesSequence[0].LongTrianglePointIndexList,
                                dtype="<u4").reshape(-1, 3).astype(np.int64) - 1
            self.assertEqual(len(idx), entry["triangles"])
            self.assertTrue(idx.min() >= 0 and idx.max() < npts, (idx.min(), idx.max(), npts))
            self.assertEqual(edge_check(idx), (0, 0, 0), "surface as stored: open, "
                             "non-manifold, mis-oriented edges")

            # Segmentation: a segment with the same label, colour and codes,
            # whose voxels are the CT's voxels >= 700 HU.
            sg = download("3D model: segmentation")
            self.assertEqual(sg.SOPClassUID, SEG_CLASS)
            segs = {str(x.SegmentLabel): x for x in sg.SegmentSequence}
            self.assertEqual(sorted(segs), ["bone", SITE_LABEL])
            seg = segs[SITE_LABEL]
            self.assertEqual(code_of(seg, "SegmentedPropertyCategoryCodeSequence"), SITE_CATEGORY)
            self.assertEqual(code_of(seg, "SegmentedPropertyTypeCodeSequence"), SITE_TYPE)
            self.assertEqual([int(v) for v in seg.RecommendedDisplayCIELabValue], site_lab)
            self.assertNotEqual([int(v) for v in segs["bone"].RecommendedDisplayCIELabValue], site_lab)
            number = int(seg.SegmentNumber)
            hu_at = {}
            for path in pancreas_files():
                ct = pydicom.dcmread(path)
                hu = ct.pixel_array * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
                hu_at[round(float(ct.ImagePositionPatient[2]), 2)] = hu >= SITE_MIN_HU
            px = sg.pixel_array.reshape(-1, int(sg.Rows), int(sg.Columns))
            inside = outside = 0
            for i, fg in enumerate(sg.PerFrameFunctionalGroupsSequence):
                if int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber) != number:
                    continue
                z = round(float(fg.PlanePositionSequence[0].ImagePositionPatient[2]), 2)
                mask = px[i].astype(bool)
                inside += int((mask & hu_at[z]).sum())
                outside += int((mask & ~hu_at[z]).sum())
            dense = sum(int(m.sum()) for m in hu_at.values())
            self.assertEqual(outside, 0, "voxels below %d HU in the segment" % SITE_MIN_HU)
            # Only 26-connected pieces under 27 voxels are left out.
            self.assertGreater(inside, 0.95 * dense, (inside, dense))

            # Its STL series: named after the label, the STL closed when welded.
            # (Each STL checked on its own: a failure of one does not hide the other's.)
            for desc, key in (("3D model: %s (STL)" % SITE_LABEL, SITE_KEY), ("3D model: bone (STL)", "bone")):
                with self.subTest(desc):
                    self.check_stl(download(desc), desc, entries[key])
        finally:
            d.stop()
            d.cleanup()
            orthanc.stop()
            shutil.rmtree(work, ignore_errors=True)

    def check_stl(self, ds, desc, entry):
        """An Encapsulated STL as Orthanc holds it: the STL of the entry, closed,
        2-manifold and oriented when welded by coordinates as a slicer welds it,
        enclosing the volume report.json gives."""
        import numpy as np
        self.assertEqual(ds.SOPClassUID, STL_CLASS)
        self.assertEqual(ds.Modality, "M3D")
        stl = bytes(ds.EncapsulatedDocument)
        n = struct.unpack("<I", stl[80:84])[0]
        self.assertIn(len(stl), (84 + 50 * n, 84 + 50 * n + 1), desc)
        self.assertEqual(n, entry["triangles"], desc)
        rec = np.frombuffer(stl[84:84 + 50 * n], dtype=np.dtype(
            [("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")]))
        pts, tri = np.unique(rec["v"].reshape(-1, 3), axis=0, return_inverse=True)
        tri = tri.reshape(-1, 3)
        self.assertEqual(edge_check(tri), (0, 0, 0), desc + ": open, non-manifold, "
                         "mis-oriented edges when welded by coordinates")
        a, b, c = (pts[tri[:, k]].astype(np.float64) for k in range(3))
        vol_ml = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0 / 1000.0
        self.assertAlmostEqual(vol_ml, entry["volume_ml"],
                               delta=0.01 * entry["volume_ml"], msg=desc)


if __name__ == "__main__":
    if shutil.which("Orthanc") is None:
        print("Orthanc is not installed: skipped", file=sys.stderr)
        sys.exit(sendtest.SKIP)
    sendtest.enter_netns(need_send_files=False)
    unittest.main(verbosity=2)
