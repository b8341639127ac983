"""How a dataset's files on disk stay whole: the journal, the watermark and the dataset file rewrite.

Beside ``<name>.json`` (the old app's format, :mod:`cmrqc_widgets.store.fileformat`):

- ``<stem>.history.jsonl``, the **journal**: one self-contained JSON line per save, appended under
  its lock ``<stem>.history.jsonl.lock`` and fsynced before the save returns; never rewritten::

      {"time": "2025-01-02T10:11:12.345+00:00", "user": "alice", "patient": "/data/p1",
       "phase": "ED", "previous": {"decision": null, "comment": ""},
       "new": {"decision": "accept", "comment": "fine"}, "seconds": 12.5}

  A writer killed mid-append can leave an unterminated last line: readers only take lines ending
  in a newline, and the next append first ends the fragment, so every reader skips it (its save
  was never acknowledged).
- ``<stem>.history.applied``, the **watermark** (:class:`Watermark`): how far into the journal the
  dataset file holds every save, and which version of the file cmrqc_widgets last wrote.
- ``<name>.json.lock``: held while the dataset file is read for a merge or rewritten (temp file in
  the same folder, fsync, ``os.replace``, fsync of the folder: never a truncated file).

None of these names ends in ``.json``, so neither tool lists them as datasets.
:class:`JournalledFile` keeps the view of a dataset that readers use: the file's patient objects
with the journal lines after the watermark applied.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from .fileformat import COMMENT_KEYS, decision_from_record, encode_patient, read_dataset_file
from .files import (
    NOFOLLOW,
    FileIdentity,
    fsync_dir,
    hold,
    identity,
    lock_for,
    new_file_mode,
    remove_stale_temps,
    write_atomic,
)

__all__ = [
    "Journal",
    "JournalledFile",
    "Watermark",
    "apply_record",
    "journal_path",
    "read_watermark",
    "start_new_file",
    "watermark_path",
    "write_watermark",
]


def journal_path(dataset_path: Path) -> Path:
    """Journal file of a dataset: ``cohort.json`` -> ``cohort.history.jsonl`` in the same folder."""
    return dataset_path.with_name(dataset_path.stem + ".history.jsonl")


def watermark_path(dataset_path: Path) -> Path:
    """Watermark file of a dataset: ``cohort.json`` -> ``cohort.history.applied`` in the same folder."""
    return dataset_path.with_name(dataset_path.stem + ".history.applied")


class Journal:
    """An append-only JSON-lines file (created on the first append, 0600 or 0640 as its folder allows)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def stat(self) -> tuple[int | None, int]:
        """Inode (None if the file does not exist yet) and size: one ``os.stat``."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None, 0
        return st.st_ino, st.st_size

    def append(self, record: dict[str, Any]) -> int:
        """Append one record and fsync it; return the offset just after it. Hold the journal's lock."""
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"
        created = not self.path.exists()
        mode = new_file_mode(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | NOFOLLOW, mode)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # end the fragment of a writer killed mid-append
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        return size + len(line)

    def read(self, start: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Records of the complete lines from byte ``start`` on (unreadable ones skipped), and their end."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(start)
                data = handle.read()
        except FileNotFoundError:
            return [], start
        cut = data.rfind(b"\n") + 1
        records = []
        for raw in data[:cut].split(b"\n"):
            try:
                record = json.loads(raw) if raw.strip() else None
            except ValueError:
                continue
            if (
                isinstance(record, dict)
                and isinstance(record.get("patient"), str)
                and record.get("phase") in COMMENT_KEYS
                and isinstance(record.get("new"), dict)
            ):
                records.append(record)
        return records, start + cut

    def records(self) -> list[dict[str, Any]]:
        """Every readable record, oldest first."""
        return self.read(0)[0]


@dataclass(frozen=True)
class Watermark:
    """The dataset file holds every save of the journal before byte ``offset``.

    ``file``: identity of the dataset file as cmrqc_widgets wrote or read it at that offset (None:
    unknown); another identity means another program changed the file since. ``journal``: the
    journal's inode (None: unknown). ``merged``: how many times edits by other programs were merged
    into the file; a view holding as many needs not re-read a file another process wrote.
    """

    offset: int
    file: FileIdentity | None = None
    journal: int | None = None
    merged: int = 0

    def start(self, journal: Journal) -> int:
        """Where in ``journal`` the saves not yet in the dataset file begin."""
        inode, size = journal.stat()
        if size < self.offset or (self.journal is not None and inode is not None and inode != self.journal):
            return 0  # a journal only grows: this is another one, all of it new
        return self.offset


def read_watermark(path: Path) -> Watermark | None:
    """The watermark in ``path``; None if there is none; offset 0 (replay it all) if unreadable."""
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return Watermark(0)
    try:
        file = obj.get("file")
        ident = (int(file[0]), int(file[1]), int(file[2]), int(file[3])) if file else None
        journal = int(obj["journal"]) if obj.get("journal") is not None else None
        return Watermark(max(int(obj["offset"]), 0), ident, journal, int(obj.get("merged", 0)))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return Watermark(0)


def write_watermark(path: Path, mark: Watermark) -> None:
    """Write ``mark`` atomically."""
    file = list(mark.file) if mark.file else None
    text = json.dumps({"offset": mark.offset, "journal": mark.journal, "file": file, "merged": mark.merged})
    write_atomic(path, text + "\n", what="Watermark file")


def start_new_file(path: Path) -> None:
    """Record that the new dataset file ``path`` holds nothing of an older journal of that name."""
    inode, size = Journal(journal_path(path)).stat()
    old = read_watermark(watermark_path(path))
    write_watermark(
        watermark_path(path), Watermark(size, identity(path), inode, old.merged + 1 if old else 1)
    )


def apply_record(data: dict[str, dict[str, Any]], record: dict[str, Any]) -> None:
    """Apply one journal line to ``data``. Patient objects are replaced, never changed in place."""
    new = decision_from_record(record["new"])
    if new is None:
        return
    patient, field, value = record["patient"], COMMENT_KEYS[record["phase"]], new.encode()
    obj = data.get(patient)
    if obj is None or obj.get(field) != value:
        data[patient] = {**(obj or {}), field: value}


def _pause(i: int) -> None:
    # Long Python loops may run in a background thread beside a save: hand the GIL over now and
    # then, or the save waits up to a switch interval (5 ms) after each of its system calls.
    if i % 2000 == 1999:
        time.sleep(0.00005)


class JournalledFile:
    """A dataset file, its journal and watermark, and the view of them readers use.

    Attributes
    ----------
    data : dict
        Patient -> object: the file's, with the journal after the watermark applied. Objects are
        replaced, never changed in place; read under ``mutex`` when iterating.
    on_pending : callable or None
        Called when a (re)load finds saves the file does not hold yet.

    Locks, always taken in this order: ``journal_lock`` (appends), ``lock`` (loads and
    rewrites of the dataset file), ``mutex`` (the view, in this process); never a file lock while
    holding ``mutex``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.journal = Journal(journal_path(path))
        self.mark_path = watermark_path(path)
        self.make_locks()
        self.data: dict[str, dict[str, Any]] = {}
        self.on_pending: Callable[[], None] | None = None
        self._chunks: dict[str, tuple[dict[str, Any], str]] = {}  # patient -> (object, its encoding)
        self._pos = 0  # journal bytes applied to data
        self._base: FileIdentity | None = None  # a version of the dataset file whose content data holds
        self._merged: int | None = None  # Watermark.merged that data holds; None: unknown
        with hold(self.lock):
            remove_stale_temps(self.path)
            remove_stale_temps(self.mark_path)
            self._load()

    def make_locks(self) -> None:
        """Fresh locks (also after a fork)."""
        self.lock = lock_for(self.path)
        self.journal_lock = lock_for(self.journal.path)
        self.mutex = threading.RLock()

    def _load(self) -> None:
        # Read the file and replay the journal after the watermark; `lock` held.
        base = identity(self.path)  # before reading: a change in between only costs a re-read
        data = read_dataset_file(self.path)
        mark = read_watermark(self.mark_path)
        # No watermark: nothing was ever saved journal-first, so the file holds the whole journal.
        start = self.journal.stat()[1] if mark is None else mark.start(self.journal)
        records, end = self.journal.read(start)
        chunks = self._chunks
        for i, (patient, obj) in enumerate(data.items()):
            cached = chunks.get(patient)
            if cached is not None and cached[0] == obj:
                data[patient] = cached[0]  # the same object keeps its encoding
            _pause(i)
        for record in records:
            apply_record(data, record)
        if mark is None or mark.file != base:
            mark = self._adopt(mark, base)
        with self.mutex:
            # Saves applied to the old view after `end` are in the journal: the next catch-up re-applies them.
            self.data, self._pos, self._base = data, end, base
            self._merged = mark.merged if mark is not None and mark.file == base else None
        if records and self.on_pending is not None:
            self.on_pending()

    def _adopt(self, mark: Watermark | None, base: FileIdentity | None) -> Watermark | None:
        # Record file `base` (edited by another program, or never rewritten) as one more merge:
        # processes that have not read it will, later ones need not.
        if mark is None:
            inode, size = self.journal.stat()
            adopted = Watermark(size, base, inode, 1)
        else:
            adopted = Watermark(mark.offset, base, mark.journal, mark.merged + 1)
        try:
            write_watermark(self.mark_path, adopted)
        except DatasetError:
            return mark  # a folder we may only read; a save will say so
        return adopted

    def refresh(self) -> None:
        """Re-read the dataset file and the journal."""
        with hold(self.lock):
            self._load()

    def catch_up(self) -> bool:
        """Apply journal lines written since the last look (one ``os.stat`` if none); False if it shrank."""
        size = self.journal.stat()[1]
        if size == self._pos:
            return True
        with self.mutex:
            if size < self._pos:
                return False
            records, self._pos = self.journal.read(self._pos)
            for record in records:
                apply_record(self.data, record)
        return True

    def _known(self, now: FileIdentity | None, mark: Watermark | None) -> bool:
        # Whether data (once caught up with the journal) holds everything in file version `now`.
        if now is not None and now == self._base:
            return True
        return now is not None and mark is not None and mark.file == now and mark.merged == self._merged

    def current(self) -> dict[str, dict[str, Any]]:
        """The view, with every acknowledged save and any edit another program made to the file."""
        now = identity(self.path)
        if now is None or now != self._base:
            if self._known(now, read_watermark(self.mark_path)):
                self._base = now
            else:
                self.refresh()  # an edit by the old app, say; or a corrupt file: DatasetError
        if not self.catch_up():
            self.refresh()  # someone replaced the journal
        return self.data

    def append(self, build: Callable[[dict[str, dict[str, Any]]], dict[str, Any]]) -> dict[str, Any]:
        """Append the record ``build(data)`` returns, fsynced, to the journal and apply it; return it.

        ``build`` runs with the view up to date and no other writer able to slip in.
        """
        if not self.mark_path.exists():
            with hold(self.lock):  # first journal-first save: the file holds the journal so far
                if read_watermark(self.mark_path) is None:
                    self._adopt(None, None)
        self.current()
        with hold(self.journal_lock):
            if not self.catch_up():
                self.refresh()
            with self.mutex:
                self.catch_up()
                record = build(self.data)
                self._pos = self.journal.append(record)
                apply_record(self.data, record)
        return record

    def up_to_date(self) -> bool:
        """Whether the dataset file holds every save in the journal (cheap; no lock)."""
        mark = read_watermark(self.mark_path)
        return mark is not None and mark.start(self.journal) >= self.journal.stat()[1]

    def rewrite(self) -> None:
        """Bring the dataset file up to date with the journal, merging others' edits, if it is behind."""
        with hold(self.lock):
            now, mark = identity(self.path), read_watermark(self.mark_path)
            if not self._known(now, mark) or not self.catch_up():
                self._load()  # the file holds edits the view lacks: merge them with the journal
                mark = read_watermark(self.mark_path)
            with self.mutex:
                self.catch_up()
                items, pos = list(self.data.items()), self._pos
            if mark is not None and mark.start(self.journal) >= pos:
                return  # the file holds every save (and maybe edits by others, which stay)
            chunks, parts = self._chunks, []
            for i, (patient, obj) in enumerate(items):
                cached = chunks.get(patient)
                if cached is None or cached[0] is not obj:
                    cached = chunks[patient] = (obj, encode_patient(patient, obj))
                parts.append(cached[1])
                _pause(i)
            write_atomic(self.path, "{\n" + ",\n".join(parts) + "\n}" if parts else "{}")
            written = identity(self.path)
            merged = self._merged if self._merged is not None else (mark.merged + 1 if mark else 1)
            write_watermark(self.mark_path, Watermark(pos, written, self.journal.stat()[0], merged))
            with self.mutex:
                self._base, self._merged = written, merged
