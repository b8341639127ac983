"""JupyterHub spawners for reviewers: the standalone Voilà dashboard, never as root.

Guarantees
----------
- A reviewer's server is :func:`~cmrqc_widgets.serve.voila.reviewer_command`: the standalone
  Voilà app behind ``jupyter-standaloneproxy``. The browser can use the dashboard's widgets and
  nothing else: no code, no Jupyter REST API, no files.
- A server that would run as root (uid 0) is refused before it starts, with one sentence in the
  hub log and on the spawn page.
- Every executable is an absolute path: the hub's own ``PATH`` does not matter.
- A reviewer's server serves ``review.ipynb`` and nothing else (``/voila/render/lead.ipynb`` is a
  404). A member of the ``leads`` group of ``users.json`` (read by the hub, never by the browser)
  gets ``lead.ipynb`` and ``review.ipynb``: Voilà's tree of a private folder holding copies of
  those two notebooks only, landing on the list of both; ``CMRQC_LEAD`` tells the lead's kernel the
  hub's answer, so it need not read ``users.json`` (root's alone in production).
- Each server gets a private scratch folder (0700, the server's owner), removed when it stops:
  Jupyter's runtime files go there, and it is ``HOME`` for a system account without a home.

:class:`ReviewerSpawner` runs each reviewer as the system user of the same name (production on one
server); :class:`TrialSpawner` runs everyone as the hub's own OS user (``cmrqc hub``, a trial).

Only the ``hub`` extra installs :mod:`jupyterhub`; nothing else in the package imports this module.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner
from traitlets import Bool

from ..errors import AuthError, CmrqcError
from ..names import resolve_root
from ..qc.roles import LEAD_ENV, is_lead
from .voila import LEAD_NOTEBOOK, NOTEBOOK, find_notebook, reviewer_command

__all__ = ["ReviewerSpawner", "TrialSpawner", "reviewer_uid"]


def reviewer_uid(spawner: LocalProcessSpawner) -> int:
    """The uid a reviewer's server would run as: the hub's own for the trial, else the reviewer's account."""
    if isinstance(spawner, SimpleLocalProcessSpawner):
        return os.geteuid()
    try:
        return pwd.getpwnam(spawner.user.name).pw_uid
    except KeyError:
        raise CmrqcError(
            f"Reviewer {spawner.user.name!r} has no system account on this server; "
            f"create it first (see voila_config/README.md)."
        ) from None


class ReviewerSpawner(LocalProcessSpawner):
    """Each reviewer's dashboard runs as the system user of the same name (the hub runs as root)."""

    allow_root = Bool(
        False,
        help=(
            "Let a reviewer's server run as root. Never in production; only for tests on machines "
            "where no other account can run this Python."
        ),
    ).tag(config=True)

    scratch: Path | None = None

    def get_args(self) -> list[str]:
        # Spawner.cmd is unused: the whole command depends on the server's URL prefix.
        return []

    def is_lead(self) -> bool:
        """Whether this server's user is in the ``leads`` group of the data root's ``users.json``."""
        try:
            return is_lead(resolve_root(self.environment.get("CMRQC_ROOT") or None), self.user.name)
        except AuthError as exc:
            self.log.error("%s", exc)  # an unreadable users.json makes nobody a lead
            return False

    def _owner(self) -> tuple[int, int]:
        if isinstance(self, SimpleLocalProcessSpawner):
            return os.geteuid(), os.getegid()
        account = pwd.getpwnam(self.user.name)
        return account.pw_uid, account.pw_gid

    def _make_scratch(self, lead: bool) -> Path:
        """A private folder for this server (its owner's, 0700); for a lead, the two notebooks served."""
        scratch = Path(tempfile.mkdtemp(prefix=f"cmrqc-{self.user.name}-"))
        uid, gid = self._owner()
        (scratch / "runtime").mkdir(mode=0o700)
        if lead:
            notebooks = scratch / "notebooks"
            notebooks.mkdir(mode=0o700)
            for name in (LEAD_NOTEBOOK, NOTEBOOK):
                shutil.copyfile(find_notebook(name=name), notebooks / name)
                os.chmod(notebooks / name, 0o400)
        if (uid, gid) != (os.geteuid(), os.getegid()):  # production: the hub (root) hands it over
            for path in (scratch, *scratch.rglob("*")):
                os.chown(path, uid, gid)
        return scratch

    def _remove_scratch(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def get_state(self) -> dict:
        """The hub's saved state, plus the scratch folder (removed at stop even after a hub restart)."""
        state = super().get_state()
        if self.scratch is not None:
            state["cmrqc_scratch"] = str(self.scratch)
        return state

    def load_state(self, state: dict) -> None:
        """Restore the saved state and the scratch folder of a server still running."""
        super().load_state(state)
        if state.get("cmrqc_scratch"):
            self.scratch = Path(state["cmrqc_scratch"])

    def get_env(self) -> dict[str, str]:
        """The hub's environment for the server, plus the scratch folder and, for a lead, ``CMRQC_LEAD``."""
        env = super().get_env()
        env.pop(LEAD_ENV, None)
        if self.scratch is not None:
            env["JUPYTER_RUNTIME_DIR"] = str(self.scratch / "runtime")
            home = env.get("HOME", "")
            # A system account made without a home (the trial's home is made by the spawner itself).
            if not isinstance(self, SimpleLocalProcessSpawner) and not os.path.isdir(home or "/nonexistent"):
                env["HOME"] = str(self.scratch)
            if (self.scratch / "notebooks").is_dir():
                env[LEAD_ENV] = self.user.name
        return env

    async def start(self):  # type: ignore[override]
        """Refuse a server as root, then start the standalone proxy + Voilà command."""
        if reviewer_uid(self) == 0 and not self.allow_root:
            raise CmrqcError(
                f"The dashboard of {self.user.name!r} would run as root, which cmrqc refuses: "
                "run the hub as an ordinary user (trial) or give every reviewer a system account."
            )
        self._remove_scratch()
        lead = self.is_lead()
        self.scratch = self._make_scratch(lead)
        # A lead's server is Voilà's tree of the two notebooks: the lead lands on the list of both.
        notebook = self.scratch / "notebooks" if lead else None
        command = reviewer_command(self.server.base_url, notebook=notebook)
        if not Path(command[0]).is_file():
            self._remove_scratch()
            raise CmrqcError(
                f"{command[0]} is missing; install the hub extra: pip install 'cmrqc_widgets[hub]'."
            )
        self.cmd = command
        try:
            return await super().start()
        except BaseException:
            self._remove_scratch()  # nothing started: nothing left behind
            raise

    async def stop(self, now: bool = False) -> None:  # type: ignore[override]
        """Stop the server, then remove its scratch folder."""
        try:
            await super().stop(now=now)
        finally:
            self._remove_scratch()


class TrialSpawner(ReviewerSpawner, SimpleLocalProcessSpawner):
    """Every reviewer's dashboard runs as the hub's own OS user (a trial: ``cmrqc hub``)."""
