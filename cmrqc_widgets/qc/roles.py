"""Who is on the team: the reviewers of a dataset and the leads, read from the data root in the kernel.

``users.json`` stays ``{name: password hash}`` for every reviewer; the ``leads`` group is one
extra entry under the key ``"#groups"`` (never a valid user name), so files without it read as
before and mean "no leads"::

    {"alice": "scrypt$...", "bob": "scrypt$...", "#groups": {"leads": ["carol"]}}

These answers come from files on the server, never from a value a browser could set. Behind
JupyterHub the hub (which reads ``users.json``) also tells a lead's server in its environment
(``CMRQC_LEAD``, see :func:`lead_by_hub`): in production ``users.json`` is root's alone.
:mod:`cmrqc_widgets.serve.auth` writes the group (``cmrqc user add carol --lead``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import AuthError, InvalidNameError
from ..names import check_dataset_name, check_username, resolve_root, user_folder

__all__ = [
    "GROUPS_KEY",
    "LEADS",
    "LEAD_ENV",
    "is_lead",
    "lead_by_hub",
    "read_groups",
    "reviewers_of",
    "team_members",
]

GROUPS_KEY = "#groups"
"""Key of the groups entry in ``users.json``."""

LEADS = "leads"
"""Name of the group whose members may open the lead's view."""

LEAD_ENV = "CMRQC_LEAD"
"""Environment variable the hub's spawner sets to the lead's name in a lead's server."""


def _users_json(root: Path) -> dict | None:
    path = root / "users.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AuthError(f"Credentials file {path} cannot be read ({exc}).") from None
    if not isinstance(data, dict):
        raise AuthError(f"Credentials file {path} must be a JSON object of user name to password hash.")
    return data


def read_groups(root: str | os.PathLike[str] | None = None) -> dict[str, list[str]]:
    """Groups of ``users.json``: ``{"leads": [...]}``; empty when there is no file or no group."""
    data = _users_json(resolve_root(root)) or {}
    groups = data.get(GROUPS_KEY, {})
    if not isinstance(groups, dict) or not all(
        isinstance(members, list) and all(isinstance(m, str) for m in members) for members in groups.values()
    ):
        raise AuthError(
            f'Credentials file {resolve_root(root) / "users.json"} has a malformed "{GROUPS_KEY}".'
        )
    return {str(name): list(members) for name, members in groups.items()}


def is_lead(root: str | os.PathLike[str] | None, user: str) -> bool:
    """Whether ``user`` is in the ``leads`` group of ``users.json``."""
    return user in read_groups(root).get(LEADS, [])


def lead_by_hub(user: str) -> bool:
    """Whether the hub said ``user`` is a lead when it started this server (``CMRQC_LEAD``).

    The spawner sets it from ``users.json`` (see :mod:`cmrqc_widgets.serve.spawner`); a browser
    cannot change a server's environment.
    """
    return bool(user) and os.environ.get(LEAD_ENV) == user


def team_members(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Reviewers known to the data root: ``users.json``'s names, else the folders under ``users/``.

    The folders are also the answer when ``users.json`` exists but may not be read (production (a):
    root's alone, and a lead's server runs as the lead).
    """
    root = resolve_root(root)
    try:
        data = _users_json(root)
    except AuthError:
        if os.access(root / "users.json", os.R_OK):
            raise
        data = None
    if data is not None:
        return sorted(name for name in data if name != GROUPS_KEY)
    try:
        return sorted(entry.name for entry in os.scandir(root / "users") if entry.is_dir())
    except FileNotFoundError:
        return []


def reviewers_of(root: str | os.PathLike[str] | None, dataset: str) -> list[str]:
    """Team members who have a dataset file named ``dataset`` in their folder, sorted."""
    check_dataset_name(dataset)
    root = resolve_root(root)
    found = []
    for name in team_members(root):
        try:
            check_username(name)
        except InvalidNameError:
            continue
        try:
            if (user_folder(root, name) / dataset).is_file():
                found.append(name)
        except OSError:  # a folder this user may not look into
            continue
    return found
