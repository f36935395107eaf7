"""Invariants of allocate() over random configurations, metrics, workers and states."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.policy import (
    MANDATORY_RULES,
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

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
IDS = [f"w{i}" for i in range(12)]
CLASSES = list(QueueClass)


@dataclass(frozen=True)
class Case:
    config: PoolConfig
    metrics: dict[QueueClass, QueueMetrics]
    workers: list[WorkerState]
    state: ControllerState


def _ago(seconds: float | None) -> datetime | None:
    return None if seconds is None else NOW - timedelta(seconds=seconds)


@st.composite
def configs(draw: st.DrawFn) -> PoolConfig:
    bounds = {}
    for c in CLASSES:
        low = draw(st.integers(0, 3))
        bounds[c] = {"min": low, "max": low + draw(st.integers(0, 3))}
    mins = sum(b["min"] for b in bounds.values())
    return PoolConfig.model_validate(
        {
            "total_workers": max(1, mins + draw(st.integers(0, 5))),
            "workers": bounds,
            "breaker_threshold_seconds": draw(st.floats(1, 300)),
            "breaker_recovery_seconds": draw(st.floats(0, 300)),
            "cooldown_seconds": draw(st.floats(0, 120)),
            "rebalance_margin": draw(st.floats(0, 1)),
        }
    )


@st.composite
def metrics_for(draw: st.DrawFn) -> QueueMetrics:
    length = draw(st.one_of(st.just(0), st.integers(0, 60)))
    avg = draw(st.floats(0, 600))
    return QueueMetrics(
        length=length,
        avg_wait_seconds=avg,
        oldest_wait_seconds=avg + draw(st.floats(0, 600)),
        last_progress_at=_ago(draw(st.one_of(st.none(), st.floats(0, 900)))),
    )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    config = draw(configs())
    ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=len(IDS)))
    maybe_class = st.one_of(st.none(), st.sampled_from(CLASSES))
    workers = [
        WorkerState(
            worker_id=w,
            queue_class=draw(maybe_class),
            alive=draw(st.booleans()) or draw(st.booleans()),
            assigned_at=_ago(draw(st.one_of(st.none(), st.floats(0, 300)))),
        )
        for w in ids
    ]
    breakers = {}
    for c in CLASSES:
        status = draw(st.sampled_from(list(BreakerStatus)))
        since = None if status is BreakerStatus.CLOSED else _ago(draw(st.floats(0, 400)))
        breakers[c] = BreakerState(status=status, since=since, opened_at=since)
    known = draw(st.lists(st.sampled_from(IDS), unique=True))
    state = ControllerState(
        breakers=breakers,
        assignments={w: draw(maybe_class) for w in known},
        last_move_at={w: NOW - timedelta(seconds=draw(st.floats(0, 300))) for w in known},
    )
    return Case(config, {c: draw(metrics_for()) for c in CLASSES}, workers, state)


def _last_move(case: Case, worker: WorkerState) -> datetime | None:
    stamps = [t for t in (case.state.last_move_at.get(worker.worker_id), worker.assigned_at) if t]
    return max(stamps) if stamps else None


def check_invariants(case: Case, result: AllocationResult) -> None:
    config = case.config
    alive = {w.worker_id: w for w in case.workers if w.alive}
    assert set(result.assignments) == set(alive)
    out = Counter(c for c in result.assignments.values() if c is not None)
    assigned = sum(out.values())
    assert assigned <= config.total_workers
    for c in CLASSES:
        assert out[c] <= config.bounds(c).max
    usable = min(len(alive), config.total_workers)
    mins = sum(config.bounds(c).min for c in CLASSES)
    if usable >= mins:
        assert all(out[c] >= config.bounds(c).min for c in CLASSES)
    else:
        gt = QueueClass.GLOBAL_TOPICS
        assert out[gt] >= min(config.bounds(gt).min, usable)
    if result.workers_on(None):
        full = all(out[c] == config.bounds(c).max for c in CLASSES)
        assert full or assigned == config.total_workers
    # moves are exactly the differences, lost workers included
    expected = {
        w: (s.queue_class, result.assignments[w])
        for w, s in alive.items()
        if s.queue_class != result.assignments[w]
    }
    alive_moves = {
        m.worker_id: (m.from_class, m.to_class) for m in result.moves if m.worker_id in alive
    }
    assert alive_moves == expected
    assert all(
        m.rule is MoveRule.WORKER_LOST and m.to_class is None
        for m in result.moves
        if m.worker_id not in alive
    )
    assert len({m.worker_id for m in result.moves}) == len(result.moves)
    for move in result.moves:
        assert move.reason
        worker = alive.get(move.worker_id)
        if worker is None or move.from_class is None:
            continue
        last = _last_move(case, worker)
        if last is not None and (NOW - last).total_seconds() < config.cooldown_seconds:
            assert move.rule in MANDATORY_RULES, move
        if move.rule in (MoveRule.PRIORITY, MoveRule.IDLE_RELEASE, MoveRule.CIRCUIT_BREAKER):
            assert out[move.from_class] >= config.bounds(move.from_class).min
    # a starving, breaker-held class without a worker had nobody to take one from
    for c in CLASSES:
        breaker = result.breakers[c]
        starving = breaker.holds_worker and case.metrics[c].length > 0
        if starving and out[c] == 0 and config.bounds(c).max >= 1:
            for d in CLASSES:
                if d is c:
                    continue
                protected = result.breakers[d].holds_worker and out[d] <= 1
                assert out[d] <= config.bounds(d).min or protected
            assert not result.workers_on(None) or assigned == config.total_workers
    assert result.next_state.assignments == result.assignments
    assert set(result.next_state.last_move_at) <= set(alive)


@settings(
    max_examples=200, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(case=cases(), seed=st.integers(0, 2**32 - 1))
def test_invariants_hold(case: Case, seed: int) -> None:
    result = allocate(case.config, case.metrics, case.workers, case.state, NOW)
    check_invariants(case, result)
    # replicas agree: same inputs in another order give the same result
    shuffled = list(case.workers)
    random.Random(seed).shuffle(shuffled)
    reordered = dict(reversed(list(case.metrics.items())))
    assert allocate(case.config, reordered, shuffled, case.state, NOW) == result


@settings(max_examples=150, database=None, deadline=None)
@given(case=cases())
def test_steady_state_is_a_fixed_point(case: Case) -> None:
    """Fed its own result back at the same instant, the policy moves nobody unless a breaker
    changed status in between (recovery of 0 s closes a breaker on the second look)."""
    first = allocate(case.config, case.metrics, case.workers, case.state, NOW)
    fed = [
        WorkerState(worker_id=w, queue_class=c, assigned_at=NOW if c else None)
        for w, c in first.assignments.items()
    ]
    second = allocate(case.config, case.metrics, fed, first.next_state, NOW)
    check_invariants(Case(case.config, case.metrics, fed, first.next_state), second)
    if second.breakers == first.breakers:
        assert second.moves == ()
        assert second.assignments == first.assignments
