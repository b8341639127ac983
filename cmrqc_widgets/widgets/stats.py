"""Stats panel: the dataset switch, a pie chart of the decisions, and downloads of the dataset.

The pie is drawn with matplotlib's object API (no pyplot global figure) into PNG bytes shown in an
``Image`` widget, and redrawn after every save. The downloads are ``data:`` links regenerated after
every save, so the browser saves the file without any server route (works under Voilà and
JupyterHub alike).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ipywidgets import HTML, Button, Dropdown, HBox, Image, Layout, VBox

from ..names import DECISIONS, NO_DECISION, PHASES

PIE_ORDER: tuple[str, ...] = (*DECISIONS, NO_DECISION)
PIE_LABELS = {
    "accept": "accept",
    "reject": "reject",
    "finetune": "fine-tune",
    "unclassified": "unclassified",
    NO_DECISION: "no decision",
}
PIE_COLOURS = {
    "accept": "#2e7d32",
    "reject": "#c62828",
    "finetune": "#ef6c00",
    "unclassified": "#1565c0",
    NO_DECISION: "#bdbdbd",
}
MAX_INLINE_BYTES = 4_000_000
"""Datasets larger than this are not re-encoded into links after every save; a button prepares them."""


def pie_png(counts: dict[str, int], title: str = "", size: float = 3.2) -> bytes:
    """PNG bytes of a pie chart of ``counts`` (decision -> n) with counts and percentages."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(size, size * 0.8), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    keys = [k for k in PIE_ORDER if counts.get(k, 0) > 0]
    values = [counts[k] for k in keys]
    total = sum(values)
    if total:
        ax.pie(
            values,
            labels=[f"{PIE_LABELS[k]}\n{counts[k]} ({100 * counts[k] / total:.0f} %)" for k in keys],
            colors=[PIE_COLOURS[k] for k in keys],
            startangle=90,
            counterclock=False,
            wedgeprops={"linewidth": 1, "edgecolor": "white"},
            textprops={"fontsize": 8},
        )
    else:
        ax.text(0.5, 0.5, "no patients", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def data_link(data: bytes, filename: str, mime: str, label: str) -> str:
    """An HTML ``<a download>`` link carrying ``data`` in a ``data:`` URI."""
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f'<a download="{html.escape(filename)}" href="data:{mime};base64,{encoded}" '
        f'class="jupyter-button mod-info" style="padding:2px 10px;text-decoration:none;color:white">'
        f"{html.escape(label)}</a>"
    )


class StatsPanel(VBox):
    """Dataset dropdown (re-listed on open, hover and refresh), pie chart, table, downloads.

    Attributes
    ----------
    dataset_dropdown, refresh_button, stats_image, stats_table, downloads, prepare_button
    """

    def __init__(self, state: Any, guard: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        guard = guard or (lambda f: f)
        self._state = state
        self._quiet = False
        self.dataset_dropdown = Dropdown(options=[], description="Dataset", layout=Layout(width="280px"))
        self.refresh_button = Button(
            icon="refresh", tooltip="Look for new dataset files", layout=Layout(width="36px")
        )
        self.stats_image = Image(format="png", layout=Layout(width="320px", height="256px"))
        self.stats_table = HTML("")
        self.downloads = HTML("")
        self.prepare_button = Button(
            description="Prepare downloads", icon="download", layout=Layout(display="none")
        )
        self.n_renders = 0

        self.dataset_dropdown.observe(guard(self._on_pick), "value")
        self.refresh_button.on_click(guard(lambda _: state.refresh_datasets()))
        self.prepare_button.on_click(guard(lambda _: self.refresh_downloads(force=True)))
        state.observe(guard(self._refresh_options), ["datasets", "dataset"])
        state.observe(guard(self.refresh), ["revision", "patients"])
        super().__init__(
            [
                HBox([self.dataset_dropdown, self.refresh_button]),
                self.stats_image,
                self.stats_table,
                HBox([self.downloads, self.prepare_button]),
            ],
            layout=Layout(flex="0 0 auto", min_width="320px"),
            **kwargs,
        )
        self._refresh_options()
        self.refresh()
        self._watch_hover(guard)

    def _watch_hover(self, guard: Callable[..., Any]) -> None:
        # Re-list the dataset files when the pointer reaches the dropdown: a file created meanwhile
        # (by `cmrqc assign`, a colleague, a script) is there before the list opens.
        from ipyevents import Event

        self._hover = Event(source=self.dataset_dropdown, watched_events=["mouseenter"])
        self._hover.on_dom_event(guard(lambda _: self._state.refresh_datasets()))

    def _on_pick(self, change: Any) -> None:
        if not self._quiet and change.new and change.new != self._state.dataset:
            self._state.open_dataset(change.new)

    def _refresh_options(self, change: Any = None) -> None:
        state = self._state
        options = list(state.datasets)
        if state.dataset and state.dataset not in options:
            options.append(state.dataset)
        self._quiet = True
        try:
            if tuple(options) != tuple(self.dataset_dropdown.options):
                self.dataset_dropdown.options = options
            self.dataset_dropdown.value = state.dataset or None
        finally:
            self._quiet = False

    def refresh(self, change: Any = None) -> None:
        """Redraw the pie chart and the table, and regenerate the download links."""
        state = self._state
        stats = state.statistics()
        if stats is None:
            self.stats_image.value = pie_png({}, "no dataset open")
            self.stats_table.value = ""
        else:
            self.stats_image.value = pie_png(stats.counts["all"], f"{state.dataset}: ED + ES")
            self.stats_table.value = _table(stats)
        self.n_renders += 1
        self.refresh_downloads()

    def refresh_downloads(self, force: bool = False) -> None:
        """Regenerate the JSON and CSV links (large datasets only when ``force``)."""
        dataset = self._state.dataset_obj
        if dataset is None:
            self.downloads.value = ""
            self.prepare_button.layout.display = "none"
            return
        path = Path(dataset.path)
        size = path.stat().st_size if path.exists() else 0
        if size > MAX_INLINE_BYTES and not force:
            self.downloads.value = "<small>Downloads of a large dataset are prepared on request.</small>"
            self.prepare_button.layout.display = None
            return
        self.prepare_button.layout.display = "none"
        stem = path.stem
        json_bytes = _dataset_json(dataset)
        csv_bytes = dataset.to_csv().encode("utf-8")
        self.downloads.value = (
            data_link(json_bytes, f"{stem}.json", "application/json", "Download JSON")
            + "&nbsp;"
            + data_link(csv_bytes, f"{stem}.csv", "text/csv", "Download CSV")
        )

    def sync_widgets(self) -> list[Any]:
        """Widgets a save or dataset switch updates."""
        return [
            self.dataset_dropdown,
            self.stats_image,
            self.stats_table,
            self.downloads,
            self.prepare_button,
        ]


def _dataset_json(dataset: Any) -> bytes:
    """The dataset file as reviewers know it (what the old app's download gave)."""
    dataset.flush()
    return Path(dataset.path).read_bytes()


def _table(stats: Any) -> str:
    head = "".join(f"<th style='padding:0 6px'>{html.escape(PIE_LABELS[k])}</th>" for k in PIE_ORDER)
    rows = []
    for phase in (*PHASES, "all"):
        cells = "".join(
            f"<td style='text-align:right;padding:0 6px'>{stats.counts[phase].get(k, 0)} "
            f"<small>({stats.percentages[phase].get(k, 0.0):.0f} %)</small></td>"
            for k in PIE_ORDER
        )
        rows.append(
            f"<tr><th style='text-align:left'>{'ED + ES' if phase == 'all' else phase}</th>{cells}</tr>"
        )
    return f"<table style='font-size:11px'><tr><th></th>{head}</tr>{''.join(rows)}</table>"
