"""The review queue as pure functions: filters, order, neighbours, next undecided, progress.

Patients are indices into the dataset's patient list; ``decided`` maps a patient key to
``{"ED": Decision, "ES": Decision}`` as the store returns them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..names import DECISIONS, PHASES

FILTERS: tuple[str, ...] = ("all", "undecided", *DECISIONS)
"""Which patients the queue holds: all, those with a phase still undecided, or by decision."""

Decided = Mapping[str, Mapping[str, Any]]


def word(decision: Any) -> str | None:
    """The decision word of a stored Decision (None when absent or empty)."""
    return None if decision is None else decision.decision


def patient_name(key: str) -> str:
    """Short display name of a patient key (its folder name)."""
    return Path(key).name or key


def complete_order(order: Iterable[int], n: int) -> list[int]:
    """``order`` restricted to ``0..n-1`` without repeats, followed by any index it left out."""
    seen: set[int] = set()
    kept = []
    for i in order:
        if 0 <= i < n and i not in seen:
            seen.add(i)
            kept.append(i)
    return kept + [i for i in range(n) if i not in seen]


def matches(decided: Mapping[str, Any], rule: str) -> bool:
    """Whether a patient with phase decisions ``decided`` belongs in the queue of filter ``rule``."""
    if rule == "all":
        return True
    values = [word(decided.get(p)) for p in PHASES]
    if rule == "undecided":
        return None in values
    return rule in values


def neighbour(queue: Sequence[int], order: Sequence[int], index: int, direction: int) -> int | None:
    """The queue patient after (``direction > 0``) or before ``index`` in ``order``, wrapping.

    ``index`` need not be in the queue (a patient that left a filter after being decided).
    """
    if not queue:
        return None
    rank = {p: r for r, p in enumerate(order)}
    here = rank.get(index, -1)
    ranked = sorted((rank[p], p) for p in queue if p in rank)
    if not ranked:
        return None
    if direction > 0:
        after = [p for r, p in ranked if r > here]
        return after[0] if after else ranked[0][1]
    before = [p for r, p in ranked if r < here]
    return before[-1] if before else ranked[-1][1]


def next_undecided(
    order: Sequence[int], patients: Sequence[str], decided: Decided, index: int, phase: str
) -> tuple[int, str] | None:
    """The first (patient index, phase) without a decision after (``index``, ``phase``), wrapping.

    The later phases of the current patient come first, its earlier phases (and itself) last.
    """
    if not order:
        return None
    here = order.index(index) if index in order else 0
    current, k = order[here], PHASES.index(phase)
    candidates = [(current, p) for p in PHASES[k + 1 :]]
    for offset in range(1, len(order)):
        candidates += [(order[(here + offset) % len(order)], p) for p in PHASES]
    candidates += [(current, p) for p in PHASES[: k + 1]]
    for i, p in candidates:
        if word(decided.get(patients[i], {}).get(p)) is None:
            return i, p
    return None


def progress(patients: Iterable[str], decided: Decided) -> tuple[int, int]:
    """(patients with every phase decided, patient phases decided)."""
    both = phases = 0
    for key in patients:
        n = sum(word(decided.get(key, {}).get(p)) is not None for p in PHASES)
        phases += n
        both += n == len(PHASES)
    return both, phases
