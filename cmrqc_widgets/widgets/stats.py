"""Stats panel: the dataset switch, a pie chart of the decisions, and downloads of the dataset.

The pie is a small SVG written here (a fraction of a millisecond, where a matplotlib figure took
~60 ms per save) shown in an ``Image`` widget; it is redrawn only when the counts change. The
downloads are ``data:`` links, so the browser saves the file without any server route (works
under Voilà and JupyterHub alike); for a small dataset they are regenerated after every save, for
a large one a button prepares them on request (encoding 10,000 patients after every click would
cost more than the click).
"""

from __future__ import annotations

import base64
import html
import math
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
"""Dataset files larger than this are not re-encoded into links after every save; a button prepares them."""

MAX_INLINE_PATIENTS = 500
"""Datasets with more patients than this get their download links from a button, not every save."""


def pie_svg(counts: dict[str, int], title: str = "", width: int = 320, height: int = 230) -> bytes:
    """SVG bytes of a pie chart of ``counts`` (decision -> n) with a legend of counts and percentages."""
    keys = [k for k in PIE_ORDER if counts.get(k, 0) > 0]
    total = sum(counts[k] for k in keys)
    radius, cx, cy = 80.0, 95.0, 125.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    if title:
        parts.append(
            f'<text x="{width / 2:g}" y="18" font-size="12" text-anchor="middle">{html.escape(title)}</text>'
        )
    if not total:
        parts.append(f'<text x="{cx:g}" y="{cy:g}" font-size="12" text-anchor="middle">no patients</text>')
    angle = -math.pi / 2  # from 12 o'clock, clockwise
    for k in keys:
        share = counts[k] / total
        colour = PIE_COLOURS[k]
        if share >= 1.0:
            parts.append(f'<circle cx="{cx:g}" cy="{cy:g}" r="{radius:g}" fill="{colour}"/>')
            continue
        end = angle + 2 * math.pi * share
        x0, y0 = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
        x1, y1 = cx + radius * math.cos(end), cy + radius * math.sin(end)
        large = 1 if share > 0.5 else 0
        arc = f"A{radius:g},{radius:g} 0 {large} 1 {x1:.2f},{y1:.2f}"
        parts.append(
            f'<path d="M{cx:g},{cy:g} L{x0:.2f},{y0:.2f} {arc} Z" fill="{colour}" '
            'stroke="white" stroke-width="1"/>'
        )
        angle = end
    for row, k in enumerate(keys):
        y = 60 + 22 * row
        label = f"{PIE_LABELS[k]} {counts[k]} ({100 * counts[k] / total:.0f} %)"
        parts.append(f'<rect x="190" y="{y - 10}" width="12" height="12" fill="{PIE_COLOURS[k]}"/>')
        parts.append(f'<text x="207" y="{y}" font-size="11">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts).encode("utf-8")


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
        self.stats_image = Image(format="svg+xml", layout=Layout(width="320px", height="230px"))
        self.stats_table = HTML("")
        self.downloads = HTML("")
        self.prepare_button = Button(
            description="Prepare downloads", icon="download", layout=Layout(display="none")
        )
        self.n_renders = 0
        self._drawn: tuple[Any, ...] | None = None
        self._links_for: tuple[Any, ...] | None = None

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
        """Redraw the pie chart and the table if the counts changed; bring the downloads up to date."""
        state = self._state
        stats = state.statistics()
        if stats is None:
            drawn: tuple[Any, ...] = ("none",)
            image, table = pie_svg({}, "no dataset open"), ""
        else:
            drawn = (state.dataset, tuple(sorted(stats.counts["all"].items())), stats.total)
            image = table = None
        if drawn != self._drawn:
            self._drawn = drawn
            if stats is not None:
                image = pie_svg(stats.counts["all"], f"{state.dataset}: ED + ES")
                table = _table(stats)
            self.stats_image.value = image
            self.stats_table.value = table
            self.n_renders += 1
        self.refresh_downloads()

    def refresh_downloads(self, force: bool = False) -> None:
        """Regenerate the JSON and CSV links (those of a large dataset only when ``force``)."""
        state = self._state
        dataset = state.dataset_obj
        if dataset is None:
            self._show_links("", prepare=False)
            return
        version = (dataset, state.revision)
        if version == self._links_for:
            return
        path = Path(dataset.path)
        large = len(state.patients) > MAX_INLINE_PATIENTS or (
            path.exists() and path.stat().st_size > MAX_INLINE_BYTES
        )
        if large and not force:
            self._links_for = None
            self._show_links("<small>Downloads of a large dataset are prepared on request.</small>", True)
            return
        stem = path.stem
        json_bytes = _dataset_json(dataset)
        csv_bytes = dataset.to_csv().encode("utf-8")
        self._links_for = version
        self._show_links(
            data_link(json_bytes, f"{stem}.json", "application/json", "Download JSON")
            + "&nbsp;"
            + data_link(csv_bytes, f"{stem}.csv", "text/csv", "Download CSV"),
            prepare=False,
        )

    def _show_links(self, value: str, prepare: bool) -> None:
        if self.downloads.value != value:
            self.downloads.value = value
        display = None if prepare else "none"
        if self.prepare_button.layout.display != display:
            self.prepare_button.layout.display = display

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
