"""``cmrqc serve`` (the Voilà dashboard) and ``cmrqc hub`` (a local JupyterHub trial).

Both find the files we ship — the dashboard notebook ``review.ipynb`` and ``voila_config/`` —
from the installed package: a wheel carries them in ``cmrqc_widgets/_shipped/``, a source
checkout (or an editable install) has them at the top of the repository.

``cmrqc serve`` runs Voilà on ``review.ipynb`` with the settings of ``voila_config/voila.json``
(no source shown, the offline ``cmrqc`` template, idle kernels culled, a preheated kernel) and
passes the data root and reviewer to the kernel as ``CMRQC_ROOT`` / ``CMRQC_USER``: a preheated
kernel renders the notebook before any request, so the reviewer must come from the server's
environment, not from the request.

``cmrqc hub`` runs JupyterHub with ``voila_config/jupyterhub_config.py`` on 127.0.0.1, all
reviewers as the current OS user (``SimpleLocalProcessSpawner``): a trial, not a production
set-up (see ``voila_config/README.md``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import CmrqcError
from ..names import user_folder

__all__ = [
    "DEMO_DATASET",
    "LEAD_NOTEBOOK",
    "NOTEBOOK",
    "TOKEN_ENV",
    "VOILA_MODULE",
    "ensure_demo",
    "first_free_port",
    "hub_environment",
    "reviewer_command",
    "serve_environment",
    "shipped_dir",
    "supports_preheat",
    "voila_arguments",
    "voila_settings",
]

NOTEBOOK = "review.ipynb"
"""The dashboard notebook Voilà serves."""

LEAD_NOTEBOOK = "lead.ipynb"
"""The lead's view, served by the same set-up (``cmrqc serve --lead``)."""

TOKEN_ENV = "CMRQC_VOILA_TOKEN"
"""Environment variable carrying the token ``cmrqc serve`` asks of every request (see serve/app.py)."""

DEMO_DATASET = "demo.json"
"""Dataset file ``--demo`` creates for the reviewer."""

TEMPLATE = "cmrqc"
"""Our Voilà template (``voila_config/voila/templates/cmrqc``): the lab template minus its CDN links."""

VOILA_MODULE = "cmrqc_widgets.serve.app"
"""Voilà with compressed, long-cached static files (:mod:`cmrqc_widgets.serve.app`)."""

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # cmrqc_widgets/


def shipped_dir(name: str, package_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder of shipped files: ``"notebooks"`` or ``"voila_config"``.

    Looks in ``<package>/_shipped/<name>`` (an installed wheel) and then in
    ``<package>/../<name>`` (a source checkout or editable install).

    Raises
    ------
    CmrqcError
        If neither exists (a broken installation).
    """
    package = Path(package_dir) if package_dir is not None else _PACKAGE_DIR
    candidates = [package / "_shipped" / name, package.parent / name]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise CmrqcError(
        f"The folder {name!r} is missing from this installation (looked in "
        f"{' and '.join(str(c) for c in candidates)}); reinstall cmrqc_widgets."
    )


def find_notebook(package_dir: str | os.PathLike[str] | None = None, name: str = NOTEBOOK) -> Path:
    """Path of a shipped notebook: the dashboard ``review.ipynb`` (default) or ``lead.ipynb``."""
    notebook = shipped_dir("notebooks", package_dir) / name
    if not notebook.is_file():
        raise CmrqcError(f"The dashboard notebook {notebook} is missing; reinstall cmrqc_widgets.")
    return notebook


def voila_settings(config_dir: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """The Voilà settings we ship, read from ``voila_config/voila.json``."""
    path = Path(config_dir or shipped_dir("voila_config")) / "voila.json"
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CmrqcError(f"The Voilà settings file {path} cannot be read: {exc}.") from exc
    if not isinstance(settings, dict) or not all(isinstance(v, dict) for v in settings.values()):
        raise CmrqcError(f"The Voilà settings file {path} must map section names to objects.")
    return settings


def supports_preheat(notebook: str | os.PathLike[str]) -> bool:
    """True if ``notebook`` waits for the request (``voila.utils.wait_for_request()``) before building.

    A preheated kernel runs the notebook before anyone asks for it. A dashboard built then shows
    the decisions on disk at that moment, which may be hours old when a reviewer opens it; a
    notebook that imports first and calls ``wait_for_request()`` before building the screen is
    both fast and fresh.
    """
    try:
        return "wait_for_request(" in Path(notebook).read_text(encoding="utf-8")
    except OSError:
        return False


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value)


def voila_arguments(
    notebook: str | os.PathLike[str],
    *,
    port: int = 8866,
    ip: str = "127.0.0.1",
    open_browser: bool = True,
    config_dir: str | os.PathLike[str] | None = None,
    preheat: bool | None = None,
) -> list[str]:
    """Command line that starts Voilà on ``notebook`` with our settings.

    Every entry of ``voila.json`` becomes an explicit ``--Section.name=value`` flag (a list one
    flag per item, traitlets' own form), so the settings are visible in ``ps`` and do not depend
    on which Jupyter config paths are active.
    Voilà runs as :mod:`cmrqc_widgets.serve.app` (the same Voilà, its files compressed and
    cached). Preheated kernels are used only if ``preheat`` is True, or when it is None, if the notebook
    :func:`supports_preheat`; otherwise they are switched off.
    """
    if preheat is None:
        preheat = supports_preheat(notebook)
    argv = [
        sys.executable,
        "-m",
        VOILA_MODULE,
        os.fspath(notebook),
        f"--port={int(port)}",
        f"--Voila.ip={ip}",
        "--Voila.port_retries=0",  # the printed URL is the served one: fail rather than move
    ]
    if not open_browser:
        argv.append("--no-browser")
    for section, values in voila_settings(config_dir).items():
        for name, value in values.items():
            if section == "VoilaConfiguration" and name == "preheat_kernel":
                value = bool(value) and preheat
            items = value if isinstance(value, list) else [value]
            argv.extend(f"--{section}.{name}={_flag_value(item)}" for item in items)
    return argv


def reviewer_command(
    prefix: str,
    *,
    notebook: str | os.PathLike[str] | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    python: str = sys.executable,
) -> list[str]:
    """Command of a reviewer's server behind JupyterHub: the standalone Voilà app behind the hub's login.

    ``jupyter-standaloneproxy`` (jupyter-server-proxy >= 4.2) checks the hub's OAuth cookie,
    admits only ``$JUPYTERHUB_USER`` and forwards to Voilà, which it starts on a Unix socket in a
    private temporary folder (0700, the socket 0600): no other account of the machine can reach the
    dashboard around the login, as it could a port on 127.0.0.1. Standalone Voilà lets only widget
    (``comm_*``), ``kernel_info_request`` and ``shutdown_request`` messages through its kernel
    websockets and serves nothing but the dashboard: the browser can click, never run code. Never a
    Jupyter server (no contents, files, kernels or terminals API).

    Every executable is an absolute path (``python`` and the proxy beside it), so the command
    works whatever the spawned process's ``PATH``. The proxy's own activity pings are off: they
    would report "active" every 5 minutes for ever and defeat idle culling; the hub's proxy sees
    the real traffic instead.

    Parameters
    ----------
    prefix
        The server's URL prefix, ``/user/<name>/``; Voilà writes it into every link of the page.
    notebook
        The notebook served (default ``review.ipynb``), or a folder of notebooks: Voilà then lists
        them at the prefix and renders each at ``voila/render/<name>``.
    """
    proxy = Path(python).parent / "jupyter-standaloneproxy"
    notebook = Path(notebook) if notebook is not None else find_notebook()
    argv = [
        os.fspath(proxy),
        "--absolute-url",  # forward /user/<name>/... unchanged: Voilà serves under that prefix
        "--activity-interval=0",
        "--timeout=120",  # seconds Voilà may take to start on the first request
        "--unix-socket=True",  # a socket in a new private folder, not a port others could reach
        "--",
        os.fspath(python),
        "-m",
        VOILA_MODULE,  # compressed, long-cached files, as `cmrqc serve`
        os.fspath(notebook),
        "--CachedVoila.unix_socket={unix_socket}",  # filled in by the proxy
        "--no-browser",
        f"--Voila.base_url={prefix if prefix.endswith('/') else prefix + '/'}",
        # /voila/files/ would serve pictures of the notebook's folder: nothing is needed from it.
        "--VoilaConfiguration.file_allowlist=[]",
    ]
    if notebook.is_dir():
        # A folder of notebooks (a lead's): the plain list of links, rendered on the server. The
        # JupyterLab-style list asks a contents API that standalone Voilà does not serve.
        argv.append("--VoilaConfiguration.classic_tree=True")
    for section, values in voila_settings(config_dir).items():
        for name, value in values.items():
            if section == "VoilaConfiguration" and name == "preheat_kernel":
                # A preheated kernel per reviewer doubles the memory for a page load saved.
                value = False
            items = value if isinstance(value, list) else [value]
            argv.extend(f"--{section}.{name}={_flag_value(item)}" for item in items)
    if notebook.is_dir():
        # A lead keeps the lead's view and their own review dashboard open side by side: the
        # one-tab rule (a newer page replaces an older one) is for one dashboard, not two notebooks.
        argv.append("--ClosingKernelManager.one_tab=False")
    return argv


def first_free_port(ip: str, port: int, tries: int = 50) -> int:
    """``port`` if nothing listens on it at ``ip``, else the next free one (at most ``tries`` on).

    Voilà itself would silently move to a random port, and we would print the wrong URL; so we pick
    the port, print it, and start Voilà with ``--Voila.port_retries=0`` (it fails rather than move).
    """
    host = "127.0.0.1" if ip in ("", "0.0.0.0", "::") else ip
    for candidate in range(int(port), int(port) + tries):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
            try:
                sock.bind((host, candidate))
            except OSError:
                continue
            return candidate
    last = port + tries - 1
    raise CmrqcError(f"Ports {port} to {last} on {host} are all in use; pick another with --port.")


def _prepend_path(current: str | None, first: Path) -> str:
    return os.pathsep.join([str(first), *([current] if current else [])])


def serve_environment(
    root: Path,
    user: str,
    config_dir: Path,
    base: dict[str, str] | None = None,
    ip: str = "127.0.0.1",
    token: str | None = None,
) -> dict[str, str]:
    """Environment of the Voilà server (inherited by its kernels).

    Sets ``CMRQC_ROOT`` and ``CMRQC_USER``, drops an inherited ``JUPYTERHUB_USER`` (it would
    override the reviewer chosen here) and puts ``voila_config`` on ``JUPYTER_PATH`` so Voilà
    finds the ``cmrqc`` template. With ``token``, the server asks it of every request
    (:mod:`cmrqc_widgets.serve.app` reads it and removes it before any kernel starts).
    """
    env = dict(os.environ if base is None else base)
    env.pop("JUPYTERHUB_USER", None)
    env.pop(TOKEN_ENV, None)
    if token:
        env[TOKEN_ENV] = token
    env["CMRQC_ROOT"] = str(root)
    env["CMRQC_USER"] = user
    env["JUPYTER_PATH"] = _prepend_path(env.get("JUPYTER_PATH"), config_dir)
    # Where a preheated kernel's `voila.utils.wait_for_request` reaches the server.
    env["VOILA_APP_IP"] = "127.0.0.1" if ip in ("", "0.0.0.0", "::") else ip
    return env


def ensure_demo(root: Path, user: str) -> Path:
    """Create the demo cohort and the reviewer's ``demo.json`` unless it exists; return its path."""
    dataset = user_folder(root, user) / DEMO_DATASET
    if dataset.exists():
        return dataset
    from ..demo import make_demo_cohort

    return Path(make_demo_cohort(root, user, dataset=DEMO_DATASET))


def _run(argv: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> int:
    """Run a server in the foreground until it exits, the user presses Ctrl-C or we get SIGTERM."""
    process = subprocess.Popen(list(argv), env=env, cwd=cwd)
    previous = None
    # A service manager stopping `cmrqc` must stop the server (and so its kernels) too.
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signum))
    try:
        return process.wait()
    except KeyboardInterrupt:
        # The server got the same SIGINT from the terminal; let it shut its kernels down.
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def hub_environment(
    root: Path,
    *,
    port: int = 8000,
    ip: str = "127.0.0.1",
    state: Path,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """Environment read by ``voila_config/jupyterhub_config.py`` for a local trial hub."""
    env = dict(os.environ if base is None else base)
    env.update(
        CMRQC_ROOT=str(root),
        CMRQC_HUB_IP=ip,
        CMRQC_HUB_PORT=str(int(port)),
        CMRQC_HUB_STATE=str(state),
        CMRQC_HUB_SPAWNER="simple",
    )
    return env
