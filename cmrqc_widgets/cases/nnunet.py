"""nnU-Net outputs as review cases: an images folder and a predictions folder, one folder per patient.

nnU-Net names a case ``<case>_0000.nii.gz`` in its images folder (channel 0) and writes its
prediction as ``<case>.nii.gz`` in another folder. A reviewer thinks in patients and phases, so
:func:`gather_nnunet` reads the patient and the phase of each case from its name (the default
pattern takes ``patient001_ED`` / ``patient001-es``) or from a table (CSV with columns ``case``,
``patient``, ``phase``), and links both files into ``<out>/<patient>/`` under the names of the
``nnunet`` preset (``<patient>_<phase>_0000.nii.gz`` and ``<patient>_<phase>.nii.gz``). Nothing is
copied (a copy is made only where the file system refuses links).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from pathlib import Path

from ..errors import CaseError
from ..names import PHASES

DEFAULT_PATTERN = r"^(?P<patient>.+?)[_-](?P<phase>ED|ES)$"
"""Case name -> patient and phase, case-insensitive: ``patient001_ED``, ``sub-12-es``."""

IMAGE_SUFFIX = "_0000.nii.gz"


def _phase_table(table: Path) -> dict[str, tuple[str, str]]:
    try:
        with open(table, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise CaseError(f"The phase table {table} cannot be read ({exc.strerror or exc}).") from None
    if not rows or not {"case", "patient", "phase"} <= set(rows[0]):
        raise CaseError(f"The phase table {table} needs the columns case, patient and phase.")
    return {row["case"].strip(): (row["patient"].strip(), row["phase"].strip().upper()) for row in rows}


def _link(source: Path, target: Path) -> None:
    if target.is_symlink() or target.exists():
        target.unlink()
    try:
        os.symlink(source.resolve(), target)
    except OSError:
        shutil.copyfile(source, target)


def gather_nnunet(
    images: str | Path,
    predictions: str | Path,
    out: str | Path,
    *,
    pattern: str | None = None,
    table: str | Path | None = None,
) -> tuple[list[Path], list[str]]:
    """Link nnU-Net cases into one folder per patient under ``out``.

    Parameters
    ----------
    images, predictions : path
        nnU-Net's images folder (``<case>_0000.nii.gz``) and its predictions folder (``<case>.nii.gz``).
    out : path
        Where the patient folders go (created).
    pattern : str, optional
        Regular expression with groups ``patient`` and ``phase`` matched against the case name
        (default :data:`DEFAULT_PATTERN`).
    table : path, optional
        CSV with columns ``case``, ``patient``, ``phase``; wins over ``pattern``.

    Returns
    -------
    (patient folders, skipped)
        Folders with at least one phase, sorted; one sentence per case left out.
    """
    images, predictions, out = Path(images), Path(predictions), Path(out)
    for folder in (images, predictions):
        if not folder.is_dir():
            raise CaseError(f"{folder} is not a folder of nnU-Net cases.")
    regex = re.compile(pattern or DEFAULT_PATTERN, re.IGNORECASE)
    if not {"patient", "phase"} <= set(regex.groupindex):
        raise CaseError(f"The case name pattern {regex.pattern!r} needs the groups 'patient' and 'phase'.")
    phases = _phase_table(Path(table)) if table is not None else None
    folders: set[Path] = set()
    skipped: list[str] = []
    for image in sorted(images.glob("*" + IMAGE_SUFFIX)):
        case = image.name[: -len(IMAGE_SUFFIX)]
        if phases is not None:
            patient, phase = phases.get(case, ("", ""))
        else:
            match = regex.match(case)
            patient, phase = (match["patient"], match["phase"].upper()) if match else ("", "")
        prediction = predictions / f"{case}.nii.gz"
        if not patient or phase not in PHASES or patient in (".", "..") or re.search(r"[/\\]", patient):
            skipped.append(f"{case}: no patient and ED/ES phase in its name or the table.")
            continue
        if not prediction.exists():
            skipped.append(f"{case}: no prediction {prediction.name} in {predictions}.")
            continue
        folder = out / patient
        folder.mkdir(parents=True, exist_ok=True)
        _link(image, folder / f"{patient}_{phase}{IMAGE_SUFFIX}")
        _link(prediction, folder / f"{patient}_{phase}.nii.gz")
        folders.add(folder)
    return sorted(folders), skipped
