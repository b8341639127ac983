"""The consensus dataset: the lead's final decisions, in the same format, journal and history as any dataset.

It is an ordinary dataset file in the lead's folder, ``<root>/users/<lead>/<stem>.consensus.json``
for the reviewers' ``<stem>.json``, so the old app, ``cmrqc stats`` and ``cmrqc export`` read it as
they read any other. Each adjudication is a normal save (durable when it returns) whose journal
line also records, under ``"settles"``, every reviewer's decision and comment it settled; the line's
``user`` and ``time`` say who adjudicated and when.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..names import check_dataset_name
from ..store import Dataset, Decision, QCStore

__all__ = [
    "CONSENSUS_SUFFIX",
    "Adjudication",
    "adjudicate",
    "adjudications",
    "consensus_name",
    "open_consensus",
]

CONSENSUS_SUFFIX = ".consensus.json"
"""``cohort.json`` -> ``cohort.consensus.json``."""


def consensus_name(dataset: str) -> str:
    """File name of the consensus dataset of the reviewers' ``dataset``."""
    check_dataset_name(dataset)
    return check_dataset_name(dataset[: -len(".json")] + CONSENSUS_SUFFIX)


def consensus_path(root: str | os.PathLike[str] | None, lead: str, dataset: str) -> Path:
    """Where ``lead``'s consensus dataset of ``dataset`` lives (it may not exist yet)."""
    return QCStore(root, lead).path(consensus_name(dataset))


def open_consensus(
    root: str | os.PathLike[str] | None, lead: str, dataset: str, patients: Sequence[str]
) -> Dataset:
    """Open ``lead``'s consensus dataset of ``dataset``, creating it with ``patients`` if missing."""
    return QCStore(root, lead).create(consensus_name(dataset), patients, exist_ok=True)


def adjudicate(
    consensus: Dataset,
    patient: str,
    phase: str,
    decision: str,
    comment: str,
    settles: Mapping[str, Decision],
    *,
    seconds: float | None = None,
) -> Decision:
    """Record the final ``decision`` on ``patient`` and ``phase``, settling the reviewers' ``settles``."""
    if decision is None:
        raise ValueError("A final decision must be one of the four decisions.")
    return consensus.save(patient, phase, decision, comment, seconds=seconds, settles=dict(settles))


@dataclass(frozen=True)
class Adjudication:
    """The last final decision on a case: what, by whom, when, and which reviewers' decisions it settled."""

    patient: str
    phase: str
    decision: Decision
    lead: str
    time: str
    settles: dict[str, Decision]


def adjudications(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], Adjudication]:
    """(patient, phase) -> the last :class:`Adjudication` in a consensus journal's records."""
    from ..store.summary import history_entries

    found: dict[tuple[str, str], Adjudication] = {}
    for entry in history_entries(records):
        key = (entry.patient, entry.phase)
        if entry.new.decision is None:
            found.pop(key, None)
            continue
        found[key] = Adjudication(
            entry.patient, entry.phase, entry.new, entry.user, entry.time, dict(entry.settles or {})
        )
    return found
