"""The seed's score formula, exactly, and Burrow-style progress judgement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.policy import (
    ProgressStatus,
    QueueMetrics,
    ScoreWeights,
    progress_status,
    score,
    stall_seconds,
)

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)


def test_seed_formula_exact() -> None:
    # queue_length * 10 + avg_wait_minutes: 3 pending, 90 s average wait -> 30 + 1.5
    assert score(QueueMetrics(length=3, avg_wait_seconds=90.0)) == 31.5
    assert score(QueueMetrics(length=0, avg_wait_seconds=0.0)) == 0.0
    assert score(QueueMetrics(length=1, avg_wait_seconds=60.0)) == 11.0
    assert score(QueueMetrics(length=500, avg_wait_seconds=30.0)) == 5000.5


def test_weights_apply() -> None:
    weights = ScoreWeights(length_weight=2.0, wait_weight=3.0)
    assert score(QueueMetrics(length=4, avg_wait_seconds=120.0), weights) == 8.0 + 6.0


@settings(database=None, deadline=None)
@given(
    length=st.integers(min_value=0, max_value=10**9),
    wait=st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False),
)
def test_formula_property(length: int, wait: float) -> None:
    metrics = QueueMetrics(length=length, avg_wait_seconds=wait)
    assert score(metrics) == length * 10 + wait / 60 * 1.0


def test_idle_queue_is_idle_whatever_its_history() -> None:
    old = QueueMetrics(length=0, last_progress_at=NOW - timedelta(hours=5))
    assert progress_status(old, 120.0, NOW) is ProgressStatus.IDLE
    assert stall_seconds(old, NOW) == 0.0


def test_stall_is_bounded_by_oldest_wait() -> None:
    # idle for an hour, one record arrived 10 s ago: stalled for 10 s, not an hour
    fresh = QueueMetrics(
        length=1, oldest_wait_seconds=10.0, last_progress_at=NOW - timedelta(hours=1)
    )
    assert stall_seconds(fresh, NOW) == 10.0
    assert progress_status(fresh, 120.0, NOW) is ProgressStatus.PROGRESSING


def test_stalled_at_the_threshold() -> None:
    never = QueueMetrics(length=2, oldest_wait_seconds=120.0)
    assert progress_status(never, 120.0, NOW) is ProgressStatus.STALLED
    just_below = QueueMetrics(length=2, oldest_wait_seconds=119.0)
    assert progress_status(just_below, 120.0, NOW) is ProgressStatus.PROGRESSING
    moving = QueueMetrics(
        length=50, oldest_wait_seconds=900.0, last_progress_at=NOW - timedelta(seconds=5)
    )
    assert stall_seconds(moving, NOW) == 5.0
    assert progress_status(moving, 120.0, NOW) is ProgressStatus.PROGRESSING


def test_clock_skew_never_negative() -> None:
    ahead = QueueMetrics(length=1, oldest_wait_seconds=3.0, last_progress_at=NOW + timedelta(1))
    assert stall_seconds(ahead, NOW) == 0.0
