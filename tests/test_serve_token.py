"""`cmrqc serve` on 127.0.0.1 asks a token: other users of the machine get no page and start no kernel."""

from __future__ import annotations

import http.client
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator

import psutil
import pytest
from synthetic import kernel_processes

from cmrqc_widgets.serve.voila import (
    TOKEN_ENV,
    ensure_demo,
    find_notebook,
    serve_environment,
    shipped_dir,
    voila_arguments,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "cmrqc-test-" + secrets.token_urlsafe(16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> tuple[int, str, str]:
    """(status, Location header, body) of a GET, redirects not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Location") or "", response.read().decode(errors="replace")
    finally:
        connection.close()


def kernels(server: subprocess.Popen) -> dict[str, psutil.Process]:
    """Kernel id -> process, for every kernel the server runs now."""
    return kernel_processes(server.pid)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, subprocess.Popen]]:
    """The dashboard served as `cmrqc serve` does (its settings, a token), without the preheated spare."""
    root = tmp_path_factory.mktemp("token-root")
    ensure_demo(root, "reviewer")
    port = free_port()
    config_dir = shipped_dir("voila_config")
    notebook = find_notebook()
    argv = voila_arguments(notebook, port=port, open_browser=False, config_dir=config_dir, preheat=False)
    env = serve_environment(root, "reviewer", config_dir, token=TOKEN)
    log = (root / "server.log").open("w")
    server = subprocess.Popen(argv, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                get(port, "/voila/static/extension.js")
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.5)
        yield port, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_a_request_without_the_token_gets_no_page_and_no_kernel(served):
    """No token, or a wrong one: sent to the login form, the dashboard is not rendered, no kernel starts."""
    port, server = served
    before = set(kernels(server))
    for path in ("/", "/?token=wrong", "/voila/render/review.ipynb", f"/?token={TOKEN[:-1]}"):
        status, location, body = get(port, path)
        assert status in (302, 403), (path, status)
        assert status == 403 or "/login" in location
        assert "kernelId" not in body and "cmrqc-review" not in body
    time.sleep(3)
    assert set(kernels(server)) == before


def test_the_token_opens_the_dashboard_and_never_reaches_the_kernel(served):
    """With the token the page is served by a kernel; the token is in neither its environment nor `ps`."""
    port, server = served
    status, _, body = get(port, f"/?token={TOKEN}")
    assert status == 200
    kernel_id = re.search(r'"kernelId": "([0-9a-f-]{36})"', body).group(1)
    kernel = kernels(server)[kernel_id]
    assert TOKEN_ENV not in kernel.environ()
    processes = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    assert all(TOKEN not in " ".join(p.cmdline()) for p in processes)


def test_cmrqc_serve_makes_a_fresh_token_kept_out_of_the_command_line(tmp_path, monkeypatch):
    """Each `cmrqc serve` run gets its own long token, in the server's environment, never in its argv."""
    import argparse

    from cmrqc_widgets.cli.serving import prepare_serve, register

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    tokens = []
    for _ in range(2):
        args = parser.parse_args(["serve", "--root", str(tmp_path), "--user", "bob", "--no-browser"])
        argv, env = prepare_serve(args)
        assert env[TOKEN_ENV] == args.token and len(args.token) >= 32
        assert not any(args.token in arg for arg in argv)
        tokens.append(args.token)
    assert tokens[0] != tokens[1]
    monkeypatch.setenv(TOKEN_ENV, "chosen-by-the-admin-0123456789abcdef")
    args = parser.parse_args(["serve", "--root", str(tmp_path), "--user", "bob", "--no-browser"])
    assert prepare_serve(args)[1][TOKEN_ENV] == "chosen-by-the-admin-0123456789abcdef"


def test_the_opened_browser_gets_the_token_in_a_private_file(monkeypatch):
    """The browser `cmrqc serve` opens lands on the dashboard with the token, via a 0600 file (not argv)."""
    import os
    import threading
    import webbrowser
    from pathlib import Path
    from types import SimpleNamespace

    from cmrqc_widgets.serve.app import CachedVoila

    opened: list[str] = []
    done = threading.Event()

    class Browser:
        def open(self, url: str, new: int = 0) -> bool:
            opened.append(url)
            done.set()
            return True

    monkeypatch.setattr(webbrowser, "get", lambda name=None: Browser())
    app = SimpleNamespace(
        identity_provider=SimpleNamespace(token=TOKEN),
        browser="",
        connection_url="http://127.0.0.1:8866/",
        base_url="/",
        webbrowser_open_new=2,
        log=SimpleNamespace(warning=print),
    )
    CachedVoila.launch_browser(app)
    assert done.wait(10)
    (url,) = opened
    path = Path(url.removeprefix("file://"))
    try:
        assert TOKEN not in url and oct(os.stat(path).st_mode & 0o777) == "0o600"
        assert f"http://127.0.0.1:8866/?token={TOKEN}" in path.read_text()
    finally:
        path.unlink()
