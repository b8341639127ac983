"""Triage in the review screen: the current case's metrics, and suspicion for the whole dataset.

Where the numbers come from
---------------------------
- **The metrics strip** of the current patient: both phases measured in a background thread the
  first time the patient is shown, and kept for the session. The phases come from the review
  screen's case cache, where the prefetch has put them anyway, and go through
  :func:`cmrqc_widgets.qc.metrics.case_metrics`; when a phase cannot be read,
  :func:`cmrqc_widgets.qc.metrics.metrics_for_patient` names the failure in its own words. A patient
  switch never waits for it: the strip says "measuring…" and fills a moment later.
- **Suspicion of the whole dataset** (the order "most suspicious first" and the filter "flagged"):
  read from ``<dataset stem>.metrics.csv`` next to the dataset file in the reviewer's folder
  when ``cmrqc metrics`` wrote one there, e.g.
  ``cmrqc metrics cohort.json --out ~/cmrqc/users/alice/cohort.metrics.csv``; every patient that
  file does not cover is measured in the background, once per dataset and session, while the
  reviewer works. The thread steps aside while the neighbours are prefetched and just after each
  patient move, so it never slows a switch. Until every patient is known the screen says
  "computing suspicion… n/N"; then the queue is re-sorted.

Threads never touch traits or widgets. Their results are handed to the main thread: inside a
kernel through its event loop (between two messages); elsewhere on the next :meth:`Triage.apply`,
which the review state calls on every patient move and :meth:`Triage.wait` calls after joining
the worker (scripts and tests).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traitlets import Any as AnyTrait
from traitlets import Bool, HasTraits, Int, Unicode

from ..names import PHASES
from ..qc.metrics import Thresholds, case_metrics
from .kernel import kernel_scheduler
from .summary import CaseSummary, measure, metrics_csv_for

log = logging.getLogger(__name__)

PAUSE_AFTER_MOVE = 0.3
"""Seconds the dataset-wide measuring stays out of the way after each patient move."""

IDLE_EXIT = 10.0
"""Seconds a worker thread waits for work before it ends (a new request starts another)."""

APPLY_EVERY = 0.25
"""Inside a kernel, results of the dataset-wide measuring reach the screen at most this often."""


@dataclass(frozen=True)
class _Result:
    generation: int
    items: list[tuple[str, CaseSummary]]
    last: bool = False
    source: str | None = None


class Triage(HasTraits):
    """Metrics of the current patient and suspicion of the open dataset, measured off the hot path.

    Parameters
    ----------
    layout : str or Layout, optional
        File layout of the cases (detected per patient when omitted).
    thresholds : Thresholds, optional
        Limits of the automatic checks.
    busy : callable, optional
        Returns True while more urgent background work runs (the neighbours' prefetch); the
        dataset-wide measuring waits for it.
    cache : CaseCache, optional
        Where the current patient's phases are taken from for the strip (read again otherwise).
    schedule : callable or None or "auto"
        How results reach the main thread (see
        :func:`~cmrqc_widgets.widgets.kernel.kernel_scheduler`); "auto" detects a kernel.
    """

    done = Int(0, help="Patients of the open dataset whose suspicion is known.")
    total = Int(0, help="Patients of the open dataset.")
    ready = Bool(False, help="Every patient's suspicion is known (the queue uses all of them).")
    source = Unicode("", help="Where the suspicion comes from, in words.")
    current_patient = Unicode("", help="Key of the patient the strip is about.")
    current = AnyTrait(None, allow_none=True, help="CaseSummary of current_patient; None while measuring.")
    serial = Int(0, help="Increments when `current` or the published ranking changes.")

    def __init__(
        self,
        layout: Any = None,
        thresholds: Thresholds | None = None,
        busy: Callable[[], bool] | None = None,
        schedule: Any = "auto",
        cache: Any = None,
    ) -> None:
        super().__init__()
        self.layout = layout
        self.thresholds = thresholds
        self._busy = busy or (lambda: False)
        self.cache = cache
        self._schedule = kernel_scheduler() if schedule == "auto" else schedule
        self.batch: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext
        self.on_publish: Callable[[], None] = lambda: None
        self.n_measured = 0

        self._summaries: dict[str, CaseSummary] = {}
        self._known: set[str] = set()  # measured or read by the worker (applied or not yet)
        self._keys: list[str] = []
        self._key_set: set[str] = set()
        self._ranking: list[int] = []
        self._flagged: set[int] = set()
        self._generation = 0

        self._cv = threading.Condition()
        self._priority: list[tuple[str, Path]] = []
        self._scan: Iterator[None] | None = None
        self._scan_fresh = False  # its first step (reading a metrics CSV) goes before the strip's request
        self._results: list[_Result] = []
        self._working = False
        self._apply_pending = False
        self._quiet_until = 0.0
        self._hurry = False
        self._closed = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------
    # what the state calls
    def start(
        self, keys: Sequence[str], patient_dir: Callable[[str], Path | None], dataset_path: Path | None
    ) -> None:
        """Begin the dataset-wide suspicion of a newly opened dataset (replacing any other).

        ``patient_dir(key)`` is None for a patient whose folder is refused: it is never measured.
        """
        self._generation += 1
        self._keys = list(keys)
        self._key_set = set(self._keys)
        csv_path = metrics_csv_for(dataset_path) if dataset_path is not None else None
        with self.hold_trait_notifications():
            self.total = len(self._keys)
            self.done = sum(key in self._summaries for key in self._keys)
            self.ready = False
            self.source = ""
        self._publish(notify=False)
        scan = self._scan_steps(self._generation, list(self._keys), patient_dir, csv_path)
        with self._cv:
            self._scan = scan if self._keys else None
            self._scan_fresh = True
            self._cv.notify_all()
        if self._keys:
            self._ensure_thread()
        else:
            self.ready = True

    def show(self, key: str, patient_dir: Path | None) -> None:
        """The reviewer moved to patient ``key``: show its summary, or measure it first (cheap)."""
        self._quiet_until = time.monotonic() + PAUSE_AFTER_MOVE
        if self._schedule is None:
            self.apply()
        summary = self._summaries.get(key) if key else None
        with self.hold_trait_notifications():
            self.current_patient = key
            self.current = summary
            self.serial += 1
        if summary is None and key and patient_dir is not None:
            with self._cv:
                if all(k != key for k, _ in self._priority):
                    self._priority.insert(0, (key, patient_dir))
                self._cv.notify_all()
            self._ensure_thread()

    def forget(self, keys: Sequence[str] | None = None) -> None:
        """Drop the measurements of ``keys`` (default all), e.g. after segmentations were redone.

        They are measured again when shown, and on the next opening of their dataset.
        """
        with self._cv:
            dropped = set(self._summaries) if keys is None else set(keys)
            self._known -= dropped
            for key in dropped:
                self._summaries.pop(key, None)

    def summary(self, key: str) -> CaseSummary | None:
        """The summary of patient ``key`` when known."""
        return self._summaries.get(key)

    def ranking(self) -> list[int]:
        """Patient indices of the open dataset, most suspicious first, as last published."""
        return self._ranking

    @property
    def n_flagged(self) -> int:
        """Patients with a failed check when the suspicion was last published."""
        return len(self._flagged)

    def is_flagged(self, index: int) -> bool:
        """Whether patient ``index`` had a failed check when the suspicion was last published."""
        return index in self._flagged

    def publish(self) -> None:
        """Re-rank the patients with what is known now (the order and filter use this snapshot)."""
        self._publish(notify=True)

    def wait(self, timeout: float = 60.0, scan: bool = True) -> bool:
        """Block until the current patient (and, with ``scan``, the whole dataset) is measured.

        Then apply the results on this thread. Returns False on timeout. For scripts and tests;
        in a kernel the results arrive by themselves.
        """
        deadline = time.monotonic() + timeout
        self._hurry = True
        try:
            with self._cv:
                while self._priority or self._working or (scan and self._scan is not None):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(min(left, 0.05))
                idle = not (self._priority or self._working or (scan and self._scan is not None))
        finally:
            self._hurry = False
        self.apply()
        return idle

    def apply(self) -> bool:
        """Take the worker's results into the traits (main thread only); True if anything changed."""
        with self._cv:
            results, self._results = self._results, []
            self._apply_pending = False
        if not results:
            return False
        finished = False
        done = self.done
        source = None
        for result in results:
            for key, summary in result.items:
                if key not in self._summaries and key in self._key_set:
                    done += 1
                self._summaries[key] = summary
            if result.generation == self._generation:
                finished |= result.last
                source = result.source if result.source is not None else source
        with self.batch(), self.hold_trait_notifications():
            self.done = min(done, self.total)
            if source is not None:
                self.source = source
            current = self._summaries.get(self.current_patient)
            if current is not self.current:
                self.current = current
                self.serial += 1
            if finished:
                self.ready = True
                self._publish(notify=True)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker thread (pending work is dropped) and wait up to ``timeout`` s for it to end."""
        with self._cv:
            self._closed = True
            self._priority.clear()
            self._scan = None
            self._cv.notify_all()
            thread = self._thread
        # A measurement under way finishes first (tens of ms); nothing is left running after close.
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # ------------------------------------------------------------------------------------------
    def _publish(self, notify: bool) -> None:
        known = [(i, self._summaries.get(key)) for i, key in enumerate(self._keys)]
        scored = sorted((-s.suspicion, i) for i, s in known if s is not None)
        ranked = [i for _, i in scored]
        seen = set(ranked)
        self._ranking = ranked + [i for i in range(len(self._keys)) if i not in seen]
        self._flagged = {i for i, s in known if s is not None and s.flagged}
        if notify:
            self.serial += 1
            self.on_publish()

    def _ensure_thread(self) -> None:
        with self._cv:
            if self._thread is None or not self._thread.is_alive():
                self._closed = False
                self._thread = threading.Thread(target=self._run, name="cmrqc-triage", daemon=True)
                self._thread.start()

    def _post(
        self,
        generation: int,
        items: list[tuple[str, CaseSummary]],
        last: bool = False,
        urgent: bool = False,
        source: str | None = None,
    ) -> None:
        with self._cv:
            self._known.update(key for key, _ in items)
            self._results.append(_Result(generation, items, last, source))
            schedule = self._schedule is not None and not self._apply_pending
            self._apply_pending = True
        if schedule:
            self._schedule(self._apply_logged, 0.0 if urgent or last else APPLY_EVERY)

    def _apply_logged(self) -> None:
        try:
            self.apply()
        except Exception:  # a callback of the event loop: make it visible in the log
            log.exception("Showing the automatic checks failed")

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._closed and not self._priority and self._scan is None:
                    if not self._cv.wait(IDLE_EXIT) and not self._priority and self._scan is None:
                        self._thread = None  # idle: end (a forgotten screen can be collected)
                        return
                if self._closed:
                    self._working = False
                    self._cv.notify_all()
                    return
                first = self._scan_fresh and self._scan is not None
                self._scan_fresh = False
                job = self._priority.pop(0) if self._priority and not first else None
                scan = self._scan
                self._working = True
            try:
                if job is not None:
                    key, folder = job
                    if key not in self._known:
                        self._post(self._generation, [(key, self._measure_shown(key, folder))], urgent=True)
                elif scan is not None:
                    try:
                        next(scan)
                    except StopIteration:
                        with self._cv:
                            if self._scan is scan:
                                self._scan = None
            except Exception:
                log.exception("Automatic checks in the background failed")
            finally:
                with self._cv:
                    self._working = False
                    self._cv.notify_all()

    def _measure_shown(self, key: str, folder: Path) -> CaseSummary:
        """The patient on screen: its phases are in the case cache (or on their way there)."""
        if self.cache is not None:
            try:
                ed, es = (self.cache.get(folder, phase, self.layout) for phase in PHASES)
                report = case_metrics(ed, es, self.thresholds, patient=key)
            except Exception:  # unreadable: metrics_for_patient words the failed check
                pass
            else:
                self.n_measured += 1
                return CaseSummary.from_report(report)
        return self._measure(key, folder)

    def _measure(self, key: str, folder: Path) -> CaseSummary:
        self.n_measured += 1
        return measure(key, folder, self.layout, self.thresholds)

    def _step_aside(self, generation: int) -> bool:
        """Wait while the reviewer is moving or the prefetch works; False when the scan is stale."""
        while not self._hurry:
            if self._closed or generation != self._generation or self._priority:
                break
            if time.monotonic() >= self._quiet_until and not self._busy():
                break
            time.sleep(0.02)
        return not self._closed and generation == self._generation

    def _scan_steps(
        self,
        generation: int,
        keys: list[str],
        patient_dir: Callable[[str], Path | None],
        csv_path: Path | None,
    ) -> Iterator[None]:
        """One step per patient (the worker interleaves requests of the strip between steps)."""
        found: set[str] = set()
        source = ""
        if csv_path is not None and csv_path.is_file():
            from ..qc.cohort import metrics_by_patient, read_metrics

            try:
                table = metrics_by_patient(read_metrics(csv_path))
            except Exception as exc:
                log.warning("The metrics file %s could not be read (%s); measuring instead.", csv_path, exc)
                table = {}
            items = []
            for key in keys:
                folder = patient_dir(key)
                rows = (table.get(key) or table.get(str(folder))) if folder is not None else None
                if rows and key not in self._known:
                    items.append((key, CaseSummary.from_rows(rows)))
                    found.add(key)
            source = csv_path.name
            self._post(generation, items, source=source)
            yield
        todo = [k for k in keys if k not in found and k not in self._known]
        if todo:
            self._post(generation, [], source=f"{source} + measured here" if source else "measured here")
        for key in todo:
            while True:
                if not self._step_aside(generation):
                    return
                if not self._priority:
                    break
                yield  # the strip's patient first
            folder = patient_dir(key)
            if key not in self._known and folder is not None:
                self._post(generation, [(key, self._measure(key, folder))])
            yield
        self._post(generation, [], last=True)
