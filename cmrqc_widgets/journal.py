"""Files on disk: a dataset file in the old app's format, its lock, and its append-only journal.

Dataset file ``<name>.json``: one JSON object keyed by patient folder, in file order, each patient
an object holding ``"ED_Comments"`` / ``"ES_Comments"`` text (and whatever else other tools put
there, which we keep). It is read strictly (:func:`read_dataset_file` raises
:class:`~cmrqc_widgets.errors.DatasetError` naming the file) and written only as a whole, with
``indent=4`` like the old app, through :func:`write_atomic` (temp file in the same folder, fsync,
``os.replace``, fsync of the folder) while holding the lock ``<name>.json.lock``.

Journal ``<stem>.history.jsonl`` beside it (it must not end in ``.json``, so the dataset dropdown
of both tools never lists it): one self-contained JSON line per save, never rewritten::

    {"time": "2025-01-02T10:11:12.345+00:00", "user": "alice", "patient": "/data/p1",
     "phase": "ED", "previous": {"decision": null, "comment": ""},
     "new": {"decision": "accept", "comment": "fine"}, "seconds": 12.5}

A writer killed in the middle of an append can leave an unterminated last line: readers only take
lines that end in a newline, and the next append first terminates the fragment so it becomes one
unreadable line that every reader skips (the save it belonged to was never acknowledged).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from json.encoder import encode_basestring_ascii as _quote
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .errors import DatasetError

__all__ = [
    "COMMENT_KEYS",
    "LOCK_TIMEOUT",
    "Journal",
    "encode_dataset",
    "encode_patient",
    "fsync_dir",
    "hold",
    "identity",
    "journal_path",
    "lock_for",
    "read_dataset_file",
    "remove_stale_temps",
    "utc_now",
    "write_atomic",
]

COMMENT_KEYS: dict[str, str] = {"ED": "ED_Comments", "ES": "ES_Comments"}
"""Key of each phase's decision string inside a patient's object."""

LOCK_TIMEOUT = 30.0
"""Seconds to wait for another writer's lock before giving up with :class:`DatasetError`."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def journal_path(dataset_path: Path) -> Path:
    """Journal file of a dataset: ``cohort.json`` -> ``cohort.history.jsonl`` in the same folder."""
    return dataset_path.with_name(dataset_path.stem + ".history.jsonl")


def utc_now() -> str:
    """Current time in UTC as an ISO 8601 string with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


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


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder, fsync, ``os.replace``, fsync the folder.

    The file keeps its permission bits; a new file gets 0600.
    """
    folder = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise DatasetError(f"Dataset file {path} cannot be written ({error.strerror}).") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(handle.fileno(), os.stat(path).st_mode & 0o7777)
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise DatasetError(f"Dataset file {path} cannot be written ({error.strerror}).") from None
        raise
    fsync_dir(folder)


@contextlib.contextmanager
def hold(lock: FileLock, path: Path) -> Iterator[None]:
    """Hold ``lock`` (the lock of dataset file ``path``); :class:`DatasetError` after :data:`LOCK_TIMEOUT`."""
    try:
        lock.acquire()
    except Timeout:
        raise DatasetError(
            f"Dataset file {path} is locked by another writer for more than {LOCK_TIMEOUT:.0f} s "
            f"(lock file {lock.lock_file})."
        ) from None
    try:
        yield
    finally:
        lock.release()


def lock_for(path: Path) -> FileLock:
    """The lock of dataset file ``path``: ``<name>.json.lock`` beside it (never listed as a dataset)."""
    return FileLock(path.with_name(path.name + ".lock"), timeout=LOCK_TIMEOUT, poll_interval=0.002)


def remove_stale_temps(path: Path) -> None:
    """Delete temp files a killed writer of ``path`` left behind; call with the lock held."""
    prefix = f".{path.name}."
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Journal:
    """An append-only JSON-lines file.

    Parameters
    ----------
    path : Path
        The journal file; created (mode 0600) on the first append.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def size(self) -> int:
        """Current size in bytes (0 when the file does not exist yet): one ``os.stat``."""
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def append(self, record: dict[str, Any]) -> int:
        """Append one record and fsync it; return the offset just after it.

        The caller must hold the dataset lock, so no other writer appends at the same time.
        """
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # A writer died mid-append: close its fragment so our line stays whole.
                line = b"\n" + line
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
            end = size + len(line)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        return end

    def read(self, start: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Records of the complete lines from byte ``start`` on, and the offset after the last one.

        Unreadable lines (a fragment left by a killed writer) are skipped.
        """
        try:
            with open(self.path, "rb") as handle:
                handle.seek(start)
                data = handle.read()
        except FileNotFoundError:
            return [], start
        cut = data.rfind(b"\n") + 1
        return list(_parse_lines(data[:cut])), start + cut

    def records(self) -> list[dict[str, Any]]:
        """Every readable record, oldest first."""
        return self.read(0)[0]


def _parse_lines(data: bytes) -> Iterator[dict[str, Any]]:
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if (
            isinstance(record, dict)
            and isinstance(record.get("patient"), str)
            and record.get("phase") in ("ED", "ES")
            and isinstance(record.get("new"), dict)
        ):
            yield record
