"""Which way is the patient: orientation letters for the screen edges, and the 3D panel's frame.

Letters follow the patient: R/L (right/left), A/P (anterior/posterior), S/I (superior/inferior),
from RAS+ millimetre directions (NIfTI: x toward the patient's right... left-to-right, i.e. +x is
R). A direction within ~20 degrees of an axis gets one letter; an oblique one gets two or three,
largest component first ("LA" = mostly left, somewhat anterior).

The 3D panel draws points in the frame of the short-axis view: x across the screen as the 2D
columns run, y up the screen (against the 2D rows), z toward the viewer. That frame is a rotation
of the scanner's, so the 3D view has the 2D view's handedness: a reviewer who sees the RV on the
left in 2D sees it on the left in 3D.
"""

from __future__ import annotations

import numpy as np

LETTERS = (("L", "R"), ("P", "A"), ("I", "S"))
"""Letter of the negative and positive direction of each RAS axis."""

OBLIQUE_SHARE = 0.34
"""A component at least this share of a unit direction (~20 degrees off the main axis) adds its letter."""

VIEW_AXES = {"sa": (2, 1), "hla": (2, 0), "vla": (1, 0)}
"""Display axes (of ``[slice, row, col]``) running across and down the screen in each view."""


def direction_letters(direction: np.ndarray) -> str:
    """Letters of a RAS+ direction, largest component first (``[0.9, 0.4, 0]`` -> ``"RA"``)."""
    d = np.asarray(direction, float)
    norm = np.linalg.norm(d)
    if norm == 0 or not np.isfinite(norm):
        return "?"
    d = d / norm
    order = np.argsort(-np.abs(d), kind="stable")
    return "".join(LETTERS[a][int(d[a] > 0)] for a in order if a == order[0] or abs(d[a]) >= OBLIQUE_SHARE)


def edge_letters(affine: np.ndarray) -> dict[str, dict[str, str]]:
    """Letters at the left, right, top and bottom edges of each view of a display-ordered case.

    Parameters
    ----------
    affine : ndarray
        4x4, ``(slice, row, col, 1)`` -> RAS+ mm (``Case.affine``).

    Returns
    -------
    dict
        ``{"sa": {"left": "R", "right": "L", "top": "A", "bottom": "P"}, "hla": ..., "vla": ...}``.
    """
    m = np.asarray(affine, float)[:3, :3]
    found = {}
    for view, (across, down) in VIEW_AXES.items():
        found[view] = {
            "left": direction_letters(-m[:, across]),
            "right": direction_letters(m[:, across]),
            "top": direction_letters(-m[:, down]),
            "bottom": direction_letters(m[:, down]),
        }
    return found


def screen_frame(affine: np.ndarray) -> np.ndarray:
    """3x3 rotation whose rows are the short-axis view's across, up and toward-viewer directions (RAS+).

    ``points @ screen_frame(affine).T`` gives coordinates in which the 3D panel's default camera
    (x right, y up, z toward the viewer) sees what the short-axis view shows.
    """
    m = np.asarray(affine, float)[:3, :3]
    across = m[:, 2] / np.linalg.norm(m[:, 2])
    up = -m[:, 1]
    up = up - across * (up @ across)  # oblique grids: make the frame orthonormal
    up /= np.linalg.norm(up)
    return np.stack([across, up, np.cross(across, up)])


def axis_labels(affine: np.ndarray) -> tuple[str, str, str]:
    """Labels of the 3D panel's x, y and z axes, e.g. ``("R → L", "P → A", "I → S")``."""
    frame = screen_frame(affine)
    return tuple(f"{direction_letters(-row)} → {direction_letters(row)}" for row in frame)  # type: ignore[return-value]
