"""The old Flask app's per-move work, rebuilt from SPEC.md's description (not its code).

On every move (next patient, phase switch, or any click) the old app reloaded the whole page and:

- read the MRI once and the labels twice with ``get_fdata()`` (float64), the NIfTI re-read three times;
- normalised every slice by its own min and max;
- encoded every slice of both volumes as PNG and then base64, to inline them in the page
  (so that the page already held all slices of the phase);
- listed every labelled voxel for the 3D view.

This module reproduces that work so the benchmark can report our time as a ratio of its time.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

# The old app's colours by label number (4Dsegment numbering: 1 LV red, 2 RV green, 3 myocardium blue).
_OLD_COLOURS = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)


def _png_base64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def old_app_move(patient_dir: Path, phase: str) -> dict[str, object]:
    """Do the old app's work for one page load of ``patient_dir`` at ``phase``; return the page parts."""
    image = nib.load(patient_dir / f"lvsa_SR_{phase}.nii.gz").get_fdata()
    labels_for_2d = nib.load(patient_dir / f"seg_lvsa_SR_{phase}.nii.gz").get_fdata()
    labels_for_3d = nib.load(patient_dir / f"seg_lvsa_SR_{phase}.nii.gz").get_fdata()

    mri_slices, label_slices = [], []
    for k in range(image.shape[2]):
        plane = image[:, :, k]
        low, high = plane.min(), plane.max()
        scaled = (plane - low) / (high - low) if high > low else np.zeros_like(plane)
        mri_slices.append(_png_base64((scaled * 255).astype(np.uint8)))
        codes = np.clip(labels_for_2d[:, :, k].astype(np.int64), 0, 3)
        label_slices.append(_png_base64(_OLD_COLOURS[codes]))

    voxels = [
        (int(i), int(j), int(k), int(labels_for_3d[i, j, k])) for i, j, k in np.argwhere(labels_for_3d > 0)
    ]
    page_bytes = sum(len(s) for s in mri_slices) + sum(len(s) for s in label_slices) + 16 * len(voxels)
    return {"mri": mri_slices, "labels": label_slices, "voxels": voxels, "page_bytes": page_bytes}
