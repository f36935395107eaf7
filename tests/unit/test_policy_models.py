"""PoolConfig validation and the policy models' defaults."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from orchestrator.policy import (
    SEED_BOUNDS,
    BreakerState,
    BreakerStatus,
    ControllerState,
    PoolConfig,
    QueueBounds,
    QueueMetrics,
    ScoreWeights,
    WorkerState,
)
from schemas.queues import QueueClass

GT, TP, PM = QueueClass.GLOBAL_TOPICS, QueueClass.TOPIC_POSTS, QueueClass.PRIVATE_MESSAGES


def _bounds(gt: tuple[int, int], tp: tuple[int, int], pm: tuple[int, int]) -> dict[str, object]:
    return {
        "global_topics": {"min": gt[0], "max": gt[1]},
        "topic_posts": {"min": tp[0], "max": tp[1]},
        "private_messages": {"min": pm[0], "max": pm[1]},
    }


def test_defaults_are_the_seed() -> None:
    config = PoolConfig()
    assert config.total_workers == 2
    assert config.bounds(GT) == QueueBounds(min=1, max=1)
    assert config.bounds(TP) == QueueBounds(min=0, max=1)
    assert config.bounds(PM) == QueueBounds(min=0, max=1)
    assert config.workers == SEED_BOUNDS
    assert config.breaker_threshold_seconds == 120.0
    assert config.weights == ScoreWeights(length_weight=10.0, wait_weight=1.0)


def test_min_above_max_names_the_field() -> None:
    expected = "workers.topic_posts.min (3) exceeds workers.topic_posts.max (1)"
    with pytest.raises(ValueError, match=re.escape(expected)):
        PoolConfig.model_validate({"total_workers": 5, "workers": _bounds((1, 1), (3, 1), (0, 1))})


def test_mins_above_total_name_the_fields() -> None:
    expected = "the sum of workers.*.min (3) exceeds total_workers (2)"
    with pytest.raises(ValueError, match=re.escape(expected)):
        PoolConfig.model_validate({"total_workers": 2, "workers": _bounds((1, 1), (1, 1), (1, 1))})


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"workers": _bounds((1, 1), (-1, 1), (0, 1))}, "workers.topic_posts.min"),
        ({"workers": _bounds((1, 1), (0, 1), (0, -2))}, "workers.private_messages.max"),
        ({"total_workers": -1}, "total_workers"),
        ({"total_workers": 0}, "total_workers"),
        ({"breaker_threshold_seconds": -5}, "breaker_threshold_seconds"),
        ({"cooldown_seconds": -1}, "cooldown_seconds"),
        ({"weights": {"length_weight": -1}}, "weights.length_weight"),
    ],
)
def test_negative_values_name_the_field(payload: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=re.escape(field)):
        PoolConfig.model_validate(payload)


def test_every_class_needs_bounds() -> None:
    workers = _bounds((1, 1), (0, 1), (0, 1))
    del workers["private_messages"]
    with pytest.raises(ValueError, match=re.escape("workers.private_messages is missing")):
        PoolConfig.model_validate({"workers": workers})


def test_any_number_of_workers() -> None:
    config = PoolConfig.model_validate(
        {"total_workers": 20, "workers": _bounds((1, 3), (0, 10), (2, 10))}
    )
    assert config.total_workers == 20
    assert config.bounds(PM).min == 2


def test_models_are_frozen() -> None:
    config = PoolConfig()
    with pytest.raises(ValidationError):
        config.total_workers = 3


def test_metrics_reject_naive_datetimes_and_negatives() -> None:
    with pytest.raises(ValidationError):
        QueueMetrics(length=1, last_progress_at=datetime(2025, 1, 1))
    with pytest.raises(ValidationError):
        QueueMetrics(length=-1)
    assert QueueMetrics() == QueueMetrics(length=0, avg_wait_seconds=0.0)


def test_controller_state_starts_closed() -> None:
    state = ControllerState()
    assert all(state.breaker(c) == BreakerState() for c in QueueClass)
    assert BreakerState().status is BreakerStatus.CLOSED
    assert not BreakerState().holds_worker
    assert BreakerState(status=BreakerStatus.RECOVERING).holds_worker
    worker = WorkerState(worker_id="w1", assigned_at=datetime(2025, 1, 1, tzinfo=UTC))
    assert worker.alive
    assert worker.queue_class is None
