"""Prepare the neighbours' cases in the background, so a patient switch only sends bytes.

The case cache reads the next and previous patients' files ahead (``CaseCache.prefetch``, asked
from this thread too: finding a folder's layout touches the disk); the :class:`Prefetcher` goes
one step further in its own thread: it takes each neighbour case from the cache and runs the
registered tasks on it, e.g. packing the volume for the slice viewer and
extracting the 3D points. A switch then finds the result ready (:meth:`Prefetcher.take`), waits
for it if it is being computed, or computes it itself when the reviewer was faster than the
prefetch. Results are kept for the last few cases only, and only for the very case object they
were computed from (a re-read case is prepared again).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

START_DELAY = 0.03
"""Seconds the thread lets pass after a schedule before it starts: the switch that scheduled the
work is still sending its messages, and a background thread holding the GIL would slow it."""

IDLE_EXIT = 10.0
"""Seconds the thread waits for work before it ends (the next schedule starts another)."""

KEEP = 8
"""Results kept per task: current, previous and next patients, both phases, and two more. Counted per
task, so a disabled task (the collapsed 3D panel) does not let another keep twice as many: a packed
256x256x80 volume weighs ~4 MB."""


class Prefetcher:
    """One background thread preparing the neighbours' cases with registered tasks.

    Parameters
    ----------
    cache : CaseCache
        Where the cases come from (``get`` waits for the cache's own prefetch of that case).
    keep : int
        Results kept per task, least recently used dropped first.

    Attributes
    ----------
    n_prepared : dict[str, int]
        How many results each task computed in the background (tests read it).
    """

    def __init__(self, cache: Any, keep: int = KEEP) -> None:
        self.cache = cache
        self.keep = keep
        self.n_prepared: dict[str, int] = {}
        self._tasks: dict[str, tuple[Callable[[Any], Any], Callable[[], bool]]] = {}
        self._cv = threading.Condition()
        self._todo: list[tuple[Path, str]] = []
        self._reads: list[tuple[Path, tuple[str, ...]]] = []
        self._layout: Any = None
        self._start_at = 0.0
        self._results: OrderedDict[tuple[str, str, str], tuple[weakref.ref[Any], Any]] = OrderedDict()
        self._running: tuple[str, str, str] | None = None
        self._working = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.on_prepared: Callable[[str], None] | None = None
        """Called with the task's name, from the background thread, after each result it keeps."""

    def add_task(
        self, name: str, function: Callable[[Any], Any], enabled: Callable[[], bool] | None = None
    ) -> None:
        """Run ``function(case)`` on every prefetched case (while ``enabled()`` is true)."""
        with self._cv:
            self._tasks[name] = (function, enabled or (lambda: True))
            self.n_prepared.setdefault(name, 0)
            self._cv.notify_all()
            self._start()

    def schedule(
        self,
        items: Iterable[tuple[Path, str]],
        layout: Any = None,
        reads: Iterable[tuple[Path, tuple[str, ...]]] = (),
    ) -> None:
        """Prepare these (patient folder, phase) cases, first first; forgets the previous list.

        ``reads`` are (folder, phases) handed to ``cache.prefetch`` first, from this thread.
        """
        with self._cv:
            self._todo = list(items)
            # What is wanted now is the most recently used: kept results of these items must not be
            # the ones the new results push out (the kept next patient, scheduled first, was).
            for patient_dir, phase in reversed(self._todo):
                for name in self._tasks:
                    key = (str(patient_dir), phase, name)
                    if key in self._results:
                        self._results.move_to_end(key)
            self._reads = list(reads)
            self._layout = layout
            self._start_at = time.monotonic() + START_DELAY
            self._cv.notify_all()
            self._start()

    def _has_work(self) -> bool:
        return bool(self._reads) or bool(self._tasks and self._todo)

    def _start(self) -> None:
        """Start the thread if there is work and none runs (call with the lock held)."""
        if self._has_work() and (self._thread is None or not self._thread.is_alive()):
            self._closed = False
            self._thread = threading.Thread(target=self._run, name="cmrqc-prepare", daemon=True)
            self._thread.start()

    def take(self, name: str, case: Any, patient_dir: Path, phase: str) -> Any | None:
        """The result of task ``name`` for ``case``: ready, waited for, or None (compute it yourself)."""
        key = (str(patient_dir), phase, name)
        with self._cv:
            while self._running == key:
                self._cv.wait()
            entry = self._results.get(key)
            if entry is not None and entry[0]() is case:
                self._results.move_to_end(key)
                return entry[1]
        return None

    def put(self, name: str, case: Any, patient_dir: Path, phase: str, value: Any) -> None:
        """Keep a result computed on the main thread (going back to a patient finds it)."""
        with self._cv:
            self._store((str(patient_dir), phase, name), case, value)

    def ready(self, name: str, items: Iterable[tuple[Path, str]]) -> list[Any]:
        """Results of task ``name`` already kept for these (patient folder, phase), in order; no waiting.

        Only results whose case is still alive (in the case cache, or shown) are returned.
        """
        with self._cv:
            found = []
            for patient_dir, phase in items:
                entry = self._results.get((str(patient_dir), phase, name))
                if entry is not None and entry[0]() is not None:
                    found.append(entry[1])
            return found

    def ready_case(self, name: str, patient_dir: Path, phase: str) -> tuple[Any, Any] | None:
        """(case, result) of task ``name`` kept for this patient folder and phase, or None; no waiting."""
        with self._cv:
            entry = self._results.get((str(patient_dir), phase, name))
            case = entry[0]() if entry is not None else None
            return None if case is None else (case, entry[1])

    def busy(self) -> bool:
        """True while there is work left."""
        with self._cv:
            return self._has_work() or self._working

    def wait(self, timeout: float = 30.0) -> bool:
        """Block until the list is done (tests, benchmarks); False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._has_work() and not self._working, timeout)

    def clear(self) -> None:
        """Forget every result and the pending list."""
        with self._cv:
            self._todo = []
            self._reads = []
            self._results.clear()

    def close(self) -> None:
        """Stop the thread (pending work is dropped)."""
        with self._cv:
            self._closed = True
            self._todo = []
            self._reads = []
            self._results.clear()
            self._cv.notify_all()

    # ------------------------------------------------------------------------------------------
    def _store(self, key: tuple[str, str, str], case: Any, value: Any) -> None:
        self._results[key] = (weakref.ref(case), value)
        self._results.move_to_end(key)
        same_task = [k for k in self._results if k[2] == key[2]]  # least recently used first
        for old in same_task[: max(0, len(same_task) - self.keep)]:
            del self._results[old]

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._has_work() and not self._closed:
                    self._working = False
                    self._cv.notify_all()
                    if not self._cv.wait(IDLE_EXIT) and not self._has_work():
                        self._thread = None  # idle: end (a forgotten screen can be collected)
                        return
                if self._closed:
                    self._working = False
                    self._cv.notify_all()
                    return
                self._working = True
                delay = self._start_at - time.monotonic()
                if delay > 0:
                    self._cv.wait(delay)  # a new schedule moves the start again: check afresh
                    continue
                reads, self._reads = self._reads, []
                layout = self._layout
                patient_dir, phase = self._todo.pop(0) if not reads else (None, "")
                self._working = True
            if reads:
                for folder, phases in reads:
                    with contextlib.suppress(Exception):  # errors come back on the reviewer's get()
                        self.cache.prefetch(folder, phases, layout)
                continue
            try:
                case = self.cache.get(patient_dir, phase, layout)
            except Exception:  # shown (with its sentence) when the reviewer gets there
                continue
            for name, (function, enabled) in list(self._tasks.items()):
                key = (str(patient_dir), phase, name)
                with self._cv:
                    entry = self._results.get(key)
                    if self._closed or not enabled() or (entry is not None and entry[0]() is case):
                        continue
                    self._running = key
                try:
                    value = function(case)
                except Exception:
                    log.debug("Preparing %s %s (%s) failed", patient_dir, phase, name, exc_info=True)
                    value = None
                with self._cv:
                    self._running = None
                    if value is not None:
                        self._store(key, case, value)
                        self.n_prepared[name] += 1
                    self._cv.notify_all()
                if value is not None and self.on_prepared is not None:
                    with contextlib.suppress(Exception):  # a listener's failure never stops the prefetch
                        self.on_prepared(name)
            del case
