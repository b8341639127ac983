"""A short summary of a team review, the figures a methods section reports, as HTML and as PDF.

:func:`summary_html` draws, from the report rows and the team status: the consensus decisions pie,
the matrix of pairwise Cohen's kappa between reviewers, and LV ejection fraction against LV
end-diastolic volume coloured by each case's decision. Figures are embedded as PNG (the file
stands alone: no folder of images, nothing fetched), beside a table of agreement per phase.
:func:`summary_pdf` writes the same facts and figures as a PDF (a page of text and table, then one
page per figure, vector graphics) for a supplement or an ethics report.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..names import DECISIONS
from .lead import TeamStatus, kappa_matrix

__all__ = ["SEVERITY", "case_decision", "figures", "summary_html", "summary_pdf"]

COLOURS = {"accept": "#2e7d32", "finetune": "#f9a825", "reject": "#c62828", "unclassified": "#6a1b9a",
           "disputed": "#ef6c00", "undecided": "#9e9e9e"}  # fmt: skip
SEVERITY = ("reject", "finetune", "unclassified", "accept")
"""A case's decision is its worse phase's, in this order."""


def case_decision(decisions: Sequence[str]) -> str:
    """One patient's decision from its phases' consensus: the worse of them; "undecided" if none."""
    for word in SEVERITY:
        if word in decisions:
            return word
    return "undecided"


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def figures(rows: list[dict[str, Any]], status: TeamStatus) -> dict[str, Any]:
    """The three matplotlib Figures: ``"pie"``, ``"agreement"``, ``"ef_edv"`` (none is shown on screen)."""
    from matplotlib.figure import Figure

    counts = Counter(r["consensus"] or r["consensus_source"] for r in rows)
    labels = [w for w in (*DECISIONS, "disputed", "undecided") if counts.get(w)]
    pie = Figure(figsize=(4.2, 3.6))
    ax = pie.subplots()
    if labels:
        ax.pie(
            [counts[w] for w in labels],
            labels=[f"{w} ({counts[w]})" for w in labels],
            colors=[COLOURS[w] for w in labels],
            autopct="%1.0f%%",
            startangle=90,
        )
    ax.set_title("Consensus decisions (case-phases)")

    users, m = kappa_matrix(status)
    grid = np.array([[np.nan if v is None else v for v in row] for row in m], float)
    agree = Figure(figsize=(1.2 + 0.9 * max(len(users), 2), 1.0 + 0.8 * max(len(users), 2)))
    ax = agree.subplots()
    image = ax.imshow(grid, cmap="RdYlGn", vmin=-1, vmax=1)
    ax.set_xticks(range(len(users)), users, rotation=30, ha="right")
    ax.set_yticks(range(len(users)), users)
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, "-" if np.isnan(value) else f"{value:.2f}", ha="center", va="center")
    agree.colorbar(image, ax=ax, label="Cohen's kappa")
    ax.set_title("Agreement between reviewers")

    per_patient: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        per_patient.setdefault(r["patient"], []).append(r)
    scatter = Figure(figsize=(5.2, 3.8))
    ax = scatter.subplots()
    for word in (*SEVERITY, "undecided"):
        xs, ys = [], []
        for phase_rows in per_patient.values():
            if case_decision([r["consensus"] for r in phase_rows]) != word:
                continue
            edv, ef = phase_rows[0].get("lv_edv_ml"), phase_rows[0].get("lv_ef")
            if isinstance(edv, int | float) and isinstance(ef, int | float):
                xs.append(edv)
                ys.append(ef)
        if xs:
            ax.scatter(
                xs, ys, c=COLOURS[word], label=f"{word} ({len(xs)})", edgecolors="black", linewidths=0.4
            )
    ax.set_xlabel("LV end-diastolic volume (ml)")
    ax.set_ylabel("LV ejection fraction (%)")
    ax.set_title("EF against EDV, by case decision (worse phase)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    return {"pie": pie, "agreement": agree, "ef_edv": scatter}


AGREEMENT_HEADER = ("Phase", "n", "Percent agreement", "Kappa", "Disagreements")


def _facts(rows: list[dict[str, Any]], status: TeamStatus, metrics_source: str) -> dict[str, Any]:
    """What both summaries say in words: the intro sentence, the consensus sources, the agreement table."""
    table = []
    for phase, a in status.agreement.phases.items() if status.agreement else []:
        percent = "-" if a.percent_agreement is None else f"{a.percent_agreement:.1f} %"
        kappa = "undefined" if a.kappa is None else f"{a.kappa:.3f}"
        table.append((phase, str(a.n), percent, f"{kappa} ({a.kappa_kind})", str(len(a.disagreements))))
    sources = Counter(r["consensus_source"] for r in rows)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return {
        "title": f"QC summary: {status.dataset}",
        "intro": f"{len(status.patients)} patients, {len(rows)} case-phases, reviewers "
        f"{', '.join(status.reviewers)}; consensus by {status.lead or 'nobody'}; written {when}. "
        f"Measurements: {metrics_source or 'none'}.",
        "sources": "Consensus source: " + ", ".join(f"{k} {v}" for k, v in sorted(sources.items())) + ".",
        "agreement": table,
    }


def summary_html(
    rows: list[dict[str, Any]],
    status: TeamStatus,
    path: str | os.PathLike[str] | None = None,
    metrics_source: str = "",
) -> str:
    """The HTML summary as text; also written to ``path`` if given."""
    e = html.escape
    facts = _facts(rows, status, metrics_source)
    figs = {name: _png(fig) for name, fig in figures(rows, status).items()}
    lines = ["<tr>" + "".join(f"<th>{e(c)}</th>" for c in AGREEMENT_HEADER) + "</tr>"]
    for phase, *cells in facts["agreement"]:
        lines.append(f"<tr><th>{e(phase)}</th>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    text = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(facts["title"])}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:1em auto}}td,th{{padding:2px 8px;text-align:left}}
img{{max-width:100%}}</style></head><body>
<h1>{e(facts["title"])}</h1>
<p>{e(facts["intro"])}</p>
<p>{e(facts["sources"])}</p>
<h2>Agreement on the shared cases</h2>
<table>{"".join(lines)}</table>
<h2>Figures</h2>
<img alt="Consensus decisions" src="data:image/png;base64,{figs["pie"]}">
<img alt="Agreement between reviewers" src="data:image/png;base64,{figs["agreement"]}">
<img alt="EF against EDV" src="data:image/png;base64,{figs["ef_edv"]}">
</body></html>
"""
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def summary_pdf(
    rows: list[dict[str, Any]],
    status: TeamStatus,
    path: str | os.PathLike[str],
    metrics_source: str = "",
) -> Path:
    """Write the summary as a PDF to ``path``: a page of facts and agreement, then the three figures.

    Returns
    -------
    Path
        ``path``; the PDF's Title metadata is the summary's title.
    """
    import textwrap

    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    facts = _facts(rows, status, metrics_source)
    front = Figure(figsize=(8.27, 11.69))  # A4 portrait
    front.text(0.08, 0.94, facts["title"], fontsize=16, weight="bold")
    body = "\n".join([*textwrap.wrap(facts["intro"], 90), "", *textwrap.wrap(facts["sources"], 90)])
    front.text(0.08, 0.90, body, fontsize=10, va="top")
    front.text(0.08, 0.74, "Agreement on the shared cases", fontsize=12, weight="bold")
    ax = front.add_axes((0.08, 0.55, 0.84, 0.17))
    ax.axis("off")
    if facts["agreement"]:
        ax.table(cellText=[list(r) for r in facts["agreement"]], colLabels=AGREEMENT_HEADER, loc="upper left")
    else:
        ax.text(0, 1, "No case was reviewed by two reviewers.", va="top")
    with PdfPages(path, metadata={"Title": facts["title"], "Creator": "cmrqc_widgets"}) as pdf:
        pdf.savefig(front)
        for fig in figures(rows, status).values():
            pdf.savefig(fig, bbox_inches="tight")
    return Path(path)
