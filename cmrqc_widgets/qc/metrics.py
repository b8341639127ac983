"""Automatic checks of one case: volumes, ejection fraction and sanity rules, as plain data.

Everything here takes numpy label arrays indexed ``[slice, row, col]`` (the display
orientation of :mod:`cmrqc_widgets.cases.reader`), the voxel spacing in millimetres along those
axes, and a ``label_map`` (structure name -> label value), and returns frozen dataclasses.

Each failed rule is a :class:`Check` with a weight; the suspicion score of a phase is the
sum of the weights of its failed checks (0 = nothing suspicious, higher = review first).

Sources of the rules and defaults
---------------------------------
- Petersen SE, Aung N, Sanghvi MM, et al. Reference ranges for cardiac structure and function
  using cardiovascular magnetic resonance (CMR) in Caucasians from the UK Biobank population
  cohort. J Cardiovasc Magn Reson 2017;19:18 (doi:10.1186/s12968-017-0327-9): healthy adults
  have an LV ejection fraction of about 58 +- 5 % (men) and 61 +- 5 % (women) and LV
  end-diastolic volumes of the order of 100-250 ml. Our EF and volume ranges are deliberately
  far wider ("plausible", not "normal"): diseased hearts must pass, only impossible values fail.
- Robinson R, Valindria VV, Bai W, et al. Automated quality control in image segmentation:
  application to the UK Biobank cardiovascular magnetic resonance imaging study.
  J Cardiovasc Magn Reson 2019;21:18 (doi:10.1186/s12968-019-0523-x): motivates per-case
  automatic QC at cohort scale (missing structures, gross failures).
- Ruijsink B, Puyol-Anton E, Oksuz I, et al. Fully automated, quality-controlled cardiac
  analysis from CMR. JACC Cardiovasc Imaging 2020;13(3):684-695
  (doi:10.1016/j.jcmg.2019.05.030): post-analysis QC of the derived volumes and function
  (e.g. physiologically impossible ES/ED volumes and EF).
The numeric thresholds are our own wide defaults, not values from these papers; tune
:class:`Thresholds` on a site's data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..errors import CaseError
from ..names import PHASES, STRUCTURES

__all__ = [
    "DEFAULT_WEIGHTS",
    "MYOCARDIAL_DENSITY",
    "CaseReport",
    "Check",
    "PhaseMetrics",
    "Thresholds",
    "Ventricle",
    "case_metrics",
    "metrics_for_patient",
    "phase_metrics",
]

MYOCARDIAL_DENSITY = 1.05
"""Myocardial density in g/ml (the value used by CMR analysis software to turn volume into mass)."""

DEFAULT_WEIGHTS: dict[str, float] = {
    "unreadable": 10.0,  # a phase whose files cannot be read at all
    "empty": 8.0,  # no label at all in a phase
    "missing": 4.0,  # one structure absent or below min_voxels
    "swapped": 5.0,  # LV and RV labels look exchanged
    "gap": 3.0,  # unlabelled slices between labelled ones
    "myo_surround": 3.0,  # LV blood pool not enclosed by myocardium (leak)
    "es_gt_ed": 3.0,  # a ventricle larger at ES than at ED
    "islands": 2.0,  # more connected pieces than allowed
    "few_slices": 2.0,  # LV or MYO on too few slices
    "mid_slice": 2.0,  # LV or RV absent on the mid-ventricular slice
    "lv_without_myo": 2.0,  # a slice with LV blood pool but no myocardium at all
    "ef_range": 2.0,  # EF outside the plausible range
    "volume_range": 1.0,  # EDV outside the plausible range
    "unknown_labels": 1.0,  # label values the layout does not define
}
"""Weight of each rule in the suspicion score (rule id -> weight)."""


@dataclass(frozen=True)
class Thresholds:
    """Configurable limits of the sanity rules (defaults: wide, see the module docstring).

    Attributes
    ----------
    min_voxels : int
        A structure with fewer voxels in a phase counts as missing.
    min_slices : int
        Fewest slices that must contain LV blood pool, and myocardium (short-axis stacks
        usually show the LV on 8-12 slices at 8-10 mm).
    max_components : int
        Most connected pieces (3D, 26-connectivity) one structure may have.
    min_island_ml : float
        Pieces smaller than this (ml) are ignored when counting pieces: too small to change a
        volume noticeably.
    min_myo_surround : float
        On the mid slices (the middle half of the LV's slices, so the LV outflow tract at the
        base and the partial-volume apex are excluded), at least this fraction of the pixels
        bordering the LV blood pool must be myocardium.
    ef_range : (float, float)
        Plausible ejection fraction in percent, LV and RV (healthy about 50-75 %).
    edv_range_ml : (float, float)
        Plausible end-diastolic volume in ml, LV and RV.
    weights : Mapping[str, float]
        Weights of failed rules in the suspicion score; missing keys use
        :data:`DEFAULT_WEIGHTS`.
    """

    min_voxels: int = 50
    min_slices: int = 3
    max_components: int = 1
    min_island_ml: float = 0.2
    min_myo_surround: float = 0.75
    ef_range: tuple[float, float] = (10.0, 90.0)
    edv_range_ml: tuple[float, float] = (10.0, 500.0)
    weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"Unknown rule names in weights: {', '.join(sorted(unknown))}.")

    def weight(self, rule: str) -> float:
        """Weight of ``rule`` in the suspicion score."""
        return float(self.weights.get(rule, DEFAULT_WEIGHTS[rule]))


@dataclass(frozen=True)
class Check:
    """One failed rule: its id (a key of :data:`DEFAULT_WEIGHTS`), plain words, and weight."""

    rule: str
    message: str
    weight: float


@dataclass(frozen=True)
class PhaseMetrics:
    """Measurements and failed checks of one phase.

    ``volumes_ml`` and ``voxel_counts`` are keyed by structure (``LV``, ``RV``, ``MYO``);
    ``lv_surround`` is the lowest fraction of the LV blood pool border that is myocardium
    over the mid slices (``None`` without LV).
    """

    volumes_ml: dict[str, float]
    voxel_counts: dict[str, int]
    slice_counts: dict[str, int]
    myo_mass_g: float
    lv_surround: float | None
    rv_surround: float | None
    checks: tuple[Check, ...]

    @property
    def suspicion(self) -> float:
        """Sum of the weights of the failed checks."""
        return float(sum(c.weight for c in self.checks))


@dataclass(frozen=True)
class Ventricle:
    """Function of one ventricle from ED and ES: volumes and stroke volume in ml, EF in percent."""

    edv_ml: float
    esv_ml: float
    sv_ml: float
    ef: float


@dataclass(frozen=True)
class CaseReport:
    """All checks of one patient: per-phase metrics and checks, plus checks across the phases.

    ``phases`` holds the readable phases; ``checks[phase]`` the failed checks of each phase
    (including "cannot read ..."); ``pair_checks`` those that need both phases (ES larger than
    ED, EF range). ``lv`` / ``rv`` are ``None`` when a phase or the structure is missing.
    """

    patient: str
    phases: dict[str, PhaseMetrics]
    checks: dict[str, tuple[Check, ...]]
    pair_checks: tuple[Check, ...]
    lv: Ventricle | None
    rv: Ventricle | None

    def phase_suspicion(self, phase: str) -> float:
        """Suspicion of one phase row: its own checks plus the checks across phases."""
        return float(sum(c.weight for c in (*self.checks.get(phase, ()), *self.pair_checks)))

    @property
    def suspicion(self) -> float:
        """Suspicion of the whole case: every failed check counted once."""
        return float(sum(c.weight for c in self.all_checks()))

    def all_checks(self) -> list[Check]:
        """Failed checks of both phases, then those across phases."""
        return [c for phase in PHASES for c in self.checks.get(phase, ())] + list(self.pair_checks)

    @property
    def failed_checks(self) -> list[str]:
        """Plain-word messages of all failed checks."""
        return [c.message for c in self.all_checks()]

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per phase (for CSV and tables); missing values are ``None``."""
        rows = []
        for phase in PHASES:
            pm = self.phases.get(phase)
            row: dict[str, Any] = {"patient": self.patient, "phase": phase}
            for s in STRUCTURES:
                row[f"{s.lower()}_ml"] = _round(pm.volumes_ml[s], 2) if pm else None
            row["myo_mass_g"] = _round(pm.myo_mass_g, 2) if pm else None
            for name, v in (("lv", self.lv), ("rv", self.rv)):
                row[f"{name}_edv_ml"] = _round(v.edv_ml, 2) if v else None
                row[f"{name}_esv_ml"] = _round(v.esv_ml, 2) if v else None
                row[f"{name}_sv_ml"] = _round(v.sv_ml, 2) if v else None
                row[f"{name}_ef"] = _round(v.ef, 1) if v else None
            row["suspicion"] = _round(self.phase_suspicion(phase), 2)
            row["case_suspicion"] = _round(self.suspicion, 2)
            phase_checks = (*self.checks.get(phase, ()), *self.pair_checks)
            row["failed_checks"] = "; ".join(c.message for c in phase_checks)
            rows.append(row)
        return rows


def _round(value: float, digits: int) -> float:
    return round(float(value), digits)


# --- one phase ----------------------------------------------------------------------------------

_CROSS_2D = np.zeros((3, 3, 3), bool)
_CROSS_2D[1] = ndimage.generate_binary_structure(2, 1)  # in-plane 4-neighbourhood only
_FULL_3D = np.ones((3, 3, 3), bool)


def _slices_text(indices, total: int) -> str:
    """1-based slice numbers grouped in ranges: ``"slices 6-8, 10 of 12"``."""
    groups: list[list[int]] = []
    for i in (int(i) + 1 for i in indices):
        if groups and i == groups[-1][-1] + 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    text = ", ".join(f"{g[0]}-{g[-1]}" if len(g) > 1 else f"{g[0]}" for g in groups)
    return f"{'slice' if len(indices) == 1 else 'slices'} {text} of {total}"


def _border_fraction(inner: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per slice: fraction of the pixels bordering ``inner`` (in-plane) that lie in ``other``."""
    ring = ndimage.binary_dilation(inner, _CROSS_2D) & ~inner
    total = ring.sum(axis=(1, 2))
    hits = (ring & other).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, hits / np.maximum(total, 1), np.nan)


def phase_metrics(
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    label_map: Mapping[str, int],
    thresholds: Thresholds | None = None,
) -> PhaseMetrics:
    """Volumes, mass and failed sanity checks of one phase.

    Parameters
    ----------
    labels : ndarray
        Integer label values, shape (slices, rows, cols).
    spacing : (float, float, float)
        Voxel size in mm along (slice, row, col).
    label_map : Mapping[str, int]
        Structure (``LV``, ``RV``, ``MYO``) -> label value.
    thresholds : Thresholds, optional
        Rule limits; defaults to ``Thresholds()``.

    Returns
    -------
    PhaseMetrics
    """
    t = thresholds or Thresholds()
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be 3D (slice, row, col), got shape {labels.shape}.")
    n_slices = labels.shape[0]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    checks: list[Check] = []

    def fail(rule: str, message: str) -> None:
        checks.append(Check(rule, message.replace(";", ","), t.weight(rule)))

    # Crop in-plane to the labelled box (+1 pixel so borders stay exact): cheap on 256^2 stacks.
    fg = labels != 0
    rows_any, cols_any = np.flatnonzero(fg.any(axis=(0, 2))), np.flatnonzero(fg.any(axis=(0, 1)))
    if rows_any.size:
        r0, r1 = max(rows_any[0] - 1, 0), rows_any[-1] + 2
        c0, c1 = max(cols_any[0] - 1, 0), cols_any[-1] + 2
        labels = labels[:, r0:r1, c0:c1]
    masks = {s: labels == label_map[s] for s in STRUCTURES}
    counts = {s: int(m.sum()) for s, m in masks.items()}
    present = {s: m.any(axis=(1, 2)) for s, m in masks.items()}
    volumes = {s: counts[s] * voxel_ml for s in STRUCTURES}
    slice_counts = {s: int(p.sum()) for s, p in present.items()}

    known = {0, *(int(v) for v in label_map.values())}
    unknown = sorted(int(v) for v in np.unique(labels) if int(v) not in known) if rows_any.size else []
    if unknown:
        fail("unknown_labels", f"unknown label values {', '.join(map(str, unknown))}")

    lv_surround = rv_surround = None
    if not any(counts.values()):
        fail("empty", "no LV, RV or myocardium labelled at all")
        return PhaseMetrics(volumes, counts, slice_counts, 0.0, None, None, tuple(checks))

    ok = {s: counts[s] >= t.min_voxels for s in STRUCTURES}
    for s in STRUCTURES:
        if not ok[s]:
            fail("missing", f"{s} missing ({counts[s]} voxels, at least {t.min_voxels} expected)")
    for s in ("LV", "MYO"):
        if ok[s] and slice_counts[s] < t.min_slices:
            fail("few_slices", f"{s} on only {slice_counts[s]} slices (at least {t.min_slices} expected)")

    union = present["LV"] | present["RV"] | present["MYO"]
    idx = np.flatnonzero(union)
    holes = [i for i in range(idx[0], idx[-1] + 1) if not union[i]]
    if holes:
        fail("gap", f"no labels on {_slices_text(holes, n_slices)} between labelled slices")
    else:
        for s in ("LV", "MYO"):
            own = np.flatnonzero(present[s])
            own_holes = [i for i in range(own[0], own[-1] + 1) if not present[s][i]] if own.size else []
            if own_holes:
                fail("gap", f"{s} missing on {_slices_text(own_holes, n_slices)} inside its range")
                break

    heart = np.flatnonzero(present["LV"] | present["MYO"])
    if heart.size:
        mid = int(heart[0] + heart[-1]) // 2
        absent = [s for s in ("LV", "RV") if not present[s][mid]]
        if absent:
            fail("mid_slice", f"{' and '.join(absent)} absent on the mid-ventricular "
                 f"{_slices_text([mid], n_slices)}")

    min_piece = max(1, math.ceil(t.min_island_ml / voxel_ml)) if voxel_ml > 0 else 1
    for s in STRUCTURES:
        if ok[s] and not holes:  # a gap splits every structure: already reported
            comp, n = ndimage.label(masks[s], _FULL_3D)
            sizes = np.bincount(comp.ravel())[1:] if n else np.zeros(0, int)
            pieces = max(1, int((sizes >= min_piece).sum()))
            if pieces > t.max_components:
                fail("islands", f"{s} is in {pieces} separate pieces (islands or a leak; "
                     f"at most {t.max_components} expected)")

    if ok["LV"]:
        lonely = np.flatnonzero(present["LV"] & ~present["MYO"])
        if lonely.size:
            where = _slices_text(lonely, n_slices)
            fail("lv_without_myo", f"LV blood pool without any myocardium on {where}")
        lv_idx = np.flatnonzero(present["LV"])
        quarter = (lv_idx[-1] - lv_idx[0] + 1) // 4
        band = np.zeros(n_slices, bool)
        band[lv_idx[0] + quarter : lv_idx[-1] - quarter + 1] = True
        band &= present["LV"]
        lv_frac = _border_fraction(masks["LV"] & band[:, None, None], masks["MYO"])[band]
        lv_surround = float(np.nanmin(lv_frac)) if lv_frac.size else None
        rv_band = band & present["RV"]
        if ok["RV"] and rv_band.any():
            ring = ndimage.binary_dilation(masks["RV"] & rv_band[:, None, None], _CROSS_2D) & ~masks["RV"]
            rv_surround = float((ring & masks["MYO"]).sum() / max(int(ring.sum()), 1))
        if lv_surround is not None and lv_surround < t.min_myo_surround:
            lv_pooled = float(np.nanmean(lv_frac))
            if rv_surround is not None and rv_surround >= t.min_myo_surround > lv_pooled:
                fail("swapped", f"LV and RV labels look swapped: myocardium surrounds the RV label "
                     f"({rv_surround:.0%}) but not the LV label ({lv_pooled:.0%})")
            else:
                worst = np.flatnonzero(band)[int(np.nanargmin(lv_frac))]
                fail("myo_surround", f"myocardium surrounds only {lv_surround:.0%} of the LV blood pool "
                     f"on {_slices_text([worst], n_slices)} (at least {t.min_myo_surround:.0%} "
                     "expected on mid slices; a leak?)")

    mass = volumes["MYO"] * MYOCARDIAL_DENSITY
    return PhaseMetrics(volumes, counts, slice_counts, mass, lv_surround, rv_surround, tuple(checks))


# --- both phases --------------------------------------------------------------------------------


def _assemble(
    patient: str,
    phases: dict[str, PhaseMetrics],
    errors: dict[str, str],
    t: Thresholds,
) -> CaseReport:
    checks: dict[str, list[Check]] = {p: list(phases[p].checks) if p in phases else [] for p in PHASES}
    for phase, sentence in errors.items():
        checks[phase].append(Check("unreadable", f"cannot read {phase}: {sentence}".replace(";", ","),
                                   t.weight("unreadable")))
    pair: list[Check] = []
    function: dict[str, Ventricle | None] = {"LV": None, "RV": None}
    ed, es = phases.get("ED"), phases.get("ES")
    if ed is not None:
        lo, hi = t.edv_range_ml
        for s in ("LV", "RV"):
            v = ed.volumes_ml[s]
            if ed.voxel_counts[s] >= t.min_voxels and not lo <= v <= hi:
                checks["ED"].append(Check("volume_range", f"{s} end-diastolic volume {v:.0f} ml outside "
                                          f"the plausible range {lo:g}-{hi:g} ml", t.weight("volume_range")))
    if ed is not None and es is not None:
        for s in ("LV", "RV"):
            if min(ed.voxel_counts[s], es.voxel_counts[s]) < t.min_voxels:
                continue
            edv, esv = ed.volumes_ml[s], es.volumes_ml[s]
            ef = 100.0 * (edv - esv) / edv
            function[s] = Ventricle(edv, esv, edv - esv, ef)
            lo, hi = t.ef_range
            if esv > edv:
                pair.append(Check("es_gt_ed", f"{s} larger at ES ({esv:.0f} ml) than at ED ({edv:.0f} ml)",
                                  t.weight("es_gt_ed")))
            elif not lo <= ef <= hi:
                pair.append(Check("ef_range", f"{s} ejection fraction {ef:.0f}% outside the plausible "
                                  f"range {lo:g}-{hi:g}%", t.weight("ef_range")))
    return CaseReport(
        patient=patient,
        phases=dict(phases),
        checks={p: tuple(c) for p, c in checks.items()},
        pair_checks=tuple(pair),
        lv=function["LV"],
        rv=function["RV"],
    )


def case_metrics(ed_case: Any, es_case: Any, thresholds: Thresholds | None = None,
                 patient: str | None = None) -> CaseReport:
    """Checks of one patient from two loaded :class:`~cmrqc_widgets.cases.Case` objects.

    Parameters
    ----------
    ed_case, es_case : Case
        Anything with ``labels``, ``spacing`` and ``label_map`` (and ``patient_dir``).
    thresholds : Thresholds, optional
    patient : str, optional
        Name in the report; defaults to ``str(ed_case.patient_dir)``.
    """
    t = thresholds or Thresholds()
    phases = {
        phase: phase_metrics(case.labels, case.spacing, case.label_map, t)
        for phase, case in (("ED", ed_case), ("ES", es_case))
    }
    name = patient if patient is not None else str(getattr(ed_case, "patient_dir", ""))
    return _assemble(name, phases, {}, t)


def metrics_for_patient(
    patient_dir: str | Path,
    layout: Any = None,
    thresholds: Thresholds | None = None,
    patient: str | None = None,
) -> CaseReport:
    """Load both phases of one patient and check them; never raises for a bad case.

    A phase that cannot be read (missing, truncated or inconsistent files) becomes the
    failed check ``"cannot read ES: <reason>"`` with a high weight; the other phase is
    still measured.

    Parameters
    ----------
    patient_dir : path
        The patient folder.
    layout : str or Layout, optional
        File layout (default: detected, see :func:`cmrqc_widgets.cases.layouts.get_layout`).
    thresholds : Thresholds, optional
    patient : str, optional
        Name in the report (e.g. the dataset key); defaults to ``str(patient_dir)``.
    """
    from ..cases import load_case  # lazy: keeps this module importable on its own

    t = thresholds or Thresholds()
    phases: dict[str, PhaseMetrics] = {}
    errors: dict[str, str] = {}
    for phase in PHASES:
        try:
            case = load_case(patient_dir, phase, layout)
            phases[phase] = phase_metrics(case.labels, case.spacing, case.label_map, t)
        except CaseError as exc:
            errors[phase] = str(exc)
        except Exception as exc:  # a bad file must not stop a 10,000-case batch
            errors[phase] = f"{type(exc).__name__}: {exc}"
    return _assemble(patient if patient is not None else str(patient_dir), phases, errors, t)
