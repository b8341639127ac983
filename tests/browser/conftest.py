"""Shared browser-test fixtures: free ports, real Voilà and JupyterHub servers, Debian's Chromium.

Servers run on 127.0.0.1 as child processes; at teardown the whole process tree (the server and
everything it started in other sessions: kernels, the proxy, reviewers' servers) is terminated,
then killed. Each server's output goes to ``test-artifacts/<name>.log`` and screenshots to
``test-artifacts/<test>/`` (gitignored), so a failure in CI leaves its evidence behind.

Chromium is the system one (``/usr/bin/chromium``), driven by Playwright's sync API; Playwright's
own browser download is never used. WebGL runs on SwiftShader by itself with the flags below
(``--use-gl=swiftshader`` would disable it).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
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

def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def safe_name(text: str) -> str:
    """File-system friendly version of a test id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120]


def stop_group(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop ``process`` and its process group: SIGTERM (JupyterHub stops its proxy and user servers,
    Voilà shuts its kernels down), then SIGKILL after ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class Server:
    """A server process started for a test, with its log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path | None = None
    log_path: Path = field(init=False)
    process: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> Server:
        """Start the process in its own session, output to ``test-artifacts/<name>.log``."""
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"{self.name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def log(self) -> str:
        """Everything the server printed so far."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def wait_for_url(
        self, url: str, timeout: float = 60.0, ok: Callable[[int], bool] = lambda s: s < 500
    ) -> None:
        """Poll ``url`` until it answers; fail with the server log if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if ok(response.status):
                        return
            except urllib.error.HTTPError as exc:
                if ok(exc.code):
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        pytest.fail(f"{self.name} did not answer {url} within {timeout:.0f} s:\n{self.log()[-4000:]}")

    def wait_for_log(self, pattern: str, timeout: float = 60.0) -> bool:
        """Wait until the log matches ``pattern``; True if it did."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            if regex.search(self.log()):
                return True
            if self.process.poll() is not None:
                return False
            time.sleep(0.25)
        return False

    def wait_until_idle(self, timeout: float = 60.0, threshold: float = 15.0) -> float:
        """Wait until the server and its children use under ``threshold`` % CPU; return the seconds waited.

        Used after start-up so that a preheated kernel has finished its work before the
        "reviewer" arrives, as it would have on a real server started long before.
        """
        import psutil

        started = time.monotonic()
        quiet = 0
        while time.monotonic() - started < timeout and quiet < 3:
            try:
                procs = [psutil.Process(self.process.pid)]
                procs += procs[0].children(recursive=True)
                for proc in procs:
                    proc.cpu_percent(None)
                time.sleep(0.5)
                busy = sum(p.cpu_percent(None) for p in procs if p.is_running())
            except psutil.Error:
                busy = 100.0
            quiet = quiet + 1 if busy < threshold else 0
        return time.monotonic() - started

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate the server and every process it started (kernels, proxy, user servers)."""
        import psutil

        if self.process is None:
            return
        try:
            tree = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            tree = []
        stop_group(self.process, timeout)
        for child in tree:
            with contextlib.suppress(psutil.Error):
                child.terminate()
        _gone, alive = psutil.wait_procs(tree, timeout=5)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()
        self._log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, launched through Playwright (never `playwright install`).

    Module-scoped: Playwright's sync API allows one running instance per thread, and a test module
    that starts its own must find none left over from another module.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Folder ``test-artifacts/<test>/`` for this test's screenshots."""
    folder = ARTIFACTS / safe_name(request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def new_page(browser, artifacts) -> Iterator[Callable[..., object]]:
    """Factory of fresh pages, each in its own browser context (own cookies), closed at teardown."""
    contexts = []

    def make(**context_options: object) -> object:
        options = {"viewport": {"width": 1600, "height": 1200}, **context_options}  # a test may pick its size
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(60_000)
        return page

    yield make
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()


@pytest.fixture
def shot(artifacts) -> Callable[..., Path]:
    """``shot(page_or_locator, "step")`` saves ``NN-step.png`` in this test's artifact folder."""
    counter = iter(range(1, 1000))

    def take(target: object, step: str, **options: object) -> Path:
        path = artifacts / f"{next(counter):02d}-{safe_name(step)}.png"
        with contextlib.suppress(Exception):
            # Voilà scrolls inside its own container: go to the top for a full-page picture.
            if hasattr(target, "evaluate") and hasattr(target, "goto"):
                target.evaluate(
                    "() => { for (const el of document.querySelectorAll('*')) el.scrollTop = 0; }"
                )
        target.screenshot(path=str(path), **options)
        return path

    return take


@dataclass
class VoilaServer:
    """A running `cmrqc serve`-equivalent Voilà server on a tmp data root."""

    url: str
    root: Path
    user: str
    dataset: Path
    server: Server


@pytest.fixture(scope="module")
def voila_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoilaServer]:
    """Voilà on the shipped review notebook, demo cohort for reviewer ``reviewer``, free port."""
    from cmrqc_widgets.serve.voila import (
        ensure_demo,
        find_notebook,
        serve_environment,
        shipped_dir,
        voila_arguments,
    )

    root = tmp_path_factory.mktemp("voila-root")
    user = "reviewer"
    dataset = ensure_demo(root, user)
    port = free_port()
    config_dir = shipped_dir("voila_config")
    argv = voila_arguments(
        find_notebook(), port=port, ip="127.0.0.1", open_browser=False, config_dir=config_dir
    )
    env = serve_environment(root, user, config_dir, ip="127.0.0.1")
    server = Server("voila", argv, env, cwd=root).start()
    try:
        # Any answer will do; asking for "/" itself would render the notebook in a kernel of its own.
        server.wait_for_url(
            f"http://127.0.0.1:{port}/voila/static/extension.js", timeout=90, ok=lambda s: True
        )
        # A reviewer arrives long after start-up: let a preheated kernel finish its work first.
        server.wait_until_idle(timeout=90)
        yield VoilaServer(f"http://127.0.0.1:{port}/", root, user, dataset, server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def start_voila() -> Iterator[Callable[..., str]]:
    """``start_voila(root, user, notebook)`` runs Voilà (our settings) on a shipped notebook; returns its URL.

    Every server started is stopped at the end of the module.
    """
    from cmrqc_widgets.serve.voila import find_notebook, serve_environment, shipped_dir, voila_arguments

    servers: list[Server] = []

    def start(root: Path, user: str, notebook: str = "review.ipynb") -> str:
        port = free_port()
        config_dir = shipped_dir("voila_config")
        argv = voila_arguments(find_notebook(name=notebook), port=port, ip="127.0.0.1", open_browser=False,
                               config_dir=config_dir)  # fmt: skip
        env = serve_environment(root, user, config_dir, ip="127.0.0.1")
        server = Server(f"voila-{user}-{Path(notebook).stem}", argv, env, cwd=root).start()
        servers.append(server)
        url = f"http://127.0.0.1:{port}/"
        server.wait_for_url(url + "voila/static/extension.js", timeout=180, ok=lambda s: True)
        server.wait_until_idle(timeout=90)
        return url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def start_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Path], str]]:
    """``start_hub(root)`` runs JupyterHub with our config (trial spawner) on ``root``; returns its URL.

    Every hub started is stopped at the end of the module.
    """
    pytest.importorskip("jupyterhub")
    import shutil

    if shutil.which("configurable-http-proxy") is None:
        pytest.skip("configurable-http-proxy is not on PATH (npm install -g configurable-http-proxy)")
    from cmrqc_widgets.serve.voila import hub_environment

    servers: list[Server] = []

    def start(root: Path) -> str:
        state = tmp_path_factory.mktemp("hub-state")
        port = free_port()
        env = hub_environment(root, port=port, ip="127.0.0.1", state=state)
        env.update(CMRQC_HUB_API_PORT=str(free_port()), CMRQC_PROXY_API_PORT=str(free_port()))
        env.pop("JUPYTERHUB_USER", None)
        config = hub_test_config(state, env)  # the shipped config; root may run servers in a test
        argv = [sys.executable, "-m", "jupyterhub", "-f", str(config)]
        server = Server(f"jupyterhub-{root.name}", argv, env, cwd=state).start()
        servers.append(server)
        server.wait_for_url(f"http://127.0.0.1:{port}/hub/api", timeout=180, ok=lambda s: s == 200)
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop()


@dataclass
class HubServer:
    """A running JupyterHub with our config; ``passwords`` maps each reviewer to their password."""

    url: str
    root: Path
    state: Path
    passwords: dict[str, str]
    datasets: dict[str, Path]
    max_failures: int
    server: Server


def hub_test_config(state: Path, env: dict[str, str], extra: str = "") -> Path:
    """Our shipped hub config, plus what a test run needs, as ``<state>/test_jupyterhub_config.py``.

    Reviewers' servers refuse to run as root. Tests run as root in CI, and on this kind of machine
    the Python lives under ``/root`` (0700), so no other account could run a reviewer's server:
    there, and only there, the test allows root (``TrialSpawner.allow_root``). The refusal itself
    is tested with the config as shipped (``test_hub_refuses_root_servers``).
    """
    from cmrqc_widgets.serve.voila import shipped_dir

    shipped = shipped_dir("voila_config") / "jupyterhub_config.py"
    lines = [f"load_subconfig({str(shipped)!r})"]
    if os.geteuid() == 0:
        lines.append("c.TrialSpawner.allow_root = True")
    lines.append(extra)
    path = state / "test_jupyterhub_config.py"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """JupyterHub (trial spawner) on free ports, reviewers alice and bob with one dataset each."""
    pytest.importorskip("jupyterhub")
    import shutil

    if shutil.which("configurable-http-proxy") is None:
        pytest.skip("configurable-http-proxy is not on PATH (npm install -g configurable-http-proxy)")
    from cmrqc_widgets.demo import make_demo_cohort
    from cmrqc_widgets.serve.auth import add_user
    from cmrqc_widgets.serve.voila import hub_environment

    root = tmp_path_factory.mktemp("hub-root")
    state = tmp_path_factory.mktemp("hub-state")
    passwords = {"alice": "amber-falcon-71", "bob": "cobalt-heron-62"}
    datasets = {}
    for (user, password), name in zip(passwords.items(), ("alpha.json", "beta.json"), strict=True):
        add_user(root, user, password)
        datasets[user] = Path(make_demo_cohort(root, user, dataset=name, n_patients=4))
    port = free_port()
    max_failures = 3
    env = hub_environment(root, port=port, ip="127.0.0.1", state=state)
    env.update(
        CMRQC_HUB_API_PORT=str(free_port()),
        CMRQC_PROXY_API_PORT=str(free_port()),
        CMRQC_HUB_MAX_FAILURES=str(max_failures),
        CMRQC_HUB_LOCKOUT_SECONDS="120",
    )
    env.pop("JUPYTERHUB_USER", None)
    config = hub_test_config(state, env)
    server = Server("jupyterhub", [sys.executable, "-m", "jupyterhub", "-f", str(config)], env, cwd=state)
    server.start()
    try:
        server.wait_for_url(f"http://127.0.0.1:{port}/hub/api", timeout=90, ok=lambda s: s == 200)
        yield HubServer(f"http://127.0.0.1:{port}", root, state, passwords, datasets, max_failures, server)
    finally:
        server.stop()
