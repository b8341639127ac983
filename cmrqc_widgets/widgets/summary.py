"""What the metrics strip shows of one patient: volumes, EF, mass and failed checks, as plain data.

:class:`CaseSummary` is built from a :class:`~cmrqc_widgets.qc.metrics.CaseReport` (measured here)
or from a patient's rows of a metrics CSV written by ``cmrqc metrics``; both give the same
figures and the same failed checks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..names import PHASES
from ..qc.metrics import DEFAULT_WEIGHTS, CaseReport, Thresholds, metrics_for_patient

log = logging.getLogger(__name__)

METRICS_SUFFIX = ".metrics.csv"
"""``<dataset stem>.metrics.csv`` next to a dataset file holds its metrics, if ``cmrqc metrics``
wrote them there."""

Volumes = tuple[float | None, float | None, float | None]


@dataclass(frozen=True)
class CaseSummary:
    """What the metrics strip shows of one patient, and what the queue needs.

    Attributes
    ----------
    suspicion : float
        Sum of the weights of the failed checks (0 = nothing suspicious).
    failed : tuple of str
        Failed checks in plain words; a phase's own checks start with the phase (``"ES: ..."``).
    lv, rv : (EDV ml, ESV ml, EF %)
        ``None`` where a phase or the structure is missing.
    myo_mass_g : float or None
        Myocardial mass at ``mass_phase`` (ED, else ES when ED cannot be measured).
    mass_phase : str
    """

    suspicion: float
    failed: tuple[str, ...]
    lv: Volumes
    rv: Volumes
    myo_mass_g: float | None
    mass_phase: str = "ED"

    @property
    def flagged(self) -> bool:
        """At least one failed check."""
        return bool(self.failed) or self.suspicion > 0

    @classmethod
    def from_report(cls, report: CaseReport) -> CaseSummary:
        """Summary of a :class:`~cmrqc_widgets.qc.metrics.CaseReport`."""
        ed, es = report.phases.get("ED"), report.phases.get("ES")

        def volume(pm: Any, structure: str) -> float | None:
            return pm.volumes_ml[structure] if pm is not None and pm.voxel_counts[structure] else None

        def ventricle(v: Any, structure: str) -> Volumes:
            if v is not None:
                return (v.edv_ml, v.esv_ml, v.ef)
            return (volume(ed, structure), volume(es, structure), None)

        failed = [_with_phase(p, c.message) for p in PHASES for c in report.checks.get(p, ())]
        failed += [c.message for c in report.pair_checks]
        mass_phase, pm = ("ED", ed) if volume(ed, "MYO") is not None else ("ES", es)
        mass = pm.myo_mass_g if volume(pm, "MYO") is not None else None
        return cls(
            suspicion=float(report.suspicion),
            failed=tuple(failed),
            lv=ventricle(report.lv, "LV"),
            rv=ventricle(report.rv, "RV"),
            myo_mass_g=mass,
            mass_phase=mass_phase if mass is not None else "",
        )

    @classmethod
    def from_rows(cls, rows: Mapping[str, Mapping[str, Any]]) -> CaseSummary:
        """Summary of one patient's rows of a metrics CSV (``{"ED": row, "ES": row}``)."""
        ed, es = rows.get("ED", {}), rows.get("ES", {})
        both = [r for r in (ed, es) if r]

        def first(name: str) -> float | None:
            for row in both:
                value = _number(row.get(name))
                if value is not None:
                    return value
            return None

        def ventricle(v: str) -> Volumes:
            edv = first(f"{v}_edv_ml")
            esv = first(f"{v}_esv_ml")
            return (
                edv if edv is not None else _number(ed.get(f"{v}_ml")) or None,
                esv if esv is not None else _number(es.get(f"{v}_ml")) or None,
                first(f"{v}_ef"),
            )

        messages = {
            p: [m for m in str(r.get("failed_checks") or "").split("; ") if m] for p, r in rows.items()
        }
        shared = [m for m in messages.get("ED", []) if m in messages.get("ES", [])]
        failed = [_with_phase(p, m) for p in PHASES for m in messages.get(p, []) if m not in shared]
        score = first("case_suspicion")
        if score is None:
            score = max((_number(r.get("suspicion")) or 0.0 for r in both), default=0.0)
        mass_phase, row = ("ED", ed) if _number(ed.get("myo_mass_g")) else ("ES", es)
        mass = _number(row.get("myo_mass_g")) or None
        return cls(
            suspicion=float(score),
            failed=tuple(failed + shared),
            lv=ventricle("lv"),
            rv=ventricle("rv"),
            myo_mass_g=mass,
            mass_phase=mass_phase if mass is not None else "",
        )


def _with_phase(phase: str, message: str) -> str:
    return message if message.startswith("cannot read") else f"{phase}: {message}"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def metrics_csv_for(dataset_path: Path) -> Path:
    """Where a metrics CSV of ``dataset_path`` is looked for: ``<stem>.metrics.csv`` beside it."""
    return Path(dataset_path).with_name(Path(dataset_path).stem + METRICS_SUFFIX)


def measure(
    key: str, patient_dir: Path, layout: Any = None, thresholds: Thresholds | None = None
) -> CaseSummary:
    """Measure one patient (both phases); a case that cannot be read gives its failed check."""
    try:
        return CaseSummary.from_report(metrics_for_patient(patient_dir, layout, thresholds, patient=key))
    except Exception as exc:  # metrics_for_patient already turns bad files into checks: this is a bug
        log.exception("Measuring %s failed", key)
        return CaseSummary(
            suspicion=DEFAULT_WEIGHTS["unreadable"],
            failed=(f"the automatic checks failed on this case ({type(exc).__name__}: {exc})",),
            lv=(None, None, None),
            rv=(None, None, None),
            myo_mass_g=None,
            mass_phase="",
        )
