"""
Rendered previews show the patient the right way round. The standard
recon3d-phantom scene is asymmetric: its large bone sphere lies on the
patient's left and low (inferior), its bone shell on the patient's right and
high (superior). The daemon makes the models and renders the seven views as
Secondary Capture images; this test decodes them with pydicom (an independent
reader) and checks, for an axial and for a double-oblique acquisition of the
same scene:

- anterior view: the sphere is in the lower right of the image (the patient's
  left is on the viewer's right), the shell in the upper left; posterior view:
  mirrored; superior view (anterior up, patient's left on the image's left):
  sphere on the left, shell on the right;
- Patient Orientation (0020,0020) of each view names the directions of the
  image's rows and columns (anterior: L\\F, posterior: R\\F, left: P\\F,
  right: A\\F, superior: R\\P, inferior: L\\P);
- the burned-in letters agree across views: the glyph at the right edge of
  the anterior view is the one at the left edge of the posterior view (both
  "L") and differs from the glyph at the anterior view's left edge ("R"); the
  top of the anterior view and of the left view carry the same glyph ("S");
- Recognizable Visual Features: YES on the skin's STL and on the
  Segmentation that holds the skin, NO on the bone's STL and on previews that
  leave the skin out (absent from the Surface Segmentation, whose IOD lacks it);
- the oblique acquisition gives the same anterior picture as the axial one
  (the projection is in patient coordinates, not in the scanner's): the bone
  pixels overlap (IoU >= 0.9).
"""
import glob
import json
import os
import subprocess
import tempfile
import unittest
import shutil

from r3dtest import Daemon, main

try:
    import numpy as np
    import pydicom
except ImportError:  # setup.sh installs both; without them the test cannot decode
    np = None

PHANTOM = os.environ.get("R3D_PHANTOM_BIN", "")
BONE_RGB = (0.89, 0.85, 0.79)   # src/pipeline: the bone colour

# Expected Patient Orientation (row direction \ column direction) per view.
ORIENTATION = {
    "anterior": ["L", "F"], "posterior": ["R", "F"], "left": ["P", "F"],
    "right": ["A", "F"], "superior": ["R", "P"], "inferior": ["L", "P"],
}


def pixels(path):
    ds = pydicom.dcmread(path)
    a = ds.pixel_array
    return ds, a


def bone_mask(img):
    """Pixels whose hue matches the bone colour: shading scales the colour
    (in linear light), so compare channel ratios, not values."""
    f = img.astype(np.float64)
    s = f.sum(axis=2)
    lit = s > 60
    ratio = np.zeros_like(f)
    ratio[lit] = f[lit] / s[lit][:, None]
    want = np.array(BONE_RGB) / sum(BONE_RGB)
    return lit & (np.abs(ratio - want).max(axis=2) < 0.035)


def glyph(img, where):
    """The white letter pixels in the middle of one edge, cropped to their
    bounding box."""
    h, w, _ = img.shape
    white = (img.min(axis=2) > 200)
    band = max(8, w // 16)
    if where == "left":
        box = white[h // 2 - band:h // 2 + band, 0:band]
    elif where == "right":
        box = white[h // 2 - band:h // 2 + band, w - band:w]
    else:  # top
        box = white[0:band, w // 2 - band:w // 2 + band]
    ys, xs = np.nonzero(box)
    if len(ys) == 0:
        return None
    return box[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def thirds(mask):
    """Pixel counts in the outer thirds of the image, split at half height:
    upper/lower left (UL, LL), upper/lower right (UR, LR), whole left and
    right thirds (L, R)."""
    h, w = mask.shape
    t = w // 3
    up, lo, le, ri = slice(0, h // 2), slice(h // 2, h), slice(0, t), slice(w - t, w)
    return {"UL": int(mask[up, le].sum()), "UR": int(mask[up, ri].sum()),
            "LL": int(mask[lo, le].sum()), "LR": int(mask[lo, ri].sum()),
            "L": int(mask[:, le].sum()), "R": int(mask[:, ri].sum())}


@unittest.skipIf(np is None, "python3-numpy / python3-pydicom missing (scripts/setup.sh installs them)")
class PreviewOrientation(unittest.TestCase):
    def make_phantom(self, out, geometry):
        r = subprocess.run([PHANTOM, "--out", out, "--size", "160", "--slices", "110",
                            "--spacing", "1.2,1.2,1.5", "--geometry", geometry, "--angle", "25",
                            "--threads", "2"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return sorted(glob.glob(os.path.join(out, "*.dcm")))

    def test_views_are_the_right_way_round(self):
        self.assertTrue(os.path.exists(PHANTOM), "R3D_PHANTOM_BIN")
        work = tempfile.mkdtemp(prefix="r3d-orient-")
        d = Daemon(pipeline__workers=1, pipeline__stable_seconds=1, export__preview_size=256).start()
        try:
            files, geometry_of = [], {}
            for g in ("axial", "oblique"):
                files += self.make_phantom(os.path.join(work, g), g)
                with open(os.path.join(work, g, "truth.json")) as f:
                    geometry_of[json.load(f)["series_instance_uid"]] = g
            r = d.storescu(files)
            self.assertEqual(r.returncode, 0, r.stderr[-1500:])
            d.wait_for(lambda s: s["jobs"]["done"] + s["jobs"]["failed"] + s["jobs"]["skipped"] == 2,
                       timeout=300, what="two finished jobs")
            with d.db() as db:
                rows = db.execute("SELECT state, results_dir, result FROM jobs ORDER BY id").fetchall()
            self.assertEqual([row[0] for row in rows], ["done", "done"], rows)
            anterior_bone = {}
            for state, results, result in rows:
                report = json.loads(result)
                geometry = geometry_of[report["series_instance_uid"]]
                made = [s["name"] for s in report["structures"] if "file" in s]
                self.assertIn("bone", made, report["structures"])
                # Recognizable Visual Features: the skin (a face, on a head CT)
                # says YES, objects without it NO; the previews leave the skin
                # out when there is bone.
                dicom = os.path.join(results, "dicom")
                rvf = {f: pydicom.dcmread(os.path.join(dicom, f)).get("RecognizableVisualFeatures")
                       for f in ("stl-skin.dcm", "stl-bone.dcm", "segmentation.dcm",
                                 "preview-anterior.dcm", "surface-segmentation.dcm")}
                self.assertEqual(rvf, {"stl-skin.dcm": "YES", "stl-bone.dcm": "NO",
                                       "segmentation.dcm": "YES", "preview-anterior.dcm": "NO",
                                       "surface-segmentation.dcm": None}, geometry)
                views = {}
                for name in ORIENTATION.keys() | {"oblique"}:
                    path = os.path.join(results, "dicom", "preview-%s.dcm" % name)
                    ds, img = pixels(path)
                    self.assertEqual(img.shape, (256, 256, 3), name)
                    self.assertEqual(ds.BurnedInAnnotation, "YES")
                    if name in ORIENTATION:
                        self.assertEqual(list(ds.PatientOrientation), ORIENTATION[name],
                                         "%s %s" % (geometry, name))
                    views[name] = img
                bone = {v: bone_mask(views[v]) for v in views}
                anterior_bone[geometry] = bone["anterior"]
                q = {v: thirds(bone[v]) for v in bone}
                a, p, lv, rv, sv = (q["anterior"], q["posterior"], q["left"], q["right"],
                                    q["superior"])
                msg = "%s: %%s (bone pixels by outer third: %%s)" % geometry
                # Anterior: the shell (patient's right, superior) in the upper
                # left, nothing in the upper right; the sphere (patient's left,
                # inferior) makes the lower right outweigh the lower left.
                self.assertGreater(a["UL"], 500, msg % ("anterior: no shell upper left", a))
                self.assertLess(a["UR"], a["UL"] / 20, msg % ("anterior: upper right", a))
                self.assertGreater(a["LR"], 1.3 * a["LL"], msg % ("anterior: sphere side", a))
                # Posterior: the mirror image.
                self.assertGreater(p["UR"], 500, msg % ("posterior: no shell upper right", p))
                self.assertLess(p["UL"], p["UR"] / 20, msg % ("posterior: upper left", p))
                self.assertGreater(p["LL"], 1.3 * p["LR"], msg % ("posterior: sphere side", p))
                mirrored = bone["anterior"][:, ::-1]
                iou = (mirrored & bone["posterior"]).sum() / max(1, (mirrored | bone["posterior"]).sum())
                self.assertGreater(iou, 0.85, msg % ("posterior is not the anterior's mirror image",
                                                     iou))
                # Left view (anterior on the image's left): the straight vessel
                # lies posterior and reaches high, the shell is central: the
                # upper right has bone, the upper left none; right view mirrored.
                self.assertGreater(lv["UR"], 300, msg % ("left view: upper right", lv))
                self.assertLess(lv["UL"], lv["UR"] / 10, msg % ("left view: upper left", lv))
                self.assertGreater(rv["UL"], 300, msg % ("right view: upper left", rv))
                self.assertLess(rv["UR"], rv["UL"] / 10, msg % ("right view: upper right", rv))
                # Superior (patient's left on the image's left): the larger
                # shell on the right outweighs the sphere on the left.
                self.assertGreater(sv["R"], 1.1 * sv["L"], msg % ("superior: shell side", sv))
                # Letters agree with each other across views.
                a_left, a_right = glyph(views["anterior"], "left"), glyph(views["anterior"], "right")
                p_left, p_right = glyph(views["posterior"], "left"), glyph(views["posterior"], "right")
                for g in (a_left, a_right, p_left, p_right):
                    self.assertIsNotNone(g, geometry + ": a side letter is missing")
                self.assertTrue(np.array_equal(a_right, p_left), geometry + ": L differs")
                self.assertTrue(np.array_equal(a_left, p_right), geometry + ": R differs")
                self.assertFalse(a_left.shape == a_right.shape and np.array_equal(a_left, a_right),
                                 geometry + ": R and L are drawn alike")
                s_ant, s_left = glyph(views["anterior"], "top"), glyph(views["left"], "top")
                self.assertTrue(np.array_equal(s_ant, s_left), geometry + ": S differs")
                self.assertFalse(s_ant.shape == a_left.shape and np.array_equal(s_ant, a_left))
            # The same scene acquired obliquely looks the same from the front.
            a, b = anterior_bone["axial"], anterior_bone["oblique"]
            iou = (a & b).sum() / max(1, (a | b).sum())
            self.assertGreater(iou, 0.9, "anterior bone of the axial and oblique acquisitions: "
                               "IoU %.3f" % iou)
        finally:
            d.stop()
            if os.environ.get("R3D_KEEP"):
                print("kept", d.dir, work)
            else:
                d.cleanup()
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
