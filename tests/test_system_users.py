"""Production set-up (a), real system users: the admin commands give each reviewer a private folder.

Runs as root (CI does): creates system users, prepares their folders with the documented commands,
and checks with ``runuser`` what each account can and cannot touch; the accounts' checks use Debian's
``/usr/bin/python3`` (the tests' own Python may live under ``/root``, which they cannot run). The full
hub with these accounts, in Chromium, is ``tests/browser/test_hub_system_users.py``.
"""

from __future__ import annotations

import grp
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


def cmrqc(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the `cmrqc` command as root, the admin."""
    argv = [sys.executable, "-m", "cmrqc_widgets.cli", *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=300, env=env)


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


def test_user_add_lead_system_opens_every_folder_to_the_leads_group_read_only(reviewers, tmp_path_factory):
    """`user add --lead --system` makes the group; the lead reads (never writes) every reviewer's files."""
    alice, bob = reviewers
    lead, group = f"cql{os.getpid()}", f"cqleads{os.getpid()}"
    subprocess.run(["useradd", "--system", "--shell", "/usr/sbin/nologin", lead], check=True)
    root = Path(tempfile.mkdtemp(prefix="cmrqc-leads-", dir="/tmp"))
    env = {**os.environ, "CMRQC_LEADS_GROUP": group}  # the test's own group, not the machine's
    try:
        os.chmod(root, 0o755)
        for name in reviewers:  # reviewers added before there is a lead ...
            assert cmrqc("demo", "--root", str(root), "--user", name, env=env).returncode == 0
            assert cmrqc("user", "add", name, "--system", "--root", str(root), stdin="correct-horse-77\n",
                         env=env).returncode == 0  # fmt: skip
        assert stat.S_IMODE((root / "users" / alice).stat().st_mode) == 0o700
        run = cmrqc(
            "user", "add", lead, "--lead", "--system", "--root", str(root), stdin="lantern-owl-91\n", env=env
        )
        assert run.returncode == 0, run.stderr
        assert f"is in the system group {group}" in run.stdout
        gid = grp.getgrnam(group).gr_gid
        assert lead in grp.getgrnam(group).gr_mem
        users = root / "users"
        assert (users.stat().st_uid, users.stat().st_gid, stat.S_IMODE(users.stat().st_mode)) == (
            0,
            gid,
            0o751,
        )
        for name in (alice, bob, lead):  # ... and the lead's own folder: the group's, read-only
            folder = users / name
            assert folder.stat().st_gid == gid and stat.S_IMODE(folder.stat().st_mode) == 0o2750
            for path in folder.iterdir():
                assert path.stat().st_gid == gid and stat.S_IMODE(path.stat().st_mode) == 0o640, path
        # A file alice's server creates later is the group's too (setgid folder), with the mode the
        # store gives a new file in a group-readable folder.
        from cmrqc_widgets.store.files import new_file_mode

        later = users / alice / "later.json"
        mode = new_file_mode(later.parent)
        create = f"import os; os.close(os.open({str(later)!r}, os.O_CREAT | os.O_WRONLY, {mode}))"
        made = as_user(alice, create)
        assert made.returncode == 0, made.stderr
        assert later.stat().st_gid == gid and stat.S_IMODE(later.stat().st_mode) & 0o077 == 0o040

        dataset = users / alice / "demo.json"
        assert (
            as_user(lead, f"open({str(dataset)!r}).read(); import os; os.listdir({str(users)!r})").returncode
            == 0
        )
        for code in (f"open({str(dataset)!r}, 'a')", f"open({str(root / 'users.json')!r}).read()"):
            refused = as_user(lead, code)
            assert refused.returncode != 0 and "PermissionError" in refused.stderr, code
        # A reviewer still reaches nothing of another's, nor lists the team.
        for code in (
            f"open({str(users / bob / 'demo.json')!r}).read()",
            f"import os; os.listdir({str(users)!r})",
        ):
            refused = as_user(alice, code)
            assert refused.returncode != 0 and "PermissionError" in refused.stderr, code
    finally:
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run(["userdel", lead], check=False)
        subprocess.run(["groupdel", group], check=False, capture_output=True)
