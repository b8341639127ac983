"""Where ``cmrqc dataset create`` finds cases besides patient folders: nnU-Net output and DICOM.

* ``--predictions DIR``: each FOLDER is an nnU-Net images folder; its cases are gathered, with
  their predictions, into one folder per patient under ``<root>/cases/<dataset>/``
  (:func:`~cmrqc_widgets.cases.nnunet.gather_nnunet`), read with the ``nnunet`` preset.
* A FOLDER holding DICOM files (a study, any depth): each short-axis cine series becomes a patient
  folder under ``<root>/cases/<dataset>/`` (:func:`~cmrqc_widgets.cases.study.convert_study`).

:func:`created_line` is what the admin is told once the dataset exists, including how many cases
the review screens would refuse (outside the data root and ``$CMRQC_IMAGE_ROOTS``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cases.roots import outside_note
from ..errors import CaseError


def created_line(path: Path, cases: list[Path], root: Path) -> str:
    """ "Dataset <path>: N cases." and, if some lie outside the allowed roots, how to allow them."""
    return f"Dataset {path}: {len(cases)} case{'s' * (len(cases) != 1)}.{outside_note(cases, root)}"


def case_sources(args: argparse.Namespace, root: Path, dataset: str) -> tuple[list[str], str | None]:
    """The folders to scan for cases and the layout to scan them with (None: detect)."""
    out = Path(root) / "cases" / Path(dataset).stem
    if getattr(args, "predictions", None):
        from ..cases.nnunet import gather_nnunet

        if len(args.folders) != 1:
            raise CaseError("With --predictions give exactly one FOLDER: the nnU-Net images folder.")
        folders, skipped = gather_nnunet(
            args.folders[0], args.predictions, out, pattern=args.phase_pattern, table=args.phase_table
        )
        for line in skipped:
            print(f"Skipped {line}")
        return [str(folder) for folder in folders] or [str(out)], "nnunet"
    from ..cases.study import convert_study, holds_dicom

    folders: list[str] = []
    for folder in args.folders:
        if Path(folder).is_dir() and holds_dicom(folder):
            made = convert_study(folder, out)
            print(f"{folder}: {len(made)} DICOM series converted into {out}")
            folders.extend(str(path) for path in made)
        else:
            folders.append(folder)
    return folders, args.layout
