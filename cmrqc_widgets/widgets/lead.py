"""LeadWidget: the lead's screen — progress, agreement, disagreement queue, adjudication, report, assignment.

Composition only: the state and every action live in :class:`~cmrqc_widgets.widgets.lead_state.LeadState`;
the tables and the heatmap are drawn by :mod:`cmrqc_widgets.widgets.lead_views`. Layout::

    title · banner (one sentence when something is wrong) · notice (what the last action did)
    dataset · Refresh · "re-read every 5 s" · "read 12:03:41 UTC"
    progress table (per reviewer)          agreement tables · pair · confusion heatmap
    disagreement queue · Open
    adjudication (once a case is open): everyone's decision and comment side by side ·
        final decision · comment · Record · the review screen on the consensus dataset
    Write report · download links
    Assign: dataset · reviewers · overlap · seed · name · Assign
    log

A user who is not a lead sees one sentence and nothing else is built or read. The periodic re-read
runs on the kernel's own loop (nothing in the browser) and costs a few ``os.stat`` calls per
reviewer when nothing changed.
"""

from __future__ import annotations

import html
from typing import Any

from ipywidgets import (
    HTML,
    Button,
    Checkbox,
    Dropdown,
    HBox,
    Image,
    IntText,
    Layout,
    Select,
    SelectMultiple,
    Text,
    ToggleButtons,
    VBox,
)

from ..names import DECISIONS
from ..qc.consensus import consensus_name
from .kernel import kernel_scheduler
from .lead_state import LeadState
from .lead_views import agreement_table, confusion_png, progress_table, queue_label, side_by_side
from .log_panel import LogPanel
from .stats import data_link

__all__ = ["LeadWidget"]

REFRESH_SECONDS = 5.0
"""Default period of the re-read while "re-read every 5 s" is ticked."""


class LeadWidget(VBox):
    """The lead's view of a team review.

    Parameters
    ----------
    root : path, optional
        Data root; ``CMRQC_ROOT`` or the default when omitted.
    user : str, optional
        The lead; ``JUPYTERHUB_USER``, else ``CMRQC_USER``, else the OS user. Must be in the
        ``leads`` group of ``users.json`` (``cmrqc user add NAME --lead``).
    dataset : str, optional
        The reviewers' dataset file name; default the one most team members have.
    refresh_seconds : float
        Period of the automatic re-read (in a kernel); 0 turns it off.

    Examples
    --------
    >>> w = LeadWidget(root="JSON", user="carol", dataset="cohort.json")
    >>> w.queue.value = 0; w.open_button.click()
    >>> w.final_decision.value = "reject"; w.record_button.click()
    """

    def __init__(self, root: Any = None, user: str | None = None, dataset: str | None = None,
                 refresh_seconds: float = REFRESH_SECONDS, **kwargs: Any) -> None:  # fmt: skip
        self.state = st = LeadState(root, user, dataset)
        self.banner = HTML(self._sentence(st.error))
        self.viewer: Any = None
        if not st.allowed:
            super().__init__([self.banner], **kwargs)
            return
        self.log_panel = LogPanel(layout=Layout(width="100%"))
        guard = self.log_panel.guard
        self.title = HTML(f"<h3>Lead's view — {html.escape(st.user)}</h3>")
        self.notice = HTML("")
        self.dataset_dropdown = Dropdown(options=st.datasets, value=st.dataset or None, description="Dataset")
        self.refresh_button = Button(description="Refresh", icon="refresh")
        every = f"re-read every {refresh_seconds:g} s"
        self.auto_refresh = Checkbox(value=refresh_seconds > 0, description=every, indent=False)
        self.read_label = HTML("")
        self.progress = HTML("")
        self.agreement = HTML("")
        self.pair_dropdown = Dropdown(description="Pair", options=[])
        self.heatmap = Image(format="png", layout=Layout(width="320px"))
        self.queue = Select(options=[], rows=8, layout=Layout(width="640px"))
        self.open_button = Button(description="Open", icon="folder-open", button_style="info")
        self.side_by_side = HTML("")
        self.final_decision = ToggleButtons(options=list(DECISIONS), value=None, description="Final")
        self.final_comment = Text(placeholder="why (saved with the final decision)")
        self.record_button = Button(description="Record final decision", button_style="success")
        self.viewer_area = VBox([])
        self.adjudication = VBox(
            [self.side_by_side, HBox([self.final_decision]), HBox([self.final_comment, self.record_button]),
             self.viewer_area], layout=Layout(display="none", border="1px solid #ccc", padding="6px"),
        )  # fmt: skip
        self.report_button = Button(description="Write report", icon="table")
        self.report_links = HTML("")
        self.assign_source = Dropdown(description="Dataset", options=[])
        self.assign_users = SelectMultiple(description="Reviewers", options=[], rows=4)
        self.assign_overlap = Text(value="10%", description="Overlap")
        self.assign_seed = IntText(value=0, description="Seed")
        self.assign_name = Text(description="Name", placeholder="default: the dataset's name")
        self.assign_button = Button(description="Assign", icon="users")

        self.refresh_button.on_click(guard(lambda _: self.refresh()))
        self.open_button.on_click(guard(lambda _: self.open_case()))
        self.record_button.on_click(guard(lambda _: self.record()))
        self.report_button.on_click(guard(lambda _: self.write_report()))
        self.assign_button.on_click(guard(lambda _: self.assign()))
        self.dataset_dropdown.observe(guard(self._choose_dataset), "value")
        self.pair_dropdown.observe(guard(lambda _: self._show_heatmap()), "value")
        st.observe(guard(lambda _: self._show_status()), "status")  # only when a file changed
        st.observe(guard(lambda _: self._show_read_at()), "read_at")
        st.observe(guard(lambda c: setattr(self.banner, "value", self._sentence(c.new))), "error")
        st.observe(guard(lambda c: setattr(self.notice, "value", html.escape(c.new))), "notice")

        super().__init__(
            [
                self.title, self.banner, self.notice,
                HBox([self.dataset_dropdown, self.refresh_button, self.auto_refresh, self.read_label]),
                HTML("<b>Progress</b>"), self.progress,
                HTML("<b>Agreement</b>"), HBox([self.agreement, VBox([self.pair_dropdown, self.heatmap])]),
                HTML("<b>Disagreement queue</b>"), HBox([self.queue, self.open_button]), self.adjudication,
                HTML("<b>Final QC table</b>"), HBox([self.report_button, self.report_links]),
                HTML("<b>Assign a dataset to reviewers</b>"),
                HBox([VBox([self.assign_source, self.assign_users]),
                      VBox([self.assign_overlap, self.assign_seed, self.assign_name, self.assign_button])]),
                self.log_panel,
            ],
            **kwargs,
        )  # fmt: skip
        self.add_class("cmrqc-lead")
        named = {"progress": self.progress, "agreement": self.agreement, "queue": self.queue,
                 "final": self.final_decision, "final-comment": self.final_comment,
                 "side-by-side": self.side_by_side, "report-links": self.report_links}  # fmt: skip
        for name, widget in named.items():
            widget.add_class(f"cmrqc-{name}")  # CSS hooks for the browser tests
        self._refresh_assign_options()
        self._show_status()
        self._schedule = kernel_scheduler()
        self._period = refresh_seconds
        self._closed = False
        if self._schedule is not None and refresh_seconds > 0:
            self._schedule(guard(self._tick), refresh_seconds)

    @staticmethod
    def _sentence(text: str) -> str:
        if not text:
            return ""
        return f'<div class="cmrqc-banner" style="color:#b00020"><b>{html.escape(text)}</b></div>'

    # -- actions (one line each from the buttons)

    def refresh(self) -> None:
        """Re-read the reviewers' files and the consensus."""
        self.state.refresh()

    def open_case(self) -> None:
        """Open the selected disagreement: decisions side by side, and the case in the review screen."""
        if self.queue.value is None:
            self.state.notice = "Choose a case of the disagreement queue first."
            return
        item = self.state.open_case(self.queue.value)
        self.final_decision.value = item.adjudication.decision.decision if item.adjudication else None
        self.final_comment.value = item.adjudication.decision.comment if item.adjudication else ""
        self.side_by_side.value = side_by_side(item)
        self.adjudication.layout.display = "flex"
        self._show_in_viewer(item.patient, item.phase)

    def record(self) -> None:
        """Record the final decision on the open case into the consensus dataset."""
        self.state.record(self.final_decision.value, self.final_comment.value)
        if self.state.current is not None:
            self.side_by_side.value = side_by_side(self.state.current)

    def write_report(self) -> None:
        """Write the report CSV and the summary (HTML, PDF) in the lead's folder; offer them for download."""
        report = self.state.write_report()
        links = (
            (report.csv_path, "text/csv"),
            (report.html_path, "text/html"),
            (report.pdf_path, "application/pdf"),
        )
        parts = [data_link(f.read_bytes(), f.name, kind, f.name) for f, kind in links]
        self.report_links.value = " ".join(parts)

    def assign(self) -> None:
        """Split the chosen dataset of the lead between the chosen reviewers."""
        self.state.assign(self.assign_source.value, self.assign_users.value, self.assign_overlap.value,
                          self.assign_seed.value, self.assign_name.value)  # fmt: skip
        self._refresh_assign_options()
        self.dataset_dropdown.options = self.state.datasets

    def close(self) -> None:
        """Stop the periodic re-read and close the review screen too."""
        self._closed = True
        if self.viewer is not None:
            self.viewer.close()
        if hasattr(self, "log_panel"):
            self.log_panel.detach()
        super().close()

    # -- drawing

    def _tick(self) -> None:
        if self._closed:
            return
        if self.auto_refresh.value:
            self.state.refresh()
        self._schedule(self.log_panel.guard(self._tick), self._period)

    def _choose_dataset(self, change: Any) -> None:
        if change.new and change.new != self.state.dataset:
            self.adjudication.layout.display = "none"
            self.state.dataset = change.new

    def _refresh_assign_options(self) -> None:
        from ..qc.roles import team_members

        self.assign_source.options = self.state.own_datasets()
        self.assign_users.options = team_members(self.state.root)

    def _show_read_at(self) -> None:
        read = html.escape(self.state.read_at)
        self.read_label.value = f"<small>read {read}</small>" if self.state.status else ""

    def _show_status(self) -> None:
        status = self.state.status
        self._show_read_at()
        if status is None:
            self.progress.value = self.agreement.value = ""
            self.queue.options = []
            return
        problems = "".join(f"<div style='color:#b00020'>{html.escape(p)}</div>" for p in status.problems)
        with self.hold_sync():
            self.progress.value = problems + progress_table(status)
            self.agreement.value = agreement_table(status)
            pairs = [(f"{p.a} / {p.b}", i) for i, p in enumerate(status.pairs)]
            if [o for o in self.pair_dropdown.options] != pairs:
                self.pair_dropdown.options = pairs
                self.pair_dropdown.value = 0 if pairs else None
            self._show_heatmap()
            selected = self.queue.value
            self.queue.options = [(queue_label(q), i) for i, q in enumerate(status.queue)]
            if selected is not None and selected < len(status.queue):
                self.queue.value = selected

    def _show_heatmap(self) -> None:
        status = self.state.status
        index = self.pair_dropdown.value
        if status is None or index is None or index >= len(status.pairs):
            return
        self.heatmap.value = confusion_png(status.pairs[index])

    def _show_in_viewer(self, patient: str, phase: str) -> None:
        from .review import ReviewWidget
        from .state import ReviewState

        name = consensus_name(self.state.dataset)
        self.state.consensus()  # the file must exist before the review screen opens it
        if self.viewer is None or self.viewer.state.dataset != name:
            if self.viewer is not None:
                self.viewer.close()
            state = ReviewState(self.state.root, self.state.user, name, remember=False)
            self.viewer = ReviewWidget(state=state)
            self.viewer.decision_bar.layout.display = "none"  # the final decision is recorded above
            self.viewer_area.children = [self.viewer]
        with self.viewer.state.batch():
            self.viewer.state.jump_to(patient)
            self.viewer.state.phase = phase
