"""A DICOM study (a folder, or an uploaded zip) to review cases, with its metadata (``dicom`` extra).

Guarantees: a zip is unpacked only if every member stays inside the destination (no absolute
paths, no ``..``, no links), there are at most :data:`MAX_MEMBERS` members and they decompress to
at most :data:`MAX_UNPACKED_BYTES` (and no member more than :data:`MAX_RATIO` times its compressed
size): anything else is refused in one sentence before a byte is written. The patient id is
stored pseudonymised (a salted hash) unless the caller allows it.

Each short-axis cine series (slices along the heart's long axis, several frames per slice)
becomes one patient folder in the ``converted`` layout: ``image_ED/ES.nii.gz`` and
``labels_ED/ES.nii.gz`` (empty where the study carries no segmentation; a Sunnybrook folder with
expert contours gets them rasterised), plus ``dicom.json`` with what the case info shows. ED is
the first frame in trigger time (the R wave), ES the frame that differs most from it, unless given.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import nibabel as nib
import numpy as np

from ..errors import CaseError
from .dicom import _pydicom, dicom_series_to_nifti
from .reader import APEX_DIRECTION

MAX_MEMBERS = 20_000
MAX_UNPACKED_BYTES = 4_000_000_000
MAX_RATIO = 200
INFO_FILE = "dicom.json"


def extract_zip(data: bytes, dest: str | Path) -> Path:
    """Unpack a zip (bytes) into ``dest`` after checking every member (see the module docstring)."""
    dest = Path(dest)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise CaseError(f"The upload is not a zip file ({exc}).") from None
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise CaseError(f"The zip holds {len(members):,} files, more than the {MAX_MEMBERS:,} accepted.")
    total = 0
    for info in members:
        name = PurePosixPath(info.filename.replace("\\", "/"))
        if name.is_absolute() or ".." in name.parts or (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise CaseError(f"The zip member {info.filename!r} points outside the upload; refused.")
        total += info.file_size
        if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > 1_000_000:
            raise CaseError(f"The zip member {info.filename!r} expands {info.file_size:,} bytes; a zip bomb?")
    if total > MAX_UNPACKED_BYTES:
        raise CaseError(f"The zip expands to {total:,} bytes, more than the {MAX_UNPACKED_BYTES:,} accepted.")
    dest.mkdir(parents=True, exist_ok=True)
    for info in members:
        if info.is_dir():
            continue
        target = dest / PurePosixPath(info.filename.replace("\\", "/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, open(target, "wb") as out:
            # Read no more than declared: a lying header cannot make us write more.
            out.write(source.read(info.file_size + 1)[: info.file_size])
    return dest


def holds_dicom(folder: str | Path) -> bool:
    """Whether ``folder`` (any depth) holds at least one DICOM file (``DICM`` at byte 128)."""
    for path in Path(folder).rglob("*"):
        if path.is_file():
            with contextlib.suppress(OSError), open(path, "rb") as f:
                if f.read(132)[128:] == b"DICM":
                    return True
    return False


def pseudonym(patient_id: str) -> str:
    """A stable pseudonym of a patient id (salted SHA-256, 10 hex digits; salt: ``CMRQC_PSEUDONYM_SALT``)."""
    salt = os.environ.get("CMRQC_PSEUDONYM_SALT", "cmrqc")
    return "anon-" + hashlib.sha256(f"{salt}:{patient_id}".encode()).hexdigest()[:10]


def read_info(patient_dir: str | Path) -> dict[str, Any]:
    """The DICOM metadata stored beside a converted case ({} when there is none)."""
    try:
        data = json.loads((Path(patient_dir) / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _series(folder: Path) -> dict[str, list[tuple[Path, Any]]]:
    pydicom = _pydicom()
    found: dict[str, list[tuple[Path, Any]]] = defaultdict(list)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            item = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError):
            continue
        if "ImagePositionPatient" in item and "ImageOrientationPatient" in item:
            found[str(getattr(item, "SeriesInstanceUID", ""))].append((path, item))
    return found


def _is_short_axis_cine(items: list[tuple[Path, Any]]) -> bool:
    orientation = np.array([float(v) for v in items[0][1].ImageOrientationPatient])
    normal = np.cross(orientation[:3], orientation[3:]) * [-1, -1, 1]  # LPS -> RAS
    positions = {tuple(np.round([float(v) for v in item.ImagePositionPatient], 1)) for _, item in items}
    return len(positions) >= 2 and len(items) >= 2 * len(positions) and abs(normal @ APEX_DIRECTION) > 0.5


def _es_frame(series_dir: Path, frames: int) -> int:
    """The frame most different from frame 0 (the heart most contracted) over the middle of the image."""
    ed = np.asarray(dicom_series_to_nifti(series_dir, frame=0).dataobj, np.float32)
    centre = tuple(slice(n // 4, n - n // 4) for n in ed.shape[:2])
    scores = [
        float(
            np.abs(np.asarray(dicom_series_to_nifti(series_dir, frame=f).dataobj)[centre] - ed[centre]).mean()
        )
        for f in range(1, frames)
    ]
    return 1 + int(np.argmax(scores))


def _metadata(item: Any, image: nib.Nifti1Image, frames: int, allow_patient_id: bool) -> dict[str, Any]:
    patient = str(getattr(item, "PatientID", "") or "unknown")
    scanner = " ".join(
        str(v) for v in (getattr(item, "Manufacturer", ""), getattr(item, "ManufacturerModelName", "")) if v
    )
    field = getattr(item, "MagneticFieldStrength", None)
    return {
        "patient_id": patient if allow_patient_id else pseudonym(patient),
        "study_date": str(getattr(item, "StudyDate", "")),
        "scanner": f"{scanner} {float(field):g} T".strip() if field else scanner,
        "sequence": str(getattr(item, "SeriesDescription", "") or getattr(item, "SequenceName", "")),
        "spacing_mm": [round(float(z), 3) for z in image.header.get_zooms()[:3]],
        "frames": frames,
        "series": str(getattr(item, "SeriesNumber", "")),
    }


def _has_contours(folder: Path) -> bool:
    return (folder / "contours").is_dir() and (folder / "dicom").is_dir()


def _convert_contoured(patient: Path, target: Path, allow_patient_id: bool) -> Path:
    from .contours import sunnybrook_patient_to_nifti

    sunnybrook_patient_to_nifti(patient, target)
    first = next(p for p in sorted((patient / "dicom").iterdir()) if p.is_file())
    item = _pydicom().dcmread(first, stop_before_pixels=True)
    info = _metadata(item, nib.load(target / "image_ED.nii.gz"), 2, allow_patient_id)
    (target / INFO_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
    return target


def convert_study(
    folder: str | Path,
    out: str | Path,
    *,
    frames: dict[str, int] | None = None,
    allow_patient_id: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Convert every short-axis cine series under ``folder`` into a patient folder under ``out``.

    Parameters
    ----------
    folder : path
        A DICOM study (any depth), or a Sunnybrook patient folder (``dicom/`` + ``contours/``).
    out : path
        Where the patient folders go.
    frames : dict, optional
        ``{"ED": i, "ES": j}`` frames (trigger-time order) instead of the automatic choice.
    allow_patient_id : bool
        Store the real patient id (default: a pseudonym).
    progress : callable, optional
        Called as ``progress(done, total)`` after each series.

    Returns
    -------
    list of Path
        The patient folders written.
    """
    folder, out = Path(folder), Path(out)
    contoured = [folder] if _has_contours(folder) else sorted(p for p in folder.iterdir() if _has_contours(p))
    if contoured:  # expert contours beside the DICOM (Sunnybrook): cases with their labels
        written = []
        for done, patient in enumerate(contoured, start=1):
            written.append(_convert_contoured(patient, out / patient.name, allow_patient_id))
            if progress:
                progress(done, len(contoured))
        return written
    series = {uid: items for uid, items in _series(folder).items() if _is_short_axis_cine(items)}
    if not series:
        raise CaseError(f"{folder} holds no short-axis cine DICOM series (several slices, several frames).")
    written = []
    for done, items in enumerate(series.values(), start=1):
        with tempfile.TemporaryDirectory() as tmp:
            for i, (path, _) in enumerate(items):
                os.symlink(path.resolve(), Path(tmp) / f"{i:05d}.dcm")
            per_position = len(items) // len(
                {tuple(np.round([float(v) for v in it.ImagePositionPatient], 1)) for _, it in items}
            )
            chosen = dict(frames) if frames else {"ED": 0, "ES": _es_frame(Path(tmp), per_position)}
            first = items[0][1]
            name = (
                pseudonym(str(getattr(first, "PatientID", "")))
                if not allow_patient_id
                else str(first.PatientID)
            )
            target = out / f"{name}_s{getattr(first, 'SeriesNumber', done)}"
            target.mkdir(parents=True, exist_ok=True)
            for phase, frame in chosen.items():
                image = dicom_series_to_nifti(tmp, target / f"image_{phase}.nii.gz", frame=frame)
                nib.Nifti1Image(np.zeros(image.shape, np.uint8), image.affine).to_filename(
                    target / f"labels_{phase}.nii.gz"
                )
            info = _metadata(first, image, per_position, allow_patient_id)
            info["frames_chosen"] = chosen
            (target / INFO_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
        written.append(target)
        if progress:
            progress(done, len(series))
    return written
