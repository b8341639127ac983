"""A thread-safe, size-bounded LRU cache of decoded cases, with background prefetch.

A reviewer moves back and forth between a few patients; :class:`CaseCache` keeps the decoded
arrays of the last few in memory (bounded in bytes, not in cases: one super-resolved 256x256x80
case weighs as much as eleven 200x200x12 ones) and reads the neighbours in background threads, so
a move to a prefetched case costs a dictionary look-up. :meth:`CaseCache.get_phases` reads both
phases of a patient at once, one in the calling thread and the other on the pool (gunzip releases
the GIL), so a cold patient costs about one phase's read, not two.

Memory freed is memory returned: a kernel that reads, packs and drops tens of megabytes per
patient from several threads fragments glibc's heap (a 256x256x80 review held ~700 MB after 50
patients, of which ~330 MB were live). :func:`return_freed_memory` makes every block of
:data:`MMAP_THRESHOLD` bytes or more its own mapping, given back to the system when freed.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from pathlib import Path

from ..names import PHASES, check_phase
from .layouts import Layout, get_layout
from .reader import Case, emit_warnings, read_case

MMAP_THRESHOLD = 1 << 20
"""Blocks of this many bytes or more (a slice of a large volume, every whole volume) are mapped
on their own by :func:`return_freed_memory`; glibc's own threshold grows to 32 MB as the program
frees large blocks, after which whole volumes come from the fragmenting heap."""

_M_MMAP_THRESHOLD = -3  # mallopt parameter number, glibc malloc.h


def return_freed_memory(threshold: int = MMAP_THRESHOLD) -> bool:
    """Have glibc map blocks of ``threshold`` bytes or more on their own, so freeing returns them.

    Process-wide and idempotent; the review state calls it for its kernel. Returns False where
    it does not apply (not Linux with glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
        return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False


class CaseCache:
    """A thread-safe, size-bounded LRU cache of decoded cases, with background prefetch.

    Parameters
    ----------
    max_mb : float
        Budget for the image and label arrays held, in MB (1e6 bytes). The least recently used
        cases are evicted beyond it; the case loaded last is always kept.
    workers : int
        Background threads for :meth:`prefetch` and :meth:`get_phases` (gzip decompression releases
        the GIL).

    Notes
    -----
    Cases are keyed by (resolved patient folder, phase, layout). A ``get`` of a case being
    prefetched waits for that read instead of starting another; failures are never cached, so a
    fixed file loads on the next ``get``. Detected layouts are remembered per folder.
    """

    def __init__(self, max_mb: float = 512, workers: int = 2) -> None:
        self.max_bytes = int(max_mb * 1e6)
        self.workers = max(1, int(workers))
        self._lock = threading.Lock()
        self._cases: OrderedDict[tuple, Case] = OrderedDict()
        self._pending: dict[tuple, Future] = {}
        self._layouts: OrderedDict[Path, Layout] = OrderedDict()
        self._unannounced: set[tuple] = set()  # prefetched cases whose warnings get() has not emitted
        self._nbytes = 0
        self._generation = 0
        self._executor: ThreadPoolExecutor | None = None

    def _resolve(self, patient_dir: str | Path, layout: str | Layout | None) -> tuple[Path, Layout]:
        path = Path(patient_dir).expanduser().resolve()
        if layout is not None:
            return path, get_layout(layout)
        with self._lock:
            found = self._layouts.get(path)
        if found is None:
            found = get_layout(None, path)
            with self._lock:
                self._layouts[path] = found
                if len(self._layouts) > 10_000:
                    self._layouts.popitem(last=False)
        return path, found

    def _run(self, key: tuple, future: Future, generation: int, background: bool = False) -> Case:
        path, phase, layout = key
        try:
            case = read_case(path, phase, layout)
        except BaseException as exc:
            with self._lock:
                if self._pending.get(key) is future:
                    del self._pending[key]
            future.set_exception(exc)
            raise
        with self._lock:
            if generation == self._generation:
                self._store(key, case)
            if background and case.warnings:
                self._unannounced.add(key)
            if self._pending.get(key) is future:
                del self._pending[key]
        future.set_result(case)
        return case

    def _store(self, key: tuple, case: Case) -> None:
        old = self._cases.pop(key, None)
        if old is not None:
            self._nbytes -= old.nbytes
        self._cases[key] = case
        self._nbytes += case.nbytes
        while self._nbytes > self.max_bytes and len(self._cases) > 1:
            evicted_key, evicted = self._cases.popitem(last=False)
            self._nbytes -= evicted.nbytes
            self._unannounced.discard(evicted_key)

    def get(self, patient_dir: str | Path, phase: str, layout: str | Layout | None = None) -> Case:
        """The case, from the cache, from an in-flight prefetch, or read now.

        Raises
        ------
        CaseError
            As :func:`load_case` (also the error of a failed prefetch of this case).
        """
        phase = check_phase(phase)
        path, found = self._resolve(patient_dir, layout)
        key = (path, phase, found)
        while True:
            with self._lock:  # one decision under the lock: cached, in flight, or ours to read
                case = self._cases.get(key)
                future = self._pending.get(key) if case is None else None
                owner = case is None and future is None
                if case is not None:
                    self._cases.move_to_end(key)
                elif owner:
                    future = Future()
                    future.set_running_or_notify_cancel()
                    self._pending[key] = future
                    generation = self._generation
            if owner:
                case = self._run(key, future, generation)
                emit_warnings(case)
                return case
            if case is None:
                try:
                    case = future.result()
                except CancelledError:
                    with self._lock:
                        if self._pending.get(key) is future:
                            del self._pending[key]
                    continue
            with self._lock:
                announce = key in self._unannounced
                self._unannounced.discard(key)
            if announce:
                emit_warnings(case)
            return case

    def get_phases(
        self, patient_dir: str | Path, phases: Iterable[str] = PHASES, layout: str | Layout | None = None
    ) -> tuple[Case, ...]:
        """Every phase of a patient (ED and ES by default), read in parallel where not cached.

        The phases after the first are started on the background pool, the first is read in the
        calling thread, then the others are awaited, so the wall time is about one phase's read.

        Raises
        ------
        CaseError
            As :meth:`get`, for the first phase (in ``phases`` order) that fails.
        """
        phases = [check_phase(phase) for phase in phases]
        self.prefetch(patient_dir, phases[1:], layout)
        return tuple(self.get(patient_dir, phase, layout) for phase in phases)

    def prefetch(
        self, patient_dir: str | Path, phases: Iterable[str] = PHASES, layout: str | Layout | None = None
    ) -> None:
        """Start reading ``phases`` of a patient in the background; return at once.

        Errors (including a folder with no known layout) are swallowed here and raised by the
        next :meth:`get` of that case.
        """
        try:
            path, found = self._resolve(patient_dir, layout)
            keys = [(path, check_phase(phase), found) for phase in phases]
        except Exception:
            return
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="cmrqc-prefetch")
            for key in keys:
                if key in self._cases:
                    self._cases.move_to_end(key)
                elif key not in self._pending:
                    future: Future = Future()
                    self._pending[key] = future
                    self._executor.submit(self._background, key, future, self._generation)

    def _background(self, key: tuple, future: Future, generation: int) -> None:
        if not future.set_running_or_notify_cancel():
            return
        with contextlib.suppress(BaseException):  # kept in the future, raised by get()
            self._run(key, future, generation, background=True)

    def clear(self) -> None:
        """Forget every cached case, detected layout and pending prefetch (in-flight reads are dropped)."""
        self._reset(stop=False)

    def close(self) -> None:
        """Clear the cache and stop the background threads (a later prefetch starts new ones)."""
        self._reset(stop=True)

    def _reset(self, stop: bool) -> None:
        with self._lock:
            self._generation += 1
            self._cases.clear()
            self._layouts.clear()
            self._unannounced.clear()
            self._nbytes = 0
            pending, self._pending = self._pending, {}
            executor = self._executor
            if stop:
                self._executor = None
        for future in pending.values():
            future.cancel()  # only those not started; get() then reads the case itself
        if stop and executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    @property
    def nbytes(self) -> int:
        """Bytes of the cached image and label arrays."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._cases)

    def __contains__(self, item: object) -> bool:
        """``(patient_dir, phase)`` or ``(patient_dir, phase, layout)`` is cached (no detection, no I/O)."""
        if not isinstance(item, tuple) or len(item) not in (2, 3):
            return False
        path = Path(item[0]).expanduser().resolve()
        phase = str(item[1]).upper()
        with self._lock:
            if len(item) == 3:
                try:
                    return (path, phase, get_layout(item[2])) in self._cases
                except Exception:
                    return False
            return any(k[0] == path and k[1] == phase for k in self._cases)
