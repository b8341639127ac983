// Slice viewer for cmrqc_widgets (anywidget ES module, no build step, no imports; the kernel puts
// volume_store.js and slice_views.js in front of this file: asBytes, inflate, describe, describeKey,
// volumeStore; drawPhaseMosaics, otherPhaseRefusal, drawThreeViews, threePlanes, threeCentres,
// structureCentre, planesAt, layoutByMm).
//
// The kernel sends one phase of one patient once, as a volume message (uint8 MRI 0..255 and uint8
// structure codes, zlib-compressed, [slices, rows, cols]) kept in the store, and names the volume
// to paint in `volume_key`. Everything a slice step needs is here, so a step is painted from memory
// instead of a 50-66 ms kernel round trip; and once the case is painted the kernel sends the
// neighbours' volumes, so the next patient is usually painted from memory too. The kernel stays
// the source of truth: we only read traits, and write `slice_index` back (wheel, play).
//
// Never the wrong patient: `volume_id` names the case the volume was chosen for and `case_id` the
// case the review state shows ("<serial>:<phase>:<patient>"); the volume's key names the case it
// was packed from. A volume whose id is not `case_id`, or whose key is another patient or phase,
// is never painted: the canvases are cleared and, unless its replacement is still on its way, the
// viewer says which case it could not show. Only the volume `volume_key` names is ever looked up,
// but for one exception: on a next/previous-patient key, the volume the kernel announced for that
// key (`ahead`) is painted at once, named in the page, until the kernel's answer (see "ahead").
// The mosaic's other phase is `other_key`'s volume, painted only when its key is the patient of
// `case_id` in the other phase; until then its half says "ES loading…" (or "ED loading…").

const BASE_PX = 320; // CSS pixels of the larger short-axis extent at zoom 1 before the first layout
const UNKNOWN = 255; // structure code of a label value the label map does not name
const UNKNOWN_RGB = [160, 160, 160];

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

const NOTE = `<div class="cmrqc-sv-note" hidden></div>`; // "ES loading…" in a mosaic half

// A text field has focus (as hotkeys.js decides): its keys are typing, never a move.
const NON_TEXT_INPUTS = new Set(["checkbox", "radio", "range", "button", "submit", "reset", "color", "file"]);
function typingIn(target) {
  if (!target || !target.tagName) return false;
  if (target.isContentEditable || target.tagName === "TEXTAREA") return true;
  return target.tagName === "INPUT" && !NON_TEXT_INPUTS.has(String(target.type || "text").toLowerCase());
}

// Orientation letters: one span per edge of each image, filled from the `orientation` trait.
const EDGES = ["left", "right", "top", "bottom"].map((e) => `<span class="cmrqc-sv-or" data-edge="${e}"></span>`).join("");

function render({ model, el }) {
  el.classList.add("cmrqc-slice-viewer");
  el.innerHTML = `
    <div class="cmrqc-sv-message" hidden></div>
    <div class="cmrqc-sv-panels">
      <figure><div class="cmrqc-sv-frame"><canvas class="cmrqc-sv-mri"></canvas>${EDGES}${NOTE}</div>
        <figcaption>MRI</figcaption></figure>
      <figure><div class="cmrqc-sv-frame"><canvas class="cmrqc-sv-labels"></canvas>${EDGES}${NOTE}</div>
        <figcaption>Labels</figcaption></figure>
      <figure hidden><div class="cmrqc-sv-frame"><canvas class="cmrqc-sv-third"></canvas></div>
        <figcaption>VLA</figcaption></figure>
    </div>
    <div class="cmrqc-sv-status"></div>`;
  const messageEl = el.querySelector(".cmrqc-sv-message");
  const panels = el.querySelector(".cmrqc-sv-panels");
  const status = el.querySelector(".cmrqc-sv-status");
  const canvases = [el.querySelector(".cmrqc-sv-mri"), el.querySelector(".cmrqc-sv-labels")];
  const contexts = canvases.map((canvas) => canvas.getContext("2d"));
  const third = el.querySelector(".cmrqc-sv-third");
  const figures = [...el.querySelectorAll(".cmrqc-sv-panels > figure")];
  const notes = [...el.querySelectorAll(".cmrqc-sv-note")];

  let volume = null; // { image, labels, shape, bbox, id, key } once decoded
  let other = null; // the current patient's other phase { image, labels, shape, key }, once decoded
  let otherRefused = ""; // whose volume `other_key` named when it was not this patient's other phase
  let otherGeneration = 0;
  let generation = 0; // drops a decode that finished after a newer volume was named
  const store = volumeStore(); // volumes sent by the kernel, by key
  let wanted = ""; // key asked of the kernel ("want") and not come yet
  let error = "";
  let loading = false; // a volume is being decoded (a refused one is then only blanked)
  let draws = 0;
  const lut = new Uint8Array(256); // window/level: sent intensity -> grey
  const codeRgb = new Uint8Array(256 * 3); // structure code -> colour
  const codeOn = new Uint8Array(256); // structure code -> drawn?

  function buildLut() {
    const [low, high] = shown("window");
    const span = Math.max(high - low, 1e-6);
    for (let v = 0; v < 256; v++) lut[v] = Math.max(0, Math.min(255, Math.round(((v - low) / span) * 255)));
  }

  function invertLut() {
    if (model.get("invert")) for (let v = 0; v < 256; v++) lut[v] = 255 - lut[v];
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

  // The volume held is not the case on screen (identity check; the kernel checks it too): the
  // case it was chosen for, or the case its bytes were packed from, is another. Returns whose it is.
  function refused() {
    const expected = guess ? guess.case_id : model.get("case_id");
    if (!volume || !expected) return "";
    if (volume.id !== expected) return describe(volume.id);
    const source = describeKey(volume.key);
    return source === describe(expected) ? "" : source;
  }

  function placeLetters() {
    const letters = (shown("orientation") || {})[model.get("view")] || {};
    for (const span of el.querySelectorAll(".cmrqc-sv-or")) span.textContent = letters[span.dataset.edge] || "";
  }

  function showMessage() {
    let text = model.get("message") || error;
    if (!text && refused() && !loading) {
      text = `Could not show ${describe(model.get("case_id"))}: the images received are those of ${refused()}.`;
    }
    messageEl.textContent = text;
    messageEl.hidden = !text;
    panels.hidden = status.hidden = Boolean(text) || !volume;
  }

  // CSS size only: zoom, pan and pixel aspect never need a repaint (image-rendering: pixelated).
  // Each panel is a fixed frame that grows with the window (frameSize); zoom magnifies inside it,
  // centred on the heart (the labels' bounding box) and moved by dragging (see "pan and window").
  function layout() {
    if (!volume) return;
    const mode = screenMode();
    if (mode !== "single") {
      const centres = mode === "three" ? threeCentres(volume.shape, volume.lvCentre, bbox) : []; // zoomed: on the heart
      layoutByMm(mode === "three" ? [...canvases, third] : canvases, frameSize(), model.get("zoom"), centres);
      el.dataset.frame = String(Math.round(frameSize()));
      return;
    }
    const g = geometry(volume.shape, shown("spacing"), model.get("view"));
    const sa = geometry(volume.shape, shown("spacing"), "sa");
    const frame = frameSize();
    const pxPerMm = (frame / Math.max(sa.width * sa.mmW, sa.height * sa.mmH, 1e-6)) * model.get("zoom");
    const width = g.width * g.mmW * pxPerMm;
    const height = g.height * g.mmH * pxPerMm;
    const [cx, cy] = heartCentre(g);
    const left = place(width, frame, (cx / g.width) * width, pan.x);
    const top = place(height, frame, (cy / g.height) * height, pan.y);
    for (const canvas of canvases) {
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
      canvas.style.left = `${left}px`;
      canvas.style.top = `${top}px`;
      canvas.parentElement.style.width = canvas.parentElement.style.height = `${frame}px`;
    }
    el.dataset.frame = String(Math.round(frame));
  }

  function draw() {
    showMessage();
    if (!volume || model.get("message") || error) return;
    if (refused()) {
      for (const canvas of [...canvases, third]) canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
      el.dataset.volumeId = "";
      return;
    }
    if (volume.id !== named) nameInPage();
    const mode = screenMode();
    showPanels(mode);
    el.dataset.volumeId = volume.id;
    el.dataset.volumeKey = volume.key;
    if (mode === "mosaic") return drawBothMosaics();
    if (mode === "three") return drawThree();
    const t0 = performance.now();
    const view = model.get("view");
    const g = geometry(volume.shape, shown("spacing"), view);
    if (g.n < 1) return;
    const k = Math.max(0, Math.min(shown("slice_index"), g.n - 1));
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
    paintTile(mri, lab, 0, 0, grey, codes, g.width, g.height);
    mriCtx.putImageData(mri, 0, 0);
    labelCtx.putImageData(lab, 0, 0);
    status.textContent = `slice ${k + 1} / ${g.n}`;
    // Exposed for the browser tests (paint time, which slice is on screen).
    el.dataset.slice = String(k);
    el.dataset.volumeId = volume.id;
    el.dataset.volumeKey = volume.key;
    el.dataset.draws = String(++draws);
    el.dataset.paintMs = (performance.now() - t0).toFixed(3);
  }

  // --- painting: one slice into a tile of an image, filled or outlined overlay (issue 12) ------
  // Paint slice pixels `grey` and structure codes `codes` (w x h) at (x0, y0) of the MRI image
  // `mri` and the labels image `lab`. Outline mode colours only a structure's edge pixels (a
  // 4-neighbour with another code), opaque, so the MRI under the structure stays visible.
  function paintTile(mri, lab, x0, y0, grey, codes, w, h) {
    const alpha = model.get("overlay") ? model.get("alpha") : 0;
    const outline = model.get("contour");
    const stride = mri.width;
    for (let y = 0, p = 0; y < h; y++) {
      for (let x = 0; x < w; x++, p++) {
        const q = ((y0 + y) * stride + x0 + x) * 4;
        const v = lut[grey[p]];
        const code = codes[p];
        const on = codeOn[code];
        const c = code * 3;
        let a = on ? alpha : 0;
        if (outline && on) {
          const edge =
            x === 0 || y === 0 || x === w - 1 || y === h - 1 ||
            codes[p - 1] !== code || codes[p + 1] !== code || codes[p - w] !== code || codes[p + w] !== code;
          a = edge && alpha > 0 ? 1 : 0;
        }
        mri.data[q] = v + (codeRgb[c] - v) * a;
        mri.data[q + 1] = v + (codeRgb[c + 1] - v) * a;
        mri.data[q + 2] = v + (codeRgb[c + 2] - v) * a;
        mri.data[q + 3] = 255;
        lab.data[q] = on ? codeRgb[c] : 0;
        lab.data[q + 1] = on ? codeRgb[c + 1] : 0;
        lab.data[q + 2] = on ? codeRgb[c + 2] : 0;
        lab.data[q + 3] = 255;
      }
    }
  }

  // --- whole-heart modes (issue 12; the drawing is in slice_views.js) ------------------------
  function screenMode() {
    if (model.get("mosaic")) return "mosaic";
    return model.get("three_views") ? "three" : "single";
  }

  const CAPTIONS = { single: ["MRI", "Labels", ""], mosaic: ["ED", "ES", ""], three: ["Short axis", "HLA", "VLA"] };
  function showPanels(mode) {
    figures[2].hidden = mode !== "three";
    figures.forEach((figure, i) => (figure.querySelector("figcaption").textContent = CAPTIONS[mode][i]));
    for (const span of el.querySelectorAll(".cmrqc-sv-or")) span.hidden = mode !== "single";
    if (mode !== "mosaic") for (const note of notes) note.hidden = true;
    el.dataset.mode = mode;
  }

  // ED left, ES right, whichever phase is current (drawPhaseMosaics): the other half from `other`
  // (checked in selectOther), or "ES loading…" on a blank canvas while the browser lacks it.
  function drawBothMosaics() {
    const t0 = performance.now();
    const [, phase] = String(model.get("case_id")).split(":");
    const caption = (i) => figures[i].querySelector("figcaption");
    const panes = [0, 1].map((i) => ({ canvas: canvases[i], note: notes[i], caption: caption(i) }));
    const drawn = drawPhaseMosaics(panes, phase, volume, other, otherRefused, shown("spacing"), paintTile);
    el.dataset.mosaicEd = drawn.ED;
    el.dataset.mosaicEs = drawn.ES;
    el.dataset.mosaic = drawn[phase === "ES" ? "ES" : "ED"];
    layout();
    status.textContent = `all ${volume.shape[0]} slices, ED and ES (mosaic)`;
    el.dataset.draws = String(++draws);
    el.dataset.paintMs = (performance.now() - t0).toFixed(3);
  }

  // Short axis at the current slice, the long axes through the LV's centre (the slice centre
  // without an LV; when the view is a long axis, through its slice), each with the others' planes.
  function drawThree() {
    const t0 = performance.now();
    const lv = model.get("structures").indexOf("LV") + 1;
    if (volume.lvCentre === undefined) volume.lvCentre = lv ? structureCentre(volume, lv) : null;
    // volume.placed: long-axis planes the reviewer clicked on this volume.
    const at = threePlanes(volume.shape, model.get("view"), model.get("slice_index"), volume.lvCentre, volume.placed);
    const where = drawThreeViews([...canvases, third], volume, model.get("spacing"), at, paintTile);
    threeDrawn = where;
    layout();
    status.textContent = `slice ${at.sa + 1} / ${volume.shape[0]} with both long axes`;
    el.dataset.slice = String(at.sa);
    el.dataset.cross = JSON.stringify(where);
    el.dataset.draws = String(++draws);
    el.dataset.paintMs = (performance.now() - t0).toFixed(3);
  }

  // A click (no drag) on one of the three views places the other planes there: the long axes in
  // the display only, the short-axis slice through the kernel (as the wheel does).
  let threeDrawn = null;
  function placePlanes(event) {
    const pane = [...canvases, third].indexOf(event.target);
    if (pane < 0 || !threeDrawn) return;
    const canvas = event.target;
    const rect = canvas.getBoundingClientRect();
    const x = ((event.clientX - rect.left) / rect.width) * canvas.width;
    const y = ((event.clientY - rect.top) / rect.height) * canvas.height;
    const planes = planesAt(pane, x, y, threeDrawn);
    volume.placed = { ...volume.placed, ...planes };
    const slice = Math.max(0, Math.min(volume.shape[0] - 1, planes.slice ?? -1));
    if (planes.slice !== undefined && model.get("view") === "sa" && slice !== model.get("slice_index")) {
      model.set("slice_index", slice);
      model.save_changes(); // its change event repaints
    } else {
      draw();
    }
  }

  // The other phase of the patient on screen, as the kernel names it in `other_key`: painted only
  // when the key's patient and phase are those of `case_id` with the other phase.
  async function selectOther() {
    const mine = ++otherGeneration;
    const key = model.get("other_key");
    if (other && other.key !== key) other = null;
    otherRefused = otherPhaseRefusal(model.get("case_id"), key);
    if (!key || otherRefused) {
      other = null;
      if (screenMode() === "mosaic") draw();
      return;
    }
    const pending = store.get(key);
    if (!pending) {
      if (screenMode() === "mosaic" && wanted !== key) {
        wanted = key;
        model.send({ type: "want", key });
      }
      if (screenMode() === "mosaic") draw();
      return;
    }
    try {
      const decoded = await pending;
      if (mine !== otherGeneration) return;
      other = { ...decoded, key };
    } catch {
      if (mine !== otherGeneration) return;
      other = null;
    }
    if (screenMode() === "mosaic") draw();
  }

  let otherQueued = false;
  function queueOther() {
    if (otherQueued) return;
    otherQueued = true;
    queueMicrotask(() => {
      otherQueued = false;
      selectOther();
    });
  }

  // --- frame size, heart centre, pan and window drag (issue 12) ------------------------------
  // The two frames share the viewer's width and leave room under them for the controls.
  const MIN_FRAME = 240;
  const RESERVED_HEIGHT = 500; // header, strip, slice and display controls, decisions, comment
  function frameSize() {
    const panes = screenMode() === "three" ? 3 : 2;
    const width = (el.clientWidth || 2 * BASE_PX + 8) - 8 * (panes - 1);
    const byWidth = width / panes;
    const byHeight = window.innerHeight - RESERVED_HEIGHT;
    return Math.max(MIN_FRAME, Math.floor(Math.min(byWidth, byHeight)));
  }

  let bbox = null; // [s0, s1, r0, r1, c0, c1] of the labelled voxels, or null when none
  function labelBox(labels, shape) {
    const [s, r, c] = shape;
    let box = null;
    for (let z = 0, q = 0; z < s; z++)
      for (let y = 0; y < r; y++)
        for (let x = 0; x < c; x++, q++) {
          if (!labels[q]) continue;
          if (!box) box = [z, z, y, y, x, x];
          else {
            if (z > box[1]) box[1] = z;
            if (y < box[2]) box[2] = y;
            if (y > box[3]) box[3] = y;
            if (x < box[4]) box[4] = x;
            if (x > box[5]) box[5] = x;
          }
        }
    return box;
  }

  // Heart centre in the pixels of the current view's slice; the slice centre without labels.
  function heartCentre(g) {
    if (!bbox) return [g.width / 2, g.height / 2];
    const mid = (a, b) => (a + b + 1) / 2;
    const view = model.get("view");
    if (view === "hla") return [mid(bbox[4], bbox[5]), mid(bbox[0], bbox[1])];
    if (view === "vla") return [mid(bbox[2], bbox[3]), mid(bbox[0], bbox[1])];
    return [mid(bbox[4], bbox[5]), mid(bbox[2], bbox[3])];
  }

  // Offset of an image `size` px long in a frame `frame` px long: centred when it fits, else the
  // point `at` in the middle of the frame (moved by `shift`), never leaving a gap at an edge.
  function place(size, frame, at, shift) {
    if (size <= frame) return (frame - size) / 2;
    return Math.min(0, Math.max(frame - size, frame / 2 - at + shift));
  }

  const pan = { x: 0, y: 0 };
  let drag = null;
  function onPointerDown(event) {
    if (!volume || (event.button !== 0 && event.button !== 2)) return;
    event.preventDefault();
    const windowDrag = event.button === 2 || event.shiftKey;
    const target = event.target;
    drag = { x: event.clientX, y: event.clientY, pan: { ...pan }, window: model.get("window"), windowDrag, target };
    panels.setPointerCapture(event.pointerId);
  }
  function onPointerMove(event) {
    if (!drag) return;
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    if (drag.windowDrag) {
      // Right button (or Shift): left/right widens/narrows the window, up/down brightens/darkens.
      const [low, high] = drag.window;
      const width = Math.max(2, high - low + dx * 0.5);
      const level = Math.max(0, Math.min(255, (low + high) / 2 - dy * 0.5));
      const next = [Math.max(0, level - width / 2), Math.min(255, level + width / 2)];
      if (next[1] - next[0] >= 1) {
        model.set("window", [Math.round(next[0]), Math.round(next[1])]);
        model.save_changes();
      }
    } else {
      pan.x = drag.pan.x + dx;
      pan.y = drag.pan.y + dy;
      layout();
    }
  }
  function onPointerUp(event) {
    const click = drag && !drag.windowDrag && Math.hypot(event.clientX - drag.x, event.clientY - drag.y) < 4;
    if (click && screenMode() === "three") {
      placePlanes({ target: drag.target, clientX: event.clientX, clientY: event.clientY });
    }
    drag = null;
  }
  const noMenu = (event) => event.preventDefault();
  panels.addEventListener("pointerdown", onPointerDown);
  panels.addEventListener("pointermove", onPointerMove);
  panels.addEventListener("pointerup", onPointerUp);
  panels.addEventListener("pointercancel", onPointerUp);
  panels.addEventListener("contextmenu", noMenu);
  const resize = new ResizeObserver(() => layout());
  resize.observe(el);
  window.addEventListener("resize", layout);

  // --- ahead: the next patient painted at the key, before the kernel's answer (issue 14) -------
  // The kernel announces in `ahead` the case each patient key (`ahead_keys`) will show from the
  // case on screen. On such a key, if the viewer shows that case, no earlier move is unanswered
  // and the announced volume is decoded here, it is painted at once with what the switch will set
  // (slice, window, spacing, letters) and its patient is named in the page; the key still goes to
  // the kernel (hotkeys.js). The kernel's answer ends the guess (select() paints its choice, the
  // same volume or another); no answer within ANSWER_MS puts the kernel's case back.
  const ANSWER_MS = 3000;
  let guess = null; // the announced case painted, until the kernel answers
  let guessTimer = null;
  let unanswered = 0; // patient keys sent since the kernel's last answer
  let lastMoveAt = 0;
  let answer = `${model.get("case_id")}|${model.get("volume_key")}`;

  // A trait as the case painted sets it: the guess's while there is one, else the kernel's.
  function shown(name) {
    if (!guess) return model.get(name);
    if (name === "slice_index") return guess.slice;
    return name in guess ? guess[name] : model.get(name);
  }

  function onMoveKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typingIn(event.target)) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const keys = model.get("ahead_keys") || {};
    const move = ["next", "prev"].find((m) => (keys[m] || []).includes(key));
    if (!move || !el.isConnected || el.closest(".cmrqc-offline")) return; // offline: no key is sent
    const now = performance.now();
    if (now - lastMoveAt > ANSWER_MS) unanswered = 0; // a key the kernel ignored
    lastMoveAt = now;
    if (unanswered++ === 0) paintAhead(move);
  }

  function paintAhead(move) {
    const ahead = model.get("ahead") || {};
    const next = ahead[move];
    const here = model.get("case_id");
    if (!next || guess || loading || error || model.get("message") || !volume) return;
    if (ahead.from !== here || volume.id !== here || refused()) return;
    if (screenMode() !== "single") return; // a mosaic's other half and the three views wait for the kernel
    if (describeKey(next.key) !== describe(next.case_id)) return; // the key's case is the one named
    const decoded = store.decodedNow(next.key);
    if (!decoded || decoded.shape.join() !== next.shape.join()) return;
    const n = geometry(next.shape, next.spacing, model.get("view")).n;
    guess = { ...next, slice: Math.floor(n / 2) }; // a new patient opens at the middle slice
    volume = { ...decoded, id: next.case_id, key: next.key };
    if (!decoded.bbox) decoded.bbox = labelBox(decoded.labels, decoded.shape);
    bbox = decoded.bbox;
    pan.x = pan.y = 0;
    buildLut();
    invertLut();
    placeLetters();
    layout();
    draw();
    el.dataset.ahead = "1";
    el.dataset.fromMemory = "1";
    el.dataset.ready = "1";
    guessTimer = setTimeout(() => guess && select(), ANSWER_MS);
  }

  function endGuess() {
    if (!guess) return;
    guess = null;
    clearTimeout(guessTimer);
    buildLut();
    invertLut();
    placeLetters();
  }

  // The kernel's answer (one per message, whichever of its traits changed): a guess ends now.
  function answered() {
    const now = `${model.get("case_id")}|${model.get("volume_key")}`;
    if (now === answer) return;
    answer = now;
    unanswered = Math.max(0, unanswered - 1);
    endGuess();
  }

  // The patient named in the page is the one painted: the viewer's data-patient, and the header's
  // and title's names follow every new volume painted, in the same frame (the kernel's own header
  // update comes a message later, and with the same name once the kernel has chosen).
  let named = "";
  let nameWatch = null;
  function nameInPage() {
    if (!volume || refused() || panels.hidden) return;
    named = volume.id;
    const ours = guess && guess.case_id === volume.id;
    const label = ours ? guess.label : describe(volume.id).replace(/ [^ ]*$/, "");
    const phase = ours ? guess.phase : String(volume.id).split(":")[1] || "";
    el.dataset.patient = label;
    const root = el.closest(".cmrqc-review");
    if (!root) return;
    const write = (node, text) => node.textContent !== text && (node.textContent = text);
    for (const node of root.querySelectorAll(".cmrqc-header .cmrqc-patient-name")) write(node, label);
    for (const node of root.querySelectorAll(".cmrqc-title-case")) write(node, `${label} ${phase}`);
    if (!nameWatch) {
      // A header or title redrawn by the kernel meanwhile (a save, a check) says the painted patient.
      const watched = [root.querySelector(".cmrqc-header"), root.querySelector(".cmrqc-title")];
      if (watched.some((node) => !node)) return;
      nameWatch = new MutationObserver(() => nameInPage());
      const options = { subtree: true, childList: true, characterData: true };
      nameWatch.observe(watched[0], options);
      nameWatch.observe(watched[1].parentElement, options);
    }
  }

  // Show the volume the kernel names: from the store (kept ahead, or sent with the switch), else
  // ask for it and wait (its message calls this again). Nothing but `volume_key` is looked up.
  async function select() {
    const mine = ++generation;
    const key = model.get("volume_key");
    const id = model.get("volume_id");
    endGuess(); // the kernel's choice is shown, whatever was painted ahead
    el.dataset.ahead = "0";
    el.dataset.ready = "0";
    el.dataset.namedAt = performance.now().toFixed(1); // when the kernel's choice arrived (benchmarks)
    el.dataset.fromMemory = store.has(key) ? "1" : "0";
    const pending = key ? store.get(key) : undefined;
    if (key && !pending) {
      loading = true;
      if (wanted !== key) {
        wanted = key;
        model.send({ type: "want", key });
      }
      draw(); // blanks a volume refused meanwhile
      return;
    }
    loading = true;
    try {
      const decoded = pending ? await pending : null;
      if (mine !== generation) return;
      const shape = model.get("shape");
      if (decoded && decoded.shape.join() !== shape.join()) {
        throw new Error(`its shape ${decoded.shape.join(" x ")} is not ${shape.join(" x ")}`);
      }
      const again = Boolean(volume && decoded && volume.key === key);
      volume = decoded ? { ...decoded, id, key } : null;
      error = "";
      if (decoded && !decoded.bbox) decoded.bbox = labelBox(decoded.labels, decoded.shape);
      bbox = decoded ? decoded.bbox : null;
      if (!again) pan.x = pan.y = 0;
    } catch (err) {
      if (mine !== generation) return;
      volume = null;
      error = `The volume could not be decoded: ${err.message || err}.`;
    }
    loading = false;
    layout();
    draw();
    el.dataset.ready = volume ? "1" : "0";
    if (volume && !refused()) model.send({ type: "painted", key });
  }

  // volume_key, volume_id and shape arrive in one message: select once for the change events.
  let selectQueued = false;
  function queueSelect() {
    if (selectQueued) return;
    selectQueued = true;
    loading = true;
    queueMicrotask(() => {
      selectQueued = false;
      select();
    });
  }

  // A volume from the kernel: kept; shown at once if it is the one named and not yet shown.
  function onMessage(msg, buffers) {
    if (!msg || msg.type !== "volume" || typeof msg.key !== "string" || !Array.isArray(msg.shape)) return;
    store.put(msg.key, msg.shape, buffers || []);
    el.dataset.kept = store.keys().join("\n"); // for the browser tests: what is held
    if (msg.key === wanted) wanted = "";
    if (msg.key === model.get("volume_key") && !(volume && volume.key === msg.key)) queueSelect();
    if (msg.key === model.get("other_key") && !(other && other.key === msg.key)) queueOther();
  }
  model.on("msg:custom", onMessage);

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
    ["change:volume_key change:volume_id change:case_id", answered], // first: a guess ends here
    ["change:volume_key change:shape change:volume_id", queueSelect],
    // After the whole message: its new volume, if any, has queued its load by then.
    ["change:case_id", () => (queueOther(), queueMicrotask(draw))],
    ["change:other_key", queueOther],
    ["change:window change:invert", () => (buildLut(), invertLut(), draw())],
    ["change:colours change:visible change:structures", () => (buildColours(), draw())],
    ["change:slice_index change:overlay change:alpha change:message change:contour", draw],
    ["change:mosaic change:three_views", () => (queueOther(), layout(), draw(), layout())],
    ["change:view change:spacing", () => (layout(), placeLetters(), draw())],
    ["change:orientation", placeLetters],
    ["change:zoom", layout],
  ];
  for (const [events, handler] of handlers) for (const name of events.split(" ")) model.on(name, handler);

  window.addEventListener("keydown", onMoveKey, true); // before hotkeys.js sends the key (document)
  buildLut();
  invertLut();
  buildColours();
  placeLetters();
  showMessage();
  select();
  selectOther();

  return () => {
    generation++;
    model.off("msg:custom", onMessage);
    panels.removeEventListener("wheel", onWheel);
    panels.removeEventListener("pointerdown", onPointerDown);
    panels.removeEventListener("pointermove", onPointerMove);
    panels.removeEventListener("pointerup", onPointerUp);
    panels.removeEventListener("pointercancel", onPointerUp);
    panels.removeEventListener("contextmenu", noMenu);
    resize.disconnect();
    window.removeEventListener("resize", layout);
    window.removeEventListener("keydown", onMoveKey, true);
    clearTimeout(guessTimer);
    if (nameWatch) nameWatch.disconnect();
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
