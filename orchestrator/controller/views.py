"""Rendering the controller's tick into visualization records: pure, ``now`` passed in.

One tick renders exactly one record per key: a :class:`ClassQueueView` per queue class (key:
the class name), the :class:`WorkerPoolView` (key ``workers``) and the
:class:`ControllerDecisionView` (key ``controller``). :func:`to_publish` then drops the
records that did not change since the last published one (ignoring ``updated_at`` and the
workers' heartbeat ages), unless that one is older than ``refresh_seconds``: so a quiet
pipeline costs a few records per ``refresh_seconds``, and a dashboard that starts late still
reads the full current state from the compacted topic (every key's latest record).

Rates are rounded to 0.01 records/s, waits to 0.1 s and scores to 0.01, so noise below what a
dashboard shows does not count as a change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from orchestrator.controller.control_plane import heartbeat_age
from orchestrator.policy import AllocationResult, PoolConfig, QueueMetrics
from schemas.control import WorkerHeartbeat
from schemas.queues import QueueClass
from schemas.visualization import (
    BreakerState,
    ClassQueueView,
    ControllerDecisionView,
    VisualizationRecord,
    WorkerEntry,
    WorkerMove,
    WorkerPoolView,
    visualization_key,
)

DEFAULT_REFRESH_SECONDS = 5.0
_MAX_REASONS = 50
_MAX_NOTE = 1000


def class_views(
    result: AllocationResult,
    metrics: Mapping[QueueClass, QueueMetrics],
    config: PoolConfig,
    now: datetime,
) -> list[ClassQueueView]:
    """One record per queue class, in the classes' declaration order."""
    views: list[ClassQueueView] = []
    for cls in QueueClass:
        m = metrics.get(cls, QueueMetrics())
        bounds = config.bounds(cls)
        views.append(
            ClassQueueView(
                queue=cls,
                length=m.length,
                oldest_wait_seconds=round(m.oldest_wait_seconds, 1),
                avg_wait_seconds=round(m.avg_wait_seconds, 1),
                score=round(result.scores.get(cls, 0.0), 2),
                workers_assigned=len(result.workers_on(cls)),
                breaker=BreakerState(result.breakers[cls].status.value),
                in_rate=round(m.in_rate or 0.0, 2),
                out_rate=round(m.out_rate or 0.0, 2),
                min_workers=bounds.min,
                max_workers=bounds.max,
                updated_at=now,
            )
        )
    return views


def pool_view(
    heartbeats: Sequence[WorkerHeartbeat],
    alive: Mapping[str, bool],
    assignments: Mapping[str, QueueClass | None],
    now: datetime,
) -> WorkerPoolView:
    """Every known worker: the class the controller gives it (else the one it reports),
    its state and in-flight count from its heartbeat, and the heartbeat's age."""
    entries = tuple(
        WorkerEntry(
            worker_id=beat.worker_id,
            queue_class=assignments.get(beat.worker_id, beat.queue_class),
            state=beat.state,
            in_flight=beat.in_flight,
            heartbeat_age_seconds=round(heartbeat_age(beat, now), 1),
            alive=alive.get(beat.worker_id, False),
        )
        for beat in sorted(heartbeats, key=lambda b: b.worker_id)
    )
    return WorkerPoolView(workers=entries, updated_at=now)


def decision_view(
    previous: ControllerDecisionView | None,
    result: AllocationResult,
    controller_id: str,
    now: datetime,
    *,
    breakers_changed: bool,
) -> ControllerDecisionView:
    """The controller's latest decision. A tick that moved a worker or changed a breaker (or
    the first tick of a leader) is a new decision with its moves and reasons; otherwise the
    previous decision stands and only the allocation and ``updated_at`` are refreshed."""
    allocation = {cls: result.workers_on(cls) for cls in QueueClass}
    if (
        previous is None
        or previous.controller_id != controller_id
        or result.moves
        or (breakers_changed)
    ):
        moves = tuple(
            WorkerMove(
                worker_id=m.worker_id,
                from_class=m.from_class,
                to_class=m.to_class,
                reason=m.reason[:_MAX_NOTE],
                rule=m.rule.value,
            )
            for m in result.moves
        )
        return ControllerDecisionView(
            controller_id=controller_id,
            leader=True,
            decided_at=now,
            allocation=allocation,
            moves=moves,
            reasons=tuple(r[:_MAX_NOTE] for r in result.reasons[:_MAX_REASONS]),
            updated_at=now,
        )
    return previous.model_copy(update={"allocation": allocation, "updated_at": now})


def _comparable(record: VisualizationRecord) -> dict[str, Any]:
    data = record.model_dump(mode="json", exclude={"updated_at"})
    if isinstance(record, WorkerPoolView):
        for entry in data["workers"]:
            entry.pop("heartbeat_age_seconds", None)
    return data


def to_publish(
    published: Mapping[str, VisualizationRecord],
    records: Sequence[VisualizationRecord],
    now: datetime,
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
) -> list[VisualizationRecord]:
    """The records to publish this tick: at most one per key (the last given wins), only
    those that changed since ``published[key]`` or whose last one is ``refresh_seconds`` old."""
    latest: dict[str, VisualizationRecord] = {}
    for record in records:
        latest[visualization_key(record)] = record
    out: list[VisualizationRecord] = []
    for key, record in latest.items():
        before = published.get(key)
        if (
            before is None
            or (now - before.updated_at).total_seconds() >= refresh_seconds
            or _comparable(before) != _comparable(record)
        ):
            out.append(record)
    return out
