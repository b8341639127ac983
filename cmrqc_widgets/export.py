"""Summaries and exports of a dataset's decisions: statistics, rows, CSV, JSON, pandas DataFrame.

One row per patient and phase, in the dataset's patient order, ED before ES::

    patient, phase, decision, comment, updated, user

``decision`` is one of :data:`~cmrqc_widgets.names.DECISIONS` or ``"none"``
(:data:`~cmrqc_widgets.names.NO_DECISION`); ``updated`` and ``user`` come from the last journal
entry of that patient and phase (empty when it was never saved through cmrqc_widgets).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from . import names
from .names import NO_DECISION, PHASES

if TYPE_CHECKING:
    from .store import Decision

__all__ = ["ROW_FIELDS", "Statistics", "make_rows", "rows_to_csv", "rows_to_dataframe", "rows_to_json"]

ROW_FIELDS: tuple[str, ...] = ("patient", "phase", "decision", "comment", "updated", "user")
"""Columns of every export, in order."""

Target = str | os.PathLike[str] | IO[str] | None


@dataclass(frozen=True)
class Statistics:
    """Decision counts of a dataset.

    Attributes
    ----------
    counts : dict
        ``{"ED": {"accept": n, ..., "none": n}, "ES": {...}, "all": {...}}``.
    percentages : dict
        Same keys, 0-100, relative to the patients (phase) or patient-phases ("all").
    total : int
        Number of patients.
    """

    counts: dict[str, dict[str, int]]
    percentages: dict[str, dict[str, float]]
    total: int

    def decided(self, phase: str = "all") -> int:
        """Number of decisions made in ``phase`` ("ED", "ES" or "all")."""
        key = "all" if phase == "all" else names.check_phase(phase)
        return sum(n for word, n in self.counts[key].items() if word != names.NO_DECISION)

    @classmethod
    def from_decisions(cls, decisions: Mapping[str, Mapping[str, Decision]]) -> Statistics:
        """Count ``decisions`` (patient -> phase -> Decision)."""
        words = (*names.DECISIONS, names.NO_DECISION)
        counts = {key: dict.fromkeys(words, 0) for key in (*names.PHASES, "all")}
        for by_phase in decisions.values():
            for phase in names.PHASES:
                word = by_phase[phase].decision or names.NO_DECISION
                counts[phase][word] += 1
                counts["all"][word] += 1
        total = len(decisions)
        percentages = {}
        for key, by_word in counts.items():
            n = total * (len(names.PHASES) if key == "all" else 1)
            percentages[key] = {word: (100.0 * c / n if n else 0.0) for word, c in by_word.items()}
        return cls(counts=counts, percentages=percentages, total=total)


def make_rows(
    decisions: Mapping[str, Mapping[str, Decision]],
    last_saves: Mapping[tuple[str, str], tuple[str, str]] | None = None,
) -> list[dict[str, str]]:
    """Rows for ``decisions`` (patient -> phase -> Decision).

    Parameters
    ----------
    decisions : mapping
        Patient -> {"ED": Decision, "ES": Decision}, in the order the rows should have.
    last_saves : mapping, optional
        (patient, phase) -> (time, user) of the last save, for the ``updated`` and ``user`` columns.
    """
    last_saves = last_saves or {}
    rows = []
    for patient, by_phase in decisions.items():
        for phase in PHASES:
            decision = by_phase[phase]
            updated, user = last_saves.get((patient, phase), ("", ""))
            rows.append(
                {
                    "patient": patient,
                    "phase": phase,
                    "decision": decision.decision or NO_DECISION,
                    "comment": decision.comment,
                    "updated": updated,
                    "user": user,
                }
            )
    return rows


def _write_text(text: str, target: Target) -> None:
    if target is None:
        return
    if hasattr(target, "write"):
        target.write(text)  # type: ignore[union-attr]
        return
    with open(target, "w", encoding="utf-8", newline="") as handle:  # type: ignore[arg-type]
        handle.write(text)


def rows_to_csv(rows: list[dict[str, str]], target: Target = None) -> str:
    """CSV text (header, then rows; RFC 4180 quoting); also written to ``target`` (path or text file)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    text = buffer.getvalue()
    _write_text(text, target)
    return text


def rows_to_json(rows: list[dict[str, str]], target: Target = None) -> str:
    """JSON text (a list of row objects); also written to ``target`` (a path or a text file) if given."""
    text = json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    _write_text(text, target)
    return text


def rows_to_dataframe(rows: list[dict[str, str]]) -> Any:
    """A :class:`pandas.DataFrame` of the rows; raise :class:`ImportError` with a hint without pandas."""
    try:
        import pandas as pd
    except ImportError as error:
        raise ImportError(
            "Exporting to a DataFrame needs pandas, which is not installed; run `pip install pandas`."
        ) from error
    return pd.DataFrame(rows, columns=list(ROW_FIELDS))
