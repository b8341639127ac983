"""A synthetic demo cohort: short-axis cine MRI and segmentations, generated at run time.

No patient data ships with the package. :func:`make_demo_cohort` draws, from a seed, a
cohort of patients in the ``4dsegment`` layout (``lvsa_SR_{ED,ES}.nii.gz`` and
``seg_lvsa_SR_{ED,ES}.nii.gz``; labels 1 LV blood pool, 2 RV blood pool, 3 LV myocardium)
and a dataset file listing them for one reviewer.

Each volume is a short-axis stack from the base (slice 0, which cuts through the atria)
to below the apex: an elliptical LV blood pool that shrinks toward the apex inside a
myocardial ring, a crescent RV beside the septum, bright blood, mid-grey muscle, dark
lungs, bright subcutaneous fat, a smooth body outline, a coil bias field and Rician noise.
End-systole has a smaller cavity (LV ejection fraction 55-65 %) and a thicker wall (the
myocardial area of each slice is kept). Voxel axes are (x, y, z) with x toward the
patient's left, y toward posterior and z from base toward apex, so the RV lies at small x.

A few patients are broken on purpose, so a reviewer has something to reject; see
:data:`DEMO_BROKEN`.

One module on purpose (~420 lines): the anatomy, the breakages and the files are one recipe read
top to bottom, and nothing else imports its parts.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from filelock import FileLock

from .names import check_dataset_name, resolve_root, resolve_user, safe_path, user_folder
from .store import QCStore
from .store.journal import watermark_path

__all__ = ["DEMO_BROKEN", "DEMO_FOLDER", "LABEL_MAP", "demo_affine", "make_demo_cohort", "patient_name"]

DEMO_FOLDER = "demo_cohort"
"""Folder under the data root that holds the demo patients."""

LABEL_MAP: dict[str, int] = {"LV": 1, "RV": 2, "MYO": 3}
"""Label numbers of the demo segmentations (the ``4dsegment`` convention)."""

DEMO_BROKEN: dict[str, str] = {
    "demo003": "ED labels missing on three mid-ventricular slices",
    "demo005": "ES LV label leaks into the left atrium and through the lateral wall",
    "demo007": "LV and RV label numbers swapped in both phases",
    "demo008": "ES segmentation empty (all labels zero)",
    "demo009": "ES image file truncated (corrupt gzip)",
}
"""Patient folder name -> what is wrong with it. All other demo patients are normal."""

_FILES = {
    "image": "lvsa_SR_{phase}.nii.gz",
    "labels": "seg_lvsa_SR_{phase}.nii.gz",
}
_PHASES = ("ED", "ES")


def patient_name(index: int) -> str:
    """Folder name of the demo patient number ``index`` (1-based), e.g. ``demo001``."""
    return f"demo{index:03d}"


def make_demo_cohort(
    root: str | os.PathLike[str] | None = None,
    user: str | None = None,
    *,
    n_patients: int = 10,
    seed: int = 0,
    shape: tuple[int, int, int] = (200, 200, 12),
    spacing: tuple[float, float, float] = (1.8, 1.8, 8.0),
    dataset: str = "demo.json",
    overwrite: bool = False,
) -> Path:
    """Write the synthetic demo cohort and a dataset file listing it; return the dataset path.

    Parameters
    ----------
    root : path, optional
        Data root (default :func:`~cmrqc_widgets.names.resolve_root`). Patients go to
        ``<root>/demo_cohort/<patient>/``.
    user : str, optional
        Reviewer who gets the dataset file ``<root>/users/<user>/<dataset>`` (default
        :func:`~cmrqc_widgets.names.resolve_user`).
    n_patients : int
        Number of patients, ``demo001`` ... Patients named in :data:`DEMO_BROKEN` are broken.
    seed : int
        Seed of the random draws; the same seed gives the same volumes.
    shape : (int, int, int)
        Voxels along x, y and z (slices). At least 64 x 64 x 6.
    spacing : (float, float, float)
        Voxel size in millimetres along x, y and z.
    dataset : str
        Dataset file name (a plain name ending in ``.json``).
    overwrite : bool
        Regenerate existing case files and replace the dataset file (its decisions are lost).
        By default existing files are kept, so a reviewer's demo decisions survive a restart.

    Returns
    -------
    Path
        The dataset file; its patients are the absolute patient folders, in order, with no
        decisions.

    Raises
    ------
    ValueError
        If ``n_patients``, ``seed``, ``shape`` or ``spacing`` are out of range.
    InvalidNameError
        If ``user`` or ``dataset`` is not an allowed name.
    """
    if n_patients < 1:
        raise ValueError(f"n_patients must be at least 1, got {n_patients}.")
    if seed < 0:
        raise ValueError(f"seed must not be negative, got {seed}.")
    if len(shape) != 3 or min(shape[:2]) < 64 or shape[2] < 6:
        raise ValueError(f"shape must be at least (64, 64, 6), got {tuple(shape)}.")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive millimetre values, got {tuple(spacing)}.")
    root_path = resolve_root(root)
    reviewer = resolve_user(user)
    check_dataset_name(dataset)
    user_folder(root_path, reviewer)  # refuse a hostile user name before writing anything
    cohort = safe_path(root_path, DEMO_FOLDER)
    cohort.mkdir(parents=True, exist_ok=True)

    # Two servers started at once must not interleave half-written cohorts.
    with FileLock(str(cohort / ".demo.lock"), timeout=120):
        patients = []
        for index in range(1, n_patients + 1):
            folder = cohort / patient_name(index)
            _write_patient(folder, index, seed, shape, spacing, overwrite)
            patients.append(str(folder))
        return _write_dataset(root_path, reviewer, dataset, patients, overwrite)


def demo_affine(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Voxel-to-scanner affine of the demo volumes: heart near the scanner origin.

    x runs toward the patient's left, y toward posterior and z from base toward the apex
    (inferior), as RAS+ world coordinates with negative axes.
    """
    sx, sy, sz = (float(s) for s in spacing)
    nx, ny, nz = shape
    affine = np.diag([-sx, -sy, -sz, 1.0])
    affine[:3, 3] = [sx * nx * 0.5, sy * ny * 0.45, sz * nz * 0.4]
    return affine


# --- generation ---------------------------------------------------------------------------------


def _write_patient(
    folder: Path,
    index: int,
    seed: int,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    overwrite: bool,
) -> None:
    paths = {
        (phase, kind): folder / pattern.format(phase=phase)
        for phase in _PHASES
        for kind, pattern in _FILES.items()
    }
    if not overwrite and all(path.exists() for path in paths.values()):
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, index])
    params = _draw_patient(rng)
    affine = demo_affine(shape, spacing)
    background = _background(params, shape, spacing)
    name = folder.name
    for phase in _PHASES:
        image, labels = _phase_volume(params, phase, background, spacing, rng)
        labels = _break(name, phase, labels, params, spacing)
        _save(paths[(phase, "image")], image, affine)
        _save(paths[(phase, "labels")], labels, affine)
    if name == "demo009":
        _truncate(paths[("ES", "image")])


def _draw_patient(rng: np.random.Generator) -> dict[str, float]:
    """Anatomy of one patient, in millimetres (from the volume centre), radians and fractions."""
    return {
        "cx": 40.0 + rng.normal(0.0, 5.0),  # LV centre, toward the patient's left
        "cy": rng.normal(0.0, 5.0),
        "lv_radius": rng.uniform(23.0, 28.0),  # ED basal cavity radius
        "wall": rng.uniform(6.5, 9.5),  # ED myocardial thickness
        "lv_ef": rng.uniform(0.58, 0.63),
        "rv_ef": rng.uniform(0.48, 0.58),
        "ellipticity": rng.uniform(1.0, 1.12),
        "tilt": rng.uniform(0.0, np.pi),
        "rv_angle": np.deg2rad(rng.uniform(195.0, 215.0)),  # toward patient right and anterior
        "rv_spread": rng.uniform(1.45, 1.65),
        "body_x": rng.uniform(150.0, 170.0),  # semi-axes of the chest outline
        "body_y": rng.uniform(105.0, 120.0),
        "body_wobble": rng.uniform(0.0, 2 * np.pi),
        "gain": rng.uniform(700.0, 1200.0),
        "noise": rng.uniform(0.025, 0.04),
    }


def _soft(inside: np.ndarray, width: float = 0.8) -> np.ndarray:
    """Partial-volume edge: ``inside`` is a signed distance in voxels (positive inside)."""
    return 0.5 + 0.5 * np.tanh(inside / width)


def _ellipse(x: np.ndarray, y: np.ndarray, cx, cy, a, b, angle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Normalised radius q (< 1 inside) of an ellipse and an approximate signed distance in mm."""
    c, s = np.cos(angle), np.sin(angle)
    u = (x - cx) * c + (y - cy) * s
    v = (y - cy) * c - (x - cx) * s
    a = np.maximum(a, 1e-3)
    b = np.maximum(b, 1e-3)
    q = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    return q, (1.0 - q) * np.minimum(a, b)


def _paint(image: np.ndarray, weight: np.ndarray, value: float) -> np.ndarray:
    return image * (1.0 - weight) + value * weight


def _grid(shape: Sequence[int], spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Millimetre coordinates of the x (column vector) and y (row vector) voxel centres."""
    nx, ny = shape[:2]
    x = ((np.arange(nx, dtype=np.float32) - nx / 2) * spacing[0])[:, None]
    y = ((np.arange(ny, dtype=np.float32) - ny * 0.45) * spacing[1])[None, :]
    return x, y


def _background(p: dict[str, float], shape: tuple[int, int, int], spacing: Sequence[float]) -> np.ndarray:
    """Everything but the ventricles, noise-free, (x, y, z) float32: the same in ED and ES."""
    nz = shape[2]
    px = min(spacing[:2])
    x, y = _grid(shape, spacing)
    phi = np.arctan2(y, x)
    wobble = 1.0 + 0.03 * np.sin(3 * phi + p["body_wobble"]) + 0.02 * np.cos(5 * phi)
    body = _soft(_ellipse(x, y, 0.0, 8.0, p["body_x"] * wobble, p["body_y"] * wobble)[1] / px)
    inner = _soft(_ellipse(x, y, 0.0, 8.0, p["body_x"] * wobble - 12, p["body_y"] * wobble - 12)[1] / px)
    cx, cy = p["cx"], p["cy"]
    slab = 0.45 * body + 0.35 * (body - inner)  # muscle and viscera, bright subcutaneous fat
    slab = _paint(slab, _soft(_ellipse(x, y, cx + 40.0, 20.0, 55.0, 72.0, 0.25)[1] / px) * inner, 0.05)
    slab = _paint(slab, _soft(_ellipse(x, y, -72.0, 15.0, 52.0, 75.0, -0.2)[1] / px) * inner, 0.05)
    slab = _paint(slab, _soft(_ellipse(x, y, 0.0, 100.0, 16.0, 14.0)[1] / px), 0.55)  # spine
    slab = _paint(slab, _soft(_ellipse(x, y, 25.0, 72.0, 11.0, 11.0)[1] / px), 0.95)  # descending aorta
    volume = np.repeat(slab[:, :, None], nz, axis=2)
    # Slice 0 cuts the atria; the liver rises into the apical slices on the patient's right.
    volume[:, :, 0] = _paint(
        volume[:, :, 0],
        np.maximum(
            _soft(_ellipse(x, y, cx + 5.0, cy + 28.0, 24.0, 18.0)[1] / px),
            _soft(_ellipse(x, y, cx - 45.0, cy + 10.0, 22.0, 20.0)[1] / px),
        ),
        0.9,
    )
    for k in range(nz):
        rise = (k - nz * 0.55) / (nz * 0.45)
        if rise > 0:
            liver = _soft(_ellipse(x, y, -60.0, 30.0, 40.0 + 60.0 * rise, 35.0 + 45.0 * rise)[1] / px)
            volume[:, :, k] = _paint(volume[:, :, k], liver * inner, 0.32)
    # Receive coils on the chest: brighter anteriorly.
    volume *= (1.15 - 0.3 * np.clip((y + 120.0) / 260.0, 0.0, 1.0))[:, :, None]
    return volume


def _heart(p: dict[str, float], phase: str, nz: int) -> dict[str, np.ndarray]:
    """Per-slice radii (mm) of the LV cavity, epicardium and RV ellipse, shape (nz,)."""
    z = np.arange(nz, dtype=np.float32)
    t = np.clip((z - 1.0) / max(nz - 2.0, 1.0), 0.0, None)  # 0 at the base, ~0.9 at the apical cap
    inside = ((z >= 1) & (z <= nz - 2)).astype(np.float32)
    r_lv = p["lv_radius"] * np.sqrt(np.clip(1.0 - (t / 0.86) ** 2, 0.0, None)) * inside
    r_epi = (p["lv_radius"] + p["wall"]) * np.sqrt(np.clip(1.0 - (t / 0.97) ** 2, 0.0, None)) * inside
    rv = np.sqrt(np.clip(1.0 - (t / 0.72) ** 2, 0.0, None)) * inside
    rv_scale = 1.0
    if phase == "ES":
        # Same myocardial area per slice: the wall thickens as the cavity empties.
        r_es = r_lv * np.sqrt(1.0 - p["lv_ef"])
        r_epi = np.sqrt(r_es**2 + r_epi**2 - r_lv**2)
        r_lv = r_es
        rv_scale = np.sqrt(1.0 - p["rv_ef"])
    r_base = p["lv_radius"] + p["wall"]
    return {
        "lv": r_lv,
        "epi": r_epi,
        "rv_a": r_base * p["rv_spread"] * rv * rv_scale**0.5,
        "rv_b": r_base * 1.15 * rv * rv_scale,
        "rv_off": r_base * 0.3 * rv * rv_scale + 0.1 * r_epi,
    }


def _phase_volume(
    p: dict[str, float],
    phase: str,
    background: np.ndarray,
    spacing: Sequence[float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Image (int16) and labels (uint8) of one phase, NIfTI voxel order (x, y, z)."""
    shape = background.shape
    px = min(spacing[:2])
    r = _heart(p, phase, shape[2])
    e, tilt = p["ellipticity"], p["tilt"]
    cx, cy = p["cx"], p["cy"]
    rcx = cx + r["rv_off"] * np.cos(p["rv_angle"])
    rcy = cy + r["rv_off"] * np.sin(p["rv_angle"])
    rv_tilt = p["rv_angle"] + np.pi / 2

    # Only the box around the heart changes between phases; compute there, on heart slices only.
    reach = float(np.max(r["rv_off"] + r["rv_a"]) + 8.0)
    x, y = _grid(shape, spacing)
    xs = np.flatnonzero(np.abs(x[:, 0] - cx) <= reach)
    ys = np.flatnonzero(np.abs(y[0] - cy) <= reach)
    box = (slice(xs[0], xs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(1, shape[2] - 1))
    xb, yb = x[box[0]][:, :, None], y[:, box[1]][:, :, None]
    rz = {k: v[box[2]][None, None, :] for k, v in r.items()}
    rcxz, rcyz = rcx[box[2]][None, None, :], rcy[box[2]][None, None, :]

    q_lv, d_lv = _ellipse(xb, yb, cx, cy, rz["lv"] * e, rz["lv"] / e, tilt)
    q_epi, d_epi = _ellipse(xb, yb, cx, cy, rz["epi"] * e, rz["epi"] / e, tilt)
    q_rv, d_rv = _ellipse(xb, yb, rcxz, rcyz, rz["rv_a"], rz["rv_b"], rv_tilt)
    _, d_rv_wall = _ellipse(xb, yb, rcxz, rcyz, rz["rv_a"] + 3.5, rz["rv_b"] + 3.5, rv_tilt)
    # Paint the heart under the same coil shading as the background.
    shade = 1.15 - 0.3 * np.clip((yb + 120.0) / 260.0, 0.0, 1.0)
    patch = background[box] / shade
    patch = _paint(patch, _soft(d_rv_wall / px), 0.33)
    patch = _paint(patch, _soft(d_epi / px), 0.33)
    patch = _paint(patch, _soft(d_rv / px) * _soft(-d_epi / px), 0.92)
    patch = _paint(patch, _soft(d_lv / px), 1.0)
    image = background.copy()
    image[box] = patch * shade

    # Rician (magnitude) noise.
    sigma = p["noise"]
    real = rng.standard_normal(shape, dtype=np.float32)
    real *= sigma
    real += image
    imag = rng.standard_normal(shape, dtype=np.float32)
    imag *= sigma
    image = np.sqrt(real * real + imag * imag) * p["gain"]
    image = np.clip(np.rint(image), 0, 32767).astype(np.int16)

    labels = np.zeros(shape, np.uint8)
    patch_labels = np.zeros(q_lv.shape, np.uint8)
    patch_labels[q_epi < 1.0] = LABEL_MAP["MYO"]
    patch_labels[(q_rv < 1.0) & (q_epi >= 1.0)] = LABEL_MAP["RV"]
    patch_labels[q_lv < 1.0] = LABEL_MAP["LV"]
    labels[box] = patch_labels
    return image, labels


def _break(
    name: str,
    phase: str,
    labels: np.ndarray,
    p: dict[str, float],
    spacing: Sequence[float],
) -> np.ndarray:
    """Apply the deliberate fault of patient ``name`` (see :data:`DEMO_BROKEN`) to ``labels``."""
    nz = labels.shape[2]
    lv, rv = LABEL_MAP["LV"], LABEL_MAP["RV"]
    if name == "demo003" and phase == "ED":
        mid = nz // 2
        labels[:, :, mid - 1 : mid + 2] = 0
    elif name == "demo005" and phase == "ES":
        x, y = _grid(labels.shape, spacing)
        cx, cy = p["cx"], p["cy"]
        # Into the left atrium on the basal slice ...
        labels[:, :, 0][np.hypot(x - cx - 5.0, (y - cy - 28.0) * 1.3) < 22.0] = lv
        # ... and out through the lateral wall on the basal third, into the lung.
        blob = np.hypot((x - cx - p["lv_radius"] - 8.0) * 0.8, y - cy) < 16.0
        labels[:, :, 1 : max(2, nz // 3) + 1][blob] = lv
    elif name == "demo007":
        swapped = labels.copy()
        swapped[labels == lv] = rv
        swapped[labels == rv] = lv
        labels = swapped
    elif name == "demo008" and phase == "ES":
        labels = np.zeros_like(labels)
    return labels


# --- files --------------------------------------------------------------------------------------


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write a ``.nii.gz`` file atomically; fixed gzip header, so equal data gives equal bytes."""
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    _write_atomic(path, gzip.compress(img.to_bytes(), compresslevel=1, mtime=0))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _truncate(path: Path) -> None:
    """Cut a written ``.nii.gz`` file to 40 % of its bytes: a copy interrupted mid-transfer."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.4)])


def _write_dataset(root: Path, user: str, name: str, patients: list[str], overwrite: bool) -> Path:
    store = QCStore(root, user)
    if overwrite:
        # A fresh dataset: drop the file and the journal watermark, so no earlier save is
        # replayed into it. The journal itself is append-only history and stays.
        path = store.path(name)
        path.unlink(missing_ok=True)
        watermark_path(path).unlink(missing_ok=True)
    dataset = store.create(name, patients, exist_ok=True)
    dataset.close()
    return dataset.path
