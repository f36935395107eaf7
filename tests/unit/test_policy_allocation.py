"""allocate(): each rule on small, hand-checked inputs."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.policy import (
    AllocationResult,
    BreakerState,
    BreakerStatus,
    ControllerState,
    MoveRule,
    PoolConfig,
    QueueMetrics,
    WorkerState,
    allocate,
)
from schemas.queues import QueueClass

GT, TP, PM = QueueClass.GLOBAL_TOPICS, QueueClass.TOPIC_POSTS, QueueClass.PRIVATE_MESSAGES
NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
LONG_AGO = NOW - timedelta(hours=1)
SEED = PoolConfig()


def _config(total: int, **bounds: tuple[int, int]) -> PoolConfig:
    workers = {"global_topics": (1, 1), "topic_posts": (0, 1), "private_messages": (0, 1)}
    workers.update(bounds)
    return PoolConfig.model_validate(
        {
            "total_workers": total,
            "workers": {c: {"min": lo, "max": hi} for c, (lo, hi) in workers.items()},
        }
    )


def _workers(
    *placed: tuple[str, QueueClass | None], moved_at: datetime = LONG_AGO
) -> list[WorkerState]:
    return [
        WorkerState(worker_id=w, queue_class=c, assigned_at=moved_at if c else None)
        for w, c in placed
    ]


def _pending(length: int, wait: float = 10.0, progress_at: datetime | None = NOW) -> QueueMetrics:
    return QueueMetrics(
        length=length,
        avg_wait_seconds=wait,
        oldest_wait_seconds=wait * 2,
        last_progress_at=progress_at,
    )


def _known(result_or_ids: Mapping[str, QueueClass | None]) -> ControllerState:
    return ControllerState(assignments=dict(result_or_ids))


def _rules(result: AllocationResult) -> dict[str, MoveRule]:
    return {m.worker_id: m.rule for m in result.moves}


def test_seed_start_two_new_workers() -> None:
    result = allocate(
        SEED, {TP: _pending(5)}, _workers(("w1", None), ("w2", None)), ControllerState(), NOW
    )
    assert result.assignments == {"w1": GT, "w2": TP}
    assert _rules(result) == {"w1": MoveRule.NEW_WORKER, "w2": MoveRule.NEW_WORKER}
    assert result.scores[TP] == 5 * 10 + 10 / 60
    assert result.reasons[0].startswith("scores: global_topics=0.0")
    assert any("w2" in r and "topic_posts" in r for r in result.reasons)


def test_new_worker_with_nothing_pending_is_still_put_to_use() -> None:
    result = allocate(SEED, {}, _workers(("w1", None), ("w2", None)), ControllerState(), NOW)
    assert result.assignments["w1"] == GT
    assert result.assignments["w2"] in (TP, PM)


def test_spare_when_every_class_is_full() -> None:
    config = _config(5)
    ids = [(f"w{i}", None) for i in range(1, 6)]
    result = allocate(config, {TP: _pending(3)}, _workers(*ids), ControllerState(), NOW)
    assert result.workers_on(None) == ("w4", "w5")
    assert sorted(c for c in result.assignments.values() if c) == sorted([GT, TP, PM])
    assert any("spare: every class is at its max" in r for r in result.reasons)


def test_alive_workers_beyond_total_stay_spare() -> None:
    config = _config(2, topic_posts=(0, 5))
    placed = _workers(("a", GT), ("b", TP), ("c", TP))
    result = allocate(config, {TP: _pending(50)}, placed, _known({"a": GT, "b": TP, "c": TP}), NOW)
    assert sum(c is not None for c in result.assignments.values()) == 2
    assert result.assignments["a"] == GT
    assert _rules(result) == {"c": MoveRule.MAX_WORKERS}


def test_class_above_its_max_releases_to_elsewhere() -> None:
    config = _config(3, topic_posts=(0, 0))
    placed = _workers(("a", GT), ("b", TP))
    result = allocate(config, {PM: _pending(4)}, placed, _known({"a": GT, "b": TP}), NOW)
    assert result.assignments == {"a": GT, "b": PM}
    assert _rules(result) == {"b": MoveRule.MAX_WORKERS}
    assert "above its max" in result.moves[0].reason


def test_sticky_without_a_reason() -> None:
    placed = _workers(("w1", GT), ("w2", TP))
    metrics = {TP: _pending(40), PM: _pending(45)}  # within the 25 % margin
    result = allocate(SEED, metrics, placed, _known({"w1": GT, "w2": TP}), NOW)
    assert result.moves == ()
    assert result.assignments == {"w1": GT, "w2": TP}


def test_priority_move_beyond_the_margin() -> None:
    placed = _workers(("w1", GT), ("w2", TP))
    metrics = {TP: _pending(2), PM: _pending(40)}
    result = allocate(SEED, metrics, placed, _known({"w1": GT, "w2": TP}), NOW)
    assert result.assignments["w2"] == PM
    assert _rules(result) == {"w2": MoveRule.PRIORITY}
    assert "margin" in result.moves[0].reason


def test_idle_release_and_cooldown() -> None:
    metrics = {PM: _pending(3)}
    recent = _workers(("w1", GT), ("w2", TP), moved_at=NOW - timedelta(seconds=10))
    kept = allocate(SEED, metrics, recent, _known({"w1": GT, "w2": TP}), NOW)
    assert kept.moves == ()
    assert any(r.startswith("cooldown: kept topic_posts's workers") for r in kept.reasons)
    later = _workers(("w1", GT), ("w2", TP), moved_at=NOW - timedelta(seconds=31))
    moved = allocate(SEED, metrics, later, _known({"w1": GT, "w2": TP}), NOW)
    assert moved.assignments["w2"] == PM
    assert _rules(moved) == {"w2": MoveRule.IDLE_RELEASE}
    assert moved.next_state.last_move_at["w2"] == NOW


def test_controller_state_cooldown_counts_too() -> None:
    placed = _workers(("w1", GT), ("w2", TP))
    state = ControllerState(
        assignments={"w1": GT, "w2": TP}, last_move_at={"w2": NOW - timedelta(seconds=5)}
    )
    assert allocate(SEED, {PM: _pending(3)}, placed, state, NOW).moves == ()


def test_breaker_overrides_cooldown_and_takes_from_above_min() -> None:
    placed = _workers(("w1", GT), ("w2", TP), moved_at=NOW - timedelta(seconds=1))
    metrics = {
        TP: _pending(900, wait=300),
        PM: QueueMetrics(length=2, avg_wait_seconds=100, oldest_wait_seconds=121),
    }
    result = allocate(SEED, metrics, placed, _known({"w1": GT, "w2": TP}), NOW)
    assert result.breakers[PM].status is BreakerStatus.OPEN
    assert result.assignments == {"w1": GT, "w2": PM}
    (move,) = result.moves
    assert move.rule is MoveRule.CIRCUIT_BREAKER
    assert move.reason == (
        "moved worker w2 from topic_posts to private_messages: "
        "breaker open after 121 s without progress (2 pending)"
    )


def test_breaker_never_goes_below_a_min() -> None:
    config = _config(2, topic_posts=(1, 1))
    placed = _workers(("w1", GT), ("w2", TP))
    metrics = {PM: QueueMetrics(length=2, avg_wait_seconds=100, oldest_wait_seconds=500)}
    result = allocate(config, metrics, placed, _known({"w1": GT, "w2": TP}), NOW)
    assert result.breakers[PM].status is BreakerStatus.OPEN
    assert result.assignments == {"w1": GT, "w2": TP}
    assert any("no worker can be taken without breaking a min" in r for r in result.reasons)


def test_recovering_class_keeps_its_worker() -> None:
    placed = _workers(("w1", GT), ("w2", PM))
    recovering = BreakerState(
        status=BreakerStatus.RECOVERING,
        since=NOW - timedelta(seconds=30),
        opened_at=NOW - timedelta(seconds=40),
    )
    state = ControllerState(
        breakers={GT: BreakerState(), TP: BreakerState(), PM: recovering},
        assignments={"w1": GT, "w2": PM},
    )
    metrics = {TP: _pending(1000), PM: _pending(1)}
    result = allocate(SEED, metrics, placed, state, NOW)
    assert result.breakers[PM].status is BreakerStatus.RECOVERING
    assert result.assignments["w2"] == PM
    # once it closed (steady progress for breaker_recovery_seconds) priority may take it
    state_later = result.next_state
    later = allocate(SEED, metrics, placed, state_later, NOW + timedelta(seconds=90))
    assert later.breakers[PM].status is BreakerStatus.CLOSED
    assert later.assignments["w2"] == TP


def test_lost_worker_frees_its_slot_for_the_min() -> None:
    placed = [
        WorkerState(worker_id="w1", queue_class=GT, alive=False, assigned_at=LONG_AGO),
        WorkerState(worker_id="w2", queue_class=TP, assigned_at=NOW - timedelta(seconds=1)),
    ]
    result = allocate(SEED, {TP: _pending(100)}, placed, _known({"w1": GT, "w2": TP}), NOW)
    assert result.assignments == {"w2": GT}
    assert _rules(result) == {"w1": MoveRule.WORKER_LOST, "w2": MoveRule.MIN_WORKERS}
    lost, refill = result.moves
    assert (lost.from_class, lost.to_class) == (GT, None)
    assert "after losing worker w1" in refill.reason
    assert "w1" not in result.next_state.assignments


def test_vanished_worker_counts_as_lost() -> None:
    placed = _workers(("w1", GT))
    result = allocate(SEED, {}, placed, _known({"w1": GT, "w2": PM}), NOW)
    assert [(m.worker_id, m.rule) for m in result.moves] == [("w2", MoveRule.WORKER_LOST)]


def test_too_few_workers_fill_global_first() -> None:
    config = _config(3, topic_posts=(1, 1), private_messages=(1, 1))
    placed = _workers(("w9", TP))
    result = allocate(config, {TP: _pending(100)}, placed, _known({"w9": TP}), NOW)
    assert result.assignments == {"w9": GT}
    assert any(
        "topic_posts below its min (0 < 1): no worker available" in r for r in result.reasons
    )


def test_rejects_naive_now_and_duplicate_ids() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        allocate(SEED, {}, [], ControllerState(), datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="duplicate worker id 'w1'"):
        allocate(SEED, {}, _workers(("w1", None), ("w1", GT)), ControllerState(), NOW)


def test_no_alive_workers() -> None:
    placed = [WorkerState(worker_id="w1", queue_class=GT, alive=False)]
    result = allocate(SEED, {TP: _pending(3)}, placed, ControllerState(), NOW)
    assert result.assignments == {}
    assert any("global_topics below its min" in r for r in result.reasons)


def test_cost_is_linear_in_workers() -> None:
    """Ten thousand workers in one tick: well under a second per call on any laptop."""
    count = 10_000
    config = _config(
        count, global_topics=(1, count), topic_posts=(0, count), private_messages=(0, count)
    )
    fresh = [WorkerState(worker_id=f"w{i:05d}") for i in range(count)]
    metrics = {GT: _pending(10), TP: _pending(5000), PM: _pending(2000)}
    started = time.perf_counter()
    first = allocate(config, metrics, fresh, ControllerState(), NOW)
    placed = [
        WorkerState(worker_id=w, queue_class=c, assigned_at=LONG_AGO)
        for w, c in first.assignments.items()
    ]
    flipped = {GT: _pending(10), TP: _pending(2000), PM: _pending(5000)}
    second = allocate(config, flipped, placed, first.next_state, NOW + timedelta(hours=1))
    elapsed = time.perf_counter() - started
    assert len(first.moves) == count
    assert 0 < len(second.moves) <= count
    assert all(m.rule is MoveRule.PRIORITY for m in second.moves)
    assert sum(c is not None for c in second.assignments.values()) == count
    assert elapsed < 10.0
