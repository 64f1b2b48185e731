// viewer.js: the 3D page of one study (served by recon3d at /viewer/<token>).
// Reads <token>/models.json, loads each structure's binary STL (patient LPS
// millimetres), and shows them with three.js: drag to rotate, wheel or pinch
// to zoom, a checkbox per structure. Everything comes from the same server;
// nothing is sent anywhere.
//
// The URL fragment may choose the structures shown at first:
//   #show=bone,vessels   (download names, as in models.json "key")
// Without it every structure is shown except the body surface (the
// structures whose catalogue entry says body_surface, such as the skin),
// which would hide the others; it can be switched on and is then translucent.
// Names on the page are each structure's label from the catalogue.
import * as THREE from './three.module.js';
import { OrbitControls } from './OrbitControls.js';

const SURFACE_OPACITY = 0.3;

const base = location.pathname.replace(/\/+$/, '');
const view = document.getElementById('view');
const statusLine = document.getElementById('status');
const list = document.getElementById('structures');

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

const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio || 1);
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
const controls = new OrbitControls(camera, renderer.domElement);
controls.enableDamping = false;

let frameRequested = false;
function render() {
  frameRequested = false;
  renderer.render(scene, camera);
}
function requestRender() {
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(render);
  }
}
controls.addEventListener('change', requestRender);

function resize() {
  const w = view.clientWidth || window.innerWidth, h = view.clientHeight || window.innerHeight;
  renderer.setSize(w, h, false);
  camera.aspect = w / h;
  if (camera.view && camera.view.enabled) {
    const pw = document.getElementById('panel').getBoundingClientRect().right;
    if (w > 2.5 * pw) camera.setViewOffset(w, h, -pw / 2, 0, w, h);
    else camera.clearViewOffset();
  }
  camera.updateProjectionMatrix();
  requestRender();
}
window.addEventListener('resize', resize);

const items = [];   // {info, mesh, checkbox}

// Anterior view (the camera in front of the patient, superior up) framing
// the visible structures, or all of them when none is visible.
function frame() {
  const box = new THREE.Box3();
  for (const it of items) if (it.mesh && it.mesh.visible) box.union(it.mesh.geometry.boundingBox);
  if (box.isEmpty()) for (const it of items) if (it.mesh) box.union(it.mesh.geometry.boundingBox);
  if (box.isEmpty()) return;
  const center = box.getCenter(new THREE.Vector3());
  const radius = Math.max(box.getSize(new THREE.Vector3()).length() / 2, 1);
  const fov = THREE.MathUtils.degToRad(camera.fov);
  const dist = radius / Math.sin(Math.min(fov, fov * camera.aspect) / 2);
  // On a wide window, centre the model in the room right of the list.
  const w = view.clientWidth || window.innerWidth, h = view.clientHeight || window.innerHeight;
  const pw = document.getElementById('panel').getBoundingClientRect().right;
  if (w > 2.5 * pw) camera.setViewOffset(w, h, -pw / 2, 0, w, h);
  else camera.clearViewOffset();
  camera.position.set(center.x, center.y - dist, center.z);   // LPS: -y is anterior
  camera.near = Math.max(dist - 2 * radius, dist / 100);
  camera.far = dist + 4 * radius;
  camera.updateProjectionMatrix();
  controls.target.copy(center);
  controls.update();
  requestRender();
}

// The body surface is translucent while anything else is shown.
function updateSurfaces() {
  const others = items.some((it) => it.mesh && it.mesh.visible && !it.surface);
  for (const it of items) {
    if (!it.surface || !it.mesh) continue;
    const m = it.mesh.material;
    m.transparent = others;
    m.opacity = others ? SURFACE_OPACITY : 1;
    m.depthWrite = !others;
    m.needsUpdate = true;
  }
  requestRender();
}

// ---- the list ----------------------------------------------------------------

function formatMl(v) {
  return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + ' mL';
}

function listItem(info, series, multiSeries, visible) {
  const li = document.createElement('li');
  const label = document.createElement('label');
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.checked = visible;
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
  return box;
}

function initialVisibility(structures) {
  const m = /(?:^#|&)show=([^&]*)/.exec(location.hash);
  if (m) {
    const keys = new Set(decodeURIComponent(m[1]).split(',').filter(Boolean));
    return structures.map((s) => keys.has(s.key));
  }
  const inner = structures.some((s) => !s.body_surface);
  return structures.map((s) => !(inner && s.body_surface));
}

async function main() {
  resize();
  const rsp = await fetch(base + '/models.json', { cache: 'no-store' });
  if (!rsp.ok) throw new Error(rsp.status === 404 ? 'this link is unknown or has expired' : 'HTTP ' + rsp.status);
  const models = await rsp.json();
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
    return;
  }
  const multiSeries = new Set(structures.map((s) => s.series)).size > 1;
  const visible = initialVisibility(structures);
  structures.forEach((info, i) => {
    const checkbox = listItem(info, models.series[info.series], multiSeries, visible[i]);
    const it = { info, mesh: null, loading: null, failed: false, checkbox,
      surface: info.body_surface === true };
    checkbox.addEventListener('change', async () => {
      // A structure hidden at first is fetched when it is first shown.
      if (checkbox.checked && !it.mesh && !it.failed) {
        statusLine.textContent = `Loading ${it.info.label || it.info.name}\u2026`;
        await load(it);
        showStatus();
      }
      if (it.mesh) it.mesh.visible = checkbox.checked;
      updateSurfaces();
      requestRender();
    });
    items.push(it);
  });
  // Only what is shown is downloaded now (the skin alone can be 15 MB).
  const shown = items.filter((it) => it.checkbox.checked);
  statusLine.textContent = `Loading ${shown.length} models\u2026`;
  await Promise.all(shown.map(load));
  updateSurfaces();
  frame();
  showStatus();
  document.body.dataset.state = items.some((it) => it.failed) ? 'partial' : 'ready';
}

// Fetches and parses one structure's STL once; a failure disables its box.
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
        it.mesh = new THREE.Mesh(geometry, material);
        it.mesh.visible = it.checkbox.checked;
        it.mesh.name = it.info.key;
        scene.add(it.mesh);
      } catch (e) {
        it.failed = true;
        it.checkbox.checked = false;
        it.checkbox.disabled = true;
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

document.getElementById('reset').addEventListener('click', frame);
main().catch((e) => {
  statusLine.textContent = 'Cannot show the models: ' + e.message;
  document.body.dataset.state = 'error';
});
