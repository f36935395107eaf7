"""The seed's allocation policy: which worker serves which queue class, one tick at a time.

:func:`allocate` is pure and deterministic (workers are ordered by id, ties between classes
are broken by class name), so two controller replicas fed the same inputs agree. It applies
its rules in this order, each one only improving on the previous ones:

1. **worker_lost**: dead (or vanished) workers give up their class.
2. **max_workers**: a class above its max, or a pool above ``total_workers``, releases workers.
3. **min_workers**: every class is filled up to its min, from unassigned workers first, then
   from classes above their min. When fewer workers are alive than the mins add up to,
   mins are filled in priority order (``global_topics`` first, then open breakers, then score,
   then name) and only ``global_topics`` may take a worker below another class's min.
4. **circuit_breaker**: a class whose breaker is open or recovering and that has pending work
   but no worker gets one, taken if need be from a class above its min (never below a min).
5. **new_worker/priority**: unassigned workers are put to use on the class with the highest
   per-worker score ``score / (workers + 1)`` among classes below their max, classes with
   pending work first; a worker stays spare only when every class is at its max or the pool
   is at ``total_workers``.
6. **idle_release/priority**: a worker above its class's min moves to a class with pending
   work when its own class is idle, or when the other class's per-worker score beats its own
   by more than ``rebalance_margin``. These moves respect the cooldown; the last worker of a
   class whose breaker is open or recovering is never taken.

The cost is O(W log W) in the number of workers W (sorting for determinism); the per-class
work is constant since there are three classes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime

from orchestrator.policy.breaker import advance_breaker, describe_transition
from orchestrator.policy.ledger import Ledger, describe_move
from orchestrator.policy.models import (
    AllocationResult,
    BreakerState,
    ControllerState,
    Move,
    MoveRule,
    PoolConfig,
    ProgressStatus,
    QueueMetrics,
    WorkerState,
)
from orchestrator.policy.progress import progress_status
from orchestrator.policy.rules import (
    enforce_maxima,
    fill_minima,
    place_unassigned,
    rebalance,
    serve_breakers,
)
from orchestrator.policy.score import score
from orchestrator.policy.tick import TickContext
from schemas.queues import QueueClass

_IDLE_METRICS = QueueMetrics()


def allocate(
    config: PoolConfig,
    metrics: Mapping[QueueClass, QueueMetrics],
    workers: Sequence[WorkerState],
    state: ControllerState,
    now: datetime,
) -> AllocationResult:
    """One tick of the policy at ``now`` (timezone-aware).

    ``metrics`` per class (a missing class counts as idle), ``workers`` as last seen (order
    does not matter; ids must be unique), ``state`` from the previous tick's
    ``next_state``. Only alive workers are assigned. Raises ``ValueError`` for a naive
    ``now`` or duplicate worker ids.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        msg = "now must be a timezone-aware datetime"
        raise ValueError(msg)
    ordered = sorted(workers, key=lambda w: w.worker_id)
    for first, second in itertools.pairwise(ordered):
        if first.worker_id == second.worker_id:
            msg = f"duplicate worker id {first.worker_id!r}"
            raise ValueError(msg)

    full = {c: metrics.get(c, _IDLE_METRICS) for c in QueueClass}
    scores = {c: score(full[c], config.weights) for c in QueueClass}
    breakers: dict[QueueClass, BreakerState] = {}
    notes: list[str] = []
    for c in QueueClass:
        before = state.breaker(c)
        breakers[c] = advance_breaker(before, full[c], config, now)
        note = describe_transition(
            c, before=before, after=breakers[c], metrics=full[c], config=config, now=now
        )
        if note is not None:
            notes.append(note)
    progress = {
        c: progress_status(full[c], config.breaker_threshold_seconds, now) for c in QueueClass
    }

    alive = [w for w in ordered if w.alive]
    lost_moves, lost = _lost_workers(ordered, state)
    last_moved = {w.worker_id: _last_move(w, state) for w in alive}
    ledger = Ledger(alive, state.assignments, last_moved)
    tick = TickContext(config, now, full, scores, breakers, ledger, lost)
    tick.reasons.append(_score_line(tick, progress))
    tick.reasons.extend(notes)

    enforce_maxima(tick)
    fill_minima(tick)
    serve_breakers(tick)
    place_unassigned(tick)
    rebalance(tick)

    moves = (*lost_moves, *ledger.moves())
    moved = {m.worker_id for m in moves}
    tick.reasons.append(ledger.summary(config.workers, config.total_workers))
    tick.reasons.extend(m.reason for m in moves)
    last_move_at = {w: t for w, t in last_moved.items() if t is not None}
    last_move_at.update({w: now for w in moved if w in last_moved})
    next_state = ControllerState(
        breakers=breakers,
        last_move_at=dict(sorted(last_move_at.items())),
        assignments=dict(ledger.current),
    )
    return AllocationResult(
        assignments=dict(ledger.current),
        moves=moves,
        scores=scores,
        progress=progress,
        breakers=breakers,
        next_state=next_state,
        reasons=tuple(tick.reasons),
    )


def _score_line(tick: TickContext, progress: Mapping[QueueClass, ProgressStatus]) -> str:
    """The tick's scores with their inputs, e.g. ``topic_posts=31.5 (3 pending, ...)``."""
    parts = [
        f"{c}={tick.scores[c]:.1f} ({tick.pending(c)} pending, avg wait "
        f"{tick.metrics[c].avg_wait_seconds:.0f} s, {progress[c]}, "
        f"breaker {tick.breakers[c].status})"
        for c in QueueClass
    ]
    return "scores: " + ", ".join(parts)


def _last_move(worker: WorkerState, state: ControllerState) -> datetime | None:
    """The later of the controller's record and the worker's own ``assigned_at``."""
    stamps = [t for t in (state.last_move_at.get(worker.worker_id), worker.assigned_at) if t]
    return max(stamps) if stamps else None


def _lost_workers(
    ordered: Sequence[WorkerState], state: ControllerState
) -> tuple[list[Move], dict[QueueClass, list[str]]]:
    """Moves to ``None`` for dead workers that held a class, and for workers of the previous
    tick that are no longer reported at all."""
    reported = {w.worker_id for w in ordered}
    gone: list[tuple[str, QueueClass | None]] = [
        (w.worker_id, w.queue_class or state.assignments.get(w.worker_id))
        for w in ordered
        if not w.alive
    ]
    gone += [(w, c) for w, c in state.assignments.items() if w not in reported]
    moves: list[Move] = []
    lost: dict[QueueClass, list[str]] = {c: [] for c in QueueClass}
    for worker_id, held in sorted(gone, key=lambda item: item[0]):
        if held is None:
            continue
        lost[held].append(worker_id)
        cause = "heartbeat lost; its slot is free for another worker"
        moves.append(
            Move(
                worker_id=worker_id,
                from_class=held,
                to_class=None,
                rule=MoveRule.WORKER_LOST,
                reason=describe_move(worker_id, held, None, cause),
            )
        )
    return moves, lost
