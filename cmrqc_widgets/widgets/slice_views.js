// Whole-heart views of the slice viewer (issue 12): ED and ES mosaics side by side, and the short
// axis with both long axes and cross-reference lines. Plain JS, no imports: the kernel
// (slice_viewer.py) joins volume_store.js, this file and slice_viewer.js into one ES module, so
// slice_viewer.js calls these functions directly.
//
// Everything here draws from volumes already decoded in the browser ({image, labels, shape},
// uint8, [slices, rows, cols]); which volume is drawn where is decided by slice_viewer.js, with the
// other phase's identity check here (otherPhaseRefusal). `paint(mri, lab, x0, y0, grey, codes, w, h)`
// is the viewer's tile painter (window/level, overlay filled or outlined, visible structures).

// Cross-reference line colours: each plane drawn in its own colour on the other two views.
const CROSS_RGB = { sa: [255, 255, 0], hla: [0, 255, 255], vla: [255, 0, 255] };

// Columns and rows of a lightbox of n tiles, as square as possible.
function mosaicGrid(n) {
  const cols = Math.max(1, Math.ceil(Math.sqrt(n)));
  return { cols, rows: Math.max(1, Math.ceil(n / cols)) };
}

// Every short-axis slice of `vol` in a grid on `canvas`; `mmW`/`mmH` (mm per canvas pixel) go to
// the canvas' dataset for the layout. Returns {n, cols, rows}.
function drawMosaicCanvas(canvas, vol, spacing, paint) {
  const [n, r, c] = vol.shape;
  const { cols, rows } = mosaicGrid(n);
  const width = cols * c;
  const height = rows * r;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const ctx = canvas.getContext("2d");
  const mri = ctx.createImageData(width, height);
  const lab = new ImageData(width, height); // the labels alone: not shown in the mosaic
  const grey = new Uint8Array(r * c);
  const codes = new Uint8Array(r * c);
  for (let k = 0; k < n; k++) {
    grey.set(vol.image.subarray(k * r * c, (k + 1) * r * c));
    codes.set(vol.labels.subarray(k * r * c, (k + 1) * r * c));
    paint(mri, lab, (k % cols) * c, Math.floor(k / cols) * r, grey, codes, c, r);
  }
  for (let q = 3; q < mri.data.length; q += 4) mri.data[q] = 255; // empty tiles black
  ctx.putImageData(mri, 0, 0);
  canvas.dataset.mmW = String(spacing[2]);
  canvas.dataset.mmH = String(spacing[1]);
  return { n, cols, rows };
}

// Whose volume `key` is ("<patient> <phase>") when it is not the other phase of the patient in
// `caseId` ("<serial>:<phase>:<patient>"); "" when it is (or when there is no key to judge).
function otherPhaseRefusal(caseId, key) {
  if (!key) return "";
  const [serial = "", phase = "", ...patient] = String(caseId).split(":");
  const expected = describe([serial, phase === "ES" ? "ED" : "ES", ...patient].join(":"));
  return phase && describeKey(key) === expected ? "" : describeKey(key);
}

// ED on the left pane, ES on the right, whichever `phase` is current: `current` is that phase's
// volume, `other` the other phase's (null while missing or refused; `refusal` says whose images
// were refused). A pane is {canvas, note, caption}. Returns per phase "n cols rows", "loading" or
// "refused".
function drawPhaseMosaics(panes, phase, current, other, refusal, spacing, paint) {
  const otherPhase = phase === "ES" ? "ED" : "ES";
  const halves = phase === "ES" ? [[other, otherPhase], [current, phase]] : [[current, phase], [other, otherPhase]];
  const shown = {};
  halves.forEach(([vol, name], i) => {
    const { canvas, note, caption } = panes[i];
    caption.textContent = name;
    note.hidden = Boolean(vol);
    if (vol) {
      const { n, cols, rows } = drawMosaicCanvas(canvas, vol, spacing, paint);
      shown[name] = `${n} ${cols} ${rows}`;
      return;
    }
    note.textContent = refusal
      ? `Could not show ${name}: the images received are those of ${refusal}.`
      : `${name} loading…`;
    canvas.width = canvas.height = 1;
    canvas.getContext("2d").clearRect(0, 0, 1, 1);
    shown[name] = refusal ? "refused" : "loading";
  });
  return shown;
}

// Display rows per slice of a long-axis view: enough to bring a row close to the in-plane pixel
// size (8-10 mm slices vs ~1.5 mm pixels), so the stretch is smooth, not a stack of 6 px bands.
function rowsPerSlice(spacing, inPlaneMm) {
  return Math.max(1, Math.min(16, Math.round(spacing[0] / Math.max(inPlaneMm, 1e-6))));
}

// A long-axis plane through `vol` ("hla": row k, "vla": column k), `f` display rows per slice:
// the grey levels linearly interpolated between slice centres, the labels nearest-neighbour (crisp).
function longAxisPlane(vol, view, k, f) {
  const [s, r, c] = vol.shape;
  const width = view === "hla" ? c : r;
  const height = s * f;
  const at = (z, x) => (view === "hla" ? z * r * c + k * c + x : z * r * c + x * c + k);
  const grey = new Uint8Array(width * height);
  const codes = new Uint8Array(width * height);
  for (let y = 0, p = 0; y < height; y++) {
    const z = (y + 0.5) / f - 0.5; // position in slices, slice centres at integers
    const z0 = Math.max(0, Math.min(s - 1, Math.floor(z)));
    const z1 = Math.min(s - 1, z0 + 1);
    const t = Math.max(0, Math.min(1, z - z0));
    const zn = Math.max(0, Math.min(s - 1, Math.round(z)));
    for (let x = 0; x < width; x++, p++) {
      grey[p] = Math.round(vol.image[at(z0, x)] * (1 - t) + vol.image[at(z1, x)] * t);
      codes[p] = vol.labels[at(zn, x)];
    }
  }
  return { grey, codes, width, height };
}

// [rowMid, colMid] of the voxels with structure `code` (the LV blood pool), or null when none:
// the long axes of the three views go through the LV, as a reader plans them.
function structureCentre(vol, code) {
  const [s, r, c] = vol.shape;
  let r0 = r, r1 = -1, c0 = c, c1 = -1;
  for (let q = 0, n = s * r * c; q < n; q++) {
    if (vol.labels[q] !== code) continue;
    const y = Math.floor(q / c) % r;
    const x = q % c;
    if (y < r0) r0 = y;
    if (y > r1) r1 = y;
    if (x < c0) c0 = x;
    if (x > c1) c1 = x;
  }
  return r1 < 0 ? null : [Math.floor((r0 + r1) / 2), Math.floor((c0 + c1) / 2)];
}

// Where the three views cut the volume {sa, hla, vla}: the short axis at slice `k` of `view`
// (the middle slice when the view is a long axis), the long axes through `placed` (a click) or
// the LV centre `lv` ([row, col], the slice centre without one), or `k` in their own view.
function threePlanes(shape, view, k, lv, placed = {}) {
  const [s, r, c] = shape;
  const [row, col] = lv || [Math.floor(r / 2), Math.floor(c / 2)];
  const clamp = (v, n) => Math.max(0, Math.min(n - 1, v));
  return {
    sa: clamp(view === "sa" ? k : Math.floor(s / 2), s),
    hla: clamp(view === "hla" ? k : placed.hla ?? row, r),
    vla: clamp(view === "vla" ? k : placed.vla ?? col, c),
  };
}

// The point each of the three views keeps in the middle of its frame when zoomed (fractions of
// the canvas): the LV centre `lv` in the short axis, and in the long axes its row or column at the
// middle of the labelled slices (`box` = [s0, s1, ...], all slices without labels).
function threeCentres(shape, lv, box) {
  const [s, r, c] = shape;
  const [row, col] = lv || [r / 2, c / 2];
  const z = box ? (box[0] + box[1] + 1) / 2 / s : 0.5;
  return [[(col + 0.5) / c, (row + 0.5) / r], [(col + 0.5) / c, z], [(row + 0.5) / r, z]];
}

// A one-pixel line across an ImageData: horizontal at row `y` or vertical at column `x`.
function crossLine(img, rgb, { x = null, y = null }) {
  const { width, height, data } = img;
  const put = (px, py) => {
    const q = (py * width + px) * 4;
    data[q] = rgb[0];
    data[q + 1] = rgb[1];
    data[q + 2] = rgb[2];
    data[q + 3] = 255;
  };
  if (y !== null && y >= 0 && y < height) for (let px = 0; px < width; px++) put(px, y);
  if (x !== null && x >= 0 && x < width) for (let py = 0; py < height; py++) put(x, py);
}

// Short axis slice `at.sa`, horizontal long axis through row `at.hla` and vertical long axis
// through column `at.vla` on three canvases, each with the other two planes drawn as lines.
// Returns where each line was drawn, in canvas pixels (for the browser tests).
function drawThreeViews(canvases, vol, spacing, at, paint) {
  const [s, r, c] = vol.shape;
  const [, dr, dc] = spacing;
  const fh = rowsPerSlice(spacing, dc);
  const fv = rowsPerSlice(spacing, dr);
  const planes = [
    { grey: vol.image.subarray(at.sa * r * c, (at.sa + 1) * r * c),
      codes: vol.labels.subarray(at.sa * r * c, (at.sa + 1) * r * c), width: c, height: r, mmW: dc, mmH: dr },
    { ...longAxisPlane(vol, "hla", at.hla, fh), mmW: dc, mmH: spacing[0] / fh },
    { ...longAxisPlane(vol, "vla", at.vla, fv), mmW: dr, mmH: spacing[0] / fv },
  ];
  const saRow = (f) => Math.min(s * f - 1, Math.floor((at.sa + 0.5) * f)); // the SA slice's centre row
  const lines = [
    [["hla", { y: at.hla }], ["vla", { x: at.vla }]],
    [["sa", { y: saRow(fh) }], ["vla", { x: at.vla }]],
    [["sa", { y: saRow(fv) }], ["hla", { x: at.hla }]],
  ];
  planes.forEach((plane, i) => {
    const canvas = canvases[i];
    if (canvas.width !== plane.width || canvas.height !== plane.height) {
      canvas.width = plane.width;
      canvas.height = plane.height;
    }
    const ctx = canvas.getContext("2d");
    const mri = ctx.createImageData(plane.width, plane.height);
    paint(mri, new ImageData(plane.width, plane.height), 0, 0, plane.grey, plane.codes, plane.width, plane.height);
    for (const [name, where] of lines[i]) crossLine(mri, CROSS_RGB[name], where);
    ctx.putImageData(mri, 0, 0);
    canvas.dataset.mmW = String(plane.mmW);
    canvas.dataset.mmH = String(plane.mmH);
  });
  return { saOnHla: saRow(fh), saOnVla: saRow(fv), hla: at.hla, vla: at.vla, rowsPerSlice: [fh, fv] };
}

// A click on pane `pane` (0 short axis, 1 HLA, 2 VLA) at canvas pixel (x, y) of the three views
// drawn as `where` (drawThreeViews' answer): the planes it places, {slice, hla, vla} (absent when
// that click does not place it). The short axis places both long axes; a long axis places the
// short-axis slice (its display row over the rows per slice) and the other long axis.
function planesAt(pane, x, y, where) {
  const [fh, fv] = where.rowsPerSlice;
  if (pane === 0) return { hla: Math.floor(y), vla: Math.floor(x) };
  if (pane === 1) return { slice: Math.floor(y / fh), vla: Math.floor(x) };
  return { slice: Math.floor(y / fv), hla: Math.floor(x) };
}

// CSS size and place of canvases drawn at `mmW` x `mmH` mm per pixel (their dataset), one scale
// for all so the panels compare, each in its square frame of `frame` px: centred when it fits,
// else (zoomed) with the point `centres[i]` (fractions of the canvas, default the middle) in the
// middle of the frame, never leaving a gap at an edge.
function layoutByMm(canvases, frame, zoom, centres = []) {
  const shown = canvases.filter((canvas) => canvas.width > 1 && canvas.dataset.mmW);
  const mm = (canvas) => [canvas.width * Number(canvas.dataset.mmW), canvas.height * Number(canvas.dataset.mmH)];
  const largest = Math.max(1e-6, ...shown.map((canvas) => Math.max(...mm(canvas))));
  const pxPerMm = (frame / largest) * zoom;
  const place = (size, at) =>
    size <= frame ? (frame - size) / 2 : Math.min(0, Math.max(frame - size, frame / 2 - at));
  canvases.forEach((canvas, i) => {
    const [w, h] = shown.includes(canvas) ? mm(canvas).map((v) => v * pxPerMm) : [0, 0];
    const [fx, fy] = centres[i] || [0.5, 0.5];
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
    canvas.style.left = `${place(w, fx * w)}px`;
    canvas.style.top = `${place(h, fy * h)}px`;
    canvas.parentElement.style.width = canvas.parentElement.style.height = `${frame}px`;
  });
}
