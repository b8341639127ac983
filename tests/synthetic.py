"""Tiny seeded NIfTI cases for the tests, written to ``tmp_path`` (no binary data committed).

Import these from test modules as ``from synthetic import ...``: a module named ``conftest`` is
ambiguous once ``tests/browser/conftest.py`` exists too.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

REVIEWER = "alice"
"""Reviewer of the demo-cohort fixtures in conftest.py."""

# Label numbers of each preset, so tests can write cases "as pipeline X would".
LABELS = {
    "4dsegment": {"LV": 1, "RV": 2, "MYO": 3},
    "ukbb": {"LV": 1, "MYO": 2, "RV": 3},
    "acdc": {"RV": 1, "MYO": 2, "LV": 3},
}


def phantom(
    shape: tuple[int, int, int] = (40, 32, 6),
    *,
    label_map: dict[str, int] | None = None,
    lv_radius: float = 6.0,
    rv_radius: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A short-axis phantom in NIfTI voxel order (x, y, z): LV disc, myocardial ring, RV crescent.

    The LV centre sits left of the array centre along x and the RV to its right (the patient's
    right under an identity affine), so tests can check orientation and colours on known pixels.
    The image has SSFP contrast: blood bright (400), myocardium dark (150), surroundings 100.
    ``rv_radius`` (default 1.4 x ``lv_radius``) sizes the RV.
    """
    label_map = label_map or LABELS["4dsegment"]
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    x, y = np.mgrid[0:nx, 0:ny].astype(np.float32)
    cx, cy = nx * 0.4, ny * 0.5
    r = np.hypot(x - cx, y - cy)
    r_rv = np.hypot(x - (cx + lv_radius * 1.9), y - cy)
    labels2d = np.zeros((nx, ny), np.uint8)
    rv_radius = lv_radius * 1.4 if rv_radius is None else rv_radius
    labels2d[(r_rv < rv_radius) & (r >= lv_radius + 3)] = label_map["RV"]
    labels2d[(r >= lv_radius) & (r < lv_radius + 3)] = label_map["MYO"]
    labels2d[r < lv_radius] = label_map["LV"]
    labels = np.repeat(labels2d[:, :, None], nz, axis=2)
    intensity = np.where(labels2d == label_map["MYO"], 150.0, np.where(labels2d > 0, 400.0, 100.0))
    image = intensity[:, :, None] + rng.normal(0, 10, (nx, ny, nz))
    return image.astype(np.float32), labels


def write_nifti(path: Path, data: np.ndarray, spacing=(1.8, 1.8, 8.0), affine=None) -> Path:
    """Write ``data`` as a NIfTI file with ``spacing`` (or a full ``affine``) and return the path."""
    if affine is None:
        affine = np.diag([*spacing, 1.0])
    else:  # keep the header's pixdim consistent with the affine given
        spacing = tuple(float(v) for v in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms((*spacing, 1.0)[: data.ndim])
    path.parent.mkdir(parents=True, exist_ok=True)
    img.to_filename(path)
    return path


def sign(image: np.ndarray, stripes: int) -> np.ndarray:
    """Mark ``image`` (x, y, z) with ``stripes`` bright bars across its first and last 3 y rows.

    The bars (3 voxels wide, 3 apart, along x) lie outside the phantom's heart, so they are
    unlabelled and show in grey whatever the overlay: counting them on screen names the patient.
    """
    marked = image.copy()
    for k in range(stripes):
        for band in (slice(0, 3), slice(image.shape[1] - 3, None)):
            marked[1 + 6 * k : 4 + 6 * k, band, :] = 1000.0
    return marked


def write_case(
    patient_dir: Path,
    layout: str = "4dsegment",
    *,
    shape: tuple[int, int, int] = (40, 32, 6),
    spacing: tuple[float, float, float] = (1.8, 1.8, 8.0),
    labels_dtype=np.uint8,
    affine: np.ndarray | None = None,
    stripes: int = 0,
) -> Path:
    """Write both phases of one phantom patient in the file naming of ``layout``; return the folder.

    ``affine`` (instead of ``spacing``) gives the files another orientation; ``stripes`` marks the
    image with that many bright bars (see :func:`sign`).
    """
    label_map = LABELS[layout]
    patient_dir.mkdir(parents=True, exist_ok=True)
    for i, phase in enumerate(("ED", "ES")):
        # ES: LV radius 4, RV radius 7, so both ventricles eject about the same volume (64 vs 69 px a slice).
        lv_radius, rv_radius = (6.0, None) if i == 0 else (4.0, 7.0)
        image, labels = phantom(shape, label_map=label_map, lv_radius=lv_radius, rv_radius=rv_radius, seed=i)
        image = sign(image, stripes) if stripes else image
        labels = labels.astype(labels_dtype)
        if layout == "4dsegment":
            names = (f"lvsa_SR_{phase}.nii.gz", f"seg_lvsa_SR_{phase}.nii.gz")
        elif layout == "ukbb":
            names = (f"sa_{phase}.nii.gz", f"seg_sa_{phase}.nii.gz")
        else:
            frame = 1 if phase == "ED" else 12
            stem = f"{patient_dir.name}_frame{frame:02d}"
            names = (f"{stem}.nii.gz", f"{stem}_gt.nii.gz")
        write_nifti(patient_dir / names[0], image, spacing, affine)
        write_nifti(patient_dir / names[1], labels, spacing, affine)
    if layout == "acdc":
        (patient_dir / "Info.cfg").write_text("ED: 1\nES: 12\nGroup: NOR\nHeight: 180.0\n")
    return patient_dir


def write_dataset(root: Path, folders: list[Path], user: str = REVIEWER, name: str = "cohort.json") -> Path:
    """A dataset file of ``user`` under ``root`` listing ``folders`` (no decisions yet)."""
    folder = root / "users" / user
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({str(f): {"ED_Comments": "", "ES_Comments": ""} for f in folders}))
    return path


def on_disk(owner, name: str = "demo.json") -> dict:
    """A review screen's (or state's) dataset file as the old app would read it, after the pending rewrite."""
    state = getattr(owner, "state", owner)
    if state.dataset_obj is not None:
        state.dataset_obj.flush()
    return raw(Path(state.store.folder), name)


def raw(folder: Path, name: str) -> dict:
    """The JSON file ``folder/name``, parsed."""
    with open(folder / name, encoding="utf-8") as f:
        return json.load(f)


def pdf_facts(path: Path) -> tuple[int, str]:
    """A PDF's page count and Title metadata, read from the file's own objects (no PDF library)."""
    import re

    data = Path(path).read_bytes()
    assert data.startswith(b"%PDF-"), f"{path} is not a PDF"
    pages = re.search(rb"/Type /Pages.*?/Count (\d+)", data, re.S)
    title = re.search(rb"/Title \((.*?)\)", data)
    return int(pages.group(1)) if pages else 0, title.group(1).decode("latin-1") if title else ""


def kernel_processes(server_pid: int) -> dict:
    """Kernel id -> psutil.Process, for every kernel the server process ``server_pid`` runs now."""
    import re

    import psutil

    found = {}
    for proc in psutil.Process(server_pid).children(recursive=True):
        try:
            match = re.search(r"kernel-([0-9a-f-]{36})\.json", " ".join(proc.cmdline()))
        except psutil.Error:
            continue
        if match:
            found[match.group(1)] = proc
    return found


def write_dicom_cine(
    folder: Path, *, slices: int = 4, frames: int = 3, patient_id: str = "PAT-0042", series_number: int = 7
) -> np.ndarray:
    """A short-axis cine series as a scanner writes it (needs pydicom); its pixels [frame, slice, row, col].

    Oblique short-axis plane, 1.5 x 1.25 mm pixels, 8 mm between slices; the middle of the image
    darkens from frame to frame, as a contracting heart does.
    """
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    row_dir, col_dir = np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(0.3), -np.sin(0.3)])
    normal = np.cross(row_dir, col_dir)
    series_uid, study_uid = generate_uid(), generate_uid()
    rng = np.random.default_rng(1)
    pixels = rng.integers(100, 200, size=(frames, slices, 12, 10)).astype(np.int16)
    for f in range(frames):
        pixels[f, :, 3:9, 3:7] += 600 - 150 * f
    for number, (f, k) in enumerate(np.ndindex(frames, slices)):
        ds = dicom_slice(
            pixels[f, k], series_uid=series_uid, instance=number + 1, trigger_time=40.0 * f,
            orientation=(row_dir, col_dir), position=np.array([10.0, -20.0, 30.0]) + k * 8.0 * normal,
            spacing=(1.5, 1.25),
        )  # fmt: skip
        ds.StudyInstanceUID = study_uid
        ds.PatientID, ds.StudyDate, ds.SeriesNumber = patient_id, "20240131", series_number
        ds.Manufacturer, ds.ManufacturerModelName, ds.MagneticFieldStrength = "GE", "Signa HDx", 1.5
        ds.SeriesDescription = "FIESTA CINE SAX"
        ds.save_as(folder / f"IM{number:04d}.dcm", enforce_file_format=True)
    return pixels


def dicom_slice(
    pixels: np.ndarray,
    *,
    series_uid: str,
    instance: int,
    trigger_time: float,
    orientation: tuple[np.ndarray, np.ndarray],
    position: np.ndarray,
    spacing: tuple[float, float],
):
    """One MR image of a series (int16 ``pixels`` [row, col]) as a pydicom Dataset, ready to ``save_as``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = series_uid
    ds.InstanceNumber = instance
    ds.TriggerTime = trigger_time
    ds.ImageOrientationPatient = [*orientation[0], *orientation[1]]
    ds.ImagePositionPatient = list(position)
    ds.PixelSpacing = list(spacing)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.int16).tobytes()
    return ds
