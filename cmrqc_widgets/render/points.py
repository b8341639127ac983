"""Labelled voxels as 3D points in millimetres, coloured by structure, for the 3D panel.

A 3D view draws one marker per point, and software WebGL slows down with tens of thousands of
markers, so the points are capped by a deterministic subsample that keeps every structure present
(in proportion to its size, with a floor so a small structure never vanishes). The counts per
structure are those before subsampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..names import STRUCTURE_COLOURS, STRUCTURES

_COLOURS = np.array([STRUCTURE_COLOURS[name] for name in STRUCTURES], np.float32) / 255


@dataclass(frozen=True, eq=False)
class Points:
    """Points of the labelled voxels of one case.

    Attributes
    ----------
    xyz : np.ndarray
        float32 ``(N, 3)``: voxel centres in scanner millimetres (through the affine).
    structure : np.ndarray
        uint8 ``(N,)``: index of each point's structure in :data:`~cmrqc_widgets.names.STRUCTURES`.
    colours : np.ndarray
        float32 ``(N, 3)``: RGB in 0..1 of each point's structure.
    counts : dict[str, int]
        Voxels of every structure in ``STRUCTURES`` before subsampling (0 when absent).
    """

    xyz: np.ndarray
    structure: np.ndarray
    colours: np.ndarray
    counts: dict[str, int]

    def __len__(self) -> int:
        return len(self.xyz)

    def for_structure(self, name: str) -> np.ndarray:
        """``(n, 3)`` millimetre coordinates of the points of structure ``name``."""
        if name not in STRUCTURES:
            raise ValueError(f"Unknown structure {name!r}; known: {', '.join(STRUCTURES)}.")
        return self.xyz[self.structure == STRUCTURES.index(name)]


def _allocate(counts: list[int], cap: int) -> list[int]:
    """How many points each structure keeps: all when the total fits, else ~proportional, sum == cap."""
    total = sum(counts)
    if total <= cap:
        return list(counts)
    present = sum(1 for n in counts if n)
    # The floor keeps small structures visible (~1/20 of a fair share each), when the cap allows.
    floor = min(cap // present, max(1, cap // (20 * present)))
    keep = [min(n, floor) for n in counts]
    spare = [n - k for n, k in zip(counts, keep, strict=True)]
    budget = cap - sum(keep)
    shares = [budget * s / sum(spare) for s in spare]
    extra = [min(s, int(share)) for s, share in zip(spare, shares, strict=True)]
    # Largest remainders get the points rounding left over (ties: STRUCTURES order).
    order = sorted(range(len(counts)), key=lambda i: (-(shares[i] - int(shares[i])), i))
    left = budget - sum(extra)
    while left > 0:
        for i in order:
            if left and extra[i] < spare[i]:
                extra[i] += 1
                left -= 1
    return [k + e for k, e in zip(keep, extra, strict=True)]


def _holds(dtype: np.dtype, value: int) -> bool:
    """Whether arrays of ``dtype`` can hold label ``value`` at all (uint8 labels never hold 300)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return info.min <= value <= info.max
    return True


def _memory_order(array: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], tuple[bool, ...]]:
    """A C-contiguous view of ``array`` in memory order (a copy only if none exists).

    Returns the view, the original axis of each view axis, and which original axes run reversed.
    Cases hold flipped and transposed views of the decoded data; comparing those in logical
    order costs up to 20x more than in memory order.
    """
    flipped = tuple(stride < 0 for stride in array.strides)
    view = array[tuple(slice(None, None, -1) if f else slice(None) for f in flipped)]
    axes = tuple(int(a) for a in np.argsort([-stride for stride in view.strides], kind="stable"))
    return np.ascontiguousarray(view.transpose(axes)), axes, flipped


def label_points(
    labels: np.ndarray,
    affine: np.ndarray,
    label_map: dict[str, int],
    cap: int = 50_000,
    seed: int = 0,
) -> Points:
    """Labelled voxels of ``labels`` as points in mm, at most ``cap`` of them.

    Parameters
    ----------
    labels : np.ndarray
        3D integer label volume indexed ``(slice, row, col)``.
    affine : np.ndarray
        4x4 matrix mapping ``(slice, row, col, 1)`` indices to scanner millimetres.
    label_map : dict[str, int]
        Structure name to label value; structures not in ``STRUCTURES`` are left out.
    cap : int
        Most points returned. Above it each structure keeps a random subset (seeded by ``seed``
        and the structure, so the same call always gives the same points) roughly in
        proportion to its size, and at least a few when the cap allows.
    seed : int
        Seed of the subsampling.

    Returns
    -------
    Points
        Grouped by structure, in ``STRUCTURES`` order.
    """
    labels = np.asarray(labels)
    affine = np.asarray(affine, dtype=np.float64)
    if labels.ndim != 3:
        raise ValueError(f"Labels must be a 3D volume, got shape {labels.shape}.")
    if affine.shape != (4, 4):
        raise ValueError(f"Affine must be 4x4, got shape {affine.shape}.")
    if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 0:
        raise ValueError(f"Point cap must be a non-negative integer, got {cap!r}.")

    view, axes, flipped = _memory_order(labels)
    voxels = []
    for name in STRUCTURES:
        value = label_map.get(name)
        if value and _holds(view.dtype, value):
            # A bool mask of a contiguous array is the fast path of np.flatnonzero (~20x uint8's).
            voxels.append(np.flatnonzero(np.equal(view, value).reshape(-1)))
        else:
            voxels.append(np.zeros(0, np.intp))
    counts = [len(v) for v in voxels]

    chosen = []
    for s, (found, keep) in enumerate(zip(voxels, _allocate(counts, int(cap)), strict=True)):
        if keep < len(found):
            rng = np.random.default_rng([seed, s])
            found = found[np.sort(rng.choice(len(found), size=keep, replace=False))]
        chosen.append(found)
    index = np.concatenate(chosen)
    structure = np.repeat(np.arange(len(STRUCTURES), dtype=np.uint8), [len(c) for c in chosen])

    ijk = np.empty((len(index), 3), np.float64)
    for axis, coord in zip(axes, np.unravel_index(index, view.shape), strict=True):
        ijk[:, axis] = labels.shape[axis] - 1 - coord if flipped[axis] else coord
    xyz = (ijk @ affine[:3, :3].T + affine[:3, 3]).astype(np.float32)
    return Points(
        xyz=xyz,
        structure=structure,
        colours=_COLOURS[structure],
        counts=dict(zip(STRUCTURES, counts, strict=True)),
    )


def scaled_affine(affine: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """``affine`` with its columns rescaled to ``spacing`` (directions and origin kept).

    An ACDC sform of ``diag(-1, -1, 1)`` carries the orientation only; drawn through it, a heart
    of 1.6 x 1.6 x 10 mm voxels comes out 58 x 55 x 6 mm instead of 92 x 88 x 70 mm.
    """
    affine = np.asarray(affine, dtype=np.float64).copy()
    norms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if (norms > 0).all():
        affine[:3, :3] = affine[:3, :3] / norms * np.asarray(spacing, dtype=np.float64)
    return affine


def case_points(case: Any, cap: int = 50_000) -> Points:
    """:func:`label_points` of a case, through its affine scaled to its ``spacing`` when it has one."""
    spacing = getattr(case, "spacing", None)
    affine = case.affine if spacing is None else scaled_affine(case.affine, spacing)
    return label_points(case.labels, affine, case.label_map, cap=cap)


VIEW_AXES = {"sa": 0, "hla": 1, "vla": 2}
"""Index axis each 2D view slices along (``volume[k]``, ``volume[:, k, :]``, ``volume[:, :, k]``)."""


def slice_corners(
    shape: tuple[int, ...], view: str, index: int, box: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """Corners of slice ``index`` of ``view`` in voxel indices ``(slice, row, col)``, float64 ``(4, 3)``.

    The quad runs half a voxel beyond the outermost voxel centres, so it covers the slice as the
    2D view shows it, or only the part inside ``box`` (lowest and highest voxel indices, e.g.
    around the heart); corners go round the quad (two triangles: 0-1-2 and 0-2-3).
    """
    if view not in VIEW_AXES or len(shape) != 3:
        raise ValueError(f"Unknown view {view!r} or shape {shape!r}.")
    low = np.full(3, -0.5)
    high = np.asarray(shape, np.float64) - 0.5
    if box is not None:
        low = np.maximum(low, np.asarray(box[0], np.float64) - 0.5)
        high = np.minimum(high, np.asarray(box[1], np.float64) + 0.5)
    axis = VIEW_AXES[view]
    a, b = (k for k in range(3) if k != axis)
    corners = np.zeros((4, 3), np.float64)
    corners[:, axis] = index
    corners[:, a] = [low[a], high[a], high[a], low[a]]
    corners[:, b] = [low[b], low[b], high[b], high[b]]
    return corners
