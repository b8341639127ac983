"""Production set-up (a), real system users: the admin commands give each reviewer a private folder.

Runs as root (CI does): creates two system users, prepares their folders with the documented
commands, and checks with ``runuser`` what each account can and cannot touch. The full hub with
``LocalProcessSpawner`` is not run here: on these machines Python lives under ``/root`` (0700),
which no other account can execute, so the reviewers' checks use Debian's ``/usr/bin/python3``.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("useradd") is None,
    reason="creating system users needs root and useradd (CI runs as root)",
)

SYSTEM_PYTHON = "/usr/bin/python3"


def cmrqc(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run the `cmrqc` command as root, the admin."""
    argv = [sys.executable, "-m", "cmrqc_widgets.cli", *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=300)


def as_user(user: str, code: str) -> subprocess.CompletedProcess:
    """Run Python ``code`` as the system user ``user``."""
    return subprocess.run(
        ["runuser", "-u", user, "--", SYSTEM_PYTHON, "-c", code], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def reviewers():
    """Two fresh system users (no home, no shell), removed afterwards."""
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} is missing")
    names = [f"cqa{os.getpid()}", f"cqb{os.getpid()}"]
    for name in names:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True
        )
    try:
        yield names
    finally:
        for name in names:
            subprocess.run(["userdel", name], check=False)


def test_user_add_system_gives_each_reviewer_a_private_folder(reviewers):
    """After `cmrqc demo`, `user add --system` and `dataset create`, each reviewer owns only their folder."""
    alice, bob = reviewers
    root = Path(tempfile.mkdtemp(prefix="cmrqc-system-", dir="/tmp"))
    try:
        for name in reviewers:
            assert cmrqc("demo", "--root", str(root), "--user", name).returncode == 0
            run = cmrqc("user", "add", name, "--system", "--root", str(root), stdin="correct-horse-77\n")
            assert run.returncode == 0, run.stderr
        # A dataset the admin adds later is the reviewer's too.
        cohort = root / "demo_cohort"
        run = cmrqc("dataset", "create", "more.json", "--user", alice, "--root", str(root), str(cohort))
        assert run.returncode == 0, run.stderr

        for name in reviewers:
            folder = root / "users" / name
            uid = int(subprocess.run(["id", "-u", name], capture_output=True, text=True).stdout)
            assert folder.stat().st_uid == uid and stat.S_IMODE(folder.stat().st_mode) == 0o700
            for path in folder.iterdir():
                assert path.stat().st_uid == uid, path
                assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
        assert (root / "users" / alice / "more.json").stat().st_uid != 0

        # The hub's state, as jupyterhub_config.py creates it.
        state = root / ".hub"
        env = {**os.environ, "CMRQC_ROOT": str(root), "CMRQC_HUB_STATE": str(state)}
        load = (
            "from traitlets.config.loader import PyFileConfigLoader as L; "
            "from cmrqc_widgets.serve import shipped_dir; "
            "L('jupyterhub_config.py', path=str(shipped_dir('voila_config'))).load_config()"
        )
        subprocess.run([sys.executable, "-c", load], env=env, check=True, timeout=120)

        mine = root / "users" / alice / "demo.json"
        bobs = root / "users" / bob / "demo.json"
        # alice reads and rewrites her own dataset and can create its lock file beside it ...
        rewrite = f"p={str(mine)!r}; t=open(p).read(); open(p, 'w').write(t); open(p + '.lock', 'w')"
        ok = as_user(alice, rewrite)
        assert ok.returncode == 0, ok.stderr
        # ... and reaches nothing of bob's, nor users.json, nor the hub's state.
        for target in (bobs, root / "users" / bob, root / "users.json", state, state / "jupyterhub.sqlite"):
            code = f"import os; p={str(target)!r}; os.listdir(p) if os.path.isdir(p) else open(p).read()"
            refused = as_user(alice, code)
            assert refused.returncode != 0 and "PermissionError" in refused.stderr, target
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_user_add_system_refuses_a_missing_account(tmp_path):
    """Without the system user, `user add --system` says so in one sentence."""
    root = str(tmp_path)
    run = cmrqc("user", "add", "nosuchreviewer", "--system", "--root", root, stdin="horse-7-correct\n")
    assert run.returncode != 0
    assert "There is no system user 'nosuchreviewer'" in run.stderr and "Traceback" not in run.stderr
