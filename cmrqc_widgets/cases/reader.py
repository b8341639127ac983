"""Load one patient's image and labels for one phase, in one display orientation, and cache them.

Display orientation
-------------------
``Case.image`` and ``Case.labels`` are indexed ``[slice, row, col]``:

* slice: the third NIfTI voxel axis, ordered from the base of the heart to its apex, as cardiac
  tools show a short-axis stack: slice 0 is the one furthest from :data:`APEX_DIRECTION` (the LV
  apex points to the patient's left, front and feet), whatever order the scanner or pipeline wrote
  (Sunnybrook's DICOM starts at the apex, UK Biobank's NIfTI at the base);
* col (across the screen): of the two in-plane voxel axes, the one whose world direction has the
  larger left-right component; oriented radiologically, so the patient's right is on the screen's
  left and the column index increases toward the patient's left (ties: the first voxel axis);
* row (down the screen): the other in-plane axis, with anterior or superior at the top
  (whichever of its anterior-posterior / superior-inferior components is larger; ties: anterior).

The image is float32 and the labels uint8 (int16 when values need it; labels stored as float are
rounded). ``Case.affine`` maps ``(slice, row, col, 1)`` of these arrays to scanner millimetres (NIfTI RAS+),
and ``Case.spacing`` gives the header's voxel sizes in ``(slice, row, col)`` order. The arrays are
read-only views of the decoded data (flips and transposes cost nothing), shared by every user of
a cached case.

Headers as pipelines write them
-------------------------------
* Spacing is the header's ``pixdim``, as ITK-based tools read it. The affine (sform, else qform)
  gives the directions and the origin. Where its column lengths disagree with ``pixdim`` (ACDC
  writes an sform of ``diag(-1, -1, 1)``, orientation only, with the real spacing in ``pixdim``),
  its columns are rescaled to ``pixdim`` and ``Case.geometry_note`` says so: volumes, 3D view and
  reformats then all use the same millimetres.
* 4D files with a single frame are read as 3D; a NaN or infinite image voxel is kept, warned about
  (:class:`ImageValueWarning`), and left out of the display window.
* A header declaring more than :data:`~cmrqc_widgets.cases.nifti.MAX_VOXELS` voxels is refused
  before anything is decompressed (a corrupt or hostile header must not make the kernel allocate
  gigabytes). Files are read, gunzipped and turned into arrays by :mod:`~cmrqc_widgets.cases.nifti`,
  without whole-volume copies beyond the one conversion to float32.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff

from ..errors import CaseError
from ..names import STRUCTURES, check_phase
from .layouts import Layout, get_layout
from .nifti import read_nifti, volume

AFFINE_TOLERANCE_MM = 1e-3
"""Largest difference between the image and labels affines still taken as the same grid."""


PIXDIM_TOLERANCE = 1e-3
"""Relative difference between an affine column's length and pixdim still taken as agreement."""


class CaseWarning(UserWarning):
    """A case loaded, but something about it deserves the reviewer's attention."""


class UnknownLabelWarning(CaseWarning):
    """A labels file holds values its layout does not name (they are shown uncoloured)."""


class ImageValueWarning(CaseWarning):
    """An image holds NaN or infinite voxels (shown dark, left out of the display window)."""


@dataclass(frozen=True, eq=False)
class Case:
    """One patient and phase: image, labels and geometry in display orientation (module docstring).

    Attributes
    ----------
    image : ndarray
        float32, ``(slices, rows, cols)``, read-only.
    labels : ndarray
        Raw label values, uint8 (int16 if values need it), same shape, read-only.
    spacing : tuple of float
        Header voxel sizes (pixdim) in mm along ``(slice, row, col)``.
    affine : ndarray
        4x4, ``(slice, row, col, 1)`` -> scanner mm.
    label_map : dict[str, int]
        Structure -> label value, from the layout.
    warnings : tuple of str
        Problems that did not stop loading (unknown label values, NaN voxels), also emitted as
        warnings.
    geometry_note : str
        How the geometry was read when the header was not self-consistent ('' when it was), e.g.
        "the sform has no voxel scaling: spacing from pixdim, directions from the sform".
    """

    patient_dir: Path
    phase: str
    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    label_map: dict[str, int]
    layout: str
    image_path: Path
    labels_path: Path
    warnings: tuple[str, ...] = ()
    geometry_note: str = ""
    warning_types: tuple[type[CaseWarning], ...] = field(default=(), repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(slices, rows, cols)``."""
        return self.image.shape

    @property
    def nbytes(self) -> int:
        """Bytes held by the image and label arrays."""
        return int(self.image.nbytes + self.labels.nbytes)

    def mask(self, structure: str) -> np.ndarray:
        """Boolean array, True where the labels are ``structure`` (all False if the layout lacks it)."""
        if structure in self.label_map:
            return self.labels == self.label_map[structure]
        if structure in STRUCTURES:
            return np.zeros(self.labels.shape, bool)
        raise KeyError(f"Structure {structure!r} is not in the label map of layout {self.layout!r}.")

    def voxel_counts(self) -> dict[str, int]:
        """Number of voxels of each structure of the label map."""
        counts = self._value_counts
        return {name: counts[value] for name, value in self.label_map.items()}

    @cached_property
    def _value_counts(self) -> dict[int, int]:
        return _count_labels(self.labels, self.label_map.values())[0]


def _count_labels(labels: np.ndarray, values: Iterable[int]) -> tuple[dict[int, int], list[int]]:
    """Voxels of each of ``values``, and the other non-zero values present (sorted)."""
    flat = labels.ravel(order="K")  # a view for the decoded (Fortran-ordered) arrays
    # One comparison per known value is several times faster than bincount/unique on 5M voxels.
    counts = {int(v): int(np.count_nonzero(flat == v)) for v in values}
    unknown: list[int] = []
    if np.count_nonzero(flat) != sum(counts.values()):
        unknown = sorted(set(np.unique(flat).tolist()) - {0, *counts})
    return counts, unknown


def _integer_labels(data: np.ndarray, path: Path) -> np.ndarray:
    if data.dtype == np.uint8:
        return data
    if data.dtype == np.bool_:
        return data.view(np.uint8)
    if data.dtype.kind == "f":
        rounded = np.rint(data)
        if not np.isfinite(rounded).all():
            raise CaseError(f"{path} holds NaN or infinite label values.")
        off = np.abs(data - rounded) > 1e-3
        if off.any():
            raise CaseError(f"{path} holds non-integer label values such as {data[off].flat[0]:g}.")
        data = rounded
    elif data.dtype.kind not in "iu":
        raise CaseError(f"{path} stores labels as {data.dtype}, not numbers.")
    low, high = (data.min(), data.max()) if data.size else (0, 0)
    if low >= 0 and high <= 255:
        return data.astype(np.uint8)
    if low >= -32768 and high <= 32767:
        return data.astype(np.int16)
    raise CaseError(f"{path} holds label values from {low:g} to {high:g}, outside -32768..32767.")


APEX_DIRECTION = np.array([-1.0, 1.0, -1.0]) / np.sqrt(3.0)
"""Where the LV apex points from the base, in RAS+ (left, anterior, inferior): a short-axis stack
is shown base first by running its slices along this direction."""


def runs_base_to_apex(direction: np.ndarray) -> bool:
    """Whether stepping along ``direction`` (RAS+) moves from the base toward the apex."""
    return float(np.dot(direction, APEX_DIRECTION)) >= 0


def _display_ornt(affine: np.ndarray) -> np.ndarray:
    """nibabel orientation (input axis -> [output axis, flip]) into [slice, row, col]."""
    m = affine[:3, :3]
    col = 0 if abs(m[0, 0]) >= abs(m[0, 1]) else 1
    row = 1 - col
    ornt = np.array([[0, 1], [0, 1], [0, 1]], dtype=float)
    ornt[col] = (2, -1 if m[0, col] > 0 else 1)  # toward patient left = decreasing RAS x
    up = m[2, row] if abs(m[2, row]) > abs(m[1, row]) else m[1, row]
    ornt[row] = (1, -1 if up > 0 else 1)  # top = anterior/superior, so rows run the other way
    ornt[2] = (0, 1 if runs_base_to_apex(m[:, 2]) else -1)
    return ornt


def _geometry(img: nib.Nifti1Image, affine: np.ndarray) -> tuple[np.ndarray, list[float], str]:
    """(affine with columns scaled to pixdim, pixdim spacing, note) -- see the module docstring."""
    norms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    zooms = [float(z) for z in img.header.get_zooms()[:3]]
    # pixdim is float32: round so 1.8 reads 1.8, not 1.7999999523.
    zooms = [round(z if np.isfinite(z) and z > 0 else float(n), 6) for z, n in zip(zooms, norms, strict=True)]
    if not (norms > 0).all() or np.allclose(norms, zooms, rtol=PIXDIM_TOLERANCE, atol=0):
        return affine, zooms, ""
    fixed = affine.copy()
    fixed[:3, :3] = affine[:3, :3] / norms * np.asarray(zooms)
    source = "sform" if int(img.header["sform_code"]) > 0 else "qform"
    scaled = (
        "has no voxel scaling" if np.allclose(norms, 1.0, atol=PIXDIM_TOLERANCE) else "disagrees with pixdim"
    )
    note = (
        f"The {source} {scaled} (column lengths {', '.join(f'{n:g}' for n in norms)} mm): spacing from "
        f"pixdim ({', '.join(f'{z:g}' for z in zooms)} mm), directions from the {source}."
    )
    return fixed, zooms, note


def read_case(patient_dir: Path, phase: str, layout: Layout) -> Case:
    """Read and check one case; warnings are recorded in the Case, not emitted."""
    image_path, labels_path = layout.files(patient_dir, phase)
    image_img = read_nifti(image_path)
    labels_img = read_nifti(labels_path)
    image = volume(image_img, image_path, np.float32)
    labels = _integer_labels(volume(labels_img, labels_path, None), labels_path)
    if image.shape != labels.shape:
        raise CaseError(
            f"{labels_path} has shape {labels.shape} but its image {image_path.name} has {image.shape}."
        )
    affine = np.asarray(image_img.affine, dtype=float)
    diff = np.abs(affine - labels_img.affine).max()
    if not diff <= AFFINE_TOLERANCE_MM:
        raise CaseError(
            f"{labels_path} is not on the grid of its image {image_path.name} "
            f"(affines differ by up to {diff:.3g} mm)."
        )

    counts, unknown = _count_labels(labels, layout.label_map.values())
    affine, zooms, geometry_note = _geometry(image_img, affine)
    ornt = _display_ornt(affine)
    order = np.argsort(ornt[:, 0])  # input axis shown as slice, row, col
    image = apply_orientation(image, ornt)
    labels = apply_orientation(labels, ornt)
    image.flags.writeable = False
    labels.flags.writeable = False
    display_affine = affine @ inv_ornt_aff(ornt, image_img.shape[:3])

    notes: list[str] = []
    kinds: list[type[CaseWarning]] = []
    if unknown:
        known = ", ".join(f"{v} {k}" for k, v in sorted(layout.label_map.items(), key=lambda kv: kv[1]))
        notes.append(
            f"{labels_path} holds label values {unknown} that layout {layout.name!r} does not define "
            f"(it knows {known}); they are shown uncoloured."
        )
        kinds.append(UnknownLabelWarning)
    if image.size and not np.isfinite(image.sum(dtype=np.float64)):
        bad = int(np.count_nonzero(~np.isfinite(image)))
        notes.append(f"{image_path} holds {bad:,} NaN or infinite voxels; they are shown dark.")
        kinds.append(ImageValueWarning)
    case = Case(
        patient_dir=patient_dir,
        phase=phase,
        image=image,
        labels=labels,
        spacing=tuple(zooms[i] for i in order),
        affine=display_affine,
        label_map=dict(layout.label_map),
        layout=layout.name,
        image_path=image_path,
        labels_path=labels_path,
        warnings=tuple(notes),
        geometry_note=geometry_note,
        warning_types=tuple(kinds),
    )
    case.__dict__["_value_counts"] = counts  # computed anyway; spares voxel_counts() a pass
    return case


def emit_warnings(case: Case) -> None:
    """Emit the warnings :func:`read_case` recorded in ``case`` (once per case handed out)."""
    kinds = case.warning_types or (UnknownLabelWarning,) * len(case.warnings)
    for note, kind in zip(case.warnings, kinds, strict=True):
        warnings.warn(note, kind, stacklevel=3)


def load_case(patient_dir: str | Path, phase: str, layout: str | Layout | None = None) -> Case:
    """Read one patient's image and labels for ``phase`` (see the module docstring for orientation).

    Parameters
    ----------
    patient_dir : str or Path
        The patient folder.
    phase : str
        ``"ED"`` or ``"ES"``.
    layout : str, Layout or None
        A preset name, a :class:`~cmrqc_widgets.cases.layouts.Layout`, or None to detect it.

    Returns
    -------
    Case

    Raises
    ------
    CaseError
        Missing, truncated or unreadable file, not 3D, non-integer labels, or image and labels
        on different grids. Unknown label values only warn (:class:`UnknownLabelWarning`).
    """
    patient_dir = Path(patient_dir).expanduser()
    case = read_case(patient_dir, check_phase(phase), get_layout(layout, patient_dir))
    emit_warnings(case)
    return case
