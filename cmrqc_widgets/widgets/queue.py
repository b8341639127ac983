"""The review queue as pure functions: filters, order, neighbours, next undecided, progress.

Patients are indices into the dataset's patient list; ``decided`` maps a patient key to
``{"ED": Decision, "ES": Decision}`` as the store returns them.
"""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..names import DECISIONS, NO_DECISION, PHASES

FILTERS: tuple[str, ...] = ("all", "undecided", *DECISIONS, "flagged")
"""Which patients the queue holds: all, those with a phase still undecided, by decision, or those
the automatic checks flagged (any failed check)."""

Decided = Mapping[str, Mapping[str, Any]]


SHOWN_WORDS = {"finetune": "fine-tune"}
"""How a stored decision word is written on screen: the file keeps the old app's ``finetune``; the
reviewer reads "fine-tune" everywhere (buttons, list, header, history), as on the buttons."""


def shown(word: str | None) -> str:
    """The on-screen spelling of a stored decision word ("—" for none)."""
    return SHOWN_WORDS.get(word, word) if word else "—"


def word(decision: Any) -> str | None:
    """The decision word of a stored Decision (None when absent or empty)."""
    return None if decision is None else decision.decision


def patient_name(key: str) -> str:
    """Short display name of a patient key (its folder name)."""
    return os.path.basename(os.path.normpath(key)) or key


def complete_order(order: Iterable[int], n: int) -> list[int]:
    """``order`` restricted to ``0..n-1`` without repeats, followed by any index it left out."""
    seen: set[int] = set()
    kept = []
    for i in order:
        if 0 <= i < n and i not in seen:
            seen.add(i)
            kept.append(i)
    return kept + [i for i in range(n) if i not in seen]


def matches(decided: Mapping[str, Any], rule: str, flagged: bool = False) -> bool:
    """Whether a patient belongs in the queue of filter ``rule``.

    Parameters
    ----------
    decided : mapping
        The patient's phase decisions (``{"ED": Decision, ...}``).
    rule : str
        One of :data:`FILTERS`.
    flagged : bool
        Whether the automatic checks flagged the patient (only the ``"flagged"`` rule reads it).
    """
    if rule == "all":
        return True
    if rule == "flagged":
        return flagged
    values = [word(decided.get(p)) for p in PHASES]
    if rule == "undecided":
        return None in values
    return rule in values


def step(queue: Sequence[int], queue_ranks: Sequence[int], here: int, direction: int) -> int | None:
    """The queue patient after (``direction > 0``) or before the rank ``here``, wrapping.

    ``queue_ranks[k]`` is the rank in the order of ``queue[k]`` (ascending): a binary search, so
    a move costs the same with ten or ten thousand patients.
    """
    if not queue:
        return None
    if direction > 0:
        k = bisect_right(queue_ranks, here)
        return queue[k] if k < len(queue) else queue[0]
    k = bisect_left(queue_ranks, here) - 1
    return queue[k] if k >= 0 else queue[-1]


def neighbour(queue: Sequence[int], order: Sequence[int], index: int, direction: int) -> int | None:
    """The queue patient after (``direction > 0``) or before ``index`` in ``order``, wrapping.

    ``index`` need not be in the queue (a patient that left a filter after being decided).
    """
    rank = {p: r for r, p in enumerate(order)}
    ranked = sorted((rank[p], p) for p in queue if p in rank)
    return step([p for _, p in ranked], [r for r, _ in ranked], rank.get(index, -1), direction)


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


def decided_phases(decided: Mapping[str, Any]) -> int:
    """How many phases of one patient have a decision."""
    return sum(word(decided.get(p)) is not None for p in PHASES)


def progress(patients: Iterable[str], decided: Decided) -> tuple[int, int]:
    """(patients with every phase decided, patient phases decided)."""
    both = phases = 0
    for key in patients:
        n = decided_phases(decided.get(key, {}))
        phases += n
        both += n == len(PHASES)
    return both, phases


def phase_counts(patients: Iterable[str], decided: Decided) -> dict[str, Counter[str]]:
    """``{"ED": Counter(decision or "none": n), "ES": ...}`` over ``patients`` (for ``Statistics``)."""
    counts: dict[str, Counter[str]] = {p: Counter() for p in PHASES}
    for key in patients:
        mine = decided.get(key, {})
        for p in PHASES:
            counts[p][word(mine.get(p)) or NO_DECISION] += 1
    return counts
