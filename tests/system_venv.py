"""A Python environment every system user can run: Debian's ``/usr/bin/python3`` in a venv under ``/opt``.

Production set-up (a) runs each reviewer's server as their own system user. The Python the tests
run under may live where other accounts cannot go (pyenv under ``/root``, 0700), so the production
test builds what an admin would: a venv of Debian's Python outside ``/root``, readable by all,
with ``cmrqc_widgets[hub]`` installed from the checkout.

The dependencies are slow to install (a few minutes from PyPI), so the venv is cached in
``/opt/cmrqc-test-venv/<key>``, the key a hash of ``pyproject.toml`` and the Python version: a
change of dependencies builds a new one. The package itself is reinstalled from the checkout at
every run (a wheel, not editable: seconds), so the code under test is always the checkout's.

Run ``python tests/system_venv.py`` to build it ahead of the tests (``.ci/run`` does, and prints
the time it took).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
CACHE = Path(os.environ.get("CMRQC_TEST_VENV_CACHE", "/opt/cmrqc-test-venv"))


def venv_key(repo: Path = REPO, python: str = SYSTEM_PYTHON) -> str:
    """Hash of ``pyproject.toml`` and the Python version: what decides the venv's dependencies."""
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    ).stdout
    digest = hashlib.sha256((repo / "pyproject.toml").read_bytes() + version.encode())
    return digest.hexdigest()[:16]


def _pip(venv: Path, *args: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args], check=True)


def build_venv(repo: Path = REPO, cache: Path = CACHE) -> tuple[Path, float]:
    """The venv with ``cmrqc_widgets[hub]`` of ``repo`` installed; returns it and the seconds it took.

    Dependencies come from the cached venv when ``pyproject.toml`` has not changed; the package is
    always reinstalled from ``repo``. Every folder on the way is 0755, so every account can run it.
    """
    started = time.monotonic()
    venv = cache / venv_key(repo)
    ready = venv / ".cmrqc-deps-installed"
    if not ready.exists():
        shutil.rmtree(venv, ignore_errors=True)  # a half-built one from an interrupted run
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True)
        _pip(venv, "--upgrade", "pip")
        # The dependencies and the build backend; the package itself comes next, from the checkout.
        _pip(venv, "hatchling", f"{repo}[hub]")
        _readable_by_all(venv)
        ready.touch()
    _pip(venv, "--no-deps", "--no-build-isolation", "--force-reinstall", str(repo))
    package = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import cmrqc_widgets; print(cmrqc_widgets.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.strip()
    _readable_by_all(Path(package).parent)
    for folder in (cache, *cache.parents):
        if folder.stat().st_mode & 0o005 != 0o005:
            raise PermissionError(f"{folder} is closed to other accounts; reviewers could not run {venv}")
    return venv, time.monotonic() - started


def _readable_by_all(top: Path) -> None:
    """Give everyone read (and search or execute where the owner has it) under ``top``, whatever the umask."""
    for path in (top, *top.rglob("*")):
        if not path.is_symlink():
            mode = path.stat().st_mode & 0o7777
            wanted = mode | (0o055 if path.is_dir() or mode & 0o100 else 0o044)
            if wanted != mode:
                os.chmod(path, wanted)


if __name__ == "__main__":
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        sys.exit("Only root builds the shared test venv (the production tests run as root).")
    path, seconds = build_venv()
    print(f"Test venv {path} ready in {seconds:.0f} s.")
