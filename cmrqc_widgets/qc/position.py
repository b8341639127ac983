"""Where the structures lie: a septum between the ventricles, the LV centre across slices, the RV's side.

Like :mod:`cmrqc_widgets.qc.shape`, every rule takes a :class:`~cmrqc_widgets.qc.shape.Labels`
bundle and returns :class:`~cmrqc_widgets.qc.shape.Finding` tuples; structures a layout does not
segment are skipped.

Sources
-------
- Tarroni G, Bai W, Oktay O, et al. Large-scale quality control of cardiac imaging in population
  studies: application to UK Biobank. Sci Rep 2020;10:2408 (doi:10.1038/s41598-020-58212-2):
  inter-slice misalignment (breath-hold mismatch) shows as jumps of the LV centre between
  neighbouring short-axis slices.
- Anatomy (any CMR textbook): the RV lies to the patient's right and anterior of the LV, the
  interventricular septum (myocardium) separates the two blood pools.
"""

from __future__ import annotations

import numpy as np

from .shape import Finding, Labels, border_fraction, slices_text

__all__ = ["misalignment", "position_findings", "rv_position", "septum"]


def septum(lab: Labels) -> list[Finding]:
    """LV and RV blood pools touching with no myocardium between them (severity: share of the RV border)."""
    if not (lab.has("LV") and lab.has("RV")):
        return []
    touching = border_fraction(lab.masks["RV"], lab.masks["LV"])
    both = lab.present["LV"] & lab.present["RV"]
    if not both.any():
        return []
    worst_share = float(np.nanmax(np.where(both, touching, 0.0)))
    severity = max(0.0, (worst_share - 0.05) / 0.10)
    if severity <= 0:
        return []
    k = int(np.nanargmax(np.where(both, touching, 0.0)))
    return [
        Finding(
            "septum",
            f"LV and RV blood pools touch on {worst_share:.0%} of the RV border with no septum between "
            f"them on {slices_text([k], lab.n_slices)}",
            severity,
            k,
        )
    ]


def misalignment(lab: Labels, max_shift_mm: float) -> list[Finding]:
    """LV centre jumping between neighbouring slices beyond the stack's own trend (Tarroni 2020)."""
    if not lab.has("LV"):
        return []
    lv = lab.masks["LV"]
    idx = np.flatnonzero(lab.present["LV"])
    if idx.size < 3:
        return []
    rows, cols = np.indices(lv.shape[1:])
    area = lv[idx].sum(axis=(1, 2)).astype(float)
    centres = np.c_[
        (lv[idx] * rows).sum(axis=(1, 2)) / area * lab.spacing[1],
        (lv[idx] * cols).sum(axis=(1, 2)) / area * lab.spacing[2],
    ]
    steps = np.diff(centres, axis=0)
    jumps = np.hypot(*(steps - np.median(steps, axis=0)).T)
    # Contiguous slices only: a gap is reported by its own rule.
    jumps[np.diff(idx) != 1] = 0.0
    worst = int(np.argmax(jumps))
    severity = max(0.0, (float(jumps[worst]) - max_shift_mm) / 4.0)
    if severity <= 0:
        return []
    k = int(idx[worst + 1])
    return [
        Finding(
            "misaligned",
            f"LV centre jumps {jumps[worst]:.0f} mm between {slices_text([k - 1, k], lab.n_slices)} "
            f"(at most {max_shift_mm:g} mm expected, slice misalignment?)",
            severity,
            k,
        )
    ]


def rv_position(lab: Labels, affine: np.ndarray | None) -> list[Finding]:
    """RV to the patient's right and/or anterior of the LV, in scanner coordinates (RAS) from the affine."""
    if affine is None or not (lab.has("LV") and lab.has("RV")):
        return []
    centres = []
    for s in ("LV", "RV"):
        voxel = np.argwhere(lab.masks[s]).mean(axis=0) + np.array([0, *lab.offset])
        centres.append((np.asarray(affine) @ np.r_[voxel, 1.0])[:3])
    direction = centres[1] - centres[0]
    norm = float(np.linalg.norm(direction[:2]))
    if norm < 1e-6:
        return []
    # RAS: +x is the patient's right, +y anterior; the RV should point into that quadrant.
    toward = float(np.dot(direction[:2] / norm, np.array([1.0, 1.0]) / np.sqrt(2)))
    severity = max(0.0, (0.0 - toward) / 0.5)
    if severity <= 0:
        return []
    return [
        Finding(
            "rv_position",
            "RV label lies to the patient's left or behind the LV (labels swapped, mirrored, or a wrong "
            "orientation in the header?)",
            severity,
        )
    ]


def position_findings(
    lab: Labels, *, max_shift_mm: float, affine: np.ndarray | None, swapped: bool
) -> list[Finding]:
    """The rules of this module on one phase (no septum check when the labels look swapped)."""
    found = [] if swapped else septum(lab)
    found += misalignment(lab, max_shift_mm)
    found += rv_position(lab, affine)
    return found
