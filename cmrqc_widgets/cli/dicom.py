"""``cmrqc convert-dicom``: the command-line front of :mod:`cmrqc_widgets.cases.dicom`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cases.dicom import dicom_series_to_nifti
from ..errors import CmrqcError

__all__ = ["convert_command", "register"]


def output_path(out: Path) -> Path:
    """The file actually written for ``out``: ``.nii.gz`` added when it names no NIfTI extension."""
    return out if out.name.endswith((".nii", ".nii.gz")) else out.with_name(out.name + ".nii.gz")


def convert_command(args: argparse.Namespace) -> int:
    """``cmrqc convert-dicom``: write one series as NIfTI."""
    out = output_path(args.out)
    try:
        image = dicom_series_to_nifti(args.folder, out, frame=args.frame)
    except ImportError as exc:  # pydicom is optional: one sentence, no traceback
        raise CmrqcError(str(exc)) from None
    print(f"{out}: {'x'.join(map(str, image.shape))} voxels")
    return 0


def register(subparsers: Any) -> None:
    """Add ``convert-dicom`` to the ``cmrqc`` command."""
    parser = subparsers.add_parser(
        "convert-dicom",
        help="convert a DICOM short-axis series to NIfTI for review",
        description="Convert one DICOM series (a short-axis stack) to a NIfTI file, geometry kept.",
    )
    parser.add_argument("folder", type=Path, help="folder holding the series' DICOM files")
    parser.add_argument("out", type=Path, help="NIfTI file to write (.nii.gz added if it has no extension)")
    parser.add_argument("--frame", type=int, default=None, help="frame of a cine series to keep (from 0)")
    parser.set_defaults(func=convert_command)
