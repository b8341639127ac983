"""The final QC table for a paper: one row per case and phase, from the files on disk.

:func:`report_rows` joins what :func:`~cmrqc_widgets.qc.lead.read_team` read (each reviewer's
decision and comment, the lead's consensus with who adjudicated and when) with the case's
measurements (LV/RV volumes, EF, myocardial mass, failed checks, suspicion) and the seconds spent
on it by everyone, from the journals. :func:`write_report_csv` writes it as CSV that Excel opens
as it is (UTF-8 with a byte-order mark; a text cell that Excel would run as a formula starts with
an apostrophe). The summary figures are in :mod:`cmrqc_widgets.qc.report_html`.

Consensus, per case-phase: the lead's decision in the consensus dataset when there is one
(``consensus_source`` "lead"); otherwise the reviewers' decision when every reviewer who decided
chose it ("unanimous", or "single reviewer" when only one decided); otherwise none ("disputed",
or "undecided" when nobody decided).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..names import PHASES, user_folder
from .cohort import metrics_by_patient, read_metrics
from .lead import TeamStatus

__all__ = [
    "METRIC_COLUMNS",
    "find_metrics",
    "load_metrics",
    "measure_metrics",
    "read_report_csv",
    "report_columns",
    "report_rows",
    "write_report_csv",
]

METRIC_COLUMNS: tuple[str, ...] = (
    "lv_edv_ml", "lv_esv_ml", "lv_sv_ml", "lv_ef", "rv_edv_ml", "rv_esv_ml", "rv_sv_ml", "rv_ef",
    "myo_mass_g", "failed_checks", "suspicion",
)  # fmt: skip
"""Columns taken from the metrics of each case-phase (volumes ml, mass g, EF %)."""


def report_columns(reviewers: Iterable[str]) -> list[str]:
    """Column names of the report, in order, for these reviewers."""
    per_reviewer = [c for u in reviewers for c in (u, f"{u}_comment")]
    return [
        "patient", "phase", "consensus", "consensus_source", "consensus_comment", "adjudicated_by",
        "adjudicated_at", "settled", *per_reviewer, "reviewers_decided", "agreement",
        *METRIC_COLUMNS, "seconds",
    ]  # fmt: skip


def find_metrics(status: TeamStatus) -> Path | None:
    """``<stem>.metrics.csv`` beside the lead's or a reviewer's dataset file (``cmrqc metrics``), if any."""
    name = status.dataset[: -len(".json")] + ".metrics.csv"
    for user in ([status.lead] if status.lead else []) + list(status.reviewers):
        path = user_folder(Path(status.root), user) / name
        try:
            if path.is_file():
                return path
        except OSError:
            continue
    return None


def measure_metrics(status: TeamStatus) -> list[dict[str, Any]]:
    """Measure every patient now (a case that cannot be read becomes a failed check, never an error)."""
    from .metrics import metrics_for_patient

    rows = []
    for patient in status.patients:
        folder = Path(patient).expanduser()
        folder = folder if folder.is_absolute() else Path(status.root) / folder
        rows.extend(metrics_for_patient(folder, patient=patient).rows())
    return rows


def _seconds(status: TeamStatus) -> dict[tuple[str, str], float]:
    spent: dict[tuple[str, str], float] = {}
    snapshots = [*status.snapshots.values(), *([status.consensus] if status.consensus else [])]
    for snapshot in snapshots:
        for record in snapshot.records:
            value = record.get("seconds")
            if isinstance(value, int | float):
                key = (record["patient"], record["phase"])
                spent[key] = spent.get(key, 0.0) + float(value)
    return spent


def report_rows(
    status: TeamStatus, metrics: Iterable[Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """One row per patient and phase (see :func:`report_columns` and the module docstring).

    ``metrics``: rows of a metrics CSV (:func:`~cmrqc_widgets.qc.cohort.read_metrics`) or of
    :func:`measure_metrics`; metric cells stay empty without them.
    """
    table = metrics_by_patient(metrics or [])
    spent = _seconds(status)
    consensus = status.consensus.decisions if status.consensus is not None else {}
    rows = []
    for patient in status.patients:
        for phase in PHASES:
            got = status.decisions(patient, phase)
            decided = {u: d.decision for u, d in got.items() if d.decision is not None}
            final = consensus.get(patient, {}).get(phase)
            adjudication = status.adjudicated.get((patient, phase))
            if final is not None and final.decision is not None:
                value, source = final.decision, "lead"
            elif not decided:
                value, source = "", "undecided"
            elif len(set(decided.values())) == 1:
                value = next(iter(decided.values()))
                source = "unanimous" if len(decided) > 1 else "single reviewer"
            else:
                value, source = "", "disputed"
            row: dict[str, Any] = {
                "patient": patient,
                "phase": phase,
                "consensus": value,
                "consensus_source": source,
                "consensus_comment": final.comment if final is not None else "",
                "adjudicated_by": adjudication.lead if adjudication else "",
                "adjudicated_at": adjudication.time if adjudication else "",
                "settled": "; ".join(f"{u}: {d.decision or 'none'}" for u, d in adjudication.settles.items())
                if adjudication else "",
            }  # fmt: skip
            for user in status.reviewers:
                d = got.get(user)
                row[user] = (d.decision or "") if d is not None else ""
                row[f"{user}_comment"] = d.comment if d is not None else ""
            row["reviewers_decided"] = len(decided)
            row["agreement"] = (
                "" if len(decided) < 2 else ("yes" if len(set(decided.values())) == 1 else "no")
            )
            measured = table.get(patient, {}).get(phase, {})
            for column in METRIC_COLUMNS:
                cell = measured.get(column)
                row[column] = "" if cell is None else cell
            total = spent.get((patient, phase))
            row["seconds"] = "" if total is None else round(total, 1)
            rows.append(row)
    return rows


def _excel_safe(value: Any) -> Any:
    # A cell starting with = + - @ is a formula to Excel: an apostrophe keeps it text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_report_csv(
    rows: list[dict[str, Any]], reviewers: Iterable[str], path: str | os.PathLike[str] | None = None
) -> str:
    """The report as CSV text (header first); also written to ``path`` (UTF-8 with BOM) if given."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=report_columns(reviewers), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _excel_safe(v) for k, v in row.items()})
    text = buffer.getvalue()
    if path is not None:
        Path(path).write_text(text, encoding="utf-8-sig", newline="")
    return text


def read_report_csv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rows of a report CSV as text (what a spreadsheet shows)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def load_metrics(status: TeamStatus, path: str | os.PathLike[str] | None = None, *, measure: bool = True):
    """Metrics rows for the report and their source: ``path``, a metrics CSV found, or measured now."""
    found = Path(path) if path is not None else find_metrics(status)
    if found is not None:
        return read_metrics(found), str(found)
    if measure:
        return measure_metrics(status), "measured now"
    return [], "none"
