"""``cmrqc convert-dicom``: the command-line front of :mod:`cmrqc_widgets.cases.dicom`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cases.dicom import dicom_series_to_nifti

__all__ = ["convert_command", "register"]


def convert_command(args: argparse.Namespace) -> int:
    """``cmrqc convert-dicom``: write one series as NIfTI."""
    image = dicom_series_to_nifti(args.folder, args.out, frame=args.frame)
    print(f"{args.out}: {'x'.join(map(str, image.shape))} voxels")
    return 0


def register(subparsers: Any) -> None:
    """Add ``convert-dicom`` to the ``cmrqc`` command."""
    parser = subparsers.add_parser(
        "convert-dicom",
        help="convert a DICOM short-axis series to NIfTI for review",
        description="Convert one DICOM series (a short-axis stack) to a NIfTI file, geometry kept.",
    )
    parser.add_argument("folder", type=Path, help="folder holding the series' DICOM files")
    parser.add_argument("out", type=Path, help="NIfTI file to write (.nii.gz)")
    parser.add_argument("--frame", type=int, default=None, help="frame of a cine series to keep (from 0)")
    parser.set_defaults(func=convert_command)
