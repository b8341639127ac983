"""Rules on the labels of one phase alone: presence, slice coverage, pieces, the myocardial ring.

Every function here takes a :class:`Labels` bundle and returns :class:`Finding` tuples
``(rule, message, severity, slice)``; :mod:`cmrqc_widgets.qc.metrics` turns them into weighted
checks. Structures the layout does not segment (no RV in a layout of LV + myocardium) are skipped,
never reported as missing.

Sources
-------
- Bai W, Sinclair M, Tarroni G, et al. Automated cardiovascular magnetic resonance image analysis
  with fully convolutional networks. J Cardiovasc Magn Reson 2018;20:65
  (doi:10.1186/s12968-018-0471-x), and its code ``ukbb_cardiac`` (``common/cardiac_utils.py``,
  ``sa_pass_quality_control``): every label at least 10 pixels on a slice where it is present, LV
  and myocardium on at least 6 slices, no missing slice inside the stack, and the LV epicardium
  and the RV both present on the mid-cavity slice.

Where the structures lie relative to each other (septum, slice alignment, RV side) is
:mod:`cmrqc_widgets.qc.position`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from ..names import STRUCTURES

__all__ = ["Finding", "Labels", "border_fraction", "label_findings", "slices_text"]

_CROSS_2D = np.zeros((3, 3, 3), bool)
_CROSS_2D[1] = ndimage.generate_binary_structure(2, 1)  # in-plane 4-neighbourhood only
_FULL_3D = np.ones((3, 3, 3), bool)


class Finding(NamedTuple):
    """A failed rule before weighting: id, words, severity (1 = one tolerance out), 0-based slice."""

    rule: str
    message: str
    severity: float = 1.0
    slice: int | None = None


def slices_text(indices, total: int) -> str:
    """1-based slice numbers grouped in ranges: ``"slices 6-8, 10 of 12"``."""
    groups: list[list[int]] = []
    for i in (int(i) + 1 for i in indices):
        if groups and i == groups[-1][-1] + 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    text = ", ".join(f"{g[0]}-{g[-1]}" if len(g) > 1 else f"{g[0]}" for g in groups)
    return f"{'slice' if len(indices) == 1 else 'slices'} {text} of {total}"


@dataclass
class Labels:
    """One phase's labels cropped to the heart, with the masks every rule shares."""

    labels: np.ndarray
    spacing: tuple[float, float, float]
    label_map: Mapping[str, int]
    min_voxels: int
    offset: tuple[int, int] = (0, 0)

    @cached_property
    def structures(self) -> tuple[str, ...]:
        """Structures the layout segments (of LV, RV, MYO)."""
        return tuple(s for s in STRUCTURES if s in self.label_map)

    @cached_property
    def masks(self) -> dict[str, np.ndarray]:
        return {s: self.labels == self.label_map[s] for s in self.structures}

    @cached_property
    def counts(self) -> dict[str, int]:
        return {s: int(m.sum()) for s, m in self.masks.items()}

    @cached_property
    def present(self) -> dict[str, np.ndarray]:
        """Per structure, which slices hold it."""
        return {s: m.any(axis=(1, 2)) for s, m in self.masks.items()}

    @cached_property
    def ok(self) -> dict[str, bool]:
        """Structures with enough voxels to be measured."""
        return {s: self.counts[s] >= self.min_voxels for s in self.structures}

    @property
    def n_slices(self) -> int:
        return self.labels.shape[0]

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def has(self, structure: str) -> bool:
        return self.ok.get(structure, False)

    def none(self) -> np.ndarray:
        return np.zeros(self.n_slices, bool)


def border_fraction(inner: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per slice: fraction of the pixels bordering ``inner`` (in-plane) that lie in ``other``."""
    ring = ndimage.binary_dilation(inner, _CROSS_2D) & ~inner
    total = ring.sum(axis=(1, 2))
    hits = (ring & other).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, hits / np.maximum(total, 1), np.nan)


def presence(lab: Labels, min_slices: int) -> list[Finding]:
    """Missing structures, too few slices (ukbb_cardiac: 6), fragments under 10 pixels."""
    found = []
    for s in lab.structures:
        if not lab.ok[s]:
            found.append(
                Finding(
                    "missing", f"{s} missing ({lab.counts[s]} voxels, at least {lab.min_voxels} expected)"
                )
            )
    # A short stack cannot hold 6 heart slices: ask for what it can (all but a base and an apex slice).
    needed = max(1, min(min_slices, lab.n_slices - 2))
    for s in ("LV", "MYO"):
        if lab.has(s) and lab.present[s].sum() < needed:
            n = int(lab.present[s].sum())
            found.append(
                Finding(
                    "few_slices", f"{s} on only {n} slices (at least {needed} expected)", (needed - n) / 2
                )
            )
    for s in lab.structures:
        if not lab.ok[s]:
            continue
        per_slice = lab.masks[s].sum(axis=(1, 2))
        tiny = np.flatnonzero((per_slice > 0) & (per_slice < 10))
        if tiny.size:
            where = slices_text(tiny, lab.n_slices)
            found.append(
                Finding("fragment", f"{s} under 10 pixels on {where}", 0.5 * tiny.size, int(tiny[0]))
            )
    return found


def gaps(lab: Labels) -> tuple[list[Finding], bool]:
    """Unlabelled slices between labelled ones, or one structure missing inside its range."""
    union = np.zeros(lab.n_slices, bool)
    for p in lab.present.values():
        union |= p
    idx = np.flatnonzero(union)
    holes = [i for i in range(idx[0], idx[-1] + 1) if not union[i]] if idx.size else []
    if holes:
        text = slices_text(holes, lab.n_slices)
        return [Finding("gap", f"no labels on {text} between labelled slices", 1.0, holes[0])], True
    for s in ("LV", "MYO"):
        if s not in lab.present:
            continue
        own = np.flatnonzero(lab.present[s])
        own_holes = [i for i in range(own[0], own[-1] + 1) if not lab.present[s][i]] if own.size else []
        if own_holes:
            text = slices_text(own_holes, lab.n_slices)
            return [Finding("gap", f"{s} missing on {text} inside its range", 1.0, own_holes[0])], False
    return [], False


def mid_slice(lab: Labels) -> list[Finding]:
    """LV, its epicardium (myocardium) and the RV present on the mid-cavity slice (ukbb_cardiac)."""
    heart = np.flatnonzero(lab.present.get("LV", lab.none()) | lab.present.get("MYO", lab.none()))
    if not heart.size:
        return []
    mid = int(heart[0] + heart[-1]) // 2
    absent = [s for s in ("LV", "MYO", "RV") if s in lab.present and lab.ok[s] and not lab.present[s][mid]]
    if not absent:
        return []
    names = " and ".join("myocardium" if s == "MYO" else s for s in absent)
    return [
        Finding(
            "mid_slice", f"{names} absent on the mid-ventricular {slices_text([mid], lab.n_slices)}", 1.0, mid
        )
    ]


def islands(lab: Labels, min_island_ml: float, island_ml: float, max_components: int) -> list[Finding]:
    """Pieces beyond the largest, by volume: a 0.3 ml speck barely counts, a 3 ml blob is a leak.

    Pieces under ``min_island_ml`` are ignored; each other extra piece adds its volume over
    ``island_ml`` to the severity, doubled when it lies more than 20 mm from the main piece.
    """
    found = []
    voxel_ml = lab.voxel_ml
    min_piece = max(1, math.ceil(min_island_ml / voxel_ml)) if voxel_ml > 0 else 1
    for s in lab.structures:
        if not lab.ok[s]:
            continue
        comp, n = ndimage.label(lab.masks[s], _FULL_3D)
        if n <= max_components:
            continue
        sizes = np.bincount(comp.ravel())[1:]
        order = np.argsort(sizes)[::-1]
        extra = [i for i in order[max_components:] if sizes[i] >= min_piece]
        if not extra:
            continue
        main = np.isin(comp, order[:max_components] + 1)
        far = ndimage.distance_transform_edt(~main.any(axis=0), sampling=lab.spacing[1:])
        severity, worst, where = 0.0, 0.0, None
        for i in extra:
            piece = comp == i + 1
            ml = sizes[i] * voxel_ml
            distance = float(far[piece.any(axis=0)].min())
            severity += ml / island_ml * (2.0 if distance > 20.0 else 1.0)
            if ml > worst:
                worst, where = ml, int(np.flatnonzero(piece.any(axis=(1, 2)))[0])
        pieces = max_components + len(extra)
        found.append(
            Finding(
                "islands",
                f"{s} is in {pieces} separate pieces (islands or a leak, largest extra {worst:.1f} ml, "
                f"at most {max_components} expected)",
                severity,
                where,
            )
        )
    return found


def surround(lab: Labels, min_myo_surround: float) -> tuple[list[Finding], float | None, float | None]:
    """LV blood pool enclosed by myocardium on the mid slices; swapped LV/RV told apart from a leak.

    Every slice but the two outermost at each end of the LV needs some myocardium; on the middle
    third, ``min_myo_surround`` of the LV border must be myocardium.
    """
    found: list[Finding] = []
    if not lab.has("LV") or "MYO" not in lab.masks:
        return found, None, None
    present, masks = lab.present, lab.masks
    lv_idx = np.flatnonzero(present["LV"])
    # Expert labels often show the LV outflow tract (base) and the apical cap without a myocardial
    # ring: the two outermost LV slices at each end are not held to it.
    inner = np.zeros(lab.n_slices, bool)
    inner[lv_idx[0] + 2 : lv_idx[-1] - 1] = True
    lonely = np.flatnonzero(present["LV"] & ~present["MYO"] & inner)
    if lonely.size:
        where = slices_text(lonely, lab.n_slices)
        found.append(
            Finding("lv_without_myo", f"LV blood pool without any myocardium on {where}", 1.0, int(lonely[0]))
        )
    # Mid slices: the middle third of the LV, clear of the outflow tract and the apex.
    third = (lv_idx[-1] - lv_idx[0] + 1) // 3
    band = np.zeros(lab.n_slices, bool)
    band[lv_idx[0] + third : lv_idx[-1] - third + 1] = True
    band &= present["LV"]
    lv_frac = border_fraction(masks["LV"] & band[:, None, None], masks["MYO"])[band]
    lv_surround = float(np.nanmin(lv_frac)) if lv_frac.size else None
    rv_surround = None
    if lab.has("RV"):
        rv_band = band & present["RV"]
        if rv_band.any():
            ring = ndimage.binary_dilation(masks["RV"] & rv_band[:, None, None], _CROSS_2D) & ~masks["RV"]
            rv_surround = float((ring & masks["MYO"]).sum() / max(int(ring.sum()), 1))
    if lv_surround is not None and lv_surround < min_myo_surround:
        lv_pooled = float(np.nanmean(lv_frac))
        worst = int(np.flatnonzero(band)[int(np.nanargmin(lv_frac))])
        if rv_surround is not None and rv_surround >= min_myo_surround > lv_pooled:
            found.append(
                Finding(
                    "swapped",
                    f"LV and RV labels look swapped: myocardium surrounds the RV label "
                    f"({rv_surround:.0%}) but not the LV label ({lv_pooled:.0%})",
                    1.0,
                    worst,
                )
            )
        else:
            found.append(
                Finding(
                    "myo_surround",
                    f"myocardium surrounds only {lv_surround:.0%} of the LV blood pool on "
                    f"{slices_text([worst], lab.n_slices)} (at least {min_myo_surround:.0%} expected on "
                    "mid slices, a leak?)",
                    1.0,
                    worst,
                )
            )
    elif band.any():
        found += _open_border(lab, band)
    return found, lv_surround, rv_surround


def _open_border(lab: Labels, band: np.ndarray) -> list[Finding]:
    """A smaller leak: the LV blood pool touching the background (not myocardium, not RV) on a mid slice.

    Measured in mm of border, so it does not depend on the heart's size: up to 5 mm is a rasterised
    contour's corner, each 10 mm more is one tolerance.
    """
    lv = lab.masks["LV"] & band[:, None, None]
    pieces, n = ndimage.label(lv, _FULL_3D)
    if n > 1:  # detached pieces are the islands rule's; the leak is on the main blood pool
        lv = pieces == 1 + int(np.argmax(np.bincount(pieces.ravel())[1:]))
    ring = ndimage.binary_dilation(lv, _CROSS_2D) & ~lv
    open_px = (ring & (lab.labels == 0)).sum(axis=(1, 2))
    k = int(np.argmax(open_px))
    open_mm = float(open_px[k]) * float(np.mean(lab.spacing[1:]))
    severity = (open_mm - 5.0) / 10.0
    if severity <= 0:
        return []
    return [
        Finding(
            "myo_surround",
            f"LV blood pool touches the background along {open_mm:.0f} mm of its border on "
            f"{slices_text([k], lab.n_slices)} (a leak through the wall?)",
            severity,
            k,
        )
    ]


def label_findings(
    lab: Labels,
    *,
    min_slices: int,
    min_island_ml: float,
    island_ml: float,
    max_components: int,
    min_myo_surround: float,
) -> tuple[list[Finding], float | None, float | None]:
    """The rules of this module on one phase: findings, LV and RV surround fractions."""
    found = presence(lab, min_slices)
    gap_found, split = gaps(lab)
    found += gap_found
    found += mid_slice(lab)
    if not split:  # a gap splits every structure: already reported
        found += islands(lab, min_island_ml, island_ml, max_components)
    surround_found, lv_surround, rv_surround = surround(lab, min_myo_surround)
    found += surround_found
    return found, lv_surround, rv_surround
