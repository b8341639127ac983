"""The decision store: each reviewer's dataset files, in the old app's format, never losing a save.

``QCStore(root, user)`` is the reviewer's folder ``<root>/users/<user>/``; each ``*.json`` in it
is a dataset file in the old app's format (:mod:`cmrqc_widgets.store.fileformat`), with its journal and
watermark beside it (:mod:`cmrqc_widgets.store.journal`).

How a save stays fast at 100,000 patients without giving up a guarantee:

1. :meth:`Dataset.save` appends one line to the dataset's journal under the journal's
   :class:`filelock.FileLock` and fsyncs it: when ``save()`` returns, the decision is durable.
2. Any reader through this API (another :class:`Dataset`, another process) sees it at once:
   :meth:`Dataset.get` and the other readers check the journal's size with one ``os.stat`` and
   apply the lines they have not seen.
3. A background thread rewrites the dataset file in the old app's format half a
   ``flush_delay`` (1 s) after the last save, and at most ``flush_delay`` after the first one not
   yet written; :meth:`Dataset.flush`, :meth:`Dataset.close` and interpreter exit do it at once.
   The rewrite holds the dataset file's lock, re-reads the file if another program changed it
   and merges, writes a temp file, fsyncs it, replaces the file atomically, then records in the
   watermark how far into the journal the file is.
4. Opening a dataset replays the journal after the watermark, so a crash between a save and the
   rewrite loses nothing; replaying is idempotent.

A corrupt file raises :class:`DatasetError` naming it and is never written. Edits that other
programs (the old app) make to the file are seen by the next read, save or rewrite; where both
tools changed the same patient and phase within that second, the save in the journal wins.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from .. import names
from ..errors import DatasetError
from . import export
from .fileformat import COMMENT_KEYS, Decision, decision_to_record, parse_decision
from .files import check_writable, utc_now
from .journal import JournalledFile
from .summary import HistoryEntry, Statistics, history_entries, last_saves

__all__ = ["FLUSH_DELAY", "Dataset", "UnknownPatientError", "patient_key"]

FLUSH_DELAY = 1.0
"""Default seconds after the first unwritten save by which the dataset file is rewritten."""

_log = logging.getLogger(__name__)


class UnknownPatientError(DatasetError, KeyError):
    """A patient that is not in the dataset file (a :class:`DatasetError` and a :class:`KeyError`)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def patient_key(patient: str | os.PathLike[str]) -> str:
    """The dataset file's key for ``patient`` (a folder path or a key as it stands in the file)."""
    key = os.fspath(patient)
    if not isinstance(key, str):
        raise TypeError(f"A patient must be given as text, not {type(key).__name__}.")
    return key


def _check_seconds(seconds: float | None) -> float | None:
    if seconds is None:
        return None
    value = float(seconds)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"Seconds spent on a case must be a finite number >= 0, not {seconds!r}.")
    return value


class _Debouncer:
    """Run ``action`` in a short-lived background thread ``quiet`` s after the last :meth:`poke`,
    and at most ``limit`` s after the first, so a steady stream of saves still gets written."""

    def __init__(self, action: Callable[[], None], quiet: float, limit: float) -> None:
        self._action = action
        self._quiet, self._limit = quiet, limit
        self.reset()

    def reset(self) -> None:
        """Forget any thread (also after a fork, which does not copy threads)."""
        self._cv = threading.Condition()
        self._first: float | None = None
        self._last = 0.0
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        with self._cv:
            now = time.monotonic()
            if self._first is None:
                self._first = now
            self._last = now
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cmrqc-dataset-writer", daemon=True)
                self._thread.start()
            else:
                self._cv.notify()

    def take(self) -> None:
        """Forget what is pending (the caller writes it now)."""
        with self._cv:
            self._first = None
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    if self._first is None:
                        self._thread = None
                        return
                    wait = min(self._last + self._quiet, self._first + self._limit) - time.monotonic()
                    if wait <= 0:
                        break
                    self._cv.wait(wait)
                self._first = None
            self._action()


class Dataset:
    """One dataset file of one reviewer. Obtain it from :meth:`QCStore.open` or :meth:`QCStore.create`.

    Parameters
    ----------
    path : Path
        The dataset file (already checked to be inside the reviewer's folder).
    user : str
        The reviewer recorded in the journal for each save.
    name : str, optional
        Name shown to the reviewer; default the file name.
    flush_delay : float or None
        The dataset file is rewritten at most this many seconds after the first unwritten save,
        half of it after the last one if that comes sooner. None: only on :meth:`flush`,
        :meth:`close` and interpreter exit.

    Attributes
    ----------
    name, path, user, flush_delay
        As given.
    error : DatasetError or None
        Why the last background rewrite failed (the saves stay safe in the journal).
    """

    def __init__(
        self, path: Path, user: str, *, name: str | None = None, flush_delay: float | None = FLUSH_DELAY
    ) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        self.user = names.check_username(user)
        self.flush_delay = flush_delay
        self.error: DatasetError | None = None
        self._writer = None
        if flush_delay is not None:
            self._writer = _Debouncer(self._write_in_background, quiet=flush_delay / 2, limit=flush_delay)
        self._files = JournalledFile(self.path)
        self._files.on_pending = self._schedule
        if not self._files.up_to_date():
            self._schedule()  # saves a crash kept from the file
        _OPEN.add(self)

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, user={self.user!r})"

    @property
    def journal_path(self) -> Path:
        """The dataset's append-only journal (history of every save)."""
        return self._files.journal.path

    def refresh(self) -> None:
        """Re-read the dataset file and the journal (reads and saves also notice changes by themselves)."""
        self._files.refresh()

    def _entry(self, data: dict[str, dict[str, Any]], patient: str) -> dict[str, Any]:
        try:
            return data[patient]
        except KeyError:
            raise UnknownPatientError(f"Patient {patient!r} is not in dataset file {self.path}.") from None

    def _objects(self) -> list[tuple[str, dict[str, Any]]]:
        data = self._files.current()
        with self._files.mutex:
            return list(data.items())

    # -- reading decisions

    @property
    def patients(self) -> list[str]:
        """Patient keys, in file order."""
        return list(self._files.current())

    def __len__(self) -> int:
        return len(self._files.current())

    def __contains__(self, patient: object) -> bool:
        return isinstance(patient, str | os.PathLike) and os.fspath(patient) in self._files.current()

    def get(self, patient: str | os.PathLike[str], phase: str) -> Decision:
        """The decision on ``patient`` in ``phase`` ("ED"/"ES"); :class:`UnknownPatientError` if absent."""
        field = COMMENT_KEYS[names.check_phase(phase)]
        return parse_decision(self._entry(self._files.current(), patient_key(patient)).get(field, ""))

    def decisions(self) -> dict[str, dict[str, Decision]]:
        """Every decision: patient -> {"ED": Decision, "ES": Decision}, in file order (a new dict)."""
        return {
            patient: {phase: parse_decision(obj.get(field, "")) for phase, field in COMMENT_KEYS.items()}
            for patient, obj in self._objects()
        }

    def statistics(self) -> Statistics:
        """Counts and percentages per decision (``"none"`` for no decision), per phase and overall."""
        return Statistics.from_objects([obj for _, obj in self._objects()])

    # -- saving

    def save(
        self,
        patient: str | os.PathLike[str],
        phase: str,
        decision: str | None,
        comment: str | None = None,
        *,
        seconds: float | None = None,
        settles: Mapping[str, Decision] | None = None,
    ) -> Decision:
        """Store a decision durably and return it as stored.

        Parameters
        ----------
        patient : str
            A patient key of this dataset.
        phase : str
            "ED" or "ES".
        decision : str or None
            One of the four decisions, or None to clear it.
        comment : str, optional
            New comment; None keeps the stored one.
        seconds : float, optional
            Time the reviewer spent on the case, recorded in the journal.
        settles : mapping, optional
            Reviewer -> their :class:`Decision` that this one settles (a lead's adjudication),
            recorded in the journal.
        """
        phase = names.check_phase(phase)
        key = patient_key(patient)
        seconds = _check_seconds(seconds)
        Decision(decision, comment or "")  # refuse a bad decision before touching anything
        if comment is not None and len(comment) > names.MAX_COMMENT:
            raise DatasetError(
                f"The comment is too long ({len(comment):,} characters; at most {names.MAX_COMMENT:,}); "
                "nothing was saved."
            )
        field = COMMENT_KEYS[phase]
        check_writable(self.path)  # "saved" must never be said of a file that cannot change
        settled = None
        if settles is not None:
            settled = {names.check_username(u): decision_to_record(d) for u, d in settles.items()}

        def record(data: dict[str, dict[str, Any]]) -> dict[str, Any]:
            previous = parse_decision(self._entry(data, key).get(field, ""))
            new = Decision(decision, previous.comment if comment is None else comment)
            return {
                "time": utc_now(),
                "user": self.user,
                "patient": key,
                "phase": phase,
                "previous": decision_to_record(previous),
                "new": decision_to_record(new),
                "seconds": seconds,
                **({} if settled is None else {"settles": settled}),
            }

        try:
            saved = self._files.append(record)
        except OSError as error:
            raise DatasetError(
                f"Journal {self.journal_path} cannot be written ({error.strerror}); nothing was saved."
            ) from None
        self._schedule()
        return Decision(**saved["new"])

    def _schedule(self) -> None:
        _OPEN.add(self)
        if self._writer is not None:
            self._writer.poke()

    def _write_in_background(self) -> None:
        try:
            self._files.rewrite()
            self.error = None
        except DatasetError as error:
            self.error = error
            _log.error("%s Every save is kept in %s.", error, self.journal_path)
        except Exception:  # a background thread must not die silently
            _log.exception("Rewriting dataset file %s failed.", self.path)

    def flush(self) -> None:
        """Write the dataset file now if any save is not in it yet; :class:`DatasetError` if it cannot be."""
        if self._writer is not None:
            self._writer.take()
        if not self._files.up_to_date():
            self._files.rewrite()
        self.error = None

    def close(self) -> None:
        """Flush; the object can still be used afterwards."""
        self.flush()
        _OPEN.discard(self)

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- history and export

    def history(self, patient: str | os.PathLike[str] | None = None) -> list[HistoryEntry]:
        """Every save recorded in the journal, oldest first; only ``patient``'s if given."""
        wanted = None if patient is None else patient_key(patient)
        return history_entries(self._files.journal.records(), wanted)

    def to_rows(self) -> list[dict[str, str]]:
        """One row per patient and phase: patient, phase, decision, comment, updated, user."""
        return export.make_rows(self.decisions(), last_saves(self._files.journal.records()))

    def to_csv(self, path_or_file: str | os.PathLike[str] | IO[str] | None = None) -> str:
        """CSV of :meth:`to_rows` (header first); also written to ``path_or_file`` if given."""
        return export.rows_to_csv(self.to_rows(), path_or_file)

    def to_json(self, path_or_file: str | os.PathLike[str] | IO[str] | None = None) -> str:
        """JSON list of :meth:`to_rows`; also written to ``path_or_file`` if given."""
        return export.rows_to_json(self.to_rows(), path_or_file)

    def to_dataframe(self) -> Any:
        """A pandas DataFrame of :meth:`to_rows` (needs pandas)."""
        return export.rows_to_dataframe(self.to_rows())


# Datasets that may hold saves not yet in their file: written at interpreter exit.
_OPEN: weakref.WeakSet[Dataset] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for dataset in list(_OPEN):
        try:
            dataset.flush()
        except Exception as error:  # every save is still in the journal; the next open replays it
            _log.error("Could not write %s at exit (%s); its journal keeps every save.", dataset.path, error)


def _after_fork_in_child() -> None:
    # Threads and held locks do not survive a fork: give each dataset fresh ones.
    for dataset in list(_OPEN):
        dataset._files.make_locks()
        if dataset._writer is not None:
            dataset._writer.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
