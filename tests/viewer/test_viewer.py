"""
The 3D page (issue 5, item 3), end to end and in a real browser.

recon3d runs with [viewer] enabled and a webhook to tests/notify/receiver.py;
a phantom CT series (recon3d-phantom) is pushed with storescu. Then:
- the signed message carries viewer_url, a 256-bit token under [viewer]
  base_url; /status counts one active link and never shows the token, nor
  does the log;
- headless Chromium (Debian's chromium, SwiftShader WebGL, Chromium's own
  --screenshot) loads that URL: the screenshot has pixels in the colour of
  every structure except the body surface (hidden at first), shaded as
  Lambert shading would shade it; with #show=skin it has the skin's colour
  and no bone;
- models.json lists exactly report.json's structures with their colours and
  volumes; every STL download is an attachment and a valid binary STL whose
  triangle count is report.json's;
- the page, its JSON and the assets carry a Content-Security-Policy that
  forbids other origins, and nothing on them names the patient;
- a wrong, malformed and (after ageing the row with the sqlite3 command) an
  expired token get 404 with the same body as any unknown path.

Then the page is driven for planning (issue 14) by tests/viewer/drive.js:
playwright-core with Debian's chromium, headless, a fresh profile, every
request not to 127.0.0.1 aborted, failing on any console or page error. It
toggles bone off and on (the same pixels again), drags its opacity (keyboard
too), moves a sagittal clipping plane through the phantom's bone sphere (the
pixels change right of where the plane can fall on the screen and not left
of it), cuts a coronal plane through the sphere (its cap is flat, in the
unshaded colour), clicks the front poles of the bone sphere and of the bone
shell in the anterior view (mouse, then a touch screen) and reads the
distance (within 1 % of the phantom's analytic distance), asks the shortest
bone-to-skin distance (against the analytic phantom and a brute force over
the served meshes), uses each standard view (orientation letters and where
the phantom's shapes fall), saves a PNG, and opens the page's address in a
new tab: the same pixels. Last, print readiness, sizes and a distance
written into the job's report reach models.json unchanged and the page
shows them.
"""
import base64
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import zlib

import numpy as np

from r3dtest import Daemon, main

HERE = os.path.dirname(os.path.abspath(__file__))
RECEIVER = os.path.join(HERE, "..", "notify", "receiver.py")
PHANTOM = os.environ.get("R3D_PHANTOM", "")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NODE = os.environ.get("R3D_NODE") or shutil.which("node")
PLAYWRIGHT = os.environ.get("R3D_PLAYWRIGHT", "")
DRIVER = os.path.join(HERE, "drive.js")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                  "--hide-scrollbars", "--window-size=1000,750"]
PANEL_RIGHT = 360   # the list of structures covers x < 350 at this size
BACKGROUND = (0x3a, 0x3d, 0x42)   # viewer.js scene.background


def get(url, timeout=30):
    """(status, headers, body bytes) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def png_rgb(path):
    """An 8-bit RGB or RGBA PNG (what Chromium writes) as an (h, w, 3) uint8 array
    (VTK's PNG reader when there is VTK, else the decoder below)."""
    try:
        import vtk
        from vtk.util.numpy_support import vtk_to_numpy
    except ImportError:
        return png_rgb_python(path)
    r = vtk.vtkPNGReader()
    r.SetFileName(path)
    r.Update()
    im = r.GetOutput()
    w, h, _ = im.GetDimensions()
    a = vtk_to_numpy(im.GetPointData().GetScalars()).reshape(h, w, -1)
    return np.ascontiguousarray(a[::-1, :, :3]).astype(np.uint8)


def png_rgb_python(path):
    """png_rgb() without VTK."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    i, idat, w = 8, b"", 0
    while i < len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        chunk = data[i + 8:i + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        i += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + w * bpp)
    out = np.zeros((h, w * bpp), dtype=np.int32)
    prev = np.zeros(w * bpp, dtype=np.int32)
    for y in range(h):
        ftype, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if ftype == 0:
            cur = line
        elif ftype == 2:
            cur = (line + prev) & 255
        else:   # 1 (sub), 3 (average), 4 (Paeth) depend on the left pixel
            cur = np.zeros_like(line)
            for x in range(w * bpp):
                a = cur[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                if ftype == 1:
                    p = a
                elif ftype == 3:
                    p = (a + b) // 2
                else:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (line[x] + p) & 255
        out[y] = cur
        prev = cur
    return out.reshape(h, w, bpp)[:, :, :3].astype(np.uint8)


def srgb_to_linear(c):
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c):
    c = np.clip(c, 0, 1)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def colour_mask(img, rgb01, tol=6):
    """colour_pixels() as a mask of the area right of the list."""
    shades = linear_to_srgb(np.outer(np.linspace(0.5, 1.0, 51), srgb_to_linear(rgb01))) * 255
    px = img[:, PANEL_RIGHT:].astype(np.int16)
    hit = np.zeros(px.shape[:2], dtype=bool)
    for s in shades.round().astype(np.int16):
        hit |= np.all(np.abs(px - s) <= tol, axis=2)
    return hit


def colour_pixels(img, rgb01, tol=6):
    """Pixels right of the list (whose swatches have the exact colours) that
    equal the colour shaded by Lambert lighting (its linear value scaled by
    0.5 to 1.0: an ambient light of 0.35 and a headlight, on surfaces that
    mostly face the viewer), within tol per channel. Grey, however lit, does
    not pass for bone."""
    shades = linear_to_srgb(np.outer(np.linspace(0.5, 1.0, 51), srgb_to_linear(rgb01))) * 255
    px = img[:, PANEL_RIGHT:].reshape(-1, 3).astype(np.int16)
    hit = np.zeros(len(px), dtype=bool)
    for s in shades.round().astype(np.int16):
        hit |= np.all(np.abs(px - s) <= tol, axis=1)
    return int(hit.sum())


def model_pixels(img):
    """Pixels right of the list that are not the page's background."""
    px = img[:, PANEL_RIGHT:].reshape(-1, 3).astype(np.int16)
    return int((np.abs(px - np.array(BACKGROUND)).max(axis=1) > 12).sum())


def region_diff(a, b, x0=PANEL_RIGHT, x1=None):
    """Per pixel, the largest channel difference of two screenshots in columns x0..x1."""
    return np.abs(a[:, x0:x1].astype(np.int16) - b[:, x0:x1].astype(np.int16)).max(axis=2)


def mesh_vertices(data):
    """The vertices of a recon3d indexed mesh (R3DMESH1) as an (n, 3) array."""
    nv, _ = struct.unpack("<II", data[8:16])
    return np.frombuffer(data, dtype="<f4", count=3 * nv, offset=16).reshape(-1, 3).astype(np.float64)


def min_vertex_distance(a, b, chunk=2000):
    """The smallest distance between a vertex of a and a vertex of b (brute force)."""
    best = np.inf
    for i in range(0, len(a), chunk):
        d = ((a[i:i + chunk, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        best = min(best, float(d.min()))
    return best ** 0.5


def solid_distance(points, shape):
    """Distance from each point (outside) to a phantom sphere or capped cylinder."""
    c = np.array(shape["center_lps_mm"])
    if shape["kind"] == "ellipsoid":
        r = shape["radii_mm"]
        assert max(r) - min(r) < 1e-9, shape["name"]
        return np.linalg.norm(points - c, axis=1) - r[0]
    assert shape["kind"] == "cylinder", shape["kind"]
    a = np.array(shape["axis"])
    t = (points - c) @ a
    radial = np.linalg.norm(points - c - t[:, None] * a, axis=1) - shape["radii_mm"][0]
    along = np.abs(t) - shape["half_length_mm"]
    return np.hypot(np.maximum(radial, 0), np.maximum(along, 0))


def bone_to_skin_truth(truth):
    """The phantom's shortest distance from any shape of the bone structure
    (HU >= 100 inside the body: spheres, shell, cylinders) to the body's
    surface, from the analytic shapes: the body ellipsoid sampled every 0.5
    degree. The shell (an ellipsoid) is bounded by its largest radius and must
    be farther than the rest."""
    sh = {s["name"]: s for s in truth["shapes"]}
    body = sh["body"]
    th, ph = np.meshgrid(np.radians(np.arange(0, 180.01, 0.5)), np.radians(np.arange(0, 360, 0.5)))
    r = body["radii_mm"]
    pts = np.stack([r[0] * np.sin(th) * np.cos(ph), r[1] * np.sin(th) * np.sin(ph), r[2] * np.cos(th)],
                   axis=-1).reshape(-1, 3) + np.array(body["center_lps_mm"])
    solids = [s for s in truth["shapes"] if s["name"] not in ("body", "table", "bone_shell")
              and s["hu"] >= 100]
    best = min(float(solid_distance(pts, s).min()) for s in solids)
    shell = sh["bone_shell"]
    shell_bound = float((np.linalg.norm(pts - np.array(shell["center_lps_mm"]), axis=1)
                         - max(shell["radii_mm"])).min())
    assert shell_bound > best + 1, (shell_bound, best)
    return best


def viewer_plan(truth):
    """What drive.js does on the phantom: structures to use and LPS points,
    from the phantom's analytic shapes (truth.json)."""
    sh = {s["name"]: s for s in truth["shapes"]}
    sp, shell, small = sh["bone_sphere"], sh["bone_shell"], sh["small_bone_sphere"]
    c, r = sp["center_lps_mm"], sp["radii_mm"][0]
    cs = shell["center_lps_mm"]
    return {
        "toggle": "bone", "opacity": "bone",
        # A sagittal plane through the sphere's centre; the band is where the
        # plane falls on the screen from the front to the back of the model.
        "clip": {"axis": "x", "at": c[0], "band_points": [[c[0], -70, c[2]], [c[0], 10, c[2]]]},
        # A coronal plane through the sphere's centre, the front cut away.
        "cap": {"axis": "y", "at": c[1], "center": c, "edge": [c[0] + 0.8 * r, c[1], c[2]]},
        # The front poles of the bone sphere and of the bone shell.
        "measure": {"a": [c[0], c[1] - r, c[2]], "b": [cs[0], cs[1] - shell["radii_mm"][1], cs[2]]},
        "pair": ["bone", "skin"],
        "view_points": [c, cs, small["center_lps_mm"]],
    }


def drive(out, url, *args):
    """Runs drive.js; its result.json."""
    r = subprocess.run([NODE, DRIVER, "--url", url, "--out", out] + list(args), capture_output=True,
                       text=True, timeout=600, env=dict(os.environ, R3D_PLAYWRIGHT=PLAYWRIGHT,
                                                        R3D_CHROMIUM=CHROMIUM))
    path = os.path.join(out, "result.json")
    assert os.path.exists(path), (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    with open(path) as f:
        res = json.load(f)
    assert r.returncode == 0 and "failure" not in res, (res.get("failure"), r.stderr[-3000:])
    assert res["errors"] == [], res["errors"]
    assert res["blocked"] == [], res["blocked"]
    return res


def screenshot(url, out_png, profile):
    args = [CHROMIUM] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile, "--virtual-time-budget=30000",
                                          "--screenshot=" + out_png, url]
    r = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and os.path.exists(out_png), (r.returncode, r.stderr[-2000:])
    return png_rgb(out_png)


class ViewerPage(unittest.TestCase):
    def test_page_from_the_webhook_link(self):
        if CHROMIUM is None or NODE is None or not os.path.isdir(PLAYWRIGHT):
            print("chromium, node or playwright-core is not installed (scripts/setup.sh and the"
                  " build install them): skipped")
            sys.exit(77)
        self.assertTrue(PHANTOM and os.path.exists(PHANTOM), "R3D_PHANTOM not set")
        work = tempfile.mkdtemp(prefix="r3d-viewer-")
        series = os.path.join(work, "phantom")
        r = subprocess.run([PHANTOM, "--out", series, "--size", "160", "--slices", "80",
                            "--spacing", "1.2,1.2,2", "--patient", "ZEBEDEE^QUILLAN"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        files = sorted(os.path.join(series, f) for f in os.listdir(series) if f.endswith(".dcm"))
        secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        hook_log = os.path.join(work, "requests.jsonl")
        recv = subprocess.Popen([sys.executable, RECEIVER, "--secret", secret, "--log", hook_log,
                                 "--script", "200", "--max-seconds", "400"],
                                stdout=subprocess.PIPE, text=True)
        port = int(recv.stdout.readline().split()[1])
        os.makedirs(os.path.join(work, "daemon"))
        d = Daemon(os.path.join(work, "daemon"), pipeline__workers=1, pipeline__stable_seconds=1,
                   webhook__url="http://127.0.0.1:%d/hook" % port, webhook__secret=secret,
                   viewer__enabled="true", viewer__link_ttl_days=3, log__level="debug")
        # A base URL as behind a reverse proxy, except that it is this daemon.
        d.conf["viewer"]["base_url"] = "http://127.0.0.1:%d/" % d.http_port
        d.write_conf()
        d.start()
        try:
            r = d.storescu(files)
            self.assertEqual(r.returncode, 0, r.stderr[-1500:])
            st = d.wait_for(lambda s: s["webhook"]["delivered"] == 1, timeout=300,
                            what="the message delivered")
            self.assertEqual(st["viewer"], {"enabled": True, "links_active": 1})
            with open(hook_log) as f:
                reqs = [json.loads(line) for line in f if line.strip()]
            self.assertTrue(reqs[-1]["sig_ok"])
            body = json.loads(reqs[-1]["body"])
            link = body["data"]["viewer_url"]
            m = re.fullmatch(re.escape(d.url("/viewer/")) + "([0-9a-f]{64})", link)
            self.assertIsNotNone(m, link)
            token = m.group(1)
            self.assertNotIn(token, json.dumps(d.status()))
            self.assertNotIn(token, d.metrics())
            self.assertRegex(d.metrics(), r"recon3d_viewer_links_active 1")
            with d.db() as db:
                results_dir, study_uid = db.execute(
                    "SELECT j.results_dir, st.study_uid FROM jobs j JOIN series s ON s.id = j.series_id"
                    " JOIN studies st ON st.id = s.study_id WHERE j.state = 'done'").fetchone()
                self.assertEqual(db.execute("SELECT count(*) FROM viewer_links").fetchone()[0], 1)
            with open(os.path.join(results_dir, "report.json")) as f:
                report = json.load(f)
            made = [s for s in report["structures"] if "file" in s]
            self.assertGreaterEqual(len(made), 2, report["structures"])

            # The page and its JSON.
            code, hdr, page = get(link)
            self.assertEqual(code, 200)
            self.assertTrue(hdr["Content-Type"].startswith("text/html"))
            csp = hdr["Content-Security-Policy"]
            self.assertIn("default-src 'none'", csp)
            self.assertIn("script-src 'self'", csp)
            self.assertEqual(hdr["Referrer-Policy"], "no-referrer")
            self.assertEqual(hdr["Cache-Control"], "no-store")
            self.assertNotRegex(page.decode(), r"(src|href)=\"(https?:)?//")
            code, hdr, models = get(link + "/models.json")
            self.assertEqual(code, 200)
            models = json.loads(models)
            for text in (page.decode(), json.dumps(models)):
                self.assertNotIn("ZEBEDEE", text.upper())
                self.assertNotIn("QUILLAN", text.upper())
            self.assertEqual(sorted(s["name"] for s in models["structures"]),
                             sorted(s["name"] for s in made))
            for s in made:
                m = next(x for x in models["structures"] if x["name"] == s["name"])
                self.assertEqual(m["color_rgb"], [round(c * 255) for c in s["color_rgb"]])
                self.assertAlmostEqual(m["volume_ml"], s["volume_ml"], delta=0.006)
                self.assertEqual(m["triangles"], s["triangles"])
                # The download: an attachment, a binary STL of the report's size.
                code, hdr, stl = get(link + "/" + m["file"])
                self.assertEqual(code, 200, m["file"])
                self.assertIn("attachment", hdr["Content-Disposition"])
                self.assertIn('filename="%s.stl"' % s["name"], hdr["Content-Disposition"])
                self.assertEqual(hdr["Content-Type"], "model/stl")
                (n,) = struct.unpack("<I", stl[80:84])
                self.assertEqual(len(stl), 84 + 50 * n, "not a binary STL")
                self.assertEqual(n, s["triangles"])
                tri = np.frombuffer(stl[84:], dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", 9),
                                                             ("a", "<u2")]))
                self.assertTrue(np.all(np.isfinite(tri["v"])))
                # A browser (Accept-Encoding: gzip) gets it compressed on the
                # fly: the same bytes once unpacked, and smaller.
                req = urllib.request.Request(link + "/" + m["file"],
                                             headers={"Accept-Encoding": "gzip"})
                with urllib.request.urlopen(req, timeout=60) as r:
                    self.assertEqual(r.headers["Content-Encoding"], "gzip")
                    self.assertIn("attachment", r.headers["Content-Disposition"])
                    packed = r.read()
                self.assertEqual(zlib.decompress(packed, 31), stl, m["file"])
                self.assertLess(len(packed), 0.8 * len(stl))
                # The page loads the indexed mesh instead: the same triangles,
                # vertex for vertex, in about a third of the bytes.
                self.assertEqual(m["mesh"], m["key"] + ".mesh")
                code, hdr, mesh = get(link + "/" + m["mesh"])
                self.assertEqual(code, 200, m["mesh"])
                self.assertIsNone(hdr["Content-Disposition"])
                self.assertEqual(mesh[:8], b"R3DMESH1")
                nv, nt = struct.unpack("<II", mesh[8:16])
                self.assertEqual(len(mesh), 16 + 12 * nv + 12 * nt)
                self.assertEqual(nt, n)
                xyz = np.frombuffer(mesh, dtype="<f4", count=3 * nv, offset=16).reshape(-1, 3)
                idx = np.frombuffer(mesh, dtype="<u4", count=3 * nt, offset=16 + 12 * nv).reshape(-1, 3)
                self.assertTrue(np.array_equal(xyz[idx].reshape(-1, 9), tri["v"]), m["mesh"])
                self.assertLess(len(mesh), 0.45 * len(stl))
            # The assets: ours and three.js, from this server only.
            for asset in ("viewer.js", "viewer.css", "three.module.js", "three.core.js",
                          "TrackballControls.js", "distance-worker.js"):
                code, hdr, data = get(d.url("/viewer/assets/" + asset))
                self.assertEqual(code, 200, asset)
                self.assertIn("default-src 'none'", hdr["Content-Security-Policy"])
                self.assertGreater(len(data), 1000, asset)
            code, _, controls = get(d.url("/viewer/assets/TrackballControls.js"))
            self.assertNotIn(b"from 'three'", controls)
            # Compressed for browsers that take gzip; the same bytes once unpacked.
            req = urllib.request.Request(d.url("/viewer/assets/three.core.js"),
                                         headers={"Accept-Encoding": "gzip, deflate"})
            with urllib.request.urlopen(req, timeout=30) as r:
                self.assertEqual(r.headers["Content-Encoding"], "gzip")
                packed = r.read()
            _, hdr, plain = get(d.url("/viewer/assets/three.core.js"))
            self.assertIsNone(hdr["Content-Encoding"])
            self.assertLess(len(packed), len(plain) / 3)
            self.assertEqual(zlib.decompress(packed, 31), plain)

            # The browser: the canvas draws every inner structure in its colour.
            shots = os.path.join(work, "shots")
            os.makedirs(shots)
            mark = len(d.log_text())
            img = screenshot(link, os.path.join(shots, "default.png"), os.path.join(shots, "p1"))
            # Only what is shown is downloaded: the hidden skin is not fetched.
            fetched = re.findall(r"(?:download|model) study=\S+ structure=(\S+)", d.log_text()[mark:])
            self.assertIn("bone", fetched)
            self.assertNotIn("skin", fetched)
            self.assertIn("structure=bone format=mesh", d.log_text()[mark:],
                          "the page did not load the indexed mesh")
            self.assertGreater(img.std(), 5, "blank screenshot")
            counts = {s["name"]: colour_pixels(img, s["color_rgb"]) for s in made}
            print("pixels per structure colour (default view):", counts)
            surface = [s for s in made if s["name"] == "skin"]
            inner = [s for s in made if s["name"] != "skin"]
            for s in inner:
                self.assertGreater(counts[s["name"]], 300, "no %s on the page: %s" % (s["name"], counts))
            drawn = model_pixels(img)
            print("model pixels:", drawn)
            self.assertGreater(sum(counts[s["name"]] for s in inner), 0.6 * drawn,
                               "the model is not drawn in its structures' colours")
            # The first view is from the front, head up, the patient's right
            # on the screen's left (as the anterior preview): the phantom's
            # bone shell (patient's right, superior) is upper left, its large
            # sphere (patient's left, inferior) lower right, nothing bony in
            # the upper right.
            bone = colour_mask(img, next(s["color_rgb"] for s in made if s["name"] == "bone"))
            ys, xs = np.nonzero(bone)
            x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            t, ym = (x1 - x0) // 3, (y0 + y1) // 2
            q = {"UL": int(bone[y0:ym, x0:x0 + t].sum()), "UR": int(bone[y0:ym, x1 - t:x1].sum()),
                 "LL": int(bone[ym:y1, x0:x0 + t].sum()), "LR": int(bone[ym:y1, x1 - t:x1].sum())}
            print("bone pixels by outer third (default view):", q)
            self.assertGreater(q["UL"], 1000, "no shell upper left: %s" % q)
            self.assertLess(q["UR"], q["UL"] / 20, "the page shows the patient mirrored: %s" % q)
            self.assertGreater(q["LR"], q["LL"], "the sphere is not lower right: %s" % q)
            if surface and inner:
                mark = len(d.log_text())
                img = screenshot(link + "#show=skin", os.path.join(shots, "skin.png"),
                                 os.path.join(shots, "p2"))
                fetched = re.findall(r"(?:download|model) study=\S+ structure=(\S+)", d.log_text()[mark:])
                self.assertEqual(fetched, ["skin"])
                skin = {s["name"]: colour_pixels(img, s["color_rgb"]) for s in made}
                print("pixels per structure colour (#show=skin):", skin)
                self.assertGreater(skin["skin"], 2000)
                self.assertGreater(skin["skin"], 20 * max(1, counts.get("skin", 0)))
                if "bone" in skin:
                    self.assertLess(skin["bone"], counts["bone"] / 10)

            self.planning(work, link, series, results_dir, d)

            # Wrong and malformed tokens: the same 404 as any unknown path.
            code, _, unknown = get(d.url("/viewer/nothing-here"))
            self.assertEqual(code, 404)
            code, _, plain = get(d.url("/no/such/path"))
            self.assertEqual(code, 404)
            wrong = ("0" if token[0] != "0" else "1") + token[1:]
            for url in (d.url("/viewer/" + wrong), d.url("/viewer/" + wrong + "/models.json"),
                        d.url("/viewer/" + wrong + "/" + made[0]["name"] + ".stl"),
                        d.url("/viewer/" + token.upper()), d.url("/viewer/" + token[:-1]),
                        d.url("/viewer/" + token + "0"), link + "/../../status",
                        link + "/nothing.stl", link + "/" + "../report.json"):
                code, _, b = get(url)
                self.assertEqual(code, 404, url)
                self.assertEqual(b, unknown, url)
            self.assertEqual(unknown, plain)

            # Expired: age the row with the sqlite3 command, as an operator would.
            r = subprocess.run(["sqlite3", d.database,
                                "UPDATE viewer_links SET expires_at = strftime('%s','now') - 1"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            for url in (link, link + "/models.json", link + "/" + made[0]["name"] + ".stl"):
                code, _, b = get(url)
                self.assertEqual(code, 404, url)
                self.assertEqual(b, unknown, url)
            self.assertEqual(d.status()["viewer"]["links_active"], 0)
            # Tokens are capabilities: never in the log at info level.
            self.assertNotIn(token, d.log_text())
            self.assertIn("link made study=" + study_uid, d.log_text())
        finally:
            d.stop()
            recv.terminate()
            recv.wait()
            if os.environ.get("R3D_KEEP") is None:
                d.cleanup()
                shutil.rmtree(work, ignore_errors=True)

    def planning(self, work, link, series, results_dir, d):
        """The page driven for planning (issue 14): see the module's comment."""
        with open(os.path.join(series, "truth.json")) as f:
            truth = json.load(f)
        plan = viewer_plan(truth)
        out = os.path.join(work, "drive")
        os.makedirs(out)
        with open(os.path.join(work, "plan.json"), "w") as f:
            json.dump(plan, f)
        res = drive(out, link, "--plan", os.path.join(work, "plan.json"))
        print("first frame %.0f ms (phantom), chromium %s" % (res["first_frame_ms"], res["chromium"]))
        shot = {n[:-4]: png_rgb(os.path.join(out, n)) for n in os.listdir(out) if n.endswith(".png")}
        default = shot["default"]
        bone_rgb = None
        for s in json.loads(get(link + "/models.json")[2])["structures"]:
            if s["key"] == "bone":
                bone_rgb = np.array(s["color_rgb"])
        drawn = model_pixels(default)
        self.assertGreater(drawn, 20000)

        # A structure off: the model is gone; on again: the same pixels.
        self.assertLess(model_pixels(shot["toggle_off"]), drawn / 50)
        self.assertEqual(int(region_diff(shot["toggle_on"], default).max()), 0)
        # Opacity: 35 % blends the bone with the background where it was
        # drawn (and nothing changes where it was not); 100 % is the first picture.
        self.assertEqual(res["opacity_label"], "35 %")
        was = np.abs(default[:, PANEL_RIGHT:].astype(np.int16) - np.array(BACKGROUND)).max(axis=2) > 12
        dd = region_diff(shot["opacity_35"], default)
        self.assertGreater(float(dd[was].mean()), 30, "opacity did not change the bone")
        self.assertEqual(int(dd[~was].max()), 0, "opacity changed pixels off the model")
        self.assertEqual(int(region_diff(shot["opacity_100"], default).max()), 0)

        # The clipping plane beyond the model changes nothing; through the
        # sphere's centre (keeping the patient's right) it changes the
        # pixels right of where the plane can fall, and none left of it.
        self.assertEqual(int(region_diff(shot["clip_outside"], default).max()), 0)
        band = sorted(p["x"] for p in res["clip_band"])
        lo, hi = int(band[0]) - 2, int(band[-1]) + 3
        left = region_diff(shot["clip_at"], shot["clip_outside"], PANEL_RIGHT, lo)
        right = region_diff(shot["clip_at"], shot["clip_outside"], hi)
        print("clip band x %d..%d: changed left %d, right %d" % (lo, hi, int((left > 0).sum()),
                                                                  int((right > 8).sum())))
        self.assertEqual(int(left.max()), 0, "the plane changed pixels on the kept side")
        self.assertGreater(int((right > 8).sum()), 1500, "the plane cut nothing away")
        def drawn_right(img):
            return int((np.abs(img[:, hi:].astype(np.int16) - np.array(BACKGROUND)).max(axis=2) > 12).sum())
        self.assertLess(drawn_right(shot["clip_at"]), drawn_right(default))
        self.assertEqual(res["clip_value"], "x = %.1f mm (L)" % plan["clip"]["at"])
        # The cut is capped: a flat face in the plane, lit straight on, so in
        # the structure's own colour at its centre and near its rim, where
        # the uncut sphere is shaded darker.
        cap = shot["cap"]
        for q in (res["cap_center"], res["cap_edge"]):
            px = cap[int(round(q["y"])), int(round(q["x"]))].astype(int)
            self.assertLessEqual(int(np.abs(px - bone_rgb).max()), 4, ("cap colour", q, px, bone_rgb))
        px = default[int(round(res["cap_edge"]["y"])), int(round(res["cap_edge"]["x"]))].astype(int)
        self.assertGreater(int(np.abs(px - bone_rgb).max()), 10, ("the sphere is not shaded", px))
        self.assertEqual(int(region_diff(shot["clip_off"], default).max()), 0)

        # The distance tool: the front poles, clicked with the mouse, then tapped.
        a, b = np.array(plan["measure"]["a"]), np.array(plan["measure"]["b"])
        true_mm = float(np.linalg.norm(a - b))
        print("distance: shown %r, %.3f mm, touch %.3f mm, analytic %.3f mm" % (
            res["distance_text"], res["distance_mm"], res["touch_distance_mm"], true_mm))
        self.assertLess(abs(res["distance_mm"] - true_mm) / true_mm, 0.01)
        self.assertLess(abs(res["touch_distance_mm"] - true_mm) / true_mm, 0.01)
        self.assertEqual(res["distance_text"], "Distance: %.1f mm" % res["distance_mm"])
        self.assertEqual(res["distance_label"], "%.1f mm" % res["distance_mm"])
        # The points picked are on the surfaces near the poles (the mesh lies
        # within a voxel of the analytic surface).
        m = re.search(r"[#&]m=([^&]+)", res["pair_fragment"])
        picked = np.array([float(x) for x in m.group(1).split(",")]).reshape(2, 3)
        self.assertLess(float(np.linalg.norm(picked[0] - a)), 1.5, picked)
        self.assertLess(float(np.linalg.norm(picked[1] - b)), 1.5, picked)

        # The shortest bone-to-skin distance: the analytic phantom's within
        # the meshes' accuracy, and against a brute force over the served
        # meshes' vertices (the exact surface distance is at most that, and
        # at least that less an edge).
        truth_mm = bone_to_skin_truth(truth)
        verts = {k: mesh_vertices(get(link + "/%s.mesh" % k)[2]) for k in ("bone", "skin")}
        vv = min_vertex_distance(verts["bone"], verts["skin"])
        print("shortest bone-skin: page %.3f mm (%s), vertex brute force %.3f mm, analytic %.3f mm" % (
            res["pair_mm"], res["pair_text"], vv, truth_mm))
        self.assertIn("computed on this page", res["pair_text"])
        self.assertLessEqual(res["pair_mm"], vv + 1e-3)
        self.assertGreater(res["pair_mm"], vv - 1.0)
        self.assertLess(abs(res["pair_mm"] - truth_mm), 1.5)
        pd = re.search(r"[#&]pd=([^&]+)", res["pair_fragment"]).group(1).split(",")
        pa, pb = np.array(pd[3:6], dtype=float), np.array(pd[6:9], dtype=float)
        self.assertAlmostEqual(float(np.linalg.norm(pa - pb)), res["pair_mm"], places=3)
        self.assertLess(float(np.sqrt(((verts["bone"] - pa) ** 2).sum(axis=1).min())), 2.0)
        self.assertLess(float(np.sqrt(((verts["skin"] - pb) ** 2).sum(axis=1).min())), 2.0)

        # Standard views: the letters, and where the sphere (patient's left),
        # the shell (right, superior) and the small sphere (anterior) fall.
        letters = {"anterior": ["R", "L", "S", "I"], "posterior": ["L", "R", "S", "I"],
                   "right": ["P", "A", "S", "I"], "left": ["A", "P", "S", "I"],
                   "superior": ["L", "R", "A", "P"], "inferior": ["R", "L", "A", "P"]}
        self.assertEqual(res["letters"], letters)
        for v, lt in letters.items():
            sphere, shell, small = res[v + "_project"]
            img = shot["view_" + v]
            self.assertGreater(model_pixels(img), 5000, v)
            # Screen x grows towards the right-hand letter, y towards the bottom one.
            def along(p, axis):
                return p["x"] if axis == "x" else p["y"]
            for k, axis, sign in ((0, "x", -1), (1, "x", 1), (2, "y", -1), (3, "y", 1)):
                if lt[k] == "L":
                    self.assertGreater(sign * (along(sphere, axis) - along(shell, axis)), 0, (v, lt))
                if lt[k] == "A":
                    self.assertGreater(sign * (along(small, axis) - along(sphere, axis)), 0, (v, lt))
                if lt[k] == "S":
                    self.assertGreater(sign * (along(shell, axis) - along(sphere, axis)), 0, (v, lt))
            # Each view is its own picture.
            for w in letters:
                if w < v:
                    self.assertGreater(int((region_diff(img, shot["view_" + w]) > 8).sum()), 2000, (v, w))
        self.assertGreater(int((region_diff(shot["rotated"], shot["view_anterior"]) > 8).sum()), 2000,
                           "dragging with the mouse did not rotate")

        # Save view as PNG: the canvas as drawn, with the letters and labels.
        self.assertEqual(res["download_name"], "3d-model.png")
        saved = shot["saved"]
        self.assertEqual(saved.shape, shot["before_save"].shape)
        differ = float((region_diff(saved, shot["before_save"]) > 24).mean())
        print("saved PNG: %.2f %% of the pixels right of the list differ from the screen" % (100 * differ))
        self.assertLess(differ, 0.01)

        # The address reopens the same view: camera, plane, opacity, points.
        for key in ("cam=", "clip=y,", "op=bone:0.6", "m=", "pd=bone,skin,"):
            self.assertIn(key, res["url_before"])
        self.assertEqual(res["url_after"], res["url_before"])
        dd = region_diff(shot["after_reload"], shot["before_reload"])
        print("reload: %d pixels differ, largest difference %d" % (int((dd > 0).sum()), int(dd.max())))
        self.assertLess(int((dd > 2).sum()), 0.001 * dd.size)
        self.assertEqual(res["distance_after"], res["distance_text"])
        self.assertEqual(res["pair_after"], res["pair_text"])

        # Print readiness and measurements from the report (the print
        # helper's contract; written into the job's row as a report would
        # carry them) reach models.json unchanged and show on the page; a
        # distance in the report is used instead of computing one.
        pr = {"shells": [{"volume_ml": 30.1, "triangles": 12000, "area_mm2": 5100.5},
                         {"volume_ml": 1.2, "triangles": 900, "area_mm2": 310.0}],
              "closed": True, "manifold": True, "outward": True, "self_intersections": 2,
              "self_intersection_at_lps_mm": [10.0, -20.0, 30.0], "min_wall_mm": 0.6,
              "min_wall_at_lps_mm": [1.0, 2.0, 3.0], "min_wall_limit_mm": 1.0, "thin_wall": True,
              "loose_shells_dropped": 0, "printable": False, "analysis_ms": 12.5}
        ms = {"volume_ml": 32.6, "extents_mm": [52.3, 40.1, 20.7],
              "axes_lps": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "centroid_lps_mm": [8.9, -16.0, 28.0]}
        dist = {"a": "skin", "b": "bone", "mm": 7.26, "a_lps_mm": [-23.0, -11.0, -21.7],
                "b_lps_mm": [-18.2, -14.4, -16.1]}
        with d.db() as db:
            (result,) = db.execute("SELECT result FROM jobs WHERE state = 'done'").fetchone()
            rep = json.loads(result)
            for st in rep["structures"]:
                if st["name"] == "bone":
                    st["print"], st["measurements"] = pr, ms
                elif st["name"] == "skin":
                    # A report without them (older jobs) must show nothing.
                    st.pop("print", None)
                    st.pop("measurements", None)
            rep["distances"] = [dist]
            db.execute("UPDATE jobs SET result = ? WHERE state = 'done'", (json.dumps(rep),))
            db.commit()
        models = json.loads(get(link + "/models.json")[2])
        bone = next(s for s in models["structures"] if s["key"] == "bone")
        skin = next(s for s in models["structures"] if s["key"] == "skin")
        self.assertEqual(bone["print"], pr)
        self.assertEqual(bone["measurements"], ms)
        self.assertNotIn("print", skin)
        self.assertEqual(models["distances"], [dist])
        out2 = os.path.join(work, "probe")
        os.makedirs(out2)
        got = drive(out2, link, "--probe", "bone,skin")
        print("probe:", json.dumps(got["items"]), got["pair_text"])
        self.assertEqual(got["items"]["bone"]["printable"], "false")
        text = got["items"]["bone"]["print"]
        self.assertIn("needs repair", text)
        self.assertIn("2 self-intersections at (10, -20, 30) mm", text)
        self.assertIn("wall 0.6 mm thin (limit 1.0 mm) at (1, 2, 3) mm", text)
        self.assertIn("2 separate pieces", text)
        self.assertEqual(got["items"]["bone"]["size"], "size 52 \u00d7 40 \u00d7 21 mm")
        self.assertIsNone(got["items"]["skin"]["print"])
        self.assertEqual(got["pair_text"], "bone to skin: 7.3 mm (from the report)")
        self.assertEqual(got["pair_mm"], 7.26)
        self.assertIn("pd=bone,skin,7.26,-18.2,-14.4,-16.1,-23,-11,-21.7,r", got["fragment"])
        # "show where": magenta dots at the two places the report names.
        self.assertEqual(got["where_buttons"], 1)
        self.assertEqual(got["where_pressed"], "true")
        before = png_rgb(os.path.join(out2, "probe.png"))
        where = png_rgb(os.path.join(out2, "probe_where.png"))
        magenta = np.all(np.abs(where[:, PANEL_RIGHT:].astype(np.int16) - np.array([255, 68, 255])) <= 3,
                         axis=2)
        was = np.all(np.abs(before[:, PANEL_RIGHT:].astype(np.int16) - np.array([255, 68, 255])) <= 3,
                     axis=2)
        self.assertGreater(int(magenta.sum()), 40)
        self.assertEqual(int(was.sum()), 0)

    def test_link_without_webhook_and_disabled_viewer(self):
        """The link exists without any webhook; a daemon without the viewer
        answers 404 under /viewer/, assets included."""
        work = tempfile.mkdtemp(prefix="r3d-viewer2-")
        series = os.path.join(work, "phantom")
        r = subprocess.run([PHANTOM, "--out", series, "--size", "96", "--slices", "40",
                            "--spacing", "2,2,3"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        files = sorted(os.path.join(series, f) for f in os.listdir(series) if f.endswith(".dcm"))
        os.makedirs(os.path.join(work, "on"))
        os.makedirs(os.path.join(work, "off"))
        on = Daemon(os.path.join(work, "on"), pipeline__workers=1, pipeline__stable_seconds=1,
                    viewer__enabled="true")
        off = Daemon(os.path.join(work, "off"))
        on.start()
        off.start()
        try:
            r = on.storescu(files)
            self.assertEqual(r.returncode, 0, r.stderr[-1500:])
            on.wait_for(lambda s: s["viewer"]["links_active"] == 1, timeout=200, what="a link")
            with on.db() as db:
                (token,) = db.execute("SELECT token FROM viewer_links").fetchone()
                (notified,) = db.execute("SELECT count(*) FROM studies WHERE notified_at IS NOT NULL"
                                         ).fetchone()
            self.assertEqual(notified, 1)
            self.assertRegex(token, r"^[0-9a-f]{64}$")
            code, _, page = get(on.url("/viewer/" + token))
            self.assertEqual(code, 200)
            code, _, models = get(on.url("/viewer/" + token + "/models.json"))
            self.assertEqual(code, 200)
            self.assertGreater(len(json.loads(models)["structures"]), 0)
            # A second done series in the study (its rows written as a worker
            # would, pointing at the same models): both are listed, names told
            # apart by series number, both downloadable.
            with on.db() as db:
                db.execute("INSERT INTO series(study_id, series_uid, modality, series_description,"
                           " series_number, first_received, last_received, pending)"
                           " SELECT study_id, '1.2.826.0.1.3680043.2.1125.99', 'CT', 'thin recon', 7,"
                           " 1, 1, 0 FROM series LIMIT 1")
                db.execute("INSERT INTO jobs(series_id, state, instances, created_at, updated_at,"
                           " started_at, finished_at, results_dir, result)"
                           " SELECT (SELECT id FROM series WHERE series_number = 7), 'done', 1, 1, 1,"
                           " 1, 1, results_dir, result FROM jobs WHERE state = 'done'")
                (number,) = db.execute("SELECT series_number FROM series WHERE series_number != 7"
                                       ).fetchone()
            code, _, models2 = get(on.url("/viewer/" + token + "/models.json"))
            models2 = json.loads(models2)
            names = [s["name"] for s in json.loads(models)["structures"]]
            self.assertEqual(sorted(s["key"] for s in models2["structures"]),
                             sorted(["%s_series%d" % (n, k) for n in names for k in (number, 7)]))
            self.assertEqual([x["label"] for x in models2["series"]],
                             ["series %d: recon3d phantom" % number, "series 7: thin recon"])
            # A report's "distances" name structures; models.json names them
            # by the page's keys, series told apart (and drops unknown names).
            self.assertEqual(models2["distances"], [])
            if len(names) >= 2:
                dist = {"a": names[0], "b": names[1], "mm": 4.5, "a_lps_mm": [1, 2, 3],
                        "b_lps_mm": [4, 5, 6]}
                with on.db() as db:
                    (result,) = db.execute("SELECT j.result FROM jobs j JOIN series s ON"
                                           " s.id = j.series_id WHERE s.series_number = 7").fetchone()
                    rep = json.loads(result)
                    rep["distances"] = [dist, dict(dist, a="no_such_structure")]
                    db.execute("UPDATE jobs SET result = ? WHERE series_id = (SELECT id FROM series"
                               " WHERE series_number = 7)", (json.dumps(rep),))
                    db.commit()
                got = json.loads(get(on.url("/viewer/" + token + "/models.json"))[2])["distances"]
                self.assertEqual(got, [dict(dist, a=names[0] + "_series7", b=names[1] + "_series7")])
            for s in models2["structures"]:
                code, hdr, stl = get(on.url("/viewer/" + token + "/" + s["file"]))
                self.assertEqual(code, 200, s["file"])
                self.assertIn('filename="%s"' % s["file"], hdr["Content-Disposition"])
                self.assertEqual(len(stl), 84 + 50 * s["triangles"])
            code, _, _ = get(on.url("/viewer/" + token + "/" + names[0] + ".stl"))
            self.assertEqual(code, 404)
            time.sleep(1.5)   # no second link, no message loop
            with on.db() as db:
                self.assertEqual(db.execute("SELECT count(*) FROM viewer_links").fetchone()[0], 1)
                self.assertEqual(db.execute("SELECT count(*) FROM notifications").fetchone()[0], 0)
            for path in ("/viewer/" + token, "/viewer/assets/viewer.js", "/viewer/assets/three.core.js"):
                code, _, _ = get(off.url(path))
                self.assertEqual(code, 404, path)
            self.assertEqual(off.status()["viewer"], {"enabled": False, "links_active": 0})
        finally:
            on.stop()
            off.stop()
            on.cleanup()
            off.cleanup()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
