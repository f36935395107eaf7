"""The context one policy tick's rules share: inputs, judgements and the working ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.policy.ledger import Ledger
from orchestrator.policy.models import BreakerState, PoolConfig, QueueMetrics
from schemas.queues import QueueClass


@dataclass
class TickContext:
    """Everything the rules of one tick read (metrics, scores, breakers at ``now``), plus the
    ledger they write and the reasons they log. Lives only inside one ``allocate`` call."""

    config: PoolConfig
    now: datetime
    metrics: dict[QueueClass, QueueMetrics]
    scores: dict[QueueClass, float]
    breakers: dict[QueueClass, BreakerState]
    ledger: Ledger
    lost: dict[QueueClass, list[str]]
    reasons: list[str] = field(default_factory=list)

    def min(self, queue_class: QueueClass) -> int:
        return self.config.bounds(queue_class).min

    def max(self, queue_class: QueueClass) -> int:
        return self.config.bounds(queue_class).max

    def pending(self, queue_class: QueueClass) -> int:
        return self.metrics[queue_class].length

    def has_room(self) -> bool:
        return self.ledger.assigned() < self.config.total_workers

    def protected(self, queue_class: QueueClass) -> bool:
        """True if taking one worker would leave a breaker-held class without any."""
        return self.breakers[queue_class].holds_worker and self.ledger.count(queue_class) <= 1

    def per_worker_score(self, queue_class: QueueClass, extra: int) -> float:
        return self.scores[queue_class] / max(1, self.ledger.count(queue_class) + extra)

    def donor(self, exclude: QueueClass | None, *, allow_protected: bool) -> QueueClass | None:
        """The class above its min that gives up a worker first: unprotected, idle, lowest
        score, then name."""
        candidates = [
            c
            for c in QueueClass
            if c is not exclude
            and self.ledger.count(c) > self.min(c)
            and (allow_protected or not self.protected(c))
        ]
        if not candidates:
            return None
        return min(
            candidates,
            key=lambda c: (self.protected(c), self.pending(c) > 0, self.scores[c], c.value),
        )
