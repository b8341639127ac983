"""The metrics strip under the banner: the current case's volumes, EF, mass and failed checks.

A thin view of :class:`~cmrqc_widgets.widgets.triage.Triage`: it redraws when the current
patient's summary arrives (a moment after the switch, from the background) and when the
dataset-wide suspicion makes progress ("computing suspicion… 3/10").
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from ipywidgets import HTML, HBox, Layout

from .queue import patient_name
from .summary import CaseSummary

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
    if summary.failed:
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
    status : ipywidgets.HTML
        "computing suspicion… n/N" until the whole dataset is measured.
    n_renders : int
        How many times the strip was redrawn (tests check slice moves never do it).
    """

    def __init__(self, triage: Any, guard: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        guard = guard or (lambda f: f)
        self._triage = triage
        self.html = HTML("", layout=Layout(flex="1 1 auto"))
        self.html.add_class("cmrqc-metrics")
        self.status = HTML("", layout=Layout(flex="0 0 auto", margin="0 0 0 12px"))
        self.n_renders = 0
        triage.observe(guard(self.refresh), ["current", "current_patient", "serial"])
        triage.observe(guard(self.refresh_status), ["done", "total", "ready", "source", "serial"])
        super().__init__(
            [self.html, self.status],
            layout=Layout(width="100%", padding="4px 6px", border="1px solid #e0e0e0", margin="2px 0"),
            **kwargs,
        )
        self.refresh()
        self.refresh_status()

    def refresh(self, change: Any = None) -> None:
        """Redraw the figures of the current patient (only when they changed)."""
        patient = self._triage.current_patient
        value = strip_html(self._triage.current, measuring=bool(patient))
        if patient:  # named, so the strip visibly belongs to the patient in the title
            value = f"<b class='cmrqc-metrics-patient'>{html.escape(patient_name(patient))}</b> · {value}"
        if value != self.html.value:
            self.html.value = value
            self.n_renders += 1

    def refresh_status(self, change: Any = None) -> None:
        """Redraw the dataset-wide status line (only when it changed)."""
        t = self._triage
        value = progress_html(t.done, t.total, t.ready, t.source, t.n_flagged)
        if value != self.status.value:
            self.status.value = value

    def sync_widgets(self) -> list[Any]:
        """Widgets a patient switch updates."""
        return [self.html, self.status]
