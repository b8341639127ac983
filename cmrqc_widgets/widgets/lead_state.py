"""LeadState: the one state of the lead's screen, and every action the lead can take.

Guarantees: who the lead is, and whose files are read, come from the server's files
(``users.json`` and the data root), never from a widget value; a user who is not in the ``leads``
group gets one sentence and nothing is read. Reviewers' files are only read
(:mod:`cmrqc_widgets.store.snapshot`); the lead writes only in their own folder (the consensus
dataset, the report) and, through :func:`~cmrqc_widgets.qc.team.assign`, new files for reviewers
(never overwriting one). Values arriving from the browser (decision, reviewers, overlap) are
checked here, since a crafted client can send anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from traitlets import Any as AnyTrait
from traitlets import HasTraits, List, Unicode, observe

from ..errors import AuthError, CmrqcError
from ..names import DECISIONS, resolve_root, resolve_user
from ..qc.consensus import CONSENSUS_SUFFIX, adjudicate, open_consensus
from ..qc.lead import QueueItem, TeamStatus, read_team
from ..qc.roles import is_lead, lead_by_hub, team_members
from ..store import QCStore
from ..store.snapshot import SnapshotCache

__all__ = ["LeadState", "Report"]


@dataclass(frozen=True)
class Report:
    """What :meth:`LeadState.write_report` wrote: CSV, HTML and PDF summary, row count, metrics' source."""

    csv_path: Path
    html_path: Path
    pdf_path: Path
    rows: int
    metrics_source: str


class LeadState(HasTraits):
    """The lead's view of one team dataset.

    Parameters
    ----------
    root : path, optional
        Data root; ``CMRQC_ROOT`` or the default when omitted.
    user : str, optional
        The lead; ``JUPYTERHUB_USER``, else ``CMRQC_USER``, else the OS user when omitted.
    dataset : str, optional
        The reviewers' dataset file name; by default the one most team members have.
    """

    dataset = Unicode("", help="The reviewers' dataset file name ('' when none).")
    datasets = List(Unicode(), help="Dataset names some team member has.")
    status = AnyTrait(None, allow_none=True, help="The TeamStatus last read, or None.")
    current = AnyTrait(None, allow_none=True, help="The QueueItem opened for adjudication, or None.")
    error = Unicode("", help="One sentence when the view cannot be shown ('' when fine).")
    notice = Unicode("", help="What the last action did.")
    read_at = Unicode("", help="When the files were last read, HH:MM:SS UTC.")

    def __init__(self, root: Any = None, user: str | None = None, dataset: str | None = None) -> None:
        super().__init__()
        self.root = resolve_root(root)
        self.user = resolve_user(user)
        self.cache = SnapshotCache()
        self._consensus: Any = None
        self._opened_at = 0.0
        try:
            self.allowed = lead_by_hub(self.user) or is_lead(self.root, self.user)
        except AuthError as exc:
            self.allowed, self.error = False, str(exc)
            return
        if not self.allowed:
            self.error = (
                f"{self.user} is not a lead: the lead's view is only for members of the leads group "
                f"of {self.root / 'users.json'}."
            )
            return
        self.refresh_datasets()
        self.dataset = dataset if dataset is not None else self._default_dataset()
        if not self.dataset:
            self.error = f"No reviewer has a dataset yet under {self.root / 'users'}; assign one below."

    # -- reading

    def refresh_datasets(self) -> list[str]:
        """Re-list the dataset names team members have (consensus files left out)."""
        self._holders: dict[str, int] = {}
        for member in team_members(self.root):
            try:
                names = QCStore(self.root, member).datasets()
            except (CmrqcError, OSError):
                continue  # a name that is not a user, or a folder the lead may not list
            for name in names:
                if not name.endswith(CONSENSUS_SUFFIX):
                    self._holders[name] = self._holders.get(name, 0) + 1
        self.datasets = sorted(self._holders)
        return self.datasets

    def _default_dataset(self) -> str:
        # The team's dataset is the one most reviewers hold, not the lead's own source file.
        return max(self.datasets, key=lambda n: self._holders[n], default="")

    @observe("dataset")
    def _on_dataset(self, change: Any) -> None:
        self.current = None
        self._consensus = None
        self.refresh()

    def refresh(self) -> TeamStatus | None:
        """Re-read the files (only those changed since the last read) and publish the new status."""
        if not self.allowed or not self.dataset:
            return None
        try:
            status = read_team(self.root, self.dataset, lead=self.user, cache=self.cache)
        except CmrqcError as exc:
            self.error, self.status = str(exc), None
            return None
        self.error = ""
        self.read_at = datetime.now(timezone.utc).strftime("%H:%M:%S UTC")
        if status != self.status:
            self.status = status
        if self.current is not None:
            key = (self.current.patient, self.current.phase)
            self.current = next((q for q in status.queue if (q.patient, q.phase) == key), self.current)
        return status

    # -- adjudication

    def open_case(self, index: int) -> QueueItem:
        """Open the queue's ``index``-th disagreement for adjudication."""
        if self.status is None or not 0 <= int(index) < len(self.status.queue):
            raise CmrqcError("Choose a case of the disagreement queue first.")
        self.current = self.status.queue[int(index)]
        self._opened_at = time.monotonic()
        return self.current

    def consensus(self) -> Any:
        """The lead's consensus :class:`~cmrqc_widgets.store.Dataset` (created on first use)."""
        if self._consensus is None:
            patients = self.status.patients if self.status is not None else []
            self._consensus = open_consensus(self.root, self.user, self.dataset, patients)
        return self._consensus

    def record(self, decision: Any, comment: Any = "") -> None:
        """Record the final decision on the open case, settling every reviewer's decision on it."""
        if self.current is None:
            raise CmrqcError("Open a case of the disagreement queue first.")
        if decision not in DECISIONS:
            raise CmrqcError(f"Choose a final decision: one of {', '.join(DECISIONS)}.")
        item = self.current
        seconds = round(time.monotonic() - self._opened_at, 1) if self._opened_at else None
        adjudicate(self.consensus(), item.patient, item.phase, decision, str(comment or ""), item.decisions,
                   seconds=seconds)  # fmt: skip
        self.consensus().flush()
        self.notice = f"Final decision on {Path(item.patient).name} {item.phase}: {decision}."
        self.refresh()

    # -- the report and assignment

    def write_report(self) -> Report:
        """Write ``<stem>.report.csv`` and ``<stem>.summary.html`` / ``.pdf`` into the lead's folder."""
        from ..qc.report_html import summary_html, summary_pdf
        from ..qc.study_report import load_metrics, report_rows, write_report_csv

        status = self.refresh()
        if status is None:
            raise CmrqcError(self.error or "Choose a dataset first.")
        metrics, source = load_metrics(status)
        rows = report_rows(status, metrics)
        folder = QCStore(self.root, self.user).folder
        folder.mkdir(parents=True, exist_ok=True)
        stem = self.dataset[: -len(".json")]
        csv_path, html_path = folder / f"{stem}.report.csv", folder / f"{stem}.summary.html"
        write_report_csv(rows, status.reviewers, csv_path)
        summary_html(rows, status, html_path, metrics_source=source)
        pdf_path = summary_pdf(rows, status, html_path.with_suffix(".pdf"), metrics_source=source)
        self.notice = f"Report of {len(rows)} rows written to {csv_path} (measurements: {source})."
        return Report(csv_path, html_path, pdf_path, len(rows), source)

    def own_datasets(self) -> list[str]:
        """The lead's own dataset files (what can be assigned)."""
        return [n for n in QCStore(self.root, self.user).datasets() if not n.endswith(CONSENSUS_SUFFIX)]

    def assign(self, source: Any, reviewers: Any, overlap: Any, seed: Any, name: Any = "") -> str:
        """Split the lead's dataset ``source`` between ``reviewers`` (rules of ``cmrqc assign``)."""
        from ..qc.team import assign, parse_fraction

        if source not in self.own_datasets():
            raise CmrqcError(f"{source!r} is not one of your datasets.")
        members = team_members(self.root)
        chosen = list(reviewers or ())
        if not chosen or any(r not in members for r in chosen):
            raise CmrqcError("Choose reviewers of the team (users.json) to assign the dataset to.")
        try:
            fraction, seed = parse_fraction(overlap), int(seed)
        except (TypeError, ValueError) as exc:
            raise CmrqcError(str(exc)) from None
        out = str(name or "").strip() or None
        if out is not None and not out.endswith(".json"):
            out += ".json"
        result = assign(self.root, source, chosen, overlap=fraction, seed=seed, owner=self.user, name=out)
        counts = ", ".join(f"{u} {len(p)}" for u, p in result.patients.items())
        self.notice = f"Assigned {result.dataset}: {counts} patients, {len(result.overlap)} shared by all."
        self.refresh_datasets()
        return self.notice

