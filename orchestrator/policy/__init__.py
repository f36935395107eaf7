"""The controller's pure allocation policy: score, progress, breaker and allocation.

Pure functions over frozen pydantic models; ``now`` is always passed in, nothing here reads a
clock or touches Kafka. The controller shell feeds :func:`allocate` once per tick and carries
``AllocationResult.next_state`` to the next tick.
"""

from orchestrator.policy.allocation import allocate
from orchestrator.policy.breaker import advance_breaker, describe_transition
from orchestrator.policy.models import (
    MANDATORY_RULES,
    SEED_BOUNDS,
    AllocationResult,
    BreakerState,
    BreakerStatus,
    ControllerState,
    Move,
    MoveRule,
    PoolConfig,
    ProgressStatus,
    QueueBounds,
    QueueMetrics,
    ScoreWeights,
    WorkerState,
)
from orchestrator.policy.progress import progress_status, stall_seconds
from orchestrator.policy.score import DEFAULT_WEIGHTS, score

__all__ = [
    "DEFAULT_WEIGHTS",
    "MANDATORY_RULES",
    "SEED_BOUNDS",
    "AllocationResult",
    "BreakerState",
    "BreakerStatus",
    "ControllerState",
    "Move",
    "MoveRule",
    "PoolConfig",
    "ProgressStatus",
    "QueueBounds",
    "QueueMetrics",
    "ScoreWeights",
    "WorkerState",
    "advance_breaker",
    "allocate",
    "describe_transition",
    "progress_status",
    "score",
    "stall_seconds",
]
