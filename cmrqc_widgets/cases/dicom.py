"""DICOM short-axis series to NIfTI, so cohorts that arrive as DICOM can be reviewed (``dicom`` extra).

Geometry follows the DICOM standard (patient coordinates are LPS): ``ImageOrientationPatient``
gives the directions in which the column and the row index grow, ``PixelSpacing`` is
(between rows, between columns) in mm, ``ImagePositionPatient`` is the centre of the first pixel.
Slices are sorted along the normal of the image plane, base of the heart first (slice 0), apex
last (the order the viewer shows, see :data:`~cmrqc_widgets.cases.reader.APEX_DIRECTION`), and
the NIfTI affine is written in RAS, as nibabel and every NIfTI tool expect. A cine series
(several frames at each slice position) needs the frame to keep, e.g. the end-diastolic one.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..errors import CaseError
from .reader import runs_base_to_apex

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _pydicom() -> Any:
    try:
        import pydicom
    except ImportError as error:  # optional dependency
        raise ImportError("Reading DICOM needs pydicom: pip install 'cmrqc_widgets[dicom]'.") from error
    return pydicom


def _read_headers(folder: Path) -> list[Any]:
    pydicom = _pydicom()
    slices = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            item = pydicom.dcmread(path)
        except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError):
            continue  # not DICOM (DICOMDIR listings, notes): the series is what remains
        if "PixelData" in item and "ImagePositionPatient" in item and "ImageOrientationPatient" in item:
            slices.append(item)
    if not slices:
        raise CaseError(f"{folder} holds no DICOM image with position and orientation.")
    return slices


def _geometry(
    slices: list[Any], folder: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    series = {str(getattr(s, "SeriesInstanceUID", "")) for s in slices}
    if len(series) > 1:
        raise CaseError(f"{folder} mixes {len(series)} DICOM series; give one series per folder.")
    orientations = np.array([[float(v) for v in s.ImageOrientationPatient] for s in slices])
    if np.abs(orientations - orientations[0]).max() > 1e-3:
        raise CaseError(f"{folder} holds images of different orientations, not one stack.")
    row_dir, col_dir = orientations[0, :3], orientations[0, 3:]
    normal = np.cross(row_dir, col_dir)
    spacing = tuple(float(v) for v in slices[0].PixelSpacing)
    return row_dir, col_dir, normal, (spacing[0], spacing[1])


def dicom_series_to_nifti(folder: str | Path, out: str | Path | None = None, *, frame: int | None = None):
    """Read one DICOM series (a short-axis stack) into a NIfTI image, and write it to ``out`` if given.

    Parameters
    ----------
    folder : path
        Folder holding the series' files (other files are skipped).
    out : path, optional
        Where to write the NIfTI (``.nii.gz`` or ``.nii``).
    frame : int, optional
        For a cine series (several images at each slice position), which frame to keep, counted in
        trigger-time order from 0. Required for such a series.

    Returns
    -------
    nibabel.Nifti1Image
        float32 intensities (rescale slope and intercept applied), RAS affine from the DICOM geometry.

    Raises
    ------
    CaseError
        No images, several series or orientations, uneven slice spacing, a missing frame, or images of
        different sizes — one sentence naming the folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CaseError(f"{folder} is not a folder of DICOM files.")
    slices = _read_headers(folder)
    row_dir, col_dir, normal, (row_mm, col_mm) = _geometry(slices, folder)

    positions: dict[float, list[Any]] = defaultdict(list)
    for item in slices:
        along = float(np.dot([float(v) for v in item.ImagePositionPatient], normal))
        positions[round(along, 2)].append(item)
    frames = {len(items) for items in positions.values()}
    if len(frames) != 1:
        raise CaseError(f"{folder} has different numbers of images at its slice positions.")
    (per_position,) = frames
    if per_position > 1 and frame is None:
        raise CaseError(
            f"{folder} is a cine series with {per_position} frames per slice; choose one with frame=."
        )
    chosen_frame = 0 if frame is None else frame
    if not 0 <= chosen_frame < per_position:
        raise CaseError(f"{folder} has frames 0 to {per_position - 1}; frame {frame} does not exist.")

    stack = []
    for along in sorted(positions):
        items = sorted(
            positions[along], key=lambda s: (float(getattr(s, "TriggerTime", 0)), int(s.InstanceNumber or 0))
        )
        stack.append(items[chosen_frame])
    if len(stack) < 2:
        raise CaseError(f"{folder} holds a single slice position; a stack needs at least two.")
    first, last = (np.array([float(v) for v in s.ImagePositionPatient]) for s in (stack[0], stack[-1]))
    if not runs_base_to_apex(_LPS_TO_RAS[:3, :3] @ (last - first)):
        stack.reverse()  # NIfTI slice 0 is the base (reader.APEX_DIRECTION), as the viewer shows it
    origins = np.array([[float(v) for v in s.ImagePositionPatient] for s in stack])
    steps = np.diff(origins, axis=0)
    if np.abs(steps - steps[0]).max() > 0.05 * max(np.linalg.norm(steps[0]), 1e-6):
        raise CaseError(f"{folder} has unevenly spaced slices; it is not one regular stack.")

    planes = []
    for item in stack:
        slope = float(getattr(item, "RescaleSlope", 1) or 1)
        intercept = float(getattr(item, "RescaleIntercept", 0) or 0)
        planes.append(item.pixel_array.astype(np.float32) * slope + intercept)
    if len({p.shape for p in planes}) != 1:
        raise CaseError(f"{folder} has images of different sizes.")
    # NIfTI voxel (i, j, k) = (column, row, slice): the usual DICOM-to-NIfTI layout.
    data = np.stack([p.T for p in planes], axis=2)
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_dir * col_mm
    affine_lps[:3, 1] = col_dir * row_mm
    affine_lps[:3, 2] = steps[0]
    affine_lps[:3, 3] = origins[0]
    image = nib.Nifti1Image(data, _LPS_TO_RAS @ affine_lps)
    image.header.set_xyzt_units("mm")
    if out is not None:
        image.to_filename(str(out))
    return image
