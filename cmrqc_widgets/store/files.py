"""Files that are never seen half-written: atomic replacement and the locks writers share.

:func:`write_atomic` writes a temp file in the same folder, fsyncs it, ``os.replace``s it over the
target and fsyncs the folder, so a reader or a crash sees the old file or the new one, never a part.
:func:`lock_for` gives the ``<file>.lock`` every writer of the same file takes; :func:`hold` takes
it with a timeout and turns a failure into one sentence (:class:`DatasetError`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import DatasetError

__all__ = [
    "LOCK_TIMEOUT",
    "NOFOLLOW",
    "check_writable",
    "fsync_dir",
    "hold",
    "identity",
    "lock_for",
    "new_file_mode",
    "remove_stale_temps",
    "utc_now",
    "write_atomic",
]

LOCK_TIMEOUT = 30.0
"""Seconds to wait for another writer's lock before giving up with :class:`DatasetError`."""


FileIdentity = tuple[int, int, int, int]


def new_file_mode(folder: Path) -> int:
    """Mode of a new file in ``folder``: 0600, plus group read if the folder is group-readable.

    A reviewer's folder is 0700, so their files stay theirs; an admin who opens a folder to a
    group of leads (``chgrp leads; chmod 750``) makes the files created in it readable to them
    too, which is how a lead's read-only access is granted in production.
    """
    try:
        group_read = os.stat(folder).st_mode & 0o040
    except OSError:
        group_read = 0
    return 0o600 | group_read


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def utc_now() -> str:
    """Current time in UTC as an ISO 8601 string with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def identity(path: Path) -> FileIdentity | None:
    """What tells one version of a file from another: inode, size, mtime and ctime (ns); None if absent."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def check_writable(path: Path, what: str = "Dataset file") -> None:
    """Refuse (:class:`DatasetError`, one sentence) a read-only ``path`` or a read-only folder around it.

    The permission bits are read explicitly: root may write anything, yet an admin who made a file
    read-only (``chmod 444``) means it must not change, whoever runs the tool.
    """
    for target, name in ((path, what), (path.parent, "Folder")):
        try:
            mode = os.stat(target).st_mode
        except FileNotFoundError:
            continue
        if not mode & 0o222 or not os.access(target, os.W_OK):
            raise DatasetError(f"{name} {target} is read-only; nothing was saved.")


def write_atomic(path: Path, text: str, what: str = "Dataset file") -> None:
    """Write ``text`` to ``path``: temp file in the same folder, fsync, ``os.replace``, fsync the folder.

    The file keeps its permission bits; a new one gets :func:`new_file_mode`. Failures raise
    :class:`DatasetError` starting with ``what`` and the path.
    """
    folder = path.parent
    check_writable(path, what)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise DatasetError(f"{what} {path} cannot be written ({error.strerror}).") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            try:
                os.fchmod(handle.fileno(), os.stat(path).st_mode & 0o7777)
            except FileNotFoundError:
                os.fchmod(handle.fileno(), new_file_mode(folder))
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise DatasetError(f"{what} {path} cannot be written ({error.strerror}).") from None
        raise
    fsync_dir(folder)


def remove_stale_temps(path: Path) -> None:
    """Remove the temp files a killed writer of ``path`` left; only call with its lock held."""
    prefix = f".{path.name}."
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


@contextlib.contextmanager
def hold(lock: FileLock) -> Iterator[None]:
    """Hold ``lock``; :class:`DatasetError` naming the lock file after :data:`LOCK_TIMEOUT` seconds."""
    try:
        lock.acquire()
    except Timeout:
        raise DatasetError(
            f"Lock file {lock.lock_file} has been held by another writer for more than "
            f"{LOCK_TIMEOUT:.0f} s; nothing was written."
        ) from None
    except OSError as error:
        raise DatasetError(f"Lock file {lock.lock_file} cannot be taken ({error.strerror}).") from None
    try:
        yield
    finally:
        lock.release()


def lock_for(path: Path) -> FileLock:
    """The lock of file ``path``: ``<name>.lock`` beside it. Two objects or threads exclude each other."""
    # The lock file's mode follows the folder's, like the data files (filelock's default is 0644).
    lock = path.with_name(path.name + ".lock")
    return FileLock(lock, timeout=LOCK_TIMEOUT, poll_interval=0.002, mode=new_file_mode(path.parent))
