"""The decision store: each reviewer's dataset files, in the old app's format, never losing a save.

A dataset file ``<root>/users/<user>/<name>.json`` is one JSON object keyed by patient folder, in
file order, each patient holding ``"ED_Comments"`` and ``"ES_Comments"`` strings of the form
``"<decision>:<comment>"`` (see ``SPEC.md``). The old app's files are read as they are found in the
wild (``fine-tune:``, ``Accept:``, ``":comment"``); what we write is canonical, and every other key
and every patient we do not touch is kept as it was, in order. Files are written with ``indent=4``
like the old app's.

Every save holds a :class:`filelock.FileLock` (``<name>.json.lock`` beside the file), re-reads the
file, applies the one change, writes a temporary file in the same folder, fsyncs it and replaces
the file atomically: two notebooks of one reviewer never lose each other's decisions, and a crash
never leaves a truncated file. A corrupt file raises :class:`DatasetError` and is never written.
Every save also appends one line to the dataset's journal (:mod:`cmrqc_widgets.journal`), which
:meth:`Dataset.history` reads back.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import export, names
from .errors import DatasetError, InvalidNameError
from .export import Statistics
from .journal import (
    COMMENT_KEYS,
    Journal,
    encode_dataset,
    hold,
    identity,
    journal_path,
    lock_for,
    read_dataset_file,
    remove_stale_temps,
    utc_now,
    write_atomic,
)

__all__ = [
    "Dataset",
    "Decision",
    "HistoryEntry",
    "QCStore",
    "Statistics",
    "UnknownPatientError",
    "encode_dataset",
    "read_dataset_file",
]


class UnknownPatientError(DatasetError, KeyError):
    """A patient that is not in the dataset file (a :class:`DatasetError` and a :class:`KeyError`)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


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
        return _parse(text or "")

    def encode(self) -> str:
        """The canonical stored form: ``"<decision>:<comment>"``, ``":<comment>"``, or ``""``."""
        if self.decision is None:
            return f":{self.comment}" if self.comment else ""
        return f"{self.decision}:{self.comment}"

    def __bool__(self) -> bool:
        return self.decision is not None or bool(self.comment)


@functools.lru_cache(maxsize=65536)
def _parse(text: str) -> Decision:
    word, colon, rest = text.partition(":")
    if not colon:
        decision = _normalise_word(word)
        return Decision(decision, "") if decision else Decision(None, text)
    if not word.strip():
        return Decision(None, rest)
    decision = _normalise_word(word)
    return Decision(decision, rest) if decision else Decision(None, text)


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


def _patient_key(patient: str | os.PathLike[str]) -> str:
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


def _decision_dict(decision: Decision) -> dict[str, Any]:
    return {"decision": decision.decision, "comment": decision.comment}


def _decision_from(obj: Any) -> Decision:
    if isinstance(obj, dict):
        try:
            return Decision(obj.get("decision"), obj.get("comment") or "")
        except (InvalidNameError, TypeError):
            pass
    return Decision()


# ---------------------------------------------------------------------------- dataset and store


class Dataset:
    """One dataset file of one reviewer. Obtain it from :meth:`QCStore.open` or :meth:`QCStore.create`.

    Attributes
    ----------
    name : str
        File name, e.g. ``"cohort.json"``.
    path : Path
        The dataset file.
    user : str
        The reviewer recorded in the journal for each save.
    """

    def __init__(self, path: Path, user: str, *, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        self.user = names.check_username(user)
        self._lock = lock_for(self.path)
        self._journal = Journal(journal_path(self.path))
        self._mutex = threading.RLock()
        self._data: dict[str, dict[str, Any]] = {}
        self._ident: tuple[int, int, int, int] | None = None
        with hold(self._lock, self.path):
            remove_stale_temps(self.path)
        self.refresh()

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, user={self.user!r})"

    @property
    def journal_path(self) -> Path:
        """The dataset's append-only journal (history of every save)."""
        return self._journal.path

    # -- locking and reading

    def refresh(self) -> None:
        """Re-read the dataset file (edits by other programs, such as the old app)."""
        ident = identity(self.path)
        data = read_dataset_file(self.path)
        with self._mutex:
            self._data, self._ident = data, ident

    def _current(self) -> dict[str, dict[str, Any]]:
        if identity(self.path) != self._ident:
            self.refresh()
        return self._data

    def _entry(self, data: Mapping[str, dict[str, Any]], patient: str) -> dict[str, Any]:
        try:
            return data[patient]
        except KeyError:
            raise UnknownPatientError(f"Patient {patient!r} is not in dataset file {self.path}.") from None

    # -- reading decisions

    @property
    def patients(self) -> list[str]:
        """Patient keys, in file order."""
        return list(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def __contains__(self, patient: object) -> bool:
        return isinstance(patient, str | os.PathLike) and os.fspath(patient) in self._current()

    def get(self, patient: str | os.PathLike[str], phase: str) -> Decision:
        """The decision on ``patient`` in ``phase`` ("ED"/"ES"); :class:`UnknownPatientError` if absent."""
        phase = names.check_phase(phase)
        obj = self._entry(self._current(), _patient_key(patient))
        return _parse(obj.get(COMMENT_KEYS[phase], ""))

    def decisions(self) -> dict[str, dict[str, Decision]]:
        """Every decision: patient -> {"ED": Decision, "ES": Decision}, in file order."""
        data = self._current()
        return {
            patient: {phase: _parse(obj.get(key, "")) for phase, key in COMMENT_KEYS.items()}
            for patient, obj in data.items()
        }

    def statistics(self) -> Statistics:
        """Counts and percentages per decision (``"none"`` for no decision), per phase and overall."""
        return Statistics.from_decisions(self.decisions())

    # -- saving

    def save(
        self,
        patient: str | os.PathLike[str],
        phase: str,
        decision: str | None,
        comment: str | None = None,
        *,
        seconds: float | None = None,
    ) -> Decision:
        """Store a decision and return it as stored.

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
        """
        phase = names.check_phase(phase)
        key = _patient_key(patient)
        seconds = _check_seconds(seconds)
        Decision(decision, comment or "")  # validate before taking the lock
        field = COMMENT_KEYS[phase]
        with hold(self._lock, self.path):
            data = read_dataset_file(self.path)
            obj = self._entry(data, key)
            stored = obj.get(field, "")
            previous = _parse(stored)
            new = Decision(decision, previous.comment if comment is None else comment)
            if new.encode() != stored or field not in obj:
                obj[field] = new.encode()
                write_atomic(self.path, encode_dataset(data))
            self._append_history(key, phase, previous, new, seconds)
            with self._mutex:
                self._data, self._ident = data, identity(self.path)
        return new

    def _append_history(
        self, patient: str, phase: str, previous: Decision, new: Decision, seconds: float | None
    ) -> None:
        record = {
            "time": utc_now(),
            "user": self.user,
            "patient": patient,
            "phase": phase,
            "previous": _decision_dict(previous),
            "new": _decision_dict(new),
            "seconds": seconds,
        }
        try:
            self._journal.append(record)
        except OSError as error:
            raise DatasetError(
                f"Journal {self._journal.path} cannot be written ({error.strerror})."
            ) from None

    # -- history and export

    def history(self, patient: str | os.PathLike[str] | None = None) -> list[HistoryEntry]:
        """Every save recorded in the journal, oldest first; only ``patient``'s if given."""
        wanted = None if patient is None else _patient_key(patient)
        entries = []
        for record in self._journal.records():
            if wanted is not None and record["patient"] != wanted:
                continue
            seconds = record.get("seconds")
            entries.append(
                HistoryEntry(
                    time=str(record.get("time", "")),
                    user=str(record.get("user", "")),
                    patient=record["patient"],
                    phase=record["phase"],
                    previous=_decision_from(record.get("previous")),
                    new=_decision_from(record.get("new")),
                    seconds=float(seconds) if isinstance(seconds, int | float) else None,
                )
            )
        return entries

    def to_rows(self) -> list[dict[str, str]]:
        """One row per patient and phase: patient, phase, decision, comment, updated, user."""
        last = {
            (r["patient"], r["phase"]): (str(r.get("time", "")), str(r.get("user", "")))
            for r in self._journal.records()
        }
        return export.make_rows(self.decisions(), last)

    def to_csv(self, path_or_file: str | os.PathLike[str] | IO[str] | None = None) -> str:
        """CSV of :meth:`to_rows` (header first); also written to ``path_or_file`` if given."""
        return export.rows_to_csv(self.to_rows(), path_or_file)

    def to_json(self, path_or_file: str | os.PathLike[str] | IO[str] | None = None) -> str:
        """JSON list of :meth:`to_rows`; also written to ``path_or_file`` if given."""
        return export.rows_to_json(self.to_rows(), path_or_file)

    def to_dataframe(self) -> Any:
        """A pandas DataFrame of :meth:`to_rows` (needs pandas)."""
        return export.rows_to_dataframe(self.to_rows())

    # -- lifecycle

    def flush(self) -> None:
        """Make sure the dataset file holds every save (each save already writes it)."""

    def close(self) -> None:
        """Flush; the object can still be read afterwards."""
        self.flush()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class QCStore:
    """The dataset files of one reviewer under a data root.

    Parameters
    ----------
    root : path, optional
        Data root; default ``$CMRQC_ROOT``, else :data:`~cmrqc_widgets.names.DEFAULT_ROOT`.
    user : str, optional
        Reviewer; default ``$JUPYTERHUB_USER``, ``$CMRQC_USER``, else the OS user.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, user: str | None = None) -> None:
        self.root = names.resolve_root(root)
        self.user = names.resolve_user(user)
        self.folder = names.user_folder(self.root, self.user)

    def __repr__(self) -> str:
        return f"QCStore({str(self.root)!r}, user={self.user!r})"

    def path(self, name: str) -> Path:
        """Path of dataset ``name`` in the reviewer's folder; :class:`InvalidNameError` if unsafe."""
        names.check_dataset_name(name)
        folder = names.user_folder(self.root, self.user)
        return names.safe_path(folder, name)

    def datasets(self) -> list[str]:
        """Names of the reviewer's dataset files, sorted; listed afresh on every call."""
        try:
            entries = list(os.scandir(self.folder))
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for entry in entries:
            if not entry.name.endswith(".json"):
                continue
            try:
                if self.path(entry.name).is_file():
                    found.append(entry.name)
            except InvalidNameError:
                continue
        return sorted(found)

    def open(self, name: str) -> Dataset:
        """Open dataset ``name``; :class:`DatasetError` if it is missing or not a dataset file."""
        path = self.path(name)
        if not path.is_file():
            raise DatasetError(f"Dataset file {path} does not exist.")
        return Dataset(path, self.user, name=name)

    def _make_folder(self) -> None:
        folder = names.user_folder(self.root, self.user)
        if not folder.is_dir():
            folder.parent.mkdir(parents=True, exist_ok=True)
            try:
                folder.mkdir(mode=0o700)
            except FileExistsError:
                return
            os.chmod(folder, 0o700)

    def create(
        self, name: str, patients: Iterable[str | os.PathLike[str]], *, exist_ok: bool = False
    ) -> Dataset:
        """Create dataset ``name`` with ``patients`` (no decisions yet) and open it.

        With ``exist_ok`` an existing file is opened unchanged; otherwise it is a :class:`DatasetError`.
        """
        path = self.path(name)
        data = {_patient_key(p): {"ED_Comments": "", "ES_Comments": ""} for p in patients}
        self._make_folder()
        path = self.path(name)
        with hold(lock_for(path), path):
            if path.exists():
                if not exist_ok:
                    raise DatasetError(f"Dataset file {path} already exists.")
            else:
                write_atomic(path, encode_dataset(data))
        return Dataset(path, self.user, name=name)
