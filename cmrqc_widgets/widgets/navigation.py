"""Moving through the queue: next/previous patient, jump, next undecided, phase (a mixin of the state).

Every move only sets ``patient_index`` and ``phase`` (inside one batch); the state's observers load
and show the case. The host (``ReviewState``) provides ``patients``, ``patient_index``, ``phase``,
``playing``, ``case``, ``notice``, ``dataset``, ``_decisions``, ``batch()``, ``_neighbour()`` and
``_order_list()``.
"""

from __future__ import annotations

from traitlets import HasTraits

from ..names import check_phase
from . import queue as queue_rules
from .queue import patient_name


class NavigationState(HasTraits):
    """Methods that move the review to another patient or phase."""

    def jump(self, index: int) -> None:
        """Go to the patient at ``index`` in file order (clamped)."""
        with self.batch():
            self.patient_index = index

    def jump_to(self, patient: str) -> None:
        """Go to the patient whose key (or folder name) is ``patient``."""
        for i, key in enumerate(self.patients):
            if patient in (key, patient_name(key)):
                self.jump(i)
                return
        raise KeyError(f"Patient {patient!r} is not in {self.dataset}.")

    def next_patient(self) -> None:
        """Next patient of the queue, wrapping from the last to the first."""
        self._step_patient(+1)

    def prev_patient(self) -> None:
        """Previous patient of the queue, wrapping from the first to the last."""
        self._step_patient(-1)

    def step_target(self, direction: int) -> int | None:
        """The patient index :meth:`next_patient` (``direction > 0``) or :meth:`prev_patient` would
        go to now (None when the queue is empty); what the slice viewer is told ahead (issue 14)."""
        return self._neighbour(direction)

    def _step_patient(self, direction: int) -> None:
        target = self.step_target(direction)
        if target is None:
            self.notice = "No patients match the filter." if self.patients else ""
            return
        self.jump(target)

    def next_undecided(self) -> bool:
        """Go to the next patient and phase without a decision (in queue order, wrapping).

        Starts with the later phase of the current patient when that is still undecided, and ignores
        the filter. Returns False (and sets ``notice``) when every phase is decided.
        """
        found = queue_rules.next_undecided(
            self._order_list(), self.patients, self._decisions, self.patient_index, self.phase
        )
        if found is not None:
            self.go(*found)
            return True
        self.notice = "Every patient and phase has a decision."
        return False

    def go(self, index: int, phase: str | None = None) -> None:
        """Go to patient ``index`` and ``phase`` in one move (one case load, one batch)."""
        with self.batch(), self.hold_trait_notifications():
            if phase is not None:
                self.phase = phase
            self.patient_index = index

    def show_slice(self, phase: str, slice_index: int) -> None:
        """Show ``phase`` at slice ``slice_index`` (0-based, clamped), e.g. where a check failed."""
        self.set_phase(phase)
        self.slice = int(slice_index)

    def set_phase(self, phase: str) -> None:
        """Switch to phase ``phase`` ('ED' or 'ES'); raise InvalidNameError for anything else."""
        self.phase = check_phase(phase)

    def toggle_phase(self) -> None:
        """Switch between ED and ES."""
        self.phase = "ES" if self.phase == "ED" else "ED"

    def toggle_play(self) -> None:
        """Start or stop playing through the slices (in the browser, at ``fps``)."""
        self.playing = not self.playing and self.case is not None
