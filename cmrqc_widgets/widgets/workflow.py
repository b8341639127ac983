"""A reviewer's pace: decide-and-advance, accept both phases, undo and the session's decisions.

Guarantees: a decision key saves at once and, with ``advance`` on (the default, remembered per
reviewer), moves to the next phase or patient without a decision in the current order, so a normal
case costs one key per phase (or one key, Shift+A, for both). Undo puts back the decision a phase
had before the last decision of this session, on that phase's own case; the comment stays as
typed, and the journal keeps both saves (nothing is erased from the history).

A mixin of :class:`~cmrqc_widgets.widgets.state.ReviewState`, which provides ``decide``,
``next_undecided``, ``go``, ``_save``, ``_decisions``, ``dataset_obj``, ``patients`` and ``notice``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from traitlets import Bool, HasTraits

from ..names import PHASES
from .queue import word

SESSION_SHOWN = 8
"""Decisions of the session listed on screen (each with a revert button)."""


@dataclass
class SessionDecision:
    """One decision made in this session: what the phase held before and after, and when."""

    dataset: Any
    patient: str
    phase: str
    before: str | None
    after: str | None
    time: str
    reverted: bool = False


class WorkflowState(HasTraits):
    """Decide-and-advance, accept both phases, undo and revert (mixed into ``ReviewState``)."""

    advance = Bool(True, help="A decision key moves on to the next undecided phase or patient.")

    def _init_workflow(self) -> None:
        self.session_decisions: list[SessionDecision] = []
        self._undoing = False

    # -- recording (called by ``_save``) -----------------------------------------------------
    def _after_save(self, dataset: Any, patient: str, phase: str, before: Any, after: Any) -> None:
        if self._undoing or word(before) == word(after):
            return  # a comment save or an undo itself is no new decision
        self.session_decisions.append(
            SessionDecision(dataset, patient, phase, word(before), word(after), time.strftime("%H:%M:%S"))
        )

    # -- keys --------------------------------------------------------------------------------
    def decide_by_key(self, decision: str) -> bool:
        """Save ``decision``; with ``advance`` on, then go to the next undecided phase or patient."""
        saved = self.decide(decision)
        if saved and self.advance:
            self.next_undecided()
        return saved

    def accept_both_and_next(self) -> bool:
        """Accept both phases of the current patient (comments kept), then go to the next undecided."""
        if not self.decide("accept"):
            return False
        for phase in PHASES:
            if phase != self.phase:
                stored = self._decisions.get(self.patient, {}).get(phase)
                comment = stored.comment if stored is not None else ""
                if not self._save("accept", comment, key=(self.dataset_obj, self.patient, phase)):
                    return False
        self.next_undecided()
        return True

    @property
    def case_key(self) -> str:
        """``"<patient>|<phase>"`` of the case on screen ('' when none): what typed text belongs to."""
        return f"{self.patient}|{self.phase}" if self.patient else ""

    def commit_typed(self, text: str, case: str = "") -> bool:
        """Save the comment ``text`` typed for ``case`` (see :attr:`case_key`); True when saved.

        Text typed for a case the screen has already left is not written onto the new one.
        """
        if case and case != self.case_key:
            self.notice = "A comment arrived for a case no longer on screen; it was not saved here."
            return False
        self.set_comment(text)
        return self.commit_comment()

    def toggle_overlay(self) -> None:
        """Colour overlay on the MRI on or off."""
        self.overlay = not self.overlay

    # -- undo and revert ---------------------------------------------------------------------
    def recent_decisions(self, n: int = SESSION_SHOWN) -> list[tuple[int, SessionDecision]]:
        """The last ``n`` decisions of this session in the open dataset, newest first, with their number."""
        mine = [(i, d) for i, d in enumerate(self.session_decisions) if d.dataset is self.dataset_obj]
        return mine[::-1][:n]

    def undo(self) -> bool:
        """Undo the last decision of this session not yet undone (see :meth:`revert`)."""
        for i, entry in reversed(list(enumerate(self.session_decisions))):
            if entry.dataset is self.dataset_obj and not entry.reverted:
                return self.revert(i)
        self.notice = "Nothing to undo: no decision made in this session."
        return False

    def revert(self, number: int) -> bool:
        """Go to the case of session decision ``number`` and put back the decision it replaced.

        The comment is kept as it is now; the journal records the revert as one more save.
        """
        if not 0 <= number < len(self.session_decisions):
            self.notice = f"There is no decision number {number} in this session."
            return False
        entry = self.session_decisions[number]
        if entry.dataset is not self.dataset_obj or entry.patient not in self.patients:
            self.notice = "That decision belongs to another dataset; open it to revert."
            return False
        self.go(self.patients.index(entry.patient), entry.phase)
        self._undoing = True
        try:
            saved = self._save(entry.before, self.comment)
        finally:
            self._undoing = False
        if saved:
            entry.reverted = True
            shown = entry.before or "no decision"
            self.notice = f"Undone: {entry.phase} of this patient is back to {shown}."
            self.revision += 1  # views of the session list refresh
        return saved
