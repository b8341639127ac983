"""What a dataset's decisions and journal add up to: statistics and history entries.

:class:`Statistics` counts decisions per phase (what the pie chart and ``cmrqc stats`` show);
:class:`HistoryEntry` is one save read back from the journal (who, when, before -> after, seconds).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import names
from .fileformat import COMMENT_KEYS, Decision, decision_from_record, parse_decision

__all__ = [
    "HistoryEntry",
    "Statistics",
    "history_entries",
    "last_saves",
]


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
    settles: dict[str, Decision] | None = None
    """For a lead's adjudication: reviewer -> the decision it settled."""


def _settles(obj: Any) -> dict[str, Decision] | None:
    if not isinstance(obj, dict):
        return None
    return {str(u): decision_from_record(d) or Decision() for u, d in obj.items()}


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
                settles=_settles(record.get("settles")),
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
