"""Decisions outside memory: the old app's dataset file format, history entries, statistics, exports.

**Decision strings.** The old app stores a decision as ``"<decision>:<comment>"`` in
``ED_Comments`` / ``ES_Comments``. :class:`Decision` reads the variants found in the wild
(``fine-tune:``, ``Accept:``, ``":comment"``, ``""``) and writes the canonical form.

**Dataset file** ``<name>.json`` (see ``SPEC.md``): one JSON object keyed by patient folder, in
file order; each patient an object holding those two strings plus whatever other tools put there,
which we keep. :func:`read_dataset_file` reads it strictly (:class:`DatasetError` naming the
file); :func:`encode_dataset` writes exactly what ``json.dumps(data, indent=4)`` would, as the
old app did, several times faster.

**Exports.** One row per patient and phase, in the dataset's patient order, ED before ES::

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
from typing import IO, Any

from .. import names
from .fileformat import Decision

__all__ = [
    "ROW_FIELDS",
    "make_rows",
    "rows_to_csv",
    "rows_to_dataframe",
    "rows_to_json",
]


ROW_FIELDS: tuple[str, ...] = ("patient", "phase", "decision", "comment", "updated", "user")
"""Columns of every export, in order."""

Target = str | os.PathLike[str] | IO[str] | None


# ---------------------------------------------------------------------------- decision strings


# ---------------------------------------------------------------------------- the dataset file


# ---------------------------------------------------------------------------- history and statistics


# ---------------------------------------------------------------------------- exports


def make_rows(
    decisions: Mapping[str, Mapping[str, Decision]],
    last: Mapping[tuple[str, str], tuple[str, str]] | None = None,
) -> list[dict[str, str]]:
    """Rows for ``decisions`` (patient -> phase -> Decision, in row order).

    ``last`` maps (patient, phase) to (time, user) of the last save (see :func:`last_saves`).
    """
    last = last or {}
    rows = []
    for patient, by_phase in decisions.items():
        for phase in names.PHASES:
            decision = by_phase[phase]
            updated, user = last.get((patient, phase), ("", ""))
            rows.append(
                {
                    "patient": patient,
                    "phase": phase,
                    "decision": decision.decision or names.NO_DECISION,
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
