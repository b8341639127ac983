"""What the hub starts for whom: a reviewer's server serves review.ipynb only, a lead's both notebooks.

The spawner is driven without a hub: ``LocalProcessSpawner.start`` is replaced by a stub that
records the command and the environment the real one would use.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from cmrqc_widgets.serve.auth import add_user
from cmrqc_widgets.serve.voila import find_notebook

pytest.importorskip("jupyterhub")
from cmrqc_widgets.serve import spawner as spawner_module


@pytest.fixture
def started(monkeypatch):
    """Each start's (command, environment), recorded instead of starting a process."""
    calls: list[tuple[list[str], dict[str, str]]] = []

    async def fake_start(self):
        calls.append((list(self.cmd), self.get_env()))
        return ("127.0.0.1", 1)

    async def fake_stop(self, now=False):
        return None

    monkeypatch.setattr(spawner_module.LocalProcessSpawner, "start", fake_start)
    monkeypatch.setattr(spawner_module.LocalProcessSpawner, "stop", fake_stop)
    # What JupyterHub would pass on: an account without a home, and a CMRQC_LEAD from somewhere.
    inherited = {"HOME": "/nonexistent-home", "CMRQC_LEAD": "mallory"}
    monkeypatch.setattr(spawner_module.LocalProcessSpawner, "get_env", lambda self: dict(inherited))
    return calls


def trial_spawner(root: Path, name: str) -> spawner_module.TrialSpawner:
    """A trial spawner for ``name`` on the data root ``root``, as the hub would make it."""
    spawner = spawner_module.TrialSpawner(
        user=SimpleNamespace(name=name, url=f"/user/{name}/"), environment={"CMRQC_ROOT": str(root)}
    )
    spawner._server = SimpleNamespace(base_url=f"/user/{name}/")
    if os.geteuid() == 0:
        spawner.allow_root = True  # the test machine runs as root; the refusal is tested in test_serve
    return spawner


def served(command: list[str]) -> Path:
    """The notebook (or folder of notebooks) Voilà is started on."""
    voila = command[command.index("--") + 1 :]
    return Path(voila[3])


def test_a_reviewers_server_serves_the_review_notebook_only(tmp_path, started):
    """A reviewer's Voilà gets review.ipynb itself (no list, no lead notebook) and no CMRQC_LEAD."""
    add_user(tmp_path, "ann", "team-pass-12345")
    add_user(tmp_path, "lee", "team-pass-12345", lead=True)
    spawner = trial_spawner(tmp_path, "ann")
    asyncio.run(spawner.start())
    command, env = started[0]
    assert served(command) == find_notebook()
    assert not any("classic_tree" in arg or "one_tab=False" in arg for arg in command)
    assert "CMRQC_LEAD" not in env  # not even the hub's own value
    scratch = spawner.scratch
    assert stat.S_IMODE(scratch.stat().st_mode) == 0o700 and not (scratch / "notebooks").exists()
    assert env["JUPYTER_RUNTIME_DIR"] == str(scratch / "runtime")
    assert env["HOME"] == "/nonexistent-home"  # the trial spawner makes its own home folder
    asyncio.run(spawner.stop())
    assert not scratch.exists()


def test_a_leads_server_lists_exactly_the_two_notebooks(tmp_path, started):
    """A lead's Voilà serves a private folder of lead.ipynb and review.ipynb, and knows it is a lead's."""
    add_user(tmp_path, "lee", "team-pass-12345", lead=True)
    spawner = trial_spawner(tmp_path, "lee")
    asyncio.run(spawner.start())
    command, env = started[0]
    folder = served(command)
    assert folder.is_dir() and folder.parent == spawner.scratch
    assert sorted(p.name for p in folder.iterdir()) == ["lead.ipynb", "review.ipynb"]
    for name in ("lead.ipynb", "review.ipynb"):
        assert (folder / name).read_bytes() == find_notebook(name=name).read_bytes()
    assert "--VoilaConfiguration.classic_tree=True" in command
    assert command[-1] == "--ClosingKernelManager.one_tab=False"  # after voila.json's flags: it wins
    assert "--VoilaConfiguration.file_allowlist=[]" in command
    assert env["CMRQC_LEAD"] == "lee"
    # After a hub restart, the spawner restored from the database still knows what to remove.
    restored = trial_spawner(tmp_path, "lee")
    restored.load_state(spawner.get_state())
    asyncio.run(restored.stop())
    assert not folder.exists()


def test_an_unreadable_users_file_makes_nobody_a_lead(tmp_path, started):
    """A users.json the hub cannot parse gives a reviewer's server, never a lead's."""
    (tmp_path / "users.json").write_text("{not json")
    spawner = trial_spawner(tmp_path, "lee")
    asyncio.run(spawner.start())
    command, env = started[0]
    assert served(command) == find_notebook() and "CMRQC_LEAD" not in env
    asyncio.run(spawner.stop())


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a folder to another account needs root")
def test_a_system_accounts_server_gets_its_own_scratch_as_home(tmp_path, started):
    """Production: the scratch folder belongs to the reviewer's account and is HOME when it has none."""
    import pwd

    account = pwd.getpwnam("nobody")  # an ordinary account whose home does not exist
    spawner = spawner_module.ReviewerSpawner(
        user=SimpleNamespace(name="nobody", url="/user/nobody/"), environment={"CMRQC_ROOT": str(tmp_path)}
    )
    spawner._server = SimpleNamespace(base_url="/user/nobody/")
    asyncio.run(spawner.start())
    _command, env = started[0]
    scratch = spawner.scratch
    assert (scratch.stat().st_uid, stat.S_IMODE(scratch.stat().st_mode)) == (account.pw_uid, 0o700)
    assert (scratch / "runtime").stat().st_uid == account.pw_uid
    assert env["HOME"] == str(scratch) and env["JUPYTER_RUNTIME_DIR"] == str(scratch / "runtime")
    asyncio.run(spawner.stop())
    assert not scratch.exists()
