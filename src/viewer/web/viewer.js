// viewer.js: the 3D page of one study (served by recon3d at /viewer/<token>),
// for planning. Reads <token>/models.json, loads each structure's indexed
// mesh (or binary STL; patient LPS millimetres) and shows them with three.js:
// rotate, zoom and pan (mouse or touch), a checkbox and an opacity slider per
// structure, one clipping plane with capped cut faces, a two-point distance
// tool (raycast on the surfaces), the shortest distance between two
// structures (from models.json "distances" when the report has the pair,
// else computed in distance-worker.js), six standard views with orientation
// letters, print readiness per structure (models.json "print"), and "save
// view as PNG". Everything comes from the same server; nothing is sent
// anywhere. Runs on the browser's main thread; the distance worker on its own.
//
// The URL fragment holds the view, so a link reopens it (replaced as the
// view changes; each value is written in full precision):
//   #show=bone,vessels          structures shown (models.json "key")
//   &op=skin:0.3                opacity of a structure, 0..1
//   &cam=px,py,pz,tx,ty,tz,ux,uy,uz   camera position, target, up (LPS mm)
//   &clip=x,12.5,0              plane x|y|z, position in mm, 1 = other side
//   &clip=view,3,0,nx,ny,nz     oblique plane: offset from the target, normal
//   &m=x,y,z[,x,y,z]            the distance tool's points
//   &pd=a,b,mm,ax,ay,az,bx,by,bz  a shortest distance shown
// Without #show every structure is shown except the body surface (the
// structures whose catalogue entry says body_surface, such as the skin),
// which would hide the others; it can be switched on and is then translucent.
// Names on the page are each structure's label from the catalogue.
import * as THREE from './three.module.js';
import { TrackballControls } from './TrackballControls.js';

const SURFACE_OPACITY = 0.3;
const PICK_MAX_MOVE_PX = 6;        // a press that moves more is a rotation, not a pick
const PICK_MAX_MS = 800;
const FRAGMENT_DELAY_MS = 250;     // the address is rewritten this long after the last change
const CAP_RENDER_STRIDE = 4;       // renderOrder slots per structure (stencil, cap)
const SLOW_FRAME_MS = 60;          // moving slower than this a frame: half resolution until it stops

const base = location.pathname.replace(/\/+$/, '');
const view = document.getElementById('view');
const panel = document.getElementById('panel');
const statusLine = document.getElementById('status');
const list = document.getElementById('structures');
const $ = (id) => document.getElementById(id);

// ---- STL ---------------------------------------------------------------------

// Positions (Float32Array, 9 per triangle) of a binary or ASCII STL.
function parseStl(buffer) {
  const dv = new DataView(buffer);
  if (buffer.byteLength >= 84) {
    const n = dv.getUint32(80, true);
    if (84 + 50 * n === buffer.byteLength) {
      const pos = new Float32Array(9 * n);
      for (let t = 0; t < n; t++) {
        const o = 84 + 50 * t + 12;   // skip the facet normal
        for (let k = 0; k < 9; k++) pos[9 * t + k] = dv.getFloat32(o + 4 * k, true);
      }
      return pos;
    }
  }
  const text = new TextDecoder().decode(buffer);
  const re = /vertex\s+(\S+)\s+(\S+)\s+(\S+)/g;
  const out = [];
  let m;
  while ((m = re.exec(text)) !== null) out.push(+m[1], +m[2], +m[3]);
  if (out.length === 0 || out.length % 9 !== 0) throw new Error('not an STL file');
  return new Float32Array(out);
}

// recon3d's indexed mesh (<key>.mesh, a third of the STL's size): "R3DMESH1",
// uint32 vertex and triangle counts, float32 xyz per vertex, uint32 indices.
function parseMesh(buffer) {
  const dv = new DataView(buffer);
  const magic = new TextDecoder().decode(new Uint8Array(buffer, 0, Math.min(8, buffer.byteLength)));
  if (magic !== 'R3DMESH1' || buffer.byteLength < 16) throw new Error('not a recon3d mesh');
  const nv = dv.getUint32(8, true), nt = dv.getUint32(12, true);
  if (buffer.byteLength !== 16 + 12 * nv + 12 * nt) throw new Error('truncated mesh');
  const geometry = new THREE.BufferGeometry();
  geometry.setAttribute('position', new THREE.BufferAttribute(new Float32Array(buffer, 16, 3 * nv), 3));
  geometry.setIndex(new THREE.BufferAttribute(new Uint32Array(buffer, 16 + 12 * nv, 3 * nt), 1));
  geometry.computeVertexNormals();
  geometry.computeBoundingBox();
  return geometry;
}

// Shares vertices that have the same coordinates, so that normals are smooth.
function indexed(pos) {
  const nv = pos.length / 3;
  const bits = new Uint32Array(pos.buffer, pos.byteOffset, pos.length);
  let size = 1;
  while (size < 2 * nv) size <<= 1;
  const table = new Int32Array(size).fill(-1);
  const unique = new Float32Array(pos.length);
  const index = new Uint32Array(nv);
  let nu = 0;
  for (let v = 0; v < nv; v++) {
    const a = bits[3 * v], b = bits[3 * v + 1], c = bits[3 * v + 2];
    let h = (Math.imul(a, 73856093) ^ Math.imul(b, 19349663) ^ Math.imul(c, 83492791)) & (size - 1);
    for (;;) {
      const u = table[h];
      if (u < 0) {
        table[h] = nu;
        unique[3 * nu] = pos[3 * v]; unique[3 * nu + 1] = pos[3 * v + 1]; unique[3 * nu + 2] = pos[3 * v + 2];
        index[v] = nu++;
        break;
      }
      if (unique[3 * u] === pos[3 * v] && unique[3 * u + 1] === pos[3 * v + 1] && unique[3 * u + 2] === pos[3 * v + 2]) {
        index[v] = u;
        break;
      }
      h = (h + 1) & (size - 1);
    }
  }
  const g = new THREE.BufferGeometry();
  g.setAttribute('position', new THREE.BufferAttribute(unique.slice(0, 3 * nu), 3));
  g.setIndex(new THREE.BufferAttribute(index, 1));
  g.computeVertexNormals();
  g.computeBoundingBox();
  return g;
}

// ---- scene -------------------------------------------------------------------

const renderer = new THREE.WebGLRenderer({ antialias: false, preserveDrawingBuffer: true, stencil: true });
renderer.setPixelRatio(window.devicePixelRatio || 1);
renderer.localClippingEnabled = true;
view.appendChild(renderer.domElement);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x3a3d42);
const camera = new THREE.PerspectiveCamera(30, 1, 1, 10000);
camera.up.set(0, 0, 1);   // patient superior is up
scene.add(camera);
// Lambert shading: ambient plus a light at the eye add up to the structure's
// own colour on a surface that faces the viewer.
scene.add(new THREE.AmbientLight(0xffffff, 0.35 * Math.PI));
const headlight = new THREE.DirectionalLight(0xffffff, 0.65 * Math.PI);
headlight.position.set(0, 0, 1);
camera.add(headlight);
camera.add(headlight.target);
headlight.target.position.set(0, 0, -1);
const controls = new TrackballControls(camera, renderer.domElement);
controls.staticMoving = true;
controls.rotateSpeed = 3.0;
controls.keys = [];   // no modifier keys on the window: they would fire while typing

const items = [];   // {info, group, mesh, caps, checkbox, slider, opacity, surface, ...}
const clipPlane = new THREE.Plane(new THREE.Vector3(-1, 0, 0), 0);
const clip = { axis: '', pos: 0, flip: false, normal: new THREE.Vector3(0, 0, 1) };
const measure = { active: false, points: [] };
let pairShown = null;   // {a, b, mm, pa: Vector3, pb: Vector3, source}
let firstFrameDone = false, allLoaded = false;
let frameRequested = false;
let spinning = null;    // the benchmark's page-driven rotation

function visibleBox() {
  const box = new THREE.Box3();
  for (const it of items) if (it.mesh && it.group.visible) box.union(it.mesh.geometry.boundingBox);
  if (box.isEmpty()) for (const it of items) if (it.mesh) box.union(it.mesh.geometry.boundingBox);
  return box;
}

// Near and far planes from the camera's distance to what is shown, so that the
// same state draws the same pixels.
function updateDepthRange() {
  const box = visibleBox();
  if (box.isEmpty()) return;
  const center = box.getCenter(new THREE.Vector3());
  const radius = Math.max(box.getSize(new THREE.Vector3()).length() / 2, 1);
  const dist = camera.position.distanceTo(center);
  const near = Math.max(dist - 2 * radius, dist / 100, 0.1), far = dist + 4 * radius;
  if (near !== camera.near || far !== camera.far) {
    camera.near = near;
    camera.far = far;
    camera.updateProjectionMatrix();
  }
}

// While the model moves and frames come slowly (software WebGL, a weak
// GPU), they are drawn at half the resolution; the still picture at full.
let lowRes = false, lastMoveFrame = 0;
function setLowRes(on) {
  if (on === lowRes) return;
  lowRes = on;
  renderer.setPixelRatio((window.devicePixelRatio || 1) * (on ? 0.5 : 1));
}

function render(now) {
  frameRequested = false;
  if (spinning) spinning.step();
  else controls.update();
  const moving = spinning !== null || dragging;
  if (!moving) {
    setLowRes(false);
    lastMoveFrame = 0;
  } else {
    if (lastMoveFrame && now - lastMoveFrame > SLOW_FRAME_MS) setLowRes(true);
    lastMoveFrame = now;
  }
  updateDepthRange();
  renderer.render(scene, camera);
  updateOverlay();
  if (!firstFrameDone && allLoaded) {
    firstFrameDone = true;
    performance.mark('r3d-first-frame');
    document.body.dataset.state = items.some((it) => it.failed) ? 'partial' : 'ready';
  }
  if (spinning || (lowRes && !dragging)) requestRender();
}
function requestRender() {
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(render);
  }
}
let dragging = false;
controls.addEventListener('change', () => { requestRender(); scheduleFragment(); });
controls.addEventListener('start', () => { dragging = true; requestRender(); });
controls.addEventListener('end', () => { dragging = false; requestRender(); scheduleFragment(); });
renderer.domElement.addEventListener('pointermove', () => { if (dragging) requestRender(); });
renderer.domElement.addEventListener('wheel', () => requestRender(), { passive: true });

// The room right of the list on a wide window, where the model is centred.
function panelOffset() {
  const w = view.clientWidth || window.innerWidth;
  const pw = panel.getBoundingClientRect().right;
  return w > 2.5 * pw ? pw : 0;
}

function resize() {
  const w = view.clientWidth || window.innerWidth, h = view.clientHeight || window.innerHeight;
  renderer.setSize(w, h, false);
  camera.aspect = w / h;
  const pw = panelOffset();
  if (pw > 0) camera.setViewOffset(w, h, -pw / 2, 0, w, h);
  else camera.clearViewOffset();
  camera.updateProjectionMatrix();
  controls.handleResize();
  requestRender();
}
window.addEventListener('resize', resize);

// ---- views -------------------------------------------------------------------

// From where the camera looks (patient LPS: +x left, +y posterior, +z
// superior) and which way is up on the screen.
const VIEWS = {
  anterior: [[0, -1, 0], [0, 0, 1]],
  posterior: [[0, 1, 0], [0, 0, 1]],
  right: [[-1, 0, 0], [0, 0, 1]],
  left: [[1, 0, 0], [0, 0, 1]],
  superior: [[0, 0, 1], [0, -1, 0]],
  inferior: [[0, 0, -1], [0, -1, 0]],
};

// A standard view framing the visible structures (all when none is visible).
function setView(name) {
  const box = visibleBox();
  if (box.isEmpty()) return;
  const [dir, up] = VIEWS[name];
  const center = box.getCenter(new THREE.Vector3());
  const radius = Math.max(box.getSize(new THREE.Vector3()).length() / 2, 1);
  const fov = THREE.MathUtils.degToRad(camera.fov);
  const dist = radius / Math.sin(Math.min(fov, 2 * Math.atan(Math.tan(fov / 2) * camera.aspect)) / 2);
  camera.position.set(center.x + dir[0] * dist, center.y + dir[1] * dist, center.z + dir[2] * dist);
  camera.up.set(up[0], up[1], up[2]);
  controls.target.copy(center);
  camera.lookAt(center);
  resize();
  controls.update();
  if (clip.axis) applyClip();
  requestRender();
  scheduleFragment();
}

// The letter(s) of the patient direction a screen direction points to.
function directionLetters(v) {
  const names = [['L', 'R'], ['P', 'A'], ['S', 'I']];
  const parts = [0, 1, 2].map((k) => [Math.abs(v.getComponent(k)), names[k][v.getComponent(k) >= 0 ? 0 : 1]]);
  parts.sort((a, b) => b[0] - a[0]);
  return parts.filter((p, i) => i === 0 || p[0] > 0.38).map((p) => p[1]).join('');
}

const screenRight = new THREE.Vector3(), screenUp = new THREE.Vector3();
function orientation() {
  camera.updateMatrixWorld();
  screenRight.setFromMatrixColumn(camera.matrixWorld, 0).normalize();
  screenUp.setFromMatrixColumn(camera.matrixWorld, 1).normalize();
  return { right: directionLetters(screenRight), left: directionLetters(screenRight.clone().negate()),
    top: directionLetters(screenUp), bottom: directionLetters(screenUp.clone().negate()) };
}

// Client pixel of a point in LPS mm (the overlay's and the test's).
function project(p) {
  const v = new THREE.Vector3(p[0], p[1], p[2]).project(camera);
  const r = renderer.domElement.getBoundingClientRect();
  return { x: r.left + (v.x + 1) / 2 * r.width, y: r.top + (1 - v.y) / 2 * r.height, z: v.z };
}

function updateOverlay() {
  const o = orientation();
  const w = view.clientWidth || window.innerWidth;
  const left = panelOffset();
  $('letter-left').textContent = o.left;
  $('letter-right').textContent = o.right;
  $('letter-top').textContent = o.top;
  $('letter-bottom').textContent = o.bottom;
  $('letter-left').style.left = (left + 10) + 'px';
  $('letter-top').style.left = $('letter-bottom').style.left = ((left + w) / 2) + 'px';
  placeLabel($('label-distance'), measure.points.length === 2 ? measure.points : null);
  placeLabel($('label-pair'), pairShown ? [pairShown.pa, pairShown.pb] : null);
}

function placeLabel(el, pts) {
  if (!pts) { el.hidden = true; return; }
  const mid = pts[0].clone().add(pts[1]).multiplyScalar(0.5);
  const q = project([mid.x, mid.y, mid.z]);
  el.hidden = false;
  el.style.left = q.x + 'px';
  el.style.top = q.y + 'px';
}

// ---- clipping ----------------------------------------------------------------

const AXES = { x: [-1, 0, 0], y: [0, 1, 0], z: [0, 0, -1] };   // the side cut away at first: left, front, head
const AXIS_LETTERS = { x: ['R', 'L'], y: ['A', 'P'], z: ['I', 'S'] };

function clipRange() {
  const box = visibleBox();
  if (box.isEmpty()) return [-100, 100];
  if (clip.axis === 'view') {
    const r = Math.max(box.getSize(new THREE.Vector3()).length() / 2, 1);
    return [-r, r];
  }
  const k = { x: 0, y: 1, z: 2 }[clip.axis];
  return [box.min.getComponent(k) - 1, box.max.getComponent(k) + 1];
}

function applyClip() {
  const on = clip.axis !== '';
  const slider = $('clip-pos');
  slider.disabled = !on;
  $('clip-flip').disabled = !on;
  if (on) {
    const [lo, hi] = clipRange();
    slider.min = lo.toFixed(1);
    slider.max = hi.toFixed(1);
    slider.value = clip.pos;
    const s = clip.flip ? -1 : 1;
    if (clip.axis === 'view') {
      clipPlane.normal.copy(clip.normal).multiplyScalar(s);
      const point = controls.target.clone().addScaledVector(clip.normal, clip.pos);
      clipPlane.constant = -clipPlane.normal.dot(point);
      $('clip-value').textContent = `${clip.pos.toFixed(1)} mm from the centre`;
    } else {
      const a = AXES[clip.axis];
      clipPlane.normal.set(a[0] * s, a[1] * s, a[2] * s);
      const point = new THREE.Vector3(); point[clip.axis] = clip.pos;
      clipPlane.constant = -clipPlane.normal.dot(point);
      const letters = AXIS_LETTERS[clip.axis];
      $('clip-value').textContent = `${clip.axis} = ${clip.pos.toFixed(1)} mm (${clip.pos >= 0 ? letters[1] : letters[0]})`;
    }
  } else {
    $('clip-value').textContent = '';
  }
  const planes = on ? [clipPlane] : [];
  const center = visibleBox().getCenter(new THREE.Vector3());
  for (const it of items) {
    if (!it.mesh) continue;
    it.mesh.material.clippingPlanes = planes;
    for (const m of it.caps) m.visible = on;
    if (on) {
      // The cap: a square in the plane, centred on the point of the plane nearest the models.
      const cap = it.caps[2];
      cap.position.copy(center).addScaledVector(clipPlane.normal, -clipPlane.distanceToPoint(center));
      cap.lookAt(cap.position.clone().add(clipPlane.normal));
    }
  }
  requestRender();
  scheduleFragment();
}

// Stencil capping (three.js's webgl_clipping_stencil): the back faces behind
// the plane add one, the front faces take one away, and the cap, a square
// in the plane, is drawn where the count is not zero: inside the structure.
function makeCaps(it, order) {
  const g = it.mesh.geometry;
  const stencil = (side, op) => new THREE.MeshBasicMaterial({ side, clippingPlanes: [clipPlane],
    depthWrite: false, depthTest: false, colorWrite: false, stencilWrite: true,
    stencilFunc: THREE.AlwaysStencilFunc, stencilFail: op, stencilZFail: op, stencilZPass: op });
  const back = new THREE.Mesh(g, stencil(THREE.BackSide, THREE.IncrementWrapStencilOp));
  const front = new THREE.Mesh(g, stencil(THREE.FrontSide, THREE.DecrementWrapStencilOp));
  back.renderOrder = front.renderOrder = order + 1;
  const size = Math.max(g.boundingBox.getSize(new THREE.Vector3()).length() * 4, 10);
  const capMaterial = new THREE.MeshLambertMaterial({ color: it.mesh.material.color, side: THREE.DoubleSide,
    stencilWrite: true, stencilRef: 0, stencilFunc: THREE.NotEqualStencilFunc,
    stencilFail: THREE.ReplaceStencilOp, stencilZFail: THREE.ReplaceStencilOp, stencilZPass: THREE.ReplaceStencilOp });
  // Far from any hidden structure, large enough to cover this one whatever the plane.
  const cap = new THREE.Mesh(new THREE.PlaneGeometry(4 * size, 4 * size), capMaterial);
  cap.renderOrder = order + 2;
  cap.onAfterRender = (r) => r.clearStencil();
  for (const m of [back, front, cap]) { m.visible = false; m.userData.cap = true; it.group.add(m); }
  it.caps = [back, front, cap];
}

// ---- opacity -----------------------------------------------------------------

function effectiveOpacity(it) {
  if (it.opacity !== null) return it.opacity;
  const others = items.some((o) => o.group && o.group.visible && !o.surface);
  return it.surface && others ? SURFACE_OPACITY : 1;
}

function updateMaterials() {
  for (const it of items) {
    const op = effectiveOpacity(it);
    it.slider.value = Math.round(op * 100);
    it.sliderValue.textContent = Math.round(op * 100) + ' %';
    if (!it.mesh) continue;
    const transparent = op < 1;
    for (const m of [it.mesh, ...it.caps]) {
      const mat = m.material;
      if (m === it.mesh || m === it.caps[2]) {
        mat.opacity = op;
        if (m === it.mesh) mat.depthWrite = !transparent;
      }
      if (mat.transparent !== transparent) { mat.transparent = transparent; mat.needsUpdate = true; }
    }
  }
  requestRender();
}

// ---- picking and the distance tool --------------------------------------------

const raycaster = new THREE.Raycaster();
const pointerNdc = new THREE.Vector2();

// The first surface point under a client pixel, on a shown structure and on
// the kept side of the plane; null when there is none.
function pick(clientX, clientY) {
  const r = renderer.domElement.getBoundingClientRect();
  pointerNdc.set((clientX - r.left) / r.width * 2 - 1, -((clientY - r.top) / r.height) * 2 + 1);
  raycaster.setFromCamera(pointerNdc, camera);
  const meshes = items.filter((it) => it.mesh && it.group.visible && effectiveOpacity(it) > 0).map((it) => it.mesh);
  for (const hit of raycaster.intersectObjects(meshes, false)) {
    if (clip.axis && clipPlane.distanceToPoint(hit.point) < 0) continue;
    return hit;
  }
  return null;
}

const markerGroup = new THREE.Group();
scene.add(markerGroup);
const pairGroup = new THREE.Group();
scene.add(pairGroup);

function markerRadius() {
  const box = visibleBox();
  return box.isEmpty() ? 1 : Math.max(box.getSize(new THREE.Vector3()).length() * 0.004, 0.4);
}

function drawSegment(group, points, color, joined = true) {
  group.clear();
  const r = markerRadius() * (joined ? 1 : 2);
  for (const p of points) {
    const dot = new THREE.Mesh(new THREE.SphereGeometry(r, 16, 8),
      new THREE.MeshBasicMaterial({ color, depthTest: false, transparent: true }));
    dot.position.copy(p);
    dot.renderOrder = 10000;
    group.add(dot);
  }
  if (joined && points.length === 2) {
    const line = new THREE.Line(new THREE.BufferGeometry().setFromPoints(points),
      new THREE.LineBasicMaterial({ color, depthTest: false, transparent: true }));
    line.renderOrder = 10001;
    group.add(line);
  }
}

// Magenta dots where the print analysis found a self-intersection or the thinnest wall.
const problemGroup = new THREE.Group();
scene.add(problemGroup);
function toggleProblemMarkers(button, spots) {
  const on = button.getAttribute('aria-pressed') !== 'true';
  for (const b of document.querySelectorAll('button.where')) b.setAttribute('aria-pressed', 'false');
  problemGroup.clear();
  if (on) {
    drawSegment(problemGroup, spots.map((p) => new THREE.Vector3(p[0], p[1], p[2])), 0xff44ff, false);
    button.setAttribute('aria-pressed', 'true');
  }
  requestRender();
}

function formatMm(d) { return d.toFixed(1) + ' mm'; }

function showMeasurement() {
  drawSegment(markerGroup, measure.points, 0x77ffff);
  const out = $('distance');
  if (measure.points.length === 2) {
    const d = measure.points[0].distanceTo(measure.points[1]);
    out.textContent = 'Distance: ' + formatMm(d);
    out.dataset.mm = String(d);
    $('label-distance').textContent = formatMm(d);
  } else {
    out.textContent = measure.points.length === 1 ? 'First point set; click the second.' : '';
    delete out.dataset.mm;
  }
  requestRender();
  scheduleFragment();
}

function setMeasuring(on) {
  measure.active = on;
  $('measure').setAttribute('aria-pressed', String(on));
  $('measure-hint').hidden = !on;
  view.classList.toggle('picking', on);
}

let press = null;
renderer.domElement.addEventListener('pointerdown', (e) => {
  press = e.isPrimary ? { x: e.clientX, y: e.clientY, t: performance.now() } : null;
});
renderer.domElement.addEventListener('pointerup', (e) => {
  if (!measure.active || !press || !e.isPrimary) return;
  const moved = Math.hypot(e.clientX - press.x, e.clientY - press.y);
  const quick = performance.now() - press.t < PICK_MAX_MS;
  press = null;
  if (moved > PICK_MAX_MOVE_PX || !quick) return;
  const hit = pick(e.clientX, e.clientY);
  if (!hit) return;
  if (measure.points.length === 2) measure.points = [];
  measure.points.push(hit.point.clone());
  showMeasurement();
});

// ---- shortest distance between two structures --------------------------------

let worker = null, workerJob = 0;

function showPair() {
  if (pairShown) {
    drawSegment(pairGroup, [pairShown.pa, pairShown.pb], 0xffff66);
    const la = labelOf(pairShown.a), lb = labelOf(pairShown.b);
    const how = pairShown.source === 'report' ? 'from the report' : 'computed on this page';
    $('pair-result').textContent = `${la} to ${lb}: ${formatMm(pairShown.mm)} (${how})`;
    $('pair-result').dataset.mm = String(pairShown.mm);
    $('label-pair').textContent = formatMm(pairShown.mm);
  } else {
    pairGroup.clear();
    $('pair-result').textContent = '';
    delete $('pair-result').dataset.mm;
  }
  requestRender();
  scheduleFragment();
}

function labelOf(key) {
  const it = items.find((x) => x.info.key === key);
  return it ? (it.info.label || it.info.name) : key;
}

async function shortestDistance() {
  const a = $('pair-a').value, b = $('pair-b').value;
  if (!a || !b || a === b) { $('pair-result').textContent = 'Choose two different structures.'; return; }
  const known = (models.distances || []).find((d) => (d.a === a && d.b === b) || (d.a === b && d.b === a));
  if (known && Array.isArray(known.a_lps_mm) && Array.isArray(known.b_lps_mm)) {
    const swap = known.a !== a;
    const pa = new THREE.Vector3(...(swap ? known.b_lps_mm : known.a_lps_mm));
    const pb = new THREE.Vector3(...(swap ? known.a_lps_mm : known.b_lps_mm));
    pairShown = { a, b, mm: known.mm, pa, pb, source: 'report' };
    showPair();
    return;
  }
  const ia = items.find((x) => x.info.key === a), ib = items.find((x) => x.info.key === b);
  $('pair-result').textContent = 'Computing\u2026';
  await Promise.all([load(ia), load(ib)]);
  if (!ia.mesh || !ib.mesh) { $('pair-result').textContent = 'A model could not be loaded.'; return; }
  if (!worker) worker = new Worker('assets/distance-worker.js');
  const job = ++workerJob;
  const payload = (it) => ({ positions: it.mesh.geometry.attributes.position.array.slice(),
    index: it.mesh.geometry.index.array.slice() });
  const result = await new Promise((resolve, reject) => {
    worker.onmessage = (e) => resolve(e.data);
    worker.onerror = (e) => reject(new Error(e.message || 'worker failed'));
    worker.postMessage({ job, a: payload(ia), b: payload(ib) });
  });
  if (job !== workerJob) return;
  pairShown = { a, b, mm: result.mm, pa: new THREE.Vector3(...result.pa), pb: new THREE.Vector3(...result.pb),
    source: 'page' };
  showPair();
}

// ---- the address: the state in the fragment ------------------------------------

function fragmentParams() {
  const m = new Map();
  for (const part of location.hash.replace(/^#/, '').split('&')) {
    const i = part.indexOf('=');
    if (i > 0) m.set(part.slice(0, i), decodeURIComponent(part.slice(i + 1)));
  }
  return m;
}

function numbers(s, n) {
  const v = (s || '').split(',').map(Number);
  return v.length >= n && v.slice(0, n).every(Number.isFinite) ? v : null;
}

function stateFragment() {
  const parts = [];
  parts.push('show=' + items.filter((it) => it.checkbox.checked).map((it) => it.info.key).join(','));
  const ops = items.filter((it) => it.opacity !== null).map((it) => it.info.key + ':' + it.opacity);
  if (ops.length) parts.push('op=' + ops.join(','));
  const p = camera.position, t = controls.target, u = camera.up;
  parts.push('cam=' + [p.x, p.y, p.z, t.x, t.y, t.z, u.x, u.y, u.z].join(','));
  if (clip.axis === 'view')
    parts.push('clip=' + ['view', clip.pos, clip.flip ? 1 : 0, clip.normal.x, clip.normal.y, clip.normal.z].join(','));
  else if (clip.axis) parts.push('clip=' + [clip.axis, clip.pos, clip.flip ? 1 : 0].join(','));
  if (measure.points.length) parts.push('m=' + measure.points.map((q) => [q.x, q.y, q.z].join(',')).join(','));
  if (pairShown) {
    const { pa, pb } = pairShown;
    parts.push('pd=' + [pairShown.a, pairShown.b, pairShown.mm, pa.x, pa.y, pa.z, pb.x, pb.y, pb.z,
      pairShown.source === 'report' ? 'r' : 'p'].join(','));
  }
  return '#' + parts.join('&');
}

let fragmentTimer = 0, restoring = true;
function scheduleFragment() {
  if (restoring) return;
  clearTimeout(fragmentTimer);
  fragmentTimer = setTimeout(() => {
    const f = stateFragment();
    if (f !== location.hash) history.replaceState(null, '', f);
  }, FRAGMENT_DELAY_MS);
}

function initialVisibility(structures, params) {
  if (params.has('show')) {
    const keys = new Set(params.get('show').split(',').filter(Boolean));
    return structures.map((s) => keys.has(s.key));
  }
  const inner = structures.some((s) => !s.body_surface);
  return structures.map((s) => !(inner && s.body_surface));
}

// Everything but visibility, once the shown models are loaded.
function restoreState(params) {
  for (const part of (params.get('op') || '').split(',')) {
    const i = part.lastIndexOf(':');
    const it = items.find((x) => x.info.key === part.slice(0, i));
    const v = Number(part.slice(i + 1));
    if (it && i > 0 && Number.isFinite(v)) it.opacity = Math.min(1, Math.max(0, v));
  }
  const cam = numbers(params.get('cam'), 9);
  if (cam) {
    camera.position.set(cam[0], cam[1], cam[2]);
    controls.target.set(cam[3], cam[4], cam[5]);
    camera.up.set(cam[6], cam[7], cam[8]);
    camera.lookAt(controls.target);
    resize();
  } else {
    setView('anterior');
  }
  const c = (params.get('clip') || '').split(',');
  if (['x', 'y', 'z', 'view'].includes(c[0]) && Number.isFinite(Number(c[1]))) {
    clip.axis = c[0];
    clip.pos = Number(c[1]);
    clip.flip = c[2] === '1';
    const n = numbers(c.slice(3).join(','), 3);
    if (c[0] === 'view' && n) clip.normal.set(n[0], n[1], n[2]).normalize();
    $('clip-axis').value = clip.axis;
    $('clip-flip').checked = clip.flip;
  }
  const m = numbers(params.get('m'), 3);
  if (m) {
    measure.points = [new THREE.Vector3(m[0], m[1], m[2])];
    if (m.length >= 6 && m.slice(3, 6).every(Number.isFinite)) measure.points.push(new THREE.Vector3(m[3], m[4], m[5]));
  }
  const pd = (params.get('pd') || '').split(',');
  const pv = numbers(pd.slice(2).join(','), 7);
  if (pd.length >= 9 && pv) {
    pairShown = { a: pd[0], b: pd[1], mm: pv[0], pa: new THREE.Vector3(pv[1], pv[2], pv[3]),
      pb: new THREE.Vector3(pv[4], pv[5], pv[6]), source: pd[9] === 'r' ? 'report' : 'page' };
    $('pair-a').value = pd[0];
    $('pair-b').value = pd[1];
  }
}

window.addEventListener('hashchange', () => {
  if (location.hash !== stateFragment()) location.reload();
});

// ---- the list ----------------------------------------------------------------

function formatMl(v) {
  return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + ' mL';
}

function formatPoint(p) {
  return Array.isArray(p) ? ` at (${p.map((x) => Number(x).toFixed(0)).join(', ')}) mm` : '';
}

// What the print lab needs to know, from models.json "print" (absent in older results).
function printLine(pr) {
  const el = document.createElement('div');
  if (!pr || typeof pr !== 'object') return null;
  const problems = [];
  if (pr.closed === false) problems.push('open surface (holes)');
  if (pr.manifold === false) problems.push('not manifold');
  if (pr.outward === false) problems.push('normals point inward');
  if (pr.self_intersections > 0)
    problems.push(`${pr.self_intersections} self-intersection${pr.self_intersections > 1 ? 's' : ''}${formatPoint(pr.self_intersection_at_lps_mm)}`);
  if (pr.thin_wall && pr.min_wall_mm != null)
    problems.push(`wall ${Number(pr.min_wall_mm).toFixed(1)} mm thin (limit ${Number(pr.min_wall_limit_mm).toFixed(1)} mm)${formatPoint(pr.min_wall_at_lps_mm)}`);
  const shells = Array.isArray(pr.shells) ? pr.shells.length : 0;
  if (shells > 1) problems.push(`${shells} separate pieces`);
  el.className = 'print ' + (pr.printable ? 'ok' : 'bad');
  el.textContent = pr.printable === true ? '3D print: ready' + (shells > 1 ? ` (${shells} pieces)` : '') +
    (pr.min_wall_mm != null ? `, thinnest wall ${Number(pr.min_wall_mm).toFixed(1)} mm` : '') :
    pr.printable === false ? '3D print: needs repair: ' + (problems.join('; ') || 'see the report') : '';
  el.dataset.printable = String(pr.printable);
  return el.textContent ? el : null;
}

function listItem(info, series, multiSeries, visible) {
  const li = document.createElement('li');
  li.dataset.key = info.key;
  const label = document.createElement('label');
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.checked = visible;
  box.name = 'show-' + info.key;
  const sw = document.createElement('span');
  sw.className = 'swatch';
  sw.style.background = `rgb(${info.color_rgb.join(',')})`;
  const name = document.createElement('span');
  name.textContent = info.label || info.name;
  const vol = document.createElement('span');
  vol.className = 'volume';
  vol.textContent = formatMl(info.volume_ml);
  label.append(box, sw, name, vol);
  li.append(label);
  const op = document.createElement('label');
  op.className = 'opacity';
  const slider = document.createElement('input');
  slider.type = 'range';
  slider.min = '0';
  slider.max = '100';
  slider.step = '1';
  slider.name = 'opacity-' + info.key;
  slider.setAttribute('aria-label', 'Opacity of ' + (info.label || info.name));
  const sliderValue = document.createElement('span');
  op.append('opacity', slider, sliderValue);
  li.append(op);
  const ms = info.measurements;
  if (ms && Array.isArray(ms.extents_mm) && ms.extents_mm.length === 3) {
    const sz = document.createElement('div');
    sz.className = 'sizes';
    sz.textContent = 'size ' + ms.extents_mm.map((x) => Number(x).toFixed(0)).join(' \u00d7 ') + ' mm';
    li.append(sz);
  }
  const pl = printLine(info.print);
  if (pl) {
    li.append(pl);
    const spots = [info.print.self_intersection_at_lps_mm, info.print.min_wall_at_lps_mm]
      .filter((p) => Array.isArray(p) && p.length === 3 && p.every(Number.isFinite));
    if (!info.print.printable && spots.length) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'where';
      b.textContent = 'show where';
      b.setAttribute('aria-pressed', 'false');
      b.setAttribute('aria-label', 'Show where the print problems of ' + (info.label || info.name) + ' are');
      b.addEventListener('click', () => toggleProblemMarkers(b, spots));
      pl.append(' ', b);
    }
  }
  const extra = document.createElement('div');
  extra.className = 'series';
  if (multiSeries && series) extra.append(series.label + ' \u00b7 ');
  const dl = document.createElement('a');
  dl.href = base + '/' + encodeURIComponent(info.file);
  dl.download = info.file;
  dl.textContent = 'download STL';
  extra.append(dl, ` (${info.triangles.toLocaleString('en')} triangles)`);
  li.append(extra);
  list.append(li);
  return { box, slider, sliderValue };
}

let models = null;

async function main() {
  resize();
  const rsp = await fetch(base + '/models.json', { cache: 'no-store' });
  if (!rsp.ok) throw new Error(rsp.status === 404 ? 'this link is unknown or has expired' : 'HTTP ' + rsp.status);
  models = await rsp.json();
  document.getElementById('generator').textContent = models.generator || 'recon3d';
  if (models.expires_at)
    document.getElementById('expires').textContent = 'This link works until ' + models.expires_at.replace('T', ' ').replace('Z', ' UTC') + '.';
  const skipped = document.getElementById('skipped');
  for (const s of models.skipped || []) {
    const li = document.createElement('li');
    li.textContent = `${s.label || s.name}: not made (${s.reason})`;
    skipped.append(li);
  }
  const structures = models.structures || [];
  if (structures.length === 0) {
    statusLine.textContent = 'This study has no 3D models.';
    document.body.dataset.state = 'ready';
    return;
  }
  const params = fragmentParams();
  const multiSeries = new Set(structures.map((s) => s.series)).size > 1;
  const visible = initialVisibility(structures, params);
  structures.forEach((info, i) => {
    const { box, slider, sliderValue } = listItem(info, models.series[info.series], multiSeries, visible[i]);
    const it = { info, group: null, mesh: null, caps: [], loading: null, failed: false, checkbox: box,
      slider, sliderValue, opacity: null, surface: info.body_surface === true, order: (i + 1) * CAP_RENDER_STRIDE };
    box.addEventListener('change', async () => {
      // A structure hidden at first is fetched when it is first shown.
      if (box.checked && !it.mesh && !it.failed) {
        statusLine.textContent = `Loading ${it.info.label || it.info.name}\u2026`;
        await load(it);
        showStatus();
        if (clip.axis) applyClip();
      }
      if (it.group) it.group.visible = box.checked;
      updateMaterials();
      scheduleFragment();
    });
    slider.addEventListener('input', () => {
      it.opacity = Number(slider.value) / 100;
      updateMaterials();
      scheduleFragment();
    });
    for (const sel of [$('pair-a'), $('pair-b')]) {
      const o = document.createElement('option');
      o.value = info.key;
      o.textContent = info.label || info.name;
      sel.append(o);
    }
    items.push(it);
  });
  if (items.length > 1) $('pair-b').selectedIndex = 1;
  updateMaterials();
  // Only what is shown is downloaded now (the skin alone can be 15 MB).
  const shown = items.filter((it) => it.checkbox.checked);
  statusLine.textContent = `Loading ${shown.length} models\u2026`;
  await Promise.all(shown.map(load));
  restoreState(params);
  applyClip();
  updateMaterials();
  showMeasurement();
  showPair();
  showStatus();
  restoring = false;
  allLoaded = true;
  requestRender();
}

// Fetches and parses one structure's mesh once; a failure disables its box.
function load(it) {
  if (!it.loading) {
    it.loading = (async () => {
      try {
        // The indexed mesh when the server has one (results made before it only have the STL).
        const file = it.info.mesh || it.info.file;
        const r = await fetch(base + '/' + encodeURIComponent(file), { cache: 'no-store' });
        if (!r.ok) throw new Error('HTTP ' + r.status);
        const buffer = await r.arrayBuffer();
        const geometry = it.info.mesh ? parseMesh(buffer) : indexed(parseStl(buffer));
        const color = new THREE.Color().setRGB(it.info.color_rgb[0] / 255, it.info.color_rgb[1] / 255,
          it.info.color_rgb[2] / 255, THREE.SRGBColorSpace);
        const material = new THREE.MeshLambertMaterial({ color, side: THREE.DoubleSide });
        it.group = new THREE.Group();
        it.mesh = new THREE.Mesh(geometry, material);
        it.mesh.name = it.info.key;
        it.group.add(it.mesh);
        makeCaps(it, it.order);
        it.group.visible = it.checkbox.checked;
        scene.add(it.group);
      } catch (e) {
        it.failed = true;
        it.checkbox.checked = false;
        it.checkbox.disabled = true;
        it.slider.disabled = true;
      }
    })();
  }
  return it.loading;
}

function showStatus() {
  const failed = items.filter((it) => it.failed).length;
  statusLine.textContent = failed ? `${failed} of ${items.length} models could not be loaded.` :
    `${items.length} structure${items.length > 1 ? 's' : ''}`;
}

// ---- save as PNG ---------------------------------------------------------------

// The canvas with the orientation letters and the distances drawn on it.
function savePng() {
  render();
  const src = renderer.domElement;
  const out = document.createElement('canvas');
  out.width = src.width;
  out.height = src.height;
  const ctx = out.getContext('2d');
  ctx.drawImage(src, 0, 0);
  const k = src.width / src.getBoundingClientRect().width;
  ctx.font = `bold ${Math.round(18 * k)}px system-ui, sans-serif`;
  ctx.fillStyle = '#ffd36b';
  const canvasRect = src.getBoundingClientRect();
  for (const id of ['letter-left', 'letter-right', 'letter-top', 'letter-bottom', 'label-distance', 'label-pair']) {
    const el = $(id);
    if (el.hidden || !el.textContent) continue;
    const r = el.getBoundingClientRect();
    ctx.fillStyle = getComputedStyle(el).color;
    ctx.textBaseline = 'middle';
    ctx.fillText(el.textContent, (r.left - canvasRect.left) * k, (r.top + r.height / 2 - canvasRect.top) * k);
  }
  const a = document.createElement('a');
  a.href = out.toDataURL('image/png');
  a.download = '3d-model.png';
  document.body.append(a);
  a.click();
  a.remove();
}

// ---- controls ---------------------------------------------------------------------

for (const b of document.querySelectorAll('[data-view]')) b.addEventListener('click', () => setView(b.dataset.view));
$('reset').addEventListener('click', () => setView('anterior'));
$('clip-axis').addEventListener('change', () => {
  clip.axis = $('clip-axis').value;
  if (clip.axis === 'view') {
    clip.normal.copy(controls.target).sub(camera.position).normalize();
    clip.pos = 0;
  } else if (clip.axis) {
    const [lo, hi] = clipRange();
    clip.pos = Math.round((lo + hi) / 2 * 10) / 10;
  }
  applyClip();
});
$('clip-pos').addEventListener('input', () => { clip.pos = Number($('clip-pos').value); applyClip(); });
$('clip-flip').addEventListener('change', () => { clip.flip = $('clip-flip').checked; applyClip(); });
$('measure').addEventListener('click', () => setMeasuring(!measure.active));
$('measure-clear').addEventListener('click', () => { measure.points = []; pairShown = null; showMeasurement(); showPair(); });
$('pair-go').addEventListener('click', () => {
  shortestDistance().catch((e) => { $('pair-result').textContent = 'Cannot compute: ' + e.message; });
});
$('save-png').addEventListener('click', savePng);

// For the browser test and bench/viewer: where a point is drawn, the fragment,
// and a page-driven rotation that counts the frames it draws.
window.r3dViewer = {
  project,
  fragment: stateFragment,
  orientation,
  spin(seconds) {
    return new Promise((resolve) => {
      const axis = camera.up.clone().normalize();
      const t0 = performance.now();
      let frames = 0;
      spinning = {
        step() {
          const now = performance.now();
          if (now - t0 >= seconds * 1000) {
            spinning = null;
            resolve({ frames, seconds: (now - t0) / 1000, fps: frames / ((now - t0) / 1000) });
            return;
          }
          const off = camera.position.clone().sub(controls.target).applyAxisAngle(axis, 0.02);
          camera.position.copy(controls.target).add(off);
          camera.lookAt(controls.target);
          frames++;
        },
      };
      requestRender();
    });
  },
};

main().catch((e) => {
  statusLine.textContent = 'Cannot show the models: ' + e.message;
  document.body.dataset.state = 'error';
});
