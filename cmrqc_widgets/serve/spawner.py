"""JupyterHub spawners for reviewers: the standalone Voilà dashboard, never as root.

Guarantees
----------
- A reviewer's server is :func:`~cmrqc_widgets.serve.voila.reviewer_command`: the standalone
  Voilà app behind ``jupyter-standaloneproxy``. The browser can use the dashboard's widgets and
  nothing else: no code, no Jupyter REST API, no files.
- A server that would run as root (uid 0) is refused before it starts, with one sentence in the
  hub log and on the spawn page.
- Every executable is an absolute path: the hub's own ``PATH`` does not matter.

:class:`ReviewerSpawner` runs each reviewer as the system user of the same name (production on one
server); :class:`TrialSpawner` runs everyone as the hub's own OS user (``cmrqc hub``, a trial).

Only the ``hub`` extra installs :mod:`jupyterhub`; nothing else in the package imports this module.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner
from traitlets import Bool

from ..errors import CmrqcError
from .voila import reviewer_command

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

    def get_args(self) -> list[str]:
        # Spawner.cmd is unused: the whole command depends on the server's URL prefix.
        return []

    async def start(self):  # type: ignore[override]
        """Refuse a server as root, then start the standalone proxy + Voilà command."""
        if reviewer_uid(self) == 0 and not self.allow_root:
            raise CmrqcError(
                f"The dashboard of {self.user.name!r} would run as root, which cmrqc refuses: "
                "run the hub as an ordinary user (trial) or give every reviewer a system account."
            )
        command = reviewer_command(self.server.base_url)
        if not Path(command[0]).is_file():
            raise CmrqcError(
                f"{command[0]} is missing; install the hub extra: pip install 'cmrqc_widgets[hub]'."
            )
        self.cmd = command
        return await super().start()


class TrialSpawner(ReviewerSpawner, SimpleLocalProcessSpawner):
    """Every reviewer's dashboard runs as the hub's own OS user (a trial: ``cmrqc hub``)."""
