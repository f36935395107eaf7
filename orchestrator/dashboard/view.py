"""The view model: the dashboard state rendered for a moment ``now``. Pure.

The same dictionary is ``/api/state``'s JSON and every Server-Sent Event's data, so the page
and any script see identical numbers. Everything time-dependent (ages, staleness, whether a
worker went silent, whether Kafka is unreachable) is computed here from ``now``: stale numbers
are flagged as stale, never shown as current.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.dashboard.state import DashboardState, RatePoint
from schemas.queues import QueueClass
from schemas.visualization import BreakerState, ClassQueueView, KeyQueueView, WorkerPoolView

JSON = dict[str, Any]

KEY_QUEUE_LIMIT = 200
"""Per-key queues sent to the page (the most stuck first); the rest are counted."""


@dataclass(frozen=True, slots=True)
class ViewOptions:
    """Thresholds of the rendering."""

    stale_after_seconds: float = 30.0
    """A class, pool or controller record older than this is late."""
    silent_after_seconds: float = 10.0
    """A worker whose heartbeat is older than this went silent."""
    key_limit: int = KEY_QUEUE_LIMIT
    key_filter: str = ""
    """Only per-key queues whose name contains this (case-insensitive)."""


def render(state: DashboardState, now: datetime, options: ViewOptions | None = None) -> JSON:
    """The JSON-ready view of ``state`` at ``now``."""
    opts = options or ViewOptions()
    return {
        "generated_at": _iso(now),
        "feed": _feed(state, now, opts),
        "classes": [_class(state, cls, now, opts) for cls in QueueClass],
        "workers": _workers(state.workers, now, opts),
        "key_queues": _key_queues(state, now, opts),
        "controller": _controller(state, now, opts),
    }


def newest_update(state: DashboardState) -> datetime | None:
    """The latest ``updated_at`` among the records a live controller keeps republishing."""
    stamps = [view.updated_at for view in state.classes.values()]
    if state.workers is not None:
        stamps.append(state.workers.updated_at)
    if state.controller is not None:
        stamps.append(state.controller.updated_at)
    return max(stamps, default=None)


def _feed(state: DashboardState, now: datetime, opts: ViewOptions) -> JSON:
    feed = state.feed
    newest = newest_update(state)
    update_age = _age(now, newest)
    lag = None
    if feed.position is not None and feed.end_offset is not None:
        lag = max(0, feed.end_offset - feed.position)
    if not feed.connected and feed.last_contact_at is None:
        status, message = "connecting", "Connecting to Kafka…"
        if feed.error:
            status, message = "disconnected", f"Kafka unreachable: {feed.error}"
    elif not feed.connected:
        since = _age(now, feed.down_since) or 0.0
        status = "disconnected"
        message = (
            f"Kafka unreachable for {since:.0f} s"
            + (f" ({feed.error})" if feed.error else "")
            + f"; the numbers below are from {_clock(feed.last_contact_at)}, not current"
        )
    elif not feed.caught_up and not feed.ready:
        status, message = "loading", "Reading the visualization topic…"
    elif newest is None:
        status, message = "stale", "No queue state published yet (is the controller running?)"
    elif update_age is not None and update_age > opts.stale_after_seconds:
        status = "stale"
        message = (
            f"The visualization topic is late: last update {update_age:.0f} s ago "
            f"({_clock(newest)}); the numbers below are not current"
        )
    else:
        status, message = "live", "Live"
    return {
        "status": status,
        "message": message,
        "connected": feed.connected,
        "ready": feed.ready,
        "lag": lag,
        "last_update_at": _iso(newest),
        "last_update_age_seconds": update_age,
        "records": state.records,
        "invalid_records": state.invalid_records,
    }


def _class(state: DashboardState, cls: QueueClass, now: datetime, opts: ViewOptions) -> JSON:
    view: ClassQueueView | None = state.classes.get(cls)
    points: tuple[RatePoint, ...] = state.history.get(cls, ())
    history = {
        "in_rate": [p.in_rate for p in points],
        "out_rate": [p.out_rate for p in points],
    }
    if view is None:
        return {"queue": cls.value, "present": False, "stale": True, "history": history}
    age = _age(now, view.updated_at)
    return {
        "queue": cls.value,
        "present": True,
        "length": view.length,
        "oldest_wait_seconds": view.oldest_wait_seconds,
        "avg_wait_seconds": view.avg_wait_seconds,
        "score": view.score,
        "workers_assigned": view.workers_assigned,
        "min_workers": view.min_workers,
        "max_workers": view.max_workers,
        "breaker": view.breaker.value,
        "breaker_open": view.breaker is BreakerState.OPEN,
        "in_rate": view.in_rate,
        "out_rate": view.out_rate,
        "updated_at": _iso(view.updated_at),
        "age_seconds": age,
        "stale": _stale(state, age, opts),
        "history": history,
    }


def _workers(pool: WorkerPoolView | None, now: datetime, opts: ViewOptions) -> JSON | None:
    if pool is None:
        return None
    since = _age(now, pool.updated_at) or 0.0
    items = []
    for worker in sorted(pool.workers, key=lambda w: w.worker_id):
        age = worker.heartbeat_age_seconds + since
        items.append(
            {
                "worker_id": worker.worker_id,
                "queue_class": worker.queue_class.value if worker.queue_class else None,
                "state": worker.state.value,
                "in_flight": worker.in_flight,
                "heartbeat_age_seconds": age,
                "alive": worker.alive,
                "silent": (not worker.alive) or age > opts.silent_after_seconds,
            }
        )
    return {
        "updated_at": _iso(pool.updated_at),
        "age_seconds": since,
        "stale": since > opts.stale_after_seconds,
        "items": items,
    }


def _key_queues(state: DashboardState, now: datetime, opts: ViewOptions) -> JSON:
    needle = opts.key_filter.casefold()
    stuck_names = {key.queue for view in state.stuck.values() for key in view.keys}
    rows: list[JSON] = [
        _key_row(view, now, view.queue in stuck_names)
        for view in state.key_queues.values()
        if needle in view.queue.casefold()
    ]
    known = set(state.key_queues)
    for stuck in state.stuck.values():
        for key in stuck.keys:
            if key.queue not in known and needle in key.queue.casefold():
                known.add(key.queue)
                rows.append(
                    {
                        "queue": key.queue,
                        "queue_class": stuck.queue_class.value,
                        "pending": key.pending,
                        "oldest_pending_at": _iso(key.oldest_pending_at),
                        "oldest_wait_seconds": _age(now, key.oldest_pending_at),
                        "last_decision_at": None,
                        "verdicts": {},
                        "stuck": True,
                    }
                )
    rows.sort(key=_stuck_order)
    return {
        "total": len(state.key_queues),
        "matching": len(rows),
        "filter": opts.key_filter,
        "items": rows[: opts.key_limit],
    }


def _key_row(view: KeyQueueView, now: datetime, stuck: bool) -> JSON:
    return {
        "queue": view.queue,
        "queue_class": view.queue_class.value,
        "pending": view.pending,
        "oldest_pending_at": _iso(view.oldest_pending_at),
        "oldest_wait_seconds": _age(now, view.oldest_pending_at),
        "last_decision_at": _iso(view.last_decision_at),
        "verdicts": {str(k): v for k, v in view.verdicts.items()},
        "stuck": stuck,
    }


def _stuck_order(row: JSON) -> tuple[int, float, str]:
    """Oldest pending first; queues with nothing pending last; then by name."""
    wait = row["oldest_wait_seconds"]
    if wait is None:
        return (1, 0.0, row["queue"])
    return (0, -float(wait), row["queue"])


def _controller(state: DashboardState, now: datetime, opts: ViewOptions) -> JSON | None:
    current = state.controller
    if current is None and not state.decisions:
        return None
    decisions = [
        {
            "controller_id": d.controller_id,
            "decided_at": _iso(d.decided_at),
            "age_seconds": _age(now, d.decided_at),
            "moves": [
                {
                    "worker_id": m.worker_id,
                    "from_class": m.from_class.value if m.from_class else None,
                    "to_class": m.to_class.value if m.to_class else None,
                    "reason": m.reason,
                    "rule": m.rule,
                }
                for m in d.moves
            ],
            "reasons": list(d.reasons),
        }
        for d in state.decisions
    ]
    current_json = None
    if current is not None:
        age = _age(now, current.updated_at)
        current_json = {
            "controller_id": current.controller_id,
            "leader": current.leader,
            "decided_at": _iso(current.decided_at),
            "updated_at": _iso(current.updated_at),
            "age_seconds": age,
            "stale": _stale(state, age, opts),
            "allocation": {str(k): list(v) for k, v in current.allocation.items()},
        }
    return {"current": current_json, "decisions": decisions}


def _stale(state: DashboardState, age: float | None, opts: ViewOptions) -> bool:
    return not state.feed.connected or age is None or age > opts.stale_after_seconds


def _age(now: datetime, then: datetime | None) -> float | None:
    if then is None:
        return None
    return max(0.0, (now - then).total_seconds())


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _clock(moment: datetime | None) -> str:
    return "never" if moment is None else moment.astimezone(UTC).strftime("%H:%M:%S UTC")
