"""Burrow-style progress judgement of a queue class from its lag and last progress.

A class is *idle* with nothing pending, *stalled* when it has had pending work without any
progress for at least the breaker threshold, and *progressing* otherwise.
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.policy.models import ProgressStatus, QueueMetrics


def stall_seconds(metrics: QueueMetrics, now: datetime) -> float:
    """Seconds the class has had pending work without processing anything; 0.0 when idle.

    It is ``min(now - last_progress_at, oldest_wait_seconds)``: the time since the last
    progress, but never longer than the oldest pending record has waited, so a queue that was
    idle for an hour and got a record a second ago has stalled for one second, not an hour.
    With no recorded progress it is ``oldest_wait_seconds``. Clock skew never makes it negative.
    """
    if metrics.length == 0:
        return 0.0
    if metrics.last_progress_at is None:
        return metrics.oldest_wait_seconds
    since_progress = max(0.0, (now - metrics.last_progress_at).total_seconds())
    return min(since_progress, metrics.oldest_wait_seconds)


def progress_status(
    metrics: QueueMetrics, threshold_seconds: float, now: datetime
) -> ProgressStatus:
    """Judge the class: idle (no lag), stalled (``stall_seconds >= threshold_seconds``), else
    progressing."""
    if metrics.length == 0:
        return ProgressStatus.IDLE
    if stall_seconds(metrics, now) >= threshold_seconds:
        return ProgressStatus.STALLED
    return ProgressStatus.PROGRESSING
