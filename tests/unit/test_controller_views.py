"""Rendering visualization records and choosing which to publish (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.controller.views import class_views, decision_view, pool_view, to_publish
from orchestrator.policy import (
    AllocationResult,
    ControllerState,
    PoolConfig,
    QueueMetrics,
    WorkerState,
    allocate,
)
from schemas.codec import decode_visualization, encode
from schemas.control import WorkerHeartbeat
from schemas.control import WorkerState as Phase
from schemas.queues import QueueClass
from schemas.visualization import BreakerState, VisualizationRecord, visualization_key

T0 = datetime(2025, 1, 1, tzinfo=UTC)
CONFIG = PoolConfig(cooldown_seconds=0)
PM = QueueClass.PRIVATE_MESSAGES


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def beat(worker_id: str, cls: QueueClass | None, sent: float) -> WorkerHeartbeat:
    return WorkerHeartbeat(
        worker_id=worker_id,
        queue_class=cls,
        state=Phase.SERVING,
        in_flight=2,
        processed=7,
        sent_at=at(sent),
        pid=1,
        host="h",
    )


def tick(now: float, pm_length: int = 4) -> tuple[dict[QueueClass, QueueMetrics], AllocationResult]:
    metrics = {PM: QueueMetrics(length=pm_length, avg_wait_seconds=30.04, in_rate=1.234)}
    workers = [WorkerState(worker_id="w1"), WorkerState(worker_id="w2")]
    return metrics, allocate(CONFIG, metrics, workers, ControllerState(), at(now))


def test_one_record_per_class_with_the_policy_and_measured_values() -> None:
    metrics, result = tick(0)
    views = {v.queue: v for v in class_views(result, metrics, CONFIG, at(0))}
    assert list(views) == list(QueueClass)
    pm = views[PM]
    assert (pm.length, pm.avg_wait_seconds, pm.in_rate, pm.out_rate) == (4, 30.0, 1.23, 0.0)
    assert pm.score == round(result.scores[PM], 2)
    assert pm.workers_assigned == 1
    assert pm.breaker is BreakerState.CLOSED
    assert (pm.min_workers, pm.max_workers) == (0, 1)


def test_pool_view_lists_workers_with_heartbeat_age_and_liveness() -> None:
    view = pool_view([beat("w2", None, 0), beat("w1", PM, 1.5)], {"w1": True}, {"w1": None}, at(2))
    assert [
        (e.worker_id, e.queue_class, e.heartbeat_age_seconds, e.alive) for e in view.workers
    ] == [
        ("w1", None, 0.5, True),
        ("w2", None, 2.0, False),
    ]


def test_decision_changes_only_with_moves_or_breakers() -> None:
    _, first = tick(0)
    d1 = decision_view(None, first, "c1", at(0), breakers_changed=False)
    assert d1.decided_at == at(0)
    assert d1.moves, "the first tick placed both workers"
    quiet = first.model_copy(update={"moves": ()})
    d2 = decision_view(d1, quiet, "c1", at(1), breakers_changed=False)
    assert (d2.decided_at, d2.moves, d2.updated_at) == (at(0), d1.moves, at(1))
    d3 = decision_view(d2, quiet, "c1", at(2), breakers_changed=True)
    assert d3.decided_at == at(2)
    assert d3.moves == ()


def test_unchanged_records_are_skipped_until_the_refresh() -> None:
    metrics, result = tick(0)
    first: list[VisualizationRecord] = [*class_views(result, metrics, CONFIG, at(0))]
    published = {visualization_key(r): r for r in to_publish({}, first, at(0))}
    assert len(published) == 3
    again = class_views(result, metrics, CONFIG, at(1))
    assert to_publish(published, again, at(1), refresh_seconds=5) == []
    assert len(to_publish(published, again, at(5), refresh_seconds=5)) == 3
    metrics2, result2 = tick(1, pm_length=5)
    changed = to_publish(published, class_views(result2, metrics2, CONFIG, at(1)), at(1))
    assert [r.queue for r in changed] == [PM]


def test_heartbeat_ages_alone_do_not_republish_the_pool() -> None:
    old = pool_view([beat("w1", PM, 0)], {"w1": True}, {}, at(0.1))
    new = pool_view([beat("w1", PM, 0)], {"w1": True}, {}, at(0.9))
    assert to_publish({"workers": old}, [new], at(0.9)) == []
    dead = pool_view([beat("w1", PM, 0)], {"w1": False}, {}, at(0.9))
    assert to_publish({"workers": old}, [dead], at(0.9)) == [dead]


def test_at_most_one_record_per_key_the_last_wins() -> None:
    metrics, result = tick(0)
    a = class_views(result, metrics, CONFIG, at(0))
    b = class_views(result, metrics, CONFIG, at(1))
    out = to_publish({}, [*a, *b], at(1))
    assert sorted(visualization_key(r) for r in out) == sorted(c.value for c in QueueClass)
    assert all(r.updated_at == at(1) for r in out)


def test_records_round_trip_through_the_codec() -> None:
    metrics, result = tick(0)
    records: list[VisualizationRecord] = [
        *class_views(result, metrics, CONFIG, at(0)),
        pool_view([beat("w1", PM, 0)], {"w1": True}, {}, at(0)),
        decision_view(None, result, "c1", at(0), breakers_changed=False),
    ]
    for record in records:
        assert decode_visualization(encode(record)) == record
