"""Opening and closing the dashboard: time to ready, bytes of the first load, kernels left behind.

``python benchmarks/opening.py [--repeats 3] [--cycles 20]`` starts ``cmrqc serve --demo`` on a tmp
data root and drives Debian's Chromium twice over: once with WebGL switched off
(``--disable-webgl --disable-3d-apis``, a hospital virtual desktop without a GPU) and once with
software WebGL (SwiftShader, Chromium's default without a GPU). Runs of the two set-ups alternate.

- **cold**: a fresh browser context (empty HTTP cache) opens the page;
- **warm**: a second page of the same context (cache filled by the cold load) opens it again.

Both are navigation start to "ready" (the decision buttons clickable and the slice viewer drawn,
``benchmarks.browser.JS_READY``), measured in the page. Between loads the server is left to go
quiet, so the preheated kernel pool refills as it would between reviewers. Bytes are what the
network delivered for the page (Chrome DevTools ``encodedDataLength``: compressed, headers
included), split into HTTP and websocket.

Then ``--cycles`` open/close cycles (the page closed as a tab is, ``beforeunload`` included), and
after them: kernels alive (the preheated spare counts) and the resident memory of the Voilà server
process and of its whole process tree. Prints a table and writes ``benchmarks/results/opening.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from browser import CHROMIUM, CHROMIUM_ARGS, JS_READY, VIEWPORT, _Server  # noqa: E402

NO_WEBGL = ["--disable-webgl", "--disable-3d-apis"]
MODES = {"no WebGL": CHROMIUM_ARGS + NO_WEBGL, "software WebGL": CHROMIUM_ARGS}


class _Traffic:
    """Bytes the network delivered to one page, from Chrome DevTools events."""

    def __init__(self, page: Any) -> None:
        self.http = 0
        self.ws = 0
        self.requests = 0
        self.by_type: dict[str, int] = {}
        self._types: dict[str, str] = {}
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.webSocketFrameReceived", self._frame)
        cdp.send("Network.enable")
        self.cdp = cdp

    def _response(self, event: dict[str, Any]) -> None:
        self._types[event["requestId"]] = event.get("type", "Other")

    def _finished(self, event: dict[str, Any]) -> None:
        size = int(event.get("encodedDataLength", 0))
        self.http += size
        self.requests += 1
        kind = self._types.get(event["requestId"], "Other")
        self.by_type[kind] = self.by_type.get(kind, 0) + size

    def _frame(self, event: dict[str, Any]) -> None:
        payload = event["response"].get("payloadData", "")
        # Binary frames arrive base64-encoded: count the bytes they carried.
        self.ws += len(payload) * 3 // 4 if event["response"].get("opcode") == 2 else len(payload.encode())


def _open(context: Any, url: str) -> tuple[Any, float, _Traffic]:
    page = context.new_page()
    page.set_default_timeout(60_000)
    traffic = _Traffic(page)
    page.goto(url, wait_until="commit", timeout=60_000)
    ms = page.wait_for_function(JS_READY, polling="raf", timeout=120_000).json_value()
    page.wait_for_timeout(500)  # trailing messages of the first screen
    return page, ms / 1000, traffic


def _close(page: Any) -> None:
    page.close(run_before_unload=True)  # as a tab closes: Voilà's beforeunload handler runs


def _kernels(server: _Server) -> list[Any]:
    import psutil

    found = []
    for proc in server.tree():
        try:
            if "ipykernel_launcher" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def _rss_mb(procs: list[Any]) -> float:
    import psutil

    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return round(total / 2**20, 1)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else float("nan")


def bench_opening(root: Path, repeats: int = 3, cycles: int = 20) -> dict[str, Any]:
    """Measure opening (cold, warm, both WebGL set-ups) and ``cycles`` open/close cycles."""
    from playwright.sync_api import sync_playwright

    result: dict[str, Any] = {"modes": {}, "errors": []}
    server = _Server(root)
    try:
        server.start()
        server.wait_until_up(timeout=120)
        server.wait_quiet(timeout=120)
        samples: dict[str, dict[str, list[float]]] = {
            mode: {"cold_s": [], "warm_s": [], "cold_http_mb": [], "warm_http_mb": [], "cold_ws_mb": [],
                   "cold_requests": [], "warm_requests": []}
            for mode in MODES
        }  # fmt: skip
        by_type: dict[str, dict[str, int]] = {}
        with sync_playwright() as playwright:
            browsers = {
                mode: playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
                for mode, args in MODES.items()
            }
            try:
                for _ in range(repeats):
                    for mode, browser in browsers.items():
                        context = browser.new_context(viewport=VIEWPORT)
                        for kind in ("cold", "warm"):
                            page, seconds, traffic = _open(context, server.url)
                            samples[mode][f"{kind}_s"].append(seconds)
                            samples[mode][f"{kind}_http_mb"].append(traffic.http / 1e6)
                            samples[mode][f"{kind}_requests"].append(traffic.requests)
                            if kind == "cold":
                                samples[mode]["cold_ws_mb"].append(traffic.ws / 1e6)
                                by_type[mode] = traffic.by_type
                            _close(page)
                            server.wait_quiet(timeout=60, at_least=3.0)
                        context.close()
                for mode, values in samples.items():
                    result["modes"][mode] = {name: _median(v) for name, v in values.items()}
                    result["modes"][mode]["samples_s"] = {
                        k: [round(x, 2) for x in v] for k, v in values.items() if k.endswith("_s")
                    }
                    result["modes"][mode]["cold_http_bytes_by_type"] = by_type.get(mode, {})

                # Open/close cycles, as reviewers open and close tabs all day.
                browser = browsers["no WebGL"]
                started = time.monotonic()
                failed = []
                for _ in range(cycles):
                    context = browser.new_context(viewport=VIEWPORT)
                    try:
                        page, _seconds, _traffic = _open(context, server.url)
                        _close(page)
                    except Exception as exc:  # a page that never got ready still closes its tab
                        failed.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    context.close()
                    server.wait_quiet(timeout=20, at_least=1.0)
                result["cycles"] = cycles
                result["cycles_not_ready"] = failed
                result["cycles_s"] = round(time.monotonic() - started, 1)
                time.sleep(10)  # what is still alive 10 s after the last close
                result["kernels_alive_after_cycles"] = len(_kernels(server))
                tree = server.tree()
                result["server_rss_mb"] = _rss_mb(tree[:1])
                result["server_tree_rss_mb"] = _rss_mb(tree)
            finally:
                for browser in browsers.values():
                    browser.close()
    except Exception as exc:
        result["errors"].append(f"{type(exc).__name__}: {str(exc)[:800]}")
    finally:
        server.stop()
    return result


def _table(result: dict[str, Any]) -> str:
    lines = [
        "| Opening (Chromium, demo cohort) | ready, warm | ready, cold | first load (HTTP) | websocket "
        "| requests |",
        "|---|---|---|---|---|---|",
    ]
    for mode, r in result["modes"].items():
        lines.append(
            f"| {mode} | {r['warm_s']:.2f} s | {r['cold_s']:.2f} s | {r['cold_http_mb']:.2f} MB "
            f"(warm {r['warm_http_mb']:.2f} MB) | {r['cold_ws_mb']:.2f} MB | "
            f"{r['cold_requests']:.0f} (warm {r['warm_requests']:.0f}) |"
        )
    if "kernels_alive_after_cycles" in result:
        lines.append("")
        r = result
        lines.append(
            f"After {r['cycles']} open/close cycles ({len(r['cycles_not_ready'])} not ready within 120 s): "
            f"{r['kernels_alive_after_cycles']} kernel(s) alive, "
            f"server {r['server_rss_mb']:.0f} MB, server + kernels {r['server_tree_rss_mb']:.0f} MB."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="loads per set-up and kind (default 3)")
    parser.add_argument("--cycles", type=int, default=20, help="open/close cycles (default 20)")
    parser.add_argument("--out", default=str(HERE / "results" / "opening.json"), help="JSON output")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing (apt-get install -y chromium).", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="cmrqc-opening-") as tmp:
        result = bench_opening(Path(tmp), repeats=args.repeats, cycles=args.cycles)
    print(_table(result))
    for error in result["errors"]:
        print("error:", error, file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
