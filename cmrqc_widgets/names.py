"""The shared vocabulary: phases, decisions, structures, names and where files live.

Every path the tool builds from a user name or a dataset name goes through
:func:`safe_path`, so nothing a client sends can lead outside the data root.
"""

from __future__ import annotations

import getpass
import os
import re
from pathlib import Path

from .errors import InvalidNameError

PHASES: tuple[str, ...] = ("ED", "ES")
"""Cardiac phases: end-diastole and end-systole."""

DECISIONS: tuple[str, ...] = ("accept", "reject", "finetune", "unclassified")
"""The four mutually exclusive decisions, in their canonical (on-disk) spelling."""

MAX_COMMENT = 10_000
"""Longest comment saved, in characters (a browser could otherwise send megabytes)."""

NO_DECISION = "none"
"""Key used in statistics and exports for a case with no decision yet."""

STRUCTURES: tuple[str, ...] = ("LV", "RV", "MYO")
"""Structures we colour and measure: LV blood pool, RV blood pool, LV myocardium."""

STRUCTURE_COLOURS: dict[str, tuple[int, int, int]] = {
    "LV": (255, 0, 0),
    "RV": (0, 255, 0),
    "MYO": (0, 0, 255),
}
"""Colour of each structure (the old app's convention), whatever its label number."""

DEFAULT_ROOT = Path("~/cmrqc")
"""Data root when neither an argument nor ``CMRQC_ROOT`` gives one."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def check_phase(phase: str) -> str:
    """Return ``phase`` as ``"ED"`` or ``"ES"``; raise :class:`InvalidNameError` otherwise."""
    if isinstance(phase, str) and phase.upper() in PHASES:
        return phase.upper()
    raise InvalidNameError(f"Phase {phase!r} is not allowed; use 'ED' or 'ES'.")


def check_username(name: str) -> str:
    """Return ``name`` if it is a safe user name (letters, digits, ``. _ @ -``; at most 64)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidNameError(
            f"User name {name!r} is not allowed; use letters, digits, '.', '_', '@' or '-'."
        )
    return name


def check_dataset_name(name: str) -> str:
    """Return ``name`` if it is a safe dataset file name ending in ``.json``."""
    if (
        not isinstance(name, str)
        or not name.endswith(".json")
        or not _NAME.fullmatch(name)
        or ".." in name
    ):
        raise InvalidNameError(
            f"Dataset name {name!r} is not allowed; use a plain file name ending in '.json'."
        )
    return name


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Data root: ``root`` if given, else ``$CMRQC_ROOT``, else :data:`DEFAULT_ROOT`."""
    chosen = root if root is not None else os.environ.get("CMRQC_ROOT") or DEFAULT_ROOT
    return Path(chosen).expanduser().resolve()


def resolve_user(user: str | None = None) -> str:
    """Reviewer: ``user`` if given, else ``$JUPYTERHUB_USER``, else ``$CMRQC_USER``, else the OS user.

    An explicit empty name is refused, never taken as "whoever runs this".
    """
    chosen = (
        user
        if user is not None
        else os.environ.get("JUPYTERHUB_USER")
        or os.environ.get("CMRQC_USER")
        or getpass.getuser()
    )
    return check_username(chosen)


def safe_path(root: Path, *parts: str) -> Path:
    """Join ``parts`` under ``root`` and refuse any result outside it (``..``, absolute, symlinks)."""
    root = Path(root).resolve()
    for part in parts:
        if not part or Path(part).is_absolute() or part in (".", "..") or "/" in part or "\\" in part:
            raise InvalidNameError(f"Path part {part!r} is not allowed inside the data root.")
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise InvalidNameError(f"Path {path} leads outside the data root {root}.")
    return path


def user_folder(root: Path, user: str) -> Path:
    """Folder holding one reviewer's dataset files: ``<root>/users/<user>``."""
    return safe_path(root, "users", check_username(user))
