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
import functools
import io
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from pathlib import Path
from typing import IO, Any

from . import names
from .errors import DatasetError, InvalidNameError

__all__ = [
    "COMMENT_KEYS",
    "ROW_FIELDS",
    "Decision",
    "HistoryEntry",
    "Statistics",
    "decision_from_record",
    "decision_to_record",
    "encode_dataset",
    "encode_patient",
    "history_entries",
    "last_saves",
    "make_rows",
    "parse_decision",
    "read_dataset_file",
    "rows_to_csv",
    "rows_to_dataframe",
    "rows_to_json",
]

COMMENT_KEYS: dict[str, str] = {"ED": "ED_Comments", "ES": "ES_Comments"}
"""Key of each phase's decision string inside a patient's object."""

ROW_FIELDS: tuple[str, ...] = ("patient", "phase", "decision", "comment", "updated", "user")
"""Columns of every export, in order."""

Target = str | os.PathLike[str] | IO[str] | None


# ---------------------------------------------------------------------------- decision strings


def _normalise_word(word: str) -> str | None:
    """Canonical decision for a spelling found in the wild (``Accept``, ``fine-tune``), else None."""
    key = word.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    return key if key in names.DECISIONS else None


@dataclass(frozen=True)
class Decision:
    """A reviewer's decision on one patient and phase.

    Parameters
    ----------
    decision : str or None
        One of :data:`~cmrqc_widgets.names.DECISIONS` (spellings such as ``"Accept"`` or
        ``"fine-tune"`` are normalised), or None for no decision.
    comment : str
        Free text; may contain ``:``.
    """

    decision: str | None = None
    comment: str = ""

    def __post_init__(self) -> None:
        if self.decision is not None:
            if not isinstance(self.decision, str):
                raise InvalidNameError(f"Decision {self.decision!r} is not allowed; it must be a string.")
            blank = self.decision in ("", names.NO_DECISION)
            canonical = None if blank else _normalise_word(self.decision)
            if canonical is None and not blank:
                raise InvalidNameError(
                    f"Decision {self.decision!r} is not allowed; use one of "
                    f"{', '.join(names.DECISIONS)} or None."
                )
            object.__setattr__(self, "decision", canonical)
        if not isinstance(self.comment, str):
            raise TypeError(f"A comment must be a string, not {type(self.comment).__name__}.")

    @classmethod
    def parse(cls, text: str | None) -> Decision:
        """Read a stored ``"<decision>:<comment>"`` string, as written by either tool.

        ``""`` is no decision; ``":text"`` a comment without decision; ``"Accept:x"`` and
        ``"fine-tune:x"`` are read as ``accept`` and ``finetune``; a word before ``:`` that is not
        a decision is part of the comment (kept whole).
        """
        return parse_decision(text or "")

    def encode(self) -> str:
        """The canonical stored form: ``"<decision>:<comment>"``, ``":<comment>"``, or ``""``."""
        if self.decision is None:
            return f":{self.comment}" if self.comment else ""
        return f"{self.decision}:{self.comment}"

    def __bool__(self) -> bool:
        return self.decision is not None or bool(self.comment)


@functools.lru_cache(maxsize=65536)
def parse_decision(text: str) -> Decision:
    """:meth:`Decision.parse` of a string, cached (a dataset repeats the same few strings)."""
    word, colon, rest = text.partition(":")
    if not colon:
        decision = _normalise_word(word)
        return Decision(decision, "") if decision else Decision(None, text)
    if not word.strip():
        return Decision(None, rest)
    decision = _normalise_word(word)
    return Decision(decision, rest) if decision else Decision(None, text)


def decision_to_record(decision: Decision) -> dict[str, Any]:
    """A decision as stored in a journal line."""
    return {"decision": decision.decision, "comment": decision.comment}


def decision_from_record(obj: Any) -> Decision | None:
    """The decision of a journal line's ``previous``/``new`` object; None if it is not one."""
    if not isinstance(obj, dict):
        return None
    try:
        return Decision(obj.get("decision"), obj.get("comment") or "")
    except (InvalidNameError, TypeError):
        return None


# ---------------------------------------------------------------------------- the dataset file


def read_dataset_file(path: Path) -> dict[str, dict[str, Any]]:
    """Read and check a dataset file; :class:`DatasetError` naming the file if it is not one."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"Dataset file {path} does not exist.") from None
    except OSError as error:
        raise DatasetError(f"Dataset file {path} cannot be read ({error.strerror}).") from None
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise DatasetError(
            f"Dataset file {path} is not valid JSON ({error}); it was left untouched."
        ) from None
    if not isinstance(data, dict):
        raise DatasetError(
            f"Dataset file {path} is not a dataset: expected an object keyed by patient, "
            f"found {type(data).__name__}; it was left untouched."
        )
    for patient, obj in data.items():
        if not isinstance(obj, dict):
            raise DatasetError(
                f"Dataset file {path} is not a dataset: patient {patient!r} holds "
                f"{type(obj).__name__} instead of an object; it was left untouched."
            )
        for key in COMMENT_KEYS.values():
            if not isinstance(obj.get(key, ""), str):
                raise DatasetError(
                    f"Dataset file {path} is not a dataset: {key} of patient {patient!r} is "
                    f"{type(obj[key]).__name__} instead of text; it was left untouched."
                )
    return data


def encode_patient(patient: str, obj: Mapping[str, Any]) -> str:
    """One patient's entry exactly as ``json.dumps(data, indent=4)`` writes it (fast path for text)."""
    if not obj:
        return f"    {_quote(patient)}: {{}}"
    items = []
    for key, value in obj.items():
        if isinstance(value, str):
            text = _quote(value)
        else:
            text = json.dumps(value, indent=4).replace("\n", "\n        ")
        items.append(f"        {_quote(key)}: {text}")
    return f"    {_quote(patient)}: {{\n" + ",\n".join(items) + "\n    }"


def encode_dataset(data: Mapping[str, Mapping[str, Any]]) -> str:
    """The file text of ``data``: identical to ``json.dumps(data, indent=4)``, several times faster."""
    if not data:
        return "{}"
    return "{\n" + ",\n".join(encode_patient(p, obj) for p, obj in data.items()) + "\n}"


# ---------------------------------------------------------------------------- history and statistics


@dataclass(frozen=True)
class HistoryEntry:
    """One save, as recorded in the journal."""

    time: str
    user: str
    patient: str
    phase: str
    previous: Decision
    new: Decision
    seconds: float | None = None


def history_entries(records: Iterable[dict[str, Any]], patient: str | None = None) -> list[HistoryEntry]:
    """Journal records as :class:`HistoryEntry`, oldest first; only ``patient``'s if given."""
    entries = []
    for record in records:
        if patient is not None and record["patient"] != patient:
            continue
        seconds = record.get("seconds")
        entries.append(
            HistoryEntry(
                time=str(record.get("time", "")),
                user=str(record.get("user", "")),
                patient=record["patient"],
                phase=record["phase"],
                previous=decision_from_record(record.get("previous")) or Decision(),
                new=decision_from_record(record.get("new")) or Decision(),
                seconds=float(seconds) if isinstance(seconds, int | float) else None,
            )
        )
    return entries


def last_saves(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], tuple[str, str]]:
    """(patient, phase) -> (time, user) of the last save in the journal records."""
    return {(r["patient"], r["phase"]): (str(r.get("time", "")), str(r.get("user", ""))) for r in records}


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
    def from_counts(cls, per_phase: Mapping[str, Mapping[str, int]], total: int) -> Statistics:
        """Build from ``{"ED": {word: n}, "ES": {...}}`` (word: a decision or "none") and patient count."""
        words = (*names.DECISIONS, names.NO_DECISION)
        counts = {key: dict.fromkeys(words, 0) for key in (*names.PHASES, "all")}
        for phase in names.PHASES:
            for word, n in per_phase.get(phase, {}).items():
                counts[phase][word] += n
                counts["all"][word] += n
        percentages = {}
        for key, by_word in counts.items():
            n = total * (len(names.PHASES) if key == "all" else 1)
            percentages[key] = {word: (100.0 * c / n if n else 0.0) for word, c in by_word.items()}
        return cls(counts=counts, percentages=percentages, total=total)

    @classmethod
    def from_objects(cls, objects: list[Mapping[str, Any]]) -> Statistics:
        """Count the patient objects of a dataset file (fast: each distinct string is parsed once)."""
        per_phase = {}
        for phase, field in COMMENT_KEYS.items():
            words: Counter[str] = Counter()
            for text, n in Counter(obj.get(field, "") for obj in objects).items():
                words[parse_decision(text).decision or names.NO_DECISION] += n
            per_phase[phase] = words
        return cls.from_counts(per_phase, len(objects))

    @classmethod
    def from_decisions(cls, decisions: Mapping[str, Mapping[str, Decision]]) -> Statistics:
        """Count ``decisions`` (patient -> phase -> Decision)."""
        per_phase = {
            phase: Counter(by_phase[phase].decision or names.NO_DECISION for by_phase in decisions.values())
            for phase in names.PHASES
        }
        return cls.from_counts(per_phase, len(decisions))


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
