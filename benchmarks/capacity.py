"""How many reviewers one hub server holds: N simulated reviewers against a real ``cmrqc hub``.

``python benchmarks/capacity.py --reviewers 1,5,10,20 --minutes 2`` runs, for each N, a fresh
JupyterHub with the shipped configuration (``voila_config/jupyterhub_config.py``, the trial spawner,
as ``cmrqc hub`` runs it; as root the reviewers' servers are allowed to run as root, as in the
browser tests) and N reviewers in Debian's Chromium (Playwright contexts of one browser, each its
own login). Each reviewer logs in, waits for the dashboard, then every ``--interval`` seconds
presses the next-patient key and clicks Accept. Measured, per N:

* **switch painted**: next-patient key to the new volume painted (in the page, ``performance.now``),
  p50 and p95 over every reviewer's moves;
* **decisions**: Accept clicks acknowledged on screen (the "saved" line changed) against the
  decisions found on disk in the reviewers' dataset files afterwards (they must be equal);
* **memory per reviewer**: RSS of each reviewer's processes (their Voilà server and kernels, found
  by ``JUPYTERHUB_USER``) at the end, and the hub's own processes apart;
* **CPU per switch**: CPU seconds of the reviewers' processes over the run divided by their moves
  (a move is next + accept), counted from the moment every reviewer is logged in.

From those it reports the largest N measured within p95 <= 200 ms and, as an estimate, what
this machine's cores and memory would hold at the measured CPU and memory per reviewer. The
browsers run on the same machine and take CPU from the server: a quiet machine and, better, the
clients on another machine give the server's true figure. Writes ``benchmarks/results/capacity.json``.
Nothing here asserts a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from browser import CHROMIUM, CHROMIUM_ARGS, JS_ARM, JS_INSTALL, VIEWPORT  # noqa: E402

P95_TARGET_MS = 200.0
PASSWORD = "granite-osprey-58"  # every simulated reviewer's (the hub's password rules accept it)
ACCEPT = re.compile(r"^\s*accept \(", re.IGNORECASE)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviewers", default="1,5,10,20", help="comma-separated N (default 1,5,10,20)")
    parser.add_argument("--minutes", type=float, default=2.0, help="review time per N (default 2)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between moves (default 2)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "capacity.json")
    args = parser.parse_args(argv)
    try:
        args.reviewers = sorted({int(n) for n in str(args.reviewers).split(",") if n.strip()})
    except ValueError:
        parser.error(f"--reviewers must be integers separated by commas, not {args.reviewers!r}")
    if not args.reviewers or min(args.reviewers) < 1:
        parser.error("--reviewers needs at least one N >= 1")
    if args.minutes <= 0 or args.interval <= 0:
        parser.error("--minutes and --interval must be positive")
    return args


def percentile(samples: list[float], q: float) -> float | None:
    """The ``q`` (0..1) percentile by nearest rank; None for no samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summarise(n: int, reviewers: list[dict[str, Any]], processes: dict[str, Any]) -> dict[str, Any]:
    """One row of the table from the reviewers' own records and the processes' figures."""
    times = [t for r in reviewers for t in r["switch_ms"]]
    moves = sum(len(r["switch_ms"]) for r in reviewers)
    acknowledged = sum(r["acknowledged"] for r in reviewers)
    on_disk = sum(r.get("on_disk", 0) for r in reviewers)
    per_user = processes.get("per_user", {})
    # Reviewers who never got in have a half-started server (or none): not a reviewer's figure.
    got_in = [r["user"] for r in reviewers if r["ready"] and r["user"] in per_user]
    memory = [per_user[u]["rss_mb"] for u in got_in]
    cpu = sum(u["cpu_s"] for u in per_user.values())
    return {
        "reviewers": n,
        "logged_in": sum(bool(r["ready"]) for r in reviewers),
        "moves": moves,
        "switch_p50_ms": _round(percentile(times, 0.5)),
        "switch_p95_ms": _round(percentile(times, 0.95)),
        "switch_failures": sum(r["failures"] for r in reviewers),
        "decisions_acknowledged": acknowledged,
        "decisions_on_disk": on_disk,
        "decisions_equal": acknowledged == on_disk,
        "memory_per_reviewer_mb": _round(statistics.mean(memory)) if memory else None,
        "hub_mb": processes.get("hub_mb"),
        "processes_of_one_reviewer": next((per_user[u].get("processes", []) for u in got_in), []),
        "cpu_ms_per_move": _round(1000 * cpu / moves) if moves else None,
        "errors": [e for r in reviewers for e in r["errors"]][:10],
    }


def capacity(rows: list[dict[str, Any]], interval: float, cores: int, memory_mb: float) -> dict[str, Any]:
    """Largest N measured within the p95 target, and what CPU and memory would allow (an estimate)."""
    within = [
        r["reviewers"] for r in rows if r["switch_p95_ms"] is not None and r["switch_p95_ms"] <= P95_TARGET_MS
    ]
    out: dict[str, Any] = {"largest_n_measured_within_p95": max(within) if within else 0}
    cpu = [r["cpu_ms_per_move"] for r in rows if r["cpu_ms_per_move"]]
    mem = [r["memory_per_reviewer_mb"] for r in rows if r["memory_per_reviewer_mb"]]
    if cpu:
        # Keep the cores at most half busy, so a move rarely waits for another reviewer's.
        out["cpu_bound_estimate"] = int(0.5 * cores * interval * 1000 / max(cpu))
    if mem:
        out["memory_bound_estimate"] = int(0.8 * memory_mb / max(mem))
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --- the server ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(root: Path, n: int, moves: int) -> dict[str, str]:
    """Users ``rev01``... with a dataset of ``moves + 2`` normal demo patients each; their dataset files."""
    from cmrqc_widgets.demo import DEMO_BROKEN, make_demo_cohort
    from cmrqc_widgets.serve.auth import add_user
    from cmrqc_widgets.store import QCStore

    users = [f"rev{i + 1:02d}" for i in range(n)]
    wanted = moves + 2 + len(DEMO_BROKEN)
    listed = Path(make_demo_cohort(root, "cohort", n_patients=wanted))
    patients = [p for p in json.loads(listed.read_text()) if Path(p).name not in DEMO_BROKEN]
    datasets = {}
    for user in users:
        add_user(root, user, PASSWORD)
        datasets[user] = str(QCStore(root, user).create("review.json", patients, exist_ok=True).path)
    return datasets


def start_hub(root: Path, state: Path) -> tuple[subprocess.Popen, str]:
    """JupyterHub with the shipped config on free ports; (process, URL) once its API answers."""
    import urllib.request

    from cmrqc_widgets.serve.voila import hub_environment, shipped_dir

    if shutil.which("configurable-http-proxy") is None:
        raise RuntimeError("configurable-http-proxy is not on PATH (npm install -g configurable-http-proxy)")
    port = _free_port()
    env = hub_environment(root, port=port, ip="127.0.0.1", state=state)
    env.update(CMRQC_HUB_API_PORT=str(_free_port()), CMRQC_PROXY_API_PORT=str(_free_port()))
    env.pop("JUPYTERHUB_USER", None)
    config = state / "capacity_jupyterhub_config.py"
    lines = [f"load_subconfig({str(shipped_dir('voila_config') / 'jupyterhub_config.py')!r})"]
    if os.geteuid() == 0:  # as in tests/browser/conftest.py: this machine's Python lives under /root
        lines.append("c.TrialSpawner.allow_root = True")
    config.write_text("\n".join(lines) + "\n")
    log = open(state / "hub.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(config)],
        env=env, cwd=state, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/hub/api", timeout=5) as reply:
            if reply.status == 200:
                return process, url
        if process.poll() is not None:
            break
        time.sleep(0.5)
    stop_hub(process)
    raise RuntimeError(f"the hub did not start; see {state / 'hub.log'}")


def stop_hub(process: subprocess.Popen) -> None:
    """Terminate the hub and everything it started (proxy, reviewers' servers, kernels)."""
    import psutil

    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)  # the hub stops its proxy and servers itself
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(20)
    for child in tree:  # whatever outlived it (these pids are the hub's children, started here)
        with contextlib.suppress(psutil.Error):
            child.kill()
    if process.poll() is None:
        process.kill()


def user_processes(hub: subprocess.Popen, users: list[str]) -> dict[str, Any]:
    """RSS (MB) and CPU seconds of each reviewer's processes, and the hub's own RSS."""
    import psutil

    per_user: dict[str, dict[str, Any]] = {u: {"rss_mb": 0.0, "cpu_s": 0.0, "processes": []} for u in users}
    hub_mb = 0.0
    root = psutil.Process(hub.pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            user = process.environ().get("JUPYTERHUB_USER")
            rss = process.memory_info().rss / 1e6
            times = process.cpu_times()
            kind = "kernel" if "ipykernel" in " ".join(process.cmdline()) else process.name()
        except psutil.Error:
            continue
        if user in per_user:
            per_user[user]["rss_mb"] += rss
            per_user[user]["cpu_s"] += times.user + times.system
            per_user[user]["processes"].append((kind, round(rss, 1)))
        else:
            hub_mb += rss
    return {"per_user": per_user, "hub_mb": round(hub_mb, 1)}


# --- the reviewers -------------------------------------------------------------------------------


async def log_in(browser: Any, url: str, record: dict[str, Any]) -> Any:
    """Log ``record["user"]`` in and wait for the dashboard; the page, or None after an error."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    page.set_default_timeout(300_000)
    try:
        await page.goto(f"{url}/hub/login")
        await page.fill("#username_input", record["user"])
        await page.fill("#password_input", PASSWORD)
        await page.click("#login_submit", no_wait_after=True)
        await page.get_by_role("button", name=ACCEPT).first.wait_for(state="visible", timeout=300_000)
        await page.wait_for_selector(".cmrqc-slice-viewer[data-ready='1']", timeout=300_000)
        await page.evaluate(JS_INSTALL)
        record["ready"] = True
        return page
    except Exception as exc:
        record["errors"].append(f"{record['user']}: login: {type(exc).__name__}: {str(exc)[:160]}")
        with contextlib.suppress(Exception):
            await context.close()
        return None


async def review(page: Any, record: dict[str, Any], offset: float, until: float, interval: float) -> None:
    """Every ``interval`` s until ``until``: the next-patient key (timed to painted), then Accept."""
    await asyncio.sleep(offset)  # reviewers do not all press at the same instant
    accept = page.get_by_role("button", name=ACCEPT).first
    saved = page.locator(".cmrqc-saved").first
    while time.monotonic() < until:
        tick = time.monotonic()
        try:
            await page.evaluate(JS_ARM, ["volume", 30_000])
            await page.hover(".cmrqc-key-area .cmrqc-sv-mri")
            await page.keyboard.press("ArrowDown")
            out = await page.evaluate("() => window.__bench.pending")
            if out["error"]:
                raise TimeoutError("no new volume within 30 s of the key")
            start = out["tInput"] if out["tInput"] is not None else out["tArm"]
            record["switch_ms"].append(out["tPainted"] - start)
            before = await saved.inner_text()
            await accept.click()
            await page.wait_for_function(
                "([sel, before]) => { const el = document.querySelector(sel);"
                " return el && el.innerText !== before && /saved/i.test(el.innerText); }",
                arg=[".cmrqc-saved", before],
                timeout=30_000,
            )
            record["acknowledged"] += 1
        except Exception as exc:  # counted and reported; the reviewer goes on
            record["failures"] += 1
            record["errors"].append(f"{record['user']}: {type(exc).__name__}: {str(exc)[:160]}")
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - tick)))
    with contextlib.suppress(Exception):
        await page.context.close()


def decisions_on_disk(dataset: str) -> int:
    """Phases with a decision in the dataset file (the journal merged), read without writing."""
    from cmrqc_widgets.store.snapshot import read_snapshot

    decisions = read_snapshot(Path(dataset)).decisions.values()
    return sum(d.decision is not None for entry in decisions for d in entry.values())


async def _drive(
    url: str, users: list[str], minutes: float, interval: float, hub: subprocess.Popen
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Log every reviewer in, then review for ``minutes``; (records, processes at start, at end)."""
    from playwright.async_api import async_playwright

    records = [
        {"user": u, "ready": False, "switch_ms": [], "acknowledged": 0, "failures": 0, "errors": []}
        for u in users
    ]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = await asyncio.gather(*(log_in(browser, url, r) for r in records))
            # The clock starts once everyone is in: logins start servers, which is not reviewing.
            at_start = user_processes(hub, users)
            until = time.monotonic() + 60 * minutes
            await asyncio.gather(
                *(
                    review(page, r, interval * i / len(users), until, interval)
                    for i, (page, r) in enumerate(zip(pages, records, strict=True))
                    if page is not None
                )
            )
            at_end = user_processes(hub, users)
        finally:
            await browser.close()
    return records, at_start, at_end


def run_n(n: int, minutes: float, interval: float) -> dict[str, Any]:
    """One N: a fresh hub and data root, N reviewers, the summary row (see :func:`summarise`)."""
    moves = int(60 * minutes / interval) + 5
    with tempfile.TemporaryDirectory(prefix=f"cmrqc-capacity-{n}-") as tmp:
        root, state = Path(tmp) / "root", Path(tmp) / "state"
        state.mkdir(parents=True)
        datasets = prepare(root, n, moves)
        hub, url = start_hub(root, state)
        try:
            started = time.monotonic()
            reviewers, at_start, processes = asyncio.run(_drive(url, list(datasets), minutes, interval, hub))
            elapsed = time.monotonic() - started
            for user, figures in processes["per_user"].items():  # CPU of the review window only
                figures["cpu_s"] -= at_start["per_user"][user]["cpu_s"]
            time.sleep(2)  # the journal append is durable on return; let the last rewrite land too
            for record in reviewers:
                record["on_disk"] = decisions_on_disk(datasets[record["user"]])
        finally:
            stop_hub(hub)
    row = summarise(n, reviewers, processes)
    row["wall_s"] = round(elapsed, 1)
    return row


def print_table(rows: list[dict[str, Any]], verdict: dict[str, Any]) -> None:
    """The table the README copies."""
    head = ("N", "moves", "p50 ms", "p95 ms", "acked", "on disk", "MB/reviewer", "CPU ms/move", "failures")
    print(" | ".join(head))
    for r in rows:
        print(
            " | ".join(
                str(v)
                for v in (
                    r["reviewers"], r["moves"], r["switch_p50_ms"], r["switch_p95_ms"],
                    r["decisions_acknowledged"], r["decisions_on_disk"], r["memory_per_reviewer_mb"],
                    r["cpu_ms_per_move"], r["switch_failures"],
                )
            )
        )
    print(json.dumps(verdict))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import psutil

    load = os.getloadavg()
    rows = []
    for n in args.reviewers:
        print(f"N = {n}: {args.minutes} min, a move every {args.interval} s ...", flush=True)
        rows.append(run_n(n, args.minutes, args.interval))
        print(json.dumps(rows[-1]), flush=True)
    verdict = capacity(rows, args.interval, os.cpu_count() or 1, psutil.virtual_memory().total / 1e6)
    result = {
        "machine": {"cpus": os.cpu_count(), "memory_mb": round(psutil.virtual_memory().total / 1e6)},
        "load_average_before": [round(x, 2) for x in load],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "minutes": args.minutes,
        "interval_s": args.interval,
        "rows": rows,
        "capacity": verdict,
    }
    print_table(rows, verdict)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
