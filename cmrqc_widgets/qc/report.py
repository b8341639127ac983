"""What the checks of one case return: per-phase measurements, ventricular function, the case report.

Plain frozen dataclasses, built by :mod:`cmrqc_widgets.qc.metrics`; ``CaseReport.rows()`` is the
metrics CSV's content for one patient (:data:`cmrqc_widgets.qc.cohort.COLUMNS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..names import PHASES, STRUCTURES
from .agreement import Agreement
from .score import Check, is_flagged

__all__ = ["PAIR_PREFIX", "CaseReport", "PhaseMetrics", "Ventricle"]

PAIR_PREFIX = "both phases: "
"""Marks a check across phases in the rows' ``failed_checks`` (it appears in both phase rows)."""


@dataclass(frozen=True)
class PhaseMetrics:
    """Measurements and failed checks of one phase.

    ``volumes_ml``, ``voxel_counts`` and ``slice_counts`` are keyed by the segmented structures
    (of ``LV``, ``RV``, ``MYO``); ``not_segmented`` names the others. ``lv_surround`` is the lowest
    fraction of the LV blood pool border that is myocardium over the mid slices (``None`` without
    LV); ``agreement`` the image-label measures (``None`` without an image).
    """

    volumes_ml: dict[str, float]
    voxel_counts: dict[str, int]
    slice_counts: dict[str, int]
    myo_mass_g: float
    lv_surround: float | None
    rv_surround: float | None
    checks: tuple[Check, ...]
    not_segmented: tuple[str, ...] = ()
    agreement: Agreement | None = None

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

    @property
    def flagged(self) -> bool:
        """Whether the case score reaches :data:`~cmrqc_widgets.qc.score.FLAG_SCORE`."""
        return is_flagged(self.suspicion)

    def all_checks(self) -> list[Check]:
        """Failed checks of both phases, then those across phases."""
        return [c for phase in PHASES for c in self.checks.get(phase, ())] + list(self.pair_checks)

    @property
    def failed_checks(self) -> list[str]:
        """Plain-word messages of all failed checks."""
        return [c.message for c in self.all_checks()]

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per phase (for CSV and tables); missing values are ``None``.

        ``failed_slices`` gives, for each message of ``failed_checks`` in the same order, the
        1-based slice it fails on (empty for whole-case checks).
        """
        rows = []
        for phase in PHASES:
            pm = self.phases.get(phase)
            row: dict[str, Any] = {"patient": self.patient, "phase": phase}
            for s in STRUCTURES:
                volume = pm.volumes_ml.get(s) if pm else None
                row[f"{s.lower()}_ml"] = _round(volume, 2) if volume is not None else None
            row["myo_mass_g"] = _round(pm.myo_mass_g, 2) if pm and "MYO" in pm.volumes_ml else None
            for name, v in (("lv", self.lv), ("rv", self.rv)):
                row[f"{name}_edv_ml"] = _round(v.edv_ml, 2) if v else None
                row[f"{name}_esv_ml"] = _round(v.esv_ml, 2) if v else None
                row[f"{name}_sv_ml"] = _round(v.sv_ml, 2) if v else None
                row[f"{name}_ef"] = _round(v.ef, 1) if v else None
            row["suspicion"] = _round(self.phase_suspicion(phase), 2)
            row["case_suspicion"] = _round(self.suspicion, 2)
            phase_checks = (*self.checks.get(phase, ()), *self.pair_checks)
            messages = [c.message for c in self.checks.get(phase, ())]
            messages += [PAIR_PREFIX + c.message for c in self.pair_checks]
            row["failed_checks"] = "; ".join(messages)
            row["failed_slices"] = "; ".join(
                "" if c.slice is None else str(c.slice + 1) for c in phase_checks
            )
            rows.append(row)
        return rows


def _round(value: float, digits: int) -> float:
    return round(float(value), digits)
