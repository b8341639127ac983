"""The case on screen: loading it, preparing it for the panels, and failing loudly (a state mixin).

Guarantee: after every move, either every panel shows the patient and phase the state names, or
``case`` is None and ``error`` holds one sentence, "Could not show <patient> <phase>: <reason>.",
shown in place of the images (the decision buttons keep working for that case). Any failure
while preparing a case counts — reading its files, packing its volume for the slice viewer,
extracting its 3D points — because every preparation the panels need runs here, inside one
``try``, before ``case_serial`` tells the panels to draw. Nothing of the previous case survives.

Each load gets a new ``case_serial`` and a ``case_id`` (``"<serial>:<phase>:<patient>"``) that the
slice viewer compares with the identity of the volume it holds, in the kernel and in the browser.

The host (``ReviewState``) provides ``patient``, ``phase``, ``view``, ``slice``, ``n_slices``,
``cache``, ``layout``, ``prefetcher``, ``patient_dir()``, ``batch()`` and ``_dataset_error``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from traitlets import Any as AnyTrait
from traitlets import HasTraits, Int, Unicode

from ..errors import CaseError
from ..render.packing import CaseMismatchError, identity_text
from .queue import patient_name
from .settings import VIEWS

log = logging.getLogger(__name__)

MIN_CACHE_MB = 32.0

CASES_KEPT = 8
"""The cache holds about this many cases (current, previous and next patients, both phases, plus
two), and at least :data:`MIN_CACHE_MB`, within ``cache_mb``: small cases do not fill 160 MB."""

TASK_WORDS = {"pack": "preparing the slices failed", "points": "preparing the 3D view failed"}
"""How a failed preparation task is named in the reviewer's sentence."""


def could_not_show(patient: str, phase: str, reason: object) -> str:
    """``"Could not show <patient> <phase>: <reason>."`` as one line."""
    text = " ".join(str(reason).split()).rstrip(".") or "unknown error"
    return f"Could not show {patient_name(patient) or 'this case'} {phase}: {text}."


class CurrentCase(HasTraits):
    """The loaded case, its identity, its prepared forms and its error."""

    case = AnyTrait(None, allow_none=True, help="The loaded Case, or None when it failed.")
    case_serial = Int(0, help="Increments after every case load (also failed ones).")
    case_id = Unicode("", help="Identity of the case on screen: '<serial>:<phase>:<patient>'.")
    error = Unicode("", help="Sentence shown in the panels instead of the images ('' when fine).")

    def _init_current(self) -> None:
        self._tasks: dict[str, tuple[Callable[[Any], Any], Callable[[], bool]]] = {}
        self._results: dict[str, Any] = {}
        self._cache_limit: float | None = None

    def add_task(
        self, name: str, function: Callable[[Any], Any], enabled: Callable[[], bool] | None = None
    ) -> None:
        """Prepare every case shown with ``function(case)`` (while ``enabled()``), neighbours ahead.

        A failure of ``function`` on the case being shown fails that case (see the module
        docstring). The current case is prepared again at once.
        """
        self._tasks[name] = (function, enabled or (lambda: True))
        self.prefetcher.add_task(name, function, enabled)
        if self.case is not None:
            self.reload_case()

    def result(self, name: str) -> Any:
        """What task ``name`` prepared for the current case (None if not enabled when it loaded)."""
        return self._results.get(name)

    def prepare(self, name: str) -> Any:
        """Run task ``name`` on the current case now (e.g. the 3D panel was just opened).

        Returns its result, or None after failing the case (``error`` then says why).
        """
        if self.case is None:
            return None
        if name not in self._results:
            try:
                self._results[name] = self._prepare(name, self.case)
            except Exception as exc:
                self.fail_case(exc, name)
                return None
        return self._results[name]

    def fail_case(self, reason: object, task: str = "") -> None:
        """Drop the current case and show "Could not show ..." in every panel instead."""
        if isinstance(reason, Exception) and not isinstance(reason, CaseError):
            log.error("Showing %s %s failed", self.patient, self.phase, exc_info=reason)
            reason = f"{TASK_WORDS.get(task, 'preparing it failed')} ({type(reason).__name__}: {reason})"
        with self.batch():
            self._set_case(None, could_not_show(self.patient, self.phase, reason), reset_slice=False)

    def reload_case(self) -> None:
        """Load and prepare the current case again (from the cache when it holds it)."""
        with self.batch():
            self._load_case(reset_slice=False)

    # ------------------------------------------------------------------------------------------
    def _prepare(self, name: str, case: Any) -> Any:
        function = self._tasks[name][0]
        folder = Path(case.patient_dir)
        value = self.prefetcher.take(name, case, folder, case.phase)
        if value is None:
            value = function(case)
            self.prefetcher.put(name, case, folder, case.phase, value)
        belongs_to = getattr(value, "belongs_to", None)  # results that know their case are checked
        if belongs_to is not None and not belongs_to(case):
            raise CaseMismatchError(
                f"the {name} result of {Path(value.patient_dir).name} {value.phase} was handed out for it"
            )
        return value

    def _load_case(self, *, reset_slice: bool) -> None:
        case, error, task = None, self._dataset_error, ""
        self._results = {}
        if self.patient:
            try:
                case = self.cache.get(self.patient_dir(), self.phase, self.layout)
                if case.phase != self.phase or Path(case.patient_dir) != self.patient_dir().resolve():
                    raise CaseError(f"the cache returned {case.patient_dir} {case.phase}")
                for name, (_, enabled) in self._tasks.items():
                    if enabled():
                        task = name
                        self._results[name] = self._prepare(name, case)
            except Exception as exc:
                if not isinstance(exc, CaseError):
                    log.error("Loading %s %s failed", self.patient, self.phase, exc_info=exc)
                    exc = f"{TASK_WORDS.get(task, 'reading it failed')} ({type(exc).__name__}: {exc})"
                case, error = None, could_not_show(self.patient, self.phase, exc)
                self._results = {}
        if case is not None and self._cache_limit is not None:
            wanted = max(MIN_CACHE_MB * 1e6, CASES_KEPT * case.nbytes)
            self.cache.max_bytes = int(max(self.cache.max_bytes, min(self._cache_limit, wanted)))
        self._set_case(case, error, reset_slice=reset_slice)

    def _set_case(self, case: Any, error: str, *, reset_slice: bool) -> None:
        if case is None:
            self._results = {}
            self.playing = False
        self.case = case
        self.error = error
        self.n_slices = self._view_length()
        if reset_slice:
            self.slice = self.n_slices // 2
        else:
            self.slice = self.slice  # re-clamp to the new case
        self.case_id = identity_text(self.patient, self.phase, self.case_serial + 1)
        self.case_serial += 1

    def _view_length(self) -> int:
        if self.case is None:
            return 0
        return int(self.case.image.shape[VIEWS.index(self.view)])
