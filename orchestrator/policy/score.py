"""The seed's priority score of a queue class: ``queue_length * 10 + avg_wait_minutes``."""

from __future__ import annotations

from orchestrator.policy.models import QueueMetrics, ScoreWeights

SECONDS_PER_MINUTE = 60.0
DEFAULT_WEIGHTS = ScoreWeights()


def score(metrics: QueueMetrics, weights: ScoreWeights = DEFAULT_WEIGHTS) -> float:
    """Priority of a class: higher means it deserves a worker more.

    ``length * weights.length_weight + (avg_wait_seconds / 60) * weights.wait_weight``,
    i.e. records pending times 10 plus the average wait in **minutes** with the default
    weights. Dimensionless, never negative; 0.0 for an idle queue with no wait.
    """
    wait_minutes = metrics.avg_wait_seconds / SECONDS_PER_MINUTE
    return metrics.length * weights.length_weight + wait_minutes * weights.wait_weight
