"""History on screen: every save of the current patient, and this session's decisions with revert.

The case history comes from the dataset's journal (who, when, before -> after, seconds spent), so
it shows other sessions' and other tools' saves too. The session list shows the last
:data:`~cmrqc_widgets.widgets.workflow.SESSION_SHOWN` decisions of this screen, newest first; each
row's button calls :meth:`ReviewState.revert` (which goes to that case and puts back the decision
it replaced).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any

from ipywidgets import HTML, Button, HBox, Layout, VBox

from .queue import patient_name
from .workflow import SESSION_SHOWN

log = logging.getLogger(__name__)

CASE_ROWS = 12
"""Most recent saves of the current patient listed."""


def _word(decision: Any) -> str:
    return getattr(decision, "decision", None) or "—"


def _when(stamp: str) -> str:
    """``2025-01-02T10:11:12.345+00:00`` -> ``2025-01-02 10:11:12`` (UTC, as the journal keeps it)."""
    return f"{stamp[:10]} {stamp[11:19]}" if len(stamp) >= 19 else stamp


class HistoryPanel(VBox):
    """Case history (from the journal) and the session's last decisions with one-click revert.

    Attributes
    ----------
    case_html : ipywidgets.HTML
        Saves of the current patient, newest first.
    session_rows : list of HBox
        One row per recent decision, newest first: ``HTML`` description and a "Revert" ``Button``.
        Rows are made when the first decisions need them (up to ``SESSION_SHOWN``, then reused):
        the first screen carries none of their ~50 widget models.
    """

    def __init__(self, state: Any, guard: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        self._guard = guard or (lambda f: f)
        self._state = state
        self.case_html = HTML("")
        self.case_html.add_class("cmrqc-case-history")
        self._numbers: list[int] = []
        self.session_rows: list[HBox] = []
        self.session_empty = HTML("<small>No decisions yet.</small>")
        self.session_box = VBox([self.session_empty])
        state.observe(self._guard(self.refresh), ["patient", "revision", "dataset"])
        super().__init__(
            [HTML("<b>This patient</b>"), self.case_html, HTML("<b>This session</b>"), self.session_box],
            **kwargs,
        )
        self.add_class("cmrqc-history")
        self.refresh()

    def refresh(self, change: Any = None) -> None:
        """Re-read the current patient's saves and rebuild the session list."""
        self._show_case()
        self._show_session()

    def _show_case(self) -> None:
        state = self._state
        entries = []
        if state.dataset_obj is not None and state.patient:
            try:
                entries = state.dataset_obj.history(state.patient)[-CASE_ROWS:][::-1]
            except Exception:  # the history is a view; never let it break a save or a move
                log.exception("Reading the history of %s failed", state.patient)
        rows = "".join(
            f"<tr><td>{html.escape(_when(e.time))}</td><td>{html.escape(e.user)}</td><td>{e.phase}</td>"
            f"<td>{html.escape(_word(e.previous))} → {html.escape(_word(e.new))}</td>"
            f"<td>{'' if e.seconds is None else f'{e.seconds:g} s'}</td></tr>"
            for e in entries
        )
        self.case_html.value = (
            f'<table style="font-size:12px">{rows}</table>' if rows else "<small>No saves yet.</small>"
        )

    def _show_session(self) -> None:
        recent = self._state.recent_decisions(SESSION_SHOWN)
        self._numbers = [number for number, _ in recent]
        if len(recent) > len(self.session_rows):  # made once each, then refilled in place
            new = [_row(self._guard, self._revert, i) for i in range(len(self.session_rows), len(recent))]
            self.session_rows.extend(new)
            self.session_box.children = (*self.session_rows, self.session_empty)
        for i, row in enumerate(self.session_rows):
            text, button = row.children
            if i < len(recent):
                _, entry = recent[i]
                undone = " (undone)" if entry.reverted else ""
                text.value = (
                    f"<small>{entry.time} {html.escape(patient_name(entry.patient))} {entry.phase}: "
                    f"{entry.before or '—'} → {entry.after or '—'}{undone}</small>"
                )
                button.disabled = entry.reverted
            display = None if i < len(recent) else "none"
            if row.layout.display != display:
                row.layout.display = display
        self.session_empty.layout.display = "none" if recent else None

    def _revert(self, row: int) -> None:
        if row < len(self._numbers):
            self._state.revert(self._numbers[row])

    def sync_widgets(self) -> list[Any]:
        """Widgets a patient switch updates."""
        rows = [w for row in self.session_rows for w in (row, *row.children)]
        return [self.case_html, self.session_empty, *rows]


def _row(guard: Callable[..., Any], revert: Callable[[int], Any], i: int) -> HBox:
    button = Button(
        description="Revert",
        tooltip="Go to this case and put back the decision it replaced",
        layout=Layout(width="70px", height="24px"),
    )
    button.on_click(guard(lambda _: revert(i)))
    return HBox([HTML(""), button], layout=Layout(display="none"))
