"""The worker pool as the controller sees it: settings → policy config, initial assignments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from orchestrator.policy import (
    ControllerState,
    PoolConfig,
    QueueBounds,
    QueueMetrics,
    ScoreWeights,
    WorkerState,
    allocate,
)
from schemas.queues import QueueClass
from schemas.settings import Settings


def pool_config(settings: Settings) -> PoolConfig:
    """The allocation policy's configuration, from the process settings."""
    return PoolConfig(
        total_workers=settings.total_workers,
        workers={
            cls: QueueBounds(min=b.min, max=b.max)
            for cls, b in settings.workers.as_mapping().items()
        },
        breaker_threshold_seconds=settings.circuit_breaker_seconds,
        breaker_recovery_seconds=settings.breaker_recovery_seconds,
        cooldown_seconds=settings.cooldown_seconds,
        rebalance_margin=settings.rebalance_margin,
        weights=ScoreWeights(
            length_weight=settings.score_length_weight, wait_weight=settings.score_wait_weight
        ),
    )


def worker_ids(count: int) -> list[str]:
    """The local pool's worker ids: ``w1`` … ``wN``."""
    return [f"w{i}" for i in range(1, count + 1)]


def initial_assignments(
    settings: Settings, ids: Sequence[str], now: datetime
) -> dict[str, QueueClass | None]:
    """Where each worker starts before the controller has measured anything.

    The policy's own answer for empty queues: every min filled (``global_topics`` first),
    the rest spread by the deterministic tie-break. Pure; ``now`` is passed in.
    """
    result = allocate(
        pool_config(settings),
        {cls: QueueMetrics() for cls in QueueClass},
        [WorkerState(worker_id=w, queue_class=None, alive=True, assigned_at=None) for w in ids],
        ControllerState(),
        now,
    )
    return dict(result.assignments)
