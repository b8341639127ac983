"""The review state: one ``HasTraits`` object that is the single source of truth of the screen.

Every panel of :class:`~cmrqc_widgets.widgets.ReviewWidget` is a thin view of a
:class:`ReviewState`: buttons call one of its methods, sliders and toggles are linked to its
traits. The state can be driven without any widget (tests, scripts)::

    state = ReviewState(root="JSON", user="alice", dataset="cohort.json")
    state.decide("reject")          # saved at once (autosave)
    state.set_comment("LV leak")     # the draft ...
    state.next_patient()             # ... is saved when the reviewer moves on

Observers react to a change of ``dataset``, ``patient_index``, ``phase``, ``view``, ``filter``
and ``order`` by setting *other* traits; no observer writes back into the trait it observes.

Off the hot path, two background threads help: :class:`~cmrqc_widgets.widgets.prefetch.Prefetcher`
prepares the neighbours' cases (the review widget registers its packing and 3D tasks there), and
:class:`~cmrqc_widgets.widgets.triage.Triage` measures the automatic checks (``state.triage``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from traitlets import Int, List, TraitError, Unicode, observe, validate

from ..cases.roots import PatientFolderError, image_roots, patient_folder
from ..errors import CmrqcError, DatasetError, InvalidNameError
from ..names import PHASES, check_phase
from .current import MIN_CACHE_MB, CurrentCase
from .decisions import DecisionState
from .navigation import NavigationState
from .prefetch import Prefetcher
from .queue import word
from .review_queue import QueueState
from .settings import PERSISTED, ViewSettings, recall, recall_settings, remember, remember_settings
from .triage import Triage
from .workflow import WorkflowState

log = logging.getLogger(__name__)

DEFAULT_CACHE_MB = 160.0
"""Most memory for decoded cases: the current, previous and next patients (both phases) of a
256x256x80 stack take ~160 MB (26 MB per case)."""


class ReviewState(CurrentCase, DecisionState, NavigationState, QueueState, ViewSettings, WorkflowState):
    """Dataset, patient, phase, slice, decision, comment and view settings of one reviewer.

    Parameters
    ----------
    root : path, optional
        Data root (``CMRQC_ROOT`` or the default when omitted).
    user : str, optional
        Reviewer (``JUPYTERHUB_USER``, else ``CMRQC_USER``, else the OS user when omitted).
    dataset : str, optional
        Dataset file name to open; default: the one used last, else the first.
    store : QCStore, optional
        An existing store (``root`` and ``user`` are then ignored).
    cache : CaseCache, optional
        An existing case cache; default a new one bounded by ``cache_mb``.
    cache_mb : float
        Most memory for decoded cases when ``cache`` is not given; the cache keeps about
        :data:`~cmrqc_widgets.widgets.current.CASES_KEPT` cases (at least 32 MB) within it.
    layout : str or Layout, optional
        File layout of the cases; detected per patient when omitted.
    remember : bool
        Remember the last dataset and patient, and the display settings (``settings.PERSISTED``),
        in the reviewer's folder.
    """

    # -- what is open ------------------------------------------------------------------------
    datasets = List(Unicode(), help="Dataset file names of the reviewer, re-listed on refresh.")
    dataset = Unicode("", help="Name of the open dataset file ('' when none).")
    patients = List(Unicode(), help="Patient keys of the open dataset, in file order.")
    patient_index = Int(0, help="Index of the current patient in `patients` (clamped).")
    patient = Unicode("", help="Key of the current patient ('' when none).")
    phase = Unicode("ED", help="Current phase, 'ED' or 'ES'.")
    notice = Unicode("", help="Transient message for the reviewer (save failed, all decided ...).")

    # case, case_serial, case_id, error: see CurrentCase; decision, comment, saved_at, revision: see
    # DecisionState; filter, order, queue, progress:
    # see QueueState

    def __init__(
        self,
        root: Any = None,
        user: str | None = None,
        dataset: str | None = None,
        *,
        store: Any = None,
        cache: Any = None,
        cache_mb: float = DEFAULT_CACHE_MB,
        layout: Any = None,
        remember: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self._init_current()
        if store is None:
            from ..store import QCStore

            store = QCStore(root, user)
        self._cache_limit = None
        if cache is None:
            from ..cases import CaseCache

            cache = CaseCache(max_mb=min(MIN_CACHE_MB, cache_mb))
            self._cache_limit = cache_mb * 1e6  # grown to CASES_KEPT cases as they load
        self.store = store
        self.image_roots = image_roots(store.root)  # resolved once: data root + $CMRQC_IMAGE_ROOTS
        self.cache = cache
        self.layout = layout
        self.remember = remember
        self.dataset_obj: Any = None
        self._decisions: dict[str, dict[str, Any]] = {}
        self._init_queue()
        self._init_workflow()
        self.prefetcher = Prefetcher(cache)
        self.triage = Triage(layout=layout, busy=self.prefetcher.busy, cache=cache)
        self.triage.batch = self.batch
        self.triage.on_publish = self._on_suspicion
        self.register_order("suspicion", lambda state: state.triage.ranking())
        self._batch_hooks: list[Callable[[], AbstractContextManager[Any]]] = []
        self._comment_key: tuple[Any, str, str] | None = None
        self._stored_comment = ""
        self._arrived = time.monotonic()

        self._shown: tuple[Any, str, str] | None = None
        self._ready = False
        self._pending_patient: str | None = None
        self._dataset_error = ""

        self.refresh_datasets()
        session = recall(self.store.folder) if remember else {}
        name = dataset or (session.get("dataset") if session.get("dataset") in self.datasets else None)
        if name is None and self.datasets:
            name = self.datasets[0]
        if name and name == session.get("dataset"):
            self._pending_patient = session.get("patient")
        if name:
            self.dataset = name  # the observer opens it
        else:
            self._open("")
        if remember:
            for trait, value in recall_settings(self.store.folder).items():
                with contextlib.suppress(TraitError, TypeError, ValueError):  # a hand-edited file
                    setattr(self, trait, value)
        for trait, value in kwargs.items():  # view settings, e.g. show_3d=True, fps=10
            if not self.has_trait(trait):
                raise TypeError(f"ReviewState has no setting {trait!r}.")
            setattr(self, trait, value)
        self._ready = True
        if remember:
            self.observe(self._remember_settings, list(PERSISTED))

    # ------------------------------------------------------------------------------------------
    # validation
    @validate("patient_index")
    def _clamp_patient(self, proposal: Any) -> int:
        return int(min(max(int(proposal.value), 0), max(len(self.patients) - 1, 0)))

    @validate("phase")
    def _check_phase(self, proposal: Any) -> str:
        try:
            return check_phase(proposal.value)
        except InvalidNameError as exc:
            raise TraitError(str(exc)) from exc

    # ------------------------------------------------------------------------------------------
    # observers (each sets other traits only)
    @observe("dataset")
    def _on_dataset(self, change: Any) -> None:
        self._open(change.new)

    @observe("patient_index")
    def _on_patient_index(self, change: Any) -> None:
        with self.batch():
            self.commit_comment()
            self._show_current(reset_slice=True)

    @observe("phase")
    def _on_phase(self, change: Any) -> None:
        with self.batch():
            self.commit_comment()
            self._show_current(reset_slice=False)

    @observe("view")
    def _on_view(self, change: Any) -> None:
        self.n_slices = self._view_length()
        self.slice = self.n_slices // 2

    def _remember_settings(self, change: Any) -> None:
        remember_settings(self.store.folder, {name: getattr(self, name) for name in PERSISTED})

    # ------------------------------------------------------------------------------------------
    # batching of view updates
    def add_batch_hook(self, hook: Callable[[], AbstractContextManager[Any]]) -> None:
        """Register a context-manager factory entered around every multi-trait update.

        :class:`ReviewWidget` registers one that holds the sync of all its widgets, so a patient
        switch reaches the browser as one batch.
        """
        self._batch_hooks.append(hook)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Context in which all registered batch hooks are held (nesting is fine)."""
        with contextlib.ExitStack() as stack:
            for hook in self._batch_hooks:
                stack.enter_context(hook())
            yield

    # ------------------------------------------------------------------------------------------
    # datasets
    def refresh_datasets(self) -> list[str]:
        """Re-list the reviewer's dataset files (a new file appears without a restart)."""
        try:
            names = list(self.store.datasets())
        except (OSError, CmrqcError) as exc:
            self.notice = f"Could not list the datasets in {self.store.folder}: {exc}"
            names = []
        if self.dataset and self.dataset not in names and self.dataset_obj is not None:
            names.append(self.dataset)  # still open even if the file was removed meanwhile
        if names != self.datasets:
            self.datasets = names
        if names and not self.dataset and self._ready:
            self.dataset = names[0]  # the first file appeared: open it
        return names

    def open_dataset(self, name: str) -> None:
        """Open the dataset file ``name`` (the comment draft of the current case is saved first)."""
        if name == self.dataset:
            self._open(name)  # re-open: picks up changes made elsewhere
        else:
            self.dataset = name

    def _open(self, name: str) -> None:
        patient, self._pending_patient = self._pending_patient, None
        with self.batch():
            self.commit_comment()
            self._comment_key = None
            if self.dataset_obj is not None:
                with contextlib.suppress(Exception):
                    self.dataset_obj.close()
            self.dataset_obj = None
            self._decisions = {}
            error = ""
            patients: list[str] = []
            if not name:
                error = (
                    f"No datasets for {self.store.user}: there is no dataset file in {self.store.folder}; "
                    "create one with `cmrqc dataset create` (or try `cmrqc demo`), then refresh."
                )
            else:
                try:
                    self.dataset_obj = self.store.open(name)
                    patients = list(self.dataset_obj.patients)
                    self._decisions = self.dataset_obj.decisions()
                except (DatasetError, InvalidNameError, OSError) as exc:
                    self.dataset_obj = None
                    error = str(exc)
            if not error and not patients:
                error = f"No patients in {name}: the dataset file lists none."
            self._dataset_error = error
            self._shown = None
            dataset_path = self.dataset_obj.path if self.dataset_obj is not None else None
            self.triage.start(patients, self.allowed_dir, dataset_path)
            with self.hold_trait_notifications():  # observers see patients and queue agree
                self.patients = patients
                self._reset_counts()
            start = patients.index(patient) if patient in patients else 0
            if self.patient_index != start:
                self.patient_index = start  # the observer shows the case
            else:
                self._show_current(reset_slice=True)
            self.notice = ""
            self.saved_at = ""

    def _on_suspicion(self) -> None:
        """The triage published a new ranking: re-sort and re-filter if the queue depends on it."""
        if self._uses_suspicion() and self.patients:
            with self.batch():
                self.refresh_queue()
            self._prefetch()

    def close(self) -> None:
        """Save a pending comment, write the dataset file and stop the background threads."""
        with contextlib.suppress(Exception):
            self.commit_comment()
        if self.dataset_obj is not None:
            with contextlib.suppress(Exception):
                self.dataset_obj.close()
        self.triage.close()
        self.prefetcher.close()

    # ------------------------------------------------------------------------------------------
    # loading the current case
    def patient_dir(self, key: str | None = None) -> Path:
        """Folder of patient ``key`` (default the current); relative keys are under the data root.

        Raises :class:`~cmrqc_widgets.cases.roots.PatientFolderError` (one sentence) for a key
        with ``..`` or a folder resolving outside the data root and ``$CMRQC_IMAGE_ROOTS``.
        """
        return patient_folder(key if key is not None else self.patient, self.image_roots)

    def allowed_dir(self, key: str | None = None) -> Path | None:
        """:meth:`patient_dir`, or None for a refused key (background work skips it)."""
        try:
            return self.patient_dir(key)
        except PatientFolderError:
            return None

    def _show_current(self, *, reset_slice: bool) -> None:
        key = (self.dataset_obj, self.patients[self.patient_index] if self.patients else "", self.phase)
        if key == self._shown:
            return  # already shown (the second observer of a combined patient + phase move)
        reset_slice = reset_slice or self._shown is None or key[1] != self._shown[1]
        self._shown = key
        with self.batch():
            self.playing = False
            self.patient = self.patients[self.patient_index] if self.patients else ""
            decided = self._decisions.get(self.patient, {}).get(self.phase) if self.patient else None
            self.decision = word(decided) or ""
            self._stored_comment = decided.comment if decided is not None else ""
            self.comment = self._stored_comment
            self._comment_key = (self.dataset_obj, self.patient, self.phase) if self.patient else None
            self._load_case(reset_slice=reset_slice)
            self._arrived = time.monotonic()
            self.notice = ""
            if reset_slice or self.triage.current_patient != self.patient:
                self.triage.show(self.patient, self.allowed_dir() if self.patient else None)
        self._prefetch()
        if self.remember and self.dataset_obj is not None and self.dataset:
            remember(self.store.folder, self.dataset, self.patient)

    def _prefetch(self) -> None:
        if not self.patient:
            return
        try:
            here, other = self.allowed_dir(), next(p for p in PHASES if p != self.phase)
            reads: list[tuple[Path, tuple[str, ...]]] = [(here, (other,))] if here else []
            items = []
            for direction in (+1, -1):
                i = self._neighbour(direction)
                near = i is not None and i != self.patient_index
                folder = self.allowed_dir(self.patients[i]) if near else None
                if folder is not None:  # a refused neighbour is never read, not even ahead
                    reads.append((folder, PHASES))
                    items.append((folder, self.phase))
                    items.append((folder, other))
            # The next patient in this phase is the likeliest next view; the other phase here next.
            if here is not None:
                items.insert(1 if items else 0, (here, other))
            self.prefetcher.schedule(dict.fromkeys(items), self.layout, reads=dict.fromkeys(reads))
        except Exception:  # prefetching is an optimisation; never break navigation
            log.exception("Prefetch failed")
