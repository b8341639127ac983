"""Automatic checks of one case: volumes, ejection fraction, rules and a suspicion score, as plain data.

Everything here takes numpy arrays indexed ``[slice, row, col]`` (the display orientation of
:mod:`cmrqc_widgets.cases.reader`), the voxel spacing in millimetres along those axes and a
``label_map`` (structure name -> label value), optionally the image and the affine, and returns
frozen dataclasses. Structures the label map lacks (no RV in a layout of LV + myocardium) are
"not segmented": not measured, not checked, never a failure.

The rules live by concern: :mod:`~cmrqc_widgets.qc.shape` (the labels alone),
:mod:`~cmrqc_widgets.qc.agreement` (labels against the image, when the image is given),
:mod:`~cmrqc_widgets.qc.physiology` (both phases). Each failed rule is a
:class:`~cmrqc_widgets.qc.score.Check` with a severity; :mod:`~cmrqc_widgets.qc.score` says how
they add up to the suspicion score and when a case is flagged (0 = nothing suspicious).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CaseError
from ..names import PHASES, STRUCTURES
from .agreement import agreement_findings, image_agreement
from .physiology import function_findings, phases_identical
from .position import position_findings
from .report import PAIR_PREFIX, CaseReport, PhaseMetrics, Ventricle
from .score import DEFAULT_WEIGHTS, FLAG_SCORE, SEVERITY_CAP, Check
from .shape import Finding, Labels, label_findings

__all__ = [
    "DEFAULT_WEIGHTS",
    "FLAG_SCORE",
    "MYOCARDIAL_DENSITY",
    "PAIR_PREFIX",
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


@dataclass(frozen=True)
class Thresholds:
    """Configurable limits of the rules (defaults: wide, sources in each rule's module).

    Attributes
    ----------
    min_voxels : int
        A structure with fewer voxels in a phase counts as missing.
    min_slices : int
        Fewest slices that must contain LV blood pool, and myocardium (ukbb_cardiac: 6).
    max_components : int
        Most connected pieces (3D, 26-connectivity) one structure may have.
    min_island_ml : float
        Pieces smaller than this (ml) are ignored.
    island_ml : float
        An extra piece of this volume (ml) near the heart is one tolerance of the islands rule.
    min_myo_surround : float
        On the mid slices, at least this fraction of the LV blood pool's border must be myocardium.
    max_shift_mm : float
        Largest jump of the LV centre between neighbouring slices beyond the stack's trend.
    ef_range : (float, float)
        Physiologically possible ejection fraction in percent; outside is a failure.
    ef_typical : (float, float)
        Outside this (but possible) the EF is "clinically extreme, check", not a failure.
    sv_tolerance : float
        Largest relative difference of LV and RV stroke volume.
    edv_range_ml : (float, float)
        Plausible end-diastolic volume in ml, LV and RV.
    min_contrast : float
        Lowest LV-blood over myocardium intensity ratio (SSFP).
    min_edge_strength : float
        Lowest gradient on the LV border (endocardium: blood against muscle) over the gradient
        4.5-6 pixels away.
    min_outer_edge_strength : float
        The same for the outer border of the heart labels where it is the epicardium, a weaker
        edge (muscle against fat, lung or liver).
    max_dark : float
        Largest share of labelled pixels as dark as lung or air.
    max_fit_gain : float
        How much better the LV label may fit the image when moved in-plane (1 = best in place).
    min_rim_likeness : float
        Lowest "epicardial rim" likeness: where the myocardium's outer 2 pixels lie in intensity
        between the tissue around the heart (0) and the inner wall (1)
        (:mod:`~cmrqc_widgets.qc.agreement`).
    weights : Mapping[str, float]
        Weights of failed rules in the suspicion score; missing keys use :data:`DEFAULT_WEIGHTS`.
    """

    min_voxels: int = 50
    min_slices: int = 6
    max_components: int = 1
    min_island_ml: float = 0.2
    island_ml: float = 1.5
    min_myo_surround: float = 0.75
    max_shift_mm: float = 8.0
    ef_range: tuple[float, float] = (3.0, 90.0)
    ef_typical: tuple[float, float] = (20.0, 80.0)
    sv_tolerance: float = 0.15
    edv_range_ml: tuple[float, float] = (10.0, 500.0)
    min_contrast: float = 1.6
    min_edge_strength: float = 1.35
    min_outer_edge_strength: float = 0.8
    max_dark: float = 0.4
    max_fit_gain: float = 1.15
    min_rim_likeness: float = 0.55
    weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"Unknown rule names in weights: {', '.join(sorted(unknown))}.")

    def weight(self, rule: str) -> float:
        """Weight of ``rule`` in the suspicion score."""
        return float(self.weights.get(rule, DEFAULT_WEIGHTS[rule]))

    def check(self, finding: Finding) -> Check:
        """The weighted :class:`Check` of a finding (severity capped at :data:`SEVERITY_CAP`)."""
        severity = float(finding.severity)
        weight = self.weight(finding.rule) * min(severity, SEVERITY_CAP)
        return Check(
            finding.rule,
            finding.message.replace(";", ","),
            round(weight, 3),
            round(severity, 3),
            finding.slice,
        )


# --- one phase ----------------------------------------------------------------------------------


def phase_metrics(
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    label_map: Mapping[str, int],
    thresholds: Thresholds | None = None,
    *,
    image: np.ndarray | None = None,
    affine: np.ndarray | None = None,
) -> PhaseMetrics:
    """Volumes, mass and failed checks of one phase.

    Parameters
    ----------
    labels : ndarray
        Integer label values, shape (slices, rows, cols).
    spacing : (float, float, float)
        Voxel size in mm along (slice, row, col).
    label_map : Mapping[str, int]
        Structure (``LV``, ``RV``, ``MYO``) -> label value; structures it lacks are not segmented.
    thresholds : Thresholds, optional
        Rule limits; defaults to ``Thresholds()``.
    image : ndarray, optional
        The image the labels were drawn on (same shape): enables the image-label agreement checks.
    affine : ndarray, optional
        4x4 ``(slice, row, col, 1)`` -> scanner mm (RAS): enables the RV position check.
    """
    t = thresholds or Thresholds()
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be 3D (slice, row, col), got shape {labels.shape}.")
    checks: list[Check] = []
    full = labels
    # Crop in-plane to the labelled box (+1 pixel so borders stay exact): cheap on 256^2 stacks.
    fg = labels != 0
    rows_any, cols_any = np.flatnonzero(fg.any(axis=(0, 2))), np.flatnonzero(fg.any(axis=(0, 1)))
    offset = (0, 0)
    if rows_any.size:
        r0, c0 = max(rows_any[0] - 1, 0), max(cols_any[0] - 1, 0)
        labels = labels[:, r0 : rows_any[-1] + 2, c0 : cols_any[-1] + 2]
        offset = (int(r0), int(c0))
    lab = Labels(labels, tuple(float(v) for v in spacing), label_map, t.min_voxels, offset)
    volumes = {s: lab.counts[s] * lab.voxel_ml for s in lab.structures}
    slice_counts = {s: int(p.sum()) for s, p in lab.present.items()}
    not_segmented = tuple(s for s in STRUCTURES if s not in label_map)

    known = {0, *(int(v) for v in label_map.values())}
    unknown = sorted(int(v) for v in np.unique(labels) if int(v) not in known) if rows_any.size else []
    if unknown:
        checks.append(
            t.check(Finding("unknown_labels", f"unknown label values {', '.join(map(str, unknown))}"))
        )

    if not any(lab.counts.values()):
        checks.append(t.check(Finding("empty", "no LV, RV or myocardium labelled at all")))
        return PhaseMetrics(volumes, lab.counts, slice_counts, 0.0, None, None, tuple(checks), not_segmented)

    found, lv_surround, rv_surround = label_findings(
        lab,
        min_slices=t.min_slices,
        min_island_ml=t.min_island_ml,
        island_ml=t.island_ml,
        max_components=t.max_components,
        min_myo_surround=t.min_myo_surround,
    )
    swapped = any(f.rule == "swapped" for f in found)
    found += position_findings(lab, max_shift_mm=t.max_shift_mm, affine=affine, swapped=swapped)
    agreement = None
    if image is not None:
        present = {s: v for s, v in label_map.items() if lab.has(s)}
        agreement = image_agreement(image, full, spacing, present)
        found += agreement_findings(
            agreement,
            lab.n_slices,
            min_contrast=t.min_contrast,
            min_edge_strength=t.min_edge_strength,
            min_outer_edge_strength=t.min_outer_edge_strength,
            max_dark=t.max_dark,
            max_fit_gain=t.max_fit_gain,
            min_rim_likeness=t.min_rim_likeness,
        )
    checks += [t.check(f) for f in found]
    mass = volumes.get("MYO", 0.0) * MYOCARDIAL_DENSITY
    return PhaseMetrics(
        volumes,
        lab.counts,
        slice_counts,
        mass,
        lv_surround,
        rv_surround,
        tuple(checks),
        not_segmented,
        agreement,
    )


# --- both phases --------------------------------------------------------------------------------


def _assemble(
    patient: str,
    phases: dict[str, PhaseMetrics],
    errors: dict[str, str],
    t: Thresholds,
    overlap: float | None = None,
) -> CaseReport:
    checks: dict[str, list[Check]] = {p: list(phases[p].checks) if p in phases else [] for p in PHASES}
    for phase, sentence in errors.items():
        checks[phase].append(t.check(Finding("unreadable", f"cannot read {phase}: {sentence}")))
    pair: list[Check] = []
    function: dict[str, Ventricle | None] = {"LV": None, "RV": None}
    ed, es = phases.get("ED"), phases.get("ES")
    if ed is not None:
        lo, hi = t.edv_range_ml
        for s in ("LV", "RV"):
            v = ed.volumes_ml.get(s)
            if v is not None and ed.voxel_counts[s] >= t.min_voxels and not lo <= v <= hi:
                message = f"{s} end-diastolic volume {v:.0f} ml outside the plausible range {lo:g}-{hi:g} ml"
                checks["ED"].append(t.check(Finding("volume_range", message)))
    if ed is not None and es is not None:
        measured = {
            s: (ed.volumes_ml[s], es.volumes_ml[s])
            for s in ("LV", "RV")
            if s in ed.voxel_counts and min(ed.voxel_counts[s], es.voxel_counts.get(s, 0)) >= t.min_voxels
        }
        for s, (edv, esv) in measured.items():
            function[s] = Ventricle(edv, esv, edv - esv, 100.0 * (edv - esv) / edv)
        function_findings(
            measured,
            ef_range=t.ef_range,
            ef_typical=t.ef_typical,
            sv_tolerance=t.sv_tolerance,
            overlap=overlap,
            add=lambda f: pair.append(t.check(f)),
        )
    return CaseReport(
        patient=patient,
        phases=dict(phases),
        checks={p: tuple(c) for p, c in checks.items()},
        pair_checks=tuple(pair),
        lv=function["LV"],
        rv=function["RV"],
    )


def _phase_of(case: Any, t: Thresholds) -> PhaseMetrics:
    return phase_metrics(
        case.labels,
        case.spacing,
        case.label_map,
        t,
        image=getattr(case, "image", None),
        affine=getattr(case, "affine", None),
    )


def case_metrics(
    ed_case: Any, es_case: Any, thresholds: Thresholds | None = None, patient: str | None = None
) -> CaseReport:
    """Checks of one patient from two loaded :class:`~cmrqc_widgets.cases.Case` objects.

    Parameters
    ----------
    ed_case, es_case : Case
        Anything with ``labels``, ``spacing`` and ``label_map`` (and ``patient_dir``); with
        ``image`` and ``affine`` too, the image-label and position checks run.
    thresholds : Thresholds, optional
    patient : str, optional
        Name in the report; defaults to ``str(ed_case.patient_dir)``.
    """
    t = thresholds or Thresholds()
    phases = {phase: _phase_of(case, t) for phase, case in (("ED", ed_case), ("ES", es_case))}
    name = patient if patient is not None else str(getattr(ed_case, "patient_dir", ""))
    overlap = phases_identical(np.asarray(ed_case.labels), np.asarray(es_case.labels))
    return _assemble(name, phases, {}, t, overlap)


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
    labels: dict[str, np.ndarray] = {}
    for phase in PHASES:
        try:
            case = load_case(patient_dir, phase, layout)
            phases[phase] = _phase_of(case, t)
            labels[phase] = case.labels
        except CaseError as exc:
            errors[phase] = str(exc)
        except Exception as exc:  # a bad file must not stop a 10,000-case batch
            errors[phase] = f"{type(exc).__name__}: {exc}"
    overlap = phases_identical(labels["ED"], labels["ES"]) if len(labels) == 2 else None
    return _assemble(patient if patient is not None else str(patient_dir), phases, errors, t, overlap)
