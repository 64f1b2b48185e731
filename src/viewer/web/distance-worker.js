// distance-worker.js: the shortest distance between two structures' surfaces,
// for the 3D page (viewer.js) when models.json has no "distances" entry for
// the pair. Runs in a Web Worker, so the page stays responsive.
//
// In: {job, a: {positions, index}, b: {positions, index}} (Float32Array xyz
// in LPS mm, Uint32Array triangles). Out: {job, mm, pa, pb, ms}: the
// distance and the two closest points, pa on a and pb on b.
//
// Method: a bounding-volume hierarchy over each surface's triangles; every
// vertex of a is queried against b's triangles and every vertex of b against
// a's (branch and bound, pruned by the best distance found so far), and the
// closest point on the closest triangle is exact. Both passes together find
// the true minimum whenever one of the two closest points is a vertex; when
// both lie inside edges (two edges crossing at a distance), the answer is
// larger by at most the square of the edge length over the surfaces'
// curvature radius: hundredths of a millimetre on these meshes.
'use strict';

const LEAF_TRIANGLES = 8;

function buildBvh(pos, index) {
  const nt = index.length / 3;
  const cen = new Float32Array(3 * nt), tbox = new Float32Array(6 * nt);
  for (let t = 0; t < nt; t++) {
    for (let k = 0; k < 3; k++) {
      let lo = Infinity, hi = -Infinity;
      for (let c = 0; c < 3; c++) {
        const v = pos[3 * index[3 * t + c] + k];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      tbox[6 * t + k] = lo; tbox[6 * t + 3 + k] = hi;
      cen[3 * t + k] = (lo + hi) / 2;
    }
  }
  const order = new Uint32Array(nt);
  for (let t = 0; t < nt; t++) order[t] = t;
  const maxNodes = 2 * nt + 1;   // a binary tree with at most nt leaves
  const box = new Float32Array(6 * maxNodes);
  const left = new Int32Array(maxNodes), start = new Int32Array(maxNodes), count = new Int32Array(maxNodes);
  let nodes = 0;
  const stack = [[0, nt, nodes++]];
  while (stack.length) {
    const [s, e, id] = stack.pop();
    const b = 6 * id;
    for (let k = 0; k < 3; k++) { box[b + k] = Infinity; box[b + 3 + k] = -Infinity; }
    for (let i = s; i < e; i++) {
      const t = order[i];
      for (let k = 0; k < 3; k++) {
        if (tbox[6 * t + k] < box[b + k]) box[b + k] = tbox[6 * t + k];
        if (tbox[6 * t + 3 + k] > box[b + 3 + k]) box[b + 3 + k] = tbox[6 * t + 3 + k];
      }
    }
    if (e - s <= LEAF_TRIANGLES) { left[id] = -1; start[id] = s; count[id] = e - s; continue; }
    // Split at the middle of the centroids' extent along its longest axis.
    let axis = 0, lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    for (let i = s; i < e; i++) for (let k = 0; k < 3; k++) {
      const c = cen[3 * order[i] + k];
      if (c < lo[k]) lo[k] = c;
      if (c > hi[k]) hi[k] = c;
    }
    for (let k = 1; k < 3; k++) if (hi[k] - lo[k] > hi[axis] - lo[axis]) axis = k;
    const mid = (lo[axis] + hi[axis]) / 2;
    let i = s, j = e - 1;
    while (i <= j) {
      if (cen[3 * order[i] + axis] < mid) i++;
      else { const tmp = order[i]; order[i] = order[j]; order[j] = tmp; j--; }
    }
    if (i === s || i === e) i = (s + e) >> 1;   // all centroids equal: split the list
    const l = nodes++, r = nodes++;
    left[id] = l; count[id] = 0;
    stack.push([s, i, l], [i, e, r]);
  }
  return { pos, index, order, box, left, start, count };
}

function boxDist2(box, n, p) {
  let d = 0;
  for (let k = 0; k < 3; k++) {
    const lo = box[6 * n + k], hi = box[6 * n + 3 + k], v = p[k];
    if (v < lo) d += (lo - v) * (lo - v);
    else if (v > hi) d += (v - hi) * (v - hi);
  }
  return d;
}

// The point of triangle abc nearest p (Ericson, Real-Time Collision Detection 5.1.5).
function closestOnTriangle(p, a, b, c, out) {
  const ab = [b[0] - a[0], b[1] - a[1], b[2] - a[2]], ac = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
  const ap = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
  const dot = (u, v) => u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
  const set = (q, u, s, w, t) => { for (let k = 0; k < 3; k++) out[k] = q[k] + s * u[k] + t * w[k]; };
  const d1 = dot(ab, ap), d2 = dot(ac, ap);
  if (d1 <= 0 && d2 <= 0) return set(a, ab, 0, ac, 0);
  const bp = [p[0] - b[0], p[1] - b[1], p[2] - b[2]];
  const d3 = dot(ab, bp), d4 = dot(ac, bp);
  if (d3 >= 0 && d4 <= d3) return set(a, ab, 1, ac, 0);
  const vc = d1 * d4 - d3 * d2;
  if (vc <= 0 && d1 >= 0 && d3 <= 0) return set(a, ab, d1 / (d1 - d3), ac, 0);
  const cp = [p[0] - c[0], p[1] - c[1], p[2] - c[2]];
  const d5 = dot(ab, cp), d6 = dot(ac, cp);
  if (d6 >= 0 && d5 <= d6) return set(a, ab, 0, ac, 1);
  const vb = d5 * d2 - d1 * d6;
  if (vb <= 0 && d2 >= 0 && d6 <= 0) return set(a, ab, 0, ac, d2 / (d2 - d6));
  const va = d3 * d6 - d5 * d4;
  if (va <= 0 && d4 - d3 >= 0 && d5 - d6 >= 0) {
    const w = (d4 - d3) / ((d4 - d3) + (d5 - d6));
    for (let k = 0; k < 3; k++) out[k] = b[k] + w * (c[k] - b[k]);
    return undefined;
  }
  const denom = 1 / (va + vb + vc);
  return set(a, ab, vb * denom, ac, vc * denom);
}

// Closest point of the surface to p if nearer than sqrt(best.d2); updates best.
function query(bvh, p, best) {
  const { pos, index, order, box, left, start, count } = bvh;
  const a = [0, 0, 0], b = [0, 0, 0], c = [0, 0, 0], q = [0, 0, 0];
  const stack = [0];
  let improved = false;
  while (stack.length) {
    const n = stack.pop();
    if (boxDist2(box, n, p) >= best.d2) continue;
    if (left[n] < 0) {
      for (let i = start[n]; i < start[n] + count[n]; i++) {
        const t = order[i];
        for (let k = 0; k < 3; k++) {
          a[k] = pos[3 * index[3 * t] + k]; b[k] = pos[3 * index[3 * t + 1] + k]; c[k] = pos[3 * index[3 * t + 2] + k];
        }
        closestOnTriangle(p, a, b, c, q);
        const d2 = (q[0] - p[0]) ** 2 + (q[1] - p[1]) ** 2 + (q[2] - p[2]) ** 2;
        if (d2 < best.d2) { best.d2 = d2; best.q = q.slice(); improved = true; }
      }
    } else {
      const l = left[n], r = l + 1;
      const dl = boxDist2(box, l, p), dr = boxDist2(box, r, p);
      if (dl < dr) stack.push(r, l); else stack.push(l, r);
    }
  }
  return improved;
}

// Every vertex of `from` against the triangles of `to`: best.p on from, best.q on to.
function pass(from, to, best, swap) {
  const p = [0, 0, 0];
  const nv = from.length / 3;
  const probe = { d2: best.d2, q: null };
  // A coarse sweep first finds a good bound, so the full sweep prunes early.
  for (const stride of [Math.max(1, Math.floor(nv / 512)), 1]) {
    for (let v = 0; v < nv; v += stride) {
      p[0] = from[3 * v]; p[1] = from[3 * v + 1]; p[2] = from[3 * v + 2];
      probe.d2 = best.d2;
      if (query(to, p, probe)) {
        best.d2 = probe.d2;
        if (swap) { best.pa = probe.q; best.pb = p.slice(); } else { best.pa = p.slice(); best.pb = probe.q; }
      }
    }
  }
}

self.onmessage = (e) => {
  const t0 = performance.now();
  const { job, a, b } = e.data;
  const ba = buildBvh(a.positions, a.index), bb = buildBvh(b.positions, b.index);
  const best = { d2: Infinity, pa: null, pb: null };
  pass(a.positions, bb, best, false);
  pass(b.positions, ba, best, true);
  self.postMessage({ job, mm: Math.sqrt(best.d2), pa: best.pa, pb: best.pb, ms: performance.now() - t0 });
};
