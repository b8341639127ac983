"""Read another reviewer's dataset without writing a byte: what a lead's screen and report read.

Guarantee: :func:`read_snapshot` takes no lock and creates, changes or deletes no file, so it
works on folders the reader may only read (in production a lead's read access to reviewers'
folders comes from the data root's permissions). It sees every save acknowledged before it
started: the watermark is read first, then the dataset file, then the journal after the
watermark (replaying a save the file already holds changes nothing).

:class:`SnapshotCache` re-reads a file only when its size, time or journal changed (two
``os.stat`` calls per file otherwise), so a screen can poll every few seconds for nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fileformat import COMMENT_KEYS, Decision, parse_decision, read_dataset_file
from .journal import Journal, apply_record, journal_path, read_watermark, watermark_path

__all__ = ["Snapshot", "SnapshotCache", "read_snapshot"]


@dataclass(frozen=True)
class Snapshot:
    """One reviewer's dataset as it stood when read.

    Attributes
    ----------
    path : Path
        The dataset file.
    decisions : dict
        patient -> {"ED": Decision, "ES": Decision}, in file order.
    records : list of dict
        Every readable journal line, oldest first (who, when, before/after, seconds).
    """

    path: Path
    decisions: dict[str, dict[str, Decision]]
    records: list[dict[str, Any]]

    @property
    def patients(self) -> list[str]:
        """Patient keys, in file order."""
        return list(self.decisions)


def read_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Read the dataset file ``path`` and its journal; :class:`DatasetError` naming it if it is bad."""
    path = Path(path)
    journal = Journal(journal_path(path))
    mark = read_watermark(watermark_path(path))
    data = read_dataset_file(path)
    records = journal.records()
    if mark is None:
        later: list[dict[str, Any]] = []  # never saved journal-first: the file holds it all
    else:
        later = journal.read(mark.start(journal))[0]
    for record in later:
        apply_record(data, record)
    decisions = {
        patient: {phase: parse_decision(obj.get(field, "")) for phase, field in COMMENT_KEYS.items()}
        for patient, obj in data.items()
    }
    return Snapshot(path, decisions, records)


def _stamp(path: Path) -> tuple[Any, ...]:
    out: list[Any] = []
    for p in (path, journal_path(path), watermark_path(path)):
        try:
            st = os.stat(p)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


class SnapshotCache:
    """:func:`read_snapshot` that re-reads a file only when it or its journal changed."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[tuple[Any, ...], Snapshot]] = {}

    def read(self, path: str | os.PathLike[str]) -> Snapshot:
        """The current snapshot of ``path`` (cached while nothing changed)."""
        path = Path(path)
        stamp = _stamp(path)
        hit = self._cache.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        snapshot = read_snapshot(path)
        self._cache[path] = (stamp, snapshot)
        return snapshot
