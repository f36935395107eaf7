"""The starvation circuit breaker of one queue class: a pure state machine.

Transitions, evaluated once per tick with ``now`` (durations in seconds):

* CLOSED -> OPEN when the class is stalled: pending work and no progress for
  ``breaker_threshold_seconds`` (see :func:`orchestrator.policy.progress.stall_seconds`).
* OPEN -> RECOVERING when the class processes a record after the breaker opened
  (``last_progress_at > opened_at``); OPEN -> CLOSED when it drains (length 0).
* RECOVERING -> CLOSED when the class drains, or once it has been recovering for
  ``breaker_recovery_seconds`` without stalling again ("progressed steadily");
  RECOVERING -> OPEN when it stalls again (``opened_at`` restarts).

While OPEN or RECOVERING the allocation guarantees the class one worker and never takes its
last worker away, so a starving queue is not abandoned the moment it starts moving.
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.policy.models import BreakerState, BreakerStatus, PoolConfig, QueueMetrics
from orchestrator.policy.progress import stall_seconds
from schemas.queues import QueueClass


def advance_breaker(
    previous: BreakerState, metrics: QueueMetrics, config: PoolConfig, now: datetime
) -> BreakerState:
    """The breaker's state at ``now`` given the class's metrics; ``previous`` if unchanged."""
    status = _next_status(previous, metrics, config, now)
    if status is previous.status:
        return previous
    opened_at = now if status is BreakerStatus.OPEN else previous.opened_at
    return BreakerState(status=status, since=now, opened_at=opened_at)


def _next_status(
    previous: BreakerState, metrics: QueueMetrics, config: PoolConfig, now: datetime
) -> BreakerStatus:
    stalled = stall_seconds(metrics, now) >= config.breaker_threshold_seconds
    if previous.status is BreakerStatus.CLOSED:
        return BreakerStatus.OPEN if stalled else BreakerStatus.CLOSED
    if metrics.length == 0:
        return BreakerStatus.CLOSED
    if previous.status is BreakerStatus.OPEN:
        resumed = _progressed_since_open(previous, metrics, stalled)
        return BreakerStatus.RECOVERING if resumed else BreakerStatus.OPEN
    recovering_for = 0.0 if previous.since is None else (now - previous.since).total_seconds()
    if stalled or recovering_for >= config.breaker_recovery_seconds:
        return BreakerStatus.OPEN if stalled else BreakerStatus.CLOSED
    return BreakerStatus.RECOVERING


def _progressed_since_open(previous: BreakerState, metrics: QueueMetrics, stalled: bool) -> bool:
    anchor = previous.opened_at or previous.since
    if anchor is None or metrics.last_progress_at is None:
        return anchor is None and not stalled
    return metrics.last_progress_at > anchor


def describe_transition(
    queue_class: QueueClass,
    *,
    before: BreakerState,
    after: BreakerState,
    metrics: QueueMetrics,
    config: PoolConfig,
    now: datetime,
) -> str | None:
    """A log line for a breaker that changed status this tick; ``None`` if it did not."""
    if before.status is after.status and before.since == after.since:
        return None
    head = f"breaker {queue_class}: {before.status} -> {after.status}"
    if after.status is BreakerStatus.OPEN:
        stalled = stall_seconds(metrics, now)
        return f"{head} after {stalled:.0f} s without progress ({metrics.length} pending)"
    if after.status is BreakerStatus.RECOVERING:
        return f"{head}: progress resumed ({metrics.length} pending)"
    if metrics.length == 0:
        return f"{head}: drained"
    return f"{head}: progressed steadily for {config.breaker_recovery_seconds:.0f} s"
