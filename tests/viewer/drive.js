// drive.js: drives the 3D page in headless Chromium with playwright-core, for
// tests/viewer/test_viewer.py (which makes the truth and checks the answers)
// and bench/viewer (--bench). Debian's chromium, a fresh profile in a
// temporary folder, every request not to 127.0.0.1 aborted.
//
//   node drive.js --url URL --out DIR [--plan plan.json] [--bench N] [--probe a,b]
//
// --probe: only what the list shows per structure (size, print readiness)
// and the shortest distance of structures a and b.
// Writes DIR/result.json (what the page showed: distances, letters, the
// fragment, console errors, requests blocked) and DIR/*.png screenshots.
// The plan says which structures to use and which LPS points to click.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require(process.env.R3D_PLAYWRIGHT || 'playwright-core');

const CHROMIUM = process.env.R3D_CHROMIUM || '/usr/bin/chromium';
const VIEWPORT = { width: 1000, height: 750 };
const READY_MS = 120000;

function args() {
  const a = { url: '', out: '', plan: null, bench: 0, probe: '' };
  for (let i = 2; i < process.argv.length; i += 2) {
    const k = process.argv[i].replace(/^--/, ''), v = process.argv[i + 1];
    if (k === 'plan') a.plan = JSON.parse(fs.readFileSync(v, 'utf8'));
    else if (k === 'bench') a.bench = Number(v);
    else a[k] = v;
  }
  if (!a.url || !a.out) throw new Error('usage: drive.js --url URL --out DIR [--plan FILE] [--bench N]');
  return a;
}

async function launch(profile, extra) {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: VIEWPORT,
    deviceScaleFactor: 1,
    acceptDownloads: true,
    args: ['--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--no-sandbox',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-first-run', '--hide-scrollbars', '--disable-dev-shm-usage', '--disable-features=Translate,MediaRouter'],
    ...extra,
  });
  const log = { errors: [], blocked: [] };
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.hostname === '127.0.0.1' || u.protocol === 'data:' || u.protocol === 'blob:') return route.continue();
    log.blocked.push(route.request().url());
    return route.abort();
  });
  return { context, log };
}

function watch(page, log) {
  page.on('console', (m) => { if (m.type() === 'error') log.errors.push('console: ' + m.text()); });
  page.on('pageerror', (e) => log.errors.push('page error: ' + e.message));
  page.on('requestfailed', (r) => {
    if (!log.blocked.includes(r.url())) log.errors.push('request failed: ' + r.url() + ' ' + (r.failure() || {}).errorText);
  });
}

async function ready(page) {
  await page.waitForFunction(() => ['ready', 'partial', 'error'].includes(document.body.dataset.state),
    null, { timeout: READY_MS });
  const state = await page.evaluate(() => document.body.dataset.state);
  if (state !== 'ready') throw new Error('page state ' + state);
  await settle(page);
}

// Two animation frames and the fragment's delay: what is on screen is final.
async function settle(page) {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await page.waitForTimeout(400);
}

async function shot(page, out, name) {
  await settle(page);
  await page.screenshot({ path: path.join(out, name + '.png') });
}

async function clickAt(page, p) {
  const q = await page.evaluate((pt) => window.r3dViewer.project(pt), p);
  await page.mouse.click(q.x, q.y);
  await page.waitForTimeout(150);
  return q;
}

async function plan(page, out, p, log, context) {
  const res = { shots: {}, letters: {} };
  const box = (key) => page.locator(`li[data-key="${key}"] input[type=checkbox]`);
  const slider = (key) => page.locator(`li[data-key="${key}"] input[type=range]`);
  await shot(page, out, 'default');
  res.first_frame_ms = await page.evaluate(() => performance.getEntriesByName('r3d-first-frame')[0].startTime);

  // A structure off and on again.
  await box(p.toggle).uncheck();
  await shot(page, out, 'toggle_off');
  await box(p.toggle).check();
  await shot(page, out, 'toggle_on');

  // Opacity of one structure (by the keyboard: focus the slider, arrow keys).
  await slider(p.opacity).fill('35');
  await shot(page, out, 'opacity_35');
  res.opacity_label = await page.locator(`li[data-key="${p.opacity}"] .opacity span`).textContent();
  await slider(p.opacity).focus();
  for (let i = 0; i < 65; i++) await page.keyboard.press('ArrowRight');
  await shot(page, out, 'opacity_100');

  // The clipping plane: none in the way, then through the model.
  await page.selectOption('#clip-axis', p.clip.axis);
  await page.locator('#clip-pos').focus();
  await page.keyboard.press('End');   // the far end of the slider: beyond the model
  await shot(page, out, 'clip_outside');
  await page.locator('#clip-pos').fill(String(p.clip.at));
  await shot(page, out, 'clip_at');
  res.clip_value = await page.locator('#clip-value').textContent();
  // Where the plane can fall on the screen: its points over the model's depth.
  res.clip_band = [];
  for (const q of p.clip.band_points) res.clip_band.push(await page.evaluate((pt) => window.r3dViewer.project(pt), q));
  // A cap: the coronal plane through the sphere, cutting away what is in front.
  await page.selectOption('#clip-axis', p.cap.axis);
  await page.locator('#clip-pos').fill(String(p.cap.at));
  await shot(page, out, 'cap');
  res.cap_center = await page.evaluate((pt) => window.r3dViewer.project(pt), p.cap.center);
  res.cap_edge = await page.evaluate((pt) => window.r3dViewer.project(pt), p.cap.edge);
  await page.selectOption('#clip-axis', '');
  await shot(page, out, 'clip_off');

  // The distance tool: two clicks on surfaces in the anterior view.
  await page.click('[data-view=anterior]');
  await settle(page);
  await page.click('#measure');
  res.click_a = await clickAt(page, p.measure.a);
  res.click_b = await clickAt(page, p.measure.b);
  await settle(page);
  res.distance_text = await page.locator('#distance').textContent();
  res.distance_mm = Number(await page.locator('#distance').getAttribute('data-mm'));
  res.distance_label = await page.locator('#label-distance').textContent();
  await page.click('#measure');
  await shot(page, out, 'distance');

  // The shortest distance between two structures.
  await page.selectOption('#pair-a', p.pair[0]);
  await page.selectOption('#pair-b', p.pair[1]);
  await page.click('#pair-go');
  await page.waitForFunction(() => document.getElementById('pair-result').dataset.mm !== undefined,
    null, { timeout: 120000 });
  res.pair_text = await page.locator('#pair-result').textContent();
  res.pair_mm = Number(await page.locator('#pair-result').getAttribute('data-mm'));
  res.pair_fragment = await page.evaluate(() => window.r3dViewer.fragment());

  // The standard views, each with its orientation letters.
  for (const v of ['anterior', 'posterior', 'right', 'left', 'superior', 'inferior']) {
    await page.click(`[data-view=${v}]`);
    await shot(page, out, 'view_' + v);
    res.letters[v] = await page.evaluate(() => ['left', 'right', 'top', 'bottom'].map(
      (s) => document.getElementById('letter-' + s).textContent));
    res[v + '_project'] = await page.evaluate((pts) => pts.map((q) => window.r3dViewer.project(q)), p.view_points);
  }

  // A free rotation with the mouse, then a plane and translucency to keep.
  await page.click('[data-view=anterior]');
  await settle(page);
  await page.mouse.move(700, 400);
  await page.mouse.down();
  await page.mouse.move(740, 380, { steps: 8 });
  await page.mouse.up();
  await shot(page, out, 'rotated');
  await page.selectOption('#clip-axis', p.cap.axis);
  await page.locator('#clip-pos').fill(String(p.cap.at));
  await slider(p.opacity).fill('60');
  await shot(page, out, 'before_save');

  // Save view as PNG: the download.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save-png')]);
  res.download_name = download.suggestedFilename();
  await download.saveAs(path.join(out, 'saved.png'));

  // The address keeps the view: reopen it in a new tab.
  await settle(page);
  res.url_before = page.url();
  await shot(page, out, 'before_reload');
  const again = await context.newPage();
  watch(again, log);
  await again.goto(res.url_before);
  await ready(again);
  await shot(again, out, 'after_reload');
  res.url_after = again.url();
  res.distance_after = await again.locator('#distance').textContent();
  res.pair_after = await again.locator('#pair-result').textContent();
  await again.close();
  return res;
}

// A touch screen: the same page, two taps measure a distance.
async function touch(url, out, p, log) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'r3d-chromium-touch-'));
  const { context, log: tlog } = await launch(profile, { hasTouch: true, isMobile: false });
  try {
    const page = await context.newPage();
    watch(page, tlog);
    await page.goto(url);
    await ready(page);
    await page.tap('#measure');
    for (const q of [p.measure.a, p.measure.b]) {
      const s = await page.evaluate((pt) => window.r3dViewer.project(pt), q);
      await page.touchscreen.tap(s.x, s.y);
      await page.waitForTimeout(150);
    }
    await settle(page);
    return Number(await page.locator('#distance').getAttribute('data-mm'));
  } finally {
    log.errors.push(...tlog.errors);
    log.blocked.push(...tlog.blocked);
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

async function probe(page, out, pair) {
  const res = { items: {} };
  for (const li of await page.locator('#structures li').all()) {
    const key = await li.getAttribute('data-key');
    const text = async (sel) => (await li.locator(sel).count()) ? li.locator(sel).textContent() : null;
    res.items[key] = { size: await text('.sizes'), print: await text('.print'),
      printable: (await li.locator('.print').count()) ? await li.locator('.print').getAttribute('data-printable') : null };
  }
  const [a, b] = pair.split(',');
  await page.selectOption('#pair-a', a);
  await page.selectOption('#pair-b', b);
  const t0 = Date.now();
  await page.click('#pair-go');
  await page.waitForFunction(() => document.getElementById('pair-result').dataset.mm !== undefined,
    null, { timeout: 120000 });
  res.pair_ms = Date.now() - t0;
  res.pair_text = await page.locator('#pair-result').textContent();
  res.pair_mm = Number(await page.locator('#pair-result').getAttribute('data-mm'));
  res.fragment = await page.evaluate(() => window.r3dViewer.fragment());
  await shot(page, out, 'probe');
  res.where_buttons = await page.locator('button.where').count();
  if (res.where_buttons) {
    await page.locator('button.where').first().click();
    await shot(page, out, 'probe_where');
    res.where_pressed = await page.locator('button.where').first().getAttribute('aria-pressed');
  }
  return res;
}

// bench/viewer: first frame (the page's own mark, from navigation start) and
// frames per second while the page rotates the model, over N loads of the
// page in new tabs (the first with an empty cache; the server sends the
// models with no-store, so they are fetched every time).
async function bench(url, out, n, log, context) {
  const runs = [];
  for (let i = 0; i < n; i++) {
    const page = await context.newPage();
    watch(page, log);
    await page.goto(url);
    await ready(page);
    const firstFrame = await page.evaluate(() => performance.getEntriesByName('r3d-first-frame')[0].startTime);
    const spin = await page.evaluate(() => window.r3dViewer.spin(5));
    runs.push({ first_frame_ms: firstFrame, fps: spin.fps, frames: spin.frames });
    await page.close();
  }
  return { runs };
}

async function main() {
  const a = args();
  fs.mkdirSync(a.out, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'r3d-chromium-'));
  const { context, log } = await launch(profile, {});
  let result = {};
  try {
    if (a.bench > 0) {
      result = await bench(a.url, a.out, a.bench, log, context);
    } else if (a.probe) {
      const page = context.pages()[0] || await context.newPage();
      watch(page, log);
      await page.goto(a.url);
      await ready(page);
      result = await probe(page, a.out, a.probe);
    } else {
      const page = context.pages()[0] || await context.newPage();
      watch(page, log);
      await page.goto(a.url);
      await ready(page);
      result = await plan(page, a.out, a.plan, log, context);
      result.touch_distance_mm = await touch(a.url, a.out, a.plan, log);
    }
  } catch (e) {
    result.failure = String(e && e.stack || e);
  } finally {
    result.errors = log.errors;
    result.blocked = log.blocked;
    result.chromium = context.browser() ? context.browser().version() : '';
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  fs.writeFileSync(path.join(a.out, 'result.json'), JSON.stringify(result, null, 1));
  process.exit(result.failure ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(2); });
