"""The working assignment of one policy tick: mutable, private to :func:`allocate`.

A ledger starts from the alive workers' current classes, lets the allocation rules place
workers (recording the rule and cause of each placement) and finally reports the net moves.
A worker placed twice in one tick yields one move: it carries the rule that made the worker
leave its class (or, for an unassigned worker, the last placement's rule) and both causes; a
worker that ends where it started yields none. Every lookup is O(1) or amortised O(log W).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import datetime

from orchestrator.policy.models import Move, MoveRule, QueueBounds, WorkerState
from schemas.queues import QueueClass

_EPOCH_KEY = float("-inf")


def describe_move(
    worker_id: str, from_class: QueueClass | None, to_class: QueueClass | None, cause: str
) -> str:
    """The human-readable reason of a move, e.g. ``moved worker w2 from a to b: <cause>``."""
    if from_class is None:
        return f"assigned worker {worker_id} to {to_class}: {cause}"
    if to_class is None:
        return f"released worker {worker_id} from {from_class}: {cause}"
    return f"moved worker {worker_id} from {from_class} to {to_class}: {cause}"


class Ledger:
    """Which class each alive worker holds while the rules run (``None``: unassigned)."""

    def __init__(
        self,
        alive: Iterable[WorkerState],
        known: Mapping[str, QueueClass | None],
        last_moved: Mapping[str, datetime | None],
    ) -> None:
        """Start from ``alive`` workers' classes; ``known`` ids are not new; ``last_moved``
        gives each worker's last move (or ``None`` if unknown)."""
        self.origin: dict[str, QueueClass | None] = {}
        self.current: dict[str, QueueClass | None] = {}
        self.members: dict[QueueClass | None, set[str]] = {c: set() for c in QueueClass}
        self.members[None] = set()
        for worker in alive:
            self.origin[worker.worker_id] = worker.queue_class
            self.current[worker.worker_id] = worker.queue_class
            self.members[worker.queue_class].add(worker.worker_id)
        self.new: frozenset[str] = frozenset(w for w in self.origin if w not in known)
        self.last_moved = last_moved
        self.touched: set[str] = set()
        self._why: dict[str, tuple[MoveRule, str]] = {}
        self._free = sorted(self.members[None])
        self._donor_order: dict[QueueClass, list[str]] = {}

    def count(self, queue_class: QueueClass | None) -> int:
        """Workers currently on ``queue_class``."""
        return len(self.members[queue_class])

    def assigned(self) -> int:
        """Workers currently on some class."""
        return len(self.current) - len(self.members[None])

    def place(
        self, worker_id: str, to_class: QueueClass | None, rule: MoveRule, cause: str
    ) -> None:
        """Put ``worker_id`` on ``to_class`` because of ``rule``; ``cause`` explains why."""
        source = self.current[worker_id]
        self.members[source].discard(worker_id)
        self.members[to_class].add(worker_id)
        self.current[worker_id] = to_class
        self.touched.add(worker_id)
        origin = self.origin[worker_id]
        if origin is None and worker_id in self.new and to_class is not None:
            rule, cause = MoveRule.NEW_WORKER, f"new worker; {cause}"
        earlier = self._why.get(worker_id)
        if origin is not None and earlier is not None:
            # The move's rule stays the one that made the worker leave its class.
            rule, cause = earlier[0], f"{earlier[1]}; then {cause}"
        self._why[worker_id] = (rule, cause)
        if to_class is None:
            heapq.heappush(self._free, worker_id)

    def take_free(self) -> str | None:
        """The unassigned worker with the smallest id, without placing it; ``None`` if none."""
        while self._free and self.current[self._free[0]] is not None:
            heapq.heappop(self._free)
        return self._free[0] if self._free else None

    def seniority(self, worker_id: str) -> tuple[bool, float, str]:
        """Sort key preferring, for removal from a class: workers not yet placed this tick,
        then the longest since their last move (unknown counts as longest), then by id."""
        moved = self.last_moved.get(worker_id)
        stamp = _EPOCH_KEY if moved is None else moved.timestamp()
        return (worker_id in self.touched, stamp, worker_id)

    def take_from(self, queue_class: QueueClass) -> str | None:
        """The worker of ``queue_class`` to move away first (by :meth:`seniority`)."""
        order = self._donor_order.get(queue_class)
        while True:
            while order and self.current[order[-1]] is not queue_class:
                order.pop()
            if order:
                return order[-1]
            if not self.members[queue_class]:
                return None
            order = sorted(self.members[queue_class], key=self.seniority, reverse=True)
            self._donor_order[queue_class] = order

    def is_locked(self, worker_id: str, now: datetime, cooldown_seconds: float) -> bool:
        """True if the worker moved less than ``cooldown_seconds`` before ``now``."""
        moved = self.last_moved.get(worker_id)
        return moved is not None and (now - moved).total_seconds() < cooldown_seconds

    def moves(self) -> list[Move]:
        """Net moves of this tick, by worker id."""
        result: list[Move] = []
        for worker_id in sorted(self.touched):
            source, target = self.origin[worker_id], self.current[worker_id]
            if source == target:
                continue
            rule, cause = self._why[worker_id]
            reason = describe_move(worker_id, source, target, cause)
            result.append(
                Move(
                    worker_id=worker_id,
                    from_class=source,
                    to_class=target,
                    rule=rule,
                    reason=reason,
                )
            )
        return result

    def summary(self, bounds: Mapping[QueueClass, QueueBounds], total_workers: int) -> str:
        """One line with each class's worker count against its bounds."""
        parts = [f"{c} {self.count(c)} [{bounds[c].min}..{bounds[c].max}]" for c in QueueClass]
        return (
            f"workers: {', '.join(parts)}, spare {self.count(None)} "
            f"({len(self.current)} alive, total_workers {total_workers})"
        )
