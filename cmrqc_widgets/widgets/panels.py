"""Thin views of the review state: decision bar, navigation and the log (case info: ``case_info``).

Each panel receives the :class:`~cmrqc_widgets.widgets.state.ReviewState`, links its controls to
the state's traits and calls one state method per button. Nothing here keeps state of its own
beyond what a widget shows.
"""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import Callable, Iterator
from typing import Any

from ipywidgets import (
    HTML,
    Button,
    Dropdown,
    HBox,
    IntProgress,
    Layout,
    Output,
    Select,
    Textarea,
    ToggleButtons,
    VBox,
)
from traitlets import dlink, link

from ..names import DECISIONS, PHASES
from .queue import FILTERS, patient_name

DECISION_LABELS = {
    "accept": "Accept",
    "reject": "Reject",
    "finetune": "Fine-tune",
    "unclassified": "Unclassified",
}
DECISION_STYLES = {"accept": "success", "reject": "danger", "finetune": "warning", "unclassified": "info"}
DECISION_KEYS = {"accept": "A", "reject": "R", "finetune": "F", "unclassified": "U"}
FILTER_LABELS = {
    "all": "All patients",
    "undecided": "Undecided",
    "accept": "Accepted",
    "reject": "Rejected",
    "finetune": "Fine-tune",
    "unclassified": "Unclassified",
    "flagged": "Flagged (failed checks)",
}
PAGE_SIZE = 100
"""Patients shown in the patient list at a time: a save or a move re-sends at most one page of
labels, however large the dataset."""


class LogPanel(VBox):
    """Visible log: exceptions of callbacks and warnings of the package land here, not in the void.

    Attributes
    ----------
    output : ipywidgets.Output
    """

    def __init__(self, **kwargs: Any) -> None:
        self.output = Output(layout=Layout(max_height="160px", overflow="auto"))
        self.output.add_class("cmrqc-log")
        self._handler = _OutputHandler(self.output)
        logging.getLogger("cmrqc_widgets").addHandler(self._handler)
        super().__init__([HTML("<b>Log</b>"), self.output], **kwargs)

    def guard(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a callback so its exception is shown in the log (in a kernel) instead of vanishing."""
        return self.output.capture()(function)

    def detach(self) -> None:
        """Stop receiving the package's log records (called when the widget closes)."""
        logging.getLogger("cmrqc_widgets").removeHandler(self._handler)


class _OutputHandler(logging.Handler):
    def __init__(self, output: Output) -> None:
        super().__init__(logging.WARNING)
        self.output = output
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.output.append_stderr(self.format(record) + "\n")


class DecisionBar(VBox):
    """Four mutually exclusive decisions, the comment box and the "saved 12:03:41" line.

    A decision is saved the moment its button is clicked. The comment box sends its text when the
    reviewer leaves it (``continuous_update=False``), and that is when it is saved; moving to
    another phase, patient or dataset saves a pending draft too.

    Attributes
    ----------
    buttons : dict[str, Button]
        ``accept``, ``reject``, ``finetune``, ``unclassified``.
    clear_button, comment, saved_label
    """

    def __init__(self, state: Any, guard: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        guard = guard or (lambda f: f)
        self._state = state
        self.buttons = {
            d: Button(
                description=f"{DECISION_LABELS[d]} ({DECISION_KEYS[d]})",
                tooltip=f"{DECISION_LABELS[d]} this patient and phase (key {DECISION_KEYS[d]})",
                layout=Layout(width="130px"),
            )
            for d in DECISIONS
        }
        for d, button in self.buttons.items():
            button.on_click(guard(_decide(state, d)))
        self.clear_button = Button(
            description="Clear", icon="times", tooltip="Remove the decision", layout=Layout(width="80px")
        )
        self.clear_button.on_click(guard(lambda _: state.decide(None)))
        self.comment = Textarea(
            placeholder="Comment on this patient and phase (saved when you leave the box)",
            continuous_update=False,
            layout=Layout(width="100%", height="60px"),
        )
        self.comment.add_class("cmrqc-comment")
        self.saved_label = HTML("")
        dlink((state, "comment"), (self.comment, "value"))
        self.comment.observe(guard(self._on_comment), "value")
        state.observe(guard(self._restyle), "decision")
        state.observe(guard(self._show_saved), ["saved_at", "notice"])
        self.button_row = HBox([*self.buttons.values(), self.clear_button])
        super().__init__([self.button_row, self.comment, self.saved_label], **kwargs)
        self._restyle()
        self._show_saved()

    def _on_comment(self, change: Any) -> None:
        self._state.set_comment(change.new)
        self._state.commit_comment()

    def _restyle(self, change: Any = None) -> None:
        for d, button in self.buttons.items():
            active = self._state.decision == d
            button.button_style = DECISION_STYLES[d] if active else ""
            button.icon = "check" if active else ""
        self.clear_button.disabled = not self._state.decision

    def _show_saved(self, change: Any = None) -> None:
        notice = self._state.notice
        text = html.escape(self._state.saved_at)
        if notice:
            text += f' <span style="color:#b00020">{html.escape(notice)}</span>'
        self.saved_label.value = f"<small>{text}</small>"

    def sync_widgets(self) -> list[Any]:
        """Widgets a patient switch updates."""
        return [*self.buttons.values(), self.clear_button, self.comment, self.saved_label]


def _decide(state: Any, decision: str) -> Callable[[Any], Any]:
    return lambda _: state.decide(decision)


class NavigationPanel(VBox):
    """ED/ES switch, previous/next patient (wrapping), next undecided, order, filter, patient list, progress.

    The patient list shows the page of :data:`PAGE_SIZE` queue patients holding the current one;
    the page buttons browse the others (the page follows the reviewer again on the next move).

    Attributes
    ----------
    phase_toggle, prev_patient_button, next_patient_button, next_undecided_button, order_dropdown,
    filter_dropdown, patient_list, prev_page_button, next_page_button, page_label, progress_bar,
    progress_label, patient_label
    """

    def __init__(self, state: Any, guard: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        guard = guard or (lambda f: f)
        self._state = state
        self._quiet = False
        self._page_start: int | None = None  # set by the page buttons, cleared by a move
        self.patient_label = HTML("")
        self.phase_toggle = ToggleButtons(
            options=list(PHASES),
            tooltips=["End-diastole (E)", "End-systole (S)"],
            style={"button_width": "48px"},
        )
        self.prev_patient_button = Button(
            description="Prev",
            icon="arrow-up",
            tooltip="Previous patient (↑ or P)",
            layout=Layout(width="80px"),
        )
        self.next_patient_button = Button(
            description="Next",
            icon="arrow-down",
            tooltip="Next patient (↓ or N)",
            layout=Layout(width="80px"),
        )
        self.next_undecided_button = Button(
            description="Next undecided",
            icon="forward",
            tooltip="Next patient or phase without a decision (J)",
            layout=Layout(width="150px"),
        )
        self.order_dropdown = Dropdown(
            options=state.orders(), description="Order", layout=Layout(width="260px")
        )
        self.filter_dropdown = Dropdown(
            options=[(FILTER_LABELS[f], f) for f in FILTERS], description="Show", layout=Layout(width="260px")
        )
        self.patient_list = Select(options=[], rows=10, layout=Layout(width="100%"))
        self.patient_list.add_class("cmrqc-patient-list")
        self.prev_page_button = Button(icon="chevron-up", tooltip="Previous page of patients", layout=_icon())
        self.next_page_button = Button(icon="chevron-down", tooltip="Next page of patients", layout=_icon())
        self.page_label = HTML("")
        self.page_row = HBox(
            [self.prev_page_button, self.next_page_button, self.page_label], layout=Layout(display="none")
        )
        self.progress_bar = IntProgress(
            value=0, min=0, max=1, bar_style="success", layout=Layout(width="160px")
        )
        self.progress_label = HTML("")

        link((state, "phase"), (self.phase_toggle, "value"))
        link((state, "filter"), (self.filter_dropdown, "value"))
        link((state, "order"), (self.order_dropdown, "value"))
        self.prev_page_button.on_click(guard(lambda _: self.turn_page(-1)))
        self.next_page_button.on_click(guard(lambda _: self.turn_page(+1)))
        self.prev_patient_button.on_click(guard(lambda _: state.prev_patient()))
        self.next_patient_button.on_click(guard(lambda _: state.next_patient()))
        self.next_undecided_button.on_click(guard(lambda _: state.next_undecided()))
        self.patient_list.observe(guard(self._on_pick), "value")
        state.observe(guard(self._refresh_list), ["patients", "queue", "revision", "patient_index", "order"])
        state.observe(guard(self._refresh_progress), ["n_decided", "n_phases_decided", "n_total"])
        state.observe(guard(self._refresh_label), ["patient", "phase", "patient_index", "n_total"])
        self.button_row = HBox(
            [self.prev_patient_button, self.next_patient_button, self.next_undecided_button]
        )
        super().__init__(
            [
                self.patient_label,
                HBox([self.phase_toggle]),
                self.button_row,
                self.order_dropdown,
                self.filter_dropdown,
                self.patient_list,
                self.page_row,
                HBox([self.progress_bar, self.progress_label]),
            ],
            **kwargs,
        )
        self._refresh_list()
        self._refresh_progress()
        self._refresh_label()

    def _on_pick(self, change: Any) -> None:
        if not self._quiet and change.new is not None and change.new != self._state.patient_index:
            self._state.jump(change.new)

    @contextlib.contextmanager
    def _programmatic(self) -> Iterator[None]:
        # Replacing a Select's options moves its value to the first option for a moment; that
        # transient value must not be taken as the reviewer picking a patient.
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    def turn_page(self, direction: int) -> None:
        """Show the next (``direction > 0``) or previous page of the patient list."""
        start = self._page()[0]
        total = len(self._state.queue)
        self._page_start = (
            min(max(start + direction * PAGE_SIZE, 0), max(total - 1, 0)) // PAGE_SIZE * PAGE_SIZE
        )
        self._refresh_list()

    def _page(self) -> tuple[int, list[int]]:
        """(first queue position, patient indices) of the page shown; the current patient is on it."""
        state = self._state
        queue = state.queue
        here = state.patient_index
        position = state.queue_position(here) if state.patients else 0
        start = self._page_start if self._page_start is not None else position // PAGE_SIZE * PAGE_SIZE
        page = list(queue[start : start + PAGE_SIZE])
        if state.patients and not state.in_queue(here) and start <= position <= start + len(page):
            page.insert(position - start, here)  # the current patient stays visible after leaving the filter
        return start, page

    def _refresh_list(self, change: Any = None) -> None:
        state = self._state
        if change is not None and change.name == "patient_index":
            self._page_start = None
        start, shown = self._page()
        options = [(state.patient_label(i), i) for i in shown]
        current = state.patient_index if state.patient_index in shown else None
        with self._programmatic():
            if options != list(self.patient_list.options):
                self.patient_list.options = options
            if self.patient_list.value != current:
                self.patient_list.value = current
        total = len(state.queue)
        if total > PAGE_SIZE:
            self.page_label.value = f"<small>{start + 1}-{min(start + PAGE_SIZE, total)} of {total:,}</small>"
            self.prev_page_button.disabled = start == 0
            self.next_page_button.disabled = start + PAGE_SIZE >= total
        display = None if total > PAGE_SIZE else "none"
        if self.page_row.layout.display != display:
            self.page_row.layout.display = display

    def _refresh_progress(self, change: Any = None) -> None:
        state = self._state
        self.progress_bar.max = max(state.n_total, 1)
        self.progress_bar.value = state.n_decided
        self.progress_label.value = (
            f"{state.n_decided} of {state.n_total} decided "
            f"<small>({state.n_phases_decided} of {2 * state.n_total} phases)</small>"
        )

    def _refresh_label(self, change: Any = None) -> None:
        state = self._state
        if not state.patients:
            self.patient_label.value = "<b>No patient</b>"
            return
        name = html.escape(patient_name(state.patient))
        where = f"patient {state.patient_index + 1} of {state.n_total}"
        self.patient_label.value = f"<b>{name}</b> · {state.phase} <small>({where})</small>"

    def sync_widgets(self) -> list[Any]:
        """Widgets a patient switch updates."""
        return [
            self.patient_label,
            self.phase_toggle,
            self.patient_list,
            self.page_label,
            self.progress_bar,
            self.progress_label,
            self.order_dropdown,
            self.filter_dropdown,
        ]


def _icon() -> Layout:
    return Layout(width="36px")
