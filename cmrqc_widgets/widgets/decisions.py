"""Decisions of the current case: decide, the comment draft and autosave (a mixin of the state).

A decision is saved the moment it is made, with the comment draft and the seconds spent on the
case. The draft is saved by :meth:`DecisionState.commit_comment`, which the state calls whenever
the reviewer leaves the patient, the phase or the dataset, so typed text is never lost.
"""

from __future__ import annotations

import time
from typing import Any

from traitlets import HasTraits, Int, TraitError, Unicode, validate

from ..errors import DatasetError, InvalidNameError
from ..names import DECISIONS
from .queue import word


class DecisionState(HasTraits):
    """Decision, comment draft and "saved 12:03:41" of the current patient and phase.

    The host (``ReviewState``) provides ``dataset_obj``, ``patient``, ``phase``, ``error``,
    ``notice``, ``_decisions``, ``_comment_key``, ``_stored_comment``, ``_arrived``, ``batch()``
    and ``_account()``.
    """

    decision = Unicode("", help="Saved decision of the current patient and phase ('' = none).")
    comment = Unicode("", help="Comment draft of the current patient and phase.")
    saved_at = Unicode("", help="'saved 12:03:41' after the last save.")
    revision = Int(0, help="Increments after every save (views of the decisions refresh on it).")

    @validate("decision")
    def _check_decision(self, proposal: Any) -> str:
        if proposal.value not in ("", *DECISIONS):
            raise TraitError(f"Decision {proposal.value!r} is not one of {list(DECISIONS)}.")
        return proposal.value

    def decide(self, decision: str | None) -> bool:
        """Save ``decision`` (one of DECISIONS, or None to clear) for the current patient and phase.

        Saved at once, with the comment draft and the seconds spent on the case. Returns True when
        saved; on failure the reason goes to ``notice`` and nothing changes.
        """
        decision = None if decision in (None, "", "none") else decision
        if decision is not None and decision not in DECISIONS:
            raise InvalidNameError(f"Decision {decision!r} is not allowed; use one of {list(DECISIONS)}.")
        if decision is None and not self.decision and self.comment == self._stored_comment:
            return False  # clearing nothing (a disabled Clear "clicked" by a crafted client)
        return self._save(decision, self.comment)

    def set_comment(self, text: str) -> None:
        """Set the comment draft (saved by :meth:`commit_comment`, a decision, or moving on)."""
        self.comment = text or ""

    def commit_comment(self) -> bool:
        """Save the comment draft if it differs from the stored comment; return True when saved."""
        if self._comment_key is None or self.comment == self._stored_comment:
            return False
        _, patient, phase = self._comment_key
        stored = word(self._decisions.get(patient, {}).get(phase))
        return self._save(stored, self.comment, key=self._comment_key)

    def _save(self, decision: str | None, comment: str, key: tuple[Any, str, str] | None = None) -> bool:
        if key is None:
            if self.dataset_obj is None or not self.patient:
                self.notice = self.error or "Nothing to decide: no patient is open."
                return False
            key = (self.dataset_obj, self.patient, self.phase)
        dataset, patient, phase = key
        seconds = round(time.monotonic() - self._arrived, 1)
        try:
            saved = dataset.save(patient, phase, decision, comment, seconds=seconds)
        except (DatasetError, OSError) as exc:
            self.notice = f"Not saved: {exc}"
            return False
        before = dict(self._decisions.get(patient, {}))
        self._decisions.setdefault(patient, {})[phase] = saved
        with self.batch():
            if key == self._comment_key:
                self._stored_comment = saved.comment
            if dataset is self.dataset_obj and patient == self.patient and phase == self.phase:
                self.decision = word(saved) or ""
            self.saved_at = "saved " + time.strftime("%H:%M:%S")
            self.notice = ""
            if dataset is self.dataset_obj:
                self._account(patient, before, self._decisions[patient])
            self.revision += 1
        return True
