"""The metrics strip under the banner: the current case's volumes, EF, mass and failed checks.

A thin view of :class:`~cmrqc_widgets.widgets.triage.Triage`: it redraws when the current
patient's summary arrives (a moment after the switch, from the background) and when the
dataset-wide suspicion makes progress ("computing suspicion… 3/10").
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from ipywidgets import HTML, Button, HBox, Layout, VBox

from .queue import patient_name
from .summary import CaseSummary

MAX_JUMPS = 6
"""Most "go to slice" buttons the strip shows (the first failed checks that name a slice)."""

FAILED_COLOUR = "#b00020"
PASSED_COLOUR = "#2e7d32"


def _ml(value: float | None, unit: str = "ml") -> str:
    return "—" if value is None else f"{value:.0f} {unit}"


def _ventricle(name: str, volumes: tuple[float | None, float | None, float | None]) -> str:
    edv, esv, ef = volumes
    return f"<b>{name}</b> EDV {_ml(edv)} · ESV {_ml(esv)} · EF {_ml(ef, '%')}"


def strip_html(summary: CaseSummary | None, measuring: bool) -> str:
    """HTML of the strip for one patient's summary (or "measuring…" while it is computed)."""
    if summary is None:
        text = "measuring the automatic checks…" if measuring else "no case"
        return f"<span style='color:#757575'><i>{text}</i></span>"
    mass = "—" if summary.myo_mass_g is None else f"{summary.myo_mass_g:.0f} g"
    parts = [
        _ventricle("LV", summary.lv),
        _ventricle("RV", summary.rv),
        f"<b>Myo mass</b> {mass}" + (f" <small>({summary.mass_phase})</small>" if summary.mass_phase else ""),
    ]
    if summary.failed and not summary.flagged:
        notes = "; ".join(html.escape(m) for m in summary.failed)
        verdict = (
            f"<div style='color:{PASSED_COLOUR}'>✓ no failed check above the flag threshold "
            f"<small style='color:#757575'>(minor: {notes})</small></div>"
        )
    elif summary.failed:
        n = len(summary.failed)
        checks = "".join(
            f"<li class='cmrqc-failed-check' style='color:{FAILED_COLOUR}'>{html.escape(m)}</li>"
            for m in summary.failed
        )
        verdict = (
            f"<div style='color:{FAILED_COLOUR};font-weight:bold'>⚠ {n} failed check{'s' if n > 1 else ''} "
            f"<small>(suspicion {summary.suspicion:g})</small></div>"
            f"<ul style='margin:0 0 0 18px;padding:0;color:{FAILED_COLOUR}'>{checks}</ul>"
        )
    else:
        verdict = f"<div style='color:{PASSED_COLOUR}'>✓ no failed check</div>"
    return f"<div>{' &nbsp;│&nbsp; '.join(parts)}</div>{verdict}"


def progress_html(done: int, total: int, ready: bool, source: str, n_flagged: int) -> str:
    """The dataset-wide suspicion status in a few words."""
    if total == 0:
        return ""
    if not ready:
        return f"<small style='color:#757575'>computing suspicion… {done}/{total}</small>"
    where = f" · {html.escape(source)}" if source else ""
    text = f"suspicion of {total} patients ready: {n_flagged} flagged{where}"
    return f"<small style='color:#757575'>{text}</small>"


class MetricsStrip(HBox):
    """Volumes, ejection fraction, myocardial mass and failed checks of the current patient.

    Attributes
    ----------
    html : ipywidgets.HTML
        The current patient's figures and failed checks (failed ones in red).
    jumps : ipywidgets.HBox
        One button per failed check that names a slice ("ES slice 5", its tooltip naming the
        checks failing there): a click shows that phase and slice (through ``go_to(phase, slice)``).
    status : ipywidgets.HTML
        "computing suspicion… n/N" until the whole dataset is measured.
    n_renders : int
        How many times the strip was redrawn (tests check slice moves never do it).
    """

    def __init__(
        self,
        triage: Any,
        guard: Callable[..., Any] | None = None,
        go_to: Callable[[str, int], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        guard = guard or (lambda f: f)
        self._guard = guard
        self._triage = triage
        self._go_to = go_to
        self._targets: tuple = ()
        self._tips: tuple[str, ...] = ()
        # A fixed set of buttons, reused for every patient, so no widget piles up.
        self._pool = [self._jump_button(i) for i in range(MAX_JUMPS if go_to is not None else 0)]
        self.html = HTML("", layout=Layout(flex="1 1 auto"))
        self.html.add_class("cmrqc-metrics")
        self.jumps = HBox([], layout=Layout(flex_flow="row wrap"))
        self.status = HTML("", layout=Layout(flex="0 0 auto", margin="0 0 0 12px"))
        self.n_renders = 0
        triage.observe(guard(self.refresh), ["current", "current_patient", "serial"])
        triage.observe(guard(self.refresh_status), ["done", "total", "ready", "source", "serial"])
        super().__init__(
            [VBox([self.html, self.jumps], layout=Layout(flex="1 1 auto")), self.status],
            layout=Layout(width="100%", padding="4px 6px", border="1px solid #e0e0e0", margin="2px 0"),
            **kwargs,
        )
        self.refresh()
        self.refresh_status()

    def refresh(self, change: Any = None) -> None:
        """Redraw the figures of the current patient (only when they changed)."""
        summary = self._triage.current
        patient = self._triage.current_patient
        value = strip_html(summary, measuring=bool(patient))
        if patient:  # named, so the strip visibly belongs to the patient in the title
            value = f"<b class='cmrqc-metrics-patient'>{html.escape(patient_name(patient))}</b> · {value}"
        if value != self.html.value:
            self.html.value = value
            self.n_renders += 1
        targets = _targets(summary)[:MAX_JUMPS] if self._go_to is not None else ()
        tips = tuple(_tooltip(summary, phase, k) for phase, k in targets)
        if (targets, tips) != (self._targets, self._tips):
            self._targets, self._tips = targets, tips
            for button, (phase, k), tip in zip(self._pool, targets, tips, strict=False):
                button.description = f"{phase} slice {k + 1}"
                button.tooltip = tip
            self.jumps.children = self._pool[: len(targets)]

    def _jump_button(self, i: int) -> Button:
        button = Button(layout=Layout(width="auto", height="24px", margin="2px 4px 0 0"))
        button.add_class("cmrqc-goto-slice")
        button.on_click(self._guard(lambda _: self._go_to(*self._targets[i])))
        return button

    def refresh_status(self, change: Any = None) -> None:
        """Redraw the dataset-wide status line (only when it changed)."""
        t = self._triage
        value = progress_html(t.done, t.total, t.ready, t.source, t.n_flagged)
        if value != self.status.value:
            self.status.value = value

    def sync_widgets(self) -> list[Any]:
        """Widgets a patient switch updates."""
        return [self.html, self.status, self.jumps]


def _targets(summary: CaseSummary | None) -> tuple[tuple[str, int], ...]:
    """The distinct (phase, slice) of the failed checks that name one, in order."""
    if summary is None:
        return ()
    return tuple(dict.fromkeys((p, k) for p, k in summary.where if p is not None and k is not None))


def _tooltip(summary: CaseSummary | None, phase: str, k: int) -> str:
    """What a slice button says on hover: the slice and the checks that fail on it."""
    pairs = zip(summary.failed, summary.where, strict=False) if summary is not None else ()
    checks = [m for m, where in pairs if where == (phase, k)]
    return f"Show {phase}, slice {k + 1}, where it fails: " + "; ".join(checks)
