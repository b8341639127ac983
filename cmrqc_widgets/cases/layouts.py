"""Case layouts: where one patient's image and label files are, and what the label numbers mean.

A :class:`Layout` holds two filename patterns (relative to the patient folder) and a label map
(structure name -> label value). Patterns may use the placeholders ``{phase}`` (``ED``/``ES``),
``{patient}`` (the patient folder's name) and ``{frame}`` (the frame number of that phase, read
from the folder's ``Info.cfg`` lines ``ED: 1`` / ``ES: 12``, as in the ACDC challenge; format
specs such as ``{frame:02d}`` work).

Presets (:data:`PRESETS`):

``4dsegment``  ``lvsa_SR_{phase}.nii.gz`` + ``seg_lvsa_SR_{phase}.nii.gz``; 1 LV, 2 RV, 3 MYO
``ukbb``       ``sa_{phase}.nii.gz`` + ``seg_sa_{phase}.nii.gz``; 1 LV, 2 MYO, 3 RV
``acdc``       ``{patient}_frame{frame:02d}.nii.gz`` + ``..._gt.nii.gz``; 1 RV, 2 MYO, 3 LV
``mnms``       M&Ms / M&Ms-2: ``{patient}_SA_{phase}.nii.gz`` + ``{patient}_SA_{phase}_gt.nii.gz``;
               1 LV, 2 MYO, 3 RV
``nnunet``     nnU-Net: ``{patient}_{phase}_0000.nii.gz`` (image, channel 0) + ``{patient}_{phase}.nii.gz``
               (prediction), the ACDC label numbers (1 RV, 2 MYO, 3 LV) of nnU-Net's cardiac task.
               nnU-Net keeps images and predictions in two folders: :mod:`.nnunet` gathers them into
               one folder per patient (links, no copies)
``converted``  what cmrqc writes from DICOM (:mod:`.study`, :mod:`.contours`): ``image_{phase}.nii.gz`` +
               ``labels_{phase}.nii.gz``; 1 LV, 2 MYO, 3 RV

Where a pattern ends in ``.nii.gz`` and only the uncompressed ``.nii`` exists (or the other
way round), the existing file is used.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CaseError, InvalidNameError
from ..names import PHASES, check_phase

INFO_FILE = "Info.cfg"
"""File (inside the patient folder) giving the ED/ES frame numbers for ``{frame}`` patterns."""

_PLACEHOLDERS = frozenset({"phase", "patient", "frame"})


@dataclass(frozen=True)
class Layout:
    """Where a patient's files are and which label value is which structure.

    Parameters
    ----------
    name : str
        Short name, used in messages and cache keys.
    image, labels : str
        Filename patterns relative to the patient folder, with the placeholders ``{phase}``,
        ``{patient}`` and ``{frame}`` (see the module docstring).
    label_map : dict[str, int]
        Structure name (``"LV"``, ``"RV"``, ``"MYO"``, or any other) -> label value (1-32767).
    """

    name: str
    image: str
    labels: str
    label_map: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidNameError(f"Layout name {self.name!r} is not allowed; give a non-empty string.")
        for pattern in (self.image, self.labels):
            _check_pattern(pattern)
        if self.image == self.labels:
            raise InvalidNameError(f"Layout {self.name!r} uses the same pattern for image and labels.")
        values = list(self.label_map.values())
        for structure, value in self.label_map.items():
            if not isinstance(structure, str) or isinstance(value, bool) or not isinstance(value, int):
                raise InvalidNameError(
                    f"Layout {self.name!r} label map entry {structure!r}: {value!r} is not name -> int."
                )
            if not 0 < value <= 32767:
                raise InvalidNameError(f"Layout {self.name!r} label {value} must be between 1 and 32767.")
        if len(set(values)) != len(values):
            raise InvalidNameError(f"Layout {self.name!r} gives two structures the same label value.")

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def key(self) -> tuple:
        """A hashable identity: name, both patterns and the label map."""
        return (self.name, self.image, self.labels, tuple(sorted(self.label_map.items())))

    @property
    def needs_frames(self) -> bool:
        """Whether the patterns use ``{frame}`` (so ``Info.cfg`` must be read)."""
        return any("frame" in _fields(p) for p in (self.image, self.labels))

    def files(self, patient_dir: str | Path, phase: str) -> tuple[Path, Path]:
        """Paths of the image and labels files of ``phase`` in ``patient_dir``.

        The files need not exist (loading reports a missing one); only ``Info.cfg`` is read,
        when the patterns use ``{frame}``.

        Raises
        ------
        CaseError
            If ``Info.cfg`` is needed and missing or unreadable.
        """
        patient_dir = Path(patient_dir)
        phase = check_phase(phase)
        values: dict[str, object] = {"phase": phase, "patient": patient_dir.name}
        if self.needs_frames:
            values["frame"] = read_frames(patient_dir)[phase]
        return (
            _existing_variant(patient_dir / self.image.format(**values)),
            _existing_variant(patient_dir / self.labels.format(**values)),
        )

    def describe(self) -> str:
        """One line for messages: ``name (image pattern + labels pattern)``."""
        return f"{self.name} ({self.image} + {self.labels})"


def _fields(pattern: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}


def _check_pattern(pattern: object) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise InvalidNameError(f"Filename pattern {pattern!r} must be a non-empty string.")
    try:
        names = _fields(pattern)
    except ValueError as exc:
        raise InvalidNameError(f"Filename pattern {pattern!r} is malformed ({exc}).") from None
    unknown = names - _PLACEHOLDERS
    if unknown:
        raise InvalidNameError(
            f"Filename pattern {pattern!r} uses unknown placeholders {sorted(unknown)}; "
            "use {phase}, {patient} or {frame}."
        )
    try:
        sample = pattern.format(phase="ED", patient="p", frame=1)
    except (ValueError, IndexError, KeyError) as exc:
        raise InvalidNameError(f"Filename pattern {pattern!r} is malformed ({exc}).") from None
    parts = Path(sample).parts
    if Path(sample).is_absolute() or ".." in parts or "\\" in sample:
        raise InvalidNameError(f"Filename pattern {pattern!r} must stay inside the patient folder.")


def _existing_variant(path: Path) -> Path:
    # Pipelines differ in whether they gzip; accept the other variant when only it exists.
    name = path.name
    if name.endswith(".nii.gz"):
        other = path.with_name(name[:-3])
    elif name.endswith(".nii"):
        other = path.with_name(name + ".gz")
    else:
        return path
    if not path.exists() and other.exists():
        return other
    return path


def read_frames(patient_dir: str | Path) -> dict[str, int]:
    """ED and ES frame numbers from ``patient_dir/Info.cfg`` (lines ``ED: 1``, ``ES: 12``).

    Raises
    ------
    CaseError
        If the file is missing, unreadable, or lacks a whole-number ED or ES entry.
    """
    path = Path(patient_dir) / INFO_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise CaseError(f"{path} is missing; it should give the ED and ES frame numbers.") from None
    except OSError as exc:
        raise CaseError(f"{path} cannot be read ({exc.strerror or exc}).") from None
    frames: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().upper()
        if sep and key in PHASES:
            try:
                number = float(value.strip())
            except ValueError:
                number = float("nan")
            if not number.is_integer() or number < 0:
                raise CaseError(f"{path} gives {key} frame {value.strip()!r}, which is not a frame number.")
            frames[key] = int(number)
    missing = [phase for phase in PHASES if phase not in frames]
    if missing:
        raise CaseError(f"{path} has no {' or '.join(missing)} frame line (expected e.g. 'ED: 1').")
    return frames


PRESETS: dict[str, Layout] = {
    "4dsegment": Layout(
        "4dsegment", "lvsa_SR_{phase}.nii.gz", "seg_lvsa_SR_{phase}.nii.gz", {"LV": 1, "RV": 2, "MYO": 3}
    ),
    "ukbb": Layout("ukbb", "sa_{phase}.nii.gz", "seg_sa_{phase}.nii.gz", {"LV": 1, "MYO": 2, "RV": 3}),
    "acdc": Layout(
        "acdc",
        "{patient}_frame{frame:02d}.nii.gz",
        "{patient}_frame{frame:02d}_gt.nii.gz",
        {"RV": 1, "MYO": 2, "LV": 3},
    ),
    "mnms": Layout(
        "mnms", "{patient}_SA_{phase}.nii.gz", "{patient}_SA_{phase}_gt.nii.gz", {"LV": 1, "MYO": 2, "RV": 3}
    ),
    "converted": Layout(
        "converted", "image_{phase}.nii.gz", "labels_{phase}.nii.gz", {"LV": 1, "MYO": 2, "RV": 3}
    ),
    "nnunet": Layout(
        "nnunet", "{patient}_{phase}_0000.nii.gz", "{patient}_{phase}.nii.gz", {"RV": 1, "MYO": 2, "LV": 3}
    ),
}
"""The pipelines we know by name."""


def custom_layout(image: str, labels: str, label_map: dict[str, int], name: str = "custom") -> Layout:
    """A layout for another pipeline's naming.

    Parameters
    ----------
    image, labels : str
        Filename patterns relative to the patient folder, e.g. ``"{phase}/img.nii.gz"``.
    label_map : dict[str, int]
        Structure -> label value, e.g. ``{"LV": 1, "MYO": 2, "RV": 3}``.
    name : str
        Name shown in messages.

    Raises
    ------
    InvalidNameError
        If a pattern uses unknown placeholders or leaves the patient folder, or the map is invalid.
    """
    return Layout(name, image, labels, dict(label_map))


def get_layout(layout: str | Layout | None, patient_dir: str | Path | None = None) -> Layout:
    """Resolve ``layout``: a :class:`Layout` as is, a preset name, or ``None`` to detect it.

    Raises
    ------
    InvalidNameError
        For an unknown preset name.
    CaseError
        When detection is needed and fails (see :func:`detect_layout`).
    """
    if isinstance(layout, Layout):
        return layout
    if layout is None:
        if patient_dir is None:
            raise InvalidNameError("A patient folder is needed to detect the case layout.")
        return detect_layout(patient_dir)
    if isinstance(layout, str) and layout.lower() in PRESETS:
        return PRESETS[layout.lower()]
    raise InvalidNameError(f"Layout {layout!r} is unknown; use one of {', '.join(PRESETS)} or a Layout.")


def _score(layout: Layout, patient_dir: Path) -> int:
    try:
        paths = [p for phase in PHASES for p in layout.files(patient_dir, phase)]
    except CaseError:
        # Frame files without a usable Info.cfg still identify the layout, so that loading
        # reports the real problem (Info.cfg) rather than "no layout matches".
        globs = [
            "".join(lit + ("*" if name else "") for lit, name, _, _ in string.Formatter().parse(p))
            for p in (layout.image, layout.labels)
        ]
        globs = [g[:-3] + "*" if g.endswith(".nii.gz") else g for g in globs]
        return int(any(next(patient_dir.glob(g), None) is not None for g in globs))
    return sum(p.exists() for p in paths)


def detect_layout(patient_dir: str | Path) -> Layout:
    """The preset whose files are present in ``patient_dir`` (the most files wins; ties: preset order).

    Raises
    ------
    CaseError
        If the folder does not exist or no preset has any of its files there.
    """
    patient_dir = Path(patient_dir)
    if not patient_dir.is_dir():
        raise CaseError(f"Patient folder {patient_dir} does not exist or is not a folder.")
    scores = [(_score(layout, patient_dir), -i, layout) for i, layout in enumerate(PRESETS.values())]
    best, _, layout = max(scores, key=lambda s: s[:2])
    if best == 0:
        tried = "; ".join(layout.describe() for layout in PRESETS.values())
        raise CaseError(f"No known case layout matches the files in {patient_dir} (tried {tried}).")
    return layout
