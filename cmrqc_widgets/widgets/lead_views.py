"""What the lead's screen draws from a :class:`~cmrqc_widgets.qc.lead.TeamStatus`: HTML tables and a heatmap.

Pure functions from the status to HTML text or PNG bytes; the widgets in
:mod:`cmrqc_widgets.widgets.lead` only put them on screen. Every name and comment is escaped.
"""

from __future__ import annotations

import html
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..names import DECISIONS
from ..qc.lead import PairAgreement, QueueItem, TeamStatus

__all__ = ["agreement_table", "confusion_png", "progress_table", "queue_label", "side_by_side"]

_TABLE = '<table class="cmrqc-lead-table" style="border-collapse:collapse">'


def _cell(text: object, tag: str = "td") -> str:
    return f'<{tag} style="padding:2px 10px;text-align:left">{html.escape(str(text))}</{tag}>'


def _row(cells: list[object], tag: str = "td") -> str:
    return "<tr>" + "".join(_cell(c, tag) for c in cells) + "</tr>"


def progress_table(status: TeamStatus, now: datetime | None = None, days: int = 7) -> str:
    """Per reviewer: "312 of 400 decided, last active ...", decisions on each of the last days, median s."""
    now = now or datetime.now(timezone.utc)
    dates = [(now - timedelta(days=d)).date().isoformat() for d in range(days - 1, -1, -1)]
    head = ["Reviewer", "Progress", "Per day (last 7, oldest first)", "Median s / case"]
    rows = [_row(head, "th")]
    for user, p in status.progress.items():
        per_day = " ".join(str(p.per_day.get(d, 0)) for d in dates)
        median = "-" if p.median_seconds is None else f"{p.median_seconds:.0f}"
        rows.append(_row([user, p.summary(now), per_day, median]))
    return _TABLE + "".join(rows) + "</table>"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


def _kappa(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.2f}"


def agreement_table(status: TeamStatus) -> str:
    """Overall agreement per phase (percent, Cohen's/Fleiss' kappa) and per pair of reviewers."""
    if status.agreement is None:
        return "<i>Agreement needs at least two reviewers with a file.</i>"
    rows = [_row(["Phase", "Shared cases decided by all", "Agreement", "Kappa", "Disagreements"], "th")]
    for phase, a in status.agreement.phases.items():
        kind = "Cohen" if a.kappa_kind == "cohen" else "Fleiss"
        rows.append(_row([phase, a.n, _percent(a.percent_agreement), f"{_kappa(a.kappa)} ({kind})",
                          len(a.disagreements)]))  # fmt: skip
    pairs = [_row(["Pair", "Case-phases both decided", "Agreement", "Cohen's kappa"], "th")]
    for p in status.pairs:
        pairs.append(_row([f"{p.a} / {p.b}", p.n, _percent(p.percent_agreement), _kappa(p.kappa)]))
    return _TABLE + "".join(rows) + "</table><br>" + _TABLE + "".join(pairs) + "</table>"


def confusion_png(pair: PairAgreement) -> bytes:
    """Heatmap of one pair's confusion matrix (both phases pooled), as PNG bytes."""
    import numpy as np
    from matplotlib.figure import Figure

    m = np.asarray(pair.confusion)
    fig = Figure(figsize=(3.8, 3.3))
    ax = fig.subplots()
    ax.imshow(m, cmap="Blues", vmin=0, vmax=max(int(m.max()), 1))
    ax.set_xticks(range(len(DECISIONS)), DECISIONS, rotation=30, ha="right")
    ax.set_yticks(range(len(DECISIONS)), DECISIONS)
    ax.set_xlabel(pair.b)
    ax.set_ylabel(pair.a)
    for (i, j), count in np.ndenumerate(m):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > m.max() / 2 else "black")
    ax.set_title(f"kappa {_kappa(pair.kappa)}, n={pair.n}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def queue_label(item: QueueItem) -> str:
    """One line of the disagreement queue: patient, phase, everyone's decision, the final one if any."""
    votes = ", ".join(f"{u} {d.decision}" for u, d in item.decisions.items())
    done = f"  ✓ {item.adjudication.decision.decision}" if item.adjudication else ""
    return f"{Path(item.patient).name} {item.phase}: {votes}{done}"


def side_by_side(item: QueueItem) -> str:
    """Every reviewer's decision and comment on one case-phase, and the lead's final decision if any."""
    rows = [_row(["Reviewer", "Decision", "Comment"], "th")]
    rows += [_row([u, d.decision or "none", d.comment]) for u, d in item.decisions.items()]
    if item.adjudication is not None:
        a = item.adjudication
        who = f"final ({a.lead}, {a.time[:16].replace('T', ' ')})"
        rows.append(_row([who, a.decision.decision, a.decision.comment]))
    title = html.escape(f"{Path(item.patient).name}, {item.phase}")
    return f"<b>{title}</b>{_TABLE}{''.join(rows)}</table>"
