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


def write_case(
    patient_dir: Path,
    layout: str = "4dsegment",
    *,
    shape: tuple[int, int, int] = (40, 32, 6),
    spacing: tuple[float, float, float] = (1.8, 1.8, 8.0),
    labels_dtype=np.uint8,
) -> Path:
    """Write both phases of one phantom patient in the file naming of ``layout``; return the folder."""
    label_map = LABELS[layout]
    patient_dir.mkdir(parents=True, exist_ok=True)
    for i, phase in enumerate(("ED", "ES")):
        # ES: LV radius 4, RV radius 7, so both ventricles eject about the same volume (64 vs 69 px a slice).
        lv_radius, rv_radius = (6.0, None) if i == 0 else (4.0, 7.0)
        image, labels = phantom(shape, label_map=label_map, lv_radius=lv_radius, rv_radius=rv_radius, seed=i)
        labels = labels.astype(labels_dtype)
        if layout == "4dsegment":
            names = (f"lvsa_SR_{phase}.nii.gz", f"seg_lvsa_SR_{phase}.nii.gz")
        elif layout == "ukbb":
            names = (f"sa_{phase}.nii.gz", f"seg_sa_{phase}.nii.gz")
        else:
            frame = 1 if phase == "ED" else 12
            stem = f"{patient_dir.name}_frame{frame:02d}"
            names = (f"{stem}.nii.gz", f"{stem}_gt.nii.gz")
        write_nifti(patient_dir / names[0], image, spacing)
        write_nifti(patient_dir / names[1], labels, spacing)
    if layout == "acdc":
        (patient_dir / "Info.cfg").write_text("ED: 1\nES: 12\nGroup: NOR\nHeight: 180.0\n")
    return patient_dir


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
