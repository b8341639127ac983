"""The fixed header of the review screen: who and where, both phases' decisions, flags, moves.

One line that stays at the top of the page (``position: sticky``) whatever the window size:
patient id, "n of N" in the current order and filter, the ED and ES decisions, the automatic
checks' flag, then the phase switch, previous / next / next undecided and the "?" keys button.
Below it the error line: one sentence at a fixed height, so nothing under it jumps between cases.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from ipywidgets import HTML, Button, HBox, Layout, VBox

from ..names import PHASES
from .queue import patient_name, shown


class ScreenHeader(VBox):
    """Patient id, position, decisions, flags and the move buttons; then the error line.

    Parameters
    ----------
    state : ReviewState
    moves : widget
        The row of phase switch and previous / next / next undecided buttons (the navigation panel's).
    show_keys : callable
        Called by the "?" button (shows the keys overlay).

    Attributes
    ----------
    line : ipywidgets.HTML
        Patient id (class ``cmrqc-patient-name``), "n of N", both phases' decisions, flags.
    error_line : ipywidgets.HTML
        The current error sentence ('' when fine), class ``cmrqc-error``.
    keys_button : ipywidgets.Button
    """

    def __init__(
        self,
        state: Any,
        moves: Any,
        show_keys: Callable[[], Any],
        guard: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> None:
        guard = guard or (lambda f: f)
        self._state = state
        self.line = HTML("", layout=Layout(flex="1 1 auto", min_width="0"))
        self.keys_button = Button(description="?", tooltip="Keys (?)", layout=Layout(width="36px"))
        self.keys_button.on_click(guard(lambda _: show_keys()))
        self.error_line = HTML("", layout=Layout(height="22px", overflow="hidden", width="100%"))
        self.error_line.add_class("cmrqc-error-line")
        state.observe(
            guard(self.refresh),
            ["patient", "phase", "patient_index", "queue", "revision", "order", "filter", "n_total"],
        )
        state.observe(guard(self.refresh_error), "error")
        state.triage.observe(guard(self.refresh), ["current", "serial"])
        top = HBox([self.line, moves, self.keys_button], layout=Layout(align_items="center", width="100%"))
        super().__init__([top, self.error_line], **kwargs)
        self.add_class("cmrqc-header")
        self.refresh()
        self.refresh_error()

    def refresh(self, change: Any = None) -> None:
        """Redraw the line from the state (only when it changed)."""
        state = self._state
        if not state.patient:
            value = "<b class='cmrqc-patient-name'>No patient</b>"
        else:
            decided = state.decisions_of(state.patient)
            in_queue = state.in_queue(state.patient_index)
            n = len(state.queue)
            position = state.queue_position(state.patient_index) + 1
            where = f"patient {position} of {n}" if in_queue else f"not among the {n} shown"
            phases = " ".join(
                f"<span class='cmrqc-phase-decision{' cmrqc-current' if p == state.phase else ''}'>"
                f"{p} {html.escape(shown(decided[p]))}</span>"
                for p in PHASES
            )
            summary = state.triage.current if state.triage.current_patient == state.patient else None
            failed = len(summary.failed) if summary is not None and summary.failed else 0
            plural = "s" if failed > 1 else ""
            flag = f"<span class='cmrqc-flag'>⚠ {failed} failed check{plural}</span>" if failed else ""
            value = (
                f"<b class='cmrqc-patient-name'>{html.escape(patient_name(state.patient))}</b> "
                f"<span class='cmrqc-position'>{where}</span> {phases} {flag}"
            )
        if value != self.line.value:
            self.line.value = value

    def refresh_error(self, change: Any = None) -> None:
        """Show the current error sentence, once, on its fixed-height line."""
        error = self._state.error
        text = html.escape(error)
        value = f"<div class='cmrqc-error' title='{text}'>{text}</div>" if error else ""
        if value != self.error_line.value:
            self.error_line.value = value

    def sync_widgets(self) -> list[Any]:
        """Widgets a patient switch updates."""
        return [self.line, self.error_line]
