"""Where patient folders may be: inside the data root, or inside an image root the admin lists.

Guarantees
----------
- A patient key of a dataset file names a folder that is read only if, once resolved (``..``
  and symlinks followed, :meth:`pathlib.Path.resolve`), it lies inside the data root or inside
  one of the extra image roots listed in ``$CMRQC_IMAGE_ROOTS`` (absolute folders separated by
  ``os.pathsep``, ``:`` on Linux). Anything else raises :class:`PatientFolderError`, one sentence
  naming the key; nothing of the folder is read, nothing on disk changes.
- A key with a ``..`` part is refused whatever it resolves to (no dataset file the tool writes
  holds one).
- Symlinks are allowed where they lead: a patient folder linked to another folder inside an
  allowed root is read; one linked outside every allowed root is refused.
- The allowed roots are resolved once (:func:`image_roots`), when a review screen opens.

Relative keys are under the data root, as before. The environment variable is the admin's: the
hub passes it to every reviewer's server (``voila_config/jupyterhub_config.py``), ``cmrqc serve``
and the CLI read it, and a reviewer cannot change it (reviewers run no code).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import CaseError

log = logging.getLogger(__name__)

__all__ = ["IMAGE_ROOTS_ENV", "PatientFolderError", "image_roots", "outside_note", "patient_folder"]

IMAGE_ROOTS_ENV = "CMRQC_IMAGE_ROOTS"
"""Environment variable listing extra folders patient folders may be in (``os.pathsep``-separated)."""


class PatientFolderError(CaseError):
    """A patient key names a folder outside every allowed root (or holds a ``..`` part)."""


def image_roots(
    data_root: str | os.PathLike[str], extra: Iterable[str | os.PathLike[str]] | None = None
) -> tuple[Path, ...]:
    """The folders patient folders may be in: the data root first, then the extra image roots.

    Parameters
    ----------
    data_root : path
        The data root (relative patient keys are under it).
    extra : iterable of paths, optional
        Extra image roots; default the absolute entries of ``$CMRQC_IMAGE_ROOTS``. A relative
        entry is ignored (with a warning in the log): it would depend on the working folder.

    Returns
    -------
    tuple of Path
        Every root resolved (symlinks followed), duplicates removed.
    """
    if extra is None:
        extra = [part for part in os.environ.get(IMAGE_ROOTS_ENV, "").split(os.pathsep) if part.strip()]
    roots = [Path(data_root).expanduser().resolve()]
    for entry in extra:
        path = Path(entry).expanduser()
        if not path.is_absolute():
            log.warning("%s entry %r is not an absolute folder; it is ignored.", IMAGE_ROOTS_ENV, str(entry))
            continue
        roots.append(path.resolve())
    return tuple(dict.fromkeys(roots))


def patient_folder(key: str | os.PathLike[str], roots: tuple[Path, ...]) -> Path:
    """The folder of patient ``key``, refused unless it resolves inside one of ``roots``.

    Parameters
    ----------
    key : str or path
        The patient key of the dataset file (absolute, or relative to the data root ``roots[0]``).
    roots : tuple of Path
        Resolved allowed roots, the data root first (from :func:`image_roots`).

    Returns
    -------
    Path
        The folder as the key names it (under the data root when relative), not resolved, so the
        case keeps the name the dataset file gives it.

    Raises
    ------
    PatientFolderError
        If the key holds a ``..`` part or its folder resolves outside every root.
    """
    text = os.fspath(key)
    path = Path(text).expanduser()
    if ".." in path.parts or ".." in Path(text.replace("\\", "/")).parts:
        raise PatientFolderError(
            f"Patient key {text!r} contains '..'; patient folders must be named without it, "
            "so it is not read."
        )
    folder = path if path.is_absolute() else roots[0] / path
    real = folder.resolve()
    if not any(real.is_relative_to(root) for root in roots):
        raise PatientFolderError(
            f"Patient folder {text!r} is outside the data root and the image roots the admin allows "
            f"({IMAGE_ROOTS_ENV}), so it is not read."
        )
    return folder


def outside_note(folders: Iterable[str | os.PathLike[str]], data_root: str | os.PathLike[str]) -> str:
    """For the admin creating a dataset: ``""``, or a sentence (with a leading space) saying how
    many of ``folders`` a review screen would refuse and which folder to list."""
    roots = image_roots(data_root)
    refused = []
    for folder in folders:
        try:
            patient_folder(folder, roots)
        except PatientFolderError:
            refused.append(Path(folder))
    if not refused:
        return ""
    return (
        f" {len(refused)} of them lie outside the data root and ${IMAGE_ROOTS_ENV}: review screens refuse "
        f"them until the server's environment lists their folder, e.g. {IMAGE_ROOTS_ENV}={refused[0].parent}."
    )
