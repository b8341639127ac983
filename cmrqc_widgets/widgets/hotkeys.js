// Keys, comment commits and the kernel heartbeat of the review screen (anywidget ES module).
//
// One listener on the whole document, in the capture phase: a shortcut key works wherever the
// mouse is and whatever button or slider has focus, and is never seen by that control (so an arrow
// does not move a focused slider as well). Keys typed in a text field are never touched.

const NON_TEXT_INPUTS = new Set(["checkbox", "radio", "range", "button", "submit", "reset", "color", "file"]);
const COMMENT = ".cmrqc-comment textarea";

function isTyping(target) {
  if (!target || !target.tagName) return false;
  if (target.isContentEditable) return true;
  if (target.tagName === "TEXTAREA") return true;
  if (target.tagName === "INPUT") return !NON_TEXT_INPUTS.has(String(target.type || "text").toLowerCase());
  return false;
}

function normalise(key) {
  return key.length === 1 ? key.toLowerCase() : key;
}

function render({ model, el }) {
  el.classList.add("cmrqc-hotkeys");
  const overlay = document.createElement("div");
  overlay.className = "cmrqc-keys-overlay";
  overlay.hidden = true;
  const banner = document.createElement("div");
  banner.className = "cmrqc-offline-banner";
  banner.setAttribute("role", "alert");
  banner.hidden = true;
  document.body.append(overlay, banner);

  function fillOverlay() {
    const rows = model
      .get("help_rows")
      .map(([keys, what]) => `<tr><th>${escapeHtml(keys)}</th><td>${escapeHtml(what)}</td></tr>`)
      .join("");
    overlay.innerHTML = `<div class="cmrqc-keys-card"><h4>Keys</h4><table>${rows}</table>
      <p>Keys never act while you type in a text box. <kbd>?</kbd> or <kbd>Esc</kbd> closes this.</p></div>`;
  }
  fillOverlay();

  function send(message) {
    try {
      model.send(message);
    } catch (err) {
      // The kernel is gone; the heartbeat says so on screen.
    }
  }

  // --- the comment box: saved when left and when the page is hidden or closed ---------------
  let dirty = false;
  let dirtyCase = "";
  function commit() {
    const box = document.querySelector(COMMENT);
    if (!dirty || !box) return;
    dirty = false;
    send({ type: "commit", text: box.value, case: dirtyCase });
  }
  function onInput(event) {
    if (!event.target.closest || !event.target.closest(".cmrqc-comment")) return;
    if (!dirty) dirtyCase = model.get("case_key");
    dirty = true; // the kernel saves the draft itself once the typing pauses
  }
  function onFocusOut(event) {
    if (event.target.closest && event.target.closest(".cmrqc-comment")) commit();
  }
  function onVisibility() {
    if (document.visibilityState === "hidden") commit();
  }

  // --- keys ---------------------------------------------------------------------------------
  function take(event) {
    event.preventDefault();
    event.stopPropagation();
  }
  function onKey(event) {
    const target = event.target;
    if (isTyping(target)) {
      if (event.key === "Escape" && target.closest && target.closest(".cmrqc-comment")) {
        take(event);
        target.blur(); // focusout commits the text
      }
      return;
    }
    if (offline) return;
    const key = normalise(event.key);
    const modified = event.ctrlKey || event.metaKey || event.altKey;
    if (key === "?") {
      take(event);
      overlay.hidden = !overlay.hidden;
      return;
    }
    if (key === "Escape" && !overlay.hidden) {
      take(event);
      overlay.hidden = true;
      return;
    }
    if (key === "c" && !modified) {
      const box = document.querySelector(COMMENT);
      if (box) {
        take(event); // the "c" must not land in the box
        box.focus();
      }
      return;
    }
    const undo = key === "z" && (event.ctrlKey || event.metaKey) && !event.altKey;
    if (!undo && (modified || !model.get("shortcut_keys").includes(key))) return;
    take(event);
    send({
      type: "key",
      event: {
        event: "keydown",
        key: event.key,
        shiftKey: event.shiftKey,
        ctrlKey: event.ctrlKey,
        metaKey: event.metaKey,
        altKey: event.altKey,
        repeat: event.repeat,
        target: { tagName: target && target.tagName ? target.tagName : "", className: "", type: "" },
      },
    });
  }

  // --- heartbeat: a kernel that does not answer is said to be lost ---------------------------
  let offline = false;
  let ended = false;
  let lastPong = performance.now();
  const disabled = [];
  function lock(text) {
    const root = el.closest(".cmrqc-review") || document.body;
    root.classList.add("cmrqc-offline");
    banner.hidden = false;
    banner.textContent = text;
    for (const control of root.querySelectorAll("button, input, select, textarea")) {
      if (!control.disabled) {
        control.disabled = true;
        disabled.push(control);
      }
    }
    el.dataset.offline = "1";
  }
  function setOffline(lost) {
    if (lost === offline || ended) return; // an ended session stays ended, whatever the heartbeat says
    offline = lost;
    if (lost) {
      const saved = model.get("saved_at").replace(/^saved\s*/, "");
      lock(
        saved
          ? `Connection lost — your decisions up to ${saved} are saved; reload the page.`
          : "Connection lost — every decision you made is saved; reload the page."
      );
    } else {
      const root = el.closest(".cmrqc-review") || document.body;
      root.classList.remove("cmrqc-offline");
      banner.hidden = true;
      for (const control of disabled.splice(0)) control.disabled = false;
      el.dataset.offline = "0";
    }
  }
  // The server replaced this tab's kernel by a newer tab's: say so, for good (never "connection lost").
  function showEnded() {
    const text = model.get("ended");
    if (!text || ended) return;
    ended = true;
    clearInterval(heartbeat);
    lock(text);
    el.dataset.ended = "1";
  }
  function onCustom(message) {
    if (message && message.type === "help") overlay.hidden = !overlay.hidden;
    if (message && message.type === "pong") {
      lastPong = performance.now();
      setOffline(false);
    }
  }
  const heartbeat = setInterval(() => {
    if (performance.now() - lastPong > model.get("offline_ms")) setOffline(true);
    send({ type: "ping" });
  }, model.get("ping_ms"));

  const listeners = [
    [document, "keydown", onKey, true],
    [document, "input", onInput, true],
    [document, "focusout", onFocusOut, true],
    [document, "visibilitychange", onVisibility, false],
    [window, "pagehide", commit, false],
    [window, "beforeunload", commit, false],
  ];
  for (const [target, type, handler, capture] of listeners) target.addEventListener(type, handler, capture);
  model.on("msg:custom", onCustom);
  model.on("change:help_rows", fillOverlay);
  model.on("change:ended", showEnded);
  showEnded();
  el.dataset.ready = "1";

  return () => {
    commit();
    clearInterval(heartbeat);
    for (const [target, type, handler, capture] of listeners) target.removeEventListener(type, handler, capture);
    model.off("msg:custom", onCustom);
    model.off("change:help_rows", fillOverlay);
    model.off("change:ended", showEnded);
    overlay.remove();
    banner.remove();
  };
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export default { render };
