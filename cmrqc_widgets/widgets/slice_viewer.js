// Slice viewer for cmrqc_widgets (anywidget ES module, no build step, no imports).
//
// The kernel sends one phase of one patient once: `image` (uint8 MRI, 0..255) and `labels`
// (uint8 structure codes), both zlib-compressed, with `shape` [slices, rows, cols]. Everything a
// slice step needs is here, so a step is painted from memory instead of a 50-66 ms kernel round
// trip. The kernel stays the source of truth: we only read traits, and write `slice_index` back
// (wheel, play) with save_changes().
//
// Never the wrong patient: `volume_id` names the case the volume was packed from and `case_id` the
// case the review state shows ("<serial>:<phase>:<patient>"). A volume whose id is not `case_id` is
// never painted: the canvases are cleared and, unless its replacement is still being decoded, the
// viewer says which case it could not show.

const BASE_PX = 320; // CSS pixels of the larger short-axis extent at zoom 1
const UNKNOWN = 255; // structure code of a label value the label map does not name
const UNKNOWN_RGB = [160, 160, 160];

// Bytes traits arrive as a DataView (binary buffer); accept the other buffer types too.
function asBytes(value) {
  if (!value) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return new Uint8Array(0);
}

// "deflate" in the Compression Streams API is the zlib format that Python's zlib.compress writes.
async function inflate(value) {
  const bytes = asBytes(value);
  if (bytes.length === 0) return bytes;
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// "<serial>:<phase>:<patient>" -> "<patient folder name> <phase>".
function describe(id) {
  const [, phase = "", ...rest] = String(id).split(":");
  const patient = rest.join(":").split(/[\\/]/).filter(Boolean).pop() || "this case";
  return `${patient} ${phase}`.trim();
}

function hexToRgb(hex) {
  const n = parseInt(String(hex).replace("#", ""), 16);
  return Number.isNaN(n) ? [255, 255, 255] : [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

// Size and pixel spacing (mm) of one slice of `view`; "hla" = volume[:, k, :], "vla" = volume[:, :, k].
function geometry(shape, spacing, view) {
  const [s, r, c] = shape;
  const [ds, dr, dc] = spacing;
  if (view === "hla") return { n: r, width: c, height: s, mmW: dc, mmH: ds };
  if (view === "vla") return { n: c, width: r, height: s, mmW: dr, mmH: ds };
  return { n: s, width: c, height: r, mmW: dc, mmH: dr };
}

// Copy slice k of a [slices, rows, cols] C-order volume into `out` (height * width, row-major).
function copySlice(volume, shape, view, k, out) {
  const [s, r, c] = shape;
  if (view === "sa") {
    out.set(volume.subarray(k * r * c, (k + 1) * r * c));
  } else if (view === "hla") {
    for (let z = 0; z < s; z++) out.set(volume.subarray(z * r * c + k * c, z * r * c + (k + 1) * c), z * c);
  } else {
    let q = 0;
    for (let z = 0; z < s; z++) for (let y = 0; y < r; y++) out[q++] = volume[z * r * c + y * c + k];
  }
}

// Orientation letters: one span per edge of each image, filled from the `orientation` trait.
const EDGES = ["left", "right", "top", "bottom"].map((e) => `<span class="cmrqc-sv-or" data-edge="${e}"></span>`).join("");

function render({ model, el }) {
  el.classList.add("cmrqc-slice-viewer");
  el.innerHTML = `
    <div class="cmrqc-sv-message" hidden></div>
    <div class="cmrqc-sv-panels">
      <figure><div class="cmrqc-sv-frame"><canvas class="cmrqc-sv-mri"></canvas>${EDGES}</div><figcaption>MRI</figcaption></figure>
      <figure><div class="cmrqc-sv-frame"><canvas class="cmrqc-sv-labels"></canvas>${EDGES}</div><figcaption>Labels</figcaption></figure>
    </div>
    <div class="cmrqc-sv-status"></div>`;
  const messageEl = el.querySelector(".cmrqc-sv-message");
  const panels = el.querySelector(".cmrqc-sv-panels");
  const status = el.querySelector(".cmrqc-sv-status");
  const canvases = [el.querySelector(".cmrqc-sv-mri"), el.querySelector(".cmrqc-sv-labels")];
  const contexts = canvases.map((canvas) => canvas.getContext("2d"));

  let volume = null; // { image, labels, shape } once decoded
  let generation = 0; // drops a decode that finished after a newer volume arrived
  let error = "";
  let loading = false; // a volume is being decoded (a refused one is then only blanked)
  let draws = 0;
  const lut = new Uint8Array(256); // window/level: sent intensity -> grey
  const codeRgb = new Uint8Array(256 * 3); // structure code -> colour
  const codeOn = new Uint8Array(256); // structure code -> drawn?

  function buildLut() {
    const [low, high] = model.get("window");
    const span = Math.max(high - low, 1e-6);
    for (let v = 0; v < 256; v++) lut[v] = Math.max(0, Math.min(255, Math.round(((v - low) / span) * 255)));
  }

  function buildColours() {
    const structures = model.get("structures");
    const colours = model.get("colours");
    const visible = new Set(model.get("visible"));
    codeOn.fill(0);
    structures.forEach((name, i) => {
      codeRgb.set(hexToRgb(colours[name]), (i + 1) * 3);
      codeOn[i + 1] = visible.has(name) ? 1 : 0;
    });
    codeRgb.set(UNKNOWN_RGB, UNKNOWN * 3);
    codeOn[UNKNOWN] = 1; // a stray label is always worth seeing
  }

  // The volume held is not the case on screen (identity check; the kernel checks it too).
  function refused() {
    const expected = model.get("case_id");
    return Boolean(volume && expected && volume.id !== expected);
  }

  function placeLetters() {
    const letters = (model.get("orientation") || {})[model.get("view")] || {};
    for (const span of el.querySelectorAll(".cmrqc-sv-or")) span.textContent = letters[span.dataset.edge] || "";
  }

  function showMessage() {
    let text = model.get("message") || error;
    if (!text && refused() && !loading) {
      text = `Could not show ${describe(model.get("case_id"))}: the images received are those of ${describe(volume.id)}.`;
    }
    messageEl.textContent = text;
    messageEl.hidden = !text;
    panels.hidden = status.hidden = Boolean(text) || !volume;
  }

  // CSS size only: zoom and pixel aspect never need a repaint (image-rendering: pixelated).
  function layout() {
    if (!volume) return;
    const g = geometry(volume.shape, model.get("spacing"), model.get("view"));
    const sa = geometry(volume.shape, model.get("spacing"), "sa");
    const pxPerMm = (BASE_PX / Math.max(sa.width * sa.mmW, sa.height * sa.mmH, 1e-6)) * model.get("zoom");
    for (const canvas of canvases) {
      canvas.style.width = `${g.width * g.mmW * pxPerMm}px`;
      canvas.style.height = `${g.height * g.mmH * pxPerMm}px`;
    }
  }

  function draw() {
    showMessage();
    if (!volume || model.get("message") || error) return;
    if (refused()) {
      for (const ctx of contexts) ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height);
      el.dataset.volumeId = "";
      return;
    }
    const t0 = performance.now();
    const view = model.get("view");
    const g = geometry(volume.shape, model.get("spacing"), view);
    if (g.n < 1) return;
    const k = Math.max(0, Math.min(model.get("slice_index"), g.n - 1));
    const size = g.width * g.height;
    const grey = new Uint8Array(size);
    const codes = new Uint8Array(size);
    copySlice(volume.image, volume.shape, view, k, grey);
    copySlice(volume.labels, volume.shape, view, k, codes);

    const [mriCtx, labelCtx] = contexts;
    for (const canvas of canvases) {
      if (canvas.width !== g.width || canvas.height !== g.height) {
        canvas.width = g.width;
        canvas.height = g.height;
      }
    }
    const mri = mriCtx.createImageData(g.width, g.height);
    const lab = labelCtx.createImageData(g.width, g.height);
    const alpha = model.get("overlay") ? model.get("alpha") : 0;
    for (let p = 0, q = 0; p < size; p++, q += 4) {
      const v = lut[grey[p]];
      const code = codes[p];
      const on = codeOn[code];
      const c = code * 3;
      const a = on ? alpha : 0;
      mri.data[q] = v + (codeRgb[c] - v) * a;
      mri.data[q + 1] = v + (codeRgb[c + 1] - v) * a;
      mri.data[q + 2] = v + (codeRgb[c + 2] - v) * a;
      mri.data[q + 3] = 255;
      lab.data[q] = on ? codeRgb[c] : 0;
      lab.data[q + 1] = on ? codeRgb[c + 1] : 0;
      lab.data[q + 2] = on ? codeRgb[c + 2] : 0;
      lab.data[q + 3] = 255;
    }
    mriCtx.putImageData(mri, 0, 0);
    labelCtx.putImageData(lab, 0, 0);
    status.textContent = `slice ${k + 1} / ${g.n}`;
    // Exposed for the browser tests (paint time, which slice is on screen).
    el.dataset.slice = String(k);
    el.dataset.volumeId = volume.id;
    el.dataset.draws = String(++draws);
    el.dataset.paintMs = (performance.now() - t0).toFixed(3);
  }

  async function load() {
    const mine = ++generation;
    loading = true;
    const shape = model.get("shape").slice();
    const id = model.get("volume_id");
    const n = shape[0] * shape[1] * shape[2];
    el.dataset.ready = "0";
    try {
      const [image, labels] = await Promise.all([inflate(model.get("image")), inflate(model.get("labels"))]);
      if (mine !== generation) return;
      if (n === 0 || image.length === 0) {
        volume = null;
        error = "";
      } else if (image.length !== n || (labels.length && labels.length !== n)) {
        volume = null;
        error = `The volume has ${image.length} voxels but its shape ${shape.join(" x ")} needs ${n}.`;
      } else {
        volume = { image, labels: labels.length ? labels : new Uint8Array(n), shape, id };
        error = "";
      }
    } catch (err) {
      if (mine !== generation) return;
      volume = null;
      error = `The volume could not be decoded: ${err}.`;
    }
    loading = false;
    layout();
    draw();
    el.dataset.ready = volume ? "1" : "0";
  }

  // image, labels and shape arrive in one message; decode once for the three change events.
  let loadQueued = false;
  function queueLoad() {
    if (loadQueued) return;
    loadQueued = true;
    loading = true;
    queueMicrotask(() => {
      loadQueued = false;
      load();
    });
  }

  let wheelDelta = 0;
  function onWheel(event) {
    if (!volume) return;
    event.preventDefault();
    // Trackpads send many small deltas, mouse wheels one large one per notch: one slice per ~notch.
    wheelDelta += event.deltaMode === 1 ? event.deltaY * 33 : event.deltaY;
    if (Math.abs(wheelDelta) < 50) return;
    const n = geometry(volume.shape, model.get("spacing"), model.get("view")).n;
    const next = Math.max(0, Math.min(model.get("slice_index") + Math.sign(wheelDelta), n - 1));
    wheelDelta = 0;
    if (next !== model.get("slice_index")) {
      model.set("slice_index", next);
      model.save_changes();
    }
  }
  panels.addEventListener("wheel", onWheel, { passive: false });

  const handlers = [
    ["change:image change:labels change:shape change:volume_id", queueLoad],
    // After the whole message: its new volume, if any, has queued its load by then.
    ["change:case_id", () => queueMicrotask(draw)],
    ["change:window", () => (buildLut(), draw())],
    ["change:colours change:visible change:structures", () => (buildColours(), draw())],
    ["change:slice_index change:overlay change:alpha change:message", draw],
    ["change:view change:spacing", () => (layout(), placeLetters(), draw())],
    ["change:orientation", placeLetters],
    ["change:zoom", layout],
  ];
  for (const [events, handler] of handlers) for (const name of events.split(" ")) model.on(name, handler);

  buildLut();
  buildColours();
  placeLetters();
  showMessage();
  load();

  return () => {
    generation++;
    panels.removeEventListener("wheel", onWheel);
    for (const [events, handler] of handlers) for (const name of events.split(" ")) model.off(name, handler);
  };
}

// Play lives on the model, not the view, so a widget shown twice does not advance twice per tick.
function initialize({ model }) {
  let timer = null;
  function tick() {
    const shape = model.get("shape");
    const n = geometry(shape, model.get("spacing"), model.get("view")).n;
    if (!n || model.get("message")) return;
    model.set("slice_index", (model.get("slice_index") + 1) % n);
    model.save_changes();
  }
  function update() {
    clearInterval(timer);
    timer = model.get("playing") ? setInterval(tick, 1000 / Math.max(1, Math.min(model.get("fps"), 20))) : null;
  }
  model.on("change:playing", update);
  model.on("change:fps", update);
  update();
  return () => {
    clearInterval(timer);
    model.off("change:playing", update);
    model.off("change:fps", update);
  };
}

export default { initialize, render };
