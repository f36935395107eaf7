"""The simulation harness itself: virtual clock, arrivals, service, switching, events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.policy import MoveRule, PoolConfig
from orchestrator.simulation import (
    ArrivalWindow,
    SimulationSpec,
    WorkerEvent,
    WorkerEventKind,
    simulate,
)
from schemas.queues import QueueClass

GT, TP, PM = QueueClass.GLOBAL_TOPICS, QueueClass.TOPIC_POSTS, QueueClass.PRIVATE_MESSAGES


def _window(queue_class: QueueClass, start: float, end: float, rate: float) -> ArrivalWindow:
    return ArrivalWindow(
        queue_class=queue_class, start_seconds=start, end_seconds=end, rate_per_second=rate
    )


def test_virtual_clock_and_default_workers() -> None:
    trace = simulate(SimulationSpec(duration_seconds=5, tick_seconds=0.5))
    assert len(trace.ticks) == 10
    start = datetime(2025, 1, 1, tzinfo=UTC)
    assert [t.at for t in trace.ticks][:2] == [
        start + timedelta(seconds=0.5),
        start + timedelta(1 / 86400),
    ]
    assert tuple(w.worker_id for w in trace.ticks[0].workers) == ("w1", "w2")
    twenty = SimulationSpec(duration_seconds=1, config=PoolConfig(total_workers=20))
    assert twenty.worker_ids()[:2] == ("w01", "w02")
    assert twenty.worker_ids()[-1] == "w20"


def test_fractional_arrivals_carry_over() -> None:
    spec = SimulationSpec(
        duration_seconds=10, arrivals=(_window(TP, 0, 10, 0.3),), service_rate_per_second=0
    )
    trace = simulate(spec)
    assert sum(t.arrived[TP] for t in trace.ticks) == 3
    assert trace.ticks[-1].metrics[TP].length == 3
    assert [t.arrived[TP] for t in trace.ticks][:4] == [0, 0, 0, 1]


def test_windows_partially_overlapping_a_tick() -> None:
    spec = SimulationSpec(
        duration_seconds=4,
        tick_seconds=2,
        arrivals=(_window(PM, 1, 3, 2.0),),
        service_rate_per_second=0,
    )
    assert [t.arrived[PM] for t in simulate(spec).ticks] == [2, 2]


def test_service_waits_and_progress() -> None:
    spec = SimulationSpec(
        duration_seconds=10,
        initial_backlog={TP: 10},
        service_rate_per_second=2,
        switch_seconds=3,
    )
    trace = simulate(spec)
    served = [t.served[TP] for t in trace.ticks]
    # assigned at t=1, switching until t=4, then 2 records per second
    assert served == [0, 0, 0, 0, 2, 2, 2, 2, 2, 0]
    fifth = trace.ticks[4]
    assert fifth.metrics[TP].length == 8
    assert fifth.metrics[TP].last_progress_at == fifth.at
    assert fifth.metrics[TP].oldest_wait_seconds == 5.0
    assert fifth.metrics[TP].out_rate == 2.0
    assert trace.served_total(TP) == 10
    assert trace.ticks[-1].metrics[TP].length == 0


def test_wait_metrics_average_over_pending_records() -> None:
    spec = SimulationSpec(
        duration_seconds=4, arrivals=(_window(PM, 0, 2, 1.0),), service_rate_per_second=0
    )
    last = simulate(spec).ticks[-1].metrics[PM]
    # records stamped at t=1 and t=2, observed at t=4
    assert last.length == 2
    assert last.avg_wait_seconds == 2.5
    assert last.oldest_wait_seconds == 3.0


def test_worker_events() -> None:
    spec = SimulationSpec(
        duration_seconds=6,
        events=(
            WorkerEvent(at_seconds=2, worker_id="w2", kind=WorkerEventKind.DIE),
            WorkerEvent(at_seconds=4, worker_id="w3", kind=WorkerEventKind.JOIN),
        ),
    )
    trace = simulate(spec)
    assert trace.ticks[1].result.moves[0].rule is MoveRule.WORKER_LOST
    assert set(trace.ticks[2].result.assignments) == {"w1"}
    assert trace.ticks[3].result.assignments["w3"] is not None
    assert [m.rule for _, m in trace.moves()][-1] is MoveRule.NEW_WORKER


def test_same_spec_same_trace() -> None:
    spec = SimulationSpec(
        duration_seconds=200,
        arrivals=(_window(TP, 0, 200, 1.7), _window(PM, 50, 150, 0.4)),
        events=(WorkerEvent(at_seconds=90, worker_id="w2", kind=WorkerEventKind.DIE),),
        switch_seconds=2,
    )
    assert simulate(spec) == simulate(spec)
