"""Expert contours drawn on DICOM images, as label volumes: rasterising, and Sunnybrook patients as cases.

Guarantees
----------
- A pixel belongs to a contour's region when its centre lies inside the closed polygon (even-odd
  rule), so the labelled area tracks the polygon's own area to within the pixels its border cuts.
- Labels land on the exact grid of the image they were drawn on: each contoured DICOM image is
  located in the converted NIfTI through both affines, never by file order; a contour whose image
  is not a slice of the stack raises :class:`~cmrqc_widgets.errors.CaseError`.

Contour files (Sunnybrook Cardiac Data) hold one point per line, ``x y``, in pixel coordinates of
the image (x = column, y = row, the centre of the first pixel at 0 0). The Sunnybrook folder
layout is ``dicom/N.dcm`` (N the InstanceNumber) and
``contours/{i,o}-contours/IM-0001-NNNN-{i,o}contour-manual.txt``: the i-contour is the LV
endocardium (inside: LV blood pool), the o-contour the epicardium (between the two: myocardium,
drawn at ED only).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import CaseError
from .dicom import _pydicom, dicom_series_to_nifti
from .layouts import Layout, custom_layout

SUNNYBROOK_LABELS: dict[str, int] = {"LV": 1, "MYO": 2}
"""Label values written for Sunnybrook patients; there is no RV contour."""

SUNNYBROOK_LAYOUT: Layout = custom_layout(
    "image_{phase}.nii.gz", "labels_{phase}.nii.gz", SUNNYBROOK_LABELS, name="sunnybrook"
)
"""Layout of the folders :func:`sunnybrook_patient_to_nifti` writes."""

_CONTOUR_NAME = re.compile(r"IM-\d+-(\d+)-([io])contour-manual\.txt$")


def read_contour(path: str | Path) -> np.ndarray:
    """Points of one contour file as an ``(n, 2)`` float array of ``(x, y)`` = (column, row).

    Raises
    ------
    CaseError
        If the file cannot be read, a line is not two numbers, or there are fewer than 3 points.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CaseError(f"Contour file {path} cannot be read ({exc.strerror or exc}).") from None
    points = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError
            points.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise CaseError(f"Contour file {path} line {number} is not an 'x y' point: {line!r}.") from None
    if len(points) < 3:
        raise CaseError(f"Contour file {path} has {len(points)} points; a closed contour needs at least 3.")
    return np.asarray(points, dtype=float)


def polygon_area(points: np.ndarray) -> float:
    """Area enclosed by the closed polygon ``points`` (shoelace formula), in pixels²."""
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def rasterise(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask ``[row, col]`` of the pixels whose centre lies inside the closed polygon.

    Parameters
    ----------
    points : ndarray, shape (n, 2)
        ``(x, y)`` = (column, row) vertices in pixel coordinates; the polygon closes itself.
    shape : (rows, cols)
        The image's size.
    """
    rows, cols = shape
    mask = np.zeros(shape, dtype=bool)
    x0, y0 = points[:, 0], points[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    top = int(max(np.floor(y0.min()), 0))
    bottom = int(min(np.ceil(y0.max()), rows - 1))
    centres = np.arange(cols, dtype=float)
    for row in range(top, bottom + 1):
        # Edges crossing this row's centre line, half-open so a vertex on the line counts once.
        crosses = (y0 <= row) != (y1 <= row)
        if not crosses.any():
            continue
        xs = x0[crosses] + (row - y0[crosses]) * (x1[crosses] - x0[crosses]) / (y1[crosses] - y0[crosses])
        inside = (xs[None, :] > centres[:, None]).sum(axis=1) % 2 == 1
        mask[row] = inside
    return mask


def _contour_files(patient_dir: Path) -> dict[str, dict[int, Path]]:
    found: dict[str, dict[int, Path]] = {"i": {}, "o": {}}
    for path in sorted((patient_dir / "contours").rglob("*contour-manual.txt")):
        match = _CONTOUR_NAME.search(path.name)
        if match:
            found[match.group(2)][int(match.group(1))] = path
    if not found["i"]:
        raise CaseError(
            f"{patient_dir} has no endocardial contour (contours/i-contours/*icontour-manual.txt)."
        )
    return found


def _frames_by_instance(dicom_dir: Path) -> dict[int, tuple[int, np.ndarray]]:
    """InstanceNumber -> (frame index in trigger order at its slice position, first-pixel position LPS)."""
    pydicom = _pydicom()
    by_position: dict[float, list[tuple[float, int, np.ndarray]]] = defaultdict(list)
    for path in dicom_dir.iterdir():
        try:
            item = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError):
            continue
        if "ImagePositionPatient" not in item or "ImageOrientationPatient" not in item:
            continue
        orientation = np.array([float(v) for v in item.ImageOrientationPatient])
        normal = np.cross(orientation[:3], orientation[3:])
        position = np.array([float(v) for v in item.ImagePositionPatient])
        key = round(float(np.dot(position, normal)), 2)
        trigger = float(getattr(item, "TriggerTime", 0))
        by_position[key].append((trigger, int(item.InstanceNumber or 0), position))
    frames: dict[int, tuple[int, np.ndarray]] = {}
    for items in by_position.values():
        for index, (_, instance, position) in enumerate(sorted(items, key=lambda t: (t[0], t[1]))):
            frames[instance] = (index, position)
    return frames


def _slice_index(image: nib.Nifti1Image, position_lps: np.ndarray, where: Path) -> int:
    ras = np.array([-position_lps[0], -position_lps[1], position_lps[2], 1.0])
    voxel = np.linalg.inv(image.affine) @ ras
    k = round(float(voxel[2]))
    if np.abs(voxel[:2]).max() > 0.05 or abs(voxel[2] - k) > 0.05 or not 0 <= k < image.shape[2]:
        raise CaseError(f"Contour {where.name} is drawn on an image that is not a slice of the stack.")
    return k


def sunnybrook_patient_to_nifti(
    patient_dir: str | Path, out_dir: str | Path, *, es_frame: int = 0, ed_frame: int = 1
) -> dict[str, tuple[Path, Path]]:
    """Convert one Sunnybrook patient (``dicom/`` + ``contours/``) to NIfTI image and label files.

    Writes ``image_ED.nii.gz``, ``labels_ED.nii.gz``, ``image_ES.nii.gz`` and ``labels_ES.nii.gz``
    in ``out_dir`` (:data:`SUNNYBROOK_LAYOUT`): labels 1 = LV blood pool (inside the i-contour),
    2 = myocardium (inside the o-contour, outside the i-contour; only where an o-contour was drawn,
    i.e. at ED). Slices without a contour are left unlabelled.

    Parameters
    ----------
    patient_dir : path
        The patient folder.
    out_dir : path
        Where to write the four files (created if needed).
    es_frame, ed_frame : int
        Frame of each phase in trigger-time order at every slice position; the shared folders keep
        two frames, ES first (see their README).

    Returns
    -------
    dict
        ``{"ED": (image, labels), "ES": (image, labels)}`` paths.

    Raises
    ------
    CaseError
        Missing folders or contours, a contour on an image outside the stack, or a contour on a
        frame that is neither phase.
    """
    patient_dir = Path(patient_dir)
    dicom_dir = patient_dir / "dicom"
    if not dicom_dir.is_dir():
        raise CaseError(f"{patient_dir} has no dicom/ folder; it is not a Sunnybrook patient folder.")
    contours = _contour_files(patient_dir)
    frames = _frames_by_instance(dicom_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, tuple[Path, Path]] = {}
    for phase, frame in (("ED", ed_frame), ("ES", es_frame)):
        image = dicom_series_to_nifti(dicom_dir, frame=frame)
        labels = np.zeros(image.shape, dtype=np.uint8)
        # o-contours first so that the i-contour (blood pool) overwrites the inside of the epicardium.
        for kind, value in (("o", SUNNYBROOK_LABELS["MYO"]), ("i", SUNNYBROOK_LABELS["LV"])):
            for instance, path in contours[kind].items():
                if instance not in frames:
                    raise CaseError(f"Contour {path.name} names image {instance}, not in {dicom_dir}.")
                index, position = frames[instance]
                if index not in (ed_frame, es_frame):
                    raise CaseError(f"Contour {path.name} is drawn on frame {index}, neither ED nor ES.")
                if index != frame:
                    continue
                k = _slice_index(image, position, path)
                # NIfTI voxel (i, j) = (column, row): the transposed [row, col] mask.
                mask = rasterise(read_contour(path), (image.shape[1], image.shape[0])).T
                labels[..., k][mask] = value
        image_path, labels_path = out_dir / f"image_{phase}.nii.gz", out_dir / f"labels_{phase}.nii.gz"
        image.to_filename(str(image_path))
        label_image = nib.Nifti1Image(labels, image.affine)
        label_image.header.set_xyzt_units("mm")
        label_image.to_filename(str(labels_path))
        written[phase] = (image_path, labels_path)
    return written
