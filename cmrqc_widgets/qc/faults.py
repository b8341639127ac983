"""Realistic segmentation failures made from a good case, to measure how well the checks find them.

Each fault takes one phase's labels ``[slice, row, col]`` (plus the label map, the voxel spacing
in mm and a random generator) and returns a new array; the input is never modified. They mimic
what pipelines get wrong and reviewers reject: labels misregistered off the heart (``shift``),
grown into the background (``dilate``) or thinned (``erode``), flipped (``mirror``), structures
exchanged (``swap``) or lost (``drop``), a leak through the wall (``leak``), unlabelled slices
(``gap``) and a detached blob far away (``island``). ``ES = ED`` (the ED labels copied to ES) acts on
both phases and is made by the caller. ``jitter`` is *not* a failure: a one-pixel boundary change
of the kind two experts disagree by, used as an acceptable variant of a good case.

A fault that does not apply to a phase (``swap`` with a single structure) returns ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from scipy import ndimage

__all__ = ["FAULTS", "make_fault"]

_DISC_2D = ndimage.generate_binary_structure(2, 1)


def _in_plane(structure_2d: np.ndarray) -> np.ndarray:
    out = np.zeros((3, *structure_2d.shape), bool)
    out[1] = structure_2d
    return out


_PLANE = _in_plane(_DISC_2D)


def _present(labels: np.ndarray, label_map: Mapping[str, int]) -> dict[str, int]:
    return {s: v for s, v in label_map.items() if (labels == v).any()}


def shift(labels, label_map, spacing, rng, pixels: int = 10):
    """Every label moved ``pixels`` in-plane in a random direction (misregistration)."""
    angle = rng.uniform(0, 2 * np.pi)
    dr, dc = round(pixels * np.sin(angle)), round(pixels * np.cos(angle))
    out = np.zeros_like(labels)
    rows, cols = labels.shape[1:]
    src = labels[:, max(-dr, 0) : rows - max(dr, 0), max(-dc, 0) : cols - max(dc, 0)]
    out[:, max(dr, 0) : max(dr, 0) + src.shape[1], max(dc, 0) : max(dc, 0) + src.shape[2]] = src
    return out


def dilate(labels, label_map, spacing, rng, pixels: int = 4):
    """The whole heart grown ``pixels`` into the background; each new pixel takes its nearest label."""
    fg = labels != 0
    grown = ndimage.binary_dilation(fg, _PLANE, iterations=pixels)
    _, (iz, ir, ic) = ndimage.distance_transform_edt(~fg, return_indices=True, sampling=(1e3, 1, 1))
    out = labels.copy()
    new = grown & ~fg
    out[new] = labels[iz[new], ir[new], ic[new]]
    return out


def erode(labels, label_map, spacing, rng, pixels: int = 3):
    """The heart's outer border pulled in by ``pixels`` (the myocardium thinned, or the LV shrunk)."""
    fg = labels != 0
    kept = ndimage.binary_erosion(fg, _PLANE, iterations=pixels, border_value=0)
    out = labels.copy()
    out[~kept] = 0
    return out


def jitter(labels, label_map, spacing, rng):
    """Not a failure: the heart's outer border moved by one pixel, out or in (inter-observer level)."""
    if rng.random() < 0.5:
        return dilate(labels, label_map, spacing, rng, pixels=1)
    return erode(labels, label_map, spacing, rng, pixels=1)


def mirror(labels, label_map, spacing, rng):
    """The label array flipped left-right in-plane (a wrong orientation in the pipeline)."""
    return labels[:, :, ::-1].copy()


def swap(labels, label_map, spacing, rng):
    """LV and RV label values exchanged (LV and myocardium where there is no RV)."""
    present = _present(labels, label_map)
    pair = ("LV", "RV") if {"LV", "RV"} <= set(present) else ("LV", "MYO")
    if not set(pair) <= set(present):
        return None
    a, b = present[pair[0]], present[pair[1]]
    out = labels.copy()
    out[labels == a], out[labels == b] = b, a
    return out


def drop(labels, label_map, spacing, rng):
    """One structure deleted: the RV, else the myocardium, else the LV."""
    present = _present(labels, label_map)
    for structure in ("RV", "MYO", "LV"):
        if structure in present:
            out = labels.copy()
            out[labels == present[structure]] = 0
            return out
    return None


def _lv_slices(labels, label_map):
    lv = label_map.get("LV")
    return np.flatnonzero((labels == lv).any(axis=(1, 2))) if lv is not None else np.zeros(0, int)


def leak(labels, label_map, spacing, rng, radius_mm: float = 12.0):
    """LV label spilling through the wall on two mid slices into a blob outside the heart."""
    slices = _lv_slices(labels, label_map)
    if not slices.size:
        return None
    mid = int(slices[len(slices) // 2])
    lv = label_map["LV"]
    rows, cols = np.nonzero(labels[mid] == lv)
    cr, cc = rows.mean(), cols.mean()
    heart = np.nonzero(labels[mid] != 0)
    reach = np.hypot(heart[0] - cr, heart[1] - cc).max()
    angle = rng.uniform(0, 2 * np.pi)
    br, bc = cr + reach * np.sin(angle), cc + reach * np.cos(angle)
    rr, cc_grid = np.mgrid[: labels.shape[1], : labels.shape[2]]
    radius = radius_mm / spacing[1]
    blob = np.hypot(rr - br, cc_grid - bc) < radius
    # A channel from the cavity to the blob, so the leak is one piece with the LV.
    t = np.linspace(0, 1, 50)[:, None]
    path = np.c_[cr + t[:, 0] * (br - cr), cc + t[:, 0] * (bc - cc)].round().astype(int)
    channel = np.zeros_like(blob)
    channel[np.clip(path[:, 0], 0, blob.shape[0] - 1), np.clip(path[:, 1], 0, blob.shape[1] - 1)] = True
    channel = ndimage.binary_dilation(channel, _DISC_2D, iterations=2)
    out = labels.copy()
    for z in (mid, min(mid + 1, labels.shape[0] - 1)):
        out[z][blob | channel] = lv
    return out


def gap(labels, label_map, spacing, rng):
    """All labels deleted on two neighbouring mid slices."""
    heart = np.flatnonzero((labels != 0).any(axis=(1, 2)))
    if heart.size < 4:
        return None
    mid = int(heart[len(heart) // 2])
    out = labels.copy()
    out[mid - 1 : mid + 1] = 0
    return out


def island(labels, label_map, spacing, rng, volume_ml: float = 3.0):
    """A detached blob of LV label (about ``volume_ml``) 40 mm from the heart (less in a small image)."""
    lv = label_map.get("LV")
    slices = _lv_slices(labels, label_map)
    if lv is None or not slices.size:
        return None
    heart = labels != 0
    distance = ndimage.distance_transform_edt(~heart.any(axis=0), sampling=spacing[1:])
    far = distance > min(40.0, 0.7 * float(distance.max()))
    rows, cols = np.nonzero(far)
    if not rows.size:
        return None
    pick = rng.integers(rows.size)
    depth = 2
    radius = np.sqrt(volume_ml * 1000 / depth / spacing[0] / np.pi) / spacing[1]
    rr, cc = np.mgrid[: labels.shape[1], : labels.shape[2]]
    blob = np.hypot(rr - rows[pick], cc - cols[pick]) < radius
    out = labels.copy()
    z = int(slices[len(slices) // 2])
    for k in range(z, min(z + depth, labels.shape[0])):
        out[k][blob] = lv
    return out


Fault = Callable[..., "np.ndarray | None"]

FAULTS: dict[str, Fault] = {
    "shift": shift,
    "dilate": dilate,
    "erode": erode,
    "mirror": mirror,
    "swap": swap,
    "leak": leak,
    "gap": gap,
    "island": island,
    "drop": drop,
}
"""Failure kinds acting on one phase (``ES = ED`` acts on both and is made by the caller)."""


def make_fault(
    kind: str,
    labels: np.ndarray,
    label_map: Mapping[str, int],
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
) -> np.ndarray | None:
    """``labels`` with failure ``kind`` (a :data:`FAULTS` key or ``"jitter"``), ``None`` if not applicable."""
    maker = jitter if kind == "jitter" else FAULTS.get(kind)
    if maker is None:
        raise ValueError(f"Unknown fault {kind!r}; use one of {', '.join(FAULTS)} or 'jitter'.")
    return maker(np.asarray(labels), label_map, spacing, rng)
