"""What the 3D panel draws for one case: points in the short-axis view's frame, and the slice plane.

:func:`prepare_drawing` runs off the main thread (the prefetch calls it for the neighbours): the
labelled voxels as points (capped, :func:`~cmrqc_widgets.render.points.case_points`) turned into
the frame of the short-axis view (x across the screen as the 2D columns run, y up, z toward the
viewer; :func:`~cmrqc_widgets.render.orientation.screen_frame`), a cube of axis limits around them,
a marker size, the axis labels, and what places the current 2D slice as a quad in that frame
(:meth:`Drawing.plane`).

Pure numpy: no widgets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..names import STRUCTURES
from .orientation import axis_labels, screen_frame
from .points import VIEW_AXES, case_points, scaled_affine, slice_corners

DEFAULT_CAP = 50_000
"""Most points drawn (a deterministic, per-structure proportional subsample beyond)."""

PLANE_MARGIN = 3
"""Voxels the slice plane reaches beyond the labelled voxels (it would dwarf the heart otherwise)."""


@dataclass(frozen=True)
class Drawing:
    """Everything the 3D panel needs to draw one case, computed off the main thread.

    Attributes
    ----------
    parts : dict
        Structure -> (x, y, z) contiguous float32 arrays in mm, in the short-axis view's frame
        (only structures with points).
    limits : tuple
        (low, high) of the x, y and z axes: a cube around the points.
    size : float
        Marker size: about one voxel, a little larger when subsampled so surfaces stay closed.
    status : str
        HTML line: points drawn of labelled voxels, per structure.
    axes : tuple of str
        Labels of the x, y and z axes: the patient directions they run between.
    grid : numpy.ndarray or None
        4x4: voxel indices ``(slice, row, col, 1)`` to the drawing's coordinates (for the slice plane).
    shape : tuple of int
        Shape of the case's volume.
    box : tuple of numpy.ndarray or None
        Lowest and highest voxel indices of the labelled voxels, widened by :data:`PLANE_MARGIN`.
    """

    parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    limits: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    size: float
    status: str
    axes: tuple[str, str, str] = ("x", "y", "z")
    grid: np.ndarray | None = None
    shape: tuple[int, int, int] = (0, 0, 0)
    box: tuple[np.ndarray, np.ndarray] | None = None

    def plane(self, view: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Corners of the quad of slice 0 of ``view`` (float32 ``(4, 3)``), and the shift to slice ``index``.

        A slice move only changes the shift (the mesh's offsets), never the corners.
        """
        if self.grid is None:
            return np.zeros((4, 3), np.float32), np.zeros(3)
        corners = slice_corners(self.shape, view, 0, self.box)
        xyz = corners @ self.grid[:3, :3].T + self.grid[:3, 3]
        return xyz.astype(np.float32), self.grid[:3, VIEW_AXES[view]] * index


def prepare_drawing(case: Any, cap: int = DEFAULT_CAP) -> Drawing:
    """The :class:`Drawing` of ``case`` with at most ``cap`` points."""
    points = case_points(case, cap=cap)
    frame = screen_frame(case.affine)
    xyz = (points.xyz.astype(np.float64) @ frame.T).astype(np.float32)
    if len(xyz):
        low, high = xyz.min(axis=0), xyz.max(axis=0)
    else:
        low, high = np.zeros(3, np.float32), np.ones(3, np.float32)
    centre = (low + high) / 2
    half = float(max((high - low).max(), 1.0)) * 0.55
    total = sum(points.counts.values())
    voxel = float(np.mean(case.spacing[1:]))
    fill = (total / max(len(xyz), 1)) ** (1 / 3) if total else 1.0
    size = float(np.clip(100 * voxel * fill / (2 * half), 0.2, 4.0))
    parts = {}
    for index, name in enumerate(STRUCTURES):
        part = xyz[points.structure == index]
        if len(part):
            parts[name] = tuple(np.ascontiguousarray(part[:, k], dtype=np.float32) for k in range(3))
    counts = ", ".join(f"{name} {points.counts.get(name, 0):,}" for name in STRUCTURES)
    shown = f"{len(xyz):,} of {total:,} voxels drawn" if total > len(xyz) else f"{total:,} voxels"
    x, y, z = ((float(c - half), float(c + half)) for c in centre)
    axes = axis_labels(case.affine)
    spacing = getattr(case, "spacing", None)
    affine = case.affine if spacing is None else scaled_affine(case.affine, spacing)
    grid = np.eye(4)
    grid[:3, :3] = frame @ np.asarray(affine, np.float64)[:3, :3]
    grid[:3, 3] = frame @ np.asarray(affine, np.float64)[:3, 3]
    shape = tuple(int(n) for n in np.shape(case.labels))
    box = None
    if len(xyz):  # the labelled voxels' index box, from the points themselves (no second pass)
        index = (xyz.astype(np.float64) - grid[:3, 3]) @ np.linalg.inv(grid[:3, :3]).T
        box = (np.floor(index.min(axis=0)) - PLANE_MARGIN, np.ceil(index.max(axis=0)) + PLANE_MARGIN)
    status = f"<small>{shown} ({counts})</small>"
    return Drawing(parts, (x, y, z), size, status, axes, grid, shape, box)  # type: ignore[arg-type]
