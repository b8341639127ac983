"""The queue of the open dataset: filter, order, progress and decision counts (a mixin of the state).

Kept cheap at 10,000 patients: the order and each patient's rank are computed when the order,
the dataset or the published suspicion changes, never on a move; a save updates the counts, the
progress and the queue for the one patient it touched; "next" and "previous" are binary searches.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from traitlets import HasTraits, Int, List, TraitError, Unicode, observe, validate

from ..names import NO_DECISION, PHASES
from . import queue as queue_rules
from .queue import FILTERS, patient_name, word

OrderFunction = Callable[[Any], list[int]]

ORDER_LABELS = {"file": "file order", "suspicion": "most suspicious first"}
"""Words of the orders in the navigation's order dropdown."""


def _file_order(state: Any) -> list[int]:
    return list(range(len(state.patients)))


class QueueState(HasTraits):
    """Filter, order, queue, progress and counts of the open dataset (mixed into ``ReviewState``).

    The host provides ``patients`` (keys in file order), ``_decisions`` (key -> phase ->
    Decision) and, optionally, ``triage`` (for the "flagged" filter).
    """

    filter = Unicode("all", help="One of FILTERS.")
    order = Unicode("file", help="Order of the queue: 'file' or a registered order.")
    queue = List(help="Patient indices matching `filter`, in `order`.")
    n_decided = Int(0, help="Patients with both phases decided.")
    n_phases_decided = Int(0, help="Patient phases with a decision.")
    n_total = Int(0, help="Patients in the dataset.")

    def _init_queue(self) -> None:
        self._orders: dict[str, OrderFunction] = {"file": _file_order}
        self._order_labels: dict[str, str] = {"file": ORDER_LABELS["file"]}
        self._order: list[int] = []
        self._rank: dict[int, int] = {}
        self._queue_ranks: list[int] = []
        self._queue_set: set[int] = set()
        self._index: dict[str, int] = {}
        self._names: list[str] = []
        self._counts: dict[str, Counter[str]] = {p: Counter() for p in PHASES}

    @validate("filter")
    def _check_filter(self, proposal: Any) -> str:
        if proposal.value not in FILTERS:
            raise TraitError(f"Filter {proposal.value!r} is not one of {list(FILTERS)}.")
        return proposal.value

    @validate("order")
    def _check_order(self, proposal: Any) -> str:
        if proposal.value not in self._orders:
            raise TraitError(f"Order {proposal.value!r} is not one of {sorted(self._orders)}.")
        return proposal.value

    @observe("filter", "order")
    def _on_queue_rule(self, change: Any) -> None:
        triage = getattr(self, "triage", None)
        if triage is not None and not triage.ready and self._uses_suspicion():
            triage._publish(notify=False)  # what is known so far; re-sorted again when all is known
        self.refresh_queue()
        prefetch = getattr(self, "_prefetch", None)
        if prefetch is not None:  # the neighbours in the new order
            prefetch()

    # ------------------------------------------------------------------------------------------
    def register_order(self, name: str, function: OrderFunction, label: str | None = None) -> None:
        """Add a queue order: ``function(state)`` returns patient indices, first reviewed first.

        Indices it leaves out follow in file order. ``label`` is its name in the order dropdown.
        """
        self._orders[name] = function
        self._order_labels[name] = label or ORDER_LABELS.get(name, name)
        if name == self.order:
            self.refresh_queue()

    def orders(self) -> list[tuple[str, str]]:
        """(label, name) of every registered order, for a dropdown."""
        return [(self._order_labels[name], name) for name in self._orders]

    def refresh_queue(self) -> None:
        """Recompute the order and the queue (after a new dataset, order, filter or suspicion)."""
        n = len(self.patients)
        self._order = queue_rules.complete_order(self._orders[self.order](self), n) if n else []
        self._rank = {p: r for r, p in enumerate(self._order)}
        self._set_queue([i for i in self._order if self._matches(i)])

    def _uses_suspicion(self) -> bool:
        return self.order == "suspicion" or self.filter == "flagged"

    def _matches(self, index: int) -> bool:
        triage = getattr(self, "triage", None)
        flagged = triage is not None and self.filter == "flagged" and triage.is_flagged(index)
        return queue_rules.matches(self._decisions.get(self.patients[index], {}), self.filter, flagged)

    def _set_queue(self, queue: list[int]) -> None:
        self._queue_ranks = [self._rank[i] for i in queue]
        self._queue_set = set(queue)
        if queue != self.queue:
            self.queue = queue

    def _order_list(self) -> list[int]:
        return self._order

    def rank_of(self, index: int) -> int:
        """Position of patient ``index`` in the current order (-1 when unknown)."""
        return self._rank.get(index, -1)

    def queue_position(self, index: int) -> int:
        """Where patient ``index`` is, or would be, in the queue (a binary search)."""
        return bisect_left(self._queue_ranks, self.rank_of(index))

    def in_queue(self, index: int) -> bool:
        """Whether patient ``index`` matches the filter."""
        return index in self._queue_set

    def _neighbour(self, direction: int) -> int | None:
        return queue_rules.step(self.queue, self._queue_ranks, self.rank_of(self.patient_index), direction)

    # ------------------------------------------------------------------------------------------
    # counts, kept up to date one save at a time
    def _reset_counts(self) -> None:
        self._index = {key: i for i, key in enumerate(self.patients)}
        self._names = [patient_name(key) for key in self.patients]
        self._counts = queue_rules.phase_counts(self.patients, self._decisions)
        with self.hold_trait_notifications():
            self.n_total = len(self.patients)
            self.n_decided, self.n_phases_decided = queue_rules.progress(self.patients, self._decisions)
            self.refresh_queue()

    def _account(self, patient: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        """Update counts, progress and the queue after one save changed ``before`` to ``after``."""
        for p in PHASES:
            old, new = word(before.get(p)) or NO_DECISION, word(after.get(p)) or NO_DECISION
            if old != new:
                self._counts[p][old] -= 1
                self._counts[p][new] += 1
        was, now = queue_rules.decided_phases(before), queue_rules.decided_phases(after)
        self.n_phases_decided += now - was
        self.n_decided += (now == len(PHASES)) - (was == len(PHASES))
        index = self._index.get(patient)
        if index is None or self._matches(index) == (index in self._queue_set):
            return
        queue = list(self.queue)
        k = self.queue_position(index)
        if index in self._queue_set:
            del queue[k]
        else:
            queue.insert(k, index)
        self._set_queue(queue)

    def statistics(self) -> Any:
        """Statistics of the open dataset as this screen knows it (None when no dataset is open)."""
        if getattr(self, "dataset_obj", None) is None:
            return None
        from ..store import Statistics

        return Statistics.from_counts(self._counts, len(self.patients))

    def decisions_of(self, patient: str) -> dict[str, str]:
        """``{"ED": decision or "", "ES": ...}`` of ``patient`` as last read or saved."""
        decided = self._decisions.get(patient, {})
        return {p: word(decided.get(p)) or "" for p in PHASES}

    def patient_label(self, index: int) -> str:
        """One line for the patient list: name and the ED and ES decisions."""
        key = self.patients[index]
        name = self._names[index] if index < len(self._names) else patient_name(key)
        d = self.decisions_of(key)
        return f"{name}  ·  ED {queue_rules.shown(d['ED'])}  ·  ES {queue_rules.shown(d['ES'])}"
