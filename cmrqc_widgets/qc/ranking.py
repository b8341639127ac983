"""Using the metrics rows: most suspicious first, flagged patients, the queue order, the cohort plot.

Rows are metrics rows (dicts from :func:`~cmrqc_widgets.qc.cohort.read_metrics` or
``CaseReport.rows()``), :class:`~cmrqc_widgets.qc.metrics.CaseReport` objects, or a pandas
DataFrame. A patient's score is its ``case_suspicion`` (every failed check once), else its
highest row score; flagged means at least :data:`~cmrqc_widgets.qc.score.FLAG_SCORE`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import Thresholds
from .report import CaseReport
from .score import is_flagged

__all__ = ["flagged_patients", "metrics_by_patient", "plot_cohort", "suspicion_order", "suspicion_queue"]


def _as_rows(rows_or_df: Any) -> list[Mapping[str, Any]]:
    if hasattr(rows_or_df, "to_dict") and hasattr(rows_or_df, "columns"):
        return list(rows_or_df.to_dict("records"))
    rows: list[Mapping[str, Any]] = []
    for item in rows_or_df:
        rows.extend(item.rows() if isinstance(item, CaseReport) else [item])
    return rows


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN from pandas -> None


def _row_score(row: Mapping[str, Any]) -> float:
    score = _number(row.get("case_suspicion"))
    return score if score is not None else _number(row.get("suspicion")) or 0.0


def suspicion_order(rows: Iterable[Any]) -> list[str]:
    """Patients, most suspicious first (ties keep their order in ``rows``).

    ``rows`` are metrics rows (dicts, from :func:`read_metrics` or ``CaseReport.rows()``),
    :class:`~cmrqc_widgets.qc.metrics.CaseReport` objects, or a pandas DataFrame. A patient's
    score is its ``case_suspicion`` (every failed check once), else its highest row score.
    """
    scores: dict[str, float] = {}
    for row in _as_rows(rows):
        score = _row_score(row)
        patient = str(row["patient"])
        scores[patient] = max(scores.get(patient, score), score)
    order = {p: i for i, p in enumerate(scores)}
    return sorted(scores, key=lambda p: (-scores[p], order[p]))


def flagged_patients(rows: Iterable[Any]) -> list[str]:
    """Flagged patients (score at least :data:`~cmrqc_widgets.qc.score.FLAG_SCORE`), most suspicious first."""
    scores: dict[str, float] = {}
    for row in _as_rows(rows):
        scores[str(row["patient"])] = max(scores.get(str(row["patient"]), 0.0), _row_score(row))
    return [p for p in suspicion_order(rows) if is_flagged(scores.get(p, 0.0))]


def metrics_by_patient(rows: Iterable[Any]) -> dict[str, dict[str, Mapping[str, Any]]]:
    """Rows keyed by patient, then phase: what a metrics strip shows for the current case."""
    table: dict[str, dict[str, Mapping[str, Any]]] = {}
    for row in _as_rows(rows):
        table.setdefault(str(row["patient"]), {})[str(row["phase"])] = row
    return table


def suspicion_queue(rows: Iterable[Any]) -> Callable[[Any], list[int]]:
    """A review-queue order, most suspicious first, for ``ReviewState.register_order``.

    The returned function takes anything with a ``patients`` list (the dataset keys) and
    returns their indices; a patient is matched by its key, else by its absolute folder.
    Patients without metrics keep their file order after the measured ones.
    """
    ranked = suspicion_order(rows)

    def order(state: Any) -> list[int]:
        index: dict[str, int] = {}
        for i, key in enumerate(state.patients):
            index.setdefault(key, i)
            index.setdefault(os.path.abspath(os.path.expanduser(key)), i)
        found = [index.get(p, index.get(os.path.abspath(p))) for p in ranked]
        first = [i for i in dict.fromkeys(found) if i is not None]
        seen = set(first)
        return first + [i for i in range(len(state.patients)) if i not in seen]

    return order


def plot_cohort(rows_or_df: Any, ax: Any = None, ventricle: str = "LV", thresholds: Thresholds | None = None):
    """Scatter EF against EDV, one point per patient, flagged patients marked and named.

    Parameters
    ----------
    rows_or_df : rows, CaseReports or DataFrame
        As for :func:`suspicion_order`.
    ax : matplotlib Axes, optional
        Where to draw; a new figure otherwise.
    ventricle : {"LV", "RV"}
    thresholds : Thresholds, optional
        Its plausible EF range is drawn as dotted lines.

    Returns
    -------
    matplotlib.axes.Axes
    """
    v = ventricle.lower()
    if v not in ("lv", "rv"):
        raise ValueError(f"ventricle must be 'LV' or 'RV', not {ventricle!r}.")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4.5))
    points: dict[str, tuple[float, float]] = {}
    score: dict[str, float] = {}
    for row in _as_rows(rows_or_df):
        patient = str(row["patient"])
        score[patient] = max(score.get(patient, 0.0), _row_score(row))
        edv, ef = _number(row.get(f"{v}_edv_ml")), _number(row.get(f"{v}_ef"))
        if edv is not None and ef is not None:
            points.setdefault(patient, (edv, ef))
    normal = np.array([xy for p, xy in points.items() if not is_flagged(score[p])]).reshape(-1, 2)
    flagged = {p: xy for p, xy in points.items() if is_flagged(score[p])}
    if len(normal):
        ax.scatter(
            normal[:, 0], normal[:, 1], s=28, c="0.45", marker="o", label=f"not flagged ({len(normal)})"
        )
    if flagged:
        xy = np.array(list(flagged.values()))
        ax.scatter(xy[:, 0], xy[:, 1], s=60, c="tab:red", marker="x", label=f"flagged ({len(flagged)})")
        for p, (x, y) in flagged.items():
            ax.annotate(Path(p).name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    lo, hi = (thresholds or Thresholds()).ef_range
    for limit in (lo, hi):
        ax.axhline(limit, color="0.6", linestyle=":", linewidth=1)
    missing = len(score) - len(points)
    ax.set_xlabel(f"{ventricle.upper()} end-diastolic volume (ml)")
    ax.set_ylabel(f"{ventricle.upper()} ejection fraction (%)")
    title = f"{ventricle.upper()} EF vs EDV, {len(points)} patients"
    ax.set_title(title + (f" ({missing} without EF not shown)" if missing else ""))
    if points:
        ax.legend(loc="best", fontsize=8)
    return ax
