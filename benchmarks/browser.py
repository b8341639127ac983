"""Browser figures: the real dashboard (``cmrqc serve --demo``) in Debian's Chromium via Playwright.

Measured, each in the page with ``performance.now()`` (so Playwright's own latency is not counted):

- time-to-interactive: navigation start to the decision buttons clickable and the slice canvas drawn,
  on fresh pages; the first load is reported apart from the later ones (between loads the server
  is left to go quiet, so a preheated kernel pool can refill as it would between reviewers);
- "next patient" (ArrowDown over the images) from the keydown to the new volume painted, and the
  websocket bytes received for that move;
- slice step by ArrowRight/ArrowLeft (a kernel round trip) and by the mouse wheel (local), from the
  input event to the frame after ``data-slice`` changed;
- play at 20 frames/s: distinct slices painted per second over 3 s;
- "next patient" with the 3D panel open, twice: after the 3D view of each case has been drawn
  (the reviewer looks, then moves on), and moving quickly (the next key 350 ms after each paint,
  the pace of a reviewer passing over cases): the 2D switch must not wait for 3D.

"Painted" means a ``requestAnimationFrame`` callback followed by a task (the frame was produced).
Input times are the events' own time stamps. Chromium hands wheel events to the page aligned to
frames, so headless it delivers them ~20-25 ms after their time stamp, before any of our code runs:
``slice_step_wheel_input_delay_ms`` reports that part (``..._from_dispatch_ms`` the rest);
``slice_step_key_to_change_ms`` is the key's kernel round trip up to ``data-slice`` changing.

Failures end up as messages in ``result["errors"]``; the function never raises for them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cmrqc_widgets.serve.voila import TOKEN_ENV

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USER = "bench"
VIEWPORT = {"width": 1600, "height": 1200}

# Navigation start (performance.timeOrigin) -> now, once the Reject button is clickable and the
# viewer has drawn a volume; false until then.
JS_READY = """() => {
  const el = document.querySelector('.cmrqc-slice-viewer');
  if (!el || el.dataset.ready !== '1' || !(Number(el.dataset.draws) > 0)) return false;
  const btn = [...document.querySelectorAll('button')].find((b) => /Reject \\(R\\)/.test(b.textContent));
  if (!btn || btn.disabled) return false;
  const r = btn.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return false;
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  if (x >= 0 && y >= 0 && x < innerWidth && y < innerHeight) {
    const hit = document.elementFromPoint(x, y);
    if (!hit || !btn.contains(hit)) return false;  // still covered by a spinner or overlay
  }
  return performance.now();
}"""

JS_INSTALL = """() => {
  const b = (window.__bench = { el: document.querySelector('.cmrqc-slice-viewer'), input: null });
  for (const type of ['keydown', 'wheel'])
    window.addEventListener(type, (e) => { b.input = { type, t: e.timeStamp, d: performance.now() }; },
      { capture: true, passive: true });
  return Boolean(b.el);
}"""

# Arm a wait: resolves when the viewer shows what `kind` asks for ('volume': a new volume decoded
# and drawn; 'slice': data-slice changed), one frame later. Python then sends the input.
JS_ARM = """([kind, timeoutMs]) => {
  const b = window.__bench, el = b.el;
  b.input = null;
  const tArm = performance.now(), slice0 = el.dataset.slice, volume0 = el.dataset.volumeId;
  b.pending = new Promise((resolve) => {
    const finish = (error) => {
      obs.disconnect(); clearTimeout(timer);
      const tChange = performance.now(), ahead = el.dataset.ahead === '1';
      const report = () => resolve({ error, tArm, tInput: b.input ? b.input.t : null,
        tDispatch: b.input ? b.input.d : null, tChange,
        tPainted: performance.now(), slice: el.dataset.slice, paintMs: Number(el.dataset.paintMs),
        tNamed: Number(el.dataset.namedAt || NaN), fromMemory: el.dataset.fromMemory === '1',
        ahead });
      if (error) return report();
      requestAnimationFrame(() => {
        const ch = new MessageChannel();
        ch.port1.onmessage = report;
        ch.port2.postMessage(0);
      });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    const obs = new MutationObserver(() => {
      if (kind === 'volume') {
        // Another case's volume drawn (data-volume-id names the case shown; each switch a new one).
        if (el.dataset.ready === '1' && el.dataset.volumeId && el.dataset.volumeId !== volume0) finish(null);
      } else if (el.dataset.slice !== slice0) finish(null);
    });
    obs.observe(el, { attributes: true, attributeFilter: ['data-ready', 'data-slice', 'data-draws'] });
  });
  return true;
}"""

# When the kernel's choice (volume_key) last reached the viewer, once that is after time `t`.
JS_NAMED_AFTER = """(t) => {
  const at = Number(window.__bench.el.dataset.namedAt || NaN);
  return at >= t ? at : false;
}"""

JS_SLICE = """() => {
  const el = window.__bench.el;
  const m = /slice (\\d+) \\/ (\\d+)/.exec(el.querySelector('.cmrqc-sv-status').textContent);
  return m ? [Number(m[1]) - 1, Number(m[2])] : [Number(el.dataset.slice), 1];
}"""

JS_COUNT_PAINTS = """async (ms) => {
  const el = window.__bench.el;
  let last = el.dataset.slice, painted = 0, frames = 0;
  const d0 = Number(el.dataset.draws), t0 = performance.now();
  await new Promise((done) => {
    const frame = () => {
      frames++;
      if (el.dataset.slice !== last) { painted++; last = el.dataset.slice; }
      if (performance.now() - t0 < ms) requestAnimationFrame(frame); else done();
    };
    requestAnimationFrame(frame);
  });
  const s = (performance.now() - t0) / 1000;
  return { painted: painted / s, draws: (Number(el.dataset.draws) - d0) / s, frames: frames / s };
}"""


def _summary(samples: list[float]) -> dict[str, float]:
    """p50, p95 and count, in the shape of ``run.summary``."""
    ordered = sorted(samples)
    if not ordered:
        return {"p50": float("nan"), "p95": float("nan"), "n": 0}
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 3), "p95": round(p95, 3), "n": len(ordered)}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    """``cmrqc serve --demo`` in its own process group, output to ``<root>/serve.log``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}/"
        # `cmrqc serve` asks a token; the first page load carries it and gets the login cookie.
        self.token = secrets.token_urlsafe(16)
        self.url = f"{self.base}?token={self.token}"
        self.log_path = root / "serve.log"
        cmrqc = shutil.which("cmrqc")
        command = [cmrqc] if cmrqc else [sys.executable, "-c", "from cmrqc_widgets.cli import main; main()"]
        self.argv = [*command, "serve", "--demo", "--root", str(root), "--user", USER,
                     "--port", str(self.port), "--ip", "127.0.0.1", "--no-browser"]  # fmt: skip
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ)
        env.pop("JUPYTERHUB_USER", None)
        env[TOKEN_ENV] = self.token
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=self.root, start_new_session=True,
            )  # fmt: skip

    def log_tail(self, chars: int = 1500) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def wait_until_up(self, timeout: float) -> None:
        """Until Voilà answers on its port (any HTTP status); RuntimeError with the log otherwise."""
        # A static file: asking for "/" would start a kernel of its own.
        url = f"{self.base}voila/static/extension.js"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cmrqc serve exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return
            except urllib.error.HTTPError:
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.25)
        raise RuntimeError(f"cmrqc serve did not answer on port {self.port} within {timeout:.0f} s: "
                           f"{self.log_tail()}")  # fmt: skip

    def tree(self) -> list[Any]:
        import psutil

        try:
            top = psutil.Process(self.process.pid)
            return [top, *top.children(recursive=True)]
        except psutil.Error:
            return []

    def preheat(self) -> bool:
        """True when Voilà runs with a preheated kernel pool."""
        import psutil

        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                if any("preheat_kernel=True" in part for part in proc.cmdline()):
                    return True
        return False

    def wait_quiet(self, timeout: float = 60.0, threshold: float = 15.0, at_least: float = 0.0) -> float:
        """Wait until the server and its kernels use under ``threshold`` % CPU; return seconds waited."""
        import psutil

        started = time.monotonic()
        quiet = 0
        while (quiet < 3 or time.monotonic() - started < at_least) and time.monotonic() - started < timeout:
            procs = self.tree()
            try:
                for proc in procs:
                    proc.cpu_percent(None)
                time.sleep(0.5)
                busy = sum(p.cpu_percent(None) for p in procs if p.is_running())
            except psutil.Error:
                busy = 100.0  # a process came or went: not quiet yet
            quiet = quiet + 1 if busy < threshold else 0
        return time.monotonic() - started

    def stop(self) -> None:
        """SIGTERM the process group (Voilà shuts its kernels down), then kill whatever is left."""
        import psutil

        if self.process is None:
            return
        tree = self.tree()[1:]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        _gone, alive = psutil.wait_procs(tree, timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()


class _Bytes:
    """Websocket payload bytes received by a page, resettable."""

    def __init__(self) -> None:
        self.total = 0

    def attach(self, page: Any) -> None:
        def on_socket(ws: Any) -> None:
            ws.on("framereceived", self._add)

        page.on("websocket", on_socket)

    def _add(self, payload: str | bytes) -> None:
        self.total += len(payload.encode() if isinstance(payload, str) else payload)


def _open(browser: Any, url: str, counter: _Bytes) -> tuple[Any, float]:
    """A fresh context and page on ``url``; seconds from navigation start to interactive."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(60_000)
    counter.attach(page)
    page.goto(url, wait_until="commit", timeout=60_000)
    ms = page.wait_for_function(JS_READY, polling="raf", timeout=120_000).json_value()
    return page, ms / 1000


def _close(page: Any) -> None:
    with contextlib.suppress(Exception):
        page.close(run_before_unload=True)  # lets Voilà shut the page's kernel down
    with contextlib.suppress(Exception):
        page.context.close()


def _measure(page: Any, kind: str, act: Any, timeout_ms: int = 30_000) -> dict[str, Any]:
    """Arm the in-page wait, run ``act()`` (the input), and return the in-page timings (ms)."""
    page.evaluate(JS_ARM, [kind, timeout_ms])
    act()
    out = page.evaluate("() => window.__bench.pending")
    if out["error"]:
        raise TimeoutError(f"no {kind} change within {timeout_ms / 1000:.0f} s of the input")
    start = out["tInput"] if out["tInput"] is not None else out["tArm"]
    out["ms"] = out["tPainted"] - start
    out["to_change_ms"] = out["tChange"] - start
    # The browser's own delivery: from the input event's time stamp to the first page script seeing it.
    out["input_delay_ms"] = out["tDispatch"] - start if out["tDispatch"] is not None else 0.0
    return out


def _bench_loads(browser: Any, server: _Server, loads: int, result: dict[str, Any]) -> tuple[Any, _Bytes]:
    """Time-to-interactive on ``loads`` fresh pages; return the last page (kept open) and its counter."""
    seconds, waits = [], []
    page = counter = None
    preheat = result.get("preheat_kernel", False)
    for i in range(loads):
        if page is not None:
            _close(page)
            # The page's kernel shut down and, if preheated, the pool refilled (a kernel starting
            # may look idle for a moment, hence the floor).
            waits.append(round(server.wait_quiet(at_least=3.0 if preheat else 0.0), 1))
        counter = _Bytes()
        page, tti = _open(browser, server.url, counter)
        seconds.append(tti)
        if i == 0:
            result["first_load_s"] = round(tti, 3)
    result["time_to_interactive_s"] = _summary(seconds[1:])
    result["time_to_interactive_loads_s"] = [round(s, 2) for s in seconds]
    result["quiet_wait_between_loads_s"] = waits
    return page, counter


def _bench_next_patient(page: Any, server: _Server, counter: _Bytes, moves: int) -> dict[str, Any]:
    times, sizes, labels, named, memory, ahead = [], [], [], [], 0, 0
    for _ in range(moves):
        page.hover(".cmrqc-key-area .cmrqc-sv-mri")  # where a reviewer's pointer rests (keys work anywhere)
        counter.total = 0
        out = _measure(page, "volume", lambda: page.keyboard.press("ArrowDown"))
        times.append(out["ms"])
        if out.get("tInput") is not None:
            # The kernel's choice may reach the viewer after the paint (painted from the announcement).
            t_named = page.wait_for_function(JS_NAMED_AFTER, arg=out["tInput"], timeout=30_000).json_value()
            named.append(t_named - out["tInput"])
        memory += bool(out.get("fromMemory"))
        ahead += bool(out.get("ahead"))
        page.wait_for_timeout(300)  # trailing messages of the same move (list, stats, echoes)
        sizes.append(counter.total)
        labels.append(page.locator("text=/patient \\d+ of \\d+/").first.inner_text().strip())
        server.wait_quiet(timeout=10)  # the neighbours' prefetch, as while a reviewer looks
    return {
        "next_patient_ms": _summary(times),
        "next_patient_samples_ms": [round(t, 1) for t in times],
        # The key's round trip: from the key to the kernel's choice (volume_key) reaching the viewer.
        "next_patient_to_named_ms": _summary(named),
        "next_patient_from_memory": f"{memory} of {len(times)}",
        # Painted from the kernel's announcement at the key, before its answer (see slice_viewer.py).
        "next_patient_painted_ahead": f"{ahead} of {len(times)}",
        "bytes_per_patient_move": int(statistics.median(sizes)),
        "bytes_per_patient_move_max": max(sizes),
        "next_patient_last_label": labels[-1] if labels else "",
    }


JS_3D_DRAWN = """() => {
  const panel = document.querySelector('.cmrqc-volume3d');
  return Boolean(panel && /voxels/.test(panel.innerText) && panel.querySelector('canvas'));
}"""


def _bench_next_patient_3d(page: Any, server: _Server, moves: int, pause_ms: int = 350) -> dict[str, Any]:
    """Next patient with the 3D panel open: after the 3D view was drawn, and moving quickly."""
    page.locator(".cmrqc-volume3d button").filter(has_text="Show 3D").first.click()
    page.wait_for_function(JS_3D_DRAWN, timeout=60_000)
    server.wait_quiet(timeout=30)
    looked, rapid = [], []
    for _ in range(moves):  # the reviewer looks at each case (its 3D drawn) before moving on
        page.hover(".cmrqc-key-area .cmrqc-sv-mri")
        looked.append(_measure(page, "volume", lambda: page.keyboard.press("ArrowDown"))["ms"])
        server.wait_quiet(timeout=10)
    for _ in range(moves):  # passing over cases: the next key 350 ms after each paint
        page.hover(".cmrqc-key-area .cmrqc-sv-mri")
        rapid.append(_measure(page, "volume", lambda: page.keyboard.press("ArrowDown"))["ms"])
        page.wait_for_timeout(pause_ms)
    page.locator(".cmrqc-volume3d button").filter(has_text="Hide 3D").first.click()
    return {
        "next_patient_3d_open_ms": _summary(looked),
        f"next_patient_3d_open_every_{pause_ms}ms_ms": _summary(rapid),
        "next_patient_3d_open_samples_ms": [round(t, 1) for t in looked + rapid],
    }


def _slice_direction(page: Any) -> int:
    index, count = page.evaluate(JS_SLICE)
    return 1 if index < count - 1 else -1


def _bench_slice_steps(page: Any, steps: int) -> dict[str, Any]:
    keys, wheel, paint, key_change, wheel_delay, wheel_page = [], [], [], [], [], []
    canvas = page.locator(".cmrqc-key-area .cmrqc-sv-mri").first
    for _ in range(steps):
        canvas.hover()
        key = "ArrowRight" if _slice_direction(page) > 0 else "ArrowLeft"
        out = _measure(page, "slice", lambda key=key: page.keyboard.press(key), timeout_ms=10_000)
        keys.append(out["ms"])
        key_change.append(out["to_change_ms"])
        paint.append(out["paintMs"])
        page.wait_for_timeout(80)
    for _ in range(steps):
        canvas.hover()
        delta = 100 * _slice_direction(page)
        out = _measure(page, "slice", lambda delta=delta: page.mouse.wheel(0, delta), timeout_ms=10_000)
        wheel.append(out["ms"])
        wheel_delay.append(out["input_delay_ms"])
        wheel_page.append(out["ms"] - out["input_delay_ms"])
        paint.append(out["paintMs"])
        page.wait_for_timeout(80)
    return {
        "slice_step_key_ms": _summary(keys),
        "slice_step_wheel_ms": _summary(wheel),
        "slice_step_key_to_change_ms": _summary(key_change),
        "slice_step_wheel_input_delay_ms": _summary(wheel_delay),
        "slice_step_wheel_from_dispatch_ms": _summary(wheel_page),
        "slice_paint_ms": _summary(paint),
    }


def _set_fps(page: Any, fps: int) -> None:
    """Drag the FPS slider's handle past its right end (its maximum is 20) and check the readout."""
    slider = page.locator(".cmrqc-key-area .widget-hslider").filter(has_text="FPS").first
    handle = slider.locator(".noUi-handle").first
    track = slider.locator(".noUi-target").first
    box, end = handle.bounding_box(), track.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] + 60, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    readout = slider.locator(".widget-readout").first
    deadline = time.monotonic() + 5
    while readout.inner_text().strip() != str(fps):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the FPS slider shows {readout.inner_text().strip()!r}, not {fps}")
        page.wait_for_timeout(100)


def _bench_play(page: Any, fps: int = 20, seconds: float = 3.0) -> dict[str, Any]:
    _set_fps(page, fps)
    play = page.locator(".cmrqc-key-area button").filter(has_text="Play").first
    play.click()
    page.locator(".cmrqc-key-area button").filter(has_text="Pause").first.wait_for(timeout=10_000)
    page.wait_for_timeout(500)
    rates = page.evaluate(JS_COUNT_PAINTS, seconds * 1000)
    page.locator(".cmrqc-key-area button").filter(has_text="Pause").first.click()
    return {
        f"play_fps_at_{fps}": round(rates["painted"], 2),
        f"play_draws_per_s_at_{fps}": round(rates["draws"], 2),
        "browser_frames_per_s": round(rates["frames"], 1),
    }


def bench_browser(
    root: Path, quick: bool = False, parts: tuple[str, ...] | None = None, moves: int | None = None
) -> dict[str, Any]:
    """Benchmark the served dashboard in headless Chromium; see the module docstring.

    Parameters
    ----------
    root : pathlib.Path
        Empty folder for the demo data root and ``serve.log`` (created if missing).
    quick : bool
        Fewer repeats (2 loads, 3 patient moves, 10 slice steps of each kind).
    parts : tuple of str, optional
        Only these parts after the loads ("next patient", "slice step", "play", "next patient, 3D
        open"); all by default.
    moves : int, optional
        Patient moves per part (10, or 3 when ``quick``).

    Returns
    -------
    dict
        ``time_to_interactive_s`` (later loads) and ``first_load_s`` in seconds; ``next_patient_ms``,
        ``slice_step_key_ms``, ``slice_step_wheel_ms`` as ``{"p50", "p95", "n"}`` in milliseconds;
        ``play_fps_at_20``; ``bytes_per_patient_move`` (median websocket bytes received); and
        ``errors``, a list of messages for every part that could not be measured.
    """
    loads, default_moves, steps = (2, 3, 10) if quick else (5, 10, 40)
    moves = moves or default_moves
    result: dict[str, Any] = {"errors": [], "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    if not Path(CHROMIUM).exists():
        result["errors"].append(f"{CHROMIUM} is missing (apt-get install -y chromium); no browser figures.")
        return result
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        result["errors"].append(f"Playwright is not installed ({exc}); no browser figures.")
        return result

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    server = _Server(root)
    try:
        server.start()
        started = time.monotonic()
        server.wait_until_up(timeout=120)
        result["server_up_s"] = round(time.monotonic() - started, 1)
        result["startup_quiet_wait_s"] = round(server.wait_quiet(timeout=90), 1)
        result["preheat_kernel"] = server.preheat()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page, counter = _bench_loads(browser, server, loads, result)
                server.wait_quiet(timeout=30)
                if not page.evaluate(JS_INSTALL):
                    raise RuntimeError("the page has no .cmrqc-slice-viewer element")
                only = parts
                parts = [
                    ("next patient", lambda: _bench_next_patient(page, server, counter, moves)),
                    ("slice step", lambda: _bench_slice_steps(page, steps)),
                    ("play", lambda: _bench_play(page)),
                    ("next patient, 3D open", lambda: _bench_next_patient_3d(page, server, moves)),
                ]
                for name, part in parts:
                    if only is not None and name not in only:
                        continue
                    try:
                        result.update(part())
                    except Exception as exc:  # one part failing must not lose the others
                        result["errors"].append(f"{name}: {type(exc).__name__}: {str(exc)[:500]}")
            finally:
                browser.close()
    except Exception as exc:
        result["errors"].append(f"{type(exc).__name__}: {str(exc)[:800]}")
    finally:
        server.stop()
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]  # timings are measured under it
    return result


if __name__ == "__main__":
    import argparse
    import json
    import tempfile

    parser = argparse.ArgumentParser(description="Browser figures of the served dashboard.")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--part", action="append", help='only this part, e.g. "next patient" (repeatable)')
    parser.add_argument("--moves", type=int, help="patient moves per part")
    parser.add_argument("--root", type=Path, help="data root to keep (serve.log)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        found = bench_browser(args.root or Path(folder), quick=args.quick, moves=args.moves,
                              parts=tuple(args.part) if args.part else None)  # fmt: skip
    print(json.dumps(found, indent=1))
