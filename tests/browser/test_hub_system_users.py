"""Production set-up (a) for real: system users, the hub as root, each server as its reviewer, in Chromium.

Root only (CI runs as root). The admin steps of ``voila_config/README.md`` are followed literally,
with the ``cmrqc`` and ``jupyterhub`` of a venv of Debian's ``/usr/bin/python3`` under ``/opt``
(``tests/system_venv.py``: the tests' own Python may live under ``/root``, which no other account can
run). Two reviewers and a lead are system users; the hub (``ReviewerSpawner``, a
``LocalProcessSpawner``) runs as root and starts each server as its user. In Chromium alice and bob
log in and each rejects a case; the files on disk are theirs (owner, mode); with ``runuser``, alice
cannot read bob's folder, ``users.json`` or the hub's state; the lead logs in, opens the lead's view
and sees both reviewers' decisions (read through the ``cmrqc-leads`` group). Durations are printed.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import Server, free_port
from test_dashboard import wait_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("useradd") is None,
        reason="system users and a hub running as root need root and useradd (CI runs as root)",
    ),
]

LOAD_S = 400.0
"""Seconds a server may take to start and render: minutes on a loaded 2-core machine."""

PASSWORD = "harbour-lantern-58"
REJECT = re.compile(r"\breject \(", re.IGNORECASE)


def run(argv: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    """Run an admin command as root, outside the checkout; fail the test with its output if it fails."""
    done = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, timeout=600, cwd="/")
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done


def as_user(user: str, code: str) -> subprocess.CompletedProcess:
    """Run Python ``code`` as the system user ``user``."""
    argv = ["runuser", "-u", user, "--", "/usr/bin/python3", "-c", code]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def venv():
    """The venv of Debian's Python with ``cmrqc_widgets[hub]`` from this checkout (cached under /opt)."""
    if not Path("/usr/bin/python3").exists():
        pytest.skip("/usr/bin/python3 is missing")
    if shutil.which("configurable-http-proxy") is None:
        pytest.skip("configurable-http-proxy is not on PATH (npm install -g configurable-http-proxy)")
    from system_venv import build_venv

    path, seconds = build_venv()
    print(f"\n[system] venv {path} ready in {seconds:.0f} s")
    return path


@pytest.fixture(scope="module")
def system_users():
    """Fresh system users: two reviewers and a lead (no home, no shell), removed afterwards."""
    tag = os.getpid() % 100000
    # The leads' group too is the test's own (CMRQC_LEADS_GROUP), never the machine's cmrqc-leads.
    names = {"alice": f"cra{tag}", "bob": f"crb{tag}", "lead": f"crl{tag}", "group": f"crleads{tag}"}
    accounts = [names["alice"], names["bob"], names["lead"]]
    for name in accounts:
        subprocess.run(["useradd", "--system", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield names
    finally:
        for name in accounts:
            subprocess.run(["userdel", name], check=False, capture_output=True)
        subprocess.run(["groupdel", names["group"]], check=False, capture_output=True)


@pytest.fixture(scope="module")
def production(venv, system_users, tmp_path_factory):
    """The documented admin steps, then ``jupyterhub -f <shipped config>`` as root on free ports."""
    base = Path(tempfile.mkdtemp(prefix="cmrqc-prod-", dir="/tmp"))
    try:
        yield from _production(venv, system_users, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _production(venv: Path, system_users: dict[str, str], base: Path):
    os.chmod(base, 0o755)  # like /srv: every account may pass
    root, images = base / "cmrqc", base / "images"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JUPYTERHUB_USER", "CMRQC_USER")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["CMRQC_LEADS_GROUP"] = system_users["group"]
    timings = {}
    started = time.monotonic()
    # The cases, somewhere outside the data root (a demo cohort stands in for /srv/images/cohort1).
    run(["cmrqc", "demo", "--root", str(images), "--user", "nobodyyet", "--patients", "3"], env)
    alice, bob, lead = system_users["alice"], system_users["bob"], system_users["lead"]
    # The README's steps, in its order, for each reviewer; then the lead.
    for name in (alice, bob):
        run(["cmrqc", "dataset", "create", "cohort.json", "--user", name, "--root", str(root),
             str(images / "demo_cohort")], env)  # fmt: skip
        run(["cmrqc", "user", "add", name, "--system", "--root", str(root)], env, stdin=PASSWORD + "\n")
    run(["cmrqc", "user", "add", lead, "--lead", "--system", "--root", str(root)], env, stdin=PASSWORD + "\n")
    run(["chmod", "-R", "a+rX", str(images)], env)
    timings["admin steps"] = time.monotonic() - started

    where = "from cmrqc_widgets.serve import shipped_dir; print(shipped_dir('voila_config'))"
    config = run(["python", "-c", where], env).stdout.strip()
    assert config.startswith(str(venv)), config  # the installed copy, not the checkout
    port = free_port()
    env.update(
        CMRQC_ROOT=str(root),
        CMRQC_HUB_PORT=str(port),
        CMRQC_HUB_API_PORT=str(free_port()),
        CMRQC_PROXY_API_PORT=str(free_port()),
    )
    argv = ["jupyterhub", "-f", f"{config}/jupyterhub_config.py"]
    server = Server("jupyterhub-system", argv, env, cwd=base)
    server.start()
    try:
        started = time.monotonic()
        server.wait_for_url(f"http://127.0.0.1:{port}/hub/api", timeout=180, ok=lambda s: s == 200)
        timings["hub start"] = time.monotonic() - started
        yield {"url": f"http://127.0.0.1:{port}", "root": root, "users": system_users, "timings": timings,
               "server": server}  # fmt: skip
    finally:
        server.stop()


def log_in(page, hub: str, user: str) -> None:
    """Submit the hub's login form as ``user``."""
    page.goto(f"{hub}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit", no_wait_after=True)


def mode(path: Path) -> int:
    """Permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


def test_reviewers_decide_as_their_own_system_users(production, new_page, shot):
    """alice and bob log in through Chromium; each server runs as its user and writes files only they own."""
    hub, root, users = production["url"], production["root"], production["users"]
    reviewers = [users["alice"], users["bob"]]
    pages = {}
    for name in reviewers:  # both log in at once, as on a real morning
        pages[name] = new_page()
        log_in(pages[name], hub, name)
    for name in reviewers:
        started = time.monotonic()
        button = pages[name].get_by_role("button", name=REJECT).first
        button.wait_for(state="visible", timeout=LOAD_S * 1000)
        production["timings"][f"{name} dashboard"] = time.monotonic() - started
        shot(pages[name], f"{name}-dashboard", full_page=True)
        button.click()
        dataset = root / "users" / name / "cohort.json"
        wait_for(lambda d=dataset: "reject:" in d.read_text(), 60, f"{name}'s reject on disk")

    # Every server process runs as its reviewer, none as root.
    for name in reviewers:
        uid = pwd.getpwnam(name).pw_uid
        procs = subprocess.run(["pgrep", "-u", str(uid), "-f", "voila"], capture_output=True, text=True)
        assert procs.stdout.split(), f"no Voilà process runs as {name}"
    root_voila = subprocess.run(["pgrep", "-u", "0", "-f", "-- .*-m voila"], capture_output=True, text=True)
    assert not root_voila.stdout.split(), "a reviewer's Voilà runs as root"

    # A reviewer's server serves no lead's view and no list of notebooks.
    for path in ("voila/render/lead.ipynb", "voila/tree"):
        response = pages[reviewers[0]].goto(f"{hub}/user/{reviewers[0]}/{path}")
        assert response is not None and response.status in (403, 404), (path, response and response.status)

    for name in reviewers:
        account = pwd.getpwnam(name)
        folder = root / "users" / name
        dataset = folder / "cohort.json"
        decisions = json.loads(dataset.read_text())
        assert sum(v["ED_Comments"].startswith("reject:") for v in decisions.values()) == 1
        for path in (dataset, *folder.glob("cohort.json.*")):  # the dataset, its journal and lock
            assert path.stat().st_uid == account.pw_uid, (path, path.stat().st_uid)
            assert mode(path) & 0o027 == 0, (path, oct(mode(path)))  # nobody else writes; others nothing
        assert folder.stat().st_uid == account.pw_uid and mode(folder) & 0o027 == 0, oct(mode(folder))
        assert folder.stat().st_gid == grp.getgrnam(users["group"]).gr_gid  # leads read, see below

    alice, bob = reviewers
    state = root / ".hub"
    assert mode(state) == 0o700 and mode(state / "jupyterhub.sqlite") == 0o600
    assert mode(state / "jupyterhub_cookie_secret") == 0o600 and mode(root / "users.json") == 0o600
    for target in (
        root / "users" / bob,
        root / "users" / bob / "cohort.json",
        root / "users.json",
        state,
        state / "jupyterhub_cookie_secret",
        state / "jupyterhub.sqlite",
    ):
        code = f"import os; p={str(target)!r}; os.listdir(p) if os.path.isdir(p) else open(p).read()"
        refused = as_user(alice, code)
        assert refused.returncode != 0 and "PermissionError" in refused.stderr, (target, refused.stderr)
    own = as_user(alice, f"print(len(open({str(root / 'users' / alice / 'cohort.json')!r}).read()))")
    assert own.returncode == 0, own.stderr
    print(f"\n[system] {', '.join(f'{k} {v:.1f} s' for k, v in production['timings'].items())}")


def test_the_lead_reads_the_reviewers_decisions_through_the_group(production, new_page, shot):
    """The lead (a system user in the leads' group) opens the lead's view, sees both reviewers' decisions."""
    hub, users = production["url"], production["users"]
    lead = users["lead"]
    assert lead in grp.getgrnam(users["group"]).gr_mem
    page = new_page()
    started = time.monotonic()
    log_in(page, hub, lead)
    link = page.get_by_role("link", name="lead.ipynb")
    link.wait_for(state="visible", timeout=LOAD_S * 1000)
    with page.expect_popup() as opened:  # Voilà's list opens a notebook in a new tab
        link.click()
    page = opened.value
    page.set_default_timeout(60_000)
    progress = page.locator(".cmrqc-progress").first
    try:
        wait_for(lambda: progress.count() and "decided" in progress.inner_text(), LOAD_S, "the lead's view")
    except BaseException:
        print(f"\n[system] the lead's page at {page.url}:\n{page.locator('body').inner_text()[:3000]}")
        raise
    finally:
        shot(page, "lead-view", full_page=True)
    print(f"\n[system] lead: login -> lead's view in {time.monotonic() - started:.1f} s")
    text = progress.inner_text()
    for name in (users["alice"], users["bob"]):
        assert re.search(rf"{name}\s+1 of 6 decided", text), text
    # The lead's server runs as the lead, not root; the group gives reading, never writing, and
    # neither users.json nor the hub's state.
    lead_uid = str(pwd.getpwnam(lead).pw_uid)
    assert subprocess.run(["pgrep", "-u", lead_uid, "-f", "voila"], capture_output=True).returncode == 0
    root = production["root"]
    alices = root / "users" / users["alice"] / "cohort.json"
    assert as_user(lead, f"print(open({str(alices)!r}).read()[:1])").returncode == 0
    for code in (
        f"open({str(alices)!r}, 'a')",
        f"open({str(root / 'users.json')!r}).read()",
        f"open({str(root / '.hub' / 'jupyterhub.sqlite')!r}).read()",
    ):
        refused = as_user(lead, code)
        assert refused.returncode != 0 and "PermissionError" in refused.stderr, (code, refused.stderr)
