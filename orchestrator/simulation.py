"""A deterministic, virtual-clock simulation of the worker pool under the allocation policy.

No Kafka, no threads, no real clock: time is ``spec.start + index * tick_seconds``. Each tick
covers the interval ``(t - tick_seconds, t]`` and runs, in order:

1. **events**: workers join (alive, unassigned) or die (stop serving at once; the policy then
   sees them dead) when their ``at_seconds <= t``;
2. **arrivals**: each class receives ``rate_per_second`` times the overlap of its arrival
   windows with the interval (fractions carry over to the next tick); records are stamped ``t``;
3. **service**: each alive, assigned worker (by id) drains its class's FIFO at its class's
   service rate (records per second) for the part of the interval after its switch finished;
   a class that processed at least one record records progress at ``t``;
4. **allocation**: :func:`~orchestrator.policy.allocation.allocate` with the metrics at ``t``;
   a worker given a new class serves nothing for ``switch_seconds``.

The returned :class:`SimulationTrace` holds every tick's arrivals, service, metrics, worker
states and allocation result, so tests can assert on any of them. Same spec, same trace.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from orchestrator.policy.allocation import allocate
from orchestrator.policy.models import (
    AllocationResult,
    ControllerState,
    Move,
    PoolConfig,
    QueueMetrics,
    WorkerState,
)
from schemas.queues import QueueClass

_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
_EPSILON = 1e-9


class ArrivalWindow(BaseModel):
    """``rate_per_second`` records per second arrive on ``queue_class`` during
    ``[start_seconds, end_seconds)`` of virtual time."""

    model_config = _FROZEN

    queue_class: QueueClass
    start_seconds: float = Field(ge=0)
    end_seconds: float = Field(ge=0)
    rate_per_second: float = Field(ge=0)


class WorkerEventKind(StrEnum):
    """What happens to a worker at an instant of virtual time."""

    JOIN = "join"
    DIE = "die"


class WorkerEvent(BaseModel):
    """Worker ``worker_id`` joins or dies at ``at_seconds`` of virtual time."""

    model_config = _FROZEN

    at_seconds: float = Field(ge=0)
    worker_id: str = Field(min_length=1)
    kind: WorkerEventKind


class SimulationSpec(BaseModel):
    """Everything a simulation run depends on (times in seconds, rates in records/second).

    ``workers`` are alive and unassigned at the start; ``None`` means ``w1..wN`` for
    ``config.total_workers`` (zero-padded so ids sort numerically). ``initial_backlog`` records
    are pending at time 0. ``class_service_rates`` overrides ``service_rate_per_second`` per class.
    """

    model_config = _FROZEN

    config: PoolConfig = Field(default_factory=PoolConfig)
    duration_seconds: float = Field(gt=0)
    tick_seconds: float = Field(default=1.0, gt=0)
    start: AwareDatetime = datetime(2025, 1, 1, tzinfo=UTC)
    workers: tuple[str, ...] | None = None
    arrivals: tuple[ArrivalWindow, ...] = ()
    initial_backlog: dict[QueueClass, int] = Field(default_factory=dict)
    events: tuple[WorkerEvent, ...] = ()
    service_rate_per_second: float = Field(default=1.0, ge=0)
    class_service_rates: dict[QueueClass, float] = Field(default_factory=dict)
    switch_seconds: float = Field(default=0.0, ge=0)

    def worker_ids(self) -> tuple[str, ...]:
        """The initial workers' ids."""
        if self.workers is not None:
            return self.workers
        width = len(str(self.config.total_workers))
        return tuple(f"w{i:0{width}d}" for i in range(1, self.config.total_workers + 1))

    def service_rate(self, queue_class: QueueClass) -> float:
        """Records per second one worker drains from ``queue_class``."""
        return self.class_service_rates.get(queue_class, self.service_rate_per_second)


class TickRecord(BaseModel):
    """One tick of a simulation: what arrived and was served during it, the metrics and worker
    states the policy saw at ``at``, and the policy's result."""

    model_config = _FROZEN

    index: int
    at: AwareDatetime
    elapsed_seconds: float
    arrived: dict[QueueClass, int]
    served: dict[QueueClass, int]
    metrics: dict[QueueClass, QueueMetrics]
    workers: tuple[WorkerState, ...]
    result: AllocationResult


class SimulationTrace(BaseModel):
    """All ticks of a run, in order."""

    model_config = _FROZEN

    ticks: tuple[TickRecord, ...]

    def moves(self) -> list[tuple[TickRecord, Move]]:
        """Every move with the tick it happened in, in order."""
        return [(tick, move) for tick in self.ticks for move in tick.result.moves]

    def served_total(self, queue_class: QueueClass) -> int:
        """Records of ``queue_class`` served over the whole run."""
        return sum(tick.served[queue_class] for tick in self.ticks)


@dataclass
class _Backlog:
    """A FIFO of pending records as (arrival second, count) batches, with running sums so
    length, average and oldest wait are O(1)."""

    batches: deque[list[float]] = field(default_factory=deque)
    length: int = 0
    stamp_sum: float = 0.0
    last_progress_at: datetime | None = None

    def push(self, stamp: float, count: int) -> None:
        if count > 0:
            self.batches.append([stamp, float(count)])
            self.length += count
            self.stamp_sum += stamp * count

    def pop(self, count: int) -> int:
        taken = 0
        while taken < count and self.batches:
            batch = self.batches[0]
            step = min(int(batch[1]), count - taken)
            batch[1] -= step
            taken += step
            self.stamp_sum -= batch[0] * step
            if batch[1] <= 0:
                self.batches.popleft()
        self.length -= taken
        if self.length == 0:
            self.stamp_sum = 0.0
        return taken

    def metrics(self, elapsed: float, arrived: int, served: int, tick: float) -> QueueMetrics:
        avg = 0.0 if self.length == 0 else max(0.0, elapsed - self.stamp_sum / self.length)
        oldest = max(0.0, elapsed - self.batches[0][0]) if self.batches else 0.0
        return QueueMetrics(
            length=self.length,
            avg_wait_seconds=avg,
            oldest_wait_seconds=oldest,
            last_progress_at=self.last_progress_at,
            in_rate=arrived / tick,
            out_rate=served / tick,
        )


@dataclass
class _Worker:
    worker_id: str
    alive: bool = True
    queue_class: QueueClass | None = None
    assigned_at: datetime | None = None
    busy_until: float = 0.0
    credit: float = 0.0

    def state(self) -> WorkerState:
        return WorkerState(
            worker_id=self.worker_id,
            queue_class=self.queue_class,
            alive=self.alive,
            assigned_at=self.assigned_at,
        )


def _whole(amount: float) -> int:
    """Whole records in ``amount``, tolerant of float rounding (2.9999999999 counts as 3)."""
    return max(0, math.floor(amount + _EPSILON))


def simulate(spec: SimulationSpec) -> SimulationTrace:
    """Run ``spec`` tick by tick and return the full trace (deterministic: a pure function)."""
    workers = {w: _Worker(w) for w in spec.worker_ids()}
    backlogs = {c: _Backlog() for c in QueueClass}
    for queue_class, count in spec.initial_backlog.items():
        backlogs[queue_class].push(0.0, count)
    carry = dict.fromkeys(QueueClass, 0.0)
    events = deque(sorted(spec.events, key=lambda e: (e.at_seconds, e.worker_id, e.kind.value)))
    state = ControllerState()
    dt = spec.tick_seconds
    ticks: list[TickRecord] = []
    for index in range(1, _whole(spec.duration_seconds / dt) + 1):
        elapsed, previous = index * dt, (index - 1) * dt
        now = spec.start + timedelta(seconds=elapsed)
        while events and events[0].at_seconds <= elapsed + _EPSILON:
            _apply_event(workers, events.popleft())
        arrived = dict.fromkeys(QueueClass, 0)
        for window in spec.arrivals:
            overlap = min(window.end_seconds, elapsed) - max(window.start_seconds, previous)
            if overlap > 0:
                carry[window.queue_class] += overlap * window.rate_per_second
        for queue_class in QueueClass:
            arrived[queue_class] = _whole(carry[queue_class])
            carry[queue_class] = max(0.0, carry[queue_class] - arrived[queue_class])
            backlogs[queue_class].push(elapsed, arrived[queue_class])
        served = dict.fromkeys(QueueClass, 0)
        for worker in sorted(workers.values(), key=lambda w: w.worker_id):
            if not worker.alive or worker.queue_class is None:
                continue
            busy = max(0.0, elapsed - max(previous, worker.busy_until))
            worker.credit += busy * spec.service_rate(worker.queue_class)
            backlog = backlogs[worker.queue_class]
            done = backlog.pop(_whole(worker.credit))
            worker.credit = max(0.0, worker.credit - done)
            worker.credit -= _whole(worker.credit)  # unused capacity does not accumulate
            served[worker.queue_class] += done
            if done:
                backlog.last_progress_at = now
        metrics = {c: backlogs[c].metrics(elapsed, arrived[c], served[c], dt) for c in QueueClass}
        seen = tuple(workers[w].state() for w in sorted(workers))
        result = allocate(spec.config, metrics, seen, state, now)
        state = result.next_state
        _apply_result(workers, result, now, elapsed + spec.switch_seconds)
        ticks.append(
            TickRecord(
                index=index,
                at=now,
                elapsed_seconds=elapsed,
                arrived=arrived,
                served=served,
                metrics=metrics,
                workers=seen,
                result=result,
            )
        )
    return SimulationTrace(ticks=tuple(ticks))


def _apply_event(workers: dict[str, _Worker], event: WorkerEvent) -> None:
    worker = workers.setdefault(event.worker_id, _Worker(event.worker_id, alive=False))
    if event.kind is WorkerEventKind.DIE:
        worker.alive = False
    elif not worker.alive:
        worker.alive = True
        worker.queue_class = None
        worker.assigned_at = None
        worker.credit = 0.0


def _apply_result(
    workers: dict[str, _Worker], result: AllocationResult, now: datetime, ready_at: float
) -> None:
    """Workers take their new classes; a switch keeps them from serving until ``ready_at``."""
    for worker in workers.values():
        target = result.assignments.get(worker.worker_id) if worker.alive else None
        if target != worker.queue_class:
            worker.queue_class = target
            worker.assigned_at = now if target is not None else None
            worker.busy_until = ready_at
            worker.credit = 0.0
