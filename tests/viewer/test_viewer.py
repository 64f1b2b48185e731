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
    """An 8-bit RGB or RGBA PNG (what Chromium writes) as an (h, w, 3) uint8 array."""
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


def screenshot(url, out_png, profile):
    args = [CHROMIUM] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile, "--virtual-time-budget=30000",
                                          "--screenshot=" + out_png, url]
    r = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and os.path.exists(out_png), (r.returncode, r.stderr[-2000:])
    return png_rgb(out_png)


class ViewerPage(unittest.TestCase):
    def test_page_from_the_webhook_link(self):
        if CHROMIUM is None:
            print("chromium is not installed (scripts/setup.sh installs it): skipped")
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
                          "OrbitControls.js"):
                code, hdr, data = get(d.url("/viewer/assets/" + asset))
                self.assertEqual(code, 200, asset)
                self.assertIn("default-src 'none'", hdr["Content-Security-Policy"])
                self.assertGreater(len(data), 1000, asset)
            code, _, orbit = get(d.url("/viewer/assets/OrbitControls.js"))
            self.assertNotIn(b"from 'three'", orbit)
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
