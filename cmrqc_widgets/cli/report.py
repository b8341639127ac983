"""``cmrqc report``: the final QC table of a team review (CSV) and its HTML summary.

:func:`register` adds the subcommand to the ``cmrqc`` parser; the handler returns an exit status
and raises :class:`~cmrqc_widgets.errors.CmrqcError` for a failure the user can fix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["cmd_report", "register"]


def register(subparsers) -> None:
    """Add the ``report`` subcommand to ``subparsers``."""
    summary = "one row per case and phase: consensus, every reviewer, agreement, volumes, EF, checks"
    r = subparsers.add_parser("report", help=summary, description=summary[0].upper() + summary[1:] + ".")
    r.add_argument("dataset", metavar="DATASET", help="dataset name in the reviewers' folders")
    r.add_argument("--root", metavar="DIR", help="data root (default: $CMRQC_ROOT, then ~/cmrqc)")
    r.add_argument("--lead", metavar="NAME",
                   help="whose consensus to use (default: $JUPYTERHUB_USER, $CMRQC_USER, the OS user)")
    r.add_argument("--users", nargs="+", metavar="NAME",
                   help="the reviewers (default: everyone but the lead with a file named DATASET)")
    r.add_argument("--out", default=None, metavar="CSV", help="report CSV (default: <dataset>.report.csv)")
    r.add_argument("--html", default=None, metavar="HTML",
                   help="HTML summary with the figures (default: <dataset>.summary.html)")
    r.add_argument("--pdf", default=None, metavar="PDF",
                   help="the same summary as PDF (default: <dataset>.summary.pdf)")
    r.add_argument("--metrics", metavar="CSV",
                   help="metrics CSV of `cmrqc metrics` (default: <dataset>.metrics.csv beside the files)")
    r.add_argument("--no-measure", action="store_true",
                   help="without a metrics CSV, leave the metric columns empty instead of measuring now")
    r.set_defaults(func=cmd_report)  # fmt: skip


def cmd_report(args: argparse.Namespace) -> int:
    """``cmrqc report``: write the CSV and the summary (HTML and PDF); print what they hold."""
    from ..names import resolve_user
    from ..qc.lead import read_team
    from ..qc.report_html import summary_html, summary_pdf
    from ..qc.study_report import load_metrics, report_rows, write_report_csv

    name = args.dataset if args.dataset.endswith(".json") else f"{args.dataset}.json"
    stem = name[: -len(".json")]
    status = read_team(args.root, name, lead=resolve_user(args.lead), reviewers=args.users)
    for problem in status.problems:
        print(f"cmrqc: {problem}", file=sys.stderr)
    metrics, source = load_metrics(status, args.metrics, measure=not args.no_measure)
    rows = report_rows(status, metrics)
    out = Path(args.out or f"{stem}.report.csv").expanduser()
    page = Path(args.html or f"{stem}.summary.html").expanduser()
    pdf = Path(args.pdf or f"{stem}.summary.pdf").expanduser()
    write_report_csv(rows, status.reviewers, out)
    summary_html(rows, status, page, metrics_source=source)
    summary_pdf(rows, status, pdf, metrics_source=source)
    settled = sum(r["consensus_source"] == "lead" for r in rows)
    disputed = sum(r["consensus_source"] == "disputed" for r in rows)
    print(f"Wrote {len(rows)} rows ({len(status.patients)} patients x 2 phases; reviewers "
          f"{', '.join(status.reviewers)}; {settled} decided by the lead, {disputed} still disputed) "
          f"to {out}, and the summary to {page} and {pdf}. Measurements: {source}.")  # fmt: skip
    return 1 if status.problems else 0
