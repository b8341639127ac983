"""What the lead sees of a team review: progress, agreement, the disagreement queue, read from the files.

:func:`read_team` reads every reviewer's copy of one dataset (``<root>/users/<reviewer>/<name>``)
and the lead's consensus dataset without writing anything (:mod:`cmrqc_widgets.store.snapshot`),
and returns a :class:`TeamStatus`:

- per reviewer, :class:`ReviewerProgress`: decided case-phases of their assignment, last activity,
  decisions per day and median seconds per case, from the journal;
- agreement overall (:func:`cmrqc_widgets.qc.team.agreement_of`: percent agreement, Cohen's or
  Fleiss' kappa) and per pair of reviewers (Cohen's kappa, confusion matrix);
- the disagreement queue: shared cases where reviewers chose differently, with the lead's final
  decision once there is one.

A reviewer listed but without a file, or with a corrupt one, is left out with one sentence in
``TeamStatus.problems``; the others are still read. Pass a :class:`SnapshotCache` to re-read
only files that changed (a screen polling every few seconds then costs a few ``os.stat`` calls).
"""

from __future__ import annotations

import itertools
import os
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import CmrqcError
from ..names import DECISIONS, PHASES, check_dataset_name, resolve_root, user_folder
from ..store import Decision
from ..store.snapshot import Snapshot, SnapshotCache
from .consensus import Adjudication, adjudications, consensus_path
from .roles import reviewers_of
from .team import AgreementResult, agreement_of, cohen_kappa, confusion_matrix

__all__ = [
    "PairAgreement",
    "QueueItem",
    "ReviewerProgress",
    "TeamStatus",
    "ago",
    "kappa_matrix",
    "read_team",
    "reviewer_progress",
]


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """``"10 min ago"``, ``"3 h ago"``, ``"2 days ago"``, ``"just now"``; ``"never"`` for None."""
    if moment is None:
        return "never"
    seconds = ((now or datetime.now(timezone.utc)) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86400)
    return f"{days} day{'s' if days > 1 else ''} ago"


@dataclass(frozen=True)
class ReviewerProgress:
    """One reviewer's progress on their file: case-phases decided of those assigned, and pace.

    ``per_day`` maps a UTC date (``"2026-12-01"``) to the saves that set a decision that day;
    ``median_seconds`` is the median over case-phases of the seconds recorded for them (summed
    over their saves), None when no save recorded any.
    """

    user: str
    assigned: int
    decided: int
    last_active: datetime | None
    per_day: dict[str, int]
    median_seconds: float | None

    def summary(self, now: datetime | None = None) -> str:
        """``"312 of 400 decided, last active 10 min ago"``."""
        return f"{self.decided} of {self.assigned} decided, last active {ago(self.last_active, now)}"


def reviewer_progress(user: str, snapshot: Snapshot) -> ReviewerProgress:
    """Progress of ``user`` from their dataset snapshot (file and journal)."""
    assigned = len(snapshot.decisions) * len(PHASES)
    decided = sum(
        d.decision is not None for by_phase in snapshot.decisions.values() for d in by_phase.values()
    )
    per_day: Counter[str] = Counter()
    seconds: dict[tuple[str, str], float] = {}
    last = None
    for record in snapshot.records:
        moment = _parse_time(str(record.get("time", "")))
        if moment is not None:
            last = moment if last is None else max(last, moment)
            if isinstance(record.get("new"), dict) and record["new"].get("decision"):
                per_day[moment.astimezone(timezone.utc).date().isoformat()] += 1
        spent = record.get("seconds")
        if isinstance(spent, int | float):
            key = (record["patient"], record["phase"])
            seconds[key] = seconds.get(key, 0.0) + float(spent)
    median = round(statistics.median(seconds.values()), 1) if seconds else None
    return ReviewerProgress(user, assigned, decided, last, dict(sorted(per_day.items())), median)


@dataclass(frozen=True)
class PairAgreement:
    """Two reviewers on the case-phases both decided (both phases pooled)."""

    a: str
    b: str
    n: int
    percent_agreement: float | None
    kappa: float | None
    confusion: list[list[int]]


def _pair(
    a: str, b: str, da: dict[str, dict[str, Decision]], db: dict[str, dict[str, Decision]]
) -> PairAgreement:
    ra, rb = [], []
    for patient, by_phase in da.items():
        other = db.get(patient)
        if other is None:
            continue
        for phase in PHASES:
            x, y = by_phase[phase].decision, other[phase].decision
            if x is not None and y is not None:
                ra.append(x)
                rb.append(y)
    n = len(ra)
    kappa = cohen_kappa(ra, rb, DECISIONS) if n else float("nan")
    same = sum(x == y for x, y in zip(ra, rb, strict=True))
    return PairAgreement(
        a, b, n,
        round(100.0 * same / n, 2) if n else None,
        None if kappa != kappa else round(kappa, 4),
        confusion_matrix(ra, rb, DECISIONS).tolist(),
    )  # fmt: skip


@dataclass(frozen=True)
class QueueItem:
    """A shared case-phase where reviewers chose differently, and the lead's final decision if any."""

    patient: str
    phase: str
    decisions: dict[str, Decision]
    adjudication: Adjudication | None

    @property
    def settled(self) -> bool:
        """Whether the lead has recorded a final decision."""
        return self.adjudication is not None


@dataclass(frozen=True)
class TeamStatus:
    """Everything the lead's screen shows, read at one moment (see the module docstring)."""

    root: str
    dataset: str
    lead: str | None
    reviewers: tuple[str, ...]
    snapshots: dict[str, Snapshot]
    progress: dict[str, ReviewerProgress]
    agreement: AgreementResult | None
    pairs: list[PairAgreement]
    queue: list[QueueItem]
    consensus: Snapshot | None
    adjudicated: dict[tuple[str, str], Adjudication]
    problems: list[str] = field(default_factory=list)

    @property
    def patients(self) -> list[str]:
        """Every reviewer's patients, in order of first appearance."""
        return list(dict.fromkeys(p for s in self.snapshots.values() for p in s.decisions))

    def decisions(self, patient: str, phase: str) -> dict[str, Decision]:
        """Each reviewer's decision on one case-phase (only reviewers whose file lists the patient)."""
        return {u: s.decisions[patient][phase] for u, s in self.snapshots.items() if patient in s.decisions}


def read_team(
    root: str | os.PathLike[str] | None,
    dataset: str,
    *,
    lead: str | None = None,
    reviewers: Sequence[str] | None = None,
    cache: SnapshotCache | None = None,
) -> TeamStatus:
    """Read the team's files for ``dataset`` (see the module docstring).

    Parameters
    ----------
    root : path, optional
        Data root.
    dataset : str
        The reviewers' dataset file name, e.g. ``"cohort.json"``.
    lead : str, optional
        Whose consensus dataset to read (none when omitted).
    reviewers : sequence of str, optional
        Default: every team member with a file of that name (:func:`reviewers_of`) but the lead.
    cache : SnapshotCache, optional
        Re-read only the files that changed since the last call with this cache.
    """
    from ..errors import DatasetError

    check_dataset_name(dataset)
    root_path = resolve_root(root)
    if reviewers is not None:
        users = list(reviewers)
    else:  # the lead's own file of that name is the source `cmrqc assign` split, not a review
        users = [u for u in reviewers_of(root_path, dataset) if u != lead]
    if not users:
        raise CmrqcError(f"No reviewer has a dataset file named {dataset} under {root_path / 'users'}.")
    cache = cache or SnapshotCache()
    snapshots: dict[str, Snapshot] = {}
    problems = []
    for user in users:
        path = user_folder(root_path, user) / dataset
        try:
            snapshots[user] = cache.read(path)
        except DatasetError as exc:
            problems.append(f"{user} is left out: {exc}")
    consensus = None
    if lead is not None:
        path = consensus_path(root_path, lead, dataset)
        if path.is_file():
            try:
                consensus = cache.read(path)
            except DatasetError as exc:
                problems.append(f"The consensus is not shown: {exc}")
    settled = adjudications(consensus.records) if consensus is not None else {}
    decisions = {u: s.decisions for u, s in snapshots.items()}
    result = agreement_of(dataset, decisions) if len(snapshots) >= 2 else None
    pairs = [_pair(a, b, decisions[a], decisions[b]) for a, b in itertools.combinations(snapshots, 2)]
    queue = []
    if result is not None:
        for phase in PHASES:
            for case in result.phases[phase].disagreements:
                p = case["patient"]
                got = {u: decisions[u][p][phase] for u in result.users}
                queue.append(QueueItem(p, phase, got, settled.get((p, phase))))
    order = {p: i for i, p in enumerate(dict.fromkeys(p for d in decisions.values() for p in d))}
    queue.sort(key=lambda item: (order.get(item.patient, 0), item.phase))
    return TeamStatus(
        root=str(root_path),
        dataset=dataset,
        lead=lead,
        reviewers=tuple(snapshots),
        snapshots=snapshots,
        progress={u: reviewer_progress(u, s) for u, s in snapshots.items()},
        agreement=result,
        pairs=pairs,
        queue=queue,
        consensus=consensus,
        adjudicated=settled,
        problems=problems,
    )


def kappa_matrix(status: TeamStatus) -> tuple[list[str], list[list[Any]]]:
    """Reviewers and the symmetric matrix of pairwise Cohen's kappa (1 on the diagonal, None if undefined)."""
    users = list(status.reviewers)
    m: list[list[Any]] = [[1.0 if i == j else None for j in range(len(users))] for i in range(len(users))]
    index = {u: i for i, u in enumerate(users)}
    for pair in status.pairs:
        i, j = index[pair.a], index[pair.b]
        m[i][j] = m[j][i] = pair.kappa
    return users, m
